//! The Elements-style identity API under `/api/rest`, the bootstrap of the
//! `root` superuser, and the OpenAPI document / Swagger UI, over HTTP against
//! the real binary. Runs on MongoDB when `ELEMENTS_MONGODB_URI` is set.

mod support;

use serde_json::{Value, json};
use support::{Dirs, Server, json as body_of};

const ROOT_PASSWORD: &str = "root-password-1";

async fn call(
    server: &Server,
    method: &str,
    path: &str,
    secret: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server
        .client
        .request(method.parse().expect("method"), server.url(path));
    if let Some(secret) = secret {
        request = request.bearer_auth(secret);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("JSON")
    };
    (status, value)
}

async fn login(server: &Server, user: &str, password: &str) -> (u16, Value) {
    call(
        server,
        "POST",
        "/api/rest/session",
        None,
        Some(json!({"userId": user, "password": password})),
    )
    .await
}

fn secret(body: &Value) -> String {
    body["sessionSecret"]
        .as_str()
        .unwrap_or_else(|| panic!("no secret in {body}"))
        .to_owned()
}

fn root_server(dirs: &Dirs) -> Server {
    Server::start_with(dirs, &[], &[("ELEMENTS_ROOT_PASSWORD", ROOT_PASSWORD)], None)
}

#[tokio::test]
async fn bootstrap_uses_the_configured_root_password() {
    let dirs = Dirs::new();
    let database = format!("test_boot_{}", support::uuid_like());
    let server = Server::start_with(
        &dirs,
        &[],
        &[("ELEMENTS_ROOT_PASSWORD", ROOT_PASSWORD)],
        Some(&database),
    );
    let (status, body) = login(&server, "root", ROOT_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session"]["user"]["level"], "SUPERUSER");
    assert_eq!(body["session"]["user"]["name"], "root");
    assert_eq!(login(&server, "root", "wrong-password").await.0, 401);
    let log = server.stop();
    assert!(log.contains("created the superuser `root`"), "{log}");
    assert!(
        !log.contains(ROOT_PASSWORD),
        "the password must not be logged:\n{log}"
    );

    // Later starts keep root as it is, even with another password configured.
    let server = Server::start_with(
        &dirs,
        &[],
        &[("ELEMENTS_ROOT_PASSWORD", "another-password")],
        Some(&database),
    );
    assert_eq!(login(&server, "root", ROOT_PASSWORD).await.0, 200);
    assert!(!server.stop().contains("created the superuser"));
}

#[tokio::test]
async fn bootstrap_generates_and_prints_a_password_once() {
    let dirs = Dirs::new();
    let database = format!("test_boot_{}", support::uuid_like());
    let server = Server::start_with(&dirs, &[], &[], Some(&database));
    let log = server.log();
    let password = log
        .split("generated password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no generated password in the log:\n{log}"))
        .to_owned();
    assert!(password.len() >= 16, "{password}");
    let (status, body) = login(&server, "root", &password).await;
    assert_eq!(
        (status, &body["session"]["user"]["level"]),
        (200, &json!("SUPERUSER")),
        "{body}"
    );
    assert_eq!(login(&server, "root", "defaultpassword").await.0, 401);
    drop(server);
    let server = Server::start_with(&dirs, &[], &[], Some(&database));
    assert!(!server.log().contains("generated password"), "printed once only");
    assert_eq!(login(&server, "root", &password).await.0, 200);
}

#[tokio::test]
async fn sessions_and_users() {
    let dirs = Dirs::new();
    let server = root_server(&dirs);

    // Sign up.
    let signup = |name: &str, email: &str, password: &str| json!({"name": name, "email": email, "password": password, "displayName": "Ana"});
    let (status, ana) = call(
        &server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(signup("ana", "Ana@Example.com", "password1")),
    )
    .await;
    assert_eq!(status, 200, "{ana}");
    let ana_secret = secret(&ana);
    let ana_id = ana["session"]["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(ana["session"]["user"]["email"], "ana@example.com");
    assert_eq!(ana["session"]["user"]["level"], "USER");
    assert!(ana["session"]["expiry"].as_i64().unwrap() > 0);
    let (status, dup) = call(
        &server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(signup("ana", "other@example.com", "password1")),
    )
    .await;
    assert_eq!((status, dup["code"].as_str()), (409, Some("DUPLICATE")), "{dup}");
    let (status, dup) = call(
        &server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(signup("ana2", "ana@example.com", "password1")),
    )
    .await;
    assert_eq!(status, 409, "{dup}");
    let (status, bad) = call(
        &server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(signup("bob", "not-an-email", "password1")),
    )
    .await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("INVALID_PARAMETER")),
        "{bad}"
    );
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/rest/signup/session",
            None,
            Some(signup("bob", "bob@example.com", "short"))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/rest/signup/session",
            None,
            Some(signup("b b", "bob@example.com", "password1"))
        )
        .await
        .0,
        400
    );
    let (status, bob) = call(
        &server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(signup("bob", "bob@example.com", "password1")),
    )
    .await;
    assert_eq!(status, 200, "{bob}");
    let bob_secret = secret(&bob);

    // Log in by name or email; wrong password; missing fields.
    assert_eq!(login(&server, "ana", "password1").await.0, 200);
    let (status, by_email) = login(&server, "ANA@example.com", "password1").await;
    assert_eq!(
        (status, &by_email["session"]["user"]["id"]),
        (200, &json!(ana_id))
    );
    let (status, wrong) = login(&server, "ana", "password2").await;
    assert_eq!(
        (status, wrong["code"].as_str()),
        (401, Some("UNAUTHORIZED")),
        "{wrong}"
    );
    assert_eq!(login(&server, "nobody", "password1").await.0, 401);
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/rest/session",
            None,
            Some(json!({"userId": "ana"}))
        )
        .await
        .0,
        400
    );

    // Credentials: Bearer or Elements-SessionSecret; 401 with a challenge otherwise.
    let (status, me) = call(&server, "GET", "/api/rest/user/me", Some(&ana_secret), None).await;
    assert_eq!((status, &me["id"]), (200, &json!(ana_id)));
    let response = server
        .client
        .get(server.url("/api/rest/user/me"))
        .header("Elements-SessionSecret", &ana_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = server
        .client
        .get(server.url("/api/rest/user/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(body_of(response).await.1["code"], "UNAUTHORIZED");
    let response = server
        .client
        .get(server.url("/api/rest/user/me"))
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));

    // Users: self or superuser; levels and bans by superusers only.
    let (_, root) = login(&server, "root", ROOT_PASSWORD).await;
    let root_secret = secret(&root);
    let ana_path = format!("/api/rest/user/{ana_id}");
    assert_eq!(
        call(&server, "GET", &ana_path, Some(&ana_secret), None).await.0,
        200
    );
    let (status, forbidden) = call(&server, "GET", &ana_path, Some(&bob_secret), None).await;
    assert_eq!((status, forbidden["code"].as_str()), (403, Some("FORBIDDEN")));
    assert_eq!(
        call(&server, "GET", &ana_path, Some(&root_secret), None).await.0,
        200
    );
    assert_eq!(
        call(&server, "GET", "/api/rest/user/nope", Some(&root_secret), None)
            .await
            .0,
        404
    );
    let (status, changed) = call(
        &server,
        "PUT",
        &ana_path,
        Some(&ana_secret),
        Some(json!({"displayName": "Ana S", "metadata": {"a": 1}})),
    )
    .await;
    assert_eq!(
        (status, &changed["displayName"], &changed["metadata"]),
        (200, &json!("Ana S"), &json!({"a": 1}))
    );
    assert_eq!(
        call(
            &server,
            "PUT",
            &ana_path,
            Some(&ana_secret),
            Some(json!({"level": "SUPERUSER"}))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &server,
            "PUT",
            &ana_path,
            Some(&bob_secret),
            Some(json!({"displayName": "x"}))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &server,
            "PUT",
            &ana_path,
            Some(&ana_secret),
            Some(json!({"name": "bob"}))
        )
        .await
        .0,
        409
    );
    assert_eq!(
        call(
            &server,
            "PUT",
            &ana_path,
            Some(&ana_secret),
            Some(json!({"bogus": 1}))
        )
        .await
        .0,
        400
    );
    // A new password needs the current one, and works at once.
    assert_eq!(
        call(
            &server,
            "PUT",
            &ana_path,
            Some(&ana_secret),
            Some(json!({"password": "password9"}))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(
            &server,
            "PUT",
            &ana_path,
            Some(&ana_secret),
            Some(json!({"password": "password9", "currentPassword": "password1"}))
        )
        .await
        .0,
        200
    );
    assert_eq!(login(&server, "ana", "password9").await.0, 200);
    assert_eq!(login(&server, "ana", "password1").await.0, 401);

    // Search: superusers only.
    assert_eq!(
        call(&server, "GET", "/api/rest/user", Some(&ana_secret), None)
            .await
            .0,
        403
    );
    let (status, all) = call(&server, "GET", "/api/rest/user", Some(&root_secret), None).await;
    assert_eq!((status, &all["total"]), (200, &json!(3)), "{all}");
    let (_, found) = call(
        &server,
        "GET",
        "/api/rest/user?search=bo",
        Some(&root_secret),
        None,
    )
    .await;
    assert_eq!(found["objects"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found["objects"][0]["name"], "bob");
    let (_, paged) = call(
        &server,
        "GET",
        "/api/rest/user?offset=1&count=1",
        Some(&root_secret),
        None,
    )
    .await;
    assert_eq!(
        (
            paged["offset"].as_u64(),
            paged["objects"].as_array().map(Vec::len)
        ),
        (Some(1), Some(1))
    );
    assert_eq!(
        call(&server, "GET", "/api/rest/user?count=x", Some(&root_secret), None)
            .await
            .0,
        400
    );

    // Promotion, then ban: a banned user's sessions end and logins fail with 403.
    let (status, promoted) = call(
        &server,
        "PUT",
        &ana_path,
        Some(&root_secret),
        Some(json!({"level": "SUPERUSER"})),
    )
    .await;
    assert_eq!((status, &promoted["level"]), (200, &json!("SUPERUSER")));
    let bob_path = format!(
        "/api/rest/user/{}",
        bob["session"]["user"]["id"].as_str().unwrap()
    );
    assert_eq!(
        call(
            &server,
            "PUT",
            &bob_path,
            Some(&ana_secret),
            Some(json!({"banned": true}))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&server, "GET", "/api/rest/user/me", Some(&bob_secret), None)
            .await
            .0,
        401
    );
    assert_eq!(login(&server, "bob", "password1").await.0, 403);

    // Logout.
    assert_eq!(
        call(
            &server,
            "DELETE",
            &format!("/api/rest/session/{ana_secret}"),
            None,
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(&server, "GET", "/api/rest/user/me", Some(&ana_secret), None)
            .await
            .0,
        401
    );
    assert_eq!(
        call(
            &server,
            "DELETE",
            &format!("/api/rest/session/{ana_secret}"),
            None,
            None
        )
        .await
        .0,
        404
    );
    assert!(!server.log().contains(&root_secret), "secrets must not be logged");
}

#[tokio::test]
async fn profiles_and_applications() {
    let dirs = Dirs::new();
    let server = root_server(&dirs);
    let (_, root) = login(&server, "root", ROOT_PASSWORD).await;
    let root_secret = secret(&root);
    let signup = |name: &str| json!({"name": name, "password": "password1"});
    let (_, ana) = call(
        &server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(signup("ana")),
    )
    .await;
    let ana_secret = secret(&ana);
    let ana_id = ana["session"]["user"]["id"].as_str().unwrap().to_owned();
    let (_, bob) = call(
        &server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(signup("bob")),
    )
    .await;
    let bob_secret = secret(&bob);

    // Applications: superusers only.
    let chess = json!({"name": "chess", "description": "Chess"});
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/rest/application",
            Some(&ana_secret),
            Some(chess.clone())
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/rest/application",
            None,
            Some(chess.clone())
        )
        .await
        .0,
        401
    );
    let (status, app) = call(
        &server,
        "POST",
        "/api/rest/application",
        Some(&root_secret),
        Some(chess.clone()),
    )
    .await;
    assert_eq!((status, &app["name"]), (201, &json!("chess")), "{app}");
    let app_id = app["id"].as_str().unwrap().to_owned();
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/rest/application",
            Some(&root_secret),
            Some(chess)
        )
        .await
        .0,
        409
    );
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/rest/application",
            Some(&root_secret),
            Some(json!({"name": "no way"}))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/rest/application",
            Some(&root_secret),
            Some(json!({"name": "go"}))
        )
        .await
        .0,
        201
    );
    let (_, list) = call(&server, "GET", "/api/rest/application", Some(&root_secret), None).await;
    assert_eq!(list["total"], 2);
    assert_eq!(
        call(&server, "GET", "/api/rest/application", Some(&ana_secret), None)
            .await
            .0,
        403
    );
    let (status, got) = call(
        &server,
        "GET",
        "/api/rest/application/chess",
        Some(&root_secret),
        None,
    )
    .await;
    assert_eq!((status, &got["id"]), (200, &json!(app_id)));
    let (status, renamed) = call(
        &server,
        "PUT",
        "/api/rest/application/go",
        Some(&root_secret),
        Some(json!({"description": "Go"})),
    )
    .await;
    assert_eq!((status, &renamed["description"]), (200, &json!("Go")));
    assert_eq!(
        call(
            &server,
            "DELETE",
            "/api/rest/application/go",
            Some(&root_secret),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            &server,
            "GET",
            "/api/rest/application/go",
            Some(&root_secret),
            None
        )
        .await
        .0,
        404
    );

    // A session for an application finds or creates the user's profile.
    let (status, session) = call(
        &server,
        "POST",
        "/api/rest/session",
        None,
        Some(json!({"userId": "ana", "password": "password1", "application": "chess"})),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let profile = session["session"]["profile"].clone();
    assert_eq!(profile["userId"], json!(ana_id));
    assert_eq!(session["session"]["application"]["name"], "chess");
    let chess_secret = secret(&session);
    let (status, current) = call(
        &server,
        "GET",
        "/api/rest/profile/current",
        Some(&chess_secret),
        None,
    )
    .await;
    assert_eq!((status, &current["id"]), (200, &profile["id"]));
    assert!(current["lastLogin"].as_i64().is_some(), "{current}");
    assert_eq!(
        call(
            &server,
            "GET",
            "/api/rest/profile/current",
            Some(&ana_secret),
            None
        )
        .await
        .0,
        404
    );
    // Again: the same profile.
    let (_, again) = call(
        &server,
        "POST",
        "/api/rest/session",
        None,
        Some(json!({"userId": "ana", "password": "password1", "application": app_id})),
    )
    .await;
    assert_eq!(again["session"]["profile"]["id"], profile["id"]);
    // By profile id; someone else's profile is refused.
    let (status, by_id) = call(
        &server,
        "POST",
        "/api/rest/session",
        None,
        Some(json!({"userId": "ana", "password": "password1", "profileId": profile["id"]})),
    )
    .await;
    assert_eq!(
        (status, &by_id["session"]["profile"]["id"]),
        (200, &profile["id"])
    );
    let (status, _) = call(
        &server,
        "POST",
        "/api/rest/session",
        None,
        Some(json!({"userId": "bob", "password": "password1", "profileId": profile["id"]})),
    )
    .await;
    assert_eq!(status, 403);

    // Profiles CRUD: owner or superuser.
    let profile_path = format!("/api/rest/profile/{}", profile["id"].as_str().unwrap());
    assert_eq!(
        call(&server, "GET", &profile_path, Some(&ana_secret), None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&server, "GET", &profile_path, Some(&bob_secret), None)
            .await
            .0,
        403
    );
    assert_eq!(
        call(&server, "GET", &profile_path, Some(&root_secret), None)
            .await
            .0,
        200
    );
    let (status, updated) = call(
        &server,
        "PUT",
        &profile_path,
        Some(&ana_secret),
        Some(json!({"displayName": "Ana the Bold", "imageUrl": "https://example.com/a.png", "metadata": {"elo": 1200}})),
    )
    .await;
    assert_eq!(
        (status, &updated["displayName"], &updated["metadata"]["elo"]),
        (200, &json!("Ana the Bold"), &json!(1200))
    );
    assert_eq!(
        call(
            &server,
            "PUT",
            &profile_path,
            Some(&bob_secret),
            Some(json!({"displayName": "x"}))
        )
        .await
        .0,
        403
    );
    // One per user per application.
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/rest/profile",
            Some(&ana_secret),
            Some(json!({"application": "chess"}))
        )
        .await
        .0,
        409
    );
    let (status, bobs) = call(
        &server,
        "POST",
        "/api/rest/profile",
        Some(&bob_secret),
        Some(json!({"application": "chess", "displayName": "Bob"})),
    )
    .await;
    assert_eq!((status, &bobs["displayName"]), (201, &json!("Bob")), "{bobs}");
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/rest/profile",
            Some(&bob_secret),
            Some(json!({"application": "chess", "userId": ana_id}))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/rest/profile",
            Some(&bob_secret),
            Some(json!({"application": "nope"}))
        )
        .await
        .0,
        404
    );
    let (_, mine) = call(&server, "GET", "/api/rest/profile", Some(&bob_secret), None).await;
    assert_eq!(mine["total"], 1);
    let (_, all) = call(
        &server,
        "GET",
        "/api/rest/profile?application=chess",
        Some(&root_secret),
        None,
    )
    .await;
    assert_eq!(all["total"], 2);
    assert_eq!(
        call(
            &server,
            "GET",
            &format!("/api/rest/profile?user={ana_id}"),
            Some(&bob_secret),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(&server, "DELETE", &profile_path, Some(&bob_secret), None)
            .await
            .0,
        403
    );
    assert_eq!(
        call(&server, "DELETE", &profile_path, Some(&ana_secret), None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&server, "GET", &profile_path, Some(&root_secret), None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn openapi_document_and_swagger_ui_are_served() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let (status, doc) = call(&server, "GET", "/api/rest/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with('3'),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/api/rest/session",
        "/api/rest/signup/session",
        "/api/rest/user/me",
        "/api/rest/profile/{id}",
        "/api/rest/application",
        "/v2/account/authenticate/{scheme}",
        "/v2/account/session/refresh",
        "/v2/session/logout",
        "/v2/account",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the document"
        );
    }
    let response = server.get("/doc/swagger/").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.text().await.unwrap().contains("swagger"),
        "Swagger UI page"
    );
    let response = server.get("/doc/swagger/swagger-initializer.js").await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("/api/rest/openapi.json"));
    let response = server.get("/doc/swagger/swagger-ui-bundle.js").await;
    assert_eq!(response.status(), 200, "assets are served by the runtime");
}

/// The server always keeps a superuser: the last one can't be demoted or
/// banned through the API (it could through no other route either).
#[tokio::test]
async fn the_last_superuser_stays_a_superuser() {
    let dirs = Dirs::new();
    let server = root_server(&dirs);
    let (_, body) = login(&server, "root", ROOT_PASSWORD).await;
    let root = secret(&body);
    let (_, me) = call(&server, "GET", "/api/rest/user/me", Some(&root), None).await;
    let root_id = me["id"].as_str().unwrap().to_owned();
    for change in [json!({"level": "USER"}), json!({"banned": true})] {
        let (status, body) = call(
            &server,
            "PUT",
            &format!("/api/rest/user/{root_id}"),
            Some(&root),
            Some(change),
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("last superuser"),
            "{body}"
        );
    }
    // No route deletes a user, the last superuser included.
    let (status, body) = call(
        &server,
        "DELETE",
        &format!("/api/rest/user/{root_id}"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (405, &json!("METHOD_NOT_ALLOWED")),
        "{body}"
    );
    let (status, _) = call(&server, "GET", "/api/rest/user/me", Some(&root), None).await;
    assert_eq!(status, 200, "root is still in");
    // With a second superuser, one may step down.
    let (_, created) = call(
        &server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(json!({"name": "ops", "email": "ops@example.test", "password": "password-123"})),
    )
    .await;
    let ops_id = created["session"]["user"]["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &server,
        "PUT",
        &format!("/api/rest/user/{ops_id}"),
        Some(&root),
        Some(json!({"level": "SUPERUSER"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &server,
        "PUT",
        &format!("/api/rest/user/{root_id}"),
        Some(&root),
        Some(json!({"level": "USER"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Metadata keys the store can't hold are a 400 naming the key, never a 500.
#[tokio::test]
async fn invalid_metadata_keys_are_refused() {
    let dirs = Dirs::new();
    let server = root_server(&dirs);
    let (_, created) = call(
        &server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(json!({"name": "meta", "password": "password-123"})),
    )
    .await;
    let session = secret(&created);
    let id = created["session"]["user"]["id"].as_str().unwrap().to_owned();
    for (metadata, key) in [
        (json!({"": 1}), "\"\""),
        (json!({"$where": 1}), "$where"),
        (json!({"a.b": 1}), "a.b"),
        (json!({"ok": {"x\u{0}y": 1}}), "x\\0y"),
    ] {
        let (status, body) = call(
            &server,
            "PUT",
            &format!("/api/rest/user/{id}"),
            Some(&session),
            Some(json!({"metadata": metadata})),
        )
        .await;
        assert_eq!(status, 400, "{metadata}: {body}");
        assert!(body["message"].as_str().unwrap().contains(key), "{key}: {body}");
    }
    let (status, body) = call(
        &server,
        "PUT",
        &format!("/api/rest/user/{id}"),
        Some(&session),
        Some(json!({"metadata": {"fine": {"nested": [1, 2]}}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Every error the server answers is JSON, framework rejections included:
/// the `/api/rest` shape, Nakama's on `/v2`.
#[tokio::test]
async fn framework_rejections_are_json_errors() {
    let dirs = Dirs::new();
    let server = root_server(&dirs);
    let big = "x".repeat(3 << 20);
    let response = server
        .client
        .post(server.url("/api/rest/session"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // The unread body leaves the connection unusable: the server says so.
    assert_eq!(response.headers()["connection"], "close");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["code"], "REQUEST_TOO_LARGE", "{body}");
    let response = server
        .client
        .post(server.url("/v2/account/authenticate/device"))
        .basic_auth("defaultkey", Some(""))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["connection"], "close");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        (&body["code"], &body["details"]),
        (&json!(3), &json!([])),
        "{body}"
    );
    let response = server.client.delete(server.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert!(response.headers().contains_key("allow"));
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["code"], "METHOD_NOT_ALLOWED", "{body}");
}

async fn put_user(server: &Server, id: &str, secret: &str, body: Value) -> (u16, Value) {
    call(
        server,
        "PUT",
        &format!("/api/rest/user/{id}"),
        Some(secret),
        Some(body),
    )
    .await
}

/// One spelling per name and email: a name can't shadow an email (`@`),
/// differ only in case, normalization or invisible characters; logins find
/// the account in any case; a query that isn't UTF-8 is a 400.
#[tokio::test]
async fn names_and_emails_have_one_spelling() {
    let dirs = Dirs::new();
    let server = root_server(&dirs);
    let signup = |name: &str, email: Option<&str>| {
        let mut body = json!({"name": name, "password": "password-123"});
        if let Some(email) = email {
            body["email"] = json!(email);
        }
        call(&server, "POST", "/api/rest/signup/session", None, Some(body))
    };
    let (status, body) = signup("victim@corp.com", None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "INVALID_PARAMETER");
    assert!(body["message"].as_str().unwrap().contains("'@'"), "{body}");

    let (status, victim) = signup("Victim", Some("Victim@Corp.com")).await;
    assert_eq!(status, 200, "{victim}");
    let victim_id = victim["session"]["user"]["id"].as_str().unwrap().to_owned();
    for twin in ["victim", "VICTIM", "\u{ff36}ictim"] {
        let (status, body) = signup(twin, None).await;
        assert_eq!(status, 409, "{twin}: {body}");
        assert_eq!(body["code"], "DUPLICATE");
    }
    let (status, body) = signup("other", Some("VICTIM@corp.COM")).await;
    assert_eq!(status, 409, "{body}");
    // `root` can't be registered again in another case either.
    let (status, _) = signup("ROOT", None).await;
    assert_eq!(status, 409);
    for login_as in ["Victim", "victim", "VICTIM", "victim@corp.com", "VICTIM@CORP.COM"] {
        let (status, body) = login(&server, login_as, "password-123").await;
        assert_eq!(status, 200, "{login_as}: {body}");
        assert_eq!(
            body["session"]["user"]["id"],
            json!(victim_id),
            "{login_as}: {body}"
        );
    }

    // NFD and NFC "José": one name, stored in NFC.
    let (status, jose) = signup("Jose\u{301}", None).await;
    assert_eq!(status, 200, "{jose}");
    assert_eq!(jose["session"]["user"]["name"], "Jos\u{e9}");
    let (status, _) = signup("jos\u{e9}", None).await;
    assert_eq!(status, 409);
    let jose_secret = secret(&jose);
    let jose_id = jose["session"]["user"]["id"].as_str().unwrap().to_owned();

    for bad in [
        "ad\u{202e}nimda",
        "ad\u{200b}min",
        "\u{feff}admin",
        "ad\u{2066}min\u{2069}",
        "\u{3164}",
        "ana silva",
        "",
    ] {
        let (status, body) = signup(bad, None).await;
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert_eq!(body["code"], "INVALID_PARAMETER", "{body}");
    }
    let (status, body) = signup(&"\u{e9}".repeat(50_000), None).await;
    assert_eq!(status, 400, "{body}");

    // Renaming follows the same rules.
    let rename = |name: &str| put_user(&server, &jose_id, &jose_secret, json!({"name": name}));
    let (status, body) = rename("VICTIM").await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = rename("x@y.example").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = rename("JOSE\u{301}").await;
    assert_eq!(status, 200, "its own name in another case: {body}");
    assert_eq!(body["name"], "JOS\u{c9}");

    // A search finds names in any case; a query that isn't UTF-8 is refused.
    let (_, root) = login(&server, "root", ROOT_PASSWORD).await;
    let root = secret(&root);
    let (status, found) = call(&server, "GET", "/api/rest/user?search=VIC", Some(&root), None).await;
    assert_eq!(status, 200, "{found}");
    assert!(found.to_string().contains(&victim_id), "{found}");
    let (status, body) = call(&server, "GET", "/api/rest/user?search=%FF%FE", Some(&root), None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "BAD_REQUEST", "{body}");
}
