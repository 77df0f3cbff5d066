//! An audit table's commit record: the files one commit adds and (for a
//! compaction or an adoption) removes, chained by the SHA-256 of the
//! previous record's bytes, one chain per table.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::CommittedFile;

/// Where an audit table's commit records are, under the storage root.
pub const COMMITS: &str = "audit/_commits";

/// What a record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// New entries: `added` holds them, `removed` is empty.
    Append,
    /// Small files rewritten as one: `removed` were live and hold exactly
    /// the rows of `added`.
    Compact,
    /// Files of a version before the chain (one file per entry, never
    /// listed by a record) rewritten into the chain: `removed` were never
    /// live and hold the rows of `added`.
    Adopt,
}

/// One commit of an audit table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Format version.
    pub format: u32,
    /// The table (`query_log`, `alerts`).
    pub table: String,
    /// Position in the table's chain, from 1, without gaps.
    pub seq: u64,
    /// SHA-256 (hex) of the previous record's bytes, or 64 zeros for the first.
    pub prev_sha256: String,
    /// What the record does.
    pub kind: Kind,
    /// Files that become part of the table.
    pub added: Vec<CommittedFile>,
    /// Files that stop being part of it (compaction, adoption).
    pub removed: Vec<CommittedFile>,
    /// When it was written.
    pub committed_at: DateTime<Utc>,
    /// The instance that wrote it.
    pub writer: String,
}

impl AuditRecord {
    /// The record's bytes as stored: pretty JSON with a final newline. Hash
    /// these bytes (the file), never a re-encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(self).unwrap_or_default();
        b.push(b'\n');
        b
    }

    /// Rows the record adds.
    pub fn added_rows(&self) -> u64 {
        self.added.iter().map(|f| f.rows).sum()
    }

    /// Rows the record removes.
    pub fn removed_rows(&self) -> u64 {
        self.removed.iter().map(|f| f.rows).sum()
    }
}

/// The path of `table`'s record `seq`.
pub fn record_path(table: &str, seq: u64) -> String {
    format!("{COMMITS}/{table}/{seq:020}.json")
}

/// The sequence number a record path names, if it is one of `table`'s.
pub fn seq_of(table: &str, path: &str) -> Option<u64> {
    let name = path.strip_prefix(&format!("{COMMITS}/{table}/"))?;
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}
