//! Run history over HTTP (issue 6 §5), in the shape of Paragon's Task History API:
//!
//! | route (under `/projects/{projectId}/task-history`) | what |
//! |---|---|
//! | `GET /workflow-executions` | runs, newest first, filtered and paged (`workflowExecutions`, `nextCursor`, `nextLink`) |
//! | `GET /workflow-executions/{executionId}` | one run with every journal entry (step) |
//! | `POST /workflow-executions/{executionId}/replay` | a new QUEUED run with the same trigger input (201) |
//!
//! Who may ask: `Authorization: Bearer <PARA_ADMIN_KEY>` sees every run of the project (as
//! Paragon's project-level API key does); a user token (the Connect API's) sees and replays
//! only that user's runs: another user's run answers 404, as a run that does not exist.
//! What the journal holds was redacted by the engine before it was written; it is shown as
//! stored.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use para_build::{Build, Step, Workflow};
use para_store::history::{Cursor, RunFilter, format_time, parse_time};
use para_store::runs::{NewRun, Run, RunStatus, StepRecord, StepStatus, Write};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::SdkUser;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(detail)).routes(routes!(replay))
}

/// A run as the list answers it (Paragon's `WorkflowExecution`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub id: String,
    pub user_id: String,
    pub integration: String,
    pub workflow_id: String,
    /// The workflow's name; `null` once the served build no longer has it.
    pub workflow_name: Option<String>,
    #[schema(schema_with = crate::openapi::run_status)]
    pub status: RunStatus,
    /// What started it: `event`, `request`, `cron`, `polling`, `connection`…
    pub trigger_kind: String,
    /// How many steps it recorded.
    pub task_count: i64,
    /// Milliseconds from start to end; `null` while it runs.
    pub run_duration: Option<i64>,
    pub date_started: String,
    pub date_ended: Option<String>,
    pub date_updated: String,
    pub error: Option<String>,
}

/// A page of runs, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionPage {
    pub workflow_executions: Vec<Execution>,
    /// Pass back as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
    /// The next page's URL; `null` on the last.
    pub next_link: Option<String>,
    /// How many runs match, with `includeTotal=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// One run with every journal entry.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDetail {
    #[serde(flatten)]
    pub execution: Execution,
    /// The build it ran with.
    pub build_hash: String,
    /// What its trigger gave (redacted as stored).
    pub trigger_input: Value,
    /// What its ResponseStep answered, if it has one.
    pub response: Option<Value>,
    /// Whether a worker took it up again after another stopped.
    pub resumed: bool,
    pub steps: Vec<StepView>,
}

/// A run started again (201).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Replayed {
    #[serde(flatten)]
    pub execution: Execution,
    /// The run replayed.
    pub replay_of: String,
}

/// A journal entry: one step's execution.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepView {
    /// Its register key (`createTask`, `createTask[2]` in a fan-out).
    pub key: String,
    pub step_id: String,
    /// The step's type (`ACTION/REQUEST`…), when the served build has it.
    #[serde(rename = "type")]
    pub kind: Option<&'static str>,
    pub description: Option<String>,
    #[schema(schema_with = crate::openapi::step_status)]
    pub status: StepStatus,
    pub attempts: i64,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    /// When it is tried again, while it waits.
    pub retry_at: Option<String>,
}

/// Page size when the request names none, and the most one page holds.
pub(crate) const DEFAULT_LIMIT: i64 = 100;
pub(crate) const MAX_LIMIT: i64 = 1000;

/// Who is asking for history.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Viewer {
    /// The admin key: every run of the project.
    Admin,
    /// A connected user: their own runs only.
    User(String),
}

impl Viewer {
    /// Whether the viewer may see (and replay) `run`.
    pub(crate) fn may_see(&self, run: &Run) -> bool {
        match self {
            Viewer::Admin => true,
            Viewer::User(user) => &run.user_id == user,
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        // The project is checked first, for both kinds of caller, as the Connect API does.
        let project = parts.uri.path().split('/').nth(2).unwrap_or_default();
        if project != state.project_id {
            return Err(ApiError::unauthorized(format!(
                "this server serves project {}, not {project}",
                state.project_id
            )));
        }
        let sent = crate::web::bearer(&parts.headers);
        if let (Some(sent), Some(admin_key)) =
            (sent, state.config.admin_key.as_deref().filter(|k| !k.is_empty()))
            && crate::web::same_secret(sent, admin_key)
        {
            return Ok(Viewer::Admin);
        }
        let user = SdkUser::from_request_parts(parts, state).await?;
        Ok(Viewer::User(user.user_id))
    }
}

// ---------------------------------------------------------------- views shared with the dashboard

/// The workflow a run ran, in the served build (`None` once a rebuild dropped it).
pub(crate) fn workflow_of<'b>(build: &'b Build, run: &Run) -> Option<&'b Workflow> {
    build.integrations.get(&run.integration)?.workflows.get(&run.workflow_id)
}

/// A workflow's display name, or its id when the served build no longer has it.
pub(crate) fn workflow_name(build: &Build, run: &Run) -> Option<String> {
    workflow_of(build, run).map(|w| w.name.clone())
}

/// The step of the build a journal entry records: by step id, else by its register key without
/// the fan-out indices (`createTask[2]` → `createTask`).
pub(crate) fn step_of<'w>(workflow: Option<&'w Workflow>, entry: &StepRecord) -> Option<&'w Step> {
    let steps = &workflow?.steps;
    let base = entry.key.split('[').next().unwrap_or(&entry.key);
    steps.iter().find(|s| s.id == entry.step_id).or_else(|| steps.iter().find(|s| s.key == base))
}

/// A step's type as the build writes it (`ACTION/REQUEST`, `TRIGGER/EVENT`…).
pub(crate) fn step_type(step: &Step) -> &'static str {
    step.kind.type_name()
}

/// Milliseconds from `start` to `end`, when both are known.
pub(crate) fn duration(start: i64, end: Option<i64>) -> Option<i64> {
    end.map(|end| (end - start).max(0))
}

/// A run as the list answers it.
pub(crate) fn execution_json(build: &Build, run: &Run, steps: i64) -> Execution {
    Execution {
        id: run.id.clone(),
        user_id: run.user_id.clone(),
        integration: run.integration.clone(),
        workflow_id: run.workflow_id.clone(),
        workflow_name: workflow_name(build, run),
        status: run.status,
        trigger_kind: run.trigger_kind.clone(),
        task_count: steps,
        run_duration: duration(run.created_at, run.finished_at),
        date_started: format_time(run.created_at),
        date_ended: run.finished_at.map(format_time),
        date_updated: format_time(run.updated_at),
        error: run.error.clone(),
    }
}

/// A journal entry as the detail answers it.
pub(crate) fn step_json(workflow: Option<&Workflow>, entry: &StepRecord) -> StepView {
    let step = step_of(workflow, entry);
    StepView {
        key: entry.key.clone(),
        step_id: entry.step_id.clone(),
        kind: step.map(step_type),
        description: step.and_then(|s| s.description.clone()),
        status: entry.status,
        attempts: entry.attempts,
        input: entry.input.clone(),
        output: entry.output.clone(),
        error: entry.error.clone(),
        started_at: format_time(entry.started_at),
        finished_at: entry.finished_at.map(format_time),
        duration_ms: duration(entry.started_at, entry.finished_at),
        retry_at: entry.not_before.map(format_time),
    }
}

/// Writes a new QUEUED run with `run`'s user, integration, workflow and trigger input, for
/// the served build (the engine's poller picks it up), journaled as a triggered run is: its
/// trigger step done, with the trigger input as output. Refused when the served build no
/// longer has the workflow. Returns the new run.
pub(crate) async fn replay_run(state: &AppState, run: &Run) -> Result<Run, ApiError> {
    let build = state.build();
    let Some(workflow) = workflow_of(&build, run) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "workflow_missing",
            format!(
                "workflow {} of integration {} is not in the served build; it cannot run again",
                run.workflow_id, run.integration
            ),
        ));
    };
    let id = uuid::Uuid::new_v4().to_string();
    let now = para_store::now_ms();
    let trigger = workflow.steps.iter().find(|s| workflow.trigger.as_ref() == Some(&s.id));
    let steps = trigger
        .map(|t| StepRecord {
            key: t.key.clone(),
            step_id: t.id.clone(),
            seq: 0,
            status: StepStatus::Done,
            attempts: 1,
            input: None,
            output: Some(run.trigger_input.clone()),
            error: None,
            not_before: None,
            started_at: now,
            finished_at: Some(now),
        })
        .into_iter()
        .collect();
    let create = Write::Create {
        run: NewRun {
            id: id.clone(),
            project_id: run.project_id.clone(),
            user_id: run.user_id.clone(),
            integration: run.integration.clone(),
            workflow_id: run.workflow_id.clone(),
            trigger_kind: run.trigger_kind.clone(),
            trigger_input: run.trigger_input.clone(),
            build_hash: build.build_hash.clone(),
            // A replay acts with the account the run acted with.
            credential_id: run.credential_id.clone(),
            configuration_id: run.configuration_id.clone(),
        },
        lease: None,
        steps,
    };
    state.store.apply(&[create]).await?;
    state
        .store
        .run(&run.project_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("the replayed run was not found after writing it"))
}

// ---------------------------------------------------------------- the list

/// The query of the list, decoded; unknown parameters are ignored.
pub(crate) struct ListQuery {
    pub filter: RunFilter,
    pub limit: i64,
    pub cursor: Option<Cursor>,
    pub include_total: bool,
    /// The request's own parameters, for the next page's link.
    pairs: Vec<(String, String)>,
}

impl ListQuery {
    pub(crate) fn parse(raw: Option<&str>) -> Result<ListQuery, ApiError> {
        let pairs: Vec<(String, String)> = raw
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let get = |names: &[&str]| {
            pairs
                .iter()
                .find(|(k, v)| names.contains(&k.as_str()) && !v.trim().is_empty())
                .map(|(_, v)| v.trim().to_string())
        };
        let time = |names: &[&str]| -> Result<Option<i64>, ApiError> {
            get(names)
                .map(|v| {
                    parse_time(&v).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "{}: `{v}` is not a time; give ISO-8601 (2026-05-01T14:00:00Z) or Unix milliseconds",
                            names[0]
                        ))
                    })
                })
                .transpose()
        };
        let status = get(&["status"])
            .map(|s| {
                s.to_ascii_uppercase().parse::<RunStatus>().map_err(|e| {
                    ApiError::bad_request(format!(
                        "status: `{s}` is not one of {}",
                        e.known.join(", ")
                    ))
                })
            })
            .transpose()?;
        let limit = match get(&["limit"]) {
            None => DEFAULT_LIMIT,
            Some(text) => {
                text.parse::<i64>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(
                    || ApiError::bad_request(format!("limit: give a number from 1 to {MAX_LIMIT}")),
                )?
            }
        };
        let cursor = get(&["cursor"])
            .map(|c| {
                Cursor::parse(&c).ok_or_else(|| {
                    ApiError::bad_request("cursor: pass back a nextCursor this API answered")
                })
            })
            .transpose()?;
        let filter = RunFilter {
            integration: get(&["integration"]),
            workflow_id: get(&["workflowId"]),
            user_id: get(&["userId"]),
            status,
            created_after: time(&["startDate", "afterDate"])?,
            created_before: time(&["endDate", "beforeDate"])?,
            updated_after: None,
        };
        let include_total = get(&["includeTotal"]).is_some_and(|v| v == "true" || v == "1");
        Ok(ListQuery { filter, limit, cursor, include_total, pairs })
    }

    /// This query with `cursor` replaced: the next page.
    pub(crate) fn with_cursor(&self, cursor: &Cursor) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.pairs.iter().filter(|(k, _)| k != "cursor") {
            query.append_pair(k, v);
        }
        query.append_pair("cursor", &cursor.encode());
        query.finish()
    }
}

/// Runs, newest first, filtered and paged.
#[utoipa::path(
    get,
    path = "/projects/{project}/task-history/workflow-executions",
    tag = "history",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"), ("integration" = Option<String>, Query, description = "Only this integration's runs"), ("workflowId" = Option<String>, Query, description = "Only this workflow's runs"), ("userId" = Option<String>, Query, description = "Only this user's runs (a user token sees only its own)"), ("status" = Option<String>, Query, description = "QUEUED, RUNNING, WAITING, SUCCEEDED or FAILED"), ("startDate" = Option<String>, Query, description = "Runs started at or after (ISO-8601 or Unix milliseconds; also `afterDate`)"), ("endDate" = Option<String>, Query, description = "Runs started before (also `beforeDate`)"), ("limit" = Option<i64>, Query, description = "Runs per page, 1 to 1000 (100)"), ("cursor" = Option<String>, Query, description = "A `nextCursor` this API answered"), ("includeTotal" = Option<bool>, Query, description = "Also count the matching runs")),
    security(("user_token" = [])),
    responses((status = 200, description = "A page of runs", body = ExecutionPage))
)]
async fn list(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut query = ListQuery::parse(raw.as_deref())?;
    if let Viewer::User(user) = &viewer {
        // A user's view is their own runs; asking for another user's finds nothing.
        if query.filter.user_id.as_ref().is_some_and(|asked| asked != user) {
            let body = ExecutionPage {
                workflow_executions: Vec::new(),
                next_cursor: None,
                next_link: None,
                total: None,
            };
            return Ok(no_store(Json(body).into_response()));
        }
        query.filter.user_id = Some(user.clone());
    }
    let page = state
        .store
        .list_runs(&state.project_id, &query.filter, query.limit, query.cursor.as_ref())
        .await?;
    let build = state.build();
    let executions = page.runs.iter().map(|l| execution_json(&build, &l.run, l.steps)).collect();
    let next_link = page.next.as_ref().map(|next| {
        format!(
            "{}/projects/{}/task-history/workflow-executions?{}",
            state.config.public_url,
            crate::web::segment(&state.project_id),
            query.with_cursor(next)
        )
    });
    let total = match query.include_total {
        true => Some(state.store.count_runs(&state.project_id, &query.filter).await?),
        false => None,
    };
    let body = ExecutionPage {
        workflow_executions: executions,
        next_cursor: page.next.as_ref().map(Cursor::encode),
        next_link,
        total,
    };
    Ok(no_store(Json(body).into_response()))
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The run, if it exists in the project and the viewer may see it; else 404 (the same answer
/// for both, so a user cannot learn which ids exist).
async fn visible_run(state: &AppState, viewer: &Viewer, id: &str) -> Result<Run, ApiError> {
    match state.store.run(&state.project_id, id).await? {
        Some(run) if viewer.may_see(&run) => Ok(run),
        _ => Err(ApiError::not_found(format!("no workflow execution {id}"))),
    }
}

/// One run with every journal entry (step).
#[utoipa::path(
    get,
    path = "/projects/{project}/task-history/workflow-executions/{execution}",
    tag = "history",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"), ("execution" = String, Path, description = "The run's id")),
    security(("user_token" = [])),
    responses((status = 200, description = "The run", body = ExecutionDetail))
)]
async fn detail(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((_project, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let run = visible_run(&state, &viewer, &id).await?;
    let steps = state.store.run_steps(&run.id).await?;
    let build = state.build();
    let workflow = workflow_of(&build, &run);
    let body = ExecutionDetail {
        execution: execution_json(&build, &run, steps.len() as i64),
        build_hash: run.build_hash.clone(),
        trigger_input: run.trigger_input.clone(),
        response: run.response.clone(),
        resumed: run.claims > 1,
        steps: steps.iter().map(|s| step_json(workflow, s)).collect(),
    };
    Ok(no_store(Json(body).into_response()))
}

/// A new QUEUED run with the same trigger input, for the served build.
#[utoipa::path(
    post,
    path = "/projects/{project}/task-history/workflow-executions/{execution}/replay",
    tag = "history",
    params(("project" = String, Path, description = "The project's id (`projectId` in `.para/project.json`)"), ("execution" = String, Path, description = "The run's id")),
    security(("user_token" = [])),
    responses((status = 201, description = "The new run (its URL in `Location`)", body = Replayed))
)]
async fn replay(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((_project, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let run = visible_run(&state, &viewer, &id).await?;
    let new = replay_run(&state, &run).await?;
    let steps = state.store.run_steps(&new.id).await?.len() as i64;
    let body =
        Replayed { execution: execution_json(&state.build(), &new, steps), replay_of: run.id };
    let location = format!(
        "/projects/{}/task-history/workflow-executions/{}",
        crate::web::segment(&state.project_id),
        crate::web::segment(&new.id)
    );
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(no_store(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_are_read_and_refused_with_reasons() {
        let q = ListQuery::parse(Some(
            "integration=slack&workflowId=w&userId=ann&status=failed&startDate=2026-05-01&endDate=1777680000000&limit=5&cursor=12.r1&includeTotal=true&other=x",
        ))
        .unwrap();
        assert_eq!(q.filter.integration.as_deref(), Some("slack"));
        assert_eq!(q.filter.workflow_id.as_deref(), Some("w"));
        assert_eq!(q.filter.user_id.as_deref(), Some("ann"));
        assert_eq!(q.filter.status, Some(RunStatus::Failed));
        assert_eq!(q.filter.created_after, Some(1_777_593_600_000));
        assert_eq!(q.filter.created_before, Some(1_777_680_000_000));
        assert_eq!((q.limit, q.include_total), (5, true));
        assert_eq!(q.cursor, Some(Cursor { created_at: 12, id: "r1".into() }));
        let next = q.with_cursor(&Cursor { created_at: 9, id: "r0".into() });
        assert!(next.ends_with("&other=x&cursor=9.r0") && !next.contains("12.r1"), "{next}");

        // Paragon's names for the window.
        let q =
            ListQuery::parse(Some("afterDate=2023-02-16T00:00:00&beforeDate=2023-02-23T00:00:00"))
                .unwrap();
        assert_eq!(q.filter.created_after, Some(1_676_505_600_000));
        assert_eq!(q.limit, DEFAULT_LIMIT);

        for bad in
            ["status=DONE", "limit=0", "limit=5000", "limit=x", "startDate=yesterday", "cursor=abc"]
        {
            let e = ListQuery::parse(Some(bad)).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        assert!(ListQuery::parse(None).unwrap().filter == RunFilter::default());
    }
}
