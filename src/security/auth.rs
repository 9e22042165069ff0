//! Who is calling. `--auth none` (loopback only) trusts everyone on the machine; `--auth
//! api-key` wants `Authorization: Bearer <key>` with a key made by `steward keys create`.
//! [`Auth`] is an enum so an OAuth 2.1 resource-server mode (the MCP authorization spec) can be
//! added as one more variant.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::store::Store;
use crate::sync::lock;

/// Every key starts with this, so a leaked one is easy to recognise (and grep for).
pub const KEY_PREFIX: &str = "stw_";
/// Verified keys are trusted this long before the database is asked again; bounds how long a
/// revoked key keeps working on a running server.
pub const DEFAULT_KEY_CACHE: Duration = Duration::from_secs(2);
const MAX_CACHED_KEYS: usize = 10_000;

/// `--auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// No authentication: allowed only on a loopback address (or with --insecure-no-auth).
    None,
    /// `Authorization: Bearer <key>` with a key from `steward keys create`.
    ApiKey,
}

pub use crate::principal::Principal;

impl AuthMode {
    /// Every mode, by the name flags and the config file use.
    pub const NAMES: [(&str, AuthMode); 2] =
        [("none", AuthMode::None), ("api-key", AuthMode::ApiKey)];
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    /// Wrong, malformed or revoked: deliberately not told apart.
    Invalid,
    /// The key store could not answer.
    Unavailable,
}

impl AuthError {
    pub fn message(&self) -> &'static str {
        match self {
            AuthError::Missing => {
                "Unauthorized: this server needs an API key; send `Authorization: Bearer <key>` (create one with `steward keys create NAME`)"
            }
            AuthError::Invalid => {
                "Unauthorized: the API key is wrong or revoked; check the key, or create a new one with `steward keys create NAME`"
            }
            AuthError::Unavailable => {
                "the key store cannot be read right now (database unavailable); retry shortly and see /health"
            }
        }
    }
}

/// The authentication in force.
pub enum Auth {
    None,
    ApiKeys(ApiKeys),
}

impl Auth {
    pub fn new(mode: AuthMode, store: Store, cache_for: Duration) -> Self {
        match mode {
            AuthMode::None => Auth::None,
            AuthMode::ApiKey => Auth::ApiKeys(ApiKeys::new(store, cache_for)),
        }
    }

    pub fn is_on(&self) -> bool {
        !matches!(self, Auth::None)
    }

    /// The sender of a request, from its headers alone.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        match self {
            Auth::None => Ok(Principal::Anonymous),
            Auth::ApiKeys(keys) => {
                let key = bearer(headers).ok_or(AuthError::Missing)?;
                keys.verify(key).await
            }
        }
    }
}

/// The token of an `Authorization: Bearer ...` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// API keys checked against `api_keys`, with a short cache so the hot path rarely queries.
pub struct ApiKeys {
    store: Store,
    cache_for: Duration,
    /// Key hash → the principal and when the database last confirmed it.
    verified: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl ApiKeys {
    pub fn new(store: Store, cache_for: Duration) -> Self {
        ApiKeys {
            store,
            cache_for,
            verified: Mutex::new(HashMap::new()),
        }
    }

    pub async fn verify(&self, key: &str) -> Result<Principal, AuthError> {
        // Anything that cannot be a key is refused without hashing or querying.
        if !looks_like_key(key) {
            return Err(AuthError::Invalid);
        }
        self.verify_hash(hash_key(key)).await
    }

    /// Like [`ApiKeys::verify`], for a key known by its hash (a browser login).
    pub async fn verify_hash(&self, hash: String) -> Result<Principal, AuthError> {
        if let Some((principal, at)) = lock(&self.verified).get(&hash)
            && at.elapsed() < self.cache_for
        {
            return Ok(principal.clone());
        }
        let row = self.store.find_api_key(&hash).await.map_err(|error| {
            tracing::error!(%error, "cannot read api_keys");
            AuthError::Unavailable
        })?;
        let mut verified = lock(&self.verified);
        let Some(row) = row else {
            verified.remove(&hash);
            return Err(AuthError::Invalid);
        };
        let principal = Principal::Key {
            name: row.name,
            admin: row.admin,
        };
        if verified.len() >= MAX_CACHED_KEYS {
            verified.clear();
        }
        verified.insert(hash, (principal.clone(), Instant::now()));
        Ok(principal)
    }
}

/// A new key: the prefix and 256 random bits in hex.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", hex(&bytes))
}

/// What is stored instead of the key: SHA-256, hex. A 256-bit random key needs no salt or
/// slow hash (there is nothing to guess from a dictionary).
pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn looks_like_key(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX)
        .is_some_and(|rest| rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            // Writing to a String cannot fail.
            if write!(out, "{b:02x}").is_err() {
                tracing::error!("formatting into a String failed");
            }
            out
        })
}

/// Key names become principals: short, printable, no spaces.
pub fn check_key_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid key name {name:?}: use 1-64 characters from A-Z, a-z, 0-9 and . _ @ - (e.g. alice or ci-bot)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_hashed() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert!(looks_like_key(&a), "{a}");
        assert_eq!(a.len(), KEY_PREFIX.len() + 64);
        assert_eq!(hash_key(&a).len(), 64);
        assert_ne!(hash_key(&a), hash_key(&b));
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!looks_like_key("stw_xyz"));
    }

    #[test]
    fn reads_bearer_tokens() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer  stw_abc ".parse().unwrap());
        assert_eq!(bearer(&headers), Some("stw_abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn key_names() {
        assert!(check_key_name("alice").is_ok());
        assert!(check_key_name("ci-bot@team.x").is_ok());
        for bad in ["", "a b", "é", &"x".repeat(65)] {
            assert!(check_key_name(bad).is_err(), "{bad}");
        }
    }
}
