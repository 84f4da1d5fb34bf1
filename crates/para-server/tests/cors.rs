//! CORS as the SDK in a company's page meets it: preflights answered with the SDK's headers,
//! the origin mirrored with credentials, and nothing added to requests without an origin.

mod common;

use common::client;
use serde_json::json;

#[tokio::test]
async fn preflights_mirror_the_origin_and_plain_requests_stay_untouched() {
    let (_dir, s) = common::start_fresh(common::build("p-cors", json!({}))).await;
    let http = client();

    let pre = http
        .request(reqwest::Method::OPTIONS, s.url("/sdk/me"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "PATCH")
        .header("access-control-request-headers", "authorization, x-paragon-credential")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    let h = pre.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(h["access-control-allow-methods"].to_str().unwrap().contains("PATCH"));
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("authorization") && allowed.contains("x-paragon-credential"));
    assert_eq!(h["access-control-max-age"], "600");

    let with_origin =
        http.get(s.url("/sdk/me")).header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(with_origin.status(), 401, "no token: refused, and still readable by the page");
    assert_eq!(with_origin.headers()["access-control-allow-origin"], "https://app.example");
    assert!(with_origin.headers().get_all("vary").iter().any(|v| v == "origin"));

    let plain = http.get(format!("{}/healthz", s.base)).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("access-control-allow-origin").is_none());
}

/// Proxy requests reach the proxy without going through the router (`server.rs`); CORS is the
/// same there: preflights answered, errors readable by the page, no origin no headers.
#[tokio::test]
async fn proxy_requests_get_the_same_cors_handling() {
    let (_dir, s) = common::start_fresh(common::build("p-cors-proxy", json!({}))).await;
    let http = client();
    let path = s.url("/sdk/proxy/custom.nothing/items?x=1");

    let pre = http
        .request(reqwest::Method::OPTIONS, &path)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert_eq!(pre.headers()["access-control-allow-origin"], "https://app.example");
    assert!(
        pre.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("x-paragon-use-raw-response")
    );

    let refused = http.get(&path).header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(refused.status(), 401, "no token");
    assert_eq!(refused.headers()["access-control-allow-origin"], "https://app.example");
    assert!(refused.headers().get_all("vary").iter().any(|v| v == "origin"));

    let plain = http.get(&path).send().await.unwrap();
    assert_eq!(plain.status(), 401);
    assert!(plain.headers().get("access-control-allow-origin").is_none());
}
