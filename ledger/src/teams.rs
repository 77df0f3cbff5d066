//! The `[[teams]]` directory: who leads a team and what it may spend.

use std::collections::HashSet;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Error;

/// One `[[teams]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    /// The tenant (organisation) the team belongs to, as in the events' `tenant` tag.
    pub tenant: String,
    /// The team's name, as in the events' `team` tag.
    pub name: String,
    /// Addresses of the team's leads, who receive quota and anomaly emails.
    #[serde(default)]
    pub leads: Vec<String>,
    /// Addresses copied when the quota is exhausted.
    #[serde(default)]
    pub escalation: Vec<String>,
    /// Monthly budget in the deployment's currency, as a decimal string such as `"25000.00"`.
    #[serde(with = "rust_decimal::serde::str")]
    pub monthly_quota: Decimal,
    /// Optional monthly cap on GPU-hours, as a decimal string.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub gpu_hours_quota: Option<Decimal>,
}

/// Checks the directory: unique (tenant, name), positive quotas, plausible addresses.
pub fn validate(teams: &[TeamConfig]) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for t in teams {
        let who = format!("team {}/{}", t.tenant, t.name);
        if t.tenant.trim().is_empty() || t.name.trim().is_empty() {
            return Err(Error::Teams("every team needs a tenant and a name".into()));
        }
        for (what, name) in [("tenant", &t.tenant), ("name", &t.name)] {
            let canonical = tollgate_event::canonical_tag(name);
            if &canonical != name {
                return Err(Error::Teams(format!(
                    "{who}: {what} must be written as events store it (NFKC, trimmed, lower case), {canonical:?}, or no event can match it"
                )));
            }
        }
        if !seen.insert((t.tenant.as_str(), t.name.as_str())) {
            return Err(Error::Teams(format!("{who} is listed twice")));
        }
        if t.monthly_quota <= Decimal::ZERO {
            return Err(Error::Teams(format!(
                "{who}: monthly_quota must be positive, got {}",
                t.monthly_quota
            )));
        }
        if t.gpu_hours_quota.is_some_and(|q| q <= Decimal::ZERO) {
            return Err(Error::Teams(format!(
                "{who}: gpu_hours_quota must be positive"
            )));
        }
        for addr in t.leads.iter().chain(&t.escalation) {
            let ok = addr
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
            if !ok {
                return Err(Error::Teams(format!(
                    "{who}: {addr:?} is not an email address"
                )));
            }
        }
    }
    Ok(())
}
