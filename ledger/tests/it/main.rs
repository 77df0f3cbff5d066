//! The ledger crate's integration tests: one binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod closed_statements;
mod rollup_integrity;
mod rollups;
mod views;
