//! `tollgate demo`: the main job on its embedded default. No Kafka and no
//! SMTP: the fixture workload is generated in-process, as if it were read
//! from one partition of a topic named `demo`, and passed through every
//! stage that exists: decode, upcast, validate, redact, and storage through
//! the same Parquet and commit-record path as `tollgate run`. It ends with a
//! `verify` of what it wrote.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use tollgate_event::{EventBody, Phase};
use tollgate_fixtures::{Expected, Generator};
use tollgate_pipeline::memory::{MemoryDeadLetters, MemoryLog};
use tollgate_pipeline::metrics::Metrics;
use tollgate_pipeline::{Decided, IngestConfig, Options, Pipeline};
use tollgate_storage::{Storage, StorageConfig};

use tollgate_ledger::money::show;
use tollgate_ledger::report;

use crate::cli::DemoArgs;
use crate::config::Loaded;
use crate::fixtures_cmd::{params, workload_config, write_toml};
use crate::progress::{bar, count};

/// The topic the demo pretends to read.
const TOPIC: &str = "demo";
/// Records per committed batch.
const BATCH: usize = 10_000;

/// What the demo counted, written as `demo/summary.json`.
#[derive(Debug, Default, Serialize)]
struct Counts {
    consumed: u64,
    stored: u64,
    dead_lettered: u64,
    tool_call_start: u64,
    tool_call_end: u64,
    gpu_usage: u64,
    upcast_from_v0: u64,
    newer_minor_fields_kept: u64,
    /// PII found and replaced by tokens, by kind (stored events and dead letters).
    redacted_by_kind: BTreeMap<String, u64>,
    rejected_by_reason: BTreeMap<String, u64>,
    /// Bad events the generator planted that the validator refused with a
    /// different reason, or let through; and good events it refused. Zero
    /// unless something is broken.
    mismatches: u64,
    commits: u64,
    parquet_files: u64,
    /// Valid events not stored again because their id was stored already.
    duplicates: u64,
}

/// Removes what an earlier demo run stored (its commit records and the files
/// they list, its staging area, and what was derived from them), through
/// the storage handle, so the demo starts a fresh chain. Only the `demo`
/// topic's data is touched.
async fn clear_previous_run(storage: &Storage, data_dir: &Path) -> Result<()> {
    storage.remove_topic(TOPIC).await?;
    // The demo's writer is named after the topic.
    storage.delete_prefix(&format!("staging/{TOPIC}/")).await?;
    // Derived from the chain just removed: the rollups (rebuilt from the
    // remaining commit records by the next refresh) and the demo's alerts.
    for derived in ["ledger/rollups/", "demo/alerts/"] {
        storage.delete_prefix(derived).await?;
    }
    // The emails the last run wrote for the reader to look at (local files).
    let _ = std::fs::remove_dir_all(data_dir.join("demo/outbox"));
    Ok(())
}

/// What the demo learns from each decided record, beyond the pipeline's
/// totals: kinds, upcasts, reasons, and whether the generator's plan held.
#[derive(Default)]
struct Observed {
    tool_call_start: u64,
    tool_call_end: u64,
    gpu_usage: u64,
    upcast_from_v0: u64,
    newer_minor_fields_kept: u64,
    rejected_by_reason: BTreeMap<String, u64>,
    mismatches: u64,
    first_mismatch: Option<String>,
}

impl Observed {
    fn record(&mut self, offset: i64, decided: &Decided, expected: Option<Expected>) {
        match decided {
            Decided::Stored(row) => {
                match &row.event.body {
                    EventBody::ToolCall(t) if t.phase == Phase::Start => self.tool_call_start += 1,
                    EventBody::ToolCall(_) => self.tool_call_end += 1,
                    EventBody::GpuUsage(_) => self.gpu_usage += 1,
                }
                self.upcast_from_v0 += u64::from(row.event.envelope.schema.major == 0);
                self.newer_minor_fields_kept += u64::from(!row.event.extra.is_empty());
                if let Some(x) = expected {
                    self.mismatches += 1;
                    self.first_mismatch
                        .get_or_insert(format!("bad event ({}) was accepted", x.mutation));
                }
            }
            Decided::Dead(row) => {
                let reason = &row.reason;
                *self
                    .rejected_by_reason
                    .entry(reason.code.to_string())
                    .or_default() += 1;
                let ok = expected.is_some_and(|x| {
                    x.code == reason.code
                        && tollgate_fixtures::invalid::field_matches(x.field, &reason.field)
                });
                if !ok {
                    self.mismatches += 1;
                    self.first_mismatch
                        .get_or_insert(format!("event at offset {offset} refused with {reason}"));
                }
            }
        }
    }
}

pub fn run(loaded: Loaded, args: DemoArgs) -> Result<ExitCode> {
    let config = loaded.config;
    if args.data_dir.is_none() && config.storage.url.is_some() {
        bail!("the demo writes to a local directory; give --data-dir (storage.url is for tollgate run)");
    }
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| config.storage.data_dir.clone());
    let out_dir = data_dir.join("demo");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    let mut limits = config.ingest.limits();
    let p = params(&args.workload, limits.max_event_bytes);
    // Received as the generator means it: at the end of the window's last
    // day (so that a window in the past decides as it would have then).
    let received_at = p.end();
    let oldest = (received_at - p.start.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        .to_std()
        .unwrap_or_default();
    let mut notes = Vec::new();
    if oldest > limits.max_past {
        limits.max_past = oldest + Duration::from_secs(86_400);
        notes.push(format!(
            "ingest.max_past widened to {} so the whole generated window is accepted",
            humantime_days(limits.max_past)
        ));
    }

    let local = StorageConfig {
        data_dir: data_dir.clone(),
        url: None,
        ..Default::default()
    };
    let redactor = tollgate_redactor::Redactor::new(&config.redaction, &local)?;
    let storage = Storage::open(&local, TOPIC)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(clear_previous_run(&storage, &data_dir))?;
    let generator = Generator::new(p.clone(), tollgate_fixtures::demo_price_book()?)?;
    let wconfig = workload_config(&generator)?;
    let started = Instant::now();
    println!(
        "Tollgate demo: no Kafka, no SMTP. Generating {} days of traffic for {} teams in 2 tenants (seed {}) and passing it through the pipeline.",
        p.days, p.teams, p.seed
    );

    // The generator produces into a one-partition log in memory, on its
    // own thread; the pipeline of `tollgate run` consumes it. The log holds
    // at most a few batches, so memory stays bounded however long the window.
    let log = MemoryLog::bounded(TOPIC, 1, 4 * BATCH);
    let expected: Arc<Mutex<HashMap<i64, Expected>>> = Arc::default();
    let producer = {
        let (log, expected) = (log.clone(), expected.clone());
        std::thread::spawn(move || -> Result<tollgate_fixtures::Summary> {
            // The log is closed however the generator ends (a panic too),
            // so the pipeline never waits for records that cannot come.
            struct CloseOnDrop(MemoryLog);
            impl Drop for CloseOnDrop {
                fn drop(&mut self) {
                    self.0.close();
                }
            }
            let _closing = CloseOnDrop(log.clone());
            let mut next = 0i64;
            let summary = generator.run(|r| -> Result<()> {
                if let Some(x) = r.expected {
                    if let Ok(mut e) = expected.lock() {
                        e.insert(next, x);
                    }
                }
                log.append(
                    0,
                    Some(r.key.as_bytes()),
                    r.bytes.clone(),
                    Some(received_at),
                );
                next += 1;
                Ok(())
            });
            summary
        })
    };
    let ingest = IngestConfig {
        batch_records: BATCH,
        batch_bytes: usize::MAX,
        // Batches are committed when full, and the last one at the end.
        batch_latency: Duration::from_secs(3600),
        // The demo's chain was cleared above, so the index starts empty; it
        // drops resent events exactly as `tollgate run` does. Its window is
        // counted back from the wall clock: it reaches the window's start.
        dedupe_window: limits.max_past.max(
            oldest
                + (Utc::now() - received_at).to_std().unwrap_or_default()
                + Duration::from_secs(86_400),
        ),
        ..config.ingest.clone()
    };
    let options = Options {
        ingest,
        limits: Some(limits),
        recover_grace: Duration::from_secs(600),
    };
    let observed = Rc::new(RefCell::new(Observed::default()));
    let pb = bar(
        u64::from(p.days) * u64::from(p.events_per_day),
        "decode, redact, store",
    );
    let totals = rt.block_on(async {
        let mut pipeline = Pipeline::open(
            log.consumer(),
            MemoryDeadLetters::counting(),
            storage,
            redactor,
            options,
            Arc::new(Metrics::new()),
        )
        .await?;
        {
            let (observed, expected, pb) = (observed.clone(), expected.clone(), pb.clone());
            pipeline.observe(Box::new(move |r, d| {
                pb.inc(1);
                let x = expected.lock().ok().and_then(|mut e| e.remove(&r.offset));
                observed.borrow_mut().record(r.offset, d, x);
            }));
        }
        pipeline.run(std::future::pending(), None).await?;
        let report = pipeline.storage().verify().await?;
        anyhow::Ok((pipeline.totals().clone(), report))
    });
    pb.finish_and_clear();
    let (totals, report) = totals?;
    let summary = producer
        .join()
        .map_err(|_| anyhow::anyhow!("the workload generator stopped abnormally"))??;
    let o = observed.take();
    let c = Counts {
        consumed: totals.consumed,
        stored: totals.stored,
        dead_lettered: totals.dead_lettered,
        tool_call_start: o.tool_call_start,
        tool_call_end: o.tool_call_end,
        gpu_usage: o.gpu_usage,
        upcast_from_v0: o.upcast_from_v0,
        newer_minor_fields_kept: o.newer_minor_fields_kept,
        redacted_by_kind: totals.redacted.0.clone(),
        rejected_by_reason: o.rejected_by_reason,
        mismatches: o.mismatches,
        commits: totals.commits,
        parquet_files: totals.files,
        duplicates: totals.duplicates,
    };
    let first_mismatch = o.first_mismatch;
    let redacted = totals.redacted;
    let elapsed = started.elapsed().as_secs_f64();

    write_toml(
        &out_dir.join("tollgate.demo.toml"),
        "# Pricing and teams of the demo workload; use with tollgate --config.",
        &wconfig,
    )?;
    let summary_json = json!({
        "window": {"start": p.start, "days": p.days, "seed": p.seed, "received_at": received_at},
        "counts": &c,
        "verify": {"ok": report.ok(), "files": report.files, "bytes": report.bytes, "problems": &report.problems},
        "scenario": &summary.scenario,
    });
    std::fs::write(
        out_dir.join("summary.json"),
        serde_json::to_string_pretty(&summary_json)?,
    )?;

    let last = p.start + chrono::Duration::days(i64::from(p.days) - 1);
    println!(
        "  window        {} to {} (UTC), {} events in {elapsed:.1} s",
        p.start,
        last,
        count(c.consumed)
    );
    println!(
        "  consumed      {} = stored {} + dead-lettered {}",
        count(c.consumed),
        count(c.stored),
        count(c.dead_lettered)
    );
    println!(
        "  valid         tool calls {} started / {} ended, GPU usage {}; {} upcast from v0, {} with v1.1 fields kept",
        count(c.tool_call_start),
        count(c.tool_call_end),
        count(c.gpu_usage),
        count(c.upcast_from_v0),
        count(c.newer_minor_fields_kept)
    );
    let mut reasons: Vec<(&String, &u64)> = c.rejected_by_reason.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let shown: Vec<String> = reasons
        .iter()
        .take(6)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "  dead letters  {} kinds of bad event, {} reason codes: {}{}",
        summary
            .invalid_by_mutation
            .iter()
            .filter(|(_, n)| *n > 0)
            .count(),
        reasons.len(),
        shown.join(", "),
        if reasons.len() > 6 { ", ..." } else { "" }
    );
    let kinds: Vec<String> = c
        .redacted_by_kind
        .iter()
        .map(|(k, n)| format!("{k} {}", count(*n)))
        .collect();
    println!(
        "  redacted      {} PII values replaced by tenant-keyed tokens: {}",
        count(redacted.total()),
        kinds.join(", ")
    );
    println!(
        "  stored        {} Parquet files (zstd) in {} commit records, {} MB",
        count(c.parquet_files),
        count(c.commits),
        report.bytes / 1_000_000
    );
    println!(
        "  verify        {}",
        if report.ok() {
            format!(
                "OK: {} files and their SHA-256, {} hash-chained commit records",
                report.files, c.commits
            )
        } else {
            format!("FAILED: {}", report.problems[0])
        }
    );
    for line in summary.scenario.describe() {
        println!("  scenario      {line}");
    }
    for n in &notes {
        println!("  note          {n}");
    }
    if !args.skip_ledger {
        ledger_summary(&data_dir, &wconfig, &p, received_at, &rt)?;
        alerts_summary(&data_dir, &wconfig, &p, &rt)?;
    }
    println!("  wrote         {}", data_dir.display());
    println!("                  tables/{{events,tool_calls,gpu_usage,dead_letters}}/dt=YYYY-MM-DD/*.parquet");
    println!("                  commits/demo/p00000/*.json   the hash-chained commit records (tollgate verify --data-dir {})", data_dir.display());
    println!("                  demo/summary.json            counts, verify result and the priced scenario");
    println!(
        "                  demo/tollgate.demo.toml      the pricing and teams of this workload"
    );
    if c.mismatches > 0 {
        bail!(
            "{} event(s) were not decided as the generator expected; first: {}",
            c.mismatches,
            first_mismatch.unwrap_or_default()
        );
    }
    if c.consumed != c.stored + c.dead_lettered {
        bail!("consumed != stored + dead-lettered");
    }
    if !report.ok() {
        bail!("verify failed: {}", report.problems[0]);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the ledger over what the demo stored: the chargeback of the
/// window's last month, quotas at the time of receipt, and the 2x rule at
/// every midnight of the window.
fn ledger_summary(
    data_dir: &Path,
    wconfig: &crate::fixtures_cmd::WorkloadConfig,
    p: &tollgate_fixtures::Params,
    received_at: chrono::DateTime<chrono::Utc>,
    rt: &tokio::runtime::Runtime,
) -> Result<()> {
    let book = tollgate_ledger::PriceBook::new(wconfig.pricing.clone())?;
    let mut ledger = rt.block_on(tollgate_ledger::LedgerContext::open(
        &StorageConfig {
            data_dir: data_dir.to_path_buf(),
            ..Default::default()
        },
        &book,
    ))?;
    let started = std::time::Instant::now();
    let r = rt.block_on(ledger.use_rollups())?;
    if let Some(m) = ledger.rollups() {
        println!(
            "  rollups       {} events of {} commit records rolled up by hour into {} rows ({:.1} s; tollgate ledger refresh)",
            crate::progress::count(r.events),
            r.records,
            crate::progress::count(m.files.iter().map(|f| f.rows).sum()),
            started.elapsed().as_secs_f64()
        );
    }
    let currency = book.currency().to_string();
    let period = report::Period::month_of(received_at - chrono::Duration::seconds(1), "UTC")?;
    let cb = rt.block_on(report::chargeback(&ledger, &period, &currency))?;
    println!(
        "  ledger        chargeback (tollgate report chargeback --month {}):",
        period.month
    );
    for line in cb.table(false).lines().skip(1) {
        println!("                  {line}");
    }
    let (qperiod, quotas) = rt.block_on(report::quota(
        &ledger,
        &wconfig.teams,
        received_at,
        "UTC",
        &currency,
    ))?;
    println!(
        "  quotas        {} month to date (tollgate report quota):",
        qperiod.month
    );
    for q in &quotas {
        println!(
            "                  {:<8} {}/{}: {} of {} {currency} ({} %), forecast {}",
            q.status.as_str(),
            q.tenant,
            q.team,
            show(q.spent, 2),
            show(q.quota, 2),
            q.burn_pct,
            show(q.forecast, 2)
        );
    }
    let rule = tollgate_ledger::report::AnomalyConfig::default();
    let mut found = Vec::new();
    for d in 1..=i64::from(p.days) {
        let at = (p.start + chrono::Duration::days(d))
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc();
        found.extend(rt.block_on(report::anomalies(&ledger, &rule, at, &currency))?);
    }
    println!(
        "  anomalies     the 2x rule at every midnight (tollgate report anomalies --at ...): {}",
        if found.is_empty() { "none" } else { "" }
    );
    for a in &found {
        let drivers: Vec<String> = a
            .drivers
            .iter()
            .map(|d| format!("{} {} +{}", d.dimension, d.key, d.growth))
            .collect();
        println!(
            "                  {} {}/{}: {} {currency} in 24 h, {}x its daily average {}; drivers: {}",
            (a.at - chrono::Duration::days(1)).date_naive(),
            a.tenant,
            a.team,
            a.day_cost,
            a.ratio,
            a.baseline_daily,
            drivers.join(", ")
        );
    }
    Ok(())
}

/// Replays the alert evaluator at every midnight of the window, with the
/// emails written as `.eml` files to `demo/outbox/` (never sent: the
/// fixture's addresses are made up), and lists them.
fn alerts_summary(
    data_dir: &Path,
    wconfig: &crate::fixtures_cmd::WorkloadConfig,
    p: &tollgate_fixtures::Params,
    rt: &tokio::runtime::Runtime,
) -> Result<()> {
    let book = tollgate_ledger::PriceBook::new(wconfig.pricing.clone())?;
    let store = StorageConfig {
        data_dir: data_dir.to_path_buf(),
        ..Default::default()
    };
    let outbox = data_dir.join("demo/outbox");
    let cfg = tollgate_alerts::AlertsConfig {
        smtp: None,
        ..Default::default()
    };
    let ev = tollgate_alerts::Evaluator::new(
        cfg,
        wconfig.teams.clone(),
        tollgate_ledger::LedgerConfig::default(),
        book.currency(),
        tollgate_alerts::store::AlertStore::open(&store, "demo/alerts/")?,
        outbox.clone(),
        tollgate_alerts::metrics::AlertMetrics::new(),
    )?;
    let mut ctx = rt.block_on(tollgate_ledger::LedgerContext::open(&store, &book))?;
    let mut raised = Vec::new();
    for d in 1..=i64::from(p.days) {
        let at = (p.start + chrono::Duration::days(d))
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc();
        raised.extend(rt.block_on(ev.cycle(&mut ctx, at))?.raised);
    }
    println!(
        "  alerts        the evaluator at every midnight (tollgate alerts replay): {} emails written to {}",
        raised.len(),
        outbox.display()
    );
    for a in &raised {
        println!(
            "                  {} {:<16} {}/{} -> {}",
            a.at.date_naive(),
            a.kind.as_str(),
            a.tenant,
            a.team,
            a.to.iter()
                .chain(&a.cc)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn humantime_days(d: Duration) -> String {
    format!("{} days", d.as_secs().div_ceil(86_400))
}
