//! The Connect Portal the `@useparagon/connect` SDK opens in its iframe (`paragon.connect()`):
//! `GET /ui` and its script. The page renders from the state the SDK posts to it (UI_UPDATE) and
//! acts by asking the SDK to run its own methods (SDK_FUNCTION_INVOCATION); it needs no cookie,
//! and its one request of its own (build-oauth, to start a sign-in) uses the token the SDK sent.
//! The server-rendered portal (`/projects/{id}/portal`) stays the way to reach the same settings
//! by URL.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::Response,
    routing::get,
};

use crate::pages::portal::asset;

pub(crate) const SCRIPT: &str = "/_para/portal-ui.js";

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/ui", get(page)).route(SCRIPT, get(script))
}

/// The page: static, embeddable anywhere (the company's app frames it), script only from here.
async fn page() -> Response {
    let mut response = asset(
        include_str!("../../templates/portal_ui.html"),
        "text/html; charset=utf-8",
        "no-cache",
    );
    let headers = response.headers_mut();
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data: https:; connect-src 'self'; form-action 'none'; \
             base-uri 'none'; frame-ancestors *",
        ),
    );
    response
}

async fn script() -> Response {
    asset(
        include_str!("../../templates/portal-ui.js"),
        "text/javascript; charset=utf-8",
        "no-cache",
    )
}
