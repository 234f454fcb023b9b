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

/// Puts the hello Element in `config`'s deploy folder twice: `hello`
/// (fresh instances) and `hello-reuse` (reused instances).
pub fn deploy_hello(config: &Config) {
    let hello = guest("hello");
    std::fs::create_dir_all(&config.deploy_dir).expect("deploy dir");
    std::fs::copy(&hello, config.deploy_dir.join("hello.wasm")).expect("copy");
    std::fs::copy(&hello, config.deploy_dir.join("hello-reuse.wasm")).expect("copy");
    std::fs::write(
        config.deploy_dir.join("hello-reuse.toml"),
        "[limits]\nisolation = \"reuse\"\n",
    )
    .expect("manifest");
}

/// Starts the server for `config` on `server` (a multi-threaded runtime,
/// like the real binary's), with extra `routes`; returns its address.
pub fn serve_in_process(server: &tokio::runtime::Runtime, config: &Config) -> SocketAddr {
    server.block_on(async {
        let runtime = Runtime::start(config).await.expect("server");
        println!("instance allocation: {:?}", runtime.allocation);
        let router = runtime.public_service();
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
    let answer = match Connection::open(addr).await {
        Ok(mut connection) => connection.exchange(&request.encode()).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok((status, body)) => (status, serde_json::from_slice(&body).unwrap_or_default()),
        Err(_) => (0, serde_json::Value::Null),
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

/// Prints the header of a table of [`print_row`] rows.
pub fn print_header(last: &str) {
    println!(
        "{:<36} {:>10} {:>10} {:>10}  {last}",
        "scenario", "req/s", "p50 ms", "p99 ms"
    );
}

/// Prints one scenario's req/s and p50 and p99 latency (ms), then `last`.
pub fn print_row(name: &str, result: &LoadResult, last: &str) {
    println!(
        "{:<36} {:>10.0} {:>10.2} {:>10.2}  {last}",
        name,
        result.rate(),
        result.percentile(50.0) as f64 / 1000.0,
        result.percentile(99.0) as f64 / 1000.0,
    );
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
    /// This run and `other` as one: their requests, errors, times and
    /// latencies together.
    pub fn merge(mut self, other: LoadResult) -> LoadResult {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
        self.latencies_us.sort_unstable();
        self
    }

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

/// One keep-alive HTTP/1.1 connection, spoken by hand like `wrk` does: the
/// request is written as bytes and the answer framed by its
/// `content-length` (or chunks), nothing else parsed. A general client
/// (hyper's) costs more per request than a small route does, which would
/// hide the server's own cost and squash every ratio toward 1.
struct Connection {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Sends `request` (already encoded) and reads the whole answer.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, Bytes)> {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(request).await?;
        self.buf.clear();
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(invalid)?;
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("status line"))?;
        let mut length = None;
        let mut chunked = false;
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse::<usize>().map_err(invalid)?);
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
        if !chunked {
            let end = head_end + length.unwrap_or(0);
            while self.buf.len() < end {
                self.fill().await?;
            }
            return Ok((status, Bytes::copy_from_slice(&self.buf[head_end..end])));
        }
        let mut body = Vec::new();
        let mut at = head_end;
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf[at..], b"\r\n") {
                    break at + i;
                }
                self.fill().await?;
            };
            let size_text = std::str::from_utf8(&self.buf[at..line_end]).map_err(invalid)?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(invalid)?;
            let data = line_end + 2;
            // The last chunk is followed by (no trailers, then) an empty line.
            while self.buf.len() < data + size + 2 {
                self.fill().await?;
            }
            body.extend_from_slice(&self.buf[data..data + size]);
            at = data + size + 2;
            if size == 0 {
                return Ok((status, Bytes::from(body)));
            }
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncReadExt;
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad answer: {e}"))
}

impl Request {
    /// The request as it goes on the wire.
    fn encode(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\nhost: bench\r\n", self.method, self.path);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.body.is_empty() || self.method != http::Method::GET {
            out.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
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
            let mut connection = Connection::open(addr).await.expect("connect");
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < until {
                let request = make(counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed)).encode();
                let sent = Instant::now();
                match connection.exchange(&request).await {
                    Ok((200, _)) => latencies.push(sent.elapsed().as_micros() as u32),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        connection = Connection::open(addr).await.expect("reconnect");
                    }
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
