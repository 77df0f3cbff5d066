//! `tollgate run`: wires Kafka (the consumer group's member and the
//! dead-letter producer) to the write path of `tollgate-pipeline`, and
//! starts beside it the alert evaluator, the rollups' maintenance, the
//! `/metrics` server and the broker and storage probes. What a record goes
//! through is the pipeline's: see docs/architecture.md.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use rdkafka::consumer::Consumer;
use tollgate_ingest::kafka::ObservedContext;
use tollgate_ingest::source::{KafkaDeadLetters, KafkaSource};
use tollgate_pipeline::metrics::Metrics;
use tollgate_pipeline::{Options, Pipeline};
use tollgate_storage::Storage;
use tracing::{info, warn};

use crate::cli::RunArgs;
use crate::config::Loaded;

/// Starts the rollups' maintenance when no alert evaluator does it (`run
/// --no-alerts`): a refresh after commits (at most one per
/// `AFTER_COMMIT_GAP`), every minute, and a last one when told to stop.
/// Reports and the API only read the rollups; this is their writer.
async fn spawn_rollups(
    config: &crate::config::Config,
    commits: Arc<tokio::sync::Notify>,
) -> Result<(
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
)> {
    const AFTER_COMMIT_GAP: Duration = Duration::from_secs(10);
    const EVERY: Duration = Duration::from_secs(60);
    let book = tollgate_ledger::PriceBook::new(config.pricing.clone())?;
    let mut ctx = tollgate_ledger::LedgerContext::open(&config.storage, &book).await?;
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut last = Instant::now() - EVERY;
        loop {
            let stopping = tokio::select! {
                _ = &mut stop_rx => true,
                _ = commits.notified() => false,
                _ = tokio::time::sleep(EVERY.saturating_sub(last.elapsed())) => false,
            };
            if !stopping && last.elapsed() < AFTER_COMMIT_GAP {
                tokio::time::sleep(AFTER_COMMIT_GAP - last.elapsed()).await;
            }
            last = Instant::now();
            match ctx.use_rollups().await {
                Ok(r) if r.records > 0 => info!(
                    records = r.records,
                    events = r.events,
                    "rollups brought up to date"
                ),
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "refreshing the rollups failed; retrying after the next commit")
                }
            }
            if stopping {
                break;
            }
        }
    });
    Ok((task, stop_tx))
}

/// Starts the alert evaluator: a cycle after each commit (at most one per
/// `AFTER_COMMIT_GAP`) and every `alerts.evaluate_every`, and a last one
/// when told to stop.
async fn spawn_alerts(
    config: &crate::config::Config,
    commits: Arc<tokio::sync::Notify>,
    ingest_metrics: &Metrics,
) -> Result<(
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
)> {
    const AFTER_COMMIT_GAP: Duration = Duration::from_secs(2);
    let metrics = tollgate_alerts::metrics::AlertMetrics::new();
    {
        let m = metrics.clone();
        ingest_metrics.also_render(move || m.render());
    }
    let (ev, mut ctx) = crate::alerts_cmd::evaluator(config, &config.storage, metrics).await?;
    // The rollups' writer: each cycle brings them up to date first.
    let ev = ev.maintaining_rollups();
    say!(
        "tollgate run: alerts evaluated after commits and every {}; emails go to {}",
        humantime::format_duration(config.alerts.evaluate_every),
        ev.destination()
    );
    let every = config.alerts.evaluate_every;
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut last = Instant::now() - every;
        loop {
            let stopping = tokio::select! {
                _ = &mut stop_rx => true,
                _ = commits.notified() => false,
                _ = tokio::time::sleep(every.saturating_sub(last.elapsed())) => false,
            };
            if !stopping && last.elapsed() < AFTER_COMMIT_GAP {
                tokio::time::sleep(AFTER_COMMIT_GAP - last.elapsed()).await;
            }
            last = Instant::now();
            match ev.cycle(&mut ctx, Utc::now()).await {
                Ok(c) => say!("{}", crate::alerts_cmd::describe(&c)),
                Err(e) => {
                    warn!(error = %e, "alert evaluation failed; retrying after the next commit")
                }
            }
            if stopping {
                break;
            }
        }
    });
    Ok((task, stop_tx))
}

pub fn run(loaded: Loaded, args: RunArgs) -> Result<ExitCode> {
    let config = loaded.config;
    let writer = args.writer_id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim().replace('/', "_"), std::process::id())
    });
    let rt = crate::runtime()?;
    rt.block_on(async move {
        let storage = Storage::open(&config.storage, &writer)?;
        let redactor = tollgate_redactor::Redactor::new(&config.redaction, &config.storage)?;
        let metrics = Arc::new(Metrics::new());
        let context = ObservedContext::new(metrics.clone());
        let created = tollgate_ingest::kafka::ensure_topics(&config.kafka).await?;
        for t in created {
            say!("tollgate run: created topic {t} ({} partitions)", config.kafka.partitions);
        }
        let consumer = Arc::new(tollgate_ingest::kafka::consumer(&config.kafka, context.clone())?);
        let producer = tollgate_ingest::kafka::producer(&config.kafka, context)?;
        let metrics_addr = args.metrics_addr.clone().or(config.ingest.metrics_addr.clone());
        if let Some(addr) = metrics_addr {
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .with_context(|| format!("listening for /metrics on {addr}"))?;
            say!("tollgate run: metrics at http://{0}/metrics, readiness at http://{0}/readyz", listener.local_addr()?);
            let app = tollgate_ingest::gateway::metrics_router(metrics.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    warn!(error = %e, "the metrics server stopped");
                }
            });
        }
        let source = KafkaSource::new(consumer.clone(), &config.kafka.raw_topic);
        // High watermarks for the lag gauges, refreshed in the background;
        // the same loop probes the storage for /readyz.
        {
            let m = metrics.clone();
            source.spawn_watermarks(Duration::from_secs(5), move |r| match r {
                Ok(()) => {
                    m.broker_up.set(1);
                }
                Err(e) => {
                    m.broker_up.set(0);
                    warn!(error = %e, "could not read the high watermarks (lag unknown)");
                }
            });
            let probe = Storage::open(&config.storage, &format!("{writer}-probe"))?;
            let m = metrics.clone();
            tokio::spawn(async move {
                loop {
                    match probe.topics().await {
                        Ok(_) => {
                            m.storage_up.set(1);
                        }
                        Err(e) => {
                            m.storage_up.set(0);
                            warn!(error = %e, "storage probe failed: the store could not be listed");
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            });
        }
        let description = storage.description().to_string();
        let options = Options {
            ingest: config.ingest.clone(),
            limits: None,
            // Uncommitted staging files younger than this may be another
            // instance's write in progress.
            recover_grace: Duration::from_secs(600),
        };
        let dead_letters = KafkaDeadLetters::new(producer, &config.kafka.dead_letter_topic);
        // Recovery and the dedupe index first: a member that joins the
        // group before it polls would be evicted on a slow load.
        let mut p = Pipeline::open(source, dead_letters, storage, redactor, options, metrics.clone()).await?;
        consumer
            .subscribe(&[&config.kafka.raw_topic])
            .with_context(|| format!("subscribing to {}", config.kafka.raw_topic))?;
        say!(
            "tollgate run: {} -> {description} (writer {writer}); Ctrl-C or SIGTERM commits open batches and stops",
            config.kafka.raw_topic,
        );
        let alerts = if args.no_alerts {
            None
        } else {
            Some(spawn_alerts(&config, p.commits(), &metrics).await?)
        };
        // Without an evaluator (which brings them up to date each cycle),
        // this process still maintains the rollups readers use.
        let rollups = if args.no_alerts && config.ledger.rollups {
            Some(spawn_rollups(&config, p.commits()).await?)
        } else {
            None
        };
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let stop = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = sigterm.recv() => {}
            }
        };
        p.run(stop, args.exit_when_idle).await?;
        if let Some((task, stop)) = alerts {
            // One last evaluation over what was just committed.
            let _ = stop.send(());
            if let Err(e) = task.await {
                warn!(error = %e, "the alert evaluator stopped abnormally");
            }
        }
        if let Some((task, stop)) = rollups {
            let _ = stop.send(());
            if let Err(e) = task.await {
                warn!(error = %e, "the rollups' refresh stopped abnormally");
            }
        }
        let t = p.totals();
        say!(
            "tollgate run: stopped; consumed {} = stored {} + dead-lettered {} + duplicates {} in this run",
            t.consumed, t.stored, t.dead_lettered, t.duplicates
        );
        say!("tollgate run: time per stage: {}", p.stages().describe());
        consumer.unsubscribe();
        info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}
