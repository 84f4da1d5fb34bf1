//! `para runs` against a prepared project and SQLite database: the list (newest last,
//! filters, workflow names from the build), one run's steps, `--follow`, and refusals.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use para_store::Store;
use para_store::runs::{Lease, NewRun, RunState, StepRecord, StepStatus, Write};
use serde_json::{Value, json};

use crate::common::para_command;

const WORKFLOW: &str = "0a6b2c3d-0000-4000-8000-000000000001";

fn para(root: &Path, args: &[&str]) -> Output {
    para_command().args(args).arg("--project").arg(root).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A project folder with `.para/project.json` and an `out/build.json` naming the workflow.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join(".para")).unwrap();
    std::fs::create_dir_all(root.join("src/integrations")).unwrap();
    std::fs::create_dir_all(root.join("out")).unwrap();
    std::fs::write(root.join(".para/project.json"), r#"{"projectId":"p1","projectName":"Runs"}"#)
        .unwrap();
    let step = |id: &str, key: &str, kind: &str, parameters: Value| {
        json!({ "id": id, "key": key, "type": kind, "parameters": parameters, "description": null,
                "autoRetry": false, "continueWorkflowOnError": false, "next": null, "source": null })
    };
    let build = json!({
        "formatVersion": 1, "buildHash": "sha256:test", "generator": "test",
        "project": { "projectId": "p1", "projectName": "Runs" },
        "persona": { "meta": null, "source": null },
        "events": {}, "resources": {}, "secrets": [],
        "integrations": { "slack": {
            "key": "slack", "kind": "catalog", "name": "Slack", "source": "src/integrations/slack",
            "config": { "description": null, "overview": null, "showWatermark": true, "active": true, "workflowDisplayOrder": [] },
            "inputs": [], "customTriggers": {},
            "workflows": { WORKFLOW: {
                "id": WORKFLOW, "name": "Post new tasks", "description": null, "order": 0,
                "defaultEnabled": true, "hidden": false, "inputs": [], "source": "w.ts",
                "trigger": "s-trigger", "permissions": null,
                "steps": [
                    step("s-trigger", "trigger", "TRIGGER/EVENT", json!({ "eventId": "e", "eventName": "Task Created" })),
                    step("s-post", "postMessage", "ACTION/FUNCTION", json!({ "code": "x", "parameters": [] })),
                ]
            } }
        } }
    });
    std::fs::write(root.join("out/build.json"), build.to_string()).unwrap();
    dir
}

async fn open(root: &Path) -> Store {
    Store::open(&format!("sqlite://{}", root.join(".para/para.db").display())).await.unwrap()
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
        step_id: if key == "trigger" { "s-trigger".into() } else { "s-post".into() },
        seq,
        status,
        attempts: if error.is_some() { 2 } else { 1 },
        input: Some(json!({ "channel": "#tasks" })),
        output,
        error: error.map(str::to_string),
        not_before: None,
        started_at: 10_000,
        finished_at: Some(11_250),
    }
}

/// Writes a run in `project` and leaves it as `state` (`None`: queued).
async fn add_run(
    store: &Store,
    project: &str,
    id: &str,
    user: &str,
    steps: Vec<StepRecord>,
    state: Option<RunState>,
) {
    let owner = format!("w-{id}");
    let lease = Lease { owner: owner.clone(), until: para_store::now_ms() + 60_000 };
    let create = Write::Create {
        run: NewRun {
            id: id.into(),
            project_id: project.into(),
            user_id: user.into(),
            integration: "slack".into(),
            workflow_id: WORKFLOW.into(),
            trigger_kind: "event".into(),
            trigger_input: json!({ "task": id }),
            build_hash: "sha256:test".into(),
            credential_id: None,
            configuration_id: None,
        },
        lease: state.is_some().then(|| lease.clone()),
        steps: vec![],
    };
    let mut writes = vec![create];
    if let Some(state) = state {
        writes.push(Write::Progress { run_id: id.into(), lease, steps, state, response: None });
    }
    store.apply(&writes).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
}

async fn seeded() -> (tempfile::TempDir, Store) {
    let dir = project();
    let store = open(dir.path()).await;
    let long = "z".repeat(500);
    let ok = vec![
        entry("trigger", 0, StepStatus::Done, Some(json!({ "task": "first" })), None),
        entry("postMessage", 1, StepStatus::Done, Some(json!({ "ts": "1.2", "text": long })), None),
    ];
    add_run(&store, "p1", "run-first", "ann", ok, Some(RunState::Succeeded)).await;
    let failed =
        vec![entry("postMessage", 1, StepStatus::Failed, None, Some("HTTP 404 channel_not_found"))];
    add_run(
        &store,
        "p1",
        "run-second",
        "bob",
        failed,
        Some(RunState::Failed("postMessage: HTTP 404".into())),
    )
    .await;
    add_run(&store, "p1", "run-third", "ann", vec![], None).await;
    add_run(&store, "other", "run-elsewhere", "ann", vec![], None).await;
    (dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_newest_last_with_names_and_filters() {
    let (dir, _store) = seeded().await;
    let out = para(dir.path(), &["runs"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].ends_with("run-first") && lines[2].ends_with("run-third"),
        "newest last: {text}"
    );
    assert!(
        lines[0].contains("SUCCEEDED")
            && lines[0].contains("Post new tasks")
            && lines[0].contains("ann")
    );
    assert!(lines[1].contains("FAILED") && lines[1].contains("bob"));
    assert!(lines[2].contains("QUEUED") && lines[2].contains('—'), "no duration yet: {}", lines[2]);
    assert!(!text.contains("run-elsewhere"), "another project's run");
    // The columns line up.
    let at = |l: &str| l.find("Post new tasks").unwrap();
    assert!(lines.iter().all(|l| at(l) == at(lines[0])), "{text}");

    let only = |args: &[&str]| -> Vec<String> {
        let out = para(dir.path(), args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out).lines().map(|l| l.rsplit(' ').next().unwrap().to_string()).collect()
    };
    assert_eq!(only(&["runs", "--user", "ann"]), ["run-first", "run-third"]);
    assert_eq!(only(&["runs", "--status", "failed"]), ["run-second"]);
    assert_eq!(
        only(&["runs", "--workflow", "post NEW tasks"]),
        ["run-first", "run-second", "run-third"]
    );
    assert_eq!(only(&["runs", "--workflow", WORKFLOW, "--limit", "1"]), ["run-third"]);
    assert!(only(&["runs", "--workflow", "Something else"]).is_empty());
    let none = para(dir.path(), &["runs", "--user", "nobody"]);
    assert!(none.status.success() && stderr(&none).contains("no run matches"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_shows_its_steps_outputs_and_errors() {
    let (dir, _store) = seeded().await;
    let out = para(dir.path(), &["runs", "run-first"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "run       run-first  SUCCEEDED",
        "workflow  Post new tasks",
        "user      ann",
        "1. trigger  TRIGGER/EVENT  DONE  1 attempt  1.2 s",
        "2. postMessage  ACTION/FUNCTION  DONE",
        "input  {\"channel\":\"#tasks\"}",
        "characters; --full shows all)",
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
    assert!(!text.contains(&"z".repeat(400)), "long outputs are cut");
    let full = stdout(&para(dir.path(), &["runs", "run-first", "--full"]));
    assert!(full.contains(&"z".repeat(500)) && full.contains("\"ts\": \"1.2\""), "{full}");

    let failed = stdout(&para(dir.path(), &["runs", "run-second"]));
    assert!(failed.contains("error     postMessage: HTTP 404"), "{failed}");
    assert!(
        failed.contains("FAILED  2 attempts")
            && failed.contains("error  HTTP 404 channel_not_found"),
        "{failed}"
    );

    let missing = para(dir.path(), &["runs", "run-elsewhere"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no run run-elsewhere in project p1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_prints_new_runs_and_status_changes() {
    let (dir, store) = seeded().await;
    let mut child = para_command()
        .args(["runs", "--follow", "--user", "ann", "--project"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("no line for {what}"))
    };
    assert!(next("the first run").ends_with("run-first"));
    assert!(next("the queued run").ends_with("run-third"));

    // run-third starts and succeeds; a new run of ann arrives; bob's never shows.
    let claimed = store.claim_runs("p1", "worker", 10, 60_000).await.unwrap();
    assert!(claimed.iter().any(|r| r.id == "run-third"));
    add_run(&store, "p1", "run-bob", "bob", vec![], None).await;
    add_run(&store, "p1", "run-fourth", "ann", vec![], None).await;
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("RUNNING") && l.ends_with("run-third"))
        || !seen.iter().any(|l: &String| l.ends_with("run-fourth"))
    {
        seen.push(next("run-third running and run-fourth"));
    }
    let done = Write::Progress {
        run_id: "run-third".into(),
        lease: Lease { owner: "worker".into(), until: 0 },
        steps: vec![],
        state: RunState::Succeeded,
        response: None,
    };
    assert_eq!(store.apply(&[done]).await.unwrap(), [true]);
    loop {
        let line = next("run-third succeeded");
        seen.push(line.clone());
        if line.contains("SUCCEEDED") && line.ends_with("run-third") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!seen.iter().any(|l| l.contains("run-bob")), "filtered by user: {seen:?}");
    let repeated = seen.iter().filter(|l| l.ends_with("run-fourth")).count();
    assert_eq!(repeated, 1, "a run is printed again only when its status changes: {seen:?}");
}

#[test]
fn a_missing_database_or_bad_filter_is_a_usage_error() {
    let dir = project();
    let out = para(dir.path(), &["runs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no database at"), "{}", stderr(&out));
    assert!(!dir.path().join(".para/para.db").exists(), "not created by reading");
    let out = para(dir.path(), &["runs", "--status", "done", "--database", "sqlite::memory:"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--status DONE is not a run status"), "{}", stderr(&out));
}
