//! The durable engine of a server process: it starts runs, leases due runs from the database,
//! executes them with [`para_engine::run::execute`] and records their journals.
//!
//! - A run is written before its trigger is acknowledged. A run started here is written
//!   already leased to this process and executed at once; runs queued by others (cron, a
//!   replay), runs whose wait is over, and runs whose worker died (lease expired) are claimed
//!   by the poller.
//! - Writes of all running runs go through one committer task that batches them into one
//!   transaction (group commit), fenced per run by its lease.
//! - Leases are renewed for every run this process holds; a graceful shutdown gives them back.
//! - Concurrency is bounded per process and per connected user.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use para_build::{Step, StepKind, Workflow};
use para_engine::run::{
    self, EntryStatus, Host, HttpRequest, HttpResponse, JournalEntry, LeaseLost, Outcome,
    RunContext, StepError,
};
use para_store::runs::{Lease, NewRun, Run, RunState, StepRecord, StepStatus, Write};
use para_store::{CredentialStatus, SettingsKey, now_ms};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tracing::Instrument as _;

use crate::{Error, Worker};

/// Tunables (`PARA_ENGINE_*` for `para serve`).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long a lease lasts without renewal: how soon another process resumes the runs of
    /// one that died.
    pub lease_ms: i64,
    /// How often the poller looks for due runs when nothing woke it.
    pub poll_ms: u64,
    /// Runs executing at once in this process.
    pub concurrency: usize,
    /// Runs of one connected user executing at once in this process.
    pub per_user: usize,
    pub options: run::Options,
    pub function_limits: para_js::FunctionLimits,
    /// Timeout of one HTTP request of a step.
    pub request_timeout: Duration,
    /// Poll catalog polling triggers this often instead of the catalog's interval.
    pub trigger_poll_ms: Option<i64>,
    /// Retry a failed webhook registration or removal this soon (then five times longer each
    /// time) instead of after 10 s.
    pub subscription_retry_ms: Option<i64>,
}

impl Default for EngineConfig {
    /// The defaults; `para-cli`'s `config.rs` overrides them from `PARA_ENGINE_*`
    /// (docs/configuration.md).
    fn default() -> Self {
        EngineConfig {
            lease_ms: 30_000,
            poll_ms: 500,
            concurrency: 256,
            per_user: 32,
            options: run::Options::default(),
            function_limits: para_js::FunctionLimits::default(),
            request_timeout: Duration::from_secs(30),
            trigger_poll_ms: None,
            subscription_retry_ms: None,
        }
    }
}

/// Writes committed together (in one transaction, in order); the answer is the first's.
struct Commit {
    writes: Vec<Write>,
    done: oneshot::Sender<bool>,
}

/// The engine's state in [`Worker`].
pub struct Engine {
    /// This process's name in leases.
    pub worker: String,
    pub config: EngineConfig,
    commits: mpsc::UnboundedSender<Commit>,
    commits_rx: Mutex<Option<mpsc::UnboundedReceiver<Commit>>>,
    /// Request-triggered runs waiting for their ResponseStep, by run id.
    waiters: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    wake: Notify,
    slots: Arc<Semaphore>,
    users: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// `.para/secrets.json` opened, with the modification time it was read at.
    stored_secrets: Mutex<Option<(Option<std::time::SystemTime>, Arc<StoredSecrets>)>>,
    /// Builds of releases runs started on, by hash, read when a run of one resumes after the
    /// served build changed (`None`: no release has that hash, a build of a project folder).
    releases: Mutex<HashMap<String, Option<Arc<para_build::Build>>>>,
    /// Runs this process holds and executes (their leases are renewed).
    active: Mutex<std::collections::HashSet<String>>,
    started: AtomicBool,
    /// The state the engine runs in, set by [`start`].
    state: std::sync::OnceLock<std::sync::Weak<Worker>>,
}

/// What starts a run.
#[derive(Debug, Clone)]
pub struct Start {
    pub user_id: String,
    pub integration: String,
    pub workflow_id: String,
    /// `event`, `request`, `cron`, `integration_enabled`, `replay`…
    pub trigger_kind: String,
    /// The trigger step's output.
    pub trigger_output: Value,
    /// The user's data when the trigger already read it.
    pub user: Option<Arc<UserData>>,
    /// The account the run acts with, when the trigger named one (checked to be one of the
    /// user's valid credentials of the integration); `None`: the newest valid one.
    pub credential_id: Option<String>,
    /// The configuration whose settings the run reads (one made with `createConfiguration`);
    /// `None`: the integration-level settings.
    pub configuration_id: Option<String>,
}

/// A run just written.
pub struct Started {
    pub run_id: String,
    /// The ResponseStep's answer, when asked for.
    pub response: Option<oneshot::Receiver<Value>>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        let (tx, rx) = mpsc::unbounded_channel();
        Engine {
            worker: format!("para-{}", uuid::Uuid::new_v4()),
            slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
            config,
            commits: tx,
            commits_rx: Mutex::new(Some(rx)),
            waiters: Mutex::default(),
            wake: Notify::new(),
            users: Mutex::default(),
            active: Mutex::default(),
            stored_secrets: Mutex::default(),
            releases: Mutex::default(),
            started: AtomicBool::new(false),
            state: std::sync::OnceLock::new(),
        }
    }

    /// Commits one write through the group committer; false: the lease was lost (or the
    /// database failed, which the run treats the same way: it stops and is resumed later).
    async fn commit(&self, write: Write) -> bool {
        self.send(write).await.unwrap_or(false)
    }

    /// Queues a write for the committer; the answer comes when it is committed. Writes are
    /// committed in the order they are queued.
    fn send(&self, write: Write) -> oneshot::Receiver<bool> {
        self.send_all(vec![write])
    }

    /// [`Engine::send`] of writes that commit in the same transaction; the answer is the
    /// first's.
    fn send_all(&self, writes: Vec<Write>) -> oneshot::Receiver<bool> {
        let (done, answer) = oneshot::channel();
        let _ = self.commits.send(Commit { writes, done });
        answer
    }

    fn user_slots(&self, user: &str) -> Arc<Semaphore> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if users.len() > 10_000 {
            users.retain(|_, s| s.available_permits() < self.config.per_user);
        }
        users
            .entry(user.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.per_user.max(1))))
            .clone()
    }

    fn lease(&self) -> Lease {
        Lease { owner: self.worker.clone(), until: now_ms() + self.config.lease_ms }
    }
}

/// Starts the committer, the poller and the lease renewer, not the cron scheduler (`para
/// run`). False when already started.
pub fn start_workers(state: &Arc<Worker>) -> bool {
    let engine = &state.engine;
    if engine.started.swap(true, Ordering::SeqCst) {
        return false;
    }
    let _ = engine.state.set(Arc::downgrade(state));
    let rx = engine.commits_rx.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(rx) = rx {
        tokio::spawn(committer(state.clone(), rx));
    }
    tokio::spawn(poller(state.clone()));
    true
}

/// Gives back this process's leases (graceful shutdown) so another process resumes its runs
/// at once.
pub async fn stop(state: &Worker) {
    if let Err(e) = state.store.release_leases(&state.engine.worker).await {
        tracing::error!(error = %e, "could not release run leases");
    }
}

/// Commits the queued writes in batches, and renews the leases of the runs executing here.
/// Both on this one task, so this process's transactions on its runs never wait for each
/// other (PostgreSQL could otherwise find a renewal and a batch deadlocked).
async fn committer(state: Arc<Worker>, mut rx: mpsc::UnboundedReceiver<Commit>) {
    let engine = &state.engine;
    let period = Duration::from_millis((engine.config.lease_ms / 3).max(50) as u64);
    let mut renew = tokio::time::interval(period);
    let mut batch: Vec<Commit> = Vec::new();
    loop {
        let first = tokio::select! {
            first = rx.recv() => match first {
                Some(first) => first,
                None => return,
            },
            _ = renew.tick() => {
                let ids: Vec<String> =
                    engine.active.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
                if !ids.is_empty()
                    && let Err(e) =
                        state.store.renew_leases(&engine.worker, &ids, engine.config.lease_ms).await
                {
                    tracing::error!(error = %e, "renewing run leases failed");
                }
                continue;
            }
        };
        batch.push(first);
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let writes: Vec<Write> = batch.iter().flat_map(|c| c.writes.iter().cloned()).collect();
        match state.store.apply(&writes).await {
            Ok(results) => {
                let mut results = results.into_iter();
                for commit in batch.drain(..) {
                    let ok = results.next().unwrap_or(false);
                    results.by_ref().take(commit.writes.len().saturating_sub(1)).for_each(drop);
                    let _ = commit.done.send(ok);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "recording runs failed");
                for commit in batch.drain(..) {
                    let _ = commit.done.send(false);
                }
            }
        }
    }
}

/// Leases due runs: at once when woken (a run queued or a wait over in this process), else
/// on an interval that doubles while nothing is due, up to the longest idle wait (half a lease,
/// at most 5 s: how late another process's parked or orphaned run may be picked up). Whether
/// anything is due is asked on a read connection first, so an idle server does not take the
/// writer.
async fn poller(state: Arc<Worker>) {
    let engine = &state.engine;
    let busy = Duration::from_millis(engine.config.poll_ms.max(1));
    let idle_max =
        Duration::from_millis((engine.config.lease_ms / 2).clamp(1, 5_000) as u64).max(busy);
    let mut wait = busy;
    loop {
        let woken = tokio::time::timeout(wait, engine.wake.notified()).await.is_ok();
        let free = engine.slots.available_permits().min(64);
        if free == 0 {
            continue;
        }
        if !woken {
            match state.store.runs_due(&state.project_id).await {
                Ok(false) => {
                    wait = (wait * 2).min(idle_max);
                    continue;
                }
                Ok(true) => {}
                Err(e) => tracing::error!(error = %e, "looking for due runs failed"),
            }
        }
        wait = busy;
        let claimed = state
            .store
            .claim_runs(&state.project_id, &engine.worker, free as i64, engine.config.lease_ms)
            .await;
        match claimed {
            Ok(runs) => {
                let full = runs.len() == free;
                for run in runs {
                    tokio::spawn(execute(state.clone(), run, None));
                }
                if full {
                    engine.wake.notify_one();
                }
            }
            Err(e) => tracing::error!(error = %e, "claiming runs failed"),
        }
    }
}

/// The workflow and its integration key in the served build.
pub fn find_workflow(state: &Worker, workflow_id: &str) -> Option<(String, Workflow)> {
    let build = state.build();
    build.workflow(workflow_id).map(|(i, w)| (i.key.clone(), w.clone()))
}

/// The workflow a claimed run goes on with: that of the build it started on, when that was a
/// release and another is served now (a run finishes on the graph it started on); else the
/// served build's (a project folder's builds are not kept).
async fn run_workflow(state: &Worker, run: &Run) -> Option<Workflow> {
    let served = state.build();
    let build = if served.build_hash == run.build_hash {
        served
    } else {
        release_build(state, &run.build_hash).await.unwrap_or(served)
    };
    build.workflow(&run.workflow_id).map(|(_, w)| w.clone())
}

/// The build of the release with this hash, read once per process.
async fn release_build(state: &Worker, hash: &str) -> Option<Arc<para_build::Build>> {
    /// Builds kept at most: runs of many releases at once are rare.
    const KEPT: usize = 16;
    if let Some(known) = state.engine.releases.lock().unwrap_or_else(|e| e.into_inner()).get(hash) {
        return known.clone();
    }
    let found = match state.store.release_build_by_hash(hash).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "reading a run's release failed");
            return None;
        }
    };
    let build = found.and_then(|(release, text)| match serde_json::from_str(&text) {
        Ok(build) => Some(Arc::new(build)),
        Err(e) => {
            tracing::error!(release = release.number, error = %e, "a stored release cannot be read");
            None
        }
    });
    let mut kept = state.engine.releases.lock().unwrap_or_else(|e| e.into_inner());
    if kept.len() >= KEPT {
        kept.clear();
    }
    kept.insert(hash.to_string(), build.clone());
    build
}

fn trigger_entry(workflow: &Workflow, output: &Value, at: i64) -> Option<StepRecord> {
    let trigger = workflow.steps.iter().find(|s| Some(&s.id) == workflow.trigger.as_ref())?;
    Some(StepRecord {
        key: trigger.key.clone(),
        step_id: trigger.id.clone(),
        seq: 0,
        status: StepStatus::Done,
        attempts: 1,
        input: None,
        output: Some(output.clone()),
        error: None,
        not_before: None,
        started_at: at,
        finished_at: Some(at),
    })
}

fn new_run(state: &Worker, start: &Start, build_hash: &str) -> NewRun {
    NewRun {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: state.project_id.clone(),
        user_id: start.user_id.clone(),
        integration: start.integration.clone(),
        workflow_id: start.workflow_id.clone(),
        trigger_kind: start.trigger_kind.clone(),
        trigger_input: start.trigger_output.clone(),
        build_hash: build_hash.to_string(),
        credential_id: start.credential_id.clone(),
        configuration_id: start.configuration_id.clone(),
    }
}

/// Writes a run leased to this process and executes it here. Returns once the run is durable.
pub async fn start_run(
    state: &Worker,
    start: Start,
    want_response: bool,
) -> Result<Started, Error> {
    let Some(owner) = state.engine.state.get().and_then(std::sync::Weak::upgrade) else {
        return Err(Error::EngineStopped);
    };
    // One snapshot: the run records the build whose workflow it executes.
    let build = state.build();
    let workflow = build
        .workflow(&start.workflow_id)
        .map(|(_, w)| w.clone())
        .ok_or_else(|| Error::NoWorkflow(start.workflow_id.clone()))?;
    let run = new_run(state, &start, &build.build_hash);
    let now = now_ms();
    let steps: Vec<StepRecord> =
        trigger_entry(&workflow, &start.trigger_output, now).into_iter().collect();
    let engine = &state.engine;
    let response = want_response.then(|| {
        let (tx, rx) = oneshot::channel();
        engine.waiters.lock().unwrap_or_else(|e| e.into_inner()).insert(run.id.clone(), tx);
        rx
    });
    let run_id = run.id.clone();
    let create = Write::Create { run: run.clone(), lease: Some(engine.lease()), steps };
    let created = engine.send(create);
    // A trigger that waits for the response is answered after the run's last write, which
    // is committed after this one: the run may start before this commit returns (its side
    // effects wait for it). Otherwise the trigger is acknowledged once the run is recorded.
    let created = if want_response {
        Some(created)
    } else {
        if !created.await.unwrap_or(false) {
            return Err(Error::NotRecorded);
        }
        None
    };
    let stored = Run {
        id: run.id,
        project_id: run.project_id,
        user_id: run.user_id,
        integration: run.integration,
        workflow_id: run.workflow_id,
        trigger_kind: run.trigger_kind,
        trigger_input: run.trigger_input,
        build_hash: run.build_hash,
        status: para_store::RunStatus::Running,
        error: None,
        response: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
        not_before: 0,
        claims: 1,
        credential_id: run.credential_id,
        configuration_id: run.configuration_id,
    };
    let fresh = Fresh { workflow, user: start.user, created };
    tokio::spawn(execute(owner, stored, Some(fresh)));
    Ok(Started { run_id, response })
}

/// What a run started in this process brings along.
struct Fresh {
    workflow: Workflow,
    user: Option<Arc<UserData>>,
    /// The run's creation, when it was not awaited.
    created: Option<oneshot::Receiver<bool>>,
}

/// Writes a queued run for whichever process claims it first (cron ticks, replays).
pub async fn enqueue(state: &Worker, start: Start) -> Result<String, Error> {
    let (_, workflow) = find_workflow(state, &start.workflow_id)
        .ok_or_else(|| Error::NoWorkflow(start.workflow_id.clone()))?;
    let write = queued(state, &workflow, &start);
    let Write::Create { run, .. } = &write else { unreachable!("queued makes a Create") };
    let id = run.id.clone();
    state.store.apply(&[write]).await?;
    wake(state);
    Ok(id)
}

/// The write of a queued run (not leased: any process may claim it).
pub fn queued(state: &Worker, workflow: &Workflow, start: &Start) -> Write {
    let run = new_run(state, start, &state.build().build_hash);
    let steps = trigger_entry(workflow, &start.trigger_output, now_ms()).into_iter().collect();
    Write::Create { run, lease: None, steps }
}

/// Tells the poller queued runs are waiting.
pub fn wake(state: &Worker) {
    state.engine.wake.notify_one();
}

/// A journal entry's status as the store keeps it (the engine knows nothing of the store).
fn to_store(status: EntryStatus) -> StepStatus {
    match status {
        EntryStatus::Done => StepStatus::Done,
        EntryStatus::Failed => StepStatus::Failed,
        EntryStatus::Waiting => StepStatus::Waiting,
    }
}

/// A stored journal entry's status as the engine reads it.
fn to_engine(status: StepStatus) -> EntryStatus {
    match status {
        StepStatus::Done => EntryStatus::Done,
        StepStatus::Failed => EntryStatus::Failed,
        StepStatus::Waiting => EntryStatus::Waiting,
    }
}

fn to_entry(r: StepRecord) -> JournalEntry {
    JournalEntry {
        status: to_engine(r.status),
        key: r.key,
        step_id: r.step_id,
        seq: r.seq,
        attempts: r.attempts,
        input: r.input,
        output: r.output,
        error: r.error,
        not_before: r.not_before,
        started_at: r.started_at,
        finished_at: r.finished_at,
    }
}

fn to_record(e: JournalEntry) -> StepRecord {
    StepRecord {
        key: e.key,
        step_id: e.step_id,
        seq: e.seq,
        status: to_store(e.status),
        attempts: e.attempts,
        input: e.input,
        output: e.output,
        error: e.error,
        not_before: e.not_before,
        started_at: e.started_at,
        finished_at: e.finished_at,
    }
}

/// Executes (or resumes) a run this process holds the lease of, in a `run` span carrying the
/// run id: every line logged while it executes names the run.
async fn execute(state: Arc<Worker>, run: Run, fresh: Option<Fresh>) {
    let span = tracing::info_span!("run", run_id = %run.id, workflow_id = %run.workflow_id);
    execute_in_span(state, run, fresh).instrument(span).await;
}

async fn execute_in_span(state: Arc<Worker>, run: Run, fresh: Option<Fresh>) {
    let engine = &state.engine;
    let id = run.id.clone();
    engine.active.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone());
    tracing::debug!(resumed = fresh.is_none(), "executing the run");
    let written = execute_held(state.clone(), run, fresh).await;
    engine.active.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    // Stopped without recording how the run stands (a database error, a lost lease): give the
    // lease back (a no-op if another process holds it now) so the run resumes at once.
    if !written && let Err(e) = state.store.release_lease(&engine.worker, &id).await {
        tracing::error!(run_id = %id, error = %e, "releasing a run failed");
    }
}

/// Executes a run this process holds; true when its outcome was recorded.
async fn execute_held(state: Arc<Worker>, run: Run, fresh: Option<Fresh>) -> bool {
    let (workflow, user, created) = match fresh {
        Some(f) => (Some(f.workflow), f.user, f.created),
        None => (None, None, None),
    };
    let fresh = workflow.is_some();
    let engine = &state.engine;
    let Ok(_slot) = engine.slots.clone().acquire_owned().await else { return false };
    let Ok(_user_slot) = engine.user_slots(&run.user_id).acquire_owned().await else {
        return false;
    };
    // Counted once per run: a run claimed again (after a wait, or from a process that died)
    // has been claimed before.
    if run.claims <= 1 {
        let metrics = &state.telemetry.metrics;
        metrics.runs_started.inc(&[&run.workflow_id, &run.trigger_kind]);
    }
    let host = ServerHost {
        state: state.clone(),
        run_id: run.id.clone(),
        workflow_id: run.workflow_id.clone(),
        trigger_kind: run.trigger_kind.clone(),
        created_at: run.created_at,
        workflow: std::sync::OnceLock::new(),
        user_id: run.user_id.clone(),
        integration: run.integration.clone(),
        credential_id: run.credential_id.clone(),
        pending: Mutex::default(),
        response: Mutex::default(),
        delivered: AtomicBool::new(false),
        created: tokio::sync::Mutex::new(created),
        recorded: std::sync::atomic::AtomicU8::new(0),
    };
    let workflow = match workflow {
        Some(w) => Some(w),
        None => run_workflow(&state, &run).await,
    };
    let workflow = match workflow {
        // Kept in the host, which names the kinds of the steps it records.
        Some(w) => host.workflow.get_or_init(|| w),
        None => {
            let message =
                format!("the workflow `{}` is not in the served build any more", run.workflow_id);
            return host.finish(Outcome::Failed(message)).await;
        }
    };
    // A run started here has only its trigger; a claimed one reads its journal.
    let journal = if !fresh {
        match state.store.run_steps(&run.id).await {
            Ok(steps) => steps.into_iter().map(to_entry).collect(),
            Err(e) => {
                tracing::error!(error = %e, "reading the run's journal failed");
                return false;
            }
        }
    } else {
        Vec::new()
    };
    let context = match run_context(&state, &run, workflow, user).await {
        Ok(c) => c,
        Err(message) => return host.finish(Outcome::Failed(message)).await,
    };
    let outcome = run::execute(
        &host,
        workflow,
        &context,
        run.trigger_input.clone(),
        journal,
        &engine.config.options,
    )
    .await;
    host.finish(outcome).await
}

/// What a run reads of its user: metadata, settings and credentials (a trigger that already
/// read them hands them over, saving the reads).
#[derive(Debug, Clone)]
pub struct UserData {
    pub meta: Value,
    /// What the user's last token carried (permissions under `PARA_PERMISSIONS_METADATA=token`).
    pub signed_meta: Value,
    pub settings: Vec<para_store::Settings>,
    pub credentials: Vec<para_store::Credential>,
}

impl UserData {
    pub async fn load(state: &Worker, user_id: &str) -> Result<UserData, para_store::StoreError> {
        let p = &state.project_id;
        let (user, settings, credentials) = tokio::join!(
            state.store.user(p, user_id),
            state.store.settings(p, user_id),
            state.store.credentials(p, user_id, None),
        );
        let (meta, signed_meta) = match user? {
            Some(u) => (u.meta, u.signed_meta),
            None => (Value::Object(Map::new()), Value::Object(Map::new())),
        };
        Ok(UserData { meta, signed_meta, settings: settings?, credentials: credentials? })
    }
}

/// Everything the run reads besides step outputs: the user, their credential and settings,
/// the project's secrets.
async fn run_context(
    state: &Worker,
    run: &Run,
    workflow: &Workflow,
    known: Option<Arc<UserData>>,
) -> Result<RunContext, String> {
    let data = match known {
        Some(data) => data,
        None => Arc::new(
            UserData::load(state, &run.user_id)
                .await
                .map_err(|e| format!("reading the user's data failed: {e}"))?,
        ),
    };
    let configuration = SettingsKey::of(run.configuration_id.as_deref());
    let values = |workflow_id: &str| {
        settings_values(&data.settings, &run.integration, &configuration, workflow_id)
    };
    // Password settings are stored sealed: opened for the run, and kept out of its journal.
    let (shared_settings, mut sensitive) =
        para_connect::passwords::open(state, &run.user_id, values(""));
    let (workflow_settings, more) =
        para_connect::passwords::open(state, &run.user_id, values(&workflow.id));
    sensitive.extend(more);
    let mut context = RunContext {
        user_id: run.user_id.clone(),
        meta: data.meta.clone(),
        shared_settings,
        workflow_settings,
        secrets: secrets(state),
        sensitive,
        ..RunContext::default()
    };
    let credential = para_connect::send::acting_credential(
        &data.credentials,
        &run.integration,
        run.credential_id.as_deref(),
    )
    .filter(|c| c.status == CredentialStatus::Valid);
    if let Some(c) = credential {
        context.provider_id = c.provider_id.clone();
        context.provider_data = Some(c.provider_data.clone());
        if let Ok(m) = para_connect::refresh::open(state, c) {
            let mut fields = m.values.clone();
            if let Some(token) = m.access_token() {
                fields.insert("oauthAccessToken".into(), Value::String(token.to_string()));
            }
            fields.insert("savedCredentials".into(), Value::Object(m.saved.clone()));
            context.config_inputs = m.values.clone();
            context.credential = fields;
        }
    }
    Ok(context)
}

/// The stored values of one settings scope (none stored: empty).
pub fn settings_values(
    settings: &[para_store::Settings],
    integration: &str,
    configuration: &SettingsKey,
    workflow_id: &str,
) -> Map<String, Value> {
    para_store::Settings::find(settings, integration, configuration, workflow_id)
        .and_then(|s| s.values.as_object().cloned())
        .unwrap_or_default()
}

/// The project's environment secrets the build uses: `PARA_SECRET_<NAME>` in the server's
/// environment (never a bare `<NAME>`: a secret named `PATH` is not the server's), else what `para secrets set` stored (`.para/secrets.json`, read
/// again when it changes).
pub fn secrets(state: &Worker) -> Map<String, Value> {
    let build = state.build();
    let stored = stored_secrets(state);
    build
        .secrets
        .iter()
        .filter_map(|name| {
            let value = state
                .config
                .env_secrets
                .get(name)
                .map(str::to_string)
                .or_else(|| stored.get(name).cloned())?;
            Some((name.clone(), Value::String(value)))
        })
        .collect()
}

type StoredSecrets = std::collections::BTreeMap<String, String>;

/// `.para/secrets.json`, opened, cached until the file changes.
fn stored_secrets(state: &Worker) -> Arc<StoredSecrets> {
    let root = &state.config.project_root;
    let path = root.join(para_auth::env_secrets::ENV_SECRETS_FILE);
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let mut cache = state.engine.stored_secrets.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((seen, values)) = cache.as_ref()
        && *seen == modified
    {
        return values.clone();
    }
    let values = match modified {
        None => Default::default(),
        Some(_) => para_auth::env_secrets::load(root, &state.secrets).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the project's secrets cannot be read");
            Default::default()
        }),
    };
    let values = Arc::new(values);
    *cache = Some((modified, values.clone()));
    values
}

struct ServerHost {
    state: Arc<Worker>,
    run_id: String,
    workflow_id: String,
    trigger_kind: String,
    /// When the run was written: its trace's root span starts there.
    created_at: i64,
    /// The workflow executed, once found (the kinds of the steps recorded).
    workflow: std::sync::OnceLock<Workflow>,
    user_id: String,
    integration: String,
    /// The account the run acts with (see [`Start::credential_id`]).
    credential_id: Option<String>,
    pending: Mutex<Vec<JournalEntry>>,
    response: Mutex<Option<Value>>,
    delivered: AtomicBool,
    /// The run's creation when the run started before it was committed.
    created: tokio::sync::Mutex<Option<oneshot::Receiver<bool>>>,
    /// 0: not known yet, 1: recorded, 2: not recorded.
    recorded: std::sync::atomic::AtomicU8,
}

impl ServerHost {
    /// Waits until the run's creation is committed (at once when it was); false if it failed.
    /// Side effects wait for this.
    async fn recorded(&self) -> bool {
        match self.recorded.load(Ordering::Acquire) {
            1 => return true,
            2 => return false,
            _ => {}
        }
        let mut created = self.created.lock().await;
        let ok = match created.take() {
            Some(rx) => rx.await.unwrap_or(false),
            None => self.recorded.load(Ordering::Acquire) != 2,
        };
        self.recorded.store(if ok { 1 } else { 2 }, Ordering::Release);
        ok
    }

    fn take_pending(&self) -> Vec<StepRecord> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .map(to_record)
            .collect()
    }

    fn response(&self) -> Option<Value> {
        self.response.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Hands the response to a waiting request trigger (once).
    fn deliver(&self, response: Value) {
        if self.delivered.swap(true, Ordering::SeqCst) {
            return;
        }
        let waiter = self
            .state
            .engine
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.run_id);
        if let Some(tx) = waiter {
            let _ = tx.send(response);
        }
    }

    /// A waiting request trigger gets no answer from this execution (it then answers 503).
    fn forget_waiter(&self) {
        self.state.engine.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.run_id);
    }

    /// Records how the run ended (or where it waits); true when that was committed.
    async fn finish(&self, outcome: Outcome) -> bool {
        // The outcome's kind only: a failure's message may quote what a step saw.
        let kind = match &outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed(_) => "failed",
            Outcome::Waiting(_) => "waiting",
            Outcome::LeaseLost => "lease lost",
        };
        // A line per run at info would cost every run a formatted write to stderr (a quarter of
        // the request-trigger throughput in `bench/engine`): only what needs attention is info.
        match &outcome {
            Outcome::Failed(_) | Outcome::LeaseLost => {
                tracing::info!(outcome = kind, "run stopped")
            }
            Outcome::Succeeded | Outcome::Waiting(_) => {
                tracing::debug!(outcome = kind, "run stopped")
            }
        }
        let state = match &outcome {
            Outcome::LeaseLost => {
                self.forget_waiter();
                return false;
            }
            Outcome::Succeeded => RunState::Succeeded,
            Outcome::Failed(m) => RunState::Failed(m.clone()),
            Outcome::Waiting(at) => RunState::Waiting(*at),
        };
        let response = self.response();
        let write = Write::Progress {
            run_id: self.run_id.clone(),
            lease: self.state.engine.lease(),
            steps: self.take_pending(),
            state,
            response: response.clone(),
        };
        let mut writes = vec![write];
        // Announced with the final write, under its lease: once per run, and only if recorded.
        if let Outcome::Failed(message) = &outcome {
            writes.push(crate::alerts::run_failed(
                &self.state,
                &self.run_id,
                &self.workflow_id,
                &self.user_id,
                &self.integration,
                message,
            ));
        }
        let failed = writes.len() > 1;
        if !self.state.engine.send_all(writes).await.unwrap_or(false) {
            self.forget_waiter();
            return false;
        }
        self.count_end(&outcome);
        if failed {
            crate::alerts::wake(&self.state);
        }
        if let Outcome::Waiting(at) = outcome {
            // Wake the poller when the wait is over (it polls anyway).
            let state = self.state.clone();
            let wait = (at - now_ms()).max(0) as u64;
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(wait)).await;
                state.engine.wake.notify_one();
            });
        }
        let answer = match (response, &outcome) {
            (Some(r), _) => r,
            (None, Outcome::Failed(m)) => json!({
                "statusCode": 500,
                "body": { "error": m, "executionId": self.run_id },
            }),
            // A request trigger keeps waiting: the run answers when it resumes (here; if
            // another process resumes it, the trigger times out with 202).
            (None, Outcome::Waiting(_)) => return true,
            (None, _) => json!({
                "statusCode": 200,
                "body": { "executionId": self.run_id, "status": para_store::RunStatus::Succeeded },
            }),
        };
        self.deliver(answer);
        true
    }

    /// Counts a recorded end of the run and sends its trace's root span (a wait is no end: the
    /// run resumes, maybe in another process, which ends the same trace).
    fn count_end(&self, outcome: &Outcome) {
        let metrics = &self.state.telemetry.metrics;
        let failed = match outcome {
            Outcome::Succeeded => false,
            Outcome::Failed(_) => true,
            Outcome::Waiting(_) | Outcome::LeaseLost => return,
        };
        let ended = if failed { &metrics.runs_failed } else { &metrics.runs_succeeded };
        ended.inc(&[&self.workflow_id]);
        if let Some(tracer) = &self.state.telemetry.tracer {
            use para_telemetry::traces::{Attr, Span, run_span_id, run_trace_id};
            // Names and ids only: no user id, no input or output, no failure message (it may
            // quote what a step saw).
            tracer.record(Span {
                trace_id: run_trace_id(&self.run_id),
                span_id: run_span_id(&self.run_id),
                parent: None,
                name: format!("run {}", self.workflow_id),
                start_ms: self.created_at,
                end_ms: now_ms(),
                attributes: vec![
                    ("para.run.id", Attr::Str(self.run_id.clone())),
                    ("para.workflow.id", Attr::Str(self.workflow_id.clone())),
                    ("para.integration", Attr::Str(self.integration.clone())),
                    ("para.trigger.kind", Attr::Str(self.trigger_kind.clone())),
                    ("para.project.id", Attr::Str(self.state.project_id.clone())),
                ],
                error: failed,
            });
        }
    }

    /// Counts a step that ended (done or failed; not a wait before a retry) and sends its span,
    /// a child of the run's root span.
    fn count_step(&self, entry: &JournalEntry) {
        let Some(finished_at) = entry.finished_at else { return };
        if entry.status == EntryStatus::Waiting {
            return;
        }
        let kind = self
            .workflow
            .get()
            .and_then(|w| w.steps.iter().find(|s| s.id == entry.step_id))
            .map_or("unknown", |s| s.kind.type_name());
        let metrics = &self.state.telemetry.metrics;
        let failed = entry.status == EntryStatus::Failed;
        metrics.step_duration.get(&[kind]).observe_ms(finished_at - entry.started_at);
        if failed {
            metrics.steps_failed.inc(&[kind]);
        }
        if let Some(tracer) = &self.state.telemetry.tracer {
            use para_telemetry::traces::{Attr, Span, run_span_id, run_trace_id, step_span_id};
            tracer.record(Span {
                trace_id: run_trace_id(&self.run_id),
                span_id: step_span_id(&self.run_id, &entry.key, entry.seq),
                parent: Some(run_span_id(&self.run_id)),
                name: entry.key.clone(),
                start_ms: entry.started_at,
                end_ms: finished_at,
                attributes: vec![
                    ("para.step.kind", Attr::Str(kind.to_string())),
                    ("para.step.attempts", Attr::Int(entry.attempts)),
                ],
                error: failed,
            });
        }
    }

    /// Sends a request once the run is recorded (see [`send`]).
    async fn send(
        &self,
        integration: bool,
        request: HttpRequest,
    ) -> Result<HttpResponse, StepError> {
        if !self.recorded().await {
            return Err(StepError::new("the run could not be recorded, so nothing is sent"));
        }
        let target = integration.then_some(Account {
            user_id: &self.user_id,
            integration: &self.integration,
            credential_id: self.credential_id.as_deref(),
            require_valid: true,
        });
        send(&self.state, target, request).await
    }
}

/// Whose credential an integration request uses: the user's account `credential_id` of the
/// integration, or their newest valid one.
pub use para_connect::send::Account;

/// Sends a request. With an [`Account`]: below the integration's API base with that
/// credential, through the one authorised-request function ([`para_connect::Connect::send`]:
/// path guard, refresh once after a 401; a 429 is answered, and the engine waits durably).
/// Without: to the URL as written. Within [`EngineConfig::request_timeout`]. An HTTP error
/// status is a response; `Err` is a request that got none.
pub async fn send(
    state: &Worker,
    account: Option<Account<'_>>,
    request: HttpRequest,
) -> Result<HttpResponse, StepError> {
    let timeout = state.engine.config.request_timeout;
    let shown = format!("{} {}", request.method, request.url.split('?').next().unwrap_or(""));
    match tokio::time::timeout(timeout, send_now(state, account, request)).await {
        Ok(result) => result,
        Err(_) => Err(StepError::new(format!("{shown} timed out"))),
    }
}

async fn send_now(
    state: &Worker,
    account: Option<Account<'_>>,
    request: HttpRequest,
) -> Result<HttpResponse, StepError> {
    let encoded = encode(&request)?;
    let Some(account) = account else {
        let mut url = url::Url::parse(&request.url)
            .map_err(|e| StepError::permanent(format!("`{}` is not a URL: {e}", request.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(StepError::permanent(format!("`{url}` is not an http(s) URL")));
        }
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        let shown = format!(
            "{} {}://{}{}",
            request.method,
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.path()
        );
        let response = state
            .http
            .request(encoded.method, url)
            .headers(encoded.headers)
            .body(encoded.body)
            .send()
            .await
            .map_err(|e| {
                let what = if e.is_timeout() { "timed out" } else { "failed" };
                StepError::new(format!("{shown} {what}: {}", para_connect::oauth::error_chain(&e)))
            })?;
        let response: http::Response<reqwest::Body> = response.into();
        let (parts, body) = response.into_parts();
        let bytes = para_connect::send::read_body(body, para_connect::send::MAX_READ)
            .await
            .map_err(|e| StepError::new(format!("{shown}: {e}")))?;
        return Ok(response_of(parts.status, &parts.headers, &bytes));
    };
    let (path, query) = match request.url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (request.url.as_str(), None),
    };
    let query = match query {
        _ if request.query.is_empty() => query.map(str::to_string),
        // Appended as `url`'s `query_pairs_mut` appends.
        _ => Some(
            form_urlencoded::Serializer::new(query.unwrap_or("").to_string())
                .extend_pairs(&request.query)
                .finish(),
        ),
    };
    let step = |e: para_connect::Error| {
        if e.is_transient() {
            StepError::new(e.message())
        } else {
            StepError::permanent(e.message())
        }
    };
    let outgoing = para_connect::Outgoing {
        method: encoded.method,
        destination: para_connect::Destination::below(path).map_err(step)?,
        query: query.as_deref(),
        headers: encoded.headers,
        body: encoded.body,
        keep: para_connect::send::every_header,
        wait_429: Duration::ZERO,
    };
    let answer = state.send_as(account, outgoing).await.map_err(step)?;
    let (parts, body) = answer.into_parts();
    let bytes = para_connect::send::read_body(body, para_connect::send::MAX_READ)
        .await
        .map_err(|e| StepError::new(format!("{} {path}: {e}", request.method)))?;
    Ok(response_of(parts.status, &parts.headers, &bytes))
}

/// A request step's method, headers and body as they go out: `Accept: application/json`
/// unless the step says otherwise, its `authorization` option as a header, and the body in its
/// `bodyType` (form, raw text, else JSON).
struct Encoded {
    method: http::Method,
    headers: http::HeaderMap,
    body: bytes::Bytes,
}

fn encode(request: &HttpRequest) -> Result<Encoded, StepError> {
    use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
    let method = Method::from_bytes(request.method.as_bytes())
        .map_err(|_| StepError::permanent(format!("`{}` is not an HTTP method", request.method)))?;
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let mut put = |name: &str, value: &str| -> Result<(), StepError> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| StepError::permanent(format!("`{name}` is not a header name")))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            StepError::permanent(format!("the value of the `{name}` header is not valid"))
        })?;
        headers.insert(name, value);
        Ok(())
    };
    for (k, v) in &request.headers {
        put(k, v)?;
    }
    if let Some(auth) = &request.authorization
        && let Some(value) = authorization_header(auth)
    {
        put("authorization", &value)?;
    }
    let mut body = bytes::Bytes::new();
    if let Some(value) = &request.body {
        let (content_type, bytes) =
            match request.body_type.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("x-www-form-urlencoded") | Some("form") => {
                    let mut form = form_urlencoded::Serializer::new(String::new());
                    for (k, v) in value.as_object().into_iter().flatten() {
                        form.append_pair(k, &para_engine::values::text_of(Some(v)));
                    }
                    (Some("application/x-www-form-urlencoded"), form.finish().into_bytes())
                }
                Some("raw") | Some("xml") => {
                    (None, para_engine::values::text_of(Some(value)).into_bytes())
                }
                _ => (
                    Some("application/json"),
                    serde_json::to_vec(value).expect("a JSON value serialises"),
                ),
            };
        if let Some(kind) = content_type
            && !headers.contains_key(header::CONTENT_TYPE)
        {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
        }
        body = bytes.into();
    }
    Ok(Encoded { method, headers, body })
}

/// An answer as a step sees it: status, headers (last of each name), body as JSON or text.
fn response_of(status: http::StatusCode, headers: &http::HeaderMap, bytes: &[u8]) -> HttpResponse {
    let headers: Map<String, Value> = headers
        .iter()
        .filter_map(|(k, v)| {
            Some((k.as_str().to_string(), Value::String(v.to_str().ok()?.to_string())))
        })
        .collect();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
    };
    HttpResponse { status: status.as_u16(), headers, body }
}

/// A RequestStep's `authorization` option, `{type: 'bearer', token}` or
/// `{type: 'basic', username, password}`, as an `Authorization` header value.
fn authorization_header(auth: &Value) -> Option<String> {
    use base64::Engine as _;
    let text = |k: &str| auth.get(k).map(|v| para_engine::values::text_of(Some(v)));
    match auth.get("type").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        Some("bearer") => text("token").map(|token| format!("Bearer {token}")),
        Some("basic") => {
            let pair = format!(
                "{}:{}",
                text("username").unwrap_or_default(),
                text("password").unwrap_or_default()
            );
            Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
        }
        _ => None,
    }
}

impl Host for ServerHost {
    fn now_ms(&self) -> i64 {
        now_ms()
    }

    async fn request(
        &self,
        step: &Step,
        integration: bool,
        request: HttpRequest,
    ) -> Result<HttpResponse, StepError> {
        // The method only: a URL's path or query may hold a secret.
        tracing::debug!(step = %step.id, method = %request.method, integration, "sending a request");
        self.send(integration, request).await
    }

    async fn action(
        &self,
        _step: &Step,
        action: &str,
        parameters: Map<String, Value>,
    ) -> Result<Value, StepError> {
        let request = crate::actions::request(&self.integration, action, &parameters)?;
        let response = self.send(true, request).await?;
        if response.status >= 400 {
            return Err(run::http_error(&response, now_ms()));
        }
        Ok(response.body)
    }

    async fn function(
        &self,
        _step: &Step,
        code: &str,
        parameters: Value,
    ) -> Result<Option<Value>, StepError> {
        let code = code.to_string();
        let limits = self.state.engine.config.function_limits;
        let params = parameters.to_string();
        let result =
            tokio::task::spawn_blocking(move || para_js::run_function(&code, &params, &limits))
                .await
                .map_err(|e| StepError::new(format!("the function step crashed: {e}")))?;
        match result {
            Ok(None) => Ok(None),
            Ok(Some(text)) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| StepError::new(format!("the function's result is not JSON: {e}"))),
            Err(e) => {
                let mut message = e.message.clone();
                if let Some(line) = e.line {
                    message = format!(
                        "{message} (line {line}{})",
                        e.column.map(|c| format!(", column {c}")).unwrap_or_default()
                    );
                }
                Err(StepError::new(message))
            }
        }
    }

    fn record(&self, entry: JournalEntry) {
        // Never the step's input, output or error: they may hold secrets.
        tracing::debug!(step = %entry.key, status = ?entry.status, attempts = entry.attempts, "step recorded");
        self.count_step(&entry);
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
    }

    async fn flush(&self) -> Result<(), LeaseLost> {
        let response = self.response();
        let write = Write::Progress {
            run_id: self.run_id.clone(),
            lease: self.state.engine.lease(),
            steps: self.take_pending(),
            state: RunState::Running,
            response: response.clone(),
        };
        if !self.state.engine.commit(write).await {
            return Err(LeaseLost);
        }
        if let Some(r) = response {
            self.deliver(r);
        }
        Ok(())
    }

    fn respond(&self, response: Value) {
        *self.response.lock().unwrap_or_else(|e| e.into_inner()) = Some(response);
    }
}

/// Whether a workflow has a ResponseStep (a request trigger then answers with it).
pub fn responds(workflow: &Workflow) -> bool {
    workflow.steps.iter().any(|s| matches!(s.kind, StepKind::Response { .. }))
}
