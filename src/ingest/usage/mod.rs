//! Live usage sources: each measures what the services of a shared system use on one day
//! (PostgreSQL bytes per schema or table, Redis keys or memory per key prefix, a Prometheus
//! query's series, CloudWatch metrics), and the rules' map turns what it measured into
//! per-service samples. Sources read and never write the store. Every probe runs under the
//! source's timeout, and what they return never holds a secret: errors are redacted of the
//! DSN, URL or token they connected with.

mod cloudwatch;
pub mod kubernetes;
mod measured;
mod postgres;
mod prometheus;
mod redis;

use chrono::{DateTime, NaiveDate, Utc};

use crate::ingest::cost_explorer::AwsSettings;
use crate::model::UsageSample;
use crate::rules::{SecretRef, SourceKind, UsageSource};
use measured::Measured;
pub use measured::MAX_SAMPLE;

/// Why a source could not be measured: one readable line, redacted of every secret the
/// source connected with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceFailed(pub String);

/// The outcome of collecting one source for one day.
#[derive(Debug)]
pub struct Collected {
    pub samples: Vec<UsageSample>,
    /// Notes for the run record: members mapped to no service (and their share), budgets.
    pub notes: Vec<String>,
}

/// What collection needs besides the source: the AWS settings (CloudWatch) and the time a
/// day's measurement is taken at (the end of the day, or now for today).
pub struct Context<'a> {
    pub aws: Option<&'a AwsSettings>,
    pub at: DateTime<Utc>,
}

/// Measures `source` for `day`, within its timeout. The error is one readable line without
/// secrets.
pub async fn collect(
    source: &UsageSource,
    day: NaiveDate,
    ctx: &Context<'_>,
) -> Result<Collected, SourceFailed> {
    let measured = match tokio::time::timeout(source.timeout, measure(source, day, ctx)).await {
        Ok(result) => result.map_err(SourceFailed)?,
        Err(_) => {
            return Err(SourceFailed(format!(
                "no answer within {} s (timeout_seconds); nothing was recorded for {day}",
                source.timeout.as_secs()
            )))
        }
    };
    let mut notes = measured.notes;
    let mut samples = Vec::new();
    let mut unmapped = Vec::new();
    for (member, value) in measured.members {
        let service = source.map.service_of(&member).unwrap_or("").to_string();
        if service.is_empty() {
            unmapped.push(member.clone());
        }
        samples.push(UsageSample {
            day,
            source: source.name.clone(),
            member,
            service,
            value,
            unit: source.unit.clone(),
        });
    }
    if !unmapped.is_empty() {
        let shown: Vec<&str> = unmapped.iter().take(10).map(String::as_str).collect();
        notes.push(format!(
            "{} measured member(s) map to no service and are left out of the split: {}{}",
            unmapped.len(),
            shown.join(", "),
            if unmapped.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        ));
    }
    Ok(Collected { samples, notes })
}

async fn measure(
    source: &UsageSource,
    day: NaiveDate,
    ctx: &Context<'_>,
) -> Result<Measured, String> {
    match &source.kind {
        SourceKind::Postgres { dsn, by } => {
            let dsn = dsn.read().map_err(|e| e.to_string())?;
            postgres::measure(&dsn, *by, source.timeout)
                .await
                .map_err(|e| redact(&e, &[&dsn]))
        }
        SourceKind::Redis {
            url,
            measure,
            max_keys,
            scan_count,
            memory_samples,
        } => {
            let url = url.read().map_err(|e| e.to_string())?;
            let budget = redis::Budget {
                max_keys: *max_keys,
                scan_count: *scan_count,
                memory_samples: *memory_samples,
            };
            let prefixes: Vec<&str> = source.map.keys().collect();
            redis::measure(&url, *measure, &prefixes, budget)
                .await
                .map_err(|e| redact(&e, &[&url]))
        }
        SourceKind::Prometheus {
            url,
            token,
            query,
            label,
        } => {
            let (url, token) = prometheus_access(url, token.as_ref())?;
            prometheus::measure(&url, token.as_deref(), query, label, ctx.at, source.timeout)
                .await
                .map_err(|e| redact(&e, &[url.as_str(), token.as_deref().unwrap_or(&url)]))
        }
        SourceKind::Kubernetes { url, token, query } => {
            let (url, token) = prometheus_access(url, token.as_ref())?;
            kubernetes::measure(&url, token.as_deref(), query, ctx.at, source.timeout)
                .await
                .map_err(|e| redact(&e, &[url.as_str(), token.as_deref().unwrap_or(&url)]))
        }
        SourceKind::CloudWatch(query) => {
            let aws = ctx.aws.ok_or_else(|| {
                "a cloudwatch source needs the [aws] table in costsplit.toml (region, credentials)"
                    .to_string()
            })?;
            cloudwatch::measure(aws, query, &source.map, day).await
        }
    }
}

/// A Prometheus' URL and bearer token, read from where the rules name them.
fn prometheus_access(
    url: &SecretRef,
    token: Option<&SecretRef>,
) -> Result<(String, Option<String>), String> {
    let url = url.read().map_err(|e| e.to_string())?;
    let token = token
        .map(SecretRef::read)
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok((url, token))
}

/// `message` with every secret, and the password of any secret URL, replaced by `***`.
fn redact(message: &str, secrets: &[&str]) -> String {
    let mut out = message.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "***");
        if let Some(password) = url_password(secret) {
            out = out.replace(&password, "***");
        }
    }
    out
}

/// The password of `scheme://user:password@host...`, if it has one.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty()).then(|| password.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_url_passwords_are_redacted() {
        let dsn = "postgres://app:s3cret-pw@db.internal:5432/orders";
        let message =
            format!("error connecting to {dsn}: password authentication failed for s3cret-pw");
        let redacted = redact(&message, &[dsn]);
        assert!(!redacted.contains("s3cret-pw"), "{redacted}");
        assert!(redacted.contains("***"));
        assert_eq!(
            url_password("redis://:tok@cache:6379/0").as_deref(),
            Some("tok")
        );
        assert_eq!(url_password("redis://cache:6379"), None);
    }
}
