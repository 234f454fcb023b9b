//! Connection limits over real sockets: slow heads, idle keep-alive
//! connections and slow bodies are shed by their own deadlines, the
//! connection cap answers 503 and recovers, oversized heads get 431, and
//! `/health` answers while thousands of slow clients hang on.
//!
//! Deadlines are set short (about a second) and the opposite deadline long
//! (a minute), so "closed" and "still open" are told apart by margins of
//! many seconds, not by timing.

mod support;

use std::time::Duration;

use support::{Dirs, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough that nothing under test reaches it by accident.
const LONG_MS: u64 = 60_000;
/// What a test waits at most for the server to close a connection.
const CLOSE_WITHIN: Duration = Duration::from_secs(20);

/// A server with `hello` deployed and these `[connections]` settings; the
/// folders must outlive it.
fn start(section: &str) -> (Server, Dirs) {
    let dirs = Dirs::new();
    dirs.deploy("hello", "hello", "");
    dirs.config(&format!("[connections]\n{section}"));
    (Server::start(&dirs, &[]), dirs)
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(&server.addr).await.expect("connect")
}

/// Reads until the server closes the connection (EOF or reset), returning
/// what came; panics if it stays open past `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open past {within:?}"
    );
    got
}

/// Whether the server still holds the connection open after `wait`.
async fn still_open_after(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1];
    tokio::time::timeout(wait, stream.read(&mut buf)).await.is_err()
}

fn status_of(response: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"))
}

/// The value of header `name` (lower case) in a raw response.
fn header_of(response: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(response);
    let (head, _) = text.split_once("\r\n\r\n")?;
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

fn json_body(response: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(response);
    let (_, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

/// A head that never ends: shed at the header deadline, while a silent
/// connection (the idle deadline is long) stays.
#[tokio::test]
async fn a_slow_head_is_shed_but_an_idle_connection_waits_its_own_deadline() {
    let (server, _dirs) = start(&format!(
        "header_read_timeout_ms = 1000\nidle_timeout_ms = {LONG_MS}\n"
    ));
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut silent = connect(&server).await;
    read_until_closed(&mut slow, CLOSE_WITHIN).await;
    assert!(
        still_open_after(&mut silent, Duration::from_secs(3)).await,
        "a connection that sent nothing was closed long before its idle deadline"
    );
}

/// After a response, a keep-alive connection is closed at the idle
/// deadline, while one with a started head (the head deadline is long)
/// stays.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (server, _dirs) = start(&format!(
        "idle_timeout_ms = 1000\nheader_read_timeout_ms = {LONG_MS}\n"
    ));
    let mut kept = connect(&server).await;
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    kept.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let mut started = connect(&server).await;
    started.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    read_until_closed(&mut kept, CLOSE_WITHIN).await;
    assert!(
        still_open_after(&mut started, Duration::from_secs(3)).await,
        "a started head was cut at the idle deadline instead of the head deadline"
    );
}

/// A body that stops coming gets 408 in the shape of the API asked, and the
/// connection ends: on `/api/rest`, on Nakama's `/v2`, and on an Element.
#[tokio::test]
async fn a_slow_body_gets_408_on_every_api() {
    let (server, _dirs) = start("body_read_timeout_ms = 1000\n");
    for (path, nakama) in [
        ("/api/rest/session", false),
        ("/v2/account/authenticate/device?create=true", true),
        ("/app/rest/hello/echo", false),
    ] {
        let mut stream = connect(&server).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Authorization: Basic ZGVmYXVsdGtleTo=\r\nContent-Length: 100\r\n\r\n{{\"id\":"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let response = read_until_closed(&mut stream, CLOSE_WITHIN).await;
        assert_eq!(
            status_of(&response),
            408,
            "{path}: {}",
            String::from_utf8_lossy(&response)
        );
        let body = json_body(&response);
        let id = header_of(&response, "x-request-id")
            .unwrap_or_else(|| panic!("{path}: no x-request-id: {}", String::from_utf8_lossy(&response)));
        if nakama {
            assert_eq!(body["code"], 4, "{path}: {body}");
        } else {
            assert_eq!(body["code"], "REQUEST_TIMEOUT", "{path}: {body}");
            assert_eq!(body["requestId"], id.as_str(), "{path}: {body}");
        }
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    }
    // The server is fine afterwards.
    assert_eq!(server.get("/health").await.status(), 200);
}

/// Past the cap a connection is answered 503 (JSON, `Retry-After`) and
/// closed; once clients leave, new ones are served again.
#[tokio::test]
async fn the_connection_cap_answers_503_and_recovers() {
    const CAP: usize = 40;
    let (server, _dirs) = start(&format!("max_connections = {CAP}\n"));
    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(connect(&server).await);
    }
    // The server has accepted them all once one more is refused; a refused
    // connection is told why.
    let refused = tokio::time::timeout(CLOSE_WITHIN, async {
        loop {
            let mut extra = connect(&server).await;
            let _ = extra.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
            let response = read_until_closed(&mut extra, CLOSE_WITHIN).await;
            if !response.is_empty() && status_of(&response) == 503 {
                return response;
            }
        }
    })
    .await
    .expect("no connection was refused at the cap");
    let text = String::from_utf8_lossy(&refused).to_ascii_lowercase();
    assert!(text.contains("retry-after: 1"), "{text}");
    assert_eq!(json_body(&refused)["code"], "UNAVAILABLE");

    held.truncate(CAP / 2);
    let served = tokio::time::timeout(CLOSE_WITHIN, async {
        loop {
            if let Ok(response) = server.client.get(server.url("/health")).send().await
                && response.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        served.is_ok(),
        "new connections were still refused after clients left"
    );
}

/// Heads over the byte or field limits get 431 and end the connection.
#[tokio::test]
async fn oversized_heads_get_431() {
    let (server, _dirs) = start("max_header_bytes = 8192\nmax_headers = 20\n");
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    let many = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..25).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
    );
    for head in [big, many] {
        let mut stream = connect(&server).await;
        stream.write_all(head.as_bytes()).await.unwrap();
        let response = read_until_closed(&mut stream, CLOSE_WITHIN).await;
        assert_eq!(status_of(&response), 431);
    }
    let fine = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..15).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
    );
    let mut stream = connect(&server).await;
    stream.write_all(fine.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
}

/// Thousands of clients that send half a head and stop: `/health` keeps
/// answering on new connections while they hang, and every one of them is
/// closed at the head deadline.
#[tokio::test]
async fn health_answers_while_thousands_of_slow_clients_hang() {
    const SLOW: usize = 2000;
    let (server, _dirs) = start("header_read_timeout_ms = 2000\n");
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut stream = connect(&server).await;
        stream
            .write_all(b"POST /api/rest/session HTTP/1.1\r\nHost: x\r\nContent-")
            .await
            .unwrap();
        slow.push(stream);
    }
    for _ in 0..5 {
        let response = server
            .client
            .get(server.url("/health"))
            .send()
            .await
            .expect("health");
        assert_eq!(response.status(), 200);
    }
    let closes = slow
        .into_iter()
        .map(|mut stream| tokio::spawn(async move { read_until_closed(&mut stream, CLOSE_WITHIN).await }));
    for close in closes {
        close.await.expect("every slow client was closed");
    }
}

/// A configuration whose limits can't hold is refused at startup.
#[test]
fn unusable_limits_fail_startup() {
    let dirs = Dirs::new();
    dirs.config("[connections]\nmax_header_bytes = 100\n");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_elements"))
        .arg("--config")
        .arg(dirs.root.path().join("elements.toml"))
        .arg("--deploy-dir")
        .arg(dirs.deploy_dir())
        .arg("--data-dir")
        .arg(dirs.root.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .output()
        .expect("run the server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_header_bytes"), "{stderr}");
}
