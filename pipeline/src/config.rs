//! The `[ingest]` config section: the bounds events are decoded against
//! and how records are batched into commits.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tollgate_event::DecodeLimits;

/// `[ingest]`: the bounds every event is checked against, and how records
/// are batched into commits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest encoded event, in bytes.
    pub max_event_bytes: usize,
    /// How far before the time of receipt an event's `time` may lie.
    #[serde(with = "humantime_serde")]
    pub max_past: Duration,
    /// How far after the time of receipt an event's `time` may lie.
    #[serde(with = "humantime_serde")]
    pub max_future: Duration,
    /// Longest GPU usage interval one event may cover.
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// A partition's batch is committed once it holds this many records...
    pub batch_records: usize,
    /// ...or this many bytes of payload...
    pub batch_bytes: usize,
    /// ...or its first record waited this long.
    #[serde(with = "humantime_serde")]
    pub batch_latency: Duration,
    /// The open batches of all partitions together hold at most this many
    /// bytes of payload: past it, the largest is committed early. Bounds
    /// the memory of batches however many partitions an instance holds
    /// (their decoded rows take a few times their payload).
    pub max_open_bytes: usize,
    /// Threads that decode and redact a chunk of records side by side; 0
    /// means one per core. On 2 cores one is fastest (the batch writer and
    /// the Kafka client take the other); more help where cores are idle.
    pub decide_threads: usize,
    /// How much event time the dedupe index covers: an event whose
    /// (tenant, source, id) was stored with an event time this recent is not
    /// stored again. Defaults to `max_past`, so that every event the decoder
    /// accepts is matched against its earlier copies.
    #[serde(with = "humantime_serde")]
    pub dedupe_window: Duration,
    /// Where `tollgate run` serves Prometheus `/metrics`, such as
    /// `127.0.0.1:9464`; unset serves none.
    pub metrics_addr: Option<String>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        let l = DecodeLimits::default();
        Self {
            max_event_bytes: l.max_event_bytes,
            max_past: l.max_past,
            max_future: l.max_future,
            max_interval: l.max_interval,
            batch_records: 10_000,
            batch_bytes: 32 * 1024 * 1024,
            max_open_bytes: 64 * 1024 * 1024,
            batch_latency: Duration::from_secs(2),
            decide_threads: 1,
            dedupe_window: l.max_past,
            metrics_addr: None,
        }
    }
}

impl IngestConfig {
    /// Threads deciding a chunk: `decide_threads`, or one per core.
    pub fn decide_threads(&self) -> usize {
        match self.decide_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The bounds events are decoded against.
    pub fn limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_event_bytes: self.max_event_bytes,
            max_past: self.max_past,
            max_future: self.max_future,
            max_interval: self.max_interval,
        }
    }
}
