//! `POST /api/rest/realtime/notification` (admin listener, superusers): an
//! operator sends a notification to players — stored for
//! `GET /v2/notification` when persistent, pushed to their open sockets.
//! Elements will send theirs through the realtime host service; this is
//! the operator's way, and the tests'.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use elements_realtime::{NewNotification, RealtimeError};
use elements_server::App;
use elements_server::error::ApiError;
use elements_server::request::parse_body;

use super::deployments::Superuser;
use super::nakama::Empty;
use super::rest::{ErrorDto, bad_request};

/// Most users one notification request may address.
pub const MAX_RECIPIENTS: usize = 100;

/// The admin route.
pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new().routes(routes!(send))
}

/// A notification to send.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SendNotification {
    /// The users (at most 100).
    pub user_ids: Vec<String>,
    /// Short text.
    pub subject: String,
    /// A JSON object.
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
    /// Application code (Nakama reserves negative codes).
    pub code: i32,
    /// Store it for `GET /v2/notification` (and for offline users).
    pub persistent: bool,
}

/// Sends a notification to users: pushed to their open sockets, and stored
/// when persistent.
#[utoipa::path(post, path = "/api/rest/realtime/notification", tag = "realtime",
    request_body = SendNotification,
    responses(
        (status = 200, description = "Sent", body = Empty),
        (status = 400, description = "Bad user id, content or subject", body = ErrorDto),
        (status = 401, description = "No valid session", body = ErrorDto),
        (status = 403, description = "Not a superuser", body = ErrorDto),
        (status = 503, description = "The store is unavailable", body = ErrorDto),
    ), security(("session" = [])))]
async fn send(State(app): State<Arc<App>>, _: Superuser, body: Bytes) -> Result<Json<Empty>, ApiError> {
    let request: SendNotification = parse_body(&body).map_err(bad_request)?;
    if request.user_ids.is_empty() || request.user_ids.len() > MAX_RECIPIENTS {
        return Err(bad_request(format!("user_ids: 1 to {MAX_RECIPIENTS} users.")));
    }
    if request.subject.is_empty() || request.subject.chars().count() > 256 {
        return Err(bad_request("subject: 1 to 256 characters."));
    }
    if request.code < 0 {
        return Err(bad_request("code: negative codes are reserved."));
    }
    let notification = NewNotification {
        subject: request.subject,
        content: request.content,
        code: request.code,
        sender_id: String::new(),
        persistent: request.persistent,
    };
    app.realtime
        .notify(&request.user_ids, &notification)
        .await
        .map_err(|e| match e {
            RealtimeError::Unavailable(m) => {
                tracing::warn!("notification not sent, store unavailable: {m}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "Storage unavailable, retry later.",
                )
            }
            other => bad_request(other.to_string()),
        })?;
    Ok(Json(Empty {}))
}
