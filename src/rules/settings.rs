//! `[settings]`: which tag keys name a service, how their values are compared, and what
//! happens to cost tagged with a service no rules file declares.

use toml_edit::TableLike;

use super::model::{Settings, Undeclared, ValueCase};
use super::walk::{choice, FileCtx};

pub(super) fn walk(ctx: &mut FileCtx<'_>, table: &dyn TableLike) -> Settings {
    ctx.check_keys(
        table,
        &["service_tag_keys", "value_case", "undeclared_services"],
        "[settings]",
    );
    let mut settings = Settings::defaults();
    if let Some(keys) = ctx.strings(table, "service_tag_keys") {
        if keys.is_empty() {
            let loc = ctx.key_loc(table, "service_tag_keys");
            ctx.push(
                &loc,
                "`service_tag_keys` is empty; list at least one tag key, e.g. [\"service\"]",
            );
        } else {
            settings.service_tag_keys = keys.into_iter().map(|(k, _)| k).collect();
        }
    }
    if let Some((value, loc)) = ctx.string(table, "value_case") {
        let choices = [("lower", ValueCase::Lower), ("keep", ValueCase::Keep)];
        match choice(&value, &choices, true) {
            Ok(case) => settings.value_case = case,
            Err(list) => ctx.push(&loc, format!("unknown value_case `{value}`: use {list}")),
        }
    }
    if let Some((value, loc)) = ctx.string(table, "undeclared_services") {
        let choices = [
            ("direct", Undeclared::Direct),
            ("unallocated", Undeclared::Unallocated),
        ];
        match choice(&value, &choices, true) {
            Ok(undeclared) => settings.undeclared_services = undeclared,
            Err(list) => ctx.push(
                &loc,
                format!("unknown undeclared_services `{value}`: use {list}"),
            ),
        }
    }
    settings
}
