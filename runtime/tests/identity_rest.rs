//! The Elements-style identity API under `/api/rest`, the bootstrap of the
//! `root` superuser, and the OpenAPI document / Swagger UI, over HTTP against
//! the real binary. Runs on MongoDB when `ELEMENTS_MONGODB_URI` is set.

mod support;

use serde_json::{Value, json};
use support::{
    Dirs, ROOT_PASSWORD, Server, json as body_of, login, request, root_secret, root_server, secret,
};

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

/// A server with `root` and two signed-up users, `ana` (display name "Ana")
/// and `bob`, both with password `password1`: what most scenarios start from.
struct World {
    server: Server,
    _dirs: Dirs,
    root: String,
    ana: String,
    ana_id: String,
    bob: String,
    bob_id: String,
}

fn signup_body(name: &str, email: &str, password: &str) -> Value {
    json!({"name": name, "email": email, "password": password, "displayName": "Ana"})
}

/// Signs up, which must succeed: the session body.
async fn sign_up(server: &Server, body: Value) -> Value {
    let (status, session) = request(server, "POST", "/api/rest/signup/session", None, Some(body)).await;
    assert_eq!(status, 200, "{session}");
    session
}

async fn world() -> World {
    let dirs = Dirs::new();
    let server = root_server(&dirs);
    let root = root_secret(&server).await;
    let ana = sign_up(&server, signup_body("ana", "ana@example.com", "password1")).await;
    let bob = sign_up(&server, signup_body("bob", "bob@example.com", "password1")).await;
    let id = |body: &Value| body["session"]["user"]["id"].as_str().unwrap().to_owned();
    World {
        root,
        ana: secret(&ana),
        ana_id: id(&ana),
        bob: secret(&bob),
        bob_id: id(&bob),
        server,
        _dirs: dirs,
    }
}

#[tokio::test]
async fn signup_normalises_the_email_and_starts_a_user_session() {
    let dirs = Dirs::new();
    let server = root_server(&dirs);
    let ana = sign_up(&server, signup_body("ana", "Ana@Example.com", "password1")).await;
    assert!(!secret(&ana).is_empty());
    assert!(ana["session"]["user"]["id"].as_str().is_some(), "{ana}");
    assert_eq!(ana["session"]["user"]["email"], "ana@example.com");
    assert_eq!(ana["session"]["user"]["level"], "USER");
    assert!(ana["session"]["expiry"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn signup_refuses_a_taken_name_or_email_and_invalid_fields() {
    let dirs = Dirs::new();
    let server = root_server(&dirs);
    sign_up(&server, signup_body("ana", "Ana@Example.com", "password1")).await;
    let signup = |body: Value| request(&server, "POST", "/api/rest/signup/session", None, Some(body));
    let (status, dup) = signup(signup_body("ana", "other@example.com", "password1")).await;
    assert_eq!((status, dup["code"].as_str()), (409, Some("DUPLICATE")), "{dup}");
    let (status, dup) = signup(signup_body("ana2", "ana@example.com", "password1")).await;
    assert_eq!(status, 409, "{dup}");
    let (status, bad) = signup(signup_body("bob", "not-an-email", "password1")).await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("INVALID_PARAMETER")),
        "{bad}"
    );
    assert_eq!(
        signup(signup_body("bob", "bob@example.com", "short")).await.0,
        400
    );
    assert_eq!(
        signup(signup_body("b b", "bob@example.com", "password1")).await.0,
        400
    );
    // None of the refusals took the name or the email.
    let (status, bob) = signup(signup_body("bob", "bob@example.com", "password1")).await;
    assert_eq!(status, 200, "{bob}");
}

#[tokio::test]
async fn login_takes_the_name_or_any_spelling_of_the_email_and_refuses_wrong_or_missing_credentials() {
    let w = world().await;
    let server = &w.server;
    assert_eq!(login(server, "ana", "password1").await.0, 200);
    let (status, by_email) = login(server, "ANA@example.com", "password1").await;
    assert_eq!(
        (status, &by_email["session"]["user"]["id"]),
        (200, &json!(w.ana_id))
    );
    let (status, wrong) = login(server, "ana", "password2").await;
    assert_eq!(
        (status, wrong["code"].as_str()),
        (401, Some("UNAUTHORIZED")),
        "{wrong}"
    );
    assert_eq!(login(server, "nobody", "password1").await.0, 401);
    let missing = request(
        server,
        "POST",
        "/api/rest/session",
        None,
        Some(json!({"userId": "ana"})),
    )
    .await;
    assert_eq!(missing.0, 400);
}

#[tokio::test]
async fn the_session_secret_is_taken_as_bearer_or_header_and_without_it_comes_a_challenge() {
    let w = world().await;
    let server = &w.server;
    let (status, me) = request(server, "GET", "/api/rest/user/me", Some(&w.ana), None).await;
    assert_eq!((status, &me["id"]), (200, &json!(w.ana_id)));
    let response = server
        .client
        .get(server.url("/api/rest/user/me"))
        .header("Elements-SessionSecret", &w.ana)
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
}

#[tokio::test]
async fn a_user_is_read_and_changed_by_themselves_or_a_superuser_but_levels_only_by_superusers() {
    let w = world().await;
    let server = &w.server;
    let ana_path = format!("/api/rest/user/{}", w.ana_id);
    assert_eq!(request(server, "GET", &ana_path, Some(&w.ana), None).await.0, 200);
    let (status, forbidden) = request(server, "GET", &ana_path, Some(&w.bob), None).await;
    assert_eq!((status, forbidden["code"].as_str()), (403, Some("FORBIDDEN")));
    assert_eq!(
        request(server, "GET", &ana_path, Some(&w.root), None).await.0,
        200
    );
    assert_eq!(
        request(server, "GET", "/api/rest/user/nope", Some(&w.root), None)
            .await
            .0,
        404
    );
    let (status, changed) = request(
        server,
        "PUT",
        &ana_path,
        Some(&w.ana),
        Some(json!({"displayName": "Ana S", "metadata": {"a": 1}})),
    )
    .await;
    assert_eq!(
        (status, &changed["displayName"], &changed["metadata"]),
        (200, &json!("Ana S"), &json!({"a": 1}))
    );
    assert_eq!(
        status_of(server, "PUT", &ana_path, &w.ana, json!({"level": "SUPERUSER"})).await,
        403
    );
    assert_eq!(
        status_of(server, "PUT", &ana_path, &w.bob, json!({"displayName": "x"})).await,
        403
    );
    assert_eq!(
        status_of(server, "PUT", &ana_path, &w.ana, json!({"name": "bob"})).await,
        409
    );
    assert_eq!(
        status_of(server, "PUT", &ana_path, &w.ana, json!({"bogus": 1})).await,
        400
    );
    assert!(!server.log().contains(&w.root), "secrets must not be logged");
}

#[tokio::test]
async fn a_new_password_needs_the_current_one_and_works_at_once() {
    let w = world().await;
    let server = &w.server;
    let ana_path = format!("/api/rest/user/{}", w.ana_id);
    let put = |body: Value| request(server, "PUT", &ana_path, Some(&w.ana), Some(body));
    assert_eq!(put(json!({"password": "password9"})).await.0, 400);
    assert_eq!(
        put(json!({"password": "password9", "currentPassword": "password1"}))
            .await
            .0,
        200
    );
    assert_eq!(login(server, "ana", "password9").await.0, 200);
    assert_eq!(login(server, "ana", "password1").await.0, 401);
}

#[tokio::test]
async fn only_superusers_search_users_by_name_and_page() {
    let w = world().await;
    let server = &w.server;
    assert_eq!(
        request(server, "GET", "/api/rest/user", Some(&w.ana), None)
            .await
            .0,
        403
    );
    let (status, all) = request(server, "GET", "/api/rest/user", Some(&w.root), None).await;
    assert_eq!((status, &all["total"]), (200, &json!(3)), "{all}");
    let (_, found) = request(server, "GET", "/api/rest/user?search=bo", Some(&w.root), None).await;
    assert_eq!(found["objects"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found["objects"][0]["name"], "bob");
    let (_, paged) = request(
        server,
        "GET",
        "/api/rest/user?offset=1&count=1",
        Some(&w.root),
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
        request(server, "GET", "/api/rest/user?count=x", Some(&w.root), None)
            .await
            .0,
        400
    );
    assert!(!server.log().contains(&w.root), "secrets must not be logged");
}

#[tokio::test]
async fn a_promoted_superuser_bans_a_user_whose_sessions_end_and_logins_fail_with_403() {
    let w = world().await;
    let server = &w.server;
    let ana_path = format!("/api/rest/user/{}", w.ana_id);
    let (status, promoted) = request(
        server,
        "PUT",
        &ana_path,
        Some(&w.root),
        Some(json!({"level": "SUPERUSER"})),
    )
    .await;
    assert_eq!((status, &promoted["level"]), (200, &json!("SUPERUSER")));
    let bob_path = format!("/api/rest/user/{}", w.bob_id);
    let ban = request(
        server,
        "PUT",
        &bob_path,
        Some(&w.ana),
        Some(json!({"banned": true})),
    )
    .await;
    assert_eq!(ban.0, 200);
    assert_eq!(
        request(server, "GET", "/api/rest/user/me", Some(&w.bob), None)
            .await
            .0,
        401
    );
    assert_eq!(login(server, "bob", "password1").await.0, 403);
    assert!(!server.log().contains(&w.root), "secrets must not be logged");
}

#[tokio::test]
async fn logout_ends_the_session_once() {
    let w = world().await;
    let server = &w.server;
    let session = format!("/api/rest/session/{}", w.ana);
    assert_eq!(request(server, "DELETE", &session, None, None).await.0, 204);
    assert_eq!(
        request(server, "GET", "/api/rest/user/me", Some(&w.ana), None)
            .await
            .0,
        401
    );
    assert_eq!(request(server, "DELETE", &session, None, None).await.0, 404);
}

/// The status of one request with `secret` and a JSON body.
async fn status_of(server: &Server, method: &str, path: &str, secret: &str, body: Value) -> u16 {
    request(server, method, path, Some(secret), Some(body)).await.0
}

/// Creates an application as `root`, which must succeed: its id.
async fn create_application(w: &World, body: Value) -> String {
    let (status, app) = request(
        &w.server,
        "POST",
        "/api/rest/application",
        Some(&w.root),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{app}");
    app["id"].as_str().unwrap().to_owned()
}

/// Ana's session for `application`, which must succeed.
async fn ana_session_for(w: &World, application: &str) -> Value {
    let (status, session) = request(
        &w.server,
        "POST",
        "/api/rest/session",
        None,
        Some(json!({"userId": "ana", "password": "password1", "application": application})),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    session
}

#[tokio::test]
async fn only_superusers_create_applications_with_unique_valid_names() {
    let w = world().await;
    let server = &w.server;
    let create = |secret: Option<String>, body: Value| async move {
        request(
            server,
            "POST",
            "/api/rest/application",
            secret.as_deref(),
            Some(body),
        )
        .await
        .0
    };
    let chess = json!({"name": "chess", "description": "Chess"});
    assert_eq!(create(Some(w.ana.clone()), chess.clone()).await, 403);
    assert_eq!(create(None, chess.clone()).await, 401);
    let (status, app) = request(
        server,
        "POST",
        "/api/rest/application",
        Some(&w.root),
        Some(chess.clone()),
    )
    .await;
    assert_eq!((status, &app["name"]), (201, &json!("chess")), "{app}");
    assert!(app["id"].as_str().is_some(), "{app}");
    assert_eq!(create(Some(w.root.clone()), chess).await, 409);
    assert_eq!(create(Some(w.root.clone()), json!({"name": "no way"})).await, 400);
    assert_eq!(create(Some(w.root.clone()), json!({"name": "go"})).await, 201);
}

#[tokio::test]
async fn superusers_list_read_update_and_delete_applications() {
    let w = world().await;
    let server = &w.server;
    let app_id = create_application(&w, json!({"name": "chess", "description": "Chess"})).await;
    create_application(&w, json!({"name": "go"})).await;
    let (_, list) = request(server, "GET", "/api/rest/application", Some(&w.root), None).await;
    assert_eq!(list["total"], 2);
    assert_eq!(
        request(server, "GET", "/api/rest/application", Some(&w.ana), None)
            .await
            .0,
        403
    );
    let (status, got) = request(server, "GET", "/api/rest/application/chess", Some(&w.root), None).await;
    assert_eq!((status, &got["id"]), (200, &json!(app_id)));
    let (status, renamed) = request(
        server,
        "PUT",
        "/api/rest/application/go",
        Some(&w.root),
        Some(json!({"description": "Go"})),
    )
    .await;
    assert_eq!((status, &renamed["description"]), (200, &json!("Go")));
    assert_eq!(
        request(server, "DELETE", "/api/rest/application/go", Some(&w.root), None)
            .await
            .0,
        204
    );
    assert_eq!(
        request(server, "GET", "/api/rest/application/go", Some(&w.root), None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn a_session_for_an_application_finds_or_creates_the_users_profile() {
    let w = world().await;
    let server = &w.server;
    let app_id = create_application(&w, json!({"name": "chess", "description": "Chess"})).await;
    let session = ana_session_for(&w, "chess").await;
    let profile = session["session"]["profile"].clone();
    assert_eq!(profile["userId"], json!(w.ana_id));
    assert_eq!(session["session"]["application"]["name"], "chess");
    let chess_secret = secret(&session);
    let (status, current) = request(
        server,
        "GET",
        "/api/rest/profile/current",
        Some(&chess_secret),
        None,
    )
    .await;
    assert_eq!((status, &current["id"]), (200, &profile["id"]));
    assert!(current["lastLogin"].as_i64().is_some(), "{current}");
    // A session without an application has no current profile.
    assert_eq!(
        request(server, "GET", "/api/rest/profile/current", Some(&w.ana), None)
            .await
            .0,
        404
    );
    // Again, by the application's id: the same profile.
    let again = ana_session_for(&w, &app_id).await;
    assert_eq!(again["session"]["profile"]["id"], profile["id"]);
    // By profile id; someone else's profile is refused.
    let (status, by_id) = request(
        server,
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
    let (status, _) = request(
        server,
        "POST",
        "/api/rest/session",
        None,
        Some(json!({"userId": "bob", "password": "password1", "profileId": profile["id"]})),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_profile_is_read_changed_and_deleted_by_its_owner_or_a_superuser() {
    let w = world().await;
    let server = &w.server;
    create_application(&w, json!({"name": "chess", "description": "Chess"})).await;
    let session = ana_session_for(&w, "chess").await;
    let profile_path = format!(
        "/api/rest/profile/{}",
        session["session"]["profile"]["id"].as_str().unwrap()
    );
    assert_eq!(
        request(server, "GET", &profile_path, Some(&w.ana), None).await.0,
        200
    );
    assert_eq!(
        request(server, "GET", &profile_path, Some(&w.bob), None).await.0,
        403
    );
    assert_eq!(
        request(server, "GET", &profile_path, Some(&w.root), None).await.0,
        200
    );
    let (status, updated) = request(
        server,
        "PUT",
        &profile_path,
        Some(&w.ana),
        Some(json!({"displayName": "Ana the Bold", "imageUrl": "https://example.com/a.png", "metadata": {"elo": 1200}})),
    )
    .await;
    assert_eq!(
        (status, &updated["displayName"], &updated["metadata"]["elo"]),
        (200, &json!("Ana the Bold"), &json!(1200))
    );
    let bobs_change = request(
        server,
        "PUT",
        &profile_path,
        Some(&w.bob),
        Some(json!({"displayName": "x"})),
    )
    .await;
    assert_eq!(bobs_change.0, 403);
    assert_eq!(
        request(server, "DELETE", &profile_path, Some(&w.bob), None)
            .await
            .0,
        403
    );
    assert_eq!(
        request(server, "DELETE", &profile_path, Some(&w.ana), None)
            .await
            .0,
        204
    );
    assert_eq!(
        request(server, "GET", &profile_path, Some(&w.root), None).await.0,
        404
    );
}

#[tokio::test]
async fn a_user_creates_one_profile_per_application_only_for_themselves_and_lists_only_their_own() {
    let w = world().await;
    let server = &w.server;
    create_application(&w, json!({"name": "chess", "description": "Chess"})).await;
    ana_session_for(&w, "chess").await;
    assert_eq!(
        status_of(
            server,
            "POST",
            "/api/rest/profile",
            &w.ana,
            json!({"application": "chess"})
        )
        .await,
        409
    );
    let (status, bobs) = request(
        server,
        "POST",
        "/api/rest/profile",
        Some(&w.bob),
        Some(json!({"application": "chess", "displayName": "Bob"})),
    )
    .await;
    assert_eq!((status, &bobs["displayName"]), (201, &json!("Bob")), "{bobs}");
    assert_eq!(
        status_of(
            server,
            "POST",
            "/api/rest/profile",
            &w.bob,
            json!({"application": "chess", "userId": w.ana_id})
        )
        .await,
        403
    );
    assert_eq!(
        status_of(
            server,
            "POST",
            "/api/rest/profile",
            &w.bob,
            json!({"application": "nope"})
        )
        .await,
        404
    );
    let (_, mine) = request(server, "GET", "/api/rest/profile", Some(&w.bob), None).await;
    assert_eq!(mine["total"], 1);
    let (_, all) = request(
        server,
        "GET",
        "/api/rest/profile?application=chess",
        Some(&w.root),
        None,
    )
    .await;
    assert_eq!(all["total"], 2);
    let anas = format!("/api/rest/profile?user={}", w.ana_id);
    assert_eq!(request(server, "GET", &anas, Some(&w.bob), None).await.0, 403);
}

#[tokio::test]
async fn openapi_document_and_swagger_ui_are_served() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let (status, doc) = request(&server, "GET", "/api/rest/openapi.json", None, None).await;
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
    // Every reference resolves, and the shapes one name could mix up stay
    // apart: ours (`User`, from elements-wire) and Nakama's (`NakamaUser`).
    let schemas = &doc["components"]["schemas"];
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or(&reference);
        assert!(schemas.get(name).is_some(), "{reference} does not resolve");
    }
    assert!(
        schemas["User"]["properties"].get("name").is_some(),
        "{}",
        schemas["User"]
    );
    assert!(schemas["NakamaUser"]["properties"].get("username").is_some());
    assert_eq!(
        schemas["Account"]["properties"]["user"]["$ref"],
        "#/components/schemas/NakamaUser"
    );
    for name in [
        "Profile",
        "Application",
        "Session",
        "SessionCreation",
        "Identity",
        "UserUpdate",
        "ProfileUpdate",
        "ApplicationUpdate",
        "Level",
    ] {
        assert!(schemas.get(name).is_some(), "schema {name} missing");
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
    let (_, me) = request(&server, "GET", "/api/rest/user/me", Some(&root), None).await;
    let root_id = me["id"].as_str().unwrap().to_owned();
    for change in [json!({"level": "USER"}), json!({"banned": true})] {
        let (status, body) = request(
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
    let (status, body) = request(
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
    let (status, _) = request(&server, "GET", "/api/rest/user/me", Some(&root), None).await;
    assert_eq!(status, 200, "root is still in");
    // With a second superuser, one may step down.
    let (_, created) = request(
        &server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(json!({"name": "ops", "email": "ops@example.test", "password": "password-123"})),
    )
    .await;
    let ops_id = created["session"]["user"]["id"].as_str().unwrap().to_owned();
    let (status, body) = request(
        &server,
        "PUT",
        &format!("/api/rest/user/{ops_id}"),
        Some(&root),
        Some(json!({"level": "SUPERUSER"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = request(
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
    let (_, created) = request(
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
        let (status, body) = request(
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
    let (status, body) = request(
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
    request(
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
        request(&server, "POST", "/api/rest/signup/session", None, Some(body))
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
    let (status, found) = request(&server, "GET", "/api/rest/user?search=VIC", Some(&root), None).await;
    assert_eq!(status, 200, "{found}");
    assert!(found.to_string().contains(&victim_id), "{found}");
    let (status, body) = request(&server, "GET", "/api/rest/user?search=%FF%FE", Some(&root), None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "BAD_REQUEST", "{body}");
}

/// Every `$ref` in `value`.
fn collect_refs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => into.push(r.clone()),
                    _ => collect_refs(v, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, into)),
        _ => {}
    }
}

/// `POST /api/rest/session` with a JSON body: status and body.
async fn session_with(w: &World, body: Value) -> (u16, Value) {
    request(&w.server, "POST", "/api/rest/session", None, Some(body)).await
}

/// Namazu Elements' `applicationNameOrId` and `profileSelector`: the user's
/// profile in an application, or the one a selector picks; never anyone
/// else's, and never a selector this server doesn't understand.
#[tokio::test]
async fn a_session_takes_namazus_application_name_or_id_and_profile_selector() {
    let w = world().await;
    let chess_id = create_application(&w, json!({"name": "chess", "description": "Chess"})).await;
    create_application(&w, json!({"name": "go", "description": "Go"})).await;
    let (status, anas_chess) = request(
        &w.server,
        "POST",
        "/api/rest/profile",
        Some(&w.ana),
        Some(json!({"application": "chess", "displayName": "Ana Chess"})),
    )
    .await;
    assert_eq!(status, 201, "{anas_chess}");
    let anas_go = ana_session_for(&w, "go").await["session"]["profile"].clone();
    let (status, bobs_chess) = request(
        &w.server,
        "POST",
        "/api/rest/profile",
        Some(&w.bob),
        Some(json!({"application": "chess", "displayName": "Bob"})),
    )
    .await;
    assert_eq!(status, 201, "{bobs_chess}");
    let ana = |extra: Value| {
        let mut body = json!({"userId": "ana", "password": "password1"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };

    // applicationNameOrId: by name or id, the user's profile there.
    for app in ["chess", chess_id.as_str()] {
        let (status, s) = session_with(&w, ana(json!({"applicationNameOrId": app}))).await;
        assert_eq!(status, 200, "{s}");
        assert_eq!(s["session"]["profile"]["id"], anas_chess["id"], "{s}");
        assert_eq!(s["session"]["application"]["name"], "chess");
    }
    // An unknown application, or one the user has no profile in: a session
    // without a profile (Namazu's rule), and nothing is created.
    let (status, s) = session_with(&w, ana(json!({"applicationNameOrId": "nope"}))).await;
    assert_eq!(status, 200, "{s}");
    assert!(s["session"]["profile"].is_null(), "{s}");
    assert!(s["sessionSecret"].is_string());
    let bob = json!({"userId": "bob", "password": "password1", "applicationNameOrId": "go"});
    let (status, s) = session_with(&w, bob).await;
    assert_eq!(status, 200, "{s}");
    assert!(s["session"]["profile"].is_null(), "no profile made for bob: {s}");
    let (status, bobs) = request(&w.server, "GET", "/api/rest/profile", Some(&w.bob), None).await;
    assert_eq!(status, 200, "{bobs}");
    assert_eq!(bobs["total"], 1, "bob still has only his chess profile: {bobs}");

    // profileSelector: the documented selectors.
    for (selector, expected) in [
        (".ref.application:chess", &anas_chess),
        (".ref.application:go", &anas_go),
        (&format!(".ref.application:{chess_id}") as &str, &anas_chess),
        (".name.application:go", &anas_go),
        ("displayName:\"Ana Chess\"", &anas_chess),
        (
            ".ref.application:chess AND displayName:\"Ana Chess\"",
            &anas_chess,
        ),
    ] {
        let (status, s) = session_with(&w, ana(json!({"profileSelector": selector}))).await;
        assert_eq!(status, 200, "{selector}: {s}");
        assert_eq!(s["session"]["profile"]["id"], expected["id"], "{selector}: {s}");
    }
    // It wins over applicationNameOrId, and profileId over both.
    let (status, s) = session_with(
        &w,
        ana(json!({"profileSelector": ".ref.application:go", "applicationNameOrId": "chess"})),
    )
    .await;
    assert_eq!((status, &s["session"]["profile"]["id"]), (200, &anas_go["id"]));
    let (status, s) = session_with(
        &w,
        ana(json!({"profileId": anas_chess["id"], "profileSelector": ".ref.application:go"})),
    )
    .await;
    assert_eq!((status, &s["session"]["profile"]["id"]), (200, &anas_chess["id"]));

    // Nothing matches, or only someone else's profile does: 404, never theirs.
    for selector in [
        ".ref.application:go AND displayName:\"Ana Chess\"",
        "displayName:Bob",
        ".ref.application:nope",
    ] {
        let (status, err) = session_with(&w, ana(json!({"profileSelector": selector}))).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (404, Some("NOT_FOUND")),
            "{selector}: {err}"
        );
        assert!(err["message"].is_string(), "{err}");
    }
    // By id, an application's name is not matched as a name.
    let (status, err) = session_with(
        &w,
        ana(json!({"profileSelector": format!(".name.application:{chess_id}")})),
    )
    .await;
    assert_eq!(status, 404, "{err}");

    // Selectors this server doesn't implement, malformed or oversized: 400
    // with a JSON error, before the password is even checked.
    let bobs_user = format!(".ref.user:{}", w.bob_id);
    let oversized = format!("displayName:{}", "x".repeat(600));
    for selector in [
        bobs_user.as_str(),
        "level:SUPERUSER",
        "chess",
        "",
        ".ref.application:chess OR .ref.application:go",
        "displayName:\"unterminated",
        oversized.as_str(),
    ] {
        for password in ["password1", "wrong-password"] {
            let body = json!({"userId": "ana", "password": password, "profileSelector": selector});
            let (status, err) = session_with(&w, body).await;
            assert_eq!(
                (status, err["code"].as_str()),
                (400, Some("INVALID_PARAMETER")),
                "{selector:?}: {err}"
            );
            assert!(
                err["message"].as_str().unwrap().contains("profileSelector"),
                "{err}"
            );
        }
    }
    for bad in [
        json!({"userId": "ana", "password": "password1", "profileSelector": 5}),
        json!({"userId": "ana", "password": "password1", "applicationNameOrId": ["chess"]}),
    ] {
        let (status, err) = session_with(&w, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {err}");
        assert!(err["code"].is_string() && err["message"].is_string(), "{err}");
    }
    // A good selector does not help a wrong password.
    let body = json!({"userId": "ana", "password": "nope-nope", "profileSelector": ".ref.application:chess"});
    assert_eq!(session_with(&w, body).await.0, 401);
}

/// What the Element (misbehave's `/caller`, which answers each case
/// distinctly, and `/me`, which needs a user) makes of the request's
/// credentials: none is anonymous, a good session or token is its user, and
/// anything else is the one invalid-credentials 401, whatever the reason.
#[tokio::test]
async fn an_element_tells_no_credentials_from_invalid_ones_and_answers_401() {
    let dirs = Dirs::new();
    dirs.deploy("misbehave", "misbehave", "");
    let server = root_server(&dirs);
    let ana = sign_up(&server, signup_body("ana", "ana@example.com", "password1")).await;
    let ana_id = ana["session"]["user"]["id"].as_str().unwrap().to_owned();
    let (ana, kept) = (secret(&ana), secret(&login(&server, "ana", "password1").await.1));
    let (status, device) = request(
        &server,
        "POST",
        "/v2/account/authenticate/device?username=dev",
        None,
        Some(json!({"id": "device-credentials-1"})),
    )
    .await;
    assert_eq!(status, 200, "{device}");
    let token = device["token"].as_str().unwrap().to_owned();

    const INVALID: &str = "the session credentials are invalid or expired";
    async fn invalid(server: &Server, credential: &str) {
        for path in ["/app/rest/misbehave/caller", "/app/rest/misbehave/me"] {
            let (status, body) = request(server, "GET", path, Some(credential), None).await;
            assert_eq!(status, 401, "{credential:?} on {path}: {body}");
            assert_eq!(body["message"], INVALID, "{credential:?} on {path}");
            assert_eq!(body["code"], json!(elements_code(401)), "{body}");
        }
    }

    // No credentials: anonymous to `caller`, a 401 of its own to `/me`.
    let (status, body) = request(&server, "GET", "/app/rest/misbehave/caller", None, None).await;
    assert_eq!((status, body), (200, json!({"anonymous": true})));
    let (status, body) = request(&server, "GET", "/app/rest/misbehave/me", None, None).await;
    assert_eq!(status, 401, "{body}");
    assert_ne!(body["message"], INVALID, "no credentials is not invalid ones");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{body}"
    );

    // Good credentials, either kind: the user.
    for credential in [&ana, &token] {
        let (status, body) = request(
            &server,
            "GET",
            "/app/rest/misbehave/caller",
            Some(credential),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let expected = if credential == &ana {
            json!(ana_id)
        } else {
            body["user"].clone()
        };
        assert_eq!(body["user"], expected);
        assert!(body["user"].as_str().is_some_and(|u| !u.is_empty()), "{body}");
        let (status, body) = request(&server, "GET", "/app/rest/misbehave/me", Some(credential), None).await;
        assert_eq!(status, 200, "{body}");
    }
    // The header takes the secret too.
    let (status, body) = support::raw_request(
        &server,
        "GET",
        "/app/rest/misbehave/caller",
        &[("Elements-SessionSecret", kept.as_str())],
        None,
    )
    .await;
    assert_eq!((status, &body["user"]), (200, &json!(ana_id)), "{body}");

    // Forged: made up, a real secret or token altered, a token's shape.
    // Not the last character: in base64 its low bits may be padding.
    let alter = |text: &str| {
        let mut chars: Vec<char> = text.chars().collect();
        let i = chars.len() - 5;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    let (altered, forged_token) = (alter(&ana), alter(&token));
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[2] = "c2lnbmF0dXJl";
    let unsigned = parts.join(".");
    for credential in ["bogus", &altered, &forged_token, &unsigned, "a.b.c"] {
        invalid(&server, credential).await;
    }
    // Revoked: logged out.
    let (status, _) = request(&server, "DELETE", &format!("/api/rest/session/{ana}"), None, None).await;
    assert_eq!(status, 204);
    invalid(&server, &ana).await;
    drop(server);

    // Expired: the same server a day later, both kinds of credential.
    let server = Server::start_with(
        &dirs,
        &[],
        &[
            ("ELEMENTS_ROOT_PASSWORD", ROOT_PASSWORD),
            ("ELEMENTS_CLOCK_OFFSET_SECS", "90000"),
        ],
        None,
    );
    invalid(&server, &kept).await;
    invalid(&server, &token).await;
    let log = server.stop();
    assert!(!log.contains(&kept), "secrets must not be logged");
}

/// A reused instance serves one caller after another: each request sees its
/// own caller, never the one before (the host keeps the Element's state on a
/// warm instance, not the last request's).
#[tokio::test]
async fn a_reused_instance_sees_each_requests_own_caller() {
    let dirs = Dirs::new();
    dirs.deploy(
        "warm",
        "misbehave",
        "[limits]\nisolation = \"reuse\"\nreuse_max_requests = 1000\nmax_concurrency = 1\n",
    );
    let server = root_server(&dirs);
    let ana = sign_up(&server, signup_body("ana", "ana@example.com", "password1")).await;
    let ana_id = ana["session"]["user"]["id"].as_str().unwrap().to_owned();
    let ana = secret(&ana);
    let bob = sign_up(&server, signup_body("bob", "bob@example.com", "password1")).await;
    let bob_id = bob["session"]["user"]["id"].as_str().unwrap().to_owned();
    let bob = secret(&bob);

    let caller = |credential: Option<&str>| {
        let server = &server;
        let credential = credential.map(str::to_owned);
        async move {
            request(
                server,
                "GET",
                "/app/rest/warm/caller",
                credential.as_deref(),
                None,
            )
            .await
        }
    };
    let (_, first) = request(&server, "GET", "/app/rest/warm/counter", None, None).await;
    for _ in 0..2 {
        assert_eq!(caller(Some(&ana)).await, (200, json!({"user": ana_id})));
        assert_eq!(caller(None).await, (200, json!({"anonymous": true})));
        assert_eq!(caller(Some(&bob)).await, (200, json!({"user": bob_id})));
        let (status, body) = caller(Some("bogus")).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(caller(Some(&bob)).await, (200, json!({"user": bob_id})));
        assert_eq!(caller(None).await, (200, json!({"anonymous": true})));
    }
    // All of it on one instance: its counter went on from the first request.
    let (_, last) = request(&server, "GET", "/app/rest/warm/counter", None, None).await;
    assert_eq!(
        last["count"].as_u64(),
        first["count"].as_u64().map(|n| n + 1),
        "{first} then {last}: the requests were not served by one reused instance"
    );
}

/// The code the SDK gives a status, as a client receives it.
fn elements_code(status: u16) -> &'static str {
    match status {
        401 => "UNAUTHORIZED",
        other => panic!("no code for {other}"),
    }
}
