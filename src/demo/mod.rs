//! The demo (`costsplit demo`): a job composed of the others over generated data, and the
//! seeded FOCUS generator it uses (also used by tests and the benchmark). Not a billing
//! source: nothing here is read as a real bill.

pub mod generate;

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;

use crate::allocate::UsageWeights;
use crate::jobs::{self, Clock};
use crate::model::CostBasis;
use crate::report::Format;
use crate::rules;
use crate::store::Store;
use generate::{GenSpec, World};

/// Generates two seeded months of FOCUS line items (a spike and a month-over-month rise
/// planted), imports them into a fresh SQLite store at `db`, allocates them with the rules
/// in `rules_dir`, and prints March per service and the alerts it would send. Returns the
/// exit code: 1 if the month does not reconcile.
pub async fn run(
    rules_dir: &Path,
    basis: CostBasis,
    rows: usize,
    seed: u64,
    db: &Path,
) -> anyhow::Result<i32> {
    let rules = rules::load_or_error(rules_dir)?;
    let workdir = tempfile::tempdir().context("creating a temporary directory")?;
    let mut spec = GenSpec::standard(rows, seed);
    spec.services = rules.services.iter().map(|s| s.name.clone()).collect();
    spec.services.push("legacy-batch".to_string());
    spec.resources = 400;
    spec.accounts = 6;
    // Something for the alerts to find: a one-day spike and a month-over-month rise.
    let date = |m, d| NaiveDate::from_ymd_opt(2025, m, d).expect("valid demo date");
    let spike = spec.services.get(5).cloned().unwrap_or_default();
    let rise = spec.services.get(4).cloned().unwrap_or_default();
    spec.adjustments = vec![
        generate::Adjustment {
            service: spike.clone(),
            from: date(3, 20),
            to: date(3, 20),
            percent: 600,
        },
        generate::Adjustment {
            service: rise.clone(),
            from: date(3, 1),
            to: date(3, 31),
            percent: 160,
        },
    ];
    let mut files = Vec::new();
    for month in [2, 3] {
        spec.month = date(month, 1);
        let file = workdir
            .path()
            .join(format!("focus-demo-2025-{month:02}.csv.gz"));
        World::new(spec.clone()).write_csv(&file)?;
        files.push(file);
    }
    println!(
        "generated {} FOCUS line items a month for 2025-02 and 2025-03 (seed {}, {} services, {} shared resources; {spike} spikes on 2025-03-20, {rise} rises 60% in March)",
        spec.rows,
        spec.seed,
        spec.services.len(),
        spec.shared
    );

    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the old demo store {}", path.display()))?;
        }
    }
    let url = format!("sqlite://{}", db.display());
    let store = Store::connect(&url).await?;
    let imported = jobs::import_files(&store, &files, Clock::System).await?;
    println!(
        "imported {} line items as {} daily facts into {url}",
        imported.line_items, imported.facts
    );
    let range = (date(2, 1), date(3, 31));
    let summary = jobs::allocate_range(
        &store,
        &rules,
        &UsageWeights::default(),
        basis,
        range,
        Clock::System,
    )
    .await?;
    println!(
        "allocated with {} services and {} pools from {} (rules {}): {} allocation rows, {} used a fallback\n",
        rules.services.len(),
        rules.pools.len(),
        rules_dir.display(),
        rules.hash,
        summary.allocations,
        summary.fallback_rows
    );
    let march = (date(3, 1), date(3, 31));
    let report = jobs::report(&store, march).await?;
    print!("{}", report.render(Format::Table, false));
    let detected = jobs::detect_alerts(&store, &rules, Some(date(3, 31)), Some(30)).await?;
    let statement = jobs::reports::statement(
        &store,
        "2025-03",
        crate::report::statement::GroupBy::Service,
        false,
        None,
        7,
    )
    .await?;
    let team = rules
        .services
        .iter()
        .find(|s| s.slack_channel.is_some())
        .map(|s| s.team.clone());
    let digests = match &team {
        Some(team) => {
            jobs::reports::team_digests(
                &store,
                &rules,
                crate::report::digest::Period::Month,
                date(4, 1),
                Some(team),
            )
            .await?
        }
        None => Vec::new(),
    };
    store.close().await;
    println!("\nalerts for {}: {}", detected.day, detected.alerts.len());
    for a in &detected.alerts {
        println!("\n- {}", a.summary());
    }
    let statement_file = db.with_file_name("costsplit-demo-statement-2025-03.csv");
    std::fs::write(&statement_file, statement.csv())
        .with_context(|| format!("writing {}", statement_file.display()))?;
    let totals: Vec<String> = statement
        .totals
        .iter()
        .map(|t| {
            format!(
                "{} {} billed, {} allocated, difference {}",
                t.currency,
                crate::money::minor_text(t.billed_minor, &t.currency),
                crate::money::minor_text(t.allocated_minor, &t.currency),
                crate::money::minor_text(t.allocated_minor - t.billed_minor, &t.currency)
            )
        })
        .collect();
    println!(
        "\nwrote finance's statement for 2025-03 to {} ({} lines; {})",
        statement_file.display(),
        statement.lines.len(),
        totals.join("; ")
    );
    for d in &digests {
        println!(
            "\nthe Slack report team {} would get for {} ({}):",
            d.team,
            d.label,
            if d.channel.is_empty() {
                "the team's webhook"
            } else {
                &d.channel
            }
        );
        for line in crate::report::digest::plain_text(d) {
            println!("  {line}");
        }
    }
    println!(
        "\nno Slack configured, so nothing was sent; with COSTSPLIT_SLACK_WEBHOOK_URL set, `costsplit --store {url} alerts check --date 2025-03-31 --lookback 30 && costsplit --store {url} notify` delivers them"
    );
    println!(
        "next: costsplit --store {url} explain --service {} --month 2025-03",
        rules
            .services
            .first()
            .map_or("checkout-api", |s| s.name.as_str())
    );
    Ok(if report.reconciled() { 0 } else { 1 })
}
