//! CORS as the SDK in a company's page meets it: preflights answered with the SDK's headers,
//! the origin mirrored (without credentials unless `PARA_CORS_ORIGINS` lists it), and nothing
//! added to requests without an origin.

use para_server::CorsPolicy;
use serde_json::json;

use crate::common::{self, TestServer, client};

#[tokio::test]
async fn preflights_mirror_the_origin_and_plain_requests_stay_untouched() {
    let s = TestServer::builder(common::build("p-cors", json!({}))).sqlite_file().start().await;
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
    assert!(h.get("access-control-allow-credentials").is_none(), "no credentials by default");
    assert!(h["access-control-allow-methods"].to_str().unwrap().contains("PATCH"));
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("authorization") && allowed.contains("x-paragon-credential"));
    assert_eq!(h["access-control-max-age"], "600");

    let with_origin =
        http.get(s.url("/sdk/me")).header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(with_origin.status(), 401, "no token: refused, and still readable by the page");
    assert_eq!(with_origin.headers()["access-control-allow-origin"], "https://app.example");
    assert!(with_origin.headers().get("access-control-allow-credentials").is_none());
    assert!(with_origin.headers().get_all("vary").iter().any(|v| v == "origin"));

    let plain = http.get(format!("{}/healthz", s.base)).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("access-control-allow-origin").is_none());
}

/// Proxy requests reach the proxy without going through the router (`server.rs`); CORS is the
/// same there: preflights answered, errors readable by the page, no origin no headers.
#[tokio::test]
async fn proxy_requests_get_the_same_cors_handling() {
    let s =
        TestServer::builder(common::build("p-cors-proxy", json!({}))).sqlite_file().start().await;
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
    assert!(pre.headers().get("access-control-allow-credentials").is_none());
    assert!(
        pre.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("x-paragon-use-raw-response")
    );

    let refused = http.get(&path).header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(refused.status(), 401, "no token");
    assert_eq!(refused.headers()["access-control-allow-origin"], "https://app.example");
    assert!(refused.headers().get("access-control-allow-credentials").is_none());
    assert!(refused.headers().get_all("vary").iter().any(|v| v == "origin"));

    let plain = http.get(&path).send().await.unwrap();
    assert_eq!(plain.status(), 401);
    assert!(plain.headers().get("access-control-allow-origin").is_none());
}

/// With `PARA_CORS_ORIGINS` set, the origins it lists get CORS with credentials, on the
/// router's routes and on the proxy's alike; a page of any other origin gets no CORS header,
/// so its browser keeps the answers from it.
#[test]
fn configured_origins_alone_get_cors_with_credentials() {
    let policy =
        CorsPolicy::parse(Some(" https://app.example, https://Admin.example:8443/ ")).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let s = TestServer::builder(common::build("p-cors-list", json!({})))
            .cors(policy)
            .sqlite_file()
            .start()
            .await;
        let http = client();
        for path in [s.url("/sdk/me"), s.url("/sdk/proxy/custom.nothing/items")] {
            for origin in ["https://app.example", "https://admin.example:8443"] {
                let pre = http
                    .request(reqwest::Method::OPTIONS, &path)
                    .header("origin", origin)
                    .header("access-control-request-method", "GET")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(pre.status(), 204, "{path} {origin}");
                assert_eq!(pre.headers()["access-control-allow-origin"], origin);
                assert_eq!(pre.headers()["access-control-allow-credentials"], "true");
                let r = http.get(&path).header("origin", origin).send().await.unwrap();
                assert_eq!(r.status(), 401);
                assert_eq!(r.headers()["access-control-allow-origin"], origin);
                assert_eq!(r.headers()["access-control-allow-credentials"], "true");
            }
            for origin in
                ["https://evil.example", "http://app.example", "https://app.example.evil", "null"]
            {
                let pre = http
                    .request(reqwest::Method::OPTIONS, &path)
                    .header("origin", origin)
                    .header("access-control-request-method", "GET")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(pre.status(), 403, "{path} {origin}");
                let h = pre.headers();
                assert!(h.get("access-control-allow-origin").is_none(), "{path} {origin}");
                assert!(h.get("access-control-allow-credentials").is_none(), "{path} {origin}");
                assert!(h.get("access-control-allow-methods").is_none(), "{path} {origin}");
                let r = http.get(&path).header("origin", origin).send().await.unwrap();
                assert_eq!(r.status(), 401);
                assert!(
                    r.headers().get("access-control-allow-origin").is_none(),
                    "{path} {origin}"
                );
                assert!(r.headers().get("access-control-allow-credentials").is_none());
                assert!(r.headers().get_all("vary").iter().any(|v| v == "origin"));
            }
        }
    });
}

/// `*` in the list keeps the default for the origins not listed: mirrored, without credentials.
#[test]
fn a_star_in_the_list_mirrors_other_origins_without_credentials() {
    let policy = CorsPolicy::parse(Some("https://app.example,*")).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let s = TestServer::builder(common::build("p-cors-star", json!({})))
            .cors(policy)
            .sqlite_file()
            .start()
            .await;
        let http = client();
        let path = s.url("/sdk/me");
        let r = http.get(&path).header("origin", "https://app.example").send().await.unwrap();
        assert_eq!(r.headers()["access-control-allow-credentials"], "true");
        let r = http.get(&path).header("origin", "https://other.example").send().await.unwrap();
        assert_eq!(r.headers()["access-control-allow-origin"], "https://other.example");
        assert!(r.headers().get("access-control-allow-credentials").is_none());
    });
}
