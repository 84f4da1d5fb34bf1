//! `para serve`: builds the project if its build is missing or stale, then serves it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use para_server::{AppState, ServerConfig};

use crate::cli::{BuildArgs, ServeArgs};
use crate::{commands, output};

pub fn run(args: ServeArgs) -> i32 {
    let root = match commands::project_root(args.project.project.as_deref()) {
        Ok(root) => root,
        Err(code) => return code,
    };
    let build_path = root.join("out/build.json");
    if is_stale(&root, &build_path) {
        output::say("out/build.json is missing or older than the sources: building first");
        let code = commands::build::run(BuildArgs {
            project: Some(root.clone()),
            out: PathBuf::from("out/build.json"),
            quiet: true,
            timings: false,
            typecheck: false,
        });
        if code != commands::SUCCESS {
            return code;
        }
    }
    let build: para_build::Build = match std::fs::read(&build_path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(build) => build,
        Err(e) => {
            output::error(
                format!("cannot read {}: {e}", build_path.display()),
                Some("rebuild it with `para build`"),
            );
            return commands::FINDINGS;
        }
    };
    let audience = std::env::var("PARA_TOKEN_AUDIENCE").ok().filter(|a| !a.is_empty());
    let verifier = match para_auth::Verifier::for_project(&root, audience.as_deref()) {
        Ok(v) => v,
        Err(e) => {
            output::error(
                e.to_string(),
                e.hint().as_deref().or(Some("create the development keys with `para keys`")),
            );
            return commands::USAGE;
        }
    };
    let secrets = match para_auth::SecretKey::from_env_or_dev(&root) {
        Ok(s) => s,
        Err(e) => {
            output::error(e.to_string(), e.hint().as_deref());
            return commands::USAGE;
        }
    };
    let oauth_clients = match para_server::config::load_oauth_clients(&root) {
        Ok(c) => c,
        Err(message) => {
            output::error(
                message,
                Some(
                    "see README § Serving: PARA_OAUTH_<KEY>_CLIENT_ID / _CLIENT_SECRET or .para/oauth-clients.json",
                ),
            );
            return commands::USAGE;
        }
    };
    let database = args
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", root.join(".para/para.db").display()));
    let addr = SocketAddr::new(args.host, args.port);
    let public_url = args.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let config = ServerConfig {
        project_root: root.clone(),
        public_url: public_url.trim_end_matches('/').to_string(),
        admin_key: std::env::var("PARA_ADMIN_KEY").ok().filter(|k| !k.is_empty()),
        oauth_clients,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            output::error(format!("cannot start the async runtime: {e}"), None);
            return commands::FINDINGS;
        }
    };
    runtime.block_on(async move {
        let store = match para_store::Store::open(&database).await {
            Ok(s) => s,
            Err(e) => {
                output::error(
                    format!("cannot open the database: {e}"),
                    Some("pass --database sqlite://path/para.db or postgres://user:pass@host/db"),
                );
                return commands::USAGE;
            }
        };
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                output::error(
                    format!("cannot listen on {addr}: {e}"),
                    Some("choose another port with --port"),
                );
                return commands::USAGE;
            }
        };
        let project_id = build.project.project_id.clone().unwrap_or_default();
        let state = AppState::new(config, build, store, verifier, secrets);
        output::say(format!(
            "serving project {project_id} on {public_url}\n  Connect API: {public_url}/projects/{project_id}/sdk/…\n  a user token for testing: para token --user <id>\n  stop with Ctrl-C"
        ));
        match para_server::serve_on(state, listener, para_server::shutdown_signal()).await {
            Ok(()) => {
                output::say("stopped");
                commands::SUCCESS
            }
            Err(e) => {
                output::error(format!("server error: {e}"), None);
                commands::FINDINGS
            }
        }
    })
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
