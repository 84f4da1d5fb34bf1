//! User Settings as the `@useparagon/connect` SDK reads them: `GET /sdk/integrations` serves
//! inputs in the SDK's vocabulary (`SidebarInputType`, per-type fields at the top), hidden and
//! forbidden workflows for `hiddenWorkflows`, and `sdkIntegrationConfig.dataSources`; `POST
//! /sdk/actions` answers `getFieldOptions` with a data source's choices, by page and search,
//! listed with the account `X-Paragon-Credential` names.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::any;
use para_server::OAuthClient;
use serde_json::{Value, json};

use crate::common::{self, TestServer, token};

const PROJECT: &str = "p-sdk-settings";
const CUSTOM: &str = "custom.tracker";

fn input(id: &str, key: &str, ty: &str, extra: Value) -> Value {
    let mut i = json!({ "id": id, "key": key, "title": format!("The {key}"), "type": ty, "required": false });
    if !extra.is_null() {
        i["options"] = extra;
    }
    i
}

fn workflow(id: &str, order: u32, hidden: bool, permissions: Value) -> Value {
    json!({ "id": id, "name": format!("Workflow {id}"), "description": null, "order": order,
            "defaultEnabled": false, "hidden": hidden, "inputs": [], "source": "w.ts",
            "trigger": null, "steps": [], "permissions": permissions })
}

fn catalog(key: &str, name: &str, inputs: Value, workflows: Value) -> Value {
    json!({ "key": key, "kind": "catalog", "name": name, "source": format!("src/integrations/{key}"),
            "config": { "description": null, "overview": null, "showWatermark": true, "active": true,
                        "workflowDisplayOrder": [] },
            "inputs": inputs, "workflows": workflows, "customTriggers": {} })
}

fn build() -> para_build::Build {
    let pro_only = json!({ "or": [[{ "operator": "$stringExactlyMatches", "operands": [
        { "type": "PERSONA_METADATA", "path": ["plan"] }, { "type": "VALUE", "value": "pro" } ] }]] });
    let mut slack_workflows = json!({
        "w-visible": workflow("w-visible", 0, false, Value::Null),
        "w-hidden": workflow("w-hidden", 1, true, Value::Null),
        "w-pro": workflow("w-pro", 2, false, pro_only.clone()),
        "w-hidden-pro": workflow("w-hidden-pro", 3, true, pro_only),
    });
    slack_workflows["w-visible"]["inputs"] = json!([input("wi-1", "limit", "number", Value::Null)]);
    let slack = catalog(
        "slack",
        "Slack",
        json!([
            input("i-channel", "channel", "channel", Value::Null),
            input(
                "i-pipe",
                "pipe",
                "custom_dropdown",
                json!({
                "customDropdownOptions": [{ "label": "Sales", "value": "sales" }, { "label": "Support", "value": "support" }] })
            ),
            input("i-keyed", "keyed", "custom_dropdown", json!({ "key": "teams" })),
            input("i-text", "owner", "text", Value::Null),
            input("i-secret", "secret", "password", Value::Null),
            input("i-flag", "flag", "boolean", Value::Null),
        ]),
        slack_workflows,
    );
    let hubspot = catalog(
        "hubspot",
        "HubSpot",
        json!([
            input(
                "h-map",
                "map",
                "field_mapping",
                json!({
                "fieldMappings": [{ "label": "Title", "value": "title" }, { "label": "Due date" }],
                "useDynamicMapper": true })
            ),
            input("h-object", "object", "record_type", Value::Null),
        ]),
        json!({}),
    );
    let mut custom = common::custom(CUSTOM, "basic", json!({ "type": "none" }), Value::Null);
    custom["inputs"] = json!([input(
        "c-map",
        "map",
        "field_mapping",
        json!({
        "fieldMappings": [{ "label": "Body" }] })
    )]);
    common::build(PROJECT, json!({ "slack": slack, "hubspot": hubspot, CUSTOM: custom }))
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|x| x[key] == value))
        .unwrap_or_else(|| panic!("no {key} = {value} in {list}"))
}

#[tokio::test]
async fn integrations_serve_user_settings_in_the_sdks_vocabulary() {
    let s = TestServer::builder(build()).sqlite_file().start().await;
    let (status, list) = s.call("GET", "/sdk/integrations", &token("ann"), None).await;
    assert_eq!(status, 200, "{list}");

    let slack = find(&list, "type", "slack");
    let values = &slack["configs"][0]["values"];
    let inputs = &values["sharedMeta"]["inputs"];
    assert_eq!(
        inputs,
        &json!([
            { "id": "i-channel", "key": "channel", "title": "The channel", "required": false,
              "type": "DYNAMIC_ENUM", "sourceType": "channel" },
            { "id": "i-pipe", "key": "pipe", "title": "The pipe", "required": false,
              "type": "CUSTOM_DROPDOWN", "keyIsDefault": true,
              "customDropdownOptions": [{ "label": "Sales", "value": "sales" }, { "label": "Support", "value": "support" }] },
            { "id": "i-keyed", "key": "teams", "title": "The keyed", "required": false,
              "type": "CUSTOM_DROPDOWN", "keyIsDefault": false, "customDropdownOptions": [] },
            { "id": "i-text", "key": "owner", "title": "The owner", "required": false, "type": "TEXT_NO_VARS" },
            { "id": "i-secret", "key": "secret", "title": "The secret", "required": false, "type": "PASSWORD" },
            { "id": "i-flag", "key": "flag", "title": "The flag", "required": false, "type": "SWITCH" },
        ])
    );
    assert_eq!(
        values["workflowMeta"]["w-visible"]["inputs"],
        json!([{ "id": "wi-1", "key": "limit", "title": "The limit", "required": false, "type": "NUMBER" }])
    );
    // The data sources getSourcesForInput / getDataSourceOptions read.
    let sources = &slack["sdkIntegrationConfig"]["dataSources"];
    assert_eq!(sources["channel"]["type"], "DYNAMIC_DATA_SOURCE");
    assert_eq!(sources["channel"]["cacheKey"], "channel");
    assert_eq!(sources["channel"]["title"], "Channel");
    assert_eq!(sources["channel"]["supportPagination"], true);
    for list in ["accountTypes", "authConfigInputs", "postOauthInputs", "oauthInputs"] {
        assert!(slack["sdkIntegrationConfig"][list].is_array(), "{list}: {slack}");
    }

    // Hidden workflows and those the user may not use are listed for `hiddenWorkflows`: the
    // SDK keeps those with `hidden` or (`permissions` and in `noPermissionWorkflows`).
    let ids = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(&slack["workflows"]), ["w-visible", "w-hidden"]);
    assert_eq!(slack["noPermissionWorkflows"], json!(["w-pro", "w-hidden-pro"]));
    let meta = &values["workflowMeta"];
    assert_eq!(meta["w-hidden"]["hidden"], true);
    assert!(meta["w-visible"].get("permissions").is_none());
    assert!(meta["w-hidden"].get("permissions").is_none());
    for denied in ["w-pro", "w-hidden-pro"] {
        assert_eq!(
            meta[denied]["permissions"],
            json!({ "type": "JOIN", "join": "OR", "conditions": [] }),
            "the condition itself is not sent"
        );
    }
    // With the metadata the condition reads, the workflow is the user's.
    let pro = {
        let pem = para_auth::keys::load_private_key(common::keys_root()).unwrap();
        let mut claims = para_auth::Claims::new("pat", std::time::Duration::from_secs(3600));
        claims.meta = Some(json!({ "plan": "pro" }));
        para_auth::sign(&pem, &claims).unwrap()
    };
    let (_, list) = s.call("GET", "/sdk/integrations", &pro, None).await;
    let slack = find(&list, "type", "slack");
    assert_eq!(ids(&slack["workflows"]), ["w-visible", "w-hidden", "w-pro", "w-hidden-pro"]);
    assert_eq!(slack["noPermissionWorkflows"], json!([]));
    assert!(slack["configs"][0]["values"]["workflowMeta"]["w-pro"].get("permissions").is_none());

    // A field mapping of a catalog integration with record types names its field mapper.
    let hubspot = find(&list, "type", "hubspot");
    let inputs = &hubspot["configs"][0]["values"]["sharedMeta"]["inputs"];
    assert_eq!(
        inputs[0],
        json!({ "id": "h-map", "key": "map", "title": "The map", "required": false,
                "type": "FIELD_MAPPER", "sourceType": "field_mapping", "useDynamicMapper": true,
                "savedFieldMappings": [{ "label": "Title", "value": "title" }, { "label": "Due date", "value": "Due date" }],
                "fieldMappings": [{ "label": "Title", "value": "title" }, { "label": "Due date" }] })
    );
    assert_eq!(
        (&inputs[1]["type"], &inputs[1]["sourceType"]),
        (&json!("DYNAMIC_ENUM"), &json!("record_type"))
    );
    let sources = &hubspot["sdkIntegrationConfig"]["dataSources"];
    assert_eq!(sources["record_type"]["cacheKey"], "record_type");
    assert_eq!(
        (&sources["field_mapping"]["type"], &sources["field_mapping"]["id"]),
        (&json!("FIELD_MAPPER_DATA_SOURCE"), &json!("field_mapping"))
    );
    assert_eq!(sources["field_mapping"]["recordSource"]["cacheKey"], "record_type");
    assert_eq!(sources["field_mapping"]["fieldSource"]["cacheKey"], "field_mapping.fields");

    // A custom integration knows no record types: its mapping has no source.
    let custom = find(&list, "type", "custom");
    let mapping = &custom["configs"][0]["values"]["sharedMeta"]["inputs"][0];
    assert_eq!(mapping["type"], "FIELD_MAPPER");
    assert!(mapping.get("sourceType").is_none(), "{mapping}");
    assert_eq!(custom["sdkIntegrationConfig"]["dataSources"], json!({}));

    let (status, _) = s.call("GET", "/sdk/integrations", "not-a-token", None).await;
    assert_eq!(status, 401);
}

/// Settings the SDK writes back are still checked against the inputs; a dropdown's value may
/// be one the app offered (`connect(type, { dropdowns })`), not only a declared one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_saved_through_the_sdk_accept_dropdown_options_the_app_gave() {
    let (provider, _) = provider().await;
    let s = server(&provider).await;
    let ann = connect(&s, "ann", "xoxb-a").await;
    let patch = |shared: Value| {
        let s = &s;
        let ann = ann.clone();
        async move {
            let body = json!({ "config": { "sharedSettings": shared } });
            s.call("PATCH", &format!("/sdk/credentials/{ann}"), &token("ann"), Some(body)).await
        }
    };
    let (status, body) = patch(json!({ "i-pipe": "marketing", "i-keyed": "t-1" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"], json!([]));
    assert_eq!(body["configurations"][0]["sharedSettings"]["i-pipe"], "marketing");
    let (_, body) = patch(json!({ "i-pipe": { "not": "an option" } })).await;
    assert_eq!(body["errors"], json!(["The pipe must be one of its options (text)."]));
    let (_, body) = patch(json!({ "i-flag": "yes" })).await;
    assert_eq!(body["errors"], json!(["The flag must be on or off (true or false)."]));
}

/// What the loopback provider answers: Slack channels, a different list per access token.
#[derive(Default)]
struct Provider {
    listings: AtomicUsize,
}

async fn api(
    State(seen): State<Arc<Provider>>,
    uri: Uri,
    headers: HeaderMap,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let json_type = [("content-type", "application/json")];
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let prefix = match auth {
        "Bearer xoxb-a" => "alpha",
        "Bearer xoxb-b" => "beta",
        _ => return (StatusCode::UNAUTHORIZED, json_type, json!({ "ok": false }).to_string()),
    };
    match uri.path() {
        "/api/auth.test" => (StatusCode::OK, json_type, json!({ "ok": true }).to_string()),
        "/api/conversations.list" => {
            seen.listings.fetch_add(1, Ordering::SeqCst);
            let channels: Vec<Value> = (0..250)
                .map(|i| json!({ "id": format!("C{i:03}"), "name": format!("{prefix}-{i:03}") }))
                .collect();
            (StatusCode::OK, json_type, json!({ "ok": true, "channels": channels }).to_string())
        }
        _ => (StatusCode::NOT_FOUND, json_type, "{}".into()),
    }
}

async fn provider() -> (String, Arc<Provider>) {
    let seen = Arc::new(Provider::default());
    let app = axum::Router::new().route("/api/{*rest}", any(api)).with_state(seen.clone());
    (common::serve(app).await, seen)
}

async fn server(provider_base: &str) -> TestServer {
    let slack = OAuthClient {
        client_id: "slack-app".into(),
        client_secret: "slack-secret".into(),
        api_base_url: Some(format!("{provider_base}/api")),
        ..OAuthClient::default()
    };
    TestServer::builder(build()).oauth_client("slack", slack).start().await
}

/// A Slack account of `user` whose access token is `access`; its credential id.
async fn connect(s: &TestServer, user: &str, access: &str) -> String {
    s.state.store.touch_user(PROJECT, user, None).await.unwrap();
    let connector = para_server::connector::Connector::of(&s.state, "slack").unwrap();
    let answer = json!({ "access_token": access, "token_type": "bot" });
    let c = para_server::connect::store_connection(
        &s.state,
        user,
        &connector,
        para_server::connector::Material::default(),
        answer.as_object().unwrap().clone(),
    )
    .await
    .unwrap();
    c.id
}

fn options_request(action: &str, source: &str, cursor: Value, search: Option<&str>) -> Value {
    json!({ "action": action, "sourceKey": source, "parameters": [],
            "paginationParameters": { "pageCursor": cursor, "search": search } })
}

fn labels(body: &Value) -> Vec<String> {
    body["output"]["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records: {body}"))
        .iter()
        .map(|r| r["label"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_options_list_a_data_source_by_page_and_search_with_the_chosen_account() {
    let (provider_base, seen) = provider().await;
    let s = server(&provider_base).await;
    let first = connect(&s, "ann", "xoxb-a").await;
    let second = connect(&s, "ann", "xoxb-b").await;
    let broken = connect(&s, "ann", "xoxb-revoked").await;
    let bob_account = connect(&s, "bob", "xoxb-b").await;
    let ann = token("ann");
    let ask = |body: Value, credential: Option<&str>| {
        let s = &s;
        let ann = ann.clone();
        let credential = credential.map(str::to_string);
        async move {
            let headers: Vec<(&str, &str)> = credential
                .as_deref()
                .map(|c| vec![("x-paragon-credential", c)])
                .unwrap_or_default();
            s.call_with("POST", "/sdk/actions", &ann, &headers, Some(body)).await
        }
    };

    // Page by page (the SDK's first cursor is 0), with the account named.
    let (status, page1) =
        ask(options_request("slack", "channel", json!(0), None), Some(&first)).await;
    assert_eq!(status, 200, "{page1}");
    assert_eq!(page1["output"]["records"][0], json!({ "label": "alpha-000", "value": "C000" }));
    assert_eq!(labels(&page1).len(), 100);
    assert_eq!(page1["output"]["nextPageCursor"], "100");
    let (_, page3) =
        ask(options_request("slack", "channel", json!("200"), None), Some(&first)).await;
    assert_eq!(labels(&page3).len(), 50);
    assert_eq!(labels(&page3)[0], "alpha-200");
    assert_eq!(page3["output"]["nextPageCursor"], Value::Null);
    assert_eq!(seen.listings.load(Ordering::SeqCst), 1, "one listing serves the pages");

    // A search (label or value, any case) is paged too.
    let (_, found) =
        ask(options_request("slack", "channel", json!(0), Some("ALPHA-24")), Some(&first)).await;
    assert_eq!(labels(&found), (240..250).map(|i| format!("alpha-{i}")).collect::<Vec<_>>());
    assert_eq!(found["output"]["nextPageCursor"], Value::Null);
    let (_, by_value) =
        ask(options_request("slack", "channel", json!(0), Some("c007")), Some(&first)).await;
    assert_eq!(labels(&by_value), ["alpha-007"]);

    // The other account lists its own channels; without the header, the user's valid one.
    let (_, other) = ask(options_request("slack", "channel", json!(0), None), Some(&second)).await;
    assert_eq!(labels(&other)[0], "beta-000");
    let (status, default) =
        ask(options_request("slack", "channel", false.into(), None), None).await;
    assert_eq!(status, 200, "{default}");
    assert!(labels(&default)[0].ends_with("-000"), "{default}");

    // An account that is not the user's, or not valid, is refused (never 401/403: the SDK
    // would log the user out).
    let (status, body) =
        ask(options_request("slack", "channel", json!(0), None), Some(&bob_account)).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["message"].as_str().unwrap().contains("X-Paragon-Credential"), "{body}");
    assert!(!body.to_string().contains("beta-"), "nothing of Bob's: {body}");
    let (status, body) =
        ask(options_request("slack", "channel", json!(0), None), Some(&broken)).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("credential_invalid")), "{body}");
    // Someone without an account gets a reason, not someone else's list.
    let (status, body) = s
        .call(
            "POST",
            "/sdk/actions",
            &token("carol"),
            Some(options_request("slack", "channel", json!(0), None)),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (422, Some("not_connected")), "{body}");

    // Record types from the catalog (no account needed), and the fields para cannot list.
    let (status, records) =
        ask(options_request("hubspot", "record_type", json!(0), Some("co")), None).await;
    assert_eq!(status, 200, "{records}");
    assert_eq!(labels(&records), ["contacts", "companies"]);
    let (status, body) =
        ask(options_request("hubspot", "field_mapping.fields", json!(0), None), None).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("fields_not_listed")), "{body}");

    // What an attacker or a confused client may send.
    let (status, body) = ask(options_request("slack", "nope", json!(0), None), None).await;
    assert_eq!(status, 404);
    assert!(body["message"].as_str().unwrap().contains("its sources are channel"), "{body}");
    let (status, _) = ask(options_request(CUSTOM, "channel", json!(0), None), None).await;
    assert_eq!(status, 404, "a custom integration has no data sources");
    let (status, _) = ask(options_request("salesforce", "record_type", json!(0), None), None).await;
    assert_eq!(status, 404, "not an integration of the project");
    for cursor in [json!(-1), json!("x"), json!(1.5), json!({})] {
        let (status, body) =
            ask(options_request("slack", "channel", cursor.clone(), None), None).await;
        assert_eq!(status, 400, "{cursor}: {body}");
        assert!(body["message"].as_str().unwrap().contains("pageCursor"), "{body}");
    }
    let long = "x".repeat(201);
    let (status, _) = ask(options_request("slack", "channel", json!(0), Some(&long)), None).await;
    assert_eq!(status, 400);
    let mut body = options_request("slack", "channel", json!(0), None);
    body["parameters"] = json!("nope");
    let (status, _) = ask(body, None).await;
    assert_eq!(status, 400);
    let (status, body) = ask(json!({ "sourceKey": "channel" }), None).await;
    assert_eq!(status, 400, "no action: {body}");
    assert_eq!(body["code"], "bad_request");
    let huge =
        json!({ "action": "slack", "sourceKey": "channel", "parameters": ["x".repeat(70_000)] });
    let (status, body) = ask(huge, None).await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = s
        .call(
            "POST",
            "/sdk/actions",
            "not-a-token",
            Some(options_request("slack", "channel", json!(0), None)),
        )
        .await;
    assert_eq!(status, 401);
    // Not a getFieldOptions body: ActionKit, which para does not offer.
    let (status, body) =
        ask(json!({ "action": "SLACK_SEND_MESSAGE", "parameters": {} }), None).await;
    assert_eq!(status, 404);
    assert!(body["message"].as_str().unwrap().contains("paragon.request"), "{body}");
}
