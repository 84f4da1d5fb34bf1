//! The Connect Portal and the developer dashboard, served in-process over real HTTP: token
//! hand-over and cookies, refusals, settings saved and refused with inline errors, sanitised
//! overviews, CSRF, and the dashboard's admin key.

use std::time::Duration;

use para_store::CredentialStatus;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::common::{self, TestServer, keys_root};

const PROJECT: &str = "p1";
const ACME: &str = "custom.acmecrm";
const PIPELINE: &str = "b6ca3d7f-5a14-4b2e-9f86-a4bc23de4a56";
const SYNC_LIMIT: &str = "c7db4e80-6b25-4c3f-a097-b5cd34ef5b67";
const API_SECRET: &str = "0b1c2d3e-0000-4000-8000-000000000001";
const MAPPING: &str = "c1d5e2a4-0b7f-4c9e-8a31-5f6d7e8a9b01";
const WORKFLOW: &str = "1c9e7f3d-8a52-4b06-9e1f-5d6c7b8a9f70";
const ALWAYS: &str = "e3f70a4c-2d91-4eb0-8c53-718f90ab1d23";
const SF_WORKFLOW: &str = "9a8b7c6d-0000-4000-8000-000000000002";
const SECRET_MARKER: &str = "sealed-secret-never-shown";

fn token(user: &str) -> String {
    let pem = para_auth::keys::load_private_key(keys_root()).unwrap();
    let mut claims = para_auth::Claims::new(user, Duration::from_secs(3600));
    claims.meta = Some(json!({ "Name": "Ann Example", "Email": "ann@example.com" }));
    para_auth::sign(&pem, &claims).unwrap()
}

fn input(id: &str, key: &str, title: &str, ty: &str, required: bool, extra: Value) -> Value {
    let mut v = json!({ "id": id, "key": key, "title": title, "type": ty, "required": required });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn workflow(id: &str, name: &str, inputs: Vec<Value>) -> Value {
    json!({
        "id": id, "name": name, "description": "Does a thing.", "order": 0,
        "defaultEnabled": false, "hidden": false, "inputs": inputs, "source": "w.ts",
        "trigger": null, "steps": [], "permissions": null
    })
}

/// A small build in the shape of the taskflow example, plus a password setting, an API-key
/// catalog integration, and an overview that tries to inject script.
fn build() -> para_build::Build {
    let acme = json!({
        "key": ACME, "kind": "custom", "name": "ACME CRM", "source": "src/integrations/custom.acmecrm",
        "config": {
            "description": "Sync Taskflow tasks with ACME CRM",
            "overview": "Connect **ACME CRM** to mirror tasks.\n\n<script>alert('x')</script>\n\n<img src=x onerror=\"alert(1)\">\n\n[click](javascript:alert(2)) <a href=\"javascript:alert(3)\" onclick=\"alert(4)\">link</a>",
            "showWatermark": true, "active": true, "workflowDisplayOrder": [],
            "custom": {
                "name": "ACME CRM", "slug": "acmecrm", "accentColor": "#0F62FE",
                "authenticationType": "oauth", "scopes": ["tasks.read"],
                "includeClientIdAndSecrets": false, "usePKCEInCodeExchange": true,
                "authorization": { "type": "none" },
                "configInputs": [input("a5b92c6e-4f03-4a1d-8e75-93ab12cd3f45", "region", "Your ACME region (us or eu)", "text", false, json!({ "placeholder": "us" }))]
            }
        },
        "inputs": [
            input(PIPELINE, "pipeline", "ACME pipeline", "custom_dropdown", true, json!({ "options": { "customDropdownOptions": [
                { "label": "Sales", "value": "sales" }, { "label": "Support", "value": "support" } ] } })),
            input(SYNC_LIMIT, "syncLimit", "Max tasks per sync", "number", false, json!({ "tooltip": "Leave empty for no limit" })),
            input(API_SECRET, "apiSecret", "Webhook secret", "password", false, json!({})),
        ],
        "workflows": { WORKFLOW: workflow(WORKFLOW, "Mirror a task into ACME", vec![]) },
        "customTriggers": {}
    });
    let salesforce = json!({
        "key": "salesforce", "kind": "catalog", "name": "Salesforce", "source": "src/integrations/salesforce",
        "config": { "description": "Keep Salesforce tasks in step", "overview": "Push tasks.", "showWatermark": false,
                    "active": true, "workflowDisplayOrder": [] },
        "inputs": [
            input(MAPPING, "taskMapping", "Map tasks to a Salesforce object", "field_mapping", true, json!({ "options": {
                "fieldMappings": [{ "label": "Title", "value": "title" }, { "label": "Due date" }], "useDynamicMapper": false } })),
        ],
        "workflows": { SF_WORKFLOW: workflow(SF_WORKFLOW, "Push new tasks", vec![
            input(ALWAYS, "alwaysPush", "Push every task", "boolean", false, json!({})),
        ]) },
        "customTriggers": {}
    });
    let campaign = json!({
        "key": "activecampaign", "kind": "catalog", "name": "ActiveCampaign", "source": "src/integrations/activecampaign",
        "config": { "description": null, "overview": null, "showWatermark": true, "active": true, "workflowDisplayOrder": [] },
        "inputs": [], "workflows": {}, "customTriggers": {}
    });
    serde_json::from_value(json!({
        "formatVersion": 1, "buildHash": "sha256:test", "generator": "test",
        "project": { "projectId": PROJECT, "projectName": "Taskflow" },
        "persona": { "meta": null, "source": null },
        "events": {}, "resources": {}, "secrets": [],
        "integrations": { ACME: acme, "salesforce": salesforce, "activecampaign": campaign },
    }))
    .unwrap()
}

/// The server under test with this file's helpers, and a client that leaves redirects to the
/// test (a browser's view of the pages).
struct Server {
    server: TestServer,
    http: reqwest::Client,
}

impl std::ops::Deref for Server {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl From<TestServer> for Server {
    fn from(server: TestServer) -> Server {
        Server { server, http: common::client_without_redirects() }
    }
}

async fn start(admin_key: Option<&str>) -> Server {
    TestServer::builder(build()).admin_key(admin_key).start().await.into()
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Server {
    fn portal(&self) -> String {
        format!("{}/projects/{PROJECT}/portal", self.base)
    }

    async fn get(&self, url: &str, cookie: Option<&str>) -> Page {
        let mut request = self.http.get(url);
        if let Some(c) = cookie {
            request = request.header("cookie", c);
        }
        let response = request.send().await.unwrap();
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    async fn post(&self, url: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Page {
        let mut body = form_urlencoded_body(fields);
        if body.is_empty() {
            body.push_str("x=");
        }
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = cookie {
            request = request.header("cookie", c);
        }
        let response = request.send().await.unwrap();
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    /// Signs `user` in through `?token=` and returns the cookie to send back.
    async fn sign_in(&self, user: &str) -> String {
        let page = self.get(&format!("{}?token={}", self.portal(), token(user)), None).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        let set = page.headers.get(SET_COOKIE).unwrap().to_str().unwrap();
        set.split(';').next().unwrap().to_string()
    }

    async fn connect(&self, user: &str, integration: &str) -> String {
        let c = self
            .state
            .store
            .insert_credential(&para_store::NewCredential {
                provider_id: Some("acct-42"),
                ..para_store::NewCredential::new(
                    PROJECT,
                    user,
                    integration,
                    CredentialStatus::Valid,
                    SECRET_MARKER,
                )
            })
            .await
            .unwrap();
        c.id
    }

    async fn stored(
        &self,
        user: &str,
        integration: &str,
        workflow: &str,
    ) -> Option<para_store::Settings> {
        let rows = self.state.store.settings(PROJECT, user).await.unwrap();
        rows.into_iter().find(|s| s.integration == integration && s.workflow_id == workflow)
    }
}

fn form_urlencoded_body(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The CSRF token in a rendered page's forms.
fn csrf(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a form with a CSRF field") + 19;
    body[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn a_token_in_the_link_becomes_a_cookie_and_leaves_the_address() {
    let server = start(None).await;
    let ann = token("ann");
    let page = server.get(&format!("{}?token={ann}&theme=dark", server.portal()), None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers.get(LOCATION).unwrap(), "/projects/p1/portal?theme=dark");
    let set = page.headers.get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(set.starts_with(&format!("para_token={ann};")), "{set}");
    for part in ["HttpOnly", "SameSite=Lax", "Path=/projects/p1/portal", "Max-Age="] {
        assert!(set.contains(part), "{part} missing: {set}");
    }
    let cookie = set.split(';').next().unwrap();
    let list = server.get(&server.portal(), Some(cookie)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    for name in ["ACME CRM", "Salesforce", "ActiveCampaign", "Signed in as <strong>ann</strong>"] {
        assert!(list.body.contains(name), "{name} missing");
    }
    let csp = list.headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("frame-ancestors *") && csp.contains("script-src 'none'"), "{csp}");
    assert!(list.headers.get("x-frame-options").is_none(), "the portal is embeddable");
    assert_eq!(list.headers.get("referrer-policy").unwrap(), "no-referrer");
    let users = server.state.store.users(PROJECT).await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].meta["Name"], "Ann Example");
    let css = server.get(&format!("{}/_para/style.css", server.base), None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers.get("content-type").unwrap().to_str().unwrap().starts_with("text/css"));
}

#[tokio::test]
async fn no_bad_or_foreign_tokens_get_a_401_page_that_explains() {
    let server = start(None).await;
    let none = server.get(&server.portal(), None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(none.body.contains("para token --user &lt;user-id&gt;"), "{}", none.body);
    let bad = server.get(&format!("{}?token=not.a.jwt", server.portal()), None).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.headers.get(SET_COOKIE).is_none());
    let stale = server.get(&format!("{}/{ACME}", server.portal()), Some("para_token=abc")).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    assert!(stale.headers.get(SET_COOKIE).unwrap().to_str().unwrap().contains("Max-Age=0"));
    let foreign = server
        .get(&format!("{}/projects/other/portal?token={}", server.base, token("ann")), None)
        .await;
    assert_eq!(foreign.status, StatusCode::UNAUTHORIZED);
    assert!(foreign.body.contains("this server serves project “p1”"), "{}", foreign.body);
    let cookie = server.sign_in("ann").await;
    let foreign_cookie =
        server.get(&format!("{}/projects/other/portal", server.base), Some(&cookie)).await;
    assert_eq!(foreign_cookie.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn settings_are_validated_inline_and_saved() {
    let server = start(None).await;
    let cookie = server.sign_in("ann").await;
    server.connect("ann", ACME).await;
    let url = format!("{}/{ACME}", server.portal());
    let page = server.get(&url, Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("--accent: #0F62FE"), "accent colour");
    let token = csrf(&page.body);
    let settings = format!("{url}/settings");

    // Invalid: the required pipeline missing, a number that is not one.
    let refused = server
        .post(&settings, Some(&cookie), &[("csrf", &token), (&format!("in.{SYNC_LIMIT}"), "lots")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("ACME pipeline is required: choose one of the options."),
        "{}",
        refused.body
    );
    assert!(
        refused
            .body
            .contains("Max tasks per sync must be a number (for example 25); “lots” is not one.")
    );
    assert!(refused.body.contains("value=\"lots\""), "what was typed stays");
    assert!(refused.body.contains("Nothing was saved: 2 values need fixing."));
    assert!(server.stored("ann", ACME, "").await.is_none());

    // Valid, with a password.
    let saved = server
        .post(
            &settings,
            Some(&cookie),
            &[
                ("csrf", &token),
                (&format!("in.{PIPELINE}"), "support"),
                (&format!("in.{SYNC_LIMIT}"), " 25 "),
                (&format!("in.{API_SECRET}"), "hunter2-secret"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(
        saved.headers.get(LOCATION).unwrap(),
        "/projects/p1/portal/custom.acmecrm?saved=settings#settings"
    );
    let row = server.stored("ann", ACME, "").await.unwrap();
    // The password is stored sealed (issue 18), never as typed.
    let sealed = row.values[API_SECRET].as_str().unwrap().to_string();
    assert!(sealed.starts_with("para-sealed:v1:") && !sealed.contains("hunter2"), "{sealed}");
    assert_eq!(row.values, json!({ PIPELINE: "support", SYNC_LIMIT: 25, API_SECRET: sealed }));

    let after = server.get(&format!("{url}?saved=settings"), Some(&cookie)).await;
    assert!(after.body.contains("Settings saved."));
    assert!(
        after.body.contains("<option value=\"support\" selected>Support</option>"),
        "{}",
        after.body
    );
    assert!(!after.body.contains("hunter2-secret"), "a saved password is never sent back");
    assert!(after.body.contains("Saved — leave empty to keep it"));

    // An empty password field keeps the saved one; an emptied number is removed.
    let again = server
        .post(
            &settings,
            Some(&cookie),
            &[
                ("csrf", &token),
                (&format!("in.{PIPELINE}"), "sales"),
                (&format!("in.{SYNC_LIMIT}"), ""),
                (&format!("in.{API_SECRET}"), ""),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let row = server.stored("ann", ACME, "").await.unwrap();
    assert_eq!(row.values, json!({ PIPELINE: "sales", API_SECRET: sealed }));
}

#[tokio::test]
async fn field_mappings_and_workflow_toggles_are_saved() {
    let server = start(None).await;
    let cookie = server.sign_in("bob").await;
    server.connect("bob", "salesforce").await;
    let url = format!("{}/salesforce", server.portal());
    let page = server.get(&url, Some(&cookie)).await;
    assert!(
        page.body.contains("<option value=\"Task\">Task</option>"),
        "catalog record types offered"
    );
    let token = csrf(&page.body);
    let name = format!("in.{MAPPING}");
    let saved = server
        .post(
            &format!("{url}/settings"),
            Some(&cookie),
            &[
                ("csrf", &token),
                (&format!("{name}.record_type"), "Task"),
                (&format!("{name}.key"), "title"),
                (&format!("{name}.value"), "Subject"),
                (&format!("{name}.key"), "Due date"),
                (&format!("{name}.value"), ""),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(
        server.stored("bob", "salesforce", "").await.unwrap().values,
        json!({ MAPPING: { "record_type": "Task", "title": "Subject" } })
    );

    let toggle = format!("{url}/workflows/{SF_WORKFLOW}");
    let on = server
        .post(
            &toggle,
            Some(&cookie),
            &[("csrf", &token), ("enabled", "true"), (&format!("in.{ALWAYS}"), "true")],
        )
        .await;
    assert_eq!(on.status, StatusCode::SEE_OTHER, "{}", on.body);
    let row = server.stored("bob", "salesforce", SF_WORKFLOW).await.unwrap();
    assert_eq!((row.enabled, row.values), (Some(true), json!({ ALWAYS: true })));
    let shown = server.get(&url, Some(&cookie)).await;
    assert!(shown.body.contains("name=\"enabled\" value=\"true\" checked"), "the toggle shows on");
    let off = server.post(&toggle, Some(&cookie), &[("csrf", &token)]).await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    let row = server.stored("bob", "salesforce", SF_WORKFLOW).await.unwrap();
    assert_eq!(
        (row.enabled, row.values),
        (Some(false), json!({ ALWAYS: true })),
        "off keeps the settings"
    );
}

#[tokio::test]
async fn settings_need_a_connection_and_disconnect_removes_it() {
    let server = start(None).await;
    let cookie = server.sign_in("cy").await;
    let url = format!("{}/{ACME}", server.portal());
    let page = server.get(&url, Some(&cookie)).await;
    assert!(page.body.contains("<fieldset disabled>"), "forms are disabled until connected");
    let token = csrf(&page.body);
    let early = server
        .post(
            &format!("{url}/settings"),
            Some(&cookie),
            &[("csrf", &token), (&format!("in.{PIPELINE}"), "sales")],
        )
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT);
    assert!(early.body.contains("Connect ACME CRM first"));

    server.connect("cy", ACME).await;
    let saved = server
        .post(
            &format!("{url}/settings"),
            Some(&cookie),
            &[("csrf", &token), (&format!("in.{PIPELINE}"), "sales")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    let gone = server.post(&format!("{url}/disconnect"), Some(&cookie), &[("csrf", &token)]).await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    assert_eq!(
        gone.headers.get(LOCATION).unwrap(),
        "/projects/p1/portal/custom.acmecrm?disconnected=1"
    );
    assert!(server.state.store.credentials(PROJECT, "cy", None).await.unwrap().is_empty());
    assert!(server.stored("cy", ACME, "").await.is_none());
}

#[tokio::test]
async fn each_account_is_listed_and_disconnected_on_its_own() {
    let server = start(None).await;
    let cookie = server.sign_in("flo").await;
    let url = format!("{}/{ACME}", server.portal());
    let first = server.connect("flo", ACME).await;
    let page = server.get(&url, Some(&cookie)).await;
    assert!(page.body.contains("Connect another account"), "a connected page offers another");
    assert!(!page.body.contains("Disconnect this account"), "one account: one plain Disconnect");
    let second = server.connect("flo", ACME).await;
    let page = server.get(&url, Some(&cookie)).await;
    for id in [&first, &second] {
        assert!(page.body.contains(&format!("name=\"credential\" value=\"{id}\"")), "{id} listed");
    }
    assert_eq!(page.body.matches("Disconnect this account").count(), 2);
    let token = csrf(&page.body);
    let field = format!("in.{PIPELINE}");
    let saved = server
        .post(&format!("{url}/settings"), Some(&cookie), &[("csrf", &token), (&field, "sales")])
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);

    // One account goes; the other and the settings stay.
    let disconnect = |id: String| {
        let (server, cookie, url, token) = (&server, &cookie, &url, &token);
        async move {
            server
                .post(
                    &format!("{url}/disconnect"),
                    Some(cookie),
                    &[("csrf", token), ("credential", &id)],
                )
                .await
        }
    };
    assert_eq!(disconnect(first.clone()).await.status, StatusCode::SEE_OTHER);
    let left = server.state.store.credentials(PROJECT, "flo", Some(ACME)).await.unwrap();
    assert_eq!(left.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [second.as_str()]);
    assert!(server.stored("flo", ACME, "").await.is_some(), "settings kept");
    // An account that is not (or no longer) the user's: a page that says so, nothing removed.
    let again = disconnect(first).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(again.body.contains("No such account"), "{}", again.body);
    assert_eq!(server.state.store.credentials(PROJECT, "flo", None).await.unwrap().len(), 1);
    // The last account goes with the settings.
    assert_eq!(disconnect(second).await.status, StatusCode::SEE_OTHER);
    assert!(server.state.store.credentials(PROJECT, "flo", None).await.unwrap().is_empty());
    assert!(server.stored("flo", ACME, "").await.is_none(), "settings removed with the last");
}

#[tokio::test]
async fn the_overview_is_rendered_without_script() {
    let server = start(None).await;
    let cookie = server.sign_in("dee").await;
    let page = server.get(&format!("{}/{ACME}", server.portal()), Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Connect <strong>ACME CRM</strong> to mirror tasks."),
        "{}",
        page.body
    );
    let lower = page.body.to_lowercase();
    for bad in ["<script", "onerror", "onclick", "javascript:", "alert("] {
        assert!(!lower.contains(bad), "{bad} reached the page");
    }
    // Query-string banners are text, never markup.
    let banner = server
        .get(
            &format!("{}/{ACME}?error=%3Cscript%3Ealert(1)%3C/script%3E", server.portal()),
            Some(&cookie),
        )
        .await;
    assert!(banner.body.contains("could not be connected: &lt;script&gt;"), "{}", banner.body);
    assert!(!banner.body.contains("<script>"));
}

#[tokio::test]
async fn posts_without_the_right_csrf_token_are_refused() {
    let server = start(None).await;
    let ann = server.sign_in("ann").await;
    let eve = server.sign_in("eve").await;
    server.connect("ann", ACME).await;
    let url = format!("{}/{ACME}", server.portal());
    let eve_token = csrf(&server.get(&url, Some(&eve)).await.body);
    let field = format!("in.{PIPELINE}");
    for (what, fields) in [
        ("no token", vec![(field.as_str(), "sales")]),
        ("a forged token", vec![("csrf", "AAAA"), (field.as_str(), "sales")]),
        ("another user's token", vec![("csrf", eve_token.as_str()), (field.as_str(), "sales")]),
    ] {
        for action in ["settings", "disconnect", "connect", &format!("workflows/{WORKFLOW}")] {
            let page = server.post(&format!("{url}/{action}"), Some(&ann), &fields).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{what} on {action}");
        }
    }
    assert!(server.stored("ann", ACME, "").await.is_none());
    assert_eq!(server.state.store.credentials(PROJECT, "ann", None).await.unwrap().len(), 1);
    // Without a session at all: 401, not 403.
    let anonymous = server.post(&format!("{url}/settings"), None, &[("csrf", &eve_token)]).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn connecting_redirects_or_shows_why_not() {
    let server = start(None).await;
    let cookie = server.sign_in("fay").await;
    let url = format!("{}/activecampaign", server.portal());
    let page = server.get(&url, Some(&cookie)).await;
    let token = csrf(&page.body);
    // A required connect field missing: refused inline, the typed secret not echoed.
    let missing = server
        .post(
            &format!("{url}/connect"),
            Some(&cookie),
            &[("csrf", &token), ("cf.apiKey", "key-typed-by-fay")],
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", missing.body);
    assert!(missing.body.contains("API URL is required: enter a value."), "{}", missing.body);
    assert!(!missing.body.contains("key-typed-by-fay"));

    // OAuth: either a redirect to the provider or the reason inline.
    let acme = format!("{}/{ACME}", server.portal());
    let started = server
        .post(&format!("{acme}/connect"), Some(&cookie), &[("csrf", &token), ("cf.region", "eu")])
        .await;
    if started.status == StatusCode::SEE_OTHER {
        let to = started.headers.get(LOCATION).unwrap().to_str().unwrap();
        assert!(to.starts_with("http"), "{to}");
    } else {
        assert!(started.status.is_client_error() || started.status.is_server_error());
        assert!(started.body.contains("ACME CRM could not be connected"), "{}", started.body);
    }
}

/// A provider that authorises at once: `/authorize` sends the browser straight back with a
/// code, `/token` trades any code for a token.
async fn fake_provider() -> String {
    use axum::extract::Query;
    use axum::response::Redirect;
    use axum::routing::{get, post};
    async fn authorize(Query(q): Query<std::collections::HashMap<String, String>>) -> Redirect {
        let back = format!("{}?code=c0de&state={}", q["redirect_uri"], q["state"]);
        Redirect::to(&back)
    }
    async fn token() -> axum::Json<Value> {
        axum::Json(
            json!({ "access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3600, "token_type": "Bearer" }),
        )
    }
    let app = axum::Router::new().route("/authorize", get(authorize)).route("/token", post(token));
    common::serve(app).await
}

#[tokio::test]
async fn connecting_with_oauth_comes_back_to_the_portal_page() {
    let provider = fake_provider().await;
    let client = para_server::OAuthClient {
        client_id: "portal-test".into(),
        client_secret: "portal-test-secret".into(),
        authorize_url: Some(format!("{provider}/authorize")),
        token_url: Some(format!("{provider}/token")),
        api_base_url: Some(format!("{provider}/api")),
        webhook_secret: None,
    };
    let server: Server =
        TestServer::builder(build()).oauth_client(ACME, client).start().await.into();
    let cookie = server.sign_in("gus").await;
    let url = format!("{}/{ACME}", server.portal());
    let token = csrf(&server.get(&url, Some(&cookie)).await.body);
    let started = server
        .post(&format!("{url}/connect"), Some(&cookie), &[("csrf", &token), ("cf.region", "eu")])
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let to_provider = started.headers.get(LOCATION).unwrap().to_str().unwrap().to_string();
    assert!(to_provider.starts_with(&format!("{provider}/authorize?")), "{to_provider}");
    assert!(to_provider.contains("code_challenge_method=S256"), "{to_provider}");
    let binding = started.headers.get(SET_COOKIE).expect("the browser is bound to the flow");
    let binding = binding.to_str().unwrap().split(';').next().unwrap().to_string();

    let at_provider = server.get(&to_provider, None).await;
    let callback = at_provider.headers.get(LOCATION).unwrap().to_str().unwrap().to_string();
    assert!(callback.starts_with(&format!("{}/oauth/callback?", server.base)), "{callback}");
    let back = server.get(&callback, Some(&binding)).await;
    assert!(back.status.is_redirection(), "{} {}", back.status, back.body);
    let landing = back.headers.get(LOCATION).unwrap().to_str().unwrap().to_string();
    assert!(landing.starts_with(&format!("{url}?connected=")), "{landing}");

    let page = server.get(&landing, Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("ACME CRM is connected."), "{}", page.body);
    assert!(page.body.contains("Disconnect"));
    let credentials = server.state.store.credentials(PROJECT, "gus", Some(ACME)).await.unwrap();
    assert_eq!(credentials.len(), 1);
    assert_eq!(credentials[0].status, CredentialStatus::Valid);
    assert!(!page.body.contains("at-1") && !page.body.contains("rt-1"), "no token on the page");
}

#[tokio::test]
async fn the_dashboard_is_off_without_an_admin_key() {
    let server = start(None).await;
    for path in ["/dashboard", "/dashboard/user?id=ann"] {
        let page = server.get(&format!("{}{path}", server.base), None).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert!(page.body.contains("PARA_ADMIN_KEY"), "{}", page.body);
    }
    let login =
        server.post(&format!("{}/dashboard/login", server.base), None, &[("key", "")]).await;
    assert_eq!(login.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_dashboard_wants_the_admin_key_and_shows_no_secrets() {
    let server = start(Some("correct-horse-battery")).await;
    let cookie = server.sign_in("ann").await;
    let id = server.connect("ann", ACME).await;
    server
        .state
        .store
        .update_credential(
            PROJECT,
            "ann",
            &id,
            CredentialStatus::Invalid,
            Some("the test endpoint answered 401"),
            SECRET_MARKER,
            None,
        )
        .await
        .unwrap();
    let url = format!("{}/{ACME}", server.portal());
    let token = csrf(&server.get(&url, Some(&cookie)).await.body);
    let saved = server
        .post(
            &format!("{url}/settings"),
            Some(&cookie),
            &[
                ("csrf", &token),
                (&format!("in.{PIPELINE}"), "sales"),
                (&format!("in.{API_SECRET}"), "hunter2-secret"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);

    let dashboard = format!("{}/dashboard", server.base);
    let anonymous = server.get(&dashboard, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.body.contains("Admin key"), "the sign-in form");
    let wrong = server.http.get(&dashboard).bearer_auth("wrong-key").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.headers().get("x-frame-options").unwrap(), "DENY");

    let right =
        server.http.get(&dashboard).bearer_auth("correct-horse-battery").send().await.unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    let body = right.text().await.unwrap();
    assert!(body.contains("ann") && body.contains("Ann Example &lt;ann@example.com&gt;"), "{body}");
    assert!(body.contains("custom.acmecrm"));

    // A configuration made with createConfiguration shows with its own settings.
    let store = &server.state.store;
    let made = store.insert_configuration(PROJECT, "ann", &id, Some("team-b")).await.unwrap();
    let key = para_store::SettingsKey::Configuration(made.id.clone());
    let scope = para_store::SettingsScope {
        project_id: PROJECT,
        user_id: "ann",
        integration: ACME,
        configuration: &key,
        workflow_id: "",
    };
    let values = json!({ PIPELINE: "support", API_SECRET: "team-b-secret" });
    store.put_settings(scope, None, Some(&values)).await.unwrap();

    let detail = server
        .http
        .get(format!("{dashboard}/user?id=ann"))
        .bearer_auth("correct-horse-battery")
        .send()
        .await
        .unwrap();
    assert_eq!(detail.status(), StatusCode::OK);
    let body = detail.text().await.unwrap();
    for expected in [
        "Needs attention",
        "the test endpoint answered 401",
        "acct-42",
        "ACME pipeline",
        "sales",
        "Webhook secret",
        "•••••• (saved)",
        "Mirror a task into ACME",
        "Configuration “team-b”",
        &made.id,
        "support",
    ] {
        assert!(body.contains(expected), "{expected} missing: {body}");
    }
    for secret in [SECRET_MARKER, "hunter2-secret", "team-b-secret"] {
        assert!(!body.contains(secret), "{secret} shown");
    }

    // The sign-in form: a wrong key is refused, the right one gives a session cookie.
    let refused = server.post(&format!("{dashboard}/login"), None, &[("key", "nope")]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("does not match the admin key"));
    let accepted =
        server.post(&format!("{dashboard}/login"), None, &[("key", "correct-horse-battery")]).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER);
    let set = accepted.headers.get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(
        set.contains("HttpOnly")
            && set.contains("SameSite=Strict")
            && set.contains("Path=/dashboard"),
        "{set}"
    );
    assert!(!set.contains("correct-horse-battery"), "the cookie is not the key");
    let session = set.split(';').next().unwrap();
    let with_cookie = server.get(&dashboard, Some(session)).await;
    assert_eq!(with_cookie.status, StatusCode::OK);
    assert!(with_cookie.body.contains("Sign out"));
    let forged = server.get(&dashboard, Some("para_admin=correct-horse-battery")).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let again =
        server.post(&format!("{dashboard}/login"), None, &[("key", "correct-horse-battery")]).await;
    let other = again.headers.get(SET_COOKIE).unwrap().to_str().unwrap().split(';').next().unwrap();
    assert_ne!(other, session, "each sign-in is a new random session");

    // Signing out needs the page's CSRF token: a cross-site POST does not end the session.
    let cross_site = server.post(&format!("{dashboard}/logout"), Some(session), &[]).await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    let forged = server.post(&format!("{dashboard}/logout"), Some(session), &[("csrf", "x")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(server.get(&dashboard, Some(session)).await.status, StatusCode::OK);
    let token = csrf(&with_cookie.body);
    let out = server.post(&format!("{dashboard}/logout"), Some(session), &[("csrf", &token)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    // Over on the server too: the same cookie, kept by someone, no longer signs in; the other
    // session is untouched.
    assert_eq!(server.get(&dashboard, Some(session)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.get(&dashboard, Some(other)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_admin_keys_are_throttled_per_peer() {
    let server = start(Some("correct-horse-battery")).await;
    let dashboard = format!("{}/dashboard", server.base);
    let with_key = |key: &'static str| server.http.get(&dashboard).bearer_auth(key).send();
    for _ in 0..10 {
        assert_eq!(with_key("guess").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let throttled = with_key("guess").await.unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = throttled.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // While throttled nothing is checked, the right key included: guessing gains nothing.
    assert_eq!(
        with_key("correct-horse-battery").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let form = server.post(&format!("{dashboard}/login"), None, &[("key", "x")]).await;
    assert_eq!(form.status, StatusCode::TOO_MANY_REQUESTS);
}

/// A link with another user's token (an attacker's) does not switch a signed-in victim: the
/// victim is asked, and only a form carrying the victim's session token switches; the link's
/// own user, or someone not signed in, is signed in as before, the token leaving the address.
#[tokio::test]
async fn a_link_does_not_switch_the_signed_in_user_without_asking() {
    let server = start(None).await;
    let victim = server.sign_in("ann").await;
    let attacker = token("mallory");
    let page = format!("{}/{ACME}", server.portal());
    let link = format!("{page}?token={attacker}");

    let asked = server.get(&link, Some(&victim)).await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(asked.headers.get(SET_COOKIE).is_none(), "nothing switched yet");
    assert!(asked.body.contains("signed in to this Connect Portal as <strong>ann</strong>"));
    assert!(asked.body.contains("signs in as <strong>mallory</strong>"));
    // The victim is still ann.
    let still = server.get(&page, Some(&victim)).await;
    assert_eq!(still.status, StatusCode::OK);
    assert!(still.body.contains("ann"));

    // Another site's form (no or a wrong CSRF token) does not switch.
    let switch = format!("{}/_switch", server.portal());
    let forged = server.post(&switch, Some(&victim), &[("token", &attacker), ("to", &page)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let forged = server
        .post(&switch, Some(&victim), &[("token", &attacker), ("csrf", "x"), ("to", &page)])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // The victim's own confirmation does, back to the page (never off the portal).
    let path = format!("/projects/{PROJECT}/portal/{ACME}");
    let confirmed = server
        .post(
            &switch,
            Some(&victim),
            &[("csrf", &csrf(&asked.body)), ("token", &attacker), ("to", &path)],
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::SEE_OTHER);
    assert_eq!(confirmed.headers["location"], path.as_str());
    let set = confirmed.headers.get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(set.starts_with(&format!("para_token={attacker}")), "{set}");
    let elsewhere = server
        .post(
            &switch,
            Some(&victim),
            &[("csrf", &csrf(&asked.body)), ("token", &attacker), ("to", "https://evil.example/")],
        )
        .await;
    assert_eq!(elsewhere.headers["location"], format!("/projects/{PROJECT}/portal").as_str());

    // The same user's fresh token, or no session at all: signed in at once, the token taken
    // out of the address.
    let same = server.get(&format!("{page}?token={}", token("ann")), Some(&victim)).await;
    assert_eq!(same.status, StatusCode::SEE_OTHER);
    assert_eq!(same.headers["location"], path.as_str());
    let fresh = server.get(&link, None).await;
    assert_eq!(fresh.status, StatusCode::SEE_OTHER);
    assert_eq!(fresh.headers["location"], path.as_str());
}
