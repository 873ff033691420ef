//! How the process runs (not what it computes): the store URL, the rules directory and the
//! cost basis. Layered: built-in defaults, then `costsplit.toml`, then `COSTSPLIT_*`
//! environment variables, then command-line flags. Unknown keys are errors.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

pub use crate::catalog::CatalogSettings;
use crate::ingest::cost_explorer::AwsSettings;
use crate::ingest::s3_exports::ExportSource;
use crate::model::CostBasis;
use crate::notify::routes::SlackConfig;

pub const DEFAULT_STORE_URL: &str = "sqlite://costsplit.db";
pub const DEFAULT_CONFIG_FILE: &str = "costsplit.toml";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub store_url: String,
    pub rules_dir: PathBuf,
    pub cost_basis: CostBasis,
    /// `[aws]`: Cost Explorer sync (only from the file).
    pub aws: Option<AwsSettings>,
    /// `[[exports]]`: billing exports pulled from S3 (only from the file).
    pub exports: Vec<ExportSource>,
    /// `[daemon]`: `costsplit run` (listen address from `COSTSPLIT_LISTEN` too).
    pub daemon: DaemonSettings,
    /// `[slack]`: where each team's webhook is read from (only from the file).
    pub slack: SlackConfig,
    /// `[catalog]`: service ownership from the service catalog (only from the file).
    pub catalog: Option<CatalogSettings>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    store_url: Option<String>,
    rules_dir: Option<PathBuf>,
    cost_basis: Option<String>,
    aws: Option<AwsSettings>,
    #[serde(default)]
    exports: Vec<ExportSource>,
    #[serde(default)]
    daemon: DaemonSettings,
    #[serde(default)]
    slack: SlackConfig,
    catalog: Option<CatalogSettings>,
}

/// Command-line overrides (the highest layer).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub store_url: Option<String>,
    pub rules_dir: Option<PathBuf>,
    pub cost_basis: Option<CostBasis>,
}

impl Config {
    /// Loads the layers. `env` reads an environment variable (injected for tests).
    pub fn load(
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let (path, required) = match &overrides.config_file {
            Some(path) => (path.clone(), true),
            None => match env("COSTSPLIT_CONFIG") {
                Some(path) => (PathBuf::from(path), true),
                None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
            },
        };
        let file = read_file(&path, required)?;
        let base_dir = path.parent().unwrap_or(Path::new("")).to_path_buf();

        let store_url = overrides
            .store_url
            .clone()
            .or_else(|| env("COSTSPLIT_STORE_URL"))
            .or(file.store_url)
            .unwrap_or_else(|| DEFAULT_STORE_URL.to_string());
        let rules_dir = overrides
            .rules_dir
            .clone()
            .or_else(|| env("COSTSPLIT_RULES_DIR").map(PathBuf::from))
            .or_else(|| file.rules_dir.map(|d| base_dir.join(d)))
            .unwrap_or_else(|| PathBuf::from("rules"));
        let cost_basis = match overrides.cost_basis {
            Some(basis) => basis,
            None => env("COSTSPLIT_COST_BASIS")
                .or(file.cost_basis)
                .map_or(Ok(CostBasis::Effective), |text| text.parse())?,
        };
        if let Some(aws) = &file.aws {
            aws.validate()
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        for export in &file.exports {
            export
                .validate()
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        if let Some(catalog) = &file.catalog {
            catalog
                .validate()
                .map_err(|e| anyhow::anyhow!("{}: [catalog]: {e}", path.display()))?;
        }
        let mut daemon = file.daemon;
        if let Some(listen) = env("COSTSPLIT_LISTEN") {
            daemon.listen = listen;
        }
        Ok(Config {
            store_url,
            rules_dir,
            cost_basis,
            aws: file.aws,
            exports: file.exports,
            daemon,
            slack: file.slack,
            catalog: file.catalog,
        })
    }
}

impl Config {
    /// The days before today Cost Explorer may still revise, and the day of a month until
    /// which the previous month's bill may still change: `[aws]`'s settings, else 3 and 7.
    pub fn restatement(&self) -> (u32, u32) {
        self.aws
            .as_ref()
            .map_or((3, 7), |a| (a.restate_days.max(1), a.month_final_day))
    }

    /// The days the bill may still change on `today` (see [`Config::restatement`]).
    pub fn restatement_window(
        &self,
        today: chrono::NaiveDate,
    ) -> (chrono::NaiveDate, chrono::NaiveDate) {
        let (restate_days, month_final_day) = self.restatement();
        crate::ingest::cost_explorer::restatement_window(today, restate_days, month_final_day)
    }
}

fn read_file(path: &Path, required: bool) -> anyhow::Result<FileConfig> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start].matches('\n').count() + 1)
                .unwrap_or(1);
            anyhow::anyhow!(
                "{}:{line}: {}; valid keys are store_url, rules_dir, cost_basis, the [aws], [daemon] and [slack] tables and [[exports]] entries (see README)",
                path.display(),
                e.message()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            Ok(FileConfig::default())
        }
        Err(e) => Err(e).with_context(|| format!("reading the config file {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("costsplit.toml");
        std::fs::write(
            &file,
            "store_url = \"sqlite://a.db\"\ncost_basis = \"billed\"\n",
        )
        .expect("write");
        let overrides = Overrides {
            config_file: Some(file.clone()),
            ..Overrides::default()
        };
        let config = Config::load(&overrides, &|_| None).expect("loads");
        assert_eq!(config.store_url, "sqlite://a.db");
        assert_eq!(config.cost_basis, CostBasis::Billed);
        let env = |k: &str| (k == "COSTSPLIT_STORE_URL").then(|| "postgres://x@h/db".to_string());
        assert_eq!(
            Config::load(&overrides, &env).expect("loads").store_url,
            "postgres://x@h/db"
        );

        std::fs::write(&file, "store_url = \"x\"\nstroe = 1\n").expect("write");
        let err = Config::load(&overrides, &|_| None).expect_err("unknown key");
        assert!(err.to_string().contains(":2:"), "{err}");
    }
}

/// `[daemon]` in costsplit.toml. Every key has a default, so a config with only a store URL
/// and credentials runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSettings {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub listen: String,
    /// The time zone the schedules are read in (IANA name).
    pub timezone: String,
    /// How long a running job may take to finish after SIGTERM before it is abandoned (its
    /// transaction then rolls back).
    pub grace_seconds: u64,
    /// How often a standby replica tries to take the lead, and the rules files are checked.
    pub poll_seconds: u64,
    pub schedule: Schedules,
}

impl Default for DaemonSettings {
    fn default() -> DaemonSettings {
        DaemonSettings {
            listen: "127.0.0.1:9464".into(),
            timezone: "UTC".into(),
            grace_seconds: 30,
            poll_seconds: 5,
            schedule: Schedules::default(),
        }
    }
}

/// `[daemon.schedule]`: a cron expression per job (sec min hour day month weekday).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Schedules {
    pub sync_catalog: String,
    pub sync_billing: String,
    pub sync_exports: String,
    pub sync_usage: String,
    pub allocate: String,
    pub alerts: String,
    pub report_weekly: String,
    pub report_monthly: String,
    pub notify: String,
}

impl Default for Schedules {
    fn default() -> Schedules {
        Schedules {
            sync_catalog: "0 50 * * * *".into(),
            sync_billing: "0 0 6 * * *".into(),
            sync_exports: "0 30 */6 * * *".into(),
            sync_usage: "0 0 5 * * *".into(),
            allocate: "0 0 7 * * *".into(),
            alerts: "0 15 7 * * *".into(),
            report_weekly: "0 0 8 * * Mon".into(),
            report_monthly: "0 0 8 2 * *".into(),
            notify: "0 */5 * * * *".into(),
        }
    }
}
