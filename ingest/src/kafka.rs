//! Kafka clients built from [`KafkaConfig`](crate::KafkaConfig).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::StreamConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, FutureProducer, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::ClientContext;
use secrecy::ExposeSecret;

use crate::{Error, KafkaConfig};

/// The librdkafka configuration shared by producers and consumers.
pub fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("client.id", &cfg.client_id)
        .set("log_level", "4");
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    for (k, v) in &cfg.secret_properties {
        c.set(k, v.expose_secret());
    }
    c
}

/// A producer with idempotence on, so that retries do not duplicate records.
pub fn producer(cfg: &KafkaConfig) -> Result<FutureProducer, Error> {
    client_config(cfg)
        .set("enable.idempotence", "true")
        .set("compression.type", "zstd")
        .set("linger.ms", "20")
        .create()
        .map_err(|source| Error::Kafka {
            context: "creating the producer".into(),
            source,
        })
}

/// A consumer in the group `cfg.group_id` that starts from the earliest
/// offset when the group has none and commits offsets only when told to.
pub fn consumer(cfg: &KafkaConfig) -> Result<StreamConsumer, Error> {
    client_config(cfg)
        .set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(|source| Error::Kafka {
            context: "creating the consumer".into(),
            source,
        })
}

/// Counts deliveries and failures of a [`Emitter`].
#[derive(Debug, Default)]
pub struct DeliveryCounter {
    delivered: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.to_string());
                }
            }
        }
    }
}

/// A synchronous producer for tools that emit many records (fixtures,
/// `tollgate emit`): sends without waiting, waits when librdkafka's queue is
/// full, and reports what was delivered when flushed.
pub struct Emitter {
    producer: ThreadedProducer<DeliveryCounter>,
    topic: String,
}

/// What an [`Emitter`] delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Records the broker acknowledged.
    pub delivered: u64,
    /// Records that failed for good.
    pub failed: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

impl Emitter {
    /// An emitter to `topic` with the producer settings of [`producer`].
    pub fn new(cfg: &KafkaConfig, topic: &str) -> Result<Self, Error> {
        let producer = client_config(cfg)
            .set("enable.idempotence", "true")
            .set("compression.type", "zstd")
            .set("linger.ms", "50")
            .set("queue.buffering.max.messages", "200000")
            .create_with_context(DeliveryCounter::default())
            .map_err(|source| Error::Kafka {
                context: "creating the producer".into(),
                source,
            })?;
        Ok(Self {
            producer,
            topic: topic.to_string(),
        })
    }

    /// Queues one record with `key`.
    pub fn send(&self, key: &str, payload: &[u8]) -> Result<(), Error> {
        let mut record = BaseRecord::to(&self.topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((source, _)) => {
                    return Err(Error::Kafka {
                        context: format!("producing to {}", self.topic),
                        source,
                    })
                }
            }
        }
    }

    /// Waits up to `timeout` for every queued record and says what was delivered.
    pub fn flush(&self, timeout: Duration) -> Result<Delivered, Error> {
        self.producer
            .flush(timeout)
            .map_err(|_| Error::Timeout(format!("delivering to {}", self.topic)))?;
        let ctx = self.producer.context();
        Ok(Delivered {
            delivered: ctx.delivered.load(Ordering::Relaxed),
            failed: ctx.failed.load(Ordering::Relaxed),
            last_error: ctx.last_error.lock().ok().and_then(|l| l.clone()),
        })
    }
}
