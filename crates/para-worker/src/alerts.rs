//! Alerts to the company (issue 22; Paragon's event destinations): `workflow.run.failed`,
//! `credential.invalid`, `integration.connected` and `integration.disconnected`, POSTed to the
//! deployment's destination (`PARA_ALERTS_WEBHOOK_URL`) and those added in the dashboard,
//! signed, retried with backoff. docs/alerts.md is the company's side of it.
//!
//! Events are recorded by the store ([`para_store::alerts`]) where they happen: a run's
//! failure with the run's final write ([`run_failed`], in the engine's `finish`), a
//! credential's change to INVALID by `para-connect` in the credential's own write, connections
//! and disconnections here through [`para_connect::Hooks`]. [`alert_loop`] (one per process)
//! leases due deliveries and sends each with `x-para-signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256 of "<t>.<body>">` (the timestamp lets a receiver refuse a replayed request),
//! records every attempt, and forgets finished deliveries after a while. The sending is the
//! Triggers API's ([`crate::deliveries`]): the same POST, retry schedule logic and outcomes.
//!
//! Neither a signing secret nor a body is ever logged.

use std::sync::Arc;
use std::time::Duration;

use para_store::StoreError;
use para_store::alerts::{self, ClaimedAlert, Destination, NewAlert};
use para_store::runs::Write;
use serde_json::json;

use crate::Worker;
use crate::deliveries::{attempt_all, hmac_hex, outcome_of, post};

/// The header that carries an alert's signature.
pub const SIGNATURE_HEADER: &str = "x-para-signature";
/// How long a sender holds the deliveries it claimed.
const LEASE_MS: i64 = 60_000;
/// The most deliveries claimed (and sent concurrently) at once.
const BATCH: i64 = 32;
/// The longest failure message an event carries (a step's error can be long).
const MAX_ERROR_CHARS: usize = 2_000;
/// How often finished deliveries are pruned.
const PRUNE_EVERY_MS: i64 = 3_600_000;

/// The deployment's destination and how deliveries are retried (`PARA_ALERTS_WEBHOOK_URL`,
/// `PARA_ALERTS_SIGNING_SECRET`, `PARA_ALERTS_EVENTS`).
#[derive(Clone)]
pub struct AlertsConfig {
    /// The deployment's destination; `None`: only the dashboard's destinations.
    pub webhook_url: Option<String>,
    /// The key the deployment's destination is signed with (required with the URL).
    pub signing_secret: Option<String>,
    /// The event types the deployment's destination receives; empty: all.
    pub events: Vec<String>,
    /// The waits (ms) after each failed attempt: a delivery is tried `len + 1` times in all.
    pub retry_delays_ms: Vec<u64>,
    /// How long one attempt may take, in ms.
    pub timeout_ms: u64,
    /// How long delivered deliveries are kept, in ms (failed ones four times longer).
    pub keep_ms: i64,
}

impl AlertsConfig {
    /// 10 attempts over about 22 hours: 30 s, 2, 10 and 30 min, 1, 2, 3, 6 and 9 h apart.
    pub const RETRY_DELAYS_MS: [u64; 9] = [
        30_000, 120_000, 600_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000,
        32_400_000,
    ];
    /// A week.
    pub const KEEP_MS: i64 = 7 * 24 * 3_600_000;
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            webhook_url: None,
            signing_secret: None,
            events: Vec::new(),
            retry_delays_ms: Self::RETRY_DELAYS_MS.to_vec(),
            timeout_ms: 10_000,
            keep_ms: Self::KEEP_MS,
        }
    }
}

/// The secret is never printed.
impl std::fmt::Debug for AlertsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertsConfig")
            .field("webhook_url", &self.webhook_url)
            .field("signing_secret", &self.signing_secret.as_ref().map(|_| "<set>"))
            .field("events", &self.events)
            .field("retry_delays_ms", &self.retry_delays_ms)
            .field("timeout_ms", &self.timeout_ms)
            .field("keep_ms", &self.keep_ms)
            .finish()
    }
}

/// `t=<unix seconds>,v1=<lowercase hex of HMAC-SHA256(secret, "<t>.<body>")>`: the
/// `x-para-signature` of `body` sent at `t`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    format!("t={t},v1={}", hmac_hex(secret.as_bytes(), &message))
}

/// The event of a run's failure, to commit with the run's final write (`after_run`: recorded
/// only if that write is). `error` is the run's message, redacted as its journal is; it is
/// cut to [`MAX_ERROR_CHARS`].
pub(crate) fn run_failed(
    state: &Worker,
    run_id: &str,
    workflow_id: &str,
    user_id: &str,
    integration: &str,
    error: &str,
) -> Write {
    let build = state.build();
    let workflow = build
        .integrations
        .values()
        .find_map(|i| i.workflows.get(workflow_id))
        .map(|w| w.name.clone());
    let error: String = match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &error[..cut]),
        None => error.to_string(),
    };
    let data = json!({
        "runId": run_id,
        "workflowId": workflow_id,
        "workflowName": workflow,
        "integration": integration,
        "userId": user_id,
        "error": error,
    });
    let alert =
        NewAlert::new(&state.project_id, alerts::RUN_FAILED, Some(format!("run:{run_id}")), data);
    Write::Alert { alert, after_run: Some(run_id.to_string()) }
}

/// Records `integration.connected` or `integration.disconnected` (a disconnection of every
/// account has no credential id). A failure is logged: the connection stands either way.
pub(crate) async fn connection(
    state: &Worker,
    kind: &str,
    user_id: &str,
    integration: &str,
    credential_id: Option<&str>,
) {
    let data = json!({
        "userId": user_id,
        "integration": integration,
        "credentialId": credential_id,
    });
    let alert = NewAlert::new(&state.project_id, kind, None, data);
    match state.store.record_alert(&alert).await {
        Ok(_) => wake(state),
        Err(e) => tracing::warn!(error = %e, event = kind, "recording an alert failed"),
    }
}

/// Tells the sender events were recorded.
pub fn wake(state: &Worker) {
    state.alerts_wake.notify_one();
}

/// The additional data a dashboard destination's secret is sealed with: it opens only as that
/// destination's.
fn aad(project_id: &str, destination_id: &str) -> Vec<u8> {
    format!("alert-destination\0{project_id}\0{destination_id}").into_bytes()
}

/// Adds a destination (the dashboard's) receiving `events` (empty: all) at `url`, with a new
/// signing secret: the destination and the secret, which is shown once and stored sealed.
pub async fn add_destination(
    state: &Worker,
    url: &str,
    events: Vec<String>,
) -> Result<(Destination, String), StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    let secret = format!("whsec_{}", para_auth::random_token(32));
    let sealed = state.secrets.seal(secret.as_bytes(), &aad(&state.project_id, &id));
    let destination = Destination {
        id,
        project_id: state.project_id.clone(),
        url: url.to_string(),
        events,
        secret: Some(sealed),
        created_at: para_store::now_ms(),
    };
    state.store.insert_alert_destination(&destination).await?;
    Ok((destination, secret))
}

/// Checks a destination's URL and event types as the dashboard and `PARA_ALERTS_*` take
/// them: an http(s) URL, and known types separated by commas (none: all). The types, or why
/// not.
pub fn parse_destination(url: &str, events: &str) -> Result<Vec<String>, String> {
    let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    if host.is_none_or(|h| h.is_empty() || h.contains(char::is_whitespace)) {
        return Err(format!(
            "the URL must be an http(s) URL like https://example.com/para-alerts, not `{url}`"
        ));
    }
    let mut list = Vec::new();
    for kind in events.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if !alerts::TYPES.contains(&kind) {
            return Err(format!(
                "`{kind}` is not an event type; the types are {}",
                alerts::TYPES.join(", ")
            ));
        }
        if !list.iter().any(|k| k == kind) {
            list.push(kind.to_string());
        }
    }
    Ok(list)
}

/// Writes the deployment's destination (or removes it), then sends deliveries as they are
/// recorded (woken) and every second (retries come due, other processes' events, expired
/// leases), pruning finished ones every hour.
pub async fn alert_loop(state: Arc<Worker>) {
    let config = &state.config.alerts;
    if let Err(e) = state
        .store
        .set_env_alert_destination(&state.project_id, config.webhook_url.as_deref(), &config.events)
        .await
    {
        tracing::error!(error = %e, "recording the alert destination of PARA_ALERTS_WEBHOOK_URL failed");
    }
    let mut pruned_at = 0;
    loop {
        match deliver_due(&state).await {
            Ok(n) if n as i64 >= BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "claiming alert deliveries failed"),
        }
        let now = para_store::now_ms();
        if now - pruned_at > PRUNE_EVERY_MS {
            pruned_at = now;
            let keep = config.keep_ms;
            if let Err(e) =
                state.store.prune_alerts(&state.project_id, now - keep, now - 4 * keep).await
            {
                tracing::warn!(error = %e, "pruning alert deliveries failed");
            }
        }
        tokio::select! {
            _ = state.alerts_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(1_000)) => {}
        }
    }
}

/// Claims one batch of due deliveries and sends them concurrently; how many were claimed.
pub async fn deliver_due(state: &Arc<Worker>) -> Result<usize, StoreError> {
    let owner = &state.engine.worker;
    let claimed =
        state.store.claim_alert_deliveries(&state.project_id, owner, BATCH, LEASE_MS).await?;
    Ok(attempt_all(
        state,
        claimed,
        |state, delivery| async move { attempt(&state, delivery).await },
    )
    .await)
}

/// One attempt of one delivery, and its outcome recorded.
async fn attempt(state: &Worker, delivery: ClaimedAlert) {
    let config = &state.config.alerts;
    let sent = send(state, &delivery).await;
    let outcome = outcome_of(sent, delivery.attempts, &config.retry_delays_ms);
    let (event, destination) = (&delivery.event_id, &delivery.destination_id);
    match &outcome {
        para_store::trigger_subscriptions::DeliveryOutcome::Delivered { status } => {
            tracing::debug!(event = %event, destination = %destination, status, "alert delivered")
        }
        para_store::trigger_subscriptions::DeliveryOutcome::Retry { error, .. } => tracing::debug!(
            event = %event, destination = %destination, attempt = delivery.attempts + 1, error = %error,
            "alert delivery failed; will retry"
        ),
        para_store::trigger_subscriptions::DeliveryOutcome::Failed { error, .. } => tracing::warn!(
            event = %event, destination = %destination, error = %error,
            "alert delivery failed for the last time"
        ),
    }
    let owner = &state.engine.worker;
    match state.store.finish_alert_delivery(owner, event, destination, &outcome).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(event = %event, "alert delivery lease lost; its outcome is not recorded")
        }
        Err(e) => tracing::warn!(event = %event, error = %e, "recording an alert delivery failed"),
    }
}

/// POSTs the event to its destination, signed: its 2xx status, or the status (if any answer
/// came) and why it failed.
async fn send(state: &Worker, delivery: &ClaimedAlert) -> Result<u16, (Option<u16>, String)> {
    let config = &state.config.alerts;
    let secret = match &delivery.secret {
        Some(sealed) => {
            let opened = state
                .secrets
                .open(sealed, &aad(&state.project_id, &delivery.destination_id))
                .map_err(|_| {
                    (None, "the destination's secret cannot be opened: the server's secret key (PARA_SECRET_KEY) changed; add the destination again".to_string())
                })?;
            String::from_utf8(opened)
                .map_err(|_| (None, "the destination's secret is unreadable".to_string()))?
        }
        None => config.signing_secret.clone().ok_or_else(|| {
            (
                None,
                "PARA_ALERTS_SIGNING_SECRET is not set in this process: every alert is signed, so none is sent"
                    .to_string(),
            )
        })?,
    };
    let t = para_store::now_ms() / 1000;
    let headers = vec![(SIGNATURE_HEADER.to_string(), sign(&secret, t, delivery.body.as_bytes()))];
    post(&state.http, &delivery.url, headers, delivery.body.clone(), config.timeout_ms).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_timestamp_and_the_body() {
        // HMAC-SHA256("Jefe", "1700000000.what do ya want for nothing?"), computed with
        // Python's hmac module.
        assert_eq!(
            sign("Jefe", 1_700_000_000, b"what do ya want for nothing?"),
            "t=1700000000,v1=1cdd0650c8be1cb0974b1788d458b1e781206cfef59b85faafc582d2e182c57e"
        );
        assert_ne!(sign("Jefe", 1, b"x"), sign("Jefe", 2, b"x"));
    }

    #[test]
    fn destinations_are_checked() {
        assert_eq!(parse_destination("https://a.example/x", "").unwrap(), Vec::<String>::new());
        assert_eq!(
            parse_destination("http://a", " credential.invalid,credential.invalid ,").unwrap(),
            ["credential.invalid"]
        );
        let bad = parse_destination("https://a", "credential.invalid,run.failed").unwrap_err();
        assert!(bad.contains("`run.failed` is not an event type"), "{bad}");
        assert!(parse_destination("ftp://a", "").unwrap_err().contains("http(s) URL"));
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        let config =
            AlertsConfig { signing_secret: Some("s3cr3t-value".into()), ..AlertsConfig::default() };
        assert!(!format!("{config:?}").contains("s3cr3t-value"));
        let delays: u64 = AlertsConfig::RETRY_DELAYS_MS.iter().sum();
        assert!((20 * 3_600_000..26 * 3_600_000).contains(&delays), "about a day: {delays}");
    }
}
