//! The home page: what this server is and how much it holds.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use http::StatusCode;

use super::{Admin, Layout, error_page, render};
use elements_server::App;
use elements_server::error::ApiError;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    version: &'static str,
    /// The public listener, which serves the API documentation.
    api_base: String,
    applications: u64,
    users: u64,
    elements: usize,
    loaded: usize,
    serving: usize,
    failed: usize,
    disabled: usize,
}

/// `GET /admin/`.
pub async fn page(State(app): State<Arc<App>>, admin: Admin) -> Response {
    match counts(&app, &admin).await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => error_page(Some(&admin), "home", e),
    }
}

async fn counts(app: &App, admin: &Admin) -> Result<HomePage, ApiError> {
    let service = &app.identity.service;
    let applications = service.list_applications(&admin.user, 0, 1).await?.total;
    let users = service.search_users(&admin.user, None, 0, 1).await?.total;
    let deployments = app.catalog().list().await?;
    let count = |status: &str| deployments.iter().filter(|d| d.status == status).count();
    Ok(HomePage {
        layout: admin.layout("Home", "home"),
        version: env!("CARGO_PKG_VERSION"),
        api_base: app.portal.public_url.clone(),
        applications,
        users,
        elements: deployments.len(),
        loaded: count("LOADED"),
        serving: count("SERVING"),
        failed: count("FAILED"),
        disabled: count("DISABLED"),
    })
}
