//! Kafka as the pipeline's record source and dead-letter sink: the consumer
//! of `tollgate run`, and the producer that keeps refused records' raw bytes
//! on the dead-letter topic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::DateTime;
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tollgate_pipeline::{DeadLetterSink, RecordSource, Refused, SeekTo, SourceError, SourceRecord};
use tracing::warn;

use crate::kafka::ObservedContext;

/// How long a metadata, watermark or seek call may wait for the broker.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// The raw topic, read by a member of the consumer group.
pub struct KafkaSource {
    consumer: Arc<StreamConsumer<ObservedContext>>,
    topic: String,
    highs: Arc<Mutex<HashMap<i32, i64>>>,
}

impl KafkaSource {
    /// Reads `topic` through `consumer` (already subscribed). The high
    /// watermarks for lag gauges are refreshed by
    /// [`KafkaSource::spawn_watermarks`].
    pub fn new(consumer: Arc<StreamConsumer<ObservedContext>>, topic: &str) -> Self {
        Self {
            consumer,
            topic: topic.to_string(),
            highs: Arc::default(),
        }
    }

    /// Refreshes the high watermarks every `every` in the background (a
    /// slow or absent broker never stalls the pipeline), calling `probed`
    /// with whether the broker answered.
    pub fn spawn_watermarks(
        &self,
        every: Duration,
        probed: impl Fn(Result<(), &SourceError>) + Send + 'static,
    ) {
        let (consumer, topic, highs) = (
            self.consumer.clone(),
            self.topic.clone(),
            self.highs.clone(),
        );
        tokio::spawn(async move {
            loop {
                match high_watermarks(&consumer, &topic).await {
                    Ok(w) => {
                        if let Ok(mut h) = highs.lock() {
                            h.extend(w);
                        }
                        probed(Ok(()));
                    }
                    Err(e) => probed(Err(&e)),
                }
                tokio::time::sleep(every).await;
            }
        });
    }
}

/// The high watermark of every partition of `topic`, read without blocking
/// the caller's task.
async fn high_watermarks(
    consumer: &Arc<StreamConsumer<ObservedContext>>,
    topic: &str,
) -> Result<Vec<(i32, i64)>, SourceError> {
    let consumer = consumer.clone();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let md = consumer
            .fetch_metadata(Some(&topic), BROKER_TIMEOUT)
            .map_err(|e| SourceError::new(format!("reading the metadata of {topic}"), e))?;
        let mut out = Vec::new();
        for t in md.topics() {
            for p in t.partitions() {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, p.id(), BROKER_TIMEOUT)
                    .map_err(|e| {
                        SourceError::new(
                            format!("reading the high watermark of {topic}/{}", p.id()),
                            e,
                        )
                    })?;
                out.push((p.id(), high));
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| SourceError::new("reading the high watermarks", e))?
}

/// A consumed message as the pipeline takes it.
fn owned(m: &BorrowedMessage<'_>) -> SourceRecord {
    SourceRecord {
        partition: m.partition(),
        offset: m.offset(),
        timestamp: m
            .timestamp()
            .to_millis()
            .and_then(DateTime::from_timestamp_millis),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().unwrap_or_default().to_vec(),
    }
}

impl RecordSource for KafkaSource {
    fn topic(&self) -> &str {
        &self.topic
    }

    async fn next_chunk(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        let first = self
            .consumer
            .recv()
            .await
            .map_err(|e| SourceError::new("receiving from kafka", e))?;
        let mut out = Vec::with_capacity(max.min(256));
        out.push(owned(&first));
        drop(first);
        // Take what else is ready, up to a chunk.
        while out.len() < max {
            match self.consumer.recv().now_or_never() {
                Some(Ok(m)) => out.push(owned(&m)),
                Some(Err(e)) => {
                    warn!(error = %e, "kafka");
                    break;
                }
                None => break,
            }
        }
        Ok(Some(out))
    }

    async fn log_start(&self, partition: i32) -> Result<i64, SourceError> {
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            consumer
                .fetch_watermarks(&topic, partition, BROKER_TIMEOUT)
                .map(|(low, _)| low)
                .map_err(|e| {
                    SourceError::new(format!("reading the log start of {topic}/{partition}"), e)
                })
        })
        .await
        .map_err(|e| SourceError::new("reading a log start", e))?
    }

    async fn high_watermarks(&self) -> Result<Vec<(i32, i64)>, SourceError> {
        high_watermarks(&self.consumer, &self.topic).await
    }

    fn known_high_watermarks(&self) -> HashMap<i32, i64> {
        self.highs.lock().map(|h| h.clone()).unwrap_or_default()
    }

    fn seek(&mut self, partition: i32, to: SeekTo) -> Result<(), SourceError> {
        let offset = match to {
            SeekTo::Offset(n) => Offset::Offset(n),
            SeekTo::Beginning => Offset::Beginning,
        };
        self.consumer
            .seek(&self.topic, partition, offset, BROKER_TIMEOUT)
            .map_err(|e| {
                SourceError::new(
                    format!("seeking {}/{partition} to {offset:?}", self.topic),
                    e,
                )
            })
    }

    fn committed(&mut self, partition: i32, next_offset: i64) -> Result<(), SourceError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition, Offset::Offset(next_offset))
            .map_err(|e| SourceError::new("building the offset list", e))?;
        self.consumer.commit(&tpl, CommitMode::Async).map_err(|e| {
            SourceError::new(
                format!("committing the group offset of {}/{partition}", self.topic),
                e,
            )
        })
    }
}

/// The dead-letter topic: each refused record's raw bytes and key, with
/// headers naming the reason, the field and where it came from.
pub struct KafkaDeadLetters {
    producer: FutureProducer<ObservedContext>,
    topic: String,
}

impl KafkaDeadLetters {
    /// Produces to `topic` through `producer`.
    pub fn new(producer: FutureProducer<ObservedContext>, topic: &str) -> Self {
        Self {
            producer,
            topic: topic.to_string(),
        }
    }
}

impl DeadLetterSink for KafkaDeadLetters {
    async fn publish(
        &self,
        source_topic: &str,
        refused: &[Refused<'_>],
    ) -> Result<(), SourceError> {
        let mut deliveries = Vec::with_capacity(refused.len());
        for r in refused {
            let d = r.letter;
            let source = format!("{}:{}", d.kafka.partition, d.kafka.offset);
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "tollgate-reason",
                    value: Some(d.reason.code.as_str()),
                })
                .insert(Header {
                    key: "tollgate-field",
                    value: Some(d.reason.field.as_str()),
                })
                .insert(Header {
                    key: "tollgate-source-topic",
                    value: Some(source_topic),
                })
                .insert(Header {
                    key: "tollgate-source-offset",
                    value: Some(source.as_str()),
                });
            let mut record = FutureRecord::to(&self.topic)
                .payload(r.payload)
                .headers(headers);
            if let Some(k) = r.key {
                record = record.key(k);
            }
            deliveries.push(self.producer.send(record, Duration::from_secs(30)));
        }
        for delivery in futures::future::join_all(deliveries).await {
            delivery
                .map_err(|(e, _)| SourceError::new(format!("producing to {}", self.topic), e))?;
        }
        Ok(())
    }
}
