//! A partitioned log in memory, with the semantics the pipeline relies on in
//! Kafka: offsets per partition, a log start that retention moves, group
//! offsets that outlive a consumer, and seeks. The demo streams its
//! generated workload through it; the crash tests script it.
//!
//! A producer may append while a consumer reads. With a capacity, appends
//! wait while the log holds that many records the group has not committed
//! (committed ones are dropped, as retention would), so a long demo runs in
//! bounded memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::source::{DeadLetterSink, RecordSource, Refused, SeekTo, SourceError, SourceRecord};

#[derive(Debug, Default)]
struct Partition {
    /// The offset of `records[0]` (the log start).
    start: i64,
    records: VecDeque<SourceRecord>,
    group_offset: Option<i64>,
}

impl Partition {
    fn end(&self) -> i64 {
        self.start + self.records.len() as i64
    }
}

#[derive(Debug, Default)]
struct LogState {
    partitions: Vec<Partition>,
    closed: bool,
    /// Drop records below the group offset (bounded memory).
    trim_committed: bool,
}

#[derive(Debug)]
struct Shared {
    topic: String,
    state: Mutex<LogState>,
    /// Producers waiting for room.
    room: Condvar,
    /// Consumers waiting for records.
    arrived: tokio::sync::Notify,
    capacity: Option<usize>,
}

/// The log: shared by its producer and its consumers, and outliving them
/// (a consumer dropped in a crash test leaves the log and its group offsets
/// as a broker would).
#[derive(Debug, Clone)]
pub struct MemoryLog(Arc<Shared>);

impl MemoryLog {
    /// An empty, open log of `partitions` partitions named `topic`.
    pub fn new(topic: &str, partitions: usize) -> Self {
        Self::build(topic, partitions, None)
    }

    /// A log whose appends wait while `capacity` records are not yet
    /// committed by the group; committed records are dropped.
    pub fn bounded(topic: &str, partitions: usize, capacity: usize) -> Self {
        Self::build(topic, partitions, Some(capacity.max(1)))
    }

    fn build(topic: &str, partitions: usize, capacity: Option<usize>) -> Self {
        let state = LogState {
            partitions: (0..partitions.max(1))
                .map(|_| Partition::default())
                .collect(),
            closed: false,
            trim_committed: capacity.is_some(),
        };
        Self(Arc::new(Shared {
            topic: topic.to_string(),
            state: Mutex::new(state),
            room: Condvar::new(),
            arrived: tokio::sync::Notify::new(),
            capacity,
        }))
    }

    fn state(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding the lock leaves plain data: keep using it.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a record to `partition` (modulo the partition count) and
    /// returns its offset. Waits for room in a bounded log; blocking, so
    /// call it from a producer thread, not from the consumer's task.
    pub fn append(
        &self,
        partition: i32,
        key: Option<&[u8]>,
        payload: Vec<u8>,
        timestamp: Option<DateTime<Utc>>,
    ) -> i64 {
        let mut st = self.state();
        if let Some(cap) = self.0.capacity {
            while st.partitions.iter().map(|p| p.records.len()).sum::<usize>() >= cap {
                st = self.0.room.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        let n = st.partitions.len() as i32;
        let part = &mut st.partitions[partition.rem_euclid(n) as usize];
        let offset = part.end();
        part.records.push_back(SourceRecord {
            partition: partition.rem_euclid(n),
            offset,
            timestamp,
            key: key.map(<[u8]>::to_vec),
            payload,
        });
        drop(st);
        self.0.arrived.notify_waiters();
        offset
    }

    /// No more records will be appended: consumers that have read
    /// everything see the end.
    pub fn close(&self) {
        self.state().closed = true;
        self.0.arrived.notify_waiters();
    }

    /// Drops `partition`'s records before `offset`, as retention would.
    pub fn truncate_before(&self, partition: i32, offset: i64) {
        let mut st = self.state();
        if let Some(p) = st.partitions.get_mut(partition as usize) {
            while p.start < offset && !p.records.is_empty() {
                p.records.pop_front();
                p.start += 1;
            }
            p.start = p.start.max(offset.min(p.end()));
        }
        drop(st);
        self.0.room.notify_all();
    }

    /// Sets the consumer group's offset of `partition`, as an operator or a
    /// stale deployment could.
    pub fn set_group_offset(&self, partition: i32, offset: Option<i64>) {
        if let Some(p) = self.state().partitions.get_mut(partition as usize) {
            p.group_offset = offset;
        }
    }

    /// The consumer group's offset of `partition`.
    pub fn group_offset(&self, partition: i32) -> Option<i64> {
        self.state()
            .partitions
            .get(partition as usize)
            .and_then(|p| p.group_offset)
    }

    /// A new member of the consumer group: each partition is read from the
    /// group's offset, or from its log start when the group has none (as
    /// Kafka's `auto.offset.reset = earliest`).
    pub fn consumer(&self) -> MemorySource {
        MemorySource {
            log: self.clone(),
            positions: HashMap::new(),
            next_partition: 0,
        }
    }
}

/// One consumer of a [`MemoryLog`].
#[derive(Debug)]
pub struct MemorySource {
    log: MemoryLog,
    positions: HashMap<i32, i64>,
    next_partition: usize,
}

impl MemorySource {
    /// Takes up to `max` records, a partition at a time from where the last
    /// call stopped; `None` when nothing is there now.
    fn take(&mut self, max: usize) -> (Vec<SourceRecord>, bool) {
        let st = self.log.state();
        let n = st.partitions.len();
        let mut out = Vec::new();
        for i in 0..n {
            let idx = (self.next_partition + i) % n;
            let part = &st.partitions[idx];
            let p = idx as i32;
            let pos = self
                .positions
                .entry(p)
                .or_insert_with(|| part.group_offset.unwrap_or(part.start));
            // Out of range (below the log start, or past the end), Kafka
            // resets to the earliest offset (`auto.offset.reset = earliest`).
            if *pos < part.start || *pos > part.end() {
                *pos = part.start;
            }
            while out.len() < max && *pos < part.end() {
                let at = (*pos - part.start) as usize;
                if let Some(r) = part.records.get(at) {
                    out.push(r.clone());
                }
                *pos += 1;
            }
            if out.len() >= max {
                self.next_partition = (idx + 1) % n;
                break;
            }
        }
        (out, st.closed)
    }
}

impl RecordSource for MemorySource {
    fn topic(&self) -> &str {
        &self.log.0.topic
    }

    async fn next_chunk(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        let shared = self.log.0.clone();
        loop {
            // Created before looking, so an append in between wakes it.
            let arrived = shared.arrived.notified();
            let (records, closed) = self.take(max.max(1));
            if !records.is_empty() {
                return Ok(Some(records));
            }
            if closed {
                return Ok(None);
            }
            arrived.await;
        }
    }

    async fn log_start(&self, partition: i32) -> Result<i64, SourceError> {
        self.log
            .state()
            .partitions
            .get(partition as usize)
            .map(|p| p.start)
            .ok_or_else(|| {
                SourceError::new("reading a log start", format!("no partition {partition}"))
            })
    }

    async fn high_watermarks(&self) -> Result<Vec<(i32, i64)>, SourceError> {
        Ok(self
            .log
            .state()
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| (i as i32, p.end()))
            .collect())
    }

    fn known_high_watermarks(&self) -> HashMap<i32, i64> {
        self.log
            .state()
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| (i as i32, p.end()))
            .collect()
    }

    fn seek(&mut self, partition: i32, to: SeekTo) -> Result<(), SourceError> {
        let offset = match to {
            SeekTo::Offset(o) => o,
            SeekTo::Beginning => i64::MIN,
        };
        self.positions.insert(partition, offset);
        Ok(())
    }

    fn committed(&mut self, partition: i32, next_offset: i64) -> Result<(), SourceError> {
        let mut st = self.log.state();
        let trim = st.trim_committed;
        if let Some(p) = st.partitions.get_mut(partition as usize) {
            p.group_offset = Some(next_offset);
            if trim {
                while p.start < next_offset && !p.records.is_empty() {
                    p.records.pop_front();
                    p.start += 1;
                }
            }
        }
        drop(st);
        self.log.0.room.notify_all();
        Ok(())
    }
}

/// Refused records' raw bytes, kept in memory (the dead-letter topic of the
/// demo and the tests).
#[derive(Debug, Default, Clone)]
pub struct MemoryDeadLetters {
    delivered: Arc<Mutex<Vec<SourceRecord>>>,
    count: Arc<std::sync::atomic::AtomicU64>,
    keep: bool,
}

impl MemoryDeadLetters {
    /// A sink that keeps every delivered record.
    pub fn keeping() -> Self {
        Self {
            keep: true,
            ..Self::default()
        }
    }

    /// A sink that only counts deliveries.
    pub fn counting() -> Self {
        Self::default()
    }

    /// Records delivered (resends included: delivery is at least once).
    pub fn delivered(&self) -> Vec<SourceRecord> {
        self.delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many deliveries there were.
    pub fn count(&self) -> u64 {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl DeadLetterSink for MemoryDeadLetters {
    async fn publish(&self, _topic: &str, refused: &[Refused<'_>]) -> Result<(), SourceError> {
        self.count
            .fetch_add(refused.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if self.keep {
            let mut d = self.delivered.lock().unwrap_or_else(|e| e.into_inner());
            d.extend(refused.iter().map(|r| SourceRecord {
                partition: r.letter.kafka.partition,
                offset: r.letter.kafka.offset,
                timestamp: r.letter.kafka.timestamp,
                key: r.key.map(<[u8]>::to_vec),
                payload: r.payload.to_vec(),
            }));
        }
        Ok(())
    }
}
