//! `elements:platform/realtime`: Elements on the realtime socket. Through
//! the hub ([`elements_realtime::Hub`]) an Element notifies users
//! (`realtime.notify`), posts to chat rooms (`realtime.rooms`) and runs
//! matches (`realtime.match`); each needs its grant, and one request makes
//! at most [`MAX_CALLS`] calls. Whatever the hub delivers crosses nodes the
//! way players' own messages do.

use std::sync::Arc;

use elements_config::grants::Grant;
use elements_realtime::{Hub, NewNotification, RealtimeError};
use wasmtime::component::{HasSelf, Linker};

use super::elements::platform::realtime::{self as wit, Error, Notification};
use super::{DeployContext, HostService, ServiceConfigError, ServiceDeps, ServicesError};
use crate::instance::{RequestInfo, RequestState};

/// Most calls one request (event, match event) makes.
pub const MAX_CALLS: u32 = 100;
/// Most users one notification goes to.
pub const MAX_USERS: usize = 100;

/// The realtime service: the hub every Element shares.
pub struct RealtimeService {
    hub: Arc<Hub>,
}

/// What one Element may do.
pub struct Deployed {
    name: Arc<str>,
    notify: bool,
    rooms: bool,
    matches: bool,
}

/// One instance's state.
pub struct Instance {
    hub: Arc<Hub>,
    name: Arc<str>,
    notify: bool,
    rooms: bool,
    matches: bool,
    calls: u32,
}

impl HostService for RealtimeService {
    type Deployed = Deployed;
    type Instance = Instance;

    fn start(deps: &ServiceDeps) -> Result<RealtimeService, ServicesError> {
        Ok(RealtimeService {
            hub: deps.realtime.clone(),
        })
    }

    fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        wit::add_to_linker::<RequestState, HasSelf<Instance>>(linker, |state| &mut state.services.realtime)
    }

    fn deploy(&self, element: &DeployContext<'_>) -> Result<Deployed, ServiceConfigError> {
        Ok(Deployed {
            name: element.name.clone(),
            notify: element.grants.has(&Grant::RealtimeNotify),
            rooms: element.grants.has(&Grant::RealtimeRooms),
            matches: element.grants.has(&Grant::RealtimeMatch),
        })
    }

    fn prepare(&self, deployed: &Deployed, _request: &RequestInfo) -> Instance {
        Instance {
            hub: self.hub.clone(),
            name: deployed.name.clone(),
            notify: deployed.notify,
            rooms: deployed.rooms,
            matches: deployed.matches,
            calls: 0,
        }
    }

    fn renew(&self, _deployed: &Deployed, instance: &mut Instance, _request: &RequestInfo) {
        let Instance {
            hub: _,
            name: _,
            notify: _,
            rooms: _,
            matches: _,
            calls,
        } = instance;
        *calls = 0;
    }
}

fn forbidden(grant: Grant) -> Error {
    Error::Forbidden(format!(
        "this Element lacks the grant {grant}; the operator approves grants the manifest requests"
    ))
}

fn hub_error(e: RealtimeError) -> Error {
    match e {
        RealtimeError::Unavailable(m) => Error::Unavailable(m),
        other => Error::Invalid(other.to_string()),
    }
}

impl Instance {
    /// Counts a call, refusing past the per-request cap.
    fn call(&mut self, allowed: bool, grant: Grant) -> Result<(), Error> {
        if !allowed {
            return Err(forbidden(grant));
        }
        if self.calls >= MAX_CALLS {
            return Err(Error::LimitExceeded(format!(
                "one request makes at most {MAX_CALLS} realtime calls"
            )));
        }
        self.calls += 1;
        Ok(())
    }
}

impl wit::Host for Instance {
    async fn notify(&mut self, user_ids: Vec<String>, notification: Notification) -> Result<(), Error> {
        self.call(self.notify, Grant::RealtimeNotify)?;
        if user_ids.is_empty() || user_ids.len() > MAX_USERS {
            return Err(Error::LimitExceeded(format!(
                "a notification goes to 1 to {MAX_USERS} users"
            )));
        }
        if notification.code < 1 {
            return Err(Error::Invalid(
                "notification codes 0 and below are the server's: use 1 and above".into(),
            ));
        }
        if notification.subject.len() > 1024
            || notification.content.len() > self.hub.limits().max_message_bytes
        {
            return Err(Error::Invalid(format!(
                "a notification's subject is at most 1024 bytes and its content at most {} bytes",
                self.hub.limits().max_message_bytes
            )));
        }
        let content = serde_json::from_str(&notification.content)
            .map_err(|_| Error::Invalid("a notification's content must be a JSON object".into()))?;
        let new = NewNotification {
            subject: notification.subject,
            content,
            code: notification.code,
            sender_id: String::new(),
            persistent: notification.persistent,
        };
        self.hub.notify(&user_ids, &new).await.map_err(hub_error)
    }

    async fn send_to_room(&mut self, room: String, content: String) -> Result<String, Error> {
        self.call(self.rooms, Grant::RealtimeRooms)?;
        self.hub
            .send_to_room(&self.name, &room, &content)
            .await
            .map_err(hub_error)
    }

    async fn create_match(&mut self) -> Result<String, Error> {
        self.call(self.matches, Grant::RealtimeMatch)?;
        Ok(self.hub.new_element_match(&self.name))
    }

    async fn send_match_data(
        &mut self,
        match_id: String,
        op_code: i64,
        data: Vec<u8>,
        session_ids: Option<Vec<String>>,
    ) -> Result<(), Error> {
        self.call(self.matches, Grant::RealtimeMatch)?;
        self.hub
            .send_match_data(&self.name, &match_id, op_code, &data, session_ids.as_deref())
            .map_err(hub_error)
    }
}
