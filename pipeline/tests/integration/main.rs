//! Integration tests of the pipeline crate: the write path over the
//! in-memory log, stopped at every step of the commit protocol, with real
//! Parquet files on a local object store read back independently.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod crash;
