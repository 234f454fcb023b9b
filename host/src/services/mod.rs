//! Host services: the WIT interfaces of `elements:platform` that Elements
//! import. Each lives in its own module behind [`HostService`], whose three
//! methods are the three moments of a service's life:
//!
//! 1. startup: [`HostService::start`] builds the service from what the
//!    composition root hands down, and [`HostService::add_to_linker`] adds
//!    its bindings to the linker;
//! 2. deploy: [`HostService::deploy`] validates the Element's configuration
//!    and builds per-Element state, so a bad configuration fails the deploy
//!    and not a request;
//! 3. request: [`HostService::prepare`] builds the state one instance uses.
//!
//! A service with operator settings that can change while the server runs
//! also overrides [`HostService::check_settings`] and
//! [`HostService::reconfigure`]; the others keep the defaults.
//!
//! Adding a service is adding its module and one line to the
//! `host_services!` list below, which declares [`Services`],
//! [`DeployedServices`] and [`InstanceServices`] and the functions over them.

pub mod attributes;
pub mod documents;
pub mod events;
pub mod http;
pub mod identity;
pub mod log;
pub mod mail;
pub mod realtime;

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
        "elements:platform/verification": async,
        "elements:platform/credentials": async,
        "elements:platform/realtime": async,
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
pub trait HostService: Sized + Send + Sync + 'static {
    /// Per-Element state, built at deploy time.
    type Deployed: Send + Sync + 'static;
    /// Per-instance state, kept in the instance's store.
    type Instance: Send + 'static;

    /// Builds the service at startup.
    fn start(deps: &ServiceDeps) -> Result<Self, ServicesError>;

    /// Adds this service's interfaces to the linker.
    fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()>;

    /// Checks new operator settings without applying them, so that one
    /// service's refusal leaves every service as it was. By default there
    /// is nothing to check.
    fn check_settings(_settings: &ServicesConfig) -> Result<(), ServicesError> {
        Ok(())
    }

    /// Applies new operator settings (already checked) to requests from
    /// now on. By default there is nothing to apply.
    fn reconfigure(&self, _settings: &ServicesConfig) -> Result<(), ServicesError> {
        Ok(())
    }

    /// Validates the Element's configuration and builds its state.
    fn deploy(&self, element: &DeployContext<'_>) -> Result<Self::Deployed, ServiceConfigError>;

    /// Builds the state of one instance serving `request`.
    fn prepare(&self, deployed: &Self::Deployed, request: &RequestInfo) -> Self::Instance;

    /// Readies the state of a reused instance, which served an earlier
    /// request of the same deployment, for `request`: what belongs to one
    /// request is reset, what belongs to the Element is kept rather than
    /// cloned again (on a reused instance, [`prepare`](Self::prepare)'s
    /// reference counts were a measurable part of the request). By default
    /// the state is prepared anew. An override destructures the state
    /// without `..`, so a field added later can't be forgotten here.
    fn renew(&self, deployed: &Self::Deployed, instance: &mut Self::Instance, request: &RequestInfo) {
        *instance = self.prepare(deployed, request);
    }
}

/// Declares the set of host services: one `field: Type` line each.
macro_rules! host_services {
    ($($field:ident: $service:ty),* $(,)?) => {
        /// Every host service, as configured at startup.
        pub struct Services {
            $($field: $service,)*
        }

        /// Every service's state for one deployed Element.
        pub struct DeployedServices {
            $($field: <$service as HostService>::Deployed,)*
        }

        /// Every service's state for one instance.
        pub struct InstanceServices {
            $(pub(crate) $field: <$service as HostService>::Instance,)*
        }

        /// Adds every service's interfaces to the linker.
        pub fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
            $(<$service as HostService>::add_to_linker(linker)?;)*
            Ok(())
        }

        impl Services {
            /// Every service, configured.
            pub fn new(deps: ServiceDeps) -> Result<Services, ServicesError> {
                Ok(Services {
                    $($field: <$service as HostService>::start(&deps)?,)*
                })
            }

            /// Applies new operator settings to every service, for requests
            /// from now on; settings a service refuses change nothing.
            pub fn reconfigure(&self, settings: &ServicesConfig) -> Result<(), ServicesError> {
                $(<$service as HostService>::check_settings(settings)?;)*
                $(HostService::reconfigure(&self.$field, settings)?;)*
                Ok(())
            }

            /// Builds every service's per-Element state; the first refusal
            /// fails the deploy.
            pub fn deploy(&self, element: &DeployContext<'_>) -> Result<DeployedServices, ServiceConfigError> {
                Ok(DeployedServices {
                    $($field: self.$field.deploy(element)?,)*
                })
            }

            /// Builds every service's state for one instance.
            pub fn prepare(&self, deployed: &DeployedServices, request: &RequestInfo) -> InstanceServices {
                InstanceServices {
                    $($field: self.$field.prepare(&deployed.$field, request),)*
                }
            }

            /// Readies a reused instance's state for `request` (see
            /// [`HostService::renew`]).
            pub fn renew(&self, deployed: &DeployedServices, instance: &mut InstanceServices, request: &RequestInfo) {
                $(self.$field.renew(&deployed.$field, &mut instance.$field, request);)*
            }
        }
    };
}

host_services! {
    log: log::LogService,
    attributes: attributes::AttributesService,
    documents: documents::DocumentsService,
    events: events::EventsService,
    http: http::HttpService,
    mail: mail::MailService,
    identity: identity::IdentityHostService,
    realtime: realtime::RealtimeService,
}

/// What the services are built from at startup.
pub struct ServiceDeps {
    /// The document store.
    pub store: Arc<dyn DocumentStore>,
    /// The event bus.
    pub events: Arc<EventBus>,
    /// Users, profiles and sessions.
    pub identity: Arc<elements_identity::IdentityService>,
    /// The realtime hub (sockets, rooms, matches, notifications).
    pub realtime: Arc<elements_realtime::Hub>,
    /// The operator's settings of the services.
    pub settings: ServicesConfig,
    /// Canned outbound HTTP answers in place of the network (tests only).
    pub outbound_stub: Option<Arc<dyn http::OutboundStub>>,
}

/// Service settings the services can't use.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    /// The mail settings.
    #[error(transparent)]
    Mail(#[from] mail::MailConfigError),
}
