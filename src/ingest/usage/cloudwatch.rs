//! CloudWatch `GetMetricData` over any namespace and metric: one query per member (a value of
//! the member dimension, e.g. each `Topic` of `AWS/Kafka` `BytesInPerSec`), batched up to 500
//! per call, following `NextToken`, over the day in `period_seconds` steps with the rules'
//! statistic. Map keys that are patterns find their members with `ListMetrics`. A member with
//! no datapoints that day is not measured (so the pool falls back rather than bill it 0).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_cloudwatch::error::DisplayErrorContext;
use aws_sdk_cloudwatch::primitives::DateTime as AwsTime;
use aws_sdk_cloudwatch::types::{Dimension, DimensionFilter, Metric, MetricDataQuery, MetricStat};
use chrono::NaiveDate;

use super::measured::{decimal_value, Measured};
use crate::ingest::aws::{sdk_config, Access};
use crate::ingest::cost_explorer::AwsSettings;
use crate::rules::{CloudWatchQuery, ServiceMap};

/// GetMetricData takes at most 500 queries per call.
const QUERIES_PER_CALL: usize = 500;

pub(super) async fn measure(
    aws: &AwsSettings,
    query: &CloudWatchQuery,
    map: &ServiceMap,
    day: NaiveDate,
) -> Result<Measured, String> {
    let config = sdk_config(Access {
        region: query.region.as_deref().unwrap_or(&aws.region),
        endpoint_url: aws.endpoint_url.as_deref(),
        profile: None,
        role_arn: None,
        external_id: None,
        max_attempts: aws.max_attempts,
        initial_backoff: Duration::from_millis(aws.initial_backoff_ms),
    })
    .await;
    let client = aws_sdk_cloudwatch::Client::new(&config);
    let members: Vec<String> = members(&client, query, map).await?.into_iter().collect();
    let values = datapoints(&client, query, &members, day).await?;
    let mut measured = Measured::default();
    for (member, points) in values {
        let value = combine(&query.statistic, &points);
        match decimal_value(value) {
            Some(v) => measured.members.push((member, v)),
            None => measured.notes.push(format!(
                "`{member}`: {value} is not a non-negative number up to {:e}; left out",
                super::measured::MAX_SAMPLE
            )),
        }
    }
    let silent = members.len() - measured.members.len();
    if silent > 0 {
        measured
            .notes
            .push(format!("{silent} member(s) had no datapoints on {day}"));
    }
    Ok(measured)
}

/// The dimension values to ask for: the map's literal keys, and those of the metric's
/// listed dimension values that a pattern key maps.
async fn members(
    client: &aws_sdk_cloudwatch::Client,
    query: &CloudWatchQuery,
    map: &ServiceMap,
) -> Result<BTreeSet<String>, String> {
    let mut members: BTreeSet<String> = map
        .keys()
        .filter(|k| ServiceMap::is_literal(k))
        .map(str::to_string)
        .collect();
    if map.keys().any(|k| !ServiceMap::is_literal(k)) {
        let mut pages = client
            .list_metrics()
            .namespace(&query.namespace)
            .metric_name(&query.metric)
            .dimensions(DimensionFilter::builder().name(&query.dimension).build())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| format!("ListMetrics: {}", DisplayErrorContext(&e)))?;
            for metric in page.metrics() {
                for d in metric.dimensions() {
                    if d.name() == Some(query.dimension.as_str()) {
                        if let Some(value) = d.value().filter(|v| map.service_of(v).is_some()) {
                            members.insert(value.to_string());
                        }
                    }
                }
            }
        }
    }
    Ok(members)
}

/// The day's datapoints of each member that has any, asked 500 queries a call.
async fn datapoints(
    client: &aws_sdk_cloudwatch::Client,
    query: &CloudWatchQuery,
    members: &[String],
    day: NaiveDate,
) -> Result<BTreeMap<String, Vec<f64>>, String> {
    let start = day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    let end = start + chrono::Duration::days(1);
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for chunk in members.chunks(QUERIES_PER_CALL) {
        let queries: Vec<MetricDataQuery> = chunk
            .iter()
            .enumerate()
            .map(|(i, member)| metric_query(query, i, member))
            .collect();
        let mut token: Option<String> = None;
        loop {
            let out = client
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(AwsTime::from_secs(start.timestamp()))
                .end_time(AwsTime::from_secs(end.timestamp()))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| format!("GetMetricData: {}", DisplayErrorContext(&e)))?;
            for result in out.metric_data_results() {
                let Some(index) = result
                    .id()
                    .and_then(|id| id.strip_prefix('m'))
                    .and_then(|i| i.parse::<usize>().ok())
                    .filter(|i| *i < chunk.len())
                else {
                    continue;
                };
                if !result.values().is_empty() {
                    values
                        .entry(chunk[index].clone())
                        .or_default()
                        .extend(result.values());
                }
            }
            match out.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => break,
            }
        }
    }
    Ok(values)
}

fn metric_query(query: &CloudWatchQuery, index: usize, member: &str) -> MetricDataQuery {
    let mut dimensions = vec![Dimension::builder()
        .name(&query.dimension)
        .value(member)
        .build()];
    dimensions.extend(
        query
            .dimensions
            .iter()
            .map(|(name, value)| Dimension::builder().name(name).value(value).build()),
    );
    MetricDataQuery::builder()
        .id(format!("m{index}"))
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(&query.namespace)
                        .metric_name(&query.metric)
                        .set_dimensions(Some(dimensions))
                        .build(),
                )
                .period(query.period_seconds)
                .stat(&query.statistic)
                .build(),
        )
        .return_data(true)
        .build()
}

/// The day's value from its periods' values: added for Sum and SampleCount, else the mean,
/// largest or smallest.
fn combine(statistic: &str, points: &[f64]) -> f64 {
    match statistic {
        "Maximum" => points.iter().copied().fold(f64::MIN, f64::max),
        "Minimum" => points.iter().copied().fold(f64::MAX, f64::min),
        "Average" => points.iter().sum::<f64>() / points.len().max(1) as f64,
        _ => points.iter().sum(),
    }
}
