//! Executing one run of a workflow: walking its step graph from the trigger, resolving each
//! step's parameters against what the run knows, and recording every step in the run's
//! journal through the [`Host`].
//!
//! The walk is deterministic given the journal, which is what makes runs durable: a run that is
//! resumed (after a crash, a delay or a retry wait) is walked again from the trigger, and every
//! step the journal holds as done is *replayed* from its recorded output instead of executed.
//! Side effects (HTTP requests, integration actions) are made durable ([`Host::flush`]) as soon
//! as they complete; pure steps (functions, conditions, fan-outs, responses) are written with
//! the next durable write.
//!
//! What the host does (HTTP with credentials, the JavaScript sandbox, the database) stays out of
//! this module, so the graph semantics are tested here with an in-memory host.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use futures_util::StreamExt;
use para_build::{DelayUnit, Entry, Request, Source, Step, StepKind, Workflow};
use serde_json::{Map, Value, json};

use crate::conditions::holds;
use crate::values::{Outputs, Scope, resolve, resolve_text};

/// A journal entry's status. How it is stored is the host's business (para-worker maps it to
/// para-store's `StepStatus`, whose texts clients read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    /// Ran; the output is recorded.
    Done,
    /// Failed for good.
    Failed,
    /// To run (again) at `not_before`: a delay, a retry, a rate-limit wait.
    Waiting,
}

/// One step of one run (of one fan-out instance) as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// The step's register key, with `[i]` for each enclosing fan-out instance.
    pub key: String,
    pub step_id: String,
    pub seq: i64,
    pub status: EntryStatus,
    /// Executions that counted against the retry budget.
    pub attempts: i64,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub not_before: Option<i64>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// An HTTP request a step makes. For an integration request, `url` is relative to the
/// integration's API base and the host applies the user's credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    /// `json` (default), `form-data`, `x-www-form-urlencoded`, `xml`, `raw`.
    pub body_type: Option<String>,
    /// A RequestStep's `authorization` option, resolved.
    pub authorization: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-case.
    pub headers: Map<String, Value>,
    /// Parsed JSON when the body is JSON, else the text.
    pub body: Value,
}

/// A step that could not complete.
#[derive(Debug, Clone, PartialEq)]
pub struct StepError {
    pub message: String,
    /// Extra facts for the step's error output (status code, body…).
    pub details: Map<String, Value>,
    /// Rate-limited: try again after this many milliseconds, without using a retry.
    pub retry_after_ms: Option<i64>,
    /// Trying again cannot help (the user has no credential, the URL is malformed): no
    /// auto-retry.
    pub permanent: bool,
}

impl StepError {
    pub fn new(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            details: Map::new(),
            retry_after_ms: None,
            permanent: false,
        }
    }

    /// An error no retry can mend.
    pub fn permanent(message: impl Into<String>) -> StepError {
        StepError { permanent: true, ..StepError::new(message) }
    }
}

/// The run's writes were refused: another worker holds the run now (this one's lease expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseLost;

/// What the engine needs from its surroundings.
pub trait Host: Sync {
    fn now_ms(&self) -> i64;
    /// A RequestStep (`integration` false) or an IntegrationRequestStep. An HTTP error status is
    /// a response, not an error; `Err` is for requests that got no response.
    fn request(
        &self,
        step: &Step,
        integration: bool,
        request: HttpRequest,
    ) -> impl Future<Output = Result<HttpResponse, StepError>> + Send;
    /// A catalog action with its resolved parameters; the action's output.
    fn action(
        &self,
        step: &Step,
        action: &str,
        parameters: Map<String, Value>,
    ) -> impl Future<Output = Result<Value, StepError>> + Send;
    /// A function step's code with its resolved parameters; the function's result (`None`:
    /// undefined).
    fn function(
        &self,
        step: &Step,
        code: &str,
        parameters: Value,
    ) -> impl Future<Output = Result<Option<Value>, StepError>> + Send;
    /// Adds an entry to the run's pending writes.
    fn record(&self, entry: JournalEntry);
    /// Makes the pending writes durable.
    fn flush(&self) -> impl Future<Output = Result<(), LeaseLost>> + Send;
    /// The ResponseStep's answer (delivered by the host once the run's writes are durable).
    fn respond(&self, response: Value);
}

/// Everything a run reads besides step outputs.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    pub user_id: String,
    pub provider_id: Option<String>,
    pub provider_data: Option<Value>,
    pub meta: Value,
    pub shared_settings: Map<String, Value>,
    pub workflow_settings: Map<String, Value>,
    pub secrets: Map<String, Value>,
    pub credential: Map<String, Value>,
    pub config_inputs: Map<String, Value>,
    /// Other texts the journal must not hold (the user's password settings).
    pub sensitive: Vec<String>,
}

impl RunContext {
    fn scope<'a>(&'a self, outputs: &'a Outputs<'a>, page_token: Option<&'a Value>) -> Scope<'a> {
        Scope {
            outputs: Some(outputs),
            shared_settings: Some(&self.shared_settings),
            workflow_settings: Some(&self.workflow_settings),
            secrets: Some(&self.secrets),
            user_id: Some(&self.user_id),
            provider_id: self.provider_id.as_deref(),
            provider_data: self.provider_data.as_ref(),
            meta: Some(&self.meta),
            credential: Some(&self.credential),
            config_inputs: Some(&self.config_inputs),
            page_token,
            webhook_request: None,
        }
    }

    /// Secret strings that must not reach the journal: environment secrets, the credential's
    /// values and the sensitive settings, each also as it appears URL-encoded, base64-encoded
    /// (at any offset in a longer encoding) or escaped inside a JSON string.
    fn secret_texts(&self) -> Vec<String> {
        let mut plain = Vec::new();
        let mut collect = |v: &Value| collect_strings(v, &mut plain);
        self.secrets.values().for_each(&mut collect);
        self.credential.values().for_each(&mut collect);
        plain.extend(self.sensitive.iter().cloned());
        plain.retain(|s| s.len() >= 6);
        let mut out: Vec<String> = plain.iter().flat_map(|s| crate::redaction::forms(s)).collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.len()));
        out.dedup();
        out
    }
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| collect_strings(i, out)),
        _ => {}
    }
}

/// Replaces every occurrence of a secret inside strings of `value`.
pub fn redact(value: &mut Value, secrets: &[String]) {
    if secrets.is_empty() {
        return;
    }
    match value {
        Value::String(s) => {
            for secret in secrets {
                if s.contains(secret.as_str()) {
                    *s = s.replace(secret.as_str(), "[redacted]");
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| redact(i, secrets)),
        Value::Object(map) => map.values_mut().for_each(|i| redact(i, secrets)),
        _ => {}
    }
}

/// Tunables of execution.
#[derive(Debug, Clone)]
pub struct Options {
    /// Wait before retry n (1-based) of an `autoRetry` step; its length is the number of retries.
    pub retry_delays_ms: Vec<i64>,
    /// Fan-out instances run at once.
    pub fan_out_parallelism: usize,
    /// Pages a paginated request fetches at most.
    pub max_pages: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            // Paragon's schedule: up to 5 retries at about 10, 20, 30, 50 and 80 seconds.
            retry_delays_ms: vec![10_000, 20_000, 30_000, 50_000, 80_000],
            fan_out_parallelism: 8,
            max_pages: 1_000,
        }
    }
}

/// How a run's execution ended (this time).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded,
    /// A step failed for good: the message names it.
    Failed(String),
    /// Waiting (a delay or a retry); resume at this time (Unix ms).
    Waiting(i64),
    /// Another worker took the run over; stop without writing.
    LeaseLost,
}

/// Executes (or resumes) one run. `trigger_output` is the trigger step's output; `journal`
/// what earlier executions of this run recorded.
pub async fn execute<H: Host>(
    host: &H,
    workflow: &Workflow,
    context: &RunContext,
    trigger_output: Value,
    journal: Vec<JournalEntry>,
    options: &Options,
) -> Outcome {
    let Some(trigger) =
        workflow.trigger.as_deref().and_then(|t| workflow.steps.iter().find(|s| s.id == t))
    else {
        return Outcome::Failed("the workflow has no trigger".into());
    };
    let next_seq = journal.iter().map(|e| e.seq + 1).max().unwrap_or(1);
    let exec = Exec {
        host,
        steps: workflow.steps.iter().map(|s| (s.id.as_str(), s)).collect(),
        context,
        secrets: context.secret_texts(),
        journal: journal.into_iter().map(|e| (e.key.clone(), e)).collect(),
        seq: AtomicI64::new(next_seq.max(1)),
        options,
        response_sent: Mutex::new(false),
    };
    let mut outputs = Outputs::default();
    outputs.local.insert(trigger.id.clone(), trigger_output);
    match exec.chain(trigger.next.as_deref(), String::new(), &mut outputs).await {
        Flow::Next => Outcome::Succeeded,
        // The message quotes a step's error, which the journal holds redacted: so does the run.
        Flow::Fail(message) => {
            let mut message = Value::String(message);
            redact(&mut message, &exec.secrets);
            Outcome::Failed(message.as_str().unwrap_or_default().to_string())
        }
        Flow::Wait(at) => Outcome::Waiting(at),
        Flow::Lost => Outcome::LeaseLost,
    }
}

enum Flow {
    Next,
    Wait(i64),
    Fail(String),
    Lost,
}

/// Merges the flows of parallel branches: a lost lease or a failure wins, else the earliest
/// wait, else done.
fn merge(flows: Vec<Flow>) -> Flow {
    let mut wait: Option<i64> = None;
    let mut fail = None;
    for flow in flows {
        match flow {
            Flow::Lost => return Flow::Lost,
            Flow::Fail(m) => fail = fail.or(Some(m)),
            Flow::Wait(at) => wait = Some(wait.map_or(at, |w| w.min(at))),
            Flow::Next => {}
        }
    }
    match (fail, wait) {
        (Some(m), _) => Flow::Fail(m),
        (None, Some(at)) => Flow::Wait(at),
        (None, None) => Flow::Next,
    }
}

type Boxed<'s> = Pin<Box<dyn Future<Output = Flow> + Send + 's>>;

struct Exec<'a, H> {
    host: &'a H,
    steps: HashMap<&'a str, &'a Step>,
    context: &'a RunContext,
    secrets: Vec<String>,
    journal: HashMap<String, JournalEntry>,
    seq: AtomicI64,
    options: &'a Options,
    response_sent: Mutex<bool>,
}

/// What a step did, to record.
enum Done {
    Output(Value),
    Error(StepError),
}

impl<'a, H: Host> Exec<'a, H> {
    /// Runs the chain starting at `start` until it ends.
    fn chain<'s>(
        &'s self,
        start: Option<&'s str>,
        suffix: String,
        outputs: &'s mut Outputs<'_>,
    ) -> Boxed<'s>
    where
        'a: 's,
    {
        Box::pin(async move {
            let mut current = start;
            while let Some(id) = current {
                let Some(step) = self.steps.get(id).copied() else {
                    return Flow::Fail(format!(
                        "the build has no step `{id}`: rebuild the project"
                    ));
                };
                match self.step(step, &suffix, outputs).await {
                    Flow::Next => current = step.next.as_deref(),
                    other => return other,
                }
            }
            Flow::Next
        })
    }

    /// The ids of the steps a branch starting at `start` contains, nested ones included.
    fn branch_steps(&self, start: Option<&str>) -> Vec<&'a str> {
        let mut out = Vec::new();
        let mut todo: Vec<&str> = start.into_iter().collect();
        while let Some(id) = todo.pop() {
            let Some(step) = self.steps.get(id).copied() else { continue };
            if out.contains(&step.id.as_str()) {
                continue;
            }
            out.push(step.id.as_str());
            todo.extend(step.next.as_deref());
            match &step.kind {
                StepKind::Conditional { when_true, when_false, .. } => {
                    todo.extend(when_true.as_deref());
                    todo.extend(when_false.as_deref());
                }
                StepKind::FanOut { branch, .. } => todo.extend(branch.as_deref()),
                _ => {}
            }
        }
        out
    }

    fn recorded(&self, key: &str) -> Option<&JournalEntry> {
        self.journal.get(key)
    }

    fn next_seq(&self, key: &str) -> i64 {
        match self.journal.get(key) {
            Some(e) => e.seq,
            None => self.seq.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn redacted(&self, mut value: Value) -> Value {
        redact(&mut value, &self.secrets);
        value
    }

    fn write(&self, step: &Step, key: &str, entry: Entry2) {
        let prior = self.journal.get(key);
        self.host.record(JournalEntry {
            key: key.to_string(),
            step_id: step.id.clone(),
            seq: self.next_seq(key),
            status: entry.status,
            attempts: entry.attempts,
            input: entry.input.map(|v| self.redacted(v)),
            output: entry.output.map(|v| self.redacted(v)),
            error: entry.error.map(|e| {
                let mut v = Value::String(e);
                redact(&mut v, &self.secrets);
                v.as_str().unwrap_or_default().to_string()
            }),
            not_before: entry.not_before,
            started_at: prior.map_or(entry.started_at, |p| p.started_at),
            finished_at: entry.finished_at,
        });
    }

    async fn step(&self, step: &'a Step, suffix: &str, outputs: &mut Outputs<'_>) -> Flow {
        let key = format!("{}{suffix}", step.key);
        match &step.kind {
            StepKind::Conditional { condition, when_true, when_false } => {
                let result = match self.recorded(&key) {
                    Some(e) if e.status == EntryStatus::Done => {
                        e.output.as_ref().and_then(|o| o.get("result")).and_then(Value::as_bool)
                    }
                    _ => None,
                };
                let result = match result {
                    Some(r) => r,
                    None => {
                        let now = self.host.now_ms();
                        let scope = self.context.scope(outputs, None);
                        match holds(condition, &scope) {
                            Ok(r) => {
                                self.write(
                                    step,
                                    &key,
                                    Entry2::done(now, json!({ "result": r }), 1),
                                );
                                r
                            }
                            Err(e) => {
                                return self.fail(step, &key, 1, None, now, StepError::new(e));
                            }
                        }
                    }
                };
                outputs.local.insert(step.id.clone(), json!({ "result": result }));
                let branch = if result { when_true } else { when_false };
                self.chain(branch.as_deref(), suffix.to_string(), outputs).await
            }
            StepKind::FanOut { iterator, branch } => {
                let items = match self.recorded(&key) {
                    Some(e) if e.status == EntryStatus::Done => e
                        .input
                        .as_ref()
                        .and_then(|i| i.get("items"))
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                    _ => {
                        let now = self.host.now_ms();
                        let scope = self.context.scope(outputs, None);
                        let items = match resolve(iterator, &scope) {
                            None | Some(Value::Null) => Vec::new(),
                            Some(Value::Array(items)) => items,
                            Some(other) => {
                                let e = StepError::new(format!(
                                    "the fan-out's iterator is not a list but {}",
                                    kind_of(&other)
                                ));
                                return self.fail(step, &key, 1, None, now, e);
                            }
                        };
                        let input = json!({ "items": items });
                        let output = json!({ "count": items.len() });
                        let mut entry = Entry2::done(now, output, 1);
                        entry.input = Some(input);
                        self.write(step, &key, entry);
                        items
                    }
                };
                outputs.local.insert(step.id.clone(), json!({ "count": items.len() }));
                let parent: &Outputs<'_> = outputs;
                let results: Vec<(Flow, Map<String, Value>)> =
                    futures_util::stream::iter(items.into_iter().enumerate())
                        .map(|(i, item)| {
                            let suffix = format!("{suffix}[{i}]");
                            async move {
                                let mut layer = parent.child();
                                layer.local.insert(
                                    step.id.clone(),
                                    json!({ "instance": item, "index": i }),
                                );
                                let flow = self.chain(branch.as_deref(), suffix, &mut layer).await;
                                (flow, layer.local)
                            }
                        })
                        .buffered(self.options.fan_out_parallelism.max(1))
                        .collect()
                        .await;
                let count = results.len();
                // Every step of the branch is listed, also when no instance ran it.
                let mut gathered: Map<String, Value> = self
                    .branch_steps(branch.as_deref())
                    .into_iter()
                    .map(|id| (id.to_string(), Value::Array(vec![Value::Null; count])))
                    .collect();
                let mut flows = Vec::with_capacity(count);
                for (i, (flow, local)) in results.into_iter().enumerate() {
                    flows.push(flow);
                    for (id, value) in local {
                        if id == step.id {
                            continue;
                        }
                        let slot = gathered
                            .entry(id)
                            .or_insert_with(|| Value::Array(vec![Value::Null; count]));
                        if let Value::Array(list) = slot {
                            list[i] = value;
                        }
                    }
                }
                // After the fan-out, a step of its branch reads as the list of its instances'
                // outputs, in the iterator's order.
                outputs.local.extend(gathered);
                merge(flows)
            }
            _ => self.action(step, &key, outputs).await,
        }
    }

    /// Records a failure (or a retry, or the error handed on) and says how the chain goes on.
    fn fail(
        &self,
        step: &Step,
        key: &str,
        attempts: i64,
        input: Option<Value>,
        started: i64,
        error: StepError,
    ) -> Flow {
        let now = self.host.now_ms();
        // A rate-limit wait leaves the retry budget alone; an auto-retry uses one.
        let retry = match error.retry_after_ms {
            Some(wait) => Some((now.saturating_add(wait.max(0)), attempts - 1)),
            None if step.auto_retry && !error.permanent => self
                .options
                .retry_delays_ms
                .get(attempts as usize - 1)
                .map(|delay| (now + delay, attempts)),
            None => None,
        };
        if let Some((at, attempts)) = retry {
            let entry = Entry2 {
                status: EntryStatus::Waiting,
                attempts,
                input,
                output: None,
                error: Some(error.message),
                not_before: Some(at),
                started_at: started,
                finished_at: None,
            };
            self.write(step, key, entry);
            return Flow::Wait(at);
        }
        let message = format!("step `{key}` failed: {}", error.message);
        let entry = Entry2 {
            status: EntryStatus::Failed,
            attempts,
            input,
            output: None,
            error: Some(error.message),
            not_before: None,
            started_at: started,
            finished_at: Some(now),
        };
        self.write(step, key, entry);
        Flow::Fail(message)
    }

    /// Steps that do something: requests, actions, functions, delays, responses.
    async fn action(&self, step: &'a Step, key: &str, outputs: &mut Outputs<'_>) -> Flow {
        let mut attempts = 1;
        if let Some(e) = self.recorded(key) {
            match e.status {
                EntryStatus::Done => {
                    outputs.local.insert(step.id.clone(), e.output.clone().unwrap_or(Value::Null));
                    if matches!(step.kind, StepKind::Response { .. })
                        && let Some(out) = &e.output
                    {
                        self.deliver(out.clone());
                    }
                    return Flow::Next;
                }
                EntryStatus::Failed => {
                    return Flow::Fail(format!(
                        "step `{key}` failed: {}",
                        e.error.as_deref().unwrap_or("unknown error")
                    ));
                }
                EntryStatus::Waiting => {
                    let now = self.host.now_ms();
                    if let Some(at) = e.not_before
                        && at > now
                    {
                        return Flow::Wait(at);
                    }
                    if let StepKind::Delay { .. } = step.kind {
                        let mut entry = Entry2::done(now, json!({}), e.attempts);
                        entry.started_at = e.started_at;
                        self.write(step, key, entry);
                        outputs.local.insert(step.id.clone(), json!({}));
                        return Flow::Next;
                    }
                    attempts = e.attempts + 1;
                }
            }
        }
        let started = self.host.now_ms();
        let scope = self.context.scope(outputs, None);
        let (result, input, durable) = match &step.kind {
            StepKind::Delay { value, unit } => {
                let amount = resolve(value, &scope).and_then(|v| match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                });
                let Some(amount) = amount.filter(|a| a.is_finite() && *a >= 0.0) else {
                    let e = StepError::new("the delay's value is not a non-negative number");
                    return self.fail(step, key, attempts, None, started, e);
                };
                let ms = (amount * unit_ms(*unit) as f64) as i64;
                let input = json!({ "value": amount, "unit": unit_name(*unit) });
                if ms <= 0 {
                    (Done::Output(json!({})), Some(input), false)
                } else {
                    let at = started + ms;
                    let entry = Entry2 {
                        status: EntryStatus::Waiting,
                        attempts: 1,
                        input: Some(input),
                        output: None,
                        error: None,
                        not_before: Some(at),
                        started_at: started,
                        finished_at: None,
                    };
                    self.write(step, key, entry);
                    return Flow::Wait(at);
                }
            }
            StepKind::Response { status_code, response_type, body } => {
                let status = resolve(status_code, &scope)
                    .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
                    .unwrap_or(200);
                let body = resolve(body, &scope).unwrap_or(Value::Null);
                let out =
                    json!({ "statusCode": status, "responseType": response_type, "body": body });
                self.deliver(out.clone());
                (Done::Output(out), None, false)
            }
            StepKind::Function { code, parameters } => {
                let params = resolve_entries(parameters, &scope);
                let input = Value::Object(params.clone());
                let result = match self.host.function(step, code, Value::Object(params)).await {
                    Ok(result) => Done::Output(json!({ "result": result })),
                    Err(e) => Done::Error(e),
                };
                (result, Some(input), false)
            }
            StepKind::IntegrationAction { action, parameters, .. } => {
                let params = resolve_entries(parameters, &scope);
                let input = Value::Object(params.clone());
                let result = match self.host.action(step, action, params).await {
                    Ok(out) => Done::Output(out),
                    Err(e) => Done::Error(e),
                };
                (result, Some(input), true)
            }
            StepKind::Request(request) | StepKind::IntegrationRequest(request) => {
                let integration = matches!(step.kind, StepKind::IntegrationRequest(_));
                let (result, input) = self.request(step, integration, request, outputs).await;
                (result, Some(input), true)
            }
            // Triggers are not walked (the run starts after its trigger); control steps are
            // handled in `step`.
            _ => (Done::Output(Value::Null), None, false),
        };
        match result {
            Done::Output(output) => {
                let now = self.host.now_ms();
                let mut entry = Entry2::done(started, output.clone(), attempts);
                entry.finished_at = Some(now);
                entry.input = input;
                self.write(step, key, entry);
                outputs.local.insert(step.id.clone(), output);
                if durable && self.host.flush().await.is_err() {
                    return Flow::Lost;
                }
                Flow::Next
            }
            Done::Error(error) => {
                let retrying = error.retry_after_ms.is_some()
                    || (step.auto_retry
                        && !error.permanent
                        && (attempts as usize) <= self.options.retry_delays_ms.len());
                if !retrying && step.continue_workflow_on_error {
                    let now = self.host.now_ms();
                    let mut details = error.details.clone();
                    details.insert("message".into(), Value::String(error.message.clone()));
                    let output = json!({ "error": Value::Object(details) });
                    let mut entry = Entry2::done(started, output.clone(), attempts);
                    entry.finished_at = Some(now);
                    entry.input = input;
                    entry.error = Some(error.message);
                    self.write(step, key, entry);
                    outputs.local.insert(step.id.clone(), output);
                    if durable && self.host.flush().await.is_err() {
                        return Flow::Lost;
                    }
                    return Flow::Next;
                }
                let flow = self.fail(step, key, attempts, input, started, error);
                if durable && self.host.flush().await.is_err() {
                    return Flow::Lost;
                }
                flow
            }
        }
    }

    fn deliver(&self, response: Value) {
        let mut sent = self.response_sent.lock().unwrap_or_else(|e| e.into_inner());
        if !*sent {
            *sent = true;
            self.host.respond(response);
        }
    }

    /// A request step, following its pagination; the result and the recorded input.
    async fn request(
        &self,
        step: &Step,
        integration: bool,
        request: &Request,
        outputs: &Outputs<'_>,
    ) -> (Done, Value) {
        let mut token: Option<Value> = None;
        let mut collected: Vec<Value> = Vec::new();
        let mut first_input = Value::Null;
        let mut pages = 0usize;
        loop {
            let scope = self.context.scope(outputs, token.as_ref());
            let http = build_request(request, &scope);
            if pages == 0 {
                first_input = request_input(&http);
            }
            let response = match self.host.request(step, integration, http).await {
                Ok(r) => r,
                Err(e) => return (Done::Error(e), first_input),
            };
            pages += 1;
            if response.status >= 400 {
                return (Done::Error(http_error(&response, self.host.now_ms())), first_input);
            }
            let output = json!({ "response": {
                "statusCode": response.status,
                "headers": Value::Object(response.headers),
                "body": response.body,
            }});
            let Some(pagination) = &request.pagination else {
                return (Done::Output(output), first_input);
            };
            // The pagination callbacks read this page's output as the step's own.
            let mut own = outputs.child();
            own.local.insert(step.id.clone(), output);
            let scope = self.context.scope(&own, token.as_ref());
            let items_path = pagination.output_path.as_ref().and_then(|p| own_path(p, &step.id));
            if let Some(source) = &pagination.output_path {
                match resolve(source, &scope) {
                    Some(Value::Array(items)) => collected.extend(items),
                    None | Some(Value::Null) => {}
                    Some(other) => collected.push(other),
                }
            }
            let stop = match &pagination.stop_condition {
                Some(c) => holds(c, &scope).unwrap_or(true),
                None => false,
            };
            let next = resolve(&pagination.page_token, &scope).filter(|t| {
                !t.is_null() && t.as_str() != Some("") && t.as_str() != Some("undefined")
            });
            let mut output = own.local.remove(&step.id).unwrap_or(Value::Null);
            let done = stop || next.is_none() || next == token || pages >= self.options.max_pages;
            if done {
                // The step's output is the last page's, with every page's items at the
                // output path.
                if let Some(path) = items_path
                    && let Some(slot) = pointer_mut(&mut output, &path)
                {
                    *slot = Value::Array(collected);
                }
                let input = match first_input {
                    Value::Object(mut map) => {
                        map.insert("pages".into(), Value::from(pages));
                        Value::Object(map)
                    }
                    other => other,
                };
                return (Done::Output(output), input);
            }
            token = next;
        }
    }
}

struct Entry2 {
    status: EntryStatus,
    attempts: i64,
    input: Option<Value>,
    output: Option<Value>,
    error: Option<String>,
    not_before: Option<i64>,
    started_at: i64,
    finished_at: Option<i64>,
}

impl Entry2 {
    fn done(at: i64, output: Value, attempts: i64) -> Entry2 {
        Entry2 {
            status: EntryStatus::Done,
            attempts,
            input: None,
            output: Some(output),
            error: None,
            not_before: None,
            started_at: at,
            finished_at: Some(at),
        }
    }
}

fn unit_ms(unit: DelayUnit) -> i64 {
    match unit {
        DelayUnit::Seconds => 1_000,
        DelayUnit::Minutes => 60_000,
        DelayUnit::Hours => 3_600_000,
        DelayUnit::Days => 86_400_000,
    }
}

fn unit_name(unit: DelayUnit) -> &'static str {
    match unit {
        DelayUnit::Seconds => "SECONDS",
        DelayUnit::Minutes => "MINUTES",
        DelayUnit::Hours => "HOURS",
        DelayUnit::Days => "DAYS",
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn resolve_entries(entries: &[Entry], scope: &Scope<'_>) -> Map<String, Value> {
    let mut map = Map::new();
    for entry in entries {
        if let Some(v) = resolve(&entry.source, scope) {
            map.insert(entry.key.clone(), v);
        }
    }
    map
}

fn build_request(request: &Request, scope: &Scope<'_>) -> HttpRequest {
    let pairs = |entries: &[Entry]| -> Vec<(String, String)> {
        entries
            .iter()
            .filter_map(|e| {
                let v = resolve(&e.source, scope)?;
                Some((e.key.clone(), crate::values::text_of(Some(&v))))
            })
            .collect()
    };
    HttpRequest {
        method: request.http_method.to_ascii_uppercase(),
        url: resolve_text(&request.url, scope),
        query: pairs(&request.params),
        headers: pairs(&request.headers),
        body: request.body.as_ref().and_then(|b| resolve(b, scope)),
        body_type: request.body_type.clone(),
        authorization: request.authorization.as_ref().and_then(|a| resolve(a, scope)),
    }
}

fn request_input(http: &HttpRequest) -> Value {
    let pairs = |list: &[(String, String)]| -> Value {
        Value::Object(list.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
    };
    json!({
        "method": http.method,
        "url": http.url,
        "params": pairs(&http.query),
        "headers": pairs(&http.headers),
        "body": http.body,
    })
}

/// A response with an error status as a step's error: the status and a body excerpt, the
/// body in its details, and for a 429 the wait its `Retry-After` asks for (10 s without a
/// readable one), an HTTP-date counted from `now_ms`.
pub fn http_error(response: &HttpResponse, now_ms: i64) -> StepError {
    let excerpt = match &response.body {
        Value::String(s) => s.chars().take(300).collect::<String>(),
        other => other.to_string().chars().take(300).collect(),
    };
    let mut error = StepError::new(format!("HTTP {}: {excerpt}", response.status));
    error.details.insert("statusCode".into(), Value::from(response.status));
    error.details.insert("body".into(), response.body.clone());
    if response.status == 429 {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms.max(0) as u64);
        let after = response
            .headers
            .get("retry-after")
            .and_then(Value::as_str)
            .and_then(|v| crate::retry_after::parse(v, now));
        // Whole milliseconds, rounded up so a wait is never cut short; a wait longer than the
        // journal's clock can hold saturates.
        let ms =
            after.map(|wait| i64::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(i64::MAX));
        error.retry_after_ms = Some(ms.unwrap_or(10_000));
    }
    error
}

/// The path inside the step's own output a pagination `outputPath` names.
fn own_path(source: &Source, step_id: &str) -> Option<Vec<String>> {
    match source {
        Source::Variable { step_id: id, path } if id == step_id => Some(path.clone()),
        Source::Tokenized { parts } if parts.len() == 1 => own_path(&parts[0], step_id),
        _ => None,
    }
}

fn pointer_mut<'v>(value: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    let mut current = value;
    for segment in path {
        current = match current {
            Value::Object(map) => map.get_mut(segment)?,
            Value::Array(items) => items.get_mut(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}
