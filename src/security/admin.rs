//! Admin access to `/api/` and the dashboard when authentication is on: an admin key as a
//! bearer token (scripts), or a login form that trades the key for an HttpOnly,
//! SameSite=Strict cookie (browsers). State-changing requests made with the cookie must also
//! carry [`CSRF_HEADER`], which a cross-site page cannot set without a CORS preflight that
//! Steward never grants.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use rand::RngCore;

use super::auth::hex;
use crate::sync::lock;

pub const LOGIN_COOKIE: &str = "steward_login";
pub const CSRF_HEADER: &str = "x-steward-csrf";
/// A browser login lasts this long.
pub const LOGIN_TTL: Duration = Duration::from_secs(12 * 60 * 60);
const MAX_LOGINS: usize = 10_000;

/// `POST /login` attempts per peer address: [`LOGIN_BURST`] at once, then one a second. Each
/// attempt checks a key against the database; a throttle keeps a guesser from making the
/// server do that as fast as it can send.
pub const LOGIN_BURST: u32 = 10;

pub struct LoginThrottle(Option<super::limits::RateLimiter>);

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle(super::limits::RateLimiter::new(1, LOGIN_BURST))
    }
}

impl LoginThrottle {
    /// Takes an attempt for `peer`; when none is left, how long until one is.
    pub fn check(&self, peer: &str) -> Result<(), Duration> {
        self.0
            .as_ref()
            .map_or(Ok(()), |limiter| limiter.check(peer))
    }
}

/// The admin who made an `/api` request (bearer key or browser login), put in the request's
/// extensions by the admin guard so writes can say who made them.
#[derive(Debug, Clone)]
pub struct AdminName(pub String);

/// Browser logins: cookie token → the hash of the key used to log in (checked again on every
/// request, so revoking the key ends the login too).
#[derive(Default)]
pub struct Logins {
    open: Mutex<HashMap<String, (String, Instant)>>,
}

impl Logins {
    /// A new login for the key with this hash; returns the cookie token.
    pub fn open(&self, key_hash: String) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex(&bytes);
        let mut open = lock(&self.open);
        if open.len() >= MAX_LOGINS {
            open.retain(|_, (_, at)| at.elapsed() < LOGIN_TTL);
        }
        if open.len() < MAX_LOGINS {
            open.insert(token.clone(), (key_hash, Instant::now()));
        }
        token
    }

    /// The key hash behind a live login.
    pub fn key_hash(&self, token: &str) -> Option<String> {
        let open = lock(&self.open);
        open.get(token)
            .filter(|(_, at)| at.elapsed() < LOGIN_TTL)
            .map(|(hash, _)| hash.clone())
    }

    pub fn close(&self, token: &str) {
        lock(&self.open).remove(token);
    }
}

/// The login token in the request's cookies.
pub fn login_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == LOGIN_COOKIE)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` value for a login (`Secure` when the proxy says the client used HTTPS).
pub fn login_cookie(token: &str, headers: &HeaderMap) -> String {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    format!(
        "{LOGIN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LOGIN_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

pub fn logout_cookie() -> String {
    format!("{LOGIN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The login page. No scripts and no inline styles (the dashboard's CSP applies).
pub fn login_page(problem: Option<&str>) -> String {
    let problem = problem
        .map(|p| format!("<p class=\"problem\">{p}</p>"))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Steward: sign in</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head><body>\
         <h1>Steward</h1><p>This server needs an admin API key (create one with \
         <code>steward keys create NAME --admin</code>).</p>{problem}\
         <form method=\"post\" action=\"login\"><label>API key \
         <input type=\"password\" name=\"key\" autocomplete=\"current-password\" required autofocus></label> \
         <button type=\"submit\">Sign in</button></form></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_open_and_close() {
        let logins = Logins::default();
        let token = logins.open("hash".into());
        assert_eq!(token.len(), 64);
        assert_eq!(logins.key_hash(&token).as_deref(), Some("hash"));
        logins.close(&token);
        assert_eq!(logins.key_hash(&token), None);
    }

    #[test]
    fn finds_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; steward_login=tok; b=2".parse().unwrap(),
        );
        assert_eq!(login_token(&headers), Some("tok"));
        let cookie = login_cookie("tok", &headers);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains("Secure"));
    }
}
