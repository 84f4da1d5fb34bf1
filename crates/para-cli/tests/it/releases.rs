//! Releases with the real `para` binary (issue 22): two `para serve` processes on one fresh
//! PostgreSQL database and no project folder. They start with nothing to serve (only the
//! deploy API and `/healthz`); release 1 is pushed with `para push`; under a steady load of
//! request-triggered runs through both, release 2 (a changed workflow) is pushed to one and
//! then release 1 made current again through the other with `para rollback`. No request fails; each run finishes on the graph of the
//! release it started on, also when its second half runs after the switch (on either
//! process); runs started once the switch is through use the new release. Bad pushes (wrong
//! key, malformed build, unknown format version, another project) are refused and the current
//! release stays.
//!
//! The workflow: request → function `head` → response `{version: head}` → 1 s delay →
//! function `tail`. Release 1's functions answer `v1`, release 2's `v2`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use para_store::Store;
use para_store::runs::RunStatus;
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::common::{Server, connect_basic, http_client as http, para_stdout as run_para};

const WORKFLOW: &str = "7c2e9d41-5a3b-4c6d-8e7f-9a0b1c2d3e4f";
const DEPLOY_KEY: &str = "deploy-key-for-the-releases-test";
const METRICS_KEY: &str = "metrics-key-for-the-releases-test";

fn workflow_ts(version: &str) -> String {
    format!(
        r#"import {{ DelayStep, EndpointStep, FunctionStep, ResponseStep, Workflow }} from '@useparagon/core';

export default class extends Workflow<any, any, any> {{
  define(integration: any, context: any, connectUser: any) {{
    const trigger = new EndpointStep({{
      allowArbitraryPayload: true,
      paramValidations: [] as const,
      headerValidations: [] as const,
      bodyValidations: [] as const,
    }});
    const head = new FunctionStep({{ code: function head() {{ return {{ version: '{version}' }}; }}, parameters: {{}} }});
    const respond = new ResponseStep({{ statusCode: 200, responseType: 'JSON', body: {{ version: head.output.result.version }} }});
    const wait = new DelayStep({{ value: 1, unit: 'SECONDS' }});
    const tail = new FunctionStep({{ code: function tail() {{ return {{ version: '{version}' }}; }}, parameters: {{}} }});
    trigger.nextStep(head).nextStep(respond).nextStep(wait).nextStep(tail);
    return this.register({{ trigger, head, respond, wait, tail }});
  }}

  name = 'Versioned';
  description = 'releases test';
  inputs = {{}};
  defaultEnabled = true;
  hidden = false;
  readonly id = '{WORKFLOW}';
}}
"#
    )
}

/// The project, built once per version: its root, its id, and the two builds' documents.
fn project(dir: &Path) -> (PathBuf, String, Value, Value) {
    let root = dir.join("project");
    run_para(dir, &["init", root.to_str().unwrap(), "--name", "releases"]);
    run_para(&root, &["new", "integration", "--custom", "Counter", "--auth", "basic"]);
    let file = root.join("src/integrations/custom.counter/workflows/versioned.ts");
    let mut builds = Vec::new();
    for version in ["v1", "v2"] {
        std::fs::write(&file, workflow_ts(version)).unwrap();
        run_para(&root, &["build", "--quiet"]);
        let text = std::fs::read_to_string(root.join("out/build.json")).unwrap();
        builds.push(serde_json::from_str::<Value>(&text).unwrap());
    }
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(".para/project.json")).unwrap())
            .unwrap();
    let v2 = builds.pop().unwrap();
    let v1 = builds.pop().unwrap();
    (root, meta["projectId"].as_str().unwrap().to_string(), v1, v2)
}

/// The counter API: its connection check answers.
async fn api() -> String {
    let app = axum::Router::new().fallback(|| async { axum::Json(json!({ "me": "ok" })) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// A fresh database on `PARA_TEST_POSTGRES`'s server (one database serves one project's
/// releases); `None` after saying so when the test is skipped.
pub(crate) async fn fresh_database() -> Option<String> {
    let Ok(admin) = std::env::var("PARA_TEST_POSTGRES") else {
        assert!(
            std::env::var("PARA_TEST_REQUIRE_POSTGRES").is_err(),
            "PARA_TEST_REQUIRE_POSTGRES is set but PARA_TEST_POSTGRES is not"
        );
        eprintln!(
            "skipped: PARA_TEST_POSTGRES is not set (export PARA_TEST_POSTGRES=$(scripts/postgres))"
        );
        return None;
    };
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, query) = admin.split_once('?').map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
    let path = base.rfind('/').filter(|i| *i > base.find("://").unwrap() + 2).unwrap();
    let url =
        format!("{}/{name}{}", &base[..path], query.map(|q| format!("?{q}")).unwrap_or_default());
    Some(url)
}

async fn serve(cwd: &Path, database: &str, api: &str, public_key: &str) -> Server {
    Server::serve(cwd)
        .database(database)
        .env("PARA_SECRET_KEY", "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=")
        .env("PARA_USER_TOKEN_PUBLIC_KEY", public_key)
        .env("PARA_DEPLOY_KEY", DEPLOY_KEY)
        .env("PARA_METRICS_KEY", METRICS_KEY)
        .env("PARA_OAUTH_CUSTOM_COUNTER_API_BASE_URL", api)
        .env("PARA_ENGINE_LEASE_MS", "2000")
        .env("PARA_ENGINE_POLL_MS", "100")
        .start_async()
        .await
}

/// `para <args>` in the project with the deploy key (on a blocking thread: the servers' test
/// upstream keeps running); its stderr, after checking it succeeded.
async fn para_deploy(root: &Path, args: &[&str]) -> String {
    let (root, args): (PathBuf, Vec<String>) =
        (root.to_path_buf(), args.iter().map(|a| a.to_string()).collect());
    tokio::task::spawn_blocking(move || {
        let out = crate::common::para_command()
            .args(&args)
            .current_dir(&root)
            .env("PARA_DEPLOY_KEY", DEPLOY_KEY)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "para {args:?} failed:\n{stderr}");
        stderr
    })
    .await
    .unwrap()
}

/// The releases a server lists (`GET /deploy/releases`).
async fn releases(server: &Server) -> Value {
    http()
        .get(server.url("/deploy/releases"))
        .bearer_auth(DEPLOY_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `POST /deploy/releases` with `key`: the status and the answer.
async fn push(server: &Server, key: &str, body: &Value) -> (u16, Value) {
    let r = http()
        .post(server.url("/deploy/releases"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A server's `/metrics`: each sample's name with its labels, and its value.
async fn scrape(server: &Server) -> BTreeMap<String, f64> {
    let text = http()
        .get(server.url("/metrics"))
        .bearer_auth(METRICS_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("a sample: {l}"));
            (name.to_string(), value.parse().unwrap_or_else(|_| panic!("a value: {l}")))
        })
        .collect()
}

/// The sum of the samples named `name` whose labels include every one of `labels`.
fn total(samples: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| {
            (k.as_str() == name || k.starts_with(&format!("{name}{{")))
                && labels.iter().all(|l| k.contains(l))
        })
        .map(|(_, v)| v)
        .sum()
}

/// The build hash a server serves (`/healthz`).
async fn serving(server: &Server) -> String {
    let health: Value =
        http().get(server.url("/healthz")).send().await.unwrap().json().await.unwrap();
    health["buildHash"].as_str().unwrap_or_default().to_string()
}

/// Waits until both servers serve `hash`; how long that took.
async fn both_serve(a: &Server, b: &Server, hash: &str) -> Duration {
    let started = Instant::now();
    while serving(a).await != hash || serving(b).await != hash {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the servers did not switch to {hash}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// One request-triggered run: when it was sent, and the answer's status and version.
#[derive(Debug, Clone)]
struct Sent {
    at: Instant,
    /// When its answer came.
    done: Instant,
    status: u16,
    version: String,
}

/// Sends request triggers through `servers` in turn from 4 tasks until `stop`.
fn load(
    servers: Vec<String>,
    project: &str,
    token: &str,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Sent>> {
    let path = format!("/projects/{project}/sdk/triggers/{WORKFLOW}");
    let token = token.to_string();
    tokio::spawn(async move {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..4)
            .map(|worker| {
                let (servers, path, token, stop, sent) =
                    (servers.clone(), path.clone(), token.clone(), stop.clone(), sent.clone());
                tokio::spawn(async move {
                    let mut i = worker;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let base = &servers[i % servers.len()];
                        i += 1;
                        let at = Instant::now();
                        let r = http()
                            .post(format!("{base}{path}"))
                            .bearer_auth(&token)
                            .json(&json!({ "n": i }))
                            .timeout(Duration::from_secs(20))
                            .send()
                            .await;
                        let (status, version) = match r {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                let body: Value = r.json().await.unwrap_or(Value::Null);
                                (status, body["version"].as_str().unwrap_or("?").to_string())
                            }
                            Err(e) => (0, e.to_string()),
                        };
                        let done = Instant::now();
                        sent.lock().unwrap().push(Sent { at, done, status, version });
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        sent.lock().unwrap().clone()
    })
}

/// The version a run's step `key` answered (`?`: none recorded).
fn step_version(steps: &[para_store::runs::StepRecord], key: &str) -> (String, Option<i64>) {
    let step = steps.iter().find(|s| s.key == key);
    let version = step
        .and_then(|s| s.output.as_ref())
        .map(|o| o.to_string())
        .map(|o| {
            if o.contains("\"v1\"") {
                "v1"
            } else if o.contains("\"v2\"") {
                "v2"
            } else {
                "?"
            }
        })
        .unwrap_or("?");
    (version.to_string(), step.and_then(|s| s.finished_at))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_and_rollbacks_switch_every_server_without_failing_a_request_or_a_run() {
    let Some(database) = fresh_database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (root, project, v1, v2) = project(dir.path());
    let public_key = std::fs::read_to_string(root.join(".para/keys/public.pem")).unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let api = api().await;

    // Two servers with nothing to serve yet: alive, everything but the deploy API is 503.
    let a = serve(&empty, &database, &api, &public_key).await;
    let b = serve(&empty, &database, &api, &public_key).await;
    let r = http().get(b.url(&format!("/projects/{project}/sdk/me"))).send().await.unwrap();
    assert_eq!(r.status(), 503, "no release yet");
    let r = http().get(a.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503, "not ready without a release");
    assert_eq!(releases(&a).await, json!({ "current": null, "releases": [] }));

    // Release 1, pushed to A with `para push`: both serve it (B hears of it from the database).
    let file = root.join("src/integrations/custom.counter/workflows/versioned.ts");
    std::fs::write(&file, workflow_ts("v1")).unwrap();
    let said = para_deploy(&root, &["push", "--server", &a.base, "--message", "first"]).await;
    assert!(said.contains("pushed release 1"), "{said}");
    let listed = releases(&b).await;
    assert_eq!(listed["current"], 1, "{listed}");
    let hash1 = listed["releases"][0]["hash"].as_str().unwrap().to_string();
    assert_eq!(hash1, v1["buildHash"].as_str().unwrap(), "the pushed build is the one built");
    both_serve(&a, &b, &hash1).await;
    for server in [&a, &b] {
        let r = http().get(server.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 200, "ready once a release is served");
    }
    let (status, again) = push(&b, DEPLOY_KEY, &json!({ "build": v1 })).await;
    assert_eq!(
        (status, &again["created"], &again["release"]["number"]),
        (200, &json!(false), &json!(1))
    );

    let token = connect_basic(&root, &a, &project, "ann", "Counter", ("u", "p")).await;
    // Connected through A, seen through B.
    let me: Value = http()
        .get(b.url(&format!("/projects/{project}/sdk/me")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["integrations"]["custom.counter"]["enabled"], true, "{me}");

    // Bad pushes are refused with a reason; release 1 stays current.
    let (status, e) = push(&a, "wrong-key", &json!({ "build": v2 })).await;
    assert_eq!((status, e["code"].as_str()), (401, Some("deploy_key")), "{e}");
    let (status, e) = push(&a, DEPLOY_KEY, &json!({ "build": { "hello": "world" } })).await;
    assert_eq!((status, e["code"].as_str()), (400, Some("bad_build")), "{e}");
    let mut future = v2.clone();
    future["formatVersion"] = json!(99);
    let (status, e) = push(&a, DEPLOY_KEY, &json!({ "build": future })).await;
    assert_eq!((status, e["code"].as_str()), (422, Some("format_version")), "{e}");
    assert!(e["message"].as_str().unwrap().contains("upgrade"), "{e}");
    let mut other = v2.clone();
    other["project"]["projectId"] = json!("another-project");
    let (status, e) = push(&a, DEPLOY_KEY, &json!({ "build": other })).await;
    assert_eq!((status, e["code"].as_str()), (409, Some("other_project")), "{e}");
    let r = http()
        .post(a.url("/deploy/releases"))
        .bearer_auth(DEPLOY_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!((serving(&a).await, serving(&b).await), (hash1.clone(), hash1.clone()));

    // Steady load through both; release 2 pushed to A, then release 1 made current on B.
    std::fs::write(&file, workflow_ts("v2")).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = load(vec![a.base.clone(), b.base.clone()], &project, &token, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let push_started = Instant::now();
    let said = para_deploy(&root, &["push", "--server", &a.base, "--message", "second"]).await;
    assert!(said.contains("pushed release 2"), "{said}");
    let hash2 = releases(&a).await["releases"][0]["hash"].as_str().unwrap().to_string();
    assert_eq!(hash2, v2["buildHash"].as_str().unwrap());
    let switched = both_serve(&a, &b, &hash2).await;
    let push_done = Instant::now();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let rollback_started = Instant::now();
    para_deploy(&root, &["rollback", "1", "--server", &b.base]).await;
    let switched_back = both_serve(&a, &b, &hash1).await;
    let rollback_done = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = load.await.unwrap();
    eprintln!(
        "{} requests; both servers served release 2 {switched:?} after its push, release 1 {switched_back:?} after the rollback",
        sent.len()
    );

    // No request failed; those answered before a switch started have the old version, those
    // sent after it was through the new one.
    let failed: Vec<_> = sent.iter().filter(|s| s.status != 200).collect();
    assert!(failed.is_empty(), "requests failed: {failed:?}\n{}\n{}", a.output(), b.output());
    let versions = |from: Instant, to: Instant| -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for s in sent.iter().filter(|s| s.at >= from && s.done < to) {
            *out.entry(s.version.clone()).or_default() += 1;
        }
        out
    };
    let start = sent.iter().map(|s| s.at).min().unwrap();
    let before = versions(start, push_started);
    let during_2 = versions(push_done, rollback_started);
    let after = versions(rollback_done, Instant::now());
    assert_eq!(before.keys().collect::<Vec<_>>(), ["v1"], "{before:?}");
    assert_eq!(during_2.keys().collect::<Vec<_>>(), ["v2"], "{during_2:?}");
    assert_eq!(after.keys().collect::<Vec<_>>(), ["v1"], "{after:?}");

    // Every run succeeds, on the graph of the release it started on: its recorded build
    // hash, its response and its tail (run after the delay, maybe on the other server and
    // after a switch) agree.
    let store = Store::open(&database).await.unwrap();
    let filter =
        para_store::history::RunFilter { workflow_id: Some(WORKFLOW.into()), ..Default::default() };
    let deadline = Instant::now() + Duration::from_secs(60);
    let runs = loop {
        let page = store.list_runs(&project, &filter, 10_000, None).await.unwrap();
        let done = page.runs.iter().all(|l| l.run.status == RunStatus::Succeeded);
        if done && page.runs.len() == sent.len() {
            break page.runs;
        }
        assert!(
            Instant::now() < deadline,
            "runs did not all succeed: {:?}",
            page.runs.iter().map(|l| l.run.status).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let push_ms = para_store::now_ms() - push_started.elapsed().as_millis() as i64;
    let mut spanning = 0;
    for listed in &runs {
        let run = &listed.run;
        let expected = if run.build_hash == hash1 {
            "v1"
        } else {
            assert_eq!(run.build_hash, hash2, "a run of an unknown build");
            "v2"
        };
        let steps = store.run_steps(&run.id).await.unwrap();
        let (head, _) = step_version(&steps, "head");
        let (tail, tail_at) = step_version(&steps, "tail");
        assert_eq!((head.as_str(), tail.as_str()), (expected, expected), "run {}", run.id);
        if expected == "v1" && run.created_at < push_ms && tail_at.is_some_and(|t| t > push_ms) {
            spanning += 1;
        }
    }
    assert!(spanning > 0, "some runs of release 1 finished after release 2 was pushed");

    // Both servers' metrics show the runs they started and their latencies.
    let workflow = format!("workflow=\"{WORKFLOW}\"");
    let route = "route=\"/projects/{project}/sdk/triggers/{workflow}\"".to_string();
    let (mut started, mut succeeded, mut answered) = (0.0, 0.0, 0.0);
    for server in [&a, &b] {
        let m = scrape(server).await;
        let here = total(&m, "para_runs_started_total", &[&workflow, "trigger=\"request\""]);
        assert!(here > 0.0, "each server started runs: {m:?}");
        started += here;
        succeeded += total(&m, "para_runs_succeeded_total", &[&workflow]);
        answered += total(&m, "para_http_requests_total", &[&route, "status=\"200\""]);
        let steps = total(&m, "para_step_duration_seconds_count", &["ACTION/FUNCTION"]);
        assert!(steps > 0.0, "step latencies are recorded: {m:?}");
        let latencies = total(&m, "para_http_request_duration_seconds_count", &[&route]);
        assert!(latencies > 0.0, "request latencies are recorded: {m:?}");
    }
    // A run resumed after its delay is counted again where it resumes; every run succeeded.
    assert!(started >= runs.len() as f64, "{started} runs started for {}", runs.len());
    assert_eq!(succeeded, runs.len() as f64);
    assert_eq!(answered, sent.len() as f64, "every request answered 200, on either server");

    let listed = releases(&b).await;
    assert_eq!(listed["current"], 1);
    let numbers: Vec<_> =
        listed["releases"].as_array().unwrap().iter().map(|r| r["number"].clone()).collect();
    assert_eq!(numbers, [json!(2), json!(1)]);
    assert_eq!(listed["releases"][0]["message"], "second");
}
