//! `para serve --log-format json` at `PARA_LOG=debug`: a workflow that sends an environment
//! secret (`PARA_SECRET_…`) and a user's credential (basic auth) to an upstream runs, and the
//! whole log holds neither; every line is JSON; the run's lines carry its run id and the
//! request's lines the request id the answer names in `x-request-id`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde_json::{Value, json};

const INTEGRATION: &str = "custom.notes";
const WORKFLOW: &str = "5f1b4c73-9d8e-4a2a-8c3f-7e4a0b9d8c12";
/// The environment secret's value and the credential's password: neither may be logged.
const SECRET: &str = "env-secret-9f3b7c1d5e";
const PASSWORD: &str = "pw-credential-4a8e2b6f";

use crate::common::{Server, connect_basic, http_client as http, para_stdout as run_para};

const EVENT_TS: &str = r#"import { IEventInit } from '@useparagon/core/event';

const event: IEventInit<{ id: number }> = { name: 'Note', schema: { id: 1 } };

export default event;
"#;

const WORKFLOW_TS: &str = r#"import { EventStep, FunctionStep, IntegrationRequestStep, Workflow } from '@useparagon/core';
import note from '../../../events/note';

export default class extends Workflow<any, any, any> {
  define(integration: any, context: any, connectUser: any) {
    const trigger = new EventStep(note);
    const send = new IntegrationRequestStep({
      method: 'POST',
      url: `/notes/${trigger.output.id}`,
      params: {},
      headers: { 'x-api-secret': context.getEnvironmentSecret('NOTES_SECRET') },
      body: { secret: context.getEnvironmentSecret('NOTES_SECRET') },
      bodyType: 'json',
    });
    const echo = new FunctionStep({
      code: function echo(p: { secret: string }) { return { again: p.secret }; },
      parameters: { secret: context.getEnvironmentSecret('NOTES_SECRET') },
    });
    trigger.nextStep(send).nextStep(echo);
    return this.register({ trigger, send, echo });
  }

  name = 'Send note';
  description = 'logging test';
  inputs = {};
  defaultEnabled = true;
  hidden = false;
  readonly id = 'WORKFLOW_ID';
}
"#;

/// The project, built; its root and project id.
fn project(dir: &Path) -> (PathBuf, String) {
    let root = dir.join("project");
    run_para(dir, &["init", root.to_str().unwrap(), "--name", "logs"]);
    run_para(&root, &["new", "integration", "--custom", "Notes", "--auth", "basic"]);
    std::fs::create_dir_all(root.join("src/events")).unwrap();
    std::fs::write(root.join("src/events/note.ts"), EVENT_TS).unwrap();
    std::fs::write(
        root.join(format!("src/integrations/{INTEGRATION}/workflows/sendNote.ts")),
        WORKFLOW_TS.replace("WORKFLOW_ID", WORKFLOW),
    )
    .unwrap();
    run_para(&root, &["build", "--quiet"]);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(".para/project.json")).unwrap())
            .unwrap();
    (root, meta["projectId"].as_str().unwrap().to_string())
}

/// What the upstream received: each request's headers and body.
type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

async fn upstream() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push((headers, body));
            axum::Json(json!({ "ok": true }))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

/// The values of `key` in a JSON log line's spans.
fn span_values<'a>(line: &'a Value, key: &str) -> Vec<&'a str> {
    line["spans"].as_array().into_iter().flatten().filter_map(|span| span[key].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_secrets_logs_json_with_ids_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (root, project_id) = project(dir.path());
    let (api, seen) = upstream().await;
    let serve = Server::serve(&root)
        .arg("--log-format")
        .arg("json")
        .env("PARA_LOG", "debug")
        .env("PARA_SECRET_NOTES_SECRET", SECRET)
        .env("PARA_OAUTH_CUSTOM_NOTES_API_BASE_URL", &api)
        .start_async()
        .await;
    let base = serve.base.clone();
    let http = http();

    // Connect the user with a password, then send the event that starts the run.
    let token = connect_basic(&root, &serve, &project_id, "ann", "Notes", ("ann", PASSWORD)).await;
    let sdk = format!("{base}/projects/{project_id}/sdk");
    let event = http
        .post(format!("{sdk}/events/trigger"))
        .bearer_auth(&token)
        .json(&json!({ "name": "Note", "payload": { "id": 7 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(event.status(), 200);
    let request_id = event.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(!request_id.is_empty());

    // Wait for the run to stop (its last line) and for the upstream to have seen both values.
    let started = Instant::now();
    let text = loop {
        let text = serve.stderr.text();
        if text.contains("\"outcome\":\"succeeded\"") {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the run did not succeed; upstream saw {}; log:\n{text}",
            seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(serve);
    let basic = {
        let seen = seen.lock().unwrap();
        let (headers, body) = seen
            .iter()
            .find(|(_, body)| body.contains(SECRET))
            .expect("the upstream received the secret (else this test would prove nothing)");
        assert_eq!(headers["x-api-secret"], SECRET);
        let auth = headers["authorization"].to_str().unwrap().to_string();
        assert!(auth.starts_with("Basic "), "{auth} {body}");
        auth["Basic ".len()..].to_string()
    };

    // No secret anywhere: not the environment secret, not the password, not the header made
    // of it.
    for (what, value) in [
        ("the environment secret", SECRET),
        ("the password", PASSWORD),
        ("the basic credential", basic.as_str()),
    ] {
        assert!(!text.contains(value), "{what} is in the log:\n{text}");
    }

    // Every line is JSON; the run's lines carry its id; the request's lines its id.
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["level"].is_string() && l["timestamp"].is_string()));
    let stopped = lines.iter().find(|l| l["outcome"] == "succeeded").unwrap();
    let run_id = span_values(stopped, "run_id");
    assert_eq!(run_id.len(), 1, "{stopped}");
    let run_id = run_id[0];
    let run_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"].as_str().is_some_and(|t| t.starts_with("para_worker")))
        .collect();
    assert!(run_lines.len() >= 3, "step and run lines at debug: {run_lines:?}");
    for line in &run_lines {
        assert_eq!(span_values(line, "run_id"), [run_id], "{line}");
    }
    let answered: Vec<&Value> =
        lines.iter().filter(|l| span_values(l, "request_id") == [request_id.as_str()]).collect();
    assert!(
        answered.iter().any(|l| l["message"] == "answered" && l["status"] == 200),
        "the event's request logged with its id {request_id}: {answered:?}"
    );
}
