//! Tollgate's Kafka side: the clients, the emitter producers use, the HTTP
//! gateway, and the Kafka implementation of the pipeline's record source.
//!
//! **Owns** every conversation with the broker: topics, the consumer of
//! `tollgate run` ([`source::KafkaSource`]), the dead-letter producer
//! ([`source::KafkaDeadLetters`]), the emitter, and the gateway that takes
//! events over HTTP and produces them.
//!
//! **May touch** the broker and the network. The event contract is
//! `tollgate-event`'s, the write path `tollgate-pipeline`'s, and the audit
//! log `tollgate-storage`'s: nothing here decides or stores an event.

pub mod config;
pub mod gateway;
pub mod http_server;
pub mod kafka;
pub mod source;

pub use config::KafkaConfig;

/// Errors of the Kafka side's operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kafka client could not be created or an operation on the broker failed.
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
