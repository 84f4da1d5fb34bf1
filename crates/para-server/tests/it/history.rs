//! Run history over real HTTP: the task-history API (admin key versus user tokens, filters,
//! paging, one run with its steps, replay) and the dashboard's Runs pages.

use std::time::Duration;

use para_store::runs::{Lease, NewRun, RunState, RunStatus, StepRecord, StepStatus, Write};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{self, TestServer};

const PROJECT: &str = "p1";
const ADMIN_KEY: &str = "correct-horse-battery";
const TASKS: &str = "0a6b2c3d-0000-4000-8000-000000000001";
const GONE: &str = "0a6b2c3d-0000-4000-8000-00000000dead";

fn build() -> para_build::Build {
    let step = |id: &str, key: &str, kind: &str, parameters: Value, description: &str| {
        json!({
            "id": id, "key": key, "type": kind, "parameters": parameters,
            "description": description, "autoRetry": false, "continueWorkflowOnError": false,
            "next": null, "source": null
        })
    };
    let workflow = json!({
        "id": TASKS, "name": "Create tasks", "description": null, "order": 0,
        "defaultEnabled": true, "hidden": false, "inputs": [], "source": "w.ts",
        "trigger": "s-trigger",
        "steps": [
            step("s-trigger", "trigger", "TRIGGER/EVENT", json!({ "eventId": "e1", "eventName": "Task Created" }), "When a task is created"),
            step("s-create", "createTask", "ACTION/FUNCTION", json!({ "code": "return 1", "parameters": [] }), "Create the task"),
        ],
        "permissions": null
    });
    let mut slack = common::custom("custom.acme", "oauth", json!({ "type": "none" }), Value::Null);
    slack["workflows"] = json!({ TASKS: workflow });
    common::build(PROJECT, json!({ "custom.acme": slack }))
}

/// The server under test with this file's helpers, and a client that leaves redirects to the
/// test.
struct Server {
    server: TestServer,
    http: reqwest::Client,
}

impl std::ops::Deref for Server {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.server
    }
}

async fn start(admin_key: Option<&str>) -> Server {
    let server = TestServer::builder(build()).admin_key(admin_key).start().await;
    Server { server, http: common::client_without_redirects() }
}

impl Server {
    fn api(&self, path: &str) -> String {
        format!("{}/projects/{PROJECT}/task-history/workflow-executions{path}", self.base)
    }

    async fn get(&self, url: &str, bearer: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.get(url);
        if let Some(b) = bearer {
            request = request.bearer_auth(b);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        if status.is_success() {
            let cache = response.headers().get("cache-control").map(|v| v.to_str().unwrap());
            assert_eq!(cache, Some("no-store"));
        }
        (status, response.json().await.unwrap())
    }

    async fn replay(&self, id: &str, bearer: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.api(&format!("/{id}/replay")))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates a run (with its trigger and `steps`) and leaves it as `state`.
    async fn run(
        &self,
        project: &str,
        id: &str,
        user: &str,
        workflow: &str,
        steps: Vec<StepRecord>,
        state: RunState,
    ) {
        let store = &self.state.store;
        let trigger = StepRecord {
            key: "trigger".into(),
            step_id: "s-trigger".into(),
            seq: 0,
            status: StepStatus::Done,
            attempts: 1,
            input: None,
            output: Some(json!({ "task": id })),
            error: None,
            not_before: None,
            started_at: para_store::now_ms(),
            finished_at: Some(para_store::now_ms()),
        };
        let owner = format!("test-{id}");
        let create = Write::Create {
            run: NewRun {
                id: id.into(),
                project_id: project.into(),
                user_id: user.into(),
                integration: "custom.acme".into(),
                workflow_id: workflow.into(),
                trigger_kind: "event".into(),
                trigger_input: json!({ "name": "Task Created", "payload": { "task": id } }),
                build_hash: "sha256:test".into(),
                credential_id: None,
                configuration_id: None,
            },
            lease: Some(Lease { owner: owner.clone(), until: para_store::now_ms() + 60_000 }),
            steps: vec![trigger],
        };
        let progress = Write::Progress {
            run_id: id.into(),
            lease: Lease { owner, until: para_store::now_ms() + 60_000 },
            steps,
            state,
            response: None,
        };
        assert_eq!(store.apply(&[create, progress]).await.unwrap(), [true, true]);
        // Distinct creation times, so "newest first" is well defined.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

fn entry(
    key: &str,
    seq: i64,
    status: StepStatus,
    output: Option<Value>,
    error: Option<&str>,
) -> StepRecord {
    StepRecord {
        key: key.into(),
        step_id: "s-create".into(),
        seq,
        status,
        attempts: if error.is_some() { 3 } else { 1 },
        input: Some(json!({ "title": key })),
        output,
        error: error.map(str::to_string),
        not_before: None,
        started_at: 1_000,
        finished_at: Some(2_500),
    }
}

/// ann: a succeeded run and a failed one; bob: a running one; a run in another project; a run
/// of a workflow the build no longer has.
async fn seeded(admin_key: Option<&str>) -> Server {
    let server = start(admin_key).await;
    let ok = vec![entry(
        "createTask[0]",
        1,
        StepStatus::Done,
        Some(json!({ "note": "<script>alert(1)</script>" })),
        None,
    )];
    server.run(PROJECT, "ann-ok", "ann", TASKS, ok, RunState::Succeeded).await;
    let failed = vec![
        entry("createTask[0]", 1, StepStatus::Done, Some(json!({ "id": 1 })), None),
        entry("createTask[1]", 2, StepStatus::Failed, None, Some("HTTP 500 from ACME")),
    ];
    server
        .run(
            PROJECT,
            "ann-failed",
            "ann",
            TASKS,
            failed,
            RunState::Failed("createTask[1]: HTTP 500 from ACME".into()),
        )
        .await;
    server.run(PROJECT, "bob-running", "bob", TASKS, vec![], RunState::Running).await;
    server.run("other-project", "elsewhere", "ann", TASKS, vec![], RunState::Succeeded).await;
    server.run(PROJECT, "ann-gone", "ann", GONE, vec![], RunState::Succeeded).await;
    server
}

fn ids(body: &Value) -> Vec<String> {
    body["workflowExecutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_admin_key_sees_every_run_and_a_user_only_their_own() {
    let server = seeded(Some(ADMIN_KEY)).await;
    let (status, all) = server.get(&server.api(""), Some(ADMIN_KEY)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ids(&all),
        ["ann-gone", "bob-running", "ann-failed", "ann-ok"],
        "newest first, this project only"
    );
    assert_eq!(all["nextCursor"], Value::Null);
    assert_eq!(all["nextLink"], Value::Null);
    let failed = &all["workflowExecutions"][2];
    assert_eq!(failed["userId"], "ann");
    assert_eq!(failed["integration"], "custom.acme");
    assert_eq!(failed["workflowId"], TASKS);
    assert_eq!(failed["workflowName"], "Create tasks");
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(failed["triggerKind"], "event");
    assert_eq!(failed["taskCount"], 3);
    assert_eq!(failed["error"], "createTask[1]: HTTP 500 from ACME");
    assert!(failed["runDuration"].as_i64().unwrap() >= 0);
    assert!(failed["dateStarted"].as_str().unwrap().ends_with('Z'));
    assert!(failed["dateEnded"].is_string());
    let running = &all["workflowExecutions"][1];
    assert_eq!(
        (running["dateEnded"].clone(), running["runDuration"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(all["workflowExecutions"][0]["workflowName"], Value::Null, "not in the build");

    let ann = common::token("ann");
    let (status, mine) = server.get(&server.api(""), Some(&ann)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&mine), ["ann-gone", "ann-failed", "ann-ok"]);
    let (_, asked_for_bob) = server.get(&server.api("?userId=bob"), Some(&ann)).await;
    assert!(ids(&asked_for_bob).is_empty(), "a user cannot list another user's runs");
    let (_, bob_only) = server.get(&server.api("?userId=bob"), Some(ADMIN_KEY)).await;
    assert_eq!(ids(&bob_only), ["bob-running"]);

    // One run: its steps, typed and described from the build.
    let (status, run) = server.get(&server.api("/ann-failed"), Some(&ann)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(run["id"], "ann-failed");
    assert_eq!(
        run["triggerInput"],
        json!({ "name": "Task Created", "payload": { "task": "ann-failed" } })
    );
    let steps = run["steps"].as_array().unwrap();
    let keys: Vec<&str> = steps.iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["trigger", "createTask[0]", "createTask[1]"]);
    assert_eq!(steps[0]["type"], "TRIGGER/EVENT");
    assert_eq!(steps[0]["description"], "When a task is created");
    assert_eq!(steps[2]["type"], "ACTION/FUNCTION");
    assert_eq!(steps[2]["description"], "Create the task");
    assert_eq!(steps[2]["status"], "FAILED");
    assert_eq!(steps[2]["attempts"], 3);
    assert_eq!(steps[2]["error"], "HTTP 500 from ACME");
    assert_eq!(steps[2]["input"], json!({ "title": "createTask[1]" }));
    assert_eq!(steps[2]["output"], Value::Null);
    assert_eq!(steps[2]["startedAt"], "1970-01-01T00:00:01.000Z");
    assert_eq!(steps[2]["finishedAt"], "1970-01-01T00:00:02.500Z");
    assert_eq!(steps[2]["durationMs"], 1500);
    assert_eq!(steps[1]["output"], json!({ "id": 1 }));

    // Another user's run, another project's run and no run at all read the same: 404.
    for (id, bearer) in
        [("bob-running", ann.as_str()), ("elsewhere", ADMIN_KEY), ("nope", ADMIN_KEY)]
    {
        let (status, body) = server.get(&server.api(&format!("/{id}")), Some(bearer)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}: {body}");
    }
    let (status, _) = server.get(&server.api("/bob-running"), Some(ADMIN_KEY)).await;
    assert_eq!(status, StatusCode::OK);

    // No token, a wrong key, another project's path: 401.
    assert_eq!(server.get(&server.api(""), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(server.get(&server.api(""), Some("not-the-key")).await.0, StatusCode::UNAUTHORIZED);
    let other = format!("{}/projects/other-project/task-history/workflow-executions", server.base);
    assert_eq!(server.get(&other, Some(ADMIN_KEY)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(server.get(&other, Some(&ann)).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn filters_and_pages_follow_the_query() {
    let server = seeded(Some(ADMIN_KEY)).await;
    let (_, failed) =
        server.get(&server.api("?status=failed&includeTotal=true"), Some(ADMIN_KEY)).await;
    assert_eq!(ids(&failed), ["ann-failed"]);
    assert_eq!(failed["total"], 1);
    let (_, by_workflow) =
        server.get(&server.api(&format!("?workflowId={TASKS}")), Some(ADMIN_KEY)).await;
    assert_eq!(ids(&by_workflow), ["bob-running", "ann-failed", "ann-ok"]);
    let (_, none) = server.get(&server.api("?integration=salesforce"), Some(ADMIN_KEY)).await;
    assert!(ids(&none).is_empty());

    // The creation window, as ISO-8601 and as milliseconds.
    let runs = server.state.store.list_runs(PROJECT, &Default::default(), 10, None).await.unwrap();
    let failed_at = runs.runs.iter().find(|l| l.run.id == "ann-failed").unwrap().run.created_at;
    let iso = para_store::history::format_time(failed_at);
    let (_, window) = server
        .get(&server.api(&format!("?startDate={iso}&endDate={}", failed_at + 1)), Some(ADMIN_KEY))
        .await;
    assert_eq!(ids(&window), ["ann-failed"]);
    let (_, after) = server.get(&server.api(&format!("?afterDate={iso}")), Some(ADMIN_KEY)).await;
    assert_eq!(ids(&after), ["ann-gone", "bob-running", "ann-failed"]);

    // Pages of two, following nextLink, keep the filters.
    let mut url = server.api("?limit=2&userId=ann");
    let mut seen = Vec::new();
    loop {
        let (status, page) = server.get(&url, Some(ADMIN_KEY)).await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(ids(&page));
        match page["nextLink"].as_str() {
            Some(next) => {
                assert!(next.contains("userId=ann") && next.contains("cursor="), "{next}");
                assert!(page["nextCursor"].is_string());
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(seen, ["ann-gone", "ann-failed", "ann-ok"]);

    for bad in ["?status=DONE", "?limit=0", "?startDate=last-week", "?cursor=nonsense"] {
        let (status, body) = server.get(&server.api(bad), Some(ADMIN_KEY)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["code"], "bad_request");
    }
}

#[tokio::test]
async fn replay_queues_a_new_run_for_the_same_user_and_input() {
    let server = seeded(None).await;
    let ann = common::token("ann");
    let store = &server.state.store;

    let (status, _) = server.replay("bob-running", &ann).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "ann cannot replay bob's run");
    // Without PARA_ADMIN_KEY no bearer is the admin key.
    let (status, _) = server.replay("bob-running", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = server.replay("ann-failed", &ann).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let new_id = body["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, "ann-failed");
    assert_eq!(body["replayOf"], "ann-failed");
    let run = store.run(PROJECT, &new_id).await.unwrap().unwrap();
    let old = store.run(PROJECT, "ann-failed").await.unwrap().unwrap();
    assert_eq!(
        (&run.user_id, &run.integration, &run.workflow_id, &run.trigger_kind, &run.trigger_input),
        (&old.user_id, &old.integration, &old.workflow_id, &old.trigger_kind, &old.trigger_input)
    );
    assert_eq!(run.build_hash, "sha256:test", "the served build's");
    // The server's own engine may claim the new run at any moment; until then it is QUEUED,
    // with nothing in its journal.
    if run.claims == 0 {
        assert_eq!(run.status, RunStatus::Queued);
        assert!(body["status"] == "QUEUED" || body["status"] == "RUNNING", "{body}");
        // Journaled as a triggered run is: the trigger done, its output the trigger input.
        let steps = store.run_steps(&new_id).await.unwrap();
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert_eq!((steps[0].key.as_str(), steps[0].step_id.as_str()), ("trigger", "s-trigger"));
        assert_eq!(steps[0].output.as_ref(), Some(&old.trigger_input));
    }
    let (_, mine) = server.get(&server.api(""), Some(&ann)).await;
    assert_eq!(ids(&mine)[0], new_id, "the newest run");
    let claimed = store.claim_runs(PROJECT, "test-worker", 10, 60_000).await.unwrap();
    let now = store.run(PROJECT, &new_id).await.unwrap().unwrap();
    assert!(claimed.iter().any(|r| r.id == new_id) || now.claims > 0, "a worker picks it up");

    let (status, body) = server.replay("ann-gone", &ann).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "workflow_missing");
}

#[tokio::test]
async fn the_dashboard_lists_runs_shows_steps_and_replays_with_a_csrf_token() {
    let server = seeded(Some(ADMIN_KEY)).await;
    let get = |path: &str, cookie: Option<&str>| {
        let mut request = server.http.get(format!("{}{path}", server.base));
        request = match cookie {
            Some(c) => request.header("cookie", c),
            None => request.bearer_auth(ADMIN_KEY),
        };
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let (status, list) = get("/dashboard/runs", None).await;
    assert_eq!(status, StatusCode::OK);
    for expected in
        ["Create tasks", "ann-failed", "bob-running", "FAILED", "createTask[1]: HTTP 500 from ACME"]
    {
        assert!(list.contains(expected), "{expected} missing: {list}");
    }
    assert!(!list.contains("elsewhere"), "another project's run");
    let (_, filtered) =
        get(&format!("/dashboard/runs?workflow={TASKS}&user=bob&status="), None).await;
    assert!(filtered.contains("bob-running") && !filtered.contains("ann-failed"), "{filtered}");
    let (status, refused) = get("/dashboard/runs?status=DONE", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refused.contains("not one of"));
    let (_, users) = get("/dashboard", None).await;
    assert!(users.contains("href=\"/dashboard/runs\""), "linked from the nav");

    let (status, page) = get("/dashboard/runs/ann-ok", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("&lt;script&gt;alert(1)"), "output escaped: {page}");
    assert!(!page.contains("<script>"));
    // minijinja escapes `/` too.
    for expected in [
        "createTask[0]",
        "ACTION&#x2f;FUNCTION",
        "Create the task",
        "TRIGGER&#x2f;EVENT",
        "1.5 s",
        "Replay this run",
    ] {
        assert!(page.contains(expected), "{expected} missing");
    }
    let (status, _) = get("/dashboard/runs/elsewhere", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, anonymous) = {
        let response =
            server.http.get(format!("{}/dashboard/runs", server.base)).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    };
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.contains("Admin key"));

    // Signed in with the form: the replay button needs the page's CSRF token.
    let login = server
        .http
        .post(format!("{}/dashboard/login", server.base))
        .form(&[("key", ADMIN_KEY)])
        .send()
        .await
        .unwrap();
    let cookie =
        login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let (_, page) = get("/dashboard/runs/ann-failed", Some(&cookie)).await;
    let csrf =
        page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let replay = format!("{}/dashboard/runs/ann-failed/replay", server.base);
    let post = |form: Vec<(&'static str, String)>| {
        server.http.post(&replay).header("cookie", &cookie).form(&form).send()
    };
    let before = server.state.store.count_runs(PROJECT, &Default::default()).await.unwrap();
    assert_eq!(post(vec![]).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(
        post(vec![("csrf", "forged".into())]).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(server.state.store.count_runs(PROJECT, &Default::default()).await.unwrap(), before);
    let done = post(vec![("csrf", csrf)]).await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let location = done.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("/dashboard/runs/") && location.ends_with("?replayOf=ann-failed"),
        "{location}"
    );
    let (status, new_page) = get(&location, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(new_page.contains("Queued as a replay of"), "{new_page}");
    // A script with the key in the header needs no form token.
    let scripted = server.http.post(&replay).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(scripted.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        server.state.store.count_runs(PROJECT, &Default::default()).await.unwrap(),
        before + 2
    );
}

#[tokio::test]
async fn the_runs_pages_are_off_without_an_admin_key() {
    let server = seeded(None).await;
    for path in ["/dashboard/runs", "/dashboard/runs/ann-ok"] {
        let response = server.http.get(format!("{}{path}", server.base)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let response = server
        .http
        .post(format!("{}/dashboard/runs/ann-ok/replay", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
