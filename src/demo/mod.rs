//! The seeded FOCUS generator the demo job, the tests and the benchmark use
//! (`costsplit generate`). Not a billing source: nothing here is read as a real bill.

pub mod generate;
pub mod split_cost;
