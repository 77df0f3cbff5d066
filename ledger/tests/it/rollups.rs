//! Rollups maintained commit by commit (with compaction) give the same
//! reports as the raw tables, and a rebuild from the raw tables gives the
//! same again.

use chrono::{Duration, NaiveDate, Utc};
use tollgate_ledger::report::{self, AnomalyConfig, Period};
use tollgate_ledger::rollup;
use tollgate_ledger::{LedgerContext, PriceBook};
use tollgate_storage::StorageConfig;
use tollgate_storage::{KafkaCoords, PartitionBatch, Storage, StoredEvent};

const COMMITS: usize = 12;

/// Commits every `n`th event from the `i`th as one batch of partition
/// `t/0`, from `offset` on.
pub(crate) async fn commit_share(
    storage: &Storage,
    all: &[tollgate_event::Event],
    i: usize,
    n: usize,
    offset: &mut i64,
) {
    let events: Vec<StoredEvent> = all
        .iter()
        .skip(i)
        .step_by(n)
        .map(|e| {
            *offset += 1;
            StoredEvent {
                event: e.clone(),
                redaction_key_id: "k1".into(),
                kafka: KafkaCoords {
                    topic: "t".into(),
                    partition: 0,
                    offset: *offset - 1,
                    timestamp: None,
                },
            }
        })
        .collect();
    let batch = PartitionBatch {
        topic: "t".into(),
        partition: 0,
        first_offset: events[0].kafka.offset,
        last_offset: events[events.len() - 1].kafka.offset,
        events,
        dead_letters: Vec::new(),
        duplicates: 0,
        log_start: None,
    };
    storage.commit(&batch).await.unwrap();
}

/// Three weeks of the fixture workload, decoded.
pub(crate) fn events() -> Vec<tollgate_event::Event> {
    let start = NaiveDate::from_ymd_opt(2026, 9, 20).unwrap();
    let mut params = tollgate_fixtures::Params::ending_before(start + Duration::days(21));
    (params.days, params.seed, params.start) = (21, 11, start);
    params.events_per_day = 400;
    params.invalid_rate = 0.0;
    let generator =
        tollgate_fixtures::Generator::new(params, tollgate_fixtures::demo_price_book().unwrap())
            .unwrap();
    let limits = tollgate_event::DecodeLimits {
        max_past: std::time::Duration::from_secs(3650 * 86_400),
        ..Default::default()
    };
    let now = Utc::now();
    let mut out = Vec::new();
    generator
        .run(|r| -> Result<(), tollgate_fixtures::Error> {
            if r.expected.is_none() {
                out.push(tollgate_event::decode(&r.bytes, &limits, now).unwrap());
            }
            Ok(())
        })
        .unwrap();
    out
}

/// The reports the ledger gives, as JSON, for comparison.
async fn reports(ctx: &LedgerContext, book: &PriceBook) -> Vec<String> {
    let mut out = Vec::new();
    for (month, tz) in [
        ("2026-09", "UTC"),
        ("2026-10", "Asia/Kolkata"),
        ("2026-10", "Europe/Berlin"),
    ] {
        let p = Period::month(month, tz).unwrap();
        let c = report::chargeback(ctx, &p, book.currency()).await.unwrap();
        out.push(serde_json::to_string(&c).unwrap());
    }
    // A rule that flags every team, so that every team's figures and
    // drivers are compared (at midnight and at a time inside an hour).
    let rule = AnomalyConfig {
        multiplier: "0.1".parse().unwrap(),
        min_history_days: 1,
        floor: rust_decimal::Decimal::ZERO,
        drivers: 100,
        ..AnomalyConfig::default()
    };
    for at in ["2026-10-05T00:00:00Z", "2026-10-08T13:45:12Z"] {
        let at = at.parse().unwrap();
        let a = report::anomalies(ctx, &rule, at, book.currency())
            .await
            .unwrap();
        out.push(serde_json::to_string(&a).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_rollups_compaction_and_rebuild_match_the_raw_tables() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let storage = Storage::open(&config, "test").unwrap();
    let book = tollgate_fixtures::demo_price_book().unwrap();
    let all = events();
    assert!(all.len() > 5_000, "{}", all.len());

    // Commit the events in COMMITS batches that each span every day, and
    // refresh the rollups after each: every refresh adds a file to every
    // day, so days pass the compaction threshold.
    let mut ctx = LedgerContext::open(&config, &book).await.unwrap();
    let mut offset = 0i64;
    let mut compacted = 0;
    for i in 0..COMMITS {
        commit_share(&storage, &all, i, COMMITS, &mut offset).await;
        let r = ctx.use_rollups().await.unwrap();
        assert!(r.current);
        assert_eq!(r.records, 1, "commit {i}: one new record rolled up");
        compacted += r.compacted;
    }
    let m = ctx.rollups().unwrap().clone();
    assert_eq!(m.covered.get("t/0"), Some(&(COMMITS as u64)));
    assert_eq!(m.events, all.iter().filter(|e| costed(e)).count() as u64);
    assert!(compacted > 0, "no day was compacted");
    let mut per_day = std::collections::BTreeMap::<&str, usize>::new();
    for f in &m.files {
        *per_day.entry(f.dt.as_str()).or_default() += 1;
    }
    assert!(per_day.values().all(|n| *n <= 8), "{per_day:?}");

    let with_rollups = reports(&ctx, &book).await;
    let raw = LedgerContext::open(&config, &book).await.unwrap();
    assert!(raw.rollups().is_none());
    let from_raw = reports(&raw, &book).await;
    same(&with_rollups, &from_raw, "incremental rollups");
    assert!(
        with_rollups[0].contains("\"teams\":[{"),
        "{}",
        with_rollups[0]
    );
    assert!(
        with_rollups[4].matches("\"team\"").count() >= 5,
        "{}",
        with_rollups[4]
    );

    // A rebuild from the raw tables: the same figures, one file per day.
    let r = rollup::rebuild(&ctx).await.unwrap();
    let rebuilt = r.manifest.unwrap();
    assert_eq!(rebuilt.version, m.version + 1);
    assert_eq!(rebuilt.events, m.events);
    assert_eq!(rebuilt.files.len(), per_day.len());
    let mut ctx = LedgerContext::open(&config, &book).await.unwrap();
    ctx.use_rollups().await.unwrap();
    assert_eq!(ctx.rollups().unwrap().version, rebuilt.version);
    same(&reports(&ctx, &book).await, &from_raw, "rebuilt rollups");
    // The refresh after the rebuild deleted the files it superseded.
    for f in &m.files {
        assert!(!storage.exists(&f.path).await.unwrap(), "{} kept", f.path);
    }

    // Another price book: the rollups are not used until rebuilt.
    let mut cfg = book.config().clone();
    cfg.gpu[0].per_gpu_second = "123".parse().unwrap();
    let other = PriceBook::new(cfg).unwrap();
    let mut ctx = LedgerContext::open(&config, &other).await.unwrap();
    let r = ctx.use_rollups().await.unwrap();
    assert!(!r.current);
    assert!(ctx.rollups().is_none(), "stale rollups must not be read");
}

/// A reader writes nothing: it reads the newest rollups and rolls up the
/// commit records they do not cover yet in memory, with the same figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_add_the_records_not_yet_rolled_up_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::local(dir.path());
    let storage = Storage::open(&config, "test").unwrap();
    let book = tollgate_fixtures::demo_price_book().unwrap();
    let all = events();
    let mut offset = 0i64;
    let mut reader = LedgerContext::open(&config, &book).await.unwrap();
    assert_eq!(
        reader.read_snapshot().await.unwrap().unwrap_err(),
        rollup::Unusable::None,
        "nothing built yet: the raw tables are read"
    );

    // The writer rolls up the first of three commits; two follow.
    commit_share(&storage, &all, 0, 3, &mut offset).await;
    let mut writer = LedgerContext::open(&config, &book).await.unwrap();
    assert!(writer.use_rollups().await.unwrap().current);
    commit_share(&storage, &all, 1, 3, &mut offset).await;
    commit_share(&storage, &all, 2, 3, &mut offset).await;
    let before = storage.list_files("ledger/").await.unwrap();

    let s = reader.read_snapshot().await.unwrap().unwrap();
    assert_eq!((s.manifest.version, s.tail_records), (1, 2));
    assert!(s.tail.is_some() && s.tail_events > 0);
    let read = reports(&reader, &book).await;
    let raw = LedgerContext::open(&config, &book).await.unwrap();
    same(
        &read,
        &reports(&raw, &book).await,
        "rollups and the tail in memory",
    );
    assert_eq!(
        storage.list_files("ledger/").await.unwrap(),
        before,
        "a reader wrote to the storage"
    );

    // Once the writer catches up, the tail is empty and the figures stay.
    assert_eq!(writer.use_rollups().await.unwrap().records, 2);
    let s = reader.read_snapshot().await.unwrap().unwrap();
    assert_eq!((s.manifest.version, s.tail_records), (2, 0));
    same(
        &reports(&reader, &book).await,
        &read,
        "after the writer caught up",
    );
}

fn costed(e: &tollgate_event::Event) -> bool {
    match &e.body {
        tollgate_event::EventBody::GpuUsage(_) => true,
        tollgate_event::EventBody::ToolCall(c) => c.phase == tollgate_event::Phase::End,
    }
}

/// The same reports, or the first that differs.
fn same(a: &[String], raw: &[String], what: &str) {
    assert_eq!(a.len(), raw.len());
    for (i, (x, y)) in a.iter().zip(raw).enumerate() {
        let at = x.bytes().zip(y.bytes()).take_while(|(p, q)| p == q).count();
        assert!(
            x == y,
            "report {i}: {what} and the raw tables differ at byte {at}: {:?} vs {:?}",
            &x[at.saturating_sub(80)..(at + 80).min(x.len())],
            &y[at.saturating_sub(80)..(at + 80).min(y.len())]
        );
    }
}
