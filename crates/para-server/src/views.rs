//! The Connect API's shapes shared by several of its routes (`api.rs`, configurations,
//! OAuth, setting choices, resources, trigger types): an integration's id and lookup, a
//! credential as the SDK reads it with its configurations and their settings, timestamps. It
//! imports no route, so the routes depend on it one way.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::auth::SdkUser;
use crate::error::ApiError;
use crate::state::AppState;

/// The stable id the SDK uses for an integration: a UUID derived from its key.
pub fn integration_id(key: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("para:integration:{key}").as_bytes())
        .to_string()
}

/// An integration of the build by key or by its derived id.
pub fn find_integration<'b>(
    build: &'b para_build::Build,
    key_or_id: &str,
) -> Option<&'b para_build::Integration> {
    build
        .integrations
        .get(key_or_id)
        .or_else(|| build.integrations.values().find(|i| integration_id(&i.key) == key_or_id))
}

/// A user's settings of one integration in one configuration: shared values and per-workflow
/// toggles and values.
pub struct Configuration {
    pub shared: Value,
    /// (workflow id, enabled as stored or by default, values)
    pub workflows: Vec<(String, bool, Value)>,
}

impl Configuration {
    /// The settings stored under `configuration` (the integration-level ones, or a made
    /// configuration's: [`para_connect::configurations::settings_key`]).
    pub fn of(
        integration: &para_build::Integration,
        settings: &[para_store::Settings],
        configuration: &para_store::SettingsKey,
    ) -> Self {
        let key = &integration.key;
        let stored = |workflow_id: &str| {
            para_store::Settings::find(settings, key, configuration, workflow_id)
        };
        // Password settings are sealed and never sent back ([`crate::passwords`]).
        let shared =
            stored("").map(|s| crate::passwords::hidden(&s.values)).unwrap_or_else(|| json!({}));
        let workflows = integration
            .workflows
            .iter()
            .map(|(id, workflow)| {
                let stored = stored(id);
                let enabled = stored.and_then(|s| s.enabled).unwrap_or(workflow.default_enabled);
                let values = stored
                    .map(|s| crate::passwords::hidden(&s.values))
                    .unwrap_or_else(|| json!({}));
                (id.clone(), enabled, values)
            })
            .collect();
        Configuration { shared, workflows }
    }

    /// `workflowSettings` as the SDK reads it; nothing runs while not connected.
    pub fn workflows_view(&self, connected: bool) -> BTreeMap<String, WorkflowSettingView> {
        self.workflows
            .iter()
            .map(|(id, enabled, values)| {
                let view = WorkflowSettingView {
                    enabled: *enabled && connected,
                    settings: values.clone(),
                };
                (id.clone(), view)
            })
            .collect()
    }
}

/// A workflow's toggle and values in one configuration.
#[derive(Serialize, ToSchema, Clone)]
pub struct WorkflowSettingView {
    /// On for this user (always off while the account is not connected).
    pub enabled: bool,
    /// The workflow's User Settings, as the user saved them (password values hidden).
    pub settings: Value,
}

/// A configuration of a credential: its own settings (`sharedSettings`, `workflowSettings`)
/// and the app's metadata about it (`configMeta`).
#[derive(Serialize, ToSchema, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationView {
    pub id: String,
    pub connect_credential_id: String,
    /// Every credential has one default configuration, which uses the integration-level
    /// settings.
    pub is_default: bool,
    pub shared_settings: Value,
    pub workflow_settings: BTreeMap<String, WorkflowSettingView>,
    pub config_meta: Value,
    pub date_created: String,
    /// The app's own id for it (`createConfiguration({externalId})`), when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// A credential as the SDK reads it (never its secret): a user's account of an integration.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialView {
    pub id: String,
    /// The integration's id ([`integration_id`]).
    pub integration_id: String,
    /// The integration's key (`hubspot`, or a custom integration's slug).
    pub integration: String,
    /// `VALID`, `INVALID`, `PENDING` (a setup not finished) …
    #[schema(schema_with = crate::openapi::credential_status)]
    pub status: para_store::CredentialStatus,
    pub status_reason: Option<String>,
    /// The account's id at the provider, when known.
    pub provider_id: Option<String>,
    /// What the provider said about the account (free-form).
    pub provider_data: Value,
    pub date_created: String,
    pub date_updated: String,
    /// When the access token expires, for credentials that expire.
    pub date_valid_until: Option<String>,
    /// The default configuration first.
    pub configurations: Vec<ConfigurationView>,
}

/// A credential as the SDK reads it (never its secret), with its configurations (default
/// first) and each one's settings.
pub fn credential_json(
    c: &para_store::Credential,
    integration: Option<&para_build::Integration>,
    settings: &[para_store::Settings],
    rows: &[para_store::CredentialConfiguration],
) -> CredentialView {
    let valid = c.status == para_store::CredentialStatus::Valid;
    let configurations = para_connect::configurations::of_credential(c, rows)
        .iter()
        .map(|k| {
            let config = match integration {
                Some(i) => {
                    let key = para_connect::configurations::settings_key(k);
                    Configuration::of(i, settings, &key)
                }
                None => Configuration { shared: json!({}), workflows: Vec::new() },
            };
            ConfigurationView {
                id: k.id.clone(),
                connect_credential_id: c.id.clone(),
                is_default: k.is_default,
                workflow_settings: config.workflows_view(valid),
                shared_settings: config.shared,
                config_meta: k.meta.clone(),
                date_created: millis_iso(k.created_at),
                external_id: k.external_id.clone(),
            }
        })
        .collect();
    CredentialView {
        id: c.id.clone(),
        integration_id: integration_id(&c.integration),
        integration: c.integration.clone(),
        status: c.status,
        status_reason: c.status_reason.clone(),
        provider_id: c.provider_id.clone(),
        provider_data: c.provider_data.clone(),
        date_created: millis_iso(c.created_at),
        date_updated: millis_iso(c.updated_at),
        date_valid_until: c.expires_at.map(millis_iso),
        configurations,
    }
}

/// Unix milliseconds as an RFC 3339 UTC timestamp.
pub fn millis_iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The credential with its configurations and their current settings.
pub async fn credential_view(
    state: &AppState,
    user: &SdkUser,
    c: &para_store::Credential,
) -> Result<CredentialView, ApiError> {
    let build = state.build();
    let (settings, rows) = tokio::join!(
        state.store.settings(&state.project_id, &user.user_id),
        state.store.configurations(&state.project_id, &user.user_id),
    );
    Ok(credential_json(c, build.integrations.get(&c.integration), &settings?, &rows?))
}
