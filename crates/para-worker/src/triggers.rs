//! What starts runs without a request: a new connection (integration-enabled workflows), cron
//! schedules and catalog polling triggers; and which of a user's workflows are active (the
//! request and App Event routes of `para-server` start runs through the same rule).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use para_build::{StepKind, Workflow};
use para_store::runs::Write;
use para_store::{CredentialConfiguration, SettingsKey, now_ms};
use serde_json::{Map, Value, json};

use crate::Worker;
use crate::engine::{self, Start, UserData};

/// How a workflow starts, read from its trigger step.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    Event {
        id: String,
        name: String,
    },
    Request,
    Cron {
        cron: String,
        time_zone: String,
    },
    IntegrationEnabled,
    /// A catalog trigger: polling ones are polled ([`polling_loop`]); webhook ones are started
    /// by the events the server receives ([`crate::webhooks`]).
    Integration {
        trigger: String,
        parameters: Vec<para_build::Entry>,
    },
    /// `CustomTriggerStep` or `UnselectedStep`: never started by the server.
    Other,
}

pub fn trigger_of(workflow: &Workflow) -> Trigger {
    let Some(step) = workflow.steps.iter().find(|s| Some(&s.id) == workflow.trigger.as_ref())
    else {
        return Trigger::Other;
    };
    match &step.kind {
        StepKind::Event { event_id, event_name } => {
            Trigger::Event { id: event_id.clone(), name: event_name.clone() }
        }
        StepKind::Endpoint { .. } => Trigger::Request,
        StepKind::Cron { cron, time_zone } => {
            Trigger::Cron { cron: cron.clone(), time_zone: time_zone.clone() }
        }
        StepKind::IntegrationEnabled {} => Trigger::IntegrationEnabled,
        StepKind::IntegrationTrigger { trigger, parameters, .. } => {
            Trigger::Integration { trigger: trigger.clone(), parameters: parameters.clone() }
        }
        _ => Trigger::Other,
    }
}

/// A workflow that runs for a user, in one configuration.
#[derive(Debug, Clone)]
pub struct Active {
    pub integration: String,
    pub workflow: Workflow,
    /// `None`: the integration-level settings (every account's default configuration), acting
    /// with the newest valid account unless the trigger names one. `Some`: a configuration made
    /// with `createConfiguration`, acting with its credential.
    pub configuration: Option<Made>,
}

#[derive(Debug, Clone)]
pub struct Made {
    pub id: String,
    pub credential_id: String,
}

/// The user's workflows that run for them, once per configuration they are on in: the
/// integration connected (a valid credential; for a made configuration, its own), the workflow
/// enabled there (or on by default and never turned off), and permitted. Integration-level
/// entries come first. Also returns the user's data and configurations.
pub async fn active_workflows(
    state: &Worker,
    user_id: &str,
    meta: &Value,
    pick: impl Fn(&Workflow) -> bool,
) -> Result<(Vec<Active>, Arc<UserData>, Vec<CredentialConfiguration>), crate::Error> {
    let build = state.build();
    let (data, rows) = tokio::join!(
        UserData::load(state, user_id),
        state.store.configurations(&state.project_id, user_id),
    );
    let (data, rows) = (Arc::new(data?), rows?);
    let (credentials, settings) = (&data.credentials, &data.settings);
    let meta = crate::permissions::permission_meta(
        state.config.permissions_from_token_only,
        meta,
        &data.signed_meta,
    );
    let valid = |integration: &str, id: Option<&str>| {
        credentials.iter().any(|c| {
            c.integration == integration
                && c.status == para_store::CredentialStatus::Valid
                && id.is_none_or(|id| c.id == id)
        })
    };
    let mut out = Vec::new();
    for integration in build.integrations.values() {
        if !valid(&integration.key, None) {
            continue;
        }
        let made = rows
            .iter()
            .filter(|r| !r.is_default && valid(&integration.key, Some(&r.credential_id)));
        let scopes = std::iter::once(None).chain(
            made.map(|r| Some(Made { id: r.id.clone(), credential_id: r.credential_id.clone() })),
        );
        for configuration in scopes {
            let key = SettingsKey::of(configuration.as_ref().map(|m| m.id.as_str()));
            for workflow in integration.workflows.values().filter(|w| pick(w)) {
                let stored =
                    para_store::Settings::find(settings, &integration.key, &key, &workflow.id);
                let enabled = stored.and_then(|s| s.enabled).unwrap_or(workflow.default_enabled);
                if enabled && crate::permissions::permitted_for(workflow, user_id, meta) {
                    out.push(Active {
                        integration: integration.key.clone(),
                        workflow: workflow.clone(),
                        configuration: configuration.clone(),
                    });
                }
            }
        }
    }
    Ok((out, data, rows))
}

/// A user connected an account (`credential`) of an integration: runs its active
/// integration-enabled workflows, acting with that account.
pub async fn integration_enabled(
    state: &Worker,
    user_id: &str,
    integration: &str,
    credential: &str,
) {
    let meta = match state.store.user(&state.project_id, user_id).await {
        Ok(Some(u)) => u.meta,
        _ => Value::Object(Map::new()),
    };
    let workflows = active_workflows(state, user_id, &meta, |w| {
        matches!(trigger_of(w), Trigger::IntegrationEnabled)
    })
    .await;
    let Ok((workflows, data, _)) = workflows else { return };
    // A new account has only its default configuration.
    let fresh =
        workflows.into_iter().filter(|a| a.integration == integration && a.configuration.is_none());
    for Active { integration: key, workflow, .. } in fresh {
        let start = Start {
            user_id: user_id.to_string(),
            integration: key,
            workflow_id: workflow.id.clone(),
            trigger_kind: "integration_enabled".into(),
            trigger_output: json!({ "integration": integration }),
            user: Some(data.clone()),
            credential_id: Some(credential.to_string()),
            configuration_id: None,
        };
        if let Err(e) = engine::start_run(state, start, false).await {
            tracing::error!(workflow = %workflow.name, user_id = %user_id, error = %e, "starting a workflow failed");
        }
    }
}

/// A six-field cron expression (seconds first) in a time zone. Numeric days of the week
/// count from Sunday = 0 (or 7) as in cron; the `cron` crate counts from Sunday = 1, so
/// numbers are turned into names first.
pub struct CronSchedule {
    schedule: cron::Schedule,
    zone: chrono_tz::Tz,
}

impl CronSchedule {
    pub fn parse(expression: &str, time_zone: &str) -> Result<CronSchedule, String> {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(format!("`{expression}` is not a six-field cron expression"));
        }
        let days = day_names(fields[5]);
        let text = format!(
            "{} {} {} {} {} {}",
            fields[0], fields[1], fields[2], fields[3], fields[4], days
        );
        let schedule =
            cron::Schedule::from_str(&text).map_err(|e| format!("`{expression}`: {e}"))?;
        let zone = chrono_tz::Tz::from_str(time_zone)
            .map_err(|_| format!("`{time_zone}` is not an IANA time zone"))?;
        Ok(CronSchedule { schedule, zone })
    }

    /// The ticks (Unix ms) after `after` up to and including `until`.
    pub fn ticks(&self, after: i64, until: i64) -> Vec<i64> {
        let Some(start) = self.zone.timestamp_millis_opt(after).single() else { return Vec::new() };
        self.schedule
            .after(&start)
            .map(|t| t.timestamp_millis())
            .take_while(|t| *t <= until)
            .take(1_000)
            .collect()
    }
}

fn day_names(field: &str) -> String {
    const NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    let mut out = String::new();
    let mut number = String::new();
    let flush = |number: &mut String, out: &mut String| {
        if !number.is_empty() {
            match number.parse::<usize>().ok().and_then(|n| NAMES.get(n)) {
                Some(name) => out.push_str(name),
                None => out.push_str(number),
            }
            number.clear();
        }
    };
    // A step (`*/2`) stays a number.
    let mut after_slash = false;
    for c in field.chars() {
        if c.is_ascii_digit() && !after_slash {
            number.push(c);
        } else {
            flush(&mut number, &mut out);
            after_slash = c == '/' || (after_slash && c.is_ascii_digit());
            out.push(c);
        }
    }
    flush(&mut number, &mut out);
    out
}

/// Fires cron workflows: for each tick exactly one process (the store's tick claim) queues a
/// run for every user who has the workflow active. After a restart the ticks missed while no
/// process ran (up to an hour back) fire once.
pub async fn cron_loop(state: Arc<Worker>) {
    let mut last: HashMap<String, i64> = HashMap::new();
    loop {
        let now = now_ms();
        let build = state.build();
        for integration in build.integrations.values() {
            for workflow in integration.workflows.values() {
                let Trigger::Cron { cron, time_zone } = trigger_of(workflow) else { continue };
                let Ok(schedule) = CronSchedule::parse(&cron, &time_zone) else { continue };
                let since = match last.get(&workflow.id) {
                    Some(t) => *t,
                    None => {
                        let latest = state
                            .store
                            .latest_cron_tick(&state.project_id, &workflow.id)
                            .await
                            .ok()
                            .flatten();
                        latest.unwrap_or(now).max(now - 3_600_000)
                    }
                };
                for tick in schedule.ticks(since, now) {
                    fire(&state, &integration.key, workflow, tick).await;
                }
                last.insert(workflow.id.clone(), now);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn fire(state: &Arc<Worker>, integration: &str, workflow: &Workflow, tick: i64) {
    match state
        .store
        .claim_cron_tick(&state.project_id, &workflow.id, tick, &state.engine.worker)
        .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::error!(error = %e, "claiming a cron tick failed");
            return;
        }
    }
    let users =
        state.store.connected_users(&state.project_id, integration).await.unwrap_or_default();
    for user_id in users {
        let meta = match state.store.user(&state.project_id, &user_id).await {
            Ok(Some(u)) => u.meta,
            _ => Value::Object(Map::new()),
        };
        let Ok((active, _, _)) =
            active_workflows(state, &user_id, &meta, |w| w.id == workflow.id).await
        else {
            continue;
        };
        // One run per configuration the workflow is on in.
        let fired_at = chrono::DateTime::from_timestamp_millis(tick).map(|t| t.to_rfc3339());
        for a in active {
            let made = a.configuration;
            let start = Start {
                user_id: user_id.clone(),
                integration: integration.to_string(),
                workflow_id: workflow.id.clone(),
                trigger_kind: "cron".into(),
                trigger_output: json!({ "firedAt": fired_at, "tick": tick }),
                user: None,
                credential_id: made.as_ref().map(|m| m.credential_id.clone()),
                configuration_id: made.map(|m| m.id),
            };
            if let Err(e) = engine::enqueue(state, start).await {
                tracing::error!(workflow = %workflow.name, user_id = %user_id, error = %e, "queueing a workflow failed");
            }
        }
    }
}

/// Polls catalog polling triggers: for every connected user with the workflow active, and for
/// every ACTIVE Triggers API subscription to a polling trigger type, once per interval (claimed
/// in the database, so one process polls), `GET` the trigger's path with the user's credential
/// and start a run (a workflow) or record a delivery (a subscription) for each item not seen by
/// the previous poll (the first poll only records what is there). What it starts and what was
/// seen are written in one transaction. [`crate::engine::EngineConfig::trigger_poll_ms`]
/// overrides the catalog's interval.
pub async fn polling_loop(state: Arc<Worker>) {
    let interval_override = state.engine.config.trigger_poll_ms;
    let interval_of = |polling: &para_catalog::Polling| {
        interval_override.unwrap_or(i64::from(polling.interval_seconds) * 1000).max(100)
    };
    loop {
        let build = state.build();
        for integration in build.integrations.values() {
            let Some(catalog) = para_catalog::lookup(&integration.key) else { continue };
            for workflow in integration.workflows.values() {
                let Trigger::Integration { trigger, parameters } = trigger_of(workflow) else {
                    continue;
                };
                let Some(polling) = catalog.trigger(&trigger).and_then(|t| t.polling.as_ref())
                else {
                    continue;
                };
                let interval = interval_of(polling);
                let users = state
                    .store
                    .connected_users(&state.project_id, &integration.key)
                    .await
                    .unwrap_or_default();
                let poll = Poll {
                    integration: &integration.key,
                    workflow,
                    polling,
                    parameters: &parameters,
                };
                for user_id in users {
                    if let Err(e) = poll.run(&state, &user_id, interval).await {
                        tracing::warn!(workflow = %workflow.name, user_id = %user_id, error = %e, "polling a trigger failed");
                    }
                }
            }
            // Triggers API subscriptions, each with its own trigger state.
            let subscriptions = state
                .store
                .active_trigger_subscriptions(&state.project_id, &integration.key)
                .await
                .unwrap_or_default();
            for subscription in &subscriptions {
                let Some(polling) =
                    catalog.trigger(&subscription.trigger_type).and_then(|t| t.polling.as_ref())
                else {
                    continue;
                };
                let polled = Polled::Subscription(subscription);
                let user_id = &subscription.user_id;
                let done = poll_once(
                    &state,
                    &integration.key,
                    polling,
                    user_id,
                    interval_of(polling),
                    &polled,
                )
                .await;
                if let Err(e) = done {
                    tracing::warn!(subscription = %subscription.id, user_id = %user_id, error = %e, "polling a trigger failed");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

struct Poll<'a> {
    integration: &'a str,
    workflow: &'a Workflow,
    polling: &'a para_catalog::Polling,
    parameters: &'a [para_build::Entry],
}

impl Poll<'_> {
    async fn run(&self, state: &Worker, user_id: &str, interval: i64) -> Result<(), String> {
        let meta = match state.store.user(&state.project_id, user_id).await {
            Ok(Some(u)) => u.meta,
            _ => Value::Object(Map::new()),
        };
        let (active, data, _) =
            active_workflows(state, user_id, &meta, |w| w.id == self.workflow.id)
                .await
                .map_err(|e| e.to_string())?;
        // Once per configuration the workflow is on in, each with its own trigger state.
        let mut problems = Vec::new();
        for entry in active {
            let polled =
                Polled::Workflow { active: &entry, data: &data, parameters: self.parameters };
            if let Err(e) =
                poll_once(state, self.integration, self.polling, user_id, interval, &polled).await
            {
                problems.push(e);
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
    }
}

/// What one poll is for: a workflow in one configuration (`active.configuration` `None`: the
/// integration-level settings, acting with the newest valid account), or a Triggers API
/// subscription (its parameters, acting with its account).
enum Polled<'a> {
    Workflow { active: &'a Active, data: &'a UserData, parameters: &'a [para_build::Entry] },
    Subscription(&'a para_store::trigger_subscriptions::TriggerSubscription),
}

impl Polled<'_> {
    /// The `trigger_state` row its state is kept in: `(workflow_id, configuration)`.
    fn state_key(&self) -> (String, SettingsKey) {
        match self {
            Polled::Workflow { active, .. } => (
                active.workflow.id.clone(),
                SettingsKey::of(active.configuration.as_ref().map(|m| m.id.as_str())),
            ),
            Polled::Subscription(s) => (
                para_store::trigger_subscriptions::subscription_state_key(&s.id),
                SettingsKey::Integration,
            ),
        }
    }

    /// The trigger's parameters, as texts.
    fn values(&self, state: &Worker, user_id: &str, integration: &str) -> Vec<(String, String)> {
        match self {
            Polled::Workflow { active, data, parameters } => {
                let (_, configuration) = self.state_key();
                parameter_values(
                    state,
                    data,
                    user_id,
                    integration,
                    &configuration,
                    &active.workflow,
                    parameters,
                )
            }
            Polled::Subscription(s) => crate::deliveries::parameter_texts(&s.parameters),
        }
    }

    /// The account the poll acts with; `None`: the user's newest valid one.
    fn credential(&self) -> Option<&str> {
        match self {
            Polled::Workflow { active, .. } => {
                active.configuration.as_ref().map(|m| m.credential_id.as_str())
            }
            Polled::Subscription(s) => Some(&s.credential_id),
        }
    }

    /// What a new item starts: a run, or a delivery.
    fn fire(&self, state: &Worker, user_id: &str, item: &Value, item_id: &str) -> Write {
        match self {
            // Read as `trigger.output.result`, as Paragon's generated workflows do.
            Polled::Workflow { active, .. } => {
                fired(state, user_id, active, None, "polling", json!({ "result": item }))
            }
            Polled::Subscription(s) => crate::deliveries::queued(
                state,
                s,
                &format!("poll:{item_id}"),
                item.clone(),
                now_ms(),
            ),
        }
    }
}

/// The items a polling trigger's path answers now, asked with the user's account
/// (`credential`; `None`: the newest valid one) and the parameters filled into the path.
pub async fn poll_items(
    state: &Worker,
    integration: &str,
    polling: &para_catalog::Polling,
    user_id: &str,
    credential: Option<&str>,
    values: &[(String, String)],
) -> Result<Vec<Value>, String> {
    let mut path = polling.path.clone();
    for (key, text) in values {
        let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
        path = path.replace(&format!("{{{key}}}"), &encoded.replace('+', "%20"));
    }
    let request = para_engine::run::HttpRequest {
        method: "GET".into(),
        url: path.clone(),
        query: Vec::new(),
        headers: Vec::new(),
        body: None,
        body_type: None,
        authorization: None,
    };
    let account =
        engine::Account { user_id, integration, credential_id: credential, require_valid: true };
    let answer = engine::send(state, Some(account), request).await.map_err(|e| e.message)?;
    if answer.status >= 400 {
        return Err(format!("GET {path} answered HTTP {}", answer.status));
    }
    let items = match polling.items.as_str() {
        "" => answer.body,
        dotted => {
            let path: Vec<String> = dotted.split('.').map(str::to_string).collect();
            para_engine::values::walk(&answer.body, &path).unwrap_or(Value::Null)
        }
    };
    Ok(match items {
        Value::Array(items) => items,
        _ => Vec::new(),
    })
}

/// One poll: claims it (so one process polls per interval), `GET`s the trigger's path with the
/// parameters filled in, and writes what each new item starts with what was seen.
async fn poll_once(
    state: &Worker,
    integration: &str,
    polling: &para_catalog::Polling,
    user_id: &str,
    interval: i64,
    polled: &Polled<'_>,
) -> Result<(), String> {
    let (state_key, configuration) = polled.state_key();
    let claimed = state
        .store
        .claim_poll(&state.project_id, &state_key, user_id, &configuration, interval)
        .await
        .map_err(|e| e.to_string())?;
    let Some(previous) = claimed else { return Ok(()) };
    let values = polled.values(state, user_id, integration);
    let items =
        poll_items(state, integration, polling, user_id, polled.credential(), &values).await?;
    let id_of = |item: &Value| item.get(&polling.id).map(|v| para_engine::values::text_of(Some(v)));
    let seen: std::collections::HashSet<String> = previous
        .as_ref()
        .and_then(|p| p.get("seen"))
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let mut writes = Vec::new();
    if previous.is_some() {
        for item in &items {
            let Some(id) = id_of(item).filter(|id| !seen.contains(id)) else { continue };
            writes.push(polled.fire(state, user_id, item, &id));
        }
    }
    let now_seen: Vec<Value> =
        items.iter().filter_map(id_of).take(10_000).map(Value::String).collect();
    let started = writes.iter().any(|w| matches!(w, Write::Create { .. }));
    let delivered = writes.iter().any(|w| matches!(w, Write::Delivery(_)));
    writes.push(Write::TriggerState {
        project_id: state.project_id.clone(),
        workflow_id: state_key,
        user_id: user_id.to_string(),
        configuration,
        state: json!({ "seen": now_seen }),
    });
    state.store.apply(&writes).await.map_err(|e| e.to_string())?;
    if started {
        engine::wake(state);
    }
    if delivered {
        crate::deliveries::wake(state);
    }
    Ok(())
}

/// A catalog trigger's parameters as the user's workflow set them: each entry resolved in the
/// configuration's settings (literals as they are), in order.
pub(crate) fn parameter_values(
    state: &Worker,
    data: &UserData,
    user_id: &str,
    integration: &str,
    configuration: &SettingsKey,
    workflow: &Workflow,
    parameters: &[para_build::Entry],
) -> Vec<(String, String)> {
    let values = |workflow_id: &str| {
        let stored =
            engine::settings_values(&data.settings, integration, configuration, workflow_id);
        para_connect::passwords::open(state, user_id, stored).0
    };
    let (shared, own) = (values(""), values(&workflow.id));
    let scope = para_engine::Scope {
        shared_settings: Some(&shared),
        workflow_settings: Some(&own),
        user_id: Some(user_id),
        meta: Some(&data.meta),
        ..para_engine::Scope::default()
    };
    parameters
        .iter()
        .map(|entry| (entry.key.clone(), para_engine::resolve_text(&entry.source, &scope)))
        .collect()
}

/// Something happened for a user that starts a workflow (a polled item, a webhook event): the
/// run to queue, in the configuration the workflow is on in, acting with `credential` (the
/// account the event belongs to) or the configuration's own. Polling and webhook triggers both
/// start runs through here.
pub(crate) fn fired(
    state: &Worker,
    user_id: &str,
    active: &Active,
    credential: Option<&str>,
    trigger_kind: &str,
    output: Value,
) -> para_store::runs::Write {
    let made = active.configuration.as_ref();
    let start = Start {
        user_id: user_id.to_string(),
        integration: active.integration.clone(),
        workflow_id: active.workflow.id.clone(),
        trigger_kind: trigger_kind.into(),
        trigger_output: output,
        user: None,
        credential_id: made.map(|m| m.credential_id.clone()).or(credential.map(str::to_string)),
        configuration_id: made.map(|m| m.id.clone()),
    };
    engine::queued(state, &active.workflow, &start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_days_count_from_sunday_zero_and_zones_apply() {
        assert_eq!(day_names("1-5"), "MON-FRI");
        assert_eq!(day_names("0,6"), "SUN,SAT");
        assert_eq!(day_names("*/2"), "*/2");
        assert_eq!(day_names("MON"), "MON");
        // Weekdays at 08:00 in Berlin: Tuesday 2026-12-01 and Wednesday 2026-12-02, 07:00 UTC.
        let s = CronSchedule::parse("0 0 8 * * 1-5", "Europe/Berlin").unwrap();
        let tuesday_noon = 1_796_126_400_000; // 2026-12-01T12:00:00Z
        let ticks = s.ticks(tuesday_noon - 86_400_000, tuesday_noon + 86_400_000);
        let shown: Vec<String> = ticks
            .iter()
            .map(|t| chrono::DateTime::from_timestamp_millis(*t).unwrap().to_rfc3339())
            .collect();
        assert_eq!(shown, ["2026-12-01T07:00:00+00:00", "2026-12-02T07:00:00+00:00"]);
        // Saturday and Sunday have none.
        let saturday = 1_796_428_800_000; // 2026-12-05T00:00:00Z
        assert!(s.ticks(saturday, saturday + 2 * 86_400_000).is_empty());
        assert!(CronSchedule::parse("0 8 * * *", "UTC").is_err());
        assert!(CronSchedule::parse("0 0 8 * * *", "Mars/Olympus").is_err());
    }
}
