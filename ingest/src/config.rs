//! The `[kafka]`, `[ingest]` and `[storage]` config sections.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::event::DecodeLimits;

/// `[kafka]`: where the raw events come from.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// The raw topic producers write to (key = team).
    pub raw_topic: String,
    /// The dead-letter topic: raw bytes of refused records, for replay after a fix.
    pub dead_letter_topic: String,
    /// The consumer group of `tollgate run` instances.
    pub group_id: String,
    /// The client id the broker sees.
    pub client_id: String,
    /// Partitions of the topics Tollgate creates when they are missing.
    pub partitions: i32,
    /// Replicas of the topics Tollgate creates (1 for a single-broker
    /// development setup; 3 in production).
    pub replication_factor: i32,
    /// How long the dead-letter topic keeps raw refused records (its own
    /// retention, set when Tollgate creates it), for replay after a fix.
    #[serde(with = "humantime_serde")]
    pub dead_letter_retention: std::time::Duration,
    /// Extra librdkafka properties (such as `security.protocol`), passed through as given.
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties that hold secrets (such as `sasl.password`);
    /// never printed. Best set through `TOLLGATE__KAFKA__SECRET_PROPERTIES__...`.
    #[serde(skip_serializing)]
    pub secret_properties: BTreeMap<String, SecretString>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            raw_topic: "tollgate.events".into(),
            dead_letter_topic: "tollgate.dead-letters".into(),
            group_id: "tollgate-ingest".into(),
            client_id: "tollgate".into(),
            partitions: 6,
            replication_factor: 1,
            dead_letter_retention: std::time::Duration::from_secs(30 * 86_400),
            properties: BTreeMap::new(),
            secret_properties: BTreeMap::new(),
        }
    }
}

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
            batch_latency: Duration::from_secs(2),
            dedupe_window: l.max_past,
            metrics_addr: None,
        }
    }
}

impl IngestConfig {
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

/// `[storage]`: where the audit log lives.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Local data directory: tables, commit records, key store, outbox.
    pub data_dir: PathBuf,
    /// Object-store URL for the tables and commit records (`file:///...`,
    /// `s3://bucket/prefix`); unset means `data_dir` on the local
    /// filesystem. The key store stays in `data_dir`.
    pub url: Option<String>,
    /// Object-store options such as `endpoint`, `region`, `allow_http`
    /// (`object_store` configuration keys). `AWS_*` environment variables
    /// are read too, as the AWS tools do.
    pub options: BTreeMap<String, String>,
    /// Options that hold secrets (such as `secret_access_key`); never
    /// printed. Best set through `TOLLGATE__STORAGE__SECRET_OPTIONS__...` or
    /// the usual `AWS_SECRET_ACCESS_KEY`.
    #[serde(skip_serializing)]
    pub secret_options: BTreeMap<String, SecretString>,
}

impl StorageConfig {
    /// The local filesystem storage rooted at `dir`.
    pub fn local(dir: &std::path::Path) -> Self {
        Self {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./tollgate-data"),
            url: None,
            options: BTreeMap::new(),
            secret_options: BTreeMap::new(),
        }
    }
}
