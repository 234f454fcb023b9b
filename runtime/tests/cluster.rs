//! Several nodes over NATS: two real `elements` processes sharing one SQLite
//! store, and a real `nats-server` (Debian's package; `cargo xtask test`
//! installs it) with JetStream on a random loopback port.

mod support;

use std::time::{Duration, Instant};

use elements_cluster::StreamCap;
use serde_json::{Value, json};
use support::nats::Nats;
use support::{Dirs, ROOT_ENV, Server, admin_request, request, root_secret};

/// A node of the cluster on `dirs` (polling for deployments only once a
/// minute, so what arrives sooner came over NATS).
fn node(dirs: &Dirs, nats: &Nats) -> Server {
    let url = nats.url();
    let database = format!("cluster_{}", std::process::id());
    Server::start_with(
        dirs,
        &["--nats-url", &url, "--deploy-poll-ms", "60000"],
        ROOT_ENV,
        Some(&database),
    )
}

/// Waits until `server` logged `needle` at least `times` times.
fn wait_for_count(server: &Server, needle: &str, times: usize, timeout: Duration) {
    let started = Instant::now();
    while server.log().matches(needle).count() < times {
        assert!(
            started.elapsed() < timeout,
            "log never had {times} × {needle:?}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn publish(server: &Server, element: &str, name: &str, payload: Value) {
    let (status, body) = request(
        server,
        "POST",
        &format!("/app/rest/{element}/publish/{name}"),
        None,
        Some(payload),
    )
    .await;
    assert_eq!(status, 204, "{body}");
}

/// What the misbehave Element `element` received (stored in the shared
/// store, so either node answers the same).
async fn received(server: &Server, element: &str) -> Vec<Value> {
    let (status, body) = request(
        server,
        "GET",
        &format!("/app/rest/{element}/received"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

/// Waits until `element` received `n` events, then a little longer, and
/// returns them all (so a duplicate arriving late is seen).
async fn settled(server: &Server, element: &str, n: usize, nodes: &[&Server]) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let got = received(server, element).await;
        if got.len() >= n {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            return received(server, element).await;
        }
        let logs: Vec<String> = nodes.iter().map(|s| s.log()).collect();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{element} received {} of {n}: {got:?}\n{}",
            got.len(),
            logs.join("\n----\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `i` of every received payload, sorted.
fn indices(events: &[Value]) -> Vec<u64> {
    let mut is: Vec<u64> = events.iter().filter_map(|e| e["payload"]["i"].as_u64()).collect();
    is.sort();
    is
}

fn cluster_dirs() -> Dirs {
    let dirs = Dirs::new();
    dirs.config(
        &[
            support::grants_section("sub", &["events.subscribe:pub.*"]),
            support::grants_section("sub2", &["events.subscribe:pub.*"]),
        ]
        .concat(),
    );
    dirs.deploy("pub", "misbehave", "");
    dirs.deploy("sub", "misbehave", "[events]\nsubscribe = [\"pub.*\"]\n");
    dirs.deploy("sub2", "misbehave", "[events]\nsubscribe = [\"pub.*\"]\n");
    dirs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_each_subscriber_once_per_cluster_and_deploys_are_announced() {
    let nats = Nats::start();
    let dirs = cluster_dirs();
    dirs.deploy("hostile", "hostile", "[events]\nsubscribe = [\"hostile.*\"]\n");
    let a = node(&dirs, &nats);
    let b = node(&dirs, &nats);
    for server in [&a, &b] {
        server.wait_for_log("connected to NATS", Duration::from_secs(20));
        // sub, sub2 and hostile.
        wait_for_count(server, "consuming cluster events", 3, Duration::from_secs(20));
    }

    // Published on either node, each subscribing Element gets each event once.
    for i in 0..20u64 {
        let on = if i % 2 == 0 { &a } else { &b };
        publish(on, "pub", "pub.score", json!({"i": i})).await;
    }
    for element in ["sub", "sub2"] {
        let got = settled(&a, element, 20, &[&a, &b]).await;
        assert_eq!(indices(&got), (0..20).collect::<Vec<_>>(), "{element}: {got:?}");
    }

    // A deploy on A serves on B long before B would poll (once a minute).
    let root = root_secret(&a).await;
    let form = reqwest::multipart::Form::new().text("name", "late").part(
        "component",
        reqwest::multipart::Part::bytes(std::fs::read(support::guest("hello")).unwrap())
            .file_name("element.wasm"),
    );
    let started = Instant::now();
    let response = a
        .client
        .post(a.admin_url("/api/rest/elements/deployment"))
        .bearer_auth(&root)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{:?}", response.text().await);
    loop {
        let (status, _) = request(&b, "GET", "/app/rest/late/hello", None, None).await;
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "B never served the Element deployed on A:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    println!("deployed on A, served on B after {took:?} (polling: once a minute)");
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(b.log().contains("deployment change announced"), "{}", b.log());
    // And removed from B as fast.
    let (status, body) = admin_request(
        &a,
        "DELETE",
        "/api/rest/elements/deployment/late",
        Some(root.as_str()),
        None,
    )
    .await;
    assert!(status < 300, "{status} {body}");
    let started = Instant::now();
    while request(&b, "GET", "/app/rest/late/hello", None, None).await.0 == 200 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "B still serves the removed Element"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A flood from one request on A stops at its budget, and what its
    // events set off on both nodes stays within the budget on each node.
    let (_, out) = request(
        &a,
        "POST",
        "/app/rest/hostile/publish/hostile.flood?n=150",
        None,
        None,
    )
    .await;
    assert_eq!(
        (out["status"].as_u64(), out["code"].as_str()),
        (Some(429), Some("LIMIT_EXCEEDED")),
        "{out}"
    );
    let flood = settled_echoes(&a, &["hostile.flood", "hostile.echo"]).await;
    let budget = u64::from(elements_host::events::EVENTS_PER_CHAIN);
    println!("flood across two nodes: {flood} deliveries");
    assert!(flood >= 100, "every accepted flood event is delivered: {flood}");
    assert!(flood <= 2 * budget, "two nodes, at most the budget each: {flood}");

    // Garbage on the event subjects, from a plain NATS client, is dropped
    // with a log line; both nodes go on serving and delivering.
    let raw = nats.client().await;
    let mut forged = elements_cluster::HeaderMap::new();
    forged.insert("Elements-Event", "pub.score");
    forged.insert("Elements-Chain", "forged");
    forged.insert("Elements-Depth", "0");
    forged.insert("Elements-Budget", "100");
    raw.publish(
        "events.pub.score",
        elements_cluster::HeaderMap::new(),
        elements_cluster::Bytes::from_static(b"\xff not json"),
    )
    .await
    .unwrap();
    raw.publish_durable(
        "events-durable.pub.score",
        forged.clone(),
        elements_cluster::Bytes::from_static(b"{not json"),
    )
    .await
    .unwrap();
    forged.insert("Elements-Depth", "250");
    raw.publish_durable(
        "events-durable.pub.score",
        forged,
        elements_cluster::Bytes::from_static(b"{}"),
    )
    .await
    .unwrap();
    let started = Instant::now();
    while (a.log() + &b.log())
        .matches("dropped a malformed event message")
        .count()
        < 3
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no log of the malformed messages:\n{}\n----\n{}",
            a.log(),
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publish(&b, "pub", "pub.score", json!({"i": 20})).await;
    let got = settled(&a, "sub", 21, &[&a, &b]).await;
    assert_eq!(indices(&got), (0..21).collect::<Vec<_>>(), "{got:?}");
    for server in [&a, &b] {
        assert_eq!(
            request(server, "GET", "/app/rest/pub/received", None, None)
                .await
                .0,
            200
        );
    }
}

/// Waits until the hostile Element's deliveries of `names` stop growing.
async fn settled_echoes(server: &Server, names: &[&str]) -> u64 {
    let mut last = u64::MAX;
    let mut stable_since = Instant::now();
    let started = Instant::now();
    loop {
        let mut count = 0;
        for name in names {
            let (_, out) = request(
                server,
                "GET",
                &format!("/app/rest/hostile/echoes?name={name}"),
                None,
                None,
            )
            .await;
            count += out["count"].as_u64().unwrap_or_default();
        }
        if count != last {
            last = count;
            stable_since = Instant::now();
        } else if count > 0 && stable_since.elapsed() > Duration::from_secs(2) {
            return count;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "events never settled (at {count})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_keep_serving_while_nats_is_down_and_events_flow_again_after() {
    let mut nats = Nats::start();
    let dirs = cluster_dirs();
    dirs.deploy("hello", "hello", "");
    let a = node(&dirs, &nats);
    let b = node(&dirs, &nats);
    for server in [&a, &b] {
        server.wait_for_log("connected to NATS", Duration::from_secs(20));
        wait_for_count(server, "consuming cluster events", 2, Duration::from_secs(20));
    }
    publish(&a, "pub", "pub.score", json!({"i": 0})).await;
    assert_eq!(indices(&settled(&a, "sub", 1, &[&a, &b]).await), [0]);

    let connects: Vec<usize> = [&a, &b]
        .iter()
        .map(|s| s.log().matches("connected to NATS").count())
        .collect();
    nats.kill();
    for server in [&a, &b] {
        server.wait_for_log("lost the NATS connection", Duration::from_secs(20));
    }
    // Both serve, and an event published meanwhile is delivered on its node.
    for server in [&a, &b] {
        let (status, _) = request(server, "GET", "/app/rest/hello/hello", None, None).await;
        assert_eq!(status, 200);
    }
    publish(&a, "pub", "pub.score", json!({"i": 1})).await;
    assert_eq!(indices(&settled(&a, "sub", 2, &[&a, &b]).await), [0, 1]);

    nats.restart();
    for (server, before) in [&a, &b].into_iter().zip(connects) {
        wait_for_count(server, "connected to NATS", before + 1, Duration::from_secs(30));
    }
    // Published on either node once NATS is back: each delivered once.
    // Events right after the reconnect may still take the local path,
    // so they are checked for exactly-once only.
    for i in 2..8u64 {
        let on = if i % 2 == 0 { &a } else { &b };
        publish(on, "pub", "pub.score", json!({"i": i})).await;
    }
    let got = settled(&a, "sub", 8, &[&a, &b]).await;
    assert_eq!(indices(&got), (0..8).collect::<Vec<_>>(), "{got:?}");
    let got = settled(&a, "sub2", 8, &[&a, &b]).await;
    assert_eq!(indices(&got), (0..8).collect::<Vec<_>>(), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_event_waits_for_its_subscriber_to_come_back() {
    let nats = Nats::start();
    let (_dirs_a, dirs_b, a, mut b) = publisher_and_subscriber(&nats);
    a.wait_for_log("connected to NATS", Duration::from_secs(20));
    b.wait_for_log("consuming cluster events", Duration::from_secs(20));

    publish(&a, "pub", "pub.score", json!({"i": 0})).await;
    assert_eq!(indices(&settled(&b, "sub", 1, &[&a, &b]).await), [0]);

    // B goes away (as a crash would); events are published meanwhile.
    b.kill9();
    for i in 1..4u64 {
        publish(&a, "pub", "pub.score", json!({"i": i})).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = node(&dirs_b, &nats);
    let got = settled(&b, "sub", 4, &[&a, &b]).await;
    assert_eq!(indices(&got), [0, 1, 2, 3], "{got:?}");
}

/// A publisher on node A and a subscriber on node B, over `nats`: two deploy
/// folders, one store (B's data folder is A's). The folders are returned
/// to outlive the nodes, and to start B again.
fn publisher_and_subscriber(nats: &Nats) -> (Dirs, Dirs, Server, Server) {
    let (dirs_a, dirs_b) = (Dirs::new(), Dirs::new());
    let grants = support::grants_section("sub", &["events.subscribe:pub.*"]);
    dirs_a.config(&grants);
    dirs_b.config(&grants);
    dirs_a.deploy("pub", "misbehave", "");
    dirs_b.deploy("sub", "misbehave", "[events]\nsubscribe = [\"pub.*\"]\n");
    std::fs::create_dir_all(dirs_a.root.path().join("data")).unwrap();
    std::os::unix::fs::symlink(dirs_a.root.path().join("data"), dirs_b.root.path().join("data")).unwrap();
    let a = node(&dirs_a, nats);
    let b = node(&dirs_b, nats);
    (dirs_a, dirs_b, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_jetstream_budget_gets_a_smaller_event_stream_not_none() {
    // JetStream reserves a stream's whole cap up front: 1 GiB doesn't fit
    // in 100 MiB, so the stream is made with the largest halving that does.
    let nats = Nats::with_storage("100MB");
    let (_dirs_a, _dirs_b, a, b) = publisher_and_subscriber(&nats);
    a.wait_for_log("connected to NATS", Duration::from_secs(20));
    b.wait_for_log("consuming cluster events", Duration::from_secs(20));
    // The node that made the stream blames the budget; one that found it
    // made says it was set then.
    for server in [&a, &b] {
        server.wait_for_log("got_bytes=67108864", Duration::from_secs(20));
    }
    let shrunk = "the NATS event stream was made smaller than wanted: JetStream's storage budget is short";
    assert!(
        a.log().contains(shrunk) || b.log().contains(shrunk),
        "{}\n---\n{}",
        a.log(),
        b.log()
    );
    // Events cross the cluster through it.
    for i in 0..3u64 {
        publish(&a, "pub", "pub.score", json!({"i": i})).await;
    }
    assert_eq!(indices(&settled(&b, "sub", 3, &[&a, &b]).await), [0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_jetstream_refuses_is_said_once_and_events_stay_on_their_node() {
    // Below 1/64 of the wanted cap, no stream is made at all.
    let nats = Nats::with_storage("1MB");
    let dirs = cluster_dirs();
    let a = node(&dirs, &nats);
    a.wait_for_log("the NATS event stream can't be made yet", Duration::from_secs(20));
    a.wait_for_log("can't consume the cluster's events yet", Duration::from_secs(20));
    // Events published meanwhile reach this node's subscribers.
    for i in 0..3u64 {
        publish(&a, "pub", "pub.score", json!({"i": i})).await;
    }
    assert_eq!(indices(&settled(&a, "sub", 3, &[&a]).await), [0, 1, 2]);
    // Retried all along (every 250 ms, backing off to 5 s), yet said once
    // per distinct error: a log an operator can read, not a flood.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let log = a.log();
    assert_eq!(
        log.matches("the NATS event stream can't be made yet").count(),
        1,
        "{log}"
    );
    assert!(log.contains("insufficient storage"), "the reason is given: {log}");
    for element in ["sub", "sub2"] {
        let lines = log
            .lines()
            .filter(|l| {
                l.contains("can't consume the cluster's events yet")
                    && l.contains(&format!("element={element} "))
            })
            .count();
        assert_eq!(lines, 1, "{element}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_event_stream_cap_is_the_streams_when_it_fits() {
    let nats = Nats::with_storage("100MB");
    let dirs = cluster_dirs();
    let url = nats.url();
    let a = Server::start_with(
        &dirs,
        &["--nats-url", &url, "--nats-events-max-bytes", "33554432"],
        ROOT_ENV,
        Some(&format!("cluster_cap_{}", std::process::id())),
    );
    wait_for_count(&a, "consuming cluster events", 2, Duration::from_secs(20));
    // The stream exists with the configured cap: ensuring it again keeps it.
    let raw = nats.client().await;
    let cap = raw
        .ensure_stream("EVENTS", "events-durable.>", Duration::from_secs(60), 1 << 30)
        .await
        .unwrap();
    assert_eq!(cap, StreamCap::Existing(32 << 20));
    assert!(!a.log().contains("smaller"), "{}", a.log());
    // A node that wants more keeps it too, and says where the cap came from.
    let b = Server::start_with(
        &dirs,
        &["--nats-url", &url],
        ROOT_ENV,
        Some(&format!("cluster_cap_{}", std::process::id())),
    );
    b.wait_for_log(
        "the NATS event stream exists with a smaller cap than wanted, set when it was first made",
        Duration::from_secs(20),
    );
    assert!(b.log().contains("got_bytes=33554432"), "{}", b.log());
    assert!(!b.log().contains("storage budget"), "{}", b.log());
    // A node that wants less keeps it as well, and only says so.
    let c = Server::start_with(
        &dirs,
        &["--nats-url", &url, "--nats-events-max-bytes", "16777216"],
        ROOT_ENV,
        Some(&format!("cluster_cap_{}", std::process::id())),
    );
    c.wait_for_log(
        "the NATS event stream exists with a larger cap than wanted, set when it was first made; it is kept",
        Duration::from_secs(20),
    );
    assert!(c.log().contains("got_bytes=33554432"), "{}", c.log());
    assert!(!c.log().contains("smaller"), "{}", c.log());
}
