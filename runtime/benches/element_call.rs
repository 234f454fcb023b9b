//! The Element call alone: `Element::serve` on the hello Element, fresh and
//! reused, called back to back on one thread with no network, so the cost of
//! an instance (its store, instantiation, the call and tear-down) can be
//! profiled without the HTTP server's and the kernel's share around it.
//! Then the same requests through the server's router (its middleware, the
//! Element route's handling, the response), and the native `GET /health`
//! through it too: the server's own part of a request, without the network.
//!
//! `cargo xtask bench --bench element_call`. Knobs: `BENCH_CALLS` (per
//! variant, default 20,000), `BENCH_ONLY` (one variant: `fresh`, `reused`,
//! `router-native`, `router-fresh` or `router-reused`). Prints microseconds
//! per call (wall time on one thread). For instruction counts, run it under
//! `valgrind --tool=callgrind --toggle-collect='*Element*serve*'` (the
//! Element variants) or `--toggle-collect='*oneshot*'` (the router ones).
//! Under valgrind the pooling allocator can't reserve its address space and
//! the engine falls back to on-demand allocation (the first line printed
//! says which), so fresh counts are of that path; the pool's reset is
//! mostly kernel time, which callgrind does not count anyway.

mod common;

use std::time::Instant;

use bytes::Bytes;
use common::{deploy_hello, env_or};
use elements_config::Config;
use elements_host::instance::RequestInfo;
use tower::ServiceExt;

fn main() {
    let calls = env_or("BENCH_CALLS", 20_000);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Config::in_dir(dir.path());
    deploy_hello(&config);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let runtime = elements_runtime::Runtime::start(&config).await.expect("server");
        println!("instance allocation: {:?}", runtime.allocation);
        let services = &runtime.app.deployer.host().services;
        for (name, prefix) in [("fresh", "hello"), ("reused", "hello-reuse")] {
            if !only.is_empty() && only != name {
                continue;
            }
            let element = runtime.app.registry.get(prefix).expect("deployed");
            // The headers a request from a game client brings, plus those
            // the server adds.
            let request = || {
                http::Request::get("http://localhost/hello")
                    .header("host", "127.0.0.1:8080")
                    .header("user-agent", "UnityPlayer/2022.3.10f1 (UnityWebRequest/1.0)")
                    .header("accept", "application/json")
                    .header("x-request-id", "9c638feb-1")
                    .header("content-length", "0")
                    .body(Bytes::new())
                    .expect("request")
            };
            // Warm-up: the first calls fill caches and the reuse pool.
            for _ in 0..1000 {
                let response = element
                    .serve(services, request(), RequestInfo::internal("warm"))
                    .await
                    .expect("hello answers");
                assert_eq!(response.status(), 200);
            }
            let started = Instant::now();
            for _ in 0..calls {
                element
                    .serve(services, request(), RequestInfo::internal("bench"))
                    .await
                    .expect("hello answers");
            }
            let per_call = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
            println!("hello, {name:<7} {per_call:8.2} µs per call ({calls} calls)");
        }

        let router = runtime.public_service();
        for (name, path) in [
            ("router-native", "/health"),
            ("router-fresh", "/app/rest/hello/hello"),
            ("router-reused", "/app/rest/hello-reuse/hello"),
        ] {
            if !only.is_empty() && only != name {
                continue;
            }
            // What a game client sends (the server adds the request id).
            let request = || {
                http::Request::get(path)
                    .header("host", "127.0.0.1:8080")
                    .header("user-agent", "UnityPlayer/2022.3.10f1 (UnityWebRequest/1.0)")
                    .header("accept", "application/json")
                    .body(axum::body::Body::empty())
                    .expect("request")
            };
            let call = || async {
                let response = router.clone().oneshot(request()).await.expect("infallible");
                assert_eq!(response.status(), 200);
                axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .expect("body")
            };
            for _ in 0..1000 {
                call().await;
            }
            let started = Instant::now();
            for _ in 0..calls {
                call().await;
            }
            let per_call = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
            println!("{name:<14} {per_call:8.2} µs per call ({calls} calls)");
        }
    });
}
