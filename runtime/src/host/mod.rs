//! What an Element instance can reach: WASI (clocks, random, stdio; no
//! files, no sockets), `wasi:http` (incoming requests; outbound calls only to
//! the hosts the Element's allow-list names) and our host services.
//!
//! [`RequestState`] is the data of one instance's [`wasmtime::Store`]; the
//! [`Linker`] built by [`linker`] knows every interface the host provides, so
//! an Element may import any subset of them.

pub mod services;
pub mod stdio;

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::element::log_buffer::{LogBuffer, Source};
use services::InstanceServices;
use stdio::GuestOutput;

/// The identity of one request, as host services see it.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The id the server gave the request (also in `x-request-id`).
    pub request_id: Arc<str>,
    /// The request's session credential (`Elements-SessionSecret`, or
    /// `Authorization: Bearer`), which the identity service checks when the
    /// Element asks who is calling.
    pub credential: Option<Arc<str>>,
    /// The chain the events this request publishes belong to.
    pub chain: crate::events::Chain,
}

impl RequestInfo {
    /// An HTTP request with the given session credential.
    pub fn http(request_id: impl Into<Arc<str>>, credential: Option<Arc<str>>) -> RequestInfo {
        RequestInfo {
            request_id: request_id.into(),
            credential,
            chain: crate::events::Chain::root(),
        }
    }

    /// A request with no credentials (internal calls).
    pub fn internal(request_id: impl Into<Arc<str>>) -> RequestInfo {
        RequestInfo::http(request_id, None)
    }

    /// The delivery of `event`: what it publishes continues the event's chain.
    pub fn for_event(request_id: impl Into<Arc<str>>, event: &crate::events::Event) -> RequestInfo {
        RequestInfo {
            request_id: request_id.into(),
            credential: None,
            chain: event.chain.next(),
        }
    }
}

/// The data of one instance's store.
pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    /// Linear-memory accounting for this instance.
    pub limiter: MemoryLimiter,
    /// When the current request must be finished.
    pub deadline: Instant,
    /// Per-request state of every host service.
    pub services: InstanceServices,
}

impl RequestState {
    /// State for an instance of the Element named `element`.
    pub fn new(
        element: &Arc<str>,
        log: &Arc<LogBuffer>,
        request: &RequestInfo,
        memory_cap: u64,
        deadline: Instant,
        clock: crate::clock::OffsetClock,
        services: InstanceServices,
    ) -> RequestState {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(GuestOutput::new(
            Source::Stdout,
            element.clone(),
            request.request_id.clone(),
            log.clone(),
        ))
        .stderr(GuestOutput::new(
            Source::Stderr,
            element.clone(),
            request.request_id.clone(),
            log.clone(),
        ))
        // Elements reach the network only through host services.
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
        if clock.offset_ms != 0 {
            wasi.wall_clock(clock);
        }
        RequestState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_cap),
            deadline,
            services,
        }
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.services.http,
        }
    }
}

/// Caps an instance's linear memory and remembers a breach, so a trap that
/// follows a refused `memory.grow` is reported as a memory-limit breach.
pub struct MemoryLimiter {
    cap: u64,
    /// The size a refused growth asked for, if any.
    pub refused: Option<u64>,
}

impl MemoryLimiter {
    fn new(cap: u64) -> MemoryLimiter {
        MemoryLimiter { cap, refused: None }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.cap {
            self.refused = Some(desired as u64);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The linker with every interface the host provides.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<RequestState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    services::add_to_linker(&mut linker)?;
    Ok(linker)
}
