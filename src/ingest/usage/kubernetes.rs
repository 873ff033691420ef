//! What each service requests (or uses) of a Kubernetes cluster without AWS's split cost
//! allocation data, from the Prometheus the cluster already has: kube-state-metrics'
//! `kube_pod_container_resource_requests` and cAdvisor's `container_cpu_usage_seconds_total`
//! and `container_memory_working_set_bytes`, per namespace or pod label, averaged over the
//! day. CPU and memory are weighed as AWS weighs them (9 per vCPU to 1 per GiB, configurable),
//! so a member's value is its vCPU-equivalents: `9 × cores + 1 × GiB`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::measured::Measured;
use super::prometheus::{measured, sums_by_label};
use crate::rules::{KubeBasis, KubeQuery};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The PromQL of one resource's daily average per member: requests or usage.
pub fn daily_query(q: &KubeQuery, resource: &str, usage: bool) -> String {
    let sel = if q.selector.trim().is_empty() {
        String::new()
    } else {
        format!(",{}", q.selector.trim())
    };
    let series = match (resource, usage) {
        (_, false) => {
            format!(r#"kube_pod_container_resource_requests{{resource="{resource}"{sel}}}"#)
        }
        ("cpu", true) => {
            format!(r#"rate(container_cpu_usage_seconds_total{{container!=""{sel}}}[5m])"#)
        }
        (_, true) => format!(r#"container_memory_working_set_bytes{{container!=""{sel}}}"#),
    };
    let label = q.member_label();
    let grouped = match &q.label {
        None => format!("sum by (namespace) ({series})"),
        Some(_) => format!(
            "sum by ({label}) (({series}) * on (namespace, pod) group_left ({label}) max by (namespace, pod, {label}) (kube_pod_labels{{{}}}))",
            q.selector.trim()
        ),
    };
    format!("avg_over_time(({grouped})[{}:{}])", q.window, q.step)
}

pub(super) async fn measure(
    url: &str,
    token: Option<&str>,
    q: &KubeQuery,
    at: DateTime<Utc>,
    timeout: Duration,
) -> Result<Measured, String> {
    let label = q.member_label();
    let mut notes = Vec::new();
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    for (resource, weight, scale) in [
        ("cpu", f64::from(q.cpu_weight), 1.0),
        ("memory", f64::from(q.memory_weight), GIB),
    ] {
        let mut per: BTreeMap<String, f64> = BTreeMap::new();
        for usage in [false, true] {
            let wanted = match q.basis {
                KubeBasis::Requests => !usage,
                KubeBasis::Usage => usage,
                KubeBasis::Max => true,
            };
            if !wanted {
                continue;
            }
            let query = daily_query(q, resource, usage);
            let (sums, more) = sums_by_label(url, token, &query, &label, at, timeout).await?;
            notes.extend(more);
            for (member, value) in sums {
                let slot = per.entry(member).or_insert(0.0);
                *slot = slot.max(value / scale);
            }
        }
        for (member, value) in per {
            *totals.entry(member).or_default() += weight * value;
        }
    }
    Ok(measured(totals, notes))
}
