//! The Triggers API (Paragon ActionKit's `/trigger-subscriptions`): with a user's token, a
//! company subscribes that user to a catalog trigger type (no workflow), lists, reads, updates
//! and deletes the user's subscriptions, and asks for example payloads. Events are delivered by
//! `para_worker::deliveries`. A subscription is its user's alone: another user's id answers 404.
//!
//! Shapes follow Paragon's documentation where it gives them (the subscription object, the
//! list grouped by integration, `{success: true}` on delete, an array from
//! `POST /triggers/examples`); `integration` is also answered on each subscription, and
//! `webhookOverride` is answered as `{url, metadata}` (its headers may carry the company's
//! credentials and are never answered back).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use indexmap::IndexMap;
use para_store::trigger_subscriptions::{SubscriptionStatus, TriggerSubscription};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{find_integration, millis_iso};

/// The largest request body the Triggers API reads (a subscription is parameters and an
/// override: small).
pub const MAX_BODY: usize = 64 * 1024;
/// The most subscriptions one user may have.
const MAX_PER_USER: usize = 1_000;
/// The most example payloads answered.
const MAX_EXAMPLES: usize = 5;

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(examples))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// A trigger subscription, as Paragon answers it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    /// The trigger type (the catalog trigger's intent).
    #[serde(rename = "type")]
    pub kind: String,
    /// The integration's key.
    pub integration: String,
    /// The trigger's parameters.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// `ACTIVE`: receiving events. `ERRORED`: deliveries failed repeatedly; nothing is sent
    /// until the subscription is updated.
    pub status: &'static str,
    /// Why it is ERRORED (only then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub date_created: String,
    /// When an event was last recorded for it; `null` before the first.
    pub date_last_received_event: Option<String>,
    /// The account its events belong to.
    pub credential_id: String,
    /// Absent when the project's webhook URL is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_override: Option<OverrideView>,
}

/// A subscription's webhook override as answered (headers are not answered back).
#[derive(Serialize, ToSchema)]
pub struct OverrideView {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

fn view(s: &TriggerSubscription) -> Subscription {
    let override_view = s.webhook_override.as_ref().map(|o| OverrideView {
        url: o.get("url").and_then(Value::as_str).unwrap_or("").to_string(),
        metadata: o.get("metadata").cloned().filter(|m| !m.is_null()),
    });
    Subscription {
        id: s.id.clone(),
        kind: s.trigger_type.clone(),
        integration: s.integration.clone(),
        parameters: s.parameters.clone(),
        status: s.status.as_str(),
        error: s.error.clone().filter(|_| s.status == SubscriptionStatus::Errored),
        date_created: millis_iso(s.created_at),
        date_last_received_event: s.last_event_at.map(millis_iso),
        credential_id: s.credential_id.clone(),
        webhook_override: override_view,
    }
}

/// `GET /trigger-subscriptions`: the user's subscriptions by integration.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionList {
    pub triggers: IndexMap<String, Vec<Subscription>>,
}

/// `DELETE`'s answer.
#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub success: bool,
}

/// `POST /trigger-subscriptions`'s body, as documented (read by hand, so that each bad field
/// gets its own message).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct CreateBody {
    /// The integration's key (or id); optional when the type names one integration's trigger.
    integration: Option<String>,
    /// The trigger type (`GET /projects/{id}/triggers` lists them).
    #[serde(rename = "type")]
    kind: String,
    /// The trigger's parameters.
    #[schema(value_type = Option<Object>)]
    parameters: Option<Value>,
    /// Where this subscription's events go instead of the project's URL.
    webhook_override: Option<WebhookOverride>,
}

/// `{url, headers?, metadata?}`.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
struct WebhookOverride {
    /// An http(s) URL.
    url: String,
    /// Extra headers sent with each delivery.
    #[schema(value_type = Option<Object>)]
    headers: Option<Value>,
    /// Sent back in each payload as `triggerSubscriptionMetadata`.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

/// `PATCH`'s body: parameters are merged (a `null` value removes the key); `webhookOverride`
/// replaces the override (`null` removes it).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct UpdateBody {
    #[schema(value_type = Option<Object>)]
    parameters: Option<Value>,
    webhook_override: Option<WebhookOverride>,
}

/// `POST /triggers/examples`'s body.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
struct ExamplesBody {
    #[serde(rename = "type")]
    kind: String,
    integration: Option<String>,
    #[schema(value_type = Option<Object>)]
    parameters: Option<Value>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Integration keys, comma-separated: only their subscriptions.
    integrations: Option<String>,
    /// `ACTIVE` or `ERRORED`: only subscriptions with this status.
    status: Option<String>,
    /// Only subscriptions to this trigger type.
    #[serde(rename = "type")]
    kind: Option<String>,
}

const PROJECT_PARAM: &str = "The project's id (`projectId` in `.para/project.json`)";

/// The body as a JSON object, or a 400 saying what was expected.
fn object(body: &[u8], expected: &str) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(format!("the body must be a JSON object {expected}"))),
        Err(e) => Err(ApiError::bad_request(format!(
            "the body is not JSON ({e}); send a JSON object {expected}"
        ))),
    }
}

/// A text field: absent or `null` is `None`; anything but a string is a 400 naming it.
fn text_field(map: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => {
            Err(ApiError::bad_request(format!("`{key}` must be a string, not {}", kind_of(other))))
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The catalog trigger a type names, with the build's integration it belongs to.
fn find_trigger(
    state: &AppState,
    integration: Option<&str>,
    kind: &str,
) -> Result<(String, &'static para_catalog::Trigger), ApiError> {
    let build = state.build();
    let lists = |key: &str| {
        format!(
            "GET /projects/{}/triggers?integrations={key} lists its trigger types",
            state.project_id
        )
    };
    if let Some(name) = integration {
        let Some(i) = find_integration(&build, name).filter(|i| i.config.active) else {
            return Err(ApiError::bad_request(format!(
                "`integration`: no active integration `{name}` in this project"
            )));
        };
        let trigger =
            para_catalog::lookup(&i.key).and_then(|c| c.trigger(kind)).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`type`: {} has no trigger type `{kind}`; {}",
                    i.name,
                    lists(&i.key)
                ))
            })?;
        return Ok((i.key.clone(), trigger));
    }
    let found: Vec<(String, &'static para_catalog::Trigger)> = build
        .integrations
        .values()
        .filter(|i| i.config.active)
        .filter_map(|i| Some((i.key.clone(), para_catalog::lookup(&i.key)?.trigger(kind)?)))
        .collect();
    match found.len() {
        1 => Ok(found.into_iter().next().expect("one")),
        0 => Err(ApiError::bad_request(format!(
            "`type`: no integration of this project has a trigger type `{kind}`; GET /projects/{}/triggers lists them",
            state.project_id
        ))),
        _ => Err(ApiError::bad_request(format!(
            "`type` `{kind}` is a trigger of several integrations ({}): name one in `integration`",
            found.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Checks parameters against the trigger's: every key is one of its parameters (or matches a
/// prefix parameter), every required one is set.
fn check_parameters(
    trigger: &para_catalog::Trigger,
    parameters: &Map<String, Value>,
) -> Result<(), ApiError> {
    let known = |key: &str| {
        trigger.parameters.iter().any(|p| match p.name.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => p.name == key,
        })
    };
    for key in parameters.keys() {
        if !known(key) {
            let names: Vec<&str> = trigger.parameters.iter().map(|p| p.name.as_str()).collect();
            let takes = if names.is_empty() { "none".to_string() } else { names.join(", ") };
            return Err(ApiError::bad_request(format!(
                "`parameters.{key}` is not a parameter of {} (it takes: {takes})",
                trigger.intent
            )));
        }
    }
    for p in trigger.parameters.iter().filter(|p| p.required && !p.name.ends_with('*')) {
        let set = match parameters.get(&p.name) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(_) => true,
        };
        if !set {
            return Err(ApiError::bad_request(format!(
                "`parameters.{}` is required by {}{}",
                p.name,
                trigger.intent,
                if p.description.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", p.description)
                }
            )));
        }
    }
    Ok(())
}

/// Headers an override may not set: the signature and what the sender sets itself.
const RESERVED_HEADERS: [&str; 5] =
    ["x-paragon-signature", "content-type", "content-length", "host", "transfer-encoding"];

/// Reads `webhookOverride` (`null`: none) into what is stored.
fn read_override(value: &Value) -> Result<Option<Value>, ApiError> {
    let map = match value {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        other => {
            return Err(ApiError::bad_request(format!(
                "`webhookOverride` must be an object {{url, headers?, metadata?}} or null, not {}",
                kind_of(other)
            )));
        }
    };
    let url = text_field(map, "url")
        .map_err(|_| ApiError::bad_request("`webhookOverride.url` must be a string"))?
        .ok_or_else(|| {
            ApiError::bad_request("`webhookOverride.url` is required when `webhookOverride` is set")
        })?;
    let parsed = url::Url::parse(&url).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
    if parsed.is_none() {
        return Err(ApiError::bad_request(format!(
            "`webhookOverride.url` must be an http(s) URL, not `{url}`"
        )));
    }
    let mut headers = Map::new();
    match map.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(given)) => {
            for (name, value) in given {
                let Value::String(text) = value else {
                    return Err(ApiError::bad_request(format!(
                        "`webhookOverride.headers.{name}` must be a string, not {}",
                        kind_of(value)
                    )));
                };
                let valid_name = HeaderName::from_bytes(name.as_bytes()).is_ok();
                let valid_value = axum::http::HeaderValue::from_str(text).is_ok();
                if !valid_name || !valid_value {
                    return Err(ApiError::bad_request(format!(
                        "`webhookOverride.headers.{name}` is not a valid HTTP header"
                    )));
                }
                if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                    return Err(ApiError::bad_request(format!(
                        "`webhookOverride.headers.{name}`: para sets this header itself"
                    )));
                }
                headers.insert(name.clone(), value.clone());
            }
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`webhookOverride.headers` must be an object of strings, not {}",
                kind_of(other)
            )));
        }
    }
    let metadata = map.get("metadata").cloned().unwrap_or(Value::Null);
    Ok(Some(serde_json::json!({ "url": url, "headers": headers, "metadata": metadata })))
}

/// The 400 when nowhere is configured to deliver to.
fn no_destination() -> ApiError {
    ApiError::bad_request(
        "no webhook URL to deliver this subscription's events to: the server has no \
         PARA_TRIGGERS_WEBHOOK_URL, so pass `webhookOverride.url`",
    )
}

/// `POST /projects/{project}/trigger-subscriptions`: subscribes the token's user to a trigger
/// type with their account of the integration (`X-Paragon-Credential`, else the newest valid
/// one).
#[utoipa::path(
    post,
    path = "/projects/{project}/trigger-subscriptions",
    tag = "trigger-subscriptions",
    params(
        ("project" = String, Path, description = PROJECT_PARAM),
        ("X-Paragon-Credential" = Option<String>, Header, description = "The account to subscribe with when the user has several"),
    ),
    request_body = CreateBody,
    security(("user_token" = [])),
    responses(
        (status = 200, description = "The created subscription", body = Subscription),
        (status = 400, description = "A field is missing or wrong, or the user has not connected the integration", body = crate::error::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB", body = crate::error::ErrorBody),
    )
)]
async fn create(
    State(state): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Subscription>, ApiError> {
    let expected = "{\"integration\", \"type\", \"parameters\", \"webhookOverride\"?}";
    let map = object(&body, expected)?;
    let kind = text_field(&map, "type")?.filter(|t| !t.is_empty()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "`type` is required: the trigger type to subscribe to (GET /projects/{}/triggers lists them)",
            state.project_id
        ))
    })?;
    let named = text_field(&map, "integration")?.filter(|t| !t.is_empty());
    let (integration, trigger) = find_trigger(&state, named.as_deref(), &kind)?;
    let parameters = match map.get("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`parameters` must be an object, not {}",
                kind_of(other)
            )));
        }
    };
    check_parameters(trigger, &parameters)?;
    let webhook_override = read_override(map.get("webhookOverride").unwrap_or(&Value::Null))?;
    if webhook_override.is_none() && state.config.triggers_api.webhook_url.is_none() {
        return Err(no_destination());
    }
    let credential_id = account(&state, &user.user_id, &integration, &headers).await?;
    let existing =
        state.store.trigger_subscriptions(&state.project_id, &user.user_id, None).await?;
    if existing.len() >= MAX_PER_USER {
        return Err(ApiError::bad_request(format!(
            "this user has {MAX_PER_USER} trigger subscriptions, the most one user may have; delete some first"
        )));
    }
    let now = para_store::now_ms();
    let subscription = TriggerSubscription {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: state.project_id.clone(),
        user_id: user.user_id.clone(),
        integration,
        trigger_type: trigger.intent.clone(),
        parameters: Value::Object(parameters),
        credential_id,
        webhook_override,
        status: SubscriptionStatus::Active,
        failures: 0,
        error: None,
        last_event_at: None,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_trigger_subscription(&subscription).await?;
    Ok(Json(view(&subscription)))
}

/// The account a subscription acts with: the one `X-Paragon-Credential` names (the user's, of
/// the integration, valid), else the user's newest valid one.
async fn account(
    state: &AppState,
    user_id: &str,
    integration: &str,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    let credentials =
        state.store.credentials(&state.project_id, user_id, Some(integration)).await?;
    let valid = |c: &&para_store::Credential| c.status == para_store::CredentialStatus::Valid;
    if let Some(id) = crate::auth::selected_credential(headers) {
        let c = credentials.iter().find(|c| c.id == id).ok_or_else(|| {
            ApiError::bad_request(format!(
                "you have no {integration} credential `{id}` (X-Paragon-Credential)"
            ))
        })?;
        if !valid(&c) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "credential_not_valid",
                format!(
                    "the {integration} account `{id}` (X-Paragon-Credential) is {}: connect it again first",
                    c.status
                ),
            ));
        }
        return Ok(c.id.clone());
    }
    credentials.iter().find(valid).map(|c| c.id.clone()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "integration_not_enabled",
            format!(
                "Integration not enabled for user. Connect {integration} first (the Connect Portal, paragon.connect)."
            ),
        )
    })
}

/// `GET /projects/{project}/trigger-subscriptions`: the user's subscriptions, by integration
/// (with `X-Paragon-Credential`, only that account's).
#[utoipa::path(
    get,
    path = "/projects/{project}/trigger-subscriptions",
    tag = "trigger-subscriptions",
    params(
        ("project" = String, Path, description = PROJECT_PARAM),
        ("X-Paragon-Credential" = Option<String>, Header, description = "Only this account's subscriptions"),
        ListQuery,
    ),
    security(("user_token" = [])),
    responses(
        (status = 200, description = "The user's subscriptions, by integration", body = SubscriptionList),
        (status = 400, description = "A bad `status` filter", body = crate::error::ErrorBody),
    )
)]
async fn list(
    State(state): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<SubscriptionList>, ApiError> {
    let status = match query.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some("ACTIVE") => Some(SubscriptionStatus::Active),
        Some("ERRORED") => Some(SubscriptionStatus::Errored),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`status` must be ACTIVE or ERRORED, not `{other}`"
            )));
        }
    };
    let integrations: Vec<&str> = query
        .integrations
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let credential = crate::auth::selected_credential(&headers);
    let all = state.store.trigger_subscriptions(&state.project_id, &user.user_id, None).await?;
    let mut triggers: IndexMap<String, Vec<Subscription>> = IndexMap::new();
    for s in all.iter().filter(|s| {
        status.is_none_or(|want| s.status == want)
            && (integrations.is_empty() || integrations.contains(&s.integration.as_str()))
            && query.kind.as_deref().is_none_or(|k| k.trim() == s.trigger_type)
            && credential.is_none_or(|c| c == s.credential_id)
    }) {
        triggers.entry(s.integration.clone()).or_default().push(view(s));
    }
    Ok(Json(SubscriptionList { triggers }))
}

/// The user's subscription `id`, or a 404 (another user's is not found either).
async fn owned(state: &AppState, user_id: &str, id: &str) -> Result<TriggerSubscription, ApiError> {
    state
        .store
        .trigger_subscription(&state.project_id, user_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("you have no trigger subscription `{id}`")))
}

/// `GET /projects/{project}/trigger-subscriptions/{id}`.
#[utoipa::path(
    get,
    path = "/projects/{project}/trigger-subscriptions/{id}",
    tag = "trigger-subscriptions",
    params(
        ("project" = String, Path, description = PROJECT_PARAM),
        ("id" = String, Path, description = "The subscription's id"),
    ),
    security(("user_token" = [])),
    responses(
        (status = 200, description = "The subscription", body = Subscription),
        (status = 404, description = "The user has no such subscription", body = crate::error::ErrorBody),
    )
)]
async fn get_one(
    State(state): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path((_project, id)): Path<(String, String)>,
) -> Result<Json<Subscription>, ApiError> {
    Ok(Json(view(&owned(&state, &user.user_id, &id).await?)))
}

/// `PATCH /projects/{project}/trigger-subscriptions/{id}`: merges `parameters` (a `null` value
/// removes the key) and replaces `webhookOverride` (`null` removes it). A successful update
/// makes an ERRORED subscription ACTIVE again.
#[utoipa::path(
    patch,
    path = "/projects/{project}/trigger-subscriptions/{id}",
    tag = "trigger-subscriptions",
    params(
        ("project" = String, Path, description = PROJECT_PARAM),
        ("id" = String, Path, description = "The subscription's id"),
    ),
    request_body = UpdateBody,
    security(("user_token" = [])),
    responses(
        (status = 200, description = "The updated subscription (ACTIVE)", body = Subscription),
        (status = 400, description = "A field is wrong", body = crate::error::ErrorBody),
        (status = 404, description = "The user has no such subscription", body = crate::error::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB", body = crate::error::ErrorBody),
    )
)]
async fn update(
    State(state): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path((_project, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Subscription>, ApiError> {
    let current = owned(&state, &user.user_id, &id).await?;
    let map = object(&body, "{\"parameters\"?, \"webhookOverride\"?}")?;
    let mut parameters = current.parameters.as_object().cloned().unwrap_or_default();
    match map.get("parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Object(changes)) => {
            for (key, value) in changes {
                if value.is_null() {
                    parameters.remove(key);
                } else {
                    parameters.insert(key.clone(), value.clone());
                }
            }
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`parameters` must be an object, not {}",
                kind_of(other)
            )));
        }
    }
    let catalog =
        para_catalog::lookup(&current.integration).and_then(|c| c.trigger(&current.trigger_type));
    if let Some(trigger) = catalog {
        check_parameters(trigger, &parameters)?;
    }
    let webhook_override = match map.get("webhookOverride") {
        None => current.webhook_override.clone(),
        Some(value) => read_override(value)?,
    };
    if webhook_override.is_none() && state.config.triggers_api.webhook_url.is_none() {
        return Err(no_destination());
    }
    let updated = state
        .store
        .update_trigger_subscription(
            &state.project_id,
            &user.user_id,
            &id,
            &Value::Object(parameters),
            webhook_override.as_ref(),
        )
        .await?
        .ok_or_else(|| ApiError::not_found(format!("you have no trigger subscription `{id}`")))?;
    // Deliveries held while it was ERRORED may go now.
    para_worker::deliveries::wake(&state.worker);
    Ok(Json(view(&updated)))
}

/// `DELETE /projects/{project}/trigger-subscriptions/{id}`: removes it with its undelivered
/// events.
#[utoipa::path(
    delete,
    path = "/projects/{project}/trigger-subscriptions/{id}",
    tag = "trigger-subscriptions",
    params(
        ("project" = String, Path, description = PROJECT_PARAM),
        ("id" = String, Path, description = "The subscription's id"),
    ),
    security(("user_token" = [])),
    responses(
        (status = 200, description = "Removed", body = Deleted),
        (status = 404, description = "The user has no such subscription", body = crate::error::ErrorBody),
    )
)]
async fn delete(
    State(state): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path((_project, id)): Path<(String, String)>,
) -> Result<Json<Deleted>, ApiError> {
    if !state.store.delete_trigger_subscription(&state.project_id, &user.user_id, &id).await? {
        return Err(ApiError::not_found(format!("you have no trigger subscription `{id}`")));
    }
    Ok(Json(Deleted { success: true }))
}

/// `POST /projects/{project}/triggers/examples`: example payloads of a trigger type for the
/// user. A polling trigger's are the items its path answers now with the user's account (at
/// most 5); a webhook trigger's are the payloads last delivered to the user's subscriptions of
/// that type (none yet: an empty array).
#[utoipa::path(
    post,
    path = "/projects/{project}/triggers/examples",
    tag = "trigger-subscriptions",
    params(
        ("project" = String, Path, description = PROJECT_PARAM),
        ("X-Paragon-Credential" = Option<String>, Header, description = "The account to read examples with"),
    ),
    request_body = ExamplesBody,
    security(("user_token" = [])),
    responses(
        (status = 200, description = "Example payloads", body = Vec<Object>),
        (status = 400, description = "A field is wrong, or the user has not connected the integration", body = crate::error::ErrorBody),
        (status = 502, description = "The integration's API refused the poll", body = crate::error::ErrorBody),
    )
)]
async fn examples(
    State(state): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Vec<Value>>, ApiError> {
    let map = object(&body, "{\"type\", \"integration\", \"parameters\"?}")?;
    let kind = text_field(&map, "type")?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("`type` is required: the trigger type"))?;
    let named = text_field(&map, "integration")?.filter(|t| !t.is_empty());
    let (integration, trigger) = find_trigger(&state, named.as_deref(), &kind)?;
    let parameters = match map.get("parameters") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`parameters` must be an object, not {}",
                kind_of(other)
            )));
        }
    };
    let credential = account(&state, &user.user_id, &integration, &headers).await?;
    if let Some(polling) = &trigger.polling {
        let values = para_worker::deliveries::parameter_texts(&parameters);
        let items = para_worker::triggers::poll_items(
            &state.worker,
            &integration,
            polling,
            &user.user_id,
            Some(&credential),
            &values,
        )
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "upstream", e))?;
        return Ok(Json(items.into_iter().take(MAX_EXAMPLES).collect()));
    }
    let mine = state
        .store
        .trigger_subscriptions(&state.project_id, &user.user_id, Some(&integration))
        .await?;
    let mut out = Vec::new();
    for s in mine.iter().filter(|s| s.trigger_type == trigger.intent) {
        for d in state.store.trigger_deliveries(&state.project_id, &s.id, 100).await?.iter().rev() {
            if out.len() >= MAX_EXAMPLES {
                break;
            }
            if let Ok(body) = serde_json::from_str::<Value>(&d.body) {
                out.push(body.get("payload").cloned().unwrap_or(Value::Null));
            }
        }
    }
    Ok(Json(out))
}
