//! The Connect API the SDK calls (CONNECT-API.md): user state, integrations, credentials,
//! workflow toggles. Every handler reads and writes only the calling user's rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{delete, get};
use axum::{Json, Router};
use para_store::CredentialStatus;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::SdkUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{
    Configuration, credential_json, credential_view, find_integration, integration_id,
};

type Api = Result<Json<Value>, ApiError>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(health))
        .route("/projects/{project}/sdk/me", get(me).patch(patch_me))
        .route("/projects/{project}/sdk/integrations", get(integrations))
        .route("/projects/{project}/sdk/integrations/{integration}", delete(uninstall))
        .route("/projects/{project}/sdk/credentials", get(credentials).post(create_credential))
        .route(
            "/projects/{project}/sdk/credentials/{credential}",
            get(credential).patch(patch_credential).delete(delete_credential),
        )
        .route(
            "/projects/{project}/sdk/credentials/{credential}/complete-setup",
            axum::routing::post(complete_setup),
        )
        .route(
            "/projects/{project}/sdk/workflows/{workflow}",
            axum::routing::post(enable_workflow).delete(disable_workflow),
        )
        .route("/projects/{project}/sdk/actions", axum::routing::post(action_kit))
}

/// `POST /sdk/actions`: the SDK's `getFieldOptions` (a body naming a `sourceKey`:
/// [`crate::routes::options::field_options`]); anything else is ActionKit, which is not offered: say
/// so, and what to use instead.
async fn action_kit(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Api {
    if body.len() > crate::routes::options::MAX_FIELD_OPTIONS_BODY
        || crate::routes::options::is_field_options_request(&body)
    {
        return crate::routes::options::field_options(&state, &user, &headers, &body).await;
    }
    Err(ApiError::not_found(
        "ActionKit (POST /sdk/actions) is not available on this Paragraph server: call the \
         integration's API through the proxy (paragon.request) or run a workflow instead",
    ))
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let build = state.build();
    Json(json!({ "ok": true, "projectId": state.project_id, "buildHash": build.build_hash }))
}

/// The user's whole state, as `getUser()` returns it.
async fn me(State(state): State<Arc<AppState>>, user: SdkUser) -> Api {
    Ok(Json(user_state(&state, &user).await?))
}

pub async fn user_state(state: &AppState, user: &SdkUser) -> Result<Value, ApiError> {
    let build = state.build();
    let (p, u) = (&state.project_id, &user.user_id);
    let (credentials, settings, rows) = tokio::join!(
        state.store.credentials(p, u, None),
        state.store.settings(p, u),
        state.store.configurations(p, u),
    );
    let (credentials, settings, rows) = (credentials?, settings?, rows?);
    let mut integrations = serde_json::Map::new();
    for (key, integration) in &build.integrations {
        let mine: Vec<&para_store::Credential> =
            credentials.iter().filter(|c| &c.integration == key).collect();
        // The integration's own entry shows the default configuration's settings.
        let config =
            Configuration::of(integration, &settings, &para_store::SettingsKey::Integration);
        // The credential the SDK shows: the newest valid one, else the newest.
        let active =
            mine.iter().find(|c| c.status == CredentialStatus::Valid).or(mine.first()).copied();
        let all: Vec<Value> =
            mine.iter().map(|c| credential_json(c, Some(integration), &settings, &rows)).collect();
        let all_configurations: Vec<Value> =
            all.iter().filter_map(|c| c["configurations"].as_array().cloned()).flatten().collect();
        let mut entry = json!({
            "enabled": active.is_some_and(|c| c.status == CredentialStatus::Valid),
            "allCredentials": all,
            "allConfigurations": all_configurations,
            "sharedSettings": config.shared,
            "workflowSettings": config.workflows_json(active.is_some_and(|c| c.status == CredentialStatus::Valid)),
        });
        if let Some(c) = active {
            entry["credentialId"] = json!(c.id);
            entry["credentialStatus"] = json!(c.status);
            entry["credentialConfigId"] = json!(crate::routes::configurations::default_id(&c.id));
            entry["providerId"] = json!(c.provider_id);
            entry["providerData"] = c.provider_data.clone();
            if let Some(reason) = &c.status_reason {
                entry["credentialStatusReason"] = json!(reason);
            }
        }
        integrations.insert(key.clone(), entry);
    }
    Ok(json!({
        "project": {
            "id": state.project_id,
            "accessibleFeatures": ["headless-cp", "dfm"],
        },
        "authenticated": true,
        "userId": user.user_id,
        "meta": user.meta,
        "integrations": integrations,
        "resources": crate::routes::resources::user_resources(&build, &credentials),
    }))
}

/// The longest metadata `PATCH /sdk/me` leaves stored, in bytes of JSON.
const MAX_META_LEN: usize = 64 * 1024;

#[derive(Deserialize)]
struct PatchMe {
    meta: Value,
}

/// `PATCH /sdk/me {meta}` (`setUserMetadata`, `authenticate(…, {metadata})`): each key given
/// replaces that key of the stored metadata, the others stay (the SDK keeps
/// `{...stored, ...patched}` itself); a token seen again does not undo it (`touch_signed_user`).
async fn patch_me(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Json(body): Json<PatchMe>,
) -> Api {
    let Value::Object(patch) = &body.meta else {
        return Err(ApiError::bad_request("`meta` must be a JSON object"));
    };
    let updated = state
        .store
        .merge_user_meta(&state.project_id, &user.user_id, patch, MAX_META_LEN)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "meta_too_large",
                format!(
                    "the user's metadata would exceed {} KiB of JSON with this patch: keep \
                     large data in your app and put only ids in the metadata (setUserMetadata)",
                    MAX_META_LEN / 1024
                ),
            )
        })?;
    state.seen_users.forget(&user.user_id);
    let user =
        SdkUser { user_id: updated.user_id, meta: updated.meta, signed_meta: updated.signed_meta };
    Ok(Json(user_state(&state, &user).await?))
}

/// The project's integrations, with their config, inputs and workflows (the build's facts
/// plus the catalog's display facts), as the SDK reads them.
async fn integrations(State(state): State<Arc<AppState>>, user: SdkUser) -> Api {
    let build = state.build();
    let list: Vec<Value> = build
        .integrations
        .values()
        .filter(|i| i.config.active)
        .map(|i| integration_entry(&state, &user, i))
        .collect();
    Ok(Json(Value::Array(list)))
}

/// One entry of `/sdk/integrations`: [`integration_json`] with how the user connects it.
fn integration_entry(state: &AppState, user: &SdkUser, i: &para_build::Integration) -> Value {
    let mut entry = integration_json(i, &|w| permitted(state, w, user));
    if let Some(info) = crate::connect::connect_info(state, &i.key) {
        add_connect_fields(&mut entry, &info);
        add_install_inputs(&mut entry, &info);
    }
    entry
}

/// What the SDK's install flow asks (`installFlow`'s `getPreOptions`/`getPostOptions`), as
/// `IntegrationConnectInput`s: a custom integration's `customIntegration.inputFields`, a
/// catalog one's `sdkIntegrationConfig.authConfigInputs`, and for both
/// `sdkIntegrationConfig.postOauthInputs` (asked after an OAuth sign-in). `needPreOauthInputs`
/// tells the SDK outside headless mode to leave the asking to the portal (`/ui`).
fn add_install_inputs(entry: &mut Value, info: &crate::connect::ConnectInfo) {
    let before: Vec<Value> = info.fields.iter().map(install_input).collect();
    let after: Vec<Value> = info.post_fields.iter().map(install_input).collect();
    entry["needPreOauthInputs"] = json!(!before.is_empty());
    if let Some(custom) = entry.get_mut("customIntegration").and_then(Value::as_object_mut) {
        custom.insert("inputFields".into(), json!(before));
    }
    if !entry.get("sdkIntegrationConfig").is_some_and(Value::is_object) {
        entry["sdkIntegrationConfig"] = json!({
            "accountTypes": [], "authConfigInputs": [], "postOauthInputs": [],
            "dataSources": {}, "oauthInputs": [],
        });
    }
    let config = &mut entry["sdkIntegrationConfig"];
    config["authConfigInputs"] = json!(before);
    config["postOauthInputs"] = json!(after);
}

/// A value asked when connecting, as the SDK's `IntegrationConnectInput`: `id` is the key the
/// value is sent under (`setPreOptions({[id]: value})`), `type` one of the SDK's install
/// input types: `PASSWORD` (secret), `SWITCH` (boolean), `ENUM` with `values: [{label,
/// value}]` (dropdown), `TEXT_NO_VARS` (text; numbers with `inputType: "number"`).
fn install_input(f: &crate::connect::ConnectField) -> Value {
    let declared = f.declared.as_ref();
    let mut input = json!({ "id": f.key, "title": f.label, "required": f.required });
    input["type"] = json!(match declared.map(|d| d.input_type.as_str()) {
        _ if f.secret => "PASSWORD",
        Some("boolean") => "SWITCH",
        Some("custom_dropdown") => "ENUM",
        _ => "TEXT_NO_VARS",
    });
    if let Some(d) = declared {
        match d.input_type.as_str() {
            "number" => input["inputType"] = json!("number"),
            "custom_dropdown" => {
                input["values"] = crate::settings::dropdown_options(d)
                    .into_iter()
                    .map(|(label, value)| json!({ "label": label, "value": value }))
                    .collect();
            }
            _ => {}
        }
        if let Some(default) = &d.default_value {
            input["defaultValue"] = default.clone();
        }
    }
    if let Some(placeholder) = &f.placeholder {
        input["placeholder"] = json!(placeholder);
    }
    if let Some(help) = &f.help {
        input["subtitle"] = json!(help);
    }
    input
}

/// How the user connects the integration, for para's own portal in the SDK's iframe (the SDK
/// ignores these fields): `connectKind` and the values asked before connecting, under the keys
/// `POST /sdk/credentials` (OAuth: build-oauth's `endUserSuppliedValues`) reads them.
fn add_connect_fields(entry: &mut Value, info: &crate::connect::ConnectInfo) {
    use crate::connect::ConnectKind;
    entry["connectKind"] = json!(match info.kind {
        ConnectKind::OAuth => "oauth",
        ConnectKind::ClientCredentials => "client_credentials",
        ConnectKind::Password => "password",
        ConnectKind::ApiKey => "api_key",
        ConnectKind::Basic => "basic",
    });
    entry["connectFields"] = info
        .fields
        .iter()
        .map(|f| {
            json!({
                "key": f.key,
                "label": f.label,
                "secret": f.secret,
                "required": f.required,
                "placeholder": f.placeholder,
                "help": f.help,
            })
        })
        .collect();
}

/// The metadata `definePermissions()` conditions read: the user's stored metadata (what their
/// tokens carried and what `PATCH /sdk/me` set, as Paragon's User Metadata), or with
/// `PARA_PERMISSIONS_METADATA=token` only what their signed token carried.
pub fn permission_meta<'a>(state: &AppState, stored: &'a Value, signed: &'a Value) -> &'a Value {
    para_worker::permissions::permission_meta(
        state.config.limits.permissions_from_token_only,
        stored,
        signed,
    )
}

/// Whether the workflow's `definePermissions()` condition holds for the user (no condition:
/// everyone). A condition that cannot be evaluated denies.
pub fn permitted(state: &AppState, workflow: &para_build::Workflow, user: &SdkUser) -> bool {
    permitted_for(workflow, &user.user_id, permission_meta(state, &user.meta, &user.signed_meta))
}

pub use para_worker::permissions::permitted_for;

/// An integration as `/sdk/integrations` lists it, its User Settings in the SDK's vocabulary
/// ([`crate::routes::sdk_inputs`]); workflows the user may not use are listed in
/// `noPermissionWorkflows` instead of `workflows`.
pub fn integration_json(
    i: &para_build::Integration,
    allowed: &dyn Fn(&para_build::Workflow) -> bool,
) -> Value {
    let catalog = para_catalog::lookup(&i.key);
    let custom = i.config.custom.as_ref();
    let mut workflows: Vec<&para_build::Workflow> = i.workflows.values().collect();
    workflows.sort_by_key(|w| w.order);
    let mut workflow_meta = serde_json::Map::new();
    for w in &workflows {
        let mut meta = json!({
            "id": w.id,
            "inputs": crate::routes::sdk_inputs::sdk_inputs(&w.inputs, &i.key),
            "hidden": w.hidden,
            "defaultEnabled": w.default_enabled,
            "order": w.order,
            "description": w.name,
            "infoText": w.description,
        });
        if !allowed(w) {
            // The SDK lists a workflow of `noPermissionWorkflows` under `hiddenWorkflows` when
            // it has `permissions`. The condition itself is not sent (it can name other
            // users): an OR of nothing, which does not hold for this user.
            meta["permissions"] = json!({ "type": "JOIN", "join": "OR", "conditions": [] });
        }
        workflow_meta.insert(w.id.clone(), meta);
    }
    let accent = custom
        .and_then(|c| c.accent_color.clone())
        .or_else(|| catalog.map(|c| c.accent_color.clone()))
        .unwrap_or_else(|| "#4B5563".into());
    let auth_type = match (custom, catalog) {
        (Some(c), _) => serde_json::to_value(c.authentication_type).unwrap_or(Value::Null),
        (None, Some(c)) => json!(match c.auth.kind() {
            "oauth2" => "oauth",
            "oauth2_client_credentials" => "oauth_client_credential",
            // Typed credentials are the SDK's `basic` scheme (AuthenticationScheme has no
            // API-key value); `connectKind` says which.
            "api_key" => "basic",
            other => other,
        }),
        _ => Value::Null,
    };
    let mut entry = json!({
        "id": integration_id(&i.key),
        "type": if custom.is_some() { "custom" } else { i.key.as_str() },
        "name": i.name,
        "isActive": i.config.active,
        "brandColor": accent,
        "category": catalog.map(|c| c.category.clone()),
        "authenticationType": auth_type,
        "configs": [{
            "values": {
                "description": i.config.description,
                "overview": i.config.overview,
                "accentColor": accent,
                "showWatermark": i.config.show_watermark,
                "sharedMeta": { "inputs": crate::routes::sdk_inputs::sdk_inputs(&i.inputs, &i.key) },
                "workflowMeta": workflow_meta,
            }
        }],
        // Hidden workflows are listed too: the SDK's getIntegrationConfig puts them (and the
        // ones the user may not use) under `hiddenWorkflows`.
        "workflows": workflows.iter().filter(|w| allowed(w)).map(|w| json!({
            "id": w.id,
            "description": w.name,
            "integrationId": integration_id(&i.key),
        })).collect::<Vec<_>>(),
        "noPermissionWorkflows": workflows
            .iter()
            .filter(|w| !allowed(w))
            .map(|w| w.id.clone())
            .collect::<Vec<_>>(),
        "sdkIntegrationConfig": crate::routes::sdk_inputs::integration_config(&i.key),
        "needPreOauthInputs": false,
    });
    // `inputFields` and `needPreOauthInputs` are the connector's (`add_install_inputs`).
    if let Some(c) = custom {
        entry["customIntegration"] = json!({
            "slug": i.key,
            "name": c.name,
            "inputFields": [],
        });
    }
    entry
}

async fn uninstall(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, integration)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Api {
    let build = state.build();
    let found = find_integration(&build, &integration).ok_or_else(|| {
        ApiError::not_found(format!("no integration `{integration}` in this project"))
    })?;
    // `uninstallIntegration(type, {selectedCredentialId})` names the account in
    // `X-Paragon-Credential` (the SDK always sends it): only that account goes, and the settings
    // with the last one.
    let selected = crate::auth::selected_credential(&headers);
    let done = crate::connect::disconnect(&state, &user.user_id, &found.key, selected)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no credential `{}` of {} for this user (X-Paragon-Credential)",
                selected.unwrap_or_default(),
                found.name
            ))
        })?;
    Ok(Json(json!({
        "success": true,
        "removedCredentials": done.removed,
        "remainingCredentials": done.remaining
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialQuery {
    integration: Option<String>,
    /// Sent (`true`, `false` or `undefined`) only by `getIntegrationAccount`.
    include_account_auth: Option<String>,
}

/// `GET /sdk/credentials`: the user's credentials (of one integration with `?integration=`);
/// with `includeAccountAuth` (`getIntegrationAccount`), one integration with its account
/// instead ([`integration_account`]).
async fn credentials(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    headers: axum::http::HeaderMap,
    Query(query): Query<CredentialQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    if let Some(auth) = query.include_account_auth.as_deref() {
        let Some(integration) = query.integration.as_deref() else {
            return Err(ApiError::bad_request(
                "getIntegrationAccount needs `?integration=<integration type>`",
            ));
        };
        let selected = crate::auth::selected_credential(&headers);
        let account =
            integration_account(&state, &user, integration, selected, auth == "true").await?;
        // It may carry an access token: never kept by caches.
        let no_store = [(axum::http::header::CACHE_CONTROL, "no-store")];
        return Ok((no_store, Json(account)).into_response());
    }
    Ok(credential_list(&state, &user, query.integration.as_deref()).await?.into_response())
}

async fn credential_list(state: &AppState, user: &SdkUser, integration: Option<&str>) -> Api {
    let build = state.build();
    let key = match integration {
        Some(i) => Some(
            find_integration(&build, i)
                .ok_or_else(|| {
                    ApiError::not_found(format!("no integration `{i}` in this project"))
                })?
                .key
                .clone(),
        ),
        None => None,
    };
    let (p, u) = (&state.project_id, &user.user_id);
    let (list, settings, rows) = tokio::join!(
        state.store.credentials(p, u, key.as_deref()),
        state.store.settings(p, u),
        state.store.configurations(p, u),
    );
    let (settings, rows) = (settings?, rows?);
    let out = list?
        .iter()
        .map(|c| credential_json(c, build.integrations.get(&c.integration), &settings, &rows))
        .collect();
    Ok(Json(Value::Array(out)))
}

/// `getIntegrationAccount(type, {includeAccountAuth, selectedCredentialId})`: the integration
/// as `/sdk/integrations` lists it, with the account of the credential `X-Paragon-Credential`
/// names (else the active one: the newest valid, else the newest) — `credentialId`,
/// `providerData`, and with `includeAccountAuth=true` `accountAuth`.
///
/// `accountAuth` is what a front end may hold of the account: for an OAuth sign-in, the
/// access token (`OAUTH_ACCESS_TOKEN`, refreshed first when expired) and nothing else — never
/// the refresh token, client secrets, or values the user typed (API keys, passwords), and
/// `{}` for other kinds of credential. It is the calling user's own: the credential is looked
/// up among the token's user's credentials only.
async fn integration_account(
    state: &AppState,
    user: &SdkUser,
    integration: &str,
    selected: Option<&str>,
    include_auth: bool,
) -> Result<Value, ApiError> {
    let build = state.build();
    let found = find_integration(&build, integration).ok_or_else(|| {
        ApiError::not_found(format!("no integration `{integration}` in this project"))
    })?;
    let mine = state.store.credentials(&state.project_id, &user.user_id, Some(&found.key)).await?;
    let credential = match selected {
        Some(id) => mine.into_iter().find(|c| c.id == id).ok_or_else(|| {
            ApiError::not_found(format!(
                "you have no {} credential `{id}` (X-Paragon-Credential)",
                found.name
            ))
        })?,
        None => {
            let valid = mine.iter().position(|c| c.status == CredentialStatus::Valid);
            match valid {
                Some(i) => mine.into_iter().nth(i),
                None => mine.into_iter().next(),
            }
            .ok_or_else(|| {
                ApiError::not_found(format!("{} is not connected for this user", found.name))
            })?
        }
    };
    let mut entry = integration_entry(state, user, found);
    entry["projectId"] = json!(state.project_id);
    entry["hasCredential"] = json!(true);
    entry["connectedUserLimitOnDevCred"] = json!(0);
    entry["connectedUserLimitReached"] = json!(false);
    if include_auth {
        let mut auth = serde_json::Map::new();
        let connector = state.connector(&found.key);
        if let Some(connector) = connector.filter(|c| c.kind == crate::connect::ConnectKind::OAuth)
        {
            let (_, material) =
                crate::refresh::usable(state, &connector, credential.clone()).await?;
            if let Some(token) = material.access_token() {
                auth.insert("OAUTH_ACCESS_TOKEN".into(), json!(token));
            }
        }
        entry["accountAuth"] = Value::Object(auth);
    }
    // The refresh may have changed the row: read it again for what is shown.
    let credential = state
        .store
        .credential(&state.project_id, &user.user_id, &credential.id)
        .await?
        .ok_or_else(|| ApiError::not_found("the credential was deleted"))?;
    entry["credentialId"] = json!(credential.id);
    entry["credentialStatus"] = json!(credential.status);
    entry["providerId"] = json!(credential.provider_id);
    entry["providerData"] = credential.provider_data;
    Ok(entry)
}

async fn credential(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
) -> Api {
    let found = state
        .store
        .credential(&state.project_id, &user.user_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such credential for this user"))?;
    Ok(Json(credential_view(&state, &user, &found).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateCredential {
    integration_id: Option<String>,
    #[serde(default)]
    payload: Option<serde_json::Map<String, Value>>,
    /// `completeInstall`: a code the company's app obtained itself.
    code: Option<String>,
    redirect_url: Option<String>,
}

/// `POST /sdk/credentials`: a credential from typed values (API key, basic, client
/// credentials, password) or from an authorization code obtained by the app.
async fn create_credential(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Json(body): Json<CreateCredential>,
) -> Api {
    let build = state.build();
    let wanted = body
        .integration_id
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("`integrationId` is required"))?;
    let key = find_integration(&build, wanted)
        .ok_or_else(|| ApiError::not_found(format!("no integration `{wanted}` in this project")))?
        .key
        .clone();
    let mut values = body.payload.unwrap_or_default();
    values.remove("skipPostOAuthInputs");
    let created = match body.code {
        Some(code) => {
            let connector = state
                .connector(&key)
                .ok_or_else(|| ApiError::not_found(format!("no integration `{key}`")))?;
            let material = crate::connector::Material { values, ..Default::default() };
            let redirect =
                body.redirect_url.unwrap_or_else(|| crate::routes::oauth::redirect_uri(&state));
            let form = vec![
                ("grant_type".to_string(), "authorization_code".to_string()),
                ("code".to_string(), code),
                ("redirect_uri".to_string(), redirect),
            ];
            let token = crate::routes::oauth::token_request(&state, &connector, &material, form)
                .await
                .map_err(|e| {
                    ApiError::new(
                        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                        "token_request",
                        format!("exchanging the code failed: {e}"),
                    )
                })?;
            crate::connect::store_connection(&state, &user.user_id, &connector, material, token)
                .await?
        }
        None => crate::connect::create_credential(&state, &user.user_id, &key, values).await?,
    };
    Ok(Json(credential_view(&state, &user, &created).await?))
}

/// `installFlow.setPostOptions`: `POST /sdk/credentials/{id}/complete-setup` with
/// `{integrationId, config, payload: {...values, skipPostOAuthInputs}, installOptions}` stores
/// the values asked after the sign-in on the user's credential `{id}`
/// ([`crate::connect::complete_setup`]) and answers the credential. The path names the
/// credential; it is looked up among the token's user's credentials only (a header such as
/// `X-Paragon-Credential` selects nothing here).
async fn complete_setup(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Api {
    let body: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "complete-setup takes a JSON body `{{\"payload\": {{<key>: <value>}}}}`: {e}"
        ))
    })?;
    let found = state
        .store
        .credential(&state.project_id, &user.user_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such credential for this user"))?;
    if let Some(wanted) = body.get("integrationId").filter(|v| !v.is_null()) {
        let build = state.build();
        let named = wanted.as_str().and_then(|w| find_integration(&build, w));
        if named.is_none_or(|i| i.key != found.integration) {
            return Err(ApiError::bad_request(format!(
                "`integrationId` {wanted} is not the integration of credential `{id}` ({})",
                found.integration
            )));
        }
    }
    let mut values = match body.get("payload") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "`payload` must be an object of the values asked after connecting",
            ));
        }
    };
    let skip = match values.remove("skipPostOAuthInputs") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(ApiError::bad_request(
                "`payload.skipPostOAuthInputs` must be true or false",
            ));
        }
    };
    let updated =
        crate::connect::complete_setup(&state, &user.user_id, &found, values, skip).await?;
    Ok(Json(credential_view(&state, &user, &updated).await?))
}

#[derive(Deserialize)]
struct PatchCredential {
    config: Option<CredentialConfig>,
}

#[derive(Deserialize)]
struct CredentialConfig {
    #[serde(default, rename = "sharedSettings")]
    shared_settings: Option<Value>,
    #[serde(default, rename = "workflowSettings")]
    workflow_settings: Option<BTreeMap<String, WorkflowSetting>>,
}

#[derive(Deserialize)]
struct WorkflowSetting {
    enabled: Option<bool>,
    settings: Option<Value>,
}

/// Replaces the settings (shared and per workflow) of the credential's configuration named by
/// `X-Paragon-Configuration-Id` (default: its default one) wholesale. Values that do not fit
/// their inputs are refused (nothing of that key is saved) and listed in `errors`.
async fn patch_credential(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    Json(body): Json<PatchCredential>,
) -> Api {
    let (found, rows) =
        crate::routes::configurations::credential_and_configurations(&state, &user, &id).await?;
    let found = found.ok_or_else(|| ApiError::not_found("no such credential for this user"))?;
    let selected = crate::routes::configurations::resolve(
        crate::routes::configurations::selected(&headers),
        &found,
        &rows,
    )?;
    let key = crate::routes::configurations::settings_key(&selected);
    let scope = para_store::SettingsScope {
        project_id: &state.project_id,
        user_id: &user.user_id,
        integration: &found.integration,
        configuration: &key,
        workflow_id: "",
    };
    let mut errors: Vec<String> = Vec::new();
    if let Some(config) = body.config {
        let build = state.build();
        let integration = build.integrations.get(&found.integration);
        let shared = match (&config.shared_settings, integration) {
            (Some(Value::Object(values)), Some(i)) => {
                let problems = crate::settings::validate_with(
                    &i.inputs,
                    values,
                    crate::settings::Dropdowns::FromApp,
                );
                errors.extend(problems.iter().map(|p| p.message.clone()));
                problems.is_empty().then_some(config.shared_settings.as_ref()).flatten()
            }
            (Some(Value::Object(_)), None) => config.shared_settings.as_ref(),
            (Some(_), _) => {
                return Err(ApiError::bad_request("`config.sharedSettings` must be an object"));
            }
            (None, _) => None,
        };
        if let Some(shared) = shared {
            crate::passwords::put_settings(&state, scope, None, Some(shared)).await?;
        }
        for (workflow_id, setting) in config.workflow_settings.unwrap_or_default() {
            let Some(workflow) = integration.and_then(|i| i.workflows.get(&workflow_id)) else {
                return Err(ApiError::bad_request(format!(
                    "`{workflow_id}` is not a workflow of {}",
                    found.integration
                )));
            };
            if let Some(Value::Object(values)) = &setting.settings {
                let problems = crate::settings::validate_with(
                    &workflow.inputs,
                    values,
                    crate::settings::Dropdowns::FromApp,
                );
                if !problems.is_empty() {
                    errors.extend(problems.iter().map(|p| p.message.clone()));
                    continue;
                }
            }
            let scope = para_store::SettingsScope { workflow_id: &workflow_id, ..scope };
            crate::passwords::put_settings(
                &state,
                scope,
                setting.enabled,
                setting.settings.as_ref(),
            )
            .await?;
        }
    }
    let mut view = credential_view(&state, &user, &found).await?;
    view["errors"] = json!(errors);
    Ok(Json(view))
}

async fn delete_credential(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
) -> Api {
    let found = state.store.credential(&state.project_id, &user.user_id, &id).await?;
    if !state.store.delete_credential(&state.project_id, &user.user_id, &id).await? {
        return Err(ApiError::not_found("no such credential for this user"));
    }
    if let Some(c) = found {
        state.credential_cache.forget(&user.user_id, &c.integration);
    }
    Ok(Json(json!({ "success": true })))
}

/// The workflow and its integration's key, or 404.
fn find_workflow(build: &para_build::Build, workflow_id: &str) -> Result<String, ApiError> {
    build
        .workflow(workflow_id)
        .map(|(i, _)| i.key.clone())
        .ok_or_else(|| ApiError::not_found(format!("no workflow `{workflow_id}` in this project")))
}

#[derive(Deserialize, Default)]
struct EnableBody {
    #[serde(default)]
    settings: Option<Value>,
}

async fn enable_workflow(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, workflow)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Api {
    // The SDK sends no body (with a JSON content type); older clients may send settings.
    let settings = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<EnableBody>(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?
            .settings
    };
    set_workflow(&state, &user, &workflow, &headers, true, settings).await
}

async fn disable_workflow(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, workflow)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Api {
    set_workflow(&state, &user, &workflow, &headers, false, None).await
}

/// Turns a workflow on or off in the configuration the headers name (`X-Paragon-Credential`
/// and `X-Paragon-Configuration-Id`, as the SDK sends them); without them, in the
/// integration-level settings.
async fn set_workflow(
    state: &AppState,
    user: &SdkUser,
    workflow: &str,
    headers: &axum::http::HeaderMap,
    enabled: bool,
    settings: Option<Value>,
) -> Api {
    let build = state.build();
    let key = find_workflow(&build, workflow)?;
    let configuration = workflow_configuration(state, user, &key, headers).await?;
    if enabled {
        let definition = &build.integrations[&key].workflows[workflow];
        if !permitted(state, definition, user) {
            // Not 403: the SDK logs the user out on 401/403.
            return Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "no_permission",
                format!(
                    "`{}` is not available to this user (its definePermissions() condition does not hold for the user's metadata)",
                    definition.name
                ),
            ));
        }
        let connected =
            state.store.credentials(&state.project_id, &user.user_id, Some(&key)).await?;
        if connected.is_empty() {
            return Err(ApiError::bad_request(format!(
                "connect {key} before enabling its workflows"
            )));
        }
    }
    let scope = para_store::SettingsScope {
        project_id: &state.project_id,
        user_id: &user.user_id,
        integration: &key,
        configuration: &configuration,
        workflow_id: workflow,
    };
    crate::passwords::put_settings(state, scope, Some(enabled), settings.as_ref()).await?;
    Ok(Json(json!({ "success": true, "workflowId": workflow, "enabled": enabled })))
}

/// Whose settings a workflow toggle changes: the configuration the headers name (their
/// credential must be the user's, of the workflow's integration), else the integration-level
/// ones.
async fn workflow_configuration(
    state: &AppState,
    user: &SdkUser,
    integration: &str,
    headers: &axum::http::HeaderMap,
) -> Result<para_store::SettingsKey, ApiError> {
    let configuration = crate::routes::configurations::selected(headers);
    let Some(credential) = crate::auth::selected_credential(headers) else {
        if let Some(c) = configuration {
            return Err(ApiError::bad_request(format!(
                "X-Paragon-Configuration-Id `{c}` needs the X-Paragon-Credential header naming its credential"
            )));
        }
        return Ok(para_store::SettingsKey::Integration);
    };
    let (found, rows) =
        crate::routes::configurations::credential_and_configurations(state, user, credential)
            .await?;
    let found = found.filter(|c| c.integration == integration).ok_or_else(|| {
        ApiError::not_found(format!(
            "you have no {integration} credential `{credential}` (X-Paragon-Credential)"
        ))
    })?;
    let selected = crate::routes::configurations::resolve(configuration, &found, &rows)?;
    Ok(crate::routes::configurations::settings_key(&selected))
}
