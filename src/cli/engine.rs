//! `costsplit engine sql|run`: the line-items-to-facts step as SQL for Spark or Athena, and
//! run on a Spark cluster.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::jobs::{facts_query, run_spark, Dialect, EngineFormat, SparkRun};

#[derive(Debug, Args)]
pub struct EngineArgs {
    #[command(subcommand)]
    command: EngineCommand,
}

#[derive(Debug, Subcommand)]
enum EngineCommand {
    /// Print the aggregation SQL (reads the relation `costsplit_lines`; docs/facts.md)
    Sql {
        #[arg(long, value_enum)]
        format: EngineFormat,
        #[arg(long, value_enum)]
        dialect: Dialect,
        /// Only this billing period, YYYY-MM (a partition filter)
        #[arg(long, value_parser = period_arg)]
        period: Option<String>,
    },
    /// Run it on a Spark cluster: writes the facts parquet into --output, for
    /// `costsplit import --facts`
    Run {
        /// The export's files: a file or a folder of one export's files
        #[arg(value_name = "INPUT")]
        input: PathBuf,
        #[arg(long, value_enum, default_value = "cur2")]
        format: EngineFormat,
        /// spark://HOST:PORT, local[N], yarn
        #[arg(long, value_name = "URL")]
        spark_master: String,
        /// Spark's folder (bin/spark-sql); default SPARK_HOME, else spark-sql on the PATH
        #[arg(long, value_name = "DIR", env = "SPARK_HOME")]
        spark_home: Option<PathBuf>,
        #[arg(long, value_parser = period_arg)]
        period: Option<String>,
        /// The folder the facts are written to (replaced)
        #[arg(long, value_name = "DIR")]
        output: PathBuf,
        /// A Spark setting, KEY=VALUE (repeatable), e.g. spark.executor.memory=4g
        #[arg(long = "spark-conf", value_name = "KEY=VALUE")]
        conf: Vec<String>,
    },
}

fn period_arg(text: &str) -> Result<String, String> {
    crate::model::month_bounds(text)
        .map(|_| text.to_string())
        .ok_or_else(|| format!("`{text}` is not a billing period; write it as YYYY-MM"))
}

pub fn run(args: EngineArgs) -> anyhow::Result<i32> {
    match args.command {
        EngineCommand::Sql {
            format,
            dialect,
            period,
        } => {
            println!("{};", facts_query(format, dialect, period.as_deref()));
        }
        EngineCommand::Run {
            input,
            format,
            spark_master,
            spark_home,
            period,
            output,
            conf,
        } => {
            let outcome = run_spark(&SparkRun {
                master: spark_master,
                spark_home,
                format,
                period,
                input,
                output: output.clone(),
                conf,
            })?;
            println!(
                "Spark wrote the facts in {:.1} s: {}\nstore them with: costsplit import --facts {}",
                outcome.seconds,
                outcome
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                output.display()
            );
        }
    }
    Ok(0)
}
