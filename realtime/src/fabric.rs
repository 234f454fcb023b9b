//! Delivery: the one way an envelope reaches sessions other than the one
//! that asked ([`Fabric`]), this node's table of sessions and stream
//! members ([`Local`]), and a session's end of it ([`Handle`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::sync::{Notify, mpsc};

/// An encoded envelope, shared by every session it goes to: a fan-out to a
/// room encodes once.
pub type Outgoing = Arc<str>;

/// Who an envelope is for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// These sessions.
    Sessions(Vec<String>),
    /// Every session of this user.
    User(String),
    /// Every member of a stream (a channel, a match, a user's status
    /// followers), but `except` (the sender, when it doesn't get its own).
    Stream {
        /// The stream's key.
        key: String,
        /// A session left out.
        except: Option<String>,
    },
    /// Those of these sessions that are members of a stream: the node that
    /// holds a session decides, so the check needs no membership replicated
    /// from elsewhere.
    StreamMembers {
        /// The stream's key.
        key: String,
        /// The sessions.
        sessions: Vec<String>,
    },
}

/// Delivers envelopes along routes. The in-process [`LocalFabric`] serves
/// one node; a clustered implementation publishes each route to the other
/// nodes too, where [`Local::deliver`] hands it to their own sessions.
pub trait Fabric: Send + Sync + 'static {
    /// Delivers `envelope` to whoever `route` names, wherever they are.
    /// Never waits: a session that can't take it is kicked.
    fn deliver(&self, route: Route, envelope: Outgoing);
}

/// One node, no cluster: straight to [`Local`].
pub struct LocalFabric {
    local: Arc<Local>,
}

impl LocalFabric {
    /// Delivers to `local`'s sessions.
    pub fn new(local: Arc<Local>) -> LocalFabric {
        LocalFabric { local }
    }
}

impl Fabric for LocalFabric {
    fn deliver(&self, route: Route, envelope: Outgoing) {
        self.local.deliver(&route, &envelope);
    }
}

/// One session's end of delivery: its bounded outbox and the signal that
/// ends it.
#[derive(Debug)]
pub struct Handle {
    /// The session.
    pub session_id: String,
    /// Its user.
    pub user_id: String,
    outbox: mpsc::Sender<Outgoing>,
    kick: Notify,
    reason: OnceLock<String>,
}

impl Handle {
    /// A handle and the receiving end of its outbox, which holds at most
    /// `queue` envelopes.
    pub fn new(session_id: String, user_id: String, queue: usize) -> (Arc<Handle>, mpsc::Receiver<Outgoing>) {
        let (outbox, rx) = mpsc::channel(queue.max(1));
        let handle = Handle {
            session_id,
            user_id,
            outbox,
            kick: Notify::new(),
            reason: OnceLock::new(),
        };
        (Arc::new(handle), rx)
    }

    /// Queues `envelope`; a full outbox kicks the session (it reads slower
    /// than it is sent to) rather than growing.
    pub fn push(&self, envelope: Outgoing) -> bool {
        match self.outbox.try_send(envelope) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.kick("send queue full: the client reads too slowly");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Ends the session for `reason` (the first reason given wins).
    pub fn kick(&self, reason: &str) {
        let _ = self.reason.set(reason.to_owned());
        // `notify_one` keeps the permit if the socket isn't waiting yet.
        self.kick.notify_one();
    }

    /// Resolves once the session is kicked, with the reason.
    pub async fn kicked(&self) -> String {
        loop {
            if let Some(reason) = self.reason.get() {
                return reason.clone();
            }
            self.kick.notified().await;
        }
    }
}

#[derive(Default)]
struct Tables {
    sessions: HashMap<String, Arc<Handle>>,
    users: HashMap<String, Vec<Arc<Handle>>>,
    streams: HashMap<String, Vec<Arc<Handle>>>,
}

/// This node's sessions, by id, by user and by the streams they are in.
#[derive(Default)]
pub struct Local {
    tables: Mutex<Tables>,
}

impl Local {
    /// An empty table.
    pub fn new() -> Local {
        Local::default()
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        // The tables are consistent between statements: a panic elsewhere
        // can't leave them half-updated.
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a session.
    pub fn attach(&self, handle: Arc<Handle>) {
        let mut t = self.tables();
        t.users
            .entry(handle.user_id.clone())
            .or_default()
            .push(handle.clone());
        t.sessions.insert(handle.session_id.clone(), handle);
    }

    /// Removes a session from everything.
    pub fn detach(&self, session_id: &str) {
        let mut t = self.tables();
        let Some(handle) = t.sessions.remove(session_id) else {
            return;
        };
        if let Some(list) = t.users.get_mut(&handle.user_id) {
            list.retain(|h| h.session_id != session_id);
            if list.is_empty() {
                t.users.remove(&handle.user_id);
            }
        }
        t.streams.retain(|_, members| {
            members.retain(|h| h.session_id != session_id);
            !members.is_empty()
        });
    }

    /// Sessions this user has on this node.
    pub fn user_sessions(&self, user_id: &str) -> usize {
        self.tables().users.get(user_id).map_or(0, Vec::len)
    }

    /// Adds a session to a stream's members.
    pub fn join(&self, key: &str, session_id: &str) {
        let mut t = self.tables();
        let Some(handle) = t.sessions.get(session_id).cloned() else {
            return;
        };
        let members = t.streams.entry(key.to_owned()).or_default();
        if !members.iter().any(|h| h.session_id == session_id) {
            members.push(handle);
        }
    }

    /// Removes a session from a stream's members.
    pub fn leave(&self, key: &str, session_id: &str) {
        let mut t = self.tables();
        if let Some(members) = t.streams.get_mut(key) {
            members.retain(|h| h.session_id != session_id);
            if members.is_empty() {
                t.streams.remove(key);
            }
        }
    }

    /// Hands `envelope` to this node's sessions on `route`.
    pub fn deliver(&self, route: &Route, envelope: &Outgoing) {
        // Collected under the lock, pushed after it: a push may kick, and
        // nothing here should wait with the tables held.
        let targets: Vec<Arc<Handle>> = {
            let t = self.tables();
            match route {
                Route::Sessions(ids) => ids.iter().filter_map(|id| t.sessions.get(id).cloned()).collect(),
                Route::User(user) => t.users.get(user).cloned().unwrap_or_default(),
                Route::Stream { key, except } => t
                    .streams
                    .get(key)
                    .map(|members| {
                        members
                            .iter()
                            .filter(|h| except.as_deref() != Some(h.session_id.as_str()))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default(),
                Route::StreamMembers { key, sessions } => t
                    .streams
                    .get(key)
                    .map(|members| {
                        members
                            .iter()
                            .filter(|h| sessions.contains(&h.session_id))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        };
        for handle in targets {
            handle.push(envelope.clone());
        }
    }
}
