//! Integration tests of the ingest crate: the documented examples, the
//! decoder under arbitrary input, and the Kafka round trip with an
//! independent client.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod audit_log;
mod decoder_props;
mod docs_examples;
#[cfg(feature = "kafka")]
mod gateway;
mod kafka_roundtrip;
mod storage;
