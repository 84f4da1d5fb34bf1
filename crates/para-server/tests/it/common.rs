//! The harness of the server's integration tests: [`TestServer`], the server under test
//! started in-process on a loopback port and configured through [`TestServer::builder`];
//! upstreams for it ([`serve`]); development keys, user tokens, builds.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use para_server::engine::EngineConfig;
use para_server::limits::Limits;
use para_server::{AppState, OAuthClient, ServerConfig};
use serde_json::Value;

/// A project root with development keys, made once per test binary (RSA keys are slow).
pub fn keys_root() -> &'static std::path::PathBuf {
    static ROOT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        para_auth::generate_dev_keys(&dir).unwrap();
        dir
    })
}

/// A user token signed with the project's development key, valid for an hour.
pub fn token(user: &str) -> String {
    let pem = para_auth::keys::load_private_key(keys_root()).unwrap();
    para_auth::sign(&pem, &para_auth::Claims::new(user, Duration::from_secs(3600))).unwrap()
}

/// The secret key every test server seals with, unless [`Builder::secret_key`] says otherwise.
pub fn secret_key() -> para_auth::SecretKey {
    para_auth::SecretKey::from_base64("test", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .unwrap()
}

/// A server under test: `build` served by `para_server::serve_on` on a loopback port, in this
/// process. Dropping it signals shutdown (as Ctrl-C does); [`TestServer::shut_down`] also waits
/// for the server to stop.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`, also the server's public URL.
    pub base: String,
    pub port: u16,
    /// The build's project id (the `/projects/{id}` of the Connect API).
    pub project: String,
    pub state: Arc<AppState>,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The folder of [`Builder::sqlite_file`]'s database, removed with the server.
    _dir: Option<tempfile::TempDir>,
}

/// What a [`TestServer`] is made of, each setting optional: by default an in-memory SQLite
/// database, no admin key (no dashboard), no OAuth clients, the engine's settings from the
/// environment (as `para serve`), [`ServerConfig::HEADER_TIMEOUT`] and the default limits,
/// the development keys of [`keys_root`] and the key of [`secret_key`].
#[must_use]
pub struct Builder {
    build: para_build::Build,
    database: Database,
    admin_key: Option<String>,
    oauth_clients: BTreeMap<String, OAuthClient>,
    engine: Option<EngineConfig>,
    header_timeout: Duration,
    limits: Limits,
    cors: para_server::CorsPolicy,
    project_root: Option<PathBuf>,
    secret_key: Option<para_auth::SecretKey>,
    triggers_api: para_worker::deliveries::TriggersApiConfig,
    deploy_key: Option<String>,
    releases: bool,
    telemetry: para_server::TelemetryConfig,
    alerts: para_worker::alerts::AlertsConfig,
}

enum Database {
    Url(String),
    FreshFile,
}

impl TestServer {
    /// A server of `build`, to be configured and then [started](Builder::start).
    pub fn builder(build: para_build::Build) -> Builder {
        Builder {
            build,
            database: Database::Url("sqlite::memory:".into()),
            admin_key: None,
            oauth_clients: BTreeMap::new(),
            engine: None,
            header_timeout: ServerConfig::HEADER_TIMEOUT,
            limits: Limits::default(),
            cors: Default::default(),
            project_root: None,
            secret_key: None,
            triggers_api: Default::default(),
            deploy_key: None,
            releases: false,
            telemetry: Default::default(),
            alerts: Default::default(),
        }
    }
}

impl Builder {
    /// The database URL (`sqlite::memory:`, `sqlite://…`, `postgres://…`); several servers
    /// may share one.
    pub fn database(mut self, url: &str) -> Self {
        self.database = Database::Url(url.to_string());
        self
    }

    /// A fresh SQLite file in a temporary folder that lives as long as the server.
    pub fn sqlite_file(mut self) -> Self {
        self.database = Database::FreshFile;
        self
    }

    /// The key that guards the dashboard and the admin API; none (the default): they are off.
    pub fn admin_key(mut self, key: Option<&str>) -> Self {
        self.admin_key = key.map(str::to_string);
        self
    }

    /// The company's OAuth app (and endpoint overrides: a fake provider's URLs) for the
    /// integration `key`.
    pub fn oauth_client(mut self, key: &str, client: OAuthClient) -> Self {
        self.oauth_clients.insert(para_server::env_key(key), client);
        self
    }

    /// The engine's tunables (short polls and retry waits); else [`EngineConfig::default`].
    pub fn engine(mut self, config: EngineConfig) -> Self {
        self.engine = Some(config);
        self
    }

    /// How long a connection may wait before sending a request's head.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Connections, body rate, token lifetime, permissions' metadata, configurations, the
    /// proxy's memory.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Which origins get CORS (`PARA_CORS_ORIGINS`); else every origin, without credentials.
    pub fn cors(mut self, policy: para_server::CorsPolicy) -> Self {
        self.cors = policy;
        self
    }

    /// The project folder (environment secrets, keys) instead of [`keys_root`]; tokens are
    /// still verified with the development keys of [`keys_root`].
    pub fn project_root(mut self, root: &Path) -> Self {
        self.project_root = Some(root.to_path_buf());
        self
    }

    /// The key credential secrets and environment secrets are sealed with.
    pub fn secret_key(mut self, key: para_auth::SecretKey) -> Self {
        self.secret_key = Some(key);
        self
    }

    /// The Triggers API's webhook URL, signing secret and retry schedule.
    /// The deploy key the deploy API takes (`PARA_DEPLOY_KEY`).
    pub fn deploy_key(mut self, key: &str) -> Self {
        self.deploy_key = Some(key.to_string());
        self
    }

    /// Serves releases like `para serve` without a project folder: the build is pushed as
    /// the first release of the database, and pushes are taken.
    pub fn serving_releases(mut self) -> Self {
        self.releases = true;
        self
    }

    pub fn triggers_api(mut self, config: para_worker::deliveries::TriggersApiConfig) -> Self {
        self.triggers_api = config;
        self
    }

    /// `/metrics`' key and address, and where runs' traces go; else metrics off, no traces.
    pub fn telemetry(mut self, config: para_server::TelemetryConfig) -> Self {
        self.telemetry = config;
        self
    }

    /// The deployment's alert destination and the alerts' retry schedule.
    pub fn alerts(mut self, config: para_worker::alerts::AlertsConfig) -> Self {
        self.alerts = config;
        self
    }

    /// The server's state as the server would have it, not served (and no engine started);
    /// its public URL points at nothing.
    pub async fn state(self) -> Arc<AppState> {
        let (state, dir) = self.into_state("http://127.0.0.1:1").await;
        assert!(dir.is_none(), "a fresh SQLite file needs a server to keep it");
        state
    }

    /// Serves the build on a loopback port; answers once its engine runs.
    pub async fn start(self) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let project = self.build.project.project_id.clone().unwrap_or_default();
        let (state, dir) = self.into_state(&base).await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(para_server::serve_on(state.clone(), listener, async move {
            let _ = stopped.await;
        }));
        engine_running(&state).await;
        TestServer { base, port, project, state, stop, served, _dir: dir }
    }

    async fn into_state(self, public_url: &str) -> (Arc<AppState>, Option<tempfile::TempDir>) {
        let (database, dir) = match self.database {
            Database::Url(url) => (url, None),
            Database::FreshFile => {
                let dir = tempfile::tempdir().unwrap();
                (format!("sqlite://{}", dir.path().join("para.db").display()), Some(dir))
            }
        };
        let store = para_store::Store::open(&database).await.unwrap();
        let verifier = para_auth::Verifier::for_project(keys_root(), None).unwrap();
        let config = ServerConfig {
            project_root: self.project_root.unwrap_or_else(|| keys_root().clone()),
            public_url: public_url.to_string(),
            admin_key: self.admin_key,
            oauth_clients: self.oauth_clients,
            header_timeout: self.header_timeout,
            limits: self.limits,
            cors: std::sync::Arc::new(self.cors),
            outgoing_proxy: false,
            env_secrets: Default::default(),
            triggers_api: self.triggers_api,
            deploy_key: self.deploy_key,
            telemetry: self.telemetry,
            alerts: self.alerts,
        };
        let secrets = self.secret_key.unwrap_or_else(secret_key);
        let engine = self.engine.unwrap_or_default();
        if self.releases {
            use para_server::releases::{Mode, PushInfo, Releases};
            let releases = Releases::new(store, Mode::Database, config.deploy_key.clone());
            let build = serde_json::to_value(&self.build).unwrap();
            releases.push(build, PushInfo::default()).await.map_err(|e| e.message).unwrap();
            let state = AppState::serving_releases(config, releases, verifier, secrets, engine);
            return (state.expect("a release is served"), dir);
        }
        (AppState::with_engine(config, self.build, store, verifier, secrets, engine), dir)
    }
}

/// Waits until `serve_on` has started the engine (it serves from then on), so that runs can be
/// started through the state at once. Asked of the engine, not over a connection, which would
/// count against the connection limits a test sets: starting a run of a workflow the build
/// does not have is refused with `engine_stopped` before, with `not_found` after.
async fn engine_running(state: &AppState) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let nothing = para_server::engine::Start {
            user_id: "test-harness".into(),
            integration: String::new(),
            workflow_id: "no-such-workflow".into(),
            trigger_kind: "event".into(),
            trigger_output: Value::Null,
            user: None,
            credential_id: None,
            configuration_id: None,
        };
        match para_server::engine::start_run(&state.worker, nothing, false).await {
            Err(para_worker::Error::NoWorkflow(_)) => return,
            Err(para_worker::Error::EngineStopped) => {
                assert!(std::time::Instant::now() < deadline, "the engine did not start in 30 s");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(e) => panic!("the engine's readiness: {e:?}"),
            Ok(started) => panic!("a run of no workflow started: {}", started.run_id),
        }
    }
}

/// An upstream of the server under test (a fake provider, an API) served on a loopback port;
/// its base URL, `http://127.0.0.1:<port>`.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// A client that leaves redirects to the test (a browser's view of the portal's pages).
pub fn client_without_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

impl TestServer {
    /// Signals shutdown (as Ctrl-C does) and waits until the server has stopped.
    pub async fn shut_down(self) -> std::io::Result<()> {
        drop(self.stop);
        self.served.await.expect("the server task")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/projects/{}{path}", self.base, self.project)
    }

    /// A Connect API call as the SDK makes it; the status and the JSON (or text) answer.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_with(method, path, bearer, &[], body).await
    }

    /// [`TestServer::call`] with more headers (`X-Paragon-Credential`…).
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = client()
            .request(method.parse().unwrap(), self.url(path))
            .header("authorization", format!("Bearer {bearer}"));
        for (name, value) in headers {
            r = r.header(*name, *value);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A GET written byte for byte (HTTP clients normalise `..` away); the status code.
    pub fn raw_get(&self, target: &str, bearer: &str) -> u16 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {bearer}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out[9..12].parse().unwrap()
    }
}

/// A custom integration in the compiled form, pointing at nothing (tests override the URLs).
pub fn custom(key: &str, auth: &str, authorization: Value, request_options: Value) -> Value {
    serde_json::json!({
        "key": key, "kind": "custom", "name": key, "source": format!("src/integrations/{key}"),
        "config": {
            "description": null, "overview": null, "showWatermark": true, "active": true,
            "workflowDisplayOrder": [],
            "custom": {
                "name": key, "slug": key.trim_start_matches("custom."), "accentColor": "#123456",
                "authenticationType": auth, "scopes": [],
                "includeClientIdAndSecrets": true, "usePKCEInCodeExchange": false,
                "authorizationUrl": { "type": "VALUE", "value": "http://127.0.0.1:1/authorize" },
                "accessTokenUrl": { "type": "VALUE", "value": "http://127.0.0.1:1/token" },
                "apiBaseUrl": { "type": "VALUE", "value": "http://127.0.0.1:1/api" },
                "testEndpointPath": { "type": "VALUE", "value": "/me" },
                "authorization": authorization,
                "requestOptions": request_options,
                "configInputs": []
            }
        },
        "inputs": [], "workflows": {}, "customTriggers": {}
    })
}

/// A build of one project holding `integrations` (key → compiled integration).
pub fn build(project: &str, integrations: Value) -> para_build::Build {
    serde_json::from_value(serde_json::json!({
        "formatVersion": 1, "buildHash": "sha256:test", "generator": "test",
        "project": { "projectId": project, "projectName": project },
        "persona": { "meta": null, "source": null },
        "events": {}, "resources": {}, "secrets": [],
        "integrations": integrations,
    }))
    .unwrap()
}
