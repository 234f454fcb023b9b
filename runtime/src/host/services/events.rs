//! `elements:platform/events`: Elements publish named JSON events on the
//! runtime's [`EventBus`]. Delivery to subscribers is asynchronous, so a slow
//! or failing subscriber never affects the publisher.

use std::collections::BTreeSet;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::elements::platform::events as wit;
use super::{DeployContext, HostService, ServiceConfigError};
use crate::events::EventBus;
use crate::host::{RequestInfo, RequestState};

/// Names under this prefix belong to the server and its bundled Elements.
pub const RESERVED_PREFIX: &str = "dev.getelements.";
/// Largest payload an Element may publish, in bytes.
const MAX_PAYLOAD: usize = 256 * 1024;

/// The events service.
pub struct EventsService {
    bus: Arc<EventBus>,
    reserved_publishers: Arc<BTreeSet<String>>,
}

impl EventsService {
    /// Publishing on `bus`; only Elements named in `reserved_publishers` may
    /// publish names under [`RESERVED_PREFIX`].
    pub fn new(bus: Arc<EventBus>, reserved_publishers: BTreeSet<String>) -> EventsService {
        EventsService {
            bus,
            reserved_publishers: Arc::new(reserved_publishers),
        }
    }
}

/// One Element's publisher.
#[derive(Clone)]
pub struct Publisher {
    bus: Arc<EventBus>,
    may_use_reserved: bool,
}

impl HostService for EventsService {
    type Deployed = Publisher;
    type Instance = Publisher;

    fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        wit::add_to_linker::<RequestState, HasSelf<Publisher>>(linker, |state| &mut state.services.events)
    }

    fn deploy(&self, element: &DeployContext<'_>) -> Result<Publisher, ServiceConfigError> {
        Ok(Publisher {
            bus: self.bus.clone(),
            may_use_reserved: self.reserved_publishers.contains(&**element.name),
        })
    }

    fn prepare(&self, deployed: &Publisher, _request: &RequestInfo) -> Publisher {
        deployed.clone()
    }
}

/// Checks an event name: dotted segments of lowercase letters, digits, `_`
/// and `-`, at most 128 bytes.
pub fn validate_event_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid event name {name:?}: use dotted segments of lowercase letters, digits, '_' and '-'"
        ))
    }
}

impl wit::Host for Publisher {
    fn publish(&mut self, name: String, payload: String) -> Result<(), String> {
        validate_event_name(&name)?;
        if name.starts_with(RESERVED_PREFIX) && !self.may_use_reserved {
            return Err(format!(
                "event names under {RESERVED_PREFIX:?} are reserved for the server"
            ));
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(format!("the payload is larger than {MAX_PAYLOAD} bytes"));
        }
        let payload =
            serde_json::from_str(&payload).map_err(|e| format!("the payload is not valid JSON: {e}"))?;
        self.bus.publish(&name, payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names() {
        assert!(validate_event_name("game.match.ended").is_ok());
        assert!(validate_event_name("leaderboard.score_posted").is_ok());
        for bad in ["", "Game.x", "a..b", ".a", "a.", "a b", "a/b"] {
            assert!(validate_event_name(bad).is_err(), "{bad:?}");
        }
    }
}
