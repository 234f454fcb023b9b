//! The server's benchmark: the scenarios issue 15 compares with Nakama
//! (logins, an account read, Element routes), each against the native
//! `GET /health` measured in the same run.
//!
//! The real server runs in-process (embedded SQLite, or MongoDB when
//! `ELEMENTS_MONGODB_URI` is set) behind its real listener; a closed-loop
//! load generator in its own thread speaks HTTP/1.1 to it over loopback
//! the way `wrk` does. Run with `cargo xtask bench --bench scenarios`
//! (builds the Elements first). Knobs: `BENCH_SECONDS` (per scenario,
//! default 5), `BENCH_ROUNDS` (default 5), `BENCH_CONNECTIONS` (default 16),
//! `BENCH_ONLY` (run only the scenarios whose name contains it, plus the
//! native route), `BENCH_METRICS` (0: the server records no metrics;
//! default 1).
//!
//! Prints req/s, p50 and p99 latency per scenario and its ratio to the
//! native route. Figures, not a pass/fail test. The machines here are
//! shared, and their speed swings by a third within minutes, so a ratio to
//! one native figure taken at the start would measure the swing as much as
//! the scenario: each scenario's time is cut into `BENCH_ROUNDS` windows,
//! each right after a window of the native route of the same length, and
//! its ratio is the median of the rounds' ratios (their range beside it).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Request, call, deploy_hello, env_or, measure, print_header, print_row, run, serve_in_process};
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
    let rounds = env_or("BENCH_ROUNDS", 5).max(1);
    let window = Duration::from_secs_f64((seconds as f64 / rounds as f64).max(0.5));
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
    let addr = serve_in_process(&server_rt, &config);
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

    let process = std::process::id();
    let echo_body = r#"{"message":"hello","n":42}"#;
    let scenarios: Vec<(&str, MakeRequest)> = vec![
        ("native GET /health", Arc::new(|_| Request::get("/health"))),
        (
            "device auth, new account",
            Arc::new(move |n| device_login(&format!("bench-new-{process}-{n}"))),
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
        "backend {backend}, {connections} connections, {seconds} s per scenario after a 1 s warm-up, \
         in {rounds} rounds each after as long of the native route (ratio: median, range), metrics {}",
        if config.metrics { "on" } else { "off" }
    );
    print_header("/ native");
    let mut scenarios = scenarios.into_iter();
    let (native_name, native) = scenarios.next().expect("the native route comes first");
    let result = measure(&client_rt, addr, connections, seconds, {
        let native = native.clone();
        move |n| native(n)
    });
    print_row(native_name, &result, "1.000x");
    assert_eq!(
        result.errors, 0,
        "{native_name}: {} failed requests",
        result.errors
    );
    for (name, make) in scenarios {
        if !wants(name) {
            continue;
        }
        let load = |make: &MakeRequest, duration| {
            let make = make.clone();
            client_rt.block_on(run(addr, connections, duration, move |n| make(n)))
        };
        load(&make, Duration::from_secs(1));
        let mut ratios = Vec::new();
        let mut total: Option<common::LoadResult> = None;
        for _ in 0..rounds {
            let base = load(&native, window);
            let result = load(&make, window);
            ratios.push(result.rate() / base.rate());
            total = Some(match total {
                Some(total) => total.merge(result),
                None => result,
            });
        }
        let result = total.expect("at least one round");
        ratios.sort_by(f64::total_cmp);
        let mid = ratios.len() / 2;
        let median = if ratios.len() % 2 == 1 {
            ratios[mid]
        } else {
            (ratios[mid - 1] + ratios[mid]) / 2.0
        };
        let ratio = if ratios.len() > 1 {
            format!("{median:.3}x ({:.3}-{:.3})", ratios[0], ratios[ratios.len() - 1])
        } else {
            format!("{median:.3}x")
        };
        print_row(name, &result, &ratio);
        assert_eq!(result.errors, 0, "{name}: {} failed requests", result.errors);
    }
}
