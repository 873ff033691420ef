//! Service ownership from the service catalog: Backstage `catalog-info.yaml` files (the ones
//! committed in examples/catalog) and Backstage's catalog API through a stand-in that answers
//! with the API's paginated shape.

use std::path::{Path, PathBuf};
use std::time::Instant;

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{costsplit, repo_rules};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The repository's rules with every `[[service]]` table taken out: the catalog names them.
fn rules_without_services(to: &Path) {
    copy_dir(&repo_rules(), to);
    let file = to.join("example.toml");
    let text = std::fs::read_to_string(&file).expect("rules");
    let mut out = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.trim() == "[[service]]" {
            skipping = true;
        } else if skipping && line.trim().is_empty() {
            skipping = false;
        } else if !skipping {
            out.push(line);
        }
    }
    std::fs::write(&file, out.join("\n")).expect("write rules");
    assert!(!std::fs::read_to_string(&file)
        .expect("rules")
        .lines()
        .any(|l| l.trim() == "[[service]]"));
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The statement's lines by team without the rules hash column: the same money to the same
/// teams whichever list named them.
fn by_team(dir: &Path, store: &str, rules: &Path) -> Vec<String> {
    let csv = ok(costsplit(dir)
        .store(store)
        .rules(rules)
        .run(&["export", "--month", "2025-03", "--by", "team"]));
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().expect("header").clone();
    let keep: Vec<usize> = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.contains("rules"))
        .map(|(i, _)| i)
        .collect();
    reader
        .records()
        .map(|r| {
            let r = r.expect("record");
            keep.iter().map(|&i| &r[i]).collect::<Vec<_>>().join(",")
        })
        .collect()
}

#[test]
fn the_catalog_files_give_the_demo_services_their_teams_and_a_move_shows_in_the_dry_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    rules_without_services(&d.join("rules"));
    copy_dir(&repo("examples/catalog"), &d.join("catalog"));
    std::fs::write(
        d.join("costsplit.toml"),
        "[catalog]\nfiles = [\"catalog\"]\n",
    )
    .expect("config");
    let rules = d.join("rules");

    let check = ok(costsplit(d).rules(&rules).run(&["rules", "check"]));
    assert!(check.contains("8 services"), "{check}");
    let shown = ok(costsplit(d).run(&["catalog", "show"]));
    assert!(
        shown.contains("checkout-api") && shown.contains("payments") && shown.contains("cc-1001"),
        "{shown}"
    );
    assert!(
        shown.contains("catalog/services/search-api.yaml:1"),
        "{shown}"
    );

    // The same month allocated with the repository's rules (services typed in) and with the
    // catalog's map: every team's statement line is the same.
    let month = d.join("month.csv");
    ok(costsplit(d).run(&[
        "generate",
        "--rows",
        "20000",
        "--out",
        month.to_str().expect("utf-8"),
    ]));
    let typed = format!("sqlite://{}", d.join("typed.db").display());
    let from_catalog = format!("sqlite://{}", d.join("catalog.db").display());
    let plain = d.join("plain");
    std::fs::create_dir_all(&plain).expect("mkdir");
    ok(costsplit(&plain).store(&typed).rules(&repo_rules()).run(&[
        "import",
        "--allocate",
        month.to_str().expect("utf-8"),
    ]));
    ok(costsplit(d).store(&from_catalog).rules(&rules).run(&[
        "import",
        "--allocate",
        month.to_str().expect("utf-8"),
    ]));
    let expected = by_team(&plain, &typed, &repo_rules());
    assert!(
        expected.iter().any(|l| l.contains("payments")),
        "{expected:?}"
    );
    assert_eq!(by_team(d, &from_catalog, &rules), expected);
    // The generator's other services are charged as undeclared tag values: the catalog
    // check lists them, the catalog's own services never.
    let shown = ok(costsplit(d)
        .store(&from_catalog)
        .run(&["catalog", "show", "--month", "2025-03"]));
    assert!(shown.contains("not in the catalog: "), "{shown}");
    assert!(
        !shown.contains("not in the catalog: checkout-api"),
        "{shown}"
    );

    // checkout-api moves to the core team in the catalog: the dry run says so before the
    // next allocation charges it there.
    let file = d.join("catalog/services/checkout-api.yaml");
    let text = std::fs::read_to_string(&file).expect("yaml");
    std::fs::write(
        &file,
        text.replace("group:default/payments", "group:default/core"),
    )
    .expect("yaml");
    let dry = ok(costsplit(d).store(&from_catalog).rules(&rules).run(&[
        "allocate",
        "--month",
        "2025-03",
        "--dry-run",
    ]));
    assert!(
        dry.contains("checkout-api moves: team payments -> core, cost center cc-1001 -> cc-1002"),
        "{dry}"
    );
    ok(costsplit(d)
        .store(&from_catalog)
        .rules(&rules)
        .run(&["allocate", "--month", "2025-03"]));
    let csv = ok(costsplit(d)
        .store(&from_catalog)
        .rules(&rules)
        .run(&["export", "--month", "2025-03"]));
    let line = csv
        .lines()
        .find(|l| l.contains("checkout-api"))
        .expect("a checkout-api line");
    assert!(line.contains("core") && line.contains("cc-1002"), "{line}");
}

#[test]
fn rules_win_over_the_catalog_and_rules_check_says_where_they_disagree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    copy_dir(&repo_rules(), &d.join("rules"));
    copy_dir(&repo("examples/catalog"), &d.join("catalog"));
    let file = d.join("catalog/services/search-api.yaml");
    let text = std::fs::read_to_string(&file).expect("yaml");
    std::fs::write(
        &file,
        text.replace("group:default/search", "group:default/core"),
    )
    .expect("yaml");
    // A component nobody owns is listed, not dropped.
    std::fs::write(
        d.join("catalog/services/legacy-batch.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: legacy-batch\nspec:\n  type: service\n  lifecycle: deprecated\n",
    )
    .expect("yaml");
    std::fs::write(
        d.join("costsplit.toml"),
        "[catalog]\nfiles = [\"catalog\"]\n",
    )
    .expect("config");
    let out = costsplit(d)
        .rules(&d.join("rules"))
        .run(&["rules", "check"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{printed}");
    assert!(
        printed.contains("rules/example.toml:")
            && printed.contains("warning: service `search-api`: the catalog (catalog/services/search-api.yaml:1) says team `core` (the rules: `search`)")
            && printed.contains("the rules win"),
        "{printed}"
    );
    assert!(
        printed.contains("catalog/services/legacy-batch.yaml:1:1: warning: component `legacy-batch` has no owner"),
        "{printed}"
    );
    assert!(printed.contains("9 services"), "{printed}");
    let shown = ok(costsplit(d).run(&["catalog", "show"]));
    assert!(
        shown.contains("legacy-batch") && shown.contains("(no owner)"),
        "{shown}"
    );

    // A file that is not YAML names its line.
    std::fs::write(
        d.join("catalog/services/broken.yaml"),
        "kind: Component\nmetadata: [oops\n",
    )
    .expect("yaml");
    let out = costsplit(d)
        .rules(&d.join("rules"))
        .run(&["rules", "check"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("catalog/services/broken.yaml: line"),
        "{printed}"
    );
}

/// Backstage's error body (`{error: {name, message}, request, response: {statusCode}}`).
fn backstage_error(name: &str, message: &str, status: u16) -> serde_json::Value {
    serde_json::json!({
        "error": {"name": name, "message": message},
        "request": {"method": "GET", "url": "/api/catalog/entities/by-query"},
        "response": {"statusCode": status}
    })
}

/// A request without the right bearer token gets the 401 Backstage's auth answers with.
async fn backstage_refuses_other_tokens(server: &MockServer) {
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(backstage_error(
            "AuthenticationError",
            "Missing credentials",
            401,
        )))
        .with_priority(10)
        .mount(server)
        .await;
}

/// A Backstage catalog of `components` components over five groups, answered page by page as
/// `/api/catalog/entities/by-query` does (`items`, `pageInfo.nextCursor`).
fn entities(components: usize) -> Vec<serde_json::Value> {
    let mut all: Vec<serde_json::Value> = (0..5)
        .map(|g| {
            serde_json::json!({
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Group",
                "metadata": {"name": format!("team-{g}"), "namespace": "default",
                    "annotations": {"costsplit.io/cost-center": format!("cc-{g}"), "slack.com/channel": format!("#team-{g}")}},
                "spec": {"type": "team", "children": []}
            })
        })
        .collect();
    all.extend((0..components).map(|i| {
        serde_json::json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": format!("svc-{i:04}"), "namespace": "default", "uid": format!("uid-{i}")},
            "spec": {"type": "service", "lifecycle": "production", "owner": format!("group:default/team-{}", i % 5)}
        })
    }));
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backstage_api_is_read_page_by_page_and_a_catalog_that_is_down_keeps_the_last_snapshot()
{
    let server = MockServer::start().await;
    let items = entities(1000);
    let page = 200;
    Mock::given(method("GET"))
        .and(path("/api/catalog/entities/by-query"))
        .and(header("authorization", "Bearer catalog-token-123"))
        .respond_with(move |request: &Request| {
            let query: std::collections::HashMap<String, String> =
                request.url.query_pairs().into_owned().collect();
            let start: usize = query.get("cursor").map_or(0, |c| {
                c.trim_start_matches("after-").parse().expect("cursor")
            });
            let end = (start + page).min(items.len());
            let mut body = serde_json::json!({
                "items": items[start..end],
                "totalItems": items.len(),
                "pageInfo": {}
            });
            if end < items.len() {
                body["pageInfo"]["nextCursor"] = format!("after-{end}").into();
            }
            ResponseTemplate::new(200).set_body_json(body)
        })
        .mount(&server)
        .await;
    backstage_refuses_other_tokens(&server).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("rules")).expect("mkdir");
    std::fs::write(
        d.join("rules/base.toml"),
        "# services come from the catalog\n",
    )
    .expect("rules");
    std::fs::write(
        d.join("costsplit.toml"),
        format!(
            "[catalog]\nsnapshot = \"state/catalog.json\"\n\n[catalog.backstage]\nurl = \"{}\"\ntoken_env = \"BACKSTAGE_TOKEN\"\npage_size = {page}\n",
            server.uri()
        ),
    )
    .expect("config");
    std::fs::create_dir_all(d.join("state")).expect("mkdir");
    let rules = d.join("rules");

    // Before the first sync there is no map: the rules say so instead of running with none.
    let out = costsplit(d).rules(&rules).run(&["rules", "check"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("run `costsplit catalog sync`"),
        "{printed}"
    );

    let started = Instant::now();
    let synced = ok(costsplit(d)
        .env("BACKSTAGE_TOKEN", "catalog-token-123")
        .run(&["catalog", "sync"]));
    let took = started.elapsed();
    println!("catalog sync of 1,000 components over 5 pages: {took:?} (the issue asks <= 2 s)");
    assert!(synced.contains("catalog: 1000 service(s)"), "{synced}");
    let check = ok(costsplit(d).rules(&rules).run(&["rules", "check"]));
    assert!(check.contains("1000 services"), "{check}");
    let shown = ok(costsplit(d).run(&["catalog", "show"]));
    assert!(
        shown.lines().any(|l| l.starts_with("svc-0007")
            && l.contains("team-2")
            && l.contains("cc-2")
            && l.contains("#team-2")),
        "{shown}"
    );
    let snapshot = std::fs::read(d.join("state/catalog.json")).expect("snapshot");

    // The catalog goes down: the sync fails, says the last good map stays, and changes nothing.
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).set_body_json(backstage_error(
            "ServiceUnavailableError",
            "Service Unavailable",
            503,
        )))
        .mount(&server)
        .await;
    let out = costsplit(d)
        .env("BACKSTAGE_TOKEN", "catalog-token-123")
        .run(&["catalog", "sync"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("HTTP 503") && stderr.contains("the last good snapshot stays in force"),
        "{stderr}"
    );
    assert!(!stderr.contains("catalog-token-123"), "{stderr}");
    assert_eq!(
        std::fs::read(d.join("state/catalog.json")).expect("snapshot"),
        snapshot
    );
    let check = ok(costsplit(d).rules(&rules).run(&["rules", "check"]));
    assert!(check.contains("1000 services"), "{check}");
}

/// Port's search answer for a blueprint's entities: `entities`, and `next` until the last
/// page (the request sends it back as `from`).
fn port_entities(count: usize) -> Vec<serde_json::Value> {
    (0..count)
        .map(|i| {
            serde_json::json!({
                "identifier": format!("svc-{i:04}"),
                "title": format!("Service {i}"),
                "icon": "Microservice",
                "blueprint": "service",
                "team": [format!("team-{}", i % 4)],
                "properties": {"slack": format!("#team-{}-cost", i % 4), "cost_center": format!("cc-{}", 100 + i % 4), "language": "Rust"},
                "relations": {},
                "createdAt": "2026-01-05T10:00:00.000Z",
                "createdBy": "port-labs",
                "updatedAt": "2026-11-30T08:00:00.000Z",
                "updatedBy": "port-labs"
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ports_entities_are_read_page_by_page_after_the_access_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/access_token"))
        .and(wiremock::matchers::body_json(
            serde_json::json!({"clientId": "port-id", "clientSecret": "port-secret-456"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "ok": true, "accessToken": "port-access-789", "expiresIn": 10800, "tokenType": "Bearer"
        })))
        .mount(&server)
        .await;
    // Other credentials: refused as Port refuses them.
    Mock::given(method("POST"))
        .and(path("/v1/auth/access_token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "ok": false, "error": "invalid_credentials", "message": "Invalid client credentials"
        })))
        .with_priority(10)
        .mount(&server)
        .await;
    let items = port_entities(1000);
    Mock::given(method("POST"))
        .and(path("/v1/blueprints/service/entities/search"))
        .and(header("authorization", "Bearer port-access-789"))
        .respond_with(move |request: &Request| {
            let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json body");
            let limit = body["limit"].as_u64().expect("limit") as usize;
            let start: usize = body
                .get("from")
                .and_then(|f| f.as_str())
                .map_or(0, |f| f.trim_start_matches("page-").parse().expect("from"));
            let end = (start + limit).min(items.len());
            let mut answer = serde_json::json!({"ok": true, "entities": items[start..end]});
            if end < items.len() {
                answer["next"] = format!("page-{end}").into();
            }
            ResponseTemplate::new(200).set_body_json(answer)
        })
        .mount(&server)
        .await;
    // Without the access token, refused as Port refuses it.
    Mock::given(method("POST"))
        .and(path("/v1/blueprints/service/entities/search"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "ok": false, "error": "unauthorized", "message": "Unauthorized"
        })))
        .with_priority(10)
        .mount(&server)
        .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("rules")).expect("mkdir");
    std::fs::write(d.join("rules/base.toml"), "# services come from Port\n").expect("rules");
    std::fs::write(
        d.join("costsplit.toml"),
        format!(
            "[catalog]\nsnapshot = \"catalog.json\"\n\n[catalog.port]\nurl = \"{}\"\nclient_id_env = \"PORT_CLIENT_ID\"\nclient_secret_env = \"PORT_CLIENT_SECRET\"\npage_size = 300\n",
            server.uri()
        ),
    )
    .expect("config");
    let started = Instant::now();
    let out = costsplit(d)
        .env("PORT_CLIENT_ID", "port-id")
        .env("PORT_CLIENT_SECRET", "port-secret-456")
        .run(&["catalog", "sync"]);
    println!(
        "Port catalog sync of 1,000 entities over 4 pages: {:?}",
        started.elapsed()
    );
    let synced = ok(out);
    assert!(synced.contains("catalog: 1000 service(s)"), "{synced}");
    let shown = ok(costsplit(d).run(&["catalog", "show"]));
    assert!(
        shown.lines().any(|l| l.starts_with("svc-0006")
            && l.contains("team-2")
            && l.contains("cc-102")
            && l.contains("#team-2-cost")
            && l.contains("port service:svc-0006")),
        "{shown}"
    );
    let check = ok(costsplit(d)
        .rules(&d.join("rules"))
        .run(&["rules", "check"]));
    assert!(check.contains("1000 services"), "{check}");

    // Wrong credentials: refused, said without the secret, the snapshot kept.
    let snapshot = std::fs::read(d.join("catalog.json")).expect("snapshot");
    let out = costsplit(d)
        .env("PORT_CLIENT_ID", "port-id")
        .env("PORT_CLIENT_SECRET", "wrong-secret")
        .run(&["catalog", "sync"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the access token request answered HTTP 404")
            || stderr.contains("answered HTTP"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong-secret") && !stderr.contains("port-secret-456"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(d.join("catalog.json")).expect("snapshot"),
        snapshot
    );
}
