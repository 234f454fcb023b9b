//! Host services: the WIT interfaces of `elements:platform` that Elements
//! import. Each lives in its own module behind [`HostService`], whose three
//! methods are the three moments of a service's life:
//!
//! 1. startup: [`HostService::add_to_linker`] adds its bindings to the linker;
//! 2. deploy: [`HostService::deploy`] validates the Element's configuration
//!    and builds per-Element state, so a bad configuration fails the deploy
//!    and not a request;
//! 3. request: [`HostService::prepare`] builds the state one instance uses.
//!
//! Adding a service means adding a module, a field to each of [`Services`],
//! [`DeployedServices`] and [`InstanceServices`], and a line to each function
//! below.

pub mod attributes;
pub mod log;

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::Linker;

use super::{RequestInfo, RequestState};
use crate::element::log_buffer::LogBuffer;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "elements:platform/imports",
});

/// What a service sees of an Element being deployed.
pub struct DeployContext<'a> {
    /// The Element's name.
    pub name: &'a Arc<str>,
    /// The Element's effective attributes.
    pub attributes: &'a Arc<BTreeMap<String, String>>,
    /// The Element's log.
    pub log: &'a Arc<LogBuffer>,
}

/// A service refused an Element's configuration.
#[derive(Debug, thiserror::Error)]
#[error("{service}: {message}")]
pub struct ServiceConfigError {
    /// The service.
    pub service: &'static str,
    /// What is wrong, naming the attribute.
    pub message: String,
}

/// One host service. See the module documentation.
pub trait HostService: Send + Sync + 'static {
    /// Per-Element state, built at deploy time.
    type Deployed: Send + Sync + 'static;
    /// Per-instance state, kept in the instance's store.
    type Instance: Send + 'static;

    /// Adds this service's interfaces to the linker.
    fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()>;

    /// Validates the Element's configuration and builds its state.
    fn deploy(&self, element: &DeployContext<'_>) -> Result<Self::Deployed, ServiceConfigError>;

    /// Builds the state of one instance serving `request`.
    fn prepare(&self, deployed: &Self::Deployed, request: &RequestInfo) -> Self::Instance;
}

/// Every host service, as configured at startup.
#[derive(Default)]
pub struct Services {
    log: log::LogService,
    attributes: attributes::AttributesService,
}

/// Every service's state for one deployed Element.
pub struct DeployedServices {
    log: <log::LogService as HostService>::Deployed,
    attributes: <attributes::AttributesService as HostService>::Deployed,
}

/// Every service's state for one instance.
pub struct InstanceServices {
    log: <log::LogService as HostService>::Instance,
    attributes: <attributes::AttributesService as HostService>::Instance,
}

/// Adds every service's interfaces to the linker.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    log::LogService::add_to_linker(linker)?;
    attributes::AttributesService::add_to_linker(linker)?;
    Ok(())
}

impl Services {
    /// Builds every service's per-Element state; the first refusal fails the deploy.
    pub fn deploy(&self, element: &DeployContext<'_>) -> Result<DeployedServices, ServiceConfigError> {
        Ok(DeployedServices {
            log: self.log.deploy(element)?,
            attributes: self.attributes.deploy(element)?,
        })
    }

    /// Builds every service's state for one instance.
    pub fn prepare(&self, deployed: &DeployedServices, request: &RequestInfo) -> InstanceServices {
        InstanceServices {
            log: self.log.prepare(&deployed.log, request),
            attributes: self.attributes.prepare(&deployed.attributes, request),
        }
    }
}
