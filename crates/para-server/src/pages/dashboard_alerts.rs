//! The dashboard's alert destinations: `/dashboard/alerts` lists where the project's alerts go
//! (the deployment's `PARA_ALERTS_WEBHOOK_URL`, read-only here, and those added here) and the
//! latest deliveries; a form adds a destination (URL and event types) and shows its new
//! signing secret once; another deletes one. Behind the dashboard's admin key
//! ([`crate::pages::dashboard::Admin`]), each form carrying the session's CSRF token (a
//! request with `Authorization: Bearer` needs none, as no other site can make a browser send
//! that header). What alerts are and how they are sent: `para_worker::alerts`,
//! docs/alerts.md.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use para_store::alerts::{self, AlertDelivery, Destination};
use serde::Serialize;

use crate::pages::dashboard::{self, Admin};
use crate::pages::portal::{self, Form, Framing, STYLESHEET};
use crate::state::AppState;

/// The latest deliveries the page shows.
const SHOWN_DELIVERIES: i64 = 50;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/dashboard/alerts", get(page).post(add))
        .route("/dashboard/alerts/delete", post(delete))
}

#[derive(Serialize)]
struct AlertsPage {
    stylesheet: &'static str,
    accent: Option<String>,
    accent_ink: Option<String>,
    project_id: String,
    signed_in: bool,
    csrf: String,
    destinations: Vec<DestinationRow>,
    deliveries: Vec<DeliveryRow>,
    types: Vec<&'static str>,
    /// After an addition: the new destination's secret, shown this once.
    created: Option<Created>,
    error: Option<String>,
    url: String,
}

#[derive(Serialize)]
struct Created {
    url: String,
    secret: String,
}

#[derive(Serialize)]
struct DestinationRow {
    id: String,
    url: String,
    events: String,
    /// The deployment's (`PARA_ALERTS_WEBHOOK_URL`): not deleted here.
    deployment: bool,
    added: String,
}

#[derive(Serialize)]
struct DeliveryRow {
    event_id: String,
    kind: String,
    destination: String,
    status: String,
    attempts: i64,
    last: String,
    when: String,
}

fn destination_row(d: &Destination) -> DestinationRow {
    // Never the secret.
    DestinationRow {
        id: d.id.clone(),
        url: d.url.clone(),
        events: if d.events.is_empty() { "every event".into() } else { d.events.join(", ") },
        deployment: d.secret.is_none(),
        added: portal::date(d.created_at),
    }
}

fn delivery_row(d: &AlertDelivery) -> DeliveryRow {
    let last = match (&d.last_status, &d.last_error) {
        (_, Some(e)) => e.clone(),
        (Some(s), None) => format!("HTTP {s}"),
        (None, None) => "—".into(),
    };
    DeliveryRow {
        event_id: d.event_id.clone(),
        kind: d.kind.clone(),
        destination: d.destination_id.clone(),
        status: d.status.clone(),
        attempts: d.attempts,
        last,
        when: portal::date(d.created_at),
    }
}

async fn render(
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    created: Option<Created>,
    error: Option<String>,
    url: String,
) -> Response {
    let destinations = match state.store.alert_destinations(&state.project_id).await {
        Ok(list) => list,
        Err(e) => return dashboard::storage_error(e),
    };
    let deliveries =
        match state.store.alert_deliveries(&state.project_id, None, SHOWN_DELIVERIES).await {
            Ok(list) => list,
            Err(e) => return dashboard::storage_error(e),
        };
    let page = AlertsPage {
        stylesheet: STYLESHEET,
        accent: None,
        accent_ink: None,
        project_id: state.project_id.clone(),
        signed_in: admin.by_cookie(),
        csrf: admin.csrf(),
        destinations: destinations.iter().map(destination_row).collect(),
        deliveries: deliveries.iter().map(delivery_row).collect(),
        types: alerts::TYPES.to_vec(),
        created,
        error,
        url,
    };
    dashboard::no_store(portal::html(
        status,
        portal::render("dashboard_alerts.html", &page),
        Framing::Never,
    ))
}

async fn page(State(state): State<Arc<AppState>>, admin: Admin) -> Response {
    render(&state, &admin, StatusCode::OK, None, None, String::new()).await
}

/// Adds a destination: `url`, `event` (repeated; none: every type). The answer shows the
/// secret once; it is stored sealed and never shown again.
async fn add(State(state): State<Arc<AppState>>, admin: Admin, body: Bytes) -> Response {
    let form = Form::parse(&body);
    if !admin.check_csrf(&form) {
        return dashboard::csrf_refused();
    }
    let url = form.get("url").unwrap_or("").trim().to_string();
    let events = form.all("event").join(",");
    let events = match para_worker::alerts::parse_destination(&url, &events) {
        Ok(events) => events,
        Err(e) => {
            return render(&state, &admin, StatusCode::BAD_REQUEST, None, Some(e), url).await;
        }
    };
    match para_worker::alerts::add_destination(&state.worker, &url, events).await {
        Ok((d, secret)) => {
            let created = Created { url: d.url, secret };
            render(&state, &admin, StatusCode::OK, Some(created), None, String::new()).await
        }
        Err(e) => dashboard::storage_error(e),
    }
}

/// Deletes the destination `id` (and its undelivered deliveries).
async fn delete(State(state): State<Arc<AppState>>, admin: Admin, body: Bytes) -> Response {
    let form = Form::parse(&body);
    if !admin.check_csrf(&form) {
        return dashboard::csrf_refused();
    }
    let id = form.get("id").unwrap_or("");
    match state.store.delete_alert_destination(&state.project_id, id).await {
        Ok(true) => portal::see_other("/dashboard/alerts", &[]),
        Ok(false) => portal::message_page(
            StatusCode::NOT_FOUND,
            Framing::Never,
            "No such destination",
            vec![format!(
                "This project has no destination “{id}” added in the dashboard. The deployment's \
                 (PARA_ALERTS_WEBHOOK_URL) is removed by unsetting the variable."
            )],
            None,
        ),
        Err(e) => dashboard::storage_error(e),
    }
}
