//! The SDK's install flow for every kind of integration (`installFlow` with pre- and
//! post-sign-in options, `_oauthCallback` → `POST /sdk/credentials`, `setPostOptions` →
//! `POST /sdk/credentials/{id}/complete-setup`) and `getIntegrationAccount`
//! (`GET /sdk/credentials?integration=…&includeAccountAuth=…`), in the shapes the SDK 2.4.0
//! reads, against a loopback provider.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{any, post};
use para_server::OAuthClient;
use serde_json::{Value, json};

use crate::common::{self, TestServer, token};

const PROJECT: &str = "p-install";
/// Basic auth whose only value is an API key typed by the user (a config input).
const KEYS: &str = "custom.keys";
/// Basic auth with username and password.
const LOGIN: &str = "custom.login";
/// OAuth with a value asked before (region) and two after (workspace, webhook secret).
const ACME: &str = "custom.acme";

#[derive(Default)]
struct Seen {
    /// Every API request: (path, the `x-workspace` header).
    api: Mutex<Vec<(String, String)>>,
    /// How many refresh grants were answered.
    refreshes: Mutex<u32>,
}

async fn token_endpoint(State(seen): State<Arc<Seen>>, body: String) -> (StatusCode, String) {
    let form: Vec<(String, String)> =
        form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match get("grant_type") {
        // `expires_in: 30` is inside the server's refresh margin: the next use refreshes.
        Some("authorization_code") if get("code") == Some("good-code") => (
            StatusCode::OK,
            json!({ "access_token": "AT-1", "refresh_token": "RT-1", "expires_in": 30 })
                .to_string(),
        ),
        Some("refresh_token") if get("refresh_token") == Some("RT-1") => {
            *seen.refreshes.lock().unwrap() += 1;
            (StatusCode::OK, json!({ "access_token": "AT-2", "expires_in": 3600 }).to_string())
        }
        _ => (StatusCode::BAD_REQUEST, json!({ "error": "invalid_grant" }).to_string()),
    }
}

async fn api(State(seen): State<Arc<Seen>>, uri: Uri, headers: HeaderMap) -> (StatusCode, String) {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    seen.api.lock().unwrap().push((uri.path().to_string(), h("x-workspace")));
    let basic_ann = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "ann:s3cret")
    );
    let ok = h("x-api-key") == "K-good"
        || h("authorization") == basic_ann
        || h("authorization").starts_with("Bearer AT-")
        || h("authorization") == "Bearer SG.good";
    // ACME's test endpoint names the workspace chosen after signing in.
    let workspace_ok = !uri.path().starts_with("/api/workspaces/") || uri.path().ends_with("/eng");
    if ok && workspace_ok {
        (StatusCode::OK, json!({ "path": uri.path() }).to_string())
    } else {
        (StatusCode::UNAUTHORIZED, json!({ "error": "who are you" }).to_string())
    }
}

async fn provider() -> (Arc<Seen>, String) {
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new()
        .route("/token", post(token_endpoint))
        .route("/api/{*rest}", any(api))
        .with_state(seen.clone());
    (seen, common::serve(app).await)
}

fn input(id: &str, key: &str, title: &str, kind: &str, required: bool, options: Value) -> Value {
    let mut input =
        json!({ "id": id, "key": key, "title": title, "type": kind, "required": required });
    if !options.is_null() {
        input["options"] = options;
    }
    input
}

fn config_input(id: &str, key: &str) -> Value {
    json!({ "type": "CONFIG_INPUT", "inputId": id, "key": key })
}

const API_KEY_ID: &str = "00000000-0000-4000-8000-00000000a001";
const REGION_ID: &str = "00000000-0000-4000-8000-00000000a002";
const WORKSPACE_ID: &str = "00000000-0000-4000-8000-00000000a003";
const HOOK_SECRET_ID: &str = "00000000-0000-4000-8000-00000000a004";
const NOTIFY_ID: &str = "00000000-0000-4000-8000-00000000a005";

fn build() -> para_build::Build {
    let credential = |path: &[&str]| json!({ "type": "CREDENTIAL", "path": path });
    let mut keys = common::custom(
        KEYS,
        "basic",
        json!({ "type": "auth_header", "headers": [
            { "key": "X-Api-Key", "source": config_input(API_KEY_ID, "apiKey") } ] }),
        Value::Null,
    );
    keys["config"]["custom"]["configInputs"] =
        json!([input(API_KEY_ID, "apiKey", "API key", "password", true, Value::Null)]);
    keys["config"]["custom"]["configInputs"][0]["tooltip"] = json!("Settings → API");
    let login = common::custom(
        LOGIN,
        "basic",
        json!({ "type": "basic", "username": credential(&["username"]),
                "password": credential(&["password"]) }),
        Value::Null,
    );
    let mut acme = common::custom(
        ACME,
        "oauth",
        json!({ "type": "auth_header", "headers": [
            { "key": "Authorization", "source": { "type": "TOKENIZED", "parts": [
                { "type": "VALUE", "value": "Bearer " }, credential(&["oauthAccessToken"]) ] } },
            { "key": "X-Workspace", "source": config_input(WORKSPACE_ID, "workspace") } ] }),
        Value::Null,
    );
    acme["config"]["custom"]["testEndpointPath"] = json!({ "type": "TOKENIZED", "parts": [
        { "type": "VALUE", "value": "/workspaces/" }, config_input(WORKSPACE_ID, "workspace") ] });
    acme["config"]["custom"]["configInputs"] = json!([
        input(REGION_ID, "region", "Region", "text", true, Value::Null),
        input(
            WORKSPACE_ID,
            "workspace",
            "Workspace",
            "custom_dropdown",
            true,
            json!({
            "postOAuth": true,
            "customDropdownOptions": [
                { "label": "Engineering", "value": "eng" }, { "label": "Sales", "value": "sales" } ] })
        ),
        input(
            HOOK_SECRET_ID,
            "hookSecret",
            "Webhook secret",
            "password",
            false,
            json!({ "postOAuth": true })
        ),
        input(NOTIFY_ID, "notify", "Notify", "boolean", false, json!({ "postOAuth": true })),
    ]);
    let catalog = |key: &str, name: &str| {
        json!({
            "key": key, "kind": "catalog", "name": name, "source": format!("src/integrations/{key}"),
            "config": { "description": null, "overview": null, "showWatermark": true, "active": true,
                        "workflowDisplayOrder": [] },
            "inputs": [], "workflows": {}, "customTriggers": {}
        })
    };
    common::build(
        PROJECT,
        json!({
            KEYS: keys, LOGIN: login, ACME: acme,
            "sendgrid": catalog("sendgrid", "SendGrid"),
            "shopify": catalog("shopify", "Shopify"),
        }),
    )
}

async fn server(provider_base: &str) -> TestServer {
    let client = OAuthClient {
        client_id: "acme-app".into(),
        client_secret: "acme-secret".into(),
        token_url: Some(format!("{provider_base}/token")),
        api_base_url: Some(format!("{provider_base}/api")),
        ..OAuthClient::default()
    };
    let api_only = OAuthClient {
        api_base_url: Some(format!("{provider_base}/api")),
        ..OAuthClient::default()
    };
    TestServer::builder(build())
        .oauth_client(KEYS, api_only.clone())
        .oauth_client(LOGIN, api_only.clone())
        .oauth_client(ACME, client)
        .oauth_client("sendgrid", api_only)
        .start()
        .await
}

fn entry<'a>(list: &'a Value, type_name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == type_name || i["customIntegration"]["slug"] == type_name)
        .unwrap_or_else(|| panic!("{type_name} is listed: {list}"))
}

/// What `getPreOptions` (custom: `customIntegration.inputFields`; catalog:
/// `sdkIntegrationConfig.authConfigInputs`) and `getPostOptions`
/// (`sdkIntegrationConfig.postOauthInputs`) read, typed as install inputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrations_offer_install_inputs_in_the_sdks_shape() {
    let (_seen, base) = provider().await;
    let server = server(&base).await;
    let (status, list) = server.call("GET", "/sdk/integrations", &token("ann"), None).await;
    assert_eq!(status, 200, "{list}");

    // An API key typed by the user, used in a header: only that is asked, as a secret.
    let keys = entry(&list, KEYS);
    assert_eq!(keys["authenticationType"], "basic");
    assert_eq!(keys["needPreOauthInputs"], true);
    assert_eq!(
        keys["customIntegration"]["inputFields"],
        json!([{ "id": "apiKey", "title": "API key", "type": "PASSWORD", "required": true,
                 "subtitle": "Settings → API" }])
    );
    assert_eq!(keys["sdkIntegrationConfig"]["postOauthInputs"], json!([]));
    // Username and password, because the integration's authorization uses them.
    let login = entry(&list, LOGIN);
    assert_eq!(
        login["customIntegration"]["inputFields"],
        json!([
            { "id": "username", "title": "Username", "type": "TEXT_NO_VARS", "required": true },
            { "id": "password", "title": "Password", "type": "PASSWORD", "required": true },
        ])
    );
    // OAuth: the region before the sign-in, the rest after.
    let acme = entry(&list, ACME);
    assert_eq!(acme["authenticationType"], "oauth");
    assert_eq!(
        acme["customIntegration"]["inputFields"],
        json!([{ "id": "region", "title": "Region", "type": "TEXT_NO_VARS", "required": true }])
    );
    assert_eq!(
        acme["sdkIntegrationConfig"]["postOauthInputs"],
        json!([
            { "id": "workspace", "title": "Workspace", "type": "ENUM", "required": true,
              "values": [{ "label": "Engineering", "value": "eng" }, { "label": "Sales", "value": "sales" }] },
            { "id": "hookSecret", "title": "Webhook secret", "type": "PASSWORD", "required": false },
            { "id": "notify", "title": "Notify", "type": "SWITCH", "required": false },
        ])
    );
    assert_eq!(acme["sdkIntegrationConfig"]["accountTypes"], json!([]));
    // Catalog: an API key, and an OAuth integration asking the shop first.
    let sendgrid = entry(&list, "sendgrid");
    assert_eq!(sendgrid["authenticationType"], "basic");
    assert_eq!(sendgrid["connectKind"], "api_key");
    let inputs = &sendgrid["sdkIntegrationConfig"]["authConfigInputs"];
    assert_eq!(inputs.as_array().map(Vec::len), Some(1), "{sendgrid}");
    assert_eq!((&inputs[0]["id"], &inputs[0]["type"]), (&json!("apiKey"), &json!("PASSWORD")));
    let shopify = entry(&list, "shopify");
    assert_eq!(shopify["needPreOauthInputs"], true);
    let inputs = &shopify["sdkIntegrationConfig"]["authConfigInputs"];
    assert_eq!(inputs[0]["type"], "TEXT_NO_VARS", "{shopify}");
    // para's own portal keeps its fields.
    assert_eq!(keys["connectFields"][0]["key"], "apiKey");
    assert_eq!(keys["connectKind"], "basic");
}

/// `installFlow.setPreOptions` for a non-OAuth integration: the SDK posts the values with
/// `skipPostOAuthInputs` and `installOptions`; the id of a config input works as its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_options_connect_basic_and_api_key_integrations() {
    let (seen, base) = provider().await;
    let server = server(&base).await;
    let ann = token("ann");
    let install = |integration: &str, payload: Value| {
        let body = json!({ "integrationId": integration, "config": {}, "payload": payload,
            "installOptions": { "allowMultipleCredentials": false } });
        let (server, ann) = (&server, ann.clone());
        async move { server.call("POST", "/sdk/credentials", &ann, Some(body)).await }
    };
    let (status, c) =
        install(KEYS, json!({ "apiKey": "K-good", "skipPostOAuthInputs": false })).await;
    assert_eq!((status, c["status"].as_str()), (200, Some("VALID")), "{c}");
    assert!(!c.to_string().contains("K-good"), "the key is never sent back: {c}");
    let (status, c) = install(KEYS, json!({ API_KEY_ID: "K-good" })).await;
    assert_eq!((status, c["status"].as_str()), (200, Some("VALID")), "by id: {c}");
    let (status, c) = install(KEYS, json!({ "apiKey": "K-bad" })).await;
    assert_eq!((status, c["status"].as_str()), (200, Some("INVALID")), "{c}");
    let (status, refused) = install(KEYS, json!({})).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("`apiKey` (API key) is required"));
    let (status, refused) = install(KEYS, json!({ "apiKey": 42 })).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("apiKey"), "{refused}");
    let (status, refused) = install(KEYS, json!({ "apiKey": "x".repeat(20_000) })).await;
    assert_eq!(status, 400, "{refused}");

    let (status, c) = install(LOGIN, json!({ "username": "ann", "password": "s3cret" })).await;
    assert_eq!((status, c["status"].as_str()), (200, Some("VALID")), "{c}");
    let (status, c) = install("sendgrid", json!({ "apiKey": "SG.good" })).await;
    assert_eq!((status, c["status"].as_str()), (200, Some("VALID")), "{c}");
    assert!(seen.api.lock().unwrap().len() >= 4);
}

/// Creates ann's ACME credential as `completeInstall` does (a code the app obtained).
async fn connect_acme(server: &TestServer, bearer: &str) -> Value {
    let body = json!({ "integrationId": ACME, "code": "good-code",
                       "payload": { "region": "eu" } });
    let (status, c) = server.call("POST", "/sdk/credentials", bearer, Some(body)).await;
    assert_eq!(status, 200, "{c}");
    c
}

/// `installFlow.setPostOptions` → `complete-setup`: values checked against the inputs,
/// stored on the credential (secrets sealed, the others also in `providerData`), the
/// connection checked again with them, another user's credential out of reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_setup_stores_post_sign_in_values() {
    let (seen, base) = provider().await;
    let server = server(&base).await;
    let (ann, bob) = (token("ann"), token("bob"));
    // Its test endpoint needs the workspace: it waits for it instead of failing.
    let c = connect_acme(&server, &ann).await;
    assert_eq!(c["status"], "VALID", "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    let path = format!("/sdk/credentials/{id}/complete-setup");
    let setup = |bearer: &str, body: Value| {
        let (server, path, bearer) = (&server, path.clone(), bearer.to_string());
        async move { server.call("POST", &path, &bearer, Some(body)).await }
    };
    // What `_oauthCallback` sends: the integration's id, an empty config, the values.
    let (_, list) = server.call("GET", "/sdk/integrations", &ann, None).await;
    let integration_id = entry(&list, ACME)["id"].clone();
    let sdk_body = |payload: Value| {
        json!({ "integrationId": integration_id, "config": {}, "payload": payload,
                "installOptions": {} })
    };

    // Refused, with what to do.
    let (status, e) = setup(&ann, sdk_body(json!({ "workspace": "ops" }))).await;
    assert_eq!(status, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("workspace"), "{e}");
    let (status, e) = setup(&ann, sdk_body(json!({ "hookSecret": "h" }))).await;
    assert_eq!(status, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("`workspace` (Workspace) is required"), "{e}");
    let (status, e) = setup(&ann, sdk_body(json!({ "workspace": "eng", "plan": "x" }))).await;
    assert_eq!(status, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("`plan` is not a value asked"), "{e}");
    assert!(e["message"].as_str().unwrap().contains("`workspace`, `hookSecret`, `notify`"), "{e}");
    let (status, e) =
        setup(&ann, sdk_body(json!({ "workspace": "eng", "hookSecret": "h".repeat(20_000) })))
            .await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = setup(&ann, sdk_body(json!({ "workspace": "eng", "notify": "yes" }))).await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = setup(&ann, json!({ "payload": ["eng"] })).await;
    assert_eq!(status, 400, "{e}");
    let (status, e) =
        setup(&ann, json!({ "integrationId": KEYS, "payload": { "workspace": "eng" } })).await;
    assert_eq!(status, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("not the integration"), "{e}");
    let raw = common::client()
        .post(server.url(&path))
        .header("authorization", format!("Bearer {ann}"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let e: Value = raw.json().await.unwrap();
    assert!(e["message"].as_str().unwrap().contains("JSON body"), "{e}");
    // No token; another user's token; an id that is not one of the user's.
    let anonymous =
        common::client().post(server.url(&path)).json(&sdk_body(json!({}))).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let (status, e) = setup(&bob, sdk_body(json!({ "workspace": "eng" }))).await;
    assert_eq!(status, 404, "{e}");
    let (status, _) = server
        .call_with(
            "POST",
            "/sdk/credentials/not-mine/complete-setup",
            &ann,
            &[("x-paragon-credential", &id)],
            Some(sdk_body(json!({ "workspace": "eng" }))),
        )
        .await;
    assert_eq!(status, 404);

    // Stored: the secret sealed, the rest shown; the connection checked with the workspace.
    let calls_before = seen.api.lock().unwrap().len();
    let payload = json!({ "workspace": "eng", HOOK_SECRET_ID: "hook-123", "notify": true,
                "skipPostOAuthInputs": false });
    let (status, done) = setup(&ann, sdk_body(payload)).await;
    assert_eq!((status, done["status"].as_str()), (200, Some("VALID")), "{done}");
    assert_eq!(done["id"], id.as_str());
    assert_eq!(done["providerData"]["workspace"], "eng", "{done}");
    assert_eq!(done["providerData"]["notify"], true, "{done}");
    assert!(!done.to_string().contains("hook-123"), "{done}");
    let checked = seen.api.lock().unwrap()[calls_before..].to_vec();
    assert!(checked.iter().any(|(p, _)| p == "/api/workspaces/eng"), "{checked:?}");
    let (_, me) = server.call("GET", "/sdk/me", &ann, None).await;
    assert!(!me.to_string().contains("hook-123"));
    let row = server.state.store.credential(&server.project, "ann", &id).await.unwrap().unwrap();
    assert!(!row.secret.contains("hook-123"), "sealed at rest");
    // The proxy sends the workspace the user chose.
    let (status, answer) =
        server.call("GET", &format!("/sdk/proxy/{ACME}/things"), &ann, None).await;
    assert_eq!(status, 200, "{answer}");
    let last = seen.api.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last, ("/api/things".to_string(), "eng".to_string()));
    // A workspace the provider refuses makes the credential INVALID, with the reason.
    let (status, done) = setup(&ann, sdk_body(json!({ "workspace": "sales" }))).await;
    assert_eq!((status, done["status"].as_str()), (200, Some("INVALID")), "{done}");
    assert!(done["statusReason"].as_str().unwrap().contains("/workspaces/sales"), "{done}");
    // `skipPostOAuthInputs`: nothing required.
    let (status, done) = setup(&ann, sdk_body(json!({ "skipPostOAuthInputs": true }))).await;
    assert_eq!(status, 200, "{done}");

    // An integration that asks nothing afterwards refuses values.
    let (_, keyed) = server
        .call(
            "POST",
            "/sdk/credentials",
            &ann,
            Some(json!({ "integrationId": KEYS, "payload": { "apiKey": "K-good" } })),
        )
        .await;
    let keys_path = format!("/sdk/credentials/{}/complete-setup", keyed["id"].as_str().unwrap());
    let (status, e) =
        server.call("POST", &keys_path, &ann, Some(json!({ "payload": { "x": 1 } }))).await;
    assert_eq!(status, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("asks nothing after connecting"), "{e}");
}

/// `getIntegrationAccount`: one integration object with the account; `accountAuth` only when
/// asked, only an OAuth access token (refreshed when expired), only the caller's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_account_is_one_object_with_the_users_own_access_token() {
    let (seen, base) = provider().await;
    let server = server(&base).await;
    let (ann, bob) = (token("ann"), token("bob"));
    let account = |bearer: &str, query: &str, credential: Option<&str>| {
        let (server, bearer) = (&server, bearer.to_string());
        let path = format!("/sdk/credentials?{query}");
        let credential = credential.map(str::to_string);
        async move {
            let headers: Vec<(&str, &str)> = match &credential {
                Some(c) => vec![("x-paragon-credential", c.as_str())],
                None => vec![],
            };
            server.call_with("GET", &path, &bearer, &headers, None).await
        }
    };
    // Not connected yet.
    let (status, e) =
        account(&ann, &format!("integration={ACME}&includeAccountAuth=true"), None).await;
    assert_eq!(status, 404, "{e}");
    assert!(e["message"].as_str().unwrap().contains("not connected"), "{e}");

    let c = connect_acme(&server, &ann).await;
    let id = c["id"].as_str().unwrap().to_string();
    let bob_c = connect_acme(&server, &bob).await;
    let bob_id = bob_c["id"].as_str().unwrap().to_string();

    // The token expires within the refresh margin: it is refreshed before it is handed out.
    let response = common::client()
        .get(server.url(&format!("/sdk/credentials?integration={ACME}&includeAccountAuth=true")))
        .header("authorization", format!("Bearer {ann}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let got: Value = response.json().await.unwrap();
    assert!(got.is_object(), "one integration, not a list: {got}");
    assert_eq!(got["type"], "custom");
    assert_eq!(got["customIntegration"]["slug"], ACME);
    assert_eq!(got["hasCredential"], true);
    assert_eq!(got["projectId"], PROJECT);
    assert_eq!(got["connectedUserLimitReached"], false);
    assert!(got["configs"][0]["values"].is_object(), "{got}");
    assert_eq!(got["credentialId"], id.as_str());
    assert_eq!(got["providerData"], c["providerData"]);
    assert_eq!(got["accountAuth"], json!({ "OAUTH_ACCESS_TOKEN": "AT-2" }), "{got}");
    assert_eq!(*seen.refreshes.lock().unwrap(), 1);
    assert!(!got.to_string().contains("RT-1"), "never the refresh token: {got}");
    assert!(!got.to_string().contains("acme-secret"), "never the client secret");

    // Without `includeAccountAuth=true` (the SDK sends `undefined` or `false`): no auth.
    for flag in ["undefined", "false"] {
        let (status, got) =
            account(&ann, &format!("integration={ACME}&includeAccountAuth={flag}"), None).await;
        assert_eq!(status, 200, "{got}");
        assert!(got.get("accountAuth").is_none(), "{got}");
        assert_eq!(got["credentialId"], id.as_str());
    }
    // The selected credential: one's own works, another user's does not.
    let (status, got) =
        account(&ann, &format!("integration={ACME}&includeAccountAuth=true"), Some(&id)).await;
    assert_eq!((status, &got["credentialId"]), (200, &json!(id)), "{got}");
    let (status, e) =
        account(&ann, &format!("integration={ACME}&includeAccountAuth=true"), Some(&bob_id)).await;
    assert_eq!(status, 404, "{e}");
    assert!(!e.to_string().contains("AT-"), "{e}");
    let (status, got) =
        account(&bob, &format!("integration={ACME}&includeAccountAuth=true"), None).await;
    assert_eq!((status, &got["credentialId"]), (200, &json!(bob_id)), "{got}");
    // No token; an unknown integration; no integration.
    let anonymous = common::client()
        .get(server.url(&format!("/sdk/credentials?integration={ACME}&includeAccountAuth=true")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let (status, _) = account(&ann, "integration=custom.nope&includeAccountAuth=true", None).await;
    assert_eq!(status, 404);
    let (status, _) = account(&ann, "includeAccountAuth=true", None).await;
    assert_eq!(status, 400);

    // A typed API key is never handed out.
    let body = json!({ "integrationId": KEYS, "payload": { "apiKey": "K-good" } });
    assert_eq!(server.call("POST", "/sdk/credentials", &ann, Some(body)).await.0, 200);
    let (status, got) =
        account(&ann, &format!("integration={KEYS}&includeAccountAuth=true"), None).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["accountAuth"], json!({}), "{got}");
    assert!(!got.to_string().contains("K-good"));

    // The list the other callers read is unchanged.
    let (status, list) =
        server.call("GET", &format!("/sdk/credentials?integration={ACME}"), &ann, None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], id.as_str());
}

/// A browser in the SDK's popup: the nonce page's cookie, then pages with it.
struct Popup {
    cookie: String,
}

impl Popup {
    async fn open(server: &TestServer, bearer: &str) -> Popup {
        let url = format!(
            "{}/projects/{}/sdk/actions/oauth-nonce?originForPostMessage=http://app.example&userToken={bearer}",
            server.base, server.project
        );
        let res = common::client().get(url).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let set = res.headers()["set-cookie"].to_str().unwrap();
        Popup { cookie: set.split(';').next().unwrap().to_string() }
    }

    async fn get(&self, url: &str) -> (u16, String) {
        let res = common::client().get(url).header("cookie", &self.cookie).send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    async fn post(&self, url: &str, form: &[(&str, &str)]) -> (u16, String) {
        let body: String =
            form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let res = common::client()
            .post(url)
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }
}

/// The form's single-use state, from its hidden field.
fn form_state(page: &str) -> String {
    let at = page.find("name=\"state\" value=\"").unwrap_or_else(|| panic!("a form: {page}"));
    let rest = &page[at + "name=\"state\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// `installIntegration` in headless mode for an API-key integration: the SDK's popup goes
/// where build-oauth says, which for typed values is para's form; submitting it stores the
/// credential and completes the session the SDK polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_integration_popup_asks_typed_values() {
    let (_seen, base) = provider().await;
    let server = server(&base).await;
    let (ann, bob) = (token("ann"), token("bob"));
    let (_, list) = server.call("GET", "/sdk/integrations", &ann, None).await;
    let integration_id = entry(&list, KEYS)["id"].as_str().unwrap().to_string();
    let popup = Popup::open(&server, &ann).await;
    let build_oauth = |bearer: &str, session: &str| {
        let url = format!(
            "{}/v2/projects/{}/sdk/actions/build-oauth?action=custom&integrationId={integration_id}&endUserSuppliedValues=%7B%7D&parameters=%7B%7D&installOptions=%7B%7D&isPreviewMode=false&oauthMetaKeyId={session}&originForPostMessage=http://app.example",
            server.base, server.project
        );
        let bearer = bearer.to_string();
        async move {
            let res = common::client()
                .get(url)
                .header("authorization", format!("Bearer {bearer}"))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (status, answer) = build_oauth(&ann, "sess-1").await;
    assert_eq!(status, 200, "{answer}");
    let form_url = answer["redirectUrl"].as_str().unwrap().to_string();
    assert!(form_url.starts_with(&format!("{}/oauth/callback/values?state=", server.base)));

    // Only the browser bound to ann sees the form: no cookie, bob's cookie.
    let plain = common::client().get(&form_url).send().await.unwrap();
    assert_eq!(plain.status(), 403);
    let (status, answer) = build_oauth(&ann, "sess-1").await;
    assert_eq!(status, 200);
    let form_url = answer["redirectUrl"].as_str().unwrap().to_string();
    let bobs = Popup::open(&server, &bob).await;
    assert_eq!(bobs.get(&form_url).await.0, 403);
    let (_, answer) = build_oauth(&ann, "sess-1").await;
    let form_url = answer["redirectUrl"].as_str().unwrap().to_string();

    let (status, page) = popup.get(&form_url).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("name=\"v.apiKey\"") && page.contains("type=\"password\""), "{page}");
    // Used up: the page's own link does not open it twice.
    assert_eq!(popup.get(&form_url).await.0, 400);
    let values_url = format!("{}/oauth/callback/values", server.base);
    // A wrong key: the form again, with the provider's reason, and no credential kept.
    let (status, page) =
        popup.post(&values_url, &[("state", &form_state(&page)), ("v.apiKey", "K-bad")]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("did not accept"), "{page}");
    assert!(!page.contains("K-bad"), "a secret is never shown back");
    let (_, mine) = server.call("GET", "/sdk/credentials", &ann, None).await;
    assert_eq!(mine, json!([]));
    let (_, session) = server.call("GET", "/sdk/actions/session-id/sess-1", &ann, None).await;
    assert!(session["connectCredentialId"].is_null(), "{session}");
    // Nothing typed: the form says what is required.
    let (_, page) = popup.post(&values_url, &[("state", &form_state(&page))]).await;
    assert!(page.contains("is required"), "{page}");
    // A state cannot be posted from another browser, nor twice.
    let state = form_state(&page);
    assert_eq!(bobs.post(&values_url, &[("state", &state), ("v.apiKey", "K-good")]).await.0, 403);
    let (_, answer) = build_oauth(&ann, "sess-1").await;
    let (_, page) = popup.get(answer["redirectUrl"].as_str().unwrap()).await;
    let (status, page) =
        popup.post(&values_url, &[("state", &form_state(&page)), ("v.apiKey", "K-good")]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("is connected"), "{page}");
    let (_, session) = server.call("GET", "/sdk/actions/session-id/sess-1", &ann, None).await;
    let id = session["connectCredentialId"].as_str().expect("the session names the credential");
    let (_, c) = server.call("GET", &format!("/sdk/credentials/{id}"), &ann, None).await;
    assert_eq!(c["status"], "VALID", "{c}");
    assert_eq!(popup.post(&values_url, &[("state", &state), ("v.apiKey", "K-good")]).await.0, 400);
    // A form state is not a sign-in state.
    let (_, answer) = build_oauth(&ann, "sess-2").await;
    let url = answer["redirectUrl"].as_str().unwrap();
    let form_token = url.split("state=").nth(1).unwrap();
    let (status, page) =
        popup.get(&format!("{}/oauth/callback?state={form_token}&code=x", server.base)).await;
    assert_eq!(status, 400, "{page}");
}
