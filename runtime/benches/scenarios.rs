//! The server's benchmark: the scenarios issue 15 compares with Nakama
//! (logins, an account read, Element routes), each against the native
//! `GET /health` measured in the same run.
//!
//! The real server runs in-process (embedded SQLite, or MongoDB when
//! `ELEMENTS_MONGODB_URI` is set) behind its real listener; a closed-loop
//! load generator in its own thread speaks HTTP/1.1 to it over loopback
//! the way `wrk` does. Run with `cargo xtask bench --bench scenarios`
//! (builds the Elements first). Knobs: `BENCH_SECONDS` (per scenario,
//! default 5), `BENCH_CONNECTIONS` (default 16), `BENCH_ONLY` (run only the
//! scenarios whose name contains it, plus the native route), `BENCH_METRICS`
//! (0: the server records no metrics; default 1).
//!
//! Prints req/s, p50 and p99 latency per scenario and its ratio to the
//! native route. Figures, not a pass/fail test: machines here are shared;
//! compare ratios from one run.

mod common;

use std::sync::Arc;

use common::{Request, call, deploy_hello, env_or, measure, serve_in_process};
use elements_config::{Config, StoreChoice};

/// Accounts in the "existing account" pool.
const POOL: u64 = 1000;

/// Nakama's default server key, `defaultkey:` in base64.
const SERVER_KEY: &str = "Basic ZGVmYXVsdGtleTo=";

type MakeRequest = Arc<dyn Fn(u64) -> Request + Send + Sync>;

fn device_login(id: &str) -> Request {
    Request::post_json("/v2/account/authenticate/device", format!(r#"{{"id":"{id}"}}"#))
        .header("authorization", SERVER_KEY)
}

fn main() {
    let seconds = env_or("BENCH_SECONDS", 5);
    let connections = env_or("BENCH_CONNECTIONS", 16) as usize;
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::in_dir(dir.path());
    config.metrics = env_or("BENCH_METRICS", 1) != 0;
    if let Ok(uri) = std::env::var("ELEMENTS_MONGODB_URI")
        && !uri.is_empty()
    {
        let database = format!("bench_scenarios_{}", std::process::id());
        config.store = StoreChoice::Mongo { uri, database };
    }
    deploy_hello(&config);

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

    // The pool of existing accounts, and a session token for each.
    let wants = |name: &str| only.is_empty() || name.contains(only.as_str());
    let tokens: Arc<Vec<String>> = Arc::new(
        if wants("device auth, existing account") || wants("GET /v2/account") {
            client_rt.block_on(async {
                let mut tokens = Vec::new();
                for i in 0..POOL {
                    let (status, answer) = call(addr, device_login(&format!("bench-pool-{i}"))).await;
                    assert_eq!(status, 200, "creating the account pool failed: {answer}");
                    tokens.push(format!("Bearer {}", answer["token"].as_str().expect("token")));
                }
                tokens
            })
        } else {
            Vec::new()
        },
    );

    let run = std::process::id();
    let echo_body = r#"{"message":"hello","n":42}"#;
    let scenarios: Vec<(&str, MakeRequest)> = vec![
        ("native GET /health", Arc::new(|_| Request::get("/health"))),
        (
            "device auth, new account",
            Arc::new(move |n| device_login(&format!("bench-new-{run}-{n}"))),
        ),
        (
            "device auth, existing account",
            Arc::new(|n| device_login(&format!("bench-pool-{}", n % POOL))),
        ),
        ("GET /v2/account", {
            let tokens = tokens.clone();
            Arc::new(move |n| {
                Request::get("/v2/account").header("authorization", tokens[(n % POOL) as usize].clone())
            })
        }),
        (
            "echo Element, fresh",
            Arc::new(move |_| Request::post_json("/app/rest/hello/echo", echo_body)),
        ),
        (
            "echo Element, reused",
            Arc::new(move |_| Request::post_json("/app/rest/hello-reuse/echo", echo_body)),
        ),
        (
            "hello Element, fresh",
            Arc::new(|_| Request::get("/app/rest/hello/hello")),
        ),
        (
            "hello Element, reused",
            Arc::new(|_| Request::get("/app/rest/hello-reuse/hello")),
        ),
    ];

    println!(
        "backend {backend}, {connections} connections, {seconds} s per scenario after a 1 s warm-up, metrics {}",
        if config.metrics { "on" } else { "off" }
    );
    println!(
        "{:<32} {:>10} {:>10} {:>10} {:>9}",
        "scenario", "req/s", "p50 ms", "p99 ms", "/ native"
    );
    let mut native_rps = None;
    for (name, make) in scenarios {
        // The native route always runs: every ratio needs it.
        if native_rps.is_some() && !wants(name) {
            continue;
        }
        let result = measure(&client_rt, addr, connections, seconds, move |n| make(n));
        let rps = result.rate();
        let base = *native_rps.get_or_insert(rps);
        println!(
            "{:<32} {:>10.0} {:>10.2} {:>10.2} {:>8.3}x",
            name,
            rps,
            result.percentile(50.0) as f64 / 1000.0,
            result.percentile(99.0) as f64 / 1000.0,
            rps / base
        );
        assert_eq!(result.errors, 0, "{name}: {} failed requests", result.errors);
    }
}
