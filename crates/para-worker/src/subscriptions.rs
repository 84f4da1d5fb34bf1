//! Webhooks para registers with providers through their APIs (the catalog's `[subscription]`
//! and a trigger's `webhook.subscribe`), with the user's credential.
//!
//! - **Register.** When a user's workflow whose trigger subscribes becomes active for them
//!   (turned on, on by default when the account connects, or its trigger's parameters
//!   changed), [`reconcile`] makes a per-account URL for it (a `webhook_hooks` row with a
//!   random id and, for `secret = "hook"`, a random signing secret sealed at rest) and
//!   registers that URL with the provider. The provider's id of the registration, the status
//!   and its expiry are stored; a failure is stored with the provider's answer and retried.
//! - **Remove.** When the workflow is no longer active (turned off, its parameters changed) the
//!   registration is removed at the provider and the hook marked `removed` (events to it are
//!   refused); a failed removal is retried. When the account is disconnected, [`disconnecting`]
//!   removes its registrations while the credential still exists, giving up after a few seconds
//!   rather than holding the disconnect up.
//! - **Renew and retry.** [`maintain_loop`] claims the registrations that are due (a retry with
//!   backoff, or an expiry within its margin) under a lease, so on PostgreSQL one process acts
//!   on each.
//!
//! Every call to the provider goes through [`engine::send`] (`Connect::send`: the credential
//! applied, refreshed once after a 401).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use para_catalog::{BodyFormat, Subscription as Spec, SubscriptionCall};
use para_connect::webhooks::{open_hook_secret, seal_hook_secret, text, walk};
use para_engine::run::{HttpRequest, HttpResponse};
use para_store::SettingsKey;
use para_store::webhooks::{Hook, Subscription, SubscriptionUpdate};
use serde_json::{Map, Value, json};

use crate::Worker;
use crate::engine::{self, Account};
use crate::triggers::{Trigger, active_workflows, parameter_values, trigger_of};

/// How long a worker holds a registration while it calls the provider.
const LEASE_MS: i64 = 60_000;
/// The most registrations claimed at once.
const BATCH: i64 = 16;
/// How often [`maintain_loop`] looks for due registrations.
const TICK: Duration = Duration::from_secs(1);
/// Delays before retrying a failed registration or removal: 10 s, then ×5 each time, at most
/// 2 hours ([`crate::EngineConfig::subscription_retry_ms`] replaces the first).
const FIRST_RETRY_MS: i64 = 10_000;
const MAX_RETRY_MS: i64 = 2 * 3_600_000;
/// Renew this long before expiry at most (a day), else halfway through what is left.
const MAX_RENEW_MARGIN_MS: i64 = 24 * 3_600_000;
/// How long a disconnect waits for the provider to remove a registration.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a provider's answer kept in an error.
const MAX_ERROR: usize = 300;

/// One reconcile at a time per user and integration in this process (the registration key's
/// unique index covers other processes).
#[derive(Default)]
pub struct Locks(Mutex<HashMap<UserIntegration, Arc<tokio::sync::Mutex<()>>>>);

/// `(user id, integration key)`.
type UserIntegration = (String, String);

impl Locks {
    fn of(&self, user_id: &str, integration: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().expect("subscription locks");
        map.retain(|_, lock| Arc::strong_count(lock) > 1);
        map.entry((user_id.to_string(), integration.to_string())).or_default().clone()
    }
}

/// A registration a user's active workflow needs.
#[derive(Debug, Clone)]
struct Wanted {
    workflow_id: String,
    configuration_id: String,
    credential_id: String,
    trigger: String,
    parameters: BTreeMap<String, String>,
}

impl Wanted {
    fn registration(&self) -> Value {
        json!({ "trigger": self.trigger, "parameters": self.parameters })
    }

    /// What makes two registrations the same one.
    fn key(&self, user_id: &str, integration: &str) -> String {
        key_of(
            user_id,
            integration,
            &self.workflow_id,
            &self.configuration_id,
            &self.credential_id,
            &self.registration(),
        )
    }
}

fn key_of(
    user_id: &str,
    integration: &str,
    workflow_id: &str,
    configuration_id: &str,
    credential_id: &str,
    registration: &Value,
) -> String {
    [user_id, integration, workflow_id, configuration_id, credential_id, &registration.to_string()]
        .join("\u{0}")
}

fn key_of_hook(s: &Subscription) -> String {
    let h = &s.hook;
    key_of(
        &h.user_id,
        &h.integration,
        &h.workflow_id,
        &h.configuration_id,
        &h.credential_id,
        &s.registration,
    )
}

/// The catalog's `[subscription]` of an integration the served build has.
fn spec_of(integration: &str) -> Option<&'static para_catalog::Integration> {
    para_catalog::lookup(integration).filter(|c| c.subscription.is_some())
}

/// The registrations `user_id`'s active workflows of `integration` need.
async fn wanted(
    state: &Worker,
    user_id: &str,
    integration: &str,
) -> Result<Vec<Wanted>, crate::Error> {
    let Some(catalog) = spec_of(integration) else { return Ok(Vec::new()) };
    let meta = match state.store.user(&state.project_id, user_id).await? {
        Some(u) => u.meta,
        None => Value::Object(Map::new()),
    };
    let subscribes = |w: &para_build::Workflow| match trigger_of(w) {
        Trigger::Integration { trigger, .. } => catalog
            .trigger(&trigger)
            .and_then(|t| t.webhook.as_ref())
            .is_some_and(|w| w.subscribe.is_some()),
        _ => false,
    };
    let (active, data, _) = active_workflows(state, user_id, &meta, subscribes).await?;
    let mut out = Vec::new();
    for a in active.iter().filter(|a| a.integration == integration) {
        let Trigger::Integration { trigger, parameters } = trigger_of(&a.workflow) else {
            continue;
        };
        let Some(found) = catalog.trigger(&trigger) else { continue };
        let credential_id = match &a.configuration {
            Some(made) => made.credential_id.clone(),
            None => {
                match para_connect::send::acting_credential(&data.credentials, integration, None) {
                    Some(c) => c.id.clone(),
                    None => continue,
                }
            }
        };
        let configuration = SettingsKey::of(a.configuration.as_ref().map(|m| m.id.as_str()));
        let values = parameter_values(
            state,
            &data,
            user_id,
            integration,
            &configuration,
            &a.workflow,
            &parameters,
        );
        out.push(Wanted {
            workflow_id: a.workflow.id.clone(),
            configuration_id: a.configuration.as_ref().map(|m| m.id.clone()).unwrap_or_default(),
            credential_id,
            trigger: found.name.clone(),
            parameters: values.into_iter().collect(),
        });
    }
    Ok(out)
}

/// A lease holder's name: this process and one call of it, so two tasks of one process do
/// not act on a registration at once.
fn owner(state: &Worker) -> String {
    format!("{}:{}", state.engine.worker, uuid::Uuid::new_v4())
}

/// Brings `user_id`'s registrations of `integration` in line with their active workflows:
/// registers what a workflow needs and nothing has, removes what no active workflow needs.
/// Failures are recorded on the registration (and retried by [`maintain_loop`]), not returned.
pub async fn reconcile(state: &Worker, user_id: &str, integration: &str) {
    if spec_of(integration).is_none() {
        return;
    }
    let lock = state.subscription_locks.of(user_id, integration);
    let _held = lock.lock().await;
    if let Err(e) = reconcile_now(state, user_id, integration).await {
        tracing::warn!(user_id, integration, error = %e, "updating webhook registrations failed");
    }
}

async fn reconcile_now(
    state: &Worker,
    user_id: &str,
    integration: &str,
) -> Result<(), crate::Error> {
    let wanted = wanted(state, user_id, integration).await?;
    let existing =
        state.store.subscriptions_of_user(&state.project_id, user_id, integration).await?;
    let keys: Vec<String> = wanted.iter().map(|w| w.key(user_id, integration)).collect();
    for s in &existing {
        if s.hook.status == "removing" || keys.contains(&key_of_hook(s)) {
            continue;
        }
        let me = owner(state);
        if let Some(leased) =
            state.store.lease_subscription(&state.project_id, &s.hook.id, &me, LEASE_MS).await?
        {
            let update = remove(state, &leased).await;
            finish(state, &leased, &me, update).await;
        }
    }
    for (w, key) in wanted.iter().zip(&keys) {
        let held = existing.iter().any(|s| s.hook.status != "removing" && &key_of_hook(s) == key);
        if !held {
            create(state, user_id, integration, w, key).await?;
        }
    }
    Ok(())
}

/// Records a new hook for `w` and registers it.
async fn create(
    state: &Worker,
    user_id: &str,
    integration: &str,
    w: &Wanted,
    key: &str,
) -> Result<(), crate::Error> {
    let Some(catalog) = spec_of(integration) else { return Ok(()) };
    let id = para_auth::random_token(24);
    let chooses_secret = para_chooses_secret(catalog);
    let secret = chooses_secret.then(|| {
        let plain = para_auth::random_token(32);
        seal_hook_secret(state, &id, plain.as_bytes())
    });
    let now = para_store::now_ms();
    let hook = Hook {
        id,
        project_id: state.project_id.clone(),
        user_id: user_id.to_string(),
        integration: integration.to_string(),
        credential_id: w.credential_id.clone(),
        workflow_id: w.workflow_id.clone(),
        configuration_id: w.configuration_id.clone(),
        secret,
        remote_id: None,
        status: "pending".into(),
        error: None,
        expires_at: None,
        created_at: now,
        updated_at: now,
    };
    let me = owner(state);
    let registration = w.registration();
    if !state.store.insert_subscription(&hook, key, &registration, &me, LEASE_MS).await? {
        return Ok(()); // made by another process meanwhile
    }
    let made = Subscription { hook, registration, attempts: 0, next_attempt_at: Some(now) };
    let update = register(state, &made).await;
    finish(state, &made, &me, update).await;
    Ok(())
}

/// Whether para chooses the registration's signing secret (and sends it as `{secret}`).
fn para_chooses_secret(catalog: &para_catalog::Integration) -> bool {
    let hook_secret = catalog.webhooks.as_ref().is_some_and(|w| {
        w.signature.secret == para_catalog::SecretSource::Hook
            && w.signature.scheme != para_catalog::SignatureScheme::UrlSecret
    });
    hook_secret && catalog.subscription.as_ref().is_some_and(|s| s.secret.is_none())
}

/// Writes an attempt's outcome under the lease (a lost lease writes nothing: another process
/// took the registration over).
async fn finish(state: &Worker, s: &Subscription, owner: &str, update: SubscriptionUpdate) {
    match state.store.finish_subscription(&state.project_id, &s.hook.id, owner, &update).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(hook = %s.hook.id, "a webhook registration's lease was lost"),
        Err(e) => {
            tracing::warn!(hook = %s.hook.id, error = %e, "recording a webhook registration failed")
        }
    }
}

/// The delay before retry `attempts` (1 = the first).
fn backoff(state: &Worker, attempts: i64) -> i64 {
    let first = state.engine.config.subscription_retry_ms.unwrap_or(FIRST_RETRY_MS).max(1);
    let mut delay = first;
    for _ in 1..attempts.min(12) {
        delay = delay.saturating_mul(5);
    }
    delay.min(MAX_RETRY_MS.max(first))
}

/// When to renew a registration that expires at `expires_at`.
fn renew_at(now: i64, expires_at: i64) -> i64 {
    let margin = ((expires_at - now) / 2).clamp(0, MAX_RENEW_MARGIN_MS);
    expires_at - margin
}

/// The failure of an attempt: its count and when to try again.
fn failed(state: &Worker, s: &Subscription, status: &str, error: String) -> SubscriptionUpdate {
    let attempts = s.attempts + 1;
    SubscriptionUpdate {
        status: status.into(),
        remote_id: s.hook.remote_id.clone(),
        secret: None,
        error: Some(error),
        expires_at: s.hook.expires_at,
        attempts,
        next_attempt_at: Some(para_store::now_ms() + backoff(state, attempts)),
    }
}

/// What fills a subscription's templates.
struct Fill<'a> {
    url: String,
    secret: Option<String>,
    events: Vec<&'a str>,
    id: Option<String>,
    expires: Option<String>,
    parameters: BTreeMap<String, String>,
}

impl Fill<'_> {
    fn value(&self, name: &str) -> String {
        match name {
            "url" => self.url.clone(),
            "secret" => self.secret.clone().unwrap_or_default(),
            "event" => self.events.join(","),
            "id" => self.id.clone().unwrap_or_default(),
            "expires" => self.expires.clone().unwrap_or_default(),
            other => self.parameters.get(other).cloned().unwrap_or_default(),
        }
    }

    /// A template with each `{name}` replaced (`encode`: for a path, percent-encoded).
    fn text(&self, template: &str, encode: bool) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else { break };
            out.push_str(&rest[..open]);
            let name = &rest[open + 1..open + close];
            let value = self.value(name.strip_prefix('#').unwrap_or(name));
            if encode {
                let encoded: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
                out.push_str(&encoded.replace('+', "%20"));
            } else {
                out.push_str(&value);
            }
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        out
    }

    /// A body template (JSON) filled in.
    fn body(&self, template: &Value) -> Value {
        match template {
            Value::String(s) => match s.strip_prefix("{#").and_then(|n| n.strip_suffix('}')) {
                Some(name) => {
                    let value = self.value(name);
                    value
                        .parse::<i64>()
                        .map(Value::from)
                        .or_else(|_| value.parse::<f64>().map(Value::from))
                        .unwrap_or(Value::String(value))
                }
                None => Value::String(self.text(s, false)),
            },
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .flat_map(|item| match item.as_str() {
                        Some("{event}") => self.events.iter().map(|e| json!(e)).collect(),
                        _ => vec![self.body(item)],
                    })
                    .collect(),
            ),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), self.body(v))).collect())
            }
            other => other.clone(),
        }
    }
}

/// A body template (TOML in the catalog) as JSON.
fn json_of<T: serde::Serialize>(template: &Option<T>) -> Option<Value> {
    template.as_ref().and_then(|t| serde_json::to_value(t).ok())
}

/// `body` encoded as the subscription says: (content type, body) for [`HttpRequest`].
fn encoded(
    format: BodyFormat,
    body: Value,
) -> (Vec<(String, String)>, Option<Value>, Option<String>) {
    match format {
        BodyFormat::Json => (Vec::new(), Some(body), None),
        BodyFormat::Form => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (k, v) in body.as_object().into_iter().flatten() {
                match v {
                    Value::Array(items) => items.iter().for_each(|i| {
                        form.append_pair(k, &text(i));
                    }),
                    other => {
                        form.append_pair(k, &text(other));
                    }
                }
            }
            let headers = vec![("content-type".into(), "application/x-www-form-urlencoded".into())];
            (headers, Some(Value::String(form.finish())), Some("raw".into()))
        }
    }
}

/// Sends one call with the registration's credential.
async fn call(
    state: &Worker,
    hook: &Hook,
    method: &str,
    path: String,
    body: Option<Value>,
    format: BodyFormat,
) -> Result<HttpResponse, String> {
    let (headers, body, body_type) = match body {
        Some(b) => encoded(format, b),
        None => (Vec::new(), None, None),
    };
    let request = HttpRequest {
        method: method.into(),
        url: path,
        query: Vec::new(),
        headers,
        body,
        body_type,
        authorization: None,
    };
    let account = Account {
        user_id: &hook.user_id,
        integration: &hook.integration,
        credential_id: Some(&hook.credential_id),
        require_valid: true,
    };
    engine::send(state, Some(account), request).await.map_err(|e| e.message)
}

/// `METHOD path answered HTTP n: <excerpt>`.
fn refused(method: &str, path: &str, answer: &HttpResponse) -> String {
    let body = text(&answer.body);
    let mut excerpt: String = body.chars().take(MAX_ERROR).collect();
    if excerpt.len() < body.len() {
        excerpt.push('…');
    }
    format!("{method} {path} answered HTTP {}: {excerpt}", answer.status)
}

/// A value an answer holds at `locator` (`body:<path>`, `header:<Name>`; `|` tries several).
fn read(answer: &HttpResponse, locator: &str) -> Option<Value> {
    locator
        .split('|')
        .find_map(|one| match one.split_once(':')? {
            ("body", "") => Some(answer.body.clone()),
            ("body", path) => walk(&answer.body, path).cloned(),
            ("header", name) => answer.headers.get(&name.to_ascii_lowercase()).cloned(),
            _ => None,
        })
        .filter(|v| !v.is_null())
}

/// An expiry as an answer writes it: RFC 3339 (or Jira's `+0000` offsets), or a number of
/// milliseconds since the epoch (seconds when below 10¹¹).
fn expiry(value: &Value) -> Option<i64> {
    let number = |n: f64| if n < 1e11 { (n * 1000.0) as i64 } else { n as i64 };
    match value {
        Value::Number(n) => n.as_f64().map(number),
        Value::String(s) => s.parse::<f64>().ok().map(number).or_else(|| {
            chrono::DateTime::parse_from_rfc3339(s)
                .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
                .ok()
                .map(|t| t.timestamp_millis())
        }),
        _ => None,
    }
}

/// The trigger, the catalog entry and the spec a registration was made for.
fn parts_of(
    s: &Subscription,
) -> Result<
    (&'static para_catalog::Integration, &'static Spec, &'static para_catalog::Trigger),
    String,
> {
    let catalog = spec_of(&s.hook.integration).ok_or_else(|| {
        format!("{} has no webhook subscriptions in the catalog", s.hook.integration)
    })?;
    let spec = catalog.subscription.as_ref().expect("spec_of checks it");
    let name = s.registration.get("trigger").and_then(Value::as_str).unwrap_or("");
    let trigger = catalog
        .trigger(name)
        .filter(|t| t.webhook.as_ref().is_some_and(|w| w.subscribe.is_some()))
        .ok_or_else(|| format!("the catalog has no subscribing trigger `{name}`"))?;
    Ok((catalog, spec, trigger))
}

fn fill_of<'t>(state: &Worker, s: &Subscription, trigger: &'t para_catalog::Trigger) -> Fill<'t> {
    let parameters = s
        .registration
        .get("parameters")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        .unwrap_or_default();
    let events = trigger
        .webhook
        .as_ref()
        .map(|w| w.event.split('|').map(str::trim).collect())
        .unwrap_or_default();
    Fill {
        url: hook_url(state, &s.hook),
        secret: None,
        events,
        id: s.hook.remote_id.clone(),
        expires: None,
        parameters,
    }
}

/// The per-account URL a hook is registered as.
pub fn hook_url(state: &Worker, hook: &Hook) -> String {
    let segment = |s: &str| -> String {
        form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
    };
    format!(
        "{}/webhooks/{}/{}/{}",
        state.connect.config.public_url.trim_end_matches('/'),
        segment(&state.project_id),
        segment(&hook.integration),
        segment(&hook.id)
    )
}

/// Registers a hook with the provider; what to record.
async fn register(state: &Worker, s: &Subscription) -> SubscriptionUpdate {
    match register_now(state, s).await {
        Ok(update) => update,
        Err(error) => failed(state, s, "failed", error),
    }
}

async fn register_now(state: &Worker, s: &Subscription) -> Result<SubscriptionUpdate, String> {
    let (_, spec, trigger) = parts_of(s)?;
    let mut fill = fill_of(state, s, trigger);
    if let Some(sealed) = &s.hook.secret {
        let plain = open_hook_secret(state, &s.hook.id, sealed).map_err(|e| e.to_string())?;
        fill.secret = Some(String::from_utf8_lossy(&plain).into_owned());
    }
    let now = para_store::now_ms();
    let lifetime_ms = spec.lifetime_seconds.map(|l| l as i64 * 1000);
    fill.expires = lifetime_ms.and_then(|l| {
        chrono::DateTime::from_timestamp_millis(now + l)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    });
    let subscribe = trigger.webhook.as_ref().and_then(|w| w.subscribe.as_deref()).unwrap_or("");
    let path = fill.text(subscribe, true);
    let body = json_of(&spec.body).map(|b| fill.body(&b));
    let answer = call(state, &s.hook, &spec.method, path.clone(), body, spec.format).await?;
    if !(200..300).contains(&answer.status) {
        return Err(refused(&spec.method, &path, &answer));
    }
    let remote_id = read(&answer, &spec.id).map(|v| text(&v)).ok_or_else(|| {
        format!(
            "{} {path} answered HTTP {} without the registration's id at `{}`: {}",
            spec.method,
            answer.status,
            spec.id,
            text(&answer.body).chars().take(MAX_ERROR).collect::<String>()
        )
    })?;
    let secret = match &spec.secret {
        Some(locator) => {
            let chosen = read(&answer, locator).map(|v| text(&v)).ok_or_else(|| {
                format!("{} {path} answered without the signing secret at `{locator}`", spec.method)
            })?;
            Some(seal_hook_secret(state, &s.hook.id, chosen.as_bytes()))
        }
        None => None,
    };
    let expires_at = spec
        .expires
        .as_deref()
        .and_then(|l| read(&answer, l))
        .and_then(|v| expiry(&v))
        .or(lifetime_ms.map(|l| now + l));
    Ok(SubscriptionUpdate {
        status: "active".into(),
        remote_id: Some(remote_id),
        secret,
        error: None,
        expires_at,
        attempts: 0,
        next_attempt_at: expires_at.filter(|_| spec.renew.is_some()).map(|e| renew_at(now, e)),
    })
}

/// Sends a `[subscription]` call (`renew`, `remove`) for a registration.
async fn send_call(
    state: &Worker,
    s: &Subscription,
    spec: &Spec,
    what: &SubscriptionCall,
    fill: &Fill<'_>,
) -> Result<(String, HttpResponse), String> {
    let path = fill.text(&what.path, true);
    let body = json_of(&what.body).map(|b| fill.body(&b));
    let answer = call(state, &s.hook, &what.method, path.clone(), body, spec.format).await?;
    Ok((path, answer))
}

/// Removes a registration at the provider; what to record (`removed`, or `removing` to retry).
async fn remove(state: &Worker, s: &Subscription) -> SubscriptionUpdate {
    let removed = |error: Option<String>| SubscriptionUpdate {
        status: "removed".into(),
        remote_id: s.hook.remote_id.clone(),
        secret: None,
        error,
        expires_at: s.hook.expires_at,
        attempts: 0,
        next_attempt_at: None,
    };
    // Never registered: nothing to remove at the provider.
    if s.hook.remote_id.is_none() {
        return removed(None);
    }
    let (spec, fill) = match parts_of(s) {
        Ok((_, spec, trigger)) => (spec, fill_of(state, s, trigger)),
        Err(e) => return removed(Some(format!("not removed at the provider: {e}"))),
    };
    match send_call(state, s, spec, &spec.remove, &fill).await {
        // Gone already is removed.
        Ok((_, answer))
            if (200..300).contains(&answer.status) || [404, 410].contains(&answer.status) =>
        {
            removed(None)
        }
        Ok((path, answer)) => {
            failed(state, s, "removing", refused(&spec.remove.method, &path, &answer))
        }
        Err(e) => failed(state, s, "removing", e),
    }
}

/// Renews an expiring registration; what to record.
async fn renew(state: &Worker, s: &Subscription) -> SubscriptionUpdate {
    let now = para_store::now_ms();
    let outcome = async {
        let (_, spec, trigger) = parts_of(s)?;
        let Some(how) = &spec.renew else {
            return Err("the catalog no longer says how to renew it".to_string());
        };
        let mut fill = fill_of(state, s, trigger);
        let lifetime_ms = spec.lifetime_seconds.map(|l| l as i64 * 1000);
        fill.expires = lifetime_ms.and_then(|l| {
            chrono::DateTime::from_timestamp_millis(now + l)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        });
        let (path, answer) = send_call(state, s, spec, how, &fill).await?;
        if !(200..300).contains(&answer.status) {
            return Err(refused(&how.method, &path, &answer));
        }
        let expires_at = spec
            .expires
            .as_deref()
            .and_then(|l| read(&answer, l))
            .and_then(|v| expiry(&v))
            .or(lifetime_ms.map(|l| now + l))
            .ok_or_else(|| format!("{} {path} answered without a new expiry", how.method))?;
        Ok(expires_at)
    }
    .await;
    match outcome {
        Ok(expires_at) => SubscriptionUpdate {
            status: "active".into(),
            remote_id: s.hook.remote_id.clone(),
            secret: None,
            error: None,
            expires_at: Some(expires_at),
            attempts: 0,
            next_attempt_at: Some(renew_at(now, expires_at)),
        },
        // Expired meanwhile: registered again (a new registration) on the next attempt.
        Err(e) if s.hook.expires_at.is_some_and(|x| x <= now) => {
            let mut update =
                failed(state, s, "failed", format!("renewal failed before it expired: {e}"));
            update.remote_id = None;
            update
        }
        Err(e) => {
            let mut update = failed(state, s, "active", format!("renewal failed: {e}"));
            // Try again before it expires.
            if let (Some(next), Some(expires)) = (update.next_attempt_at, s.hook.expires_at) {
                update.next_attempt_at = Some(next.min(renew_at(now, expires).max(now + 1_000)));
            }
            update
        }
    }
}

/// Retries and renewals: claims due registrations every second and acts on each.
pub async fn maintain_loop(state: Arc<Worker>) {
    loop {
        match maintain(&state).await {
            Ok(n) if n as i64 >= BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "maintaining webhook registrations failed"),
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Claims and acts on one batch of due registrations; how many were claimed.
pub async fn maintain(state: &Worker) -> Result<usize, crate::Error> {
    let me = owner(state);
    let due = state.store.claim_due_subscriptions(&state.project_id, &me, BATCH, LEASE_MS).await?;
    for s in &due {
        let update = match s.hook.status.as_str() {
            "removing" => remove(state, s).await,
            "active" => renew(state, s).await,
            // pending or failed: registered if a workflow still needs it.
            _ => {
                let lock = state.subscription_locks.of(&s.hook.user_id, &s.hook.integration);
                let _held = lock.lock().await;
                let still = wanted(state, &s.hook.user_id, &s.hook.integration)
                    .await?
                    .iter()
                    .any(|w| w.key(&s.hook.user_id, &s.hook.integration) == key_of_hook(s));
                if still { register(state, s).await } else { remove(state, s).await }
            }
        };
        finish(state, s, &me, update).await;
    }
    Ok(due.len())
}

/// Removes the registrations made with the account `credential_id` of `integration` (`None`:
/// every account of it) before it is disconnected. Each removal waits at most
/// [`DISCONNECT_TIMEOUT`]; one that fails is marked removed with the error (the credential is
/// about to go, so it cannot be retried): the dashboard shows it, and the company removes the
/// webhook in the provider's settings.
pub async fn disconnecting(
    state: &Worker,
    user_id: &str,
    integration: &str,
    credential_id: Option<&str>,
) {
    if spec_of(integration).is_none() {
        return;
    }
    let existing = match state
        .store
        .subscriptions_of_user(&state.project_id, user_id, integration)
        .await
    {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(user_id, integration, error = %e, "reading webhook registrations failed");
            return;
        }
    };
    let mine =
        existing.into_iter().filter(|s| credential_id.is_none_or(|c| s.hook.credential_id == c));
    for s in mine {
        let me = owner(state);
        let Ok(Some(leased)) =
            state.store.lease_subscription(&state.project_id, &s.hook.id, &me, LEASE_MS).await
        else {
            continue;
        };
        let mut update =
            match tokio::time::timeout(DISCONNECT_TIMEOUT, remove(state, &leased)).await {
                Ok(update) => update,
                Err(_) => {
                    failed(state, &leased, "removing", "the provider did not answer in time".into())
                }
            };
        if update.status != "removed" {
            let why = update.error.take().unwrap_or_default();
            update = SubscriptionUpdate {
                status: "removed".into(),
                error: Some(format!(
                    "not removed at the provider when the account was disconnected ({why}): remove the webhook in the provider's settings"
                )),
                next_attempt_at: None,
                ..update
            };
        }
        finish(state, &leased, &me, update).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill() -> Fill<'static> {
        Fill {
            url: "https://para.example/webhooks/p/github/h1".into(),
            secret: Some("s3cret".into()),
            events: vec!["push", "pull_request"],
            id: Some("1000".into()),
            expires: None,
            parameters: [("owner".to_string(), "ann co".to_string())].into_iter().collect(),
        }
    }

    #[test]
    fn templates_are_filled() {
        let f = fill();
        assert_eq!(f.text("/repos/{owner}/hooks/{id}", true), "/repos/ann%20co/hooks/1000");
        let body = json!({
            "config": { "url": "{url}", "secret": "{secret}" },
            "events": ["{event}"],
            "ids": ["{#id}"],
            "topic": "{event}",
            "on": true,
        });
        assert_eq!(
            f.body(&body),
            json!({
                "config": { "url": "https://para.example/webhooks/p/github/h1", "secret": "s3cret" },
                "events": ["push", "pull_request"],
                "ids": [1000],
                "topic": "push,pull_request",
                "on": true,
            })
        );
    }

    #[test]
    fn form_bodies_repeat_array_fields() {
        let body = json!({ "url": "https://x/y?z=1", "enabled_events[]": ["a.b", "c"] });
        let (headers, body, kind) = encoded(BodyFormat::Form, body);
        assert_eq!(headers[0].1, "application/x-www-form-urlencoded");
        assert_eq!(kind.as_deref(), Some("raw"));
        assert_eq!(
            body.unwrap(),
            json!(
                "url=https%3A%2F%2Fx%2Fy%3Fz%3D1&enabled_events%5B%5D=a.b&enabled_events%5B%5D=c"
            )
        );
    }

    #[test]
    fn expiries_are_read_in_each_form() {
        assert_eq!(expiry(&json!(1_700_000_000_000i64)), Some(1_700_000_000_000));
        assert_eq!(expiry(&json!(1_700_000_000)), Some(1_700_000_000_000));
        assert_eq!(expiry(&json!("2019-06-01T12:42:30.000+0000")), Some(1_559_392_950_000));
        assert_eq!(expiry(&json!("2019-06-01T12:42:30Z")), Some(1_559_392_950_000));
        assert_eq!(expiry(&json!("soon")), None);
    }

    #[test]
    fn renewal_comes_halfway_or_a_day_ahead() {
        assert_eq!(renew_at(0, 4_000), 2_000);
        let month = 30 * 24 * 3_600_000;
        assert_eq!(renew_at(0, month), month - MAX_RENEW_MARGIN_MS);
        assert_eq!(renew_at(10, 5), 5, "already expired: now");
    }

    #[test]
    fn answers_are_read_by_locator() {
        let answer = HttpResponse {
            status: 200,
            headers: [("x-id".to_string(), json!("h-9"))].into_iter().collect(),
            body: json!({ "webhookRegistrationResult": [{ "createdWebhookId": 1000 }] }),
        };
        assert_eq!(
            read(&answer, "body:webhookRegistrationResult.0.createdWebhookId"),
            Some(json!(1000))
        );
        assert_eq!(read(&answer, "body:missing|header:X-Id"), Some(json!("h-9")));
        assert_eq!(read(&answer, "body:missing"), None);
    }
}
