//! The benchmarks' closed-loop HTTP load generator: each connection sends
//! its next request as soon as the previous answer is read, until the time
//! is up. Shared by the benches with `mod loadgen;`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

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

/// Sends `request`; its status (0 when the connection failed).
async fn send(sender: &mut Sender, request: Request) -> u16 {
    let mut builder = http::Request::builder()
        .method(request.method)
        .uri(request.path)
        .header("host", "bench");
    for (name, value) in request.headers {
        builder = builder.header(name, value);
    }
    let Ok(request) = builder.body(Full::new(request.body)) else {
        return 0;
    };
    match sender.send_request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.into_body().collect().await {
                Ok(_) => status,
                Err(_) => 0,
            }
        }
        Err(_) => 0,
    }
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
