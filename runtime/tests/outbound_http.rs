//! Outbound HTTP against the operator's policy, through the real server and
//! the fixture Element's `/fetch`, with a real HTTP/1.1 upstream on loopback:
//! names that resolve to loopback are refused unless the operator allowed
//! the network or named the exact address, and the response size cap and
//! the timeouts cut misbehaving upstreams.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Dirs, Server, json as read_json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The byte cap of the servers started with [`operator_config`].
const CAP: usize = 4096;
/// The whole-exchange timeout of the servers started with [`operator_config`].
const TIMEOUT_MS: u64 = 1500;

/// A hand-written HTTP/1.1 upstream on 127.0.0.1, so each test controls the
/// exact bytes (and silences) on the wire. Routes:
/// `/ping` (200 `pong`), `/big?n=N` (N bytes with Content-Length),
/// `/chunked?n=N` (N bytes, chunked, no length), `/keep` (200 `kept`, and
/// the connection stays open for more requests), `/hang` (never answers),
/// `/stall` (a head promising 100 bytes, 10 bytes, then nothing).
struct Upstream {
    port: u16,
    /// Connections accepted.
    connections: Arc<AtomicUsize>,
    /// Connections the client closed while the upstream was hanging on them.
    released: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let released = Arc::new(AtomicUsize::new(0));
        let (accepted, closed) = (connections.clone(), released.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, closed.clone()));
            }
        });
        Upstream {
            port,
            connections,
            released,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Waits until the client has closed `n` of the hanging connections.
    async fn wait_released(&self, n: usize) {
        let started = Instant::now();
        while self.released.load(Ordering::SeqCst) < n {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the server kept a timed-out upstream connection open"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn serve(mut stream: TcpStream, released: Arc<AtomicUsize>) {
    // `/keep` answers keep the connection open for the next request.
    while serve_one(&mut stream, &released).await {}
}

/// Answers one request; true if the connection stays open for another.
async fn serve_one(stream: &mut TcpStream, released: &AtomicUsize) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 1];
    // A byte at a time: nothing of a next request is read with this one.
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let n: usize = query.strip_prefix("n=").and_then(|n| n.parse().ok()).unwrap_or(0);
    let reply = match path {
        "/ping" => b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\npong".to_vec(),
        "/keep" => b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nkept".to_vec(),
        "/big" => {
            let mut reply =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n").into_bytes();
            reply.extend(std::iter::repeat_n(b'x', n));
            reply
        }
        "/chunked" => {
            let mut reply =
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
            let mut left = n;
            while left > 0 {
                let size = left.min(1000);
                reply.extend(format!("{size:x}\r\n").into_bytes());
                reply.extend(std::iter::repeat_n(b'x', size));
                reply.extend(b"\r\n");
                left -= size;
            }
            reply.extend(b"0\r\n\r\n");
            reply
        }
        "/stall" => b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789".to_vec(),
        // `/hang`: nothing at all.
        _ => Vec::new(),
    };
    if stream.write_all(&reply).await.is_err() {
        return false;
    }
    if matches!(path, "/hang" | "/stall") {
        // Hold the connection until the client lets go of it.
        let mut buf = [0u8; 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        released.fetch_add(1, Ordering::SeqCst);
    }
    path == "/keep"
}

/// A TLS server on 127.0.0.1 with a self-signed certificate for
/// `localhost` (made by the `openssl` command); returns the port and the
/// number of handshakes that succeeded.
async fn self_signed_tls_server(dir: &std::path::Path) -> (u16, Arc<AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl command");
    assert!(status.success(), "openssl could not make a certificate");
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from_pem_file(&cert).unwrap()],
                PrivateKeyDer::from_pem_file(&key).unwrap(),
            )
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counter = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if let Ok(mut tls) = acceptor.accept(stream).await {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
                    .await;
            }
        }
    });
    (port, handshakes)
}

/// Adds `text` to the servers' configuration file.
fn append_config(dirs: &Dirs, text: &str) {
    let path = dirs.root.path().join("elements.toml");
    let mut config = std::fs::read_to_string(&path).unwrap_or_default();
    config.push_str(text);
    dirs.config(&config);
}

/// Operator settings allowing loopback, with a small cap and timeout.
fn operator_config(dirs: &Dirs) {
    append_config(
        dirs,
        &format!(
            "[services.http]\nallow_networks = [\"127.0.0.0/8\"]\nmax_response_bytes = {CAP}\n\
             timeout_ms = {TIMEOUT_MS}\nconnect_timeout_ms = 1000\n"
        ),
    );
}

/// Deploys the fixture as `name`, requesting `http.outbound:` grants for
/// `entries` (comma-separated), which the operator approves.
fn allow(dirs: &Dirs, name: &str, entries: &str) {
    let grants: Vec<String> = entries
        .split(',')
        .map(|e| format!("http.outbound:{}", e.trim()))
        .collect();
    let list: Vec<&str> = grants.iter().map(String::as_str).collect();
    dirs.deploy(name, "misbehave", &format!("grants = {list:?}\n"));
    append_config(dirs, &support::grants_section(name, &list));
}

/// The Element `element` fetches `url` (optionally with its own timeout):
/// status and JSON body of its answer, and how long it took.
async fn fetch(server: &Server, element: &str, url: &str, timeout_ms: Option<u64>) -> (u16, Value, Duration) {
    let encoded: String = url
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut path = format!("/app/rest/{element}/fetch?url={encoded}");
    if let Some(ms) = timeout_ms {
        path.push_str(&format!("&timeout_ms={ms}"));
    }
    let started = Instant::now();
    let (status, body) = read_json(server.get(&path).await).await;
    (status, body, started.elapsed())
}

fn message(body: &Value) -> String {
    body["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolving_to_loopback_are_refused_unless_the_address_is_approved() {
    let upstream = Upstream::start().await;
    let port = upstream.port;
    let dirs = Dirs::new();
    allow(&dirs, "named", &format!("localhost:{port}"));
    allow(&dirs, "literal", &format!("127.0.0.1:{port}"));
    allow(&dirs, "anyport", "127.0.0.1");
    allow(&dirs, "metadata", "metadata.google.internal, localhost");
    let server = Server::start(&dirs, &[]);

    // (a) An allow-listed name that resolves to loopback: denied before any
    // connection, and logged with the Element and the host, not the query.
    let (status, body, _) = fetch(
        &server,
        "named",
        &format!("http://localhost:{port}/ping?token=s3cret"),
        None,
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "UPSTREAM_UNAVAILABLE", "{body}");
    assert!(message(&body).contains("not allowed"), "{body}");
    let line = server.wait_for_log_line(&["non-public address"], Duration::from_secs(5));
    let log = server.log();
    assert!(line.contains("named") && line.contains("localhost"), "{line}");
    assert!(line.contains("loopback"), "{line}");
    assert!(!log.contains("s3cret"), "the URL query reached the log");

    // A bare name (any port) resolving to loopback is refused the same way.
    let (status, body, _) = fetch(
        &server,
        "metadata",
        &format!("http://localhost:{port}/ping"),
        None,
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(message(&body).contains("not allowed"), "{body}");
    assert_eq!(
        upstream.connections(),
        0,
        "a refused destination was connected to"
    );

    // (c) An allow-listed IP literal: the operator approved that exact address.
    let (status, body, _) = fetch(&server, "literal", &format!("http://127.0.0.1:{port}/ping"), None).await;
    assert_eq!(
        (status, &body["status"], &body["body"]),
        (200, &200.into(), &"pong".into()),
        "{body}"
    );
    let (status, body, _) = fetch(&server, "anyport", &format!("http://127.0.0.1:{port}/ping"), None).await;
    assert_eq!((status, &body["body"]), (200, &"pong".into()), "{body}");
    // The literal approves 127.0.0.1 only, not its neighbours or other forms.
    let (status, body, _) = fetch(&server, "literal", &format!("http://127.0.0.2:{port}/ping"), None).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_networks_caps_and_timeouts() {
    let upstream = Upstream::start().await;
    let port = upstream.port;
    let dirs = Dirs::new();
    allow(&dirs, "named", &format!("localhost:{port}"));
    let config_dir = tempfile::tempdir().unwrap();
    operator_config(&dirs);
    // Deployed later (hot), but approved in the configuration from the start.
    let (tls_port, handshakes) = self_signed_tls_server(config_dir.path()).await;
    let secure = format!("http.outbound:localhost:{tls_port}");
    append_config(&dirs, &support::grants_section("secure", &[&secure]));
    let server = Server::start(&dirs, &[]);
    let url = |path: &str| format!("http://localhost:{port}{path}");

    // (b) The operator allowed 127.0.0.0/8: the same name now connects.
    let (status, body, _) = fetch(&server, "named", &url("/ping"), None).await;
    assert_eq!(
        (status, &body["status"], &body["body"]),
        (200, &200.into(), &"pong".into()),
        "{body}"
    );

    // (d) Bodies up to the cap pass; one byte more fails, announced by its
    // length or counted while streaming.
    let (status, body, _) = fetch(&server, "named", &url(&format!("/big?n={CAP}")), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["body"].as_str().map(str::len), Some(CAP));
    let (status, body, _) = fetch(&server, "named", &url(&format!("/chunked?n={CAP}")), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["body"].as_str().map(str::len), Some(CAP));
    let (status, body, _) = fetch(&server, "named", &url(&format!("/big?n={}", CAP + 1)), None).await;
    assert_eq!(status, 502, "{body}");
    assert!(message(&body).contains("HttpResponseBodySize"), "{body}");
    let (status, body, _) = fetch(&server, "named", &url("/chunked?n=1000000"), None).await;
    assert_eq!(status, 502, "{body}");
    assert!(message(&body).to_lowercase().contains("body size"), "{body}");

    // (e) An upstream that never answers is cut at the operator's timeout...
    let (status, body, took) = fetch(&server, "named", &url("/hang"), None).await;
    assert_eq!(status, 502, "{body}");
    assert!(message(&body).contains("Timeout"), "{body}");
    let timeout = Duration::from_millis(TIMEOUT_MS);
    assert!(took >= timeout && took < timeout * 4, "cut after {took:?}");
    // ... and so is one that stops halfway through its body.
    let (status, body, took) = fetch(&server, "named", &url("/stall"), None).await;
    assert_eq!(status, 502, "{body}");
    assert!(message(&body).to_lowercase().contains("timeout"), "{body}");
    assert!(took >= timeout && took < timeout * 4, "cut after {took:?}");
    // The host let go of both connections.
    upstream.wait_released(2).await;

    // The Element may shorten the timeout, never lengthen it.
    let (status, body, took) = fetch(&server, "named", &url("/hang"), Some(200)).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        took < timeout,
        "the Element's shorter timeout was ignored: {took:?}"
    );
    let (status, body, took) = fetch(&server, "named", &url("/hang"), Some(60_000)).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        took < timeout * 4,
        "the Element lengthened the operator's timeout: {took:?}"
    );
    upstream.wait_released(4).await;

    // https: TLS to the checked address, verified against the host name. A
    // self-signed certificate is refused, so no request is ever sent.
    dirs.deploy("secure", "misbehave", &format!("grants = [{secure:?}]\n"));
    server.wait_for_log("Element deployed at /app/rest/secure", Duration::from_secs(10));
    let (status, body, _) = fetch(&server, "secure", &format!("https://localhost:{tls_port}/"), None).await;
    assert_eq!(status, 502, "{body}");
    assert!(message(&body).contains("TlsCertificateError"), "{body}");
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);

    // The server is fine afterwards.
    let (status, body, _) = fetch(&server, "named", &url("/ping"), None).await;
    assert_eq!(status, 200, "{body}");
}

/// Exchanges reuse an Element's keep-alive connections (one connection for
/// many calls), never another Element's, and never one the upstream closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_are_reused_by_their_element_only() {
    let upstream = Upstream::start().await;
    let dirs = Dirs::new();
    operator_config(&dirs);
    let entry = format!("127.0.0.1:{}", upstream.port);
    allow(&dirs, "first", &entry);
    allow(&dirs, "second", &entry);
    let server = Server::start(&dirs, &[]);
    let keep = format!("http://127.0.0.1:{}/keep", upstream.port);

    for _ in 0..5 {
        let (status, body, _) = fetch(&server, "first", &keep, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["body"], "kept", "{body}");
    }
    assert_eq!(
        upstream.connections(),
        1,
        "five calls in a row should share one keep-alive connection"
    );

    let (status, body, _) = fetch(&server, "second", &keep, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        upstream.connections(),
        2,
        "another Element must get a connection of its own"
    );

    // A `Connection: close` answer ends the connection it came on: the
    // first call takes the pooled one, which the upstream then closes, and
    // every later call connects anew.
    let ping = format!("http://127.0.0.1:{}/ping", upstream.port);
    for expected in [2, 3, 4] {
        let (status, body, _) = fetch(&server, "first", &ping, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(upstream.connections(), expected);
    }
    // Pooling starts again with the next keep-alive answer.
    for _ in 0..3 {
        let (status, body, _) = fetch(&server, "first", &keep, None).await;
        assert_eq!((status, body["body"].as_str()), (200, Some("kept")), "{body}");
    }
    assert_eq!(upstream.connections(), 5);
}
