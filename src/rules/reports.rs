//! `[reports]`: what the per-team Slack digests list.

use toml_edit::TableLike;

use super::model::ReportRules;
use super::walk::{number_text, FileCtx};

/// `[reports]`: what the per-team Slack digests list.
pub(super) fn walk(ctx: &mut FileCtx<'_>, table: &dyn TableLike) -> ReportRules {
    ctx.check_keys(table, &["min_service_dollars", "top_movers"], "[reports]");
    let mut rules = ReportRules::defaults();
    if let Some(item) = table.get("min_service_dollars") {
        let text = number_text(item.as_value());
        match crate::money::Nanos::parse(&text).filter(|n| n.0 >= 0) {
            Some(n) => rules.min_service_amount = n,
            None => ctx.error(
                item.span(),
                "`min_service_dollars` must be a non-negative amount, e.g. 10",
            ),
        }
    }
    if let Some(n) = ctx.integer(table, "top_movers") {
        match usize::try_from(n) {
            Ok(n) if n <= 20 => rules.top_movers = n,
            _ => {
                let loc = ctx.key_loc(table, "top_movers");
                ctx.push(&loc, "`top_movers` must be between 0 and 20");
            }
        }
    }
    rules
}
