//! The TOML-walking toolkit every rules table uses: a place in a file ([`Loc`]), the file being
//! walked with its diagnostics ([`FileCtx`]: typed getters that report a wrong type at its
//! own line and column, unknown keys listed with the allowed ones), and [`choice`], text to
//! one of a fixed set of values. The table files import this; it imports none of them.

use std::ops::Range;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use toml_edit::{TableLike, Value};

use super::diagnostic::{Diagnostic, LineIndex, Severity};

/// A place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loc {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl Loc {
    pub(super) fn pos(&self) -> (usize, usize) {
        (self.line, self.col)
    }
    pub(super) fn short(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// `name = number` entries of a table (numbers kept as decimal text), and where the table is.
pub(super) type NumberTable = (Vec<(String, String, Loc)>, Loc);

/// One file being walked: its path, line index and the diagnostics gathered so far.
pub(super) struct FileCtx<'a> {
    pub path: &'a Path,
    pub(super) index: LineIndex,
    pub(super) diags: &'a mut Vec<Diagnostic>,
}

impl FileCtx<'_> {
    /// An error at a place already located.
    pub(super) fn push(&mut self, loc: &Loc, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(&loc.file, loc.pos(), message));
    }

    pub(super) fn error_count(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub(super) fn loc(&self, span: Option<Range<usize>>) -> Loc {
        let (line, col) = self.index.span(span);
        Loc {
            file: self.path.to_path_buf(),
            line,
            col,
        }
    }

    pub(super) fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let pos = self.index.span(span);
        self.diags.push(Diagnostic::error(self.path, pos, message));
    }

    /// Reports every key of `table` that is not in `allowed`.
    pub(super) fn check_keys(&mut self, table: &dyn TableLike, allowed: &[&str], what: &str) {
        for (key, _) in table.iter() {
            if !allowed.contains(&key) {
                let span = table.get_key_value(key).and_then(|(k, _)| k.span());
                self.error(
                    span,
                    format!(
                        "unknown key `{key}` in {what}; expected one of: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    pub(super) fn key_loc(&self, table: &dyn TableLike, key: &str) -> Loc {
        self.loc(table.get_key_value(key).and_then(|(k, _)| k.span()))
    }

    pub(super) fn string(&mut self, table: &dyn TableLike, key: &str) -> Option<(String, Loc)> {
        let item = table.get(key)?;
        match item.as_str() {
            Some(s) => Some((s.to_string(), self.loc(item.span()))),
            None => {
                self.error(item.span(), format!("`{key}` must be a string"));
                None
            }
        }
    }

    /// A string or an array of strings.
    pub(super) fn strings(
        &mut self,
        table: &dyn TableLike,
        key: &str,
    ) -> Option<Vec<(String, Loc)>> {
        let item = table.get(key)?;
        if let Some(s) = item.as_str() {
            return Some(vec![(s.to_string(), self.loc(item.span()))]);
        }
        let Some(array) = item.as_array() else {
            self.error(
                item.span(),
                format!("`{key}` must be a string or an array of strings"),
            );
            return None;
        };
        let mut out = Vec::new();
        for value in array.iter() {
            match value.as_str() {
                Some(s) => out.push((s.to_string(), self.loc(value.span()))),
                None => self.error(value.span(), format!("`{key}` must hold only strings")),
            }
        }
        Some(out)
    }

    pub(super) fn integer(&mut self, table: &dyn TableLike, key: &str) -> Option<i64> {
        let item = table.get(key)?;
        item.as_integer().or_else(|| {
            self.error(item.span(), format!("`{key}` must be an integer"));
            None
        })
    }

    pub(super) fn boolean(&mut self, table: &dyn TableLike, key: &str) -> Option<bool> {
        let item = table.get(key)?;
        item.as_bool().or_else(|| {
            self.error(item.span(), format!("`{key}` must be true or false"));
            None
        })
    }

    pub(super) fn table<'t>(
        &mut self,
        table: &'t dyn TableLike,
        key: &str,
    ) -> Option<&'t dyn TableLike> {
        let item = table.get(key)?;
        item.as_table_like().or_else(|| {
            self.error(item.span(), format!("`{key}` must be a table"));
            None
        })
    }

    /// A table of `name = number`, numbers kept as decimal text.
    pub(super) fn number_table(&mut self, table: &dyn TableLike, key: &str) -> Option<NumberTable> {
        let where_ = self.key_loc(table, key);
        let inner = self.table(table, key)?;
        let mut out = Vec::new();
        for (name, item) in inner.iter() {
            let text = match item.as_value() {
                Some(Value::Integer(i)) => Some(i.value().to_string()),
                Some(Value::Float(f)) => Some(f.value().to_string()),
                _ => None,
            };
            let name_loc = self.key_loc(inner, name);
            match text {
                Some(text) => out.push((name.to_string(), text, name_loc)),
                None => self.error(item.span(), format!("`{key}.{name}` must be a number")),
            }
        }
        Some((out, where_))
    }
}

/// Whether `name` of a `[[table]]` (`kind` names it in messages: "budget") is the first of
/// its name in `seen`; a second is an error pointing at the first.
pub(super) fn first_of_name(
    seen: &mut std::collections::BTreeMap<String, Loc>,
    (kind, table): (&str, &str),
    name: &str,
    loc: &Loc,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    if let Some(first) = seen.get(name) {
        diags.push(Diagnostic::error(
            &loc.file,
            loc.pos(),
            format!(
                "{kind} `{name}` is already declared at {}; give each [[{table}]] its own name",
                first.short()
            ),
        ));
        return false;
    }
    seen.insert(name.to_string(), loc.clone());
    true
}

/// Adds a file (by name, so moving the rules directory keeps the hash) and its bytes to the
/// rules hash.
pub(super) fn hash_part(hasher: &mut Sha256, file: &Path, bytes: &[u8]) {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    hasher.update(name.unwrap_or_default().as_bytes());
    hasher.update([0]);
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// `value` as one of `choices`, or the choices to list in the error ("a, b or c"; each in
/// quotes when `quoted`).
pub(super) fn choice<T: Copy>(
    value: &str,
    choices: &[(&str, T)],
    quoted: bool,
) -> Result<T, String> {
    if let Some((_, v)) = choices.iter().find(|(name, _)| *name == value) {
        return Ok(*v);
    }
    let names: Vec<String> = choices
        .iter()
        .map(|(name, _)| {
            if quoted {
                format!("\"{name}\"")
            } else {
                name.to_string()
            }
        })
        .collect();
    Err(match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    })
}

/// The pod label a `by = "label:KEY"` names; `None` when `by` is not of that form.
pub(super) fn label_key(by: &str) -> Option<&str> {
    by.strip_prefix("label:")
        .map(str::trim)
        .filter(|key| !key.is_empty())
}

/// A number of a TOML value as decimal text (integers and floats alike), or empty.
pub(super) fn number_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::Integer(i)) => i.value().to_string(),
        Some(Value::Float(f)) => f.value().to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_are_listed() {
        assert_eq!(choice("b", &[("a", 1), ("b", 2)], false), Ok(2));
        assert_eq!(
            choice("x", &[("a", 1), ("b", 2), ("c", 3)], false),
            Err("a, b or c".to_string())
        );
        assert_eq!(
            choice("x", &[("lower", 1), ("keep", 2)], true),
            Err("\"lower\" or \"keep\"".to_string())
        );
    }
}
