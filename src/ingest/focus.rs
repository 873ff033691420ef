//! FOCUS 1.0-1.3 billing files: which columns FOCUS names (matched case-insensitively, with
//! the aliases older versions use) and how a FOCUS row, CSV or parquet, maps onto the common
//! line item. Reading the file is `csv_file.rs`'s and `parquet.rs`'s job. Never writes the
//! store.

use std::collections::HashMap;
use std::path::Path;

use super::csv_file::{null_to_empty, parse_cost, DayCache, RowMap, Scratch};
use super::file::ImportError;
use super::line::{parse_tags, Line, KEY_COUNT};
use super::parquet::Selection;

/// How messages name this format.
pub const FOCUS: &str = "a FOCUS 1.0-1.3";

/// The FOCUS columns costsplit reads. The first name is the FOCUS 1.2 name; later ones are
/// accepted aliases. Matching is case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Col {
    ChargePeriodStart,
    BillingPeriodStart,
    BillingCurrency,
    EffectiveCost,
    BilledCost,
    ListCost,
    ContractedCost,
    BillingAccountId,
    SubAccountId,
    Provider,
    ServiceName,
    ResourceId,
    ChargeCategory,
    Tags,
}

/// The FOCUS column of each key of a line (see [`KEY_NAMES`]).
const KEY_COLUMNS: [Col; KEY_COUNT] = [
    Col::BillingAccountId,
    Col::SubAccountId,
    Col::Provider,
    Col::ServiceName,
    Col::ResourceId,
    Col::ChargeCategory,
    Col::BillingCurrency,
    Col::Tags,
];

impl Col {
    const ALL: [Col; 14] = [
        Col::ChargePeriodStart,
        Col::BillingPeriodStart,
        Col::BillingCurrency,
        Col::EffectiveCost,
        Col::BilledCost,
        Col::ListCost,
        Col::ContractedCost,
        Col::BillingAccountId,
        Col::SubAccountId,
        Col::Provider,
        Col::ServiceName,
        Col::ResourceId,
        Col::ChargeCategory,
        Col::Tags,
    ];

    fn names(self) -> &'static [&'static str] {
        match self {
            Col::ChargePeriodStart => &["ChargePeriodStart"],
            Col::BillingPeriodStart => &["BillingPeriodStart"],
            Col::BillingCurrency => &["BillingCurrency"],
            Col::EffectiveCost => &["EffectiveCost"],
            Col::BilledCost => &["BilledCost"],
            Col::ListCost => &["ListCost"],
            Col::ContractedCost => &["ContractedCost"],
            Col::BillingAccountId => &["BillingAccountId"],
            Col::SubAccountId => &["SubAccountId"],
            Col::Provider => &["ServiceProviderName", "ProviderName"],
            Col::ServiceName => &["ServiceName"],
            Col::ResourceId => &["ResourceId"],
            Col::ChargeCategory => &["ChargeCategory"],
            Col::Tags => &["Tags"],
        }
    }

    fn required(self) -> bool {
        matches!(
            self,
            Col::ChargePeriodStart | Col::BillingCurrency | Col::EffectiveCost | Col::BilledCost
        )
    }

    fn is_cost(self) -> bool {
        matches!(
            self,
            Col::EffectiveCost | Col::BilledCost | Col::ListCost | Col::ContractedCost
        )
    }

    fn is_date(self) -> bool {
        matches!(self, Col::ChargePeriodStart | Col::BillingPeriodStart)
    }
}

/// Where each needed column is in a file (its actual name).
#[derive(Clone)]
struct Columns {
    names: HashMap<Col, String>,
}

impl Columns {
    fn resolve(
        file: &Path,
        header: &[String],
        format: &'static str,
    ) -> Result<Columns, ImportError> {
        let mut names = HashMap::new();
        for col in Col::ALL {
            let found = col.names().iter().find_map(|want| {
                header
                    .iter()
                    .find(|h| h.trim().eq_ignore_ascii_case(want))
                    .cloned()
            });
            match found {
                Some(name) => {
                    names.insert(col, name);
                }
                None if col.required() => {
                    return Err(ImportError::missing_column(
                        file,
                        col.names()[0],
                        format,
                        header,
                    ));
                }
                None => {}
            }
        }
        Ok(Columns { names })
    }

    fn get(&self, col: Col) -> Option<&str> {
        self.names.get(&col).map(String::as_str)
    }
}

/// The rows of a FOCUS CSV file with this header.
pub fn csv_rows(file: &Path, header: &[String]) -> Result<CsvRows, ImportError> {
    let columns = Columns::resolve(file, header, FOCUS)?;
    Ok(CsvRows::from_columns(header, &columns))
}

/// What to read from a FOCUS parquet file with these columns.
pub fn parquet_selection(file: &Path, header: &[String]) -> Result<Selection, ImportError> {
    let columns = Columns::resolve(file, header, FOCUS)?;
    let name = |col: Col| columns.get(col).map(str::to_string);
    let required = |col: Col| name(col).expect("a required column");
    Ok(Selection {
        day: required(Col::ChargePeriodStart),
        period: name(Col::BillingPeriodStart),
        keys: KEY_COLUMNS.map(name),
        effective: required(Col::EffectiveCost),
        billed: required(Col::BilledCost),
        list: name(Col::ListCost),
        contracted: name(Col::ContractedCost),
        lines: None,
    })
}

/// Where each needed column is in a row.
pub struct CsvRows {
    header: Vec<String>,
    charge: usize,
    period: Option<usize>,
    effective: usize,
    billed: usize,
    /// Optional before FOCUS 1.0: without them a line's list and contracted cost is its
    /// billed cost.
    list: Option<usize>,
    contracted: Option<usize>,
    keys: [Option<usize>; KEY_COUNT],
    /// Every needed (column, index), left to right as a person reads the row.
    checks: Vec<(Col, usize)>,
}

impl CsvRows {
    fn from_columns(header: &[String], columns: &Columns) -> CsvRows {
        let index = |col: Col| {
            columns
                .get(col)
                .and_then(|name| header.iter().position(|h| h == name))
        };
        let mut checks: Vec<(Col, usize)> = Col::ALL
            .iter()
            .filter_map(|&c| index(c).map(|i| (c, i)))
            .collect();
        checks.sort_by_key(|&(_, i)| i);
        CsvRows {
            header: header.to_vec(),
            charge: index(Col::ChargePeriodStart).expect("a required column"),
            period: index(Col::BillingPeriodStart),
            effective: index(Col::EffectiveCost).expect("a required column"),
            billed: index(Col::BilledCost).expect("a required column"),
            list: index(Col::ListCost),
            contracted: index(Col::ContractedCost),
            keys: KEY_COLUMNS.map(index),
            checks,
        }
    }
}

impl RowMap for CsvRows {
    fn line<'r>(
        &self,
        record: &'r csv::ByteRecord,
        _scratch: &'r mut Scratch,
        [charge_days, period_days]: &mut [DayCache; 2],
    ) -> Result<Line<'r>, (String, String)> {
        let bad = || {
            self.first_problem(record)
                .unwrap_or_else(|| ("-".to_string(), "unreadable row".to_string()))
        };
        let field = |i: usize| record.get(i).unwrap_or_default();
        let day = charge_days.parse(field(self.charge)).ok_or_else(bad)?;
        let period = match self.period.map(field).map(null_to_empty) {
            Some(value) if !value.trim_ascii().is_empty() => {
                period_days.parse(value).ok_or_else(bad)?
            }
            _ => day,
        };
        super::aggregate::check_day_in_period(day, period)
            .map_err(|problem| (self.header[self.charge].clone(), problem.to_string()))?;
        let cost = |i: usize| parse_cost(field(i)).map_err(|_| bad());
        let billed = cost(self.billed)?;
        let or_billed = |i: Option<usize>| match i {
            Some(i) if !null_to_empty(field(i)).trim_ascii().is_empty() => cost(i),
            _ => Ok(billed),
        };
        Ok(Line {
            day,
            period,
            effective: cost(self.effective)?,
            billed,
            list: or_billed(self.list)?,
            contracted: or_billed(self.contracted)?,
            split: None,
            keys: self
                .keys
                .map(|i| i.map_or(&b""[..], |i| null_to_empty(field(i)))),
        })
    }

    fn key_column(&self, record: &csv::ByteRecord, key: usize) -> (String, Option<String>) {
        match self.first_problem(record) {
            Some((column, problem)) => (column, Some(problem)),
            None => (
                self.keys[key]
                    .and_then(|i| self.header.get(i).cloned())
                    .unwrap_or_default(),
                None,
            ),
        }
    }
}

impl CsvRows {
    /// The leftmost problem of a row, as (column name, problem): only called once a row has
    /// failed, so it may be slow.
    fn first_problem(&self, record: &csv::ByteRecord) -> Option<(String, String)> {
        for &(col, i) in &self.checks {
            let raw = record.get(i).unwrap_or_default();
            let shown = String::from_utf8_lossy(raw.trim_ascii());
            let null = null_to_empty(raw).trim_ascii().is_empty();
            let problem = if let (true, Err(problem)) = (col.is_cost(), parse_cost(raw)) {
                Some(problem)
            } else if col == Col::ChargePeriodStart && null {
                Some("empty ChargePeriodStart".to_string())
            } else if col.is_date() && !null && DayCache::default().parse(raw).is_none() {
                Some(format!(
                    "unknown date format `{shown}`; use ISO 8601 such as 2025-03-01T00:00:00Z"
                ))
            } else if std::str::from_utf8(raw).is_err() {
                Some("is not valid UTF-8 text".to_string())
            } else if col == Col::BillingCurrency && null {
                Some("empty currency".to_string())
            } else if col == Col::Tags && !null {
                parse_tags(&shown)
                    .err()
                    .map(|e| format!("not a JSON object of tags ({e}): {shown}"))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Some((self.header[i].clone(), problem));
            }
        }
        None
    }
}

/// The FOCUS reader's mapping of a row, as the select expressions of an engine's aggregation
/// (see `cur::engine_plan`): from the same column declarations ([`Col`], [`KEY_COLUMNS`]).
/// The relation names each column by its first (FOCUS 1.2) name.
pub(super) fn engine_plan(sql: &super::engine::Sql) -> super::engine::Plan {
    use super::engine::Plan;
    let name = |c: Col| c.names()[0];
    let billed = sql.amount(name(Col::BilledCost));
    let or_billed = |c: Col| {
        format!(
            "CASE WHEN {} IS NULL THEN {billed} ELSE {} END",
            sql.text(name(c)),
            sql.amount(name(c))
        )
    };
    let day = sql.day(name(Col::ChargePeriodStart));
    let keys = KEY_COLUMNS.map(|c| match c {
        Col::Tags => sql.tags(name(c), false),
        c => sql.untrimmed_key(name(c)),
    });
    Plan {
        period: format!(
            "COALESCE({}, {day})",
            sql.day(name(Col::BillingPeriodStart))
        ),
        day,
        keys,
        effective: sql.amount(name(Col::EffectiveCost)),
        billed: billed.clone(),
        list: or_billed(Col::ListCost),
        contracted: or_billed(Col::ContractedCost),
        columns: Col::ALL
            .iter()
            .map(|c| (name(*c).to_string(), c.names().to_vec()))
            .collect(),
        refused: Vec::new(),
        tag_columns: None,
    }
}
