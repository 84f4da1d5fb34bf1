//! OAuth 2 facts every flow shares: the pending state sealed between a flow's start and its
//! callback, PKCE, the redirect URI, and the token endpoint calls of every grant.

use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Digest as _;

use crate::connector::{Connector, Material, render, render_value};
use crate::{Connect, Error};

pub const CALLBACK_PATH: &str = "/oauth/callback";
/// The values form's path (below the callback's, where the browser's nonce cookie is sent).
pub const VALUES_FORM_PATH: &str = "/oauth/callback/values";
pub const STATE_TTL_MS: i64 = 10 * 60_000;

/// The payload sealed into an OAuth state row.
#[derive(Debug, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    pub verifier: Option<String>,
    pub session_id: Option<String>,
    pub origin: Option<String>,
    pub return_to: Option<String>,
    pub values: Map<String, Value>,
    /// A state of the values form (`connect_form`), not of a sign-in: the callback refuses it.
    #[serde(default)]
    pub values_form: bool,
}

pub fn state_aad(project_id: &str) -> Vec<u8> {
    format!("oauth-state\0{project_id}").into_bytes()
}

/// Seals `pending` and stores it under `token` until the flow comes back (to the provider's
/// callback or to the values form), for [`STATE_TTL_MS`].
pub async fn put_pending(
    state: &Connect,
    user_id: &str,
    integration_key: &str,
    token: String,
    pending: &Pending,
) -> Result<(), Error> {
    let sealed = state.secrets.seal(
        &serde_json::to_vec(pending).expect("pending state serialises"),
        &state_aad(&state.project_id),
    );
    state
        .store
        .put_oauth_state(&para_store::OAuthState {
            state: token,
            project_id: state.project_id.clone(),
            user_id: user_id.to_string(),
            integration: integration_key.to_string(),
            sealed,
            expires_at: para_store::now_ms() + STATE_TTL_MS,
        })
        .await?;
    Ok(())
}

/// Stores a new single-use state of the values form for the user and answers its token.
pub async fn issue_values_form(
    state: &Connect,
    user_id: &str,
    integration_key: &str,
    pending: &Pending,
) -> Result<String, Error> {
    let token = para_auth::random_token(32);
    put_pending(state, user_id, integration_key, token.clone(), pending).await?;
    Ok(token)
}

/// Starts the values form for a `build-oauth` of an integration that is not connected through
/// a redirect (see `connect::values_form_wanted`): answers the form's URL, with a fresh state.
pub async fn begin_values_form(
    state: &Connect,
    user_id: &str,
    integration_key: &str,
    pending: Pending,
) -> Result<String, Error> {
    let token = issue_values_form(state, user_id, integration_key, &pending).await?;
    Ok(format!("{}{VALUES_FORM_PATH}?state={token}", state.config.public_url))
}

/// Tells the session the SDK polls (if the flow has one) which credential was connected.
pub async fn session_connected(
    state: &Connect,
    user_id: &str,
    pending: &Pending,
    credential_id: &str,
) {
    if let Some(session) = &pending.session_id {
        let _ = state
            .store
            .finish_oauth_session(&state.project_id, user_id, session, Some(credential_id), None)
            .await;
    }
}

pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

pub fn redirect_uri(state: &Connect) -> String {
    format!("{}{CALLBACK_PATH}", state.config.public_url)
}

/// Why a token request failed.
#[derive(Debug)]
pub enum TokenFailure {
    /// The provider answered with an error (bad code, revoked refresh token…).
    Refused(String),
    /// The provider could not be reached or answered nonsense.
    Unreachable(String),
}

impl std::fmt::Display for TokenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenFailure::Refused(s) | TokenFailure::Unreachable(s) => f.write_str(s),
        }
    }
}

/// POSTs a grant to the connector's token endpoint with the client's authentication and the
/// integration's extra token options; returns the JSON answer.
pub async fn token_request(
    state: &Connect,
    connector: &Connector,
    m: &Material,
    mut form: Vec<(String, String)>,
) -> Result<Map<String, Value>, TokenFailure> {
    let oauth = connector
        .oauth
        .as_ref()
        .ok_or_else(|| TokenFailure::Refused(format!("{} does not use OAuth", connector.name)))?;
    let url = render(&oauth.token_url, m).map_err(|e| TokenFailure::Refused(e.0))?;
    if url.is_empty() {
        return Err(TokenFailure::Refused(format!("{} has no token URL", connector.name)));
    }
    let client_id = connector
        .client_id
        .clone()
        .or_else(|| m.values.get("clientId").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let client_secret = connector
        .client_secret
        .clone()
        .or_else(|| m.values.get("clientSecret").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let mut request = state.http.post(&url).header(http::header::ACCEPT, "application/json");
    if oauth.client_auth_basic && !client_id.is_empty() {
        request = request.basic_auth(
            form_urlencoded::byte_serialize(client_id.as_bytes()).collect::<String>(),
            Some(form_urlencoded::byte_serialize(client_secret.as_bytes()).collect::<String>()),
        );
    } else if !client_id.is_empty() {
        form.push(("client_id".into(), client_id));
        if !client_secret.is_empty() {
            form.push(("client_secret".into(), client_secret));
        }
    }
    if let Some(options) = &oauth.token_options
        && let Ok(Value::Object(options)) = render_value(options, m)
    {
        for (name, value) in options.get("headers").and_then(Value::as_object).into_iter().flatten()
        {
            if let Some(v) = value.as_str() {
                request = request.header(name.as_str(), v);
            }
        }
        for section in ["body", "params"] {
            for (name, value) in
                options.get(section).and_then(Value::as_object).into_iter().flatten()
            {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                form.push((name.clone(), text));
            }
        }
    }
    let response = request
        .form(&form)
        .send()
        .await
        .map_err(|e| TokenFailure::Unreachable(format!("POST {url}: {}", error_chain(&e))))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.text().await.unwrap_or_default();
    let parsed: Option<Map<String, Value>> = if content_type.contains("x-www-form-urlencoded") {
        Some(
            form_urlencoded::parse(text.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
        )
    } else {
        serde_json::from_str::<Value>(&text).ok().and_then(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        })
    };
    if !status.is_success() {
        let detail = parsed
            .as_ref()
            .and_then(|m| {
                let error = m.get("error").and_then(Value::as_str)?;
                let description =
                    m.get("error_description").and_then(Value::as_str).unwrap_or_default();
                Some(format!("{error} {description}").trim().to_string())
            })
            .unwrap_or_else(|| snippet(&text));
        let failure = format!("the token endpoint answered {}: {detail}", status.as_u16());
        return Err(if status.is_server_error() {
            TokenFailure::Unreachable(failure)
        } else {
            TokenFailure::Refused(failure)
        });
    }
    let token = parsed.ok_or_else(|| {
        TokenFailure::Unreachable(format!(
            "the token endpoint's answer is not JSON: {}",
            snippet(&text)
        ))
    })?;
    if let Some(error) = token.get("error").and_then(Value::as_str) {
        return Err(TokenFailure::Refused(format!("the token endpoint answered `{error}`")));
    }
    if token.get("access_token").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(TokenFailure::Refused(
            "the token endpoint's answer has no access_token".into(),
        ));
    }
    Ok(token)
}

/// Custom `saveCredentialsOptions`: values taken from the token answer into `saved`.
pub fn save_credentials(connector: &Connector, m: &mut Material) {
    let Some(template) = connector.oauth.as_ref().and_then(|o| o.save_credentials.as_ref()) else {
        return;
    };
    if let Ok(Value::Object(values)) = render_value(template, m) {
        m.saved.extend(values);
    }
}

/// The first 200 characters of a body, for error messages (never a token: only error bodies).
pub fn snippet(text: &str) -> String {
    let t: String = text.chars().take(200).collect();
    if t.is_empty() { "(empty body)".into() } else { t }
}

pub use para_upstream::error_chain;
