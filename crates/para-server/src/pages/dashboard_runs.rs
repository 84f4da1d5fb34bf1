//! The dashboard's run history: `/dashboard/runs` (recent runs, filtered by workflow, user and
//! status, paged) and `/dashboard/runs/{id}` (a run and each of its steps, with a Replay
//! button). Behind the dashboard's admin key ([`crate::pages::dashboard::Admin`]).
//!
//! The Replay form is a POST carrying the CSRF token of the admin's session (the session
//! cookie is `SameSite=Strict` besides); a request authorised with `Authorization: Bearer`
//! (a script) needs none, as no other site can make a browser send that header.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use para_store::history::{Cursor, format_duration, format_time};
use para_store::runs::{Run, RunStatus};
use serde::Serialize;
use serde_json::Value;

use crate::pages::dashboard::{self, Admin};
use crate::pages::portal::{self, Form, Framing, STYLESHEET};
use crate::routes::history::{self, ListQuery};
use crate::state::AppState;

/// Runs per page.
const PAGE: i64 = 50;
/// The most of one JSON value a page shows.
const SHOWN_JSON: usize = 64 * 1024;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/dashboard/runs", get(runs))
        .route("/dashboard/runs/{id}", get(run_page))
        .route("/dashboard/runs/{id}/replay", post(replay))
}

/// A time for people, to the second: `2026-05-01 14:03:22 UTC`.
fn when(ms: i64) -> String {
    let iso = format_time(ms);
    format!("{} {} UTC", &iso[..10], &iso[11..19])
}

fn run_href(id: &str) -> String {
    format!("/dashboard/runs/{}", portal::segment(id))
}

/// Pretty JSON, cut at [`SHOWN_JSON`] bytes.
fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    if text.len() > SHOWN_JSON {
        let total = text.len();
        let mut cut = SHOWN_JSON;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(&format!("\n… ({total} bytes in all; the API answers the whole value)"));
    }
    text
}

fn page_error(status: StatusCode, heading: &str, text: String) -> Response {
    portal::message_page(status, Framing::Never, heading, vec![text], None)
}

// ---------------------------------------------------------------- the list

#[derive(Serialize)]
struct RunsPage {
    stylesheet: &'static str,
    accent: Option<String>,
    accent_ink: Option<String>,
    project_id: String,
    signed_in: bool,
    csrf: String,
    workflows: Vec<Choice>,
    statuses: Vec<Choice>,
    user: String,
    filtered: bool,
    runs: Vec<RunRow>,
    older: Option<String>,
    paged: bool,
    error: Option<String>,
}

#[derive(Serialize)]
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Serialize)]
struct RunRow {
    id: String,
    /// The id's start, for the table.
    id_short: String,
    href: String,
    when: String,
    status: String,
    workflow: String,
    integration: String,
    user_id: String,
    user_href: String,
    duration: String,
    steps: i64,
    error: Option<String>,
    /// The error's start, for the table.
    error_short: Option<String>,
}

/// `text` cut to `max` characters, with `…` when cut.
fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

fn run_row(build: &para_build::Build, run: &Run, steps: i64) -> RunRow {
    RunRow {
        id: run.id.clone(),
        id_short: short(&run.id, 13),
        href: run_href(&run.id),
        when: when(run.created_at),
        status: run.status.to_string(),
        workflow: history::workflow_name(build, run).unwrap_or_else(|| run.workflow_id.clone()),
        integration: run.integration.clone(),
        user_id: run.user_id.clone(),
        user_href: dashboard::user_href(&run.user_id),
        duration: history::duration(run.created_at, run.finished_at)
            .map(format_duration)
            .unwrap_or_else(|| "—".into()),
        steps,
        error: run.error.clone(),
        error_short: run.error.as_deref().map(|e| short(e, 120)),
    }
}

async fn runs(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    RawQuery(raw): RawQuery,
) -> Response {
    // The page's own parameter names (workflow, user) are the API's (workflowId, userId).
    let pairs: Vec<(String, String)> = raw
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let api = {
        // A block: the serializer is not `Send` and must not live across an await.
        let mut api = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            let name = match k.as_str() {
                "workflow" => "workflowId",
                "user" => "userId",
                "status" | "cursor" => k.as_str(),
                _ => continue,
            };
            api.append_pair(name, v);
        }
        api.finish()
    };
    let (query, error) = match ListQuery::parse(Some(&api)) {
        Ok(q) => (q, None),
        Err(e) => (ListQuery::parse(None).expect("no parameters parse"), Some(e.message)),
    };
    let page = match state
        .store
        .list_runs(&state.project_id, &query.filter, PAGE, query.cursor.as_ref())
        .await
    {
        Ok(page) => page,
        Err(e) => return dashboard::storage_error(e),
    };
    let build = state.build();
    let selected_workflow = query.filter.workflow_id.clone().unwrap_or_default();
    let mut workflows = Vec::new();
    for integration in build.integrations.values() {
        let mut list: Vec<&para_build::Workflow> = integration.workflows.values().collect();
        list.sort_by(|a, b| a.order.cmp(&b.order).then(a.name.cmp(&b.name)));
        for w in list {
            workflows.push(Choice {
                value: w.id.clone(),
                label: format!("{} · {}", integration.name, w.name),
                selected: w.id == selected_workflow,
            });
        }
    }
    let statuses = RunStatus::ALL
        .iter()
        .map(|&s| Choice {
            value: s.to_string(),
            label: s.to_string(),
            selected: query.filter.status == Some(s),
        })
        .collect();
    let older = page.next.as_ref().map(|next: &Cursor| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs.iter().filter(|(k, v)| k != "cursor" && !v.is_empty()) {
            q.append_pair(k, v);
        }
        q.append_pair("cursor", &next.encode());
        format!("/dashboard/runs?{}", q.finish())
    });
    let rows = page.runs.iter().map(|l| run_row(&build, &l.run, l.steps)).collect();
    let view = RunsPage {
        stylesheet: STYLESHEET,
        accent: None,
        accent_ink: None,
        project_id: state.project_id.clone(),
        signed_in: admin.by_cookie(),
        csrf: admin.csrf(),
        workflows,
        statuses,
        user: query.filter.user_id.clone().unwrap_or_default(),
        filtered: query.filter != Default::default(),
        runs: rows,
        older,
        paged: query.cursor.is_some(),
        error,
    };
    let status = if view.error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    dashboard::no_store(portal::html(
        status,
        portal::render("dashboard_runs.html", &view),
        Framing::Never,
    ))
}

// ---------------------------------------------------------------- one run

#[derive(Serialize)]
struct RunPageView {
    stylesheet: &'static str,
    accent: Option<String>,
    accent_ink: Option<String>,
    project_id: String,
    run: RunRow,
    workflow_id: String,
    in_build: bool,
    trigger_kind: String,
    finished: Option<String>,
    claims: i64,
    build_hash: String,
    trigger_input: String,
    response: Option<String>,
    steps: Vec<StepView>,
    csrf: String,
    replay_of: Option<ReplayLink>,
}

#[derive(Serialize)]
struct ReplayLink {
    id: String,
    href: String,
}

#[derive(Serialize)]
struct StepView {
    key: String,
    step_type: String,
    description: Option<String>,
    status: String,
    attempts: i64,
    started: String,
    duration: String,
    retry_at: Option<String>,
    input: Option<String>,
    output: Option<String>,
    error: Option<String>,
}

async fn run_page(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let run = match find_run(&state, &id).await {
        Ok(run) => run,
        Err(response) => return response,
    };
    let steps = match state.store.run_steps(&run.id).await {
        Ok(steps) => steps,
        Err(e) => return dashboard::storage_error(e),
    };
    let build = state.build();
    let workflow = history::workflow_of(&build, &run);
    let step_views = steps
        .iter()
        .map(|entry| {
            let step = history::step_of(workflow, entry);
            StepView {
                key: entry.key.clone(),
                step_type: step.map_or("—", history::step_type).to_string(),
                description: step.and_then(|s| s.description.clone()),
                status: entry.status.to_string(),
                attempts: entry.attempts,
                started: when(entry.started_at),
                duration: history::duration(entry.started_at, entry.finished_at)
                    .map(format_duration)
                    .unwrap_or_else(|| "—".into()),
                retry_at: entry.not_before.map(when),
                input: entry.input.as_ref().map(pretty),
                output: entry.output.as_ref().map(pretty),
                error: entry.error.clone(),
            }
        })
        .collect();
    let replay_of = raw
        .as_deref()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "replayOf"))
        .map(|(_, v)| ReplayLink { href: run_href(&v), id: v.into_owned() });
    let view = RunPageView {
        stylesheet: STYLESHEET,
        accent: None,
        accent_ink: None,
        project_id: state.project_id.clone(),
        run: run_row(&build, &run, steps.len() as i64),
        workflow_id: run.workflow_id.clone(),
        in_build: workflow.is_some(),
        trigger_kind: run.trigger_kind.clone(),
        finished: run.finished_at.map(when),
        claims: run.claims,
        build_hash: run.build_hash.chars().take(19).collect(),
        trigger_input: pretty(&run.trigger_input),
        response: run.response.as_ref().map(pretty),
        steps: step_views,
        csrf: admin.csrf(),
        replay_of,
    };
    dashboard::no_store(portal::html(
        StatusCode::OK,
        portal::render("dashboard_run.html", &view),
        Framing::Never,
    ))
}

async fn replay(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !admin.check_csrf(&Form::parse(&body)) {
        return dashboard::csrf_refused();
    }
    let run = match find_run(&state, &id).await {
        Ok(run) => run,
        Err(response) => return response,
    };
    match history::replay_run(&state, &run).await {
        Ok(new) => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("replayOf", &run.id);
            portal::see_other(&format!("{}?{}", run_href(&new.id), q.finish()), &[])
        }
        Err(e) => page_error(e.status, "The run could not be replayed", e.message),
    }
    .into_response()
}

/// The project's run `id`, or the page saying there is none (or that storage failed).
async fn find_run(state: &AppState, id: &str) -> Result<para_store::runs::Run, Response> {
    match state.store.run(&state.project_id, id).await {
        Ok(Some(run)) => Ok(run),
        Ok(None) => Err(page_error(
            StatusCode::NOT_FOUND,
            "No such run",
            format!("This project has no run “{id}”."),
        )),
        Err(e) => Err(dashboard::storage_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let long = Value::String("é".repeat(SHOWN_JSON));
        let shown = pretty(&long);
        assert!(shown.len() < SHOWN_JSON + 100);
        assert!(shown.ends_with("the API answers the whole value)"));
        assert_eq!(pretty(&serde_json::json!({"a": 1})), "{\n  \"a\": 1\n}");
        assert_eq!(when(1_676_874_103_751), "2023-02-20 06:21:43 UTC");
    }
}
