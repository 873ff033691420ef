//! Marking an alert "expected" from Slack: the alert carries the buttons, Slack's
//! interactivity request (a signed form POST, as the stand-in sends it) reaches
//! `costsplit serve`, the mark is stored and shown by `alerts list`, and the same anomaly is
//! not sent again.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use costsplit::jobs;
use costsplit::model::MessageState;
use costsplit::notify::SlackSettings;

use crate::alerts::{check, seed, RULES};
use crate::api::serve;
use crate::support::{costsplit, day, free_port, rules, Kind, TestStore, BOTH, NOW};

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// Slack's interactivity request for a click on `action_id` of alert `alert_id` by `ana`,
/// signed at `at` (unix seconds) with `secret`, as Slack signs it.
async fn click(
    url: &str,
    action_id: &str,
    alert_id: i64,
    secret: &str,
    at: i64,
) -> reqwest::StatusCode {
    // Slack's block_actions payload as it sends it, whole: the app, team, channel, the message
    // clicked (its blocks), the state, the trigger, the response URL.
    let payload = serde_json::json!({
        "type": "block_actions",
        "user": {"id": "U0A1B2C3", "username": "ana", "name": "ana", "team_id": "T000"},
        "api_app_id": "A0APP",
        "token": "verification-token-deprecated",
        "container": {"type": "message", "message_ts": format!("{at}.000200"),
                      "channel_id": "C0COST", "is_ephemeral": false},
        "trigger_id": format!("{at}.1.abcdef"),
        "team": {"id": "T000", "domain": "example"},
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": {"id": "C0COST", "name": "payments-cost"},
        "message": {"type": "message", "subtype": "bot_message", "text": "Cost spike",
                    "ts": format!("{at}.000200"), "bot_id": "B0BOT",
                    "blocks": [{"type": "actions", "block_id": "costsplit_feedback", "elements": []}]},
        "state": {"values": {}},
        "response_url": "https://hooks.slack.com/actions/T000/1/xyz",
        "actions": [{"action_id": action_id, "block_id": "costsplit_feedback",
                     "text": {"type": "plain_text", "text": "Expected", "emoji": true},
                     "value": alert_id.to_string(), "type": "button",
                     "action_ts": format!("{at}.000100")}],
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{at}:{body}").as_bytes());
    let signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    reqwest::Client::new()
        .post(format!("{url}/slack/actions"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Slack-Request-Timestamp", at.to_string())
        .header("X-Slack-Signature", signature)
        .body(body)
        .send()
        .await
        .expect("answer")
        .status()
}

async fn marked_expected_in_slack_is_stored_listed_and_not_sent_again(kind: Kind) {
    let t = TestStore::new(kind).await;
    let r = rules(&[("r.toml", RULES)]);
    seed(&t.store, &["search-api"]).await;
    assert_eq!(check(&t.store, &r).await, 1);
    let alert = t.store.list_alerts(None).await.unwrap().remove(0);

    // Sent with the buttons (a signing secret is configured).
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    let settings = SlackSettings {
        feedback_buttons: true,
        ..crate::alerts::settings(&slack, true, false)
    };
    let summary = jobs::deliver_alerts(
        &t.store,
        &settings,
        costsplit::clock::Clock::System,
        &costsplit::clock::Shutdown::never(),
    )
    .await
    .unwrap();
    assert_eq!(summary.sent, 1);
    let sent: serde_json::Value =
        serde_json::from_slice(&slack.received_requests().await.unwrap()[0].body).unwrap();
    let buttons = sent["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["block_id"] == "costsplit_feedback")
        .expect("the feedback buttons")["elements"]
        .clone();
    assert_eq!(buttons[0]["action_id"], "costsplit_mark_expected");
    assert_eq!(buttons[0]["value"], alert.id.to_string());
    assert_eq!(buttons[1]["action_id"], "costsplit_mark_planned");

    // Slack's request reaches the server: forged and stale ones are refused, nothing stored.
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let served = serve(
        dir.path(),
        &t.store_url(),
        &listen,
        &[("COSTSPLIT_SLACK_SIGNING_SECRET", SIGNING_SECRET)],
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let expected = "costsplit_mark_expected";
    assert_eq!(
        click(&served.url, expected, alert.id, "not-the-secret", now).await,
        401
    );
    assert_eq!(
        click(&served.url, expected, alert.id, SIGNING_SECRET, now - 600).await,
        401
    );
    assert!(t.store.alert_marks().await.unwrap().is_empty());
    assert_eq!(
        click(&served.url, expected, alert.id, SIGNING_SECRET, now).await,
        200
    );
    drop(served);
    let marks = t.store.alert_marks().await.unwrap();
    assert_eq!(marks.len(), 1);
    assert_eq!(
        (marks[0].mark.as_str(), marks[0].marked_by.as_str()),
        ("expected", "ana")
    );
    assert_eq!(marks[0].anomaly, "spike|search-api|2025-03-21");

    // `alerts list` shows it.
    let out = costsplit(dir.path())
        .store(&t.store_url())
        .run(&["alerts", "list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[marked expected by ana at "), "{stdout}");

    // The anomaly grows the next day: detected again, not enqueued, and the sent alert stays.
    let mut detected = jobs::detect_alerts(&t.store, &r, Some(day("2025-03-21")), None)
        .await
        .unwrap();
    let mut again = detected.alerts[0].clone();
    again.period = "2025-03-22".into();
    detected.alerts.push(again);
    let result = jobs::enqueue_alerts(&t.store, &r, &detected, NOW)
        .await
        .unwrap();
    assert_eq!((result.inserted, result.suppressed), (0, 2), "{result:?}");
    assert!(result.resolved.is_empty(), "{result:?}");
    let rows = t.store.list_alerts(None).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, MessageState::Sent);
}

#[tokio::test]
async fn an_alert_marked_expected_in_slack_is_stored_listed_and_not_sent_again_on_both_stores() {
    for kind in BOTH {
        marked_expected_in_slack_is_stored_listed_and_not_sent_again(kind).await;
    }
}
