//! What a `para` process tells its operators: Prometheus metrics ([`Metrics`], rendered by
//! [`Telemetry::render`]) and OpenTelemetry traces of runs ([`traces::Tracer`], sent over
//! OTLP/HTTP as JSON when configured).
//!
//! One [`Telemetry`] per served project, held by `para_connect::Connect`, so the credentials
//! domain (refreshes), the engine (runs, steps, deliveries) and the HTTP edge (requests, the
//! proxy, webhooks) record into the same registry. Invariant, as an absence: this crate knows
//! no other crate of ours (`crates/para-cli/tests/it/tidy.rs`), so every layer may use it.
//!
//! The metric names are listed in `docs/server.md` § Metrics; a metric whose value comes from
//! the database (queue depth) is rendered by the server at scrape time, after these.

pub mod metrics;
pub mod traces;

use metrics::{Counter, Family, Histogram, StatusCounts, Text};

/// Every metric recorded as things happen (as opposed to read at scrape time).
pub struct Metrics {
    /// The router's requests by route template and status (the proxy's are in
    /// [`Metrics::proxy_statuses`]).
    pub http_requests: Family<Counter>,
    pub http_duration: Family<Histogram>,
    /// The proxy's answers by status, and its latency (to the answer's head): atomics only,
    /// the proxy's path allocates nothing per request.
    pub proxy_statuses: StatusCounts,
    pub proxy_duration: Histogram,
    /// Runs started by workflow and trigger kind; ended by workflow.
    pub runs_started: Family<Counter>,
    pub runs_succeeded: Family<Counter>,
    pub runs_failed: Family<Counter>,
    /// Steps executed by step kind (not by step: the label set stays small), and the failures.
    pub step_duration: Family<Histogram>,
    pub steps_failed: Family<Counter>,
    /// Credential refreshes attempted and failed, by integration.
    pub refreshes: Family<Counter>,
    pub refresh_failures: Family<Counter>,
    /// Providers' webhook requests by integration (of the build: a path naming another is not
    /// counted), and their events accepted and seen before.
    pub webhook_requests: Family<Counter>,
    pub webhook_events_accepted: Family<Counter>,
    pub webhook_events_duplicate: Family<Counter>,
    /// Triggers API deliveries by outcome (`sent`, `failed`: one attempt each).
    pub trigger_deliveries: Family<Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        fn counters(labels: &'static [&'static str]) -> Family<Counter> {
            Family::new(labels, Counter::default)
        }
        Metrics {
            http_requests: counters(&["route", "status"]),
            http_duration: Family::new(&["route"], || Histogram::new(metrics::REQUEST_BUCKETS)),
            proxy_statuses: StatusCounts::default(),
            proxy_duration: Histogram::new(metrics::REQUEST_BUCKETS),
            runs_started: counters(&["workflow", "trigger"]),
            runs_succeeded: counters(&["workflow"]),
            runs_failed: counters(&["workflow"]),
            step_duration: Family::new(&["kind"], || Histogram::new(metrics::STEP_BUCKETS)),
            steps_failed: counters(&["kind"]),
            refreshes: counters(&["integration"]),
            refresh_failures: counters(&["integration"]),
            webhook_requests: counters(&["integration"]),
            webhook_events_accepted: counters(&["integration"]),
            webhook_events_duplicate: counters(&["integration"]),
            trigger_deliveries: counters(&["outcome"]),
        }
    }
}

/// The route label of the proxy's requests in `para_http_requests_total`.
pub const PROXY_ROUTE: &str = "proxy";

/// A process's metrics and, when configured, its trace exporter.
#[derive(Default)]
pub struct Telemetry {
    pub metrics: Metrics,
    pub tracer: Option<traces::Tracer>,
}

impl Telemetry {
    /// Metrics, and traces sent as `traces` says (`None`: no traces).
    pub fn new(traces: Option<traces::OtlpConfig>) -> Telemetry {
        Telemetry { metrics: Metrics::default(), tracer: traces.map(traces::Tracer::new) }
    }

    /// Renders every metric recorded here into `text`.
    pub fn render(&self, text: &mut Text) {
        let m = &self.metrics;
        text.header(
            "para_http_requests_total",
            "counter",
            "HTTP requests answered, by route template (`proxy`: the SDK's proxy) and status.",
        );
        for (values, counter) in m.http_requests.sorted() {
            let labels: Vec<(&str, &str)> = vec![("route", &values[0]), ("status", &values[1])];
            text.sample("para_http_requests_total", &labels, counter.get());
        }
        for (status, count) in m.proxy_statuses.nonzero() {
            let status = status.to_string();
            let labels = [("route", PROXY_ROUTE), ("status", status.as_str())];
            text.sample("para_http_requests_total", &labels, count);
        }
        text.histograms(
            "para_http_request_duration_seconds",
            "Time to answer a request's head, by route template (the proxy's: para_proxy_request_duration_seconds).",
            &m.http_duration,
        );
        text.histogram(
            "para_proxy_request_duration_seconds",
            "Time the proxy took to answer a request's head (the provider's time included).",
            &m.proxy_duration,
        );
        text.counters(
            "para_runs_started_total",
            "Runs started, by workflow and trigger kind.",
            &m.runs_started,
        );
        text.counters(
            "para_runs_succeeded_total",
            "Runs that succeeded, by workflow.",
            &m.runs_succeeded,
        );
        text.counters("para_runs_failed_total", "Runs that failed, by workflow.", &m.runs_failed);
        text.histograms(
            "para_step_duration_seconds",
            "Time a step took (its last attempt), by step kind.",
            &m.step_duration,
        );
        text.counters(
            "para_steps_failed_total",
            "Steps that failed, by step kind.",
            &m.steps_failed,
        );
        text.counters(
            "para_credential_refreshes_total",
            "Credential refreshes sent to the provider, by integration.",
            &m.refreshes,
        );
        text.counters(
            "para_credential_refresh_failures_total",
            "Credential refreshes that failed, by integration.",
            &m.refresh_failures,
        );
        text.counters(
            "para_webhook_requests_total",
            "Webhook requests received from providers, by integration.",
            &m.webhook_requests,
        );
        text.counters(
            "para_webhook_events_accepted_total",
            "Webhook events recorded, by integration.",
            &m.webhook_events_accepted,
        );
        text.counters(
            "para_webhook_events_duplicate_total",
            "Webhook events received again and not recorded twice, by integration.",
            &m.webhook_events_duplicate,
        );
        text.counters(
            "para_trigger_deliveries_total",
            "Triggers API delivery attempts, by outcome (sent, failed).",
            &m.trigger_deliveries,
        );
        if let Some(tracer) = &self.tracer {
            let c = &tracer.counts;
            text.single(
                "para_trace_spans_exported_total",
                "counter",
                "Spans sent to the OTLP collector.",
                c.exported.get(),
            );
            text.single(
                "para_trace_spans_dropped_total",
                "counter",
                "Spans not sent: the queue was full or the collector refused them.",
                c.dropped.get(),
            );
            text.single(
                "para_trace_export_failures_total",
                "counter",
                "Export requests the collector did not accept.",
                c.failed_requests.get(),
            );
        }
    }
}
