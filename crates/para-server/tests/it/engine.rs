//! The engine end to end on the compiled `examples/taskflow`: each workflow started
//! by its real trigger over HTTP (a request trigger, an App Event, a user connecting), its
//! steps executed against a local upstream API that checks the user's bearer token, and the
//! journal (history) checked step by step. Also: a run whose worker died (expired lease) is
//! resumed by the poller without repeating recorded steps.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::any;
use para_server::OAuthClient;
use para_server::connector::Material;
use para_store::CredentialStatus;
use para_store::runs::{Lease, NewRun, RunStatus, StepRecord, StepStatus, Write};
use serde_json::{Map, Value, json};

use crate::common::{self, TestServer, client, token};

const PROJECT: &str = "p-engine";
const MIRROR: &str = "1c9e7f3d-8a52-4b06-9e1f-5d6c7b8a9f70";
const WELCOME: &str = "2dae8f4e-9b63-4c17-af20-6e7d8c9bad81";
const IMPORT: &str = "0b8c6e1a-4f27-4d93-a1c5-93e2b7d40f56";
const PUSH: &str = "7a0e4d2b-9c61-4f38-b5e7-2d1c0f9e8a34";

/// The project in `dir` compiled, without errors, as project `PROJECT`.
fn compile(dir: &Path) -> para_build::Build {
    let (root, marker) = para_project::find_root(dir).unwrap();
    let project = para_project::load(&root, marker).unwrap();
    let out = para_compiler::compile(&project, &para_compiler::Options::default());
    let errors: Vec<_> = out.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{}: {errors:?}", dir.display());
    let mut build = out.build.expect("the project builds");
    build.project.project_id = Some(PROJECT.into());
    build
}

/// `examples/<name>`, compiled.
fn compile_example(name: &str) -> para_build::Build {
    compile(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name))
}

fn taskflow() -> para_build::Build {
    compile_example("taskflow")
}

/// What the upstream saw: method, path and query, authorization, body.
#[derive(Default)]
struct Upstream {
    calls: Mutex<Vec<(String, String, String, Value)>>,
    /// Answer 503 to the first task creation (the step auto-retries).
    fail_first_task: Mutex<bool>,
}

async fn upstream(State(up): State<Arc<Upstream>>, request: Request) -> axum::response::Response {
    let method = request.method().to_string();
    let target = request.uri().to_string();
    let auth = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    up.calls.lock().unwrap().push((method.clone(), target.clone(), auth.clone(), body));
    if !auth.starts_with("Bearer tok-") {
        return (StatusCode::UNAUTHORIZED, "no token").into_response();
    }
    let path = target.split('?').next().unwrap_or("");
    let answer = match (method.as_str(), path) {
        ("POST", p) if p.ends_with("/tasks") => {
            let mut fail = up.fail_first_task.lock().unwrap();
            if *fail {
                *fail = false;
                return (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response();
            }
            json!({ "id": 42 })
        }
        ("POST", p) if p.ends_with("/sobjects/Task") => json!({ "id": "00T1", "success": true }),
        ("GET", p) if p.ends_with("/query") => {
            if target.contains("page=p2") {
                json!({ "records": [{ "Id": "c3" }] })
            } else {
                json!({ "records": [{ "Id": "c1" }, { "Id": "c2" }], "nextRecordsUrl": "p2" })
            }
        }
        _ => json!({ "ok": true }),
    };
    (StatusCode::OK, axum::Json(answer)).into_response()
}

async fn start_upstream() -> (String, Arc<Upstream>) {
    let up = Arc::new(Upstream::default());
    let app = axum::Router::new().fallback(any(upstream)).with_state(up.clone());
    (common::serve(app).await, up)
}

/// An OAuth app whose API base is `base` (a loopback upstream).
fn oauth_app(base: String) -> OAuthClient {
    OAuthClient {
        client_id: "id".into(),
        client_secret: "secret".into(),
        api_base_url: Some(base),
        ..OAuthClient::default()
    }
}

/// `build` served on a fresh SQLite file in `dir` with the engine polling every 50 ms (and
/// catalog polling triggers every `trigger_poll_ms`), with one OAuth app.
async fn serve_build(
    build: para_build::Build,
    dir: &Path,
    app: (&str, OAuthClient),
    trigger_poll_ms: Option<i64>,
) -> TestServer {
    let engine =
        para_server::engine::EngineConfig { poll_ms: 50, trigger_poll_ms, ..Default::default() };
    let db = format!("sqlite://{}", dir.join("para.db").display());
    TestServer::builder(build).database(&db).oauth_client(app.0, app.1).engine(engine).start().await
}

/// Stores environment secret `name` as `para secrets set` does, sealed with the test servers'
/// key.
fn set_secret(name: &str, value: &str) {
    para_auth::env_secrets::set(common::keys_root(), &common::secret_key(), name, value).unwrap();
}

/// Points a workflow's request steps at `to` instead of `from` (a real API's origin).
fn redirect_requests(workflow: &mut para_build::Workflow, from: &str, to: &str) {
    for step in &mut workflow.steps {
        if let para_build::StepKind::Request(r) = &mut step.kind {
            let text = serde_json::to_string(&r.url).unwrap();
            let moved = text.replace(from, to);
            assert_ne!(text, moved, "the request goes to {from}");
            r.url = serde_json::from_str(&moved).unwrap();
        }
    }
}

async fn server(api: &str, dir: &Path) -> TestServer {
    let mut engine =
        para_server::engine::EngineConfig { poll_ms: 50, lease_ms: 2_000, ..Default::default() };
    engine.options.retry_delays_ms = vec![50, 50];
    let db = format!("sqlite://{}", dir.join("para.db").display());
    TestServer::builder(taskflow())
        .database(&db)
        .oauth_client("custom.acmecrm", oauth_app(format!("{api}/acme")))
        .oauth_client("salesforce", oauth_app(format!("{api}/sf")))
        .engine(engine)
        .start()
        .await
}

/// Connects `user` to `integration` as the OAuth callback does once it has a token.
async fn connect(s: &TestServer, user: &str, integration: &str) {
    connect_account(s, user, integration, &format!("tok-{user}")).await;
}

/// Connects one more account of `user` with the access token `token`; its credential id.
async fn connect_account(s: &TestServer, user: &str, integration: &str, token: &str) -> String {
    let connector = s.state.connector(integration).unwrap();
    s.state.store.touch_user(PROJECT, user, Some(&json!({ "teamId": "team-7" }))).await.unwrap();
    let material = Material::default();
    let token: Map<String, Value> =
        json!({ "access_token": token, "token_type": "bearer" }).as_object().unwrap().clone();
    let c = para_server::connect::store_connection(&s.state, user, &connector, material, token)
        .await
        .unwrap();
    assert_eq!(c.status, CredentialStatus::Valid, "{:?}", c.status_reason);
    c.id
}

/// Ann's accounts: two ACME ones (the second is the newest) and a Salesforce one.
async fn anns_accounts(s: &TestServer) -> (String, String, String) {
    let first = connect_account(s, "ann", "custom.acmecrm", "tok-ann-first").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = connect_account(s, "ann", "custom.acmecrm", "tok-ann-second").await;
    let salesforce = connect_account(s, "ann", "salesforce", "tok-ann-sf").await;
    (first, second, salesforce)
}

/// The input id of ACME's `pipeline` setting.
fn acme_pipeline(s: &TestServer) -> String {
    let build = s.state.build();
    let inputs = &build.integrations["custom.acmecrm"].inputs;
    inputs.iter().find(|i| i.key == "pipeline").unwrap().id.clone()
}

async fn wait_for_run(s: &TestServer, workflow: &str, status: RunStatus) -> para_store::runs::Run {
    for _ in 0..200 {
        let filter = para_store::history::RunFilter {
            workflow_id: Some(workflow.into()),
            ..Default::default()
        };
        let page = s.state.store.list_runs(PROJECT, &filter, 10, None).await.unwrap();
        if let Some(run) = page.runs.into_iter().map(|l| l.run).find(|r| r.status == status) {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {status} run of {workflow}");
}

/// A finished journal entry, in the tables of [`steps_of`].
const DONE: StepStatus = StepStatus::Done;

fn steps_of(records: &[StepRecord]) -> Vec<(&str, StepStatus)> {
    records.iter().map(|r| (r.key.as_str(), r.status)).collect()
}

/// Where a test writes Ann's integration-level shared settings.
fn shared_scope(integration: &str) -> para_store::SettingsScope<'_> {
    para_store::SettingsScope {
        project_id: PROJECT,
        user_id: "ann",
        integration,
        configuration: &para_store::SettingsKey::Integration,
        workflow_id: "",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taskflow_workflows_run_through_their_real_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let (api, up) = start_upstream().await;
    let s = server(&api, dir.path()).await;
    let ann = token("ann");

    // Connecting runs the integration-enabled workflow: a 2 s delay, a note, a check.
    connect(&s, "ann", "custom.acmecrm").await;
    let build = s.state.build();
    let acme = &build.integrations["custom.acmecrm"];
    let pipeline = acme.inputs.iter().find(|i| i.key == "pipeline").unwrap().id.clone();
    s.state
        .store
        .put_settings(shared_scope("custom.acmecrm"), None, Some(&json!({ pipeline: "sales" })))
        .await
        .unwrap();

    // Request trigger: validation first.
    let trigger = |body: Value| {
        client()
            .post(s.url(&format!("/sdk/triggers/{MIRROR}")))
            .bearer_auth(&ann)
            .header("x-request-id", "req-1")
            .json(&body)
            .send()
    };
    let bad = trigger(json!({ "tags": "x" })).await.unwrap();
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(
        bad["errors"],
        json!(["body field `title` is required", "body field `tags` must be of type array"])
    );
    // The endpoint does not allow arbitrary payloads: an undeclared field is refused, by name,
    // and nothing runs.
    let extra = trigger(json!({ "title": "x", "tags": [], "owner": "mallory" })).await.unwrap();
    assert_eq!(extra.status(), 400);
    let extra: Value = extra.json().await.unwrap();
    assert_eq!(
        extra["errors"],
        json!([
            "body field `owner` is not declared by the endpoint (it declares `title`, `tags`; set `allowArbitraryPayload: true` to accept any)"
        ])
    );
    let mirror_runs =
        para_store::history::RunFilter { workflow_id: Some(MIRROR.into()), ..Default::default() };
    assert_eq!(s.state.store.count_runs(PROJECT, &mirror_runs).await.unwrap(), 0);
    // A run: the first task creation fails (503) and is retried; the answer is the
    // ResponseStep's.
    *up.fail_first_task.lock().unwrap() = true;
    let ok =
        trigger(json!({ "title": "  Ship it ", "tags": ["A", " a", "b ", ""] })).await.unwrap();
    assert_eq!(ok.status(), 201);
    let execution = ok.headers()["x-para-execution-id"].to_str().unwrap().to_string();
    assert_eq!(ok.json::<Value>().await.unwrap(), json!({ "acmeId": "42", "user": "ann" }));
    let tasks: Vec<_> =
        up.calls.lock().unwrap().iter().filter(|c| c.1.ends_with("/tasks")).cloned().collect();
    assert_eq!(tasks.len(), 2, "one failure, one retry");
    assert_eq!(tasks[1].1, "/acme/pipelines/sales/tasks");
    assert_eq!(tasks[1].2, "Bearer tok-ann");
    assert_eq!(tasks[1].3, json!({ "title": "Ship it", "tags": ["a", "b"] }));
    let journal = s.state.store.run_steps(&execution).await.unwrap();
    assert_eq!(
        steps_of(&journal),
        [("request", DONE), ("normalize", DONE), ("create", DONE), ("respond", DONE)]
    );
    assert_eq!(journal[2].attempts, 2);
    assert_eq!(
        journal[1].output,
        Some(json!({ "result": { "title": "Ship it", "tags": ["a", "b"] } }))
    );

    // The welcome workflow finished after its delay.
    let welcome = wait_for_run(&s, WELCOME, RunStatus::Succeeded).await;
    assert!(welcome.finished_at.unwrap() - welcome.created_at >= 2_000, "the delay held");
    let journal = s.state.store.run_steps(&welcome.id).await.unwrap();
    assert_eq!(
        steps_of(&journal),
        [("enabled", DONE), ("wait", DONE), ("hello", DONE), ("done", DONE)]
    );
    assert_eq!(journal[3].output, Some(json!({ "result": "ok" })));
    let notes: Vec<_> =
        up.calls.lock().unwrap().iter().filter(|c| c.1 == "/acme/notes").cloned().collect();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].3, json!({ "text": "Taskflow is connected for ann" }));

    // App Event: the Salesforce push workflow (enabled by default) fans out per assignee.
    connect(&s, "ann", "salesforce").await;
    let sf = &build.integrations["salesforce"];
    let mapping = sf.inputs.iter().find(|i| i.key == "taskMapping").unwrap().id.clone();
    s.state
        .store
        .put_settings(
            shared_scope("salesforce"),
            None,
            Some(&json!({ mapping: { "record_type": "Task" } })),
        )
        .await
        .unwrap();
    let (status, answer) = s
        .call(
            "POST",
            "/sdk/events/trigger",
            &ann,
            Some(json!({ "name": "Task Created", "payload": {
                "title": "Renew contract", "priority": 3, "dueDate": "2026-12-24",
                "assigneeEmails": ["a@x.example", "b@x.example"] } })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["executions"].as_array().unwrap().len(), 1);
    let push = wait_for_run(&s, PUSH, RunStatus::Succeeded).await;
    let mut journal = s.state.store.run_steps(&push.id).await.unwrap();
    // Instances run in parallel and are recorded as they finish.
    journal[3..5].sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        steps_of(&journal),
        [
            ("trigger", DONE),
            ("isUrgent", DONE),
            ("eachAssignee", DONE),
            ("createTask[0]", DONE),
            ("createTask[1]", DONE),
            ("summarize", DONE),
        ]
    );
    assert_eq!(
        journal[5].output,
        Some(json!({ "result": { "message": "2 task(s) created for Renew contract" } }))
    );
    let created: Vec<_> = up
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.1 == "/sf/sobjects/Task")
        .map(|c| c.3.clone())
        .collect();
    assert_eq!(created.len(), 2);
    assert!(created.contains(&json!({
        "subject": "[Taskflow] Renew contract",
        "activityDate": "2026-12-24",
        "description": "Assigned to b@x.example by ann (team-7)",
    })));

    // A hidden, off-by-default request workflow runs once enabled; its request paginates.
    let (status, _) =
        s.call("POST", &format!("/sdk/workflows/{IMPORT}"), &ann, Some(json!({}))).await;
    assert_eq!(status, 200);
    let r = client()
        .post(s.url(&format!("/sdk/triggers/{IMPORT}?since=2026-01-01")))
        .bearer_auth(&ann)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "contacts": [{ "Id": "c1" }, { "Id": "c2" }, { "Id": "c3" }], "requestedBy": "ann" })
    );

    // Another user never ran anything and cannot trigger ann's workflows.
    let (status, answer) = s
        .call(
            "POST",
            &format!("/sdk/triggers/{MIRROR}"),
            &token("bob"),
            Some(json!({ "title": "x" })),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "workflow_not_enabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_acts_with_the_account_its_trigger_selects() {
    let dir = tempfile::tempdir().unwrap();
    let (api, up) = start_upstream().await;
    let s = server(&api, dir.path()).await;
    let ann = token("ann");
    let (first, second, salesforce) = anns_accounts(&s).await;
    // Connecting an account runs the integration-enabled workflow with that account.
    let filter =
        para_store::history::RunFilter { workflow_id: Some(WELCOME.into()), ..Default::default() };
    let welcomed = s.state.store.list_runs(PROJECT, &filter, 10, None).await.unwrap().runs;
    let mut accounts: Vec<_> = welcomed.iter().map(|l| l.run.credential_id.clone()).collect();
    accounts.sort();
    let mut expected = vec![Some(first.clone()), Some(second.clone())];
    expected.sort();
    assert_eq!(accounts, expected);
    let pipeline = acme_pipeline(&s);
    s.state
        .store
        .put_settings(shared_scope("custom.acmecrm"), None, Some(&json!({ pipeline: "p" })))
        .await
        .unwrap();
    let trigger = |credential: Option<&str>| {
        let mut request = client()
            .post(s.url(&format!("/sdk/triggers/{MIRROR}")))
            .bearer_auth(&ann)
            .json(&json!({ "title": "t", "tags": [] }));
        if let Some(id) = credential {
            request = request.header("x-paragon-credential", id);
        }
        request.send()
    };
    let last_task_auth = || {
        let calls = up.calls.lock().unwrap();
        calls.iter().rev().find(|c| c.1.ends_with("/tasks")).map(|c| c.2.clone())
    };

    // Selected: that account, although another one is newer; recorded on the run.
    let answer = trigger(Some(&first)).await.unwrap();
    assert_eq!(answer.status(), 201, "{:?}", answer.text().await);
    let execution = answer.headers()["x-para-execution-id"].to_str().unwrap().to_string();
    assert_eq!(last_task_auth().as_deref(), Some("Bearer tok-ann-first"));
    let run = s.state.store.run(PROJECT, &execution).await.unwrap().unwrap();
    assert_eq!(run.credential_id.as_deref(), Some(first.as_str()));
    // Not selected: the newest valid account, and nothing recorded.
    let answer = trigger(None).await.unwrap();
    assert_eq!(answer.status(), 201);
    let execution = answer.headers()["x-para-execution-id"].to_str().unwrap().to_string();
    assert_eq!(last_task_auth().as_deref(), Some("Bearer tok-ann-second"));
    let run = s.state.store.run(PROJECT, &execution).await.unwrap().unwrap();
    assert_eq!(run.credential_id, None);
    let _ = second;

    // Refused before any run: an account of another integration, someone else's or an unknown
    // one, and an account that stopped working.
    let tasks = || up.calls.lock().unwrap().iter().filter(|c| c.1.ends_with("/tasks")).count();
    let calls = tasks();
    let answer = trigger(Some(&salesforce)).await.unwrap();
    assert_eq!(answer.status(), 400);
    assert!(answer.text().await.unwrap().contains("salesforce account"));
    let bob = connect_account(&s, "bob", "custom.acmecrm", "tok-bob").await;
    assert_eq!(trigger(Some(&bob)).await.unwrap().status(), 404, "Bob's account is not Ann's");
    assert_eq!(trigger(Some("no-such-credential")).await.unwrap().status(), 404);
    s.state
        .store
        .update_credential(
            PROJECT,
            "ann",
            &first,
            CredentialStatus::Invalid,
            Some("revoked"),
            "v1:x",
            None,
        )
        .await
        .unwrap();
    s.state.credential_cache.forget("ann", "custom.acmecrm");
    let answer = trigger(Some(&first)).await.unwrap();
    assert_eq!(answer.status(), 400);
    assert!(answer.text().await.unwrap().contains("INVALID"));
    assert_eq!(tasks(), calls, "no refused trigger reached the API");

    // An App Event with a selected account runs only that integration's workflows.
    let event = |credential: &str| {
        client()
            .post(format!("{}/v2/projects/{PROJECT}/sdk/events/trigger", s.base))
            .bearer_auth(&ann)
            .header("x-paragon-credential", credential)
            .json(&json!({ "name": "Task Created", "payload": { "title": "x", "assigneeEmails": [] } }))
            .send()
    };
    let answer: Value = event(&second).await.unwrap().json().await.unwrap();
    assert_eq!(answer["executions"], json!([]), "no ACME workflow listens to it: {answer}");
    let answer: Value = event(&salesforce).await.unwrap().json().await.unwrap();
    let runs = answer["executions"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{answer}");
    let run = s.state.store.run(PROJECT, runs[0].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(run.credential_id.as_deref(), Some(salesforce.as_str()));
}

/// Several configurations of one account (`createConfiguration` & co. through the Connect API):
/// each keeps its own settings and workflow toggles, `/sdk/me` shows them, and runs started in
/// a configuration read its settings and act with its account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configurations_keep_their_own_settings_and_runs_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let (api, up) = start_upstream().await;
    let s = server(&api, dir.path()).await;
    let ann = token("ann");
    let (first, second, salesforce) = anns_accounts(&s).await;
    let pipeline = acme_pipeline(&s);
    let configurations = format!("/sdk/credentials/{first}/configurations");

    // Each account starts with its default configuration only.
    let (_, me) = s.call("GET", "/sdk/me", &ann, None).await;
    let acme = &me["integrations"]["custom.acmecrm"];
    assert_eq!(acme["allConfigurations"].as_array().unwrap().len(), 2, "{acme}");

    // Created: a second configuration of the first account, named by an external id.
    let (status, made) =
        s.call("POST", &configurations, &ann, Some(json!({ "externalId": "team-a" }))).await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["id"], json!(first));
    let listed = made["configurations"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{made}");
    assert_eq!(
        (listed[0]["isDefault"].clone(), listed[1]["isDefault"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(listed[1]["externalId"], json!("team-a"));
    assert_eq!(listed[1]["connectCredentialId"], json!(first));
    let team_a = listed[1]["id"].as_str().unwrap().to_string();
    // Refused: the same external id again, an empty one, and another user's account.
    let (status, body) =
        s.call("POST", &configurations, &ann, Some(json!({ "externalId": "team-a" }))).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) =
        s.call("POST", &configurations, &ann, Some(json!({ "externalId": " " }))).await;
    assert_eq!(status, 400);
    let (status, _) = s.call("POST", &configurations, &token("bob"), None).await;
    assert_eq!(status, 404, "Bob cannot add to Ann's account");

    // Settings: the header picks the configuration; without it, the default one.
    let settings =
        |value: &str| json!({ "config": { "sharedSettings": { pipeline.clone(): value } } });
    let patch = format!("/sdk/credentials/{first}");
    let (status, _) = s
        .call_with(
            "PATCH",
            &patch,
            &ann,
            &[("x-paragon-configuration-id", &team_a)],
            Some(settings("support")),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = s.call("PATCH", &patch, &ann, Some(settings("sales"))).await;
    assert_eq!((status, &body["errors"]), (200, &json!([])), "{body}");
    let (status, body) = s
        .call_with(
            "PATCH",
            &patch,
            &ann,
            &[("x-paragon-configuration-id", "nope")],
            Some(settings("x")),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (_, me) = s.call("GET", "/sdk/me", &ann, None).await;
    let acme = &me["integrations"]["custom.acmecrm"];
    assert_eq!(acme["sharedSettings"][&pipeline], json!("sales"));
    assert_eq!(acme["allConfigurations"].as_array().unwrap().len(), 3);
    let own = acme["allCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == json!(first))
        .unwrap();
    assert_eq!(own["configurations"][0]["sharedSettings"][&pipeline], json!("sales"));
    assert_eq!(own["configurations"][1]["sharedSettings"][&pipeline], json!("support"));

    // A request trigger in that configuration: its settings, its account, recorded on the run.
    let trigger = |headers: Vec<(&'static str, String)>| {
        let mut request = client()
            .post(s.url(&format!("/sdk/triggers/{MIRROR}")))
            .bearer_auth(&ann)
            .json(&json!({ "title": "t", "tags": [] }));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let last_task = || {
        let calls = up.calls.lock().unwrap();
        calls.iter().rev().find(|c| c.1.ends_with("/tasks")).map(|c| (c.1.clone(), c.2.clone()))
    };
    let answer = trigger(vec![
        ("x-paragon-credential", first.clone()),
        ("x-paragon-configuration-id", "ext:team-a".into()),
    ])
    .await
    .unwrap();
    assert_eq!(answer.status(), 201, "{:?}", answer.text().await);
    let execution = answer.headers()["x-para-execution-id"].to_str().unwrap().to_string();
    let (path, auth) = last_task().unwrap();
    assert!(path.ends_with("/pipelines/support/tasks"), "{path}");
    assert_eq!(auth, "Bearer tok-ann-first");
    let run = s.state.store.run(PROJECT, &execution).await.unwrap().unwrap();
    assert_eq!(run.configuration_id.as_deref(), Some(team_a.as_str()));
    assert_eq!(run.credential_id.as_deref(), Some(first.as_str()));
    // Without headers: the integration-level settings and the newest account.
    let answer = trigger(vec![]).await.unwrap();
    assert_eq!(answer.status(), 201);
    let (path, auth) = last_task().unwrap();
    assert!(path.ends_with("/pipelines/sales/tasks"), "{path}");
    assert_eq!(auth, "Bearer tok-ann-second");
    // A configuration without its credential is refused.
    let answer = trigger(vec![("x-paragon-configuration-id", team_a.clone())]).await.unwrap();
    assert_eq!(answer.status(), 400);

    // Workflow toggles are per configuration: off in team-a only.
    let mirror = format!("/sdk/workflows/{MIRROR}");
    let in_team_a =
        [("x-paragon-credential", first.as_str()), ("x-paragon-configuration-id", team_a.as_str())];
    let (status, _) = s.call_with("DELETE", &mirror, &ann, &in_team_a, None).await;
    assert_eq!(status, 200);
    let answer = trigger(vec![
        ("x-paragon-credential", first.clone()),
        ("x-paragon-configuration-id", team_a.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(answer.status(), 400, "off in team-a");
    assert_eq!(trigger(vec![]).await.unwrap().status(), 201, "still on by default");
    let (_, me) = s.call("GET", "/sdk/me", &ann, None).await;
    let acme = &me["integrations"]["custom.acmecrm"];
    assert_eq!(acme["workflowSettings"][MIRROR]["enabled"], json!(true));
    let made = acme["allConfigurations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == json!(team_a))
        .unwrap();
    assert_eq!(made["workflowSettings"][MIRROR]["enabled"], json!(false));
    // Another integration's account cannot name an ACME workflow's configuration.
    let wrong = [("x-paragon-credential", salesforce.as_str())];
    let (status, _) = s.call_with("POST", &mirror, &ann, &wrong, None).await;
    assert_eq!(status, 404);

    // App Events: a workflow on in a made configuration runs there too, once per configuration.
    let sf_configurations = format!("/sdk/credentials/{salesforce}/configurations");
    let (_, made) = s.call("POST", &sf_configurations, &ann, None).await;
    let sf_made = made["configurations"][1]["id"].as_str().unwrap().to_string();
    let event = |headers: Vec<(&'static str, String)>| {
        let mut request = client()
            .post(format!("{}/v2/projects/{PROJECT}/sdk/events/trigger", s.base))
            .bearer_auth(&ann)
            .json(&json!({ "name": "Task Created", "payload": { "title": "x", "assigneeEmails": [] } }));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let runs_of = |answer: Value| -> Vec<String> {
        answer["executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect()
    };
    let all = runs_of(event(vec![]).await.unwrap().json().await.unwrap());
    assert_eq!(all.len(), 2, "pushTasksToSalesforce is on by default in both configurations");
    let mut configurations_run = Vec::new();
    for id in &all {
        let run = s.state.store.run(PROJECT, id).await.unwrap().unwrap();
        configurations_run.push(run.configuration_id);
    }
    configurations_run.sort();
    assert_eq!(configurations_run, [None, Some(sf_made.clone())]);
    let only = runs_of(
        event(vec![
            ("x-paragon-credential", salesforce.clone()),
            ("x-paragon-configuration-id", sf_made.clone()),
        ])
        .await
        .unwrap()
        .json()
        .await
        .unwrap(),
    );
    assert_eq!(only.len(), 1);
    let run = s.state.store.run(PROJECT, &only[0]).await.unwrap().unwrap();
    assert_eq!(run.configuration_id.as_deref(), Some(sf_made.as_str()));

    // Metadata, then deletion: the default configuration stays; the made one and its settings go.
    let (status, body) = s
        .call_with(
            "PATCH",
            &configurations,
            &ann,
            &in_team_a,
            Some(json!({ "meta": { "label": "Team A" } })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["configurations"][1]["configMeta"], json!({ "label": "Team A" }));
    let default = body["configurations"][0]["id"].as_str().unwrap().to_string();
    let (status, body) = s
        .call_with(
            "DELETE",
            &configurations,
            &ann,
            &[("x-paragon-configuration-id", &default)],
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = s.call_with("DELETE", &configurations, &token("bob"), &in_team_a, None).await;
    assert_eq!(status, 404, "Bob cannot delete Ann's configuration");
    let (status, _) = s.call_with("DELETE", &configurations, &ann, &in_team_a, None).await;
    assert_eq!(status, 200);
    let settings = s.state.store.settings(PROJECT, "ann").await.unwrap();
    assert!(
        settings.iter().all(|x| x.configuration.configuration_id() != Some(team_a.as_str())),
        "{settings:?}"
    );
    let (_, me) = s.call("GET", "/sdk/me", &ann, None).await;
    assert_eq!(
        me["integrations"]["custom.acmecrm"]["allConfigurations"].as_array().unwrap().len(),
        2
    );
    let _ = second;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_worker_died_is_resumed_without_repeating_recorded_steps() {
    let dir = tempfile::tempdir().unwrap();
    let (api, up) = start_upstream().await;
    let s = server(&api, dir.path()).await;
    connect(&s, "ann", "custom.acmecrm").await;
    let welcome = wait_for_run(&s, WELCOME, RunStatus::Succeeded).await;
    let notes_before = up.calls.lock().unwrap().iter().filter(|c| c.1 == "/acme/notes").count();

    // A dead worker recorded the trigger, the delay and the note, then vanished.
    let done = |key: &str, id: &str, seq: i64, output: Value| StepRecord {
        key: key.into(),
        step_id: id.into(),
        seq,
        status: StepStatus::Done,
        attempts: 1,
        input: None,
        output: Some(output),
        error: None,
        not_before: None,
        started_at: 1,
        finished_at: Some(1),
    };
    let steps = s.state.store.run_steps(&welcome.id).await.unwrap();
    let id_of = |key: &str| steps.iter().find(|r| r.key == key).unwrap().step_id.clone();
    let run = NewRun {
        id: "orphan".into(),
        project_id: PROJECT.into(),
        user_id: "ann".into(),
        integration: "custom.acmecrm".into(),
        workflow_id: WELCOME.into(),
        trigger_kind: "integration_enabled".into(),
        trigger_input: json!({}),
        build_hash: "x".into(),
        credential_id: None,
        configuration_id: None,
    };
    let recorded = vec![
        done("enabled", &id_of("enabled"), 0, json!({})),
        done("wait", &id_of("wait"), 1, json!({})),
        done("hello", &id_of("hello"), 2, json!({ "response": { "statusCode": 200, "body": {} } })),
    ];
    let lease = Lease { owner: "dead-worker".into(), until: para_store::now_ms() - 1 };
    s.state
        .store
        .apply(&[Write::Create { run, lease: Some(lease), steps: recorded }])
        .await
        .unwrap();

    for _ in 0..100 {
        let run = s.state.store.run(PROJECT, "orphan").await.unwrap().unwrap();
        if run.status == RunStatus::Succeeded {
            assert_eq!(run.claims, 2, "taken over once");
            let journal = s.state.store.run_steps("orphan").await.unwrap();
            assert_eq!(journal.last().unwrap().output, Some(json!({ "result": "ok" })));
            let notes = up.calls.lock().unwrap().iter().filter(|c| c.1 == "/acme/notes").count();
            assert_eq!(notes, notes_before, "the recorded request was not made again");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the orphaned run was not resumed");
}

/// A copy of the mirror workflow under `id` whose `normalize` function is `code` and which
/// answers right after it (the response body is the function's result, or the error).
fn with_function(build: &mut para_build::Build, id: &str, code: &str) {
    let acme = build.integrations.get_mut("custom.acmecrm").unwrap();
    let mut w = acme.workflows[MIRROR].clone();
    w.id = id.into();
    w.default_enabled = true;
    let respond = w.steps.iter().find(|s| s.key == "respond").unwrap().id.clone();
    for step in &mut w.steps {
        if step.key == "normalize" {
            step.next = Some(respond.clone());
            if let para_build::StepKind::Function { code: c, .. } = &mut step.kind {
                *c = code.into();
            }
        }
        if step.key == "respond"
            && let para_build::StepKind::Response { body, .. } = &mut step.kind
        {
            *body = serde_json::from_value(json!({ "type": "VALUE", "value": { "done": true } }))
                .unwrap();
        }
    }
    w.steps.retain(|s| s.key != "create");
    acme.workflows.insert(id.into(), w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_functions_end_their_own_step_while_other_runs_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (api, _up) = start_upstream().await;
    let mut build = taskflow();
    with_function(&mut build, "loop", "function f(p) { while (true) {} }");
    with_function(
        &mut build,
        "bomb",
        "function f(p) { const a = []; while (true) a.push(new Array(100000).fill(p.title)); }",
    );
    with_function(
        &mut build,
        "deep",
        "function f(p) { function r(n) { return r(n + 1) + 1; } return r(0); }",
    );
    with_function(&mut build, "fine", "async function f(p) { return p.title.length; }");
    let mut engine = para_server::engine::EngineConfig::default();
    engine.function_limits.time = Duration::from_millis(500);
    engine.function_limits.memory_bytes = 32 << 20;
    let db = format!("sqlite://{}", dir.path().join("para.db").display());
    let s = TestServer::builder(build)
        .database(&db)
        .oauth_client("custom.acmecrm", oauth_app(format!("{api}/acme")))
        .engine(engine)
        .start()
        .await;
    connect(&s, "ann", "custom.acmecrm").await;
    let ann = token("ann");
    let fire = |id: &str| {
        client()
            .post(s.url(&format!("/sdk/triggers/{id}")))
            .bearer_auth(&ann)
            .json(&json!({ "title": "hello" }))
            .send()
    };
    let started = std::time::Instant::now();
    let (lp, bomb, deep, fine) = tokio::join!(fire("loop"), fire("bomb"), fire("deep"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = fire("fine").await;
        (r, started.elapsed())
    });
    let (fine, fine_after) = fine;
    let fine = fine.unwrap();
    assert_eq!(fine.status(), 201);
    assert!(fine_after < Duration::from_millis(450), "a good run waits for no runaway one");
    for (r, words) in [(lp, "did not finish within 500ms"), (bomb, "memory"), (deep, "stack")] {
        let r = r.unwrap();
        assert_eq!(r.status(), 500);
        let body: Value = r.json().await.unwrap();
        let error = body["error"].as_str().unwrap().to_ascii_lowercase();
        assert!(error.starts_with("step `normalize` failed:"), "{error}");
        assert!(error.contains(words), "{words}: {error}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn environment_secrets_come_from_the_environment_else_from_para_secrets_set() {
    let root = tempfile::tempdir().unwrap();
    let key = para_auth::SecretKey::from_bytes(&[3; 32]);
    let db = format!("sqlite://{}", root.path().join("para.db").display());
    let state = TestServer::builder(taskflow())
        .database(&db)
        .project_root(root.path())
        .secret_key(key.clone())
        .state()
        .await;
    assert_eq!(state.build().secrets, ["TASKFLOW_API_KEY"]);
    assert!(para_server::engine::secrets(&state.worker).is_empty(), "none set");
    para_auth::env_secrets::set(root.path(), &key, "TASKFLOW_API_KEY", "tf-stored").unwrap();
    assert_eq!(para_server::engine::secrets(&state.worker)["TASKFLOW_API_KEY"], "tf-stored");
    // Read again when the file changes (its modification time moved on explicitly: two
    // writes within one clock tick could share one).
    para_auth::env_secrets::set(root.path(), &key, "TASKFLOW_API_KEY", "tf-stored-2").unwrap();
    let file = std::fs::File::options()
        .append(true)
        .open(root.path().join(para_auth::env_secrets::ENV_SECRETS_FILE))
        .unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(5)).unwrap();
    assert_eq!(para_server::engine::secrets(&state.worker)["TASKFLOW_API_KEY"], "tf-stored-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_polling_trigger_starts_a_run_per_new_item() {
    // Asana's `taskCreated` polls GET /tasks?project={project}… for `data[].gid`.
    let mut build = taskflow();
    let mut asana = build.integrations["salesforce"].clone();
    asana.key = "asana".into();
    asana.name = "Asana".into();
    asana.inputs.clear();
    let mut w = asana.workflows[PUSH].clone();
    w.id = "asana-poll".into();
    w.permissions = None;
    w.inputs.clear();
    let trigger = w.trigger.clone().unwrap();
    let summarize = w.steps.iter().find(|s| s.key == "summarize").unwrap().clone();
    w.steps.retain(|s| s.id == trigger);
    w.steps[0].kind = serde_json::from_value(json!({
        "type": "TRIGGER/ACTION",
        "parameters": { "trigger": "taskCreated", "intent": "TASK_CREATED", "parameters": [
            { "key": "project", "source": { "type": "USER_SETTING", "scope": "shared",
              "inputId": "asana-project", "key": "project", "path": [] } } ] },
    }))
    .unwrap();
    w.steps[0].next = Some(summarize.id.clone());
    let mut named = summarize;
    named.kind = serde_json::from_value(json!({
        "type": "ACTION/FUNCTION",
        "parameters": { "code": "function f(p) { return 'new: ' + p.name; }", "parameters": [
            { "key": "name", "source": { "type": "VARIABLE", "stepId": trigger, "path": ["result", "name"] } } ] },
    }))
    .unwrap();
    w.steps.push(named);
    asana.workflows = [("asana-poll".to_string(), w)].into_iter().collect();
    build.integrations.insert("asana".into(), asana);

    let tasks = Arc::new(Mutex::new(vec![json!({ "gid": "1", "name": "old" })]));
    let polls = Arc::new(Mutex::new(Vec::<String>::new()));
    let (t, p) = (tasks.clone(), polls.clone());
    let app = axum::Router::new().fallback(any(move |request: Request| {
        let (t, p) = (t.clone(), p.clone());
        async move {
            let target = request.uri().to_string();
            if target.starts_with("/asana/tasks") {
                p.lock().unwrap().push(target);
                let data = t.lock().unwrap().clone();
                return axum::Json(json!({ "data": data })).into_response();
            }
            axum::Json(json!({ "data": { "gid": "me" } })).into_response()
        }
    }));
    let api = common::serve(app).await;
    let dir = tempfile::tempdir().unwrap();
    let asana = ("asana", oauth_app(format!("{api}/asana")));
    let s = serve_build(build, dir.path(), asana, Some(200)).await;
    fn project(configuration: &para_store::SettingsKey) -> para_store::SettingsScope<'_> {
        para_store::SettingsScope { configuration, ..shared_scope("asana") }
    }
    let store = &s.state.store;
    // The setting first: the poller may poll as soon as the account is connected.
    store
        .put_settings(
            project(&para_store::SettingsKey::Integration),
            None,
            Some(&json!({ "asana-project": "p 1" })),
        )
        .await
        .unwrap();
    connect(&s, "ann", "asana").await;

    // The first poll only records what is there.
    let wait_polls = |n: usize| {
        let polls = polls.clone();
        async move {
            for _ in 0..100 {
                if polls.lock().unwrap().len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("fewer than {n} polls");
        }
    };
    wait_polls(1).await;
    assert_eq!(polls.lock().unwrap()[0], "/asana/tasks?project=p%201&opt_fields=name,created_at");
    tasks.lock().unwrap().push(json!({ "gid": "2", "name": "fresh" }));
    let run = wait_for_run(&s, "asana-poll", RunStatus::Succeeded).await;
    assert_eq!(run.trigger_kind, "polling");
    let journal = s.state.store.run_steps(&run.id).await.unwrap();
    assert_eq!(journal.last().unwrap().output, Some(json!({ "result": "new: fresh" })));
    // Later polls see nothing new: one run in all.
    let seen = polls.lock().unwrap().len();
    wait_polls(seen + 2).await;
    let filter = para_store::history::RunFilter {
        workflow_id: Some("asana-poll".into()),
        ..Default::default()
    };
    let page = s.state.store.list_runs(PROJECT, &filter, 10, None).await.unwrap();
    assert_eq!(page.runs.len(), 1, "one run for one new item");

    // A second configuration of the account polls on its own, with its own project setting:
    // its first poll records what is there; a new item then starts a run in each.
    let account = store.credentials(PROJECT, "ann", Some("asana")).await.unwrap()[0].id.clone();
    let made = store.insert_configuration(PROJECT, "ann", &account, None).await.unwrap();
    let made_id = made.id.as_str();
    store
        .put_settings(
            project(&para_store::SettingsKey::Configuration(made.id.clone())),
            None,
            Some(&json!({ "asana-project": "p 2" })),
        )
        .await
        .unwrap();
    let polled_p2 = || polls.lock().unwrap().iter().any(|p| p.contains("project=p%202"));
    for _ in 0..100 {
        if polled_p2() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(polled_p2(), "{:?}", polls.lock().unwrap());
    let seen = polls.lock().unwrap().len();
    wait_polls(seen + 2).await;
    tasks.lock().unwrap().push(json!({ "gid": "3", "name": "third" }));
    let mut runs = Vec::new();
    for _ in 0..100 {
        runs = s.state.store.list_runs(PROJECT, &filter, 10, None).await.unwrap().runs;
        if runs.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(runs.len(), 3, "one more run per configuration");
    let in_made: Vec<_> =
        runs.iter().filter(|l| l.run.configuration_id.as_deref() == Some(made_id)).collect();
    assert_eq!(in_made.len(), 1);
    assert_eq!(in_made[0].run.credential_id.as_deref(), Some(account.as_str()));
}

/// The Daily digest workflow (a cron trigger, a RequestStep to Taskflow's own API with an
/// environment secret, a function, a Slack post), with two changes so a test can run it: the
/// cron fires every second, and the request goes to a loopback server instead of
/// `https://api.taskflow.example`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_digest_runs_on_its_cron_with_the_secret_and_posts_to_slack() {
    const DIGEST: &str = "9d3f1a7c-6b42-4e85-a0d9-4c7e1f2b3a65";
    let posts = Arc::new(Mutex::new(Vec::<Value>::new()));
    let keys = Arc::new(Mutex::new(Vec::<String>::new()));
    let (p, k) = (posts.clone(), keys.clone());
    let app = axum::Router::new().fallback(any(move |request: Request| {
        let (p, k) = (p.clone(), k.clone());
        async move {
            let target = request.uri().to_string();
            let key =
                request.headers().get("x-taskflow-key").map(|v| v.to_str().unwrap().to_string());
            let bytes = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap();
            if target.starts_with("/taskflow/v1/users/ann/tasks?") {
                k.lock().unwrap().push(format!("{target} {}", key.unwrap_or_default()));
                return axum::Json(json!({ "tasks": [{ "title": "Renew" }, { "title": "Call" }] }))
                    .into_response();
            }
            if target == "/slack/chat.postMessage" {
                p.lock().unwrap().push(serde_json::from_slice(&bytes).unwrap());
            }
            axum::Json(json!({ "ok": true })).into_response()
        }
    }));
    let api = common::serve(app).await;

    let mut build = taskflow();
    let digest = build.integrations.get_mut("slack").unwrap().workflows.get_mut(DIGEST).unwrap();
    for step in &mut digest.steps {
        if let para_build::StepKind::Cron { cron, .. } = &mut step.kind {
            *cron = "* * * * * *".into();
        }
    }
    redirect_requests(digest, "https://api.taskflow.example", &format!("{api}/taskflow"));
    set_secret("TASKFLOW_API_KEY", "tf-key-42");
    let dir = tempfile::tempdir().unwrap();
    let s =
        serve_build(build, dir.path(), ("slack", oauth_app(format!("{api}/slack"))), None).await;
    connect(&s, "ann", "slack").await;
    let channel = "f4a81b5d-3ea2-4fc1-9d64-829a01bc2e34";
    let store = &s.state.store;
    store
        .put_settings(shared_scope("slack"), None, Some(&json!({ channel: "#tasks" })))
        .await
        .unwrap();
    // Off by default: ann turns it on.
    let (status, _) =
        s.call("POST", &format!("/sdk/workflows/{DIGEST}"), &token("ann"), Some(json!({}))).await;
    assert_eq!(status, 200);

    let run = wait_for_run(&s, DIGEST, RunStatus::Succeeded).await;
    assert_eq!(run.trigger_kind, "cron");
    assert!(run.trigger_input["firedAt"].is_string());
    let journal = store.run_steps(&run.id).await.unwrap();
    assert_eq!(
        steps_of(&journal),
        [("everyMorning", DONE), ("dueToday", DONE), ("format", DONE), ("post", DONE)]
    );
    let seen = keys.lock().unwrap()[0].clone();
    assert_eq!(seen, "/taskflow/v1/users/ann/tasks?due=today&limit=50 tf-key-42");
    assert_eq!(
        posts.lock().unwrap()[0],
        json!({ "channel": "#tasks", "text": "Due today:\n• Renew\n• Call" })
    );
    // The secret reached the request but not the history.
    let input = journal[1].input.as_ref().unwrap();
    assert_eq!(input["headers"]["X-Taskflow-Key"], "[redacted]", "{input}");
    assert!(!format!("{journal:?}").contains("tf-key-42"));

    // A second configuration of the account, with its own channel and the digest on: each tick
    // runs the digest in both configurations.
    let slack = store.credentials(PROJECT, "ann", Some("slack")).await.unwrap()[0].id.clone();
    let made_path = format!("/sdk/credentials/{slack}/configurations");
    let (status, made) = s.call("POST", &made_path, &token("ann"), None).await;
    assert_eq!(status, 200, "{made}");
    let team = made["configurations"][1]["id"].as_str().unwrap().to_string();
    let in_team = [("x-paragon-credential", slack.as_str()), ("x-paragon-configuration-id", &team)];
    let settings = json!({ "config": { "sharedSettings": { channel: "#team-b" } } });
    let (status, body) = s
        .call_with(
            "PATCH",
            &format!("/sdk/credentials/{slack}"),
            &token("ann"),
            &in_team,
            Some(settings),
        )
        .await;
    assert_eq!((status, &body["errors"]), (200, &json!([])), "{body}");
    let (status, _) = s
        .call_with("POST", &format!("/sdk/workflows/{DIGEST}"), &token("ann"), &in_team, None)
        .await;
    assert_eq!(status, 200);
    let posted_to = |channel: &str| posts.lock().unwrap().iter().any(|p| p["channel"] == channel);
    for _ in 0..100 {
        if posted_to("#team-b") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(posted_to("#team-b"), "{:?}", posts.lock().unwrap());
    let filter =
        para_store::history::RunFilter { workflow_id: Some(DIGEST.into()), ..Default::default() };
    let runs = store.list_runs(PROJECT, &filter, 100, None).await.unwrap().runs;
    let in_made = runs.iter().find(|l| l.run.configuration_id.as_deref() == Some(&team));
    assert_eq!(in_made.unwrap().run.credential_id.as_deref(), Some(slack.as_str()));
}

/// A request-triggered workflow whose response reads steps of branches nested three deep (a
/// conditional in a fan-out in a conditional) after the outer join, compiled from TypeScript
/// (the compiler once refused such reads) and run through its real trigger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_after_nested_branches_join_see_the_values_of_the_branches_taken() {
    const DEEP: &str = "3e1d2c4b-0002-4000-8000-000000000001";
    let project = tempfile::tempdir().unwrap();
    let files = [
        (".para/project.json", format!(r#"{{ "projectId": "{PROJECT}", "projectName": "nested" }}"#)),
        ("src/integrations/slack/config.ts", "export default { description: '' };".into()),
        (
            "src/integrations/slack/inputs.ts",
            "import { createInputs } from '@useparagon/core/inputs';\nexport default createInputs({});"
                .into(),
        ),
        ("src/integrations/slack/workflows/deep.ts", format!(r#"
import {{ ConditionalStep, EndpointStep, FanOutStep, FunctionStep, ResponseStep, Workflow }} from '@useparagon/core';
import * as Operators from '@useparagon/core/operator';

export default class extends Workflow<any, any, any> {{
  define() {{
    const request = new EndpointStep({{
      bodyValidations: [{{ key: 'rush', dataType: 'BOOLEAN', required: true }}, {{ key: 'lines', dataType: 'ARRAY' }}],
    }});
    const rush = new ConditionalStep({{ if: Operators.BooleanTrue(request.output.request.body.rush) }});
    const each = new FanOutStep({{ iterator: request.output.request.body.lines }});
    const big = new ConditionalStep({{ if: Operators.NumberGreaterThan(each.output.instance.qty, 1) }});
    const mark = new FunctionStep({{
      code: (p: {{ sku: string }}) => `big:${{p.sku}}`,
      parameters: {{ sku: each.output.instance.sku }},
    }});
    const slow = new FunctionStep({{ code: () => 'slow', parameters: {{}} }});
    const respond = new ResponseStep({{
      statusCode: 200,
      responseType: 'JSON',
      body: {{ marks: mark.output.result, slow: slow.output.result, seen: each.output.count }},
    }});
    request.nextStep(rush.whenTrue(each.branch(big.whenTrue(mark))).whenFalse(slow)).nextStep(respond);
    return this.register({{ request, rush, each, big, mark, slow, respond }});
  }}
  name = 'Deep';
  defaultEnabled = true;
  readonly id = '{DEEP}';
}}
"#)),
    ];
    for (path, text) in files {
        let path = project.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let build = compile(project.path());
    let (api, _up) = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let s =
        serve_build(build, dir.path(), ("slack", oauth_app(format!("{api}/slack"))), None).await;
    connect(&s, "ann", "slack").await;
    let run = |body: Value| {
        let (url, ann) = (s.url(&format!("/sdk/triggers/{DEEP}")), token("ann"));
        async move {
            let answer = client().post(url).bearer_auth(ann).json(&body).send().await.unwrap();
            assert_eq!(answer.status(), 200);
            answer.json::<Value>().await.unwrap()
        }
    };
    let lines =
        json!([{ "sku": "a", "qty": 2 }, { "sku": "b", "qty": 1 }, { "sku": "c", "qty": 3 }]);
    // Rush: the fan-out runs; `mark` ran for the big lines only, and reads as one entry per
    // line in order (nothing where the inner conditional went the other way); `slow` did not run.
    let rushed = run(json!({ "rush": true, "lines": lines })).await;
    assert_eq!(rushed, json!({ "marks": ["big:a", null, "big:c"], "seen": 3 }));
    // No rush: the other branch of the outer conditional, so only `slow` has a value.
    let calm = run(json!({ "rush": false, "lines": lines })).await;
    assert_eq!(calm, json!({ "slow": "slow" }));
}

/// `examples/leadsync` as it is, but for its API's address: Salesforce's `recordCreated`
/// polling trigger polls the object the user chose in their field mapping, and each new record
/// is mapped with that mapping and posted to the company's API with the environment secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadsync_maps_each_new_salesforce_record_with_the_users_field_mapping() {
    const IMPORT_RECORDS: &str = "2c4e6a8b-0d1f-4a3c-9e5b-7a9c1e3f5b7d";
    const MAPPING: &str = "6a1f0c3e-2d4b-4e5a-8b9c-7d6e5f4a3b21";
    let records = Arc::new(Mutex::new(vec![json!({ "Id": "00Q1", "Email": "old@acme.io" })]));
    let polls = Arc::new(Mutex::new(Vec::<String>::new()));
    let leads = Arc::new(Mutex::new(Vec::<(String, String, Value)>::new()));
    let (r, p, l) = (records.clone(), polls.clone(), leads.clone());
    let app = axum::Router::new().fallback(any(move |request: Request| {
        let (r, p, l) = (r.clone(), p.clone(), l.clone());
        async move {
            let target = request.uri().to_string();
            let auth = request
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let bytes = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap();
            if target.starts_with("/sf/query?") {
                p.lock().unwrap().push(target);
                return axum::Json(json!({ "records": r.lock().unwrap().clone() })).into_response();
            }
            if target.starts_with("/leadsync/") {
                l.lock().unwrap().push((target, auth, serde_json::from_slice(&bytes).unwrap()));
                return (StatusCode::CREATED, axum::Json(json!({ "id": "lead-1" })))
                    .into_response();
            }
            axum::Json(json!({ "ok": true })).into_response()
        }
    }));
    let api = common::serve(app).await;

    let mut build = compile_example("leadsync");
    let salesforce = build.integrations.get_mut("salesforce").unwrap();
    let workflow = salesforce.workflows.get_mut(IMPORT_RECORDS).unwrap();
    redirect_requests(workflow, "https://api.leadsync.example", &format!("{api}/leadsync"));
    set_secret("LEADSYNC_API_KEY", "ls-key-7");
    let dir = tempfile::tempdir().unwrap();
    let s =
        serve_build(build, dir.path(), ("salesforce", oauth_app(format!("{api}/sf"))), Some(150))
            .await;
    // The user's field mapping, as the Connect Portal saves it: Leads, and which field is which.
    let mapping =
        json!({ "record_type": "Lead", "email": "Email", "name": "Name", "company": "Company" });
    s.state
        .store
        .put_settings(shared_scope("salesforce"), None, Some(&json!({ MAPPING: mapping })))
        .await
        .unwrap();
    connect(&s, "ann", "salesforce").await;
    s.state
        .store
        .touch_user(PROJECT, "ann", Some(&json!({ "workspaceId": "ws_9" })))
        .await
        .unwrap();

    // The first poll (of the object the mapping names) only records what is there.
    for _ in 0..100 {
        if !polls.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = polls.lock().unwrap().first().cloned().expect("a poll");
    assert!(first.contains("FROM+Lead+"), "{first}");
    // Two new records: one with an email becomes a lead, one without is skipped.
    records.lock().unwrap().push(json!({
        "Id": "00Q2", "Email": " ada@lovelace.io ", "Name": "Ada Lovelace", "Company": "Analytical",
    }));
    records.lock().unwrap().push(json!({ "Id": "00Q3", "Name": "No Email" }));
    let mut runs = Vec::new();
    for _ in 0..200 {
        let filter = para_store::history::RunFilter {
            workflow_id: Some(IMPORT_RECORDS.into()),
            ..Default::default()
        };
        runs = s.state.store.list_runs(PROJECT, &filter, 10, None).await.unwrap().runs;
        if runs.len() == 2 && runs.iter().all(|l| l.run.status == RunStatus::Succeeded) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(runs.len(), 2, "one run per new record");
    assert!(runs.iter().all(|l| l.run.status == RunStatus::Succeeded), "{runs:?}");
    let leads = leads.lock().unwrap().clone();
    assert_eq!(leads.len(), 1, "only the record with an email is posted: {leads:?}");
    let (target, auth, body) = &leads[0];
    assert_eq!(target, "/leadsync/v1/workspaces/ws_9/leads");
    assert_eq!(auth, "Bearer ls-key-7");
    assert_eq!(
        body,
        &json!({
            "lead": { "email": "ada@lovelace.io", "name": "Ada Lovelace", "company": "Analytical", "salesforceId": "00Q2" },
            "source": "salesforce",
            "connectedUser": "ann",
        })
    );
}

/// A `password` User Setting and an environment secret, as an attacker with the database file
/// or the run history would look for them: the setting is sealed in the file (its `-wal`
/// included) and never sent back by the Connect API; the run uses both, and its journal holds
/// neither, plain or encoded (a query string percent-encodes the secret); the request trigger's
/// stored input keeps no credential-bearing header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_settings_and_secrets_stay_out_of_the_database_and_the_history() {
    const CALL: &str = "3e1d2c4b-0003-4000-8000-000000000001";
    const API_KEY: &str = "5d6e7f80-0000-4000-8000-000000000001";
    let password = "hunter2-very-secret";
    let secret = "tok en/42+x";
    let project = tempfile::tempdir().unwrap();
    let files = [
        (
            ".para/project.json",
            format!(r#"{{ "projectId": "{PROJECT}", "projectName": "secrets" }}"#),
        ),
        ("src/integrations/slack/config.ts", "export default { description: '' };".into()),
        (
            "src/integrations/slack/inputs.ts",
            format!(
                "import {{ createInputs }} from '@useparagon/core/inputs';\n\
                 export default createInputs({{ apiKey: {{ id: '{API_KEY}', title: 'API key', type: 'password' }} }});"
            ),
        ),
        (
            "src/integrations/slack/workflows/call.ts",
            format!(
                r#"
import {{ EndpointStep, IntegrationRequestStep, ResponseStep, Workflow }} from '@useparagon/core';
import inputs from '../inputs';

export default class extends Workflow<any, any, any> {{
  define(integration: any, context: any) {{
    const request = new EndpointStep({{ allowArbitraryPayload: true }});
    const call = new IntegrationRequestStep({{
      method: 'GET',
      url: `/check?token=${{context.getEnvironmentSecret('ACME_TOKEN')}}`,
      headers: {{ 'X-Api-Key': `${{context.getInput(inputs.apiKey)}}` }},
    }});
    const respond = new ResponseStep({{ statusCode: 200, responseType: 'JSON', body: {{ seen: call.output.response.body }} }});
    request.nextStep(call).nextStep(respond);
    return this.register({{ request, call, respond }});
  }}
  name = 'Call';
  defaultEnabled = true;
  readonly id = '{CALL}';
}}
"#
            ),
        ),
    ];
    for (path, text) in files {
        let path = project.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let build = compile(project.path());
    let (api, up) = start_upstream().await;
    set_secret("ACME_TOKEN", secret);
    let dir = tempfile::tempdir().unwrap();
    let s =
        serve_build(build, dir.path(), ("slack", oauth_app(format!("{api}/slack"))), None).await;
    let account = connect_account(&s, "ann", "slack", "tok-ann").await;
    let ann = token("ann");

    // Saved through the Connect API, as the SDK does; answered without it.
    let body = json!({ "config": { "sharedSettings": { API_KEY: password } } });
    let (status, view) =
        s.call("PATCH", &format!("/sdk/credentials/{account}"), &ann, Some(body)).await;
    assert_eq!(status, 200, "{view}");
    assert!(!view.to_string().contains(password), "{view}");
    let (_, view) = s.call("GET", &format!("/sdk/credentials/{account}"), &ann, None).await;
    assert!(!view.to_string().contains(password), "{view}");
    // A client's next save without it (it never saw it) keeps it.
    let body = json!({ "config": { "sharedSettings": {} } });
    assert_eq!(
        s.call("PATCH", &format!("/sdk/credentials/{account}"), &ann, Some(body)).await.0,
        200
    );

    // The run reads both, with the user's secret headers.
    let answer = client()
        .post(s.url(&format!("/sdk/triggers/{CALL}")))
        .bearer_auth(&ann)
        .header("x-api-key", "caller-key-123456")
        .header("proxy-authorization", "Basic cHJveHk6cGFzc3dvcmQ=")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let execution = answer.headers()["x-para-execution-id"].to_str().unwrap().to_string();
    let calls = up.calls.lock().unwrap().clone();
    let (_, target, _, _) = calls.iter().find(|c| c.1.starts_with("/slack/check")).unwrap();
    assert!(target.contains("token=tok%20en"), "the run sent the secret: {target}");

    // The history holds neither, in any form.
    let (status, history) =
        s.call("GET", &format!("/task-history/workflow-executions/{execution}"), &ann, None).await;
    assert_eq!(status, 200, "{history}");
    let journal = serde_json::to_string(
        &s.state
            .store
            .run_steps(&execution)
            .await
            .unwrap()
            .iter()
            .map(|r| json!({ "input": r.input, "output": r.output }))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    for text in [history.to_string(), journal] {
        for trace in [password, "tok en/42", "tok%20en", "tok+en", "caller-key-123456", "cHJveHk6"]
        {
            assert!(!text.contains(trace), "{trace} in {text}");
        }
    }

    // The database file holds the setting sealed only.
    s.state.store.run_steps(&execution).await.unwrap();
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        if let Ok(b) = std::fs::read(format!("{}{suffix}", dir.path().join("para.db").display())) {
            bytes.extend(b);
        }
    }
    let haystack = String::from_utf8_lossy(&bytes);
    assert!(!haystack.contains(password), "the password setting is in the database file");
    assert!(haystack.contains("para-sealed:v1:"), "sealed where it was saved");
}
