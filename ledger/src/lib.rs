//! Tollgate's ledger stage: the price book that turns GPU-seconds, tokens and
//! tool calls into money, and the team directory with its quotas.
//!
//! Money is [`rust_decimal::Decimal`] here and Arrow `Decimal128` in tables;
//! never floating point. [`LedgerContext`] is the DataFusion session over
//! the audit log that the reports read.

pub mod config;
pub mod context;
pub mod money;
pub mod pricing;
pub mod rates;
pub mod report;
pub mod rollup;
pub mod teams;

pub use config::LedgerConfig;
pub use context::LedgerContext;

pub use pricing::{PriceBook, PricingConfig};
pub use teams::TeamConfig;

use tollgate_storage::{Storage, VerifyReport};

/// `verify` of everything the ledger relies on: the raw tables' commit
/// chains (the storage's own check), the rollups' manifest chain and the
/// chain of closed statements.
pub async fn verify(storage: &Storage) -> Result<VerifyReport, Error> {
    let mut report = storage
        .verify()
        .await
        .map_err(|e| Error::Storage(e.to_string()))?;
    rollup::verify(storage, &mut report).await?;
    report::close::verify(storage, &mut report).await?;
    Ok(report)
}

/// Errors of the ledger stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `[pricing]` section is inconsistent.
    #[error("pricing: {0}")]
    Pricing(String),
    /// A `[[teams]]` entry is inconsistent.
    #[error("teams: {0}")]
    Teams(String),
    /// The audit log cannot be opened.
    #[error("ledger: {0}")]
    Storage(String),
    /// A query failed.
    #[error("ledger query: {0}")]
    Query(String),
    /// A report's arguments are unusable (such as an unknown time zone).
    #[error("{0}")]
    Arguments(String),
    /// Stored data (a rollup file, a closed statement) differs from what its
    /// chain recorded: it was altered or damaged, and nothing is computed
    /// from it.
    #[error("integrity: {0}")]
    Integrity(String),
}
