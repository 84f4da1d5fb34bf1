//! `para run <workflow> --user <id> [--payload JSON]`: executes one workflow now, in this
//! process, against the dev database (the user's connected accounts and settings there), and
//! prints each step as the journal records it. The run is a real one: it is recorded, shows in
//! `para runs` and the dashboard, and waits out its delays.

use std::collections::HashMap;
use std::time::Duration;

use std::sync::Arc;

use para_auth::SecretKey;
use para_connect::{Connect, ConnectConfig};
use para_store::runs::{RunStatus, StepStatus};
use para_worker::engine::{self, Start};
use para_worker::{Worker, WorkerConfig};
use serde_json::{Value, json};

use crate::cli::RunArgs;
use crate::commands::serve::{build_now, runtime};
use crate::{commands, config, output};

pub fn run(args: RunArgs) -> i32 {
    let root = match commands::project_root(args.project.project.as_deref()) {
        Ok(root) => root,
        Err(code) => return code,
    };
    let payload: Value = match serde_json::from_str(&args.payload) {
        Ok(v) => v,
        Err(e) => {
            output::error(
                format!("--payload is not JSON: {e}"),
                Some("quote it for the shell: --payload '{\"title\": \"Ship it\"}'"),
            );
            return commands::USAGE;
        }
    };
    let build = match build_now(&root, true) {
        Ok(build) => build,
        Err(code) => return code,
    };
    let workflow_id = match commands::runs::workflow_id(&args.workflow, Some(&build)) {
        Ok(id) => id,
        Err(code) => return code,
    };
    let Some((integration, workflow)) =
        build.workflow(&workflow_id).map(|(i, w)| (i.key.clone(), w.clone()))
    else {
        let names: Vec<String> = build
            .integrations
            .values()
            .flat_map(|i| i.workflows.values().map(|w| format!("“{}”", w.name)))
            .collect();
        output::error(
            format!("the project has no workflow “{}”", args.workflow),
            Some(&format!("name one of: {}", names.join(", "))),
        );
        return commands::USAGE;
    };
    // The same secret key and OAuth clients `para serve` would use (credentials were sealed
    // with the key; a refresh needs the client).
    let env = config::env();
    let settings = env.engine().and_then(|engine| Ok((engine, env.function_memory()?)));
    let (engine_config, function_memory) = match settings {
        Ok(settings) => settings,
        Err(e) => {
            output::error(e.to_string(), Some(config::DOCS));
            return commands::USAGE;
        }
    };
    para_worker::set_sandbox_memory_config(function_memory);
    let secrets = match SecretKey::from_value_or_dev(env.secret_key(), &root) {
        Ok(key) => key,
        Err(e) => {
            output::error(e.to_string(), e.hint().as_deref());
            return commands::USAGE;
        }
    };
    let oauth_clients = match para_connect::clients::load_oauth_clients_with(
        &root,
        env.oauth_vars(),
    ) {
        Ok(clients) => clients,
        Err(message) => {
            output::error(
                message,
                Some(
                    "fix .para/oauth-clients.json: docs/server.md § OAuth clients and endpoint overrides",
                ),
            );
            return commands::USAGE;
        }
    };
    let database = commands::database_or_default(&root, args.database.as_deref());
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let store = match commands::open_store(&database).await {
            Ok(store) => store,
            Err(code) => return code,
        };
        // No server: nothing is served, so there is no public URL (a run starts no OAuth flow).
        let config = ConnectConfig {
            public_url: String::new(),
            oauth_clients,
            outgoing_proxy: env.outgoing_proxy(),
            // A one-shot run exits before a batch of spans would be sent: traces are
            // `para serve`'s.
            traces: None,
        };
        let connect = Arc::new(Connect::new(config, build, store, secrets));
        // A run started by hand is not subject to workflows' permissions.
        let worker_config = WorkerConfig {
            project_root: root,
            permissions_from_token_only: false,
            env_secrets: env.env_secrets(),
            // `para run` starts no Triggers API sender.
            triggers_api: Default::default(),
            // Nor an alerts' sender: a server sends what this run records.
            alerts: Default::default(),
        };
        let state = Worker::new(connect, engine_config, worker_config);
        engine::start_workers(&state);
        if let Err(e) = state.store.touch_user(&state.project_id, &args.user, None).await {
            output::error(format!("cannot record the user: {e}"), None);
            return commands::FINDINGS;
        }
        let trigger = trigger_output(&workflow, payload);
        let start = Start {
            user_id: args.user.clone(),
            integration,
            workflow_id: workflow.id.clone(),
            trigger_kind: "manual".into(),
            trigger_output: trigger,
            user: None,
            credential_id: None,
            configuration_id: None,
        };
        let started = match engine::start_run(&state, start, false).await {
            Ok(s) => s,
            Err(e) => {
                output::error(e.to_string(), None);
                return commands::FINDINGS;
            }
        };
        output::say(format!("run {} of “{}” for {}", started.run_id, workflow.name, args.user));
        let types: HashMap<&str, &str> =
            workflow.steps.iter().map(|s| (s.id.as_str(), step_type(&s.kind))).collect();
        let mut shown: HashMap<String, (StepStatus, i64)> = HashMap::new();
        loop {
            let steps = state.store.run_steps(&started.run_id).await.unwrap_or_default();
            for step in &steps {
                let seen = (step.status, step.attempts);
                if shown.get(&step.key) == Some(&seen) {
                    continue;
                }
                shown.insert(step.key.clone(), seen);
                let kind = types.get(step.step_id.as_str()).copied().unwrap_or("step");
                let took = step
                    .finished_at
                    .map(|f| format!(" {} ms", (f - step.started_at).max(0)))
                    .unwrap_or_default();
                let line = match step.status {
                    StepStatus::Done => format!(
                        "  ✓ {} ({kind}{took}) → {}",
                        step.key,
                        step.output
                            .as_ref()
                            .map(|o| commands::runs::value(o, args.full))
                            .unwrap_or_default()
                    ),
                    StepStatus::Failed => format!(
                        "  ✗ {} ({kind}{took}): {}",
                        step.key,
                        step.error.as_deref().unwrap_or("failed")
                    ),
                    StepStatus::Waiting => {
                        let until = step.not_before.map(|t| (t - para_store::now_ms()).max(0));
                        let why = step
                            .error
                            .as_deref()
                            .map(|e| format!(" after: {e}"))
                            .unwrap_or_default();
                        format!("  … {} ({kind}) waits {} ms{why}", step.key, until.unwrap_or(0))
                    }
                };
                println!("{line}");
            }
            let run = state.store.run(&state.project_id, &started.run_id).await.ok().flatten();
            match run.as_ref().map(|r| r.status) {
                Some(RunStatus::Succeeded) => {
                    if let Some(response) = run.as_ref().and_then(|r| r.response.as_ref()) {
                        println!("response: {}", commands::runs::value(response, args.full));
                    }
                    output::say("succeeded");
                    engine::stop(&state).await;
                    return commands::SUCCESS;
                }
                Some(RunStatus::Failed) => {
                    let error = run.and_then(|r| r.error).unwrap_or_default();
                    output::error(
                        format!("the run failed: {error}"),
                        Some(&format!("para runs {}", started.run_id)),
                    );
                    engine::stop(&state).await;
                    return commands::FINDINGS;
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
}

/// The trigger's output for a payload: a request-triggered workflow receives it as the
/// request body (unless it is already `{request: …}`); other triggers receive it as it is.
fn trigger_output(workflow: &para_build::Workflow, payload: Value) -> Value {
    let endpoint = workflow.steps.iter().any(|s| {
        Some(&s.id) == workflow.trigger.as_ref()
            && matches!(s.kind, para_build::StepKind::Endpoint { .. })
    });
    if endpoint && payload.get("request").is_none() {
        return json!({ "request": { "body": payload, "headers": {}, "params": {} } });
    }
    payload
}

fn step_type(kind: &para_build::StepKind) -> &'static str {
    use para_build::StepKind as K;
    match kind {
        K::Request(_) => "request",
        K::IntegrationRequest(_) => "integration request",
        K::Function { .. } => "function",
        K::IntegrationAction { .. } => "action",
        K::Delay { .. } => "delay",
        K::Response { .. } => "response",
        K::Conditional { .. } => "condition",
        K::FanOut { .. } => "fan-out",
        _ => "trigger",
    }
}
