//! A per-team digest as Slack Block Kit messages: split into as many messages as Slack's
//! limits need (50 blocks, 3,000 characters a section), each line whole, never cut inside a
//! number. Text from billing data is escaped like every other mrkdwn text.

use serde_json::{json, Value};

use super::slack::{escape, truncate, url_component};
use crate::money::human;
use crate::report::diff::percent;
use crate::report::digest::{percent_of_ppb, sparkline, Digest, ServiceLine};

/// Service sections per message: with the header, summary and context blocks, well inside
/// Slack's 50 blocks.
pub const SERVICES_PER_MESSAGE: usize = 40;
/// Slack's limit for a section's text.
const MAX_SECTION: usize = 3000;
const MAX_HEADER: usize = 150;

fn share_text(p: &crate::report::digest::PoolShare, currency: &str) -> String {
    let ratio = percent_of_ppb(p.ratio_ppb);
    let of = if p.unit.is_empty() {
        String::new()
    } else {
        format!(" of {}", escape(&p.unit))
    };
    format!(
        "{} ({}: {ratio}{of}) {}",
        escape(&p.pool),
        escape(&p.method),
        human(p.amount, currency, false)
    )
}

/// One service's section text, within Slack's limit: pools that do not fit are counted, not cut.
fn service_text(s: &ServiceLine) -> String {
    let c = s.currency.as_str();
    let mut text = format!(
        "*{}*  {}  ({} {} vs previous)  `{}`",
        escape(&s.service),
        human(s.total, c, false),
        human(s.change(), c, true),
        percent(s.change(), s.previous),
        sparkline(&s.daily)
    );
    if let Some(requested) = s.requested_unused_text() {
        text.push_str(&format!("\n{}", escape(&requested)));
    }
    if !s.shared.is_empty() {
        let shared: crate::money::Nanos = s.shared.iter().map(|p| p.amount).sum();
        text.push_str(&format!("\nshared {}: ", human(shared, c, false)));
        for (i, p) in s.shared.iter().enumerate() {
            let part = share_text(p, c);
            // Room for this part, a separator and a closing "and N more" (bytes, which are
            // at least as many as Slack's characters).
            if text.len() + part.len() + 40 > MAX_SECTION {
                text.push_str(&format!("… and {} more pool(s)", s.shared.len() - i));
                break;
            }
            text.push_str(&part);
            if i + 1 < s.shared.len() {
                text.push_str("; ");
            }
        }
    }
    text
}

/// The messages of one digest, in order. Each carries a `text` fallback and its blocks.
pub fn digest_messages(digest: &Digest, dashboard_url: Option<&str>) -> Vec<Value> {
    let team = if digest.team.is_empty() {
        "(no team)"
    } else {
        &digest.team
    };
    let chunks: Vec<&[ServiceLine]> = if digest.services.is_empty() {
        vec![&[]]
    } else {
        digest.services.chunks(SERVICES_PER_MESSAGE).collect()
    };
    let parts = chunks.len();
    let mut summary = String::new();
    for (currency, (now, before)) in &digest.totals {
        summary.push_str(&format!(
            "*Team total* {} ({} {} vs previous)\n",
            human(*now, currency, false),
            human(*now - *before, currency, true),
            percent(*now - *before, *before)
        ));
    }
    if !digest.movers.is_empty() {
        let movers: Vec<String> = digest
            .movers
            .iter()
            .map(|(s, c, n)| format!("{} {}", escape(s), human(*n, c, true)))
            .collect();
        summary.push_str(&format!("*Top movers* {}\n", movers.join(", ")));
    }
    if !digest.budgets.is_empty() {
        let lines: Vec<String> = digest
            .budgets
            .iter()
            .map(|b| format!("• {}", escape(b)))
            .collect();
        summary.push_str(&format!("*Budgets*\n{}\n", lines.join("\n")));
    }
    if !digest.units.is_empty() {
        let lines: Vec<String> = digest
            .units
            .iter()
            .map(|u| format!("• {}", escape(u)))
            .collect();
        summary.push_str(&format!("*Cost per unit*\n{}", lines.join("\n")));
    }
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, services)| {
            let part = if parts > 1 {
                format!(" ({}/{parts})", i + 1)
            } else {
                String::new()
            };
            let header = format!("{team} cost, {}{part}", digest.label);
            let mut blocks = vec![json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&header, MAX_HEADER), "emoji": true}})];
            if i == 0 && !summary.is_empty() {
                blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(summary.trim_end(), MAX_SECTION)}}));
            }
            for s in services {
                blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": service_text(s)}}));
            }
            let mut context = vec![json!({"type": "mrkdwn", "text": format!("costsplit · {} to {}", digest.from, digest.to)})];
            if i + 1 == parts && digest.below_floor > 0 {
                let totals: Vec<String> = digest
                    .below_floor_total
                    .iter()
                    .map(|(c, n)| human(*n, c, false))
                    .collect();
                context.push(json!({"type": "mrkdwn", "text": format!("{} smaller service(s), {} together", digest.below_floor, totals.join(" + "))}));
            }
            if digest.estimated {
                context.push(json!({"type": "mrkdwn", "text": ":warning: includes estimated days: the provider may still revise them"}));
            }
            blocks.push(json!({"type": "context", "elements": context}));
            if let (Some(url), true) = (dashboard_url, i + 1 == parts) {
                let url = url
                    .replace("{service}", "")
                    .replace("{team}", &url_component(&digest.team));
                if url.starts_with("https://") || url.starts_with("http://") {
                    blocks.push(json!({"type": "actions", "elements": [
                        {"type": "button", "text": {"type": "plain_text", "text": "Open dashboard"}, "url": url}
                    ]}));
                }
            }
            let text = format!("{} cost, {}{part}", escape(team), digest.label);
            json!({"text": text, "blocks": blocks})
        })
        .collect()
}
