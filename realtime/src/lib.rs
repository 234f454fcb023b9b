//! # elements-realtime: the hub of connected sockets
//!
//! Nakama's realtime protocol without the transport: the HTTP side
//! (`elements-api`'s `/ws`) authenticates the socket, hands each text frame
//! to [`Hub::receive`] and writes what the session's outbox yields. Here
//! live the rules: sessions, presences, status follows, chat channels
//! (rooms and direct messages) with their stored history, relayed matches,
//! notifications (stored for `GET /v2/notification`, pushed to online
//! sessions), socket `rpc`, and the limits ([`Limits`]).
//!
//! ## Delivery
//!
//! Every envelope for someone else goes through one [`Fabric`]: "deliver
//! this to these sessions / this user / this stream's members". The
//! in-process [`LocalFabric`] hands it to the [`Local`] table of this node's
//! sessions. A clustered fabric (the runtime's, over NATS) slots in at the
//! same trait: it publishes the route and every node's subscriber calls
//! [`Local::deliver`] for its own sessions. Routes name users and streams,
//! never another node's sockets.
//!
//! ## Membership across nodes
//!
//! Each node owns its sessions' presences and replicates every change as an
//! [`Op`] through a [`Replicator`]; [`Hub::apply_remote`] keeps a view of
//! each peer, and joins, match lookups, status follows and the socket cap
//! are answered from this node's state and those views together. A silent
//! peer is dropped by [`Hub::expire_peers`], and this node's members see
//! its presences leave.
//!
//! ## Bounds
//!
//! Each session's outbox is a bounded queue of shared, already-encoded
//! envelopes ([`Outgoing`]): a session that doesn't keep up is kicked
//! ([`Handle::kicked`]), never buffered without limit. Joins, follows,
//! message and match data sizes, names, sockets per user and the receive
//! rate are capped by [`Limits`].

mod error;
mod fabric;
mod history;
mod hub;
mod limits;
pub mod protocol;
mod push;
mod tracker;

pub use error::{ErrorCode, RealtimeError, RpcError};
pub use fabric::{Fabric, Handle, Local, LocalFabric, Outgoing, Route};
pub use history::{MessagePage, NotificationPage};
pub use hub::{Connection, Hub, RpcCaller, RpcHandler};
pub use limits::{Limits, RateLimiter};
pub use protocol::{ChannelMessage, NewNotification, Notification, Presence};
pub use push::{MatchHandler, MatchRefusal, match_owner};
pub use tracker::{Op, Replicator, Snapshot};
