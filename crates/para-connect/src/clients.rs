//! The company's OAuth apps and endpoint overrides, per integration ([`ConnectConfig::oauth_clients`]).
//!
//! [`ConnectConfig::oauth_clients`]: crate::ConnectConfig::oauth_clients
//!
//! From `.para/oauth-clients.json` (keys are integration keys):
//!
//! ```json
//! { "salesforce": { "clientId": "…", "clientSecret": "…" },
//!   "custom.acmecrm": { "clientId": "…", "clientSecret": "…",
//!                       "authorizeUrl": "http://127.0.0.1:9000/auth",
//!                       "tokenUrl": "http://127.0.0.1:9000/token",
//!                       "apiBaseUrl": "http://127.0.0.1:9001/v2" } }
//! ```
//!
//! and from the environment, which wins: `PARA_OAUTH_<KEY>_CLIENT_ID`, `_CLIENT_SECRET`,
//! `_AUTHORIZE_URL`, `_TOKEN_URL`, `_API_BASE_URL`, `_WEBHOOK_SECRET`, where `<KEY>` is the integration key
//! upper-cased with other characters as `_` (`custom.acmecrm` → `CUSTOM_ACMECRM`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::{OAuthClient, env_key};

pub const OAUTH_CLIENTS_FILE: &str = ".para/oauth-clients.json";

/// Reads the file (if present) and `vars`, the environment's variables (the binary passes
/// them; others than `PARA_OAUTH_*` are ignored).
pub fn load_oauth_clients_with(
    root: &Path,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, OAuthClient>, String> {
    let mut clients: BTreeMap<String, OAuthClient> = BTreeMap::new();
    let file = root.join(OAUTH_CLIENTS_FILE);
    if let Ok(text) = std::fs::read_to_string(&file) {
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not valid JSON: {e}", file.display()))?;
        let Some(entries) = value.as_object() else {
            return Err(format!("{} must hold a JSON object keyed by integration", file.display()));
        };
        for (key, entry) in entries {
            let text = |name: &str| -> Result<Option<String>, String> {
                match entry.get(name) {
                    None | Some(serde_json::Value::Null) => Ok(None),
                    Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(format!("{}: `{key}.{name}` must be a string", file.display())),
                }
            };
            let known = [
                "clientId",
                "clientSecret",
                "authorizeUrl",
                "tokenUrl",
                "apiBaseUrl",
                "webhookSecret",
            ];
            if let Some(unknown) = entry
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
                .find(|k| !known.contains(&k.as_str()))
            {
                return Err(format!(
                    "{}: `{key}.{unknown}` is not a setting (use {})",
                    file.display(),
                    known.join(", ")
                ));
            }
            clients.insert(
                env_key(key),
                OAuthClient {
                    client_id: text("clientId")?.unwrap_or_default(),
                    client_secret: text("clientSecret")?.unwrap_or_default(),
                    authorize_url: text("authorizeUrl")?,
                    token_url: text("tokenUrl")?,
                    api_base_url: text("apiBaseUrl")?,
                    webhook_secret: text("webhookSecret")?,
                },
            );
        }
    }
    const SUFFIXES: [&str; 6] = [
        "_CLIENT_ID",
        "_CLIENT_SECRET",
        "_AUTHORIZE_URL",
        "_TOKEN_URL",
        "_API_BASE_URL",
        "_WEBHOOK_SECRET",
    ];
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("PARA_OAUTH_") else { continue };
        let Some((key, suffix)) =
            SUFFIXES.iter().find_map(|s| rest.strip_suffix(s).map(|k| (k.to_string(), *s)))
        else {
            continue;
        };
        let client = clients.entry(key).or_default();
        match suffix {
            "_CLIENT_ID" => client.client_id = value,
            "_CLIENT_SECRET" => client.client_secret = value,
            "_AUTHORIZE_URL" => client.authorize_url = Some(value),
            "_TOKEN_URL" => client.token_url = Some(value),
            "_WEBHOOK_SECRET" => client.webhook_secret = Some(value),
            _ => client.api_base_url = Some(value),
        }
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".para")).unwrap();
        std::fs::write(
            dir.path().join(OAUTH_CLIENTS_FILE),
            r#"{"custom.acmecrm": {"clientId": "a", "clientSecret": "b", "tokenUrl": "http://t"}}"#,
        )
        .unwrap();
        let clients = load_oauth_clients_with(
            dir.path(),
            [
                ("PARA_OAUTH_CUSTOM_ACMECRM_CLIENT_SECRET".to_string(), "env".to_string()),
                ("PARA_OAUTH_SLACK_CLIENT_ID".to_string(), "s".to_string()),
            ],
        )
        .unwrap();
        let acme = &clients["CUSTOM_ACMECRM"];
        assert_eq!((acme.client_id.as_str(), acme.client_secret.as_str()), ("a", "env"));
        assert_eq!(acme.token_url.as_deref(), Some("http://t"));
        assert_eq!(clients["SLACK"].client_id, "s");

        std::fs::write(dir.path().join(OAUTH_CLIENTS_FILE), r#"{"x": {"clientID": "a"}}"#).unwrap();
        let err = load_oauth_clients_with(dir.path(), []).unwrap_err();
        assert!(err.contains("x.clientID") && err.contains("clientId"), "{err}");
    }
}
