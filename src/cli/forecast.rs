//! `costsplit forecast --month M`: each budget's month to date, month-end forecast with its
//! 80% interval, and thresholds.

use chrono::NaiveDate;
use clap::{Args, ValueEnum};

use super::args::{day_arg, month_arg};
use crate::config::Config;
use crate::jobs;

#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// The month, YYYY-MM (default: the month of the last allocated day)
    #[arg(long, value_name = "YYYY-MM", value_parser = month_arg)]
    month: Option<(NaiveDate, NaiveDate)>,
    /// Forecast with what was known on this day, YYYY-MM-DD (default: the last allocated day)
    #[arg(long, value_name = "DAY", value_parser = day_arg)]
    as_of: Option<NaiveDate>,
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Table,
    Json,
}

pub async fn run(config: &Config, args: ForecastArgs) -> anyhow::Result<i32> {
    let rules = jobs::load_rules(&config.rules_dir, config.catalog.as_ref())?;
    let (month, statuses) = jobs::with_store(&config.store_url, async |store| {
        let as_of = match args.as_of {
            Some(day) => day,
            None => jobs::last_allocated_day(store).await?,
        };
        let month = args
            .month
            .map_or(as_of, |(first, _)| first)
            .format("%Y-%m")
            .to_string();
        let statuses = jobs::budget_statuses(store, &rules, &month, Some(as_of)).await?;
        Ok((month, statuses))
    })
    .await?;
    match args.format {
        OutputFormat::Table => print!("{}", crate::report::budgets::text(&month, &statuses)),
        OutputFormat::Json => println!("{}", crate::report::budgets::json(&month, &statuses)),
    }
    Ok(0)
}
