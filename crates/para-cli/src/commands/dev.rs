//! `para dev`: the development loop. Writes the development keys if missing, builds, serves the
//! build like `para serve`, and prints the Connect Portal URL and a ready-made user token; then
//! watches the project's sources and rebuilds in-process on every change, swapping the served
//! build without a restart. A build with errors is reported and the last good build stays
//! served.
//!
//! stdout carries the data (`portal:`, `user:`, `token:` lines); progress and findings go to
//! stderr like every other command.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use para_auth::{keys, tokens};
use para_server::AppState;

use crate::cli::DevArgs;
use crate::commands::serve::{self, BUILD_FILE, Setup};
use crate::{commands, output};

/// How long the printed token is valid.
const TOKEN_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// A burst of changes (an editor saving several files, a branch switch) is one rebuild: it
/// starts once no change came for this long.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// Without file-system notifications, how often the sources are compared.
const POLL: Duration = Duration::from_millis(500);
/// Project files outside `src/` that change the build.
const MARKERS: [&str; 2] = [".para/project.json", "paragon.json"];

pub fn run(args: DevArgs) -> i32 {
    if args.user.trim().is_empty() {
        output::error("--user must not be empty", Some("pass a user id, e.g. --user dev-user"));
        return commands::USAGE;
    }
    let root = match commands::project_root(args.serve.project.project.as_deref()) {
        Ok(root) => root,
        Err(code) => return code,
    };
    match commands::keys::ensure(&root) {
        Ok(written) => {
            for path in &written.created {
                output::say(format!("created {}", path.display()));
            }
        }
        Err(e) => {
            output::error(e.message, e.hint.as_deref());
            return commands::FINDINGS;
        }
    }
    // Watching starts before the first build: no change after it goes unnoticed.
    let changes = Changes::start(&root);
    let build = match serve::build_now(&root, false) {
        Ok(build) => build,
        // Keep going with the last good build, if there is one: the next save may fix it.
        Err(code) => match serve::read_build(&root.join(BUILD_FILE)) {
            Ok(previous) => {
                output::say("serving the previous out/build.json until the errors above are fixed");
                previous
            }
            Err(_) => return code,
        },
    };
    let token = match keys::load_private_key(&root)
        .and_then(|pem| tokens::sign(&pem, &tokens::Claims::new(args.user.clone(), TOKEN_TTL)))
    {
        Ok(token) => token,
        Err(e) => {
            output::error(e.to_string(), e.hint().as_deref());
            return commands::FINDINGS;
        }
    };
    let setup = match Setup::new(Some(root.clone()), &args.serve) {
        Ok(setup) => setup,
        Err(code) => return code,
    };
    let runtime = match serve::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let (state, listener) = match setup.start(build).await {
            Ok(started) => started,
            Err(code) => return code,
        };
        let (project_id, public_url) = (&state.project_id, &state.config.public_url);
        output::say(format!(
            "serving {} (project {project_id}) on {public_url}",
            state.build().project.project_name.as_deref().unwrap_or("the project")
        ));
        println!("portal: {public_url}/projects/{project_id}/portal?token={token}");
        println!("user: {}", args.user);
        println!("token: {token}");
        output::say(format!(
            "  the token is valid for 12 hours; Connect API: {public_url}/projects/{project_id}/sdk/…\n\
             watching src/, .para/project.json and paragon.json: changes are rebuilt and served at once\n\
             stop with Ctrl-C"
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::Builder::new()
                .name("para-dev-watch".into())
                .spawn(move || watch(&root, changes, &state, &stop))
        };
        if let Err(e) = &watcher {
            output::error(format!("cannot watch the project: {e}"), None);
        }
        let code = serve::serve(state, listener).await;
        // A rebuild in progress is abandoned with the process.
        stop.store(true, Ordering::Relaxed);
        code
    })
}

/// Changes of the project's sources, each a `()` on a channel.
struct Changes {
    received: mpsc::Receiver<()>,
    /// Kept alive for as long as we watch; `None` when polling.
    _watcher: Option<Box<dyn Send>>,
}

impl Changes {
    /// File-system notifications, or polling where they are unavailable.
    fn start(root: &Path) -> Changes {
        let (changed, received) = mpsc::channel::<()>();
        let watcher = match notify_watcher(root, changed.clone()) {
            Ok(watcher) => Some(Box::new(watcher) as Box<dyn Send>),
            Err(e) => {
                output::say(format!(
                    "note: no file-system notifications ({e}); checking for changes every {} ms",
                    POLL.as_millis()
                ));
                let root = root.to_path_buf();
                let first = snapshot(&root);
                std::thread::spawn(move || poll(&root, first, &changed));
                None
            }
        };
        Changes { received, _watcher: watcher }
    }
}

/// Waits for changes and rebuilds, until `stop`.
fn watch(root: &Path, changes: Changes, state: &AppState, stop: &AtomicBool) {
    loop {
        match changes.received.recv_timeout(Duration::from_millis(250)) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => continue,
            Err(_) => return,
        }
        while changes.received.recv_timeout(DEBOUNCE).is_ok() {}
        if stop.load(Ordering::Relaxed) {
            return;
        }
        rebuild(root, state);
    }
}

fn rebuild(root: &Path, state: &AppState) {
    output::say("change detected: rebuilding");
    let started = Instant::now();
    let served = state.build();
    let short = |hash: &str| {
        let hex = hash.split_once(':').map_or(hash, |(_, hex)| hex);
        hex.chars().take(12).collect::<String>()
    };
    match serve::build_now(root, true) {
        Ok(build) => {
            let took = started.elapsed().as_millis();
            let id = build.project.project_id.clone().unwrap_or_else(|| "default".into());
            if id != state.project_id {
                output::say(format!(
                    "warning: the project id changed to {id}; it is still served as {} until para dev is restarted",
                    state.project_id
                ));
            }
            if build.build_hash == served.build_hash {
                output::say(format!(
                    "rebuilt in {took} ms: no change, still serving build {}",
                    short(&served.build_hash)
                ));
            } else {
                let hash = short(&build.build_hash);
                state.replace_build(build);
                output::say(format!("rebuilt in {took} ms: now serving build {hash}"));
            }
        }
        Err(_) => output::say(format!(
            "still serving the last good build {}; para dev rebuilds on the next change",
            short(&served.build_hash)
        )),
    }
}

/// Whether a changed path can change the build: anything under `src/` and the project markers.
fn relevant(root: &Path, path: &Path) -> bool {
    path.starts_with(root.join("src")) || MARKERS.iter().any(|m| path == root.join(m))
}

/// Notifications for `src/` (recursive) and the project markers. Folders are watched rather than
/// the marker files, since editors save by writing a new file and renaming it over the old one.
fn notify_watcher(root: &Path, changed: mpsc::Sender<()>) -> notify::Result<impl Send + 'static> {
    use notify::{EventKind, RecursiveMode, Watcher as _};
    // The paths notify reports start with the watched path as given: watch the canonical root.
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let filter_root = root.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let wanted = match event {
            // Events were lost (an overflow): rebuild to be sure.
            Err(_) => true,
            Ok(event) => {
                !matches!(event.kind, EventKind::Access(_))
                    && event.paths.iter().any(|p| relevant(&filter_root, p))
            }
        };
        if wanted {
            let _ = changed.send(());
        }
    })?;
    watcher.watch(&root.join("src"), RecursiveMode::Recursive)?;
    watcher.watch(&root, RecursiveMode::NonRecursive)?;
    if root.join(".para").is_dir() {
        watcher.watch(&root.join(".para"), RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

/// The fallback: compares every watched file's size and time every [`POLL`].
fn poll(root: &Path, first: Snapshot, changed: &mpsc::Sender<()>) {
    let mut last = first;
    loop {
        std::thread::sleep(POLL);
        let now = snapshot(root);
        if now != last {
            last = now;
            if changed.send(()).is_err() {
                return;
            }
        }
    }
}

type Snapshot = Vec<(PathBuf, Option<SystemTime>, u64)>;

fn snapshot(root: &Path) -> Snapshot {
    fn walk(dir: &Path, into: &mut Snapshot) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => walk(&path, into),
                Ok(meta) => into.push((path, meta.modified().ok(), meta.len())),
                Err(_) => {}
            }
        }
    }
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    for marker in MARKERS {
        let path = root.join(marker);
        if let Ok(meta) = std::fs::metadata(&path) {
            files.push((path, meta.modified().ok(), meta.len()));
        }
    }
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sources_and_markers_are_relevant() {
        let root = Path::new("/p");
        assert!(relevant(root, Path::new("/p/src/integrations/slack/config.ts")));
        assert!(relevant(root, Path::new("/p/.para/project.json")));
        assert!(relevant(root, Path::new("/p/paragon.json")));
        assert!(!relevant(root, Path::new("/p/out/build.json")));
        assert!(!relevant(root, Path::new("/p/.para/para.db")));
        assert!(!relevant(root, Path::new("/p/node_modules/x/index.d.ts")));
        assert!(!relevant(root, Path::new("/p/srcs/a.ts")));
    }

    #[test]
    fn snapshots_see_edits_and_new_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src/a")).unwrap();
        std::fs::write(dir.path().join("src/a/x.ts"), "1").unwrap();
        let before = snapshot(dir.path());
        assert_eq!(before, snapshot(dir.path()));
        std::fs::write(dir.path().join("src/a/x.ts"), "12").unwrap();
        let edited = snapshot(dir.path());
        assert_ne!(before, edited);
        std::fs::write(dir.path().join("paragon.json"), "{}").unwrap();
        assert_ne!(edited, snapshot(dir.path()));
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        let with_marker = snapshot(dir.path());
        std::fs::write(dir.path().join("out/build.json"), "{}").unwrap();
        assert_eq!(with_marker, snapshot(dir.path()), "out/ is not watched");
    }
}
