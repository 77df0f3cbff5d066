//! Integration tests of the storage crate: the commit protocol, recovery and
//! verify on a real local object store, and the audit tables' chain.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod audit_log;
mod storage;
