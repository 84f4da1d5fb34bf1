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
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use crate::api::find_integration;
use crate::auth::SdkUser;
use crate::connect::{self, BeginOAuth};
use crate::connector::{Connector, Material, render, render_value};
use crate::error::ApiError;
use crate::state::AppState;

pub const CALLBACK_PATH: &str = "/oauth/callback";
const NONCE_COOKIE: &str = "para_oauth";
const NONCE_TTL_MS: i64 = 15 * 60_000;
pub const STATE_TTL_MS: i64 = 10 * 60_000;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/projects/{project}/sdk/actions/oauth-nonce", get(nonce_page))
        .route("/v2/projects/{project}/sdk/actions/build-oauth", get(build_oauth))
        .route("/projects/{project}/sdk/actions/build-oauth", get(build_oauth))
        .route(
            "/projects/{project}/sdk/actions/session-id/{session}",
            get(session).delete(delete_session),
        )
        .route(CALLBACK_PATH, get(callback))
}

/// The payload sealed into an OAuth state row.
#[derive(Debug, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    pub verifier: Option<String>,
    pub session_id: Option<String>,
    pub origin: Option<String>,
    pub return_to: Option<String>,
    pub values: Map<String, Value>,
    /// A state of the values form (`connect_form`), not of a sign-in: the callback refuses it.
    #[serde(default)]
    pub values_form: bool,
}

pub fn state_aad(project_id: &str) -> Vec<u8> {
    format!("oauth-state\0{project_id}").into_bytes()
}

/// Seals `pending` and stores it under `token` until the flow comes back (to the provider's
/// callback or to the values form), for [`STATE_TTL_MS`].
pub(crate) async fn put_pending(
    state: &AppState,
    user_id: &str,
    integration_key: &str,
    token: String,
    pending: &Pending,
) -> Result<(), ApiError> {
    let sealed = state.secrets.seal(
        &serde_json::to_vec(pending).expect("pending state serialises"),
        &state_aad(&state.project_id),
    );
    state
        .store
        .put_oauth_state(&para_store::OAuthState {
            state: token,
            project_id: state.project_id.clone(),
            user_id: user_id.to_string(),
            integration: integration_key.to_string(),
            sealed,
            expires_at: para_store::now_ms() + STATE_TTL_MS,
        })
        .await?;
    Ok(())
}

/// Tells the session the SDK polls (if the flow has one) which credential was connected.
pub(crate) async fn session_connected(
    state: &AppState,
    user_id: &str,
    pending: &Pending,
    credential_id: &str,
) {
    if let Some(session) = &pending.session_id {
        let _ = state
            .store
            .finish_oauth_session(&state.project_id, user_id, session, Some(credential_id), None)
            .await;
    }
}

pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

pub fn redirect_uri(state: &AppState) -> String {
    format!("{}{CALLBACK_PATH}", state.config.public_url)
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

pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
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

/// A `Set-Cookie` value binding the browser that receives it to `user_id` for the OAuth
/// callback. Every flow that sends a browser to a provider must set it (the SDK's nonce page
/// and the portal's Connect button).
pub async fn bind_browser(state: &AppState, user_id: &str) -> Result<String, ApiError> {
    let nonce = para_auth::random_token(24);
    state
        .store
        .put_oauth_nonce(&nonce, &state.project_id, user_id, para_store::now_ms() + NONCE_TTL_MS)
        .await?;
    let secure = if state.config.public_url.starts_with("https://") { "; Secure" } else { "" };
    Ok(format!(
        "{NONCE_COOKIE}={nonce}; Path={CALLBACK_PATH}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        NONCE_TTL_MS / 1000
    ))
}

// ------------------------------------------------------------------ build-oauth

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BuildQuery {
    action: Option<String>,
    integration_id: Option<String>,
    origin_for_post_message: Option<String>,
    end_user_supplied_values: Option<String>,
    oauth_meta_key_id: Option<String>,
}

async fn build_oauth(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Query(q): Query<BuildQuery>,
) -> Result<Json<Value>, ApiError> {
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
        && crate::connect_form::wanted(&connector.kind)
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
        let url = crate::connect_form::begin(&state, &user.user_id, &key, pending).await?;
        return Ok(Json(json!({ "redirectUrl": url })));
    }
    let url = connect::begin_oauth(
        &state,
        &user.user_id,
        &key,
        BeginOAuth { values, origin_for_post_message: origin, return_to: None, session_id },
    )
    .await?;
    Ok(Json(json!({ "redirectUrl": url })))
}

// ------------------------------------------------------------------ sessions

async fn session(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, session)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let found = state.store.oauth_session(&state.project_id, &user.user_id, &session).await?;
    Ok(Json(match found {
        Some(s) => json!({
            "connectCredentialId": s.credential_id,
            "error": s.error,
        }),
        None => json!({}),
    }))
}

async fn delete_session(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, session)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    state.store.delete_oauth_session(&state.project_id, &user.user_id, &session).await?;
    Ok(Json(json!({ "success": true })))
}

// ------------------------------------------------------------------ callback

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The user this browser was bound to by the popup's nonce page (its cookie), in this project.
pub async fn bound_user(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let nonce = cookie(headers, NONCE_COOKIE)?;
    let (project, user) = state.store.oauth_nonce(&nonce).await.ok().flatten()?;
    (project == state.project_id).then_some(user)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|line| {
        line.split(';').find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    })
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
    let bound = match cookie(&headers, NONCE_COOKIE) {
        Some(nonce) => state.store.oauth_nonce(&nonce).await.ok().flatten(),
        None => None,
    };
    if bound != Some((state.project_id.clone(), row.user_id.clone())) {
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
            Err(e) => return finish_error(e.message).await,
        };
    session_connected(&state, &row.user_id, &pending, &credential.id).await;
    if credential.status != "VALID" {
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

// ------------------------------------------------------------------ token endpoint

/// Why a token request failed.
#[derive(Debug)]
pub enum TokenFailure {
    /// The provider answered with an error (bad code, revoked refresh token…).
    Refused(String),
    /// The provider could not be reached or answered nonsense.
    Unreachable(String),
}

impl std::fmt::Display for TokenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenFailure::Refused(s) | TokenFailure::Unreachable(s) => f.write_str(s),
        }
    }
}

/// POSTs a grant to the connector's token endpoint with the client's authentication and the
/// integration's extra token options; returns the JSON answer.
pub async fn token_request(
    state: &AppState,
    connector: &Connector,
    m: &Material,
    mut form: Vec<(String, String)>,
) -> Result<Map<String, Value>, TokenFailure> {
    let oauth = connector
        .oauth
        .as_ref()
        .ok_or_else(|| TokenFailure::Refused(format!("{} does not use OAuth", connector.name)))?;
    let url = render(&oauth.token_url, m).map_err(|e| TokenFailure::Refused(e.0))?;
    if url.is_empty() {
        return Err(TokenFailure::Refused(format!("{} has no token URL", connector.name)));
    }
    let client_id = connector
        .client_id
        .clone()
        .or_else(|| m.values.get("clientId").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let client_secret = connector
        .client_secret
        .clone()
        .or_else(|| m.values.get("clientSecret").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let mut request = state.http.post(&url).header(header::ACCEPT, "application/json");
    if oauth.client_auth_basic && !client_id.is_empty() {
        request = request.basic_auth(
            form_urlencoded::byte_serialize(client_id.as_bytes()).collect::<String>(),
            Some(form_urlencoded::byte_serialize(client_secret.as_bytes()).collect::<String>()),
        );
    } else if !client_id.is_empty() {
        form.push(("client_id".into(), client_id));
        if !client_secret.is_empty() {
            form.push(("client_secret".into(), client_secret));
        }
    }
    if let Some(options) = &oauth.token_options
        && let Ok(Value::Object(options)) = render_value(options, m)
    {
        for (name, value) in options.get("headers").and_then(Value::as_object).into_iter().flatten()
        {
            if let Some(v) = value.as_str() {
                request = request.header(name.as_str(), v);
            }
        }
        for section in ["body", "params"] {
            for (name, value) in
                options.get(section).and_then(Value::as_object).into_iter().flatten()
            {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                form.push((name.clone(), text));
            }
        }
    }
    let response = request
        .form(&form)
        .send()
        .await
        .map_err(|e| TokenFailure::Unreachable(format!("POST {url}: {}", error_chain(&e))))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.text().await.unwrap_or_default();
    let parsed: Option<Map<String, Value>> = if content_type.contains("x-www-form-urlencoded") {
        Some(
            form_urlencoded::parse(text.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
        )
    } else {
        serde_json::from_str::<Value>(&text).ok().and_then(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        })
    };
    if !status.is_success() {
        let detail = parsed
            .as_ref()
            .and_then(|m| {
                let error = m.get("error").and_then(Value::as_str)?;
                let description =
                    m.get("error_description").and_then(Value::as_str).unwrap_or_default();
                Some(format!("{error} {description}").trim().to_string())
            })
            .unwrap_or_else(|| snippet(&text));
        let failure = format!("the token endpoint answered {}: {detail}", status.as_u16());
        return Err(if status.is_server_error() {
            TokenFailure::Unreachable(failure)
        } else {
            TokenFailure::Refused(failure)
        });
    }
    let token = parsed.ok_or_else(|| {
        TokenFailure::Unreachable(format!(
            "the token endpoint's answer is not JSON: {}",
            snippet(&text)
        ))
    })?;
    if let Some(error) = token.get("error").and_then(Value::as_str) {
        return Err(TokenFailure::Refused(format!("the token endpoint answered `{error}`")));
    }
    if token.get("access_token").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(TokenFailure::Refused(
            "the token endpoint's answer has no access_token".into(),
        ));
    }
    Ok(token)
}

/// Custom `saveCredentialsOptions`: values taken from the token answer into `saved`.
pub fn save_credentials(connector: &Connector, m: &mut Material) {
    let Some(template) = connector.oauth.as_ref().and_then(|o| o.save_credentials.as_ref()) else {
        return;
    };
    if let Ok(Value::Object(values)) = render_value(template, m) {
        m.saved.extend(values);
    }
}

/// The first 200 characters of a body, for error messages (never a token: only error bodies).
pub fn snippet(text: &str) -> String {
    let t: String = text.chars().take(200).collect();
    if t.is_empty() { "(empty body)".into() } else { t }
}

pub use para_upstream::error_chain;
