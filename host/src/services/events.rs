//! `elements:platform/events`: Elements publish named JSON events on the
//! runtime's [`EventBus`]. Delivery to subscribers is asynchronous, so a slow
//! or failing subscriber never affects the publisher.
//!
//! An Element publishes under its own name (`NAME.`) freely and elsewhere
//! only with an `events.publish:PATTERN` grant. Every request has a budget
//! of events shared with everything its events set off (see
//! [`crate::events::Chain`]), so no set of Elements can amplify events
//! without bound.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::elements::platform::events::{self as wit, Error};
use super::{DeployContext, HostService, ServiceConfigError, ServiceDeps, ServicesError};
use crate::events::{Chain, EVENTS_PER_CHAIN, EventBus, MAX_DEPTH};
use crate::instance::{RequestInfo, RequestState};
use elements_config::grants::{Grants, validate_event_name};

/// Largest payload an Element may publish, in bytes.
const MAX_PAYLOAD: usize = 256 * 1024;

/// The events service.
pub struct EventsService {
    bus: Arc<EventBus>,
}

impl EventsService {
    /// Publishing on `bus`.
    pub fn new(bus: Arc<EventBus>) -> EventsService {
        EventsService { bus }
    }
}

/// One Element's publisher.
#[derive(Clone)]
pub struct Publisher {
    bus: Arc<EventBus>,
    grants: Arc<Grants>,
}

/// One instance's publisher: the Element's, in the request's chain.
pub struct Instance {
    publisher: Publisher,
    /// Made at the first publish when the request starts the chain.
    chain: Option<Chain>,
}

impl HostService for EventsService {
    type Deployed = Publisher;
    type Instance = Instance;

    fn start(deps: &ServiceDeps) -> Result<EventsService, ServicesError> {
        Ok(EventsService::new(deps.events.clone()))
    }

    fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        wit::add_to_linker::<RequestState, HasSelf<Instance>>(linker, |state| &mut state.services.events)
    }

    fn deploy(&self, element: &DeployContext<'_>) -> Result<Publisher, ServiceConfigError> {
        Ok(Publisher {
            bus: self.bus.clone(),
            grants: element.grants.clone(),
        })
    }

    fn prepare(&self, deployed: &Publisher, request: &RequestInfo) -> Instance {
        Instance {
            publisher: deployed.clone(),
            chain: request.chain.clone(),
        }
    }

    fn renew(&self, _deployed: &Publisher, instance: &mut Instance, request: &RequestInfo) {
        let Instance { publisher: _, chain } = instance;
        *chain = request.chain.clone();
    }
}

impl wit::Host for Instance {
    fn publish(&mut self, name: String, payload: String) -> Result<(), Error> {
        validate_event_name(&name).map_err(Error::Invalid)?;
        self.publisher
            .grants
            .may_publish(&name)
            .map_err(|e| Error::Forbidden(e.to_string()))?;
        if payload.len() > MAX_PAYLOAD {
            return Err(Error::Invalid(format!(
                "the payload is larger than {MAX_PAYLOAD} bytes"
            )));
        }
        let payload = serde_json::from_str(&payload)
            .map_err(|e| Error::Invalid(format!("the payload is not valid JSON: {e}")))?;
        let chain = self.chain.get_or_insert_with(Chain::root);
        if chain.depth >= MAX_DEPTH {
            return Err(Error::LimitExceeded(format!(
                "this event handler runs {MAX_DEPTH} deliveries deep; events it publishes would loop"
            )));
        }
        if !chain.take() {
            return Err(Error::LimitExceeded(format!(
                "a request, with everything its events set off, publishes at most {EVENTS_PER_CHAIN} events"
            )));
        }
        self.publisher.bus.publish_in(&name, payload, chain.clone());
        Ok(())
    }
}
