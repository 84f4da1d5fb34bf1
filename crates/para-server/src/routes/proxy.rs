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
//! is worked out once per cache entry ([`para_connect::Prepared`]); requests go out through the proxy's own
//! HTTP/1.1 client (`para_upstream`).
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
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::auth::SdkUser;
use crate::error::ApiError;
use crate::state::AppState;
use para_connect::send::{Account, Destination, Outgoing, is_content_type, percent_decode};

use crate::budget::{BUSY, Budget, Held, MAX_BODY};

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

async fn proxy(
    state: &AppState,
    user: &SdkUser,
    mut parts: axum::http::request::Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let (integration, tail) =
        split_path(parts.uri.path()).ok_or_else(|| refused("the proxy path could not be read"))?;
    let destination = Destination::below(tail)?;
    let account = Account {
        user_id: &user.user_id,
        integration: &integration,
        credential_id: crate::auth::selected_credential(&parts.headers),
        require_valid: false,
    };
    let prepared = match state.prepared_now(account)? {
        Some(hit) => hit,
        // Boxed, as every rare path here: its future would make every request's larger.
        None => Box::pin(state.prepare(account)).await?,
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
    // authorization's headers replace them, as before).
    if !forwarded.contains_key(header::ACCEPT) {
        forwarded.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    }
    let request = Outgoing {
        method: parts.method,
        destination,
        query: parts.uri.query(),
        headers: forwarded,
        body,
        keep: if raw { passable } else { is_content_type },
        // The SDK's caller sees a 429 and decides.
        wait_429: std::time::Duration::ZERO,
    };
    let answer = state.send(prepared, request).await?;
    respond(answer.map(Body::new), raw, budget).await
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
