//! Kafka clients built from [`KafkaConfig`](crate::KafkaConfig).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, FutureProducer, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::ClientContext;
use secrecy::ExposeSecret;
use tracing::{error, info, warn};

use crate::{Error, KafkaConfig};
use tollgate_pipeline::metrics::{ErrorLabel, Metrics};

/// The client context of `tollgate run` and the gateway: librdkafka's
/// errors and logs go to `tracing` and to the metrics (an unreachable
/// broker shows as `tollgate_kafka_broker_up 0` and a count of
/// `AllBrokersDown`), and rebalances are logged.
#[derive(Clone)]
pub struct ObservedContext {
    metrics: Arc<Metrics>,
}

impl ObservedContext {
    /// A context that reports to `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl ClientContext for ObservedContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                error!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Warning => {
                warn!(target: "librdkafka", facility = fac, "{log_message}")
            }
            _ => info!(target: "librdkafka", facility = fac, "{log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let kind = error
            .rdkafka_error_code()
            .map(|c| format!("{c:?}"))
            .unwrap_or_else(|| "Other".into());
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.metrics.broker_up.set(0);
            error!(kind = %kind, "kafka: all brokers are down; waiting for them ({reason})");
        } else {
            warn!(kind = %kind, "kafka client error: {reason}");
        }
        self.metrics
            .kafka_errors
            .get_or_create(&ErrorLabel { kind })
            .inc();
    }

    fn stats(&self, _: rdkafka::Statistics) {}
}

impl ConsumerContext for ObservedContext {
    fn pre_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(?parts, "partitions revoked");
            }
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            info!(?parts, "partitions assigned");
        }
    }
}

/// Creates the topics that do not exist yet, with `cfg.partitions`
/// partitions and `cfg.replication_factor` replicas. The raw topic gets
/// `message.timestamp.type=LogAppendTime` (so time-based retention counts
/// from arrival, never from a back-dated event time); the dead-letter topic
/// its own `retention.ms`. A broker that refuses a topic setting gets the
/// topic without it, with a warning. Returns the topics created.
pub async fn ensure_topics(cfg: &KafkaConfig) -> Result<Vec<String>, Error> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(cfg).create().map_err(|source| Error::Kafka {
            context: "creating the admin client".into(),
            source,
        })?;
    let retention_ms = cfg.dead_letter_retention.as_millis().to_string();
    let specs: [(&str, Vec<(&str, &str)>); 2] = [
        (
            &cfg.raw_topic,
            vec![("message.timestamp.type", "LogAppendTime")],
        ),
        (
            &cfg.dead_letter_topic,
            vec![
                ("message.timestamp.type", "LogAppendTime"),
                ("retention.ms", retention_ms.as_str()),
            ],
        ),
    ];
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut created = Vec::new();
    for (name, settings) in specs {
        // Most clusters have their topics already (and may not allow this
        // client to create any): look before creating.
        let exists = admin
            .inner()
            .fetch_metadata(Some(name), Duration::from_secs(10))
            .map(|md| {
                md.topics()
                    .iter()
                    .any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
            })
            .unwrap_or(false);
        if exists {
            continue;
        }
        for with_settings in [true, false] {
            let mut topic = NewTopic::new(
                name,
                cfg.partitions,
                TopicReplication::Fixed(cfg.replication_factor),
            );
            if with_settings {
                for (k, v) in &settings {
                    topic = topic.set(k, v);
                }
            }
            let results = admin
                .create_topics([&topic], &opts)
                .await
                .map_err(|source| Error::Kafka {
                    context: format!("creating topic {name}"),
                    source,
                })?;
            match results.into_iter().next() {
                Some(Ok(_)) => {
                    info!(
                        topic = name,
                        partitions = cfg.partitions,
                        settings = with_settings,
                        "topic created"
                    );
                    created.push(name.to_string());
                    break;
                }
                Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => break,
                Some(Err((_, code)))
                    if with_settings
                        && matches!(
                            code,
                            RDKafkaErrorCode::InvalidConfig
                                | RDKafkaErrorCode::PolicyViolation
                                | RDKafkaErrorCode::UnsupportedVersion
                        ) =>
                {
                    warn!(topic = name, error = ?code, "the broker refused the topic settings; creating the topic without them (retention then counts from the producer's timestamps)");
                }
                Some(Err((_, code))) => {
                    return Err(Error::Kafka {
                        context: format!("creating topic {name}"),
                        source: KafkaError::AdminOp(code),
                    })
                }
            }
        }
    }
    Ok(created)
}

/// The team a payload names (`data.team`, or v0's `data.team_id`), in the
/// canonical form events store it in: the record key producers use, so
/// that a team's events keep their order and a resent event lands on the
/// partition of its first copy, however the team was spelt (`Search` and
/// `search` are one team, and the gateway keys by the same form).
pub fn team_key(payload: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let d = v.get("data")?;
    let t = d.get("team").or_else(|| d.get("team_id"))?.as_str()?;
    if t.len() > 256 {
        return None;
    }
    let t = tollgate_event::canonical_tag(t);
    (!t.is_empty()).then_some(t)
}

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

/// A producer with idempotence on (`acks=all`), so that retries do not
/// duplicate records.
pub fn producer(
    cfg: &KafkaConfig,
    context: ObservedContext,
) -> Result<FutureProducer<ObservedContext>, Error> {
    client_config(cfg)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "zstd")
        .set("linger.ms", "20")
        .create_with_context(context)
        .map_err(|source| Error::Kafka {
            context: "creating the producer".into(),
            source,
        })
}

/// The consumer's prefetch bound, in kB.
const PREFETCH_KBYTES: &str = "queued.max.messages.kbytes";

/// How long the consumer waits to fetch again after its prefetch queue
/// filled up.
const FETCH_QUEUE_BACKOFF: &str = "fetch.queue.backoff.ms";

/// A consumer in the group `cfg.group_id` that starts from the earliest
/// offset when the group has none and commits offsets only when told to.
pub fn consumer(
    cfg: &KafkaConfig,
    context: ObservedContext,
) -> Result<StreamConsumer<ObservedContext>, Error> {
    let mut c = client_config(cfg);
    c.set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    // librdkafka prefetches up to 64 MB by default; the pipeline takes
    // records in chunks of a few thousand, so 16 MB keeps it fed while
    // bounding the memory of a backlog (kafka.properties may set another).
    if !cfg.properties.contains_key(PREFETCH_KBYTES) {
        c.set(PREFETCH_KBYTES, "16384");
    }
    // Once the prefetch queue is full, librdkafka waits this long before it
    // fetches again (1 s by default): the pipeline drains 16 MB in a
    // fraction of that and then sat idle. Measured on a 2-million-event
    // backlog: 54 s with the default, 37 s with 10 ms (docs/ingest.md).
    if !cfg.properties.contains_key(FETCH_QUEUE_BACKOFF) {
        c.set(FETCH_QUEUE_BACKOFF, "10");
    }
    c.create_with_context(context)
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

/// How often [`Emitter::flush`] checks that the broker is still answering.
const FLUSH_STEP: Duration = Duration::from_secs(1);

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
            .set("acks", "all")
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

    /// Queues one encoded event, keyed by the team it names (unkeyed if it
    /// names none). This is the library API for Rust producers: encode the
    /// event as CloudEvents JSON, `emit` it, and [`flush`](Self::flush)
    /// before exiting.
    pub fn emit(&self, payload: &[u8]) -> Result<(), Error> {
        match team_key(payload) {
            Some(team) => self.send(&team, payload),
            None => self.send_record(None, payload),
        }
    }

    /// Queues one record with `key`.
    pub fn send(&self, key: &str, payload: &[u8]) -> Result<(), Error> {
        self.send_record(Some(key), payload)
    }

    fn send_record(&self, key: Option<&str>, payload: &[u8]) -> Result<(), Error> {
        let mut record = BaseRecord::to(&self.topic).payload(payload);
        if let Some(k) = key {
            record = record.key(k);
        }
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

    /// Waits for every queued record and says what was delivered. It waits
    /// as long as the broker keeps answering: a slow broker with a large
    /// backlog is waited out, and only `stall` without a single record
    /// acknowledged or failed is a timeout.
    pub fn flush(&self, stall: Duration) -> Result<Delivered, Error> {
        let ctx = self.producer.context();
        let settled = || ctx.delivered.load(Ordering::Relaxed) + ctx.failed.load(Ordering::Relaxed);
        let mut last = settled();
        let mut since = Instant::now();
        while self.producer.flush(stall.min(FLUSH_STEP)).is_err() {
            let now = settled();
            if now != last {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() >= stall {
                return Err(Error::Timeout(format!(
                    "delivering to {} ({} records settled, {} waiting, none answered for {} s)",
                    self.topic,
                    now,
                    self.producer.in_flight_count(),
                    stall.as_secs()
                )));
            }
        }
        Ok(Delivered {
            delivered: ctx.delivered.load(Ordering::Relaxed),
            failed: ctx.failed.load(Ordering::Relaxed),
            last_error: ctx.last_error.lock().ok().and_then(|l| l.clone()),
        })
    }
}

/// Runs `probe` (a metadata request) every `every` and sets
/// `tollgate_kafka_broker_up` from its answer: librdkafka reports the broker
/// going away, this reports it coming back. For processes that do not
/// otherwise poll the broker, such as the gateway.
pub fn spawn_broker_probe(
    probe: impl Fn() -> Result<(), KafkaError> + Send + Sync + 'static,
    metrics: Arc<Metrics>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let probe = Arc::new(probe);
    tokio::spawn(async move {
        loop {
            let p = probe.clone();
            match tokio::task::spawn_blocking(move || p()).await {
                Ok(Ok(())) => {
                    metrics.broker_up.set(1);
                }
                Ok(Err(e)) => {
                    metrics.broker_up.set(0);
                    warn!(error = %e, "kafka: the broker did not answer a metadata request");
                }
                Err(e) => warn!(error = %e, "kafka: the broker probe failed"),
            }
            tokio::time::sleep(every).await;
        }
    })
}
