//! The realtime hub across nodes, over core NATS: the [`Fabric`] that
//! carries envelopes to the other nodes' sockets and the [`Replicator`]
//! that carries membership (who is online, in which channel, in which
//! match) to the other nodes' views.
//!
//! Two subjects under the cluster prefix, read by every node (no queue
//! group), each message with its sender's node id in a header so a node
//! skips its own:
//!
//! - `realtime.routes`: a route (JSON, one line), a newline, the encoded
//!   envelope. Encoded once, shared by every node; each node hands it to
//!   its own sessions ([`Local::deliver`]).
//! - `realtime.presence`: one [`Op`] (JSON).
//!
//! At most once: a message published while NATS is down is lost, never
//! stored and forwarded. Local delivery never waits on NATS: the sender's
//! own node delivers first, then queues the publication (a full queue
//! drops it, counted). Every [`HEARTBEAT`] a node says it is alive; a peer
//! silent for [`DEAD_AFTER`] is dropped, and this node's members see its
//! presences leave. After (re)connecting, a node says [`Op::Hello`] and
//! every node answers with its [`Op::Snapshot`], which heals the views
//! whatever was lost meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use elements_cluster::{Bytes, Cluster, HeaderMap, Message};
use elements_realtime::{Fabric, Hub, Local, Op, Outgoing, Replicator, Route};
use futures_util::StreamExt;
use tokio::sync::mpsc;

/// Envelopes for other nodes' sessions.
const ROUTES: &str = "realtime.routes";
/// Membership changes.
const PRESENCE: &str = "realtime.presence";
/// The sending node.
const H_NODE: &str = "Elements-Node";
/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a silent peer keeps its presences.
pub const DEAD_AFTER: Duration = Duration::from_secs(5);
/// Publications that may wait for NATS; more are dropped (counted).
const QUEUE: usize = 8192;
/// How often per heartbeat a node checks whether it reconnected.
const CHECKS_PER_HEARTBEAT: u32 = 10;
/// Heartbeats between two snapshots sent unasked.
const RESYNC_HEARTBEATS: u64 = 30;

/// What crossed, or failed to (totals since start, in the log when
/// publishing resumes after a failure).
#[derive(Default)]
struct Counters {
    published: AtomicU64,
    /// NATS refused or was down.
    failed: AtomicU64,
    /// The queue to NATS was full.
    dropped: AtomicU64,
    received: AtomicU64,
    /// Could not be read: dropped.
    malformed: AtomicU64,
}

/// The realtime hub's link to the other nodes.
pub struct NatsRealtime {
    node: String,
    local: Arc<Local>,
    outbox: mpsc::Sender<(&'static str, Bytes)>,
    counters: Arc<Counters>,
    /// A publication failed since the last announcement: the peers' views
    /// of this node may miss something.
    lost: AtomicBool,
    /// Taken by [`NatsRealtime::start`].
    queued: std::sync::Mutex<Option<mpsc::Receiver<(&'static str, Bytes)>>>,
}

impl NatsRealtime {
    /// A link for the hub whose delivery table is `local`.
    pub fn new(cluster: &Cluster, local: Arc<Local>) -> Arc<NatsRealtime> {
        let (outbox, queued) = mpsc::channel(QUEUE);
        Arc::new(NatsRealtime {
            node: cluster.node().to_owned(),
            local,
            outbox,
            counters: Arc::default(),
            lost: AtomicBool::new(false),
            queued: std::sync::Mutex::new(Some(queued)),
        })
    }

    fn enqueue(&self, subject: &'static str, payload: Vec<u8>) {
        if self.outbox.try_send((subject, payload.into())).is_err() {
            let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n + 1,
                    "realtime: the queue to NATS is full; cross-node messages dropped"
                );
            }
        }
    }

    fn announce(&self, hub: &Hub) {
        self.replicate(Op::Hello);
        hub.replicate_snapshot();
    }

    /// Starts publishing, receiving and the heartbeat for `hub` (built with
    /// this link as its fabric and replicator).
    pub fn start(self: &Arc<Self>, cluster: Arc<Cluster>, hub: Arc<Hub>) {
        let Some(queued) = self
            .queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            tracing::warn!("realtime: the NATS link is started already");
            return;
        };
        tokio::spawn(self.clone().publish_all(cluster.clone(), queued));
        tokio::spawn(self.clone().receive(cluster.clone(), hub.clone(), ROUTES));
        tokio::spawn(self.clone().receive(cluster.clone(), hub.clone(), PRESENCE));
        tokio::spawn(self.clone().heartbeat(cluster, hub));
    }

    async fn publish_all(
        self: Arc<Self>,
        cluster: Arc<Cluster>,
        mut queued: mpsc::Receiver<(&'static str, Bytes)>,
    ) {
        let mut failing = false;
        while let Some((subject, payload)) = queued.recv().await {
            let mut headers = HeaderMap::new();
            headers.insert(H_NODE, self.node.as_str());
            match cluster.publish(subject, headers, payload).await {
                Ok(()) => {
                    self.counters.published.fetch_add(1, Ordering::Relaxed);
                    if failing {
                        failing = false;
                        let c = &self.counters;
                        tracing::info!(
                            published = c.published.load(Ordering::Relaxed),
                            failed = c.failed.load(Ordering::Relaxed),
                            dropped = c.dropped.load(Ordering::Relaxed),
                            received = c.received.load(Ordering::Relaxed),
                            malformed = c.malformed.load(Ordering::Relaxed),
                            "realtime: publishing to the other nodes again"
                        );
                    }
                }
                Err(e) => {
                    self.lost.store(true, Ordering::Relaxed);
                    let failed = self.counters.failed.fetch_add(1, Ordering::Relaxed) + 1;
                    if !failing {
                        failing = true;
                        tracing::warn!(error = %e, failed, "realtime: cannot reach the other nodes; serving this node's sockets only");
                    }
                }
            }
        }
    }

    async fn receive(self: Arc<Self>, cluster: Arc<Cluster>, hub: Arc<Hub>, subject: &'static str) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match cluster.subscribe(subject).await {
                Ok(mut messages) => {
                    tracing::info!(subject, "realtime: receiving from the other nodes");
                    backoff = Duration::from_millis(100);
                    while let Some(message) = messages.next().await {
                        self.handle(&hub, subject, message);
                    }
                }
                Err(e) => tracing::warn!(subject, error = %e, "realtime: cannot subscribe; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn handle(&self, hub: &Hub, subject: &str, message: Message) {
        let Some(node) = message
            .headers
            .as_ref()
            .and_then(|h| h.get(H_NODE))
            .map(|v| v.as_str().to_owned())
        else {
            self.malformed(subject, "no node header");
            return;
        };
        if node == self.node {
            return;
        }
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        if subject == ROUTES {
            match decode_route(&message.payload) {
                Ok((route, envelope)) => self.local.deliver(&route, &envelope),
                Err(why) => self.malformed(subject, why),
            }
            return;
        }
        let op: Op = match serde_json::from_slice(&message.payload) {
            Ok(op) => op,
            Err(_) => return self.malformed(subject, "not a presence op"),
        };
        let hello = op == Op::Hello;
        let snapshot = matches!(op, Op::Snapshot(_));
        let new = hub.apply_remote(&node, op);
        if hello {
            hub.replicate_snapshot();
        } else if new && !snapshot {
            // A peer heard of first by its ops (this node dropped it as
            // silent, or missed its snapshot): ask for everything again.
            tracing::info!(peer = %node, "realtime: a peer this node has no view of; asking for snapshots");
            self.replicate(Op::Hello);
        }
    }

    fn malformed(&self, subject: &str, why: &str) {
        let n = self.counters.malformed.fetch_add(1, Ordering::Relaxed);
        // A stream of garbage must not become a stream of log lines.
        if n.is_power_of_two() || n == 0 {
            tracing::warn!(
                subject,
                why,
                malformed = n + 1,
                "realtime: dropped an unreadable message from NATS"
            );
        }
    }

    async fn heartbeat(self: Arc<Self>, cluster: Arc<Cluster>, hub: Arc<Hub>) {
        // Checked more often than a heartbeat goes out: a node re-announces
        // within a tenth of a heartbeat of a reconnect.
        let mut tick = tokio::time::interval(HEARTBEAT / CHECKS_PER_HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Ticks until the next announcement (0: none due).
        let mut announce_in: Vec<u64> = Vec::new();
        let mut connections = 0;
        let mut ticks: u64 = 0;
        loop {
            tick.tick().await;
            ticks += 1;
            if cluster.is_connected() {
                // A new connection (however short the outage was), or a
                // publication lost: what the peers hold of this node may be
                // stale, and this node's of theirs.
                let now = cluster.connections();
                if now != connections || self.lost.swap(false, Ordering::Relaxed) {
                    connections = now;
                    // Now, and once more a heartbeat later: the first may go
                    // out before NATS renewed this node's subscriptions, and
                    // the peers' answers would be missed.
                    announce_in = vec![0, u64::from(CHECKS_PER_HEARTBEAT)];
                }
                if announce_in.first() == Some(&0) {
                    announce_in.remove(0);
                    self.announce(&hub);
                }
                announce_in.iter_mut().for_each(|t| *t = t.saturating_sub(1));
                if ticks.is_multiple_of(u64::from(CHECKS_PER_HEARTBEAT)) {
                    self.replicate(Op::Heartbeat);
                    if ticks.is_multiple_of(RESYNC_HEARTBEATS * u64::from(CHECKS_PER_HEARTBEAT)) {
                        // Anti-entropy: a lost op never outlives this.
                        hub.replicate_snapshot();
                    }
                }
            }
            for peer in hub.expire_peers(DEAD_AFTER) {
                tracing::warn!(%peer, "realtime: a peer went silent; its presences are gone");
            }
        }
    }
}

/// A route message's route and envelope.
fn decode_route(payload: &[u8]) -> Result<(Route, Outgoing), &'static str> {
    let split = payload
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("no newline after the route")?;
    let route: Route = serde_json::from_slice(&payload[..split]).map_err(|_| "not a route")?;
    let envelope = std::str::from_utf8(&payload[split + 1..]).map_err(|_| "the envelope is not UTF-8")?;
    Ok((route, envelope.into()))
}

impl Fabric for NatsRealtime {
    fn deliver(&self, route: Route, envelope: Outgoing) {
        self.local.deliver(&route, &envelope);
        // A route's JSON has no raw newline (serde_json escapes them), so
        // the first one ends it.
        let Ok(mut payload) = serde_json::to_vec(&route) else {
            return;
        };
        payload.push(b'\n');
        payload.extend_from_slice(envelope.as_bytes());
        self.enqueue(ROUTES, payload);
    }
}

impl Replicator for NatsRealtime {
    fn replicate(&self, op: Op) {
        match serde_json::to_vec(&op) {
            Ok(payload) => self.enqueue(PRESENCE, payload),
            Err(e) => tracing::warn!(error = %e, "realtime: could not encode a presence op"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_message_reads_back_and_garbage_does_not() {
        let route = Route::Stream {
            key: "2...lobby\nx".into(),
            except: Some("s".into()),
        };
        let mut payload = serde_json::to_vec(&route).unwrap();
        payload.push(b'\n');
        payload.extend_from_slice(b"{\"a\":\"b\nc\"}");
        let (back, envelope) = decode_route(&payload).unwrap();
        assert_eq!(back, route);
        assert_eq!(&*envelope, "{\"a\":\"b\nc\"}");
        assert!(decode_route(b"no newline").is_err());
        assert!(decode_route(b"{\"bad\":1}\n{}").is_err());
        assert!(decode_route(b"{\"user\":\"u\"}\n\xff").is_err());
    }
}
