//! Writing a seeded synthetic month of FOCUS line items (`costsplit generate`), for tests and
//! benchmarks.

use std::path::Path;

use anyhow::Context;

use crate::demo::generate::{GenSpec, World};
use crate::demo::split_cost::{SplitMonth, SplitSpec};

/// Writes `rows` line items of the standard month (March 2025, or the month of `month`),
/// seeded, to `out` (.csv, .csv.gz or .parquet), tagged with `services` services (default the
/// standard 60), and the shared resources' weight table to `weights` if given.
pub fn generate(
    rows: usize,
    seed: u64,
    (services, month): (Option<usize>, Option<chrono::NaiveDate>),
    out: &Path,
    weights: Option<&Path>,
) -> anyhow::Result<()> {
    let spec = spec_of(rows, seed, (services, month))?;
    let world = World::new(spec);
    write_world(&world, out)?;
    if let Some(weights) = weights {
        world.write_weights(weights)?;
    }
    Ok(())
}

/// The standard spec with the month and the number of services asked for.
fn spec_of(
    rows: usize,
    seed: u64,
    (services, month): (Option<usize>, Option<chrono::NaiveDate>),
) -> anyhow::Result<GenSpec> {
    let mut spec = GenSpec::standard(rows, seed);
    if let Some(month) = month {
        spec.month = month;
    }
    if let Some(n) = services {
        anyhow::ensure!(n > 0, "--services must be at least 1");
        let base = spec.services.clone();
        spec.services = (0..n)
            .map(|i| match i / base.len() {
                0 => base[i].clone(),
                round => format!("{}-{round}", base[i % base.len()]),
            })
            .collect();
    }
    Ok(spec)
}

/// Writes about `rows` line items of a CUR 2.0 export with split cost allocation data (see
/// `demo::split_cost`) to `out` (.csv, .csv.gz or .parquet); returns how many it wrote.
pub fn generate_split_cost(
    rows: usize,
    seed: u64,
    (services, month): (Option<usize>, Option<chrono::NaiveDate>),
    out: &Path,
) -> anyhow::Result<usize> {
    let spec = spec_of(rows, seed, (services.or(Some(12)), month))?;
    let month = SplitMonth::new(SplitSpec {
        rows,
        seed,
        month: spec.month,
        services: spec.services,
    });
    by_extension(out, || month.write_parquet(out), || month.write_csv(out))
}

/// Writes `rows` line items of the standard month as an AWS CUR 2.0 export (no split cost
/// allocation data) to `out` (.csv, .csv.gz or .parquet).
pub fn generate_cur2(
    rows: usize,
    seed: u64,
    (services, month): (Option<usize>, Option<chrono::NaiveDate>),
    out: &Path,
) -> anyhow::Result<()> {
    let world = World::new(spec_of(rows, seed, (services, month))?);
    by_extension(
        out,
        || world.write_cur2_parquet(out),
        || world.write_cur2_csv(out),
    )
}

fn write_world(world: &World, out: &Path) -> anyhow::Result<()> {
    by_extension(out, || world.write_parquet(out), || world.write_csv(out))
}

/// Writes `out` as parquet or CSV (gzip CSV), as its name says.
fn by_extension<T>(
    out: &Path,
    parquet: impl FnOnce() -> anyhow::Result<T>,
    csv: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let name = out.to_string_lossy();
    if name.ends_with(".parquet") {
        parquet()
    } else if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        csv()
    } else {
        anyhow::bail!("--out must end in .csv, .csv.gz or .parquet")
    }
    .with_context(|| format!("writing {}", out.display()))
}
