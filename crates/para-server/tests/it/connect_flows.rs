//! Connecting without a redirect, against a loopback provider: resource-owner password
//! (`ropc_app`) with `accessTokenOptions` and `saveCredentialsOptions`, client credentials
//! with HTTP Basic client authentication, and a catalog API-key integration — each checked by
//! its test endpoint and then used through the proxy.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{any, post};
use base64::Engine as _;
use para_server::OAuthClient;
use serde_json::{Value, json};

use crate::common::{self, TestServer, token};

const ROPC: &str = "custom.ledger";
const CC: &str = "custom.machines";
const PROJECT: &str = "p-flows";
const CODE: &str = "custom.notes";

/// The headers and form fields of one token request.
type TokenRequest = (HeaderMap, Vec<(String, String)>);

#[derive(Default)]
struct Seen {
    token_requests: Mutex<Vec<TokenRequest>>,
}

async fn token_endpoint(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let form: Vec<(String, String)> =
        form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    seen.token_requests.lock().unwrap().push((headers.clone(), form.clone()));
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let json_type = [("content-type", "application/json")];
    let answer = match get("grant_type") {
        Some("password")
            if get("username") == Some("ann")
                && get("password") == Some("s3cret")
                && get("tenant") == Some("acme")
                && headers.get("x-tenant").is_some_and(|v| v == "acme") =>
        {
            json!({ "access_token": "ROPC-AT", "session": "S-42", "expires_in": 3600 })
        }
        Some("authorization_code") if get("code") == Some("good-code") => {
            json!({ "access_token": "CODE-AT", "refresh_token": "CODE-RT", "expires_in": 3600 })
        }
        Some("client_credentials") => {
            let basic = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("machine-id:machine-secret")
            );
            if headers.get("authorization").is_none_or(|v| v.to_str().unwrap() != basic) {
                return (
                    StatusCode::UNAUTHORIZED,
                    json_type,
                    json!({"error": "invalid_client"}).to_string(),
                );
            }
            json!({ "access_token": "CC-AT", "token_type": "Bearer" })
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                json_type,
                json!({"error": "invalid_grant"}).to_string(),
            );
        }
    };
    (StatusCode::OK, json_type, answer.to_string())
}

async fn api(
    uri: Uri,
    headers: HeaderMap,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if h("authorization") == "Bearer xoxb-slack" {
        let json_type = [("content-type", "application/json")];
        let listing = uri.path() == "/api/conversations.list"
            && uri.query().is_some_and(|q| q.contains("exclude_archived=true"));
        let answer = match uri.path() {
            "/api/auth.test" => json!({ "ok": true }),
            _ if listing => json!({ "ok": true, "channels": [
                { "id": "C01", "name": "general" },
                { "id": "C02", "name": "<b>sales</b>" }
            ] }),
            _ => return (StatusCode::NOT_FOUND, json_type, "{}".into()),
        };
        return (StatusCode::OK, json_type, answer.to_string());
    }
    let ok = h("x-session") == "S-42"
        || h("authorization") == "Bearer CC-AT"
        || h("authorization") == "Bearer CODE-AT"
        || h("authorization") == "Bearer SG.good-key";
    let json_type = [("content-type", "application/json")];
    if ok {
        (StatusCode::OK, json_type, json!({ "path": uri.path(), "query": uri.query() }).to_string())
    } else {
        (StatusCode::UNAUTHORIZED, json_type, json!({ "error": "who are you" }).to_string())
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

fn build() -> para_build::Build {
    let credential = |path: &[&str]| json!({ "type": "CREDENTIAL", "path": path });
    let ropc_options = json!({ "type": "OBJECT", "entries": [
        { "key": "accessTokenOptions", "source": { "type": "VALUE", "value": {
            "headers": { "X-Tenant": "acme" }, "body": { "tenant": "acme" } } } },
        { "key": "saveCredentialsOptions", "source": { "type": "OBJECT", "entries": [
            { "key": "sessionToken", "source": { "type": "TOKENIZED", "parts": [
                credential(&["tokenRequest", "response", "session"]) ] } } ] } },
    ]});
    let mut cc = common::custom(
        CC,
        "oauth_client_credential",
        json!({ "type": "bearer", "token": credential(&["oauthAccessToken"]) }),
        Value::Null,
    );
    cc["config"]["custom"]["includeClientIdAndSecrets"] = json!(false);
    let mut code = common::custom(
        CODE,
        "oauth",
        json!({ "type": "bearer", "token": credential(&["oauthAccessToken"]) }),
        Value::Null,
    );
    code["config"]["custom"]["usePKCEInCodeExchange"] = json!(true);
    common::build(
        PROJECT,
        json!({
            ROPC: common::custom(ROPC, "ropc_app", json!({ "type": "auth_header", "headers": [
                { "key": "X-Session", "source": credential(&["savedCredentials", "sessionToken"]) } ] }),
                ropc_options),
            CC: cc,
            CODE: code,
            "slack": {
                "key": "slack", "kind": "catalog", "name": "Slack", "source": "src/integrations/slack",
                "config": { "description": null, "overview": null, "showWatermark": true, "active": true,
                            "workflowDisplayOrder": [] },
                "inputs": [{ "id": "00000000-0000-4000-8000-0000000000c1", "key": "channel",
                             "title": "Notify channel", "type": "channel", "required": false }],
                "workflows": {}, "customTriggers": {}
            },
            "sendgrid": {
                "key": "sendgrid", "kind": "catalog", "name": "SendGrid", "source": "src/integrations/sendgrid",
                "config": { "description": null, "overview": null, "showWatermark": true, "active": true,
                            "workflowDisplayOrder": [] },
                "inputs": [], "workflows": {}, "customTriggers": {}
            },
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_client_credentials_and_api_key_connections_work_end_to_end() {
    let (seen, provider_base) = provider().await;
    let overrides = |id: &str, secret: &str| OAuthClient {
        client_id: id.into(),
        client_secret: secret.into(),
        token_url: Some(format!("{provider_base}/token")),
        api_base_url: Some(format!("{provider_base}/api")),
        ..OAuthClient::default()
    };
    let sendgrid = OAuthClient {
        api_base_url: Some(format!("{provider_base}/api")),
        ..OAuthClient::default()
    };
    let server = TestServer::builder(build())
        .oauth_client(ROPC, overrides("ledger-app", "ledger-secret"))
        .oauth_client(CC, overrides("machine-id", "machine-secret"))
        .oauth_client("sendgrid", sendgrid)
        .start()
        .await;
    let ann = token("ann");
    let connect = |integration: &str, payload: Value| {
        let body = json!({ "integrationId": integration, "payload": payload });
        let server = &server;
        let ann = ann.clone();
        async move { server.call("POST", "/sdk/credentials", &ann, Some(body)).await }
    };

    // ropc_app: the token request carries the password grant and the extra options; the
    // session from its answer is saved and authorises API calls.
    let (status, c) = connect(ROPC, json!({ "username": "ann", "password": "s3cret" })).await;
    assert_eq!((status, c["status"].as_str()), (200, Some("VALID")), "{c}");
    let (status, answer) =
        server.call("GET", &format!("/sdk/proxy/{ROPC}/entries?x=1"), &ann, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["output"], json!({ "path": "/api/entries", "query": "x=1" }));
    let (_, wrong) = connect(ROPC, json!({ "username": "ann", "password": "nope" })).await;
    assert_eq!(wrong["code"], "token_request", "{wrong}");
    assert!(wrong["message"].as_str().unwrap().contains("invalid_grant"), "{wrong}");
    let (status, missing) = connect(ROPC, json!({ "username": "ann" })).await;
    assert_eq!(status, 400, "{missing}");
    assert!(missing["message"].as_str().unwrap().contains("password"), "{missing}");

    // Client credentials: the company's client, authenticated with HTTP Basic.
    let (status, c) = connect(CC, json!({})).await;
    assert_eq!((status, c["status"].as_str()), (200, Some("VALID")), "{c}");
    let cc_request = seen.token_requests.lock().unwrap().last().cloned().unwrap();
    assert!(
        !cc_request.1.iter().any(|(k, _)| k == "client_secret"),
        "the secret goes in the header, not the body"
    );
    let (status, answer) =
        server.call("POST", &format!("/sdk/proxy/{CC}/jobs"), &ann, Some(json!({"a": 1}))).await;
    assert_eq!((status, &answer["output"]["path"]), (200, &json!("/api/jobs")), "{answer}");

    // A catalog API key: the key goes where the catalog says (Authorization: Bearer {apiKey}).
    let (status, bad) = connect("sendgrid", json!({ "apiKey": "SG.bad-key" })).await;
    assert_eq!((status, bad["status"].as_str()), (200, Some("INVALID")), "{bad}");
    assert!(bad["statusReason"].as_str().unwrap().contains("/api/scopes"), "{bad}");
    let (status, good) = connect("sendgrid", json!({ "apiKey": "SG.good-key" })).await;
    assert_eq!((status, good["status"].as_str()), (200, Some("VALID")), "{good}");
    let (_, me) = server.call("GET", "/sdk/me", &ann, None).await;
    assert_eq!(me["integrations"]["sendgrid"]["enabled"], true, "{me}");
    assert_eq!(me["integrations"]["sendgrid"]["allCredentials"].as_array().unwrap().len(), 2);
    assert_eq!(me["integrations"]["sendgrid"]["credentialId"], good["id"]);

    // Uninstalling one account of several (`uninstallIntegration(type, {selectedCredentialId})`
    // names it in X-Paragon-Credential) keeps the others and the settings.
    let (_, listed) = server.call("GET", "/sdk/integrations", &ann, None).await;
    let integration_id = listed
        .as_array()
        .and_then(|all| all.iter().find(|i| i["type"] == "sendgrid"))
        .and_then(|i| i["id"].as_str())
        .expect("sendgrid is listed with its id")
        .to_string();
    let store = &server.state.store;
    let project = server.project.clone();
    store
        .put_settings(
            para_store::SettingsScope {
                project_id: &project,
                user_id: "ann",
                integration: "sendgrid",
                configuration: &para_store::SettingsKey::Integration,
                workflow_id: "",
            },
            None,
            Some(&json!({"k": "v"})),
        )
        .await
        .unwrap();
    let uninstall = |credential: Option<&str>| {
        let mut request = common::client()
            .delete(server.url(&format!("/sdk/integrations/{integration_id}")))
            .header("authorization", format!("Bearer {ann}"));
        if let Some(id) = credential {
            request = request.header("x-paragon-credential", id);
        }
        async move {
            let res = request.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, answer) = uninstall(Some(bad["id"].as_str().unwrap())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["removedCredentials"].as_i64(), answer["remainingCredentials"].as_i64()),
        (Some(1), Some(1))
    );
    let (_, me) = server.call("GET", "/sdk/me", &ann, None).await;
    let left = &me["integrations"]["sendgrid"];
    assert_eq!(left["allCredentials"].as_array().unwrap().len(), 1, "{me}");
    assert_eq!(
        (left["credentialId"].as_str(), left["enabled"].as_bool()),
        (good["id"].as_str(), Some(true))
    );
    assert_eq!(store.settings(&project, "ann").await.unwrap().len(), 1, "settings kept");
    // A credential that is not one of the user's accounts of this integration: nothing removed.
    let (status, answer) = uninstall(Some(&good["id"].as_str().unwrap().replace('-', ""))).await;
    assert_eq!(status, 404, "{answer}");
    let (status, _) = uninstall(Some(bad["id"].as_str().unwrap())).await;
    assert_eq!(status, 404, "already removed");
    // The last account goes with the settings.
    let (status, answer) = uninstall(Some(good["id"].as_str().unwrap())).await;
    assert_eq!((status, answer["remainingCredentials"].as_i64()), (200, Some(0)), "{answer}");
    assert!(store.settings(&project, "ann").await.unwrap().is_empty(), "settings cleared");
    let (_, me) = server.call("GET", "/sdk/me", &ann, None).await;
    assert_eq!(me["integrations"]["sendgrid"]["enabled"], false, "{me}");
    assert_eq!(me["integrations"]["sendgrid"]["allCredentials"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oauth_callback_needs_a_fresh_state_and_the_browser_that_started_it() {
    let (seen, provider_base) = provider().await;
    let client = OAuthClient {
        client_id: "notes-app".into(),
        client_secret: "notes-secret".into(),
        authorize_url: Some(format!("{provider_base}/authorize")),
        token_url: Some(format!("{provider_base}/token")),
        api_base_url: Some(format!("{provider_base}/api")),
        webhook_secret: None,
    };
    let server = TestServer::builder(build()).oauth_client(CODE, client).start().await;
    let state = &server.state;
    for user in ["ann", "bob"] {
        state.store.touch_user(PROJECT, user, None).await.unwrap();
    }
    let begin = |session: &'static str| async move {
        let url = para_server::connect::begin_oauth(
            state,
            "ann",
            CODE,
            para_server::connect::BeginOAuth {
                session_id: Some(session.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        url::Url::parse(&url).unwrap()
    };
    let cookie_of = |user: &'static str| async move {
        let set = para_server::oauth::bind_browser(state, user).await.unwrap();
        set.split(';').next().unwrap().to_string()
    };
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let callback = |state_param: String, cookie: Option<String>| {
        let mut r =
            http.get(format!("{}/oauth/callback?code=good-code&state={state_param}", server.base));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        async move {
            let res = r.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let param = |url: &url::Url, name: &str| {
        url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap()
    };

    // The authorize URL: our client, our callback, a state, an S256 challenge.
    let url = begin("s1").await;
    assert!(url.as_str().starts_with(&format!("{provider_base}/authorize?")));
    assert_eq!(param(&url, "client_id"), "notes-app");
    assert_eq!(param(&url, "redirect_uri"), format!("{}/oauth/callback", server.base));
    assert_eq!(param(&url, "code_challenge_method"), "S256");

    // Without the cookie of the browser that started it: refused, and the state is spent.
    let (status, page) = callback(param(&url, "state"), None).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("did not start the connection"), "{page}");
    let (status, page) = callback(param(&url, "state"), Some(cookie_of("ann").await)).await;
    assert_eq!(status, 400);
    assert!(page.contains("expired or was already used"), "{page}");

    // Another user's browser: refused.
    let url = begin("s2").await;
    let (status, _) = callback(param(&url, "state"), Some(cookie_of("bob").await)).await;
    assert_eq!(status, 400);
    let ann = token("ann");
    let (_, s2) = server.call("GET", "/sdk/actions/session-id/s2", &ann, None).await;
    assert!(s2["connectCredentialId"].is_null() && s2["error"].is_string(), "{s2}");

    // The right browser: connected; the PKCE verifier matches the challenge; replay refused.
    let url = begin("s3").await;
    let before = seen.token_requests.lock().unwrap().len();
    let (status, page) = callback(param(&url, "state"), Some(cookie_of("ann").await)).await;
    assert_eq!(status, 200, "{page}");
    let requests = seen.token_requests.lock().unwrap().clone();
    assert_eq!(requests.len(), before + 1, "one code exchange");
    let form = &requests.last().unwrap().1;
    let verifier = form.iter().find(|(k, _)| k == "code_verifier").map(|(_, v)| v.clone()).unwrap();
    use sha2::Digest as _;
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&verifier));
    assert_eq!(challenge, param(&url, "code_challenge"));
    let (_, s3) = server.call("GET", "/sdk/actions/session-id/s3", &ann, None).await;
    let id =
        s3["connectCredentialId"].as_str().expect("the session names the credential").to_string();
    let (_, c) = server.call("GET", &format!("/sdk/credentials/{id}"), &ann, None).await;
    assert_eq!(c["status"], "VALID", "{c}");
    // Bob cannot read Ann's session.
    let (_, other) = server.call("GET", "/sdk/actions/session-id/s3", &token("bob"), None).await;
    assert_eq!(other, json!({}));
    let (status, _) = callback(param(&url, "state"), Some(cookie_of("ann").await)).await;
    assert_eq!(status, 400, "a replayed callback is refused");
    assert_eq!(seen.token_requests.lock().unwrap().len(), before + 1, "and exchanges nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_offers_the_providers_choices_for_integration_specific_settings() {
    let (_seen, provider_base) = provider().await;
    let slack = OAuthClient {
        client_id: "slack-app".into(),
        client_secret: "slack-secret".into(),
        api_base_url: Some(format!("{provider_base}/api")),
        ..OAuthClient::default()
    };
    let server = TestServer::builder(build()).oauth_client("slack", slack).start().await;
    let state = &server.state;
    state.store.touch_user(PROJECT, "ann", None).await.unwrap();
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let portal = format!("{}/projects/{PROJECT}/portal/slack", server.base);
    // The token is handed over once and becomes a cookie.
    let handover = http.get(format!("{portal}?token={}", token("ann"))).send().await.unwrap();
    let cookie =
        handover.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let page = || async {
        let res = http.get(&portal).header("cookie", &cookie).send().await.unwrap();
        res.text().await.unwrap()
    };
    // Not connected: a text box.
    let before = page().await;
    assert!(!before.contains("C01"), "no choices before connecting");

    let connector = para_server::connector::Connector::of(state, "slack").unwrap();
    let token_answer = json!({ "access_token": "xoxb-slack", "token_type": "bot" });
    let c = para_server::connect::store_connection(
        state,
        "ann",
        &connector,
        para_server::connector::Material::default(),
        token_answer.as_object().unwrap().clone(),
    )
    .await
    .unwrap();
    assert_eq!(c.status, para_store::CredentialStatus::Valid, "{:?}", c.status_reason);
    let after = page().await;
    assert!(after.contains(r#"<option value="C01">general</option>"#), "{after}");
    assert!(
        after.contains("&lt;b&gt;sales") && !after.contains("<b>sales"),
        "labels are escaped: {after}"
    );

    // The same choices through the SDK's getFieldOptions (what the SDK iframe's portal, /ui,
    // asks for).
    let ask = json!({ "action": "slack", "sourceKey": "channel", "parameters": [],
                      "paginationParameters": { "pageCursor": 0 } });
    let (status, body) =
        server.call("POST", "/sdk/actions", &token("ann"), Some(ask.clone())).await;
    assert_eq!(status, 200, "{body}");
    let options = body["output"]["records"].as_array().expect("{body}");
    assert!(options.contains(&json!({ "label": "general", "value": "C01" })), "{body}");
    // Someone without a Slack account gets a reason, not Ann's choices.
    let (status, body) = server.call("POST", "/sdk/actions", &token("bob"), Some(ask)).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("not_connected")), "{body}");
    assert!(!body.to_string().contains("C01"));
}

/// A user whose token carries no `plan` stores one with `PATCH /sdk/me` (as the SDK's
/// `setUserMetadata` does): by default (Paragon's User Metadata) permissions read it; with
/// `PARA_PERMISSIONS_METADATA=token` they read only the signed token, so the pro-only
/// workflow stays out of reach, in the list, on enabling and for runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_token_only_metadata_permissions_ignore_what_a_client_stored() {
    let (_seen, provider_base) = provider().await;
    let mut doc = serde_json::to_value(build()).unwrap();
    let pro_only = json!({ "or": [[{ "operator": "$stringExactlyMatches", "operands": [
        { "type": "PERSONA_METADATA", "path": ["plan"] }, { "type": "VALUE", "value": "pro" } ] }]] });
    doc["integrations"][ROPC]["workflows"] = json!({ "w-pro": {
        "id": "w-pro", "name": "Pro only", "description": null, "order": 0, "defaultEnabled": false,
        "hidden": false, "inputs": [], "source": "w.ts", "trigger": null, "steps": [],
        "permissions": pro_only } });
    let client = OAuthClient {
        token_url: Some(format!("{provider_base}/token")),
        api_base_url: Some(format!("{provider_base}/api")),
        ..OAuthClient::default()
    };
    for strict in [false, true] {
        let limits = para_server::limits::Limits {
            permissions_from_token_only: strict,
            ..Default::default()
        };
        let server = TestServer::builder(serde_json::from_value(doc.clone()).unwrap())
            .oauth_client(ROPC, client.clone())
            .limits(limits)
            .start()
            .await;
        let fred = token("fred");
        let body = json!({ "integrationId": ROPC, "payload": { "username": "ann", "password": "s3cret" } });
        let (status, _) = server.call("POST", "/sdk/credentials", &fred, Some(body)).await;
        assert_eq!(status, 200);
        let (status, _) = server
            .call("PATCH", "/sdk/me", &fred, Some(json!({ "meta": { "plan": "pro" } })))
            .await;
        assert_eq!(status, 200);
        let (status, answer) = server.call("POST", "/sdk/workflows/w-pro", &fred, None).await;
        if strict {
            assert_eq!(status, 422, "{answer}");
            assert_eq!(answer["code"], "no_permission");
        } else {
            assert_eq!(status, 200, "{answer}");
        }
    }
}

/// Tokens valid for longer than the server allows (or issued in the future) are refused with
/// a reason; a credential takes at most the configured number of configurations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_lifetime_and_configurations_per_credential_are_bounded() {
    let (_seen, provider_base) = provider().await;
    let client = OAuthClient {
        token_url: Some(format!("{provider_base}/token")),
        api_base_url: Some(format!("{provider_base}/api")),
        ..OAuthClient::default()
    };
    let limits = para_server::limits::Limits {
        max_token_lifetime: Some(std::time::Duration::from_secs(86_400)),
        max_configurations_per_credential: 2,
        ..Default::default()
    };
    let server =
        TestServer::builder(build()).oauth_client(ROPC, client).limits(limits).start().await;
    let pem = para_auth::keys::load_private_key(common::keys_root()).unwrap();
    let long = para_auth::Claims::new("lou", std::time::Duration::from_secs(7 * 86_400));
    let long = para_auth::sign(&pem, &long).unwrap();
    let (status, refused) = server.call("GET", "/sdk/me", &long, None).await;
    assert_eq!(status, 401, "{refused}");
    assert!(refused.to_string().contains("valid for at most 1 day"), "{refused}");
    let future = para_auth::tokens::sign_at(
        &pem,
        &para_auth::Claims::new("lou", std::time::Duration::from_secs(3600)),
        para_auth::tokens::now() + 7200,
    )
    .unwrap();
    assert_eq!(server.call("GET", "/sdk/me", &future, None).await.0, 401);

    let ann = token("ann");
    let body =
        json!({ "integrationId": ROPC, "payload": { "username": "ann", "password": "s3cret" } });
    let (status, credential) = server.call("POST", "/sdk/credentials", &ann, Some(body)).await;
    assert_eq!(status, 200);
    let path = format!("/sdk/credentials/{}/configurations", credential["id"].as_str().unwrap());
    for _ in 0..2 {
        assert_eq!(server.call("POST", &path, &ann, None).await.0, 200);
    }
    let (status, refused) = server.call("POST", &path, &ann, None).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["code"], "too_many_configurations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_permissions_follow_the_users_metadata() {
    let (_seen, provider_base) = provider().await;
    let mut doc = serde_json::to_value(build()).unwrap();
    let workflow = |id: &str, name: &str, permissions: Value| {
        json!({ "id": id, "name": name, "description": null, "order": 0, "defaultEnabled": false,
                "hidden": false, "inputs": [], "source": "w.ts", "trigger": null, "steps": [],
                "permissions": permissions })
    };
    let pro_only = json!({ "or": [[{ "operator": "$stringExactlyMatches", "operands": [
        { "type": "PERSONA_METADATA", "path": ["plan"] }, { "type": "VALUE", "value": "pro" } ] }]] });
    doc["integrations"][ROPC]["workflows"] = json!({
        "w-open": workflow("w-open", "Everyone", Value::Null),
        "w-pro": workflow("w-pro", "Pro only", pro_only),
    });
    let client = OAuthClient {
        token_url: Some(format!("{provider_base}/token")),
        api_base_url: Some(format!("{provider_base}/api")),
        ..OAuthClient::default()
    };
    let server = TestServer::builder(serde_json::from_value(doc).unwrap())
        .oauth_client(ROPC, client)
        .start()
        .await;
    let pem = para_auth::keys::load_private_key(common::keys_root()).unwrap();
    let with_plan = |user: &str, plan: &str| {
        let mut claims = para_auth::Claims::new(user, std::time::Duration::from_secs(3600));
        claims.meta = Some(json!({ "plan": plan }));
        para_auth::sign(&pem, &claims).unwrap()
    };
    let (pro, free) = (with_plan("pat", "pro"), with_plan("fred", "free"));
    let listed = |answer: &Value, field: &str| -> Vec<String> {
        let entry = answer
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["customIntegration"]["slug"] == ROPC)
            .unwrap();
        entry[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.get("id").unwrap_or(w).as_str().unwrap().to_string())
            .collect()
    };
    let (_, for_pro) = server.call("GET", "/sdk/integrations", &pro, None).await;
    assert_eq!(listed(&for_pro, "workflows"), ["w-open", "w-pro"]);
    let (_, for_free) = server.call("GET", "/sdk/integrations", &free, None).await;
    assert_eq!(listed(&for_free, "workflows"), ["w-open"]);
    assert_eq!(listed(&for_free, "noPermissionWorkflows"), ["w-pro"]);

    for (bearer, user) in [(&pro, "pat"), (&free, "fred")] {
        let body = json!({ "integrationId": ROPC, "payload": { "username": "ann", "password": "s3cret" } });
        let (status, c) = server.call("POST", "/sdk/credentials", bearer, Some(body)).await;
        assert_eq!((status, c["status"].as_str()), (200, Some("VALID")), "{user}: {c}");
    }
    assert_eq!(server.call("POST", "/sdk/workflows/w-pro", &pro, None).await.0, 200);
    let (status, refused) = server.call("POST", "/sdk/workflows/w-pro", &free, None).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["code"], "no_permission");
    assert_eq!(server.call("POST", "/sdk/workflows/w-open", &free, None).await.0, 200);
}
