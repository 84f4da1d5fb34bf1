//! Choices of an integration-specific User Setting type (a Slack channel, a Drive folder): the
//! catalog's `input_types[].options` names a `GET` below the API base whose answer lists them.
//! Fetched with the user's credential, as the proxy would send it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::auth::SdkUser;
use crate::connector::{Template, render};
use crate::error::ApiError;
use crate::state::AppState;
use crate::{proxy, refresh};

/// At most this many choices are offered.
pub const MAX_CHOICES: usize = 1000;

/// `(label, value)` pairs for `input_type` of the integration, or why they cannot be listed.
/// `Ok(None)`: the type has no option list (a free-text value).
pub async fn choices_of(
    state: &AppState,
    user_id: &str,
    integration_key: &str,
    input_type: &str,
) -> Result<Option<Vec<(String, String)>>, String> {
    let Some(spec) = para_catalog::lookup(integration_key)
        .and_then(|c| c.input_types.iter().find(|t| t.name == input_type))
        .and_then(|t| t.options.clone())
    else {
        return Ok(None);
    };
    let connector = state
        .connector(integration_key)
        .ok_or_else(|| format!("{integration_key} is not part of this project"))?;
    let credentials = state
        .store
        .credentials(&state.project_id, user_id, Some(integration_key))
        .await
        .map_err(|e| crate::error::ApiError::from(e).message)?;
    let credential = credentials
        .into_iter()
        .find(|c| c.status == "VALID")
        .ok_or_else(|| "connect the account to choose from its list".to_string())?;
    let (_, material) =
        refresh::usable(state, &connector, credential).await.map_err(|e| e.message)?;
    let path = render(&Template::Text(spec.path.clone()), &material).map_err(|e| e.0)?;
    let (path, query) = path.split_once('?').map_or((path.as_str(), None), |(p, q)| (p, Some(q)));
    let tail = proxy::safe_path(path)?;
    let base = connector.base_url(&material).map_err(|e| e.0)?;
    let mut url = proxy::join(&base, tail, query)?;
    let auth = connector.authorize(&material).map_err(|e| e.0)?;
    if !auth.query.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in &auth.query {
            q.append_pair(k, v);
        }
    }
    let mut request = state.http.get(url.clone()).header("accept", "application/json");
    for (name, value) in &auth.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("listing the choices failed: {}", crate::oauth::error_chain(&e)))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!(
            "listing the choices failed: {} answered {}",
            connector.name,
            status.as_u16()
        ));
    }
    let answer: Value = serde_json::from_str(&body)
        .map_err(|_| format!("{}'s list of choices is not JSON", connector.name))?;
    Ok(Some(pick(&answer, &spec.items, &spec.value, &spec.label)))
}

/// Per setting type: its choices (`None`: free text) or why they could not be listed.
pub type Choices = HashMap<String, Result<Option<Vec<(String, String)>>, String>>;

/// The choices of every setting type the integration's inputs (its own and its workflows')
/// use, listed with the user's credential; nothing without a catalog entry or a valid
/// credential.
pub async fn all_choices(
    state: &AppState,
    user_id: &str,
    integration: &para_build::Integration,
    connected: bool,
) -> Choices {
    let mut choices = Choices::new();
    if para_catalog::lookup(&integration.key).is_none() || !connected {
        return choices;
    }
    let types: BTreeSet<&str> = integration
        .inputs
        .iter()
        .chain(integration.workflows.values().flat_map(|w| w.inputs.iter()))
        .map(|i| i.input_type.as_str())
        .collect();
    for input_type in types {
        let listed = choices_of(state, user_id, &integration.key, input_type).await;
        choices.insert(input_type.to_string(), listed);
    }
    choices
}

/// `GET /projects/{id}/sdk/integrations/{integration}/setting-choices`, para's own call for the
/// `/ui` portal: what the server-rendered portal offers in its forms: the catalog's record
/// types (for `field_mapping`), and per integration-specific setting type its choices
/// (`{"options": [{label, value}]}`) or why they could not be listed (`{"error"}`).
pub async fn setting_choices(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, integration)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let build = state.build();
    let found = crate::api::find_integration(&build, &integration).ok_or_else(|| {
        ApiError::not_found(format!("no integration `{integration}` in this project"))
    })?;
    let credentials =
        state.store.credentials(&state.project_id, &user.user_id, Some(&found.key)).await?;
    let connected = credentials.iter().any(|c| c.status == "VALID");
    let choices = all_choices(&state, &user.user_id, found, connected).await;
    let mut types = serde_json::Map::new();
    for (input_type, listed) in choices {
        let entry = match listed {
            Ok(None) => continue,
            Ok(Some(list)) => json!({
                "options": list
                    .into_iter()
                    .map(|(label, value)| json!({ "label": label, "value": value }))
                    .collect::<Vec<_>>()
            }),
            Err(why) => json!({ "error": why }),
        };
        types.insert(input_type, entry);
    }
    let record_types =
        para_catalog::lookup(&found.key).map(|c| c.record_types.clone()).unwrap_or_default();
    Ok(Json(json!({ "recordTypes": record_types, "types": types })))
}

/// The value at a dotted path (`a.b.0.c`); empty path: the value itself.
fn at<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |v, segment| match v {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `(label, value)` of each item of the list at `items`; items without a value are skipped.
pub fn pick(answer: &Value, items: &str, value: &str, label: &str) -> Vec<(String, String)> {
    let Some(Value::Array(list)) = at(answer, items) else { return Vec::new() };
    list.iter()
        .filter_map(|item| {
            let v = at(item, value).and_then(text)?;
            let l = at(item, label).and_then(text).unwrap_or_else(|| v.clone());
            Some((l, v))
        })
        .take(MAX_CHOICES)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn choices_are_picked_by_dotted_paths() {
        let answer = json!({ "data": { "channels": [
            { "id": "C1", "name": "general" },
            { "id": 2, "profile": { "name": "two" } },
            { "name": "no id" }
        ] } });
        assert_eq!(
            pick(&answer, "data.channels", "id", "name"),
            [("general".to_string(), "C1".to_string()), ("2".to_string(), "2".to_string())]
        );
        assert_eq!(
            pick(&answer, "data.channels", "id", "profile.name")[1],
            ("two".to_string(), "2".to_string())
        );
        assert_eq!(pick(&json!([{ "v": "x" }]), "", "v", "v").len(), 1);
        assert!(pick(&answer, "missing", "id", "name").is_empty());
    }
}
