//! Tollgate's write path as a library: records in, the audit log out.
//!
//! **Owns** deciding each record ([`decide`]: decode and validate through
//! `tollgate-event`, redact through `tollgate-redactor`), dropping resent
//! events (the dedupe index), batching per partition, and the order of a
//! commit: raw refused records to the dead-letter sink, the batch's files
//! and commit record through `tollgate-storage`, then the group offset. It
//! also owns the process's Prometheus [`metrics`] registry and the
//! `[ingest]` configuration.
//!
//! **May touch** a [`RecordSource`] and a [`DeadLetterSink`] (Kafka in
//! production, from `tollgate-ingest`; [`memory`] for the demo and the
//! tests) and the object store through a `tollgate_storage::Storage`
//! handle. Nothing else: no Kafka client, no local files.
//!
//! `tollgate run` and `tollgate demo` both build a [`Pipeline`] and call
//! [`Pipeline::run`]; docs/architecture.md follows one event through it.

mod config;
pub mod decide;
mod error;
pub mod memory;
pub mod metrics;
mod run;
pub mod source;

pub use config::IngestConfig;
pub use decide::{decide, DecideTimes, Decided, Filling};
pub use error::PipelineError;
pub use run::{Observer, Options, Pipeline, StageTimes, Totals, CHUNK};
pub use source::{DeadLetterSink, RecordSource, Refused, SeekTo, SourceError, SourceRecord};
