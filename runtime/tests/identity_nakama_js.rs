//! The real Nakama JavaScript client (`@heroiclabs/nakama-js` from npm,
//! installed by `cargo xtask test`) against the server: device login,
//! account reads and updates, user lookups, refresh with rotation, a
//! replayed refresh token revoking its family, logout, a username login,
//! refresh vars, a custom id replaced, the account deleted, and every
//! social and platform login against the provider stubs — on SQLite
//! and, in CI, on MongoDB.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{Dirs, Server, nakama_js};

/// Runs `tests/nakama-js/SCRIPT` with node against a fresh server and
/// returns the JSON object it prints; `None` (skip) when the client isn't
/// installed outside CI.
async fn run_script(script: &str) -> Option<serde_json::Value> {
    run_script_with(script, "", &[]).await
}

/// [`run_script`] on a server with configuration file `config`, and with
/// `env` set for the script.
async fn run_script_with(script: &str, config: &str, env: &[(&str, String)]) -> Option<serde_json::Value> {
    let Some(module) = nakama_js() else {
        assert!(
            std::env::var("CI").is_err(),
            "@heroiclabs/nakama-js is not installed: `cargo xtask test` installs it"
        );
        eprintln!("skipping: @heroiclabs/nakama-js is not installed (`cargo xtask test` installs it)");
        return None;
    };
    let dirs = Dirs::new();
    if !config.is_empty() {
        dirs.config(config);
    }
    let server = Server::start(&dirs, &[]);
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/nakama-js")
        .join(script);
    let addr = server.addr.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(addr)
            .env("NAKAMA_JS", module)
            .envs(env)
            .output()
            .expect("run node")
    })
    .await
    .expect("node task");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "node failed:\n{stdout}\n{stderr}");
    let line = stdout.lines().last().unwrap_or_default();
    Some(serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}")))
}

#[tokio::test]
async fn nakama_js_refreshes_with_rotation_and_logs_out() {
    let Some(got) = run_script("sessions.cjs").await else {
        return;
    };
    assert_eq!(got["username"], "njs_player", "{got}");
    assert_eq!(
        got["rotated"], true,
        "a refresh must issue a new token and refresh token: {got}"
    );
    assert_eq!(got["username_after_refresh"], "njs_player", "{got}");
    assert_eq!(got["replay"], 401, "a spent refresh token must be refused: {got}");
    assert_eq!(
        got["current_after_replay"], 401,
        "the replay must revoke the family: {got}"
    );
    assert_eq!(got["refresh_after_replay"], 401, "{got}");
    assert_eq!(got["account_before_logout"], "njs_player", "{got}");
    assert_eq!(got["logout"], true, "{got}");
    assert_eq!(got["account_after_logout"], 401, "{got}");
    assert_eq!(got["refresh_after_logout"], 401, "{got}");
}

#[tokio::test]
async fn nakama_js_updates_the_account_and_finds_users() {
    let Some(got) = run_script("account.cjs").await else {
        return;
    };
    assert_eq!(got["updated"], true, "{got}");
    assert_eq!(
        got["account"],
        serde_json::json!({
            "username": "njs_ana2", "display_name": "Ana", "avatar_url": "https://cdn.test/ana.png",
            "lang_tag": "pt-BR", "location": "Lisbon", "timezone": "Europe/Lisbon"
        }),
        "{got}"
    );
    assert_eq!(got["found"], serde_json::json!(["njs_ana2", "njs_bea"]), "{got}");
    assert_eq!(got["found_location"], "Lisbon", "{got}");
    assert_eq!(got["taken"], 409, "a taken username must be refused: {got}");
    assert_eq!(got["username_after_refusal"], "njs_ana2", "{got}");
}

#[tokio::test]
async fn nakama_js_logs_in_by_username_refreshes_vars_replaces_the_custom_id_and_deletes_the_account() {
    let Some(got) = run_script("account_lifecycle.cjs").await else {
        return;
    };
    assert_eq!(
        got["username_login"],
        serde_json::json!({"same_user": true, "username": "njs_owner", "created": false, "vars": {"via": "name"}}),
        "{got}"
    );
    assert_eq!(got["username_wrong_password"], 401, "{got}");
    assert_eq!(
        got["username_unknown"], 404,
        "a username login never creates: {got}"
    );
    assert_eq!(
        got["devices"],
        serde_json::json!([{"id": "nakama-js-device-0010"}]),
        "{got}"
    );
    assert_eq!(
        got["vars_after_default_refresh"],
        serde_json::json!({"lang": "pt"}),
        "nakama-js sends vars {{}} by default: kept, as Nakama does: {got}"
    );
    assert_eq!(
        got["vars_after_new_vars"],
        serde_json::json!({"lang": "en"}),
        "{got}"
    );
    assert_eq!(
        (&got["first_link"], &got["second_link"]),
        (&serde_json::json!(true), &serde_json::json!(true))
    );
    assert_eq!(got["custom_id"], "njs-custom-0002", "{got}");
    assert_eq!(got["old_custom_login"], 404, "{got}");
    assert_eq!(got["new_custom_same_user"], true, "{got}");
    assert_eq!(got["custom_taken"], 409, "{got}");
    assert_eq!(got["deleted"], true, "{got}");
    assert_eq!(got["account_after_delete"], 401, "{got}");
    assert_eq!(got["refresh_after_delete"], 401, "{got}");
    assert_eq!(got["delete_again"], 401, "{got}");
    assert_eq!(got["custom_after_delete"], 404, "{got}");
    assert_eq!(
        got["fresh"],
        serde_json::json!({"created": true, "new_user": true, "username": "njs_player2"}),
        "{got}"
    );
    assert_eq!(got["stale_token_unchanged"], true, "{got}");
    assert_eq!(got["owner_still_there"], "njs_owner", "{got}");
}

#[tokio::test]
async fn nakama_js_logs_in_links_and_unlinks_with_every_provider() {
    use serde_json::json;
    use support::providers::{self, Stub};
    let stub = Stub::start().await;
    let url = stub.certificate_url();
    let now = providers::now();
    let token = |t: String| json!({"token": t});
    let apple = |sub: &str| {
        token(providers::id_token(
            "apple-test",
            "https://appleid.apple.com",
            providers::BUNDLE_ID,
            sub,
            json!({}),
        ))
    };
    let google = |sub: &str| {
        token(providers::id_token(
            "google-test",
            "https://accounts.google.com",
            providers::GOOGLE_CLIENT_ID,
            sub,
            json!({}),
        ))
    };
    let instant = |player: &str| json!({"signed_player_info": providers::signed_player_info(providers::INSTANT_GAME_SECRET, player, now)});
    let gc = |player: &str| providers::game_center(player, providers::BUNDLE_ID, now, &url);
    // first/again/last are player 1, link/unlink player 2, stranger player 3;
    // `outage` (player 4) is tried while the provider is down, and
    // `outage_check` (player 4 again) shows it created nothing.
    let set = |field: &str,
               make: &dyn Fn(&str) -> serde_json::Value,
               ids: [&str; 4],
               forged: Vec<serde_json::Value>,
               outage: bool| {
        let mut set = json!({
            "field": field,
            "stranger": make(ids[2]), "first": make(ids[0]), "again": make(ids[0]), "last": make(ids[0]),
            "link": make(ids[1]), "unlink": make(ids[1]), "forged": forged,
        });
        if outage {
            set["outage"] = make(ids[3]);
            set["outage_check"] = make(ids[3]);
        }
        set
    };
    let apple_iss = "https://appleid.apple.com";
    let google_iss = "https://accounts.google.com";
    let expired = |kid: &str, iss: &str, aud: &str| {
        token(providers::jwt(
            json!({"alg": "RS256", "kid": kid}),
            json!({"iss": iss, "aud": aud, "sub": "001.a", "iat": now - 7200, "exp": now - 3600}),
        ))
    };
    let proofs = json!({
        "apple": set("apple_id", &apple, ["001.a", "002.a", "003.a", "004.a"], vec![
            token(providers::id_token("apple-test", apple_iss, "com.other.game", "001.a", json!({}))),
            token(providers::id_token("apple-test", "https://evil.example", providers::BUNDLE_ID, "001.a", json!({}))),
            expired("apple-test", apple_iss, providers::BUNDLE_ID),
            token(providers::id_token("made-up-kid", apple_iss, providers::BUNDLE_ID, "001.a", json!({}))),
        ], true),
        "google": set("google_id", &google, ["101", "102", "103", "104"], vec![
            token(providers::id_token("google-test", "https://evil.example", providers::GOOGLE_CLIENT_ID, "101", json!({}))),
            token(providers::id_token("google-test", google_iss, "other.apps.googleusercontent.com", "101", json!({}))),
            expired("google-test", google_iss, providers::GOOGLE_CLIENT_ID),
        ], true),
        "facebook": set("facebook_id", &|id: &str| token(format!("fb-good-{id}")), ["201", "202", "203", "204"], vec![
            token("fb-other-app-201".into()),
            token("fb-made-up".into()),
            token(providers::id_token("fb-test", "https://www.facebook.com", "999", "201", json!({}))),
        ], true),
        "facebookinstantgame": set("facebook_instant_game_id", &instant, ["301", "302", "303", "304"], vec![
            json!({"signed_player_info": providers::signed_player_info("not-the-secret", "301", now)}),
            json!({"signed_player_info": providers::signed_player_info(providers::INSTANT_GAME_SECRET, "301", now - 7200)}),
        ], false),
        "gamecenter": set("gamecenter_id", &gc, ["G:401", "G:402", "G:403", "G:404"], vec![
            providers::game_center("G:401", providers::BUNDLE_ID, now - 3600, &url),
            providers::game_center("G:401", "com.other.game", now, &url),
            providers::game_center("G:401", providers::BUNDLE_ID, now, &format!("http://127.0.0.2:{}/gc/test.cer", stub.port)),
        ], true),
        "steam": set("steam_id", &|id: &str| token(format!("5eed{id}")),
            ["76561197960287501", "76561197960287502", "76561197960287503", "76561197960287504"], vec![
            token("deadbeef".into()),
            token("not-hex".into()),
        ], true),
    });
    let Some(got) = run_script_with(
        "providers.cjs",
        &stub.config(),
        &[("PROOFS", proofs.to_string()), ("STUB", stub.url(""))],
    )
    .await
    else {
        return;
    };
    let ids = [
        ("apple", "001.a", "002.a"),
        ("google", "101", "102"),
        ("facebook", "201", "202"),
        ("facebookinstantgame", "301", "302"),
        ("gamecenter", "G:401", "G:402"),
        ("steam", "76561197960287501", "76561197960287502"),
    ];
    for (scheme, first, second) in ids {
        let r = &got[scheme];
        assert_eq!(r["stranger"], 404, "{scheme}: create=false for a stranger: {r}");
        assert_eq!(
            (r["created"].as_bool(), r["username"].as_str()),
            (Some(true), Some(format!("njs_{scheme}").as_str())),
            "{scheme}: {r}"
        );
        assert_eq!(r["id"], first, "{scheme}: {r}");
        assert_eq!(
            (r["same_user"].as_bool(), r["again_created"].as_bool()),
            (Some(true), Some(false)),
            "{scheme}: {r}"
        );
        let forged = r["forged"].as_array().unwrap();
        assert!(
            !forged.is_empty() && forged.iter().all(|s| s == 401),
            "{scheme}: every forged or stale proof is 401: {r}"
        );
        assert_eq!(
            (r["linked"].as_bool(), r["linked_id"].as_str()),
            (Some(true), Some(second)),
            "{scheme}: {r}"
        );
        assert_eq!(r["link_forged"], 401, "{scheme}: link with a forged proof: {r}");
        assert_eq!(
            (r["unlinked"].as_bool(), &r["after_unlink"]),
            (Some(true), &serde_json::Value::Null),
            "{scheme}: {r}"
        );
        assert_eq!(
            r["last_identifier"], 403,
            "{scheme}: unlinking the last identifier: {r}"
        );
        assert_eq!(
            (r["refreshed_user"].as_bool(), r["logout"].as_bool()),
            (Some(true), Some(true)),
            "{scheme}: {r}"
        );
        assert_eq!(r["after_logout"], 401, "{scheme}: {r}");
        if scheme != "facebookinstantgame" {
            assert_eq!(
                (&r["outage_auth"], &r["outage_link"]),
                (&json!(502), &json!(502)),
                "{scheme}: outage: {r}"
            );
            assert_eq!(r["outage_unchanged"], true, "{scheme}: {r}");
            assert_eq!(
                r["outage_stranger_after"], 404,
                "{scheme}: the outage created no account: {r}"
            );
        }
    }
}
