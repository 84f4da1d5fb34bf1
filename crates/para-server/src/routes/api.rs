//! The Connect API the SDK calls (CONNECT-API.md): user state, integrations, credentials,
//! workflow toggles. Every handler reads and writes only the calling user's rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use indexmap::IndexMap;
use para_store::CredentialStatus;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::SdkUser;
use crate::error::ApiError;
use crate::routes::resources::ResourceState;
use crate::routes::sdk_inputs::SdkIntegrationConfig;
use crate::routes::sdk_inputs::{Choice, InstallInput};
use crate::state::AppState;
use crate::views::{
    Configuration, ConfigurationView, CredentialView, WorkflowSettingView, credential_json,
    credential_view, find_integration, integration_id,
};

type Api<T> = Result<Json<T>, ApiError>;

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(me, patch_me))
        .routes(routes!(integrations))
        .routes(routes!(uninstall))
        .routes(routes!(credentials, create_credential))
        .routes(routes!(credential, patch_credential, delete_credential))
        .routes(routes!(complete_setup))
        .routes(routes!(enable_workflow, disable_workflow))
        .routes(routes!(action_kit))
}

// ---------------------------------------------------------------- wire shapes

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok` (what load balancers' health checks commonly look for).
    pub status: String,
    pub ok: bool,
    pub project_id: String,
    /// The hash of the served build (`out/build.json`).
    pub build_hash: String,
}

/// `{success: true}`.
#[derive(Serialize, ToSchema)]
pub struct Success {
    pub success: bool,
}

/// The user's whole state, as `getUser()` returns it (`SDKUser` of the SDK).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserState {
    pub project: ProjectInfo,
    pub authenticated: bool,
    pub user_id: String,
    /// The user's metadata (what their tokens carried and `PATCH /sdk/me` set).
    pub meta: Value,
    /// Every integration of the project, by key.
    pub integrations: BTreeMap<String, IntegrationState>,
    pub resources: Vec<ResourceState>,
}

/// The project as `/sdk/me` names it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectInfo {
    pub id: String,
    /// The SDK features this server offers (headless mode, dynamic field mapping).
    pub accessible_features: Vec<String>,
}

/// One integration in the user's state: their accounts of it and its settings.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationState {
    /// Whether the active account is VALID.
    pub enabled: bool,
    pub all_credentials: Vec<CredentialView>,
    /// The configurations of every account, in the order of `allCredentials`.
    pub all_configurations: Vec<ConfigurationView>,
    /// The integration-level settings (the default configurations').
    pub shared_settings: Value,
    pub workflow_settings: BTreeMap<String, WorkflowSettingView>,
    /// The active account (the newest valid one, else the newest); absent when not connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::openapi::credential_status, nullable = false)]
    pub credential_status: Option<CredentialStatus>,
    /// The active account's default configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_config_id: Option<String>,
    /// Absent when not connected; `null` when the provider gave no id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub provider_id: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_status_reason: Option<String>,
}

/// An integration as `/sdk/integrations` lists it (the SDK's `IntegrationMetadata` and
/// `IntegrationConfig` in one).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationView {
    pub id: String,
    /// The integration's key, or `custom` for a custom integration.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub is_active: bool,
    pub brand_color: String,
    pub category: Option<String>,
    /// The SDK's `AuthenticationScheme` (`oauth`, `basic`, …).
    pub authentication_type: Option<String>,
    pub configs: Vec<IntegrationConfigs>,
    /// The workflows the user may use (hidden ones too).
    pub workflows: Vec<WorkflowEntry>,
    /// The ids of workflows the user's metadata does not permit.
    pub no_permission_workflows: Vec<String>,
    pub sdk_integration_config: SdkIntegrationConfig,
    /// Whether values are asked before connecting (the SDK then leaves asking to the portal
    /// outside headless mode).
    pub need_pre_oauth_inputs: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_integration: Option<CustomIntegration>,
    /// How the user connects it (para's own portal reads it; the SDK ignores it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_kind: Option<String>,
    /// The values asked before connecting, under the keys `POST /sdk/credentials` reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_fields: Option<Vec<ConnectFieldView>>,
}

/// `configs[0]`: the integration's Connect Portal texts and its inputs.
#[derive(Serialize, ToSchema)]
pub struct IntegrationConfigs {
    pub values: IntegrationConfigValues,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationConfigValues {
    pub description: Option<String>,
    pub overview: Option<String>,
    pub accent_color: String,
    pub show_watermark: bool,
    pub shared_meta: SharedMeta,
    /// By workflow id, in the workflows' order.
    pub workflow_meta: IndexMap<String, WorkflowMeta>,
}

/// The integration-level User Settings.
#[derive(Serialize, ToSchema)]
pub struct SharedMeta {
    /// Inputs in the SDK's `SerializedConnectInput` vocabulary (`sdk_inputs.rs`).
    pub inputs: Vec<Value>,
}

/// A workflow as the Connect Portal shows it, with its User Settings.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowMeta {
    pub id: String,
    pub inputs: Vec<Value>,
    pub hidden: bool,
    pub default_enabled: bool,
    pub order: u32,
    /// The workflow's name (the SDK calls it `description`).
    pub description: String,
    pub info_text: Option<String>,
    /// Present (an OR of nothing) when the user may not use the workflow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<NoPermission>,
}

/// The permissions of a workflow the user may not use: an OR of no conditions, which holds
/// for no one (the condition itself is not sent: it can name other users).
#[derive(Serialize, ToSchema)]
pub struct NoPermission {
    /// `JOIN`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `OR`.
    pub join: &'static str,
    /// Always empty.
    pub conditions: Vec<Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowEntry {
    pub id: String,
    pub description: String,
    pub integration_id: String,
    /// The custom webhook trigger the workflow starts from (`getCustomWebhookUserManualUrl`
    /// forms its URL from it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_webhook_trigger_id: Option<String>,
}

/// The custom webhook trigger a workflow starts from, if it does.
fn custom_trigger_of(workflow: &para_build::Workflow) -> Option<String> {
    let step = workflow.steps.iter().find(|s| Some(&s.id) == workflow.trigger.as_ref())?;
    match &step.kind {
        para_build::StepKind::CustomTrigger { trigger_id } => Some(trigger_id.clone()),
        _ => None,
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomIntegration {
    pub slug: String,
    pub name: String,
    pub input_fields: Vec<InstallInput>,
}

/// A value asked before connecting, for para's portal.
#[derive(Serialize, ToSchema)]
pub struct ConnectFieldView {
    pub key: String,
    pub label: String,
    pub secret: bool,
    pub required: bool,
    pub placeholder: Option<String>,
    pub help: Option<String>,
}

/// `GET /sdk/credentials`' answer: a list, or with `includeAccountAuth` one account.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum CredentialsAnswer {
    List(Vec<CredentialView>),
    Account(Box<IntegrationAccount>),
}

/// `getIntegrationAccount`: the integration with one of the user's accounts.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationAccount {
    #[serde(flatten)]
    pub integration: IntegrationView,
    pub project_id: String,
    pub has_credential: bool,
    pub connected_user_limit_on_dev_cred: u32,
    pub connected_user_limit_reached: bool,
    /// With `includeAccountAuth=true`: `{OAUTH_ACCESS_TOKEN}` for an OAuth account, else `{}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub account_auth: Option<Map<String, Value>>,
    pub credential_id: String,
    #[schema(schema_with = crate::openapi::credential_status)]
    pub credential_status: CredentialStatus,
    pub provider_id: Option<String>,
    pub provider_data: Value,
}

/// `DELETE /sdk/integrations/{integration}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Uninstalled {
    pub success: bool,
    /// How many credentials were removed.
    pub removed_credentials: u64,
    /// How many of the user's accounts of the integration are left.
    pub remaining_credentials: i64,
}

/// A credential after `PATCH`: with the values refused.
#[derive(Serialize, ToSchema)]
pub struct PatchedCredential {
    #[serde(flatten)]
    pub credential: CredentialView,
    /// Why values were refused (nothing of a refused key was saved).
    pub errors: Vec<String>,
}

/// A workflow turned on or off.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowToggled {
    pub success: bool,
    pub workflow_id: String,
    pub enabled: bool,
}

/// `POST /sdk/actions`: the SDK's `getFieldOptions` (a body naming a `sourceKey`:
/// [`crate::routes::options::field_options`]); anything else is ActionKit, which is not offered: say
/// so, and what to use instead.
#[utoipa::path(
    post,
    path = "/projects/{project}/sdk/actions",
    tag = "connect",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)")),
    request_body(content = crate::routes::options::FieldOptionsRequest, description = "getFieldOptions: the data source and the values it depends on"),
    security(("user_token" = [])),
    responses((status = 200, description = "The data source's choices", body = crate::routes::options::FieldOptions))
)]
async fn action_kit(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Api<crate::routes::options::FieldOptions> {
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

/// Whether the server is up, and what it serves.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "meta",
    responses((status = 200, description = "The server is up", body = Health))
)]
async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    let build = state.build();
    Json(Health {
        status: "ok".into(),
        ok: true,
        project_id: state.project_id.clone(),
        build_hash: build.build_hash.clone(),
    })
}

/// The user's whole state, as `getUser()` returns it.
#[utoipa::path(
    get,
    path = "/projects/{project}/sdk/me",
    tag = "connect",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)")),
    security(("user_token" = [])),
    responses((status = 200, description = "The user's state", body = UserState))
)]
async fn me(State(state): State<Arc<AppState>>, user: SdkUser) -> Api<UserState> {
    Ok(Json(user_state(&state, &user).await?))
}

pub async fn user_state(state: &AppState, user: &SdkUser) -> Result<UserState, ApiError> {
    let build = state.build();
    let (p, u) = (&state.project_id, &user.user_id);
    let (credentials, settings, rows) = tokio::join!(
        state.store.credentials(p, u, None),
        state.store.settings(p, u),
        state.store.configurations(p, u),
    );
    let (credentials, settings, rows) = (credentials?, settings?, rows?);
    let mut integrations = BTreeMap::new();
    for (key, integration) in &build.integrations {
        let mine: Vec<&para_store::Credential> =
            credentials.iter().filter(|c| &c.integration == key).collect();
        // The integration's own entry shows the default configuration's settings.
        let config =
            Configuration::of(integration, &settings, &para_store::SettingsKey::Integration);
        // The credential the SDK shows: the newest valid one, else the newest.
        let active = mine
            .iter()
            .find(|c| c.status == para_store::CredentialStatus::Valid)
            .or(mine.first())
            .copied();
        let all: Vec<CredentialView> =
            mine.iter().map(|c| credential_json(c, Some(integration), &settings, &rows)).collect();
        let all_configurations =
            all.iter().flat_map(|c| c.configurations.iter().cloned()).collect();
        let valid = active.is_some_and(|c| c.status == para_store::CredentialStatus::Valid);
        let entry = IntegrationState {
            enabled: valid,
            all_credentials: all,
            all_configurations,
            workflow_settings: config.workflows_view(valid),
            shared_settings: config.shared,
            credential_id: active.map(|c| c.id.clone()),
            credential_status: active.map(|c| c.status),
            credential_config_id: active
                .map(|c| crate::routes::configurations::default_id(&c.id).to_string()),
            provider_id: active.map(|c| c.provider_id.clone()),
            provider_data: active.map(|c| c.provider_data.clone()),
            credential_status_reason: active.and_then(|c| c.status_reason.clone()),
        };
        integrations.insert(key.clone(), entry);
    }
    Ok(UserState {
        project: ProjectInfo {
            id: state.project_id.clone(),
            accessible_features: vec!["headless-cp".into(), "dfm".into()],
        },
        authenticated: true,
        user_id: user.user_id.clone(),
        meta: user.meta.clone(),
        integrations,
        resources: crate::routes::resources::user_resources(&build, &credentials),
    })
}

/// The longest metadata `PATCH /sdk/me` leaves stored, in bytes of JSON.
const MAX_META_LEN: usize = 64 * 1024;

/// `PATCH /sdk/me`'s body.
#[derive(Deserialize, ToSchema)]
struct PatchMe {
    /// The keys to set (each replaces that key of the stored metadata).
    #[schema(value_type = Object)]
    meta: Value,
}

/// `PATCH /sdk/me {meta}` (`setUserMetadata`, `authenticate(…, {metadata})`): each key given
/// replaces that key of the stored metadata, the others stay (the SDK keeps
/// `{...stored, ...patched}` itself); a token seen again does not undo it (`touch_signed_user`).
#[utoipa::path(
    patch,
    path = "/projects/{project}/sdk/me",
    tag = "connect",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)")),
    request_body = PatchMe,
    security(("user_token" = [])),
    responses((status = 200, description = "The user's state after the patch", body = UserState))
)]
async fn patch_me(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Json(body): Json<PatchMe>,
) -> Api<UserState> {
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
#[utoipa::path(
    get,
    path = "/projects/{project}/sdk/integrations",
    tag = "connect",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)")),
    security(("user_token" = [])),
    responses((status = 200, description = "The active integrations", body = Vec<IntegrationView>))
)]
async fn integrations(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
) -> Api<Vec<IntegrationView>> {
    let build = state.build();
    let list = build
        .integrations
        .values()
        .filter(|i| i.config.active)
        .map(|i| integration_entry(&state, &user, i))
        .collect();
    Ok(Json(list))
}

/// One entry of `/sdk/integrations`: [`integration_json`] with how the user connects it.
fn integration_entry(
    state: &AppState,
    user: &SdkUser,
    i: &para_build::Integration,
) -> IntegrationView {
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
fn add_install_inputs(entry: &mut IntegrationView, info: &crate::connect::ConnectInfo) {
    let before: Vec<InstallInput> = info.fields.iter().map(install_input).collect();
    let after: Vec<InstallInput> = info.post_fields.iter().map(install_input).collect();
    entry.need_pre_oauth_inputs = !before.is_empty();
    if let Some(custom) = &mut entry.custom_integration {
        custom.input_fields = before.clone();
    }
    entry.sdk_integration_config.auth_config_inputs = before;
    entry.sdk_integration_config.post_oauth_inputs = after;
}

/// A value asked when connecting, as the SDK's `IntegrationConnectInput`: `id` is the key the
/// value is sent under (`setPreOptions({[id]: value})`), `type` one of the SDK's install
/// input types: `PASSWORD` (secret), `SWITCH` (boolean), `ENUM` with `values: [{label,
/// value}]` (dropdown), `TEXT_NO_VARS` (text; numbers with `inputType: "number"`).
fn install_input(f: &crate::connect::ConnectField) -> InstallInput {
    let declared = f.declared.as_ref();
    let kind = match declared.map(|d| d.input_type.as_str()) {
        _ if f.secret => "PASSWORD",
        Some("boolean") => "SWITCH",
        Some("custom_dropdown") => "ENUM",
        _ => "TEXT_NO_VARS",
    };
    let mut input = InstallInput {
        id: f.key.clone(),
        title: f.label.clone(),
        required: f.required,
        kind,
        input_type: None,
        values: None,
        default_value: None,
        placeholder: f.placeholder.clone(),
        subtitle: f.help.clone(),
    };
    if let Some(d) = declared {
        match d.input_type.as_str() {
            "number" => input.input_type = Some("number"),
            "custom_dropdown" => {
                input.values = Some(
                    crate::settings::dropdown_options(d)
                        .into_iter()
                        .map(|(label, value)| Choice { label, value })
                        .collect(),
                );
            }
            _ => {}
        }
        input.default_value = d.default_value.clone();
    }
    input
}

/// How the user connects the integration, for para's own portal in the SDK's iframe (the SDK
/// ignores these fields): `connectKind` and the values asked before connecting, under the keys
/// `POST /sdk/credentials` (OAuth: build-oauth's `endUserSuppliedValues`) reads them.
fn add_connect_fields(entry: &mut IntegrationView, info: &crate::connect::ConnectInfo) {
    use crate::connect::ConnectKind;
    let kind = match info.kind {
        ConnectKind::OAuth => "oauth",
        ConnectKind::ClientCredentials => "client_credentials",
        ConnectKind::Password => "password",
        ConnectKind::ApiKey => "api_key",
        ConnectKind::Basic => "basic",
    };
    entry.connect_kind = Some(kind.to_string());
    entry.connect_fields = Some(
        info.fields
            .iter()
            .map(|f| ConnectFieldView {
                key: f.key.clone(),
                label: f.label.clone(),
                secret: f.secret,
                required: f.required,
                placeholder: f.placeholder.clone(),
                help: f.help.clone(),
            })
            .collect(),
    );
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
) -> IntegrationView {
    let catalog = para_catalog::lookup(&i.key);
    let custom = i.config.custom.as_ref();
    let mut workflows: Vec<&para_build::Workflow> = i.workflows.values().collect();
    workflows.sort_by_key(|w| w.order);
    let workflow_meta = workflows
        .iter()
        .map(|w| {
            let meta = WorkflowMeta {
                id: w.id.clone(),
                inputs: crate::routes::sdk_inputs::sdk_inputs(&w.inputs, &i.key),
                hidden: w.hidden,
                default_enabled: w.default_enabled,
                order: w.order,
                description: w.name.clone(),
                info_text: w.description.clone(),
                // The SDK lists a workflow of `noPermissionWorkflows` under `hiddenWorkflows`
                // when it has `permissions`. The condition itself is not sent (it can name
                // other users): an OR of nothing, which does not hold for this user.
                permissions: (!allowed(w)).then_some(NoPermission {
                    kind: "JOIN",
                    join: "OR",
                    conditions: Vec::new(),
                }),
            };
            (w.id.clone(), meta)
        })
        .collect();
    let accent = custom
        .and_then(|c| c.accent_color.clone())
        .or_else(|| catalog.map(|c| c.accent_color.clone()))
        .unwrap_or_else(|| "#4B5563".into());
    let auth_type = match (custom, catalog) {
        (Some(c), _) => serde_json::to_value(c.authentication_type)
            .ok()
            .and_then(|v| v.as_str().map(String::from)),
        (None, Some(c)) => Some(
            match c.auth.kind() {
                "oauth2" => "oauth",
                "oauth2_client_credentials" => "oauth_client_credential",
                // Typed credentials are the SDK's `basic` scheme (AuthenticationScheme has no
                // API-key value); `connectKind` says which.
                "api_key" => "basic",
                other => other,
            }
            .to_string(),
        ),
        _ => None,
    };
    IntegrationView {
        id: integration_id(&i.key),
        kind: if custom.is_some() { "custom".into() } else { i.key.clone() },
        name: i.name.clone(),
        is_active: i.config.active,
        category: catalog.map(|c| c.category.clone()),
        authentication_type: auth_type,
        configs: vec![IntegrationConfigs {
            values: IntegrationConfigValues {
                description: i.config.description.clone(),
                overview: i.config.overview.clone(),
                accent_color: accent.clone(),
                show_watermark: i.config.show_watermark,
                shared_meta: SharedMeta {
                    inputs: crate::routes::sdk_inputs::sdk_inputs(&i.inputs, &i.key),
                },
                workflow_meta,
            },
        }],
        brand_color: accent,
        // Hidden workflows are listed too: the SDK's getIntegrationConfig puts them (and the
        // ones the user may not use) under `hiddenWorkflows`.
        workflows: workflows
            .iter()
            .filter(|w| allowed(w))
            .map(|w| WorkflowEntry {
                id: w.id.clone(),
                description: w.name.clone(),
                integration_id: integration_id(&i.key),
                custom_webhook_trigger_id: custom_trigger_of(w),
            })
            .collect(),
        no_permission_workflows: workflows
            .iter()
            .filter(|w| !allowed(w))
            .map(|w| w.id.clone())
            .collect(),
        sdk_integration_config: crate::routes::sdk_inputs::integration_config(&i.key),
        // `inputFields` and `needPreOauthInputs` are the connector's (`add_install_inputs`).
        need_pre_oauth_inputs: false,
        custom_integration: custom.map(|c| CustomIntegration {
            slug: i.key.clone(),
            name: c.name.clone(),
            input_fields: Vec::new(),
        }),
        connect_kind: None,
        connect_fields: None,
    }
}

/// `uninstallIntegration`: removes the account `X-Paragon-Credential` names (else every
/// account) of the integration, and the settings with the last one.
#[utoipa::path(
    delete,
    path = "/projects/{project}/sdk/integrations/{integration}",
    tag = "connect",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"), ("integration" = String, Path, description = "The integration's key or id"), ("X-Paragon-Credential" = Option<String>, Header, description = "The account (credential id) meant, as the SDK sends it")),
    security(("user_token" = [])),
    responses((status = 200, description = "What was removed", body = Uninstalled))
)]
async fn uninstall(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, integration)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Api<Uninstalled> {
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
    Ok(Json(Uninstalled {
        success: true,
        removed_credentials: done.removed,
        remaining_credentials: done.remaining,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct CredentialQuery {
    /// Only the credentials of this integration (its key or id).
    integration: Option<String>,
    /// Sent (`true`, `false` or `undefined`) only by `getIntegrationAccount`.
    include_account_auth: Option<String>,
}

/// `GET /sdk/credentials`: the user's credentials (of one integration with `?integration=`);
/// with `includeAccountAuth` (`getIntegrationAccount`), one integration with its account
/// instead ([`integration_account`]).
#[utoipa::path(
    get,
    path = "/projects/{project}/sdk/credentials",
    tag = "connect",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"), CredentialQuery, ("X-Paragon-Credential" = Option<String>, Header, description = "The account (credential id) meant, as the SDK sends it")),
    security(("user_token" = [])),
    responses((status = 200, description = "The user's credentials, or with `includeAccountAuth` one integration with its account", body = CredentialsAnswer))
)]
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

async fn credential_list(
    state: &AppState,
    user: &SdkUser,
    integration: Option<&str>,
) -> Api<Vec<CredentialView>> {
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
    Ok(Json(out))
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
) -> Result<IntegrationAccount, ApiError> {
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
    let integration = integration_entry(state, user, found);
    let mut account_auth = None;
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
        account_auth = Some(auth);
    }
    // The refresh may have changed the row: read it again for what is shown.
    let credential = state
        .store
        .credential(&state.project_id, &user.user_id, &credential.id)
        .await?
        .ok_or_else(|| ApiError::not_found("the credential was deleted"))?;
    Ok(IntegrationAccount {
        integration,
        project_id: state.project_id.clone(),
        has_credential: true,
        connected_user_limit_on_dev_cred: 0,
        connected_user_limit_reached: false,
        account_auth,
        credential_id: credential.id,
        credential_status: credential.status,
        provider_id: credential.provider_id,
        provider_data: credential.provider_data,
    })
}

/// One of the user's credentials.
#[utoipa::path(
    get,
    path = "/projects/{project}/sdk/credentials/{credential}",
    tag = "connect",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"), ("credential" = String, Path, description = "The id of one of the user's credentials")),
    security(("user_token" = [])),
    responses((status = 200, description = "The credential", body = CredentialView))
)]
async fn credential(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
) -> Api<CredentialView> {
    let found = state
        .store
        .credential(&state.project_id, &user.user_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such credential for this user"))?;
    Ok(Json(credential_view(&state, &user, &found).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CreateCredential {
    /// The integration's key or id.
    integration_id: Option<String>,
    /// The values the integration asks (API key, user name and password, …).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    payload: Option<serde_json::Map<String, Value>>,
    /// `completeInstall`: a code the company's app obtained itself.
    code: Option<String>,
    redirect_url: Option<String>,
}

/// `POST /sdk/credentials`: a credential from typed values (API key, basic, client
/// credentials, password) or from an authorization code obtained by the app.
#[utoipa::path(
    post,
    path = "/projects/{project}/sdk/credentials",
    tag = "connect",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)")),
    request_body = CreateCredential,
    security(("user_token" = [])),
    responses((status = 200, description = "The new credential", body = CredentialView))
)]
async fn create_credential(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Json(body): Json<CreateCredential>,
) -> Api<CredentialView> {
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
                body.redirect_url.unwrap_or_else(|| para_connect::oauth::redirect_uri(&state));
            let form = vec![
                ("grant_type".to_string(), "authorization_code".to_string()),
                ("code".to_string(), code),
                ("redirect_uri".to_string(), redirect),
            ];
            let token = para_connect::oauth::token_request(&state, &connector, &material, form)
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
#[utoipa::path(
    post,
    path = "/projects/{project}/sdk/credentials/{credential}/complete-setup",
    tag = "connect",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"), ("credential" = String, Path, description = "The id of one of the user's credentials")),
    request_body = CompleteSetup,
    security(("user_token" = [])),
    responses((status = 200, description = "The credential", body = CredentialView))
)]
async fn complete_setup(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Api<CredentialView> {
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

/// `complete-setup`'s body (read by hand, for its errors: this type only describes it).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = CompleteSetup)]
struct CompleteSetup {
    /// The credential's integration (key or id); refused when it is another one.
    #[schema(rename = "integrationId")]
    integration_id: Option<String>,
    /// The values asked after connecting, and `skipPostOAuthInputs`.
    #[schema(value_type = Option<Object>)]
    payload: Option<Value>,
}

#[derive(Deserialize, ToSchema)]
struct PatchCredential {
    config: Option<CredentialConfig>,
}

#[derive(Deserialize, ToSchema)]
struct CredentialConfig {
    /// The integration-level values, replaced wholesale.
    #[serde(default, rename = "sharedSettings")]
    #[schema(value_type = Option<Object>)]
    shared_settings: Option<Value>,
    #[serde(default, rename = "workflowSettings")]
    workflow_settings: Option<BTreeMap<String, WorkflowSetting>>,
}

#[derive(Deserialize, ToSchema)]
struct WorkflowSetting {
    enabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    settings: Option<Value>,
}

/// Replaces the settings (shared and per workflow) of the credential's configuration named by
/// `X-Paragon-Configuration-Id` (default: its default one) wholesale. Values that do not fit
/// their inputs are refused (nothing of that key is saved) and listed in `errors`.
#[utoipa::path(
    patch,
    path = "/projects/{project}/sdk/credentials/{credential}",
    tag = "connect",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"), ("credential" = String, Path, description = "The id of one of the user's credentials"), ("X-Paragon-Configuration-Id" = Option<String>, Header, description = "The configuration meant: its id, or `ext:` and its externalId")),
    request_body = PatchCredential,
    security(("user_token" = [])),
    responses((status = 200, description = "The credential, with the values refused", body = PatchedCredential))
)]
async fn patch_credential(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    Json(body): Json<PatchCredential>,
) -> Api<PatchedCredential> {
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
    let credential = credential_view(&state, &user, &found).await?;
    Ok(Json(PatchedCredential { credential, errors }))
}

/// Deletes one of the user's credentials, with its configurations.
#[utoipa::path(
    delete,
    path = "/projects/{project}/sdk/credentials/{credential}",
    tag = "connect",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"), ("credential" = String, Path, description = "The id of one of the user's credentials")),
    security(("user_token" = [])),
    responses((status = 200, description = "Deleted", body = Success))
)]
async fn delete_credential(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
) -> Api<Success> {
    let found = state.store.credential(&state.project_id, &user.user_id, &id).await?;
    if !state.store.delete_credential(&state.project_id, &user.user_id, &id).await? {
        return Err(ApiError::not_found("no such credential for this user"));
    }
    if let Some(c) = found {
        state.credential_cache.forget(&user.user_id, &c.integration);
    }
    Ok(Json(Success { success: true }))
}

/// The workflow and its integration's key, or 404.
fn find_workflow(build: &para_build::Build, workflow_id: &str) -> Result<String, ApiError> {
    build
        .workflow(workflow_id)
        .map(|(i, _)| i.key.clone())
        .ok_or_else(|| ApiError::not_found(format!("no workflow `{workflow_id}` in this project")))
}

/// `POST /sdk/workflows/{id}`'s body, optional (the SDK sends none).
#[derive(Deserialize, Default, ToSchema)]
struct EnableBody {
    /// The workflow's values, saved with the toggle (older clients).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    settings: Option<Value>,
}

/// `enableWorkflow`: turns the workflow on for the user, in the configuration the headers name.
#[utoipa::path(
    post,
    path = "/projects/{project}/sdk/workflows/{workflow}",
    tag = "connect",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"), ("workflow" = String, Path, description = "The workflow's id"), ("X-Paragon-Credential" = Option<String>, Header, description = "The account (credential id) meant, as the SDK sends it"), ("X-Paragon-Configuration-Id" = Option<String>, Header, description = "The configuration meant: its id, or `ext:` and its externalId")),
    request_body(content = Option<EnableBody>, description = "Optional: the workflow's values"),
    security(("user_token" = [])),
    responses((status = 200, description = "The workflow is on", body = WorkflowToggled))
)]
async fn enable_workflow(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, workflow)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Api<WorkflowToggled> {
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

/// `disableWorkflow`: turns the workflow off for the user.
#[utoipa::path(
    delete,
    path = "/projects/{project}/sdk/workflows/{workflow}",
    tag = "connect",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"), ("workflow" = String, Path, description = "The workflow's id"), ("X-Paragon-Credential" = Option<String>, Header, description = "The account (credential id) meant, as the SDK sends it"), ("X-Paragon-Configuration-Id" = Option<String>, Header, description = "The configuration meant: its id, or `ext:` and its externalId")),
    security(("user_token" = [])),
    responses((status = 200, description = "The workflow is off", body = WorkflowToggled))
)]
async fn disable_workflow(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, workflow)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Api<WorkflowToggled> {
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
) -> Api<WorkflowToggled> {
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
    Ok(Json(WorkflowToggled { success: true, workflow_id: workflow.to_string(), enabled }))
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
