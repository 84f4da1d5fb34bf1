//! The trigger types the SDK's `getTriggers(type)` lists (`GET /projects/{id}/triggers?
//! integrations=…`, on `API_TRIGGER_KIT_PUBLIC_URL`): each integration's catalog triggers,
//! polling and webhook, and the project's custom webhook triggers, in the SDK's
//! `GetTriggerTypesResponse` shape. Also the URL `getCustomWebhookUserManualUrl` forms, which
//! answers that custom webhook triggers are not received yet.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{any, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::SdkUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::find_integration;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/projects/{project}/triggers", get(trigger_types)).route(
        "/triggers/connect/{project}/{integration}/custom-triggers/{trigger}",
        any(custom_webhook),
    )
}

#[derive(Deserialize)]
struct TriggerQuery {
    /// Integration names (or ids), comma-separated; absent or empty: every integration.
    integrations: Option<String>,
}

/// The most integrations one request may name.
const MAX_NAMED: usize = 100;

/// `GET /projects/{id}/triggers?integrations=<type>[,<type>…]`: `{triggers: {<type>:
/// TriggerDefinition[]}, errors?: [{type, message}]}`. A name the project does not serve is
/// reported in `errors`, the others are still listed. `X-Paragon-Credential`, which the SDK
/// sends, is not read: the types do not depend on the account.
async fn trigger_types(
    State(state): State<Arc<AppState>>,
    _user: SdkUser,
    Query(query): Query<TriggerQuery>,
) -> Result<Json<Value>, ApiError> {
    let build = state.build();
    let named: Vec<&str> = query
        .integrations
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if named.len() > MAX_NAMED {
        return Err(ApiError::bad_request(format!(
            "`integrations` names {} integrations; ask for at most {MAX_NAMED} at once",
            named.len()
        )));
    }
    let mut triggers = Map::new();
    let mut errors = Vec::new();
    if named.is_empty() {
        for integration in build.integrations.values().filter(|i| i.config.active) {
            triggers.insert(integration.key.clone(), Value::Array(definitions(integration)));
        }
    }
    for name in named {
        match find_integration(&build, name) {
            Some(i) if i.config.active => {
                triggers.insert(name.to_string(), Value::Array(definitions(i)));
            }
            Some(i) => errors.push(json!({
                "type": name,
                "message": format!("{} is not active in this project (config.ts `active: false`)", i.name),
            })),
            None => errors.push(json!({
                "type": name,
                "message": format!("no integration `{name}` in this project"),
            })),
        }
    }
    let mut answer = json!({ "triggers": triggers });
    if !errors.is_empty() {
        answer["errors"] = Value::Array(errors);
    }
    Ok(Json(answer))
}

/// An integration's trigger types: the catalog's (polling and webhook), then the project's
/// custom webhook triggers.
fn definitions(integration: &para_build::Integration) -> Vec<Value> {
    let mut out: Vec<Value> = para_catalog::lookup(&integration.key)
        .map(|c| c.triggers.iter().map(catalog_definition).collect())
        .unwrap_or_default();
    out.extend(integration.custom_triggers.iter().map(|(id, t)| custom_definition(id, t)));
    out
}

/// A catalog trigger as a `TriggerDefinition`: `type` is its intent (Paragon's trigger type),
/// `name` the code handle `integration.triggers.<name>` takes.
fn catalog_definition(t: &para_catalog::Trigger) -> Value {
    json!({
        "type": t.intent,
        "name": t.name,
        "triggerModel": match t.kind {
            para_catalog::TriggerKind::Polling => "POLLING",
            para_catalog::TriggerKind::Webhook => "WEBHOOK",
        },
        "title": t.title,
        "description": t.description,
        // A prefix parameter (`field-*`) stands for many keys, not one input.
        "parameters": t.parameters.iter().filter(|p| !p.name.ends_with('*')).map(parameter).collect::<Vec<_>>(),
    })
}

/// A trigger parameter as the SDK's `IntentInputKeyConfig`.
fn parameter(p: &para_catalog::Parameter) -> Value {
    use para_catalog::ParamType;
    let mut input = json!({
        "id": p.name,
        "title": title_of(&p.name),
        "required": p.required,
        "type": match p.ty {
            ParamType::String => "TEXT",
            ParamType::Number => "NUMBER",
            ParamType::Boolean => "BOOLEAN_INPUT",
            ParamType::Object | ParamType::Array | ParamType::Any => "CODE",
        },
    });
    if !p.description.is_empty() {
        input["subtitle"] = json!(p.description);
    }
    input
}

/// `objectType` → "Object type", `query` → "Query".
fn title_of(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else if c == '_' || c == '-' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// A custom webhook trigger of the build (`customTriggers`, compiled by a later version: its
/// recorded value is read for a name and description where it has them).
fn custom_definition(id: &str, t: &Value) -> Value {
    let text = |key: &str| t.get(key).and_then(Value::as_str);
    json!({
        "type": id,
        "triggerModel": "WEBHOOK",
        "title": text("name").or(text("title")).unwrap_or(id),
        "description": text("description").unwrap_or(""),
        "parameters": [],
    })
}

/// `HERMES/triggers/connect/{project}/{integrationId}/custom-triggers/{triggerId}?id=<credential>`,
/// the URL `getCustomWebhookUserManualUrl` gives: custom webhook triggers are not received by
/// this version, so every method answers why, in JSON.
async fn custom_webhook(
    Path((project, _integration, trigger)): Path<(String, String, String)>,
    State(state): State<Arc<AppState>>,
) -> ApiError {
    if project != state.project_id {
        return ApiError::not_found(format!(
            "this server serves project {}, not {project}",
            state.project_id
        ));
    }
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "custom_webhooks_unsupported",
        format!(
            "custom webhook trigger `{trigger}`: this Paragraph server does not receive custom \
             webhook triggers yet (a project's `triggers/*.ts` are not compiled); use a request \
             trigger (paragon.workflow) or an App Event (paragon.event) instead"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_read_as_titles() {
        assert_eq!(title_of("query"), "Query");
        assert_eq!(title_of("objectType"), "Object type");
        assert_eq!(title_of("record_type"), "Record type");
    }
}
