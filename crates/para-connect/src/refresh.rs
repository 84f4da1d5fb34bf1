//! Credentials in use: opening the sealed secret, and renewing an expired OAuth access token
//! exactly once however many requests need it at the same moment — one task per process (an
//! in-memory lock per credential) and one process per database (the store's refresh lease).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use para_store::{Credential, CredentialStatus, now_ms};
use serde_json::Value;

use crate::Connect;
use crate::Error;
use crate::connector::{Connector, Material};
use crate::oauth;

/// Refresh this long before the access token expires.
const EARLY_MS: i64 = 60_000;
/// How long a process may hold the refresh lease.
const LEASE_MS: i64 = 30_000;

/// Per-credential locks of this process.
#[derive(Default)]
pub struct Locks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Locks {
    fn of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().expect("refresh locks");
        if map.len() > 10_000 {
            map.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        map.entry(id.to_string()).or_default().clone()
    }
}

/// The additional data bound to a credential's sealed secret: it opens only for its owner.
pub fn aad(project_id: &str, user_id: &str, integration: &str) -> Vec<u8> {
    format!("credential\0{project_id}\0{user_id}\0{integration}").into_bytes()
}

pub fn seal(state: &Connect, user_id: &str, integration: &str, m: &Material) -> String {
    let json = serde_json::to_vec(m).expect("material serialises");
    state.secrets.seal(&json, &aad(&state.project_id, user_id, integration))
}

pub fn open(state: &Connect, c: &Credential) -> Result<Material, Error> {
    let bytes = state
        .secrets
        .open(&c.secret, &aad(&state.project_id, &c.user_id, &c.integration))
        .map_err(|_| {
            Error::new(
                crate::Kind::Internal,
                "secret_key",
                "this credential cannot be decrypted: the server's secret key (PARA_SECRET_KEY) changed; reconnect the account",
            )
        })?;
    serde_json::from_slice(&bytes).map_err(|_| {
        Error::new(
            crate::Kind::Internal,
            "secret_format",
            "this credential's stored secret is unreadable; reconnect the account",
        )
    })
}

/// Holds the credential against refreshes while its material is changed: the credential's lock
/// in this process and its refresh lease across processes (waiting for a refresh under way).
/// Call [`release`] when done, also after a failure.
pub async fn hold(state: &Connect, id: &str) -> Result<tokio::sync::OwnedMutexGuard<()>, Error> {
    let held = state.refresh_locks.of(id).lock_owned().await;
    let deadline = now_ms() + LEASE_MS + 5_000;
    while !state.store.try_lease_refresh(id, now_ms() + LEASE_MS).await? {
        if now_ms() > deadline {
            return Err(refresh_timeout());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(held)
}

/// Ends a [`hold`].
pub async fn release(state: &Connect, id: &str) -> Result<(), Error> {
    state.store.release_refresh(id).await?;
    Ok(())
}

/// Another process held the refresh lease past its end.
fn refresh_timeout() -> Error {
    Error::new(
        crate::Kind::Unavailable,
        "refresh_timeout",
        "another server is refreshing this credential and has not finished; retry",
    )
}

/// When an access token obtained now expires (`expires_in`), in Unix ms.
pub fn expiry(token: &serde_json::Map<String, Value>) -> Option<i64> {
    let secs = match token.get("expires_in")? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.parse::<f64>().ok()?,
        _ => return None,
    };
    (secs > 0.0).then(|| now_ms() + (secs * 1000.0) as i64)
}

fn expiring(c: &Credential) -> bool {
    expiring_at(c.expires_at, now_ms())
}

pub(crate) fn expiring_at(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_some_and(|at| at - EARLY_MS <= now)
}

/// The credential's material, refreshed first when its token is (about to be) expired.
pub async fn usable(
    state: &Connect,
    connector: &Connector,
    c: Credential,
) -> Result<(Credential, Material), Error> {
    if expiring(&c) && can_refresh(connector) {
        let seen = c.updated_at;
        return renew(state, connector, c, move |fresh| {
            fresh.updated_at == seen && expiring(fresh)
        })
        .await;
    }
    let m = open(state, &c)?;
    Ok((c, m))
}

/// After the upstream refused the token (401): refresh once unless another request already
/// did since `c` was read.
pub async fn after_unauthorized(
    state: &Connect,
    connector: &Connector,
    c: Credential,
) -> Result<Option<(Credential, Material)>, Error> {
    if !can_refresh(connector) {
        return Ok(None);
    }
    let seen = c.updated_at;
    renew(state, connector, c, move |fresh| fresh.updated_at == seen).await.map(Some)
}

pub fn can_refresh(connector: &Connector) -> bool {
    connector.oauth.as_ref().is_some_and(|o| o.refreshes)
}

/// Refreshes `c` if `still_needed(fresh copy)`; otherwise returns the fresh copy. Exactly one
/// caller across processes performs the token request.
async fn renew(
    state: &Connect,
    connector: &Connector,
    c: Credential,
    still_needed: impl Fn(&Credential) -> bool,
) -> Result<(Credential, Material), Error> {
    state.credential_cache.forget(&c.user_id, &c.integration);
    let lock = state.refresh_locks.of(&c.id);
    let _held = lock.lock().await;
    let deadline = now_ms() + LEASE_MS + 5_000;
    loop {
        let fresh = state
            .store
            .credential(&state.project_id, &c.user_id, &c.id)
            .await?
            .ok_or_else(|| Error::not_found("the credential was deleted"))?;
        if !still_needed(&fresh) {
            let m = open(state, &fresh)?;
            return Ok((fresh, m));
        }
        if state.store.try_lease_refresh(&c.id, now_ms() + LEASE_MS).await? {
            let result = refresh_now(state, connector, &fresh).await;
            let metrics = &state.telemetry.metrics;
            metrics.refreshes.inc(&[&c.integration]);
            if result.is_err() {
                metrics.refresh_failures.inc(&[&c.integration]);
            }
            state.store.release_refresh(&c.id).await?;
            return result;
        }
        // Another process is refreshing: wait for its result.
        if now_ms() > deadline {
            return Err(refresh_timeout());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn refresh_now(
    state: &Connect,
    connector: &Connector,
    c: &Credential,
) -> Result<(Credential, Material), Error> {
    let mut m = open(state, c)?;
    let Some(refresh_token) = m.refresh_token().map(str::to_string) else {
        let reason = "the access token expired and the provider gave no refresh token: reconnect";
        return mark_invalid(state, c, m, "no_refresh_token", reason).await;
    };
    let form = vec![
        ("grant_type".to_string(), "refresh_token".to_string()),
        ("refresh_token".to_string(), refresh_token.clone()),
    ];
    match oauth::token_request(state, connector, &m, form).await {
        Ok(mut token) => {
            // Providers may omit the refresh token when it does not rotate.
            if !token.contains_key("refresh_token") {
                token.insert("refresh_token".into(), Value::String(refresh_token));
            }
            let expires_at = expiry(&token);
            m.token = token;
            oauth::save_credentials(connector, &mut m);
            let sealed = seal(state, &c.user_id, &c.integration, &m);
            let fresh = state
                .store
                .update_credential(
                    &state.project_id,
                    &c.user_id,
                    &c.id,
                    CredentialStatus::Valid,
                    None,
                    &sealed,
                    expires_at,
                )
                .await?
                .ok_or_else(|| Error::not_found("the credential was deleted"))?;
            Ok((fresh, m))
        }
        Err(oauth::TokenFailure::Refused(reason)) => {
            let reason = format!("refreshing the token failed: {reason}");
            mark_invalid(state, c, m, "refresh_refused", &reason).await
        }
        Err(oauth::TokenFailure::Unreachable(reason)) => Err(Error::new(
            crate::Kind::Upstream,
            "token_endpoint",
            format!("refreshing the token failed: {reason}"),
        )),
    }
}

/// Marks the credential INVALID for `reason` (announced once, with the change: `code` is
/// the `credential.invalid` event's reason) and fails with it.
async fn mark_invalid(
    state: &Connect,
    c: &Credential,
    m: Material,
    code: &str,
    reason: &str,
) -> Result<(Credential, Material), Error> {
    state.credential_cache.forget(&c.user_id, &c.integration);
    let alert = state.invalid_alert(&c.user_id, &c.integration, &c.id, code, reason);
    state
        .store
        .update_credential_alerting(
            &state.project_id,
            &c.user_id,
            &c.id,
            CredentialStatus::Invalid,
            Some(reason),
            &c.secret,
            c.expires_at,
            &alert,
        )
        .await?;
    let _ = m;
    Err(Error::new(crate::Kind::Unprocessable, "credential_invalid", reason))
}
