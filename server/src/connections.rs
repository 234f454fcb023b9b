//! Accepting connections, with the limits that keep slow or idle clients
//! from holding the server's sockets: a connection cap per listener, a
//! deadline for a connection's first byte and for idle keep-alive waits, a
//! deadline for a request head once it starts, one for the whole body, and
//! bounds on header size and count.
//!
//! hyper's own `header_read_timeout` starts when a connection *waits* for a
//! head, so it can't tell an idle keep-alive connection from a slow head;
//! the phases are tracked here instead, in [`GuardedIo`], which sees the
//! bytes, and in the per-connection service, which sees where requests start
//! and end.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use bytes::Bytes;
use http::Request;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use elements_config::{ConnectionLimits, MIN_HEADER_BYTES};

/// File descriptors kept for everything but client connections (the
/// database, outbound HTTP, SMTP, the cache, the deploy folder's watcher).
const RESERVED_DESCRIPTORS: u64 = 512;

/// Raises the soft limit on open files to the hard limit (as Go and nginx
/// do: the soft default of 1024 is far below what a server holding client
/// connections needs), and returns the connection cap the result allows.
// `rlim_t` is u64 on Linux but not on every target: the casts stay.
#[allow(clippy::unnecessary_cast)]
pub fn fit_to_descriptor_limit(wanted: u32) -> u32 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return wanted;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    // Two listeners share the process's descriptors.
    let room = (limit.rlim_cur as u64).saturating_sub(RESERVED_DESCRIPTORS) / 2;
    let fitted = (wanted as u64).min(room.max(1)) as u32;
    if fitted < wanted {
        tracing::warn!(
            wanted,
            fitted,
            open_files = limit.rlim_cur as u64,
            "the open-file limit caps client connections below [connections] max_connections"
        );
    }
    fitted
}

/// Serves `router` (an axum `Router`, or the [`crate::PublicService`]) on
/// `listener` within `limits` until `shutdown` completes, then lets the
/// requests in flight finish (for at most `limits.idle_timeout_ms`, since a
/// connection idle that long would be closed anyway).
pub async fn serve<S>(
    listener: TcpListener,
    router: S,
    limits: &ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let limits = Arc::new(limits.clone());
    let cap = limits.max_connections.max(1);
    let open = Arc::new(Semaphore::new(cap as usize));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        // Phases are timed by `GuardedIo` (see the module docs).
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES) + 64 * 1024)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    let http = Arc::new(http);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept:
                    // back off briefly rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refuse(&stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let http = http.clone();
        let router = router.clone();
        let limits = limits.clone();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let requests = Arc::new(InFlight::default());
            let io = TokioIo::new(GuardedIo::new(stream, limits.clone(), requests.clone()));
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let started = requests.enter();
                let deadline = Instant::now() + limits.body();
                let late = Arc::new(AtomicBool::new(false));
                let nakama = request.uri().path().starts_with("/v2/");
                let mut request =
                    request.map(|body| Body::new(DeadlineBody::new(body, deadline, late.clone())));
                request.extensions_mut().insert(ConnectInfo(peer));
                let response = router.clone().oneshot(request);
                async move {
                    let response = response.await;
                    if let Ok(response) = &response
                        && response.status() == http::StatusCode::SWITCHING_PROTOCOLS
                    {
                        started.upgraded();
                    }
                    drop(started);
                    // Whatever the handler made of the failed read, the
                    // client hears why (and the half-read connection ends).
                    if late.load(Ordering::Acquire) {
                        let id = response
                            .as_ref()
                            .ok()
                            .and_then(|r| r.headers().get(&crate::REQUEST_ID));
                        return Ok(body_timeout_response(nakama, id));
                    }
                    response
                }
            });
            let connection = http.serve_connection(io, service).with_upgrades();
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stopped(&mut stopping) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection task holds a permit until it ends.
    let _ = tokio::time::timeout(limits.idle(), open.acquire_many(cap)).await;
    Ok(())
}

async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}

/// Answers a connection over the cap without reading it: one non-blocking
/// write (a full socket buffer just means the client sees the close).
fn refuse(stream: &TcpStream) {
    const BODY: &str =
        r#"{"code":"UNAVAILABLE","message":"the server has too many open connections; retry later"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.try_write(response.as_bytes());
    tracing::debug!("refused a connection over [connections] max_connections");
}

/// How many requests of one connection are being served, and the
/// connection's reader to wake when the last one ends.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    reader: Mutex<Option<Waker>>,
    /// The connection switched protocols (WebSocket): the deadlines of
    /// HTTP requests no longer apply; the new protocol keeps its own.
    upgraded: AtomicBool,
}

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.clone())
    }

    /// Whether a request is being served; if so, `waker` is woken when the
    /// last one ends, so the reader starts the keep-alive deadline even if
    /// no byte comes.
    fn busy(&self, waker: &Waker) -> bool {
        if self.count.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        match reader.as_ref() {
            Some(w) if w.will_wake(waker) => {}
            _ => *reader = Some(waker.clone()),
        }
        drop(reader);
        // Ended meanwhile: no one would wake us.
        self.count.load(Ordering::Acquire) > 0
    }
}

/// Ends a request's turn when its response is ready (or it is dropped).
struct InFlightGuard(Arc<InFlight>);

impl InFlightGuard {
    fn upgraded(&self) {
        self.0.upgraded.store(true, Ordering::Release);
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            let reader = self.0.reader.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(reader) = reader {
                reader.wake();
            }
        }
    }
}

/// Where a connection's reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's first byte.
    Idle,
    /// A head has started and is not complete.
    Head,
    /// A request is being served (its body is timed by [`DeadlineBody`]).
    Busy,
}

/// A client socket that fails reads once the connection has been idle, or
/// reading a head, for too long, and writes once the client has read
/// nothing for too long. A failed read or write makes hyper close the
/// connection.
struct GuardedIo {
    stream: TcpStream,
    limits: Arc<ConnectionLimits>,
    requests: Arc<InFlight>,
    phase: Phase,
    read_deadline: Pin<Box<Sleep>>,
    write_deadline: Option<Pin<Box<Sleep>>>,
}

impl GuardedIo {
    fn new(stream: TcpStream, limits: Arc<ConnectionLimits>, requests: Arc<InFlight>) -> GuardedIo {
        let read_deadline = Box::pin(tokio::time::sleep(limits.idle()));
        GuardedIo {
            stream,
            limits,
            requests,
            phase: Phase::Idle,
            read_deadline,
            write_deadline: None,
        }
    }

    fn timed_out(what: &str) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, format!("client {what} timed out"))
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.requests.upgraded.load(Ordering::Acquire) {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        if this.requests.busy(cx.waker()) {
            this.phase = Phase::Busy;
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        if this.phase == Phase::Busy {
            // A response went out: the keep-alive wait starts now.
            this.phase = Phase::Idle;
            let deadline = Instant::now() + this.limits.idle();
            this.read_deadline.as_mut().reset(deadline);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.phase == Phase::Idle && buf.filled().len() > before {
                    this.phase = Phase::Head;
                    let deadline = Instant::now() + this.limits.header();
                    this.read_deadline.as_mut().reset(deadline);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                ready!(this.read_deadline.as_mut().poll(cx));
                let what = if this.phase == Phase::Head {
                    "request head"
                } else {
                    "idle connection"
                };
                Poll::Ready(Err(GuardedIo::timed_out(what)))
            }
        }
    }
}

impl GuardedIo {
    /// Bounds a write the client isn't reading.
    fn on_write<T>(&mut self, cx: &mut Context<'_>, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match result {
            Poll::Pending => {
                let limit = self.limits.write();
                let deadline = self
                    .write_deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                ready!(deadline.as_mut().poll(cx));
                self.write_deadline = None;
                Poll::Ready(Err(GuardedIo::timed_out("read of the response")))
            }
            ready => {
                self.write_deadline = None;
                ready
            }
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.on_write(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.on_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_flush(cx);
        this.on_write(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A request body that must arrive whole by a deadline; `late` is set when
/// it didn't. (tower-http's `RequestBodyTimeout` restarts its timer at
/// every chunk: a client trickling bytes would never meet it.)
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    late: Arc<AtomicBool>,
}

impl DeadlineBody {
    fn new(inner: Incoming, deadline: Instant, late: Arc<AtomicBool>) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            late,
        }
    }
}

/// `408` in the error shape of the API asked (Nakama's on `/v2`), with the
/// id the router gave the request (`request_id`, the `x-request-id` of the
/// answer this one replaces).
fn body_timeout_response(nakama: bool, request_id: Option<&http::HeaderValue>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let message = "the request body did not arrive in time";
    let body = if nakama {
        // gRPC's DEADLINE_EXCEEDED.
        serde_json::json!({"code": 4, "message": message, "details": []})
    } else {
        let mut body = serde_json::json!({"code": "REQUEST_TIMEOUT", "message": message});
        if let Some(id) = request_id.and_then(|id| id.to_str().ok()) {
            body["requestId"] = id.into();
        }
        body
    };
    let mut response = (
        http::StatusCode::REQUEST_TIMEOUT,
        [(http::header::CONNECTION, "close")],
        axum::Json(body),
    )
        .into_response();
    if let Some(id) = request_id {
        response.headers_mut().insert(&crate::REQUEST_ID, id.clone());
    }
    response
}

/// The request body did not arrive in time ([`ConnectionLimits::body_read_timeout_ms`]).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyReadTimeout;

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                this.late.store(true, Ordering::Release);
                Poll::Ready(Some(Err(Box::new(BodyReadTimeout))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An upgraded connection (as a WebSocket will be) is no longer held to
    /// the HTTP deadlines: it outlives the idle and head deadlines many
    /// times over while its protocol is active.
    #[tokio::test]
    async fn upgraded_connections_leave_the_http_deadlines() {
        async fn upgrade(mut request: axum::extract::Request) -> axum::response::Response {
            let upgraded = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let Ok(upgraded) = upgraded.await else { return };
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 64];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            axum::response::Response::builder()
                .status(http::StatusCode::SWITCHING_PROTOCOLS)
                .header(http::header::CONNECTION, "upgrade")
                .header(http::header::UPGRADE, "echo")
                .body(Body::empty())
                .unwrap_or_default()
        }
        let limits = ConnectionLimits {
            idle_timeout_ms: 200,
            header_read_timeout_ms: 200,
            ..ConnectionLimits::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let router = axum::Router::new().route("/echo", axum::routing::get(upgrade));
        tokio::spawn(async move { serve(listener, router, &limits, std::future::pending()).await });

        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
            .await
            .expect("write");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            assert_eq!(
                stream.read(&mut byte).await.expect("read"),
                1,
                "closed before 101"
            );
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        // Ten times the deadlines, one byte at a time with pauses longer
        // than either.
        for i in 0..8u8 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            stream.write_all(&[b'a' + i]).await.expect("write");
            let mut echoed = [0u8; 1];
            stream
                .read_exact(&mut echoed)
                .await
                .expect("the upgraded connection was cut");
            assert_eq!(echoed[0], b'a' + i);
        }
    }

    #[test]
    fn limits_are_validated() {
        assert!(ConnectionLimits::default().validate().is_ok());
        for bad in [
            ConnectionLimits {
                max_connections: 0,
                ..Default::default()
            },
            ConnectionLimits {
                idle_timeout_ms: 0,
                ..Default::default()
            },
            ConnectionLimits {
                max_header_bytes: 1024,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
