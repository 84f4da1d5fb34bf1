//! What operators ask a server besides `/healthz` (the process runs; a route of the API,
//! `routes/api.rs`): `/readyz` (it can serve: its database answers) and `/metrics` (Prometheus
//! text), and the layer that counts the router's requests by route template.
//!
//! These routes are not in the OpenAPI document (they are for load balancers and monitoring,
//! not the product's API, and `/metrics` is not JSON), get no CORS and need no user token. `/metrics` on the main
//! listener needs the metrics key (`PARA_METRICS_KEY`), compared in constant time; on the
//! metrics address (`PARA_METRICS_ADDR`, a private network) it needs none; with neither set it
//! answers 404 saying how to turn it on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use para_telemetry::metrics::{CONTENT_TYPE, Text};
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// How long readiness waits for the database.
const DATABASE_WAIT: Duration = Duration::from_secs(2);

/// The routes on the main listener.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/readyz", get(readyz)).route("/metrics", get(guarded_metrics))
}

/// The metrics address's one route (no key: the address is meant for a private network).
pub fn private_routes(state: Arc<AppState>) -> Router {
    Router::new().route("/metrics", get(open_metrics)).with_state(state)
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// 200 when the server can serve; 503 with the reason otherwise.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match readiness(&state).await {
        Ok(()) => axum::Json(Status { status: "ok", reason: None }).into_response(),
        Err(reason) => {
            let body = Status { status: "unavailable", reason: Some(reason) };
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

/// Whether the server can serve requests now; the first condition that fails, said for an
/// operator. One condition per check, in order, so that another is one more block.
pub async fn readiness(state: &AppState) -> Result<(), String> {
    match tokio::time::timeout(DATABASE_WAIT, state.store.ping()).await {
        Ok(Ok(())) => {}
        // The error's kind, not its text: it may name the database's host and user.
        Ok(Err(_)) => return Err("the database does not answer".into()),
        Err(_) => {
            return Err(format!(
                "the database did not answer within {} s",
                DATABASE_WAIT.as_secs()
            ));
        }
    }
    let releases = &state.releases;
    if releases.mode == crate::releases::Mode::Database && releases.served().is_none() {
        return Err(NO_RELEASE.into());
    }
    Ok(())
}

/// Why a server of pushed releases is not ready before the first push.
pub(crate) const NO_RELEASE: &str = "no release is served yet: push one with `para push`";

/// `/metrics` on the main listener: with the key when one is set.
async fn guarded_metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let config = &state.config.telemetry;
    let Some(key) = &config.metrics_key else {
        let message = if config.metrics_addr.is_some() {
            "metrics are served on the metrics address (PARA_METRICS_ADDR) only; set PARA_METRICS_KEY to serve them here too (docs/server.md § Metrics)"
        } else {
            "metrics are off: set PARA_METRICS_KEY (then send Authorization: Bearer <key>) or PARA_METRICS_ADDR (a private address to serve them on) (docs/server.md § Metrics)"
        };
        return ApiError::not_found(message).into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // The same answer for a missing and a wrong key.
    if !crate::web::same_secret(given, key) {
        return ApiError::unauthorized("the metrics key is required").into_response();
    }
    metrics(&state).await
}

async fn open_metrics(State(state): State<Arc<AppState>>) -> Response {
    metrics(&state).await
}

/// Every metric, as Prometheus reads them.
async fn metrics(state: &AppState) -> Response {
    let mut text = Text::new();
    state.telemetry.render(&mut text);
    text.header(
        "para_webhook_requests_refused_total",
        "counter",
        "Webhook requests refused (signature, unknown URL…), by integration and reason.",
    );
    for ((integration, reason), count) in state.webhook_refusals() {
        let labels = [("integration", integration.as_str()), ("reason", reason)];
        text.sample("para_webhook_requests_refused_total", &labels, count);
    }
    // Read from the database at each scrape; left out (not zero) when it does not answer.
    match state.store.due_runs(&state.project_id).await {
        Ok(due) => {
            text.single(
                "para_runs_due",
                "gauge",
                "Runs due for a process to claim them (queued, or their wait over), not held by any.",
                due.count,
            );
            let age = due
                .oldest_due_at
                .map_or(0.0, |at| (para_store::now_ms() - at).max(0) as f64 / 1000.0);
            text.single(
                "para_runs_oldest_due_age_seconds",
                "gauge",
                "How long the run due longest has waited for a process (0: none is due).",
                age,
            );
        }
        Err(e) => tracing::warn!(error = %e, "the run queue could not be read for /metrics"),
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text.finish()).into_response()
}

/// Counts a router request by its route template (never the raw path, which may hold ids or
/// tokens; `unmatched` for paths no route serves) and status, and times it to its answer's head.
pub async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let answer = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let metrics = &state.telemetry.metrics;
    metrics.http_requests.inc(&[route, answer.status().as_str()]);
    metrics.http_duration.observe(&[route], started.elapsed());
    answer
}
