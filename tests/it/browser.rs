//! The web page in a real browser: Debian's chromium, headless, driven through chromedriver's
//! WebDriver protocol (the few commands the test needs, over reqwest). The page is served by
//! `costsplit serve` over the demo's store; its amounts must be the statement's to the cent,
//! its links must lead where they say, and the browser must log no error.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::{cents, demo_store, serve, statement_cents};
use crate::support::free_port;

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> PathBuf {
    let path = std::env::var("COSTSPLIT_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    PathBuf::from(path)
}

impl Driver {
    async fn start() -> Driver {
        let port = free_port();
        let child = std::process::Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts: run the tests with scripts/test, which installs Debian's chromium and chromium-driver (or set COSTSPLIT_CHROMEDRIVER)");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("{}/status", driver.url)).await {
                let body: Value = r.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    return driver;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not get ready");
    }

    /// A headless chromium session that keeps the browser's console log.
    async fn session(&self) -> Session {
        let binary =
            std::env::var("COSTSPLIT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1100"]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let client = reqwest::Client::new();
        let answer: Value = client
            .post(format!("{}/session", self.url))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("json");
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        Session {
            client,
            base: format!("{}/session/{id}", self.url),
        }
    }
}

struct Session {
    client: reqwest::Client,
    base: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("webdriver answers")
            .json()
            .await
            .expect("json");
        assert!(answer["value"]["error"].is_null(), "{path}: {answer}");
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .expect("url")
            .to_string()
    }

    /// Runs `script` in the page and returns what it returns (WebDriver's own DOM access; the
    /// page itself has no script).
    async fn eval(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Clicks the first element `css` finds.
    async fn click(&self, css: &str) {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element id")
            .to_string();
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// The browser's console and network errors since the last call.
    async fn errors(&self) -> Vec<String> {
        self.call(
            reqwest::Method::POST,
            "/se/log",
            Some(json!({"type": "browser"})),
        )
        .await
        .as_array()
        .expect("log")
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].to_string())
        .collect()
    }

    async fn screenshot(&self, to: &Path) {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64_decode(png.as_str().expect("base64"));
        std::fs::write(to, bytes).expect("write screenshot");
    }

    async fn close(&self) {
        let _ = self.client.delete(&self.base).send().await;
    }
}

/// Standard base64 (WebDriver's screenshot encoding).
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
    {
        let v = ALPHABET.iter().position(|a| *a == b).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The ranking table's (name, amount in cents) rows.
async fn ranking(session: &Session) -> Vec<(String, i64)> {
    let rows = session
        .eval("return [...document.querySelectorAll('#ranking tbody tr')].map(r => [r.dataset.name, r.querySelector('.amount').textContent]);")
        .await;
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r[0].as_str().expect("name").to_string(),
                cents(r[1].as_str().expect("amount")),
            )
        })
        .collect()
}

async fn text(session: &Session, css: &str) -> String {
    session
        .eval(&format!(
            "const e = document.querySelector('{css}'); return e ? e.textContent : null;"
        ))
        .await
        .as_str()
        .unwrap_or_else(|| panic!("no {css} on the page"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_shows_the_statements_amounts_and_its_links_lead_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = demo_store(dir.path());
    // The alerts the demo would send, enqueued as its last lines say.
    let out = crate::support::costsplit(dir.path())
        .store(&store)
        .rules(&crate::support::repo_rules())
        .run(&[
            "alerts",
            "check",
            "--date",
            "2025-03-31",
            "--lookback",
            "30",
        ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_team = statement_cents(dir.path(), &store, "2025-03", "team");
    let by_service = statement_cents(dir.path(), &store, "2025-03", "service");
    let served = serve(
        dir.path(),
        &store,
        &format!("127.0.0.1:{}", free_port()),
        &[],
    )
    .await;
    let driver = Driver::start().await;
    let session = driver.session().await;

    // The overview: every team's month, equal to the statement by team to the cent.
    session.goto(&format!("{}/", served.url)).await;
    assert_eq!(text(&session, "#month").await, "2025-03");
    let teams = ranking(&session).await;
    assert!(teams.len() >= 3, "{teams:?}");
    for (team, amount) in &teams {
        let want: i64 = by_team
            .iter()
            .filter(|(t, s, _)| {
                if team == "unallocated" {
                    s == "unallocated"
                } else {
                    t == team && s != "unallocated"
                }
            })
            .map(|l| l.2)
            .sum();
        assert_eq!(*amount, want, "team {team}");
    }
    let total: i64 = by_team.iter().map(|l| l.2).sum();
    assert_eq!(cents(&text(&session, ".total").await), total);

    let alerts = session
        .eval("return document.querySelectorAll('#alerts tbody tr').length;")
        .await;
    // The demo's spike and month-over-month alerts, and its two budgets' 80% and 100%
    // (their forecast 100% is the spend's, said by the actual alert).
    assert_eq!(alerts, 6, "the demo's alerts and budget alerts");
    let budget_teams = session
        .eval(
            "return [...document.querySelectorAll('#alerts tbody tr')]\
             .filter(r => r.cells[0].textContent === 'budget')\
             .map(r => r.cells[1].querySelector('a').getAttribute('href')).sort();",
        )
        .await;
    assert_eq!(
        budget_teams,
        serde_json::json!([
            "/teams/core?month=2025-03",
            "/teams/core?month=2025-03",
            "/teams/payments?month=2025-03",
            "/teams/payments?month=2025-03"
        ]),
        "a budget's alert links to its team"
    );

    // The payments team's page: its services, each equal to its statement line, and the
    // spike of one of them.
    let team = "payments".to_string();
    assert!(teams.iter().any(|(t, _)| *t == team), "{teams:?}");
    session
        .click(&format!("#ranking tr[data-name='{team}'] a"))
        .await;
    assert!(
        session
            .url()
            .await
            .ends_with(&format!("/teams/{team}?month=2025-03")),
        "{}",
        session.url().await
    );
    assert_eq!(text(&session, "h1").await, format!("Team {team}"));
    let services = ranking(&session).await;
    assert!(services.len() >= 2, "{services:?}");
    let team_alerts = text(&session, "#alerts").await;
    assert!(team_alerts.contains("payments-api"), "{team_alerts}");
    assert!(
        team_alerts.contains("Budget `payments monthly`") && !team_alerts.contains("core monthly"),
        "{team_alerts}"
    );
    for (service, amount) in &services {
        let want: i64 = by_service
            .iter()
            .filter(|(t, s, _)| t == &team && s == service)
            .map(|l| l.2)
            .sum();
        assert_eq!(*amount, want, "service {service}");
    }
    let screenshot = match std::env::var("COSTSPLIT_BLESS") {
        Ok(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/page.png"),
        Err(_) => dir.path().join("page.png"),
    };
    session.screenshot(&screenshot).await;
    assert!(std::fs::metadata(&screenshot).expect("png").len() > 10_000);

    // A service's page: its pools and the basis of each share, adding up to its line.
    let service = services[0].0.clone();
    session
        .click(&format!("#ranking tr[data-name='{service}'] a"))
        .await;
    assert_eq!(text(&session, "h1").await, format!("Service {service}"));
    let pools = session
        .eval("return document.querySelectorAll('table[id^=explain] tr.pool').length;")
        .await;
    assert!(pools.as_u64().expect("count") >= 1, "no pool rows");
    assert_eq!(cents(&text(&session, ".total").await), services[0].1);

    // Back a month.
    session.click("a[rel=prev]").await;
    assert_eq!(text(&session, "#month").await, "2025-02");
    assert_eq!(text(&session, "h1").await, format!("Service {service}"));

    // An unknown team: a page that says where to look, not an error in the browser's log.
    session
        .goto(&format!("{}/teams/nobody?month=2025-03", served.url))
        .await;
    assert!(text(&session, "#message").await.contains("/?month=2025-03"));
    let errors = session.errors().await;
    // The 404 of the unknown team is the only thing the browser may complain about.
    assert!(
        errors.iter().all(|e| e.contains("/teams/nobody")),
        "{errors:?}"
    );
    session.close().await;
}
