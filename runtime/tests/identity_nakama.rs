//! The Nakama-compatible `/v2` authentication API, over HTTP against the real
//! binary: every rule of the issue, linking, refresh/logout/revocation across
//! a restart, and the first-login race. Runs on MongoDB when
//! `ELEMENTS_MONGODB_URI` is set.

mod support;

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use support::{Dirs, Server, json as body_of, request};

/// POST with the server key as the Basic user.
async fn auth(server: &Server, path: &str, body: Value) -> (u16, Value) {
    assert!(path.starts_with("/v2/account/"), "{path} takes no server key");
    request(server, "POST", path, None, Some(body)).await
}

async fn bearer_post(server: &Server, path: &str, token: &str, body: Value) -> (u16, Value) {
    request(server, "POST", path, Some(token), Some(body)).await
}

async fn account(server: &Server, token: &str) -> (u16, Value) {
    request(server, "GET", "/v2/account", Some(token), None).await
}

/// The claims of a JWT (not verified: the client's view).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn token(body: &Value) -> String {
    body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {body}"))
        .to_owned()
}

fn assert_status(got: (u16, Value), status: u16, code: i64, message: &str) {
    let (s, body) = got;
    assert_eq!(s, status, "{body}");
    assert_eq!(body, json!({"code": code, "message": message, "details": []}));
}

const DEVICE: &str = "/v2/account/authenticate/device";

/// A server with defaults, and the first device login (`device-000001` as
/// `ana_device`, with vars), which must create the user.
async fn device_server() -> (Server, Dirs, Value) {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let (status, first) = auth(
        &server,
        &format!("{DEVICE}?username=ana_device"),
        json!({"id": "device-000001", "vars": {"k": "v"}}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["created"], true);
    (server, dirs, first)
}

#[tokio::test]
async fn a_first_device_login_creates_the_user_with_its_claims_and_default_expiries() {
    let (_server, _dirs, first) = device_server().await;
    let c = claims(&token(&first));
    assert_eq!(c["usn"], "ana_device");
    assert_eq!(c["vrs"], json!({"k": "v"}));
    for claim in ["uid", "tid"] {
        assert!(c[claim].as_str().is_some_and(|s| !s.is_empty()), "{c}");
    }
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        60,
        "default expiry"
    );
    let refresh_claims = claims(first["refresh_token"].as_str().unwrap());
    assert_eq!(refresh_claims["uid"], c["uid"]);
    assert_eq!(
        refresh_claims["exp"].as_i64().unwrap() - refresh_claims["iat"].as_i64().unwrap(),
        3600
    );
}

#[tokio::test]
async fn a_known_device_reaches_the_same_user_and_ignores_a_new_username() {
    let (server, _dirs, first) = device_server().await;
    let (status, again) = auth(
        &server,
        &format!("{DEVICE}?username=other"),
        json!({"id": "device-000001"}),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["created"], false);
    assert_eq!(claims(&token(&again))["uid"], claims(&token(&first))["uid"]);
    assert_eq!(claims(&token(&again))["usn"], "ana_device");
}

#[tokio::test]
async fn a_device_login_without_a_username_gets_a_generated_one() {
    let (server, _dirs, _) = device_server().await;
    let (status, generated) = auth(&server, DEVICE, json!({"id": "device-000002"})).await;
    assert_eq!(status, 200);
    let usn = claims(&token(&generated))["usn"].as_str().unwrap().to_owned();
    assert!(
        usn.len() == 10 && usn.chars().all(|ch| ch.is_ascii_alphabetic()),
        "{usn}"
    );
}

#[tokio::test]
async fn create_false_finds_only_an_existing_account_and_create_must_be_a_boolean() {
    let (server, _dirs, _) = device_server().await;
    let no_create = format!("{DEVICE}?create=false");
    assert_status(
        auth(&server, &no_create, json!({"id": "device-unknown"})).await,
        404,
        5,
        "User account not found.",
    );
    assert_eq!(
        auth(&server, &no_create, json!({"id": "device-000001"})).await.0,
        200
    );
    let maybe = auth(
        &server,
        &format!("{DEVICE}?create=maybe"),
        json!({"id": "device-000003"}),
    )
    .await;
    assert_eq!(maybe.0, 400);
}

#[tokio::test]
async fn a_device_id_is_10_to_128_bytes_without_spaces_or_control_characters() {
    let (server, _dirs, _) = device_server().await;
    assert_status(
        auth(&server, DEVICE, json!({})).await,
        400,
        3,
        "Device ID is required.",
    );
    let length = "Device ID invalid, must be 10-128 bytes.";
    assert_status(
        auth(&server, DEVICE, json!({"id": "123456789"})).await,
        400,
        3,
        length,
    );
    assert_status(
        auth(&server, DEVICE, json!({"id": "x".repeat(129)})).await,
        400,
        3,
        length,
    );
    assert_eq!(auth(&server, DEVICE, json!({"id": "x".repeat(128)})).await.0, 200);
    let spaces = "Device ID invalid, no spaces or control characters allowed.";
    assert_status(
        auth(&server, DEVICE, json!({"id": "device 000004"})).await,
        400,
        3,
        spaces,
    );
    assert_status(
        auth(&server, DEVICE, json!({"id": "device\u{1}000004"})).await,
        400,
        3,
        spaces,
    );
}

#[tokio::test]
async fn a_username_must_be_free_and_valid_and_a_refused_login_creates_nothing() {
    let (server, _dirs, _) = device_server().await;
    let id = json!({"id": "device-000005"});
    assert_status(
        auth(&server, &format!("{DEVICE}?username=ana_device"), id.clone()).await,
        409,
        6,
        "Username is already in use.",
    );
    assert_status(
        auth(&server, &format!("{DEVICE}?username=ana%20b"), id.clone()).await,
        400,
        3,
        "Username invalid, no spaces or control characters allowed.",
    );
    assert_status(
        auth(
            &server,
            &format!("{DEVICE}?username={}", "u".repeat(129)),
            id.clone(),
        )
        .await,
        400,
        3,
        "Username invalid, must be 1-128 bytes.",
    );
    // The failed attempts created nothing.
    assert_status(
        auth(&server, &format!("{DEVICE}?create=false"), id).await,
        404,
        5,
        "User account not found.",
    );
}

#[tokio::test]
async fn malformed_json_and_a_missing_or_wrong_server_key_are_refused() {
    let (server, _dirs, _) = device_server().await;
    let response = server
        .client
        .post(server.url(DEVICE))
        .basic_auth("defaultkey", Some(""))
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = body_of(response).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(3)), "{body}");

    let response = server
        .client
        .post(server.url(DEVICE))
        .json(&json!({"id": "device-000001"}))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("www-authenticate"));
    assert_status(body_of(response).await, 401, 16, "Server key required");
    let response = server
        .client
        .post(server.url(DEVICE))
        .basic_auth("wrongkey", Some(""))
        .json(&json!({"id": "device-000001"}))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("www-authenticate"));
    assert_status(body_of(response).await, 401, 16, "Server key invalid");
}

#[tokio::test]
async fn custom_and_email_rules_and_server_key_setting() {
    let dirs = Dirs::new();
    let server = Server::start_with(&dirs, &[], &[("ELEMENTS_SERVER_KEY", "s3cret-key")], None);
    let custom = "/v2/account/authenticate/custom";
    let email = "/v2/account/authenticate/email";
    // The configured key replaces the default.
    assert_status(
        auth(&server, custom, json!({"id": "custom-1"})).await,
        401,
        16,
        "Server key invalid",
    );
    let post = |path: &'static str, body: Value| {
        let server = &server;
        async move {
            body_of(
                server
                    .client
                    .post(server.url(path))
                    .basic_auth("s3cret-key", Some(""))
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };

    let (status, body) = post(custom, json!({"id": "custom"})).await;
    assert_eq!((status, &body["created"]), (200, &json!(true)), "{body}");
    assert_status(
        post(custom, json!({"id": "cust"})).await,
        400,
        3,
        "Custom ID invalid, must be 6-128 bytes.",
    );
    assert_status(
        post(custom, json!({"id": ""})).await,
        400,
        3,
        "Custom ID is required.",
    );
    assert_status(
        post(custom, json!({"id": "custom id"})).await,
        400,
        3,
        "Custom ID invalid, no spaces or control characters allowed.",
    );

    // Email: lower-cased, password checked.
    let (status, created) = post(
        email,
        json!({"email": "Ana.Silva@Example.com", "password": "password1"}),
    )
    .await;
    assert_eq!((status, &created["created"]), (200, &json!(true)), "{created}");
    let (status, again) = post(
        email,
        json!({"email": "ana.silva@example.COM", "password": "password1"}),
    )
    .await;
    assert_eq!((status, &again["created"]), (200, &json!(false)), "{again}");
    assert_eq!(claims(&token(&again))["uid"], claims(&token(&created))["uid"]);
    let (_, acc) = account(&server, &token(&again)).await;
    assert_eq!(acc["email"], "ana.silva@example.com");
    assert_status(
        post(
            email,
            json!({"email": "ana.silva@example.com", "password": "password2"}),
        )
        .await,
        401,
        16,
        "Invalid credentials.",
    );
    assert_status(
        post(
            "/v2/account/authenticate/email?create=false",
            json!({"email": "nobody@example.com", "password": "password1"}),
        )
        .await,
        404,
        5,
        "User account not found.",
    );
    assert_status(
        post(email, json!({"email": "ana@example.com", "password": "short"})).await,
        400,
        3,
        "Password must be at least 8 characters long.",
    );
    assert_status(
        post(
            email,
            json!({"email": "not-an-email.example.com", "password": "password1"}),
        )
        .await,
        400,
        3,
        "Invalid email address format.",
    );
    // No email is a username login (Nakama's rule), which needs a username.
    assert_status(
        post(email, json!({"password": "password1"})).await,
        400,
        3,
        "Username is required when email address is not supplied.",
    );
    assert_status(
        post(email, json!({"email": "a@b.co", "password": "password1"})).await,
        400,
        3,
        "Invalid email address, must be 10-255 bytes.",
    );
}

/// A server with two device accounts: `player1` (device `phone-0000001`) and
/// another (device `phone-0000002`).
struct Players {
    server: Server,
    _dirs: Dirs,
    /// `player1`'s authentication body, its session token and user id.
    device: Value,
    t: String,
    uid: Value,
    other_token: String,
}

async fn players() -> Players {
    let dirs = Dirs::new();
    let server = Server::start_with(&dirs, &[], support::ROOT_ENV, None);
    let (status, device) = auth(
        &server,
        "/v2/account/authenticate/device?username=player1",
        json!({"id": "phone-0000001"}),
    )
    .await;
    assert_eq!(status, 200, "{device}");
    let t = token(&device);
    let uid = claims(&t)["uid"].clone();
    let (status, other) = auth(
        &server,
        "/v2/account/authenticate/device",
        json!({"id": "phone-0000002"}),
    )
    .await;
    assert_eq!(status, 200, "{other}");
    Players {
        other_token: token(&other),
        server,
        _dirs: dirs,
        device,
        t,
        uid,
    }
}

/// Links custom id `origin-42`, email `Player1@Example.com` (password
/// `password1`) and device `tablet-000001` to `player1`.
async fn link_all(p: &Players) {
    for (path, body) in [
        ("/v2/account/link/custom", json!({"id": "origin-42"})),
        (
            "/v2/account/link/email",
            json!({"email": "Player1@Example.com", "password": "password1"}),
        ),
        ("/v2/account/link/device", json!({"id": "tablet-000001"})),
    ] {
        assert_eq!(
            bearer_post(&p.server, path, &p.t, body).await,
            (200, json!({})),
            "{path}"
        );
    }
}

#[tokio::test]
async fn linking_is_idempotent_and_the_account_shows_every_link() {
    let p = players().await;
    let server = &p.server;
    link_all(&p).await;
    // Re-linking is a no-op.
    assert_eq!(
        bearer_post(
            server,
            "/v2/account/link/custom",
            &p.t,
            json!({"id": "origin-42"})
        )
        .await,
        (200, json!({}))
    );
    let (status, acc) = account(server, &p.t).await;
    assert_eq!(status, 200, "{acc}");
    assert_eq!(acc["user"]["id"], p.uid);
    assert_eq!(acc["user"]["username"], "player1");
    assert_eq!(acc["email"], "player1@example.com");
    assert_eq!(acc["custom_id"], "origin-42");
    assert_eq!(
        acc["devices"],
        json!([{"id": "phone-0000001"}, {"id": "tablet-000001"}])
    );
    assert_eq!(acc["wallet"], "{}");
    assert!(
        acc["user"]["create_time"].as_str().unwrap().ends_with('Z'),
        "{acc}"
    );
}

#[tokio::test]
async fn linking_an_id_another_account_uses_is_a_conflict_and_a_short_device_id_invalid() {
    let p = players().await;
    let server = &p.server;
    link_all(&p).await;
    let other = &p.other_token;
    assert_status(
        bearer_post(
            server,
            "/v2/account/link/device",
            other,
            json!({"id": "phone-0000001"}),
        )
        .await,
        409,
        6,
        "Device ID is already in use.",
    );
    assert_status(
        bearer_post(
            server,
            "/v2/account/link/custom",
            other,
            json!({"id": "origin-42"}),
        )
        .await,
        409,
        6,
        "Custom ID is already in use.",
    );
    assert_status(
        bearer_post(
            server,
            "/v2/account/link/email",
            other,
            json!({"email": "player1@example.com", "password": "password2"}),
        )
        .await,
        409,
        6,
        "Email is already in use.",
    );
    assert_status(
        bearer_post(server, "/v2/account/link/device", &p.t, json!({"id": "bad"})).await,
        400,
        3,
        "Device ID invalid, must be 10-128 bytes.",
    );
}

#[tokio::test]
async fn email_custom_and_rest_logins_reach_the_linked_user() {
    let p = players().await;
    let server = &p.server;
    link_all(&p).await;
    let (status, by_email) = auth(
        server,
        "/v2/account/authenticate/email",
        json!({"email": "player1@example.com", "password": "password1"}),
    )
    .await;
    assert_eq!((status, &by_email["created"]), (200, &json!(false)), "{by_email}");
    assert_eq!(claims(&token(&by_email))["uid"], p.uid);
    let (_, by_custom) = auth(
        server,
        "/v2/account/authenticate/custom",
        json!({"id": "origin-42"}),
    )
    .await;
    assert_eq!(claims(&token(&by_custom))["uid"], p.uid);
    let (status, rest) = request(
        server,
        "POST",
        "/api/rest/session",
        None,
        Some(json!({"userId": "player1@example.com", "password": "password1"})),
    )
    .await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["session"]["user"]["id"], p.uid);
}

/// `player1` unlinks an identifier of `kind`.
async fn unlink(p: &Players, kind: &str, body: Value) -> (u16, Value) {
    bearer_post(&p.server, &format!("/v2/account/unlink/{kind}"), &p.t, body).await
}

const LAST_LINK: &str = "Cannot unlink last account identifier. Check profile exists and is not last link.";

#[tokio::test]
async fn unlinking_refuses_another_accounts_id_and_the_last_identifier() {
    let p = players().await;
    let server = &p.server;
    link_all(&p).await;
    assert_status(
        unlink(&p, "device", json!({"id": "phone-0000002"})).await,
        403,
        7,
        LAST_LINK,
    );
    assert_eq!(unlink(&p, "device", json!({"id": "tablet-000001"})).await.0, 200);
    assert_eq!(unlink(&p, "custom", json!({"id": "origin-42"})).await.0, 200);
    let with_password = json!({"email": "player1@example.com", "password": "password1"});
    assert_eq!(unlink(&p, "email", with_password).await.0, 200);
    assert_status(
        unlink(&p, "device", json!({"id": "phone-0000001"})).await,
        403,
        7,
        LAST_LINK,
    );
    let (_, acc) = account(server, &p.t).await;
    assert_eq!(acc["devices"], json!([{"id": "phone-0000001"}]));
    assert!(
        acc.get("email").is_none() && acc.get("custom_id").is_none(),
        "{acc}"
    );
}

#[tokio::test]
async fn a_session_token_alone_cannot_remove_or_replace_an_accounts_password_and_an_unlinked_email_is_free_again()
 {
    let p = players().await;
    let server = &p.server;
    link_all(&p).await;
    // The account has a password: a session token alone can't remove the
    // email (and so the password), nor can a guess; the password can.
    for body in [
        json!({"email": "player1@example.com"}),
        json!({"email": "player1@example.com", "password": "password-guess"}),
    ] {
        let (status, error) = bearer_post(server, "/v2/account/unlink/email", &p.t, body).await;
        assert_eq!((status, &error["code"]), (400, &json!(3)), "{error}");
    }
    let (status, error) = bearer_post(
        server,
        "/v2/account/link/email",
        &p.t,
        json!({"email": "thief@example.com", "password": "thief-password"}),
    )
    .await;
    assert_eq!((status, &error["code"]), (400, &json!(3)), "{error}");
    let with_password = json!({"email": "player1@example.com", "password": "password1"});
    assert_eq!(
        bearer_post(server, "/v2/account/unlink/email", &p.t, with_password)
            .await
            .0,
        200
    );
    let (_, acc) = account(server, &p.t).await;
    assert!(acc.get("email").is_none(), "{acc}");
    let claim = json!({"email": "player1@example.com", "password": "password2"});
    assert_eq!(
        bearer_post(server, "/v2/account/link/email", &p.other_token, claim)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn the_account_needs_a_valid_session_token_not_a_refresh_token() {
    let p = players().await;
    let server = &p.server;
    let response = server.client.get(server.url("/v2/account")).send().await.unwrap();
    assert!(response.headers().contains_key("www-authenticate"));
    assert_status(body_of(response).await, 401, 16, "Auth token required");
    assert_status(account(server, "not.a.jwt").await, 401, 16, "Auth token invalid");
    // A refresh token is not a session token (separate keys).
    assert_status(
        account(server, p.device["refresh_token"].as_str().unwrap()).await,
        401,
        16,
        "Auth token invalid",
    );
    assert_eq!(account(server, &p.t).await.0, 200);
}

#[tokio::test]
async fn a_ban_by_a_superuser_over_rest_revokes_nakama_sessions_and_refuses_logins() {
    let p = players().await;
    let server = &p.server;
    let root = support::root_secret(server).await;
    let ban = format!("/api/rest/user/{}", p.uid.as_str().unwrap());
    let (status, banned) = request(server, "PUT", &ban, Some(&root), Some(json!({"banned": true}))).await;
    assert_eq!(status, 200, "{banned}");
    assert_status(account(server, &p.t).await, 401, 16, "Auth token invalid");
    assert_status(
        auth(
            server,
            "/v2/account/authenticate/device",
            json!({"id": "phone-0000001"}),
        )
        .await,
        403,
        7,
        "User account banned.",
    );
}

const REFRESH: &str = "/v2/account/session/refresh";

/// Two device accounts on a server on `database`: `kept` (with vars) and
/// `revoked`, their authentication bodies.
async fn two_sessions(server: &Server) -> (Value, Value) {
    let path = "/v2/account/authenticate/device";
    let (status, kept) = auth(
        server,
        path,
        json!({"id": "device-keep-01", "vars": {"lang": "pt"}}),
    )
    .await;
    assert_eq!(status, 200, "{kept}");
    let (status, revoked) = auth(server, path, json!({"id": "device-gone-01"})).await;
    assert_eq!(status, 200, "{revoked}");
    (kept, revoked)
}

fn refresh_token(body: &Value) -> String {
    body["refresh_token"].as_str().unwrap().to_owned()
}

/// Refreshes with `body`'s refresh token, which must succeed.
async fn refresh(server: &Server, body: &Value) -> Value {
    let (status, refreshed) = auth(server, REFRESH, json!({"token": refresh_token(body)})).await;
    assert_eq!(status, 200, "{refreshed}");
    refreshed
}

/// `owner` logs out both of its tokens, which must succeed.
async fn log_out(server: &Server, owner: &Value) {
    let body = json!({"token": token(owner), "refresh_token": refresh_token(owner)});
    assert_eq!(
        bearer_post(server, "/v2/session/logout", &token(owner), body).await,
        (200, json!({}))
    );
}

#[tokio::test]
async fn a_refresh_needs_a_refresh_token_and_the_server_key_and_keeps_the_vars() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let (kept, _) = two_sessions(&server).await;
    let kept_token = token(&kept);
    assert_status(
        auth(&server, REFRESH, json!({})).await,
        400,
        3,
        "Refresh token is required.",
    );
    assert_status(
        auth(&server, REFRESH, json!({"token": kept_token})).await,
        401,
        16,
        "Refresh token invalid or expired.",
    );
    let refreshed = refresh(&server, &kept).await;
    assert_eq!(refreshed["created"], false);
    let refreshed_claims = claims(&token(&refreshed));
    assert_eq!(refreshed_claims["uid"], claims(&kept_token)["uid"]);
    assert_eq!(refreshed_claims["vrs"], json!({"lang": "pt"}));
    assert_eq!(account(&server, &token(&refreshed)).await.0, 200);
    let no_key = server
        .client
        .post(server.url(REFRESH))
        .json(&json!({"token": refresh_token(&kept)}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
}

#[tokio::test]
async fn logout_revokes_both_of_the_callers_tokens_and_refuses_anyone_elses() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let (kept, revoked) = two_sessions(&server).await;
    let revoked_token = token(&revoked);
    assert_status(
        bearer_post(
            &server,
            "/v2/session/logout",
            &revoked_token,
            json!({"token": token(&kept)}),
        )
        .await,
        400,
        3,
        "Session token invalid.",
    );
    assert_status(
        bearer_post(
            &server,
            "/v2/session/logout",
            &revoked_token,
            json!({"refresh_token": refresh_token(&kept)}),
        )
        .await,
        400,
        3,
        "Refresh token invalid.",
    );
    log_out(&server, &revoked).await;
    assert_status(
        account(&server, &revoked_token).await,
        401,
        16,
        "Auth token invalid",
    );
    assert_status(
        auth(&server, REFRESH, json!({"token": refresh_token(&revoked)})).await,
        401,
        16,
        "Refresh token invalid or expired.",
    );
    // The other account's session is untouched.
    assert_eq!(account(&server, &token(&kept)).await.0, 200);
}

#[tokio::test]
async fn sessions_rotated_refresh_tokens_and_revocations_survive_a_restart() {
    let dirs = Dirs::new();
    let database = format!("test_restart_{}", support::uuid_like());
    let server = Server::start_with(&dirs, &[], &[], Some(&database));
    let (kept, revoked) = two_sessions(&server).await;
    let refreshed = refresh(&server, &kept).await;
    log_out(&server, &revoked).await;

    let log = server.stop();
    assert!(
        !log.contains(&token(&kept)) && !log.contains(&refresh_token(&kept)),
        "tokens must not be logged"
    );
    let server = Server::start_with(&dirs, &[], &[], Some(&database));
    assert_eq!(account(&server, &token(&kept)).await.0, 200);
    // The refresh rotated the refresh token: the new one works.
    assert_ne!(refresh_token(&refreshed), refresh_token(&kept));
    let (status, newest) = auth(&server, REFRESH, json!({"token": refresh_token(&refreshed)})).await;
    assert_eq!(status, 200, "{newest}");
    assert_status(
        account(&server, &token(&revoked)).await,
        401,
        16,
        "Auth token invalid",
    );
    assert_eq!(
        auth(&server, REFRESH, json!({"token": refresh_token(&revoked)}))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn logout_with_neither_token_revokes_every_session_of_the_caller() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let (kept, _) = two_sessions(&server).await;
    let refreshed = refresh(&server, &kept).await;
    let newest = refresh(&server, &refreshed).await;
    assert_eq!(
        bearer_post(&server, "/v2/session/logout", &token(&kept), json!({}))
            .await
            .0,
        200
    );
    assert_eq!(account(&server, &token(&refreshed)).await.0, 401);
    assert_eq!(
        auth(&server, REFRESH, json!({"token": newest["refresh_token"]}))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn expired_session_tokens_are_refused() {
    let dirs = Dirs::new();
    let server = Server::start(
        &dirs,
        &["--token-expiry-secs", "1", "--refresh-token-expiry-secs", "2"],
    );
    let (_, session) = auth(
        &server,
        "/v2/account/authenticate/device",
        json!({"id": "device-expiry-1"}),
    )
    .await;
    let c = claims(&token(&session));
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 1);
    assert_eq!(account(&server, &token(&session)).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_status(
        account(&server, &token(&session)).await,
        401,
        16,
        "Auth token invalid",
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        auth(
            &server,
            "/v2/account/session/refresh",
            json!({"token": session["refresh_token"]})
        )
        .await
        .0,
        401
    );
}

#[tokio::test]
async fn twenty_concurrent_first_logins_create_one_user() {
    let dirs = Dirs::new();
    // Password attempts in flight count against the account until they
    // succeed (so parallel guesses can't outrun the limit): this test is
    // about creation races, so it allows twenty at once.
    dirs.config("[login]\naccount_failures = 100\naddress_failures = 100\n");
    let server = std::sync::Arc::new(Server::start(&dirs, &[]));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            auth(
                &server,
                "/v2/account/authenticate/device",
                json!({"id": "race-device-0001"}),
            )
            .await
        }));
    }
    let mut uids = std::collections::HashSet::new();
    let mut created = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        uids.insert(claims(&token(&body))["uid"].as_str().unwrap().to_owned());
        created += usize::from(body["created"] == true);
    }
    assert_eq!(uids.len(), 1, "one user: {uids:?}");
    assert_eq!(created, 1, "exactly one login created it");
    // The same holds for emails, with their password hashing in the way.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            auth(
                &server,
                "/v2/account/authenticate/email",
                json!({"email": "race@example.com", "password": "password1"}),
            )
            .await
        }));
    }
    let mut uids = std::collections::HashSet::new();
    let mut created = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        uids.insert(claims(&token(&body))["uid"].as_str().unwrap().to_owned());
        created += usize::from(body["created"] == true);
    }
    assert_eq!((uids.len(), created), (1, 1));
}

/// Usernames and emails have one spelling: case, NFD/NFC and invisible or
/// bidi characters can't make a second account that looks like the first,
/// `@` can't shadow an email, and a query that isn't UTF-8 is refused, not
/// decoded lossily.
const IN_USE: &str = "Username is already in use.";

/// A device login with `query`: status and body.
async fn device_login(server: &Server, query: &str, id: &str) -> (u16, Value) {
    auth(server, &format!("{DEVICE}?{query}"), json!({"id": id})).await
}

#[tokio::test]
async fn a_username_is_taken_in_any_case_or_width() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let (status, body) = device_login(&server, "username=Gamer_1", "device-one-001").await;
    assert_eq!(status, 200, "{body}");
    for (i, twin) in ["gamer_1", "GAMER_1", "%EF%BC%A7amer_1"].iter().enumerate() {
        let attempt = device_login(
            &server,
            &format!("username={twin}"),
            &format!("device-twin-00{i}"),
        )
        .await;
        assert_status(attempt, 409, 6, IN_USE);
    }
}

#[tokio::test]
async fn a_username_is_one_name_in_any_normalization_form_and_kept_in_nfc() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    // "José" decomposed (e + U+0301) and precomposed (U+00E9).
    let (status, body) = device_login(&server, "username=Jose%CC%81", "device-jose-01").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(&token(&body))["usn"], "Jos\u{e9}");
    let (_, me) = account(&server, &token(&body)).await;
    assert_eq!(me["user"]["username"], "Jos\u{e9}", "{me}");
    assert_status(
        device_login(&server, "username=jos%C3%A9", "device-jose-02").await,
        409,
        6,
        IN_USE,
    );
}

#[tokio::test]
async fn a_username_with_an_at_sign_invisible_characters_spaces_or_too_many_bytes_is_refused_and_creates_nothing()
 {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let invisible = "Username invalid, no invisible, formatting or bidirectional control characters allowed.";
    for (name, message) in [
        (
            "victim%40corp.com",
            "Username invalid, no '@' allowed (a login with '@' is an email address).",
        ),
        ("ad%E2%80%AEnimda", invisible),
        ("ad%E2%80%8Bmin", invisible),
        ("%E3%85%A4", invisible),
        ("ad%EF%BF%BDmin", invisible),
        (
            "ana%20silva",
            "Username invalid, no spaces or control characters allowed.",
        ),
    ] {
        assert_status(
            device_login(&server, &format!("username={name}"), "device-bad-name-1").await,
            400,
            3,
            message,
        );
    }
    let oversized = "x".repeat(8 * 1024);
    assert_status(
        device_login(&server, &format!("username={oversized}"), "device-big-name").await,
        400,
        3,
        "Username invalid, must be 1-128 bytes.",
    );
    // None of the refused attempts made an account.
    for id in ["device-bad-name-1", "device-big-name"] {
        assert_status(
            device_login(&server, "create=false", id).await,
            404,
            5,
            "User account not found.",
        );
    }
}

#[tokio::test]
async fn a_query_string_that_is_not_utf8_once_percent_decoded_is_refused() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    for query in [
        "username=%FF%FE",
        "username=ok&create=%C0%AF",
        "%FF=1",
        "username=%ED%A0%80",
    ] {
        assert_status(
            device_login(&server, query, "device-bad-utf8-1").await,
            400,
            3,
            "The query string is not valid UTF-8 once percent-decoded.",
        );
    }
}

#[tokio::test]
async fn an_email_is_one_address_in_any_case_or_normalization_form_and_no_invisible_characters() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let email = "/v2/account/authenticate/email";
    let (status, created) = auth(
        &server,
        email,
        json!({"email": "JOSE\u{301}@Example.COM", "password": "password-123"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["created"], true);
    let (status, again) = auth(
        &server,
        email,
        json!({"email": "jos\u{e9}@example.com", "password": "password-123"}),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["created"], false);
    assert_eq!(claims(&token(&again))["uid"], claims(&token(&created))["uid"]);
    // Nor can another account link it in another spelling.
    let (_, other) = auth(&server, DEVICE, json!({"id": "device-linker-1"})).await;
    assert_status(
        bearer_post(
            &server,
            "/v2/account/link/email",
            &token(&other),
            json!({"email": "Jos\u{e9}@EXAMPLE.com", "password": "password-123"}),
        )
        .await,
        409,
        6,
        "Email is already in use.",
    );
    assert_status(
        auth(
            &server,
            email,
            json!({"email": "jose\u{200b}@example.com", "password": "password-123"}),
        )
        .await,
        400,
        3,
        "Invalid email address format.",
    );
}

/// A device login as `username`: the session token and the user's id.
async fn device_user(server: &Server, id: &str, username: &str) -> (String, String) {
    let (status, body) = device_login(server, &format!("username={username}"), id).await;
    assert_eq!(status, 200, "{body}");
    let token = token(&body);
    let uid = claims(&token)["uid"].as_str().unwrap().to_owned();
    (token, uid)
}

#[tokio::test]
async fn updating_the_account_changes_its_fields_and_an_empty_field_clears_it() {
    let (server, _dirs, first) = device_server().await;
    let token = token(&first);
    let change = json!({
        "username": "ana_renamed", "display_name": "Ana", "avatar_url": "https://cdn.test/ana.png",
        "lang_tag": "pt-BR", "location": "Lisbon", "timezone": "Europe/Lisbon"
    });
    let (status, body) = request(&server, "PUT", "/v2/account", Some(&token), Some(change)).await;
    assert_eq!((status, &body), (200, &json!({})));
    let (_, shown) = account(&server, &token).await;
    let user = &shown["user"];
    assert_eq!(
        (&user["username"], &user["display_name"], &user["avatar_url"]),
        (
            &json!("ana_renamed"),
            &json!("Ana"),
            &json!("https://cdn.test/ana.png")
        ),
        "{shown}"
    );
    assert_eq!(
        (&user["lang_tag"], &user["location"], &user["timezone"]),
        (&json!("pt-BR"), &json!("Lisbon"), &json!("Europe/Lisbon"))
    );
    // Absent: unchanged; empty: cleared.
    let change = json!({"display_name": "", "location": ""});
    let (status, _) = request(&server, "PUT", "/v2/account", Some(&token), Some(change)).await;
    assert_eq!(status, 200);
    let (_, shown) = account(&server, &token).await;
    let user = &shown["user"];
    assert!(
        user.get("display_name").is_none() && user.get("location").is_none(),
        "{shown}"
    );
    assert_eq!(
        (&user["username"], &user["timezone"]),
        (&json!("ana_renamed"), &json!("Europe/Lisbon"))
    );
    // The other API sees the same user.
    let (_, me) = request(&server, "GET", "/api/rest/user/me", Some(&token), None).await;
    assert_eq!(
        (&me["name"], &me["timezone"]),
        (&json!("ana_renamed"), &json!("Europe/Lisbon")),
        "{me}"
    );
}

#[tokio::test]
async fn an_account_update_that_is_refused_changes_nothing() {
    let (server, _dirs, first) = device_server().await;
    let token = token(&first);
    device_user(&server, "device-000002", "taken_name").await;
    let (_, before) = account(&server, &token).await;
    let put = |body: Value| request(&server, "PUT", "/v2/account", Some(&token), Some(body));
    let (status, body) = put(json!({"username": "TAKEN_name", "display_name": "X"})).await;
    assert_eq!((status, body["code"].as_i64()), (409, Some(6)), "{body}");
    for bad in [
        json!({"username": ""}),
        json!({"username": "has space"}),
        json!({"display_name": "x".repeat(256)}),
        json!({"avatar_url": format!("https://cdn.test/{}", "a".repeat(600))}),
        json!({"lang_tag": "a-very-long-language-tag"}),
        json!({"location": "line\nbreak"}),
        json!({"displayname": "typo"}),
        json!({"display_name": 5}),
    ] {
        let (status, body) = put(bad.clone()).await;
        assert_eq!((status, body["code"].as_i64()), (400, Some(3)), "{bad}: {body}");
    }
    let (status, _) = request(
        &server,
        "PUT",
        "/v2/account",
        None,
        Some(json!({"display_name": "X"})),
    )
    .await;
    assert_eq!(status, 401);
    let (_, after) = account(&server, &token).await;
    assert_eq!(
        after["user"], before["user"],
        "a refused update changed the account"
    );
}

#[tokio::test]
async fn users_are_found_by_id_and_username_once_each_without_private_fields() {
    let (server, _dirs, first) = device_server().await;
    let token = token(&first);
    let (_, bea) = device_user(&server, "device-000002", "bea").await;
    let (_, cid) = device_user(&server, "device-000003", "cid").await;
    // Bea has an email: another player must not see it.
    let (status, _) = bearer_post(
        &server,
        "/v2/account/link/email",
        &device_user(&server, "device-000002", "bea").await.0,
        json!({"email": "bea@example.com", "password": "password-123"}),
    )
    .await;
    assert_eq!(status, 200);
    let nobody = "0b6e7a4c-1111-4222-8333-944455556666";
    let path = format!("/v2/user?ids={bea}&ids={nobody}&usernames=cid&usernames=bea&usernames=nobody_here");
    let (status, body) = request(&server, "GET", &path, Some(&token), None).await;
    assert_eq!(status, 200, "{body}");
    let users = body["users"].as_array().unwrap();
    let mut ids: Vec<&str> = users.iter().map(|u| u["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut expected = vec![bea.as_str(), cid.as_str()];
    expected.sort();
    assert_eq!(ids, expected, "{body}");
    let text = body.to_string();
    assert!(
        !text.contains("bea@example.com") && !text.contains("email"),
        "{body}"
    );
    let bea_shown = users.iter().find(|u| u["id"] == bea.as_str()).unwrap();
    assert_eq!(bea_shown["username"], "bea");
    assert!(bea_shown["create_time"].as_str().unwrap().ends_with('Z'));
    // Nothing asked, nothing found.
    let (status, body) = request(&server, "GET", "/v2/user", Some(&token), None).await;
    assert_eq!((status, &body), (200, &json!({})));
}

#[tokio::test]
async fn a_user_lookup_needs_a_session_valid_ids_and_at_most_100_names() {
    let (server, _dirs, first) = device_server().await;
    let token = token(&first);
    let (status, _) = request(&server, "GET", "/v2/user?usernames=ana_device", None, None).await;
    assert_eq!(status, 401);
    assert_status(
        request(&server, "GET", "/v2/user?ids=not-a-uuid", Some(&token), None).await,
        400,
        3,
        "ID 'not-a-uuid' is not a valid system ID.",
    );
    let flood: String = (0..101).map(|i| format!("usernames=u{i}&")).collect();
    let (status, body) = request(&server, "GET", &format!("/v2/user?{flood}"), Some(&token), None).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(3)), "{body}");
    let hundred: String = (0..100).map(|i| format!("usernames=u{i}&")).collect();
    let path = format!("/v2/user?{hundred}usernames=ana_device");
    let (status, _) = request(&server, "GET", &path, Some(&token), None).await;
    assert_eq!(status, 400, "101 with the real one");
    let (status, body) = request(&server, "GET", &format!("/v2/user?{hundred}"), Some(&token), None).await;
    assert_eq!((status, &body), (200, &json!({})), "exactly 100 is allowed");
}

const EMAIL: &str = "/v2/account/authenticate/email";

async fn delete_account(server: &Server, token: &str) -> (u16, Value) {
    request(server, "DELETE", "/v2/account", Some(token), None).await
}

#[tokio::test]
async fn deleting_the_account_revokes_its_tokens_and_frees_its_identities_and_name() {
    let (server, _dirs, first) = device_server().await;
    let t = token(&first);
    let uid = claims(&t)["uid"].as_str().unwrap().to_owned();
    for (path, body) in [
        ("/v2/account/link/custom", json!({"id": "custom-del-01"})),
        (
            "/v2/account/link/email",
            json!({"email": "deleted@example.com", "password": "password1"}),
        ),
    ] {
        assert_eq!(
            bearer_post(&server, path, &t, body).await,
            (200, json!({})),
            "{path}"
        );
    }
    // A second login of the same account: its tokens go too.
    let (_, second) = auth(&server, DEVICE, json!({"id": "device-000001"})).await;
    let (status, bystander) = auth(&server, DEVICE, json!({"id": "device-keeps-01"})).await;
    assert_eq!(status, 200, "{bystander}");
    let (status, _) = request(&server, "DELETE", "/v2/account", None, None).await;
    assert_eq!(status, 401, "no token, no deletion");

    assert_eq!(delete_account(&server, &t).await, (200, json!({})));

    for old in [&t, &token(&second)] {
        assert_status(account(&server, old).await, 401, 16, "Auth token invalid");
    }
    // Deleting twice: the token is dead by then.
    assert_status(delete_account(&server, &t).await, 401, 16, "Auth token invalid");
    for old in [&first, &second] {
        assert_status(
            auth(&server, REFRESH, json!({"token": refresh_token(old)})).await,
            401,
            16,
            "Refresh token invalid or expired.",
        );
    }
    // Every identity is free: none logs in to anything any more...
    for (path, body) in [
        (DEVICE, json!({"id": "device-000001"})),
        ("/v2/account/authenticate/custom", json!({"id": "custom-del-01"})),
        (
            EMAIL,
            json!({"email": "deleted@example.com", "password": "password1"}),
        ),
    ] {
        assert_status(
            auth(&server, &format!("{path}?create=false"), body).await,
            404,
            5,
            "User account not found.",
        );
    }
    // ...and the device and the name make a fresh account.
    let (status, fresh) = auth(
        &server,
        &format!("{DEVICE}?username=ana_device"),
        json!({"id": "device-000001"}),
    )
    .await;
    assert_eq!((status, &fresh["created"]), (200, &json!(true)), "{fresh}");
    assert_ne!(claims(&token(&fresh))["uid"], uid.as_str());
    let (_, shown) = account(&server, &token(&fresh)).await;
    assert!(
        shown.get("email").is_none() && shown.get("custom_id").is_none(),
        "{shown}"
    );
    let (status, found) = request(
        &server,
        "GET",
        &format!("/v2/user?ids={uid}"),
        Some(&token(&fresh)),
        None,
    )
    .await;
    assert_eq!(
        (status, &found),
        (200, &json!({})),
        "the deleted user is not found"
    );
    // Another account is untouched.
    assert_eq!(account(&server, &token(&bystander)).await.0, 200);
}

#[tokio::test]
async fn the_last_superuser_cannot_delete_its_account() {
    let p = players().await;
    let server = &p.server;
    // root has a name and a password, no email: a username login.
    let (status, root) = auth(
        server,
        &format!("{EMAIL}?username=root"),
        json!({"password": support::ROOT_PASSWORD}),
    )
    .await;
    assert_eq!((status, &root["created"]), (200, &json!(false)), "{root}");
    let (status, body) = delete_account(server, &token(&root)).await;
    assert_eq!((status, &body["code"]), (403, &json!(7)), "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("last superuser"),
        "{body}"
    );
    let (status, shown) = account(server, &token(&root)).await;
    assert_eq!(
        (status, &shown["user"]["username"]),
        (200, &json!("root")),
        "{shown}"
    );
    // An ordinary player may delete theirs.
    assert_eq!(delete_account(server, &p.t).await, (200, json!({})));
    assert_eq!(account(server, &p.other_token).await.0, 200);
}

/// A deletion racing the same account's other calls: every call answers
/// 200, 401 or 404 (never a server error), nothing is left half-deleted
/// (an identity pointing to the deleted user would make its next login a
/// 500), and no token the account held, or got by refreshing meanwhile, works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_while_the_accounts_other_calls_run_leaves_nothing_half_deleted() {
    let dirs = Dirs::new();
    let server = std::sync::Arc::new(Server::start(&dirs, &[]));
    for round in 0..3 {
        let device = format!("device-race-del-{round}");
        let (status, owner) = auth(&server, DEVICE, json!({"id": device})).await;
        assert_eq!(status, 200, "{owner}");
        let t = token(&owner);
        let uid = claims(&t)["uid"].clone();
        let mut calls = Vec::new();
        for n in 0..6 {
            let server = server.clone();
            let t = t.clone();
            let (refresh, device) = (refresh_token(&owner), device.clone());
            calls.push(tokio::spawn(async move {
                let linked = format!("tablet-race-{round}-{n}");
                let rename = json!({"display_name": format!("n{n}")});
                let mut got: Vec<(&'static str, (u16, Value))> = Vec::new();
                if n == 3 {
                    got.push(("delete", delete_account(&server, &t).await));
                }
                got.extend([
                    ("get", account(&server, &t).await),
                    (
                        "put",
                        request(&server, "PUT", "/v2/account", Some(&t), Some(rename)).await,
                    ),
                    (
                        "link",
                        bearer_post(&server, "/v2/account/link/device", &t, json!({"id": linked})).await,
                    ),
                    ("login", auth(&server, DEVICE, json!({"id": device})).await),
                ]);
                if n == 0 {
                    got.push(("refresh", auth(&server, REFRESH, json!({"token": refresh})).await));
                }
                got
            }));
        }
        let mut answers = Vec::new();
        for call in calls {
            answers.extend(call.await.expect("call"));
        }
        let deleted = answers
            .iter()
            .any(|(what, (s, _))| *what == "delete" && *s == 200);
        assert!(deleted, "{answers:?}");
        for (what, (status, body)) in &answers {
            assert!([200, 401, 404].contains(status), "{what}: {status} {body}");
        }
        // Tokens held or refreshed before the deletion are dead.
        assert_eq!(account(&server, &t).await.0, 401);
        for (what, (status, body)) in &answers {
            if *what == "refresh" && *status == 200 {
                assert_eq!(account(&server, &token(body)).await.0, 401, "refreshed: {body}");
                assert_eq!(
                    auth(&server, REFRESH, json!({"token": refresh_token(body)}))
                        .await
                        .0,
                    401
                );
            }
            // A login that found the account just before it went: its
            // token is refused cleanly, or the account is not found. (Later
            // logins may find the fresh account an earlier one made.)
            if *what == "login" && *status == 200 && claims(&token(body))["uid"] == uid {
                let (status, shown) = account(&server, &token(body)).await;
                assert!(status == 401 || status == 404, "{status} {shown}");
            }
        }
        // No identity of the deleted account is left behind: each id makes
        // a fresh account (or finds the one a racing login just made).
        for n in 0..6 {
            let (status, body) = auth(
                &server,
                &format!("{DEVICE}?create=false"),
                json!({"id": format!("tablet-race-{round}-{n}")}),
            )
            .await;
            assert_eq!(status, 404, "tablet {n}: {body}");
        }
        let (status, body) = auth(&server, DEVICE, json!({"id": device})).await;
        assert_eq!(status, 200, "{body}");
        let (status, shown) = account(&server, &token(&body)).await;
        assert_eq!(status, 200, "{shown}");
    }
}

#[tokio::test]
async fn a_username_and_password_log_in_through_the_email_route_and_never_create() {
    let (server, _dirs, _) = device_server().await;
    let (status, created) = auth(
        &server,
        &format!("{EMAIL}?username=name_login"),
        json!({"email": "name.login@example.com", "password": "password1"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let uid = claims(&token(&created))["uid"].clone();

    // `create` is ignored: a username login never creates.
    for create in ["", "&create=false", "&create=true"] {
        let (status, by_name) = auth(
            &server,
            &format!("{EMAIL}?username=name_login{create}"),
            json!({"password": "password1", "vars": {"via": "name"}}),
        )
        .await;
        assert_eq!((status, &by_name["created"]), (200, &json!(false)), "{by_name}");
        let c = claims(&token(&by_name));
        assert_eq!((&c["uid"], &c["usn"]), (&uid, &json!("name_login")));
        assert_eq!(c["vrs"], json!({"via": "name"}));
        assert_eq!(account(&server, &token(&by_name)).await.0, 200);
    }
    let by_name = |username: &str, password: &str| {
        let path = if username.is_empty() {
            EMAIL.to_owned()
        } else {
            format!("{EMAIL}?username={username}")
        };
        let body = json!({"email": "", "password": password});
        let server = &server;
        async move { auth(server, &path, body).await }
    };
    assert_status(
        by_name("name_login", "password2").await,
        401,
        16,
        "Invalid credentials.",
    );
    // A device account has no password: no username login either.
    assert_status(
        by_name("ana_device", "password1").await,
        401,
        16,
        "Invalid credentials.",
    );
    for create in ["false", "true"] {
        assert_status(
            auth(
                &server,
                &format!("{EMAIL}?username=nobody_here&create={create}"),
                json!({"password": "password1"}),
            )
            .await,
            404,
            5,
            "User account not found.",
        );
    }
    let (_, none) = request(
        &server,
        "GET",
        "/v2/user?usernames=nobody_here",
        Some(&token(&created)),
        None,
    )
    .await;
    assert_eq!(none, json!({}), "nothing was created");
    assert_status(
        by_name("", "password1").await,
        400,
        3,
        "Username is required when email address is not supplied.",
    );
    assert_status(
        by_name("name_login", "short").await,
        400,
        3,
        "Password must be at least 8 characters long.",
    );
    assert_status(
        by_name("name%20login", "password1").await,
        400,
        3,
        "Username invalid, no spaces or control characters allowed.",
    );
}

#[tokio::test]
async fn username_logins_are_throttled_like_email_logins() {
    let dirs = Dirs::new();
    dirs.config(
        "[login]\naccount_failures = 3\naddress_failures = 1000\nlockout_secs = 600\nmax_lockout_secs = 600\n",
    );
    let server = Server::start(&dirs, &[]);
    let (status, _) = auth(
        &server,
        &format!("{EMAIL}?username=locked_out"),
        json!({"email": "locked.out@example.com", "password": "password1"}),
    )
    .await;
    assert_eq!(status, 200);
    let by_name = format!("{EMAIL}?username=locked_out");
    for _ in 0..3 {
        assert_status(
            auth(&server, &by_name, json!({"password": "wrong-password"})).await,
            401,
            16,
            "Invalid credentials.",
        );
    }
    let reply = support::request_full(
        &server,
        "POST",
        &by_name,
        None,
        Some(json!({"password": "password1"})),
    )
    .await;
    assert_eq!(
        (reply.status, &reply.body["code"]),
        (429, &json!(8)),
        "{}",
        reply.body
    );
    assert!(reply.retry_after.is_some_and(|w| (1..=600).contains(&w)));
    // The same account through its email is locked too.
    let (status, body) = auth(
        &server,
        EMAIL,
        json!({"email": "locked.out@example.com", "password": "password1"}),
    )
    .await;
    assert_eq!((status, &body["code"]), (429, &json!(8)), "{body}");
}

#[tokio::test]
async fn linking_a_custom_id_replaces_the_accounts_previous_one() {
    let p = players().await;
    let server = &p.server;
    link_all(&p).await;
    assert_eq!(
        bearer_post(
            server,
            "/v2/account/link/custom",
            &p.t,
            json!({"id": "origin-43"})
        )
        .await,
        (200, json!({}))
    );
    let (_, acc) = account(server, &p.t).await;
    assert_eq!(acc["custom_id"], "origin-43", "{acc}");
    // The old id logs in to nothing; the new one to player1.
    assert_status(
        auth(
            server,
            "/v2/account/authenticate/custom?create=false",
            json!({"id": "origin-42"}),
        )
        .await,
        404,
        5,
        "User account not found.",
    );
    let (status, by_new) = auth(
        server,
        "/v2/account/authenticate/custom?create=false",
        json!({"id": "origin-43"}),
    )
    .await;
    assert_eq!(status, 200, "{by_new}");
    assert_eq!(claims(&token(&by_new))["uid"], p.uid);
    // The old id is no longer linked: unlinking it is refused.
    assert_status(
        unlink(&p, "custom", json!({"id": "origin-42"})).await,
        403,
        7,
        LAST_LINK,
    );
    // Another account's custom id is still refused, and changes nothing.
    assert_eq!(
        bearer_post(
            server,
            "/v2/account/link/custom",
            &p.other_token,
            json!({"id": "origin-99"})
        )
        .await
        .0,
        200
    );
    assert_status(
        bearer_post(
            server,
            "/v2/account/link/custom",
            &p.t,
            json!({"id": "origin-99"}),
        )
        .await,
        409,
        6,
        "Custom ID is already in use.",
    );
    let (_, acc) = account(server, &p.t).await;
    assert_eq!(acc["custom_id"], "origin-43", "{acc}");
    let (_, other) = account(server, &p.other_token).await;
    assert_eq!(other["custom_id"], "origin-99", "{other}");
}

#[tokio::test]
async fn account_devices_carry_no_vars_as_in_nakama() {
    // device_server's login gave vars: they are in the token only.
    let (server, _dirs, first) = device_server().await;
    assert_eq!(claims(&token(&first))["vrs"], json!({"k": "v"}));
    let (status, acc) = account(&server, &token(&first)).await;
    assert_eq!(status, 200, "{acc}");
    assert_eq!(acc["devices"], json!([{"id": "device-000001"}]));
}

#[tokio::test]
async fn a_refresh_with_empty_or_absent_vars_keeps_the_tokens_and_new_vars_replace_them() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let (kept, _) = two_sessions(&server).await;
    // `{}` (what nakama-js sends by default) is no vars, as in Nakama.
    let (status, empty) = auth(
        &server,
        REFRESH,
        json!({"token": refresh_token(&kept), "vars": {}}),
    )
    .await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(claims(&token(&empty))["vrs"], json!({"lang": "pt"}));
    assert_eq!(claims(&refresh_token(&empty))["vrs"], json!({"lang": "pt"}));
    let (status, replaced) = auth(
        &server,
        REFRESH,
        json!({"token": refresh_token(&empty), "vars": {"lang": "en", "tier": "gold"}}),
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    let new_vars = json!({"lang": "en", "tier": "gold"});
    assert_eq!(claims(&token(&replaced))["vrs"], new_vars);
    // Absent or null (protojson reads null as absent): the (new) refresh token's.
    let absent = refresh(&server, &replaced).await;
    assert_eq!(claims(&token(&absent))["vrs"], new_vars);
    let (status, null) = auth(
        &server,
        REFRESH,
        json!({"token": refresh_token(&absent), "vars": null}),
    )
    .await;
    assert_eq!(status, 200, "{null}");
    assert_eq!(claims(&token(&null))["vrs"], new_vars);
    // Not a map of strings: refused.
    let (status, body) = auth(
        &server,
        REFRESH,
        json!({"token": refresh_token(&null), "vars": {"n": 1}}),
    )
    .await;
    assert_eq!((status, &body["code"]), (400, &json!(3)), "{body}");
    let (status, body) = auth(&server, DEVICE, json!({"id": "device-null-vars", "vars": null})).await;
    assert_eq!(status, 200, "{body}");
    assert!(claims(&token(&body)).get("vrs").is_none(), "{body}");
}
