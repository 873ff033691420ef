//! `costsplit catalog sync` and `costsplit catalog show`

use chrono::NaiveDate;
use clap::{Args, Subcommand};

use super::args::month_arg;

use crate::clock::Clock;
use crate::config::Config;
use crate::jobs;

#[derive(Debug, Args)]
pub struct CatalogArgs {
    #[command(subcommand)]
    command: CatalogCommand,
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Fetch the catalog API ([catalog.backstage]) into the snapshot the rules load reads;
    /// with catalog files, read and check them
    Sync,
    /// Print each service the catalog names: team, cost center, Slack channel, and where;
    /// with --month, also the services that month's allocations charge that it does not name
    Show {
        /// A month of stored allocations to check against the catalog, YYYY-MM
        #[arg(long, value_name = "YYYY-MM", value_parser = month_arg)]
        month: Option<(NaiveDate, NaiveDate)>,
    },
}

pub async fn run(config: &Config, args: CatalogArgs) -> anyhow::Result<i32> {
    let Some(settings) = &config.catalog else {
        anyhow::bail!("no [catalog] in costsplit.toml; add one with `files = [\"catalog/\"]` or a [catalog.backstage] table (README: Ownership from your catalog)");
    };
    let mut month = None;
    let (catalog, notes) = match args.command {
        CatalogCommand::Sync => {
            let sync =
                jobs::sync_catalog(settings, &|k| std::env::var(k).ok(), Clock::System.stamp())
                    .await?;
            println!("{}", sync.summary());
            (sync.catalog, sync.notes)
        }
        CatalogCommand::Show { month: m } => {
            month = m;
            jobs::catalog_in_force(settings)?
        }
    };
    for note in &notes {
        eprintln!("warning: {note}");
    }
    println!(
        "{:<28} {:<20} {:<14} {:<20} where",
        "service", "team", "cost center", "slack channel"
    );
    for s in &catalog.services {
        println!(
            "{:<28} {:<20} {:<14} {:<20} {}",
            s.service,
            if s.team.is_empty() {
                "(no owner)"
            } else {
                &s.team
            },
            s.cost_center,
            s.slack_channel.as_deref().unwrap_or(""),
            s.place()
        );
    }
    if let Some(range) = month {
        let missing = jobs::with_store(&config.store_url, async |store| {
            jobs::not_in_catalog(store, &catalog, range).await
        })
        .await?;
        for m in &missing {
            println!(
                "not in the catalog: {} ({}) {}",
                m.service,
                if m.team.is_empty() {
                    "no team"
                } else {
                    &m.team
                },
                crate::money::human(m.total, &m.currency, false)
            );
        }
        if missing.is_empty() {
            println!(
                "every service charged from {} to {} is in the catalog",
                range.0, range.1
            );
        }
    }
    Ok(0)
}
