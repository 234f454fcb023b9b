//! Deploys that can't hurt the server: compiles bounded in size and time and
//! run off the deploy lock (a hostile component compiling doesn't hold up
//! another Element's deploy or its requests), compiled-code cache entries
//! authenticated before they are loaded (tampered and forged entries are
//! recompiled, never deserialized), and old component versions collected
//! from the store and the cache. Over real HTTP, on SQLite and, when
//! `ELEMENTS_MONGODB_URI` is set, on MongoDB (`cargo xtask test` runs this
//! suite on both).

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use elements_store::{DocumentStore, Filter, MongoConfig, Namespace, Query, SqliteConfig, StoreConfig};
use serde_json::{Value, json};
use support::{Dirs, ROOT_PASSWORD, Server, guest, json as read_json, root_secret, variant};

/// The database name a node on `dirs` uses when the suite runs on MongoDB.
fn database(dirs: &Dirs) -> String {
    let folder = dirs.root.path().file_name().unwrap_or_default().to_string_lossy();
    format!("robust_{folder}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn start(dirs: &Dirs, flags: &[&str]) -> Server {
    Server::start_with(dirs, flags, support::ROOT_ENV, Some(&database(dirs)))
}

/// The store the nodes on `dirs` share, opened as another node would.
async fn open_store(dirs: &Dirs) -> Arc<dyn DocumentStore> {
    let config = match std::env::var("ELEMENTS_MONGODB_URI") {
        Ok(uri) if !uri.is_empty() => StoreConfig::Mongo(MongoConfig::new(uri, database(dirs))),
        _ => StoreConfig::Sqlite(SqliteConfig::in_data_dir(dirs.root.path().join("data"))),
    };
    elements_store::open(config).await.expect("opening the store")
}

/// Uploads `component` as `name` through the admin API.
async fn upload(server: &Server, token: &str, name: &str, component: Vec<u8>) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .text("name", name.to_owned())
        .part(
            "component",
            reqwest::multipart::Part::bytes(component).file_name("element.wasm"),
        );
    read_json(
        server
            .client
            .post(server.admin_url("/api/rest/elements/deployment"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The cache entries of the component with content hash `hash`.
fn entries_of(cache: &Path, hash: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(cache)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&format!("{hash}-")) && n.ends_with(".cwasm"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A component that takes long to compile: `functions` core functions of
/// `adds` dependent additions each, in the text format. It exports no
/// handler, so its deploy fails once compiled.
fn slow_component(functions: usize, adds: usize) -> Vec<u8> {
    let mut wat = String::from("(component (core module\n");
    for f in 0..functions {
        wat.push_str(&format!("(func $f{f} (param i32) (result i32)\n"));
        for i in 0..adds {
            wat.push_str(&format!("local.get 0 i32.const {i} i32.add local.set 0\n"));
        }
        wat.push_str("local.get 0)\n");
    }
    wat.push_str("))\n");
    wat.into_bytes()
}

/// A cache entry that fails its authentication (a flipped byte, or another
/// component's entry moved into place with a fresh plain SHA-256, as the
/// checksum-only format of before would have accepted) is discarded and the
/// component recompiled: the forged code is never loaded, and each Element
/// serves its own code.
#[tokio::test]
async fn tampered_and_forged_cache_entries_are_recompiled_never_loaded() {
    let dirs = Dirs::with_own_cache();
    dirs.deploy("hello", "hello", "");
    dirs.deploy("board", "leaderboard", "");
    let hello = sha256_hex(&std::fs::read(guest("hello")).unwrap());
    let board = sha256_hex(&std::fs::read(guest("leaderboard")).unwrap());

    let first = start(&dirs, &[]);
    assert_eq!(
        first.log().matches("compile=Compiled").count(),
        2,
        "{}",
        first.log()
    );
    first.stop();

    // The key: owner-only, next to the entries.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dirs.cache.join("cache.key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read(&key).unwrap().len(), 32);
    }

    let hello_entry = entries_of(&dirs.cache, &hello).pop().expect("hello's entry");
    let board_entry = entries_of(&dirs.cache, &board).pop().expect("board's entry");
    let genuine = std::fs::read(&hello_entry).unwrap();
    // board's entry: hello's genuine compiled code under board's name, with
    // the plain SHA-256 a forger can compute (what the checksum-only format
    // of before accepted).
    let hello_code = &genuine[..genuine.len() - 32];
    let mut forged = hello_code.to_vec();
    forged.extend_from_slice(&{
        use sha2::Digest;
        sha2::Sha256::digest(hello_code)
    });
    std::fs::write(&board_entry, &forged).unwrap();
    // hello's entry: one byte flipped in the code.
    let mut flipped = genuine.clone();
    flipped[genuine.len() / 2] ^= 0x01;
    std::fs::write(&hello_entry, flipped).unwrap();

    let second = start(&dirs, &[]);
    let log = second.log();
    assert_eq!(
        log.matches("discarding compiled-code cache entry").count(),
        2,
        "{log}"
    );
    assert!(log.matches("authentication failed").count() >= 2, "{log}");
    // Rejected before deserializing: wasmtime never saw the bytes.
    assert!(!log.contains("incompatible"), "{log}");
    assert_eq!(log.matches("compile=Recompiled").count(), 2, "{log}");
    let (status, body) = read_json(second.get("/app/rest/hello/hello").await).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = read_json(second.get("/app/rest/board/top").await).await;
    assert_eq!(status, 200, "{body}");
    second.stop();

    // Another component's genuine, authenticated entry moved into place.
    let hello_entry = entries_of(&dirs.cache, &hello).pop().expect("hello's entry");
    let board_entry = entries_of(&dirs.cache, &board).pop().expect("board's entry");
    std::fs::copy(&hello_entry, &board_entry).unwrap();
    let third = start(&dirs, &[]);
    let log = third.log();
    assert_eq!(
        log.matches("discarding compiled-code cache entry").count(),
        1,
        "{log}"
    );
    assert!(log.contains("authentication failed"), "{log}");
    assert_eq!(log.matches("compile=Recompiled").count(), 1, "{log}");
    assert_eq!(log.matches("compile=Cached").count(), 1, "{log}");
    // board serves the leaderboard, not hello's code.
    let (status, body) = read_json(third.get("/app/rest/board/top").await).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = read_json(third.get("/app/rest/board/hello").await).await;
    assert_eq!(status, 404);

    // A key others may read is refused at startup rather than trusted.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        third.stop();
        let key = dirs.cache.join("cache.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_elements"))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--deploy-dir")
            .arg(dirs.deploy_dir())
            .arg("--data-dir")
            .arg(dirs.root.path().join("data"))
            .arg("--cache-dir")
            .arg(&dirs.cache)
            .env("ELEMENTS_ROOT_PASSWORD", ROOT_PASSWORD)
            .env_remove("ELEMENTS_MONGODB_URI")
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("0600"), "{stderr}");
    }
}

/// Deploying v1, v2 and v3 of one Element keeps v3 (serving) and v2 (the
/// previous one) in the store and the cache, and removes v1 from both; a
/// restart serves v3 from the cache.
#[tokio::test]
async fn old_component_versions_are_collected() {
    let dirs = Dirs::with_own_cache();
    let flags = ["--deploy-gc-grace-secs", "0"];
    let server = start(&dirs, &flags);
    let root = root_secret(&server).await;
    let hello = std::fs::read(guest("hello")).unwrap();
    let versions: Vec<Vec<u8>> = (1..=3).map(|v| variant(&hello, v)).collect();
    let hashes: Vec<String> = versions.iter().map(|v| sha256_hex(v)).collect();
    // Another Element sharing nothing with these versions stays.
    let (status, view) = upload(&server, &root, "other", variant(&hello, 99)).await;
    assert_eq!((status, view["status"].as_str()), (201, Some("LOADED")), "{view}");
    for (i, version) in versions.iter().enumerate() {
        let (status, view) = upload(&server, &root, "greeter", version.clone()).await;
        assert!(status == 200 || status == 201, "{status} {view}");
        assert_eq!(view["status"], "LOADED", "{view}");
        assert_eq!(view["hash"], hashes[i], "{view}");
    }
    let (status, _) = read_json(server.get("/app/rest/greeter/hello").await).await;
    assert_eq!(status, 200);

    let store = open_store(&dirs).await;
    let components = Namespace::core().collection("components").unwrap();
    let stored: Vec<String> = store
        .find(&components, &Query::new(Filter::all()))
        .await
        .unwrap()
        .iter()
        .filter_map(|d| d["_id"].as_str().map(str::to_owned))
        .collect();
    assert!(!stored.contains(&hashes[0]), "v1 is still stored: {stored:?}");
    assert!(
        stored.contains(&hashes[1]),
        "v2 (previous) was removed: {stored:?}"
    );
    assert!(
        stored.contains(&hashes[2]),
        "v3 (serving) was removed: {stored:?}"
    );
    assert!(stored.contains(&sha256_hex(&variant(&hello, 99))), "{stored:?}");
    assert!(
        entries_of(&dirs.cache, &hashes[0]).is_empty(),
        "v1's cache entry stayed"
    );
    assert_eq!(entries_of(&dirs.cache, &hashes[1]).len(), 1);
    assert_eq!(entries_of(&dirs.cache, &hashes[2]).len(), 1);
    assert!(
        server.log().contains("removed unneeded stored component"),
        "{}",
        server.log()
    );

    // A restart serves v3 from the cache.
    server.stop();
    let restarted = start(&dirs, &flags);
    let (status, _) = read_json(restarted.get("/app/rest/greeter/hello").await).await;
    assert_eq!(status, 200);
    let log = restarted.log();
    assert_eq!(log.matches("compile=Cached").count(), 2, "{log}");
    let token = root_secret(&restarted).await;
    let (status, view) = support::admin_request(
        &restarted,
        "GET",
        "/api/rest/elements/deployment/greeter",
        Some(token.as_str()),
        None,
    )
    .await;
    assert_eq!(
        (status, view["hash"].as_str()),
        (200, Some(hashes[2].as_str())),
        "{view}"
    );
}

/// A component over the size bound is refused before it is stored or
/// compiled (400), and one with an outsized function fails its deploy
/// without compiling; the previous version keeps serving.
#[tokio::test]
async fn outsized_components_are_refused_before_compiling() {
    let dirs = Dirs::new();
    let server = start(
        &dirs,
        &[
            "--max-component-bytes",
            "4000000",
            "--max-function-bytes",
            "100000",
        ],
    );
    let root = root_secret(&server).await;
    let hello = std::fs::read(guest("hello")).unwrap();
    let (status, view) = upload(&server, &root, "greeter", hello.clone()).await;
    assert_eq!((status, view["status"].as_str()), (201, Some("LOADED")), "{view}");

    // Over the component bound: refused, nothing stored.
    let mut huge = slow_component(1, 10);
    huge.resize(4_000_001, b' ');
    let (status, body) = upload(&server, &root, "greeter", huge).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("max_component_bytes"),
        "{body}"
    );

    // One function of ~150 KB: refused at deploy, before compiling.
    let (status, view) = upload(&server, &root, "greeter", slow_component(1, 20_000)).await;
    assert!(status == 200 || status == 201, "{status} {view}");
    assert_eq!(view["status"], "SERVING", "{view}");
    assert_eq!(
        (&view["servingVersion"], &view["lastFailure"]["version"]),
        (&json!(1), &json!(2)),
        "{view}"
    );
    let error = view["lastError"].as_str().unwrap();
    assert!(error.contains("max_function_bytes"), "{error}");
    let (status, _) = read_json(server.get("/app/rest/greeter/hello").await).await;
    assert_eq!(status, 200, "the previous version keeps serving");

    // Garbage claiming to be a component: a 400, never a 500.
    let mut garbage = b"\0asm\x0d\0\x01\0".to_vec();
    garbage.extend(std::iter::repeat_n(0xffu8, 1000));
    let (status, view) = upload(&server, &root, "junk", garbage).await;
    assert!(status < 500, "{status} {view}");
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

/// A compile over the time limit fails its deploy with a clear error; the
/// server keeps serving.
#[tokio::test]
async fn a_compile_over_the_time_limit_fails_the_deploy() {
    // Its own cache: hello must be compiled, which takes far over 1 ms.
    let dirs = Dirs::with_own_cache();
    let server = start(&dirs, &["--compile-timeout-ms", "1"]);
    let root = root_secret(&server).await;
    let (status, view) = upload(&server, &root, "greeter", std::fs::read(guest("hello")).unwrap()).await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["status"], "FAILED", "{view}");
    let error = view["lastError"].as_str().unwrap();
    assert!(error.contains("compile_timeout_ms"), "{error}");
    let (status, _) = read_json(server.get("/app/rest/greeter/hello").await).await;
    assert_eq!(status, 404);
    let (status, _) = read_json(server.get("/health").await).await;
    assert_eq!(status, 200);
}

/// While a hostile component compiles (slowly), another Element is
/// deployed and serves, and a serving Element answers every request: the
/// compile holds no lock they need.
#[tokio::test]
async fn a_slow_compile_holds_up_no_other_deploy_or_request() {
    let dirs = Dirs::with_own_cache();
    let server = Arc::new(start(&dirs, &[]));
    let root = root_secret(&server).await;
    let hello = std::fs::read(guest("hello")).unwrap();
    let (status, view) = upload(&server, &root, "steady", variant(&hello, 1)).await;
    assert_eq!((status, view["status"].as_str()), (201, Some("LOADED")), "{view}");

    let slow = {
        let server = server.clone();
        let root = root.clone();
        tokio::spawn(async move { upload(&server, &root, "hostile", slow_component(40, 2_000)).await })
    };
    // Async, so the upload task runs meanwhile.
    let started = Instant::now();
    while !server.log().contains("compiling Element hostile") {
        assert!(started.elapsed() < Duration::from_secs(120), "{}", server.log());
        if slow.is_finished() {
            panic!("the hostile upload ended first: {:?}", slow.await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Meanwhile: a new Element deploys and serves, the steady one serves.
    let (status, view) = upload(&server, &root, "newcomer", variant(&hello, 2)).await;
    assert_eq!((status, view["status"].as_str()), (201, Some("LOADED")), "{view}");
    for _ in 0..20 {
        let (status, _) = read_json(server.get("/app/rest/newcomer/hello").await).await;
        assert_eq!(status, 200);
        let (status, _) = read_json(server.get("/app/rest/steady/hello").await).await;
        assert_eq!(status, 200);
    }
    let overtaken = !slow.is_finished();
    println!("the newcomer deployed while the hostile component was still compiling: {overtaken}");
    assert!(overtaken, "the hostile compile ended first: make it slower");

    // The hostile deploy ends (it exports no handler) and changes nothing.
    let started = Instant::now();
    let (status, view) = slow.await.unwrap();
    println!("the hostile compile took {:?} more", started.elapsed());
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["status"], "FAILED", "{view}");
    let (status, _) = read_json(server.get("/app/rest/steady/hello").await).await;
    assert_eq!(status, 200);
}
