//! The Connect Portal in a real browser: `para serve` on the taskflow example, then
//! `node tests/e2e/portal.test.mjs` (playwright-core driving Debian Chromium) against it.
//!
//! Needs `node`, Chromium (`/usr/bin/chromium` or `PARA_E2E_CHROMIUM`) and the npm packages of
//! `tests/e2e` (`scripts/e2e-deps` installs all three). When one is missing the test says so
//! and passes, unless `PARA_E2E_REQUIRE` is set. Screenshots go to `PARA_SCREENSHOT_DIR`
//! (relative to the repository root) when set, else to a temporary folder; the ones under
//! `docs/screenshots/` were made with `PARA_SCREENSHOT_DIR=docs/screenshots`.

mod common;
use common::copy_dir;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "portal-e2e-user";
const CONNECTED: &str = "custom.acmecrm";
/// Connected too: its settings are a field mapping.
const MAPPING: &str = "salesforce";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// What is missing to run a browser, if anything.
fn missing_prerequisite(root: &Path) -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("`node` is not installed".into());
    }
    let chromium =
        std::env::var("PARA_E2E_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("Chromium is not at {chromium}"));
    }
    if !root.join("tests/e2e/node_modules/playwright-core").exists() {
        return Some("tests/e2e/node_modules is missing (run scripts/e2e-deps)".into());
    }
    None
}

fn para(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_para"))
        .args(args)
        .env_remove("PARA_PROJECT")
        .env_remove("PARA_ADMIN_KEY")
        .env_remove("PARA_SECRET_KEY")
        .output()
        .expect("para runs");
    assert!(
        out.status.success(),
        "para {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A plain HTTP GET on loopback: the status code and body, or `None` while nothing listens.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_portal_works_in_chromium() {
    let root = repo_root();
    if let Some(missing) = missing_prerequisite(&root) {
        assert!(
            std::env::var_os("PARA_E2E_REQUIRE").is_none(),
            "PARA_E2E_REQUIRE is set but {missing}"
        );
        eprintln!("skipping the Connect Portal browser test: {missing}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("taskflow");
    copy_dir(&root.join("examples/taskflow"), &project);
    let dir = project.to_str().unwrap();
    para(&["keys", "--project", dir]);
    para(&["build", "--project", dir]);
    let token = para(&[
        "token",
        "--user",
        USER,
        "--meta",
        r#"{"Name":"Pat Portal","Email":"pat@taskflow.example"}"#,
        "--ttl",
        "1h",
        "--project",
        dir,
    ]);
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();

    // The user already connected ACME CRM and Salesforce (the OAuth dance has its own
    // end-to-end test).
    let database = format!("sqlite://{}", tmp.path().join("para.db").display());
    let project_id = {
        let build: para_build::Build =
            serde_json::from_slice(&std::fs::read(project.join("out/build.json")).unwrap())
                .unwrap();
        build.project.project_id.unwrap_or_else(|| "default".into())
    };
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let store = para_store::Store::open(&database).await.unwrap();
        store.touch_user(&project_id, USER, None).await.unwrap();
        for integration in [CONNECTED, MAPPING] {
            store
                .insert_credential(&para_store::NewCredential {
                    provider_id: Some("pat@acme.example"),
                    provider_data: serde_json::json!({ "email": "pat@acme.example" }),
                    ..para_store::NewCredential::new(
                        &project_id,
                        USER,
                        integration,
                        para_store::CredentialStatus::Valid,
                        "not-a-real-secret",
                    )
                })
                .await
                .unwrap();
        }
    });

    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(tmp.path().join("server.log")).unwrap();
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_para"))
            .args(["serve", "--project", dir, "--port", &port.to_string(), "--database", &database])
            .env_remove("PARA_PROJECT")
            .env_remove("PARA_ADMIN_KEY")
            .env_remove("PARA_PUBLIC_URL")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("para serve starts"),
    );
    let started = Instant::now();
    loop {
        if http_get(port, "/healthz").is_some_and(|(status, _)| status == 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "para serve did not answer within 60 s:\n{}",
            std::fs::read_to_string(tmp.path().join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let shots = match std::env::var_os("PARA_SCREENSHOT_DIR") {
        Some(dir) => root.join(dir),
        None => tmp.path().join("screenshots"),
    };
    let url = format!("http://127.0.0.1:{port}/projects/{project_id}/portal?token={token}");
    let out = Command::new("node")
        .arg("tests/e2e/portal.test.mjs")
        .current_dir(&root)
        .env("PARA_PORTAL_URL", &url)
        .env("PARA_SCREENSHOT_DIR", &shots)
        .env("PARA_PORTAL_INTEGRATION", CONNECTED)
        .env("PARA_PORTAL_CONNECT_INTEGRATION", "slack")
        .env("PARA_PORTAL_MAPPING_INTEGRATION", MAPPING)
        .output()
        .expect("node runs");
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(tmp.path().join("server.log")).unwrap_or_default()
    );
    assert!(!stdout.contains("# skip 1"), "the browser test was skipped:\n{stdout}");
    for name in [
        "portal-list",
        "portal-connect",
        "portal-settings",
        "portal-validation-error",
        "portal-field-mapping",
    ] {
        assert!(shots.join(format!("{name}.png")).exists(), "{name}.png was not written");
    }
}
