//! Nakama's realtime envelopes as JSON (`nakama.realtime.Envelope` under
//! protojson with proto names): what a client sends ([`Incoming`]) and the
//! shapes it gets back. An envelope is an object with an optional `cid`
//! (the client's correlation id, echoed on the answer) and exactly one
//! message field.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{ErrorCode, RealtimeError};

/// A user's session in a stream (`nakama.realtime.UserPresence`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Presence {
    /// The user.
    pub user_id: String,
    /// The socket's session.
    pub session_id: String,
    /// The user's name.
    pub username: String,
    /// Whether messages are stored (channels).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub persistence: bool,
    /// The status text (status presences only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A chat message (`nakama.api.ChannelMessage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelMessage {
    /// The channel.
    pub channel_id: String,
    /// The message.
    pub message_id: String,
    /// 0 chat, 1 update, 2 remove (Nakama's codes).
    pub code: i32,
    /// Who sent it.
    pub sender_id: String,
    /// Their name.
    pub username: String,
    /// JSON object as text.
    pub content: String,
    /// RFC 3339.
    pub create_time: String,
    /// RFC 3339.
    pub update_time: String,
    /// Stored in the history.
    pub persistent: bool,
    /// The room's name (rooms).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub room_name: String,
    /// The first user (direct messages).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_id_one: String,
    /// The second user (direct messages).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_id_two: String,
}

/// A notification (`nakama.api.Notification`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Its id.
    pub id: String,
    /// Short text.
    pub subject: String,
    /// JSON object as text.
    pub content: String,
    /// Application-defined code (Nakama reserves negative ones).
    pub code: i32,
    /// Who sent it (empty: the system).
    pub sender_id: String,
    /// RFC 3339.
    pub create_time: String,
    /// Kept until deleted (listed by `GET /v2/notification`).
    pub persistent: bool,
}

/// A notification to send ([`crate::Hub::notify`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// Short text.
    pub subject: String,
    /// A JSON object.
    pub content: Value,
    /// Application-defined code.
    pub code: i32,
    /// Who sends it (empty: the system).
    pub sender_id: String,
    /// Store it for `GET /v2/notification` (and for a user who is offline).
    pub persistent: bool,
}

/// A protobuf int64/int32 as protojson writes it: a number or a string.
fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(0),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| serde::de::Error::custom("not an integer")),
        Value::String(s) => s.trim().parse().map_err(serde::de::Error::custom),
        _ => Err(serde::de::Error::custom("expected an integer")),
    }
}

/// `channel_join`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChannelJoin {
    /// Room name or the other user's id.
    pub target: String,
    /// 1 room, 2 direct message, 3 group.
    #[serde(deserialize_with = "int_or_string")]
    pub r#type: i64,
    /// Store messages.
    pub persistence: Option<bool>,
    /// Not shown in presences.
    pub hidden: Option<bool>,
}

/// `channel_leave`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChannelLeave {
    /// The channel.
    pub channel_id: String,
}

/// `channel_message_send`, `_update`, `_remove`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChannelMessageOp {
    /// The channel.
    pub channel_id: String,
    /// The message (update, remove).
    pub message_id: String,
    /// JSON object as text (send, update).
    pub content: String,
}

/// `match_create`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MatchCreate {
    /// A name makes the match id deterministic.
    pub name: Option<String>,
}

/// `match_join`, `match_leave`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MatchRef {
    /// The match.
    pub match_id: String,
    /// A matchmaker token (no matchmaker here).
    pub token: Option<String>,
}

/// `match_data_send`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MatchDataSend {
    /// The match.
    pub match_id: String,
    /// Application-defined.
    #[serde(deserialize_with = "int_or_string")]
    pub op_code: i64,
    /// Base64.
    pub data: String,
    /// Only these (empty: everyone else in the match).
    pub presences: Vec<Presence>,
    /// Passed on as given.
    pub reliable: bool,
}

/// `status_follow`, `status_unfollow`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StatusUsers {
    /// User ids.
    pub user_ids: Vec<String>,
    /// Usernames (not supported: no user directory here).
    pub usernames: Vec<String>,
}

/// `status_update`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StatusUpdate {
    /// The status; absent: appear offline.
    pub status: Option<String>,
}

/// `rpc`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Rpc {
    /// The RPC id.
    pub id: String,
    /// Its payload.
    pub payload: Option<String>,
    /// The server's HTTP key (not needed on a socket).
    pub http_key: Option<String>,
}

/// A message a client sent.
#[derive(Debug)]
pub enum Incoming {
    /// `ping`.
    Ping,
    /// `pong` (the answer to nothing: ignored).
    Pong,
    /// `channel_join`.
    ChannelJoin(ChannelJoin),
    /// `channel_leave`.
    ChannelLeave(ChannelLeave),
    /// `channel_message_send`.
    ChannelMessageSend(ChannelMessageOp),
    /// `channel_message_update`.
    ChannelMessageUpdate(ChannelMessageOp),
    /// `channel_message_remove`.
    ChannelMessageRemove(ChannelMessageOp),
    /// `match_create`.
    MatchCreate(MatchCreate),
    /// `match_join`.
    MatchJoin(MatchRef),
    /// `match_leave`.
    MatchLeave(MatchRef),
    /// `match_data_send`.
    MatchDataSend(MatchDataSend),
    /// `status_follow`.
    StatusFollow(StatusUsers),
    /// `status_unfollow`.
    StatusUnfollow(StatusUsers),
    /// `status_update`.
    StatusUpdate(StatusUpdate),
    /// `rpc`.
    Rpc(Rpc),
    /// A message of Nakama's this server doesn't serve (parties,
    /// matchmaker): named so the error says which.
    Unsupported(String),
}

/// Messages of Nakama's protocol that are not served here.
const UNSUPPORTED: &[&str] = &[
    "matchmaker_add",
    "matchmaker_remove",
    "party_create",
    "party_join",
    "party_leave",
    "party_promote",
    "party_accept",
    "party_remove",
    "party_close",
    "party_join_request_list",
    "party_matchmaker_add",
    "party_matchmaker_remove",
    "party_data_send",
];

/// Reads one text frame: the `cid` (when there is one, even if the rest is
/// bad, so the error can carry it) and the message.
pub fn parse(text: &str) -> (Option<String>, Result<Incoming, RealtimeError>) {
    let mut object: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(o)) => o,
        Ok(_) => {
            return (
                None,
                Err(RealtimeError::socket(
                    ErrorCode::UnrecognizedPayload,
                    "Malformed message: an envelope is a JSON object.",
                )),
            );
        }
        Err(e) => {
            return (
                None,
                Err(RealtimeError::socket(
                    ErrorCode::UnrecognizedPayload,
                    format!("Malformed message: {e}"),
                )),
            );
        }
    };
    let cid = match object.remove("cid") {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let mut fields = object.into_iter();
    let Some((name, body)) = fields.next() else {
        return (
            cid,
            Err(RealtimeError::socket(
                ErrorCode::MissingPayload,
                "Missing message.",
            )),
        );
    };
    if fields.next().is_some() {
        return (
            cid,
            Err(RealtimeError::socket(
                ErrorCode::UnrecognizedPayload,
                "Malformed message: more than one message in the envelope.",
            )),
        );
    }
    (cid, incoming(&name, body))
}

fn incoming(name: &str, body: Value) -> Result<Incoming, RealtimeError> {
    fn body_of<T: serde::de::DeserializeOwned + Default>(
        name: &str,
        body: Value,
    ) -> Result<T, RealtimeError> {
        if body.is_null() {
            return Ok(T::default());
        }
        serde_json::from_value(body).map_err(|e| RealtimeError::bad_input(format!("Invalid {name}: {e}")))
    }
    Ok(match name {
        "ping" => Incoming::Ping,
        "pong" => Incoming::Pong,
        "channel_join" => Incoming::ChannelJoin(body_of(name, body)?),
        "channel_leave" => Incoming::ChannelLeave(body_of(name, body)?),
        "channel_message_send" => Incoming::ChannelMessageSend(body_of(name, body)?),
        "channel_message_update" => Incoming::ChannelMessageUpdate(body_of(name, body)?),
        "channel_message_remove" => Incoming::ChannelMessageRemove(body_of(name, body)?),
        "match_create" => Incoming::MatchCreate(body_of(name, body)?),
        "match_join" => Incoming::MatchJoin(body_of(name, body)?),
        "match_leave" => Incoming::MatchLeave(body_of(name, body)?),
        "match_data_send" => Incoming::MatchDataSend(body_of(name, body)?),
        "status_follow" => Incoming::StatusFollow(body_of(name, body)?),
        "status_unfollow" => Incoming::StatusUnfollow(body_of(name, body)?),
        "status_update" => Incoming::StatusUpdate(body_of(name, body)?),
        "rpc" => Incoming::Rpc(body_of(name, body)?),
        other if UNSUPPORTED.contains(&other) => Incoming::Unsupported(other.to_owned()),
        _ => {
            return Err(RealtimeError::socket(
                ErrorCode::UnrecognizedPayload,
                "Unrecognized message.",
            ));
        }
    })
}

/// An envelope: `message` under `name`, with the `cid` when answering one.
pub fn envelope(cid: Option<&str>, name: &str, message: Value) -> String {
    let mut object = Map::new();
    if let Some(cid) = cid {
        object.insert("cid".into(), Value::String(cid.to_owned()));
    }
    object.insert(name.to_owned(), message);
    Value::Object(object).to_string()
}

/// The answer to a request that answers nothing but its `cid`.
pub fn ack(cid: Option<&str>) -> String {
    match cid {
        Some(cid) => json!({ "cid": cid }).to_string(),
        None => "{}".to_owned(),
    }
}

/// The `error` envelope.
pub fn error(cid: Option<&str>, error: &RealtimeError) -> String {
    let (code, message) = error.envelope_parts();
    envelope(
        cid,
        "error",
        json!({ "code": code as i32, "message": message, "context": {} }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cid_and_message() {
        let (cid, m) = parse(r#"{"cid":"7","ping":{}}"#);
        assert_eq!(cid.as_deref(), Some("7"));
        assert!(matches!(m, Ok(Incoming::Ping)));
        let (_, m) = parse(r#"{"match_data_send":{"match_id":"x","op_code":"3","data":"AQ=="}}"#);
        match m {
            Ok(Incoming::MatchDataSend(d)) => assert_eq!(d.op_code, 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_envelopes_have_nakamas_codes() {
        let code = |text: &str| match parse(text).1 {
            Err(e) => e.envelope_parts().0 as i32,
            Ok(m) => panic!("accepted {m:?}"),
        };
        assert_eq!(code("{nope"), 1);
        assert_eq!(code("[1]"), 1);
        assert_eq!(code(r#"{"cid":"1"}"#), 2);
        assert_eq!(code(r#"{"cid":"1","teleport":{}}"#), 1);
        assert_eq!(code(r#"{"channel_join":{"type":"x"}}"#), 3);
        let (cid, _) = parse(r#"{"cid":"9","teleport":{}}"#);
        assert_eq!(cid.as_deref(), Some("9"));
    }
}
