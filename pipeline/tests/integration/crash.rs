//! Invariants 1 and 2 without a broker: a writer stopped at any step of any
//! commit, then restarted (as another instance), ends with exactly the rows
//! of a run that never stopped, every refused record dead-lettered once in
//! the table and delivered at least once to the dead-letter sink, and a
//! chain `verify` accepts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, Int32Array, Int64Array, StringArray};
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tollgate_pipeline::memory::{MemoryDeadLetters, MemoryLog};
use tollgate_pipeline::metrics::Metrics;
use tollgate_pipeline::{
    DeadLetterSink, IngestConfig, Options, Pipeline, PipelineError, Refused, SourceError, Totals,
};
use tollgate_redactor::{RedactionConfig, Redactor};
use tollgate_storage::{
    CommitStep, CrashHook, Storage, StorageConfig, StorageError, StoreCrashHook, StoreFault,
};

const TOPIC: &str = "crash";

/// A generated workload in a two-partition log, with some valid records
/// sent again (to the other partition), and the offsets of the records the
/// generator made bad.
struct Work {
    log: MemoryLog,
    bad: BTreeSet<(i32, i64)>,
    resent: usize,
    records: usize,
    /// Payload bytes of every record, and of the largest.
    bytes: usize,
    largest: usize,
}

fn work() -> Work {
    let params = tollgate_fixtures::Params {
        seed: 11,
        days: 2,
        teams: 3,
        events_per_day: 80,
        start: NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(),
        invalid_rate: 0.06,
        max_event_bytes: tollgate_event::DecodeLimits::default().max_event_bytes,
    };
    let received_at = params.end();
    let generator =
        tollgate_fixtures::Generator::new(params, tollgate_fixtures::demo_price_book().unwrap())
            .unwrap();
    let log = MemoryLog::new(TOPIC, 2);
    let mut bad = BTreeSet::new();
    let mut resend = Vec::new();
    let mut i = 0i32;
    let (mut bytes, mut largest) = (0usize, 0usize);
    generator
        .run(|r| -> Result<(), tollgate_fixtures::Error> {
            let p = i % 2;
            i += 1;
            bytes += r.bytes.len();
            largest = largest.max(r.bytes.len());
            let offset = log.append(
                p,
                Some(r.key.as_bytes()),
                r.bytes.clone(),
                Some(received_at),
            );
            match r.expected {
                Some(_) => {
                    bad.insert((p, offset));
                }
                None if resend.len() < 8 && i % 7 == 0 => resend.push((p, r.clone())),
                None => {}
            }
            Ok(())
        })
        .unwrap();
    for (p, r) in &resend {
        bytes += r.bytes.len();
        log.append(
            1 - p,
            Some(r.key.as_bytes()),
            r.bytes.clone(),
            Some(received_at),
        );
    }
    log.close();
    Work {
        log,
        bad,
        resent: resend.len(),
        records: i as usize + resend.len(),
        bytes,
        largest,
    }
}

/// Records per batch: small enough for several commits per partition.
const BATCH: usize = 25;

fn options(batch: usize) -> Options {
    Options {
        ingest: IngestConfig {
            batch_records: batch,
            batch_latency: Duration::from_secs(3600),
            // The workload lies in the past; the index's window is counted
            // back from the wall clock.
            dedupe_window: Duration::from_secs(3650 * 86_400),
            ..IngestConfig::default()
        },
        limits: None,
        recover_grace: Duration::ZERO,
    }
}

/// Stops at the `nth` time a commit reaches `step`.
fn crash_at(step: CommitStep, nth: usize) -> CrashHook {
    let seen = AtomicUsize::new(0);
    Arc::new(move |s| s == step && seen.fetch_add(1, Ordering::SeqCst) + 1 == nth)
}

/// The dead-letter sink as the writer's process sees it: once the process
/// is dead (a crash hook fired), nothing more reaches the topic.
struct Mortal {
    sink: MemoryDeadLetters,
    dead: Arc<AtomicBool>,
}

impl DeadLetterSink for Mortal {
    async fn publish(&self, topic: &str, refused: &[Refused<'_>]) -> Result<(), SourceError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(SourceError::new("publishing", "the process is dead"));
        }
        self.sink.publish(topic, refused).await
    }
}

/// Where a writer's life ends early.
enum Crash {
    /// At a named step of the commit protocol.
    Step(CrashHook),
    /// At a write to the object store.
    Write(StoreCrashHook),
}

/// One life of a writer: from wherever the log's group and the storage say,
/// to the end of the log or the crash.
async fn life(
    log: &MemoryLog,
    dir: &Path,
    writer: &str,
    sink: &MemoryDeadLetters,
    crash: Option<Crash>,
) -> Result<Totals, PipelineError> {
    life_batched(log, dir, writer, sink, crash, BATCH).await
}

/// [`life`] with `batch` records per batch.
async fn life_batched(
    log: &MemoryLog,
    dir: &Path,
    writer: &str,
    sink: &MemoryDeadLetters,
    crash: Option<Crash>,
    batch: usize,
) -> Result<Totals, PipelineError> {
    life_with(log, dir, writer, sink, crash, options(batch)).await
}

/// [`life`] with these options.
async fn life_with(
    log: &MemoryLog,
    dir: &Path,
    writer: &str,
    sink: &MemoryDeadLetters,
    crash: Option<Crash>,
    options: Options,
) -> Result<Totals, PipelineError> {
    let config = StorageConfig::local(dir);
    let mut storage = Storage::open(&config, writer).unwrap();
    let dead = Arc::new(AtomicBool::new(false));
    match crash {
        Some(Crash::Step(hook)) => {
            let dead = dead.clone();
            storage = storage.with_crash_hook(Arc::new(move |s| {
                let fired = hook(s);
                if fired {
                    dead.store(true, Ordering::SeqCst);
                }
                fired
            }))
        }
        Some(Crash::Write(hook)) => {
            let dead = dead.clone();
            storage = storage.with_store_crash(Arc::new(move |w| {
                let fault = hook(w);
                if fault == StoreFault::Die {
                    dead.store(true, Ordering::SeqCst);
                }
                fault
            }))
        }
        None => {}
    }
    let sink = Mortal {
        sink: sink.clone(),
        dead,
    };
    let redactor = Redactor::new(&RedactionConfig::default(), &config).unwrap();
    let mut p = Pipeline::open(
        log.consumer(),
        sink,
        storage,
        redactor,
        options,
        Arc::new(Metrics::new()),
    )
    .await?;
    p.run(std::future::pending(), None).await?;
    Ok(p.totals().clone())
}

/// Every Parquet file under `d`.
fn walk(d: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
}

/// Every Parquet file under `tables/<table>/`, listed by a chain or not.
fn files(dir: &Path, table: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(&dir.join("tables").join(table), &mut out);
    out
}

/// What a crash may leave before recovery: files committed but not yet
/// published (recovery publishes them), never a file in the tables that no
/// commit record lists (a reader or an auditor would see it).
async fn check_crash_state(dir: &Path, what: &str) {
    let storage = Storage::open(&StorageConfig::local(dir), "check").unwrap();
    let report = storage.verify().await.unwrap();
    let bad: Vec<String> = report
        .problems
        .iter()
        .filter(|p| p.kind != "missing_file")
        .map(ToString::to_string)
        .collect();
    assert!(bad.is_empty(), "{what}: right after the crash: {bad:?}");
}

/// The (partition, offset) of every row of `table`, sorted, repeats kept.
fn rows(dir: &Path, table: &str) -> Vec<(i32, i64)> {
    let mut out = Vec::new();
    for f in files(dir, table) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let col = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
            let parts = col("kafka_partition");
            let parts = parts.as_any().downcast_ref::<Int32Array>().unwrap();
            let offsets = col("kafka_offset");
            let offsets = offsets.as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..batch.num_rows() {
                out.push((parts.value(i), offsets.value(i)));
            }
        }
    }
    out.sort_unstable();
    out
}

/// The (source, id) of every row of `events`, sorted, repeats kept.
fn event_ids(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in files(dir, "events") {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let col = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
            let sources = col("source");
            let sources = sources.as_any().downcast_ref::<StringArray>().unwrap();
            let ids = col("event_id");
            let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..batch.num_rows() {
                out.push((sources.value(i).to_string(), ids.value(i).to_string()));
            }
        }
    }
    out.sort_unstable();
    out
}

/// What the storage at `dir` holds: the events by id (which copy of a
/// resent event is stored depends on the order partitions are read in),
/// the dead letters by where they came from.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<(String, String)>,
    dead: Vec<(i32, i64)>,
}

async fn outcome(dir: &Path) -> Outcome {
    let storage = Storage::open(&StorageConfig::local(dir), "check").unwrap();
    let report = storage.verify().await.unwrap();
    assert!(report.ok(), "verify: {:?}", report.problems);
    let mut staged = Vec::new();
    walk(&dir.join("staging"), &mut staged);
    assert!(staged.is_empty(), "staged files left behind: {staged:?}");
    Outcome {
        events: event_ids(dir),
        dead: rows(dir, "dead_letters"),
    }
}

/// The run that never stops, checked against the generator's own account.
async fn reference(w: &Work) -> (Outcome, Totals) {
    let dir = tempfile::tempdir().unwrap();
    let sink = MemoryDeadLetters::keeping();
    let totals = life(&w.log, dir.path(), "ref", &sink, None).await.unwrap();
    let out = outcome(dir.path()).await;
    let dead: BTreeSet<(i32, i64)> = out.dead.iter().copied().collect();
    assert_eq!(
        dead, w.bad,
        "the dead letters are the generator's bad records"
    );
    assert_eq!(
        out.dead.len(),
        w.bad.len(),
        "each bad record dead-lettered once"
    );
    // The generator sends no event twice: the duplicates are the resends.
    assert_eq!(totals.duplicates, w.resent as u64, "{totals:?}");
    assert_eq!(
        out.events.len() + out.dead.len() + totals.duplicates as usize,
        w.records,
        "every record stored, dead-lettered or dropped as a resend"
    );
    let events: BTreeSet<&(String, String)> = out.events.iter().collect();
    assert_eq!(events.len(), out.events.len(), "no event stored twice");
    (out, totals)
}

#[tokio::test]
async fn a_writer_stopped_at_any_commit_step_loses_and_duplicates_nothing() {
    let w = work();
    let (expected, totals) = reference(&w).await;
    assert!(
        totals.commits >= 8,
        "enough batches to crash between: {totals:?}"
    );
    let mut crashes = 0;
    for step in CommitStep::ALL {
        for nth in 1..=totals.commits as usize {
            let dir = tempfile::tempdir().unwrap();
            let sink = MemoryDeadLetters::keeping();
            // A fresh log state per case: the group offsets start unset.
            for p in 0..2 {
                w.log.set_group_offset(p, None);
            }
            let crash = Crash::Step(crash_at(step, nth));
            let first = life(&w.log, dir.path(), "w1", &sink, Some(crash)).await;
            match first {
                Err(PipelineError::Storage(StorageError::Crashed(s))) if s == step => crashes += 1,
                other => panic!("{step} #{nth}: expected the injected crash, got {other:?}"),
            }
            check_crash_state(dir.path(), &format!("{step} #{nth}")).await;
            // Restarted as another instance.
            life(&w.log, dir.path(), "w2", &sink, None)
                .await
                .unwrap_or_else(|e| panic!("{step} #{nth}: restart: {e}"));
            let got = outcome(dir.path()).await;
            assert_eq!(
                got, expected,
                "{step} #{nth}: rows differ from the uninterrupted run"
            );
            all_delivered(&w, &sink, &format!("{step} #{nth}"));
        }
    }
    assert_eq!(crashes, CommitStep::ALL.len() * totals.commits as usize);
}

/// Records per batch of the test over every write (fewer commits: each
/// writes about nine objects).
const WRITE_BATCH: usize = 60;

#[tokio::test]
async fn a_writer_stopped_at_any_write_to_the_store_loses_and_duplicates_nothing() {
    // Crash points at the store's level do not depend on where the commit
    // protocol places its named steps: moving a write (publishing before
    // the record, the record before staging) fails this test.
    let w = work();
    let (expected, _) = reference(&w).await;
    let writes = Arc::new(AtomicUsize::new(0));
    {
        let dir = tempfile::tempdir().unwrap();
        let counted = writes.clone();
        let count: StoreCrashHook = Arc::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            StoreFault::Pass
        });
        for p in 0..2 {
            w.log.set_group_offset(p, None);
        }
        let sink = MemoryDeadLetters::counting();
        life_batched(
            &w.log,
            dir.path(),
            "w1",
            &sink,
            Some(Crash::Write(count)),
            WRITE_BATCH,
        )
        .await
        .unwrap();
    }
    let writes = writes.load(Ordering::SeqCst);
    assert!(writes >= 20, "{writes} writes");
    // The store dies at each write; or each write lands but reports an
    // error (a timeout after the store wrote it) and the store goes on.
    let cases = (1..=writes)
        .map(|n| (n, StoreFault::Die))
        .chain((1..=writes).map(|n| (n, StoreFault::LandThenFail)));
    for (n, fault) in cases {
        let dir = tempfile::tempdir().unwrap();
        let sink = MemoryDeadLetters::keeping();
        for p in 0..2 {
            w.log.set_group_offset(p, None);
        }
        let seen = AtomicUsize::new(0);
        let hook: StoreCrashHook = Arc::new(move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) + 1 == n {
                fault
            } else {
                StoreFault::Pass
            }
        });
        let first = life_batched(
            &w.log,
            dir.path(),
            "w1",
            &sink,
            Some(Crash::Write(hook)),
            WRITE_BATCH,
        )
        .await;
        let nth = format!("write #{n} ({fault:?})");
        match (&first, fault) {
            (Err(PipelineError::Storage(_)), _) => {}
            // A write that landed may be taken for what it is.
            (Ok(_), StoreFault::LandThenFail) => {}
            _ => panic!("{nth}: expected a storage error, got {first:?}"),
        }
        if fault == StoreFault::Die {
            check_crash_state(dir.path(), &nth).await;
        }
        life_batched(&w.log, dir.path(), "w2", &sink, None, WRITE_BATCH)
            .await
            .unwrap_or_else(|e| panic!("{nth}: restart: {e}"));
        let got = outcome(dir.path()).await;
        assert_eq!(
            got, expected,
            "{nth}: rows differ from the uninterrupted run"
        );
        all_delivered(&w, &sink, &nth);
    }
}

#[tokio::test]
async fn a_group_offset_ahead_of_an_empty_storage_loses_nothing() {
    let w = work();
    let (expected, _) = reference(&w).await;
    // The group says everything was read (a group kept while the storage
    // was emptied or moved); the storage has no chain.
    let highs: Vec<i64> = {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(&StorageConfig::local(dir.path()), "x").unwrap();
        drop(s);
        vec![
            w.log.group_offset(0).unwrap_or(0),
            w.log.group_offset(1).unwrap_or(0),
        ]
    };
    assert!(
        highs.iter().all(|h| *h > 0),
        "the reference run moved the group offsets"
    );
    // Partition 0's group points inside its log, partition 1's at its end.
    w.log.set_group_offset(0, Some(highs[0] / 2));
    w.log.set_group_offset(1, Some(highs[1]));
    let dir = tempfile::tempdir().unwrap();
    let sink = MemoryDeadLetters::counting();
    life(&w.log, dir.path(), "w1", &sink, None).await.unwrap();
    assert_eq!(outcome(dir.path()).await, expected);
}

#[tokio::test]
async fn a_chain_begins_at_the_log_start_and_a_retention_gap_stops_the_writer() {
    let w = work();
    let (expected, _) = reference(&w).await;
    for p in 0..2 {
        w.log.set_group_offset(p, None);
    }
    // Partition 0 lost its first records to retention before any commit:
    // its chain begins at the log start, which its first record states.
    w.log.truncate_before(0, 7);
    let dir = tempfile::tempdir().unwrap();
    let sink = MemoryDeadLetters::counting();
    let crash = Crash::Step(crash_at(CommitStep::AfterGroupOffset, 3));
    let first = life(&w.log, dir.path(), "w1", &sink, Some(crash)).await;
    assert!(matches!(
        first,
        Err(PipelineError::Storage(StorageError::Crashed(_)))
    ));
    let storage = Storage::open(&StorageConfig::local(dir.path()), "check").unwrap();
    let (first_record, _) = storage
        .records_after(TOPIC, 0, 0)
        .await
        .unwrap()
        .into_iter()
        .fold((None, ()), |(f, _), r| (f.or(Some(r)), ()));
    let first_record = first_record.expect("partition 0 committed");
    assert_eq!(first_record.first_offset, 7);
    assert_eq!(first_record.log_start, Some(7));
    // While the writer was down, retention took records it had not stored.
    let next = storage.resume_offset(TOPIC, 0).await.unwrap().unwrap_or(7);
    let high = w.log.group_offset(0).unwrap_or(next).max(next);
    w.log.truncate_before(0, high + 5);
    match life(&w.log, dir.path(), "w2", &sink, None).await {
        Err(PipelineError::RetentionGap {
            partition: 0,
            expected,
            served,
            ..
        }) => {
            assert_eq!(expected, next);
            assert_eq!(served, high + 5);
        }
        other => panic!("expected a retention gap, got {other:?}"),
    }
    let report = storage.verify().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    let _ = expected;
}

/// Checks that every refused record reached the dead-letter sink at least
/// once.
fn all_delivered(w: &Work, sink: &MemoryDeadLetters, what: &str) {
    let delivered: BTreeSet<(i32, i64)> = sink
        .delivered()
        .iter()
        .map(|r| (r.partition, r.offset))
        .collect();
    assert!(
        w.bad.is_subset(&delivered),
        "{what}: a refused record never reached the dead-letter sink"
    );
}

/// The writers of a partition's commit records, in chain order.
async fn chain_writers(dir: &Path, partition: i32) -> Vec<String> {
    let storage = Storage::open(&StorageConfig::local(dir), "check").unwrap();
    storage
        .records_after(TOPIC, partition, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.writer)
        .collect()
}

#[tokio::test]
async fn a_writer_fenced_while_its_next_batch_fills_stores_that_batch_again() {
    // Writer A's first write finds writer B's commit in its place: B,
    // started when A stages its first file, commits its first batch and
    // stops. A's commit is fenced while A's next batch of the partition is
    // already full; both are dropped, and the partition is read again from
    // B's chain end. A resend check that kept the dropped batch's keys
    // would now take its events for duplicates and lose them.
    fenced_case(BATCH).await;
}

#[tokio::test]
async fn a_writer_fenced_at_the_end_of_its_source_reads_the_partition_again() {
    // A's batches hold the whole log, so its writes come after the source
    // ended; the fenced one's partition must still be read again.
    fenced_case(10_000).await;
}

/// Writer A, with `a_batch` records per batch, is fenced by writer B.
async fn fenced_case(a_batch: usize) {
    let w = work();
    let (expected, _) = reference(&w).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = MemoryDeadLetters::keeping();
    for p in 0..2 {
        w.log.set_group_offset(p, None);
    }
    let fired = Arc::new(AtomicBool::new(false));
    let hook: StoreCrashHook = {
        let (log, dir, sink, fired) = (
            w.log.clone(),
            dir.path().to_path_buf(),
            sink.clone(),
            fired.clone(),
        );
        Arc::new(move |_| {
            if !fired.swap(true, Ordering::SeqCst) {
                let (log, dir, sink) = (log.clone(), dir.clone(), sink.clone());
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    let b = rt.block_on(life(
                        &log,
                        &dir,
                        "b",
                        &sink,
                        Some(Crash::Step(crash_at(CommitStep::AfterGroupOffset, 1))),
                    ));
                    assert!(
                        matches!(b, Err(PipelineError::Storage(StorageError::Crashed(_)))),
                        "B stops after its first commit: {b:?}"
                    );
                })
                .join()
                .unwrap();
            }
            StoreFault::Pass
        })
    };
    life_batched(
        &w.log,
        dir.path(),
        "a",
        &sink,
        Some(Crash::Write(hook)),
        a_batch,
    )
    .await
    .unwrap();
    assert!(fired.load(Ordering::SeqCst));
    let chains = [
        chain_writers(dir.path(), 0).await,
        chain_writers(dir.path(), 1).await,
    ];
    let fenced = chains
        .iter()
        .find(|c| c.first().map(String::as_str) == Some("b"))
        .unwrap_or_else(|| panic!("B committed first on one partition: {chains:?}"));
    assert_eq!(
        fenced.len(),
        1 + fenced.iter().filter(|w| *w == "a").count()
    );
    assert!(fenced.len() >= 2, "A stored the rest after B: {fenced:?}");
    assert_eq!(outcome(dir.path()).await, expected);
    all_delivered(&w, &sink, "fenced");
}

#[tokio::test]
async fn open_batches_stay_under_the_memory_bound() {
    // Batches of 10,000 records would hold the whole log until the end (one
    // commit per partition); a bound of 8 KB of payload over both
    // partitions commits the larger open batch whenever it is reached.
    let w = work();
    let (expected, reference_totals) = reference(&w).await;
    let mut opts = options(10_000);
    opts.ingest.max_open_bytes = 8 * 1024;
    for p in 0..2 {
        w.log.set_group_offset(p, None);
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = MemoryDeadLetters::counting();
    let totals = life_with(&w.log, dir.path(), "w1", &sink, None, opts)
        .await
        .unwrap();
    // A commit comes when the open batches reach the bound, and takes at
    // most what they hold then: the bound plus one record.
    let at_least = w.bytes / (8 * 1024 + w.largest);
    assert!(
        totals.commits as usize >= at_least,
        "{} commits for {} bytes (at least {at_least})",
        totals.commits,
        w.bytes
    );
    assert!(totals.commits > reference_totals.commits, "{totals:?}");
    assert_eq!(outcome(dir.path()).await, expected);
}
