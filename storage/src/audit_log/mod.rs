//! Audit tables (`query_log`, `alerts`): Parquet files under
//! `audit/<dir>/dt=YYYY-MM-DD/`, each committed by a record of the table's
//! chain `audit/_commits/<table>/<seq>.json` (create-if-absent on the
//! sequence number, so writers on any number of instances share one
//! chain), which lists it with its SHA-256, size and rows. Readers read the
//! files the chain lists and nothing else; `verify` walks the chain.
//!
//! **Group commit.** [`AuditLog::append`] returns once its rows are in a
//! committed file. Appends that arrive while a commit is under way wait for
//! it and then go out together: the first of them writes one file (per
//! `dt`) and one record for all, and every waiter is answered by that one
//! record. Under load a commit carries many entries for the cost of one.
//!
//! **Compaction.** When a partition holds [`COMPACT_AT`] small files, they
//! are rewritten as one and a `compact` record lists the old files as
//! removed and the new one as added, with the same number of rows, so a
//! compaction is never taken for a deletion. Removed files are deleted
//! [`KEEP_REMOVED`] later (a query planned before may still read them).
//!
//! **Files of earlier versions** (one file per entry, no record) are
//! adopted by the first commit of a table whose chain is empty: rewritten
//! into the chain by an `adopt` record that lists them as removed.

mod files;
mod record;
mod verify;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::oneshot;

pub use files::dt_of;
pub use record::{record_path, AuditRecord, Kind, COMMITS};
pub use verify::verify;

use super::{parquet_bytes, sha256_hex, CommittedFile, Storage, StorageError, GENESIS};

/// Small files of one partition that start a compaction.
pub const COMPACT_AT: usize = 64;

/// Files with fewer rows than this are small (a compaction's input).
pub const SMALL_ROWS: u64 = 50_000;

/// How long files removed by a compaction stay before they are deleted.
pub const KEEP_REMOVED: chrono::Duration = chrono::Duration::minutes(10);

/// The record format written.
const FORMAT: u32 = 1;

/// An entry waiting for a commit.
struct Pending {
    dt: NaiveDate,
    batch: RecordBatch,
    done: oneshot::Sender<Result<(), String>>,
}

/// The chain as this instance last read it.
#[derive(Default)]
struct Chain {
    /// Records read (all of them once `loaded`).
    loaded: bool,
    /// The newest record's sequence number and SHA-256.
    head: Option<(u64, String)>,
    /// The table's files now.
    live: BTreeMap<String, CommittedFile>,
    /// Of those, files written by a compaction or an adoption: never
    /// compacted again, so each stays checkable against the files it
    /// replaced (their row digests are in their records).
    outputs: std::collections::HashSet<String>,
    /// Files removed by a record, with the record's time, not deleted yet
    /// by this instance.
    removed: Vec<(String, DateTime<Utc>)>,
}

struct Inner {
    storage: Storage,
    table: String,
    dir: String,
    schema: SchemaRef,
    writer: String,
    queue: std::sync::Mutex<Vec<Pending>>,
    chain: tokio::sync::Mutex<Chain>,
    /// A compaction task of this instance is running.
    compacting: std::sync::atomic::AtomicBool,
}

/// One audit table's writer and reader, shared by every task of an
/// instance (clone it).
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditLog({})", self.inner.table)
    }
}

fn audit_err(table: &str, message: impl std::fmt::Display) -> StorageError {
    StorageError::Encode {
        table: table.to_string(),
        message: message.to_string(),
    }
}

impl AuditLog {
    /// The table `table` (files under `dir`, rows in `schema`, which ends
    /// with the `dt` column) in `storage`; `writer` names this instance in
    /// its records.
    pub fn new(storage: Storage, table: &str, dir: &str, schema: SchemaRef, writer: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                storage,
                table: table.to_string(),
                dir: dir.trim_end_matches('/').to_string(),
                schema,
                writer: writer.to_string(),
                queue: std::sync::Mutex::new(Vec::new()),
                chain: tokio::sync::Mutex::new(Chain::default()),
                compacting: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    /// The storage it writes to.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Stores `batch` (rows of partition `dt`, in the table's schema) and
    /// returns once a committed record lists them (group commit: see the
    /// module's documentation).
    pub async fn append(&self, dt: NaiveDate, batch: RecordBatch) -> Result<(), StorageError> {
        let (done, answer) = oneshot::channel();
        self.queue().push(Pending { dt, batch, done });
        // The commit runs in its own task: a caller that goes away (a
        // client that hangs up) does not cancel the commit of the entries
        // of others that it took with its own.
        let me = self.clone();
        tokio::spawn(async move {
            let mut chain = me.inner.chain.lock().await;
            let pending = std::mem::take(&mut *me.queue());
            if pending.is_empty() {
                return; // an earlier task committed this entry with its own
            }
            let result = me.commit_entries(&mut chain, &pending).await;
            if result.is_ok() {
                me.maybe_compact(&chain);
            }
            let shared = result.map_err(|e| e.to_string());
            for p in pending {
                let _ = p.done.send(shared.clone());
            }
        });
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(audit_err(&self.inner.table, e)),
            Err(_) => Err(audit_err(
                &self.inner.table,
                "the commit that took this entry stopped before it finished",
            )),
        }
    }

    /// The files the chain lists now, as paths under the storage root.
    pub async fn files(&self) -> Result<Vec<String>, StorageError> {
        let mut chain = self.inner.chain.lock().await;
        self.refresh(&mut chain).await?;
        Ok(chain.live.keys().cloned().collect())
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the records this instance has not read yet.
    async fn refresh(&self, chain: &mut Chain) -> Result<(), StorageError> {
        let table = &self.inner.table;
        let s = &self.inner.storage;
        if !chain.loaded {
            let mut seqs: Vec<u64> = s
                .list(&format!("{COMMITS}/{table}/"))
                .await?
                .iter()
                .filter_map(|p| record::seq_of(table, p))
                .collect();
            seqs.sort_unstable();
            for seq in seqs {
                let path = record_path(table, seq);
                let bytes = s.get(&path).await?;
                apply(chain, &path, &bytes)?;
            }
            chain.loaded = true;
        }
        loop {
            let Some(next) = chain
                .head
                .as_ref()
                .map_or(Some(1), |(seq, _)| seq.checked_add(1))
            else {
                return Ok(());
            };
            let path = record_path(table, next);
            match s.get(&path).await {
                Ok(bytes) => apply(chain, &path, &bytes)?,
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes `record` (its `seq` and `prev_sha256` set here) at the head
    /// of the chain; when another instance took the place first, reads its
    /// record and, if `still_valid` holds on the new state, tries the next.
    async fn commit_record(
        &self,
        chain: &mut Chain,
        mut record: AuditRecord,
        still_valid: impl Fn(&Chain) -> bool,
    ) -> Result<bool, StorageError> {
        loop {
            self.refresh(chain).await?;
            if !still_valid(chain) {
                return Ok(false);
            }
            let (seq, prev) = chain
                .head
                .as_ref()
                .map_or((1, GENESIS.to_string()), |(s, h)| {
                    (s.saturating_add(1), h.clone())
                });
            if chain.head.as_ref().is_some_and(|(s, _)| *s == u64::MAX) {
                return Err(audit_err(
                    &self.inner.table,
                    "the chain's newest record has the highest sequence number; see tollgate verify",
                ));
            }
            record.seq = seq;
            record.prev_sha256 = prev;
            record.committed_at = Utc::now();
            let path = record_path(&self.inner.table, seq);
            let bytes = record.to_bytes();
            if self.inner.storage.create(&path, bytes.clone()).await? {
                apply(chain, &path, &bytes)?;
                return Ok(true);
            }
        }
    }

    fn record(
        &self,
        kind: Kind,
        added: Vec<CommittedFile>,
        removed: Vec<CommittedFile>,
    ) -> AuditRecord {
        AuditRecord {
            format: FORMAT,
            table: self.inner.table.clone(),
            seq: 0,
            prev_sha256: String::new(),
            kind,
            added,
            removed,
            committed_at: Utc::now(),
            writer: self.inner.writer.clone(),
        }
    }

    /// Writes `batches` as one file per partition under `dir` and describes them.
    async fn write_files(
        &self,
        parts: BTreeMap<NaiveDate, Vec<RecordBatch>>,
    ) -> Result<Vec<CommittedFile>, StorageError> {
        let table = &self.inner.table;
        let mut added = Vec::new();
        for (dt, batches) in parts {
            let batch = arrow::compute::concat_batches(&self.inner.schema, &batches)
                .map_err(|e| audit_err(table, e))?;
            let bytes = parquet_bytes(table, &batch)?;
            let path = files::new_path(&self.inner.dir, dt);
            let mut file = files::describe(table, &path, &bytes, batch.num_rows() as u64);
            file.rows_sha256 = Some(files::rows_digest(&[batch]).map_err(|e| audit_err(table, e))?);
            self.inner.storage.write(&path, bytes).await?;
            added.push(file);
        }
        Ok(added)
    }

    async fn commit_entries(
        &self,
        chain: &mut Chain,
        pending: &[Pending],
    ) -> Result<(), StorageError> {
        self.refresh(chain).await?;
        if chain.head.is_none() {
            self.adopt(chain).await?;
        }
        let mut parts: BTreeMap<NaiveDate, Vec<RecordBatch>> = BTreeMap::new();
        for p in pending {
            parts.entry(p.dt).or_default().push(p.batch.clone());
        }
        let added = self.write_files(parts).await?;
        let record = self.record(Kind::Append, added.clone(), Vec::new());
        match self.commit_record(chain, record, |_| true).await {
            Ok(_) => Ok(()),
            Err(e) => {
                for f in added {
                    let _ = self.inner.storage.delete(&f.path).await;
                }
                Err(e)
            }
        }
    }

    /// Rewrites the files of an earlier version (no chain yet) into the chain.
    async fn adopt(&self, chain: &mut Chain) -> Result<(), StorageError> {
        let table = &self.inner.table;
        let old: Vec<String> = self
            .inner
            .storage
            .list(&format!("{}/", self.inner.dir))
            .await?
            .into_iter()
            .filter(|p| files::is_legacy(p))
            .collect();
        if old.is_empty() {
            return Ok(());
        }
        tracing::info!(table = %table, files = old.len(), "adopting audit files of an earlier version into the commit chain");
        // A file that cannot be read is left out (and stays an orphan):
        // one bad old file must not stop every later commit.
        let (parts, removed) = self.read_files(&old, true).await?;
        if removed.is_empty() {
            return Ok(());
        }
        let added = self.write_files(parts).await?;
        let record = self.record(Kind::Adopt, added.clone(), removed);
        if !self
            .commit_record(chain, record, |c| c.head.is_none())
            .await?
        {
            for f in added {
                let _ = self.inner.storage.delete(&f.path).await;
            }
        }
        Ok(())
    }

    /// Reads `paths` in the table's schema, by partition, and describes them.
    async fn read_files(
        &self,
        paths: &[String],
        skip_unreadable: bool,
    ) -> Result<(BTreeMap<NaiveDate, Vec<RecordBatch>>, Vec<CommittedFile>), StorageError> {
        let table = &self.inner.table;
        let mut parts: BTreeMap<NaiveDate, Vec<RecordBatch>> = BTreeMap::new();
        let mut described = Vec::new();
        for path in paths {
            let read = async {
                let dt = dt_of(path).ok_or_else(|| {
                    audit_err(table, format!("{path}: not under a dt= partition"))
                })?;
                let bytes = self.inner.storage.get(path).await?;
                let batches = files::read(bytes.clone(), &self.inner.schema, path)
                    .map_err(|e| audit_err(table, e))?;
                Ok::<_, StorageError>((dt, bytes, batches))
            };
            let (dt, bytes, batches) = match read.await {
                Ok(r) => r,
                Err(e) if skip_unreadable => {
                    tracing::warn!(table = %table, path = %path, error = %e, "an audit file of an earlier version cannot be read; it is left where it is (verify names it)");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
            described.push(files::describe(table, path, &bytes, rows));
            parts.entry(dt).or_default().extend(batches);
        }
        Ok((parts, described))
    }

    /// Starts a compaction of every partition holding [`COMPACT_AT`] small
    /// files, and deletes files removed more than [`KEEP_REMOVED`] ago.
    fn maybe_compact(&self, chain: &Chain) {
        let mut small: BTreeMap<NaiveDate, usize> = BTreeMap::new();
        for f in chain.live.values() {
            if f.rows < SMALL_ROWS && !chain.outputs.contains(&f.path) {
                if let Some(dt) = dt_of(&f.path) {
                    *small.entry(dt).or_default() += 1;
                }
            }
        }
        let due: Vec<NaiveDate> = small
            .into_iter()
            .filter(|(_, n)| *n >= COMPACT_AT)
            .map(|(dt, _)| dt)
            .collect();
        let cutoff = Utc::now() - KEEP_REMOVED;
        let expired = chain.removed.iter().any(|(_, at)| *at < cutoff);
        if due.is_empty() && !expired {
            return;
        }
        use std::sync::atomic::Ordering;
        if self.inner.compacting.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            for dt in due {
                if let Err(e) = me.compact(dt).await {
                    tracing::warn!(table = %me.inner.table, %dt, error = %e, "audit compaction failed; it is tried again after a later commit");
                }
            }
            me.delete_removed(cutoff).await;
            me.inner.compacting.store(false, Ordering::Release);
        });
    }

    /// Rewrites partition `dt`'s small files as one, recorded in the chain.
    /// Returns the number of files compacted (0 if another instance did it).
    pub async fn compact(&self, dt: NaiveDate) -> Result<usize, StorageError> {
        let inputs: Vec<String> = {
            let mut chain = self.inner.chain.lock().await;
            self.refresh(&mut chain).await?;
            chain
                .live
                .values()
                .filter(|f| {
                    f.rows < SMALL_ROWS
                        && dt_of(&f.path) == Some(dt)
                        && !chain.outputs.contains(&f.path)
                })
                .map(|f| f.path.clone())
                .collect()
        };
        if inputs.len() < 2 {
            return Ok(0);
        }
        let (parts, removed) = self.read_files(&inputs, false).await?;
        let added = self.write_files(parts).await?;
        let record = self.record(Kind::Compact, added.clone(), removed.clone());
        let mut chain = self.inner.chain.lock().await;
        let still_live = |c: &Chain| {
            removed
                .iter()
                .all(|f| c.live.get(&f.path).is_some_and(|l| l.sha256 == f.sha256))
        };
        if self.commit_record(&mut chain, record, still_live).await? {
            tracing::info!(table = %self.inner.table, %dt, files = inputs.len(), "audit files compacted");
            Ok(inputs.len())
        } else {
            for f in added {
                let _ = self.inner.storage.delete(&f.path).await;
            }
            Ok(0)
        }
    }

    /// Deletes the files removed by records older than `cutoff`.
    async fn delete_removed(&self, cutoff: DateTime<Utc>) {
        let expired: Vec<String> = {
            let mut chain = self.inner.chain.lock().await;
            let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut chain.removed)
                .into_iter()
                .partition(|(_, at)| *at < cutoff);
            chain.removed = keep;
            old.into_iter().map(|(p, _)| p).collect()
        };
        for path in expired {
            if let Err(e) = self.inner.storage.delete(&path).await {
                tracing::warn!(path = %path, error = %e, "deleting a compacted audit file failed");
            }
        }
    }
}

/// Applies the record at `path` to `chain`.
fn apply(chain: &mut Chain, path: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let record: AuditRecord =
        serde_json::from_slice(bytes).map_err(|e| StorageError::BadRecord {
            path: path.to_string(),
            message: e.to_string(),
        })?;
    // Files removed long ago were deleted by then (by whichever instance
    // was running); only recent ones are this instance's to delete.
    let recent = Utc::now() - chrono::Duration::days(1);
    for f in &record.removed {
        chain.live.remove(&f.path);
        chain.outputs.remove(&f.path);
        if record.committed_at > recent {
            // Deleted KEEP_REMOVED after this instance learnt of it (its
            // own clock, not the writer's).
            chain.removed.push((f.path.clone(), Utc::now()));
        }
    }
    for f in record.added {
        if record.kind != Kind::Append {
            chain.outputs.insert(f.path.clone());
        }
        chain.live.insert(f.path.clone(), f);
    }
    chain.head = Some((record.seq, sha256_hex(bytes)));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn record_paths_round_trip() {
        let p = record_path("query_log", 42);
        assert_eq!(p, "audit/_commits/query_log/00000000000000000042.json");
        assert_eq!(record::seq_of("query_log", &p), Some(42));
        assert_eq!(record::seq_of("alerts", &p), None);
        assert_eq!(
            record::seq_of("query_log", "audit/_commits/query_log/42.json"),
            None
        );
    }

    #[test]
    fn only_files_of_earlier_versions_are_adopted() {
        let new = files::new_path(
            "audit/queries",
            NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
        );
        assert!(!files::is_legacy(&new), "{new}");
        assert!(files::is_legacy(
            "audit/queries/dt=2026-11-24/1764000000000000-0123456789abcdef.started.parquet"
        ));
        assert!(!files::is_legacy("audit/queries/dt=2026-11-24/notes.txt"));
    }

    #[test]
    fn dt_comes_from_the_partition_directory() {
        assert_eq!(
            dt_of("audit/queries/dt=2026-11-24/x.parquet"),
            NaiveDate::from_ymd_opt(2026, 11, 24)
        );
        assert_eq!(dt_of("audit/queries/x.parquet"), None);
    }
}
