//! Connect API answers of SDK methods beyond the install flow (issue 19): user metadata with a
//! token that carries `meta` (`setUserMetadata`, `authenticate(…, {metadata})`), `getTriggers`,
//! API resources (`/sdk/me`'s `resources`, `connectAction`), the URL
//! `getCustomWebhookUserManualUrl` forms, and the JSON + CORS answers of paths, methods and
//! bodies no handler takes (what a browser would otherwise report as "Failed to fetch").

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::common::{self, TestServer, client, token};

const ORIGIN: &str = "https://app.example";

/// A user token carrying `meta`, valid for `ttl` (distinct lifetimes give distinct tokens).
fn token_with_meta(user: &str, meta: Value, ttl: u64) -> String {
    let pem = para_auth::keys::load_private_key(common::keys_root()).unwrap();
    let mut claims = para_auth::Claims::new(user, Duration::from_secs(ttl));
    claims.meta = Some(meta);
    para_auth::sign(&pem, &claims).unwrap()
}

/// A request as the SDK in a page of another origin sends it: status, headers, JSON body.
async fn from_page(
    method: &str,
    url: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> (u16, HeaderMap, Value) {
    let mut r = client()
        .request(method.parse().unwrap(), url)
        .header("origin", ORIGIN)
        .header("content-type", "application/json");
    if let Some(t) = bearer {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        r = r.body(b.to_string());
    }
    let res = r.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| {
        panic!("{method} {url} answered {status} with a body that is not JSON: {text:?}")
    });
    (status, headers, body)
}

/// The API's error shape, readable by the page.
fn assert_api_error(status: u16, headers: &HeaderMap, body: &Value, want: u16) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["status"], want, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["code"].is_string(), "{body}");
    assert_eq!(headers["access-control-allow-origin"], ORIGIN, "{body}");
}

/// docs/connect-sdk.md § 3: a patch's keys survive the same token verified again (the SDK's
/// next `/sdk/me` after `setUserMetadata`), and a new token survives too unless it changes a
/// claim, which then wins for that key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patched_metadata_survives_the_token_and_a_changed_claim_wins() {
    let s = TestServer::builder(common::build("p-meta", json!({}))).sqlite_file().start().await;
    let claims = json!({ "plan": "pro", "team": "a" });
    let first = token_with_meta("ann", claims.clone(), 3600);
    let (status, me) = s.call("GET", "/sdk/me", &first, None).await;
    assert_eq!((status, &me["meta"]), (200, &claims), "{me}");

    let patch = json!({ "meta": { "Name": "Ann", "plan": "trial" } });
    let (status, me) = s.call("PATCH", "/sdk/me", &first, Some(patch)).await;
    let merged = json!({ "Name": "Ann", "plan": "trial", "team": "a" });
    assert_eq!((status, &me["meta"]), (200, &merged), "{me}");
    // The patch forgot the cached user: this verifies the token again.
    let (_, me) = s.call("GET", "/sdk/me", &first, None).await;
    assert_eq!(me["meta"], merged, "re-authenticating with the same token keeps the patch");
    // A fresh token with the same claims (the app signs one per page load).
    let again = token_with_meta("ann", claims.clone(), 3500);
    assert_ne!(again, first);
    let (_, me) = s.call("GET", "/sdk/me", &again, None).await;
    assert_eq!(me["meta"], merged, "a new token saying the same keeps the patch");
    // The app's backend changed a claim: that claim wins, the other patched keys stay.
    let moved = token_with_meta("ann", json!({ "plan": "pro", "team": "b" }), 3400);
    let (_, me) = s.call("GET", "/sdk/me", &moved, None).await;
    assert_eq!(me["meta"], json!({ "Name": "Ann", "plan": "trial", "team": "b" }));
    // Another user's patch reaches only their own metadata.
    let bob = token_with_meta("bob", json!({ "plan": "free" }), 3600);
    let (status, _) =
        s.call("PATCH", "/sdk/me", &bob, Some(json!({ "meta": { "team": "x" } }))).await;
    assert_eq!(status, 200);
    let (_, me) = s.call("GET", "/sdk/me", &moved, None).await;
    assert_eq!(me["meta"]["team"], "b");
}

/// Bad patches are refused with the API's error shape and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_metadata_patches_answer_json_errors() {
    let s = TestServer::builder(common::build("p-meta-bad", json!({}))).sqlite_file().start().await;
    let ann = token_with_meta("ann", json!({ "plan": "pro" }), 3600);
    let url = s.url("/sdk/me");
    let (status, headers, body) = from_page("PATCH", &url, None, Some(r#"{"meta":{"a":1}}"#)).await;
    assert_api_error(status, &headers, &body, 401);
    for (bad, want) in [
        (r#"{"meta":["a"]}"#, 400),
        (r#"{"meta":"x"}"#, 400),
        (r#"{"meta":{"a":1}"#, 400),
        (r#"{"other":{}}"#, 422),
        ("", 400),
    ] {
        let (status, headers, body) = from_page("PATCH", &url, Some(&ann), Some(bad)).await;
        assert_api_error(status, &headers, &body, want);
    }
    let large = json!({ "meta": { "blob": "x".repeat(70 * 1024) } }).to_string();
    let (status, headers, body) = from_page("PATCH", &url, Some(&ann), Some(&large)).await;
    assert_api_error(status, &headers, &body, 413);
    assert_eq!(body["code"], "meta_too_large");
    let huge = json!({ "meta": { "blob": "x".repeat(3 * 1024 * 1024) } }).to_string();
    let (status, headers, body) = from_page("PATCH", &url, Some(&ann), Some(&huge)).await;
    assert_api_error(status, &headers, &body, 413);
    // Without `Content-Type: application/json`.
    let res = client()
        .patch(&url)
        .header("origin", ORIGIN)
        .header("authorization", format!("Bearer {ann}"))
        .body(r#"{"meta":{"a":1}}"#)
        .send()
        .await
        .unwrap();
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    let body: Value = res.json().await.unwrap();
    assert_api_error(status, &headers, &body, 415);
    let (_, me) = s.call("GET", "/sdk/me", &ann, None).await;
    assert_eq!(me["meta"], json!({ "plan": "pro" }), "nothing was written");
}

/// Paths no route serves, methods a route does not serve and preflights of any API path answer
/// with CORS and a JSON body; requests without an origin get the JSON without CORS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_answer_json_with_cors() {
    let s = TestServer::builder(common::build("p-404", json!({}))).sqlite_file().start().await;
    let ann = token("ann");
    for path in [s.url("/nothing/here"), format!("{}/nope", s.base), s.url("/sdk/me/extra")] {
        let (status, headers, body) = from_page("GET", &path, Some(&ann), None).await;
        assert_api_error(status, &headers, &body, 404);
        assert!(body["message"].as_str().unwrap().contains("no route `GET"), "{body}");
        let pre = client()
            .request(reqwest::Method::OPTIONS, &path)
            .header("origin", ORIGIN)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .unwrap();
        assert_eq!(pre.status(), 204, "{path}");
        assert_eq!(pre.headers()["access-control-allow-origin"], ORIGIN);
    }
    let (status, headers, body) = from_page("PUT", &s.url("/sdk/me"), Some(&ann), None).await;
    assert_api_error(status, &headers, &body, 405);
    assert_eq!(body["code"], "method_not_allowed");
    let allow = headers["allow"].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("PATCH"), "{allow}");
    let (status, headers, body) =
        from_page("DELETE", &format!("{}/healthz", s.base), None, None).await;
    assert_api_error(status, &headers, &body, 405);
    // An extractor's rejection (a query string that does not parse) is JSON too.
    let twice = format!("{}/projects/{}/triggers?integrations=a&integrations=b", s.base, s.project);
    let (status, headers, body) = from_page("GET", &twice, Some(&ann), None).await;
    assert_api_error(status, &headers, &body, 400);
    assert!(body["message"].as_str().unwrap().contains("integrations"), "{body}");
    // Without an origin: JSON, no CORS headers.
    let res = client().get(format!("{}/nope", s.base)).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    // The pages keep their own answers (no CORS), but a wrong method is JSON too.
    let res = client().post(format!("{}/ui", s.base)).header("origin", ORIGIN).send().await;
    let res = res.unwrap();
    assert_eq!(res.status(), 405);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "method_not_allowed");
}

fn catalog(key: &str, name: &str, active: bool) -> Value {
    json!({
        "key": key, "kind": "catalog", "name": name, "source": format!("src/integrations/{key}"),
        "config": { "description": null, "overview": null, "showWatermark": true, "active": active,
                    "workflowDisplayOrder": [] },
        "inputs": [], "workflows": {}, "customTriggers": {}
    })
}

fn triggers_build() -> para_build::Build {
    let mut custom = common::custom("custom.shop", "basic", json!({ "type": "none" }), Value::Null);
    custom["customTriggers"] = json!({ "ct-order": {
        "id": "ct-order", "name": "Order shipped", "description": "An order left the warehouse.",
        "level": "user", "setup": "manual", "filters": null, "providerId": null,
        "samplePayload": null, "source": "src/integrations/custom.shop/triggers/orderShipped.ts",
    } });
    common::build(
        "p-triggers",
        json!({
            "gmail": catalog("gmail", "Gmail", true),
            "activecampaign": catalog("activecampaign", "ActiveCampaign", true),
            "slack": catalog("slack", "Slack", false),
            "custom.shop": custom,
        }),
    )
}

/// `getTriggers(type)`: the catalog's polling and webhook triggers and the project's custom
/// triggers, in `GetTriggerTypesResponse`'s shape; names the project does not serve are in
/// `errors`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_types_are_served_in_the_sdks_shape() {
    let s = TestServer::builder(triggers_build()).sqlite_file().start().await;
    let ann = token("ann");
    let url = |q: &str| format!("{}/projects/{}/triggers?integrations={q}", s.base, s.project);
    let (status, headers, body) = from_page("GET", &url("gmail"), Some(&ann), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["access-control-allow-origin"], ORIGIN);
    assert!(body.get("errors").is_none(), "{body}");
    let gmail = body["triggers"]["gmail"].as_array().unwrap();
    assert_eq!(body["triggers"].as_object().unwrap().len(), 1);
    let search = gmail
        .iter()
        .find(|t| t["type"] == "GMAIL_TRIGGER_NEW_EMAIL_MATCHING_SEARCH")
        .expect("the search trigger");
    assert_eq!(search["triggerModel"], "POLLING");
    assert_eq!(search["title"], "New email matching search");
    assert!(search["description"].is_string());
    assert_eq!(
        search["parameters"],
        json!([{ "id": "query", "title": "Query", "type": "TEXT", "required": true,
                 "subtitle": "Gmail search syntax, e.g. `from:billing@acme.com`" }])
    );
    for t in gmail {
        for key in ["type", "triggerModel", "title", "description"] {
            assert!(t[key].is_string(), "{key} of {t}");
        }
        assert!(t["parameters"].is_array(), "{t}");
    }

    let (_, _, body) =
        from_page("GET", &url("activecampaign,custom.shop,slack,nope"), Some(&ann), None).await;
    let webhook = &body["triggers"]["activecampaign"][0];
    assert_eq!(webhook["triggerModel"], "WEBHOOK", "{body}");
    assert_eq!(webhook["parameters"][0]["required"], false);
    assert_eq!(
        body["triggers"]["custom.shop"],
        json!([{ "type": "ct-order", "triggerModel": "WEBHOOK", "title": "Order shipped",
                 "description": "An order left the warehouse.", "parameters": [] }])
    );
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{body}");
    assert_eq!(errors[0]["type"], "slack", "inactive");
    assert_eq!(errors[1]["type"], "nope");
    assert!(errors[1]["message"].as_str().unwrap().contains("no integration `nope`"));
    assert!(body["triggers"].get("slack").is_none());

    // No token, another project's path, too many names.
    let (status, headers, body) = from_page("GET", &url("gmail"), None, None).await;
    assert_api_error(status, &headers, &body, 401);
    let other = format!("{}/projects/other/triggers?integrations=gmail", s.base);
    let (status, headers, body) = from_page("GET", &other, Some(&ann), None).await;
    assert_api_error(status, &headers, &body, 401);
    let many = vec!["gmail"; 101].join(",");
    let (status, headers, body) = from_page("GET", &url(&many), Some(&ann), None).await;
    assert_api_error(status, &headers, &body, 400);
}

/// The URL `getCustomWebhookUserManualUrl` forms, for an integration or trigger the project
/// does not have, answers why in JSON with CORS (its successes: `webhooks.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_custom_webhook_url_answers_a_clear_error() {
    let s = TestServer::builder(triggers_build()).sqlite_file().start().await;
    let url = format!(
        "{}/triggers/connect/{}/3f1e0c3b-0000-4000-8000-000000000000/custom-triggers/undefined?id=c1",
        s.base, s.project
    );
    for method in ["GET", "POST"] {
        let (status, headers, body) = from_page(method, &url, None, Some("{}")).await;
        assert_api_error(status, &headers, &body, 404);
        assert_eq!(body["code"], "not_found");
        assert!(body["message"].as_str().unwrap().contains("no integration"), "{body}");
    }
    let other = url.replace(&format!("/connect/{}/", s.project), "/connect/other/");
    let (status, headers, body) = from_page("POST", &other, None, Some("{}")).await;
    assert_api_error(status, &headers, &body, 404);
}

const CRM: &str = "f00dbabe-0000-4000-8000-000000000001";
const WAREHOUSE: &str = "f00dbabe-0000-4000-8000-000000000002";
const BARE: &str = "f00dbabe-0000-4000-8000-000000000003";

/// A loopback API: `GET /api/me` answers 200 to `X-Api-Key: good`, 401 otherwise.
async fn crm_api() -> String {
    async fn me(headers: HeaderMap) -> (StatusCode, &'static str) {
        if headers.get("x-api-key").is_some_and(|v| v == "good") {
            (StatusCode::OK, r#"{"id":"acct-1"}"#)
        } else {
            (StatusCode::UNAUTHORIZED, r#"{"error":"bad key"}"#)
        }
    }
    let app = axum::Router::new().route("/api/me", axum::routing::get(me));
    common::serve(app).await
}

fn resources_build(api_base: &str) -> para_build::Build {
    let mut doc = serde_json::to_value(common::build("p-resources", json!({}))).unwrap();
    doc["resources"] = json!({
        CRM: {
            "id": CRM, "name": "Internal CRM", "level": "user", "source": "src/resources/crm/config.ts",
            "configs": {
                "authorizationConfig": { "type": "VALUE", "value": { "type": "api_key", "userInputs": ["apiKey"] } },
                "requestConfig": { "type": "OBJECT", "entries": [
                    { "key": "apiBaseUrl", "source": { "type": "VALUE", "value": format!("{api_base}/api") } },
                    { "key": "authentication", "source": { "type": "OBJECT", "entries": [
                        { "key": "type", "source": { "type": "VALUE", "value": "auth_header" } },
                        { "key": "headers", "source": { "type": "OBJECT", "entries": [
                            { "key": "X-Api-Key", "source": { "type": "TOKENIZED", "parts": [
                                { "type": "RESOURCE_INPUT", "key": "apiKey" } ] } } ] } } ] } } ] },
                "testRequestConfig": { "type": "VALUE", "value": { "url": "/me", "method": "GET", "params": {}, "headers": {} } }
            }
        },
        WAREHOUSE: { "id": WAREHOUSE, "name": "Warehouse", "level": "app",
                     "source": "src/resources/warehouse/config.ts", "configs": {} },
        BARE: { "id": BARE, "name": "Bare", "level": "user", "source": "src/resources/bare/config.ts",
                "configs": { "requestConfig": { "type": "VALUE", "value": { "apiBaseUrl": "https://bare.example" } } } },
    });
    serde_json::from_value(doc).unwrap()
}

/// `/sdk/me` lists the project's resources as `SDKResourceState`; `connectAction` stores the
/// resource's inputs as a credential of it, tested against its test request, one per user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_are_listed_and_connected_with_their_inputs() {
    let api = crm_api().await;
    let s = TestServer::builder(resources_build(&api)).sqlite_file().start().await;
    let ann = token("ann");
    let (_, me) = s.call("GET", "/sdk/me", &ann, None).await;
    let resources = me["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 3, "{me}");
    let crm = resources.iter().find(|r| r["id"] == CRM).unwrap();
    assert_eq!(crm["slug"], "crm");
    assert!(crm["integrationId"].is_string());
    assert!(crm.get("credentialId").is_none());

    let connect = format!("/sdk/resources/{CRM}/connect");
    let (status, credential) =
        s.call("POST", &connect, &ann, Some(json!({ "apiKey": "good" }))).await;
    assert_eq!(status, 200, "{credential}");
    assert_eq!(credential["status"], "VALID", "{credential}");
    assert!(credential["configurations"].is_array());
    assert!(!credential.to_string().contains("good"), "the input is never sent back");
    let stored = s.state.store.credential(&s.project, "ann", credential["id"].as_str().unwrap());
    let stored = stored.await.unwrap().unwrap();
    assert!(stored.secret.starts_with("v1:") && !stored.secret.contains("good"));
    let (_, me) = s.call("GET", "/sdk/me", &ann, None).await;
    let crm = me["resources"].as_array().unwrap().iter().find(|r| r["id"] == CRM).unwrap().clone();
    assert_eq!(crm["credentialId"], credential["id"]);
    assert_eq!(crm["credentialStatus"], "VALID");
    // Another user sees the resource, not Ann's credential.
    let (_, me) = s.call("GET", "/sdk/me", &token("bob"), None).await;
    let bobs = me["resources"].as_array().unwrap().iter().find(|r| r["id"] == CRM).unwrap().clone();
    assert!(bobs.get("credentialId").is_none(), "{bobs}");

    // A key the API refuses: stored INVALID with the reason, replacing the earlier one.
    let (status, refused) = s.call("POST", &connect, &ann, Some(json!({ "apiKey": "bad" }))).await;
    assert_eq!((status, &refused["status"]), (200, &json!("INVALID")), "{refused}");
    assert!(refused["statusReason"].as_str().unwrap().contains("401"), "{refused}");
    let (_, me) = s.call("GET", "/sdk/me", &ann, None).await;
    let crm = me["resources"].as_array().unwrap().iter().find(|r| r["id"] == CRM).unwrap().clone();
    assert_eq!(
        (&crm["credentialId"], &crm["credentialStatus"]),
        (&refused["id"], &json!("INVALID"))
    );
    assert!(
        s.state
            .store
            .credential(&s.project, "ann", credential["id"].as_str().unwrap())
            .await
            .unwrap()
            .is_none()
    );

    // What an attacker or a slip sends.
    let url = s.url(&connect);
    for (bad, want) in [
        (r#"{}"#, 400),
        (r#"{"apiKey":""}"#, 400),
        (r#"{"apiKey":7}"#, 400),
        (r#"{"apiKey":"good","admin":true}"#, 400),
        (r#"["good"]"#, 400),
        (r#"{"apiKey":"#, 400),
    ] {
        let (status, headers, body) = from_page("POST", &url, Some(&ann), Some(bad)).await;
        assert_api_error(status, &headers, &body, want);
    }
    let long = json!({ "apiKey": "k".repeat(5000) }).to_string();
    let (status, headers, body) = from_page("POST", &url, Some(&ann), Some(&long)).await;
    assert_api_error(status, &headers, &body, 400);
    let (status, headers, body) = from_page("POST", &url, None, Some(r#"{"apiKey":"good"}"#)).await;
    assert_api_error(status, &headers, &body, 401);
    let other = format!("{}/projects/other/sdk/resources/{CRM}/connect", s.base);
    let (status, headers, body) = from_page("POST", &other, Some(&ann), Some("{}")).await;
    assert_api_error(status, &headers, &body, 401);
    let unknown = s.url("/sdk/resources/nope/connect");
    let (status, headers, body) = from_page("POST", &unknown, Some(&ann), Some("{}")).await;
    assert_api_error(status, &headers, &body, 404);
    let app = s.url(&format!("/sdk/resources/{WAREHOUSE}/connect"));
    let (status, headers, body) = from_page("POST", &app, Some(&ann), Some("{}")).await;
    assert_api_error(status, &headers, &body, 400);
    assert!(body["message"].as_str().unwrap().contains("app-level"), "{body}");
    let bare = s.url(&format!("/sdk/resources/{BARE}/connect"));
    let (status, headers, body) = from_page("POST", &bare, Some(&ann), Some("{}")).await;
    assert_api_error(status, &headers, &body, 422);
    assert!(body["message"].as_str().unwrap().contains("userInputs"), "{body}");
    // Still only the one credential of Ann's.
    let (_, me) = s.call("GET", "/sdk/me", &ann, None).await;
    let crm = me["resources"].as_array().unwrap().iter().find(|r| r["id"] == CRM).unwrap().clone();
    assert_eq!(crm["credentialId"], refused["id"]);
}
