//! The runtime's event bus: named events with a JSON payload, delivered to
//! every subscribing Element. Publishing never waits for or fails because of
//! a subscriber. On one node, a dispatcher that falls too far behind misses
//! the oldest events, which are counted ([`EventBus::dropped`]) and logged;
//! in a cluster, events go through NATS (see [`Delivery`] for which may be
//! lost) and each subscribing Element gets each once per cluster.
//!
//! Names under `dev.getelements.element.` are the server's own; other names
//! under `dev.getelements.` belong to the bundled Elements (see
//! [`elements_config::grants`]).
//!
//! Every event carries its [`Chain`]: how many deliveries led to it and a
//! budget shared by everything one request (or one server event) set off,
//! so Elements that publish what they subscribe to can't amplify without
//! bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

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
    budget: Arc<Budget>,
}

/// The events a chain may still publish, shared by everything in it on one node.
#[derive(Debug)]
struct Budget {
    /// Names the chain across nodes.
    id: Arc<str>,
    left: AtomicU32,
}

impl Chain {
    /// A new chain, for a request or the server: [`EVENTS_PER_CHAIN`] events.
    pub fn root() -> Chain {
        Chain::with(
            uuid::Uuid::new_v4().simple().to_string().into(),
            0,
            EVENTS_PER_CHAIN,
        )
    }

    fn with(id: Arc<str>, depth: u8, left: u32) -> Chain {
        Chain {
            depth,
            budget: Arc::new(Budget {
                id,
                left: AtomicU32::new(left),
            }),
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
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1))
            .is_ok()
    }

    /// The chain's name, the same on every node it reaches.
    pub fn id(&self) -> &str {
        &self.budget.id
    }

    /// The events it may still publish (on this node).
    pub fn remaining(&self) -> u32 {
        self.budget.left.load(Ordering::Relaxed)
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

/// How an event travels between nodes when they form a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Core NATS: lost if no node takes it at that moment (the server's own
    /// lifecycle events: each node publishes its own, and the registry is
    /// the lasting record).
    AtMostOnce,
    /// JetStream: kept until a subscribing Element handled it, redelivered
    /// if it failed or its node died (everything Elements and host services
    /// publish in a request's chain).
    AtLeastOnce,
}

/// An event leaving this node for the cluster.
#[derive(Debug)]
pub struct Outgoing {
    /// The event.
    pub event: Event,
    /// How it travels.
    pub delivery: Delivery,
}

/// How many events a slow subscriber may lag before it misses some.
const CAPACITY: usize = 1024;
/// How many events may wait to leave for the cluster; beyond, they are
/// delivered on this node instead.
const OUTBOX: usize = 4096;
/// How long a node remembers a chain that crossed nodes, so later events of
/// it share the budget it has here.
const CHAIN_MEMORY: Duration = Duration::from_secs(120);
/// Most chains remembered at once.
const MAX_CHAINS: usize = 100_000;

/// The runtime's event bus. Without a cluster every event is delivered on
/// this node ([`EventBus::local_events`]); with one ([`EventBus::attach_cluster`])
/// events leave through the outbox and come back from NATS, and only those
/// that can't leave (NATS down, outbox full) are delivered here.
#[derive(Debug)]
pub struct EventBus {
    /// Every event published on this node, for observers (tests, the harness).
    observers: broadcast::Sender<Event>,
    /// Events this node's dispatcher delivers itself.
    local: broadcast::Sender<Event>,
    outbox: OnceLock<mpsc::Sender<Outgoing>>,
    dropped: AtomicU64,
    chains: Mutex<Chains>,
}

/// The chains a node remembers, by id: each budget and when it was last seen.
type Chains = HashMap<Arc<str>, (Arc<Budget>, Instant)>;

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            observers: broadcast::channel(CAPACITY).0,
            local: broadcast::channel(CAPACITY).0,
            outbox: OnceLock::new(),
            dropped: AtomicU64::new(0),
            chains: Mutex::default(),
        }
    }
}

impl EventBus {
    /// Publishes a server event (a chain of its own), at most once.
    pub fn publish(&self, name: &str, payload: Value) {
        self.send(name, payload, Chain::root(), Delivery::AtMostOnce);
    }

    /// Publishes an event that belongs to `chain`, at least once.
    pub fn publish_in(&self, name: &str, payload: Value, chain: Chain) {
        self.send(name, payload, chain, Delivery::AtLeastOnce);
    }

    fn send(&self, name: &str, payload: Value, chain: Chain, delivery: Delivery) {
        tracing::debug!(event = name, %payload, depth = chain.depth, "event");
        let event = Event {
            name: name.to_owned(),
            payload,
            chain,
        };
        // An error only means nobody observes.
        let _ = self.observers.send(event.clone());
        if let Some(outbox) = self.outbox.get() {
            self.remember(&event.chain);
            match outbox.try_send(Outgoing { event, delivery }) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(out) | mpsc::error::TrySendError::Closed(out)) => {
                    tracing::warn!(
                        event = name,
                        "the cluster outbox is full; delivering on this node"
                    );
                    self.deliver_locally(out.event);
                    return;
                }
            }
        }
        self.deliver_locally(event);
    }

    /// Hands `event` to this node's dispatcher (also the fallback when it
    /// can't reach the cluster).
    pub fn deliver_locally(&self, event: Event) {
        // An error only means no dispatcher runs (some tests).
        let _ = self.local.send(event);
    }

    /// A receiver of every event published on this node from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.observers.subscribe()
    }

    /// A receiver of the events this node delivers itself (the dispatcher's).
    pub fn local_events(&self) -> broadcast::Receiver<Event> {
        self.local.subscribe()
    }

    /// From now on events leave through the returned outbox for the
    /// cluster; `None` if a cluster is attached already.
    pub fn attach_cluster(&self) -> Option<mpsc::Receiver<Outgoing>> {
        let (sender, receiver) = mpsc::channel(OUTBOX);
        self.outbox.set(sender).ok()?;
        Some(receiver)
    }

    /// Counts events a lagging dispatcher missed.
    pub fn count_dropped(&self, missed: u64) {
        self.dropped.fetch_add(missed, Ordering::Relaxed);
    }

    /// Events lost on this node because its dispatcher lagged, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The chain `id` at `depth` as it arrives from another node, which had
    /// `remaining` events left in it: the chain this node knows by that id
    /// (lowered to `remaining` if that is less), or a new one with
    /// `remaining`. So a chain's budget is exact while it passes between
    /// nodes one event after another, and when two nodes spend in it at
    /// once it is at most the budget on each.
    pub fn join_chain(&self, id: &str, depth: u8, remaining: u32) -> Chain {
        let mut chains = self.chains.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((budget, seen)) = chains.get_mut(id) {
            budget.left.fetch_min(remaining, Ordering::Relaxed);
            *seen = Instant::now();
            return Chain {
                depth,
                budget: budget.clone(),
            };
        }
        let chain = Chain::with(id.into(), depth, remaining.min(EVENTS_PER_CHAIN));
        insert_chain(&mut chains, &chain);
        chain
    }

    /// Remembers a chain whose events leave for the cluster, so the events
    /// they set off that come back share its budget.
    fn remember(&self, chain: &Chain) {
        let mut chains = self.chains.lock().unwrap_or_else(|e| e.into_inner());
        match chains.get_mut(chain.id()) {
            Some((_, seen)) => *seen = Instant::now(),
            None => insert_chain(&mut chains, chain),
        }
    }
}

fn insert_chain(chains: &mut Chains, chain: &Chain) {
    if chains.len() >= MAX_CHAINS / 2 {
        let now = Instant::now();
        chains.retain(|_, (_, seen)| now.duration_since(*seen) < CHAIN_MEMORY);
    }
    // Full of live chains: this one is not shared, still bounded by what
    // each event carries.
    if chains.len() < MAX_CHAINS {
        chains.insert(chain.budget.id.clone(), (chain.budget.clone(), Instant::now()));
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

    #[test]
    fn a_chain_from_another_node_shares_this_nodes_budget_and_takes_the_lower() {
        let bus = EventBus::default();
        let _outbox = bus.attach_cluster().unwrap();
        let root = Chain::root();
        bus.publish_in("a.b", Value::Null, root.clone());
        // It comes back, set off on another node that had 40 left.
        let back = bus.join_chain(root.id(), 1, 40);
        assert_eq!((back.depth, back.id()), (1, root.id()));
        assert_eq!((root.remaining(), back.remaining()), (40, 40));
        assert!(back.take());
        assert_eq!(root.remaining(), 39);
        // An unknown chain starts at what it carried, never above the budget.
        assert_eq!(bus.join_chain("other", 2, 7).remaining(), 7);
        assert_eq!(bus.join_chain("more", 0, u32::MAX).remaining(), EVENTS_PER_CHAIN);
    }

    #[test]
    fn without_a_cluster_every_event_is_delivered_here_and_with_one_it_leaves() {
        let bus = EventBus::default();
        let mut local = bus.local_events();
        let mut observed = bus.subscribe();
        bus.publish("one", Value::Null);
        assert_eq!(local.try_recv().unwrap().name, "one");
        let mut outbox = bus.attach_cluster().unwrap();
        assert!(bus.attach_cluster().is_none());
        bus.publish_in("two", Value::Null, Chain::root());
        let out = outbox.try_recv().unwrap();
        assert_eq!(
            (out.event.name.as_str(), out.delivery),
            ("two", Delivery::AtLeastOnce)
        );
        assert!(local.try_recv().is_err(), "not delivered here too");
        assert_eq!(observed.try_recv().unwrap().name, "one");
        assert_eq!(observed.try_recv().unwrap().name, "two");
    }
}
