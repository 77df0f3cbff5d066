//! Tollgate's query stage: chargeback, spend, quota, anomaly and latency
//! reports, tenant-scoped SQL for auditors, and the authenticated HTTP API
//! that serves them (`tollgate serve`).
//!
//! Invariant 4 lives here: every read is scoped to the principal's rows in
//! the data layer, whatever the SQL. The wall is [`wall`]: a principal's
//! session hands out every table wrapped so that its scan drops the rows
//! outside the scope before any expression the user wrote sees them; the
//! analyzer rule [`scope::TenantScope`] adds the same filter above every
//! scan as a second line. Every request is written to the query audit
//! ([`audit`]) before it runs, and its outcome after; queries are bounded
//! ([`QueryLimits`]) and their errors never quote data values ([`sql`]).
//!
//! ```text
//!  HTTP (api) / tollgate sql  --> request::audited --> Reader (reader) --> sql::run
//!                                   |  audit: started, outcome                |  limits, then plan, then run
//!                                   v                                         v
//!                                 query_log                 LedgerContext in a ScopedSchema (wall)
//! ```

pub mod api;
pub mod apikeys;
pub mod apikeys_verify;
pub mod audit;
pub mod auth;
pub mod bounded;
pub mod encode;
pub mod principal;
pub mod reader;
pub mod request;
pub mod scope;
pub mod sql;
pub mod statement_size;
pub mod wall;

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

/// `verify` of everything in the storage: the raw tables' commit chains,
/// the rollups, the closed statements (the ledger's check), the sealed
/// tenant keys (opened when `master` is given), the alert claims, the API
/// keys and the audit tables (`alerts`, `query_log`). What
/// `tollgate verify` and `GET /v1/verify` run.
pub async fn verify_all(
    storage: &tollgate_storage::Storage,
    master: Option<&tollgate_redactor::keys::MasterKey>,
) -> Result<tollgate_storage::VerifyReport, Error> {
    let mut report = tollgate_ledger::verify(storage).await?;
    tollgate_redactor::keys::verify(storage, master, &mut report)
        .await
        .map_err(|e| Error::Storage(e.to_string()))?;
    tollgate_alerts::store::verify(storage, &mut report)
        .await
        .map_err(|e| Error::Storage(e.to_string()))?;
    apikeys_verify::verify(storage, &mut report)
        .await
        .map_err(|e| Error::Storage(e.to_string()))?;
    for (table, dir) in [
        (tollgate_alerts::audit::TABLE, tollgate_alerts::audit::DIR),
        (audit::TABLE, audit::DIR),
    ] {
        tollgate_storage::audit_log::verify(storage, table, dir, &mut report)
            .await
            .map_err(|e| Error::Storage(e.to_string()))?;
    }
    Ok(report)
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
    /// `[server.limits]`: bounds on one query.
    pub limits: QueryLimits,
}

/// `[server.limits]`: bounds on one query, checked before it is planned
/// (text, depth, size) and while it runs (time, memory). A query past one
/// is answered 400 with the limit's name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryLimits {
    /// Longest SQL text accepted, in bytes.
    pub max_sql_bytes: usize,
    /// Deepest nesting of expressions and subqueries (`a + b + c` is 3 deep:
    /// each operator nests the one before it).
    pub max_expr_depth: usize,
    /// Most expressions, tables and subqueries in one statement.
    pub max_plan_nodes: usize,
    /// Longest a query may take, planning and running.
    #[serde(with = "humantime_serde")]
    pub timeout: std::time::Duration,
    /// Most memory a query's sorts, joins and aggregations may hold, in MiB.
    pub max_memory_mib: usize,
    /// Largest answer (the rows as Arrow in memory, before encoding), in MiB.
    pub max_answer_mib: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_sql_bytes: 64 * 1024,
            max_expr_depth: 128,
            max_plan_nodes: 20_000,
            timeout: std::time::Duration::from_secs(60),
            max_memory_mib: 1024,
            max_answer_mib: 256,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            auth: AuthConfig::default(),
            shared_teams: Vec::new(),
            max_rows: 100_000,
            limits: QueryLimits::default(),
        }
    }
}
