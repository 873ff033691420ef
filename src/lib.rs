//! costsplit: attribute every dollar of a cloud bill to a service.
//!
//! Data flows one way: `ingest` (billing files) -> `store` -> `allocate` (pure, with
//! validated `rules`) -> `store` -> `report`. See ARCHITECTURE.md for the map and the
//! invariants.

pub mod alert;
pub mod allocate;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod forecast;
#[doc(hidden)]
pub mod fuzzing;
pub mod ingest;
pub mod jobs;
pub mod memory;
pub mod model;
pub mod money;
pub mod notify;
pub mod pgtls;
pub mod report;
pub mod rules;
pub mod store;
