//! The developer dashboard at `/dashboard`: who has connected, what each user connected,
//! the state of their credentials, their settings and workflow toggles. Read-only, and never
//! a credential's secret (nor a password setting's value).
//!
//! It exists only when the server has an admin key (`PARA_ADMIN_KEY`); without one every
//! dashboard route answers 404 and says how to turn it on, before reading any request body.
//! The key is accepted as `Authorization: Bearer <key>` (scripts) or through a sign-in form,
//! which starts a session: a random value in an HttpOnly, `SameSite=Strict` cookie, recorded
//! (hashed) in the database with the admin key's fingerprint, for 12 hours; signing out (a form
//! carrying the session's CSRF token) deletes it, and another admin key ends every session.
//! Keys are compared in constant time, and a peer that sends wrong keys is throttled
//! (`throttle.rs`): past `Throttle::MAX_FAILURES` in a minute it gets 429 until the minute is
//! over, without its guesses being checked.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use para_store::SettingsKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::pages::portal::{self, Form, Framing, STYLESHEET};
use crate::server::Peer;
use crate::state::AppState;
use crate::throttle::Throttle;
use crate::web::same_secret;

const SESSION_COOKIE: &str = "para_admin";
/// How long a dashboard sign-in lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The hidden form field carrying the session's CSRF token.
pub(crate) const CSRF_FIELD: &str = "csrf";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/dashboard", get(users))
        .route("/dashboard/user", get(user))
        .route("/dashboard/login", post(login))
        .route("/dashboard/logout", post(logout))
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// What sessions record of the admin key: a keyed hash, so that a new key ends them without
/// the key itself being stored.
fn key_fingerprint(admin_key: &str) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(admin_key.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(b"para-dashboard-key:v2");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The 429 a throttled peer gets.
fn throttled(retry_after: u64) -> Response {
    let mut response = portal::message_page(
        StatusCode::TOO_MANY_REQUESTS,
        Framing::Never,
        "Too many wrong keys",
        vec![format!(
            "This address sent more than {} wrong admin keys in a minute. Wait {retry_after} s \
             before trying again.",
            Throttle::MAX_FAILURES
        )],
        None,
    );
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The 404 of every dashboard route when the server has no admin key.
fn off() -> Response {
    portal::message_page(
        StatusCode::NOT_FOUND,
        Framing::Never,
        "The dashboard is off",
        vec![
            "This server was started without an admin key, so the developer dashboard is \
             not available."
                .into(),
            "Set PARA_ADMIN_KEY to a long random value when starting the server, then open \
             /dashboard and sign in with it:"
                .into(),
        ],
        Some("PARA_ADMIN_KEY=$(openssl rand -hex 32) para serve".into()),
    )
}

fn admin_key(state: &AppState) -> Option<&str> {
    state.config.admin_key.as_deref().filter(|k| !k.is_empty())
}

fn peer_of(parts: &Parts) -> Option<IpAddr> {
    parts.extensions.get::<Peer>().map(|p| p.0.ip())
}

/// Someone the dashboard lets in: with the admin key as a bearer token (scripts), or signed in
/// with the form (`session`: the cookie's value, which keys the forms' CSRF token).
pub(crate) struct Admin {
    session: Option<String>,
}

impl Admin {
    /// Signed in with the form (a sign-out button makes sense).
    pub(crate) fn by_cookie(&self) -> bool {
        self.session.is_some()
    }

    /// The CSRF token of this session's forms (empty for a bearer key, which a browser does
    /// not send on its own).
    pub(crate) fn csrf(&self) -> String {
        match &self.session {
            Some(session) => crate::web::csrf_token(session, CSRF_PURPOSE),
            None => String::new(),
        }
    }

    /// Whether a submitted form carries this session's CSRF token (always, for a bearer key).
    pub(crate) fn check_csrf(&self, form: &Form) -> bool {
        let Some(session) = &self.session else { return true };
        crate::web::csrf_valid(session, CSRF_PURPOSE, form.get(CSRF_FIELD))
    }
}

/// What the dashboard's CSRF tokens are for (a portal token does not pass here).
const CSRF_PURPOSE: &str = "para-dashboard-csrf:v2";

/// Checks who is asking before a handler reads anything else (a body included): off (404), a
/// throttled peer (429), a wrong bearer key (401), no or stale session (the sign-in page, 401).
impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Response> {
        let Some(admin_key) = admin_key(state) else { return Err(off()) };
        if parts.headers.get(header::AUTHORIZATION).is_some_and(|v| v.to_str().is_ok()) {
            let peer = peer_of(parts);
            state.admin_throttle.check(peer).map_err(throttled)?;
            let sent = crate::web::bearer(&parts.headers).unwrap_or("");
            if same_secret(sent, admin_key) {
                return Ok(Admin { session: None });
            }
            state.admin_throttle.failed(peer);
            return Err(portal::message_page(
                StatusCode::UNAUTHORIZED,
                Framing::Never,
                "Wrong admin key",
                vec!["The Authorization header does not carry this server's admin key.".into()],
                None,
            ));
        }
        let Some(session) =
            crate::web::cookie(&parts.headers, SESSION_COOKIE).filter(|s| !s.is_empty())
        else {
            return Err(login_page(StatusCode::UNAUTHORIZED, None));
        };
        match state
            .store
            .admin_session(&state.project_id, &sha256_hex(&session), &key_fingerprint(admin_key))
            .await
        {
            Ok(true) => Ok(Admin { session: Some(session) }),
            Ok(false) => Err(login_page(StatusCode::UNAUTHORIZED, None)),
            Err(e) => Err(storage_error(e)),
        }
    }
}

#[derive(Serialize)]
struct LoginPage {
    stylesheet: &'static str,
    accent: Option<String>,
    accent_ink: Option<String>,
    error: Option<String>,
}

fn login_page(status: StatusCode, error: Option<String>) -> Response {
    let page = LoginPage { stylesheet: STYLESHEET, accent: None, accent_ink: None, error };
    portal::html(status, portal::render("dashboard_login.html", &page), Framing::Never)
}

fn session_cookie(state: &AppState, value: &str, max_age: u64) -> String {
    let secure = if portal::secure_cookies(state) { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={value}; Path=/dashboard; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    )
}

/// What `POST /dashboard/login` needs before it reads the form: the dashboard on, the peer
/// not throttled.
struct LoginAllowed {
    peer: Option<IpAddr>,
}

impl FromRequestParts<Arc<AppState>> for LoginAllowed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Response> {
        if admin_key(state).is_none() {
            return Err(off());
        }
        let peer = peer_of(parts);
        state.admin_throttle.check(peer).map_err(throttled)?;
        Ok(LoginAllowed { peer })
    }
}

async fn login(State(state): State<Arc<AppState>>, allowed: LoginAllowed, body: Bytes) -> Response {
    let Some(admin_key) = admin_key(&state) else { return off() };
    let form = Form::parse(&body);
    let sent = form.get("key").unwrap_or("").trim();
    if sent.is_empty() || !same_secret(sent, admin_key) {
        state.admin_throttle.failed(allowed.peer);
        // Slow down guessing.
        tokio::time::sleep(Duration::from_millis(300)).await;
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That key does not match the admin key of this server.".into()),
        );
    }
    let session = para_auth::random_token(32);
    let expires_at = para_store::now_ms() + SESSION_LIFETIME.as_millis() as i64;
    if let Err(e) = state
        .store
        .put_admin_session(
            &state.project_id,
            &sha256_hex(&session),
            &key_fingerprint(admin_key),
            expires_at,
        )
        .await
    {
        return storage_error(e);
    }
    portal::see_other("/dashboard", &[session_cookie(&state, &session, SESSION_LIFETIME.as_secs())])
}

/// Signing out ends the session (its row is deleted, so a copied cookie stops working too);
/// the form must carry the session's CSRF token, so another site cannot sign the admin out.
async fn logout(State(state): State<Arc<AppState>>, admin: Admin, body: Bytes) -> Response {
    let Some(session) = &admin.session else {
        return portal::see_other("/dashboard", &[]);
    };
    if !admin.check_csrf(&Form::parse(&body)) {
        return csrf_refused();
    }
    if let Err(e) = state.store.delete_admin_session(&state.project_id, &sha256_hex(session)).await
    {
        return storage_error(e);
    }
    portal::see_other("/dashboard", &[session_cookie(&state, "", 0)])
}

/// The 403 of a dashboard form sent without its page's CSRF token.
pub(crate) fn csrf_refused() -> Response {
    portal::message_page(
        StatusCode::FORBIDDEN,
        Framing::Never,
        "This form could not be accepted",
        vec![
            "It was sent without this page's security token, or from another site. Reload the \
             page and try again."
                .into(),
        ],
        None,
    )
}

#[derive(Serialize)]
struct UsersPage {
    stylesheet: &'static str,
    accent: Option<String>,
    accent_ink: Option<String>,
    project_id: String,
    project_name: String,
    build_hash: String,
    signed_in: bool,
    csrf: String,
    users: Vec<UserRow>,
}

#[derive(Serialize)]
struct UserRow {
    user_id: String,
    href: String,
    label: String,
    since: String,
    credentials: Vec<CredentialView>,
}

#[derive(Serialize)]
struct CredentialView {
    id: String,
    integration: String,
    status: para_store::CredentialStatus,
    status_label: &'static str,
    status_reason: Option<String>,
    account: String,
    created: String,
    updated: String,
    expires: String,
}

fn credential_view(c: &para_store::Credential) -> CredentialView {
    // Never `c.secret`.
    CredentialView {
        id: c.id.clone(),
        integration: c.integration.clone(),
        status: c.status,
        status_label: portal::status_label(c.status),
        status_reason: c.status_reason.clone(),
        account: c.provider_id.clone().unwrap_or_default(),
        created: portal::date(c.created_at),
        updated: portal::date(c.updated_at),
        expires: c.expires_at.map(portal::date).unwrap_or_else(|| "—".into()),
    }
}

/// A short label for a user from their metadata: name and email when present.
fn user_label(meta: &Value) -> String {
    let pick = |keys: &[&str]| {
        keys.iter().find_map(|k| meta.get(*k).and_then(Value::as_str)).map(str::to_string)
    };
    match (pick(&["Name", "name"]), pick(&["Email", "email"])) {
        (Some(n), Some(e)) => format!("{n} <{e}>"),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => String::new(),
    }
}

pub(crate) fn user_href(user_id: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("id", user_id);
    format!("/dashboard/user?{}", query.finish())
}

pub(crate) fn storage_error(e: para_store::StoreError) -> Response {
    tracing::error!(error = %e, "storage error");
    portal::message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        Framing::Never,
        "Something went wrong",
        vec!["The server could not read its database.".into()],
        None,
    )
}

async fn users(State(state): State<Arc<AppState>>, admin: Admin) -> Response {
    let build = state.build();
    let list = match state.store.users(&state.project_id).await {
        Ok(list) => list,
        Err(e) => return storage_error(e),
    };
    let mut rows = Vec::with_capacity(list.len());
    for u in list {
        let credentials = match state.store.credentials(&state.project_id, &u.user_id, None).await {
            Ok(c) => c,
            Err(e) => return storage_error(e),
        };
        rows.push(UserRow {
            href: user_href(&u.user_id),
            label: user_label(&u.meta),
            since: portal::date(u.created_at),
            credentials: credentials.iter().map(credential_view).collect(),
            user_id: u.user_id,
        });
    }
    let page = UsersPage {
        stylesheet: STYLESHEET,
        accent: None,
        accent_ink: None,
        project_id: state.project_id.clone(),
        project_name: build.project.project_name.clone().unwrap_or_else(|| "Paragraph".into()),
        build_hash: build.build_hash.chars().take(19).collect(),
        signed_in: admin.by_cookie(),
        csrf: admin.csrf(),
        users: rows,
    };
    no_store(portal::html(
        StatusCode::OK,
        portal::render("dashboard_users.html", &page),
        Framing::Never,
    ))
}

pub(crate) fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
struct UserQuery {
    id: String,
}

#[derive(Serialize)]
struct UserPage {
    stylesheet: &'static str,
    accent: Option<String>,
    accent_ink: Option<String>,
    project_id: String,
    user_id: String,
    /// This user's runs in the run history.
    runs_href: String,
    since: String,
    meta: Vec<KeyValue>,
    integrations: Vec<IntegrationSection>,
}

#[derive(Serialize)]
struct KeyValue {
    key: String,
    value: String,
}

#[derive(Serialize)]
struct IntegrationSection {
    key: String,
    name: String,
    anchor: String,
    credentials: Vec<CredentialView>,
    settings: Vec<KeyValue>,
    workflows: Vec<WorkflowRow>,
    /// Configurations made with `createConfiguration`, each with its own settings.
    configurations: Vec<ConfigurationSection>,
    /// Webhooks para registered with the provider for this user's workflows, newest first.
    webhooks: Vec<WebhookRow>,
}

/// One webhook registration (the URL's id is a secret and is not shown).
#[derive(Serialize)]
struct WebhookRow {
    workflow: String,
    /// `pending`, `active`, `failed`, `removing` or `removed`.
    status: String,
    /// The pill's class: VALID for active, INVALID for failed and removing.
    pill: &'static str,
    /// The provider's id of the registration.
    remote_id: String,
    error: Option<String>,
    expires: String,
    /// When a retry or renewal is due.
    next: String,
    updated: String,
}

fn webhook_row(build: &para_build::Build, s: &para_store::webhooks::Subscription) -> WebhookRow {
    let h = &s.hook;
    let workflow = build
        .integrations
        .get(&h.integration)
        .and_then(|i| i.workflows.get(&h.workflow_id))
        .map_or_else(|| format!("{} (not in this build)", h.workflow_id), |w| w.name.clone());
    let pill = match h.status.as_str() {
        "active" => "VALID",
        "failed" | "removing" => "INVALID",
        _ => "",
    };
    let scheduled = h.status != "removed";
    WebhookRow {
        workflow,
        status: h.status.clone(),
        pill,
        remote_id: h.remote_id.clone().unwrap_or_default(),
        error: h.error.clone(),
        expires: h.expires_at.map(portal::date).unwrap_or_default(),
        next: s.next_attempt_at.filter(|_| scheduled).map(portal::date).unwrap_or_default(),
        updated: portal::date(h.updated_at),
    }
}

#[derive(Serialize)]
struct ConfigurationSection {
    id: String,
    external_id: Option<String>,
    credential: String,
    created: String,
    meta: String,
    settings: Vec<KeyValue>,
    workflows: Vec<WorkflowRow>,
}

#[derive(Serialize)]
struct WorkflowRow {
    id: String,
    name: String,
    enabled: bool,
    /// Never toggled: the workflow's `defaultEnabled` applies.
    default: bool,
    /// Not shown to users in the portal.
    hidden: bool,
    settings: Vec<KeyValue>,
}

/// Saved values by input title; passwords masked; keys no input declares shown as they are.
fn settings_rows(inputs: &[para_build::Input], values: &Value) -> Vec<KeyValue> {
    let Some(map) = values.as_object() else { return Vec::new() };
    let mut rows = Vec::new();
    for input in inputs {
        if let Some(value) = map.get(&input.id) {
            let shown = if input.input_type == "password" {
                "•••••• (saved)".to_string()
            } else {
                compact(value)
            };
            rows.push(KeyValue { key: input.title.clone(), value: shown });
        }
    }
    for (key, value) in map {
        if !inputs.iter().any(|i| &i.id == key) {
            rows.push(KeyValue { key: key.clone(), value: compact(value) });
        }
    }
    rows
}

fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One configuration's shared settings and workflow rows (`rows`: its stored settings), with
/// rows for workflows the build no longer has.
fn scope_rows(
    integration: Option<&para_build::Integration>,
    rows: &[&para_store::Settings],
    connected: bool,
) -> (Vec<KeyValue>, Vec<WorkflowRow>) {
    let shared = rows
        .iter()
        .find(|s| s.workflow_id.is_empty())
        .map(|s| settings_rows(integration.map_or(&[][..], |i| &i.inputs), &s.values))
        .unwrap_or_default();
    let mut workflows: Vec<WorkflowRow> = integration
        .map(|i| {
            let mut list: Vec<&para_build::Workflow> = i.workflows.values().collect();
            list.sort_by(|a, b| a.order.cmp(&b.order).then(a.name.cmp(&b.name)));
            list.into_iter()
                .map(|w| {
                    let row = rows.iter().find(|s| s.workflow_id == w.id);
                    let toggled = row.and_then(|s| s.enabled);
                    WorkflowRow {
                        id: w.id.clone(),
                        name: w.name.clone(),
                        enabled: connected && toggled.unwrap_or(w.default_enabled),
                        default: toggled.is_none(),
                        hidden: w.hidden,
                        settings: row
                            .map(|s| settings_rows(&w.inputs, &s.values))
                            .unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    for s in rows.iter().filter(|s| !s.workflow_id.is_empty()) {
        if integration.is_none_or(|i| !i.workflows.contains_key(&s.workflow_id)) {
            workflows.push(WorkflowRow {
                id: s.workflow_id.clone(),
                name: "(not in this build)".into(),
                enabled: s.enabled.unwrap_or(false),
                default: s.enabled.is_none(),
                hidden: false,
                settings: settings_rows(&[], &s.values),
            });
        }
    }
    (shared, workflows)
}

async fn user(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Query(query): Query<UserQuery>,
) -> Response {
    let found = match state.store.user(&state.project_id, &query.id).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            return portal::message_page(
                StatusCode::NOT_FOUND,
                Framing::Never,
                "No such user",
                vec![format!("No user “{}” has connected to this project.", query.id)],
                None,
            );
        }
        Err(e) => return storage_error(e),
    };
    let (credentials, settings, made, webhooks) = match tokio::try_join!(
        state.store.credentials(&state.project_id, &found.user_id, None),
        state.store.settings(&state.project_id, &found.user_id),
        state.store.configurations(&state.project_id, &found.user_id),
        state.store.subscriptions_of(&state.project_id, &found.user_id, 200),
    ) {
        Ok(all) => all,
        Err(e) => return storage_error(e),
    };
    let build = state.build();
    let mut keys: Vec<String> = build.integrations.keys().cloned().collect();
    for extra in
        credentials.iter().map(|c| &c.integration).chain(settings.iter().map(|s| &s.integration))
    {
        if !keys.contains(extra) {
            keys.push(extra.clone());
        }
    }
    let integrations = keys
        .iter()
        .enumerate()
        .filter_map(|(n, key)| {
            let integration = build.integrations.get(key);
            let mine: Vec<CredentialView> =
                credentials.iter().filter(|c| &c.integration == key).map(credential_view).collect();
            let rows: Vec<&para_store::Settings> =
                settings.iter().filter(|s| &s.integration == key).collect();
            let hooks: Vec<WebhookRow> = webhooks
                .iter()
                .filter(|w| &w.hook.integration == key)
                .map(|w| webhook_row(&build, w))
                .collect();
            if mine.is_empty() && rows.is_empty() && hooks.is_empty() {
                return None;
            }
            let of = |configuration: &SettingsKey| -> Vec<&para_store::Settings> {
                rows.iter().copied().filter(|s| s.configuration == *configuration).collect()
            };
            let (shared, workflows) =
                scope_rows(integration, &of(&SettingsKey::Integration), !mine.is_empty());
            let configurations = made
                .iter()
                .filter(|m| !m.is_default)
                .filter_map(|m| {
                    let c = credentials
                        .iter()
                        .find(|c| c.id == m.credential_id && &c.integration == key)?;
                    let (settings, workflows) = scope_rows(
                        integration,
                        &of(&SettingsKey::Configuration(m.id.clone())),
                        c.status == para_store::CredentialStatus::Valid,
                    );
                    Some(ConfigurationSection {
                        id: m.id.clone(),
                        external_id: m.external_id.clone(),
                        credential: c.id.clone(),
                        created: portal::date(m.created_at),
                        meta: compact(&m.meta),
                        settings,
                        workflows,
                    })
                })
                .collect();
            Some(IntegrationSection {
                key: key.clone(),
                name: integration.map_or_else(|| key.clone(), |i| i.name.clone()),
                anchor: format!("integration-{n}"),
                credentials: mine,
                settings: shared,
                workflows,
                configurations,
                webhooks: hooks,
            })
        })
        .collect();
    let meta = found
        .meta
        .as_object()
        .map(|m| m.iter().map(|(k, v)| KeyValue { key: k.clone(), value: compact(v) }).collect())
        .unwrap_or_default();
    let page = UserPage {
        stylesheet: STYLESHEET,
        accent: None,
        accent_ink: None,
        project_id: state.project_id.clone(),
        since: portal::date(found.created_at),
        runs_href: {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("user", &found.user_id);
            format!("/dashboard/runs?{}", query.finish())
        },
        user_id: found.user_id,
        meta,
        integrations,
    };
    no_store(portal::html(
        StatusCode::OK,
        portal::render("dashboard_user.html", &page),
        Framing::Never,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_value_only() {
        assert!(same_secret("k3y", "k3y"));
        assert!(!same_secret("k3y", "k3y "));
        assert!(!same_secret("", "k3y"));
        assert_ne!(key_fingerprint("a"), key_fingerprint("b"));
        assert_ne!(key_fingerprint("a"), "a", "sessions do not record the key");
    }

    #[test]
    fn wrong_keys_are_throttled_per_peer_and_ipv6_per_64() {
        let throttle = Throttle::default();
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        for _ in 0..Throttle::MAX_FAILURES {
            assert!(throttle.check(Some(a)).is_ok());
            throttle.failed(Some(a));
        }
        assert!(throttle.check(Some(a)).unwrap_err() <= 60);
        assert!(throttle.check(Some(b)).is_ok(), "another peer is not slowed down");
        let v6 = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        for _ in 0..Throttle::MAX_FAILURES {
            throttle.failed(v6("2001:db8:1:2::1"));
        }
        assert!(throttle.check(v6("2001:db8:1:2:ffff::9")).is_err(), "the same /64");
        assert!(throttle.check(v6("2001:db8:1:3::1")).is_ok());
        assert!(throttle.check(v6("::ffff:203.0.113.7")).is_err(), "IPv4 mapped is IPv4");
    }

    #[test]
    fn passwords_are_masked_in_settings() {
        let inputs: Vec<para_build::Input> = serde_json::from_value(serde_json::json!([
            { "id": "p", "key": "p", "title": "API password", "type": "password", "required": false },
            { "id": "t", "key": "t", "title": "Owner", "type": "text", "required": false }
        ]))
        .unwrap();
        let rows =
            settings_rows(&inputs, &serde_json::json!({ "p": "hunter2", "t": "ann", "x": 1 }));
        let text: Vec<String> = rows.iter().map(|r| format!("{}={}", r.key, r.value)).collect();
        assert_eq!(text, ["API password=•••••• (saved)", "Owner=ann", "x=1"]);
    }
}
