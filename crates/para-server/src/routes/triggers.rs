//! The routes that start workflow runs: App Events (`POST /sdk/events/trigger`) and request
//! triggers (`POST /sdk/triggers/{workflow}`, with their endpoint validations). Which workflows
//! are active, and the triggers without a request (a new connection, cron, polling), are
//! `para_worker::triggers`'.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use para_build::{StepKind, Validation, Workflow};
use para_store::CredentialConfiguration;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::AuthUser;
use crate::engine::{self, Start, UserData};
use crate::error::ApiError;
use para_worker::triggers::{Active, Trigger, active_workflows, trigger_of};

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(event))
        .routes(routes!(event_v2))
        .routes(routes!(request_trigger))
}

/// An App Event's answer: the runs it started.
#[derive(Serialize, ToSchema)]
pub struct EventStarted {
    /// The event's name, as sent.
    pub event: String,
    /// The ids of the runs started (one per active workflow the event triggers).
    pub executions: Vec<String>,
}

/// A request trigger's run, when the workflow has no ResponseStep.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunStarted {
    pub execution_id: String,
}

/// A request trigger's run that did not answer within 60 seconds (202).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunStillRunning {
    pub execution_id: String,
    /// `RUNNING`.
    pub status: &'static str,
}

/// A request refused by the endpoint's validations (400).
#[derive(Serialize, ToSchema)]
pub struct ValidationFailed {
    /// `validation`.
    pub code: &'static str,
    pub message: String,
    /// One line per rule the request broke.
    pub errors: Vec<String>,
}

/// A request trigger's 400: refused by its validations, or another refusal.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum TriggerRefused {
    Validation(ValidationFailed),
    Refused(crate::error::ErrorBody<'static>),
}

/// What starts: the account a run acts with and the configuration it reads.
struct Chosen {
    integration: String,
    workflow: Workflow,
    credential_id: Option<String>,
    configuration_id: Option<String>,
}

/// The runs a trigger starts among the active workflows, by the account and configuration
/// its headers name (`X-Paragon-Credential`, `X-Paragon-Configuration-Id`):
/// - neither: every active entry (integration-level ones acting with the newest valid
///   account, made configurations with their credential);
/// - a credential: its integration's integration-level entries, acting with it;
/// - both: the entries of that configuration of that credential (its default one: as the
///   credential alone).
fn choose(
    headers: &HeaderMap,
    active: Vec<Active>,
    data: &UserData,
    rows: &[CredentialConfiguration],
) -> Result<Vec<Chosen>, ApiError> {
    let configuration = crate::routes::configurations::selected(headers);
    let credential = selected_account(headers, data)?;
    let wanted = match (credential, configuration) {
        (None, Some(c)) => {
            return Err(ApiError::bad_request(format!(
                "X-Paragon-Configuration-Id `{c}` needs the X-Paragon-Credential header naming its credential"
            )));
        }
        (None, None) => None,
        (Some(credential), configuration) => {
            let found = crate::routes::configurations::resolve(configuration, credential, rows)?;
            Some((credential, (!found.is_default).then_some(found.id)))
        }
    };
    Ok(active
        .into_iter()
        .filter(|a| match (&wanted, &a.configuration) {
            (None, _) => true,
            (Some((c, None)), None) => a.integration == c.integration,
            (Some((_, Some(id))), Some(made)) => &made.id == id,
            _ => false,
        })
        .map(|a| {
            let (credential_id, configuration_id) = match (a.configuration, &wanted) {
                (Some(made), _) => (Some(made.credential_id), Some(made.id)),
                (None, Some((c, _))) => (Some(c.id.clone()), None),
                (None, None) => (None, None),
            };
            Chosen {
                integration: a.integration,
                workflow: a.workflow,
                credential_id,
                configuration_id,
            }
        })
        .collect())
}

/// The account a trigger names in `X-Paragon-Credential` (`selectedCredentialId` of
/// `paragon.workflow()` / `paragon.event()`): one of the user's valid credentials, returned with
/// its integration. `None` without the header.
fn selected_account<'d>(
    headers: &HeaderMap,
    data: &'d UserData,
) -> Result<Option<&'d para_store::Credential>, ApiError> {
    let Some(id) = crate::auth::selected_credential(headers) else { return Ok(None) };
    let credential = data.credentials.iter().find(|c| c.id == id).ok_or_else(|| {
        ApiError::not_found(format!("you have no credential `{id}` (X-Paragon-Credential)"))
    })?;
    if credential.status != para_store::CredentialStatus::Valid {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "credential_not_valid",
            format!(
                "the {} account `{id}` (X-Paragon-Credential) is {}: connect it again first",
                credential.integration, credential.status
            ),
        ));
    }
    Ok(Some(credential))
}

/// An App Event's body (`paragon.event(name, payload)`).
#[derive(serde::Deserialize, ToSchema)]
struct EventBody {
    /// The event's name (or id).
    name: String,
    /// The event's data, the trigger's output (any JSON).
    #[serde(default)]
    payload: Value,
}

/// `POST /v2/projects/{id}/sdk/events/trigger {name, payload}`: a run of every active workflow
/// of the user whose trigger is that event. Answers once the runs are recorded.
#[utoipa::path(
    post,
    path = "/projects/{project}/sdk/events/trigger",
    tag = "triggers",
    params(
        ("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"),
        ("X-Paragon-Credential" = Option<String>, Header, description = "Only the workflows of this account"),
        ("X-Paragon-Configuration-Id" = Option<String>, Header, description = "Only the workflows of this configuration of the account"),
    ),
    request_body = EventBody,
    security(("user_token" = [])),
    responses((status = 200, description = "The runs started", body = EventStarted))
)]
async fn event(
    State(state): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    body: Result<Json<EventBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON {{\"name\", \"payload\"}}: {}",
            e.body_text()
        ))
    })?;
    let name = body.name.trim();
    let (active, data, rows) = active_workflows(
        &state.worker,
        &user.user_id,
        &user.meta,
        |w| matches!(trigger_of(w), Trigger::Event { id, name: n } if n == name || id == name),
    )
    .await?;
    let mut executions = Vec::new();
    for chosen in choose(&headers, active, &data, &rows)? {
        let start = Start {
            user_id: user.user_id.clone(),
            integration: chosen.integration,
            workflow_id: chosen.workflow.id.clone(),
            trigger_kind: "event".into(),
            trigger_output: body.payload.clone(),
            user: Some(data.clone()),
            credential_id: chosen.credential_id,
            configuration_id: chosen.configuration_id,
        };
        executions.push(engine::start_run(&state.worker, start, false).await?.run_id);
    }
    Ok(Json(EventStarted { event: name.to_string(), executions }).into_response())
}

/// The same as [`event`], at the path the SDK's v2 calls.
#[utoipa::path(
    post,
    path = "/v2/projects/{project}/sdk/events/trigger",
    tag = "triggers",
    params(
        ("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"),
        ("X-Paragon-Credential" = Option<String>, Header, description = "Only the workflows of this account"),
        ("X-Paragon-Configuration-Id" = Option<String>, Header, description = "Only the workflows of this configuration of the account"),
    ),
    request_body = EventBody,
    security(("user_token" = [])),
    responses((status = 200, description = "The runs started", body = EventStarted))
)]
async fn event_v2(
    state: State<Arc<AppState>>,
    user: AuthUser,
    headers: HeaderMap,
    body: Result<Json<EventBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    event(state, user, headers, body).await
}

/// Whether a request header goes into the run's trigger output (stored with the run, shown in
/// its history). The user token and cookies never do; other credential-bearing headers
/// (`Proxy-Authorization`, `X-Api-Key`, anything naming a token, secret, password, session or
/// key) only when the endpoint declares them in `headerValidations`, i.e. the workflow reads
/// them.
fn kept_header(name: &str, declared: &[Validation]) -> bool {
    if matches!(name, "authorization" | "cookie") {
        return false;
    }
    let credential = name == "proxy-authorization"
        || name.ends_with("-key")
        || name.ends_with("apikey")
        || ["token", "secret", "password", "session", "auth", "credential"]
            .iter()
            .any(|word| name.contains(word));
    !credential || declared.iter().any(|v| v.key.eq_ignore_ascii_case(name))
}

/// Why a request does not satisfy the endpoint's validations, one line per rule. Without
/// `allowArbitraryPayload`, the body must be an object of declared fields only (headers and
/// query parameters are never limited: clients and proxies add their own).
pub fn validate_request(
    params: &[Validation],
    headers: &[Validation],
    body_rules: &[Validation],
    allow_arbitrary_payload: bool,
    query: &Map<String, Value>,
    header_map: &HeaderMap,
    body: &Value,
) -> Vec<String> {
    let mut problems = Vec::new();
    if !allow_arbitrary_payload {
        match body {
            Value::Object(fields) => {
                let unexpected: Vec<String> = fields
                    .keys()
                    .filter(|k| !body_rules.iter().any(|r| &r.key == *k))
                    .map(|k| format!("`{k}`"))
                    .collect();
                if !unexpected.is_empty() {
                    let declared = if body_rules.is_empty() {
                        "it declares none".to_string()
                    } else {
                        let names: Vec<String> =
                            body_rules.iter().map(|r| format!("`{}`", r.key)).collect();
                        format!("it declares {}", names.join(", "))
                    };
                    let (fields, are) =
                        if unexpected.len() == 1 { ("field", "is") } else { ("fields", "are") };
                    problems.push(format!(
                        "body {fields} {} {are} not declared by the endpoint ({declared}; set `allowArbitraryPayload: true` to accept any)",
                        unexpected.join(", "),
                    ));
                }
            }
            _ => problems.push(
                "the body must be a JSON object of the endpoint's declared fields (set `allowArbitraryPayload: true` to accept any)"
                    .to_string(),
            ),
        }
    }
    for rule in params.iter().filter(|r| r.required) {
        if query.get(&rule.key).is_none_or(|v| v.as_str() == Some("")) {
            problems.push(format!("query parameter `{}` is required", rule.key));
        }
    }
    for rule in headers.iter().filter(|r| r.required) {
        if !header_map.contains_key(rule.key.to_ascii_lowercase().as_str()) {
            problems.push(format!("header `{}` is required", rule.key));
        }
    }
    for rule in body_rules {
        match body.get(&rule.key) {
            None | Some(Value::Null) => {
                if rule.required {
                    problems.push(format!("body field `{}` is required", rule.key));
                }
            }
            Some(value) => {
                let ok = match rule.data_type.as_deref().map(str::to_ascii_uppercase).as_deref() {
                    Some("STRING") => value.is_string(),
                    Some("NUMBER") => value.is_number(),
                    Some("BOOLEAN") => value.is_boolean(),
                    Some("OBJECT") => value.is_object(),
                    Some("ARRAY") => value.is_array(),
                    _ => true,
                };
                if !ok {
                    let expected = rule.data_type.as_deref().unwrap_or("").to_ascii_lowercase();
                    problems.push(format!("body field `{}` must be of type {expected}", rule.key));
                }
            }
        }
    }
    problems
}

/// `POST /projects/{id}/sdk/triggers/{workflowId}`: validates the request against the
/// endpoint's rules, runs the workflow, and answers with its ResponseStep (or, without one,
/// once the run is recorded).
#[utoipa::path(
    post,
    path = "/projects/{project}/sdk/triggers/{workflow}",
    tag = "triggers",
    params(
        ("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"),
        ("workflow" = String, Path, description = "The workflow's id"),
        ("X-Paragon-Credential" = Option<String>, Header, description = "The account the run acts with"),
        ("X-Paragon-Configuration-Id" = Option<String>, Header, description = "The configuration the run reads"),
    ),
    request_body(content = Option<Object>, description = "The request the workflow's endpoint receives (any JSON; its query and headers too)"),
    security(("user_token" = [])),
    responses(
        (status = 200, description = "The workflow's ResponseStep body (any JSON, with the step's status, and `X-Para-Execution-Id`), or `{executionId}` for a workflow without one", body = Value),
        (status = 202, description = "The workflow did not answer within 60 seconds", body = RunStillRunning),
        (status = 400, description = "The request broke the endpoint's validations, or the workflow does not run for the user", body = TriggerRefused),
    )
)]
async fn request_trigger(
    State(state): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path((_project, workflow_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (integration, workflow) =
        engine::find_workflow(&state.worker, &workflow_id).ok_or_else(|| {
            ApiError::not_found(format!("no workflow `{workflow_id}` in this project"))
        })?;
    let Some(StepKind::Endpoint {
        allow_arbitrary_payload,
        param_validations,
        header_validations,
        body_validations,
    }) = workflow.steps.iter().find(|s| Some(&s.id) == workflow.trigger.as_ref()).map(|s| &s.kind)
    else {
        return Err(ApiError::bad_request(format!(
            "workflow `{}` is not triggered by requests (its trigger is not an EndpointStep)",
            workflow.name
        )));
    };
    let (active, data, rows) =
        active_workflows(&state.worker, &user.user_id, &user.meta, |w| w.id == workflow.id).await?;
    if let Some(c) = selected_account(&headers, &data)?
        && c.integration != integration
    {
        return Err(ApiError::bad_request(format!(
            "credential `{}` (X-Paragon-Credential) is a {} account, but workflow `{}` belongs to {integration}",
            c.id, c.integration, workflow.name
        )));
    }
    // One run: the integration-level one when it is on, else the first configuration's.
    let Some(chosen) = choose(&headers, active, &data, &rows)?.into_iter().next() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "workflow_not_enabled",
            format!(
                "workflow `{}` does not run for user `{}`{}: connect {integration} and enable it first",
                workflow.name,
                user.user_id,
                match crate::routes::configurations::selected(&headers) {
                    Some(c) => format!(" in configuration `{c}`"),
                    None => String::new(),
                }
            ),
        ));
    };
    let body: Value = if body.is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not JSON: {e}")))?
    };
    let query: Map<String, Value> = query.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    let problems = validate_request(
        param_validations,
        header_validations,
        body_validations,
        *allow_arbitrary_payload,
        &query,
        &headers,
        &body,
    );
    if !problems.is_empty() {
        let message =
            format!("the request does not match the workflow's endpoint: {}", problems.join("; "));
        let refused = ValidationFailed { code: "validation", message, errors: problems };
        return Ok((StatusCode::BAD_REQUEST, Json(refused)).into_response());
    }
    let header_json: Map<String, Value> = headers
        .iter()
        .filter(|(k, _)| kept_header(k.as_str(), header_validations))
        .filter_map(|(k, v)| Some((k.as_str().to_string(), Value::String(v.to_str().ok()?.into()))))
        .collect();
    let trigger_output =
        json!({ "request": { "headers": header_json, "body": body, "params": query } });
    let start = Start {
        user_id: user.user_id.clone(),
        integration,
        workflow_id: workflow.id.clone(),
        trigger_kind: "request".into(),
        trigger_output,
        user: Some(data),
        credential_id: chosen.credential_id,
        configuration_id: chosen.configuration_id,
    };
    let responds = engine::responds(&workflow);
    let started = engine::start_run(&state.worker, start, responds).await?;
    let Some(answer) = started.response else {
        return Ok(Json(RunStarted { execution_id: started.run_id }).into_response());
    };
    let answer = match tokio::time::timeout(Duration::from_secs(60), answer).await {
        Ok(Ok(answer)) => answer,
        // The run stopped without answering: it could not be recorded.
        Ok(Err(_)) => return Err(para_worker::Error::NotRecorded.into()),
        Err(_) => {
            let running = RunStillRunning { execution_id: started.run_id, status: "RUNNING" };
            return Ok((StatusCode::ACCEPTED, Json(running)).into_response());
        }
    };
    let status = answer
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    let body = answer.get("body").cloned().unwrap_or(Value::Null);
    let mut response = (status, Json(body)).into_response();
    if let Ok(id) = axum::http::HeaderValue::from_str(&started.run_id) {
        response.headers_mut().insert("x-para-execution-id", id);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_validations_name_each_failed_rule() {
        let rule = |key: &str, required: bool, data_type: Option<&str>| Validation {
            key: key.into(),
            required,
            data_type: data_type.map(str::to_string),
        };
        let problems = validate_request(
            &[rule("since", true, None)],
            &[rule("X-Request-Id", true, None)],
            &[rule("title", true, Some("STRING")), rule("tags", false, Some("ARRAY"))],
            true,
            &Map::new(),
            &HeaderMap::new(),
            &json!({ "tags": "a", "extra": 1 }),
        );
        assert_eq!(
            problems,
            [
                "query parameter `since` is required",
                "header `X-Request-Id` is required",
                "body field `title` is required",
                "body field `tags` must be of type array",
            ]
        );
    }

    #[test]
    fn credential_bearing_headers_are_not_stored_unless_declared() {
        let declared = [Validation { key: "X-Api-Key".into(), required: true, data_type: None }];
        for name in [
            "authorization",
            "cookie",
            "proxy-authorization",
            "x-auth-token",
            "x-session-id",
            "api-key",
            "x-client-secret",
            "x-apikey",
            "x-access-token",
        ] {
            assert!(!kept_header(name, &[]), "{name} kept");
        }
        assert!(kept_header("x-api-key", &declared), "declared: the workflow reads it");
        assert!(!kept_header(
            "authorization",
            &[Validation { key: "Authorization".into(), required: true, data_type: None }]
        ));
        for name in ["content-type", "x-request-id", "user-agent", "x-hub-signature-256"] {
            assert!(kept_header(name, &[]), "{name} dropped");
        }
    }

    #[test]
    fn without_arbitrary_payload_undeclared_body_fields_are_named() {
        let rules = [Validation { key: "title".into(), required: true, data_type: None }];
        let check = |rules: &[Validation], body: Value| {
            validate_request(&[], &[], rules, false, &Map::new(), &HeaderMap::new(), &body)
        };
        assert!(check(&rules, json!({ "title": "x" })).is_empty());
        assert_eq!(
            check(&rules, json!({ "title": "x", "admin": true, "role": "owner" })),
            [
                "body fields `admin`, `role` are not declared by the endpoint (it declares `title`; set `allowArbitraryPayload: true` to accept any)"
            ]
        );
        assert_eq!(
            check(&[], json!({ "a": 1 })),
            [
                "body field `a` is not declared by the endpoint (it declares none; set `allowArbitraryPayload: true` to accept any)"
            ]
        );
        assert!(check(&[], json!({})).is_empty());
        assert_eq!(check(&rules, json!(["title"])).len(), 2, "not an object, and no title");
    }
}
