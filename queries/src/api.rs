//! `tollgate serve`'s HTTP API (axum). Every route is declared once in
//! [`ROUTES`], with the permission it needs; the router and the OpenAPI
//! document are both built from that table, so an endpoint cannot exist
//! without a declared permission. Each `/v1` request is authenticated
//! (401 with the reason), authorised (403 with the reason), run in the
//! principal's scoped session, and written to the query audit before the
//! answer leaves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use tollgate_alerts::admission::{decide, find, AdmissionRequest};
use tollgate_storage::Storage;

use crate::auth::Authenticator;
use crate::encode::{encode, Format};
use crate::principal::{Permission, Principal};
use crate::reader::{Reader, ReportOutput};
use crate::request::{audited, Denied};
use crate::scope::{TableScope, TABLES};
use crate::sql::{QueryError, QueryResult};

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Chargeback statement.
    Chargeback,
    /// Spend per day.
    Spend,
    /// Quota burn.
    Quota,
    /// Anomalies.
    Anomalies,
    /// Tool latency.
    ToolLatency,
    /// Ad-hoc SQL.
    Sql,
    /// The quota decision for a team.
    Admission,
    /// Verify the log.
    Verify,
    /// The tables and views one may query.
    Tables,
    /// The caller's principal.
    WhoAmI,
    /// This API's OpenAPI document.
    OpenApi,
    /// Liveness.
    Health,
    /// Readiness.
    Ready,
    /// Prometheus metrics.
    Metrics,
}

/// A declared route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path.
    pub path: &'static str,
    /// What it needs; `None` only for the unauthenticated service routes.
    pub permission: Option<Permission>,
    /// Whether it answers with tenant rows (the isolation suite checks those).
    pub data: bool,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// Query parameters: name, description.
    pub params: &'static [(&'static str, &'static str)],
    /// The handler.
    pub endpoint: Endpoint,
}

const FORMAT: (&str, &str) = ("format", "json (default), csv, arrow or parquet");

/// Every route of the API.
pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/v1/reports/chargeback",
        permission: Some(Permission::Reports),
        data: true,
        summary:
            "Chargeback statement of a month: a line per team with breakdowns; closed months frozen",
        params: &[
            ("month", "YYYY-MM (required)"),
            (
                "tz",
                "IANA zone the month is cut in (default ledger.timezone)",
            ),
            FORMAT,
        ],
        endpoint: Endpoint::Chargeback,
    },
    Route {
        method: "GET",
        path: "/v1/reports/spend",
        permission: Some(Permission::Reports),
        data: true,
        summary: "Spend per UTC day and team over [from, to), optionally by a usage dimension",
        params: &[
            ("from", "RFC 3339 or YYYY-MM-DD (required)"),
            ("to", "RFC 3339 or YYYY-MM-DD (required)"),
            (
                "by",
                "user, environment, workload_kind, gpu_model, pricing_tier, tool or model",
            ),
            FORMAT,
        ],
        endpoint: Endpoint::Spend,
    },
    Route {
        method: "GET",
        path: "/v1/reports/quota",
        permission: Some(Permission::Reports),
        data: true,
        summary: "Quota burn, status and forecast of each team this month",
        params: &[
            ("at", "RFC 3339 (default now)"),
            (
                "tz",
                "IANA zone the month is cut in (default ledger.timezone)",
            ),
            FORMAT,
        ],
        endpoint: Endpoint::Quota,
    },
    Route {
        method: "GET",
        path: "/v1/reports/anomalies",
        permission: Some(Permission::Reports),
        data: true,
        summary:
            "Teams whose last 24 hours cost over the anomaly factor times their window average",
        params: &[("at", "RFC 3339 (default now)"), FORMAT],
        endpoint: Endpoint::Anomalies,
    },
    Route {
        method: "GET",
        path: "/v1/reports/tool-latency",
        permission: Some(Permission::Reports),
        data: true,
        summary: "Tool-call latency P50/P95/P99 and error rate per tenant and tool over [from, to)",
        params: &[
            ("from", "RFC 3339 or YYYY-MM-DD (required)"),
            ("to", "RFC 3339 or YYYY-MM-DD (required)"),
            FORMAT,
        ],
        endpoint: Endpoint::ToolLatency,
    },
    Route {
        method: "POST",
        path: "/v1/sql",
        permission: Some(Permission::Sql),
        data: true,
        summary: "One SQL query (body {\"sql\": \"SELECT ...\"}) over the caller's rows",
        params: &[FORMAT],
        endpoint: Endpoint::Sql,
    },
    Route {
        method: "POST",
        path: "/v1/admission",
        permission: Some(Permission::Reports),
        data: true,
        summary: "May one of the caller's teams start a workload? Body {\"team\": ..., \"tenant\"?, \"at\"?, \"workload\"?}; {\"allow\", \"decision\", \"reason\", \"quota\"}: a team at 100 % of its monthly quota is denied",
        params: &[],
        endpoint: Endpoint::Admission,
    },
    Route {
        method: "GET",
        path: "/v1/verify",
        permission: Some(Permission::Verify),
        data: false,
        summary: "Integrity verification of the commit chains and files (tollgate verify)",
        params: &[],
        endpoint: Endpoint::Verify,
    },
    Route {
        method: "GET",
        path: "/v1/tables",
        permission: Some(Permission::Reports),
        data: false,
        summary: "The tables and views the caller can query, with their columns",
        params: &[],
        endpoint: Endpoint::Tables,
    },
    Route {
        method: "GET",
        path: "/v1/whoami",
        permission: Some(Permission::Reports),
        data: false,
        summary: "The caller's principal: subject, organisation, team, roles",
        params: &[],
        endpoint: Endpoint::WhoAmI,
    },
    Route {
        method: "GET",
        path: "/openapi.json",
        permission: None,
        data: false,
        summary: "This document",
        params: &[],
        endpoint: Endpoint::OpenApi,
    },
    Route {
        method: "GET",
        path: "/healthz",
        permission: None,
        data: false,
        summary: "Liveness",
        params: &[],
        endpoint: Endpoint::Health,
    },
    Route {
        method: "GET",
        path: "/readyz",
        permission: None,
        data: false,
        summary: "Readiness: the storage answers and the credentials configuration loads",
        params: &[],
        endpoint: Endpoint::Ready,
    },
    Route {
        method: "GET",
        path: "/metrics",
        permission: None,
        data: false,
        summary: "Prometheus metrics",
        params: &[],
        endpoint: Endpoint::Metrics,
    },
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabel {
    endpoint: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

/// The API's metrics.
pub struct ApiMetrics {
    registry: Registry,
    requests: Family<RequestLabel, Counter>,
    latency: Family<EndpointLabel, Histogram>,
}

impl ApiMetrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("tollgate");
        let requests = Family::<RequestLabel, Counter>::default();
        let latency = Family::<EndpointLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "query_requests",
            "API requests by endpoint and outcome (ok, unauthenticated, forbidden, refused, invalid, error)",
            requests.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Time to answer an API request, by endpoint",
            latency.clone(),
        );
        Self {
            registry,
            requests,
            latency,
        }
    }
}

/// The API's state.
pub struct Api {
    reader: Reader,
    auth: Authenticator,
    metrics: ApiMetrics,
}

impl Api {
    /// The API over `reader`, authenticating with `auth`.
    pub fn new(reader: Reader, auth: Authenticator) -> Self {
        Self {
            reader,
            auth,
            metrics: ApiMetrics::new(),
        }
    }
}

/// The router of [`ROUTES`].
pub fn router(api: Arc<Api>) -> Router {
    let mut r = Router::new();
    for route in ROUTES {
        let route = *route;
        let handler = move |s: State<Arc<Api>>,
                            h: HeaderMap,
                            q: Query<HashMap<String, String>>,
                            b: Bytes| { handle(route, s, h, q, b) };
        r = match route.method {
            "POST" => r.route(route.path, post(handler)),
            _ => r.route(route.path, get(handler)),
        };
    }
    r.fallback(|| async {
        error(
            StatusCode::NOT_FOUND,
            "no such endpoint; GET /openapi.json lists them",
        )
    })
    .method_not_allowed_fallback(|| async {
        error(
            StatusCode::METHOD_NOT_ALLOWED,
            "this endpoint does not take that method; GET /openapi.json lists them",
        )
    })
    .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
    .layer(axum::middleware::from_fn_with_state(
        Arc::clone(&api),
        audit_layer,
    ))
    .with_state(api)
}

fn error(status: StatusCode, reason: &str) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{}\n", json!({"error": reason, "status": status.as_u16()})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tollgate\""),
        );
    }
    resp
}

/// A handler's answer before auditing.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
    content_type: &'static str,
    rows: usize,
    truncated: bool,
}

impl Answer {
    fn json(v: &Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: format!("{v:#}\n").into_bytes(),
            content_type: "application/json",
            rows: 0,
            truncated: false,
        }
    }
}

fn bad(reason: String) -> QueryError {
    QueryError::Invalid(reason)
}

/// The server's own fault: its text (paths, file names) goes to the log,
/// the caller gets no detail.
fn internal(e: impl std::fmt::Display) -> QueryError {
    tracing::warn!(error = %e, "request failed");
    QueryError::Failed(
        "the server could not answer (a storage or internal fault, logged under this request's query id); retry, and tell the operator if it persists".into(),
    )
}

/// The HTTP status of a denied request.
fn status(d: &Denied) -> StatusCode {
    match d {
        Denied::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Denied::Forbidden(_) | Denied::Query(QueryError::Refused(_)) => StatusCode::FORBIDDEN,
        Denied::Query(QueryError::Invalid(_) | QueryError::Limit(_)) => StatusCode::BAD_REQUEST,
        Denied::Query(QueryError::Failed(_)) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn handle(
    route: Route,
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    // The request runs to its end in a task of its own, so a client that
    // goes away does not cut it between its `started` entry and its
    // outcome's; a panic is passed on to the audit layer.
    match tokio::spawn(respond(route, api, headers, params, body)).await {
        Ok(resp) => resp,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down; retry",
        ),
    }
}

async fn respond(
    route: Route,
    api: Arc<Api>,
    headers: HeaderMap,
    params: HashMap<String, String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let Some(permission) = route.permission else {
        return service(route, &api).await;
    };
    let endpoint = format!("{} {}", route.method, route.path);
    let auth_header = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let principal = api.auth.authenticate(auth_header);
    // The SQL (read from the body once), the admission request as sent,
    // or the sorted parameters.
    let sql = (route.endpoint == Endpoint::Sql).then(|| sql_text(&body));
    let text = match &sql {
        Some(s) => s.clone().unwrap_or_default(),
        None if route.endpoint == Endpoint::Admission => {
            String::from_utf8_lossy(&body).into_owned()
        }
        None => {
            let mut p: Vec<_> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            p.sort();
            p.join("&")
        }
    };
    let api_ref = &api;
    let params_ref = &params;
    let body_ref: &[u8] = &body;
    let audited = audited(
        api.reader.audit(),
        principal,
        permission,
        &endpoint,
        &text,
        |p| async move {
            let limit = api_ref.reader.config().limits.timeout;
            let a = tokio::time::timeout(
                limit,
                dispatch(route, api_ref, &p, params_ref, sql, body_ref),
            )
            .await
            .map_err(|_| crate::sql::timed_out(limit))??;
            Ok((a.rows, a))
        },
    )
    .await;
    let (query_id, result) = match audited {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, endpoint = route.path, "query audit write failed; answer withheld");
            let mut resp = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the query audit could not be written, so no answer is given; retry later",
            );
            resp.extensions_mut().insert(Audited);
            return resp;
        }
    };
    let (code, outcome) = match &result {
        Ok(a) => (a.status, "ok"),
        Err(d) => (status(d), d.outcome()),
    };
    api.metrics
        .requests
        .get_or_create(&RequestLabel {
            endpoint: route.path,
            outcome,
        })
        .inc();
    api.metrics
        .latency
        .get_or_create(&EndpointLabel {
            endpoint: route.path,
        })
        .observe(started.elapsed().as_secs_f64());
    // The audit entry (by its id) says who; the log line does not repeat it.
    tracing::info!(endpoint = route.path, status = code.as_u16(), outcome, query_id = %query_id, "request");
    let (mut resp, headers) = match result {
        Err(d) => (
            error(code, &d.reason()),
            vec![("x-tollgate-query-id", query_id)],
        ),
        Ok(a) => (
            (a.status, [(header::CONTENT_TYPE, a.content_type)], a.body).into_response(),
            vec![
                ("x-tollgate-rows", a.rows.to_string()),
                ("x-tollgate-truncated", a.truncated.to_string()),
                ("x-tollgate-query-id", query_id),
            ],
        ),
    };
    let h = resp.headers_mut();
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    resp.extensions_mut().insert(Audited);
    resp
}

/// Marks a response whose request a handler wrote to the query audit.
#[derive(Debug, Clone, Copy)]
struct Audited;

/// The largest request body accepted (an SQL body is far smaller:
/// `server.limits.max_sql_bytes`); a larger one is answered 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Audits what the handlers do not: requests answered by the router (an
/// unknown path, a wrong method), bodies over [`MAX_BODY_BYTES`], and a
/// handler that panicked (caught here, answered 500). The path is kept
/// only when it is a declared route; otherwise its hash.
async fn audit_layer(
    State(api): State<Arc<Api>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use futures::FutureExt;
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if ROUTES.iter().any(|r| {
        r.permission.is_none()
            && r.path == path
            && (method == axum::http::Method::GET || method == axum::http::Method::HEAD)
    }) {
        return next.run(req).await;
    }
    let auth_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string());
    let started = Instant::now();
    // A body declared over the limit is refused before a byte of it is read.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let resp = if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the request body is over {MAX_BODY_BYTES} bytes"),
        )
    } else {
        match std::panic::AssertUnwindSafe(next.run(req))
            .catch_unwind()
            .await
        {
            Ok(resp) => resp,
            Err(_) => {
                tracing::error!(
                    path_known = ROUTES.iter().any(|r| r.path == path),
                    "request handler panicked"
                );
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error: the request failed and is recorded in the query audit",
                )
            }
        }
    };
    if resp.extensions().get::<Audited>().is_some() {
        return resp;
    }
    let status = resp.status();
    let known = ROUTES.iter().find(|r| r.path == path);
    let method_name = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
        .into_iter()
        .find(|m| method.as_str() == *m)
        .unwrap_or("OTHER");
    let endpoint = match known {
        Some(r) => format!("{method_name} {}", r.path),
        None => format!(
            "{method_name} (unknown path sha256:{})",
            crate::audit::sha256_hex(&path)
        ),
    };
    let principal = api.auth.authenticate(auth_header.as_deref()).ok();
    let outcome = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        s if s.is_client_error() => "invalid",
        _ => "error",
    };
    let mut entry = crate::audit::Entry::new(principal.as_ref(), &endpoint, Utc::now());
    entry.outcome = outcome.to_string();
    entry.error = Some(format!(
        "{} answered by the server before any handler ran",
        status.as_u16()
    ));
    entry.duration_ms = started.elapsed().as_millis() as i64;
    api.metrics
        .requests
        .get_or_create(&RequestLabel {
            endpoint: known.map_or("unknown", |r| r.path),
            outcome,
        })
        .inc();
    // Written in a task of its own: a client that goes away does not cut it.
    let writer = Arc::clone(&api);
    let record = entry.clone();
    let written = tokio::spawn(async move { writer.reader.audit().write(&record).await })
        .await
        .unwrap_or_else(|e| Err(crate::Error::Audit(e.to_string())));
    if let Err(e) = written {
        tracing::error!(error = %e, "query audit write failed; answer withheld");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the query audit could not be written, so no answer is given; retry later",
        );
    }
    let mut resp = resp;
    if let Ok(v) = HeaderValue::from_str(&entry.query_id) {
        resp.headers_mut().insert("x-tollgate-query-id", v);
    }
    resp
}

fn sql_text(body: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("body: expected JSON {{\"sql\": \"SELECT ...\"}} ({e})"))?;
    v.get("sql")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| "body: field `sql` (a string) is missing".to_string())
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Result<&'a str, QueryError> {
    params
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| bad(format!("query parameter `{name}` is required")))
}

/// An instant from RFC 3339 or a date (midnight UTC).
/// An instant from RFC 3339 or a date (midnight UTC), in the years 1970
/// to 9999 (the reports do arithmetic on it).
fn instant(name: &str, v: &str) -> Result<DateTime<Utc>, String> {
    use chrono::Datelike;
    let t = match DateTime::parse_from_rfc3339(v) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
            .map_err(|_| {
                format!("{name} {v:?}: expected RFC 3339 (2026-10-01T00:00:00Z) or YYYY-MM-DD")
            })?,
    };
    if !(1970..=9999).contains(&t.year()) {
        return Err(format!("{name} {v:?}: must be in the years 1970 to 9999"));
    }
    Ok(t)
}

fn at(params: &HashMap<String, String>) -> Result<DateTime<Utc>, QueryError> {
    params
        .get("at")
        .map_or(Ok(Utc::now()), |v| instant("at", v))
        .map_err(bad)
}

fn range(params: &HashMap<String, String>) -> Result<(DateTime<Utc>, DateTime<Utc>), QueryError> {
    let from = instant("from", param(params, "from")?).map_err(bad)?;
    let to = instant("to", param(params, "to")?).map_err(bad)?;
    if to <= from {
        return Err(bad(format!("to ({to}) must be after from ({from})")));
    }
    Ok((from, to))
}

fn format(params: &HashMap<String, String>) -> Result<Format, QueryError> {
    match params.get("format") {
        None => Ok(Format::Json),
        Some(f) if f == "table" => Err(bad(
            "format table is for the CLI; use json, csv, arrow or parquet".into(),
        )),
        Some(f) => f.parse().map_err(bad),
    }
}

fn download(out: ReportOutput, f: Format) -> Result<Answer, QueryError> {
    if f == Format::Json {
        let mut a = Answer::json(&out.json);
        a.rows = out.table.rows;
        return Ok(a);
    }
    table_answer(&out.table, f)
}

fn table_answer(t: &QueryResult, f: Format) -> Result<Answer, QueryError> {
    let body = encode(&t.schema, &t.batches, f).map_err(internal)?;
    Ok(Answer {
        status: StatusCode::OK,
        body,
        content_type: f.content_type(),
        rows: t.rows,
        truncated: t.truncated,
    })
}

async fn dispatch(
    route: Route,
    api: &Api,
    p: &Principal,
    params: &HashMap<String, String>,
    sql: Option<Result<String, String>>,
    body: &[u8],
) -> Result<Answer, QueryError> {
    let r = &api.reader;
    match route.endpoint {
        Endpoint::Admission => Ok(Answer::json(&admission(r, p, body).await?)),
        Endpoint::Chargeback => {
            let f = format(params)?;
            let (_, out) = r
                .chargeback(
                    p,
                    param(params, "month")?,
                    params.get("tz").map(String::as_str),
                )
                .await?;
            download(out, f)
        }
        Endpoint::Spend => {
            let f = format(params)?;
            let (from, to) = range(params)?;
            download(
                r.spend(p, from, to, params.get("by").map(String::as_str))
                    .await?,
                f,
            )
        }
        Endpoint::Quota => {
            let f = format(params)?;
            let (_, _, out) = r
                .quota(p, at(params)?, params.get("tz").map(String::as_str))
                .await?;
            download(out, f)
        }
        Endpoint::Anomalies => {
            let f = format(params)?;
            let (_, out) = r.anomalies(p, at(params)?).await?;
            download(out, f)
        }
        Endpoint::ToolLatency => {
            let f = format(params)?;
            let (from, to) = range(params)?;
            download(r.tool_latency(p, from, to).await?, f)
        }
        Endpoint::Sql => {
            let f = format(params)?;
            let sql = sql.unwrap_or_else(|| Err("no SQL".into())).map_err(bad)?;
            let t = r.sql(p, &sql).await?;
            table_answer(&t, f)
        }
        Endpoint::Verify => {
            // All or nothing: the chains hold every organisation's records,
            // so their counts, files and hashes are not an organisation's to
            // see. The operator's `tollgate verify` prints them.
            let storage = Storage::open(&r.config().storage, "serve").map_err(internal)?;
            let report = crate::verify_all(&storage, r.master_key())
                .await
                .map_err(internal)?;
            let ok = report.ok();
            Ok(Answer::json(&json!({
                "ok": ok,
                "checked_at": Utc::now(),
                "scope": "the whole audit log: every commit chain and file of every organisation, each against its recorded hash, and the rollups' manifest chain and files, the closed statements' chain, the sealed tenant keys, the alert claims, the API keys' states and the audit tables' (query_log, alerts) chains and files",
                "detail": if ok {
                    "every committed file matches its recorded hash and every commit record its chain"
                } else {
                    "the audit log failed verification; the operator's `tollgate verify` names what failed"
                },
            })))
        }
        Endpoint::Tables => Ok(Answer::json(&tables(api, p).await?)),
        Endpoint::WhoAmI => Ok(Answer::json(&json!({
            "subject": p.subject, "org": p.org, "team": p.team,
            "roles": p.roles, "credential": p.credential,
            "org_wide": p.org_wide(),
        }))),
        _ => Err(internal("not a data endpoint")),
    }
}

/// The quota decision for one of `p`'s teams (the teams directory and the
/// ledger cut to `p`'s scope, like the quota report): a team outside it is
/// refused, whether or not it exists.
async fn admission(r: &Reader, p: &Principal, body: &[u8]) -> Result<Value, QueryError> {
    let req: AdmissionRequest = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "body: expected {{\"team\": ..., \"tenant\"?, \"at\"?, \"workload\"?}} ({e})"
        ))
    })?;
    if req.team.trim().is_empty() {
        return Err(bad("team: must not be empty".into()));
    }
    let tenant = req.tenant.as_deref().unwrap_or(&p.org);
    if !r.scope(p).allows(tenant, &req.team) {
        return Err(QueryError::Refused(format!(
            "team: {tenant}/{} is not among the teams this principal may see",
            req.team
        )));
    }
    let (_, lines, _) = r.quota(p, req.at.unwrap_or_else(Utc::now), None).await?;
    let line = find(&lines, Some(tenant), &req.team).map_err(bad)?;
    let d = decide(&req.team, line, r.currency());
    tracing::info!(allow = d.allow, "admission decision");
    serde_json::to_value(&d).map_err(internal)
}

/// The tables and views `p` may query, with their columns.
async fn tables(api: &Api, p: &Principal) -> Result<Value, QueryError> {
    let ctx = api.reader.session(p).await.map_err(internal)?;
    let mut out = Vec::new();
    let names = TABLES
        .iter()
        .filter(|(n, s, _)| {
            !n.starts_with("facet_rollup_") && (*s != TableScope::TenantOnly || p.org_wide())
        })
        .map(|(n, s, d)| {
            (
                n.to_string(),
                if *s == TableScope::Public {
                    "table (price book)"
                } else {
                    "table"
                },
                d.to_string(),
            )
        })
        .chain(tollgate_ledger::context::view_names().into_iter().map(|n| {
            (
                n.to_string(),
                "view",
                "ledger view (see docs/ledger.md)".to_string(),
            )
        }));
    for (name, kind, description) in names {
        let Ok(df) = ctx.session().table(name.as_str()).await else {
            continue;
        };
        let columns: Vec<Value> = df
            .schema()
            .fields()
            .iter()
            .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
            .collect();
        out.push(
            json!({"name": name, "kind": kind, "description": description, "columns": columns}),
        );
    }
    Ok(json!({ "tables": out }))
}

async fn service(route: Route, api: &Api) -> Response {
    match route.endpoint {
        Endpoint::Health => (StatusCode::OK, "ok\n").into_response(),
        Endpoint::OpenApi => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{:#}\n", openapi()),
        )
            .into_response(),
        Endpoint::Metrics => {
            let mut text = String::new();
            if let Err(e) =
                prometheus_client::encoding::text::encode(&mut text, &api.metrics.registry)
            {
                return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
            }
            (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                text,
            )
                .into_response()
        }
        Endpoint::Ready => {
            let storage = match Storage::open(&api.reader.config().storage, "serve") {
                Ok(s) => s,
                Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &format!("storage: {e}")),
            };
            if let Err(e) = storage.topics().await {
                return error(StatusCode::SERVICE_UNAVAILABLE, &format!("storage: {e}"));
            }
            if let Err(e) = api.auth.api_keys().list() {
                return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
            }
            (StatusCode::OK, "ready\n").into_response()
        }
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "route without a permission",
        ),
    }
}

/// The OpenAPI 3.0 document of [`ROUTES`].
pub fn openapi() -> Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let params: Vec<Value> = r
            .params
            .iter()
            .map(|(n, d)| json!({"name": n, "in": "query", "required": d.contains("(required)"), "description": d, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}{}", r.method.to_lowercase(), r.path.replace(['/', '-', '.'], "_")),
            "parameters": params,
            "responses": {
                "200": {"description": "OK"},
                "400": {"description": "Bad parameters or SQL, with the reason"},
                "401": {"description": "Missing or bad credentials, with the reason"},
                "403": {"description": "Not allowed for this principal, with the reason"},
            },
        });
        match r.permission {
            Some(p) => {
                op["security"] = json!([{"bearer": []}]);
                op["x-tollgate-permission"] = json!(p.as_str());
                op["x-tollgate-roles"] = json!(p.roles());
                op["x-tollgate-tenant-data"] = json!(r.data);
            }
            None => op["security"] = json!([]),
        }
        if r.endpoint == Endpoint::Sql {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {
                "type": "object", "required": ["sql"], "properties": {"sql": {"type": "string"}}}}}});
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Tollgate", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Chargeback, spend, quota, anomaly and latency reports and tenant-scoped SQL over the audit log"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
            "description": "A JWT signed RS256 (claims sub, org, team, roles, exp) or an API key tgk_<id>_<secret>"}}},
        "paths": paths,
    })
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<Api>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown)
        .await
}
