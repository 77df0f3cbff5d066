//! `tollgate.toml`: every section in one struct, loaded from a file with
//! `TOLLGATE__SECTION__KEY` environment overrides; secrets may come from
//! files; defaults live in each section's `Default`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tollgate_alerts::AlertsConfig;
use tollgate_ingest::gateway::GatewayConfig;
use tollgate_ingest::KafkaConfig;
use tollgate_ledger::{LedgerConfig, PriceBook, PricingConfig, TeamConfig};
use tollgate_pipeline::IngestConfig;
use tollgate_queries::ServerConfig;
use tollgate_redactor::RedactionConfig;
use tollgate_storage::StorageConfig;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_PATH: &str = "tollgate.toml";
/// Prefix of environment overrides: `TOLLGATE__KAFKA__BROKERS=...`.
pub const ENV_PREFIX: &str = "TOLLGATE__";

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[kafka]`: the broker, topics and consumer group.
    pub kafka: KafkaConfig,
    /// `[ingest]`: bounds every event is checked against.
    pub ingest: IngestConfig,
    /// `[storage]`: the data directory or object store.
    pub storage: StorageConfig,
    /// `[redaction]`: tenant keys for PII tokens.
    pub redaction: RedactionConfig,
    /// `[pricing]`: the price book.
    pub pricing: PricingConfig,
    /// `[[teams]]`: the teams directory with leads and quotas.
    pub teams: Vec<TeamConfig>,
    /// `[alerts]`: email delivery.
    pub alerts: AlertsConfig,
    /// `[server]`: the HTTP API.
    pub server: ServerConfig,
    /// `[gateway]`: the HTTP gateway producers post events to.
    pub gateway: GatewayConfig,
    /// `[ledger]`: the reporting time zone and the anomaly rule.
    pub ledger: LedgerConfig,
}

/// Where the configuration came from, for messages.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The file read, if any.
    pub path: Option<PathBuf>,
}

impl Config {
    /// Loads `path` (or `tollgate.toml` if present, or nothing), applies
    /// environment overrides, reads secret files and checks the result.
    pub fn load(path: Option<&Path>) -> Result<Loaded> {
        let path = match path {
            Some(p) => {
                if !p.is_file() {
                    bail!(
                        "config file {} does not exist (given with --config or TOLLGATE_CONFIG)",
                        p.display()
                    );
                }
                Some(p.to_path_buf())
            }
            None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.is_file()),
        };
        let mut figment = Figment::new();
        if let Some(p) = &path {
            figment = figment.merge(Toml::file(p));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        let mut config: Config = figment.extract().map_err(|e| {
            let mut msg = String::new();
            for err in e {
                if !msg.is_empty() {
                    msg.push('\n');
                }
                msg.push_str(&err.to_string());
            }
            anyhow::anyhow!(
                "invalid configuration{}:\n{msg}",
                path.as_ref()
                    .map(|p| format!(" in {}", p.display()))
                    .unwrap_or_default()
            )
        })?;
        config.resolve_secrets()?;
        config.check()?;
        Ok(Loaded { config, path })
    }

    /// Parses a TOML document on its own (no environment), for tests.
    #[cfg(test)]
    pub fn from_toml(text: &str) -> Result<Self> {
        let mut config: Config = Figment::new()
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.resolve_secrets()?;
        config.check()?;
        Ok(config)
    }

    /// Reads `alerts.smtp.password_file`, `redaction.keys_file` and
    /// `redaction.master_key_file`.
    fn resolve_secrets(&mut self) -> Result<()> {
        if let Some(smtp) = &mut self.alerts.smtp {
            if let Some(file) = &smtp.password_file {
                if smtp.password.is_some() {
                    bail!("alerts.smtp: set password or password_file, not both");
                }
                let text = std::fs::read_to_string(file).with_context(|| {
                    format!("alerts.smtp.password_file: cannot read {}", file.display())
                })?;
                smtp.password = Some(SecretString::from(text.trim().to_string()));
            }
        }
        if let Some(file) = &self.redaction.keys_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("redaction.keys_file: cannot read {}", file.display()))?;
            let keys: std::collections::BTreeMap<String, String> =
                toml::from_str(&text).map_err(|_| {
                    anyhow::anyhow!(
                        "redaction.keys_file: {} must hold lines of the form tenant = \"hex key\"",
                        file.display()
                    )
                })?;
            for (tenant, key) in keys {
                if self.redaction.keys.contains_key(&tenant) {
                    bail!("redaction: the key of tenant {tenant:?} is given both inline and in keys_file");
                }
                self.redaction.keys.insert(tenant, SecretString::from(key));
            }
        }
        if let Some(file) = &self.redaction.master_key_file {
            if self.redaction.master_key.is_some() {
                bail!("redaction: set master_key or master_key_file, not both");
            }
            let text = std::fs::read_to_string(file).with_context(|| {
                format!("redaction.master_key_file: cannot read {}", file.display())
            })?;
            self.redaction.master_key = Some(SecretString::from(text.trim().to_string()));
        }
        if let Some(k) = &self.redaction.master_key {
            let k = k.expose_secret();
            if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("redaction.master_key: must be 32 bytes as hex (64 hex digits, such as from `openssl rand -hex 32`); the value is not shown");
            }
        }
        for (tenant, key) in &self.redaction.keys {
            let k = key.expose_secret();
            if k.len() < 64 || k.len() % 2 != 0 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("redaction.keys.{tenant}: must be at least 32 bytes as hex (64 or more hex digits); the value is not shown");
            }
        }
        Ok(())
    }

    /// Cross-checks sections.
    fn check(&self) -> Result<()> {
        PriceBook::new(self.pricing.clone())?;
        tollgate_redactor::Redactor::check(&self.redaction)?;
        tollgate_ledger::teams::validate(&self.teams)?;
        if self.kafka.brokers.trim().is_empty() {
            bail!("kafka.brokers must not be empty");
        }
        if self.ingest.max_event_bytes < 1024 {
            bail!(
                "ingest.max_event_bytes must be at least 1024, got {}",
                self.ingest.max_event_bytes
            );
        }
        if self.ingest.dedupe_window < self.ingest.max_past {
            bail!(
                "ingest.dedupe_window ({}) must be at least ingest.max_past ({}): an accepted event older than the window could be stored twice when resent; shorten max_past too if memory is the concern",
                humantime::format_duration(self.ingest.dedupe_window),
                humantime::format_duration(self.ingest.max_past)
            );
        }
        self.gateway.check().map_err(anyhow::Error::msg)?;
        // Tenant names in the configuration must be spelt as events store
        // them (NFKC, trimmed, lower case), or they never match an event.
        let tenants = self
            .redaction
            .keys
            .keys()
            .map(|t| ("redaction.keys", t.as_str()))
            .chain(
                self.redaction
                    .custom
                    .iter()
                    .filter(|c| c.tenant != "*")
                    .map(|c| ("redaction.custom", c.tenant.as_str())),
            )
            .chain(
                self.gateway
                    .tenants
                    .keys()
                    .map(|t| ("gateway.tenants", t.as_str())),
            );
        for (section, tenant) in tenants {
            let canonical = tollgate_event::canonical_tag(tenant);
            if canonical != tenant {
                bail!(
                    "{section}: the tenant {tenant:?} must be written as events store it (NFKC, trimmed, lower case), {canonical:?}, or no event can match it"
                );
            }
        }
        for (name, d) in [
            ("ingest.batch_latency", self.ingest.batch_latency),
            ("alerts.evaluate_every", self.alerts.evaluate_every),
        ] {
            if d < std::time::Duration::from_millis(10) {
                bail!(
                    "{name} must be at least 10ms, got {}",
                    humantime::format_duration(d)
                );
            }
        }
        tollgate_ledger::report::zone(&self.ledger.timezone).map_err(|_| {
            anyhow::anyhow!(
                "ledger.timezone {:?}: not an IANA time zone name (such as UTC or Europe/Berlin)",
                self.ledger.timezone
            )
        })?;
        let a = &self.ledger.anomaly;
        if a.window_days == 0 || a.multiplier <= rust_decimal::Decimal::ONE {
            bail!("ledger.anomaly: window_days must be at least 1 and multiplier above 1");
        }
        if self.kafka.partitions < 1 {
            bail!(
                "kafka.partitions must be at least 1, got {}",
                self.kafka.partitions
            );
        }
        if self.ingest.batch_records == 0
            || self.ingest.batch_bytes == 0
            || self.ingest.max_open_bytes == 0
        {
            bail!("ingest.batch_records, ingest.batch_bytes and ingest.max_open_bytes must be at least 1");
        }
        if self.ingest.decide_threads > 256 {
            bail!(
                "ingest.decide_threads is {}: at most 256 (0 means one per core)",
                self.ingest.decide_threads
            );
        }
        Ok(())
    }

    /// The storage a command reads: `--data-dir DIR` when given (a local
    /// directory that must exist), else `[storage]`.
    pub fn storage_for(&self, data_dir: Option<&Path>) -> Result<StorageConfig> {
        Ok(match data_dir {
            Some(dir) => {
                if !dir.is_dir() {
                    bail!("{} is not a directory", dir.display());
                }
                StorageConfig {
                    data_dir: dir.to_path_buf(),
                    ..Default::default()
                }
            }
            None => self.storage.clone(),
        })
    }

    /// The configuration as TOML with every secret left out, and a comment
    /// that says which secrets are set.
    pub fn to_redacted_toml(&self) -> Result<String> {
        let mut set = Vec::new();
        if self
            .alerts
            .smtp
            .as_ref()
            .is_some_and(|s| s.password.is_some())
        {
            set.push("alerts.smtp.password".to_string());
        }
        if self.redaction.master_key.is_some() {
            set.push("redaction.master_key".to_string());
        }
        for tenant in self.redaction.keys.keys() {
            set.push(format!("redaction.keys.{tenant}"));
        }
        for k in self.kafka.secret_properties.keys() {
            set.push(format!("kafka.secret_properties.{k}"));
        }
        for k in self.storage.secret_options.keys() {
            set.push(format!("storage.secret_options.{k}"));
        }
        let body = toml::to_string(self).context("rendering the configuration")?;
        let head = if set.is_empty() {
            "# secrets set: none\n".to_string()
        } else {
            format!("# secrets set (values not shown): {}\n", set.join(", "))
        };
        Ok(format!("{head}{body}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../deploy/tollgate.example.toml");

    #[test]
    fn example_config_loads_and_is_complete() {
        let c = Config::from_toml(EXAMPLE).expect("deploy/tollgate.example.toml must load");
        assert!(
            !c.pricing.gpu.is_empty()
                && !c.pricing.tokens.is_empty()
                && !c.pricing.tools.is_empty()
        );
        assert!(c.teams.len() >= 2);
        assert!(
            c.alerts.smtp.is_some(),
            "the example documents the SMTP relay"
        );
        // Every section appears in the example, so none is undocumented.
        for section in [
            "[kafka]",
            "[ingest]",
            "[storage]",
            "[redaction]",
            "[redaction.policy]",
            "[[redaction.custom]]",
            "[pricing]",
            "[[teams]]",
            "[alerts]",
            "[alerts.smtp]",
            "[server]",
            "[server.auth]",
            "[server.limits]",
            "[gateway]",
            "[gateway.rate_limit]",
            "[ledger]",
            "[ledger.anomaly]",
        ] {
            assert!(EXAMPLE.contains(section), "example lacks {section}");
        }
        // Every key the defaults have is in the example (set or commented).
        fn keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
            if let toml::Value::Table(t) = v {
                for (k, v) in t {
                    out.push(k.clone());
                    keys(v, &format!("{prefix}{k}."), out);
                }
            }
        }
        let mut all = Vec::new();
        keys(
            &toml::Value::try_from(Config::default()).unwrap(),
            "",
            &mut all,
        );
        for k in all {
            assert!(
                EXAMPLE.contains(&format!("{k} ="))
                    || EXAMPLE.contains(&format!("[{k}]"))
                    || EXAMPLE.contains(&format!(".{k}]"))
                    || EXAMPLE.contains(&format!(".{k}.")),
                "the example does not document the key {k}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = Config::from_toml("[kafka]\nbrokerz = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("brokerz"), "{err}");
        let err = Config::from_toml("[kafak]\n").unwrap_err().to_string();
        assert!(err.contains("kafak"), "{err}");
    }

    #[test]
    fn secrets_are_never_rendered() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("smtp-password");
        std::fs::write(&pw, "hunter2-very-secret\n").unwrap();
        let keys = dir.path().join("keys.toml");
        let key = "ab".repeat(32);
        std::fs::write(&keys, format!("acme = \"{key}\"\n")).unwrap();
        let text = format!(
            "[alerts.smtp]\nhost = \"127.0.0.1\"\npassword_file = {pw:?}\n[redaction]\nkeys_file = {keys:?}\n",
        );
        let c = Config::from_toml(&text).unwrap();
        assert_eq!(
            c.alerts
                .smtp
                .as_ref()
                .unwrap()
                .password
                .as_ref()
                .unwrap()
                .expose_secret(),
            "hunter2-very-secret"
        );
        let shown = c.to_redacted_toml().unwrap();
        let debug = format!("{c:?}");
        for out in [&shown, &debug] {
            assert!(!out.contains("hunter2"), "{out}");
            assert!(!out.contains(&key), "{out}");
        }
        assert!(shown.contains("alerts.smtp.password") && shown.contains("redaction.keys.acme"));
    }

    #[test]
    fn short_keys_are_refused_without_showing_them() {
        let err = Config::from_toml("[redaction.keys]\nacme = \"abcd\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("redaction.keys.acme") && !err.contains("abcd"),
            "{err}"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's signature
    fn env_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "t.toml",
                "[kafka]\nbrokers = \"file:9092\"\nraw_topic = \"from-file\"\n",
            )?;
            jail.set_env("TOLLGATE__KAFKA__BROKERS", "127.0.0.1:19092");
            jail.set_env("TOLLGATE__INGEST__MAX_FUTURE", "10m");
            let loaded = Config::load(Some(Path::new("t.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(loaded.config.kafka.brokers, "127.0.0.1:19092");
            assert_eq!(loaded.config.kafka.raw_topic, "from-file");
            assert_eq!(
                loaded.config.ingest.max_future,
                std::time::Duration::from_secs(600)
            );
            Ok(())
        });
    }
}
