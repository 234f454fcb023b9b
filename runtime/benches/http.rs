//! HTTP benchmark: the hello Element (fresh instance per request, and reused
//! instances) against a native Rust route of the same server, under a
//! closed-loop load generator at fixed concurrency, in one run.
//!
//! Run with `cargo xtask bench` (builds the Elements first). Knobs:
//! `BENCH_SECONDS` (per route, default 5), `BENCH_CONNECTIONS` (default 16),
//! `BENCH_ONLY` (run only the routes whose name contains it).
//! Prints req/s, p50 and p99 latency per route and each route's ratio to the
//! native one. A figure, not a pass/fail test: machines here are shared.

use std::path::Path;
use std::time::Duration;

use axum::routing::get;

mod loadgen;

use elements_runtime::config::Config;
use elements_runtime::{Runtime, serve};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds = env_or("BENCH_SECONDS", 5);
    let connections = env_or("BENCH_CONNECTIONS", 16) as usize;
    let guests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guests/wasm32-wasip2/release");
    let guests = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| Path::new(&t).join("guests/wasm32-wasip2/release"))
        .unwrap_or(guests);
    let hello = guests.join("hello.wasm");
    assert!(
        hello.exists(),
        "{} is missing: run `cargo xtask bench`",
        hello.display()
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::in_dir(dir.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    std::fs::create_dir_all(&config.deploy_dir).unwrap();
    std::fs::copy(&hello, config.deploy_dir.join("hello.wasm")).unwrap();
    std::fs::copy(&hello, config.deploy_dir.join("hello-reuse.wasm")).unwrap();
    std::fs::write(
        config.deploy_dir.join("hello-reuse.toml"),
        "[limits]\nisolation = \"reuse\"\n",
    )
    .unwrap();

    // The server gets its own multi-threaded runtime, like the real binary.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = server_rt.block_on(async {
        let runtime = Runtime::start(&config).await.expect("runtime");
        println!("instance allocation: {:?}", runtime.allocation);
        let router = runtime.router().route(
            "/native/hello",
            get(|| async { axum::Json(serde_json::json!({"message": "Hello from an Element!"})) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _runtime = runtime;
            serve(listener, router, std::future::pending()).await
        });
        addr
    });

    println!("{connections} connections, {seconds} s per route, after a 1 s warm-up");
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>8}",
        "route", "req/s", "p50 us", "p99 us", "ratio"
    );
    let routes = [
        ("native", "/native/hello"),
        ("element fresh", "/app/rest/hello/hello"),
        ("element reuse", "/app/rest/hello-reuse/hello"),
    ];
    // BENCH_ONLY=fresh (a substring of a route's name) runs one route, for profiling.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let mut native_rps = None;
    for (name, path) in routes {
        if !name.contains(only.as_str()) {
            continue;
        }
        let client_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let make = move |_| loadgen::Request::get(path);
        client_rt.block_on(loadgen::run(addr, connections, Duration::from_secs(1), make));
        let result = client_rt.block_on(loadgen::run(
            addr,
            connections,
            Duration::from_secs(seconds),
            make,
        ));
        let rps = result.rate();
        let base = *native_rps.get_or_insert(rps);
        println!(
            "{:<28} {:>10.0} {:>10} {:>10} {:>7.3}x",
            format!("{name} ({path})").chars().take(28).collect::<String>(),
            rps,
            result.percentile(50.0),
            result.percentile(99.0),
            rps / base
        );
        assert_eq!(result.errors, 0, "{name}: {} failed requests", result.errors);
    }
}
