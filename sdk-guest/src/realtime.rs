//! The realtime socket: notifications to players, messages to chat rooms,
//! and matches the Element runs.
//!
//! Players connect to the server's `/ws` with a Nakama client
//! (`socket.connect(session)`). An Element reaches them through the host,
//! each call under a grant its manifest requests and the operator approves:
//!
//! | call | grant |
//! |---|---|
//! | [`notify`] | `realtime.notify` |
//! | [`send_to_room`] | `realtime.rooms` |
//! | [`create_match`], [`send_match_data`], [`send_match_data_to`] | `realtime.match` |
//!
//! One request (or event, or match event) makes at most 100 of these calls.
//!
//! ```no_run
//! use elements_sdk::prelude::*;
//! use elements_sdk::realtime::{self, Notification};
//!
//! fn reward(user_id: &str) -> Result<()> {
//!     let note = Notification::new("Daily reward", json!({"coins": 50})).code(100);
//!     realtime::notify(&[user_id], &note)?;
//!     realtime::send_to_room("lobby", &json!({"text": "Someone got their reward"}))?;
//!     Ok(())
//! }
//! ```
//!
//! # Matches
//!
//! [`create_match`] makes a match this Element runs: players join it with
//! the socket's `match_join`, and the Element's [`MatchHandler`] (exported
//! with [`export_element!`](crate::export_element)`(router, matches =
//! Type)`) admits them, gets their match data (which is never relayed to the
//! other players by itself) and sees them leave. It answers with
//! [`send_match_data`]. Each handler call runs in a fresh instance: keep the
//! match's state in [`documents`](crate::documents).
//!
//! The host calls are compiled in the examples but not run.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::__private::bindings::elements::platform::realtime as wit;
use crate::error::Error;

/// A notification: a subject, a JSON object, an application code.
///
/// ```
/// use elements_sdk::realtime::Notification;
/// use serde_json::json;
///
/// let n = Notification::new("Your turn", json!({"match": "m1"})).code(7).persistent(false);
/// assert_eq!((n.code, n.persistent), (7, false));
/// assert_eq!(n.content, r#"{"match":"m1"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Short text.
    pub subject: String,
    /// A JSON object, as text.
    pub content: String,
    /// 1 and above (0 and below are the server's). Default 1.
    pub code: i32,
    /// Stored for the player to list later, not only pushed. Default true.
    pub persistent: bool,
}

impl Notification {
    /// A persistent notification with code 1. `content` is anything that
    /// serializes to a JSON object.
    pub fn new(subject: impl Into<String>, content: impl Serialize) -> Notification {
        Notification {
            subject: subject.into(),
            content: serde_json::to_string(&content).unwrap_or_else(|_| "{}".into()),
            code: 1,
            persistent: true,
        }
    }

    /// Sets the application code (1 and above).
    pub fn code(mut self, code: i32) -> Notification {
        self.code = code;
        self
    }

    /// Whether it is stored for the player (`GET /v2/notification`).
    pub fn persistent(mut self, persistent: bool) -> Notification {
        self.persistent = persistent;
        self
    }
}

/// Why a realtime call failed.
///
/// Converts into the SDK [`Error`], so `?` works in handlers:
///
/// ```
/// use elements_sdk::{Error, realtime::RealtimeError};
///
/// let e = Error::from(RealtimeError::Forbidden("lacks realtime.notify".into()));
/// assert_eq!((e.status(), e.code()), (403, "FORBIDDEN"));
/// let e = Error::from(RealtimeError::Invalid("bad room".into()));
/// assert_eq!((e.status(), e.code()), (400, "BAD_REQUEST"));
/// let e = Error::from(RealtimeError::LimitExceeded("at most 100".into()));
/// assert_eq!((e.status(), e.code()), (429, "LIMIT_EXCEEDED"));
/// let e = Error::from(RealtimeError::Unavailable("store down".into()));
/// assert_eq!((e.status(), e.code()), (503, "UNAVAILABLE"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealtimeError {
    /// The Element lacks the grant the message names.
    Forbidden(String),
    /// An id, a name, the content or the data is not valid.
    Invalid(String),
    /// Too many calls in this request, or too many users in one call.
    LimitExceeded(String),
    /// The store can't be reached right now.
    Unavailable(String),
}

impl fmt::Display for RealtimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RealtimeError::Forbidden(m) => write!(f, "not allowed: {m}"),
            RealtimeError::Invalid(m) => write!(f, "invalid: {m}"),
            RealtimeError::LimitExceeded(m) => write!(f, "too many: {m}"),
            RealtimeError::Unavailable(m) => write!(f, "unavailable: {m}"),
        }
    }
}

impl std::error::Error for RealtimeError {}

impl From<RealtimeError> for Error {
    fn from(e: RealtimeError) -> Error {
        let message = e.to_string();
        match e {
            RealtimeError::Forbidden(_) => Error::forbidden(message),
            RealtimeError::Invalid(_) => Error::bad_request(message),
            RealtimeError::LimitExceeded(_) => Error::new(429, "LIMIT_EXCEEDED", message),
            RealtimeError::Unavailable(_) => Error::new(503, "UNAVAILABLE", message),
        }
    }
}

fn map(e: wit::Error) -> RealtimeError {
    match e {
        wit::Error::Forbidden(m) => RealtimeError::Forbidden(m),
        wit::Error::Invalid(m) => RealtimeError::Invalid(m),
        wit::Error::LimitExceeded(m) => RealtimeError::LimitExceeded(m),
        wit::Error::Unavailable(m) => RealtimeError::Unavailable(m),
    }
}

/// Sends `notification` to each of `user_ids` (1 to 100): pushed to their
/// open sockets, on whichever node, and stored when persistent. Needs
/// `realtime.notify`.
///
/// ```no_run
/// use elements_sdk::realtime::{self, Notification};
///
/// realtime::notify(&["9a1c3b1e-2f4d-4c61-8f0e-4b7d2a6c1e55"], &Notification::new("Hi", serde_json::json!({})))?;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn notify<S: AsRef<str>>(user_ids: &[S], notification: &Notification) -> Result<(), RealtimeError> {
    let ids: Vec<String> = user_ids.iter().map(|s| s.as_ref().to_owned()).collect();
    let n = wit::Notification {
        subject: notification.subject.clone(),
        content: notification.content.clone(),
        code: notification.code,
        persistent: notification.persistent,
    };
    wit::notify(&ids, &n).map_err(map)
}

/// Posts `content` (anything that serializes to a JSON object) to the chat
/// room `room`, under the Element's name: stored in the room's history and
/// pushed to its members. Returns the message id. Needs `realtime.rooms`.
///
/// ```no_run
/// let id = elements_sdk::realtime::send_to_room("lobby", &serde_json::json!({"text": "Server restarts in 5 minutes"}))?;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn send_to_room(room: &str, content: &impl Serialize) -> Result<String, RealtimeError> {
    let content = serde_json::to_string(content).map_err(|e| RealtimeError::Invalid(e.to_string()))?;
    wit::send_to_room(room, &content).map_err(map)
}

/// A new match this Element runs; players join it by its id. Needs
/// `realtime.match`.
///
/// ```no_run
/// let match_id = elements_sdk::realtime::create_match()?;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn create_match() -> Result<String, RealtimeError> {
    wit::create_match().map_err(map)
}

/// Sends match data to every player of `match_id` (a match of this
/// Element). Needs `realtime.match`.
///
/// ```no_run
/// # let match_id = "";
/// elements_sdk::realtime::send_match_data(match_id, 1, b"x=3")?;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn send_match_data(match_id: &str, op_code: i64, data: &[u8]) -> Result<(), RealtimeError> {
    wit::send_match_data(match_id, op_code, data, None).map_err(map)
}

/// Sends match data to those players of `match_id` whose session ids are in
/// `to` (others are skipped: an Element reaches only its own players).
/// Needs `realtime.match`.
///
/// ```no_run
/// # let (match_id, session_id) = ("", "");
/// elements_sdk::realtime::send_match_data_to(match_id, 9, b"not your turn", &[session_id])?;
/// # Ok::<(), elements_sdk::Error>(())
/// ```
pub fn send_match_data_to<S: AsRef<str>>(
    match_id: &str,
    op_code: i64,
    data: &[u8],
    to: &[S],
) -> Result<(), RealtimeError> {
    let to: Vec<String> = to.iter().map(|s| s.as_ref().to_owned()).collect();
    wit::send_match_data(match_id, op_code, data, Some(&to)).map_err(map)
}

/// A player in a match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Player {
    /// Their user id.
    pub user_id: String,
    /// The socket's session id (the one [`send_match_data`] names).
    pub session_id: String,
    /// Their username.
    pub username: String,
}

/// The matches an Element runs: exported with
/// `export_element!(router, matches = MyMatches)`. Each call runs in a
/// fresh instance.
///
/// ```no_run
/// use elements_sdk::prelude::*;
/// use elements_sdk::realtime::{self, MatchHandler, Player};
///
/// struct Echo;
///
/// impl MatchHandler for Echo {
///     fn join(match_id: &str, player: &Player) -> std::result::Result<(), String> {
///         // A real Element checks its documents: any player can name any id.
///         Ok(())
///     }
///     fn leave(_match_id: &str, _player: &Player) {}
///     fn data(match_id: &str, sender: &Player, op_code: i64, data: &[u8]) -> std::result::Result<(), String> {
///         realtime::send_match_data(match_id, op_code, data).map_err(|e| e.to_string())
///     }
/// }
///
/// fn router() -> Router {
///     Router::new()
/// }
///
/// elements_sdk::export_element!(router, matches = Echo);
/// ```
pub trait MatchHandler {
    /// `player` asks to join `match_id`: `Ok` admits them, `Err` refuses
    /// with a reason they see.
    fn join(match_id: &str, player: &Player) -> Result<(), String>;
    /// `player` left `match_id`.
    fn leave(match_id: &str, player: &Player);
    /// `sender` sent match data. `Err` is logged, and the sender gets it as
    /// an error.
    fn data(match_id: &str, sender: &Player, op_code: i64, data: &[u8]) -> Result<(), String>;
}
