//! The pipeline's errors, each saying what to do about it.

use tollgate_storage::StorageError;

use crate::source::SourceError;

/// Why the pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The log no longer holds records the commit chain has not stored:
    /// storing on would leave a gap in the audit log.
    #[error("{topic}/{partition}: the committed chain ends before offset {expected}, but the log serves {served} next: offsets {expected}..{served} are no longer in the log (retention shorter than the outage?). Storing on would leave a gap in the audit log: restore the records from a backup of the topic, or accept the gap as docs/storage.md describes")]
    RetentionGap {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The next offset the chain expects.
        expected: i64,
        /// The offset the log serves instead.
        served: i64,
    },
    /// The storage failed (its message says what to check). Nothing of the
    /// batch is lost: it is read again after a restart.
    #[error("{0}; the batch was not committed and is read again when `tollgate run` restarts")]
    Storage(#[from] StorageError),
    /// The redactor could not redact (its key store is unusable): nothing
    /// unredacted is stored.
    #[error("{0}; check [redaction] and the key store; nothing unredacted was stored")]
    Redaction(#[from] tollgate_redactor::Error),
    /// Refused records could not be delivered to the dead-letter topic.
    #[error("dead-letter topic: {0}; the batch was not committed and is read again when `tollgate run` restarts")]
    DeadLetters(SourceError),
    /// The task writing a batch ended without an answer (it panicked or
    /// was cancelled): whether the batch was committed is unknown.
    #[error("the task writing {topic}/{partition}'s batch failed: {message}; restart `tollgate run`: recovery publishes or discards what it left, and the batch is read again from its chain")]
    Writer {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// What the task's runtime said.
        message: String,
    },
    /// The log the records come from failed.
    #[error("source: {0}")]
    Source(#[from] SourceError),
}
