//! Small pieces of HTTP both the routes and the pages read the same way: a request's cookie,
//! the CSRF token of a session's forms, the OAuth flow's binding of a browser to its user (the
//! nonce cookie the callback and the values form require), HTML escaping, secrets compared in
//! constant time, path segments encoded.

use axum::http::{HeaderMap, header};
use para_connect::oauth::CALLBACK_PATH;

use crate::error::ApiError;
use crate::state::AppState;

const NONCE_COOKIE: &str = "para_oauth";
const NONCE_TTL_MS: i64 = 15 * 60_000;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The value of a cookie in the request's `Cookie` headers (the first of that name).
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.trim().to_string())
        })
}

/// A form's CSRF token for a session: HMAC-SHA256 over `purpose`, keyed with the hash of the
/// session's secret (a user token, a dashboard session). Only its holder can compute it, and
/// it changes with the secret; `purpose` keeps one page's tokens from passing on another.
pub(crate) fn csrf_token(secret: &str, purpose: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(csrf_mac(secret, purpose).finalize().into_bytes())
}

/// Whether `sent` is the session's CSRF token for `purpose` (compared in constant time).
pub(crate) fn csrf_valid(secret: &str, purpose: &str, sent: Option<&str>) -> bool {
    sent.and_then(|v| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v).ok())
        .is_some_and(|sent| csrf_mac(secret, purpose).verify_slice(&sent).is_ok())
}

fn csrf_mac(secret: &str, purpose: &str) -> hmac::Hmac<Sha256> {
    let key = Sha256::digest(secret.as_bytes());
    let mut mac =
        <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(purpose.as_bytes());
    mac
}

pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A `Set-Cookie` value binding the browser that receives it to `user_id` for the OAuth
/// callback. Every flow that sends a browser to a provider must set it (the SDK's nonce page
/// and the portal's Connect button).
pub async fn bind_browser(state: &AppState, user_id: &str) -> Result<String, ApiError> {
    let nonce = para_auth::random_token(24);
    state
        .store
        .put_oauth_nonce(&nonce, &state.project_id, user_id, para_store::now_ms() + NONCE_TTL_MS)
        .await?;
    let secure = if state.config.public_url.starts_with("https://") { "; Secure" } else { "" };
    Ok(format!(
        "{NONCE_COOKIE}={nonce}; Path={CALLBACK_PATH}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        NONCE_TTL_MS / 1000
    ))
}

/// The user this browser was bound to by the popup's nonce page (its cookie), in this project.
pub async fn bound_user(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let nonce = crate::web::cookie(headers, NONCE_COOKIE)?;
    let (project, user) = state.store.oauth_nonce(&nonce).await.ok().flatten()?;
    (project == state.project_id).then_some(user)
}

/// Constant-time equality of two secrets of any length (their SHA-256 digests are compared).
/// The token of an `Authorization: Bearer <token>` header (the scheme in either case the
/// clients send, spaces around trimmed); none without one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    Sha256::digest(a.as_bytes()).ct_eq(&Sha256::digest(b.as_bytes())).into()
}

/// Percent-encodes one path segment.
pub(crate) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookies_are_read_from_every_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; para_token=abc.def; b=2"));
        headers.append(header::COOKIE, HeaderValue::from_static("para_oauth=n1"));
        assert_eq!(cookie(&headers, "para_token").as_deref(), Some("abc.def"));
        assert_eq!(cookie(&headers, "para_oauth").as_deref(), Some("n1"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn csrf_tokens_hold_for_one_secret_and_one_purpose() {
        let token = csrf_token("session-a", "p1");
        assert!(csrf_valid("session-a", "p1", Some(&token)));
        assert!(!csrf_valid("session-b", "p1", Some(&token)));
        assert!(!csrf_valid("session-a", "p2", Some(&token)));
        assert!(!csrf_valid("session-a", "p1", None));
        assert!(!csrf_valid("session-a", "p1", Some("not base64!")));
    }
}
