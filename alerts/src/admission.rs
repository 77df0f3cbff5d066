//! The quota decision: `GET /v1/quota/{team}` and `POST /v1/admission`.
//! A team at 100 % of its monthly quota is denied new workloads until the
//! quota is raised (config reload); a team outside the directory has no
//! quota and is allowed.

use serde::{Deserialize, Serialize};
use tollgate_ledger::report::{QuotaLine, QuotaStatus};

/// An admission request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionRequest {
    /// Tenant; needed only when two tenants have a team of that name.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Team.
    pub team: String,
    /// What the scheduler wants to start (kept for the log; any JSON).
    #[serde(default)]
    pub workload: Option<serde_json::Value>,
    /// Evaluation time [default: now]; for audits and replays.
    #[serde(default)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Decision {
    /// Whether the workload may start.
    pub allow: bool,
    /// `allow` or `deny`.
    pub decision: String,
    /// Why, in a sentence.
    pub reason: String,
    /// The team's quota line, when it has a quota.
    pub quota: Option<QuotaLine>,
}

/// Finds a team's line: by tenant and name, or by name when unique.
pub fn find<'a>(
    lines: &'a [QuotaLine],
    tenant: Option<&str>,
    team: &str,
) -> Result<Option<&'a QuotaLine>, String> {
    let matches: Vec<&QuotaLine> = lines
        .iter()
        .filter(|l| l.team == team && tenant.is_none_or(|t| l.tenant == t))
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(format!(
            "team: {team:?} exists in several tenants; give tenant as well"
        )),
    }
}

/// The decision for a team's line (`None`: not in the directory).
pub fn decide(team: &str, line: Option<&QuotaLine>, currency: &str) -> Decision {
    let Some(l) = line else {
        return Decision {
            allow: true,
            decision: "allow".into(),
            reason: format!("team {team:?} has no quota in the teams directory"),
            quota: None,
        };
    };
    let allow = l.status != QuotaStatus::Blocked;
    let mut reason = format!(
        "{}/{} has used {} % of its monthly quota ({} of {} {currency})",
        l.tenant, l.team, l.burn_pct, l.spent, l.quota
    );
    if !allow {
        reason.push_str("; new workloads are denied until the quota is raised");
    }
    Decision {
        allow,
        decision: if allow { "allow" } else { "deny" }.into(),
        reason,
        quota: Some(l.clone()),
    }
}
