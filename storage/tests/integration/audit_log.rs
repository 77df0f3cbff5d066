//! Audit tables under chained commits: group commit under concurrent
//! appends from two instances, compaction recorded in the chain, files of
//! an earlier version adopted, and `verify` naming every kind of tamper.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use tollgate_storage::audit_log::{record_path, AuditLog, AuditRecord, Kind, COMPACT_AT};
use tollgate_storage::StorageConfig;
use tollgate_storage::{Storage, VerifyReport};

const TABLE: &str = "query_log";
const DIR: &str = "audit/queries";

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("query_id", DataType::Utf8, false),
        Field::new("note", DataType::Utf8, true),
        Field::new("dt", DataType::Utf8, false),
    ]))
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()
}

fn entry(id: &str, dt: NaiveDate) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec![id])),
            Arc::new(StringArray::from(vec![Some("n")])),
            Arc::new(StringArray::from(vec![dt.to_string()])),
        ],
    )
    .unwrap()
}

fn open(dir: &std::path::Path, writer: &str) -> AuditLog {
    let storage = Storage::open(&StorageConfig::local(dir), writer).unwrap();
    AuditLog::new(storage, TABLE, DIR, schema(), writer)
}

/// Every `query_id` in the files the chain lists.
async fn ids(log: &AuditLog) -> Vec<String> {
    let mut out = Vec::new();
    for path in log.files().await.unwrap() {
        let bytes = log.storage().read(&path).await.unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
        {
            let batch = batch.unwrap();
            let col = batch
                .column_by_name("query_id")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            out.extend((0..col.len()).map(|i| col.value(i).to_string()));
        }
    }
    out.sort();
    out
}

async fn verify(dir: &std::path::Path) -> VerifyReport {
    let storage = Storage::open(&StorageConfig::local(dir), "verify").unwrap();
    let mut report = VerifyReport::default();
    tollgate_storage::audit_log::verify(&storage, TABLE, DIR, &mut report)
        .await
        .unwrap();
    report
}

fn records(dir: &std::path::Path) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    for seq in 1.. {
        let Ok(bytes) = std::fs::read(dir.join(record_path(TABLE, seq))) else {
            break;
        };
        out.push(serde_json::from_slice(&bytes).unwrap());
    }
    out
}

fn kinds(report: &VerifyReport) -> Vec<(&'static str, String)> {
    report
        .problems
        .iter()
        .map(|p| (p.kind, p.path.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_from_two_instances_share_one_chain_in_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (open(dir.path(), "a"), open(dir.path(), "b"));
    let mut tasks = Vec::new();
    for i in 0..300 {
        let log = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            log.append(day(), entry(&format!("q{i:04}"), day())).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let expected: Vec<String> = (0..300).map(|i| format!("q{i:04}")).collect();
    // Each instance reads what both wrote, each entry once.
    assert_eq!(ids(&a).await, expected);
    assert_eq!(ids(&b).await, expected);
    let recs = records(dir.path());
    let appended: u64 = recs
        .iter()
        .filter(|r| r.kind == Kind::Append)
        .map(|r| r.added_rows())
        .sum();
    assert_eq!(appended, 300);
    assert!(
        recs.iter().filter(|r| r.kind == Kind::Append).count() < 300,
        "no entries were committed together: {} append records for 300 entries",
        recs.len()
    );
    let writers: BTreeSet<&str> = recs.iter().map(|r| r.writer.as_str()).collect();
    assert_eq!(writers, BTreeSet::from(["a", "b"]));
    let report = verify(dir.path()).await;
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.derived[0].links, recs.len() as u64);
}

#[tokio::test]
async fn a_compaction_is_recorded_keeps_every_row_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), "a");
    let other = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
    for i in 0..10 {
        log.append(day(), entry(&format!("q{i:02}"), day()))
            .await
            .unwrap();
    }
    log.append(other, entry("r00", other)).await.unwrap();
    let before = ids(&log).await;
    assert_eq!(log.compact(day()).await.unwrap(), 10);
    assert_eq!(ids(&log).await, before);
    // One file for the compacted day, the other day untouched.
    assert_eq!(log.files().await.unwrap().len(), 2);
    let recs = records(dir.path());
    let last = recs.last().unwrap();
    assert_eq!(last.kind, Kind::Compact);
    assert_eq!((last.removed.len(), last.added_rows()), (10, 10));
    assert!(verify(dir.path()).await.ok());
    // The removed files go (as after KEEP_REMOVED): still no problem.
    for f in &last.removed {
        std::fs::remove_file(dir.path().join(&f.path)).unwrap();
    }
    let report = verify(dir.path()).await;
    assert!(report.ok(), "{:?}", report.problems);
    // A second instance reading the chain from scratch sees the same rows.
    assert_eq!(ids(&open(dir.path(), "b")).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_past_the_threshold_compact_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), "a");
    for i in 0..COMPACT_AT + 1 {
        log.append(day(), entry(&format!("q{i:03}"), day()))
            .await
            .unwrap();
    }
    // The compaction runs beside the appends; wait for its record.
    for _ in 0..200 {
        if records(dir.path()).iter().any(|r| r.kind == Kind::Compact) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(records(dir.path()).iter().any(|r| r.kind == Kind::Compact));
    assert_eq!(ids(&log).await.len(), COMPACT_AT + 1);
    assert!(log.files().await.unwrap().len() < COMPACT_AT);
    assert!(verify(dir.path()).await.ok());
}

#[tokio::test]
async fn files_of_an_earlier_version_are_adopted_by_the_first_commit() {
    let dir = tempfile::tempdir().unwrap();
    // One file per entry, no dt column, no record: as before the chain.
    let old = Arc::new(Schema::new(vec![Field::new(
        "query_id",
        DataType::Utf8,
        false,
    )]));
    for id in ["old1", "old2"] {
        let batch =
            RecordBatch::try_new(old.clone(), vec![Arc::new(StringArray::from(vec![id]))]).unwrap();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, old.clone(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let path = dir.path().join(format!("{DIR}/dt=2026-03-08/{id}.parquet"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, buf).unwrap();
    }
    // And one that is not Parquet at all: left out, never blocking commits.
    let bad = format!("{DIR}/dt=2026-03-08/broken.parquet");
    std::fs::write(dir.path().join(&bad), b"not parquet").unwrap();
    // Before any commit, verify names them: nothing lists them yet.
    assert_eq!(verify(dir.path()).await.problems.len(), 3);
    let log = open(dir.path(), "a");
    log.append(day(), entry("new", day())).await.unwrap();
    assert_eq!(ids(&log).await, ["new", "old1", "old2"]);
    let recs = records(dir.path());
    assert_eq!(recs[0].kind, Kind::Adopt);
    assert_eq!(recs[0].removed.len(), 2);
    let found = kinds(&verify(dir.path()).await);
    assert_eq!(found, vec![("orphan_file", bad)]);
}

/// Edit, delete, reorder and insert, each on a fresh copy of one chain.
#[tokio::test]
async fn verify_names_each_tamper_of_an_audit_table() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), "a");
    for i in 0..4 {
        log.append(day(), entry(&format!("q{i}"), day()))
            .await
            .unwrap();
    }
    assert!(verify(dir.path()).await.ok());
    let recs = records(dir.path());
    assert_eq!(recs.len(), 4);
    let file = |i: usize| recs[i].added[0].path.clone();
    let rec = |seq: u64| record_path(TABLE, seq);

    type Tamper = Box<dyn Fn(&std::path::Path)>;
    let cases: Vec<(&str, Tamper, &str, String)> = vec![
        (
            "a file deleted",
            Box::new({
                let f = file(1);
                move |d| std::fs::remove_file(d.join(&f)).unwrap()
            }),
            "missing_file",
            file(1),
        ),
        (
            "a file's bytes flipped",
            Box::new({
                let f = file(2);
                move |d| {
                    let p = d.join(&f);
                    let mut b = std::fs::read(&p).unwrap();
                    let mid = b.len() / 2;
                    b[mid] ^= 0xff;
                    std::fs::write(p, b).unwrap();
                }
            }),
            "hash_mismatch",
            file(2),
        ),
        (
            "a file inserted",
            Box::new({
                let f = file(0);
                move |d| {
                    let to = d.join(format!("{DIR}/dt=2026-03-09/forged.parquet"));
                    std::fs::copy(d.join(&f), to).unwrap();
                }
            }),
            "orphan_file",
            format!("{DIR}/dt=2026-03-09/forged.parquet"),
        ),
        (
            "a record deleted",
            Box::new({
                let r = rec(2);
                move |d| std::fs::remove_file(d.join(&r)).unwrap()
            }),
            "sequence_gap",
            rec(3),
        ),
        (
            "two records swapped",
            Box::new({
                let (r2, r3) = (rec(2), rec(3));
                move |d| {
                    let (a, b) = (d.join(&r2), d.join(&r3));
                    let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
                    std::fs::write(&a, y).unwrap();
                    std::fs::write(&b, x).unwrap();
                }
            }),
            "misplaced_record",
            rec(2),
        ),
        (
            "the newest record edited (a file dropped from it)",
            Box::new({
                let r = rec(4);
                move |d| {
                    let p = d.join(&r);
                    let mut v: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                    v["added"] = serde_json::json!([]);
                    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
                }
            }),
            "orphan_file",
            file(3),
        ),
        (
            "a middle record edited",
            Box::new({
                let r = rec(2);
                move |d| {
                    let p = d.join(&r);
                    let t = std::fs::read_to_string(&p)
                        .unwrap()
                        .replace("\"writer\": \"a\"", "\"writer\": \"z\"");
                    std::fs::write(&p, t).unwrap();
                }
            }),
            "broken_link",
            rec(3),
        ),
        (
            "a stray object among the records",
            Box::new(|d| {
                std::fs::write(d.join("audit/_commits/query_log/notes.txt"), "x").unwrap()
            }),
            "stray_audit_object",
            "audit/_commits/query_log/notes.txt".to_string(),
        ),
    ];
    for (what, tamper, kind, path) in cases {
        let copy = tempfile::tempdir().unwrap();
        copy_tree(dir.path(), copy.path());
        tamper(copy.path());
        let found = kinds(&verify(copy.path()).await);
        assert!(
            found.iter().any(|(k, p)| *k == kind && *p == path),
            "{what}: expected {kind} on {path}, verify found {found:?}"
        );
    }
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A forged compaction: the day's files replaced by one file with as many
/// rows, one of them changed, under a correctly linked `compact` record.
#[tokio::test]
async fn a_compaction_that_changes_a_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), "a");
    for i in 0..3 {
        log.append(day(), entry(&format!("q{i}"), day()))
            .await
            .unwrap();
    }
    assert_eq!(log.compact(day()).await.unwrap(), 3);
    assert!(verify(dir.path()).await.ok());
    let recs = records(dir.path());
    let mut forged = recs.last().unwrap().clone();
    let out = forged.added[0].path.clone();
    // Rewrite the output with "q1" changed to "qX", and restate its hash
    // and row digest as a forger would.
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec!["q0", "qX", "q2"])),
            Arc::new(StringArray::from(vec![Some("n"); 3])),
            Arc::new(StringArray::from(vec![day().to_string(); 3])),
        ],
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    std::fs::write(dir.path().join(&out), &buf).unwrap();
    forged.added[0].sha256 = tollgate_storage::sha256_hex(&buf);
    forged.added[0].bytes = buf.len() as u64;
    let honest = verify(dir.path()).await;
    assert!(!honest.ok());
    // With the record restated too (it is the newest, so no link breaks).
    let seq = forged.seq;
    forged.added[0].rows_sha256 = None;
    std::fs::write(dir.path().join(record_path(TABLE, seq)), forged.to_bytes()).unwrap();
    let found = kinds(&verify(dir.path()).await);
    assert!(
        found
            .iter()
            .any(|(k, p)| *k == "bad_compaction" && *p == record_path(TABLE, seq)),
        "{found:?}"
    );
}
