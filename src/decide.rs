//! The per-record step shared by `tollgate run` and `tollgate demo`: decode
//! and validate, then redact; a valid event becomes a row to store, a refused
//! record a dead letter that keeps only the redacted text of its payload.

use anyhow::Result;
use tollgate_ingest::event::{claimed_tenant, UNATTRIBUTED_TENANT};
use tollgate_ingest::storage::{DeadLetter, KafkaCoords, StoredEvent};
use tollgate_ingest::DecodeLimits;
use tollgate_redactor::{Counts, Redactor};

/// Where a record goes.
pub enum Decided {
    /// A valid event, redacted.
    Stored(Box<StoredEvent>),
    /// A refused record, with its reason.
    Dead(DeadLetter),
}

/// Decides one record. The time of receipt is the record's timestamp (so a
/// replay decides the same way), or now. Findings are added to `redacted`.
pub fn decide(
    redactor: &Redactor,
    limits: &DecodeLimits,
    payload: &[u8],
    key: Option<&[u8]>,
    kafka: KafkaCoords,
    redacted: &mut Counts,
) -> Result<Decided> {
    let received_at = kafka.timestamp.unwrap_or_else(chrono::Utc::now);
    match tollgate_ingest::decode(payload, limits, received_at) {
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
            let text = String::from_utf8_lossy(payload);
            let (text, outcome) = redactor.redact_text(&tenant, &text)?;
            redacted.merge(&outcome.counts);
            Ok(Decided::Dead(DeadLetter {
                kafka,
                key: key.map(|k| String::from_utf8_lossy(k).into_owned()),
                reason,
                tenant,
                payload_redacted: text.into_owned(),
                redaction_key_id: outcome.key_id,
                payload_bytes: payload.len() as u64,
            }))
        }
    }
}
