//! AWS CUR 2.0 (Data Exports) parquet files, read through the FOCUS path: [`project`] turns
//! the CUR columns into the FOCUS columns the importer reads, inside the same lazy query, so
//! CUR files get the same slicing, grouping, rounding and error reporting as FOCUS files.
//!
//! The amortized (effective) cost follows AWS's definition per line item type: savings-plan
//! covered usage at its effective cost, reserved usage at the reservation's effective cost,
//! the unused part of commitments on their fee lines, and the upfront and negation lines that
//! amortization replaces at zero. Everything else is its unblended cost.

use polars::prelude::*;

/// Marks a `Tags` value encoded by this module (key/value pairs, not JSON). See
/// [`super::focus::parse_tags`].
pub const KV_TAGS: char = '\u{1d}';
pub const KV_PAIR: char = '\u{1f}';
pub const KV_SEP: char = '\u{1e}';

const USAGE_START: &str = "line_item_usage_start_date";
const TYPE: &str = "line_item_line_item_type";

/// CUR columns a file must have (besides the usage start date that identifies it).
pub const REQUIRED: [&str; 3] = [
    USAGE_START,
    "line_item_unblended_cost",
    "line_item_currency_code",
];

/// A CUR 2.0 (or legacy CUR in parquet) file is recognised by its usage start column.
pub fn is_cur(header: &[String]) -> bool {
    header.iter().any(|h| h == USAGE_START)
}

/// The first required CUR column the file lacks.
pub fn missing_column(header: &[String]) -> Option<&'static str> {
    REQUIRED
        .into_iter()
        .find(|want| !header.iter().any(|h| h == want))
}

/// Selects the FOCUS columns (`ChargePeriodStart`, `BilledCost`, `EffectiveCost`, `Tags`, ...)
/// computed from the CUR columns of `frame`, whose schema is `schema`.
pub fn project(frame: LazyFrame, schema: &Schema) -> LazyFrame {
    let has = |name: &str| schema.get(name).is_some();
    let text = |name: &str| {
        if has(name) {
            col(name).cast(DataType::String).fill_null(lit(""))
        } else {
            lit("")
        }
    };
    let cost = |name: &str| {
        if has(name) {
            col(name).cast(DataType::Float64).fill_null(lit(0.0))
        } else {
            lit(0.0)
        }
    };
    let kind = || text(TYPE);
    let is = |value: &str| kind().eq(lit(value.to_string()));
    let unblended = cost("line_item_unblended_cost");
    let effective = when(is("SavingsPlanCoveredUsage"))
        .then(cost("savings_plan_savings_plan_effective_cost"))
        .when(is("SavingsPlanRecurringFee"))
        .then(cost("savings_plan_total_commitment_to_date") - cost("savings_plan_used_commitment"))
        .when(is("SavingsPlanNegation").or(is("SavingsPlanUpfrontFee")))
        .then(lit(0.0))
        .when(is("DiscountedUsage"))
        .then(cost("reservation_effective_cost"))
        .when(is("RIFee"))
        .then(
            cost("reservation_unused_amortized_upfront_fee_for_billing_period")
                + cost("reservation_unused_recurring_fee"),
        )
        .when(is("Fee").and(text("reservation_reservation_a_r_n").neq(lit(""))))
        .then(lit(0.0))
        .otherwise(unblended.clone());
    let category = when(
        is("Usage")
            .or(is("DiscountedUsage"))
            .or(is("SavingsPlanCoveredUsage")),
    )
    .then(lit("Usage"))
    .when(is("Tax"))
    .then(lit("Tax"))
    .when(is("Credit").or(is("Refund")))
    .then(lit("Credit"))
    .when(
        is("Fee")
            .or(is("RIFee"))
            .or(is("SavingsPlanRecurringFee"))
            .or(is("SavingsPlanUpfrontFee")),
    )
    .then(lit("Purchase"))
    .otherwise(lit("Adjustment"));
    let service = if has("product_product_name") {
        when(text("product_product_name").neq(lit("")))
            .then(text("product_product_name"))
            .otherwise(text("line_item_product_code"))
    } else {
        text("line_item_product_code")
    };
    let period = if has("bill_billing_period_start_date") {
        col("bill_billing_period_start_date")
    } else {
        col(USAGE_START)
    };
    frame.select([
        col(USAGE_START).alias("ChargePeriodStart"),
        period.alias("BillingPeriodStart"),
        text("line_item_currency_code").alias("BillingCurrency"),
        effective.alias("EffectiveCost"),
        unblended.alias("BilledCost"),
        text("bill_payer_account_id").alias("BillingAccountId"),
        text("line_item_usage_account_id").alias("SubAccountId"),
        lit("AWS").alias("ProviderName"),
        service.alias("ServiceName"),
        text("line_item_resource_id").alias("ResourceId"),
        category.alias("ChargeCategory"),
        tags_expr(schema).alias("Tags"),
    ])
}

/// The tags of a line as one text value: the `resource_tags` map (CUR 2.0), or the
/// `resource_tags_user_*` columns (legacy CUR), encoded as [`KV_TAGS`] key/value pairs.
fn tags_expr(schema: &Schema) -> Expr {
    let pair =
        |key: Expr, value: Expr| concat_str([key, lit(KV_SEP.to_string()), value], "", false);
    let encoded = match schema.get("resource_tags") {
        Some(DataType::List(inner)) if matches!(inner.as_ref(), DataType::Struct(_)) => {
            let entry = || element().struct_();
            col("resource_tags")
                .list()
                .eval(pair(
                    entry().field_by_name("key"),
                    entry().field_by_name("value"),
                ))
                .list()
                .join(lit(KV_PAIR.to_string()), true)
                .fill_null(lit(""))
        }
        // A JSON text column: decoded like FOCUS `Tags`.
        Some(DataType::String) => return col("resource_tags").fill_null(lit("")),
        _ => {
            let parts: Vec<Expr> = schema
                .iter_names()
                .filter_map(|name| {
                    let key = name.strip_prefix("resource_tags_")?;
                    Some(pair(
                        lit(key.to_string()),
                        col(name.as_str()).cast(DataType::String),
                    ))
                })
                .collect();
            if parts.is_empty() {
                return lit("");
            }
            concat_str(parts, &KV_PAIR.to_string(), true)
        }
    };
    concat_str([lit(KV_TAGS.to_string()), encoded], "", false)
}

/// Decodes [`KV_TAGS`] text. CUR names user tags `user_<key>`; they become `<key>`, as in
/// Cost Explorer and FOCUS. Empty values are no tag.
pub fn decode_tags(raw: &str) -> crate::model::Tags {
    raw.trim_start_matches(KV_TAGS)
        .split(KV_PAIR)
        .filter_map(|pair| {
            let (key, value) = pair.split_once(KV_SEP)?;
            if value.is_empty() {
                return None;
            }
            let key = key.strip_prefix("user_").unwrap_or(key);
            Some((key.to_string(), value.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_tags_decode_with_user_prefix_removed() {
        let raw = format!("{KV_TAGS}user_service{KV_SEP}web{KV_PAIR}user_team{KV_SEP}{KV_PAIR}aws_createdBy{KV_SEP}x");
        let tags = decode_tags(&raw);
        assert_eq!(tags.get("service").map(String::as_str), Some("web"));
        assert!(!tags.contains_key("team"));
        assert_eq!(tags.get("aws_createdBy").map(String::as_str), Some("x"));
        assert!(decode_tags(&KV_TAGS.to_string()).is_empty());
    }
}
