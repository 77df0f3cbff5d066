//! Sealing tenant keys at rest: XChaCha20-Poly1305 under the master key,
//! with the key's tenant, sequence, id, creation time and chain link as
//! associated data, so a sealed key moved to another tenant or place, or
//! relabelled, does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

/// Format of a sealed key object.
pub const FORMAT: u32 = 1;

/// The master key every instance sharing a storage must have.
#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    /// First 8 hex digits of the SHA-256 of the key: names it in errors.
    pub fingerprint: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({}, [redacted])", self.fingerprint)
    }
}

impl MasterKey {
    /// A master key from 64 hex digits (32 bytes); `what` names where it
    /// came from in the error.
    pub fn from_hex(hex_key: &str, what: &str) -> Result<Self, Error> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| {
            Error::Config(format!(
                "{what}: the master key must be 64 hex digits (such as `openssl rand -hex 32`)"
            ))
        })?;
        Self::from_bytes(&bytes, what)
    }

    /// A master key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self, Error> {
        if bytes.len() != 32 {
            return Err(Error::Config(format!(
                "{what}: the master key must be 32 bytes (64 hex digits), not {}",
                bytes.len()
            )));
        }
        let cipher = XChaCha20Poly1305::new_from_slice(bytes)
            .map_err(|e| Error::Config(format!("{what}: {e}")))?;
        Ok(Self {
            cipher,
            fingerprint: hex::encode(&Sha256::digest(bytes)[..4]),
        })
    }

    /// 32 fresh random bytes.
    pub fn random_bytes() -> Result<[u8; 32], Error> {
        let mut key = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut key)
            .map_err(|e| Error::KeyStore(format!("no randomness from the OS: {e}")))?;
        Ok(key)
    }
}

/// One tenant key as stored: `keys/t-<tenant in hex>/<sequence>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedKey {
    /// [`FORMAT`].
    pub format: u32,
    /// The tenant.
    pub tenant: String,
    /// Its place among the tenant's keys, from 1; the highest is active.
    pub sequence: u64,
    /// Key id, recorded beside what it redacted.
    pub id: String,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// SHA-256 (hex) of the tenant's previous key object; `None` for the first.
    pub previous: Option<String>,
    /// The 24-byte nonce, hex.
    pub nonce: String,
    /// The key sealed with its tag, hex.
    pub sealed: String,
}

impl SealedKey {
    fn aad(&self) -> String {
        format!(
            "tollgate-tenant-key/{}\n{}\n{}\n{}\n{}\n{}",
            self.format,
            self.tenant,
            self.sequence,
            self.id,
            self.created.to_rfc3339(),
            self.previous.as_deref().unwrap_or("-")
        )
    }

    /// Seals `key` with the metadata given.
    pub fn seal(
        master: &MasterKey,
        tenant: &str,
        sequence: u64,
        id: &str,
        previous: Option<String>,
        key: &[u8],
    ) -> Result<Self, Error> {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| Error::KeyStore(format!("no randomness from the OS: {e}")))?;
        let mut out = Self {
            format: FORMAT,
            tenant: tenant.to_string(),
            sequence,
            id: id.to_string(),
            created: Utc::now(),
            previous,
            nonce: hex::encode(nonce),
            sealed: String::new(),
        };
        let aad = out.aad();
        let sealed = master
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: key,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Error::KeyStore("sealing a tenant key failed".into()))?;
        out.sealed = hex::encode(sealed);
        Ok(out)
    }

    /// The key, or an error when the object was altered or sealed under
    /// another master key.
    pub fn open(&self, master: &MasterKey, path: &str) -> Result<Vec<u8>, Error> {
        let bad = |why: &str| {
            Error::KeyStore(format!(
                "{path}: {why}; it was altered, or sealed under another master key than this instance's ({})",
                master.fingerprint
            ))
        };
        let nonce = hex::decode(&self.nonce)
            .ok()
            .filter(|n| n.len() == 24)
            .ok_or_else(|| bad("its nonce is not 24 bytes of hex"))?;
        let sealed = hex::decode(&self.sealed).map_err(|_| bad("its sealed key is not hex"))?;
        let aad = self.aad();
        master
            .cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| bad("it does not open (the AEAD tag does not match)"))
    }
}
