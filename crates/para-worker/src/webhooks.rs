//! Webhook events to runs. The server records each verified event before it answers the
//! provider; the dispatcher here leases recorded events, finds the users they belong to (the
//! per-account URL they came to, or the account id in the event matched against connected
//! credentials) and those users' active workflows whose trigger listens to the event, and
//! queues one run each, in one transaction with the event's "routed" mark. A crash between the
//! answer and the routing loses nothing (the event stays pending and its lease expires); a
//! routing repeated after a lost lease writes nothing (the mark is fenced by the lease).

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
/// The event type of a custom webhook trigger's delivery: `custom:<trigger id>`.
pub const CUSTOM_PREFIX: &str = "custom:";
/// The hook of an event that came to a custom trigger's URL: `credential:<id>`.
pub const CREDENTIAL_PREFIX: &str = "credential:";

/// Routes recorded events as they come (the server wakes it) and every 250 ms (events recorded
/// by other processes, or left by a crashed one).
pub async fn dispatch_loop(state: Arc<Worker>) {
    loop {
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
    for event in &events {
        match route(state, event).await {
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

/// Whose account the event belongs to: `(user, credential, only this workflow, only this
/// configuration)`.
struct Target {
    user_id: String,
    credential_id: String,
    workflow_id: Option<String>,
    configuration_id: Option<String>,
}

/// The runs one event starts; `Err` says why it can start none (kept as the event's note).
async fn route(state: &Worker, event: &WebhookEvent) -> Result<Vec<Write>, String> {
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
        let hook = state
            .store
            .hook(&state.project_id, &event.hook)
            .await
            .map_err(store_error)?
            .filter(|h| h.status != "removed")
            .ok_or("the URL's registration is gone")?;
        vec![Target {
            user_id: hook.user_id,
            credential_id: hook.credential_id,
            workflow_id: Some(hook.workflow_id).filter(|w| !w.is_empty()),
            configuration_id: Some(hook.configuration_id).filter(|c| !c.is_empty()),
        }]
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
        writes.extend(runs_for(state, event, &target).await.map_err(|e| e.to_string())?);
        // A URL registered for one workflow serves that workflow only.
        if target.workflow_id.is_none() {
            let deliveries = crate::deliveries::for_event(
                state,
                event,
                &target.user_id,
                &target.credential_id,
                |trigger, values| {
                    catalog_trigger_matches(&event.integration, trigger, values, event)
                },
            )
            .await
            .map_err(store_error)?;
            writes.extend(deliveries);
        }
    }
    Ok(writes)
}

/// The runs of one user's active workflows that listen to the event.
async fn runs_for(
    state: &Worker,
    event: &WebhookEvent,
    target: &Target,
) -> Result<Vec<Write>, crate::Error> {
    let meta = match state.store.user(&state.project_id, &target.user_id).await? {
        Some(u) => u.meta,
        None => Value::Object(Map::new()),
    };
    let listens = |w: &Workflow| {
        target.workflow_id.as_ref().is_none_or(|id| &w.id == id) && listens_to(w, event)
    };
    let (active, data, _) = active_workflows(state, &target.user_id, &meta, listens).await?;
    let mut out = Vec::new();
    for a in active.iter().filter(|a| a.integration == event.integration) {
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
        if !parameters_match(state, &data, &target.user_id, a, event) {
            continue;
        }
        let output = json!({
            // Read as `trigger.output.result`, like a polled item.
            "result": event.body,
            "event": event.event_type,
            "headers": event.headers,
            "receivedAt": event.received_at,
        });
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
            Some(StepKind::CustomTrigger { trigger }) if custom_id(trigger) == Some(custom)
        );
    }
    let Trigger::Integration { trigger, .. } = trigger_of(workflow) else { return false };
    listening(&event.integration, &trigger, event).is_some()
}

/// The catalog webhook trigger `trigger` (name, intent or alias) of `integration`, when it
/// listens to the event's type and the event meets its fixed conditions (`when`).
fn listening(
    integration: &str,
    trigger: &str,
    event: &WebhookEvent,
) -> Option<&'static para_catalog::Webhook> {
    let catalog = para_catalog::lookup(integration)?;
    let webhook = catalog.trigger(trigger).and_then(|t| t.webhook.as_ref())?;
    let meets = webhook.listens_to(&event.event_type)
        && webhook.when.iter().all(|(locator, want)| {
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
    values.iter().filter(|(_, v)| !v.is_empty()).all(|(name, want)| {
        let Some(locator) = webhook.filter.get(name) else { return true };
        read(event, locator).is_some_and(|v| &para_connect::webhooks::text(&v) == want)
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

/// The id a `CustomTriggerStep`'s source names.
fn custom_id(source: &para_build::Source) -> Option<&str> {
    match source {
        para_build::Source::Value { value: Value::String(id) } => Some(id),
        _ => None,
    }
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
        .is_some_and(|w| !w.filter.is_empty());
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
