//! The deployment admin API (superusers only), under
//! `/api/rest/elements/deployment`: upload, list, read, edit, remove, and
//! read the log of Elements. Uploads are stored (see
//! [`crate::deploy::persist`]) so they survive restarts and reach every node.
//! Sensitive attribute values are write-only: every response masks them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use elements_identity::require_superuser;

use super::rest::{bad_request, caller};
pub use crate::deploy::catalog::{AttributeView, DeploymentView, MASK};
use crate::deploy::persist::{Edit, PersistError, Upload};
use crate::element::log_buffer::LogLine;
use crate::error::ApiError;
use crate::server::App;

/// Largest upload (component, manifest and fields together): components
/// are often larger than axum's default 2 MiB body limit.
pub const MAX_UPLOAD: usize = 64 << 20;

/// The routes.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/api/rest/elements/deployment",
            get(list).post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route(
            "/api/rest/elements/deployment/{id}",
            get(read).put(edit).delete(remove),
        )
        .route("/api/rest/elements/deployment/{id}/logs", get(logs))
}

pub(crate) async fn superuser(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let caller = caller(app, headers).await?;
    require_superuser(&caller.user)?;
    Ok(())
}

impl From<PersistError> for ApiError {
    fn from(e: PersistError) -> ApiError {
        match e {
            PersistError::Invalid(m) => bad_request(m),
            PersistError::NotFound(_) => ApiError::not_found(e.to_string()),
            PersistError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "CONFLICT", m),
            PersistError::Store(s) if s.is_unavailable() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!("the store is unavailable: {s}"),
            ),
            PersistError::Store(s) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", s.to_string())
            }
        }
    }
}

async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Vec<DeploymentView>>, ApiError> {
    superuser(&app, &headers).await?;
    Ok(Json(app.catalog().list().await?))
}

async fn read(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<DeploymentView>, ApiError> {
    superuser(&app, &headers).await?;
    Ok(Json(app.catalog().get(&id).await?))
}

/// Upload (multipart form): `name`, `component` (the .wasm), optional
/// `manifest` (TOML text), `attributes` (a JSON object of values),
/// `application`, `enabled`. Uploading an existing stored name replaces its
/// version; if the new version fails, the previous one keeps serving.
async fn upload(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Multipart,
) -> Result<axum::response::Response, ApiError> {
    if let Err(refused) = superuser(&app, &headers).await {
        // The upload is left unread, so this connection can't carry another
        // request: say so, or a client's pool may reuse it and fail.
        let mut response = refused.into_response();
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return Ok(response);
    }
    let (upload, others) = read_upload(form).await?;
    if let Some(other) = others.keys().next() {
        return Err(bad_request(format!("unknown form field {other:?}")));
    }
    let (view, created) = app.catalog().upload(upload).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

/// Edit: `{"attributes": {"name": "value" | null}, "enabled": bool,
/// "grants": ["mail.send", ...]}` (`grants` replaces what operators approved
/// here; the configuration file's approvals stay); the Element is
/// redeployed with the change.
async fn edit(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<DeploymentView>, ApiError> {
    superuser(&app, &headers).await?;
    let edit: Edit =
        serde_json::from_slice(&body).map_err(|e| bad_request(format!("invalid JSON body: {e}")))?;
    Ok(Json(app.catalog().edit(&id, edit).await?))
}

async fn remove(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    superuser(&app, &headers).await?;
    app.catalog().remove(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<LogLine>>, ApiError> {
    superuser(&app, &headers).await?;
    if !app.catalog().exists(&id).await? {
        return Err(ApiError::not_found(format!("no deployment named {id:?}")));
    }
    let limit = match query.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| bad_request("`limit` must be a number"))?,
        None => 200,
    };
    Ok(Json(app.deployer.log(&id).recent(limit)))
}

/// Reads an upload form: `name`, `component`, optional `manifest`,
/// `application`, `enabled` and `attributes` (a JSON object of strings).
/// Other fields come back as text, for the caller to use or refuse.
pub(crate) async fn read_upload(mut form: Multipart) -> Result<(Upload, BTreeMap<String, String>), ApiError> {
    let mut upload = Upload::default();
    let mut others = BTreeMap::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| bad_request(format!("bad form: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| bad_request(format!("bad form field {name:?}: {e}")))?;
        if name == "component" {
            upload.component = bytes.to_vec();
            continue;
        }
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| bad_request(format!("{name:?} must be text")))?
            .trim()
            .to_owned();
        match name.as_str() {
            "name" => upload.name = text,
            "manifest" => upload.manifest = Some(text).filter(|m| !m.is_empty()),
            "application" => upload.application = Some(text).filter(|a| !a.is_empty()),
            "enabled" => {
                upload.enabled = Some(
                    text.parse()
                        .map_err(|_| bad_request("`enabled` must be true or false"))?,
                )
            }
            "attributes" => {
                upload.values = serde_json::from_str(&text)
                    .map_err(|e| bad_request(format!("`attributes` must be a JSON object of strings: {e}")))?
            }
            _ => {
                others.insert(name, text);
            }
        }
    }
    Ok((upload, others))
}
