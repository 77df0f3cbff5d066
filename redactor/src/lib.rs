//! Tollgate's redaction stage: personal and secret data in user content is
//! replaced with keyed HMAC-SHA256 tokens before anything is stored.
//!
//! This crate holds the `[redaction]` config section today; the detectors
//! and the key store land with the redactor issue.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// `[redaction]`: where tenant keys come from.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    /// The key store file (owner-only permissions); relative paths are under
    /// `storage.data_dir`. Unset means `keys.json` in the data directory.
    pub key_store: Option<PathBuf>,
    /// A file holding tenant keys as `tenant = "hex key"` lines (TOML); read
    /// at start, never printed.
    pub keys_file: Option<PathBuf>,
    /// Tenant keys given inline (hex, at least 32 bytes), by tenant. Prefer
    /// `keys_file` or `TOLLGATE__REDACTION__KEYS__<TENANT>`; never printed.
    #[serde(skip_serializing)]
    pub keys: BTreeMap<String, SecretString>,
}
