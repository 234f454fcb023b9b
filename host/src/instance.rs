//! What an Element instance can reach: WASI (clocks, random, stdio; no
//! files, no sockets), `wasi:http` (incoming requests; outbound calls only to
//! the hosts the Element's allow-list names) and our host services.
//!
//! [`RequestState`] is the data of one instance's [`wasmtime::Store`]; the
//! [`Linker`] built by [`linker`] knows every interface the host provides, so
//! an Element may import any subset of them.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::log_buffer::{LogBuffer, RequestLog, Source};
use crate::services::InstanceServices;
use crate::stdio::GuestOutput;
use elements_config::Limits;

/// The header carrying a request's id, on the request (as an Element sees
/// it, its first line) and on every response.
pub static REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The identity of one request, as host services see it.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The id the server gave the request (also in `x-request-id`).
    pub request_id: Arc<str>,
    /// The request's session credential (`Elements-SessionSecret`, or
    /// `Authorization: Bearer`), which the identity service checks when the
    /// Element asks who is calling.
    pub credential: Option<Arc<str>>,
    /// The chain the events this request publishes continue: the handled
    /// event's; none for a request, whose first event starts a chain (made
    /// then, so requests that publish nothing cost nothing).
    pub chain: Option<crate::events::Chain>,
}

impl RequestInfo {
    /// An HTTP request with the given session credential.
    pub fn http(request_id: impl Into<Arc<str>>, credential: Option<Arc<str>>) -> RequestInfo {
        RequestInfo {
            request_id: request_id.into(),
            credential,
            chain: None,
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
            chain: Some(event.chain.next()),
        }
    }
}

/// The data of one instance's store.
pub struct RequestState {
    /// Built when the guest first calls a WASI function: most requests to
    /// an SDK-built Element call none, and building one (its random
    /// generators, its stdio) was 4% of a fresh instance's instructions.
    wasi: Option<WasiCtx>,
    clock: crate::clock::OffsetClock,
    http: WasiHttpCtx,
    table: ResourceTable,
    /// Memory accounting for this instance.
    pub limiter: MemoryLimiter,
    /// The log budget of the request being served.
    log: Arc<RequestLog>,
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
        limits: &Limits,
        deadline: Instant,
        clock: crate::clock::OffsetClock,
        mut services: InstanceServices,
    ) -> RequestState {
        let request_log = Arc::new(RequestLog::new(
            element.clone(),
            log.clone(),
            request.request_id.clone(),
            limits.max_log_lines,
        ));
        services.log.attach(request_log.clone());
        RequestState {
            wasi: None,
            clock,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory_bytes),
            log: request_log,
            deadline,
            services,
        }
    }

    /// Readies a warm instance for its next request: that request's host
    /// services, deadline and log budget (the same [`RequestLog`], started
    /// anew: the log service's state keeps pointing at it).
    pub fn renew(
        &mut self,
        services: &crate::services::Services,
        deployed: &crate::services::DeployedServices,
        request: &RequestInfo,
        deadline: Instant,
    ) {
        self.log.renew(request.request_id.clone());
        services.renew(deployed, &mut self.services, request);
        self.deadline = deadline;
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| build_wasi(&self.log, self.clock)),
            table: &mut self.table,
        }
    }
}

/// An instance's WASI context: stdout and stderr into the Element's log, no
/// sockets, the Element's clock.
fn build_wasi(log: &Arc<RequestLog>, clock: crate::clock::OffsetClock) -> WasiCtx {
    let mut wasi = WasiCtx::builder();
    wasi.stdout(GuestOutput::new(Source::Stdout, log.clone()))
        .stderr(GuestOutput::new(Source::Stderr, log.clone()))
        // Elements reach the network only through host services.
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if clock.offset_ms != 0 {
        wasi.wall_clock(clock);
    }
    wasi.build()
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

/// Bytes a table element is charged against the memory cap: wasmtime
/// stores a pointer or two per element.
pub const TABLE_ELEMENT_BYTES: u64 = 16;
/// Most table elements one instance may have, over all its tables.
pub const MAX_TABLE_ELEMENTS: u64 = 1_000_000;

/// Caps an instance's memory: every linear memory and table of its store
/// counted together against one cap (tables at [`TABLE_ELEMENT_BYTES`] per
/// element), and remembers a breach, so a trap that follows a refused growth
/// is reported as a memory-limit breach.
///
/// wasmtime calls the limiter when it creates a memory or table (from 0 to
/// the minimum) and before each growth, so the sum of accepted deltas is the
/// instance's total. A growth the limiter accepted but that failed later (it
/// passed the memory's own declared maximum) stays counted: the total may
/// overstate, never understate.
pub struct MemoryLimiter {
    cap: u64,
    memory_bytes: u64,
    table_elements: u64,
    /// The total a refused growth asked for, in bytes, if any.
    pub refused: Option<u64>,
}

impl MemoryLimiter {
    /// A limiter allowing `cap` bytes of memories and tables in all.
    pub fn new(cap: u64) -> MemoryLimiter {
        MemoryLimiter {
            cap,
            memory_bytes: 0,
            table_elements: 0,
            refused: None,
        }
    }

    /// Bytes the instance's memories and tables take, as accounted.
    pub fn total_bytes(&self) -> u64 {
        self.memory_bytes
            .saturating_add(self.table_elements.saturating_mul(TABLE_ELEMENT_BYTES))
    }

    fn admit(&mut self, memory_bytes: u64, table_elements: u64) -> bool {
        let total = memory_bytes.saturating_add(table_elements.saturating_mul(TABLE_ELEMENT_BYTES));
        if total > self.cap || table_elements > MAX_TABLE_ELEMENTS {
            self.refused = Some(total);
            return false;
        }
        self.memory_bytes = memory_bytes;
        self.table_elements = table_elements;
        true
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let delta = (desired as u64).saturating_sub(current as u64);
        Ok(self.admit(self.memory_bytes.saturating_add(delta), self.table_elements))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let delta = (desired as u64).saturating_sub(current as u64);
        Ok(self.admit(self.memory_bytes, self.table_elements.saturating_add(delta)))
    }
}

/// The linker with every interface the host provides.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<RequestState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::services::add_to_linker(&mut linker)?;
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn memories_count_together_against_the_cap() {
        let mut limiter = MemoryLimiter::new(10 << 20);
        // Two memories created at 4 MiB each: each fits, and so do both.
        assert!(limiter.memory_growing(0, 4 * MIB, None).unwrap());
        assert!(limiter.memory_growing(0, 4 * MIB, None).unwrap());
        assert_eq!(limiter.total_bytes(), 8 << 20);
        assert!(limiter.refused.is_none());
        // Growing either by 3 MiB alone would fit a 10 MiB cap, but not with the other.
        assert!(!limiter.memory_growing(4 * MIB, 7 * MIB, None).unwrap());
        assert_eq!(limiter.refused, Some(11 << 20));
        assert_eq!(limiter.total_bytes(), 8 << 20, "a refused growth is not counted");
        assert!(limiter.memory_growing(4 * MIB, 6 * MIB, None).unwrap());
        assert_eq!(limiter.total_bytes(), 10 << 20);
    }

    #[test]
    fn tables_count_against_the_same_cap() {
        let mut limiter = MemoryLimiter::new(2 << 20);
        assert!(limiter.memory_growing(0, MIB, None).unwrap());
        let elements = MIB / TABLE_ELEMENT_BYTES as usize;
        assert!(limiter.table_growing(0, elements, None).unwrap());
        assert_eq!(limiter.total_bytes(), 2 << 20);
        assert!(!limiter.table_growing(elements, elements + 1, None).unwrap());
        assert!(limiter.refused.is_some());
        assert!(!limiter.memory_growing(MIB, MIB + 65536, None).unwrap());
    }

    #[test]
    fn table_elements_have_a_ceiling_of_their_own() {
        let mut limiter = MemoryLimiter::new(1 << 30);
        assert!(
            limiter
                .table_growing(0, MAX_TABLE_ELEMENTS as usize, None)
                .unwrap()
        );
        assert!(!limiter.table_growing(0, 1, None).unwrap());
    }
}
