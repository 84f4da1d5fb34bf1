//! The deploy API's refusals (issue 22), in-process: what an attacker or a mistaken push
//! tries. The whole flow (two processes, pushes under load, rollback) is
//! `crates/para-cli/tests/it/releases.rs`.

use serde_json::{Value, json};

use crate::common::{TestServer, build, client, token};

const KEY: &str = "a-deploy-key-of-some-length";

async fn post(s: &TestServer, path: &str, key: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut r = client()
        .post(format!("{}{path}", s.base))
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        r = r.bearer_auth(key);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn push_body(project: &str, name: &str) -> Vec<u8> {
    let mut b = serde_json::to_value(build(project, json!({}))).unwrap();
    b["project"]["projectName"] = json!(name);
    serde_json::to_vec(&json!({ "build": b })).unwrap()
}

async fn current(s: &TestServer) -> Value {
    let r =
        client().get(format!("{}/deploy/releases", s.base)).bearer_auth(KEY).send().await.unwrap();
    let list: Value = r.json().await.unwrap();
    list["current"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_need_the_deploy_key_and_wrong_keys_are_throttled() {
    let s = TestServer::builder(build("p-deploy", json!({})))
        .serving_releases()
        .deploy_key(KEY)
        .start()
        .await;
    // No key, a user's token, the admin key's place: 401 with the reason; nothing stored.
    let (status, e) = post(&s, "/deploy/releases", None, push_body("p-deploy", "x")).await;
    assert_eq!((status, e["code"].as_str()), (401, Some("deploy_key")), "{e}");
    let user = token("ann");
    let (status, _) = post(&s, "/deploy/releases", Some(&user), push_body("p-deploy", "x")).await;
    assert_eq!(status, 401);
    let (status, _) = post(&s, "/deploy/releases/1/current", Some("nope"), vec![]).await;
    assert_eq!(status, 401);
    assert_eq!(current(&s).await, json!(1));
    // A build of another project, or a body past the limit, is refused.
    let (status, e) = post(&s, "/deploy/releases", Some(KEY), push_body("p-other", "x")).await;
    assert_eq!((status, e["code"].as_str()), (409, Some("other_project")), "{e}");
    let huge = vec![b' '; para_server::releases::MAX_BUILD_BYTES + (128 << 10)];
    let (status, _) = post(&s, "/deploy/releases", Some(KEY), huge).await;
    assert_eq!(status, 413);
    let (status, e) = post(&s, "/deploy/releases/x/current", Some(KEY), vec![]).await;
    assert_eq!((status, e["code"].as_str()), (400, Some("bad_request")), "{e}");
    let (status, e) = post(&s, "/deploy/releases/7/current", Some(KEY), vec![]).await;
    assert_eq!((status, e["code"].as_str()), (404, Some("not_found")), "{e}");
    // Past ten wrong keys a minute, even the right key waits.
    for _ in 0..10 {
        post(&s, "/deploy/releases", Some("guess"), vec![]).await;
    }
    let (status, e) = post(&s, "/deploy/releases", Some(KEY), push_body("p-deploy", "y")).await;
    assert_eq!((status, e["code"].as_str()), (429, Some("throttled")), "{e}");
    let stored = s.state.store.current_release().await.unwrap();
    assert_eq!(stored, Some(1), "the current release stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_of_a_project_folder_refuses_pushes_and_without_a_key_the_api_is_off() {
    let folder = TestServer::builder(build("p-folder", json!({}))).deploy_key(KEY).start().await;
    let (status, e) =
        post(&folder, "/deploy/releases", Some(KEY), push_body("p-folder", "x")).await;
    assert_eq!((status, e["code"].as_str()), (409, Some("project_folder")), "{e}");
    assert!(e["message"].as_str().unwrap().contains("without a project folder"), "{e}");
    let off = TestServer::builder(build("p-off", json!({}))).serving_releases().start().await;
    let (status, e) = post(&off, "/deploy/releases", Some(KEY), push_body("p-off", "x")).await;
    assert_eq!((status, e["code"].as_str()), (404, Some("deploy_off")), "{e}");
    assert!(e["message"].as_str().unwrap().contains("PARA_DEPLOY_KEY"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_notifications_a_server_follows_the_current_release_by_polling() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("para.db").display());
    let start = || {
        TestServer::builder(build("p-poll", json!({})))
            .database(&url)
            .serving_releases()
            .deploy_key(KEY)
            .start()
    };
    let (a, b) = (start().await, start().await);
    b.state.releases.follow(&url);
    let serves = |s: &TestServer| s.state.releases.served().map(|r| r.number);
    assert_eq!((serves(&a), serves(&b)), (Some(1), Some(1)));
    let (status, pushed) = post(&a, "/deploy/releases", Some(KEY), push_body("p-poll", "2")).await;
    assert_eq!(status, 201, "{pushed}");
    let hash = pushed["release"]["hash"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while serves(&b) != Some(2) {
        assert!(std::time::Instant::now() < deadline, "B did not follow the push");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // What B's handlers read is the new build.
    assert_eq!(b.state.build().build_hash, hash);
    assert_eq!(b.state.build().project.project_name.as_deref(), Some("2"));
    let (status, _) = post(&b, "/deploy/releases/1/current", Some(KEY), vec![]).await;
    assert_eq!(status, 200);
    assert_eq!(serves(&b), Some(1), "the process that took the rollback serves it at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_releases_and_rolls_back_with_the_session_s_csrf_token() {
    const ADMIN: &str = "an-admin-key-for-releases";
    let s = TestServer::builder(build("p-dash", json!({})))
        .serving_releases()
        .deploy_key(KEY)
        .admin_key(Some(ADMIN))
        .start()
        .await;
    let (status, _) = post(&s, "/deploy/releases", Some(KEY), push_body("p-dash", "two")).await;
    assert_eq!(status, 201);
    let http = crate::common::client_without_redirects();
    let page = format!("{}/dashboard/releases", s.base);
    let anonymous = http.get(&page).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let deploy_key_is_no_admin_key = http.get(&page).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(deploy_key_is_no_admin_key.status(), 401);

    let login = http
        .post(format!("{}/dashboard/login", s.base))
        .form(&[("key", ADMIN)])
        .send()
        .await
        .unwrap();
    let cookie =
        login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let text =
        http.get(&page).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("This server serves release 2"), "{text}");
    assert!(text.contains("/dashboard/releases/1/current"), "release 1 has a button: {text}");
    assert!(!text.contains("/dashboard/releases/2/current"), "the current one has none");
    let csrf = text.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap();
    let rollback = format!("{}/dashboard/releases/1/current", s.base);
    let forged = http
        .post(&rollback)
        .header("cookie", &cookie)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(s.state.store.current_release().await.unwrap(), Some(2));
    let done = http
        .post(&rollback)
        .header("cookie", &cookie)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    assert_eq!(s.state.store.current_release().await.unwrap(), Some(1));
    assert_eq!(s.state.releases.served().map(|r| r.number), Some(1));
}
