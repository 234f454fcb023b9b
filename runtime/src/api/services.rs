//! The operator's settings of the host services (superusers only), under
//! `/api/rest/services`: `GET` shows them (the SMTP password never: only
//! whether one is set), `PUT /{mail|http}` changes them for every node
//! (absent fields keep their value, `null` clears an optional one), `DELETE
//! /{mail|http}` goes back to the configuration file's. See
//! [`crate::deploy::settings`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, put};
use axum::{Json, Router};

use super::deployments::superuser;
use super::rest::bad_request;
use crate::deploy::settings::{HttpChange, MailChange, Service, SettingsView};
use crate::error::ApiError;
use crate::server::App;

/// The routes.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/api/rest/services", get(read))
        .route("/api/rest/services/{service}", put(change).delete(reset))
}

async fn read(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Json<SettingsView>, ApiError> {
    superuser(&app, &headers).await?;
    Ok(Json(app.settings.view()))
}

async fn change(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(service): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<SettingsView>, ApiError> {
    superuser(&app, &headers).await?;
    let view = match Service::parse(&service)? {
        Service::Mail => {
            let change: MailChange = serde_json::from_slice(&body)
                .map_err(|e| bad_request(format!("invalid mail settings: {e}")))?;
            app.settings.change_mail(change).await?
        }
        Service::Http => {
            let change: HttpChange = serde_json::from_slice(&body)
                .map_err(|e| bad_request(format!("invalid http settings: {e}")))?;
            app.settings.change_http(change).await?
        }
    };
    Ok(Json(view))
}

async fn reset(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(service): Path<String>,
) -> Result<Json<SettingsView>, ApiError> {
    superuser(&app, &headers).await?;
    Ok(Json(app.settings.reset(Service::parse(&service)?).await?))
}
