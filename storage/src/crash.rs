//! Crash points, for tests that stop a writer and check that a restarted one
//! loses and duplicates nothing. Two kinds:
//!
//! - the named steps of the commit protocol ([`CommitStep`]): with a
//!   [`CrashHook`], [`Storage::commit`](crate::Storage::commit) asks it at
//!   each step and, when it answers `true`, returns
//!   [`StorageError::Crashed`](crate::StorageError::Crashed) at once,
//!   leaving the store exactly as a process killed there would;
//! - every write to the object store ([`StoreWrite`]): with a
//!   [`StoreCrashHook`], the store dies at the write it picks (it and every
//!   later operation fail), or makes the write and reports an error
//!   ([`StoreFault`]), whatever step issues it.
//!
//! A [`Storage`](crate::Storage) without hooks (every production instance)
//! passes every point.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

/// A step of the commit protocol, in the order a commit passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommitStep {
    /// Nothing of the batch is written yet.
    BeforeStaging,
    /// Its files are in `staging/`; no commit record yet.
    AfterStaging,
    /// Its commit record exists; its files are still in `staging/`.
    AfterRecord,
    /// Its files are in `tables/`; the consumer group's offset is not moved.
    AfterPublish,
    /// The consumer group's offset follows the record (the pipeline's last
    /// step, after which nothing remains to do for the batch; passed by the
    /// pipeline through [`Storage::crash_point`](crate::Storage::crash_point),
    /// not by [`Storage::commit`](crate::Storage::commit)).
    AfterGroupOffset,
}

impl CommitStep {
    /// Every step, in protocol order.
    pub const ALL: [CommitStep; 5] = [
        CommitStep::BeforeStaging,
        CommitStep::AfterStaging,
        CommitStep::AfterRecord,
        CommitStep::AfterPublish,
        CommitStep::AfterGroupOffset,
    ];
}

impl fmt::Display for CommitStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CommitStep::BeforeStaging => "before staging",
            CommitStep::AfterStaging => "after staging",
            CommitStep::AfterRecord => "after the commit record",
            CommitStep::AfterPublish => "after publishing",
            CommitStep::AfterGroupOffset => "after the group offset",
        })
    }
}

/// Asked at each step of each commit: `true` stops the commit there.
pub type CrashHook = Arc<dyn Fn(CommitStep) -> bool + Send + Sync>;

/// A write the store is asked to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreWrite {
    /// An object written (created or replaced).
    Put(String),
    /// An object moved.
    Rename {
        /// From.
        from: String,
        /// To.
        to: String,
    },
    /// An object copied.
    Copy {
        /// From.
        from: String,
        /// To.
        to: String,
    },
    /// Objects deleted.
    Delete,
}

/// What happens to a write to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFault {
    /// It is made.
    Pass,
    /// The store dies before it: it and every later operation fail, as
    /// for a process killed there.
    Die,
    /// It is made, but reports an error (a timeout after the store wrote
    /// it); the store keeps working.
    LandThenFail,
}

/// Asked before each write to the store.
pub type StoreCrashHook = Arc<dyn Fn(&StoreWrite) -> StoreFault + Send + Sync>;

/// An object store that dies at the write its hook picks: that write and
/// every operation after it fail, as for a process killed there. Crash
/// points at the store's level hold whatever order the commit's steps
/// are in, so a test over every write fails if a step is moved.
pub(crate) struct CrashingStore {
    inner: Arc<dyn ObjectStore>,
    hook: StoreCrashHook,
    dead: AtomicBool,
}

impl CrashingStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, hook: StoreCrashHook) -> Self {
        Self {
            inner,
            hook,
            dead: AtomicBool::new(false),
        }
    }

    /// Whether the operation may run: `Err` when the store is dead; `Ok(true)`
    /// when it runs but must report an error after.
    fn check(&self, write: Option<StoreWrite>) -> object_store::Result<bool> {
        let mut fail_after = false;
        if let Some(w) = write {
            if !self.dead.load(Ordering::SeqCst) {
                match (self.hook)(&w) {
                    StoreFault::Pass => {}
                    StoreFault::Die => self.dead.store(true, Ordering::SeqCst),
                    StoreFault::LandThenFail => fail_after = true,
                }
            }
        }
        if self.dead.load(Ordering::SeqCst) {
            return Err(Self::crashed());
        }
        Ok(fail_after)
    }

    fn crashed() -> object_store::Error {
        object_store::Error::Generic {
            store: "crash",
            source: "the writer was stopped here by a crash hook (tests only)".into(),
        }
    }

    /// `result`, or the error of a write that landed but reported failure.
    fn after<T>(fail: bool, result: object_store::Result<T>) -> object_store::Result<T> {
        match result {
            Ok(_) if fail => Err(object_store::Error::Generic {
                store: "crash",
                source: "the write was made but reported an error (tests only)".into(),
            }),
            other => other,
        }
    }
}

impl fmt::Debug for CrashingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CrashingStore({})", self.inner)
    }
}

impl fmt::Display for CrashingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CrashingStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for CrashingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let fail = self.check(Some(StoreWrite::Put(location.to_string())))?;
        Self::after(fail, self.inner.put_opts(location, payload, opts).await)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let fail = self.check(Some(StoreWrite::Put(location.to_string())))?;
        Self::after(fail, self.inner.put_multipart_opts(location, opts).await)
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check(None)?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.check(None)?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        match self.check(Some(StoreWrite::Delete)) {
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            Ok(false) => self.inner.delete_stream(locations),
            Ok(true) => self
                .inner
                .delete_stream(locations)
                .map(|r| Self::after(true, r))
                .boxed(),
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if let Err(e) = self.check(None) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if let Err(e) = self.check(None) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.check(None)?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let fail = self.check(Some(StoreWrite::Copy {
            from: from.to_string(),
            to: to.to_string(),
        }))?;
        Self::after(fail, self.inner.copy_opts(from, to, options).await)
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let fail = self.check(Some(StoreWrite::Rename {
            from: from.to_string(),
            to: to.to_string(),
        }))?;
        Self::after(fail, self.inner.rename_opts(from, to, options).await)
    }
}
