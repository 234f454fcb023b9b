//! What a handler reads from a request besides its body: the client's
//! address, the request's id, the caller's credential, an `Authorization`
//! header's parts, and a JSON body that may be empty.

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The challenge of a 401 from the `/api/rest` API.
pub const CHALLENGE: &str = "Bearer realm=\"elements\"";

/// The header carrying a session secret, besides `Authorization: Bearer`.
/// A `HeaderName`, not a `&str`: every Element request looks it up, and a
/// `&str` name is parsed again at each lookup.
pub static SESSION_HEADER: http::HeaderName = http::HeaderName::from_static("elements-sessionsecret");

/// 400 for a body or parameter that can't be read.
pub fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER", message)
}

/// The id of a request: the one `SetRequestIdLayer` gave it on the way in
/// (both listeners' routers have it; see `finish_router`), also sent back
/// as `x-request-id`. `None` only on a router built without it.
pub fn request_id(extensions: &http::Extensions) -> Option<&str> {
    extensions
        .get::<tower_http::request_id::RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
}

/// The session credential of a request, if any.
pub fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(secret) = headers.get(&SESSION_HEADER).and_then(|v| v.to_str().ok()) {
        let secret = secret.trim();
        if !secret.is_empty() {
            return Some(secret);
        }
    }
    authorization(headers, "Bearer")
}

/// A JSON body as `T`; an empty body is `T::default()` (Nakama clients send
/// none for empty messages).
pub fn parse_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))
}

/// The address of the client a request came from: the TCP peer. No
/// forwarding header is believed (no trusted proxy can be configured), so
/// behind a proxy every client shares its address. `None` where the server
/// is embedded without connection info.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(ClientAddr(peer))
    }
}

/// The credentials of an `Authorization: <scheme> <credentials>` header, if
/// it uses `scheme` (case-insensitive).
pub fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (given, credentials) = value.split_once(' ')?;
    given
        .eq_ignore_ascii_case(scheme)
        .then(|| credentials.trim())
        .filter(|c| !c.is_empty())
}

/// The user name of an HTTP Basic `Authorization` header.
pub fn basic_user(headers: &HeaderMap) -> Option<String> {
    let encoded = authorization(headers, "Basic")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map(|(user, _)| user)
            .unwrap_or(&text)
            .to_owned(),
    )
}
