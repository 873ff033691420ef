//! Loading and checking the rules, and the Slack settings they route to.

use std::path::Path;

use crate::catalog::{Catalog, CatalogSettings};
use crate::notify::routes::{self, SlackConfig};
use crate::notify::SlackSettings;
use crate::rules::{self, Diagnostic, Loaded, Rules};

/// The rules in `dir` (with the service catalog's services merged in, when there is a
/// `[catalog]`), or one error listing every problem in them.
pub fn load_rules(dir: &Path, catalog: Option<&CatalogSettings>) -> anyhow::Result<Rules> {
    rules::rules_or_error(dir, load_rules_checked(dir, catalog))
}

/// What `rules check` found: the rules' own diagnostics, and the teams whose Slack routes in
/// costsplit.toml would reach one webhook by accident.
pub struct RulesCheck {
    pub loaded: Loaded,
    pub route_errors: Vec<String>,
}

pub fn check_rules(
    dir: &Path,
    catalog: Option<&CatalogSettings>,
    slack: &SlackConfig,
) -> RulesCheck {
    let loaded = load_rules_checked(dir, catalog);
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
/// watches them): with a `[catalog]`, its files (or its API's snapshot) too, its services
/// merged in, and a catalog that cannot be read an error of the load.
pub fn load_rules_checked(dir: &Path, catalog: Option<&CatalogSettings>) -> Loaded {
    let Some(settings) = catalog else {
        return rules::load(dir);
    };
    match settings.load_local() {
        Ok((catalog, notes, files)) => {
            let mut loaded = rules::load_with_catalog(dir, Some(&catalog));
            loaded.diagnostics.extend(
                notes
                    .into_iter()
                    .map(|note| Diagnostic::warning(Path::new("catalog"), (0, 0), note)),
            );
            loaded.inputs.extend(files);
            loaded
        }
        Err(e) => {
            let mut loaded = rules::load(dir);
            let at = if settings.uses_api() {
                settings.snapshot.clone()
            } else {
                Path::new("catalog").to_path_buf()
            };
            loaded.rules = None;
            loaded
                .diagnostics
                .push(Diagnostic::error(&at, (0, 0), e.to_string()));
            if settings.uses_api() {
                loaded.inputs.push(settings.snapshot.clone());
            }
            loaded
        }
    }
}

/// The catalog as it stands: its files read now, or its API's last good snapshot.
pub fn catalog_in_force(settings: &CatalogSettings) -> anyhow::Result<(Catalog, Vec<String>)> {
    let (catalog, notes, _) = settings.load_local()?;
    Ok((catalog, notes))
}

/// The rules files of `dir`, sorted by name.
pub fn rule_files(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    rules::rule_files(dir)
}
