//! The demo and what it runs on: a seeded generator of synthetic FOCUS months (also used by
//! the tests and the benchmark). Not a billing source: nothing here reads a real bill.

pub mod generate;
