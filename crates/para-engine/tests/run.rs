//! The step-graph semantics of `para_engine::run`, against an in-memory host: a clock the test
//! moves, an HTTP "upstream" the test scripts, function steps looked up by their code text, and
//! a journal kept in memory and handed back on resume (as the server does from the database).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use para_build::{Step, Workflow};
use para_engine::run::{
    EntryStatus, Host, HttpRequest, HttpResponse, JournalEntry, LeaseLost, Options, Outcome,
    RunContext, StepError, execute,
};
use serde_json::{Map, Value, json};

type Responder = Box<dyn Fn(&HttpRequest, usize) -> Result<HttpResponse, StepError> + Send + Sync>;
type Function = Box<dyn Fn(&Value) -> Result<Option<Value>, StepError> + Send + Sync>;

struct FakeHost {
    now: AtomicI64,
    responder: Responder,
    functions: HashMap<&'static str, Function>,
    requests: Mutex<Vec<HttpRequest>>,
    journal: Mutex<Vec<JournalEntry>>,
    flushes: AtomicI64,
    lose_lease: AtomicBool,
    responses: Mutex<Vec<Value>>,
}

impl FakeHost {
    fn new(responder: Responder) -> FakeHost {
        let mut functions: HashMap<&'static str, Function> = HashMap::new();
        functions.insert(
            "double",
            Box::new(|p| Ok(Some(json!(p["x"].as_i64().unwrap_or_else(|| panic!("{p}")) * 2)))),
        );
        functions.insert(
            "sum",
            Box::new(|p| {
                Ok(Some(json!(
                    p["xs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|x| x["result"].as_i64())
                        .sum::<i64>()
                )))
            }),
        );
        functions.insert("echo", Box::new(|p| Ok(Some(p.clone()))));
        // What a careless step might return: the secret and a password setting, encoded.
        functions.insert(
            "leak",
            Box::new(|_| {
                Ok(Some(json!({
                    "basic": "Basic dXNlcjpzM2NyZXQgdmFsdWUveA==",
                    "query": "https://api.example/x?key=s3cret%20value%2Fx&n=1",
                    "form": "key=s3cret+value%2Fx",
                    "password": "token YWI6aHVudGVyMi1wYXNz",
                    "plain": "hunter2-pass",
                })))
            }),
        );
        functions.insert("throw", Box::new(|_| Err(StepError::new("Error: boom (line 2)"))));
        FakeHost {
            now: AtomicI64::new(1_000_000),
            responder,
            functions,
            requests: Mutex::default(),
            journal: Mutex::default(),
            flushes: AtomicI64::new(0),
            lose_lease: AtomicBool::new(false),
            responses: Mutex::default(),
        }
    }

    fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// The journal as the database would hold it: the latest write of each key.
    fn stored(&self) -> Vec<JournalEntry> {
        let mut by_key: Vec<JournalEntry> = Vec::new();
        for e in self.journal.lock().unwrap().iter() {
            match by_key.iter_mut().find(|x| x.key == e.key) {
                Some(x) => {
                    let input = x.input.clone();
                    *x = e.clone();
                    if x.input.is_none() {
                        x.input = input;
                    }
                }
                None => by_key.push(e.clone()),
            }
        }
        by_key
    }

    fn entry(&self, key: &str) -> JournalEntry {
        self.stored().into_iter().find(|e| e.key == key).unwrap_or_else(|| panic!("no entry {key}"))
    }

    fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl Host for FakeHost {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }

    async fn request(
        &self,
        _step: &Step,
        integration: bool,
        mut request: HttpRequest,
    ) -> Result<HttpResponse, StepError> {
        if integration {
            request.url = format!("https://api.example{}", request.url);
        }
        let n = {
            let mut log = self.requests.lock().unwrap();
            log.push(request.clone());
            log.len()
        };
        (self.responder)(&request, n)
    }

    async fn action(
        &self,
        _step: &Step,
        action: &str,
        parameters: Map<String, Value>,
    ) -> Result<Value, StepError> {
        Ok(json!({ "action": action, "parameters": parameters }))
    }

    async fn function(
        &self,
        _step: &Step,
        code: &str,
        parameters: Value,
    ) -> Result<Option<Value>, StepError> {
        (self.functions[code])(&parameters)
    }

    fn record(&self, entry: JournalEntry) {
        self.journal.lock().unwrap().push(entry);
    }

    async fn flush(&self) -> Result<(), LeaseLost> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        if self.lose_lease.load(Ordering::SeqCst) { Err(LeaseLost) } else { Ok(()) }
    }

    fn respond(&self, response: Value) {
        self.responses.lock().unwrap().push(response);
    }
}

fn ok(status: u16, body: Value) -> Result<HttpResponse, StepError> {
    Ok(HttpResponse { status, headers: Map::new(), body })
}

fn var(step: &str, path: &[&str]) -> Value {
    json!({ "type": "VARIABLE", "stepId": step, "path": path })
}

fn step(id: &str, kind: &str, parameters: Value, next: Option<&str>) -> Value {
    json!({
        "id": id, "key": id, "type": kind, "parameters": parameters, "description": null,
        "autoRetry": false, "continueWorkflowOnError": false, "next": next, "source": null,
    })
}

fn function(id: &str, code: &str, params: &[(&str, Value)], next: Option<&str>) -> Value {
    let parameters: Vec<Value> =
        params.iter().map(|(k, v)| json!({ "key": k, "source": v })).collect();
    step(id, "ACTION/FUNCTION", json!({ "code": code, "parameters": parameters }), next)
}

fn request(id: &str, url: Value, next: Option<&str>) -> Value {
    step(
        id,
        "ACTION/INTEGRATION_REQUEST",
        json!({ "httpMethod": "get", "url": url, "params": [], "headers": [], "body": null,
                "bodyType": null, "authorization": null, "pagination": null }),
        next,
    )
}

fn workflow(mut steps: Vec<Value>) -> Workflow {
    steps.insert(
        0,
        step(
            "trigger",
            "TRIGGER/EVENT",
            json!({ "eventId": "e", "eventName": "E" }),
            Some(steps[0]["id"].as_str().unwrap()),
        ),
    );
    serde_json::from_value(json!({
        "id": "wf", "name": "wf", "description": null, "order": 0, "defaultEnabled": true,
        "hidden": false, "inputs": [], "source": "wf.ts", "trigger": "trigger", "steps": steps,
        "permissions": null,
    }))
    .unwrap()
}

fn options() -> Options {
    Options { retry_delays_ms: vec![10, 20], fan_out_parallelism: 2, max_pages: 10 }
}

async fn run(host: &FakeHost, wf: &Workflow, trigger: Value) -> Outcome {
    let journal = host.stored();
    execute(host, wf, &RunContext::default(), trigger, journal, &options()).await
}

#[tokio::test]
async fn a_chain_runs_in_order_records_every_step_and_replays_without_repeating() {
    let wf = workflow(vec![
        request("call", json!({ "type": "VALUE", "value": "/items" }), Some("fn")),
        function("fn", "echo", &[("n", var("call", &["response", "body", "n"]))], Some("respond")),
        step(
            "respond",
            "ACTION/RESPONSE",
            json!({ "statusCode": { "type": "VALUE", "value": 201 }, "responseType": "JSON",
                    "body": { "type": "OBJECT", "entries": [{ "key": "got", "source": var("fn", &["result", "n"]) }] } }),
            None,
        ),
    ]);
    let host = FakeHost::new(Box::new(|_, _| ok(200, json!({ "n": 7 }))));
    assert_eq!(run(&host, &wf, json!({})).await, Outcome::Succeeded);
    assert_eq!(host.requests.lock().unwrap()[0].url, "https://api.example/items");
    assert_eq!(host.entry("fn").output, Some(json!({ "result": { "n": 7 } })));
    assert_eq!(host.entry("fn").input, Some(json!({ "n": 7 })));
    assert_eq!(
        *host.responses.lock().unwrap(),
        [json!({ "statusCode": 201, "responseType": "JSON", "body": { "got": 7 } })]
    );
    assert_eq!(host.flushes.load(Ordering::SeqCst), 1, "the request was made durable at once");
    let seqs: Vec<i64> = host.stored().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);

    // Resuming with the journal executes nothing again.
    assert_eq!(run(&host, &wf, json!({})).await, Outcome::Succeeded);
    assert_eq!(host.request_count(), 1);
}

/// After a fan-out, a path into a branch step's output is followed in each instance, also
/// through nested fan-outs and for a step nested in a conditional inside the branch (`null`
/// where an instance took the other branch).
#[tokio::test]
async fn paths_into_gathered_outputs_apply_to_each_instance() {
    let big = json!({ "or": [[{ "operator": "$numberGreaterThan", "operands": [var("fan", &["instance", "qty"]), { "type": "VALUE", "value": 1 }] }]] });
    let wf = workflow(vec![
        step(
            "fan",
            "TRANSITION/MAP",
            json!({ "iterator": var("trigger", &["lines"]), "branch": "big" }),
            Some("inner"),
        ),
        step(
            "big",
            "TRANSITION/IFELSE",
            json!({ "condition": big, "whenTrue": "mark", "whenFalse": null }),
            None,
        ),
        function("mark", "echo", &[("sku", var("fan", &["instance", "sku"]))], None),
        step(
            "inner",
            "TRANSITION/MAP",
            json!({ "iterator": var("trigger", &["grid"]), "branch": "cell" }),
            Some("total"),
        ),
        step(
            "cell",
            "TRANSITION/MAP",
            json!({ "iterator": var("inner", &["instance"]), "branch": "dbl" }),
            None,
        ),
        function("dbl", "double", &[("x", var("cell", &["instance"]))], None),
        function(
            "total",
            "echo",
            &[
                ("skus", var("mark", &["result", "sku"])),
                ("first", var("mark", &["0", "result"])),
                ("count", var("mark", &["length"])),
                ("cells", var("dbl", &["result"])),
            ],
            None,
        ),
    ]);
    let host = FakeHost::new(Box::new(|_, _| panic!("no requests")));
    let trigger = json!({
        "lines": [{ "sku": "a", "qty": 2 }, { "sku": "b", "qty": 1 }, { "sku": "c", "qty": 3 }],
        "grid": [[1, 2], [], [3]],
    });
    assert_eq!(run(&host, &wf, trigger).await, Outcome::Succeeded);
    assert_eq!(
        host.entry("total").output,
        Some(json!({ "result": {
            "skus": ["a", null, "c"],
            "first": { "sku": "a" },
            "count": 3,
            "cells": [[2, 4], [], [6]],
        } }))
    );
}

#[tokio::test]
async fn conditions_branch_and_fan_outs_gather_their_instances_in_order() {
    let cond = |value: &str| json!({ "or": [[{ "operator": "$booleanTrue", "operands": [var("trigger", &[value])] }]] });
    let wf = workflow(vec![
        step(
            "if",
            "TRANSITION/IFELSE",
            json!({ "condition": cond("flag"), "whenTrue": "fan", "whenFalse": "no" }),
            Some("total"),
        ),
        step(
            "fan",
            "TRANSITION/MAP",
            json!({ "iterator": var("trigger", &["items"]), "branch": "inner" }),
            None,
        ),
        step(
            "inner",
            "TRANSITION/MAP",
            json!({ "iterator": var("fan", &["instance"]), "branch": "dbl" }),
            Some("sum"),
        ),
        function("dbl", "double", &[("x", var("inner", &["instance"]))], None),
        function("sum", "sum", &[("xs", var("dbl", &[]))], None),
        function("no", "echo", &[], None),
        function("total", "echo", &[("sums", var("sum", &[])), ("no", var("no", &[]))], None),
    ]);
    let host = FakeHost::new(Box::new(|_, _| panic!("no requests")));
    let trigger = json!({ "flag": true, "items": [[1, 2], [3], [], [4, 5, 6]] });
    assert_eq!(run(&host, &wf, trigger).await, Outcome::Succeeded);
    assert_eq!(
        host.entry("total").output,
        Some(
            json!({ "result": { "sums": [{ "result": 6 }, { "result": 6 }, { "result": 0 }, { "result": 30 }] } })
        )
    );
    assert_eq!(host.entry("dbl[3][2]").output, Some(json!({ "result": 12 })));
    assert_eq!(host.entry("if").output, Some(json!({ "result": true })));
    assert!(host.stored().iter().all(|e| e.key != "no"), "the false branch did not run");

    let host = FakeHost::new(Box::new(|_, _| panic!("no requests")));
    assert_eq!(run(&host, &wf, json!({ "flag": false, "items": [] })).await, Outcome::Succeeded);
    assert_eq!(host.entry("total").output, Some(json!({ "result": { "no": { "result": {} } } })));

    let host = FakeHost::new(Box::new(|_, _| panic!("no requests")));
    let Outcome::Failed(message) = run(&host, &wf, json!({ "flag": true, "items": 5 })).await
    else {
        panic!("a number is not a list")
    };
    assert_eq!(message, "step `fan` failed: the fan-out's iterator is not a list but a number");
}

/// A 429's wait from either form of `Retry-After` (counted from the host's clock for a date),
/// 10 s when it is missing or unreadable, and saturating instead of overflowing the clock.
#[test]
fn a_429_waits_as_long_as_its_retry_after_says_in_either_form() {
    let limited = |value: Option<&str>| HttpResponse {
        status: 429,
        headers: value.map(|v| ("retry-after".to_string(), json!(v))).into_iter().collect(),
        body: json!({}),
    };
    // 90 s before Sun, 06 Nov 1994 08:49:37 GMT.
    let now = 784_111_777_000 - 90_000;
    let wait = |value| para_engine::run::http_error(&limited(value), now).retry_after_ms;
    assert_eq!(wait(Some("2")), Some(2_000));
    assert_eq!(wait(Some("0.0001")), Some(1), "rounded up to a whole millisecond");
    assert_eq!(wait(Some("Sun, 06 Nov 1994 08:49:37 GMT")), Some(90_000));
    assert_eq!(wait(Some("Sat, 05 Nov 1994 08:49:37 GMT")), Some(0), "a date past: at once");
    assert_eq!(wait(Some("99999999999999999999999")), Some(i64::MAX));
    for unreadable in [None, Some(""), Some("-5"), Some("soon")] {
        assert_eq!(wait(unreadable), Some(10_000), "{unreadable:?}");
    }
}

#[tokio::test]
async fn auto_retry_waits_on_its_schedule_then_fails_and_429_waits_without_a_retry() {
    let mut wf = workflow(vec![request("call", json!({ "type": "VALUE", "value": "/x" }), None)]);
    wf.steps[1].auto_retry = true;
    let host = FakeHost::new(Box::new(|_, n| match n {
        1 => ok(503, json!("busy")),
        2 => Ok(HttpResponse {
            status: 429,
            headers: [("retry-after".to_string(), json!("2"))].into_iter().collect(),
            body: json!({}),
        }),
        3 => ok(500, json!({ "e": 1 })),
        _ => ok(502, json!("bad gateway")),
    }));
    let t0 = host.now_ms();
    assert_eq!(run(&host, &wf, json!({})).await, Outcome::Waiting(t0 + 10));
    let e = host.entry("call");
    assert_eq!(
        (e.status, e.attempts, e.error.as_deref()),
        (EntryStatus::Waiting, 1, Some("HTTP 503: busy"))
    );
    assert_eq!(run(&host, &wf, json!({})).await, Outcome::Waiting(t0 + 10), "not before its time");
    assert_eq!(host.request_count(), 1);

    host.advance(10);
    assert_eq!(run(&host, &wf, json!({})).await, Outcome::Waiting(t0 + 10 + 2_000), "Retry-After");
    assert_eq!(host.entry("call").attempts, 1, "a rate-limit wait uses no retry");
    host.advance(2_000);
    assert_eq!(run(&host, &wf, json!({})).await, Outcome::Waiting(t0 + 2_010 + 20));
    host.advance(20);
    let Outcome::Failed(message) = run(&host, &wf, json!({})).await else {
        panic!("retries exhausted")
    };
    assert_eq!(message, "step `call` failed: HTTP 502: bad gateway");
    let e = host.entry("call");
    assert_eq!((e.status, e.attempts, host.request_count()), (EntryStatus::Failed, 3, 4));
}

#[tokio::test]
async fn an_error_is_handed_on_when_the_workflow_continues_on_error() {
    let mut wf = workflow(vec![
        request("call", json!({ "type": "VALUE", "value": "/x" }), Some("after")),
        function(
            "after",
            "echo",
            &[("status", var("call", &["error", "statusCode"]))],
            Some("boom"),
        ),
        function("boom", "throw", &[], None),
    ]);
    wf.steps[1].continue_workflow_on_error = true;
    let host = FakeHost::new(Box::new(|_, _| ok(404, json!({ "message": "no such thing" }))));
    let Outcome::Failed(message) = run(&host, &wf, json!({})).await else { panic!() };
    assert_eq!(message, "step `boom` failed: Error: boom (line 2)");
    assert_eq!(host.entry("after").output, Some(json!({ "result": { "status": 404 } })));
    assert_eq!(
        host.entry("call").error.as_deref(),
        Some(r#"HTTP 404: {"message":"no such thing"}"#)
    );
    assert_eq!(host.entry("boom").status, EntryStatus::Failed);
}

#[tokio::test]
async fn a_delay_parks_the_run_until_its_time() {
    let wf = workflow(vec![
        step(
            "wait",
            "ACTION/DELAY",
            json!({ "value": { "type": "VALUE", "value": 2 }, "unit": "SECONDS" }),
            Some("fn"),
        ),
        function("fn", "echo", &[], None),
    ]);
    let host = FakeHost::new(Box::new(|_, _| panic!()));
    let t0 = host.now_ms();
    assert_eq!(run(&host, &wf, json!({})).await, Outcome::Waiting(t0 + 2_000));
    host.advance(1_999);
    assert_eq!(run(&host, &wf, json!({})).await, Outcome::Waiting(t0 + 2_000));
    host.advance(1);
    assert_eq!(run(&host, &wf, json!({})).await, Outcome::Succeeded);
    let e = host.entry("wait");
    assert_eq!((e.status, e.started_at, e.finished_at), (EntryStatus::Done, t0, Some(t0 + 2_000)));
}

#[tokio::test]
async fn pagination_follows_page_tokens_and_gathers_the_items() {
    let mut wf = workflow(vec![request(
        "list",
        json!({ "type": "TOKENIZED", "parts": [
            { "type": "VALUE", "value": "/contacts?page=" }, { "type": "PAGE_TOKEN" } ] }),
        None,
    )]);
    let own = |path: &[&str]| json!({ "type": "TOKENIZED", "parts": [var("list", path)] });
    let para_build::StepKind::IntegrationRequest(r) = &mut wf.steps[1].kind else { panic!() };
    r.pagination = Some(
        serde_json::from_value(json!({
            "pageToken": own(&["response", "body", "next"]),
            "outputPath": own(&["response", "body", "records"]),
            "stopCondition": { "or": [[{ "operator": "$doesNotExist", "operands": [own(&["response", "body", "next"])] }]] },
        }))
        .unwrap(),
    );
    let host = FakeHost::new(Box::new(|req, n| {
        let body = match req.url.rsplit('=').next().unwrap() {
            "" => json!({ "records": [1, 2], "next": "b" }),
            "b" => json!({ "records": [3], "next": "c" }),
            "c" => json!({ "records": [4] }),
            other => panic!("page {other} ({n})"),
        };
        ok(200, body)
    }));
    assert_eq!(run(&host, &wf, json!({})).await, Outcome::Succeeded);
    assert_eq!(host.request_count(), 3);
    let out = host.entry("list").output.unwrap();
    assert_eq!(out["response"]["body"]["records"], json!([1, 2, 3, 4]));
    assert_eq!(host.entry("list").input.unwrap()["pages"], json!(3));
}

#[tokio::test]
async fn a_lost_lease_stops_the_run_and_secrets_never_reach_the_journal() {
    let mut wf = workflow(vec![
        request("call", json!({ "type": "VALUE", "value": "/x" }), Some("fn")),
        function("fn", "echo", &[], None),
    ]);
    let para_build::StepKind::IntegrationRequest(r) = &mut wf.steps[1].kind else { panic!() };
    r.headers = serde_json::from_value(json!([{ "key": "x-key", "source": {
        "type": "TOKENIZED", "parts": [{ "type": "VALUE", "value": "Key " }, { "type": "ENVIRONMENT_SECRET", "name": "K" }] } }]))
    .unwrap();
    let host = FakeHost::new(Box::new(|_, _| ok(200, json!({}))));
    host.lose_lease.store(true, Ordering::SeqCst);
    let context = RunContext {
        secrets: [("K".to_string(), json!("s3cret-value"))].into_iter().collect(),
        ..RunContext::default()
    };
    let outcome = execute(&host, &wf, &context, json!({}), vec![], &options()).await;
    assert_eq!(outcome, Outcome::LeaseLost);
    assert!(host.stored().iter().all(|e| e.key != "fn"), "nothing after the lost lease");
    assert_eq!(
        host.requests.lock().unwrap()[0].headers,
        [("x-key".into(), "Key s3cret-value".into())]
    );
    let input = host.entry("call").input.unwrap();
    assert_eq!(input["headers"]["x-key"], json!("Key [redacted]"));
}

/// Secrets leave no trace in the journal in their usual encodings either: percent-encoded,
/// base64 after other bytes (a `Basic` header), and the user's password settings likewise.
#[tokio::test]
async fn encoded_secrets_and_password_settings_are_redacted_from_the_journal() {
    let wf = workflow(vec![function("fn", "leak", &[], None)]);
    let host = FakeHost::new(Box::new(|_, _| ok(200, json!({}))));
    let context = RunContext {
        secrets: [("K".to_string(), json!("s3cret value/x"))].into_iter().collect(),
        sensitive: vec!["hunter2-pass".into()],
        ..RunContext::default()
    };
    let outcome = execute(&host, &wf, &context, json!({}), vec![], &options()).await;
    assert_eq!(outcome, Outcome::Succeeded);
    let output = host.entry("fn").output.unwrap().to_string();
    for trace in [
        "dXNlcjpzM2NyZXQgdmFsdWUveA",
        "s3cret%20value",
        "s3cret+value",
        "aHVudGVyMi1wYXNz",
        "hunter2",
    ] {
        assert!(!output.contains(trace), "{trace} in {output}");
    }
    assert!(output.contains("https://api.example/x?key=[redacted]&n=1"), "{output}");
}

#[tokio::test]
async fn an_error_no_retry_can_mend_is_not_retried() {
    let mut wf = workflow(vec![request("call", json!({ "type": "VALUE", "value": "/x" }), None)]);
    wf.steps[1].auto_retry = true;
    let host = FakeHost::new(Box::new(|_, _| {
        Err(StepError::permanent("user `ann` has no valid acme credential: connect it first"))
    }));
    let Outcome::Failed(message) = run(&host, &wf, json!({})).await else { panic!("no retry") };
    assert!(message.ends_with("connect it first"), "{message}");
    assert_eq!((host.request_count(), host.entry("call").attempts), (1, 1));
}

/// A run's failure message quotes its step's error: it is redacted as the journal is (it is
/// stored with the run and sent in `workflow.run.failed` alerts).
#[tokio::test]
async fn a_failure_message_holds_no_secret() {
    let wf = workflow(vec![request("call", json!({ "type": "VALUE", "value": "/x" }), None)]);
    let host = FakeHost::new(Box::new(|_, _| {
        Err(StepError::permanent("the upstream refused key s3cret-value"))
    }));
    let context = RunContext {
        secrets: [("K".to_string(), json!("s3cret-value"))].into_iter().collect(),
        ..RunContext::default()
    };
    let outcome = execute(&host, &wf, &context, json!({}), vec![], &options()).await;
    let Outcome::Failed(message) = outcome else { panic!("{outcome:?}") };
    assert_eq!(message, "step `call` failed: the upstream refused key [redacted]");
    assert_eq!(host.entry("call").error.as_deref(), Some("the upstream refused key [redacted]"));
}
