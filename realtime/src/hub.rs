//! The hub: this node's sessions and what they are in, and the rules of
//! every message a socket sends.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::error::{ErrorCode, RealtimeError, RpcError};
use crate::fabric::{Fabric, Handle, Local, LocalFabric, Outgoing, Route};
use crate::history::{History, MessagePage, NotificationPage};
use crate::limits::Limits;
use crate::protocol::{self, ChannelMessage, Incoming, NewNotification, Presence};
use crate::push::{MatchHandler, match_owner};
use crate::tracker::{Missed, Op, Peers, Replicator, Snapshot};

/// Longest status text (Nakama's bound).
const MAX_STATUS_CHARS: usize = 2048;

/// Who calls an RPC.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcCaller {
    /// The user.
    pub user_id: String,
    /// Their name.
    pub username: String,
    /// The socket's session, for a socket `rpc`.
    pub session_id: Option<String>,
    /// The session token the call came with, which the RPC's Element
    /// resolves to its caller (it never sees the token itself).
    pub credential: Option<String>,
}

/// Serves RPCs (socket `rpc`, `POST /v2/rpc/{id}`). The composition root
/// implements it with the Elements that declare RPC ids; without one,
/// every RPC is "not found".
#[async_trait::async_trait]
pub trait RpcHandler: Send + Sync + 'static {
    /// Runs RPC `id` with `payload`; its answer's payload.
    async fn call(&self, id: &str, payload: String, caller: RpcCaller) -> Result<String, RpcError>;
}

/// A connected socket's end of the hub: its session id, the handle that
/// kicks it and the outbox it writes from.
pub struct Connection {
    /// The session.
    pub session_id: String,
    /// Its presence (user, session, name).
    pub presence: Presence,
    /// Kicks it; [`Handle::kicked`] says when and why.
    pub handle: Arc<Handle>,
    /// Envelopes to write, in order.
    pub outbox: mpsc::Receiver<Outgoing>,
}

struct SessionState {
    presence: Presence,
    /// The token the socket was opened with.
    credential: Option<String>,
    handle: Arc<Handle>,
    /// Shown to followers when set.
    status: Option<String>,
    channels: HashSet<String>,
    matches: HashSet<String>,
    follows: HashSet<String>,
}

impl SessionState {
    fn joins(&self) -> usize {
        self.channels.len() + self.matches.len()
    }

    fn status_presence(&self) -> Option<Presence> {
        self.status.as_ref().map(|s| Presence {
            status: Some(s.clone()),
            ..self.presence.clone()
        })
    }
}

struct ChannelState {
    room_name: String,
    user_id_one: String,
    user_id_two: String,
    /// Members by session, with their persistence; hidden ones apart.
    members: BTreeMap<String, (Presence, bool)>,
}

impl ChannelState {
    fn visible(&self) -> impl Iterator<Item = &Presence> {
        self.members
            .values()
            .filter(|(_, hidden)| !hidden)
            .map(|(p, _)| p)
    }
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, SessionState>,
    users: HashMap<String, Vec<String>>,
    channels: HashMap<String, ChannelState>,
    matches: HashMap<String, BTreeMap<String, Presence>>,
    /// The other nodes' presences (empty on a node alone).
    peers: Peers,
}

/// The hub of this node's sockets.
pub struct Hub {
    node: String,
    pub(crate) limits: Limits,
    local: Arc<Local>,
    fabric: Arc<dyn Fabric>,
    pub(crate) history: History,
    // Set once the deployments exist, which are built after the hub (the
    // host services hand the hub to Elements).
    rpc: OnceLock<Arc<dyn RpcHandler>>,
    pub(crate) matches: OnceLock<Arc<dyn MatchHandler>>,
    replicator: Option<Arc<dyn Replicator>>,
    state: Mutex<State>,
}

pub(crate) fn status_key(user_id: &str) -> String {
    format!("status.{user_id}")
}

fn valid_user_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

/// The kind of channel an id names (Nakama's stream modes: 2 room, 3
/// group, 4 direct message).
enum ChannelKind {
    Room,
    Direct(String, String),
}

fn channel_kind(channel_id: &str) -> Result<ChannelKind, RealtimeError> {
    let invalid = || RealtimeError::InvalidArgument("Invalid channel ID.".into());
    let mut parts = channel_id.splitn(4, '.');
    let (Some(mode), Some(subject), Some(subcontext), Some(label)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    match mode {
        "2" if subject.is_empty() && subcontext.is_empty() && !label.is_empty() => Ok(ChannelKind::Room),
        "4" if valid_user_id(subject) && valid_user_id(subcontext) && label.is_empty() => {
            Ok(ChannelKind::Direct(subject.to_owned(), subcontext.to_owned()))
        }
        _ => Err(invalid()),
    }
}

impl Hub {
    /// A hub for node `node` over `store`, delivering in-process.
    pub async fn new(
        node: impl Into<String>,
        limits: Limits,
        store: Arc<dyn elements_store::DocumentStore>,
    ) -> Result<Hub, RealtimeError> {
        let local = Arc::new(Local::new());
        let fabric: Arc<dyn Fabric> = Arc::new(LocalFabric::new(local.clone()));
        Ok(Hub {
            node: node.into(),
            limits,
            local,
            fabric,
            history: History::open(store).await?,
            rpc: OnceLock::new(),
            matches: OnceLock::new(),
            replicator: None,
            state: Mutex::new(State::default()),
        })
    }

    /// Delivers through `fabric` (a cluster's) instead; it must hand what
    /// reaches this node to [`Hub::local`].
    pub fn with_fabric(mut self, fabric: Arc<dyn Fabric>) -> Hub {
        self.fabric = fabric;
        self
    }

    /// Replicates this node's membership to the other nodes through
    /// `replicator`, which hands theirs to [`Hub::apply_remote`].
    pub fn with_replicator(mut self, replicator: Arc<dyn Replicator>) -> Hub {
        self.replicator = Some(replicator);
        self
    }

    /// Serves RPCs with `handler` from now on (the first one set stays).
    pub fn serve_rpcs(&self, handler: Arc<dyn RpcHandler>) {
        let _ = self.rpc.set(handler);
    }

    /// Runs Elements' matches with `handler` from now on (the first one set
    /// stays).
    pub fn run_matches(&self, handler: Arc<dyn MatchHandler>) {
        let _ = self.matches.set(handler);
    }

    /// This node's delivery table.
    pub fn local(&self) -> &Arc<Local> {
        &self.local
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// This node's name (the suffix of its match ids).
    pub fn node(&self) -> &str {
        &self.node
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update below leaves the state consistent between statements.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `op` to the other nodes. Called with the state locked, so
    /// this node's ops leave in the order they happened.
    fn replicate(&self, op: Op) {
        if let Some(r) = &self.replicator {
            r.replicate(op);
        }
    }

    /// Hands this node's members the events they missed of a peer.
    fn deliver_missed(&self, events: Vec<Missed>) {
        for (key, name, body) in events {
            let envelope: Outgoing = protocol::envelope(None, name, body).into();
            self.local
                .deliver(&Route::Stream { key, except: None }, &envelope);
        }
    }

    /// Applies a membership change another node (`node`) sent; whether
    /// `node` was new to this one (a peer it never heard of, or dropped as
    /// silent: its view is complete only after its next snapshot).
    pub fn apply_remote(&self, node: &str, op: Op) -> bool {
        let (new, missed) = self.state().peers.apply(node, op);
        self.deliver_missed(missed);
        new
    }

    /// Everything this node's sessions are in, for a peer that asks
    /// ([`Op::Hello`]) or after a reconnect.
    fn snapshot_of(state: &State) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for s in state.sessions.values() {
            snapshot.sessions.push((s.presence.clone(), s.status.clone()));
        }
        for (channel_id, channel) in &state.channels {
            for (presence, hidden) in channel.members.values() {
                snapshot
                    .channels
                    .push((channel_id.clone(), presence.clone(), *hidden));
            }
        }
        for (match_id, members) in &state.matches {
            for presence in members.values() {
                snapshot.matches.push((match_id.clone(), presence.clone()));
            }
        }
        snapshot
    }

    /// Sends this node's [`Snapshot`] to the other nodes, in order with
    /// its ops (taken and sent under the state lock, so no op of a change
    /// the snapshot misses can go out before it and be undone by it).
    pub fn replicate_snapshot(&self) {
        if self.replicator.is_none() {
            return;
        }
        let state = self.state();
        let snapshot = Self::snapshot_of(&state);
        self.replicate(Op::Snapshot(snapshot));
        drop(state);
    }

    /// Drops the peers not heard from for `timeout` (a node that died or
    /// lost NATS): this node's members see their presences leave. The
    /// dropped peers' names.
    pub fn expire_peers(&self, timeout: std::time::Duration) -> Vec<String> {
        let (dead, missed) = self.state().peers.expire(timeout);
        self.deliver_missed(missed);
        dead
    }

    /// Peers this node has a view of.
    pub fn peers(&self) -> usize {
        self.state().peers.len()
    }

    pub(crate) fn send(&self, route: Route, name: &str, message: Value) {
        self.fabric
            .deliver(route, protocol::envelope(None, name, message).into());
    }

    /// Sockets open on this node.
    pub fn sessions(&self) -> usize {
        self.state().sessions.len()
    }

    fn check_cap(&self, state: &State, user_id: &str) -> Result<(), RealtimeError> {
        if state.sessions.len() >= self.limits.max_sockets {
            return Err(RealtimeError::TooManySockets(format!(
                "This server holds as many sockets as it may ({}); try again later.",
                self.limits.max_sockets
            )));
        }
        // Cluster-wide, as far as this node's view of its peers goes: two
        // sockets opened on two nodes at the same instant may both pass.
        let sockets = state.users.get(user_id).map_or(0, Vec::len) + state.peers.user_sessions(user_id);
        if sockets >= self.limits.max_sockets_per_user {
            return Err(RealtimeError::TooManySockets(format!(
                "Too many sockets for this user: at most {}.",
                self.limits.max_sockets_per_user
            )));
        }
        Ok(())
    }

    /// Registers a new socket of `user_id`, opened with the session token
    /// `credential` (handed to the RPCs it calls); `status` shows it to the
    /// user's followers. Refused past the per-user socket cap.
    pub fn connect(
        &self,
        user_id: &str,
        username: &str,
        status: bool,
        credential: Option<String>,
    ) -> Result<Connection, RealtimeError> {
        let session_id = uuid::Uuid::new_v4().to_string();
        let presence = Presence {
            user_id: user_id.to_owned(),
            session_id: session_id.clone(),
            username: username.to_owned(),
            persistence: false,
            status: None,
        };
        let (handle, outbox) = Handle::new(session_id.clone(), user_id.to_owned(), self.limits.send_queue);
        let announce = {
            let mut state = self.state();
            self.check_cap(&state, user_id)?;
            let session = SessionState {
                presence: presence.clone(),
                handle: handle.clone(),
                status: status.then(String::new),
                credential,
                channels: HashSet::new(),
                matches: HashSet::new(),
                follows: HashSet::new(),
            };
            let announce = session.status_presence();
            state
                .users
                .entry(user_id.to_owned())
                .or_default()
                .push(session_id.clone());
            self.replicate(Op::Session {
                presence: presence.clone(),
                status: session.status.clone(),
            });
            state.sessions.insert(session_id.clone(), session);
            self.local.attach(handle.clone());
            announce
        };
        if let Some(p) = announce {
            self.send(
                Route::Stream {
                    key: status_key(user_id),
                    except: None,
                },
                "status_presence_event",
                json!({ "joins": [p], "leaves": [] }),
            );
        }
        Ok(Connection {
            session_id,
            presence,
            handle,
            outbox,
        })
    }

    /// Removes a socket: it leaves its channels and matches, its followers
    /// see it go.
    pub fn disconnect(&self, session_id: &str) {
        let Some(session) = ({
            let mut state = self.state();
            let session = state.sessions.remove(session_id);
            if let Some(s) = &session {
                if let Some(list) = state.users.get_mut(&s.presence.user_id) {
                    list.retain(|id| id != session_id);
                    if list.is_empty() {
                        state.users.remove(&s.presence.user_id);
                    }
                }
                self.replicate(Op::SessionGone {
                    session_id: session_id.to_owned(),
                });
            }
            session
        }) else {
            return;
        };
        self.local.detach(session_id);
        for channel_id in &session.channels {
            self.leave_channel(&session, channel_id);
        }
        for match_id in &session.matches {
            self.leave_match(&session.presence, match_id);
        }
        if let Some(p) = session.status_presence() {
            self.send(
                Route::Stream {
                    key: status_key(&session.presence.user_id),
                    except: None,
                },
                "status_presence_event",
                json!({ "joins": [], "leaves": [p] }),
            );
        }
    }

    /// Handles one text frame of `session_id`: the answer (or the error
    /// envelope) goes to its outbox, the effects through the fabric.
    pub async fn receive(&self, session_id: &str, text: &str) {
        let Some(handle) = self.state().sessions.get(session_id).map(|s| s.handle.clone()) else {
            return;
        };
        let (cid, incoming) = protocol::parse(text);
        let answer = match incoming {
            Ok(message) => self.dispatch(session_id, cid.as_deref(), message).await,
            Err(e) => Err(e),
        };
        let reply = match answer {
            Ok(Some(reply)) => reply,
            Ok(None) => return,
            Err(e) => protocol::error(cid.as_deref(), &e),
        };
        handle.push(reply.into());
    }

    /// The error envelope for a frame refused before it was served (rate
    /// limit, binary): with the frame's `cid` when `text` has one.
    pub fn refuse(&self, session_id: &str, text: Option<&str>, error: &RealtimeError) {
        let handle = self.state().sessions.get(session_id).map(|s| s.handle.clone());
        if let Some(handle) = handle {
            let cid = text.and_then(|t| protocol::parse(t).0);
            handle.push(protocol::error(cid.as_deref(), error).into());
        }
    }

    async fn dispatch(
        &self,
        sid: &str,
        cid: Option<&str>,
        message: Incoming,
    ) -> Result<Option<String>, RealtimeError> {
        let reply = |name: &str, body: Value| Ok(Some(protocol::envelope(cid, name, body)));
        match message {
            Incoming::Ping => reply("pong", json!({})),
            Incoming::Pong => Ok(None),
            Incoming::ChannelJoin(join) => reply("channel", self.channel_join(sid, join)?),
            Incoming::ChannelLeave(leave) => {
                let session = self.take_channel(sid, &leave.channel_id);
                if let Some(session) = session {
                    self.leave_channel(&session, &leave.channel_id);
                }
                Ok(Some(protocol::ack(cid)))
            }
            Incoming::ChannelMessageSend(m) => reply("channel_message_ack", self.channel_send(sid, m).await?),
            Incoming::ChannelMessageUpdate(m) => {
                reply("channel_message_ack", self.channel_change(sid, m, false).await?)
            }
            Incoming::ChannelMessageRemove(m) => {
                reply("channel_message_ack", self.channel_change(sid, m, true).await?)
            }
            Incoming::MatchCreate(create) => reply("match", self.match_create(sid, create.name)?),
            Incoming::MatchJoin(join) => {
                if join.token.is_some_and(|t| !t.is_empty()) {
                    return Err(RealtimeError::bad_input("Matchmaker tokens are not supported."));
                }
                match match_owner(&join.match_id) {
                    Some(owner) => {
                        let me = self.presence_of(sid)?;
                        // Asked before anything changes: a refusal leaves no trace.
                        self.admit(owner, &join.match_id, &me).await?;
                        reply("match", self.match_join(sid, &join.match_id, true)?)
                    }
                    None => reply("match", self.match_join(sid, &join.match_id, false)?),
                }
            }
            Incoming::MatchLeave(leave) => {
                let presence = {
                    let mut state = self.state();
                    state
                        .sessions
                        .get_mut(sid)
                        .and_then(|s| s.matches.remove(&leave.match_id).then(|| s.presence.clone()))
                };
                if let Some(presence) = presence {
                    self.leave_match(&presence, &leave.match_id);
                }
                Ok(Some(protocol::ack(cid)))
            }
            Incoming::MatchDataSend(data) => {
                if let Some(d) = self.match_data(sid, data)? {
                    self.to_owner(&d.owner, &d.match_id, &d.sender, d.op_code, d.data)
                        .await?;
                }
                Ok(None)
            }
            Incoming::StatusFollow(users) => reply("status", self.status_follow(sid, users)?),
            Incoming::StatusUnfollow(users) => {
                let mut state = self.state();
                if let Some(s) = state.sessions.get_mut(sid) {
                    for id in &users.user_ids {
                        if s.follows.remove(id) {
                            self.local.leave(&status_key(id), sid);
                        }
                    }
                }
                Ok(Some(protocol::ack(cid)))
            }
            Incoming::StatusUpdate(update) => {
                self.status_update(sid, update.status)?;
                Ok(Some(protocol::ack(cid)))
            }
            Incoming::Rpc(rpc) => {
                let caller = {
                    let state = self.state();
                    let s = state
                        .sessions
                        .get(sid)
                        .ok_or_else(|| RealtimeError::bad_input("Session ended."))?;
                    RpcCaller {
                        user_id: s.presence.user_id.clone(),
                        username: s.presence.username.clone(),
                        session_id: Some(sid.to_owned()),
                        credential: s.credential.clone(),
                    }
                };
                let payload = self.rpc(&rpc.id, rpc.payload.unwrap_or_default(), caller).await?;
                reply("rpc", json!({ "id": rpc.id, "payload": payload }))
            }
            Incoming::Unsupported(name) => Err(RealtimeError::socket(
                ErrorCode::UnrecognizedPayload,
                format!("Unrecognized message: {name} is not supported by this server."),
            )),
        }
    }

    fn presence_of(&self, sid: &str) -> Result<Presence, RealtimeError> {
        self.state()
            .sessions
            .get(sid)
            .map(|s| s.presence.clone())
            .ok_or_else(|| RealtimeError::bad_input("Session ended."))
    }

    /// Runs an RPC (socket or HTTP).
    pub async fn rpc(&self, id: &str, payload: String, caller: RpcCaller) -> Result<String, RealtimeError> {
        if id.is_empty() {
            return Err(RealtimeError::bad_input("RPC ID must be set"));
        }
        let Some(handler) = self.rpc.get() else {
            return Err(RealtimeError::socket(
                ErrorCode::RuntimeFunctionNotFound,
                "RPC function not found",
            ));
        };
        handler
            .call(&id.to_ascii_lowercase(), payload, caller)
            .await
            .map_err(|e| match e {
                RpcError::NotFound => {
                    RealtimeError::socket(ErrorCode::RuntimeFunctionNotFound, "RPC function not found")
                }
                RpcError::Failed(m) => RealtimeError::socket(ErrorCode::RuntimeFunctionException, m),
            })
    }

    pub(crate) fn check_room_name(&self, name: &str) -> Result<(), RealtimeError> {
        if name.is_empty() || name.len() > self.limits.max_channel_name_bytes {
            return Err(RealtimeError::bad_input(format!(
                "Invalid room name length: 1 to {} bytes.",
                self.limits.max_channel_name_bytes
            )));
        }
        if !name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | ' '))
        {
            return Err(RealtimeError::bad_input(
                "Invalid room name: letters, digits, space, '_', '-', '.' and ':' only.",
            ));
        }
        Ok(())
    }

    fn channel_join(&self, sid: &str, join: protocol::ChannelJoin) -> Result<Value, RealtimeError> {
        let mut state = self.state();
        let me = state
            .sessions
            .get(sid)
            .map(|s| (s.presence.clone(), s.joins()))
            .ok_or_else(|| RealtimeError::bad_input("Session ended."))?;
        let (channel_id, room_name, one, two) = match join.r#type {
            1 => {
                self.check_room_name(&join.target)?;
                (
                    format!("2...{}", join.target),
                    join.target.clone(),
                    String::new(),
                    String::new(),
                )
            }
            2 => {
                if !valid_user_id(&join.target) {
                    return Err(RealtimeError::bad_input(
                        "Invalid user ID in direct message target.",
                    ));
                }
                if join.target == me.0.user_id {
                    return Err(RealtimeError::bad_input(
                        "Cannot open a direct message channel with yourself.",
                    ));
                }
                let (a, b) = if me.0.user_id < join.target {
                    (me.0.user_id.clone(), join.target.clone())
                } else {
                    (join.target.clone(), me.0.user_id.clone())
                };
                (format!("4.{a}.{b}."), String::new(), a, b)
            }
            3 => return Err(RealtimeError::bad_input("Group channels are not supported.")),
            _ => return Err(RealtimeError::bad_input("Unrecognized channel type.")),
        };
        let already = state
            .channels
            .get(&channel_id)
            .is_some_and(|c| c.members.contains_key(sid));
        if !already && me.1 >= self.limits.max_joins {
            return Err(RealtimeError::bad_input(format!(
                "Too many channels and matches joined: at most {}.",
                self.limits.max_joins
            )));
        }
        let hidden = join.hidden.unwrap_or(false);
        let me_here = Presence {
            persistence: join.persistence.unwrap_or(true),
            ..me.0.clone()
        };
        let channel = state
            .channels
            .entry(channel_id.clone())
            .or_insert_with(|| ChannelState {
                room_name: room_name.clone(),
                user_id_one: one.clone(),
                user_id_two: two.clone(),
                members: BTreeMap::new(),
            });
        channel.members.insert(sid.to_owned(), (me_here.clone(), hidden));
        let mut others: Vec<Presence> = channel
            .visible()
            .filter(|p| p.session_id != sid)
            .cloned()
            .collect();
        others.extend(state.peers.channel_members(&channel_id));
        if let Some(s) = state.sessions.get_mut(sid) {
            s.channels.insert(channel_id.clone());
        }
        if !already {
            self.replicate(Op::ChannelJoin {
                channel_id: channel_id.clone(),
                presence: me_here.clone(),
                hidden,
            });
        }
        self.local.join(&channel_id, sid);
        drop(state);
        if !already && !hidden {
            self.send(
                Route::Stream {
                    key: channel_id.clone(),
                    except: Some(sid.to_owned()),
                },
                "channel_presence_event",
                json!({
                    "channel_id": channel_id, "joins": [me_here], "leaves": [],
                    "room_name": room_name, "user_id_one": one, "user_id_two": two,
                }),
            );
        }
        Ok(json!({
            "id": channel_id, "presences": others, "self": me_here,
            "room_name": room_name, "user_id_one": one, "user_id_two": two,
        }))
    }

    /// Takes `channel_id` off the session's joins; the session (a copy of
    /// what [`Hub::leave_channel`] needs) when it was in it.
    fn take_channel(&self, sid: &str, channel_id: &str) -> Option<SessionView> {
        let mut state = self.state();
        let s = state.sessions.get_mut(sid)?;
        s.channels.remove(channel_id).then(|| SessionView {
            presence: s.presence.clone(),
        })
    }

    fn leave_channel(&self, session: &impl AsPresence, channel_id: &str) {
        let presence = session.as_presence();
        let left = {
            let mut state = self.state();
            let Some(channel) = state.channels.get_mut(channel_id) else {
                return;
            };
            let left = channel.members.remove(&presence.session_id);
            if left.is_some() {
                self.replicate(Op::ChannelLeave {
                    channel_id: channel_id.to_owned(),
                    session_id: presence.session_id.clone(),
                });
            }
            let event = left.filter(|(_, hidden)| !hidden).map(|(p, _)| {
                json!({
                    "channel_id": channel_id, "joins": [], "leaves": [p],
                    "room_name": channel.room_name, "user_id_one": channel.user_id_one,
                    "user_id_two": channel.user_id_two,
                })
            });
            if channel.members.is_empty() {
                state.channels.remove(channel_id);
            }
            event
        };
        self.local.leave(channel_id, &presence.session_id);
        if let Some(event) = left {
            self.send(
                Route::Stream {
                    key: channel_id.to_owned(),
                    except: None,
                },
                "channel_presence_event",
                event,
            );
        }
    }

    /// The sender's membership of a channel: its presence and the channel's
    /// names.
    fn member(&self, sid: &str, channel_id: &str) -> Result<(Presence, ChannelMessage), RealtimeError> {
        let state = self.state();
        let (presence, _) = state
            .channels
            .get(channel_id)
            .and_then(|c| c.members.get(sid))
            .ok_or_else(|| RealtimeError::bad_input("Must join channel before sending messages."))?;
        let channel = &state.channels[channel_id];
        let template = ChannelMessage {
            channel_id: channel_id.to_owned(),
            message_id: String::new(),
            code: 0,
            sender_id: presence.user_id.clone(),
            username: presence.username.clone(),
            content: String::new(),
            create_time: String::new(),
            update_time: String::new(),
            persistent: presence.persistence,
            room_name: channel.room_name.clone(),
            user_id_one: channel.user_id_one.clone(),
            user_id_two: channel.user_id_two.clone(),
        };
        Ok((presence.clone(), template))
    }

    pub(crate) fn check_content(content: &str) -> Result<(), RealtimeError> {
        match serde_json::from_str::<Value>(content) {
            Ok(Value::Object(_)) => Ok(()),
            _ => Err(RealtimeError::bad_input(
                "Message content must be a valid JSON object.",
            )),
        }
    }

    fn ack_of(m: &ChannelMessage) -> Value {
        json!({
            "channel_id": m.channel_id, "message_id": m.message_id, "code": m.code,
            "username": m.username, "create_time": m.create_time, "update_time": m.update_time,
            "persistent": m.persistent, "room_name": m.room_name,
            "user_id_one": m.user_id_one, "user_id_two": m.user_id_two,
        })
    }

    async fn channel_send(&self, sid: &str, op: protocol::ChannelMessageOp) -> Result<Value, RealtimeError> {
        Self::check_content(&op.content)?;
        let (_, mut template) = self.member(sid, &op.channel_id)?;
        template.content = op.content;
        let (seq, message) = self.history.new_message(template);
        if message.persistent {
            self.history.store_message(seq, &message).await?;
        }
        self.send(
            Route::Stream {
                key: message.channel_id.clone(),
                except: None,
            },
            "channel_message",
            json!(message),
        );
        Ok(Self::ack_of(&message))
    }

    async fn channel_change(
        &self,
        sid: &str,
        op: protocol::ChannelMessageOp,
        remove: bool,
    ) -> Result<Value, RealtimeError> {
        if !remove {
            Self::check_content(&op.content)?;
        }
        let (presence, _) = self.member(sid, &op.channel_id)?;
        let verb = if remove { "remove" } else { "update" };
        let mut message = self
            .history
            .message(&op.channel_id, &op.message_id)
            .await?
            .ok_or_else(|| {
                RealtimeError::bad_input(format!("Could not find message to {verb} in channel history."))
            })?;
        if message.sender_id != presence.user_id {
            return Err(RealtimeError::bad_input(format!(
                "Could not {verb} a message sent by another user."
            )));
        }
        if remove {
            self.history.remove_message(&message.message_id).await?;
            message.code = 2;
            message.content = "{}".into();
        } else {
            message.update_time = self
                .history
                .update_message(&message.message_id, &op.content)
                .await?;
            message.code = 1;
            message.content = op.content;
        }
        self.send(
            Route::Stream {
                key: message.channel_id.clone(),
                except: None,
            },
            "channel_message",
            json!(message),
        );
        Ok(Self::ack_of(&message))
    }

    fn match_create(&self, sid: &str, name: Option<String>) -> Result<Value, RealtimeError> {
        let id = match name.filter(|n| !n.is_empty()) {
            Some(name) => {
                if name.len() > self.limits.max_channel_name_bytes {
                    return Err(RealtimeError::bad_input("Match name too long."));
                }
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes())
            }
            None => uuid::Uuid::new_v4(),
        };
        self.match_join(sid, &format!("{id}.{}", self.node), true)
    }

    fn match_join(&self, sid: &str, match_id: &str, create: bool) -> Result<Value, RealtimeError> {
        let mut state = self.state();
        let (me, joins) = state
            .sessions
            .get(sid)
            .map(|s| (s.presence.clone(), s.joins()))
            .ok_or_else(|| RealtimeError::bad_input("Session ended."))?;
        let remote = state.peers.match_members(match_id);
        if !create && !state.matches.contains_key(match_id) && remote.is_empty() {
            return Err(RealtimeError::socket(ErrorCode::MatchNotFound, "Match not found"));
        }
        let members = state.matches.entry(match_id.to_owned()).or_default();
        let already = members.contains_key(sid);
        if !already && joins >= self.limits.max_joins {
            if members.is_empty() {
                state.matches.remove(match_id);
            }
            return Err(RealtimeError::bad_input(format!(
                "Too many channels and matches joined: at most {}.",
                self.limits.max_joins
            )));
        }
        members.insert(sid.to_owned(), me.clone());
        let mut others: Vec<Presence> = members
            .values()
            .filter(|p| p.session_id != sid)
            .cloned()
            .collect();
        others.extend(remote);
        let size = others.len() + 1;
        if !already {
            self.replicate(Op::MatchJoin {
                match_id: match_id.to_owned(),
                presence: me.clone(),
            });
        }
        if let Some(s) = state.sessions.get_mut(sid) {
            s.matches.insert(match_id.to_owned());
        }
        self.local.join(match_id, sid);
        drop(state);
        if !already {
            self.send(
                Route::Stream {
                    key: match_id.to_owned(),
                    except: Some(sid.to_owned()),
                },
                "match_presence_event",
                json!({ "match_id": match_id, "joins": [me], "leaves": [] }),
            );
        }
        Ok(json!({
            "match_id": match_id, "authoritative": match_owner(match_id).is_some(), "label": "", "size": size,
            "presences": others, "self": me,
        }))
    }

    fn leave_match(&self, presence: &Presence, match_id: &str) {
        self.left_owner(match_id, presence);
        {
            let mut state = self.state();
            let Some(members) = state.matches.get_mut(match_id) else {
                return;
            };
            if members.remove(&presence.session_id).is_some() {
                self.replicate(Op::MatchLeave {
                    match_id: match_id.to_owned(),
                    session_id: presence.session_id.clone(),
                });
            }
            if members.is_empty() {
                state.matches.remove(match_id);
            }
        }
        self.local.leave(match_id, &presence.session_id);
        self.send(
            Route::Stream {
                key: match_id.to_owned(),
                except: None,
            },
            "match_presence_event",
            json!({ "match_id": match_id, "joins": [], "leaves": [presence] }),
        );
    }

    /// Relays a player's match data; for an Element's match, what its
    /// owner gets instead.
    fn match_data(
        &self,
        sid: &str,
        data: protocol::MatchDataSend,
    ) -> Result<Option<OwnerData>, RealtimeError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.data.as_bytes())
            .map_err(|_| RealtimeError::bad_input("Match data must be base64."))?;
        if bytes.len() > self.limits.max_match_data_bytes {
            return Err(RealtimeError::bad_input(format!(
                "Match data too large: at most {} bytes.",
                self.limits.max_match_data_bytes
            )));
        }
        let (sender, targets) = {
            let state = self.state();
            let members = state
                .matches
                .get(&data.match_id)
                .filter(|m| m.contains_key(sid))
                .ok_or_else(|| RealtimeError::socket(ErrorCode::MatchNotFound, "Match not found"))?;
            let targets: Option<Vec<String>> = (!data.presences.is_empty()).then(|| {
                data.presences
                    .iter()
                    .filter(|p| {
                        p.session_id != sid
                            && (members.contains_key(&p.session_id)
                                || state.peers.in_match(&data.match_id, &p.session_id))
                    })
                    .map(|p| p.session_id.clone())
                    .collect()
            });
            (members[sid].clone(), targets)
        };
        if let Some(owner) = match_owner(&data.match_id) {
            return Ok(Some(OwnerData {
                owner: owner.to_owned(),
                match_id: data.match_id,
                sender,
                op_code: data.op_code,
                data: bytes,
            }));
        }
        let route = match targets {
            Some(sessions) => Route::Sessions(sessions),
            None => Route::Stream {
                key: data.match_id.clone(),
                except: Some(sid.to_owned()),
            },
        };
        self.send(
            route,
            "match_data",
            json!({
                "match_id": data.match_id, "presence": sender,
                "op_code": data.op_code.to_string(), "data": data.data, "reliable": data.reliable,
            }),
        );
        Ok(None)
    }

    fn status_follow(&self, sid: &str, users: protocol::StatusUsers) -> Result<Value, RealtimeError> {
        if !users.usernames.is_empty() {
            return Err(RealtimeError::bad_input(
                "Following by username is not supported: use user ids.",
            ));
        }
        if let Some(bad) = users.user_ids.iter().find(|id| !valid_user_id(id)) {
            return Err(RealtimeError::bad_input(format!(
                "Invalid user ID '{}'.",
                bad.chars().take(64).collect::<String>()
            )));
        }
        let mut state = self.state();
        let s = state
            .sessions
            .get_mut(sid)
            .ok_or_else(|| RealtimeError::bad_input("Session ended."))?;
        let me = s.presence.user_id.clone();
        let new: HashSet<&String> = users
            .user_ids
            .iter()
            .filter(|id| **id != me && !s.follows.contains(*id))
            .collect();
        if s.follows.len() + new.len() > self.limits.max_follows {
            return Err(RealtimeError::bad_input(format!(
                "Too many users followed: at most {}.",
                self.limits.max_follows
            )));
        }
        for id in new {
            s.follows.insert(id.clone());
            self.local.join(&status_key(id), sid);
        }
        let mut presences = Vec::new();
        for id in users.user_ids.iter().filter(|id| **id != me) {
            for other in state.users.get(id).into_iter().flatten() {
                if let Some(p) = state.sessions.get(other).and_then(SessionState::status_presence) {
                    presences.push(p);
                }
            }
            presences.extend(state.peers.status_of(id));
        }
        Ok(json!({ "presences": presences }))
    }

    fn status_update(&self, sid: &str, status: Option<String>) -> Result<(), RealtimeError> {
        if status
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_STATUS_CHARS)
        {
            return Err(RealtimeError::bad_input(format!(
                "Status must be at most {MAX_STATUS_CHARS} characters."
            )));
        }
        let (user_id, before, after) = {
            let mut state = self.state();
            let s = state
                .sessions
                .get_mut(sid)
                .ok_or_else(|| RealtimeError::bad_input("Session ended."))?;
            let before = s.status_presence();
            s.status = status;
            self.replicate(Op::Session {
                presence: s.presence.clone(),
                status: s.status.clone(),
            });
            (s.presence.user_id.clone(), before, s.status_presence())
        };
        if before.is_none() && after.is_none() {
            return Ok(());
        }
        self.send(
            Route::Stream {
                key: status_key(&user_id),
                except: None,
            },
            "status_presence_event",
            json!({ "joins": after.into_iter().collect::<Vec<_>>(), "leaves": before.into_iter().collect::<Vec<_>>() }),
        );
        Ok(())
    }

    /// Sends a notification to each of `user_ids`: stored when persistent
    /// (so an offline user finds it in `GET /v2/notification`), pushed to
    /// the sessions they have open.
    pub async fn notify(&self, user_ids: &[String], n: &NewNotification) -> Result<(), RealtimeError> {
        if !n.content.is_object() {
            return Err(RealtimeError::InvalidArgument(
                "Notification content must be a JSON object.".into(),
            ));
        }
        for user_id in user_ids {
            if !valid_user_id(user_id) {
                return Err(RealtimeError::InvalidArgument(format!(
                    "Invalid user ID '{user_id}'."
                )));
            }
        }
        for user_id in user_ids {
            let (seq, notification) = self.history.new_notification(n);
            if n.persistent {
                self.history
                    .store_notification(user_id, seq, &notification)
                    .await?;
            }
            self.send(
                Route::User(user_id.clone()),
                "notifications",
                json!({ "notifications": [notification] }),
            );
        }
        Ok(())
    }

    /// The caller's stored notifications, oldest first, after `cursor`.
    pub async fn list_notifications(
        &self,
        user_id: &str,
        limit: u64,
        cursor: Option<&str>,
    ) -> Result<NotificationPage, RealtimeError> {
        self.history.list_notifications(user_id, limit, cursor).await
    }

    /// Deletes the caller's notifications among `ids`.
    pub async fn delete_notifications(&self, user_id: &str, ids: &[String]) -> Result<(), RealtimeError> {
        self.history.delete_notifications(user_id, ids).await
    }

    /// A channel's stored messages, for a caller allowed to read it (anyone
    /// for a room, the two users for a direct message).
    pub async fn list_messages(
        &self,
        user_id: &str,
        channel_id: &str,
        limit: u64,
        forward: bool,
        cursor: Option<&str>,
    ) -> Result<MessagePage, RealtimeError> {
        match channel_kind(channel_id)? {
            ChannelKind::Room => {}
            ChannelKind::Direct(a, b) => {
                if user_id != a && user_id != b {
                    return Err(RealtimeError::NotFound("Channel not found.".into()));
                }
            }
        }
        self.history
            .list_messages(channel_id, limit, forward, cursor)
            .await
    }
}

/// What leaving a channel needs of a session.
/// A player's match data for the Element that owns the match.
struct OwnerData {
    owner: String,
    match_id: String,
    sender: Presence,
    op_code: i64,
    data: Vec<u8>,
}

struct SessionView {
    presence: Presence,
}

trait AsPresence {
    fn as_presence(&self) -> &Presence;
}

impl AsPresence for SessionView {
    fn as_presence(&self) -> &Presence {
        &self.presence
    }
}

impl AsPresence for SessionState {
    fn as_presence(&self) -> &Presence {
        &self.presence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_are_nakamas() {
        assert!(matches!(channel_kind("2...lobby"), Ok(ChannelKind::Room)));
        let a = uuid::Uuid::new_v4().to_string();
        let b = uuid::Uuid::new_v4().to_string();
        assert!(matches!(
            channel_kind(&format!("4.{a}.{b}.")),
            Ok(ChannelKind::Direct(..))
        ));
        assert!(channel_kind("3.x..").is_err());
        assert!(channel_kind("2...").is_err());
        assert!(channel_kind("nope").is_err());
    }
}
