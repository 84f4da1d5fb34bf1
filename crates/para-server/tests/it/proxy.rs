//! The proxy's behaviour over real HTTP, byte for byte where it matters: what reaches the
//! upstream (path, query, forwarded and filtered headers, authorization in headers or the
//! query, bodies, `Content-Type: auto`) and what comes back (wrapped `{"output": …}` or raw,
//! status, passed and filtered headers, large bodies), credential selection, and upstream
//! connections that close or fail.

use std::future::Future as _;
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use para_server::OAuthClient;
use serde_json::{Value, json};

use crate::common::{self, Builder, TestServer, client, token};

const PROJECT: &str = "p-proxy";
const BASIC: &str = "custom.echo";
const HEADERS: &str = "custom.hdr";
const QUERY: &str = "custom.qry";
const BIG: usize = 3 * 1024 * 1024 + 17;

fn build() -> para_build::Build {
    let credential = |name: &str| json!({ "type": "CREDENTIAL", "path": [name] });
    let value = |v: &str| json!({ "type": "VALUE", "value": v });
    common::build(
        PROJECT,
        json!({
            BASIC: common::custom(BASIC, "basic", json!({ "type": "basic",
                "username": credential("username"), "password": credential("password") }), Value::Null),
            HEADERS: common::custom(HEADERS, "basic", json!({ "type": "auth_header", "headers": [
                { "key": "X-Api-Key", "source": credential("password") },
                { "key": "Authorization", "source": { "type": "TOKENIZED",
                    "parts": [value("Token "), credential("username")] } },
            ] }), Value::Null),
            QUERY: common::custom(QUERY, "basic", json!({ "type": "query_params", "params": [
                { "key": "api_key", "source": credential("password") },
                { "key": "sig", "source": value("a b&c=d") },
            ] }), Value::Null),
        }),
    )
}

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Upstream {
    seen: Mutex<Vec<Seen>>,
}

impl Upstream {
    fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().expect("the upstream saw a request")
    }
}

async fn api(
    State(u): State<Arc<Upstream>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen {
        method: method.to_string(),
        uri: uri.to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        body: body.to_vec(),
    };
    u.seen.lock().unwrap().push(seen.clone());
    let path = uri.path().strip_prefix("/api").unwrap_or("");
    let json = [("content-type", "application/json")];
    match path {
        "/me" => (json, r#"{"ok":true}"#).into_response(),
        "/text" => ([("content-type", "text/plain")], "hello").into_response(),
        "/slow" => {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            (json, r#"{"slow":true}"#).into_response()
        }
        "/empty" => StatusCode::NO_CONTENT.into_response(),
        "/trickle" => {
            let body = Trickle { parts: 3, pause: None };
            ([("content-type", "text/plain")], axum::body::Body::new(body)).into_response()
        }
        "/badjson" => (json, "not json").into_response(),
        "/danger" => (
            [
                ("content-type", "text/html"),
                ("strict-transport-security", "max-age=31536000; includeSubDomains"),
                ("clear-site-data", "\"*\""),
                ("x-frame-options", "ALLOW-FROM https://evil.example"),
                ("content-security-policy", "default-src *"),
                ("refresh", "0;url=https://evil.example"),
                ("service-worker-allowed", "/"),
                ("alt-svc", "h2=\"evil.example:443\""),
                ("x-content-type-options", "none"),
                ("cross-origin-opener-policy", "unsafe-none"),
                ("permissions-policy", "camera=*"),
                ("set-cookie", "session=upstream"),
                ("x-upstream", "kept"),
                ("etag", "\"v1\""),
            ],
            "<script>alert(document.domain)</script>",
        )
            .into_response(),
        "/upload" => (json, json!({ "received": seen.body.len() }).to_string()).into_response(),
        p if p.starts_with("/huge/") => {
            let n: usize = p["/huge/".len()..].parse().unwrap();
            (json, huge_json(n)).into_response()
        }
        p if p.starts_with("/huge-chunked/") => {
            let n: usize = p["/huge-chunked/".len()..].parse().unwrap();
            (json, axum::body::Body::new(Chunks { left: n, started: false })).into_response()
        }
        "/bignum" => (json, " {\"id\": 123456789012345678901234567890}\n").into_response(),
        "/close" => {
            ([("connection", "close"), ("content-type", "application/json")], r#"{"closed":true}"#)
                .into_response()
        }
        "/big" => {
            let bytes: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
            ([("content-type", "application/octet-stream")], bytes).into_response()
        }
        p if p.starts_with("/status/") => {
            let code: u16 = p["/status/".len()..].parse().unwrap();
            (StatusCode::from_u16(code).unwrap(), json, json!({ "status": code }).to_string())
                .into_response()
        }
        _ => {
            let echo = json!({
                "method": seen.method,
                "uri": seen.uri,
                "body": String::from_utf8_lossy(&seen.body),
            });
            (
                [
                    ("content-type", "application/json"),
                    ("x-upstream", "1"),
                    ("cache-control", "no-store"),
                    ("set-cookie", "session=upstream"),
                    ("access-control-allow-origin", "https://evil.example"),
                ],
                echo.to_string(),
            )
                .into_response()
        }
    }
}

/// A JSON string of `n` bytes (`n >= 2`): `"aaa…"`.
fn huge_json(n: usize) -> Vec<u8> {
    let mut v = vec![b'a'; n];
    v[0] = b'"';
    v[n - 1] = b'"';
    v
}

/// [`huge_json`] sent chunked (no `Content-Length`), in pieces of 64 KiB.
struct Chunks {
    left: usize,
    started: bool,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(64 * 1024);
        let mut piece = vec![b'a'; n];
        if !self.started {
            piece[0] = b'"';
            self.started = true;
        }
        self.left -= n;
        if self.left == 0 {
            piece[n - 1] = b'"';
        }
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(piece)))))
    }
}

/// An answer sent in parts, with a pause of [`TRICKLE_PAUSE`] before each.
struct Trickle {
    parts: u8,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

const TRICKLE_PAUSE: Duration = Duration::from_millis(400);

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.parts == 0 {
            return Poll::Ready(None);
        }
        let pause = self.pause.get_or_insert_with(|| Box::pin(tokio::time::sleep(TRICKLE_PAUSE)));
        if pause.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.pause = None;
        self.parts -= 1;
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"part;")))))
    }
}

async fn upstream() -> (Arc<Upstream>, String) {
    let u = Arc::new(Upstream::default());
    let app = axum::Router::new()
        .route("/api", any(api))
        .route("/api/{*rest}", any(api))
        .with_state(u.clone());
    (u, common::serve(app).await)
}

/// The build, its three integrations' API at `upstream_base`.
fn proxy_to(upstream_base: &str) -> Builder {
    let client = OAuthClient {
        api_base_url: Some(format!("{upstream_base}/api")),
        ..OAuthClient::default()
    };
    TestServer::builder(build())
        .oauth_client(BASIC, client.clone())
        .oauth_client(HEADERS, client.clone())
        .oauth_client(QUERY, client)
}

async fn connect(
    server: &TestServer,
    bearer: &str,
    integration: &str,
    user: &str,
    pw: &str,
) -> String {
    let (status, c) = server
        .call(
            "POST",
            "/sdk/credentials",
            bearer,
            Some(json!({ "integrationId": integration, "payload": { "username": user, "password": pw } })),
        )
        .await;
    assert_eq!((status, c["status"].as_str()), (200, Some("VALID")), "{c}");
    c["id"].as_str().unwrap().to_string()
}

/// One HTTP/1.1 exchange written byte for byte; (status, lower-cased headers, body).
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

fn raw(
    server: &TestServer,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Raw {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (n, v) in headers {
        request.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8(out[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let mut body = out[end + 4..].to_vec();
    if headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Raw { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn basic(user: &str, pw: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_paths_and_answers_pass_as_documented() {
    let (up, base) = upstream().await;
    let server = proxy_to(&base).start().await;
    let ann = token("ann");
    connect(&server, &ann, BASIC, "ann", "pw-1").await;
    let bearer = format!("Bearer {ann}");
    let prefix = format!("/projects/{PROJECT}/sdk/proxy/{BASIC}");
    let sent = [
        ("Authorization", bearer.as_str()),
        ("X-Custom", "c1"),
        ("Cookie", "a=b"),
        ("Origin", "http://app.example"),
        ("Referer", "http://app.example/page"),
        ("X-Paragon-Sdk-Version", "2.4.0"),
        ("Sec-Fetch-Mode", "cors"),
        ("Accept-Encoding", "gzip"),
        ("User-Agent", "ua-test"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Authorization", "Basic eDp5"),
    ];

    // Wrapped.
    let r = raw(&server, "GET", &format!("{prefix}/echo/x?q=a%20b&y=1"), &sent, b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({ "output": { "method": "GET", "uri": "/api/echo/x?q=a%20b&y=1", "body": "" } })
    );
    let seen = up.last();
    assert_eq!(seen.header("authorization"), Some(basic("ann", "pw-1").as_str()));
    assert_eq!(seen.header("x-custom"), Some("c1"));
    assert_eq!(seen.header("user-agent"), Some("ua-test"));
    assert_eq!(seen.header("accept"), Some("*/*"), "a default Accept");
    assert_eq!(seen.header("host"), Some(base.trim_start_matches("http://")));
    for never in [
        "cookie",
        "origin",
        "referer",
        "x-paragon-sdk-version",
        "sec-fetch-mode",
        "accept-encoding",
        "keep-alive",
        "proxy-authorization",
        "content-type",
        "content-length",
        "transfer-encoding",
    ] {
        assert_eq!(seen.header(never), None, "{never} must not be forwarded: {seen:?}");
    }

    // Without a User-Agent, the server's own; the caller's Accept is kept.
    let r = raw(
        &server,
        "GET",
        &format!("{prefix}/echo"),
        &[("Authorization", &bearer), ("Accept", "application/json")],
        b"",
    );
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert!(seen.header("user-agent").unwrap().starts_with("para/"), "{seen:?}");
    assert_eq!(seen.header("accept"), Some("application/json"));
    assert_eq!(seen.uri, "/api/echo");

    // The bare integration path goes to the API base itself.
    let r = raw(&server, "GET", &prefix, &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(up.last().uri, "/api");

    // Raw: the upstream's body byte for byte, its status and headers minus the filtered ones.
    let mut with_raw = sent.to_vec();
    with_raw.push(("X-Paragon-Use-Raw-Response", "1"));
    let r = raw(&server, "GET", &format!("{prefix}/echo/raw?z=1"), &with_raw, b"");
    assert_eq!(r.status, 200);
    let expected = json!({ "method": "GET", "uri": "/api/echo/raw?z=1", "body": "" }).to_string();
    assert_eq!(String::from_utf8_lossy(&r.body), expected);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-upstream"), Some("1"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("set-cookie"), None);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://app.example"),
        "ours, not the upstream's"
    );
    for truthy in ["true", "yes", " TRUE "] {
        let r = raw(
            &server,
            "GET",
            &format!("{prefix}/text"),
            &[("Authorization", &bearer), ("X-Paragon-Use-Raw-Response", truthy)],
            b"",
        );
        assert_eq!((r.status, r.body.as_slice()), (200, b"hello".as_slice()), "{truthy}");
    }
    let r = raw(
        &server,
        "GET",
        &format!("{prefix}/text"),
        &[("Authorization", &bearer), ("X-Paragon-Use-Raw-Response", "0")],
        b"",
    );
    assert_eq!(r.json(), json!({ "output": "hello" }));

    // Path and query characters are encoded as a URL parser encodes them.
    let r = raw(
        &server,
        "GET",
        &format!(
            "{prefix}/echo/%7Bid%7D/caf%C3%A9/{{x}}/\"q\"/é/a|b^c?name='o'&x={{1}}&e=é&t=`|^&&"
        ),
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        up.last().uri,
        "/api/echo/%7Bid%7D/caf%C3%A9/%7Bx%7D/%22q%22/%C3%A9/a|b^c?name=%27o%27&x={1}&e=%C3%A9&t=`|^&&"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_statuses_and_content_type_auto() {
    let (up, base) = upstream().await;
    let server = proxy_to(&base).start().await;
    let ann = token("ann");
    connect(&server, &ann, BASIC, "ann", "pw-1").await;
    let bearer = format!("Bearer {ann}");
    let prefix = format!("/projects/{PROJECT}/sdk/proxy/{BASIC}");
    let auth = ("Authorization", bearer.as_str());

    // Content-Type: auto: JSON for a JSON body, text otherwise, none without a body.
    for (body, expected) in [
        (&br#"{"a":1}"#[..], Some("application/json")),
        (b"plain words", Some("text/plain; charset=utf-8")),
        (b"", None),
    ] {
        let r = raw(
            &server,
            "POST",
            &format!("{prefix}/echo/p"),
            &[auth, ("Content-Type", "auto")],
            body,
        );
        assert_eq!(r.status, 200);
        let seen = up.last();
        assert_eq!((seen.method.as_str(), seen.body.as_slice()), ("POST", body));
        assert_eq!(seen.header("content-type"), expected, "{seen:?}");
        let length = (!body.is_empty()).then(|| body.len().to_string());
        assert_eq!(seen.header("content-length"), length.as_deref(), "{seen:?}");
    }
    // Other content types pass as sent; so do PUT, PATCH and DELETE.
    for method in ["PUT", "PATCH", "DELETE"] {
        let r = raw(
            &server,
            method,
            &format!("{prefix}/echo/m"),
            &[auth, ("Content-Type", "application/xml")],
            b"<a/>",
        );
        assert_eq!(r.status, 200);
        let seen = up.last();
        assert_eq!(seen.method, method);
        assert_eq!(seen.header("content-type"), Some("application/xml"));
        assert_eq!(seen.body, b"<a/>");
    }

    // Statuses pass; non-JSON answers are wrapped as strings, empty ones as null.
    let r = raw(&server, "GET", &format!("{prefix}/status/404"), &[auth], b"");
    assert_eq!((r.status, r.json()), (404, json!({ "output": { "status": 404 } })));
    let r = raw(&server, "GET", &format!("{prefix}/status/503"), &[auth], b"");
    assert_eq!((r.status, r.json()), (503, json!({ "output": { "status": 503 } })));
    let r = raw(&server, "GET", &format!("{prefix}/badjson"), &[auth], b"");
    assert_eq!((r.status, r.json()), (200, json!({ "output": "not json" })));
    let r = raw(&server, "GET", &format!("{prefix}/empty"), &[auth], b"");
    assert_eq!(r.status, 204);
    let r = raw(&server, "GET", &format!("{prefix}/me"), &[auth], b"");
    assert_eq!((r.status, r.json()), (200, json!({ "output": { "ok": true } })));
    // A JSON answer is wrapped as it came: a number too large for 64 bits keeps its digits.
    let r = raw(&server, "GET", &format!("{prefix}/bignum"), &[auth], b"");
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        r#"{"output":{"id": 123456789012345678901234567890}}"#
    );

    // A large answer, raw: byte for byte.
    let r = raw(
        &server,
        "GET",
        &format!("{prefix}/big"),
        &[auth, ("X-Paragon-Use-Raw-Response", "1")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), BIG);
    assert!(r.body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    // HEAD: the head only.
    let r = raw(
        &server,
        "HEAD",
        &format!("{prefix}/text"),
        &[auth, ("X-Paragon-Use-Raw-Response", "1")],
        b"",
    );
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(up.last().method, "HEAD");

    // Upstream connections that close after an answer are not reused.
    for i in 0..6 {
        let path = if i % 2 == 0 { "close" } else { "echo/after-close" };
        let r = raw(&server, "GET", &format!("{prefix}/{path}"), &[auth], b"");
        assert_eq!(r.status, 200, "{path}: {}", String::from_utf8_lossy(&r.body));
    }
    // Back to back over one client connection, many requests.
    let c = client();
    for i in 0..50 {
        let res = c
            .get(server.url(&format!("/sdk/proxy/{BASIC}/echo/{i}")))
            .bearer_auth(&ann)
            .header("x-paragon-use-raw-response", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["uri"], format!("/api/echo/{i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_in_headers_or_query_and_credential_selection() {
    let (up, base) = upstream().await;
    let server = proxy_to(&base).start().await;
    let ann = token("ann");
    let bearer = format!("Bearer {ann}");
    let auth = ("Authorization", bearer.as_str());

    connect(&server, &ann, HEADERS, "ann", "key-1").await;
    let r = raw(
        &server,
        "GET",
        &format!("/projects/{PROJECT}/sdk/proxy/{HEADERS}/echo/h"),
        &[auth],
        b"",
    );
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_eq!(seen.header("x-api-key"), Some("key-1"));
    assert_eq!(seen.header("authorization"), Some("Token ann"));

    connect(&server, &ann, QUERY, "ann", "key/2").await;
    let prefix = format!("/projects/{PROJECT}/sdk/proxy/{QUERY}");
    let r = raw(&server, "GET", &format!("{prefix}/echo/q?a=1"), &[auth], b"");
    assert_eq!(r.status, 200);
    assert_eq!(up.last().uri, "/api/echo/q?a=1&api_key=key%2F2&sig=a+b%26c%3Dd");
    let r = raw(&server, "GET", &format!("{prefix}/echo/q"), &[auth], b"");
    assert_eq!(r.status, 200);
    assert_eq!(up.last().uri, "/api/echo/q?api_key=key%2F2&sig=a+b%26c%3Dd");
    assert_eq!(up.last().header("authorization"), None, "the caller's token is never forwarded");
    let r = raw(&server, "GET", &format!("{prefix}/echo/q?"), &[auth], b"");
    assert_eq!(r.status, 200);
    assert_eq!(up.last().uri, "/api/echo/q?api_key=key%2F2&sig=a+b%26c%3Dd");

    // The newest valid credential by default; X-Paragon-Credential picks one of the user's own.
    let first = connect(&server, &ann, BASIC, "first", "pw-a").await;
    let second = connect(&server, &ann, BASIC, "second", "pw-b").await;
    let prefix = format!("/projects/{PROJECT}/sdk/proxy/{BASIC}");
    let r = raw(&server, "GET", &format!("{prefix}/echo"), &[auth], b"");
    assert_eq!(r.status, 200);
    assert_eq!(up.last().header("authorization"), Some(basic("second", "pw-b").as_str()));
    for (id, who) in [(&first, ("first", "pw-a")), (&second, ("second", "pw-b"))] {
        let r = raw(
            &server,
            "GET",
            &format!("{prefix}/echo"),
            &[auth, ("X-Paragon-Credential", id)],
            b"",
        );
        assert_eq!(r.status, 200);
        assert_eq!(up.last().header("authorization"), Some(basic(who.0, who.1).as_str()));
    }
    let r = raw(
        &server,
        "GET",
        &format!("{prefix}/echo"),
        &[auth, ("X-Paragon-Credential", "nope")],
        b"",
    );
    assert_eq!(r.status, 404);
    // Another integration's credential id is not one of this integration's.
    let hdr = connect(&server, &ann, HEADERS, "ann", "key-3").await;
    let r = raw(
        &server,
        "GET",
        &format!("{prefix}/echo"),
        &[auth, ("X-Paragon-Credential", &hdr)],
        b"",
    );
    assert_eq!(r.status, 404);
    // Unknown integrations and a user without a credential.
    let r =
        raw(&server, "GET", &format!("/projects/{PROJECT}/sdk/proxy/custom.none/x"), &[auth], b"");
    assert_eq!(r.status, 404);
    let bob = format!("Bearer {}", token("bob"));
    let r = raw(&server, "GET", &format!("{prefix}/echo"), &[("Authorization", &bob)], b"");
    assert_eq!((r.status, r.json()["code"].as_str()), (400, Some("not_connected")));
    // No token, or another project's path.
    let r = raw(&server, "GET", &format!("{prefix}/echo"), &[], b"");
    assert_eq!(r.status, 401);
    let r = raw(&server, "GET", &format!("/projects/other/sdk/proxy/{BASIC}/echo"), &[auth], b"");
    assert_eq!(r.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_a_502() {
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let (_up, good) = upstream().await;
    let server = proxy_to(&good).start().await;
    let ann = token("ann");
    connect(&server, &ann, BASIC, "ann", "pw").await;
    // Point the served integration at the dead port (a new server over the same database is
    // simpler than editing one: use a second server with the dead base).
    let dead = proxy_to(&base).start().await;
    let bearer = format!("Bearer {ann}");
    connect_direct(&dead, &ann).await;
    let r = raw(
        &dead,
        "GET",
        &format!("/projects/{PROJECT}/sdk/proxy/{BASIC}/echo"),
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["code"], "upstream", "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(message.starts_with(&format!("{BASIC} http://127.0.0.1")), "{message}");
    assert!(message.contains("/api/echo failed: "), "{message}");
}

/// A credential stored without its test call (the upstream is down).
async fn connect_direct(server: &TestServer, bearer: &str) {
    let (status, c) = server
        .call(
            "POST",
            "/sdk/credentials",
            bearer,
            Some(json!({ "integrationId": BASIC, "payload": { "username": "ann", "password": "pw" } })),
        )
        .await;
    assert_eq!(status, 200, "{c}");
    if c["status"] != "VALID" {
        let id = c["id"].as_str().unwrap();
        let row = server.state.store.credential(PROJECT, "ann", id).await.unwrap().unwrap();
        server
            .state
            .store
            .update_credential(
                PROJECT,
                "ann",
                id,
                para_store::CredentialStatus::Valid,
                None,
                &row.secret,
                row.expires_at,
            )
            .await
            .unwrap();
    }
}

/// Shutting down (Ctrl-C, SIGTERM) stops accepting connections, lets the request in flight
/// finish with its answer, and then the server returns (`server.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_request_in_flight_finish() {
    let (up, base) = upstream().await;
    let server = proxy_to(&base).start().await;
    let ann = token("ann");
    connect(&server, &ann, BASIC, "ann", "pw-1").await;
    let port = server.port;
    let url = server.url(&format!("/sdk/proxy/{BASIC}/slow"));
    let in_flight = tokio::spawn(client().get(url).bearer_auth(&ann).send());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !up.seen.lock().unwrap().iter().any(|s| s.uri.ends_with("/slow")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow request never reached the upstream"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let stopped = tokio::spawn(server.shut_down());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!stopped.is_finished(), "the server waits for the request in flight");
    let answer = in_flight.await.unwrap().expect("the request in flight is answered");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!({ "output": { "slow": true } }));
    tokio::time::timeout(std::time::Duration::from_secs(10), stopped)
        .await
        .expect("the server stops once its requests are done")
        .unwrap()
        .unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "no longer accepting");
}

/// A connection waits (and is closed after the header timeout) only between requests: an
/// answer streamed with pauses longer than the timeout is served to its end (`idle.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowly_streamed_answer_outlives_the_header_timeout() {
    let (_up, base) = upstream().await;
    let timeout = Duration::from_millis(150);
    assert!(TRICKLE_PAUSE > 2 * timeout);
    let server = proxy_to(&base).header_timeout(timeout).start().await;
    let ann = token("ann");
    connect(&server, &ann, BASIC, "ann", "pw-1").await;
    let url = server.url(&format!("/sdk/proxy/{BASIC}/trickle"));
    let r = client()
        .get(url)
        .bearer_auth(&ann)
        .header("X-Paragon-Use-Raw-Response", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.expect("the whole answer, not a connection cut mid-body");
    assert_eq!(body, "part;part;part;");
}

/// Headers that make intermediaries or frameworks at the upstream trust, route, rewrite or
/// re-authorise a request stay here, as do the headers the caller's `Connection` names;
/// API-specific headers pass (docs/server.md § Proxy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_headers_outside_the_allow_list_stay_here() {
    let (up, base) = upstream().await;
    let server = proxy_to(&base).start().await;
    let ann = token("ann");
    connect(&server, &ann, BASIC, "ann", "pw-1").await;
    let bearer = format!("Bearer {ann}");
    let prefix = format!("/projects/{PROJECT}/sdk/proxy/{BASIC}");
    let never = [
        ("Connection", "keep-alive, X-Hop-Secret"),
        ("X-Hop-Secret", "named in Connection"),
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Forwarded-Host", "internal.example"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Prefix", "/admin"),
        ("Forwarded", "for=127.0.0.1;host=internal.example"),
        ("X-Original-URL", "/admin"),
        ("X-Rewrite-URL", "/admin"),
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-Real-IP", "127.0.0.1"),
        ("Via", "1.1 evil"),
        ("Max-Forwards", "0"),
        ("Expect", "100-continue"),
        ("X-Middleware-Subrequest", "middleware"),
    ];
    let kept = [
        ("X-Custom", "c1"),
        ("Notion-Version", "2022-06-28"),
        ("Idempotency-Key", "k-1"),
        ("If-None-Match", "\"v1\""),
        ("Accept-Language", "fr"),
    ];
    let mut sent = vec![("Authorization", bearer.as_str())];
    sent.extend(never);
    sent.extend(kept);
    let r = raw(&server, "GET", &format!("{prefix}/echo/h"), &sent, b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let seen = up.last();
    assert_eq!(seen.method, "GET");
    for (name, _) in never {
        let name = name.to_ascii_lowercase();
        assert_eq!(seen.header(&name), None, "{name} must not be forwarded: {seen:?}");
    }
    for (name, value) in kept {
        assert_eq!(seen.header(&name.to_ascii_lowercase()), Some(value), "{name}: {seen:?}");
    }
}

/// Methods other than GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS are refused before
/// anything is sent, as are paths with `..;` (a servlet container reads `..;x` as `..`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_connect_and_tomcat_traversal_are_refused() {
    let (up, base) = upstream().await;
    let server = proxy_to(&base).start().await;
    let ann = token("ann");
    connect(&server, &ann, BASIC, "ann", "pw-1").await;
    let bearer = format!("Bearer {ann}");
    let auth = ("Authorization", bearer.as_str());
    let prefix = format!("/projects/{PROJECT}/sdk/proxy/{BASIC}");
    let before = up.seen.lock().unwrap().len();
    for method in ["TRACE", "CONNECT", "PROPFIND"] {
        let r = raw(&server, method, &format!("{prefix}/echo/m"), &[auth], b"");
        assert_eq!(r.status, 405, "{method}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["code"], "method_not_allowed", "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"));
    }
    for path in [
        "/..;/admin",
        "/v1/..;/..;/admin",
        "/..;jsessionid=x/admin",
        "/.;/admin",
        "/%2e%2e;/admin",
        "/..%3b/admin",
        "/..%3B/admin",
    ] {
        let r = raw(&server, "GET", &format!("{prefix}{path}"), &[auth], b"");
        assert_eq!(r.status, 400, "{path}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["code"], "proxy_path", "{path}");
    }
    assert_eq!(up.seen.lock().unwrap().len(), before, "nothing reached the upstream");
    // Path parameters that are not dot-segments pass.
    let r = raw(&server, "GET", &format!("{prefix}/echo/a;v=1/..x;y"), &[auth], b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(up.last().uri, "/api/echo/a;v=1/..x;y");
}

/// A raw answer is served from para's origin: headers that would act on that origin (HSTS,
/// Clear-Site-Data, framing, CSP, refresh, service workers, alternative services…) are
/// dropped, and the answer carries `Content-Security-Policy: sandbox` and `nosniff`, so an
/// HTML answer is inert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_answers_cannot_act_on_paras_origin() {
    let (_up, base) = upstream().await;
    let server = proxy_to(&base).start().await;
    let ann = token("ann");
    connect(&server, &ann, BASIC, "ann", "pw-1").await;
    let bearer = format!("Bearer {ann}");
    let path = format!("/projects/{PROJECT}/sdk/proxy/{BASIC}/danger");
    let r = raw(
        &server,
        "GET",
        &path,
        &[("Authorization", &bearer), ("X-Paragon-Use-Raw-Response", "1")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"<script>alert(document.domain)</script>");
    for name in [
        "strict-transport-security",
        "clear-site-data",
        "x-frame-options",
        "refresh",
        "service-worker-allowed",
        "alt-svc",
        "cross-origin-opener-policy",
        "permissions-policy",
        "set-cookie",
    ] {
        assert_eq!(r.header(name), None, "{name} must not pass: {:?}", r.headers);
    }
    let csp: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n == "content-security-policy")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(csp.len(), 1, "only ours: {csp:?}");
    assert!(csp[0].split(';').any(|d| d.trim() == "sandbox"), "{csp:?}");
    let nosniff: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n == "x-content-type-options")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(nosniff, ["nosniff"]);
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.header("x-upstream"), Some("kept"));
    assert_eq!(r.header("etag"), Some("\"v1\""));
    // Wrapped, the answer is JSON of ours.
    let r = raw(&server, "GET", &path, &[("Authorization", &bearer)], b"");
    assert_eq!(r.json(), json!({ "output": "<script>alert(document.domain)</script>" }));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("strict-transport-security"), None);
}

fn block_on<F: std::future::Future>(test: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test)
}

/// Waits until the proxy holds no body any more (the last one is dropped just after it was
/// written), and answers what it holds then.
async fn settled(server: &TestServer) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.state.proxy_budget.held() != 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.state.proxy_budget.held()
}

const WRAPPED_CAP: usize = 1_000_000;
const IN_FLIGHT: usize = 2_500_000;

/// The proxy's memory limits of the two tests below: small, to be reached quickly.
fn small_budget() -> para_server::limits::Limits {
    para_server::limits::Limits {
        proxy_max_wrapped_bytes: 1_000_000,
        proxy_max_inflight_bytes: IN_FLIGHT,
        ..Default::default()
    }
}

/// A wrapped answer is held whole to be wrapped: past `PARA_PROXY_MAX_WRAPPED_BYTES` it is
/// refused with a clear 502 (read no further than the cap, or not at all when its length says
/// so), and everything held counts against `PARA_PROXY_MAX_INFLIGHT_BYTES`. A raw answer
/// streams, whatever its size, holding nothing.
#[test]
fn large_wrapped_answers_stay_within_the_memory_bound() {
    block_on(async {
        let (_up, base) = upstream().await;
        let server = proxy_to(&base).limits(small_budget()).start().await;
        let ann = token("ann");
        connect(&server, &ann, BASIC, "ann", "pw-1").await;
        let bearer = format!("Bearer {ann}");
        let auth = ("Authorization", bearer.as_str());
        let prefix = format!("/projects/{PROJECT}/sdk/proxy/{BASIC}");
        let budget = || &server.state.proxy_budget;
        assert_eq!((budget().held(), budget().peak()), (0, 0));

        // Under the cap: wrapped as before, and counted while held.
        let n = WRAPPED_CAP - 100;
        let r = raw(&server, "GET", &format!("{prefix}/huge/{n}"), &[auth], b"");
        assert_eq!(r.status, 200);
        let output = r.json()["output"].as_str().unwrap().len();
        assert_eq!(output, n - 2);
        assert!(budget().peak() >= n, "the answer was counted: {}", budget().peak());
        assert_eq!(settled(&server).await, 0);

        // Over it, with a Content-Length: refused before reading the body.
        for path in ["huge", "huge-chunked"] {
            let r = raw(&server, "GET", &format!("{prefix}/{path}/4000000"), &[auth], b"");
            assert_eq!(r.status, 502, "{path}: {}", String::from_utf8_lossy(&r.body));
            let v = r.json();
            assert_eq!(v["code"], "answer_too_large", "{v}");
            let message = v["message"].as_str().unwrap();
            assert!(message.contains("X-Paragon-Use-Raw-Response"), "{message}");
            assert!(message.contains("PARA_PROXY_MAX_WRAPPED_BYTES"), "{message}");
            assert!(budget().peak() <= IN_FLIGHT, "{path}: {}", budget().peak());
            assert!(budget().peak() <= WRAPPED_CAP, "read up to the cap only: {}", budget().peak());
            assert_eq!(settled(&server).await, 0, "{path}");
        }

        // Raw, the same answer streams whole, holding nothing.
        let peak = budget().peak();
        for path in ["huge", "huge-chunked"] {
            let r = raw(
                &server,
                "GET",
                &format!("{prefix}/{path}/4000000"),
                &[auth, ("X-Paragon-Use-Raw-Response", "1")],
                b"",
            );
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.body, huge_json(4_000_000), "{path}");
        }
        assert_eq!(budget().peak(), peak, "raw answers are not held");
        assert_eq!(settled(&server).await, 0);
    });
}

/// Opens a proxy request and sends its head (with `Content-Length: length`) and the first
/// `first` bytes of its body, leaving the rest to [`finish_upload`].
fn start_upload(
    server: &TestServer,
    path: &str,
    bearer: &str,
    length: usize,
    first: usize,
) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    // Past this the test has failed (the old proxy waited for bodies it could not hold).
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: {bearer}\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&vec![b'u'; first]).unwrap();
    s
}

/// Status and JSON body of the answer on `s`, after sending `rest` more body bytes.
fn finish_upload(mut s: std::net::TcpStream, rest: usize) -> (u16, Option<String>, Value) {
    if rest > 0 {
        s.write_all(&vec![b'u'; rest]).unwrap();
    }
    let mut out = Vec::new();
    if let Err(e) = s.read_to_end(&mut out) {
        assert!(!out.is_empty(), "no answer: {e}");
    }
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8(out[..end].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    let retry_after = head.lines().find_map(|l| {
        l.to_ascii_lowercase().strip_prefix("retry-after:").map(|v| v.trim().to_string())
    });
    let mut body = out[end + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, retry_after, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Request bodies are held whole (a 401 may be retried after a refresh), so all of them
/// together are bounded: an upload that would take the bodies held past
/// `PARA_PROXY_MAX_INFLIGHT_BYTES` gets a 503 at once, before its body is read, and one over
/// the 16 MB cap a 413 on its `Content-Length`.
#[test]
fn concurrent_uploads_past_the_in_flight_bound_are_refused() {
    block_on(async {
        let (_up, base) = upstream().await;
        let server = proxy_to(&base).limits(small_budget()).start().await;
        let ann = token("ann");
        connect(&server, &ann, BASIC, "ann", "pw-1").await;
        let bearer = format!("Bearer {ann}");
        let path = format!("/projects/{PROJECT}/sdk/proxy/{BASIC}/upload");
        let budget = || &server.state.proxy_budget;
        const SIZE: usize = 1_000_000;

        // Two uploads in flight, each held for its whole length from its head on.
        let a = start_upload(&server, &path, &bearer, SIZE, 1000);
        let b = start_upload(&server, &path, &bearer, SIZE, 1000);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while budget().held() < 2 * SIZE {
            assert!(std::time::Instant::now() < deadline, "held: {}", budget().held());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A third does not fit: refused without reading it.
        let c = start_upload(&server, &path, &bearer, SIZE, 0);
        let (status, retry, v) =
            tokio::task::spawn_blocking(move || finish_upload(c, 0)).await.unwrap();
        assert_eq!(status, 503, "{v}");
        assert_eq!(v["code"], "proxy_busy", "{v}");
        assert!(v["message"].as_str().unwrap().contains("PARA_PROXY_MAX_INFLIGHT_BYTES"), "{v}");
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(budget().held(), 2 * SIZE);
        // One over the cap of a single body: 413 on its head.
        let big = start_upload(&server, &path, &bearer, 17 * 1024 * 1024, 0);
        let (status, _, v) =
            tokio::task::spawn_blocking(move || finish_upload(big, 0)).await.unwrap();
        assert_eq!((status, v["code"].as_str()), (413, Some("too_large")), "{v}");

        // The two finish, and what they held is given back.
        for s in [a, b] {
            let (status, _, v) =
                tokio::task::spawn_blocking(move || finish_upload(s, SIZE - 1000)).await.unwrap();
            assert_eq!((status, v), (200, json!({ "output": { "received": SIZE } })));
        }
        assert_eq!(settled(&server).await, 0);
        assert!(budget().peak() <= IN_FLIGHT, "{}", budget().peak());
        // Now there is room again.
        let c = start_upload(&server, &path, &bearer, SIZE, SIZE);
        let (status, _, _) =
            tokio::task::spawn_blocking(move || finish_upload(c, 0)).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(settled(&server).await, 0);
    });
}
