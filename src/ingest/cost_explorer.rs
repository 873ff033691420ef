//! AWS Cost Explorer as a billing source. One `GetCostAndUsage` request per account and window
//! (DAILY, up to two group-bys, the effective and billed metrics together), every
//! `NextPageToken` followed, each group turned into one daily fact. Reads only: the sync job
//! (`jobs::sync_billing`) chooses the window and writes the store.
//!
//! Every request is billed by AWS ($0.01), so requests are counted against a per-run cap
//! before they are sent. Throttling (`LimitExceededException`, throttling errors) and 5xx
//! answers are retried by the AWS SDK's standard retry (exponential backoff with jitter, a
//! bounded number of attempts).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_costexplorer::error::DisplayErrorContext;
use aws_sdk_costexplorer::types::{
    DateInterval, Granularity, Group, GroupDefinition, GroupDefinitionType, ResultByTime,
};
use aws_sdk_costexplorer::Client;
use chrono::{Datelike, Days, NaiveDate};
use serde::Deserialize;

use super::line::RawFact;
use crate::model::{Fact, Key};
use crate::money::Nanos;

/// What AWS charges per Cost Explorer API request.
pub const COST_PER_CALL: Nanos = Nanos(10_000_000);

/// What `calls` requests cost.
pub fn calls_cost(calls: i64) -> Nanos {
    Nanos(COST_PER_CALL.0 * i128::from(calls))
}

/// Amounts are read at 1e-11, like billing files, and rounded to nano-units once per day.
const DECIMALS: u32 = 11;

/// The `[aws]` section of `costsplit.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// Cost Explorer's region (its endpoint is in us-east-1).
    #[serde(default = "default_region")]
    pub region: String,
    /// Another endpoint (a test stand-in, a VPC endpoint). The standard `AWS_ENDPOINT_URL`
    /// environment variable works too.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Up to two of `TAG:<key>`, `DIMENSION:SERVICE`, `DIMENSION:LINKED_ACCOUNT`. Default: the
    /// first service tag key of the rules and `DIMENSION:SERVICE`.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Cost Explorer metric stored as the effective cost: `AmortizedCost` (default) or
    /// `NetAmortizedCost`.
    #[serde(default = "default_effective_metric")]
    pub effective_metric: String,
    /// Metric stored as the billed cost: `UnblendedCost` (default) or `NetUnblendedCost`.
    #[serde(default = "default_billed_metric")]
    pub billed_metric: String,
    /// Complete days before today that every sync fetches again (AWS restates them).
    #[serde(default = "default_restate_days")]
    pub restate_days: u32,
    /// Until this day of the month, the whole previous month is fetched again too (its bill is
    /// not final before).
    #[serde(default = "default_final_day")]
    pub month_final_day: u32,
    /// Requests (pages) one run may make, over all accounts.
    #[serde(default = "default_max_calls")]
    pub max_calls_per_run: u32,
    /// Attempts per request, including the first, on throttling and 5xx answers.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The first retry's backoff ceiling; it doubles per attempt, with full jitter, up to 20 s.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// The accounts to sync, one after another.
    #[serde(default)]
    pub accounts: Vec<AwsAccount>,
}

/// One payer or member account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsAccount {
    /// The account id; its facts are stored under it.
    pub id: String,
    /// A profile of the shared AWS config/credentials files (default: the standard chain).
    #[serde(default)]
    pub profile: Option<String>,
    /// A role to assume (with the profile's or the chain's credentials).
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
}

fn default_region() -> String {
    "us-east-1".to_string()
}
fn default_effective_metric() -> String {
    "AmortizedCost".to_string()
}
fn default_billed_metric() -> String {
    "UnblendedCost".to_string()
}
fn default_restate_days() -> u32 {
    3
}
fn default_final_day() -> u32 {
    7
}
fn default_max_calls() -> u32 {
    20
}
fn default_max_attempts() -> u32 {
    5
}
fn default_initial_backoff_ms() -> u64 {
    1000
}

impl AwsSettings {
    /// Checks what serde cannot: the group-bys and metrics. Messages say what to write.
    pub fn validate(&self) -> Result<(), AwsSettingError> {
        if self.group_by.len() > 2 {
            return Err(AwsSettingError::TooManyGroupBys(self.group_by.len()));
        }
        for key in &self.group_by {
            key.parse::<GroupKey>()?;
        }
        const EFFECTIVE: [&str; 2] = ["AmortizedCost", "NetAmortizedCost"];
        const BILLED: [&str; 2] = ["UnblendedCost", "NetUnblendedCost"];
        if !EFFECTIVE.contains(&self.effective_metric.as_str()) {
            return Err(AwsSettingError::EffectiveMetric(
                self.effective_metric.clone(),
            ));
        }
        if !BILLED.contains(&self.billed_metric.as_str()) {
            return Err(AwsSettingError::BilledMetric(self.billed_metric.clone()));
        }
        if self.max_attempts == 0 {
            return Err(AwsSettingError::MaxAttempts);
        }
        Ok(())
    }

    /// The group-bys, with the default for an empty list.
    pub fn group_keys(&self, service_tag: &str) -> Result<Vec<GroupKey>, AwsSettingError> {
        if self.group_by.is_empty() {
            return Ok(vec![
                GroupKey::Tag(service_tag.to_string()),
                GroupKey::Service,
            ]);
        }
        self.group_by.iter().map(|k| k.parse()).collect()
    }

    /// The days a sync fetches on `today` (UTC): the last `restate_days` complete days, and
    /// the whole previous month until `month_final_day`. Today itself is incomplete and is
    /// left for tomorrow's sync.
    pub fn restatement_window(&self, today: NaiveDate) -> (NaiveDate, NaiveDate) {
        restatement_window(today, self.restate_days, self.month_final_day)
    }
}

/// The days a provider may still revise on `today`: the last `restate_days` (at least one)
/// complete days, and the whole previous month until its `month_final_day`.
pub fn restatement_window(
    today: NaiveDate,
    restate_days: u32,
    month_final_day: u32,
) -> (NaiveDate, NaiveDate) {
    let to = today - Days::new(1);
    let mut from = today - Days::new(u64::from(restate_days.max(1)));
    if today.day() <= month_final_day {
        let first = today.with_day(1).expect("day 1 exists");
        let previous = (first - Days::new(1)).with_day(1).expect("day 1 exists");
        from = from.min(previous);
    }
    (from, to)
}

/// A Cost Explorer group-by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupKey {
    /// A cost allocation tag; the group key comes back as `<key>$<value>`.
    Tag(String),
    /// `DIMENSION:SERVICE`: the provider service name, e.g. `Amazon Relational Database Service`.
    Service,
    /// `DIMENSION:LINKED_ACCOUNT`: the member account, stored as the fact's sub-account.
    LinkedAccount,
}

/// An `[aws]` setting Cost Explorer cannot take, said as what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsSettingError {
    #[error("[aws] group_by has {0} entries; Cost Explorer takes at most 2")]
    TooManyGroupBys(usize),
    #[error("[aws] group_by `{0}`: use `TAG:<tag key>`, `DIMENSION:SERVICE` or `DIMENSION:LINKED_ACCOUNT`")]
    GroupBy(String),
    #[error("[aws] effective_metric `{0}`: use one of AmortizedCost, NetAmortizedCost")]
    EffectiveMetric(String),
    #[error("[aws] billed_metric `{0}`: use one of UnblendedCost, NetUnblendedCost")]
    BilledMetric(String),
    #[error("[aws] max_attempts must be at least 1")]
    MaxAttempts,
}

impl FromStr for GroupKey {
    type Err = AwsSettingError;
    fn from_str(text: &str) -> Result<GroupKey, AwsSettingError> {
        match text.split_once(':') {
            Some((kind, key)) if kind.eq_ignore_ascii_case("TAG") && !key.is_empty() => {
                Ok(GroupKey::Tag(key.to_string()))
            }
            Some((kind, "SERVICE")) if kind.eq_ignore_ascii_case("DIMENSION") => {
                Ok(GroupKey::Service)
            }
            Some((kind, "LINKED_ACCOUNT")) if kind.eq_ignore_ascii_case("DIMENSION") => {
                Ok(GroupKey::LinkedAccount)
            }
            _ => Err(AwsSettingError::GroupBy(text.to_string())),
        }
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupKey::Tag(key) => write!(f, "TAG:{key}"),
            GroupKey::Service => f.write_str("DIMENSION:SERVICE"),
            GroupKey::LinkedAccount => f.write_str("DIMENSION:LINKED_ACCOUNT"),
        }
    }
}

impl GroupKey {
    fn definition(&self) -> GroupDefinition {
        match self {
            GroupKey::Tag(key) => GroupDefinition::builder()
                .r#type(GroupDefinitionType::Tag)
                .key(key)
                .build(),
            GroupKey::Service => GroupDefinition::builder()
                .r#type(GroupDefinitionType::Dimension)
                .key("SERVICE")
                .build(),
            GroupKey::LinkedAccount => GroupDefinition::builder()
                .r#type(GroupDefinitionType::Dimension)
                .key("LINKED_ACCOUNT")
                .build(),
        }
    }
}

/// One request's parameters: an account's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub account: String,
    /// First day.
    pub from: NaiveDate,
    /// Last day (inclusive; Cost Explorer's end is exclusive).
    pub to: NaiveDate,
    pub group_by: Vec<GroupKey>,
    pub effective_metric: String,
    pub billed_metric: String,
}

/// Requests left in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallBudget {
    pub made: u32,
    pub max: u32,
}

/// Why a window could not be fetched. Nothing of the window may be stored.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("stopped at the call cap: max_calls_per_run = {max} requests were made in this run and the window needs more; raise max_calls_per_run in [aws] or sync a shorter window (--from/--to)")]
    CallCap { max: u32 },
    #[error("Cost Explorer failed: {0}")]
    Api(String),
    #[error("Cost Explorer answered something costsplit cannot read: {0}")]
    BadAnswer(String),
}

/// A Cost Explorer client for one account: the standard credential chain (or the profile),
/// the role assumed if configured, the endpoint override, and the SDK's standard retry.
pub async fn client(settings: &AwsSettings, account: &AwsAccount) -> Client {
    let config = super::aws::sdk_config(super::aws::Access {
        region: &settings.region,
        endpoint_url: settings.endpoint_url.as_deref(),
        profile: account.profile.as_deref(),
        role_arn: account.role_arn.as_deref(),
        external_id: account.external_id.as_deref(),
        max_attempts: settings.max_attempts,
        initial_backoff: Duration::from_millis(settings.initial_backoff_ms),
    })
    .await;
    Client::new(&config)
}

/// Fetches every page of the query's window. Each request is counted in `budget` before it
/// is sent; a window that would exceed the cap is abandoned (its pages are dropped).
pub async fn fetch(
    client: &Client,
    query: &Query,
    budget: &mut CallBudget,
) -> Result<Vec<ResultByTime>, FetchError> {
    let interval = DateInterval::builder()
        .start(query.from.to_string())
        .end((query.to + Days::new(1)).to_string())
        .build()
        .map_err(|e| FetchError::Api(e.to_string()))?;
    let mut results = Vec::new();
    let mut token: Option<String> = None;
    loop {
        if budget.made >= budget.max {
            return Err(FetchError::CallCap { max: budget.max });
        }
        budget.made += 1;
        let mut request = client
            .get_cost_and_usage()
            .time_period(interval.clone())
            .granularity(Granularity::Daily)
            .metrics(&query.effective_metric)
            .set_next_page_token(token.take());
        if query.billed_metric != query.effective_metric {
            request = request.metrics(&query.billed_metric);
        }
        for key in &query.group_by {
            request = request.group_by(key.definition());
        }
        let page = request
            .send()
            .await
            .map_err(|e| FetchError::Api(DisplayErrorContext(&e).to_string()))?;
        results.extend(page.results_by_time().iter().cloned());
        match page.next_page_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(results),
        }
    }
}

/// Turns Cost Explorer results into facts at 1e-11 (not yet rounded). Untagged cost (the
/// group key `<tag>$` with an empty value) becomes facts without that tag, so pools and the
/// `unallocated` line can take it. Days outside the query's window are refused.
pub fn to_raw_facts(query: &Query, results: &[ResultByTime]) -> Result<Vec<RawFact>, FetchError> {
    let mut facts = Vec::new();
    for result in results {
        let day = result_day(query, result)?;
        for group in result.groups() {
            facts.push(group_fact(query, day, result.estimated(), group)?);
        }
    }
    Ok(facts)
}

fn bad(message: String) -> FetchError {
    FetchError::BadAnswer(message)
}

/// The one day a DAILY result is for, inside the query's window.
fn result_day(query: &Query, result: &ResultByTime) -> Result<NaiveDate, FetchError> {
    let start = result
        .time_period()
        .map(|p| p.start())
        .ok_or_else(|| bad("a result without a time period".to_string()))?;
    let day = NaiveDate::parse_from_str(start.get(..10).unwrap_or(start), "%Y-%m-%d")
        .map_err(|_| bad(format!("time period start `{start}` is not a day")))?;
    // costsplit asks for DAILY results: a longer period (a MONTHLY answer) cannot be
    // stored as one day's cost.
    let end = result.time_period().map(|p| p.end()).unwrap_or_default();
    let next = NaiveDate::parse_from_str(end.get(..10).unwrap_or(end), "%Y-%m-%d").ok();
    if next != day.succ_opt() {
        return Err(bad(format!(
            "a result for {start}..{end}, not one day; costsplit asks for DAILY granularity and stores days"
        )));
    }
    if day < query.from || day > query.to {
        return Err(bad(format!(
            "a result for {day}, outside the requested window {}..{}",
            query.from, query.to
        )));
    }
    Ok(day)
}

/// One group of a day's result as a fact: its keys as tags, service or account, its two
/// metrics as the amounts.
fn group_fact(
    query: &Query,
    day: NaiveDate,
    estimated: bool,
    group: &Group,
) -> Result<RawFact, FetchError> {
    let mut fact = Fact {
        day,
        billing_period: format!("{:04}-{:02}", day.year(), day.month()).into(),
        billing_account: query.account.as_str().into(),
        sub_account: query.account.as_str().into(),
        provider: "AWS".into(),
        provider_service: Key::default(),
        resource_id: Key::default(),
        charge_category: "Usage".into(),
        tags: Default::default(),
        currency: Key::default(),
        effective: Nanos::ZERO,
        billed: Nanos::ZERO,
        list: Nanos::ZERO,
        contracted: Nanos::ZERO,
        line_count: 1,
        estimated,
    };
    // A group whose keys do not match the request cannot be attributed: refuse the
    // answer rather than guess which key is which.
    if group.keys().len() != query.group_by.len() {
        return Err(bad(format!(
            "{day}: a group with keys {:?} for a request grouped by {} key(s)",
            group.keys(),
            query.group_by.len()
        )));
    }
    for (key, value) in query.group_by.iter().zip(group.keys()) {
        match key {
            GroupKey::Tag(tag) => {
                let value = value
                    .split_once('$')
                    .map_or(value.as_str(), |(_, v)| v)
                    .to_string();
                if !value.is_empty() {
                    Arc::make_mut(&mut fact.tags).insert(tag.clone(), value);
                }
            }
            GroupKey::Service => {
                if value == "Tax" {
                    fact.charge_category = "Tax".into();
                }
                fact.provider_service = value.as_str().into();
            }
            GroupKey::LinkedAccount => fact.sub_account = value.as_str().into(),
        }
    }
    let (effective, effective_unit) = metric(day, group, &query.effective_metric)?;
    let (billed, billed_unit) = metric(day, group, &query.billed_metric)?;
    fact.currency = match (effective_unit.as_str(), billed_unit.as_str()) {
        ("", "") => "USD".into(),
        (unit, "") | ("", unit) => unit.into(),
        (a, b) if a == b => a.into(),
        (a, b) => {
            return Err(bad(format!(
                "{day} {:?}: {} is in {a} but {} is in {b}",
                group.keys(),
                query.effective_metric,
                query.billed_metric
            )))
        }
    };
    // Cost Explorer has no list or contracted price: the billed cost, as FOCUS asks
    // of a charge without them.
    Ok(RawFact {
        fact,
        amounts: [effective, billed, billed, billed],
        split: None,
    })
}

/// One metric of a group: its amount at 1e-11 and its unit (upper case, "" when absent).
fn metric(day: NaiveDate, group: &Group, name: &str) -> Result<(i128, String), FetchError> {
    // Cost Explorer returns every metric asked for; a missing one is not zero.
    let value = group.metrics().and_then(|m| m.get(name));
    let text = value.and_then(|v| v.amount()).ok_or_else(|| {
        bad(format!(
            "{day} {:?}: the answer has no {name} amount",
            group.keys()
        ))
    })?;
    let amount = parse_amount(text)
        .map_err(|problem| bad(format!("{day} {:?}: {name} amount {problem}", group.keys())))?;
    let unit = value
        .and_then(|v| v.unit())
        .unwrap_or("")
        .trim()
        .to_ascii_uppercase();
    Ok((amount, unit))
}

/// A Cost Explorer amount (`"12.3456789"`, sometimes `"1.2E-7"`) at 1e-11.
fn parse_amount(text: &str) -> Result<i128, String> {
    crate::money::parse_line_amount(text.as_bytes(), DECIMALS).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_costexplorer::types::{Group, MetricValue};

    fn settings() -> AwsSettings {
        toml::from_str("").expect("defaults")
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("day")
    }

    #[test]
    fn the_window_covers_recent_days_and_the_open_previous_month() {
        let s = settings();
        assert_eq!(
            s.restatement_window(day("2026-11-22")),
            (day("2026-11-19"), day("2026-11-21"))
        );
        assert_eq!(
            s.restatement_window(day("2026-11-07")),
            (day("2026-10-01"), day("2026-11-06"))
        );
        assert_eq!(
            s.restatement_window(day("2026-01-02")),
            (day("2025-12-01"), day("2026-01-01"))
        );
    }

    #[test]
    fn amounts_parse_exactly_including_exponents() {
        assert_eq!(parse_amount("12.5"), Ok(1_250_000_000_000));
        assert_eq!(parse_amount("1.2E-7"), Ok(12_000));
        assert_eq!(parse_amount("-3e2"), Ok(-30_000_000_000_000));
        assert_eq!(parse_amount("1e-40"), Ok(0));
        assert!(parse_amount("abc").is_err());
    }

    #[test]
    fn untagged_groups_become_untagged_facts() {
        let query = Query {
            account: "111".to_string(),
            from: day("2026-11-01"),
            to: day("2026-11-01"),
            group_by: vec![GroupKey::Tag("service".to_string()), GroupKey::Service],
            effective_metric: "AmortizedCost".to_string(),
            billed_metric: "UnblendedCost".to_string(),
        };
        let money = |a: &str| MetricValue::builder().amount(a).unit("USD").build();
        let result = ResultByTime::builder()
            .time_period(
                DateInterval::builder()
                    .start("2026-11-01")
                    .end("2026-11-02")
                    .build()
                    .expect("interval"),
            )
            .estimated(true)
            .groups(
                Group::builder()
                    .keys("service$")
                    .keys("Amazon Relational Database Service")
                    .metrics("AmortizedCost", money("10.5"))
                    .metrics("UnblendedCost", money("11"))
                    .build(),
            )
            .groups(
                Group::builder()
                    .keys("service$web")
                    .keys("Tax")
                    .metrics("AmortizedCost", money("1"))
                    .metrics("UnblendedCost", money("1"))
                    .build(),
            )
            .build();
        let facts = to_raw_facts(&query, std::slice::from_ref(&result)).expect("facts");
        assert_eq!(facts.len(), 2);
        assert!(facts[0].fact.tags.is_empty());
        assert!(facts[0].fact.estimated);
        assert_eq!(facts[0].amounts[0], 1_050_000_000_000);
        assert_eq!(facts[0].amounts[1], 1_100_000_000_000);
        assert_eq!(
            facts[1].fact.tags.get("service").map(String::as_str),
            Some("web")
        );
        assert_eq!(facts[1].fact.charge_category, "Tax");

        let mut outside = query.clone();
        outside.from = day("2026-11-02");
        outside.to = day("2026-11-03");
        let refused = to_raw_facts(&outside, std::slice::from_ref(&result))
            .expect_err("a day outside the window is refused");
        assert!(
            refused.to_string().contains("outside the requested window"),
            "{refused}"
        );

        // Answers that cannot be attributed are refused, never read as zero.
        let interval = DateInterval::builder()
            .start("2026-11-01")
            .end("2026-11-02")
            .build()
            .expect("interval");
        let one_key = ResultByTime::builder()
            .time_period(interval.clone())
            .groups(
                Group::builder()
                    .keys("service$web")
                    .metrics("AmortizedCost", money("1"))
                    .metrics("UnblendedCost", money("1"))
                    .build(),
            )
            .build();
        assert!(to_raw_facts(&query, &[one_key]).is_err());
        let no_billed = ResultByTime::builder()
            .time_period(interval)
            .groups(
                Group::builder()
                    .keys("service$web")
                    .keys("Amazon Simple Storage Service")
                    .metrics("AmortizedCost", money("1"))
                    .build(),
            )
            .build();
        let refused = to_raw_facts(&query, &[no_billed]).expect_err("a missing metric");
        assert!(
            refused.to_string().contains("no UnblendedCost amount"),
            "{refused}"
        );
    }

    #[test]
    fn group_keys_parse_and_default_to_the_service_tag() {
        let s = settings();
        assert_eq!(
            s.group_keys("app").expect("default"),
            vec![GroupKey::Tag("app".to_string()), GroupKey::Service]
        );
        assert!("DIMENSION:REGION".parse::<GroupKey>().is_err());
        let mut bad = settings();
        bad.group_by = vec!["TAG:a".into(), "TAG:b".into(), "DIMENSION:SERVICE".into()];
        assert!(bad.validate().is_err());
    }
}
