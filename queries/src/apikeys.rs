//! API keys for service accounts: `tgk_<id>_<secret>`, stored only as the
//! SHA-256 of the whole key, with an organisation, a team, roles and an
//! expiry, in a JSON file (`<data_dir>/api_keys.json` by default). Keys
//! are rotated by issuing a new key with the same scope and letting the
//! old one expire after an overlap.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::principal::{Credential, Principal, Role};
use crate::Error;

/// The prefix every key starts with.
pub const PREFIX: &str = "tgk_";

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

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    keys: Vec<ApiKey>,
}

/// The key file, re-read when it changes.
#[derive(Debug)]
pub struct ApiKeyStore {
    path: PathBuf,
    cache: Mutex<Option<(SystemTime, Vec<ApiKey>)>>,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl ApiKeyStore {
    /// The store at `path` (it need not exist yet).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            cache: Mutex::new(None),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every stored key.
    pub fn list(&self) -> Result<Vec<ApiKey>, Error> {
        let modified = match std::fs::metadata(&self.path) {
            Ok(m) => m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::ApiKeys(format!("{}: {e}", self.path.display()))),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, keys)) = cache.as_ref() {
            if *at == modified {
                return Ok(keys.clone());
            }
        }
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| Error::ApiKeys(format!("{}: {e}", self.path.display())))?;
        let file: File = serde_json::from_str(&text)
            .map_err(|e| Error::ApiKeys(format!("{}: {e}", self.path.display())))?;
        *cache = Some((modified, file.keys.clone()));
        Ok(file.keys)
    }

    fn save(&self, keys: Vec<ApiKey>) -> Result<(), Error> {
        let io = |e: std::io::Error| Error::ApiKeys(format!("{}: {e}", self.path.display()));
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&File { keys })
            .map_err(|e| Error::ApiKeys(e.to_string()))?;
        std::fs::write(&tmp, text + "\n").map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
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
            replaces: None,
        };
        let mut keys = self.list()?;
        keys.push(record.clone());
        self.save(keys)?;
        Ok((key, record))
    }

    /// Revokes key `id`.
    pub fn revoke(&self, id: &str) -> Result<ApiKey, Error> {
        let mut keys = self.list()?;
        let k = keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or_else(|| Error::ApiKeys(format!("no API key with id {id:?}")))?;
        k.revoked = true;
        let out = k.clone();
        self.save(keys)?;
        Ok(out)
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
            .list()?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| Error::ApiKeys(format!("no API key with id {id:?}")))?;
        if old.revoked {
            return Err(Error::ApiKeys(format!(
                "API key {id} is revoked; create a new one"
            )));
        }
        let (key, mut record) = self.create(
            &old.name,
            &old.org,
            old.team.as_deref(),
            &old.roles,
            valid_for,
        )?;
        let mut keys = self.list()?;
        let now = Utc::now();
        for k in keys.iter_mut() {
            if k.id == id {
                k.expires = k.expires.min(now + overlap);
            }
            if k.id == record.id {
                k.replaces = Some(id.to_string());
                record = k.clone();
            }
        }
        self.save(keys)?;
        Ok((key, record))
    }

    /// The principal of `key`, or why it is not accepted.
    pub fn verify(&self, key: &str, now: DateTime<Utc>) -> Result<Principal, String> {
        let rest = key.strip_prefix(PREFIX).ok_or("not an API key")?;
        let (id, _) = rest
            .split_once('_')
            .ok_or("malformed API key (expected tgk_<id>_<secret>)")?;
        let keys = self
            .list()
            .map_err(|e| format!("API keys unavailable: {e}"))?;
        let digest = sha256_hex(key);
        let k = keys
            .iter()
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
        let store = ApiKeyStore::new(&dir.path().join("keys.json"));
        let (key, rec) = store
            .create(
                "ci",
                "acme",
                Some("search"),
                &[Role::Viewer],
                Duration::days(30),
            )
            .unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
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
    }
}
