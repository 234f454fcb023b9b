//! Roblox Kit: secure Roblox player authentication and registration.
//!
//! A Roblox game server (never a client) calls
//!
//! ```text
//! POST /app/rest/roblox/auth
//! RobloxKit-Secret: <dev.getelements.robloxkit.secret>
//! Content-Type: application/json
//!
//! {"application": "my_game", "robloxUserId": 123456}      (or "123456")
//! ```
//!
//! and gets `{"user": ..., "profile": ..., "session": {"sessionSecret": ...,
//! "session": ...}}`. The session secret works as `Authorization: Bearer` on
//! `/api/rest` and on every Element.
//!
//! What happens:
//!
//! 1. The `RobloxKit-Secret` header is compared, in constant time, with the
//!    attribute `dev.getelements.robloxkit.secret` (required: the deployment
//!    fails without it). Missing header: 401; wrong secret: 403.
//! 2. The body is checked (400 when malformed) and the application looked up
//!    by name or id (404 when unknown).
//! 3. The player is read from the Roblox users API,
//!    `GET {dev.getelements.robloxkit.roblox.users.api.url}/users/{id}`:
//!    unknown player 404, banned player 403, Roblox unreachable, erroring or
//!    answering garbage 502.
//! 4. The player's user is found or created through the identity scheme
//!    `dev.getelements.robloxkit.player.id` (id: the decimal Roblox user id;
//!    a new user is named after the Roblox name when that name is free), and
//!    the profile for (user, application) found or created. Both are atomic
//!    in the host: concurrent first logins make one user and one profile.
//! 5. The profile takes the Roblox display name and keeps the Roblox user
//!    object in its metadata under `robloxProfile` (other metadata keys are
//!    kept), refreshed on every login. Its `imageUrl` takes the player's
//!    avatar headshot from the Roblox thumbnails API,
//!    `GET {dev.getelements.robloxkit.roblox.thumbnails.api.url}/users/avatar-headshot?userIds={id}&size=150x150&format=Png`
//!    (the first `data` entry for the player whose `state` is `Completed`).
//!    A thumbnails failure never fails the login: it is logged, and the
//!    profile keeps the avatar it had (none on a first login).
//! 6. A session is created for the profile, valid for
//!    `dev.getelements.robloxkit.session.expiry.seconds` (default 86400).

use std::time::Duration;

use elements_sdk::http::{self, HttpError};
use elements_sdk::identity::{ProfileUpdate, SessionCreation};
use elements_sdk::prelude::*;
use serde::Serialize;
use serde_json::Value;
use subtle::ConstantTimeEq;

/// The shared secret (required, sensitive).
const SECRET: &str = "dev.getelements.robloxkit.secret";
/// Base URL of the Roblox users API v1.
const USERS_API: &str = "dev.getelements.robloxkit.roblox.users.api.url";
/// Base URL of the Roblox thumbnails API v1.
const THUMBNAILS_API: &str = "dev.getelements.robloxkit.roblox.thumbnails.api.url";
/// Session lifetime in seconds.
const SESSION_EXPIRY: &str = "dev.getelements.robloxkit.session.expiry.seconds";
/// The header Roblox game servers send the secret in.
const SECRET_HEADER: &str = "robloxkit-secret";
/// The identity scheme linking a user to a Roblox player.
const SCHEME: &str = "dev.getelements.robloxkit.player.id";
/// The profile metadata key holding the Roblox user object.
const METADATA_KEY: &str = "robloxProfile";

const DEFAULT_USERS_API: &str = "https://users.roblox.com/v1";
const DEFAULT_THUMBNAILS_API: &str = "https://thumbnails.roblox.com/v1";
/// Longest avatar URL kept; anything longer is not a thumbnail URL.
const MAX_AVATAR_URL: usize = 2048;
const DEFAULT_SESSION_EXPIRY: u64 = 86_400;
/// How long to wait for Roblox before answering 502.
const ROBLOX_TIMEOUT: Duration = Duration::from_secs(10);

fn router() -> Router {
    Router::new().post("/auth", auth)
}

/// What `POST /auth` answers.
#[derive(Serialize)]
struct Authenticated {
    user: identity::User,
    profile: identity::Profile,
    session: SessionCreation,
}

fn auth(req: Request) -> Result<Response> {
    check_secret(&req)?;
    let (application, roblox_id) = parse_body(&req)?;
    let application = identity::application(&application)?
        .ok_or_else(|| Error::not_found(format!("no application {application:?}")))?;
    let player = fetch_player(roblox_id)?;
    let avatar = fetch_avatar(roblox_id);

    let user = find_or_create_user(roblox_id, &player)?;
    let (profile, created) = identity::find_or_create_profile(&user.id, &application.id)?;
    if created {
        info!("new Roblox player {roblox_id} in {}", application.name);
    }
    let profile = sync_profile(profile, &player, avatar)?;

    let expiry = attributes::parse::<u64>(SESSION_EXPIRY)?.unwrap_or(DEFAULT_SESSION_EXPIRY);
    let session = identity::create_session(&user.id, Some(&profile.id), expiry)?;
    Ok(Response::json(&Authenticated {
        user,
        profile,
        session,
    }))
}

/// 401 without the header, 403 with the wrong secret.
fn check_secret(req: &Request) -> Result<()> {
    let sent = req
        .header(SECRET_HEADER)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::unauthorized("the RobloxKit-Secret header is required"))?;
    // `required = true` in the manifest: the host refuses to deploy without it.
    let expected = attributes::get(SECRET)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| Error::internal(format!("attribute `{SECRET}` is not set")))?;
    if secrets_match(sent, expected.trim()) {
        Ok(())
    } else {
        Err(Error::forbidden("invalid RobloxKit-Secret"))
    }
}

/// Compares in time that depends only on the lengths, never on where the
/// secrets differ.
fn secrets_match(sent: &str, expected: &str) -> bool {
    bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// `{"application": "<name or id>", "robloxUserId": <number or numeric string>}`.
fn parse_body(req: &Request) -> Result<(String, u64)> {
    let body: Value = req.json()?;
    let application = body
        .get("application")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Error::bad_request("`application` (a name or id) is required"))?;
    let roblox_id = match body.get("robloxUserId") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    }
    .filter(|id| *id > 0)
    .ok_or_else(|| {
        Error::bad_request("`robloxUserId` must be a positive integer (a number or a numeric string)")
    })?;
    Ok((application.to_owned(), roblox_id))
}

/// A Roblox user, `GET /v1/users/{id}`. The whole object goes into the
/// profile's metadata.
struct Player {
    name: Option<String>,
    display_name: Option<String>,
    raw: Value,
}

fn fetch_player(roblox_id: u64) -> Result<Player> {
    let base = attributes::get(USERS_API)
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_USERS_API.to_owned());
    let unavailable =
        |what: String| Error::new(502, "ROBLOX_UNAVAILABLE", format!("Roblox users API: {what}"));

    let response = http::request(Method::Get, &format!("{base}/users/{roblox_id}"))
        .header("accept", "application/json")
        .timeout(ROBLOX_TIMEOUT)
        .send()
        .map_err(|e| match e {
            HttpError::InvalidRequest(_) => {
                Error::internal(format!("attribute `{USERS_API}` is not a usable URL: {e}"))
            }
            e => unavailable(e.to_string()),
        })?;
    match response.status {
        200..=299 => {}
        // Roblox answers 404 ("The user id is invalid.") for unknown users.
        404 => return Err(Error::not_found(format!("no Roblox user {roblox_id}"))),
        status => return Err(unavailable(format!("answered HTTP {status}"))),
    }
    let raw: Value = response.json().map_err(|e| unavailable(e.to_string()))?;
    if raw.get("id").and_then(Value::as_u64) != Some(roblox_id) {
        return Err(unavailable(format!("the answer is not Roblox user {roblox_id}")));
    }
    if raw.get("isBanned").and_then(Value::as_bool) == Some(true) {
        return Err(Error::forbidden(format!("Roblox user {roblox_id} is banned")));
    }
    let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_owned);
    Ok(Player {
        name: text("name"),
        display_name: text("displayName"),
        raw,
    })
}

/// The user linked to the Roblox id, created on the first login: named after
/// the Roblox name when that is a free, valid user name, else a generated one.
fn find_or_create_user(roblox_id: u64, player: &Player) -> Result<identity::User> {
    let id = roblox_id.to_string();
    let (user, created) = match identity::find_or_create_user(SCHEME, &id, player.name.as_deref()) {
        // The Roblox name is taken (or not a valid name here): let the host pick one.
        Err(e) if player.name.is_some() && matches!(e.status(), 400 | 409) => {
            identity::find_or_create_user(SCHEME, &id, None)?
        }
        other => other?,
    };
    if created {
        info!("created user {} for Roblox player {roblox_id}", user.name);
    }
    Ok(user)
}

/// The player's avatar headshot URL, or `None` (logged) when the thumbnails
/// API fails, has none ready, or answers something else: an avatar is never
/// worth failing a login for.
fn fetch_avatar(roblox_id: u64) -> Option<String> {
    let base = attributes::get(THUMBNAILS_API)
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_THUMBNAILS_API.to_owned());
    let url = format!("{base}/users/avatar-headshot?userIds={roblox_id}&size=150x150&format=Png");
    let outcome = http::request(Method::Get, &url)
        .header("accept", "application/json")
        .timeout(ROBLOX_TIMEOUT)
        .send()
        .map_err(|e| e.to_string())
        .and_then(|response| match response.status {
            200..=299 => response.json::<Value>().map_err(|e| e.to_string()),
            status => Err(format!("answered HTTP {status}")),
        })
        .and_then(|body| avatar_in(&body, roblox_id));
    match outcome {
        Ok(avatar) => Some(avatar),
        Err(why) => {
            warn!(
                "no avatar for Roblox player {roblox_id} (the profile keeps its own): thumbnails API: {why}"
            );
            None
        }
    }
}

/// The `imageUrl` of the `Completed` thumbnail of `roblox_id` in a
/// thumbnails API answer, `{"data": [{"targetId", "state", "imageUrl"}]}`.
fn avatar_in(body: &Value, roblox_id: u64) -> std::result::Result<String, String> {
    let entry = body
        .get("data")
        .and_then(Value::as_array)
        .and_then(|data| {
            data.iter()
                .find(|e| e.get("targetId").and_then(Value::as_u64) == Some(roblox_id))
        })
        .ok_or("the answer has no thumbnail for the player")?;
    let state = entry.get("state").and_then(Value::as_str).unwrap_or_default();
    if state != "Completed" {
        return Err(format!("the thumbnail is not ready (state {state:?})"));
    }
    entry
        .get("imageUrl")
        .and_then(Value::as_str)
        .filter(|u| u.starts_with("https://") && u.len() <= MAX_AVATAR_URL)
        .map(str::to_owned)
        .ok_or_else(|| "the thumbnail has no https imageUrl".into())
}

/// Puts the Roblox display name, avatar and user object on the profile,
/// keeping the other metadata (and the avatar when none was fetched);
/// writes only when something changed.
fn sync_profile(
    profile: identity::Profile,
    player: &Player,
    avatar: Option<String>,
) -> Result<identity::Profile> {
    let mut metadata = match &profile.metadata {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    let display_name = player.display_name.clone().or_else(|| player.name.clone());
    if metadata.get(METADATA_KEY) == Some(&player.raw)
        && (display_name.is_none() || profile.display_name == display_name)
        && (avatar.is_none() || profile.image_url == avatar)
    {
        return Ok(profile);
    }
    metadata.insert(METADATA_KEY.to_owned(), player.raw.clone());
    identity::update_profile(
        &profile.id,
        &ProfileUpdate {
            display_name,
            image_url: avatar,
            metadata: Some(Value::Object(metadata)),
        },
    )
}

elements_sdk::export_element!(router);

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Result<(String, u64)> {
        parse_body(&Request::new(Method::Post, "/auth").with_body(json.to_owned()))
    }

    #[test]
    fn bodies() {
        assert_eq!(
            body(r#"{"application":"g","robloxUserId":42}"#).unwrap(),
            ("g".into(), 42)
        );
        assert_eq!(
            body(r#"{"application":"g","robloxUserId":"42"}"#).unwrap(),
            ("g".into(), 42)
        );
        for bad in [
            "",
            "[]",
            r#"{"robloxUserId":42}"#,
            r#"{"application":"","robloxUserId":42}"#,
            r#"{"application":"g"}"#,
            r#"{"application":"g","robloxUserId":"4x2"}"#,
            r#"{"application":"g","robloxUserId":"-1"}"#,
            r#"{"application":"g","robloxUserId":-1}"#,
            r#"{"application":"g","robloxUserId":1.5}"#,
            r#"{"application":"g","robloxUserId":0}"#,
            r#"{"application":"g","robloxUserId":"99999999999999999999999"}"#,
        ] {
            assert_eq!(body(bad).unwrap_err().status(), 400, "{bad}");
        }
    }

    #[test]
    fn avatars() {
        let ok = json!({"data": [{"targetId": 7, "state": "Completed", "imageUrl": "https://tr.rbxcdn.com/a/150/150/AvatarHeadshot/Png"}]});
        assert_eq!(
            avatar_in(&ok, 7).unwrap(),
            "https://tr.rbxcdn.com/a/150/150/AvatarHeadshot/Png"
        );
        for bad in [
            json!({}),
            json!({"data": []}),
            json!({"data": [{"targetId": 8, "state": "Completed", "imageUrl": "https://x"}]}),
            json!({"data": [{"targetId": 7, "state": "Pending", "imageUrl": ""}]}),
            json!({"data": [{"targetId": 7, "state": "Completed", "imageUrl": "javascript:alert(1)"}]}),
            json!({"data": [{"targetId": 7, "state": "Completed"}]}),
        ] {
            assert!(avatar_in(&bad, 7).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets() {
        assert!(secrets_match("s3cret", "s3cret"));
        assert!(!secrets_match("s3cres", "s3cret"));
        assert!(!secrets_match("s3cre", "s3cret"));
        assert!(!secrets_match("", "s3cret"));
    }
}
