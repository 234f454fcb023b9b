//! Delivering bus events to an Element that subscribes to them: its manifest
//! lists names under `[events] subscribe`, and it exports
//! `elements:platform/event-handler`. Each event runs in a fresh instance
//! with the Element's usual limits.

use std::time::Instant;

use wasmtime::component::InstancePre;

use super::Element;
use super::invoke::InvokeError;
use super::shape;
use crate::events::Event;
use crate::instance::{RequestInfo, RequestState};
use crate::log_buffer::{Level, Source};
use crate::services::Services;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "elements:platform/subscriber",
    exports: { default: async },
});

pub use Subscriber as SubscriberBindings;
pub use SubscriberPre as SubscriberBindingsPre;

/// Whether `name` matches a subscription: the exact name, or a prefix
/// ending in `*` (`game.*`, `dev.getelements.*`).
pub fn matches(subscription: &str, name: &str) -> bool {
    match subscription.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => subscription == name,
    }
}

/// The export's interface, named without its version.
pub const INTERFACE: &str = "elements:platform/event-handler";

/// Checks, at deploy, that the component's `event-handler` export has the shape
/// this server calls (see [`super::shape`]).
pub fn check_shape<T>(pre: &InstancePre<T>) -> Result<(), String> {
    shape::check_func::<(String, String), (Result<(), String>,), T>(pre, INTERFACE, "handle-event")
}

impl Element {
    /// Whether this Element subscribes to events named `name`.
    pub fn subscribes_to(&self, name: &str) -> bool {
        self.subscriber.is_some() && self.subscriptions.iter().any(|s| matches(s, name))
    }

    /// Whether this Element subscribes to any events at all.
    pub fn subscribes(&self) -> bool {
        self.subscriber.is_some() && !self.subscriptions.is_empty()
    }

    /// Runs the Element's event handler for `event`. Failures are logged to
    /// the Element's log and returned; they never reach the publisher.
    pub async fn deliver(
        &self,
        services: &Services,
        event: &Event,
        info: RequestInfo,
    ) -> Result<(), InvokeError> {
        let Some(pre) = &self.subscriber else {
            return Ok(());
        };
        // An event handler is an instance like any other: it needs a permit.
        let result = match self.take_slot() {
            Ok(_slot) => self.run_handler(pre, services, event, &info).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            self.log.push(
                Level::Error,
                Source::Host,
                Some(&info.request_id),
                &format!("event {} not handled: {e}", event.name),
            );
            tracing::warn!(element = %self.name, "event {} not handled: {e}", event.name);
        }
        result
    }

    async fn run_handler(
        &self,
        pre: &SubscriberBindingsPre<RequestState>,
        services: &Services,
        event: &Event,
        info: &RequestInfo,
    ) -> Result<(), InvokeError> {
        let deadline = Instant::now() + self.limits.timeout;
        let mut store = self.new_store(services, info, deadline);
        let run = async {
            let subscriber = pre.instantiate_async(&mut store).await?;
            subscriber
                .elements_platform_event_handler()
                .call_handle_event(&mut store, &event.name, &event.payload.to_string())
                .await
        };
        match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(message))) => Err(InvokeError::BadResponse(format!(
                "event handler failed: {message}"
            ))),
            Ok(Err(e)) => Err(self.classify(&store, e)),
            Err(_) => Err(InvokeError::Timeout(self.limits.timeout.as_millis())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn subscription_patterns() {
        assert!(matches("game.ended", "game.ended"));
        assert!(!matches("game.ended", "game.ended.late"));
        assert!(matches("game.*", "game.ended"));
        assert!(matches("*", "anything"));
        assert!(!matches("game.*", "gamex"));
    }
}
