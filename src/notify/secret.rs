//! Secrets (webhook URLs, tokens) that print as `***`.

use std::fmt;

/// A secret string (webhook URL, token). Its `Debug` shows `***`; it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The variable `name` (when not blank), else the file `{name}_FILE` names, trimmed; none
    /// when neither is set.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        name: &str,
    ) -> anyhow::Result<Option<Secret>> {
        if let Some(value) = env(name).filter(|v| !v.trim().is_empty()) {
            return Ok(Some(Secret::new(value.trim())));
        }
        match env(&format!("{name}_FILE")) {
            Some(path) => {
                let value = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("reading {name}_FILE ({path}): {e}"))?;
                Ok(Some(Secret::new(value.trim())))
            }
            None => Ok(None),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}
