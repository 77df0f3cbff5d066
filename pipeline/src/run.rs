//! The write path: records from a [`RecordSource`] are admitted (resume
//! point, seeks), decided (decode, validate, redact), batched per partition
//! with resent events dropped, and committed (raw refused records to the
//! dead-letter sink, then Parquet files and a commit record, then the
//! group offset). One batch at a time is encoded and written in a
//! background task while the next records are decided; it is settled
//! (dedupe keys, group offset, counts) before the next batch is written.
//! Each partition resumes at the offset after its last
//! commit record, whatever the group offset says, so a record is stored at
//! most once across crashes, restarts and rebalances, and never skipped.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tollgate_event::DecodeLimits;
use tollgate_redactor::{Counts, Redactor};
use tollgate_storage::{
    CommitRecord, CommitStep, DeadLetter, DedupeIndex, KafkaCoords, KeySet, PartitionBatch,
    Storage, StorageError, WriteTimes,
};
use tracing::{info, warn};

use crate::decide::{decide, DecideTimes, Decided, Filling};
use crate::error::PipelineError;
use crate::metrics::{Metrics, ReasonLabel};
use crate::source::{DeadLetterSink, RecordSource, Refused, SeekTo, SourceRecord};
use crate::IngestConfig;

/// Seeks back in a row that may land past the committed offset before the
/// records between are taken to be gone.
const MAX_SEEKS: u32 = 20;

/// How often partitions that served nothing are checked for records the
/// storage lacks.
const UNSEEN_EVERY: Duration = Duration::from_secs(5);

/// Most records taken from the source and handled together.
pub const CHUNK: usize = 2048;

type Result<T> = std::result::Result<T, PipelineError>;

/// How a pipeline starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// Batching, the dedupe window and (through [`IngestConfig::limits`])
    /// the decoder's bounds.
    pub ingest: IngestConfig,
    /// The decoder's bounds, when they differ from `ingest`'s (the demo
    /// widens `max_past` to its generated window).
    pub limits: Option<DecodeLimits>,
    /// Staging files younger than this may be another instance's write in
    /// progress: recovery leaves them.
    pub recover_grace: Duration,
}

/// What a pipeline has done since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Records added to batches (a record served again after a discarded
    /// batch is counted again).
    pub consumed: u64,
    /// Valid events stored.
    pub stored: u64,
    /// Refused records stored as dead letters.
    pub dead_lettered: u64,
    /// Valid events not stored again because their id was stored already.
    pub duplicates: u64,
    /// Commit records written.
    pub commits: u64,
    /// Parquet files those records list.
    pub files: u64,
    /// PII found and replaced, by kind (stored events and dead letters).
    pub redacted: Counts,
}

/// Time spent in each stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    /// Decoding and redacting.
    pub decide: DecideTimes,
    /// Encoding, hashing and storing.
    pub write: WriteTimes,
    /// The reading task waiting for records (the source was slower).
    pub source_wait: Duration,
    /// The reading task waiting for the batch before to be written (the
    /// writer was slower).
    pub writer_wait: Duration,
}

impl StageTimes {
    /// `decode 1.2 s, redact ...`: the stages in pipeline order.
    pub fn describe(&self) -> String {
        let s = |d: Duration| format!("{:.1} s", d.as_secs_f64());
        format!(
            "decode {}, redact {}, encode {}, hash {}, store {}; waiting for records {}, for the writer {}",
            s(self.decide.decode),
            s(self.decide.redact),
            s(self.write.encode),
            s(self.write.hash),
            s(self.write.store),
            s(self.source_wait),
            s(self.writer_wait)
        )
    }
}

/// A refused record's key and raw bytes, kept until they are delivered to
/// the dead-letter sink (its reason is on the matching dead letter).
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
    /// The next offset the committed chain expects.
    committed: i64,
    /// Seeks back in a row that still landed past `next`.
    seeks: u32,
    batch: Option<Filling>,
    raw_dead: Vec<RawDeadLetter>,
    bytes: usize,
    since: Instant,
}

/// A batch whose files and commit record are being written in the
/// background while the next records are decided.
struct Writing {
    partition: i32,
    waited: Duration,
    started: Instant,
    task: tokio::task::JoinHandle<Written>,
}

/// What the task writing a batch hands back: the batch (its keys; its rows
/// are freed), its raw dead letters, and the commit record or why there is
/// none.
type Written = (Filling, Vec<RawDeadLetter>, Result<CommitRecord>);

/// Writes a batch: the raw bytes of its refused records to the dead-letter
/// sink, then its files and commit record.
async fn write<D: DeadLetterSink>(
    storage: &Storage,
    sink: &D,
    topic: &str,
    batch: &PartitionBatch,
    raw_dead: &[RawDeadLetter],
) -> Result<CommitRecord> {
    if !raw_dead.is_empty() {
        let refused: Vec<Refused<'_>> = raw_dead
            .iter()
            .zip(&batch.dead_letters)
            .map(|(raw, letter)| Refused {
                key: raw.key.as_deref(),
                payload: &raw.payload,
                letter,
            })
            .collect();
        sink.publish(topic, &refused)
            .await
            .map_err(PipelineError::DeadLetters)?;
    }
    Ok(storage.commit(batch).await?)
}

/// Consecutive records decided, with what their redaction found and the
/// time each stage took.
type DecidedRun = (Vec<Decided>, Counts, DecideTimes);

/// Decides consecutive records of `topic`.
fn decide_run(
    redactor: &Redactor,
    limits: &DecodeLimits,
    topic: &str,
    records: &[SourceRecord],
) -> Result<DecidedRun> {
    let mut times = DecideTimes::default();
    let mut counts = Counts::default();
    let mut decided = Vec::with_capacity(records.len());
    for r in records {
        let kafka = KafkaCoords {
            topic: topic.to_string(),
            partition: r.partition,
            offset: r.offset,
            timestamp: Some(r.timestamp.unwrap_or_else(Utc::now)),
        };
        decided.push(decide(
            redactor,
            limits,
            &r.payload,
            r.key.as_deref(),
            kafka,
            &mut counts,
            &mut times,
        )?);
    }
    Ok((decided, counts, times))
}

/// Called with every decided record (the demo checks the generator's
/// expectations with it).
pub type Observer = Box<dyn FnMut(&SourceRecord, &Decided)>;

/// The write path over one source, one dead-letter sink and one storage.
pub struct Pipeline<S, D> {
    source: S,
    sink: Arc<D>,
    storage: Arc<Storage>,
    dedupe: DedupeIndex,
    /// Keys of the events in every open batch and in the batch being
    /// written (a resend on another partition is a duplicate before the
    /// first copy is committed).
    in_flight: KeySet,
    /// The batch being written, if any.
    writing: Option<Writing>,
    /// Whether a batch was discarded since this was last cleared.
    dropped: bool,
    redactor: Redactor,
    limits: DecodeLimits,
    ingest: IngestConfig,
    metrics: Arc<Metrics>,
    parts: HashMap<i32, Part>,
    commits: Arc<tokio::sync::Notify>,
    totals: Totals,
    stages: StageTimes,
    observer: Option<Observer>,
}

impl<S: RecordSource, D: DeadLetterSink> Pipeline<S, D> {
    /// Recovers what an interrupted write left in `storage`, loads the
    /// dedupe index from its commit records, and returns a pipeline ready
    /// to [`run`](Self::run).
    pub async fn open(
        source: S,
        sink: D,
        storage: Storage,
        redactor: Redactor,
        options: Options,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let recovered = storage.recover(options.recover_grace).await?;
        if recovered != Default::default() {
            info!(
                published = recovered.published,
                discarded = recovered.discarded,
                temporary = recovered.temporary,
                "recovered an interrupted write"
            );
        }
        let loading = Instant::now();
        let mut dedupe = DedupeIndex::new(source.topic(), options.ingest.dedupe_window);
        let keys = dedupe.refresh(&storage).await?;
        info!(
            keys,
            took_ms = loading.elapsed().as_millis() as u64,
            "dedupe index loaded from storage"
        );
        metrics.dedupe_keys.set(dedupe.len() as u64);
        Ok(Self {
            limits: options.limits.unwrap_or_else(|| options.ingest.limits()),
            ingest: options.ingest,
            source,
            sink: Arc::new(sink),
            storage: Arc::new(storage),
            dedupe,
            in_flight: KeySet::default(),
            writing: None,
            dropped: false,
            redactor,
            metrics,
            parts: HashMap::new(),
            commits: Arc::new(tokio::sync::Notify::new()),
            totals: Totals::default(),
            stages: StageTimes::default(),
            observer: None,
        })
    }

    /// Calls `observer` with every decided record, before it is batched.
    pub fn observe(&mut self, observer: Observer) {
        self.observer = Some(observer);
    }

    /// Told after every commit (the alert evaluator and the rollups listen).
    pub fn commits(&self) -> Arc<tokio::sync::Notify> {
        self.commits.clone()
    }

    /// What the pipeline has done so far.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Time spent in each stage so far.
    pub fn stages(&self) -> &StageTimes {
        &self.stages
    }

    /// The storage written to.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The source read from.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Reads and commits until `stop` completes, a finite source ends, or
    /// (with `exit_when_idle`) nothing arrived for that long and every
    /// partition is stored up to its high watermark; then commits the open
    /// batches (and reads on if one of them was discarded, fenced by
    /// another writer, unless `stop` completed). When it returns, with
    /// `Ok` or an error, no write is in flight; a caller that drops its
    /// future instead leaves the write in flight to finish or be cut off
    /// (recovery settles it at the next start).
    pub async fn run(
        &mut self,
        stop: impl Future<Output = ()>,
        exit_when_idle: Option<Duration>,
    ) -> Result<()> {
        let result = self.read_and_commit(stop, exit_when_idle).await;
        if result.is_err() {
            if let Err(e) = self.finish_writing().await {
                warn!(error = %e, "the batch being written when the pipeline stopped was not committed");
            }
        }
        result
    }

    /// [`run`](Self::run) until its end or first error.
    async fn read_and_commit(
        &mut self,
        stop: impl Future<Output = ()>,
        exit_when_idle: Option<Duration>,
    ) -> Result<()> {
        let mut stop = std::pin::pin!(stop);
        let mut ticker = tokio::time::interval(
            self.ingest
                .batch_latency
                .clamp(Duration::from_millis(1), Duration::from_millis(500)),
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_record = Instant::now();
        let mut last_unseen = Instant::now();
        loop {
            let stopped = loop {
                let waiting = Instant::now();
                tokio::select! {
                    _ = &mut stop => break true,
                    _ = ticker.tick() => {
                        self.stages.source_wait += waiting.elapsed();
                        self.commit_due(false).await?;
                        self.report_lag();
                        if last_unseen.elapsed() >= UNSEEN_EVERY {
                            last_unseen = Instant::now();
                            let highs: Vec<(i32, i64)> = self.source.known_high_watermarks().into_iter().collect();
                            // A background check: its failures wait for the next one.
                            if let Err(e) = self.seek_unseen(&highs).await {
                                warn!(error = %e, "checking partitions that served nothing failed; retrying in a few seconds");
                            }
                        }
                        if exit_when_idle.is_some_and(|d| last_record.elapsed() >= d) && self.drained().await? {
                            break false;
                        }
                    }
                    chunk = self.source.next_chunk(CHUNK) => match chunk {
                        Ok(Some(records)) => {
                            self.stages.source_wait += waiting.elapsed();
                            last_record = Instant::now();
                            self.handle_chunk(records).await?;
                        }
                        Ok(None) => {
                            // A finite source ended: unless a partition it never
                            // served holds records the storage lacks.
                            let highs = self.source.high_watermarks().await?;
                            if !self.seek_unseen(&highs).await? {
                                break false;
                            }
                        }
                        Err(e) => warn!(error = %e, "reading the source"),
                    },
                }
            };
            self.dropped = false;
            self.commit_due(true).await?;
            // Drained or at its end, but a batch settled just now was
            // discarded (another writer committed its partition first): the
            // partition is read again from its chain, unless told to stop.
            if stopped || !self.dropped {
                return Ok(());
            }
            info!("a batch settled at the end was discarded; reading its partition again from its chain");
            last_record = Instant::now();
        }
    }

    /// Handles records received together: each is admitted in order
    /// (partition state, resume point, seeks), the admitted ones are
    /// decoded and redacted, then added to their batches in order.
    pub async fn handle_chunk(&mut self, records: Vec<SourceRecord>) -> Result<()> {
        let mut seeked = HashSet::new();
        let mut admitted = Vec::with_capacity(records.len());
        for r in records {
            if self.admit(&r, &mut seeked).await? {
                admitted.push(r);
            }
        }
        let runs = self.decide_all(&admitted)?;
        let mut times = DecideTimes::default();
        let mut decided = Vec::with_capacity(admitted.len());
        for (run, counts, t) in runs {
            if !counts.0.is_empty() {
                self.totals.redacted.merge(&counts);
            }
            times.decode += t.decode;
            times.redact += t.redact;
            decided.extend(run);
        }
        if let Some(observe) = self.observer.as_mut() {
            for (r, d) in admitted.iter().zip(&decided) {
                observe(r, d);
            }
        }
        self.stages.decide.decode += times.decode;
        self.stages.decide.redact += times.redact;
        self.metrics
            .stage_seconds("decode")
            .inc_by(times.decode.as_secs_f64());
        self.metrics
            .stage_seconds("redact")
            .inc_by(times.redact.as_secs_f64());
        for (r, d) in admitted.into_iter().zip(decided) {
            self.apply(r, d).await?;
        }
        Ok(())
    }

    /// Decodes and redacts records, split over `ingest.decide_threads`
    /// threads (each takes a run of consecutive records; the results keep
    /// the records' order). A chunk too small to be worth a thread is
    /// decided here.
    fn decide_all(&self, records: &[SourceRecord]) -> Result<Vec<DecidedRun>> {
        /// Fewest records worth a thread of their own.
        const MIN_PER_THREAD: usize = 256;
        let threads = self
            .ingest
            .decide_threads()
            .min(records.len() / MIN_PER_THREAD)
            .max(1);
        let topic = self.source.topic();
        let (redactor, limits) = (&self.redactor, &self.limits);
        if threads == 1 {
            return Ok(vec![decide_run(redactor, limits, topic, records)?]);
        }
        let per = records.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let mut runs = records.chunks(per);
            let mine = runs.next().unwrap_or_default();
            let others: Vec<_> = runs
                .map(|run| scope.spawn(move || decide_run(redactor, limits, topic, run)))
                .collect();
            let mut out = vec![decide_run(redactor, limits, topic, mine)?];
            for h in others {
                match h.join() {
                    Ok(run) => out.push(run?),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            Ok(out)
        })
    }

    /// Whether a record is the next one to store for its partition. Sets
    /// up a partition seen for the first time, skips records stored
    /// already, and seeks back when the source serves past the resume point
    /// (once per chunk and partition: the records after it in the chunk
    /// were fetched before the seek).
    async fn admit(&mut self, r: &SourceRecord, seeked: &mut HashSet<i32>) -> Result<bool> {
        let (p, offset) = (r.partition, r.offset);
        if seeked.contains(&p) {
            return Ok(false);
        }
        if !self.parts.contains_key(&p) {
            let Some(part) = self.assign(p).await? else {
                seeked.insert(p);
                return Ok(false);
            };
            self.parts.insert(p, part);
        }
        let part = self.parts.get_mut(&p).ok_or_else(|| {
            PipelineError::Source(crate::SourceError::new(
                "admitting a record",
                "no partition state",
            ))
        })?;
        match part.next {
            Some(n) if offset < n => return Ok(false), // stored already
            Some(n) if offset > n => {
                // The source serves past what is stored: go back. If it
                // keeps answering past it, the records between are gone
                // (retention): storing on would leave a gap.
                part.seeks += 1;
                if part.seeks > MAX_SEEKS {
                    return Err(PipelineError::RetentionGap {
                        topic: self.source.topic().to_string(),
                        partition: p,
                        expected: n,
                        served: offset,
                    });
                }
                warn!(
                    partition = p,
                    offset,
                    resume_at = n,
                    "seeking back to the committed offset"
                );
                self.source.seek(p, SeekTo::Offset(n))?;
                seeked.insert(p);
                return Ok(false);
            }
            _ => {}
        }
        part.seeks = 0;
        part.next = Some(offset + 1);
        Ok(true)
    }

    /// The state of a partition seen for the first time: it resumes after
    /// its chain's last record, or at its log start when it has no chain
    /// (never where the group offset points: a group kept while the storage
    /// was emptied or moved would skip offsets that were never stored).
    /// `None` when the log start cannot be read: the partition is sought to
    /// its beginning and waits for the source.
    async fn assign(&mut self, p: i32) -> Result<Option<Part>> {
        // Another writer may have stored events since: catch up first.
        let added = self.dedupe.refresh(&self.storage).await?;
        if added > 0 {
            info!(
                keys = added,
                "dedupe index caught up on other writers' commits"
            );
        }
        let topic = self.source.topic().to_string();
        // Another writer may have committed since this one last knew the
        // chain (a partition lost and regained in a rebalance).
        self.storage.forget(&topic, p).await;
        let (next, log_start) = match self.storage.resume_offset(&topic, p).await? {
            Some(n) => (n, None),
            None => match self.source.log_start(p).await {
                Ok(low) => {
                    info!(
                        partition = p,
                        log_start = low,
                        "no commit record yet: storing from the partition's log start"
                    );
                    (low, Some(low))
                }
                Err(e) => {
                    warn!(
                        partition = p,
                        error = %e,
                        "cannot read the log start of a partition without a commit record; its records wait for the source"
                    );
                    if let Err(e) = self.source.seek(p, SeekTo::Beginning) {
                        warn!(partition = p, error = %e, "seeking back to the beginning failed; the partition resumes when its next record arrives");
                    }
                    return Ok(None);
                }
            },
        };
        info!(partition = p, resume_at = next, "partition assigned");
        self.metrics
            .committed_offset
            .get_or_create(&Metrics::partition(p))
            .set(next);
        Ok(Some(Part {
            next: Some(next),
            log_start,
            committed: next,
            seeks: 0,
            batch: None,
            raw_dead: Vec::new(),
            bytes: 0,
            since: Instant::now(),
        }))
    }

    /// Adds a decided record to its partition's batch, and commits the
    /// batch when it is full, or the largest open batch when all of them
    /// together are over the memory bound.
    async fn apply(&mut self, r: SourceRecord, decided: Decided) -> Result<()> {
        let (p, offset) = (r.partition, r.offset);
        // A fenced commit earlier in the chunk dropped the partition: the
        // rest of its records are re-read from the new owner's chain.
        let topic = self.source.topic();
        let Some(part) = self.parts.get_mut(&p) else {
            return Ok(());
        };
        self.totals.consumed += 1;
        self.metrics.consumed.inc();
        let filling = part
            .batch
            .get_or_insert_with(|| Filling::new(topic, p, offset));
        if filling.is_empty() {
            part.since = Instant::now();
        }
        part.bytes += r.payload.len();
        if matches!(decided, Decided::Dead(_)) {
            part.raw_dead.push(RawDeadLetter {
                key: r.key,
                payload: r.payload,
            });
        }
        filling.add(offset, decided, &self.dedupe, &mut self.in_flight);
        let full =
            filling.records() >= self.ingest.batch_records || part.bytes >= self.ingest.batch_bytes;
        if full {
            self.commit(p).await?;
        } else if let Some(largest) = self.over_memory_bound() {
            self.commit(largest).await?;
        }
        Ok(())
    }

    /// The partition whose open batch is largest, when the open batches of
    /// all partitions together hold `ingest.max_open_bytes` of payload or
    /// more (their decoded rows take a few times that).
    fn over_memory_bound(&self) -> Option<i32> {
        let open: usize = self.parts.values().map(|part| part.bytes).sum();
        if open < self.ingest.max_open_bytes {
            return None;
        }
        self.parts
            .iter()
            .filter(|(_, part)| part.batch.is_some())
            .max_by_key(|(p, part)| (part.bytes, std::cmp::Reverse(**p)))
            .map(|(p, _)| *p)
    }

    /// Commits the batches whose first record has waited long enough (all
    /// of them with `all`, and waits until they are written). A batch whose
    /// write has finished is settled first.
    pub async fn commit_due(&mut self, all: bool) -> Result<()> {
        if self.writing.as_ref().is_some_and(|w| w.task.is_finished()) {
            self.finish_writing().await?;
        }
        let latency = self.ingest.batch_latency;
        let mut due: Vec<i32> = self
            .parts
            .iter()
            .filter(|(_, s)| s.batch.is_some() && (all || s.since.elapsed() >= latency))
            .map(|(p, _)| *p)
            .collect();
        due.sort_unstable();
        for p in due {
            self.commit(p).await?;
        }
        if all {
            self.finish_writing().await?;
        }
        Ok(())
    }

    /// Whether every partition of the topic is stored up to its high
    /// watermark (by this instance or another: the commit records say).
    pub async fn drained(&self) -> Result<bool> {
        let watermarks = match self.source.high_watermarks().await {
            Ok(w) => w,
            Err(e) => {
                // The source is away: not drained, whatever is stored.
                warn!(error = %e, "cannot tell whether the topic is drained");
                return Ok(false);
            }
        };
        if watermarks.is_empty() {
            return Ok(false);
        }
        let topic = self.source.topic();
        for (p, high) in watermarks {
            let next = match self.parts.get(&p).and_then(|s| s.next) {
                Some(n) => n,
                None => {
                    // Another instance may have committed it: re-read.
                    self.storage.forget(topic, p).await;
                    self.storage.resume_offset(topic, p).await?.unwrap_or(0)
                }
            };
            if next < high {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Seeks each partition that has served nothing yet, but holds records
    /// below `highs` the storage lacks, to where its chain ends (or to its
    /// log start without a chain). Such a partition's group offset points
    /// at or past its end (a group kept while the storage was emptied or
    /// moved), so it would otherwise never serve them. Returns whether any
    /// partition was sought. A partition another member owns refuses the
    /// seek; that is not an error.
    async fn seek_unseen(&mut self, highs: &[(i32, i64)]) -> Result<bool> {
        let topic = self.source.topic().to_string();
        let mut sought = false;
        for &(p, high) in highs {
            if self.parts.contains_key(&p) || high <= 0 {
                continue;
            }
            // Another member may own it and commit: never a cached chain end.
            self.storage.forget(&topic, p).await;
            let next = match self.storage.resume_offset(&topic, p).await? {
                Some(n) => n,
                None => match self.source.log_start(p).await {
                    Ok(low) => low,
                    Err(_) => continue,
                },
            };
            if next < high {
                match self.source.seek(p, SeekTo::Offset(next)) {
                    Ok(()) => {
                        info!(partition = p, resume_at = next, high, "a partition that served nothing holds records not stored: reading it from there");
                        sought = true;
                    }
                    Err(e) => {
                        tracing::debug!(partition = p, error = %e, "not sought (another member's?)")
                    }
                }
            }
        }
        Ok(sought)
    }

    /// Sets the lag gauge of each partition this instance holds.
    fn report_lag(&self) {
        let highs = self.source.known_high_watermarks();
        for (p, part) in &self.parts {
            if let Some(high) = highs.get(p) {
                self.metrics
                    .lag
                    .get_or_create(&Metrics::partition(*p))
                    .set((high - part.committed).max(0));
            }
        }
    }

    /// Commits partition `p`'s batch in a background task: raw refused
    /// records to the dead-letter sink (at least once, for replay after a
    /// fix), then the batch's files and commit record (settled by
    /// [`finish_writing`](Self::finish_writing)), then the group offset.
    /// The batch written before this one is settled first: one is written
    /// at a time, so a partition's chain is written in order and a failed
    /// write drops the batches after it before they are written.
    async fn commit(&mut self, p: i32) -> Result<()> {
        self.finish_writing().await?;
        let Some(part) = self.parts.get_mut(&p) else {
            return Ok(());
        };
        let Some(mut filling) = part.batch.take() else {
            return Ok(());
        };
        filling.batch.log_start = part.log_start;
        let raw_dead = std::mem::take(&mut part.raw_dead);
        part.bytes = 0;
        let waited = part.since.elapsed();
        let topic = self.source.topic().to_string();
        let (storage, sink) = (self.storage.clone(), self.sink.clone());
        let task = tokio::spawn(async move {
            let committed = write(&storage, &*sink, &topic, &filling.batch, &raw_dead).await;
            // Written, or to be read again: the rows are freed here, off
            // the task that reads the source (the keys are kept).
            filling.batch.events = Vec::new();
            (filling, raw_dead, committed)
        });
        self.writing = Some(Writing {
            partition: p,
            waited,
            started: Instant::now(),
            task,
        });
        Ok(())
    }

    /// Waits for the batch being written, if any, and settles it: its keys
    /// join the dedupe index and the group offset follows; or, when it was
    /// not committed, it and the batch filling after it are dropped and
    /// the partition is read again from its chain's end.
    async fn finish_writing(&mut self) -> Result<()> {
        let Some(w) = self.writing.take() else {
            return Ok(());
        };
        let p = w.partition;
        let waiting = Instant::now();
        let joined = w.task.await;
        self.stages.writer_wait += waiting.elapsed();
        let (filling, raw_dead, committed) = match joined {
            Ok(done) => done,
            Err(e) => {
                // The batch's keys went with the task: every open batch and
                // every partition's state is dropped with them, so that a
                // caller that runs the pipeline again reads every partition
                // from its chain with an in-flight set that holds nothing
                // stale.
                self.in_flight.clear();
                let topic = self.source.topic().to_string();
                for (q, _) in std::mem::take(&mut self.parts) {
                    self.storage.forget(&topic, q).await;
                }
                return Err(PipelineError::Writer {
                    topic,
                    partition: p,
                    message: e.to_string(),
                });
            }
        };
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
                self.committed(
                    p,
                    &record,
                    (&raw_dead, &filling.batch.dead_letters),
                    w.started,
                    w.waited,
                );
                filling.committed(&mut self.dedupe, &mut self.in_flight, &record);
                self.dedupe.evict(Utc::now());
                self.metrics.dedupe_keys.set(self.dedupe.len() as u64);
                // The group offset follows the commit record, for lag
                // monitoring; resuming never relies on it.
                if let Err(e) = self.source.committed(p, record.last_offset + 1) {
                    warn!(partition = p, error = %e, "could not commit the group offset (lag reporting only)");
                }
                self.storage.crash_point(CommitStep::AfterGroupOffset)?;
                Ok(())
            }
            Err(
                e @ PipelineError::Storage(
                    StorageError::Fenced { .. } | StorageError::OffsetGap { .. },
                ),
            ) => {
                // Another writer owns this partition now, or committed past
                // us: forget it; the next record re-reads the chain. The
                // other writer's keys join the index now: a copy on another
                // partition decided before this one is read again must not
                // be taken for a first.
                warn!(partition = p, error = %e, "batch discarded");
                self.abandon(p, filling).await;
                let added = self.dedupe.refresh(&self.storage).await?;
                info!(
                    keys = added,
                    "dedupe index caught up on the other writer's commits"
                );
                Ok(())
            }
            Err(e) => {
                self.abandon(p, filling).await;
                Err(e)
            }
        }
    }

    /// Drops a batch that was not committed, the batch filling after it,
    /// and the partition's state: their keys leave the in-flight set, and
    /// the partition is read again from its chain's end (this instance's or
    /// another's) when it next serves a record.
    async fn abandon(&mut self, p: i32, filling: Filling) {
        self.dropped = true;
        filling.discarded(&mut self.in_flight);
        if let Some(later) = self.parts.remove(&p).and_then(|part| part.batch) {
            later.discarded(&mut self.in_flight);
        }
        self.storage.forget(self.source.topic(), p).await;
    }

    /// Counts, metrics and logs of a commit that succeeded.
    fn committed(
        &mut self,
        p: i32,
        record: &CommitRecord,
        dead: (&[RawDeadLetter], &[DeadLetter]),
        started: Instant,
        waited: Duration,
    ) {
        let m = &self.metrics;
        m.commit_latency.observe(started.elapsed().as_secs_f64());
        m.batch_latency.observe(waited.as_secs_f64());
        m.batch_records.observe(record.records as f64);
        m.stored.inc_by(record.stored);
        m.duplicates.inc_by(record.duplicates);
        for (raw, d) in dead.0.iter().zip(dead.1) {
            m.dead_lettered
                .get_or_create(&ReasonLabel {
                    reason: d.reason.code.as_str().to_string(),
                })
                .inc();
            // The reason and field, never the content; the trace id when
            // the record carries one. At info: a broken producer must not
            // flood the default log (the metric above and the dead_letters
            // table count them).
            info!(
                partition = p,
                offset = d.kafka.offset,
                reason = d.reason.code.as_str(),
                field = %d.reason.field,
                trace_id = tollgate_event::trace_id(&raw.payload).unwrap_or_default(),
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
        self.totals.stored += record.stored;
        self.totals.dead_lettered += record.dead_lettered;
        self.totals.duplicates += record.duplicates;
        self.totals.commits += 1;
        self.totals.files += record.files.len() as u64;
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
    }
}
