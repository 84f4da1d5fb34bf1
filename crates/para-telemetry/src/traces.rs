//! OpenTelemetry traces over OTLP/HTTP with the JSON encoding: spans are queued (bounded; a
//! full queue drops the span and counts it, so a run never waits on the collector) and a
//! background task POSTs them in batches to `<endpoint>/v1/traces`.
//!
//! Ids are derived, not random: a run's trace id is its run id (a UUID's 16 bytes), its root
//! span's id a hash of the run id, a step's span id a hash of the run id, the step's key and
//! its sequence number. A run resumed by another process (after a wait, or after its first
//! process died) therefore continues the same trace under the same root span.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::metrics::Counter;

/// Where and how spans are exported (from `OTEL_*`, read by `para-cli`).
#[derive(Clone, PartialEq)]
pub struct OtlpConfig {
    /// The full URL spans are POSTed to (`…/v1/traces`).
    pub traces_url: String,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`: an API key of a hosted collector).
    pub headers: Vec<(String, String)>,
    /// `service.name` of the resource (`OTEL_SERVICE_NAME`, default `para`).
    pub service_name: String,
    /// Further resource attributes (`OTEL_RESOURCE_ATTRIBUTES`).
    pub resource: Vec<(String, String)>,
    /// Spans waiting to be sent at most; more are dropped (and counted).
    pub queue: usize,
    /// Spans per request at most.
    pub batch: usize,
    /// How long a batch waits for more spans after its first.
    pub delay: Duration,
    /// One export request's timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub timeout: Duration,
}

/// The headers' names only: a header's value is often the collector's API key.
impl std::fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("OtlpConfig")
            .field("traces_url", &self.traces_url)
            .field("headers", &headers)
            .field("service_name", &self.service_name)
            .field("resource", &self.resource)
            .field("queue", &self.queue)
            .field("batch", &self.batch)
            .field("delay", &self.delay)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl OtlpConfig {
    /// A configuration sending to `traces_url` with the defaults (2048 spans queued, 512 per
    /// request, a batch waits 1 s, a request 10 s).
    pub fn new(traces_url: impl Into<String>) -> OtlpConfig {
        OtlpConfig {
            traces_url: traces_url.into(),
            headers: Vec::new(),
            service_name: "para".into(),
            resource: Vec::new(),
            queue: 2048,
            batch: 512,
            delay: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

/// A trace id: 16 bytes.
pub type TraceId = [u8; 16];
/// A span id: 8 bytes.
pub type SpanId = [u8; 8];

/// A run's trace id: the run id's 16 bytes when it is a UUID (so the trace is found by the run
/// id), else the first 16 bytes of its SHA-256.
pub fn run_trace_id(run_id: &str) -> TraceId {
    let hex: String = run_id.chars().filter(|c| *c != '-').collect();
    let mut id = [0u8; 16];
    if hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
        if id != [0; 16] {
            return id;
        }
    }
    id.copy_from_slice(&Sha256::digest(run_id.as_bytes())[..16]);
    id
}

/// A span id derived from `parts` (never all zeros, which OTLP reads as "no span").
pub fn derived_span_id(parts: &[&str]) -> SpanId {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&hash.finalize()[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

/// The root span of a run.
pub fn run_span_id(run_id: &str) -> SpanId {
    derived_span_id(&["run", run_id])
}

/// The span of one step execution of a run.
pub fn step_span_id(run_id: &str, step_key: &str, seq: i64) -> SpanId {
    derived_span_id(&["step", run_id, step_key, &seq.to_string()])
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
}

/// A finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub name: String,
    /// Unix time in milliseconds (a journal's resolution).
    pub start_ms: i64,
    pub end_ms: i64,
    pub attributes: Vec<(&'static str, Attr)>,
    /// The span's work failed (OTLP status ERROR); else unset.
    pub error: bool,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn nanos(ms: i64) -> String {
    (ms.max(0) as u128 * 1_000_000).to_string()
}

fn attribute(key: &str, value: &Attr) -> Value {
    match value {
        Attr::Str(s) => json!({ "key": key, "value": { "stringValue": s } }),
        // OTLP JSON writes 64-bit integers as strings.
        Attr::Int(n) => json!({ "key": key, "value": { "intValue": n.to_string() } }),
    }
}

impl Span {
    fn to_json(&self) -> Value {
        let mut span = json!({
            "traceId": hex(&self.trace_id),
            "spanId": hex(&self.span_id),
            "name": self.name,
            // SPAN_KIND_INTERNAL: a run is work inside the process, not a request it serves.
            "kind": 1,
            "startTimeUnixNano": nanos(self.start_ms),
            "endTimeUnixNano": nanos(self.end_ms.max(self.start_ms)),
            "attributes": self.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
        });
        if let Some(parent) = &self.parent {
            span["parentSpanId"] = json!(hex(parent));
        }
        if self.error {
            // STATUS_CODE_ERROR, without a message: a failure's text may quote what a step saw.
            span["status"] = json!({ "code": 2 });
        }
        span
    }
}

/// The body of one export request (`ExportTraceServiceRequest` in OTLP's JSON mapping).
pub fn export_body(config: &OtlpConfig, spans: &[Span]) -> Value {
    let mut resource = vec![attribute("service.name", &Attr::Str(config.service_name.clone()))];
    resource.extend(
        config
            .resource
            .iter()
            .filter(|(k, _)| k != "service.name")
            .map(|(k, v)| attribute(k, &Attr::Str(v.clone()))),
    );
    json!({
        "resourceSpans": [{
            "resource": { "attributes": resource },
            "scopeSpans": [{
                "scope": { "name": "para", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(Span::to_json).collect::<Vec<_>>(),
            }],
        }],
    })
}

/// Counts of the exporter, rendered with the metrics.
#[derive(Debug, Default)]
pub struct ExportCounts {
    pub exported: Counter,
    pub dropped: Counter,
    pub failed_requests: Counter,
}

/// Queues spans for the background exporter.
pub struct Tracer {
    config: Arc<OtlpConfig>,
    tx: mpsc::Sender<Span>,
    /// The receiving end until the exporter task is started (on the first span, from inside
    /// the runtime).
    rx: Mutex<Option<mpsc::Receiver<Span>>>,
    started: AtomicBool,
    /// Spans queued or in a batch being sent: [`Tracer::flush`] waits for none.
    pending: Arc<std::sync::atomic::AtomicUsize>,
    /// Tells the exporter to send the batch it is filling now, not after its delay.
    send_now: Arc<tokio::sync::Notify>,
    pub counts: Arc<ExportCounts>,
}

impl Tracer {
    pub fn new(config: OtlpConfig) -> Tracer {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        Tracer {
            config: Arc::new(config),
            tx,
            rx: Mutex::new(Some(rx)),
            started: AtomicBool::new(false),
            pending: Arc::default(),
            send_now: Arc::default(),
            counts: Arc::default(),
        }
    }

    pub fn config(&self) -> &OtlpConfig {
        &self.config
    }

    /// Queues a finished span; never waits (a full queue drops it and counts the drop).
    pub fn record(&self, span: Span) {
        self.start();
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.try_send(span).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            self.counts.dropped.inc();
        }
    }

    /// Waits until every span recorded so far was sent (or given up on), for at most `within`:
    /// a server stopping gracefully sends its last runs' spans. True when nothing is left.
    pub async fn flush(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.pending.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline || !self.started.load(Ordering::SeqCst) {
                return false;
            }
            self.send_now.notify_one();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Starts the exporter task once, on the current tokio runtime (none: spans wait in the
    /// queue until one records from inside a runtime).
    fn start(&self) {
        if self.started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(rx) = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let (config, counts) = (self.config.clone(), self.counts.clone());
            let (pending, send_now) = (self.pending.clone(), self.send_now.clone());
            runtime.spawn(export_loop(config, rx, counts, pending, send_now));
        }
    }
}

/// Sends batches until every sender is gone.
async fn export_loop(
    config: Arc<OtlpConfig>,
    mut rx: mpsc::Receiver<Span>,
    counts: Arc<ExportCounts>,
    pending: Arc<std::sync::atomic::AtomicUsize>,
    send_now: Arc<tokio::sync::Notify>,
) {
    let client = match reqwest::Client::builder()
        .timeout(config.timeout)
        .user_agent(concat!("para/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the trace exporter's HTTP client could not be made; no traces are sent");
            return;
        }
    };
    let mut batch = Vec::with_capacity(config.batch);
    let mut last_warning: Option<std::time::Instant> = None;
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + config.delay;
        while batch.len() < config.batch {
            tokio::select! {
                more = tokio::time::timeout_at(deadline, rx.recv()) => match more {
                    Ok(Some(span)) => batch.push(span),
                    Ok(None) | Err(_) => break,
                },
                () = send_now.notified() => {
                    // A flush: what is queued now goes in this batch, at once.
                    while batch.len() < config.batch {
                        match rx.try_recv() {
                            Ok(span) => batch.push(span),
                            Err(_) => break,
                        }
                    }
                    break;
                }
            }
        }
        let body = export_body(&config, &batch).to_string();
        let mut request =
            client.post(&config.traces_url).header("content-type", "application/json").body(body);
        for (name, value) in &config.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let failure = match request.send().await {
            Ok(answer) if answer.status().is_success() => None,
            Ok(answer) => Some(format!("the collector answered {}", answer.status())),
            Err(e) => Some(format!("the collector could not be reached: {e}")),
        };
        match failure {
            None => counts.exported.add(batch.len() as u64),
            Some(reason) => {
                counts.failed_requests.inc();
                counts.dropped.add(batch.len() as u64);
                // At most a line a minute: a collector that is down would otherwise log per batch.
                let quiet = last_warning.is_some_and(|t| t.elapsed() < Duration::from_secs(60));
                if !quiet {
                    last_warning = Some(std::time::Instant::now());
                    tracing::warn!(url = %config.traces_url, spans = batch.len(), "traces were not exported: {reason}");
                }
            }
        }
        pending.fetch_sub(batch.len(), Ordering::SeqCst);
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_run_id_is_its_trace_id() {
        let id = run_trace_id("0b6f3c4e-8a1d-4f2b-9c3d-5e6f7a8b9c0d");
        assert_eq!(hex(&id), "0b6f3c4e8a1d4f2b9c3d5e6f7a8b9c0d");
        assert_eq!(run_trace_id("r1"), run_trace_id("r1"));
        assert_ne!(run_trace_id("r1"), run_trace_id("r2"));
        assert_ne!(step_span_id("r1", "a", 1), step_span_id("r1", "a", 2));
        assert_ne!(run_span_id("r1"), step_span_id("r1", "run", 0));
    }

    #[test]
    fn spans_are_encoded_as_otlp_json() {
        let config = OtlpConfig {
            resource: vec![("deployment.environment".into(), "prod".into())],
            ..OtlpConfig::new("http://collector/v1/traces")
        };
        let span = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: Some([3; 8]),
            name: "getItems".into(),
            start_ms: 1_700_000_000_000,
            end_ms: 1_700_000_000_250,
            attributes: vec![("para.step.attempts", Attr::Int(2))],
            error: true,
        };
        let body = export_body(&config, &[span]);
        let resource = &body["resourceSpans"][0]["resource"]["attributes"];
        assert_eq!(resource[0], json!({"key": "service.name", "value": {"stringValue": "para"}}));
        assert_eq!(resource[1]["key"], "deployment.environment");
        let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "01010101010101010101010101010101");
        assert_eq!(span["spanId"], "0202020202020202");
        assert_eq!(span["parentSpanId"], "0303030303030303");
        assert_eq!(span["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(span["endTimeUnixNano"], "1700000000250000000");
        assert_eq!(span["status"]["code"], 2);
        assert_eq!(span["attributes"][0]["value"]["intValue"], "2");
    }

    #[test]
    fn debug_output_leaves_header_values_out() {
        let config = OtlpConfig {
            headers: vec![("x-api-key".into(), "s3cret".into())],
            ..OtlpConfig::new("http://x/v1/traces")
        };
        let shown = format!("{config:?}");
        assert!(shown.contains("x-api-key") && !shown.contains("s3cret"), "{shown}");
    }

    /// A full queue drops spans instead of waiting (no runtime here: the exporter never starts).
    #[test]
    fn a_full_queue_drops_and_counts() {
        let tracer = Tracer::new(OtlpConfig { queue: 2, ..OtlpConfig::new("http://x/v1/traces") });
        let span = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: None,
            name: "run".into(),
            start_ms: 0,
            end_ms: 0,
            attributes: Vec::new(),
            error: false,
        };
        for _ in 0..5 {
            tracer.record(span.clone());
        }
        assert_eq!(tracer.counts.dropped.get(), 3);
    }
}
