//! Which alerts the ledger's figures call for: `quota_warning` from the
//! warning percentage (80 %), `quota_exhausted` at 100 %, `anomaly` when the
//! 2x rule fires. Pure: the store decides which of them are new.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tollgate_ledger::report::{Anomaly, Driver, QuotaLine};
use tollgate_ledger::TeamConfig;

/// The kinds of alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Month-to-date spend reached the warning percentage of the quota.
    QuotaWarning,
    /// Month-to-date spend reached the quota: new workloads are denied.
    QuotaExhausted,
    /// The last 24 hours cost over the multiplier times the daily average.
    Anomaly,
}

impl AlertKind {
    /// `quota_warning`, `quota_exhausted` or `anomaly`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::QuotaWarning => "quota_warning",
            AlertKind::QuotaExhausted => "quota_exhausted",
            AlertKind::Anomaly => "anomaly",
        }
    }
}

/// One alert, with the figures its email shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Derived from [`Alert::key`]: the same alert always has the same id.
    pub id: String,
    /// The kind.
    pub kind: AlertKind,
    /// Tenant.
    pub tenant: String,
    /// Team.
    pub team: String,
    /// The quota month, `YYYY-MM`.
    pub month: String,
    /// When it was evaluated.
    pub at: DateTime<Utc>,
    /// ISO 4217 code.
    pub currency: String,
    /// Month-to-date spend.
    pub spent: Decimal,
    /// Monthly quota.
    pub quota: Decimal,
    /// spent / quota, percent.
    pub burn_pct: Decimal,
    /// Month-end forecast.
    pub forecast: Decimal,
    /// Anomalies: the last 24 hours' cost.
    pub day_cost: Option<Decimal>,
    /// Anomalies: the daily average before.
    pub baseline_daily: Option<Decimal>,
    /// Anomalies: day cost / average.
    pub ratio: Option<Decimal>,
    /// Anomalies: what grew most.
    pub drivers: Vec<Driver>,
    /// The team's leads.
    pub to: Vec<String>,
    /// Escalation addresses (exhaustion only).
    pub cc: Vec<String>,
}

impl Alert {
    /// What makes an alert the same alert: a quota threshold once per team,
    /// month and quota amount (a raised quota can warn again); an anomaly
    /// per team and evaluation time (the store allows one per team per
    /// `anomaly_repeat`).
    pub fn key(&self) -> String {
        match self.kind {
            AlertKind::Anomaly => format!(
                "anomaly/{}/{}/{}",
                self.tenant,
                self.team,
                self.at.to_rfc3339()
            ),
            k => format!(
                "{}/{}/{}/{}/{}",
                k.as_str(),
                self.tenant,
                self.team,
                self.month,
                self.quota.normalize()
            ),
        }
    }

    fn with_id(mut self) -> Self {
        self.id = id_of(&self);
        self
    }
}

/// The id `alert`'s key gives (what its `id` must be).
pub fn id_of(alert: &Alert) -> String {
    let digest = Sha256::digest(alert.key().as_bytes());
    digest[..10].iter().map(|b| format!("{b:02x}")).collect()
}

/// The alerts the figures at `at` call for (new or not).
pub fn candidates(
    teams: &[TeamConfig],
    quotas: &[QuotaLine],
    anomalies: &[Anomaly],
    month: &str,
    at: DateTime<Utc>,
    currency: &str,
    warning_percent: u8,
) -> Vec<Alert> {
    let team =
        |tenant: &str, name: &str| teams.iter().find(|t| t.tenant == tenant && t.name == name);
    let base = |q: &QuotaLine, kind: AlertKind| Alert {
        id: String::new(),
        kind,
        tenant: q.tenant.clone(),
        team: q.team.clone(),
        month: month.to_string(),
        at,
        currency: currency.to_string(),
        spent: q.spent,
        quota: q.quota,
        burn_pct: q.burn_pct,
        forecast: q.forecast,
        day_cost: None,
        baseline_daily: None,
        ratio: None,
        drivers: Vec::new(),
        to: team(&q.tenant, &q.team)
            .map(|t| t.leads.clone())
            .unwrap_or_default(),
        cc: Vec::new(),
    };
    let mut out = Vec::new();
    for q in quotas {
        if q.quota <= Decimal::ZERO {
            continue;
        }
        let hundred = Decimal::from(100);
        let exact_pct = q.spent * hundred / q.quota;
        if exact_pct >= Decimal::from(warning_percent) {
            out.push(base(q, AlertKind::QuotaWarning).with_id());
        }
        if exact_pct >= hundred {
            let mut a = base(q, AlertKind::QuotaExhausted);
            a.cc = team(&q.tenant, &q.team)
                .map(|t| t.escalation.clone())
                .unwrap_or_default();
            out.push(a.with_id());
        }
    }
    for an in anomalies {
        let Some(q) = quotas
            .iter()
            .find(|q| q.tenant == an.tenant && q.team == an.team)
        else {
            // A team outside the directory: no leads to tell. The store
            // still records it for audit.
            let mut a = Alert {
                id: String::new(),
                kind: AlertKind::Anomaly,
                tenant: an.tenant.clone(),
                team: an.team.clone(),
                month: month.to_string(),
                at,
                currency: currency.to_string(),
                spent: Decimal::ZERO,
                quota: Decimal::ZERO,
                burn_pct: Decimal::ZERO,
                forecast: Decimal::ZERO,
                day_cost: None,
                baseline_daily: None,
                ratio: None,
                drivers: Vec::new(),
                to: Vec::new(),
                cc: Vec::new(),
            };
            fill(&mut a, an);
            out.push(a.with_id());
            continue;
        };
        let mut a = base(q, AlertKind::Anomaly);
        fill(&mut a, an);
        out.push(a.with_id());
    }
    out
}

fn fill(a: &mut Alert, an: &Anomaly) {
    a.day_cost = Some(an.day_cost);
    a.baseline_daily = Some(an.baseline_daily);
    a.ratio = Some(an.ratio);
    a.drivers = an.drivers.clone();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_ledger::report::QuotaStatus;

    fn line(team: &str, spent: i64, quota: i64) -> QuotaLine {
        QuotaLine {
            tenant: "acme".into(),
            team: team.into(),
            quota: Decimal::from(quota),
            spent: Decimal::from(spent),
            burn_pct: Decimal::from(spent * 100 / quota),
            status: QuotaStatus::Ok,
            forecast: Decimal::from(spent),
            gpu_hours: Decimal::ZERO,
            gpu_hours_quota: None,
        }
    }

    fn team(name: &str) -> TeamConfig {
        TeamConfig {
            tenant: "acme".into(),
            name: name.into(),
            leads: vec![format!("lead@{name}.example")],
            escalation: vec!["cfo@acme.example".into()],
            monthly_quota: Decimal::from(100),
            gpu_hours_quota: None,
        }
    }

    #[test]
    fn thresholds_and_stable_ids() {
        let teams = [team("a"), team("b"), team("c")];
        let at = "2026-11-10T00:00:00Z".parse().unwrap();
        let quotas = [line("a", 79, 100), line("b", 80, 100), line("c", 100, 100)];
        let got = candidates(&teams, &quotas, &[], "2026-11", at, "USD", 80);
        let kinds: Vec<(String, AlertKind)> =
            got.iter().map(|a| (a.team.clone(), a.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("b".into(), AlertKind::QuotaWarning),
                ("c".into(), AlertKind::QuotaWarning),
                ("c".into(), AlertKind::QuotaExhausted)
            ]
        );
        assert_eq!(got[2].cc, vec!["cfo@acme.example".to_string()]);
        assert!(got[0].cc.is_empty());
        // The same threshold later in the month is the same alert...
        let later = candidates(
            &teams,
            &quotas,
            &[],
            "2026-11",
            at + chrono::Duration::days(3),
            "USD",
            80,
        );
        assert_eq!(later[0].id, got[0].id);
        // ...and a raised quota is a new one.
        let raised = candidates(
            &teams,
            &[line("b", 160, 200)],
            &[],
            "2026-11",
            at,
            "USD",
            80,
        );
        assert_ne!(raised[0].id, got[0].id);
    }
}
