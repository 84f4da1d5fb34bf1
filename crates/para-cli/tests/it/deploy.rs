//! The container and compose files of `deploy/` and the root `Dockerfile`, checked as far as a
//! machine without a container engine can: the image builds with the workspace's toolchain and
//! runs `para serve` as a non-root user; every `PARA_*` variable the files set is one `para`
//! reads (docs/configuration.md); the compose file's structure (`deploy/check`, with PyYAML);
//! nginx accepts `deploy/nginx.conf` (`nginx -t`, where nginx is installed); the smoke script
//! parses.

use std::path::Path;
use std::process::Command;

use crate::common::repo;
use crate::configuration::{Listed, listed, para_words};

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Whether `program` runs here (`program --version` or the given probe succeeds).
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).output().is_ok_and(|o| o.status.success())
}

/// Whether a deployment test must be skipped because `program` does not run here (after
/// saying so); with `PARA_DEPLOY_REQUIRE=1` (`scripts/test` once `scripts/deploy-deps`
/// installed them) it fails instead.
pub(crate) fn missing(program: &str, args: &[&str], what: &str) -> bool {
    if runs(program, args) {
        return false;
    }
    assert!(
        std::env::var("PARA_DEPLOY_REQUIRE").as_deref() != Ok("1"),
        "PARA_DEPLOY_REQUIRE=1 but {what} does not run here (scripts/deploy-deps installs it)"
    );
    eprintln!("skipped: {what} does not run here (scripts/deploy-deps installs it)");
    true
}

#[test]
fn the_image_is_built_with_the_workspace_toolchain_and_runs_serve_unprivileged() {
    let dockerfile = read("Dockerfile");
    let manifest = read("Cargo.toml");
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("the workspace names its rust-version");
    let froms: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(
        froms,
        [&*format!("FROM rust:{version}-bookworm AS build"), "FROM debian:bookworm-slim"],
        "the build stage's Rust is the workspace's, on the runtime stage's Debian"
    );
    assert!(dockerfile.contains("cargo build --release -p para-cli --locked"));
    let runtime = dockerfile.split("FROM debian:bookworm-slim").nth(1).unwrap();
    let user = runtime.lines().find_map(|l| l.strip_prefix("USER ")).expect("a USER line");
    assert!(user != "root" && user != "0", "the server runs as {user}");
    assert!(runtime.contains("ca-certificates"));
    assert!(
        runtime.lines().any(|l| l == r#"ENTRYPOINT ["/usr/local/bin/para", "serve"]"#),
        "para serve is the entry point"
    );
    for needle in ["PARA_HOST=0.0.0.0", "PARA_PORT=7433", "EXPOSE 7433"] {
        assert!(runtime.contains(needle), "{needle}");
    }
    // What the build stage copies is what the workspace needs, and .dockerignore keeps the
    // build output and local secrets out of the context.
    let ignored = read(".dockerignore");
    for entry in ["**/target", "**/node_modules", ".git", "**/.para/secret.key", "deploy/.env"] {
        assert!(ignored.lines().any(|l| l == entry), ".dockerignore lacks {entry}");
    }
}

/// Every `PARA_*` name the image, the compose file, its `.env.example` and the smoke script set
/// or read is one docs/configuration.md lists: a misspelt variable would be silently ignored.
#[test]
fn every_variable_the_deploy_files_name_is_documented() {
    let listed = listed();
    let mut unknown = Vec::new();
    for path in [
        "Dockerfile",
        "deploy/compose.yaml",
        "deploy/.env.example",
        "deploy/smoke",
        "deploy/nginx.conf",
    ] {
        let text = read(path);
        for word in para_words(&text) {
            if !listed.iter().any(|l: &Listed| l.covers(word)) {
                unknown.push(format!("{word} ({path})"));
            }
        }
    }
    assert!(unknown.is_empty(), "not variables para reads: {unknown:?}");
}

#[test]
fn the_compose_file_holds_together() {
    if missing("python3", &["-c", "import yaml"], "python3 with PyYAML") {
        return;
    }
    let out = Command::new("python3").arg(repo().join("deploy/check")).output().unwrap();
    assert!(out.status.success(), "deploy/check:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// nginx accepts the balancer's configuration (its upstream names resolved to loopback: the
/// compose services exist only inside compose's network).
#[test]
fn nginx_accepts_the_balancer_configuration() {
    if missing("nginx", &["-v"], "nginx") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = loopback_nginx_conf(&read("deploy/nginx.conf"), &[17433, 17434], 18080);
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let out = nginx(dir.path(), "").arg("-t").output().unwrap();
    assert!(out.status.success(), "nginx -t:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// `deploy/nginx.conf` with its upstream servers at `ports` on 127.0.0.1 and listening on
/// `listen` there.
pub(crate) fn loopback_nginx_conf(conf: &str, ports: &[u16; 2], listen: u16) -> String {
    let conf = conf
        .replace("server para-1:7433", &format!("server 127.0.0.1:{}", ports[0]))
        .replace("server para-2:7433", &format!("server 127.0.0.1:{}", ports[1]))
        .replace("listen 80;", &format!("listen 127.0.0.1:{listen};"));
    assert!(!conf.contains(":7433") && !conf.contains("listen 80;"), "the rewrite missed");
    conf
}

/// `nginx` with `dir` as its prefix (`dir/nginx.conf`; its temporary files, pid and error
/// log there) and `global` directives besides those.
pub(crate) fn nginx(dir: &Path, global: &str) -> Command {
    let mut command = Command::new("nginx");
    command
        .args(["-p", &dir.display().to_string()])
        .args(["-c", &dir.join("nginx.conf").display().to_string()])
        .args([
            "-g",
            &format!("pid {0}/nginx.pid; error_log {0}/error.log; {global}", dir.display()),
        ]);
    command
}

#[test]
fn the_smoke_script_parses() {
    let out = Command::new("bash").arg("-n").arg(repo().join("deploy/smoke")).output().unwrap();
    assert!(
        out.status.success(),
        "bash -n deploy/smoke:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if runs("shellcheck", &["--version"]) {
        let out = Command::new("shellcheck").arg(repo().join("deploy/smoke")).output().unwrap();
        assert!(out.status.success(), "shellcheck:\n{}", String::from_utf8_lossy(&out.stdout));
    }
}
