//! CORS for the SDK running in the company's pages, kept off the hot path: a request without an
//! `Origin` header (server-to-server calls, most proxy traffic) passes through untouched; one
//! with an origin gets it mirrored with credentials allowed; a preflight is answered here. The
//! header values are built once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header,
};
use tower::{Layer, Service};

/// The headers the SDK sends (CONNECT-API.md), plus the usual ones.
const ALLOWED_HEADERS: &str = "authorization, content-type, accept, x-paragon-credential, x-paragon-configuration-id, x-paragon-sdk-version, x-paragon-user-metadata, x-paragon-proxy-url, x-paragon-use-raw-response";
const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";

#[derive(Clone, Copy, Default)]
pub struct CorsLayer;

impl<S> Layer<S> for CorsLayer {
    type Service = Cors<S>;

    fn layer(&self, inner: S) -> Cors<S> {
        Cors { inner }
    }
}

#[derive(Clone)]
pub struct Cors<S> {
    inner: S,
}

fn preflight(origin: HeaderValue) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    allow(headers, origin);
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOWED_METHODS));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOWED_HEADERS));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    headers.append(
        header::VARY,
        HeaderValue::from_static("access-control-request-method, access-control-request-headers"),
    );
    response
}

fn allow(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}

impl<S> Service<Request<Body>> for Cors<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = CorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
            return CorsFuture::Plain { inner: self.inner.call(request) };
        };
        if is_preflight(&request) {
            return CorsFuture::Preflight { response: Some(preflight(origin)) };
        }
        CorsFuture::Allowed { inner: self.inner.call(request), origin: Some(origin) }
    }
}

fn is_preflight(request: &Request<Body>) -> bool {
    request.method() == Method::OPTIONS
        && request.headers().contains_key(HeaderName::from_static("access-control-request-method"))
}

/// The same CORS handling as [`CorsLayer`] around a request served outside the router (the
/// server's direct route to the proxy, `server.rs`).
pub async fn around<F>(
    request: Request<Body>,
    handle: impl FnOnce(Request<Body>) -> F,
) -> Response<Body>
where
    F: Future<Output = Response<Body>>,
{
    let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
        return handle(request).await;
    };
    if is_preflight(&request) {
        return preflight(origin);
    }
    let mut response = handle(request).await;
    allow(response.headers_mut(), origin);
    response
}

pin_project_lite::pin_project! {
    #[project = Projected]
    pub enum CorsFuture<F> {
        Plain { #[pin] inner: F },
        Allowed { #[pin] inner: F, origin: Option<HeaderValue> },
        Preflight { response: Option<Response<Body>> },
    }
}

impl<F, E> Future for CorsFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Projected::Plain { inner } => inner.poll(cx),
            Projected::Allowed { inner, origin } => {
                let mut response = std::task::ready!(inner.poll(cx))?;
                if let Some(origin) = origin.take() {
                    allow(response.headers_mut(), origin);
                }
                Poll::Ready(Ok(response))
            }
            Projected::Preflight { response } => {
                Poll::Ready(Ok(response.take().expect("a preflight future is polled once")))
            }
        }
    }
}
