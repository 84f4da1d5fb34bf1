//! `ANY /projects/{id}/sdk/proxy/{integration}/{path…}`: the SDK's `request()`. The request
//! goes to the integration's API base URL + path with the user's credential applied; the
//! answer comes back wrapped as `{ "output": … }` (raw with `X-Paragon-Use-Raw-Response`).
//!
//! The path is taken from the raw URI and must stay below the API base: absolute URLs, `..`
//! segments (also percent-encoded), backslashes and encoded slashes are refused. The target is
//! then the base's path + the checked path, encoded as a URL parser would (a test compares the
//! two for every character); for an unusual base (not in its parsed form, or with a query,
//! fragment or user info) the URL is joined, parsed and checked to have the base's scheme,
//! host, port and path prefix.
//!
//! What a request needs of its credential (the API base parsed, the authorization rendered)
//! is worked out once per cache entry ([`Prepared`]); requests go out through the proxy's own
//! HTTP/1.1 client ([`crate::upstream`]).
//!
//! What passes: the methods an API is called with (TRACE, CONNECT and extension methods are
//! refused), the request headers an API reads ([`forwardable`]: an allow-list of the headers
//! HTTP defines, and extension headers except those intermediaries act on), and in a raw answer
//! the headers that cannot act on para's own origin ([`passable`]), with a sandboxing
//! `Content-Security-Policy` of ours.
//!
//! Memory: request bodies and wrapped answers are held whole (a request may be sent twice,
//! after a refresh; an answer is checked to be JSON before it is wrapped), so what they hold is
//! counted against a [`Budget`] per server; raw answers stream and hold only a read buffer.

use std::borrow::Cow;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use para_store::Credential;
use serde_json::Value;

use crate::auth::SdkUser;
use crate::connector::{Connector, Material};
use crate::error::ApiError;
use crate::state::AppState;
use crate::{refresh, upstream};

/// Request bodies larger than this are refused (413).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// `PARA_PROXY_MAX_INFLIGHT_BYTES`'s default: what all request bodies and wrapped answers
/// held at once may take.
const DEFAULT_MAX_INFLIGHT: usize = 128 * 1024 * 1024;
/// `PARA_PROXY_MAX_WRAPPED_BYTES`'s default: the largest answer wrapped as `{"output": …}`
/// (the cap of a request body).
const DEFAULT_MAX_WRAPPED: usize = MAX_BODY;

/// The memory proxy bodies may hold, one per server (`AppState::proxy_budget`): request bodies
/// (read whole: a request is sent again after a refresh) and wrapped answers (read whole to be
/// checked and wrapped) of all requests together, from the moment their length is known (a
/// `Content-Length`, or each piece as it arrives) until they are dropped (a wrapped answer:
/// once it is written to the client). Past it a request gets a 503 (`proxy_busy`).
pub struct Budget {
    /// `PARA_PROXY_MAX_INFLIGHT_BYTES`.
    limit: usize,
    /// `PARA_PROXY_MAX_WRAPPED_BYTES`: a larger answer is refused (502) unless asked for raw.
    wrapped: usize,
    held: AtomicUsize,
    /// The most held at once so far.
    peak: AtomicUsize,
}

impl Budget {
    /// The limits from `PARA_PROXY_MAX_INFLIGHT_BYTES` and `PARA_PROXY_MAX_WRAPPED_BYTES`
    /// (whole numbers of bytes), else the defaults.
    pub fn from_env() -> Budget {
        Budget::new(
            byte_setting("PARA_PROXY_MAX_INFLIGHT_BYTES", DEFAULT_MAX_INFLIGHT),
            byte_setting("PARA_PROXY_MAX_WRAPPED_BYTES", DEFAULT_MAX_WRAPPED),
        )
    }

    pub fn new(limit: usize, wrapped: usize) -> Budget {
        Budget { limit, wrapped, held: AtomicUsize::new(0), peak: AtomicUsize::new(0) }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The most bytes held at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Holds `n` more bytes if they fit.
    fn take(&self, n: usize) -> bool {
        if n > self.limit {
            return false;
        }
        let now = self.held.fetch_add(n, Ordering::Relaxed) + n;
        if now > self.limit {
            self.held.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        if now > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
        true
    }

    fn give_back(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::Relaxed);
    }

    fn busy(&self, what: &str) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            BUSY,
            format!(
                "the proxy holds as many bodies as it may ({} bytes, PARA_PROXY_MAX_INFLIGHT_BYTES): {what}; try again shortly",
                self.limit
            ),
        )
    }
}

/// The code of a 503 past the [`Budget`] (answered with `Retry-After`).
const BUSY: &str = "proxy_busy";

/// A setting in bytes from the environment; an unreadable value is reported and the default
/// used.
fn byte_setting(name: &str, default: usize) -> usize {
    let Ok(text) = std::env::var(name) else { return default };
    let text = text.trim();
    if text.is_empty() {
        return default;
    }
    text.parse().unwrap_or_else(|_| {
        eprintln!("para: {name} must be a whole number of bytes, not `{text}`; using {default}");
        default
    })
}

/// Bytes held against a [`Budget`], given back when dropped.
struct Held {
    budget: Option<Arc<Budget>>,
    bytes: usize,
}

impl Held {
    const NONE: Held = Held { budget: None, bytes: 0 };

    /// Holds `total` bytes in all from now on (more or fewer); false if they do not fit (then
    /// what was held stays held).
    fn resize(&mut self, budget: &Arc<Budget>, total: usize) -> bool {
        if total > self.bytes {
            if !budget.take(total - self.bytes) {
                return false;
            }
        } else {
            budget.give_back(self.bytes - total);
        }
        self.bytes = total;
        if self.budget.is_none() {
            self.budget = Some(budget.clone());
        }
        true
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give_back(self.bytes);
        }
    }
}

/// Why a body was not read whole.
enum Unread {
    /// Over its cap.
    TooLarge,
    /// Over the [`Budget`].
    Busy,
    Failed(axum::Error),
}

/// Reads `body` whole, holding it against `budget` (`held` may already hold its announced
/// length) as it grows: a body in one piece is kept as it came, one in several is gathered
/// into one buffer (of the announced length when there is one). Stops past `cap` bytes.
async fn read_whole(
    mut body: Body,
    held: &mut Held,
    budget: &Arc<Budget>,
    cap: usize,
) -> Result<Bytes, Unread> {
    let mut first: Option<Bytes> = None;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(Unread::Failed)?.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        let len = first.as_ref().map_or(buf.len(), Bytes::len) + data.len();
        if len > cap {
            return Err(Unread::TooLarge);
        }
        if first.is_none() && buf.capacity() == 0 {
            if len > held.bytes && !held.resize(budget, len) {
                return Err(Unread::Busy);
            }
            first = Some(data);
            continue;
        }
        if len > buf.capacity() {
            // Doubling (up to the cap), or the announced length held already.
            let grown = len.max(2 * buf.capacity()).min(cap).max(held.bytes);
            if grown > held.bytes && !held.resize(budget, grown) {
                return Err(Unread::Busy);
            }
            buf.reserve_exact(grown - buf.len());
        }
        if let Some(first) = first.take() {
            buf.extend_from_slice(&first);
        }
        buf.extend_from_slice(&data);
    }
    Ok(first.unwrap_or_else(|| Bytes::from(buf)))
}

/// Reads a request body whole within the [`Budget`]: 413 past [`MAX_BODY`] (on its
/// `Content-Length`, before reading any of it), 503 when it would not fit (held from its
/// `Content-Length` on, before reading any of it).
async fn read_request(
    body: Body,
    length: Option<u64>,
    budget: &Arc<Budget>,
) -> Result<(Bytes, Held), ApiError> {
    let too_large = || {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the request body is over 16 MB")
    };
    let mut held = Held::NONE;
    if let Some(n) = length {
        let n = usize::try_from(n).ok().filter(|&n| n <= MAX_BODY).ok_or_else(too_large)?;
        if !held.resize(budget, n) {
            return Err(budget.busy(&format!("a request body of {n} bytes does not fit now")));
        }
    }
    match read_whole(body, &mut held, budget, MAX_BODY).await {
        Ok(bytes) => Ok((bytes, held)),
        Err(Unread::TooLarge) => Err(too_large()),
        Err(Unread::Busy) => Err(budget.busy("the request body does not fit now")),
        Err(Unread::Failed(e)) => {
            Err(ApiError::bad_request(format!("reading the request body failed: {e}")))
        }
    }
}

/// Whether `path` is a proxy request, `/projects/{project}/sdk/proxy/{integration}[/{path…}]`:
/// the server sends those to [`serve`] instead of the router (`server.rs`). The set is what
/// axum would match for the pattern `ROUTE` (a test compares the two), so the project segment
/// may be empty (the token check then refuses it).
pub fn is_proxy_path(path: &str) -> bool {
    after_marker(path).is_some_and(|tail| !tail.is_empty())
}

/// The proxy's paths as an axum route would write them.
#[cfg(test)]
const ROUTE: &str = "/projects/{project}/sdk/proxy/{*integration_and_path}";

/// What follows `/projects/{project}/sdk/proxy/` in `path`.
fn after_marker(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/projects/")?;
    let slash = memchr::memchr(b'/', rest.as_bytes())?;
    rest[slash..].strip_prefix("/sdk/proxy/")
}

/// Serves a proxy request: authenticates its user (as every Connect API call does), then
/// [`proxy`].
pub async fn serve(state: Arc<AppState>, request: Request) -> Response {
    if !forwarded_method(request.method()) {
        return method_refused(request.method());
    }
    let (parts, body) = request.into_parts();
    let answer = match crate::auth::authenticate(&parts, &state).await {
        Ok(user) => proxy(&state, &user, parts, body).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(answer) => answer,
        Err(e) => {
            let busy = e.code == BUSY;
            let mut answer = e.into_response();
            if busy {
                answer.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            answer
        }
    }
}

/// The methods forwarded: those APIs are called with. TRACE (it echoes the request, headers
/// added on the way included), CONNECT (a tunnel) and extension methods are refused.
fn forwarded_method(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET
            | Method::POST
            | Method::PUT
            | Method::PATCH
            | Method::DELETE
            | Method::HEAD
            | Method::OPTIONS
    )
}

const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

fn method_refused(method: &Method) -> Response {
    let mut answer = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("the proxy does not forward {method} requests (only {ALLOWED_METHODS})"),
    )
    .into_response();
    answer.headers_mut().insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
    answer
}

/// The integration (percent-decoded) and the rest of the raw request path after
/// `/sdk/proxy/{integration}`.
fn split_path(path: &str) -> Option<(Cow<'_, str>, &str)> {
    let rest = after_marker(path)?;
    // The integration segment as sent (it may be percent-encoded).
    let end = memchr::memchr(b'/', rest.as_bytes()).unwrap_or(rest.len());
    let segment = &rest[..end];
    let integration = if segment.contains('%') {
        Cow::Owned(percent_decode(segment)?)
    } else {
        Cow::Borrowed(segment)
    };
    Some((integration, &rest[end..]))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Refuses a proxied path that could leave the API base. Returns the path to append.
pub fn safe_path(tail: &str) -> Result<&str, String> {
    if !tail.bytes().any(|b| b == b'%' || b == b'\\')
        && !tail.starts_with("//")
        && !tail.contains("://")
    {
        // Nothing encoded (the usual case): the path is its own decoding, checked as below.
        return plain_segments(tail).map(|()| tail);
    }
    let lower = tail.to_ascii_lowercase();
    if tail.contains('\\') || lower.contains("%5c") {
        return Err("backslashes are not allowed in a proxied path".into());
    }
    if lower.contains("%2f") || lower.contains("%00") {
        return Err("encoded slashes or NUL are not allowed in a proxied path".into());
    }
    if tail.starts_with("//") {
        return Err("a proxied path must not start with `//`".into());
    }
    if tail.contains("://") || lower.contains("%3a%2f%2f") {
        return Err("a proxied path must be a path below the API base, not a URL".into());
    }
    let decoded = percent_decode(tail).ok_or("the proxied path is not valid percent-encoding")?;
    plain_segments(&decoded).map(|()| tail)
}

/// A decoded path: no `.`/`..` segment, also with path parameters (`..;x`: servlet
/// containers drop what follows `;` in a segment before resolving it), no control character.
fn plain_segments(decoded: &str) -> Result<(), String> {
    // `.` or `..`, alone or before `;`.
    let dots = |seg: &[u8]| match seg {
        [b'.', rest @ ..] => {
            let rest = rest.strip_prefix(b".").unwrap_or(rest);
            rest.first().is_none_or(|&b| b == b';')
        }
        _ => false,
    };
    if decoded.as_bytes().split(|&b| b == b'/').any(dots) {
        return Err("`.` and `..` segments (also `..;`) are not allowed in a proxied path".into());
    }
    if decoded.chars().any(|c| c.is_control()) {
        return Err("control characters are not allowed in a proxied path".into());
    }
    Ok(())
}

/// Joins base + path and checks the result stays below the base.
pub fn join(base: &str, tail: &str, query: Option<&str>) -> Result<url::Url, String> {
    let joined = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{base}{tail}?{q}"),
        None => format!("{base}{tail}"),
    };
    let url = url::Url::parse(&joined).map_err(|e| format!("`{joined}` is not a URL: {e}"))?;
    let base_url = url::Url::parse(base).map_err(|e| format!("bad API base `{base}`: {e}"))?;
    let same_origin = url.scheme() == base_url.scheme()
        && url.host_str() == base_url.host_str()
        && url.port_or_known_default() == base_url.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none();
    let base_path = base_url.path().trim_end_matches('/');
    let below = url.path() == base_path
        || url.path().strip_prefix(base_path).is_some_and(|rest| rest.starts_with('/'));
    if !same_origin || !below {
        return Err("the proxied path leaves the integration's API base".into());
    }
    Ok(url)
}

fn refused(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "proxy_path", message)
}

/// Whether a request header is forwarded. Of the headers HTTP defines (those the `http` crate
/// knows), only the ones describing what the caller asks for: content negotiation, the body's
/// own headers, conditionals and ranges, caching, `Date` and `User-Agent`. Never the
/// connection's (hop-by-hop, framing, `Host`, `Expect`), the caller's credentials for para
/// (`Authorization`, `Cookie`, `Proxy-*`), the browser's (`Origin`, `Referer`, `Sec-*`), what
/// intermediaries add or obey (`Forwarded`, `Via`, `Max-Forwards`), nor `Accept-Encoding` (the
/// answer is passed as it comes). Extension headers (API-specific: `Notion-Version`,
/// `Idempotency-Key`, `X-Api-Key`…) pass, except ours (`X-Paragon-*`) and those proxies, load
/// balancers and frameworks trust for the client's address, the URL or the method
/// (`X-Forwarded-*`, `X-Real-IP`, `X-Original-URL`, `X-Rewrite-URL`,
/// `X-HTTP-Method-Override`…). Headers the request's `Connection` names never pass either
/// ([`forwarded_headers`]). A `match` on the name: a jump on its length, then a comparison or
/// two.
fn forwardable(name: &HeaderName) -> bool {
    match name.as_str() {
        "accept"
        | "accept-charset"
        | "accept-language"
        | "cache-control"
        | "content-disposition"
        | "content-encoding"
        | "content-language"
        | "content-range"
        | "content-type"
        | "date"
        | "if-match"
        | "if-modified-since"
        | "if-none-match"
        | "if-range"
        | "if-unmodified-since"
        | "pragma"
        | "range"
        | "user-agent" => true,
        // The other headers HTTP defines.
        "accept-encoding"
        | "accept-ranges"
        | "access-control-allow-credentials"
        | "access-control-allow-headers"
        | "access-control-allow-methods"
        | "access-control-allow-origin"
        | "access-control-expose-headers"
        | "access-control-max-age"
        | "access-control-request-headers"
        | "access-control-request-method"
        | "age"
        | "allow"
        | "alt-svc"
        | "authorization"
        | "cache-status"
        | "cdn-cache-control"
        | "connection"
        | "content-length"
        | "content-location"
        | "content-security-policy"
        | "content-security-policy-report-only"
        | "cookie"
        | "dnt"
        | "etag"
        | "expect"
        | "expires"
        | "forwarded"
        | "from"
        | "host"
        | "last-modified"
        | "link"
        | "location"
        | "max-forwards"
        | "origin"
        | "public-key-pins"
        | "public-key-pins-report-only"
        | "referer"
        | "referrer-policy"
        | "refresh"
        | "retry-after"
        | "server"
        | "set-cookie"
        | "strict-transport-security"
        | "te"
        | "trailer"
        | "transfer-encoding"
        | "upgrade"
        | "upgrade-insecure-requests"
        | "vary"
        | "via"
        | "warning"
        | "www-authenticate"
        | "x-content-type-options"
        | "x-dns-prefetch-control"
        | "x-frame-options"
        | "x-xss-protection" => false,
        // Extension headers that are hop-by-hop, or that intermediaries and frameworks trust.
        "keep-alive"
        | "x-real-ip"
        | "x-client-ip"
        | "client-ip"
        | "true-client-ip"
        | "x-cluster-client-ip"
        | "cf-connecting-ip"
        | "fastly-client-ip"
        | "x-originating-ip"
        | "x-remote-ip"
        | "x-remote-addr"
        | "x-original-url"
        | "x-original-uri"
        | "x-rewrite-url"
        | "x-original-host"
        | "x-host"
        | "x-http-method-override"
        | "x-http-method"
        | "x-method-override"
        | "x-original-method"
        | "x-middleware-subrequest"
        | "x-envoy-original-path" => false,
        other => {
            !(other.starts_with("x-forwarded")
                || other.starts_with("x-paragon-")
                || other.starts_with("proxy-")
                || other.starts_with("sec-"))
        }
    }
}

/// The request headers that are forwarded ([`forwardable`]), in their order, with room for
/// the few the proxy adds, less those the request's `Connection` names (hop-by-hop for the
/// hop to para, RFC 9110 § 7.6.1). (Moving the kept ones into a new map is cheaper than
/// removing the others from the old one.)
fn forwarded_headers(headers: HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::with_capacity(headers.len() + 4);
    let mut current: Option<HeaderName> = None;
    let mut keep = false;
    let mut is_connection = false;
    // `Connection` values naming more than `close` or `keep-alive` (rare).
    let mut naming: Vec<HeaderValue> = Vec::new();
    for (name, value) in headers {
        // A name comes with its first value only; the values after it are `None`'s.
        if let Some(name) = name {
            keep = forwardable(&name);
            is_connection = name == header::CONNECTION;
            current = Some(name);
        }
        if keep && let Some(name) = &current {
            kept.append(name.clone(), value);
        } else if is_connection && names_headers(&value) {
            naming.push(value);
        }
    }
    if naming.is_empty() {
        return kept;
    }
    let named: Vec<HeaderName> = naming
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .filter_map(|token| HeaderName::from_bytes(token.trim_ascii()).ok())
        .collect();
    // Filtered again, in order (removing from a map reorders it).
    let mut again = HeaderMap::with_capacity(kept.len() + 4);
    let mut keep = false;
    for (name, value) in kept {
        if let Some(name) = name {
            keep = !named.contains(&name);
            current = Some(name);
        }
        if keep && let Some(name) = &current {
            again.append(name.clone(), value);
        }
    }
    again
}

/// Whether a `Connection` value names a header: something else than `close`/`keep-alive`.
fn names_headers(value: &HeaderValue) -> bool {
    value.as_bytes().split(|&b| b == b',').any(|token| {
        let token = token.trim_ascii();
        !(token.is_empty()
            || token.eq_ignore_ascii_case(b"close")
            || token.eq_ignore_ascii_case(b"keep-alive"))
    })
}

/// The only header a wrapped answer reads.
fn is_content_type(name: &HeaderName) -> bool {
    name == header::CONTENT_TYPE
}

/// Whether a header of a raw answer is passed back. A raw answer is served from para's own
/// origin, so never: hop-by-hop and framing headers (para frames its answer), cookies and CORS
/// (para's own), nor any header that would act on that origin in a browser (HSTS,
/// Clear-Site-Data, security and isolation policies, framing, `Refresh`, service-worker scope,
/// alternative services, reporting, client hints, login status). Para adds its own
/// `Content-Security-Policy` and `X-Content-Type-Options` ([`SANDBOX`]).
fn passable(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
            | "proxy-authenticate"
            | "proxy-authentication-info"
            | "set-cookie"
            | "set-cookie2"
            | "access-control-allow-origin"
            | "access-control-allow-credentials"
            | "access-control-allow-headers"
            | "access-control-allow-methods"
            | "access-control-allow-private-network"
            | "access-control-expose-headers"
            | "access-control-max-age"
            | "strict-transport-security"
            | "public-key-pins"
            | "public-key-pins-report-only"
            | "expect-ct"
            | "alt-svc"
            | "clear-site-data"
            | "content-security-policy"
            | "content-security-policy-report-only"
            | "x-content-security-policy"
            | "x-webkit-csp"
            | "x-content-type-options"
            | "x-frame-options"
            | "x-xss-protection"
            | "x-dns-prefetch-control"
            | "x-permitted-cross-domain-policies"
            | "cross-origin-opener-policy"
            | "cross-origin-opener-policy-report-only"
            | "cross-origin-embedder-policy"
            | "cross-origin-embedder-policy-report-only"
            | "cross-origin-resource-policy"
            | "origin-agent-cluster"
            | "permissions-policy"
            | "feature-policy"
            | "document-policy"
            | "refresh"
            | "service-worker-allowed"
            | "nel"
            | "report-to"
            | "reporting-endpoints"
            | "accept-ch"
            | "critical-ch"
            | "speculation-rules"
            | "supports-loading-mode"
            | "set-login"
            | "activate-storage-access"
    )
}

/// The `Content-Security-Policy` of a raw answer: opened as a page (it is served from para's
/// origin), it runs no script, loads nothing, has an origin of its own and cannot be framed.
const SANDBOX: HeaderValue =
    HeaderValue::from_static("sandbox; default-src 'none'; frame-ancestors 'none'");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");

fn truthy(headers: &HeaderMap, name: HeaderName) -> bool {
    headers.get(name).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        let v = v.trim();
        ["1", "true", "yes"].iter().any(|t| v.eq_ignore_ascii_case(t))
    })
}

/// The `Content-Type` to send instead of `auto`: JSON for a JSON body, text for another,
/// none without a body.
fn auto_content_type(body: &Bytes) -> Option<HeaderValue> {
    if body.is_empty() {
        return None;
    }
    let kind = if serde_json::from_slice::<Value>(body).is_ok() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    Some(HeaderValue::from_static(kind))
}

/// The `User-Agent` when the caller sent none.
fn user_agent() -> HeaderValue {
    HeaderValue::from_static(concat!("para/", env!("CARGO_PKG_VERSION")))
}

async fn proxy(
    state: &AppState,
    user: &SdkUser,
    mut parts: axum::http::request::Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let (integration, tail) =
        split_path(parts.uri.path()).ok_or_else(|| refused("the proxy path could not be read"))?;
    let tail = safe_path(tail).map_err(refused)?;
    let connector = state.connector(&integration).ok_or_else(|| {
        ApiError::not_found(format!("no integration `{integration}` in this project"))
    })?;
    let selected = crate::auth::selected_credential(&parts.headers).unwrap_or("");
    let mut prepared = match state.credential_cache.get(&user.user_id, &integration, selected) {
        // Prepared with this connector (a rebuilt project has new ones).
        Some(hit) if Arc::ptr_eq(&hit.connector, &connector) => hit,
        _ => {
            // Boxed, as every rare path here: their futures (database, token refresh) would
            // otherwise make every request's future, moved into a box per request, larger.
            let c = Box::pin(pick_credential(state, user, &integration, selected)).await?;
            let (c, m) = Box::pin(refresh::usable(state, &connector, c)).await?;
            let prepared = Arc::new(Prepared::new(state, &connector, c, m));
            state.credential_cache.put(&user.user_id, &integration, selected, &prepared);
            prepared
        }
    };
    let budget = &state.proxy_budget;
    // Held until the exchange is over (a raw answer then streams without it).
    let (body, _held) = if body.is_end_stream() {
        (Bytes::new(), Held::NONE)
    } else {
        let length = body.size_hint().exact();
        Box::pin(read_request(body, length, budget)).await?
    };
    const RAW: HeaderName = HeaderName::from_static("x-paragon-use-raw-response");
    let raw = truthy(&parts.headers, RAW);
    let auto = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"auto"))
        .then(|| auto_content_type(&body));
    // The caller's headers, filtered in place.
    let mut forwarded = forwarded_headers(std::mem::take(&mut parts.headers));
    if let Some(kind) = auto {
        forwarded.remove(header::CONTENT_TYPE);
        if let Some(kind) = kind {
            forwarded.insert(header::CONTENT_TYPE, kind);
        }
    }
    // What reqwest, which used to send these, adds when the caller did not (the
    // authorization's headers replace them below, as before).
    if !forwarded.contains_key(header::ACCEPT) {
        forwarded.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    }
    if !forwarded.contains_key(header::USER_AGENT) {
        forwarded.insert(header::USER_AGENT, user_agent());
    }
    // A second attempt (after a refresh) needs them again.
    let mut again = refresh::can_refresh(&connector).then(|| forwarded.clone());
    let keep: fn(&HeaderName) -> bool = if raw { passable } else { is_content_type };
    let mut retried = false;
    loop {
        let mut target = prepared.target(state, tail, parts.uri.query())?;
        let authorization = prepared.authorization()?;
        target.append_query(&authorization.query);
        let mut headers = std::mem::take(&mut forwarded);
        for (name, value) in &authorization.headers {
            headers.insert(name.clone(), value.clone());
        }
        headers.entry(header::HOST).or_insert_with(|| target.host.clone());
        let origin = target.origin.clone();
        let request = upstream::Outgoing {
            method: parts.method.clone(),
            target: target.text,
            headers,
            body: body.clone(),
        };
        let answer = match state.upstream.send(&origin, request, keep).await {
            Ok(answer) => answer.map(Body::new),
            Err(e) => {
                let what = if e.is_timeout() { "timed out" } else { "failed" };
                let target = prepared.target(state, tail, parts.uri.query())?;
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream",
                    format!(
                        "{} {}://{}{} {what}: {e}",
                        connector.name,
                        origin.scheme(),
                        origin.host(),
                        target.path(),
                    ),
                ));
            }
        };
        if answer.status() == StatusCode::UNAUTHORIZED
            && !retried
            && let Some(headers) = again.take()
        {
            retried = true;
            forwarded = headers;
            if let Some((fresh, m)) = Box::pin(refresh::after_unauthorized(
                state,
                &connector,
                prepared.credential.clone(),
            ))
            .await?
            {
                prepared = Arc::new(Prepared::new(state, &connector, fresh, m));
                continue;
            }
        }
        return respond(answer, raw, budget).await;
    }
}

/// `X-Paragon-Credential` selects one of the user's credentials (only theirs); else the newest
/// valid one of the integration.
async fn pick_credential(
    state: &AppState,
    user: &SdkUser,
    integration: &str,
    selected: &str,
) -> Result<para_store::Credential, ApiError> {
    let all = state.store.credentials(&state.project_id, &user.user_id, Some(integration)).await?;
    let selected = (!selected.is_empty()).then_some(selected);
    match (crate::engine::acting_credential(&all, integration, selected), selected) {
        (Some(c), _) => Ok(c.clone()),
        (None, Some(id)) => {
            Err(ApiError::not_found(format!("you have no credential `{id}` for {integration}")))
        }
        (None, None) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_connected",
            format!("connect {integration} first: this user has no valid credential for it"),
        )),
    }
}

/// An error worked out once for a credential and answered on each request that meets it.
#[derive(Debug, Clone)]
struct Refusal {
    code: &'static str,
    message: String,
}

impl Refusal {
    fn error(&self) -> ApiError {
        ApiError::new(StatusCode::BAD_GATEWAY, self.code, self.message.clone())
    }
}

/// A credential made ready for the proxy, once per cache entry ([`crate::refresh::Cache`]):
/// opened, its API base URL rendered, parsed and checked, its origin's connection pool found,
/// and its authorization rendered into header values and query text. A request then renders
/// no template and parses no URL.
pub struct Prepared {
    pub credential: Credential,
    /// The connector it was prepared with.
    connector: Arc<Connector>,
    base: Result<Base, Refusal>,
    authorization: Result<Authorization, Refusal>,
}

struct Base {
    /// The rendered API base URL, without a trailing `/`.
    text: String,
    /// Set when the base is in its parsed form and has no query, fragment or user info (the
    /// usual case, see [`is_simple_base`]): a target is then its path + the checked tail,
    /// without joining and parsing.
    simple: Option<SimpleBase>,
}

struct SimpleBase {
    origin: Arc<upstream::Origin>,
    /// The `Host` header: host, and the port when it is not the scheme's default.
    host: HeaderValue,
    /// The base's path as a URL parser normalises and encodes it, without a trailing `/`.
    path: String,
}

struct Authorization {
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Query parameters, `application/x-www-form-urlencoded`, appended to the query.
    query: String,
}

/// Whether `text` (a base URL without a trailing `/`) is already what parsing makes of it (so
/// no `.`/`..` segments, nothing to encode, a lower-case host, no default port), with no user
/// info, query or fragment. Then a checked tail appended to its path stays below it exactly as
/// joining and parsing would put it.
fn is_simple_base(text: &str, url: &url::Url) -> bool {
    url.as_str().trim_end_matches('/') == text
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
}

/// The `Host` header of a URL (as hyper-util's client writes it).
fn host_header(url: &url::Url) -> Option<HeaderValue> {
    let host = url.host_str()?;
    let value = match url.port() {
        Some(port) => HeaderValue::from_str(&format!("{host}:{port}")),
        None => HeaderValue::from_str(host),
    };
    value.ok()
}

impl Prepared {
    pub fn new(
        state: &AppState,
        connector: &Arc<Connector>,
        credential: Credential,
        material: Material,
    ) -> Prepared {
        let base = connector
            .base_url(&material)
            .map_err(|e| Refusal { code: "api_base", message: e.0 })
            .map(|text| {
                let simple = url::Url::parse(&text).ok().and_then(|url| {
                    if !is_simple_base(&text, &url) {
                        return None;
                    }
                    Some(SimpleBase {
                        origin: state.upstream.origin(&url)?,
                        host: host_header(&url)?,
                        path: url.path().trim_end_matches('/').to_string(),
                    })
                });
                Base { text, simple }
            });
        let authorization = connector
            .authorize(&material)
            .map_err(|e| Refusal { code: "authorization", message: e.0 })
            .and_then(|auth| {
                let mut headers = Vec::with_capacity(auth.headers.len());
                for (name, value) in &auth.headers {
                    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Refusal {
                        code: "authorization",
                        message: format!("`{name}` is not a header name"),
                    })?;
                    let value = HeaderValue::from_str(value).map_err(|_| Refusal {
                        code: "authorization",
                        message: format!("the `{name}` header value is not valid"),
                    })?;
                    headers.push((name, value));
                }
                let query = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&auth.query)
                    .finish();
                Ok(Authorization { headers, query })
            });
        Prepared { credential, connector: connector.clone(), base, authorization }
    }

    fn authorization(&self) -> Result<&Authorization, ApiError> {
        self.authorization.as_ref().map_err(Refusal::error)
    }

    /// Where `tail` (checked by [`safe_path`]) and `query` go: below the API base, always.
    fn target(
        &self,
        state: &AppState,
        tail: &str,
        query: Option<&str>,
    ) -> Result<Target, ApiError> {
        let base = self.base.as_ref().map_err(Refusal::error)?;
        let query = query.filter(|q| !q.is_empty());
        match &base.simple {
            // A checked tail is empty or `/…` without `.`/`..` segments, `//` at the start,
            // backslashes or encoded slashes: appended to the base's path it stays below it.
            Some(simple) if tail.is_empty() || tail.starts_with('/') => {
                let (text, path_len, query) = below(&simple.path, tail, query);
                Ok(Target {
                    origin: simple.origin.clone(),
                    host: simple.host.clone(),
                    text,
                    path_len,
                    query,
                })
            }
            _ => {
                let url = join(&base.text, tail, query).map_err(refused)?;
                let unusable = || {
                    ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "api_base",
                        format!("the API base URL `{}` cannot be used", base.text),
                    )
                };
                let origin = state.upstream.origin(&url).ok_or_else(unusable)?;
                let host = host_header(&url).ok_or_else(unusable)?;
                let text = url[url::Position::BeforePath..url::Position::AfterQuery].to_string();
                let query = match url.query() {
                    None => QueryState::None,
                    Some("") => QueryState::Empty,
                    Some(_) => QueryState::Some,
                };
                Ok(Target { origin, host, path_len: url.path().len(), text, query })
            }
        }
    }
}

/// `base_path` (a parsed base's path without the trailing `/`) + a checked `tail` (empty or
/// `/…`) and the query, encoded as a URL parser encodes them: the path and query text, the
/// path's length, and whether there is a query. The same as [`join`] gives for such a base
/// (a test compares them), without parsing.
fn below(base_path: &str, tail: &str, query: Option<&str>) -> (String, usize, QueryState) {
    let mut text =
        String::with_capacity(base_path.len() + tail.len() + query.map_or(0, str::len) + 64);
    text.push_str(base_path);
    encode_into(&mut text, tail, in_path_set);
    if text.is_empty() {
        text.push('/');
    }
    let path_len = text.len();
    let state = match query.filter(|q| !q.is_empty()) {
        Some(q) => {
            text.push('?');
            encode_into(&mut text, q, in_query_set);
            QueryState::Some
        }
        None => QueryState::None,
    };
    (text, path_len, state)
}

/// Whether a target has a query, as `url`'s `query_pairs_mut` sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum QueryState {
    None,
    Empty,
    Some,
}

/// A request's destination: the origin, and the path and query to ask for.
struct Target {
    origin: Arc<upstream::Origin>,
    host: HeaderValue,
    /// Path and query, encoded.
    text: String,
    path_len: usize,
    query: QueryState,
}

impl Target {
    fn path(&self) -> &str {
        &self.text[..self.path_len]
    }

    /// Appends encoded `name=value` pairs to the query (as `url`'s `append_pair` would).
    fn append_query(&mut self, pairs: &str) {
        if pairs.is_empty() {
            return;
        }
        match self.query {
            QueryState::None => self.text.push('?'),
            QueryState::Empty => {}
            QueryState::Some => self.text.push('&'),
        }
        self.text.push_str(pairs);
        self.query = QueryState::Some;
    }
}

/// Bytes a URL parser percent-encodes in a path (special schemes): controls, space,
/// `" # < > ? ` { }`, and everything beyond ASCII.
fn in_path_set(b: u8) -> bool {
    b <= 0x20 || b >= 0x7f || matches!(b, b'"' | b'#' | b'<' | b'>' | b'?' | b'`' | b'{' | b'}')
}

/// Bytes a URL parser percent-encodes in a query (special schemes): controls, space,
/// `" # < > '`, and everything beyond ASCII.
fn in_query_set(b: u8) -> bool {
    b <= 0x20 || b >= 0x7f || matches!(b, b'"' | b'#' | b'<' | b'>' | b'\'')
}

fn encode_into(out: &mut String, text: &str, encode: fn(u8) -> bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = text.as_bytes();
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if encode(b) {
            // Runs left as they are hold ASCII only (every byte beyond is encoded), so they
            // start and end on character boundaries.
            if plain < i {
                out.push_str(&text[plain..i]);
            }
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
            plain = i + 1;
        }
    }
    if plain < text.len() {
        out.push_str(&text[plain..]);
    }
}

async fn respond(answer: Response, raw: bool, budget: &Arc<Budget>) -> Result<Response, ApiError> {
    if raw {
        // Its headers are the passable ones already.
        let mut answer = answer;
        let headers = answer.headers_mut();
        // Appended: the upstream's were not kept.
        headers.append(header::CONTENT_SECURITY_POLICY, SANDBOX);
        headers.append(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
        return Ok(answer);
    }
    let (head, body) = answer.into_parts();
    let cap = budget.wrapped;
    let too_large = |size: Option<u64>| {
        let size = size.map_or_else(|| format!("over {cap} bytes"), |n| format!("{n} bytes"));
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "answer_too_large",
            format!(
                "the upstream's answer ({size}) is larger than a wrapped answer may be ({cap} bytes, PARA_PROXY_MAX_WRAPPED_BYTES); ask for it raw (`X-Paragon-Use-Raw-Response: 1`), which streams it"
            ),
        )
    };
    let hint = body.size_hint();
    if hint.lower() > cap as u64 {
        return Err(too_large(hint.exact()));
    }
    let mut held = Held::NONE;
    if let Some(n) = hint.exact().filter(|&n| n > 0)
        && !held.resize(budget, n as usize)
    {
        return Err(budget.busy("the upstream answered, but its answer does not fit now"));
    }
    let bytes = match read_whole(body, &mut held, budget, cap).await {
        Ok(bytes) => bytes,
        Err(Unread::TooLarge) => return Err(too_large(None)),
        Err(Unread::Busy) => {
            return Err(budget.busy("the upstream answered, but its answer does not fit now"));
        }
        Err(Unread::Failed(e)) => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream",
                format!("reading the answer failed: {e}"),
            ));
        }
    };
    let is_json = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    // `{"output": …}`: a JSON answer spliced in as it came (checked, never re-encoded, so
    // large numbers keep their digits), anything else as a JSON string.
    let body = if bytes.is_empty() {
        Wrapped::new([Bytes::from_static(b"{\"output\":null}"), Bytes::new(), Bytes::new()], held)
    } else if is_json && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() {
        let json = bytes.trim_ascii();
        if json.len() <= COPIED {
            // Copied behind the prefix: one piece is cheaper to write than three, and
            // slicing the answer would allocate too.
            let mut out = Vec::with_capacity(OUTPUT.len() + json.len() + 1);
            out.extend_from_slice(OUTPUT);
            out.extend_from_slice(json);
            out.push(b'}');
            // Held: the answer's length (its copy is 12 bytes longer, and it is dropped).
            Wrapped::new([Bytes::from(out), Bytes::new(), Bytes::new()], held)
        } else {
            let json = bytes.slice_ref(json);
            Wrapped::new([Bytes::from_static(OUTPUT), json, Bytes::from_static(b"}")], held)
        }
    } else {
        let text = String::from_utf8_lossy(&bytes);
        let size = OUTPUT.len() + json_string_len(&text) + 1;
        // The text's copy (when it was not UTF-8) and the escaped text are held too.
        let copied = if matches!(text, Cow::Owned(_)) { text.len() } else { 0 };
        if !held.resize(budget, held.bytes + copied + size) {
            return Err(budget.busy("the upstream answered, but its answer does not fit now"));
        }
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(OUTPUT);
        serde_json::to_writer(&mut out, &*text).expect("a JSON string serialises");
        out.push(b'}');
        drop(text);
        drop(bytes);
        held.resize(budget, out.capacity());
        Wrapped::new([Bytes::from(out), Bytes::new(), Bytes::new()], held)
    };
    let mut res = Response::new(Body::new(body));
    *res.status_mut() = head.status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(res)
}

const OUTPUT: &[u8] = b"{\"output\":";

/// A JSON answer up to this size is copied into the wrapped answer; a larger one is written
/// as it came, between the prefix and the closing brace.
const COPIED: usize = 16 * 1024;

/// The length of `text` written as a JSON string by serde_json: quoted, with `"` and `\`
/// escaped, control characters as `\n`-style or `\u00XX` escapes.
fn json_string_len(text: &str) -> usize {
    2 + text
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..0x20 => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// A wrapped answer's body: its pieces (written without copying them together), and what
/// they hold of the [`Budget`], given back once the answer is written (or the client gone).
struct Wrapped {
    pieces: [Bytes; 3],
    next: usize,
    /// Bytes not yet handed out.
    left: usize,
    _held: Held,
}

impl Wrapped {
    fn new(pieces: [Bytes; 3], held: Held) -> Wrapped {
        let left = pieces.iter().map(Bytes::len).sum();
        Wrapped { pieces, next: 0, left, _held: held }
    }
}

impl http_body::Body for Wrapped {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        while this.next < this.pieces.len() {
            let piece = std::mem::take(&mut this.pieces[this.next]);
            this.next += 1;
            if !piece.is_empty() {
                this.left -= piece.len();
                return Poll::Ready(Some(Ok(Frame::data(piece))));
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Client;

    /// `is_proxy_path` takes exactly the paths axum would match for the proxy's route.
    #[tokio::test]
    async fn proxy_paths_are_the_ones_the_route_matches() {
        use tower::ServiceExt as _;
        let route: axum::Router =
            axum::Router::new().route(ROUTE, axum::routing::any(|| async { "" }));
        for path in [
            "/projects/p/sdk/proxy/custom.x/items",
            "/projects/p/sdk/proxy/custom.x",
            "/projects/p/sdk/proxy/x/",
            "/projects/p/sdk/proxy//x",
            "/projects/p/sdk/proxy/%2Fx",
            "/projects/p/sdk/proxy/",
            "/projects/p/sdk/proxy",
            "/projects//sdk/proxy/x",
            "/projects/p/q/sdk/proxy/x",
            "/projects/p/sdk/Proxy/x",
            "/projects/p/sdk/proxyx/y",
            "/projects/%70/sdk/proxy/x",
            "/v2/projects/p/sdk/proxy/x",
            "//projects/p/sdk/proxy/x",
            "/projects/p/sdk/credentials",
            "/projects",
            "/",
        ] {
            let request = Request::builder().uri(path).body(Body::empty()).unwrap();
            let answer = route.clone().oneshot(request).await.unwrap();
            assert_eq!(is_proxy_path(path), answer.status() == StatusCode::OK, "{path}");
        }
    }

    #[test]
    fn only_forwardable_headers_are_forwarded_in_order() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("accept", "application/json"),
            ("authorization", "Bearer user-token"),
            ("x-custom", "one"),
            ("cookie", "a=1"),
            ("x-custom", "two"),
            ("x-paragon-credential", "c1"),
            ("sec-fetch-mode", "cors"),
            ("cookie", "b=2"),
            ("host", "para.example"),
            ("x-other", "three"),
        ] {
            headers.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        // More unforwardable values than any fixed batch.
        for i in 0..40 {
            headers.append(header::COOKIE, HeaderValue::from_str(&format!("c{i}=1")).unwrap());
        }
        let kept = forwarded_headers(headers);
        let pairs: Vec<(&str, &str)> =
            kept.iter().map(|(n, v)| (n.as_str(), v.to_str().unwrap())).collect();
        assert_eq!(
            pairs,
            [
                ("accept", "application/json"),
                ("x-custom", "one"),
                ("x-custom", "two"),
                ("x-other", "three")
            ]
        );
    }

    /// Of the headers HTTP defines (every one the `http` crate knows), only the allow-listed
    /// ones are forwarded; extension headers are, except those intermediaries act on.
    #[test]
    fn request_headers_are_forwarded_by_allow_list() {
        const FORWARDED: &[&str] = &[
            "accept",
            "accept-charset",
            "accept-language",
            "cache-control",
            "content-disposition",
            "content-encoding",
            "content-language",
            "content-range",
            "content-type",
            "date",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "pragma",
            "range",
            "user-agent",
        ];
        const KNOWN: &[&str] = &[
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "access-control-allow-credentials",
            "access-control-allow-headers",
            "access-control-allow-methods",
            "access-control-allow-origin",
            "access-control-expose-headers",
            "access-control-max-age",
            "access-control-request-headers",
            "access-control-request-method",
            "age",
            "allow",
            "alt-svc",
            "authorization",
            "cache-control",
            "cache-status",
            "cdn-cache-control",
            "connection",
            "content-disposition",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-range",
            "content-security-policy",
            "content-security-policy-report-only",
            "content-type",
            "cookie",
            "dnt",
            "date",
            "etag",
            "expect",
            "expires",
            "forwarded",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "link",
            "location",
            "max-forwards",
            "origin",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "public-key-pins",
            "public-key-pins-report-only",
            "range",
            "referer",
            "referrer-policy",
            "refresh",
            "retry-after",
            "sec-websocket-accept",
            "sec-websocket-extensions",
            "sec-websocket-key",
            "sec-websocket-protocol",
            "sec-websocket-version",
            "server",
            "set-cookie",
            "strict-transport-security",
            "te",
            "trailer",
            "transfer-encoding",
            "user-agent",
            "upgrade",
            "upgrade-insecure-requests",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "x-content-type-options",
            "x-dns-prefetch-control",
            "x-frame-options",
            "x-xss-protection",
        ];
        for name in KNOWN {
            let header = HeaderName::from_static(name);
            assert_eq!(forwardable(&header), FORWARDED.contains(name), "{name}");
        }
        for name in [
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "x-forwarded",
            "x-original-url",
            "x-rewrite-url",
            "x-http-method-override",
            "x-real-ip",
            "keep-alive",
            "proxy-connection",
            "x-paragon-credential",
            "sec-fetch-site",
            "x-middleware-subrequest",
        ] {
            assert!(!forwardable(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["x-custom", "notion-version", "idempotency-key", "x-api-key", "prefer"] {
            assert!(forwardable(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn headers_the_connection_header_names_are_not_forwarded() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-a", "1"),
            ("connection", "keep-alive"),
            ("x-b", "2"),
            ("connection", "X-A, close"),
            ("x-c", "3"),
            ("connection", " x-c ,, Notion-Version"),
            ("notion-version", "v"),
            ("x-d", "4"),
        ] {
            headers.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let kept = forwarded_headers(headers);
        let names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-b", "x-d"]);
        assert!(!names_headers(&HeaderValue::from_static("Keep-Alive, close")));
    }

    #[test]
    fn the_budget_bounds_what_is_held_at_once() {
        let budget = Arc::new(Budget::new(100, 50));
        let mut a = Held::NONE;
        assert!(a.resize(&budget, 60));
        let mut b = Held::NONE;
        assert!(!b.resize(&budget, 41), "60 + 41 > 100");
        assert!(b.resize(&budget, 40));
        assert_eq!((budget.held(), budget.peak()), (100, 100));
        assert!(a.resize(&budget, 10));
        assert_eq!(budget.held(), 50);
        drop(a);
        drop(b);
        assert_eq!((budget.held(), budget.peak()), (0, 100));
        let mut c = Held::NONE;
        assert!(!c.resize(&budget, 101));
        assert_eq!(budget.held(), 0);
    }

    /// A body without a length, in pieces: held as its buffer grows, refused past the budget
    /// or the cap without reading further, and given back.
    #[tokio::test]
    async fn bodies_in_pieces_are_held_as_they_grow() {
        /// `n` pieces of `size` bytes, of no announced length.
        struct Pieces(std::vec::IntoIter<Bytes>);
        impl http_body::Body for Pieces {
            type Data = Bytes;
            type Error = Infallible;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
                Poll::Ready(self.0.next().map(|b| Ok(Frame::data(b))))
            }
        }
        fn pieces(n: usize, size: usize) -> Body {
            let pieces: Vec<Bytes> = (0..n).map(|i| Bytes::from(vec![i as u8; size])).collect();
            Body::new(Pieces(pieces.into_iter()))
        }
        let budget = Arc::new(Budget::new(1000, 10_000));
        let mut held = Held::NONE;
        let whole = read_whole(pieces(3, 100), &mut held, &budget, 10_000).await.ok().unwrap();
        assert_eq!(whole.len(), 300);
        assert!(whole.chunks(100).enumerate().all(|(i, c)| c.iter().all(|&b| b == i as u8)));
        assert!(held.bytes >= 300 && held.bytes <= 400, "{}", held.bytes);
        drop(held);
        assert_eq!(budget.held(), 0);
        let mut held = Held::NONE;
        let over = read_whole(pieces(20, 100), &mut held, &budget, 10_000).await;
        assert!(matches!(over, Err(Unread::Busy)));
        assert!(budget.peak() <= 1000, "{}", budget.peak());
        drop(held);
        let mut held = Held::NONE;
        let over = read_whole(pieces(5, 100), &mut held, &budget, 250).await;
        assert!(matches!(over, Err(Unread::TooLarge)));
        drop(held);
        assert_eq!(budget.held(), 0);
        // One piece is kept as it came.
        let mut held = Held::NONE;
        let one = read_whole(pieces(1, 700), &mut held, &budget, 10_000).await.ok().unwrap();
        assert_eq!((one.len(), held.bytes), (700, 700));
    }

    #[test]
    fn escaped_lengths_are_serde_jsons() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é\u{2028}💡\"\\");
        for text in ["", "plain", "a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}", all.as_str()] {
            assert_eq!(
                json_string_len(text),
                serde_json::to_string(text).unwrap().len(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn paths_that_leave_the_base_are_refused() {
        for bad in [
            "/../admin",
            "/a/../../admin",
            "/%2e%2e/admin",
            "/%2E%2E/admin",
            "/a/%2e%2e%2fadmin",
            "//evil.com/x",
            "/http://evil.com",
            "/a\\..\\b",
            "/a%5c..",
            "/a%00b",
            "/./x",
            "/..;/admin",
            "/a/..;x=1/b",
            "/.;/x",
            "/%2e%2e;/x",
            "/..%3b/x",
            "/..%3B/x",
        ] {
            assert!(safe_path(bad).is_err(), "{bad} must be refused");
        }
        for good in [
            "",
            "/",
            "/v1/items",
            "/search?q=a",
            "/a%20b",
            "/user@example.com/x",
            "/@evil.com",
            "/a;v=1/b",
            "/..x;y/x.;.",
            "/;/x",
        ] {
            assert!(safe_path(good).is_ok(), "{good} must pass");
        }
    }

    #[test]
    fn joined_urls_stay_below_the_base() {
        let base = "http://127.0.0.1:9000/v2";
        assert_eq!(
            join(base, "/tasks", Some("a=1")).unwrap().as_str(),
            "http://127.0.0.1:9000/v2/tasks?a=1"
        );
        assert!(join(base, "@evil.com/x", None).is_err());
        assert!(join(base, "x/y", None).is_err(), "/v2x is not below /v2");
        assert_eq!(join(base, "/@evil.com", None).unwrap().host_str(), Some("127.0.0.1"));
        assert!(join(base, ":8080/x", None).is_err());
        assert!(join(base, ".evil.com/x", None).is_err());
        assert!(join("https://api.example.com", ".evil.com/x", None).is_err());
    }

    /// The fast path (a prepared base's path + the checked tail, encoded here) gives exactly
    /// what joining and parsing the URL gives, for every printable character.
    #[test]
    fn targets_below_a_simple_base_are_what_joining_gives() {
        let bases = [
            "http://127.0.0.1:9000/v2",
            "http://127.0.0.1:9000/v2/",
            "http://h",
            "http://h/",
            "https://API.example.com:443/a b/c",
            "http://h:80/x",
            "http://h/v2/.",
            "http://h/v2/..",
            "http://h/v2/%2e%2E",
            "http://h/%7Bx%7D/{y}",
            "http://h/é/ü",
            "http://h/%C3%A9/a%20b/%7Bx%7D",
            "http://[::1]:8080/api",
            "https://api.example.com/v1",
        ];
        let simple: Vec<&str> = bases
            .iter()
            .copied()
            .filter(|b| is_simple_base(b.trim_end_matches('/'), &url::Url::parse(b).unwrap()))
            .collect();
        assert_eq!(
            simple,
            [
                "http://127.0.0.1:9000/v2",
                "http://127.0.0.1:9000/v2/",
                "http://h",
                "http://h/",
                "http://h/%C3%A9/a%20b/%7Bx%7D",
                "http://[::1]:8080/api",
                "https://api.example.com/v1",
            ]
        );
        let mut tails: Vec<String> = [
            "",
            "/",
            "/a",
            "/a/",
            "/a//b",
            "/a%20b",
            "/%7E",
            "/é/ü",
            "/.x",
            "/x.",
            "/..x",
            "/a.b/c..",
            "/@evil.com",
            "/:8080/x",
            "/%",
            "/a%2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for c in (0x21u8..0x7f).map(char::from).filter(|c| !"?#\\".contains(*c)) {
            tails.push(format!("/a{c}b/{c}"));
        }
        let mut queries: Vec<Option<String>> = vec![
            None,
            Some(String::new()),
            Some("a=1".into()),
            Some("a=1&".into()),
            Some("&&".into()),
            Some("q=é ü".into()),
        ];
        for c in (0x21u8..0x7f).map(char::from).filter(|c| *c != '#') {
            queries.push(Some(format!("a{c}=b{c}c")));
        }
        let pairs = [("api_key", "k/2 é"), ("sig", "a b&c=d")];
        let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        let client = Client::new(None);
        let mut compared = 0;
        for base in bases {
            let text = base.trim_end_matches('/');
            let parsed = url::Url::parse(text).unwrap();
            if !is_simple_base(text, &parsed) {
                // Joined and parsed on each request instead.
                continue;
            }
            let base_path = parsed.path().trim_end_matches('/');
            for tail in &tails {
                if safe_path(tail).is_err() {
                    continue;
                }
                for query in &queries {
                    let query = query.as_deref();
                    let Ok(mut joined) = join(text, tail, query) else {
                        panic!("{base} + {tail} + {query:?} must join");
                    };
                    let (got, path_len, state) = below(base_path, tail, query);
                    let expected = &joined[url::Position::BeforePath..url::Position::AfterQuery];
                    assert_eq!(got, expected, "{base} + {tail:?} + {query:?}");
                    assert_eq!(&got[..path_len], joined.path());
                    // Authorization in the query, appended as `append_pair` does.
                    let mut target = Target {
                        origin: client.origin(&parsed).unwrap(),
                        host: HeaderValue::from_static("h"),
                        text: got,
                        path_len,
                        query: state,
                    };
                    target.append_query(&encoded);
                    joined.query_pairs_mut().extend_pairs(pairs);
                    let expected = &joined[url::Position::BeforePath..url::Position::AfterQuery];
                    assert_eq!(target.text, expected, "{base} + {tail:?} + {query:?} + auth");
                    let text = &target.text;
                    assert!(
                        axum::http::uri::PathAndQuery::try_from(text.as_str()).is_ok(),
                        "{text}"
                    );
                    assert!(text.bytes().all(|b| b > b' ' && b < 0x7f), "{text}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 10_000, "{compared}");
    }

    #[test]
    fn the_tail_is_read_from_the_raw_path() {
        let split = |p: &'static str| split_path(p).map(|(i, t)| (i.into_owned(), t));
        assert_eq!(
            split("/projects/p/sdk/proxy/custom.acmecrm/v1/a%2Fb"),
            Some(("custom.acmecrm".to_string(), "/v1/a%2Fb"))
        );
        assert_eq!(split("/projects/p/sdk/proxy/slack"), Some(("slack".to_string(), "")));
        assert_eq!(
            split("/projects/p/sdk/proxy/cust%6Fm.x/y"),
            Some(("custom.x".to_string(), "/y"))
        );
        assert_eq!(split("/projects/p/sdk/proxy/bad%zz/y"), None);
        assert_eq!(split("/projects/p/sdk/other"), None);
    }
}
