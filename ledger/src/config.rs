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
    /// Whether reports read the hourly rollups (refreshed from the commit
    /// log before each report) for the whole hours of their range; `false`
    /// reads only the raw tables. The figures are the same either way.
    pub rollups: bool,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
            anomaly: AnomalyConfig::default(),
            rollups: true,
        }
    }
}
