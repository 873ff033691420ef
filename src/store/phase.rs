//! Where a write transaction is, in the debug log.

/// Marks where a write transaction is (`write began`, `committing`, `committed`) in the debug
/// log (`COSTSPLIT_LOG=costsplit::store::phase=debug`), so a crash test can tell where its kill
/// landed.
pub(super) fn mark(what: &'static str) {
    tracing::debug!(target: "costsplit::store::phase", "{what}");
}
