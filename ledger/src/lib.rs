//! Tollgate's ledger stage: the price book that turns GPU-seconds, tokens and
//! tool calls into money, and the team directory with its quotas.
//!
//! Money is [`rust_decimal::Decimal`] here and Arrow `Decimal128` in tables;
//! never floating point. The DataFusion views land with the ledger issue.

pub mod pricing;
pub mod teams;

pub use pricing::{PriceBook, PricingConfig};
pub use teams::TeamConfig;

/// Errors of the ledger stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `[pricing]` section is inconsistent.
    #[error("pricing: {0}")]
    Pricing(String),
    /// A `[[teams]]` entry is inconsistent.
    #[error("teams: {0}")]
    Teams(String),
}
