//! Alerts to the company (issue 22): events POSTed, signed, to a loopback receiver standing for
//! the company, which answers 500 at first; a provider on loopback that refuses a refresh.
//! - A credential whose refresh is refused gives exactly one `credential.invalid`, however many
//!   requests hit it, retried until the receiver answers 2xx, each attempt recorded.
//! - A run that fails gives one `workflow.run.failed`; connecting and disconnecting give
//!   `integration.connected` and `integration.disconnected`.
//! - A destination added in the dashboard gets events signed with the secret it showed once;
//!   the dashboard's alert routes refuse requests without the admin key or without CSRF.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{any, post};
use para_server::OAuthClient;
use para_store::alerts;
use para_worker::alerts::AlertsConfig;
use serde_json::{Value, json};

use crate::common::{self, TestServer, token};

const PROJECT: &str = "p-alerts";
const OAUTH: &str = "custom.tasks";
const BASIC: &str = "custom.vault";
const SECRET: &str = "alert-signing-secret";
const ADMIN_KEY: &str = "alerts-admin-key";

/// The build of `project` (a test on the shared PostgreSQL database uses a project of its own).
fn build(project: &str) -> para_build::Build {
    let credential = |name: &str| json!({ "type": "CREDENTIAL", "path": [name] });
    common::build(
        project,
        json!({
            OAUTH: common::custom(OAUTH, "oauth", json!({ "type": "bearer",
                "token": credential("oauthAccessToken") }), Value::Null),
            BASIC: common::custom(BASIC, "basic", json!({ "type": "basic",
                "username": credential("username"), "password": credential("password") }), Value::Null),
        }),
    )
}

/// The provider: every refresh is refused (`invalid_grant`: the user revoked the app); the API
/// accepts the basic credentials `ann:pw`, and `AT-0` only at the test endpoint (`/me`, when
/// the account is connected: it expires right after).
async fn provider() -> String {
    async fn token_endpoint() -> (StatusCode, String) {
        (StatusCode::BAD_REQUEST, json!({ "error": "invalid_grant" }).to_string())
    }
    async fn api(headers: HeaderMap, uri: Uri) -> (StatusCode, String) {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        if (auth == "Bearer AT-0" && uri.path() == "/api/me") || auth == "Basic YW5uOnB3" {
            (StatusCode::OK, json!({ "ok": true, "path": uri.path() }).to_string())
        } else {
            (StatusCode::UNAUTHORIZED, json!({ "error": "bad token" }).to_string())
        }
    }
    let app =
        axum::Router::new().route("/token", post(token_endpoint)).route("/api/{*rest}", any(api));
    common::serve(app).await
}

/// The company's receiver: records each request's signature header and body, and answers 500
/// to the first `fail_first` requests.
#[derive(Default)]
struct Receiver {
    fail_first: usize,
    seen: Mutex<Vec<(String, String, u16)>>,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> StatusCode {
    let signature =
        headers.get("x-para-signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mut seen = r.seen.lock().unwrap();
    let status = if seen.len() < r.fail_first { 500 } else { 200 };
    seen.push((signature, body, status));
    StatusCode::from_u16(status).unwrap()
}

async fn receiver(fail_first: usize) -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver { fail_first, ..Receiver::default() });
    let app = axum::Router::new().route("/hook", post(receive)).with_state(r.clone());
    (r.clone(), format!("{}/hook", common::serve(app).await))
}

impl Receiver {
    fn seen(&self) -> Vec<(String, String, u16)> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until a request was answered 2xx; every request so far.
    async fn until_delivered(&self) -> Vec<(String, String, u16)> {
        for _ in 0..200 {
            let seen = self.seen();
            if seen.iter().any(|s| s.2 == 200) {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nothing was delivered: {:?}", self.seen());
    }

    /// Waits until bodies of `n` distinct events were answered 2xx; the events.
    async fn events(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let mut events: Vec<Value> = Vec::new();
            for (_, body, status) in self.seen() {
                let event: Value = serde_json::from_str(&body).unwrap();
                if status == 200 && !events.iter().any(|e| e["id"] == event["id"]) {
                    events.push(event);
                }
            }
            if events.len() >= n {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {n} events were delivered: {:?}", self.seen());
    }
}

/// Checks `x-para-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` the
/// way docs/alerts.md tells a receiver to, with a five-minute window.
fn verify(secret: &str, header: &str, body: &str) {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_string()),
            Some(("v1", value)) => v1 = Some(value.to_string()),
            _ => {}
        }
    }
    let (t, v1) = (t.expect("a timestamp"), v1.expect("a v1 signature"));
    let age = para_store::now_ms() / 1000 - t.parse::<i64>().unwrap();
    assert!((0..300).contains(&age), "the signature is {age} s old");
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    hmac::Mac::update(&mut mac, format!("{t}.{body}").as_bytes());
    let expected: String =
        hmac::Mac::finalize(mac).into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v1, expected, "the signature does not verify");
}

fn config(url: Option<String>, events: &[&str]) -> AlertsConfig {
    AlertsConfig {
        signing_secret: url.as_ref().map(|_| SECRET.to_string()),
        webhook_url: url,
        events: events.iter().map(|e| e.to_string()).collect(),
        retry_delays_ms: vec![100, 100, 100, 100],
        ..AlertsConfig::default()
    }
}

async fn start(database: &str, provider_base: &str, alerts: AlertsConfig) -> TestServer {
    start_project(PROJECT, database, provider_base, alerts).await
}

async fn start_project(
    project: &str,
    database: &str,
    provider_base: &str,
    alerts: AlertsConfig,
) -> TestServer {
    let client = OAuthClient {
        client_id: "client".into(),
        client_secret: "client-secret".into(),
        token_url: Some(format!("{provider_base}/token")),
        api_base_url: Some(format!("{provider_base}/api")),
        ..OAuthClient::default()
    };
    let engine = para_server::engine::EngineConfig { poll_ms: 50, ..Default::default() };
    TestServer::builder(build(project))
        .database(database)
        .oauth_client(OAUTH, client.clone())
        .oauth_client(BASIC, client)
        .admin_key(Some(ADMIN_KEY))
        .engine(engine)
        .alerts(alerts)
        .start()
        .await
}

/// An OAuth credential of `user` whose access token has expired, made the way the callback
/// makes one (VALID: the test endpoint accepts `AT-0`); its refresh token is revoked.
async fn expiring_credential(server: &TestServer, user: &str) -> String {
    let state = &server.state;
    let connector = para_server::connector::Connector::of(state, OAUTH).unwrap();
    let token = json!({ "access_token": "AT-0", "refresh_token": "RT-revoked", "expires_in": 1 });
    state.store.touch_user(&server.project, user, None).await.unwrap();
    let c = para_server::connect::store_connection(
        state,
        user,
        &connector,
        para_server::connector::Material::default(),
        token.as_object().unwrap().clone(),
    )
    .await
    .unwrap();
    assert_eq!(c.status, para_store::CredentialStatus::Valid, "{:?}", c.status_reason);
    c.id
}

/// The alert test of issue 22 on `database`.
async fn a_refused_refresh_alerts_once(database: &str) {
    let provider_base = provider().await;
    let (receiver, url) = receiver(2).await;
    let project = format!("p-alerts-{}", uuid::Uuid::new_v4());
    let only_invalid = config(Some(url), &[alerts::CREDENTIAL_INVALID]);
    let server = start_project(&project, database, &provider_base, only_invalid).await;
    let user = format!("ann-{}", uuid::Uuid::new_v4());
    let id = expiring_credential(&server, &user).await;
    // Many requests need the refresh at once, then more after it was refused.
    let ann = token(&user);
    let proxy = format!("/sdk/proxy/{OAUTH}/items");
    let call = || server.call("GET", &proxy, &ann, None);
    let (a, b, c, d, e, f) = tokio::join!(call(), call(), call(), call(), call(), call());
    for (status, answer) in [a, b, c, d, e, f] {
        assert_ne!(status, 200, "{answer}");
    }
    for _ in 0..3 {
        assert_ne!(server.call("GET", &proxy, &ann, None).await.0, 200);
    }
    let c = server.state.store.credential(&project, &user, &id).await.unwrap().unwrap();
    assert_eq!(c.status, para_store::CredentialStatus::Invalid);

    let seen = receiver.until_delivered().await;
    // Nothing more comes once it was delivered.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.seen(), seen);
    assert_eq!(seen.iter().map(|s| s.2).collect::<Vec<_>>(), [500, 500, 200]);
    for (signature, body, _) in &seen {
        verify(SECRET, signature, body);
        assert_eq!(body, &seen[0].1, "every attempt sends the same event");
    }
    let event: Value = serde_json::from_str(&seen[0].1).unwrap();
    assert_eq!(event["type"], "credential.invalid");
    assert_eq!(event["projectId"], project.as_str());
    assert!(event["createdAt"].as_str().unwrap().ends_with('Z'));
    let data = &event["data"];
    assert_eq!(data["userId"], user.as_str());
    assert_eq!(data["integration"], OAUTH);
    assert_eq!(data["credentialId"], id.as_str());
    assert_eq!(data["reason"], "refresh_refused");
    assert!(data["message"].as_str().unwrap().contains("invalid_grant"), "{data}");
    assert!(!seen[0].1.contains("RT-revoked") && !seen[0].1.contains("AT-0"), "no token is sent");

    // The outbox recorded the one delivery and each attempt.
    let store = &server.state.store;
    let deliveries: Vec<_> = store
        .alert_deliveries(&project, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.event_id == event["id"].as_str().unwrap())
        .collect();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!((deliveries[0].status.as_str(), deliveries[0].attempts), ("delivered", 3));
    let attempts = store.alert_attempts(&deliveries[0].event_id, &deliveries[0].destination_id);
    let statuses: Vec<_> = attempts.await.unwrap().iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(200)]);
    let invalid_events = store.alert_events(&project, 1000).await.unwrap();
    let mine = invalid_events
        .iter()
        .filter(|(_, kind, body)| kind == alerts::CREDENTIAL_INVALID && body.contains(&id))
        .count();
    assert_eq!(mine, 1, "exactly one event for the credential");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_refresh_gives_one_signed_credential_invalid_alert_retried_until_2xx() {
    a_refused_refresh_alerts_once("sqlite::memory:").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_refresh_gives_one_alert_on_postgres() {
    match std::env::var("PARA_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => a_refused_refresh_alerts_once(&url).await,
        _ => {
            assert_ne!(
                std::env::var("PARA_TEST_REQUIRE_POSTGRES").as_deref(),
                Ok("1"),
                "PARA_TEST_REQUIRE_POSTGRES=1 but PARA_TEST_POSTGRES is not set"
            );
            eprintln!("skipped: PARA_TEST_POSTGRES is not set");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_run_and_connections_give_their_events() {
    let provider_base = provider().await;
    let (receiver, url) = receiver(0).await;
    let types = [alerts::RUN_FAILED, alerts::CONNECTED, alerts::DISCONNECTED];
    let server = start("sqlite::memory:", &provider_base, config(Some(url), &types)).await;
    let ann = token("ann");

    // Connected, then disconnected.
    let c = connect_basic(&server, &ann).await;
    let credential = c["id"].as_str().unwrap().to_string();
    let (status, answer) =
        server.call("DELETE", &format!("/sdk/integrations/{BASIC}"), &ann, None).await;
    assert!(status < 300, "{status} {answer}");

    // A run of a workflow the build does not have fails at once.
    let create = para_store::runs::Write::Create {
        run: para_store::runs::NewRun {
            id: "run-gone".into(),
            project_id: PROJECT.into(),
            user_id: "ann".into(),
            integration: BASIC.into(),
            workflow_id: "no-such-workflow".into(),
            trigger_kind: "event".into(),
            trigger_input: json!({}),
            build_hash: "sha256:test".into(),
            credential_id: None,
            configuration_id: None,
        },
        lease: None,
        steps: vec![],
    };
    assert_eq!(server.state.store.apply(&[create]).await.unwrap(), [true]);

    let events = receiver.events(3).await;
    let of = |kind: &str| events.iter().filter(|e| e["type"] == kind).collect::<Vec<_>>();
    let connected = of(alerts::CONNECTED);
    assert_eq!(connected.len(), 1, "{events:?}");
    assert_eq!(
        connected[0]["data"],
        json!({ "userId": "ann", "integration": BASIC, "credentialId": credential })
    );
    let disconnected = of(alerts::DISCONNECTED);
    assert_eq!(disconnected.len(), 1, "{events:?}");
    assert_eq!(disconnected[0]["data"]["credentialId"], credential.as_str());
    let failed = of(alerts::RUN_FAILED);
    assert_eq!(failed.len(), 1, "{events:?}");
    let data = &failed[0]["data"];
    assert_eq!(data["runId"], "run-gone");
    assert_eq!(data["workflowId"], "no-such-workflow");
    assert_eq!(data["userId"], "ann");
    assert_eq!(data["integration"], BASIC);
    assert!(data["error"].as_str().unwrap().contains("not in the served build"), "{data}");
    let run = server.state.store.run(PROJECT, "run-gone").await.unwrap().unwrap();
    assert_eq!(run.status, para_store::RunStatus::Failed);
    for (signature, body, _) in receiver.seen() {
        verify(SECRET, &signature, &body);
    }
    // Each once, also after the sender looked again.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(receiver.seen().len(), 3, "{:?}", receiver.seen());
}

/// Connects the basic-auth integration for the token's user; the credential.
async fn connect_basic(server: &TestServer, user_token: &str) -> Value {
    let payload =
        json!({ "integrationId": BASIC, "payload": { "username": "ann", "password": "pw" } });
    let (status, c) = server.call("POST", "/sdk/credentials", user_token, Some(payload)).await;
    assert_eq!(status, 200, "{c}");
    c
}

/// A dashboard form's CSRF token, read from its page.
fn csrf(page: &str) -> String {
    page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_destination_added_in_the_dashboard_receives_signed_events() {
    let provider_base = provider().await;
    let (receiver, url) = receiver(1).await;
    let server = start("sqlite::memory:", &provider_base, config(None, &[])).await;
    let alerts_url = format!("{}/dashboard/alerts", server.base);
    let http = common::client_without_redirects();

    // Without the admin key: refused before anything is read.
    let anonymous = http.post(&alerts_url).form(&[("url", url.as_str())]).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong = http.get(&alerts_url).bearer_auth("not-the-key").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let delete = format!("{alerts_url}/delete");
    let anonymous = http.post(&delete).form(&[("id", "x")]).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Signed in with the form: each form needs the page's CSRF token.
    let login = http
        .post(format!("{}/dashboard/login", server.base))
        .form(&[("key", ADMIN_KEY)])
        .send()
        .await
        .unwrap();
    let cookie =
        login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let page = http.get(&alerts_url).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf_token = csrf(&page.text().await.unwrap());
    for form in [vec![("url", url.as_str())], vec![("url", url.as_str()), ("csrf", "forged")]] {
        let refused = http.post(&alerts_url).header("cookie", &cookie).form(&form).send();
        assert_eq!(refused.await.unwrap().status(), StatusCode::FORBIDDEN);
    }
    assert!(server.state.store.alert_destinations(PROJECT).await.unwrap().is_empty());
    let bad = http
        .post(&alerts_url)
        .header("cookie", &cookie)
        .form(&[("url", "ftp://x"), ("csrf", &csrf_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("http(s) URL"));

    let added = http
        .post(&alerts_url)
        .header("cookie", &cookie)
        .form(&[("url", url.as_str()), ("event", alerts::CONNECTED), ("csrf", &csrf_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::OK);
    let page = added.text().await.unwrap();
    let secret = page
        .split("<code class=\"secret\">")
        .nth(1)
        .expect("the secret is shown once")
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert!(secret.len() > 30, "{secret}");
    let destinations = server.state.store.alert_destinations(PROJECT).await.unwrap();
    assert_eq!(destinations.len(), 1);
    let sealed = destinations[0].secret.clone().unwrap();
    assert!(!sealed.contains(&secret), "stored sealed");
    let again = http.get(&alerts_url).header("cookie", &cookie).send().await.unwrap();
    assert!(!again.text().await.unwrap().contains(&secret), "shown only once");

    // An event it takes: delivered (after one 500), signed with its secret.
    let ann = token("ann");
    let c = connect_basic(&server, &ann).await;
    let seen = receiver.until_delivered().await;
    assert_eq!(seen.len(), 2);
    for (signature, body, _) in &seen {
        verify(&secret, signature, body);
    }
    let event: Value = serde_json::from_str(&seen[0].1).unwrap();
    assert_eq!(event["type"], alerts::CONNECTED);
    assert_eq!(event["data"]["credentialId"], c["id"]);

    // Deleted with the page's token; a bearer key needs none.
    let id = destinations[0].id.clone();
    let refused = http.post(&delete).header("cookie", &cookie).form(&[("id", id.as_str())]).send();
    assert_eq!(refused.await.unwrap().status(), StatusCode::FORBIDDEN);
    let gone = http
        .post(&delete)
        .bearer_auth(ADMIN_KEY)
        .form(&[("id", id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::SEE_OTHER);
    assert!(server.state.store.alert_destinations(PROJECT).await.unwrap().is_empty());
}
