//! The `[ledger]` section.

use serde::{Deserialize, Serialize};

use crate::report::AnomalyConfig;

/// `[ledger]`: how reports are cut.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// IANA time zone months are cut in (chargeback, quotas), such as
    /// `Europe/Berlin`; `--tz` overrides it per report.
    pub timezone: String,
    /// `[ledger.anomaly]`: the 2x rule.
    pub anomaly: AnomalyConfig,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
            anomaly: AnomalyConfig::default(),
        }
    }
}
