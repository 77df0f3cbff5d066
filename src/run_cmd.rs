//! `tollgate run`: the consumer-group member that turns the raw topic into
//! the audit log. Per partition: decode, validate, redact, batch, then
//! commit (Parquet files and a commit record) and only then Kafka's group
//! offset. Each partition resumes at the offset after its last commit
//! record, whatever Kafka's group offset says, so a record is stored at most
//! once across crashes, restarts and rebalances.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tollgate_ingest::kafka::ObservedContext;
use tollgate_ingest::metrics::{Metrics, ReasonLabel};
use tollgate_ingest::storage::{DedupeIndex, KafkaCoords, Storage, StorageError, WriteTimes};
use tollgate_ingest::{DecodeLimits, IngestConfig};
use tollgate_redactor::{Counts, Redactor};
use tracing::{info, warn};

use crate::cli::RunArgs;
use crate::config::Loaded;
use crate::decide::{decide, DecideTimes, Decided, Filling};

/// Seeks back in a row that may land past the committed offset before the
/// records between are taken to be gone.
const MAX_SEEKS: u32 = 20;

/// Most records taken from the consumer's queue and handled together.
const CHUNK: usize = 2048;

/// The high watermark of every partition of `topic`.
async fn high_watermarks(
    consumer: &Arc<StreamConsumer<ObservedContext>>,
    topic: &str,
) -> Result<Vec<(i32, i64)>> {
    let consumer = consumer.clone();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || -> Result<Vec<(i32, i64)>> {
        let md = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .with_context(|| format!("reading the metadata of {topic}"))?;
        let mut out = Vec::new();
        for t in md.topics() {
            for p in t.partitions() {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, p.id(), Duration::from_secs(10))
                    .with_context(|| format!("reading the high watermark of {topic}/{}", p.id()))?;
                out.push((p.id(), high));
            }
        }
        Ok(out)
    })
    .await?
}

/// The log start (low watermark) of `topic`/`partition`, read without
/// blocking the pipeline's task.
async fn log_start(
    consumer: &Arc<StreamConsumer<ObservedContext>>,
    topic: &str,
    partition: i32,
) -> Result<i64> {
    let consumer = consumer.clone();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || -> Result<i64> {
        let (low, _) = consumer
            .fetch_watermarks(&topic, partition, Duration::from_secs(10))
            .with_context(|| format!("reading the log start of {topic}/{partition}"))?;
        Ok(low)
    })
    .await?
}

/// A record to decide: payload, key, and where it came from.
type Input<'a> = (&'a [u8], Option<&'a [u8]>, KafkaCoords);

/// Decodes, validates and redacts records, in order. (Deciding them on
/// several threads was measured: about 15 % more events per second on two
/// cores, for 130 MB more peak memory draining a backlog; not worth it.)
fn decide_all(
    redactor: &Redactor,
    limits: &DecodeLimits,
    inputs: Vec<Input<'_>>,
    times: &mut DecideTimes,
) -> Result<Vec<Decided>> {
    inputs
        .into_iter()
        .map(|(payload, key, kafka)| {
            let mut counts = Counts::default();
            decide(redactor, limits, payload, key, kafka, &mut counts, times)
        })
        .collect()
}

/// Time spent in each stage over the run, for its summary line.
#[derive(Default)]
struct StageTotals {
    decide: DecideTimes,
    write: WriteTimes,
}

impl StageTotals {
    /// `decode 1.2 s, redact ...`: the stages in pipeline order.
    fn describe(&self) -> String {
        let s = |d: Duration| format!("{:.1} s", d.as_secs_f64());
        format!(
            "decode {}, redact {}, encode {}, hash {}, store {}",
            s(self.decide.decode),
            s(self.decide.redact),
            s(self.write.encode),
            s(self.write.hash),
            s(self.write.store)
        )
    }
}

/// A refused record's key and raw bytes, kept until they are on the
/// dead-letter topic (its reason is on the matching `DeadLetter`).
struct RawDeadLetter {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// One partition's state: where the next record must come from, and the
/// batch being filled.
struct Part {
    next: Option<i64>,
    /// The log start found for a partition without a commit record, for
    /// the chain's first record.
    log_start: Option<i64>,
    /// The next offset the committed chain expects (0 before any commit).
    committed: i64,
    /// Seeks back in a row that still landed past `next`.
    seeks: u32,
    batch: Option<Filling>,
    raw_dead: Vec<RawDeadLetter>,
    bytes: usize,
    since: Instant,
}

struct Pipeline {
    topic: String,
    dlq_topic: String,
    consumer: Arc<StreamConsumer<ObservedContext>>,
    producer: FutureProducer<ObservedContext>,
    metrics: Arc<Metrics>,
    storage: Storage,
    dedupe: DedupeIndex,
    redactor: Redactor,
    limits: DecodeLimits,
    ingest: IngestConfig,
    parts: HashMap<i32, Part>,
    /// Told after every commit (the alert evaluator listens).
    commits: Arc<tokio::sync::Notify>,
    consumed: u64,
    stored: u64,
    dead: u64,
    duplicates: u64,
    stages: StageTotals,
}

impl Pipeline {
    /// Handles a chunk of records received together: each is admitted in
    /// order (partition state, resume point, seeks), the admitted ones are
    /// decoded and redacted, then added to their batches in order.
    async fn handle_chunk(&mut self, msgs: &[BorrowedMessage<'_>]) -> Result<()> {
        let mut seeked = HashSet::new();
        let mut admitted = Vec::with_capacity(msgs.len());
        for m in msgs {
            if self.admit(m, &mut seeked).await? {
                admitted.push(m);
            }
        }
        let inputs: Vec<Input<'_>> = admitted
            .iter()
            .map(|m| {
                let received_at: DateTime<Utc> = m
                    .timestamp()
                    .to_millis()
                    .and_then(DateTime::from_timestamp_millis)
                    .unwrap_or_else(Utc::now);
                (
                    m.payload().unwrap_or_default(),
                    m.key(),
                    KafkaCoords {
                        topic: self.topic.clone(),
                        partition: m.partition(),
                        offset: m.offset(),
                        timestamp: Some(received_at),
                    },
                )
            })
            .collect();
        let mut times = DecideTimes::default();
        let decided = decide_all(&self.redactor, &self.limits, inputs, &mut times)?;
        self.stages.decide.decode += times.decode;
        self.stages.decide.redact += times.redact;
        self.metrics
            .stage_seconds("decode")
            .inc_by(times.decode.as_secs_f64());
        self.metrics
            .stage_seconds("redact")
            .inc_by(times.redact.as_secs_f64());
        for (m, d) in admitted.iter().zip(decided) {
            self.apply(m, d).await?;
        }
        Ok(())
    }

    /// Whether a record is the next one to store for its partition. Sets
    /// up a partition seen for the first time, skips records stored
    /// already, and seeks back when the broker answers past the resume
    /// point (once per chunk and partition: the records after it in the
    /// chunk were fetched before the seek).
    async fn admit(
        &mut self,
        msg: &BorrowedMessage<'_>,
        seeked: &mut HashSet<i32>,
    ) -> Result<bool> {
        let (p, offset) = (msg.partition(), msg.offset());
        if seeked.contains(&p) {
            return Ok(false);
        }
        if !self.parts.contains_key(&p) {
            // Another writer may have stored events since: catch up first.
            let added = self.dedupe.refresh(&self.storage).await?;
            if added > 0 {
                info!(
                    keys = added,
                    "dedupe index caught up on other writers' commits"
                );
            }
            let (next, log_start) = match self.storage.resume_offset(&self.topic, p).await? {
                Some(n) => (Some(n), None),
                None => {
                    // No chain yet: read from the log start, never from
                    // wherever the consumer group's offset points (a group
                    // kept while the storage was emptied or moved would
                    // otherwise skip offsets that were never stored).
                    match log_start(&self.consumer, &self.topic, p).await {
                        Ok(low) => {
                            info!(
                                partition = p,
                                log_start = low,
                                "no commit record yet: storing from the partition's log start"
                            );
                            (Some(low), Some(low))
                        }
                        Err(e) => {
                            // The broker is away: leave the partition unset
                            // and go back to its beginning, so that its
                            // records come again once the broker answers
                            // (the rest of this chunk's are skipped).
                            warn!(
                                partition = p,
                                error = %format!("{e:#}"),
                                "cannot read the log start of a partition without a commit record; its records wait for the broker"
                            );
                            if let Err(e) = self.consumer.seek(
                                &self.topic,
                                p,
                                Offset::Beginning,
                                Duration::from_secs(10),
                            ) {
                                warn!(partition = p, error = %e, "seeking back to the beginning failed; the partition resumes when its next record arrives");
                            }
                            seeked.insert(p);
                            return Ok(false);
                        }
                    }
                }
            };
            info!(partition = p, resume_at = ?next, "partition assigned");
            self.metrics
                .committed_offset
                .get_or_create(&Metrics::partition(p))
                .set(next.unwrap_or(0));
            self.parts.insert(
                p,
                Part {
                    next,
                    log_start,
                    committed: next.unwrap_or(0),
                    seeks: 0,
                    batch: None,
                    raw_dead: Vec::new(),
                    bytes: 0,
                    since: Instant::now(),
                },
            );
        }
        let part = self.parts.get_mut(&p).context("partition state")?;
        match part.next {
            Some(n) if offset < n => return Ok(false), // stored already
            Some(n) if offset > n => {
                // Kafka's group offset is past what is stored: go back. If
                // the broker keeps answering past it, the records between
                // are gone (retention): storing on would leave a gap.
                part.seeks += 1;
                if part.seeks > MAX_SEEKS {
                    anyhow::bail!(
                        "{}/{p}: the committed chain ends before offset {n}, but the broker serves {offset} next: offsets {n}..{offset} are no longer in Kafka (retention shorter than the outage?). Storing on would leave a gap in the audit log; see docs/storage.md",
                        self.topic
                    );
                }
                warn!(
                    partition = p,
                    offset,
                    resume_at = n,
                    "seeking back to the committed offset"
                );
                self.consumer
                    .seek(&self.topic, p, Offset::Offset(n), Duration::from_secs(10))
                    .with_context(|| format!("seeking {}/{p} to {n}", self.topic))?;
                seeked.insert(p);
                return Ok(false);
            }
            _ => {}
        }
        part.seeks = 0;
        part.next = Some(offset + 1);
        Ok(true)
    }

    /// Adds a decided record to its partition's batch, and commits the
    /// batch when it is full.
    async fn apply(&mut self, msg: &BorrowedMessage<'_>, decided: Decided) -> Result<()> {
        let (p, offset) = (msg.partition(), msg.offset());
        // A fenced commit earlier in the chunk dropped the partition: the
        // rest of its records are re-read from the new owner's chain.
        let Some(part) = self.parts.get_mut(&p) else {
            return Ok(());
        };
        self.consumed += 1;
        self.metrics.consumed.inc();
        let payload = msg.payload().unwrap_or_default();
        let filling = part
            .batch
            .get_or_insert_with(|| Filling::new(&self.topic, p, offset));
        if filling.is_empty() {
            part.since = Instant::now();
        }
        if matches!(decided, Decided::Dead(_)) {
            part.raw_dead.push(RawDeadLetter {
                key: msg.key().map(<[u8]>::to_vec),
                payload: payload.to_vec(),
            });
        }
        filling.add(offset, decided, &self.dedupe);
        part.bytes += payload.len();
        let full =
            filling.records() >= self.ingest.batch_records || part.bytes >= self.ingest.batch_bytes;
        if full {
            self.commit(p).await?;
        }
        Ok(())
    }

    /// Commits the batches whose first record has waited long enough (all
    /// of them with `all`).
    async fn commit_due(&mut self, all: bool) -> Result<()> {
        let due: Vec<i32> = self
            .parts
            .iter()
            .filter(|(_, s)| {
                s.batch.is_some() && (all || s.since.elapsed() >= self.ingest.batch_latency)
            })
            .map(|(p, _)| *p)
            .collect();
        for p in due {
            self.commit(p).await?;
        }
        Ok(())
    }

    /// Whether every partition of the topic is stored up to its high
    /// watermark (by this instance or another: the commit records say).
    async fn drained(&self) -> Result<bool> {
        let watermarks = match high_watermarks(&self.consumer, &self.topic).await {
            Ok(w) => w,
            Err(e) => {
                // The broker is away: not drained, whatever is stored.
                warn!(error = %format!("{e:#}"), "cannot tell whether the topic is drained");
                return Ok(false);
            }
        };
        if watermarks.is_empty() {
            return Ok(false);
        }
        for (p, high) in watermarks {
            let next = match self.parts.get(&p).and_then(|s| s.next) {
                Some(n) => n,
                None => {
                    // Another instance may have committed it: re-read.
                    self.storage.forget(&self.topic, p).await;
                    self.storage
                        .resume_offset(&self.topic, p)
                        .await?
                        .unwrap_or(0)
                }
            };
            if next < high {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Sets the lag gauge of each partition this instance holds.
    fn report_lag(&self, highs: &HashMap<i32, i64>) {
        for (p, part) in &self.parts {
            if let Some(high) = highs.get(p) {
                self.metrics
                    .lag
                    .get_or_create(&Metrics::partition(*p))
                    .set((high - part.committed).max(0));
            }
        }
    }

    async fn commit(&mut self, p: i32) -> Result<()> {
        let Some(part) = self.parts.get_mut(&p) else {
            return Ok(());
        };
        let Some(mut filling) = part.batch.take() else {
            return Ok(());
        };
        filling.batch.log_start = part.log_start;
        let batch = &filling.batch;
        let raw_dead = std::mem::take(&mut part.raw_dead);
        part.bytes = 0;
        let waited = part.since.elapsed();
        // Raw bytes of refused records go to the dead-letter topic first
        // (at least once), for replay after a fix; the table keeps only
        // their redacted text.
        let mut deliveries = Vec::with_capacity(raw_dead.len());
        for (raw, dead) in raw_dead.iter().zip(&batch.dead_letters) {
            let source = format!("{p}:{}", dead.kafka.offset);
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "tollgate-reason",
                    value: Some(dead.reason.code.as_str()),
                })
                .insert(Header {
                    key: "tollgate-field",
                    value: Some(dead.reason.field.as_str()),
                })
                .insert(Header {
                    key: "tollgate-source-topic",
                    value: Some(self.topic.as_str()),
                })
                .insert(Header {
                    key: "tollgate-source-offset",
                    value: Some(source.as_str()),
                });
            let mut record = FutureRecord::to(&self.dlq_topic)
                .payload(&raw.payload)
                .headers(headers);
            if let Some(k) = &raw.key {
                record = record.key(k);
            }
            deliveries.push(self.producer.send(record, Duration::from_secs(30)));
        }
        for delivery in futures::future::join_all(deliveries).await {
            delivery.map_err(|(e, _)| {
                anyhow::anyhow!("producing to the dead-letter topic {}: {e}", self.dlq_topic)
            })?;
        }
        let started = Instant::now();
        let committed = self.storage.commit(batch).await;
        let times = self.storage.take_write_times();
        self.stages.write.add(&times);
        for (stage, d) in [
            ("encode", times.encode),
            ("hash", times.hash),
            ("store", times.store),
        ] {
            self.metrics.stage_seconds(stage).inc_by(d.as_secs_f64());
        }
        match committed {
            Ok(record) => {
                let m = &self.metrics;
                m.commit_latency.observe(started.elapsed().as_secs_f64());
                m.batch_latency.observe(waited.as_secs_f64());
                m.batch_records.observe(record.records as f64);
                m.stored.inc_by(record.stored);
                m.duplicates.inc_by(record.duplicates);
                for (raw, d) in raw_dead.iter().zip(&batch.dead_letters) {
                    m.dead_lettered
                        .get_or_create(&ReasonLabel {
                            reason: d.reason.code.as_str().to_string(),
                        })
                        .inc();
                    // The reason and field, never the content; the trace id
                    // when the record carries one. At info: a broken
                    // producer must not flood the default log (the metric
                    // above and the dead_letters table count them).
                    info!(
                        partition = p,
                        offset = d.kafka.offset,
                        reason = d.reason.code.as_str(),
                        field = %d.reason.field,
                        trace_id = tollgate_ingest::event::trace_id(&raw.payload).unwrap_or_default(),
                        "dead-lettered"
                    );
                }
                m.committed_offset
                    .get_or_create(&Metrics::partition(p))
                    .set(record.last_offset + 1);
                if let Some(part) = self.parts.get_mut(&p) {
                    part.committed = record.last_offset + 1;
                    part.log_start = None;
                }
                self.stored += record.stored;
                self.dead += record.dead_lettered;
                self.duplicates += record.duplicates;
                self.commits.notify_one();
                info!(
                    partition = p,
                    seq = record.seq,
                    offsets = %format!("{}..={}", record.first_offset, record.last_offset),
                    stored = record.stored,
                    dead_lettered = record.dead_lettered,
                    duplicates = record.duplicates,
                    "committed"
                );
                filling.committed(&mut self.dedupe, &record);
                self.dedupe.evict(Utc::now());
                m.dedupe_keys.set(self.dedupe.len() as u64);
                // Kafka's group offset follows the commit record, for lag
                // monitoring; resuming never relies on it.
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&self.topic, p, Offset::Offset(record.last_offset + 1))
                    .context("offset list")?;
                if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                    warn!(partition = p, error = %e, "could not commit the group offset (lag reporting only)");
                }
                Ok(())
            }
            Err(e @ (StorageError::Fenced { .. } | StorageError::OffsetGap { .. })) => {
                // Another writer owns this partition now, or committed past
                // us: forget it; the next record re-reads the chain.
                warn!(partition = p, error = %e, "batch discarded");
                self.parts.remove(&p);
                self.storage.forget(&self.topic, p).await;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

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
        // Uncommitted staging files younger than this may be another
        // instance's write in progress.
        let recovered = storage.recover(Duration::from_secs(600)).await?;
        if recovered != Default::default() {
            info!(published = recovered.published, discarded = recovered.discarded, temporary = recovered.temporary, "recovered an interrupted write");
        }
        let redactor = Redactor::new(&config.redaction, &config.storage)?;
        let loading = Instant::now();
        let mut dedupe = DedupeIndex::new(&config.kafka.raw_topic, config.ingest.dedupe_window);
        let keys = dedupe.refresh(&storage).await?;
        info!(keys, window = %humantime::format_duration(config.ingest.dedupe_window), took_ms = loading.elapsed().as_millis() as u64, "dedupe index loaded from storage");
        let metrics = Arc::new(Metrics::new());
        let context = ObservedContext::new(metrics.clone());
        let created = tollgate_ingest::kafka::ensure_topics(&config.kafka).await?;
        for t in created {
            say!("tollgate run: created topic {t} ({} partitions)", config.kafka.partitions);
        }
        let consumer = Arc::new(tollgate_ingest::kafka::consumer(&config.kafka, context.clone())?);
        consumer
            .subscribe(&[&config.kafka.raw_topic])
            .with_context(|| format!("subscribing to {}", config.kafka.raw_topic))?;
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
        // High watermarks, refreshed in the background for the lag gauges
        // (a slow or absent broker never stalls the pipeline's loop).
        let highs: Arc<std::sync::Mutex<HashMap<i32, i64>>> = Arc::default();
        // The same loop probes the storage for /readyz.
        {
            let (consumer, topic, highs, metrics) = (consumer.clone(), config.kafka.raw_topic.clone(), highs.clone(), metrics.clone());
            let probe = Storage::open(&config.storage, &format!("{writer}-probe"))?;
            tokio::spawn(async move {
                loop {
                    match high_watermarks(&consumer, &topic).await {
                        Ok(w) => {
                            metrics.broker_up.set(1);
                            if let Ok(mut h) = highs.lock() {
                                h.extend(w);
                            }
                        }
                        Err(e) => {
                            metrics.broker_up.set(0);
                            warn!(error = %format!("{e:#}"), "could not read the high watermarks (lag unknown)")
                        }
                    }
                    match probe.topics().await {
                        Ok(_) => {
                            metrics.storage_up.set(1);
                        }
                        Err(e) => {
                            metrics.storage_up.set(0);
                            warn!(error = %e, "storage probe failed: the store could not be listed");
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            });
        }
        say!(
            "tollgate run: {} -> {} (writer {writer}); Ctrl-C or SIGTERM commits open batches and stops",
            config.kafka.raw_topic,
            storage.description()
        );
        let commits = Arc::new(tokio::sync::Notify::new());
        let mut p = Pipeline {
            topic: config.kafka.raw_topic.clone(),
            dlq_topic: config.kafka.dead_letter_topic.clone(),
            consumer: consumer.clone(),
            producer,
            storage,
            dedupe,
            redactor,
            limits: config.ingest.limits(),
            ingest: config.ingest.clone(),
            parts: HashMap::new(),
            commits: commits.clone(),
            consumed: 0,
            stored: 0,
            dead: 0,
            duplicates: 0,
            stages: StageTotals::default(),
            metrics,
        };
        let alerts = if args.no_alerts {
            None
        } else {
            Some(spawn_alerts(&config, commits.clone(), &p.metrics).await?)
        };
        // Without an evaluator (which brings them up to date each cycle),
        // this process still maintains the rollups readers use.
        let rollups = if args.no_alerts && config.ledger.rollups {
            Some(spawn_rollups(&config, commits.clone()).await?)
        } else {
            None
        };
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut ticker = tokio::time::interval(config.ingest.batch_latency.min(Duration::from_millis(500)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_message = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = sigterm.recv() => break,
                _ = ticker.tick() => {
                    p.commit_due(false).await?;
                    let snapshot = highs.lock().map(|h| h.clone()).unwrap_or_default();
                    p.report_lag(&snapshot);
                    if args.exit_when_idle.is_some_and(|d| last_message.elapsed() >= d) && p.drained().await? {
                        break;
                    }
                }
                r = consumer.recv() => match r {
                    Ok(first) => {
                        last_message = Instant::now();
                        // Take what else is ready, up to a chunk.
                        let mut msgs = vec![first];
                        while msgs.len() < CHUNK {
                            match consumer.recv().now_or_never() {
                                Some(Ok(m)) => msgs.push(m),
                                Some(Err(e)) => {
                                    warn!(error = %e, "kafka");
                                    break;
                                }
                                None => break,
                            }
                        }
                        p.handle_chunk(&msgs).await?;
                    }
                    Err(e) => warn!(error = %e, "kafka"),
                },
            }
        }
        p.commit_due(true).await?;
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
        say!(
            "tollgate run: stopped; consumed {} = stored {} + dead-lettered {} + duplicates {} in this run",
            p.consumed, p.stored, p.dead, p.duplicates
        );
        say!("tollgate run: time per stage: {}", p.stages.describe());
        consumer.unsubscribe();
        Ok(ExitCode::SUCCESS)
    })
}
