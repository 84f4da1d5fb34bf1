//! The webhook part of `para-bench engine`: signed Stripe deliveries to each user's per-account
//! webhook URL, measured next to the App Events in the same server.
//!
//! - The bench project has a Stripe workflow on `customerCreated` (on by default); each user
//!   connects a Stripe key through the Connect API (the check goes to the loopback upstream).
//! - Each user gets a per-account URL with its own signing secret, written to the database as a
//!   registration with Stripe leaves it (`webhook_hooks`; the secret sealed with the server's
//!   `PARA_SECRET_KEY`).
//! - `--events` deliveries, each a distinct event signed as Stripe signs (`Stripe-Signature:
//!   t=…,v1=<hex HMAC-SHA256 of "t.body">`), are posted over `--connections` keep-alive
//!   connections, users in turn. A 200 means the event is committed: accepted/s counts those.
//! - Delivery to run: for each event, the time from sending it to its run being recorded
//!   (queued by the dispatcher) and to the run finishing, read from the runs table.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde_json::json;

use crate::engine::KeepAlive;

/// The Stripe workflow's id in the bench project.
pub const WORKFLOW_ID: &str = "9c2e5d84-1a7b-4f36-b8c0-3d5e7f9a1b24";
/// The server's secret key in the bench (so the bench can seal the URLs' secrets).
pub fn secret_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([42u8; 32])
}

/// A user's URL and its secret.
pub struct Hook {
    pub path: String,
    pub secret: String,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Writes a per-account Stripe URL for each of `users` (their newest Stripe credential).
pub fn add_hooks(database: &str, project_id: &str, users: &[String]) -> anyhow::Result<Vec<Hook>> {
    let key = para_auth::SecretKey::from_base64("bench", &secret_key())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    runtime()?.block_on(async {
        let store = para_store::Store::open(database).await?;
        let mut hooks = Vec::new();
        for (i, user) in users.iter().enumerate() {
            let credentials = store.credentials(project_id, user, Some("stripe")).await?;
            let credential =
                credentials.first().with_context(|| format!("{user} has no Stripe account"))?;
            let id = format!("bench{i}x{}", std::process::id());
            let secret = format!("whsec_bench_{i}");
            let now = para_store::now_ms();
            store
                .insert_hook(&para_store::webhooks::Hook {
                    id: id.clone(),
                    project_id: project_id.into(),
                    user_id: user.clone(),
                    integration: "stripe".into(),
                    credential_id: credential.id.clone(),
                    workflow_id: String::new(),
                    configuration_id: String::new(),
                    secret: Some(para_connect::webhooks::seal_hook_secret_with(
                        &key,
                        project_id,
                        &id,
                        secret.as_bytes(),
                    )),
                    remote_id: None,
                    status: "active".into(),
                    error: None,
                    expires_at: None,
                    created_at: now,
                    updated_at: now,
                })
                .await?;
            hooks.push(Hook { path: format!("/webhooks/{project_id}/stripe/{id}"), secret });
        }
        Ok(hooks)
    })
}

/// What the deliveries measured.
pub struct Deliveries {
    pub n: usize,
    /// From the first send to the last 200.
    pub posted: Duration,
    /// From the first send until every event's run SUCCEEDED.
    pub completed: Duration,
    /// Milliseconds from sending each event to its run being recorded, sorted.
    pub to_run: Vec<i64>,
    /// Milliseconds from sending each event to its run finishing, sorted.
    pub to_done: Vec<i64>,
}

impl Deliveries {
    pub fn percentile(sorted: &[i64], p: f64) -> i64 {
        if sorted.is_empty() {
            return 0;
        }
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[i.min(sorted.len() - 1)]
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Posts `n` signed deliveries over `connections` connections and waits for their runs.
pub fn deliver(
    addr: SocketAddr,
    database: &str,
    project_id: &str,
    admin_key: &str,
    hooks: &[Hook],
    n: usize,
    connections: usize,
) -> anyhow::Result<Deliveries> {
    let hooks: Arc<Vec<(String, String)>> =
        Arc::new(hooks.iter().map(|h| (h.path.clone(), h.secret.clone())).collect());
    let sent_at = Arc::new(Mutex::new(vec![0i64; n]));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let posters: Vec<_> = (0..connections.min(n).max(1))
        .map(|_| {
            let (next, hooks, sent_at) = (next.clone(), hooks.clone(), sent_at.clone());
            thread::spawn(move || -> anyhow::Result<()> {
                let mut conn = KeepAlive::open(addr)?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok(());
                    }
                    let (path, secret) = &hooks[i % hooks.len()];
                    let body = json!({ "id": format!("evt_bench_{i}"), "type": "customer.created",
                                       "data": { "object": { "id": format!("cus_{i}") } } })
                    .to_string();
                    let t = now_ms() / 1000;
                    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())?;
                    mac.update(format!("{t}.").as_bytes());
                    mac.update(body.as_bytes());
                    let sig: String =
                        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
                    let header = format!("t={t},v1={sig}");
                    sent_at.lock().unwrap_or_else(|e| e.into_inner())[i] = now_ms();
                    let (status, answer) =
                        conn.post_with(addr, path, &[("Stripe-Signature", &header)], &body)?;
                    if status != 200 || !answer.contains("\"accepted\":1") {
                        bail!(
                            "POST {path} answered HTTP {status}: {}",
                            crate::http::excerpt(&answer)
                        );
                    }
                }
            })
        })
        .collect();
    for p in posters {
        p.join().map_err(|_| anyhow::anyhow!("a webhook poster panicked"))??;
    }
    let posted = started.elapsed();
    let sent_at = sent_at.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // Counted through the history API (cheap) until every run is done; then the runs are read
    // once for their times.
    let count = |status| {
        crate::engine::count_workflow_runs(addr, project_id, admin_key, WORKFLOW_ID, status)
    };
    loop {
        let failed = count("FAILED")?;
        if failed > 0 {
            bail!("{failed} of the webhook runs FAILED");
        }
        let done = count("SUCCEEDED")? as usize;
        if done >= n {
            let completed = started.elapsed();
            let rt = runtime()?;
            let store = rt.block_on(para_store::Store::open(database))?;
            let filter = para_store::history::RunFilter {
                workflow_id: Some(WORKFLOW_ID.into()),
                ..Default::default()
            };
            let mut runs = Vec::new();
            let mut after = None;
            loop {
                let page =
                    rt.block_on(store.list_runs(project_id, &filter, 1000, after.as_ref()))?;
                runs.extend(page.runs.into_iter().map(|l| l.run));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            let mut index = HashMap::new();
            for r in &runs {
                if let Some(id) = r.trigger_input["result"]["id"].as_str()
                    && let Some(i) =
                        id.strip_prefix("evt_bench_").and_then(|i| i.parse::<usize>().ok())
                {
                    index.insert(i, (r.created_at, r.finished_at.unwrap_or(r.updated_at)));
                }
            }
            if index.len() != n {
                bail!(
                    "{} runs for {n} events: an event started no run or more than one",
                    index.len()
                );
            }
            let mut to_run: Vec<i64> = index.iter().map(|(i, (c, _))| c - sent_at[*i]).collect();
            let mut to_done: Vec<i64> = index.iter().map(|(i, (_, f))| f - sent_at[*i]).collect();
            to_run.sort_unstable();
            to_done.sort_unstable();
            return Ok(Deliveries { n, posted, completed, to_run, to_done });
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("only {done} of {n} webhook runs SUCCEEDED after 10 minutes");
        }
        thread::sleep(Duration::from_millis(50));
    }
}
