//! The OAuth 2 authorization-code flow as the SDK drives it (docs/connect-sdk.md §5): the
//! popup's nonce page, `build-oauth`, the provider's callback, and the session the SDK polls.
//! Also the token endpoint calls every grant shares.
//!
//! CSRF: the nonce page (opened in the popup with the user's token) sets an HttpOnly cookie
//! naming a nonce bound to that user; the callback requires the cookie and that its user is
//! the `state`'s user, besides `state` being unused and unexpired.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::SdkUser;
use crate::connect::{self, BeginOAuth};
use crate::connector::Material;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::find_integration;
/// Binds the browser that opens the popup to its user (the callback requires it).
pub use crate::web::bind_browser;
use crate::web::html_escape;
pub use para_connect::oauth::*;

/// The JSON routes (documented) and the popup's pages (HTML: the nonce page and the
/// provider's callback, which the OpenAPI document does not describe).
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    let pages = Router::new()
        .route("/projects/{project}/sdk/actions/oauth-nonce", get(nonce_page))
        .route(CALLBACK_PATH, get(callback));
    OpenApiRouter::new()
        .routes(routes!(build_oauth))
        .routes(routes!(build_oauth_v2))
        .routes(routes!(session, delete_session))
        .merge(pages.into())
}

/// Where the SDK sends the popup.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedirectUrl {
    /// The provider's consent page, or para's form asking the values typed to connect.
    pub redirect_url: String,
}

/// An OAuth session the SDK polls (`oauthMetaKeyId`): empty while the sign-in is under way.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthSessionView {
    /// The credential made; `null` when the sign-in failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub connect_credential_id: Option<Option<String>>,
    /// Why the sign-in failed; `null` when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub error: Option<Option<String>>,
}

// ------------------------------------------------------------------ nonce page

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NonceQuery {
    #[serde(default)]
    origin_for_post_message: Option<String>,
    #[serde(default)]
    user_token: Option<String>,
}

/// An origin (`scheme://host[:port]`) or nothing.
fn origin_of(text: Option<&str>) -> Option<String> {
    let url = url::Url::parse(text?).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.origin().ascii_serialization())
}

/// JSON inside a `<script>`: `<` escaped so no text can close the element.
fn script_json(v: &Value) -> String {
    v.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

fn page(title: &str, body: &str, script: Option<String>) -> Response {
    let script = script.map(|s| format!("<script>{s}</script>")).unwrap_or_default();
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font:15px system-ui,sans-serif;margin:3rem;color:#222}}</style></head>\
         <body><p>{body}</p>{script}</body></html>",
        title = html_escape(title),
        body = html_escape(body),
    );
    let mut res = Html(html).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
        ),
    );
    res
}

fn post_to_opener(origin: Option<&str>, message: &Value, close: bool) -> Option<String> {
    let origin = origin?;
    Some(format!(
        "try{{if(window.opener)window.opener.postMessage({},{});}}catch(e){{}}{}",
        script_json(message),
        script_json(&Value::String(origin.to_string())),
        if close { "setTimeout(function(){window.close()},50);" } else { "" }
    ))
}

/// The popup's first page: binds this browser to the user, then tells the SDK to continue.
async fn nonce_page(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    Query(q): Query<NonceQuery>,
) -> Response {
    let origin = origin_of(q.origin_for_post_message.as_deref());
    let fail = |message: String| {
        let script = post_to_opener(
            origin.as_deref(),
            &json!({"type": "oauth_error_callback", "error": message, "errorResponse": {"message": message}}),
            false,
        );
        let mut res = page("Connection failed", &message, script);
        *res.status_mut() = StatusCode::BAD_REQUEST;
        res
    };
    if project != state.project_id {
        return fail(format!("this server serves project {}, not {project}", state.project_id));
    }
    let claims = match q.user_token.as_deref().map(|t| state.verifier.verify(t)) {
        Some(Ok(claims)) => claims,
        Some(Err(e)) => return fail(format!("the user token was refused: {e}")),
        None => return fail("the popup was opened without a user token".into()),
    };
    let cookie = match bind_browser(&state, &claims.user_id).await {
        Ok(cookie) => cookie,
        Err(e) => return fail(e.message),
    };
    let script = post_to_opener(origin.as_deref(), &json!({"type": "oauth-nonce-loaded"}), false);
    let mut res = page("Connecting…", "Connecting your account…", script);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, value);
    }
    res
}

// ------------------------------------------------------------------ build-oauth

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct BuildQuery {
    /// The integration's type (when `integrationId` is not given).
    action: Option<String>,
    /// The integration's id or key.
    integration_id: Option<String>,
    /// The page the popup posts its result to.
    origin_for_post_message: Option<String>,
    /// A JSON object of the values asked before connecting.
    end_user_supplied_values: Option<String>,
    /// A session id the SDK polls (`GET …/session-id/{id}`).
    oauth_meta_key_id: Option<String>,
}

/// `installIntegration`'s popup: where to send it to connect the integration.
#[utoipa::path(
    get,
    path = "/projects/{project}/sdk/actions/build-oauth",
    tag = "oauth",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"), BuildQuery),
    security(("user_token" = [])),
    responses((status = 200, description = "Where to send the popup", body = RedirectUrl))
)]
async fn build_oauth(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Query(q): Query<BuildQuery>,
) -> Result<Json<RedirectUrl>, ApiError> {
    let build = state.build();
    let wanted = match (q.integration_id.as_deref(), q.action.as_deref()) {
        (Some(id), _) if find_integration(&build, id).is_some() => id,
        (_, Some(action)) if action != "custom" => action,
        _ => {
            return Err(ApiError::bad_request(
                "build-oauth needs `integrationId` (or `action`) naming an integration of this project",
            ));
        }
    };
    let key = find_integration(&build, wanted)
        .ok_or_else(|| ApiError::not_found(format!("no integration `{wanted}` in this project")))?
        .key
        .clone();
    let values = match q.end_user_supplied_values.as_deref().filter(|v| !v.is_empty()) {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(ApiError::bad_request("`endUserSuppliedValues` must be a JSON object"));
            }
        },
    };
    let session_id = q.oauth_meta_key_id.filter(|s| !s.is_empty() && s.len() <= 128);
    let origin = origin_of(q.origin_for_post_message.as_deref());
    // Integrations connected with typed values: the popup asks them (installIntegration in
    // headless mode opens it for every integration).
    if let Some(connector) = state.connector(&key)
        && connect::values_form_wanted(&connector.kind)
    {
        if let Some(session) = &session_id {
            state.store.start_oauth_session(&state.project_id, &user.user_id, session).await?;
        }
        let pending = Pending {
            verifier: None,
            session_id,
            origin,
            return_to: None,
            values: crate::connect::by_field_key(&connector.fields, values),
            values_form: true,
        };
        let url = begin_values_form(&state, &user.user_id, &key, pending).await?;
        return Ok(Json(RedirectUrl { redirect_url: url }));
    }
    let url = connect::begin_oauth(
        &state,
        &user.user_id,
        &key,
        BeginOAuth { values, origin_for_post_message: origin, return_to: None, session_id },
    )
    .await?;
    Ok(Json(RedirectUrl { redirect_url: url }))
}

/// The same as [`build_oauth`], at the path the SDK's v2 calls.
#[utoipa::path(
    get,
    path = "/v2/projects/{project}/sdk/actions/build-oauth",
    tag = "oauth",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"), BuildQuery),
    security(("user_token" = [])),
    responses((status = 200, description = "Where to send the popup", body = RedirectUrl))
)]
async fn build_oauth_v2(
    state: State<Arc<AppState>>,
    user: SdkUser,
    query: Query<BuildQuery>,
) -> Result<Json<RedirectUrl>, ApiError> {
    build_oauth(state, user, query).await
}

// ------------------------------------------------------------------ sessions

/// How the sign-in of a session went: `{}` while it is under way (or unknown).
#[utoipa::path(
    get,
    path = "/projects/{project}/sdk/actions/session-id/{session}",
    tag = "oauth",
    params(
        ("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"),
        ("session" = String, Path, description = "The session id the SDK gave (`oauthMetaKeyId`)"),
    ),
    security(("user_token" = [])),
    responses((status = 200, description = "The session", body = OAuthSessionView))
)]
async fn session(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, session)): Path<(String, String)>,
) -> Result<Json<OAuthSessionView>, ApiError> {
    let found = state.store.oauth_session(&state.project_id, &user.user_id, &session).await?;
    Ok(Json(match found {
        Some(s) => {
            OAuthSessionView { connect_credential_id: Some(s.credential_id), error: Some(s.error) }
        }
        None => OAuthSessionView { connect_credential_id: None, error: None },
    }))
}

/// Forgets a session.
#[utoipa::path(
    delete,
    path = "/projects/{project}/sdk/actions/session-id/{session}",
    tag = "oauth",
    params(
        ("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"),
        ("session" = String, Path, description = "The session id the SDK gave (`oauthMetaKeyId`)"),
    ),
    security(("user_token" = [])),
    responses((status = 200, description = "Forgotten", body = crate::routes::api::Success))
)]
async fn delete_session(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, session)): Path<(String, String)>,
) -> Result<Json<crate::routes::api::Success>, ApiError> {
    state.store.delete_oauth_session(&state.project_id, &user.user_id, &session).await?;
    Ok(Json(crate::routes::api::Success { success: true }))
}

// ------------------------------------------------------------------ callback

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(state_param) = q.state.as_deref().filter(|s| !s.is_empty()) else {
        return failure_page(None, "the provider's answer has no `state`; start connecting again");
    };
    let row = match state.store.take_oauth_state(state_param).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return failure_page(
                None,
                "this connection attempt expired or was already used; start connecting again",
            );
        }
        Err(e) => return failure_page(None, &ApiError::from(e).message),
    };
    let pending: Pending = match state
        .secrets
        .open(&row.sealed, &state_aad(&state.project_id))
        .ok()
        .and_then(|b| serde_json::from_slice::<Pending>(&b).ok())
    {
        Some(p) if row.project_id == state.project_id && !p.values_form => p,
        _ => return failure_page(None, "this connection attempt cannot be read; start again"),
    };
    let finish_error = |message: String| {
        let state = state.clone();
        let user = row.user_id.clone();
        let pending = &pending;
        async move {
            if let Some(session) = &pending.session_id {
                let _ = state
                    .store
                    .finish_oauth_session(&state.project_id, &user, session, None, Some(&message))
                    .await;
            }
            failure_page(Some(pending), &message)
        }
    };
    // The browser must be the one the flow was started in, for the same user.
    let bound = crate::web::bound_user(&state, &headers).await;
    if bound.as_deref() != Some(row.user_id.as_str()) {
        return finish_error(
            "this browser did not start the connection (its sign-in cookie is missing or belongs to another user); start connecting again from the app".into(),
        )
        .await;
    }
    if let Some(error) = q.error {
        let detail = q.error_description.map(|d| format!(": {d}")).unwrap_or_default();
        return finish_error(format!("the provider refused the connection ({error}){detail}"))
            .await;
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return finish_error("the provider's answer has no `code`".into()).await;
    };
    let Some(connector) = state.connector(&row.integration) else {
        return finish_error(format!("{} is no longer part of this project", row.integration))
            .await;
    };
    let material = Material { values: pending.values.clone(), ..Material::default() };
    let mut form = vec![
        ("grant_type".to_string(), "authorization_code".to_string()),
        ("code".to_string(), code),
        ("redirect_uri".to_string(), redirect_uri(&state)),
    ];
    if let Some(verifier) = &pending.verifier {
        form.push(("code_verifier".to_string(), verifier.clone()));
    }
    let token = match token_request(&state, &connector, &material, form).await {
        Ok(token) => token,
        Err(e) => return finish_error(format!("exchanging the code failed: {e}")).await,
    };
    let credential =
        match connect::store_connection(&state, &row.user_id, &connector, material, token).await {
            Ok(c) => c,
            Err(e) => return finish_error(e.message()).await,
        };
    session_connected(&state, &row.user_id, &pending, &credential.id).await;
    if credential.status != para_store::CredentialStatus::Valid {
        let reason = credential.status_reason.clone().unwrap_or_default();
        return failure_page(
            Some(&pending),
            &format!("the account was connected but does not work: {reason}"),
        );
    }
    if let Some(back) = &pending.return_to {
        return redirect(&with_query(back, "connected", &credential.id));
    }
    // The SDK learns of the credential by polling the session; the page just closes.
    let script = "setTimeout(function(){window.close()},50);".to_string();
    page("Connected", "Your account is connected. You can close this window.", Some(script))
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.query_pairs_mut().append_pair(key, value);
            u.to_string()
        }
        Err(_) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!(
                "{url}{sep}{key}={}",
                form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
            )
        }
    }
}

fn redirect(to: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

fn failure_page(pending: Option<&Pending>, message: &str) -> Response {
    if let Some(back) = pending.and_then(|p| p.return_to.as_deref()) {
        return redirect(&with_query(back, "error", message));
    }
    let script = post_to_opener(
        pending.and_then(|p| p.origin.as_deref()),
        &json!({"type": "oauth_error_callback", "error": message, "errorResponse": {"message": message}}),
        false,
    );
    let mut res = page("Connection failed", message, script);
    *res.status_mut() = StatusCode::BAD_REQUEST;
    res
}
