//! User Settings of type `password` (an API key the user types into the Connect Portal, say)
//! are secrets like credentials: sealed before they reach the store (AES-256-GCM under the
//! server's secret key, bound to the project, the user and the input), opened only for a run
//! or a poll that reads them, never returned by the Connect API, and redacted from run
//! journals like environment secrets.
//!
//! A stored value is `para-sealed:v1:<envelope>`. Values saved before sealing existed are
//! sealed when the server starts ([`seal_stored`]).

use std::collections::BTreeSet;

use para_build::Integration;
use serde_json::{Map, Value};

use crate::Connect;

/// What a sealed value starts with.
const PREFIX: &str = "para-sealed:";

fn aad(project_id: &str, user_id: &str, input_id: &str) -> Vec<u8> {
    format!("para-setting:v1:{project_id}:{user_id}:{input_id}").into_bytes()
}

/// The ids of the integration's `password` inputs (its own and its workflows').
pub fn password_ids(integration: &Integration) -> BTreeSet<&str> {
    integration
        .inputs
        .iter()
        .chain(integration.workflows.values().flat_map(|w| w.inputs.iter()))
        .filter(|i| i.input_type == "password")
        .map(|i| i.id.as_str())
        .collect()
}

/// Seals, in place, every plain password value of `values` (settings of `user_id` for
/// `integration`, keyed by input id). True when something was sealed.
pub fn seal(state: &Connect, user_id: &str, integration: &Integration, values: &mut Value) -> bool {
    let Some(map) = values.as_object_mut() else { return false };
    let mut sealed = false;
    for id in password_ids(integration) {
        if let Some(Value::String(text)) = map.get_mut(id)
            && !text.is_empty()
            && !text.starts_with(PREFIX)
        {
            let envelope =
                state.secrets.seal(text.as_bytes(), &aad(&state.project_id, user_id, id));
            *text = format!("{PREFIX}{envelope}");
            sealed = true;
        }
    }
    sealed
}

/// Writes one scope's settings as [`para_store::Store::put_settings`] does, with the password
/// values sealed, and the stored passwords the new values leave out kept: clients never see
/// them, so they cannot send them back (`null` or `""` clears one).
pub async fn put_settings(
    state: &Connect,
    scope: para_store::SettingsScope<'_>,
    enabled: Option<bool>,
    values: Option<&Value>,
) -> Result<(), para_store::StoreError> {
    let build = state.build();
    let (Some(values), Some(integration)) = (values, build.integrations.get(scope.integration))
    else {
        state.store.put_settings(scope, enabled, values).await?;
        state.settings_changed(scope.user_id, scope.integration).await;
        return Ok(());
    };
    let mut values = values.clone();
    let ids = password_ids(integration);
    if let Some(map) = values.as_object_mut()
        && !ids.is_empty()
    {
        let stored = state.store.settings(scope.project_id, scope.user_id).await?;
        let row = para_store::Settings::find(
            &stored,
            scope.integration,
            scope.configuration,
            scope.workflow_id,
        );
        for id in ids {
            if !map.contains_key(id)
                && let Some(kept) = row.and_then(|r| r.values.get(id))
            {
                map.insert(id.to_string(), kept.clone());
            }
            if map.get(id).is_some_and(|v| v.is_null() || v.as_str() == Some("")) {
                map.remove(id);
            }
        }
        seal(state, scope.user_id, integration, &mut values);
    }
    state.store.put_settings(scope, enabled, Some(&values)).await?;
    state.settings_changed(scope.user_id, scope.integration).await;
    Ok(())
}

/// `values` with sealed passwords opened (for a run or a poll of `user_id`), and the opened
/// texts (which the run's journal must not hold). A value that does not open is left out.
pub fn open(
    state: &Connect,
    user_id: &str,
    mut values: Map<String, Value>,
) -> (Map<String, Value>, Vec<String>) {
    let mut opened = Vec::new();
    let keys: Vec<String> = values
        .iter()
        .filter(|(_, v)| v.as_str().is_some_and(|s| s.starts_with(PREFIX)))
        .map(|(k, _)| k.clone())
        .collect();
    for key in keys {
        let sealed = values.remove(&key).and_then(|v| v.as_str().map(str::to_string));
        let plain = sealed.and_then(|s| {
            let bytes = state
                .secrets
                .open(&s[PREFIX.len()..], &aad(&state.project_id, user_id, &key))
                .ok()?;
            String::from_utf8(bytes).ok()
        });
        if let Some(plain) = plain {
            opened.push(plain.clone());
            values.insert(key, Value::String(plain));
        }
    }
    (values, opened)
}

/// `values` without sealed passwords, for answers to clients.
pub fn hidden(values: &Value) -> Value {
    match values {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.as_str().is_some_and(|s| s.starts_with(PREFIX)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Seals the password values stored before sealing existed, for every user of the project:
/// run once when the server starts. Returns how many settings rows were rewritten.
pub async fn seal_stored(state: &Connect) -> Result<usize, para_store::StoreError> {
    let build = state.build();
    let mut rewritten = 0;
    for user in state.store.users(&state.project_id).await? {
        for row in state.store.settings(&state.project_id, &user.user_id).await? {
            let Some(integration) = build.integrations.get(&row.integration) else { continue };
            let mut values = row.values.clone();
            if seal(state, &user.user_id, integration, &mut values) {
                let scope = para_store::SettingsScope {
                    project_id: &state.project_id,
                    user_id: &user.user_id,
                    integration: &row.integration,
                    configuration: &row.configuration,
                    workflow_id: &row.workflow_id,
                };
                state.store.put_settings(scope, None, Some(&values)).await?;
                rewritten += 1;
            }
        }
    }
    Ok(rewritten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_are_recognised_by_their_prefix_and_hidden() {
        let values = serde_json::json!({ "a": "para-sealed:v1:xyz", "b": "plain", "c": 3 });
        assert_eq!(hidden(&values), serde_json::json!({ "b": "plain", "c": 3 }));
    }
}
