//! HTTP benchmark: the hello Element (fresh instance per request, and reused
//! instances) against a native Rust route of the same server, under a
//! closed-loop load generator at fixed concurrency, in one run.
//!
//! Run with `cargo xtask bench` (builds the Elements first). Knobs:
//! `BENCH_SECONDS` (per route, default 5), `BENCH_CONNECTIONS` (default 16),
//! `BENCH_ONLY` (run only the routes whose name contains it), `BENCH_METRICS`
//! (0: the server records no metrics; default 1).
//! Prints req/s, p50 and p99 latency per route and each route's ratio to the
//! native one. A figure, not a pass/fail test: machines here are shared.

mod common;

use axum::routing::get;
use common::{Request, env_or, guest, measure, serve_in_process};
use elements_config::Config;

fn main() {
    let seconds = env_or("BENCH_SECONDS", 5);
    let connections = env_or("BENCH_CONNECTIONS", 16) as usize;
    let hello = guest("hello");

    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::in_dir(dir.path());
    config.metrics = env_or("BENCH_METRICS", 1) != 0;
    std::fs::create_dir_all(&config.deploy_dir).expect("deploy dir");
    std::fs::copy(&hello, config.deploy_dir.join("hello.wasm")).expect("copy");
    std::fs::copy(&hello, config.deploy_dir.join("hello-reuse.wasm")).expect("copy");
    std::fs::write(
        config.deploy_dir.join("hello-reuse.toml"),
        "[limits]\nisolation = \"reuse\"\n",
    )
    .expect("manifest");

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let addr = serve_in_process(&server_rt, &config, |router| {
        router.route(
            "/native/hello",
            get(|| async { axum::Json(serde_json::json!({"message": "Hello from an Element!"})) }),
        )
    });
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    println!(
        "{connections} connections, {seconds} s per route, after a 1 s warm-up, metrics {}",
        if config.metrics { "on" } else { "off" }
    );
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
        let result = measure(&client_rt, addr, connections, seconds, move |_| {
            Request::get(path)
        });
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
