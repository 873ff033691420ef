//! Loading and checking the rules, and the Slack settings they route to.

use std::path::Path;

use crate::notify::routes::{self, SlackConfig};
use crate::notify::SlackSettings;
use crate::rules::{self, Loaded, Rules};

/// The rules in `dir`, or one error listing every problem in them.
pub fn load_rules(dir: &Path) -> anyhow::Result<Rules> {
    rules::load_or_error(dir)
}

/// What `rules check` found: the rules' own diagnostics, and the teams whose Slack routes in
/// costsplit.toml would reach one webhook by accident.
pub struct RulesCheck {
    pub loaded: Loaded,
    pub route_errors: Vec<String>,
}

pub fn check_rules(dir: &Path, slack: &SlackConfig) -> RulesCheck {
    let loaded = rules::load(dir);
    let route_errors = match &loaded.rules {
        Some(r) => {
            let teams: Vec<String> = r.services.iter().map(|s| s.team.clone()).collect();
            routes::resolve(&teams, slack).err().unwrap_or_default()
        }
        None => Vec::new(),
    };
    RulesCheck {
        loaded,
        route_errors,
    }
}

/// Where the rules' teams' messages go, from the environment and costsplit.toml's routes.
pub fn slack_settings(rules: &Rules, slack: &SlackConfig) -> anyhow::Result<SlackSettings> {
    SlackSettings::for_rules(&|k| std::env::var(k).ok(), rules, slack)
}

/// The rules in `dir` with every diagnostic, and every file the load read (a running daemon
/// watches them).
pub fn load_rules_checked(dir: &Path) -> Loaded {
    rules::load(dir)
}

/// The rules files of `dir`, sorted by name.
pub fn rule_files(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    rules::rule_files(dir)
}
