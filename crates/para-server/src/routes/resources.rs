//! The project's API resources (`src/resources/<name>/config.ts`, `Build::resources`) as the
//! SDK sees them: listed in `/sdk/me`'s `resources` (`SDKResourceState`), and connected per
//! user with `connectAction(slug, inputs)` → `POST /sdk/resources/{id}/connect`, which stores
//! the inputs the resource's `getAuthorizationConfig` names as a sealed credential of the
//! resource (integration key `resource:<id>`), tested like an integration's when the resource
//! has a GET `testRequestConfig`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use para_build::{Entry, Resource, Source};
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::SdkUser;
use crate::connect::{ConnectField, ConnectKind};
use crate::connector::{ApiSpec, Connector, Template};
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(connect))
}

/// The key a resource's credentials are stored under (never an integration's: integration
/// keys have no `:`).
pub fn credential_key(resource_id: &str) -> String {
    format!("resource:{resource_id}")
}

/// What `connectAction` takes: the resource's folder name (`src/resources/<slug>/config.ts`),
/// else its name lower-cased with runs of other characters made `-`.
pub fn slug(resource: &Resource) -> String {
    let folder = resource
        .source
        .strip_suffix("/config.ts")
        .and_then(|dir| dir.rsplit('/').next())
        .filter(|s| !s.is_empty());
    if let Some(folder) = folder {
        return folder.to_string();
    }
    let mut out = String::new();
    for c in resource.name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// `/sdk/me`'s `resources`: every resource of the build, with the user's credential of it
/// (the newest valid one, else the newest) when they connected it.
pub fn user_resources(
    build: &para_build::Build,
    credentials: &[para_store::Credential],
) -> Vec<ResourceState> {
    build
        .resources
        .values()
        .map(|r| {
            let key = credential_key(&r.id);
            let mine: Vec<&para_store::Credential> =
                credentials.iter().filter(|c| c.integration == key).collect();
            let active = mine
                .iter()
                .find(|c| c.status == para_store::CredentialStatus::Valid)
                .or(mine.first());
            ResourceState {
                id: r.id.clone(),
                slug: slug(r),
                name: r.name.clone(),
                integration_id: crate::views::integration_id(&key),
                credential_id: active.map(|c| c.id.clone()),
                credential_status: active.map(|c| c.status),
            }
        })
        .collect()
}

/// A resource in `/sdk/me` (`SDKResourceState`), with the user's credential of it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceState {
    pub id: String,
    /// What `connectAction` takes.
    pub slug: String,
    pub name: String,
    pub integration_id: String,
    /// Absent until the user connects it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::openapi::credential_status, nullable = false)]
    pub credential_status: Option<para_store::CredentialStatus>,
}

/// The longest value one input may have, in bytes.
const MAX_INPUT_LEN: usize = 4096;

/// `POST /sdk/resources/{id}/connect` with the resource's user inputs (`{apiKey: "…"}`): a
/// `Credential`, VALID or (its test request refused) INVALID with the reason. Connecting again
/// replaces the user's earlier credential of the resource.
#[utoipa::path(
    post,
    path = "/projects/{project}/sdk/resources/{resource}/connect",
    tag = "resources",
    params(
        ("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"),
        ("resource" = String, Path, description = "The resource's id (/sdk/me lists them)"),
    ),
    request_body(content = Object, description = "The resource's inputs, as text (`{apiKey: \"…\"}`)"),
    security(("user_token" = [])),
    responses((status = 200, description = "The credential, VALID or INVALID with the reason", body = crate::views::CredentialView))
)]
async fn connect(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
    Json(payload): Json<Value>,
) -> Result<Json<crate::views::CredentialView>, ApiError> {
    let build = state.build();
    let resource = build.resources.get(&id).ok_or_else(|| {
        ApiError::not_found(format!("no resource `{id}` in this project (/sdk/me lists them)"))
    })?;
    if resource.level != "user" {
        return Err(ApiError::bad_request(format!(
            "resource `{}` is app-level: it is authorised once with the project's own credentials, \
             there is nothing to connect per user",
            resource.name
        )));
    }
    let Value::Object(values) = payload else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object of the resource's inputs (connectAction's payload)",
        ));
    };
    let connector = resource_connector(resource).map_err(|why| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "resource_not_connectable", why)
    })?;
    check_inputs(resource, &connector.fields, &values)?;
    let material = crate::connector::Material { values, ..Default::default() };
    let credential =
        crate::connect::store_connection(&state, &user.user_id, &connector, material, Map::new())
            .await?;
    // One credential per user and resource: the earlier ones go.
    let (p, u) = (&state.project_id, &user.user_id);
    for old in state.store.credentials(p, u, Some(&connector.key)).await? {
        if old.id != credential.id {
            state.store.delete_credential(p, u, &old.id).await?;
        }
    }
    Ok(Json(crate::views::credential_json(&credential, None, &[], &[])))
}

/// Every declared input given as non-empty text of bounded length, nothing else.
fn check_inputs(
    resource: &Resource,
    fields: &[ConnectField],
    values: &Map<String, Value>,
) -> Result<(), ApiError> {
    let names = || fields.iter().map(|f| format!("`{}`", f.key)).collect::<Vec<_>>().join(", ");
    if let Some(unknown) = values.keys().find(|k| !fields.iter().any(|f| &f.key == *k)) {
        return Err(ApiError::bad_request(format!(
            "resource `{}` has no input `{unknown}`: it takes {}",
            resource.name,
            names()
        )));
    }
    for f in fields {
        let given = match values.get(&f.key) {
            None | Some(Value::Null) => "",
            Some(Value::String(v)) => v.as_str(),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "resource `{}`: `{}` must be text, not {other}",
                    resource.name, f.key
                )));
            }
        };
        if given.trim().is_empty() {
            return Err(ApiError::bad_request(format!(
                "resource `{}`: `{}` is required (it takes {})",
                resource.name,
                f.key,
                names()
            )));
        }
        if given.len() > MAX_INPUT_LEN {
            return Err(ApiError::bad_request(format!(
                "resource `{}`: `{}` is longer than {MAX_INPUT_LEN} bytes",
                resource.name, f.key
            )));
        }
    }
    Ok(())
}

/// A connector for the resource: its inputs (`getAuthorizationConfig`'s `userInputs`, and
/// any other `context.getInput` key its configs read), API base URL and authentication
/// (`getRequestConfig`), test request (`getTestRequestConfig`, GET only). Its
/// `context.getInput` references read the typed inputs. The reason when the build does not
/// say enough to connect it.
fn resource_connector(resource: &Resource) -> Result<Connector, String> {
    let config = |name: &str| resource.configs.get(name).map(inputs_as_values);
    let mut inputs: Vec<String> = Vec::new();
    if let Some(Value::Array(listed)) = resource
        .configs
        .get("authorizationConfig")
        .and_then(Source::as_value)
        .and_then(|v| v.get("userInputs"))
    {
        inputs.extend(listed.iter().filter_map(Value::as_str).map(str::to_string));
    }
    for source in resource.configs.values() {
        read_inputs(source, &mut inputs);
    }
    if inputs.is_empty() {
        return Err(format!(
            "resource `{}` names no user input: its getAuthorizationConfig returns no \
             `userInputs` and no config reads context.getInput(…), so there is nothing for \
             connectAction to store",
            resource.name
        ));
    }
    let request = config("requestConfig");
    let member = |source: Option<&Source>, name: &str| -> Option<Source> {
        match source? {
            Source::Object { entries } => {
                entries.iter().find(|e| e.key == name).map(|e| e.source.clone())
            }
            Source::Value { value } => value.get(name).map(|v| Source::Value { value: v.clone() }),
            _ => None,
        }
    };
    let base_url = member(request.as_ref(), "apiBaseUrl");
    let authentication = member(request.as_ref(), "authentication");
    let (mut headers, mut query, mut basic) = (Vec::new(), Vec::new(), None);
    if let Some(auth) = &authentication {
        let kind = member(Some(auth), "type")
            .and_then(|s| s.as_value().and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        match kind.as_str() {
            "auth_header" => headers = entries_of(member(Some(auth), "headers")),
            "query_params" => {
                query = entries_of(
                    member(Some(auth), "params").or_else(|| member(Some(auth), "queryParams")),
                );
            }
            "bearer" => {
                let token = member(Some(auth), "token").ok_or_else(|| {
                    format!("resource `{}`: bearer authentication without a `token`", resource.name)
                })?;
                headers.push((
                    "Authorization".to_string(),
                    Template::Source(Source::Tokenized {
                        parts: vec![Source::text("Bearer "), token],
                    }),
                ));
            }
            "basic" => {
                let user =
                    member(Some(auth), "username").or_else(|| member(Some(auth), "userName"));
                let password = member(Some(auth), "password");
                let (Some(user), Some(password)) = (user, password) else {
                    return Err(format!(
                        "resource `{}`: basic authentication needs `username` and `password`",
                        resource.name
                    ));
                };
                basic = Some((Template::Source(user), Template::Source(password)));
            }
            "none" | "" => {}
            other => {
                return Err(format!(
                    "resource `{}`: getRequestConfig's authentication type `{other}` is not one \
                     this server can send (auth_header, bearer, basic, query_params, none)",
                    resource.name
                ));
            }
        }
    }
    let test = config("testRequestConfig");
    let method = member(test.as_ref(), "method")
        .and_then(|s| s.as_value().and_then(Value::as_str).map(str::to_ascii_uppercase))
        .unwrap_or_else(|| "GET".into());
    let test_endpoint = if method == "GET" {
        headers.extend(entries_of(member(test.as_ref(), "headers")));
        query.extend(entries_of(member(test.as_ref(), "params")));
        member(test.as_ref(), "url").map(Template::Source)
    } else {
        None
    };
    if test_endpoint.is_some() && base_url.is_none() {
        return Err(format!(
            "resource `{}`: getRequestConfig has no `apiBaseUrl` for the test request",
            resource.name
        ));
    }
    let fields = inputs
        .into_iter()
        .map(|key| ConnectField {
            label: key.clone(),
            key,
            secret: true,
            required: true,
            placeholder: None,
            help: None,
            declared: None,
        })
        .collect();
    Ok(Connector {
        key: credential_key(&resource.id),
        name: resource.name.clone(),
        kind: ConnectKind::ApiKey,
        fields,
        post_fields: Vec::new(),
        oauth: None,
        api: ApiSpec {
            base_url: base_url.map(Template::Source),
            test_endpoint,
            headers,
            query,
            basic,
            account: None,
        },
        client_id: None,
        client_secret: None,
        api_base_override: None,
    })
}

/// An object source's members as (name, template) pairs.
fn entries_of(source: Option<Source>) -> Vec<(String, Template)> {
    match source {
        Some(Source::Object { entries }) => {
            entries.into_iter().map(|e| (e.key, Template::Source(e.source))).collect()
        }
        Some(Source::Value { value: Value::Object(map) }) => map
            .into_iter()
            .map(|(k, v)| (k, Template::Source(Source::Value { value: v })))
            .collect(),
        _ => Vec::new(),
    }
}

/// Adds the `context.getInput` keys `source` reads to `out` (once each).
fn read_inputs(source: &Source, out: &mut Vec<String>) {
    match source {
        Source::ResourceInput { key } if !out.contains(key) => out.push(key.clone()),
        Source::Tokenized { parts } | Source::Array { items: parts } => {
            parts.iter().for_each(|p| read_inputs(p, out));
        }
        Source::Object { entries } => entries.iter().for_each(|e| read_inputs(&e.source, out)),
        _ => {}
    }
}

/// `source` with its `context.getInput('k')` references as references to the typed value `k`
/// (the connector's templates read typed values as config inputs, checked strictly in URLs).
fn inputs_as_values(source: &Source) -> Source {
    match source {
        Source::ResourceInput { key } => {
            Source::ConfigInput { input_id: key.clone(), key: key.clone() }
        }
        Source::Tokenized { parts } => {
            Source::Tokenized { parts: parts.iter().map(inputs_as_values).collect() }
        }
        Source::Array { items } => {
            Source::Array { items: items.iter().map(inputs_as_values).collect() }
        }
        Source::Object { entries } => Source::Object {
            entries: entries
                .iter()
                .map(|e| Entry { key: e.key.clone(), source: inputs_as_values(&e.source) })
                .collect(),
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(source: &str, name: &str) -> Resource {
        Resource {
            id: "r1".into(),
            name: name.into(),
            level: "user".into(),
            source: source.into(),
            configs: Default::default(),
        }
    }

    #[test]
    fn slugs_are_folder_names_else_the_name() {
        assert_eq!(slug(&resource("src/resources/crm/config.ts", "Internal CRM")), "crm");
        assert_eq!(slug(&resource("", "Internal  CRM!")), "internal-crm");
    }

    #[test]
    fn a_resource_without_inputs_cannot_be_connected() {
        let why = resource_connector(&resource("src/resources/x/config.ts", "X")).unwrap_err();
        assert!(why.contains("userInputs"), "{why}");
    }
}
