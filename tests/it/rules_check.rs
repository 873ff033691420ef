//! `rules check`: data-driven. A rule set in, every diagnostic out, as the user sees them.

use costsplit::rules::load_texts;

fn check(files: &[(&str, &str)]) -> String {
    let loaded = load_texts(files);
    let mut out: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    out.push(if loaded.rules.is_some() {
        "ok".into()
    } else {
        "failed".into()
    });
    out.join("\n")
}

const BROKEN_A: &str = r#"[settings]
service_tag_keys = ["service"]
colour = "blue"

[[service]]
name = "a"
[[service]]
name = "b"
[[service]]
name = "a"
[[service]]
team = "x"

[[pool]]
name = "p1"
method = "fixed"
percent = { a = 50, ghost = 50 }
match = { resource_id = "x" }

[[pool]]
name = "p1"
method = "equal"
members = ["a"]
match = { resource_id = "y" }
"#;

const BROKEN_B: &str = r#"[[pool]]
name = "empty"
method = "equal"
members = []
match = { resource_id = "z" }

[[pool]]
name = "sum"
method = "fixed"
percent = { a = 60, b = 30.5 }
match = { resource_id = "w" }

[[pool]]
name = "weird"
method = "magic"
members = ["a"]
match = { resource_idd = "q" }

[[pool]]
name = "overlap-1"
method = "equal"
members = ["a"]
match = { provider_service = "Amazon ElastiCache" }

[[pool]]
name = "overlap-2"
method = "equal"
members = ["b"]
match = { tags = { team = "platform" } }
"#;

#[test]
fn a_broken_rule_set_reports_every_error_with_file_line_col() {
    let got = check(&[("a.toml", BROKEN_A), ("b.toml", BROKEN_B)]);
    let want = r#"a.toml:3:1: error: unknown key `colour` in [settings]; expected one of: service_tag_keys, value_case, undeclared_services
a.toml:10:8: error: service `a` is already declared at a.toml:6; remove one
a.toml:11:1: error: [[service]] needs a `name`, e.g. name = "checkout-api"
a.toml:17:21: error: pool `p1`: unknown service `ghost`; declare it in a [[service]] table or fix the name
a.toml:21:8: error: pool `p1` is already defined at a.toml:15; pool names must be unique
b.toml:1:1: error: pool `empty` has no members; list them in `members = ["service", ...]`
b.toml:10:1: error: pool `sum`: percentages sum to 90.5, not 100; adjust them so they add up to exactly 100
b.toml:13:1: error: pool `weird` has an empty `match`, which would take every line item; give at least one of resource_id, provider_service, charge_category, sub_account, tags, untagged
b.toml:15:10: error: unknown method `magic`: use equal, fixed, proportional or usage
b.toml:17:11: error: unknown key `resource_idd` in a pool's `match`; expected one of: resource_id, provider_service, charge_category, sub_account, tags, untagged
b.toml:26:8: warning: pools `overlap-1` (b.toml:20) and `overlap-2` may both match the same line items and have the same priority (0); `overlap-1` takes them because it comes first in file order; give them different `priority` values or narrow `match`
failed"#;
    assert_eq!(got, want);
}

/// A file that is not TOML is reported alone: the other files are not checked against a
/// set missing what it declares (its services, its sources), which would blame them.
#[test]
fn a_toml_syntax_error_is_reported_alone() {
    let services = "[[service]]\nname = \"a\"\n[[service]]\nname = \"b\"\n";
    let pools = "[[pool]]\nname = \"db\"\nmethod = \"equal\"\nmembers = [\"a\", \"b\"]\nmatch = { resource_id = \"x\" }\n";
    let got = check(&[
        ("pools.toml", pools),
        (
            "services.toml",
            &services.replace("[[service]]\nname = \"b\"", "[[service]\nname = \"b\""),
        ),
    ]);
    assert_eq!(
        got,
        "services.toml:3:11: error: invalid TOML: unclosed array table, expected `]`\nfailed"
    );
    assert_eq!(
        check(&[("pools.toml", pools), ("services.toml", services)]),
        "ok"
    );
}

#[test]
fn weight_file_rows_are_checked_like_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("w.csv"),
        "service,weight,day\na,1,2025-03-01\nghost,2,\na,-3,\na,4,03/01/2025\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("r.toml"),
        "[[service]]\nname = \"a\"\n[[pool]]\nname = \"db\"\nmethod = \"usage\"\nusage = { file = \"w.csv\" }\nmatch = { untagged = true }\n",
    )
    .expect("write");
    let loaded = costsplit::rules::load(dir.path());
    let lines: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| {
            format!(
                "{}:{}:{}: {}",
                d.file.file_name().and_then(|n| n.to_str()).unwrap_or(""),
                d.line,
                d.col,
                d.message
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            "w.csv:3:1: unknown service `ghost`; declare it in a [[service]] table or fix the name",
            "w.csv:4:2: weight `-3` is not a non-negative decimal number",
            "w.csv:5:3: day `03/01/2025` is not a date like 2025-03-01",
        ]
    );
}

#[test]
fn the_bundled_example_rules_are_clean() {
    let loaded = costsplit::rules::load(&crate::support::repo_rules());
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let rules = loaded.rules.expect("valid");
    assert_eq!(rules.services.len(), 8);
    assert_eq!(rules.pools.len(), 4);
}

/// A broken config mount: a rules file that is a dangling symlink, or one that loops, is an
/// error naming it, not a file silently left out (which would drop its pools).
#[test]
fn a_dangling_or_looping_rules_symlink_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("a.toml"),
        "[[service]]\nname = \"web\"\nteam = \"shop\"\n",
    )
    .expect("write");
    std::os::unix::fs::symlink(dir.path().join("gone.toml"), dir.path().join("pools.toml"))
        .expect("symlink");
    std::os::unix::fs::symlink(dir.path().join("loop.toml"), dir.path().join("loop.toml"))
        .expect("symlink");
    let loaded = costsplit::rules::load(dir.path());
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert!(loaded.rules.is_none(), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("pools.toml"))
            && errors.iter().any(|e| e.contains("loop.toml")),
        "{errors:?}"
    );
}

const BROKEN_SOURCES: &str = r#"[[service]]
name = "orders-api"

[[source]]
name = "orders-db"
kind = "postgres"
dsn = "postgres://app:pw@db/orders"
map = { "orders" = "orders-api", "pay" = "payments" }

[[source]]
name = "cache"
kind = "redis"
url_env = "CACHE_URL"
scan_cnt = 10
map = { "o:" = "orders-api" }

[[source]]
name = "mystery"
kind = "mongodb"
map = { "x" = "orders-api" }

[[source]]
name = "kafka"
kind = "prometheus"
url = "http://admin:pw@prometheus:9090"
query = "sum by (topic) (kafka_log_log_size)"
label = "topic"
map = { "orders" = "orders-api" }

[[pool]]
name = "shared"
method = "usage"
usage = { source = "ghost-db" }
match = { resource_id = "arn:aws:rds:*" }
"#;

/// Live sources are checked like every other rule: unknown keys, secrets written inline, an
/// unknown kind, a map to an undeclared service, a pool naming a missing source.
#[test]
fn broken_usage_sources_report_every_error_with_file_line_col() {
    let got = check(&[("s.toml", BROKEN_SOURCES)]);
    let want = r#"s.toml:4:1: error: source `orders-db` needs `dsn_env = "VARIABLE"` or `dsn_file = "path"` (the dsn itself never sits in the rules)
s.toml:7:1: error: `dsn` would put a connection secret in the rules; name an environment variable (dsn_env = "VAR") or a file (dsn_file = "/run/secrets/x") instead
s.toml:14:1: error: unknown key `scan_cnt` in a [[source]] of kind `redis`; expected one of: name, kind, map, resource_id, timeout_seconds, unit, url_env, url_file, measure, max_keys, scan_count, memory_samples
s.toml:19:8: error: unknown source kind `mongodb`: use postgres, redis, prometheus, kubernetes or cloudwatch
s.toml:25:7: error: a Prometheus `url` with credentials in it would put a secret in the rules; use url_env or url_file, or token_env for a bearer token
s.toml:33:20: error: pool `shared`: no [[source]] is named `ghost-db`; declare it (known sources: cache)
failed"#;
    assert_eq!(got, want, "\n{got}");
}

#[test]
fn a_source_mapping_to_an_undeclared_service_names_the_map_entry() {
    let got = check(&[(
        "s.toml",
        "[[service]]\nname = \"a\"\n[[source]]\nname = \"db\"\nkind = \"postgres\"\ndsn_env = \"X\"\nmap = { \"s1\" = \"a\", \"s2\" = \"nobody\" }\n",
    )]);
    assert_eq!(
        got,
        "s.toml:7:21: error: source `db`: map `s2`: unknown service `nobody`; declare it in a [[service]] table or fix the name\nfailed"
    );
}

const BROKEN_CLUSTERS: &str = r#"[[service]]
name = "checkout"

[[cluster]]
name = "eks-prod"
by = "pod"
idle = "central"

[[cluster]]
name = "eks-batch"
map = { "shop" = "nobody" }
idle = "sometimes"

[[cluster]]
name = "eks-dev"
idle = "equal"
owner = "checkout"
nodes = 3
"#;

/// `[[cluster]]` tables are checked like every other rule, each error at its key.
#[test]
fn broken_clusters_report_every_error_with_file_line_col() {
    let got = check(&[("k.toml", BROKEN_CLUSTERS)]);
    let want = r#"k.toml:6:6: error: cluster `eks-prod`: unknown `by = "pod"`: use "namespace", "workload" or "label:KEY" (a pod label, e.g. "label:app")
k.toml:7:8: error: cluster `eks-prod`: idle = "central" needs `owner`, the service that pays for the idle capacity, e.g. owner = "platform"
k.toml:11:9: error: cluster `eks-batch`: map `shop`: unknown service `nobody`; declare it in a [[service]] table or fix the name
k.toml:12:8: error: cluster `eks-batch`: unknown `idle = "sometimes"`: use "central", "equal", "requests" or "unallocated"
k.toml:17:9: error: cluster `eks-dev`: `owner` only applies to idle = "central"
k.toml:18:1: error: unknown key `nodes` in [[cluster]]; expected one of: name, cluster, by, map, idle, owner
failed"#;
    assert_eq!(got, want, "\n{got}");
}
