//! The runtime's event bus: named events with a JSON payload, delivered to
//! every subscriber. Publishing never waits for or fails because of a
//! subscriber; one that falls too far behind misses the oldest events.
//!
//! Names under `dev.getelements.` are reserved for the host and the bundled
//! Elements.

use serde_json::Value;
use tokio::sync::broadcast;

/// Element lifecycle events published by the deployer.
pub mod names {
    /// An Element version started serving. Payload: name, version, hash, prefix.
    pub const ELEMENT_LOADED: &str = "dev.getelements.element.loaded";
    /// An Element stopped serving. Payload: name.
    pub const ELEMENT_UNLOADED: &str = "dev.getelements.element.unloaded";
    /// A deploy failed; the previous version, if any, keeps serving. Payload: name, error.
    pub const ELEMENT_FAILED: &str = "dev.getelements.element.failed";
}

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Dotted name, e.g. `dev.getelements.element.loaded`.
    pub name: String,
    /// Event data.
    pub payload: Value,
}

/// How many events a slow subscriber may lag before it misses some.
const CAPACITY: usize = 1024;

/// A broadcast bus of [`Event`]s.
#[derive(Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    /// Publishes an event to every current subscriber.
    pub fn publish(&self, name: &str, payload: Value) {
        tracing::debug!(event = name, %payload, "event");
        // An error only means nobody is subscribed.
        let _ = self.sender.send(Event {
            name: name.to_owned(),
            payload,
        });
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}
