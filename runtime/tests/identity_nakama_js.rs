//! The real Nakama JavaScript client (`@heroiclabs/nakama-js` from npm,
//! installed by `cargo xtask test`) against the server: device login,
//! account reads and updates, user lookups, refresh with rotation, a
//! replayed refresh token revoking its family, logout, a username login,
//! refresh vars, a custom id replaced and the account deleted — on SQLite
//! and, in CI, on MongoDB.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{Dirs, Server};

/// Where `cargo xtask test` installs the client (`ELEMENTS_NPM` overrides).
fn nakama_js() -> Option<PathBuf> {
    let root = std::env::var_os("ELEMENTS_NPM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/elements/npm")
        });
    let module = root.join("node_modules/@heroiclabs/nakama-js");
    module.join("package.json").exists().then_some(module)
}

/// Runs `tests/nakama-js/SCRIPT` with node against a fresh server and
/// returns the JSON object it prints; `None` (skip) when the client isn't
/// installed outside CI.
async fn run_script(script: &str) -> Option<serde_json::Value> {
    let Some(module) = nakama_js() else {
        assert!(
            std::env::var("CI").is_err(),
            "@heroiclabs/nakama-js is not installed: `cargo xtask test` installs it"
        );
        eprintln!("skipping: @heroiclabs/nakama-js is not installed (`cargo xtask test` installs it)");
        return None;
    };
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &[]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/nakama-js")
        .join(script);
    let addr = server.addr.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(addr)
            .env("NAKAMA_JS", module)
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
