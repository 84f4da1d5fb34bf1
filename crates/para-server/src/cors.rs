//! CORS for the SDK running in the company's pages, kept off the hot path: a request without an
//! `Origin` header (server-to-server calls, most proxy traffic) passes through untouched; one
//! with an origin gets it mirrored, without credentials (the SDK sends its user token in
//! `Authorization`, never cookies), or with credentials when `PARA_CORS_ORIGINS` lists it; a
//! preflight is answered here. With a list, other origins get no CORS headers unless it holds
//! `*` (then they get the default). The header values and the list ([`CorsPolicy`], in
//! [`crate::ServerConfig::cors`]) are made once, when the server starts.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header,
};
use tower::{Layer, Service};

/// The headers the SDK sends (CONNECT-API.md), plus the usual ones.
const ALLOWED_HEADERS: &str = "authorization, content-type, accept, x-paragon-credential, x-paragon-configuration-id, x-paragon-sdk-version, x-paragon-user-metadata, x-paragon-proxy-url, x-paragon-use-raw-response";
const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";

/// Which origins get CORS (`PARA_CORS_ORIGINS`). The default: every origin, without
/// credentials.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    /// Origins allowed with credentials (`scheme://host[:port]`, lower case).
    listed: Vec<String>,
    /// Whether other origins are mirrored (without credentials): no list, or `*` in it.
    others: bool,
}

impl Default for CorsPolicy {
    fn default() -> Self {
        CorsPolicy { listed: Vec::new(), others: true }
    }
}

impl CorsPolicy {
    /// A comma-separated list of origins and `*`; unset or empty: every origin, without
    /// credentials. An entry that is no origin (`null` too: it is what sandboxed frames and
    /// local files send) is an error that names it.
    pub fn parse(list: Option<&str>) -> Result<CorsPolicy, String> {
        let entries: Vec<&str> =
            list.unwrap_or("").split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
        if entries.is_empty() {
            return Ok(CorsPolicy::default());
        }
        let mut policy = CorsPolicy { listed: Vec::new(), others: false };
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
            if !valid {
                return Err(format!(
                    "`{entry}` is not an origin: list origins as scheme://host[:port] (like https://app.example), or `*`"
                ));
            }
            policy.listed.push(origin);
        }
        Ok(policy)
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

/// CORS around the router's API routes, with the server's policy.
#[derive(Clone)]
pub struct CorsLayer(pub Arc<CorsPolicy>);

impl<S> Layer<S> for CorsLayer {
    type Service = Cors<S>;

    fn layer(&self, inner: S) -> Cors<S> {
        Cors { inner, policy: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct Cors<S> {
    inner: S,
    policy: Arc<CorsPolicy>,
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
        let grant = self.policy.grant(origin);
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
/// server's direct route to the proxy, `server.rs`). `owner` holds the policy and is handed to
/// `handle` afterwards, so the hot path clones nothing.
pub async fn around<T, F>(
    owner: T,
    policy: impl FnOnce(&T) -> &CorsPolicy,
    request: Request<Body>,
    handle: impl FnOnce(T, Request<Body>) -> F,
) -> Response<Body>
where
    F: Future<Output = Response<Body>>,
{
    let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
        return handle(owner, request).await;
    };
    let grant = policy(&owner).grant(origin);
    if is_preflight(&request) {
        return preflight(grant);
    }
    let mut response = handle(owner, request).await;
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

    fn grant(policy: &CorsPolicy, origin: &'static str) -> &'static str {
        match policy.grant(HeaderValue::from_static(origin)) {
            Grant::Credentials(_) => "credentials",
            Grant::Plain(_) => "plain",
            Grant::Refused => "refused",
        }
    }

    #[test]
    fn the_list_names_the_origins_with_credentials() {
        for unset in [None, Some(""), Some(" , ")] {
            let p = CorsPolicy::parse(unset).unwrap();
            assert_eq!(grant(&p, "https://any.example"), "plain", "{unset:?}");
            assert_eq!(grant(&p, "null"), "plain");
        }
        let p = CorsPolicy::parse(Some("https://App.example/, http://localhost:3000 ")).unwrap();
        assert_eq!(p.listed, ["https://app.example", "http://localhost:3000"]);
        assert_eq!(grant(&p, "https://app.example"), "credentials");
        assert_eq!(grant(&p, "https://APP.example"), "credentials");
        assert_eq!(grant(&p, "http://localhost:3000"), "credentials");
        for other in
            ["http://app.example", "https://app.example:444", "https://evil.example", "null"]
        {
            assert_eq!(grant(&p, other), "refused", "{other}");
        }
        let p = CorsPolicy::parse(Some("https://app.example,*")).unwrap();
        assert_eq!(grant(&p, "https://app.example"), "credentials");
        assert_eq!(grant(&p, "https://other.example"), "plain");
        // An entry that is no origin is an error naming it (never silently left out).
        for bad in ["app.example", "null", "https://x.example/path", "ftp://f.example"] {
            let err = CorsPolicy::parse(Some(&format!("https://app.example, {bad}"))).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }
}
