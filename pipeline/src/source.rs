//! Where records come from and where refused records' raw bytes go: the two
//! seams between the pipeline and a log. Kafka implements both in
//! production (`tollgate_ingest::source`); [`crate::memory`] implements them
//! in memory for the demo and the tests.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use tollgate_storage::DeadLetter;

/// One record of a partitioned log, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// The time the log received it, if the log records one.
    pub timestamp: Option<DateTime<Utc>>,
    /// The producer's key.
    pub key: Option<Vec<u8>>,
    /// The payload: one encoded event, or bytes that claim to be one.
    pub payload: Vec<u8>,
}

/// Where a partition should be read from next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// This offset.
    Offset(i64),
    /// The partition's log start, whatever it is when the broker answers.
    Beginning,
}

/// A failure of the log the records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    /// What was being done.
    pub context: String,
    /// What went wrong.
    pub message: String,
}

impl SourceError {
    /// An error while doing `context`.
    pub fn new(context: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            context: context.into(),
            message: message.to_string(),
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}; check that the broker is reachable",
            self.context, self.message
        )
    }
}

impl std::error::Error for SourceError {}

/// A partitioned log read by one consumer (a member of a consumer group).
///
/// The pipeline never trusts the consumer's position: it seeks each
/// partition to where its commit chain ends. The group offset it reports
/// through [`RecordSource::committed`] serves lag monitoring only.
// The pipeline drives its source from one task, so the futures need not be
// `Send`.
#[allow(async_fn_in_trait)]
pub trait RecordSource {
    /// The topic read (the name of the commit chains).
    fn topic(&self) -> &str;

    /// The next records, at most `max` (one or more), in offset order within
    /// each partition; waits until there is one. `None` when a finite
    /// source has nothing more, ever. Dropping the future loses nothing.
    async fn next_chunk(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError>;

    /// The first offset `partition` still holds (its log start).
    async fn log_start(&self, partition: i32) -> Result<i64, SourceError>;

    /// Every partition of the topic with its high watermark (the offset the
    /// next record will get).
    async fn high_watermarks(&self) -> Result<Vec<(i32, i64)>, SourceError>;

    /// High watermarks known without asking the broker (for lag gauges);
    /// empty when the source keeps none.
    fn known_high_watermarks(&self) -> HashMap<i32, i64> {
        HashMap::new()
    }

    /// Makes `partition`'s next records come from `to`. Records already
    /// fetched from the old position may still arrive first.
    fn seek(&mut self, partition: i32, to: SeekTo) -> Result<(), SourceError>;

    /// Records the consumer group's offset of `partition` (the offset after
    /// the last committed record), for lag monitoring; never relied on.
    fn committed(&mut self, partition: i32, next_offset: i64) -> Result<(), SourceError>;
}

/// A refused record on its way to the dead-letter topic: its raw bytes, for
/// replay after a fix, and its dead letter (reason, field, where it came from).
#[derive(Debug, Clone, Copy)]
pub struct Refused<'a> {
    /// The producer's key.
    pub key: Option<&'a [u8]>,
    /// The raw payload, as received.
    pub payload: &'a [u8],
    /// Its dead letter, as the table stores it.
    pub letter: &'a DeadLetter,
}

/// Where the raw bytes of refused records go, at least once, before the
/// batch that refused them is committed. Publishing runs in the task that
/// writes the batch, beside the reading one.
pub trait DeadLetterSink: Send + Sync + 'static {
    /// Delivers every record of `refused` (read from `topic`), or fails.
    fn publish(
        &self,
        topic: &str,
        refused: &[Refused<'_>],
    ) -> impl std::future::Future<Output = Result<(), SourceError>> + Send;
}
