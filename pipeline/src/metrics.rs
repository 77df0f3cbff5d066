//! Prometheus metrics of `tollgate run` and the HTTP gateway, in the
//! OpenMetrics text format. Labels carry partitions, reason codes and
//! status codes only: never payload content.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A Kafka partition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    /// Partition number.
    pub partition: String,
}

/// A dead-letter reason code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The reason code, such as `missing_field`.
    pub reason: String,
}

/// A kind of client error reported by librdkafka.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    /// The librdkafka error code name, such as `AllBrokersDown`.
    pub kind: String,
}

/// A stage of the write path.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    /// `decode`, `redact`, `encode`, `hash` or `store`.
    pub stage: String,
}

/// An HTTP status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// The status code.
    pub status: String,
}

/// Every metric, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    /// Kafka records read (each once per partition offset).
    pub consumed: Counter,
    /// Events stored.
    pub stored: Counter,
    /// Valid events skipped as duplicates of stored ones.
    pub duplicates: Counter,
    /// Records dead-lettered, by reason code.
    pub dead_lettered: Family<ReasonLabel, Counter>,
    /// Records per committed batch.
    pub batch_records: Histogram,
    /// Seconds from a batch's first record to its commit.
    pub batch_latency: Histogram,
    /// Seconds spent writing a batch's files and commit record.
    pub commit_latency: Histogram,
    /// Records a partition's committed chain is behind the broker's high watermark.
    pub lag: Family<PartitionLabel, Gauge>,
    /// The next offset to store, per partition.
    pub committed_offset: Family<PartitionLabel, Gauge>,
    /// Errors librdkafka reported (broker down, transport failures), by kind.
    pub kafka_errors: Family<ErrorLabel, Counter>,
    /// 1 while the broker answers, 0 after librdkafka reported all brokers down.
    pub broker_up: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Gateway responses, by status code.
    pub http_responses: Family<StatusLabel, Counter>,
    /// Events the gateway produced to Kafka (acknowledged by the broker).
    pub http_events_accepted: Counter,
    /// Events the gateway refused, by reason code (`rate_limited` included).
    pub http_events_refused: Family<ReasonLabel, Counter>,
    /// Dedupe keys held.
    pub dedupe_keys: Gauge<u64, AtomicU64>,
    /// 1 while the last storage probe listed the store, 0 after one failed.
    pub storage_up: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Seconds spent in each stage of the write path.
    pub stages: Family<StageLabel, Counter<f64, AtomicU64>>,
    /// Another stage's metrics rendered after these (the alert evaluator's
    /// inside `tollgate run`).
    more: std::sync::OnceLock<Box<dyn Fn() -> String + Send + Sync>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `tollgate_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tollgate");
        let consumed = Counter::default();
        let stored = Counter::default();
        let duplicates = Counter::default();
        let dead_lettered = Family::<ReasonLabel, Counter>::default();
        let batch_records = Histogram::new(exponential_buckets(1.0, 4.0, 10));
        let batch_latency = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        let commit_latency = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let lag = Family::<PartitionLabel, Gauge>::default();
        let committed_offset = Family::<PartitionLabel, Gauge>::default();
        let kafka_errors = Family::<ErrorLabel, Counter>::default();
        let broker_up = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        broker_up.set(1);
        let http_responses = Family::<StatusLabel, Counter>::default();
        let http_events_accepted = Counter::default();
        let http_events_refused = Family::<ReasonLabel, Counter>::default();
        let dedupe_keys = Gauge::<u64, AtomicU64>::default();
        let storage_up = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        storage_up.set(1);
        let stages = Family::<StageLabel, Counter<f64, AtomicU64>>::default();
        registry.register(
            "stage_seconds",
            "Seconds `tollgate run` spent in each stage of the write path (decode, redact, encode, hash, store)",
            stages.clone(),
        );
        registry.register(
            "consumed_records",
            "Kafka records read from the raw topic",
            consumed.clone(),
        );
        registry.register("stored_events", "Events stored", stored.clone());
        registry.register(
            "duplicate_events",
            "Valid events not stored again: their (tenant, source, id) was stored",
            duplicates.clone(),
        );
        registry.register(
            "dead_lettered_records",
            "Records dead-lettered, by reason code",
            dead_lettered.clone(),
        );
        registry.register(
            "batch_records",
            "Records per committed batch",
            batch_records.clone(),
        );
        registry.register(
            "batch_latency_seconds",
            "Seconds from a batch's first record to its commit",
            batch_latency.clone(),
        );
        registry.register(
            "commit_latency_seconds",
            "Seconds spent writing a batch's files and commit record",
            commit_latency.clone(),
        );
        registry.register(
            "consumer_lag_records",
            "Records between a partition's committed chain and the broker's high watermark",
            lag.clone(),
        );
        registry.register(
            "committed_offset",
            "The next offset to store, per partition",
            committed_offset.clone(),
        );
        registry.register(
            "kafka_client_errors",
            "Errors the Kafka client reported (broker down, transport failures), by kind",
            kafka_errors.clone(),
        );
        registry.register(
            "kafka_broker_up",
            "1 while the broker answers, 0 after the client reported all brokers down",
            broker_up.clone(),
        );
        registry.register(
            "http_responses",
            "Gateway responses, by status code",
            http_responses.clone(),
        );
        registry.register(
            "http_events_accepted",
            "Events the gateway produced and the broker acknowledged",
            http_events_accepted.clone(),
        );
        registry.register(
            "http_events_refused",
            "Events the gateway refused, by reason code",
            http_events_refused.clone(),
        );
        registry.register(
            "dedupe_keys",
            "Event keys the dedupe index holds",
            dedupe_keys.clone(),
        );
        registry.register(
            "storage_up",
            "1 while the last storage probe listed the store, 0 after one failed",
            storage_up.clone(),
        );
        Self {
            registry,
            consumed,
            stored,
            duplicates,
            dead_lettered,
            batch_records,
            batch_latency,
            commit_latency,
            lag,
            committed_offset,
            kafka_errors,
            broker_up,
            http_responses,
            http_events_accepted,
            http_events_refused,
            dedupe_keys,
            storage_up,
            stages,
            more: std::sync::OnceLock::new(),
        }
    }

    /// Renders `more` (another registry's OpenMetrics text) after these
    /// metrics; the first call wins.
    pub fn also_render(&self, more: impl Fn() -> String + Send + Sync + 'static) {
        let _ = self.more.set(Box::new(more));
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        if let Some(more) = self.more.get() {
            // One `# EOF` at the very end.
            if let Some(head) = out.strip_suffix("# EOF\n") {
                out = head.to_string();
            }
            out.push_str(&more());
        }
        out
    }

    /// Why the process is not ready (the broker or the storage failed its
    /// last probe), or `Ok`.
    pub fn readiness(&self) -> Result<(), String> {
        let mut down = Vec::new();
        if self.broker_up.get() != 1 {
            down.push("kafka: the broker did not answer the last probe (see kafka_client_errors)");
        }
        if self.storage_up.get() != 1 {
            down.push("storage: the last probe could not list the store");
        }
        if down.is_empty() {
            Ok(())
        } else {
            Err(down.join("; "))
        }
    }

    /// The seconds counter of one stage of the write path.
    pub fn stage_seconds(&self, stage: &str) -> Counter<f64, AtomicU64> {
        self.stages
            .get_or_create(&StageLabel {
                stage: stage.to_string(),
            })
            .clone()
    }

    /// The label of a partition.
    pub fn partition(p: i32) -> PartitionLabel {
        PartitionLabel {
            partition: p.to_string(),
        }
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::new();
        m.consumed.inc_by(3);
        m.dead_lettered
            .get_or_create(&ReasonLabel {
                reason: "missing_field".into(),
            })
            .inc();
        m.lag.get_or_create(&Metrics::partition(2)).set(17);
        let text = m.render();
        assert!(text.contains("tollgate_consumed_records_total 3"), "{text}");
        assert!(text.contains("tollgate_dead_lettered_records_total{reason=\"missing_field\"} 1"));
        assert!(text.contains("tollgate_consumer_lag_records{partition=\"2\"} 17"));
        assert!(text.contains("tollgate_kafka_broker_up 1"));
        assert!(m.readiness().is_ok());
        m.broker_up.set(0);
        m.storage_up.set(0);
        let why = m.readiness().unwrap_err();
        assert!(why.contains("kafka:") && why.contains("storage:"), "{why}");
    }

    #[test]
    fn another_registry_renders_before_one_eof() {
        let m = Metrics::new();
        m.also_render(|| "# TYPE tollgate_other counter\ntollgate_other_total 2\n# EOF\n".into());
        let text = m.render();
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(text.ends_with("tollgate_other_total 2\n# EOF\n"), "{text}");
        assert!(text.contains("tollgate_consumed_records_total 0"), "{text}");
    }
}
