//! Triggers API deliveries (Paragon's `/trigger-subscriptions`): the events a user's
//! subscriptions hear are POSTed to the company's webhook URL, signed.
//!
//! A delivery is recorded in the transaction that routes its webhook event
//! ([`crate::webhooks`]) or records the poll that found its item ([`crate::triggers`]), so it
//! exists exactly when the event counts as handled. [`delivery_loop`] leases due deliveries
//! (one process sends each), POSTs the stored body as it is, with `x-paragon-signature:
//! v1=<hex HMAC-SHA256 of the body with the signing secret>` and the subscription's override
//! headers, and records the outcome under the lease: a 2xx is delivered; anything else (a
//! redirect, a 4xx, a 5xx, a timeout, no URL) is tried again after the next wait of
//! [`TriggersApiConfig::retry_delays_ms`], and after the last one the delivery is failed and
//! the subscription `ERRORED`.
//!
//! Neither the signing secret nor a body is ever logged.

use std::sync::Arc;
use std::time::Duration;

use para_store::StoreError;
use para_store::runs::Write;
use para_store::trigger_subscriptions::{
    Delivery, DeliveryOutcome, NewDelivery, SubscriptionStatus, TriggerSubscription,
};
use para_store::webhooks::WebhookEvent;
use serde_json::{Value, json};

use crate::Worker;

/// The header that carries a delivery's signature.
pub const SIGNATURE_HEADER: &str = "x-paragon-signature";
/// How long a sender holds the deliveries it claimed.
const LEASE_MS: i64 = 60_000;
/// The most deliveries claimed (and sent concurrently) at once.
const BATCH: i64 = 32;

/// Where deliveries go and how they are retried (`PARA_TRIGGERS_WEBHOOK_URL`,
/// `PARA_TRIGGERS_SIGNING_SECRET`).
#[derive(Clone)]
pub struct TriggersApiConfig {
    /// The company's webhook URL; a subscription's `webhookOverride.url` wins over it.
    pub webhook_url: Option<String>,
    /// The key every delivery is signed with. Without it nothing is sent (each attempt fails
    /// saying so).
    pub signing_secret: Option<String>,
    /// The waits (ms) after each failed attempt: a delivery is tried `len + 1` times in all.
    pub retry_delays_ms: Vec<u64>,
    /// How long one attempt may take, in ms.
    pub timeout_ms: u64,
}

impl TriggersApiConfig {
    /// 8 attempts over about an hour: 30 s, 1, 2, 5, 10, 15 and 25 min apart.
    pub const RETRY_DELAYS_MS: [u64; 7] =
        [30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_500_000];
}

impl Default for TriggersApiConfig {
    fn default() -> Self {
        TriggersApiConfig {
            webhook_url: None,
            signing_secret: None,
            retry_delays_ms: Self::RETRY_DELAYS_MS.to_vec(),
            timeout_ms: 10_000,
        }
    }
}

/// The secret is never printed.
impl std::fmt::Debug for TriggersApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriggersApiConfig")
            .field("webhook_url", &self.webhook_url)
            .field("signing_secret", &self.signing_secret.as_ref().map(|_| "<set>"))
            .field("retry_delays_ms", &self.retry_delays_ms)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// `v1=<lowercase hex of HMAC-SHA256(secret, body)>`: the `x-paragon-signature` of `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    format!("v1={}", hmac_hex(secret.as_bytes(), body))
}

/// The lowercase hex of HMAC-SHA256(`key`, `message`) (the Triggers API's and the alerts'
/// signatures).
pub fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, message);
    let mut out = String::with_capacity(64);
    for b in tag.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The outcome of an attempt made after `earlier` ones, by the schedule of waits `delays_ms`
/// (`len + 1` attempts in all): delivered on a 2xx; else tried again after the next wait, or,
/// after the last, failed.
pub(crate) fn outcome_of(
    sent: Result<u16, (Option<u16>, String)>,
    earlier: i64,
    delays_ms: &[u64],
) -> DeliveryOutcome {
    match sent {
        Ok(status) => DeliveryOutcome::Delivered { status },
        Err((status, error)) => match delays_ms.get(earlier as usize) {
            Some(wait) => {
                DeliveryOutcome::Retry { at: para_store::now_ms() + *wait as i64, status, error }
            }
            None => DeliveryOutcome::Failed {
                status,
                error: format!(
                    "webhook delivery failed {} times in a row; last: {error}",
                    earlier + 1
                ),
            },
        },
    }
}

/// POSTs `body` as JSON to `url` with `headers` (later ones win), within `timeout_ms`: the
/// answer's 2xx status, or the status (if an answer came) and why it failed. No redirect is
/// followed (the client's policy), and the URL is not in the reason (it may carry a token).
pub(crate) async fn post(
    http: &reqwest::Client,
    url: &str,
    headers: Vec<(String, String)>,
    body: String,
    timeout_ms: u64,
) -> Result<u16, (Option<u16>, String)> {
    let mut request = http
        .post(url)
        .timeout(Duration::from_millis(timeout_ms))
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let answer = request.body(body).send().await.map_err(|e| {
        let why = if e.is_timeout() {
            format!("no answer within {timeout_ms} ms")
        } else {
            format!("the request failed: {}", without_url(&e))
        };
        (None, why)
    })?;
    let status = answer.status().as_u16();
    if answer.status().is_success() {
        Ok(status)
    } else {
        Err((Some(status), format!("the webhook answered HTTP {status}")))
    }
}

/// A subscription's parameters as `(name, text)` pairs (what a trigger's `filter` and a
/// polling path's placeholders compare and fill in): strings as they are, `null` as empty,
/// other values as JSON.
pub fn parameter_texts(parameters: &Value) -> Vec<(String, String)> {
    let Some(map) = parameters.as_object() else { return Vec::new() };
    map.iter()
        .map(|(k, v)| {
            let text = match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

/// The delivery of `payload` to a subscription: its body is built now (and signed as stored
/// when sent), with a new `eventId`.
pub(crate) fn queued(
    state: &Worker,
    subscription: &TriggerSubscription,
    source: &str,
    payload: Value,
    received_at: i64,
) -> Write {
    let id = uuid::Uuid::new_v4().to_string();
    let metadata = subscription
        .webhook_override
        .as_ref()
        .and_then(|o| o.get("metadata"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let received = chrono::DateTime::from_timestamp_millis(received_at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let body = json!({
        "eventId": id,
        "userId": subscription.user_id,
        "integration": subscription.integration,
        "triggerType": subscription.trigger_type,
        "triggerSubscriptionId": subscription.id,
        "credentialId": subscription.credential_id,
        "projectId": state.project_id,
        "dateReceived": received,
        "payload": payload,
        "triggerSubscriptionMetadata": metadata,
    });
    Write::Delivery(NewDelivery {
        id,
        project_id: state.project_id.clone(),
        subscription_id: subscription.id.clone(),
        source: source.to_string(),
        body: body.to_string(),
    })
}

/// The deliveries a webhook event makes for one account's user: one per ACTIVE subscription of
/// that account whose trigger type hears the event (`hears(trigger type, parameters)`, the
/// same rule as workflows').
pub(crate) fn for_event(
    state: &Worker,
    event: &WebhookEvent,
    subscriptions: &[para_store::trigger_subscriptions::TriggerSubscription],
    credential_id: &str,
    hears: impl Fn(&str, &[(String, String)]) -> bool,
) -> Vec<Write> {
    subscriptions
        .iter()
        .filter(|s| s.status == SubscriptionStatus::Active && s.credential_id == credential_id)
        .filter(|s| hears(&s.trigger_type, &parameter_texts(&s.parameters)))
        .map(|s| {
            let source = format!("webhook:{}", event.id);
            queued(state, s, &source, event.body.clone(), event.received_at)
        })
        .collect()
}

/// Tells the sender deliveries were recorded.
pub fn wake(state: &Worker) {
    state.deliveries_wake.notify_one();
}

/// Sends deliveries as they are recorded (woken) and every 250 ms (retries come due, other
/// processes' deliveries, expired leases).
pub async fn delivery_loop(state: Arc<Worker>) {
    loop {
        match deliver_due(&state).await {
            Ok(n) if n as i64 >= BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "claiming trigger deliveries failed"),
        }
        tokio::select! {
            _ = state.deliveries_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// Claims one batch of due deliveries and sends them concurrently; how many were claimed.
pub async fn deliver_due(state: &Arc<Worker>) -> Result<usize, StoreError> {
    let owner = &state.engine.worker;
    let claimed =
        state.store.claim_trigger_deliveries(&state.project_id, owner, BATCH, LEASE_MS).await?;
    Ok(attempt_all(
        state,
        claimed,
        |state, delivery| async move { attempt(&state, delivery).await },
    )
    .await)
}

/// Makes one attempt of each claimed delivery, concurrently, and waits for them all; how many
/// there were (the Triggers API's sender and the alerts').
pub(crate) async fn attempt_all<T, F, Fut>(
    state: &Arc<Worker>,
    claimed: Vec<T>,
    attempt: F,
) -> usize
where
    T: Send + 'static,
    F: Fn(Arc<Worker>, T) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let count = claimed.len();
    let mut sending = tokio::task::JoinSet::new();
    for delivery in claimed {
        sending.spawn(attempt(state.clone(), delivery));
    }
    while sending.join_next().await.is_some() {}
    count
}

/// One attempt of one delivery, and its outcome recorded.
async fn attempt(state: &Worker, delivery: Delivery) {
    let config = &state.config.triggers_api;
    let sent = send(state, &delivery).await;
    let counted = if sent.is_ok() { "sent" } else { "failed" };
    state.telemetry.metrics.trigger_deliveries.inc(&[counted]);
    let made = delivery.attempts + 1;
    let outcome = outcome_of(sent, delivery.attempts, &config.retry_delays_ms);
    match &outcome {
        DeliveryOutcome::Delivered { status } => tracing::debug!(
            delivery = %delivery.id, subscription = %delivery.subscription_id, status, "trigger event delivered"
        ),
        DeliveryOutcome::Retry { error, .. } => tracing::debug!(
            delivery = %delivery.id, subscription = %delivery.subscription_id, attempt = made, error = %error,
            "trigger event delivery failed; will retry"
        ),
        DeliveryOutcome::Failed { error, .. } => tracing::warn!(
            delivery = %delivery.id, subscription = %delivery.subscription_id, error = %error,
            "trigger event delivery failed for the last time; the subscription is ERRORED"
        ),
    }
    let owner = &state.engine.worker;
    match state.store.finish_trigger_delivery(owner, &delivery.id, &outcome).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(delivery = %delivery.id, "trigger delivery lease lost; its outcome is not recorded")
        }
        Err(e) => {
            tracing::warn!(delivery = %delivery.id, error = %e, "recording a trigger delivery failed")
        }
    }
}

/// POSTs the delivery: its 2xx status, or the status (if any answer came) and why it failed.
async fn send(state: &Worker, delivery: &Delivery) -> Result<u16, (Option<u16>, String)> {
    let config = &state.config.triggers_api;
    let fail = |e: String| (None, e);
    let override_ = state
        .store
        .trigger_subscription_override(&state.project_id, &delivery.subscription_id)
        .await
        .map_err(|e| fail(format!("reading the subscription failed: {e}")))?
        .ok_or_else(|| fail("the subscription was deleted".into()))?;
    let url = override_
        .as_ref()
        .and_then(|o| o.get("url"))
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .or(config.webhook_url.as_deref())
        .ok_or_else(|| {
            fail("no webhook URL: set PARA_TRIGGERS_WEBHOOK_URL or the subscription's webhookOverride.url".into())
        })?;
    let secret = config.signing_secret.as_deref().ok_or_else(|| {
        fail(
            "PARA_TRIGGERS_SIGNING_SECRET is not set: every delivery is signed, so none is sent"
                .into(),
        )
    })?;
    let mut headers = Vec::new();
    if let Some(extra) =
        override_.as_ref().and_then(|o| o.get("headers")).and_then(Value::as_object)
    {
        for (name, value) in extra {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            headers.push((name.clone(), value));
        }
    }
    // Last, so that no override header can replace the signature.
    headers.push((SIGNATURE_HEADER.into(), sign(secret, delivery.body.as_bytes())));
    post(&state.http, url, headers, delivery.body.clone(), config.timeout_ms).await
}

/// A reqwest error's text without the URL (an override URL may carry a token in its query).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<webhook URL>");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hex_hmac_sha256_with_the_version_prefix() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "v1=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn parameters_read_as_texts() {
        let texts = parameter_texts(&json!({"a": "x", "n": 3, "none": null}));
        assert_eq!(
            texts,
            [("a".into(), "x".into()), ("n".into(), "3".into()), ("none".into(), String::new())]
        );
        assert!(parameter_texts(&json!([1])).is_empty());
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        let config = TriggersApiConfig {
            signing_secret: Some("s3cr3t-value".into()),
            ..TriggersApiConfig::default()
        };
        assert!(!format!("{config:?}").contains("s3cr3t-value"));
    }
}
