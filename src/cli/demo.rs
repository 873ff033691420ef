//! `costsplit demo`: the demo job, printed step by step.

use std::path::PathBuf;

use clap::Args;

use crate::config::Config;
use crate::jobs;
use crate::money::minor_text;
use crate::report::digest::plain_text;
use crate::report::Format;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Line items to generate
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Where the demo store goes (replaced on each run)
    #[arg(long, default_value = "costsplit-demo.db")]
    db: PathBuf,
}

pub async fn run(config: &Config, args: DemoArgs) -> anyhow::Result<i32> {
    let demo = jobs::demo(
        &config.rules_dir,
        config.cost_basis,
        args.rows,
        args.seed,
        &args.db,
    )
    .await?;
    let (spec, url, rules) = (&demo.spec, &demo.url, &demo.rules);
    println!(
        "generated {} FOCUS line items a month for 2025-02 and 2025-03 (seed {}, {} services, {} shared resources; {} spikes on 2025-03-20, {} rises 60% in March)",
        spec.rows,
        spec.seed,
        spec.services.len(),
        spec.shared,
        demo.spike,
        demo.rise
    );
    println!(
        "imported {} line items as {} daily facts into {url}",
        demo.imported.line_items, demo.imported.facts
    );
    println!(
        "allocated with {} services and {} pools from {} (rules {}): {} allocation rows, {} used a fallback\n",
        rules.services.len(),
        rules.pools.len(),
        config.rules_dir.display(),
        rules.hash,
        demo.allocated.allocations,
        demo.allocated.fallback_rows
    );
    print!("{}", demo.report.render(Format::Table, false));
    println!(
        "\nalerts for {}: {}",
        demo.detected.day,
        demo.detected.alerts.len()
    );
    for a in &demo.detected.alerts {
        println!("\n- {}", a.summary());
    }
    if !demo.budgets.is_empty() {
        println!(
            "\nas known on 2025-03-15 (`costsplit forecast --month 2025-03 --as-of 2025-03-15`):"
        );
        print!("{}", crate::report::budgets::text("2025-03", &demo.budgets));
    }
    let totals: Vec<String> = demo
        .statement
        .totals
        .iter()
        .map(|t| {
            format!(
                "{} {} billed, {} allocated, difference {}",
                t.currency,
                minor_text(t.billed_minor, &t.currency),
                minor_text(t.allocated_minor, &t.currency),
                minor_text(t.allocated_minor - t.billed_minor, &t.currency)
            )
        })
        .collect();
    println!(
        "\nwrote finance's statement for 2025-03 to {} ({} lines; {})",
        demo.statement_file.display(),
        demo.statement.lines.len(),
        totals.join("; ")
    );
    for d in &demo.digests {
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
        for line in plain_text(d) {
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
    Ok(if demo.report.reconciled() { 0 } else { 1 })
}
