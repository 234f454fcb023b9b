//! Serving one request with an Element instance, within its limits.
//!
//! The request body is already buffered (the HTTP layer enforced its size);
//! the response body is buffered here, up to the Element's limit, so a breach
//! still gets a clean JSON error instead of a truncated stream. The guest runs
//! in the calling task: no task hand-off on the request path.

use std::convert::Infallible;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use wasmtime::{PoolConcurrencyLimitError, Store, Trap, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};

use super::Element;
use super::handler::{self, RequestHostBindings};
use crate::instance::{RequestInfo, RequestState};
use crate::log_buffer::{Level, Source};
use crate::services::Services;
use elements_config::Isolation;

/// The epoch deadline while an Element instantiates inline: far enough that
/// no tick reaches it (ticks are milliseconds apart), near enough not to
/// overflow added to the epoch.
const INSTANTIATION_EPOCHS: u64 = 1 << 40;

/// Why a request to an Element failed.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The request's wall-clock deadline passed.
    #[error("did not answer within its {0} ms deadline")]
    Timeout(u128),
    /// The guest needed more memory (linear memories and tables together)
    /// than its cap.
    #[error(
        "exceeded its memory limit of {cap_mib} MiB (its memories and tables would take {requested} bytes)"
    )]
    MemoryLimit {
        /// The cap, in MiB.
        cap_mib: u64,
        /// The total the refused growth asked for.
        requested: u64,
    },
    /// The guest trapped (a Rust panic is a trap).
    #[error("trapped: {0}")]
    Trap(String),
    /// The response body was larger than allowed.
    #[error("produced a response body larger than {0} bytes")]
    ResponseTooLarge(usize),
    /// The guest returned without a usable response.
    #[error("returned no valid response: {0}")]
    BadResponse(String),
    /// No instance slot is free.
    #[error("is at its concurrency limit")]
    Overloaded,
}

/// A warm instance kept between requests under [`Isolation::Reuse`]. It
/// keeps its concurrency permit while idle, so the live instances of one
/// Element never outnumber its `max_concurrency`.
pub struct Warm {
    store: Store<RequestState>,
    entry: Entry,
    served: u32,
    // Declared last: released only after the store is gone.
    _slot: OwnedSemaphorePermit,
}

/// The HTTP export an Element is served through, chosen at deploy: the
/// one-call `request-handler` when the component has it, else
/// `wasi:http/incoming-handler`.
pub(super) enum HttpExport {
    OneCall(handler::RequestHostBindingsPre<RequestState>),
    WasiHttp(ProxyPre<RequestState>),
}

/// An instance's handle on its HTTP export.
enum Entry {
    OneCall(RequestHostBindings),
    WasiHttp(Proxy),
}

/// Most idle warm instances an Element keeps.
const MAX_IDLE: usize = 64;

/// Makes `uri` absolute if it is only a path, as a wasi:http request's must
/// be: `http`, and the request's `Host` if it is a valid authority, else
/// `localhost`. (The one-call export takes the path alone, so only wasi:http
/// Elements pay for this.)
fn with_authority(uri: &mut http::Uri, headers: &http::HeaderMap) {
    if uri.authority().is_some() {
        return;
    }
    let authority = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .unwrap_or_else(|| http::uri::Authority::from_static("localhost"));
    let mut parts = std::mem::take(uri).into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    // Scheme, authority and path are all set: the parts make a URI.
    if let Ok(absolute) = http::Uri::from_parts(parts) {
        *uri = absolute;
    }
}

impl Element {
    /// Serves `request` (whose path is already relative to the mount point).
    pub async fn serve(
        &self,
        services: &Services,
        request: http::Request<Bytes>,
        info: RequestInfo,
    ) -> Result<http::Response<Bytes>, InvokeError> {
        let deadline = Instant::now() + self.limits.timeout;
        let result = match self.limits.isolation {
            Isolation::Fresh => match self.take_slot() {
                Ok(_slot) => {
                    let mut store = self.new_store(services, &info, deadline);
                    match self.instantiate(&mut store).await {
                        Ok(entry) => self.call(&mut store, &entry, request, &info, deadline).await,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            },
            Isolation::Reuse => self.serve_reused(services, request, &info, deadline).await,
        };
        if let Err(e) = &result {
            let level = match e {
                InvokeError::Overloaded => Level::Warn,
                _ => Level::Error,
            };
            self.log.push(
                level,
                Source::Host,
                Some(&info.request_id),
                &format!("request failed: {e}"),
            );
        }
        result
    }

    async fn serve_reused(
        &self,
        services: &Services,
        request: http::Request<Bytes>,
        info: &RequestInfo,
        deadline: Instant,
    ) -> Result<http::Response<Bytes>, InvokeError> {
        let warm = self.warm.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut warm = match warm {
            Some(mut warm) => {
                warm.store
                    .data_mut()
                    .renew(services, &self.services, info, deadline);
                warm.store.set_epoch_deadline(1);
                warm
            }
            None => {
                let slot = self.take_slot()?;
                let mut store = self.new_store(services, info, deadline);
                let entry = self.instantiate(&mut store).await?;
                Warm {
                    store,
                    entry,
                    served: 0,
                    _slot: slot,
                }
            }
        };
        let result = self
            .call(&mut warm.store, &warm.entry, request, info, deadline)
            .await;
        warm.served += 1;
        // After any failure the instance's state is suspect: drop it.
        if result.is_ok() && warm.served < self.limits.reuse_max_requests {
            let mut idle = self.warm.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(warm);
            }
        }
        result
    }

    /// A permit for one more live instance of this Element, or
    /// [`InvokeError::Overloaded`] at once when all are taken. Idle warm
    /// instances hold permits they aren't using: one is retired to make room.
    pub(super) fn take_slot(&self) -> Result<OwnedSemaphorePermit, InvokeError> {
        loop {
            if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                return Ok(permit);
            }
            let idle = self.warm.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match idle {
                // Dropped outside the lock; its permit returns to the semaphore.
                Some(warm) => drop(warm),
                None => return Err(InvokeError::Overloaded),
            }
        }
    }

    pub(super) fn new_store(
        &self,
        services: &Services,
        info: &RequestInfo,
        deadline: Instant,
    ) -> Store<RequestState> {
        let state = RequestState::new(
            &self.name,
            &self.log,
            info,
            &self.limits,
            deadline,
            self.clock,
            services.prepare(&self.services, info),
        );
        let engine = match &self.http {
            HttpExport::OneCall(pre) => pre.engine(),
            HttpExport::WasiHttp(pre) => pre.engine(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        // At every epoch tick a running guest yields to the executor, so a
        // busy guest never holds a server thread; past its deadline it traps.
        store.epoch_deadline_callback(|store| {
            if Instant::now() >= store.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
            }
        });
        store.set_epoch_deadline(1);
        store
    }

    /// Whether this Element's instances can be made synchronously, without
    /// the fiber an async instantiation runs start-up code on. Only asked of
    /// a component with no start function, so none of its code runs until
    /// it is called (`compile::runs_code_when_instantiated`); wasmtime then
    /// links its imports synchronously, which it refuses, before making
    /// anything, when one is an async host function. Tried once, at deploy.
    pub(super) fn instantiates_inline(&self, services: &Services) -> bool {
        let HttpExport::OneCall(pre) = &self.http else {
            return false;
        };
        let info = RequestInfo::internal("deploy");
        let mut store = self.new_store(services, &info, Instant::now() + self.limits.timeout);
        store.set_epoch_deadline(INSTANTIATION_EPOCHS);
        pre.instantiate(&mut store).is_ok()
    }

    async fn instantiate(&self, store: &mut Store<RequestState>) -> Result<Entry, InvokeError> {
        if self.instantiate_inline
            && let HttpExport::OneCall(pre) = &self.http
        {
            // No guest code runs while this component instantiates (see
            // `Element::instantiates_inline`): nothing to interrupt, and no
            // fiber for wasmtime to set up and switch to. The epoch deadline
            // moves out of the way meanwhile, since a synchronous
            // instantiation can't yield at a tick.
            store.set_epoch_deadline(INSTANTIATION_EPOCHS);
            let instantiated = pre.instantiate(&mut *store);
            store.set_epoch_deadline(1);
            return match instantiated {
                Ok(instance) => Ok(Entry::OneCall(instance)),
                Err(e) if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() => {
                    Err(InvokeError::Overloaded)
                }
                Err(e) => Err(self.classify(store, e)),
            };
        }
        let deadline = store.data().deadline;
        let instantiate = async {
            match &self.http {
                HttpExport::OneCall(pre) => pre.instantiate_async(&mut *store).await.map(Entry::OneCall),
                HttpExport::WasiHttp(pre) => pre.instantiate_async(&mut *store).await.map(Entry::WasiHttp),
            }
        };
        match tokio::time::timeout_at(deadline.into(), instantiate).await {
            Ok(Ok(entry)) => Ok(entry),
            Ok(Err(e)) if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() => {
                Err(InvokeError::Overloaded)
            }
            Ok(Err(e)) => Err(self.classify(store, e)),
            Err(_) => Err(InvokeError::Timeout(self.limits.timeout.as_millis())),
        }
    }

    async fn call(
        &self,
        store: &mut Store<RequestState>,
        entry: &Entry,
        request: http::Request<Bytes>,
        info: &RequestInfo,
        deadline: Instant,
    ) -> Result<http::Response<Bytes>, InvokeError> {
        match entry {
            Entry::OneCall(host) => self.call_one(store, host, request, info, deadline).await,
            Entry::WasiHttp(proxy) => self.call_wasi_http(store, proxy, request, deadline).await,
        }
    }

    /// One call of the `request-handler` export.
    async fn call_one(
        &self,
        store: &mut Store<RequestState>,
        host: &RequestHostBindings,
        request: http::Request<Bytes>,
        info: &RequestInfo,
        deadline: Instant,
    ) -> Result<http::Response<Bytes>, InvokeError> {
        let (message, body_start) = handler::to_message(request);
        let call = host
            .elements_platform_request_handler()
            .call_handle(&mut *store, &message, body_start);
        let answer = match tokio::time::timeout_at(deadline.into(), call).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(self.classify(store, e)),
            Err(_) => return Err(InvokeError::Timeout(self.limits.timeout.as_millis())),
        };
        let (response, dropped) = handler::from_record(answer, self.limits.max_response_body)?;
        for line in dropped {
            self.log
                .push(Level::Warn, Source::Host, Some(&info.request_id), &line);
        }
        Ok(response)
    }

    /// One request through `wasi:http/incoming-handler`: the request and
    /// response out-parameter as resources, the response body collected
    /// from its stream while the guest writes it.
    async fn call_wasi_http(
        &self,
        store: &mut Store<RequestState>,
        proxy: &Proxy,
        request: http::Request<Bytes>,
        deadline: Instant,
    ) -> Result<http::Response<Bytes>, InvokeError> {
        let (mut parts, body) = request.into_parts();
        with_authority(&mut parts.uri, &parts.headers);
        let body =
            Full::new(body).map_err(|never: Infallible| -> wasmtime_wasi_http::Error { match never {} });
        let request = http::Request::from_parts(parts, body);
        let (sender, receiver) = oneshot::channel();
        let (request, outparam) = {
            let mut http = store.data_mut().http();
            let request = http.new_incoming_request(Scheme::Http, request);
            let outparam = http.new_response_outparam(sender);
            match (request, outparam) {
                (Ok(r), Ok(o)) => (r, o),
                (Err(e), _) | (_, Err(e)) => return Err(InvokeError::BadResponse(format!("{e:#}"))),
            }
        };
        let max_body = self.limits.max_response_body;
        let collect = async move {
            let response = match receiver.await {
                Ok(Ok(response)) => response,
                Ok(Err(code)) => return Err(InvokeError::BadResponse(format!("error code {code:?}"))),
                Err(_) => return Err(InvokeError::BadResponse("response-outparam never set".into())),
            };
            let (parts, body) = response.into_parts();
            match Limited::new(body, max_body).collect().await {
                Ok(body) => Ok(http::Response::from_parts(parts, body.to_bytes())),
                Err(e) if e.is::<LengthLimitError>() => Err(InvokeError::ResponseTooLarge(max_body)),
                Err(e) => Err(InvokeError::BadResponse(format!("body: {e}"))),
            }
        };
        let outcome = {
            let call = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut *store, request, outparam);
            let both = async {
                tokio::pin!(call, collect);
                let mut response = None;
                let mut returned = false;
                // Wait for the guest to return and for its response; a bad
                // response ends the wait at once (the instance is discarded).
                loop {
                    tokio::select! {
                        result = &mut call, if !returned => {
                            result?;
                            returned = true;
                            if response.is_some() {
                                break;
                            }
                        }
                        result = &mut collect, if response.is_none() => {
                            let failed = result.is_err();
                            response = Some(result);
                            if failed || returned {
                                break;
                            }
                        }
                    }
                }
                Ok::<_, wasmtime::Error>(response)
            };
            tokio::time::timeout_at(deadline.into(), both).await
        };
        match outcome {
            Ok(Ok(Some(response))) => response,
            Ok(Ok(None)) => Err(InvokeError::BadResponse("no response".into())),
            Ok(Err(e)) => Err(self.classify(store, e)),
            Err(_) => Err(InvokeError::Timeout(self.limits.timeout.as_millis())),
        }
    }

    /// Names the cause of a guest failure.
    pub(super) fn classify(&self, store: &Store<RequestState>, error: wasmtime::Error) -> InvokeError {
        if let Some(requested) = store.data().limiter.refused {
            return InvokeError::MemoryLimit {
                cap_mib: self.limits.memory_bytes >> 20,
                requested,
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => InvokeError::Timeout(self.limits.timeout.as_millis()),
            Some(trap) => {
                tracing::debug!(element = %self.name, error = ?error, "guest trap detail");
                InvokeError::Trap(trap.to_string())
            }
            None => InvokeError::Trap(format!("{error:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_authority;

    fn absolute(uri: &str, host: Option<&str>) -> String {
        let mut uri: http::Uri = uri.parse().unwrap();
        let mut headers = http::HeaderMap::new();
        if let Some(host) = host {
            headers.insert(http::header::HOST, host.parse().unwrap());
        }
        with_authority(&mut uri, &headers);
        uri.to_string()
    }

    #[test]
    fn a_path_gets_the_host_or_localhost() {
        assert_eq!(
            absolute("/echo?x=1", Some("game.example:8080")),
            "http://game.example:8080/echo?x=1"
        );
        assert_eq!(absolute("/echo", None), "http://localhost/echo");
        // Not an authority: never passed on to the Element as one.
        assert_eq!(absolute("/echo", Some("a b/c")), "http://localhost/echo");
        // An absolute URI is left as it is.
        assert_eq!(
            absolute("http://localhost/rpc/x", Some("other")),
            "http://localhost/rpc/x"
        );
    }
}
