//! A stub of the Roblox users API v1 (`GET /v1/users/{id}`) and thumbnails
//! API v1 (`GET /v1/users/avatar-headshot?userIds=..&size=..&format=..`) on
//! loopback, for the Roblox Kit's tests and benchmark. Never the internet.
//!
//! Users API:
//!
//! * `1002` is banned; `1003` answers 500; `1004` answers garbage;
//! * any other id from 1000 to 999999 is a player named `player_<id>`
//!   (display name `Player <id>`), except
//! * `1001`, `builderman_x` / `Builder X`;
//! * everything else is unknown: 404 with Roblox's error body.
//!
//! Thumbnails API: every requested id has a `Completed` headshot at
//! [`avatar_url`], except [`AVATAR_FAILING`] (500 for the whole request),
//! [`AVATAR_GARBAGE`] (not JSON) and [`AVATAR_PENDING`] (state `Pending`,
//! no URL). A request without `size=150x150` and `format=Png` is a 400.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const PLAYER: u64 = 1001;
pub const BANNED: u64 = 1002;
pub const FAILING: u64 = 1003;
pub const GARBAGE: u64 = 1004;
pub const UNKNOWN: u64 = 5;
/// A player whose thumbnail request fails (500).
pub const AVATAR_FAILING: u64 = 1005;
/// A player whose thumbnail answer is not JSON.
pub const AVATAR_GARBAGE: u64 = 1006;
/// A player whose thumbnail is not ready.
pub const AVATAR_PENDING: u64 = 1007;

/// The headshot URL the stub answers for `id`.
pub fn avatar_url(id: u64) -> String {
    format!("https://tr.rbxcdn.test/30DAY-AvatarHeadshot-{id}/150/150/AvatarHeadshot/Png/noFilter")
}

async fn avatar_headshot(
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    if query.get("size").map(String::as_str) != Some("150x150")
        || query.get("format").map(String::as_str) != Some("Png")
    {
        return (StatusCode::BAD_REQUEST, "size and format are required").into_response();
    }
    let ids: Vec<u64> = query
        .get("userIds")
        .map(|ids| ids.split(',').filter_map(|id| id.trim().parse().ok()).collect())
        .unwrap_or_default();
    if ids.contains(&AVATAR_FAILING) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "thumbnails exploded").into_response();
    }
    if ids.contains(&AVATAR_GARBAGE) {
        return (StatusCode::OK, "<html>no thumbnails</html>").into_response();
    }
    let data: Vec<Value> = ids
        .iter()
        .map(|&id| {
            if id == AVATAR_PENDING {
                json!({"targetId": id, "state": "Pending", "imageUrl": null, "version": "TN3"})
            } else {
                json!({"targetId": id, "state": "Completed", "imageUrl": avatar_url(id), "version": "TN3"})
            }
        })
        .collect();
    axum::Json(json!({"data": data})).into_response()
}

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
    // The static segment wins over `{id}` in axum's router.
    let app = axum::Router::new()
        .route("/v1/users/avatar-headshot", axum::routing::get(avatar_headshot))
        .route("/v1/users/{id}", axum::routing::get(user));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}
