//! Quota status: each configured team's month-to-date spend against its
//! monthly budget, in the deployment's reporting zone.
//!
//! - `burn` = spent / quota, in percent.
//! - Status: `ok` below 80 %, `warning` from 80 %, `blocked` from 100 % (new
//!   workloads are refused until the quota is raised).
//! - Forecast (run rate): spent / elapsed x length of the month, where
//!   elapsed is the time from the month's start to the evaluation time
//!   (at least one hour, so that the first minutes do not explode it).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::facets::facets;
use super::Period;
use crate::money::{minor_units, round, show};
use crate::{Error, LedgerContext, TeamConfig};

/// A team's quota state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaStatus {
    /// Below 80 %.
    Ok,
    /// From 80 %.
    Warning,
    /// From 100 %: new workloads are refused.
    Blocked,
}

impl QuotaStatus {
    /// From a burn percentage.
    pub fn of(burn_pct: Decimal) -> Self {
        if burn_pct >= Decimal::from(100) {
            Self::Blocked
        } else if burn_pct >= Decimal::from(80) {
            Self::Warning
        } else {
            Self::Ok
        }
    }

    /// `ok`, `warning`, `blocked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Blocked => "blocked",
        }
    }
}

/// One team's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaLine {
    /// Tenant.
    pub tenant: String,
    /// Team.
    pub team: String,
    /// Monthly budget.
    pub quota: Decimal,
    /// Spent this month up to the evaluation time, rounded.
    pub spent: Decimal,
    /// spent / quota in percent, 1 decimal.
    pub burn_pct: Decimal,
    /// From the burn.
    pub status: QuotaStatus,
    /// Month-end forecast at the current run rate, rounded.
    pub forecast: Decimal,
    /// GPU-hours used this month.
    pub gpu_hours: Decimal,
    /// The GPU-hours cap, if set.
    pub gpu_hours_quota: Option<Decimal>,
}

/// The quota status of every configured team at `at`, for the month that
/// holds `at` in `tz`.
pub async fn quota(
    ctx: &LedgerContext,
    teams: &[TeamConfig],
    at: DateTime<Utc>,
    tz: &str,
    currency: &str,
) -> Result<(Period, Vec<QuotaLine>), Error> {
    let period = Period::month_of(at, tz)?;
    let until = at.min(period.end);
    let f = facets(ctx, period.start, until, None, &[]).await?;
    let mut spent: BTreeMap<(String, String), (Decimal, i64)> = BTreeMap::new();
    for (tenant, team, _, sums) in f.teams() {
        let e = spent.entry((tenant.clone(), team.clone())).or_default();
        e.0 += sums.cost;
        e.1 += sums.gpu_millis;
    }
    let dp = minor_units(currency);
    let elapsed = (until - period.start).max(Duration::hours(1));
    let length = period.end - period.start;
    let mut out = Vec::new();
    for t in teams {
        let (exact, millis) = spent
            .get(&(t.tenant.clone(), t.name.clone()))
            .copied()
            .unwrap_or_default();
        let burn = if t.monthly_quota > Decimal::ZERO {
            (exact / t.monthly_quota * Decimal::from(100)).round_dp(1)
        } else {
            Decimal::ZERO
        };
        let forecast = exact * Decimal::from(length.num_seconds())
            / Decimal::from(elapsed.num_seconds().max(1));
        out.push(QuotaLine {
            tenant: t.tenant.clone(),
            team: t.name.clone(),
            quota: t.monthly_quota,
            spent: round(exact, dp),
            burn_pct: burn,
            status: QuotaStatus::of(burn),
            forecast: round(forecast, dp),
            gpu_hours: (Decimal::from(millis) / Decimal::from(3_600_000)).round_dp(3),
            gpu_hours_quota: t.gpu_hours_quota,
        });
    }
    Ok((period, out))
}

/// A text table of quota lines.
pub fn table(period: &Period, at: DateTime<Utc>, lines: &[QuotaLine], currency: &str) -> String {
    let mut s = format!(
        "Quotas {} ({}), month to date at {} UTC, {currency}\n{:<12} {:<20} {:>12} {:>12} {:>7} {:<8} {:>14} {:>10}\n",
        period.month,
        period.tz,
        at.format("%Y-%m-%d %H:%M"),
        "tenant",
        "team",
        "quota",
        "spent",
        "burn %",
        "status",
        "forecast",
        "GPU-hours"
    );
    let dp = minor_units(currency);
    for l in lines {
        s.push_str(&format!(
            "{:<12} {:<20} {:>12} {:>12} {:>7} {:<8} {:>14} {:>10}\n",
            l.tenant,
            l.team,
            show(l.quota, dp),
            show(l.spent, dp),
            show(l.burn_pct, 1),
            l.status.as_str(),
            show(l.forecast, dp),
            show(l.gpu_hours, 3)
        ));
    }
    s
}
