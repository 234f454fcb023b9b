//! Identity benchmark: Nakama device authentication of an existing account
//! and of new accounts, and email authentication of an existing account,
//! against the real server in-process (embedded SQLite, or MongoDB when
//! `ELEMENTS_MONGODB_URI` is set), under a closed-loop load generator.
//!
//! `cargo bench -p elements-runtime --bench identity`. Knobs: `BENCH_SECONDS`
//! (per scenario, default 5), `BENCH_CONNECTIONS` (default 16). Prints req/s
//! and p50/p99 latency per scenario. A figure, not a pass/fail test.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

mod loadgen;

use elements_runtime::config::{Config, StoreChoice};
use elements_runtime::{Runtime, serve};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one request of a scenario sends.
type MakeRequest = Arc<dyn Fn(u64) -> (String, String) + Send + Sync>;

fn main() {
    let seconds = env_or("BENCH_SECONDS", 5);
    let connections = env_or("BENCH_CONNECTIONS", 16) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::in_dir(dir.path());
    if let Ok(uri) = std::env::var("ELEMENTS_MONGODB_URI")
        && !uri.is_empty()
    {
        let database = format!("bench_identity_{}", std::process::id());
        config.store = StoreChoice::Mongo { uri, database };
    }
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let addr = server_rt.block_on(async {
        let runtime = Runtime::start(&config).await.expect("server");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let router = runtime.router();
        tokio::spawn(async move {
            let _runtime = runtime;
            serve(listener, router, std::future::pending()).await
        });
        addr
    });
    let backend = match &config.store {
        StoreChoice::Sqlite => "sqlite",
        StoreChoice::Mongo { .. } => "mongodb",
    };
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // Accounts the "existing" scenarios log into.
    client_rt.block_on(async {
        for (path, body) in [
            (
                "/v2/account/authenticate/device",
                r#"{"id":"bench-device-existing"}"#.to_string(),
            ),
            (
                "/v2/account/authenticate/email",
                r#"{"email":"bench@example.com","password":"bench-password"}"#.to_string(),
            ),
        ] {
            let mut sender = connect(addr).await;
            assert!(
                post(&mut sender, path, body).await,
                "creating the bench accounts failed"
            );
        }
    });

    let run = std::process::id();
    let scenarios: Vec<(&str, MakeRequest)> = vec![
        (
            "device, existing account",
            Arc::new(|_| {
                (
                    "/v2/account/authenticate/device".into(),
                    r#"{"id":"bench-device-existing"}"#.into(),
                )
            }),
        ),
        (
            "device, new account",
            Arc::new(move |n| {
                (
                    "/v2/account/authenticate/device".into(),
                    format!(r#"{{"id":"bench-device-{run}-{n}"}}"#),
                )
            }),
        ),
        (
            "email, existing account",
            Arc::new(|_| {
                (
                    "/v2/account/authenticate/email".into(),
                    r#"{"email":"bench@example.com","password":"bench-password"}"#.into(),
                )
            }),
        ),
    ];
    println!("backend {backend}, {connections} connections, {seconds} s per scenario, after a 1 s warm-up");
    println!(
        "{:<28} {:>10} {:>10} {:>10}",
        "scenario", "req/s", "p50 ms", "p99 ms"
    );
    let counter = Arc::new(AtomicU64::new(0));
    for (name, make) in scenarios {
        // One counter across runs, so "new account" ids never repeat.
        let counter = counter.clone();
        let request = move |_| {
            let (path, body) = make(counter.fetch_add(1, Ordering::Relaxed));
            // "defaultkey:" in base64.
            loadgen::Request::post_json(path, body).header("authorization", "Basic ZGVmYXVsdGtleTo=")
        };
        client_rt.block_on(loadgen::run(
            addr,
            connections,
            Duration::from_secs(1),
            request.clone(),
        ));
        let result = client_rt.block_on(loadgen::run(
            addr,
            connections,
            Duration::from_secs(seconds),
            request,
        ));
        println!(
            "{:<28} {:>10.0} {:>10.2} {:>10.2}",
            name,
            result.requests as f64 / result.elapsed.as_secs_f64(),
            result.percentile(50.0) as f64 / 1000.0,
            result.percentile(99.0) as f64 / 1000.0,
        );
        assert_eq!(result.errors, 0, "{name}: {} failed requests", result.errors);
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: std::net::SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).ok();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

/// One authenticate call with the default server key; true on 200.
async fn post(sender: &mut Sender, path: &str, body: String) -> bool {
    let request = http::Request::post(path)
        .header("host", "bench")
        // "defaultkey:" in base64.
        .header("authorization", "Basic ZGVmYXVsdGtleTo=")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    match sender.send_request(request).await {
        Ok(response) => {
            let ok = response.status() == 200;
            response.into_body().collect().await.is_ok() && ok
        }
        Err(_) => false,
    }
}
