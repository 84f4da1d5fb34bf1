//! What every handler shares: the served build, the store, token verification, the secret key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use para_auth::{SecretKey, Verifier};
use para_build::Build;
use para_store::Store;

/// The OAuth app a company registered with a provider, for one integration, and optional
/// overrides of the integration's endpoints (sandboxes, self-hosted providers, tests).
#[derive(Clone, Default)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub api_base_url: Option<String>,
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
    /// How long a connection may take to send a request's head, and how long an idle
    /// keep-alive connection is kept: then it is closed (slow or stalled clients cannot hold
    /// connections forever). [`ServerConfig::HEADER_TIMEOUT`] unless a test needs less.
    pub header_timeout: std::time::Duration,
    /// Connections, body rate, token lifetime, permissions' metadata, configurations.
    pub limits: crate::limits::Limits,
}

impl ServerConfig {
    /// hyper's default, under nginx's `client_header_timeout` and `keepalive_timeout`.
    pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
}

pub struct AppState {
    pub config: ServerConfig,
    pub project_id: String,
    build: RwLock<Arc<Build>>,
    pub store: Store,
    pub verifier: Verifier,
    pub secrets: SecretKey,
    /// Outgoing HTTP: token endpoints, test endpoints.
    pub http: reqwest::Client,
    /// The proxy's own client: keep-alive connections per upstream origin.
    pub upstream: crate::upstream::Client,
    /// The memory the proxy's request bodies and wrapped answers may hold (limits from the
    /// environment).
    pub proxy_budget: Arc<crate::proxy::Budget>,
    /// One refresh at a time per credential within this process (the store's lease covers
    /// other processes).
    pub refresh_locks: crate::refresh::Locks,
    /// Recently verified user tokens.
    pub seen_users: crate::auth::SeenUsers,
    /// Recently used credentials, opened (the proxy's hot path).
    pub credential_cache: crate::refresh::Cache,
    /// The workflow engine of this process.
    pub engine: crate::engine::Engine,
    /// Wrong admin keys per peer (the dashboard's throttle).
    pub(crate) admin_throttle: crate::dashboard::Throttle,
    /// Connectors of the served build, made on first use. (foldhash: looked up on every proxy
    /// request, and only the build's integrations are ever inserted.)
    connectors: std::sync::Mutex<foldhash::HashMap<String, Arc<crate::connector::Connector>>>,
}

impl AppState {
    pub fn new(
        config: ServerConfig,
        build: Build,
        store: Store,
        verifier: Verifier,
        secrets: SecretKey,
    ) -> Arc<AppState> {
        let engine = crate::engine::EngineConfig::from_env();
        AppState::with_engine(config, build, store, verifier, secrets, engine)
    }

    /// [`AppState::new`] with the engine's tunables given (tests: short retry waits).
    pub fn with_engine(
        config: ServerConfig,
        build: Build,
        store: Store,
        verifier: Verifier,
        secrets: SecretKey,
        engine: crate::engine::EngineConfig,
    ) -> Arc<AppState> {
        let project_id = build.project.project_id.clone().unwrap_or_else(|| "default".into());
        let verifier = verifier.with_max_lifetime(config.limits.max_token_lifetime);
        // reqwest is built without a default crypto provider; ring is ours. A second
        // install (several servers in one test process) is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("para/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(256)
            .build()
            .expect("the HTTP client builds");
        Arc::new(AppState {
            config,
            project_id,
            build: RwLock::new(Arc::new(build)),
            store,
            verifier,
            secrets,
            upstream: crate::upstream::Client::new(Some(http.clone())),
            proxy_budget: Arc::new(crate::proxy::Budget::from_env()),
            http,
            refresh_locks: crate::refresh::Locks::default(),
            seen_users: crate::auth::SeenUsers::default(),
            credential_cache: crate::refresh::Cache::default(),
            engine: crate::engine::Engine::new(engine),
            admin_throttle: Default::default(),
            connectors: Default::default(),
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
        self.connectors.lock().expect("connectors").clear();
    }

    /// The connector of an integration of the served build (see [`crate::connector`]).
    pub fn connector(&self, key: &str) -> Option<Arc<crate::connector::Connector>> {
        if let Some(c) = self.connectors.lock().expect("connectors").get(key) {
            return Some(c.clone());
        }
        let made = Arc::new(crate::connector::Connector::of(self, key)?);
        self.connectors.lock().expect("connectors").insert(key.to_string(), made.clone());
        Some(made)
    }
}
