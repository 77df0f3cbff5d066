//! Delivery of claimed emails: over SMTP (lettre; plain, STARTTLS or TLS,
//! optional AUTH) or, without `[alerts.smtp]`, as `.eml` files in the
//! outbox folder.
//!
//! An unreachable relay or a 4xx answer leaves the email pending with a
//! retry time (`retry_initial`, doubled per attempt up to `retry_max`); a
//! 5xx answer records it as failed. An email is marked sent as soon as the
//! relay accepted it, so a restart does not send it again (a crash in the
//! instant between the relay's 250 and that mark would send it once more;
//! its Message-ID is the same, so mail systems can drop the copy).

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::metrics::AlertMetrics;
use crate::store::{AlertStore, Claimed, Retry};
use crate::{AlertsConfig, Error, SmtpSecurity};

/// Where emails go.
pub enum Transport {
    /// `.eml` files in this folder.
    Outbox(PathBuf),
    /// An SMTP relay.
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>),
}

/// What one delivery pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Accepted by the relay or written to the outbox.
    pub sent: Vec<String>,
    /// Left pending for a retry.
    pub deferred: usize,
    /// Refused for good (5xx).
    pub failed: usize,
    /// Not yet due.
    pub waiting: usize,
    /// Being delivered by another evaluator (it holds the attempt's lease).
    pub elsewhere: usize,
}

/// Writes an outbox file atomically (temporary file, fsync, rename).
fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

impl Transport {
    /// The transport `cfg` describes; `outbox` is the resolved outbox folder.
    pub fn from_config(cfg: &AlertsConfig, outbox: PathBuf) -> Result<Self, Error> {
        let Some(smtp) = &cfg.smtp else {
            std::fs::create_dir_all(&outbox).map_err(|e| Error::State {
                path: outbox.display().to_string(),
                message: e.to_string(),
            })?;
            return Ok(Transport::Outbox(outbox));
        };
        let tls = || {
            TlsParameters::new(smtp.host.clone())
                .map_err(|e| Error::Config(format!("alerts.smtp: TLS for {}: {e}", smtp.host)))
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .timeout(Some(smtp.timeout));
        b = match smtp.security {
            SmtpSecurity::Plain => b.tls(Tls::None),
            SmtpSecurity::Starttls => b.tls(Tls::Required(tls()?)),
            SmtpSecurity::Tls => b.tls(Tls::Wrapper(tls()?)),
        };
        if let Some(user) = &smtp.username {
            let password = smtp
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_string())
                .unwrap_or_default();
            b = b.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Transport::Smtp(Box::new(b.build())))
    }

    /// A description for logs.
    pub fn describe(&self, cfg: &AlertsConfig) -> String {
        match (self, &cfg.smtp) {
            (Transport::Outbox(p), _) => format!("the outbox folder {}", p.display()),
            (Transport::Smtp(_), Some(s)) => format!("SMTP {}:{}", s.host, s.port),
            (Transport::Smtp(_), None) => "SMTP".into(),
        }
    }
}

fn envelope(c: &Claimed) -> Result<Envelope, String> {
    let parse = |a: &str| a.parse::<Address>().map_err(|e| format!("{a:?}: {e}"));
    // The From header may carry a display name: "Tollgate <a@b>".
    let from = c
        .from
        .rsplit_once('<')
        .map(|(_, rest)| rest.trim_end_matches('>'))
        .unwrap_or(&c.from);
    let to = c
        .recipients
        .iter()
        .map(|r| parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    Envelope::new(Some(parse(from)?), to).map_err(|e| e.to_string())
}

/// Delivers every pending email that is due.
pub async fn deliver(
    store: &AlertStore,
    transport: &Transport,
    cfg: &AlertsConfig,
    metrics: &AlertMetrics,
) -> Result<Delivered, Error> {
    let mut out = Delivered::default();
    let now = Utc::now();
    for c in store.pending().await? {
        let id = c.alert.id.clone();
        let Some(message) = &c.message else {
            store.mark_sent(&id, "no recipients: nothing sent").await?;
            continue;
        };
        let retry = store.retry(&id).await?;
        if retry.as_ref().is_some_and(|r| r.next_at > now) {
            out.waiting += 1;
            continue;
        }
        // Only the evaluator that takes this attempt sends it.
        let Some(attempt) = store
            .take_attempt(&id, retry.as_ref().map_or(0, |r| r.attempts))
            .await?
        else {
            out.elsewhere += 1;
            continue;
        };
        let result: Result<String, (bool, String)> = match transport {
            Transport::Outbox(dir) => {
                let p = dir.join(format!("{}-{}.eml", c.alert.kind.as_str(), id));
                write_atomic(&p, message.as_bytes())
                    .map(|()| p.display().to_string())
                    .map_err(|e| (false, e))
            }
            Transport::Smtp(smtp) => match envelope(&c) {
                Err(e) => Err((true, format!("envelope: {e}"))),
                Ok(env) => match smtp.send_raw(&env, message.as_bytes()).await {
                    Ok(r) => Ok(format!(
                        "{} {}",
                        r.code(),
                        r.message().collect::<Vec<_>>().join(" ")
                    )),
                    Err(e) => Err((e.is_permanent(), e.to_string())),
                },
            },
        };
        match result {
            Ok(detail) => {
                store.mark_sent(&id, &detail).await?;
                metrics.delivered(c.alert.kind, "sent");
                tracing::info!(alert = %id, kind = c.alert.kind.as_str(), team = %c.alert.team, "email sent");
                out.sent.push(id);
            }
            Err((true, e)) => {
                store.mark_failed(&id, &e).await?;
                metrics.delivered(c.alert.kind, "failed");
                tracing::error!(alert = %id, error = %e, "the relay refused the email for good (5xx): recorded as failed");
                out.failed += 1;
            }
            Err((false, e)) => {
                let attempts = attempt;
                let wait = backoff(cfg, attempts);
                store
                    .set_retry(
                        &id,
                        &Retry {
                            attempts,
                            next_at: now + chrono::Duration::from_std(wait).unwrap_or_default(),
                            last_error: e.clone(),
                        },
                    )
                    .await?;
                metrics.delivered(c.alert.kind, "deferred");
                tracing::warn!(alert = %id, attempts, retry_in = ?wait, error = %e, "email not delivered; retrying later");
                out.deferred += 1;
            }
        }
    }
    Ok(out)
}

/// The wait after `attempts` failed attempts.
pub fn backoff(cfg: &AlertsConfig, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
    cfg.retry_initial.saturating_mul(factor).min(cfg.retry_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cfg = AlertsConfig::default();
        assert_eq!(backoff(&cfg, 1), Duration::from_secs(30));
        assert_eq!(backoff(&cfg, 2), Duration::from_secs(60));
        assert_eq!(backoff(&cfg, 3), Duration::from_secs(120));
        assert_eq!(backoff(&cfg, 50), Duration::from_secs(3600));
    }
}
