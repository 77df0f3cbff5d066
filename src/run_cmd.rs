//! `tollgate run`: the consumer-group member that turns the raw topic into
//! the audit log. Per partition: decode, validate, redact, batch, then
//! commit (Parquet files and a commit record) and only then Kafka's group
//! offset. Each partition resumes at the offset after its last commit
//! record, whatever Kafka's group offset says, so a record is stored at most
//! once across crashes, restarts and rebalances.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tollgate_ingest::storage::{KafkaCoords, PartitionBatch, Storage, StorageError};
use tollgate_ingest::{DecodeLimits, IngestConfig};
use tollgate_redactor::{Counts, Redactor};
use tracing::{info, warn};

use crate::cli::RunArgs;
use crate::config::Loaded;
use crate::decide::{decide, Decided};

/// Seeks back in a row that may land past the committed offset before the
/// records between are taken to be gone.
const MAX_SEEKS: u32 = 20;

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
    /// Seeks back in a row that still landed past `next`.
    seeks: u32,
    batch: Option<PartitionBatch>,
    raw_dead: Vec<RawDeadLetter>,
    bytes: usize,
    since: Instant,
}

struct Pipeline {
    topic: String,
    dlq_topic: String,
    consumer: std::sync::Arc<StreamConsumer>,
    producer: FutureProducer,
    storage: Storage,
    redactor: Redactor,
    limits: DecodeLimits,
    ingest: IngestConfig,
    parts: HashMap<i32, Part>,
    consumed: u64,
    stored: u64,
    dead: u64,
}

impl Pipeline {
    async fn handle(&mut self, msg: &rdkafka::message::BorrowedMessage<'_>) -> Result<()> {
        let (p, offset) = (msg.partition(), msg.offset());
        if !self.parts.contains_key(&p) {
            let next = self.storage.resume_offset(&self.topic, p).await?;
            info!(partition = p, resume_at = ?next, "partition assigned");
            self.parts.insert(
                p,
                Part {
                    next,
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
            Some(n) if offset < n => return Ok(()), // stored already
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
                return Ok(());
            }
            _ => {}
        }
        part.seeks = 0;
        self.consumed += 1;
        let received_at: DateTime<Utc> = msg
            .timestamp()
            .to_millis()
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or_else(Utc::now);
        let kafka = KafkaCoords {
            topic: self.topic.clone(),
            partition: p,
            offset,
            timestamp: Some(received_at),
        };
        let payload = msg.payload().unwrap_or_default();
        let batch = part.batch.get_or_insert_with(|| PartitionBatch {
            topic: self.topic.clone(),
            partition: p,
            first_offset: offset,
            last_offset: offset,
            events: Vec::new(),
            dead_letters: Vec::new(),
        });
        if batch.events.is_empty() && batch.dead_letters.is_empty() {
            part.since = Instant::now();
        }
        let mut redacted = Counts::default();
        match decide(
            &self.redactor,
            &self.limits,
            payload,
            msg.key(),
            kafka,
            &mut redacted,
        )? {
            Decided::Stored(row) => batch.events.push(*row),
            Decided::Dead(row) => {
                part.raw_dead.push(RawDeadLetter {
                    key: msg.key().map(<[u8]>::to_vec),
                    payload: payload.to_vec(),
                });
                batch.dead_letters.push(row);
            }
        }
        batch.last_offset = offset;
        part.next = Some(offset + 1);
        part.bytes += payload.len();
        let full = batch.events.len() + batch.dead_letters.len() >= self.ingest.batch_records
            || part.bytes >= self.ingest.batch_bytes;
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
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let watermarks = tokio::task::spawn_blocking(move || -> Result<Vec<(i32, i64)>> {
            let md = consumer
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .with_context(|| format!("reading the metadata of {topic}"))?;
            let mut out = Vec::new();
            for t in md.topics() {
                for p in t.partitions() {
                    let (_, high) = consumer
                        .fetch_watermarks(&topic, p.id(), Duration::from_secs(10))
                        .with_context(|| {
                            format!("reading the high watermark of {topic}/{}", p.id())
                        })?;
                    out.push((p.id(), high));
                }
            }
            Ok(out)
        })
        .await??;
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

    async fn commit(&mut self, p: i32) -> Result<()> {
        let Some(part) = self.parts.get_mut(&p) else {
            return Ok(());
        };
        let Some(batch) = part.batch.take() else {
            return Ok(());
        };
        let raw_dead = std::mem::take(&mut part.raw_dead);
        part.bytes = 0;
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
        match self.storage.commit(&batch).await {
            Ok(record) => {
                self.stored += record.stored;
                self.dead += record.dead_lettered;
                info!(
                    partition = p,
                    seq = record.seq,
                    offsets = %format!("{}..={}", record.first_offset, record.last_offset),
                    stored = record.stored,
                    dead_lettered = record.dead_lettered,
                    "committed"
                );
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

pub fn run(loaded: Loaded, args: RunArgs) -> Result<ExitCode> {
    let config = loaded.config;
    let writer = args.writer_id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim().replace('/', "_"), std::process::id())
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let storage = Storage::open(&config.storage, &writer)?;
        // Uncommitted staging files younger than this may be another
        // instance's write in progress.
        let recovered = storage.recover(Duration::from_secs(600)).await?;
        if recovered != Default::default() {
            info!(published = recovered.published, discarded = recovered.discarded, "recovered an interrupted write");
        }
        let redactor = Redactor::new(&config.redaction, &config.storage.data_dir)?;
        let consumer = std::sync::Arc::new(tollgate_ingest::kafka::consumer(&config.kafka)?);
        consumer
            .subscribe(&[&config.kafka.raw_topic])
            .with_context(|| format!("subscribing to {}", config.kafka.raw_topic))?;
        let producer = tollgate_ingest::kafka::producer(&config.kafka)?;
        eprintln!(
            "tollgate run: {} -> {} (writer {writer}); Ctrl-C or SIGTERM commits open batches and stops",
            config.kafka.raw_topic,
            storage.description()
        );
        let mut p = Pipeline {
            topic: config.kafka.raw_topic.clone(),
            dlq_topic: config.kafka.dead_letter_topic.clone(),
            consumer: consumer.clone(),
            producer,
            storage,
            redactor,
            limits: config.ingest.limits(),
            ingest: config.ingest.clone(),
            parts: HashMap::new(),
            consumed: 0,
            stored: 0,
            dead: 0,
        };
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let tick = config.ingest.batch_latency.min(Duration::from_millis(500));
        let mut last_message = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = sigterm.recv() => break,
                r = tokio::time::timeout(tick, consumer.recv()) => match r {
                    Ok(Ok(msg)) => {
                        last_message = Instant::now();
                        p.handle(&msg).await?;
                    }
                    Ok(Err(e)) => warn!(error = %e, "kafka"),
                    Err(_) => {
                        p.commit_due(false).await?;
                        if args.exit_when_idle.is_some_and(|d| last_message.elapsed() >= d) && p.drained().await? {
                            break;
                        }
                    }
                },
            }
        }
        p.commit_due(true).await?;
        eprintln!(
            "tollgate run: stopped; consumed {} = stored {} + dead-lettered {} in this run",
            p.consumed, p.stored, p.dead
        );
        consumer.unsubscribe();
        Ok(ExitCode::SUCCESS)
    })
}
