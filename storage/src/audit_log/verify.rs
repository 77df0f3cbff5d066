//! `verify` of an audit table: its chain (numbered from 1 without a gap,
//! each record linking the SHA-256 of the one before, in its canonical
//! bytes), what each record may do (an append only adds; a compaction
//! removes live files and adds as many rows; an adoption starts the
//! chain), every live file against its record, and no file the chain does
//! not know.

use std::collections::{BTreeMap, HashMap};

use super::record::{record_path, seq_of, AuditRecord, Kind, COMMITS};
use crate::verify::check_file;
use crate::{
    sha256_hex, CommittedFile, DerivedChain, Problem, Storage, StorageError, VerifyReport, GENESIS,
};

/// Checks audit table `table` (files under `dir`) and adds what is wrong
/// to `report`, with a summary of its chain in `report.derived`.
pub async fn verify(
    s: &Storage,
    table: &str,
    dir: &str,
    report: &mut VerifyReport,
) -> Result<(), StorageError> {
    let dir = dir.trim_end_matches('/');
    let mut seqs: BTreeMap<u64, String> = BTreeMap::new();
    for path in s.list(&format!("{COMMITS}/{table}/")).await? {
        match seq_of(table, &path) {
            Some(seq) => {
                seqs.insert(seq, path);
            }
            None => report.problems.push(Problem::new(
                "stray_audit_object",
                &path,
                format!("not a commit record of {table} (those are {COMMITS}/{table}/<20-digit seq>.json)"),
            )),
        }
    }
    let mut live: BTreeMap<String, (CommittedFile, String)> = BTreeMap::new();
    let mut known: HashMap<String, String> = HashMap::new();
    let mut prev: Option<(u64, String, String)> = None;
    let mut links = 0u64;
    for (seq, path) in &seqs {
        let expected = prev.as_ref().map_or(1, |(s, _, _)| s.saturating_add(1));
        if *seq != expected {
            report.problems.push(Problem::new(
                "sequence_gap",
                path,
                format!(
                    "seq {seq} follows seq {}; a record of {table} is missing",
                    expected - 1
                ),
            ));
        }
        let bytes = s.get(path).await?;
        let record: AuditRecord = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => {
                report.problems.push(Problem::new(
                    "bad_record",
                    path,
                    format!("not an audit commit record: {e}"),
                ));
                prev = Some((*seq, sha256_hex(&bytes), path.clone()));
                continue;
            }
        };
        links += 1;
        if record.table != table || record.seq != *seq {
            report.problems.push(Problem::new(
                "misplaced_record",
                path,
                format!(
                    "says it is {} seq {} (it would be {})",
                    record.table,
                    record.seq,
                    record_path(&record.table, record.seq)
                ),
            ));
        }
        if record.to_bytes() != bytes.as_ref() {
            report.problems.push(Problem::new(
                "bad_record",
                path,
                "its bytes are not the ones Tollgate writes for its content: it was edited",
            ));
        }
        let link = prev
            .as_ref()
            .map_or(GENESIS.to_string(), |(_, h, _)| h.clone());
        if record.prev_sha256 != link {
            let message = match &prev {
                Some((_, _, before)) => format!(
                    "prev_sha256 is {} but the record before it, {before}, hashes to {link}; a record was altered, removed, inserted or reordered",
                    record.prev_sha256
                ),
                None => format!(
                    "prev_sha256 is {} but the first record links to 64 zeros; the records before it were removed",
                    record.prev_sha256
                ),
            };
            report
                .problems
                .push(Problem::new("broken_link", path, message));
        }
        check_record(&record, path, &live, &known, report);
        if record.kind == Kind::Compact {
            check_compacted_rows(s, &record, path, &live, report).await;
        }
        for f in &record.removed {
            live.remove(&f.path);
            known.insert(f.path.clone(), path.clone());
        }
        for f in &record.added {
            if let Some(other) = known.insert(f.path.clone(), path.clone()) {
                report.problems.push(Problem::new(
                    "listed_twice",
                    &f.path,
                    format!("added by {path}, already listed by {other}"),
                ));
            }
            live.insert(f.path.clone(), (f.clone(), path.clone()));
        }
        prev = Some((*seq, sha256_hex(&bytes), path.clone()));
    }
    let mut bytes_checked = 0;
    for (f, record) in live.values() {
        let before = report.bytes;
        check_file(s, record, f, report).await;
        bytes_checked += report.bytes - before;
    }
    // A file written while the chain was walked has its record after the
    // newest one read: read those before calling a file an orphan.
    let mut unlisted: Vec<String> = s
        .list(&format!("{dir}/"))
        .await?
        .into_iter()
        .filter(|p| !known.contains_key(p))
        .collect();
    let mut next = prev.as_ref().map_or(1, |(s, _, _)| s.saturating_add(1));
    while !unlisted.is_empty() {
        let path = record_path(table, next);
        let Ok(bytes) = s.get(&path).await else { break };
        if let Ok(r) = serde_json::from_slice::<AuditRecord>(&bytes) {
            unlisted.retain(|p| !r.added.iter().any(|f| &f.path == p));
        }
        let Some(n) = next.checked_add(1) else { break };
        next = n;
    }
    for rel in unlisted {
        report.problems.push(Problem::new(
            "orphan_file",
            &rel,
            format!("no commit record of {table} lists this file: it was put there, or its writer was killed between writing it and committing it (its entries were then never acknowledged; delete it after checking)"),
        ));
    }
    report.derived.push(DerivedChain {
        name: format!("audit table {table}"),
        links,
        head: prev.as_ref().map(|(_, _, p)| p.clone()),
        head_sha256: prev.map(|(_, h, _)| h),
        files: live.len() as u64,
        bytes: bytes_checked,
    });
    Ok(())
}

/// A compaction's output holds, segment by segment in the order of
/// `removed`, exactly the rows of the files it replaced (their row digests
/// as their own records state them), and the digest its record states.
async fn check_compacted_rows(
    s: &Storage,
    record: &AuditRecord,
    path: &str,
    live: &BTreeMap<String, (CommittedFile, String)>,
    report: &mut VerifyReport,
) {
    let [out] = record.added.as_slice() else {
        return; // named by check_record's row count when it matters
    };
    let Ok(bytes) = s.get(&out.path).await else {
        return; // missing_file names it
    };
    let batches: Result<Vec<_>, String> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| e.to_string())
            .and_then(|r| r.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string()));
    let Ok(batches) = batches else {
        return; // not_parquet names it
    };
    let mut bad = |message: String| {
        report
            .problems
            .push(Problem::new("bad_compaction", path, message))
    };
    let sizes: Vec<u64> = record.removed.iter().map(|f| f.rows).collect();
    let (Ok(parts), Ok(all)) = (
        super::files::segment_digests(&batches, &sizes),
        super::files::rows_digest(&batches),
    ) else {
        bad(format!("{}: its rows cannot be read", out.path));
        return;
    };
    if out.rows_sha256.as_deref() != Some(all.as_str()) {
        bad(format!(
            "states row digest {} for {}, whose rows digest to {all}",
            out.rows_sha256.as_deref().unwrap_or("none"),
            out.path
        ));
    }
    for (f, part) in record.removed.iter().zip(parts) {
        let stated = live.get(&f.path).and_then(|(l, _)| l.rows_sha256.clone());
        if let Some(stated) = stated {
            if stated != part {
                bad(format!(
                    "{} does not hold the rows of {} (row digest {part}, its record states {stated}): rows were changed in the compaction",
                    out.path, f.path
                ));
            }
        }
    }
}

/// What a record may do given the files live before it.
fn check_record(
    record: &AuditRecord,
    path: &str,
    live: &BTreeMap<String, (CommittedFile, String)>,
    known: &HashMap<String, String>,
    report: &mut VerifyReport,
) {
    let mut bad = |message: String| {
        report
            .problems
            .push(Problem::new("bad_compaction", path, message))
    };
    match record.kind {
        Kind::Append => {
            if !record.removed.is_empty() {
                bad(format!(
                    "an append that removes {} files: only a compaction removes files",
                    record.removed.len()
                ));
            }
        }
        Kind::Compact | Kind::Adopt => {
            if record.added_rows() != record.removed_rows() {
                bad(format!(
                    "adds {} rows but removes {}: a compaction keeps every row",
                    record.added_rows(),
                    record.removed_rows()
                ));
            }
            for f in &record.removed {
                let ok = match record.kind {
                    Kind::Compact => live
                        .get(&f.path)
                        .is_some_and(|(l, _)| l.sha256 == f.sha256 && l.rows == f.rows),
                    _ => !known.contains_key(&f.path) && record.seq == 1,
                };
                if !ok {
                    bad(format!(
                        "removes {} (SHA-256 {}), which {}",
                        f.path,
                        f.sha256,
                        if record.kind == Kind::Compact {
                            "is not a file of the table as the records before it leave it"
                        } else {
                            "an adoption may not remove: it only starts a chain, with files no record lists"
                        }
                    ));
                }
            }
        }
    }
}
