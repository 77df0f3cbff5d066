//! The email of an alert: subject, plain text and HTML from minijinja
//! templates (`templates/subject.txt`, `body.txt`, `body.html` in this
//! crate, or the files of `alerts.templates_dir`), as a multipart message
//! with a Message-ID derived from the alert's id.
//!
//! An email carries figures, team names and the tokens the events carry
//! (user ids, workload ids); never a value from before redaction, which
//! the ledger does not have.

use lettre::message::{Mailbox, MultiPart};
use lettre::Message;
use minijinja::Environment;
use serde::Serialize;
use tollgate_ledger::money::{minor_units, show};

use crate::{Alert, AlertsConfig, Error};

const SUBJECT: &str = include_str!("../templates/subject.txt");
const BODY_TXT: &str = include_str!("../templates/body.txt");
const BODY_HTML: &str = include_str!("../templates/body.html");

/// The three templates, loaded once.
pub struct Templates {
    env: Environment<'static>,
}

#[derive(Serialize)]
struct DriverView {
    dimension: String,
    key: String,
    day_cost: String,
    baseline_daily: String,
    growth: String,
}

#[derive(Serialize)]
struct View<'a> {
    id: &'a str,
    kind: &'a str,
    tenant: &'a str,
    team: &'a str,
    month: &'a str,
    at: String,
    currency: &'a str,
    spent: String,
    quota: String,
    burn_pct: String,
    forecast: String,
    day_cost: String,
    baseline_daily: String,
    ratio: String,
    drivers: Vec<DriverView>,
    raise_instructions: &'a str,
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain text part.
    pub text: String,
    /// HTML part.
    pub html: String,
}

impl Templates {
    /// The built-in templates, or those of `cfg.templates_dir`.
    pub fn load(cfg: &AlertsConfig) -> Result<Self, Error> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        let sources: [(&str, String); 3] = match &cfg.templates_dir {
            None => [
                ("subject.txt", SUBJECT.to_string()),
                ("body.txt", BODY_TXT.to_string()),
                ("body.html", BODY_HTML.to_string()),
            ],
            Some(dir) => {
                let read = |name: &str| {
                    std::fs::read_to_string(dir.join(name)).map_err(|e| {
                        Error::Config(format!(
                            "alerts.templates_dir: {}: {e}",
                            dir.join(name).display()
                        ))
                    })
                };
                [
                    ("subject.txt", read("subject.txt")?),
                    ("body.txt", read("body.txt")?),
                    ("body.html", read("body.html")?),
                ]
            }
        };
        for (name, src) in sources {
            env.add_template_owned(name, src)
                .map_err(|e| Error::Render(format!("template {name}: {e}")))?;
        }
        Ok(Self { env })
    }

    /// Renders `alert`.
    pub fn render(&self, alert: &Alert, cfg: &AlertsConfig) -> Result<Rendered, Error> {
        let dp = minor_units(&alert.currency);
        let opt = |v: Option<rust_decimal::Decimal>| v.map(|d| show(d, dp)).unwrap_or_default();
        let view = View {
            id: &alert.id,
            kind: alert.kind.as_str(),
            tenant: &alert.tenant,
            team: &alert.team,
            month: &alert.month,
            at: alert.at.format("%Y-%m-%d %H:%M UTC").to_string(),
            currency: &alert.currency,
            spent: show(alert.spent, dp),
            quota: show(alert.quota, dp),
            burn_pct: alert.burn_pct.to_string(),
            forecast: show(alert.forecast, dp),
            day_cost: opt(alert.day_cost),
            baseline_daily: opt(alert.baseline_daily),
            ratio: alert.ratio.map(|r| r.to_string()).unwrap_or_default(),
            drivers: alert
                .drivers
                .iter()
                .map(|d| DriverView {
                    dimension: d.dimension.clone(),
                    key: d.key.clone(),
                    day_cost: show(d.day_cost, dp),
                    baseline_daily: show(d.baseline_daily, dp),
                    growth: show(d.growth, dp),
                })
                .collect(),
            raise_instructions: &cfg.raise_instructions,
        };
        let one = |name: &str| -> Result<String, Error> {
            self.env
                .get_template(name)
                .and_then(|t| t.render(&view))
                .map_err(|e| Error::Render(format!("template {name}: {e}")))
        };
        Ok(Rendered {
            subject: one("subject.txt")?.trim().to_string(),
            text: one("body.txt")?,
            html: one("body.html")?,
        })
    }
}

fn mailbox(addr: &str, what: &str) -> Result<Mailbox, Error> {
    addr.parse()
        .map_err(|e| Error::Render(format!("{what} {addr:?} is not an email address: {e}")))
}

/// The whole message (multipart text and HTML), or `None` for an alert
/// without recipients.
pub fn message(
    alert: &Alert,
    rendered: &Rendered,
    cfg: &AlertsConfig,
) -> Result<Option<Message>, Error> {
    if alert.to.is_empty() && alert.cc.is_empty() {
        return Ok(None);
    }
    let mut b = Message::builder()
        .from(mailbox(&cfg.from, "alerts.from")?)
        .subject(rendered.subject.clone())
        .message_id(Some(format!(
            "<{}.{}@tollgate>",
            alert.id,
            alert.kind.as_str()
        )));
    for to in &alert.to {
        b = b.to(mailbox(to, "lead")?);
    }
    for cc in &alert.cc {
        b = b.cc(mailbox(cc, "escalation address")?);
    }
    b.multipart(MultiPart::alternative_plain_html(
        rendered.text.clone(),
        rendered.html.clone(),
    ))
    .map(Some)
    .map_err(|e| Error::Render(format!("building the email of alert {}: {e}", alert.id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AlertKind;
    use rust_decimal::Decimal;
    use tollgate_ledger::report::Driver;

    fn alert(kind: AlertKind) -> Alert {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let anomaly = kind == AlertKind::Anomaly;
        Alert {
            id: "0123456789abcdef0123".into(),
            kind,
            tenant: "globex".into(),
            team: "vision".into(),
            month: "2026-11".into(),
            at: "2026-11-19T00:00:00Z".parse().unwrap(),
            currency: "USD".into(),
            spent: d("12250.5"),
            quota: d("15000"),
            burn_pct: d("81.7"),
            forecast: d("19342.9"),
            day_cost: anomaly.then(|| d("956.05")),
            baseline_daily: anomaly.then(|| d("236.77")),
            ratio: anomaly.then(|| d("4.04")),
            drivers: if anomaly {
                vec![Driver {
                    dimension: "workload".into(),
                    key: "vision-backfill <embeddings>".into(),
                    day_cost: d("701.52"),
                    baseline_daily: d("0"),
                    growth: d("701.52"),
                }]
            } else {
                Vec::new()
            },
            to: vec!["lead.vision@globex.example".into()],
            cc: Vec::new(),
        }
    }

    /// The rendered emails are pinned by the files in `snapshots/`
    /// (`UPDATE_SNAPSHOTS=1 cargo test -p tollgate-alerts` rewrites them
    /// after a deliberate template change).
    #[test]
    fn rendered_emails_match_their_snapshots() {
        let cfg = AlertsConfig::default();
        let t = Templates::load(&cfg).unwrap();
        for kind in [
            AlertKind::QuotaWarning,
            AlertKind::QuotaExhausted,
            AlertKind::Anomaly,
        ] {
            let r = t.render(&alert(kind), &cfg).unwrap();
            let got = format!(
                "Subject: {}\n\n--- text ---\n{}\n--- html ---\n{}",
                r.subject, r.text, r.html
            );
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("snapshots")
                .join(format!("{}.txt", kind.as_str()));
            if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
                std::fs::write(&path, &got).unwrap();
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(
                got,
                want,
                "{} differs from {}",
                kind.as_str(),
                path.display()
            );
            // HTML is escaped; the text part is not.
            if kind == AlertKind::Anomaly {
                assert!(r.html.contains("vision-backfill &lt;embeddings&gt;"));
                assert!(r.text.contains("vision-backfill <embeddings>"));
            }
        }
    }

    #[test]
    fn a_message_is_multipart_with_a_stable_message_id() {
        let cfg = AlertsConfig::default();
        let t = Templates::load(&cfg).unwrap();
        let a = alert(AlertKind::QuotaWarning);
        let m = message(&a, &t.render(&a, &cfg).unwrap(), &cfg)
            .unwrap()
            .unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("Message-ID: <0123456789abcdef0123.quota_warning@tollgate>"));
        let mut none = a.clone();
        none.to.clear();
        assert!(message(&none, &t.render(&none, &cfg).unwrap(), &cfg)
            .unwrap()
            .is_none());
        let mut bad = a;
        bad.to = vec!["not an address".into()];
        let err = message(&bad, &t.render(&bad, &cfg).unwrap(), &cfg).unwrap_err();
        assert!(err.to_string().contains("not an email address"), "{err}");
    }
}
