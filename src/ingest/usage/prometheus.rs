//! An instant PromQL query over Prometheus' HTTP API (`/api/v1/query`), evaluated at the
//! day's measurement time; each series of the result is a member named by one of its
//! labels (e.g. `sum by (topic) (kafka_log_log_size)` for Kafka partition bytes per topic).
//! Series with the same label value are added; NaN, infinite or negative values are refused
//! member by member with a note.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::measured::{decimal_value, Measured};

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct Series {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

pub(super) async fn measure(
    url: &str,
    token: Option<&str>,
    query: &str,
    label: &str,
    at: DateTime<Utc>,
    timeout: Duration,
) -> Result<Measured, String> {
    let (sums, notes) = sums_by_label(url, token, query, label, at, timeout).await?;
    Ok(measured(sums, notes))
}

/// Summed values per member, as exact decimals where they are usable (the rest noted).
pub(super) fn measured(sums: BTreeMap<String, f64>, mut notes: Vec<String>) -> Measured {
    let mut members = Vec::new();
    for (member, value) in sums {
        match decimal_value(value) {
            Some(v) => members.push((member, v)),
            None => notes.push(format!(
                "`{member}`: value {value} is not usable (NaN, infinite, negative or above {:e}); left out",
                super::measured::MAX_SAMPLE
            )),
        }
    }
    Measured { members, notes }
}

/// An instant query's series summed per value of `label`, with notes on what was left out.
pub(super) async fn sums_by_label(
    url: &str,
    token: Option<&str>,
    query: &str,
    label: &str,
    at: DateTime<Utc>,
    timeout: Duration,
) -> Result<(BTreeMap<String, f64>, Vec<String>), String> {
    // The caller's timeout (`usage::collect`) owns the message; the client's own is a
    // backstop a moment later, so which fires first never depends on the scheduler.
    let client = reqwest::Client::builder()
        .timeout(timeout + Duration::from_secs(1))
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let endpoint = format!("{}/api/v1/query", url.trim_end_matches('/'));
    // Milliseconds: a query at a whole second can fall just before a scrape seen a moment ago.
    let time = format!("{:.3}", at.timestamp_millis() as f64 / 1000.0);
    let mut request = client
        .get(&endpoint)
        .query(&[("query", query), ("time", time.as_str())]);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("cannot reach Prometheus: {}", e.without_url()))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type")
        .chars()
        .take(80)
        .collect::<String>();
    let body = response
        .text()
        .await
        .map_err(|e| format!("reading Prometheus' answer: {}", e.without_url()))?;
    // A body that is not Prometheus' JSON is not kept: a proxy or login page may echo the
    // request's headers, credentials included (in any encoding).
    let answer: Answer = serde_json::from_str(&body).map_err(|_| {
        format!(
            "Prometheus answered HTTP {status} with {} bytes of {content_type} that are not its API's JSON; check the url (is a proxy or a login page answering there?)",
            body.len()
        )
    })?;
    if answer.status != "success" {
        return Err(format!(
            "Prometheus refused the query (HTTP {status}, {}): {}",
            answer.error_type.unwrap_or_default(),
            answer.error.unwrap_or_default()
        ));
    }
    let data = answer
        .data
        .ok_or_else(|| "Prometheus answered success without data".to_string())?;
    if data.result_type != "vector" {
        return Err(format!(
            "the query gives a {}, not an instant vector; aggregate it, e.g. sum by ({label}) (...)",
            data.result_type
        ));
    }
    let series: Vec<Series> = serde_json::from_value(data.result)
        .map_err(|e| format!("Prometheus' result is not a vector of series: {e}"))?;
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    let mut notes = Vec::new();
    let mut unlabelled = 0;
    for s in series {
        let Some(member) = s.metric.get(label) else {
            unlabelled += 1;
            continue;
        };
        match s.value.1.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => *sums.entry(member.clone()).or_default() += v,
            _ => notes.push(format!(
                "`{member}`: value `{}` is not a non-negative number; left out",
                s.value.1
            )),
        }
    }
    if unlabelled > 0 {
        notes.push(format!(
            "{unlabelled} series without the label `{label}` were left out; aggregate by it, e.g. sum by ({label}) (...)"
        ));
    }
    Ok((sums, notes))
}
