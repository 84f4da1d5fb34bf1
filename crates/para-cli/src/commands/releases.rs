//! `para push`, `para releases`, `para rollback`: the client of a running server's deploy API
//! (`/deploy/releases`, docs/deploy.md § Push and rollback).
//!
//! - `para push`: builds as `para build` does, then uploads the written `out/build.json` with
//!   a message, the author and the git commit; the server stores it as a numbered release (an
//!   identical build is not stored twice: its release is made current again).
//! - `para releases`: the releases, newest first, as a table or (`--json`) as the server sent
//!   them.
//! - `para rollback N`: makes release N current.
//!
//! Every request carries `Authorization: Bearer $PARA_DEPLOY_KEY`. A refusal is printed with
//! the server's `message` and a hint chosen by its `code`; a server that cannot be reached is
//! named with what to check. Data (the table, the JSON) goes to stdout, the rest to stderr.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::{BuildArgs, PushArgs, ReleasesArgs, RollbackArgs};
use crate::commands::serve::BUILD_FILE;
use crate::config::{self, EnvVars};
use crate::{commands, output};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole exchange may take: an upload of a large build on a slow link included.
const TIMEOUT: Duration = Duration::from_secs(300);

pub fn push(args: PushArgs) -> i32 {
    let server = match Server::new(&args.server.server) {
        Ok(server) => server,
        Err(code) => return code,
    };
    let root = match commands::project_root(args.project.project.as_deref()) {
        Ok(root) => root,
        Err(code) => return code,
    };
    // Read before building, so the build's own output (out/, when a project does not ignore
    // it) never makes the commit look changed.
    let author = author(&root, config::env().user());
    let commit = git_commit(&root);
    let build_args = BuildArgs {
        project: Some(root.clone()),
        out: BUILD_FILE.into(),
        quiet: false,
        timings: false,
        typecheck: false,
    };
    match commands::build::build(build_args, false) {
        // The process ends soon: let the OS reclaim the build rather than freeing it value by
        // value (as `para build` does).
        (commands::SUCCESS, Some(build)) => std::mem::forget(build),
        (commands::SUCCESS, None) => return commands::FINDINGS,
        (code, _) => return code,
    }
    let path = root.join(BUILD_FILE);
    let document = match std::fs::read(&path) {
        Ok(document) => document,
        Err(e) => {
            output::error(format!("cannot read {}: {e}", path.display()), None);
            return commands::FINDINGS;
        }
    };
    let message = args.message.as_deref().map(str::trim).filter(|m| !m.is_empty());
    let body = push_body(&document, message, author.as_deref(), commit.as_deref());
    drop(document);
    let answer = server.call(reqwest::Method::POST, "/deploy/releases", Some(body));
    let pushed: Pushed = match answer.and_then(|answer| server.parse(answer)) {
        Ok(pushed) => pushed,
        Err(failure) => return server.report(failure),
    };
    let release = &pushed.release;
    if pushed.created {
        output::say(format!(
            "pushed release {} ({}) to {}: now current",
            release.number,
            short_hash(&release.hash),
            server.base
        ));
    } else {
        output::say(format!("release {} has the same build: now current again", release.number));
    }
    commands::SUCCESS
}

pub fn list(args: ReleasesArgs) -> i32 {
    let server = match Server::new(&args.server.server) {
        Ok(server) => server,
        Err(code) => return code,
    };
    let (status, body) = match server.call(reqwest::Method::GET, "/deploy/releases", None) {
        Ok(answer) => answer,
        Err(failure) => return server.report(failure),
    };
    // Checked even with --json: a page that is not the server's answer is not passed on.
    let listing: Listing = match server.parse((status, body.clone())) {
        Ok(listing) => listing,
        Err(failure) => return server.report(failure),
    };
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        out.write_all(&body)
            .and_then(|()| if body.ends_with(b"\n") { Ok(()) } else { out.write_all(b"\n") })
    } else if listing.releases.is_empty() {
        output::say(format!("{} has no releases yet: push one with `para push`", server.base));
        Ok(())
    } else {
        out.write_all(table(&listing).as_bytes())
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => commands::SUCCESS,
        // A closed pipe (`para releases | head -1`) is not worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => commands::SUCCESS,
        Err(e) => {
            output::error(format!("cannot write to stdout: {e}"), None);
            commands::FINDINGS
        }
    }
}

pub fn rollback(args: RollbackArgs) -> i32 {
    let server = match Server::new(&args.server.server) {
        Ok(server) => server,
        Err(code) => return code,
    };
    let path = format!("/deploy/releases/{}/current", args.number);
    let answer = server.call(reqwest::Method::POST, &path, None);
    let made: Current = match answer.and_then(|answer| server.parse(answer)) {
        Ok(made) => made,
        Err(failure) => return server.report(failure),
    };
    let release = &made.release;
    output::say(format!(
        "release {} ({}, pushed {}{}) is now current on {}",
        release.number,
        short_hash(&release.hash),
        created(&release.created_at),
        release.author.as_deref().map(|a| format!(" by {a}")).unwrap_or_default(),
        server.base
    ));
    commands::SUCCESS
}

/// A release as the server describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    pub number: u64,
    pub hash: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
    pub created_at: String,
    #[serde(default)]
    pub current: bool,
}

/// `POST /deploy/releases`'s answer.
#[derive(Debug, Deserialize)]
struct Pushed {
    release: Release,
    created: bool,
}

/// `GET /deploy/releases`'s answer.
#[derive(Debug, Deserialize)]
pub struct Listing {
    pub current: Option<u64>,
    pub releases: Vec<Release>,
}

/// `POST /deploy/releases/{n}/current`'s answer.
#[derive(Debug, Deserialize)]
struct Current {
    release: Release,
}

/// Why a call did not give what was asked.
#[derive(Debug)]
enum Failure {
    /// Nothing answered (connection refused, name unknown, TLS, timeout).
    Unreachable(String),
    /// The server answered with an error status.
    Refused { status: u16, body: Vec<u8> },
    /// A success status whose body is not what the deploy API answers.
    Unexpected { status: u16, why: String },
}

/// The server a command talks to, and the key it talks with.
struct Server {
    /// The URL without a trailing `/`.
    base: String,
    key: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    /// Checks `--server` and `PARA_DEPLOY_KEY`; errors are printed, the `Err` is the exit code.
    fn new(given: &str) -> Result<Server, i32> {
        let base = server_url(given).map_err(|message| {
            output::error(message, Some(config::DOCS));
            commands::USAGE
        })?;
        let Some(key) = config::env().deploy_key() else {
            output::error(
                format!(
                    "{} is not set: the deploy API needs the server's deploy key",
                    EnvVars::PARA_DEPLOY_KEY
                ),
                Some(
                    "set it to the value of the server's PARA_DEPLOY_KEY, e.g. `PARA_DEPLOY_KEY=… para push` (docs/deploy.md § Keys)",
                ),
            );
            return Err(commands::USAGE);
        };
        // reqwest is built without a default crypto provider; ring is ours.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TIMEOUT)
            .user_agent(concat!("para/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                output::error(format!("cannot set up the HTTP client: {}", chain(&e)), None);
                commands::FINDINGS
            })?;
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
                output::error(format!("cannot start the async runtime: {e}"), None);
                commands::FINDINGS
            })?;
        Ok(Server { base, key, http, runtime })
    }

    /// One exchange: the status and body of a 2xx answer, else why not.
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), Failure> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        self.runtime.block_on(async {
            let response = request.send().await.map_err(unreachable)?;
            let status = response.status().as_u16();
            let body = response.bytes().await.map_err(unreachable)?;
            if (200..300).contains(&status) {
                Ok((status, body.to_vec()))
            } else {
                Err(Failure::Refused { status, body: body.to_vec() })
            }
        })
    }

    /// A 2xx answer's body read as `T`.
    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        (status, body): (u16, Vec<u8>),
    ) -> Result<T, Failure> {
        serde_json::from_slice(&body)
            .map_err(|e| Failure::Unexpected { status, why: e.to_string() })
    }

    /// Prints a failure; gives the exit code.
    fn report(&self, failure: Failure) -> i32 {
        let (message, hint) = explain(&self.base, failure);
        output::error(message, hint.as_deref());
        commands::FINDINGS
    }
}

/// `--server`'s value checked: an http(s) URL with a host; returned without a trailing `/`.
fn server_url(given: &str) -> Result<String, String> {
    let url = given.trim().trim_end_matches('/');
    let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match host {
        Some(host)
            if !host.is_empty()
                && !host.starts_with('/')
                && !host.contains(char::is_whitespace) =>
        {
            Ok(url.to_string())
        }
        _ => Err(format!(
            "--server (or {}) must be the server's http(s) URL, like https://para.example.com or http://127.0.0.1:7433, not `{given}`",
            EnvVars::PARA_SERVER_URL
        )),
    }
}

/// The server's error body: `{"message": …, "code": …, "status": …}`.
#[derive(Debug, Deserialize)]
struct ApiError {
    message: String,
    #[serde(default)]
    code: Option<String>,
}

/// A failure as the message and hint to print (pure, for tests).
fn explain(base: &str, failure: Failure) -> (String, Option<String>) {
    match failure {
        Failure::Unreachable(why) => (
            format!("cannot reach {base}: {why}"),
            Some(format!(
                "check that `para serve` runs there and is reachable from here, and that --server (or {}) is its URL",
                EnvVars::PARA_SERVER_URL
            )),
        ),
        Failure::Unexpected { status, why } => (
            format!("{base} answered {status} but not as para's deploy API does: {why}"),
            Some("check that --server is a para server (not a page in front of it)".into()),
        ),
        Failure::Refused { status, body } => {
            let Ok(error) = serde_json::from_slice::<ApiError>(&body) else {
                let (message, hint) = match status {
                    413 => (
                        format!("{base} refused the build as too large (413)"),
                        "raise the body limit of the proxy or balancer in front of the server"
                            .to_string(),
                    ),
                    404 => (
                        format!("{base} has no deploy API (404)"),
                        "check that --server is a para server, of a version with `para push` (docs/deploy.md)".into(),
                    ),
                    _ => (
                        format!("{base} answered {status}{}", snippet(&body)),
                        "check the server's log; try again when it is up".into(),
                    ),
                };
                return (message, Some(hint));
            };
            // The server's messages say what to do; a hint only points to the page that
            // explains more.
            let hint = match error.code.as_deref() {
                Some("deploy_off") => Some("see docs/deploy.md § Keys"),
                Some("project_folder") => Some("see docs/deploy.md § What runs"),
                Some("format_version") => Some("see docs/deploy.md § Upgrades"),
                Some("throttled") => Some("check PARA_DEPLOY_KEY before trying again"),
                _ if status == 413 => {
                    Some("the build is larger than the server (or a proxy in front of it) accepts")
                }
                _ => None,
            };
            (error.message, hint.map(str::to_string))
        }
    }
}

/// The start of a non-JSON error body, for the message (an HTML page is cut short).
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() { String::new() } else { format!(": {}", cut(&text, 120)) }
}

/// Why a request got no answer: reqwest's own message names the URL, which the printed error
/// names already, so only its causes are kept.
fn unreachable(e: reqwest::Error) -> Failure {
    use std::error::Error as _;
    Failure::Unreachable(if e.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else {
        match e.source() {
            Some(source) => chain(source),
            None => e.to_string(),
        }
    })
}

/// An error and its sources, `: `-separated (reqwest's own message alone says little).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

/// `POST /deploy/releases`'s body around the build document as written (not parsed and
/// written again: the server hashes what `para build` wrote).
fn push_body(
    document: &[u8],
    message: Option<&str>,
    author: Option<&str>,
    commit: Option<&str>,
) -> Vec<u8> {
    let json = |v: Option<&str>| serde_json::to_string(&v).expect("a string serialises");
    let rest = format!(
        r#","message":{},"author":{},"commit":{}}}"#,
        json(message),
        json(author),
        json(commit)
    );
    let mut body = Vec::with_capacity(document.len() + rest.len() + 16);
    body.extend_from_slice(br#"{"build":"#);
    body.extend_from_slice(document.trim_ascii());
    body.extend_from_slice(rest.as_bytes());
    body
}

/// `git <args>` in `dir`: its trimmed output when it succeeds; `None` when it fails or git is
/// not installed (a project outside git is fine).
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The commit the project is at (`git rev-parse HEAD`), with `-dirty` when `git status`
/// shows changes; `None` outside a git repository or before its first commit.
pub fn git_commit(dir: &Path) -> Option<String> {
    let head = git(dir, &["rev-parse", "--verify", "HEAD"]).filter(|h| !h.is_empty())?;
    // --no-optional-locks: reading the status must not take the index lock of a repository
    // someone is working in.
    let dirty = git(dir, &["--no-optional-locks", "status", "--porcelain"])
        .is_some_and(|changes| !changes.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

/// Who pushes: `git config user.name` (as seen from `dir`), else the login name.
pub fn author(dir: &Path, user: Option<&str>) -> Option<String> {
    git(dir, &["config", "user.name"])
        .filter(|name| !name.is_empty())
        .or_else(|| user.map(str::to_string))
}

/// `sha256:0123456789ab…` as `sha256:01234567…`.
fn short_hash(hash: &str) -> String {
    let (algorithm, hex) = hash.split_once(':').unwrap_or(("", hash));
    let short: String = hex.chars().take(8).collect();
    let more = if hex.chars().count() > 8 { "…" } else { "" };
    if algorithm.is_empty() {
        format!("{short}{more}")
    } else {
        format!("{algorithm}:{short}{more}")
    }
}

/// `2026-12-08T00:01:02Z` as `2026-12-08 00:01:02`; another text as it is.
fn created(at: &str) -> String {
    match (at.get(..10), at.get(10..11), at.get(11..19)) {
        (Some(date), Some("T"), Some(time)) => format!("{date} {time}"),
        _ => at.to_string(),
    }
}

/// A commit as its first 8 characters, keeping `-dirty`.
fn short_commit(commit: &str) -> String {
    let (sha, dirty) = match commit.strip_suffix("-dirty") {
        Some(sha) => (sha, "-dirty"),
        None => (commit, ""),
    };
    format!("{}{dirty}", sha.chars().take(8).collect::<String>())
}

/// At most `max` characters of one line of `text`, `…` marking a cut.
fn cut(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        line
    } else {
        format!("{}…", line.chars().take(max - 1).collect::<String>())
    }
}

/// The releases as a table: a header, then one line per release, newest first, the current
/// one marked `*`. Columns are as wide as their widest cell; the message is last and cut.
pub fn table(listing: &Listing) -> String {
    let rows: Vec<[String; 6]> = listing
        .releases
        .iter()
        .map(|r| {
            let current = r.current || listing.current == Some(r.number);
            [
                if current { "*" } else { "" }.to_string(),
                r.number.to_string(),
                created(&r.created_at),
                r.author.as_deref().map_or("-".into(), |a| cut(a, 24)),
                r.commit.as_deref().map_or("-".into(), short_commit),
                r.message.as_deref().map_or("-".into(), |m| cut(m, 72)),
            ]
        })
        .collect();
    let header = ["", "RELEASE", "CREATED (UTC)", "AUTHOR", "COMMIT", "MESSAGE"].map(String::from);
    let mut widths = [0; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:<w0$} {:>w1$}  {:<w2$}  {:<w3$}  {:<w4$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command as Cmd};

    fn release(number: u64, current: bool) -> Release {
        Release {
            number,
            hash: format!("sha256:{number:064x}"),
            message: None,
            author: None,
            commit: None,
            created_at: format!("2026-12-08T00:0{number}:02Z"),
            current,
        }
    }

    #[test]
    fn arguments() {
        let parse = |args: &[&str]| Cli::try_parse_from(args);
        let Cmd::Push(push) =
            parse(&["para", "push", "-m", "Slack digest", "--server", "https://p.example"])
                .unwrap()
                .command
        else {
            panic!("push")
        };
        assert_eq!(push.message.as_deref(), Some("Slack digest"));
        assert_eq!(push.server.server, "https://p.example");
        let Cmd::Rollback(rollback) = parse(&["para", "rollback", "2"]).unwrap().command else {
            panic!("rollback")
        };
        assert_eq!(rollback.number, 2);
        // The default, when PARA_SERVER_URL is not set (the tests' environment has none).
        if std::env::var_os(EnvVars::PARA_SERVER_URL).is_none() {
            assert_eq!(rollback.server.server, "http://127.0.0.1:7433");
        }
        let Cmd::Releases(releases) = parse(&["para", "releases", "--json"]).unwrap().command
        else {
            panic!("releases")
        };
        assert!(releases.json);
        for bad in
            [&["para", "rollback"][..], &["para", "rollback", "two"], &["para", "rollback", "-1"]]
        {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn server_urls() {
        assert_eq!(server_url(" https://para.example.com/ ").unwrap(), "https://para.example.com");
        assert_eq!(server_url("http://127.0.0.1:7433").unwrap(), "http://127.0.0.1:7433");
        assert_eq!(server_url("https://example.com/para/").unwrap(), "https://example.com/para");
        for bad in ["", "para.example.com", "ftp://x", "http://", "https:///x", "http://a b"] {
            let err = server_url(bad).unwrap_err();
            assert!(err.contains("PARA_SERVER_URL") && err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn the_body_wraps_the_document_as_written() {
        let document = b"{\n  \"formatVersion\": 1,\n  \"x\": [1, 2]\n}\n";
        let body = push_body(document, Some("say \"hi\""), None, Some("abc-dirty"));
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("\"formatVersion\": 1,\n  \"x\": [1, 2]\n}"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["build"]["x"], serde_json::json!([1, 2]));
        assert_eq!(value["message"], "say \"hi\"");
        assert_eq!(value["author"], serde_json::Value::Null);
        assert_eq!(value["commit"], "abc-dirty");
    }

    fn git_in(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdout(Stdio::null())
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?}");
    }

    /// The commit and author come from git when the project is in a repository, `-dirty`
    /// marking uncommitted changes; outside one there is no commit and the login name is the
    /// author.
    #[test]
    fn commit_and_author_from_git() {
        if git(Path::new("."), &["--version"]).is_none() {
            eprintln!("skipped: git is not installed");
            return;
        }
        let outside = tempfile::tempdir().unwrap();
        // A folder in no repository: tempdir is under /tmp, unless TMPDIR is inside one.
        if git(outside.path(), &["rev-parse", "--git-dir"]).is_none() {
            assert_eq!(git_commit(outside.path()), None);
        }
        let repo = tempfile::tempdir().unwrap();
        let dir = repo.path();
        git_in(dir, &["init", "-q"]);
        assert_eq!(git_commit(dir), None, "no commit yet");
        git_in(dir, &["config", "user.name", "Ada Lovelace"]);
        git_in(dir, &["config", "user.email", "ada@example.com"]);
        std::fs::write(dir.join("a.ts"), "export {}\n").unwrap();
        git_in(dir, &["add", "a.ts"]);
        git_in(dir, &["commit", "-q", "-m", "first"]);
        let head = git(dir, &["rev-parse", "HEAD"]).unwrap();
        assert_eq!(head.len(), 40);
        assert_eq!(git_commit(dir), Some(head.clone()));
        std::fs::create_dir(dir.join("src")).unwrap();
        assert_eq!(
            git_commit(&dir.join("src")),
            Some(head.clone()),
            "an empty folder is no change"
        );
        std::fs::write(dir.join("a.ts"), "export const a = 1\n").unwrap();
        assert_eq!(git_commit(&dir.join("src")), Some(format!("{head}-dirty")));
        assert_eq!(author(dir, Some("ada")).as_deref(), Some("Ada Lovelace"));
        git_in(dir, &["config", "--unset", "user.name"]);
        // Without a user.name in the repository, one of the machine's own git configuration
        // may still answer; only when none does is the login name used.
        if git(dir, &["config", "user.name"]).is_none() {
            assert_eq!(author(dir, Some("ada")).as_deref(), Some("ada"));
            assert_eq!(author(dir, None), None);
        }
    }

    #[test]
    fn the_table() {
        let mut newest = release(3, true);
        newest.author = Some("Ada Lovelace".into());
        newest.commit = Some("0123456789abcdef0123456789abcdef01234567-dirty".into());
        newest.message = Some("Slack digest\nand a fix".into());
        let mut old = release(2, false);
        old.message = Some("x".repeat(100));
        let listing = Listing { current: Some(3), releases: vec![newest, old, release(1, false)] };
        let text = table(&listing);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[0],
            "  RELEASE  CREATED (UTC)        AUTHOR        COMMIT          MESSAGE"
        );
        assert_eq!(
            lines[1],
            "*       3  2026-12-08 00:03:02  Ada Lovelace  01234567-dirty  Slack digest and a fix"
        );
        assert!(
            lines[2]
                .starts_with("        2  2026-12-08 00:02:02  -             -               xxx")
        );
        assert_eq!(lines[2].chars().filter(|c| *c == 'x').count(), 71);
        assert!(lines[2].ends_with('…'));
        assert_eq!(lines[3], "        1  2026-12-08 00:01:02  -             -               -");
        // The server's `current` marks a release even when the entry's own flag is not sent.
        let listing = Listing { current: Some(1), releases: vec![release(1, false)] };
        assert!(table(&listing).lines().nth(1).unwrap().starts_with("* "));
    }

    #[test]
    fn short_forms() {
        assert_eq!(short_hash("sha256:abcd1234ef"), "sha256:abcd1234…");
        assert_eq!(short_hash("sha256:abcd"), "sha256:abcd");
        assert_eq!(short_commit("0123456789"), "01234567");
        assert_eq!(created("2026-12-08T00:01:02.123Z"), "2026-12-08 00:01:02");
        assert_eq!(created("yesterday"), "yesterday");
    }

    #[test]
    fn failures_are_explained() {
        let base = "http://127.0.0.1:9";
        let refused = |status, body: &str| {
            explain(base, Failure::Refused { status, body: body.as_bytes().to_vec() })
        };
        let (message, hint) = refused(
            401,
            r#"{"message":"the deploy key is wrong","code":"deploy_key","status":401}"#,
        );
        // The server's message is the error, as it is; it says what to do.
        assert_eq!(message, "the deploy key is wrong");
        assert_eq!(hint, None);
        let (message, hint) =
            refused(404, r#"{"message":"no release 9","code":"not_found","status":404}"#);
        assert_eq!((message.as_str(), hint), ("no release 9", None));
        let (_, hint) = refused(409, r#"{"message":"m","code":"project_folder","status":409}"#);
        assert_eq!(hint.as_deref(), Some("see docs/deploy.md § What runs"));
        let (_, hint) = refused(422, r#"{"message":"m","code":"format_version","status":422}"#);
        assert_eq!(hint.as_deref(), Some("see docs/deploy.md § Upgrades"));
        // Not the server's JSON: a balancer's page, a server without the deploy API.
        let (message, hint) = refused(502, "<html><body>\n<h1>502 Bad Gateway</h1></body></html>");
        assert_eq!(
            message,
            "http://127.0.0.1:9 answered 502: <html><body> <h1>502 Bad Gateway</h1></body></html>"
        );
        assert!(hint.is_some());
        let (message, _) = refused(413, "");
        assert!(message.contains("too large"), "{message}");
        let (message, _) = refused(404, "");
        assert!(message.contains("no deploy API"), "{message}");
        let (message, hint) = explain(base, Failure::Unreachable("connection refused".into()));
        assert_eq!(message, "cannot reach http://127.0.0.1:9: connection refused");
        assert!(hint.unwrap().contains("PARA_SERVER_URL"));
    }
}
