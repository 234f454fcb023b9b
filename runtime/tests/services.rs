//! Host services (documents, events, mail, outbound HTTP) exercised through
//! the fixture Element over real HTTP, with a real SMTP server and a real
//! HTTP upstream on loopback.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Dirs, Server, json as read_json};

async fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let response = server
        .client
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn patch(server: &Server, path: &str, body: Value) -> (u16, Value) {
    read_json(
        server
            .client
            .patch(server.url(path))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn documents_crud_queries_and_concurrency_control() {
    let dirs = Dirs::new();
    dirs.deploy("svc", "misbehave", "");
    let server = Server::start(&dirs, &[]);
    let base = "/app/rest/svc/docs/scores";

    let (status, _) = post(
        &server,
        &format!("{base}/index"),
        json!({"fields": ["player"], "unique": true}),
    )
    .await;
    assert_eq!(status, 204);
    let mut ids = Vec::new();
    for (player, score) in [("ana", 30), ("bo", 10), ("cy", 20)] {
        let (status, doc) = post(&server, base, json!({"player": player, "score": score})).await;
        assert_eq!(status, 201, "{doc}");
        assert_eq!(doc["_version"], 1);
        ids.push(doc["_id"].as_str().unwrap().to_owned());
    }
    let (status, body) = post(&server, base, json!({"player": "ana", "score": 1})).await;
    assert_eq!(status, 409, "a duplicate unique key is a conflict: {body}");

    let (status, doc) = read_json(server.get(&format!("{base}/{}", ids[0])).await).await;
    assert_eq!((status, &doc["player"]), (200, &json!("ana")));
    let (status, _) = read_json(server.get(&format!("{base}/no-such-id")).await).await;
    assert_eq!(status, 404);

    let (_, top) = post(
        &server,
        &format!("{base}/find"),
        json!({"filter": {"score": {"$gte": 15}}, "sort": [["score", true]], "limit": 10}),
    )
    .await;
    let players: Vec<&str> = top
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["player"].as_str().unwrap())
        .collect();
    assert_eq!(players, ["ana", "cy"]);
    let (_, count) = post(&server, &format!("{base}/count"), json!({})).await;
    assert_eq!(count["count"], 3);

    // Compare-and-set: the right version wins, a stale one conflicts.
    let (status, doc) = patch(
        &server,
        &format!("{base}/{}?version=1", ids[1]),
        json!({"$inc": {"score": 5}}),
    )
    .await;
    assert_eq!(
        (status, &doc["score"], &doc["_version"]),
        (200, &json!(15), &json!(2))
    );
    let (status, _) = patch(
        &server,
        &format!("{base}/{}?version=1", ids[1]),
        json!({"$inc": {"score": 5}}),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = patch(&server, &format!("{base}/missing"), json!({"$set": {"x": 1}})).await;
    assert_eq!(status, 404);

    // Atomic take: exactly once.
    let (status, taken) = post(&server, &format!("{base}/take"), json!({"player": "cy"})).await;
    assert_eq!((status, &taken["player"]), (200, &json!("cy")));
    let (status, _) = post(&server, &format!("{base}/take"), json!({"player": "cy"})).await;
    assert_eq!(status, 404);

    let (status, up) = post(
        &server,
        &format!("{base}/upsert"),
        json!({"filter": {"player": "dee"}, "update": {"$set": {"score": 7}}}),
    )
    .await;
    assert_eq!(
        (status, &up["player"], &up["score"]),
        (200, &json!("dee"), &json!(7))
    );

    let response = server
        .client
        .delete(server.url(&format!("{base}/{}", ids[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(read_json(response).await.1["deleted"], true);

    // Bad input is a clear 400, not a crash.
    let (status, body) = post(
        &server,
        &format!("{base}/find"),
        json!({"filter": {"score": {"$regex": "x"}}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(&server, "/app/rest/svc/docs/bad.name", json!({"a": 1})).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn element_data_is_private() {
    let dirs = Dirs::new();
    dirs.deploy("alpha", "misbehave", "");
    dirs.deploy("beta", "misbehave", "");
    let server = Server::start(&dirs, &[]);
    let (_, doc) = post(
        &server,
        "/app/rest/alpha/docs/things",
        json!({"secret": "alpha's"}),
    )
    .await;
    let id = doc["_id"].as_str().unwrap();
    let (status, _) = read_json(server.get(&format!("/app/rest/beta/docs/things/{id}")).await).await;
    assert_eq!(status, 404);
    let (_, found) = post(&server, "/app/rest/beta/docs/things/find", json!({"filter": {}})).await;
    assert_eq!(found, json!([]));
    let (status, _) = read_json(server.get(&format!("/app/rest/alpha/docs/things/{id}")).await).await;
    assert_eq!(status, 200);
}

async fn received(server: &Server, element: &str, name: &str) -> Vec<Value> {
    let (_, all) = read_json(server.get(&format!("/app/rest/{element}/received")).await).await;
    all.as_array()
        .map(|docs| docs.iter().filter(|d| d["name"] == name).cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn events_reach_subscribers_and_reserved_names_are_refused() {
    let dirs = Dirs::new();
    // Publishing and subscribing outside an Element's own name are grants.
    dirs.config(&format!(
        "{}{}{}{}{}",
        support::grants_section("pub", &["events.publish:test.*", "events.subscribe:test.*"]),
        support::grants_section("sub", &["events.subscribe:test.hello"]),
        support::grants_section("deaf", &["events.subscribe:other.*"]),
        support::grants_section("slow", &["events.subscribe:test.*"]),
        support::grants_section("watcher", &["events.subscribe:dev.getelements.element.*"]),
    ));
    dirs.deploy("pub", "misbehave", "[events]\nsubscribe = [\"test.*\"]\n");
    dirs.deploy("sub", "misbehave", "[events]\nsubscribe = [\"test.hello\"]\n");
    dirs.deploy("deaf", "misbehave", "[events]\nsubscribe = [\"other.*\"]\n");
    dirs.deploy(
        "slow",
        "misbehave",
        "[events]\nsubscribe = [\"test.*\"]\n[limits]\ntimeout_ms = 1\n",
    );
    let server = Server::start(&dirs, &[]);

    // Every handler sleeps 50 ms first: `slow` (1 ms to answer) never makes it.
    let (status, body) = post(
        &server,
        "/app/rest/pub/publish/test.hello",
        json!({"n": 1, "sleep_ms": 50}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let started = Instant::now();
    while received(&server, "sub", "test.hello").await.is_empty()
        || received(&server, "pub", "test.hello").await.is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the event never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        received(&server, "sub", "test.hello").await[0]["payload"],
        json!({"n": 1, "sleep_ms": 50})
    );
    assert!(received(&server, "deaf", "test.hello").await.is_empty());
    // A subscriber that fails (here: can't finish within 1 ms) is logged; the
    // publisher was answered long before.
    server.wait_for_log("event test.hello not handled", Duration::from_secs(10));

    let (status, body) = post(
        &server,
        "/app/rest/pub/publish/dev.getelements.element.loaded",
        json!({}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("are the server's"),
        "{body}"
    );
    // Outside its grants (and its own name), an Element may not publish.
    let (status, body) = post(&server, "/app/rest/sub/publish/test.hello", json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("events.publish:test.hello"),
        "{body}"
    );
    let (status, _) = post(&server, "/app/rest/pub/publish/Not.Valid", json!({})).await;
    assert_eq!(status, 400);

    // The server's own lifecycle events reach Elements that subscribe to them.
    dirs.manifest(
        "watcher",
        "[events]\nsubscribe = [\"dev.getelements.element.*\"]\n",
    );
    std::fs::copy(
        support::guest("misbehave"),
        dirs.deploy_dir().join("watcher.wasm"),
    )
    .unwrap();
    // Deployed in one debounced batch, `late` could load before `watcher`.
    server.wait_for_log("Element deployed at /app/rest/watcher", Duration::from_secs(10));
    std::fs::copy(support::guest("hello"), dirs.deploy_dir().join("late.wasm")).unwrap();
    let started = Instant::now();
    loop {
        let seen = received(&server, "watcher", "dev.getelements.element.loaded").await;
        if seen.iter().any(|e| e["payload"]["name"] == "late") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "lifecycle event never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A one-route HTTP upstream on loopback that counts connections.
async fn upstream() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        let app = axum::Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
        let service = app.into_make_service();
        let listener = CountingListener {
            inner: listener,
            counter,
        };
        let _ = axum::serve(listener, service).await;
    });
    (port, connections)
}

struct CountingListener {
    inner: tokio::net::TcpListener,
    counter: Arc<AtomicUsize>,
}

impl axum::serve::Listener for CountingListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Ok(conn) = self.inner.accept().await {
                self.counter.fetch_add(1, Ordering::SeqCst);
                return conn;
            }
        }
    }
    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_only_to_allowed_hosts() {
    let (allowed, _) = upstream().await;
    let (forbidden, forbidden_connections) = upstream().await;
    let dirs = Dirs::new();
    // The operator's approvals: svc may call the allowed upstream's exact
    // address; nothing else is approved for anyone.
    dirs.config(&support::grants_section(
        "svc",
        &[&format!("http.outbound:127.0.0.1:{allowed}")],
    ));
    dirs.deploy("svc", "misbehave", "");
    dirs.deploy("closed", "misbehave", "");
    // A manifest requesting a wildcard grant is refused, naming it.
    dirs.deploy(
        "broken",
        "misbehave",
        "grants = [\"http.outbound:*.example.com\"]\n",
    );
    // A manifest requesting a grant nobody approved does not deploy.
    dirs.deploy(
        "greedy",
        "misbehave",
        &format!("grants = [\"http.outbound:127.0.0.1:{forbidden}\"]\n"),
    );
    let server = Server::start(&dirs, &[]);

    let url = |port: u16| format!("http%3A%2F%2F127.0.0.1%3A{port}%2Fping");
    let (status, body) = read_json(
        server
            .get(&format!("/app/rest/svc/fetch?url={}", url(allowed)))
            .await,
    )
    .await;
    assert_eq!(
        (status, &body["status"], &body["body"]),
        (200, &json!(200), &json!("pong")),
        "{body}"
    );

    let (status, body) = read_json(
        server
            .get(&format!("/app/rest/svc/fetch?url={}", url(forbidden)))
            .await,
    )
    .await;
    assert_eq!(status, 502, "{body}");
    let (status, body) = read_json(
        server
            .get(&format!("/app/rest/closed/fetch?url={}", url(allowed)))
            .await,
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        forbidden_connections.load(Ordering::SeqCst),
        0,
        "a refused host was connected to"
    );

    // A malformed grant fails the deploy, naming it; so does an unapproved one.
    server.wait_for_log("Element \"broken\" refused", Duration::from_secs(5));
    assert!(
        server
            .log()
            .contains("invalid grant \"http.outbound:*.example.com\""),
        "{}",
        server.log()
    );
    server.wait_for_log("Element \"greedy\" refused", Duration::from_secs(5));
    assert!(
        server.log().contains(&format!(
            "requests grants the operator has not approved: http.outbound:127.0.0.1:{forbidden}"
        )),
        "{}",
        server.log()
    );
    let (status, _) = read_json(server.get("/app/rest/greedy/ok").await).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn mail_goes_through_a_real_smtp_server() {
    let smtp = support::SmtpServer::start();
    let mail_config = |port: u16| {
        format!(
            "[services.mail]\nhost = \"127.0.0.1\"\nport = {port}\nstarttls = false\n\
             from = \"Game <noreply@game.test>\"\nmax_per_request = 3\n{}",
            support::grants_section("svc", &["mail.send"])
        )
    };
    let dirs = Dirs::new();
    dirs.config(&mail_config(smtp.port));
    dirs.deploy("svc", "misbehave", "grants = [\"mail.send\"]\n");
    dirs.deploy("nogrant", "misbehave", "");
    dirs.deploy("hostile", "hostile", "");
    let server = Server::start(&dirs, &[]);

    let message =
        json!({"to": ["Player@Example.com"], "subject": "Welcome!", "html": "<p>Hi</p>", "text": "Hi"});
    let (status, body) = post(&server, "/app/rest/svc/mail", message.clone()).await;
    assert_eq!(status, 204, "{body}");
    let received = smtp.wait_for_message(Duration::from_secs(10));
    assert!(received.contains("Subject: Welcome!"), "{received}");
    assert!(received.contains("To: Player@Example.com"), "{received}");
    assert!(received.contains("From: Game <noreply@game.test>"), "{received}");

    // Without the grant: a typed refusal naming it, and nothing sent.
    let (status, body) = post(&server, "/app/rest/nogrant/mail", message.clone()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("mail.send"), "{body}");
    // The operator's settings are not attributes: no Element reads them.
    let (status, attrs) = read_json(server.get("/app/rest/hostile/attributes").await).await;
    assert_eq!(status, 200, "{attrs}");
    let text = attrs.to_string();
    assert!(!text.contains("smtp") && !text.contains("game.test"), "{text}");
    let (status, body) = post(
        &server,
        "/app/rest/svc/mail",
        json!({"to": ["not an address"], "subject": "x", "text": "x"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let sent_before = smtp.messages().len();
    drop(server);

    // No SMTP host: a distinct error.
    let dirs = Dirs::new();
    dirs.config(&support::grants_section("svc", &["mail.send"]));
    dirs.deploy("svc", "misbehave", "grants = [\"mail.send\"]\n");
    let server = Server::start(&dirs, &[]);
    let (status, body) = post(&server, "/app/rest/svc/mail", message.clone()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("MAIL_NOT_CONFIGURED")),
        "{body}"
    );
    drop(server);

    // The SMTP server is down: 502.
    let dirs = Dirs::new();
    dirs.config(&mail_config(support::closed_port()));
    dirs.deploy("svc", "misbehave", "grants = [\"mail.send\"]\n");
    let server = Server::start(&dirs, &[]);
    let (status, body) = post(&server, "/app/rest/svc/mail", message.clone()).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(smtp.messages().len(), sent_before);
}

/// Mail settings are the operator's alone: the old attributes are refused
/// at startup (as attributes, every Element could read them).
#[test]
fn smtp_attributes_are_refused_in_the_configuration() {
    let dirs = Dirs::new();
    dirs.config("[attributes]\n\"dev.getelements.elements.email.smtp.password\" = \"x\"\n");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_elements"))
        .arg("--config")
        .arg(dirs.root.path().join("elements.toml"))
        .arg("--data-dir")
        .arg(dirs.root.path().join("data"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("[services.mail]"), "{stderr}");
}

/// The leaderboard example works as its README says: best scores kept,
/// ranked, and its own events counted through its subscription.
#[tokio::test]
async fn the_leaderboard_example_keeps_best_scores_and_counts_its_events() {
    let dirs = Dirs::new();
    dirs.deploy(
        "leaderboard",
        "leaderboard",
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/leaderboard/element.toml"
        ))
        .unwrap(),
    );
    let server = Server::start(&dirs, &[]);
    for (player, score) in [("ana", 10), ("bo", 30), ("ana", 25), ("ana", 5)] {
        let (status, body) = post(
            &server,
            "/app/rest/leaderboard/scores",
            json!({"player": player, "score": score}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, ana) = read_json(server.get("/app/rest/leaderboard/players/ana").await).await;
    assert_eq!(ana["score"], 25, "{ana}");
    let (status, _) = read_json(server.get("/app/rest/leaderboard/players/nobody").await).await;
    assert_eq!(status, 404);
    let (_, top) = read_json(server.get("/app/rest/leaderboard/top?limit=10").await).await;
    let ranking: Vec<(&str, i64)> = top
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["player"].as_str().unwrap(), d["score"].as_i64().unwrap()))
        .collect();
    assert_eq!(ranking, [("bo", 30), ("ana", 25)]);
    let started = Instant::now();
    loop {
        let (_, stats) = read_json(server.get("/app/rest/leaderboard/stats").await).await;
        if stats["leaderboard.score_posted"] == 4 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "events not counted: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
