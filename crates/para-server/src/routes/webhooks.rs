//! Receiving providers' webhooks: `/webhooks/{project}/{integration}` (the app-level URL the
//! company configures in the provider's console) and `/webhooks/{project}/{integration}/{hook}`
//! (a per-account URL para registered or handed out; its last part is a random secret).
//!
//! A request is answered only after its events are committed: the provider's handshake is
//! answered at once; otherwise the signature is checked as the catalog's `[webhooks]` says
//! (refusals are counted and answered 401, nothing is stored), each event is recorded once
//! (a redelivery of the same event id records nothing), and then 200. The dispatcher in
//! `para_worker::webhooks` turns recorded events into runs.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use para_connect::webhooks::{self as receive, Handshake, Incoming, Refused};
use para_store::webhooks::NewWebhookEvent;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(app_level))
        .routes(routes!(per_account))
        .routes(routes!(custom_trigger))
}

/// What a delivery recorded.
#[derive(Serialize, ToSchema)]
pub struct Received {
    /// Events recorded now (each starts its runs shortly).
    pub accepted: usize,
    /// Events recorded before (a redelivery): they start nothing again.
    pub duplicates: usize,
}

/// A provider's webhook to the integration's app-level URL (the one configured in the
/// provider's console; events are routed by the account they name).
#[utoipa::path(
    method(get, post, put),
    path = "/webhooks/{project}/{integration}",
    tag = "webhooks",
    params(
        ("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"),
        ("integration" = String, Path, description = "The integration's key"),
    ),
    request_body(content = Option<Object>, description = "The provider's event, as it sends it (signed as its catalog entry says)"),
    responses(
        (status = 200, description = "The events were recorded, or the provider's URL check answered (its own text or JSON)", body = Received),
        (status = 400, description = "Not an event (a GET that is no URL check)", body = crate::error::ErrorBody),
        (status = 401, description = "Unsigned, badly signed, replayed or too old; nothing was recorded", body = crate::error::ErrorBody),
        (status = 404, description = "Another project, or an integration that receives no webhooks", body = crate::error::ErrorBody),
    )
)]
async fn app_level(
    State(state): State<Arc<AppState>>,
    Path((project, integration)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive_webhook(&state, &project, &integration, None, &method, &uri, &headers, &body).await
}

/// A provider's webhook to a per-account URL (registered with the provider for a user's
/// workflow, or pasted by the user): its events belong to that account.
#[utoipa::path(
    method(get, post, put),
    path = "/webhooks/{project}/{integration}/{hook}",
    tag = "webhooks",
    params(
        ("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"),
        ("integration" = String, Path, description = "The integration's key"),
        ("hook" = String, Path, description = "The URL's secret id"),
    ),
    request_body(content = Option<Object>, description = "The provider's event, as it sends it"),
    responses(
        (status = 200, description = "The events were recorded, or the provider's URL check answered", body = Received),
        (status = 400, description = "Not an event (a GET that is no URL check)", body = crate::error::ErrorBody),
        (status = 401, description = "Unsigned, badly signed, replayed or too old; nothing was recorded", body = crate::error::ErrorBody),
        (status = 404, description = "Another project, an integration that receives no webhooks, or no such URL", body = crate::error::ErrorBody),
    )
)]
async fn per_account(
    State(state): State<Arc<AppState>>,
    Path((project, integration, hook)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive_webhook(&state, &project, &integration, Some(&hook), &method, &uri, &headers, &body)
        .await
}

#[allow(clippy::too_many_arguments)]
async fn receive_webhook(
    state: &AppState,
    project: &str,
    integration: &str,
    hook_id: Option<&str>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if project != state.project_id {
        return ApiError::not_found(format!(
            "this server serves project {}, not {project}",
            state.project_id
        ))
        .into_response();
    }
    let served = state.build().integrations.contains_key(integration);
    let Some(spec) =
        para_catalog::lookup(integration).and_then(|c| c.webhooks.as_ref()).filter(|_| served)
    else {
        return ApiError::not_found(format!(
            "integration `{integration}` receives no webhooks in this project (it is not in the build, or its catalog entry has no webhook triggers)"
        ))
        .into_response();
    };
    // Counted once the integration is known to be served: a path naming anything else would
    // make a label of a stranger's choosing.
    let metrics = &state.telemetry.metrics;
    metrics.webhook_requests.inc(&[integration]);
    let hook = match hook_id {
        None => None,
        Some(id) => match state.store.hook(&state.project_id, id).await {
            Ok(Some(h)) if h.integration == integration && h.status != "removed" => Some(h),
            Ok(_) => {
                state.count_refusal(integration, "unknown_url");
                return ApiError::not_found("no such webhook URL (it was removed, or never made)")
                    .into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    let (header_list, query) = request_parts(headers, uri);
    let path_and_query = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let url = format!("{}{path_and_query}", state.config.public_url.trim_end_matches('/'));
    let request =
        Incoming { method: method.as_str(), url: &url, headers: &header_list, query: &query, body };
    let mut verification = false;
    match receive::unsigned_handshake(spec, &request) {
        Some(Handshake::Keep) => verification = true,
        Some(answer) => return handshake(answer),
        None => {}
    }
    let refuse = |refused: Refused| {
        state.count_refusal(integration, refused.reason());
        tracing::warn!(integration, reason = refused.reason(), "a webhook was refused: {refused}");
        ApiError::new(StatusCode::UNAUTHORIZED, "webhook_refused", refused.to_string())
            .into_response()
    };
    if spec.level == para_catalog::WebhookLevel::User && hook.is_none() {
        return refuse(Refused::NeedsAccountUrl);
    }
    if !verification {
        let secret =
            match receive::secret(&state.connect, integration, &spec.signature, hook.as_ref()) {
                Ok(s) => s,
                Err(refused) => return refuse(refused),
            };
        let now = para_store::now_ms() / 1000;
        if let Err(refused) = receive::verify(&spec.signature, secret.as_deref(), &request, now) {
            return refuse(refused);
        }
        if let Some(answer) = receive::signed_handshake(spec, &request, secret.as_deref()) {
            return handshake(answer);
        }
    }
    if *method == Method::GET {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_an_event",
            "webhook events are sent with POST; a GET is answered only as the provider's URL check",
        )
        .into_response();
    }
    let kept = serde_json::Value::Object(receive::kept_headers(&header_list));
    let events: Vec<NewWebhookEvent> = receive::events(spec, &request)
        .into_iter()
        .map(|e| NewWebhookEvent {
            project_id: state.project_id.clone(),
            integration: integration.to_string(),
            hook: hook_id.unwrap_or("").to_string(),
            dedupe_key: e.key,
            // Kept for the admin to read; no trigger listens to it. The token is the secret the
            // provider will sign with: it is sealed like every secret at rest.
            event_type: if verification { "verification".into() } else { e.kind },
            account: e.account,
            body: if verification { sealed_verification(state, &e.body) } else { e.body },
            headers: kept.clone(),
        })
        .collect();
    let recorded = match state.store.insert_webhook_events(&events).await {
        Ok(r) => r,
        // Not acknowledged: the provider delivers it again.
        Err(e) => return ApiError::from(e).into_response(),
    };
    let accepted = recorded.iter().filter(|new| **new).count();
    metrics.webhook_events_accepted.get(&[integration]).add(accepted as u64);
    metrics.webhook_events_duplicate.get(&[integration]).add((recorded.len() - accepted) as u64);
    if accepted > 0 {
        para_worker::webhooks::wake(&state.worker);
    }
    axum::Json(Received { accepted, duplicates: recorded.len() - accepted }).into_response()
}

/// A custom webhook trigger's URL (`getCustomWebhookUserManualUrl`):
/// `/triggers/connect/{project}/{integration}/custom-triggers/{trigger}?id=<credential>`. A
/// user-level trigger's requests belong to the credential `id` names; an app-level trigger's to
/// the credentials whose provider id the request holds (`mapPayload.providerId`). A request that
/// does not pass the trigger's `filters` is answered 200 and starts nothing. The URL is the
/// SDK's, so it carries no secret of its own: the credential id is its only proof.
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/triggers/connect/{project}/{integration}/custom-triggers/{trigger}",
    tag = "webhooks",
    params(
        ("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"),
        ("integration" = String, Path, description = "The integration's id (or key)"),
        ("trigger" = String, Path, description = "The custom webhook trigger's id"),
        ("id" = Option<String>, Query, description = "The credential a user-level trigger's requests belong to"),
    ),
    request_body(content = Option<Object>, description = "Whatever the app sends (JSON, a form, or text)"),
    responses(
        (status = 200, description = "Recorded (or filtered out: nothing recorded)", body = Received),
        (status = 400, description = "An app-level trigger's request names no account, or the trigger's filters cannot be evaluated", body = crate::error::ErrorBody),
        (status = 404, description = "Another project, no such integration, trigger or credential", body = crate::error::ErrorBody),
    )
)]
async fn custom_trigger(
    State(state): State<Arc<AppState>>,
    Path((project, integration, trigger)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match receive_custom(&state, &project, &integration, &trigger, &method, &uri, &headers, &body)
        .await
    {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn receive_custom(
    state: &AppState,
    project: &str,
    integration: &str,
    trigger_id: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    if project != state.project_id {
        return Err(ApiError::not_found(format!(
            "this server serves project {}, not {project}",
            state.project_id
        )));
    }
    let build = state.build();
    let found = crate::views::find_integration(&build, integration).ok_or_else(|| {
        ApiError::not_found(format!("no integration `{integration}` in this project"))
    })?;
    let trigger = found.custom_triggers.get(trigger_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "integration `{}` has no custom trigger `{trigger_id}`",
            found.key
        ))
    })?;
    let (header_list, query) = request_parts(headers, uri);
    let incoming =
        Incoming { method: method.as_str(), url: "", headers: &header_list, query: &query, body };
    let parsed = match incoming.json() {
        serde_json::Value::Null if !body.is_empty() => {
            serde_json::Value::String(String::from_utf8_lossy(body).into_owned())
        }
        other => other,
    };
    let kept = serde_json::Value::Object(receive::kept_headers(&header_list));
    let request = serde_json::json!({
        "method": method.as_str(),
        "headers": kept,
        "query": query
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect::<serde_json::Map<_, _>>(),
        "body": parsed,
    });
    let credential = query.iter().find(|(n, _)| n == "id").map(|(_, v)| v.as_str());
    let (hook, account) = match trigger.level {
        para_build::TriggerLevel::User => {
            let id = credential.ok_or_else(|| {
                ApiError::not_found(
                    "this custom trigger's URL names the credential: `?id=<credential id>`",
                )
            })?;
            let owner = state.store.credential_owner(&state.project_id, id).await?;
            let theirs = match owner {
                Some(user) => state.store.credential(&state.project_id, &user, id).await?,
                None => None,
            };
            if theirs.is_none_or(|c| c.integration != found.key) {
                state.count_refusal(&found.key, "unknown_url");
                return Err(ApiError::not_found(format!(
                    "no credential `{id}` of {} in this project",
                    found.key
                )));
            }
            (format!("{}{id}", para_worker::webhooks::CREDENTIAL_PREFIX), None)
        }
        para_build::TriggerLevel::App => {
            let provider = para_worker::webhooks::provider_id(trigger, &request).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "no_provider_id",
                    format!("custom trigger `{}`: the request names no account (its mapPayload.providerId read nothing)", trigger.name),
                )
            })?;
            (String::new(), Some(provider))
        }
    };
    match para_worker::webhooks::passes_filters(trigger, &request) {
        Ok(true) => {}
        Ok(false) => return Ok(axum::Json(Received { accepted: 0, duplicates: 0 }).into_response()),
        Err(e) => return Err(ApiError::new(StatusCode::BAD_REQUEST, "filters", e)),
    }
    // The app's own idempotency key when it sends one; otherwise the request's bytes (a
    // retried request is the same request).
    let key = match header_list.iter().find(|(n, _)| n == "idempotency-key") {
        Some((_, v)) if !v.is_empty() => format!("id:{v}"),
        _ => {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(body);
            format!("sha256:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
        }
    };
    let event = NewWebhookEvent {
        project_id: state.project_id.clone(),
        integration: found.key.clone(),
        hook,
        dedupe_key: key,
        event_type: format!("{}{trigger_id}", para_worker::webhooks::CUSTOM_PREFIX),
        account,
        // The whole request: a CustomTriggerStep's output is `{request}`.
        body: request.clone(),
        headers: request["headers"].clone(),
    };
    let recorded = state.store.insert_webhook_events(std::slice::from_ref(&event)).await?;
    let accepted = recorded.iter().filter(|new| **new).count();
    if accepted > 0 {
        para_worker::webhooks::wake(&state.worker);
    }
    Ok(axum::Json(Received { accepted, duplicates: recorded.len() - accepted }).into_response())
}

/// A verification request's body with its token sealed under the server's key (bound to the
/// project), so the secret is not stored in the clear.
fn sealed_verification(state: &AppState, body: &serde_json::Value) -> serde_json::Value {
    let token = body.get("verification_token").and_then(serde_json::Value::as_str).unwrap_or("");
    let aad = format!("webhook-verification\u{0}{}", state.project_id);
    serde_json::json!({ "verification_token_sealed": state.secrets.seal(token.as_bytes(), aad.as_bytes()) })
}

/// Name/value pairs in order.
type Pairs = Vec<(String, String)>;

/// A request's headers (those with text values; names lower-case, as `HeaderMap` keeps them) and
/// query fields, as the receiving code reads them.
fn request_parts(headers: &HeaderMap, uri: &Uri) -> (Pairs, Pairs) {
    let headers = headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let query = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    (headers, query)
}

fn handshake(answer: Handshake) -> Response {
    let nosniff = (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    match answer {
        Handshake::Text(text) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8")),
                nosniff,
            ],
            text,
        )
            .into_response(),
        Handshake::Json(value) => ([nosniff], axum::Json(value)).into_response(),
        Handshake::JsonWithHeader(value, name, echoed) => {
            let mut response = ([nosniff], axum::Json(value)).into_response();
            if let Ok(v) = HeaderValue::from_str(&echoed) {
                response.headers_mut().insert(name, v);
            }
            response
        }
        Handshake::Empty | Handshake::Keep => StatusCode::OK.into_response(),
    }
}
