//! The per-record step: decode and validate, then redact; a valid event
//! becomes a row to store, a refused record a dead letter that keeps only the
//! redacted text of its payload; and the batch they are collected in, which
//! drops resent events.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tollgate_event::{claimed_tenant, DecodeLimits, Event, RejectReason, UNATTRIBUTED_TENANT};
use tollgate_redactor::{Counts, Redactor};
use tollgate_storage::{
    event_key, CommitRecord, DeadLetter, DedupeIndex, EventKey, KafkaCoords, KeyHasher, KeySet,
    PartitionBatch, StoredEvent,
};

type Result<T> = std::result::Result<T, tollgate_redactor::Error>;

/// Where a record goes.
pub enum Decided {
    /// A valid event, redacted.
    Stored(Box<StoredEvent>),
    /// A refused record, with its reason.
    Dead(DeadLetter),
}

/// Time spent deciding records, by stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecideTimes {
    /// Decoding, validating and upcasting.
    pub decode: Duration,
    /// Redacting (valid events and refused payloads).
    pub redact: Duration,
}

/// Decides one record. The time of receipt is the record's timestamp (so a
/// replay decides the same way), or now. Findings are added to `redacted`,
/// the time taken to `times`.
pub fn decide(
    redactor: &Redactor,
    limits: &DecodeLimits,
    payload: &[u8],
    key: Option<&[u8]>,
    kafka: KafkaCoords,
    redacted: &mut Counts,
    times: &mut DecideTimes,
) -> Result<Decided> {
    let received_at = kafka.timestamp.unwrap_or_else(chrono::Utc::now);
    let decoding = Instant::now();
    let decoded = tollgate_event::decode(payload, limits, received_at);
    let redacting = Instant::now();
    times.decode += redacting - decoding;
    let decided = redact(redactor, payload, key, kafka, decoded, redacted);
    times.redact += redacting.elapsed();
    decided
}

/// The redaction half of [`decide`].
fn redact(
    redactor: &Redactor,
    payload: &[u8],
    key: Option<&[u8]>,
    kafka: KafkaCoords,
    decoded: std::result::Result<Event, RejectReason>,
    redacted: &mut Counts,
) -> Result<Decided> {
    match decoded {
        Ok(mut event) => {
            // Nothing is stored before it passed the redactor.
            let outcome = redactor.redact_event(&mut event)?;
            redacted.merge(&outcome.counts);
            Ok(Decided::Stored(Box::new(StoredEvent {
                event,
                redaction_key_id: outcome.key_id,
                kafka,
            })))
        }
        Err(reason) => {
            // Filed under the tenant the payload names, if it names one.
            let tenant = claimed_tenant(payload).unwrap_or_else(|| UNATTRIBUTED_TENANT.to_string());
            let (text, outcome) = redactor.redact_payload(&tenant, payload)?;
            redacted.merge(&outcome.counts);
            // The record key is the producer's choice (some key by user):
            // it goes through the redactor like the payload.
            let key = match key {
                Some(k) => {
                    let k = String::from_utf8_lossy(k);
                    let (k, found) = redactor.redact_text(&tenant, &k)?;
                    redacted.merge(&found.counts);
                    Some(k.into_owned())
                }
                None => None,
            };
            Ok(Decided::Dead(DeadLetter {
                kafka,
                key,
                reason,
                tenant,
                payload_redacted: text,
                redaction_key_id: outcome.key_id,
                payload_bytes: payload.len() as u64,
            }))
        }
    }
}

/// A partition's batch being filled, with the dedupe keys of its events.
pub struct Filling {
    /// The batch.
    pub batch: PartitionBatch,
    keys: HashMap<EventKey, DateTime<Utc>, KeyHasher>,
}

impl Filling {
    /// An empty batch of `topic`/`partition` that starts at `first_offset`.
    pub fn new(topic: &str, partition: i32, first_offset: i64) -> Self {
        Self {
            batch: PartitionBatch {
                topic: topic.to_string(),
                partition,
                first_offset,
                last_offset: first_offset - 1,
                events: Vec::new(),
                dead_letters: Vec::new(),
                duplicates: 0,
                log_start: None,
            },
            keys: HashMap::default(),
        }
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.batch.last_offset < self.batch.first_offset
    }

    /// Records read so far.
    pub fn records(&self) -> usize {
        self.batch.events.len() + self.batch.dead_letters.len() + self.batch.duplicates as usize
    }

    /// Adds the record at `offset`. A valid event whose (tenant, source, id)
    /// is stored already (in `index`, with any event time) or in an open
    /// batch of any partition (`in_flight`) is counted as a duplicate and
    /// not stored again; otherwise its key joins `in_flight` until this
    /// batch is committed or discarded. Returns whether it was a duplicate.
    ///
    /// Dropping a copy because another partition's open batch holds one is
    /// safe even if that batch is then discarded (fenced): its records are
    /// read again from its chain, by whichever instance owns it, and the
    /// copy there is stored.
    pub fn add(
        &mut self,
        offset: i64,
        decided: Decided,
        index: &DedupeIndex,
        in_flight: &mut KeySet,
    ) -> bool {
        self.batch.last_offset = offset;
        match decided {
            Decided::Stored(row) => {
                let e = &row.event;
                let key = event_key(&e.tags.tenant, &e.envelope.source, &e.envelope.id);
                let time = e.envelope.time;
                // By key alone: a resend is a duplicate whatever its `time`.
                if index.contains(key) || in_flight.contains(&key) {
                    self.batch.duplicates += 1;
                    return true;
                }
                in_flight.insert(key);
                self.keys.insert(key, time);
                self.batch.events.push(*row);
            }
            Decided::Dead(row) => self.batch.dead_letters.push(row),
        }
        false
    }

    /// After the batch was discarded (fenced): its keys leave `in_flight`.
    pub fn discarded(self, in_flight: &mut KeySet) {
        for key in self.keys.keys() {
            in_flight.remove(key);
        }
    }

    /// After the batch was committed: its keys join `index` and leave
    /// `in_flight`.
    pub fn committed(self, index: &mut DedupeIndex, in_flight: &mut KeySet, record: &CommitRecord) {
        for key in self.keys.keys() {
            in_flight.remove(key);
        }
        index.insert_all(self.keys);
        index.committed(record);
    }
}
