//! One audited request, the same for the API and the CLI: check the
//! principal and its permission, write a `started` entry to the query audit
//! before anything runs (so a request that brings the process down is
//! still on record), run, and write the outcome's entry before anything is
//! answered.

use std::future::Future;
use std::time::Instant;

use chrono::Utc;

use crate::audit::{Entry, QueryAudit};
use crate::auth::Unauthorized;
use crate::principal::{Permission, Principal};
use crate::sql::QueryError;
use crate::Error;

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No or bad credentials (HTTP 401).
    Unauthenticated(String),
    /// The principal lacks the permission (HTTP 403).
    Forbidden(String),
    /// The query or report was refused, invalid or failed.
    Query(QueryError),
}

impl Denied {
    /// The outcome's name in the audit log and metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Denied::Unauthenticated(_) => "unauthenticated",
            Denied::Forbidden(_) => "forbidden",
            Denied::Query(e) => e.outcome(),
        }
    }

    /// The reason, for the caller.
    pub fn reason(&self) -> String {
        match self {
            Denied::Unauthenticated(m) => format!("unauthenticated: {m}"),
            Denied::Forbidden(m) => format!("forbidden: {m}"),
            Denied::Query(e) => e.to_string(),
        }
    }
}

/// What an audited request gave: its audit id and its result.
pub type Audited<T> = (String, Result<T, Denied>);

/// Runs `run` for the authenticated principal when it holds `permission`,
/// and records the request (`text` is the SQL or the report's parameters)
/// in `audit`. `run` returns the rows it answers with and the answer. An
/// error means the audit entry could not be written: give no answer then.
pub async fn audited<T, Fut>(
    audit: &QueryAudit,
    principal: Result<Principal, Unauthorized>,
    permission: Permission,
    endpoint: &str,
    text: &str,
    run: impl FnOnce(Principal) -> Fut,
) -> Result<Audited<T>, Error>
where
    Fut: Future<Output = Result<(usize, T), QueryError>>,
{
    let started = Instant::now();
    let mut entry = Entry::new(principal.as_ref().ok(), endpoint, Utc::now());
    audit.set_text(&mut entry, text);
    let mut unauthenticated_class = None;
    let result = match principal {
        Err(e) => {
            unauthenticated_class = Some(e.class());
            Err(Denied::Unauthenticated(e.0))
        }
        Ok(p) => match p.require(permission) {
            Err(f) => Err(Denied::Forbidden(f.0)),
            Ok(()) => {
                audit.write_started(&entry).await?;
                run(p).await.map_err(Denied::Query)
            }
        },
    };
    entry.duration_ms = started.elapsed().as_millis() as i64;
    let result = match result {
        Ok((rows, answer)) => {
            entry.rows = rows as i64;
            Ok(answer)
        }
        Err(d) => {
            entry.outcome = d.outcome().to_string();
            // Errors can quote the SQL: redacted like it. An
            // authentication failure's reason can quote what the caller
            // sent: only its class (our words) and its hash are kept.
            entry.error = match (&d, unauthenticated_class) {
                (Denied::Unauthenticated(r), Some(class)) => Some(format!(
                    "unauthenticated: {class} (reason sha256:{})",
                    crate::audit::sha256_hex(r)
                )),
                _ => audit.redact(&entry.tenant, &d.reason()),
            };
            Err(d)
        }
    };
    audit.write(&entry).await?;
    Ok((entry.query_id, result))
}
