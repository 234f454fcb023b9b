//! Delivers events to the Elements that subscribe to them. Each delivery is
//! its own task, so a slow or failing subscriber delays nobody.
//!
//! On one node ([`start`]) the dispatcher takes every event from the bus and
//! delivers it to each subscribing Element here. If it falls too far behind
//! (more than the bus holds), the oldest events are lost: they are counted
//! ([`EventBus::dropped`]) and logged.
//!
//! In a cluster ([`start_cluster`]) events leave for NATS and every node
//! consumes them, for each subscribing Element it serves, in a group named
//! after the Element: each event reaches each subscribing Element once in
//! the cluster, on whichever node takes it.
//!
//! - At-most-once events (the server's own, [`Delivery::AtMostOnce`]) go on
//!   core NATS subjects `PREFIX.events.NAME`, read with a queue group per
//!   Element (`PREFIX.events.ELEMENT`).
//! - At-least-once events (those Elements and host services publish in a
//!   request's chain) go into the JetStream stream `PREFIX_EVENTS`
//!   (`PREFIX.events-durable.NAME`), read by one durable consumer per
//!   Element (`events-ELEMENT`) that the nodes share. A message is
//!   acknowledged after the Element's handler ran to its end (a handler
//!   that fails has its failure in its log and is not run again); one whose
//!   handler could not run (no free instance, the Element left this node)
//!   or whose node died meanwhile is redelivered (at most [`MAX_DELIVER`]
//!   times), so a handler may see an event twice.
//!
//! While NATS is unreachable, events published here are delivered here
//! (through the local path), and consuming resumes on reconnect. The chain
//! rules ([`elements_host::events::Chain`]) cross nodes in headers: the
//! depth exactly, the budget as the events carry it ([`EventBus::join_chain`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use elements_cluster::{
    Cluster, ClusterError, Consuming, DurableSpec, Handled, HeaderMap, StreamCap, header,
};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use crate::registry::Registry;
use elements_config::grants::validate_event_name;
use elements_host::element::Host;
use elements_host::element::invoke::InvokeError;
use elements_host::events::{Delivery, Event, EventBus, MAX_DEPTH};
use elements_host::instance::RequestInfo;

/// Subjects of at-most-once events: `events.NAME`.
const CORE: &str = "events";
/// Subjects of at-least-once events: `events-durable.NAME`.
const DURABLE: &str = "events-durable";
/// The stream keeping at-least-once events.
const STREAM: &str = "EVENTS";
/// How long the stream keeps an event no consumer acknowledged.
const KEEP_FOR: Duration = Duration::from_secs(24 * 3600);
/// Most deliveries of one at-least-once event to one Element.
pub const MAX_DELIVER: i64 = 5;
/// How long NATS keeps the consumer of an Element no node serves any more.
const CONSUMER_KEPT: Duration = Duration::from_secs(24 * 3600);
/// How often a node checks which Elements subscribe.
const RECONCILE: Duration = Duration::from_millis(250);
/// How long a retried failure lasts before it is said: a node that starts
/// with its peers races the stream's creation, and NATS may blip.
const WARN_AFTER: Duration = Duration::from_secs(5);

/// Headers of an event message.
const H_NAME: &str = "Elements-Event";
const H_CHAIN: &str = "Elements-Chain";
const H_DEPTH: &str = "Elements-Depth";
const H_BUDGET: &str = "Elements-Budget";
const H_NODE: &str = "Elements-Node";

static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// Starts the dispatcher of events delivered on this node.
pub fn start(bus: Arc<EventBus>, registry: Arc<Registry>, host: Arc<Host>) {
    let mut receiver = bus.local_events();
    tokio::spawn(async move {
        loop {
            let event = match receiver.recv().await {
                Ok(event) => Arc::new(event),
                Err(RecvError::Lagged(missed)) => {
                    bus.count_dropped(missed);
                    tracing::warn!(
                        missed,
                        dropped_since_start = bus.dropped(),
                        "event dispatcher fell behind; events were dropped"
                    );
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            for element in registry.all() {
                if !element.subscribes_to(&event.name) {
                    continue;
                }
                let (event, host) = (event.clone(), host.clone());
                tokio::spawn(async move {
                    let info = RequestInfo::for_event(next_delivery(), &event);
                    let _ = element.deliver(&host.services, &event, info).await;
                });
            }
        }
    });
}

fn next_delivery() -> String {
    format!("event-{}", DELIVERIES.fetch_add(1, Ordering::Relaxed))
}

/// Makes events cross the cluster: publishes what this node's bus sends out
/// and consumes, for each subscribing Element here, its share of the
/// cluster's events. [`start`] still runs for what can't leave.
/// The stream keeps at most `keep_bytes` (the oldest go first).
pub fn start_cluster(
    cluster: Arc<Cluster>,
    bus: Arc<EventBus>,
    registry: Arc<Registry>,
    host: Arc<Host>,
    keep_bytes: i64,
) {
    let Some(outbox) = bus.attach_cluster() else {
        tracing::warn!("the event bus is attached to a cluster already");
        return;
    };
    let context = Arc::new(Context {
        cluster,
        bus,
        registry,
        host,
        keep_bytes,
    });
    tokio::spawn(context.clone().publish_all(outbox));
    tokio::spawn(context.clone().ensure_stream());
    tokio::spawn(context.reconcile());
}

struct Context {
    cluster: Arc<Cluster>,
    bus: Arc<EventBus>,
    registry: Arc<Registry>,
    host: Arc<Host>,
    /// The event stream's cap, as configured.
    keep_bytes: i64,
}

/// One Element's consumption on this node; dropping it stops both.
struct Consumer {
    core: tokio::task::AbortHandle,
    _durable: Consuming,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.core.abort();
    }
}

/// Says a retried failure once it has lasted [`WARN_AFTER`], then again
/// only when the error changes: not at every retry.
#[derive(Default)]
struct Warned {
    failing_since: Option<Instant>,
    said: Option<String>,
}

impl Warned {
    fn failed(&mut self, error: &str, say: impl FnOnce(&str)) {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= WARN_AFTER && self.said.as_deref() != Some(error) {
            say(error);
            self.said = Some(error.to_owned());
        }
    }
}

/// A decoded event message.
struct Incoming {
    name: String,
    payload: Value,
    chain: String,
    depth: u8,
    budget: u32,
}

impl Context {
    /// Creates the stream, retrying while NATS is away or refuses it.
    async fn ensure_stream(self: Arc<Self>) {
        let mut wait = Duration::from_millis(200);
        let mut warned = Warned::default();
        loop {
            match self
                .cluster
                .ensure_stream(STREAM, &format!("{DURABLE}.>"), KEEP_FOR, self.keep_bytes)
                .await
            {
                Ok(StreamCap::AsAsked) => return,
                Ok(StreamCap::Shrunk(cap)) => {
                    tracing::warn!(
                        wanted_bytes = self.keep_bytes,
                        got_bytes = cap,
                        "the NATS event stream was made smaller than wanted: JetStream's storage budget is short \
                         (raise nats-server's jetstream max_file_store, free disk before it starts, or lower --nats-events-max-bytes)"
                    );
                    return;
                }
                Ok(StreamCap::Existing(cap)) if cap < self.keep_bytes => {
                    tracing::warn!(
                        wanted_bytes = self.keep_bytes,
                        got_bytes = cap,
                        "the NATS event stream exists with a smaller cap than wanted, set when it was first made; \
                         it is kept (to change it, edit the stream with the nats CLI)"
                    );
                    return;
                }
                Ok(StreamCap::Existing(cap)) => {
                    tracing::info!(
                        wanted_bytes = self.keep_bytes,
                        got_bytes = cap,
                        "the NATS event stream exists with a larger cap than wanted, set when it was first made; it is kept"
                    );
                    return;
                }
                // Until this succeeds, durable events stay on the node that
                // sent them: an operator must learn why.
                Err(e) => warned.failed(&e.to_string(), |error| {
                    tracing::warn!(%error, "the NATS event stream can't be made yet; events stay on their node meanwhile")
                }),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// Sends every event of the outbox to NATS; one that can't go is
    /// delivered on this node instead.
    async fn publish_all(
        self: Arc<Self>,
        mut outbox: tokio::sync::mpsc::Receiver<elements_host::events::Outgoing>,
    ) {
        // Stream acknowledgements awaited at once; beyond, the outbox fills
        // and events are delivered locally.
        let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
        while let Some(out) = outbox.recv().await {
            let (headers, payload) = self.encode(&out.event);
            match out.delivery {
                Delivery::AtMostOnce => {
                    let subject = format!("{CORE}.{}", out.event.name);
                    if let Err(e) = self.cluster.publish(&subject, headers, payload.into()).await {
                        tracing::debug!(event = %out.event.name, error = %e, "delivering on this node");
                        self.bus.deliver_locally(out.event);
                    }
                }
                Delivery::AtLeastOnce => {
                    let Ok(permit) = in_flight.clone().acquire_owned().await else {
                        return;
                    };
                    let this = self.clone();
                    tokio::spawn(async move {
                        let subject = format!("{DURABLE}.{}", out.event.name);
                        if let Err(e) = this
                            .cluster
                            .publish_durable(&subject, headers, payload.into())
                            .await
                        {
                            // Perhaps stored after all: then some Element
                            // may get it twice, never none.
                            tracing::warn!(event = %out.event.name, error = %e, "could not hand an event to the cluster; delivering on this node");
                            this.bus.deliver_locally(out.event);
                        }
                        drop(permit);
                    });
                }
            }
        }
    }

    fn encode(&self, event: &Event) -> (HeaderMap, Vec<u8>) {
        let mut headers = HeaderMap::new();
        headers.insert(H_NAME, event.name.as_str());
        headers.insert(H_CHAIN, event.chain.id());
        headers.insert(H_DEPTH, event.chain.depth.to_string().as_str());
        headers.insert(H_BUDGET, event.chain.remaining().to_string().as_str());
        headers.insert(H_NODE, self.cluster.node());
        // Serializing a `Value` can't fail.
        let payload = serde_json::to_vec(&event.payload).unwrap_or_default();
        (headers, payload)
    }

    /// Keeps one consumer per subscribing Element this node serves.
    async fn reconcile(self: Arc<Self>) {
        let mut active: HashMap<String, Consumer> = HashMap::new();
        let mut warned: HashMap<String, Warned> = HashMap::new();
        let mut tick = tokio::time::interval(RECONCILE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let wanted: BTreeSet<String> = self
                .registry
                .all()
                .iter()
                .filter(|e| e.subscribes())
                .map(|e| e.name.to_string())
                .collect();
            warned.retain(|name, _| wanted.contains(name));
            active.retain(|name, _| {
                let keep = wanted.contains(name);
                if !keep {
                    tracing::info!(element = %name, "stopped consuming cluster events");
                }
                keep
            });
            for name in wanted {
                if active.contains_key(&name) {
                    continue;
                }
                match self.consume(&name).await {
                    Ok(consumer) => {
                        warned.remove(&name);
                        active.insert(name, consumer);
                    }
                    // Tried again at the next tick.
                    Err(e) => warned.entry(name.clone()).or_default().failed(&e.to_string(), |error| {
                        tracing::warn!(element = %name, %error, "can't consume the cluster's events yet; retrying")
                    }),
                }
            }
        }
    }

    async fn consume(self: &Arc<Self>, element: &str) -> Result<Consumer, ClusterError> {
        let mut core = self
            .cluster
            .queue_subscribe(&format!("{CORE}.>"), &format!("{CORE}.{element}"))
            .await?;
        let this = self.clone();
        let name = element.to_owned();
        let core = tokio::spawn(async move {
            while let Some(message) = core.next().await {
                let Some(incoming) = decode(&name, message.headers.as_ref(), &message.payload) else {
                    continue;
                };
                let this = this.clone();
                let name = name.clone();
                tokio::spawn(async move {
                    let _ = this.deliver(&name, incoming).await;
                });
            }
        })
        .abort_handle();
        let this = self.clone();
        let name = element.to_owned();
        let timeout = self.host.limits.timeout;
        let durable = match self
            .cluster
            .consume_durable(
                DurableSpec {
                    stream: STREAM.into(),
                    consumer: format!("events-{element}"),
                    filter: format!("{DURABLE}.>"),
                    // Longer than any handler may run: an unanswered message
                    // means its node died.
                    ack_wait: timeout + Duration::from_secs(10),
                    max_deliver: MAX_DELIVER,
                    inactive_threshold: CONSUMER_KEPT,
                },
                move |message| {
                    let this = this.clone();
                    let name = name.clone();
                    async move {
                        let Some(incoming) = decode(&name, message.headers.as_ref(), &message.payload) else {
                            return Handled::Reject;
                        };
                        match this.deliver(&name, incoming).await {
                            Delivered::Yes | Delivered::NotSubscribed => Handled::Ack,
                            Delivered::NotRun | Delivered::Gone => Handled::Retry(Duration::from_secs(1)),
                        }
                    }
                },
            )
            .await
        {
            Ok(durable) => durable,
            Err(e) => {
                core.abort();
                return Err(e);
            }
        };
        tracing::info!(element, node = self.cluster.node(), "consuming cluster events");
        Ok(Consumer {
            core,
            _durable: durable,
        })
    }

    async fn deliver(&self, element: &str, incoming: Incoming) -> Delivered {
        let Some(element) = self.registry.by_name(element) else {
            return Delivered::Gone;
        };
        if !element.subscribes_to(&incoming.name) {
            return Delivered::NotSubscribed;
        }
        let event = Event {
            chain: self
                .bus
                .join_chain(&incoming.chain, incoming.depth, incoming.budget),
            name: incoming.name,
            payload: incoming.payload,
        };
        let info = RequestInfo::for_event(next_delivery(), &event);
        match element.deliver(&self.host.services, &event, info).await {
            // No instance was free: the handler never ran.
            Err(InvokeError::Overloaded) => Delivered::NotRun,
            // It ran: its failure (in its log) is its answer. Running it
            // again would repeat what it did before failing, on the same
            // spent budget.
            Ok(()) | Err(_) => Delivered::Yes,
        }
    }
}

enum Delivered {
    /// The handler ran to its end (successfully or not).
    Yes,
    /// The Element here doesn't subscribe to that name.
    NotSubscribed,
    /// The handler couldn't run here now.
    NotRun,
    /// The Element left this node.
    Gone,
}

/// An event message's parts, or `None` (logged) when it is malformed:
/// anything on the subjects may have been published by any NATS client.
fn decode(element: &str, headers: Option<&HeaderMap>, payload: &[u8]) -> Option<Incoming> {
    let parsed = (|| {
        let name = header(headers, H_NAME).ok_or("no event name")?;
        validate_event_name(name)?;
        let chain = header(headers, H_CHAIN).ok_or("no chain")?;
        if chain.is_empty() || chain.len() > 64 {
            return Err("a bad chain id".to_owned());
        }
        let depth: u8 = header(headers, H_DEPTH)
            .and_then(|d| d.parse().ok())
            .filter(|d| *d <= MAX_DEPTH)
            .ok_or("a bad depth")?;
        let budget: u32 = header(headers, H_BUDGET)
            .and_then(|b| b.parse().ok())
            .ok_or("a bad budget")?;
        let payload: Value = serde_json::from_slice(payload).map_err(|e| format!("payload: {e}"))?;
        Ok::<_, String>(Incoming {
            name: name.to_owned(),
            payload,
            chain: chain.to_owned(),
            depth,
            budget,
        })
    })();
    match parsed {
        Ok(incoming) => Some(incoming),
        Err(why) => {
            tracing::warn!(
                element,
                "dropped a malformed event message from the cluster: {why}"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, *v);
        }
        h
    }

    #[test]
    fn decodes_a_well_formed_message_and_drops_malformed_ones() {
        let good = [
            (H_NAME, "game.ended"),
            (H_CHAIN, "abc"),
            (H_DEPTH, "2"),
            (H_BUDGET, "50"),
        ];
        let incoming = decode("el", Some(&headers(&good)), br#"{"a":1}"#).unwrap();
        assert_eq!(
            (incoming.name.as_str(), incoming.depth, incoming.budget),
            ("game.ended", 2, 50)
        );
        assert_eq!(incoming.payload["a"], 1);
        assert!(decode("el", None, b"{}").is_none());
        assert!(decode("el", Some(&headers(&good)), b"not json").is_none());
        for (key, bad) in [
            (H_NAME, "Bad Name"),
            (H_DEPTH, "99"),
            (H_DEPTH, "x"),
            (H_BUDGET, "-1"),
            (H_CHAIN, ""),
        ] {
            let pairs: Vec<(&str, &str)> = good
                .iter()
                .map(|(k, v)| if *k == key { (*k, bad) } else { (*k, *v) })
                .collect();
            assert!(
                decode("el", Some(&headers(&pairs)), b"{}").is_none(),
                "{key}: {bad}"
            );
        }
    }

    #[test]
    fn a_failure_is_said_once_it_lasted_and_again_only_when_it_changes() {
        let mut warned = Warned::default();
        let mut said = Vec::new();
        // Fresh failures (racing a peer at start) are not said.
        warned.failed("stream not found", |e| said.push(e.to_owned()));
        warned.failed("stream not found", |e| said.push(e.to_owned()));
        assert!(said.is_empty());
        // Once it lasted, it is said, once.
        warned.failing_since = Instant::now().checked_sub(WARN_AFTER);
        for _ in 0..3 {
            warned.failed("stream not found", |e| said.push(e.to_owned()));
        }
        assert_eq!(said, ["stream not found"]);
        // A different error is said too.
        warned.failed("insufficient storage", |e| said.push(e.to_owned()));
        warned.failed("insufficient storage", |e| said.push(e.to_owned()));
        assert_eq!(said, ["stream not found", "insufficient storage"]);
    }
}
