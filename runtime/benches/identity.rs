//! Identity benchmark: Nakama device authentication of an existing account
//! and of new accounts, and email authentication of an existing account,
//! against the real server in-process (embedded SQLite, or MongoDB when
//! `ELEMENTS_MONGODB_URI` is set), under a closed-loop load generator.
//!
//! `cargo bench -p elements-runtime --bench identity`. Knobs: `BENCH_SECONDS`
//! (per scenario, default 5), `BENCH_CONNECTIONS` (default 16). Prints req/s
//! and p50/p99 latency per scenario. A figure, not a pass/fail test.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Request, call, env_or, measure, serve_in_process};
use elements_config::{Config, StoreChoice};

/// What one request of a scenario sends: path and body.
type MakeRequest = Arc<dyn Fn(u64) -> (String, String) + Send + Sync>;

/// An authenticate call with the default server key ("defaultkey:" in base64).
fn authenticate(path: impl Into<String>, body: impl Into<bytes::Bytes>) -> Request {
    Request::post_json(path, body).header("authorization", "Basic ZGVmYXVsdGtleTo=")
}

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
    let addr = serve_in_process(&server_rt, &config, |router| router);
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
            let (status, answer) = call(addr, authenticate(path, body)).await;
            assert_eq!(status, 200, "creating the bench accounts failed: {answer}");
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
            authenticate(path, body)
        };
        let result = measure(&client_rt, addr, connections, seconds, request);
        println!(
            "{:<28} {:>10.0} {:>10.2} {:>10.2}",
            name,
            result.rate(),
            result.percentile(50.0) as f64 / 1000.0,
            result.percentile(99.0) as f64 / 1000.0,
        );
        assert_eq!(result.errors, 0, "{name}: {} failed requests", result.errors);
    }
}
