//! `para runs`: the project's workflow runs, read straight from the database `para serve`
//! writes (SQLite in WAL mode, so reading while the server writes is fine; or PostgreSQL).
//!
//! - `para runs [filters]`: one line per run, newest last: start time, status, workflow, user,
//!   duration, id.
//! - `--follow`: then polls, printing new runs and status changes as they happen.
//! - `para runs <run-id>`: the run and each step (type, status, attempts, timing, input,
//!   output and error, long values cut unless `--full`).
//!
//! Workflow names come from `out/build.json` when there is one; without it ids are shown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use para_build::Build;
use para_store::Store;
use para_store::history::{Cursor, MAX_PAGE, RunFilter, format_duration, format_time};
use para_store::runs::{Run, RunStatus, StepRecord};
use serde_json::Value;

use crate::cli::RunsArgs;
use crate::commands::serve::{BUILD_FILE, read_build};
use crate::{commands, output};

/// How often `--follow` looks for changes.
const POLL: Duration = Duration::from_millis(700);
/// How far before the newest write `--follow` looks again: a write stamped earlier may
/// commit later (the engine batches its commits).
const LOOKBACK_MS: i64 = 10_000;
/// The most of one value a step line shows without `--full`.
const SHOWN: usize = 200;

pub fn run(args: RunsArgs) -> i32 {
    let root = match commands::project_root(args.project.project.as_deref()) {
        Ok(root) => root,
        Err(code) => return code,
    };
    let build = read_build(&root.join(BUILD_FILE)).ok();
    let project_id = project_id(&root, build.as_ref());
    let url = match database_url(&root, args.database.as_deref()) {
        Ok(url) => url,
        Err(code) => return code,
    };
    let filter = match filter(&args, build.as_ref()) {
        Ok(filter) => filter,
        Err(code) => return code,
    };
    if args.limit < 1 || args.limit > MAX_PAGE {
        output::error(format!("--limit must be from 1 to {MAX_PAGE}"), None);
        return commands::USAGE;
    }
    let runtime = match commands::serve::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let store = match runtime.block_on(commands::open_store(&url)) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let names = Names::of(build.as_ref());
    let shown = match &args.run {
        Some(id) => runtime.block_on(show(&store, &project_id, id, &names, args.full)),
        None => list(&runtime, &store, &project_id, &filter, &args, &names),
    };
    shown.unwrap_or_else(|e| {
        output::error(format!("reading the database failed: {e}"), None);
        commands::FINDINGS
    })
}

/// The project id runs are recorded under: the build's (what the server serves), else the
/// project file's, else `default` (as the server does).
fn project_id(root: &Path, build: Option<&Build>) -> String {
    if let Some(id) = build.and_then(|b| b.project.project_id.clone()) {
        return id;
    }
    [".para/project.json", "paragon.json"]
        .iter()
        .filter_map(|f| std::fs::read(root.join(f)).ok())
        .filter_map(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .find_map(|v| v.get("projectId").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "default".into())
}

/// `--database`, or the project's SQLite file; a SQLite file must exist (opening would
/// create an empty one).
fn database_url(root: &Path, given: Option<&str>) -> Result<String, i32> {
    let url = commands::database_or_default(root, given);
    if let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let path = PathBuf::from(rest.split('?').next().unwrap_or(rest));
        if !rest.starts_with(":memory:") && !path.exists() {
            output::error(
                format!("no database at {}", path.display()),
                Some(
                    "runs are recorded by `para serve` or `para dev` in this project; pass --database for another one",
                ),
            );
            return Err(commands::USAGE);
        }
    }
    Ok(url)
}

fn filter(args: &RunsArgs, build: Option<&Build>) -> Result<RunFilter, i32> {
    let status = match args.status.as_deref().map(|s| s.to_ascii_uppercase().parse::<RunStatus>()) {
        Some(Err(e)) => {
            output::error(
                format!("--status {} is not a run status", e.value),
                Some("use queued, running, waiting, succeeded or failed"),
            );
            return Err(commands::USAGE);
        }
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let workflow_id = match args.workflow.as_deref() {
        None => None,
        Some(w) => Some(workflow_id(w, build)?),
    };
    Ok(RunFilter { workflow_id, user_id: args.user.clone(), status, ..RunFilter::default() })
}

/// A workflow given by id or by name (case-insensitive, in the build).
pub(crate) fn workflow_id(given: &str, build: Option<&Build>) -> Result<String, i32> {
    let Some(build) = build else { return Ok(given.to_string()) };
    let workflows: Vec<&para_build::Workflow> =
        build.integrations.values().flat_map(|i| i.workflows.values()).collect();
    if workflows.iter().any(|w| w.id == given) {
        return Ok(given.to_string());
    }
    let named: Vec<&&para_build::Workflow> =
        workflows.iter().filter(|w| w.name.eq_ignore_ascii_case(given.trim())).collect();
    match named.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Ok(given.to_string()),
        many => {
            let ids: Vec<&str> = many.iter().map(|w| w.id.as_str()).collect();
            output::error(
                format!("{} workflows are named “{given}”", many.len()),
                Some(&format!("pass one of their ids: {}", ids.join(", "))),
            );
            Err(commands::USAGE)
        }
    }
}

/// Workflow names and step types of the build, by id.
#[derive(Default)]
struct Names {
    workflows: HashMap<String, String>,
    build: Option<Build>,
}

impl Names {
    fn of(build: Option<&Build>) -> Names {
        let Some(build) = build else { return Names::default() };
        let workflows = build
            .integrations
            .values()
            .flat_map(|i| i.workflows.values())
            .map(|w| (w.id.clone(), w.name.clone()))
            .collect();
        Names { workflows, build: Some(build.clone()) }
    }

    fn workflow(&self, id: &str) -> String {
        self.workflows.get(id).cloned().unwrap_or_else(|| id.to_string())
    }

    /// The build's type of a journal entry's step (`ACTION/REQUEST`…), by step id or key.
    fn step_type(&self, run: &Run, entry: &StepRecord) -> Option<String> {
        let workflow = self
            .build
            .as_ref()?
            .integrations
            .get(&run.integration)?
            .workflows
            .get(&run.workflow_id)?;
        let base = entry.key.split('[').next().unwrap_or(&entry.key);
        let step = workflow
            .steps
            .iter()
            .find(|s| s.id == entry.step_id)
            .or_else(|| workflow.steps.iter().find(|s| s.key == base))?;
        serde_json::to_value(&step.kind).ok()?.get("type")?.as_str().map(str::to_string)
    }
}

/// `2026-05-01 14:03:22`, UTC.
fn when(ms: i64) -> String {
    let iso = format_time(ms);
    format!("{} {}", &iso[..10], &iso[11..19])
}

/// `text` cut to `max` characters (with `…`), padded to `width`.
fn cell(text: &str, max: usize, width: usize) -> String {
    let mut shown: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        shown.pop();
        shown.push('…');
    }
    format!("{shown:<width$}")
}

fn duration_of(run: &Run) -> String {
    run.finished_at.map(|end| format_duration(end - run.created_at)).unwrap_or_else(|| "—".into())
}

/// Column widths fitted to a batch of runs (at least the given minimums).
struct Widths {
    workflow: usize,
    user: usize,
}

impl Widths {
    const MAX_WORKFLOW: usize = 32;
    const MAX_USER: usize = 24;

    fn fit(runs: &[Run], names: &Names) -> Widths {
        let workflow = runs
            .iter()
            .map(|r| names.workflow(&r.workflow_id).chars().count())
            .max()
            .unwrap_or(8)
            .clamp(8, Self::MAX_WORKFLOW);
        let user = runs
            .iter()
            .map(|r| r.user_id.chars().count())
            .max()
            .unwrap_or(4)
            .clamp(4, Self::MAX_USER);
        Widths { workflow, user }
    }
}

fn line(run: &Run, names: &Names, w: &Widths) -> String {
    format!(
        "{}  {:<9}  {}  {}  {:>9}  {}",
        when(run.created_at),
        run.status,
        cell(&names.workflow(&run.workflow_id), Widths::MAX_WORKFLOW, w.workflow),
        cell(&run.user_id, Widths::MAX_USER, w.user),
        duration_of(run),
        run.id
    )
}

fn list(
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    project_id: &str,
    filter: &RunFilter,
    args: &RunsArgs,
    names: &Names,
) -> Result<i32, para_store::StoreError> {
    let page = runtime.block_on(store.list_runs(project_id, filter, args.limit, None))?;
    let mut runs: Vec<Run> = page.runs.into_iter().map(|l| l.run).collect();
    runs.reverse();
    let widths = Widths::fit(&runs, names);
    if runs.is_empty() && !args.follow {
        output::say(if *filter == RunFilter::default() {
            "no runs yet: they appear once a trigger starts a workflow (para serve / para dev)"
        } else {
            "no run matches"
        });
    }
    for run in &runs {
        println!("{}", line(run, names, &widths));
    }
    if !args.follow {
        return Ok(commands::SUCCESS);
    }
    // What is known now, printed or not: only later changes are printed.
    let mut newest = runs.iter().map(|r| r.updated_at).max().unwrap_or(0);
    let mut known: HashMap<String, RunStatus> =
        runs.iter().map(|r| (r.id.clone(), r.status)).collect();
    for run in runtime.block_on(changed_since(store, project_id, filter, newest - LOOKBACK_MS))? {
        newest = newest.max(run.updated_at);
        known.entry(run.id.clone()).or_insert(run.status);
    }
    loop {
        std::thread::sleep(POLL);
        let mut changed =
            runtime.block_on(changed_since(store, project_id, filter, newest - LOOKBACK_MS))?;
        changed.sort_by_key(|r| (r.updated_at, r.created_at));
        for run in changed {
            newest = newest.max(run.updated_at);
            if known.get(&run.id) != Some(&run.status) {
                println!("{}", line(&run, names, &widths));
                known.insert(run.id.clone(), run.status);
            }
        }
    }
}

/// Every run matching `filter` written at or after `since` (Unix ms).
async fn changed_since(
    store: &Store,
    project_id: &str,
    filter: &RunFilter,
    since: i64,
) -> Result<Vec<Run>, para_store::StoreError> {
    let filter = RunFilter { updated_after: Some(since), ..filter.clone() };
    let mut out = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = store.list_runs(project_id, &filter, MAX_PAGE, after.as_ref()).await?;
        out.extend(page.runs.into_iter().map(|l| l.run));
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(out),
        }
    }
}

/// A value on one line, cut at [`SHOWN`] characters (or whole and indented with `full`).
pub(crate) fn value(v: &Value, full: bool) -> String {
    if full {
        let pretty = serde_json::to_string_pretty(v).unwrap_or_default();
        return pretty.replace('\n', "\n              ");
    }
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    cut(&text)
}

fn cut(text: &str) -> String {
    let count = text.chars().count();
    if count <= SHOWN {
        return text.to_string();
    }
    let shown: String = text.chars().take(SHOWN).collect();
    format!("{shown}… ({count} characters; --full shows all)")
}

async fn show(
    store: &Store,
    project_id: &str,
    id: &str,
    names: &Names,
    full: bool,
) -> Result<i32, para_store::StoreError> {
    let Some(run) = store.run(project_id, id).await? else {
        output::error(
            format!("no run {id} in project {project_id}"),
            Some("list the runs with `para runs`"),
        );
        return Ok(commands::FINDINGS);
    };
    let steps = store.run_steps(&run.id).await?;
    println!("run       {}  {}", run.id, run.status);
    println!(
        "workflow  {} ({})  integration {}",
        names.workflow(&run.workflow_id),
        run.workflow_id,
        run.integration
    );
    println!("user      {}", run.user_id);
    println!("trigger   {}", run.trigger_kind);
    let finished =
        run.finished_at.map(|f| format!("  finished {} UTC", when(f))).unwrap_or_default();
    println!("started   {} UTC{finished}  ({})", when(run.created_at), duration_of(&run));
    if run.claims > 1 {
        println!("resumed   {} time(s) after a worker stopped", run.claims - 1);
    }
    if let Some(error) = &run.error {
        println!("error     {}", cut(error));
    }
    if let Some(response) = &run.response {
        println!("response  {}", value(response, full));
    }
    println!();
    if steps.is_empty() {
        println!("no steps recorded yet");
    }
    for (n, step) in steps.iter().enumerate() {
        let kind = names.step_type(&run, step).unwrap_or_else(|| "—".into());
        let took = step
            .finished_at
            .map(|f| format_duration(f - step.started_at))
            .unwrap_or_else(|| "—".into());
        let attempts = if step.attempts == 1 {
            "1 attempt".into()
        } else {
            format!("{} attempts", step.attempts)
        };
        println!("{:>3}. {}  {kind}  {}  {attempts}  {took}", n + 1, step.key, step.status);
        if let Some(at) = step.not_before {
            println!("       runs again at {} UTC", when(at));
        }
        if let Some(input) = &step.input {
            println!("       input  {}", value(input, full));
        }
        if let Some(output) = &step.output {
            println!("       output {}", value(output, full));
        }
        if let Some(error) = &step.error {
            println!("       error  {}", if full { error.clone() } else { cut(error) });
        }
    }
    Ok(commands::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_cut_and_padded() {
        assert_eq!(cell("ann", 24, 6), "ann   ");
        assert_eq!(cell("abcdefgh", 5, 5), "abcd…");
        assert_eq!(cut("short"), "short");
        let long = "x".repeat(SHOWN + 5);
        assert!(cut(&long).ends_with(&format!("… ({} characters; --full shows all)", SHOWN + 5)));
        assert_eq!(when(1_676_874_103_751), "2023-02-20 06:21:43");
    }
}
