//! An Element: a compiled, validated component with its configuration,
//! ready to serve requests ([`Element::serve`], in [`invoke`]).

pub mod compile;
pub mod events;
pub mod handler;
pub mod invoke;
pub mod manifest;
pub mod matches;
mod shape;

/// Where Elements are mounted: an Element with prefix `p` serves
/// `/app/rest/p/...`.
pub const ELEMENT_ROOT: &str = "/app/rest/";

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::Linker;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::instance::RequestState;
use crate::log_buffer::{Level, LogBuffer, Source};
use crate::services::{DeployContext, DeployedServices, ServiceConfigError, Services};
use compile::{CompileCache, Outcome};
use elements_config::grants::{Grant, Grants};
use elements_config::{Limits, validate_limits};
use manifest::{AttributeSpec, Manifest, ManifestError, validate_name};

/// What every Element deploy needs from the server.
pub struct Host {
    /// The engine Elements are compiled for.
    pub engine: Engine,
    /// Every interface the host provides.
    pub linker: Linker<RequestState>,
    /// The host services.
    pub services: Services,
    /// The compiled-code cache.
    pub cache: CompileCache,
    /// Server-wide default limits.
    pub limits: Limits,
    /// Operator attributes for every Element.
    pub attributes: BTreeMap<String, String>,
    /// Operator attributes by Element name.
    pub element_attributes: BTreeMap<String, BTreeMap<String, String>>,
    /// The wall clock Elements see.
    pub clock: crate::clock::OffsetClock,
    /// Grants the operator approved in the configuration, by Element name.
    pub element_grants: BTreeMap<String, BTreeSet<Grant>>,
    /// Bounds on deploys.
    pub deploy: elements_config::DeploySettings,
}

/// Why an Element could not be deployed. The message is meant for operators.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The Element's name is not usable.
    #[error("invalid Element name: {0}")]
    InvalidName(String),
    /// The manifest is not usable.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A limit is out of range.
    #[error("invalid limits: {0}")]
    Limits(String),
    /// The component is over a bound of what a deploy compiles.
    #[error("too large to deploy: {0}")]
    TooLarge(String),
    /// Compiling and validating took longer than the deploy's time limit.
    #[error("compiling took longer than the limit of {0:?} (compile_timeout_ms)")]
    CompileTimeout(std::time::Duration),
    /// Every compile slot stayed busy for the deploy's whole time limit.
    #[error("no compile slot came free within {0:?}: other deploys are compiling; try again")]
    Busy(std::time::Duration),
    /// A newer deploy of the same name (or its removal) began before this
    /// one finished; the newer one decides what serves.
    #[error("superseded by a newer deploy of the same Element")]
    Superseded,
    /// The bytes are not a WebAssembly component wasmtime can compile.
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    /// The component imports something the host does not provide.
    #[error("imports what the host does not provide: {0}")]
    UnknownImport(String),
    /// The component exports neither `elements:platform/request-handler`
    /// nor `wasi:http/incoming-handler`.
    #[error(
        "exports no HTTP handler (wasi:http/incoming-handler@0.2.x, or elements:platform/request-handler): {0}"
    )]
    MissingHandler(String),
    /// The manifest subscribes to events but the component does not export
    /// `elements:platform/event-handler`.
    #[error("subscribes to events but does not export elements:platform/event-handler: {0}")]
    MissingEventHandler(String),
    /// The component exports an `elements:platform` interface in a shape
    /// this server does not call: it was built with another release's SDK
    /// or WIT.
    #[error(
        "its {export} export is not this server's (build the Element with this release's elements-sdk): {why}"
    )]
    ForeignExport {
        /// The interface, without its version.
        export: &'static str,
        /// What does not match.
        why: String,
    },
    /// A required attribute has no value.
    #[error("required attribute {0:?} has no value")]
    MissingAttribute(String),
    /// An attribute's value is not of its declared kind or range.
    #[error("attribute {0:?} {1}")]
    InvalidAttribute(String, String),
    /// The manifest requests grants the operator has not approved.
    #[error("requests grants the operator has not approved: {}; approve them in the configuration \
             ([elements.NAME] grants), the admin API or the portal", .0.join(", "))]
    GrantsNotApproved(Vec<String>),
    /// A host service refused the configuration.
    #[error(transparent)]
    Service(#[from] ServiceConfigError),
    /// The Element could not be mounted, e.g. its prefix is taken.
    #[error("cannot mount: {0}")]
    Mount(String),
}

/// What a deploy is made of: the component, its manifest, and what the
/// deployment adds (attribute values over the manifest's, the application it
/// is deployed for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementSource {
    /// The component (binary or text format).
    pub component: Arc<[u8]>,
    /// SHA-256 of `component`, lowercase hex.
    pub hash: String,
    /// The manifest's text, if any.
    pub manifest: Option<String>,
    /// Deployment attribute values, over the manifest's `[values]`.
    pub values: BTreeMap<String, String>,
    /// The application the Element is deployed for, if any.
    pub application: Option<String>,
    /// Grants the operator approved for this deployment (admin API,
    /// portal), over those of the configuration.
    pub grants: BTreeSet<Grant>,
}

impl ElementSource {
    /// A source of a component and its manifest.
    pub fn new(component: Vec<u8>, manifest: Option<String>) -> ElementSource {
        ElementSource {
            hash: compile::content_hash(&component),
            component: component.into(),
            manifest,
            values: BTreeMap::new(),
            application: None,
            grants: BTreeSet::new(),
        }
    }
}

/// Paths below it are the host's calls into an Element; the front refuses
/// them from clients, so an Element can trust that a request there came from
/// the host.
pub const HOST_PATH_PREFIX: &str = "/.elements/";
/// Where the host calls an Element's Nakama RPC `ID`: `POST {RPC_PATH}ID`.
pub const RPC_PATH: &str = "/.elements/rpc/";

/// A deployed Element.
pub struct Element {
    /// The Element's name (its file name without `.wasm`).
    pub name: Arc<str>,
    /// Mount prefix below `/app/rest/`.
    pub prefix: String,
    /// SHA-256 of the component, lowercase hex.
    pub hash: String,
    /// Which deploy of this name this is (1, 2, ...), set by the deployer.
    pub version: u64,
    /// Effective per-request limits.
    pub limits: Limits,
    /// The application it is deployed for, if any.
    pub application: Option<String>,
    /// Declared attributes.
    pub attribute_specs: BTreeMap<String, AttributeSpec>,
    /// Effective attribute values.
    pub attributes: Arc<BTreeMap<String, String>>,
    /// The Element's log.
    pub log: Arc<LogBuffer>,
    /// When it was deployed.
    pub loaded_at: SystemTime,
    /// Whether the compiled code came from the cache.
    pub compile: Outcome,
    /// Event names (or `prefix.*` patterns) the Element subscribes to.
    pub subscriptions: Vec<String>,
    /// Core API extension routes the Element serves.
    pub core_routes: Vec<String>,
    /// Nakama RPC ids it serves (lowercase); the host calls its HTTP handler
    /// with `POST` [`RPC_PATH`]`ID` for each.
    pub rpcs: Vec<String>,
    /// The grants it holds.
    pub grants: Arc<Grants>,
    clock: crate::clock::OffsetClock,
    http: invoke::HttpExport,
    /// Whether instances are made without a fiber (see
    /// `Element::instantiates_inline`), as found at deploy.
    instantiate_inline: bool,
    subscriber: Option<events::SubscriberBindingsPre<RequestState>>,
    match_host: Option<matches::MatchHostBindingsPre<RequestState>>,
    services: DeployedServices,
    warm: Mutex<Vec<invoke::Warm>>,
    /// One permit per live instance (see [`Limits::max_concurrency`]).
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Element")
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl Element {
    /// Compiles (or loads from the cache), validates and configures an
    /// Element. CPU-heavy: call it off the async executor.
    pub fn deploy(
        host: &Host,
        name: &str,
        source: &ElementSource,
        log: Arc<LogBuffer>,
    ) -> Result<Element, DeployError> {
        validate_name("name", name).map_err(DeployError::InvalidName)?;
        let mut manifest = match &source.manifest {
            Some(text) => Manifest::parse(text)?,
            None => Manifest::default(),
        };
        manifest
            .values
            .extend(source.values.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(app) = &source.application {
            validate_name("application", app).map_err(DeployError::Mount)?;
        }
        let requested = manifest.requested_grants(name);
        let approved = host.element_grants.get(name);
        let missing: Vec<String> = requested
            .iter()
            .filter(|g| !source.grants.contains(g) && !approved.is_some_and(|a| a.contains(g)))
            .map(Grant::to_string)
            .collect();
        if !missing.is_empty() {
            return Err(DeployError::GrantsNotApproved(missing));
        }
        // An operator may approve more than the manifest asks (e.g. the host
        // of a URL attribute the operator changed); the Element holds both.
        let extra = approved.into_iter().flatten().chain(&source.grants).cloned();
        let grants = Arc::new(Grants::new(name, requested.into_iter().chain(extra)));
        host.limits
            .check_ceiling(&manifest.limits)
            .map_err(DeployError::Limits)?;
        let limits = host.limits.with(&manifest.limits);
        validate_limits(&limits).map_err(DeployError::Limits)?;
        let operator = host.element_attributes.get(name);
        let attributes = effective_attributes(&manifest, &host.attributes, operator)?;

        let hash = source.hash.clone();
        // Configuration errors first (cheap, and what an operator fixes);
        // then the bounds, before anything is compiled.
        let component = compile::within_bounds(
            &source.component,
            host.deploy.max_component_bytes,
            host.deploy.max_function_bytes,
        )
        .map_err(|e| match e {
            compile::BoundsError::TooLarge(why) => DeployError::TooLarge(why),
            compile::BoundsError::Invalid(why) => DeployError::Compile(why),
        })?;
        let (compiled, outcome) = host
            .cache
            .load_or_compile(&host.engine, &component, &hash)
            .map_err(|e| DeployError::Compile(format!("{e:#}")))?;
        let instance_pre = host
            .linker
            .instantiate_pre(&compiled)
            .map_err(|e| DeployError::UnknownImport(format!("{e:#}")))?;
        let subscriber = if manifest.events.subscribe.is_empty() {
            None
        } else {
            let pre = events::SubscriberBindingsPre::new(instance_pre.clone())
                .map_err(|e| DeployError::MissingEventHandler(format!("{e:#}")))?;
            events::check_shape(&instance_pre).map_err(|why| DeployError::ForeignExport {
                export: events::INTERFACE,
                why,
            })?;
            Some(pre)
        };
        // The match handler is optional: without it the Element runs no
        // matches, and players can't join any it names. One that is there
        // in another shape is a mistake to report, not a handler to skip.
        let match_host = match matches::MatchHostBindingsPre::new(instance_pre.clone())
            .map_err(|e| format!("{e:#}"))
            .and_then(|pre| matches::check_shape(&instance_pre).map(|()| pre))
        {
            Ok(pre) => Some(pre),
            Err(why) if shape::exports(&compiled, matches::INTERFACE) => {
                return Err(DeployError::ForeignExport {
                    export: matches::INTERFACE,
                    why,
                });
            }
            Err(_) => None,
        };
        // The one-call handler (the SDK's) when the component has it, else
        // the standard wasi:http proxy export (any wasi:http language).
        let one_call = handler::RequestHostBindingsPre::new(instance_pre.clone())
            .map_err(|e| format!("{e:#}"))
            .and_then(|pre| handler::check_shape(&instance_pre).map(|()| pre));
        let http = match one_call {
            Ok(pre) => invoke::HttpExport::OneCall(pre),
            Err(why) => match ProxyPre::new(instance_pre) {
                Ok(pre) => invoke::HttpExport::WasiHttp(pre),
                // Built with an SDK of another release: the export is
                // there, in a shape this server can't call.
                Err(_) if shape::exports(&compiled, handler::INTERFACE) => {
                    return Err(DeployError::ForeignExport {
                        export: handler::INTERFACE,
                        why,
                    });
                }
                Err(e) => return Err(DeployError::MissingHandler(format!("{e:#}"))),
            },
        };

        let name: Arc<str> = name.into();
        let attributes = Arc::new(attributes);
        let services = host.services.deploy(&DeployContext {
            name: &name,
            application: source.application.as_deref(),
            attributes: &attributes,
            log: &log,
            grants: &grants,
        })?;
        let mut element = Element {
            prefix: manifest.prefix.clone().unwrap_or_else(|| name.to_string()),
            name,
            hash,
            version: 0,
            application: source.application.clone(),
            attribute_specs: manifest.attributes,
            attributes,
            log,
            loaded_at: SystemTime::now(),
            compile: outcome,
            subscriptions: manifest.events.subscribe.clone(),
            core_routes: manifest.core_routes.clone(),
            rpcs: manifest
                .rpcs
                .iter()
                .filter_map(|id| elements_config::grants::rpc_id(id).ok())
                .collect(),
            grants,
            clock: host.clock,
            http,
            instantiate_inline: false,
            subscriber,
            match_host,
            services,
            warm: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(limits.max_concurrency as usize)),
            limits,
        };
        element.instantiate_inline =
            !compile::runs_code_when_instantiated(&component) && element.instantiates_inline(&host.services);
        element.log.push(
            Level::Info,
            Source::Host,
            None,
            &format!(
                "deployed {} ({}; serves HTTP through {}{})",
                &element.hash[..12],
                compile_note(&element.compile),
                match element.http {
                    invoke::HttpExport::OneCall(_) => "its one-call request-handler",
                    invoke::HttpExport::WasiHttp(_) => "wasi:http",
                },
                if element.instantiate_inline {
                    "; instances made without a fiber"
                } else {
                    ""
                }
            ),
        );
        Ok(element)
    }
}

fn compile_note(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Cached => "from the compiled cache".into(),
        Outcome::Compiled => "compiled".into(),
        Outcome::Recompiled(why) => format!("recompiled: cache entry {why}"),
    }
}

/// Declared defaults, overridden by operator attributes (all Elements, then
/// this Element), overridden by the deployment's values. Every required
/// attribute must end with a non-blank value, and every declared one with a
/// value of its declared kind.
fn effective_attributes(
    manifest: &Manifest,
    operator_all: &BTreeMap<String, String>,
    operator_element: Option<&BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>, DeployError> {
    let mut values: BTreeMap<String, String> = manifest
        .attributes
        .iter()
        .filter_map(|(name, spec)| spec.default.clone().map(|d| (name.clone(), d)))
        .collect();
    values.extend(operator_all.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(element) = operator_element {
        values.extend(element.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    values.extend(manifest.values.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (name, spec) in &manifest.attributes {
        match values.get(name).filter(|v| !v.trim().is_empty()) {
            None if spec.required => return Err(DeployError::MissingAttribute(name.clone())),
            None => {}
            Some(value) => spec
                .check(value)
                .map_err(|why| DeployError::InvalidAttribute(name.clone(), why))?,
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_precedence_and_required() {
        let manifest = Manifest::parse(
            r#"
            [attributes.a]
            default = "declared"
            [attributes.b]
            default = "declared"
            [attributes.c]
            default = "declared"
            [attributes.secret]
            required = true
            sensitive = true
            [values]
            c = "deployment"
            secret = "s3cret"
            "#,
        )
        .unwrap();
        let all = BTreeMap::from([
            ("b".to_string(), "operator".to_string()),
            ("c".into(), "operator".into()),
        ]);
        let values = effective_attributes(&manifest, &all, None).unwrap();
        assert_eq!(values["a"], "declared");
        assert_eq!(values["b"], "operator");
        assert_eq!(values["c"], "deployment");

        let mut missing = manifest.clone();
        missing.values.insert("secret".into(), "  ".into());
        let err = effective_attributes(&missing, &all, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"secret\""), "{err}");
    }

    #[test]
    fn values_of_the_wrong_kind_fail_the_deploy_without_showing_them() {
        let manifest = Manifest::parse(
            r#"
            [attributes.expiry]
            type = "integer"
            min = 1
            max = 100
            [attributes.pin]
            type = "integer"
            sensitive = true
            [attributes.optional]
            type = "url"
            "#,
        )
        .unwrap();
        let deploy = |values: &[(&str, &str)]| {
            let mut m = manifest.clone();
            m.values = values
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            effective_attributes(&m, &BTreeMap::new(), None).map_err(|e| e.to_string())
        };
        assert!(deploy(&[("expiry", "100"), ("pin", "42"), ("optional", "")]).is_ok());
        assert_eq!(
            deploy(&[("expiry", "101")]).unwrap_err(),
            "attribute \"expiry\" must be at most 100"
        );
        let err = deploy(&[("pin", "12ab-secret")]).unwrap_err();
        assert_eq!(err, "attribute \"pin\" must be a whole number");
        assert!(!err.contains("12ab"), "a sensitive value never reaches the error");
        assert!(deploy(&[("optional", "ftp://x")]).is_err());
    }
}
