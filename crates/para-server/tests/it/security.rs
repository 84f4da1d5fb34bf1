//! Security properties of the Connect API over real HTTP, with real loopback servers standing
//! for the provider: token checks (forged, `alg: none`, HS256 signed with the public key,
//! expired, wrong project), one user against another, secrets sealed at rest, proxy paths
//! that try to leave the API base, and one token refresh for many concurrent requests — also
//! across two servers sharing one database.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{any, post};
use base64::Engine as _;
use para_server::{AppState, OAuthClient};
use serde_json::{Value, json};

use crate::common::{self, TestServer, client, keys_root, token};

const PROJECT: &str = "p-sec";
const BASIC: &str = "custom.vault";
const OAUTH: &str = "custom.tasks";
const PASSWORD: &str = "pw-PLAINTEXT-7f3a9c";
const REFRESH_TOKEN: &str = "RT-PLAINTEXT-51e0b2";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn build() -> para_build::Build {
    let credential = |name: &str| json!({ "type": "CREDENTIAL", "path": [name] });
    common::build(
        PROJECT,
        json!({
            BASIC: common::custom(BASIC, "basic", json!({ "type": "basic",
                "username": credential("username"), "password": credential("password") }), Value::Null),
            OAUTH: common::custom(OAUTH, "oauth", json!({ "type": "bearer",
                "token": credential("oauthAccessToken") }), Value::Null),
        }),
    )
}

/// The provider: a token endpoint that counts refresh grants (slowly, so requests overlap)
/// and an API that accepts only the current access token or the basic credentials.
#[derive(Default)]
struct Provider {
    refreshes: AtomicUsize,
    api_calls: AtomicUsize,
    paths: std::sync::Mutex<Vec<String>>,
}

async fn token_endpoint(State(p): State<Arc<Provider>>, body: String) -> (StatusCode, String) {
    let form: Vec<(String, String)> =
        form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("grant_type").as_deref() != Some("refresh_token")
        || get("refresh_token").as_deref() != Some(REFRESH_TOKEN)
    {
        return (StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}).to_string());
    }
    let n = p.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(Duration::from_millis(300)).await;
    (
        StatusCode::OK,
        json!({ "access_token": format!("AT-{n}"), "token_type": "Bearer", "expires_in": 3600 })
            .to_string(),
    )
}

async fn api(
    State(p): State<Arc<Provider>>,
    uri: Uri,
    headers: HeaderMap,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    const JSON: [(&str, &str); 1] = [("content-type", "application/json")];
    p.api_calls.fetch_add(1, Ordering::SeqCst);
    p.paths.lock().unwrap().push(uri.to_string());
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("ann:{PASSWORD}"))
    );
    let current = format!("Bearer AT-{}", p.refreshes.load(Ordering::SeqCst));
    if auth == basic || (auth == current && auth != "Bearer AT-0") {
        (StatusCode::OK, JSON, json!({ "ok": true, "path": uri.path() }).to_string())
    } else {
        (StatusCode::UNAUTHORIZED, JSON, json!({ "error": "bad token" }).to_string())
    }
}

async fn provider() -> (Arc<Provider>, String) {
    let p = Arc::new(Provider::default());
    let app = axum::Router::new()
        .route("/token", post(token_endpoint))
        .route("/api/{*rest}", any(api))
        .with_state(p.clone());
    (p, common::serve(app).await)
}

/// The build served on `database`, both integrations' provider at `provider_base`.
async fn start(database: &str, provider_base: &str) -> TestServer {
    let client = OAuthClient {
        client_id: "client".into(),
        client_secret: "client-secret".into(),
        token_url: Some(format!("{provider_base}/token")),
        api_base_url: Some(format!("{provider_base}/api")),
        ..OAuthClient::default()
    };
    TestServer::builder(build())
        .database(database)
        .oauth_client(BASIC, client.clone())
        .oauth_client(OAUTH, client)
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_that_are_not_the_companys_are_refused() {
    let (_p, provider_base) = provider().await;
    let server = start("sqlite::memory:", &provider_base).await;
    let good = token("ann");
    assert_eq!(server.call("GET", "/sdk/me", &good, None).await.0, 200);

    // Signed by another key.
    let other = tempfile::tempdir().unwrap();
    para_auth::generate_dev_keys(other.path()).unwrap();
    let pem = para_auth::keys::load_private_key(other.path()).unwrap();
    let forged =
        para_auth::sign(&pem, &para_auth::Claims::new("ann", Duration::from_secs(3600))).unwrap();
    // The right header and payload with a flipped signature byte.
    let mut tampered = good.clone().into_bytes();
    let last = tampered.len() - 5;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    // alg none, and HS256 keyed with the public key (the classic confusion attack).
    let exp = para_auth::tokens::now() + 3600;
    let payload = b64(json!({ "sub": "ann", "exp": exp }).to_string().as_bytes());
    let none = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
    let public_pem = std::fs::read(keys_root().join(".para/keys/public.pem")).unwrap();
    let hs_head = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let signing_input = format!("{hs_head}.{payload}");
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&public_pem).unwrap();
    mac.update(signing_input.as_bytes());
    let hs256 = format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()));
    // Expired an hour ago.
    let pem = para_auth::keys::load_private_key(keys_root()).unwrap();
    let claims = para_auth::Claims::new("ann", Duration::from_secs(60));
    let expired =
        para_auth::tokens::sign_at(&pem, &claims, para_auth::tokens::now() - 3600).unwrap();
    // No exp at all.
    let no_exp_payload = b64(json!({ "sub": "ann" }).to_string().as_bytes());
    let no_exp = format!("{}.{no_exp_payload}.x", b64(br#"{"alg":"RS256","typ":"JWT"}"#));

    for (what, bad) in [
        ("forged", forged.as_str()),
        ("tampered", tampered.as_str()),
        ("alg none", none.as_str()),
        ("HS256 with the public key", hs256.as_str()),
        ("expired", expired.as_str()),
        ("no exp", no_exp.as_str()),
        ("garbage", "not-a-jwt"),
    ] {
        let (status, body) = server.call("GET", "/sdk/me", bad, None).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(body["message"].is_string(), "{what}: {body}");
    }
    // A good token for another project's path.
    let res = client()
        .get(format!("{}/projects/another-project/sdk/me", server.base))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    // No token.
    assert_eq!(client().get(server.url("/sdk/me")).send().await.unwrap().status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_user_cannot_reach_anothers_credentials_or_settings_and_secrets_are_sealed() {
    let (provider, provider_base) = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("para.db").display());
    let server = start(&db, &provider_base).await;
    let (ann, bob) = (token("ann"), token("bob"));

    let (status, created) = server
        .call(
            "POST",
            "/sdk/credentials",
            &ann,
            Some(json!({ "integrationId": BASIC, "payload": { "username": "ann", "password": PASSWORD } })),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["status"], "VALID", "the test endpoint accepted the credential: {created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert!(!created.to_string().contains(PASSWORD), "the API never returns secrets");

    // A wrong password is stored INVALID with the reason.
    let (_, wrong) = server
        .call(
            "POST",
            "/sdk/credentials",
            &bob,
            Some(json!({ "integrationId": BASIC, "payload": { "username": "bob", "password": "nope" } })),
        )
        .await;
    assert_eq!(wrong["status"], "INVALID", "{wrong}");
    assert!(wrong["statusReason"].as_str().unwrap().contains("401"), "{wrong}");

    // Bob, knowing Ann's credential id, can neither read, change, delete nor use it.
    let path = format!("/sdk/credentials/{id}");
    assert_eq!(server.call("GET", &path, &bob, None).await.0, 404);
    let patch = json!({ "config": { "sharedSettings": { "x": 1 } } });
    assert_eq!(server.call("PATCH", &path, &bob, Some(patch.clone())).await.0, 404);
    assert_eq!(server.call("DELETE", &path, &bob, None).await.0, 404);
    let (_, list) = server.call("GET", "/sdk/credentials", &bob, None).await;
    assert!(list.as_array().unwrap().iter().all(|c| c["id"] != id.as_str()), "{list}");
    let (_, me) = server.call("GET", "/sdk/me", &bob, None).await;
    assert!(!me.to_string().contains(&id), "Bob's state mentions Ann's credential");
    let calls = provider.api_calls.load(Ordering::SeqCst);
    let res = client()
        .get(server.url(&format!("/sdk/proxy/{BASIC}/me")))
        .bearer_auth(&bob)
        .header("x-paragon-credential", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert_eq!(provider.api_calls.load(Ordering::SeqCst), calls, "nothing reached the upstream");

    // Ann's own settings and proxy work; Bob's settings stay his.
    assert_eq!(server.call("PATCH", &path, &ann, Some(patch)).await.0, 200);
    let (_, me) = server.call("GET", "/sdk/me", &bob, None).await;
    assert_eq!(me["integrations"][BASIC]["sharedSettings"], json!({}));
    let (status, answer) = server.call("GET", &format!("/sdk/proxy/{BASIC}/me"), &ann, None).await;
    assert_eq!((status, &answer["output"]["ok"]), (200, &json!(true)), "{answer}");

    // At rest, the database holds no secret in plain text.
    drop(server);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut bytes = std::fs::read(dir.path().join("para.db")).unwrap();
    if let Ok(wal) = std::fs::read(dir.path().join("para.db-wal")) {
        bytes.extend(wal);
    }
    for secret in [PASSWORD, "client-secret"] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in the db");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proxy_paths_that_leave_the_api_base_are_refused() {
    let (provider, provider_base) = provider().await;
    let server = start("sqlite::memory:", &provider_base).await;
    let ann = token("ann");
    let (status, c) = server
        .call(
            "POST",
            "/sdk/credentials",
            &ann,
            Some(json!({ "integrationId": BASIC, "payload": { "username": "ann", "password": PASSWORD } })),
        )
        .await;
    assert_eq!(status, 200, "{c}");
    let before = provider.api_calls.load(Ordering::SeqCst);
    let prefix = format!("/projects/{PROJECT}/sdk/proxy/{BASIC}");
    for evil in [
        "/../token",
        "/a/../../token",
        "/%2e%2e/token",
        "/%2E%2E%2Ftoken",
        "/..%2ftoken",
        "//evil.example/x",
        "/http://evil.example/x",
        "/a\\..\\token",
        "/%5c..%5ctoken",
        "/a%00b",
    ] {
        let status = server.raw_get(&format!("{prefix}{evil}"), &ann);
        assert_eq!(status, 400, "{evil} must be refused");
    }
    assert_eq!(
        provider.api_calls.load(Ordering::SeqCst),
        before,
        "no refused path reached the upstream"
    );
    // An honest path still works and lands below the base.
    assert_eq!(server.raw_get(&format!("{prefix}/v1/items?q=a%20b"), &ann), 200);
    assert_eq!(provider.paths.lock().unwrap().last().unwrap(), "/api/v1/items?q=a%20b");
}

/// An expired OAuth credential for `user`, made the way the callback makes one.
async fn expired_oauth_credential(state: &AppState, user: &str) -> String {
    let connector = para_server::connector::Connector::of(state, OAUTH).unwrap();
    let material = para_server::connector::Material::default();
    let token = json!({ "access_token": "AT-0", "refresh_token": REFRESH_TOKEN, "expires_in": 1 });
    state.store.touch_user(PROJECT, user, None).await.unwrap();
    let c = para_server::connect::store_connection(
        state,
        user,
        &connector,
        material,
        token.as_object().unwrap().clone(),
    )
    .await
    .unwrap();
    // The test endpoint refused AT-0 (the provider never issued it): mark it usable.
    state
        .store
        .update_credential(
            PROJECT,
            user,
            &c.id,
            para_store::CredentialStatus::Valid,
            None,
            &c.secret,
            c.expires_at,
        )
        .await
        .unwrap();
    c.id
}

/// 24 requests, half on each of two servers sharing `database`, on one expired credential.
async fn one_refresh_for_many_requests(database: &str) {
    let (provider, provider_base) = provider().await;
    let one = start(database, &provider_base).await;
    let two = start(database, &provider_base).await;
    // A fresh user each run: a PostgreSQL database outlives the test.
    let user = format!("ann-{}", para_auth::random_token(6));
    expired_oauth_credential(&one.state, &user).await;
    let bearer = token(&user);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let url = if i % 2 == 0 { one.url("") } else { two.url("") };
        let bearer = bearer.clone();
        tasks.push(tokio::spawn(async move {
            let res = client()
                .get(format!("{url}/sdk/proxy/{OAUTH}/tasks/{i}"))
                .bearer_auth(bearer)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(provider.refreshes.load(Ordering::SeqCst), 1, "exactly one token call");

    // A 401 from the upstream (token revoked early) triggers one refresh and one retry.
    provider.refreshes.store(5, Ordering::SeqCst); // the provider now only accepts AT-5
    let (status, body) = one.call("GET", &format!("/sdk/proxy/{OAUTH}/again"), &bearer, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(provider.refreshes.load(Ordering::SeqCst), 6, "one refresh after the 401");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_on_an_expired_credential_refresh_once_across_two_servers() {
    let dir = tempfile::tempdir().unwrap();
    one_refresh_for_many_requests(&format!("sqlite://{}", dir.path().join("para.db").display()))
        .await;
}

/// The same on PostgreSQL (`PARA_TEST_POSTGRES`, started by scripts/postgres; required when
/// `PARA_TEST_REQUIRE_POSTGRES=1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refresh_is_single_across_servers_on_postgres() {
    match std::env::var("PARA_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => one_refresh_for_many_requests(&url).await,
        _ => {
            assert_ne!(
                std::env::var("PARA_TEST_REQUIRE_POSTGRES").as_deref(),
                Ok("1"),
                "PARA_TEST_REQUIRE_POSTGRES=1 but PARA_TEST_POSTGRES is not set"
            );
            eprintln!(
                "skipped: PARA_TEST_POSTGRES is not set (export PARA_TEST_POSTGRES=$(scripts/postgres))"
            );
        }
    }
}
