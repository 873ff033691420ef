//! The month-end forecast's backtest (run by `bench/forecast.sh`): costsplit's forecaster
//! beside the naive run rate (month to date x days in month / days elapsed), made on every
//! day of every month with at least two months behind it, and compared with the month's
//! actual end.
//!
//! 1. The generator's seasonal months (`GenSpec` with `Season::standard()`: weekends at 65%,
//!    a trend of up to +-8% a month per service, +-6% daily noise, fees and tax on random
//!    days), imported into a fresh SQLite store, allocated with 20 team budgets (the 60
//!    services in teams of three, the shared databases split in proportion to direct cost),
//!    each team's days read as the budgets read them.
//! 2. The real Cost Explorer answer in `tests/data/thirdparty/cloudtoolbox-ce-daily-service`
//!    (86 days from 2024-02-01): March 2024 forecast from each of its days.
//!
//! `cargo run --example forecast_backtest -- [ROWS_PER_MONTH] [MONTHS] [SEED]`
//! prints a Markdown table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration, NaiveDate};
use costsplit::demo::generate::{GenSpec, Season, World};
use costsplit::forecast::{self, DayCost, History};
use costsplit::jobs::{self, Clock};
use costsplit::money::Nanos;

fn units(n: Nanos) -> f64 {
    n.0 as f64 / 1e9
}

/// One forecast against the month's actual end.
struct Outcome {
    day: u32,
    error: f64,
    naive_error: f64,
    covered: bool,
}

fn month_start(first: NaiveDate, i: u32) -> NaiveDate {
    first
        .checked_add_months(chrono::Months::new(i))
        .expect("a month")
}

fn month_end(start: NaiveDate) -> NaiveDate {
    month_start(start, 1) - Duration::days(1)
}

/// Forecasts `start`'s month from each of its days, against its actual end.
fn backtest_month(history: &History, start: NaiveDate, out: &mut Vec<Outcome>) {
    let end = month_end(start);
    let actual: f64 = history
        .days
        .range(start..=end)
        .map(|(_, c)| units(c.total()))
        .sum();
    if actual <= 0.0 {
        return;
    }
    let mut as_of = start;
    while as_of < end {
        if let Some(m) = forecast::forecast(history, start, as_of).ready() {
            let naive = units(forecast::run_rate(history, start, as_of));
            out.push(Outcome {
                day: as_of.day(),
                error: (units(m.point) - actual).abs() / actual,
                naive_error: (naive - actual).abs() / actual,
                covered: units(m.low) <= actual && actual <= units(m.high),
            });
        }
        as_of += Duration::days(1);
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// The table's row of one data set.
fn summarise(name: &str, outcomes: &[Outcome]) -> String {
    let by_day = |pick: fn(&Outcome) -> f64, day: u32| {
        median(outcomes.iter().filter(|o| o.day == day).map(pick).collect())
    };
    // The worst daily median from a day on: "<= 10% from day 7" holds when this is.
    let worst_from = |pick: fn(&Outcome) -> f64, from: u32| {
        (from..=28)
            .map(|d| by_day(pick, d))
            .filter(|m| m.is_finite())
            .fold(0.0f64, f64::max)
    };
    let error = |o: &Outcome| o.error;
    let naive = |o: &Outcome| o.naive_error;
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let covered = outcomes.iter().filter(|o| o.covered).count() as f64 / outcomes.len() as f64;
    let months = outcomes.iter().filter(|o| o.day == 1).count();
    format!(
        "| {name} | {months} | {} / {} | {} / {} | {} / {} | {} / {} | {} / {} | {} |",
        pct(by_day(error, 1)),
        pct(by_day(naive, 1)),
        pct(by_day(error, 7)),
        pct(by_day(naive, 7)),
        pct(by_day(error, 15)),
        pct(by_day(naive, 15)),
        pct(worst_from(error, 7)),
        pct(worst_from(naive, 7)),
        pct(worst_from(error, 15)),
        pct(worst_from(naive, 15)),
        pct(covered),
    )
}

/// The seasonal months' team histories, through the store as the budgets read them.
async fn generated(
    dir: &Path,
    rows: usize,
    months: u32,
    seed: u64,
) -> anyhow::Result<BTreeMap<String, History>> {
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).expect("a day");
    let mut files = Vec::new();
    let mut spec = GenSpec::standard(rows, seed);
    spec.resources = 900;
    spec.season = Some(Season::standard());
    for i in 0..months {
        spec.month = month_start(first, i);
        let file = dir.join(format!("{}.parquet", spec.month.format("%Y-%m")));
        World::new(spec.clone()).write_parquet(&file)?;
        files.push(file);
    }
    let rules_dir = dir.join("rules");
    std::fs::create_dir_all(&rules_dir)?;
    let mut text = String::new();
    let mut teams = Vec::new();
    for service in &spec.services {
        let team = service.split('-').next().expect("a prefix").to_string();
        text.push_str(&format!(
            "[[service]]\nname = \"{service}\"\nteam = \"{team}\"\n"
        ));
        if !teams.contains(&team) {
            teams.push(team);
        }
    }
    let members: Vec<String> = spec.services.iter().map(|s| format!("\"{s}\"")).collect();
    text.push_str(&format!(
        "\n[[pool]]\nname = \"shared\"\nmethod = \"proportional\"\nmatch = {{ tags = {{ shared = \"true\" }} }}\nmembers = [{}]\n",
        members.join(", ")
    ));
    for team in &teams {
        text.push_str(&format!(
            "\n[[budget]]\nname = \"{team}\"\nteam = \"{team}\"\namount = 1000000\n"
        ));
    }
    std::fs::write(rules_dir.join("rules.toml"), text)?;
    let rules = jobs::load_rules(&rules_dir, None)?;
    let store = jobs::Store::connect(&format!("sqlite://{}", dir.join("b.db").display())).await?;
    jobs::import_files(&store, &files, Clock::System).await?;
    let last = month_end(month_start(first, months - 1));
    jobs::allocate_range(
        &store,
        &rules,
        costsplit::model::CostBasis::Effective,
        (first, last),
        Clock::System,
    )
    .await?;
    jobs::budget_histories(&store, &rules, (first, last)).await
}

/// The real Cost Explorer answer's daily totals (all services), as usage.
fn cost_explorer(path: &Path) -> anyhow::Result<History> {
    let answer: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let mut days = BTreeMap::new();
    for period in answer["ResultsByTime"].as_array().into_iter().flatten() {
        let start = period["TimePeriod"]["Start"].as_str().unwrap_or_default();
        let day = NaiveDate::parse_from_str(start, "%Y-%m-%d")?;
        let mut cost = DayCost::default();
        for group in period["Groups"].as_array().into_iter().flatten() {
            let amount = group["Metrics"]["UnblendedCost"]["Amount"]
                .as_str()
                .unwrap_or("0");
            let amount = Nanos::parse(amount).unwrap_or_default();
            // As the Cost Explorer import reads it: the `Tax` group is tax, the rest usage.
            if group["Keys"][0] == "Tax" {
                cost.once += amount;
            } else {
                cost.usage += amount;
            }
        }
        days.insert(day, cost);
    }
    Ok(History {
        first: days.keys().next().copied(),
        days,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| -> u64 {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
    };
    let (rows, months, seed) = (arg(0, 200_000) as usize, arg(1, 8) as u32, arg(2, 42));
    let dir = tempfile::tempdir()?;
    let started = std::time::Instant::now();
    let teams = generated(dir.path(), rows, months, seed).await?;
    let mut outcomes = Vec::new();
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).expect("a day");
    for history in teams.values() {
        for i in 2..months {
            backtest_month(history, month_start(first, i), &mut outcomes);
        }
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ce = cost_explorer(
        &repo.join("tests/data/thirdparty/cloudtoolbox-ce-daily-service/CostData.response.json"),
    )?;
    let mut real = Vec::new();
    backtest_month(
        &ce,
        NaiveDate::from_ymd_opt(2024, 3, 1).expect("a day"),
        &mut real,
    );
    println!(
        "Forecast backtest: `bench/forecast.sh` ({rows} rows a month, {months} months from 2025-01, seed {seed}; {:.1} s). Each cell: costsplit / naive run rate, the median absolute error of the month-end forecast over the data set's months. \"from day 7\" is the worst daily median of days 7-28.\n",
        started.elapsed().as_secs_f64()
    );
    println!("| data | months | day 1 | day 7 | day 15 | from day 7 (worst) | from day 15 (worst) | 80% interval covers |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "{}",
        summarise("generator, 20 team budgets, seasonal months 3-8", &outcomes)
    );
    println!(
        "{}",
        summarise("real Cost Explorer answer (cloudtoolbox), 2024-03", &real)
    );
    Ok(())
}
