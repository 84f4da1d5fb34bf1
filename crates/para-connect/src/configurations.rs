//! Several configurations per credential (the SDK's `createConfiguration`…): which one a
//! request names, and each one's settings key.
//!
//! Every credential has a default configuration, which needs no stored row: its id is derived
//! from the credential's, and its settings are the integration-level ones
//! ([`SettingsKey::Integration`]), which the user's accounts of the integration share. A
//! configuration created with `createConfiguration` has its own row, id and settings
//! ([`SettingsKey::Configuration`] with its id), and belongs to one credential: deleting the
//! credential deletes it.

use para_store::{Credential, CredentialConfiguration, SettingsKey};
use serde_json::json;

use crate::Error;

/// The id of a credential's default configuration.
pub fn default_id(credential_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("para:configuration:{credential_id}").as_bytes(),
    )
    .to_string()
}

/// Whose settings a configuration shows: the integration-level ones for a default
/// configuration, else its own.
pub fn settings_key(configuration: &CredentialConfiguration) -> SettingsKey {
    if configuration.is_default {
        SettingsKey::Integration
    } else {
        SettingsKey::Configuration(configuration.id.clone())
    }
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

/// The configuration of `credential` a request names: by id, or by external id (plain or
/// `ext:`-prefixed, as the SDK accepts it); none named: the default one.
pub fn resolve(
    wanted: Option<&str>,
    credential: &Credential,
    rows: &[CredentialConfiguration],
) -> Result<CredentialConfiguration, Error> {
    let all = of_credential(credential, rows);
    let Some(wanted) = wanted else { return Ok(all.into_iter().next().expect("a default")) };
    let external = wanted.strip_prefix("ext:").unwrap_or(wanted).trim();
    all.into_iter()
        .find(|c| c.id == wanted || c.external_id.as_deref() == Some(external))
        .ok_or_else(|| {
            Error::not_found(format!(
                "credential `{}` has no configuration `{wanted}` (X-Paragon-Configuration-Id); \
                 its configurations are listed in the credential's `configurations`",
                credential.id
            ))
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
            status: para_store::CredentialStatus::Valid,
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
        assert_eq!(settings_key(&all[0]), SettingsKey::Integration);
        assert_eq!(settings_key(&all[1]), SettingsKey::Configuration("k1".into()));
        assert_eq!(resolve(None, &c, &rows).unwrap().id, default_id("c1"));
        assert_eq!(resolve(Some(&default_id("c1")), &c, &rows).unwrap().id, default_id("c1"));
        assert_eq!(resolve(Some("k1"), &c, &rows).unwrap().id, "k1");
        assert_eq!(resolve(Some("team-a"), &c, &rows).unwrap().id, "k1");
        assert_eq!(resolve(Some("ext:team-a"), &c, &rows).unwrap().id, "k1");
        // Another credential's configuration is not this one's.
        assert!(matches!(
            resolve(Some("k2"), &c, &rows),
            Err(Error::Failed { kind: crate::Kind::NotFound, .. })
        ));
        assert!(resolve(Some("team-b"), &c, &rows).is_err());
        // A stored default row (it got metadata) replaces the derived one.
        let with_meta = CredentialConfiguration { meta: json!({"m": 1}), ..all[0].clone() };
        let all = of_credential(&c, &[with_meta.clone(), rows[0].clone()]);
        assert_eq!(all, [with_meta, rows[0].clone()]);
    }
}
