//! The bundled Roblox Kit Element over HTTP against the real binary, with a
//! stub of the Roblox users and thumbnails APIs on loopback (never the
//! internet).

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::roblox::{
    self, AVATAR_FAILING, AVATAR_GARBAGE, AVATAR_PENDING, BANNED, FAILING, GARBAGE, PLAYER, UNKNOWN,
};
use support::{Dirs, Server, raw_request, root_secret};

const SECRET: &str = "roblox-shared-secret-0123456789";
const AUTH: &str = "/app/rest/roblox/auth";
const EXPIRY_SECS: u64 = 3600;

async fn auth(server: &Server, secret: Option<&str>, body: &str) -> (u16, Value) {
    auth_at(server, AUTH, secret, body).await
}

async fn auth_at(server: &Server, path: &str, secret: Option<&str>, body: &str) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = secret.map(|s| ("RobloxKit-Secret", s)).into_iter().collect();
    raw_request(server, "POST", path, &headers, Some(body)).await
}

fn login_body(application: &str, id: impl std::fmt::Display, as_string: bool) -> String {
    if as_string {
        json!({"application": application, "robloxUserId": id.to_string()}).to_string()
    } else {
        format!(r#"{{"application": "{application}", "robloxUserId": {id}}}"#)
    }
}

async fn create_application(server: &Server, root: &str, name: &str) -> Value {
    let bearer = format!("Bearer {root}");
    let (status, app) = raw_request(
        server,
        "POST",
        "/api/rest/application",
        &[("authorization", &bearer)],
        Some(&json!({"name": name}).to_string()),
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {app}");
    app
}

/// The profiles of `user` in `application`, through the core API's search.
async fn profiles(server: &Server, root: &str, query: &str) -> Value {
    let bearer = format!("Bearer {root}");
    let (status, page) = raw_request(
        server,
        "GET",
        &format!("/api/rest/profile?{query}"),
        &[("authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page
}

/// A server with the Kit deployed against the stub on `port`.
fn start(dirs: &Dirs, port: u16) -> Server {
    let api = format!("http://127.0.0.1:{port}/v1");
    let stub = format!("http.outbound:127.0.0.1:{port}");
    let expiry = EXPIRY_SECS.to_string();
    // The operator approves the stub's address for the Kit, beside its own grants.
    let grants = [support::ROBLOX_KIT_GRANTS, &[stub.as_str()]].concat();
    dirs.config(&support::grants_section("roblox-kit", &grants));
    dirs.deploy_bundled(
        "roblox-kit",
        "roblox-kit",
        &[
            ("dev.getelements.robloxkit.secret", SECRET),
            ("dev.getelements.robloxkit.roblox.users.api.url", &api),
            ("dev.getelements.robloxkit.roblox.thumbnails.api.url", &api),
            ("dev.getelements.robloxkit.session.expiry.seconds", &expiry),
        ],
    );
    Server::start_with(dirs, &[], support::ROOT_ENV, None)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A server with the Kit against a fresh stub, `root`'s session and the
/// application `my_game`, which most scenarios log players in to.
struct Kit {
    server: Server,
    root: String,
    app: Value,
    _dirs: Dirs,
}

async fn kit_with_my_game() -> Kit {
    let port = roblox::start().await;
    let dirs = Dirs::new();
    let server = start(&dirs, port);
    let root = root_secret(&server).await;
    let app = create_application(&server, &root, "my_game").await;
    Kit {
        server,
        root,
        app,
        _dirs: dirs,
    }
}

/// The first login of [`PLAYER`] to `my_game`, with a numeric id, which
/// must succeed: the Kit's answer.
async fn first_login(kit: &Kit) -> Value {
    let (status, first) = auth(&kit.server, Some(SECRET), &login_body("my_game", PLAYER, false)).await;
    assert_eq!(status, 200, "the first login: {first}");
    first
}

fn assert_secret_not_logged(server: &Server) {
    assert!(!server.log().contains(SECRET), "the secret must not be logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_wrong_or_partial_secret_is_refused() {
    let kit = kit_with_my_game().await;
    let server = &kit.server;
    let body = login_body("my_game", PLAYER, false);
    let (status, err) = auth(server, None, &body).await;
    assert_eq!((status, &err["code"]), (401, &json!("UNAUTHORIZED")), "{err}");
    let (status, err) = auth(server, Some("wrong-secret"), &body).await;
    assert_eq!((status, &err["code"]), (403, &json!("FORBIDDEN")), "{err}");
    let (status, _) = auth(server, Some(&SECRET[..SECRET.len() - 1]), &body).await;
    assert_eq!(status, 403, "a prefix of the secret is not the secret");
    assert_secret_not_logged(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_login_bodies_get_400_with_a_message() {
    let kit = kit_with_my_game().await;
    for bad in [
        "not json",
        "{}",
        r#"{"application": "my_game"}"#,
        r#"{"robloxUserId": 1001}"#,
        r#"{"application": "my_game", "robloxUserId": "12ab"}"#,
        r#"{"application": "my_game", "robloxUserId": -3}"#,
        r#"{"application": "my_game", "robloxUserId": 1.5}"#,
        r#"{"application": "my_game", "robloxUserId": null}"#,
        r#"{"application": 7, "robloxUserId": 1001}"#,
    ] {
        let (status, err) = auth(&kit.server, Some(SECRET), bad).await;
        assert_eq!(
            (status, &err["code"]),
            (400, &json!("BAD_REQUEST")),
            "{bad}: {err}"
        );
        assert!(err["message"].is_string(), "{err}");
    }
    assert_secret_not_logged(&kit.server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_application_or_player_gets_404() {
    let kit = kit_with_my_game().await;
    let (status, err) = auth(
        &kit.server,
        Some(SECRET),
        &login_body("no_such_game", PLAYER, false),
    )
    .await;
    assert_eq!(status, 404, "unknown application: {err}");
    let (status, err) = auth(&kit.server, Some(SECRET), &login_body("my_game", UNKNOWN, false)).await;
    assert_eq!(status, 404, "unknown player: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_banned_on_roblox_gets_403() {
    let kit = kit_with_my_game().await;
    let (status, err) = auth(&kit.server, Some(SECRET), &login_body("my_game", BANNED, true)).await;
    assert_eq!((status, &err["code"]), (403, &json!("FORBIDDEN")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_garbled_roblox_answer_is_a_502_naming_roblox() {
    let kit = kit_with_my_game().await;
    for broken in [FAILING, GARBAGE] {
        let (status, err) = auth(&kit.server, Some(SECRET), &login_body("my_game", broken, false)).await;
        assert_eq!(status, 502, "{broken}: {err}");
        assert!(err["message"].as_str().unwrap().contains("Roblox"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_login_makes_a_user_a_profile_and_a_session_named_after_the_player() {
    let kit = kit_with_my_game().await;
    let before = now_ms();
    let first = first_login(&kit).await;
    let (user, profile, session) = (&first["user"], &first["profile"], &first["session"]);
    assert_eq!(
        user["name"], "builderman_x",
        "named after the Roblox player: {user}"
    );
    assert_eq!(profile["userId"], user["id"]);
    assert_eq!(profile["applicationId"], kit.app["id"]);
    assert_eq!(profile["displayName"], "Builder X");
    assert_eq!(profile["metadata"]["robloxProfile"], roblox::user_json(PLAYER));
    assert_eq!(
        profile["imageUrl"],
        roblox::avatar_url(PLAYER),
        "the avatar headshot: {profile}"
    );
    assert!(
        session["sessionSecret"].is_string(),
        "a session secret: {session}"
    );
    assert_eq!(session["session"]["user"]["id"], user["id"]);
    assert_eq!(session["session"]["profile"]["id"], profile["id"]);
    assert_eq!(session["session"]["application"]["name"], "my_game");
    let expiry = session["session"]["expiry"].as_i64().unwrap();
    let expected = before + EXPIRY_SECS as i64 * 1000;
    assert!(
        (expected - 5_000..expected + 60_000).contains(&expiry),
        "expiry {expiry} is not about {EXPIRY_SECS} s away"
    );
    assert_secret_not_logged(&kit.server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kits_session_works_on_the_core_api() {
    let kit = kit_with_my_game().await;
    let first = first_login(&kit).await;
    let secret = first["session"]["sessionSecret"]
        .as_str()
        .expect("a session secret");
    let bearer = format!("Bearer {secret}");
    let (status, me) = raw_request(
        &kit.server,
        "GET",
        "/api/rest/user/me",
        &[("authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!((status, &me["id"]), (200, &first["user"]["id"]), "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_players_profile_is_found_by_the_core_apis_profile_search() {
    let kit = kit_with_my_game().await;
    let first = first_login(&kit).await;
    let user_id = first["user"]["id"].as_str().unwrap();
    let page = profiles(
        &kit.server,
        &kit.root,
        &format!("user={user_id}&application=my_game"),
    )
    .await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["objects"][0]["id"], first["profile"]["id"]);
    assert_eq!(
        page["objects"][0]["metadata"]["robloxProfile"]["name"],
        "builderman_x"
    );
}

/// Other metadata survives later logins, which find the same accounts; the
/// id may be a string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_login_finds_the_same_accounts_and_keeps_other_metadata() {
    let kit = kit_with_my_game().await;
    let first = first_login(&kit).await;
    let (user, profile, session) = (&first["user"], &first["profile"], &first["session"]);
    let root_bearer = format!("Bearer {}", kit.root);
    let mut metadata = profile["metadata"].clone();
    metadata["coins"] = json!(5);
    let (status, updated) = raw_request(
        &kit.server,
        "PUT",
        &format!("/api/rest/profile/{}", profile["id"].as_str().unwrap()),
        &[("authorization", &root_bearer)],
        Some(&json!({"metadata": metadata}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    let (status, again) = auth(&kit.server, Some(SECRET), &login_body("my_game", PLAYER, true)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["user"]["id"], user["id"]);
    assert_eq!(again["profile"]["id"], profile["id"]);
    assert_eq!(again["profile"]["metadata"]["coins"], 5, "{again}");
    assert_eq!(
        again["profile"]["metadata"]["robloxProfile"],
        roblox::user_json(PLAYER)
    );
    assert_ne!(again["session"]["sessionSecret"], session["sessionSecret"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_application_is_a_second_profile_of_the_same_user() {
    let kit = kit_with_my_game().await;
    let first = first_login(&kit).await;
    create_application(&kit.server, &kit.root, "other_game").await;
    let (status, other) = auth(
        &kit.server,
        Some(SECRET),
        &login_body("other_game", PLAYER, false),
    )
    .await;
    assert_eq!(status, 200, "{other}");
    assert_eq!(other["user"]["id"], first["user"]["id"]);
    assert_ne!(other["profile"]["id"], first["profile"]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_may_be_named_by_its_id() {
    let kit = kit_with_my_game().await;
    let first = first_login(&kit).await;
    let by_id = login_body(kit.app["id"].as_str().unwrap(), PLAYER, false);
    let (status, same) = auth(&kit.server, Some(SECRET), &by_id).await;
    assert_eq!(
        (status, &same["profile"]["id"]),
        (200, &first["profile"]["id"]),
        "{same}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_logins_make_one_user_and_one_profile() {
    let port = roblox::start().await;
    let dirs = Dirs::new();
    let server = std::sync::Arc::new(start(&dirs, port));
    let root = root_secret(&server).await;
    create_application(&server, &root, "race").await;

    let logins: Vec<_> = (0..20)
        .map(|i| {
            let server = server.clone();
            tokio::spawn(async move {
                let body = login_body("race", 4242, i % 2 == 0);
                auth(&server, Some(SECRET), &body).await
            })
        })
        .collect();
    let (mut users, mut profiles_seen) = (BTreeSet::new(), BTreeSet::new());
    for login in logins {
        let (status, body) = login.await.unwrap();
        assert_eq!(status, 200, "{body}");
        users.insert(body["user"]["id"].as_str().unwrap().to_owned());
        profiles_seen.insert(body["profile"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(profiles_seen.len(), 1, "{profiles_seen:?}");
    let page = profiles(&server, &root, "application=race").await;
    assert_eq!(page["total"], 1, "{page}");
    let bearer = format!("Bearer {root}");
    let (_, found) = raw_request(
        &server,
        "GET",
        "/api/rest/user?search=player_4242",
        &[("authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(found["total"], 1, "{found}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_disallowed_roblox_is_a_502() {
    let dirs = Dirs::new();
    // Roblox down: nothing listens on the port.
    let closed = support::closed_port();
    let mut manifest =
        support::bundled_manifest("roblox-kit").replace("prefix = \"roblox\"", "prefix = \"down\"");
    manifest.push_str(&format!(
        "\n[values]\n\"dev.getelements.robloxkit.secret\" = \"{SECRET}\"\n\
         \"dev.getelements.robloxkit.roblox.users.api.url\" = \"http://127.0.0.1:{closed}/v1\"\n"
    ));
    dirs.deploy("down", "roblox-kit", &manifest);
    let down = format!("http.outbound:127.0.0.1:{closed}");
    // A users API URL whose host the operator did not approve (only the Kit's own grants).
    let port = roblox::start().await;
    let mut manifest =
        support::bundled_manifest("roblox-kit").replace("prefix = \"roblox\"", "prefix = \"denied\"");
    manifest.push_str(&format!(
        "\n[values]\n\"dev.getelements.robloxkit.secret\" = \"{SECRET}\"\n\
         \"dev.getelements.robloxkit.roblox.users.api.url\" = \"http://127.0.0.1:{port}/v1\"\n"
    ));
    dirs.deploy("denied", "roblox-kit", &manifest);
    dirs.config(&format!(
        "{}{}",
        support::grants_section("down", &[support::ROBLOX_KIT_GRANTS, &[down.as_str()]].concat()),
        support::grants_section("denied", support::ROBLOX_KIT_GRANTS)
    ));
    let server = Server::start_with(&dirs, &[], support::ROOT_ENV, None);
    let root = root_secret(&server).await;
    create_application(&server, &root, "my_game").await;

    let body = login_body("my_game", PLAYER, false);
    let (status, err) = auth_at(&server, "/app/rest/down/auth", Some(SECRET), &body).await;
    assert_eq!(
        (status, &err["code"]),
        (502, &json!("ROBLOX_UNAVAILABLE")),
        "{err}"
    );
    let (status, err) = auth_at(&server, "/app/rest/denied/auth", Some(SECRET), &body).await;
    assert_eq!(status, 502, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("no http.outbound grant"),
        "{err}"
    );
}

/// Thumbnails failing, garbled, not ready or unreachable never fail a
/// login: the profile just has no avatar, and the log says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thumbnails_failure_leaves_the_avatar_empty_and_the_login_works() {
    let kit = kit_with_my_game().await;
    for id in [AVATAR_FAILING, AVATAR_GARBAGE, AVATAR_PENDING] {
        let (status, body) = auth(&kit.server, Some(SECRET), &login_body("my_game", id, false)).await;
        assert_eq!(status, 200, "player {id}: {body}");
        assert!(body["session"]["sessionSecret"].is_string(), "{body}");
        assert_eq!(body["profile"]["displayName"], format!("Player {id}"));
        assert!(
            body["profile"].get("imageUrl").is_none(),
            "no avatar for player {id}: {body}"
        );
        assert!(
            kit.server
                .log()
                .contains(&format!("no avatar for Roblox player {id}")),
            "the failure is logged"
        );
    }

    // The thumbnails API unreachable (nothing listens), the users API fine.
    let port = roblox::start().await;
    let closed = support::closed_port();
    let dirs = Dirs::new();
    let (users, thumbnails) = (
        format!("http.outbound:127.0.0.1:{port}"),
        format!("http.outbound:127.0.0.1:{closed}"),
    );
    let grants = [support::ROBLOX_KIT_GRANTS, &[users.as_str(), thumbnails.as_str()]].concat();
    dirs.config(&support::grants_section("roblox-kit", &grants));
    dirs.deploy_bundled(
        "roblox-kit",
        "roblox-kit",
        &[
            ("dev.getelements.robloxkit.secret", SECRET),
            (
                "dev.getelements.robloxkit.roblox.users.api.url",
                &format!("http://127.0.0.1:{port}/v1"),
            ),
            (
                "dev.getelements.robloxkit.roblox.thumbnails.api.url",
                &format!("http://127.0.0.1:{closed}/v1"),
            ),
        ],
    );
    let server = Server::start_with(&dirs, &[], support::ROOT_ENV, None);
    let root = root_secret(&server).await;
    create_application(&server, &root, "my_game").await;
    let (status, body) = auth(&server, Some(SECRET), &login_body("my_game", PLAYER, false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["profile"]["displayName"], "Builder X");
    assert!(body["profile"].get("imageUrl").is_none(), "{body}");
    assert!(
        server
            .log()
            .contains(&format!("no avatar for Roblox player {PLAYER}"))
    );
}

/// Every login refreshes the avatar, like the display name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_avatar_is_refreshed_on_every_login() {
    let kit = kit_with_my_game().await;
    let first = first_login(&kit).await;
    let root_bearer = format!("Bearer {}", kit.root);
    // Someone changed the image; the next login puts the Roblox one back.
    let (status, updated) = raw_request(
        &kit.server,
        "PUT",
        &format!("/api/rest/profile/{}", first["profile"]["id"].as_str().unwrap()),
        &[("authorization", &root_bearer)],
        Some(&json!({"imageUrl": "https://example.test/old.png"}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["imageUrl"], "https://example.test/old.png");
    let (status, again) = auth(&kit.server, Some(SECRET), &login_body("my_game", PLAYER, false)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["profile"]["id"], first["profile"]["id"]);
    assert_eq!(again["profile"]["imageUrl"], roblox::avatar_url(PLAYER));
}

#[tokio::test]
async fn a_missing_secret_fails_the_deploy() {
    let dirs = Dirs::new();
    dirs.deploy_bundled("roblox-kit", "roblox-kit", &[]);
    let server = Server::start(&dirs, &[]);
    server.wait_for_log("Element \"roblox-kit\" refused", Duration::from_secs(10));
    assert!(
        server.log().contains("dev.getelements.robloxkit.secret"),
        "{}",
        server.log()
    );
    let (status, _) = auth(&server, Some(SECRET), &login_body("my_game", PLAYER, false)).await;
    assert_eq!(status, 404, "not deployed, so not mounted");
}

/// A player banned on this server (not on Roblox) is refused with 403.
#[tokio::test]
async fn a_player_banned_here_is_refused() {
    let port = roblox::start().await;
    let dirs = Dirs::new();
    let server = start(&dirs, port);
    let root = root_secret(&server).await;
    create_application(&server, &root, "banned_game").await;
    let (status, body) = auth(&server, Some(SECRET), &login_body("banned_game", PLAYER, false)).await;
    assert_eq!(status, 200, "{body}");
    let user_id = body["user"]["id"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {root}");
    let (status, body) = raw_request(
        &server,
        "PUT",
        &format!("/api/rest/user/{user_id}"),
        &[("Authorization", &bearer)],
        Some(&json!({"banned": true}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = auth(&server, Some(SECRET), &login_body("banned_game", PLAYER, false)).await;
    assert_eq!(status, 403, "{body}");
}
