//! One evaluation cycle: the ledger's quota statuses and anomalies at a
//! time, the alerts they call for, each new one claimed (with its rendered
//! email) and written to the `alerts` table, then every pending email
//! delivered.

use chrono::{DateTime, Utc};
use tollgate_ledger::report::{self, QuotaLine};
use tollgate_ledger::{LedgerConfig, LedgerContext, TeamConfig};

use crate::deliver::{deliver, Delivered, Transport};
use crate::evaluate::candidates;
use crate::metrics::AlertMetrics;
use crate::render::{message, Templates};
use crate::store::{AlertStore, Claimed};
use crate::{audit, Alert, AlertKind, AlertsConfig, Error};

/// Evaluates and delivers.
pub struct Evaluator {
    cfg: AlertsConfig,
    teams: Vec<TeamConfig>,
    ledger: LedgerConfig,
    currency: String,
    store: AlertStore,
    transport: Transport,
    templates: Templates,
    metrics: AlertMetrics,
    /// Whether a cycle brings the rollups up to date (the evaluator inside
    /// `tollgate run`) or only reads them.
    maintains_rollups: bool,
}

/// What a cycle did.
#[derive(Debug, Clone)]
pub struct Cycle {
    /// The evaluation time.
    pub at: DateTime<Utc>,
    /// The quota status of every team.
    pub quotas: Vec<QuotaLine>,
    /// Alerts raised in this cycle (new ones only).
    pub raised: Vec<Alert>,
    /// Delivery of every pending email.
    pub delivered: Delivered,
}

impl Evaluator {
    /// An evaluator with its state in `store` and, without SMTP, its
    /// emails written to `outbox_dir`.
    pub fn new(
        cfg: AlertsConfig,
        teams: Vec<TeamConfig>,
        ledger: LedgerConfig,
        currency: &str,
        store: AlertStore,
        outbox_dir: std::path::PathBuf,
        metrics: AlertMetrics,
    ) -> Result<Self, Error> {
        let transport = Transport::from_config(&cfg, outbox_dir)?;
        let templates = Templates::load(&cfg)?;
        Ok(Self {
            cfg,
            teams,
            ledger,
            currency: currency.to_string(),
            store,
            transport,
            templates,
            metrics,
            maintains_rollups: false,
        })
    }

    /// Makes each cycle bring the rollups up to date first (for the
    /// evaluator inside `tollgate run`, the rollups' writer); otherwise a
    /// cycle reads them and the records they do not cover yet.
    pub fn maintaining_rollups(mut self) -> Self {
        self.maintains_rollups = true;
        self
    }

    /// Replaces the teams directory (after a config reload).
    pub fn set_teams(&mut self, teams: Vec<TeamConfig>) {
        self.teams = teams;
    }

    /// The state.
    pub fn store(&self) -> &AlertStore {
        &self.store
    }

    /// Where emails go, for logs.
    pub fn destination(&self) -> String {
        self.transport.describe(&self.cfg)
    }

    /// Evaluates at `at`, claims the new alerts, writes their audit rows
    /// and delivers what is pending.
    pub async fn cycle(&self, ctx: &mut LedgerContext, at: DateTime<Utc>) -> Result<Cycle, Error> {
        let result = self.cycle_inner(ctx, at).await;
        let pending = self.store.pending().await.map_or(0, |p| p.len());
        self.metrics.cycle(result.is_ok(), pending);
        result
    }

    async fn cycle_inner(
        &self,
        ctx: &mut LedgerContext,
        at: DateTime<Utc>,
    ) -> Result<Cycle, Error> {
        if self.ledger.rollups {
            if self.maintains_rollups {
                ctx.use_rollups().await?;
            } else {
                // Without usable rollups the raw tables are read.
                let _ = ctx.read_snapshot().await?;
            }
        }
        let (period, quotas) =
            report::quota(ctx, &self.teams, at, &self.ledger.timezone, &self.currency).await?;
        let anomalies = report::anomalies(ctx, &self.ledger.anomaly, at, &self.currency).await?;
        let mut raised = Vec::new();
        for alert in candidates(
            &self.teams,
            &quotas,
            &anomalies,
            &period.month,
            at,
            &self.currency,
            self.cfg.warning_percent,
        ) {
            if self.store.is_claimed(&alert.id).await? {
                continue;
            }
            if alert.kind == AlertKind::Anomaly {
                if let Some(last) = self.store.last_anomaly(&alert.tenant, &alert.team).await? {
                    let apart = (alert.at - last).abs();
                    if apart.to_std().unwrap_or_default() < self.cfg.anomaly_repeat {
                        continue;
                    }
                }
                // Another evaluator may be raising this team's anomaly now.
                if !self
                    .store
                    .take_anomaly_window(&alert, self.cfg.anomaly_repeat)
                    .await?
                {
                    continue;
                }
            }
            let rendered = self.templates.render(&alert, &self.cfg)?;
            let msg = message(&alert, &rendered, &self.cfg)?;
            let claimed = Claimed {
                from: self.cfg.from.clone(),
                recipients: alert.to.iter().chain(&alert.cc).cloned().collect(),
                message: msg.map(|m| String::from_utf8_lossy(&m.formatted()).into_owned()),
                claimed_at: Utc::now(),
                alert,
                content_sha256: String::new(),
            };
            if self.store.claim(&claimed).await? {
                self.metrics.raised(claimed.alert.kind);
                tracing::info!(
                    alert = %claimed.alert.id,
                    kind = claimed.alert.kind.as_str(),
                    tenant = %claimed.alert.tenant,
                    team = %claimed.alert.team,
                    "alert raised"
                );
                raised.push(claimed.alert);
            }
        }
        self.audit(&raised).await?;
        let delivered = deliver(&self.store, &self.transport, &self.cfg, &self.metrics).await?;
        Ok(Cycle {
            at,
            quotas,
            raised,
            delivered,
        })
    }

    /// Writes the audit row of each alert this cycle claimed, and of any
    /// claim older than [`LEASE`](crate::store::LEASE) still without one
    /// (its claimer stopped before writing it); another instance's fresh
    /// claim is left to that instance, so no alert has two rows.
    async fn audit(&self, raised: &[Alert]) -> Result<(), Error> {
        let stale = Utc::now()
            - chrono::Duration::from_std(crate::store::LEASE)
                .unwrap_or_else(|_| chrono::Duration::minutes(10));
        for c in self.store.claimed().await? {
            let mine = raised.iter().any(|a| a.id == c.alert.id);
            if (mine || c.claimed_at < stale) && !self.store.is_audited(&c.alert.id).await? {
                audit::write(self.store.audit_log(), &c).await?;
                self.store.mark_audited(&c.alert.id).await?;
            }
        }
        Ok(())
    }

    /// Delivers what is pending and due, without evaluating.
    pub async fn deliver(&self) -> Result<Delivered, Error> {
        deliver(&self.store, &self.transport, &self.cfg, &self.metrics).await
    }
}
