//! What every handler shares: the served build, the store, token verification, the secret key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use para_auth::{SecretKey, Verifier};
use para_build::Build;
use para_store::Store;

/// The OAuth app a company registered with a provider, for one integration.
#[derive(Clone)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// The environment-variable spelling of an integration key, also the key of
/// [`ServerConfig::oauth_clients`]: `custom.acmecrm` → `CUSTOM_ACMECRM`, `googleCalendar` →
/// `GOOGLECALENDAR`.
pub fn env_key(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect()
}

/// How the server was started.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub project_root: PathBuf,
    /// The origin users and the SDK reach the server at (`http://127.0.0.1:7433`): OAuth
    /// redirect URIs are built from it.
    pub public_url: String,
    /// Guards `/dashboard`; none: the dashboard is off.
    pub admin_key: Option<String>,
    /// Per integration, keyed by [`env_key`] of its key.
    pub oauth_clients: BTreeMap<String, OAuthClient>,
}

pub struct AppState {
    pub config: ServerConfig,
    pub project_id: String,
    build: RwLock<Arc<Build>>,
    pub store: Store,
    pub verifier: Verifier,
    pub secrets: SecretKey,
}

impl AppState {
    pub fn new(
        config: ServerConfig,
        build: Build,
        store: Store,
        verifier: Verifier,
        secrets: SecretKey,
    ) -> Arc<AppState> {
        let project_id = build.project.project_id.clone().unwrap_or_else(|| "default".into());
        Arc::new(AppState {
            config,
            project_id,
            build: RwLock::new(Arc::new(build)),
            store,
            verifier,
            secrets,
        })
    }

    /// The build being served (a snapshot: a reload swaps it for later requests).
    pub fn build(&self) -> Arc<Build> {
        self.build.read().expect("build lock").clone()
    }

    /// The company's OAuth app for an integration, if configured.
    pub fn oauth_client(&self, integration_key: &str) -> Option<&OAuthClient> {
        self.config.oauth_clients.get(&env_key(integration_key))
    }

    /// Serves a new build from now on (`para dev` after a rebuild).
    pub fn replace_build(&self, build: Build) {
        *self.build.write().expect("build lock") = Arc::new(build);
    }
}
