//! Providers' webhooks end to end on a served build: requests signed in the test from each
//! provider's documented algorithm (Slack, HubSpot v3, Zoom, GitHub, Stripe, Shopify) are
//! sent to `/webhooks/…`; bad signatures, old timestamps and tampered bodies are refused and
//! counted, redeliveries start nothing, and runs start for the users the event belongs to
//! only, in the workflows whose trigger and parameters match.

use std::path::Path;
use std::time::Duration;

use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::any;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use para_server::OAuthClient;
use para_server::connector::Material;
use para_store::CredentialStatus;
use para_store::runs::Run;
use serde_json::{Map, Value, json};

use crate::common::{self, TestServer};

const PROJECT: &str = "p-webhooks";
const SLACK_SECRET: &str = "slack-signing-secret";
const HUBSPOT_CLIENT_SECRET: &str = "hubspot-client-secret";
const ZOOM_SECRET: &str = "zoom-secret-token";
const SHOPIFY_CLIENT_SECRET: &str = "shopify-client-secret";

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `examples/taskflow` compiled, with one workflow per `(integration, id, trigger, parameters)`
/// built from its Salesforce workflow: the catalog trigger, then a function returning the
/// trigger's output.
fn build(workflows: &[(&str, &str, &str, Value)]) -> para_build::Build {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/taskflow");
    let (root, marker) = para_project::find_root(&dir).unwrap();
    let project = para_project::load(&root, marker).unwrap();
    let out = para_compiler::compile(&project, &para_compiler::Options::default());
    let mut build = out.build.expect("taskflow builds");
    build.project.project_id = Some(PROJECT.into());
    let template = build.integrations["salesforce"].clone();
    let model = template.workflows.values().next().unwrap().clone();
    for (key, id, trigger, parameters) in workflows {
        let integration = build.integrations.entry(key.to_string()).or_insert_with(|| {
            let mut i = template.clone();
            i.key = key.to_string();
            i.name = key.to_string();
            i.inputs.clear();
            i.workflows.clear();
            i
        });
        let mut w = model.clone();
        w.id = id.to_string();
        w.name = id.to_string();
        w.permissions = None;
        w.inputs.clear();
        w.default_enabled = true;
        let trigger_id = w.trigger.clone().unwrap();
        let mut first = w.steps.iter().find(|s| s.id == trigger_id).unwrap().clone();
        let mut done = w.steps.iter().find(|s| s.id != trigger_id).unwrap().clone();
        first.kind = serde_json::from_value(json!({
            "type": "TRIGGER/ACTION",
            "parameters": { "trigger": trigger, "intent": null, "parameters": parameters },
        }))
        .unwrap();
        first.next = Some(done.id.clone());
        done.next = None;
        done.kind = serde_json::from_value(json!({
            "type": "ACTION/FUNCTION",
            "parameters": { "code": "function f(p) { return p.event; }", "parameters": [
                { "key": "event", "source": { "type": "VARIABLE", "stepId": trigger_id, "path": ["event"] } } ] },
        }))
        .unwrap();
        w.steps = vec![first, done];
        integration.workflows.insert(id.to_string(), w);
    }
    build
}

/// A literal trigger parameter.
fn param(key: &str, value: &str) -> Value {
    json!({ "key": key, "source": { "type": "VALUE", "value": value } })
}

/// A loopback API whose account lookups answer with the account of the bearer token
/// (`tok-<user>-<account>` → `<account>`), as Slack's auth.test, HubSpot's account details
/// and Zoom's users/me do.
async fn provider_api() -> String {
    let app = axum::Router::new().fallback(any(|request: Request| async move {
        let auth = request.headers().get("authorization").and_then(|v| v.to_str().ok());
        let account = auth.and_then(|a| a.rsplit('-').next()).unwrap_or("").to_string();
        let path = request.uri().path().to_string();
        let answer = if path.ends_with("/auth.test") {
            json!({ "ok": true, "team_id": account })
        } else if path.ends_with("/account-info/v3/details") {
            json!({ "portalId": account.parse::<i64>().unwrap_or(0) })
        } else if path.ends_with("/users/me") {
            json!({ "id": "me", "account_id": account })
        } else {
            json!({ "ok": true })
        };
        axum::Json(answer).into_response()
    }));
    common::serve(app).await
}

async fn server(build: para_build::Build, dir: &Path) -> TestServer {
    let api = provider_api().await;
    let app = |base: &str, secret: Option<&str>| OAuthClient {
        client_id: "id".into(),
        client_secret: "client".into(),
        api_base_url: Some(base.to_string()),
        webhook_secret: secret.map(str::to_string),
        ..OAuthClient::default()
    };
    let mut hubspot = app(&api, None);
    hubspot.client_secret = HUBSPOT_CLIENT_SECRET.into();
    let mut shopify = app(&api, None);
    shopify.client_secret = SHOPIFY_CLIENT_SECRET.into();
    let engine = para_server::engine::EngineConfig { poll_ms: 50, ..Default::default() };
    let db = format!("sqlite://{}", dir.join("para.db").display());
    TestServer::builder(build)
        .database(&db)
        .oauth_client("slack", app(&api, Some(SLACK_SECRET)))
        .oauth_client("hubspot", hubspot)
        .oauth_client("zoom", app(&api, Some(ZOOM_SECRET)))
        .oauth_client("shopify", shopify)
        .oauth_client("github", app(&api, None))
        .oauth_client("stripe", app(&api, None))
        .engine(engine)
        .start()
        .await
}

/// Connects `user`'s account `account` of `integration` (its access token names the account
/// the loopback API answers with); the credential id.
async fn connect(s: &TestServer, user: &str, integration: &str, account: &str) -> String {
    let connector = s.state.connector(integration).unwrap();
    s.state.store.touch_user(PROJECT, user, None).await.unwrap();
    let token: Map<String, Value> =
        json!({ "access_token": format!("tok-{user}-{account}"), "token_type": "bearer" })
            .as_object()
            .unwrap()
            .clone();
    // Stripe is connected with a key (a setup value), the others with OAuth.
    let mut material = Material::default();
    material.values.insert("secretKey".into(), json!(format!("sk-{user}")));
    let c = para_server::connect::store_connection(&s.state, user, &connector, material, token)
        .await
        .unwrap();
    assert_eq!(c.status, CredentialStatus::Valid, "{:?}", c.status_reason);
    c.id
}

/// A per-account URL of `user`'s credential for `workflow`, signed with `secret`; its id.
async fn hook(
    s: &TestServer,
    user: &str,
    credential: &str,
    integration: &str,
    secret: &str,
) -> String {
    let id = format!("h-{}", uuid::Uuid::new_v4().simple());
    let now = para_store::now_ms();
    s.state
        .store
        .insert_hook(&para_store::webhooks::Hook {
            id: id.clone(),
            project_id: PROJECT.into(),
            user_id: user.into(),
            integration: integration.into(),
            credential_id: credential.into(),
            workflow_id: String::new(),
            configuration_id: String::new(),
            secret: Some(para_connect::webhooks::seal_hook_secret(
                &s.state.connect,
                &id,
                secret.as_bytes(),
            )),
            remote_id: None,
            status: "active".into(),
            error: None,
            expires_at: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    id
}

/// POSTs `body` with `headers` to `path`; the status and the answer's text.
async fn post(
    s: &TestServer,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let mut r = common::client().post(format!("{}{path}", s.base)).body(body.to_vec());
    for (n, v) in headers {
        r = r.header(*n, v);
    }
    let response = r.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The runs of the project, once every recorded event is routed and `n` runs exist (or after
/// 5 s).
async fn runs_when(s: &TestServer, n: usize) -> Vec<Run> {
    let mut runs = Vec::new();
    for _ in 0..100 {
        let pending = s.state.store.webhook_events(PROJECT, 1000).await.unwrap();
        let page = s.state.store.list_runs(PROJECT, &Default::default(), 1000, None).await.unwrap();
        runs = page.runs.into_iter().map(|l| l.run).collect::<Vec<_>>();
        if runs.len() >= n && pending.iter().all(|e| e.status == "routed") {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    runs
}

/// `(user, workflow)` of each run, sorted.
fn who(runs: &[Run]) -> Vec<(String, String)> {
    let mut out: Vec<_> = runs.iter().map(|r| (r.user_id.clone(), r.workflow_id.clone())).collect();
    out.sort();
    out
}

fn slack_headers(body: &[u8], timestamp: i64, secret: &str) -> Vec<(&'static str, String)> {
    let ts = timestamp.to_string();
    let sig = hmac256(secret.as_bytes(), &[b"v0:", ts.as_bytes(), b":", body]);
    vec![
        ("x-slack-request-timestamp", ts),
        ("x-slack-signature", format!("v0={}", hex(&sig))),
        ("content-type", "application/json".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_events_are_verified_recorded_once_and_reach_only_their_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(
        build(&[
            ("slack", "on-message", "channelMessagePosted", json!([param("channel", "C1")])),
            ("slack", "on-dm", "directMessageCreated", json!([])),
        ]),
        dir.path(),
    )
    .await;
    connect(&s, "ann", "slack", "TANN").await;
    connect(&s, "bob", "slack", "TBOB").await;
    let url = format!("/webhooks/{PROJECT}/slack");

    // The URL check is signed too, and answered with the challenge.
    let check = br#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let (status, text) = post(&s, &url, &slack_headers(check, now(), SLACK_SECRET), check).await;
    assert_eq!(
        (status, text.as_str()),
        (200, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    );
    let (status, _) = post(&s, &url, &slack_headers(check, now(), "wrong"), check).await;
    assert_eq!(status, 401, "an unsigned URL check is not answered");

    let event = |id: &str, team: &str, channel: &str, kind: &str| {
        json!({ "type": "event_callback", "event_id": id, "team_id": team,
                "event": { "type": "message", "channel": channel, "channel_type": kind, "text": "hi" } })
        .to_string()
        .into_bytes()
    };
    let ann_c1 = event("Ev1", "TANN", "C1", "channel");
    let (status, text) =
        post(&s, &url, &slack_headers(&ann_c1, now(), SLACK_SECRET), &ann_c1).await;
    assert_eq!((status, text.as_str()), (200, r#"{"accepted":1,"duplicates":0}"#));
    // Slack retries: the same event id starts nothing more.
    let (status, text) =
        post(&s, &url, &slack_headers(&ann_c1, now(), SLACK_SECRET), &ann_c1).await;
    assert_eq!((status, text.as_str()), (200, r#"{"accepted":0,"duplicates":1}"#));
    // Another channel (the workflow's parameter says C1), a direct message, Bob's workspace,
    // and a workspace nobody connected.
    for (id, team, channel, kind) in [
        ("Ev2", "TANN", "C2", "channel"),
        ("Ev3", "TANN", "D1", "im"),
        ("Ev4", "TBOB", "C1", "channel"),
        ("Ev5", "TNOBODY", "C1", "channel"),
    ] {
        let body = event(id, team, channel, kind);
        let (status, _) = post(&s, &url, &slack_headers(&body, now(), SLACK_SECRET), &body).await;
        assert_eq!(status, 200);
    }
    let runs = runs_when(&s, 3).await;
    assert_eq!(
        who(&runs),
        [
            ("ann".into(), "on-dm".into()),
            ("ann".into(), "on-message".into()),
            ("bob".into(), "on-message".into())
        ]
    );
    let run = runs.iter().find(|r| r.user_id == "ann" && r.workflow_id == "on-message").unwrap();
    assert_eq!(run.trigger_kind, "webhook");
    assert_eq!(run.trigger_input["result"]["event"]["channel"], "C1");
    let events = s.state.store.webhook_events(PROJECT, 100).await.unwrap();
    let nobody = events.iter().find(|e| e.dedupe_key == "id:Ev5").unwrap();
    assert_eq!(nobody.runs, 0);
    assert!(nobody.note.as_deref().unwrap().contains("TNOBODY"), "{:?}", nobody.note);
    assert_eq!(events.iter().find(|e| e.dedupe_key == "id:Ev2").unwrap().runs, 0);

    // Refused and counted, never recorded: a bad signature, an old timestamp (a replay), a
    // tampered body, no signature at all.
    let fresh = event("Ev9", "TANN", "C1", "channel");
    let (status, text) =
        post(&s, &url, &slack_headers(&fresh, now(), "not-the-secret"), &fresh).await;
    assert_eq!(status, 401, "{text}");
    let (status, text) =
        post(&s, &url, &slack_headers(&fresh, now() - 600, SLACK_SECRET), &fresh).await;
    assert_eq!(status, 401);
    assert!(text.contains("at most 300 s"), "{text}");
    let tampered = event("Ev9", "TANN", "C1", "im");
    let (status, _) = post(&s, &url, &slack_headers(&fresh, now(), SLACK_SECRET), &tampered).await;
    assert_eq!(status, 401);
    let (status, text) = post(&s, &url, &[], &fresh).await;
    assert_eq!(status, 401);
    assert!(text.contains("not signed"), "{text}");
    let counts = s.state.webhook_refusals();
    assert_eq!(counts.get(&("slack".to_string(), "bad_signature")), Some(&3), "{counts:?}");
    assert_eq!(counts.get(&("slack".to_string(), "stale")), Some(&1));
    assert_eq!(counts.get(&("slack".to_string(), "unsigned")), Some(&1));
    let events = s.state.store.webhook_events(PROJECT, 100).await.unwrap();
    assert!(events.iter().all(|e| e.dedupe_key != "id:Ev9"), "a refused event was recorded");
    assert_eq!(runs_when(&s, 3).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_batches_reach_each_portal_and_zoom_checks_its_url() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(
        build(&[
            ("hubspot", "on-created", "recordCreated", json!([])),
            ("zoom", "on-ended", "meetingEnded", json!([])),
        ]),
        dir.path(),
    )
    .await;
    connect(&s, "ann", "hubspot", "101").await;
    connect(&s, "bob", "hubspot", "202").await;
    connect(&s, "bob", "zoom", "ZB").await;

    // HubSpot v3: base64 HMAC-SHA256 of method, the URL it called, the body and the
    // millisecond timestamp, under the app's client secret.
    let path = format!("/webhooks/{PROJECT}/hubspot");
    let body = json!([
        { "eventId": 11, "portalId": 101, "subscriptionType": "object.creation", "objectId": 1 },
        { "eventId": 12, "portalId": 202, "subscriptionType": "object.creation", "objectId": 2 },
        { "eventId": 13, "portalId": 101, "subscriptionType": "object.deletion", "objectId": 3 },
    ])
    .to_string();
    let sign = |body: &str, ms: i64| {
        let url = format!("{}{path}", s.state.config.public_url.trim_end_matches('/'));
        let ms = ms.to_string();
        let sig = hmac256(
            HUBSPOT_CLIENT_SECRET.as_bytes(),
            &[b"POST", url.as_bytes(), body.as_bytes(), ms.as_bytes()],
        );
        vec![("x-hubspot-signature-v3", b64(&sig)), ("x-hubspot-request-timestamp", ms)]
    };
    let (status, text) = post(&s, &path, &sign(&body, now() * 1000), body.as_bytes()).await;
    assert_eq!((status, text.as_str()), (200, r#"{"accepted":3,"duplicates":0}"#));
    let (status, _) = post(&s, &path, &sign(&body, (now() - 301) * 1000), body.as_bytes()).await;
    assert_eq!(status, 401, "older than five minutes");

    // Zoom's URL check: the plain token and its HMAC under the secret token, hex.
    let zoom = format!("/webhooks/{PROJECT}/zoom");
    let sign_zoom = |body: &[u8]| {
        let ts = now().to_string();
        let sig = hmac256(ZOOM_SECRET.as_bytes(), &[b"v0:", ts.as_bytes(), b":", body]);
        vec![("x-zm-request-timestamp", ts), ("x-zm-signature", format!("v0={}", hex(&sig)))]
    };
    let check = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let (status, text) = post(&s, &zoom, &sign_zoom(check), check).await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(
        answer["encryptedToken"],
        hex(&hmac256(ZOOM_SECRET.as_bytes(), &[b"qgg8vlvZRS6UYooatFL8Aw"]))
    );
    let ended = br#"{"event":"meeting.ended","event_ts":1,"payload":{"account_id":"ZB","object":{"id":"m1"}}}"#;
    let (status, _) = post(&s, &zoom, &sign_zoom(ended), ended).await;
    assert_eq!(status, 200);

    let runs = runs_when(&s, 3).await;
    assert_eq!(
        who(&runs),
        [
            ("ann".into(), "on-created".into()),
            ("bob".into(), "on-created".into()),
            ("bob".into(), "on-ended".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_account_urls_check_their_own_secret_and_their_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(
        build(&[
            ("github", "on-push", "push", json!([param("owner", "acme"), param("repo", "app")])),
            ("stripe", "on-customer", "customerCreated", json!([])),
            ("shopify", "on-order", "orderCreated", json!([])),
        ]),
        dir.path(),
    )
    .await;
    let ann_github = connect(&s, "ann", "github", "gh").await;
    let bob_github = connect(&s, "bob", "github", "gh").await;
    let ann_hook = hook(&s, "ann", &ann_github, "github", "ann-secret").await;
    let bob_hook = hook(&s, "bob", &bob_github, "github", "bob-secret").await;

    // GitHub: X-Hub-Signature-256 = sha256=<hex HMAC-SHA256 of the body>.
    let push = |repo: &str| {
        json!({ "ref": "refs/heads/main", "repository": { "name": repo, "owner": { "login": "acme" } } }).to_string()
    };
    let github = |delivery: &str, secret: &str, body: &str| {
        vec![
            ("x-github-event", "push".to_string()),
            ("x-github-delivery", delivery.to_string()),
            (
                "x-hub-signature-256",
                format!("sha256={}", hex(&hmac256(secret.as_bytes(), &[body.as_bytes()]))),
            ),
        ]
    };
    let at = |hook: &str| format!("/webhooks/{PROJECT}/github/{hook}");
    let body = push("app");
    let (status, _) =
        post(&s, &at(&ann_hook), &github("d-1", "ann-secret", &body), body.as_bytes()).await;
    assert_eq!(status, 200);
    // Bob's secret does not open Ann's URL; Ann's event is not Bob's.
    let (status, _) =
        post(&s, &at(&ann_hook), &github("d-2", "bob-secret", &body), body.as_bytes()).await;
    assert_eq!(status, 401);
    // Another repository than the workflow's parameters: recorded, starts nothing.
    let other = push("other");
    let (status, _) =
        post(&s, &at(&bob_hook), &github("d-3", "bob-secret", &other), other.as_bytes()).await;
    assert_eq!(status, 200);
    // The app-level URL is not accepted for per-account webhooks; an unknown URL is 404.
    let (status, text) = post(
        &s,
        &format!("/webhooks/{PROJECT}/github"),
        &github("d-4", "ann-secret", &body),
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 401);
    assert!(text.contains("per-account URL"), "{text}");
    let (status, _) =
        post(&s, &at("h-nope"), &github("d-5", "ann-secret", &body), body.as_bytes()).await;
    assert_eq!(status, 404);
    // Another project's path is 404 too.
    let (status, _) = post(
        &s,
        &format!("/webhooks/other/github/{ann_hook}"),
        &github("d-6", "ann-secret", &body),
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 404);

    // Stripe: t=<seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">; a replay outside five minutes
    // is refused, a redelivery of the event id starts nothing.
    let stripe_credential = connect(&s, "ann", "stripe", "acct").await;
    let stripe_hook = hook(&s, "ann", &stripe_credential, "stripe", "whsec_test").await;
    let stripe = |body: &str, t: i64| {
        let sig = hmac256(b"whsec_test", &[t.to_string().as_bytes(), b".", body.as_bytes()]);
        vec![("stripe-signature", format!("t={t},v1={}", hex(&sig)))]
    };
    let customer = r#"{"id":"evt_1","type":"customer.created","data":{"object":{"id":"cus_1"}}}"#;
    let path = format!("/webhooks/{PROJECT}/stripe/{stripe_hook}");
    assert_eq!(post(&s, &path, &stripe(customer, now()), customer.as_bytes()).await.0, 200);
    assert_eq!(
        post(&s, &path, &stripe(customer, now()), customer.as_bytes()).await.1,
        r#"{"accepted":0,"duplicates":1}"#
    );
    assert_eq!(post(&s, &path, &stripe(customer, now() - 400), customer.as_bytes()).await.0, 401);

    // Shopify: base64 HMAC-SHA256 of the body under the app's client secret.
    let shop_credential = connect(&s, "bob", "shopify", "shop").await;
    let shop_hook = hook(&s, "bob", &shop_credential, "shopify", "unused").await;
    let order = r#"{"id":820982911946154508,"email":"jon@example.com"}"#;
    let shopify = |secret: &str| {
        vec![
            ("x-shopify-topic", "orders/create".to_string()),
            ("x-shopify-event-id", "e-1".to_string()),
            ("x-shopify-hmac-sha256", b64(&hmac256(secret.as_bytes(), &[order.as_bytes()]))),
        ]
    };
    let path = format!("/webhooks/{PROJECT}/shopify/{shop_hook}");
    assert_eq!(post(&s, &path, &shopify("wrong"), order.as_bytes()).await.0, 401);
    assert_eq!(post(&s, &path, &shopify(SHOPIFY_CLIENT_SECRET), order.as_bytes()).await.0, 200);

    let runs = runs_when(&s, 3).await;
    assert_eq!(
        who(&runs),
        [
            ("ann".into(), "on-customer".into()),
            ("ann".into(), "on-push".into()),
            ("bob".into(), "on-order".into())
        ]
    );
    let push_run = runs.iter().find(|r| r.workflow_id == "on-push").unwrap();
    assert_eq!(push_run.credential_id.as_deref(), Some(ann_github.as_str()));
}

/// The compiler's custom-trigger fixture (HubSpot: a user-level trigger with filters, an
/// app-level one matched by portal id) with its workflow on by default, plus a workflow on the
/// app-level trigger.
fn custom_trigger_build() -> para_build::Build {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../para-compiler/tests/fixtures/ok/custom-triggers");
    let (root, marker) = para_project::find_root(&dir).unwrap();
    let project = para_project::load(&root, marker).unwrap();
    let out = para_compiler::compile(&project, &para_compiler::Options::default());
    let mut build = out.build.expect("the fixture builds");
    build.project.project_id = Some(PROJECT.into());
    let hubspot = build.integrations.get_mut("hubspot").unwrap();
    let mut won = hubspot.workflows.values().next().unwrap().clone();
    won.default_enabled = true;
    let mut contact = won.clone();
    contact.id = "contact-created".into();
    let trigger = contact.trigger.clone().unwrap();
    for step in &mut contact.steps {
        if step.id == trigger {
            step.kind = para_build::StepKind::CustomTrigger { trigger_id: CONTACT_CREATED.into() };
        }
    }
    hubspot.workflows =
        [(won.id.clone(), won), (contact.id.clone(), contact)].into_iter().collect();
    build
}

const DEAL_STAGE_CHANGED: &str = "6f1c9a52-3d8e-4b7a-9c21-5e0f4d3b2a10";
const CONTACT_CREATED: &str = "0b7e2d4c-8a15-4f63-b9d0-2c6a1e5f7d38";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_webhook_triggers_start_runs_for_the_url_s_account_when_their_filters_pass() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(custom_trigger_build(), dir.path()).await;
    let ann = connect(&s, "ann", "hubspot", "101").await;
    let bob = connect(&s, "bob", "hubspot", "202").await;
    let url = |trigger: &str, id: &str| {
        format!("/triggers/connect/{PROJECT}/hubspot/custom-triggers/{trigger}?id={id}")
    };
    let event = [
        ("x-hubspot-event", "deal.propertyChange".to_string()),
        ("content-type", "application/json".into()),
    ];
    let closed = br#"{"objectId":7,"propertyValue":"closedwon"}"#;
    let (status, text) = post(&s, &url(DEAL_STAGE_CHANGED, &ann), &event, closed).await;
    assert_eq!((status, text.as_str()), (200, r#"{"accepted":1,"duplicates":0}"#));
    // The same request again (a retry): nothing more.
    let (_, text) = post(&s, &url(DEAL_STAGE_CHANGED, &ann), &event, closed).await;
    assert_eq!(text, r#"{"accepted":0,"duplicates":1}"#);
    // Filtered out: another stage, or another event header.
    let open = br#"{"objectId":8,"propertyValue":"appointmentscheduled"}"#;
    assert_eq!(
        post(&s, &url(DEAL_STAGE_CHANGED, &ann), &event, open).await.1,
        r#"{"accepted":0,"duplicates":0}"#
    );
    let other = [("x-hubspot-event", "deal.creation".to_string())];
    assert_eq!(
        post(&s, &url(DEAL_STAGE_CHANGED, &bob), &other, closed).await.1,
        r#"{"accepted":0,"duplicates":0}"#
    );
    // A credential that is not of this project's HubSpot, or no trigger: 404.
    assert_eq!(post(&s, &url(DEAL_STAGE_CHANGED, "nope"), &event, closed).await.0, 404);
    assert_eq!(post(&s, &url("nope", &ann), &event, closed).await.0, 404);
    assert_eq!(
        post(
            &s,
            &format!("/triggers/connect/{PROJECT}/hubspot/custom-triggers/{DEAL_STAGE_CHANGED}"),
            &event,
            closed
        )
        .await
        .0,
        404
    );
    // The app-level trigger: the request's portal id names the account.
    let app = format!("/triggers/connect/{PROJECT}/hubspot/custom-triggers/{CONTACT_CREATED}");
    assert_eq!(post(&s, &app, &[], br#"{"portalId":202,"email":"x@y.z"}"#).await.0, 200);
    assert_eq!(post(&s, &app, &[], br#"{"email":"no-portal@y.z"}"#).await.0, 400);

    let runs = runs_when(&s, 2).await;
    let mut got = who(&runs);
    got.sort();
    assert_eq!(
        got,
        [
            ("ann".into(), "3e1d2c4b-0001-4000-8000-0000000000c1".into()),
            ("bob".into(), "contact-created".into())
        ]
    );
    let won = runs.iter().find(|r| r.user_id == "ann").unwrap();
    assert_eq!(won.trigger_input["request"]["body"]["objectId"], 7);
    assert_eq!(won.trigger_input["request"]["headers"]["x-hubspot-event"], "deal.propertyChange");
    // The run read `trigger.output.request.body.objectId`.
    for _ in 0..100 {
        let run = s.state.store.run(PROJECT, &won.id).await.unwrap().unwrap();
        if run.status == para_store::RunStatus::Succeeded {
            let journal = s.state.store.run_steps(&won.id).await.unwrap();
            assert_eq!(journal.last().unwrap().output, Some(json!({ "result": { "won": 7 } })));
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the custom trigger's run did not succeed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notions_verification_token_is_answered_and_kept_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(build(&[("notion", "on-page", "pageCreated", json!([]))]), dir.path()).await;
    let body = br#"{"verification_token":"secret_tok_123"}"#;
    let (status, _) = post(&s, &format!("/webhooks/{PROJECT}/notion"), &[], body).await;
    assert_eq!(status, 200);
    let events = s.state.store.webhook_events(PROJECT, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "verification");
    let stored = events[0].body.to_string();
    assert!(!stored.contains("secret_tok_123"), "the token is stored in the clear: {stored}");
    let sealed = events[0].body["verification_token_sealed"].as_str().unwrap();
    let aad = format!("webhook-verification\u{0}{PROJECT}");
    let opened = s.state.secrets.open(sealed, aad.as_bytes()).unwrap();
    assert_eq!(opened, b"secret_tok_123");
}
