//! Pure allocation: facts + usage weights + validated rules in, allocations out. No IO, no
//! clock, no floats. Invariant: for every day and currency, the allocations sum exactly to
//! the facts; a line item is claimed by at most one pool and counted once.

mod charges;
mod engine;
mod usage;

pub use charges::{split_charges, split_like, ChargePart, ChargeSplit};
pub use engine::{allocate, conservation_gaps, AllocateError, Input, UsageBasis, UsageWeights};
pub use usage::live_weights;

#[cfg(test)]
mod tests;
