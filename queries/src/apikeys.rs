//! API keys for service accounts: `tgk_<id>_<secret>`, stored only as the
//! SHA-256 of the whole key, with an organisation, a team, roles and an
//! expiry, in the storage beside the tables, so every `serve` replica sees
//! the same keys. A key's history is objects
//! `auth/api_keys/<id>/000001.json` (issued), `000002.json` (revoked, or
//! its expiry shortened by a rotation), ..., each created with
//! create-if-absent: two operators changing one key at once never undo each
//! other, and the highest is the key's state. Keys are rotated by issuing a
//! new key with the same scope and letting the old one expire after an
//! overlap.
//!
//! Each process keeps the keys it read for [`REFRESH`], then uses them while
//! it reads them again in the background. A key unknown to it makes it
//! read them at once (at most once per [`REREAD`]), so a new key works on
//! every replica within a second; a revocation or rotation reaches every
//! replica within [`REFRESH`] plus one read. State objects are read once
//! (they are never rewritten).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tollgate_storage::blocking::BlockingStorage;
use tollgate_storage::Storage;
use tollgate_storage::StorageConfig;

use crate::principal::{Credential, Principal, Role};
use crate::Error;

/// The prefix every key starts with.
pub const PREFIX: &str = "tgk_";

/// Where the keys are, under the storage root.
pub const DIR: &str = "auth/api_keys/";

/// How long a process uses the keys it read: the bound on how late a
/// revocation or rotation done elsewhere takes effect.
pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// The least time between two reads caused by unknown key ids.
pub const REREAD: std::time::Duration = std::time::Duration::from_secs(1);

/// One stored key (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Public id, the key's second part; the principal's subject is `apikey:<id>`.
    pub id: String,
    /// What the key is for.
    pub name: String,
    /// SHA-256 (hex) of the whole key.
    pub sha256: String,
    /// Organisation.
    pub org: String,
    /// Team, for team roles.
    pub team: Option<String>,
    /// Roles.
    pub roles: Vec<Role>,
    /// Issued.
    pub created: DateTime<Utc>,
    /// No longer valid from.
    pub expires: DateTime<Utc>,
    /// Revoked (invalid whatever its expiry).
    #[serde(default)]
    pub revoked: bool,
    /// The id of the key it replaced, if issued by a rotation.
    #[serde(default)]
    pub replaces: Option<String>,
}

/// The key file of earlier versions.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    keys: Vec<ApiKey>,
}

/// Every key's newest state with its sequence number, by id.
type Keys = BTreeMap<String, (ApiKey, u64)>;

/// The keys as last read, and when.
type Cache = Option<(Instant, Arc<Keys>)>;

/// The keys in the storage, cached for [`REFRESH`].
#[derive(Debug)]
pub struct ApiKeyStore {
    io: BlockingStorage,
    cache: Arc<Mutex<Cache>>,
    /// Every state object read so far, by path (they are never rewritten).
    seen: Arc<Mutex<BTreeMap<String, (ApiKey, u64)>>>,
    /// A read in the background is under way.
    refreshing: Arc<AtomicBool>,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::ApiKeys(e.to_string())
}

fn gone() -> Error {
    Error::ApiKeys("the API key store's storage thread has stopped".into())
}

/// The object of key `id`'s state number `sequence`.
fn path(id: &str, sequence: u64) -> String {
    format!("{DIR}{id}/{sequence:06}.json")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every key's newest state: lists the objects, reads those not in `seen`.
async fn read_keys(
    s: &Storage,
    seen: &Mutex<BTreeMap<String, (ApiKey, u64)>>,
) -> Result<Keys, Error> {
    let paths = s.list_files(DIR).await.map_err(err)?;
    for p in &paths {
        if lock(seen).contains_key(p) {
            continue;
        }
        let bytes = s.read(p).await.map_err(err)?;
        let k: ApiKey = serde_json::from_slice(&bytes)
            .map_err(|e| Error::ApiKeys(format!("{p} is not an API key record: {e}")))?;
        let seq = p
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| path(&k.id, *n) == *p)
            .ok_or_else(|| Error::ApiKeys(format!("{p} is not where key {}'s records go", k.id)))?;
        lock(seen).insert(p.clone(), (k, seq));
    }
    let seen = lock(seen);
    let mut keys = Keys::new();
    for (k, seq) in paths.iter().filter_map(|p| seen.get(p)) {
        if keys.get(&k.id).is_none_or(|(_, s)| s < seq) {
            keys.insert(k.id.clone(), (k.clone(), *seq));
        }
    }
    Ok(keys)
}

impl ApiKeyStore {
    /// The keys in `storage`.
    pub fn open(storage: &StorageConfig) -> Result<Self, Error> {
        Ok(Self {
            io: BlockingStorage::open(storage, "apikeys").map_err(err)?,
            cache: Arc::default(),
            seen: Arc::default(),
            refreshing: Arc::default(),
        })
    }

    /// Where the keys are, for messages.
    pub fn description(&self) -> String {
        format!("{}/{DIR}", self.io.description.trim_end_matches('/'))
    }

    /// Reads every key's newest state from the storage, and caches it.
    fn load(&self) -> Result<Arc<Keys>, Error> {
        let seen = self.seen.clone();
        let keys = Arc::new(
            self.io
                .call(gone, |s| async move { read_keys(&s, &seen).await })?,
        );
        *lock(&self.cache) = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    /// Reads the keys again on the storage thread (one read at a time); the
    /// cache is replaced when done, or kept on an error.
    fn refresh_in_background(&self) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (seen, cache, refreshing) = (
            self.seen.clone(),
            self.cache.clone(),
            self.refreshing.clone(),
        );
        let sent = self.io.spawn(move |s| async move {
            match read_keys(&s, &seen).await {
                Ok(keys) => *lock(&cache) = Some((Instant::now(), Arc::new(keys))),
                Err(e) => tracing::warn!(error = %e, "reading the API keys again failed; using the cached ones"),
            }
            refreshing.store(false, Ordering::Release);
        });
        if !sent {
            self.refreshing.store(false, Ordering::Release);
        }
    }

    /// The keys: from the cache when younger than `max_age`; an older cache
    /// is used while they are read again in the background (so a request
    /// never waits for the storage once the keys were read).
    fn keys(&self, max_age: std::time::Duration) -> Result<Arc<Keys>, Error> {
        let cached = lock(&self.cache).clone();
        match cached {
            Some((at, keys)) if at.elapsed() < max_age => Ok(keys),
            Some((_, keys)) => {
                self.refresh_in_background();
                Ok(keys)
            }
            None => self.load(),
        }
    }

    /// Every stored key (its newest state), read afresh.
    pub fn list(&self) -> Result<Vec<ApiKey>, Error> {
        Ok(self.load()?.values().map(|(k, _)| k.clone()).collect())
    }

    /// Writes `key` as state number `sequence`; `false` when another
    /// writer took that number first.
    fn put(&self, key: &ApiKey, sequence: u64) -> Result<bool, Error> {
        let mut bytes = serde_json::to_vec_pretty(key).map_err(err)?;
        bytes.push(b'\n');
        let p = path(&key.id, sequence);
        let created = self.io.call(gone, move |s| async move {
            s.create(&p, bytes).await.map_err(err)
        })?;
        *lock(&self.cache) = None;
        Ok(created)
    }

    /// Applies `change` to key `id`'s newest state and stores the result
    /// as its next state, again if another writer changed it meanwhile.
    fn change(
        &self,
        id: &str,
        change: impl Fn(&mut ApiKey) -> Result<(), Error>,
    ) -> Result<ApiKey, Error> {
        loop {
            let keys = self.load()?;
            let (k, seq) = keys
                .get(id)
                .ok_or_else(|| Error::ApiKeys(format!("no API key with id {id:?}")))?;
            let mut k = k.clone();
            change(&mut k)?;
            if self.put(&k, seq + 1)? {
                return Ok(k);
            }
        }
    }

    /// Moves the keys of a key file of earlier versions into the storage
    /// (a key already there is left as it is) and renames the file
    /// `<name>.imported`. Returns how many keys moved.
    pub fn import_file(&self, file: &Path) -> Result<usize, Error> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::ApiKeys(format!("{}: {e}", file.display())))?;
        let old: File = serde_json::from_str(&text)
            .map_err(|e| Error::ApiKeys(format!("{}: {e}", file.display())))?;
        let mut moved = 0;
        for k in &old.keys {
            if self.put(k, 1)? {
                moved += 1;
            }
        }
        let mut done = file.as_os_str().to_owned();
        done.push(".imported");
        std::fs::rename(file, &done)
            .map_err(|e| Error::ApiKeys(format!("renaming {}: {e}", file.display())))?;
        Ok(moved)
    }

    /// Issues a key; returns the key (shown once) and its record.
    pub fn create(
        &self,
        name: &str,
        org: &str,
        team: Option<&str>,
        roles: &[Role],
        valid_for: Duration,
    ) -> Result<(String, ApiKey), Error> {
        self.issue(name, org, team, roles, valid_for, None)
    }

    fn issue(
        &self,
        name: &str,
        org: &str,
        team: Option<&str>,
        roles: &[Role],
        valid_for: Duration,
        replaces: Option<String>,
    ) -> Result<(String, ApiKey), Error> {
        Principal::new(
            String::new(),
            org.to_string(),
            team.map(String::from),
            roles.iter().copied().collect(),
            Credential::ApiKey,
        )
        .map_err(Error::ApiKeys)?;
        let mut rng = rand::rng();
        let mut id = [0u8; 6];
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut id);
        rng.fill_bytes(&mut secret);
        let id = hex::encode(id);
        let key = format!("{PREFIX}{id}_{}", hex::encode(secret));
        let now = Utc::now();
        let record = ApiKey {
            id,
            name: name.to_string(),
            sha256: sha256_hex(&key),
            org: org.to_string(),
            team: team.map(String::from),
            roles: roles.to_vec(),
            created: now,
            expires: now + valid_for,
            revoked: false,
            replaces,
        };
        if !self.put(&record, 1)? {
            return Err(Error::ApiKeys(format!(
                "key id {} is taken (a 1 in 2^48 chance); run the command again",
                record.id
            )));
        }
        Ok((key, record))
    }

    /// Revokes key `id`.
    pub fn revoke(&self, id: &str) -> Result<ApiKey, Error> {
        self.change(id, |k| {
            k.revoked = true;
            Ok(())
        })
    }

    /// Issues a new key with key `id`'s scope, valid for `valid_for`; the
    /// old key expires after `overlap` (so clients can switch).
    pub fn rotate(
        &self,
        id: &str,
        valid_for: Duration,
        overlap: Duration,
    ) -> Result<(String, ApiKey), Error> {
        let old = self
            .load()?
            .get(id)
            .map(|(k, _)| k.clone())
            .ok_or_else(|| Error::ApiKeys(format!("no API key with id {id:?}")))?;
        if old.revoked {
            return Err(Error::ApiKeys(format!(
                "API key {id} is revoked; create a new one"
            )));
        }
        let (key, record) = self.issue(
            &old.name,
            &old.org,
            old.team.as_deref(),
            &old.roles,
            valid_for,
            Some(id.to_string()),
        )?;
        let until = Utc::now() + overlap;
        self.change(id, |k| {
            k.expires = k.expires.min(until);
            Ok(())
        })?;
        Ok((key, record))
    }

    /// The principal of `key`, or why it is not accepted.
    pub fn verify(&self, key: &str, now: DateTime<Utc>) -> Result<Principal, String> {
        let rest = key.strip_prefix(PREFIX).ok_or("not an API key")?;
        let (id, _) = rest
            .split_once('_')
            .ok_or("malformed API key (expected tgk_<id>_<secret>)")?;
        let unavailable = |e: Error| format!("API keys unavailable: {e}");
        let mut keys = self.keys(REFRESH).map_err(unavailable)?;
        let age = lock(&self.cache).as_ref().map(|(at, _)| at.elapsed());
        if !keys.contains_key(id) && age.is_none_or(|a| a >= REREAD) {
            // Issued since this process read them, maybe through another
            // replica: read them now (at most once per REREAD).
            keys = self.load().map_err(unavailable)?;
        }
        let digest = sha256_hex(key);
        let k = keys
            .values()
            .map(|(k, _)| k)
            // Digests of the presented key are compared, never the key: a
            // timing difference could only reveal a prefix of the digest of
            // the attacker's own input.
            .find(|k| k.id == id && k.sha256 == digest)
            .ok_or("unknown API key")?;
        if k.revoked {
            return Err(format!("API key {id} is revoked"));
        }
        if k.expires <= now {
            return Err(format!(
                "API key {id} expired at {}",
                k.expires.to_rfc3339()
            ));
        }
        Principal::new(
            format!("apikey:{}", k.id),
            k.org.clone(),
            k.team.clone(),
            k.roles.iter().copied().collect(),
            Credential::ApiKey,
        )
        .map_err(|e| format!("API key {id}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stored_hashed_expire_rotate_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = ApiKeyStore::open(&StorageConfig::local(dir.path())).unwrap();
        let (key, rec) = store
            .create(
                "ci",
                "acme",
                Some("search"),
                &[Role::Viewer],
                Duration::days(30),
            )
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join(path(&rec.id, 1))).unwrap();
        assert!(!text.contains(&key[PREFIX.len() + 13..]), "secret stored");
        let now = Utc::now();
        let p = store.verify(&key, now).unwrap();
        assert_eq!(p.subject, format!("apikey:{}", rec.id));
        assert_eq!(p.team.as_deref(), Some("search"));
        // A wrong secret with a real id.
        let forged = format!("{PREFIX}{}_{}", rec.id, "0".repeat(64));
        assert_eq!(store.verify(&forged, now).unwrap_err(), "unknown API key");
        assert!(store
            .verify(&key, rec.expires)
            .unwrap_err()
            .contains("expired"));
        let (new, new_rec) = store
            .rotate(&rec.id, Duration::days(30), Duration::hours(1))
            .unwrap();
        assert!(store.verify(&new, now).is_ok());
        assert!(
            store.verify(&key, now).is_ok(),
            "old key valid during the overlap"
        );
        assert!(store
            .verify(&key, now + Duration::hours(2))
            .unwrap_err()
            .contains("expired"));
        assert_eq!(new_rec.replaces.as_deref(), Some(rec.id.as_str()));
        store.revoke(&new_rec.id).unwrap();
        assert!(store.verify(&new, now).unwrap_err().contains("revoked"));
        assert!(store
            .create("x", "acme", None, &[Role::Viewer], Duration::days(1))
            .is_err());
        // The history is kept: issued, then revoked.
        assert!(dir.path().join(path(&new_rec.id, 2)).exists());
    }

    #[test]
    fn another_process_sees_new_keys_at_once_and_revocations_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StorageConfig::local(dir.path());
        let (admin, replica) = (
            ApiKeyStore::open(&cfg).unwrap(),
            ApiKeyStore::open(&cfg).unwrap(),
        );
        let (_, first) = admin
            .create("a", "acme", None, &[Role::Finance], Duration::days(1))
            .unwrap();
        let _ = replica.list().unwrap();
        let (key, rec) = admin
            .create("b", "acme", None, &[Role::Finance], Duration::days(1))
            .unwrap();
        // Unknown to the replica: it reads the keys again (at most once per
        // REREAD), so the new key works within that.
        let start = Instant::now();
        while let Err(e) = replica.verify(&key, Utc::now()) {
            assert_eq!(e, "unknown API key");
            assert!(start.elapsed() <= REREAD + std::time::Duration::from_millis(500));
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        admin.revoke(&rec.id).unwrap();
        admin.revoke(&first.id).unwrap();
        // Within the bound the replica may still accept it; after, never.
        let start = Instant::now();
        while replica.verify(&key, Utc::now()).is_ok() {
            assert!(start.elapsed() <= REFRESH + std::time::Duration::from_secs(1));
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(replica
            .verify(&key, Utc::now())
            .unwrap_err()
            .contains("revoked"));
    }
}
