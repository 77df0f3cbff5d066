//! The `[kafka]`, `[ingest]` and `[storage]` config sections.

use std::collections::BTreeMap;
use std::path::PathBuf;

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
            properties: BTreeMap::new(),
            secret_properties: BTreeMap::new(),
        }
    }
}

/// `[ingest]`: the bounds every event is checked against (see [`DecodeLimits`]).
pub type IngestConfig = DecodeLimits;

/// `[storage]`: where the audit log lives.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Local data directory: tables, commit records, key store, outbox.
    pub data_dir: PathBuf,
    /// Object-store URL for the tables (`file:///...` or `s3://bucket/prefix`);
    /// unset means `data_dir` on the local filesystem.
    pub url: Option<String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./tollgate-data"),
            url: None,
        }
    }
}
