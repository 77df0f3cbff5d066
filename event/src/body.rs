//! The `data` object of each kind and version, checked field by field and
//! upcast to the current version. v0 differs from v1 in its field names and
//! in metering GPU time as one `gpu_seconds` number instead of an interval.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::decode::{check_window, DecodeLimits};
use crate::fields::{ObjectReader, StrKind, MAX_NAME_BYTES, MAX_TEXT_BYTES};
use crate::ident::Canon;
use crate::json::{Json, Members};
use crate::reject::{ReasonCode, RejectReason};
use crate::schema::{EventKind, SchemaVersion};
use crate::{CallStatus, EventBody, GpuUsage, Phase, PricingTier, Tags, ToolCall, WorkloadKind};

/// Longest tool call the contract accepts: one day, in milliseconds.
pub const MAX_LATENCY_MS: f64 = 86_400_000.0;
/// Most tokens one tool call may report.
pub const MAX_TOKENS: u64 = 100_000_000;
/// Most GPUs one usage event may report.
pub const MAX_GPU_COUNT: u64 = 1024;

/// The wire names of the tag fields in one schema version.
struct TagNames {
    tenant: &'static str,
    team: &'static str,
    user: &'static str,
    environment: &'static str,
}

const TAGS_V1: TagNames = TagNames {
    tenant: "tenant",
    team: "team",
    user: "user",
    environment: "environment",
};
const TAGS_V0: TagNames = TagNames {
    tenant: "org",
    team: "team_id",
    user: "user_id",
    environment: "env",
};

/// The wire names of the tool-call fields in one schema version.
struct ToolCallNames {
    tags: TagNames,
    mcp_server: &'static str,
    arguments: &'static str,
    output_excerpt: Option<&'static str>,
    error_class: &'static str,
    latency_ms: &'static str,
    input_tokens: &'static str,
    output_tokens: &'static str,
}

const TOOL_CALL_V1: ToolCallNames = ToolCallNames {
    tags: TAGS_V1,
    mcp_server: "mcp_server",
    arguments: "arguments",
    output_excerpt: Some("output_excerpt"),
    error_class: "error_class",
    latency_ms: "latency_ms",
    input_tokens: "input_tokens",
    output_tokens: "output_tokens",
};
const TOOL_CALL_V0: ToolCallNames = ToolCallNames {
    tags: TAGS_V0,
    mcp_server: "server",
    arguments: "args",
    output_excerpt: None,
    error_class: "error",
    latency_ms: "duration_ms",
    input_tokens: "tokens_in",
    output_tokens: "tokens_out",
};

type Decoded = (Tags, EventBody, Map<String, Value>);

/// Decodes `data` of the given schema version into the current model.
pub(crate) fn decode_body(
    schema: SchemaVersion,
    data: &Members<'_>,
    limits: &DecodeLimits,
    received_at: DateTime<Utc>,
) -> Result<Decoded, RejectReason> {
    let mut r = ObjectReader::new(data, "data");
    let (tags, body) = match (schema.kind, schema.major) {
        (EventKind::ToolCall, 0) => tool_call(&mut r, &TOOL_CALL_V0)?,
        (EventKind::ToolCall, _) => tool_call(&mut r, &TOOL_CALL_V1)?,
        (EventKind::GpuUsage, 0) => gpu_usage_v0(&mut r, limits, received_at)?,
        (EventKind::GpuUsage, _) => gpu_usage_v1(&mut r, limits, received_at)?,
    };
    let mut extra = Map::new();
    for (position, key, value) in r.unread() {
        if schema.is_newer_minor() {
            extra.insert(key.to_owned(), value.to_value());
        } else if !matches!(value, Json::Null) {
            // A null counts as absent, whatever the key. The key itself is
            // user content (it may be an e-mail address or hold a newline),
            // so the refusal names it by its position only.
            return Err(RejectReason::new(
                ReasonCode::UnknownField,
                format!("data.<key #{position}>"),
                format!(
                    "the key at position {position} of data (keys counted in sorted order; this one is {} bytes long) is not a field of {}; check the spelling, or send it with a newer minor version in type",
                    key.len(),
                    schema.type_string()
                ),
            ));
        }
    }
    Ok((tags, body, extra))
}

fn tags(r: &mut ObjectReader<'_>, n: &TagNames) -> Result<Tags, RejectReason> {
    Ok(Tags {
        tenant: r.tag(n.tenant, Canon::Folded)?,
        team: r.tag(n.team, Canon::Folded)?,
        user: r.tag(n.user, Canon::Nfkc)?,
        environment: r.tag(n.environment, Canon::Folded)?,
    })
}

fn name(r: &mut ObjectReader<'_>, key: &str) -> Result<String, RejectReason> {
    r.string(key, StrKind::Ident(MAX_NAME_BYTES, Canon::Nfkc))
}

fn opt_name(r: &mut ObjectReader<'_>, key: &str) -> Result<Option<String>, RejectReason> {
    r.opt_string(key, StrKind::Ident(MAX_NAME_BYTES, Canon::Nfkc))
}

fn tool_call(
    r: &mut ObjectReader<'_>,
    n: &ToolCallNames,
) -> Result<(Tags, EventBody), RejectReason> {
    let tags = tags(r, &n.tags)?;
    let mcp_server = name(r, n.mcp_server)?;
    let tool = name(r, "tool")?;
    let phase = r.one_of("phase", Phase::ALL, Phase::as_str)?;
    let call_id = name(r, "call_id")?;
    let trace_id = opt_name(r, "trace_id")?;
    let model = opt_name(r, "model")?;
    let input_tokens = r.opt_integer(n.input_tokens, 0, MAX_TOKENS)?;
    let arguments = r.opt_any(n.arguments);

    let end_only = [
        Some("status"),
        Some(n.error_class),
        Some(n.latency_ms),
        Some(n.output_tokens),
        n.output_excerpt,
    ];
    let (status, error_class, latency_ms, output_tokens, output_excerpt) = match phase {
        Phase::Start => {
            if let Some(key) = end_only.into_iter().flatten().find(|k| r.has(k)) {
                return Err(r.reject(
                    key,
                    ReasonCode::NotAllowed,
                    "is only allowed when phase is end",
                ));
            }
            if arguments.is_none() {
                return Err(r.reject(
                    n.arguments,
                    ReasonCode::MissingField,
                    "is required when phase is start (send {} for a call without arguments)",
                ));
            }
            (None, None, None, None, None)
        }
        Phase::End => {
            if !r.has("status") {
                return Err(r.reject(
                    "status",
                    ReasonCode::MissingField,
                    "is required when phase is end",
                ));
            }
            let status = r.one_of("status", CallStatus::ALL, CallStatus::as_str)?;
            if !r.has(n.latency_ms) {
                return Err(r.reject(
                    n.latency_ms,
                    ReasonCode::MissingField,
                    "is required when phase is end",
                ));
            }
            let latency = r.opt_non_negative(n.latency_ms, MAX_LATENCY_MS)?;
            let error_class = opt_name(r, n.error_class)?;
            match (status, &error_class) {
                (CallStatus::Error, None) => {
                    return Err(r.reject(
                        n.error_class,
                        ReasonCode::MissingField,
                        "is required when status is error",
                    ))
                }
                (CallStatus::Ok, Some(_)) => {
                    return Err(r.reject(
                        n.error_class,
                        ReasonCode::NotAllowed,
                        "is not allowed when status is ok",
                    ))
                }
                _ => {}
            }
            let output_tokens = r.opt_integer(n.output_tokens, 0, MAX_TOKENS)?;
            let excerpt = match n.output_excerpt {
                Some(key) => r.opt_string(key, StrKind::Text(MAX_TEXT_BYTES))?,
                None => None,
            };
            (Some(status), error_class, latency, output_tokens, excerpt)
        }
    };

    Ok((
        tags,
        EventBody::ToolCall(ToolCall {
            mcp_server,
            tool,
            phase,
            call_id,
            trace_id,
            arguments,
            output_excerpt,
            status,
            error_class,
            latency_ms,
            model,
            input_tokens,
            output_tokens,
        }),
    ))
}

/// The GPU fields v0 and v1 share apart from their names.
struct GpuCommon {
    workload_id: String,
    workload_kind: WorkloadKind,
    gpu_model: String,
    gpu_count: u32,
    pricing_tier: PricingTier,
    node: String,
    region: String,
}

fn gpu_common(
    r: &mut ObjectReader<'_>,
    names: [&'static str; 7],
) -> Result<GpuCommon, RejectReason> {
    let [workload_id, kind, model, count, tier, node, region] = names;
    Ok(GpuCommon {
        workload_id: name(r, workload_id)?,
        workload_kind: r.one_of(kind, WorkloadKind::ALL, WorkloadKind::as_str)?,
        gpu_model: name(r, model)?,
        gpu_count: u32::try_from(r.integer(count, 1, MAX_GPU_COUNT)?).unwrap_or(u32::MAX),
        pricing_tier: r.one_of(tier, PricingTier::ALL, PricingTier::as_str)?,
        node: name(r, node)?,
        region: name(r, region)?,
    })
}

fn gpu_usage(c: GpuCommon, start: DateTime<Utc>, end: DateTime<Utc>) -> EventBody {
    EventBody::GpuUsage(GpuUsage {
        workload_id: c.workload_id,
        workload_kind: c.workload_kind,
        gpu_model: c.gpu_model,
        gpu_count: c.gpu_count,
        interval_start: start,
        interval_end: end,
        pricing_tier: c.pricing_tier,
        node: c.node,
        region: c.region,
    })
}

fn check_interval(
    r: &ObjectReader<'_>,
    end_key: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    limits: &DecodeLimits,
) -> Result<(), RejectReason> {
    if end < start {
        return Err(r.reject(
            end_key,
            ReasonCode::EndBeforeStart,
            "must not be before interval_start",
        ));
    }
    let max = chrono::Duration::from_std(limits.max_interval).unwrap_or(chrono::Duration::MAX);
    if end - start > max {
        return Err(r.reject(
            end_key,
            ReasonCode::IntervalTooLong,
            format!(
                "the interval is {} s long; the limit is {} (ingest.max_interval); split it into several events",
                (end - start).num_seconds(),
                humantime::format_duration(limits.max_interval)
            ),
        ));
    }
    Ok(())
}

fn gpu_usage_v1(
    r: &mut ObjectReader<'_>,
    limits: &DecodeLimits,
    received_at: DateTime<Utc>,
) -> Result<(Tags, EventBody), RejectReason> {
    let tags = tags(r, &TAGS_V1)?;
    let common = gpu_common(
        r,
        [
            "workload_id",
            "workload_kind",
            "gpu_model",
            "gpu_count",
            "pricing_tier",
            "node",
            "region",
        ],
    )?;
    let start = r.timestamp("interval_start")?;
    let end = r.timestamp("interval_end")?;
    check_interval(r, "interval_end", start, end, limits)?;
    check_window(r, "interval_start", start, limits, received_at)?;
    check_window(r, "interval_end", end, limits, received_at)?;
    Ok((tags, gpu_usage(common, start, end)))
}

fn gpu_usage_v0(
    r: &mut ObjectReader<'_>,
    limits: &DecodeLimits,
    received_at: DateTime<Utc>,
) -> Result<(Tags, EventBody), RejectReason> {
    let tags = tags(r, &TAGS_V0)?;
    let common = gpu_common(
        r,
        ["job_id", "kind", "gpu", "gpus", "tier", "host", "region"],
    )?;
    let start = r.timestamp("started_at")?;
    if !r.has("gpu_seconds") {
        return Err(r.reject("gpu_seconds", ReasonCode::MissingField, "is required"));
    }
    let max_secs = limits.max_interval.as_secs_f64() * MAX_GPU_COUNT as f64;
    let gpu_seconds = r
        .opt_non_negative("gpu_seconds", max_secs)?
        .unwrap_or_default();
    // v0 metered total GPU-seconds; v1 meters an interval per GPU. The
    // interval is the GPU-seconds spread over the GPUs, to the millisecond.
    let millis = (gpu_seconds * 1000.0 / f64::from(common.gpu_count)).round() as i64;
    let end = chrono::Duration::try_milliseconds(millis)
        .and_then(|d| start.checked_add_signed(d))
        .ok_or_else(|| {
            r.reject(
                "gpu_seconds",
                ReasonCode::OutOfRange,
                "ends the interval after the last representable time",
            )
        })?;
    check_interval(r, "gpu_seconds", start, end, limits)?;
    check_window(r, "started_at", start, limits, received_at)?;
    check_window(r, "gpu_seconds", end, limits, received_at)?;
    Ok((tags, gpu_usage(common, start, end)))
}
