//! The Connect API's shapes shared by several of its routes (`api.rs`, configurations,
//! OAuth, setting choices, resources, trigger types): an integration's id and lookup, a
//! credential as the SDK reads it with its configurations and their settings, timestamps. It
//! imports no route, so the routes depend on it one way.

use serde_json::{Value, json};

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
    pub fn workflows_json(&self, connected: bool) -> Value {
        let mut map = serde_json::Map::new();
        for (id, enabled, values) in &self.workflows {
            map.insert(id.clone(), json!({ "enabled": *enabled && connected, "settings": values }));
        }
        Value::Object(map)
    }
}

/// A credential as the SDK reads it (never its secret), with its configurations (default
/// first) and each one's settings.
pub fn credential_json(
    c: &para_store::Credential,
    integration: Option<&para_build::Integration>,
    settings: &[para_store::Settings],
    rows: &[para_store::CredentialConfiguration],
) -> Value {
    let valid = c.status == para_store::CredentialStatus::Valid;
    let configurations: Vec<Value> = para_connect::configurations::of_credential(c, rows)
        .iter()
        .map(|k| {
            let config = match integration {
                Some(i) => {
                    let key = para_connect::configurations::settings_key(k);
                    Configuration::of(i, settings, &key)
                }
                None => Configuration { shared: json!({}), workflows: Vec::new() },
            };
            let mut entry = json!({
                "id": k.id,
                "connectCredentialId": c.id,
                "isDefault": k.is_default,
                "sharedSettings": config.shared,
                "workflowSettings": config.workflows_json(valid),
                "configMeta": k.meta,
                "dateCreated": millis_iso(k.created_at),
            });
            if let Some(external) = &k.external_id {
                entry["externalId"] = json!(external);
            }
            entry
        })
        .collect();
    json!({
        "id": c.id,
        "integrationId": integration_id(&c.integration),
        "integration": c.integration,
        "status": c.status,
        "statusReason": c.status_reason,
        "providerId": c.provider_id,
        "providerData": c.provider_data,
        "dateCreated": millis_iso(c.created_at),
        "dateUpdated": millis_iso(c.updated_at),
        "dateValidUntil": c.expires_at.map(millis_iso),
        "configurations": configurations,
    })
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
) -> Result<Value, ApiError> {
    let build = state.build();
    let (settings, rows) = tokio::join!(
        state.store.settings(&state.project_id, &user.user_id),
        state.store.configurations(&state.project_id, &user.user_id),
    );
    Ok(credential_json(c, build.integrations.get(&c.integration), &settings?, &rows?))
}
