//! The key store: one HMAC key per tenant (plus retired ones after a
//! rotation), kept in the storage (local or object store) so that every
//! instance on that storage uses the same key and a restart loses none.
//! Keys are sealed at rest under a master key ([`sealed`]). A tenant's keys
//! are objects `keys/t-<tenant in hex>/000001.json`, `000002.json`, ...,
//! each created with create-if-absent on its sequence number and holding
//! the SHA-256 of the one before; the highest is active. However many
//! instances see a new tenant at once, exactly one key is created and all
//! of them use it.
//!
//! Each instance caches a tenant's keys for [`REFRESH`]: a rotation or a
//! shredding done by another instance reaches it within that time (plus
//! one read of the storage). Redaction never waits for the storage except
//! for a tenant's first key: an expired cache entry is used while it is
//! read again in the background. Keys given in the configuration take
//! precedence and are never stored.
//!
//! The master key comes from `redaction.master_key` (or its `_file`, or
//! `TOLLGATE__REDACTION__MASTER_KEY`). When the storage is an object store
//! (`storage.url`), every instance must be given the same one and a start
//! without it is refused; with the local storage and none configured,
//! one is generated once into `<data_dir>/master.key` (owner-only).

pub mod sealed;
mod verify;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rand::TryRngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tollgate_storage::blocking::BlockingStorage;
use tollgate_storage::StorageConfig;
use tollgate_storage::{sha256_hex, Storage};

pub use sealed::{MasterKey, SealedKey};
pub use verify::verify;

use crate::Error;

/// Where tenant keys are, under the storage root.
pub const DIR: &str = "keys/";

/// How long an instance uses its cached copy of a tenant's keys: the bound
/// on how late it sees another instance's rotation or shredding.
pub const REFRESH: Duration = Duration::from_secs(30);

/// The file a local storage keeps its generated master key in, under the
/// data directory.
pub const LOCAL_MASTER_KEY: &str = "master.key";

/// A tenant's key, with the id that is recorded beside what it redacted.
#[derive(Clone)]
pub struct TenantKey {
    /// Key id, such as `k20261121-3fa9` (or `cfg-...` for a configured key).
    pub id: String,
    key: Arc<Vec<u8>>,
}

impl TenantKey {
    /// The key bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.key
    }
}

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TenantKey({}, [redacted])", self.id)
    }
}

/// One stored key of a tenant, opened.
#[derive(Clone)]
struct Stored {
    sequence: u64,
    sha256: String,
    key: TenantKey,
}

/// A tenant's keys in sequence order (the last is active) and when they
/// were read.
type Cached = (Instant, Arc<Vec<Stored>>);

/// The key store. Its `Debug` output shows where it is, never keys.
pub struct KeyStore {
    io: BlockingStorage,
    master: MasterKey,
    configured: HashMap<String, TenantKey>,
    cache: Arc<RwLock<HashMap<String, Cached>>>,
    /// How long cached keys are used: [`REFRESH`] unless set.
    refresh: Duration,
    /// Tenants whose keys are being read again in the background.
    refreshing: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyStore({}, master {})",
            self.io.description, self.master.fingerprint
        )
    }
}

fn configured_key(hex_key: &str) -> Result<TenantKey, Error> {
    let key = hex::decode(hex_key)
        .map_err(|_| Error::Config("a configured tenant key is not hex".into()))?;
    if key.len() < 32 {
        return Err(Error::Config(
            "a configured tenant key is shorter than 32 bytes".into(),
        ));
    }
    let fp = Sha256::digest(&key);
    Ok(TenantKey {
        id: format!("cfg-{}", hex::encode(&fp[..4])),
        key: Arc::new(key),
    })
}

/// The folder of `tenant`'s keys.
pub fn tenant_dir(tenant: &str) -> String {
    format!("{DIR}t-{}/", hex::encode(tenant.as_bytes()))
}

/// The object of `tenant`'s key number `sequence`.
pub fn key_path(tenant: &str, sequence: u64) -> String {
    format!("{}{sequence:06}.json", tenant_dir(tenant))
}

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::KeyStore(e.to_string())
}

fn gone() -> Error {
    Error::KeyStore("the key store's storage thread has stopped".into())
}

fn new_key() -> Result<(String, Vec<u8>), Error> {
    let key = MasterKey::random_bytes()?.to_vec();
    let mut tag = [0u8; 2];
    rand::rngs::OsRng
        .try_fill_bytes(&mut tag)
        .map_err(|e| Error::KeyStore(format!("no randomness from the OS: {e}")))?;
    let id = format!(
        "k{}-{}",
        chrono::Utc::now().format("%Y%m%d"),
        hex::encode(tag)
    );
    Ok((id, key))
}

/// Reads and opens `tenant`'s keys, refusing any that is out of place.
async fn load(storage: &Storage, master: &MasterKey, tenant: &str) -> Result<Vec<Stored>, Error> {
    let mut out: Vec<Stored> = Vec::new();
    for path in storage
        .list_files(&tenant_dir(tenant))
        .await
        .map_err(store_err)?
    {
        let bytes = storage.read(&path).await.map_err(store_err)?;
        let k: SealedKey = serde_json::from_slice(&bytes).map_err(|e| {
            Error::KeyStore(format!(
                "{path} is not a sealed tenant key ({e}); tollgate verify names every problem"
            ))
        })?;
        let expected = out.last().map_or(1, |s| s.sequence + 1);
        let previous = out.last().map(|s| s.sha256.clone());
        if k.tenant != tenant
            || key_path(tenant, k.sequence) != path
            || k.sequence != expected
            || k.previous != previous
        {
            return Err(Error::KeyStore(format!(
                "{path} is out of place among tenant {tenant}'s keys (expected key {expected} linked to the one before); tollgate verify names every problem"
            )));
        }
        let key = k.open(master, &path)?;
        out.push(Stored {
            sequence: k.sequence,
            sha256: sha256_hex(&bytes),
            key: TenantKey {
                id: k.id,
                key: Arc::new(key),
            },
        });
    }
    Ok(out)
}

/// Creates `tenant`'s next key after `existing` (a fresh one, or `given`
/// when importing); `None` when another instance took that place first.
async fn append(
    storage: &Storage,
    master: &MasterKey,
    tenant: &str,
    existing: &[Stored],
    given: Option<(String, Vec<u8>)>,
) -> Result<Option<String>, Error> {
    let (id, key) = match given {
        Some(g) => g,
        None => new_key()?,
    };
    let sequence = existing.last().map_or(1, |s| s.sequence + 1);
    let previous = existing.last().map(|s| s.sha256.clone());
    let sealed = SealedKey::seal(master, tenant, sequence, &id, previous, &key)?;
    let mut bytes = serde_json::to_vec_pretty(&sealed).map_err(store_err)?;
    bytes.push(b'\n');
    let created = storage
        .create(&key_path(tenant, sequence), bytes)
        .await
        .map_err(store_err)?;
    Ok(created.then_some(id))
}

/// The master key for `storage`: `configured` if given; else, for a local
/// storage, the one generated once into `<data_dir>/master.key`. An object
/// store without a configured master key is refused: its instances would
/// not share one.
pub fn master_key(
    configured: Option<&SecretString>,
    storage: &StorageConfig,
) -> Result<MasterKey, Error> {
    if let Some(k) = configured {
        return MasterKey::from_hex(k.expose_secret(), "redaction.master_key");
    }
    if let Some(url) = &storage.url {
        return Err(Error::Config(format!(
            "storage.url is {url}, so several instances can share the storage, and the tenant keys there are sealed under a master key they must all have: set redaction.master_key_file to a file holding 64 hex digits (such as from `openssl rand -hex 32`), or TOLLGATE__REDACTION__MASTER_KEY, the same on every instance"
        )));
    }
    local_master_key(&storage.data_dir.join(LOCAL_MASTER_KEY))
}

/// The master key `verify` opens the keys with, without creating one:
/// `configured`, else a local storage's `master.key` if it exists.
pub fn existing_master_key(
    configured: Option<&SecretString>,
    storage: &StorageConfig,
) -> Result<Option<MasterKey>, Error> {
    if configured.is_some() {
        return master_key(configured, storage).map(Some);
    }
    let path = storage.data_dir.join(LOCAL_MASTER_KEY);
    if storage.url.is_none() && path.is_file() {
        return local_master_key(&path).map(Some);
    }
    Ok(None)
}

/// Reads the local master key file, creating it (owner-only) if absent.
fn local_master_key(path: &Path) -> Result<MasterKey, Error> {
    let what = path.display().to_string();
    let io = |e: std::io::Error| Error::KeyStore(format!("{what}: {e}"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut f) => {
            let key = MasterKey::random_bytes()?;
            f.write_all(format!("{}\n", hex::encode(key)).as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io)?;
            return MasterKey::from_bytes(&key, &what);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::KeyStore(format!(
            "{what} is readable by others (mode {mode:o}); run chmod 600 on it"
        )));
    }
    // Another process may have created it an instant ago: wait for its key.
    for _ in 0..50 {
        let text = std::fs::read_to_string(path).map_err(io)?;
        if text.trim().len() == 64 {
            return MasterKey::from_hex(&text, &what);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(Error::KeyStore(format!(
        "{what} does not hold a master key (64 hex digits); restore it from backup"
    )))
}

/// The key file of versions that kept keys on local disk.
#[derive(Deserialize)]
struct LegacyFile {
    tenants: BTreeMap<String, LegacyTenant>,
}

#[derive(Deserialize)]
struct LegacyTenant {
    active: String,
    keys: BTreeMap<String, LegacyKey>,
}

#[derive(Deserialize)]
struct LegacyKey {
    key: String,
    created: chrono::DateTime<chrono::Utc>,
}

impl KeyStore {
    /// Opens the key store in `storage`, sealing under `master`, with
    /// `configured` keys (tenant to hex) taking precedence.
    pub fn open(
        storage: &StorageConfig,
        master: MasterKey,
        configured: &BTreeMap<String, SecretString>,
    ) -> Result<Self, Error> {
        let configured = configured
            .iter()
            .map(|(t, k)| configured_key(k.expose_secret()).map(|k| (t.clone(), k)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            io: BlockingStorage::open(storage, "keys").map_err(store_err)?,
            master,
            configured,
            cache: Arc::new(RwLock::new(HashMap::new())),
            refreshing: Arc::default(),
            refresh: REFRESH,
        })
    }

    /// Uses cached keys for `refresh` instead of [`REFRESH`].
    pub fn refresh_every(mut self, refresh: Duration) -> Self {
        self.refresh = refresh;
        self
    }

    /// Where the keys are, for messages.
    pub fn description(&self) -> String {
        format!("{}/{DIR}", self.io.description.trim_end_matches('/'))
    }

    /// The master key the keys are sealed under.
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// The cached keys of `tenant`, and whether they are younger than
    /// [`REFRESH`].
    fn cached(&self, tenant: &str) -> Option<(Arc<Vec<Stored>>, bool)> {
        let cache = self.cache.read().ok()?;
        let (at, keys) = cache.get(tenant)?;
        Some((keys.clone(), at.elapsed() < self.refresh))
    }

    /// Reads `tenant`'s keys again on the storage thread, replacing the
    /// cache entry when done (dropping it when the tenant was shredded);
    /// one read per tenant at a time. On a storage error the old entry
    /// stays and the next use tries again.
    fn refresh_in_background(&self, tenant: &str) {
        let Ok(mut busy) = self.refreshing.lock() else {
            return;
        };
        if !busy.insert(tenant.to_string()) {
            return;
        }
        drop(busy);
        let (master, t) = (self.master.clone(), tenant.to_string());
        let (cache, refreshing) = (self.cache.clone(), self.refreshing.clone());
        let sent = self.io.spawn(move |s| async move {
            match load(&s, &master, &t).await {
                Ok(keys) if keys.is_empty() => {
                    if let Ok(mut c) = cache.write() {
                        c.remove(&t);
                    }
                }
                Ok(keys) => {
                    if let Ok(mut c) = cache.write() {
                        c.insert(t.clone(), (Instant::now(), Arc::new(keys)));
                    }
                }
                Err(e) => tracing::warn!(tenant = %t, error = %e, "reading the tenant's keys again failed; using the cached ones"),
            }
            if let Ok(mut r) = refreshing.lock() {
                r.remove(&t);
            }
        });
        if !sent {
            if let Ok(mut r) = self.refreshing.lock() {
                r.remove(tenant);
            }
        }
    }

    fn forget(&self, tenant: &str) {
        if let Ok(mut c) = self.cache.write() {
            c.remove(tenant);
        }
    }

    /// Reads `tenant`'s keys from the storage (creating the first one when
    /// `create` and there is none) and caches them.
    fn fetch(&self, tenant: &str, create: bool) -> Result<Arc<Vec<Stored>>, Error> {
        let master = self.master.clone();
        let t = tenant.to_string();
        let keys = self.io.call(gone, move |s| async move {
            loop {
                let keys = load(&s, &master, &t).await?;
                if !keys.is_empty() || !create {
                    return Ok(keys);
                }
                // Won or lost, read again: the one key that exists is used.
                append(&s, &master, &t, &keys, None).await?;
            }
        })?;
        let keys = Arc::new(keys);
        if let Ok(mut c) = self.cache.write() {
            c.insert(tenant.to_string(), (Instant::now(), keys.clone()));
        }
        Ok(keys)
    }

    /// The active key of `tenant`, creating one if the tenant is new.
    pub fn key_for(&self, tenant: &str) -> Result<TenantKey, Error> {
        if let Some(k) = self.configured.get(tenant) {
            return Ok(k.clone());
        }
        let keys = match self.cached(tenant) {
            Some((k, fresh)) if !k.is_empty() => {
                if !fresh {
                    self.refresh_in_background(tenant);
                }
                k
            }
            _ => self.fetch(tenant, true)?,
        };
        keys.last()
            .map(|s| s.key.clone())
            .ok_or_else(|| Error::KeyStore(format!("tenant {tenant} has no key")))
    }

    /// A specific key of `tenant` (active or retired), for looking up tokens
    /// written before a rotation.
    pub fn key_by_id(&self, tenant: &str, id: &str) -> Result<TenantKey, Error> {
        if let Some(k) = self.configured.get(tenant).filter(|k| k.id == id) {
            return Ok(k.clone());
        }
        let find = |keys: &[Stored]| keys.iter().find(|s| s.key.id == id).map(|s| s.key.clone());
        if let Some(k) = self
            .cached(tenant)
            .filter(|(_, fresh)| *fresh)
            .and_then(|(keys, _)| find(&keys))
        {
            return Ok(k);
        }
        find(&self.fetch(tenant, false)?)
            .ok_or_else(|| Error::KeyStore(format!("tenant {tenant} has no key {id}")))
    }

    /// Makes a fresh key the active one for `tenant`; older keys stay so old
    /// tokens can still be looked up. Returns the new key id.
    pub fn rotate(&self, tenant: &str) -> Result<String, Error> {
        if self.configured.contains_key(tenant) {
            return Err(Error::KeyStore(format!(
                "tenant {tenant}'s key comes from the configuration; rotate it there"
            )));
        }
        let master = self.master.clone();
        let t = tenant.to_string();
        let id = self.io.call(gone, move |s| async move {
            loop {
                let keys = load(&s, &master, &t).await?;
                if let Some(id) = append(&s, &master, &t, &keys, None).await? {
                    return Ok(id);
                }
            }
        })?;
        self.forget(tenant);
        Ok(id)
    }

    /// Deletes every key of `tenant` from the storage (crypto-shredding: its
    /// tokens can no longer be linked to any value). Other instances drop
    /// their cached copy within [`REFRESH`]. Returns how many keys were
    /// deleted.
    pub fn shred(&self, tenant: &str) -> Result<usize, Error> {
        let dir = tenant_dir(tenant);
        let n = self.io.call(gone, move |s| async move {
            let files = s.list_files(&dir).await.map_err(store_err)?;
            for f in &files {
                s.delete(f).await.map_err(store_err)?;
            }
            Ok(files.len())
        })?;
        self.forget(tenant);
        Ok(n)
    }

    /// Tenants with their key ids (active first); never the keys.
    pub fn list(&self) -> Result<Vec<(String, Vec<String>)>, Error> {
        let mut out: Vec<(String, Vec<String>)> = self.io.call(gone, |s| async move {
            let mut by_tenant: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for path in s.list_files(DIR).await.map_err(store_err)? {
                let bytes = s.read(&path).await.map_err(store_err)?;
                let Ok(k) = serde_json::from_slice::<SealedKey>(&bytes) else {
                    continue;
                };
                by_tenant.entry(k.tenant).or_default().push(k.id);
            }
            Ok(by_tenant
                .into_iter()
                .map(|(t, mut ids)| {
                    if let Some(active) = ids.pop() {
                        ids.insert(0, active);
                    }
                    (t, ids)
                })
                .collect())
        })?;
        for (t, k) in &self.configured {
            out.push((t.clone(), vec![k.id.clone()]));
        }
        out.sort();
        Ok(out)
    }

    /// Moves the keys of a key file of earlier versions (local JSON) into
    /// the storage, keeping their ids and bytes so old tokens still match;
    /// the file is renamed to `<name>.imported`. A tenant that already has
    /// keys in the storage keeps them (its old keys are reported). Returns
    /// the tenants imported and those skipped.
    pub fn import_file(&self, path: &Path) -> Result<(Vec<String>, Vec<String>), Error> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::KeyStore(format!("{}: {e}", path.display())))?;
        let file: LegacyFile = serde_json::from_slice(&bytes)
            .map_err(|e| Error::KeyStore(format!("{} is not a key store ({e})", path.display())))?;
        let (mut imported, mut skipped) = (Vec::new(), Vec::new());
        for (tenant, entry) in file.tenants {
            // Retired keys first (oldest first), the active one last.
            let mut keys: Vec<(String, LegacyKey)> = entry.keys.into_iter().collect();
            keys.sort_by_key(|(id, k)| (*id == entry.active, k.created));
            let mut plain = Vec::new();
            for (id, k) in keys {
                let key = hex::decode(&k.key).map_err(|_| {
                    Error::KeyStore(format!(
                        "{}: key {id} of tenant {tenant} is not hex",
                        path.display()
                    ))
                })?;
                plain.push((id, key));
            }
            let master = self.master.clone();
            let t = tenant.clone();
            let done = self.io.call(gone, move |s| async move {
                let mut existing = load(&s, &master, &t).await?;
                if !existing.is_empty() {
                    return Ok(false);
                }
                for given in plain {
                    if append(&s, &master, &t, &existing, Some(given))
                        .await?
                        .is_none()
                    {
                        return Ok(false);
                    }
                    existing = load(&s, &master, &t).await?;
                }
                Ok(true)
            })?;
            if done {
                imported.push(tenant);
            } else {
                skipped.push(tenant);
            }
        }
        let mut done = path.as_os_str().to_owned();
        done.push(".imported");
        std::fs::rename(path, &done)
            .map_err(|e| Error::KeyStore(format!("renaming {}: {e}", path.display())))?;
        Ok((imported, skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(dir: &Path) -> StorageConfig {
        StorageConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        }
    }

    fn open(dir: &Path) -> KeyStore {
        let master = master_key(None, &local(dir)).unwrap();
        KeyStore::open(&local(dir), master, &BTreeMap::new()).unwrap()
    }

    #[test]
    fn new_tenants_get_distinct_persistent_sealed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let a = store.key_for("acme").unwrap();
        let b = store.key_for("globex").unwrap();
        assert_ne!(a.bytes(), b.bytes());
        assert_eq!(a.bytes().len(), 32);
        let mode = std::fs::metadata(dir.path().join(LOCAL_MASTER_KEY))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        // Sealed at rest: the key's bytes are nowhere in the object.
        let object = std::fs::read_to_string(dir.path().join(key_path("acme", 1))).unwrap();
        assert!(!object.contains(&hex::encode(a.bytes())), "{object}");
        // Another process sees the same key.
        let again = open(dir.path()).key_for("acme").unwrap();
        assert_eq!((again.id.clone(), again.bytes()), (a.id.clone(), a.bytes()));
        assert!(!format!("{a:?}").contains(&hex::encode(a.bytes())));
        // Under another master key the key does not open.
        let other = MasterKey::from_bytes(&[7u8; 32], "test").unwrap();
        let wrong = KeyStore::open(&local(dir.path()), other, &BTreeMap::new()).unwrap();
        let e = wrong.key_for("acme").unwrap_err().to_string();
        assert!(e.contains("does not open"), "{e}");
    }

    #[test]
    fn many_stores_racing_for_a_new_tenant_create_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let master = master_key(None, &local(dir.path())).unwrap();
        let stores: Vec<KeyStore> = (0..8)
            .map(|_| KeyStore::open(&local(dir.path()), master.clone(), &BTreeMap::new()).unwrap())
            .collect();
        let keys: Vec<TenantKey> = std::thread::scope(|s| {
            let handles: Vec<_> = stores
                .iter()
                .map(|st| s.spawn(|| st.key_for("initech").unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for k in &keys {
            assert_eq!(
                (k.id.as_str(), k.bytes()),
                (keys[0].id.as_str(), keys[0].bytes())
            );
        }
        assert_eq!(
            stores[0].list().unwrap(),
            [("initech".to_string(), vec![keys[0].id.clone()])]
        );
    }

    #[test]
    fn another_instance_picks_up_a_rotation_after_the_refresh_time() {
        let dir = tempfile::tempdir().unwrap();
        let master = master_key(None, &local(dir.path())).unwrap();
        let open = || KeyStore::open(&local(dir.path()), master.clone(), &BTreeMap::new()).unwrap();
        let reader = open().refresh_every(Duration::from_millis(200));
        let old = reader.key_for("acme").unwrap();
        let new_id = open().rotate("acme").unwrap();
        assert_eq!(reader.key_for("acme").unwrap().id, old.id, "cached");
        let start = Instant::now();
        while reader.key_for("acme").unwrap().id != new_id {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the rotation never arrived"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Shredded elsewhere: the cached keys are dropped, and a new key made.
        open().shred("acme").unwrap();
        let start = Instant::now();
        while [old.id.as_str(), new_id.as_str()]
            .contains(&reader.key_for("acme").unwrap().id.as_str())
        {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the shredding never arrived"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn rotation_keeps_old_keys_and_shredding_drops_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let old = store.key_for("acme").unwrap();
        let new_id = store.rotate("acme").unwrap();
        let new = store.key_for("acme").unwrap();
        assert_eq!(new.id, new_id);
        assert_ne!(new.bytes(), old.bytes());
        assert_eq!(
            store.key_by_id("acme", &old.id).unwrap().bytes(),
            old.bytes()
        );
        assert_eq!(store.list().unwrap()[0].1, [new_id.clone(), old.id.clone()]);
        assert_eq!(store.shred("acme").unwrap(), 2);
        assert!(store.key_by_id("acme", &old.id).is_err());
        let fresh = open(dir.path()).key_for("acme").unwrap();
        assert_ne!(fresh.bytes(), old.bytes());
    }

    #[test]
    fn an_object_store_without_a_master_key_is_refused_and_configured_keys_win() {
        let cfg = StorageConfig {
            url: Some("s3://bucket/tollgate".into()),
            ..Default::default()
        };
        let e = master_key(None, &cfg).unwrap_err().to_string();
        assert!(
            e.contains("redaction.master_key_file") && e.contains("openssl rand -hex 32"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let key = "ab".repeat(32);
        let configured = BTreeMap::from([("acme".to_string(), SecretString::from(key.clone()))]);
        let master = master_key(None, &local(dir.path())).unwrap();
        let store = KeyStore::open(&local(dir.path()), master, &configured).unwrap();
        let k = store.key_for("acme").unwrap();
        assert_eq!(hex::encode(k.bytes()), key);
        assert!(k.id.starts_with("cfg-"));
        assert!(
            !dir.path().join("keys").exists(),
            "configured keys are not stored"
        );
        // A world-readable local master key is refused.
        let path = dir.path().join(LOCAL_MASTER_KEY);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = master_key(None, &local(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }

    #[test]
    fn a_key_file_of_earlier_versions_is_moved_in_with_its_ids_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let (old, active) = ("11".repeat(32), "22".repeat(32));
        std::fs::write(
            &path,
            format!(
                r#"{{"format":1,"tenants":{{"acme":{{"active":"k2","keys":{{
                "k1":{{"key":"{old}","created":"2026-01-01T00:00:00Z"}},
                "k2":{{"key":"{active}","created":"2026-02-01T00:00:00Z"}}}}}}}}}}"#
            ),
        )
        .unwrap();
        let store = open(dir.path());
        let (imported, skipped) = store.import_file(&path).unwrap();
        assert_eq!((imported, skipped), (vec!["acme".to_string()], vec![]));
        assert!(!path.exists() && dir.path().join("keys.json.imported").exists());
        let k = store.key_for("acme").unwrap();
        assert_eq!((k.id.as_str(), hex::encode(k.bytes())), ("k2", active));
        assert_eq!(
            hex::encode(store.key_by_id("acme", "k1").unwrap().bytes()),
            old
        );
    }
}
