//! What Elements do on the socket (the host's `realtime` service calls
//! these): notify users ([`Hub::notify`]), post to rooms, and run matches.
//!
//! An Element's match is named by its id: `UUID.element:NAME`. Any node can
//! tell the owner from the id alone, and the owner keeps the match's state
//! in its own documents, so nothing about it needs to be shared between
//! nodes. A player's `match_join` of such an id asks the owner (its
//! `match-handler` export) to admit them; their match data goes to the
//! owner, never straight to the other players; the owner answers with
//! [`Hub::send_match_data`].

use base64::Engine;
use serde_json::json;

use crate::error::{ErrorCode, RealtimeError};
use crate::fabric::Route;
use crate::hub::Hub;
use crate::protocol::{ChannelMessage, Presence};

/// What separates an Element match's uuid from its owner's name.
const ELEMENT_MATCH_MARK: &str = ".element:";

/// The Element that owns `match_id`, when it is an Element's match.
pub fn match_owner(match_id: &str) -> Option<&str> {
    let (uuid, owner) = match_id.split_once(ELEMENT_MATCH_MARK)?;
    (uuid::Uuid::parse_str(uuid).is_ok() && !owner.is_empty()).then_some(owner)
}

/// Runs the matches Elements own. The composition root implements it with
/// the deployed Elements' `match-handler` exports; without one, every
/// Element match is "not found".
#[async_trait::async_trait]
pub trait MatchHandler: Send + Sync + 'static {
    /// Whether `element` admits `player` to `match_id`: `Err` is the reason
    /// it refuses.
    async fn join(&self, element: &str, match_id: &str, player: &Presence) -> Result<(), MatchRefusal>;
    /// `player` left `match_id`.
    async fn leave(&self, element: &str, match_id: &str, player: &Presence);
    /// `sender` sent match data; `Err` is the message the sender gets.
    async fn data(
        &self,
        element: &str,
        match_id: &str,
        sender: &Presence,
        op_code: i64,
        data: Vec<u8>,
    ) -> Result<(), String>;
}

/// Why a player was not admitted to an Element's match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchRefusal {
    /// No deployed Element by that name runs matches.
    NotFound,
    /// The Element refused, with this reason.
    Refused(String),
}

impl Hub {
    /// A new id for a match `element` runs.
    pub fn new_element_match(&self, element: &str) -> String {
        format!("{}{ELEMENT_MATCH_MARK}{element}", uuid::Uuid::new_v4())
    }

    /// Asks the owner of an Element match to admit `player`.
    pub(crate) async fn admit(
        &self,
        owner: &str,
        match_id: &str,
        player: &Presence,
    ) -> Result<(), RealtimeError> {
        let Some(handler) = self.matches.get() else {
            return Err(RealtimeError::socket(ErrorCode::MatchNotFound, "Match not found"));
        };
        handler
            .join(owner, match_id, player)
            .await
            .map_err(|refusal| match refusal {
                MatchRefusal::NotFound => RealtimeError::socket(ErrorCode::MatchNotFound, "Match not found"),
                MatchRefusal::Refused(reason) => RealtimeError::socket(ErrorCode::MatchJoinRejected, reason),
            })
    }

    /// Hands a player's match data to the match's owner.
    pub(crate) async fn to_owner(
        &self,
        owner: &str,
        match_id: &str,
        sender: &Presence,
        op_code: i64,
        data: Vec<u8>,
    ) -> Result<(), RealtimeError> {
        let Some(handler) = self.matches.get() else {
            return Err(RealtimeError::socket(ErrorCode::MatchNotFound, "Match not found"));
        };
        handler
            .data(owner, match_id, sender, op_code, data)
            .await
            .map_err(|message| RealtimeError::socket(ErrorCode::RuntimeException, message))
    }

    /// Tells the owner of an Element match that `player` left, without
    /// waiting for it.
    pub(crate) fn left_owner(&self, match_id: &str, player: &Presence) {
        let (Some(owner), Some(handler)) = (match_owner(match_id), self.matches.get()) else {
            return;
        };
        let (handler, owner, match_id, player) = (
            handler.clone(),
            owner.to_owned(),
            match_id.to_owned(),
            player.clone(),
        );
        tokio::spawn(async move { handler.leave(&owner, &match_id, &player).await });
    }

    /// Sends match data from `element` to the players in its match
    /// `match_id`, or to those of them among `sessions`.
    pub fn send_match_data(
        &self,
        element: &str,
        match_id: &str,
        op_code: i64,
        data: &[u8],
        sessions: Option<&[String]>,
    ) -> Result<(), RealtimeError> {
        if match_owner(match_id) != Some(element) {
            return Err(RealtimeError::InvalidArgument(format!(
                "{match_id:?} is not a match of this Element."
            )));
        }
        if data.len() > self.limits.max_match_data_bytes {
            return Err(RealtimeError::InvalidArgument(format!(
                "Match data too large: at most {} bytes.",
                self.limits.max_match_data_bytes
            )));
        }
        let route = match sessions {
            // Only players of this match: an Element can't reach other
            // sockets by naming their session ids.
            Some(ids) => Route::StreamMembers {
                key: match_id.to_owned(),
                sessions: ids.to_vec(),
            },
            None => Route::Stream {
                key: match_id.to_owned(),
                except: None,
            },
        };
        self.send(
            route,
            "match_data",
            json!({
                "match_id": match_id,
                "op_code": op_code.to_string(),
                "data": base64::engine::general_purpose::STANDARD.encode(data),
                "reliable": true,
            }),
        );
        Ok(())
    }

    /// Posts `content` (a JSON object) to the room `room` as `element`:
    /// stored in the room's history, pushed to its members.
    pub async fn send_to_room(
        &self,
        element: &str,
        room: &str,
        content: &str,
    ) -> Result<String, RealtimeError> {
        self.check_room_name(room)
            .map_err(|e| RealtimeError::InvalidArgument(e.to_string()))?;
        Self::check_content(content).map_err(|e| RealtimeError::InvalidArgument(e.to_string()))?;
        if content.len() > self.limits.max_message_bytes {
            return Err(RealtimeError::InvalidArgument(format!(
                "Message content too large: at most {} bytes.",
                self.limits.max_message_bytes
            )));
        }
        let template = ChannelMessage {
            channel_id: format!("2...{room}"),
            message_id: String::new(),
            code: 0,
            sender_id: String::new(),
            username: element.to_owned(),
            content: content.to_owned(),
            create_time: String::new(),
            update_time: String::new(),
            persistent: true,
            room_name: room.to_owned(),
            user_id_one: String::new(),
            user_id_two: String::new(),
        };
        let (seq, message) = self.history.new_message(template);
        self.history.store_message(seq, &message).await?;
        let id = message.message_id.clone();
        self.send(
            Route::Stream {
                key: message.channel_id.clone(),
                except: None,
            },
            "channel_message",
            json!(message),
        );
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::match_owner;

    #[test]
    fn only_a_uuid_and_a_name_make_an_element_match() {
        let id = "0b4f6a5e-3f7c-4c47-9a43-0c3f4d1e2a10";
        assert_eq!(match_owner(&format!("{id}.element:turns")), Some("turns"));
        assert_eq!(match_owner(&format!("{id}.elements-1234")), None);
        assert_eq!(match_owner(&format!("{id}.element:")), None);
        assert_eq!(match_owner("nope.element:turns"), None);
    }
}
