//! Bytes to a validated [`Event`]: size, UTF-8, JSON, envelope, then the
//! kind- and version-specific body (upcast to the current version).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::body;
use super::fields::{type_name, ObjectReader, StrKind, MAX_NAME_BYTES};
use super::schema::SchemaVersion;
use super::{Envelope, Event};
use crate::reject::{ReasonCode, RejectReason};

/// The bounds an event is checked against. `Default` gives the documented
/// defaults; the `[ingest]` config section overrides them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeLimits {
    /// Largest encoded event, in bytes.
    pub max_event_bytes: usize,
    /// How far before the time of receipt an event's `time` (and a GPU
    /// interval's start) may lie, such as `45d`.
    #[serde(with = "humantime_serde")]
    pub max_past: Duration,
    /// How far after the time of receipt an event's `time` (and a GPU
    /// interval's end) may lie: the producers' clock skew, such as `5m`.
    #[serde(with = "humantime_serde")]
    pub max_future: Duration,
    /// Longest GPU usage interval one event may cover, such as `24h`.
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_event_bytes: 256 * 1024,
            max_past: Duration::from_secs(45 * 86_400),
            max_future: Duration::from_secs(5 * 60),
            max_interval: Duration::from_secs(86_400),
        }
    }
}

/// Attributes the CloudEvents spec or Tollgate defines; anything else in the
/// envelope is an extension attribute.
const CONTEXT_ATTRIBUTES: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "subject",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
];

/// Decodes and validates one encoded event received at `received_at` (the
/// time the pipeline uses for the skew window; for Kafka records, the
/// record's timestamp, so that a replay decides the same way).
///
/// Never panics: any input yields an event or a reason naming the field.
pub fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    received_at: DateTime<Utc>,
) -> Result<Event, RejectReason> {
    if bytes.len() > limits.max_event_bytes {
        return Err(RejectReason::new(
            ReasonCode::TooLarge,
            "$",
            format!(
                "event is {} bytes; the limit is {} bytes (ingest.max_event_bytes)",
                bytes.len(),
                limits.max_event_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        RejectReason::new(
            ReasonCode::NotUtf8,
            "$",
            format!("is not UTF-8 (invalid byte at offset {})", e.valid_up_to()),
        )
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        RejectReason::new(
            ReasonCode::InvalidJson,
            "$",
            format!(
                "is not valid JSON: {} at line {} column {}",
                json_error_kind(&e),
                e.line(),
                e.column()
            ),
        )
    })?;
    decode_value(&value, limits, received_at)
}

/// What went wrong in JSON parsing, without quoting the input.
fn json_error_kind(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => "unexpected end of input",
        Category::Syntax => "syntax error",
        Category::Data => "unexpected data",
        Category::Io => "read error",
    }
}

/// Decodes an already-parsed JSON value (see [`decode`]).
pub(crate) fn decode_value(
    value: &Value,
    limits: &DecodeLimits,
    received_at: DateTime<Utc>,
) -> Result<Event, RejectReason> {
    let obj = value.as_object().ok_or_else(|| {
        RejectReason::new(
            ReasonCode::NotAnObject,
            "$",
            format!(
                "must be a JSON object (a CloudEvents envelope), got {}",
                type_name(value)
            ),
        )
    })?;
    let mut r = ObjectReader::new(obj, "");

    let spec = r.string("specversion", StrKind::Name(16))?;
    if spec != "1.0" {
        return Err(r.reject(
            "specversion",
            ReasonCode::UnsupportedSpecversion,
            "must be \"1.0\" (CloudEvents 1.0)",
        ));
    }
    let id = r.string("id", StrKind::Name(MAX_NAME_BYTES))?;
    let source = r.string("source", StrKind::Name(1024))?;
    let event_type = r.string("type", StrKind::Name(MAX_NAME_BYTES))?;
    let schema = SchemaVersion::parse(&event_type)?;
    let time = r.timestamp("time")?;
    check_window(&r, "time", time, limits, received_at)?;
    let subject = r.opt_string("subject", StrKind::Name(MAX_NAME_BYTES))?;
    let dataschema = r.opt_string("dataschema", StrKind::Name(1024))?;
    if let Some(ct) = r.opt_string("datacontenttype", StrKind::Name(MAX_NAME_BYTES))? {
        let media = ct
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if media != "application/json" {
            return Err(r.reject(
                "datacontenttype",
                ReasonCode::UnsupportedContentType,
                "must be application/json when present",
            ));
        }
    }
    if r.opt("data_base64").is_some() {
        return Err(r.reject(
            "data_base64",
            ReasonCode::BinaryData,
            "binary data is not accepted; send the payload as a JSON object in data",
        ));
    }

    let mut extensions = BTreeMap::new();
    for (name, v) in r.unread() {
        if CONTEXT_ATTRIBUTES.contains(&name.as_str()) {
            continue;
        }
        if name.is_empty()
            || name.len() > 20
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(RejectReason::new(
                ReasonCode::InvalidExtensionName,
                "$",
                format!(
                    "extension attribute names must be 1 to 20 lower-case ASCII letters or digits (CloudEvents 1.0); found one of {} bytes that is not",
                    name.len()
                ),
            ));
        }
        match v {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                extensions.insert(name.clone(), v.clone());
            }
            other => {
                return Err(RejectReason::new(
                    ReasonCode::WrongType,
                    name.clone(),
                    format!(
                        "extension attributes must be a string, number or boolean, got {}",
                        type_name(other)
                    ),
                ))
            }
        }
    }

    let data = r.req("data")?;
    let data = data.as_object().ok_or_else(|| {
        RejectReason::new(
            ReasonCode::NotAnObject,
            "data",
            format!("must be a JSON object, got {}", type_name(data)),
        )
    })?;
    let (tags, body, extra) = body::decode_body(schema, data, limits, received_at)?;

    Ok(Event {
        envelope: Envelope {
            id,
            source,
            event_type,
            schema,
            time,
            subject,
            dataschema,
            extensions,
        },
        tags,
        body,
        extra,
    })
}

/// Checks that `t` lies in the skew window around `received_at`.
pub(crate) fn check_window(
    r: &ObjectReader<'_>,
    key: &str,
    t: DateTime<Utc>,
    limits: &DecodeLimits,
    received_at: DateTime<Utc>,
) -> Result<(), RejectReason> {
    let past = chrono::Duration::from_std(limits.max_past).unwrap_or(chrono::Duration::MAX);
    let future = chrono::Duration::from_std(limits.max_future).unwrap_or(chrono::Duration::MAX);
    if received_at
        .checked_sub_signed(past)
        .is_some_and(|lo| t < lo)
    {
        return Err(r.reject(
            key,
            ReasonCode::TooOld,
            format!(
                "is {} before the time of receipt; the limit is {} (ingest.max_past)",
                human(received_at - t),
                humantime::format_duration(limits.max_past)
            ),
        ));
    }
    if received_at
        .checked_add_signed(future)
        .is_some_and(|hi| t > hi)
    {
        return Err(r.reject(
            key,
            ReasonCode::InFuture,
            format!(
                "is {} after the time of receipt; the limit is {} (ingest.max_future)",
                human(t - received_at),
                humantime::format_duration(limits.max_future)
            ),
        ));
    }
    Ok(())
}

fn human(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0).unsigned_abs();
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}
