//! The per-team cost digest a developer reads in Slack: each of the team's services with the
//! period's total, the change against the previous period, a daily sparkline, the top movers,
//! and the shared part broken down by pool with the method and ratio used. Services under the
//! floor are summed in one line. Pure data and text; `notify::slack` lays it out as Block Kit.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::model::{Allocation, UNALLOCATED};
use crate::money::Nanos;

/// The period a digest covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Week,
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// The last complete period before `today` (Monday-to-Sunday weeks, calendar months), and
    /// the one before it.
    pub fn last_complete(
        self,
        today: NaiveDate,
    ) -> ((NaiveDate, NaiveDate), (NaiveDate, NaiveDate)) {
        use chrono::Datelike;
        match self {
            Period::Week => {
                let monday = today
                    - chrono::Duration::days(i64::from(today.weekday().num_days_from_monday()));
                let to = monday - chrono::Duration::days(1);
                let from = monday - chrono::Duration::days(7);
                let previous = (
                    from - chrono::Duration::days(7),
                    from - chrono::Duration::days(1),
                );
                ((from, to), previous)
            }
            Period::Month => {
                let first = today.with_day(1).expect("day 1 exists");
                let to = first.pred_opt().expect("a day before");
                let from = to.with_day(1).expect("day 1 exists");
                let pto = from.pred_opt().expect("a day before");
                let pfrom = pto.with_day(1).expect("day 1 exists");
                ((from, to), (pfrom, pto))
            }
        }
    }

    /// `week 2025-03-10 to 2025-03-16`, `March 2025`.
    pub fn label(self, (from, to): (NaiveDate, NaiveDate)) -> String {
        match self {
            Period::Week => format!("week {from} to {to}"),
            Period::Month => from.format("%B %Y").to_string(),
        }
    }
}

/// A service's part of one pool over the period.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolShare {
    pub pool: String,
    /// The method of most of the amount (`usage`, `fallback:proportional`, …).
    pub method: String,
    /// The service's part of the pool's total over the period, in parts per billion.
    pub ratio_ppb: i64,
    /// What usage was measured in (`bytes`, `keys`), when the share came from a live sample.
    pub unit: String,
    pub amount: Nanos,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceLine {
    pub service: String,
    pub currency: String,
    pub total: Nanos,
    pub previous: Nanos,
    /// One amount per day of the period.
    pub daily: Vec<Nanos>,
    pub shared: Vec<PoolShare>,
    /// What its Kubernetes pods requested but did not use, in the total: the cheapest saving
    /// a developer can make is right-sizing the requests.
    #[serde(default)]
    pub requested_unused: Nanos,
}

impl ServiceLine {
    /// The "requests above usage" line, when there is one.
    pub fn requested_unused_text(&self) -> Option<String> {
        (self.requested_unused.0 > 0).then(|| {
            format!(
                "requests above usage {}: right-sizing the pods' requests saves it",
                crate::money::human(self.requested_unused, &self.currency, false)
            )
        })
    }
}

impl ServiceLine {
    pub fn change(&self) -> Nanos {
        self.total - self.previous
    }
}

/// One team channel's digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Digest {
    pub team: String,
    /// Empty: the team's (or the default) webhook.
    pub channel: String,
    pub period: Period,
    pub label: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Listed services, largest total first.
    pub services: Vec<ServiceLine>,
    /// Services under the floor: how many, and their totals by currency.
    pub below_floor: usize,
    pub below_floor_total: BTreeMap<String, Nanos>,
    /// The largest changes (service, currency, change), largest first.
    pub movers: Vec<(String, String, Nanos)>,
    /// Team totals by currency: this period and the previous one.
    pub totals: BTreeMap<String, (Nanos, Nanos)>,
    pub estimated: bool,
    /// The team's budgets: month to date against the budget, and the month-end forecast
    /// (`BudgetStatus::line`), filled in by the job.
    pub budgets: Vec<String>,
    /// The team's cost per unit against the previous period (`UnitSummary::line`), filled
    /// in by the job.
    pub units: Vec<String>,
}

/// Who a service belongs to now: (team, channel).
pub type Owners = BTreeMap<String, (String, String)>;

/// Everything the digests are made of, gathered by the job.
pub struct DigestInput<'a> {
    pub period: Period,
    pub current: (NaiveDate, NaiveDate),
    /// All of the current period's allocations (other members' rows give pool totals).
    pub allocations: &'a [Allocation],
    /// Per (service, currency): the previous period's total.
    pub previous: &'a BTreeMap<(String, String), Nanos>,
    pub owners: &'a Owners,
    pub floor: Nanos,
    pub top_movers: usize,
    pub estimated: bool,
}

/// Per (service, currency, pool): the amount by method, and the usage unit seen.
type ShareSums = (BTreeMap<String, Nanos>, String);

/// The unit at the end of a live sample's basis (`orders-db 2025-03-14: 12 of 40 bytes`).
fn basis_unit(basis: &str) -> &str {
    let Some((_, tail)) = basis.rsplit_once(" of ") else {
        return "";
    };
    let tail = tail.split(';').next().unwrap_or("");
    tail.split_once(' ').map_or("", |(_, unit)| unit.trim())
}

/// One digest per (team, channel) that has a service with cost in either period, teams in
/// name order. `only_team` keeps one team.
pub fn digests(input: &DigestInput<'_>, only_team: Option<&str>) -> Vec<Digest> {
    let mut lines = service_lines(input);
    attach_shares(input, &mut lines);
    let mut by_owner: BTreeMap<(String, String), Vec<ServiceLine>> = BTreeMap::new();
    for ((service, _), line) in lines {
        let (team, channel) = input.owners.get(&service).cloned().unwrap_or_default();
        if only_team.is_some_and(|t| t != team) {
            continue;
        }
        by_owner.entry((team, channel)).or_default().push(line);
    }
    by_owner
        .into_iter()
        .map(|((team, channel), services)| team_digest(input, team, channel, services))
        .collect()
}

type Lines = BTreeMap<(String, String), ServiceLine>;

/// Each (service, currency) with cost in either period: its total, daily amounts and previous
/// total; `unallocated` is not a service anyone owns.
fn service_lines(input: &DigestInput<'_>) -> Lines {
    let (from, to) = input.current;
    let days = usize::try_from((to - from).num_days() + 1).unwrap_or(0);
    let mut lines = Lines::new();
    for a in input
        .allocations
        .iter()
        .filter(|a| a.service != UNALLOCATED)
    {
        let line = line_of(&mut lines, days, &a.service, &a.currency);
        line.total += a.amount;
        if a.method == crate::model::Method::Requested {
            line.requested_unused += a.amount;
        }
        if let Some(slot) = usize::try_from((a.day - from).num_days())
            .ok()
            .and_then(|i| line.daily.get_mut(i))
        {
            *slot += a.amount;
        }
    }
    for ((service, currency), previous) in input.previous {
        if service != UNALLOCATED {
            line_of(&mut lines, days, service, currency).previous = *previous;
        }
    }
    lines
}

fn line_of<'a>(
    lines: &'a mut Lines,
    days: usize,
    service: &str,
    currency: &str,
) -> &'a mut ServiceLine {
    lines
        .entry((service.to_string(), currency.to_string()))
        .or_insert_with(|| ServiceLine {
            service: service.to_string(),
            currency: currency.to_string(),
            total: Nanos::ZERO,
            previous: Nanos::ZERO,
            daily: vec![Nanos::ZERO; days],
            shared: Vec::new(),
            requested_unused: Nanos::ZERO,
        })
}

/// Each service's part of each pool over the period: the method of most of it, its ratio of
/// the pool's total and the usage unit seen.
fn attach_shares(input: &DigestInput<'_>, lines: &mut Lines) {
    let mut pool_totals: BTreeMap<(&str, &str), Nanos> = BTreeMap::new();
    // (service, currency, pool) -> method -> amount; and the unit seen.
    let mut shares: BTreeMap<(String, String, String), ShareSums> = BTreeMap::new();
    for a in input.allocations.iter().filter(|a| !a.pool.is_empty()) {
        *pool_totals.entry((&a.currency, &a.pool)).or_default() += a.amount;
        if a.service == UNALLOCATED {
            continue;
        }
        let method = if a.fallback_used {
            format!("fallback:{}", a.method.as_str())
        } else {
            a.method.as_str().to_string()
        };
        let entry = shares
            .entry((a.service.clone(), a.currency.clone(), a.pool.clone()))
            .or_default();
        *entry.0.entry(method).or_default() += a.amount;
        let unit = basis_unit(&a.basis);
        if entry.1.is_empty() && !unit.is_empty() {
            entry.1 = unit.to_string();
        }
    }
    for ((service, currency, pool), (methods, unit)) in shares {
        let amount: Nanos = methods.values().copied().sum();
        let method = methods
            .iter()
            .max_by(|a, b| a.1 .0.abs().cmp(&b.1 .0.abs()).then(b.0.cmp(a.0)))
            .map(|(m, _)| m.clone())
            .unwrap_or_default();
        let whole = pool_totals
            .get(&(currency.as_str(), pool.as_str()))
            .copied()
            .unwrap_or_default();
        if let Some(line) = lines.get_mut(&(service, currency)) {
            line.shared.push(PoolShare {
                pool,
                method,
                ratio_ppb: crate::money::ratio_ppb(amount, whole),
                unit,
                amount,
            });
        }
    }
}

/// One team channel's digest: totals, top movers, and the services over the floor listed
/// largest first with the rest summed.
fn team_digest(
    input: &DigestInput<'_>,
    team: String,
    channel: String,
    mut services: Vec<ServiceLine>,
) -> Digest {
    let (from, to) = input.current;
    let mut totals: BTreeMap<String, (Nanos, Nanos)> = BTreeMap::new();
    for s in &services {
        let t = totals.entry(s.currency.clone()).or_default();
        t.0 += s.total;
        t.1 += s.previous;
    }
    let mut movers: Vec<(String, String, Nanos)> = services
        .iter()
        .filter(|s| s.change().0 != 0)
        .map(|s| (s.service.clone(), s.currency.clone(), s.change()))
        .collect();
    movers.sort_by(|a, b| b.2 .0.abs().cmp(&a.2 .0.abs()).then(a.0.cmp(&b.0)));
    movers.truncate(input.top_movers);
    services.sort_by(|a, b| b.total.cmp(&a.total).then(a.service.cmp(&b.service)));
    let (listed, below): (Vec<ServiceLine>, Vec<ServiceLine>) = services
        .into_iter()
        .partition(|s| s.total.0.abs() >= input.floor.0 || s.previous.0.abs() >= input.floor.0);
    let mut below_floor_total: BTreeMap<String, Nanos> = BTreeMap::new();
    for s in &below {
        *below_floor_total.entry(s.currency.clone()).or_default() += s.total;
    }
    Digest {
        team,
        channel,
        period: input.period,
        label: input.period.label(input.current),
        from,
        to,
        services: listed,
        below_floor: below.len(),
        below_floor_total,
        movers,
        totals,
        estimated: input.estimated,
        budgets: Vec::new(),
        units: Vec::new(),
    }
}

/// A text sparkline of daily amounts (`▁▂▅█`), scaled between the smallest and largest.
pub fn sparkline(values: &[Nanos]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (Some(min), Some(max)) = (values.iter().min(), values.iter().max()) else {
        return String::new();
    };
    let span = max.0 - min.0;
    values
        .iter()
        .map(|v| {
            if span == 0 {
                BARS[0]
            } else {
                let i = (v.0 - min.0).saturating_mul(7) / span;
                BARS[usize::try_from(i).unwrap_or(0).min(7)]
            }
        })
        .collect()
}

/// The digest as plain text lines (the demo, a terminal): what the Slack message says.
pub fn plain_text(d: &Digest) -> Vec<String> {
    use crate::money::human;
    use crate::report::diff::percent;
    let mut lines = Vec::new();
    for (c, (now, before)) in &d.totals {
        lines.push(format!(
            "team total {} ({} {} vs previous)",
            human(*now, c, false),
            human(*now - *before, c, true),
            percent(*now - *before, *before)
        ));
    }
    if !d.movers.is_empty() {
        let movers: Vec<String> = d
            .movers
            .iter()
            .map(|(s, c, n)| format!("{s} {}", human(*n, c, true)))
            .collect();
        lines.push(format!("top movers: {}", movers.join(", ")));
    }
    for s in &d.services {
        let c = s.currency.as_str();
        lines.push(format!(
            "{}  {}  ({} {})  {}",
            s.service,
            human(s.total, c, false),
            human(s.change(), c, true),
            percent(s.change(), s.previous),
            sparkline(&s.daily)
        ));
        for p in &s.shared {
            let unit = if p.unit.is_empty() {
                String::new()
            } else {
                format!(" of {}", p.unit)
            };
            lines.push(format!(
                "    {} ({}: {}{unit}) {}",
                p.pool,
                p.method,
                percent_of_ppb(p.ratio_ppb),
                human(p.amount, c, false)
            ));
        }
        if let Some(text) = s.requested_unused_text() {
            lines.push(format!("    {text}"));
        }
    }
    if d.below_floor > 0 {
        let totals: Vec<String> = d
            .below_floor_total
            .iter()
            .map(|(c, n)| human(*n, c, false))
            .collect();
        lines.push(format!(
            "{} smaller service(s), {} together",
            d.below_floor,
            totals.join(" + ")
        ));
    }
    for b in &d.budgets {
        lines.push(format!("budget: {b}"));
    }
    for u in &d.units {
        lines.push(format!("unit cost: {u}"));
    }
    lines
}

/// Parts per billion as a percent with one decimal (`31.2%`), rounded half away from zero.
pub fn percent_of_ppb(ppb: i64) -> String {
    let tenths = (i128::from(ppb) * 2 / 1_000_000 + i128::from(ppb.signum())) / 2;
    let sign = if tenths < 0 { "-" } else { "" };
    format!("{sign}{}.{}%", tenths.abs() / 10, tenths.abs() % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_the_last_complete_week_and_month() {
        let today = NaiveDate::from_ymd_opt(2025, 3, 19).expect("day"); // a Wednesday
        let ((f, t), (pf, pt)) = Period::Week.last_complete(today);
        assert_eq!(
            (f.to_string(), t.to_string()),
            ("2025-03-10".into(), "2025-03-16".into())
        );
        assert_eq!(
            (pf.to_string(), pt.to_string()),
            ("2025-03-03".into(), "2025-03-09".into())
        );
        let ((f, t), (pf, pt)) = Period::Month.last_complete(today);
        assert_eq!(
            (f.to_string(), t.to_string()),
            ("2025-02-01".into(), "2025-02-28".into())
        );
        assert_eq!(
            (pf.to_string(), pt.to_string()),
            ("2025-01-01".into(), "2025-01-31".into())
        );
        assert_eq!(Period::Month.label((f, t)), "February 2025");
    }

    #[test]
    fn sparkline_and_units() {
        assert_eq!(sparkline(&[Nanos(0), Nanos(7), Nanos(14)]), "▁▄█");
        assert_eq!(sparkline(&[Nanos(5), Nanos(5)]), "▁▁");
        assert_eq!(basis_unit("orders-db 2025-03-14: 12 of 40 bytes"), "bytes");
        assert_eq!(
            basis_unit("a 2025-03-14: 1 of 2 keys; b 2025-03-14: 3 of 4 keys"),
            "keys"
        );
        assert_eq!(basis_unit(""), "");
    }
}
