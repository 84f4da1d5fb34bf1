//! `para serve`: builds the project if its build is missing or stale, then serves it. The
//! setup (keys, OAuth apps, database, listener) is shared with `para dev`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use para_auth::{SecretKey, Verifier};
use para_build::Build;
use para_server::{AppState, ServerConfig};

use crate::cli::{BuildArgs, ServeArgs};
use crate::{commands, config, output};

/// Where the served build lives, relative to the project root.
pub const BUILD_FILE: &str = "out/build.json";

pub fn run(args: ServeArgs) -> i32 {
    let root = match what_to_serve(&args) {
        Ok(Some(root)) => root,
        Ok(None) => return serve_releases(args),
        Err(code) => return code,
    };
    let build_path = root.join(BUILD_FILE);
    let build = if is_stale(&root, &build_path) {
        output::say("out/build.json is missing or older than the sources: building first");
        build_now(&root, true)
    } else {
        read_build(&build_path).map_err(|message| {
            output::error(message, Some("rebuild it with `para build`"));
            commands::FINDINGS
        })
    };
    let build = match build {
        Ok(build) => build,
        Err(code) => return code,
    };
    let setup = match Setup::new(Some(root), &args) {
        Ok(setup) => setup,
        Err(code) => return code,
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let (state, listener) = match setup.start(build).await {
            Ok(started) => started,
            Err(code) => return code,
        };
        let (project_id, public_url) = (&state.project_id, &state.config.public_url);
        tracing::info!(
            project_id = %project_id,
            url = %public_url,
            connect_api = %format!("{public_url}/projects/{project_id}/sdk/"),
            "serving (a user token for testing: para token --user <id>; stop with Ctrl-C)"
        );
        serve(state, listener).await
    })
}

/// The project folder to serve, or `None`: no folder (none given, none around the working
/// directory) and a database given, whose releases are served.
fn what_to_serve(args: &ServeArgs) -> Result<Option<PathBuf>, i32> {
    if let Some(dir) = args.project.project.as_deref() {
        return commands::project_root(Some(dir)).map(Some);
    }
    let found = std::env::current_dir()
        .map_err(|source| para_project::ProjectError::Io { path: ".".into(), source })
        .and_then(|cwd| para_project::find_root(&cwd));
    match found {
        Ok((root, _)) => Ok(Some(root)),
        Err(_) if args.database.is_some() => Ok(None),
        Err(e) => {
            let hint = e.hint().map(|h| format!("{h}; ")).unwrap_or_default();
            output::error(
                e.to_string(),
                Some(&format!(
                    "{hint}or, to serve the releases `para push` uploads, pass --database \
                     postgres://… (docs/deploy.md § Keys)"
                )),
            );
            Err(commands::USAGE)
        }
    }
}

/// `para serve --database URL` without a project folder: serves the database's current
/// release and follows it; before the first push, only the deploy API and `/healthz`.
fn serve_releases(args: ServeArgs) -> i32 {
    let setup = match Setup::new(None, &args) {
        Ok(setup) => setup,
        Err(code) => return code,
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let store = match commands::open_store(&setup.database).await {
            Ok(store) => store,
            Err(code) => return code,
        };
        let mode = para_server::releases::Mode::Database;
        let releases =
            para_server::releases::Releases::new(store, mode, setup.config.deploy_key.clone());
        if let Err(message) = releases.catch_up().await {
            output::error(
                format!("cannot serve the current release: {message}"),
                Some("push a build this version of para reads with `para push`, or `para rollback` to one"),
            );
            return commands::FINDINGS;
        }
        releases.follow(&setup.database);
        let public_url = setup.config.public_url.clone();
        let listener = match setup.listener.try_clone().and_then(tokio::net::TcpListener::from_std) {
            Ok(l) => l,
            Err(e) => {
                output::error(format!("cannot listen: {e}"), None);
                return commands::FINDINGS;
            }
        };
        if releases.served().is_none() {
            tracing::info!(
                url = %public_url,
                "no release yet: serving only the deploy API until `para push --server {public_url}`"
            );
            match para_server::serve_until_released(
                releases.clone(),
                listener,
                para_server::shutdown_signal(),
            )
            .await
            {
                Ok(true) => {}
                Ok(false) => return commands::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "the server stopped");
                    return commands::FINDINGS;
                }
            }
        }
        let listener = match tokio::net::TcpListener::from_std(setup.listener) {
            Ok(l) => l,
            Err(e) => {
                output::error(format!("cannot listen: {e}"), None);
                return commands::FINDINGS;
            }
        };
        let Some(state) = AppState::serving_releases(
            setup.config,
            releases,
            setup.verifier,
            setup.secrets,
            setup.engine,
        ) else {
            return commands::FINDINGS;
        };
        let release = state.releases.served().map_or(0, |s| s.number);
        let project_id = &state.project_id;
        tracing::info!(
            project_id = %project_id,
            release,
            url = %public_url,
            connect_api = %format!("{public_url}/projects/{project_id}/sdk/"),
            "serving release {release}"
        );
        serve(state, listener).await
    })
}

/// Builds the project into out/build.json (findings printed) and returns the build, or the
/// exit code when it has errors.
pub fn build_now(root: &Path, quiet: bool) -> Result<Build, i32> {
    let args = BuildArgs {
        project: Some(root.to_path_buf()),
        out: PathBuf::from(BUILD_FILE),
        quiet,
        timings: false,
        typecheck: false,
    };
    // The process goes on serving: free the JavaScript runtimes.
    match commands::build::build(args, true) {
        (commands::SUCCESS, Some(build)) => Ok(build),
        (commands::SUCCESS, None) => Err(commands::FINDINGS),
        (code, _) => Err(code),
    }
}

/// Reads a written build.
pub fn read_build(path: &Path) -> Result<Build, String> {
    std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The async runtime the server runs on.
/// The async runtime the server runs on: one thread per CPU the process may use; with a
/// single CPU (a container limited to one, `taskset`), a current-thread runtime, which does
/// the same work without the multi-threaded scheduler's hand-offs. Blocking work (function
/// steps, SQLite) has threads of its own either way.
pub fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build().map_err(|e| {
        output::error(format!("cannot start the async runtime: {e}"), None);
        commands::FINDINGS
    })
}

/// Everything a server needs besides its build, checked (and the port bound) before anything
/// is served. Errors are printed; the `Err` is the exit code.
pub struct Setup {
    pub listener: std::net::TcpListener,
    pub database: String,
    pub config: ServerConfig,
    pub verifier: Verifier,
    pub secrets: SecretKey,
    pub engine: para_worker::EngineConfig,
}

impl Setup {
    /// `root`: the project folder; none for a server of pushed releases, which reads its
    /// keys only from the environment.
    pub fn new(root: Option<PathBuf>, args: &ServeArgs) -> Result<Setup, i32> {
        let env = config::env();
        let folder = root.is_some();
        let root = match root {
            Some(root) => root,
            None => std::env::current_dir().unwrap_or_default(),
        };
        if !folder {
            if env.user_token_public_key().is_none() {
                output::error(
                    "a server without a project folder needs PARA_USER_TOKEN_PUBLIC_KEY",
                    Some(
                        "set it to the PEM public key your backend's user tokens are verified with (docs/deploy.md § Keys)",
                    ),
                );
                return Err(commands::USAGE);
            }
            if env.secret_key().is_none() {
                output::error(
                    "a server without a project folder needs PARA_SECRET_KEY",
                    Some(
                        "set it to base64 of 32 random bytes (`openssl rand -base64 32`), the same on every node, and back it up: credentials are sealed with it (docs/deploy.md § Keys)",
                    ),
                );
                return Err(commands::USAGE);
            }
        }
        let bad_setting = |e: config::ConfigError| {
            output::error(e.to_string(), Some(config::DOCS));
            commands::USAGE
        };
        let audience = env.token_audience();
        let verifier = para_auth::keys::load_public_keys_with(&root, env.user_token_public_key())
            .and_then(|keys| Verifier::new(keys, audience.as_deref()))
            .map_err(|e| {
                output::error(
                    e.to_string(),
                    e.hint().as_deref().or(Some("create the development keys with `para keys`")),
                );
                commands::USAGE
            })?;
        let secrets = SecretKey::from_value_or_dev(env.secret_key(), &root).map_err(|e| {
            output::error(e.to_string(), e.hint().as_deref());
            commands::USAGE
        })?;
        let oauth_clients =
            para_connect::clients::load_oauth_clients_with(&root, env.oauth_vars()).map_err(|message| {
            output::error(
                message,
                Some(
                    "set PARA_OAUTH_<KEY>_CLIENT_ID / _CLIENT_SECRET or fix .para/oauth-clients.json: docs/server.md § OAuth clients and endpoint overrides",
                ),
            );
            commands::USAGE
        })?;
        let database = commands::database_or_default(&root, args.database.as_deref());
        let addr = SocketAddr::new(args.host, args.port);
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| {
                output::error(
                    format!("cannot listen on {addr}: {e}"),
                    Some("choose another port with --port (0: any free port)"),
                );
                commands::USAGE
            })?;
        let bound = listener.local_addr().unwrap_or(addr);
        let public_url = args.public_url.clone().unwrap_or_else(|| default_public_url(bound));
        let config = ServerConfig {
            project_root: root,
            public_url: public_url.trim_end_matches('/').to_string(),
            admin_key: env.admin_key(),
            oauth_clients,
            header_timeout: ServerConfig::HEADER_TIMEOUT,
            limits: env.limits().map_err(bad_setting)?,
            cors: Arc::new(env.cors().map_err(bad_setting)?),
            outgoing_proxy: env.outgoing_proxy(),
            env_secrets: env.env_secrets(),
            triggers_api: env.triggers_api().map_err(bad_setting)?,
            deploy_key: env.deploy_key(),
            telemetry: env.telemetry().map_err(bad_setting)?,
            alerts: env.alerts().map_err(bad_setting)?,
        };
        let engine = env.engine().map_err(bad_setting)?;
        para_worker::set_sandbox_memory_config(env.function_memory().map_err(bad_setting)?);
        Ok(Setup { listener, database, config, verifier, secrets, engine })
    }

    /// Opens (and migrates) the database and makes the served state. Inside the runtime.
    pub async fn start(
        self,
        build: Build,
    ) -> Result<(Arc<AppState>, tokio::net::TcpListener), i32> {
        let store = commands::open_store(&self.database).await?;
        let listener = tokio::net::TcpListener::from_std(self.listener).map_err(|e| {
            output::error(format!("cannot listen: {e}"), None);
            commands::FINDINGS
        })?;
        let state = AppState::with_engine(
            self.config,
            build,
            store,
            self.verifier,
            self.secrets,
            self.engine,
        );
        Ok((state, listener))
    }
}

/// `http://` and the bound address, with a wildcard address (`0.0.0.0`, `::`) replaced by
/// loopback, which a browser on this machine can open.
fn default_public_url(bound: SocketAddr) -> String {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, bound.port()))
}

/// Serves until Ctrl-C or SIGTERM, then finishes in-flight requests; the exit code.
pub async fn serve(state: Arc<AppState>, listener: tokio::net::TcpListener) -> i32 {
    match para_server::serve_on(state, listener, para_server::shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            commands::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "the server stopped");
            commands::FINDINGS
        }
    }
}

/// True when the build is missing or a project file is newer than it.
fn is_stale(root: &Path, build: &Path) -> bool {
    let Ok(built) = std::fs::metadata(build).and_then(|m| m.modified()) else {
        return true;
    };
    newest(&root.join("src")).is_some_and(|t| t > built)
        || [".para/project.json", "paragon.json"]
            .iter()
            .filter_map(|f| std::fs::metadata(root.join(f)).and_then(|m| m.modified()).ok())
            .any(|t| t > built)
}

fn newest(dir: &Path) -> Option<SystemTime> {
    let mut latest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        latest = latest.max(time);
    }
    latest
}
