//! Nakama's realtime socket (`GET /ws`) and the HTTP routes over the same
//! hub: notifications (`/v2/notification`), channel history
//! (`/v2/channel/{channel_id}`) and RPCs (`/v2/rpc/{id}`). The rules are in
//! `elements-realtime`; here the socket is authenticated, its frames handed
//! to the hub, its outbox written, and its session token checked again.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;
use utoipa::ToSchema;

use elements_identity::IdentityError;
use elements_realtime::{Connection, ErrorCode, RateLimiter, RealtimeError, RpcCaller};
use elements_server::App;

use super::error::{BEARER_CHALLENGE, Code, NakamaError, NakamaStatus};
use super::{Empty, Session, require_session};
use elements_identity::secret::ct_eq;

/// Close code: the server ends the session (logout, ban, expiry, a full
/// outbox, the socket cap).
const CLOSE_POLICY: u16 = 1008;
/// Close code: a frame larger than `max_message_bytes`.
const CLOSE_TOO_BIG: u16 = 1009;
/// Close code: not a WebSocket frame the server can read.
const CLOSE_PROTOCOL: u16 = 1002;

impl From<RealtimeError> for NakamaError {
    fn from(e: RealtimeError) -> NakamaError {
        match e {
            RealtimeError::InvalidArgument(m) => NakamaError::invalid(m),
            RealtimeError::NotFound(m) => NakamaError::new(Code::NotFound, m),
            RealtimeError::TooManySockets(m) => NakamaError::new(Code::ResourceExhausted, m),
            RealtimeError::Unavailable(m) => {
                tracing::warn!("realtime request failed, store unavailable: {m}");
                NakamaError::new(Code::Unavailable, "Storage unavailable, retry later.")
            }
            RealtimeError::Socket { code, message } => match code {
                ErrorCode::RuntimeFunctionNotFound => NakamaError::new(Code::NotFound, message),
                ErrorCode::RuntimeFunctionException => NakamaError::new(Code::Internal, message),
                _ => NakamaError::invalid(message),
            },
        }
    }
}

/// Bytes read from a socket at a time.
const READ_BUFFER_BYTES: usize = 4096;

fn query_pairs(query: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn parse_bool(value: Option<&str>, name: &str) -> Result<bool, NakamaError> {
    match value {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(_) => Err(NakamaError::invalid(format!("{name} must be true or false."))),
    }
}

fn parse_limit(value: Option<&str>) -> Result<u64, NakamaError> {
    let invalid = || NakamaError::invalid("Invalid limit - limit must be between 1 and 100.");
    match value {
        None | Some("") => Ok(1),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err(invalid()),
        },
    }
}

/// Opens Nakama's realtime socket (JSON envelopes). Authenticated with the
/// session token in `token`; `status=true` shows the user online to
/// followers. The socket closes (code 1008) within `[realtime]
/// session_check_secs` of the session expiring, logging out or being banned.
#[utoipa::path(get, path = "/ws", tag = "nakama",
    params(
        ("token" = String, Query, description = "Session token"),
        ("status" = Option<bool>, Query, description = "Appear online to followers"),
        ("format" = Option<String>, Query, description = "`json` (the only format served)"),
        ("lang" = Option<String>, Query, description = "Ignored"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade, or a format other than json", body = NakamaStatus),
        (status = 401, description = "No valid session token", body = NakamaStatus),
        (status = 429, description = "The user has as many sockets as allowed", body = NakamaStatus),
    ))]
pub async fn socket(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, NakamaError> {
    let pairs = query_pairs(query);
    let token = query_value(&pairs, "token").unwrap_or_default().to_owned();
    if token.is_empty() {
        return Err(NakamaError::unauthenticated(
            BEARER_CHALLENGE,
            "Auth token required",
        ));
    }
    let session = app
        .identity
        .service
        .verify_token(&token)
        .await
        .map_err(|e| match e {
            IdentityError::Unauthenticated(m) => NakamaError::unauthenticated(BEARER_CHALLENGE, m),
            other => other.into(),
        })?;
    match query_value(&pairs, "format") {
        None | Some("") | Some("json") => {}
        Some(_) => return Err(NakamaError::invalid("Only format=json is supported.")),
    }
    let status = parse_bool(query_value(&pairs, "status"), "status")?;
    let upgrade = upgrade.map_err(|e| NakamaError::invalid(format!("Not a WebSocket upgrade: {e}")))?;
    let hub = app.realtime.clone();
    // Registered before the answer, so the caps are exact and said in HTTP:
    // of two upgrades racing for a user's last place, the second gets 429,
    // never a 101 and then a close. A client gone before the upgrade
    // completes drops `registered`, which frees the place.
    let connection = hub.connect(&session.user_id, &session.username, status, Some(token.clone()))?;
    let registered = Registered {
        hub: hub.clone(),
        session_id: connection.session_id.clone(),
    };
    let limits = hub.limits().clone();
    Ok(upgrade
        // tungstenite's default read buffer is 128 KiB, zero-filled on the
        // first read: that was 137 KiB of every idle socket (`cargo xtask
        // bench --bench realtime`). Frames larger than it are still read
        // whole, in more than one read.
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_message_bytes)
        .on_upgrade(move |socket| serve(app, socket, connection, token, registered)))
}

/// A socket registered with the hub, unregistered when dropped: when the
/// socket ends, when the client leaves before the upgrade completes, or
/// when its task unwinds.
struct Registered {
    hub: Arc<elements_realtime::Hub>,
    session_id: String,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.hub.disconnect(&self.session_id);
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    // A close reason is at most 123 bytes.
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: reason[..end].into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(Message::Close(Some(frame)))).await;
}

/// One socket until it ends: frames in go to the hub (within the rate
/// limit), the outbox goes out (each frame within the write timeout), the
/// token is checked every `session_check`.
async fn serve(
    app: Arc<App>,
    mut socket: WebSocket,
    connection: Connection,
    token: String,
    registered: Registered,
) {
    let hub = app.realtime.clone();
    let limits = hub.limits().clone();
    let Connection {
        session_id,
        handle,
        mut outbox,
        ..
    } = connection;
    let mut rate = RateLimiter::new(limits.messages_per_sec, limits.message_burst);
    let mut check = tokio::time::interval(limits.session_check);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.tick().await;
    let ended: Option<(u16, String)> = loop {
        tokio::select! {
            biased;
            reason = handle.kicked() => break Some((CLOSE_POLICY, reason)),
            out = outbox.recv() => {
                let Some(text) = out else { break None };
                // A kick ends a write the client isn't taking, too.
                let sent = tokio::select! {
                    biased;
                    reason = handle.kicked() => break Some((CLOSE_POLICY, reason)),
                    sent = tokio::time::timeout(limits.write_timeout, socket.send(Message::Text(text.as_ref().into()))) => sent,
                };
                if !matches!(sent, Ok(Ok(()))) {
                    // A client that takes no more: nothing more can reach it.
                    tracing::debug!(session = %session_id, "realtime socket dropped: write failed or timed out");
                    break None;
                }
            }
            frame = socket.recv() => match frame {
                None | Some(Ok(Message::Close(_))) => break None,
                Some(Err(e)) => {
                    let text = e.to_string();
                    let too_big = text.contains("too long") || text.contains("Space limit") || text.contains("too big");
                    break if too_big {
                        Some((CLOSE_TOO_BIG, format!("message larger than {} bytes", limits.max_message_bytes)))
                    } else {
                        Some((CLOSE_PROTOCOL, "unreadable frame".to_owned()))
                    };
                }
                Some(Ok(Message::Text(text))) => {
                    if rate.allow() {
                        hub.receive(&session_id, text.as_str()).await;
                    } else {
                        hub.refuse(&session_id, Some(text.as_str()), &RealtimeError::bad_input(format!(
                            "Rate limit exceeded: at most {} messages per second.", limits.messages_per_sec
                        )));
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    hub.refuse(&session_id, None, &RealtimeError::socket(
                        ErrorCode::UnrecognizedPayload,
                        "Binary frames are not served: connect with format=json and send text.",
                    ));
                }
                // tungstenite answers pings itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            },
            _ = check.tick() => {
                match app.identity.service.verify_token(&token).await {
                    Err(IdentityError::Unauthenticated(_)) => break Some((CLOSE_POLICY, "session ended".to_owned())),
                    // A store outage is not the session's end: the next check decides.
                    Err(e) => tracing::warn!("realtime session check failed: {e}"),
                    Ok(_) => {}
                }
            }
        }
    };
    // Gone from the hub before the close frame goes out.
    drop(registered);
    if let Some((code, reason)) = ended {
        tracing::info!(session = %session_id, code, reason = %reason, "realtime socket closed by the server");
        close(&mut socket, code, &reason).await;
    }
}

/// A notification (`nakama.api.Notification`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiNotification {
    /// Id.
    pub id: String,
    /// Subject.
    pub subject: String,
    /// JSON object as text.
    pub content: String,
    /// Application code.
    pub code: i32,
    /// Sender (empty: the system).
    pub sender_id: String,
    /// RFC 3339.
    pub create_time: String,
    /// Stored.
    pub persistent: bool,
}

/// Notifications (`nakama.api.NotificationList`).
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    /// Oldest first.
    pub notifications: Vec<ApiNotification>,
    /// Pass it back to get only newer ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cacheable_cursor: Option<String>,
}

/// The caller's stored notifications, oldest first.
#[utoipa::path(get, path = "/v2/notification", tag = "nakama",
    params(
        ("limit" = Option<u32>, Query, description = "1 to 100 (default 1)"),
        ("cacheable_cursor" = Option<String>, Query, description = "Only notifications after this cursor"),
    ),
    responses(
        (status = 200, description = "The notifications", body = NotificationList),
        (status = 400, description = "Bad limit or cursor", body = NakamaStatus),
        (status = 401, description = "No valid session token", body = NakamaStatus),
    ), security(("bearer" = [])))]
pub async fn list_notifications(
    State(app): State<Arc<App>>,
    Session(caller): Session,
    RawQuery(query): RawQuery,
) -> Result<Json<NotificationList>, NakamaError> {
    let pairs = query_pairs(query);
    let limit = parse_limit(query_value(&pairs, "limit"))?;
    let cursor = query_value(&pairs, "cacheable_cursor").filter(|c| !c.is_empty());
    let page = app
        .realtime
        .list_notifications(&caller.user_id, limit, cursor)
        .await?;
    Ok(Json(NotificationList {
        notifications: page
            .notifications
            .into_iter()
            .map(|n| ApiNotification {
                id: n.id,
                subject: n.subject,
                content: n.content,
                code: n.code,
                sender_id: n.sender_id,
                create_time: n.create_time,
                persistent: n.persistent,
            })
            .collect(),
        cacheable_cursor: page.cacheable_cursor,
    }))
}

/// Deletes the caller's notifications with these ids (others' are left).
#[utoipa::path(delete, path = "/v2/notification", tag = "nakama",
    params(("ids" = Vec<String>, Query, description = "Notification ids (repeat the parameter)")),
    responses(
        (status = 200, description = "Deleted", body = Empty),
        (status = 400, description = "Too many ids", body = NakamaStatus),
        (status = 401, description = "No valid session token", body = NakamaStatus),
    ), security(("bearer" = [])))]
pub async fn delete_notifications(
    State(app): State<Arc<App>>,
    Session(caller): Session,
    RawQuery(query): RawQuery,
) -> Result<Json<Empty>, NakamaError> {
    let ids: Vec<String> = query_pairs(query)
        .into_iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v)
        .collect();
    if ids.len() > 100 {
        return Err(NakamaError::invalid("At most 100 notification ids at once."));
    }
    app.realtime.delete_notifications(&caller.user_id, &ids).await?;
    Ok(Json(Empty {}))
}

/// A chat message (`nakama.api.ChannelMessage`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiChannelMessage {
    /// Channel.
    pub channel_id: String,
    /// Message.
    pub message_id: String,
    /// 0 chat, 1 update, 2 remove.
    pub code: i32,
    /// Sender.
    pub sender_id: String,
    /// Sender's name.
    pub username: String,
    /// JSON object as text.
    pub content: String,
    /// RFC 3339.
    pub create_time: String,
    /// RFC 3339.
    pub update_time: String,
    /// Stored.
    pub persistent: bool,
    /// Room name (rooms).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub room_name: String,
    /// First user (direct messages).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_id_one: String,
    /// Second user (direct messages).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_id_two: String,
}

/// A page of history (`nakama.api.ChannelMessageList`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelMessageList {
    /// The messages.
    pub messages: Vec<ApiChannelMessage>,
    /// The next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// The page before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_cursor: Option<String>,
}

/// A channel's stored messages: newest first, or oldest first with
/// `forward=true`. Rooms are readable by any user, direct messages by
/// their two users.
#[utoipa::path(get, path = "/v2/channel/{channel_id}", tag = "nakama",
    params(
        ("channel_id" = String, Path, description = "The channel id, as `channel_join` gave it"),
        ("limit" = Option<u32>, Query, description = "1 to 100 (default 1)"),
        ("forward" = Option<bool>, Query, description = "Oldest first"),
        ("cursor" = Option<String>, Query, description = "Where the page starts"),
    ),
    responses(
        (status = 200, description = "The messages", body = ChannelMessageList),
        (status = 400, description = "Bad channel id, limit or cursor", body = NakamaStatus),
        (status = 401, description = "No valid session token", body = NakamaStatus),
        (status = 404, description = "A direct message channel of other users", body = NakamaStatus),
    ), security(("bearer" = [])))]
pub async fn list_channel_messages(
    State(app): State<Arc<App>>,
    Session(caller): Session,
    Path(channel_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<ChannelMessageList>, NakamaError> {
    let pairs = query_pairs(query);
    let limit = parse_limit(query_value(&pairs, "limit"))?;
    let forward = parse_bool(query_value(&pairs, "forward"), "forward")?;
    let cursor = query_value(&pairs, "cursor").filter(|c| !c.is_empty());
    let page = app
        .realtime
        .list_messages(&caller.user_id, &channel_id, limit, forward, cursor)
        .await?;
    Ok(Json(ChannelMessageList {
        messages: page
            .messages
            .into_iter()
            .map(|m| ApiChannelMessage {
                channel_id: m.channel_id,
                message_id: m.message_id,
                code: m.code,
                sender_id: m.sender_id,
                username: m.username,
                content: m.content,
                create_time: m.create_time,
                update_time: m.update_time,
                persistent: m.persistent,
                room_name: m.room_name,
                user_id_one: m.user_id_one,
                user_id_two: m.user_id_two,
            })
            .collect(),
        next_cursor: page.next_cursor,
        prev_cursor: page.prev_cursor,
    }))
}

/// An RPC's answer (`nakama.api.Rpc`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiRpc {
    /// The RPC id.
    pub id: String,
    /// Its answer.
    pub payload: String,
}

/// Runs an RPC with the request body (a JSON string, as Nakama's gateway
/// reads it; the raw body with `?unwrap`) as its payload: the Element whose
/// manifest declares the id (`rpcs = [...]`) serves it; any other id is
/// answered "RPC function not found". A player calls it with their session
/// token; a game server without a session, with `?http_key=` (the
/// operator's `--http-key`; none set: refused), and the Element sees no
/// caller.
#[utoipa::path(post, path = "/v2/rpc/{id}", tag = "nakama",
    params(
        ("id" = String, Path, description = "The RPC id"),
        ("http_key" = Option<String>, Query, description = "The server's HTTP key, in place of a session"),
        ("unwrap" = Option<String>, Query, description = "Present: the body is the payload as is, not a JSON string"),
    ),
    request_body(content = String, description = "The payload, as a JSON string"),
    responses(
        (status = 200, description = "The RPC's answer", body = ApiRpc),
        (status = 400, description = "The body is not a JSON string", body = NakamaStatus),
        (status = 401, description = "No valid session token or HTTP key", body = NakamaStatus),
        (status = 404, description = "No RPC with this id", body = NakamaStatus),
    ), security(("bearer" = [])))]
pub async fn rpc(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ApiRpc>, NakamaError> {
    let pairs = query_pairs(query);
    let caller = match query_value(&pairs, "http_key") {
        Some(key) => {
            let valid = app
                .identity
                .http_key
                .as_ref()
                .is_some_and(|expected| ct_eq(key, expected.expose()));
            if !valid {
                return Err(NakamaError::unauthenticated(BEARER_CHALLENGE, "HTTP key invalid"));
            }
            RpcCaller {
                user_id: String::new(),
                username: String::new(),
                session_id: None,
                credential: None,
            }
        }
        None => {
            let session = require_session(&app, &headers).await?;
            RpcCaller {
                user_id: session.user_id,
                username: session.username,
                session_id: None,
                credential: elements_server::request::authorization(&headers, "Bearer").map(str::to_owned),
            }
        }
    };
    let body = body.map_err(|e| NakamaError::invalid(e.body_text()))?;
    let payload = if query_value(&pairs, "unwrap").is_some() {
        String::from_utf8(body.to_vec())
            .map_err(|_| NakamaError::invalid("The RPC payload must be UTF-8 text."))?
    } else if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        serde_json::from_slice::<String>(&body)
            .map_err(|_| NakamaError::invalid("The RPC payload must be a JSON string."))?
    };
    let payload = app.realtime.rpc(&id, payload, caller).await?;
    Ok(Json(ApiRpc { id, payload }))
}
