//! The credentials domain of `para`: how an end user's account of an integration is connected,
//! kept (sealed at rest, refreshed once however many requests need it) and used.
//!
//! [`Connect`] holds what that needs — the served build, the store, the secret key, the HTTP
//! clients — and is shared by the HTTP edge (`para-server`) and the engine's host
//! (`para-worker`). Every request made with a user's credential goes out through one function,
//! [`Connect::send`] (`send.rs`): the path guard, the credential applied, one refresh after a
//! 401, a short wait on a 429.
//!
//! Nothing here answers HTTP requests: no axum, no server types; errors are [`Error`], which the
//! edge maps to statuses in one place.

pub mod clients;
pub mod configurations;
pub mod connect;
pub mod connector;
pub mod oauth;
pub mod options;
pub mod passwords;
pub mod refresh;
pub mod send;
pub mod settings;
pub mod webhooks;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use para_auth::SecretKey;
use para_build::Build;
use para_store::Store;

pub use send::{Account, Destination, Outgoing, Prepared};

/// The OAuth app a company registered with a provider, for one integration, and optional
/// overrides of the integration's endpoints (sandboxes, self-hosted providers, tests).
#[derive(Clone, Default)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub api_base_url: Option<String>,
    /// The secret the provider signs the app's webhooks with (Slack's signing secret, Zoom's
    /// secret token), for integrations whose `[webhooks]` use `secret = "app"`.
    pub webhook_secret: Option<String>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// The environment-variable spelling of an integration key, also the key of
/// [`ConnectConfig::oauth_clients`]: `custom.acmecrm` → `CUSTOM_ACMECRM`, `googleCalendar` →
/// `GOOGLECALENDAR`.
pub fn env_key(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect()
}

/// What the credentials domain is configured with.
#[derive(Debug, Clone, Default)]
pub struct ConnectConfig {
    /// The origin users reach the server at: OAuth redirect URIs are built from it.
    pub public_url: String,
    /// Per integration, keyed by [`env_key`] of its key.
    pub oauth_clients: BTreeMap<String, OAuthClient>,
    /// Whether the environment names an outgoing HTTP proxy (`HTTPS_PROXY` and the like, which
    /// reqwest honours): then authorised requests go through reqwest instead of the
    /// keep-alive client, which does not speak to proxies.
    pub outgoing_proxy: bool,
    /// Where runs' traces are sent (OTLP/HTTP); `None`: nowhere.
    pub traces: Option<para_telemetry::traces::OtlpConfig>,
}

/// What the domain tells the layers above it about (the worker starts the workflows a new
/// connection triggers). Set once with [`Connect::set_hooks`].
pub trait Hooks: Send + Sync {
    /// A user's account `credential_id` of `integration` became usable (connected, or set up).
    fn connected<'a>(
        &'a self,
        user_id: &'a str,
        integration: &'a str,
        credential_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

    /// A user's settings of `integration` were written: a workflow may have been turned on or
    /// off, or its trigger's parameters changed (the worker registers or removes the webhooks
    /// those workflows need). Called after the write; should not wait for providers.
    fn settings_changed<'a>(
        &'a self,
        _user_id: &'a str,
        _integration: &'a str,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async {})
    }

    /// A user's account `credential_id` of `integration` (`None`: every account of it) is
    /// about to be disconnected: called while the credential still exists, so what was made
    /// with it at the provider (registered webhooks) can be removed. Should give up after a
    /// short while rather than hold the disconnect up.
    fn disconnecting<'a>(
        &'a self,
        _user_id: &'a str,
        _integration: &'a str,
        _credential_id: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async {})
    }

    /// A user's account `credential_id` of `integration` (`None`: every account of it, when
    /// there were none to name) was disconnected: called after the removal.
    fn disconnected<'a>(
        &'a self,
        _user_id: &'a str,
        _integration: &'a str,
        _credential_id: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async {})
    }
}

/// The credentials domain of one served project.
pub struct Connect {
    pub config: ConnectConfig,
    pub project_id: String,
    build: RwLock<Arc<Build>>,
    pub store: Store,
    pub secrets: SecretKey,
    /// Outgoing HTTP for token endpoints (form posts).
    pub http: reqwest::Client,
    /// Authorised requests' client: keep-alive connections per upstream origin.
    pub upstream: para_upstream::Client,
    /// One refresh at a time per credential within this process (the store's lease covers
    /// other processes).
    pub refresh_locks: refresh::Locks,
    /// Recently used credentials, opened and prepared ([`Prepared`]).
    pub credential_cache: send::Cache,
    /// Connectors of the served build, made on first use. (foldhash: looked up on every proxy
    /// request, and only the build's integrations are ever inserted.)
    connectors: Mutex<foldhash::HashMap<String, Arc<connector::Connector>>>,
    hooks: OnceLock<Arc<dyn Hooks>>,
    /// The process's metrics and trace exporter, shared by every layer above.
    pub telemetry: para_telemetry::Telemetry,
}

impl Connect {
    pub fn new(config: ConnectConfig, build: Build, store: Store, secrets: SecretKey) -> Connect {
        let project_id = build.project.project_id.clone().unwrap_or_else(|| "default".into());
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
        let via_proxy = config.outgoing_proxy.then(|| http.clone());
        let telemetry = para_telemetry::Telemetry::new(config.traces.clone());
        Connect {
            config,
            project_id,
            build: RwLock::new(Arc::new(build)),
            store,
            secrets,
            upstream: para_upstream::Client::new(via_proxy),
            http,
            refresh_locks: refresh::Locks::default(),
            credential_cache: send::Cache::default(),
            connectors: Mutex::default(),
            hooks: OnceLock::new(),
            telemetry,
        }
    }

    /// Who hears of new connections (once; later calls are ignored).
    pub fn set_hooks(&self, hooks: Arc<dyn Hooks>) {
        let _ = self.hooks.set(hooks);
    }

    pub(crate) async fn connected(&self, user_id: &str, integration: &str, credential_id: &str) {
        if let Some(hooks) = self.hooks.get() {
            hooks.connected(user_id, integration, credential_id).await;
        }
    }

    pub(crate) async fn settings_changed(&self, user_id: &str, integration: &str) {
        if let Some(hooks) = self.hooks.get() {
            hooks.settings_changed(user_id, integration).await;
        }
    }

    pub(crate) async fn disconnecting(
        &self,
        user_id: &str,
        integration: &str,
        credential_id: Option<&str>,
    ) {
        if let Some(hooks) = self.hooks.get() {
            hooks.disconnecting(user_id, integration, credential_id).await;
        }
    }

    pub(crate) async fn disconnected(
        &self,
        user_id: &str,
        integration: &str,
        credential_id: Option<&str>,
    ) {
        if let Some(hooks) = self.hooks.get() {
            hooks.disconnected(user_id, integration, credential_id).await;
        }
    }

    /// A `credential.invalid` event ([`para_store::alerts`]) for the user's account
    /// `credential_id` of `integration`: `reason` a stable code (`refresh_refused`,
    /// `no_refresh_token`, `test_failed`), `message` what the user is told. The store records
    /// it with the credential's change to INVALID, once per change.
    pub fn invalid_alert(
        &self,
        user_id: &str,
        integration: &str,
        credential_id: &str,
        reason: &str,
        message: &str,
    ) -> para_store::alerts::NewAlert {
        let data = serde_json::json!({
            "userId": user_id,
            "integration": integration,
            "credentialId": credential_id,
            "reason": reason,
            "message": message,
        });
        para_store::alerts::NewAlert::new(
            &self.project_id,
            para_store::alerts::CREDENTIAL_INVALID,
            None,
            data,
        )
    }

    /// The build being served (a snapshot: a reload swaps it for later requests).
    pub fn build(&self) -> Arc<Build> {
        self.build.read().expect("build lock").clone()
    }

    /// Serves a new build from now on (`para dev` after a rebuild).
    pub fn replace_build(&self, build: impl Into<Arc<Build>>) {
        *self.build.write().expect("build lock") = build.into();
        self.connectors.lock().expect("connectors").clear();
    }

    /// The company's OAuth app for an integration, if configured.
    pub fn oauth_client(&self, integration_key: &str) -> Option<&OAuthClient> {
        self.config.oauth_clients.get(&env_key(integration_key))
    }

    /// The connector of an integration of the served build (see [`connector`]).
    pub fn connector(&self, key: &str) -> Option<Arc<connector::Connector>> {
        if let Some(c) = self.connectors.lock().expect("connectors").get(key) {
            return Some(c.clone());
        }
        let made = Arc::new(connector::Connector::of(self, key)?);
        self.connectors.lock().expect("connectors").insert(key.to_string(), made.clone());
        Some(made)
    }
}

/// What kind of failure an [`Error`] is, for the edge to answer with (a 404, a 400…) and the
/// engine to decide whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// What was asked for does not exist (for this user).
    NotFound,
    /// The request cannot be carried out as sent.
    BadRequest,
    /// The values were read but cannot be used (a token endpoint refused them; the credential
    /// needs reconnecting).
    Unprocessable,
    /// Not now: try again (a refresh under way elsewhere; no OAuth client configured).
    Unavailable,
    /// The provider failed or could not be reached, or the integration's settings cannot make
    /// a request.
    Upstream,
    /// This server cannot read what it stored (its secret key changed).
    Internal,
}

/// A failure of the credentials domain: a [`Kind`], a stable code and a message for the user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    Failed { kind: Kind, code: &'static str, message: String },
    #[error("storage error: {0}")]
    Store(#[from] para_store::StoreError),
}

impl Error {
    pub fn new(kind: Kind, code: &'static str, message: impl Into<String>) -> Error {
        Error::Failed { kind, code, message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(Kind::NotFound, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(Kind::BadRequest, "bad_request", message)
    }

    /// The message a user may read (a storage error's detail is not said).
    pub fn message(&self) -> String {
        match self {
            Error::Failed { message, .. } => message.clone(),
            Error::Store(_) => "the server could not read or write its database".into(),
        }
    }

    /// Whether the same request can succeed later without anything changing (a run then tries
    /// again).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Failed { kind, .. } => !matches!(kind, Kind::NotFound | Kind::BadRequest),
            Error::Store(_) => true,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
