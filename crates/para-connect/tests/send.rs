//! `Connect::send`, the one authorised request, against a loopback provider: the path guard
//! refuses before anything is sent, a 401 refreshes the token once and sends again, a 429 is
//! waited for when the caller allows the wait and answered otherwise, and a run's account that
//! needs reconnecting is refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use para_connect::send::{Account, Destination, Outgoing, every_header, read_body};
use para_connect::{Connect, ConnectConfig, Error, Kind};
use para_store::CredentialStatus;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PROJECT: &str = "p-send";
const USER: &str = "u-1";
const BASIC: &str = "custom.basic";
const OAUTH: &str = "custom.oauth";

/// What the provider saw: request line and `Authorization`, in order.
#[derive(Default)]
struct Provider {
    seen: Mutex<Vec<(String, String)>>,
    /// 429s still to answer on `/limited`, with this `Retry-After`.
    limited: Mutex<(u32, String)>,
}

impl Provider {
    fn seen(&self, path: &str) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|(line, _)| line.contains(path)).map(|(_, a)| a.clone()).collect()
    }

    /// The answer to one request: status, extra headers, body.
    fn answer(&self, line: &str, authorization: &str) -> (u16, String, String) {
        self.seen.lock().unwrap().push((line.to_string(), authorization.to_string()));
        let path = line.split(' ').nth(1).unwrap_or("");
        if path.starts_with("/token") {
            return (
                200,
                String::new(),
                json!({"access_token": "AT-1", "expires_in": 3600}).to_string(),
            );
        }
        if path.starts_with("/api/me") {
            return (200, String::new(), "{}".into());
        }
        if path.starts_with("/api/limited") {
            let mut limited = self.limited.lock().unwrap();
            if limited.0 > 0 {
                limited.0 -= 1;
                return (429, format!("retry-after: {}\r\n", limited.1), "{}".into());
            }
        }
        if authorization == "Bearer AT-0" {
            return (401, String::new(), r#"{"error":"expired"}"#.into());
        }
        (200, String::new(), json!({"path": path, "auth": authorization}).to_string())
    }
}

/// A keep-alive HTTP/1.1 provider on a loopback port (bodies by `Content-Length` only).
async fn provider() -> (String, Arc<Provider>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Provider::default());
    let shared = state.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let state = shared.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| {
                                let (n, v) = l.split_once(':')?;
                                n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                            })
                            .unwrap_or_default()
                    };
                    let length: usize = header("content-length").parse().unwrap_or(0);
                    while buf.len() < end + length {
                        let mut chunk = [0u8; 4096];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + length);
                    let line = head.lines().next().unwrap_or("").to_string();
                    let (status, extra, body) = state.answer(&line, &header("authorization"));
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (base, state)
}

fn custom(key: &str, auth: &str, authorization: Value, base: &str) -> Value {
    json!({
        "key": key, "kind": "custom", "name": key, "source": format!("src/integrations/{key}"),
        "config": {
            "description": null, "overview": null, "showWatermark": true, "active": true,
            "workflowDisplayOrder": [],
            "custom": {
                "name": key, "slug": key.trim_start_matches("custom."), "accentColor": "#123456",
                "authenticationType": auth, "scopes": [],
                "includeClientIdAndSecrets": true, "usePKCEInCodeExchange": false,
                "authorizationUrl": { "type": "VALUE", "value": format!("{base}/authorize") },
                "accessTokenUrl": { "type": "VALUE", "value": format!("{base}/token") },
                "apiBaseUrl": { "type": "VALUE", "value": format!("{base}/api") },
                "testEndpointPath": { "type": "VALUE", "value": "/me" },
                "authorization": authorization,
                "requestOptions": null,
                "configInputs": []
            }
        },
        "inputs": [], "workflows": {}, "customTriggers": {}
    })
}

async fn connect(base: &str) -> (tempfile::TempDir, Connect) {
    let credential = |name: &str| json!({ "type": "CREDENTIAL", "path": [name] });
    let build: para_build::Build = serde_json::from_value(json!({
        "formatVersion": 1, "buildHash": "sha256:test", "generator": "test",
        "project": { "projectId": PROJECT, "projectName": PROJECT },
        "persona": { "meta": null, "source": null },
        "events": {}, "resources": {}, "secrets": [],
        "integrations": {
            BASIC: custom(BASIC, "basic", json!({ "type": "basic",
                "username": credential("username"), "password": credential("password") }), base),
            OAUTH: custom(OAUTH, "oauth", json!({ "type": "bearer",
                "token": credential("oauthAccessToken") }), base),
        },
    }))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("para.db").display());
    let store = para_store::Store::open(&db).await.unwrap();
    store.touch_user(PROJECT, USER, None).await.unwrap();
    let secrets =
        para_auth::SecretKey::from_base64("test", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .unwrap();
    let mut config =
        ConnectConfig { public_url: "http://127.0.0.1:1".into(), ..Default::default() };
    config.oauth_clients.insert(
        para_connect::env_key(OAUTH),
        para_connect::OAuthClient {
            client_id: "client".into(),
            client_secret: "secret".into(),
            ..Default::default()
        },
    );
    (dir, Connect::new(config, build, store, secrets))
}

fn get(path: &str, wait_429: Duration) -> Outgoing<'_> {
    Outgoing {
        method: Method::GET,
        destination: Destination::below(path).unwrap(),
        query: None,
        headers: HeaderMap::new(),
        body: Default::default(),
        keep: every_header,
        wait_429,
    }
}

fn account(integration: &str, credential_id: Option<&'static str>) -> Account<'static> {
    let integration: &'static str = if integration == BASIC { BASIC } else { OAUTH };
    Account { user_id: USER, integration, credential_id, require_valid: true }
}

async fn basic_credential(c: &Connect) -> String {
    let values = json!({"username": "ada", "password": "pw"}).as_object().unwrap().clone();
    let stored = para_connect::connect::create_credential(c, USER, BASIC, values).await.unwrap();
    assert_eq!(stored.status, CredentialStatus::Valid, "{:?}", stored.status_reason);
    stored.id
}

#[tokio::test]
async fn paths_that_leave_the_base_are_refused_before_anything_is_sent() {
    let (base, provider) = provider().await;
    let (_dir, c) = connect(&base).await;
    basic_credential(&c).await;
    for bad in ["/../admin", "/%2e%2e/admin", "//evil.example/x", "/a%2fb", "/http://evil"] {
        let Err(Error::Failed { kind, code, .. }) = Destination::below(bad) else {
            panic!("{bad} must be refused");
        };
        assert_eq!((kind, code), (Kind::BadRequest, "proxy_path"));
    }
    let answer = c.send_as(account(BASIC, None), get("/v1/items", Duration::ZERO)).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&read_body(answer.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(body["path"], "/api/v1/items");
    assert!(body["auth"].as_str().unwrap().starts_with("Basic "));
    // The connection check and this request; nothing of the refused ones.
    assert_eq!(provider.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_429_is_waited_for_only_as_long_as_the_caller_allows() {
    let (base, provider) = provider().await;
    let (_dir, c) = connect(&base).await;
    basic_credential(&c).await;
    let who = account(BASIC, None);

    *provider.limited.lock().unwrap() = (1, "1".into());
    let started = std::time::Instant::now();
    let answer = c.send_as(who, get("/limited", Duration::from_secs(2))).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_secs(1), "the Retry-After was waited for");
    assert_eq!(provider.seen("/api/limited").len(), 2);

    // No wait allowed (the proxy, the engine): the 429 is the answer, sent once.
    *provider.limited.lock().unwrap() = (1, "1".into());
    let answer = c.send_as(who, get("/limited", Duration::ZERO)).await.unwrap();
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.headers()["retry-after"], "1");
    assert_eq!(provider.seen("/api/limited").len(), 3);

    // A longer wait than allowed: answered at once.
    *provider.limited.lock().unwrap() = (1, "30".into());
    let started = std::time::Instant::now();
    let answer = c.send_as(who, get("/limited", Duration::from_secs(2))).await.unwrap();
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(started.elapsed() < Duration::from_secs(2));

    // The HTTP-date form: a date already past is no wait; one far ahead is too long a wait;
    // an unreadable value is no permission to retry.
    *provider.limited.lock().unwrap() = (1, "Sun, 06 Nov 1994 08:49:37 GMT".into());
    let seen = provider.seen("/api/limited").len();
    let answer = c.send_as(who, get("/limited", Duration::from_secs(2))).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(provider.seen("/api/limited").len(), seen + 2, "sent again at once");
    for value in ["Fri, 31 Dec 9999 23:59:59 GMT", "-1", "soon"] {
        *provider.limited.lock().unwrap() = (1, value.into());
        let answer = c.send_as(who, get("/limited", Duration::from_secs(2))).await.unwrap();
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS, "{value}");
    }
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_and_the_request_goes_again() {
    let (base, provider) = provider().await;
    let (_dir, c) = connect(&base).await;
    let connector = c.connector(OAUTH).unwrap();
    let token = json!({"access_token": "AT-0", "refresh_token": "RT", "expires_in": 3600});
    let stored = para_connect::connect::store_connection(
        &c,
        USER,
        &connector,
        Default::default(),
        token.as_object().unwrap().clone(),
    )
    .await
    .unwrap();
    assert_eq!(stored.status, CredentialStatus::Valid, "{:?}", stored.status_reason);

    let answer = c.send_as(account(OAUTH, None), get("/v1/items", Duration::ZERO)).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(provider.seen("/api/v1/items"), ["Bearer AT-0", "Bearer AT-1"]);
    assert_eq!(provider.seen("/token").len(), 1);
    // The next request uses the new token at once.
    let answer = c.send_as(account(OAUTH, None), get("/v1/items", Duration::ZERO)).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(provider.seen("/api/v1/items").last().unwrap(), "Bearer AT-1");
    assert_eq!(provider.seen("/token").len(), 1);
}

#[tokio::test]
async fn an_account_that_needs_reconnecting_is_refused_for_runs_only() {
    let (base, _provider) = provider().await;
    let (_dir, c) = connect(&base).await;
    let id = basic_credential(&c).await;
    let id: &'static str = Box::leak(id.into_boxed_str());
    let row = c.store.credential(PROJECT, USER, id).await.unwrap().unwrap();
    c.store
        .update_credential(
            PROJECT,
            USER,
            id,
            CredentialStatus::Invalid,
            Some("revoked"),
            &row.secret,
            None,
        )
        .await
        .unwrap();
    c.credential_cache.forget(USER, BASIC);
    let run = account(BASIC, Some(id));
    let Err(Error::Failed { kind, code, message }) = c.prepare(run).await else {
        panic!("an INVALID account must be refused to a run");
    };
    assert_eq!((kind, code), (Kind::BadRequest, "credential_unusable"));
    assert!(message.contains("connect it again"), "{message}");
    // The proxy tries it (a refresh may revive it).
    let proxy = Account { require_valid: false, ..run };
    let answer = c.send_as(proxy, get("/v1/items", Duration::ZERO)).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    // Nobody's credential: named or not, the user is told to connect.
    let other = Account { user_id: "u-2", ..account(BASIC, None) };
    let Err(Error::Failed { code, .. }) = c.prepare(other).await else { panic!() };
    assert_eq!(code, "not_connected");
    let Err(Error::Failed { kind, .. }) = c.prepare(Account { user_id: "u-2", ..run }).await else {
        panic!()
    };
    assert_eq!(kind, Kind::NotFound);
}
