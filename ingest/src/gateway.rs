//! The HTTP gateway (`POST /v1/events`) for producers that cannot speak
//! Kafka, and the `/metrics` endpoint `tollgate run` serves.
//!
//! A request carries one CloudEvent or a JSON array of them. Every event is
//! validated first; if any is refused, the answer is `400` with a reason per
//! refused event and nothing is produced. Then each tenant's rate limit (a
//! token bucket per tenant) is charged; `429` with `Retry-After` if one is
//! exhausted. Then every event is produced, keyed by team, with the exact
//! bytes the client sent, and the answer is `202` only once the broker
//! acknowledged all of them (`acks=all`). If the broker fails, the answer is
//! `503`; some events may have been produced, and a retry of the same
//! request is safe: the pipeline drops resent event ids.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::kafka::ObservedContext;
use tollgate_event::{decode, DecodeLimits};
use tollgate_pipeline::metrics::{Metrics, ReasonLabel, StatusLabel, CONTENT_TYPE};

/// A token bucket: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Events per second, sustained.
    pub per_second: u32,
    /// Events allowed at once (the bucket's size); also the most events of
    /// one tenant a single request may carry.
    pub burst: u32,
}

/// `[gateway]`: the HTTP gateway.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address to listen on.
    pub listen: String,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most events in one request.
    pub max_events_per_request: usize,
    /// How long to wait for the broker's acknowledgement before answering 503.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// How long a client may take to send a request's headers (and how long
    /// an idle kept-alive connection is held); the connection is closed after.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body; `408` after.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// The rate limit of every tenant without its own.
    pub rate_limit: RateLimit,
    /// Rate limits of named tenants.
    pub tenants: BTreeMap<String, RateLimit>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8088".into(),
            max_body_bytes: 8 * 1024 * 1024,
            max_events_per_request: 5_000,
            ack_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            rate_limit: RateLimit {
                per_second: 2_000,
                burst: 10_000,
            },
            tenants: BTreeMap::new(),
        }
    }
}

impl GatewayConfig {
    /// Checks the limits are usable.
    pub fn check(&self) -> Result<(), String> {
        let all = std::iter::once(("gateway.rate_limit".to_string(), &self.rate_limit)).chain(
            self.tenants
                .iter()
                .map(|(t, l)| (format!("gateway.tenants.{t}"), l)),
        );
        for (name, l) in all {
            if l.per_second == 0 || l.burst == 0 {
                return Err(format!("{name}: per_second and burst must be at least 1"));
            }
        }
        if self.max_events_per_request == 0 {
            return Err("gateway.max_events_per_request must be at least 1".into());
        }
        for (name, d) in [
            ("gateway.header_timeout", self.header_timeout),
            ("gateway.body_timeout", self.body_timeout),
            ("gateway.ack_timeout", self.ack_timeout),
        ] {
            if d.is_zero() || d > Duration::from_secs(3600) {
                return Err(format!("{name} must be more than 0 and at most 1h"));
            }
        }
        Ok(())
    }
}

/// The gateway's state: the producer, the limits and one bucket per tenant.
pub struct Gateway {
    producer: FutureProducer<ObservedContext>,
    topic: String,
    limits: DecodeLimits,
    config: GatewayConfig,
    buckets: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
    metrics: Arc<Metrics>,
}

impl Gateway {
    /// A gateway that produces to `topic`.
    pub fn new(
        producer: FutureProducer<ObservedContext>,
        topic: &str,
        limits: DecodeLimits,
        config: GatewayConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            producer,
            topic: topic.to_string(),
            limits,
            config,
            buckets: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn bucket(&self, tenant: &str) -> Arc<DefaultDirectRateLimiter> {
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        buckets
            .entry(tenant.to_string())
            .or_insert_with(|| {
                let l = self
                    .config
                    .tenants
                    .get(tenant)
                    .copied()
                    .unwrap_or(self.config.rate_limit);
                let quota =
                    Quota::per_second(NonZeroU32::new(l.per_second).unwrap_or(NonZeroU32::MIN))
                        .allow_burst(NonZeroU32::new(l.burst).unwrap_or(NonZeroU32::MIN));
                Arc::new(RateLimiter::direct(quota))
            })
            .clone()
    }

    /// The producer, to flush at shutdown.
    pub fn producer(&self) -> &FutureProducer<ObservedContext> {
        &self.producer
    }
}

/// The gateway's routes: `POST /v1/events`, `GET /metrics`, `GET /healthz`,
/// `GET /readyz`.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let limit = gateway.config.max_body_bytes;
    let metrics = gateway.metrics.clone();
    Router::new()
        .route("/v1/events", post(post_events))
        // The handler bounds the body itself (size from Content-Length
        // first, then time); this keeps axum's own limit in step.
        .layer(DefaultBodyLimit::max(limit))
        .with_state(gateway)
        .merge(metrics_router(metrics))
}

/// `GET /metrics` (OpenMetrics text), `GET /healthz` (the process
/// answers) and `GET /readyz` (503 with the reason while the broker or the
/// storage fails its probe).
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move {
                ([(header::CONTENT_TYPE, CONTENT_TYPE)], m.render())
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(m): State<Arc<Metrics>>| async move {
                match m.readiness() {
                    Ok(()) => (StatusCode::OK, "ready\n".to_string()),
                    Err(why) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {why}\n"),
                    ),
                }
            }),
        )
        .with_state(metrics)
}

/// One refused event of a request.
#[derive(Debug, Serialize)]
struct Refused {
    index: usize,
    code: &'static str,
    field: String,
    message: String,
}

fn answer(m: &Metrics, status: StatusCode, body: Value) -> Response {
    m.http_responses
        .get_or_create(&StatusLabel {
            status: status.as_u16().to_string(),
        })
        .inc();
    (status, Json(body)).into_response()
}

fn refuse(m: &Metrics, reason: &str, n: u64) {
    m.http_events_refused
        .get_or_create(&ReasonLabel {
            reason: reason.to_string(),
        })
        .inc_by(n);
}

/// The body of a request, bounded in size and time: `413` from the
/// `Content-Length` header before anything is read, `413` when a body
/// without one grows past the limit, `408` when it is not all there within
/// `gateway.body_timeout`.
async fn read_body(gw: &Gateway, headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let m = &gw.metrics;
    let limit = gw.config.max_body_bytes;
    let too_large = |what: String| {
        refuse(m, "too_large", 1);
        answer(
            m,
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"accepted": 0, "error": format!("body: {what}; the limit is {limit} bytes (gateway.max_body_bytes)")}),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().parse::<u64>());
    match declared {
        Some(Ok(n)) if n > limit as u64 => {
            return Err(too_large(format!("Content-Length is {n} bytes")))
        }
        Some(Err(_)) => {
            refuse(m, "bad_request", 1);
            return Err(answer(
                m,
                StatusCode::BAD_REQUEST,
                json!({"accepted": 0, "error": "Content-Length: not a number of bytes"}),
            ));
        }
        _ => {}
    }
    match tokio::time::timeout(gw.config.body_timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if over {
                Err(too_large("the body grew past the limit".into()))
            } else {
                refuse(m, "bad_request", 1);
                Err(answer(
                    m,
                    StatusCode::BAD_REQUEST,
                    json!({"accepted": 0, "error": "body: the connection failed while it was read"}),
                ))
            }
        }
        Err(_) => {
            refuse(m, "timeout", 1);
            Err(answer(
                m,
                StatusCode::REQUEST_TIMEOUT,
                json!({"accepted": 0, "error": format!(
                    "body: not received within {} (gateway.body_timeout)",
                    humantime::format_duration(gw.config.body_timeout)
                )}),
            ))
        }
    }
}

async fn post_events(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    let m = &gw.metrics;
    let body = match read_body(&gw, &headers, body).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    let bad = |message: String| {
        refuse(m, "bad_request", 1);
        answer(
            m,
            StatusCode::BAD_REQUEST,
            json!({"accepted": 0, "error": message}),
        )
    };
    let text = body.trim_ascii_start();
    if text.starts_with(b"\xEF\xBB\xBF") {
        return bad(
            "body: starts with a UTF-8 byte-order mark (EF BB BF); send the JSON without one"
                .into(),
        );
    }
    if let Err(e) = std::str::from_utf8(&body) {
        return bad(format!(
            "body: is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ));
    }
    // One event, or an array of them; each kept as the bytes the client sent.
    let is_array = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'[');
    let raws: Vec<&RawValue> = if is_array {
        match serde_json::from_slice::<Vec<&RawValue>>(&body) {
            Ok(v) => v,
            Err(e) => return bad(format!("body: not a JSON array of events: {e}")),
        }
    } else {
        match serde_json::from_slice::<&RawValue>(&body) {
            Ok(v) => vec![v],
            Err(e) => return bad(format!("body: not a JSON event or array of events: {e}")),
        }
    };
    if raws.is_empty() {
        return bad("body: the array holds no event".into());
    }
    if raws.len() > gw.config.max_events_per_request {
        return bad(format!(
            "body: {} events in one request; the limit is {} (gateway.max_events_per_request)",
            raws.len(),
            gw.config.max_events_per_request
        ));
    }

    let now = Utc::now();
    let mut refused = Vec::new();
    let mut records = Vec::with_capacity(raws.len());
    for (index, raw) in raws.iter().enumerate() {
        let bytes = raw.get().as_bytes();
        match decode(bytes, &gw.limits, now) {
            Ok(event) => records.push((event.tags.tenant, event.tags.team, bytes)),
            Err(r) => refused.push(Refused {
                index,
                code: r.code.as_str(),
                field: r.field,
                message: r.message,
            }),
        }
    }
    if !refused.is_empty() {
        for r in &refused {
            refuse(m, r.code, 1);
            tracing::info!(
                index = r.index,
                reason = r.code,
                field = %r.field,
                trace_id = tollgate_event::trace_id(raws[r.index].get().as_bytes()).unwrap_or_default(),
                "gateway: event refused"
            );
        }
        return answer(
            m,
            StatusCode::BAD_REQUEST,
            json!({
                "accepted": 0,
                "error": format!("{} of {} events refused; nothing was produced", refused.len(), raws.len()),
                "refused": refused,
            }),
        );
    }

    // Charge each tenant's bucket with its events in this request.
    let mut per_tenant: BTreeMap<&str, u32> = BTreeMap::new();
    for (tenant, _, _) in &records {
        *per_tenant.entry(tenant.as_str()).or_default() += 1;
    }
    for (tenant, n) in per_tenant {
        let bucket = gw.bucket(tenant);
        let verdict = NonZeroU32::new(n).map(|n| bucket.check_n(n));
        let (wait, message) = match verdict {
            None | Some(Ok(Ok(()))) => continue,
            Some(Ok(Err(not_until))) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                (
                    wait,
                    format!("tenant {tenant}: rate limit exceeded; retry after {} ms", wait.as_millis()),
                )
            }
            Some(Err(capacity)) => (
                Duration::from_secs(1),
                format!("tenant {tenant}: {n} events in one request exceed its burst ({capacity}); split the request"),
            ),
        };
        refuse(m, "rate_limited", records.len() as u64);
        let mut r = answer(
            m,
            StatusCode::TOO_MANY_REQUESTS,
            json!({"accepted": 0, "error": message, "tenant": tenant}),
        );
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }

    let sends = records.iter().map(|(_, team, bytes)| {
        gw.producer.send(
            FutureRecord::to(&gw.topic)
                .key(team.as_str())
                .payload(*bytes),
            gw.config.ack_timeout,
        )
    });
    let results = futures::future::join_all(sends).await;
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|(e, _)| e.to_string()))
        .collect();
    if let Some(first) = failed.first() {
        tracing::error!(failed = failed.len(), error = %first, "gateway: the broker did not acknowledge");
        return answer(
            m,
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "accepted": records.len() - failed.len(),
                "error": format!("kafka: {} of {} events not acknowledged ({first}); retrying the request is safe (resent ids are dropped)", failed.len(), records.len()),
            }),
        );
    }
    m.http_events_accepted.inc_by(records.len() as u64);
    answer(m, StatusCode::ACCEPTED, json!({"accepted": records.len()}))
}
