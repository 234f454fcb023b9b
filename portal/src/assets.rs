//! The portal's stylesheet and script, compiled into the binary (no CDN, no
//! build step).

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header;

use elements_server::error::ApiError;

const CSS: &str = include_str!("../assets/portal.css");
const JS: &str = include_str!("../assets/portal.js");

/// `GET /admin/assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "portal.css" => (CSS, "text/css; charset=utf-8"),
        "portal.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return ApiError::not_found(format!("no portal asset named {file:?}")).into_response(),
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, kind),
            // Short: a new server version's assets are picked up within minutes.
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}
