//! Connect API answers of SDK methods beyond the install flow (issue 19): user metadata with a
//! token that carries `meta` (`setUserMetadata`, `authenticate(…, {metadata})`), `getTriggers`,
//! API resources (`/sdk/me`'s `resources`, `connectAction`), the URL
//! `getCustomWebhookUserManualUrl` forms, and the JSON + CORS answers of paths, methods and
//! bodies no handler takes (what a browser would otherwise report as "Failed to fetch").

mod common;

use std::time::Duration;

use axum::http::HeaderMap;
use common::client;
use serde_json::{Value, json};

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
    let (_dir, s) = common::start_fresh(common::build("p-meta", json!({}))).await;
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
