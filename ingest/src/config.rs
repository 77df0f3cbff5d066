//! The `[kafka]` config section.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

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
