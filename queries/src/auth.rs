//! Authentication: `Authorization: Bearer <token>` where the token is a JWT
//! signed RS256 (public keys from PEM files or a JWKS file) or an API key.
//! A failure is a [`Unauthorized`] with the reason (HTTP 401).

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::apikeys::{ApiKeyStore, PREFIX};
use crate::principal::{Credential, Principal, Role};
use crate::Error;

/// `[server.auth]`: how callers authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Files with the RS256 public keys tokens are checked against: PEM
    /// (`-----BEGIN PUBLIC KEY-----`) or a JWKS document (`{"keys": [...]}`).
    pub jwt_keys: Vec<PathBuf>,
    /// Required `iss` claim, if set.
    pub issuer: Option<String>,
    /// Required `aud` claim, if set.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
    /// The API key file; default `<data_dir>/api_keys.json`.
    pub api_keys_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_keys: Vec::new(),
            issuer: None,
            audience: None,
            leeway_seconds: 60,
            api_keys_file: None,
        }
    }
}

/// A credential that was missing or not accepted, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthorized(pub String);

impl std::fmt::Display for Unauthorized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The claims Tollgate reads from a token.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    org: String,
    #[serde(default)]
    team: Option<String>,
    roles: Vec<String>,
}

/// Checks bearer tokens and API keys.
pub struct Authenticator {
    keys: Vec<(Option<String>, DecodingKey)>,
    validation: Validation,
    api_keys: ApiKeyStore,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("jwt_keys", &self.keys.len())
            .field("api_keys", &self.api_keys.path())
            .finish()
    }
}

fn load_keys(path: &PathBuf) -> Result<Vec<(Option<String>, DecodingKey)>, Error> {
    let bad = |e: String| Error::Auth(format!("server.auth.jwt_keys {}: {e}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if bytes.trim_ascii_start().starts_with(b"{") {
        let set: JwkSet = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if set.keys.is_empty() {
            return Err(bad("the JWKS has no keys".into()));
        }
        set.keys
            .iter()
            .map(|k| {
                Ok((
                    k.common.key_id.clone(),
                    DecodingKey::from_jwk(k).map_err(|e| bad(e.to_string()))?,
                ))
            })
            .collect()
    } else {
        Ok(vec![(
            None,
            DecodingKey::from_rsa_pem(&bytes)
                .map_err(|e| bad(format!("{e} (expected an RSA public key in PEM)")))?,
        )])
    }
}

impl Authenticator {
    /// Loads the keys named in `config`; API keys from `api_keys_file`.
    pub fn new(config: &AuthConfig, api_keys_file: PathBuf) -> Result<Self, Error> {
        let mut keys = Vec::new();
        for p in &config.jwt_keys {
            keys.extend(load_keys(p)?);
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = config.leeway_seconds;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(i) = &config.issuer {
            validation.set_issuer(&[i]);
        }
        match &config.audience {
            Some(a) => validation.set_audience(&[a]),
            None => validation.validate_aud = false,
        }
        Ok(Self {
            keys,
            validation,
            api_keys: ApiKeyStore::new(&api_keys_file),
        })
    }

    /// The API key store.
    pub fn api_keys(&self) -> &ApiKeyStore {
        &self.api_keys
    }

    /// The principal of an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, Unauthorized> {
        let header = header.ok_or_else(|| {
            Unauthorized("no credentials: send Authorization: Bearer <JWT or API key>".into())
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| Unauthorized("Authorization must be `Bearer <token>`".into()))?
            .trim();
        self.token(token, Utc::now())
    }

    /// The principal of a token (JWT or API key) at `now`.
    pub fn token(&self, token: &str, now: DateTime<Utc>) -> Result<Principal, Unauthorized> {
        if token.is_empty() {
            return Err(Unauthorized("empty bearer token".into()));
        }
        if token.starts_with(PREFIX) {
            return self.api_keys.verify(token, now).map_err(Unauthorized);
        }
        self.jwt(token)
    }

    fn jwt(&self, token: &str) -> Result<Principal, Unauthorized> {
        let bad = |m: String| Unauthorized(format!("bearer token: {m}"));
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| bad(format!("not a JWT or API key ({e})")))?;
        if header.alg != Algorithm::RS256 {
            return Err(bad(format!(
                "algorithm {:?} is not accepted (RS256 only)",
                header.alg
            )));
        }
        if self.keys.is_empty() {
            return Err(bad(
                "no JWT keys are configured (server.auth.jwt_keys)".into()
            ));
        }
        let candidates: Vec<&DecodingKey> = match &header.kid {
            Some(kid) if self.keys.iter().any(|(k, _)| k.as_deref() == Some(kid)) => self
                .keys
                .iter()
                .filter(|(k, _)| k.as_deref() == Some(kid))
                .map(|(_, d)| d)
                .collect(),
            _ => self.keys.iter().map(|(_, d)| d).collect(),
        };
        let mut last = None;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                Ok(data) => return principal(data.claims).map_err(bad),
                Err(e) => last = Some(e),
            }
        }
        Err(bad(match last {
            Some(e) => match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    "signature does not match any configured key".to_string()
                }
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "expired".to_string(),
                _ => e.to_string(),
            },
            None => "no key to check it against".to_string(),
        }))
    }
}

fn principal(c: Claims) -> Result<Principal, String> {
    let roles = c
        .roles
        .iter()
        .map(|r| r.parse::<Role>().map_err(|e| format!("claim roles: {e}")))
        .collect::<Result<BTreeSet<Role>, String>>()?;
    Principal::new(c.sub, c.org, c.team, roles, Credential::Jwt)
}
