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
    OpenApiRouter::new().routes(routes!(app_level)).routes(routes!(per_account))
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
    let header_list: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
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
            // Kept for the admin to read; no trigger listens to it.
            event_type: if verification { "verification".into() } else { e.kind },
            account: e.account,
            body: e.body,
            headers: kept.clone(),
        })
        .collect();
    let recorded = match state.store.insert_webhook_events(&events).await {
        Ok(r) => r,
        // Not acknowledged: the provider delivers it again.
        Err(e) => return ApiError::from(e).into_response(),
    };
    let accepted = recorded.iter().filter(|new| **new).count();
    if accepted > 0 {
        para_worker::webhooks::wake(&state.worker);
    }
    axum::Json(Received { accepted, duplicates: recorded.len() - accepted }).into_response()
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
