//! `para serve`: one HTTP origin serving a built project to the company's app and its users —
//! the Connect API the `@useparagon/connect` SDK calls, OAuth, the proxy and the Connect Portal.
//!
//! The server reads only `out/build.json` (never TypeScript). State lives in `para-store`;
//! every user-data handler takes the user from a verified token (`auth.rs`), so a request can
//! only reach its own user's rows.

mod auth;
mod budget;
/// The credentials domain, its own crate.
pub use para_connect::{connect, connector, settings};
mod cors;
/// The engine's host, its own crate.
pub use para_worker::engine;
mod error;
mod health;
mod idle;
pub mod limits;
mod openapi;
mod pages;
pub mod releases;
mod routes;
use para_connect::passwords;
use para_connect::refresh;
mod server;
mod state;
mod throttle;
mod users;
mod views;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

pub use cors::CorsPolicy;
pub use error::ApiError;
pub use health::readiness;
pub use para_connect::{OAuthClient, env_key};
pub use routes::oauth;
pub use state::{AppState, ServerConfig, TelemetryConfig};

/// The whole application: every route, CORS for the SDK running in the company's pages.
///
/// Everything but the pages answers like the Connect API: a path no route serves (the
/// fallback), a method a route does not serve and an extractor's rejection all answer in the
/// API's JSON error shape, with CORS (and preflights answered) like every API route, so the
/// SDK in a browser reads the reason instead of "Failed to fetch". The pages (portal,
/// dashboard) get no CORS; a wrong method there answers in JSON too.
pub fn router(state: Arc<AppState>) -> Router {
    let pages = pages::routes()
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state.clone());
    let (api, _) = routes::routes().split_for_parts();
    api.fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::map_response(error::json_rejections))
        .layer(cors::CorsLayer(state.config.cors.clone()))
        .with_state(state.clone())
        .merge(pages)
        .merge(health::routes().with_state(state.clone()))
        .layer(axum::middleware::from_fn_with_state(state, health::track))
}

/// Binds and serves until Ctrl-C / SIGTERM, then finishes in-flight requests.
pub async fn serve(state: Arc<AppState>, addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(state, listener, shutdown_signal()).await
}

/// Serves on a bound listener until `shutdown` completes (tests pass their own).
pub async fn serve_on(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match passwords::seal_stored(&state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            rows = n,
            "sealed the password settings of settings rows saved before sealing"
        ),
        Err(e) => tracing::error!(error = %e, "sealing stored password settings failed"),
    }
    // The metrics address, when set: a plain axum server beside the main one, stopped with it.
    let metrics_server = match state.config.telemetry.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr} (PARA_METRICS_ADDR): {e}"),
                )
            })?;
            let app = health::private_routes(state.clone());
            Some(tokio::spawn(async move { axum::serve(listener, app).await }))
        }
        None => None,
    };
    para_worker::start(&state.worker);
    let served = server::run(state.clone(), router(state.clone()), listener, shutdown).await;
    if let Some(task) = metrics_server {
        task.abort();
    }
    engine::stop(&state.worker).await;
    // The last runs' spans, which would otherwise wait for a batch that never comes.
    if let Some(tracer) = &state.telemetry.tracer
        && !tracer.flush(std::time::Duration::from_secs(5)).await
    {
        tracing::warn!("stopping with trace spans not yet sent to the collector");
    }
    served
}

/// Serves a server started without a project folder until it has a release to serve: only the
/// deploy API and `/healthz` (every other path answers 503). True once a release is served (a
/// push to this process, or another's seen in the database); false when `shutdown` came first.
pub async fn serve_until_released(
    releases: Arc<releases::Releases>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<bool> {
    let mut served = releases.subscribe();
    let (stop, stopped) = tokio::sync::oneshot::channel::<bool>();
    let router = routes::deploy::waiting_router(releases);
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let signal = async move {
        tokio::select! {
            _ = served.wait_for(Option::is_some) => { let _ = stop.send(true); }
            () = shutdown => { let _ = stop.send(false); }
        }
    };
    axum::serve(listener, app).with_graceful_shutdown(signal).await?;
    Ok(stopped.await.unwrap_or(false))
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
