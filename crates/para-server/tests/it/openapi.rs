//! The OpenAPI document (`GET /openapi.json`) against the live server: every route the router
//! serves is in the document with the methods it answers (the HTML pages aside), every
//! documented operation is called here with a real token on data made through the API
//! itself, and each answer's status and body fit the document's schema for that route and
//! status. The schemas are checked strictly: an answer with a field the document does not
//! declare fails, as does one missing a required field.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::common::{self, TestServer, token};

const PROJECT: &str = "p-openapi";
const DEPLOY_KEY: &str = "openapi-deploy-key";
const KEYS: &str = "custom.keys";
const ORDERS: &str = "0a6b2c3d-0000-4000-8000-0000000000e1";
const INBOUND: &str = "0a6b2c3d-0000-4000-8000-0000000000e2";
const CRM: &str = "f00dbabe-0000-4000-8000-0000000000c1";

/// The routes of the router that are pages, scripts, the OAuth popup's steps or operators'
/// routes, not JSON APIs: the document leaves them out on purpose.
const NOT_JSON: &[&str] = &[
    "/_para/style.css",
    "/_para/portal-ui.js",
    "/ui",
    "/dashboard",
    "/dashboard/user",
    "/dashboard/login",
    "/dashboard/logout",
    "/dashboard/runs",
    "/dashboard/runs/{id}",
    "/dashboard/runs/{id}/replay",
    "/dashboard/releases",
    "/dashboard/releases/{number}/current",
    "/dashboard/alerts",
    "/dashboard/alerts/delete",
    "/projects/{project}/portal",
    "/projects/{project}/portal/{integration}",
    "/projects/{project}/portal/{integration}/connect",
    "/projects/{project}/portal/{integration}/disconnect",
    "/projects/{project}/portal/{integration}/settings",
    "/projects/{project}/portal/{integration}/workflows/{workflow}",
    "/projects/{project}/portal/_switch",
    "/projects/{project}/sdk/actions/oauth-nonce",
    "/oauth/callback",
    "/oauth/callback/values",
    // Operators' routes, not the product's API (`health.rs`): Prometheus text, and readiness
    // for load balancers.
    "/metrics",
    "/readyz",
];

/// A loopback API: every `GET /api/me` answers 200 (the integration's and the resource's
/// test request).
async fn api() -> String {
    let app =
        axum::Router::new().route("/api/me", axum::routing::get(|| async { r#"{"id":"acct-1"}"# }));
    common::serve(app).await
}

fn build(api: &str) -> para_build::Build {
    let credential = |path: &[&str]| json!({ "type": "CREDENTIAL", "path": path });
    let mut keys = common::custom(
        KEYS,
        "basic",
        json!({ "type": "basic", "username": credential(&["username"]),
                "password": credential(&["password"]) }),
        Value::Null,
    );
    keys["config"]["custom"]["apiBaseUrl"] =
        json!({ "type": "VALUE", "value": format!("{api}/api") });
    let step = |id: &str, kind: &str, parameters: Value| {
        json!({
            "id": id, "key": "trigger", "type": kind, "parameters": parameters,
            "description": null, "autoRetry": false, "continueWorkflowOnError": false,
            "next": null, "source": null
        })
    };
    let workflow = |id: &str, name: &str, trigger: Value| {
        json!({
            "id": id, "name": name, "description": null, "order": 0, "defaultEnabled": true,
            "hidden": false, "inputs": [], "source": "w.ts", "trigger": "s-trigger",
            "steps": [trigger], "permissions": null
        })
    };
    keys["workflows"] = json!({
        ORDERS: workflow(ORDERS, "Sync orders", step("s-trigger", "TRIGGER/EVENT",
            json!({ "eventId": "e1", "eventName": "Order Placed" }))),
        INBOUND: workflow(INBOUND, "Inbound", step("s-trigger", "TRIGGER/ENDPOINT", json!({
            "allowArbitraryPayload": true, "paramValidations": [], "headerValidations": [],
            "bodyValidations": [{ "key": "title", "required": true, "dataType": "STRING" }]
        }))),
    });
    let catalog = |key: &str, name: &str| {
        json!({
            "key": key, "kind": "catalog", "name": name, "source": format!("src/integrations/{key}"),
            "config": { "description": null, "overview": null, "showWatermark": true,
                        "active": true, "workflowDisplayOrder": [] },
            "inputs": [], "workflows": {}, "customTriggers": {}
        })
    };
    // Gmail has catalog triggers; HubSpot has data sources (record types, a field mapper).
    let integrations = json!({ KEYS: keys, "gmail": catalog("gmail", "Gmail"),
                               "hubspot": catalog("hubspot", "HubSpot") });
    let mut doc = serde_json::to_value(common::build(PROJECT, integrations)).unwrap();
    doc["resources"] = json!({
        CRM: {
            "id": CRM, "name": "Internal CRM", "level": "user", "source": "src/resources/crm/config.ts",
            "configs": {
                "authorizationConfig": { "type": "VALUE", "value": { "type": "api_key", "userInputs": ["apiKey"] } },
                "requestConfig": { "type": "VALUE", "value": { "apiBaseUrl": format!("{api}/api") } },
                "testRequestConfig": { "type": "VALUE", "value": { "url": "/me", "method": "GET", "params": {}, "headers": {} } }
            }
        },
    });
    serde_json::from_value(doc).unwrap()
}

/// The schema checks of one document: each answer against its route's schema, with the
/// document's components for `$ref`s.
struct Contract {
    doc: Value,
    /// (method, path template) of each operation called.
    called: BTreeSet<(String, String)>,
}

impl Contract {
    /// Checks `body`, answered with `status` to `method template`, against the document.
    fn check(&mut self, method: &str, template: &str, status: u16, body: &Value) {
        if let Err(e) = self.fits(method, template, status, body) {
            panic!("{e}");
        }
        self.called.insert((method.to_ascii_lowercase(), template.to_string()));
    }

    /// Whether `body` fits the document's schema for `status` of `method template`.
    fn fits(&self, method: &str, template: &str, status: u16, body: &Value) -> Result<(), String> {
        let method = method.to_ascii_lowercase();
        let operation = &self.doc["paths"][template][&method];
        assert!(operation.is_object(), "`{method} {template}` is not in the document");
        let responses = &operation["responses"];
        let response = [status.to_string(), format!("{}XX", status / 100), "default".into()]
            .iter()
            .find_map(|k| responses.get(k))
            .unwrap_or_else(|| {
                panic!("`{method} {template}` answered {status}, which the document does not list: {body}")
            });
        let schema = &response["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "`{method} {template}` {status} has no JSON schema");
        let mut components = self.doc["components"].clone();
        if let Some(schemas) = components.get_mut("schemas").and_then(Value::as_object_mut) {
            for schema in schemas.values_mut() {
                strict_inside(schema);
            }
        }
        let mut schema = schema.clone();
        strict(&mut schema);
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": components,
            "allOf": [schema],
        });
        let validator = jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("the schema of `{method} {template}` {status}: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        match errors.is_empty() {
            true => Ok(()),
            false => Err(format!(
                "`{method} {template}` answered {status} outside the document:\n{}\n{body:#}",
                errors.join("\n")
            )),
        }
    }
}

/// Makes `schema` refuse properties it does not declare: an object schema (its own
/// properties, or the members of its `allOf` and what a `$ref` names) gets
/// `unevaluatedProperties: false`, which sees through `allOf` and `$ref`; the members of an
/// `allOf` stay open themselves (the parent closes them together).
fn strict(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else { return };
    let object_like =
        map.contains_key("properties") || map.contains_key("allOf") || map.contains_key("$ref");
    if object_like && !map.contains_key("additionalProperties") {
        map.insert("unevaluatedProperties".into(), Value::Bool(false));
    }
    strict_inside(schema);
}

/// [`strict`] for what `schema` holds, not `schema` itself.
fn strict_inside(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else { return };
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(strict);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(inner) = map.get_mut(key) {
            strict(inner);
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(members)) = map.get_mut(key) {
            members.iter_mut().for_each(strict);
        }
    }
    if let Some(Value::Array(members)) = map.get_mut("allOf") {
        members.iter_mut().for_each(strict_inside);
    }
}

/// The paths of the router's routes, as the router itself lists them (its debug form names
/// each route's path).
fn router_paths(server: &TestServer) -> BTreeSet<String> {
    let router = format!("{:?}", para_server::router(server.state.clone()));
    // The routes' table comes first; the fallback's own table (`/` and a catch-all) after.
    let table = router.split("fallback_router").next().unwrap();
    let mut paths = BTreeSet::new();
    let mut rest = table;
    while let Some(at) = rest.find(": \"/") {
        let start = at + 3;
        let end = start + rest[start..].find('"').unwrap();
        let path = &rest[start..end];
        if !path.contains("__private__") {
            paths.insert(path.to_string());
        }
        rest = &rest[end..];
    }
    paths
}

/// The methods the live server answers at `path` (its `{…}` segments filled in), from the
/// `Allow` header of a 405 to a method no route serves.
async fn served_methods(server: &TestServer, path: &str) -> BTreeSet<String> {
    let concrete: String = path
        .split('/')
        .map(|s| match s {
            "{project}" => PROJECT,
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/");
    let response = common::client()
        .request(reqwest::Method::TRACE, format!("{}{concrete}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405, "TRACE {concrete} should not be served");
    let allow = response.headers()["allow"].to_str().unwrap().to_string();
    allow
        .split(',')
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty() && m != "head")
        .collect()
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_route_is_documented_and_answers_as_documented() {
    let api = api().await;
    let s = TestServer::builder(build(&api))
        .sqlite_file()
        .serving_releases()
        .deploy_key(DEPLOY_KEY)
        .start()
        .await;
    let ann = token("ann");
    let http = common::client();

    // The document itself: no token, CORS like the API.
    let response = http
        .get(format!("{}/openapi.json", s.base))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("access-control-allow-origin"));
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["components"]["securitySchemes"]["user_token"]["scheme"], "bearer");
    let mut c = Contract { doc: doc.clone(), called: BTreeSet::new() };
    c.check("GET", "/openapi.json", 200, &doc);

    // The router and the document list the same routes, with the same methods.
    let documented: BTreeMap<String, BTreeSet<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = METHODS.iter().filter(|m| item.get(**m).is_some());
            (path.clone(), methods.map(|m| m.to_string()).collect())
        })
        .collect();
    let routed = router_paths(&s);
    assert!(routed.contains("/projects/{project}/sdk/me"), "read the router's paths: {routed:?}");
    for path in &routed {
        if NOT_JSON.contains(&path.as_str()) {
            assert!(!documented.contains_key(path), "the page {path} is in the document");
            continue;
        }
        let Some(methods) = documented.get(path) else {
            panic!("the router serves {path}, which the document does not describe")
        };
        assert_eq!(&served_methods(&s, path).await, methods, "the methods of {path}");
    }
    for path in documented.keys() {
        assert!(routed.contains(path), "the document describes {path}, which no route serves");
    }
    for page in NOT_JSON {
        assert!(routed.contains(*page), "{page} is listed as a page but is not routed");
    }

    let p = |path: &str| format!("/projects/{PROJECT}{path}");
    let call = |method: &str,
                path: String,
                bearer: Option<&str>,
                headers: Vec<(&str, String)>,
                body: Option<Value>| {
        let mut r = http.request(method.parse().unwrap(), format!("{}{path}", s.base));
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        for (name, value) in headers {
            r = r.header(name, value);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let response = r.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let body = serde_json::from_str::<Value>(&text)
                .unwrap_or_else(|_| panic!("{status} is not JSON: {text}"));
            (status, body)
        }
    };
    macro_rules! check {
        ($method:literal, $template:literal, $path:expr, $headers:expr, $body:expr, $want:literal) => {{
            let (status, body) = call($method, $path, Some(&ann), $headers, $body).await;
            assert_eq!(status, $want, "{} {}: {body}", $method, $template);
            c.check($method, $template, status, &body);
            body
        }};
    }

    check!("GET", "/healthz", "/healthz".into(), vec![], None, 200);
    // Without a token: the error shape.
    let (status, refused) = call("GET", p("/sdk/me"), None, vec![], None).await;
    assert_eq!(status, 401);
    c.check("GET", "/projects/{project}/sdk/me", status, &refused);
    let me = check!("GET", "/projects/{project}/sdk/me", p("/sdk/me"), vec![], None, 200);
    // The check is strict: a field the document does not declare, or a required one missing
    // (at the top or deeper), does not fit.
    let me_path = "/projects/{project}/sdk/me";
    let mut extra = me.clone();
    extra["surprise"] = json!(1);
    assert!(c.fits("GET", me_path, 200, &extra).is_err(), "an undeclared field fits");
    let mut deep = me.clone();
    deep["project"]["surprise"] = json!(1);
    assert!(c.fits("GET", me_path, 200, &deep).is_err(), "an undeclared nested field fits");
    let mut missing = me.clone();
    missing.as_object_mut().unwrap().remove("userId");
    assert!(c.fits("GET", me_path, 200, &missing).is_err(), "a missing field fits");
    assert!(c.fits("GET", me_path, 401, &me).is_err(), "a user's state fits as an error");
    check!(
        "PATCH",
        "/projects/{project}/sdk/me",
        p("/sdk/me"),
        vec![],
        Some(json!({ "meta": { "plan": "pro" } })),
        200
    );
    let listed = check!(
        "GET",
        "/projects/{project}/sdk/integrations",
        p("/sdk/integrations"),
        vec![],
        None,
        200
    );
    assert!(listed.as_array().unwrap().iter().any(|i| i["connectKind"] == "basic"), "{listed}");
    let hubspot = listed.as_array().unwrap().iter().find(|i| i["type"] == "hubspot").unwrap();
    let sources = &hubspot["sdkIntegrationConfig"]["dataSources"];
    assert!(sources["field_mapping"]["recordSource"].is_object(), "{sources}");

    // Credentials.
    let connect = json!({ "integrationId": KEYS,
        "payload": { "username": "ann", "password": "s3cret" } });
    let credential = check!(
        "POST",
        "/projects/{project}/sdk/credentials",
        p("/sdk/credentials"),
        vec![],
        Some(connect.clone()),
        200
    );
    assert_eq!(credential["status"], "VALID", "{credential}");
    let id = credential["id"].as_str().unwrap().to_string();
    let second = check!(
        "POST",
        "/projects/{project}/sdk/credentials",
        p("/sdk/credentials"),
        vec![],
        Some(connect),
        200
    );
    let second = second["id"].as_str().unwrap().to_string();
    check!("GET", "/projects/{project}/sdk/credentials", p("/sdk/credentials"), vec![], None, 200);
    let account = check!(
        "GET",
        "/projects/{project}/sdk/credentials",
        p(&format!("/sdk/credentials?integration={KEYS}&includeAccountAuth=true")),
        vec![("x-paragon-credential", id.clone())],
        None,
        200
    );
    assert_eq!(account["credentialId"], id.as_str());
    check!(
        "GET",
        "/projects/{project}/sdk/credentials/{credential}",
        p(&format!("/sdk/credentials/{id}")),
        vec![],
        None,
        200
    );
    let patched = check!(
        "PATCH",
        "/projects/{project}/sdk/credentials/{credential}",
        p(&format!("/sdk/credentials/{id}")),
        vec![],
        Some(json!({ "config": { "sharedSettings": {}, "workflowSettings": {
            ORDERS: { "enabled": true, "settings": {} } } } })),
        200
    );
    assert_eq!(patched["errors"], json!([]));
    check!(
        "POST",
        "/projects/{project}/sdk/credentials/{credential}/complete-setup",
        p(&format!("/sdk/credentials/{id}/complete-setup")),
        vec![],
        Some(json!({ "integrationId": KEYS, "payload": { "skipPostOAuthInputs": true } })),
        200
    );

    // Configurations.
    let configurations = p(&format!("/sdk/credentials/{id}/configurations"));
    let made = check!(
        "POST",
        "/projects/{project}/sdk/credentials/{credential}/configurations",
        configurations.clone(),
        vec![],
        Some(json!({ "externalId": "team-1" })),
        200
    );
    assert_eq!(made["configurations"].as_array().unwrap().len(), 2, "{made}");
    let team = vec![("x-paragon-configuration-id", "ext:team-1".to_string())];
    check!(
        "PATCH",
        "/projects/{project}/sdk/credentials/{credential}/configurations",
        configurations.clone(),
        team.clone(),
        Some(json!({ "meta": { "team": 1 } })),
        200
    );
    check!(
        "DELETE",
        "/projects/{project}/sdk/credentials/{credential}/configurations",
        configurations,
        team,
        None,
        200
    );

    // Workflow toggles.
    let toggle = p(&format!("/sdk/workflows/{ORDERS}"));
    let account_of = vec![("x-paragon-credential", id.clone())];
    check!(
        "DELETE",
        "/projects/{project}/sdk/workflows/{workflow}",
        toggle.clone(),
        account_of.clone(),
        None,
        200
    );
    check!("POST", "/projects/{project}/sdk/workflows/{workflow}", toggle, account_of, None, 200);

    // Setting choices: this build's integration has no data source to list.
    let (status, refused) = call(
        "POST",
        p("/sdk/actions"),
        Some(&ann),
        vec![],
        Some(json!({ "action": KEYS, "sourceKey": "channels" })),
    )
    .await;
    assert!((400..500).contains(&status), "{status} {refused}");
    c.check("POST", "/projects/{project}/sdk/actions", status, &refused);

    // OAuth: the popup's start (the values form, for typed credentials) and sessions.
    let build_oauth = format!("/sdk/actions/build-oauth?integrationId={KEYS}&oauthMetaKeyId=s-1");
    let started = check!(
        "GET",
        "/projects/{project}/sdk/actions/build-oauth",
        p(&build_oauth),
        vec![],
        None,
        200
    );
    assert!(started["redirectUrl"].is_string());
    check!(
        "GET",
        "/v2/projects/{project}/sdk/actions/build-oauth",
        format!("/v2/projects/{PROJECT}{build_oauth}"),
        vec![],
        None,
        200
    );
    check!(
        "GET",
        "/projects/{project}/sdk/actions/session-id/{session}",
        p("/sdk/actions/session-id/s-1"),
        vec![],
        None,
        200
    );
    check!(
        "DELETE",
        "/projects/{project}/sdk/actions/session-id/{session}",
        p("/sdk/actions/session-id/s-1"),
        vec![],
        None,
        200
    );

    // Triggers.
    let event = json!({ "name": "Order Placed", "payload": { "order": 7 } });
    let fired = check!(
        "POST",
        "/projects/{project}/sdk/events/trigger",
        p("/sdk/events/trigger"),
        vec![],
        Some(event.clone()),
        200
    );
    let run = fired["executions"][0].as_str().expect("the event started a run").to_string();
    check!(
        "POST",
        "/v2/projects/{project}/sdk/events/trigger",
        format!("/v2/projects/{PROJECT}/sdk/events/trigger"),
        vec![],
        Some(event),
        200
    );
    let inbound = p(&format!("/sdk/triggers/{INBOUND}"));
    let started = check!(
        "POST",
        "/projects/{project}/sdk/triggers/{workflow}",
        inbound.clone(),
        vec![],
        Some(json!({ "title": "Hello" })),
        200
    );
    assert!(started["executionId"].is_string(), "{started}");
    let refused = check!(
        "POST",
        "/projects/{project}/sdk/triggers/{workflow}",
        inbound,
        vec![],
        Some(json!({ "title": 3 })),
        400
    );
    assert_eq!(refused["code"], "validation");

    // Trigger types.
    let types = check!(
        "GET",
        "/projects/{project}/triggers",
        p("/triggers?integrations=gmail,nope"),
        vec![],
        None,
        200
    );
    assert!(types["errors"].is_array(), "{types}");
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        let url = format!("{}/triggers/connect/{PROJECT}/x/custom-triggers/t-1", s.base);
        let response = http.request(method.parse().unwrap(), url).send().await.unwrap();
        // No integration `x`: 404 (custom triggers' successes are checked in webhooks.rs).
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.unwrap();
        let template = "/triggers/connect/{project}/{integration}/custom-triggers/{trigger}";
        c.check(method, template, 404, &body);
    }
    // The Triggers API, with Ann's Gmail account (stored directly: connecting Gmail takes its
    // OAuth flow). Deliveries go to an override URL that nothing answers; Gmail's triggers poll
    // no sooner than the test ends.
    let gmail = para_store::NewCredential::new(
        PROJECT,
        "ann",
        "gmail",
        para_store::CredentialStatus::Valid,
        "sealed",
    );
    let gmail = s.state.store.insert_credential(&gmail).await.unwrap();
    let subscriptions = p("/trigger-subscriptions");
    let subscribe = json!({ "integration": "gmail", "type": "GMAIL_TRIGGER_NEW_EMAIL_MATCHING_SEARCH",
        "parameters": { "query": "from:billing@acme.com" },
        "webhookOverride": { "url": "http://127.0.0.1:9/events", "headers": { "x-team": "t1" },
                             "metadata": { "tenant": "acme" } } });
    let subscription = check!(
        "POST",
        "/projects/{project}/trigger-subscriptions",
        subscriptions.clone(),
        vec![],
        Some(subscribe),
        200
    );
    assert_eq!(subscription["credentialId"], gmail.id.as_str(), "{subscription}");
    let sub = subscription["id"].as_str().unwrap().to_string();
    let missing = check!(
        "POST",
        "/projects/{project}/trigger-subscriptions",
        subscriptions.clone(),
        vec![],
        Some(json!({ "integration": "gmail", "type": "GMAIL_TRIGGER_NEW_EMAIL_MATCHING_SEARCH",
                     "webhookOverride": { "url": "http://127.0.0.1:9/events" } })),
        400
    );
    assert!(missing["message"].as_str().unwrap().contains("parameters.query"), "{missing}");
    let listed = check!(
        "GET",
        "/projects/{project}/trigger-subscriptions",
        format!("{subscriptions}?integrations=gmail&status=ACTIVE"),
        vec![],
        None,
        200
    );
    assert_eq!(listed["triggers"]["gmail"][0]["id"], sub.as_str(), "{listed}");
    let one = format!("{subscriptions}/{sub}");
    check!("GET", "/projects/{project}/trigger-subscriptions/{id}", one.clone(), vec![], None, 200);
    check!(
        "PATCH",
        "/projects/{project}/trigger-subscriptions/{id}",
        one.clone(),
        vec![],
        Some(json!({ "parameters": { "query": "from:ceo@acme.com" } })),
        200
    );
    check!(
        "POST",
        "/projects/{project}/triggers/examples",
        p("/triggers/examples"),
        vec![],
        Some(json!({ "integration": "gmail", "type": "NO_SUCH_TRIGGER" })),
        400
    );
    check!(
        "DELETE",
        "/projects/{project}/trigger-subscriptions/{id}",
        one.clone(),
        vec![],
        None,
        200
    );
    check!("GET", "/projects/{project}/trigger-subscriptions/{id}", one, vec![], None, 404);
    // Providers' webhooks (the build has no integration that receives them: 404; their
    // successes are checked in webhooks.rs).
    for method in ["GET", "POST", "PUT"] {
        for (template, path) in [
            ("/webhooks/{project}/{integration}", format!("/webhooks/{PROJECT}/slack")),
            ("/webhooks/{project}/{integration}/{hook}", format!("/webhooks/{PROJECT}/slack/h-1")),
        ] {
            let response = http
                .request(method.parse().unwrap(), format!("{}{path}", s.base))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 404, "{method} {path}");
            let body: Value = response.json().await.unwrap();
            c.check(method, template, 404, &body);
        }
    }

    // Task history.
    let history = p("/task-history/workflow-executions");
    let page = check!(
        "GET",
        "/projects/{project}/task-history/workflow-executions",
        format!("{history}?includeTotal=true&limit=1"),
        vec![],
        None,
        200
    );
    assert!(page["total"].as_i64().unwrap() >= 2, "{page}");
    check!(
        "GET",
        "/projects/{project}/task-history/workflow-executions/{execution}",
        format!("{history}/{run}"),
        vec![],
        None,
        200
    );
    check!(
        "POST",
        "/projects/{project}/task-history/workflow-executions/{execution}/replay",
        format!("{history}/{run}/replay"),
        vec![],
        None,
        201
    );

    // Resources.
    let resource = check!(
        "POST",
        "/projects/{project}/sdk/resources/{resource}/connect",
        p(&format!("/sdk/resources/{CRM}/connect")),
        vec![],
        Some(json!({ "apiKey": "good" })),
        200
    );
    assert_eq!(resource["status"], "VALID", "{resource}");

    // Removing accounts.
    check!(
        "DELETE",
        "/projects/{project}/sdk/credentials/{credential}",
        p(&format!("/sdk/credentials/{second}")),
        vec![],
        None,
        200
    );
    check!(
        "DELETE",
        "/projects/{project}/sdk/integrations/{integration}",
        p(&format!("/sdk/integrations/{KEYS}")),
        vec![("x-paragon-credential", id.clone())],
        None,
        200
    );

    // Releases (the deploy key, not a user token).
    let deploy = |method: &'static str, path: &'static str, body: Option<Value>| {
        call(method, path.to_string(), Some(DEPLOY_KEY), vec![], body)
    };
    let (status, list) = deploy("GET", "/deploy/releases", None).await;
    assert_eq!((status, &list["current"]), (200, &json!(1)), "{list}");
    c.check("GET", "/deploy/releases", status, &list);
    let mut second = serde_json::to_value(build(&api)).unwrap();
    second["project"]["projectName"] = json!("second");
    let push = json!({ "build": second, "message": "second", "commit": "abc" });
    let (status, pushed) = deploy("POST", "/deploy/releases", Some(push.clone())).await;
    assert_eq!((status, &pushed["release"]["number"]), (201, &json!(2)), "{pushed}");
    c.check("POST", "/deploy/releases", status, &pushed);
    let (status, again) = deploy("POST", "/deploy/releases", Some(push)).await;
    assert_eq!((status, &again["created"]), (200, &json!(false)), "{again}");
    c.check("POST", "/deploy/releases", status, &again);
    let (status, current) = deploy("POST", "/deploy/releases/1/current", None).await;
    assert_eq!((status, &current["release"]["current"]), (200, &json!(true)), "{current}");
    c.check("POST", "/deploy/releases/{number}/current", status, &current);
    let (status, refused) = call("GET", "/deploy/releases".into(), Some(&ann), vec![], None).await;
    assert_eq!(
        (status, &refused["code"]),
        (401, &json!("deploy_key")),
        "a user token is no deploy key"
    );
    c.check("GET", "/deploy/releases", status, &refused);

    // Every documented operation was called above.
    for (path, methods) in &documented {
        for method in methods {
            let called = c.called.contains(&(method.clone(), path.clone()));
            assert!(called, "`{method} {path}` is documented but not checked against the server");
        }
    }
}
