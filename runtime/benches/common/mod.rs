//! What the benchmarks share (`mod common;`): knobs from the environment,
//! the server started in-process, one-shot setup requests, and a
//! closed-loop HTTP load generator (each connection sends its next request
//! as soon as the previous answer is read, until the time is up).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use elements_config::Config;
use elements_runtime::{Runtime, serve};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// A number from the environment, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A guest component built by `cargo xtask bench` (`target/guests`).
pub fn guest(name: &str) -> std::path::PathBuf {
    let root = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = root
        .join("guests/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask bench`",
        path.display()
    );
    path
}

/// Starts the server for `config` on `server` (a multi-threaded runtime,
/// like the real binary's), with extra `routes`; returns its address.
pub fn serve_in_process(
    server: &tokio::runtime::Runtime,
    config: &Config,
    routes: impl FnOnce(axum::Router) -> axum::Router,
) -> SocketAddr {
    server.block_on(async {
        let runtime = Runtime::start(config).await.expect("server");
        println!("instance allocation: {:?}", runtime.allocation);
        let router = routes(runtime.public_router());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let limits = config.connections.clone();
        tokio::spawn(async move {
            let _runtime = runtime;
            serve(listener, router, &limits, std::future::pending()).await
        });
        addr
    })
}

/// One request on a new connection (for setup): its status and JSON body
/// (`null` when not JSON or the request failed).
pub async fn call(addr: SocketAddr, request: Request) -> (u16, serde_json::Value) {
    let mut sender = connect(addr).await;
    match exchange(&mut sender, request).await {
        Some((status, body)) => (status, serde_json::from_slice(&body).unwrap_or_default()),
        None => (0, serde_json::Value::Null),
    }
}

/// A 1 s warm-up, then `seconds` of load with `connections` clients, on
/// the (current-thread) `client` runtime.
pub fn measure<F>(
    client: &tokio::runtime::Runtime,
    addr: SocketAddr,
    connections: usize,
    seconds: u64,
    make: F,
) -> LoadResult
where
    F: Fn(u64) -> Request + Clone + Send + 'static,
{
    client.block_on(run(addr, connections, Duration::from_secs(1), make.clone()));
    client.block_on(run(addr, connections, Duration::from_secs(seconds), make))
}

/// One request to send.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`...
    pub method: http::Method,
    /// Path and query.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Bytes,
}

impl Request {
    /// A GET of `path`.
    pub fn get(path: impl Into<String>) -> Request {
        Request {
            method: http::Method::GET,
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A POST of a JSON body.
    pub fn post_json(path: impl Into<String>, body: impl Into<Bytes>) -> Request {
        Request {
            method: http::Method::POST,
            path: path.into(),
            headers: vec![("content-type", "application/json".into())],
            body: body.into(),
        }
    }

    /// This request with one more header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }
}

/// What a load run measured.
pub struct LoadResult {
    /// Requests answered 200.
    pub requests: u64,
    /// Requests that failed or answered anything else.
    pub errors: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latencies of the successful requests, sorted, in microseconds.
    pub latencies_us: Vec<u32>,
}

impl LoadResult {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p`th percentile latency in microseconds.
    pub fn percentile(&self, p: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let i = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        self.latencies_us[i]
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).ok();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

/// Sends `request` and reads the whole answer; `None` when the connection failed.
async fn exchange(sender: &mut Sender, request: Request) -> Option<(u16, Bytes)> {
    let mut builder = http::Request::builder()
        .method(request.method)
        .uri(request.path)
        .header("host", "bench");
    for (name, value) in request.headers {
        builder = builder.header(name, value);
    }
    let request = builder.body(Full::new(request.body)).ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, body))
}

/// Sends `request`; its status (0 when the connection failed).
async fn send(sender: &mut Sender, request: Request) -> u16 {
    exchange(sender, request).await.map_or(0, |(status, _)| status)
}

/// Runs `connections` closed-loop clients against `addr` for `duration`;
/// `make(n)` builds the `n`th request (numbered across all connections).
pub async fn run<F>(addr: SocketAddr, connections: usize, duration: Duration, make: F) -> LoadResult
where
    F: Fn(u64) -> Request + Clone + Send + 'static,
{
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (make, counter) = (make.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < until {
                let request = make(counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                let sent = Instant::now();
                match send(&mut sender, request).await {
                    200 => latencies.push(sent.elapsed().as_micros() as u32),
                    0 => {
                        errors += 1;
                        sender = connect(addr).await;
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut result = LoadResult {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    for task in tasks {
        let (latencies, errors) = task.await.expect("load task");
        result.requests += latencies.len() as u64;
        result.errors += errors;
        result.latencies_us.extend(latencies);
    }
    result.elapsed = started.elapsed();
    result.latencies_us.sort_unstable();
    result
}
