//! The HTML pages `para serve` answers: the Connect Portal (`portal`, `portal_ui`), the values
//! form of a headless install (`connect_form`) and the company's dashboard.

use std::sync::Arc;

use axum::Router;

use crate::state::AppState;

pub(crate) mod connect_form;
pub(crate) mod dashboard;
pub(crate) mod dashboard_alerts;
pub(crate) mod dashboard_releases;
pub(crate) mod dashboard_runs;
pub(crate) mod portal;
pub(crate) mod portal_ui;

/// Every page route.
pub fn routes() -> Router<Arc<AppState>> {
    portal::routes()
        .merge(portal_ui::routes())
        .merge(connect_form::routes())
        .merge(dashboard::routes())
        .merge(dashboard_runs::routes())
        .merge(dashboard_releases::routes())
        .merge(dashboard_alerts::routes())
}
