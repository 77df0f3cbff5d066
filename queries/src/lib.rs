//! Tollgate's query stage: chargeback and spend reports, tenant-scoped SQL for
//! auditors, and the HTTP API that serves them.
//!
//! This crate holds the `[server]` config section today; the API lands with
//! the queries issue.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `[server]`: the HTTP API of `tollgate serve`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; loopback by default.
    pub listen: SocketAddr,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}
