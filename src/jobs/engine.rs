//! `costsplit engine run`: hands the line items to a Spark cluster (`spark-sql`), which
//! writes the facts parquet that `costsplit import --facts` stores.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::ingest::engine::{self, Source};
pub use crate::ingest::engine::{facts_query, Dialect, EngineFormat};

/// What an engine run is given.
pub struct SparkRun {
    /// `spark://host:port`, `local[N]`, `yarn`.
    pub master: String,
    /// Where Spark is (`bin/spark-sql` under it); else `spark-sql` on the PATH.
    pub spark_home: Option<PathBuf>,
    pub format: EngineFormat,
    pub period: Option<String>,
    pub input: PathBuf,
    /// A folder the facts parquet is written to (replaced).
    pub output: PathBuf,
    /// Spark settings (`KEY=VALUE`: executor memory, shuffle partitions, ...).
    pub conf: Vec<String>,
}

/// What a run produced.
pub struct SparkOutcome {
    /// The facts files written (one per run).
    pub files: Vec<PathBuf>,
    pub seconds: f64,
}

/// Runs the generated Spark SQL on the cluster and returns the facts files it wrote.
pub fn run_spark(run: &SparkRun) -> anyhow::Result<SparkOutcome> {
    let source = Source::open(&run.input, run.format)?;
    // Spark is given absolute paths: its executors do not share our working directory.
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let source = Source {
        path: absolute(&source.path),
        ..source
    };
    let output = absolute(&run.output);
    let script = engine::spark_script(run.format, &source, run.period.as_deref(), &output);
    let dir = tempfile::tempdir().context("cannot make a temporary folder for the Spark script")?;
    let file = dir.path().join("costsplit-facts.sql");
    std::fs::write(&file, &script).context("cannot write the Spark script")?;
    let program = match &run.spark_home {
        Some(home) => home.join("bin").join("spark-sql"),
        None => PathBuf::from("spark-sql"),
    };
    let started = Instant::now();
    let mut command = Command::new(&program);
    command
        .arg("--master")
        .arg(&run.master)
        .args(["--conf", "spark.ui.enabled=false"]);
    for setting in &run.conf {
        command.arg("--conf").arg(setting);
    }
    // spark-sql leaves its metastore (metastore_db/, derby.log) in its working folder: the
    // temporary one, not the user's.
    command.arg("-f").arg(&file).current_dir(dir.path());
    if let Some(home) = &run.spark_home {
        command.env("SPARK_HOME", home);
    }
    let result = command.output().with_context(|| {
        format!(
            "cannot start {} (install Spark, or pyspark from PyPI, and give --spark-home or put spark-sql on the PATH)",
            program.display()
        )
    })?;
    let seconds = started.elapsed().as_secs_f64();
    if !result.status.success() {
        bail!(
            "the Spark run failed ({}): {}",
            result.status,
            spark_error(&String::from_utf8_lossy(&result.stderr))
        );
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&output)
        .with_context(|| format!("Spark wrote no folder {}", output.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && n.ends_with(".parquet"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "Spark wrote no facts into {}: the input has no line items{}",
            output.display(),
            run.period
                .as_deref()
                .map(|p| format!(" in billing period {p}"))
                .unwrap_or_default()
        );
    }
    Ok(SparkOutcome { files, seconds })
}

/// The line of Spark's log that says why a query failed (a refused row's message, a bad
/// value), else its last lines.
fn spark_error(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let cause = lines.iter().find(|l| {
        l.contains("USER_RAISED_EXCEPTION")
            || l.contains("AnalysisException")
            || l.contains("SparkArithmeticException")
            || l.contains("SparkNumberFormatException")
            || l.contains("Error in query")
    });
    match cause {
        // A refused row: its message alone.
        Some(line) if line.contains("USER_RAISED_EXCEPTION") => {
            let (_, message) = line
                .split_once("USER_RAISED_EXCEPTION]")
                .unwrap_or(("", line));
            let message = message.split(" SQLSTATE").next().unwrap_or(message);
            message.trim().to_string()
        }
        Some(line) => line.trim().to_string(),
        None => lines[lines.len().saturating_sub(5)..].join(" | "),
    }
}
