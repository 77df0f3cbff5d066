//! The `[redaction]` config section.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::kind::Kind;

/// `[redaction]`: what is user content, what to look for, and the keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    /// The local key file of earlier versions; relative paths are under
    /// `storage.data_dir`. Unset means `keys.json` in the data directory.
    /// If it exists at start, its keys are moved into the storage (sealed)
    /// and it is renamed `<name>.imported`.
    pub key_store: Option<PathBuf>,
    /// The master key (64 hex digits) the tenant keys are sealed under in
    /// the storage; the same on every instance. Prefer `master_key_file` or
    /// `TOLLGATE__REDACTION__MASTER_KEY`; never printed. Required with
    /// `storage.url`; with the local storage and none given, one is
    /// generated into `<data_dir>/master.key`.
    #[serde(skip_serializing)]
    pub master_key: Option<SecretString>,
    /// A file holding the master key (64 hex digits); read at start.
    pub master_key_file: Option<PathBuf>,
    /// A file holding tenant keys as `tenant = "hex key"` lines (TOML); read
    /// at start, never printed.
    pub keys_file: Option<PathBuf>,
    /// Tenant keys given inline (hex, at least 32 bytes), by tenant. Prefer
    /// `keys_file` or `TOLLGATE__REDACTION__KEYS__<TENANT>`; never printed.
    #[serde(skip_serializing)]
    pub keys: BTreeMap<String, SecretString>,
    /// Built-in detectors to run, by name; all of them by default.
    pub detectors: Vec<String>,
    /// Which fields of each event type are user content.
    pub policy: PolicyConfig,
    /// Extra patterns, per tenant (`tenant = "*"` for every tenant).
    pub custom: Vec<CustomPatternConfig>,
    /// Kinds switched on or off for one tenant, by tenant
    /// (`[redaction.tenants.acme] disable = ["person"]`).
    pub tenants: BTreeMap<String, TenantKindsConfig>,
}

/// `[redaction.tenants.<tenant>]`: the tenant's kinds, relative to
/// `redaction.detectors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantKindsConfig {
    /// Kinds to look for in this tenant's content beyond `detectors`.
    pub enable: Vec<String>,
    /// Kinds not to look for in this tenant's content.
    pub disable: Vec<String>,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        Self {
            key_store: None,
            master_key: None,
            master_key_file: None,
            keys_file: None,
            keys: BTreeMap::new(),
            detectors: Kind::ALL.iter().map(|k| k.as_str().to_string()).collect(),
            policy: PolicyConfig::default(),
            custom: Vec::new(),
            tenants: BTreeMap::new(),
        }
    }
}

/// `[redaction.policy]`: the user-content fields, by event type.
/// Identifiers, tool names, GPU models and other infrastructure fields are
/// never redacted and cannot be listed here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Tool-call fields to redact: `arguments` (any JSON: strings redacted in
    /// place) and `output_excerpt` (text).
    pub tool_call: Vec<String>,
    /// GPU-usage fields to redact: it has none that hold user content, so
    /// this stays empty; listed for symmetry.
    pub gpu_usage: Vec<String>,
    /// Redact the string values of fields a newer minor version added
    /// (unknown to this build, so possibly free text).
    pub unknown_fields: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            tool_call: vec!["arguments".into(), "output_excerpt".into()],
            gpu_usage: Vec::new(),
            unknown_fields: true,
        }
    }
}

/// `[[redaction.custom]]`: a tenant's own pattern.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomPatternConfig {
    /// The tenant it applies to, or `*` for all.
    pub tenant: String,
    /// Name used in tokens (`<employee_id:...>`): lower-case letters, digits, `_`.
    pub name: String,
    /// Regular expression (Rust regex syntax).
    pub pattern: String,
}
