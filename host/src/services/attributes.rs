//! `elements:platform/attributes`: an Element reads its effective attributes.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::elements::platform::attributes as wit;
use super::{DeployContext, HostService, ServiceConfigError, ServiceDeps, ServicesError};
use crate::instance::{RequestInfo, RequestState};

/// The attributes service.
#[derive(Default)]
pub struct AttributesService;

/// One instance's attributes (shared, read-only).
pub struct Instance(Arc<BTreeMap<String, String>>);

impl HostService for AttributesService {
    type Deployed = Arc<BTreeMap<String, String>>;
    type Instance = Instance;

    fn start(_deps: &ServiceDeps) -> Result<AttributesService, ServicesError> {
        Ok(AttributesService)
    }

    fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        wit::add_to_linker::<RequestState, HasSelf<Instance>>(linker, |state| &mut state.services.attributes)
    }

    fn deploy(&self, element: &DeployContext<'_>) -> Result<Self::Deployed, ServiceConfigError> {
        Ok(element.attributes.clone())
    }

    fn prepare(&self, deployed: &Self::Deployed, _request: &RequestInfo) -> Instance {
        Instance(deployed.clone())
    }

    fn renew(&self, _deployed: &Self::Deployed, instance: &mut Instance, _request: &RequestInfo) {
        // The Element's attributes: nothing of one request.
        let Instance(_) = instance;
    }
}

impl wit::Host for Instance {
    fn get(&mut self, name: String) -> Option<String> {
        self.0.get(&name).cloned()
    }

    fn list(&mut self) -> Vec<(String, String)> {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}
