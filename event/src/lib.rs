//! Tollgate's event contract: CloudEvents 1.0 JSON envelopes carrying tool
//! calls and GPU usage, versioned in `type`. See `docs/events.md` for the
//! wire format.
//!
//! **Owns** decoding ([`decode`]: bytes in, a validated [`Event`] or a
//! [`RejectReason`] naming the field out; it never panics), upcasting older
//! major versions, validation against [`DecodeLimits`], identifier
//! normalisation, and the reason codes of refusals.
//!
//! **May touch** nothing outside the process: no Kafka, no object store, no
//! clock other than the time of receipt it is given. It depends on no other
//! Tollgate crate, so the fuzz targets build it without librdkafka or
//! DataFusion.

mod body;
mod decode;
mod fields;
mod ident;
mod json;
mod reject;
mod schema;
mod trace;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use decode::{decode, DecodeLimits};
pub use reject::{ReasonCode, RejectReason};
pub use schema::{EventKind, SchemaVersion, CURRENT_MAJOR, CURRENT_MINOR, TYPE_PREFIX};
pub use trace::trace_id;

/// The tenant a payload names in `data.tenant` (or v0's `data.org`), read
/// without validating anything else: for filing a refused record under its
/// tenant's redaction key. It is made canonical as a valid event's tenant
/// is (so `Acme` is filed under `acme`); `None` when it names none usable,
/// or one the contract would refuse (invisible characters, PII).
pub fn claimed_tenant(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let d = v.get("data")?;
    let t = d.get("tenant").or_else(|| d.get("org"))?.as_str()?;
    if t.len() > 128 {
        return None;
    }
    let t = ident::canonical(t, ident::Canon::Folded);
    let usable = !t.is_empty()
        && t.len() <= 128
        && !t.chars().any(|c| c.is_control() || ident::is_invisible(c))
        && ident::pii_in(&t).is_none();
    usable.then(|| t.into_owned())
}

/// A tenant, team or environment name in the canonical form events store
/// it in (Unicode NFKC, trimmed, lower case): for checking that names in
/// the configuration can match events.
pub fn canonical_tag(name: &str) -> String {
    ident::canonical(name, ident::Canon::Folded).into_owned()
}

/// The tenant a refused record is filed under when it names none.
pub const UNATTRIBUTED_TENANT: &str = "_unattributed";

/// A decoded, validated event in the current schema (v1), whatever version
/// its producer wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The CloudEvents envelope.
    pub envelope: Envelope,
    /// The mandatory cost-allocation tags.
    pub tags: Tags,
    /// The kind-specific payload.
    pub body: EventBody,
    /// Fields of a newer minor version that this build does not know; kept
    /// verbatim so that nothing the producer sent is dropped.
    pub extra: Map<String, Value>,
}

/// The CloudEvents 1.0 context attributes Tollgate reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    /// `id`: unique per `source`; the dedupe key with tenant and source.
    pub id: String,
    /// `source`: the emitting gateway or worker pool (a URI reference).
    pub source: String,
    /// `type` exactly as sent, such as `dev.tollgate.gpu_usage.v1`.
    pub event_type: String,
    /// The schema version the producer wrote (before any upcast).
    pub schema: SchemaVersion,
    /// `time`: when the occurrence happened, in UTC.
    pub time: DateTime<Utc>,
    /// `subject`, if sent.
    pub subject: Option<String>,
    /// `dataschema`, if sent.
    pub dataschema: Option<String>,
    /// Extension attributes (such as `traceparent`), kept as sent.
    pub extensions: BTreeMap<String, Value>,
}

/// The four tags every event must carry; an event without them is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Tags {
    /// The organisation (tenant) that owns the event.
    pub tenant: String,
    /// The team within the tenant that pays for it.
    pub team: String,
    /// The user (an identifier, not user content) who caused it.
    pub user: String,
    /// The environment, such as `prod` or `staging`.
    pub environment: String,
}

/// The payload of an event, by kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// An MCP tool call, one event when it starts and one when it ends.
    ToolCall(ToolCall),
    /// GPU time used by a workload over an interval.
    GpuUsage(GpuUsage),
}

impl EventBody {
    /// The kind of this payload.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::ToolCall(_) => EventKind::ToolCall,
            Self::GpuUsage(_) => EventKind::GpuUsage,
        }
    }
}

/// Whether a tool-call event was written before or after the tool ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Written before the tool runs, so the attempt is on record even if it never returns.
    Start,
    /// Written after the tool returned (or failed).
    End,
}

/// How a tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// The tool returned a result.
    Ok,
    /// The tool failed; `error_class` says how.
    Error,
    /// The gateway gave up waiting.
    Timeout,
    /// A policy refused the call.
    Denied,
}

/// An MCP tool call event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    /// The MCP server that serves the tool.
    pub mcp_server: String,
    /// The tool's name.
    pub tool: String,
    /// Start or end.
    pub phase: Phase,
    /// Joins the start and end events of one call.
    pub call_id: String,
    /// The distributed trace the call belongs to, if known.
    pub trace_id: Option<String>,
    /// The call's arguments: user content, redacted before storage.
    pub arguments: Option<Value>,
    /// An excerpt of the tool's output (end only): user content, redacted before storage.
    pub output_excerpt: Option<String>,
    /// How the call ended (end only).
    pub status: Option<CallStatus>,
    /// A short error class such as `rate_limited` (end with status `error` only).
    pub error_class: Option<String>,
    /// Wall time of the call in milliseconds (end only).
    pub latency_ms: Option<f64>,
    /// The model that made the call, if any.
    pub model: Option<String>,
    /// Input tokens the model consumed for the call.
    pub input_tokens: Option<u64>,
    /// Output tokens the model produced (end only).
    pub output_tokens: Option<u64>,
}

/// What a GPU workload is for; `Idle` is reserved capacity nobody used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    /// Training or fine-tuning a model.
    FineTune,
    /// Offline inference over a batch.
    BatchInference,
    /// Serving online requests.
    RealtimeInference,
    /// An interactive notebook.
    Notebook,
    /// Allocated to the team but unused.
    Idle,
}

/// How the GPU capacity is bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PricingTier {
    /// Interruptible capacity.
    Spot,
    /// Pay as you go.
    OnDemand,
    /// Committed capacity.
    Reserved,
}

/// A GPU usage event: `gpu_count` GPUs of one model used over an interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuUsage {
    /// The workload (job, service, notebook) the GPUs ran.
    pub workload_id: String,
    /// What the workload is for.
    pub workload_kind: WorkloadKind,
    /// The GPU model, such as `H100`.
    pub gpu_model: String,
    /// How many GPUs, 1..=1024.
    pub gpu_count: u32,
    /// Start of the metered interval.
    pub interval_start: DateTime<Utc>,
    /// End of the metered interval (not before the start).
    pub interval_end: DateTime<Utc>,
    /// How the capacity is bought.
    pub pricing_tier: PricingTier,
    /// The node the GPUs are on.
    pub node: String,
    /// The region of the node.
    pub region: String,
}

impl GpuUsage {
    /// GPU-milliseconds in the interval (`gpu_count` x its length).
    pub fn gpu_millis(&self) -> i64 {
        (self.interval_end - self.interval_start).num_milliseconds() * i64::from(self.gpu_count)
    }
}

macro_rules! wire_names {
    ($ty:ty { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in wire order.
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),+];

            /// The name on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $(<$ty>::$variant => $name),+ }
            }

            /// The value with this wire name, if any.
            pub fn from_wire(s: &str) -> Option<Self> {
                match s { $($name => Some(<$ty>::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_names!(Phase { Start => "start", End => "end" });
wire_names!(CallStatus { Ok => "ok", Error => "error", Timeout => "timeout", Denied => "denied" });
wire_names!(WorkloadKind {
    FineTune => "fine_tune",
    BatchInference => "batch_inference",
    RealtimeInference => "realtime_inference",
    Notebook => "notebook",
    Idle => "idle",
});
wire_names!(PricingTier { Spot => "spot", OnDemand => "on_demand", Reserved => "reserved" });
