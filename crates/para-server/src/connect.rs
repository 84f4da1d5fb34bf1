//! Connecting accounts: the functions both the Connect API (`api.rs`, `oauth.rs`) and the
//! Connect Portal (`portal.rs`) use to start an OAuth flow or store a non-OAuth credential.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::state::AppState;

/// How a user connects an integration, and what to ask them first.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectKind {
    /// Authorization code: the user is sent to the provider.
    OAuth,
    /// Client credentials: the user (or the company) supplies a client id/secret.
    ClientCredentials,
    /// Resource-owner password (`ropc_app`).
    Password,
    /// Pasted key(s).
    ApiKey,
    /// HTTP Basic.
    Basic,
}

/// A value asked of the user before connecting (a catalog auth field or a custom integration's
/// config input).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectField {
    /// The key values are submitted under.
    pub key: String,
    pub label: String,
    pub secret: bool,
    pub required: bool,
    pub placeholder: Option<String>,
    pub help: Option<String>,
}

/// How an integration of the served build is connected.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectInfo {
    pub kind: ConnectKind,
    pub fields: Vec<ConnectField>,
}

/// Options of an OAuth start.
#[derive(Debug, Clone, Default)]
pub struct BeginOAuth {
    /// Values of [`ConnectInfo::fields`] the user typed (shop domain, region…).
    pub values: Map<String, Value>,
    /// The company page's origin: the callback page posts its result there (SDK popup flow).
    pub origin_for_post_message: Option<String>,
    /// Where the callback redirects when done (portal flow): `?connected=<credential id>` or
    /// `?error=<message>` is appended.
    pub return_to: Option<String>,
    /// The SDK's `oauthMetaKeyId`: the session it polls.
    pub session_id: Option<String>,
}

pub fn connect_info(_state: &AppState, _integration_key: &str) -> Option<ConnectInfo> {
    None
}

/// Starts an authorization-code flow: stores a single-use `state` (and PKCE verifier) for the
/// user and returns the provider's authorize URL.
pub async fn begin_oauth(
    _state: &AppState,
    _user_id: &str,
    integration_key: &str,
    _options: BeginOAuth,
) -> Result<String, ApiError> {
    Err(ApiError::bad_request(format!("connecting {integration_key} is not implemented yet")))
}

/// Stores a credential that needs no redirect (API key, basic, client credentials, password):
/// checks it against the test endpoint; an unusable credential is stored INVALID with the reason.
pub async fn create_credential(
    _state: &AppState,
    _user_id: &str,
    integration_key: &str,
    _values: Map<String, Value>,
) -> Result<para_store::Credential, ApiError> {
    Err(ApiError::bad_request(format!("connecting {integration_key} is not implemented yet")))
}
