//! Webhook events to runs. The server records each verified event before it answers the
//! provider; the dispatcher here leases recorded events, finds the users they belong to (the
//! per-account URL they came to, or the account id in the event matched against connected
//! credentials) and those users' active workflows whose trigger listens to the event, and
//! queues one run each, in one transaction with the event's "routed" mark. A crash between the
//! answer and the routing loses nothing (the event stays pending and its lease expires); a
//! routing repeated after a lost lease writes nothing (the mark is fenced by the lease).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use para_build::{StepKind, Workflow};
use para_store::SettingsKey;
use para_store::runs::Write;
use para_store::webhooks::WebhookEvent;
use serde_json::{Map, Value, json};

use crate::Worker;
use crate::engine::{self, UserData};
use crate::triggers::{Active, Trigger, active_workflows, fired, parameter_values, trigger_of};

/// How long a dispatcher holds the events it claimed.
const LEASE_MS: i64 = 30_000;
/// The most events claimed at once.
const BATCH: i64 = 64;
/// A custom webhook trigger's decisions on a request (`{method, headers, query, body}`): whether
/// it passes the trigger's `filters`, and which provider account an app-level one names. The
/// engine's one evaluation of conditions, for the server that receives the request.
pub use para_engine::custom_triggers::{passes_filters, provider_id};

/// How long a routed event (and so its dedupe key) is kept: longer than providers retry a
/// delivery (Stripe: 3 days; Shopify: 48 hours; Slack: minutes).
pub const KEEP_ROUTED_MS: i64 = 14 * 24 * 3_600_000;
/// How often old events are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// The event type of a custom webhook trigger's delivery: `custom:<trigger id>`.
pub const CUSTOM_PREFIX: &str = "custom:";
/// The hook of an event that came to a custom trigger's URL: `credential:<id>`.
pub const CREDENTIAL_PREFIX: &str = "credential:";

/// Routes recorded events as they come (the server wakes it) and every 250 ms (events recorded
/// by other processes, or left by a crashed one).
pub async fn dispatch_loop(state: Arc<Worker>) {
    let mut pruned_at = std::time::Instant::now();
    loop {
        if pruned_at.elapsed() >= PRUNE_EVERY {
            pruned_at = std::time::Instant::now();
            let before = para_store::now_ms() - KEEP_ROUTED_MS;
            if let Err(e) = state.store.prune_webhook_events(&state.project_id, before).await {
                tracing::warn!(error = %e, "forgetting old webhook events failed");
            }
        }
        match dispatch(&state).await {
            Ok(n) if n as i64 >= BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "routing webhook events failed"),
        }
        tokio::select! {
            _ = state.webhooks_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// Tells the dispatcher events were recorded.
pub fn wake(state: &Worker) {
    state.webhooks_wake.notify_one();
}

/// Claims and routes one batch of events; how many were claimed.
pub async fn dispatch(state: &Worker) -> Result<usize, para_store::StoreError> {
    let owner = &state.engine.worker;
    let events =
        state.store.claim_webhook_events(&state.project_id, owner, BATCH, LEASE_MS).await?;
    let mut writes = Vec::new();
    let mut seen = Batch::default();
    for event in &events {
        match route(state, &mut seen, event).await {
            Ok(runs) => {
                let count =
                    runs.iter().filter(|w| matches!(w, Write::Create { .. })).count() as i64;
                let note = runs.is_empty().then(|| {
                    "no active workflow or trigger subscription listens to this event".into()
                });
                writes.push(Write::EventRouted {
                    event_id: event.id.clone(),
                    owner: owner.clone(),
                    runs: count,
                    note,
                });
                writes.extend(runs);
            }
            Err(note) => writes.push(Write::EventRouted {
                event_id: event.id.clone(),
                owner: owner.clone(),
                runs: 0,
                note: Some(note),
            }),
        }
    }
    if !writes.is_empty() {
        let started = writes.iter().any(|w| matches!(w, Write::Create { .. }));
        let delivered = writes.iter().any(|w| matches!(w, Write::Delivery(_)));
        state.store.apply(&writes).await?;
        if started {
            engine::wake(state);
        }
        if delivered {
            crate::deliveries::wake(state);
        }
    }
    Ok(events.len())
}

/// What one batch read from the store, reused by its other events (a batch often holds many
/// events of one URL and one user).
#[derive(Default)]
struct Batch {
    hooks: HashMap<String, Option<para_store::webhooks::Hook>>,
    /// Each user's active workflows with a webhook or custom trigger, and their data.
    users: HashMap<String, (Vec<Active>, Arc<UserData>)>,
    /// Each (user, integration)'s Triggers API subscriptions.
    subscriptions:
        HashMap<(String, String), Vec<para_store::trigger_subscriptions::TriggerSubscription>>,
}

/// Whose account the event belongs to: `(user, credential, only this workflow, only this
/// configuration)`.
struct Target {
    user_id: String,
    credential_id: String,
    workflow_id: Option<String>,
    configuration_id: Option<String>,
}

/// The runs one event starts; `Err` says why it can start none (kept as the event's note).
async fn route(
    state: &Worker,
    seen: &mut Batch,
    event: &WebhookEvent,
) -> Result<Vec<Write>, String> {
    let store_error = |e: para_store::StoreError| format!("reading the store failed: {e}");
    let targets: Vec<Target> = if let Some(credential) = event.hook.strip_prefix(CREDENTIAL_PREFIX)
    {
        let owner = state
            .store
            .credential_owner(&state.project_id, credential)
            .await
            .map_err(store_error)?
            .ok_or("the credential the URL names is gone")?;
        vec![Target {
            user_id: owner,
            credential_id: credential.to_string(),
            workflow_id: None,
            configuration_id: None,
        }]
    } else if !event.hook.is_empty() {
        let hook = match seen.hooks.get(&event.hook) {
            Some(known) => known.clone(),
            None => {
                let read = state.store.hook(&state.project_id, &event.hook).await;
                let read = read.map_err(store_error)?;
                seen.hooks.insert(event.hook.clone(), read.clone());
                read
            }
        };
        let hook =
            hook.filter(|h| h.status != "removed").ok_or("the URL's registration is gone")?;
        vec![Target {
            user_id: hook.user_id,
            credential_id: hook.credential_id,
            workflow_id: Some(hook.workflow_id).filter(|w| !w.is_empty()),
            configuration_id: Some(hook.configuration_id).filter(|c| !c.is_empty()),
        }]
    } else if event.event_type.starts_with(CUSTOM_PREFIX) {
        // An app-level custom trigger: the account is the credential whose provider id the
        // request named (`mapPayload.providerId`).
        let provider_id = event.account.as_deref().ok_or("the request names no provider id")?;
        let found = state
            .store
            .credentials_with_provider_id(&state.project_id, &event.integration, provider_id)
            .await
            .map_err(store_error)?;
        if found.is_empty() {
            return Err(format!("no connected account has the provider id `{provider_id}`"));
        }
        found
            .into_iter()
            .map(|(user_id, credential_id)| Target {
                user_id,
                credential_id,
                workflow_id: None,
                configuration_id: None,
            })
            .collect()
    } else {
        let spec = para_catalog::lookup(&event.integration)
            .and_then(|c| c.webhooks.as_ref())
            .and_then(|w| w.account.as_ref())
            .ok_or("the integration does not say which account an event belongs to")?;
        let account = event.account.as_deref().ok_or("the event names no account")?;
        let found = state
            .store
            .credentials_with_account(
                &state.project_id,
                &event.integration,
                &spec.credential,
                account,
            )
            .await
            .map_err(store_error)?;
        if found.is_empty() {
            return Err(format!("no connected account is {} `{account}`", spec.credential));
        }
        found
            .into_iter()
            .map(|(user_id, credential_id)| Target {
                user_id,
                credential_id,
                workflow_id: None,
                configuration_id: None,
            })
            .collect()
    };
    let mut writes = Vec::new();
    for target in targets {
        writes.extend(runs_for(state, seen, event, &target).await.map_err(|e| e.to_string())?);
        // A URL registered for one workflow serves that workflow only.
        if target.workflow_id.is_none() {
            let key = (target.user_id.clone(), event.integration.clone());
            if !seen.subscriptions.contains_key(&key) {
                let read = state
                    .store
                    .trigger_subscriptions(
                        &state.project_id,
                        &target.user_id,
                        Some(&event.integration),
                    )
                    .await
                    .map_err(store_error)?;
                seen.subscriptions.insert(key.clone(), read);
            }
            let deliveries = crate::deliveries::for_event(
                state,
                event,
                &seen.subscriptions[&key],
                &target.credential_id,
                |trigger, values| {
                    catalog_trigger_matches(&event.integration, trigger, values, event)
                },
            );
            writes.extend(deliveries);
        }
    }
    Ok(writes)
}

/// The runs of one user's active workflows that listen to the event.
async fn runs_for(
    state: &Worker,
    seen: &mut Batch,
    event: &WebhookEvent,
    target: &Target,
) -> Result<Vec<Write>, crate::Error> {
    if !seen.users.contains_key(&target.user_id) {
        let meta = match state.store.user(&state.project_id, &target.user_id).await? {
            Some(u) => u.meta,
            None => Value::Object(Map::new()),
        };
        let evented = |w: &Workflow| match trigger_of(w) {
            Trigger::Integration { .. } => true,
            Trigger::Other => matches!(
                w.steps.iter().find(|s| Some(&s.id) == w.trigger.as_ref()).map(|s| &s.kind),
                Some(StepKind::CustomTrigger { .. })
            ),
            _ => false,
        };
        let (active, data, _) = active_workflows(state, &target.user_id, &meta, evented).await?;
        seen.users.insert(target.user_id.clone(), (active, data));
    }
    let (active, data) = &seen.users[&target.user_id];
    let listens = |w: &Workflow| {
        target.workflow_id.as_ref().is_none_or(|id| &w.id == id) && listens_to(w, event)
    };
    let mut out = Vec::new();
    for a in active.iter().filter(|a| a.integration == event.integration && listens(&a.workflow)) {
        // A made configuration acts with its own account: the event must be that account's.
        let made = a.configuration.as_ref();
        if made.is_some_and(|m| m.credential_id != target.credential_id) {
            continue;
        }
        if target.configuration_id.as_deref() != made.map(|m| m.id.as_str())
            && target.configuration_id.is_some()
        {
            continue;
        }
        if !parameters_match(state, data, &target.user_id, a, event) {
            continue;
        }
        let output = if event.event_type.starts_with(CUSTOM_PREFIX) {
            // A CustomTriggerStep's output: `trigger.output.request.body…`.
            json!({ "request": event.body, "receivedAt": event.received_at })
        } else {
            json!({
                // Read as `trigger.output.result`, like a polled item.
                "result": event.body,
                "event": event.event_type,
                "headers": event.headers,
                "receivedAt": event.received_at,
            })
        };
        out.push(fired(state, &target.user_id, a, Some(&target.credential_id), "webhook", output));
    }
    Ok(out)
}

/// Whether the workflow's trigger listens to the event's type (and fixed conditions).
fn listens_to(workflow: &Workflow, event: &WebhookEvent) -> bool {
    if let Some(custom) = event.event_type.strip_prefix(CUSTOM_PREFIX) {
        let step = workflow.steps.iter().find(|s| Some(&s.id) == workflow.trigger.as_ref());
        return matches!(
            step.map(|s| &s.kind),
            Some(StepKind::CustomTrigger { trigger_id }) if trigger_id == custom
        );
    }
    let Trigger::Integration { trigger, .. } = trigger_of(workflow) else { return false };
    listening(&event.integration, &trigger, event).is_some()
}

/// The catalog webhook trigger `trigger` (name, intent or alias) of `integration`, when it
/// listens to the event's type and the event meets its fixed conditions (`when`; those that
/// name the trigger's parameters are checked in [`filter_matches`]).
fn listening(
    integration: &str,
    trigger: &str,
    event: &WebhookEvent,
) -> Option<&'static para_catalog::Webhook> {
    let catalog = para_catalog::lookup(integration)?;
    let webhook = catalog.trigger(trigger).and_then(|t| t.webhook.as_ref())?;
    let meets = webhook.listens_to(&event.event_type)
        && webhook.when.iter().filter(|(_, want)| !want.contains('{')).all(|(locator, want)| {
            read(event, locator).is_some_and(|v| &para_connect::webhooks::text(&v) == want)
        });
    meets.then_some(webhook)
}

/// Every parameter the trigger's `filter` lists and `values` set (not empty) equals the
/// event's value at the filter's locator.
fn filter_matches(
    webhook: &para_catalog::Webhook,
    values: &[(String, String)],
    event: &WebhookEvent,
) -> bool {
    let matches = |locator: &str, want: &str| {
        read(event, locator).is_some_and(|v| para_connect::webhooks::text(&v) == want)
    };
    let filtered = values
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .all(|(name, want)| webhook.filter.get(name).is_none_or(|locator| matches(locator, want)));
    // `{ "body:repository.full_name" = "{workspace}/{repoSlug}" }`: filled from the
    // parameters; skipped when one of them is unset.
    filtered
        && webhook.when.iter().filter(|(_, want)| want.contains('{')).all(|(locator, template)| {
            let unset =
                values.iter().any(|(n, v)| v.is_empty() && template.contains(&format!("{{{n}}}")));
            let mut want = template.clone();
            for (name, value) in values {
                want = want.replace(&format!("{{{name}}}"), value);
            }
            unset || want.contains('{') || matches(locator, &want)
        })
}

/// The one rule of who hears a webhook event, for workflows and Triggers API subscriptions
/// alike: the catalog trigger listens to the event's type, the event meets the trigger's fixed
/// conditions (`when`), and every parameter the trigger filters on that is set (`values`)
/// equals the event's value there.
pub(crate) fn catalog_trigger_matches(
    integration: &str,
    trigger: &str,
    values: &[(String, String)],
    event: &WebhookEvent,
) -> bool {
    listening(integration, trigger, event).is_some_and(|w| filter_matches(w, values, event))
}

/// Every parameter the trigger's `webhook.filter` lists and the workflow set equals the
/// event's value there.
fn parameters_match(
    state: &Worker,
    data: &UserData,
    user_id: &str,
    active: &Active,
    event: &WebhookEvent,
) -> bool {
    let Trigger::Integration { trigger, parameters } = trigger_of(&active.workflow) else {
        return true;
    };
    let filters = para_catalog::lookup(&event.integration)
        .and_then(|c| c.trigger(&trigger))
        .and_then(|t| t.webhook.as_ref())
        .is_some_and(|w| !w.filter.is_empty() || w.when.values().any(|v| v.contains('{')));
    if !filters {
        return true;
    }
    let configuration = SettingsKey::of(active.configuration.as_ref().map(|m| m.id.as_str()));
    let values = parameter_values(
        state,
        data,
        user_id,
        &active.integration,
        &configuration,
        &active.workflow,
        &parameters,
    );
    catalog_trigger_matches(&event.integration, &trigger, &values, event)
}

/// A locator read from a recorded event (`body:` in the event, `header:` in its kept headers).
fn read(event: &WebhookEvent, locator: &str) -> Option<Value> {
    locator.split('|').find_map(|one| match one.split_once(':')? {
        ("header", name) => event.headers.get(name.to_ascii_lowercase()).cloned(),
        ("body", "") => Some(event.body.clone()),
        ("body", path) => para_connect::webhooks::walk(&event.body, path).cloned(),
        _ => None,
    })
}
