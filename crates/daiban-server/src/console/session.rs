//! Console sessions: the login with an `admin` API key, and the session
//! cookie that replaces the key afterwards.
//!
//! The cookie holds an expiry time and an HMAC-SHA256 of it, keyed with a
//! random secret that the store keeps per county (`Overview::
//! console_secret`), so every replica accepts the sessions of every other
//! and no process keeps sessions in memory. A session ends at its expiry
//! or when the browser closes. NOTE: removing the admin key from
//! `DAIBAN_API_KEYS` does not end the sessions opened with it before;
//! deleting the `console_secret` key in Redis ends all sessions within
//! `SECRET_REFRESH`.
//!
//! In development mode (no keys configured, loopback only) the console
//! asks for no login, as the gRPC services check no key.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, header};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tonic::Request;

use crate::app::App;
use crate::auth::Scope;

/// The session cookie's name.
pub const COOKIE: &str = "daiban_console";

/// How long a session lasts after the login.
pub const SESSION_LENGTH: Duration = Duration::from_secs(12 * 3600);

type HmacSha256 = Hmac<Sha256>;

/// How long a process uses the secret it read before reading it again,
/// so that a secret deleted or replaced in the store (ending every
/// session) takes effect on every replica within this time.
const SECRET_REFRESH: Duration = Duration::from_secs(5);

/// Signs and checks session values with the store's secret, read again
/// every `SECRET_REFRESH`.
pub struct Sessions {
    secret: Mutex<Option<(Arc<Vec<u8>>, Instant)>>,
}

/// Why a login or a session check failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("store unavailable: {0}")]
    Store(#[from] daiban_store::StoreError),
    #[error("the directory lists no county, so no session secret can be stored")]
    NoCounty,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    pub fn new() -> Self {
        Self {
            secret: Mutex::new(None),
        }
    }

    /// The signing secret: the store's for the directory's first county,
    /// created there from random bytes by the first process that asks.
    async fn secret(&self, app: &App) -> Result<Arc<Vec<u8>>, SessionError> {
        if let Some((secret, read_at)) = self.cached()
            && read_at.elapsed() < SECRET_REFRESH
        {
            return Ok(secret);
        }
        let county = app
            .directory
            .counties()
            .into_iter()
            .next()
            .ok_or(SessionError::NoCounty)?;
        let mut candidate = [0u8; 32];
        rand::rng().fill_bytes(&mut candidate);
        let secret = app
            .store
            .console_secret(&county, &to_hex(&candidate))
            .await?;
        let secret = Arc::new(secret.into_bytes());
        *self.lock() = Some((secret.clone(), Instant::now()));
        Ok(secret)
    }

    fn cached(&self) -> Option<(Arc<Vec<u8>>, Instant)> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Arc<Vec<u8>>, Instant)>> {
        self.secret
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn mac(secret: &[u8], expiry: u64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(format!("daiban console session|{expiry}").as_bytes());
        mac
    }

    /// Returns a new session value, valid for [`SESSION_LENGTH`].
    pub async fn open(&self, app: &App) -> Result<String, SessionError> {
        let expiry = unix_now() + SESSION_LENGTH.as_secs();
        let tag = Self::mac(&self.secret(app).await?, expiry).finalize();
        Ok(format!("{expiry}.{}", to_hex(&tag.into_bytes())))
    }

    /// Checks a session value: signed with the secret and not expired.
    pub async fn check(&self, app: &App, value: &str) -> Result<bool, SessionError> {
        let Some((expiry, tag)) = value.split_once('.') else {
            return Ok(false);
        };
        let Ok(expiry) = expiry.parse::<u64>() else {
            return Ok(false);
        };
        if expiry <= unix_now() || tag.len() != 64 {
            return Ok(false);
        }
        let Some(tag) = from_hex(tag) else {
            return Ok(false);
        };
        // `verify_slice` compares in constant time.
        Ok(Self::mac(&self.secret(app).await?, expiry)
            .verify_slice(&tag)
            .is_ok())
    }
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether `key` is an API key with the `admin` scope.
pub fn is_admin_key(app: &App, key: &str) -> bool {
    let mut request = Request::new(());
    let Ok(value) = format!("Bearer {key}").parse() else {
        return false;
    };
    request.metadata_mut().insert("authorization", value);
    app.auth.require_scope(&request, &[Scope::Admin]).is_ok()
}

/// Returns the value of cookie `name` in the request's headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether the request came over TLS, as its `Origin` tells; browsers send
/// it with every POST, so the login's answer can mark the cookie `Secure`.
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|origin| origin.starts_with("https://"))
}

/// Whether a state-changing request comes from a page of this console:
/// its `Origin` names the host the request was sent to. Requests without
/// an `Origin` are rejected, because browsers send one with every POST.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(origin), Some(host)) = (text(header::ORIGIN), text(header::HOST)) else {
        return false;
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

/// The `Set-Cookie` value that stores `value` for the console's paths
/// until the browser closes, or deletes the cookie when `value` is empty.
pub fn set_cookie(value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    let expires = if value.is_empty() { "; Max-Age=0" } else { "" };
    format!("{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict{expires}{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; daiban_console=123.abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, COOKIE), Some("123.abc"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn origin_must_match_host() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:5000".parse().unwrap());
        assert!(!same_origin(&headers), "no origin");
        headers.insert(header::ORIGIN, "http://127.0.0.1:5000".parse().unwrap());
        assert!(same_origin(&headers), "same origin");
        headers.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&headers), "other origin");
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 127, 255];
        assert_eq!(from_hex(&to_hex(&bytes)), Some(bytes.to_vec()));
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn set_cookie_has_attributes() {
        let value = set_cookie("v", true);
        assert!(value.contains("HttpOnly"), "{value}");
        assert!(value.contains("SameSite=Strict"), "{value}");
        assert!(value.contains("Path=/console"), "{value}");
        assert!(value.ends_with("; Secure"), "{value}");
        assert!(set_cookie("", false).contains("Max-Age=0"), "deletion");
    }
}
