//! The query audit: every `/v1` request and every CLI query (who, when, the
//! SQL text with PII redacted and its SHA-256, rows returned, outcome) as the
//! `query_log` table: an audit table (files under `audit/queries/dt=YYYY-MM-DD/`
//! committed by the chain `audit/_commits/query_log/`, entries of
//! concurrent requests committed together; see
//! `tollgate_storage::audit_log`). A request that runs
//! (authenticated and permitted) has two entries with the same `query_id`:
//! outcome `started`, written before it runs, and its outcome, written
//! before the response is sent. Requests answered without running
//! (unauthenticated, forbidden, unknown paths, wrong methods, bodies over
//! the limit, a caught panic) have the outcome's entry only.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tollgate_redactor::Redactor;
use tollgate_storage::audit_log::AuditLog;
use tollgate_storage::{instance_name, Storage};

use crate::principal::Principal;
use crate::Error;

/// Where the table's files are, under the storage root.
pub const DIR: &str = "audit/queries";

/// The table's name (and its chain's, under `audit/_commits/`).
pub const TABLE: &str = "query_log";

/// The `query_log` table's schema; `dt` is the entry's UTC day.
pub fn schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("query_id", DataType::Utf8, false),
        Field::new("time", ts, false),
        Field::new("subject", DataType::Utf8, false),
        Field::new("credential", DataType::Utf8, false),
        Field::new("tenant", DataType::Utf8, false),
        Field::new("team", DataType::Utf8, false),
        Field::new("roles", DataType::Utf8, false),
        Field::new("endpoint", DataType::Utf8, false),
        Field::new("sql_redacted", DataType::Utf8, true),
        Field::new("sql_sha256", DataType::Utf8, true),
        Field::new("rows", DataType::Int64, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("duration_ms", DataType::Int64, false),
        Field::new("dt", DataType::Utf8, false),
    ]))
}

/// One audited request.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Unique id.
    pub query_id: String,
    /// When it arrived.
    pub time: DateTime<Utc>,
    /// Subject, or empty when authentication failed.
    pub subject: String,
    /// `jwt`, `api_key`, `local`, or `none`.
    pub credential: String,
    /// The principal's organisation (empty when unauthenticated).
    pub tenant: String,
    /// The principal's team (empty for organisation roles).
    pub team: String,
    /// Roles, comma-separated.
    pub roles: String,
    /// `GET /v1/reports/chargeback`, `cli sql`, ...
    pub endpoint: String,
    /// The SQL (or the report's parameters) with PII redacted; absent for
    /// unauthenticated callers (the hash is kept).
    pub sql_redacted: Option<String>,
    /// SHA-256 (hex) of the text as sent.
    pub sql_sha256: Option<String>,
    /// Rows returned.
    pub rows: i64,
    /// `started` (written before the request runs), then one of `ok`,
    /// `refused`, `invalid`, `limit`, `unauthenticated`, `forbidden`,
    /// `not_found`, `method_not_allowed`, `too_large`, `error`.
    pub outcome: String,
    /// The reason, when not `ok` (redacted like the text: errors can quote it).
    pub error: Option<String>,
    /// Time taken.
    pub duration_ms: i64,
}

impl Entry {
    /// An entry for `principal` (or an unauthenticated caller) at `endpoint`.
    pub fn new(principal: Option<&Principal>, endpoint: &str, time: DateTime<Utc>) -> Self {
        let mut id = [0u8; 8];
        rand::rng().fill_bytes(&mut id);
        Self {
            query_id: format!("{}-{}", time.timestamp_micros(), hex::encode(id)),
            time,
            subject: principal.map(|p| p.subject.clone()).unwrap_or_default(),
            credential: principal
                .map(|p| p.credential.as_str().to_string())
                .unwrap_or_else(|| "none".into()),
            tenant: principal.map(|p| p.org.clone()).unwrap_or_default(),
            team: principal.and_then(|p| p.team.clone()).unwrap_or_default(),
            roles: principal.map(|p| p.roles_text()).unwrap_or_default(),
            endpoint: endpoint.to_string(),
            sql_redacted: None,
            sql_sha256: None,
            rows: 0,
            outcome: "ok".into(),
            error: None,
            duration_ms: 0,
        }
    }

    fn batch(&self) -> Result<RecordBatch, Error> {
        let s = |v: &str| Arc::new(StringArray::from(vec![v.to_string()])) as ArrayRef;
        let o = |v: &Option<String>| Arc::new(StringArray::from(vec![v.clone()])) as ArrayRef;
        let i = |v: i64| Arc::new(Int64Array::from(vec![v])) as ArrayRef;
        RecordBatch::try_new(
            schema(),
            vec![
                s(&self.query_id),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![self.time.timestamp_micros()])
                        .with_timezone("UTC"),
                ),
                s(&self.subject),
                s(&self.credential),
                s(&self.tenant),
                s(&self.team),
                s(&self.roles),
                s(&self.endpoint),
                o(&self.sql_redacted),
                o(&self.sql_sha256),
                i(self.rows),
                s(&self.outcome),
                o(&self.error),
                i(self.duration_ms),
                s(&self.time.date_naive().to_string()),
            ],
        )
        .map_err(|e| Error::Audit(e.to_string()))
    }
}

/// SHA-256 of `text`, in hex.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Writes [`Entry`]s, redacting the SQL text with the tenant's key.
pub struct QueryAudit {
    log: AuditLog,
    redactor: Option<Arc<Redactor>>,
}

impl QueryAudit {
    /// The redactor of the SQL text, if any.
    pub fn redactor(&self) -> Option<&Arc<Redactor>> {
        self.redactor.as_ref()
    }

    /// Writes into `storage`; without a redactor the text is not kept (the
    /// hash is).
    pub fn new(storage: Storage, redactor: Option<Arc<Redactor>>) -> Self {
        Self {
            log: AuditLog::new(storage, TABLE, DIR, schema(), &instance_name("queries")),
            redactor,
        }
    }

    /// The `query_log` table.
    pub fn log(&self) -> &AuditLog {
        &self.log
    }

    /// Sets `entry`'s text (redacted) and hash from `text` as sent.
    pub fn set_text(&self, entry: &mut Entry, text: &str) {
        entry.sql_sha256 = Some(sha256_hex(text));
        entry.sql_redacted = self.redact(&entry.tenant, text);
    }

    /// `text` with PII replaced by `tenant`'s tokens; `None` (keep nothing)
    /// without a tenant (an unauthenticated caller: no key is made for it)
    /// or without a redactor.
    pub fn redact(&self, tenant: &str, text: &str) -> Option<String> {
        if tenant.is_empty() {
            return None;
        }
        self.redactor
            .as_ref()?
            .redact_text(tenant, text)
            .ok()
            .map(|(t, _)| t.into_owned())
    }

    /// Stores `entry` as the request's `started` entry, before it runs.
    pub async fn write_started(&self, entry: &Entry) -> Result<(), Error> {
        let mut e = entry.clone();
        e.outcome = "started".into();
        e.error = None;
        self.write_file(&e, "started").await
    }

    /// Stores `entry`, the request's outcome; returns once it is committed.
    pub async fn write(&self, entry: &Entry) -> Result<(), Error> {
        self.write_file(entry, "outcome").await
    }

    async fn write_file(&self, entry: &Entry, what: &str) -> Result<(), Error> {
        let batch = entry.batch()?;
        self.log
            .append(entry.time.date_naive(), batch)
            .await
            .map_err(|e| Error::Audit(format!("query {} ({what}): {e}", entry.query_id)))
    }
}
