//! The ledger crate's integration tests: one binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rollup_integrity;
mod rollups;
mod views;
