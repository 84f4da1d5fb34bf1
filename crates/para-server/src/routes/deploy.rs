//! The deploy API (issue 22): `para push` uploads builds as releases, `para releases` lists
//! them, `para rollback` makes an earlier one current. Every route takes the deploy key
//! (`PARA_DEPLOY_KEY`, compared in constant time; wrong keys throttled per peer), never a user
//! token or the admin key. What a release is and how processes follow the current one is
//! `crate::releases`'.
//!
//! The handlers take only [`Releases`], so a server started without a project folder and
//! before any push ([`waiting_router`]) serves them too.

use std::sync::Arc;

use axum::Json;
use axum::extract::{DefaultBodyLimit, FromRef, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::releases::{MAX_BUILD_BYTES, PushInfo, Releases};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(push, list))
        .routes(routes!(make_current))
        .layer(DefaultBodyLimit::max(MAX_BUILD_BYTES + (64 << 10)))
}

/// What the deploy routes need: the releases (the whole state of a server still waiting for
/// its first release).
#[derive(Clone)]
pub struct Deploy(pub Arc<Releases>);

impl FromRef<Arc<AppState>> for Deploy {
    fn from_ref(state: &Arc<AppState>) -> Deploy {
        Deploy(state.releases.clone())
    }
}

/// A caller with the deploy key, checked before the body is read.
pub struct Deployer;

impl<S> FromRequestParts<S> for Deployer
where
    Deploy: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Deploy(releases) = Deploy::from_ref(state);
        let Some(key) = releases.deploy_key() else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "deploy_off",
                "pushing releases is off on this server: start it with PARA_DEPLOY_KEY set to a \
                 long random value, and give `para push` the same value",
            ));
        };
        let peer = parts.extensions.get::<crate::server::Peer>().map(|p| p.0.ip());
        if let Err(wait) = releases.throttle.check(peer) {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                format!("too many wrong deploy keys from this address: wait {wait} s"),
            ));
        }
        let sent = crate::web::bearer(&parts.headers);
        match sent {
            Some(sent) if crate::web::same_secret(sent, key) => Ok(Deployer),
            _ => {
                releases.throttle.failed(peer);
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "deploy_key",
                    "this request needs the server's deploy key as `Authorization: Bearer <key>`: \
                     set PARA_DEPLOY_KEY for `para push` to the value the server was started with",
                ))
            }
        }
    }
}

/// A stored release.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseView {
    /// 1, 2, 3… in the order they were pushed.
    pub number: i64,
    /// The build's content hash (`sha256:…`): identical builds have one release.
    pub hash: String,
    pub project_id: String,
    pub message: Option<String>,
    /// Who pushed it (`git config user.name`, or the login).
    pub author: Option<String>,
    /// The git commit the project was at (`-dirty`: with uncommitted changes).
    pub commit: Option<String>,
    /// When it was pushed (ISO-8601).
    pub created_at: String,
    /// Whether it is the release served.
    pub current: bool,
}

impl ReleaseView {
    fn of(release: para_store::releases::Release, current: Option<i64>) -> ReleaseView {
        ReleaseView {
            current: current == Some(release.number),
            number: release.number,
            hash: release.hash,
            project_id: release.project_id,
            message: release.message,
            author: release.author,
            commit: release.commit,
            created_at: crate::views::millis_iso(release.created_at),
        }
    }
}

/// `POST /deploy/releases`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// The `out/build.json` document `para build` wrote.
    #[schema(value_type = Object)]
    pub build: serde_json::Value,
    pub message: Option<String>,
    pub author: Option<String>,
    pub commit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Pushed {
    pub release: ReleaseView,
    /// False: an identical build was stored already, and that release is current again.
    pub created: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ReleaseList {
    /// The current release's number (none pushed yet: null).
    pub current: Option<i64>,
    /// Newest first.
    pub releases: Vec<ReleaseView>,
}

#[derive(Serialize, ToSchema)]
pub struct MadeCurrent {
    pub release: ReleaseView,
}

/// The longest message, author or commit kept.
const MAX_TEXT: usize = 2000;

fn text(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.len() > MAX_TEXT => {
            Err(ApiError::bad_request(format!("`{field}` is longer than {MAX_TEXT} bytes")))
        }
        v => Ok(v.filter(|v| !v.trim().is_empty())),
    }
}

/// `POST /deploy/releases`: stores a build as the next release and serves it (on every
/// process within a second). An identical build is not stored twice: its release becomes
/// current again.
#[utoipa::path(
    post,
    path = "/deploy/releases",
    tag = "deploy",
    request_body = PushRequest,
    security(("deploy_key" = [])),
    responses(
        (status = 201, description = "Stored as a new release, now current", body = Pushed),
        (status = 200, description = "An identical build's release, current again", body = Pushed)
    )
)]
async fn push(
    _: Deployer,
    State(Deploy(releases)): State<Deploy>,
    Json(request): Json<PushRequest>,
) -> Result<axum::response::Response, ApiError> {
    let info = PushInfo {
        message: text("message", request.message)?,
        author: text("author", request.author)?,
        commit: text("commit", request.commit)?,
    };
    let (release, created) = releases.push(request.build, info).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let number = release.number;
    let body = Pushed { release: ReleaseView::of(release, Some(number)), created };
    Ok((status, Json(body)).into_response())
}

/// `GET /deploy/releases`: every release, newest first.
#[utoipa::path(
    get,
    path = "/deploy/releases",
    tag = "deploy",
    security(("deploy_key" = [])),
    responses((status = 200, description = "The releases", body = ReleaseList))
)]
async fn list(
    _: Deployer,
    State(Deploy(releases)): State<Deploy>,
) -> Result<Json<ReleaseList>, ApiError> {
    let (all, current) = releases.store.releases().await?;
    let releases = all.into_iter().map(|r| ReleaseView::of(r, current)).collect();
    Ok(Json(ReleaseList { current, releases }))
}

/// `POST /deploy/releases/{number}/current`: serves an earlier (or later) release again.
#[utoipa::path(
    post,
    path = "/deploy/releases/{number}/current",
    tag = "deploy",
    params(("number" = i64, Path, description = "The release's number")),
    security(("deploy_key" = [])),
    responses((status = 200, description = "The release, now current", body = MadeCurrent))
)]
async fn make_current(
    _: Deployer,
    State(Deploy(releases)): State<Deploy>,
    Path(number): Path<String>,
) -> Result<Json<MadeCurrent>, ApiError> {
    let number: i64 = number.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "`{number}` is not a release number: `para releases` lists them"
        ))
    })?;
    let release = releases.make_current(number).await?;
    Ok(Json(MadeCurrent { release: ReleaseView::of(release, Some(number)) }))
}

/// The router of a server started without a project folder while no release is stored: the
/// deploy API, `/healthz` (alive) and, for everything else, 503 saying what to push.
pub fn waiting_router(releases: Arc<Releases>) -> axum::Router {
    use axum::routing::{get, post};
    async fn alive() -> Json<serde_json::Value> {
        Json(serde_json::json!({ "ok": true, "status": "ok" }))
    }
    async fn nothing_yet() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_release",
            "this server has no release to serve yet: push one with `para push --server <this \
             server's URL>` (with PARA_DEPLOY_KEY set)",
        )
    }
    async fn with_peer(
        axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
        mut request: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> axum::response::Response {
        request.extensions_mut().insert(crate::server::Peer(peer));
        next.run(request).await
    }
    async fn not_ready() -> (StatusCode, Json<serde_json::Value>) {
        let reason = crate::health::NO_RELEASE;
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable", "reason": reason })),
        )
    }
    axum::Router::new()
        .route("/deploy/releases", post(push).get(list))
        .route("/deploy/releases/{number}/current", post(make_current))
        .layer(DefaultBodyLimit::max(MAX_BUILD_BYTES + (64 << 10)))
        .route("/healthz", get(alive))
        .route("/readyz", get(not_ready))
        .fallback(nothing_yet)
        .layer(axum::middleware::map_response(crate::error::json_rejections))
        .layer(axum::middleware::from_fn(with_peer))
        .with_state(Deploy(releases))
}
