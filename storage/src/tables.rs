//! The four tables as Arrow record batches: `events` (every valid event,
//! redacted), `tool_calls` and `gpu_usage` (typed projections for the
//! ledger) and `dead_letters`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

use tollgate_event::{Event, EventBody, RejectReason};

/// Where a record came from in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaCoords {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// The record's timestamp, if it had one.
    pub timestamp: Option<DateTime<Utc>>,
}

/// A valid event, already redacted, with where it came from.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The redacted event.
    pub event: Event,
    /// The key id that redacted it.
    pub redaction_key_id: String,
    /// Its Kafka coordinates.
    pub kafka: KafkaCoords,
}

/// A record that could not be stored as an event.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its Kafka coordinates.
    pub kafka: KafkaCoords,
    /// The record key, if any (the team, by convention).
    pub key: Option<String>,
    /// Why it was refused.
    pub reason: RejectReason,
    /// The tenant the payload names, or `_unattributed`.
    pub tenant: String,
    /// The payload as redacted text (never the raw bytes).
    pub payload_redacted: String,
    /// The key id that redacted it.
    pub redaction_key_id: String,
    /// Size of the raw payload.
    pub payload_bytes: u64,
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn f(name: &str, dt: DataType, nullable: bool) -> Field {
    Field::new(name, dt, nullable)
}

fn kafka_fields() -> Vec<Field> {
    vec![
        f("kafka_topic", DataType::Utf8, false),
        f("kafka_partition", DataType::Int32, false),
        f("kafka_offset", DataType::Int64, false),
        f("kafka_timestamp", ts_type(), true),
    ]
}

fn tag_fields() -> Vec<Field> {
    vec![
        f("tenant", DataType::Utf8, false),
        f("team", DataType::Utf8, false),
        f("user", DataType::Utf8, false),
        f("environment", DataType::Utf8, false),
    ]
}

/// Schema of `events`.
pub fn events_schema() -> SchemaRef {
    let mut fields = vec![
        f("event_id", DataType::Utf8, false),
        f("source", DataType::Utf8, false),
        f("event_type", DataType::Utf8, false),
        f("kind", DataType::Utf8, false),
        f("schema_major", DataType::UInt32, false),
        f("schema_minor", DataType::UInt32, false),
        f("time", ts_type(), false),
        f("subject", DataType::Utf8, true),
    ];
    fields.extend(tag_fields());
    fields.extend([
        f("payload_json", DataType::Utf8, false),
        f("extensions_json", DataType::Utf8, false),
        f("extra_json", DataType::Utf8, false),
        f("redaction_key_id", DataType::Utf8, false),
    ]);
    fields.extend(kafka_fields());
    Arc::new(Schema::new(fields))
}

/// Schema of `tool_calls`.
pub fn tool_calls_schema() -> SchemaRef {
    let mut fields = vec![
        f("event_id", DataType::Utf8, false),
        f("time", ts_type(), false),
    ];
    fields.extend(tag_fields());
    fields.extend([
        f("mcp_server", DataType::Utf8, false),
        f("tool", DataType::Utf8, false),
        f("phase", DataType::Utf8, false),
        f("call_id", DataType::Utf8, false),
        f("trace_id", DataType::Utf8, true),
        f("status", DataType::Utf8, true),
        f("error_class", DataType::Utf8, true),
        f("latency_ms", DataType::Float64, true),
        f("model", DataType::Utf8, true),
        f("input_tokens", DataType::UInt64, true),
        f("output_tokens", DataType::UInt64, true),
        f("arguments_json", DataType::Utf8, true),
        f("output_excerpt", DataType::Utf8, true),
        f("redaction_key_id", DataType::Utf8, false),
    ]);
    Arc::new(Schema::new(fields))
}

/// Schema of `gpu_usage`.
pub fn gpu_usage_schema() -> SchemaRef {
    let mut fields = vec![
        f("event_id", DataType::Utf8, false),
        f("time", ts_type(), false),
    ];
    fields.extend(tag_fields());
    fields.extend([
        f("workload_id", DataType::Utf8, false),
        f("workload_kind", DataType::Utf8, false),
        f("gpu_model", DataType::Utf8, false),
        f("gpu_count", DataType::UInt32, false),
        f("interval_start", ts_type(), false),
        f("interval_end", ts_type(), false),
        f("gpu_millis", DataType::Int64, false),
        f("pricing_tier", DataType::Utf8, false),
        f("node", DataType::Utf8, false),
        f("region", DataType::Utf8, false),
    ]);
    Arc::new(Schema::new(fields))
}

/// Schema of `dead_letters`.
pub fn dead_letters_schema() -> SchemaRef {
    let mut fields = kafka_fields();
    fields.extend([
        f("record_key", DataType::Utf8, true),
        f("reason_code", DataType::Utf8, false),
        f("field", DataType::Utf8, false),
        f("reason", DataType::Utf8, false),
        f("tenant", DataType::Utf8, false),
        f("payload_redacted", DataType::Utf8, false),
        f("payload_bytes", DataType::UInt64, false),
        f("redaction_key_id", DataType::Utf8, false),
    ]);
    Arc::new(Schema::new(fields))
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn ts_builder(n: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC")
}

struct Kafka {
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: TimestampMicrosecondBuilder,
}

impl Kafka {
    fn new(n: usize) -> Self {
        Self {
            topic: StringBuilder::with_capacity(n, n * 16),
            partition: Int32Builder::with_capacity(n),
            offset: Int64Builder::with_capacity(n),
            timestamp: ts_builder(n),
        }
    }
    fn push(&mut self, k: &KafkaCoords) {
        self.topic.append_value(&k.topic);
        self.partition.append_value(k.partition);
        self.offset.append_value(k.offset);
        self.timestamp.append_option(k.timestamp.map(micros));
    }
    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.topic.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.timestamp.finish()),
        ]
    }
}

fn strings(n: usize) -> StringBuilder {
    StringBuilder::with_capacity(n, n * 16)
}

struct Tags([StringBuilder; 4]);

impl Tags {
    fn new(n: usize) -> Self {
        Self([strings(n), strings(n), strings(n), strings(n)])
    }
    fn push(&mut self, e: &Event) {
        self.0[0].append_value(&e.tags.tenant);
        self.0[1].append_value(&e.tags.team);
        self.0[2].append_value(&e.tags.user);
        self.0[3].append_value(&e.tags.environment);
    }
    fn finish(self) -> Vec<ArrayRef> {
        self.0
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef)
            .collect()
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The `events` rows of `rows`.
pub fn events_batch(rows: &[&StoredEvent]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = rows.len();
    let (mut id, mut source, mut ty, mut kind) = (strings(n), strings(n), strings(n), strings(n));
    let (mut major, mut minor) = (
        UInt32Builder::with_capacity(n),
        UInt32Builder::with_capacity(n),
    );
    let mut time = ts_builder(n);
    let mut subject = strings(n);
    let mut tags = Tags::new(n);
    let (mut payload, mut ext, mut extra, mut key) =
        (strings(n), strings(n), strings(n), strings(n));
    let mut kafka = Kafka::new(n);
    for r in rows {
        let e = &r.event;
        id.append_value(&e.envelope.id);
        source.append_value(&e.envelope.source);
        ty.append_value(&e.envelope.event_type);
        kind.append_value(e.body.kind().as_str());
        major.append_value(e.envelope.schema.major);
        minor.append_value(e.envelope.schema.minor);
        time.append_value(micros(e.envelope.time));
        subject.append_option(e.envelope.subject.as_deref());
        tags.push(e);
        payload.append_value(json(&e.body));
        ext.append_value(json(&e.envelope.extensions));
        extra.append_value(json(&e.extra));
        key.append_value(&r.redaction_key_id);
        kafka.push(&r.kafka);
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(source.finish()),
        Arc::new(ty.finish()),
        Arc::new(kind.finish()),
        Arc::new(major.finish()),
        Arc::new(minor.finish()),
        Arc::new(time.finish()),
        Arc::new(subject.finish()),
    ];
    cols.extend(tags.finish());
    cols.extend([
        Arc::new(payload.finish()) as ArrayRef,
        Arc::new(ext.finish()),
        Arc::new(extra.finish()),
        Arc::new(key.finish()),
    ]);
    cols.extend(kafka.finish());
    RecordBatch::try_new(events_schema(), cols)
}

/// The `tool_calls` rows among `rows`.
pub fn tool_calls_batch(rows: &[&StoredEvent]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let calls: Vec<_> = rows
        .iter()
        .filter_map(|r| match &r.event.body {
            EventBody::ToolCall(c) => Some((*r, c)),
            EventBody::GpuUsage(_) => None,
        })
        .collect();
    let n = calls.len();
    let (mut id, mut time, mut tags) = (strings(n), ts_builder(n), Tags::new(n));
    let (mut server, mut tool, mut phase, mut call_id, mut trace) =
        (strings(n), strings(n), strings(n), strings(n), strings(n));
    let (mut status, mut err, mut model) = (strings(n), strings(n), strings(n));
    let mut latency = Float64Builder::with_capacity(n);
    let (mut tin, mut tout) = (
        UInt64Builder::with_capacity(n),
        UInt64Builder::with_capacity(n),
    );
    let (mut args, mut excerpt, mut key) = (strings(n), strings(n), strings(n));
    for (r, c) in &calls {
        id.append_value(&r.event.envelope.id);
        time.append_value(micros(r.event.envelope.time));
        tags.push(&r.event);
        server.append_value(&c.mcp_server);
        tool.append_value(&c.tool);
        phase.append_value(c.phase.as_str());
        call_id.append_value(&c.call_id);
        trace.append_option(c.trace_id.as_deref());
        status.append_option(c.status.map(|s| s.as_str()));
        err.append_option(c.error_class.as_deref());
        latency.append_option(c.latency_ms);
        model.append_option(c.model.as_deref());
        tin.append_option(c.input_tokens);
        tout.append_option(c.output_tokens);
        args.append_option(c.arguments.as_ref().map(json));
        excerpt.append_option(c.output_excerpt.as_deref());
        key.append_value(&r.redaction_key_id);
    }
    let mut cols: Vec<ArrayRef> = vec![Arc::new(id.finish()), Arc::new(time.finish())];
    cols.extend(tags.finish());
    cols.extend([
        Arc::new(server.finish()) as ArrayRef,
        Arc::new(tool.finish()),
        Arc::new(phase.finish()),
        Arc::new(call_id.finish()),
        Arc::new(trace.finish()),
        Arc::new(status.finish()),
        Arc::new(err.finish()),
        Arc::new(latency.finish()),
        Arc::new(model.finish()),
        Arc::new(tin.finish()),
        Arc::new(tout.finish()),
        Arc::new(args.finish()),
        Arc::new(excerpt.finish()),
        Arc::new(key.finish()),
    ]);
    RecordBatch::try_new(tool_calls_schema(), cols)
}

/// The `gpu_usage` rows among `rows`.
pub fn gpu_usage_batch(rows: &[&StoredEvent]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let usage: Vec<_> = rows
        .iter()
        .filter_map(|r| match &r.event.body {
            EventBody::GpuUsage(g) => Some((*r, g)),
            EventBody::ToolCall(_) => None,
        })
        .collect();
    let n = usage.len();
    let (mut id, mut time, mut tags) = (strings(n), ts_builder(n), Tags::new(n));
    let (mut workload, mut kind, mut model) = (strings(n), strings(n), strings(n));
    let mut count = UInt32Builder::with_capacity(n);
    let (mut start, mut end) = (ts_builder(n), ts_builder(n));
    let mut millis = Int64Builder::with_capacity(n);
    let (mut tier, mut node, mut region) = (strings(n), strings(n), strings(n));
    for (r, g) in &usage {
        id.append_value(&r.event.envelope.id);
        time.append_value(micros(r.event.envelope.time));
        tags.push(&r.event);
        workload.append_value(&g.workload_id);
        kind.append_value(g.workload_kind.as_str());
        model.append_value(&g.gpu_model);
        count.append_value(g.gpu_count);
        start.append_value(micros(g.interval_start));
        end.append_value(micros(g.interval_end));
        millis.append_value(g.gpu_millis());
        tier.append_value(g.pricing_tier.as_str());
        node.append_value(&g.node);
        region.append_value(&g.region);
    }
    let mut cols: Vec<ArrayRef> = vec![Arc::new(id.finish()), Arc::new(time.finish())];
    cols.extend(tags.finish());
    cols.extend([
        Arc::new(workload.finish()) as ArrayRef,
        Arc::new(kind.finish()),
        Arc::new(model.finish()),
        Arc::new(count.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(millis.finish()),
        Arc::new(tier.finish()),
        Arc::new(node.finish()),
        Arc::new(region.finish()),
    ]);
    RecordBatch::try_new(gpu_usage_schema(), cols)
}

/// The `dead_letters` rows of `rows`.
pub fn dead_letters_batch(rows: &[&DeadLetter]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = rows.len();
    let mut kafka = Kafka::new(n);
    let (mut key, mut code, mut field, mut reason, mut tenant, mut payload, mut kid) = (
        strings(n),
        strings(n),
        strings(n),
        strings(n),
        strings(n),
        strings(n),
        strings(n),
    );
    let mut size = UInt64Builder::with_capacity(n);
    for d in rows {
        kafka.push(&d.kafka);
        key.append_option(d.key.as_deref());
        code.append_value(d.reason.code.as_str());
        field.append_value(&d.reason.field);
        reason.append_value(&d.reason.message);
        tenant.append_value(&d.tenant);
        payload.append_value(&d.payload_redacted);
        size.append_value(d.payload_bytes);
        kid.append_value(&d.redaction_key_id);
    }
    let mut cols = kafka.finish();
    cols.extend([
        Arc::new(key.finish()) as ArrayRef,
        Arc::new(code.finish()),
        Arc::new(field.finish()),
        Arc::new(reason.finish()),
        Arc::new(tenant.finish()),
        Arc::new(payload.finish()),
        Arc::new(size.finish()),
        Arc::new(kid.finish()),
    ]);
    RecordBatch::try_new(dead_letters_schema(), cols)
}

/// The (tenant, source, event_id) keys and event times of an `events`
/// Parquet file, reading only those four columns.
pub(crate) fn event_keys(
    bytes: bytes::Bytes,
) -> Result<Vec<(super::EventKey, DateTime<Utc>)>, parquet::errors::ParquetError> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampMicrosecondType;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ProjectionMask;

    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let wanted = ["tenant", "source", "event_id", "time"];
    let mask = ProjectionMask::columns(builder.parquet_schema(), wanted);
    let reader = builder.with_projection(mask).build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch?;
        let missing =
            |name: &str| parquet::errors::ParquetError::General(format!("no {name} column"));
        let text = |name: &'static str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| missing(name))
        };
        let (tenant, source, id) = (text("tenant")?, text("source")?, text("event_id")?);
        let time = batch
            .column_by_name("time")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| missing("time"))?;
        for i in 0..batch.num_rows() {
            if time.is_null(i) {
                continue;
            }
            let t = DateTime::from_timestamp_micros(time.value(i)).unwrap_or_default();
            out.push((
                super::event_key(tenant.value(i), source.value(i), id.value(i)),
                t,
            ));
        }
    }
    Ok(out)
}
