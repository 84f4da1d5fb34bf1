//! The trigger types the SDK's `getTriggers(type)` lists (`GET /projects/{id}/triggers?
//! integrations=…`, on `API_TRIGGER_KIT_PUBLIC_URL`): each integration's catalog triggers,
//! polling and webhook, and the project's custom webhook triggers, in the SDK's
//! `GetTriggerTypesResponse` shape. The URL `getCustomWebhookUserManualUrl` forms is received
//! in `webhooks.rs`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::SdkUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::find_integration;

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(trigger_types))
}

/// The SDK's `GetTriggerTypesResponse`.
#[derive(Serialize, ToSchema)]
pub struct TriggerTypes {
    /// By the integration name asked (or every active integration's key).
    pub triggers: IndexMap<String, Vec<TriggerDefinition>>,
    /// The names the project does not serve; absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<TriggerTypeError>>,
}

/// A name `getTriggers` asked for that the project does not serve.
#[derive(Serialize, ToSchema)]
pub struct TriggerTypeError {
    /// The name as asked.
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

/// A trigger type, as the SDK's `TriggerDefinition`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerDefinition {
    /// The trigger's intent (a catalog trigger) or id (a custom webhook trigger).
    #[serde(rename = "type")]
    pub kind: String,
    /// The code handle `integration.triggers.<name>` takes (catalog triggers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `POLLING` or `WEBHOOK`.
    pub trigger_model: &'static str,
    pub title: String,
    pub description: String,
    pub parameters: Vec<TriggerParameter>,
}

/// A trigger parameter, as the SDK's `IntentInputKeyConfig`.
#[derive(Serialize, ToSchema)]
pub struct TriggerParameter {
    pub id: String,
    pub title: String,
    pub required: bool,
    /// `TEXT`, `NUMBER`, `BOOLEAN_INPUT` or `CODE`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
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
#[utoipa::path(
    get,
    path = "/projects/{project}/triggers",
    tag = "trigger-types",
    params(
        ("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"),
        TriggerQuery,
    ),
    security(("user_token" = [])),
    responses((status = 200, description = "The trigger types, by integration", body = TriggerTypes))
)]
async fn trigger_types(
    State(state): State<Arc<AppState>>,
    _user: SdkUser,
    Query(query): Query<TriggerQuery>,
) -> Result<Json<TriggerTypes>, ApiError> {
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
    let mut triggers = IndexMap::new();
    let mut errors = Vec::new();
    if named.is_empty() {
        for integration in build.integrations.values().filter(|i| i.config.active) {
            triggers.insert(integration.key.clone(), definitions(integration));
        }
    }
    for name in named {
        let refused = |message| TriggerTypeError { kind: name.to_string(), message };
        match find_integration(&build, name) {
            Some(i) if i.config.active => {
                triggers.insert(name.to_string(), definitions(i));
            }
            Some(i) => errors.push(refused(format!(
                "{} is not active in this project (config.ts `active: false`)",
                i.name
            ))),
            None => errors.push(refused(format!("no integration `{name}` in this project"))),
        }
    }
    let errors = (!errors.is_empty()).then_some(errors);
    Ok(Json(TriggerTypes { triggers, errors }))
}

/// An integration's trigger types: the catalog's (polling and webhook), then the project's
/// custom webhook triggers.
fn definitions(integration: &para_build::Integration) -> Vec<TriggerDefinition> {
    let mut out: Vec<TriggerDefinition> = para_catalog::lookup(&integration.key)
        .map(|c| c.triggers.iter().map(catalog_definition).collect())
        .unwrap_or_default();
    out.extend(integration.custom_triggers.iter().map(|(id, t)| custom_definition(id, t)));
    out
}

/// A catalog trigger as a `TriggerDefinition`: `type` is its intent (Paragon's trigger type),
/// `name` the code handle `integration.triggers.<name>` takes.
fn catalog_definition(t: &para_catalog::Trigger) -> TriggerDefinition {
    TriggerDefinition {
        kind: t.intent.clone(),
        name: Some(t.name.clone()),
        trigger_model: match t.kind {
            para_catalog::TriggerKind::Polling => "POLLING",
            para_catalog::TriggerKind::Webhook => "WEBHOOK",
        },
        title: t.title.clone(),
        description: t.description.clone(),
        // A prefix parameter (`field-*`) stands for many keys, not one input.
        parameters: t.parameters.iter().filter(|p| !p.name.ends_with('*')).map(parameter).collect(),
    }
}

/// A trigger parameter as the SDK's `IntentInputKeyConfig`.
fn parameter(p: &para_catalog::Parameter) -> TriggerParameter {
    use para_catalog::ParamType;
    TriggerParameter {
        id: p.name.clone(),
        title: title_of(&p.name),
        required: p.required,
        kind: match p.ty {
            ParamType::String => "TEXT",
            ParamType::Number => "NUMBER",
            ParamType::Boolean => "BOOLEAN_INPUT",
            ParamType::Object | ParamType::Array | ParamType::Any => "CODE",
        },
        subtitle: (!p.description.is_empty()).then(|| p.description.clone()),
    }
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

/// A custom webhook trigger of the build (`customTriggers`, a `triggers/*.ts` file): `type` is
/// its id (what `CustomTriggerStep` and its webhook URL name), the title its `name`. Custom
/// triggers take no parameters: what they start on is the file's `filters`.
fn custom_definition(id: &str, t: &para_build::CustomTrigger) -> TriggerDefinition {
    TriggerDefinition {
        kind: id.to_string(),
        name: None,
        trigger_model: "WEBHOOK",
        title: t.name.clone(),
        description: t.description.clone().unwrap_or_default(),
        parameters: Vec::new(),
    }
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
