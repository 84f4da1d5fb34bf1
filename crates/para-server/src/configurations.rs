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

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Json, Router};
use para_store::{Credential, CredentialConfiguration};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::SdkUser;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(
        "/projects/{project}/sdk/credentials/{credential}/configurations",
        axum::routing::post(create).patch(update).delete(destroy),
    )
}

/// The id of a credential's default configuration.
pub fn default_id(credential_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("para:configuration:{credential_id}").as_bytes(),
    )
    .to_string()
}

/// The settings key of a configuration: `""` for a default one (the integration-level
/// settings), else its id.
pub fn settings_key(configuration: &CredentialConfiguration) -> &str {
    if configuration.is_default { "" } else { &configuration.id }
}

/// A credential's configurations, default first, then the created ones oldest first.
pub fn of_credential(
    c: &Credential,
    rows: &[CredentialConfiguration],
) -> Vec<CredentialConfiguration> {
    let mine = rows.iter().filter(|r| r.credential_id == c.id);
    let default =
        mine.clone().find(|r| r.is_default).cloned().unwrap_or_else(|| CredentialConfiguration {
            id: default_id(&c.id),
            credential_id: c.id.clone(),
            external_id: None,
            is_default: true,
            meta: json!({}),
            created_at: c.created_at,
        });
    std::iter::once(default).chain(mine.filter(|r| !r.is_default).cloned()).collect()
}

/// The `X-Paragon-Configuration-Id` header, trimmed; `None` when absent or empty.
pub fn selected(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-paragon-configuration-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The configuration of `credential` a request names: by id, or by external id (plain or
/// `ext:`-prefixed, as the SDK accepts it); none named: the default one.
pub fn resolve(
    wanted: Option<&str>,
    credential: &Credential,
    rows: &[CredentialConfiguration],
) -> Result<CredentialConfiguration, ApiError> {
    let all = of_credential(credential, rows);
    let Some(wanted) = wanted else { return Ok(all.into_iter().next().expect("a default")) };
    let external = wanted.strip_prefix("ext:").unwrap_or(wanted).trim();
    all.into_iter()
        .find(|c| c.id == wanted || c.external_id.as_deref() == Some(external))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "credential `{}` has no configuration `{wanted}` (X-Paragon-Configuration-Id); \
                 its configurations are listed in the credential's `configurations`",
                credential.id
            ))
        })
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

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    external_id: Option<String>,
}

/// `POST /sdk/credentials/{id}/configurations {externalId?}`: a new configuration of the
/// credential, with its own (empty) settings. Answers the credential.
async fn create(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: CreateBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("the body must be JSON {{\"externalId\"?: string}}: {e}"))
        })?
    };
    let (credential, rows) = load(&state, &user, &id).await?;
    if credential.status != "VALID" {
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
    Ok(Json(crate::api::credential_view(&state, &user, &credential).await?))
}

#[derive(Deserialize)]
struct UpdateBody {
    meta: Value,
}

/// `PATCH /sdk/credentials/{id}/configurations {meta}` with `X-Paragon-Configuration-Id`:
/// replaces the configuration's `configMeta`. Answers the credential.
async fn update(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<UpdateBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(crate::api::credential_view(&state, &user, &credential).await?))
}

/// `DELETE /sdk/credentials/{id}/configurations` with `X-Paragon-Configuration-Id`: deletes
/// the configuration and its settings. A default configuration goes only with its credential.
async fn destroy(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path((_project, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "success": true, "id": configuration.id })))
}

fn required(headers: &HeaderMap) -> Result<&str, ApiError> {
    selected(headers).ok_or_else(|| {
        ApiError::bad_request(
            "name the configuration in the X-Paragon-Configuration-Id header (its id or externalId)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(id: &str) -> Credential {
        Credential {
            id: id.into(),
            user_id: "u".into(),
            integration: "slack".into(),
            status: "VALID".into(),
            status_reason: None,
            provider_id: None,
            provider_data: json!({}),
            secret: String::new(),
            expires_at: None,
            created_at: 1,
            updated_at: 1,
        }
    }

    fn row(
        id: &str,
        credential: &str,
        external: Option<&str>,
        is_default: bool,
    ) -> CredentialConfiguration {
        CredentialConfiguration {
            id: id.into(),
            credential_id: credential.into(),
            external_id: external.map(str::to_string),
            is_default,
            meta: json!({}),
            created_at: 2,
        }
    }

    #[test]
    fn configurations_are_named_by_id_or_external_id_among_the_credentials_own() {
        let c = credential("c1");
        let rows = [row("k1", "c1", Some("team-a"), false), row("k2", "c2", Some("team-b"), false)];
        let all = of_credential(&c, &rows);
        assert_eq!(all.len(), 2);
        assert!(all[0].is_default && all[0].id == default_id("c1"));
        assert_eq!(settings_key(&all[0]), "");
        assert_eq!(settings_key(&all[1]), "k1");
        assert_eq!(resolve(None, &c, &rows).unwrap().id, default_id("c1"));
        assert_eq!(resolve(Some(&default_id("c1")), &c, &rows).unwrap().id, default_id("c1"));
        assert_eq!(resolve(Some("k1"), &c, &rows).unwrap().id, "k1");
        assert_eq!(resolve(Some("team-a"), &c, &rows).unwrap().id, "k1");
        assert_eq!(resolve(Some("ext:team-a"), &c, &rows).unwrap().id, "k1");
        // Another credential's configuration is not this one's.
        assert_eq!(resolve(Some("k2"), &c, &rows).unwrap_err().status, StatusCode::NOT_FOUND);
        assert!(resolve(Some("team-b"), &c, &rows).is_err());
        // A stored default row (it got metadata) replaces the derived one.
        let with_meta = CredentialConfiguration { meta: json!({"m": 1}), ..all[0].clone() };
        let all = of_credential(&c, &[with_meta.clone(), rows[0].clone()]);
        assert_eq!(all, [with_meta, rows[0].clone()]);
    }
}
