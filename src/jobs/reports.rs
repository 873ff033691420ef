//! The jobs behind the three reporting surfaces: finance's statement, the developers' Slack
//! digests (enqueued into the outbox that alerts use), and the platform team's tools (rule
//! test cases, a dry run against the stored allocations, `explain`). Each gathers from the
//! store and hands the data to `report`, which renders it.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::NaiveDate;
use tracing::info;

use super::allocate::{compute_allocations, live_weights, Computed};
use crate::allocate::{self, conservation_gaps, Input, UsageWeights};
use crate::clock::Clock;
use crate::model::{month_bounds, CostBasis, MessageKind, UNALLOCATED};
use crate::money::Nanos;
use crate::notify::digest::digest_messages;
use crate::report::diff::{diff, Diff};
use crate::report::digest::{digests, Digest, DigestInput, Owners, Period};
use crate::report::explain::{explain as explain_service, Explanation};
use crate::report::statement::{statement as build_statement, GroupBy, Statement, StatementInput};
use crate::report::Report;
use crate::rules::{Rules, WeightKey, WeightRow, WeightTable};
use crate::store::{EnqueueResult, NewAlert, Store};

fn month_range(month: &str) -> anyhow::Result<(NaiveDate, NaiveDate)> {
    month_bounds(month)
        .with_context(|| format!("`{month}` is not a month; write it as YYYY-MM, e.g. 2025-03"))
}

/// The month's chargeback statement from the stored allocations. `want` is the cost basis
/// asked for (refused when the month is allocated on another); `month_final_day` the day of
/// the next month until which a rules edit still re-allocates this one.
pub async fn statement(
    store: &Store,
    month: &str,
    by: GroupBy,
    detail: bool,
    want: Option<CostBasis>,
    month_final_day: u32,
) -> anyhow::Result<Statement> {
    let mut statements = statements(store, month, &[by], detail, want, month_final_day).await?;
    Ok(statements.remove(0))
}

/// [`statement`] grouped each way of `bys`, from one read of the month.
pub async fn statements(
    store: &Store,
    month: &str,
    bys: &[GroupBy],
    detail: bool,
    want: Option<CostBasis>,
    month_final_day: u32,
) -> anyhow::Result<Vec<Statement>> {
    let (from, to) = month_range(month)?;
    let provenance = store.allocation_provenance(from, to).await?;
    anyhow::ensure!(
        !provenance.is_empty(),
        "no allocations for {month}; run `costsplit allocate --month {month}` first"
    );
    let bases: Vec<&str> = provenance.iter().map(|p| p.basis.as_str()).collect();
    anyhow::ensure!(
        bases.iter().all(|b| *b == bases[0]),
        "{month} was allocated on more than one cost basis ({}); run `costsplit allocate --month {month}` once for one statement",
        bases.join(", ")
    );
    let basis = provenance[0].basis;
    if let Some(want) = want.filter(|w| *w != basis) {
        anyhow::bail!(
            "{month} is allocated on the {basis} cost basis, not {want}; run `costsplit --basis {want} allocate --month {month}` first, or export with --basis {basis}"
        );
    }
    let open_until = month_bounds(month)
        .map(|(_, last)| last + chrono::Duration::days(i64::from(month_final_day.max(1))));
    let mut hashes: Vec<&str> = provenance.iter().map(|p| p.rules_hash.as_str()).collect();
    hashes.dedup();
    let allocations = store.allocations(from, to).await?;
    let billed = store.billed_totals(from, to, basis).await?;
    let estimated = !store.estimated_days(from, to).await?.is_empty();
    let input = StatementInput {
        month,
        basis,
        rules_hash: hashes.join("+"),
        allocations: &allocations,
        billed: &billed,
        estimated,
        open_until,
    };
    bys.iter()
        .map(|by| Ok(build_statement(&input, *by, detail)?))
        .collect()
}

/// Allocates `range` with candidate `rules` without storing anything and compares the
/// per-service result with what is stored.
pub async fn dry_run(
    store: &Store,
    rules: &Rules,
    basis: CostBasis,
    range: (NaiveDate, NaiveDate),
) -> anyhow::Result<Diff> {
    let Computed { allocations, .. } = compute_allocations(store, rules, basis, range).await?;
    let stored = store.allocations(range.0, range.1).await?;
    let stored_rules: Vec<String> = store
        .allocation_provenance(range.0, range.1)
        .await?
        .into_iter()
        .map(|p| format!("{} ({})", p.rules_hash, p.basis))
        .collect();
    Ok(diff(
        range,
        stored_rules,
        format!("{} ({basis})", rules.hash),
        &stored,
        &allocations,
    ))
}

/// Where the money of `service` in `month` came from, from the stored allocations.
pub async fn explain(
    store: &Store,
    rules: Option<&Rules>,
    service: &str,
    month: &str,
) -> anyhow::Result<Vec<Explanation>> {
    let (from, to) = month_range(month)?;
    let service = rules.map_or(service.to_string(), |r| {
        r.service(&r.settings.value_case.normalise(service))
            .map_or(service.to_string(), |s| s.name.clone())
    });
    let provenance = store.allocation_provenance(from, to).await?;
    anyhow::ensure!(
        !provenance.is_empty(),
        "no allocations for {month}; run `costsplit allocate --month {month}` first"
    );
    let allocations = store.allocations(from, to).await?;
    let out = explain_service(
        &service,
        month,
        provenance.iter().map(|p| p.rules_hash.clone()).collect(),
        &allocations,
    );
    anyhow::ensure!(
        !out.is_empty(),
        "service `{service}` has no cost in {month}; `costsplit report --month {month}` lists the services that do"
    );
    Ok(out)
}

/// Who owns each service now (team, Slack channel), from the rules.
fn owners(rules: &Rules) -> Owners {
    rules
        .services
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                (s.team.clone(), s.slack_channel.clone().unwrap_or_default()),
            )
        })
        .collect()
}

/// The per-team digests of the last complete `period` before `today` (none when nothing is
/// allocated in it).
pub async fn team_digests(
    store: &Store,
    rules: &Rules,
    period: Period,
    today: NaiveDate,
    team: Option<&str>,
) -> anyhow::Result<Vec<Digest>> {
    let (current, previous_range) = period.last_complete(today);
    let allocations = store.allocations(current.0, current.1).await?;
    if allocations.is_empty() {
        return Ok(Vec::new());
    }
    let previous: BTreeMap<(String, String), Nanos> = store
        .service_totals(previous_range.0, previous_range.1)
        .await?
        .into_iter()
        .map(|s| ((s.service.clone(), s.currency.clone()), s.total()))
        .collect();
    let estimated = !store.estimated_days(current.0, current.1).await?.is_empty();
    let mut owners = owners(rules);
    // A service the rules do not declare keeps the team it was allocated with.
    for a in &allocations {
        owners
            .entry(a.service.clone())
            .or_insert_with(|| (a.team.clone(), String::new()));
    }
    if let Some(team) = team {
        anyhow::ensure!(
            owners.values().any(|(t, _)| t == team),
            "no service has team `{team}`; the teams are named in the rules' [[service]] tables"
        );
    }
    let mut digests = digests(
        &DigestInput {
            period,
            current,
            allocations: &allocations,
            previous: &previous,
            owners: &owners,
            floor: rules.reports.min_service_amount,
            top_movers: rules.reports.top_movers,
            estimated,
        },
        team,
    );
    // The team's budgets in the month the period ends in, as of its last day.
    let month = current.1.format("%Y-%m").to_string();
    let budgets = super::budget_statuses(store, rules, &month, Some(current.1)).await?;
    let units = super::unit_summaries(store, rules, current, previous_range).await?;
    for d in &mut digests {
        d.budgets = budgets
            .iter()
            .filter(|b| b.team == d.team)
            .map(|b| b.line())
            .collect();
        d.units = units
            .iter()
            .filter(|u| u.team == d.team)
            .map(|u| u.line())
            .collect();
    }
    Ok(digests)
}

/// The outbox rows of the digests: one per Slack message, each with a fingerprint of its
/// team, channel, period and part, so a report is sent once however often this runs.
pub fn digest_rows(digests: &[Digest], dashboard_url: Option<&str>) -> Vec<NewAlert> {
    let mut rows = Vec::new();
    for d in digests {
        let messages = digest_messages(d, dashboard_url);
        let parts = messages.len();
        for (i, message) in messages.into_iter().enumerate() {
            let period = format!("{} {} to {}", d.period.as_str(), d.from, d.to);
            rows.push(NewAlert {
                fingerprint: format!(
                    "report|{}|{}|{}|{}|part {}",
                    d.period.as_str(),
                    d.from,
                    d.team,
                    d.channel,
                    i + 1
                ),
                kind: MessageKind::Report,
                service: String::new(),
                team: d.team.clone(),
                period,
                channel: Some(d.channel.clone()).filter(|c| !c.is_empty()),
                summary: format!("{} cost, {} ({}/{parts})", d.team, d.label, i + 1),
                payload: message.to_string(),
            });
        }
    }
    rows
}

/// Puts the digests' messages into the outbox (delivered by `deliver_alerts`, in order).
pub async fn enqueue_digests(
    store: &Store,
    rules: &Rules,
    digests: &[Digest],
    clock: Clock,
) -> anyhow::Result<EnqueueResult> {
    let rows = digest_rows(digests, rules.alerts.dashboard_url.as_deref());
    let result = store.enqueue_reports(&rows, clock.stamp()).await?;
    info!(
        new = result.inserted,
        known = result.already_known,
        "reports enqueued"
    );
    Ok(result)
}

/// How one `[[test]]` case came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseOutcome {
    pub name: String,
    pub location: String,
    /// Empty when it passed: otherwise one line per service that differs.
    pub failures: Vec<String>,
}

/// Runs the rule files' test cases through the allocator. Pure: no store, no clock.
pub fn rules_test(rules: &Rules) -> Vec<CaseOutcome> {
    rules
        .tests
        .iter()
        .map(|case| {
            let mut usage = UsageWeights::default();
            for (pool, weights) in &case.weights {
                usage.by_pool.insert(
                    pool.clone(),
                    WeightTable::from_rows(weights.iter().map(|(service, weight)| WeightRow {
                        key: WeightKey {
                            day: None,
                            resource_id: None,
                        },
                        service: service.clone(),
                        weight: *weight,
                    })),
                );
            }
            let mut failures = Vec::new();
            match allocate::allocate(&Input {
                facts: &case.facts,
                rules,
                usage: &usage,
                basis: CostBasis::Effective,
            }) {
                Err(e) => failures.push(e.to_string()),
                Ok(allocations) => {
                    let gaps = conservation_gaps(&case.facts, &allocations, CostBasis::Effective);
                    if !gaps.is_empty() {
                        failures.push(format!("allocations do not sum to the facts: {gaps:?}"));
                    }
                    let mut got: BTreeMap<&str, Nanos> = BTreeMap::new();
                    for a in &allocations {
                        *got.entry(&a.service).or_default() += a.amount;
                    }
                    let services: std::collections::BTreeSet<&str> = got
                        .keys()
                        .copied()
                        .chain(case.expect.keys().map(String::as_str))
                        .collect();
                    for (name, want) in &case.expect_budgets {
                        let Some(b) = rules.budgets.iter().find(|b| &b.name == name) else {
                            continue;
                        };
                        let have: Nanos = allocations
                            .iter()
                            .filter(|a| {
                                a.currency == b.currency
                                    && crate::forecast::budget::covers(
                                        &b.scope,
                                        &a.service,
                                        &a.team,
                                        &a.cost_center,
                                        &a.pool,
                                    )
                            })
                            .map(|a| a.amount)
                            .sum();
                        if have != *want {
                            failures.push(format!(
                                "budget {name} ({}): expected {want}, got {have}",
                                b.scope.label()
                            ));
                        }
                    }
                    for service in services {
                        let want = case.expect.get(service).copied();
                        let have = got.get(service).copied().unwrap_or_default();
                        match want {
                            Some(want) if want == have => {}
                            Some(want) => {
                                failures.push(format!("{service}: expected {want}, got {have}"))
                            }
                            None if have.0 == 0 => {}
                            None => failures.push(format!(
                                "{service}: got {have}, which `expect` does not list{}",
                                if service == UNALLOCATED {
                                    " (a fact no pool or tag claimed)"
                                } else {
                                    ""
                                }
                            )),
                        }
                    }
                }
            }
            CaseOutcome {
                name: case.name.clone(),
                location: case.location.clone(),
                failures,
            }
        })
        .collect()
}

/// The month as a FOCUS 1.3 dataset whose shared charges are split as the stored
/// allocations split them. The rules must be the ones the month was allocated with.
pub async fn focus_export(store: &Store, rules: &Rules, month: &str) -> anyhow::Result<String> {
    let (from, to) = month_range(month)?;
    let provenance = store.allocation_provenance(from, to).await?;
    anyhow::ensure!(
        !provenance.is_empty(),
        "no allocations for {month}; run `costsplit allocate --month {month}` first"
    );
    let hashes: Vec<&str> = provenance.iter().map(|p| p.rules_hash.as_str()).collect();
    anyhow::ensure!(
        provenance.len() == 1 && hashes[0] == rules.hash,
        "{month} was allocated with rules {} but the rules given are {}; run `costsplit allocate --month {month}` with these rules first, so the FOCUS export and the statement agree",
        hashes.join(", "),
        rules.hash
    );
    let basis = provenance[0].basis;
    let facts = store.facts(from, to).await?;
    let usage = live_weights(store, rules, (from, to)).await?;
    let splits = allocate::split_charges(&Input {
        facts: &facts,
        rules,
        usage: &usage,
        basis,
    })?;
    // The split must be the stored one, to the nano-unit, per day, service and pool.
    let mut split_sums: BTreeMap<(NaiveDate, String, String, String), Nanos> = BTreeMap::new();
    for s in &splits {
        for p in &s.parts {
            *split_sums
                .entry((
                    s.fact.day,
                    p.service.clone(),
                    s.pool.clone().unwrap_or_default(),
                    s.fact.currency.to_string(),
                ))
                .or_default() += p.amount;
        }
    }
    let mut stored_sums: BTreeMap<(NaiveDate, String, String, String), Nanos> = BTreeMap::new();
    for a in store.allocations(from, to).await? {
        *stored_sums
            .entry((a.day, a.service, a.pool, a.currency))
            .or_default() += a.amount;
    }
    split_sums.retain(|_, n| n.0 != 0);
    stored_sums.retain(|_, n| n.0 != 0);
    anyhow::ensure!(
        split_sums == stored_sums,
        "the facts or usage samples of {month} changed since it was allocated; run `costsplit allocate --month {month}` again"
    );
    let owners: crate::report::focus::Owners = rules
        .services
        .iter()
        .map(|s| (s.name.clone(), (s.team.clone(), s.cost_center.clone())))
        .collect();
    Ok(crate::report::focus::focus_csv(
        &splits,
        &owners,
        &rules.hash,
        basis == CostBasis::Effective,
    ))
}

/// Per-service totals over a range, with the reconciliation against the stored facts.
/// With `rules`, their budgets in the month `to` is in, as of `to` (or the last allocated
/// day, when earlier).
pub async fn report(
    store: &Store,
    (from, to): (NaiveDate, NaiveDate),
    rules: Option<&Rules>,
) -> anyhow::Result<Report> {
    let provenance = store.allocation_provenance(from, to).await?;
    anyhow::ensure!(
        !provenance.is_empty(),
        "no allocations between {from} and {to}; run `costsplit allocate --from {from} --to {to}` first"
    );
    let basis = provenance[0].basis;
    let services = store.service_totals(from, to).await?;
    let billed = store.billed_totals(from, to, basis).await?;
    let estimated = store.estimated_days(from, to).await?;
    let allocations = store.allocations(from, to).await?;
    let mut report = Report::new(from, to, basis, provenance, services, billed)
        .with_estimated_days(estimated)
        .with_shares(&allocations);
    if let Some(rules) = rules {
        let last = super::last_allocated_day(store).await?;
        let month = to.format("%Y-%m").to_string();
        report.budgets = super::budget_statuses(store, rules, &month, Some(to.min(last))).await?;
    }
    Ok(report)
}
