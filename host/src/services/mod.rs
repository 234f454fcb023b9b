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
pub mod documents;
pub mod events;
pub mod http;
pub mod identity;
pub mod log;
pub mod mail;

use std::collections::BTreeMap;
use std::sync::Arc;

use elements_store::DocumentStore;
use wasmtime::component::Linker;

use crate::events::EventBus;
use crate::instance::{RequestInfo, RequestState};
use crate::log_buffer::LogBuffer;
use elements_config::ServicesConfig;
use elements_config::grants::Grants;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "elements:platform/imports",
    imports: {
        "elements:platform/documents": async,
        "elements:platform/mail": async,
        "elements:platform/identity": async,
    },
});

/// What a service sees of an Element being deployed.
pub struct DeployContext<'a> {
    /// The Element's name.
    pub name: &'a Arc<str>,
    /// The application it is deployed for, if any.
    pub application: Option<&'a str>,
    /// The Element's effective attributes.
    pub attributes: &'a Arc<BTreeMap<String, String>>,
    /// The Element's log.
    pub log: &'a Arc<LogBuffer>,
    /// The grants the Element holds (all requested and approved).
    pub grants: &'a Arc<Grants>,
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
pub struct Services {
    log: log::LogService,
    attributes: attributes::AttributesService,
    documents: documents::DocumentsService,
    events: events::EventsService,
    http: http::HttpService,
    mail: mail::MailService,
    identity: identity::IdentityHostService,
}

/// Every service's state for one deployed Element.
pub struct DeployedServices {
    log: <log::LogService as HostService>::Deployed,
    attributes: <attributes::AttributesService as HostService>::Deployed,
    documents: <documents::DocumentsService as HostService>::Deployed,
    events: <events::EventsService as HostService>::Deployed,
    http: <http::HttpService as HostService>::Deployed,
    mail: <mail::MailService as HostService>::Deployed,
    identity: <identity::IdentityHostService as HostService>::Deployed,
}

/// Every service's state for one instance.
pub struct InstanceServices {
    pub(crate) log: <log::LogService as HostService>::Instance,
    pub(crate) attributes: <attributes::AttributesService as HostService>::Instance,
    pub(crate) documents: <documents::DocumentsService as HostService>::Instance,
    pub(crate) events: <events::EventsService as HostService>::Instance,
    pub(crate) http: <http::HttpService as HostService>::Instance,
    pub(crate) mail: <mail::MailService as HostService>::Instance,
    pub(crate) identity: <identity::IdentityHostService as HostService>::Instance,
}

/// Adds every service's interfaces to the linker.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    log::LogService::add_to_linker(linker)?;
    attributes::AttributesService::add_to_linker(linker)?;
    documents::DocumentsService::add_to_linker(linker)?;
    events::EventsService::add_to_linker(linker)?;
    http::HttpService::add_to_linker(linker)?;
    mail::MailService::add_to_linker(linker)?;
    identity::IdentityHostService::add_to_linker(linker)?;
    Ok(())
}

/// What the services are built from at startup.
pub struct ServiceDeps {
    /// The document store.
    pub store: Arc<dyn DocumentStore>,
    /// The event bus.
    pub events: Arc<EventBus>,
    /// Users, profiles and sessions.
    pub identity: Arc<elements_identity::IdentityService>,
    /// The operator's settings of the services.
    pub settings: ServicesConfig,
}

/// Service settings the services can't use.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    /// The mail settings.
    #[error(transparent)]
    Mail(#[from] mail::MailConfigError),
}

impl Services {
    /// Every service, configured.
    pub fn new(deps: ServiceDeps) -> Result<Services, ServicesError> {
        Ok(Services {
            log: log::LogService,
            attributes: attributes::AttributesService,
            documents: documents::DocumentsService::new(deps.store),
            events: events::EventsService::new(deps.events),
            http: http::HttpService::new(deps.settings.http.clone()),
            mail: mail::MailService::new(&deps.settings.mail)?,
            identity: identity::IdentityHostService::new(deps.identity),
        })
    }

    /// Applies new operator settings to every service, for requests from
    /// now on; settings a service refuses change nothing.
    pub fn reconfigure(&self, settings: &ServicesConfig) -> Result<(), ServicesError> {
        // Check everything first, so a refusal leaves every service as it was.
        let relay = mail::Relay::new(&settings.mail)?;
        drop(relay);
        self.mail.reconfigure(&settings.mail)?;
        self.http.reconfigure(settings.http.clone());
        Ok(())
    }

    /// Builds every service's per-Element state; the first refusal fails the deploy.
    pub fn deploy(&self, element: &DeployContext<'_>) -> Result<DeployedServices, ServiceConfigError> {
        Ok(DeployedServices {
            log: self.log.deploy(element)?,
            attributes: self.attributes.deploy(element)?,
            documents: self.documents.deploy(element)?,
            events: self.events.deploy(element)?,
            http: self.http.deploy(element)?,
            mail: self.mail.deploy(element)?,
            identity: self.identity.deploy(element)?,
        })
    }

    /// Builds every service's state for one instance.
    pub fn prepare(&self, deployed: &DeployedServices, request: &RequestInfo) -> InstanceServices {
        InstanceServices {
            log: self.log.prepare(&deployed.log, request),
            attributes: self.attributes.prepare(&deployed.attributes, request),
            documents: self.documents.prepare(&deployed.documents, request),
            events: self.events.prepare(&deployed.events, request),
            http: self.http.prepare(&deployed.http, request),
            mail: self.mail.prepare(&deployed.mail, request),
            identity: self.identity.prepare(&deployed.identity, request),
        }
    }
}
