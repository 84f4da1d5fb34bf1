//! The JSON APIs `para serve` answers: the Connect API the SDK calls (`api`), configurations,
//! OAuth, event and request triggers, trigger types, Triggers API subscriptions, history,
//! resources, providers' webhooks, and the proxy.
//!
//! No module here imports `crate::pages`: a page may call a route's helpers, never the other
//! way round (`crates/para-cli/tests/it/module_graph.rs` checks it).

use std::sync::Arc;

use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub(crate) mod api;
pub(crate) mod configurations;
pub(crate) mod deploy;
pub(crate) mod history;
pub mod oauth;
pub(crate) mod options;
pub(crate) mod proxy;
pub(crate) mod resources;
pub(crate) mod sdk_inputs;
pub(crate) mod trigger_subscriptions;
pub(crate) mod trigger_types;
pub(crate) mod triggers;
pub(crate) mod webhooks;

/// Every JSON route but the proxy's (the proxy is served before routing, `server.rs`), with
/// the OpenAPI document that describes them ([`crate::openapi`]): each module registers its
/// handlers with `utoipa_axum::routes!`, which reads the path and method from the handler's
/// `#[utoipa::path]`, so the router and the document cannot disagree.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(openapi_json))
        .merge(api::routes())
        .merge(configurations::routes())
        .merge(oauth::routes())
        .merge(history::routes())
        .merge(triggers::routes())
        .merge(trigger_types::routes())
        .merge(trigger_subscriptions::routes())
        .merge(resources::routes())
        .merge(webhooks::routes())
        .merge(deploy::routes())
}

/// The whole document: the fixed parts, every route of [`routes`], the shared
/// error answers.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = routes().split_for_parts();
    crate::openapi::add_errors(&mut doc);
    doc
}

/// The document as JSON, built once.
static JSON: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    document().to_pretty_json().expect("an OpenAPI document always serialises")
});

/// `GET /openapi.json`: this document. Needs no token (it describes no user's data).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This OpenAPI 3.1 document", body = Object))
)]
pub async fn openapi_json() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], JSON.as_str())
}
