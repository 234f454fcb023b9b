//! Capabilities: a hostile Element (`runtime/tests/elements/hostile`, written
//! with the shipped SDK) tries everything issue 11 lists, and each attempt
//! fails with a typed error naming the missing grant, while what the
//! operator approved works and a well-behaved Element keeps answering.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Dirs, Server, admin_request, request, root_secret};

/// Signs up a user; returns (user id, session secret).
async fn signup(server: &Server, name: &str, email: &str) -> (String, String) {
    let (status, body) = request(
        server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(json!({"name": name, "email": email, "password": "password-123"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (
        body["session"]["user"]["id"].as_str().unwrap().to_owned(),
        body["sessionSecret"].as_str().unwrap().to_owned(),
    )
}

/// One attempt of the hostile Element, without credentials: its outcome.
async fn attempt(server: &Server, method: &str, path: &str, body: Option<Value>) -> Value {
    request(server, method, path, None, body).await.1
}

/// Asserts that an attempt was refused as forbidden, naming `grant`.
fn refused(outcome: &Value, grant: &str) {
    assert_eq!(outcome["ok"], false, "got through: {outcome}");
    assert_eq!(
        (outcome["status"].as_u64(), outcome["code"].as_str()),
        (Some(403), Some("FORBIDDEN")),
        "{outcome}"
    );
    let message = outcome["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(grant),
        "the refusal should name {grant}: {outcome}"
    );
}

fn start(dirs: &Dirs) -> Server {
    Server::start_with(dirs, &[], support::ROOT_ENV, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_element_without_grants_reaches_no_one() {
    let dirs = Dirs::new();
    dirs.deploy("hostile", "hostile", "");
    let server = start(&dirs);
    let (victim, victim_session) = signup(&server, "victim", "victim@corp.test").await;
    let root = root_secret(&server).await;

    let out = attempt(
        &server,
        "POST",
        "/app/rest/hostile/takeover",
        Some(json!({"email": "victim@corp.test"})),
    )
    .await;
    refused(&out, "identity.scheme:email");
    let out = attempt(
        &server,
        "POST",
        &format!("/app/rest/hostile/session/{victim}"),
        None,
    )
    .await;
    refused(&out, "identity.session");
    let out = attempt(&server, "GET", &format!("/app/rest/hostile/user/{victim}"), None).await;
    refused(&out, "identity.scheme:SCHEME");
    let out = attempt(
        &server,
        "POST",
        "/app/rest/hostile/verify",
        Some(json!({"email": "victim@corp.test"})),
    )
    .await;
    refused(&out, "identity.verify:email");
    let out = attempt(
        &server,
        "POST",
        "/app/rest/hostile/link",
        Some(json!({"user": victim, "email": "attacker@evil.test"})),
    )
    .await;
    refused(&out, "identity.scheme:email");

    // The calling user is always reachable: their own record, with their credential.
    let (_, out) = request(
        &server,
        "GET",
        &format!("/app/rest/hostile/user/{victim}"),
        Some(&victim_session),
        None,
    )
    .await;
    assert_eq!(
        (out["ok"].as_bool(), out["id"].as_str()),
        (Some(true), Some(victim.as_str())),
        "{out}"
    );
    // ... but being called by the victim grants no session for them.
    let (_, out) = request(
        &server,
        "POST",
        &format!("/app/rest/hostile/session/{victim}"),
        Some(&victim_session),
        None,
    )
    .await;
    refused(&out, "identity.session");

    // Nothing changed: the address is still unlinked to the attacker and unverified.
    let (status, user) = request(
        &server,
        "GET",
        &format!("/api/rest/user/{victim}"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["email"], "victim@corp.test", "{user}");
    let (status, _) = request(
        &server,
        "POST",
        "/api/rest/session",
        None,
        Some(json!({"userId": "attacker@evil.test", "password": "password-123"})),
    )
    .await;
    assert_ne!(status, 200, "the attacker's address was linked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_schemes_reach_their_users_and_never_a_superuser() {
    let dirs = Dirs::new();
    // `players` asks for its own scheme and sessions; `greedy` asks for the
    // email scheme too, and the operator approved both (flagged powerful).
    dirs.deploy(
        "players",
        "hostile",
        "grants = [\"identity.scheme:hostile.player\", \"identity.session\"]\n",
    );
    dirs.deploy(
        "greedy",
        "hostile",
        "grants = [\"identity.scheme:email\", \"identity.session\"]\n",
    );
    dirs.config(&format!(
        "{}{}",
        support::grants_section("players", &["identity.scheme:hostile.player", "identity.session"]),
        support::grants_section("greedy", &["identity.scheme:email", "identity.session"])
    ));
    let server = start(&dirs);
    let root = root_secret(&server).await;
    let (victim, _) = signup(&server, "victim", "victim@corp.test").await;
    let (boss, _) = signup(&server, "boss", "boss@corp.test").await;
    let (status, body) = request(
        &server,
        "PUT",
        &format!("/api/rest/user/{boss}"),
        Some(&root),
        Some(json!({"level": "SUPERUSER"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Its own scheme works end to end: the session is real.
    let (_, out) = request(&server, "POST", "/app/rest/players/player/42", None, None).await;
    assert_eq!(out["ok"], true, "{out}");
    let (status, me) = request(&server, "GET", "/api/rest/user/me", out["session"].as_str(), None).await;
    assert_eq!((status, &me["id"]), (200, &out["user"]), "{me}");
    // Other users stay out of reach, whoever they are.
    for user in [&victim, &boss] {
        let out = attempt(
            &server,
            "POST",
            &format!("/app/rest/players/session/{user}"),
            None,
        )
        .await;
        refused(&out, "identity.scheme:SCHEME");
    }
    let out = attempt(
        &server,
        "POST",
        "/app/rest/players/takeover",
        Some(json!({"email": "victim@corp.test"})),
    )
    .await;
    refused(&out, "identity.scheme:email");

    // The email scheme, approved, reaches email users: never a superuser.
    let out = attempt(
        &server,
        "POST",
        "/app/rest/greedy/takeover",
        Some(json!({"email": "boss@corp.test"})),
    )
    .await;
    assert_eq!(
        (out["ok"].as_bool(), out["status"].as_u64()),
        (Some(false), Some(403)),
        "{out}"
    );
    assert!(out["message"].as_str().unwrap().contains("SUPERUSER"), "{out}");
    let out = attempt(
        &server,
        "POST",
        "/app/rest/greedy/takeover",
        Some(json!({"email": "victim@corp.test"})),
    )
    .await;
    assert_eq!(out["ok"], true, "an approved grant works: {out}");
}

/// One type per concept: what an Element reads of a user through the SDK
/// (`elements_wire::User`, re-exported) is exactly what `/api/rest` answers
/// for them, every optional field included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_element_sees_a_user_exactly_as_the_rest_api_shows_them() {
    let dirs = Dirs::new();
    dirs.deploy("greedy", "hostile", "grants = [\"identity.scheme:email\"]\n");
    dirs.config(&support::grants_section("greedy", &["identity.scheme:email"]));
    let server = start(&dirs);
    let (user, session) = signup(&server, "shown", "shown@corp.test").await;
    let change = json!({
        "displayName": "Shown", "avatarUrl": "https://cdn.test/a.png", "langTag": "fr",
        "metadata": {"rank": "gold", "wins": 3}
    });
    let path = format!("/api/rest/user/{user}");
    let (status, body) = request(&server, "PUT", &path, Some(&session), Some(change)).await;
    assert_eq!(status, 200, "{body}");
    let (status, shown) = request(&server, "GET", &path, Some(&session), None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["metadata"]["wins"], 3, "{shown}");

    let mut seen = attempt(&server, "GET", &format!("/app/rest/greedy/user/{user}"), None).await;
    assert_eq!(seen["ok"], true, "{seen}");
    seen.as_object_mut().unwrap().remove("ok");
    assert_eq!(seen, shown, "the Element's user differs from /api/rest's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unapproved_or_malformed_grants_fail_the_deploy_naming_each() {
    let dirs = Dirs::new();
    dirs.deploy(
        "asks",
        "hostile",
        "grants = [\"mail.send\", \"identity.session\"]\n[events]\nsubscribe = [\"chat.*\"]\n",
    );
    dirs.deploy("bad", "hostile", "grants = [\"root\"]\n");
    dirs.deploy(
        "server-events",
        "hostile",
        "grants = [\"events.publish:dev.getelements.element.loaded\"]\n",
    );
    // Approving part of what is asked is not enough.
    dirs.config(&support::grants_section("asks", &["mail.send"]));
    let server = start(&dirs);
    server.wait_for_log("Element \"asks\" refused", Duration::from_secs(10));
    server.wait_for_log("Element \"bad\" refused", Duration::from_secs(10));
    server.wait_for_log("Element \"server-events\" refused", Duration::from_secs(10));
    let log = server.log();
    assert!(
        log.contains(
            "requests grants the operator has not approved: identity.session, events.subscribe:chat.*"
        ),
        "{log}"
    );
    assert!(log.contains("invalid grant \"root\""), "{log}");
    assert!(log.contains("published by the server alone"), "{log}");
    for name in ["asks", "bad", "server-events"] {
        let (status, _) = request(
            &server,
            "GET",
            &format!("/app/rest/{name}/attributes"),
            None,
            None,
        )
        .await;
        assert_eq!(status, 404, "{name} serves");
    }
}

/// Waits until the deliveries of the events named `names` stop growing;
/// returns their final count.
async fn settled_echoes(server: &Server, element: &str, names: &[&str]) -> u64 {
    let mut last = u64::MAX;
    let mut stable_since = Instant::now();
    let started = Instant::now();
    loop {
        let mut count = 0;
        for name in names {
            let out = attempt(
                server,
                "GET",
                &format!("/app/rest/{element}/echoes?name={name}"),
                None,
            )
            .await;
            count += out["count"].as_u64().unwrap_or_default();
        }
        if count != last {
            last = count;
            stable_since = Instant::now();
        } else if count > 0 && stable_since.elapsed() > Duration::from_millis(1500) {
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
async fn events_need_grants_and_no_loop_amplifies_without_bound() {
    let dirs = Dirs::new();
    // Subscribes to its own events and publishes two for each it receives.
    dirs.deploy("hostile", "hostile", "[events]\nsubscribe = [\"hostile.*\"]\n");
    dirs.deploy("hello", "hello", "");
    let server = start(&dirs);

    let out = attempt(&server, "POST", "/app/rest/hostile/publish/chat.message", None).await;
    refused(&out, "events.publish:chat.message");
    let out = attempt(
        &server,
        "POST",
        "/app/rest/hostile/publish/dev.getelements.element.loaded",
        None,
    )
    .await;
    assert_eq!(
        (out["ok"].as_bool(), out["status"].as_u64()),
        (Some(false), Some(403)),
        "{out}"
    );

    // A flood from one request stops at the per-request budget.
    let out = attempt(
        &server,
        "POST",
        "/app/rest/hostile/publish/hostile.flood?n=150",
        None,
    )
    .await;
    assert_eq!(
        (out["status"].as_u64(), out["code"].as_str()),
        (Some(429), Some("LIMIT_EXCEEDED")),
        "{out}"
    );
    // The flood's handlers publish echoes on the flood's budget too (while
    // the request still publishes): all count against its 100.
    let flood = settled_echoes(&server, "hostile", &["hostile.flood", "hostile.echo"]).await;
    let flood_echoes =
        attempt(&server, "GET", "/app/rest/hostile/echoes?name=hostile.echo", None).await["count"]
            .as_u64()
            .unwrap_or_default();

    // A self-feeding loop (two events out for every event in) is bounded by
    // the budget its first request started, while hello keeps answering.
    let out = attempt(&server, "POST", "/app/rest/hostile/publish/hostile.start", None).await;
    assert_eq!(out["ok"], true, "{out}");
    let mut latencies = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let (status, _) = request(&server, "GET", "/app/rest/hello/hello", None, None).await;
        latencies.push(started.elapsed());
        assert_eq!(status, 200);
    }
    // Counted by name, so a late flood delivery can't pass for the loop's.
    let looped = settled_echoes(&server, "hostile", &["hostile.start", "hostile.echo"]).await - flood_echoes;
    latencies.sort();
    println!(
        "event loop: {looped} deliveries from one request (flood: {flood}); hello p50 {:?}, max {:?} meanwhile",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert!(flood <= 100, "the flood delivered {flood}");
    assert!((2..=100).contains(&looped), "the loop delivered {looped}");
    assert!(
        latencies[latencies.len() - 1] < Duration::from_secs(2),
        "{latencies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_needs_its_grant_and_is_capped_per_request() {
    let smtp = support::SmtpServer::start();
    let dirs = Dirs::new();
    dirs.deploy("hostile", "hostile", "");
    dirs.deploy("mailer", "hostile", "grants = [\"mail.send\"]\n");
    dirs.config(&format!(
        "[services.mail]\nhost = \"127.0.0.1\"\nport = {}\nstarttls = false\nfrom = \"game@game.test\"\n{}",
        smtp.port,
        support::grants_section("mailer", &["mail.send"])
    ));
    let server = start(&dirs);
    let out = attempt(
        &server,
        "POST",
        "/app/rest/hostile/mail",
        Some(json!({"to": "victim@corp.test"})),
    )
    .await;
    refused(&out, "mail.send");
    let out = attempt(
        &server,
        "POST",
        "/app/rest/mailer/mail?n=12",
        Some(json!({"to": "player@game.test"})),
    )
    .await;
    assert_eq!(
        (out["status"].as_u64(), out["code"].as_str()),
        (Some(429), Some("LIMIT_EXCEEDED")),
        "{out}"
    );
    let started = Instant::now();
    while smtp.messages().len() < 10 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} messages",
            smtp.messages().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 10, "one request sends at most 10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_needs_a_grant_for_the_host() {
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = upstream.local_addr().unwrap().port();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = upstream.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let dirs = Dirs::new();
    dirs.deploy("hostile", "hostile", "");
    let server = start(&dirs);
    for url in [
        format!("http://127.0.0.1:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://localhost:{port}/"),
    ] {
        let (_, out) = request(
            &server,
            "GET",
            &format!(
                "/app/rest/hostile/fetch?url={}",
                url.replace(':', "%3A").replace('/', "%2F")
            ),
            None,
            None,
        )
        .await;
        assert_eq!(out["ok"], false, "{url}: {out}");
        assert!(
            out["message"].as_str().unwrap().contains("not allowed"),
            "{url}: {out}"
        );
    }
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a refused destination was connected to"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_approve_and_revoke_grants_through_the_admin_api() {
    let dirs = Dirs::new();
    dirs.deploy(
        "asks",
        "hostile",
        "grants = [\"identity.scheme:hostile.player\", \"identity.session\"]\n",
    );
    let server = start(&dirs);
    let root = root_secret(&server).await;
    let path = "/api/rest/elements/deployment/asks";

    // Requested and approved side by side; powerful ones flagged.
    let (status, view) = admin_request(&server, "GET", path, Some(&root), None).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("FAILED")), "{view}");
    let grants = view["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 2, "{view}");
    let session = grants.iter().find(|g| g["grant"] == "identity.session").unwrap();
    assert_eq!(
        (
            &session["requested"],
            &session["approvedBy"],
            &session["powerful"]
        ),
        (&json!(true), &Value::Null, &json!(true)),
        "{view}"
    );

    // A malformed grant is a 400 naming it, and changes nothing.
    let (status, body) = admin_request(
        &server,
        "PUT",
        path,
        Some(&root),
        Some(json!({"grants": ["identity.scheme:"]})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_PARAMETER")),
        "{body}"
    );
    // Approving part is not enough; approving all deploys it at once.
    let (_, view) = admin_request(
        &server,
        "PUT",
        path,
        Some(&root),
        Some(json!({"grants": ["identity.session"]})),
    )
    .await;
    assert_eq!(view["status"], "FAILED", "{view}");
    assert!(
        view["lastError"]
            .as_str()
            .unwrap()
            .contains("identity.scheme:hostile.player"),
        "{view}"
    );
    let (_, view) = admin_request(
        &server,
        "PUT",
        path,
        Some(&root),
        Some(json!({"grants": ["identity.session", "identity.scheme:hostile.player"]})),
    )
    .await;
    assert_eq!(view["status"], "LOADED", "{view}");
    assert!(
        view["grants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["approvedBy"] == "operator"),
        "{view}"
    );
    let (_, out) = request(&server, "POST", "/app/rest/asks/player/7", None, None).await;
    assert_eq!(out["ok"], true, "{out}");

    // Revoking stops the Element: no version keeps serving with the grant.
    let (_, view) = admin_request(&server, "PUT", path, Some(&root), Some(json!({"grants": []}))).await;
    assert_eq!(view["status"], "FAILED", "{view}");
    let (status, _) = request(&server, "POST", "/app/rest/asks/player/7", None, None).await;
    assert_eq!(status, 404);

    // Only superusers approve.
    let (_, session) = signup(&server, "player", "player@game.test").await;
    let (status, _) = admin_request(
        &server,
        "PUT",
        path,
        Some(&session),
        Some(json!({"grants": ["identity.session"]})),
    )
    .await;
    assert_eq!(status, 403);
}

/// A tiny HTTP server on loopback answering 200 "pong" to everything.
async fn pong_server() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong")
                    .await;
            });
        }
    });
    port
}

/// A server whose `mailer` sends through the configured SMTP server `first`
/// (`second` stands by for a change of settings) and whose `fetcher` may
/// fetch from the loopback `pong` server by name; with `root`'s session.
struct Settings {
    first: support::SmtpServer,
    second: support::SmtpServer,
    pong: u16,
    server: Server,
    root: String,
    _dirs: Dirs,
}

async fn service_settings_server() -> Settings {
    let first = support::SmtpServer::start();
    let second = support::SmtpServer::start();
    let pong = pong_server().await;
    let dirs = Dirs::new();
    dirs.deploy("mailer", "hostile", "grants = [\"mail.send\"]\n");
    let fetch_grant = format!("http.outbound:localhost:{pong}");
    dirs.deploy("fetcher", "hostile", &format!("grants = [{fetch_grant:?}]\n"));
    dirs.config(&format!(
        "[services.mail]\nhost = \"127.0.0.1\"\nport = {}\nstarttls = false\nfrom = \"game@game.test\"\n{}{}",
        first.port,
        support::grants_section("mailer", &["mail.send"]),
        support::grants_section("fetcher", &[&fetch_grant]),
    ));
    let server = start(&dirs);
    let root = root_secret(&server).await;
    Settings {
        first,
        second,
        pong,
        server,
        root,
        _dirs: dirs,
    }
}

impl Settings {
    /// The mailer sends one mail.
    async fn send(&self) -> Value {
        request(
            &self.server,
            "POST",
            "/app/rest/mailer/mail",
            None,
            Some(json!({"to": "player@game.test"})),
        )
        .await
        .1
    }

    /// The mail settings set to the `second` SMTP server, with a password.
    async fn switch_to_second(&self) -> Value {
        let (status, view) = admin_request(
            &self.server,
            "PUT",
            "/api/rest/services/mail",
            Some(&self.root),
            Some(json!({"port": self.second.port, "password": "smtp-pass-7x"})),
        )
        .await;
        assert_eq!(status, 200, "{view}");
        view
    }

    async fn fetch_by_name(&self) -> Value {
        let url = format!("http%3A%2F%2Flocalhost%3A{}%2F", self.pong);
        attempt(
            &self.server,
            "GET",
            &format!("/app/rest/fetcher/fetch?url={url}"),
            None,
        )
        .await
    }
}

/// Waits until `smtp` has received `n` messages.
fn delivered(smtp: &support::SmtpServer, n: usize) {
    let started = Instant::now();
    while smtp.messages().len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} of {n} messages",
            smtp.messages().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_settings_are_the_admin_listeners_and_superusers_only() {
    let s = service_settings_server().await;
    let (status, _) = request(&s.server, "GET", "/api/rest/services", Some(&s.root), None).await;
    assert_eq!(status, 404, "served on the public listener");
    let (_, player) = signup(&s.server, "player", "player@game.test").await;
    let (status, _) = admin_request(&s.server, "GET", "/api/rest/services", Some(&player), None).await;
    assert_eq!(status, 403);
    let (status, view) = admin_request(&s.server, "GET", "/api/rest/services", Some(&s.root), None).await;
    assert_eq!(
        (status, &view["mail"]["source"]),
        (200, &json!("configuration")),
        "{view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_settings_change_applies_at_once_and_its_password_is_write_only() {
    let s = service_settings_server().await;
    let out = s.send().await;
    assert_eq!(out["ok"], true, "{out}");
    delivered(&s.first, 1);
    let view = s.switch_to_second().await;
    assert_eq!(
        (&view["mail"]["passwordSet"], &view["mail"]["source"]),
        (&json!(true), &json!("operator")),
        "{view}"
    );
    assert!(!view.to_string().contains("smtp-pass-7x"));
    let out = s.send().await;
    assert_eq!(out["ok"], true, "{out}");
    delivered(&s.second, 1);
    assert_eq!(s.first.messages().len(), 1);
    assert!(!s.server.log().contains("smtp-pass-7x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_mail_settings_are_refused_and_change_nothing() {
    let s = service_settings_server().await;
    s.switch_to_second().await;
    let (status, body) = admin_request(
        &s.server,
        "PUT",
        "/api/rest/services/mail",
        Some(&s.root),
        Some(json!({"from": "not an address"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = admin_request(
        &s.server,
        "PUT",
        "/api/rest/services/mail",
        Some(&s.root),
        Some(json!({"colour": "red"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (_, view) = admin_request(&s.server, "GET", "/api/rest/services", Some(&s.root), None).await;
    assert_eq!(view["mail"]["port"], s.second.port, "{view}");
    assert!(!s.server.log().contains("smtp-pass-7x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_mail_settings_goes_back_to_the_configuration_files() {
    let s = service_settings_server().await;
    s.switch_to_second().await;
    let (_, view) = admin_request(
        &s.server,
        "DELETE",
        "/api/rest/services/mail",
        Some(&s.root),
        None,
    )
    .await;
    assert_eq!(view["mail"]["source"], "configuration", "{view}");
    s.send().await;
    delivered(&s.first, 1);
    assert_eq!(
        s.second.messages().len(),
        0,
        "sent to the operator's server after the delete"
    );
}

/// A name resolving to loopback is refused until the operator allows that
/// network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_to_loopback_needs_the_operator_to_allow_the_network() {
    let s = service_settings_server().await;
    let out = s.fetch_by_name().await;
    assert_eq!(out["ok"], false, "{out}");
    let (status, view) = admin_request(
        &s.server,
        "PUT",
        "/api/rest/services/http",
        Some(&s.root),
        Some(json!({"allowNetworks": ["127.0.0.0/8", "::1"]})),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    let out = s.fetch_by_name().await;
    assert_eq!(
        (out["ok"].as_bool(), out["status"].as_u64()),
        (Some(true), Some(200)),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_allowed_network_is_refused() {
    let s = service_settings_server().await;
    let (status, body) = admin_request(
        &s.server,
        "PUT",
        "/api/rest/services/http",
        Some(&s.root),
        Some(json!({"allowNetworks": ["10.0.0.0/33"]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let out = s.fetch_by_name().await;
    assert_eq!(out["ok"], false, "the refused setting allowed loopback: {out}");
}
