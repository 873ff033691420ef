//! AWS Cost and Usage Reports: CUR 2.0 (Data Exports; parquet, CSV, gzip CSV) and the legacy
//! CUR (CSV, gzip CSV), their columns declared once in both naming schemes ([`Field`]).
//! Rows map onto the common line item in one place ([`CurCsv`]): a CSV record as it is, a
//! parquet row as its cells' text ([`parquet_rows`]; maps such as `resource_tags` and
//! `product` as JSON objects, as the CSV export has them).
//!
//! The amortized (effective) cost follows AWS's definition per line item type: savings-plan
//! covered usage at its effective cost, reserved usage at the reservation's effective cost,
//! the unused part of commitments on their fee lines, and the upfront and negation lines that
//! amortization replaces at zero. Everything else is its unblended cost.

use super::csv_file::{null_to_empty, parse_cost, DayCache, RowMap, Scratch};
use super::file::ImportError;
use super::line::{
    Line, SplitShare, ACCOUNT, CATEGORY, CURRENCY, CUR_JSON_TAGS, KEY_COUNT, KV_PAIR, KV_SEP,
    KV_TAGS, PROVIDER, RESOURCE, SERVICE, SUB_ACCOUNT, TAGS,
};

const USAGE_START: &str = "line_item_usage_start_date";
const TYPE: &str = "line_item_line_item_type";

/// A CUR 2.0 file (or a legacy CUR in parquet, which AWS writes with the same snake_case
/// names) is recognised by its usage start column.
pub fn is_cur(header: &[String]) -> bool {
    header.iter().any(|h| h == USAGE_START)
}

/// A legacy CUR CSV (`lineItem/UsageStartDate`, `resourceTags/user:KEY`, ...).
pub fn is_legacy_cur(header: &[String]) -> bool {
    header.iter().any(|h| h == Field::UsageStart.legacy())
}

/// The CUR columns costsplit reads, in both naming schemes: CUR 2.0 (and parquet) snake_case,
/// and the legacy CUR's `category/Name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    UsageStart,
    PeriodStart,
    Payer,
    UsageAccount,
    ProductName,
    ProductCode,
    ResourceId,
    LineItemType,
    Currency,
    Unblended,
    SpEffective,
    SpTotalCommitment,
    SpUsedCommitment,
    RiEffective,
    RiUnusedAmortizedUpfront,
    RiUnusedRecurring,
    RiArn,
    PublicOnDemand,
    /// Split cost allocation data: the instance a pod's (or ECS task's) row is a share of,
    /// and that share.
    SplitParent,
    SplitCost,
    /// What the pod requested, used, and the larger of the two (vCPU or GB).
    SplitReserved,
    SplitActual,
    SplitUsage,
    /// The pod's part of its instance's idle capacity, and the row's usage type, which names
    /// its dimension (`…-vCPU-Hours`, `…-GB-Hours`); read only where split columns are.
    SplitUnused,
    UsageType,
}

impl Field {
    const ALL: [Field; 25] = [
        Field::UsageStart,
        Field::PeriodStart,
        Field::Payer,
        Field::UsageAccount,
        Field::ProductName,
        Field::ProductCode,
        Field::ResourceId,
        Field::LineItemType,
        Field::Currency,
        Field::Unblended,
        Field::SpEffective,
        Field::SpTotalCommitment,
        Field::SpUsedCommitment,
        Field::RiEffective,
        Field::RiUnusedAmortizedUpfront,
        Field::RiUnusedRecurring,
        Field::RiArn,
        Field::PublicOnDemand,
        Field::SplitParent,
        Field::SplitCost,
        Field::SplitReserved,
        Field::SplitActual,
        Field::SplitUsage,
        Field::SplitUnused,
        Field::UsageType,
    ];

    /// (CUR 2.0 name, legacy CUR name).
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Field::UsageStart => (USAGE_START, "lineItem/UsageStartDate"),
            Field::PeriodStart => (
                "bill_billing_period_start_date",
                "bill/BillingPeriodStartDate",
            ),
            Field::Payer => ("bill_payer_account_id", "bill/PayerAccountId"),
            Field::UsageAccount => ("line_item_usage_account_id", "lineItem/UsageAccountId"),
            Field::ProductName => ("product_product_name", "product/ProductName"),
            Field::ProductCode => ("line_item_product_code", "lineItem/ProductCode"),
            Field::ResourceId => ("line_item_resource_id", "lineItem/ResourceId"),
            Field::LineItemType => (TYPE, "lineItem/LineItemType"),
            Field::Currency => ("line_item_currency_code", "lineItem/CurrencyCode"),
            Field::Unblended => ("line_item_unblended_cost", "lineItem/UnblendedCost"),
            Field::SpEffective => (
                "savings_plan_savings_plan_effective_cost",
                "savingsPlan/SavingsPlanEffectiveCost",
            ),
            Field::SpTotalCommitment => (
                "savings_plan_total_commitment_to_date",
                "savingsPlan/TotalCommitmentToDate",
            ),
            Field::SpUsedCommitment => {
                ("savings_plan_used_commitment", "savingsPlan/UsedCommitment")
            }
            Field::RiEffective => ("reservation_effective_cost", "reservation/EffectiveCost"),
            Field::RiUnusedAmortizedUpfront => (
                "reservation_unused_amortized_upfront_fee_for_billing_period",
                "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod",
            ),
            Field::RiUnusedRecurring => (
                "reservation_unused_recurring_fee",
                "reservation/UnusedRecurringFee",
            ),
            Field::RiArn => (
                "reservation_reservation_a_r_n",
                "reservation/ReservationARN",
            ),
            Field::PublicOnDemand => (
                "pricing_public_on_demand_cost",
                "pricing/publicOnDemandCost",
            ),
            Field::SplitParent => (
                "split_line_item_parent_resource_id",
                "splitLineItem/ParentResourceId",
            ),
            Field::SplitCost => ("split_line_item_split_cost", "splitLineItem/SplitCost"),
            Field::SplitReserved => (
                "split_line_item_reserved_usage",
                "splitLineItem/ReservedUsage",
            ),
            Field::SplitActual => ("split_line_item_actual_usage", "splitLineItem/ActualUsage"),
            Field::SplitUsage => ("split_line_item_split_usage", "splitLineItem/SplitUsage"),
            Field::SplitUnused => ("split_line_item_unused_cost", "splitLineItem/UnusedCost"),
            Field::UsageType => ("line_item_usage_type", "lineItem/UsageType"),
        }
    }

    fn snake(self) -> &'static str {
        self.names().0
    }

    fn legacy(self) -> &'static str {
        self.names().1
    }

    fn required(self) -> bool {
        matches!(self, Field::UsageStart | Field::Unblended | Field::Currency)
    }
}

/// How AWS amortizes a line item (the effective cost), by `line_item_line_item_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Amortized {
    /// Its unblended cost.
    Unblended,
    /// Savings-plan covered usage: the plan's effective cost.
    SavingsPlanEffective,
    /// The unused part of the plan's commitment.
    UnusedCommitment,
    /// Reserved usage: the reservation's effective cost.
    ReservationEffective,
    /// The unused part of the reservation's fees.
    UnusedReservation,
    /// Replaced by amortization: negations and upfront fees.
    Zero,
}

/// The line item types amortization treats other than by their unblended cost. A `Fee` line
/// of a reservation (its ARN set) is its upfront fee: zero, like the ones listed.
const AMORTIZED: [(&str, Amortized); 6] = [
    ("SavingsPlanCoveredUsage", Amortized::SavingsPlanEffective),
    ("SavingsPlanRecurringFee", Amortized::UnusedCommitment),
    ("SavingsPlanNegation", Amortized::Zero),
    ("SavingsPlanUpfrontFee", Amortized::Zero),
    ("DiscountedUsage", Amortized::ReservationEffective),
    ("RIFee", Amortized::UnusedReservation),
];
const RESERVATION_FEE: &str = "Fee";

fn amortized(line_type: &str, has_reservation: bool) -> Amortized {
    match AMORTIZED.iter().find(|(t, _)| *t == line_type) {
        Some((_, how)) => *how,
        None if line_type == RESERVATION_FEE && has_reservation => Amortized::Zero,
        None => Amortized::Unblended,
    }
}

/// The FOCUS charge category of a CUR line item type.
const CATEGORIES: [(&str, &[&str]); 4] = [
    (
        "Usage",
        &["Usage", "DiscountedUsage", "SavingsPlanCoveredUsage"],
    ),
    ("Tax", &["Tax"]),
    ("Credit", &["Credit", "Refund"]),
    (
        "Purchase",
        &[
            "Fee",
            "RIFee",
            "SavingsPlanRecurringFee",
            "SavingsPlanUpfrontFee",
        ],
    ),
];
const OTHER_CATEGORY: &str = "Adjustment";

fn category(line_type: &str) -> &'static str {
    CATEGORIES
        .iter()
        .find(|(_, types)| types.contains(&line_type))
        .map_or(OTHER_CATEGORY, |(category, _)| category)
}

/// How a CUR parquet file is read: each row as a CUR CSV row with the columns the mapping
/// reads (their indices in `header`, in the order of the returned mapping's own header).
pub fn parquet_rows(
    path: &std::path::Path,
    header: &[String],
) -> Result<(Vec<usize>, CurCsv), ImportError> {
    let full = CurCsv::new(path, header)?;
    let tags = match &full.tags {
        TagColumns::Json(i) => vec![*i],
        TagColumns::Columns(columns) => columns.iter().map(|(i, _)| *i).collect(),
    };
    let mut used: Vec<usize> = full
        .fields
        .iter()
        .flatten()
        .copied()
        .chain(full.product_json)
        .chain(tags)
        .collect();
    used.sort_unstable();
    used.dedup();
    let projected: Vec<String> = used.iter().map(|&i| header[i].clone()).collect();
    Ok((used, CurCsv::new(path, &projected)?))
}

/// The key of the product name in CUR 2.0's `product` map.
const PRODUCT_NAME_KEY: &str = "product_name";

/// Where the tags of a CUR CSV row are.
enum TagColumns {
    /// CUR 2.0: the `resource_tags` map as JSON text.
    Json(usize),
    /// Legacy CUR `resourceTags/user:KEY` or CUR 2.0 `resource_tags_user_KEY` columns:
    /// (index, key).
    Columns(Vec<(usize, String)>),
}

/// CUR 2.0's map of a line item's tags.
const TAGS_MAP: &str = "resource_tags";

/// The tag columns of a CUR without a [`TAGS_MAP`] (a legacy CUR's `resourceTags/KEY`, or the
/// `resource_tags_KEY` of its parquet and Athena table): (index, key as the CUR writes it).
pub(super) fn tag_columns(header: &[String]) -> Vec<(usize, String)> {
    header
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let key = h
                .strip_prefix("resourceTags/")
                .or_else(|| h.strip_prefix("resource_tags_"))?;
            Some((i, key.to_string()))
        })
        .collect()
}

/// A CUR 2.0 or legacy CUR CSV: where each needed column is, and how a row becomes a line.
pub struct CurCsv {
    header: Vec<String>,
    fields: [Option<usize>; Field::ALL.len()],
    /// CUR 2.0's `product` map as JSON text, when there is no product name column.
    product_json: Option<usize>,
    tags: TagColumns,
}

impl CurCsv {
    pub fn new(file: &std::path::Path, header: &[String]) -> Result<CurCsv, ImportError> {
        let legacy = is_legacy_cur(header);
        let position = |name: &str| header.iter().position(|h| h.trim() == name);
        let name_of = |field: Field| {
            if legacy {
                field.legacy()
            } else {
                field.snake()
            }
        };
        let mut fields = [None; Field::ALL.len()];
        for (slot, field) in fields.iter_mut().zip(Field::ALL) {
            let name = name_of(field);
            *slot = position(name);
            if field == Field::UsageType && position(name_of(Field::SplitParent)).is_none() {
                // Only a split row's dimension needs it: a plain CUR does not decode it.
                *slot = None;
            }
            if slot.is_none() && field.required() {
                let format = if legacy {
                    "a legacy AWS CUR"
                } else {
                    "an AWS CUR 2.0"
                };
                return Err(ImportError::missing_column(file, name, format, header));
            }
        }
        let tags = match position(TAGS_MAP) {
            Some(i) if !legacy => TagColumns::Json(i),
            _ => TagColumns::Columns(tag_columns(header)),
        };
        Ok(CurCsv {
            header: header.to_vec(),
            fields,
            product_json: if legacy { None } else { position("product") },
            tags,
        })
    }

    /// Where `field` is in a row (`Field::ALL` lists the fields in declaration order).
    fn index(&self, field: Field) -> Option<usize> {
        self.fields[field as usize]
    }

    /// Tags: the JSON text as it is (decoded once per distinct value), or the tag columns
    /// encoded as key/value pairs.
    fn write_tags(&self, record: &csv::ByteRecord, tags: &mut Vec<u8>) {
        tags.clear();
        match &self.tags {
            TagColumns::Json(i) => {
                let text = record.get(*i).unwrap_or_default().trim_ascii();
                if !text.is_empty() && text != b"{}" {
                    push_char(tags, CUR_JSON_TAGS);
                    tags.extend_from_slice(text);
                }
            }
            TagColumns::Columns(columns) => {
                for (i, key) in columns {
                    let value = null_to_empty(record.get(*i).unwrap_or_default().trim_ascii());
                    if value.is_empty() {
                        continue;
                    }
                    push_char(tags, if tags.is_empty() { KV_TAGS } else { KV_PAIR });
                    tags.extend_from_slice(key.as_bytes());
                    push_char(tags, KV_SEP);
                    tags.extend_from_slice(value);
                }
            }
        }
    }

    /// Service: the product name (a column, or the `product` map's, decoded once per
    /// distinct text), else the product code.
    fn write_service(
        &self,
        record: &csv::ByteRecord,
        product_name: &[u8],
        product_code: &[u8],
        scratch: &mut Scratch,
    ) {
        let Scratch {
            service,
            last_json,
            last_value,
            ..
        } = scratch;
        service.clear();
        service.extend_from_slice(product_name);
        if service.is_empty() {
            if let Some(i) = self.product_json {
                let text = record.get(i).unwrap_or_default().trim_ascii();
                if text != last_json.as_slice() {
                    last_json.clear();
                    last_json.extend_from_slice(text);
                    last_value.clear();
                    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(text) {
                        if let Some(serde_json::Value::String(name)) = map.get(PRODUCT_NAME_KEY) {
                            last_value.extend_from_slice(name.as_bytes());
                        }
                    }
                }
                service.extend_from_slice(last_value);
            }
        }
        if service.is_empty() {
            service.extend_from_slice(product_code);
        }
    }

    fn name(&self, field: Field) -> String {
        self.index(field)
            .and_then(|i| self.header.get(i).cloned())
            .unwrap_or_else(|| field.snake().to_string())
    }
}

/// Appends a marker character without allocating (this runs for every tag of every row).
fn push_char(buffer: &mut Vec<u8>, c: char) {
    buffer.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
}

impl RowMap for CurCsv {
    fn line<'r>(
        &self,
        record: &'r csv::ByteRecord,
        scratch: &'r mut Scratch,
        [usage_days, period_days]: &mut [DayCache; 2],
    ) -> Result<Line<'r>, (String, String)> {
        let raw = |field: Field| -> &'r [u8] {
            self.index(field)
                .and_then(|i| record.get(i))
                .map_or(&b""[..], |v| null_to_empty(v.trim_ascii()))
        };
        let shown = |field: Field| String::from_utf8_lossy(raw(field)).into_owned();
        let date = |field: Field, cache: &mut DayCache| {
            cache.parse(raw(field)).ok_or_else(|| {
                (
                    self.name(field),
                    format!(
                        "unknown date format `{}`; CUR dates look like 2026-04-01T00:00:00.000Z",
                        shown(field)
                    ),
                )
            })
        };
        let cost =
            |field: Field| parse_cost(raw(field)).map_err(|problem| (self.name(field), problem));
        let day = date(Field::UsageStart, usage_days)?;
        let period = if raw(Field::PeriodStart).is_empty() {
            day
        } else {
            date(Field::PeriodStart, period_days)?
        };
        super::aggregate::check_day_in_period(day, period)
            .map_err(|problem| (self.name(Field::UsageStart), problem.to_string()))?;
        let line_type = std::str::from_utf8(raw(Field::LineItemType)).unwrap_or_default();
        let billed = cost(Field::Unblended)?;
        let effective = match amortized(line_type, !raw(Field::RiArn).is_empty()) {
            Amortized::Unblended => billed,
            Amortized::SavingsPlanEffective => cost(Field::SpEffective)?,
            Amortized::UnusedCommitment => {
                cost(Field::SpTotalCommitment)? - cost(Field::SpUsedCommitment)?
            }
            Amortized::ReservationEffective => cost(Field::RiEffective)?,
            Amortized::UnusedReservation => {
                cost(Field::RiUnusedAmortizedUpfront)? + cost(Field::RiUnusedRecurring)?
            }
            Amortized::Zero => 0,
        };
        self.write_tags(record, &mut scratch.tags);
        let parent = raw(Field::SplitParent);
        let is_split = !parent.is_empty() && self.index(Field::SplitCost).is_some();
        if is_split {
            super::split::drop_churning_tags(&mut scratch.tags, &mut scratch.lasting_tags);
        }
        self.write_service(
            record,
            raw(Field::ProductName),
            raw(Field::ProductCode),
            scratch,
        );
        // FOCUS's ListCost and ContractedCost: usage and purchases at the public on-demand
        // price (when the export has it) and at the unblended cost (before commitment
        // discounts, which their negation lines carry); credits, taxes and adjustments at
        // their billed cost, as FOCUS asks.
        let category = category(line_type);
        let list = match category {
            "Usage" | "Purchase" if !raw(Field::PublicOnDemand).is_empty() => {
                cost(Field::PublicOnDemand)?
            }
            _ => billed,
        };
        let contracted = billed;
        // A pod's (or ECS task's) row of split cost allocation data: its share of the parent
        // instance, keyed by parent and workload (never by pod id, which churns), for
        // `split::attribute` to move the instance's money by.
        let split = if is_split {
            super::split::workload_key(parent, raw(Field::ResourceId), &mut scratch.resource);
            let share = cost(Field::SplitCost)?;
            // Requests above usage, as a part of the share (quantities read like costs:
            // exact decimals; absent columns are 0).
            let optional = |field: Field| {
                if raw(field).is_empty() {
                    Ok(0)
                } else {
                    cost(field)
                }
            };
            let unused = optional(Field::SplitReserved)? - optional(Field::SplitActual)?;
            let larger = optional(Field::SplitUsage)?;
            let requested_unused = if unused > 0 && larger > 0 {
                super::split::mul_div(share, unused.min(larger), larger)
            } else {
                0
            };
            Some(SplitShare {
                dimension: super::split::dimension_of(raw(Field::UsageType)),
                share,
                requested_unused,
                unused: optional(Field::SplitUnused)?,
            })
        } else {
            None
        };
        let resource: &'r [u8] = if is_split {
            &scratch.resource
        } else {
            raw(Field::ResourceId)
        };
        let (tags, service): (&'r [u8], &'r [u8]) = (&scratch.tags, &scratch.service);
        let mut keys: [&'r [u8]; KEY_COUNT] = [b""; KEY_COUNT];
        keys[ACCOUNT] = raw(Field::Payer);
        keys[SUB_ACCOUNT] = raw(Field::UsageAccount);
        keys[PROVIDER] = b"AWS";
        keys[SERVICE] = service;
        keys[RESOURCE] = resource;
        keys[CATEGORY] = category.as_bytes();
        keys[CURRENCY] = raw(Field::Currency);
        keys[TAGS] = tags;
        Ok(Line {
            day,
            period,
            keys,
            effective,
            billed,
            list,
            contracted,
            split,
        })
    }

    fn key_column(&self, _record: &csv::ByteRecord, key: usize) -> (String, Option<String>) {
        let column = match key {
            ACCOUNT => self.name(Field::Payer),
            SUB_ACCOUNT => self.name(Field::UsageAccount),
            SERVICE => self.name(Field::ProductCode),
            RESOURCE => self.name(Field::ResourceId),
            CURRENCY => self.name(Field::Currency),
            TAGS => match &self.tags {
                TagColumns::Json(i) => self.header[*i].clone(),
                TagColumns::Columns(_) => "resourceTags".to_string(),
            },
            _ => "-".to_string(),
        };
        (column, None)
    }
}

/// The local reader's mapping of a CUR 2.0 row, as the select expressions of an engine's
/// aggregation (`costsplit engine sql`): built from the same declarations as [`CurCsv`]
/// (field names, [`AMORTIZED`], [`CATEGORIES`], the product name and the tags), so that a
/// change to one is a change to the other. `sql` renders each step in its dialect.
pub(super) fn engine_plan(sql: &super::engine::Sql) -> super::engine::Plan {
    use super::engine::Plan;
    let col = |f: Field| f.snake();
    let text = |f: Field| sql.text(col(f));
    let amount = |f: Field| sql.amount(col(f));
    let line_type = format!("COALESCE({}, '')", text(Field::LineItemType));
    let has_reservation = format!("{} IS NOT NULL", text(Field::RiArn));
    let billed = amount(Field::Unblended);
    let effective_of = |how: Amortized| match how {
        Amortized::Unblended => billed.clone(),
        Amortized::SavingsPlanEffective => amount(Field::SpEffective),
        Amortized::UnusedCommitment => format!(
            "({} - {})",
            amount(Field::SpTotalCommitment),
            amount(Field::SpUsedCommitment)
        ),
        Amortized::ReservationEffective => amount(Field::RiEffective),
        Amortized::UnusedReservation => format!(
            "({} + {})",
            amount(Field::RiUnusedAmortizedUpfront),
            amount(Field::RiUnusedRecurring)
        ),
        Amortized::Zero => sql.zero(),
    };
    let mut effective = format!("CASE {line_type}");
    for (t, how) in AMORTIZED {
        effective.push_str(&format!(" WHEN '{t}' THEN {}", effective_of(how)));
    }
    effective.push_str(&format!(
        " WHEN '{RESERVATION_FEE}' THEN CASE WHEN {has_reservation} THEN {} ELSE {billed} END ELSE {billed} END",
        effective_of(Amortized::Zero)
    ));
    let mut category_sql = format!("CASE {line_type}");
    for (name, types) in CATEGORIES {
        for t in types {
            category_sql.push_str(&format!(" WHEN '{t}' THEN '{name}'"));
        }
    }
    category_sql.push_str(&format!(" ELSE '{OTHER_CATEGORY}' END"));
    let list = format!(
        "CASE WHEN ({category_sql}) IN ('Usage', 'Purchase') AND {} IS NOT NULL THEN {} ELSE {billed} END",
        text(Field::PublicOnDemand),
        amount(Field::PublicOnDemand)
    );
    let day = sql.day(col(Field::UsageStart));
    let period = format!("COALESCE({}, {day})", sql.day(col(Field::PeriodStart)));
    let service = format!(
        "COALESCE({}, {}, {}, '')",
        text(Field::ProductName),
        sql.json_text_field("product", PRODUCT_NAME_KEY),
        text(Field::ProductCode)
    );
    let key = |e: String| format!("COALESCE({e}, '')");
    Plan {
        day,
        period,
        keys: [
            key(text(Field::Payer)),
            key(text(Field::UsageAccount)),
            "'AWS'".to_string(),
            service,
            key(text(Field::ResourceId)),
            category_sql,
            key(text(Field::Currency)),
            sql.tags(TAGS_MAP, true),
        ],
        effective,
        billed: billed.clone(),
        list,
        contracted: billed,
        // A legacy CUR names its columns `lineItem/UsageStartDate` in CSV, and as CUR 2.0
        // does in its parquet and Athena table.
        columns: Field::ALL
            .iter()
            .map(|f| (f.snake().to_string(), vec![f.snake(), f.legacy()]))
            .chain(["product", TAGS_MAP].map(|name| (name.to_string(), vec![name])))
            .collect(),
        tag_columns: Some((TAGS_MAP, tag_columns)),
        refused: vec![(
            col(Field::SplitParent).to_string(),
            "split cost allocation data (EKS pods, ECS tasks) is divided among workloads by the local import only: import the files of these billing periods with `costsplit import`",
        )],
    }
}
