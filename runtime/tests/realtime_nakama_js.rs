//! The real Nakama JavaScript socket (`@heroiclabs/nakama-js` from npm,
//! installed by `cargo xtask test`, on Node's built-in WebSocket) against
//! the server: status follows, a room with presence events, messages,
//! edits and history, a relayed match, socket RPC, and notifications
//! stored for an offline player and pushed to an online one (through the
//! admin route), and a match the turn-relay example Element runs, whose
//! notification it pushes.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;
use support::accounts::{ROOT_ENV, root_secret};
use support::{Dirs, Server, nakama_js};

#[tokio::test]
async fn nakama_js_socket_chat_status_match_rpc_and_notifications() {
    let Some(module) = nakama_js() else {
        assert!(
            std::env::var("CI").is_err(),
            "@heroiclabs/nakama-js is not installed: `cargo xtask test` installs it"
        );
        eprintln!("skipping: @heroiclabs/nakama-js is not installed (`cargo xtask test` installs it)");
        return;
    };
    let dirs = Dirs::new();
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/turn-relay/element.toml"
    ))
    .unwrap();
    dirs.deploy("turn-relay", "turn-relay", &manifest);
    let server = Server::start_with(&dirs, &[], ROOT_ENV, None);
    let secret = root_secret(&server).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/nakama-js/socket.cjs");
    let (addr, admin) = (server.addr.clone(), server.admin_addr.clone());
    let output = tokio::task::spawn_blocking(move || {
        // Node 20 has a global WebSocket only behind this flag (22 has it
        // always; the flag is still accepted there).
        Command::new("node")
            .arg("--experimental-websocket")
            .arg(script)
            .arg(addr)
            .env("NAKAMA_JS", module)
            .env("ADMIN_ADDR", admin)
            .env("ROOT_SECRET", secret)
            .output()
            .expect("run node")
    })
    .await
    .expect("node task");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node failed:\n{stdout}\n{stderr}\n{}",
        server.log()
    );
    let line = stdout.lines().last().unwrap_or_default();
    let got: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));

    assert_eq!(got["follow_presences"], json!(["rt_bob"]), "{got}");
    assert_eq!(got["status_join"], json!([["rt_bob", "playing"]]), "{got}");
    assert_eq!(got["channel_id"], "2...lobby", "{got}");
    assert_eq!(got["same_channel"], true, "{got}");
    assert_eq!(got["bob_sees_in_room"], json!(["rt_alice"]), "{got}");
    assert_eq!(got["alice_sees_join"], json!(["rt_bob"]), "{got}");
    assert_eq!(got["ack_username"], "rt_alice", "{got}");
    assert_eq!(got["bob_got"], json!(["rt_alice", true, "hello"]), "{got}");
    assert_eq!(got["alice_got"], "rt_bob", "{got}");
    assert_eq!(got["edit_seen"], json!([true, "hello!"]), "{got}");
    assert_eq!(got["edit_others"], 3, "{got}");
    assert_eq!(
        got["history"],
        json!([["rt_alice", "hello!"], ["rt_bob", "hi alice"]]),
        "{got}"
    );
    assert_eq!(got["alice_sees_leave"], json!(["rt_bob"]), "{got}");
    assert_eq!(got["match_id_form"], true, "{got}");
    assert_eq!(got["match_created"], json!([false, 1, "rt_alice"]), "{got}");
    assert_eq!(got["bob_match"], json!([2, ["rt_alice"]]), "{got}");
    assert_eq!(got["match_join_event"], true, "{got}");
    assert_eq!(got["bob_match_data"], json!(["move e2e4", "rt_alice"]), "{got}");
    assert_eq!(got["alice_match_data"], json!([1, 2, 3]), "{got}");
    assert_eq!(got["bob_got_own"], false, "{got}");
    assert_eq!(got["match_leave_event"], json!(["rt_bob"]), "{got}");
    assert_eq!(got["join_unknown_match"], 4, "{got}");
    assert_eq!(got["rpc"], json!([6, "RPC function not found"]), "{got}");
    assert_eq!(got["relay_match"], true, "{got}");
    assert_eq!(got["relay_refused"], true, "{got}");
    assert_eq!(got["relay_move"], "e2e4", "{got}");
    assert_eq!(
        got["relay_notification"],
        json!(["Your turn", true, false]),
        "{got}"
    );
    assert_eq!(got["alice_got_own_move"], false, "{got}");
    assert_eq!(
        got["offline_listed"],
        json!([["while you were away", 1, true]]),
        "{got}"
    );
    assert_eq!(got["after_delete"], 0, "{got}");
    assert_eq!(got["pushed"], json!(["live", 2]), "{got}");
    assert_eq!(got["status_leave"], json!(["rt_bob"]), "{got}");
}
