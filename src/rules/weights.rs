//! Usage weights of a pool's members: a table keyed by (day, resource), either of which may be
//! "any". This is the seam for usage sources: a static table or CSV file today, live
//! measurements (table bytes, key counts, partition bytes) from the store later.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::NaiveDate;

use super::diagnostic::Diagnostic;
use crate::money::parse_scaled;

/// Weights are kept as integers scaled by 1e6 so splits are exact and deterministic.
pub const WEIGHT_DECIMALS: u32 = 6;

/// Which part of a pool a set of weights applies to; `None` means "any".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WeightKey {
    pub day: Option<NaiveDate>,
    pub resource_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightRow {
    pub key: WeightKey,
    pub service: String,
    /// Scaled by 1e6.
    pub weight: u128,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeightTable {
    sets: BTreeMap<WeightKey, BTreeMap<String, u128>>,
}

impl WeightTable {
    pub fn from_rows(rows: impl IntoIterator<Item = WeightRow>) -> WeightTable {
        let mut table = WeightTable::default();
        for row in rows {
            *table
                .sets
                .entry(row.key)
                .or_default()
                .entry(row.service)
                .or_default() += row.weight;
        }
        table
    }

    /// Whether weights are given per resource, in which case each resource's cost in the pool
    /// is split by its own weights.
    pub fn per_resource(&self) -> bool {
        self.sets.keys().any(|k| k.resource_id.is_some())
    }

    /// The most specific weights for a day and resource: (day, resource), then (any day,
    /// resource), then (day, any resource), then (any, any).
    pub fn lookup(
        &self,
        day: NaiveDate,
        resource_id: Option<&str>,
    ) -> Option<&BTreeMap<String, u128>> {
        let resource = resource_id.map(str::to_string);
        let candidates = [
            (Some(day), resource.clone()),
            (None, resource),
            (Some(day), None),
            (None, None),
        ];
        candidates
            .into_iter()
            .find_map(|(day, resource_id)| self.sets.get(&WeightKey { day, resource_id }))
    }

    pub fn services(&self) -> BTreeSet<&str> {
        self.sets
            .values()
            .flat_map(|set| set.keys().map(String::as_str))
            .collect()
    }

    /// Replaces this table's weights with newer measurements for the same keys.
    pub fn overlay(&mut self, newer: &WeightTable) {
        for (key, set) in &newer.sets {
            self.sets.insert(key.clone(), set.clone());
        }
    }
}

/// Parses a weight (a non-negative decimal) into its scaled integer form.
pub fn parse_weight(text: &str) -> Option<u128> {
    parse_scaled(text, WEIGHT_DECIMALS).and_then(|v| u128::try_from(v).ok())
}

/// Reads a weight CSV: a header row with `service` and `weight`, optionally `day`
/// (YYYY-MM-DD) and `resource_id` (`ResourceId` is accepted too). Problems are reported
/// per row and column; `resolve` maps a service value to a declared service name or says
/// what is wrong with it.
pub fn read_csv(
    path: &Path,
    resolve: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Vec<WeightRow>, Vec<Diagnostic>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| {
            vec![Diagnostic::error(
                path,
                (0, 0),
                format!("cannot read the weight file: {e}"),
            )]
        })?;
    let columns = reader
        .headers()
        .map_err(|e| format!("bad header: {e}"))
        .and_then(WeightColumns::find)
        .map_err(|message| vec![Diagnostic::error(path, (1, 1), message)])?;
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        match record {
            Ok(record) => rows.extend(columns.row(&record, resolve, &mut |col, message| {
                errors.push(Diagnostic::error(path, (line, col + 1), message));
            })),
            Err(e) => errors.push(Diagnostic::error(
                path,
                (line, 1),
                format!("unreadable row: {e}"),
            )),
        }
    }
    if rows.is_empty() && errors.is_empty() {
        errors.push(Diagnostic::error(
            path,
            (1, 1),
            "the weight file has no rows",
        ));
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// Where a weight file's columns are.
struct WeightColumns {
    service: usize,
    weight: usize,
    day: Option<usize>,
    resource: Option<usize>,
}

impl WeightColumns {
    fn find(headers: &csv::StringRecord) -> Result<WeightColumns, String> {
        let find = |names: &[&str]| {
            headers
                .iter()
                .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
        };
        let (Some(service), Some(weight)) = (find(&["service"]), find(&["weight"])) else {
            return Err("the header must name the columns `service` and `weight` (optionally `day` and `resource_id`)".to_string());
        };
        Ok(WeightColumns {
            service,
            weight,
            day: find(&["day", "date"]),
            resource: find(&["resource_id", "resourceid"]),
        })
    }

    /// One row's weight, or None after telling `problem` (column index, message) what is
    /// wrong with each bad cell.
    fn row(
        &self,
        record: &csv::StringRecord,
        resolve: &dyn Fn(&str) -> Result<String, String>,
        problem: &mut dyn FnMut(usize, String),
    ) -> Option<WeightRow> {
        let field = |col: usize| record.get(col).unwrap_or("").trim();
        let service = resolve(field(self.service))
            .map_err(|message| problem(self.service, message))
            .ok();
        let weight = parse_weight(field(self.weight));
        if weight.is_none() {
            problem(
                self.weight,
                format!(
                    "weight `{}` is not a non-negative decimal number",
                    field(self.weight)
                ),
            );
        }
        let day = match self.day.map(|col| (col, field(col))) {
            None | Some((_, "")) => None,
            Some((col, text)) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| problem(col, format!("day `{text}` is not a date like 2025-03-01")))
                .ok(),
        };
        let resource_id = self
            .resource
            .map(field)
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        Some(WeightRow {
            key: WeightKey { day, resource_id },
            service: service.filter(|s| !s.is_empty())?,
            weight: weight?,
        })
    }
}
