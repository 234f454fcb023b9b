//! `elements:platform/log`: an Element's log lines go to the server's
//! structured log and to the Element's [`LogBuffer`].

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::elements::platform::log::{self as wit, Level as WitLevel};
use super::{DeployContext, HostService, ServiceConfigError};
use crate::element::log_buffer::{Level, LogBuffer, MAX_MESSAGE, Source, truncate};
use crate::host::{RequestInfo, RequestState};

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
}

impl HostService for LogService {
    type Deployed = Deployed;
    type Instance = Instance;

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
        }
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

impl wit::Host for Instance {
    fn write(&mut self, wit_level: WitLevel, message: String) {
        let level = level(wit_level);
        let message = truncate(&message, MAX_MESSAGE);
        // `tracing` macros need a constant level, hence one arm per level.
        macro_rules! emit {
            ($lvl:expr) => {
                tracing::event!(target: "element", $lvl, element = %self.element, request_id = %self.request_id, "{message}")
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
            .push(level, Source::Element, Some(&self.request_id), message);
    }

    fn enabled(&mut self, wit_level: WitLevel) -> bool {
        // The buffer keeps every level, so building the message is never wasted.
        let _ = wit_level;
        true
    }
}
