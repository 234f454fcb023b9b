//! Messaging between the nodes of one Elements cluster, over NATS.
//!
//! A [`Cluster`] is one node's connection: it has an identity ([`Cluster::node`]),
//! puts every subject under a configurable prefix (so several clusters can
//! share one NATS), and offers three ways to move bytes:
//!
//! - [`Cluster::publish`] / [`Cluster::subscribe`]: core NATS, at-most-once,
//!   to every subscriber (deploy announcements: a lost one is made up by
//!   polling).
//! - [`Cluster::queue_subscribe`]: core NATS to one member of a group
//!   (each message handled by one node).
//! - [`Cluster::publish_durable`] / [`Cluster::consume_durable`]: JetStream,
//!   at-least-once: the stream keeps a message until a node's handler
//!   acknowledged it, and redelivers it when the handler fails or its node
//!   goes away before answering.
//!
//! The connection reconnects by itself, forever; while it is down,
//! [`Cluster::is_connected`] is false and publishing fails at once, so a
//! caller can fall back to local delivery instead of queueing blind. Core
//! subscriptions are renewed on reconnect by the client; durable consumers by
//! [`Cluster::consume_durable`]'s loop.
//!
//! Nothing here knows about events or deployments: the runtime's event
//! dispatch and deploy announcements use it, and so can the realtime socket.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;

pub use async_nats::jetstream::AckKind;
pub use async_nats::{HeaderMap, HeaderValue, Message, Subscriber};
pub use bytes::Bytes;

/// A JetStream message handed to a durable consumer's handler.
pub type DurableMessage = jetstream::Message;

/// Where and under what name a node joins the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS server URL(s), comma-separated (`nats://10.0.0.5:4222`).
    pub url: String,
    /// First token(s) of every subject, e.g. `elements`.
    pub prefix: String,
}

/// What went wrong talking to NATS.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The configuration is unusable.
    #[error("invalid cluster configuration: {0}")]
    Invalid(String),
    /// NATS is unreachable right now; the client keeps reconnecting.
    #[error("not connected to NATS")]
    Disconnected,
    /// NATS answered with an error, or not in time.
    #[error("NATS: {0}")]
    Nats(String),
}

fn nats_error(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Nats(e.to_string())
}

/// Whether JetStream refused a stream because its cap doesn't fit what is
/// left of its storage budget.
fn storage_refused(e: &jetstream::context::CreateStreamError) -> bool {
    use jetstream::ErrorCode;
    use jetstream::context::CreateStreamErrorKind;
    matches!(e.kind(), CreateStreamErrorKind::JetStream(e)
        if [ErrorCode::STORAGE_RESOURCES_EXCEEDED, ErrorCode::INSUFFICIENT_RESOURCES].contains(&e.error_code()))
}

/// The cap of a stream [`Cluster::ensure_stream`] made sure of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCap {
    /// The cap asked for.
    AsAsked,
    /// Made with this smaller cap: JetStream's storage budget had no room
    /// for the one asked for.
    Shrunk(i64),
    /// The stream existed with this other cap, set when it was first made
    /// (by a node configured otherwise, or one that had to shrink it); it is
    /// kept.
    Existing(i64),
}

/// One node's connection to the cluster.
pub struct Cluster {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    prefix: String,
    node: Arc<str>,
    /// The streams this node ensured, by name: made again if NATS lost them
    /// (a restart without its storage).
    streams: Mutex<HashMap<String, stream::Config>>,
    /// Connections made so far (the first and every reconnect).
    connections: Arc<AtomicU64>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("prefix", &self.prefix)
            .field("node", &self.node)
            .finish()
    }
}

/// Whether `token` may be a dot-separated part of a subject we build (no
/// wildcards, no blanks).
fn valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        })
}

impl Cluster {
    /// Connects to NATS. Returns at once even when NATS is down (the
    /// connection is made in the background and kept up for good); fails
    /// only on a configuration that can never work.
    pub async fn connect(config: &ClusterConfig) -> Result<Arc<Cluster>, ClusterError> {
        if !valid_subject(&config.prefix) {
            return Err(ClusterError::Invalid(format!(
                "prefix {:?} must be dot-separated tokens of letters, digits, '_' and '-'",
                config.prefix
            )));
        }
        let node: Arc<str> = uuid::Uuid::new_v4().simple().to_string()[..12].into();
        let logged_node = node.clone();
        let connections = Arc::new(AtomicU64::new(0));
        let counted = connections.clone();
        let client = async_nats::ConnectOptions::new()
            .name(format!("elements-{node}"))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            // Capped backoff: a restarted NATS is found again within a second or two.
            .reconnect_delay_callback(|attempts| Duration::from_millis((100 * attempts as u64).min(2000)))
            .event_callback(move |event| {
                let node = logged_node.clone();
                let counted = counted.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            counted.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(%node, "connected to NATS")
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!(%node, "lost the NATS connection; reconnecting")
                        }
                        other => tracing::info!(%node, "NATS: {other}"),
                    }
                }
            })
            .connect(config.url.as_str())
            .await
            .map_err(|e| ClusterError::Invalid(format!("NATS URL {:?}: {e}", redacted(&config.url))))?;
        let mut jetstream = jetstream::new(client.clone());
        // Short: a caller waiting on an acknowledgement falls back instead.
        jetstream.set_timeout(Duration::from_secs(2));
        tracing::info!(%node, url = %redacted(&config.url), prefix = %config.prefix, "joining the cluster over NATS");
        Ok(Arc::new(Cluster {
            client,
            jetstream,
            prefix: config.prefix.clone(),
            node,
            streams: Mutex::default(),
            connections,
        }))
    }

    /// This node's identity in the cluster (random, new at every start).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The full subject of `name` (`PREFIX.name`).
    pub fn subject(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    /// The prefix as a JetStream name (streams may not contain dots).
    fn stream_name(&self, name: &str) -> String {
        format!("{}_{name}", self.prefix.replace('.', "_")).to_uppercase()
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// How many times this node connected to NATS (the first connection
    /// and each reconnect): a change says what was published meanwhile
    /// may be lost, however short the outage, even one
    /// [`Cluster::is_connected`] never saw.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Publishes on `PREFIX.name` to every subscriber, at most once. Fails at
    /// once while disconnected rather than queueing for later.
    pub async fn publish(&self, name: &str, headers: HeaderMap, payload: Bytes) -> Result<(), ClusterError> {
        if !self.is_connected() {
            return Err(ClusterError::Disconnected);
        }
        self.client
            .publish_with_headers(self.subject(name), headers, payload)
            .await
            .map_err(nats_error)
    }

    /// Every message on `PREFIX.name` (wildcards allowed) from now on.
    pub async fn subscribe(&self, name: &str) -> Result<Subscriber, ClusterError> {
        self.client
            .subscribe(self.subject(name))
            .await
            .map_err(nats_error)
    }

    /// Messages on `PREFIX.name`, each to one member of `group` across the cluster.
    pub async fn queue_subscribe(&self, name: &str, group: &str) -> Result<Subscriber, ClusterError> {
        self.client
            .queue_subscribe(self.subject(name), self.subject(group))
            .await
            .map_err(nats_error)
    }

    /// Makes sure the stream `NAME` keeps the messages of `PREFIX.subjects`
    /// (wildcards allowed) for `max_age`, at most `max_bytes`, and says what
    /// cap it has.
    ///
    /// JetStream reserves a stream's whole cap when it creates the stream,
    /// and refuses one larger than what is left of its storage budget (by
    /// default 75% of the disk that was free when `nats-server` started).
    /// Rather than carrying no durable messages at all on a small disk, the
    /// cap is then halved, down to 1/64 of `max_bytes`. A stream that exists
    /// already is kept as it is, whatever its cap: the node that made it
    /// first set it.
    pub async fn ensure_stream(
        &self,
        name: &str,
        subjects: &str,
        max_age: Duration,
        max_bytes: i64,
    ) -> Result<StreamCap, ClusterError> {
        let mut config = stream::Config {
            name: self.stream_name(name),
            subjects: vec![self.subject(subjects)],
            max_age,
            max_bytes,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        let smallest = (max_bytes / 64).max(1);
        let stream = loop {
            match self.jetstream.get_or_create_stream(config.clone()).await {
                Ok(stream) => break stream,
                Err(e) if config.max_bytes / 2 >= smallest && storage_refused(&e) => config.max_bytes /= 2,
                Err(e) => return Err(nats_error(e)),
            }
        };
        let cap = stream.cached_info().config.max_bytes;
        // What was asked last is what a stream made by this call has; a cap
        // that differs was set by whoever made the stream before.
        let said = if cap != config.max_bytes {
            StreamCap::Existing(cap)
        } else if cap != max_bytes {
            StreamCap::Shrunk(cap)
        } else {
            StreamCap::AsAsked
        };
        config.max_bytes = cap;
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), config);
        Ok(said)
    }

    /// Publishes on `PREFIX.name` into its stream and waits for the stream
    /// to have stored it. An error means it may or may not be stored.
    pub async fn publish_durable(
        &self,
        name: &str,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<(), ClusterError> {
        if !self.is_connected() {
            return Err(ClusterError::Disconnected);
        }
        self.jetstream
            .publish_with_headers(self.subject(name), headers, payload)
            .await
            .map_err(nats_error)?
            .await
            .map_err(nats_error)?;
        Ok(())
    }

    /// Consumes the stream `stream`'s messages on `PREFIX.filter` as the
    /// durable consumer `consumer`, shared by every node that consumes under
    /// that name (each message goes to one of them). Runs `handle` on each,
    /// concurrently, and acknowledges as it answers: [`Handled::Ack`] removes
    /// the message, [`Handled::Retry`] has it redelivered (at most
    /// `max_deliver` times in all), [`Handled::Reject`] drops it. A message
    /// whose node dies before answering is redelivered after `ack_wait`.
    /// Survives NATS outages (it resumes where the consumer stood); stops
    /// when the returned handle is dropped. Returns once the consumer
    /// exists, so every message published after that is kept for it.
    pub async fn consume_durable<F, Fut>(
        self: &Arc<Self>,
        spec: DurableSpec,
        handle: F,
    ) -> Result<Consuming, ClusterError>
    where
        F: Fn(DurableMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Handled> + Send + 'static,
    {
        self.durable_consumer(&spec).await?;
        let this = self.clone();
        let handle = Arc::new(handle);
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match this.consume_once(&spec, &handle).await {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(e) => {
                        tracing::warn!(consumer = %spec.consumer, error = %e, "durable consumer interrupted; resuming");
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
                tokio::time::sleep(backoff).await;
            }
        });
        Ok(Consuming(task.abort_handle()))
    }

    async fn consume_once<F, Fut>(&self, spec: &DurableSpec, handle: &Arc<F>) -> Result<(), ClusterError>
    where
        F: Fn(DurableMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Handled> + Send + 'static,
    {
        let consumer = self.durable_consumer(spec).await?;
        let mut messages = consumer.messages().await.map_err(nats_error)?;
        while let Some(message) = messages.next().await {
            let message = message.map_err(nats_error)?;
            let handle = handle.clone();
            tokio::spawn(async move {
                let kind = match handle(message.clone()).await {
                    Handled::Ack => AckKind::Ack,
                    Handled::Retry(delay) => AckKind::Nak(Some(delay)),
                    Handled::Reject => AckKind::Term,
                };
                if let Err(e) = message.ack_with(kind).await {
                    // Not acknowledged: NATS redelivers it after ack_wait.
                    tracing::warn!(error = %e, "could not acknowledge a durable message");
                }
            });
        }
        Ok(())
    }

    /// The durable consumer of `spec`, created (with its stream, if this
    /// node ensured that stream and NATS lost it) when missing.
    async fn durable_consumer(&self, spec: &DurableSpec) -> Result<consumer::PullConsumer, ClusterError> {
        let known = self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&spec.stream)
            .cloned();
        let stream = match known {
            Some(config) => self
                .jetstream
                .get_or_create_stream(config)
                .await
                .map_err(nats_error)?,
            None => self
                .jetstream
                .get_stream(self.stream_name(&spec.stream))
                .await
                .map_err(nats_error)?,
        };
        stream
            .get_or_create_consumer(
                &spec.consumer,
                consumer::pull::Config {
                    durable_name: Some(spec.consumer.clone()),
                    filter_subject: self.subject(&spec.filter),
                    // A new consumer starts from now: a newly deployed
                    // subscriber doesn't get the stream's history.
                    deliver_policy: consumer::DeliverPolicy::New,
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: spec.ack_wait,
                    max_deliver: spec.max_deliver,
                    // Forgotten by NATS when no node consumed for this long.
                    inactive_threshold: spec.inactive_threshold,
                    ..Default::default()
                },
            )
            .await
            .map_err(nats_error)
    }
}

/// A durable consumer: which stream, under what name, which messages.
#[derive(Debug, Clone)]
pub struct DurableSpec {
    /// The stream's name as given to [`Cluster::ensure_stream`].
    pub stream: String,
    /// The consumer's name, shared by the nodes that share the work: letters,
    /// digits, '_' and '-'.
    pub consumer: String,
    /// Subjects under the prefix (wildcards allowed).
    pub filter: String,
    /// How long a delivered message may go unanswered before it is redelivered.
    pub ack_wait: Duration,
    /// Most deliveries of one message.
    pub max_deliver: i64,
    /// How long NATS keeps the consumer when no node consumes.
    pub inactive_threshold: Duration,
}

/// What a durable consumer's handler did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Done: never deliver it again.
    Ack,
    /// Not done: deliver it again after the delay.
    Retry(Duration),
    /// Never deliverable (malformed): drop it.
    Reject,
}

/// A running durable consumer; dropping it stops consuming on this node
/// (the consumer stays in NATS for the other nodes).
#[derive(Debug)]
pub struct Consuming(tokio::task::AbortHandle);

impl Drop for Consuming {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `url` without credentials (`nats://user:secret@host` → `nats://…@host`),
/// for logs and errors.
fn redacted(url: &str) -> String {
    url.split(',')
        .map(|one| match (one.find("://"), one.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => format!("{}…{}", &one[..scheme + 3], &one[at..]),
            (None, Some(at)) => format!("…{}", &one[at..]),
            _ => one.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The text of header `name`, if present.
pub fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers?.get(name).map(HeaderValue::as_str)
}

#[cfg(test)]
mod tests {
    use super::valid_subject;

    #[test]
    fn credentials_never_reach_the_log() {
        assert_eq!(
            super::redacted("nats://u:p@10.0.0.5:4222"),
            "nats://…@10.0.0.5:4222"
        );
        assert_eq!(
            super::redacted("nats://a:4222,tls://t0k3n@b:4222"),
            "nats://a:4222,tls://…@b:4222"
        );
        assert_eq!(super::redacted("u:p@host"), "…@host");
    }

    #[test]
    fn subjects_have_no_wildcards_or_blanks() {
        assert!(valid_subject("elements"));
        assert!(valid_subject("prod.elements-1"));
        for bad in ["", "a..b", "a.*", "a.>", "a b", ".a", "a."] {
            assert!(!valid_subject(bad), "{bad}");
        }
    }
}
