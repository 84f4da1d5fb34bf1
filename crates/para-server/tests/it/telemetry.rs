//! Health, readiness, metrics and traces over real HTTP: `/healthz` and `/readyz` (503 once the
//! database is gone), `/metrics` behind its key or on its own address, scraped and parsed after
//! requests, proxy calls and runs, and runs' traces received by a loopback OTLP/HTTP collector.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use para_server::TelemetryConfig;
use para_server::engine::Start;
use para_telemetry::traces::OtlpConfig;
use serde_json::{Value, json};

use crate::common::{self, TestServer};

const PROJECT: &str = "p1";
const FINE: &str = "0a6b2c3d-0000-4000-8000-00000000000a";
const BROKEN: &str = "0a6b2c3d-0000-4000-8000-00000000000b";
const KEY: &str = "scrape-me";

fn step(id: &str, key: &str, kind: &str, parameters: Value, next: Option<&str>) -> Value {
    json!({
        "id": id, "key": key, "type": kind, "parameters": parameters,
        "description": key, "autoRetry": false, "continueWorkflowOnError": false,
        "next": next, "source": null
    })
}

fn function(id: &str, key: &str, code: &str, next: Option<&str>) -> Value {
    step(id, key, "ACTION/FUNCTION", json!({ "code": code, "parameters": [] }), next)
}

fn workflow(id: &str, steps: Vec<Value>) -> Value {
    json!({
        "id": id, "name": id, "description": null, "order": 0,
        "defaultEnabled": true, "hidden": false, "inputs": [], "source": "w.ts",
        "trigger": format!("{id}-trigger"), "steps": steps, "permissions": null
    })
}

/// Two workflows of functions: three steps that succeed, and one whose only step throws.
fn build() -> para_build::Build {
    let trigger = |w: &str, next: &str| {
        step(
            &format!("{w}-trigger"),
            "trigger",
            "TRIGGER/EVENT",
            json!({ "eventId": "e1", "eventName": "Task Created" }),
            Some(next),
        )
    };
    let fine = workflow(
        FINE,
        vec![
            trigger(FINE, "f1"),
            function("f1", "fetch", "function f() { return 1; }", Some("f2")),
            function("f2", "shape", "function f() { return 2; }", Some("f3")),
            function("f3", "store", "function f() { return 3; }", None),
        ],
    );
    let broken = workflow(
        BROKEN,
        vec![
            trigger(BROKEN, "b1"),
            function("b1", "explode", "function f() { throw new Error('boom'); }", None),
        ],
    );
    let mut acme = common::custom("custom.acme", "oauth", json!({ "type": "none" }), Value::Null);
    acme["workflows"] = json!({ FINE: fine, BROKEN: broken });
    common::build(PROJECT, json!({ "custom.acme": acme }))
}

async fn start_run(s: &TestServer, workflow: &str) -> String {
    let start = Start {
        user_id: "ann".into(),
        integration: "custom.acme".into(),
        workflow_id: workflow.into(),
        trigger_kind: "event".into(),
        trigger_output: json!({ "name": "Task Created" }),
        user: None,
        credential_id: None,
        configuration_id: None,
    };
    para_server::engine::start_run(&s.state.worker, start, false).await.unwrap().run_id
}

/// One sample of a scrape: its metric name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape parsed: every sample, and the `# TYPE` of every family.
#[derive(Debug)]
struct Scrape {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses the text exposition format, checking that every sample belongs to a family with
    /// `# HELP` and `# TYPE` lines written before it.
    fn parse(text: &str) -> Scrape {
        let mut types = BTreeMap::new();
        let mut helped = std::collections::BTreeSet::new();
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                types.insert(name.to_string(), kind.to_string());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                helped.insert(rest.split_once(' ').unwrap().0.to_string());
                continue;
            }
            assert!(!line.starts_with('#'), "an unknown comment: {line}");
            let (name, labels, value) = match line.find('{') {
                Some(open) => {
                    let (labels, end) = parse_labels(&line[open + 1..]);
                    (&line[..open], labels, line[open + 1 + end..].trim())
                }
                None => {
                    let (name, value) = line.split_once(' ').unwrap();
                    (name, BTreeMap::new(), value)
                }
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("not a value in {line:?}")),
            };
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
                })
                .unwrap_or(name);
            assert!(types.contains_key(family), "{name} has no # TYPE before it");
            assert!(helped.contains(family), "{name} has no # HELP before it");
            samples.push(Sample { name: name.to_string(), labels, value });
        }
        Scrape { samples, types }
    }

    /// The one sample of `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert!(found.len() <= 1, "several samples of {name} {labels:?}: {found:?}");
        found.first().map(|s| s.value)
    }

    /// A histogram's buckets (`le` → cumulative count) for `labels`, checked to be cumulative
    /// and to end with `+Inf` equal to `_count`.
    fn buckets(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        assert_eq!(self.types.get(name).map(String::as_str), Some("histogram"), "{name}");
        let bucket = format!("{name}_bucket");
        let mut buckets: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == bucket
                    && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| {
                let le = s.labels["le"].as_str();
                (if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() }, s.value)
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(!buckets.is_empty(), "no buckets of {name} {labels:?}");
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "not cumulative: {buckets:?}");
        assert_eq!(buckets.last().unwrap().0, f64::INFINITY);
        let count = self.value(&format!("{name}_count"), labels).unwrap();
        assert_eq!(buckets.last().unwrap().1, count, "+Inf is the count");
        buckets
    }
}

/// Label pairs up to the closing brace, with `\\`, `\"` and `\n` unescaped; the labels and
/// where the brace was (relative to `text`), plus one.
fn parse_labels(text: &str) -> (BTreeMap<String, String>, usize) {
    let mut labels = BTreeMap::new();
    let mut chars = text.char_indices().peekable();
    loop {
        let (at, c) = chars.next().expect("an unterminated label set");
        if c == '}' {
            return (labels, at + 1);
        }
        if c == ',' {
            continue;
        }
        let mut name = c.to_string();
        for (_, c) in chars.by_ref() {
            if c == '=' {
                break;
            }
            name.push(c);
        }
        assert_eq!(chars.next().map(|(_, c)| c), Some('"'));
        let mut value = String::new();
        while let Some((_, c)) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next().unwrap().1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        }
        labels.insert(name, value);
    }
}

async fn fetch_metrics(url: &str, key: Option<&str>) -> (u16, String) {
    let mut request = common::client().get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    if status == 200 {
        let kind = answer.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    }
    (status, answer.text().await.unwrap())
}

/// A loopback OTLP/HTTP collector: every request body it received.
async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    async fn receive(
        State(received): State<Arc<Mutex<Vec<Value>>>>,
        headers: HeaderMap,
        body: String,
    ) -> &'static str {
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-collector-key"], "k1");
        received.lock().unwrap().push(serde_json::from_str(&body).unwrap());
        "{}"
    }
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(receive))
        .with_state(received.clone());
    (common::serve(app).await, received)
}

/// The spans the collector received, by trace id (hex).
fn spans(received: &Mutex<Vec<Value>>) -> BTreeMap<String, Vec<Value>> {
    let mut traces: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for body in received.lock().unwrap().iter() {
        let resource = &body["resourceSpans"][0];
        assert_eq!(
            resource["resource"]["attributes"][0],
            json!({ "key": "service.name", "value": { "stringValue": "para-test" } })
        );
        for span in resource["scopeSpans"][0]["spans"].as_array().unwrap() {
            traces
                .entry(span["traceId"].as_str().unwrap().to_string())
                .or_default()
                .push(span.clone());
        }
    }
    traces
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"].as_array()?.iter().find(|a| a["key"] == key).map(|a| &a["value"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_proxy_calls_runs_and_steps_and_runs_are_traced() {
    let (otlp, received) = collector().await;
    let traces = OtlpConfig {
        service_name: "para-test".into(),
        headers: vec![("x-collector-key".into(), "k1".into())],
        delay: Duration::from_millis(20),
        ..OtlpConfig::new(format!("{otlp}/v1/traces"))
    };
    let telemetry =
        TelemetryConfig { metrics_key: Some(KEY.into()), metrics_addr: None, traces: Some(traces) };
    let s = TestServer::builder(build()).telemetry(telemetry).start().await;

    let fine = [start_run(&s, FINE).await, start_run(&s, FINE).await];
    let broken = start_run(&s, BROKEN).await;
    // Requests of the router: a route with a parameter (refused without a token), a path no
    // route serves; and one through the proxy's own path (refused too).
    let http = common::client();
    assert_eq!(http.get(format!("{}/healthz", s.base)).send().await.unwrap().status(), 200);
    assert_eq!(http.get(s.url("/sdk/me")).send().await.unwrap().status(), 401);
    assert_eq!(http.get(format!("{}/no/such/path", s.base)).send().await.unwrap().status(), 404);
    let proxied = http.get(s.url("/sdk/proxy/custom.acme/items")).send().await.unwrap();
    assert_eq!(proxied.status(), 401);

    let metrics = format!("{}/metrics", s.base);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let scrape = loop {
        let (status, text) = fetch_metrics(&metrics, Some(KEY)).await;
        assert_eq!(status, 200, "{text}");
        let parsed = Scrape::parse(&text);
        let ended = parsed.value("para_runs_succeeded_total", &[("workflow", FINE)]) == Some(2.0)
            && parsed.value("para_runs_failed_total", &[("workflow", BROKEN)]) == Some(1.0);
        if ended {
            break parsed;
        }
        assert!(std::time::Instant::now() < deadline, "the runs did not end:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Requests by route template and status: never a raw path.
    let requests = "para_http_requests_total";
    assert!(scrape.value(requests, &[("route", "/healthz"), ("status", "200")]).unwrap() >= 1.0);
    let me = scrape
        .samples
        .iter()
        .find(|x| x.name == requests && x.labels["route"].ends_with("/sdk/me"))
        .expect("the /sdk/me request was counted");
    assert!(me.labels["route"].starts_with("/projects/{"), "a template: {:?}", me.labels);
    assert_eq!(me.labels["status"], "401");
    assert_eq!(scrape.value(requests, &[("route", "unmatched"), ("status", "404")]), Some(1.0));
    assert!(
        scrape.samples.iter().all(|x| x.labels.values().all(|v| !v.contains("/p1/"))),
        "a raw path in a label"
    );
    let healthz = scrape.buckets("para_http_request_duration_seconds", &[("route", "/healthz")]);
    assert!(healthz.last().unwrap().1 >= 1.0);
    // The proxy's path, counted beside the router's.
    assert_eq!(scrape.value(requests, &[("route", "proxy"), ("status", "401")]), Some(1.0));
    assert_eq!(scrape.buckets("para_proxy_request_duration_seconds", &[]).last().unwrap().1, 1.0);

    // Runs and steps.
    let started =
        |w| scrape.value("para_runs_started_total", &[("workflow", w), ("trigger", "event")]);
    assert_eq!((started(FINE), started(BROKEN)), (Some(2.0), Some(1.0)));
    assert_eq!(scrape.value("para_runs_failed_total", &[("workflow", FINE)]), None);
    let functions = [("kind", "ACTION/FUNCTION")];
    let steps = scrape.buckets("para_step_duration_seconds", &functions);
    assert_eq!(steps.last().unwrap().1, 7.0, "three steps of two runs, one of the third");
    assert_eq!(scrape.value("para_steps_failed_total", &functions), Some(1.0));
    // Read from the database at the scrape: nothing is waiting.
    assert_eq!(scrape.value("para_runs_due", &[]), Some(0.0));
    assert_eq!(scrape.value("para_runs_oldest_due_age_seconds", &[]), Some(0.0));
    // The families with nothing counted yet are listed all the same.
    for name in [
        "para_credential_refreshes_total",
        "para_webhook_requests_total",
        "para_webhook_requests_refused_total",
        "para_trigger_deliveries_total",
    ] {
        assert_eq!(scrape.types.get(name).map(String::as_str), Some("counter"), "{name}");
    }

    // Each run is one trace, its id the run's; a root span and one child per step.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let hex = |run: &str| run.replace('-', "");
    let traces = loop {
        let traces = spans(&received);
        let complete = |run: &str, n: usize| traces.get(&hex(run)).is_some_and(|s| s.len() == n);
        if complete(&fine[0], 4) && complete(&fine[1], 4) && complete(&broken, 2) {
            break traces;
        }
        assert!(std::time::Instant::now() < deadline, "traces: {traces:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(traces.len(), 3, "one trace per run: {:?}", traces.keys());
    for run in &fine {
        let spans = &traces[&hex(run)];
        let roots: Vec<&Value> = spans.iter().filter(|x| x.get("parentSpanId").is_none()).collect();
        assert_eq!(roots.len(), 1, "{spans:#?}");
        let root = roots[0];
        assert_eq!(attribute(root, "para.run.id").unwrap()["stringValue"], json!(run));
        assert_eq!(attribute(root, "para.workflow.id").unwrap()["stringValue"], FINE);
        assert_eq!(attribute(root, "para.integration").unwrap()["stringValue"], "custom.acme");
        assert!(root.get("status").is_none(), "{root}");
        let mut children: Vec<&Value> =
            spans.iter().filter(|x| x["parentSpanId"] == root["spanId"]).collect();
        children.sort_by_key(|x| x["startTimeUnixNano"].as_str().unwrap().parse::<u128>().unwrap());
        let names: Vec<&str> = children.iter().map(|x| x["name"].as_str().unwrap()).collect();
        assert_eq!(names.len(), 3, "{spans:#?}");
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, ["fetch", "shape", "store"]);
        let nanos = |x: &Value, field: &str| x[field].as_str().unwrap().parse::<u128>().unwrap();
        for child in &children {
            assert_eq!(
                attribute(child, "para.step.kind").unwrap()["stringValue"],
                "ACTION/FUNCTION"
            );
            assert!(nanos(child, "startTimeUnixNano") >= nanos(root, "startTimeUnixNano"));
            assert!(nanos(child, "endTimeUnixNano") <= nanos(root, "endTimeUnixNano"));
            assert!(child.get("status").is_none());
        }
        // No user id anywhere in the trace.
        assert!(!serde_json::to_string(spans).unwrap().contains("ann"), "{spans:#?}");
    }
    let failed = &traces[&hex(&broken)];
    assert!(failed.iter().all(|x| x["status"]["code"] == 2), "both spans failed: {failed:#?}");
    assert!(!serde_json::to_string(failed).unwrap().contains("boom"), "no failure text");

    let (_, text) = fetch_metrics(&metrics, Some(KEY)).await;
    let after = Scrape::parse(&text);
    assert!(after.value("para_trace_spans_exported_total", &[]).unwrap() >= 10.0);
    assert_eq!(after.value("para_trace_spans_dropped_total", &[]), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_key_and_address_guard_metrics() {
    // Off: a 404 that says how to turn it on.
    let off = TestServer::builder(build()).start().await;
    let (status, text) = fetch_metrics(&format!("{}/metrics", off.base), Some("anything")).await;
    assert_eq!(status, 404);
    assert!(text.contains("PARA_METRICS_KEY") && text.contains("PARA_METRICS_ADDR"), "{text}");

    // A key and an address: the key on the main listener (the same 401 for a missing and a
    // wrong one), none on the address.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let telemetry =
        TelemetryConfig { metrics_key: Some(KEY.into()), metrics_addr: Some(addr), traces: None };
    let s = TestServer::builder(build()).telemetry(telemetry).start().await;
    let main = format!("{}/metrics", s.base);
    let (missing, missing_text) = fetch_metrics(&main, None).await;
    let (wrong, wrong_text) = fetch_metrics(&main, Some("scrape-mf")).await;
    assert_eq!((missing, wrong), (401, 401));
    assert_eq!(missing_text, wrong_text, "nothing tells a wrong key from a missing one");
    let (right, text) = fetch_metrics(&main, Some(KEY)).await;
    assert_eq!(right, 200);
    Scrape::parse(&text);
    let (private, text) = fetch_metrics(&format!("http://{addr}/metrics"), None).await;
    assert_eq!(private, 200);
    assert!(Scrape::parse(&text).types.contains_key("para_runs_started_total"));

    // The address alone: the main listener says where metrics are.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let telemetry = TelemetryConfig { metrics_key: None, metrics_addr: Some(addr), traces: None };
    let only = TestServer::builder(build()).telemetry(telemetry).start().await;
    let (status, text) = fetch_metrics(&format!("{}/metrics", only.base), Some(KEY)).await;
    assert_eq!(status, 404);
    assert!(text.contains("PARA_METRICS_ADDR"), "{text}");
    assert_eq!(fetch_metrics(&format!("http://{addr}/metrics"), None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_answer_and_readiness_follows_the_database() {
    let s = TestServer::builder(build()).start().await;
    let http = common::client();
    let get = |path: &str| http.get(format!("{}{path}", s.base)).send();
    let healthz = get("/healthz").await.unwrap();
    assert_eq!(healthz.status(), 200);
    let body: Value = healthz.json().await.unwrap();
    assert_eq!((&body["status"], &body["ok"]), (&json!("ok"), &json!(true)), "{body}");
    let readyz = get("/readyz").await.unwrap();
    assert_eq!(readyz.status(), 200);
    assert_eq!(readyz.json::<Value>().await.unwrap(), json!({ "status": "ok" }));

    s.state.store.close().await;
    let readyz = get("/readyz").await.unwrap();
    assert_eq!(readyz.status(), 503);
    let body: Value = readyz.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert!(body["reason"].as_str().unwrap().contains("database"), "{body}");
    assert_eq!(get("/healthz").await.unwrap().status(), 200, "alive all the same");
}

/// A server stopping gracefully sends the spans still waiting for their batch: here a batch
/// would wait a minute for more spans, and the run's spans arrive as the server stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_sends_the_spans_still_queued() {
    let (otlp, received) = collector().await;
    let traces = OtlpConfig {
        service_name: "para-test".into(),
        headers: vec![("x-collector-key".into(), "k1".into())],
        delay: Duration::from_secs(60),
        ..OtlpConfig::new(format!("{otlp}/v1/traces"))
    };
    let telemetry = TelemetryConfig { metrics_key: None, metrics_addr: None, traces: Some(traces) };
    let s = TestServer::builder(build()).telemetry(telemetry).start().await;
    let run = start_run(&s, FINE).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stored = s.state.store.run(PROJECT, &run).await.unwrap().unwrap();
        if stored.status == para_store::RunStatus::Succeeded {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the run did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(received.lock().unwrap().is_empty(), "the batch is still waiting for more spans");
    s.shut_down().await.unwrap();
    let trace = para_telemetry::traces::run_trace_id(&run);
    let id: String = trace.iter().map(|b| format!("{b:02x}")).collect();
    let sent = spans(&received);
    assert!(sent.get(&id).is_some_and(|spans| spans.len() >= 2), "the run's spans: {sent:?}");
}
