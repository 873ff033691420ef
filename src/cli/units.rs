//! `costsplit units --month M`: each `[[unit]]`'s cost per unit this month against the month
//! before, and each day's (a day without a measurement shows why it has none).

use chrono::NaiveDate;
use clap::Args;

use super::args::month_arg;
use crate::config::Config;
use crate::jobs;

#[derive(Debug, Args)]
pub struct UnitsArgs {
    /// The month, YYYY-MM (default: the month of the last allocated day)
    #[arg(long, value_name = "YYYY-MM", value_parser = month_arg)]
    month: Option<(NaiveDate, NaiveDate)>,
}

pub async fn run(config: &Config, args: UnitsArgs) -> anyhow::Result<i32> {
    let rules = jobs::load_rules(&config.rules_dir, config.catalog.as_ref())?;
    anyhow::ensure!(
        !rules.units.is_empty(),
        "no [[unit]] in the rules: add one (see the README's \"Cost per unit\")"
    );
    let summaries = jobs::with_store(&config.store_url, async |store| {
        let (first, last) = match args.month {
            Some(month) => month,
            None => {
                let day = jobs::last_allocated_day(store).await?;
                crate::model::month_bounds(&day.format("%Y-%m").to_string()).expect("a day's month")
            }
        };
        let before_last = first - chrono::Duration::days(1);
        let before = crate::model::month_bounds(&before_last.format("%Y-%m").to_string())
            .expect("a day's month");
        jobs::unit_summaries(store, &rules, (first, last), before).await
    })
    .await?;
    for s in &summaries {
        print!("{}", s.text());
    }
    Ok(0)
}
