//! CORS for the SDK running in the company's pages, kept off the hot path: a request without an
//! `Origin` header (server-to-server calls, most proxy traffic) passes through untouched; one
//! with an origin gets it mirrored, without credentials (the SDK sends its user token in
//! `Authorization`, never cookies), or with credentials when `PARA_CORS_ORIGINS` lists it; a
//! preflight is answered here. With a list, other origins get no CORS headers unless it holds
//! `*` (then they get the default). The header values and the list are made once.

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header,
};
use tower::{Layer, Service};

/// The headers the SDK sends (CONNECT-API.md), plus the usual ones.
const ALLOWED_HEADERS: &str = "authorization, content-type, accept, x-paragon-credential, x-paragon-configuration-id, x-paragon-sdk-version, x-paragon-user-metadata, x-paragon-proxy-url, x-paragon-use-raw-response";
const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";

/// Which origins get CORS: `PARA_CORS_ORIGINS`, read once.
struct Policy {
    /// Origins allowed with credentials (`scheme://host[:port]`, lower case).
    listed: Vec<String>,
    /// Whether other origins are mirrored (without credentials): no list, or `*` in it.
    others: bool,
}

static POLICY: LazyLock<Policy> =
    LazyLock::new(|| Policy::parse(std::env::var("PARA_CORS_ORIGINS").ok().as_deref()));

impl Policy {
    /// A comma-separated list of origins and `*`; unset or empty: every origin, without
    /// credentials. An entry that is no origin is reported and left out (`null` too: it is
    /// what sandboxed frames and local files send).
    fn parse(list: Option<&str>) -> Policy {
        let everyone = Policy { listed: Vec::new(), others: true };
        let entries: Vec<&str> =
            list.unwrap_or("").split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
        if entries.is_empty() {
            return everyone;
        }
        let mut policy = Policy { listed: Vec::new(), others: false };
        for entry in entries {
            if entry == "*" {
                policy.others = true;
                continue;
            }
            let origin = entry.trim_end_matches('/').to_ascii_lowercase();
            let valid = url::Url::parse(&origin).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.origin().ascii_serialization() == origin
            });
            if valid {
                policy.listed.push(origin);
            } else {
                eprintln!(
                    "para: PARA_CORS_ORIGINS: `{entry}` is not an origin (scheme://host[:port]); left out"
                );
            }
        }
        policy
    }

    fn grant(&self, origin: HeaderValue) -> Grant {
        let bytes = origin.as_bytes();
        if self.listed.iter().any(|o| o.as_bytes().eq_ignore_ascii_case(bytes)) {
            Grant::Credentials(origin)
        } else if self.others {
            Grant::Plain(origin)
        } else {
            Grant::Refused
        }
    }
}

/// What a request from an origin gets.
enum Grant {
    /// `Access-Control-Allow-Origin` and `-Credentials`.
    Credentials(HeaderValue),
    /// `Access-Control-Allow-Origin`.
    Plain(HeaderValue),
    /// Nothing: the browser keeps the answer from the page.
    Refused,
}

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

fn preflight(grant: Grant) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    let refused = matches!(grant, Grant::Refused);
    *response.status_mut() = if refused { StatusCode::FORBIDDEN } else { StatusCode::NO_CONTENT };
    let headers = response.headers_mut();
    allow(headers, grant);
    if refused {
        return response;
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOWED_METHODS));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOWED_HEADERS));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    headers.append(
        header::VARY,
        HeaderValue::from_static("access-control-request-method, access-control-request-headers"),
    );
    response
}

fn allow(headers: &mut HeaderMap, grant: Grant) {
    match grant {
        Grant::Credentials(origin) => {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers
                .insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        Grant::Plain(origin) => {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
        Grant::Refused => {}
    }
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
        let grant = POLICY.grant(origin);
        if is_preflight(&request) {
            return CorsFuture::Preflight { response: Some(preflight(grant)) };
        }
        CorsFuture::Allowed { inner: self.inner.call(request), grant: Some(grant) }
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
    let grant = POLICY.grant(origin);
    if is_preflight(&request) {
        return preflight(grant);
    }
    let mut response = handle(request).await;
    allow(response.headers_mut(), grant);
    response
}

pin_project_lite::pin_project! {
    #[project = Projected]
    pub enum CorsFuture<F> {
        Plain { #[pin] inner: F },
        Allowed { #[pin] inner: F, grant: Option<Grant> },
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
            Projected::Allowed { inner, grant } => {
                let mut response = std::task::ready!(inner.poll(cx))?;
                if let Some(grant) = grant.take() {
                    allow(response.headers_mut(), grant);
                }
                Poll::Ready(Ok(response))
            }
            Projected::Preflight { response } => {
                Poll::Ready(Ok(response.take().expect("a preflight future is polled once")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(policy: &Policy, origin: &'static str) -> &'static str {
        match policy.grant(HeaderValue::from_static(origin)) {
            Grant::Credentials(_) => "credentials",
            Grant::Plain(_) => "plain",
            Grant::Refused => "refused",
        }
    }

    #[test]
    fn the_list_names_the_origins_with_credentials() {
        for unset in [None, Some(""), Some(" , ")] {
            let p = Policy::parse(unset);
            assert_eq!(grant(&p, "https://any.example"), "plain", "{unset:?}");
            assert_eq!(grant(&p, "null"), "plain");
        }
        let p = Policy::parse(Some(
            "https://App.example/, http://localhost:3000 ,app.example, null, https://x.example/path, ftp://f.example",
        ));
        assert_eq!(p.listed, ["https://app.example", "http://localhost:3000"]);
        assert_eq!(grant(&p, "https://app.example"), "credentials");
        assert_eq!(grant(&p, "https://APP.example"), "credentials");
        assert_eq!(grant(&p, "http://localhost:3000"), "credentials");
        for other in
            ["http://app.example", "https://app.example:444", "https://evil.example", "null"]
        {
            assert_eq!(grant(&p, other), "refused", "{other}");
        }
        let p = Policy::parse(Some("https://app.example,*"));
        assert_eq!(grant(&p, "https://app.example"), "credentials");
        assert_eq!(grant(&p, "https://other.example"), "plain");
        // Only invalid entries: nothing is allowed (never everything).
        assert_eq!(grant(&Policy::parse(Some("app.example")), "https://app.example"), "refused");
    }
}
