//! The Connect Portal in a real browser: `para serve` on the taskflow example, then
//! `node tests/e2e/portal.test.mjs` (playwright-core driving Debian Chromium) against it.
//!
//! Needs `node`, Chromium (`/usr/bin/chromium` or `PARA_E2E_CHROMIUM`) and the npm packages of
//! `tests/e2e` (`scripts/e2e-deps` installs all three). When one is missing the test says so
//! and passes, unless `PARA_E2E_REQUIRE=1`. Screenshots go to `PARA_SCREENSHOT_DIR`
//! (relative to the repository root) when set, else to a temporary folder; the ones under
//! `docs/screenshots/` were made with `PARA_SCREENSHOT_DIR=docs/screenshots`.

use std::path::PathBuf;
use std::process::Command;

use crate::common::{self, Server, copy_dir, para_ok as para};

const USER: &str = "portal-e2e-user";
const CONNECTED: &str = "custom.acmecrm";
/// Connected too: its settings are a field mapping.
const MAPPING: &str = "salesforce";

fn repo_root() -> PathBuf {
    common::repo().canonicalize().unwrap()
}

#[test]
fn the_portal_works_in_chromium() {
    if common::skip_browser_test("Connect Portal browser test", "playwright-core") {
        return;
    }
    let root = repo_root();
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("taskflow");
    copy_dir(&root.join("examples/taskflow"), &project);
    para(&project, &["keys"]);
    para(&project, &["build"]);
    let token = para(
        &project,
        &[
            "token",
            "--user",
            USER,
            "--meta",
            r#"{"Name":"Pat Portal","Email":"pat@taskflow.example"}"#,
            "--ttl",
            "1h",
        ],
    );
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

    let server = Server::serve(&project).database(&database).start();

    let shots = match std::env::var_os("PARA_SCREENSHOT_DIR") {
        Some(dir) => root.join(dir),
        None => tmp.path().join("screenshots"),
    };
    let url = server.url(&format!("/projects/{project_id}/portal?token={token}"));
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.output()
    );
    drop(server);
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
