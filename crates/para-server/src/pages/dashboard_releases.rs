//! The dashboard's releases: `/dashboard/releases` lists what `para push` uploaded, marks the
//! current release and the one this process serves, and makes another one current (a
//! rollback) with a form. Behind the dashboard's admin key ([`Admin`]); the form carries the
//! session's CSRF token like the dashboard's other forms.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use para_store::history::format_time;
use serde::Serialize;

use crate::pages::dashboard::{self, Admin};
use crate::pages::portal::{self, Form, Framing, STYLESHEET};
use crate::releases::Mode;
use crate::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/dashboard/releases", get(list))
        .route("/dashboard/releases/{number}/current", post(make_current))
}

#[derive(Serialize)]
struct ReleasesPage {
    stylesheet: &'static str,
    accent: Option<String>,
    accent_ink: Option<String>,
    project_id: String,
    signed_in: bool,
    csrf: String,
    /// Serving pushed releases (not a project folder).
    releases_mode: bool,
    served: Option<i64>,
    releases: Vec<Row>,
}

#[derive(Serialize)]
struct Row {
    number: i64,
    current: bool,
    served: bool,
    when: String,
    hash: String,
    message: String,
    author: String,
    commit: String,
}

async fn list(State(state): State<Arc<AppState>>, admin: Admin) -> Response {
    let (all, current) = match state.releases.store.releases().await {
        Ok(found) => found,
        Err(e) => return dashboard::storage_error(e),
    };
    let served = state.releases.served().map(|s| s.number);
    let releases = all
        .into_iter()
        .map(|r| {
            let iso = format_time(r.created_at);
            Row {
                current: current == Some(r.number),
                served: served == Some(r.number),
                number: r.number,
                when: format!("{} {} UTC", &iso[..10], &iso[11..19]),
                hash: r.hash.chars().take(19).collect(),
                message: r.message.unwrap_or_default(),
                author: r.author.unwrap_or_default(),
                commit: r.commit.map(|c| c.chars().take(12).collect()).unwrap_or_default(),
            }
        })
        .collect();
    let page = ReleasesPage {
        stylesheet: STYLESHEET,
        accent: None,
        accent_ink: None,
        project_id: state.project_id.clone(),
        signed_in: admin.by_cookie(),
        csrf: admin.csrf(),
        releases_mode: state.releases.mode == Mode::Database,
        served,
        releases,
    };
    portal::html(
        axum::http::StatusCode::OK,
        portal::render("dashboard_releases.html", &page),
        Framing::Never,
    )
}

async fn make_current(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    Path(number): Path<String>,
    body: Bytes,
) -> Response {
    if !admin.check_csrf(&Form::parse(&body)) {
        return dashboard::csrf_refused();
    }
    let Ok(number) = number.parse::<i64>() else {
        return portal::message_page(
            axum::http::StatusCode::BAD_REQUEST,
            Framing::Never,
            "No such release",
            vec![format!("“{number}” is not a release number.")],
            None,
        );
    };
    match state.releases.make_current(number).await {
        Ok(release) => {
            tracing::info!(release = release.number, "release made current from the dashboard");
            portal::see_other("/dashboard/releases", &[]).into_response()
        }
        Err(e) => portal::message_page(
            e.status,
            Framing::Never,
            "The release could not be made current",
            vec![e.message],
            None,
        ),
    }
}
