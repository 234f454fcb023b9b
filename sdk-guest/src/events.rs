//! Events: named JSON payloads on the server's event bus.
//!
//! [`publish`] sends an event to every subscriber. Delivery happens after it
//! returns, and a failing subscriber never affects the publisher.
//!
//! To receive events, list the names in the Element's manifest and export a
//! handler with [`export_element!`](crate::export_element):
//!
//! ```toml
//! [events]
//! subscribe = ["game.match.ended", "game.player.*"]   # exact names, or a prefix ending in `*`
//! ```
//!
//! ```no_run
//! use elements_sdk::prelude::*;
//!
//! fn router() -> Router {
//!     Router::new()
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct MatchEnded {
//!     winner: String,
//! }
//!
//! fn on_event(event: Event) -> Result<()> {
//!     if event.name == "game.match.ended" {
//!         let ended: MatchEnded = event.payload_as()?;
//!         info!("{} won", ended.winner);
//!     }
//!     Ok(())
//! }
//!
//! elements_sdk::export_element!(router, events = on_event);
//! ```
//!
//! Each event runs the handler in a fresh instance, with the Element's usual
//! limits; it may use every host service (documents, mail, publishing more
//! events, ...).
//!
//! Event names are dotted segments of lowercase letters, digits, `_` and `-`
//! (`game.match.ended`). Names under `dev.getelements.` are reserved for the
//! server and its bundled Elements.

use std::fmt::Display;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::__private::bindings::elements::platform::events as wit;
use crate::error::{Error, Result};

/// Publishes event `name` with `payload` (serialized as JSON) to every
/// subscriber.
///
/// An Element publishes names under its own name (`NAME.`) freely; any
/// other name needs the grant `events.publish:PATTERN`, which its manifest
/// requests and the operator approves (`grants = ["events.publish:game.*"]`).
///
/// The host's refusals map to errors: an invalid name or a payload over
/// 256 KiB is 400 `BAD_REQUEST`; a name outside the Element's grants is 403
/// `FORBIDDEN`; past the budget (a request, with everything its events set
/// off, publishes at most 100 events, at most 8 deliveries deep) 429
/// `LIMIT_EXCEEDED`. A payload that can't be serialized is a 500.
///
/// ```no_run
/// use elements_sdk::prelude::*;
///
/// fn finish(match_id: &str, winner: &str) -> Result<()> {
///     events::publish("game.match.ended", &json!({"match": match_id, "winner": winner}))
/// }
/// ```
pub fn publish<T: Serialize + ?Sized>(name: &str, payload: &T) -> Result<()> {
    let payload = serde_json::to_string(payload)
        .map_err(|e| Error::internal(format!("cannot serialize the payload of event {name}: {e}")))?;
    wit::publish(name, &payload).map_err(|e| match e {
        wit::Error::Forbidden(m) => Error::forbidden(m),
        wit::Error::Invalid(m) => Error::bad_request(m),
        wit::Error::LimitExceeded(m) => Error::new(429, "LIMIT_EXCEEDED", m),
    })
}

/// An event delivered to the Element's event handler.
///
/// ```
/// use elements_sdk::{events::Event, json};
///
/// let event = Event::new("game.match.ended", json!({"winner": "ada"}));
/// assert_eq!(event.payload["winner"], "ada");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event's name, e.g. `game.match.ended`.
    pub name: String,
    /// The event's JSON payload.
    pub payload: Value,
}

impl Event {
    /// An event (for testing handlers natively).
    ///
    /// ```
    /// let e = elements_sdk::events::Event::new("a.b", serde_json::Value::Null);
    /// assert_eq!(e.name, "a.b");
    /// ```
    pub fn new(name: impl Into<String>, payload: Value) -> Event {
        Event {
            name: name.into(),
            payload,
        }
    }

    /// The payload deserialized into `T`; a payload that does not fit is a
    /// 400 error saying why.
    ///
    /// ```
    /// use elements_sdk::{events::Event, json};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Ended { winner: String }
    ///
    /// let event = Event::new("game.match.ended", json!({"winner": "ada"}));
    /// assert_eq!(event.payload_as::<Ended>().unwrap().winner, "ada");
    /// assert_eq!(event.payload_as::<u32>().unwrap_err().status(), 400);
    /// ```
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(&self.payload)
            .map_err(|e| Error::bad_request(format!("the payload of event {} does not fit: {e}", self.name)))
    }
}

/// What an event handler may return: `()`, or `Result<(), E>` for any
/// displayable `E` (`String`, [`Error`], ...). An error is logged by the host
/// in the Element's log.
///
/// ```
/// use elements_sdk::events::HandlerResult;
///
/// assert_eq!(().into_result(), Ok(()));
/// let failed: Result<(), String> = Err("no".into());
/// assert_eq!(failed.into_result(), Err("no".to_owned()));
/// let failed: elements_sdk::Result<()> = Err(elements_sdk::Error::conflict("taken"));
/// assert_eq!(failed.into_result(), Err("409 CONFLICT: taken".to_owned()));
/// ```
pub trait HandlerResult {
    /// The outcome as the host wants it.
    fn into_result(self) -> Result<(), String>;
}

impl HandlerResult for () {
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display> HandlerResult for Result<(), E> {
    fn into_result(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// Parses the payload and runs `handler` (called by the event-handler export
/// that [`export_element!`](crate::export_element) generates).
#[doc(hidden)]
pub fn dispatch<F, R>(handler: F, name: String, payload: String) -> Result<(), String>
where
    F: FnOnce(Event) -> R,
    R: HandlerResult,
{
    let payload = serde_json::from_str(&payload)
        .map_err(|e| format!("the payload of event {name} is not valid JSON: {e}"))?;
    handler(Event { name, payload }).into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_parses_and_reports() {
        let seen = dispatch(
            |e: Event| {
                assert_eq!(e.name, "a.b");
                assert_eq!(e.payload["n"], 1);
            },
            "a.b".into(),
            r#"{"n":1}"#.into(),
        );
        assert_eq!(seen, Ok(()));
        let bad = dispatch(|_e: Event| {}, "a.b".into(), "{".into());
        assert!(bad.unwrap_err().contains("not valid JSON"));
        let failed = dispatch(
            |_e: Event| Err::<(), _>(Error::internal("boom")),
            "a".into(),
            "1".into(),
        );
        assert_eq!(failed, Err("500 INTERNAL: boom".to_owned()));
    }
}
