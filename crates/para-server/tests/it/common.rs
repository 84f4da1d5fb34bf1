//! Shared by the server's integration tests: development keys, user tokens, and a server
//! started in-process on a loopback port.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

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

/// OAuth clients (and endpoint overrides) keyed by integration key.
pub fn clients(entries: &[(&str, OAuthClient)]) -> BTreeMap<String, OAuthClient> {
    entries.iter().map(|(k, c)| (para_server::env_key(k), c.clone())).collect()
}

pub struct Server {
    pub base: String,
    pub port: u16,
    pub project: String,
    pub state: Arc<AppState>,
    _stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// What every test server is made of: a store on `database`, a verifier of the development
/// keys' tokens and a fixed secret key.
pub async fn essentials(
    database: &str,
) -> (para_store::Store, para_auth::Verifier, para_auth::SecretKey) {
    let store = para_store::Store::open(database).await.unwrap();
    let verifier = para_auth::Verifier::for_project(keys_root(), None).unwrap();
    let secrets =
        para_auth::SecretKey::from_base64("test", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .unwrap();
    (store, verifier, secrets)
}

/// Serves `build` on a loopback port with the given database and OAuth clients.
pub async fn start(
    build: para_build::Build,
    database: &str,
    oauth_clients: BTreeMap<String, OAuthClient>,
) -> Server {
    start_with(build, database, oauth_clients, para_server::engine::EngineConfig::from_env()).await
}

/// [`start`] on a fresh SQLite file and no OAuth clients; the folder lives as long as the guard.
pub async fn start_fresh(build: para_build::Build) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("para.db").display());
    let server = start(build, &db, Default::default()).await;
    (dir, server)
}

/// [`start`] with the engine's tunables given.
pub async fn start_with(
    build: para_build::Build,
    database: &str,
    oauth_clients: BTreeMap<String, OAuthClient>,
    engine: para_server::engine::EngineConfig,
) -> Server {
    start_configured(
        build,
        database,
        oauth_clients,
        engine,
        ServerConfig::HEADER_TIMEOUT,
        Default::default(),
    )
    .await
}

/// [`start`] with the server's limits given.
pub async fn start_limited(
    build: para_build::Build,
    database: &str,
    oauth_clients: BTreeMap<String, OAuthClient>,
    limits: para_server::limits::Limits,
) -> Server {
    let engine = para_server::engine::EngineConfig::from_env();
    start_configured(build, database, oauth_clients, engine, ServerConfig::HEADER_TIMEOUT, limits)
        .await
}

/// [`start`] with connections closed after `header_timeout` of waiting.
pub async fn start_timed(
    build: para_build::Build,
    database: &str,
    oauth_clients: BTreeMap<String, OAuthClient>,
    header_timeout: std::time::Duration,
) -> Server {
    let engine = para_server::engine::EngineConfig::from_env();
    start_configured(build, database, oauth_clients, engine, header_timeout, Default::default())
        .await
}

async fn start_configured(
    build: para_build::Build,
    database: &str,
    oauth_clients: BTreeMap<String, OAuthClient>,
    engine: para_server::engine::EngineConfig,
    header_timeout: std::time::Duration,
    limits: para_server::limits::Limits,
) -> Server {
    let (store, verifier, secrets) = essentials(database).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let config = ServerConfig {
        project_root: keys_root().clone(),
        public_url: base.clone(),
        admin_key: None,
        oauth_clients,
        header_timeout,
        limits,
    };
    let project = build.project.project_id.clone().unwrap_or_default();
    let state = AppState::with_engine(config, build, store, verifier, secrets, engine);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(para_server::serve_on(state.clone(), listener, async move {
        let _ = stopped.await;
    }));
    Server { base, port, project, state, _stop: stop, served }
}

/// Runs test `name` of `module` (its `module_path!()`) again in a child process of this test
/// binary with `env` set, and tells whether this is that child. For what the server reads from
/// the environment once per process (`PARA_CORS_ORIGINS`) or when a server starts (the proxy's
/// limits): setting variables in a process whose other tests run in parallel would race. The
/// child must run exactly that test and pass it.
pub fn in_child(module: &str, name: &str, env: &[(&str, &str)]) -> bool {
    // libtest names a test by its path in the binary, without the crate's name.
    let test = match module.split_once("::") {
        Some((_crate, path)) => format!("{path}::{name}"),
        None => name.to_string(),
    };
    if std::env::var_os("PARA_TEST_CHILD").is_some_and(|v| v == test.as_str()) {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env("PARA_TEST_CHILD", &test)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the run of {test} with {env:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

impl Server {
    /// Signals shutdown (as Ctrl-C does) and waits until the server has stopped.
    pub async fn shut_down(self) -> std::io::Result<()> {
        drop(self._stop);
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

    /// [`Server::call`] with more headers (`X-Paragon-Credential`…).
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
