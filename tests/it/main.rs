//! One integration-test binary (so the build links once), one module per area.

mod support;

mod alerts;
mod api;
mod athena;
mod bad_input;
mod browser;
mod budgets;
mod catalog;
mod cbor_proxy;
mod cli;
mod concurrency;
mod crash;
mod cur;
mod daemon;
mod dashboards;
mod engine;
mod exports;
mod feedback;
mod focus_validator;
mod fuzz_regressions;
mod generated;
mod import;
mod kubernetes;
mod reports;
mod rules_check;
mod secrets;
mod slack_standin;
mod store;
mod sync;
mod thirdparty;
mod tls;
mod units;
mod usage;
