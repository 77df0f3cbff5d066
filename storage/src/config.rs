//! The `[storage]` config section.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// `[storage]`: where the audit log lives.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Local data directory: tables, commit records, key store, outbox.
    pub data_dir: PathBuf,
    /// Object-store URL for the tables and commit records (`file:///...`,
    /// `s3://bucket/prefix`); unset means `data_dir` on the local
    /// filesystem. The key store stays in `data_dir`.
    pub url: Option<String>,
    /// Object-store options such as `endpoint`, `region`, `allow_http`
    /// (`object_store` configuration keys). `AWS_*` environment variables
    /// are read too, as the AWS tools do.
    pub options: BTreeMap<String, String>,
    /// Options that hold secrets (such as `secret_access_key`); never
    /// printed. Best set through `TOLLGATE__STORAGE__SECRET_OPTIONS__...` or
    /// the usual `AWS_SECRET_ACCESS_KEY`.
    #[serde(skip_serializing)]
    pub secret_options: BTreeMap<String, SecretString>,
}

impl StorageConfig {
    /// The local filesystem storage rooted at `dir`.
    pub fn local(dir: &std::path::Path) -> Self {
        Self {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./tollgate-data"),
            url: None,
            options: BTreeMap::new(),
            secret_options: BTreeMap::new(),
        }
    }
}
