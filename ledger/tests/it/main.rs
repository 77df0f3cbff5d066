//! The ledger crate's integration tests: one binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rollups;
mod views;
