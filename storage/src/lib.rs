//! The audit log on object storage: Parquet (zstd) tables in Hive-style
//! `dt=` partitions, and per Kafka partition a chain of commit records that
//! lists every file with its SHA-256. See `docs/storage.md`.
//!
//! **Owns** the [`Storage`] handle (every durable object of the product goes
//! through it), the commit protocol and its crash points ([`crash`]),
//! recovery, the dedupe index, `verify`, the four tables' schemas and their
//! one Parquet writer configuration, and the chained audit tables
//! ([`audit_log`]).
//!
//! **May touch** the object store (local directory, `file://`, `memory://`
//! or `s3://`) and nothing else: no Kafka, no clock but the commit time it
//! records. It knows events only as `tollgate-event` decodes them.
//!
//! Layout under the root (a local directory or an object-store URL):
//!
//! ```text
//! tables/<table>/dt=YYYY-MM-DD/p<partition>-<first offset>-<last offset>.parquet
//! commits/<topic>/p<partition>/<seq>.json
//! staging/<writer>/tables/...        (files written, not yet committed)
//! ```
//!
//! A batch is written to `staging/`, committed by creating its record with
//! create-if-absent semantics (a stale writer cannot commit the same
//! sequence number), then published by moving its files into `tables/`.
//! [`Storage::recover`] finishes or discards what a crash left half-done.

pub mod audit_log;
pub mod blocking;
mod commit;
pub mod crash;
mod dedupe;
mod tables;
mod verify;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use secrecy::ExposeSecret;
use tokio::sync::Mutex;

pub use commit::{sha256_hex, CommitRecord, CommittedFile, GENESIS};
pub use crash::{CommitStep, CrashHook, StoreCrashHook, StoreFault, StoreWrite};
pub use dedupe::{event_key, DedupeIndex, EventKey, KeyHasher, KeySet};
pub use tables::{
    dead_letters_batch, dead_letters_schema, events_batch, events_schema, gpu_usage_batch,
    gpu_usage_schema, tool_calls_batch, tool_calls_schema, DeadLetter, KafkaCoords, StoredEvent,
};
pub use verify::{ChainSummary, DerivedChain, Problem, VerifyReport};

mod config;
pub use config::StorageConfig;

/// A name for this instance in what it writes: `role@host-pid` (the
/// host name is the pod's under Kubernetes).
pub fn instance_name(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host = host.trim().replace(['/', '\\'], "_");
    let host = if host.is_empty() {
        "host"
    } else {
        host.as_str()
    };
    format!("{role}@{host}-{}", std::process::id())
}

/// Table names.
pub const TABLES: [&str; 4] = ["events", "tool_calls", "gpu_usage", "dead_letters"];

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The storage URL or directory is unusable.
    #[error("storage: {0}")]
    Config(String),
    /// The object store refused an operation.
    #[error("storage: {context}: {source}")]
    Store {
        /// What was being done.
        context: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// Encoding a table failed.
    #[error("storage: writing {table}: {message}")]
    Encode {
        /// The table.
        table: String,
        /// What went wrong.
        message: String,
    },
    /// Another writer committed this sequence number first (after a
    /// rebalance this instance no longer owns the partition). The batch was
    /// discarded; re-read the partition's last commit and seek past it.
    #[error("storage: {topic}/{partition} seq {seq} was committed by another writer (this instance no longer owns the partition); this batch was discarded: re-read the partition's chain and continue after its last record")]
    Fenced {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The sequence number taken.
        seq: u64,
    },
    /// A test's crash hook stopped a commit at this step (never in
    /// production: see [`crash`]).
    #[error(
        "storage: commit stopped {0} by a crash hook (tests only); restart the writer to recover"
    )]
    Crashed(CommitStep),
    /// The batch does not start where the partition's chain ends.
    #[error("storage: {topic}/{partition}: batch starts at offset {first} but the last commit ends at {last}; seek to {next}")]
    OffsetGap {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The batch's first offset.
        first: i64,
        /// The chain's last offset.
        last: i64,
        /// Where the batch should start.
        next: i64,
    },
    /// A commit record could not be read.
    #[error("storage: {path} is not a commit record: {message}")]
    BadRecord {
        /// Its path.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl StorageError {
    /// Whether the object asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            StorageError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }
        )
    }
}

fn store_err(context: impl Into<String>) -> impl FnOnce(object_store::Error) -> StorageError {
    let context = context.into();
    move |source| StorageError::Store { context, source }
}

/// One Kafka partition's records between two offsets, ready to store.
#[derive(Debug, Clone)]
pub struct PartitionBatch {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset read.
    pub first_offset: i64,
    /// Last offset read.
    pub last_offset: i64,
    /// Valid events, redacted.
    pub events: Vec<StoredEvent>,
    /// Records that could not be stored as events.
    pub dead_letters: Vec<DeadLetter>,
    /// Valid events skipped as duplicates of stored ones.
    pub duplicates: u64,
    /// The partition's log start the writer found when no record existed
    /// yet (its first batch only); stated in the chain's first record.
    pub log_start: Option<i64>,
}

/// What recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Committed files moved from staging into the tables.
    pub published: usize,
    /// Uncommitted staging files deleted, and staged copies of committed
    /// files that are not the committed bytes (another writer's, or changed).
    pub discarded: usize,
    /// Temporary files of interrupted writes deleted (local storage).
    pub temporary: usize,
}

/// A chain's last record and the SHA-256 of its bytes.
type Head = (CommitRecord, String);

/// The storage root.
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    root: Path,
    writer: String,
    /// The last record of each (topic, partition) this writer knows, with its hash.
    heads: Mutex<HashMap<(String, i32), Option<Head>>>,
    description: String,
    /// The directory of a storage on the local filesystem (where an
    /// interrupted write can leave a temporary file the store never lists).
    local_dir: Option<std::path::PathBuf>,
    /// Time spent in each stage of the commits since the last
    /// [`Storage::take_write_times`].
    times: std::sync::Mutex<WriteTimes>,
    /// Stops commits at a step, for crash tests (none in production).
    crash: Option<CrashHook>,
}

/// Wall-clock time a writer spent in each stage of its commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteTimes {
    /// Building the Arrow batches and encoding them as Parquet (zstd).
    pub encode: std::time::Duration,
    /// Hashing the encoded files (SHA-256).
    pub hash: std::time::Duration,
    /// Writing files and commit records to the store, and publishing.
    pub store: std::time::Duration,
}

impl WriteTimes {
    /// Adds `other` to these.
    pub fn add(&mut self, other: &WriteTimes) {
        self.encode += other.encode;
        self.hash += other.hash;
        self.store += other.store;
    }
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({})", self.description)
    }
}

impl Storage {
    /// Opens the storage of `config`: `storage.url` if set (`file:///...`,
    /// `memory:///`), else `storage.data_dir` on the local filesystem
    /// (created if missing). `writer` names this instance in commit records.
    pub fn open(config: &StorageConfig, writer: &str) -> Result<Self, StorageError> {
        let mut local_dir = None;
        let (store, root, description): (Arc<dyn ObjectStore>, Path, String) = match &config.url {
            Some(u) => {
                let url = url::Url::parse(u)
                    .map_err(|e| StorageError::Config(format!("storage.url {u:?}: {e}")))?;
                // AWS_* variables as the AWS tools read them, then the
                // configured options (which win).
                let mut options: Vec<(String, String)> = std::env::vars()
                    .filter(|(k, _)| k.starts_with("AWS_"))
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect();
                options.extend(config.options.iter().map(|(k, v)| (k.clone(), v.clone())));
                options.extend(
                    config
                        .secret_options
                        .iter()
                        .map(|(k, v)| (k.clone(), v.expose_secret().to_string())),
                );
                let (store, root) = object_store::parse_url_opts(&url, options).map_err(|e| {
                    StorageError::Config(format!(
                        "storage.url {u}: {e} (this build reads file://, memory:// and s3:// URLs)"
                    ))
                })?;
                if url.scheme() == "file" {
                    local_dir = url.to_file_path().ok();
                }
                (Arc::from(store), root, u.clone())
            }
            None => {
                let dir = &config.data_dir;
                std::fs::create_dir_all(dir).map_err(|e| {
                    StorageError::Config(format!("creating {}: {e}", dir.display()))
                })?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(store_err(format!("opening {}", dir.display())))?;
                local_dir = Some(dir.clone());
                (Arc::new(fs), Path::default(), dir.display().to_string())
            }
        };
        Ok(Self {
            store,
            root,
            writer: writer.to_string(),
            heads: Mutex::new(HashMap::new()),
            description,
            local_dir,
            times: std::sync::Mutex::default(),
            crash: None,
        })
    }

    /// Stops this handle's commits wherever `hook` says (tests of crash
    /// recovery; see [`crash`]).
    pub fn with_crash_hook(mut self, hook: CrashHook) -> Self {
        self.crash = Some(hook);
        self
    }

    /// Kills this handle's object store at the write `hook` picks (tests of
    /// crash recovery; see [`crash`]).
    pub fn with_store_crash(mut self, hook: StoreCrashHook) -> Self {
        self.store = Arc::new(crash::CrashingStore::new(self.store, hook));
        self
    }

    /// Passes crash point `step`: an error when the crash hook stops it.
    pub fn crash_point(&self, step: CommitStep) -> Result<(), StorageError> {
        match &self.crash {
            Some(hook) if hook(step) => Err(StorageError::Crashed(step)),
            _ => Ok(()),
        }
    }

    /// The time spent in each stage of the commits since the last call,
    /// and resets it (for metrics and the run's summary).
    pub fn take_write_times(&self) -> WriteTimes {
        self.times
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
    }

    fn add_time(
        &self,
        stage: fn(&mut WriteTimes) -> &mut std::time::Duration,
        since: std::time::Instant,
    ) {
        if let Ok(mut t) = self.times.lock() {
            *stage(&mut t) += since.elapsed();
        }
    }

    /// The object store the tables live in (for readers such as the
    /// ledger's DataFusion context), and the root path inside it.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Where the storage is, for messages.
    pub fn description(&self) -> &str {
        &self.description
    }

    fn path(&self, rel: &str) -> Path {
        let mut p = self.root.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.join(part);
        }
        p
    }

    fn rel(&self, p: &Path) -> String {
        let full = p.as_ref();
        let root = self.root.as_ref();
        full.strip_prefix(root)
            .unwrap_or(full)
            .trim_start_matches('/')
            .to_string()
    }

    fn record_path(topic: &str, partition: i32, seq: u64) -> String {
        format!("commits/{topic}/p{partition:05}/{seq:020}.json")
    }

    async fn get(&self, rel: &str) -> Result<bytes::Bytes, StorageError> {
        let r = self
            .store
            .get(&self.path(rel))
            .await
            .map_err(store_err(format!("reading {rel}")))?;
        r.bytes().await.map_err(store_err(format!("reading {rel}")))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let p = self.path(prefix);
        let metas: Vec<_> = self
            .store
            .list(Some(&p))
            .try_collect()
            .await
            .map_err(store_err(format!("listing {prefix}")))?;
        let mut out: Vec<String> = metas.iter().map(|m| self.rel(&m.location)).collect();
        out.sort();
        Ok(out)
    }

    /// The last committed record of a partition and the SHA-256 of its
    /// bytes, or `None` for a partition never committed.
    pub async fn last_commit(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<(CommitRecord, String)>, StorageError> {
        let key = (topic.to_string(), partition);
        if let Some(head) = self.heads.lock().await.get(&key) {
            return Ok(head.clone());
        }
        let head = self.read_last(topic, partition).await?;
        self.heads.lock().await.insert(key, head.clone());
        Ok(head)
    }

    async fn read_last(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<(CommitRecord, String)>, StorageError> {
        let records = self
            .list(&format!("commits/{topic}/p{partition:05}/"))
            .await?;
        let Some(last) = records.iter().rfind(|p| p.ends_with(".json")) else {
            return Ok(None);
        };
        let bytes = self.get(last).await?;
        let record: CommitRecord =
            serde_json::from_slice(&bytes).map_err(|e| StorageError::BadRecord {
                path: last.clone(),
                message: e.to_string(),
            })?;
        Ok(Some((record, sha256_hex(&bytes))))
    }

    /// Forgets what this writer knows of a partition's chain (after losing
    /// and regaining it in a rebalance, another writer may have committed).
    pub async fn forget(&self, topic: &str, partition: i32) {
        self.heads
            .lock()
            .await
            .remove(&(topic.to_string(), partition));
    }

    /// The offset to consume a partition from: after its last commit.
    pub async fn resume_offset(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, StorageError> {
        Ok(self
            .last_commit(topic, partition)
            .await?
            .map(|(r, _)| r.last_offset + 1))
    }

    /// Writes a batch: its files to staging, its commit record
    /// (create-if-absent), then its files into the tables.
    pub async fn commit(&self, batch: &PartitionBatch) -> Result<CommitRecord, StorageError> {
        let head = self.last_commit(&batch.topic, batch.partition).await?;
        if let Some((last, _)) = &head {
            if batch.first_offset != last.last_offset + 1 {
                return Err(StorageError::OffsetGap {
                    topic: batch.topic.clone(),
                    partition: batch.partition,
                    first: batch.first_offset,
                    last: last.last_offset,
                    next: last.last_offset + 1,
                });
            }
        }
        let (seq, prev) = match &head {
            Some((r, sha)) => (r.seq + 1, sha.clone()),
            None => (1, GENESIS.to_string()),
        };

        self.crash_point(CommitStep::BeforeStaging)?;
        let files = self.write_staged(batch).await?;
        self.crash_point(CommitStep::AfterStaging)?;
        let record = CommitRecord {
            format: 1,
            topic: batch.topic.clone(),
            partition: batch.partition,
            seq,
            prev_sha256: prev,
            first_offset: batch.first_offset,
            last_offset: batch.last_offset,
            records: (batch.events.len() + batch.dead_letters.len()) as u64 + batch.duplicates,
            stored: batch.events.len() as u64,
            dead_lettered: batch.dead_letters.len() as u64,
            duplicates: batch.duplicates,
            log_start: if seq == 1 { batch.log_start } else { None },
            files,
            committed_at: Utc::now(),
            writer: self.writer.clone(),
        };
        let bytes = record.to_bytes();
        let rel = Self::record_path(&batch.topic, batch.partition, seq);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let storing = std::time::Instant::now();
        let put = self
            .store
            .put_opts(&self.path(&rel), PutPayload::from(bytes.clone()), opts)
            .await;
        self.add_time(|t| &mut t.store, storing);
        match put {
            Ok(_) => {}
            Err(e) => {
                // The put may have landed although it reported an error (a
                // timeout after the store wrote it; a retried request that
                // then found its own first attempt): the record there
                // decides. Ours is committed; another's fences us; none
                // means nothing was committed. Unreadable: leave the staged
                // files for recovery, which knows once the store answers.
                let exists = matches!(e, object_store::Error::AlreadyExists { .. });
                match self.get(&rel).await {
                    Ok(there) if there == bytes => {
                        tracing::warn!(path = %rel, error = %e, "the commit record's write reported an error but the record is ours: committed");
                    }
                    Ok(_) => {
                        self.discard_staged(&record.files).await;
                        self.forget(&batch.topic, batch.partition).await;
                        return Err(StorageError::Fenced {
                            topic: batch.topic.clone(),
                            partition: batch.partition,
                            seq,
                        });
                    }
                    Err(read) if read.is_not_found() && !exists => {
                        self.discard_staged(&record.files).await;
                        return Err(store_err(format!("committing {rel}"))(e));
                    }
                    Err(_) => {
                        self.forget(&batch.topic, batch.partition).await;
                        return Err(store_err(format!(
                            "committing {rel} (whether it was written is unknown; recovery at the next start publishes or discards the staged files)"
                        ))(e));
                    }
                }
            }
        }
        self.crash_point(CommitStep::AfterRecord)?;
        self.heads.lock().await.insert(
            (batch.topic.clone(), batch.partition),
            Some((record.clone(), sha256_hex(&bytes))),
        );
        let storing = std::time::Instant::now();
        for f in &record.files {
            self.publish(&self.writer, &f.path).await?;
        }
        self.add_time(|t| &mut t.store, storing);
        self.crash_point(CommitStep::AfterPublish)?;
        Ok(record)
    }

    fn staging_path(writer: &str, path: &str) -> String {
        format!("staging/{writer}/{path}")
    }

    /// Moves a committed file from staging into the tables. Publishing twice
    /// (two instances recovering, or recovery racing the writer) is harmless:
    /// once the file is in place, a missing staged copy is not an error.
    async fn publish(&self, writer: &str, path: &str) -> Result<(), StorageError> {
        let from = self.path(&Self::staging_path(writer, path));
        let to = self.path(path);
        match self.store.rename(&from, &to).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) if self.store.head(&to).await.is_ok() => {
                Ok(())
            }
            Err(e) => Err(store_err(format!("publishing {path}"))(e)),
        }
    }

    async fn discard_staged(&self, files: &[CommittedFile]) {
        for f in files {
            let _ = self
                .store
                .delete(&self.path(&Self::staging_path(&self.writer, &f.path)))
                .await;
        }
    }

    async fn write_staged(
        &self,
        batch: &PartitionBatch,
    ) -> Result<Vec<CommittedFile>, StorageError> {
        let mut by_day: BTreeMap<NaiveDate, Vec<&StoredEvent>> = BTreeMap::new();
        for e in &batch.events {
            by_day
                .entry(e.event.envelope.time.date_naive())
                .or_default()
                .push(e);
        }
        let now = Utc::now();
        let mut dead_by_day: BTreeMap<NaiveDate, Vec<&DeadLetter>> = BTreeMap::new();
        for d in &batch.dead_letters {
            dead_by_day
                .entry(d.kafka.timestamp.unwrap_or(now).date_naive())
                .or_default()
                .push(d);
        }
        let name = format!(
            "p{:05}-{:020}-{:020}.parquet",
            batch.partition, batch.first_offset, batch.last_offset
        );
        let encoding = std::time::Instant::now();
        // Arrow batches first, then every file encoded (Parquet and zstd
        // are the costly part of a commit) one after the other: the
        // pipeline writes a batch in a task beside the one that decides the
        // next, so encoding them in parallel would only take that task's
        // core. Then staged in order.
        let mut tables: Vec<(&str, NaiveDate, arrow::array::RecordBatch)> = Vec::new();
        for (day, rows) in &by_day {
            tables.push((
                "events",
                *day,
                events_batch(rows).map_err(|e| encode_err("events", e))?,
            ));
            let calls = tool_calls_batch(rows).map_err(|e| encode_err("tool_calls", e))?;
            if calls.num_rows() > 0 {
                tables.push(("tool_calls", *day, calls));
            }
            let gpu = gpu_usage_batch(rows).map_err(|e| encode_err("gpu_usage", e))?;
            if gpu.num_rows() > 0 {
                tables.push(("gpu_usage", *day, gpu));
            }
        }
        for (day, rows) in &dead_by_day {
            let dead = dead_letters_batch(rows).map_err(|e| encode_err("dead_letters", e))?;
            tables.push(("dead_letters", *day, dead));
        }
        let encoded = tables
            .iter()
            .map(|(table, _, batch)| parquet_bytes(table, batch))
            .collect::<Result<Vec<_>, _>>()?;
        self.add_time(|t| &mut t.encode, encoding);
        let mut files = Vec::with_capacity(tables.len());
        for ((table, day, batch), bytes) in tables.iter().zip(encoded) {
            files.push(
                self.stage(table, *day, &name, batch.num_rows(), bytes)
                    .await?,
            );
        }
        Ok(files)
    }

    async fn stage(
        &self,
        table: &str,
        day: NaiveDate,
        name: &str,
        rows: usize,
        bytes: Vec<u8>,
    ) -> Result<CommittedFile, StorageError> {
        let path = format!("tables/{table}/dt={day}/{name}");
        let staged = Self::staging_path(&self.writer, &path);
        let hashing = std::time::Instant::now();
        let sha256 = sha256_hex(&bytes);
        self.add_time(|t| &mut t.hash, hashing);
        let file = CommittedFile {
            path,
            table: table.to_string(),
            rows: rows as u64,
            bytes: bytes.len() as u64,
            sha256,
            rows_sha256: None,
        };
        let storing = std::time::Instant::now();
        self.store
            .put(&self.path(&staged), PutPayload::from(bytes))
            .await
            .map_err(store_err(format!("staging {staged}")))?;
        self.add_time(|t| &mut t.store, storing);
        Ok(file)
    }

    /// All commit records, by (topic, partition), in sequence order, with
    /// their paths and bytes.
    pub(crate) async fn chains(
        &self,
    ) -> Result<BTreeMap<(String, i32), Vec<(String, bytes::Bytes)>>, StorageError> {
        let mut chains: BTreeMap<(String, i32), Vec<(String, bytes::Bytes)>> = BTreeMap::new();
        for rel in self.list("commits/").await? {
            let parts: Vec<&str> = rel.split('/').collect();
            let key = match parts.as_slice() {
                ["commits", topic, p, _file] => p
                    .strip_prefix('p')
                    .and_then(|n| n.parse::<i32>().ok())
                    .map(|n| (topic.to_string(), n)),
                _ => None,
            };
            let key = key.unwrap_or_else(|| (String::new(), -1));
            let bytes = self.get(&rel).await?;
            chains.entry(key).or_default().push((rel, bytes));
        }
        Ok(chains)
    }

    /// The paths of a table's files that commit records list (the files
    /// that belong to the log), in chain order.
    pub async fn committed_files(&self, table: &str) -> Result<Vec<String>, StorageError> {
        let mut out = Vec::new();
        for (_, records) in self.chains().await? {
            for (path, bytes) in records {
                let r: CommitRecord =
                    serde_json::from_slice(&bytes).map_err(|e| StorageError::BadRecord {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                out.extend(
                    r.files
                        .into_iter()
                        .filter(|f| f.table == table)
                        .map(|f| f.path),
                );
            }
        }
        Ok(out)
    }

    /// The partitions of `topic` that have a commit chain.
    pub async fn partitions(&self, topic: &str) -> Result<Vec<i32>, StorageError> {
        let prefix = self.path(&format!("commits/{topic}/"));
        let listed = self
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(store_err(format!("listing commits/{topic}/")))?;
        let mut out: Vec<i32> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename()?.strip_prefix('p')?.parse().ok())
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// A partition's commit records with a sequence number above `after`,
    /// in order.
    pub async fn records_after(
        &self,
        topic: &str,
        partition: i32,
        after: u64,
    ) -> Result<Vec<CommitRecord>, StorageError> {
        let mut out = Vec::new();
        for rel in self
            .list(&format!("commits/{topic}/p{partition:05}/"))
            .await?
        {
            let seq = rel
                .rsplit('/')
                .next()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok());
            if seq.is_none_or(|s| s <= after) {
                continue;
            }
            let bytes = self.get(&rel).await?;
            out.push(
                serde_json::from_slice(&bytes).map_err(|e| StorageError::BadRecord {
                    path: rel.clone(),
                    message: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    /// The dedupe keys and event times of the `events` file at `path` that
    /// `record` lists, read from the tables or, when its writer has not
    /// published it yet (it is writing, or died between its record and
    /// publishing, and no recovery ran since), from that writer's staging.
    pub async fn committed_event_keys(
        &self,
        record: &CommitRecord,
        path: &str,
    ) -> Result<Vec<(EventKey, chrono::DateTime<Utc>)>, StorageError> {
        match self.event_keys(path).await {
            Err(e) if e.is_not_found() => {
                match self
                    .event_keys(&Self::staging_path(&record.writer, path))
                    .await
                {
                    // Published between the two reads.
                    Err(e) if e.is_not_found() => self.event_keys(path).await,
                    other => other,
                }
            }
            other => other,
        }
    }

    /// The dedupe keys and event times of an `events` file.
    pub async fn event_keys(
        &self,
        path: &str,
    ) -> Result<Vec<(EventKey, chrono::DateTime<Utc>)>, StorageError> {
        let bytes = self.get(path).await?;
        tables::event_keys(bytes).map_err(|e| StorageError::Encode {
            table: format!("events ({path})"),
            message: format!("reading the event ids back: {e}"),
        })
    }

    /// The paths of the files under `prefix` (relative to the root), sorted.
    pub async fn list_files(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.list(prefix).await
    }

    /// The topics that have commit chains.
    pub async fn topics(&self) -> Result<Vec<String>, StorageError> {
        let prefix = self.path("commits/");
        let listed = self
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(store_err("listing commits/"))?;
        let mut out: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Whether a file exists under the root.
    pub async fn exists(&self, path: &str) -> Result<bool, StorageError> {
        match self.store.head(&self.path(path)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_err(format!("reading {path}"))(e)),
        }
    }

    /// Writes (or replaces) a file under the root.
    pub async fn write(&self, path: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.store
            .put(&self.path(path), PutPayload::from(bytes))
            .await
            .map_err(store_err(format!("writing {path}")))?;
        Ok(())
    }

    /// Creates a file under the root unless it exists (the same conditional
    /// put commit records use): `false` when another writer created it first.
    pub async fn create(&self, path: &str, bytes: Vec<u8>) -> Result<bool, StorageError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.path(path), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(store_err(format!("creating {path}"))(e)),
        }
    }

    /// Deletes a file under the root (a missing file is not an error).
    pub async fn delete(&self, path: &str) -> Result<(), StorageError> {
        match self.store.delete(&self.path(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err(format!("deleting {path}"))(e)),
        }
    }

    /// Deletes every file under `prefix` (relative to the root); returns
    /// how many there were.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        let mut n = 0;
        for rel in self.list(prefix).await? {
            self.delete(&rel).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Removes `topic` from the audit log: the files its commit records
    /// list, then the records (for the demo, which starts a fresh chain on
    /// each run; never used on a production topic). Returns the number of
    /// records removed.
    pub async fn remove_topic(&self, topic: &str) -> Result<u64, StorageError> {
        let mut removed = 0;
        for p in self.partitions(topic).await? {
            for record in self.records_after(topic, p, 0).await? {
                for f in &record.files {
                    self.delete(&f.path).await?;
                }
                removed += 1;
            }
            self.forget(topic, p).await;
        }
        self.delete_prefix(&format!("commits/{topic}/")).await?;
        Ok(removed)
    }

    /// The bytes of a file under the root.
    pub async fn read(&self, path: &str) -> Result<bytes::Bytes, StorageError> {
        self.get(path).await
    }

    /// Finishes what a crash left half-done, once older than `grace` where
    /// it may belong to an instance writing right now:
    ///
    /// - a staged file whose path a record lists is published only when the
    ///   record's writer staged it and its SHA-256 is the one the record
    ///   states; any other staged copy (a killed writer's, for offsets
    ///   another writer committed since under the same name) is deleted,
    ///   never moved over the committed file;
    /// - staged files no record lists are deleted;
    /// - temporary files of interrupted writes (`name#N`, which a local
    ///   store never lists) are deleted.
    pub async fn recover(&self, grace: std::time::Duration) -> Result<Recovery, StorageError> {
        let mut out = Recovery {
            temporary: self.clean_temporary(grace).await?,
            ..Recovery::default()
        };
        let staged: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&self.path("staging/")))
            .try_collect()
            .await
            .map_err(store_err("listing staging/"))?;
        if staged.is_empty() {
            return Ok(out);
        }
        // Every committed file: the writer that committed it and its hash.
        let mut committed: HashMap<String, (String, String)> = HashMap::new();
        for (_, records) in self.chains().await? {
            for (_, bytes) in records {
                if let Ok(r) = serde_json::from_slice::<CommitRecord>(&bytes) {
                    for f in r.files {
                        committed.insert(f.path, (r.writer.clone(), f.sha256));
                    }
                }
            }
        }
        let cutoff = chrono::Duration::from_std(grace)
            .ok()
            .and_then(|g| Utc::now().checked_sub_signed(g))
            .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
        for meta in staged {
            let rel = self.rel(&meta.location);
            // staging/<writer>/<path>
            let mut parts = rel.splitn(3, '/');
            let (_, writer, path) = (
                parts.next(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let ours = match committed.get(path) {
                Some((by, sha)) if by == writer => match self.get(&rel).await {
                    Ok(bytes) => &sha256_hex(&bytes) == sha,
                    // Another instance recovering, or the writer itself,
                    // published it since it was listed.
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                },
                _ => false,
            };
            if ours {
                self.publish(writer, path).await?;
                out.published += 1;
            } else if meta.last_modified < cutoff || committed.contains_key(path) {
                // Not the committed bytes: a stale copy, never published.
                if committed.contains_key(path) {
                    tracing::warn!(
                        staged = %rel,
                        "a staged copy of a committed file that is not the committed bytes (another writer's, or changed) was deleted"
                    );
                }
                match self.store.delete(&meta.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => out.discarded += 1,
                    Err(e) => return Err(store_err(format!("deleting {rel}"))(e)),
                }
            }
        }
        self.heads.lock().await.clear();
        Ok(out)
    }

    /// Deletes the temporary files interrupted writes left in a local
    /// storage (`<name>#<digits>`, older than `grace`); 0 for other stores,
    /// whose writes are atomic.
    async fn clean_temporary(&self, grace: std::time::Duration) -> Result<usize, StorageError> {
        let Some(dir) = self.local_dir.clone() else {
            return Ok(0);
        };
        // A local write's temporary file lives for as long as one file
        // takes to write: a minute is ample, whatever `grace` says.
        let grace = grace.min(std::time::Duration::from_secs(60));
        tokio::task::spawn_blocking(move || {
            // Only Tollgate's own folders: a data directory may be the root
            // of a volume holding other things (`lost+found`).
            ["staging", "commits", "tables", "audit", "ledger", "keys"]
                .iter()
                .map(|d| clean_temporary_files(&dir.join(d), grace))
                .sum::<usize>()
        })
        .await
        .map_err(|e| StorageError::Config(format!("cleaning temporary files: {e}")))
    }

    /// Checks every chain and every file. See [`VerifyReport`].
    pub async fn verify(&self) -> Result<VerifyReport, StorageError> {
        verify::run(self).await
    }
}

/// Whether a file name is a local store's temporary file: `<name>#<digits>`.
fn is_temporary(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Walks `dir` and deletes the temporary files older than `grace`.
fn clean_temporary_files(dir: &std::path::Path, grace: std::time::Duration) -> usize {
    let mut deleted = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                // A folder this process may not read holds nothing it wrote.
                tracing::warn!(folder = %d.display(), error = %e, "not cleaned of temporary files: cannot be listed");
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(path);
            } else if is_temporary(&entry.file_name().to_string_lossy()) {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= grace);
                if old && std::fs::remove_file(&path).is_ok() {
                    tracing::info!(file = %path.display(), "deleted the temporary file of an interrupted write");
                    deleted += 1;
                }
            }
        }
    }
    deleted
}

fn encode_err(table: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Encode {
        table: table.to_string(),
        message: e.to_string(),
    }
}

/// Encodes a batch as a Parquet file (zstd).
fn parquet_bytes(table: &str, batch: &arrow::array::RecordBatch) -> Result<Vec<u8>, StorageError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).map_err(|e| encode_err(table, e))?,
        ))
        .set_created_by(format!("tollgate {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))
        .map_err(|e| encode_err(table, e))?;
    w.write(batch).map_err(|e| encode_err(table, e))?;
    w.into_inner().map_err(|e| encode_err(table, e))
}
