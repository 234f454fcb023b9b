//! Delivers events from the bus to the Elements that subscribe to them. Each
//! delivery is its own task, so a slow or failing subscriber delays nobody.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast::error::RecvError;

use crate::registry::Registry;
use elements_host::element::Host;
use elements_host::events::EventBus;
use elements_host::instance::RequestInfo;

/// Starts the dispatcher task.
pub fn start(bus: &EventBus, registry: Arc<Registry>, host: Arc<Host>) {
    let mut receiver = bus.subscribe();
    let deliveries = AtomicU64::new(0);
    tokio::spawn(async move {
        loop {
            let event = match receiver.recv().await {
                Ok(event) => Arc::new(event),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "event dispatcher fell behind; events were dropped");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            for element in registry.all() {
                if !element.subscribes_to(&event.name) {
                    continue;
                }
                let (event, host) = (event.clone(), host.clone());
                let n = deliveries.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let info = RequestInfo::for_event(format!("event-{n}"), &event);
                    let _ = element.deliver(&host.services, &event, info).await;
                });
            }
        }
    });
}
