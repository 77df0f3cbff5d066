//! Tollgate's query stage: chargeback, spend, quota, anomaly and latency
//! reports, tenant-scoped SQL for auditors, and the authenticated HTTP API
//! that serves them (`tollgate serve`).
//!
//! Invariant 4 lives here: every read is scoped to the principal's rows in
//! the data layer ([`scope::TenantScope`], a DataFusion analyzer rule that
//! filters every table scan of every plan), whatever the SQL; and every
//! request is written to the query audit ([`audit`]).

pub mod api;
pub mod apikeys;
pub mod audit;
pub mod auth;
pub mod encode;
pub mod principal;
pub mod reader;
pub mod request;
pub mod scope;
pub mod sql;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub use auth::{AuthConfig, Authenticator};
pub use principal::{Credential, Permission, Principal, Role, Scope};
pub use reader::{Reader, ReaderConfig};

/// The queries stage's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The authentication configuration is unusable.
    #[error("auth: {0}")]
    Auth(String),
    /// The API key file cannot be read or written, or a key request is wrong.
    #[error("API keys: {0}")]
    ApiKeys(String),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] tollgate_ledger::Error),
    /// The audit log's storage failed.
    #[error("storage: {0}")]
    Storage(String),
    /// A query audit entry could not be written.
    #[error("query audit: {0}")]
    Audit(String),
    /// A result could not be encoded.
    #[error("encoding the result: {0}")]
    Encode(String),
}

/// `[server]`: the HTTP API of `tollgate serve`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; loopback by default.
    pub listen: SocketAddr,
    /// `[server.auth]`: JWT keys, issuer, audience, API key file.
    pub auth: AuthConfig,
    /// Teams whose rows every team of the same organisation may read
    /// (organisation-shared rows, such as a platform team's).
    pub shared_teams: Vec<String>,
    /// Rows an SQL answer holds at most (the rest is cut, and
    /// `X-Tollgate-Truncated: true` says so).
    pub max_rows: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            auth: AuthConfig::default(),
            shared_teams: Vec::new(),
            max_rows: 100_000,
        }
    }
}
