//! Roblox Kit benchmark: `POST /app/rest/roblox/auth` for an existing player
//! (Roblox lookup on a loopback stub of the users API, find user, find
//! profile, session), against the real server in-process, under a
//! closed-loop load generator. Once with a fresh instance per request (the
//! default) and once with reused instances.
//!
//! Build the Element first, then run:
//!
//! ```text
//! CARGO_TARGET_DIR=target/guests cargo build --release --target wasm32-wasip2 -p roblox-kit
//! cargo bench -p elements-runtime --bench roblox
//! ```
//!
//! Knobs: `BENCH_SECONDS` (per scenario, default 5), `BENCH_CONNECTIONS`
//! (default 16). Prints req/s and p50/p99 latency. A figure, not a pass/fail
//! test.

mod loadgen;
#[path = "../tests/support/roblox.rs"]
#[allow(dead_code)]
mod roblox;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use elements_identity::Secret;
use elements_runtime::config::Config;
use elements_runtime::{Runtime, serve};

const ROOT_PASSWORD: &str = "bench-root-password";
const SECRET: &str = "bench-roblox-secret";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds = env_or("BENCH_SECONDS", 5);
    let connections = env_or("BENCH_CONNECTIONS", 16) as usize;
    let guests = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| Path::new(&t).join("guests/wasm32-wasip2/release"))
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guests/wasm32-wasip2/release")
        });
    let component = guests.join("roblox_kit.wasm");
    assert!(
        component.exists(),
        "{} is missing: build the Element first (see the header of this file)",
        component.display()
    );
    let element_toml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../elements/roblox-kit/element.toml"),
    )
    .expect("elements/roblox-kit/element.toml");

    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::in_dir(dir.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.identity.root_password = Some(Secret::new(ROOT_PASSWORD));
    std::fs::create_dir_all(&config.deploy_dir).unwrap();

    // The server and the Roblox stub share a multi-threaded runtime, like
    // the real binary (the stub is tiny next to the Element).
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let stub = server_rt.block_on(roblox::start());
    let values = format!(
        "\n[values]\n\"dev.getelements.robloxkit.secret\" = \"{SECRET}\"\n\
         \"dev.getelements.robloxkit.roblox.users.api.url\" = \"http://127.0.0.1:{stub}/v1\"\n\
         \"dev.getelements.elements.http.allow\" = \"127.0.0.1:{stub}\"\n"
    );
    for (name, prefix, limits) in [
        ("roblox-kit", "roblox", ""),
        (
            "roblox-reuse",
            "roblox-reuse",
            "\n[limits]\nisolation = \"reuse\"\n",
        ),
    ] {
        std::fs::copy(&component, config.deploy_dir.join(format!("{name}.wasm"))).unwrap();
        let manifest = element_toml.replace("prefix = \"roblox\"", &format!("prefix = \"{prefix}\""));
        std::fs::write(
            config.deploy_dir.join(format!("{name}.toml")),
            format!("{manifest}{limits}{values}"),
        )
        .unwrap();
    }
    let addr = server_rt.block_on(async {
        let runtime = Runtime::start(&config).await.expect("runtime");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = runtime.router();
        tokio::spawn(async move {
            let _runtime = runtime;
            serve(listener, router, std::future::pending()).await
        });
        addr
    });

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = json!({"application": "bench_game", "robloxUserId": roblox::PLAYER}).to_string();
    client_rt.block_on(async {
        // An application, and the player's first login (which creates them).
        let mut sender = connect(addr).await;
        let (status, session) = send(
            &mut sender,
            "/api/rest/session",
            &[],
            json!({"userId": "root", "password": ROOT_PASSWORD}).to_string(),
        )
        .await;
        assert_eq!(status, 200, "root login: {session}");
        let bearer = format!("Bearer {}", session["sessionSecret"].as_str().unwrap());
        let (status, app) = send(
            &mut sender,
            "/api/rest/application",
            &[("authorization", &bearer)],
            json!({"name": "bench_game"}).to_string(),
        )
        .await;
        assert!(status == 200 || status == 201, "creating the application: {app}");
        let (status, first) = send(
            &mut sender,
            "/app/rest/roblox/auth",
            &[("robloxkit-secret", SECRET)],
            body.clone(),
        )
        .await;
        assert_eq!(status, 200, "first login: {first}");
    });

    println!("{connections} connections, {seconds} s per scenario, after a 1 s warm-up");
    println!(
        "{:<36} {:>10} {:>10} {:>10}",
        "scenario", "req/s", "p50 ms", "p99 ms"
    );
    for (name, path) in [
        ("existing player, fresh instances", "/app/rest/roblox/auth"),
        ("existing player, reused instances", "/app/rest/roblox-reuse/auth"),
    ] {
        let body = body.clone();
        let request =
            move |_| loadgen::Request::post_json(path, body.clone()).header("robloxkit-secret", SECRET);
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
            "{:<36} {:>10.0} {:>10.2} {:>10.2}",
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

/// One POST; the status and the JSON body (`null` when not JSON or failed).
async fn send(sender: &mut Sender, path: &str, headers: &[(&str, &str)], body: String) -> (u16, Value) {
    let mut request = http::Request::post(path)
        .header("host", "bench")
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body))).expect("request");
    match sender.send_request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            let json = body
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            (status, json)
        }
        Err(_) => (0, Value::Null),
    }
}
