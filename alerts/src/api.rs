//! The quota decision API (axum):
//!
//! - `GET /v1/quota/{team}[?tenant=T][&at=RFC3339]`: the team's status, spend, quota,
//!   percentage and forecast this month.
//! - `POST /v1/admission` `{"team": ..., "tenant": ..., "workload": {...}}`:
//!   `{"allow": bool, "decision": "allow"|"deny", "reason": ..., "quota": ...}`;
//!   a team at 100 % is denied until its quota is raised.
//! - `POST /admin/reload`: re-reads the teams directory (as SIGHUP does).
//! - `GET /metrics`, `GET /healthz`.
//!
//! `at` (query parameter, or field of the admission request) evaluates at
//! another time than now, for audits and replays. Quota figures are computed from the ledger and reused for
//! `alerts.admission_cache` (10 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::Mutex;
use tollgate_ledger::report::{self, QuotaLine};
use tollgate_ledger::{LedgerConfig, LedgerContext, TeamConfig};

use crate::admission::{decide, find, AdmissionRequest};
use crate::metrics::AlertMetrics;

/// Re-reads the teams directory.
pub type Reload = Box<dyn Fn() -> Result<Vec<TeamConfig>, String> + Send + Sync>;

/// The API's state.
pub struct Api {
    ctx: Mutex<LedgerContext>,
    teams: std::sync::RwLock<Vec<TeamConfig>>,
    ledger: LedgerConfig,
    currency: String,
    cache: Mutex<Option<(Instant, Vec<QuotaLine>)>>,
    cache_ttl: Duration,
    metrics: AlertMetrics,
    reload: Option<Reload>,
}

impl Api {
    /// The API over `ctx`.
    pub fn new(
        ctx: LedgerContext,
        teams: Vec<TeamConfig>,
        ledger: LedgerConfig,
        currency: &str,
        cache_ttl: Duration,
        metrics: AlertMetrics,
        reload: Option<Reload>,
    ) -> Self {
        Self {
            ctx: Mutex::new(ctx),
            teams: std::sync::RwLock::new(teams),
            ledger,
            currency: currency.to_string(),
            cache: Mutex::new(None),
            cache_ttl,
            metrics,
            reload,
        }
    }

    /// Re-reads the teams directory; the next request recomputes.
    pub async fn reload(&self) -> Result<usize, String> {
        let Some(reload) = &self.reload else {
            return Err("this server was started without a config file to reload".into());
        };
        let teams = reload()?;
        let n = teams.len();
        if let Ok(mut t) = self.teams.write() {
            *t = teams;
        }
        *self.cache.lock().await = None;
        tracing::info!(teams = n, "teams directory reloaded");
        Ok(n)
    }

    /// The quota lines now (cached) or at a given time (`at`: for audits
    /// and replays; not cached).
    async fn lines(&self, at: Option<DateTime<Utc>>) -> Result<Vec<QuotaLine>, String> {
        let mut cache = self.cache.lock().await;
        if let (None, Some((at, lines))) = (at, cache.as_ref()) {
            if at.elapsed() < self.cache_ttl {
                return Ok(lines.clone());
            }
        }
        let teams = self.teams.read().map(|t| t.clone()).unwrap_or_default();
        let mut ctx = self.ctx.lock().await;
        if self.ledger.rollups {
            // Read only: `tollgate run` maintains the rollups.
            // Without usable rollups the raw tables are read.
            let _ = ctx.read_snapshot().await.map_err(|e| e.to_string())?;
        }
        let (_, lines) = report::quota(
            &ctx,
            &teams,
            at.unwrap_or_else(Utc::now),
            &self.ledger.timezone,
            &self.currency,
        )
        .await
        .map_err(|e| e.to_string())?;
        if at.is_none() {
            *cache = Some((Instant::now(), lines.clone()));
        }
        Ok(lines)
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({"error": message.into()}))).into_response()
}

#[derive(Deserialize)]
struct TenantQuery {
    tenant: Option<String>,
    at: Option<DateTime<Utc>>,
}

async fn get_quota(
    State(api): State<Arc<Api>>,
    Path(team): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Response {
    let lines = match api.lines(q.at).await {
        Ok(l) => l,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the ledger cannot answer: {e}"),
            )
        }
    };
    match find(&lines, q.tenant.as_deref(), &team) {
        Err(e) => error(StatusCode::BAD_REQUEST, e),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("team: {team:?} is not in the teams directory"),
        ),
        Ok(Some(l)) => Json(serde_json::json!({
            "tenant": l.tenant, "team": l.team, "status": l.status, "used": l.spent,
            "limit": l.quota, "percentage": l.burn_pct, "forecast": l.forecast,
            "currency": api.currency, "gpu_hours": l.gpu_hours, "gpu_hours_limit": l.gpu_hours_quota,
        }))
        .into_response(),
    }
}

async fn post_admission(
    State(api): State<Arc<Api>>,
    body: Result<Json<AdmissionRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if req.team.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "team: must not be empty");
    }
    let lines = match api.lines(req.at).await {
        Ok(l) => l,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the ledger cannot answer: {e}"),
            )
        }
    };
    let line = match find(&lines, req.tenant.as_deref(), &req.team) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let d = decide(&req.team, line, &api.currency);
    api.metrics.decision(d.allow);
    tracing::info!(team = %req.team, allow = d.allow, "admission decision");
    Json(d).into_response()
}

async fn post_reload(State(api): State<Arc<Api>>) -> Response {
    match api.reload().await {
        Ok(n) => Json(serde_json::json!({"reloaded": true, "teams": n})).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed: {e}"),
        ),
    }
}

/// The API's routes.
pub fn router(api: Arc<Api>) -> Router {
    let metrics = api.metrics.clone();
    Router::new()
        .route("/v1/quota/{team}", get(get_quota))
        .route("/v1/admission", post(post_admission))
        .route("/admin/reload", post(post_reload))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move { m.render() }
            }),
        )
        .with_state(api)
}
