//! Commit records: one JSON object per file, per Kafka partition, chained by
//! the SHA-256 of the previous record's bytes. See `docs/storage.md`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_sha256` of a chain's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A data file a record commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedFile {
    /// Path under the storage root, such as `tables/events/dt=2026-11-03/p00002-...parquet`.
    pub path: String,
    /// The table: `events`, `tool_calls`, `gpu_usage` or `dead_letters`.
    pub table: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file's bytes, lower-case hex.
    pub sha256: String,
    /// Audit tables only: SHA-256 of the file's rows in a canonical form
    /// (each value as Arrow displays it, length-prefixed, row by row), so a
    /// compaction's output can be checked against the files it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_sha256: Option<String>,
}

/// One commit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRecord {
    /// Format version of this record.
    pub format: u32,
    /// Kafka topic.
    pub topic: String,
    /// Kafka partition.
    pub partition: i32,
    /// Position in the partition's chain, from 1, without gaps.
    pub seq: u64,
    /// SHA-256 (hex) of the previous record's bytes, or 64 zeros for the first.
    pub prev_sha256: String,
    /// First Kafka offset covered (the previous record's `last_offset` + 1).
    pub first_offset: i64,
    /// Last Kafka offset covered.
    pub last_offset: i64,
    /// Kafka records read in the range (offsets may have gaps for control records).
    pub records: u64,
    /// Of those, stored as `events` rows.
    pub stored: u64,
    /// Of those, stored as `dead_letters` rows.
    pub dead_lettered: u64,
    /// Of those, valid events already stored (same tenant, source and id
    /// within the dedupe window): not stored again. Absent in records
    /// written before deduplication existed (read as 0).
    #[serde(default)]
    pub duplicates: u64,
    /// In the first record of a chain: the partition's log start (the
    /// broker's low watermark) when the writer first read it. The chain
    /// must begin there; `verify` reports a gap otherwise. Absent in later
    /// records and in chains of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_start: Option<i64>,
    /// The files, each table's rows for each `dt`.
    pub files: Vec<CommittedFile>,
    /// When the record was written.
    pub committed_at: DateTime<Utc>,
    /// The writer (instance) that wrote it.
    pub writer: String,
}

impl CommitRecord {
    /// The record's bytes as stored: pretty JSON with a final newline. Hash
    /// these bytes (the file), never a re-encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(self).unwrap_or_default();
        b.push(b'\n');
        b
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_lower(&Sha256::digest(bytes))
}

/// Lower-case hex of `b`.
pub(super) fn hex_lower(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}
