//! Tollgate's redaction stage: personal and secret data in user content is
//! replaced with keyed tokens (`<email:3f9a1c0b7d2e4a6f>`: a truncated
//! HMAC-SHA256 of the normalised value under the tenant's key) before
//! anything is stored. The same value gives the same token within a tenant
//! and an unrelated one in another tenant.
//!
//! [`Redactor`] works on text, JSON, whole events and Arrow record batches.

mod address;
mod columnar;
pub mod config;
mod context;
mod crypto_address;
mod detect;
mod dob;
pub mod keys;
mod kind;
mod names;
mod national_id;
mod normalize;
mod redact;
mod secret;
mod speakers;
mod table;
mod token;
mod validate;

pub use columnar::{Content, KEY_ID_COLUMN};
pub use config::{CustomPatternConfig, PolicyConfig, RedactionConfig, TenantKindsConfig};
pub use detect::{CustomPattern, Detected, Engine, Finding};
pub use kind::Kind;
pub use names::gazetteer_len;
pub use redact::{Counts, EventRedaction, Redactor};
pub use token::{normalise, token};

/// Errors of the redaction stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `[redaction]` section is wrong.
    #[error("redaction: {0}")]
    Config(String),
    /// The key store cannot be read or written.
    #[error("key store: {0}")]
    KeyStore(String),
    /// A record batch lacks a column or has the wrong type.
    #[error("redaction: column {0}")]
    Column(String),
    /// Arrow refused the redacted batch.
    #[error("redaction: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}
