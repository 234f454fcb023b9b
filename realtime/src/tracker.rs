//! Membership across nodes (Nakama's tracker): each node owns its own
//! sessions' presences and replicates every change ([`Op`]) through a
//! [`Replicator`]; every node keeps a view of each peer's presences
//! ([`Peers`]) and answers joins, match lookups, status follows and the
//! socket cap from its own state and those views together.
//!
//! The transport is not here: the composition root implements
//! [`Replicator`] over NATS and hands what it receives to
//! [`crate::Hub::apply_remote`]. Ops are idempotent (a join of a member
//! already there, a leave of one gone, change nothing), so a snapshot
//! crossing an op on the wire does no harm. A peer that goes silent is
//! dropped by [`crate::Hub::expire_peers`], with leave events for this
//! node's members of what it was in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::protocol::Presence;

/// One change to a node's membership, as it crosses to the other nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A session is online, or changed its status (`None`: not shown to
    /// followers).
    Session {
        /// Its presence (no status).
        presence: Presence,
        /// The status followers see.
        status: Option<String>,
    },
    /// A session closed: it left everything.
    SessionGone {
        /// The session.
        session_id: String,
    },
    /// A session joined a channel.
    ChannelJoin {
        /// The channel.
        channel_id: String,
        /// Its presence there.
        presence: Presence,
        /// Not shown to the channel's members.
        hidden: bool,
    },
    /// A session left a channel.
    ChannelLeave {
        /// The channel.
        channel_id: String,
        /// The session.
        session_id: String,
    },
    /// A session joined (or created) a match.
    MatchJoin {
        /// The match.
        match_id: String,
        /// Its presence there.
        presence: Presence,
    },
    /// A session left a match.
    MatchLeave {
        /// The match.
        match_id: String,
        /// The session.
        session_id: String,
    },
    /// Everything the node holds: replaces its view.
    Snapshot(Snapshot),
    /// A node started or reconnected: every node answers with its
    /// [`Op::Snapshot`].
    Hello,
    /// The node is alive.
    Heartbeat,
}

/// All of one node's presences.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Sessions with the status their followers see.
    pub sessions: Vec<(Presence, Option<String>)>,
    /// Channel memberships: channel, presence, hidden.
    pub channels: Vec<(String, Presence, bool)>,
    /// Match memberships.
    pub matches: Vec<(String, Presence)>,
}

/// Sends this node's [`Op`]s to the other nodes. Never waits: an op that
/// can't go now is lost, and the next [`Op::Snapshot`] heals the peers.
pub trait Replicator: Send + Sync + 'static {
    /// Sends `op` to every other node.
    fn replicate(&self, op: Op);
}

struct RemoteSession {
    presence: Presence,
    status: Option<String>,
    channels: HashSet<String>,
    matches: HashSet<String>,
}

impl RemoteSession {
    fn status_presence(&self) -> Option<Presence> {
        self.status.as_ref().map(|s| Presence {
            status: Some(s.clone()),
            ..self.presence.clone()
        })
    }
}

/// What one peer holds, as far as its ops told.
struct PeerView {
    seen: Instant,
    sessions: HashMap<String, RemoteSession>,
    users: HashMap<String, HashSet<String>>,
    channels: HashMap<String, BTreeMap<String, (Presence, bool)>>,
    matches: HashMap<String, BTreeMap<String, Presence>>,
}

impl PeerView {
    fn new() -> PeerView {
        PeerView {
            seen: Instant::now(),
            sessions: HashMap::new(),
            users: HashMap::new(),
            channels: HashMap::new(),
            matches: HashMap::new(),
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Session { presence, status } => {
                let sid = presence.session_id.clone();
                self.users
                    .entry(presence.user_id.clone())
                    .or_default()
                    .insert(sid.clone());
                match self.sessions.get_mut(&sid) {
                    Some(s) => s.status = status,
                    None => {
                        self.sessions.insert(
                            sid,
                            RemoteSession {
                                presence,
                                status,
                                channels: HashSet::new(),
                                matches: HashSet::new(),
                            },
                        );
                    }
                }
            }
            Op::SessionGone { session_id } => {
                let Some(s) = self.sessions.remove(&session_id) else {
                    return;
                };
                if let Some(set) = self.users.get_mut(&s.presence.user_id) {
                    set.remove(&session_id);
                    if set.is_empty() {
                        self.users.remove(&s.presence.user_id);
                    }
                }
                for c in &s.channels {
                    remove_member(&mut self.channels, c, &session_id);
                }
                for m in &s.matches {
                    remove_member(&mut self.matches, m, &session_id);
                }
            }
            Op::ChannelJoin {
                channel_id,
                presence,
                hidden,
            } => {
                // A join of a session the peer never announced is not
                // kept: it would have nothing to leave with.
                let Some(s) = self.sessions.get_mut(&presence.session_id) else {
                    return;
                };
                s.channels.insert(channel_id.clone());
                self.channels
                    .entry(channel_id)
                    .or_default()
                    .insert(presence.session_id.clone(), (presence, hidden));
            }
            Op::ChannelLeave {
                channel_id,
                session_id,
            } => {
                if let Some(s) = self.sessions.get_mut(&session_id) {
                    s.channels.remove(&channel_id);
                }
                remove_member(&mut self.channels, &channel_id, &session_id);
            }
            Op::MatchJoin { match_id, presence } => {
                let Some(s) = self.sessions.get_mut(&presence.session_id) else {
                    return;
                };
                s.matches.insert(match_id.clone());
                self.matches
                    .entry(match_id)
                    .or_default()
                    .insert(presence.session_id.clone(), presence);
            }
            Op::MatchLeave { match_id, session_id } => {
                if let Some(s) = self.sessions.get_mut(&session_id) {
                    s.matches.remove(&match_id);
                }
                remove_member(&mut self.matches, &match_id, &session_id);
            }
            Op::Snapshot(snapshot) => {
                let seen = self.seen;
                *self = PeerView::new();
                self.seen = seen;
                for (presence, status) in snapshot.sessions {
                    self.apply(Op::Session { presence, status });
                }
                for (channel_id, presence, hidden) in snapshot.channels {
                    self.apply(Op::ChannelJoin {
                        channel_id,
                        presence,
                        hidden,
                    });
                }
                for (match_id, presence) in snapshot.matches {
                    self.apply(Op::MatchJoin { match_id, presence });
                }
            }
            Op::Hello | Op::Heartbeat => {}
        }
    }

    fn visible_channel_members(&self) -> HashSet<(&str, &Presence)> {
        self.channels
            .iter()
            .flat_map(|(c, members)| {
                members
                    .values()
                    .filter(|(_, hidden)| !hidden)
                    .map(move |(p, _)| (c.as_str(), p))
            })
            .collect()
    }

    fn match_members(&self) -> HashSet<(&str, &Presence)> {
        self.matches
            .iter()
            .flat_map(|(m, members)| members.values().map(move |p| (m.as_str(), p)))
            .collect()
    }

    fn status_presences(&self) -> HashSet<Presence> {
        self.sessions
            .values()
            .filter_map(RemoteSession::status_presence)
            .collect()
    }
}

fn remove_member<T>(map: &mut HashMap<String, BTreeMap<String, T>>, key: &str, session_id: &str) {
    if let Some(members) = map.get_mut(key) {
        members.remove(session_id);
        if members.is_empty() {
            map.remove(key);
        }
    }
}

/// An event this node's own members of a stream should see because a
/// peer's membership changed without them hearing it (the peer died, or
/// its events were lost while NATS was down): stream key, envelope name,
/// body.
pub(crate) type Missed = (String, &'static str, Value);

/// The names a channel's events carry, from its id (`2...ROOM` or
/// `4.USER.USER.`).
fn channel_names(channel_id: &str) -> (String, String, String) {
    let parts: Vec<&str> = channel_id.splitn(4, '.').collect();
    match parts.as_slice() {
        ["2", _, _, room] => ((*room).to_owned(), String::new(), String::new()),
        ["4", one, two, _] => (String::new(), (*one).to_owned(), (*two).to_owned()),
        _ => Default::default(),
    }
}

/// Per channel or match, in id order: who is in `after` but not `before`
/// (the joins), and who was in `before` but not `after` (the leaves).
fn joins_and_leaves<'a>(
    before: &HashSet<(&'a str, &'a Presence)>,
    after: &HashSet<(&'a str, &'a Presence)>,
) -> BTreeMap<&'a str, (Vec<&'a Presence>, Vec<&'a Presence>)> {
    let mut changes: BTreeMap<&str, (Vec<&Presence>, Vec<&Presence>)> = BTreeMap::new();
    for (id, p) in after.difference(before) {
        changes.entry(id).or_default().0.push(p);
    }
    for (id, p) in before.difference(after) {
        changes.entry(id).or_default().1.push(p);
    }
    changes
}

/// The events that turn what members saw of `old` into `new`.
fn missed(old: &PeerView, new: &PeerView) -> Vec<Missed> {
    let mut events = Vec::new();
    let channels = joins_and_leaves(&old.visible_channel_members(), &new.visible_channel_members());
    for (channel_id, (joins, leaves)) in channels {
        let (room, one, two) = channel_names(channel_id);
        events.push((
            channel_id.to_owned(),
            "channel_presence_event",
            json!({
                "channel_id": channel_id, "joins": joins, "leaves": leaves,
                "room_name": room, "user_id_one": one, "user_id_two": two,
            }),
        ));
    }
    let matches = joins_and_leaves(&old.match_members(), &new.match_members());
    for (match_id, (joins, leaves)) in matches {
        events.push((
            match_id.to_owned(),
            "match_presence_event",
            json!({ "match_id": match_id, "joins": joins, "leaves": leaves }),
        ));
    }
    let (before, after) = (old.status_presences(), new.status_presences());
    let mut users: BTreeMap<&str, (Vec<&Presence>, Vec<&Presence>)> = BTreeMap::new();
    for p in after.difference(&before) {
        users.entry(&p.user_id).or_default().0.push(p);
    }
    for p in before.difference(&after) {
        users.entry(&p.user_id).or_default().1.push(p);
    }
    for (user_id, (joins, leaves)) in users {
        events.push((
            crate::hub::status_key(user_id),
            "status_presence_event",
            json!({ "joins": joins, "leaves": leaves }),
        ));
    }
    events
}

/// The other nodes' presences, by node.
#[derive(Default)]
pub(crate) struct Peers {
    nodes: HashMap<String, PeerView>,
}

impl Peers {
    /// Applies `node`'s `op`; the events this node's members missed when
    /// it replaced the node's view.
    /// Whether `node` was new to this node comes first.
    pub(crate) fn apply(&mut self, node: &str, op: Op) -> (bool, Vec<Missed>) {
        let known = self.nodes.contains_key(node);
        let view = self.nodes.entry(node.to_owned()).or_insert_with(PeerView::new);
        view.seen = Instant::now();
        if let Op::Snapshot(_) = op {
            let mut new = PeerView::new();
            new.apply(op);
            let events = missed(view, &new);
            *view = new;
            return (!known, events);
        }
        view.apply(op);
        (!known, Vec::new())
    }

    /// Drops the peers not heard from for `timeout`: their names, and the
    /// leave events of what they were in.
    pub(crate) fn expire(&mut self, timeout: Duration) -> (Vec<String>, Vec<Missed>) {
        let now = Instant::now();
        let dead: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, v)| now.duration_since(v.seen) > timeout)
            .map(|(n, _)| n.clone())
            .collect();
        let mut events = Vec::new();
        for node in &dead {
            if let Some(view) = self.nodes.remove(node) {
                events.extend(missed(&view, &PeerView::new()));
            }
        }
        (dead, events)
    }

    /// Peers heard from.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Sessions `user_id` has on the other nodes.
    pub(crate) fn user_sessions(&self, user_id: &str) -> usize {
        self.nodes
            .values()
            .map(|v| v.users.get(user_id).map_or(0, HashSet::len))
            .sum()
    }

    /// The status presences of `user_id`'s sessions on the other nodes.
    pub(crate) fn status_of(&self, user_id: &str) -> Vec<Presence> {
        self.nodes
            .values()
            .flat_map(|v| {
                v.users
                    .get(user_id)
                    .into_iter()
                    .flatten()
                    .filter_map(|sid| v.sessions.get(sid).and_then(RemoteSession::status_presence))
            })
            .collect()
    }

    /// The visible members of `channel_id` on the other nodes.
    pub(crate) fn channel_members(&self, channel_id: &str) -> Vec<Presence> {
        self.nodes
            .values()
            .filter_map(|v| v.channels.get(channel_id))
            .flat_map(|m| m.values().filter(|(_, hidden)| !hidden).map(|(p, _)| p.clone()))
            .collect()
    }

    /// The members of `match_id` on the other nodes (empty: no peer has it).
    pub(crate) fn match_members(&self, match_id: &str) -> Vec<Presence> {
        self.nodes
            .values()
            .filter_map(|v| v.matches.get(match_id))
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    /// Whether `session_id` is in `match_id` on another node.
    pub(crate) fn in_match(&self, match_id: &str, session_id: &str) -> bool {
        self.nodes.values().any(|v| {
            v.matches
                .get(match_id)
                .is_some_and(|m| m.contains_key(session_id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(user: &str, session: &str) -> Presence {
        Presence {
            user_id: user.into(),
            session_id: session.into(),
            username: user.into(),
            persistence: false,
            status: None,
        }
    }

    #[test]
    fn ops_build_a_view_and_a_session_gone_leaves_everything() {
        let mut peers = Peers::default();
        let p = presence("u1", "s1");
        peers.apply(
            "b",
            Op::Session {
                presence: p.clone(),
                status: Some(String::new()),
            },
        );
        peers.apply(
            "b",
            Op::ChannelJoin {
                channel_id: "2...lobby".into(),
                presence: p.clone(),
                hidden: false,
            },
        );
        peers.apply(
            "b",
            Op::MatchJoin {
                match_id: "m".into(),
                presence: p.clone(),
            },
        );
        assert_eq!(peers.user_sessions("u1"), 1);
        assert_eq!(peers.channel_members("2...lobby"), vec![p.clone()]);
        assert!(peers.in_match("m", "s1"));
        assert_eq!(peers.status_of("u1").len(), 1);
        // A join for a session never announced is not kept.
        peers.apply(
            "b",
            Op::ChannelJoin {
                channel_id: "2...lobby".into(),
                presence: presence("u2", "ghost"),
                hidden: false,
            },
        );
        assert_eq!(peers.channel_members("2...lobby").len(), 1);
        peers.apply(
            "b",
            Op::SessionGone {
                session_id: "s1".into(),
            },
        );
        assert_eq!(peers.user_sessions("u1"), 0);
        assert!(peers.channel_members("2...lobby").is_empty());
        assert!(peers.match_members("m").is_empty());
    }

    #[test]
    fn a_snapshot_replaces_the_view_with_the_events_members_missed() {
        let mut peers = Peers::default();
        let (p1, p2) = (presence("u1", "s1"), presence("u2", "s2"));
        let snapshot = |sessions: Vec<&Presence>| {
            Op::Snapshot(Snapshot {
                sessions: sessions.iter().map(|p| ((*p).clone(), None)).collect(),
                channels: sessions
                    .iter()
                    .map(|p| ("2...lobby".to_owned(), (*p).clone(), false))
                    .collect(),
                matches: vec![],
            })
        };
        let (new, events) = peers.apply("b", snapshot(vec![&p1]));
        assert!(new);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].2["joins"][0]["session_id"], "s1");
        assert_eq!(events[0].2["room_name"], "lobby");
        let (new, events) = peers.apply("b", snapshot(vec![&p2]));
        assert!(!new);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].2["joins"][0]["session_id"], "s2");
        assert_eq!(events[0].2["leaves"][0]["session_id"], "s1");
        // The same snapshot again: nothing missed.
        assert!(peers.apply("b", snapshot(vec![&p2])).1.is_empty());
    }

    #[test]
    fn a_silent_peer_expires_with_leave_events() {
        let mut peers = Peers::default();
        let p = presence("u1", "s1");
        peers.apply(
            "b",
            Op::Session {
                presence: p.clone(),
                status: Some("here".into()),
            },
        );
        peers.apply(
            "b",
            Op::MatchJoin {
                match_id: "m".into(),
                presence: p.clone(),
            },
        );
        assert!(peers.expire(Duration::from_secs(60)).0.is_empty());
        std::thread::sleep(Duration::from_millis(5));
        let (dead, events) = peers.expire(Duration::from_millis(1));
        assert_eq!(dead, vec!["b".to_owned()]);
        let names: Vec<&str> = events.iter().map(|e| e.1).collect();
        assert_eq!(names, vec!["match_presence_event", "status_presence_event"]);
        assert_eq!(events[1].2["leaves"][0]["status"], "here");
        assert_eq!(peers.len(), 0);
    }
}
