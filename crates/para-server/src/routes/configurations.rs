//! Several configurations per credential: the SDK's `createConfiguration`,
//! `updateConfiguration` and `destroyConfiguration`, and how a request names one
//! (`X-Paragon-Configuration-Id`, by id or external id).
//!
//! Every credential has a default configuration, which needs no stored row: its id is derived
//! from the credential's, and its settings are the integration-level ones (settings key `""`),
//! which the user's accounts of the integration share. A configuration created with
//! `createConfiguration` has its own row, id and settings (settings key: its id), and belongs to
//! one credential: deleting the credential deletes it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use para_store::{Credential, CredentialConfiguration};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::SdkUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::CredentialView;
pub use para_connect::configurations::{default_id, of_credential, resolve, settings_key};

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(create, update, destroy))
}

/// A configuration deleted.
#[derive(Serialize, ToSchema)]
pub struct Destroyed {
    pub success: bool,
    /// The configuration's id.
    pub id: String,
}

/// The `X-Paragon-Configuration-Id` header, trimmed; `None` when absent or empty.
pub fn selected(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-paragon-configuration-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The user's credential `id` (`None` when they have none of that id) and all their
/// configurations, fetched together. Each caller says in its own 404 where the id came from.
pub(crate) async fn credential_and_configurations(
    state: &AppState,
    user: &SdkUser,
    id: &str,
) -> Result<(Option<Credential>, Vec<CredentialConfiguration>), ApiError> {
    let (credential, rows) = tokio::join!(
        state.store.credential(&state.project_id, &user.user_id, id),
        state.store.configurations(&state.project_id, &user.user_id),
    );
    Ok((credential?, rows?))
}

/// The user's credential `id` and their configurations, or 404.
async fn load(
    state: &AppState,
    user: &SdkUser,
    id: &str,
) -> Result<(Credential, Vec<CredentialConfiguration>), ApiError> {
    let (credential, rows) = credential_and_configurations(state, user, id).await?;
    let credential = credential.ok_or_else(|| {
        ApiError::not_found(format!("you have no credential `{id}` (in the request's path)"))
    })?;
    Ok((credential, rows))
}

/// `createConfiguration`'s body (optional).
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    /// The app's own id for the configuration, unique per credential.
    external_id: Option<String>,
}

/// `POST /sdk/credentials/{id}/configurations {externalId?}`: a new configuration of the
/// credential, with its own (empty) settings. Answers the credential.
#[utoipa::path(
    post,
    path = "/projects/{project}/sdk/credentials/{credential}/configurations",
    tag = "configurations",
    params(
        ("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"),
        ("credential" = String, Path, description = "The id of one of the user's credentials"),
    ),
    request_body(content = Option<CreateBody>, description = "Optional: the configuration's externalId"),
    security(("user_token" = [])),
    responses((status = 200, description = "The credential, with the new configuration", body = CredentialView))
)]
async fn create(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<CredentialView>, ApiError> {
    let body: CreateBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("the body must be JSON {{\"externalId\"?: string}}: {e}"))
        })?
    };
    let (credential, rows) = load(&state, &user, &id).await?;
    if credential.status != para_store::CredentialStatus::Valid {
        return Err(ApiError::bad_request(format!(
            "credential `{id}` is {}: connect it again before adding configurations",
            credential.status
        )));
    }
    let external_id = match body.external_id.as_deref().map(str::trim) {
        Some("") => {
            return Err(ApiError::bad_request(
                "`externalId` must not be an empty or whitespace-only string",
            ));
        }
        Some(e) if e.starts_with("ext:") => {
            return Err(ApiError::bad_request(
                "`externalId` must not start with `ext:` (that prefix names an external id when selecting)",
            ));
        }
        other => other,
    };
    if let Some(e) = external_id
        && of_credential(&credential, &rows).iter().any(|c| c.external_id.as_deref() == Some(e))
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "configuration_exists",
            format!("credential `{id}` already has a configuration with externalId `{e}`"),
        ));
    }
    // A bound on what one user can make the server store (and poll, per configuration).
    let max = state.config.limits.max_configurations_per_credential;
    let made = of_credential(&credential, &rows).iter().filter(|c| !c.is_default).count();
    if made >= max {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_configurations",
            format!(
                "credential `{id}` has {made} configurations, the most this server allows (PARA_MAX_CONFIGURATIONS_PER_CREDENTIAL={max}); destroy one first"
            ),
        ));
    }
    state.store.insert_configuration(&state.project_id, &user.user_id, &id, external_id).await?;
    Ok(Json(crate::views::credential_view(&state, &user, &credential).await?))
}

/// `updateConfiguration`'s body.
#[derive(Deserialize, ToSchema)]
struct UpdateBody {
    /// The configuration's new `configMeta`, replacing the old.
    #[schema(value_type = Object)]
    meta: Value,
}

/// `PATCH /sdk/credentials/{id}/configurations {meta}` with `X-Paragon-Configuration-Id`:
/// replaces the configuration's `configMeta`. Answers the credential.
#[utoipa::path(
    patch,
    path = "/projects/{project}/sdk/credentials/{credential}/configurations",
    tag = "configurations",
    params(
        ("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"),
        ("credential" = String, Path, description = "The id of one of the user's credentials"),
        ("X-Paragon-Configuration-Id" = String, Header, description = "The configuration: its id, or `ext:` and its externalId"),    ),
    request_body = UpdateBody,
    security(("user_token" = [])),
    responses((status = 200, description = "The credential", body = CredentialView))
)]
async fn update(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<UpdateBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<CredentialView>, ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON {{\"meta\": {{…}}}}: {}",
            e.body_text()
        ))
    })?;
    if !body.meta.is_object() {
        return Err(ApiError::bad_request("`meta` must be a JSON object"));
    }
    let wanted = required(&headers)?;
    let (credential, rows) = load(&state, &user, &id).await?;
    let configuration = resolve(Some(wanted), &credential, &rows)?;
    let updated = CredentialConfiguration { meta: body.meta, ..configuration };
    if !state.store.put_configuration_meta(&state.project_id, &user.user_id, &updated).await? {
        return Err(ApiError::not_found(format!("you have no configuration `{wanted}`")));
    }
    Ok(Json(crate::views::credential_view(&state, &user, &credential).await?))
}

/// `DELETE /sdk/credentials/{id}/configurations` with `X-Paragon-Configuration-Id`: deletes
/// the configuration and its settings. A default configuration goes only with its credential.
#[utoipa::path(
    delete,
    path = "/projects/{project}/sdk/credentials/{credential}/configurations",
    tag = "configurations",
    params(
        ("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"),
        ("credential" = String, Path, description = "The id of one of the user's credentials"),
        ("X-Paragon-Configuration-Id" = String, Header, description = "The configuration: its id, or `ext:` and its externalId"),    ),
    security(("user_token" = [])),
    responses((status = 200, description = "Deleted", body = Destroyed))
)]
async fn destroy(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Destroyed>, ApiError> {
    let wanted = required(&headers)?;
    let (credential, rows) = load(&state, &user, &id).await?;
    let configuration = resolve(Some(wanted), &credential, &rows)?;
    if configuration.is_default {
        return Err(ApiError::bad_request(format!(
            "`{wanted}` is the default configuration of credential `{id}`: it cannot be deleted \
             on its own (uninstall the account to remove it)"
        )));
    }
    if !state
        .store
        .delete_configuration(&state.project_id, &user.user_id, &configuration.id)
        .await?
    {
        return Err(ApiError::not_found(format!("you have no configuration `{wanted}`")));
    }
    Ok(Json(Destroyed { success: true, id: configuration.id }))
}

fn required(headers: &HeaderMap) -> Result<&str, ApiError> {
    selected(headers).ok_or_else(|| {
        ApiError::bad_request(
            "name the configuration in the X-Paragon-Configuration-Id header (its id or externalId)",
        )
    })
}
