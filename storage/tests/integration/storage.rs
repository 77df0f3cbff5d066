//! Storage: commit chains, Parquet read back, fencing, recovery, and
//! tamper detection by `verify`.

use std::path::Path;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;
use tollgate_event::{decode, DecodeLimits, ReasonCode, RejectReason};
use tollgate_storage::StorageConfig;
use tollgate_storage::{
    event_key, DeadLetter, DedupeIndex, KafkaCoords, PartitionBatch, Storage, StorageError,
    StoredEvent,
};

fn now() -> DateTime<Utc> {
    "2026-11-03T15:00:00Z".parse().unwrap()
}

fn event(i: i64, gpu: bool) -> tollgate_event::Event {
    let t = |d: i64| (now() - Duration::hours(d)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let v = if gpu {
        json!({"specversion": "1.0", "id": format!("g{i}"), "source": "s", "type": "dev.tollgate.gpu_usage.v1",
               "time": t(i % 30), "data": {"tenant": "acme", "team": "search", "user": "u", "environment": "prod",
               "workload_id": "w", "workload_kind": "notebook", "gpu_model": "L4", "gpu_count": 2,
               "interval_start": t(i % 30 + 1), "interval_end": t(i % 30), "pricing_tier": "spot", "node": "n", "region": "r"}})
    } else {
        json!({"specversion": "1.0", "id": format!("c{i}"), "source": "s", "type": "dev.tollgate.tool_call.v1",
               "time": t(i % 30), "data": {"tenant": "acme", "team": "search", "user": "u", "environment": "prod",
               "mcp_server": "crm", "tool": "lookup", "phase": "start", "call_id": format!("k{i}"),
               "arguments": {"q": "<email:0123456789abcdef>"}}})
    };
    decode(v.to_string().as_bytes(), &DecodeLimits::default(), now()).unwrap()
}

fn batch(partition: i32, first: i64, n: i64) -> PartitionBatch {
    let mut events = Vec::new();
    let mut dead = Vec::new();
    for off in first..first + n {
        let kafka = KafkaCoords {
            topic: "raw".into(),
            partition,
            offset: off,
            timestamp: Some(now()),
        };
        if off % 10 == 9 {
            dead.push(DeadLetter {
                kafka,
                key: Some("search".into()),
                reason: RejectReason::new(ReasonCode::MissingField, "data.team", "is required"),
                tenant: "acme".into(),
                payload_redacted: "{\"id\":\"x\"}".into(),
                redaction_key_id: "k1".into(),
                payload_bytes: 10,
            });
        } else {
            events.push(StoredEvent {
                event: event(off, off % 3 == 0),
                redaction_key_id: "k1".into(),
                kafka,
            });
        }
    }
    PartitionBatch {
        topic: "raw".into(),
        partition,
        first_offset: first,
        last_offset: first + n - 1,
        events,
        dead_letters: dead,
        duplicates: 0,
        log_start: None,
    }
}

fn open(dir: &Path, writer: &str) -> Storage {
    let cfg = StorageConfig {
        data_dir: dir.to_path_buf(),
        url: None,
        ..Default::default()
    };
    Storage::open(&cfg, writer).unwrap()
}

async fn filled(dir: &Path) -> Storage {
    let s = open(dir, "w1");
    for (p, first) in [(0, 0), (0, 100), (0, 200), (1, 0)] {
        s.commit(&batch(p, first, 100)).await.unwrap();
    }
    s
}

fn files(dir: &Path, under: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join(under)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn chains_verify_and_parquet_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = filled(dir.path()).await;
    let report = s.verify().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.chains.len(), 2);
    let p0 = &report.chains[0];
    assert_eq!((p0.commits, p0.first_offset, p0.last_offset), (3, 0, 299));
    assert_eq!(p0.consumed, p0.stored + p0.dead_lettered);
    assert_eq!(p0.dead_lettered, 30);
    assert_eq!(s.resume_offset("raw", 0).await.unwrap(), Some(300));
    assert_eq!(
        open(dir.path(), "w2")
            .resume_offset("raw", 1)
            .await
            .unwrap(),
        Some(100)
    );

    // The Parquet files read back with the standard reader, dt-partitioned.
    let mut rows = 0;
    for f in files(dir.path(), "tables/events") {
        assert!(f.to_string_lossy().contains("/dt=2026-1"), "{f:?}");
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for b in reader {
            let b = b.unwrap();
            rows += b.num_rows();
            assert!(b.schema().field_with_name("redaction_key_id").is_ok());
        }
    }
    assert_eq!(
        rows as u64,
        report.chains.iter().map(|c| c.stored).sum::<u64>()
    );
    assert!(
        !files(dir.path(), "tables/gpu_usage").is_empty()
            && !files(dir.path(), "tables/tool_calls").is_empty()
    );
}

#[tokio::test]
async fn a_stale_writer_cannot_commit_the_same_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), "a");
    let b = open(dir.path(), "b");
    assert_eq!(a.resume_offset("raw", 0).await.unwrap(), None);
    assert_eq!(b.resume_offset("raw", 0).await.unwrap(), None);
    a.commit(&batch(0, 0, 50)).await.unwrap();
    let err = b.commit(&batch(0, 0, 60)).await.unwrap_err();
    assert!(matches!(err, StorageError::Fenced { seq: 1, .. }), "{err}");
    assert!(
        files(dir.path(), "staging").is_empty(),
        "the loser's files are discarded"
    );
    // Once it re-reads the chain it resumes after the winner's batch.
    assert_eq!(b.resume_offset("raw", 0).await.unwrap(), Some(50));
    let err = b.commit(&batch(0, 40, 20)).await.unwrap_err();
    assert!(
        matches!(err, StorageError::OffsetGap { next: 50, .. }),
        "{err}"
    );
    b.commit(&batch(0, 50, 20)).await.unwrap();
    assert!(a.verify().await.unwrap().ok());
}

#[tokio::test]
async fn recovery_publishes_committed_and_drops_uncommitted_files() {
    let dir = tempfile::tempdir().unwrap();
    let s = filled(dir.path()).await;
    // A crash between commit and publish: a committed file is still in staging.
    let published = files(dir.path(), "tables/events")[0].clone();
    let rel = published.strip_prefix(dir.path()).unwrap();
    let staged = dir.path().join("staging/w1").join(rel);
    std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
    std::fs::rename(&published, &staged).unwrap();
    // A crash before commit: a file no record lists.
    let stray = dir
        .path()
        .join("staging/w9/tables/events/dt=2026-11-03/p00000-x.parquet");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"partial").unwrap();
    let before = s.verify().await.unwrap();
    assert_eq!(before.problems[0].kind, "missing_file");
    assert_eq!(before.staging.len(), 2);
    // A young uncommitted file may be another instance's write in progress.
    let r = s
        .recover(std::time::Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!((r.published, r.discarded), (1, 0));
    assert!(stray.exists());
    let r = s.recover(std::time::Duration::ZERO).await.unwrap();
    assert_eq!((r.published, r.discarded), (0, 1));
    let after = s.verify().await.unwrap();
    assert!(
        after.ok() && after.staging.is_empty(),
        "{:?}",
        after.problems
    );
}

#[tokio::test]
async fn recovery_never_publishes_a_copy_that_is_not_the_committed_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let s = filled(dir.path()).await;
    let published = files(dir.path(), "tables/events")[0].clone();
    let rel = published.strip_prefix(dir.path()).unwrap();
    let good = std::fs::read(&published).unwrap();
    // A killed writer staged other bytes under the same name before w1
    // committed those offsets (its redaction keys changed, say).
    let other = dir.path().join("staging/killed-7").join(rel);
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::write(&other, b"PAR1 another writer's bytes").unwrap();
    // And a staged copy under the committing writer's own name whose bytes
    // are not the ones its record states.
    let changed = dir.path().join("staging/w1").join(rel);
    std::fs::create_dir_all(changed.parent().unwrap()).unwrap();
    std::fs::write(&changed, b"PAR1 changed bytes").unwrap();
    let r = open(dir.path(), "w2")
        .recover(std::time::Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!((r.published, r.discarded), (0, 2), "{r:?}");
    assert_eq!(
        std::fs::read(&published).unwrap(),
        good,
        "the committed file was overwritten"
    );
    assert!(!other.exists() && !changed.exists());
    assert!(s.verify().await.unwrap().ok());
}

#[tokio::test]
async fn recovery_deletes_the_temporary_files_of_interrupted_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = filled(dir.path()).await;
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let mut temporary = Vec::new();
    for rel in [
        "commits/raw/p00000/00000000000000000004.json#1",
        "staging/w1/tables/events/dt=2026-11-03/p00000-x.parquet#12",
    ] {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let f = std::fs::File::create(&p).unwrap();
        f.set_modified(old).unwrap();
        temporary.push(p);
    }
    // A young one may be a write in progress.
    let young = dir
        .path()
        .join("commits/raw/p00001/00000000000000000002.json#3");
    std::fs::write(&young, b"").unwrap();
    let r = s
        .recover(std::time::Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(r.temporary, 2, "{r:?}");
    assert!(temporary.iter().all(|p| !p.exists()) && young.exists());
    assert!(s.verify().await.unwrap().ok());
}

#[tokio::test]
async fn a_chain_that_does_not_begin_at_the_log_start_is_a_gap() {
    for (first, log_start, gap) in [
        (0, Some(0), false),
        (40, Some(40), false),
        (40, Some(0), true),
        (0, None, false),
        (40, None, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), "w1");
        let mut b = batch(0, first, 20);
        b.log_start = log_start;
        let record = s.commit(&b).await.unwrap();
        assert_eq!(record.log_start, log_start);
        // Only the first record states it.
        let mut next = batch(0, first + 20, 20);
        next.log_start = log_start;
        assert_eq!(s.commit(&next).await.unwrap().log_start, None);
        let report = s.verify().await.unwrap();
        let kinds: Vec<&str> = report.problems.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds == ["offset_gap"],
            gap,
            "first {first}, log start {log_start:?}: {kinds:?}"
        );
    }
}

async fn tampered(change: impl FnOnce(&Path)) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let s = filled(dir.path()).await;
    assert!(s.verify().await.unwrap().ok());
    change(dir.path());
    let report = open(dir.path(), "auditor").verify().await.unwrap();
    report
        .problems
        .iter()
        .map(|p| format!("{} {}", p.kind, p.path))
        .collect()
}

#[tokio::test]
async fn verify_detects_every_kind_of_tampering() {
    // One byte of a Parquet file changed.
    let problems = tampered(|d| {
        let f = files(d, "tables/events")[1].clone();
        let mut b = std::fs::read(&f).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x01;
        std::fs::write(&f, b).unwrap();
    })
    .await;
    assert!(
        problems[0].starts_with("hash_mismatch tables/events/"),
        "{problems:?}"
    );

    // A file deleted.
    let problems =
        tampered(|d| std::fs::remove_file(&files(d, "tables/gpu_usage")[0]).unwrap()).await;
    assert!(
        problems[0].starts_with("missing_file tables/gpu_usage/"),
        "{problems:?}"
    );

    // A commit record deleted.
    let problems = tampered(|d| {
        std::fs::remove_file(d.join("commits/raw/p00000/00000000000000000002.json")).unwrap()
    })
    .await;
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("sequence_gap commits/raw/p00000/00000000000000000003.json")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("orphan_file tables/")),
        "its files are now orphans: {problems:?}"
    );

    // Two commit records swapped.
    let problems = tampered(|d| {
        let a = d.join("commits/raw/p00000/00000000000000000001.json");
        let b = d.join("commits/raw/p00000/00000000000000000002.json");
        let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        std::fs::write(&a, y).unwrap();
        std::fs::write(&b, x).unwrap();
    })
    .await;
    assert!(
        problems[0].starts_with("misplaced_record commits/raw/p00000/00000000000000000001.json"),
        "{problems:?}"
    );

    // A commit record edited (its counts), keeping valid JSON.
    let problems = tampered(|d| {
        let p = d.join("commits/raw/p00000/00000000000000000001.json");
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("\"dead_lettered\": 10", "\"dead_lettered\": 9");
        std::fs::write(&p, text).unwrap();
    })
    .await;
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("broken_link commits/raw/p00000/00000000000000000002.json")),
        "{problems:?}"
    );

    // A file added.
    let problems = tampered(|d| {
        let f = files(d, "tables/events")[0].clone();
        std::fs::copy(&f, f.with_file_name("p00000-extra.parquet")).unwrap();
    })
    .await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("orphan_file tables/events/")
            && problems[0].ends_with("p00000-extra.parquet")
    );
}

/// The dedupe index is rebuilt from the stored `events` files of its topic
/// only, and catches up on what another writer committed since.
#[tokio::test]
async fn dedupe_index_rebuilds_from_storage_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let s = filled(dir.path()).await;
    // Another topic's events must not count as stored for this one.
    let mut other = batch(0, 0, 10);
    other.topic = "other".into();
    for e in &mut other.events {
        e.kafka.topic = "other".into();
        e.event.envelope.id = format!("other-{}", e.event.envelope.id);
    }
    s.commit(&other).await.unwrap();

    // Ten years of window: the fixed test dates stay inside it.
    let window = std::time::Duration::from_secs(3650 * 86_400);
    let mut idx = DedupeIndex::new("raw", window);
    let added = idx.refresh(&s).await.unwrap();
    // 4 batches of 100 records, 10 of each dead-lettered; p0 and p1 both
    // hold offsets 0..100, whose events share ids (ids come from offsets).
    assert_eq!(added, 270, "distinct (tenant, source, id) stored in raw");
    let stored = batch(0, 0, 100);
    let e = &stored.events[0].event;
    assert!(idx.contains(event_key(
        &e.tags.tenant,
        &e.envelope.source,
        &e.envelope.id
    )));
    assert!(!idx.contains(event_key("acme", "s", "other-c1")));

    // A second writer commits more; a refresh reads only the new record.
    let s2 = open(dir.path(), "w2");
    let next = batch(0, 300, 100);
    s2.commit(&next).await.unwrap();
    assert_eq!(idx.refresh(&s).await.unwrap(), 90);
    assert_eq!(idx.refresh(&s).await.unwrap(), 0, "nothing new");
    let e = &next.events[5].event;
    assert!(idx.contains(event_key(
        &e.tags.tenant,
        &e.envelope.source,
        &e.envelope.id
    )));

    // A one-day window at today's date holds none of these (they are
    // weeks old), whatever is stored.
    let mut short = DedupeIndex::new("raw", std::time::Duration::from_secs(86_400));
    assert_eq!(short.refresh(&s).await.unwrap(), 0);
}

/// The same code path on an S3 URL: commits, create-if-absent fencing
/// (S3 conditional put), verify, the dedupe index and Parquet read back.
#[tokio::test]
async fn an_s3_url_takes_the_same_path() {
    let Some(moto) = tollgate_fixtures::moto::start() else {
        return;
    };
    moto.create_bucket("tollgate-audit");
    let dir = tempfile::tempdir().unwrap();
    let s3 = |writer: &str| {
        let mut cfg = StorageConfig {
            data_dir: dir.path().to_path_buf(),
            url: Some("s3://tollgate-audit/prod/tollgate".into()),
            ..Default::default()
        };
        for (k, v) in [
            ("endpoint", moto.endpoint.as_str()),
            ("allow_http", "true"),
            ("region", "us-east-1"),
            ("access_key_id", "test"),
        ] {
            cfg.options.insert(k.into(), v.into());
        }
        cfg.secret_options
            .insert("secret_access_key".into(), "test".to_string().into());
        Storage::open(&cfg, writer).unwrap()
    };
    let (a, b) = (s3("a"), s3("b"));
    assert_eq!(a.resume_offset("raw", 0).await.unwrap(), None);
    assert_eq!(b.resume_offset("raw", 0).await.unwrap(), None);
    a.commit(&batch(0, 0, 50)).await.unwrap();
    let err = b.commit(&batch(0, 0, 60)).await.unwrap_err();
    assert!(matches!(err, StorageError::Fenced { seq: 1, .. }), "{err}");
    assert_eq!(b.resume_offset("raw", 0).await.unwrap(), Some(50));
    b.commit(&batch(0, 50, 100)).await.unwrap();
    a.commit(&batch(1, 0, 100)).await.unwrap();

    let report = a.verify().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.chains.len(), 2);
    assert_eq!(report.chains[0].last_offset, 149);
    let files = a.committed_files("events").await.unwrap();
    assert!(
        files.iter().all(|f| f.starts_with("tables/events/dt=")),
        "{files:?}"
    );
    let mut rows = 0;
    for f in &files {
        let bytes = a.read(f).await.unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
        {
            rows += batch.unwrap().num_rows();
        }
    }
    assert_eq!(
        rows as u64,
        report.chains.iter().map(|c| c.stored).sum::<u64>()
    );

    let mut idx = DedupeIndex::new("raw", std::time::Duration::from_secs(3650 * 86_400));
    assert_eq!(idx.refresh(&a).await.unwrap(), 135, "ids of p0 0..150");
    // Nothing on the local disk but the key store's directory.
    assert!(!dir.path().join("commits").exists() && !dir.path().join("tables").exists());
}

#[tokio::test]
async fn the_dedupe_index_reads_a_committed_file_its_writer_has_not_published() {
    // The writer died between its commit record and publishing; another
    // instance refreshes its index before any recovery ran.
    let dir = tempfile::tempdir().unwrap();
    let w1 = open(dir.path(), "w1").with_crash_hook(std::sync::Arc::new(|s| {
        s == tollgate_storage::CommitStep::AfterRecord
    }));
    let b = batch(0, 0, 20);
    assert!(matches!(
        w1.commit(&b).await,
        Err(StorageError::Crashed(
            tollgate_storage::CommitStep::AfterRecord
        ))
    ));
    let w2 = open(dir.path(), "w2");
    let mut index = DedupeIndex::new("raw", std::time::Duration::from_secs(3650 * 86_400));
    assert_eq!(index.refresh(&w2).await.unwrap(), b.events.len());
    for e in &b.events {
        let key = event_key(
            &e.event.tags.tenant,
            &e.event.envelope.source,
            &e.event.envelope.id,
        );
        assert!(index.contains(key), "{} not indexed", e.event.envelope.id);
    }
}
