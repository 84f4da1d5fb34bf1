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

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use http_body::Body as _;
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
    let (parts, body) = request.into_parts();
    let answer = match crate::auth::authenticate(&parts, &state).await {
        Ok(user) => proxy(&state, &user, parts, body).await,
        Err(e) => Err(e),
    };
    answer.into_response()
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

/// A decoded path: no `.`/`..` segment, no control character.
fn plain_segments(decoded: &str) -> Result<(), String> {
    if decoded.as_bytes().split(|&b| b == b'/').any(|seg| seg == b".." || seg == b".") {
        return Err("`.` and `..` segments are not allowed in a proxied path".into());
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

/// Request headers never forwarded: hop-by-hop, our own, and the caller's credentials for us.
fn forwardable(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host"
            | "authorization"
            | "cookie"
            | "connection"
            | "keep-alive"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "origin"
            | "referer"
            | "accept-encoding"
    ) && !name.as_str().starts_with("x-paragon-")
        && !name.as_str().starts_with("sec-")
}

/// The request headers that are forwarded ([`forwardable`]), in their order, with room for
/// the few the proxy adds. (Moving the kept ones into a new map is cheaper than removing the
/// others from the old one.)
fn forwarded_headers(headers: HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::with_capacity(headers.len() + 4);
    let mut current: Option<HeaderName> = None;
    let mut keep = false;
    for (name, value) in headers {
        // A name comes with its first value only; the values after it are `None`'s.
        if let Some(name) = name {
            keep = forwardable(&name);
            current = Some(name);
        }
        if keep && let Some(name) = &current {
            kept.append(name.clone(), value);
        }
    }
    kept
}

/// The only header a wrapped answer reads.
fn is_content_type(name: &HeaderName) -> bool {
    name == header::CONTENT_TYPE
}

/// Response headers never passed back.
fn passable(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "content-length"
            | "set-cookie"
            | "access-control-allow-origin"
            | "access-control-allow-credentials"
            | "access-control-allow-headers"
            | "access-control-allow-methods"
            | "access-control-expose-headers"
    )
}

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
    let body = if body.is_end_stream() {
        Bytes::new()
    } else {
        axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the request body is over 16 MB",
            )
        })?
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
            Ok(answer) => answer,
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
        return respond(answer, raw).await;
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

async fn respond(answer: Response, raw: bool) -> Result<Response, ApiError> {
    if raw {
        // Its headers are the passable ones already.
        return Ok(answer);
    }
    let (head, body) = answer.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream",
                format!("reading the answer failed: {e}"),
            )
        })?
        .to_bytes();
    let is_json = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    // `{"output": …}`: a JSON answer spliced in as it came (checked, never re-encoded, so
    // large numbers keep their digits), anything else as a JSON string.
    let mut out = Vec::with_capacity(bytes.len() + 12);
    out.extend_from_slice(b"{\"output\":");
    if bytes.is_empty() {
        out.extend_from_slice(b"null");
    } else if is_json && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() {
        out.extend_from_slice(bytes.trim_ascii());
    } else {
        let text = Value::String(String::from_utf8_lossy(&bytes).into_owned());
        serde_json::to_writer(&mut out, &text).expect("a JSON string serialises");
    }
    out.push(b'}');
    let mut res = Response::new(Body::from(out));
    *res.status_mut() = head.status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(res)
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
        ] {
            assert!(safe_path(bad).is_err(), "{bad} must be refused");
        }
        for good in
            ["", "/", "/v1/items", "/search?q=a", "/a%20b", "/user@example.com/x", "/@evil.com"]
        {
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
