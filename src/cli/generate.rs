//! `costsplit generate`: a seeded synthetic month of FOCUS line items, or of a CUR 2.0 export
//! with split cost allocation data.

use std::path::PathBuf;

use clap::Args;

use crate::jobs;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output file: .csv, .csv.gz or .parquet
    #[arg(long)]
    out: PathBuf,
    /// Also write the shared resources' weight table (resource_id, service, weight) here
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Services the line items are tagged with (default: the standard 60)
    #[arg(long)]
    services: Option<usize>,
    /// The month to generate, YYYY-MM (default 2025-03)
    #[arg(long, value_parser = month_arg)]
    month: Option<chrono::NaiveDate>,
    /// Write a CUR 2.0 export with split cost allocation data (EKS pods on three clusters)
    /// instead of FOCUS
    #[arg(long, conflicts_with = "weights")]
    split_cost: bool,
    /// Write the month as an AWS CUR 2.0 export (no split cost allocation data) instead of
    /// FOCUS
    #[arg(long, conflicts_with_all = ["weights", "split_cost"])]
    cur2: bool,
}

fn month_arg(text: &str) -> Result<chrono::NaiveDate, String> {
    crate::model::month_bounds(text)
        .map(|(first, _)| first)
        .ok_or_else(|| format!("`{text}` is not a month; write it as YYYY-MM, e.g. 2025-03"))
}

pub fn run(args: &GenerateArgs) -> anyhow::Result<i32> {
    if args.split_cost {
        let rows = jobs::generate_split_cost(
            args.rows,
            args.seed,
            (args.services, args.month),
            &args.out,
        )?;
        eprintln!(
            "wrote a CUR 2.0 export with split cost allocation data ({rows} line items) to {}",
            args.out.display()
        );
        return Ok(0);
    }
    if args.cur2 {
        jobs::generate_cur2(args.rows, args.seed, (args.services, args.month), &args.out)?;
        eprintln!(
            "wrote a CUR 2.0 export of {} line items to {}",
            args.rows,
            args.out.display()
        );
        return Ok(0);
    }
    jobs::generate(
        args.rows,
        args.seed,
        (args.services, args.month),
        &args.out,
        args.weights.as_deref(),
    )?;
    eprintln!("wrote {} line items to {}", args.rows, args.out.display());
    Ok(0)
}
