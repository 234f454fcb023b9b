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

mod common;
#[path = "../tests/support/roblox.rs"]
#[allow(dead_code)]
mod roblox;

use std::path::Path;

use common::{Request, call, env_or, guest, measure, print_header, print_row, serve_in_process};
use elements_config::Config;
use elements_identity::Secret;
use serde_json::json;

const ROOT_PASSWORD: &str = "bench-root-password";
const SECRET: &str = "bench-roblox-secret";

fn main() {
    let seconds = env_or("BENCH_SECONDS", 5);
    let connections = env_or("BENCH_CONNECTIONS", 16) as usize;
    let component = guest("roblox-kit");
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
         \"dev.getelements.robloxkit.roblox.thumbnails.api.url\" = \"http://127.0.0.1:{stub}/v1\"\n"
    );
    // The operator approves the Kit's grants and the stub's address.
    let grants: std::collections::BTreeSet<elements_config::grants::Grant> = [
        "identity.scheme:dev.getelements.robloxkit.player.id",
        "identity.session",
        // What the manifest asks for (a deploy fails while any is not
        // approved), and the stub standing in for those hosts.
        "http.outbound:users.roblox.com",
        "http.outbound:thumbnails.roblox.com",
        &format!("http.outbound:127.0.0.1:{stub}"),
    ]
    .iter()
    .map(|g| g.parse().expect("grant"))
    .collect();
    for name in ["roblox-kit", "roblox-reuse"] {
        config.element_grants.insert(name.to_owned(), grants.clone());
    }
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
    let addr = serve_in_process(&server_rt, &config);

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = json!({"application": "bench_game", "robloxUserId": roblox::PLAYER}).to_string();
    client_rt.block_on(async {
        // An application, and the player's first login (which creates them).
        let (status, session) = call(
            addr,
            Request::post_json(
                "/api/rest/session",
                json!({"userId": "root", "password": ROOT_PASSWORD}).to_string(),
            ),
        )
        .await;
        assert_eq!(status, 200, "root login: {session}");
        let bearer = format!("Bearer {}", session["sessionSecret"].as_str().unwrap_or_default());
        let create = Request::post_json("/api/rest/application", json!({"name": "bench_game"}).to_string())
            .header("authorization", bearer);
        let (status, app) = call(addr, create).await;
        assert!(status == 200 || status == 201, "creating the application: {app}");
        let (status, first) = call(
            addr,
            Request::post_json("/app/rest/roblox/auth", body.clone()).header("robloxkit-secret", SECRET),
        )
        .await;
        assert_eq!(status, 200, "first login: {first}");
    });

    println!("{connections} connections, {seconds} s per scenario, after a 1 s warm-up");
    print_header("");
    for (name, path) in [
        ("existing player, fresh instances", "/app/rest/roblox/auth"),
        ("existing player, reused instances", "/app/rest/roblox-reuse/auth"),
    ] {
        let body = body.clone();
        let request = move |_| Request::post_json(path, body.clone()).header("robloxkit-secret", SECRET);
        let result = measure(&client_rt, addr, connections, seconds, request);
        print_row(name, &result, "");
        assert_eq!(result.errors, 0, "{name}: {} failed requests", result.errors);
    }
}
