//! The runtime's event bus: named events with a JSON payload, delivered to
//! every subscriber. Publishing never waits for or fails because of a
//! subscriber; one that falls too far behind misses the oldest events.
//!
//! Names under `dev.getelements.element.` are the server's own; other names
//! under `dev.getelements.` belong to the bundled Elements (see
//! [`elements_config::grants`]).
//!
//! Every event carries its [`Chain`]: how many deliveries led to it and a
//! budget shared by everything one request (or one server event) set off,
//! so Elements that publish what they subscribe to can't amplify without
//! bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

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

/// Most events one request, and everything its events set off, may publish.
pub const EVENTS_PER_CHAIN: u32 = 100;
/// Most deliveries in a row: an event published by the handler of an event
/// that was itself published by a handler, and so on.
pub const MAX_DEPTH: u8 = 8;

/// The causal chain of an event.
#[derive(Debug, Clone)]
pub struct Chain {
    /// 0 for an event published by a request or the server; one more than
    /// the handled event's for an event a handler publishes.
    pub depth: u8,
    budget: Arc<AtomicU32>,
}

impl Chain {
    /// A new chain, for a request or the server: [`EVENTS_PER_CHAIN`] events.
    pub fn root() -> Chain {
        Chain {
            depth: 0,
            budget: Arc::new(AtomicU32::new(EVENTS_PER_CHAIN)),
        }
    }

    /// The chain of events a handler of `self`'s event publishes.
    pub fn next(&self) -> Chain {
        Chain {
            depth: self.depth.saturating_add(1),
            budget: self.budget.clone(),
        }
    }

    /// Takes one event from the shared budget; `false` when it is spent.
    pub fn take(&self) -> bool {
        self.budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1))
            .is_ok()
    }
}

/// One event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Dotted name, e.g. `dev.getelements.element.loaded`.
    pub name: String,
    /// Event data.
    pub payload: Value,
    /// What led to it.
    pub chain: Chain,
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
    /// Publishes a server event (a chain of its own) to every current subscriber.
    pub fn publish(&self, name: &str, payload: Value) {
        self.publish_in(name, payload, Chain::root());
    }

    /// Publishes an event that belongs to `chain`.
    pub fn publish_in(&self, name: &str, payload: Value, chain: Chain) {
        tracing::debug!(event = name, %payload, depth = chain.depth, "event");
        // An error only means nobody is subscribed.
        let _ = self.sender.send(Event {
            name: name.to_owned(),
            payload,
            chain,
        });
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_shares_one_budget() {
        let root = Chain::root();
        let child = root.next();
        assert_eq!(child.depth, 1);
        for _ in 0..EVENTS_PER_CHAIN / 2 {
            assert!(root.take() && child.take());
        }
        assert!(!root.take() && !child.next().take());
    }
}
