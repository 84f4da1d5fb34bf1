//! The engine's host in a `para` process: it starts runs, leases due runs from the database,
//! executes them with `para_engine::run::execute` (the `Host` here sends requests through
//! `para_connect::Connect::send`) and commits their journals; the poller, cron and polling
//! triggers; a project's environment secrets.
//!
//! [`Worker`] holds the credentials domain and the engine. `para serve` builds one inside its
//! `AppState`; `para run` builds one alone. Nothing here answers HTTP: no axum, no
//! `para-server`; errors are [`Error`], which the edge maps to statuses.

pub mod actions;
pub mod alerts;
pub mod deliveries;
pub mod engine;
pub mod permissions;
pub mod subscriptions;
pub mod triggers;
pub mod webhooks;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use para_connect::Connect;

pub use engine::{Engine, EngineConfig};
/// Function steps' process-wide memory settings (set once by the binary at start).
pub use para_js::{SandboxMemoryConfig, set_sandbox_memory_config};

/// What the worker is configured with besides the engine's tunables.
#[derive(Debug, Clone, Default)]
pub struct WorkerConfig {
    /// Where the project's `.para/secrets.json` (`para secrets set`) is read.
    pub project_root: PathBuf,
    /// Workflows' permissions read only the metadata a user's token signed
    /// (`PARA_PERMISSIONS_METADATA=token`).
    pub permissions_from_token_only: bool,
    /// `PARA_SECRET_<NAME>` variables: they win over `.para/secrets.json`.
    pub env_secrets: para_auth::env_secrets::EnvSecrets,
    /// Where Triggers API deliveries go and how they are retried.
    pub triggers_api: deliveries::TriggersApiConfig,
    /// The deployment's alert destination and how alerts are retried.
    pub alerts: alerts::AlertsConfig,
}

/// The engine of one process over the credentials domain of its project.
pub struct Worker {
    pub connect: Arc<Connect>,
    pub engine: Engine,
    pub config: WorkerConfig,
    /// Wakes the webhook dispatcher ([`webhooks::dispatch_loop`]) when events were recorded.
    pub webhooks_wake: tokio::sync::Notify,
    /// Wakes the Triggers API sender ([`deliveries::delivery_loop`]) when deliveries were
    /// recorded.
    pub deliveries_wake: tokio::sync::Notify,
    /// Wakes the alerts' sender ([`alerts::alert_loop`]) when events were recorded.
    pub alerts_wake: tokio::sync::Notify,
    /// One update of a user's webhook registrations at a time ([`subscriptions::reconcile`]).
    pub subscription_locks: subscriptions::Locks,
}

impl std::ops::Deref for Worker {
    type Target = Connect;

    fn deref(&self) -> &Connect {
        &self.connect
    }
}

impl Worker {
    /// A worker over `connect`; a new connection starts the user's integration-enabled
    /// workflows from now on ([`para_connect::Hooks`]).
    pub fn new(connect: Arc<Connect>, engine: EngineConfig, config: WorkerConfig) -> Arc<Worker> {
        let worker = Arc::new(Worker {
            connect,
            engine: Engine::new(engine),
            config,
            webhooks_wake: tokio::sync::Notify::new(),
            deliveries_wake: tokio::sync::Notify::new(),
            alerts_wake: tokio::sync::Notify::new(),
            subscription_locks: subscriptions::Locks::default(),
        });
        worker.connect.set_hooks(Arc::new(Hooks(Arc::downgrade(&worker))));
        worker
    }
}

/// Starts the worker's background tasks (once per worker): the engine's committer, poller and
/// lease renewer ([`engine::start_workers`]), the cron scheduler, the polling triggers, the
/// webhook dispatcher, the Triggers API sender, the alerts' sender and the webhook registrations' retries and
/// renewals.
pub fn start(worker: &Arc<Worker>) {
    if engine::start_workers(worker) {
        tokio::spawn(triggers::cron_loop(worker.clone()));
        tokio::spawn(triggers::polling_loop(worker.clone()));
        tokio::spawn(webhooks::dispatch_loop(worker.clone()));
        tokio::spawn(deliveries::delivery_loop(worker.clone()));
        tokio::spawn(alerts::alert_loop(worker.clone()));
        tokio::spawn(subscriptions::maintain_loop(worker.clone()));
    }
}

struct Hooks(std::sync::Weak<Worker>);

impl para_connect::Hooks for Hooks {
    fn connected<'a>(
        &'a self,
        user_id: &'a str,
        integration: &'a str,
        credential_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if let Some(worker) = self.0.upgrade() {
                let connected = para_store::alerts::CONNECTED;
                alerts::connection(&worker, connected, user_id, integration, Some(credential_id))
                    .await;
                triggers::integration_enabled(&worker, user_id, integration, credential_id).await;
                reconcile_later(worker, user_id, integration);
            }
        })
    }

    fn settings_changed<'a>(
        &'a self,
        user_id: &'a str,
        integration: &'a str,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if let Some(worker) = self.0.upgrade() {
                reconcile_later(worker, user_id, integration);
            }
        })
    }

    fn disconnecting<'a>(
        &'a self,
        user_id: &'a str,
        integration: &'a str,
        credential_id: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if let Some(worker) = self.0.upgrade() {
                subscriptions::disconnecting(&worker, user_id, integration, credential_id).await;
            }
        })
    }

    fn disconnected<'a>(
        &'a self,
        user_id: &'a str,
        integration: &'a str,
        credential_id: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if let Some(worker) = self.0.upgrade() {
                let kind = para_store::alerts::DISCONNECTED;
                alerts::connection(&worker, kind, user_id, integration, credential_id).await;
            }
        })
    }
}

/// Registers or removes the user's webhooks of `integration` in the background: the request
/// that turned a workflow on does not wait for the provider.
fn reconcile_later(worker: Arc<Worker>, user_id: &str, integration: &str) {
    let (user_id, integration) = (user_id.to_string(), integration.to_string());
    tokio::spawn(async move {
        subscriptions::reconcile(&worker, &user_id, &integration).await;
    });
}

/// Why a run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine's tasks are not running in this process.
    #[error("the workflow engine is not running in this process")]
    EngineStopped,
    #[error("no workflow `{0}`")]
    NoWorkflow(String),
    /// The run could not be written: nothing was started.
    #[error("the run could not be recorded; try again")]
    NotRecorded,
    #[error("storage error: {0}")]
    Store(#[from] para_store::StoreError),
}
