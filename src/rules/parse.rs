//! Stage one and two of rule loading: walk each TOML file by hand (so every unknown key and
//! bad value is reported with its own file:line:col, not only the first), then check the
//! files together (duplicates, unknown services, overlaps) and build [`Rules`]. Each table
//! kind is its own file (walk and build together); this file reads the files and puts the
//! tables together. Loading is pure over `(path, text)` pairs; [`load_dir`] reads a directory.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use toml_edit::{Document, Item, TableLike};

use super::diagnostic::{Diagnostic, LineIndex, Severity};
use super::model::{Loaded, ReportRules, Rules, Settings, SplitMethod};
use super::walk::{hash_part, FileCtx, Loc};
use super::{alerts, budgets, cases, clusters, pools, reports, services, settings, sources, units};
use crate::catalog::Catalog;

#[derive(Default)]
struct Raw<'c> {
    catalog: Option<&'c Catalog>,
    settings: Option<(Settings, Loc)>,
    alerts: Option<(alerts::RawAlerts, Loc)>,
    reports: Option<(ReportRules, Loc)>,
    tests: Vec<cases::RawCase>,
    services: Vec<services::RawService>,
    pools: Vec<pools::RawPool>,
    clusters: Vec<clusters::RawCluster>,
    sources: Vec<sources::RawSource>,
    budgets: Vec<budgets::RawBudget>,
    units: Vec<units::RawUnit>,
}

/// Reads and loads every rules file of `dir`; a directory that cannot be read, or a file,
/// becomes a diagnostic.
fn load_dir(dir: &Path, catalog: Option<&Catalog>) -> Loaded {
    let files = match rule_files(dir) {
        Ok(files) => files,
        Err(e) => {
            return Loaded {
                rules: None,
                diagnostics: vec![Diagnostic::error(
                    dir,
                    (0, 0),
                    format!("cannot read the rules directory: {e}; pass the directory that holds your *.toml rules"),
                )],
                inputs: Vec::new(),
            };
        }
    };
    let mut diags = Vec::new();
    if files.is_empty() {
        diags.push(Diagnostic::error(
            dir,
            (0, 0),
            "no *.toml rules files here; copy rules/example.toml to start",
        ));
    }
    let mut texts = Vec::with_capacity(files.len());
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(text) => texts.push((file.clone(), text)),
            Err(e) => diags.push(Diagnostic::error(file, (0, 0), format!("cannot read: {e}"))),
        }
    }
    let mut loaded = load_files(&texts, diags, catalog);
    // The files that could not be read are inputs too: a fix to one is a rules change.
    let weight_files = loaded.inputs.split_off(texts.len());
    loaded.inputs = files;
    loaded.inputs.extend(weight_files);
    loaded
}

/// Loads rules from `(path, text)` pairs, in order: pure but for the weight files the pools
/// name (read relative to their rules file). `diags` are the problems found before (files
/// that could not be read).
/// With a `catalog`, the services it names are merged in (rules win) and it is hashed into
/// the rules hash.
fn load_files(
    files: &[(PathBuf, String)],
    mut diags: Vec<Diagnostic>,
    catalog: Option<&Catalog>,
) -> Loaded {
    let mut raw = Raw::default();
    let mut hasher = Sha256::new();
    let mut all_parsed = true;
    for (file, text) in files {
        hash_part(&mut hasher, file, text.as_bytes());
        let mut ctx = FileCtx {
            path: file,
            index: LineIndex::new(text),
            diags: &mut diags,
        };
        all_parsed &= walk_file(&mut ctx, text, &mut raw);
    }
    raw.catalog = catalog;
    if let Some(catalog) = catalog {
        hash_part(
            &mut hasher,
            Path::new("catalog"),
            catalog.fingerprint().as_bytes(),
        );
    }
    let mut inputs: Vec<PathBuf> = files.iter().map(|(file, _)| file.clone()).collect();
    inputs.extend(raw.pools.iter().filter_map(pools::weight_file));
    // A file that is not TOML is reported alone: checking the others against a set with a
    // file missing would report what that file would have declared (a service, a source)
    // as errors of the files that use it.
    let rules = if all_parsed {
        build(raw, &mut diags, &mut hasher)
    } else {
        diags.retain(|d| d.message.starts_with(INVALID_TOML));
        None
    };
    sort_diagnostics(&mut diags);
    let has_errors = diags.iter().any(|d| d.severity == Severity::Error);
    Loaded {
        rules: if has_errors { None } else { rules },
        diagnostics: diags,
        inputs,
    }
}

fn sort_diagnostics(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.col, a.severity).cmp(&(&b.file, b.line, b.col, b.severity))
    });
}

const INVALID_TOML: &str = "invalid TOML: ";

/// Walks one file into `raw`. False when it is not TOML at all (its syntax error is then
/// its one diagnostic).
fn walk_file(ctx: &mut FileCtx<'_>, text: &str, raw: &mut Raw<'_>) -> bool {
    let doc = match Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let message = e.message().trim().replace('\n', " ");
            ctx.error(e.span(), format!("{INVALID_TOML}{message}"));
            return false;
        }
    };
    let root = doc.as_table();
    ctx.check_keys(
        root,
        &[
            "settings", "service", "pool", "cluster", "source", "alerts", "reports", "test",
            "budget", "unit",
        ],
        "a rules file",
    );
    walk_single(ctx, root, "settings", &mut raw.settings, settings::walk);
    walk_single(ctx, root, "alerts", &mut raw.alerts, alerts::walk);
    walk_single(ctx, root, "reports", &mut raw.reports, reports::walk);
    for table in tables(ctx, root, "service") {
        raw.services
            .extend(services::walk(ctx, table, table.span()));
    }
    for table in tables(ctx, root, "pool") {
        raw.pools.extend(pools::walk(ctx, table, table.span()));
    }
    for table in tables(ctx, root, "cluster") {
        raw.clusters
            .extend(clusters::walk(ctx, table, table.span()));
    }
    for table in tables(ctx, root, "source") {
        raw.sources
            .extend(sources::walk_source(ctx, table, table.span()));
    }
    for table in tables(ctx, root, "test") {
        raw.tests.extend(cases::walk_case(ctx, table, table.span()));
    }
    for table in tables(ctx, root, "budget") {
        raw.budgets.extend(budgets::walk(ctx, table, table.span()));
    }
    for table in tables(ctx, root, "unit") {
        raw.units.extend(units::walk(ctx, table, table.span()));
    }
    true
}

/// The `[[key]]` tables of a file (none, with an error, when `key` is not an array of tables).
fn tables<'t>(
    ctx: &mut FileCtx<'_>,
    root: &'t dyn TableLike,
    key: &str,
) -> Vec<&'t toml_edit::Table> {
    match root.get(key) {
        None => Vec::new(),
        Some(Item::ArrayOfTables(array)) => array.iter().collect(),
        Some(item) => {
            ctx.error(
                item.span(),
                format!("`{key}` must be written as [[{key}]] tables, one per {key}"),
            );
            Vec::new()
        }
    }
}

/// A table that may appear once across all rules files, like `[settings]`.
fn walk_single<T>(
    ctx: &mut FileCtx<'_>,
    root: &dyn TableLike,
    key: &str,
    slot: &mut Option<(T, Loc)>,
    walk: fn(&mut FileCtx<'_>, &dyn TableLike) -> T,
) {
    let Some(table) = ctx.table(root, key) else {
        return;
    };
    let loc = ctx.key_loc(root, key);
    match slot {
        Some((_, first)) => {
            let message = format!(
                "[{key}] is already given at {}; keep one [{key}] table",
                first.short()
            );
            ctx.error(root.get_key_value(key).and_then(|(k, _)| k.span()), message);
        }
        None => *slot = Some((walk(ctx, table), loc)),
    }
}

/// Stage two: the files together.
fn build(mut raw: Raw<'_>, diags: &mut Vec<Diagnostic>, hasher: &mut Sha256) -> Option<Rules> {
    let settings = raw
        .settings
        .map(|(s, _)| s)
        .unwrap_or_else(Settings::defaults);
    let normalise = |v: &str| settings.value_case.normalise(v);

    if let Some(catalog) = raw.catalog {
        services::merge_catalog(&mut raw.services, catalog, settings.value_case, diags);
    }
    let (services, lookup) = services::build(raw.services, settings.value_case, diags);
    let resolve = |value: &str| services::resolve(&services, &lookup, normalise(value));

    // Usage sources, then pools (which may name them).
    let sources = sources::build_sources(raw.sources, &resolve, diags);

    let pools = pools::build(raw.pools, &resolve, &sources, diags, hasher);
    // A cluster's pools claim first: they take only the facts split cost allocation data made.
    let taken = |name: &str| pools.iter().any(|(p, _, _)| p.name == name);
    let cluster_pools = clusters::build(raw.clusters, &resolve, &taken, diags);
    let alerts = alerts::build(raw.alerts.map(|(a, _)| a), &services, &resolve, diags);
    let usage_pools: Vec<&str> = pools
        .iter()
        .filter(|(p, _, _)| matches!(p.method, SplitMethod::Usage(_)))
        .map(|(p, _, _)| p.name.as_str())
        .collect();
    let pool_names: Vec<&str> = cluster_pools
        .iter()
        .map(|p| p.name.as_str())
        .chain(pools.iter().map(|(p, _, _)| p.name.as_str()))
        .collect();
    let budgets = budgets::build(raw.budgets, &services, &pool_names, &resolve, diags);
    let budget_names: Vec<&str> = budgets.iter().map(|b| b.name.as_str()).collect();
    let source_refs: Vec<&sources::UsageSource> = sources.iter().map(|(s, _)| s).collect();
    let units = units::build(
        raw.units,
        &services,
        &pool_names,
        &source_refs,
        &resolve,
        diags,
    );
    let tests = cases::build_cases(raw.tests, &resolve, &usage_pools, &budget_names, diags);
    let reports = raw
        .reports
        .map(|(r, _)| r)
        .unwrap_or_else(ReportRules::defaults);

    let hash = hex::encode(&hasher.clone().finalize()[..8]);
    Some(Rules {
        hash,
        settings,
        services,
        pools: cluster_pools
            .into_iter()
            .chain(pools.into_iter().map(|(p, _, _)| p))
            .collect(),
        sources: sources.into_iter().map(|(s, _)| s).collect(),
        alerts,
        reports,
        tests,
        budgets,
        units,
        lookup,
    })
}

/// Reads and validates every `*.toml` file in `dir` (not recursive), plus the weight files
/// they name. IO errors become diagnostics too.
pub fn load(dir: &Path) -> Loaded {
    load_dir(dir, None)
}

/// [`load`], with the services of the service catalog merged in where the rules do not
/// declare them.
pub fn load_with_catalog(dir: &Path, catalog: Option<&Catalog>) -> Loaded {
    load_dir(dir, catalog)
}

/// Loads rules, turning any error into one readable error listing all of them.
pub fn load_or_error(dir: &Path) -> anyhow::Result<Rules> {
    rules_or_error(dir, load(dir))
}

/// The rules of a load, or one readable error listing every problem of it.
pub fn rules_or_error(dir: &Path, loaded: Loaded) -> anyhow::Result<Rules> {
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    match loaded.rules {
        Some(rules) if errors.is_empty() => Ok(rules),
        _ => anyhow::bail!(
            "the rules in {} have {} error(s); run `costsplit rules check {}` for details:\n{}",
            dir.display(),
            errors.len(),
            dir.display(),
            errors.join("\n")
        ),
    }
}

/// The rules files of a directory, sorted by name: every `*.toml` entry that is not a
/// directory. A dangling or looping symlink is kept, so that reading it fails loudly (a broken
/// config mount must not silently drop pools).
pub fn rule_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_dir = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
        if path.extension().is_some_and(|e| e == "toml") && !is_dir {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads rules from in-memory files (name, text), for tests, examples and the fuzz target:
/// the same loader as [`load`], without a directory.
pub fn load_texts(files: &[(&str, &str)]) -> Loaded {
    let files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(name, text)| (PathBuf::from(name), text.to_string()))
        .collect();
    load_files(&files, Vec::new(), None)
}
