//! Durability of webhook receiving with the real `para serve` binary: 500 signed Stripe
//! deliveries to a user's webhook URL, the server killed with SIGKILL mid-way and started
//! again. Every delivery the server acknowledged is recorded and has exactly one run; the
//! deliveries it did not acknowledge are sent again by the test (as Stripe does) and run once;
//! acknowledged ones sent again start nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::StreamExt as _;
use hmac::{KeyInit, Mac};
use para_store::Store;
use serde_json::{Value, json};

use crate::common::{Server, http_client as http, para_stdout as run_para};

const N: usize = 500;
const HOOK_SECRET: &str = "whsec_crash_test";
const WORKFLOW: &str = "6b1f4c73-9d8e-4a20-8c3f-7e4a0b9c8d12";

/// A project with one Stripe workflow on `customerCreated`, on by default; its root and id.
fn project(dir: &Path) -> (PathBuf, String) {
    let root = dir.join("project");
    run_para(dir, &["init", root.to_str().unwrap(), "--name", "hooks"]);
    run_para(&root, &["new", "integration", "stripe"]);
    run_para(
        &root,
        &[
            "new",
            "workflow",
            "--integration",
            "stripe",
            "--trigger",
            "customerCreated",
            "--name",
            "On customer",
        ],
    );
    let file = root.join("src/integrations/stripe/workflows/onCustomer.ts");
    let text = std::fs::read_to_string(&file).unwrap();
    let id_line = text.lines().find(|l| l.contains("readonly id = ")).unwrap().to_string();
    let text = text
        .replace("defaultEnabled = false", "defaultEnabled = true")
        .replace(&id_line, &format!("  readonly id = '{WORKFLOW}';"));
    std::fs::write(&file, text).unwrap();
    run_para(&root, &["build", "--quiet"]);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(".para/project.json")).unwrap())
            .unwrap();
    (root, meta["projectId"].as_str().unwrap().to_string())
}

/// Stripe's API: the connection check (`GET /balance`) answers.
async fn stripe_api() -> String {
    let app = axum::Router::new().fallback(|| async { axum::Json(json!({ "object": "balance" })) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn secret_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([7u8; 32])
}

async fn serve(root: &Path, database: &str, api: &str) -> Server {
    Server::serve(root)
        .database(database)
        .env("PARA_SECRET_KEY", secret_key())
        .env("PARA_OAUTH_STRIPE_API_BASE_URL", api)
        .env("PARA_ENGINE_POLL_MS", "100")
        .start_async()
        .await
}

/// Connects `user`'s Stripe account through the Connect API (a secret key); their token.
async fn connect(root: &Path, s: &Server, project: &str, user: &str) -> String {
    let token = run_para(root, &["token", "--user", user]).trim().to_string();
    let sdk = s.url(&format!("/projects/{project}/sdk"));
    let list: Value = http()
        .get(format!("{sdk}/integrations"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stripe = list.as_array().unwrap().iter().find(|i| i["name"] == "Stripe").unwrap();
    let r = http()
        .post(format!("{sdk}/credentials"))
        .bearer_auth(&token)
        .json(&json!({ "integrationId": stripe["id"], "payload": { "secretKey": "sk_test_1" } }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "connecting: {}", r.text().await.unwrap());
    token
}

/// A per-account URL of the credential, as a registration with Stripe leaves it; its id.
async fn add_hook(store: &Store, project: &str, user: &str, credential: &str) -> String {
    let id = format!("h{}", uuid::Uuid::new_v4().simple());
    let key = para_auth::SecretKey::from_base64("test", &secret_key()).unwrap();
    let now = para_store::now_ms();
    store
        .insert_hook(&para_store::webhooks::Hook {
            id: id.clone(),
            project_id: project.into(),
            user_id: user.into(),
            integration: "stripe".into(),
            credential_id: credential.into(),
            workflow_id: String::new(),
            configuration_id: String::new(),
            secret: Some(para_connect::webhooks::seal_hook_secret_with(
                &key,
                project,
                &id,
                HOOK_SECRET.as_bytes(),
            )),
            remote_id: Some("we_1".into()),
            status: "active".into(),
            error: None,
            expires_at: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    id
}

/// Event `i` as Stripe sends it: its body and `Stripe-Signature`.
fn delivery(i: usize) -> (String, String) {
    let body = json!({ "id": format!("evt_{i}"), "type": "customer.created",
                       "data": { "object": { "id": format!("cus_{i}") } } })
    .to_string();
    let t = para_store::now_ms() / 1000;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body.as_bytes());
    let sig: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    (body, format!("t={t},v1={sig}"))
}

/// Sends events `ids` to `url`, 16 at a time; the ids acknowledged with 200 and how many of
/// them were duplicates.
async fn send(url: &str, ids: Vec<usize>, acknowledged: Arc<Mutex<BTreeSet<usize>>>) -> usize {
    let duplicates = Arc::new(Mutex::new(0));
    futures_util::stream::iter(ids)
        .for_each_concurrent(16, |i| {
            let (acknowledged, duplicates) = (acknowledged.clone(), duplicates.clone());
            async move {
                let (body, signature) = delivery(i);
                let sent = http()
                    .post(url)
                    .header("stripe-signature", signature)
                    .header("content-type", "application/json")
                    .body(body)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                if let Ok(r) = sent
                    && r.status() == 200
                {
                    let answer: Value = r.json().await.unwrap_or(Value::Null);
                    if answer["duplicates"] == 1 {
                        *duplicates.lock().unwrap() += 1;
                    }
                    acknowledged.lock().unwrap().insert(i);
                }
            }
        })
        .await;
    *duplicates.lock().unwrap()
}

/// Runs of the workflow per Stripe event id.
async fn runs_per_event(store: &Store, project: &str) -> BTreeMap<String, usize> {
    let filter =
        para_store::history::RunFilter { workflow_id: Some(WORKFLOW.into()), ..Default::default() };
    let page = store.list_runs(project, &filter, 10_000, None).await.unwrap();
    let mut out = BTreeMap::new();
    for l in page.runs {
        let id = l.run.trigger_input["result"]["id"].as_str().unwrap_or("?").to_string();
        *out.entry(id).or_default() += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_acknowledged_webhook_and_runs_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let (root, project) = project(dir.path());
    let api = stripe_api().await;
    let database = format!("sqlite://{}", dir.path().join("para.db").display());
    let first = serve(&root, &database, &api).await;
    connect(&root, &first, &project, "ann").await;
    let store = Store::open(&database).await.unwrap();
    let credential = store.credentials(&project, "ann", None).await.unwrap()[0].id.clone();
    let hook = add_hook(&store, &project, "ann", &credential).await;
    let url = first.url(&format!("/webhooks/{project}/stripe/{hook}"));

    // Deliver all 500; kill the server once a third is acknowledged.
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let sending = {
        let (url, acknowledged) = (url.clone(), acknowledged.clone());
        tokio::spawn(async move { send(&url, (0..N).collect(), acknowledged).await })
    };
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < N / 3 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(first);
    sending.await.unwrap();
    let acked: BTreeSet<usize> = acknowledged.lock().unwrap().clone();
    assert!(acked.len() < N, "the kill came too late to test anything");
    // Every acknowledged delivery was committed before its answer.
    let recorded: BTreeSet<String> = store
        .webhook_events(&project, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.dedupe_key)
        .collect();
    for i in &acked {
        assert!(
            recorded.contains(&format!("id:evt_{i}")),
            "evt_{i} was acknowledged but not recorded"
        );
    }

    // Started again: the test delivers again what was not acknowledged, and some that were.
    let second = serve(&root, &database, &api).await;
    let url = second.url(&format!("/webhooks/{project}/stripe/{hook}"));
    let missing: Vec<usize> = (0..N).filter(|i| !acked.contains(i)).collect();
    let again = Arc::new(Mutex::new(BTreeSet::new()));
    send(&url, missing.clone(), again.clone()).await;
    assert_eq!(again.lock().unwrap().len(), missing.len(), "every redelivery is acknowledged");
    let replayed: Vec<usize> = acked.iter().copied().take(50).collect();
    let duplicates = send(&url, replayed.clone(), Arc::new(Mutex::new(BTreeSet::new()))).await;
    assert_eq!(duplicates, replayed.len(), "acknowledged events sent again are duplicates");

    let started = Instant::now();
    loop {
        let runs = runs_per_event(&store, &project).await;
        if runs.len() == N {
            let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
            assert!(twice.is_empty(), "events with more than one run: {twice:?}");
            for i in 0..N {
                assert!(runs.contains_key(&format!("evt_{i}")), "evt_{i} has no run");
            }
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {N} events have runs; pending events: {}",
            runs.len(),
            store
                .webhook_events(&project, 10_000)
                .await
                .unwrap()
                .iter()
                .filter(|e| e.status == "pending")
                .count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
