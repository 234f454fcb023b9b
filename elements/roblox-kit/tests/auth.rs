//! The Roblox Kit in the real runtime (elements-test): identity (users,
//! profiles, sessions) and outbound HTTP answered by stubs of the Roblox
//! APIs, never the internet.

use elements_test::Harness;
use serde_json::json;

const SECRET: &str = "a-long-shared-secret-for-tests";
const USERS: &str = "https://users.roblox.com/v1/users";
const THUMBNAILS: &str = "https://thumbnails.roblox.com/v1/users/avatar-headshot";
const AVATAR: &str = "https://tr.rbxcdn.test/avatar-1001.png";

fn kit() -> Harness {
    Harness::build(env!("CARGO_MANIFEST_DIR"))
        .attribute("dev.getelements.robloxkit.secret", SECRET)
        .stub(
            "GET",
            &format!("{USERS}/1001"),
            200,
            r#"{"id": 1001, "name": "builderman_x", "displayName": "Builder X", "isBanned": false}"#,
        )
        .stub(
            "GET",
            &format!("{USERS}/1002"),
            200,
            r#"{"id": 1002, "name": "banned_one", "displayName": "Banned", "isBanned": true}"#,
        )
        .stub(
            "GET",
            &format!("{USERS}/1004"),
            200,
            r#"{"id": 1004, "name": "no_avatar", "displayName": "No Avatar", "isBanned": false}"#,
        )
        .stub(
            "GET",
            &format!("{THUMBNAILS}?userIds=1001&size=150x150&format=Png"),
            200,
            &json!({"data": [{"targetId": 1001, "state": "Completed", "imageUrl": AVATAR}]}).to_string(),
        )
        .start()
}

#[test]
fn a_player_logs_in_and_the_session_works_on_the_core_api() {
    let kit = kit();
    kit.create_application("my_game");

    let auth = |id: u64| {
        kit.post("/auth")
            .header("RobloxKit-Secret", SECRET)
            .json(&json!({"application": "my_game", "robloxUserId": id}))
            .send()
    };
    let first = auth(1001);
    assert_eq!(first.status(), 200, "{}", first.text());
    let body = first.json();
    assert_eq!(body["user"]["name"], "builderman_x");
    assert_eq!(body["profile"]["displayName"], "Builder X");
    assert_eq!(body["profile"]["imageUrl"], AVATAR);
    let secret = body["session"]["sessionSecret"].as_str().unwrap().to_owned();

    // The same player again: the same user, a new session.
    let again = auth(1001).json();
    assert_eq!(again["user"]["id"], body["user"]["id"]);
    assert_ne!(
        again["session"]["sessionSecret"],
        body["session"]["sessionSecret"]
    );

    let me = kit
        .server_request("GET", "/api/rest/user/me")
        .header("authorization", &format!("Bearer {secret}"))
        .send();
    assert_eq!(me.status(), 200, "{}", me.text());
    assert_eq!(me.json()["id"], body["user"]["id"]);

    // Banned on Roblox: refused; unknown to the stubs (Roblox unreachable): 502.
    assert_eq!(auth(1002).status(), 403);
    let unreachable = auth(1003);
    assert_eq!(unreachable.status(), 502, "{}", unreachable.text());
    // No thumbnail (the stubs have none for 1004): logged, and the login stands.
    let no_avatar = auth(1004);
    assert_eq!(no_avatar.status(), 200, "{}", no_avatar.text());
    assert_eq!(no_avatar.json()["profile"]["imageUrl"], json!(null));
    assert!(kit.logged("no avatar for Roblox player 1004"), "{:?}", kit.logs());
}

#[test]
fn the_secret_is_checked_before_anything_else() {
    let kit = kit();
    let missing = kit.post("/auth").json(&json!({})).send();
    assert_eq!(missing.status(), 401, "{}", missing.text());
    let wrong = kit
        .post("/auth")
        .header("RobloxKit-Secret", "wrong")
        .json(&json!({"application": "my_game", "robloxUserId": 1001}))
        .send();
    assert_eq!(wrong.status(), 403, "{}", wrong.text());
}

#[test]
fn without_the_required_secret_the_deploy_is_refused() {
    let refused = std::panic::catch_unwind(|| Harness::build(env!("CARGO_MANIFEST_DIR")).start());
    let message = refused
        .err()
        .and_then(|p| p.downcast::<String>().ok())
        .expect("the deploy must fail");
    assert!(message.contains("dev.getelements.robloxkit.secret"), "{message}");
}
