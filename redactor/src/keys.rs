//! The key store: one HMAC key per tenant (plus retired ones after a
//! rotation), in a JSON file with owner-only permissions. A tenant seen for
//! the first time gets a fresh random 32-byte key. Keys given in the
//! configuration take precedence and are never written to the file.
//!
//! Concurrent processes (ingest and serve) share the file: creation and
//! rotation take an exclusive lock and re-read it first, so a tenant never
//! ends up with two keys.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rand::TryRngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

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

#[derive(Default, Serialize, Deserialize)]
struct StoreFile {
    format: u32,
    tenants: BTreeMap<String, TenantEntry>,
}

#[derive(Serialize, Deserialize)]
struct TenantEntry {
    active: String,
    keys: BTreeMap<String, StoredKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    key: String,
    created: chrono::DateTime<chrono::Utc>,
}

/// The key store. Its `Debug` output shows key ids, never keys.
#[derive(Debug)]
pub struct KeyStore {
    path: PathBuf,
    configured: HashMap<String, TenantKey>,
    cache: RwLock<HashMap<String, TenantKey>>,
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

impl KeyStore {
    /// Opens (or prepares to create) the store at `path`, with `configured`
    /// keys (tenant to hex) taking precedence. Refuses a file that others
    /// can read.
    pub fn open(path: &Path, configured: &BTreeMap<String, SecretString>) -> Result<Self, Error> {
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(Error::KeyStore(format!(
                    "{} is readable by others (mode {mode:o}); run chmod 600 on it",
                    path.display()
                )));
            }
        }
        let configured = configured
            .iter()
            .map(|(t, k)| configured_key(k.expose_secret()).map(|k| (t.clone(), k)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            path: path.to_path_buf(),
            configured,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> Result<File, Error> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io("creating the directory of", e))?;
        }
        let lock_path = self.path.with_extension("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| self.io("opening the lock of", e))?;
        f.lock().map_err(|e| self.io("locking", e))?;
        Ok(f)
    }

    fn io(&self, what: &str, e: std::io::Error) -> Error {
        Error::KeyStore(format!("{what} {}: {e}", self.path.display()))
    }

    fn read(&self) -> Result<StoreFile, Error> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::KeyStore(format!(
                    "{} is not a key store ({e}); restore it from backup",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoreFile {
                format: 1,
                ..StoreFile::default()
            }),
            Err(e) => Err(self.io("reading", e)),
        }
    }

    fn write(&self, store: &StoreFile) -> Result<(), Error> {
        let tmp = self.path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(store).map_err(|e| Error::KeyStore(e.to_string()))?;
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.io("writing", e))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| self.io("writing", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io("replacing", e))?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    fn decode(tenant: &str, id: &str, k: &StoredKey) -> Result<TenantKey, Error> {
        let key = hex::decode(&k.key)
            .map_err(|_| Error::KeyStore(format!("key {id} of tenant {tenant} is not hex")))?;
        Ok(TenantKey {
            id: id.to_string(),
            key: Arc::new(key),
        })
    }

    fn new_key() -> Result<(String, Vec<u8>), Error> {
        let mut key = vec![0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut key)
            .map_err(|e| Error::KeyStore(format!("no randomness from the OS: {e}")))?;
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

    /// The active key of `tenant`, creating one if the tenant is new.
    pub fn key_for(&self, tenant: &str) -> Result<TenantKey, Error> {
        if let Some(k) = self.configured.get(tenant) {
            return Ok(k.clone());
        }
        if let Some(k) = self.cache.read().ok().and_then(|c| c.get(tenant).cloned()) {
            return Ok(k);
        }
        let _lock = self.lock()?;
        let mut store = self.read()?;
        let key = match store.tenants.get(tenant) {
            Some(entry) => {
                let k = entry.keys.get(&entry.active).ok_or_else(|| {
                    Error::KeyStore(format!(
                        "tenant {tenant}: active key {} is missing",
                        entry.active
                    ))
                })?;
                Self::decode(tenant, &entry.active, k)?
            }
            None => {
                let (id, key) = Self::new_key()?;
                store.tenants.insert(
                    tenant.to_string(),
                    TenantEntry {
                        active: id.clone(),
                        keys: BTreeMap::from([(
                            id.clone(),
                            StoredKey {
                                key: hex::encode(&key),
                                created: chrono::Utc::now(),
                            },
                        )]),
                    },
                );
                self.write(&store)?;
                TenantKey {
                    id,
                    key: Arc::new(key),
                }
            }
        };
        if let Ok(mut c) = self.cache.write() {
            c.insert(tenant.to_string(), key.clone());
        }
        Ok(key)
    }

    /// A specific key of `tenant` (active or retired), for looking up tokens
    /// written before a rotation.
    pub fn key_by_id(&self, tenant: &str, id: &str) -> Result<TenantKey, Error> {
        if let Some(k) = self.configured.get(tenant).filter(|k| k.id == id) {
            return Ok(k.clone());
        }
        let store = self.read()?;
        let k = store
            .tenants
            .get(tenant)
            .and_then(|e| e.keys.get(id))
            .ok_or_else(|| Error::KeyStore(format!("tenant {tenant} has no key {id}")))?;
        Self::decode(tenant, id, k)
    }

    /// Makes a fresh key the active one for `tenant`; older keys stay so old
    /// tokens can still be looked up. Returns the new key id.
    pub fn rotate(&self, tenant: &str) -> Result<String, Error> {
        if self.configured.contains_key(tenant) {
            return Err(Error::KeyStore(format!(
                "tenant {tenant}'s key comes from the configuration; rotate it there"
            )));
        }
        let _lock = self.lock()?;
        let mut store = self.read()?;
        let (id, key) = Self::new_key()?;
        let entry = store
            .tenants
            .entry(tenant.to_string())
            .or_insert_with(|| TenantEntry {
                active: id.clone(),
                keys: BTreeMap::new(),
            });
        entry.keys.insert(
            id.clone(),
            StoredKey {
                key: hex::encode(&key),
                created: chrono::Utc::now(),
            },
        );
        entry.active = id.clone();
        self.write(&store)?;
        if let Ok(mut c) = self.cache.write() {
            c.remove(tenant);
        }
        Ok(id)
    }

    /// Deletes every key of `tenant` (crypto-shredding: its tokens can no
    /// longer be linked to any value). Returns how many keys were deleted.
    pub fn shred(&self, tenant: &str) -> Result<usize, Error> {
        let _lock = self.lock()?;
        let mut store = self.read()?;
        let n = store.tenants.remove(tenant).map_or(0, |e| e.keys.len());
        self.write(&store)?;
        if let Ok(mut c) = self.cache.write() {
            c.remove(tenant);
        }
        Ok(n)
    }

    /// Tenants with their key ids (active first); never the keys.
    pub fn list(&self) -> Result<Vec<(String, Vec<String>)>, Error> {
        let store = self.read()?;
        let mut out: Vec<(String, Vec<String>)> = store
            .tenants
            .iter()
            .map(|(t, e)| {
                let mut ids = vec![e.active.clone()];
                ids.extend(e.keys.keys().filter(|k| **k != e.active).cloned());
                (t.clone(), ids)
            })
            .collect();
        for (t, k) in &self.configured {
            out.push((t.clone(), vec![k.id.clone()]));
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tenants_get_distinct_persistent_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let store = KeyStore::open(&path, &BTreeMap::new()).unwrap();
        let a = store.key_for("acme").unwrap();
        let b = store.key_for("globex").unwrap();
        assert_ne!(a.bytes(), b.bytes());
        assert_eq!(a.bytes().len(), 32);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Another process sees the same key.
        let again = KeyStore::open(&path, &BTreeMap::new())
            .unwrap()
            .key_for("acme")
            .unwrap();
        assert_eq!((again.id.clone(), again.bytes()), (a.id.clone(), a.bytes()));
        assert!(!format!("{a:?}").contains(&hex::encode(a.bytes())));
    }

    #[test]
    fn rotation_keeps_old_keys_and_shredding_drops_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let store = KeyStore::open(&path, &BTreeMap::new()).unwrap();
        let old = store.key_for("acme").unwrap();
        let new_id = store.rotate("acme").unwrap();
        let new = store.key_for("acme").unwrap();
        assert_eq!(new.id, new_id);
        assert_ne!(new.bytes(), old.bytes());
        assert_eq!(
            store.key_by_id("acme", &old.id).unwrap().bytes(),
            old.bytes()
        );
        assert_eq!(store.shred("acme").unwrap(), 2);
        assert!(store.key_by_id("acme", &old.id).is_err());
        let fresh = KeyStore::open(&path, &BTreeMap::new())
            .unwrap()
            .key_for("acme")
            .unwrap();
        assert_ne!(fresh.bytes(), old.bytes());
    }

    #[test]
    fn refuses_a_world_readable_store_and_prefers_configured_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        std::fs::write(&path, "{}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(KeyStore::open(&path, &BTreeMap::new())
            .unwrap_err()
            .to_string()
            .contains("chmod 600"));
        let key = "ab".repeat(32);
        let cfg = BTreeMap::from([("acme".to_string(), SecretString::from(key.clone()))]);
        let store = KeyStore::open(&dir.path().join("other.json"), &cfg).unwrap();
        let k = store.key_for("acme").unwrap();
        assert_eq!(hex::encode(k.bytes()), key);
        assert!(k.id.starts_with("cfg-"));
        assert!(
            !dir.path().join("other.json").exists(),
            "configured keys are not written"
        );
    }
}
