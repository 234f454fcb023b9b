//! Quotas over real HTTP: a hog Element held to its instance cap while
//! another keeps answering (pooling and on-demand allocators), reused
//! instances keeping their permits, manifests that ask more than the
//! operator allows, the per-request log budget with escaped lines, and the
//! caps on what one `find` returns.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Dirs, Server, json as read_json};

/// The hog's instance cap and deadline.
const CAP: usize = 3;
const HOG_TIMEOUT_MS: u64 = 3000;

/// POSTs JSON; an empty answer (204) reads as `null`.
async fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let response = server
        .client
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    if text.is_empty() {
        return (status, Value::Null);
    }
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, value)
}

/// The hog takes its `CAP` instances and holds them until its deadline; the
/// excess gets 503 OVERLOADED at once, over and over, while hello answers
/// at normal latency.
async fn hog_is_capped_while_hello_answers(flags: &[&str]) {
    let dirs = Dirs::new();
    dirs.deploy(
        "hog",
        "misbehave",
        &format!("[limits]\ntimeout_ms = {HOG_TIMEOUT_MS}\nmax_concurrency = {CAP}\n"),
    );
    dirs.deploy("hello", "hello", "");
    let server = Arc::new(Server::start(&dirs, flags));
    let (status, _) = read_json(server.get("/app/rest/hello/hello").await).await;
    assert_eq!(status, 200);

    let started = Instant::now();
    let (done, mut results) = tokio::sync::mpsc::unbounded_channel();
    let excess = 5;
    for _ in 0..CAP + excess {
        let (server, done) = (server.clone(), done.clone());
        tokio::spawn(async move {
            let reply = read_json(server.get("/app/rest/hog/sleep?ms=60000").await).await;
            let _ = done.send((reply, started.elapsed()));
        });
    }
    // A 503 can only come while all CAP permits are held, and they are held
    // until the deadline: once the excess has answered, CAP instances hold.
    for _ in 0..excess {
        let ((status, body), after) = results.recv().await.expect("a hog reply");
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("OVERLOADED")),
            "{body}"
        );
        assert!(
            after < Duration::from_millis(HOG_TIMEOUT_MS / 2),
            "refused at once, not after {after:?}"
        );
    }

    // Keep flooding the hog while hello is measured.
    let stop = Arc::new(AtomicBool::new(false));
    let flood_until = started + Duration::from_millis(HOG_TIMEOUT_MS - 700);
    let flooder = {
        let (server, stop) = (server.clone(), stop.clone());
        tokio::spawn(async move {
            let mut refused = 0;
            while !stop.load(Ordering::Relaxed) && Instant::now() < flood_until {
                let (status, body) = read_json(server.get("/app/rest/hog/ok").await).await;
                assert_eq!(
                    (status, body["code"].as_str()),
                    (503, Some("OVERLOADED")),
                    "{body}"
                );
                refused += 1;
            }
            refused
        })
    };
    let mut latencies = Vec::new();
    while Instant::now() < flood_until {
        let sent = Instant::now();
        let (status, body) = read_json(server.get("/app/rest/hello/hello").await).await;
        latencies.push(sent.elapsed());
        assert_eq!(status, 200, "{body}");
    }
    stop.store(true, Ordering::Relaxed);
    let refused = flooder.await.expect("the flooder");
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let max = *latencies.last().expect("at least one hello request");
    println!(
        "allocator flags {flags:?}: hello during the hog flood: {} requests, p50 {p50:?}, max {max:?}; \
         hog refused {refused} more",
        latencies.len()
    );
    assert!(refused > 0, "the flooder was refused while the hog held its cap");
    assert!(
        max < Duration::from_millis(HOG_TIMEOUT_MS / 3),
        "hello stays well under the hog's {HOG_TIMEOUT_MS} ms deadline: max {max:?}"
    );

    // The CAP holders end at their deadline, and the hog serves again.
    for _ in 0..CAP {
        let ((status, body), _) = results.recv().await.expect("a hog reply");
        assert_eq!(
            (status, body["code"].as_str()),
            (504, Some("ELEMENT_TIMEOUT")),
            "{body}"
        );
    }
    let (status, _) = read_json(server.get("/app/rest/hog/ok").await).await;
    assert_eq!(status, 200, "permits come back when instances end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_element_is_held_to_its_instance_cap_with_the_pooling_allocator() {
    hog_is_capped_while_hello_answers(&["--pooling", "on"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_element_is_held_to_its_instance_cap_with_the_on_demand_allocator() {
    hog_is_capped_while_hello_answers(&["--pooling", "off"]).await;
}

/// Reads that run on the server's async workers (small documents by id)
/// can't starve another Element: instances that do nothing but read, some
/// a small document and some a 512 KiB one (read on the blocking pool),
/// until their deadline, while hello answers at normal latency. More
/// readers than the server has async workers (one per core).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn elements_reading_in_a_loop_do_not_starve_another() {
    let dirs = Dirs::new();
    dirs.deploy(
        "reader",
        "misbehave",
        &format!("[limits]\ntimeout_ms = {HOG_TIMEOUT_MS}\nmax_concurrency = 8\n"),
    );
    dirs.deploy("hello", "hello", "");
    let server = Arc::new(Server::start(&dirs, &[]));
    let (status, _) = read_json(server.get("/app/rest/hello/hello").await).await;
    assert_eq!(status, 200);
    for (id, size) in [("small", 100), ("large", 512 << 10)] {
        let (status, body) = post(
            &server,
            "/app/rest/reader/docs/loop",
            json!({"_id": id, "text": "x".repeat(size)}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }

    let started = Instant::now();
    let readers: Vec<_> = ["small", "small", "small", "small", "large", "large"]
        .into_iter()
        .map(|id| {
            let server = server.clone();
            tokio::spawn(async move {
                read_json(
                    server
                        .get(&format!("/app/rest/reader/docs/loop/getloop/{id}"))
                        .await,
                )
                .await
            })
        })
        .collect();
    // Let them start, then measure hello while they read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let until = started + Duration::from_millis(HOG_TIMEOUT_MS - 700);
    let mut latencies = Vec::new();
    while Instant::now() < until {
        let sent = Instant::now();
        let (status, body) = read_json(server.get("/app/rest/hello/hello").await).await;
        latencies.push(sent.elapsed());
        assert_eq!(status, 200, "{body}");
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let max = *latencies.last().expect("at least one hello request");
    println!(
        "hello during the read loops: {} requests, p50 {p50:?}, max {max:?}",
        latencies.len()
    );
    assert!(
        max < Duration::from_millis(HOG_TIMEOUT_MS / 3),
        "hello stays well under the readers' {HOG_TIMEOUT_MS} ms deadline: max {max:?}"
    );
    // Every reader ran until its deadline, not to an error of the store.
    for reader in readers {
        let (status, body) = reader.await.expect("a reader");
        assert_eq!(
            (status, body["code"].as_str()),
            (504, Some("ELEMENT_TIMEOUT")),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_reused_instances_keep_their_permits_and_make_room_for_events() {
    let dirs = Dirs::new();
    dirs.deploy(
        "warm",
        "misbehave",
        "[limits]\nisolation = \"reuse\"\nmax_concurrency = 2\n[events]\nsubscribe = [\"warm.*\"]\n",
    );
    let server = Arc::new(Server::start(&dirs, &[]));
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move { read_json(server.get("/app/rest/warm/sleep?ms=1000").await).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        let (status, body) = call.await.expect("a call");
        if status == 503 {
            assert_eq!(body["code"], "OVERLOADED", "{body}");
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 503], "two instances at most");

    // Both warm instances are idle now, holding both permits; requests reuse
    // them, and an event handler (a fresh instance) retires one to run.
    let (status, _) = read_json(server.get("/app/rest/warm/counter").await).await;
    assert_eq!(status, 200);
    let (status, body) = post(&server, "/app/rest/warm/publish/warm.ping", json!({"n": 1})).await;
    assert_eq!(status, 204, "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, received) = read_json(server.get("/app/rest/warm/received").await).await;
        assert_eq!(status, 200, "{received}");
        if received
            .as_array()
            .is_some_and(|r| r.iter().any(|e| e["name"] == "warm.ping"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the event was never handled:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_manifest_cannot_raise_the_operators_limits() {
    let dirs = Dirs::new();
    dirs.deploy("greedy", "misbehave", "[limits]\nmax_concurrency = 3\n");
    dirs.deploy(
        "slow",
        "misbehave",
        "[limits]\ntimeout_ms = 5000\nmemory_mib = 8\n",
    );
    dirs.deploy(
        "modest",
        "misbehave",
        "[limits]\nmax_concurrency = 1\ntimeout_ms = 500\n",
    );
    let server = Server::start(
        &dirs,
        &[
            "--max-concurrency",
            "2",
            "--timeout-ms",
            "1000",
            "--memory-mib",
            "32",
        ],
    );
    server.wait_for_log(
        "max_concurrency = 3 (the operator allows at most 2)",
        Duration::from_secs(10),
    );
    server.wait_for_log(
        "timeout_ms = 5000 (the operator allows at most 1000)",
        Duration::from_secs(10),
    );
    for refused in ["greedy", "slow"] {
        let (status, _) = read_json(server.get(&format!("/app/rest/{refused}/ok")).await).await;
        assert_eq!(status, 404, "{refused} is not deployed");
    }
    let (status, _) = read_json(server.get("/app/rest/modest/ok").await).await;
    assert_eq!(status, 200, "lowering limits is allowed");
}

/// Lines of the server log that contain `needle`.
fn log_lines(server: &Server, needle: &str) -> Vec<String> {
    server
        .log()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_log_flood_is_cut_at_the_cap_with_one_note_and_lines_cannot_be_forged() {
    let dirs = Dirs::new();
    dirs.deploy("chatty", "misbehave", "");
    dirs.deploy("quiet", "misbehave", "[limits]\nmax_log_lines = 100\n");
    // A 100k-line flood takes a while in a debug build: room for it.
    let server = Server::start(&dirs, &["--timeout-ms", "60000"]);

    for (name, cap) in [("chatty", 1000), ("quiet", 100)] {
        let started = Instant::now();
        let (status, body) =
            read_json(server.get(&format!("/app/rest/{name}/logflood?n=100000")).await).await;
        assert_eq!(status, 200, "{body}");
        println!("{name}: 100000 log calls in {:?}", started.elapsed());
        // A later request's line proves every line of the flood was read.
        let (status, _) = read_json(server.get(&format!("/app/rest/{name}/print")).await).await;
        assert_eq!(status, 200);
        let marker = format!("element={name}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !log_lines(&server, "hello on stderr")
            .iter()
            .any(|l| l.contains(&marker))
        {
            assert!(Instant::now() < deadline, "no stderr line of {name}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let flood: Vec<_> = log_lines(&server, "flood line")
            .into_iter()
            .filter(|l| l.contains(&marker))
            .collect();
        assert_eq!(flood.len(), cap, "{name}: exactly the cap of lines");
        let notes: Vec<_> = log_lines(&server, "further lines of this request are dropped")
            .into_iter()
            .filter(|l| l.contains(&marker))
            .collect();
        assert_eq!(notes.len(), 1, "{name}: one note: {notes:?}");
        assert!(notes[0].contains(&format!("{cap} lines")), "{}", notes[0]);
    }

    let (status, _) = read_json(server.get("/app/rest/chatty/forge").await).await;
    assert_eq!(status, 200);
    server.wait_for_log("FORGED-COLOUR", Duration::from_secs(5));
    let forged = log_lines(&server, "FORGED-LINE");
    assert_eq!(forged.len(), 1, "one call, one line: {forged:?}");
    assert!(
        forged[0].contains(r"before\nINFO element: FORGED-LINE"),
        "the newline shows escaped: {}",
        forged[0]
    );
    let colour = log_lines(&server, "FORGED-COLOUR");
    assert!(
        colour[0].contains(r"\u{1b}[31m") && !colour[0].contains('\u{1b}'),
        "control characters show escaped: {}",
        colour[0]
    );
}

#[tokio::test]
async fn printed_lines_share_the_log_cap_and_are_cut_not_lost() {
    let dirs = Dirs::new();
    dirs.deploy("quiet", "misbehave", "[limits]\nmax_log_lines = 100\n");
    let server = Server::start(&dirs, &["--timeout-ms", "60000"]);

    // println! is logged through the SDK: a flood stops at the cap.
    let (status, body) = read_json(server.get("/app/rest/quiet/printflood?n=20000").await).await;
    assert_eq!(status, 200, "{body}");
    // Descriptors other than stdout and stderr don't exist; text without
    // a newline is logged when the call ends; a long line comes in pieces.
    let (status, body) = read_json(server.get("/app/rest/quiet/printraw").await).await;
    assert_eq!(status, 200, "{body}");
    const EBADF: i64 = 8;
    assert_eq!(body, json!({"write": [-1, EBADF], "writev": [-1, EBADF]}));
    server.wait_for_log("stderr without newline", Duration::from_secs(10));

    assert_eq!(log_lines(&server, "print line").len(), 100, "exactly the cap");
    let notes = log_lines(&server, "further lines of this request are dropped");
    assert_eq!(notes.len(), 1, "{notes:?}");
    // The 10,000 x's: two full log lines, then the rest when the call ended.
    let runs: Vec<usize> = log_lines(&server, "xxxxxxxx")
        .iter()
        .map(|l| l.split(|c| c != 'x').map(str::len).max().unwrap_or(0))
        .collect();
    assert_eq!(runs, [4096, 4096, 10_000 - 2 * 4096], "{runs:?}");
    let stderr = log_lines(&server, "stderr without newline");
    assert!(stderr.len() == 1 && stderr[0].contains("WARN"), "{stderr:?}");
    assert!(!server.log().contains("nobody reads this"));
}

#[tokio::test]
async fn find_returns_at_most_1000_documents_and_8_mib() {
    let dirs = Dirs::new();
    dirs.deploy("docs", "misbehave", "");
    let server = Server::start(&dirs, &["--timeout-ms", "60000", "--max-request-body", "2000000"]);
    for _ in 0..3 {
        let (status, body) = post(&server, "/app/rest/docs/docs/items/fill?n=500", json!({})).await;
        assert_eq!(status, 204, "{body}");
    }
    let (status, found) = post(
        &server,
        "/app/rest/docs/docs/items/find",
        json!({"limit": 1_000_000}),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found.as_array().map(Vec::len), Some(1000));
    let (status, found) = post(&server, "/app/rest/docs/docs/items/find", json!({})).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found.as_array().map(Vec::len), Some(1000), "no limit: 1000");
    let (status, found) = post(
        &server,
        "/app/rest/docs/docs/items/find",
        json!({"skip": 1000, "limit": 1_000_000}),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found.as_array().map(Vec::len), Some(500), "the rest, by skip");

    // Nine documents of about 1 MB: more than 8 MiB together.
    let big = "x".repeat(1_000_000);
    for i in 0..9 {
        let (status, body) = post(&server, "/app/rest/docs/docs/big", json!({"i": i, "text": big})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, found) = post(&server, "/app/rest/docs/docs/big/find", json!({"limit": 5})).await;
    assert_eq!(status, 200);
    assert_eq!(found.as_array().map(Vec::len), Some(5));
    let (status, body) = post(&server, "/app/rest/docs/docs/big/find", json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("8 MiB")),
        "the error names the cap: {body}"
    );
}
