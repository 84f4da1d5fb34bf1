//! `GET /ui`, the page the SDK's `paragon.connect()` loads in its iframe: embeddable by any app,
//! script only from this server, and the script it names is served. The page's behaviour in a
//! browser, driven by the real SDK, is tested in tests/e2e/connect.test.mjs.

use serde_json::json;

use crate::common::{self, TestServer, client};

#[tokio::test]
async fn the_sdk_iframe_page_is_embeddable_and_loads_only_its_own_script() {
    let s = TestServer::builder(common::build("p-ui", json!({}))).sqlite_file().start().await;
    let http = client();

    let page = http.get(format!("{}/ui?projectId=p-ui", s.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors *"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-eval") && !csp.contains("script-src 'self' 'unsafe-inline'"),
        "{csp}"
    );
    assert!(page.headers().get("x-frame-options").is_none());
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script src="/_para/portal-ui.js" defer></script>"#));
    assert!(!html.contains("<script>"), "no inline script");

    let script = http.get(format!("{}/_para/portal-ui.js", s.base)).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    let js = script.text().await.unwrap();
    assert!(js.contains("SDK_FUNCTION_INVOCATION") && js.contains("UI_UPDATE"));
    assert!(!js.contains("innerHTML"), "the portal builds its DOM without parsing HTML");
}

/// What the SDK may call that this server does not offer answers with a reason, not a bare 404.
#[tokio::test]
async fn action_kit_answers_with_what_to_do_instead() {
    let s = TestServer::builder(common::build("p-ui2", json!({}))).sqlite_file().start().await;
    let token = common::token("ann");

    let (status, body) = s.call("POST", "/sdk/actions", &token, Some(json!({"action": "x"}))).await;
    assert_eq!(status, 404);
    assert!(body["message"].as_str().unwrap().contains("paragon.request"), "{body}");

    // Configurations are offered (engine.rs); an unknown credential is named.
    let (status, body) = s.call("POST", "/sdk/credentials/c1/configurations", &token, None).await;
    assert_eq!(status, 404);
    assert!(body["message"].as_str().unwrap().contains("no credential `c1`"), "{body}");

    let (status, _) = s.call("POST", "/sdk/actions", "not-a-token", None).await;
    assert_eq!(status, 401, "still behind the user token");
}
