//! The Triggers API end to end: a user is subscribed to Slack's "new message in channel" with
//! their token; Slack's events arrive signed at `/webhooks/{project}/slack` as Slack sends them
//! (the signature computed here from Slack's documented algorithm); a loopback "company"
//! receives each delivery, whose `x-paragon-signature` is recomputed here from the documented
//! algorithm (`v1=` and the hex HMAC-SHA256 of the body with the signing secret). A 500 is
//! retried and the event delivered once; repeated failure marks the subscription ERRORED and an
//! update makes it ACTIVE again; a subscription is its user's alone; bad requests get 400s
//! that name the field.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use hmac::{KeyInit, Mac};
use para_server::OAuthClient;
use para_store::{CredentialStatus, NewCredential};
use para_worker::deliveries::TriggersApiConfig;
use serde_json::{Value, json};

use crate::common::{self, TestServer, client, token};

const PROJECT: &str = "p-triggers-api";
const SLACK_SECRET: &str = "slack-signing-secret";
const SIGNING_SECRET: &str = "company-signing-secret";
const MESSAGES: &str = "SLACK_TRIGGER_CHANNEL_MESSAGE_POSTED";
const CHANNELS: &str = "SLACK_TRIGGER_CHANNEL_CREATED";

/// The company's webhook: what it received (path, headers, body) and what it answers.
#[derive(Default)]
struct Company {
    received: Mutex<Vec<(String, HeaderMap, Bytes)>>,
    /// Answered first, in order; then `otherwise`.
    answers: Mutex<VecDeque<u16>>,
    otherwise: Mutex<u16>,
}

impl Company {
    fn at(&self, path: &str) -> Vec<(HeaderMap, Bytes)> {
        let all = self.received.lock().unwrap();
        all.iter().filter(|(p, _, _)| p == path).map(|(_, h, b)| (h.clone(), b.clone())).collect()
    }
}

async fn company_hook(
    State(company): State<Arc<Company>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    company.received.lock().unwrap().push((uri.path().to_string(), headers, body));
    let next = company.answers.lock().unwrap().pop_front();
    let status = next.unwrap_or(*company.otherwise.lock().unwrap());
    StatusCode::from_u16(status).unwrap()
}

async fn start_company(otherwise: u16) -> (String, Arc<Company>) {
    let company = Arc::new(Company { otherwise: Mutex::new(otherwise), ..Company::default() });
    let app =
        axum::Router::new().fallback(axum::routing::post(company_hook)).with_state(company.clone());
    (common::serve(app).await, company)
}

/// A build with Slack (catalog), active.
fn build() -> para_build::Build {
    let slack = json!({
        "key": "slack", "kind": "catalog", "name": "Slack", "source": "src/integrations/slack",
        "config": { "description": null, "overview": null, "showWatermark": true,
                    "active": true, "workflowDisplayOrder": [] },
        "inputs": [], "workflows": {}, "customTriggers": {}
    });
    common::build(PROJECT, json!({ "slack": slack }))
}

/// A server whose deliveries go to `company` and are retried after each of `delays` (ms).
async fn server(company: &str, delays: Vec<u64>) -> TestServer {
    let slack = OAuthClient {
        client_id: "id".into(),
        client_secret: "secret".into(),
        webhook_secret: Some(SLACK_SECRET.into()),
        ..OAuthClient::default()
    };
    TestServer::builder(build())
        .oauth_client("slack", slack)
        .triggers_api(TriggersApiConfig {
            webhook_url: Some(format!("{company}/events")),
            signing_secret: Some(SIGNING_SECRET.into()),
            retry_delays_ms: delays,
            timeout_ms: 2_000,
        })
        .start()
        .await
}

/// Connects `user`'s Slack workspace `team` (stored as the OAuth callback would, with the
/// account lookup's team id); the credential's id.
async fn connect_slack(s: &TestServer, user: &str, team: &str) -> String {
    s.state.store.touch_user(PROJECT, user, None).await.unwrap();
    let mut c = NewCredential::new(PROJECT, user, "slack", CredentialStatus::Valid, "sealed");
    c.provider_data = json!({ "account": { "teamId": team } });
    s.state.store.insert_credential(&c).await.unwrap().id
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac_sha256(key: &str, data: &[u8]) -> Vec<u8> {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Sends Slack's Events API request for a message in `channel` of workspace `team`, signed as
/// Slack documents: `v0=` and the hex HMAC-SHA256 of `v0:<timestamp>:<body>`.
async fn slack_message(s: &TestServer, team: &str, event_id: &str, channel: &str) {
    let event = json!({ "type": "message", "channel": channel, "channel_type": "channel",
                        "user": "U1", "text": "hello", "ts": "1700000000.000100" });
    slack_event(s, team, event_id, event).await;
}

async fn slack_event(s: &TestServer, team: &str, event_id: &str, event: Value) {
    let body = json!({ "token": "t", "team_id": team, "api_app_id": "A1", "type": "event_callback",
                       "event_id": event_id, "event_time": 1_700_000_000, "event": event })
    .to_string();
    let timestamp = (para_store::now_ms() / 1000).to_string();
    let signed = format!("v0:{timestamp}:{body}");
    let signature = format!("v0={}", hex(&hmac_sha256(SLACK_SECRET, signed.as_bytes())));
    let response = client()
        .post(format!("{}/webhooks/{PROJECT}/slack", s.base))
        .header("content-type", "application/json")
        .header("x-slack-signature", signature)
        .header("x-slack-request-timestamp", timestamp)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// `method path` with `user`'s token (none: no token) and a JSON body; status and JSON answer.
async fn call(
    s: &TestServer,
    method: &str,
    path: &str,
    user: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r =
        client().request(method.parse().unwrap(), format!("{}/projects/{PROJECT}{path}", s.base));
    if let Some(user) = user {
        r = r.bearer_auth(token(user));
    }
    if let Some(body) = body {
        r = r.json(&body);
    }
    let response = r.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until `path` of the company has received `n` requests; what it received.
async fn wait_for(company: &Company, path: &str, n: usize) -> Vec<(HeaderMap, Bytes)> {
    for _ in 0..200 {
        let got = company.at(path);
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{path} received {} requests, not {n}", company.at(path).len());
}

/// The signature a delivery must carry, computed from the documented algorithm.
fn expected_signature(body: &[u8]) -> String {
    format!("v1={}", hex(&hmac_sha256(SIGNING_SECRET, body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_event_reaches_the_company_signed_and_a_500_is_retried_into_one_delivery() {
    let (company_url, company) = start_company(200).await;
    company.answers.lock().unwrap().push_back(500);
    let s = server(&company_url, vec![50, 50]).await;
    let ann_slack = connect_slack(&s, "ann", "T-ANN").await;
    connect_slack(&s, "bob", "T-BOB").await;

    let (status, sub) = call(
        &s,
        "POST",
        "/trigger-subscriptions",
        Some("ann"),
        Some(
            json!({ "integration": "slack", "type": MESSAGES, "parameters": { "channel": "C1" } }),
        ),
    )
    .await;
    assert_eq!(status, 200, "{sub}");
    assert_eq!(
        (sub["status"].as_str(), sub["credentialId"].as_str()),
        (Some("ACTIVE"), Some(ann_slack.as_str()))
    );
    assert!(sub.get("webhookOverride").is_none(), "{sub}");
    let sub_id = sub["id"].as_str().unwrap().to_string();
    let (status, created) = call(
        &s,
        "POST",
        "/trigger-subscriptions",
        Some("ann"),
        Some(json!({ "type": CHANNELS, "webhookOverride": {
            "url": format!("{company_url}/override"), "headers": { "x-tenant": "acme" },
            "metadata": { "tenant": "acme" } } })),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        created["webhookOverride"],
        json!({ "url": format!("{company_url}/override"), "metadata": { "tenant": "acme" } })
    );

    // Ann's message in C1 (sent twice, as a provider retrying would), one in C2 (the filter
    // leaves it out), and one in Bob's workspace (he subscribed to nothing).
    slack_message(&s, "T-ANN", "Ev1", "C1").await;
    slack_message(&s, "T-ANN", "Ev1", "C1").await;
    slack_message(&s, "T-ANN", "Ev2", "C2").await;
    slack_message(&s, "T-BOB", "Ev3", "C1").await;

    let got = wait_for(&company, "/events", 2).await;
    // Nothing more comes: the 200 ended it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got_now = company.at("/events");
    assert_eq!(got_now.len(), 2, "a 500, then one 200: {got:?}");
    let (headers, body) = &got_now[1];
    assert_eq!(body, &got_now[0].1, "a retry sends the same bytes");
    let signature = headers.get("x-paragon-signature").unwrap().to_str().unwrap();
    assert_eq!(signature, expected_signature(body));
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payload["userId"], "ann");
    assert_eq!(payload["integration"], "slack");
    assert_eq!(payload["triggerType"], MESSAGES);
    assert_eq!(payload["triggerSubscriptionId"], sub_id.as_str());
    assert_eq!(payload["credentialId"], ann_slack.as_str());
    assert_eq!(payload["projectId"], PROJECT);
    assert_eq!(payload["payload"]["event"]["channel"], "C1");
    assert_eq!(payload["payload"]["event_id"], "Ev1");
    assert_eq!(payload["triggerSubscriptionMetadata"], json!({}));
    assert!(payload["eventId"].as_str().is_some_and(|id| id.len() == 36), "{payload}");
    assert!(payload["dateReceived"].as_str().is_some_and(|d| d.ends_with('Z')), "{payload}");
    let deliveries = s.state.store.trigger_deliveries(PROJECT, &sub_id, 10).await.unwrap();
    let summary: Vec<(&str, i64, Option<i64>)> =
        deliveries.iter().map(|d| (d.status.as_str(), d.attempts, d.last_status)).collect();
    assert_eq!(summary, [("delivered", 2, Some(200))]);

    // A channel created in Ann's workspace goes to the other subscription's override, with its
    // headers and metadata, signed alike.
    slack_event(
        &s,
        "T-ANN",
        "Ev4",
        json!({ "type": "channel_created", "channel": { "id": "C9" } }),
    )
    .await;
    let got = wait_for(&company, "/override", 1).await;
    let (headers, body) = &got[0];
    assert_eq!(headers.get("x-tenant").unwrap(), "acme");
    assert_eq!(
        headers.get("x-paragon-signature").unwrap().to_str().unwrap(),
        expected_signature(body)
    );
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payload["triggerType"], CHANNELS);
    assert_eq!(payload["triggerSubscriptionMetadata"], json!({ "tenant": "acme" }));
    assert_eq!(company.at("/events").len(), 2, "the message subscription does not hear it");

    // The subscription shows when it last heard an event; the examples are what it got.
    let (status, shown) =
        call(&s, "GET", &format!("/trigger-subscriptions/{sub_id}"), Some("ann"), None).await;
    assert_eq!(status, 200);
    assert!(shown["dateLastReceivedEvent"].is_string(), "{shown}");
    let (status, examples) = call(
        &s,
        "POST",
        "/triggers/examples",
        Some("ann"),
        Some(json!({ "integration": "slack", "type": MESSAGES })),
    )
    .await;
    assert_eq!(status, 200, "{examples}");
    assert_eq!(examples.as_array().unwrap().len(), 1, "{examples}");
    assert_eq!(examples[0]["event"]["channel"], "C1");
    let (_, listed) = call(
        &s,
        "GET",
        "/trigger-subscriptions?type=SLACK_TRIGGER_CHANNEL_CREATED",
        Some("ann"),
        None,
    )
    .await;
    assert_eq!(listed["triggers"]["slack"].as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failure_marks_the_subscription_errored_until_it_is_updated() {
    let (company_url, company) = start_company(404).await;
    let s = server(&company_url, vec![20, 20]).await;
    connect_slack(&s, "ann", "T-ANN").await;
    let (status, sub) = call(
        &s,
        "POST",
        "/trigger-subscriptions",
        Some("ann"),
        Some(json!({ "integration": "slack", "type": MESSAGES })),
    )
    .await;
    assert_eq!(status, 200, "{sub}");
    let one = format!("/trigger-subscriptions/{}", sub["id"].as_str().unwrap());

    slack_message(&s, "T-ANN", "Ev1", "C1").await;
    wait_for(&company, "/events", 3).await;
    let mut shown = Value::Null;
    for _ in 0..100 {
        shown = call(&s, "GET", &one, Some("ann"), None).await.1;
        if shown["status"] == "ERRORED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(shown["status"], "ERRORED", "{shown}");
    let error = shown["error"].as_str().unwrap();
    assert!(error.contains("3 times") && error.contains("HTTP 404"), "{error}");
    let (_, errored) =
        call(&s, "GET", "/trigger-subscriptions?status=ERRORED", Some("ann"), None).await;
    assert_eq!(errored["triggers"]["slack"].as_array().unwrap().len(), 1, "{errored}");

    // While ERRORED it hears nothing (as Paragon disables it).
    slack_message(&s, "T-ANN", "Ev2", "C1").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(company.at("/events").len(), 3, "nothing is sent to an ERRORED subscription");

    // Fixed and updated: ACTIVE again, and the next event is delivered.
    *company.otherwise.lock().unwrap() = 200;
    let (status, updated) = call(&s, "PATCH", &one, Some("ann"), Some(json!({}))).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["status"], "ACTIVE");
    assert!(updated.get("error").is_none(), "{updated}");
    slack_message(&s, "T-ANN", "Ev3", "C1").await;
    let got = wait_for(&company, "/events", 4).await;
    let payload: Value = serde_json::from_slice(&got[3].1).unwrap();
    assert_eq!(payload["payload"]["event_id"], "Ev3");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(company.at("/events").len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_their_users_own_and_bad_requests_are_refused_clearly() {
    let (company_url, _company) = start_company(200).await;
    let s = server(&company_url, vec![20]).await;
    connect_slack(&s, "ann", "T-ANN").await;
    let bobs = connect_slack(&s, "bob", "T-BOB").await;
    let (status, sub) = call(
        &s,
        "POST",
        "/trigger-subscriptions",
        Some("ann"),
        Some(
            json!({ "integration": "slack", "type": MESSAGES, "parameters": { "channel": "C1" } }),
        ),
    )
    .await;
    assert_eq!(status, 200, "{sub}");
    let one = format!("/trigger-subscriptions/{}", sub["id"].as_str().unwrap());

    // No token: 401. Bob's token: Ann's subscription does not exist for him.
    assert_eq!(call(&s, "GET", "/trigger-subscriptions", None, None).await.0, 401);
    assert_eq!(call(&s, "GET", &one, None, None).await.0, 401);
    assert_eq!(call(&s, "POST", "/trigger-subscriptions", None, Some(json!({}))).await.0, 401);
    for method in ["GET", "PATCH", "DELETE"] {
        let body = (method == "PATCH").then(|| json!({ "parameters": { "channel": "C2" } }));
        let (status, answer) = call(&s, method, &one, Some("bob"), body).await;
        assert_eq!(status, 404, "{method}: {answer}");
    }
    let (_, bobs_list) = call(&s, "GET", "/trigger-subscriptions", Some("bob"), None).await;
    assert_eq!(bobs_list, json!({ "triggers": {} }));
    let (status, still) = call(&s, "GET", &one, Some("ann"), None).await;
    assert_eq!((status, &still["parameters"]), (200, &json!({ "channel": "C1" })));

    // Bad requests: each 400 names what is wrong.
    let refused = |status: u16, answer: &Value, says: &str| {
        assert_eq!(status, 400, "{answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(says), "`{message}` does not say `{says}`");
    };
    let response = client()
        .post(format!("{}/projects/{PROJECT}/trigger-subscriptions", s.base))
        .bearer_auth(token("ann"))
        .header("content-type", "application/json")
        .body("{\"type\": ")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    refused(status, &response.json().await.unwrap(), "not JSON");
    let create = |body: Value| call(&s, "POST", "/trigger-subscriptions", Some("ann"), Some(body));
    let (status, answer) = create(json!({ "integration": "slack", "type": "SLACK_NO_SUCH" })).await;
    refused(status, &answer, "no trigger type `SLACK_NO_SUCH`");
    let (status, answer) = create(json!({ "type": "NO_SUCH_ANYWHERE" })).await;
    refused(status, &answer, "`type`");
    let (status, answer) = create(json!({ "integration": "slack" })).await;
    refused(status, &answer, "`type` is required");
    let (status, answer) = create(json!({ "type": 5 })).await;
    refused(status, &answer, "`type` must be a string");
    let (status, answer) = create(json!({ "integration": "github", "type": MESSAGES })).await;
    refused(status, &answer, "`integration`");
    let (status, answer) =
        create(json!({ "type": MESSAGES, "parameters": { "chanel": "C1" } })).await;
    refused(status, &answer, "`parameters.chanel`");
    let (status, answer) = create(json!({ "type": MESSAGES, "parameters": [1] })).await;
    refused(status, &answer, "`parameters` must be an object");
    let (status, answer) =
        create(json!({ "type": MESSAGES, "webhookOverride": { "url": "ftp://x" } })).await;
    refused(status, &answer, "`webhookOverride.url`");
    let (status, answer) = create(json!({ "type": MESSAGES, "webhookOverride": {
        "url": "https://example.com", "headers": { "x-paragon-signature": "v1=forged" } } }))
    .await;
    refused(status, &answer, "webhookOverride.headers.x-paragon-signature");
    let (status, answer) =
        call(&s, "POST", "/trigger-subscriptions", Some("carl"), Some(json!({ "type": MESSAGES })))
            .await;
    refused(status, &answer, "Integration not enabled for user.");
    // Another user's account cannot be chosen.
    let response = client()
        .post(format!("{}/projects/{PROJECT}/trigger-subscriptions", s.base))
        .bearer_auth(token("ann"))
        .header("x-paragon-credential", bobs)
        .json(&json!({ "type": MESSAGES }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    refused(status, &response.json().await.unwrap(), "X-Paragon-Credential");
    let (status, answer) =
        call(&s, "PATCH", &one, Some("ann"), Some(json!({ "parameters": { "nope": 1 } }))).await;
    refused(status, &answer, "`parameters.nope`");
    let (status, answer) =
        call(&s, "GET", "/trigger-subscriptions?status=BROKEN", Some("ann"), None).await;
    refused(status, &answer, "`status`");

    // An oversized body is refused before it is read whole.
    let big = json!({ "type": MESSAGES, "parameters": { "channel": "x".repeat(100 * 1024) } });
    let (status, answer) = create(big).await;
    assert_eq!(status, 413, "{answer}");

    // Deleting it: gone for Ann too.
    let (status, deleted) = call(&s, "DELETE", &one, Some("ann"), None).await;
    assert_eq!((status, deleted), (200, json!({ "success": true })));
    assert_eq!(call(&s, "GET", &one, Some("ann"), None).await.0, 404);
    assert_eq!(call(&s, "DELETE", &one, Some("ann"), None).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_subscription_is_polled_with_its_own_state_and_delivers_each_new_item() {
    // Asana's `TASK_CREATED` polls GET /tasks?project={project}… for `data[].gid`.
    let tasks = Arc::new(Mutex::new(vec![json!({ "gid": "1", "name": "old" })]));
    let polls = Arc::new(Mutex::new(Vec::<String>::new()));
    let (t, p) = (tasks.clone(), polls.clone());
    let app =
        axum::Router::new().fallback(axum::routing::any(move |request: axum::extract::Request| {
            let (t, p) = (t.clone(), p.clone());
            async move {
                let target = request.uri().to_string();
                if target.starts_with("/asana/tasks") {
                    p.lock().unwrap().push(target);
                    let data = t.lock().unwrap().clone();
                    return axum::Json(json!({ "data": data }));
                }
                axum::Json(json!({ "data": { "gid": "me" } }))
            }
        }));
    let api = common::serve(app).await;
    let (company_url, company) = start_company(200).await;
    let asana = json!({
        "key": "asana", "kind": "catalog", "name": "Asana", "source": "src/integrations/asana",
        "config": { "description": null, "overview": null, "showWatermark": true,
                    "active": true, "workflowDisplayOrder": [] },
        "inputs": [], "workflows": {}, "customTriggers": {}
    });
    let app = OAuthClient {
        client_id: "id".into(),
        client_secret: "secret".into(),
        api_base_url: Some(format!("{api}/asana")),
        ..OAuthClient::default()
    };
    let engine = para_server::engine::EngineConfig {
        poll_ms: 50,
        trigger_poll_ms: Some(150),
        ..Default::default()
    };
    let s = TestServer::builder(common::build(PROJECT, json!({ "asana": asana })))
        .oauth_client("asana", app)
        .engine(engine)
        .triggers_api(TriggersApiConfig {
            webhook_url: Some(format!("{company_url}/events")),
            signing_secret: Some(SIGNING_SECRET.into()),
            retry_delays_ms: vec![20],
            timeout_ms: 2_000,
        })
        .start()
        .await;
    s.state.store.touch_user(PROJECT, "ann", None).await.unwrap();
    let connector = s.state.connector("asana").unwrap();
    let token: serde_json::Map<String, Value> =
        json!({ "access_token": "tok-ann", "token_type": "bearer" }).as_object().unwrap().clone();
    let material = para_server::connector::Material::default();
    para_server::connect::store_connection(&s.state, "ann", &connector, material, token)
        .await
        .unwrap();

    // The examples are what the API answers now.
    let body = json!({ "integration": "asana", "type": "TASK_CREATED", "parameters": { "project": "p 1" } });
    let (status, examples) =
        call(&s, "POST", "/triggers/examples", Some("ann"), Some(body.clone())).await;
    assert_eq!((status, examples), (200, json!([{ "gid": "1", "name": "old" }])));
    let (status, sub) = call(&s, "POST", "/trigger-subscriptions", Some("ann"), Some(body)).await;
    assert_eq!(status, 200, "{sub}");

    // The first poll records what is there; a new task is delivered once.
    for _ in 0..100 {
        if polls.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(polls.lock().unwrap().len() >= 2, "polled: {:?}", polls.lock().unwrap());
    assert!(
        polls
            .lock()
            .unwrap()
            .iter()
            .all(|p| p == "/asana/tasks?project=p%201&opt_fields=name,created_at"),
        "{:?}",
        polls.lock().unwrap()
    );
    assert!(company.at("/events").is_empty(), "what was there before is not new");
    tasks.lock().unwrap().push(json!({ "gid": "2", "name": "fresh" }));
    let got = wait_for(&company, "/events", 1).await;
    let payload: Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(payload["payload"], json!({ "gid": "2", "name": "fresh" }));
    assert_eq!(payload["triggerType"], "TASK_CREATED");
    assert_eq!(
        got[0].0.get("x-paragon-signature").unwrap().to_str().unwrap(),
        expected_signature(&got[0].1)
    );
    let polled = polls.lock().unwrap().len();
    for _ in 0..100 {
        if polls.lock().unwrap().len() >= polled + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(company.at("/events").len(), 1, "later polls see nothing new");
}
