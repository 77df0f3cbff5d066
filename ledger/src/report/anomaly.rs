//! The anomaly rule: for each team at an evaluation time t, the cost of
//! (t - 24 h, t] against the average daily cost of the `window_days` days
//! before that (of the days of history it has, for a team younger than the
//! window). Flagged when it is over `multiplier` times the average, the
//! team has at least `min_history_days` of history in the window, and the
//! day's cost is at least `floor` (tiny teams are ignored). Each anomaly
//! names its top drivers: the users, workloads, tools, models and GPU
//! models whose spend grew most against their own daily average.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::facets::{facets, Dim};
use crate::money::{minor_units, round};
use crate::{Error, LedgerContext};

/// `[ledger.anomaly]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// A day over this many times the average is an anomaly.
    #[serde(with = "rust_decimal::serde::str")]
    pub multiplier: Decimal,
    /// Days the average is taken over.
    pub window_days: u32,
    /// Days of history a team needs before it can be flagged.
    pub min_history_days: u32,
    /// Days costing less than this are never flagged.
    #[serde(with = "rust_decimal::serde::str")]
    pub floor: Decimal,
    /// Drivers named per anomaly.
    pub drivers: usize,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            multiplier: Decimal::from(2),
            window_days: 30,
            min_history_days: 7,
            floor: Decimal::from(10),
            drivers: 3,
        }
    }
}

/// What grew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Driver {
    /// `user`, `workload`, `tool`, `model` or `gpu_model`.
    pub dimension: String,
    /// Its value.
    pub key: String,
    /// Its cost in the last 24 hours, rounded.
    pub day_cost: Decimal,
    /// Its average daily cost over the window, rounded.
    pub baseline_daily: Decimal,
    /// The difference, rounded.
    pub growth: Decimal,
}

/// A flagged team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Tenant.
    pub tenant: String,
    /// Team.
    pub team: String,
    /// The evaluation time.
    pub at: DateTime<Utc>,
    /// Cost of (at - 24 h, at], rounded.
    pub day_cost: Decimal,
    /// Average daily cost over the window before, rounded.
    pub baseline_daily: Decimal,
    /// day cost / baseline, 2 decimals.
    pub ratio: Decimal,
    /// The top drivers.
    pub drivers: Vec<Driver>,
}

/// The dimensions drivers are named in.
const DRIVER_DIMS: [Dim; 5] = [
    Dim::User,
    Dim::Workload,
    Dim::Tool,
    Dim::Model,
    Dim::GpuModel,
];

/// The anomalies at `at`.
pub async fn anomalies(
    ctx: &LedgerContext,
    cfg: &AnomalyConfig,
    at: DateTime<Utc>,
    currency: &str,
) -> Result<Vec<Anomaly>, Error> {
    let day_start = at - Duration::hours(24);
    let window_start = day_start - Duration::days(i64::from(cfg.window_days));
    // (t - 24h, t] in a half-open [from, to) form at microsecond resolution.
    let eps = Duration::microseconds(1);
    let f = facets(
        ctx,
        window_start + eps,
        at + eps,
        Some(day_start),
        &DRIVER_DIMS,
    )
    .await?;
    // Per team: the last 24 hours, the window before, the first usage.
    let mut per_team: BTreeMap<(String, String), (Decimal, Decimal, Option<i64>)> = BTreeMap::new();
    for (tenant, team, recent, sums) in f.teams() {
        let e = per_team.entry((tenant.clone(), team.clone())).or_default();
        if recent {
            e.0 += sums.cost;
        } else {
            e.1 += sums.cost;
        }
        e.2 = match (e.2, sums.first_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let dp = minor_units(currency);
    let mut flagged: BTreeMap<(String, String), (Decimal, Decimal, Decimal)> = BTreeMap::new();
    for ((tenant, team), (day, base, first_us)) in per_team {
        let first_seen = first_us
            .and_then(|us| DateTime::from_timestamp(us.div_euclid(1_000_000), 0))
            .unwrap_or(at);
        if first_seen > day_start - Duration::days(i64::from(cfg.min_history_days)) {
            continue; // too little history
        }
        // The average is over the days of history the window holds
        // (whole days, counting a partial first day), at most the window.
        let seconds = (day_start - first_seen).num_seconds().max(0);
        let days = ((seconds + 86_399) / 86_400).clamp(1, i64::from(cfg.window_days.max(1)));
        let days = Decimal::from(days);
        let avg = base / days;
        if day >= cfg.floor && avg > Decimal::ZERO && day > avg * cfg.multiplier {
            flagged.insert((tenant, team), (day, avg, days));
        }
    }
    // Drivers: per dimension and key, the last 24 hours against the key's
    // own daily average over the same days.
    let mut sums: BTreeMap<(String, String, &'static str, String), (Decimal, Decimal)> =
        BTreeMap::new();
    for dim in DRIVER_DIMS {
        for (tenant, team, key, recent, s) in f.of(dim) {
            let Some(key) = key else { continue };
            if !flagged.contains_key(&(tenant.clone(), team.clone())) {
                continue;
            }
            let e = sums
                .entry((tenant.clone(), team.clone(), dim.name(), key.clone()))
                .or_default();
            if recent {
                e.0 += s.cost;
            } else {
                e.1 += s.cost;
            }
        }
    }
    let mut drivers: BTreeMap<(String, String), Vec<Driver>> = BTreeMap::new();
    for ((tenant, team, dim, key), (d, base)) in sums {
        let team_key = (tenant, team);
        let Some((_, _, days)) = flagged.get(&team_key) else {
            continue;
        };
        let base = base / *days;
        if d > base {
            drivers.entry(team_key).or_default().push(Driver {
                dimension: dim.to_string(),
                key,
                day_cost: round(d, dp),
                baseline_daily: round(base, dp),
                growth: d - base,
            });
        }
    }
    let mut out = Vec::new();
    for ((tenant, team), (day, avg, _)) in flagged {
        let mut drivers = drivers
            .remove(&(tenant.clone(), team.clone()))
            .unwrap_or_default();
        drivers.sort_by(|a, b| b.growth.cmp(&a.growth).then(a.key.cmp(&b.key)));
        drivers.truncate(cfg.drivers);
        for d in &mut drivers {
            d.growth = round(d.growth, dp);
        }
        out.push(Anomaly {
            tenant,
            team,
            at,
            day_cost: round(day, dp),
            baseline_daily: round(avg, dp),
            ratio: (day / avg).round_dp(2),
            drivers,
        });
    }
    Ok(out)
}
