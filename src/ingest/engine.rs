//! The one heavy step, line items to daily facts, as SQL for the engine where the export
//! already lives (issue 28): Spark SQL for a Spark cluster, Trino SQL for Athena. The plan is
//! built by each format's own module from the declarations its local reader uses
//! ([`super::cur::engine_plan`]), and rendered here per dialect; the engine writes the facts
//! contract ([`super::facts`]) and `costsplit import --facts` stores it. Money stays exact:
//! amounts are read as decimal text and summed as `DECIMAL(38, 11)`, and the one rounding to
//! nano-units is costsplit's, on import. Pure text: nothing here runs a query.

use std::path::{Path, PathBuf};

use super::facts;
use super::file::{FileFormat, ImportError};
use super::line::{tag_key_prefixes, FINE_DECIMALS, KEY_NAMES};

/// The SQL dialects costsplit writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    /// Spark SQL (Spark 3.4+, EMR, Glue, Databricks).
    Spark,
    /// Trino (Athena engine version 3).
    Trino,
}

/// The export formats the engine can sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineFormat {
    /// AWS Data Exports CUR 2.0.
    Cur2,
    /// FOCUS 1.0-1.3 (any provider's).
    Focus,
    /// The legacy AWS CUR: `lineItem/UnblendedCost` CSV headers and a column per tag, or
    /// its snake_case parquet and Athena table.
    LegacyCur,
}

impl EngineFormat {
    fn plan(self, sql: &Sql) -> Plan {
        match self {
            // One plan: the columns it reads have both CURs' names.
            EngineFormat::Cur2 | EngineFormat::LegacyCur => super::cur::engine_plan(sql),
            EngineFormat::Focus => super::focus::engine_plan(sql),
        }
    }
}

/// The name of the relation the SQL reads: the export's line items, every column as text
/// (maps as JSON text). `costsplit engine run` defines it over the files; on Athena it is a
/// view over the export's table (see `docs/facts.md`).
pub const LINES: &str = "costsplit_lines";

/// Renders the plan's steps in one dialect.
pub struct Sql {
    dialect: Dialect,
}

/// The select expressions of the aggregation, in the facts contract's order.
pub struct Plan {
    pub day: String,
    pub period: String,
    pub keys: [String; KEY_NAMES.len()],
    pub effective: String,
    pub billed: String,
    pub list: String,
    pub contracted: String,
    /// The columns the plan reads, each with the names a file may give it (matched without
    /// regard to case); a relation without one gets it as NULL.
    pub columns: Vec<(String, Vec<&'static str>)>,
    /// Columns whose presence (a non-empty value) the engine cannot handle, with why: the
    /// query fails on the first such row instead of summing it differently from the import.
    pub refused: Vec<(String, &'static str)>,
    /// A column of tags as a JSON object that a source without it builds from a column per
    /// tag (legacy CUR): its name, and how the local reader finds those columns and keys.
    pub tag_columns: Option<(&'static str, TagColumnsOf)>,
}

/// Finds the tag columns of a header: (index, key).
pub type TagColumnsOf = fn(&[String]) -> Vec<(usize, String)>;

/// The decimal type sums are made in: 38 digits, 1e-11 (the finest a billing file carries).
fn decimal() -> String {
    format!("DECIMAL(38, {FINE_DECIMALS})")
}

impl Sql {
    pub fn new(dialect: Dialect) -> Sql {
        Sql { dialect }
    }

    /// A float column's value as exact decimal text by the local reader's float rule
    /// (`parquet::fine_units`): below 90,000 its value times 1e11 rounded, else its
    /// shortest decimal form (in Trino, its cast to the sums' decimal, which rounds that
    /// form half up at 11 decimals as the import does).
    pub fn float_text(&self, quoted: &str) -> String {
        let units = format!("CAST(ROUND({quoted} * 1.0E11) AS BIGINT)");
        match self.dialect {
            Dialect::Spark => format!(
                "CASE WHEN ABS({quoted}) < 9.0E4 THEN CAST(CAST(CONCAT(CAST({units} AS STRING), 'E-11') AS {}) AS STRING) ELSE CAST({quoted} AS STRING) END",
                decimal()
            ),
            // Trino's text to decimal takes no exponent: scale the integer units instead.
            Dialect::Trino => format!(
                "CASE WHEN ABS({quoted}) < 9.0E4 THEN CAST(CAST({units} AS DECIMAL(20, 0)) * DECIMAL '0.{}1' AS VARCHAR) ELSE CAST(CAST({quoted} AS {}) AS VARCHAR) END",
                "0".repeat(FINE_DECIMALS as usize - 1),
                decimal()
            ),
        }
    }

    /// A map or struct column as JSON text (as the local reader renders a parquet map).
    pub fn json(&self, quoted: &str) -> String {
        match self.dialect {
            Dialect::Spark => format!("TO_JSON({quoted})"),
            Dialect::Trino => format!("JSON_FORMAT(CAST({quoted} AS JSON))"),
        }
    }

    fn string_type(&self) -> &'static str {
        match self.dialect {
            Dialect::Spark => "STRING",
            Dialect::Trino => "VARCHAR",
        }
    }

    /// `name` quoted as an identifier: backticks in Spark, double quotes in Trino.
    pub fn quote(&self, name: &str) -> String {
        match self.dialect {
            Dialect::Spark => format!("`{}`", name.replace('`', "``")),
            Dialect::Trino => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// A column as trimmed text, NULL when empty or `NULL` (as the local reader's
    /// `null_to_empty`).
    pub fn text(&self, column: &str) -> String {
        format!(
            "NULLIF(NULLIF(TRIM(CAST({} AS {})), ''), 'NULL')",
            self.quote(column),
            self.string_type()
        )
    }

    /// A date or timestamp column's day: its first ten characters (`YYYY-MM-DD`), as the
    /// local reader takes them, whatever the time and offset after them.
    pub fn day(&self, column: &str) -> String {
        format!("CAST(SUBSTR({}, 1, 10) AS DATE)", self.text(column))
    }

    /// A cost column as an exact decimal (empty is zero), rounded half away from zero past
    /// 11 decimals, as the local reader's `parse_decimal`.
    pub fn amount(&self, column: &str) -> String {
        format!(
            "COALESCE(CAST({} AS {}), {})",
            self.text(column),
            decimal(),
            self.zero()
        )
    }

    /// A string literal.
    fn literal(&self, text: &str) -> String {
        match self.dialect {
            Dialect::Spark => literal(text),
            Dialect::Trino => format!("'{}'", text.replace('\'', "''")),
        }
    }

    /// A JSON object of tags from a column per tag ((column, key)), as [`Sql::tags`] reads
    /// the CUR 2.0 map: values as trimmed text, an empty one null (dropped there).
    fn tags_object(&self, columns: &[(String, String)]) -> String {
        if columns.is_empty() {
            return "'{}'".to_string();
        }
        let keys: Vec<String> = columns.iter().map(|(_, k)| self.literal(k)).collect();
        let values: Vec<String> = columns.iter().map(|(c, _)| self.text(c)).collect();
        match self.dialect {
            Dialect::Spark => {
                let pairs: Vec<String> = keys
                    .iter()
                    .zip(&values)
                    .map(|(k, v)| format!("{k}, {v}"))
                    .collect();
                format!("TO_JSON(MAP({}))", pairs.join(", "))
            }
            Dialect::Trino => format!(
                "JSON_FORMAT(CAST(MAP(ARRAY[{}], ARRAY[{}]) AS JSON))",
                keys.join(", "),
                values.join(", ")
            ),
        }
    }

    pub fn zero(&self) -> String {
        format!("CAST(0 AS {})", decimal())
    }

    /// A text field of a JSON object column (`product` → `product_name`).
    pub fn json_text_field(&self, column: &str, key: &str) -> String {
        let function = match self.dialect {
            Dialect::Spark => "GET_JSON_OBJECT",
            Dialect::Trino => "JSON_EXTRACT_SCALAR",
        };
        format!("NULLIF({function}({}, '$.{key}'), '')", self.text(column))
    }

    /// A text key as FOCUS's reader keeps it: untrimmed, `NULL` and null empty.
    pub fn untrimmed_key(&self, column: &str) -> String {
        let raw = format!("CAST({} AS {})", self.quote(column), self.string_type());
        format!("CASE WHEN {raw} = 'NULL' THEN '' ELSE COALESCE({raw}, '') END")
    }

    /// A JSON object column of tags as the contract's `tags`: a JSON object of the tags, keys
    /// in order, `{}` for none; null values dropped, and with `cur`, as the CUR's reader
    /// does, empty values too and user tags without their prefix (`user_`, `user:`).
    pub fn tags(&self, column: &str, cur: bool) -> String {
        let prefixes: Vec<String> = tag_key_prefixes().iter().map(|p| regex_escape(p)).collect();
        let strip = format!("'^({})'", prefixes.join("|"));
        let text = self.text(column);
        let keep = match cur {
            true => "(k, v) -> v IS NOT NULL AND v <> ''",
            false => "(k, v) -> v IS NOT NULL",
        };
        let parsed = match self.dialect {
            Dialect::Spark => format!("FROM_JSON({text}, 'map<string,string>')"),
            Dialect::Trino => format!("CAST(JSON_PARSE({text}) AS MAP(VARCHAR, VARCHAR))"),
        };
        let map = match cur {
            true => format!("TRANSFORM_KEYS({parsed}, (k, v) -> REGEXP_REPLACE(k, {strip}, ''))"),
            false => parsed.clone(),
        };
        let kept = format!("MAP_FILTER({map}, {keep})");
        let tags = match self.dialect {
            // Keys in order, so equal tags give equal text.
            Dialect::Spark => format!(
                "COALESCE(TO_JSON(MAP_FROM_ENTRIES(ARRAY_SORT(MAP_ENTRIES({kept})))), '{{}}')"
            ),
            Dialect::Trino => format!("COALESCE(JSON_FORMAT(CAST({kept} AS JSON)), '{{}}')"),
        };
        // Text that is not a JSON object of text values fails the query, as the local import
        // refuses it (Spark would read it as no tags, and its cost would go unallocated;
        // Trino's parse fails on it, with no column named).
        let parsed = match self.dialect {
            Dialect::Spark => parsed,
            Dialect::Trino => format!("TRY({parsed})"),
        };
        let malformed =
            format!("{text} IS NOT NULL AND LOWER({text}) <> 'null' AND {parsed} IS NULL");
        let message = format!(
            "a {column} value is not a JSON object of tags; costsplit import names its row and column"
        );
        format!(
            "CASE WHEN {malformed} THEN {} ELSE {tags} END",
            self.raise(&message)
        )
    }

    /// An expression that fails the query with `message` (no quotes in it).
    fn raise(&self, message: &str) -> String {
        let message = message.replace('\'', "");
        match self.dialect {
            Dialect::Spark => format!("RAISE_ERROR('{message}')"),
            Dialect::Trino => format!("FAIL('{message}')"),
        }
    }

    /// Fails the query, with `message` (no quotes in it), on a row where `condition` holds.
    fn fail_when(&self, condition: &str, message: &str) -> String {
        format!(
            "CASE WHEN {condition} THEN {} ELSE TRUE END",
            self.raise(message)
        )
    }
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = ".^$*+?()[]{}|\\".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// The aggregation of `format`'s line items into daily facts, in `dialect`, reading
/// [`LINES`], optionally only the billing period `period` (`YYYY-MM`).
pub fn facts_query(format: EngineFormat, dialect: Dialect, period: Option<&str>) -> String {
    facts_query_from(format, dialect, period, LINES)
}

/// [`facts_query`] reading `from`: a relation with the columns of [`LINES`] (a subquery
/// named `costsplit_lines` on Athena, where UNLOAD takes one statement).
pub fn facts_query_from(
    format: EngineFormat,
    dialect: Dialect,
    period: Option<&str>,
    from: &str,
) -> String {
    let sql = Sql::new(dialect);
    let plan = format.plan(&sql);
    let mut select: Vec<String> = Vec::new();
    select.push(format!("{} AS {}", plan.day, facts::DAY));
    select.push(format!("{} AS {}", plan.period, facts::PERIOD));
    for (expr, name) in plan.keys.iter().zip(KEY_NAMES) {
        select.push(format!("{expr} AS {name}"));
    }
    let groups = select.len();
    for (expr, name) in [
        (&plan.effective, facts::EFFECTIVE),
        (&plan.billed, facts::BILLED),
        (&plan.list, facts::LIST),
        (&plan.contracted, facts::CONTRACTED),
    ] {
        select.push(format!("CAST(SUM({expr}) AS {}) AS {name}", decimal()));
    }
    select.push(format!("COUNT(*) AS {}", facts::LINES));
    let mut filters: Vec<String> = plan
        .refused
        .iter()
        .map(|(column, why)| sql.fail_when(&format!("{} IS NOT NULL", sql.text(column)), why))
        .collect();
    if let Some(period) = period {
        // The billing period alone: on a table partitioned by it, only its files are read.
        filters.push(format!("{} = DATE '{period}-01'", plan.period));
    }
    let group_by: Vec<String> = (1..=groups).map(|i| i.to_string()).collect();
    let mut text = format!("SELECT\n  {}\nFROM {from}\n", select.join(",\n  "));
    if !filters.is_empty() {
        text.push_str(&format!("WHERE {}\n", filters.join("\n  AND ")));
    }
    text.push_str(&format!("GROUP BY {}", group_by.join(", ")));
    text
}

/// The columns the plan of `format` reads, with the names a file may give each, for a
/// relation to supply (as NULL when absent).
pub fn columns_read(format: EngineFormat) -> Vec<(String, Vec<&'static str>)> {
    format.plan(&Sql::new(Dialect::Spark)).columns
}

/// How a source column becomes text for [`LINES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Text, a date, a timestamp, a decimal, an integer: cast to text.
    Text,
    /// A map or a struct: its JSON text (as the local reader renders a parquet map).
    Json,
    /// A float: its 1e-11 units by the local reader's float rule, as decimal text.
    Float,
}

/// The export files an engine run reads: their format and columns (from the first file).
pub struct Source {
    pub path: PathBuf,
    pub format: FileFormat,
    pub columns: Vec<(String, ColumnKind)>,
}

impl Source {
    /// `path` (a file, or a folder of one export's files, all of one format), an export
    /// of `format`.
    pub fn open(path: &Path, export: EngineFormat) -> Result<Source, ImportError> {
        let files = super::batch::expand(&[path.to_path_buf()])?;
        let first = files.first().ok_or_else(|| ImportError::Empty {
            file: path.to_path_buf(),
        })?;
        let format = FileFormat::detect(first).ok_or_else(|| ImportError::UnknownFormat {
            file: first.clone(),
        })?;
        if let Some(other) = files.iter().find(|f| FileFormat::detect(f) != Some(format)) {
            return Err(ImportError::Unreadable {
                file: other.clone(),
                message: format!(
                    "is not in the format of {} (an engine run reads files of one format)",
                    first.display()
                ),
            });
        }
        let columns = match format {
            FileFormat::Parquet => super::parquet::ParquetFile::open(first)?.kinds(),
            FileFormat::Csv | FileFormat::GzipCsv => {
                super::csv_file::CsvFile::open(first, format == FileFormat::GzipCsv, 1 << 16)?
                    .header
                    .into_iter()
                    .map(|h| (h, ColumnKind::Text))
                    .collect()
            }
        };
        let header: Vec<String> = columns.iter().map(|(c, _)| c.clone()).collect();
        match export {
            EngineFormat::Cur2 if !super::cur::is_cur(&header) => {
                return Err(ImportError::Unreadable {
                    file: first.clone(),
                    message: "is not an AWS CUR 2.0 export (no line_item_usage_start_date column); give --format for the export it is".into(),
                })
            }
            // The same refusals as an import: a missing required column, named.
            EngineFormat::Focus => {
                super::focus::csv_rows(first, &header)?;
            }
            EngineFormat::LegacyCur
                if !super::cur::is_legacy_cur(&header) && !super::cur::is_cur(&header) =>
            {
                return Err(ImportError::Unreadable {
                    file: first.clone(),
                    message: "is not an AWS CUR (no lineItem/UsageStartDate or line_item_usage_start_date column); give --format for the export it is".into(),
                })
            }
            EngineFormat::Cur2 | EngineFormat::LegacyCur => {}
        }
        Ok(Source {
            path: path.to_path_buf(),
            format,
            columns,
        })
    }
}

/// The select expressions of [`LINES`] over a source with `columns`: every column the plan
/// of `format` reads, as text (by its kind), or NULL where the source lacks it.
pub fn lines_columns(
    format: EngineFormat,
    dialect: Dialect,
    columns: &[(String, ColumnKind)],
) -> Vec<String> {
    let sql = Sql::new(dialect);
    let plan = format.plan(&sql);
    let header: Vec<String> = columns.iter().map(|(c, _)| c.clone()).collect();
    plan.columns
        .into_iter()
        .map(|(name, names)| {
            let found = names.iter().find_map(|want| {
                columns
                    .iter()
                    .find(|(c, _)| c.trim().eq_ignore_ascii_case(want))
            });
            let expr = match found {
                None => match plan.tag_columns {
                    Some((tags, of)) if tags == name => {
                        let found: Vec<(String, String)> = of(&header)
                            .into_iter()
                            .map(|(i, key)| (header[i].clone(), key))
                            .collect();
                        sql.tags_object(&found)
                    }
                    _ => format!("CAST(NULL AS {})", sql.string_type()),
                },
                Some((c, kind)) => {
                    let quoted = sql.quote(c);
                    match kind {
                        ColumnKind::Text => format!("CAST({quoted} AS {})", sql.string_type()),
                        ColumnKind::Json => sql.json(&quoted),
                        ColumnKind::Float => sql.float_text(&quoted),
                    }
                }
            };
            format!("{expr} AS {}", sql.quote(&name))
        })
        .collect()
}

/// A Spark SQL literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The Spark SQL script of an engine run: read `source`, define [`LINES`] (every column the
/// plan reads as text; an absent one NULL), write the facts of `period` (or all) as one
/// parquet file in the folder `output`.
pub fn spark_script(
    format: EngineFormat,
    source: &Source,
    period: Option<&str>,
    output: &Path,
) -> String {
    let path = literal(&source.path.display().to_string());
    let reader = match source.format {
        FileFormat::Parquet => format!("USING parquet OPTIONS (path {path})"),
        // CUR CSV quotes with doubled quotes, and a quoted cell may hold a newline.
        FileFormat::Csv | FileFormat::GzipCsv => format!(
            "USING csv OPTIONS (path {path}, header 'true', escape '\"', multiLine 'true', inferSchema 'false')"
        ),
    };
    let columns = lines_columns(format, Dialect::Spark, &source.columns);
    let query = facts_query(format, Dialect::Spark, period);
    format!(
        "SET spark.sql.session.timeZone=UTC;\n\
         SET spark.sql.ansi.enabled=true;\n\
         SET spark.sql.mapKeyDedupPolicy=LAST_WIN;\n\
         CREATE TEMPORARY VIEW costsplit_source {reader};\n\
         CREATE TEMPORARY VIEW {LINES} AS SELECT\n  {}\nFROM costsplit_source;\n\
         INSERT OVERWRITE DIRECTORY {} USING parquet\n{};\n",
        columns.join(",\n  "),
        literal(&output.display().to_string()),
        // One file: the facts of even the largest bill are small.
        query.replacen("SELECT\n", "SELECT /*+ COALESCE(1) */\n", 1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_sums_exact_decimals_and_writes_the_contract_s_columns_in_order() {
        for dialect in [Dialect::Spark, Dialect::Trino] {
            let sql = facts_query(EngineFormat::Cur2, dialect, Some("2026-04"));
            assert!(!sql.to_ascii_uppercase().contains("DOUBLE"), "{sql}");
            assert!(sql.contains("WHEN 'SavingsPlanCoveredUsage'"), "{sql}");
            assert!(sql.contains("DATE '2026-04-01'"), "{sql}");
            let mut at = 0;
            for column in facts::columns() {
                let found = sql[at..]
                    .find(&format!(" AS {column}"))
                    .unwrap_or_else(|| panic!("{column} not in order in {sql}"));
                at += found + 1;
            }
        }
    }

    #[test]
    fn an_absent_column_is_null_and_a_map_json_in_the_spark_view() {
        let source = Source {
            path: PathBuf::from("/data/cur"),
            format: FileFormat::Parquet,
            columns: vec![
                ("line_item_usage_start_date".into(), ColumnKind::Text),
                ("resource_tags".into(), ColumnKind::Json),
                ("line_item_unblended_cost".into(), ColumnKind::Float),
            ],
        };
        let script = spark_script(EngineFormat::Cur2, &source, None, Path::new("/out"));
        assert!(
            script.contains("TO_JSON(`resource_tags`) AS `resource_tags`"),
            "{script}"
        );
        assert!(
            script.contains("CAST(NULL AS STRING) AS `line_item_resource_id`"),
            "{script}"
        );
        assert!(
            script.contains("ROUND(`line_item_unblended_cost` * 1.0E11)"),
            "{script}"
        );
        assert!(
            script.contains("INSERT OVERWRITE DIRECTORY '/out' USING parquet"),
            "{script}"
        );
    }
}
