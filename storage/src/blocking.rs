//! A storage handle for synchronous code: its own thread and runtime. The
//! redaction key store and the API key check are synchronous and run inside
//! other runtimes' tasks, and an object store's client must always be driven
//! by the one runtime that made its connections. So they send their few
//! storage calls (a tenant's first key, a refresh) to this thread and wait
//! for the answer.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::{Storage, StorageConfig, StorageError};

type Job = Box<dyn FnOnce(Arc<Storage>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A handle to the thread; dropping it ends the thread.
pub struct BlockingStorage {
    tx: Mutex<mpsc::Sender<Job>>,
    /// Where the keys are, for messages.
    pub description: String,
}

impl std::fmt::Debug for BlockingStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockingStorage({})", self.description)
    }
}

impl BlockingStorage {
    /// Opens the storage of `config` on a new thread; `writer` as for
    /// [`Storage::open`].
    pub fn open(config: &StorageConfig, writer: &str) -> Result<Self, StorageError> {
        let storage = Arc::new(Storage::open(config, writer)?);
        let description = storage.description().to_string();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                StorageError::Config(format!("starting the storage thread's runtime: {e}"))
            })?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(format!("tollgate-{writer}"))
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    rt.block_on(job(storage.clone()));
                }
            })
            .map_err(|e| StorageError::Config(format!("starting the storage thread: {e}")))?;
        Ok(Self {
            tx: Mutex::new(tx),
            description,
        })
    }

    /// Runs `f` against the storage on the thread without waiting for it
    /// (false when the thread has stopped).
    pub fn spawn<F, Fut>(&self, f: F) -> bool
    where
        F: FnOnce(Arc<Storage>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let job: Job = Box::new(move |s| Box::pin(f(s)));
        self.tx.lock().is_ok_and(|tx| tx.send(job).is_ok())
    }

    /// Runs `f` against the storage on the thread and waits for its result;
    /// `gone` is the error when the thread has stopped.
    pub fn call<T, E, F, Fut>(&self, gone: impl Fn() -> E, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(Arc<Storage>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |s| {
            Box::pin(async move {
                let _ = reply.send(f(s).await);
            })
        });
        self.tx
            .lock()
            .map_err(|_| gone())?
            .send(job)
            .map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}
