//! Edge hardening of logins and sessions, over HTTP against the real binary:
//! login throttling on every password login (`/api/rest/session`,
//! `/v2/account/authenticate/email`, the portal), the bounded password pool
//! under a login flood, refresh-token rotation with replay detection,
//! logout, password and email changes, and bans. Runs on MongoDB when
//! `ELEMENTS_MONGODB_URI` is set.

mod support;

use serde_json::{Value, json};
use support::{Dirs, ROOT_PASSWORD, Server, request, request_full, retry_after};

/// Status, `Retry-After` and JSON body.
async fn call_full(
    server: &Server,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, Option<u64>, Value) {
    let reply = request_full(server, method, path, bearer, body).await;
    (reply.status, reply.retry_after, reply.body)
}

async fn login(server: &Server, user: &str, password: &str) -> (u16, Option<u64>, Value) {
    call_full(
        server,
        "POST",
        "/api/rest/session",
        None,
        Some(json!({"userId": user, "password": password})),
    )
    .await
}

async fn email_auth(server: &Server, email: &str, password: &str) -> (u16, Option<u64>, Value) {
    call_full(
        server,
        "POST",
        "/v2/account/authenticate/email",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

async fn signup(server: &Server, name: &str, email: &str, password: &str) -> Value {
    let (status, body) = request(
        server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(json!({"name": name, "email": email, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn text(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {value}"))
        .to_owned()
}

async fn me(server: &Server, secret: &str) -> u16 {
    request(server, "GET", "/api/rest/user/me", Some(secret), None)
        .await
        .0
}

async fn account(server: &Server, token: &str) -> u16 {
    request(server, "GET", "/v2/account", Some(token), None).await.0
}

async fn refresh(server: &Server, refresh_token: &str) -> (u16, Value) {
    request(
        server,
        "POST",
        "/v2/account/session/refresh",
        None,
        Some(json!({"token": refresh_token})),
    )
    .await
}

/// A portal login attempt: status, `Retry-After`.
async fn portal_login(server: &Server, login: &str, password: &str) -> (u16, Option<u64>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = client
        .get(server.admin_url("/admin/login"))
        .send()
        .await
        .expect("login page");
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("the login form's cookie")
        .to_owned();
    let html = page.text().await.expect("login page");
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF token") + 19;
    let csrf = html[start..start + html[start..].find('"').expect("end")].to_owned();
    let response = client
        .post(server.admin_url("/admin/login"))
        .header("cookie", &cookie)
        .form(&[
            ("login", login),
            ("password", password),
            ("csrf", csrf.as_str()),
            ("next", "/admin/"),
        ])
        .send()
        .await
        .expect("login");
    (response.status().as_u16(), retry_after(&response))
}

fn throttled_server(dirs: &Dirs, login_table: &str) -> Server {
    dirs.config(&format!("[login]\n{login_table}\n"));
    Server::start_with(dirs, &[], &[("ELEMENTS_ROOT_PASSWORD", ROOT_PASSWORD)], None)
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_on_every_password_login() {
    let dirs = Dirs::new();
    let server = throttled_server(
        &dirs,
        "account_failures = 3\naddress_failures = 1000\nlockout_secs = 600\nmax_lockout_secs = 600",
    );
    signup(&server, "ana", "ana@example.test", "password1").await;
    signup(&server, "bob", "bob@example.test", "password1").await;

    // /api/rest/session: three wrong passwords, then 429 even for the right one.
    for _ in 0..3 {
        assert_eq!(login(&server, "ana", "wrong-password").await.0, 401);
    }
    let (status, wait, body) = login(&server, "ana", "password1").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "THROTTLED", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(
        wait.is_some_and(|w| (1..=600).contains(&w)),
        "Retry-After {wait:?}"
    );
    // The account is locked whichever login names it, and on /v2 too.
    assert_eq!(login(&server, "ANA@example.test", "password1").await.0, 429);
    let (status, wait, body) = email_auth(&server, "ana@example.test", "password1").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], 8, "RESOURCE_EXHAUSTED: {body}");
    assert_eq!(body["details"], json!([]));
    assert!(wait.is_some_and(|w| w >= 1));
    // Another account from the same address is not affected.
    assert_eq!(login(&server, "bob", "password1").await.0, 200);

    // /v2/account/authenticate/email on its own account.
    assert_eq!(email_auth(&server, "neo@example.test", "password1").await.0, 200);
    for _ in 0..3 {
        let (status, _, body) = email_auth(&server, "neo@example.test", "wrong-password").await;
        assert_eq!((status, &body["code"]), (401, &json!(16)), "{body}");
    }
    let (status, wait, body) = email_auth(&server, "neo@example.test", "password1").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], 8);
    assert!(wait.is_some());

    // The portal.
    for _ in 0..3 {
        assert_eq!(portal_login(&server, "root", "wrong-password").await.0, 401);
    }
    let (status, wait) = portal_login(&server, "root", ROOT_PASSWORD).await;
    assert_eq!(status, 429);
    assert!(wait.is_some_and(|w| w >= 1));

    // Unknown accounts are throttled alike (no hint that they don't exist).
    for _ in 0..3 {
        assert_eq!(login(&server, "nobody", "wrong-password").await.0, 401);
    }
    assert_eq!(login(&server, "nobody", "wrong-password").await.0, 429);

    // Abuse: huge and malformed input is refused, never a 500.
    let huge = "x".repeat(200_000);
    let (status, _, body) = login(&server, &huge, &huge).await;
    assert!(status == 401 || status == 413 || status == 400, "{status} {body}");
    let raw = server
        .client
        .post(server.url("/api/rest/session"))
        .header("content-type", "application/json")
        .body("{\"userId\": ")
        .send()
        .await
        .expect("POST");
    assert_eq!(raw.status(), 400);
    let log = server.stop();
    assert!(
        !log.contains("wrong-password") && !log.contains(ROOT_PASSWORD),
        "passwords must not be logged"
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_client_address() {
    let dirs = Dirs::new();
    let server = throttled_server(
        &dirs,
        "account_failures = 1000\naddress_failures = 4\nlockout_secs = 600\nmax_lockout_secs = 600",
    );
    signup(&server, "ana", "ana@example.test", "password1").await;
    // Rotating usernames gains nothing: the address is counted.
    for n in 0..4 {
        assert_eq!(
            login(&server, &format!("guess{n}"), "wrong-password").await.0,
            401
        );
    }
    let (status, wait, body) = login(&server, "ana", "password1").await;
    assert_eq!(status, 429, "{body}");
    assert!(wait.is_some());
    assert_eq!(email_auth(&server, "ana@example.test", "password1").await.0, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_gets_503s_while_signed_in_calls_still_answer() {
    let dirs = Dirs::new();
    // One password thread, two waiting jobs, and no throttling in the way.
    let server = throttled_server(
        &dirs,
        "account_failures = 100000\naddress_failures = 100000\npassword_threads = 1\npassword_queue = 2",
    );
    let ana = signup(&server, "ana", "ana@example.test", "password1").await;
    let secret = text(&ana, "sessionSecret");
    let server = std::sync::Arc::new(server);
    let mut flood = Vec::new();
    for n in 0..120 {
        let server = server.clone();
        flood.push(tokio::spawn(async move {
            if n % 2 == 0 {
                login(&server, "ana", "wrong-password").await
            } else {
                email_auth(&server, "ana@example.test", "wrong-password").await
            }
        }));
    }
    // Signed-in calls need no password work: they answer during the flood.
    for _ in 0..10 {
        assert_eq!(me(&server, &secret).await, 200);
    }
    let (mut refused, mut wrong) = (0, 0);
    for task in flood {
        let (status, wait, body) = task.await.expect("flood request");
        match status {
            401 => wrong += 1,
            503 => {
                assert!(wait.is_some_and(|w| w >= 1), "503 without Retry-After: {body}");
                assert!(body["code"] == "BUSY" || body["code"] == 14, "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(refused > 0 && wrong > 0, "refused {refused}, checked {wrong}");
    assert_eq!(me(&server, &secret).await, 200);
    assert_eq!(login(&server, "ana", "password1").await.0, 200);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replay_revokes_the_family() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let path = "/v2/account/authenticate/device";
    let (_, first) = request(
        &server,
        "POST",
        path,
        None,
        Some(json!({"id": "device-rotate-01"})),
    )
    .await;
    let (_, other_login) = request(
        &server,
        "POST",
        path,
        None,
        Some(json!({"id": "device-rotate-01"})),
    )
    .await;
    let (a, ra) = (text(&first, "token"), text(&first, "refresh_token"));

    // A refresh gives a new session token and a new refresh token.
    let (status, second) = refresh(&server, &ra).await;
    assert_eq!(status, 200, "{second}");
    let (b, rb) = (text(&second, "token"), text(&second, "refresh_token"));
    assert_ne!(rb, ra);
    assert_ne!(b, a);
    assert_eq!(account(&server, &b).await, 200);
    let (status, third) = refresh(&server, &rb).await;
    assert_eq!(status, 200, "{third}");
    let (c, rc) = (text(&third, "token"), text(&third, "refresh_token"));

    // The spent one presented again: 401, and the whole family is dead.
    let (status, body) = refresh(&server, &ra).await;
    assert_eq!((status, &body["code"]), (401, &json!(16)), "{body}");
    for token in [&a, &b, &c] {
        assert_eq!(account(&server, token).await, 401);
    }
    assert_eq!(refresh(&server, &rc).await.0, 401);
    assert_eq!(refresh(&server, &rb).await.0, 401);
    // Another login of the same user is another family: untouched.
    assert_eq!(account(&server, &text(&other_login, "token")).await, 200);
    assert_eq!(
        refresh(&server, &text(&other_login, "refresh_token")).await.0,
        200
    );

    // Concurrent refreshes with one token: exactly one wins.
    let (_, fresh) = request(
        &server,
        "POST",
        path,
        None,
        Some(json!({"id": "device-rotate-02"})),
    )
    .await;
    let shared = text(&fresh, "refresh_token");
    let server = std::sync::Arc::new(server);
    let racers: Vec<_> = (0..6)
        .map(|_| {
            let (server, shared) = (server.clone(), shared.clone());
            tokio::spawn(async move { refresh(&server, &shared).await.0 })
        })
        .collect();
    let mut wins = 0;
    for racer in racers {
        match racer.await.expect("racer") {
            200 => wins += 1,
            401 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(wins <= 1, "{wins} refreshes won with one token");

    // Forged and malformed refresh tokens.
    let mut forged = shared.clone();
    forged.push('x');
    assert_eq!(refresh(&server, &forged).await.0, 401);
    assert_eq!(refresh(&server, &"a.b.c".repeat(2000)).await.0, 401);
    assert_eq!(refresh(&server, "not a token").await.0, 401);
}

#[tokio::test]
async fn logout_revokes_the_family() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let path = "/v2/account/authenticate/device";
    let (_, first) = request(
        &server,
        "POST",
        path,
        None,
        Some(json!({"id": "device-logout-01"})),
    )
    .await;
    let (_, refreshed) = refresh(&server, &text(&first, "refresh_token")).await;
    let (token, refresh_token) = (text(&refreshed, "token"), text(&refreshed, "refresh_token"));
    // Logging out with the session token alone ends its refresh token too.
    let (status, body) = request(
        &server,
        "POST",
        "/v2/session/logout",
        Some(&token),
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(account(&server, &token).await, 401);
    assert_eq!(account(&server, &text(&first, "token")).await, 401);
    assert_eq!(refresh(&server, &refresh_token).await.0, 401);

    // nakama-js logs out with both.
    let (_, second) = request(
        &server,
        "POST",
        path,
        None,
        Some(json!({"id": "device-logout-01"})),
    )
    .await;
    let (token, refresh_token) = (text(&second, "token"), text(&second, "refresh_token"));
    let (status, _) = request(
        &server,
        "POST",
        "/v2/session/logout",
        Some(&token),
        Some(json!({"token": token, "refresh_token": refresh_token})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(refresh(&server, &refresh_token).await.0, 401);
    assert_eq!(account(&server, &token).await, 401);
}

#[tokio::test]
async fn password_and_email_changes_need_the_current_password_and_end_other_sessions() {
    let dirs = Dirs::new();
    let server = Server::start_with(&dirs, &[], &[("ELEMENTS_ROOT_PASSWORD", ROOT_PASSWORD)], None);
    let ana = signup(&server, "ana", "ana@example.test", "password1").await;
    let id = ana["session"]["user"]["id"].as_str().expect("id").to_owned();
    let user_path = format!("/api/rest/user/{id}");
    let s1 = text(&ana, "sessionSecret");
    let s2 = text(&login(&server, "ana", "password1").await.2, "sessionSecret");
    let (_, nakama) = request(
        &server,
        "POST",
        "/v2/account/authenticate/email",
        None,
        Some(json!({"email": "ana@example.test", "password": "password1"})),
    )
    .await;
    let (t, rt) = (text(&nakama, "token"), text(&nakama, "refresh_token"));

    // Without, or with a wrong, current password: 400, nothing changes.
    let put = |secret: String, body: Value| {
        let server = &server;
        let user_path = user_path.clone();
        async move { request(server, "PUT", &user_path, Some(&secret), Some(body)).await }
    };
    let (status, body) = put(s1.clone(), json!({"password": "password2"})).await;
    assert_eq!(
        (status, &body["code"]),
        (400, &json!("INVALID_PARAMETER")),
        "{body}"
    );
    let (status, body) = put(
        s1.clone(),
        json!({"password": "password2", "currentPassword": "wrong-password"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        put(s1.clone(), json!({"email": "evil@example.test"})).await.0,
        400
    );
    assert_eq!(me(&server, &s2).await, 200);

    // With it: changed, this session kept, every other one ended.
    let (status, body) = put(
        s1.clone(),
        json!({"password": "password2", "currentPassword": "password1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(me(&server, &s1).await, 200);
    assert_eq!(me(&server, &s2).await, 401);
    assert_eq!(account(&server, &t).await, 401);
    assert_eq!(refresh(&server, &rt).await.0, 401);
    assert_eq!(login(&server, "ana", "password1").await.0, 401);
    let s3 = text(&login(&server, "ana", "password2").await.2, "sessionSecret");

    // An email change likewise, made with a Nakama session token: that
    // token's family is kept.
    let (_, nakama) = request(
        &server,
        "POST",
        "/v2/account/authenticate/email",
        None,
        Some(json!({"email": "ana@example.test", "password": "password2"})),
    )
    .await;
    let t2 = text(&nakama, "token");
    let (status, body) = put(
        t2.clone(),
        json!({"email": "ana2@example.test", "currentPassword": "password2"}),
    )
    .await;
    assert_eq!(
        (status, &body["email"]),
        (200, &json!("ana2@example.test")),
        "{body}"
    );
    assert_eq!(account(&server, &t2).await, 200);
    assert_eq!(me(&server, &s1).await, 401);
    assert_eq!(me(&server, &s3).await, 401);
    // Other fields need no password and end nothing.
    let s4 = text(&login(&server, "ana", "password2").await.2, "sessionSecret");
    assert_eq!(put(s4.clone(), json!({"displayName": "Ana"})).await.0, 200);
    assert_eq!(account(&server, &t2).await, 200);

    // A superuser resets it without the old one; every session of ana ends.
    let root = text(&login(&server, "root", ROOT_PASSWORD).await.2, "sessionSecret");
    assert_eq!(put(root.clone(), json!({"password": "password3"})).await.0, 200);
    assert_eq!(me(&server, &s4).await, 401);
    assert_eq!(account(&server, &t2).await, 401);
    assert_eq!(me(&server, &root).await, 200);

    // An account without a password sets its first one without.
    let (_, device) = request(
        &server,
        "POST",
        "/v2/account/authenticate/device",
        None,
        Some(json!({"id": "device-nopass-01"})),
    )
    .await;
    let device_token = text(&device, "token");
    let device_id = ana_id_of(&server, &device_token).await;
    let (status, body) = request(
        &server,
        "PUT",
        &format!("/api/rest/user/{device_id}"),
        Some(&device_token),
        Some(json!({"password": "password1"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn ana_id_of(server: &Server, token: &str) -> String {
    let (status, account) = request(server, "GET", "/v2/account", Some(token), None).await;
    assert_eq!(status, 200, "{account}");
    account["user"]["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn a_ban_ends_every_session() {
    let dirs = Dirs::new();
    let server = Server::start_with(&dirs, &[], &[("ELEMENTS_ROOT_PASSWORD", ROOT_PASSWORD)], None);
    let ana = signup(&server, "ana", "ana@example.test", "password1").await;
    let id = ana["session"]["user"]["id"].as_str().expect("id").to_owned();
    let secret = text(&ana, "sessionSecret");
    let (_, nakama) = request(
        &server,
        "POST",
        "/v2/account/authenticate/email",
        None,
        Some(json!({"email": "ana@example.test", "password": "password1"})),
    )
    .await;
    let (t, rt) = (text(&nakama, "token"), text(&nakama, "refresh_token"));
    let root = text(&login(&server, "root", ROOT_PASSWORD).await.2, "sessionSecret");
    let (status, _) = request(
        &server,
        "PUT",
        &format!("/api/rest/user/{id}"),
        Some(&root),
        Some(json!({"banned": true})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(me(&server, &secret).await, 401);
    assert_eq!(account(&server, &t).await, 401);
    assert_eq!(refresh(&server, &rt).await.0, 401);
    assert_eq!(login(&server, "ana", "password1").await.0, 403);
}

async fn device_login(server: &Server, id: &str) -> (String, String) {
    let (status, body) = request(
        server,
        "POST",
        "/v2/account/authenticate/device",
        None,
        Some(json!({"id": id})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (text(&body, "token"), text(&body, "refresh_token"))
}

async fn logout(server: &Server, token: &str) -> u16 {
    request(
        server,
        "POST",
        "/v2/session/logout",
        Some(token),
        Some(json!({"token": token})),
    )
    .await
    .0
}

/// Logins store no token: a logout or a ban is a write to the user's
/// document, which every node reads when it checks a token. So it holds on
/// another node at once (no waiting), and after every node restarts.
#[tokio::test]
async fn revocations_hold_on_every_node_at_once_and_after_restarts() {
    let dirs = Dirs::new();
    let database = format!("nodes_{}", std::process::id());
    let env = [("ELEMENTS_ROOT_PASSWORD", ROOT_PASSWORD)];
    let a = Server::start_with(&dirs, &[], &env, Some(&database));
    let b = Server::start_with(&dirs, &[], &env, Some(&database));
    let (one, one_refresh) = device_login(&a, "device-nodes-01").await;
    let (two, _) = device_login(&b, "device-nodes-01").await;
    assert_eq!(
        account(&b, &one).await,
        200,
        "a token from node A works on node B"
    );
    assert_eq!(account(&a, &two).await, 200);

    assert_eq!(logout(&b, &one).await, 200);
    assert_eq!(
        account(&a, &one).await,
        401,
        "logged out on B, refused on A at once"
    );
    assert_eq!(refresh(&a, &one_refresh).await.0, 401);
    assert_eq!(account(&a, &two).await, 200, "the other login is untouched");

    let root = text(&login(&a, "root", ROOT_PASSWORD).await.2, "sessionSecret");
    let id = ana_id_of(&a, &two).await;
    let ban = |banned: bool| {
        let (a, root, id) = (&a, root.clone(), id.clone());
        async move {
            let path = format!("/api/rest/user/{id}");
            let body = Some(json!({"banned": banned}));
            request(a, "PUT", &path, Some(&root), body).await.0
        }
    };
    assert_eq!(ban(true).await, 200);
    assert_eq!(account(&b, &two).await, 401, "banned on A, refused on B at once");
    assert_eq!(ban(false).await, 200);
    assert_eq!(account(&b, &two).await, 401, "lifting a ban gives no token back");

    drop((a, b));
    let a = Server::start_with(&dirs, &[], &env, Some(&database));
    assert_eq!(account(&a, &one).await, 401, "revocations survive restarts");
    assert_eq!(account(&a, &two).await, 401);
    let (three, _) = device_login(&a, "device-nodes-01").await;
    assert_eq!(account(&a, &three).await, 200, "a new login works");
}

/// Each logout adds the family to the user's document, which keeps at most
/// 32: one more logout revokes every token of the user instead, so logging
/// in and out in a loop can't grow a document without bound.
#[tokio::test]
async fn logging_out_past_the_bound_revokes_every_token_of_the_user() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let mut tokens = Vec::new();
    for _ in 0..34 {
        tokens.push(device_login(&server, "device-bound-01").await.0);
    }
    for token in &tokens[..32] {
        assert_eq!(logout(&server, token).await, 200);
        assert_eq!(account(&server, token).await, 401);
    }
    assert_eq!(account(&server, &tokens[32]).await, 200);
    assert_eq!(account(&server, &tokens[33]).await, 200);
    assert_eq!(logout(&server, &tokens[32]).await, 200);
    assert_eq!(
        account(&server, &tokens[33]).await,
        401,
        "past the bound, every token of the user is revoked"
    );
    let (fresh, _) = device_login(&server, "device-bound-01").await;
    assert_eq!(account(&server, &fresh).await, 200);
}
