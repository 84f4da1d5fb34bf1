//! The real `@useparagon/connect` SDK in Chromium against `para serve` on the taskflow example,
//! with a real OAuth 2 server (oidc-provider) and an upstream API on loopback: the harness
//! `tests/e2e/connect.test.mjs` drives the browser; this test starts `para serve` configured
//! from what the harness reports and hands it the server's address and a user token.
//!
//! Needs Node.js, `npm ci --prefix tests/e2e` and Debian chromium (`scripts/e2e-deps`). Without
//! them the test says so and passes, unless `PARA_E2E_REQUIRE=1` (CI sets it).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Killed, Server, para_stdout as para, repo};

/// The id of the setting of the "Sync notes" workflow added to the project copy.
const NOTES_INPUT: &str = "5e1f0c2a-7b3d-4c8e-9a61-2f4d8b0c6e13";
const NOTES_MAPPING: &str = "8a2c4e6f-1b3d-4f5a-9c7e-0d2f4a6b8c1e";
/// The post-sign-in input added to custom.acmecrm in the project copy.
const ACME_WORKSPACE_INPUT: &str = "6d8f0a2c-4e6b-4a8d-9f1b-3c5e7a9b1d4f";
/// The ActiveCampaign list setting added to the project copy.
const AC_LIST_INPUT: &str = "3b7d9f1e-2c4a-4e6b-8d0f-1a3c5e7b9d2f";

#[test]
fn the_connect_sdk_installs_configures_proxies_and_uninstalls_against_para_serve() {
    if common::skip_browser_test("browser end-to-end test", "@useparagon/connect") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("taskflow");
    common::copy_dir(&repo().join("examples/taskflow"), &project);
    let _ = std::fs::remove_dir_all(project.join("out"));
    para(&project, &["keys"]);
    // An integration connected with values instead of a sign-in window, for the iframe portal's
    // form: basic auth, its test endpoint pointed at para serve's own /healthz (below).
    para(&project, &["new", "integration", "--custom", "Notes API", "--auth", "basic"]);
    let notes = project.join("src/integrations/custom.notesapi/config.ts");
    let config = std::fs::read_to_string(&notes).unwrap();
    assert!(config.contains("testEndpointPath: '/me'"), "{config}");
    std::fs::write(
        &notes,
        config.replace("testEndpointPath: '/me'", "testEndpointPath: '/healthz'"),
    )
    .unwrap();
    // …with a workflow that has a setting of its own (a required number).
    para(
        &project,
        &[
            "new",
            "workflow",
            "--integration",
            "custom.notesapi",
            "--name",
            "Sync notes",
            "--trigger",
            "endpoint",
        ],
    );
    // …a field mapping among its settings (edited in the /ui portal)…
    let inputs = project.join("src/integrations/custom.notesapi/inputs.ts");
    let scaffolded = std::fs::read_to_string(&inputs).unwrap();
    let mapping = format!(
        "createInputs({{ noteMapping: {{ id: '{NOTES_MAPPING}', title: 'Map notes', type: 'field_mapping', \
         required: false, useDynamicMapper: false, fieldMappings: [{{ label: 'Title', value: 'title' }}, {{ label: 'Body' }}] }} }})"
    );
    assert!(scaffolded.contains("createInputs({})"), "{scaffolded}");
    std::fs::write(&inputs, scaffolded.replace("createInputs({})", &mapping)).unwrap();
    let sync = project.join("src/integrations/custom.notesapi/workflows/syncNotes.ts");
    let source = std::fs::read_to_string(&sync).unwrap();
    let workflow_id = source
        .split("readonly id = '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the scaffolded workflow has an id")
        .to_string();
    let input = format!(
        "inputs = createInputs({{ batchSize: {{ id: '{NOTES_INPUT}', title: 'Notes per batch', type: 'number', required: true }} }});"
    );
    assert!(source.contains("inputs = createInputs({});"), "{source}");
    std::fs::write(&sync, source.replace("inputs = createInputs({});", &input)).unwrap();
    // A catalog integration connected with an API key, with a setting whose choices its API
    // lists (every-method test: installFlow, getFieldOptions, getTriggers).
    para(&project, &["new", "integration", "activecampaign"]);
    let ac_inputs = project.join("src/integrations/activecampaign/inputs.ts");
    let scaffolded = std::fs::read_to_string(&ac_inputs).unwrap();
    assert!(scaffolded.contains("createInputs({})"), "{scaffolded}");
    std::fs::write(
        &ac_inputs,
        scaffolded.replace(
            "createInputs({})",
            &format!(
                "createInputs({{ audience: {{ id: '{AC_LIST_INPUT}', title: 'Audience', type: 'list', required: false }} }})"
            ),
        ),
    )
    .unwrap();
    // custom.acmecrm also asks for a workspace after the sign-in (installFlow's post options).
    let acme = project.join("src/integrations/custom.acmecrm/config.ts");
    let config = std::fs::read_to_string(&acme).unwrap();
    let region = "  region: {";
    assert!(config.contains(region), "{config}");
    std::fs::write(
        &acme,
        config.replacen(
            region,
            &format!(
                "  workspace: {{ id: '{ACME_WORKSPACE_INPUT}', type: 'text', title: 'Workspace', required: false, postOAuth: true }},\n{region}"
            ),
            1,
        ),
    )
    .unwrap();
    let port = common::free_port();

    // 1. The harness starts the OAuth server and the upstream API and says where they are.
    let info_path = tmp.path().join("info.json");
    let server_path = tmp.path().join("server.json");
    let log_path = tmp.path().join("harness.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let harness = Command::new("node")
        .args(["--test", "--test-reporter=spec", "tests/e2e/connect.test.mjs"])
        .current_dir(repo())
        .env("PARA_E2E_INFO", &info_path)
        .env("PARA_E2E_SERVER", &server_path)
        .env("PARA_E2E_REQUIRE_SERVER", "1")
        .env("PARA_E2E_REQUIRE_PKCE", "1")
        .env("PARA_E2E_FIELDS_INTEGRATION", "custom.notesapi")
        .env("PARA_E2E_FIELDS_WORKFLOW", &workflow_id)
        .env("PARA_E2E_FIELDS_WORKFLOW_INPUT", NOTES_INPUT)
        .env("PARA_E2E_FIELDS_MAPPING_INPUT", NOTES_MAPPING)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("node runs");
    let mut harness = Killed(harness);
    let harness_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let started = Instant::now();
    while !info_path.exists() && harness.0.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting for info.json");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(info_path.exists(), "the harness stopped early:\n{}", harness_log());
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&info_path).unwrap()).unwrap();

    // An API resource of the project, on the harness's upstream, connected with a key.
    let resource = project.join("src/resources/ledger/config.ts");
    std::fs::create_dir_all(resource.parent().unwrap()).unwrap();
    std::fs::write(
        &resource,
        format!(
            "import {{ IResourceContext, UserLevelAPIResource }} from '@useparagon/core';\n\n\
             export default class extends UserLevelAPIResource {{\n\
             \x20 readonly id: string = '5c0ffee0-0000-4000-8000-00000000e2e1';\n\
             \x20 name: string = 'Ledger';\n\
             \x20 getRequestConfig(context: IResourceContext) {{\n\
             \x20   return {{ apiBaseUrl: '{base}', authentication: {{ type: 'auth_header', headers: {{ 'X-Api-Key': `${{context.getInput('apiKey')}}` }} }} }};\n\
             \x20 }}\n\
             \x20 getTestRequestConfig(context: IResourceContext) {{\n\
             \x20   return {{ url: '/me', method: 'GET', params: {{}}, headers: {{}} }};\n\
             \x20 }}\n\
             \x20 getAuthorizationConfig(context: IResourceContext) {{\n\
             \x20   return {{ type: 'api_key', userInputs: ['apiKey'] }};\n\
             \x20 }}\n\
             }}\n",
            base = info["resourceApiBase"].as_str().unwrap()
        ),
    )
    .unwrap();

    // 2. The company's OAuth client and the loopback endpoints for custom.acmecrm.
    std::fs::write(
        project.join(".para/oauth-clients.json"),
        serde_json::json!({
            "custom.acmecrm": {
                "clientId": info["clientId"],
                "clientSecret": info["clientSecret"],
                "authorizeUrl": info["authorizationEndpoint"],
                "tokenUrl": info["tokenEndpoint"],
                "apiBaseUrl": info["upstreamApiBase"],
            },
            "custom.notesapi": { "apiBaseUrl": format!("http://127.0.0.1:{port}") }
        })
        .to_string(),
    )
    .unwrap();

    // 3. para serve, then the address and a user token for the harness.
    let server = Server::serve(&project).port(port).start();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.join(".para/project.json")).unwrap())
            .unwrap();
    let user = format!("e2e-{}", std::process::id());
    let token = para(&project, &["token", "--user", &user, "--ttl", "1h"]);
    // Two fresh users for the every-method test: one whose token carries meta, one whose does not.
    let token_meta = serde_json::json!({ "email": "ada@example.com", "team": "north" });
    let with_meta = para(
        &project,
        &[
            "token",
            "--user",
            &format!("{user}-meta"),
            "--ttl",
            "1h",
            "--meta",
            &token_meta.to_string(),
        ],
    );
    let without_meta =
        para(&project, &["token", "--user", &format!("{user}-plain"), "--ttl", "1h"]);
    let server_json = serde_json::json!({
        "baseUrl": server.base,
        "projectId": meta["projectId"],
        "userToken": token.trim(),
        "everyMethod": {
            "users": [
                { "label": "a user whose token carries meta", "token": with_meta.trim(), "meta": token_meta },
                { "label": "a user whose token has no meta", "token": without_meta.trim() },
            ],
            "basicIntegration": "custom.notesapi",
            "apiKeyIntegration": "activecampaign",
            "listInput": AC_LIST_INPUT,
            "eventName": "Task Created",
            "eventPayload": { "taskId": "tsk_e2e", "title": "Every method", "dueDate": "2026-12-24", "assigneeEmails": [], "priority": 1 },
        },
    });
    let partial = tmp.path().join("server.json.tmp");
    std::fs::write(&partial, server_json.to_string()).unwrap();
    std::fs::rename(&partial, &server_path).unwrap();

    // 4. The browser flow; its exit status is the verdict.
    let start = Instant::now();
    let status = loop {
        if let Some(status) = harness.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "the harness did not finish in 15 minutes:\n{}\n{}",
            harness_log(),
            server.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = harness_log();
    assert!(status.success(), "the SDK flow failed:\n{output}\n{}", server.output());
    assert!(
        output.contains("skipped 0") && output.contains("fail 0"),
        "a part of the flow was skipped or failed:\n{output}"
    );

    // 5. Nothing secret is stored in plain text: the access token the harness saw is sealed.
    let db = std::fs::read(project.join(".para/para.db")).unwrap_or_default();
    for needle in [info["clientSecret"].as_str().unwrap_or("x"), token.trim()] {
        assert!(
            !db.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "the database holds a secret in plain text"
        );
    }
}
