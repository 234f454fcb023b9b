//! The bundled Email Verification Element over HTTP against the real binary,
//! mounted at its core paths, with a real SMTP server (aiosmtpd) on loopback.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Dirs, Server, SmtpServer, raw_request};

const PUBLIC_URL: &str = "https://game.test";
const REQUEST: &str = "/api/rest/user/me/email/verify";
const VERIFY: &str = "/api/rest/verify";
const REQUESTED: &str = "dev.getelements.email_verification.requested";
const COMPLETED: &str = "dev.getelements.email_verification.completed";

/// A request with an optional Bearer credential and a raw JSON body.
async fn call(
    server: &Server,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let authorization = bearer.map(|secret| format!("Bearer {secret}"));
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|a| ("authorization", a.as_str()))
        .collect();
    raw_request(server, method, path, &headers, body).await
}

async fn request_verification(server: &Server, bearer: Option<&str>, email: &str) -> (u16, Value) {
    call(
        server,
        "POST",
        REQUEST,
        bearer,
        Some(&json!({"email": email}).to_string()),
    )
    .await
}

/// Signs up `name` with `email`; returns the session secret.
async fn signup(server: &Server, name: &str, email: &str) -> String {
    let body = json!({"name": name, "email": email, "password": "password-123"}).to_string();
    let (status, created) = call(server, "POST", "/api/rest/signup/session", None, Some(&body)).await;
    assert_eq!(status, 200, "{created}");
    created["sessionSecret"].as_str().unwrap().to_owned()
}

/// The identity as the host has it (through the fixture Element).
async fn identity(server: &Server, email: &str) -> Value {
    let (status, found) = call(
        server,
        "GET",
        &format!("/app/rest/probe/identity/email/{email}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{found}");
    found
}

/// Events the fixture Element received.
async fn events(server: &Server, name: &str) -> Vec<Value> {
    let (_, all) = call(server, "GET", "/app/rest/probe/received", None, None).await;
    all.as_array()
        .map(|docs| {
            docs.iter()
                .filter(|d| d["name"] == name)
                .map(|d| d["payload"].clone())
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_for_event(server: &Server, name: &str, count: usize) -> Vec<Value> {
    let started = std::time::Instant::now();
    loop {
        let seen = events(server, name).await;
        if seen.len() >= count {
            return seen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "event {name} never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deploys the Element (sending to SMTP `port`, or with mail not configured)
/// and the probe fixture, which subscribes to the verification events; the
/// configuration holds the operator's SMTP settings and the probe's grants.
fn deploy(dirs: &Dirs, smtp_port: Option<u16>, extra: &[(&str, &str)]) {
    let mut config = String::new();
    if let Some(port) = smtp_port {
        config.push_str(&format!(
            "[services.mail]\nhost = \"127.0.0.1\"\nport = {port}\nstarttls = false\n\
             from = \"Game <noreply@game.test>\"\n"
        ));
    }
    config.push_str(&support::grants_section(
        "probe",
        &[
            "events.subscribe:dev.getelements.email_verification.*",
            "identity.verify:email",
        ],
    ));
    dirs.config(&config);
    dirs.deploy_bundled("email-verification", "email-verification", extra);
    dirs.deploy(
        "probe",
        "misbehave",
        "[events]\nsubscribe = [\"dev.getelements.email_verification.*\"]\n",
    );
}

fn start(dirs: &Dirs, env: &[(&str, &str)], database: Option<&str>) -> Server {
    let mut env = env.to_vec();
    env.push(("ELEMENTS_PUBLIC_URL", PUBLIC_URL));
    Server::start_with(dirs, &[], &env, database)
}

/// Decodes quoted-printable soft breaks and `=XX` escapes (harmless on
/// 7-bit text).
fn unquote(raw: &str) -> String {
    let raw = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&raw[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The verification link in a raw message.
fn link_in(message: &str) -> String {
    let text = unquote(message);
    let start = text
        .find(&format!("{PUBLIC_URL}{VERIFY}?token="))
        .unwrap_or_else(|| panic!("no verification link in:\n{text}"));
    text[start..]
        .split(['"', '<', '\r', '\n', ' '])
        .next()
        .unwrap()
        .to_owned()
}

/// The path and query of a link to the public URL.
fn path_of(link: &str) -> &str {
    link.strip_prefix(PUBLIC_URL).expect("a link to the public URL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_complete_verification() {
    let smtp = SmtpServer::start();
    let dirs = Dirs::new();
    deploy(&dirs, Some(smtp.port), &[]);
    let server = start(&dirs, &[], None);
    let ana = signup(&server, "ana", "Ana@Example.com").await;
    signup(&server, "bob", "bob@example.com").await;
    assert_eq!(
        identity(&server, "ana@example.com").await["verification"],
        "UNVERIFIED"
    );

    // Who may ask.
    let (status, err) = request_verification(&server, None, "ana@example.com").await;
    assert_eq!(
        (status, &err["code"]),
        (401, &json!("UNAUTHORIZED")),
        "no session: {err}"
    );
    let (status, err) = request_verification(&server, Some("not-a-session"), "ana@example.com").await;
    assert_eq!(
        (status, &err["code"], &err["message"]),
        (
            401,
            &json!("UNAUTHORIZED"),
            &json!("the session credentials are invalid or expired")
        ),
        "an invalid session: {err}"
    );
    let (status, err) = request_verification(&server, Some(&ana), "bob@example.com").await;
    assert_eq!(
        (status, &err["code"]),
        (403, &json!("FORBIDDEN")),
        "another user's: {err}"
    );
    let (status, err) = request_verification(&server, Some(&ana), "nobody@example.com").await;
    assert_eq!(
        (status, &err["code"]),
        (404, &json!("NOT_FOUND")),
        "not linked: {err}"
    );
    let (status, err) = call(&server, "POST", REQUEST, Some(&ana), Some("{\"mail\": 1}")).await;
    assert_eq!(status, 400, "malformed: {err}");
    assert!(smtp.messages().is_empty());

    // The address is trimmed and lower-cased.
    let (status, pending) = request_verification(&server, Some(&ana), "  ANA@example.COM ").await;
    assert_eq!(status, 200, "{pending}");
    assert_eq!(pending["scheme"], "email");
    assert_eq!(pending["id"], "ana@example.com");
    assert_eq!(pending["verification"], "PENDING");
    // Namazu's UserUid field name, beside the one this server's clients read.
    assert_eq!(pending["verificationStatus"], "PENDING");
    assert_eq!(
        pending["userId"],
        identity(&server, "ana@example.com").await["userId"]
    );
    assert_eq!(
        identity(&server, "ana@example.com").await["verification"],
        "PENDING"
    );

    let message = smtp.wait_for_message(Duration::from_secs(10));
    assert!(message.contains("To: ana@example.com"), "{message}");
    assert!(message.contains("Subject: Verify your email"), "{message}");
    assert!(message.contains("From: Game <noreply@game.test>"), "{message}");
    let link = link_in(&message);
    let token = link.rsplit('=').next().unwrap();
    assert_eq!(token.len(), 36, "a UUID: {token}");
    assert_eq!(&token[14..15], "4", "a version 4 UUID: {token}");

    let requested = wait_for_event(&server, REQUESTED, 1).await;
    assert_eq!(requested[0]["verification"], "PENDING");
    assert_eq!(requested[0]["verificationStatus"], "PENDING");
    assert_eq!(requested[0]["id"], "ana@example.com");

    // The link completes the verification, once.
    let (status, verified) = call(&server, "GET", path_of(&link), None, None).await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["verification"], "VERIFIED");
    assert_eq!(verified["verificationStatus"], "VERIFIED");
    assert_eq!(verified["id"], "ana@example.com");
    assert_eq!(
        identity(&server, "ana@example.com").await["verification"],
        "VERIFIED"
    );
    let (status, err) = call(&server, "GET", path_of(&link), None, None).await;
    assert_eq!(
        (status, &err["code"]),
        (404, &json!("NOT_FOUND")),
        "a second click: {err}"
    );
    let completed = wait_for_event(&server, COMPLETED, 1).await;
    assert_eq!(completed[0]["verification"], "VERIFIED");
    assert_eq!(completed[0]["verificationStatus"], "VERIFIED");

    // Unknown tokens, also below the Element's prefix.
    for path in [
        format!("{VERIFY}?token=00000000-0000-4000-8000-000000000000"),
        format!("{VERIFY}?token=not-a-token"),
        VERIFY.to_owned(),
        "/app/rest/email-verification/verify?token=00000000-0000-4000-8000-000000000000".to_owned(),
    ] {
        let (status, err) = call(&server, "GET", &path, None, None).await;
        assert_eq!(status, 404, "{path}: {err}");
    }
    // The prefix routes work too.
    let (status, err) = call(
        &server,
        "POST",
        "/app/rest/email-verification/user/me/email/verify",
        None,
        Some(r#"{"email": "ana@example.com"}"#),
    )
    .await;
    assert_eq!((status, &err["code"]), (401, &json!("UNAUTHORIZED")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_clicks_verify_once() {
    let smtp = SmtpServer::start();
    let dirs = Dirs::new();
    deploy(&dirs, Some(smtp.port), &[]);
    let server = Arc::new(start(&dirs, &[], None));
    let cy = signup(&server, "cy", "cy@example.com").await;
    let (status, body) = request_verification(&server, Some(&cy), "cy@example.com").await;
    assert_eq!(status, 200, "{body}");
    let link = link_in(&smtp.wait_for_message(Duration::from_secs(10)));
    let path = path_of(&link).to_owned();

    let clicks: Vec<_> = (0..2)
        .map(|_| {
            let (server, path) = (server.clone(), path.clone());
            tokio::spawn(async move { call(&server, "GET", &path, None, None).await.0 })
        })
        .collect();
    let mut statuses = Vec::new();
    for click in clicks {
        statuses.push(click.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 404]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused() {
    let smtp = SmtpServer::start();
    let dirs = Dirs::new();
    deploy(&dirs, Some(smtp.port), &[]);
    let database = format!("test_verify_{}", support::uuid_like());
    let server = start(&dirs, &[], Some(&database));
    let dee = signup(&server, "dee", "dee@example.com").await;
    let (status, body) = request_verification(&server, Some(&dee), "dee@example.com").await;
    assert_eq!(status, 200, "{body}");
    let link = link_in(&smtp.wait_for_message(Duration::from_secs(10)));
    server.stop();

    // 25 hours later, on the same data: the 24-hour token is gone.
    let server = start(&dirs, &[("ELEMENTS_CLOCK_OFFSET_SECS", "90000")], Some(&database));
    let (status, err) = call(&server, "GET", path_of(&link), None, None).await;
    assert_eq!(status, 404, "{err}");
    assert_eq!(
        identity(&server, "dee@example.com").await["verification"],
        "PENDING"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_send_changes_nothing() {
    // SMTP down: nothing listens.
    let dirs = Dirs::new();
    deploy(&dirs, Some(support::closed_port()), &[]);
    let server = start(&dirs, &[], None);
    let eve = signup(&server, "eve", "eve@example.com").await;
    let (status, err) = request_verification(&server, Some(&eve), "eve@example.com").await;
    assert_eq!((status, &err["code"]), (502, &json!("MAIL_SEND_FAILED")), "{err}");
    assert_eq!(
        identity(&server, "eve@example.com").await["verification"],
        "UNVERIFIED"
    );
    drop(server);

    // An SMTP server that takes the whole message, then refuses it: the
    // token it carried must not work.
    let refusing = RefusingSmtp::start().await;
    let dirs = Dirs::new();
    deploy(&dirs, Some(refusing.port), &[]);
    let server = start(&dirs, &[], None);
    let fay = signup(&server, "fay", "fay@example.com").await;
    let (status, err) = request_verification(&server, Some(&fay), "fay@example.com").await;
    assert_eq!(status, 502, "{err}");
    assert_eq!(
        identity(&server, "fay@example.com").await["verification"],
        "UNVERIFIED"
    );
    let data = refusing.data();
    let link = link_in(&data);
    let (status, err) = call(&server, "GET", path_of(&link), None, None).await;
    assert_eq!(status, 404, "the token of a failed send must not work: {err}");
    assert_eq!(
        identity(&server, "fay@example.com").await["verification"],
        "UNVERIFIED"
    );
    assert!(events(&server, REQUESTED).await.is_empty());
}

#[tokio::test]
async fn mail_not_configured_is_a_400() {
    let dirs = Dirs::new();
    deploy(&dirs, None, &[]);
    let server = start(&dirs, &[], None);
    let gus = signup(&server, "gus", "gus@example.com").await;
    let (status, err) = request_verification(&server, Some(&gus), "gus@example.com").await;
    assert_eq!(
        (status, &err["code"]),
        (400, &json!("MAIL_NOT_CONFIGURED")),
        "{err}"
    );
    assert_eq!(
        identity(&server, "gus@example.com").await["verification"],
        "UNVERIFIED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_url_subject_and_template_attributes() {
    let smtp = SmtpServer::start();
    let dirs = Dirs::new();
    deploy(
        &dirs,
        Some(smtp.port),
        &[
            (
                "dev.getelements.elements.verification.base_url",
                "https://proxy.example/",
            ),
            (
                "dev.getelements.elements.verification.email_subject",
                "Confirm it",
            ),
            (
                "dev.getelements.elements.verification.email_template",
                "<h1>Confirm</h1><a href=\"{link}\">{link}</a>",
            ),
        ],
    );
    let server = start(&dirs, &[], None);
    let hal = signup(&server, "hal", "hal@example.com").await;
    let (status, body) = request_verification(&server, Some(&hal), "hal@example.com").await;
    assert_eq!(status, 200, "{body}");
    let message = unquote(&smtp.wait_for_message(Duration::from_secs(10)));
    assert!(message.contains("Subject: Confirm it"), "{message}");
    assert!(message.contains("<h1>Confirm</h1>"), "{message}");
    assert_eq!(
        message
            .matches("https://proxy.example/api/rest/verify?token=")
            .count(),
        2,
        "{message}"
    );
    assert!(!message.contains(PUBLIC_URL), "{message}");
}

/// The `...verification.base_url` attribute means what Namazu's says: the
/// URL of the verification endpoint the link is built on, path and query
/// included; the link in the email that reaches the SMTP server works when
/// the proxy forwards it to the server's `/api/rest/verify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_url_is_the_verification_endpoint_the_link_is_built_on() {
    for (base, expected) in [
        (
            "https://proxy.example/game/verify",
            "https://proxy.example/game/verify?token=",
        ),
        (
            "https://proxy.example/v?from=mail",
            "https://proxy.example/v?from=mail&token=",
        ),
        // A bare origin is the server's root, as before 0.2.
        (
            "https://proxy.example",
            "https://proxy.example/api/rest/verify?token=",
        ),
    ] {
        let smtp = SmtpServer::start();
        let dirs = Dirs::new();
        deploy(
            &dirs,
            Some(smtp.port),
            &[("dev.getelements.elements.verification.base_url", base)],
        );
        let server = start(&dirs, &[], None);
        let ivy = signup(&server, "ivy", "ivy@example.com").await;
        let (status, body) = request_verification(&server, Some(&ivy), "ivy@example.com").await;
        assert_eq!(status, 200, "{base}: {body}");
        let message = unquote(&smtp.wait_for_message(Duration::from_secs(10)));
        let start = message
            .find(expected)
            .unwrap_or_else(|| panic!("{base}: no link starting {expected} in:\n{message}"));
        let link = message[start..]
            .split(['"', '<', '\r', '\n', ' '])
            .next()
            .unwrap();
        assert!(!message.contains(PUBLIC_URL), "{message}");
        let token = &link[expected.len()..];
        assert_eq!(token.len(), 36, "{base}: one UUID token: {link}");
        // What the proxy forwards the link to: the token works once.
        let (status, verified) = call(&server, "GET", &format!("{VERIFY}?token={token}"), None, None).await;
        assert_eq!(status, 200, "{base}: {verified}");
        assert_eq!(verified["verificationStatus"], "VERIFIED");
    }
}

/// Deploys, beside the Email Verification Element and the probe, two
/// Elements that ask the host for verifications: `requester`, whose grant
/// `identity.request-verification:email` the operator approved, and
/// `nogrant`, which has no grant.
fn deploy_requesters(dirs: &Dirs, smtp_port: u16) {
    deploy(dirs, Some(smtp_port), &[]);
    let mut config = std::fs::read_to_string(dirs.root.path().join("elements.toml")).unwrap();
    config.push_str(&support::grants_section(
        "requester",
        &["identity.request-verification:email"],
    ));
    dirs.config(&config);
    dirs.deploy(
        "requester",
        "misbehave",
        "grants = [\"identity.request-verification:email\"]\n",
    );
    dirs.deploy("nogrant", "misbehave", "");
}

/// Another Element asks the host for a verification: the Email
/// Verification Element emails the user, whose link verifies the address;
/// without the grant, the call is refused and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_element_with_the_grant_requests_a_verification_through_the_host() {
    let smtp = SmtpServer::start();
    let dirs = Dirs::new();
    deploy_requesters(&dirs, smtp.port);
    let server = start(&dirs, &[], None);
    signup(&server, "jo", "jo@example.com").await;
    signup(&server, "kim", "kim@example.com").await;
    let ask = |element: &'static str, email: &str| {
        let path = format!("/app/rest/{element}/verify-email/{email}");
        let server = &server;
        async move { call(server, "POST", &path, None, None).await }
    };

    // Without the grant: refused, naming it; nothing is sent.
    let (status, err) = ask("nogrant", "jo@example.com").await;
    assert_eq!((status, &err["code"]), (403, &json!("FORBIDDEN")), "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("identity.request-verification:email"),
        "{err}"
    );
    // Nobody's address, an empty or oversized one: refused.
    let (status, err) = ask("requester", "nobody@example.com").await;
    assert_eq!((status, &err["code"]), (404, &json!("NOT_FOUND")), "{err}");
    let (status, err) = ask("requester", &format!("{}@example.com", "x".repeat(300))).await;
    assert_eq!(status, 400, "{err}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(smtp.messages().is_empty(), "nothing sent yet");
    assert_eq!(
        identity(&server, "jo@example.com").await["verificationStatus"],
        "UNVERIFIED"
    );

    // With it: the answer is the identity as it is now; the email follows.
    let (status, asked) = ask("requester", "JO@example.com").await;
    assert_eq!(status, 200, "{asked}");
    assert_eq!(asked["id"], "jo@example.com");
    assert_eq!(asked["scheme"], "email");
    let message = smtp.wait_for_message(Duration::from_secs(10));
    assert!(message.contains("To: jo@example.com"), "{message}");
    let requested = wait_for_event(&server, REQUESTED, 1).await;
    assert_eq!(requested[0]["id"], "jo@example.com");
    assert_eq!(requested[0]["verificationStatus"], "PENDING");
    assert_eq!(
        identity(&server, "jo@example.com").await["verificationStatus"],
        "PENDING"
    );
    // The Email Verification Element's log names who asked.
    server.wait_for_log("requested by Element", Duration::from_secs(10));
    assert!(server.log().contains("requester"), "{}", server.log());
    // Within the cooldown, another request sends nothing more.
    let (status, _) = ask("requester", "jo@example.com").await;
    assert_eq!(status, 200);
    let link = link_in(&message);
    let (status, verified) = call(&server, "GET", path_of(&link), None, None).await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["verificationStatus"], "VERIFIED");
    // A verified address is answered as it is, and no email goes out.
    let (status, asked) = ask("requester", "jo@example.com").await;
    assert_eq!((status, &asked["verificationStatus"]), (200, &json!("VERIFIED")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.messages().len(), 1, "one email in all");
    // Kim's address was never asked for.
    assert_eq!(
        identity(&server, "kim@example.com").await["verificationStatus"],
        "UNVERIFIED"
    );
}

/// A requesting Element whose grant the operator did not approve is not
/// deployed at all.
#[tokio::test]
async fn an_unapproved_request_verification_grant_fails_the_deploy() {
    let smtp = SmtpServer::start();
    let dirs = Dirs::new();
    deploy(&dirs, Some(smtp.port), &[]);
    dirs.deploy(
        "sneaky",
        "misbehave",
        "grants = [\"identity.request-verification:email\"]\n",
    );
    let server = start(&dirs, &[], None);
    server.wait_for_log("Element \"sneaky\" refused", Duration::from_secs(10));
    assert!(
        server
            .log()
            .contains("requests grants the operator has not approved: identity.request-verification:email"),
        "{}",
        server.log()
    );
    let (status, _) = call(
        &server,
        "POST",
        "/app/rest/sneaky/verify-email/a@example.com",
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// An SMTP server that reads a whole message and then refuses it (554).
struct RefusingSmtp {
    port: u16,
    data: Arc<Mutex<String>>,
}

impl RefusingSmtp {
    async fn start() -> RefusingSmtp {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let data = Arc::new(Mutex::new(String::new()));
        let captured = data.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let captured = captured.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 refusing ESMTP\r\n").await;
                    let mut in_data = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let reply: &[u8] = if in_data {
                            if line == "." {
                                in_data = false;
                                b"554 5.7.1 message refused\r\n"
                            } else {
                                let mut data = captured.lock().unwrap();
                                data.push_str(&line);
                                data.push('\n');
                                continue;
                            }
                        } else {
                            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                            match verb.as_str() {
                                "EHLO" | "HELO" => b"250 refusing\r\n",
                                "DATA" => {
                                    in_data = true;
                                    b"354 go ahead\r\n"
                                }
                                "QUIT" => {
                                    let _ = write.write_all(b"221 bye\r\n").await;
                                    break;
                                }
                                _ => b"250 OK\r\n",
                            }
                        };
                        if write.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        RefusingSmtp { port, data }
    }

    fn data(&self) -> String {
        self.data.lock().unwrap().clone()
    }
}

/// A verification request: status, `Retry-After`, body.
async fn request_with_retry(server: &Server, bearer: &str, email: &str) -> (u16, Option<u64>, Value) {
    let response = server
        .client
        .post(server.url(REQUEST))
        .bearer_auth(bearer)
        .json(&json!({"email": email}))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let text = response.text().await.expect("body");
    (
        status,
        retry_after,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_emails_are_bounded_per_address_and_per_user() {
    // The default cooldown: a second request at once is refused.
    let smtp = SmtpServer::start();
    let dirs = Dirs::new();
    deploy(&dirs, Some(smtp.port), &[]);
    let server = start(&dirs, &[], None);
    let ivy = signup(&server, "ivy", "ivy@example.com").await;
    assert_eq!(request_with_retry(&server, &ivy, "ivy@example.com").await.0, 200);
    smtp.wait_for_message(Duration::from_secs(10));
    let (status, wait, body) = request_with_retry(&server, &ivy, "ivy@example.com").await;
    assert_eq!((status, &body["code"]), (429, &json!("THROTTLED")), "{body}");
    assert!(
        wait.is_some_and(|w| (1..=60).contains(&w)),
        "Retry-After {wait:?}"
    );
    drop(server);

    // No cooldown, 2 per address and 3 per user a day.
    let smtp = SmtpServer::start();
    let dirs = Dirs::new();
    deploy(
        &dirs,
        Some(smtp.port),
        &[
            ("dev.getelements.elements.verification.cooldown_secs", "0"),
            ("dev.getelements.elements.verification.max_per_address", "2"),
            ("dev.getelements.elements.verification.max_per_user", "3"),
        ],
    );
    let server = Arc::new(start(&dirs, &[], None));
    let jo = signup(&server, "jo", "jo@example.com").await;
    for _ in 0..2 {
        assert_eq!(request_with_retry(&server, &jo, "jo@example.com").await.0, 200);
    }
    let (status, wait, _) = request_with_retry(&server, &jo, "jo@example.com").await;
    assert_eq!(status, 429);
    assert!(wait.is_some_and(|w| w > 60), "a day's slot: {wait:?}");
    // Another address of the same user: the user's third and last.
    let (status, body) = call(
        &server,
        "PUT",
        &format!("/api/rest/user/{}", user_id(&server, &jo).await),
        Some(&jo),
        Some(&json!({"email": "jo2@example.com", "currentPassword": "password-123"}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(request_with_retry(&server, &jo, "jo2@example.com").await.0, 200);
    assert_eq!(request_with_retry(&server, &jo, "jo2@example.com").await.0, 429);

    // A concurrent flood at one address sends at most its slots.
    let kim = signup(&server, "kim", "kim@example.com").await;
    let flood: Vec<_> = (0..10)
        .map(|_| {
            let (server, kim) = (server.clone(), kim.clone());
            tokio::spawn(async move { request_with_retry(&server, &kim, "kim@example.com").await.0 })
        })
        .collect();
    let mut sent = 0;
    for request in flood {
        match request.await.expect("request") {
            200 => sent += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(sent, 2, "two slots for kim@example.com");
    let to_kim = smtp
        .messages()
        .iter()
        .filter(|m| m.contains("To: kim@example.com"))
        .count();
    assert!(to_kim <= 2, "{to_kim} emails to one address");
}

async fn user_id(server: &Server, secret: &str) -> String {
    let (status, me) = call(server, "GET", "/api/rest/user/me", Some(secret), None).await;
    assert_eq!(status, 200, "{me}");
    me["id"].as_str().expect("id").to_owned()
}
