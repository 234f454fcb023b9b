//! A stub of the Roblox users API v1 on loopback (`GET /v1/users/{id}`),
//! for the Roblox Kit's tests and benchmark. Never the internet.
//!
//! * `1002` is banned; `1003` answers 500; `1004` answers garbage;
//! * any other id from 1000 to 999999 is a player named `player_<id>`
//!   (display name `Player <id>`), except
//! * `1001`, `builderman_x` / `Builder X`;
//! * everything else is unknown: 404 with Roblox's error body.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const PLAYER: u64 = 1001;
pub const BANNED: u64 = 1002;
pub const FAILING: u64 = 1003;
pub const GARBAGE: u64 = 1004;
pub const UNKNOWN: u64 = 5;

/// The JSON the stub answers for a known id.
pub fn user_json(id: u64) -> Value {
    let (name, display) = if id == PLAYER {
        ("builderman_x".to_owned(), "Builder X".to_owned())
    } else {
        (format!("player_{id}"), format!("Player {id}"))
    };
    json!({
        "description": "stub player",
        "created": "2015-03-14T09:26:53.589Z",
        "isBanned": id == BANNED,
        "externalAppDisplayName": null,
        "hasVerifiedBadge": false,
        "id": id,
        "name": name,
        "displayName": display,
    })
}

async fn user(Path(id): Path<String>) -> Response {
    let unknown = || {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"errors": [{"code": 3, "message": "The user id is invalid.", "userFacingMessage": "Something went wrong"}]})),
        )
            .into_response()
    };
    let Ok(id) = id.parse::<u64>() else {
        return unknown();
    };
    match id {
        FAILING => (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response(),
        GARBAGE => (StatusCode::OK, "<html>definitely not JSON</html>").into_response(),
        1000..=999_999 => axum::Json(user_json(id)).into_response(),
        _ => unknown(),
    }
}

/// Starts the stub on an ephemeral loopback port (on the current tokio
/// runtime); returns the port. The API base URL is `http://127.0.0.1:<port>/v1`.
pub async fn start() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route("/v1/users/{id}", axum::routing::get(user));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}
