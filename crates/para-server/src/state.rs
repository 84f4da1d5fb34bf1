//! What every handler shares: the served build, the store, token verification, the secret key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use para_auth::{SecretKey, Verifier};
use para_build::Build;
use para_connect::{Connect, ConnectConfig, OAuthClient};
use para_store::Store;
use para_worker::{EngineConfig, Worker, WorkerConfig};

use crate::releases::{Mode, Releases};

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
    /// Connections, body rate, token lifetime, permissions' metadata, configurations, the
    /// proxy's memory.
    pub limits: crate::limits::Limits,
    /// Which origins get CORS, and which with credentials (`PARA_CORS_ORIGINS`).
    pub cors: Arc<crate::cors::CorsPolicy>,
    /// Whether the environment names an outgoing HTTP proxy (`HTTPS_PROXY` and the like):
    /// then authorised requests go through reqwest, which honours it.
    pub outgoing_proxy: bool,
    /// `PARA_SECRET_<NAME>` variables: they win over `.para/secrets.json`.
    pub env_secrets: para_auth::env_secrets::EnvSecrets,
    /// The Triggers API's webhook URL, signing secret and retry schedule
    /// (`PARA_TRIGGERS_WEBHOOK_URL`, `PARA_TRIGGERS_SIGNING_SECRET`).
    pub triggers_api: para_worker::deliveries::TriggersApiConfig,
    /// The key `para push` must send (`PARA_DEPLOY_KEY`); none: pushing is off.
    pub deploy_key: Option<String>,
    /// `/metrics`' key and address, and where runs' traces go.
    pub telemetry: TelemetryConfig,
    /// The deployment's alert destination and the alerts' retry schedule
    /// (`PARA_ALERTS_WEBHOOK_URL`, `PARA_ALERTS_SIGNING_SECRET`, `PARA_ALERTS_EVENTS`).
    pub alerts: para_worker::alerts::AlertsConfig,
}

/// How metrics are reached and where traces go (`PARA_METRICS_KEY`, `PARA_METRICS_ADDR`,
/// `OTEL_*`, read by `para-cli`).
#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    /// Set: `/metrics` on the main listener answers `Authorization: Bearer <key>`.
    pub metrics_key: Option<String>,
    /// Set: `/metrics` is also served, without a key, on this address.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Set: runs' traces are sent to an OTLP/HTTP collector.
    pub traces: Option<para_telemetry::traces::OtlpConfig>,
}

impl ServerConfig {
    /// hyper's default, under nginx's `client_header_timeout` and `keepalive_timeout`.
    pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
}

/// What every handler shares. The credentials domain ([`Connect`]: the served build, the
/// store, the secret key, the outgoing clients) is reached through it by `Deref`.
pub struct AppState {
    pub config: ServerConfig,
    /// The credentials domain of the served project.
    pub connect: Arc<Connect>,
    pub verifier: Verifier,
    /// The memory the proxy's request bodies and wrapped answers may hold (limits from the
    /// environment).
    pub proxy_budget: Arc<crate::budget::Budget>,
    /// Recently verified user tokens.
    pub seen_users: crate::users::SeenUsers,
    /// The workflow engine of this process (over the same [`Connect`]).
    pub worker: Arc<Worker>,
    /// Wrong admin keys per peer (the dashboard's throttle).
    pub(crate) admin_throttle: crate::throttle::Throttle,
    /// The releases pushed to the database, and the one this process serves (serving a
    /// project folder: none, and pushes are refused).
    pub releases: Arc<crate::releases::Releases>,
    /// Webhook requests refused, per (integration, reason), since the process started.
    pub(crate) webhook_refusals: std::sync::Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl AppState {
    /// Counts a refused webhook request.
    pub(crate) fn count_refusal(&self, integration: &str, reason: &'static str) {
        let mut counts = self.webhook_refusals.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry((integration.to_string(), reason)).or_default() += 1;
    }

    /// Refused webhook requests per (integration, reason), since the process started.
    pub fn webhook_refusals(&self) -> BTreeMap<(String, &'static str), u64> {
        self.webhook_refusals.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl std::ops::Deref for AppState {
    type Target = Connect;

    fn deref(&self) -> &Connect {
        &self.connect
    }
}

impl AppState {
    pub fn new(
        config: ServerConfig,
        build: Build,
        store: Store,
        verifier: Verifier,
        secrets: SecretKey,
    ) -> Arc<AppState> {
        let engine = EngineConfig::default();
        AppState::with_engine(config, build, store, verifier, secrets, engine)
    }

    /// [`AppState::new`] with the engine's tunables given (tests: short retry waits).
    pub fn with_engine(
        config: ServerConfig,
        build: Build,
        store: Store,
        verifier: Verifier,
        secrets: SecretKey,
        engine: EngineConfig,
    ) -> Arc<AppState> {
        let releases = Releases::new(store.clone(), Mode::Folder, config.deploy_key.clone());
        AppState::assemble(config, build, store, verifier, secrets, engine, releases)
    }

    /// The state of a server started without a project folder: it serves the release
    /// `releases` serves (one must be), and every release it serves from then on.
    pub fn serving_releases(
        config: ServerConfig,
        releases: Arc<Releases>,
        verifier: Verifier,
        secrets: SecretKey,
        engine: EngineConfig,
    ) -> Option<Arc<AppState>> {
        let first = releases.served()?;
        let store = releases.store.clone();
        let build = Arc::unwrap_or_clone(first.build);
        let state =
            AppState::assemble(config, build, store, verifier, secrets, engine, releases.clone());
        let mut changes = releases.subscribe();
        let weak = Arc::downgrade(&state);
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let Some(state) = weak.upgrade() else { break };
                let served = changes.borrow_and_update().clone();
                if let Some(served) = served {
                    state.connect.replace_build(served.build);
                }
            }
        });
        Some(state)
    }

    fn assemble(
        config: ServerConfig,
        build: Build,
        store: Store,
        verifier: Verifier,
        secrets: SecretKey,
        engine: EngineConfig,
        releases: Arc<Releases>,
    ) -> Arc<AppState> {
        let verifier = verifier.with_max_lifetime(config.limits.max_token_lifetime);
        let connect = Arc::new(Connect::new(
            ConnectConfig {
                public_url: config.public_url.clone(),
                oauth_clients: config.oauth_clients.clone(),
                outgoing_proxy: config.outgoing_proxy,
                traces: config.telemetry.traces.clone(),
            },
            build,
            store,
            secrets,
        ));
        let worker = Worker::new(
            connect.clone(),
            engine,
            WorkerConfig {
                project_root: config.project_root.clone(),
                permissions_from_token_only: config.limits.permissions_from_token_only,
                env_secrets: config.env_secrets.clone(),
                triggers_api: config.triggers_api.clone(),
                alerts: config.alerts.clone(),
            },
        );
        let proxy_budget = Arc::new(crate::budget::Budget::new(
            config.limits.proxy_max_inflight_bytes,
            config.limits.proxy_max_wrapped_bytes,
        ));
        Arc::new(AppState {
            config,
            connect,
            worker,
            verifier,
            proxy_budget,
            seen_users: crate::users::SeenUsers::default(),
            admin_throttle: Default::default(),
            releases,
            webhook_refusals: Default::default(),
        })
    }
}
