//! Tollgate's alerts stage: quota warnings at 80 %, exhaustion at 100 % and
//! 2x-anomaly emails to team leads, and the admission decision.
//!
//! - [`evaluate`]: which alerts the ledger's figures call for.
//! - [`render`]: the email of an alert, from the template files.
//! - [`store`]: the durable state in the data directory that makes each
//!   alert a single email: claimed once, delivered once, retried until then.
//! - [`deliver`]: SMTP (lettre) or `.eml` files in the outbox folder.
//! - [`audit`]: every alert as a row of the `alerts` Parquet table.
//! - [`evaluator`]: one evaluation cycle, tying them together.
//! - [`admission`]: the quota decision API.

pub mod admission;
pub mod api;
pub mod audit;
pub mod deliver;
pub mod evaluate;
pub mod evaluator;
pub mod metrics;
pub mod render;
pub mod store;

use std::path::PathBuf;
use std::time::Duration;

pub use evaluate::{Alert, AlertKind};
pub use evaluator::{Cycle, Evaluator};

/// Errors of the alerts stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ledger could not answer.
    #[error(transparent)]
    Ledger(#[from] tollgate_ledger::Error),
    /// Reading or writing the alert state failed.
    #[error("alerts: {path}: {message}")]
    State {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A template or an address is unusable.
    #[error("alerts: {0}")]
    Render(String),
    /// The `[alerts]` configuration is unusable.
    #[error("alerts: {0}")]
    Config(String),
}

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// `[alerts]`: where emails go.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// The sender address of every email.
    pub from: String,
    /// Folder for `.eml` files when no SMTP server is configured; relative
    /// paths are under `storage.data_dir`.
    pub outbox_dir: PathBuf,
    /// Percentage of the monthly quota that raises a warning.
    pub warning_percent: u8,
    /// The SMTP relay; unset means emails are written to `outbox_dir`.
    pub smtp: Option<SmtpConfig>,
    /// How a lead asks for a higher quota: a sentence shown in every quota
    /// email.
    pub raise_instructions: String,
    /// A folder with `subject.txt`, `body.txt` and `body.html` (minijinja)
    /// replacing the built-in templates; unset uses the built-in ones.
    pub templates_dir: Option<PathBuf>,
    /// How often the evaluator runs (inside `tollgate run` also after each
    /// commit).
    #[serde(with = "humantime_serde")]
    pub evaluate_every: Duration,
    /// At most one anomaly email per team within this long.
    #[serde(with = "humantime_serde")]
    pub anomaly_repeat: Duration,
    /// First wait before retrying an email the relay did not take (SMTP
    /// unreachable or a 4xx answer); doubled per attempt.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest wait between retries.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How long the admission API reuses a quota computation.
    #[serde(with = "humantime_serde")]
    pub admission_cache: Duration,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            from: "Tollgate <tollgate@localhost>".into(),
            outbox_dir: PathBuf::from("outbox"),
            warning_percent: 80,
            smtp: None,
            raise_instructions: "To raise your team's quota, ask your platform team to change \
                                 monthly_quota for your team in tollgate.toml."
                .into(),
            templates_dir: None,
            evaluate_every: Duration::from_secs(60),
            anomaly_repeat: Duration::from_secs(24 * 3600),
            retry_initial: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            admission_cache: Duration::from_secs(10),
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// No TLS (a relay on loopback or a trusted network only).
    Plain,
    /// Upgrade with STARTTLS (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// `[alerts.smtp]`: the relay.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name of the relay.
    pub host: String,
    /// Port of the relay.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// Plain, STARTTLS or TLS.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// User name for SMTP AUTH, if the relay wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for SMTP AUTH; never printed. Prefer `password_file` or
    /// `TOLLGATE__ALERTS__SMTP__PASSWORD`.
    #[serde(default, skip_serializing)]
    pub password: Option<SecretString>,
    /// A file whose content (trimmed) is the SMTP password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// How long to wait for the relay before retrying later.
    #[serde(default = "default_smtp_timeout", with = "humantime_serde")]
    pub timeout: std::time::Duration,
}

fn default_smtp_port() -> u16 {
    587
}

fn default_smtp_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}
