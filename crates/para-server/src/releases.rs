//! Releases (issue 22): what a server started without a project folder serves.
//!
//! `para push` uploads a build to `POST /deploy/releases` (`routes/deploy.rs`); the store keeps
//! it as a numbered release and makes it current. Every process follows the current release:
//! the one that took the push at once, the others when PostgreSQL notifies the change (or,
//! on SQLite or while the notification connection is down, within [`POLL`] by polling).
//! [`Releases::served`] is the release this process serves, a `watch` channel its
//! [`AppState`](crate::AppState) swaps the served build from; a request in flight keeps the
//! build it started with.
//!
//! A process serving a project folder (`para serve` in the project, `para dev`) has a
//! [`Releases`] too, in [`Mode::Folder`]: it lists releases but refuses pushes, which it would
//! not serve.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use para_build::{Build, FORMAT_VERSION};
use para_store::Store;
use para_store::releases::{NewRelease, Release, ReleaseListener};
use tokio::sync::watch;

use crate::error::ApiError;

/// How often a process compares its release with the database's when no notification came.
pub const POLL: Duration = Duration::from_secs(1);

/// The largest build a push may upload.
pub const MAX_BUILD_BYTES: usize = 64 << 20;

/// What this process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The build of its project folder: pushes are refused.
    Folder,
    /// The database's current release.
    Database,
}

/// A release being served: its number and its build.
#[derive(Debug, Clone)]
pub struct Served {
    pub number: i64,
    pub build: Arc<Build>,
}

/// The releases of the served project, and the one this process serves.
pub struct Releases {
    pub store: Store,
    pub mode: Mode,
    /// `PARA_DEPLOY_KEY`: none, pushing is off.
    deploy_key: Option<String>,
    /// Wrong deploy keys per peer.
    pub(crate) throttle: crate::throttle::Throttle,
    served: watch::Sender<Option<Served>>,
    /// Held from reading or changing the current release to serving it, so that a catch-up
    /// that read the database before a push or rollback of this process cannot serve its
    /// older answer after it.
    switching: tokio::sync::Mutex<()>,
}

/// What a push carries besides the build.
#[derive(Debug, Default, Clone)]
pub struct PushInfo {
    pub message: Option<String>,
    pub author: Option<String>,
    pub commit: Option<String>,
}

impl Releases {
    pub fn new(store: Store, mode: Mode, deploy_key: Option<String>) -> Arc<Releases> {
        Arc::new(Releases {
            store,
            mode,
            deploy_key: deploy_key.filter(|k| !k.is_empty()),
            throttle: Default::default(),
            served: watch::channel(None).0,
            switching: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn deploy_key(&self) -> Option<&str> {
        self.deploy_key.as_deref()
    }

    /// The release this process serves (none yet, or serving a folder: `None`).
    pub fn served(&self) -> Option<Served> {
        self.served.borrow().clone()
    }

    /// Hears of every release this process starts serving.
    pub fn subscribe(&self) -> watch::Receiver<Option<Served>> {
        self.served.subscribe()
    }

    /// Serves the database's current release if it is not the one served; the release served
    /// afterwards. A stored build this version cannot read is an error (and the served one
    /// stays).
    pub async fn catch_up(&self) -> Result<Option<i64>, String> {
        let _switching = self.switching.lock().await;
        let current = self.store.current_release().await.map_err(|e| e.to_string())?;
        let served = self.served.borrow().as_ref().map(|s| s.number);
        let Some(number) = current.filter(|n| Some(*n) != served) else { return Ok(served) };
        let Some((_, text)) = self.store.release_build(number).await.map_err(|e| e.to_string())?
        else {
            return Err(format!("release {number} is current but not stored"));
        };
        let build = read_stored(&text).map_err(|e| format!("release {number}: {e}"))?;
        self.publish(number, Arc::new(build));
        Ok(Some(number))
    }

    fn publish(&self, number: i64, build: Arc<Build>) {
        let changed = self.served.send_if_modified(|served| {
            if served.as_ref().is_some_and(|s| s.number == number) {
                return false;
            }
            *served = Some(Served { number, build });
            true
        });
        if changed {
            tracing::info!(release = number, "serving release {number}");
        }
    }

    /// Stores a pushed build (the body of `POST /deploy/releases`, already within
    /// [`MAX_BUILD_BYTES`]) and serves it. Returns the release and whether it is new.
    pub async fn push(
        &self,
        build: serde_json::Value,
        info: PushInfo,
    ) -> Result<(Release, bool), ApiError> {
        if self.mode == Mode::Folder {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "project_folder",
                "this server serves its project folder, not pushed releases: start `para serve` \
                 without a project folder (with --database) to serve what `para push` uploads",
            ));
        }
        let mut build = parse_pushed(build)?;
        build.seal();
        let project = project_of(&build);
        let stored = self.store.release_project().await?;
        if let Some(other) = stored.as_deref().filter(|p| *p != project) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "other_project",
                format!(
                    "this database serves project `{other}`, and the build is of project \
                     `{project}`: push it to its own server and database (the project id is \
                     `projectId` in .para/project.json)"
                ),
            ));
        }
        let text = serde_json::to_string(&build).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })?;
        let new = NewRelease {
            project_id: &project,
            hash: &build.build_hash,
            build: &text,
            message: info.message.as_deref(),
            author: info.author.as_deref(),
            commit: info.commit.as_deref(),
        };
        let _switching = self.switching.lock().await;
        let (release, created) = self.store.push_release(&new).await?;
        self.publish(release.number, Arc::new(build));
        Ok((release, created))
    }

    /// Makes a stored release current and serves it.
    pub async fn make_current(&self, number: i64) -> Result<Release, ApiError> {
        if self.mode == Mode::Folder {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "project_folder",
                "this server serves its project folder, not pushed releases",
            ));
        }
        // Read first: a stored build this version cannot read is not made current.
        let Some((_, text)) = self.store.release_build(number).await? else {
            return Err(ApiError::not_found(format!(
                "there is no release {number}: `para releases` lists them"
            )));
        };
        let build = read_stored(&text)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "format_version", e))?;
        let _switching = self.switching.lock().await;
        let release = self.store.set_current_release(number).await?.ok_or_else(|| {
            ApiError::not_found(format!("there is no release {number}: `para releases` lists them"))
        })?;
        self.publish(number, Arc::new(build));
        Ok(release)
    }

    /// Follows the database's current release until the process ends: PostgreSQL's
    /// notifications when `database_url` is PostgreSQL, and a poll every [`POLL`] in any case
    /// (a missed notification, SQLite).
    pub fn follow(self: &Arc<Self>, database_url: &str) {
        let this = self.clone();
        let postgres = database_url.starts_with("postgres");
        let url = database_url.to_string();
        tokio::spawn(async move {
            let mut listener = None;
            let mut last_error: Option<String> = None;
            let mut next_connect = tokio::time::Instant::now();
            loop {
                if postgres && listener.is_none() && tokio::time::Instant::now() >= next_connect {
                    listener = listen(&url).await;
                    next_connect = tokio::time::Instant::now() + Duration::from_secs(10);
                }
                match listener.as_mut() {
                    Some(l) => {
                        tokio::select! {
                            note = l.recv() => if let Err(e) = note {
                                tracing::warn!(error = %e, "release notifications stopped; polling");
                                listener = None;
                            },
                            () = tokio::time::sleep(POLL) => {}
                        }
                    }
                    None => tokio::time::sleep(POLL).await,
                }
                match this.catch_up().await {
                    // Said once per cause, not every second.
                    Err(e) if last_error.as_ref() != Some(&e) => {
                        tracing::error!(error = %e, "cannot serve the current release");
                        last_error = Some(e);
                    }
                    Err(_) => {}
                    Ok(_) => last_error = None,
                }
            }
        });
    }
}

async fn listen(url: &str) -> Option<ReleaseListener> {
    ReleaseListener::connect(url)
        .await
        .map_err(|e| tracing::warn!(error = %e, "cannot listen for releases; polling"))
        .ok()
}

/// The project a build is of, as [`para_connect::Connect`] names it.
pub fn project_of(build: &Build) -> String {
    build.project.project_id.clone().unwrap_or_else(|| "default".into())
}

/// A pushed document as a build: a format version this server reads, then the fields.
fn parse_pushed(document: serde_json::Value) -> Result<Build, ApiError> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_build", message);
    let Some(version) = document.get("formatVersion") else {
        return Err(bad(
            "`build` is not a para build (it has no `formatVersion`): push the out/build.json \
             `para build` wrote"
                .into(),
        ));
    };
    match version.as_u64() {
        Some(v) if v == u64::from(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "format_version",
                format!(
                    "the build has format version {v}, and this server reads version \
                     {FORMAT_VERSION} (para {}): {}",
                    env!("CARGO_PKG_VERSION"),
                    if v > u64::from(FORMAT_VERSION) {
                        "upgrade the servers to the para that built it, then push again"
                    } else {
                        "rebuild it with this version of para, then push again"
                    }
                ),
            ));
        }
        None => return Err(bad(format!("`formatVersion` is {version}, not a whole number"))),
    }
    serde_json::from_value(document).map_err(|e| {
        bad(format!("`build` is not a valid para build: {e}; rebuild it with `para build`"))
    })
}

/// A stored build's text as a build.
fn read_stored(text: &str) -> Result<Build, String> {
    let document: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the stored build is corrupt: {e}"))?;
    parse_pushed(document).map_err(|e| e.message)
}
