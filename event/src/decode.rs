//! Bytes to a validated [`Event`]: size, UTF-8, JSON, envelope, then the
//! kind- and version-specific body (upcast to the current version).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::body;
use crate::fields::{ObjectReader, StrKind, MAX_NAME_BYTES};
use crate::json::Json;
use crate::reject::{ReasonCode, RejectReason};
use crate::schema::SchemaVersion;
use crate::{Envelope, Event};

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
    let start = bytes.trim_ascii_start();
    if start.starts_with(b"\xFF\xFE") || start.starts_with(b"\xFE\xFF") {
        return Err(RejectReason::new(
            ReasonCode::NotUtf8,
            "$",
            "is UTF-16 (it starts with a UTF-16 byte-order mark); send UTF-8 JSON",
        ));
    }
    if start.starts_with(b"\xEF\xBB\xBF") {
        return Err(RejectReason::new(
            ReasonCode::ByteOrderMark,
            "$",
            "starts with a UTF-8 byte-order mark (EF BB BF); send the JSON without one",
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        RejectReason::new(
            ReasonCode::NotUtf8,
            "$",
            format!("is not UTF-8 (invalid byte at offset {})", e.valid_up_to()),
        )
    })?;
    let value: Json<'_> = serde_json::from_str(text).map_err(|e| json_reason(&e))?;
    decode_value(&value, limits, received_at)
}

/// Why the JSON parser refused the text, naming the problem and where it is
/// without quoting the input.
fn json_reason(e: &serde_json::Error) -> RejectReason {
    use serde_json::error::Category;
    let message = e.to_string();
    // serde_json's messages for a parse into a `Value` are fixed sentences
    // followed by " at line L column C"; only known ones are passed on.
    let problem = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(p, _)| p);
    let (code, what) = match problem {
        "recursion limit exceeded" => (
            ReasonCode::TooDeep,
            "arrays and objects are nested more than 128 levels deep",
        ),
        "number out of range" => (
            ReasonCode::OutOfRange,
            "a number is too large to represent (beyond ±1.8e308)",
        ),
        "invalid number" => (ReasonCode::InvalidJson, "a number is malformed"),
        "invalid escape" => (ReasonCode::InvalidJson, "a string has an invalid escape"),
        "invalid unicode code point" | "lone leading surrogate in hex escape" => (
            ReasonCode::InvalidJson,
            "a string has an invalid \\u escape (a lone surrogate or a bad code point)",
        ),
        "control character (\\u0000-\\u001F) found while parsing a string" => (
            ReasonCode::InvalidJson,
            "a string holds a raw control character; escape it",
        ),
        "key must be a string" => (ReasonCode::InvalidJson, "an object key is not a string"),
        "trailing comma" => (ReasonCode::InvalidJson, "a trailing comma"),
        "trailing characters" => (
            ReasonCode::InvalidJson,
            "more text follows the JSON value (send one event per record or line)",
        ),
        "expected value" => (ReasonCode::InvalidJson, "a value was expected"),
        _ => (
            ReasonCode::InvalidJson,
            match e.classify() {
                Category::Eof => "unexpected end of input",
                Category::Syntax => "syntax error",
                Category::Data => "unexpected data",
                Category::Io => "read error",
            },
        ),
    };
    RejectReason::new(
        code,
        "$",
        format!(
            "is not valid JSON: {what} at line {} column {}",
            e.line(),
            e.column()
        ),
    )
}

/// Decodes an already-parsed JSON value (see [`decode`]).
fn decode_value(
    value: &Json<'_>,
    limits: &DecodeLimits,
    received_at: DateTime<Utc>,
) -> Result<Event, RejectReason> {
    let obj = value.as_object().ok_or_else(|| {
        RejectReason::new(
            ReasonCode::NotAnObject,
            "$",
            format!(
                "must be a JSON object (a CloudEvents envelope), got {}",
                value.type_name()
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
    for (position, name, v) in r.unread() {
        if CONTEXT_ATTRIBUTES.contains(&name) {
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
                    "extension attribute names must be 1 to 20 lower-case ASCII letters or digits (CloudEvents 1.0); the key at position {position} (keys counted in sorted order; {} bytes long) is not",
                    name.len()
                ),
            ));
        }
        match v {
            Json::Str(_) | Json::Number(_) | Json::Bool(_) => {
                extensions.insert(name.to_owned(), v.to_value());
            }
            other => {
                return Err(RejectReason::new(
                    ReasonCode::WrongType,
                    format!("<key #{position}>"),
                    format!(
                        "the extension attribute at position {position} (keys counted in sorted order) must be a string, number or boolean, got {}",
                        other.type_name()
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
            format!("must be a JSON object, got {}", data.type_name()),
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

/// A duration to the millisecond, so that 1 ms over a limit of 5m reads
/// "5m 1ms", not "5m".
fn human(d: chrono::Duration) -> String {
    let millis = d.num_milliseconds().max(0).unsigned_abs();
    humantime::format_duration(Duration::from_millis(millis)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CallStatus, EventBody, EventKind, Phase, PricingTier, WorkloadKind};
    use serde_json::json;
    use serde_json::Value;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-03T15:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn gpu_v1() -> Value {
        json!({
            "specversion": "1.0", "id": "gpu-1", "source": "https://gpu-pool.acme.example/eu-west-1",
            "type": "dev.tollgate.gpu_usage.v1", "time": "2026-11-03T14:00:00Z",
            "data": {
                "tenant": "acme", "team": "search", "user": "usr_1", "environment": "prod",
                "workload_id": "search-serving", "workload_kind": "realtime_inference",
                "gpu_model": "L4", "gpu_count": 2,
                "interval_start": "2026-11-03T13:00:00Z", "interval_end": "2026-11-03T14:00:00Z",
                "pricing_tier": "reserved", "node": "gpu-eu-01", "region": "eu-west-1"
            }
        })
    }

    fn tool_end_v1() -> Value {
        json!({
            "specversion": "1.0", "id": "call-9-end", "source": "https://mcp-gw.acme.example",
            "type": "dev.tollgate.tool_call.v1", "time": "2026-11-03T14:00:01.250Z",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "data": {
                "tenant": "acme", "team": "search", "user": "usr_1", "environment": "prod",
                "mcp_server": "crm", "tool": "lookup_customer", "phase": "end", "call_id": "call-9",
                "status": "error", "error_class": "rate_limited", "latency_ms": 1250.5,
                "model": "gpt-4o", "input_tokens": 1200, "output_tokens": 80
            }
        })
    }

    fn decode_json(v: &Value) -> Result<Event, RejectReason> {
        decode(
            &serde_json::to_vec(v).unwrap(),
            &DecodeLimits::default(),
            now(),
        )
    }

    fn reason(v: &Value) -> (ReasonCode, String, String) {
        let r = decode_json(v).expect_err("must be refused");
        (r.code, r.field.clone(), r.to_string())
    }

    #[test]
    fn decodes_current_gpu_usage() {
        let e = decode_json(&gpu_v1()).unwrap();
        assert_eq!(e.tags.team, "search");
        let EventBody::GpuUsage(g) = &e.body else {
            panic!("not gpu")
        };
        assert_eq!(g.workload_kind, WorkloadKind::RealtimeInference);
        assert_eq!(g.pricing_tier, PricingTier::Reserved);
        assert_eq!(g.gpu_millis(), 2 * 3_600_000);
        assert!(e.extra.is_empty());
    }

    #[test]
    fn decodes_tool_call_end_with_extension() {
        let e = decode_json(&tool_end_v1()).unwrap();
        let EventBody::ToolCall(c) = &e.body else {
            panic!("not a tool call")
        };
        assert_eq!((c.phase, c.status), (Phase::End, Some(CallStatus::Error)));
        assert_eq!(c.latency_ms, Some(1250.5));
        assert_eq!(c.output_tokens, Some(80));
        assert!(e.envelope.extensions.contains_key("traceparent"));
    }

    #[test]
    fn names_field_and_problem() {
        let mut v = gpu_v1();
        v["data"]["gpu_count"] = json!(0);
        assert_eq!(reason(&v).2, "data.gpu_count: must be 1..=1024, got 0");
        v["data"]["gpu_count"] = json!(1025);
        assert_eq!(reason(&v).2, "data.gpu_count: must be 1..=1024, got 1025");
        let mut v = gpu_v1();
        v["data"].as_object_mut().unwrap().remove("team");
        assert_eq!(reason(&v).2, "data.team: is required");
        let mut v = gpu_v1();
        v["data"]["team"] = Value::Null;
        assert_eq!(reason(&v).0, ReasonCode::MissingField);
    }

    #[test]
    fn upcasts_v0_gpu_seconds_to_an_interval() {
        let v = json!({
            "specversion": "1.0", "id": "old-1", "source": "https://gpu-pool-legacy.acme.example",
            "type": "dev.tollgate.gpu_usage.v0", "time": "2026-11-03T14:00:00Z",
            "data": {
                "org": "acme", "team_id": "search", "user_id": "usr_1", "env": "prod",
                "job_id": "j-1", "kind": "fine_tune", "gpu": "H100", "gpus": 8,
                "started_at": "2026-11-03T13:00:00Z", "gpu_seconds": 28800,
                "tier": "spot", "host": "gpu-eu-07", "region": "eu-west-1"
            }
        });
        let e = decode_json(&v).unwrap();
        assert_eq!(e.envelope.schema.major, 0);
        assert_eq!(e.tags.tenant, "acme");
        let EventBody::GpuUsage(g) = &e.body else {
            panic!("not gpu")
        };
        assert_eq!(g.interval_end.to_rfc3339(), "2026-11-03T14:00:00+00:00");
        assert_eq!((g.gpu_count, g.node.as_str()), (8, "gpu-eu-07"));
        // Errors name the field as the v0 producer spelt it.
        let mut bad = v.clone();
        bad["data"].as_object_mut().unwrap().remove("team_id");
        assert_eq!(reason(&bad).1, "data.team_id");
    }

    #[test]
    fn keeps_unknown_fields_of_a_newer_minor_only() {
        let mut v = gpu_v1();
        v["data"]["carbon_grams"] = json!(12.5);
        assert_eq!(reason(&v).0, ReasonCode::UnknownField);
        v["type"] = json!("dev.tollgate.gpu_usage.v1.4");
        let e = decode_json(&v).unwrap();
        assert_eq!(e.extra.get("carbon_grams"), Some(&json!(12.5)));
        assert_eq!(e.body.kind(), EventKind::GpuUsage);
    }

    #[test]
    fn applies_bounds() {
        let mut v = tool_end_v1();
        v["data"]["latency_ms"] = json!(-1);
        assert_eq!(reason(&v).0, ReasonCode::Negative);
        v["data"]["latency_ms"] = json!("Infinity");
        assert_eq!(reason(&v).0, ReasonCode::NotFinite);
        let mut v = tool_end_v1();
        v["data"]["input_tokens"] = json!(1e300);
        assert_eq!(reason(&v).0, ReasonCode::OutOfRange);
        let mut v = gpu_v1();
        v["data"]["interval_end"] = json!("2026-11-03T12:59:59Z");
        assert_eq!(reason(&v).0, ReasonCode::EndBeforeStart);
        let mut v = gpu_v1();
        v["time"] = json!("2026-11-03T15:06:00Z");
        assert_eq!(reason(&v).0, ReasonCode::InFuture);
        v["time"] = json!("2026-11-03T15:04:00+00:00");
        assert!(decode_json(&v).is_ok(), "inside the skew window");
        let mut v = gpu_v1();
        v["id"] = json!("x".repeat(257));
        assert_eq!(reason(&v).0, ReasonCode::TooLong);
        v["id"] = json!("x".repeat(256));
        assert!(decode_json(&v).is_ok());
    }

    #[test]
    fn claimed_tenant_reads_v1_and_v0_without_validating() {
        use crate::claimed_tenant;
        assert_eq!(
            claimed_tenant(br#"{"data":{"tenant":"acme","team":7}}"#).as_deref(),
            Some("acme")
        );
        assert_eq!(
            claimed_tenant(br#"{"data":{"org":"globex"}}"#).as_deref(),
            Some("globex")
        );
        assert_eq!(claimed_tenant(br#"{"data":{"tenant":"  "}}"#), None);
        assert_eq!(claimed_tenant(b"not json"), None);
    }

    #[test]
    fn size_limit_applies_before_parsing() {
        let limits = DecodeLimits {
            max_event_bytes: 100,
            ..DecodeLimits::default()
        };
        let bytes = serde_json::to_vec(&gpu_v1()).unwrap();
        let r = decode(&bytes, &limits, now()).unwrap_err();
        assert_eq!(r.code, ReasonCode::TooLarge);
        assert!(r.message.contains(&format!("{} bytes", bytes.len())));
    }

    #[test]
    fn whole_numbers_written_as_floats_are_whole() {
        for (n, want) in [(json!(8.0), 8), (json!(1e2), 100), (json!(2.0e0), 2)] {
            let mut v = gpu_v1();
            v["data"]["gpu_count"] = n.clone();
            let e = decode_json(&v).unwrap_or_else(|r| panic!("{n}: {r}"));
            let EventBody::GpuUsage(g) = &e.body else {
                panic!("not gpu")
            };
            assert_eq!(u64::from(g.gpu_count), want);
        }
        let text = serde_json::to_string(&tool_end_v1())
            .unwrap()
            .replace("\"output_tokens\":80", "\"output_tokens\":-0");
        let e = decode(text.as_bytes(), &DecodeLimits::default(), now()).unwrap();
        let EventBody::ToolCall(c) = &e.body else {
            panic!("not a tool call")
        };
        assert_eq!(c.output_tokens, Some(0), "-0 is zero");
        let mut v = gpu_v1();
        v["data"]["gpu_count"] = json!(8.5);
        assert_eq!(reason(&v).0, ReasonCode::NotInteger);
        v["data"]["gpu_count"] = json!(0.0);
        assert_eq!(reason(&v).2, "data.gpu_count: must be 1..=1024, got 0");
        v["data"]["gpu_count"] = json!(4155552671.0);
        let (code, _, text) = reason(&v);
        assert_eq!(code, ReasonCode::OutOfRange);
        assert!(!text.contains("4155552671"), "{text}");
        // A phone number with a decimal point in it is not quoted either.
        v["data"]["gpu_count"] = json!(415.5552671);
        let (code, _, text) = reason(&v);
        assert_eq!(code, ReasonCode::NotInteger);
        assert!(!text.contains("5552671"), "{text}");
    }

    #[test]
    fn json_problems_are_named() {
        let check = |raw: &[u8], code: ReasonCode, words: &str| {
            let r = decode(raw, &DecodeLimits::default(), now()).unwrap_err();
            assert_eq!(r.code, code, "{r}");
            assert!(r.to_string().contains(words), "{r}");
        };
        check(
            br#"{"id": 1e309}"#,
            ReasonCode::OutOfRange,
            "too large to represent",
        );
        let big = format!(r#"{{"id": {}}}"#, "9".repeat(400));
        check(big.as_bytes(), ReasonCode::OutOfRange, "too large");
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        check(deep.as_bytes(), ReasonCode::TooDeep, "128 levels");
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend(serde_json::to_vec(&gpu_v1()).unwrap());
        check(&bom, ReasonCode::ByteOrderMark, "byte-order mark");
        check(b"{\"id\": \"a\xFFb\"}", ReasonCode::NotUtf8, "not UTF-8");
        check(b"\xFF\xFE{\x00}\x00", ReasonCode::NotUtf8, "UTF-16");
        check(
            b"  \xEF\xBB\xBF{}",
            ReasonCode::ByteOrderMark,
            "byte-order mark",
        );
        check(
            br#"{"id": "a\q"}"#,
            ReasonCode::InvalidJson,
            "invalid escape",
        );
        check(
            br#"{"id": "x"} {}"#,
            ReasonCode::InvalidJson,
            "more text follows",
        );
    }

    #[test]
    fn null_counts_as_absent() {
        let mut v = tool_end_v1();
        v["data"]["phase"] = json!("start");
        v["data"]["arguments"] = json!({});
        for k in [
            "status",
            "error_class",
            "latency_ms",
            "output_tokens",
            "output_excerpt",
        ] {
            v["data"][k] = Value::Null;
        }
        v["data"]["model"] = Value::Null;
        let e = decode_json(&v).unwrap_or_else(|r| panic!("{r}"));
        let EventBody::ToolCall(c) = &e.body else {
            panic!("not a tool call")
        };
        assert_eq!((c.status, c.model.as_deref()), (None, None));
    }

    #[test]
    fn times_over_the_limit_by_a_millisecond_say_so() {
        let mut v = gpu_v1();
        v["time"] = json!("2026-11-03T15:05:00.001Z");
        assert_eq!(
            reason(&v).2,
            "time: is 5m 1ms after the time of receipt; the limit is 5m (ingest.max_future)"
        );
    }

    #[test]
    fn identifiers_are_canonical_and_never_pii_or_invisible() {
        for team in ["Search", " search ", "ｓｅａｒｃｈ", "SEARCH"] {
            let mut v = gpu_v1();
            v["data"]["team"] = json!(team);
            v["data"]["tenant"] = json!("ACME ");
            let e = decode_json(&v).unwrap_or_else(|r| panic!("{team:?}: {r}"));
            assert_eq!(
                (e.tags.tenant.as_str(), e.tags.team.as_str()),
                ("acme", "search")
            );
        }
        let mut v = gpu_v1();
        v["data"]["user"] = json!("Usr_1");
        assert_eq!(
            decode_json(&v).unwrap().tags.user,
            "Usr_1",
            "users keep their case"
        );
        for (key, value, code) in [
            ("team", "\u{200B}", ReasonCode::InvisibleCharacters),
            ("team", "sea\u{200D}rch", ReasonCode::InvisibleCharacters),
            ("user", "usr\u{202E}1", ReasonCode::InvisibleCharacters),
            ("team", "   ", ReasonCode::Empty),
            ("user", "alice@example.com", ReasonCode::PiiInIdentifier),
            ("user", "+44 7700 900123", ReasonCode::PiiInIdentifier),
            (
                "workload_id",
                "job for bob@corp.example",
                ReasonCode::PiiInIdentifier,
            ),
        ] {
            let mut v = gpu_v1();
            v["data"][key] = json!(value);
            let (got, field, text) = reason(&v);
            assert_eq!(got, code, "{key}={value:?}: {text}");
            assert_eq!(field, format!("data.{key}"));
            assert!(!text.contains("alice") && !text.contains("7700") && !text.contains("bob"));
        }
        let mut v = gpu_v1();
        v["id"] = json!("\u{FEFF}");
        assert_eq!(reason(&v).0, ReasonCode::InvisibleCharacters);
    }

    #[test]
    fn unknown_keys_are_named_by_position_only() {
        let mut v = gpu_v1();
        v["data"]["alice@example.com"] = json!(1);
        v["data"]["x\ninjected: line"] = json!(2);
        let (code, field, text) = reason(&v);
        assert_eq!(code, ReasonCode::UnknownField);
        assert!(field.starts_with("data.<key #"), "{field}");
        assert!(!text.contains("alice") && !text.contains('\n'), "{text}");
        let mut v = gpu_v1();
        v["bobext"] = json!([1]);
        let (_, field, text) = reason(&v);
        assert!(
            !field.contains("bob") && !text.contains("bob"),
            "{field} {text}"
        );
    }

    #[test]
    fn unknown_keys_are_counted_in_sorted_order_once_each() {
        // Sorted keys of data: environment, gpu_count, gpu_model,
        // interval_end, interval_start, node, pricing_tier, region, team,
        // tenant, user, workload_id, workload_kind; `aaa` comes first and
        // `zzz` last. A repeated key counts once (with its last value).
        let mut text = serde_json::to_string(&gpu_v1()).unwrap();
        text = text.replacen(
            "\"data\":{",
            "\"data\":{\"zzz\":null,\"aaa\":null,\"zzz\":1,\"aaa\":null,",
            1,
        );
        let r = decode(text.as_bytes(), &DecodeLimits::default(), now()).unwrap_err();
        assert_eq!(r.code, ReasonCode::UnknownField);
        assert_eq!(r.field, "data.<key #15>", "{r}");
        // Tens of thousands of keys are refused at once (no pass per key
        // over the others), naming the first that is not null.
        let many: String = (0..40_000).map(|i| format!("\"k{i:05}\":null,")).collect();
        let text = serde_json::to_string(&gpu_v1()).unwrap().replacen(
            "\"data\":{",
            &format!("\"data\":{{{many}\"k99999\":1,"),
            1,
        );
        let limits = DecodeLimits {
            max_event_bytes: 1 << 20,
            ..DecodeLimits::default()
        };
        let r = decode(text.as_bytes(), &limits, now()).unwrap_err();
        assert_eq!(r.field, "data.<key #40006>", "{r}");
    }

    #[test]
    fn a_huge_v0_interval_is_refused_not_a_panic() {
        let limits = DecodeLimits {
            max_interval: Duration::from_secs(u64::MAX / 4),
            max_past: Duration::from_secs(u64::MAX / 4),
            max_future: Duration::from_secs(u64::MAX / 4),
            ..DecodeLimits::default()
        };
        let v = json!({
            "specversion": "1.0", "id": "old-1", "source": "https://legacy.example",
            "type": "dev.tollgate.gpu_usage.v0", "time": "2026-11-03T14:00:00Z",
            "data": {
                "org": "acme", "team_id": "search", "user_id": "usr_1", "env": "prod",
                "job_id": "j-1", "kind": "fine_tune", "gpu": "H100", "gpus": 1,
                "started_at": "2026-11-03T13:00:00Z", "gpu_seconds": 1e21,
                "tier": "spot", "host": "gpu-eu-07", "region": "eu-west-1"
            }
        });
        let r = decode(&serde_json::to_vec(&v).unwrap(), &limits, now()).unwrap_err();
        assert_eq!(r.code, ReasonCode::OutOfRange, "{r}");
        assert_eq!(r.field, "data.gpu_seconds");
    }

    #[test]
    fn reasons_never_quote_user_content() {
        let mut v = tool_end_v1();
        v["data"]["status"] = json!("alice@example.com");
        let (_, _, text) = reason(&v);
        assert!(!text.contains("alice"), "{text}");
        let r = decode(
            b"{\"id\": \"alice@example.com\"",
            &DecodeLimits::default(),
            now(),
        )
        .unwrap_err();
        assert!(!r.to_string().contains("alice"));
    }
}
