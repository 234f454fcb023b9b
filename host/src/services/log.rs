//! `elements:platform/log`: an Element's log lines go to the server's
//! structured log (target `element`, at the server's configured level) and
//! to the Element's [`LogBuffer`] (info and above always). Each line is one
//! line: cut to [`MAX_MESSAGE`](crate::log_buffer::MAX_MESSAGE)
//! bytes, control characters escaped, and counted against the request's
//! [`RequestLog`] budget.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::elements::platform::log::{self as wit, Level as WitLevel};
use super::{DeployContext, HostService, ServiceConfigError, ServiceDeps, ServicesError};
use crate::instance::{RequestInfo, RequestState};
use crate::log_buffer::{Level, LogBuffer, RequestLog, Source, clean};

/// The log service.
#[derive(Default)]
pub struct LogService;

/// Where one Element's lines go.
pub struct Deployed {
    element: Arc<str>,
    buffer: Arc<LogBuffer>,
}

/// One instance's view of the log.
pub struct Instance {
    element: Arc<str>,
    buffer: Arc<LogBuffer>,
    request_id: Arc<str>,
    /// The request's line budget, shared with stdout and stderr; set by
    /// the instance's state (see [`Instance::attach`]).
    budget: Option<Arc<RequestLog>>,
}

impl Instance {
    /// Counts this request's lines against `budget` (shared with the
    /// instance's stdout and stderr).
    pub fn attach(&mut self, budget: Arc<RequestLog>) {
        self.budget = Some(budget);
    }
}

impl HostService for LogService {
    type Deployed = Deployed;
    type Instance = Instance;

    fn start(_deps: &ServiceDeps) -> Result<LogService, ServicesError> {
        Ok(LogService)
    }

    fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        wit::add_to_linker::<RequestState, HasSelf<Instance>>(linker, |state| &mut state.services.log)
    }

    fn deploy(&self, element: &DeployContext<'_>) -> Result<Deployed, ServiceConfigError> {
        Ok(Deployed {
            element: element.name.clone(),
            buffer: element.log.clone(),
        })
    }

    fn prepare(&self, deployed: &Deployed, request: &RequestInfo) -> Instance {
        Instance {
            element: deployed.element.clone(),
            buffer: deployed.buffer.clone(),
            request_id: request.request_id.clone(),
            budget: None,
        }
    }

    fn renew(&self, _deployed: &Deployed, instance: &mut Instance, request: &RequestInfo) {
        // The budget is the instance's own `RequestLog`, which
        // `RequestState::renew` starts anew.
        let Instance {
            element: _,
            buffer: _,
            request_id,
            budget: _,
        } = instance;
        *request_id = request.request_id.clone();
    }
}

fn level(level: WitLevel) -> Level {
    match level {
        WitLevel::Trace => Level::Trace,
        WitLevel::Debug => Level::Debug,
        WitLevel::Info => Level::Info,
        WitLevel::Warn => Level::Warn,
        WitLevel::Error => Level::Error,
    }
}

fn tracing_level(level: Level) -> tracing::Level {
    match level {
        Level::Trace => tracing::Level::TRACE,
        Level::Debug => tracing::Level::DEBUG,
        Level::Info => tracing::Level::INFO,
        Level::Warn => tracing::Level::WARN,
        Level::Error => tracing::Level::ERROR,
    }
}

/// Whether the server log takes `element` lines at `level`.
fn server_enabled(level: Level) -> bool {
    // `tracing` macros need a constant level, hence one arm per level.
    match level {
        Level::Trace => tracing::enabled!(target: "element", tracing::Level::TRACE),
        Level::Debug => tracing::enabled!(target: "element", tracing::Level::DEBUG),
        Level::Info => tracing::enabled!(target: "element", tracing::Level::INFO),
        Level::Warn => tracing::enabled!(target: "element", tracing::Level::WARN),
        Level::Error => tracing::enabled!(target: "element", tracing::Level::ERROR),
    }
}

/// Whether a line at `level` is kept anywhere: the buffer keeps info and
/// above, the server log what its filter lets through.
fn kept(level: Level) -> bool {
    level >= Level::Info || server_enabled(level)
}

impl wit::Host for Instance {
    fn write(&mut self, wit_level: WitLevel, message: String) {
        let level = level(wit_level);
        if !kept(level) {
            return;
        }
        let request_id = match &self.budget {
            Some(budget) => match budget.admit() {
                Some(id) => id,
                None => return,
            },
            None => self.request_id.clone(),
        };
        let message = clean(&message);
        macro_rules! emit {
            ($lvl:expr) => {
                tracing::event!(target: "element", $lvl, element = %self.element, request_id = %request_id, "{message}")
            };
        }
        match tracing_level(level) {
            tracing::Level::TRACE => emit!(tracing::Level::TRACE),
            tracing::Level::DEBUG => emit!(tracing::Level::DEBUG),
            tracing::Level::INFO => emit!(tracing::Level::INFO),
            tracing::Level::WARN => emit!(tracing::Level::WARN),
            _ => emit!(tracing::Level::ERROR),
        }
        self.buffer
            .push(level, Source::Element, Some(&request_id), &message);
    }

    fn enabled(&mut self, wit_level: WitLevel) -> bool {
        kept(level(wit_level))
    }
}
