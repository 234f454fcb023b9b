//! The Nakama-compatible `/v2` authentication API, over HTTP against the real
//! binary: every rule of the issue, linking, refresh/logout/revocation across
//! a restart, and the first-login race. Runs on MongoDB when
//! `ELEMENTS_MONGODB_URI` is set.

mod support;

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use support::{Dirs, Server, json as body_of};

/// POST with the server key as the Basic user.
async fn auth(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let response = server
        .client
        .post(server.url(path))
        .basic_auth("defaultkey", Some(""))
        .json(&body)
        .send()
        .await
        .expect("POST");
    body_of(response).await
}

async fn bearer_post(server: &Server, path: &str, token: &str, body: Value) -> (u16, Value) {
    let response = server
        .client
        .post(server.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("POST");
    body_of(response).await
}

async fn account(server: &Server, token: &str) -> (u16, Value) {
    let response = server
        .client
        .get(server.url("/v2/account"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET");
    body_of(response).await
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

#[tokio::test]
async fn device_authentication_rules() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let path = "/v2/account/authenticate/device";

    let (status, first) = auth(
        &server,
        &format!("{path}?username=ana_device"),
        json!({"id": "device-000001", "vars": {"k": "v"}}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["created"], true);
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

    // Same device: same user, not created; `username` ignored for an existing account.
    let (status, again) = auth(
        &server,
        &format!("{path}?username=other"),
        json!({"id": "device-000001"}),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["created"], false);
    assert_eq!(claims(&token(&again))["uid"], c["uid"]);
    assert_eq!(claims(&token(&again))["usn"], "ana_device");

    // Generated username when absent.
    let (status, generated) = auth(&server, path, json!({"id": "device-000002"})).await;
    assert_eq!(status, 200);
    let usn = claims(&token(&generated))["usn"].as_str().unwrap().to_owned();
    assert!(
        usn.len() == 10 && usn.chars().all(|ch| ch.is_ascii_alphabetic()),
        "{usn}"
    );

    // create=false for a missing account.
    assert_status(
        auth(
            &server,
            &format!("{path}?create=false"),
            json!({"id": "device-unknown"}),
        )
        .await,
        404,
        5,
        "User account not found.",
    );
    let (status, _) = auth(
        &server,
        &format!("{path}?create=false"),
        json!({"id": "device-000001"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        auth(
            &server,
            &format!("{path}?create=maybe"),
            json!({"id": "device-000003"})
        )
        .await
        .0,
        400
    );

    // Id rules.
    assert_status(
        auth(&server, path, json!({})).await,
        400,
        3,
        "Device ID is required.",
    );
    assert_status(
        auth(&server, path, json!({"id": "123456789"})).await,
        400,
        3,
        "Device ID invalid, must be 10-128 bytes.",
    );
    assert_status(
        auth(&server, path, json!({"id": "x".repeat(129)})).await,
        400,
        3,
        "Device ID invalid, must be 10-128 bytes.",
    );
    assert_eq!(auth(&server, path, json!({"id": "x".repeat(128)})).await.0, 200);
    assert_status(
        auth(&server, path, json!({"id": "device 000004"})).await,
        400,
        3,
        "Device ID invalid, no spaces or control characters allowed.",
    );
    assert_status(
        auth(&server, path, json!({"id": "device\u{1}000004"})).await,
        400,
        3,
        "Device ID invalid, no spaces or control characters allowed.",
    );

    // Username rules.
    assert_status(
        auth(
            &server,
            &format!("{path}?username=ana_device"),
            json!({"id": "device-000005"}),
        )
        .await,
        409,
        6,
        "Username is already in use.",
    );
    assert_status(
        auth(
            &server,
            &format!("{path}?username=ana%20b"),
            json!({"id": "device-000005"}),
        )
        .await,
        400,
        3,
        "Username invalid, no spaces or control characters allowed.",
    );
    assert_status(
        auth(
            &server,
            &format!("{path}?username={}", "u".repeat(129)),
            json!({"id": "device-000005"}),
        )
        .await,
        400,
        3,
        "Username invalid, must be 1-128 bytes.",
    );
    // The failed attempts created nothing.
    assert_status(
        auth(
            &server,
            &format!("{path}?create=false"),
            json!({"id": "device-000005"}),
        )
        .await,
        404,
        5,
        "User account not found.",
    );

    // Malformed JSON.
    let response = server
        .client
        .post(server.url(path))
        .basic_auth("defaultkey", Some(""))
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = body_of(response).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(3)), "{body}");

    // Server key.
    let response = server
        .client
        .post(server.url(path))
        .json(&json!({"id": "device-000001"}))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("www-authenticate"));
    assert_status(body_of(response).await, 401, 16, "Server key required");
    let response = server
        .client
        .post(server.url(path))
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
    assert_status(
        post(email, json!({"password": "password1"})).await,
        400,
        3,
        "Email address is required.",
    );
    assert_status(
        post(email, json!({"email": "a@b.co", "password": "password1"})).await,
        400,
        3,
        "Invalid email address, must be 10-255 bytes.",
    );
}

#[tokio::test]
async fn linking_makes_one_user_across_apis() {
    let dirs = Dirs::new();
    let server = Server::start_with(&dirs, &[], &[("ELEMENTS_ROOT_PASSWORD", "root-password-1")], None);
    let (_, device) = auth(
        &server,
        "/v2/account/authenticate/device?username=player1",
        json!({"id": "phone-0000001"}),
    )
    .await;
    let t = token(&device);
    let uid = claims(&t)["uid"].clone();
    let (_, other) = auth(
        &server,
        "/v2/account/authenticate/device",
        json!({"id": "phone-0000002"}),
    )
    .await;
    let other_token = token(&other);

    // Link custom, email and a second device; re-linking is a no-op.
    assert_eq!(
        bearer_post(&server, "/v2/account/link/custom", &t, json!({"id": "origin-42"})).await,
        (200, json!({}))
    );
    assert_eq!(
        bearer_post(&server, "/v2/account/link/custom", &t, json!({"id": "origin-42"})).await,
        (200, json!({}))
    );
    assert_eq!(
        bearer_post(
            &server,
            "/v2/account/link/email",
            &t,
            json!({"email": "Player1@Example.com", "password": "password1"})
        )
        .await,
        (200, json!({}))
    );
    assert_eq!(
        bearer_post(
            &server,
            "/v2/account/link/device",
            &t,
            json!({"id": "tablet-000001"})
        )
        .await,
        (200, json!({}))
    );

    // Ids another account uses.
    assert_status(
        bearer_post(
            &server,
            "/v2/account/link/device",
            &other_token,
            json!({"id": "phone-0000001"}),
        )
        .await,
        409,
        6,
        "Device ID is already in use.",
    );
    assert_status(
        bearer_post(
            &server,
            "/v2/account/link/custom",
            &other_token,
            json!({"id": "origin-42"}),
        )
        .await,
        409,
        6,
        "Custom ID is already in use.",
    );
    assert_status(
        bearer_post(
            &server,
            "/v2/account/link/email",
            &other_token,
            json!({"email": "player1@example.com", "password": "password2"}),
        )
        .await,
        409,
        6,
        "Email is already in use.",
    );
    assert_status(
        bearer_post(&server, "/v2/account/link/device", &t, json!({"id": "bad"})).await,
        400,
        3,
        "Device ID invalid, must be 10-128 bytes.",
    );

    // The account shows every link.
    let (status, acc) = account(&server, &t).await;
    assert_eq!(status, 200, "{acc}");
    assert_eq!(acc["user"]["id"], uid);
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

    // Email login (Nakama and /api/rest) and custom login reach the same user.
    let (status, by_email) = auth(
        &server,
        "/v2/account/authenticate/email",
        json!({"email": "player1@example.com", "password": "password1"}),
    )
    .await;
    assert_eq!((status, &by_email["created"]), (200, &json!(false)), "{by_email}");
    assert_eq!(claims(&token(&by_email))["uid"], uid);
    let (_, by_custom) = auth(
        &server,
        "/v2/account/authenticate/custom",
        json!({"id": "origin-42"}),
    )
    .await;
    assert_eq!(claims(&token(&by_custom))["uid"], uid);
    let response = server
        .client
        .post(server.url("/api/rest/session"))
        .json(&json!({"userId": "player1@example.com", "password": "password1"}))
        .send()
        .await
        .unwrap();
    let (status, rest) = body_of(response).await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["session"]["user"]["id"], uid);

    // Unlink: not ours / last identifier are refused.
    let last = "Cannot unlink last account identifier. Check profile exists and is not last link.";
    assert_status(
        bearer_post(
            &server,
            "/v2/account/unlink/device",
            &t,
            json!({"id": "phone-0000002"}),
        )
        .await,
        403,
        7,
        last,
    );
    assert_eq!(
        bearer_post(
            &server,
            "/v2/account/unlink/device",
            &t,
            json!({"id": "tablet-000001"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        bearer_post(
            &server,
            "/v2/account/unlink/custom",
            &t,
            json!({"id": "origin-42"})
        )
        .await
        .0,
        200
    );
    // The account has a password: a session token alone can't remove the
    // email (and so the password), nor can a guess; the password can.
    for body in [
        json!({"email": "player1@example.com"}),
        json!({"email": "player1@example.com", "password": "password-guess"}),
    ] {
        let (status, error) = bearer_post(&server, "/v2/account/unlink/email", &t, body).await;
        assert_eq!((status, &error["code"]), (400, &json!(3)), "{error}");
    }
    let (status, error) = bearer_post(
        &server,
        "/v2/account/link/email",
        &t,
        json!({"email": "thief@example.com", "password": "thief-password"}),
    )
    .await;
    assert_eq!((status, &error["code"]), (400, &json!(3)), "{error}");
    assert_eq!(
        bearer_post(
            &server,
            "/v2/account/unlink/email",
            &t,
            json!({"email": "player1@example.com", "password": "password1"})
        )
        .await
        .0,
        200
    );
    assert_status(
        bearer_post(
            &server,
            "/v2/account/unlink/device",
            &t,
            json!({"id": "phone-0000001"}),
        )
        .await,
        403,
        7,
        last,
    );
    let (_, acc) = account(&server, &t).await;
    assert_eq!(acc["devices"], json!([{"id": "phone-0000001"}]));
    assert!(
        acc.get("email").is_none() && acc.get("custom_id").is_none(),
        "{acc}"
    );
    // The unlinked email is free again.
    assert_eq!(
        bearer_post(
            &server,
            "/v2/account/link/email",
            &other_token,
            json!({"email": "player1@example.com", "password": "password2"})
        )
        .await
        .0,
        200
    );

    // Bearer auth.
    let response = server.client.get(server.url("/v2/account")).send().await.unwrap();
    assert!(response.headers().contains_key("www-authenticate"));
    assert_status(body_of(response).await, 401, 16, "Auth token required");
    assert_status(account(&server, "not.a.jwt").await, 401, 16, "Auth token invalid");
    // A refresh token is not a session token (separate keys).
    assert_status(
        account(&server, device["refresh_token"].as_str().unwrap()).await,
        401,
        16,
        "Auth token invalid",
    );

    // A ban (by a superuser over /api/rest) revokes sessions and refuses logins.
    let response = server
        .client
        .post(server.url("/api/rest/session"))
        .json(&json!({"userId": "root", "password": "root-password-1"}))
        .send()
        .await
        .unwrap();
    let (_, root) = body_of(response).await;
    let root_secret = root["sessionSecret"].as_str().unwrap();
    let response = server
        .client
        .put(server.url(&format!("/api/rest/user/{}", uid.as_str().unwrap())))
        .bearer_auth(root_secret)
        .json(&json!({"banned": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_status(account(&server, &t).await, 401, 16, "Auth token invalid");
    assert_status(
        auth(
            &server,
            "/v2/account/authenticate/device",
            json!({"id": "phone-0000001"}),
        )
        .await,
        403,
        7,
        "User account banned.",
    );
}

#[tokio::test]
async fn refresh_logout_and_revocation_survive_a_restart() {
    let dirs = Dirs::new();
    let database = format!("test_restart_{}", support::uuid_like());
    let server = Server::start_with(&dirs, &[], &[], Some(&database));
    let path = "/v2/account/authenticate/device";
    let (_, kept) = auth(
        &server,
        path,
        json!({"id": "device-keep-01", "vars": {"lang": "pt"}}),
    )
    .await;
    let (_, revoked) = auth(&server, path, json!({"id": "device-gone-01"})).await;
    let kept_token = token(&kept);
    let kept_refresh = kept["refresh_token"].as_str().unwrap().to_owned();

    // Refresh: a new session, the refresh token's vars kept.
    assert_status(
        auth(&server, "/v2/account/session/refresh", json!({})).await,
        400,
        3,
        "Refresh token is required.",
    );
    assert_status(
        auth(
            &server,
            "/v2/account/session/refresh",
            json!({"token": kept_token}),
        )
        .await,
        401,
        16,
        "Refresh token invalid or expired.",
    );
    let (status, refreshed) = auth(
        &server,
        "/v2/account/session/refresh",
        json!({"token": kept_refresh}),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["created"], false);
    let refreshed_claims = claims(&token(&refreshed));
    assert_eq!(refreshed_claims["uid"], claims(&kept_token)["uid"]);
    assert_eq!(refreshed_claims["vrs"], json!({"lang": "pt"}));
    assert_eq!(account(&server, &token(&refreshed)).await.0, 200);
    let no_key = server
        .client
        .post(server.url("/v2/account/session/refresh"))
        .json(&json!({"token": kept_refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);

    // Logout revokes both tokens; someone else's token is refused.
    let revoked_token = token(&revoked);
    let revoked_refresh = revoked["refresh_token"].as_str().unwrap().to_owned();
    assert_status(
        bearer_post(
            &server,
            "/v2/session/logout",
            &revoked_token,
            json!({"token": kept_token}),
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
            json!({"refresh_token": kept_refresh}),
        )
        .await,
        400,
        3,
        "Refresh token invalid.",
    );
    assert_eq!(
        bearer_post(
            &server,
            "/v2/session/logout",
            &revoked_token,
            json!({"token": revoked_token, "refresh_token": revoked_refresh})
        )
        .await,
        (200, json!({}))
    );
    assert_status(
        account(&server, &revoked_token).await,
        401,
        16,
        "Auth token invalid",
    );
    assert_status(
        auth(
            &server,
            "/v2/account/session/refresh",
            json!({"token": revoked_refresh}),
        )
        .await,
        401,
        16,
        "Refresh token invalid or expired.",
    );

    // Restart on the same data: the kept session is valid, the revoked one is not.
    let log = server.stop();
    assert!(
        !log.contains(&kept_token) && !log.contains(&kept_refresh),
        "tokens must not be logged"
    );
    let server = Server::start_with(&dirs, &[], &[], Some(&database));
    assert_eq!(account(&server, &kept_token).await.0, 200);
    // The refresh rotated the refresh token: the new one works.
    let newer_refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(newer_refresh, kept_refresh);
    let (status, newest) = auth(
        &server,
        "/v2/account/session/refresh",
        json!({"token": newer_refresh}),
    )
    .await;
    assert_eq!(status, 200, "{newest}");
    assert_status(
        account(&server, &revoked_token).await,
        401,
        16,
        "Auth token invalid",
    );
    assert_eq!(
        auth(
            &server,
            "/v2/account/session/refresh",
            json!({"token": revoked_refresh})
        )
        .await
        .0,
        401
    );

    // Logout with neither token revokes every session of the caller.
    assert_eq!(
        bearer_post(&server, "/v2/session/logout", &kept_token, json!({}))
            .await
            .0,
        200
    );
    assert_eq!(account(&server, &token(&refreshed)).await.0, 401);
    assert_eq!(
        auth(
            &server,
            "/v2/account/session/refresh",
            json!({"token": newest["refresh_token"]})
        )
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
#[tokio::test]
async fn identifiers_have_one_spelling() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let path = "/v2/account/authenticate/device";
    let in_use = "Username is already in use.";

    let (status, body) = auth(
        &server,
        &format!("{path}?username=Gamer_1"),
        json!({"id": "device-one-001"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for (i, twin) in ["gamer_1", "GAMER_1", "%EF%BC%A7amer_1"].iter().enumerate() {
        assert_status(
            auth(
                &server,
                &format!("{path}?username={twin}"),
                json!({"id": format!("device-twin-00{i}")}),
            )
            .await,
            409,
            6,
            in_use,
        );
    }
    // "José" decomposed (e + U+0301) and precomposed (U+00E9) are one name,
    // kept in NFC.
    let (status, body) = auth(
        &server,
        &format!("{path}?username=Jose%CC%81"),
        json!({"id": "device-jose-01"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(&token(&body))["usn"], "Jos\u{e9}");
    let (_, me) = account(&server, &token(&body)).await;
    assert_eq!(me["user"]["username"], "Jos\u{e9}", "{me}");
    assert_status(
        auth(
            &server,
            &format!("{path}?username=jos%C3%A9"),
            json!({"id": "device-jose-02"}),
        )
        .await,
        409,
        6,
        in_use,
    );

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
            auth(
                &server,
                &format!("{path}?username={name}"),
                json!({"id": "device-bad-name-1"}),
            )
            .await,
            400,
            3,
            message,
        );
    }
    for query in [
        "username=%FF%FE",
        "username=ok&create=%C0%AF",
        "%FF=1",
        "username=%ED%A0%80",
    ] {
        assert_status(
            auth(
                &server,
                &format!("{path}?{query}"),
                json!({"id": "device-bad-utf8-1"}),
            )
            .await,
            400,
            3,
            "The query string is not valid UTF-8 once percent-decoded.",
        );
    }
    let oversized = "x".repeat(8 * 1024);
    assert_status(
        auth(
            &server,
            &format!("{path}?username={oversized}"),
            json!({"id": "device-big-name"}),
        )
        .await,
        400,
        3,
        "Username invalid, must be 1-128 bytes.",
    );
    // None of the refused attempts made an account.
    assert_status(
        auth(
            &server,
            &format!("{path}?create=false"),
            json!({"id": "device-bad-name-1"}),
        )
        .await,
        404,
        5,
        "User account not found.",
    );

    // Emails: one address in any case or normalization form.
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
    let (_, other) = auth(&server, path, json!({"id": "device-linker-1"})).await;
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
