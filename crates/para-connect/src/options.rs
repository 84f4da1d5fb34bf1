//! Choices of an integration-specific User Setting type (a Slack channel, a Drive folder): the
//! catalog's `input_types[].options` names a `GET` below the API base whose answer lists them,
//! fetched with the user's credential through [`Connect::send`].

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, header};
use serde_json::Value;

use crate::Connect;
use crate::connector::{Template, render};
use crate::send::{self, Account, Destination, Outgoing};

/// At most this many choices are offered.
pub const MAX_CHOICES: usize = 1000;

/// `(label, value)` pairs for `input_type` of the integration, or why they cannot be listed.
/// `Ok(None)`: the type has no option list (a free-text value).
pub async fn choices_of(
    state: &Connect,
    user_id: &str,
    integration_key: &str,
    input_type: &str,
) -> Result<Option<Vec<(String, String)>>, String> {
    let Some(spec) = para_catalog::lookup(integration_key)
        .and_then(|c| c.input_types.iter().find(|t| t.name == input_type))
        .and_then(|t| t.options.as_ref())
    else {
        return Ok(None);
    };
    let credentials = state
        .store
        .credentials(&state.project_id, user_id, Some(integration_key))
        .await
        .map_err(|e| crate::Error::from(e).message())?;
    let credential = credentials
        .into_iter()
        .find(|c| c.status == para_store::CredentialStatus::Valid)
        .ok_or_else(|| "connect the account to choose from its list".to_string())?;
    fetch_listing(state, user_id, integration_key, spec, &credential.id).await.map(Some)
}

/// The choices a catalog listing (`input_types[].options`) gives, fetched with the user's
/// credential `credential_id` (refreshed first when it is about to expire).
pub async fn fetch_listing(
    state: &Connect,
    user_id: &str,
    integration_key: &str,
    spec: &para_catalog::Options,
    credential_id: &str,
) -> Result<Vec<(String, String)>, String> {
    let account = Account {
        user_id,
        integration: integration_key,
        credential_id: Some(credential_id),
        require_valid: true,
    };
    let prepared = state.prepare(account).await.map_err(|e| e.message())?;
    let name = prepared.connector.name.clone();
    let path = render(&Template::Text(spec.path.clone()), prepared.material()).map_err(|e| e.0)?;
    let (path, query) = path.split_once('?').map_or((path.as_str(), None), |(p, q)| (p, Some(q)));
    let path = format!("/{}", path.trim_start_matches('/'));
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let request = Outgoing {
        method: Method::GET,
        destination: Destination::below(&path).map_err(|e| e.message())?,
        query,
        headers,
        body: Default::default(),
        keep: send::is_content_type,
        wait_429: LISTING_WAIT_429,
    };
    let failed = |why: String| format!("listing the choices failed: {why}");
    let answer = state.send(prepared, request).await.map_err(|e| failed(e.message()))?;
    let status = answer.status();
    let body = send::read_body(answer.into_body(), send::MAX_READ).await.map_err(failed)?;
    if !status.is_success() {
        return Err(failed(format!("{name} answered {}", status.as_u16())));
    }
    let answer: Value = serde_json::from_slice(&body)
        .map_err(|_| format!("{name}'s list of choices is not JSON"))?;
    Ok(pick(&answer, &spec.items, &spec.value, &spec.label))
}

/// How long a listing waits for a provider that answers 429 before saying it failed.
const LISTING_WAIT_429: Duration = Duration::from_secs(5);

/// Per setting type: its choices (`None`: free text) or why they could not be listed.
pub type Choices = HashMap<String, Result<Option<Vec<(String, String)>>, String>>;

/// The choices of every setting type the integration's inputs (its own and its workflows')
/// use, listed with the user's credential; nothing without a catalog entry or a valid
/// credential.
pub async fn all_choices(
    state: &Connect,
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
