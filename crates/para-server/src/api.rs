//! The Connect API the SDK calls (CONNECT-API.md): user state, integrations, credentials,
//! workflow toggles. Every handler reads and writes only the calling user's rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::SdkUser;
use crate::error::ApiError;
use crate::state::AppState;

type Api = Result<Json<Value>, ApiError>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(health))
        .route("/projects/{project}/sdk/me", get(me).patch(patch_me))
        .route("/projects/{project}/sdk/integrations", get(integrations))
        .route("/projects/{project}/sdk/integrations/{integration}", delete(uninstall))
        .route("/projects/{project}/sdk/credentials", get(credentials))
        .route(
            "/projects/{project}/sdk/credentials/{credential}",
            get(credential).patch(patch_credential).delete(delete_credential),
        )
        .route(
            "/projects/{project}/sdk/workflows/{workflow}",
            axum::routing::post(enable_workflow).delete(disable_workflow),
        )
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let build = state.build();
    Json(json!({ "ok": true, "projectId": state.project_id, "buildHash": build.build_hash }))
}

/// The stable id the SDK uses for an integration: a UUID derived from its key.
pub fn integration_id(key: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("para:integration:{key}").as_bytes())
        .to_string()
}

/// An integration of the build by key or by its derived id.
fn find_integration<'b>(
    build: &'b para_build::Build,
    key_or_id: &str,
) -> Option<&'b para_build::Integration> {
    build
        .integrations
        .get(key_or_id)
        .or_else(|| build.integrations.values().find(|i| integration_id(&i.key) == key_or_id))
}

/// The user's whole state, as `getUser()` returns it.
async fn me(State(state): State<Arc<AppState>>, user: SdkUser) -> Api {
    Ok(Json(user_state(&state, &user).await?))
}

pub async fn user_state(state: &AppState, user: &SdkUser) -> Result<Value, ApiError> {
    let build = state.build();
    let credentials = state.store.credentials(&state.project_id, &user.user_id, None).await?;
    let settings = state.store.settings(&state.project_id, &user.user_id).await?;
    let mut integrations = serde_json::Map::new();
    for (key, integration) in &build.integrations {
        let mine: Vec<&para_store::Credential> =
            credentials.iter().filter(|c| &c.integration == key).collect();
        let active = mine.first();
        let shared = settings
            .iter()
            .find(|s| &s.integration == key && s.workflow_id.is_empty())
            .map(|s| s.values.clone())
            .unwrap_or_else(|| json!({}));
        let mut workflow_settings = serde_json::Map::new();
        for (id, workflow) in &integration.workflows {
            let stored = settings.iter().find(|s| &s.integration == key && &s.workflow_id == id);
            let enabled = stored.and_then(|s| s.enabled).unwrap_or(workflow.default_enabled);
            workflow_settings.insert(
                id.clone(),
                json!({
                    "enabled": enabled && active.is_some(),
                    "settings": stored.map(|s| s.values.clone()).unwrap_or_else(|| json!({})),
                }),
            );
        }
        integrations.insert(
            key.clone(),
            json!({
                "enabled": active.is_some_and(|c| c.status == "VALID"),
                "credentialId": active.map(|c| c.id.clone()),
                "credentialStatus": active.map(|c| c.status.clone()),
                "providerId": active.and_then(|c| c.provider_id.clone()),
                "providerData": active.map(|c| c.provider_data.clone()).unwrap_or_else(|| json!({})),
                "allCredentials": mine.iter().map(|c| credential_json(c)).collect::<Vec<_>>(),
                "allConfigurations": [],
                "sharedSettings": shared,
                "workflowSettings": workflow_settings,
            }),
        );
    }
    Ok(json!({
        "authenticated": true,
        "userId": user.user_id,
        "meta": user.meta,
        "integrations": integrations,
        "resources": [],
    }))
}

/// A credential as the SDK sees it: never its secret.
fn credential_json(c: &para_store::Credential) -> Value {
    json!({
        "id": c.id,
        "integration": c.integration,
        "integrationId": integration_id(&c.integration),
        "status": c.status,
        "statusReason": c.status_reason,
        "providerId": c.provider_id,
        "providerData": c.provider_data,
        "dateCreated": c.created_at,
        "dateUpdated": c.updated_at,
    })
}

#[derive(Deserialize)]
struct PatchMe {
    meta: Value,
}

async fn patch_me(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Json(body): Json<PatchMe>,
) -> Api {
    if !body.meta.is_object() {
        return Err(ApiError::bad_request("`meta` must be a JSON object"));
    }
    let updated =
        state.store.touch_user(&state.project_id, &user.user_id, Some(&body.meta)).await?;
    let user = SdkUser { user_id: updated.user_id, meta: updated.meta };
    Ok(Json(user_state(&state, &user).await?))
}

/// The project's integrations, with their config, inputs and workflows (the build's facts
/// plus the catalog's display facts).
async fn integrations(State(state): State<Arc<AppState>>, _user: SdkUser) -> Api {
    let build = state.build();
    let list: Vec<Value> = build
        .integrations
        .values()
        .filter(|i| i.config.active)
        .map(|i| {
            let catalog = para_catalog::lookup(&i.key);
            let mut workflows: Vec<&para_build::Workflow> =
                i.workflows.values().filter(|w| !w.hidden).collect();
            workflows.sort_by_key(|w| w.order);
            json!({
                "id": integration_id(&i.key),
                "type": i.key,
                "name": i.name,
                "isActive": i.config.active,
                "category": catalog.map(|c| c.category.clone()),
                "brandColor": catalog.map(|c| c.accent_color.clone()),
                "configs": [{
                    "values": {
                        "description": i.config.description,
                        "overview": i.config.overview,
                        "showWatermark": i.config.show_watermark,
                        "sharedMeta": { "inputs": i.inputs },
                    }
                }],
                "workflows": workflows.iter().map(|w| json!({
                    "id": w.id,
                    "description": w.name,
                    "descriptionText": w.description,
                    "defaultEnabled": w.default_enabled,
                    "inputs": w.inputs,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

async fn uninstall(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, integration)): Path<(String, String)>,
) -> Api {
    let build = state.build();
    let found = find_integration(&build, &integration).ok_or_else(|| {
        ApiError::not_found(format!("no integration `{integration}` in this project"))
    })?;
    let removed = state.store.uninstall(&state.project_id, &user.user_id, &found.key).await?;
    Ok(Json(json!({ "success": true, "removedCredentials": removed })))
}

#[derive(Deserialize)]
struct CredentialQuery {
    integration: Option<String>,
}

async fn credentials(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Query(query): Query<CredentialQuery>,
) -> Api {
    let build = state.build();
    let key = match query.integration.as_deref() {
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
    let list = state.store.credentials(&state.project_id, &user.user_id, key.as_deref()).await?;
    Ok(Json(Value::Array(list.iter().map(credential_json).collect())))
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
    Ok(Json(credential_json(&found)))
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

/// Replaces the credential's settings (shared and per workflow) wholesale.
async fn patch_credential(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
    Json(body): Json<PatchCredential>,
) -> Api {
    let found = state
        .store
        .credential(&state.project_id, &user.user_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such credential for this user"))?;
    if let Some(config) = body.config {
        if let Some(shared) = &config.shared_settings {
            state
                .store
                .put_settings(
                    &state.project_id,
                    &user.user_id,
                    &found.integration,
                    "",
                    None,
                    Some(shared),
                )
                .await?;
        }
        let build = state.build();
        let integration = build.integrations.get(&found.integration);
        for (workflow_id, setting) in config.workflow_settings.unwrap_or_default() {
            if integration.is_none_or(|i| !i.workflows.contains_key(&workflow_id)) {
                return Err(ApiError::bad_request(format!(
                    "`{workflow_id}` is not a workflow of {}",
                    found.integration
                )));
            }
            state
                .store
                .put_settings(
                    &state.project_id,
                    &user.user_id,
                    &found.integration,
                    &workflow_id,
                    setting.enabled,
                    setting.settings.as_ref(),
                )
                .await?;
        }
    }
    Ok(Json(credential_json(&found)))
}

async fn delete_credential(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
) -> Api {
    if !state.store.delete_credential(&state.project_id, &user.user_id, &id).await? {
        return Err(ApiError::not_found("no such credential for this user"));
    }
    Ok(Json(json!({ "success": true })))
}

/// The workflow and its integration's key, or 404.
fn find_workflow(build: &para_build::Build, workflow_id: &str) -> Result<String, ApiError> {
    build
        .integrations
        .values()
        .find(|i| i.workflows.contains_key(workflow_id))
        .map(|i| i.key.clone())
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
    body: Option<Json<EnableBody>>,
) -> Api {
    set_workflow(&state, &user, &workflow, true, body.and_then(|Json(b)| b.settings)).await
}

async fn disable_workflow(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, workflow)): Path<(String, String)>,
) -> Api {
    set_workflow(&state, &user, &workflow, false, None).await
}

async fn set_workflow(
    state: &AppState,
    user: &SdkUser,
    workflow: &str,
    enabled: bool,
    settings: Option<Value>,
) -> Api {
    let build = state.build();
    let key = find_workflow(&build, workflow)?;
    if enabled {
        let connected =
            state.store.credentials(&state.project_id, &user.user_id, Some(&key)).await?;
        if connected.is_empty() {
            return Err(ApiError::bad_request(format!(
                "connect {key} before enabling its workflows"
            )));
        }
    }
    state
        .store
        .put_settings(
            &state.project_id,
            &user.user_id,
            &key,
            workflow,
            Some(enabled),
            settings.as_ref(),
        )
        .await?;
    Ok(Json(json!({ "success": true, "workflowId": workflow, "enabled": enabled })))
}
