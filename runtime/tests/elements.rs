//! The server hosting Elements, tested over HTTP against the real binary.

mod support;

use std::time::{Duration, Instant};

use support::{Dirs, Server, guest, json};

const HELLO: &str = r#"
[attributes.greeting]
default = "Hello"
"#;

#[tokio::test]
async fn hello_routes_answer() {
    let dirs = Dirs::new();
    dirs.deploy("hello", "hello", HELLO);
    let server = Server::start(&dirs, &[]);

    let (status, body) = json(server.get("/app/rest/hello/hello").await).await;
    assert_eq!(status, 200);
    assert_eq!(body["message"], "Hello from an Element!");

    let echoed = server
        .client
        .post(server.url("/app/rest/hello/echo"))
        .json(&serde_json::json!({"score": 42, "name": "ana"}))
        .send()
        .await
        .unwrap();
    let request_id = echoed.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(!request_id.is_empty());
    let (status, body) = json(echoed).await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"score": 42, "name": "ana"}));

    let (status, body) = json(
        server
            .client
            .post(server.url("/app/rest/hello/echo"))
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().len() > 5, "{body}");

    let (status, body) = json(server.get("/health").await).await;
    assert_eq!((status, &body["status"]), (200, &serde_json::json!("ok")));
}

#[tokio::test]
async fn attributes_follow_manifest_operator_and_deployment_values() {
    let dirs = Dirs::new();
    dirs.deploy("hello", "hello", HELLO);
    dirs.deploy(
        "hello2",
        "hello",
        "prefix = \"hi\"\n[attributes.greeting]\ndefault = \"Hello\"\n[values]\ngreeting = \"Ahoy\"\n",
    );
    let config = dirs.root.path().join("attributes.toml");
    std::fs::write(
        &config,
        "[attributes]\ncolour = \"blue\"\n[elements.misbehave.attributes]\ncolour = \"red\"\n",
    )
    .unwrap();
    dirs.deploy("misbehave", "misbehave", "");
    let server = Server::start(&dirs, &["--config", config.to_str().unwrap()]);

    let (_, body) = json(server.get("/app/rest/hello/greeting").await).await;
    assert_eq!(body["greeting"], "Hello");
    let (_, body) = json(server.get("/app/rest/hi/greeting/Ana").await).await;
    assert_eq!(body["greeting"], "Ahoy, Ana!");
    let (_, body) = json(server.get("/app/rest/misbehave/attr/colour").await).await;
    assert_eq!(body["value"], "red");
    let (_, body) = json(server.get("/app/rest/misbehave/attr/missing").await).await;
    assert!(body["value"].is_null(), "{body}");
}

#[tokio::test]
async fn unknown_routes_are_404_json() {
    let dirs = Dirs::new();
    dirs.deploy("hello", "hello", HELLO);
    let server = Server::start(&dirs, &[]);
    for path in [
        "/app/rest/nobody/here",
        "/app/rest/hello/no-such-route",
        "/nothing",
        "/app/rest/",
    ] {
        let (status, body) = json(server.get(path).await).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{path}: {body}"
        );
    }
}

/// `n` requests for `path` at once (more than the machine has cores), each
/// answering with its status, its JSON body and how long it took.
fn at_once(
    server: &std::sync::Arc<Server>,
    path: &'static str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<(u16, serde_json::Value, Duration)>> {
    (0..n)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let (status, body) = json(server.get(path).await).await;
                (status, body, started.elapsed())
            })
        })
        .collect()
}

/// Twenty requests for the hello Element, each answered within a second
/// while `others` keep the server busy.
async fn hello_answers_promptly(server: &Server, others: &str) {
    for _ in 0..20 {
        let started = Instant::now();
        let (status, _) = json(server.get("/app/rest/hello/hello").await).await;
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "a healthy request took {:?} while {others}",
            started.elapsed()
        );
    }
}

/// Three misbehaving Elements fail within their limits while another Element
/// keeps answering throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn looping_allocating_and_panicking_elements_are_isolated() {
    let dirs = Dirs::new();
    dirs.deploy("hello", "hello", HELLO);
    dirs.deploy(
        "misbehave",
        "misbehave",
        "[limits]\ntimeout_ms = 1500\nmemory_mib = 16\n",
    );
    let server = Server::start(&dirs, &[]);
    let server = std::sync::Arc::new(server);

    // More loops than the machine has cores: a looping guest must yield.
    let loops = at_once(&server, "/app/rest/misbehave/loop", 4);
    let alloc = {
        let server = server.clone();
        tokio::spawn(async move { json(server.get("/app/rest/misbehave/alloc").await).await })
    };
    let panic = {
        let server = server.clone();
        tokio::spawn(async move { json(server.get("/app/rest/misbehave/panic").await).await })
    };

    // While those run, the healthy Element answers every request promptly.
    tokio::time::sleep(Duration::from_millis(100)).await;
    hello_answers_promptly(&server, "others looped").await;

    for handle in loops {
        let (status, body, elapsed) = handle.await.unwrap();
        assert_eq!(status, 504, "{body}");
        assert_eq!(body["code"], "ELEMENT_TIMEOUT");
        assert_eq!(body["element"], "misbehave");
        assert!(body["requestId"].is_string(), "{body}");
        assert!(
            // A deadline not enforced never ends; the margin is for a
            // loaded machine, where 3 s was once overshot by 95 ms.
            elapsed < Duration::from_millis(1500 + 6000),
            "deadline overshot: {elapsed:?}"
        );
    }
    let (status, body) = alloc.await.unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("ELEMENT_MEMORY_LIMIT")),
        "{body}"
    );
    let (status, body) = panic.await.unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("ELEMENT_TRAP")),
        "{body}"
    );

    // Each cause is in the server log, with the panic message from stderr.
    server.wait_for_log("deliberate panic from misbehave", Duration::from_secs(5));
    server.wait_for_log("exceeded its memory limit of 16 MiB", Duration::from_secs(5));
    server.wait_for_log(
        "did not answer within its 1500 ms deadline",
        Duration::from_secs(5),
    );

    // And the misbehaving Element itself still serves good requests.
    let (status, _) = json(server.get("/app/rest/misbehave/ok").await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_guest_blocked_in_a_host_call_times_out() {
    let dirs = Dirs::new();
    dirs.deploy("misbehave", "misbehave", "[limits]\ntimeout_ms = 500\n");
    let server = Server::start(&dirs, &[]);
    let started = Instant::now();
    let (status, body) = json(server.get("/app/rest/misbehave/sleep?ms=60000").await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (504, Some("ELEMENT_TIMEOUT")),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let (status, body) = json(server.get("/app/rest/misbehave/sleep?ms=10").await).await;
    assert_eq!((status, &body["slept"]), (200, &serde_json::json!(10)));
}

/// A component with the one-call handler, written by hand, whose core
/// module has a start function with `start_body`: the handler answers 200
/// and "started" when the start function set its flag, 500 otherwise.
fn one_call_with_start(start_body: &str) -> String {
    format!(
        r#"(component
            (core module $m
                (memory (export "memory") 1)
                (global $started (mut i32) (i32.const 0))
                (global $bump (mut i32) (i32.const 4096))
                (func $start {start_body})
                (start $start)
                (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
                    (local $p i32)
                    (local.set $p (global.get $bump))
                    (global.set $bump (i32.add (global.get $bump) (local.get 3)))
                    (local.get $p))
                (data (i32.const 64) "started")
                (func (export "handle") (param i32 i32 i32) (result i32)
                    (i32.store16 (i32.const 16)
                        (select (i32.const 200) (i32.const 500) (global.get $started)))
                    (i32.store (i32.const 20) (i32.const 0))
                    (i32.store (i32.const 24) (i32.const 0))
                    (i32.store (i32.const 28) (i32.const 64))
                    (i32.store (i32.const 32) (i32.const 7))
                    (i32.const 16)))
            (core instance $i (instantiate $m))
            (type $bytes (list u8))
            (type $response (record (field "status" u16) (field "headers" $bytes) (field "body" $bytes)))
            (func $handle (param "request" $bytes) (param "body-start" u32) (result $response)
                (canon lift (core func $i "handle") (memory (core memory $i "memory"))
                    (realloc (core func $i "cabi_realloc"))))
            (component $shim
                (type $b (list u8))
                (type $r (record (field "status" u16) (field "headers" $b) (field "body" $b)))
                (import "import-type-response" (type $ri (eq $r)))
                (import "import-func-handle" (func $f (param "request" $b) (param "body-start" u32) (result $ri)))
                (export $re "response" (type $r))
                (export "handle" (func $f) (func (param "request" $b) (param "body-start" u32) (result $re))))
            (instance $h (instantiate $shim
                (with "import-func-handle" (func $handle))
                (with "import-type-response" (type $response))))
            (export "elements:platform/request-handler@0.2.0" (instance $h)))"#
    )
}

/// Instances of Elements without a start function are made without a fiber
/// (no guest code runs then); those with one still are, so a start function
/// runs before the first request, and one that never ends is cut off by
/// the Element's deadline, on every request, while others keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_functions_run_and_one_that_never_ends_is_cut_off() {
    let dirs = Dirs::new();
    dirs.deploy("hello", "hello", HELLO);
    dirs.deploy_bytes(
        "started",
        one_call_with_start("(global.set $started (i32.const 1))").as_bytes(),
    );
    dirs.deploy_bytes(
        "stuck",
        one_call_with_start("(loop $forever (br $forever))").as_bytes(),
    )
    .manifest("stuck", "[limits]\ntimeout_ms = 500\n");
    let server = std::sync::Arc::new(Server::start(&dirs, &[]));

    for _ in 0..2 {
        let response = server.get("/app/rest/started/x").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "started");
    }

    // Instantiating one must not hold a server thread.
    let stuck = at_once(&server, "/app/rest/stuck/x", 4);
    tokio::time::sleep(Duration::from_millis(100)).await;
    hello_answers_promptly(&server, "start functions looped").await;
    for handle in stuck {
        let (status, body, elapsed) = handle.await.unwrap();
        assert_eq!(
            (status, body["code"].as_str()),
            (504, Some("ELEMENT_TIMEOUT")),
            "{body}"
        );
        assert!(
            elapsed < Duration::from_millis(500 + 6000),
            "deadline overshot: {elapsed:?}"
        );
    }
}

#[tokio::test]
async fn body_size_limits() {
    let dirs = Dirs::new();
    dirs.deploy(
        "misbehave",
        "misbehave",
        "[limits]\nmax_request_body = 1024\nmax_response_body = 4096\n",
    );
    let server = Server::start(&dirs, &[]);
    let post = |body: Vec<u8>| {
        server
            .client
            .post(server.url("/app/rest/misbehave/echo?len=1"))
            .body(body)
    };

    let (status, body) = json(post(vec![b'a'; 1024]).send().await.unwrap()).await;
    assert_eq!((status, &body["len"]), (200, &serde_json::json!(1024)));

    let refused = post(vec![b'a'; 1025]).send().await.unwrap();
    // Answered before the body was read: the connection is not reused.
    assert_eq!(refused.headers()["connection"], "close");
    let (status, body) = json(refused).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("REQUEST_TOO_LARGE")),
        "{body}"
    );

    // Without a Content-Length (chunked), the limit holds while reading.
    let stream = futures_stream(vec![vec![b'a'; 800], vec![b'b'; 800]]);
    let (status, body) = json(
        server
            .client
            .post(server.url("/app/rest/misbehave/echo?len=1"))
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("REQUEST_TOO_LARGE")),
        "{body}"
    );

    let response = server.get("/app/rest/misbehave/big?bytes=4096").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), 4096);
    let (status, body) = json(server.get("/app/rest/misbehave/big?bytes=4097").await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("RESPONSE_TOO_LARGE")),
        "{body}"
    );
}

/// A request body sent in chunks, without a Content-Length.
fn futures_stream(chunks: Vec<Vec<u8>>) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    struct Chunks(std::vec::IntoIter<Vec<u8>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next().map(Ok))
        }
    }
    Chunks(chunks.into_iter())
}

#[tokio::test]
async fn bad_components_are_refused_and_the_others_load() {
    let dirs = Dirs::new();
    dirs.deploy("hello", "hello", HELLO);
    dirs.deploy_bytes("garbage", b"this is not wasm at all");
    dirs.deploy_bytes("core-module", b"(module (func (export \"f\")))");
    dirs.deploy_bytes(
        "alien",
        b"(component (import \"alien:planet/probe@1.0.0\" (instance (export \"scan\" (func)))))",
    );
    dirs.deploy_bytes("no-handler", b"(component)");
    // The SDK's exports, in a shape this server doesn't call (as an Element
    // built with another release's SDK has them). The event and match
    // handlers are called later, per event or match message, so they are
    // checked at deploy too.
    dirs.deploy_bytes(
        "other-sdk",
        other_shape("request-handler", &["handle"]).as_bytes(),
    );
    dirs.deploy_bytes(
        "other-sdk-events",
        other_shape("event-handler", &["handle-event"]).as_bytes(),
    )
    .manifest(
        "other-sdk-events",
        "[events]\nsubscribe = [\"other-sdk-events.*\"]\n",
    );
    dirs.deploy_bytes(
        "other-sdk-matches",
        other_shape("match-handler", &["join", "leave", "data"]).as_bytes(),
    );
    dirs.deploy(
        "needs-secret",
        "hello",
        "[attributes.secret]\nrequired = true\nsensitive = true\n",
    );
    dirs.deploy("bad-manifest", "hello", "prefix = \"../../etc\"\n");
    dirs.deploy("impostor", "hello", "core_routes = [\"/api/rest/verify\"]\n");
    dirs.deploy(
        "email-verification",
        "hello",
        "core_routes = [\"/api/rest/user/me\"]\n",
    );
    let server = Server::start(&dirs, &[]);

    let (status, _) = json(server.get("/app/rest/hello/hello").await).await;
    assert_eq!(status, 200);
    let log = server.log();
    for (name, why) in [
        ("garbage", "not a valid WebAssembly component"),
        ("core-module", "not a valid WebAssembly component"),
        ("alien", "alien:planet/probe"),
        ("no-handler", "exports no HTTP handler"),
        (
            "other-sdk",
            "request-handler export is not this server's (build the Element with this release's elements-sdk)",
        ),
        (
            "other-sdk-events",
            "event-handler export is not this server's (build the Element with this release's elements-sdk): its `handle-event` function",
        ),
        (
            "other-sdk-matches",
            "match-handler export is not this server's (build the Element with this release's elements-sdk): its `join` function",
        ),
        ("needs-secret", "required attribute \"secret\" has no value"),
        ("bad-manifest", "invalid manifest"),
        (
            "impostor",
            "requests grants the operator has not approved: route.core:/api/rest/verify",
        ),
        ("email-verification", "is not an extension point"),
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("Element \"{name}\" refused")))
            .unwrap_or_else(|| panic!("no refusal line for {name}:\n{log}"));
        assert!(line.contains(why), "refusal of {name} should say {why:?}: {line}");
        let (status, _) = json(server.get(&format!("/app/rest/{name}/x")).await).await;
        assert_eq!(status, 404);
    }
}

#[tokio::test]
async fn compiled_cache_is_used_on_restart_and_a_corrupt_entry_is_recompiled() {
    let dirs = Dirs::with_own_cache();
    dirs.deploy("hello", "hello", HELLO);

    let first = Server::start(&dirs, &[]);
    first.wait_for_log("Element deployed", Duration::from_secs(5));
    assert!(first.log().contains("compile=Compiled"), "{}", first.log());
    first.stop();

    let second = Server::start(&dirs, &[]);
    second.wait_for_log("Element deployed", Duration::from_secs(5));
    assert!(second.log().contains("compile=Cached"), "{}", second.log());
    let (status, _) = json(second.get("/app/rest/hello/hello").await).await;
    assert_eq!(status, 200);
    second.stop();

    // The cache holds native code the server runs: the owner's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dirs.cache), 0o700);
        for entry in std::fs::read_dir(&dirs.cache).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }

    // Flip bytes in the middle of every entry.
    let mut corrupted = 0;
    for entry in std::fs::read_dir(&dirs.cache).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let mut bytes = std::fs::read(&path).unwrap();
            let mid = bytes.len() / 2;
            for b in &mut bytes[mid..mid + 64] {
                *b ^= 0xff;
            }
            std::fs::write(&path, bytes).unwrap();
            corrupted += 1;
        }
    }
    assert_eq!(corrupted, 1);
    let third = Server::start(&dirs, &[]);
    third.wait_for_log("Element deployed", Duration::from_secs(5));
    let log = third.log();
    assert!(log.contains("discarding compiled-code cache entry"), "{log}");
    assert!(log.contains("authentication failed"), "{log}");
    let (status, _) = json(third.get("/app/rest/hello/hello").await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn fresh_instances_share_nothing_and_reuse_keeps_globals() {
    let dirs = Dirs::new();
    dirs.deploy("fresh", "misbehave", "");
    dirs.deploy(
        "warm",
        "misbehave",
        "[limits]\nisolation = \"reuse\"\nreuse_max_requests = 3\n",
    );
    let server = Server::start(&dirs, &[]);
    let mut fresh = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..4 {
        fresh.push(
            json(server.get("/app/rest/fresh/counter").await).await.1["count"]
                .as_u64()
                .unwrap(),
        );
        warm.push(
            json(server.get("/app/rest/warm/counter").await).await.1["count"]
                .as_u64()
                .unwrap(),
        );
    }
    assert_eq!(fresh, [1, 1, 1, 1]);
    // Three requests per instance, then a new one.
    assert_eq!(warm, [1, 2, 3, 1]);

    // A trap discards the warm instance.
    let (status, _) = json(server.get("/app/rest/warm/panic").await).await;
    assert_eq!(status, 500);
    let (_, body) = json(server.get("/app/rest/warm/counter").await).await;
    assert_eq!(body["count"], 1);
}

#[tokio::test]
async fn guest_output_and_log_calls_reach_the_server_log() {
    let dirs = Dirs::new();
    dirs.deploy("misbehave", "misbehave", "");
    let server = Server::start(&dirs, &[]);
    let (status, _) = json(server.get("/app/rest/misbehave/print").await).await;
    assert_eq!(status, 200);
    let (status, _) = json(server.get("/app/rest/misbehave/log").await).await;
    assert_eq!(status, 200);
    server.wait_for_log("hello on stdout", Duration::from_secs(5));
    server.wait_for_log("hello on stderr", Duration::from_secs(5));
    server.wait_for_log("level test warn", Duration::from_secs(5));
}

/// The server's environment (where an operator may keep secrets) is out of
/// an Element's reach, whether it asks for one variable or for all; what an
/// Element sets itself it reads back (the SDK's own `getenv` and `setenv`).
#[tokio::test]
async fn elements_see_none_of_the_servers_environment_only_their_own() {
    let dirs = Dirs::new();
    dirs.deploy("misbehave", "misbehave", "");
    let server = Server::start(&dirs, &[]);
    assert!(std::env::var_os("PATH").is_some(), "the server inherits PATH");
    let (status, body) = json(server.get("/app/rest/misbehave/env").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({
            "path": null,
            "variables": 0,
            "set": "fast",
            "overwritten": "slow",
            "removed": null,
        })
    );
}

#[tokio::test]
async fn log_enabled_answers_whether_a_line_would_be_kept() {
    let dirs = Dirs::new();
    dirs.deploy("misbehave", "misbehave", "");
    // `--log info`: the server log takes info and above, and so does the
    // Element's log buffer; nothing keeps debug or trace lines.
    let server = Server::start(&dirs, &[]);
    let (status, body) = json(server.get("/app/rest/misbehave/log-enabled").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"trace": false, "debug": false, "info": true, "warn": true, "error": true})
    );
}

#[tokio::test]
async fn without_address_space_for_the_pool_the_server_falls_back_to_on_demand() {
    let dirs = Dirs::new();
    dirs.deploy("hello", "hello", HELLO);
    // 24 GiB: room for the server and a few instances, not for the pool's
    // hundreds of reserved memory slots.
    let server = Server::start_limited(&dirs, &[], Some(24 << 20));
    server.wait_for_log("falling back to on-demand allocation", Duration::from_secs(5));
    assert!(server.log().contains("allocation=OnDemand"), "{}", server.log());
    let (status, _) = json(server.get("/app/rest/hello/hello").await).await;
    assert_eq!(status, 200);

    // Forcing pooling where it can't be had is a startup error, not a crash.
    let dirs = Dirs::new();
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 25165824 && exec \"$0\" --pooling on --listen 127.0.0.1:0 --deploy-dir \"$1\"")
        .arg(env!("CARGO_BIN_EXE_elements"))
        .arg(dirs.deploy_dir())
        .output()
        .expect("run elements");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: the pooling instance allocator could not reserve"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_every_instance_slot_is_busy_requests_get_503() {
    let dirs = Dirs::new();
    dirs.deploy("misbehave", "misbehave", "");
    // The Element's own cap (a quarter of the pool by default) set to the
    // pool's size, so the pool is what refuses.
    let server = std::sync::Arc::new(Server::start(
        &dirs,
        &[
            "--max-instances",
            "2",
            "--max-concurrency",
            "2",
            "--pooling",
            "on",
        ],
    ));
    let mut handles = Vec::new();
    for _ in 0..6 {
        let server = server.clone();
        handles.push(tokio::spawn(async move {
            json(server.get("/app/rest/misbehave/sleep?ms=700").await).await
        }));
    }
    let mut statuses = Vec::new();
    for handle in handles {
        let (status, body) = handle.await.unwrap();
        if status == 503 {
            assert_eq!(body["code"], "OVERLOADED", "{body}");
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 4, "{statuses:?}");
    // Slots come back once requests end.
    let (status, _) = json(server.get("/app/rest/misbehave/ok").await).await;
    assert_eq!(status, 200);
}

/// `x-request-id` of `response`, which every answer must carry.
fn request_id(response: &reqwest::Response) -> String {
    let id = response
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("no x-request-id on {} {}", response.status(), response.url()))
        .to_str()
        .unwrap()
        .to_owned();
    // The server's own format: a per-process hex prefix and a hex counter.
    let (prefix, counter) = id.split_once('-').unwrap_or_else(|| panic!("{id}"));
    assert!(
        prefix.len() == 8
            && !counter.is_empty()
            && (prefix.chars().chain(counter.chars())).all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    id
}

/// Every answer of both listeners carries an id of the server's making,
/// fresh each time, and errors in the `/api/rest` shape name it.
#[tokio::test]
async fn every_answer_carries_a_fresh_request_id() {
    let dirs = Dirs::new();
    dirs.deploy("misbehave", "misbehave", "");
    let server = support::root_server(&dirs);
    let client = &server.client;
    let mut ids = std::collections::HashSet::new();
    let mut fresh = |id: String| {
        assert!(ids.insert(id.clone()), "{id} was given twice");
        id
    };

    // Successes: the public API, an Element, /health on both listeners.
    for url in [
        server.url("/health"),
        server.url("/api/rest/openapi.json"),
        server.url("/app/rest/misbehave/ok"),
        server.admin_url("/health"),
    ] {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        fresh(request_id(&response));
    }

    // Errors in the `/api/rest` shape: the body names the same id as the
    // header, whoever made the error (a handler, the Element front, the
    // fallback, the framework, the admin API).
    for (method, url, status) in [
        ("GET", server.url("/api/rest/user/me"), 401),
        ("GET", server.url("/app/rest/nothing-here/x"), 404),
        ("GET", server.url("/no/such/path"), 404),
        ("DELETE", server.url("/health"), 405),
        ("GET", server.admin_url("/api/rest/elements/deployment"), 401),
        ("GET", server.admin_url("/no/such/path"), 404),
    ] {
        let response = client
            .request(method.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        let id = fresh(request_id(&response));
        let (got, body) = json(response).await;
        assert_eq!(got, status, "{method} {url}: {body}");
        assert_eq!(body["requestId"], id.as_str(), "{method} {url}: {body}");
    }

    // Nakama's `/v2`: the header, and the body stays in Nakama's shape.
    let response = client
        .post(server.url("/v2/account/authenticate/device"))
        .basic_auth(support::SERVER_KEY, Some(""))
        .json(&serde_json::json!({"id": "short"}))
        .send()
        .await
        .unwrap();
    fresh(request_id(&response));
    let (status, body) = json(response).await;
    assert_eq!(status, 400, "{body}");
    let mut keys: Vec<_> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["code", "details", "message"], "{body}");

    // A framework rejection on `/v2` (body over the limit) also has one.
    let response = client
        .post(server.url("/v2/account/authenticate/device"))
        .basic_auth(support::SERVER_KEY, Some(""))
        .header("content-type", "application/json")
        .body("x".repeat(3 << 20))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    fresh(request_id(&response));

    // Both listeners draw from one sequence of the same process.
    let prefixes: std::collections::HashSet<_> = ids.iter().map(|id| id.split('-').next().unwrap()).collect();
    assert_eq!(prefixes.len(), 1, "{ids:?}");
}

/// A client can't choose its request's id: not a long text, not another
/// request's id. The Element is told the server's id, can't answer with
/// another, and its log lines (in the server log and the deployment's log)
/// carry the id the client got.
#[tokio::test]
async fn request_ids_are_the_servers_and_reach_the_element_and_its_log() {
    let dirs = Dirs::new();
    dirs.deploy("misbehave", "misbehave", "");
    let server = support::root_server(&dirs);
    let first = server.get("/app/rest/misbehave/ok").await;
    let earlier = request_id(&first);

    for sent in [
        "A".repeat(5000),
        earlier.clone(),
        "x-request-id-of-my-choosing".to_owned(),
    ] {
        for path in ["/api/rest/user/me", "/app/rest/misbehave/ok", "/no/such/path"] {
            let response = server
                .client
                .get(server.url(path))
                .header("x-request-id", &sent)
                .send()
                .await
                .unwrap();
            let id = request_id(&response);
            assert_ne!(id, sent, "{path}");
            assert_ne!(id, earlier, "{path}");
            let (_, body) = json(response).await;
            assert!(
                !body.to_string().contains(&sent),
                "{path} echoed the client's id: {body}"
            );
        }
    }

    // The Element sees the server's id; its own `x-request-id` is dropped.
    let response = server
        .client
        .get(server.url("/app/rest/misbehave/request-id"))
        .header("x-request-id", &earlier)
        .send()
        .await
        .unwrap();
    let id = request_id(&response);
    let (status, body) = json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["seen"], id.as_str(), "{body}");

    // The lines the Element logs carry the id its client got.
    let response = server
        .client
        .get(server.url("/app/rest/misbehave/log"))
        .header("x-request-id", &earlier)
        .send()
        .await
        .unwrap();
    let id = request_id(&response);
    assert_eq!(response.status(), 200);
    // Both of its lines, each with the id.
    for level in ["level test info", "level test warn"] {
        server.wait_for_log_line(&[level, &format!("request_id={id}")], Duration::from_secs(5));
    }
    let root = support::root_secret(&server).await;
    let lines = support::element_log(&server, &root, "misbehave").await;
    let warn = lines
        .iter()
        .find(|l| l["message"] == "level test warn")
        .unwrap_or_else(|| panic!("no Element line in {lines:?}"));
    assert_eq!(warn["requestId"], id.as_str(), "{warn}");
}

/// Elements built with the SDK are served through their one-call
/// `request-handler` export; any other wasi:http component through
/// `wasi:http/incoming-handler`. Both answer the same requests, and the
/// host checks what the one-call export returns.
#[tokio::test]
async fn sdk_elements_answer_in_one_call_and_others_through_wasi_http() {
    let dirs = Dirs::new();
    dirs.deploy("hello", "hello", HELLO);
    dirs.deploy("plain", "wasi-http", "");
    dirs.deploy("misbehave", "misbehave", "");
    let server = support::root_server(&dirs);
    let root = support::root_secret(&server).await;
    let deploy_note = |name: &'static str| {
        let server = &server;
        let root = root.clone();
        async move {
            let lines = support::element_log(server, &root, name).await;
            lines
                .iter()
                .filter_map(|l| l["message"].as_str())
                .find(|m| m.starts_with("deployed "))
                .unwrap_or_else(|| panic!("no deploy line in {lines:?}"))
                .to_owned()
        }
    };
    let hello = deploy_note("hello").await;
    assert!(hello.contains("its one-call request-handler"), "{hello}");
    // No start function and no async import: no fiber to make an instance.
    assert!(hello.contains("instances made without a fiber"), "{hello}");
    let misbehave = deploy_note("misbehave").await;
    assert!(!misbehave.contains("without a fiber"), "{misbehave}");
    // And only through it: an SDK Element that makes no outbound call links
    // none of wasi:http (each linked function is work on every new instance).
    let bytes = std::fs::read(support::guest("hello")).unwrap();
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"elements:platform/request-handler"));
    assert!(!has(b"wasi:http/"), "the SDK's hello Element links wasi:http");
    let plain = deploy_note("plain").await;
    assert!(plain.contains("serves HTTP through wasi:http"), "{plain}");
    assert!(!plain.contains("without a fiber"), "{plain}");

    // The plain component, through wasi:http.
    let response = server.get("/app/rest/plain/hello").await;
    assert_eq!(response.headers()["x-served-by"], "plain");
    let (status, body) = json(response).await;
    assert_eq!(
        (status, &body["message"]),
        (200, &serde_json::json!("Hello over plain wasi:http"))
    );
    let response = server
        .client
        .post(server.url("/app/rest/plain/echo?x=1"))
        .body(vec![b'z'; 10_000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-target"], "/echo?x=1");
    // wasi:http requests carry an authority: the client's Host.
    let url = reqwest::Url::parse(&server.url("/")).unwrap();
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    assert_eq!(response.headers()["x-authority"], host.as_str());
    assert_eq!(response.bytes().await.unwrap().as_ref(), &[b'z'; 10_000][..]);
    let (status, _) = json(server.get("/app/rest/plain/nope").await).await;
    assert_eq!(status, 404);

    // The SDK Element in one call: the path below the mount point, the
    // query, the body and the headers all arrive.
    let (status, body) = json(server.get("/app/rest/hello/greeting/Ana?x=1").await).await;
    assert_eq!(
        (status, &body["greeting"]),
        (200, &serde_json::json!("Hello, Ana!"))
    );
    let big = serde_json::json!({"blob": "y".repeat(100_000)});
    let (status, body) = json(
        server
            .client
            .post(server.url("/app/rest/hello/echo"))
            .json(&big)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &body), (200, &big));
    let (status, body) = json(server.get("/app/rest/misbehave/request-id").await).await;
    assert_eq!(status, 200, "{body}");

    // What HTTP does not allow is dropped, named in the Element's log
    // without its value; the rest of the answer stands.
    let response = server.get("/app/rest/misbehave/bad-headers").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ok"], "fine");
    assert!(response.headers().get("x-secret").is_none());
    assert!(response.headers().get("x-injected").is_none());
    assert!(response.headers().get("x-inject").is_none());
    assert_eq!(response.headers().len(), response.headers().keys_len());
    let text = serde_json::Value::from(support::element_log(&server, &root, "misbehave").await).to_string();
    assert!(
        text.contains("dropped the response header x-secret: its value is not valid in HTTP"),
        "{text}"
    );
    assert!(
        text.contains("dropped a response header: its name is not valid in HTTP"),
        "{text}"
    );
    assert!(
        text.contains("dropped the response header x-inject: its value is not valid in HTTP"),
        "{text}"
    );
    assert!(
        !text.contains("secret-value"),
        "a dropped value reached the log: {text}"
    );
}

/// A component exporting `elements:platform/INTERFACE` whose `functions`
/// all take and return nothing: the names this server calls, in another
/// shape.
fn other_shape(interface: &str, functions: &[&str]) -> String {
    let exports: String = functions
        .iter()
        .map(|f| format!("(export \"{f}\" (func $f))"))
        .collect();
    format!(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $h {exports})
            (export "elements:platform/{interface}@0.2.0" (instance $h)))"#
    )
}

/// The interfaces a component imports, without their versions (plain names,
/// like those of the type components wit-bindgen nests, are not interfaces).
fn imported_interfaces(component: &std::path::Path) -> Vec<String> {
    let bytes = std::fs::read(component).expect("component");
    let mut names = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        if let wasmparser::Payload::ComponentImportSection(imports) = payload.expect("valid component") {
            for import in imports {
                let name = import.expect("import").name.name;
                if name.contains(':') {
                    names.push(name.split('@').next().unwrap_or(name).to_owned());
                }
            }
        }
    }
    names.sort();
    names
}

/// The SDK writes stdout and stderr to the log itself and answers `getenv`
/// (there is no environment), so wasi-libc's stdio and environment and
/// their imports (which wasmtime links anew for every instance) stay out of
/// SDK-built Elements, printing and panicking or not.
#[test]
fn sdk_elements_import_no_stdio_or_environment() {
    assert_eq!(
        imported_interfaces(&guest("hello")),
        ["elements:platform/attributes", "elements:platform/log"]
    );
    // The misbehaving Element prints, and calls every host service.
    let imports = imported_interfaces(&guest("misbehave"));
    assert!(
        imports.contains(&"wasi:http/outgoing-handler".to_owned()),
        "{imports:?}"
    );
    for stdio in [
        "wasi:cli/stdout",
        "wasi:cli/stderr",
        "wasi:cli/stdin",
        "wasi:cli/terminal-output",
    ] {
        assert!(!imports.contains(&stdio.to_owned()), "{stdio} in {imports:?}");
    }
}
