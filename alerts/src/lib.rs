//! Tollgate's alerts stage: quota warnings at 80 %, exhaustion at 100 % and
//! 2x-anomaly emails to team leads, and the admission decision.
//!
//! This crate holds the `[alerts]` config section today; the evaluator and
//! the mailer land with the alerts issue.

use std::path::PathBuf;

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
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            from: "Tollgate <tollgate@localhost>".into(),
            outbox_dir: PathBuf::from("outbox"),
            warning_percent: 80,
            smtp: None,
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
