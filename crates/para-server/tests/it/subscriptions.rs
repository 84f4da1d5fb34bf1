//! Webhook registrations made through a provider's API (the catalog's `[subscription]`): a
//! loopback "provider" with GitHub's and Jira's subscription APIs receives the registration
//! when a user turns a workflow on, the removal when it is turned off or the account is
//! disconnected, and a renewal before an expiring registration expires. A provider that fails
//! the registration leaves it `failed` with its answer on the dashboard until a retry succeeds.
//! Events signed with the secret para registered start runs for that user only.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::any;
use hmac::{KeyInit, Mac};
use para_server::OAuthClient;
use para_server::connector::Material;
use para_store::CredentialStatus;
use para_store::runs::RunStatus;
use para_store::webhooks::Subscription;
use serde_json::{Map, Value, json};

use crate::common::{self, TestServer, client, token};

const PROJECT: &str = "p-subscriptions";
const ADMIN: &str = "admin-key-for-subscriptions";
const PUSHES: &str = "github-pushes";
const ISSUES: &str = "jira-issues";

/// One call the provider received: method, path, authorization, body (JSON or text), and when.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    auth: String,
    body: Value,
    at: i64,
}

#[derive(Default)]
struct Provider {
    calls: Mutex<Vec<Call>>,
    /// Answer 500 to this many registrations first.
    fail_registrations: Mutex<u32>,
    /// Jira: how long a registration or refresh lasts, in ms.
    jira_lifetime_ms: Mutex<i64>,
    next_id: Mutex<i64>,
}

impl Provider {
    fn calls(&self, method: &str, path_start: &str) -> Vec<Call> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.method == method && c.path.starts_with(path_start))
            .cloned()
            .collect()
    }
}

async fn provider(State(p): State<Arc<Provider>>, request: Request) -> axum::response::Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let auth = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    let at = para_store::now_ms();
    p.calls.lock().unwrap().push(Call {
        method: method.clone(),
        path: path.clone(),
        auth,
        body,
        at,
    });
    let registering = method == "POST" && (path.ends_with("/hooks") || path == "/jira/webhook");
    if registering {
        let mut fail = p.fail_registrations.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return (StatusCode::INTERNAL_SERVER_ERROR, "provider down <b>today</b>")
                .into_response();
        }
    }
    // Registrations are numbered 1, 2, … (failed ones get no number).
    let id = if registering {
        let mut next = p.next_id.lock().unwrap();
        *next += 1;
        *next
    } else {
        0
    };
    let expires = at + *p.jira_lifetime_ms.lock().unwrap();
    match (method.as_str(), path.as_str()) {
        ("GET", "/gh/user") => axum::Json(json!({ "login": "someone" })).into_response(),
        ("POST", p) if p.starts_with("/gh/repos/") && p.ends_with("/hooks") => {
            (StatusCode::CREATED, axum::Json(json!({ "id": id, "active": true }))).into_response()
        }
        ("DELETE", p) if p.starts_with("/gh/repos/") => StatusCode::NO_CONTENT.into_response(),
        ("POST", "/jira/webhook") => axum::Json(json!({
            "webhookRegistrationResult": [{ "createdWebhookId": 1000 + id }],
            "expirationDate": expires,
        }))
        .into_response(),
        ("PUT", "/jira/webhook/refresh") => {
            axum::Json(json!({ "expirationDate": expires })).into_response()
        }
        ("DELETE", "/jira/webhook") => StatusCode::ACCEPTED.into_response(),
        _ => (StatusCode::NOT_FOUND, "no such route").into_response(),
    }
}

/// The project in `examples/taskflow`, compiled, with two catalog webhook workflows, both off
/// by default: GitHub pushes to acme/site, and Jira issues created in project P.
fn build() -> para_build::Build {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/taskflow");
    let (root, marker) = para_project::find_root(&dir).unwrap();
    let project = para_project::load(&root, marker).unwrap();
    let out = para_compiler::compile(&project, &para_compiler::Options::default());
    let mut build = out.build.expect("the project builds");
    build.project.project_id = Some(PROJECT.into());
    let template = build.integrations["salesforce"].clone();
    let push_workflow = template.workflows.values().next().unwrap().clone();
    let made = |key: &str, name: &str, id: &str, trigger: &str, parameters: Value| {
        let mut integration = template.clone();
        integration.key = key.into();
        integration.name = name.into();
        integration.inputs.clear();
        let mut w = push_workflow.clone();
        w.id = id.into();
        w.name = format!("{name} workflow");
        w.permissions = None;
        w.inputs.clear();
        w.default_enabled = false;
        let trigger_id = w.trigger.clone().unwrap();
        let mut trigger_step = w.steps.iter().find(|s| s.id == trigger_id).unwrap().clone();
        trigger_step.kind = serde_json::from_value(json!({
            "type": "TRIGGER/ACTION",
            "parameters": { "trigger": trigger, "intent": "X", "parameters": parameters },
        }))
        .unwrap();
        let mut step = trigger_step.clone();
        step.id = format!("{id}-summary");
        step.key = "summary".into();
        step.next = None;
        step.kind = serde_json::from_value(json!({
            "type": "ACTION/FUNCTION",
            "parameters": { "code": "function f(p) { return 'pushed ' + p.ref; }", "parameters": [
                { "key": "ref", "source": { "type": "VARIABLE", "stepId": trigger_id, "path": ["result", "ref"] } } ] },
        }))
        .unwrap();
        trigger_step.next = Some(step.id.clone());
        w.steps = vec![trigger_step, step];
        integration.workflows = [(id.to_string(), w)].into_iter().collect();
        integration
    };
    let value = |v: &str| json!({ "type": "VALUE", "value": v });
    let github = made(
        "github",
        "GitHub",
        PUSHES,
        "push",
        json!([{ "key": "owner", "source": value("acme") }, { "key": "repo", "source": value("site") }]),
    );
    let jira = made(
        "jira",
        "Jira",
        ISSUES,
        "issueCreated",
        json!([{ "key": "jqlFilter", "source": value("project = P") }]),
    );
    build.integrations.insert("github".into(), github);
    build.integrations.insert("jira".into(), jira);
    build
}

fn oauth_app(base: String) -> OAuthClient {
    OAuthClient {
        client_id: "id".into(),
        client_secret: "secret".into(),
        api_base_url: Some(base),
        ..OAuthClient::default()
    }
}

async fn start(dir: &Path) -> (TestServer, Arc<Provider>) {
    let p = Arc::new(Provider { jira_lifetime_ms: Mutex::new(3_000), ..Provider::default() });
    let api =
        common::serve(axum::Router::new().fallback(any(provider)).with_state(p.clone())).await;
    let engine = para_server::engine::EngineConfig {
        poll_ms: 50,
        subscription_retry_ms: Some(1_500),
        ..Default::default()
    };
    let db = format!("sqlite://{}", dir.join("para.db").display());
    let s = TestServer::builder(build())
        .database(&db)
        .admin_key(Some(ADMIN))
        .oauth_client("github", oauth_app(format!("{api}/gh")))
        .oauth_client("jira", oauth_app(format!("{api}/jira")))
        .engine(engine)
        .start()
        .await;
    (s, p)
}

/// Connects `user` to GitHub as the OAuth callback does once it has a token.
async fn connect_github(s: &TestServer, user: &str) -> String {
    let connector = s.state.connector("github").unwrap();
    s.state.store.touch_user(PROJECT, user, None).await.unwrap();
    let token: Map<String, Value> =
        json!({ "access_token": format!("tok-{user}"), "token_type": "bearer" })
            .as_object()
            .unwrap()
            .clone();
    let c = para_server::connect::store_connection(
        &s.state,
        user,
        &connector,
        Material::default(),
        token,
    )
    .await
    .unwrap();
    assert_eq!(c.status, CredentialStatus::Valid, "{:?}", c.status_reason);
    c.id
}

/// The user's registrations of `integration` that are not removed.
async fn hooks(s: &TestServer, user: &str, integration: &str) -> Vec<Subscription> {
    s.state.store.subscriptions_of_user(PROJECT, user, integration).await.unwrap()
}

/// Waits (up to 10 s) until `check` holds for the user's registrations of the integration,
/// removed ones included; returns them.
async fn wait_hooks(
    s: &TestServer,
    user: &str,
    integration: &str,
    what: &str,
    check: impl Fn(&[Subscription]) -> bool,
) -> Vec<Subscription> {
    for _ in 0..200 {
        let all: Vec<Subscription> = s
            .state
            .store
            .subscriptions_of(PROJECT, user, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|x| x.hook.integration == integration)
            .collect();
        if check(&all) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = s.state.store.subscriptions_of(PROJECT, user, 100).await.unwrap();
    panic!("{what}: {all:#?}");
}

fn status_is(status: &'static str) -> impl Fn(&[Subscription]) -> bool {
    move |all| all.len() == 1 && all[0].hook.status == status
}

/// The dashboard's page of `user`.
async fn dashboard(s: &TestServer, user: &str) -> String {
    let page = client()
        .get(format!("{}/dashboard/user?id={user}", s.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

/// A GitHub push, signed as GitHub signs it (X-Hub-Signature-256: hex HMAC-SHA256 of the raw
/// body with the hook's secret), sent to `url`; the status.
async fn push(url: &str, secret: &str, delivery: &str) -> u16 {
    let body = json!({
        "ref": "refs/heads/main",
        "repository": { "name": "site", "owner": { "login": "acme" } },
    })
    .to_string();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature: String =
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    client()
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", format!("sha256={signature}"))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn runs_of(s: &TestServer, user: &str) -> Vec<para_store::runs::Run> {
    let filter = para_store::history::RunFilter {
        workflow_id: Some(PUSHES.into()),
        user_id: Some(user.into()),
        ..Default::default()
    };
    let page = s.state.store.list_runs(PROJECT, &filter, 50, None).await.unwrap();
    page.runs.into_iter().map(|l| l.run).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_turned_on_registers_its_webhook_and_turned_off_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (s, provider) = start(dir.path()).await;
    let (ann, bob) = (token("ann"), token("bob"));
    connect_github(&s, "ann").await;
    connect_github(&s, "bob").await;
    assert!(hooks(&s, "ann", "github").await.is_empty(), "off by default: nothing registered");

    // The provider fails the first registration: recorded with its answer, shown, retried.
    *provider.fail_registrations.lock().unwrap() = 1;
    let (status, answer) = s.call("POST", &format!("/sdk/workflows/{PUSHES}"), &ann, None).await;
    assert_eq!(status, 200, "{answer}");
    let failed =
        wait_hooks(&s, "ann", "github", "a failed registration", status_is("failed")).await;
    let error = failed[0].hook.error.clone().unwrap();
    assert!(error.contains("POST /repos/acme/site/hooks answered HTTP 500"), "{error}");
    assert!(error.contains("provider down"), "{error}");
    let page = dashboard(&s, "ann").await;
    assert!(page.contains("Webhook registrations") && page.contains("GitHub workflow"), "{page}");
    assert!(page.contains("provider down &lt;b&gt;today&lt;"), "the error, escaped: {page}");
    assert!(!page.contains("<b>today"), "escaped");
    assert!(!page.contains(&failed[0].hook.id), "the URL's secret id is not shown");

    let active = wait_hooks(&s, "ann", "github", "the retry", status_is("active")).await;
    let hook = &active[0].hook;
    assert_eq!(hook.error, None);
    let registrations = provider.calls("POST", "/gh/repos/acme/site/hooks");
    assert_eq!(registrations.len(), 2, "one failure, one retry");
    let sent = &registrations[1];
    assert_eq!(sent.auth, "Bearer tok-ann", "with the user's credential");
    let url = format!("{}/webhooks/{PROJECT}/github/{}", s.base, hook.id);
    assert_eq!(sent.body["config"]["url"], json!(url));
    assert_eq!(sent.body["config"]["content_type"], "json");
    assert_eq!(sent.body["events"], json!(["push"]));
    assert_eq!(sent.body["name"], "web");
    let ann_secret = sent.body["config"]["secret"].as_str().unwrap().to_string();
    assert!(ann_secret.len() >= 32, "a random secret: {ann_secret}");
    assert_eq!(
        registrations[0].body["config"]["secret"],
        json!(ann_secret),
        "the same URL and secret"
    );
    assert!(hook.id.len() >= 22, "≥ 128 random bits: {}", hook.id);
    assert_eq!(hook.remote_id.as_deref(), Some("1"));
    assert_ne!(hook.secret.as_deref(), Some(ann_secret.as_str()), "sealed at rest");
    let page = dashboard(&s, "ann").await;
    assert!(page.contains("active") && page.contains("<code>1</code>"), "{page}");

    // Bob's own URL and secret.
    s.call("POST", &format!("/sdk/workflows/{PUSHES}"), &bob, None).await;
    let bobs = wait_hooks(&s, "bob", "github", "bob's registration", status_is("active")).await;
    let bob_url = format!("{}/webhooks/{PROJECT}/github/{}", s.base, bobs[0].hook.id);
    assert_ne!(bob_url, url);
    let bob_call =
        provider.calls("POST", "/gh/repos/").into_iter().find(|c| c.auth == "Bearer tok-bob");
    let bob_secret = bob_call.unwrap().body["config"]["secret"].as_str().unwrap().to_string();
    assert_ne!(bob_secret, ann_secret);

    // An event signed with Ann's secret at Ann's URL runs for Ann only; her secret does not
    // open Bob's URL.
    assert_eq!(push(&url, &ann_secret, "d-1").await, 200);
    for _ in 0..200 {
        if runs_of(&s, "ann").await.iter().any(|r| r.status == RunStatus::Succeeded) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let runs = runs_of(&s, "ann").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    assert_eq!(runs[0].trigger_kind, "webhook");
    assert_eq!(push(&bob_url, &ann_secret, "d-2").await, 401, "another user's secret");
    assert_eq!(push(&url, "guessed", "d-3").await, 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(runs_of(&s, "bob").await.is_empty(), "nothing ran for Bob");
    assert_eq!(runs_of(&s, "ann").await.len(), 1);

    // Turned off: removed at the provider; the URL refuses events from now on.
    let (status, _) = s.call("DELETE", &format!("/sdk/workflows/{PUSHES}"), &ann, None).await;
    assert_eq!(status, 200);
    wait_hooks(&s, "ann", "github", "ann's removal", status_is("removed")).await;
    let removals = provider.calls("DELETE", "/gh/repos/acme/site/hooks/1");
    assert_eq!(removals.len(), 1);
    assert_eq!(removals[0].auth, "Bearer tok-ann");
    assert_eq!(push(&url, &ann_secret, "d-4").await, 404);
    assert!(hooks(&s, "ann", "github").await.is_empty());

    // Turned on again: a new URL and secret.
    s.call("POST", &format!("/sdk/workflows/{PUSHES}"), &ann, None).await;
    let again = wait_hooks(&s, "ann", "github", "registered again", |all| {
        all.iter().filter(|x| x.hook.status == "active").count() == 1
    })
    .await;
    assert!(again.iter().all(|x| x.hook.id != hook.id || x.hook.status == "removed"));

    // Bob disconnects: his registration is removed at the provider before his credential goes.
    let bob_remote = bobs[0].hook.remote_id.clone().unwrap();
    let (status, answer) = s.call("DELETE", "/sdk/integrations/github", &bob, None).await;
    assert!(status < 300, "{status} {answer}");
    let gone = provider.calls("DELETE", &format!("/gh/repos/acme/site/hooks/{bob_remote}"));
    assert_eq!(gone.len(), 1, "removed during the disconnect");
    assert_eq!(gone[0].auth, "Bearer tok-bob", "with Bob's credential, before it was deleted");
    wait_hooks(&s, "bob", "github", "bob's removal", status_is("removed")).await;
    assert_eq!(push(&bob_url, &bob_secret, "d-5").await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_registration_is_renewed_before_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (s, provider) = start(dir.path()).await;
    // Jira names its site by the cloud id the account lookup finds; stored as a connection
    // would store it (the lookup's URL is Atlassian's, not below the API base).
    let connector = s.state.connector("jira").unwrap();
    let material = Material {
        token: json!({ "access_token": "tok-jira", "token_type": "bearer" })
            .as_object()
            .unwrap()
            .clone(),
        ..Material::default()
    };
    let sealed = para_connect::refresh::seal(&s.state, "cat", &connector.key, &material);
    s.state.store.touch_user(PROJECT, "cat", None).await.unwrap();
    s.state
        .store
        .insert_credential(&para_store::NewCredential {
            provider_data: json!({ "account": { "cloudId": "cloud-1" } }),
            ..para_store::NewCredential::new(
                PROJECT,
                "cat",
                "jira",
                CredentialStatus::Valid,
                &sealed,
            )
        })
        .await
        .unwrap();

    let cat = token("cat");
    let (status, answer) = s.call("POST", &format!("/sdk/workflows/{ISSUES}"), &cat, None).await;
    assert_eq!(status, 200, "{answer}");
    let active = wait_hooks(&s, "cat", "jira", "registered", status_is("active")).await;
    let registered = provider.calls("POST", "/jira/webhook");
    assert_eq!(registered.len(), 1);
    let url = format!("{}/webhooks/{PROJECT}/jira/{}", s.base, active[0].hook.id);
    assert_eq!(
        registered[0].body,
        json!({ "url": url, "webhooks": [{ "events": ["jira:issue_created"], "jqlFilter": "project = P" }] })
    );
    assert_eq!(active[0].hook.remote_id.as_deref(), Some("1001"));
    let first_expiry = active[0].hook.expires_at.unwrap();
    assert!(first_expiry > registered[0].at, "the answer's expiry");

    // Renewed (PUT /webhook/refresh with the numeric id) before the first expiry.
    let renewed = wait_hooks(&s, "cat", "jira", "renewed", |all| {
        all.len() == 1 && all[0].hook.expires_at.is_some_and(|e| e > first_expiry)
    })
    .await;
    let refreshes = provider.calls("PUT", "/jira/webhook/refresh");
    assert!(!refreshes.is_empty());
    assert_eq!(refreshes[0].body, json!({ "webhookIds": [1001] }));
    assert!(refreshes[0].at < first_expiry, "renewed {} ms early", first_expiry - refreshes[0].at);
    assert_eq!(renewed[0].hook.status, "active");
    let page = dashboard(&s, "cat").await;
    assert!(page.contains("Jira workflow") && page.contains("1001"), "{page}");

    // Turned off: DELETE /webhook names it in the body.
    s.call("DELETE", &format!("/sdk/workflows/{ISSUES}"), &cat, None).await;
    wait_hooks(&s, "cat", "jira", "removed", status_is("removed")).await;
    let removed = provider.calls("DELETE", "/jira/webhook");
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].body, json!({ "webhookIds": [1001] }));
    // Nothing is renewed once removed.
    let count = provider.calls("PUT", "/jira/webhook/refresh").len();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(provider.calls("PUT", "/jira/webhook/refresh").len(), count);
}
