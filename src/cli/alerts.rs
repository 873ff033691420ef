//! `costsplit alerts check | preview | list`

use chrono::NaiveDate;
use clap::{Args, Subcommand, ValueEnum};

use super::args::day_arg;
use crate::config::Config;
use crate::jobs::{self, Clock};
use crate::model::MessageState;

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    command: AlertsCommand,
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// Run the detectors and put new alerts in the outbox
    Check(CheckArgs),
    /// Print what would be sent (summary and Slack Block Kit JSON); writes nothing
    Preview(CheckArgs),
    /// List alerts in the outbox
    List {
        #[arg(long, value_enum)]
        state: Option<StateArg>,
    },
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The day to check, YYYY-MM-DD (default: the last allocated day)
    #[arg(long, value_name = "DAY", value_parser = day_arg)]
    date: Option<NaiveDate>,
    /// Days before it to re-examine for spikes (default: `lookback_days` in [alerts], 3)
    #[arg(long, value_name = "DAYS")]
    lookback: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StateArg {
    Pending,
    Sent,
    Failed,
    Resolved,
}

impl From<StateArg> for MessageState {
    fn from(state: StateArg) -> MessageState {
        match state {
            StateArg::Pending => MessageState::Pending,
            StateArg::Sent => MessageState::Sent,
            StateArg::Failed => MessageState::Failed,
            StateArg::Resolved => MessageState::Resolved,
        }
    }
}

pub async fn run(config: &Config, args: AlertsArgs) -> anyhow::Result<i32> {
    match args.command {
        AlertsCommand::List { state } => list(config, state.map(MessageState::from)).await?,
        AlertsCommand::Check(args) => check(config, args).await?,
        AlertsCommand::Preview(args) => preview(config, args).await?,
    }
    Ok(0)
}

async fn list(config: &Config, state: Option<MessageState>) -> anyhow::Result<()> {
    let (rows, marks) = jobs::with_store(&config.store_url, async |store| {
        Ok((
            jobs::list_alerts(store, state).await?,
            jobs::alert_marks(store).await?,
        ))
    })
    .await?;
    let marks: std::collections::HashMap<&str, &jobs::AlertMark> =
        marks.iter().map(|m| (m.anomaly.as_str(), m)).collect();
    println!(
        "{:>5}  {:<9}  {:<16}  {:<20}  {:<18}  {:>8}  detail",
        "id", "state", "kind", "for", "period", "attempts"
    );
    for r in &rows {
        let mut detail = r.last_error.as_ref().unwrap_or(&r.summary).clone();
        if let Some(m) = jobs::anomaly_of(&r.fingerprint)
            .as_deref()
            .and_then(|a| marks.get(a))
        {
            detail = format!(
                "[marked {} by {} at {}; not alerted again while it lasts] {detail}",
                m.mark, m.marked_by, m.marked_at
            );
        }
        println!(
            "{:>5}  {:<9}  {:<16}  {:<20}  {:<18}  {:>8}  {detail}",
            r.id,
            r.state.as_str(),
            r.kind.as_str(),
            r.subject(),
            r.period,
            r.attempts
        );
    }
    Ok(())
}

async fn check(config: &Config, args: CheckArgs) -> anyhow::Result<()> {
    let rules = jobs::load_rules(&config.rules_dir, config.catalog.as_ref())?;
    let (detected, result, budgets) = jobs::with_store(&config.store_url, async |store| {
        let detected = jobs::detect_alerts(store, &rules, args.date, args.lookback).await?;
        let result = jobs::enqueue_alerts(store, &rules, &detected, Clock::System).await?;
        let budgets = jobs::check_budgets(
            store,
            &rules,
            detected.day,
            detected.lookback,
            Clock::System,
        )
        .await?;
        Ok((detected, result, budgets))
    })
    .await?;
    println!(
        "checked {}: {} alert(s) detected, {} new in the outbox, {} already there, {} resolved by restated data",
        detected.day,
        detected.alerts.len(),
        result.inserted,
        result.already_known,
        result.resolved.len()
    );
    if !rules.budgets.is_empty() {
        let (alerts, result) = budgets;
        println!(
            "budgets: {} threshold(s) passed or forecast to pass, {} new in the outbox, {} already there, {} resolved by restated data",
            alerts.len(),
            result.inserted,
            result.already_known,
            result.resolved.len()
        );
    }
    Ok(())
}

async fn preview(config: &Config, args: CheckArgs) -> anyhow::Result<()> {
    let rules = jobs::load_rules(&config.rules_dir, config.catalog.as_ref())?;
    let detected = jobs::with_store(&config.store_url, async |store| {
        jobs::detect_alerts(store, &rules, args.date, args.lookback).await
    })
    .await?;
    println!("alerts for {}: {}", detected.day, detected.alerts.len());
    for a in &detected.alerts {
        println!("\n- {}", a.summary());
        let message = crate::notify::slack::message(a, rules.alerts.dashboard_url.as_deref());
        println!(
            "{}",
            serde_json::to_string_pretty(&message).expect("JSON values always serialise")
        );
    }
    Ok(())
}
