//! Tollgate's ingest stage: the event contract (CloudEvents 1.0 JSON for tool
//! calls and GPU usage), its validation and upcasting, and the Kafka clients.
//!
//! The entry point is [`event::decode`]: bytes in, a validated [`event::Event`]
//! or a [`RejectReason`] naming the field out. It never panics.

pub mod config;
pub mod event;
#[cfg(feature = "kafka")]
pub mod gateway;
#[cfg(feature = "kafka")]
pub mod http_server;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod metrics;
mod reject;
pub mod storage;

pub use config::{IngestConfig, KafkaConfig, StorageConfig};
pub use event::{decode, DecodeLimits, Event};
pub use reject::{ReasonCode, RejectReason};

/// Errors of the ingest stage's operations (decoding problems are
/// [`RejectReason`]s, which are data, not errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kafka client could not be created or an operation on the broker failed.
    #[cfg(feature = "kafka")]
    #[error("kafka: {context}: {source}; check kafka.brokers and that the broker is reachable")]
    Kafka {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Waiting on the broker took longer than allowed.
    #[error("kafka: {0} timed out; is the broker at kafka.brokers up?")]
    Timeout(String),
}
