//! Integration tests of the ingest crate: the gateway, and the Kafka round
//! trip with an independent client.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod gateway;
mod kafka_roundtrip;
