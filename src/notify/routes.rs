//! Which webhook each team's messages go to: a route in costsplit.toml, keyed by the team's
//! exact name (`[slack.teams."결제"]` with `webhook_env` or `webhook_file`), else the variable
//! `COSTSPLIT_SLACK_WEBHOOK_URL_<TEAM>` (upper-cased, every other character as `_`). Two
//! teams never reach one destination by accident: names that fold to the same variable
//! (`data-platform` and `data_platform`, `결제` and `검색`) need routes, and routes naming the
//! same secret must all say `shared = true`. Holds no secret: only where to read one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// `[slack]` in costsplit.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Team name (exactly as in the rules) -> where its webhook is.
    #[serde(default)]
    pub teams: BTreeMap<String, TeamRoute>,
}

/// Where one team's webhook URL is read from: an environment variable or a file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamRoute {
    pub webhook_env: Option<String>,
    pub webhook_file: Option<PathBuf>,
    /// This team shares its webhook with the other teams whose routes name it and say so.
    #[serde(default)]
    pub shared: bool,
}

/// Where a team's webhook is read from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Destination {
    /// The variable (or, with `_FILE` appended, a file named by it).
    Env(String),
    File(PathBuf),
}

impl Destination {
    pub fn describe(&self) -> String {
        match self {
            Destination::Env(name) => name.clone(),
            Destination::File(path) => path.display().to_string(),
        }
    }
}

/// The variable a team without a route reads: `payments-core` -> `..._PAYMENTS_CORE`.
pub fn conventional_variable(team: &str) -> String {
    let suffix: String = team
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("COSTSPLIT_SLACK_WEBHOOK_URL_{suffix}")
}

/// Each team's destination, or every reason the map is refused (each a sentence that says
/// what to write in costsplit.toml).
pub fn resolve(
    teams: &[String],
    config: &SlackConfig,
) -> Result<BTreeMap<String, Destination>, Vec<String>> {
    let mut errors = Vec::new();
    let mut map = BTreeMap::new();
    let mut teams: Vec<&String> = teams.iter().collect();
    teams.sort();
    teams.dedup();
    for team in teams {
        let destination = match config.teams.get(team.as_str()) {
            None => Destination::Env(conventional_variable(team)),
            Some(route) => match (&route.webhook_env, &route.webhook_file) {
                (Some(name), None) => Destination::Env(name.clone()),
                (None, Some(path)) => Destination::File(path.clone()),
                _ => {
                    errors.push(format!(
                        "[slack.teams.\"{team}\"] needs exactly one of webhook_env (a variable name) or webhook_file (a path)"
                    ));
                    continue;
                }
            },
        };
        map.insert(team.clone(), destination);
    }
    let mut by_destination: BTreeMap<&Destination, Vec<&String>> = BTreeMap::new();
    for (team, destination) in &map {
        by_destination.entry(destination).or_default().push(team);
    }
    for (destination, teams) in by_destination {
        if teams.len() < 2 {
            continue;
        }
        let all_shared = teams
            .iter()
            .all(|t| config.teams.get(t.as_str()).is_some_and(|r| r.shared));
        if all_shared {
            continue;
        }
        let names: Vec<String> = teams.iter().map(|t| format!("`{t}`")).collect();
        let example = teams[0];
        errors.push(match destination {
            Destination::Env(name) if !config.teams.contains_key(example.as_str()) => format!(
                "teams {} would all read the webhook variable {name}, so one team's alerts and digests would reach another's channel; give each its own in costsplit.toml, e.g. [slack.teams.\"{example}\"] webhook_env = \"SLACK_WEBHOOK_...\"",
                names.join(" and ")
            ),
            _ => format!(
                "teams {} are routed to the same webhook ({}); give each its own, or set shared = true in each of their [slack.teams] routes if they share a channel on purpose",
                names.join(" and "),
                destination.describe()
            ),
        });
    }
    if errors.is_empty() {
        Ok(map)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn teams(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_that_fold_to_one_variable_are_refused_until_routed() {
        let config = SlackConfig::default();
        for pair in [
            ["결제", "검색"],
            ["決済", "検索"],
            ["data-platform", "data_platform"],
        ] {
            let errors = resolve(&teams(&pair), &config).expect_err("a collision");
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].contains(&format!("`{}`", pair[0])), "{errors:?}");
            assert!(errors[0].contains("[slack.teams."), "{errors:?}");
        }
        let mut config = SlackConfig::default();
        config.teams.insert(
            "결제".into(),
            TeamRoute {
                webhook_env: Some("SLACK_PAYMENTS_KR".into()),
                ..TeamRoute::default()
            },
        );
        let map = resolve(&teams(&["결제", "검색"]), &config).expect("routed");
        assert_eq!(map["결제"], Destination::Env("SLACK_PAYMENTS_KR".into()));
        assert_eq!(
            map["검색"],
            Destination::Env("COSTSPLIT_SLACK_WEBHOOK_URL___".into())
        );
    }

    #[test]
    fn two_routes_to_one_webhook_must_both_say_shared() {
        let route = |shared| TeamRoute {
            webhook_file: Some("/run/secrets/finops".into()),
            shared,
            ..TeamRoute::default()
        };
        let mut config = SlackConfig::default();
        config.teams.insert("a".into(), route(true));
        config.teams.insert("b".into(), route(false));
        let errors = resolve(&teams(&["a", "b"]), &config).expect_err("not both shared");
        assert!(errors[0].contains("shared = true"), "{errors:?}");
        config.teams.insert("b".into(), route(true));
        assert!(resolve(&teams(&["a", "b"]), &config).is_ok());
    }
}
