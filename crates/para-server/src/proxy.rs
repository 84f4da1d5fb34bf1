//! `ANY /projects/{id}/sdk/proxy/{integration}/{path…}`: the SDK's `request()`. The request
//! goes to the integration's API base URL + path with the user's credential applied; the
//! answer comes back wrapped as `{ "output": … }` (raw with `X-Paragon-Use-Raw-Response`).
//!
//! The path is taken from the raw URI and must stay below the API base: absolute URLs, `..`
//! segments (also percent-encoded), backslashes and encoded slashes are refused, and the joined
//! URL is checked to have the base's scheme, host, port and path prefix.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};

use crate::auth::SdkUser;
use crate::error::ApiError;
use crate::refresh;
use crate::state::AppState;

/// Request bodies larger than this are refused (413).
const MAX_BODY: usize = 16 * 1024 * 1024;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/projects/{project}/sdk/proxy/{integration}", any(proxy))
        .route("/projects/{project}/sdk/proxy/{integration}/{*path}", any(proxy))
}

/// The part of the raw request path after `/sdk/proxy/{integration}`.
fn raw_tail<'a>(path: &'a str, integration: &str) -> Option<&'a str> {
    let marker = "/sdk/proxy/";
    let at = path.find(marker)? + marker.len();
    let rest = &path[at..];
    // The integration segment as sent (it may be percent-encoded).
    let end = rest.find('/').unwrap_or(rest.len());
    let segment = &rest[..end];
    let decoded = percent_decode(segment)?;
    (decoded == integration).then_some(&rest[end..])
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
    if decoded.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err("`.` and `..` segments are not allowed in a proxied path".into());
    }
    if decoded.chars().any(|c| c.is_control()) {
        return Err("control characters are not allowed in a proxied path".into());
    }
    Ok(tail)
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

fn truthy(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

async fn proxy(
    State(state): State<Arc<AppState>>,
    user: SdkUser,
    Path(params): Path<Vec<(String, String)>>,
    request: Request,
) -> Result<Response, ApiError> {
    let integration =
        params.iter().find(|(k, _)| k == "integration").map(|(_, v)| v.clone()).unwrap_or_default();
    let (parts, body) = request.into_parts();
    let tail = raw_tail(parts.uri.path(), &integration)
        .ok_or_else(|| refused("the proxy path could not be read"))?;
    let tail = safe_path(tail).map_err(refused)?;
    let connector = state.connector(&integration).ok_or_else(|| {
        ApiError::not_found(format!("no integration `{integration}` in this project"))
    })?;
    let selected = parts
        .headers
        .get("x-paragon-credential")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("")
        .to_string();
    let (mut credential, mut material) =
        match state.credential_cache.get(&user.user_id, &integration, &selected) {
            Some(hit) => hit,
            None => {
                let c = pick_credential(&state, &user, &integration, &selected).await?;
                let (c, m) = refresh::usable(&state, &connector, c).await?;
                let m = Arc::new(m);
                state.credential_cache.put(&user.user_id, &integration, &selected, &c, &m);
                (c, m)
            }
        };
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the request body is over 16 MB")
    })?;
    let raw = truthy(&parts.headers, "x-paragon-use-raw-response");
    let mut retried = false;
    loop {
        let base = connector
            .base_url(&material)
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "api_base", e.0))?;
        let url = join(&base, tail, parts.uri.query()).map_err(refused)?;
        let answer =
            send(&state, &connector, &material, &parts.method, &parts.headers, url, body.clone())
                .await?;
        if answer.status() == reqwest::StatusCode::UNAUTHORIZED && !retried {
            retried = true;
            if let Some((fresh, m)) =
                refresh::after_unauthorized(&state, &connector, credential.clone()).await?
            {
                credential = fresh;
                material = Arc::new(m);
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
    if !selected.is_empty() {
        let id = selected;
        let found = state.store.credential(&state.project_id, &user.user_id, id).await?;
        return match found {
            Some(c) if c.integration == integration => Ok(c),
            _ => {
                Err(ApiError::not_found(format!("you have no credential `{id}` for {integration}")))
            }
        };
    }
    let all = state.store.credentials(&state.project_id, &user.user_id, Some(integration)).await?;
    all.into_iter().find(|c| c.status == "VALID").ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_connected",
            format!("connect {integration} first: this user has no valid credential for it"),
        )
    })
}

async fn send(
    state: &AppState,
    connector: &crate::connector::Connector,
    material: &crate::connector::Material,
    method: &Method,
    headers: &HeaderMap,
    mut url: url::Url,
    body: Bytes,
) -> Result<reqwest::Response, ApiError> {
    let auth = connector
        .authorize(material)
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "authorization", e.0))?;
    if !auth.query.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in &auth.query {
            q.append_pair(k, v);
        }
    }
    let mut out = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        if forwardable(name) {
            out.append(name.clone(), value.clone());
        }
    }
    if out.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"auto")) {
        out.remove(header::CONTENT_TYPE);
        if !body.is_empty() {
            let kind = if serde_json::from_slice::<Value>(&body).is_ok() {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            out.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
        }
    }
    for (name, value) in &auth.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "authorization",
                format!("`{name}` is not a header name"),
            )
        })?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "authorization",
                format!("the `{name}` header value is not valid"),
            )
        })?;
        out.insert(name, value);
    }
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes())
        .map_err(|_| ApiError::bad_request("unsupported method"))?;
    let mut request = state.http.request(method, url.clone()).headers(out);
    if !body.is_empty() {
        request = request.body(body);
    }
    request.send().await.map_err(|e| {
        let what = if e.is_timeout() { "timed out" } else { "failed" };
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream",
            format!(
                "{} {}://{}{} {what}: {}",
                connector.name,
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.path(),
                crate::oauth::error_chain(&e)
            ),
        )
    })
}

async fn respond(answer: reqwest::Response, raw: bool) -> Result<Response, ApiError> {
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream",
            format!("reading the answer failed: {e}"),
        )
    })?;
    if raw {
        let mut res = Response::new(Body::from(bytes));
        *res.status_mut() = status;
        for (name, value) in &headers {
            if passable(name) {
                res.headers_mut().append(name.clone(), value.clone());
            }
        }
        return Ok(res);
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let output = if bytes.is_empty() {
        Value::Null
    } else if is_json {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    } else {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    };
    Ok((status, axum::Json(json!({ "output": output }))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_tail_is_read_from_the_raw_path() {
        assert_eq!(
            raw_tail("/projects/p/sdk/proxy/custom.acmecrm/v1/a%2Fb", "custom.acmecrm"),
            Some("/v1/a%2Fb")
        );
        assert_eq!(raw_tail("/projects/p/sdk/proxy/slack", "slack"), Some(""));
        assert_eq!(raw_tail("/projects/p/sdk/proxy/slack/x", "jira"), None);
    }
}
