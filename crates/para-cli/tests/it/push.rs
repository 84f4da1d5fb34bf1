//! `para push`, `para releases` and `para rollback` with the real binary against real
//! `para serve` processes started without a project folder: a push, the same build again
//! (not stored twice), a changed build, the listing as a table and as JSON, a rollback, and
//! the failures (wrong key, missing key, unknown release, build errors, nothing listening).
//! Then `deploy/smoke` through nginx with `deploy/nginx.conf` in front of two servers on one
//! PostgreSQL database: the compose example's shape without a container engine.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Killed, PARA, Server, free_port, get, para_command, para_ok, para_stdout};
use crate::deploy::{loopback_nginx_conf, nginx};

const KEY: &str = "deploy-key-of-the-push-test";
const SECRET_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// A new project (`para init`: keys, no integration) in `dir/project`.
fn project(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("project");
    para_ok(dir, &["init", root.to_str().unwrap(), "--name", "pushed"]);
    root
}

/// `para serve` in an empty folder (no project: it serves the database's releases).
fn serve(dir: &Path, name: &str, database: &str, root: &Path) -> crate::common::ServerBuilder {
    let empty = dir.join(name);
    std::fs::create_dir_all(&empty).unwrap();
    let public_key = std::fs::read_to_string(root.join(".para/keys/public.pem")).unwrap();
    Server::serve(&empty)
        .database(database)
        .env("PARA_SECRET_KEY", SECRET_KEY)
        .env("PARA_USER_TOKEN_PUBLIC_KEY", public_key)
        .env("PARA_DEPLOY_KEY", KEY)
}

/// `para <args>` in `root` with `PARA_DEPLOY_KEY` = `key` (none: unset), git reading no
/// configuration of this machine, and `USER=tester`.
fn para(root: &Path, key: Option<&str>, args: &[&str]) -> Output {
    let mut command = para_command();
    command
        .args(args)
        .current_dir(root)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("USER", "tester");
    if let Some(key) = key {
        command.env("PARA_DEPLOY_KEY", key);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `para <args>` with the right key, which must succeed: its stdout and stderr.
fn ok(root: &Path, args: &[&str]) -> (String, String) {
    let out = para(root, Some(KEY), args);
    assert!(out.status.success(), "para {args:?} failed:\n{}", text(&out.stderr));
    (text(&out.stdout), text(&out.stderr))
}

/// `para <args>` that must fail with `code`: its stderr.
fn fails(root: &Path, key: Option<&str>, args: &[&str], code: i32) -> String {
    let out = para(root, key, args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "para {args:?}:\n{stderr}");
    assert!(out.stdout.is_empty(), "para {args:?} printed data: {}", text(&out.stdout));
    stderr
}

fn listing(root: &Path, server: &str) -> Value {
    let (stdout, _) = ok(root, &["releases", "--server", server, "--json"]);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

#[test]
fn push_list_and_roll_back_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let root = project(dir);
    let database = format!("sqlite://{}", dir.join("para.db").display());
    let server = serve(dir, "server", &database, &root).start();
    let url = server.base.as_str();

    // Nothing pushed yet.
    let (stdout, stderr) = ok(&root, &["releases", "--server", url]);
    assert!(stdout.is_empty() && stderr.contains("has no releases yet"), "{stderr}");

    // Release 1; the same build again is release 1 again.
    let (stdout, stderr) = ok(&root, &["push", "--server", url, "--message", "first"]);
    assert!(stdout.is_empty(), "push prints no data: {stdout}");
    assert!(stderr.contains("built pushed:"), "the build's summary first: {stderr}");
    assert!(
        stderr.contains("pushed release 1 (sha256:")
            && stderr.contains(&format!("to {url}: now current")),
        "{stderr}"
    );
    let (_, stderr) = ok(&root, &["push", "--server", url]);
    assert!(stderr.contains("release 1 has the same build: now current again"), "{stderr}");

    // A changed project in a git repository: release 2 records the commit, `-dirty` while a
    // change is not committed.
    git(&root, &["init", "-q"]);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "first"]);
    para_ok(&root, &["new", "event", "Task Created"]);
    let (_, stderr) = ok(&root, &["push", "--server", url, "-m", "an event"]);
    assert!(stderr.contains("pushed release 2"), "{stderr}");
    let head = git(&root, &["rev-parse", "HEAD"]);
    let list = listing(&root, url);
    assert_eq!(list["current"], 2, "{list}");
    let releases = list["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 2, "{list}");
    let (newest, oldest) = (&releases[0], &releases[1]);
    assert_eq!((newest["number"].as_u64(), newest["current"].as_bool()), (Some(2), Some(true)));
    assert_eq!(newest["message"], "an event");
    assert_eq!(newest["author"], "tester", "no git user.name: the login name");
    assert_eq!(newest["commit"], format!("{head}-dirty"));
    assert_eq!((oldest["number"].as_u64(), oldest["current"].as_bool()), (Some(1), Some(false)));
    assert_eq!((&oldest["message"], &oldest["commit"]), (&Value::from("first"), &Value::Null));

    // The table: newest first, the current one marked.
    let (table, _) = ok(&root, &["releases", "--server", url]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].contains("RELEASE") && lines[0].contains("MESSAGE"), "{table}");
    assert!(lines[1].starts_with("* ") && lines[1].contains(" 2 "), "{table}");
    assert!(lines[1].contains(&format!("{}-dirty", &head[..8])) && lines[1].ends_with("an event"));
    assert!(lines[2].starts_with("  ") && lines[2].ends_with("first"), "{table}");

    // Roll back to 1 (PARA_SERVER_URL instead of --server), then forward to 2.
    let mut rollback = para_command();
    let out = rollback
        .args(["rollback", "1"])
        .current_dir(&root)
        .env("PARA_DEPLOY_KEY", KEY)
        .env("PARA_SERVER_URL", url)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success() && out.stdout.is_empty(), "{stderr}");
    assert!(stderr.contains("release 1 (sha256:") && stderr.contains("is now current"), "{stderr}");
    assert_eq!(listing(&root, url)["current"], 1);
    ok(&root, &["rollback", "2", "--server", url]);
    assert_eq!(listing(&root, url)["current"], 2);

    // Failures, each with the reason, and nothing changed.
    let stderr = fails(&root, Some(KEY), &["rollback", "9", "--server", url], 1);
    assert!(stderr.contains("error: there is no release 9"), "{stderr}");
    let stderr = fails(&root, Some("wrong"), &["push", "--server", url], 1);
    assert!(stderr.contains("error:") && stderr.contains("deploy key"), "{stderr}");
    let stderr = fails(&root, Some("wrong"), &["releases", "--server", url, "--json"], 1);
    assert!(stderr.contains("deploy key"), "{stderr}");
    // Without a key nothing is built: the error comes first.
    std::fs::remove_dir_all(root.join("out")).unwrap();
    let stderr = fails(&root, None, &["push", "--server", url], 2);
    assert!(stderr.contains("PARA_DEPLOY_KEY is not set"), "{stderr}");
    assert!(!root.join("out").exists(), "built without a key");
    // A build with errors is not pushed.
    std::fs::write(root.join("src/events/taskCreated.ts"), "export default {").unwrap();
    let stderr = fails(&root, Some(KEY), &["push", "--server", url], 1);
    assert!(stderr.contains("build failed"), "{stderr}");
    assert!(!stderr.contains("pushed"), "{stderr}");
    let unreachable = format!("http://127.0.0.1:{}", free_port());
    let stderr = fails(&root, Some(KEY), &["releases", "--server", &unreachable], 1);
    assert!(stderr.contains(&format!("cannot reach {unreachable}")), "{stderr}");
    assert!(stderr.contains("PARA_SERVER_URL"), "{stderr}");
    let stderr = fails(&root, Some(KEY), &["releases", "--server", "para.example.com"], 2);
    assert!(stderr.contains("must be the server's http(s) URL"), "{stderr}");
    let list = listing(&root, url);
    assert_eq!(
        (list["current"].as_u64(), list["releases"].as_array().unwrap().len()),
        (Some(2), 2)
    );
}

/// nginx (single process, in the foreground) with `deploy/nginx.conf` in front of `ports`,
/// listening on `listen`: killed when the test ends.
fn balancer(dir: &Path, ports: [u16; 2], listen: u16) -> Killed {
    let conf = loopback_nginx_conf(
        &std::fs::read_to_string(crate::common::repo().join("deploy/nginx.conf")).unwrap(),
        &ports,
        listen,
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    // One process in the foreground: killing it stops nginx entirely.
    let child = nginx(dir, "daemon off; master_process off;")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let balancer = Killed(child);
    let started = Instant::now();
    let base = format!("http://127.0.0.1:{listen}");
    while get(&base, "/healthz", None).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nginx did not answer on {base}: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    balancer
}

/// The compose example's shape: two servers on one PostgreSQL database, without a project
/// folder, behind nginx configured by `deploy/nginx.conf`; `deploy/smoke` against the
/// balancer's URL pushes the project and calls the Connect API as a user. Both servers then
/// serve the release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_smoke_passes_through_nginx_in_front_of_two_servers() {
    if crate::deploy::missing("nginx", &["-v"], "nginx") {
        return;
    }
    let Some(database) = crate::releases::fresh_database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let root = project(dir);
    let listen = free_port();
    let public = format!("http://127.0.0.1:{listen}");
    let (a, b) = {
        let (root, dir, database, public) =
            (root.clone(), dir.to_path_buf(), database.clone(), public.clone());
        tokio::task::spawn_blocking(move || {
            let start =
                |name| serve(&dir, name, &database, &root).env("PARA_PUBLIC_URL", &public).start();
            (start("a"), start("b"))
        })
        .await
        .unwrap()
    };
    let port = |s: &Server| s.base.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let nginx_dir = dir.join("nginx");
    std::fs::create_dir(&nginx_dir).unwrap();
    let _balancer = balancer(&nginx_dir, [port(&a), port(&b)], listen);

    let token = para_stdout(&root, &["token", "--user", "smoke"]).trim().to_string();
    let mut smoke = Command::new("bash");
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("PARA_")) {
            smoke.env_remove(name);
        }
    }
    let out = smoke
        .arg(crate::common::repo().join("deploy/smoke"))
        .arg(&public)
        .env("PARA", PARA)
        .env("PARA_DEPLOY_KEY", KEY)
        .env("USER_TOKEN", &token)
        .env("SMOKE_PROJECT", &root)
        .env("SMOKE_WAIT", "60")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "deploy/smoke failed:\n{stderr}\n{}\n{}\nnginx: {}",
        a.output(),
        b.output(),
        std::fs::read_to_string(nginx_dir.join("error.log")).unwrap_or_default()
    );
    assert!(stderr.contains("pushed release 1") && stderr.contains("smoke: ok"), "{stderr}");

    // Each server serves the pushed release to the user, whichever took the push.
    let project_id: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(".para/project.json")).unwrap())
            .unwrap();
    let me = format!("/projects/{}/sdk/me", project_id["projectId"].as_str().unwrap());
    for server in [&a, &b] {
        let started = Instant::now();
        loop {
            let status = get(&server.base, &me, Some(&token)).map(|(s, _)| s);
            if status == Some(200) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{} answers {status:?} to {me}\n{}",
                server.base,
                server.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
