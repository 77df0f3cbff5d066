//! `verify`: walks every chain and every file. Each record must follow the
//! previous one (sequence, hash link, offsets) and its files must exist with
//! the size, SHA-256 and row count it states; no file may sit in the tables
//! without a record listing it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::Serialize;

use crate::{sha256_hex, CommitRecord, Storage, StorageError, GENESIS};

/// One thing `verify` found wrong, with the path it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Short stable name, such as `hash_mismatch` or `orphan_file`.
    pub kind: &'static str,
    /// The file or record concerned.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.path, self.message, self.kind)
    }
}

/// One partition's chain, summed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Commit records.
    pub commits: u64,
    /// First offset covered.
    pub first_offset: i64,
    /// Last offset covered.
    pub last_offset: i64,
    /// Kafka records read.
    pub consumed: u64,
    /// Stored as events.
    pub stored: u64,
    /// Dead-lettered.
    pub dead_lettered: u64,
    /// Duplicates of stored events, skipped.
    pub duplicates: u64,
}

/// A chain of derived objects that a later stage keeps and checks (such as
/// the ledger's rollup manifests), summed up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DerivedChain {
    /// What the chain holds, such as `rollups`.
    pub name: String,
    /// Links (manifests) in the chain.
    pub links: u64,
    /// The newest link's path, if any.
    pub head: Option<String>,
    /// SHA-256 of the newest link: what an auditor records to notice a
    /// rewritten head later.
    pub head_sha256: Option<String>,
    /// Files of the newest link checked.
    pub files: u64,
    /// Bytes of those files hashed.
    pub bytes: u64,
}

/// The result of `verify`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Every chain.
    pub chains: Vec<ChainSummary>,
    /// Files checked.
    pub files: u64,
    /// Bytes hashed.
    pub bytes: u64,
    /// Everything wrong, in the order found (the first is the first problem).
    pub problems: Vec<Problem>,
    /// Files left in staging by a crash (not part of the log; recovery
    /// publishes or deletes them).
    pub staging: Vec<String>,
    /// Chains of derived objects checked by later stages (their problems
    /// are in `problems`).
    pub derived: Vec<DerivedChain>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn problem(kind: &'static str, path: &str, message: impl Into<String>) -> Problem {
    Problem::new(kind, path, message)
}

impl Problem {
    /// A problem of `kind` with `path`.
    pub fn new(kind: &'static str, path: &str, message: impl Into<String>) -> Self {
        Problem {
            kind,
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// A broken hash link: the object at `next` records `recorded` as the
    /// SHA-256 of the one before it, at `before`, whose bytes hash to
    /// `actual`. Named on `before`, the likelier edit; `what` names the
    /// objects ("statement", "key").
    pub fn broken_link(
        kind: &'static str,
        what: &str,
        before: &str,
        actual: &str,
        next: &str,
        recorded: Option<&str>,
    ) -> Self {
        Self::new(
            kind,
            before,
            format!(
                "has SHA-256 {actual} but the next {what}, {next}, records {}: this one's bytes or the next one's link were altered",
                recorded.unwrap_or("none")
            ),
        )
    }
}

pub(super) async fn run(s: &Storage) -> Result<VerifyReport, StorageError> {
    let mut report = VerifyReport::default();
    let mut listed: HashMap<String, String> = HashMap::new();
    for ((topic, partition), records) in s.chains().await? {
        let mut summary = ChainSummary {
            topic: topic.clone(),
            partition,
            commits: 0,
            first_offset: 0,
            last_offset: -1,
            consumed: 0,
            stored: 0,
            dead_lettered: 0,
            duplicates: 0,
        };
        let mut prev: Option<(CommitRecord, String)> = None;
        for (path, bytes) in records {
            if partition < 0 {
                report.problems.push(problem(
                    "misplaced_record",
                    &path,
                    "not under commits/<topic>/p<partition>/",
                ));
                continue;
            }
            let record: CommitRecord = match serde_json::from_slice(&bytes) {
                Ok(r) => r,
                Err(e) => {
                    report.problems.push(problem(
                        "bad_record",
                        &path,
                        format!("not a commit record: {e}"),
                    ));
                    prev = None;
                    continue;
                }
            };
            let expected_seq = prev.as_ref().map_or(1, |(r, _)| r.seq + 1);
            if Storage::record_path(&record.topic, record.partition, record.seq) != path {
                report.problems.push(problem(
                    "misplaced_record",
                    &path,
                    format!(
                        "says it is {}/{} seq {}",
                        record.topic, record.partition, record.seq
                    ),
                ));
            }
            if record.seq != expected_seq {
                report.problems.push(problem(
                    "sequence_gap",
                    &path,
                    format!(
                        "seq {} follows seq {}; a record is missing or was reordered",
                        record.seq,
                        expected_seq - 1
                    ),
                ));
            }
            let expected_link = prev
                .as_ref()
                .map_or(GENESIS.to_string(), |(_, sha)| sha.clone());
            if record.prev_sha256 != expected_link {
                report.problems.push(problem(
                    "broken_link",
                    &path,
                    format!(
                        "prev_sha256 is {} but the previous record hashes to {expected_link}; a record was altered, removed, inserted or reordered",
                        record.prev_sha256
                    ),
                ));
            }
            if let Some((p, _)) = &prev {
                if Some(record.first_offset) != p.last_offset.checked_add(1) {
                    report.problems.push(problem(
                        "offset_gap",
                        &path,
                        format!(
                            "covers offsets from {} but the previous record ended at {}",
                            record.first_offset, p.last_offset
                        ),
                    ));
                }
            } else {
                summary.first_offset = record.first_offset;
            }
            if record.seq == 1 {
                // The chain must begin where the partition's log began when
                // it was first read: anything before was never stored.
                let gap = match record.log_start {
                    Some(start) if record.first_offset > start => Some(format!(
                        "the chain begins at offset {} but the partition's log started at {start} when it was first read: offsets {start}..{} were never stored",
                        record.first_offset,
                        record.first_offset.saturating_sub(1)
                    )),
                    None if record.first_offset > 0 => Some(format!(
                        "the chain begins at offset {} and states no log start: offsets 0..{} may never have been stored (a chain of an earlier version that started from the consumer group's offset?)",
                        record.first_offset,
                        record.first_offset.saturating_sub(1)
                    )),
                    _ => None,
                };
                if let Some(message) = gap {
                    report.problems.push(problem("offset_gap", &path, message));
                }
            }
            if record.last_offset < record.first_offset
                || Some(record.records)
                    != record
                        .stored
                        .checked_add(record.dead_lettered)
                        .and_then(|n| n.checked_add(record.duplicates))
            {
                report.problems.push(problem(
                    "bad_counts",
                    &path,
                    format!(
                        "offsets {}..={}, records {} != stored {} + dead-lettered {} + duplicates {}",
                        record.first_offset,
                        record.last_offset,
                        record.records,
                        record.stored,
                        record.dead_lettered,
                        record.duplicates
                    ),
                ));
            }
            let mut rows: BTreeMap<&str, u64> = BTreeMap::new();
            for f in &record.files {
                *rows.entry(f.table.as_str()).or_default() += f.rows;
                if let Some(other) = listed.insert(f.path.clone(), path.clone()) {
                    report.problems.push(problem(
                        "listed_twice",
                        &f.path,
                        format!("listed by {other} and {path}"),
                    ));
                }
                check_file(s, &path, f, &mut report).await;
            }
            if rows.get("events").copied().unwrap_or(0) != record.stored
                || rows.get("dead_letters").copied().unwrap_or(0) != record.dead_lettered
            {
                report.problems.push(problem(
                    "bad_counts",
                    &path,
                    format!(
                        "its files hold {rows:?} rows but it states stored {} and dead-lettered {}",
                        record.stored, record.dead_lettered
                    ),
                ));
            }
            summary.commits += 1;
            summary.last_offset = record.last_offset;
            summary.consumed = summary.consumed.saturating_add(record.records);
            summary.stored = summary.stored.saturating_add(record.stored);
            summary.dead_lettered = summary.dead_lettered.saturating_add(record.dead_lettered);
            summary.duplicates = summary.duplicates.saturating_add(record.duplicates);
            prev = Some((record, sha256_hex(&bytes)));
        }
        if partition >= 0 {
            report.chains.push(summary);
        }
    }
    for rel in s.list("tables/").await? {
        if !listed.contains_key(&rel) {
            report.problems.push(problem(
                "orphan_file",
                &rel,
                "no commit record lists this file",
            ));
        }
    }
    report.staging = s.list("staging/").await?;
    Ok(report)
}

pub(super) async fn check_file(
    s: &Storage,
    record: &str,
    f: &super::CommittedFile,
    report: &mut VerifyReport,
) {
    let bytes = match s.get(&f.path).await {
        Ok(b) => b,
        Err(_) => {
            report.problems.push(problem(
                "missing_file",
                &f.path,
                format!("listed by {record} but absent"),
            ));
            return;
        }
    };
    report.files += 1;
    report.bytes += bytes.len() as u64;
    if bytes.len() as u64 != f.bytes {
        report.problems.push(problem(
            "size_mismatch",
            &f.path,
            format!("is {} bytes, {record} says {}", bytes.len(), f.bytes),
        ));
    }
    let sha = sha256_hex(&bytes);
    if sha != f.sha256 {
        report.problems.push(problem(
            "hash_mismatch",
            &f.path,
            format!(
                "SHA-256 is {sha}, {record} says {}; the file was altered",
                f.sha256
            ),
        ));
        return;
    }
    match SerializedFileReader::new(bytes) {
        Ok(r) => {
            let n = r.metadata().file_metadata().num_rows() as u64;
            if n != f.rows {
                report.problems.push(problem(
                    "row_mismatch",
                    &f.path,
                    format!("holds {n} rows, {record} says {}", f.rows),
                ));
            }
        }
        Err(e) => report.problems.push(problem(
            "not_parquet",
            &f.path,
            format!("is not a Parquet file: {e}"),
        )),
    }
}
