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
    /// The `iss` every token must carry, if set (a token without `iss` is
    /// refused then).
    pub issuer: Option<String>,
    /// The `aud` every token must carry, if set (a token without `aud` is
    /// refused then).
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds: a token is
    /// accepted from `nbf - leeway` until `exp + leeway`.
    pub leeway_seconds: u64,
    /// The API key file of earlier versions (default
    /// `<data_dir>/api_keys.json`): if it exists at start, its keys are moved
    /// into the storage and it is renamed `<name>.imported`.
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

impl Unauthorized {
    /// The reason's class, in our own words only: what the query audit
    /// keeps of an unauthenticated request (the reason itself can quote
    /// what the caller sent, such as a claim's value).
    pub fn class(&self) -> &'static str {
        let r = self.0.as_str();
        const CLASSES: &[(&str, &str)] = &[
            ("no credentials", "no credentials"),
            ("Authorization must be", "malformed Authorization header"),
            ("empty bearer token", "empty bearer token"),
            ("bearer token: not a JWT", "malformed token"),
            ("bearer token: header typ", "JWT typ not accepted"),
            ("bearer token: algorithm", "JWT algorithm not accepted"),
            ("bearer token: no JWT keys", "no JWT keys configured"),
            ("bearer token: signature", "JWT signature not valid"),
            ("bearer token: expired", "JWT expired"),
            ("bearer token: not valid yet", "JWT not valid yet (nbf)"),
            ("bearer token: claim roles", "JWT roles claim not valid"),
            ("bearer token: claim", "JWT required claim missing"),
            ("bearer token: iss", "JWT issuer not accepted"),
            ("bearer token: aud", "JWT audience not accepted"),
            ("bearer token:", "JWT not accepted"),
        ];
        CLASSES
            .iter()
            .find(|(prefix, _)| r.starts_with(prefix))
            .map_or("API key or token not accepted", |(_, c)| c)
    }
}

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
            .field("api_keys", &self.api_keys.description())
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
    /// Loads the JWT keys named in `config`; API keys from `api_keys`.
    pub fn new(config: &AuthConfig, api_keys: ApiKeyStore) -> Result<Self, Error> {
        let mut keys = Vec::new();
        for p in &config.jwt_keys {
            keys.extend(load_keys(p)?);
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = config.leeway_seconds;
        validation.validate_nbf = true;
        // RFC 7519 4.1: a configured issuer or audience is required of every
        // token, not only checked when the token happens to carry it.
        let mut required = vec!["exp", "sub"];
        if config.issuer.is_some() {
            required.push("iss");
        }
        if config.audience.is_some() {
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
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
            api_keys,
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
        // RFC 7519 5.1 / RFC 9068: when present, `typ` says what the token
        // is; anything but a JWT access token is refused.
        if let Some(typ) = &header.typ {
            let t = typ.to_ascii_lowercase();
            if !matches!(
                t.as_str(),
                "jwt" | "at+jwt" | "application/jwt" | "application/at+jwt"
            ) {
                return Err(bad(format!(
                    "header typ {typ:?} is not accepted (JWT or at+jwt)"
                )));
            }
        }
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
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                    "not valid yet (nbf is in the future)".to_string()
                }
                jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(c) => {
                    format!("claim {c} is required")
                }
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                    "iss is not server.auth.issuer".to_string()
                }
                jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                    "aud is not server.auth.audience".to_string()
                }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    use super::*;

    fn key(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/support/jwt")
            .join(name)
    }

    fn token(claims: serde_json::Value, typ: Option<&str>) -> String {
        let pem = std::fs::read(key("issuer.key.pem")).unwrap();
        let mut h = Header::new(Algorithm::RS256);
        h.typ = typ.map(String::from);
        encode(&h, &claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
    }

    fn auth(issuer: Option<&str>, audience: Option<&str>) -> Authenticator {
        let dir = tempfile::tempdir().unwrap();
        let config = AuthConfig {
            jwt_keys: vec![key("issuer.pub.pem")],
            issuer: issuer.map(String::from),
            audience: audience.map(String::from),
            leeway_seconds: 30,
            api_keys_file: None,
        };
        let store = ApiKeyStore::open(&tollgate_storage::StorageConfig::local(dir.path())).unwrap();
        Authenticator::new(&config, store).unwrap()
    }

    #[test]
    fn nbf_iss_aud_and_typ_are_enforced_as_the_rfc_says() {
        let now = Utc::now().timestamp();
        let base = json!({"sub": "u", "org": "acme", "roles": ["admin"], "exp": now + 600});
        let with = |extra: serde_json::Value| {
            let mut c = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            c
        };
        let plain = auth(None, None);
        assert!(plain.jwt(&token(base.clone(), Some("JWT"))).is_ok());
        assert!(plain.jwt(&token(base.clone(), Some("at+jwt"))).is_ok());
        assert!(plain.jwt(&token(base.clone(), None)).is_ok());
        // nbf in the future, past the leeway: refused; within it: accepted.
        let e = plain
            .jwt(&token(with(json!({"nbf": now + 120})), None))
            .unwrap_err();
        assert!(e.0.contains("not valid yet"), "{e}");
        assert_eq!(e.class(), "JWT not valid yet (nbf)");
        assert!(plain
            .jwt(&token(with(json!({"nbf": now + 10})), None))
            .is_ok());
        // A typ that is not a JWT.
        let e = plain
            .jwt(&token(base.clone(), Some("dpop+jwt")))
            .unwrap_err();
        assert!(e.0.contains("typ"), "{e}");
        // A configured issuer and audience are required, not only checked.
        let strict = auth(Some("https://sso.example"), Some("tollgate"));
        let good = with(json!({"iss": "https://sso.example", "aud": "tollgate"}));
        assert!(strict.jwt(&token(good, None)).is_ok());
        for (claims, want) in [
            (with(json!({"aud": "tollgate"})), "claim iss is required"),
            (
                with(json!({"iss": "https://sso.example"})),
                "claim aud is required",
            ),
            (
                with(json!({"iss": "https://evil.example", "aud": "tollgate"})),
                "iss is not",
            ),
            (
                with(json!({"iss": "https://sso.example", "aud": "other"})),
                "aud is not",
            ),
        ] {
            let e = strict.jwt(&token(claims.clone(), None)).unwrap_err();
            assert!(e.0.contains(want), "{claims}: {e}");
        }
        // What the audit keeps of a refusal quotes nothing the caller sent.
        let e = plain
            .jwt(&token(
                with(json!({"roles": ["alice@example.com"]})),
                Some("JWT"),
            ))
            .unwrap_err();
        assert!(e.0.contains("alice@example.com"));
        assert!(!e.class().contains("alice"));
    }
}
