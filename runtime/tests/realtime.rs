//! The realtime socket (`/ws`) against bad input and abuse, over a real
//! WebSocket: a bad token, an oversized frame, malformed and unknown
//! envelopes, a flood past the rate limit, a client that never reads (it
//! is disconnected, and the server's memory stays bounded), the per-user
//! socket cap, logout closing the socket, invalid channel names; and the
//! HTTP routes over the same hub (history, notifications, RPC).

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use support::client::request;
use support::socket::{Ws, b64, connect, device_account, send, ws_url};
use support::{Dirs, Server};

/// The HTTP status an upgrade was refused with.
async fn refused(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("not an HTTP refusal: {e}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

/// The next text envelope (skipping control frames), within 5 s.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an envelope within 5 s")
            .expect("the socket is open")
            .expect("a frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// The next envelope with `field`, skipping others.
async fn next_with(ws: &mut Ws, field: &str) -> Value {
    loop {
        let envelope = next(ws).await;
        if envelope.get(field).is_some() {
            return envelope;
        }
    }
}

/// The close frame the server sends, within `within`.
async fn closed(ws: &mut Ws, within: Duration) -> (CloseCode, String) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("closed in time");
        match frame {
            Some(Ok(Message::Close(Some(frame)))) => return (frame.code, frame.reason.to_string()),
            Some(Ok(Message::Close(None))) | None => panic!("closed without a reason"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error before a close frame: {e}"),
        }
    }
}

fn server_with(config: &str) -> (Server, Dirs) {
    let dirs = Dirs::new();
    dirs.config(config);
    let server = Server::start(&dirs, &[]);
    (server, dirs)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_bad_or_missing_token_is_refused_with_401() {
    let (server, _dirs) = server_with("");
    assert_eq!(
        refused(&format!("ws://{}/ws?format=json", server.addr)).await,
        401
    );
    assert_eq!(refused(&ws_url(&server, "not-a-token")).await, 401);
    let (token, _) = device_account(&server, "device-ws-token-1").await;
    // A token with one character changed is not the token.
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        refused(&ws_url(&server, &String::from_utf8(forged).unwrap())).await,
        401
    );
    assert_eq!(
        refused(&format!("ws://{}/ws?token={token}&format=protobuf", server.addr)).await,
        400
    );
    // The real token connects and is answered.
    let mut ws = connect(&server, &token).await;
    send(&mut ws, json!({"cid": "1", "ping": {}})).await;
    assert_eq!(next(&mut ws).await, json!({"cid": "1", "pong": {}}));
}

#[tokio::test]
async fn malformed_and_unknown_envelopes_get_nakamas_error_envelope_and_the_socket_stays() {
    let (server, _dirs) = server_with("");
    let (token, _) = device_account(&server, "device-ws-bad-1").await;
    let mut ws = connect(&server, &token).await;
    ws.send(Message::text("{not json")).await.unwrap();
    let e = next(&mut ws).await;
    assert_eq!(e["error"]["code"], 1, "{e}");
    assert!(e.get("cid").is_none(), "{e}");
    send(&mut ws, json!({"cid": "2", "teleport": {"to": "mars"}})).await;
    let e = next(&mut ws).await;
    assert_eq!(
        (e["cid"].clone(), e["error"]["code"].clone()),
        (json!("2"), json!(1)),
        "{e}"
    );
    assert_eq!(e["error"]["message"], "Unrecognized message.");
    send(&mut ws, json!({"cid": "3"})).await;
    let e = next(&mut ws).await;
    assert_eq!(
        (e["cid"].clone(), e["error"]["code"].clone()),
        (json!("3"), json!(2)),
        "{e}"
    );
    send(
        &mut ws,
        json!({"cid": "4", "channel_join": {"target": 5, "type": 1}}),
    )
    .await;
    let e = next(&mut ws).await;
    assert_eq!(
        (e["cid"].clone(), e["error"]["code"].clone()),
        (json!("4"), json!(3)),
        "{e}"
    );
    send(
        &mut ws,
        json!({"cid": "5", "party_create": {"open": true, "max_size": 2}}),
    )
    .await;
    let e = next(&mut ws).await;
    assert_eq!(
        (e["cid"].clone(), e["error"]["code"].clone()),
        (json!("5"), json!(1)),
        "{e}"
    );
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let e = next(&mut ws).await;
    assert_eq!(e["error"]["code"], 1, "{e}");
    // No RPC is served yet: Nakama's RUNTIME_FUNCTION_NOT_FOUND (6).
    send(
        &mut ws,
        json!({"cid": "6", "rpc": {"id": "anything", "payload": "{}"}}),
    )
    .await;
    let e = next(&mut ws).await;
    assert_eq!(
        e,
        json!({"cid": "6", "error": {"code": 6, "message": "RPC function not found", "context": {}}})
    );
    // A match that doesn't exist: MATCH_NOT_FOUND (4).
    send(
        &mut ws,
        json!({"cid": "7", "match_join": {"match_id": "00000000-0000-0000-0000-000000000000.x"}}),
    )
    .await;
    let e = next(&mut ws).await;
    assert_eq!(
        (e["cid"].clone(), e["error"]["code"].clone()),
        (json!("7"), json!(4)),
        "{e}"
    );
    // Still served.
    send(&mut ws, json!({"cid": "8", "ping": {}})).await;
    assert_eq!(next(&mut ws).await, json!({"cid": "8", "pong": {}}));
}

#[tokio::test]
async fn invalid_channel_names_and_group_channels_are_refused() {
    let (server, _dirs) = server_with("[realtime]\nmax_channel_name_bytes = 16\n");
    let (token, user_id) = device_account(&server, "device-ws-names-1").await;
    let mut ws = connect(&server, &token).await;
    let long = "x".repeat(17);
    let bad = [
        json!({"target": "", "type": 1}),
        json!({"target": long, "type": 1}),
        json!({"target": "a/b", "type": 1}),
        json!({"target": "tab\there", "type": 1}),
        json!({"target": "bidi\u{202e}x", "type": 1}),
        json!({"target": "some-group", "type": 3}),
        json!({"target": "not-a-user-id", "type": 2}),
        json!({"target": user_id, "type": 2}),
        json!({"target": "lobby", "type": 9}),
    ];
    for (i, join) in bad.iter().enumerate() {
        let cid = format!("c{i}");
        send(&mut ws, json!({"cid": cid, "channel_join": join})).await;
        let e = next(&mut ws).await;
        assert_eq!(e["cid"], json!(cid), "{join}: {e}");
        assert_eq!(e["error"]["code"], 3, "{join}: {e}");
    }
    send(
        &mut ws,
        json!({"cid": "ok", "channel_join": {"target": "x".repeat(16), "type": 1}}),
    )
    .await;
    let ok = next(&mut ws).await;
    assert_eq!(ok["channel"]["id"], format!("2...{}", "x".repeat(16)), "{ok}");
    // History of a malformed channel id is a 400, not a 500.
    let (status, body) = request(&server, "GET", "/v2/channel/3.x..", Some(&token), None).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn an_oversized_message_closes_the_socket_with_1009() {
    let (server, _dirs) = server_with("[realtime]\nmax_message_bytes = 1024\n");
    let (token, _) = device_account(&server, "device-ws-big-1").await;
    let mut ws = connect(&server, &token).await;
    // At the cap: served (an error for its content, not a close).
    let padding = "p".repeat(1024 - r#"{"cid":"1","ping":{"p":""}}"#.len());
    let at_cap = format!(r#"{{"cid":"1","ping":{{"p":"{padding}"}}}}"#);
    assert_eq!(at_cap.len(), 1024);
    ws.send(Message::text(at_cap)).await.unwrap();
    assert_eq!(next(&mut ws).await, json!({"cid": "1", "pong": {}}));
    ws.send(Message::text(format!(
        r#"{{"cid":"2","ping":{{"p":"{}"}}}}"#,
        "p".repeat(2000)
    )))
    .await
    .unwrap();
    let (code, reason) = closed(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(code, CloseCode::Size, "{reason}");
    assert!(reason.contains("1024"), "{reason}");
}

#[tokio::test]
async fn a_flood_past_the_rate_limit_is_refused_message_by_message() {
    let (server, _dirs) = server_with("[realtime]\nmessages_per_sec = 5\nmessage_burst = 5\n");
    let (token, _) = device_account(&server, "device-ws-flood-1").await;
    let mut ws = connect(&server, &token).await;
    for i in 0..40 {
        send(&mut ws, json!({"cid": i.to_string(), "ping": {}})).await;
    }
    let (mut pongs, mut limited) = (0, 0);
    for i in 0..40 {
        let e = next(&mut ws).await;
        // Refused or served, each answer carries its request's cid, in order.
        assert_eq!(e["cid"], i.to_string(), "{e}");
        if e.get("pong").is_some() {
            pongs += 1;
        } else {
            assert!(
                e["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Rate limit")),
                "{e}"
            );
            limited += 1;
        }
    }
    // The burst, and what the rate refilled while the 40 went out.
    assert!((5..=10).contains(&pongs), "{pongs} served");
    assert_eq!(pongs + limited, 40);
    // A second later the socket is served again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send(&mut ws, json!({"cid": "after", "ping": {}})).await;
    assert_eq!(next(&mut ws).await, json!({"cid": "after", "pong": {}}));
}

// Two threads: the sender's reader keeps up while the test writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected_and_the_server_stays_bounded() {
    let (server, _dirs) = server_with(
        "[realtime]\nsend_queue = 16\nmessages_per_sec = 1000000\nmessage_burst = 1000000\nmax_message_bytes = 16384\n",
    );
    let (sender_token, _) = device_account(&server, "device-ws-slow-1").await;
    let (reader_token, _) = device_account(&server, "device-ws-slow-2").await;
    let mut sender = connect(&server, &sender_token).await;
    let mut sleeper = connect(&server, &reader_token).await;
    let join = json!({"cid": "j", "channel_join": {"target": "flood", "type": 1, "persistence": false, "hidden": false}});
    send(&mut sleeper, join.clone()).await;
    let sleeper_session = next_with(&mut sleeper, "channel").await["channel"]["self"]["session_id"].clone();
    send(&mut sender, join).await;
    let channel = next_with(&mut sender, "channel").await;
    let channel_id = channel["channel"]["id"].as_str().unwrap().to_owned();
    // From here the sleeper reads nothing.
    let before = rss_kib(server.pid());
    let (mut write, mut read) = sender.split();
    // The sender reads everything (its acks and echoes), watching for the
    // sleeper's leave.
    let watcher = tokio::spawn(async move {
        let mut left = false;
        while let Some(frame) = read.next().await {
            match frame {
                Ok(Message::Text(text)) => {
                    let e: Value = serde_json::from_str(&text).unwrap();
                    if let Some(event) = e.get("channel_presence_event")
                        && event["leaves"][0]["session_id"] == sleeper_session
                    {
                        left = true;
                    }
                }
                Ok(Message::Close(frame)) => return (left, format!("closed: {frame:?}")),
                Ok(_) => {}
                Err(e) => return (left, format!("error: {e}")),
            }
        }
        (left, "end".to_owned())
    });
    let content = json!({ "blob": "b".repeat(8000) }).to_string();
    let mut sent = 0u64;
    // 60 MB of fan-out to the sleeper.
    while sent < 7500 {
        let envelope = json!({"channel_message_send": {"channel_id": channel_id, "content": content}});
        if let Err(e) = write.send(Message::text(envelope.to_string())).await {
            panic!("the sender was cut after {sent} messages: {e}\n{}", server.log());
        }
        sent += 1;
    }
    // The sender ends its side; its reader sees everything before.
    write.send(Message::Close(None)).await.unwrap();
    let (left, end) = tokio::time::timeout(Duration::from_secs(30), watcher)
        .await
        .expect("the sender's reader ends in time")
        .unwrap();
    assert!(left, "the sleeper's leave was seen ({end})");
    let after = rss_kib(server.pid());
    let sent_kib = sent * 8;
    // What the sleeper was sent went to neither its queue nor the heap: the
    // server grew by far less than what the sleeper didn't read.
    assert!(
        after.saturating_sub(before) < 32 * 1024,
        "the server grew from {before} KiB to {after} KiB after {sent} messages ({sent_kib} KiB) to a client that doesn't read"
    );
    drop(sleeper);
}

/// Whether a socket with `token` is accepted within `within` (a closed
/// socket's place is freed once the server sees it close).
async fn connects_within(server: &Server, token: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if tokio_tungstenite::connect_async(ws_url(server, token))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn sockets_per_user_are_capped() {
    let (server, _dirs) = server_with("[realtime]\nmax_sockets_per_user = 2\n");
    let (token, _) = device_account(&server, "device-ws-cap-1").await;
    let first = connect(&server, &token).await;
    let _second = connect(&server, &token).await;
    assert_eq!(refused(&ws_url(&server, &token)).await, 429);
    // Another user is not counted against this one.
    let (other, _) = device_account(&server, "device-ws-cap-2").await;
    let _third = connect(&server, &other).await;
    // A closed socket frees its place.
    drop(first);
    assert!(
        connects_within(&server, &token, Duration::from_secs(5)).await,
        "a closed socket's place was not freed"
    );
}

/// Upgrades racing for one user's places: exactly as many as the cap get a
/// socket, and every other one a 429 (never a 101 and then a close), because
/// a socket takes its place before the server answers the upgrade.
#[tokio::test]
async fn racing_upgrades_get_exactly_the_cap_and_429s() {
    let (server, _dirs) = server_with("[realtime]\nmax_sockets_per_user = 2\n");
    let (token, _) = device_account(&server, "device-ws-race").await;
    let url = ws_url(&server, &token);
    let attempts = (0..12).map(|_| tokio_tungstenite::connect_async(url.clone()));
    let mut open = Vec::new();
    let mut refusals = Vec::new();
    for attempt in futures_util::future::join_all(attempts).await {
        match attempt {
            Ok((ws, _)) => open.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                refusals.push(response.status().as_u16())
            }
            Err(e) => panic!("not an HTTP refusal: {e}"),
        }
    }
    assert_eq!((open.len(), refusals), (2, vec![429; 10]));
    // Both sockets that got through work.
    for (n, ws) in open.iter_mut().enumerate() {
        send(ws, json!({"cid": n.to_string(), "ping": {}})).await;
        assert_eq!(next(ws).await["cid"], n.to_string());
    }
}

#[tokio::test]
async fn sockets_per_node_are_capped() {
    let (server, _dirs) = server_with("[realtime]\nmax_sockets = 2\n");
    let mut held = Vec::new();
    for device in ["device-ws-node-1", "device-ws-node-2"] {
        let (token, _) = device_account(&server, device).await;
        held.push(connect(&server, &token).await);
    }
    // A third user, under their own cap, still finds the node full.
    let (token, _) = device_account(&server, "device-ws-node-3").await;
    assert_eq!(refused(&ws_url(&server, &token)).await, 429);
    drop(held.pop());
    assert!(
        connects_within(&server, &token, Duration::from_secs(5)).await,
        "a closed socket's place was not freed"
    );
}

#[tokio::test]
async fn logout_closes_the_socket() {
    let (server, _dirs) = server_with("[realtime]\nsession_check_secs = 1\n");
    let (token, _) = device_account(&server, "device-ws-logout-1").await;
    let mut ws = connect(&server, &token).await;
    send(&mut ws, json!({"cid": "1", "ping": {}})).await;
    assert_eq!(next(&mut ws).await["cid"], "1");
    let (status, body) = request(
        &server,
        "POST",
        "/v2/session/logout",
        Some(&token),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (code, reason) = closed(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(code, CloseCode::Policy, "{reason}");
    assert_eq!(reason, "session ended");
    // And the token no longer opens one.
    assert_eq!(refused(&ws_url(&server, &token)).await, 401);
}

#[tokio::test]
async fn history_notifications_and_rpc_over_http() {
    let (server, _dirs) = server_with("");
    let (a, a_id) = device_account(&server, "device-ws-http-1").await;
    let (b, b_id) = device_account(&server, "device-ws-http-2").await;
    let (c, _) = device_account(&server, "device-ws-http-3").await;
    let mut ws = connect(&server, &a).await;
    send(
        &mut ws,
        json!({"cid": "j", "channel_join": {"target": b_id, "type": 2, "persistence": true}}),
    )
    .await;
    let channel = next_with(&mut ws, "channel").await;
    let channel_id = channel["channel"]["id"].as_str().unwrap().to_owned();
    let (one, two) = if a_id < b_id {
        (&a_id, &b_id)
    } else {
        (&b_id, &a_id)
    };
    assert_eq!(channel_id, format!("4.{one}.{two}."));
    for i in 0..3 {
        send(&mut ws, json!({"cid": format!("m{i}"), "channel_message_send": {"channel_id": channel_id, "content": json!({"n": i}).to_string()}})).await;
        let ack = next_with(&mut ws, "channel_message_ack").await;
        assert_eq!(ack["cid"], format!("m{i}"));
    }
    let path = format!("/v2/channel/{channel_id}?limit=2&forward=true");
    let (status, page) = request(&server, "GET", &path, Some(&b), None).await;
    assert_eq!(status, 200, "{page}");
    let contents: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, [r#"{"n":0}"#, r#"{"n":1}"#]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = request(
        &server,
        "GET",
        &format!("/v2/channel/{channel_id}?limit=2&forward=true&cursor={cursor}"),
        Some(&b),
        None,
    )
    .await;
    assert_eq!(rest["messages"].as_array().unwrap().len(), 1, "{rest}");
    assert!(rest.get("next_cursor").is_none(), "{rest}");
    // Newest first by default.
    let (_, newest) = request(
        &server,
        "GET",
        &format!("/v2/channel/{channel_id}?limit=1"),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(newest["messages"][0]["content"], r#"{"n":2}"#);
    // A third user can't read the two's direct messages.
    let (status, _) = request(
        &server,
        "GET",
        &format!("/v2/channel/{channel_id}"),
        Some(&c),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = request(
        &server,
        "GET",
        &format!("/v2/channel/{channel_id}?limit=101"),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(status, 400);
    // No notifications yet; deleting unknown ids is fine.
    let (status, list) = request(&server, "GET", "/v2/notification?limit=10", Some(&a), None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["notifications"], json!([]));
    let (status, _) = request(&server, "DELETE", "/v2/notification?ids=x&ids=y", Some(&a), None).await;
    assert_eq!(status, 200);
    let (status, _) = request(&server, "GET", "/v2/notification", None, None).await;
    assert_eq!(status, 401);
    // RPC over HTTP: no Element declares this id.
    let (status, body) = request(&server, "POST", "/v2/rpc/anything", Some(&a), Some(json!("{}"))).await;
    assert_eq!(
        (status, body["code"].clone(), body["message"].clone()),
        (404, json!(5), json!("RPC function not found")),
        "{body}"
    );
}

/// Nakama RPCs are served by the Element whose manifest declares them, over
/// HTTP and over the socket, with the caller's session; the host's path
/// into the Element is closed to clients, and a second Element can't take
/// an RPC id another one serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_are_served_by_the_element_that_declares_them() {
    let dirs = Dirs::new();
    dirs.deploy(
        "games",
        "misbehave",
        "rpcs = [\"echo\", \"fail\", \"unrouted\"]\n",
    );
    let mut config = support::grants_section("games", &["rpc:echo", "rpc:fail", "rpc:unrouted"]);
    config.push_str(&support::grants_section("thief", &["rpc:echo"]));
    dirs.config(&config);
    let server = Server::start(&dirs, &[]);
    let (token, user_id) = device_account(&server, "device-rpc-1").await;

    // Over HTTP: the payload in, the Element's answer out, the caller known.
    let (status, body) = request(&server, "POST", "/v2/rpc/echo", Some(&token), Some(json!("ping"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "echo");
    let answer: Value = serde_json::from_str(body["payload"].as_str().unwrap()).unwrap();
    assert_eq!(answer, json!({"user": user_id, "payload": "ping"}));
    // Ids match without regard to case, as in Nakama.
    let (status, body) = request(&server, "POST", "/v2/rpc/ECHO", Some(&token), Some(json!(""))).await;
    assert_eq!(status, 200, "{body}");
    // An Element's error answer fails the RPC with its message.
    let (status, body) = request(
        &server,
        "POST",
        "/v2/rpc/fail",
        Some(&token),
        Some(json!("no dice")),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (500, Some("no dice")),
        "{body}"
    );
    // Declared but not routed by the Element: a failure, not a hang.
    let (status, body) = request(&server, "POST", "/v2/rpc/unrouted", Some(&token), Some(json!(""))).await;
    assert_eq!(status, 500, "{body}");
    // Undeclared: not found, even though the Element's router has a route for it.
    let (status, body) = request(&server, "POST", "/v2/rpc/nope", Some(&token), Some(json!(""))).await;
    assert_eq!(status, 404, "{body}");

    // Over the socket, with the socket's session.
    let mut ws = connect(&server, &token).await;
    send(
        &mut ws,
        json!({"cid": "r1", "rpc": {"id": "echo", "payload": "over the socket"}}),
    )
    .await;
    let reply = next_with(&mut ws, "rpc").await;
    assert_eq!(reply["cid"], "r1", "{reply}");
    let answer: Value = serde_json::from_str(reply["rpc"]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(answer, json!({"user": user_id, "payload": "over the socket"}));
    send(
        &mut ws,
        json!({"cid": "r2", "rpc": {"id": "fail", "payload": "broken"}}),
    )
    .await;
    let error = next_with(&mut ws, "error").await;
    assert_eq!(
        (error["cid"].as_str(), error["error"]["message"].as_str()),
        (Some("r2"), Some("broken")),
        "{error}"
    );

    // Clients can't call the Element's RPC path themselves, however spelled.
    for path in [
        "/app/rest/games/.elements/rpc/echo",
        "/app/rest/games/%2Eelements/rpc/echo",
        "/app/rest/games/.%65lements/rpc/echo",
    ] {
        let (status, body) = request(&server, "POST", path, Some(&token), Some(json!("x"))).await;
        assert_eq!(status, 404, "{path}: {body}");
    }

    // Another Element declaring a served id fails its deploy; the first keeps it.
    dirs.deploy("thief", "misbehave", "rpcs = [\"echo\"]\n");
    server.wait_for_log("is already mounted by Element", Duration::from_secs(20));
    assert!(server.log().contains("rpc:echo"), "{}", server.log());
    let (status, body) = request(
        &server,
        "POST",
        "/v2/rpc/echo",
        Some(&token),
        Some(json!("still")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(body["payload"].as_str().unwrap()).unwrap();
    assert_eq!(answer["payload"], "still");
}

/// The first envelope carrying each of `fields`, whatever their order,
/// skipping others.
async fn collect(ws: &mut Ws, fields: &[&str]) -> Vec<Value> {
    let mut found: Vec<Option<Value>> = vec![None; fields.len()];
    while found.iter().any(Option::is_none) {
        let envelope = next(ws).await;
        for (i, field) in fields.iter().enumerate() {
            if found[i].is_none() && envelope.get(*field).is_some() {
                found[i] = Some(envelope.clone());
            }
        }
    }
    found.into_iter().map(Option::unwrap).collect()
}

fn turn_relay_manifest() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/turn-relay/element.toml"
    ))
    .unwrap()
}

/// The error code and message a `match_join` of `match_id` is refused with.
async fn join_refused(ws: &mut Ws, match_id: &str) -> (i64, String) {
    send(
        ws,
        json!({"cid": "refused", "match_join": {"match_id": match_id}}),
    )
    .await;
    let refused = next_with(ws, "error").await;
    assert_eq!(refused["cid"], "refused", "{refused}");
    let error = &refused["error"];
    (
        error["code"].as_i64().unwrap_or_else(|| panic!("{refused}")),
        error["message"].as_str().unwrap_or_default().to_owned(),
    )
}

fn move_of(match_id: &str, text: &str) -> Value {
    json!({"match_data_send": {"match_id": match_id, "op_code": "2", "data": b64(text.as_bytes())}})
}

#[tokio::test]
async fn an_element_runs_a_turn_based_match_over_the_socket() {
    let dirs = Dirs::new();
    dirs.deploy("turn-relay", "turn-relay", &turn_relay_manifest());
    let server = Server::start(&dirs, &["--http-key", "a-test-http-key"]);
    let (ta, ua) = device_account(&server, "device-turn-a").await;
    let (tb, ub) = device_account(&server, "device-turn-b").await;
    let (tc, _) = device_account(&server, "device-turn-c").await;
    let (mut a, mut b, mut c) = (
        connect(&server, &ta).await,
        connect(&server, &tb).await,
        connect(&server, &tc).await,
    );
    // B watches the room where the Element announces matches.
    send(
        &mut b,
        json!({"cid": "room", "channel_join": {"type": 1, "target": "turn-relay", "persistence": true, "hidden": false}}),
    )
    .await;
    next_with(&mut b, "channel").await;

    // A creates a match with the Element's RPC, over the socket.
    send(
        &mut a,
        json!({"cid": "new", "rpc": {"id": "turn_relay_create", "payload": ""}}),
    )
    .await;
    let reply = next_with(&mut a, "rpc").await;
    let created: Value = serde_json::from_str(reply["rpc"]["payload"].as_str().unwrap()).unwrap();
    let match_id = created["match_id"].as_str().unwrap().to_owned();
    assert!(match_id.ends_with(".element:turn-relay"), "{match_id}");

    send(&mut a, json!({"cid": "ja", "match_join": {"match_id": match_id}})).await;
    let joined = next_with(&mut a, "match").await;
    assert_eq!(joined["match"]["authoritative"], true, "{joined}");
    assert_eq!(joined["match"]["presences"], json!([]), "{joined}");

    // B joins: sees A; A sees B come; the room hears of the match (sent
    // while B's join was being admitted, so in either order).
    send(&mut b, json!({"cid": "jb", "match_join": {"match_id": match_id}})).await;
    let [joined, news] =
        <[Value; 2]>::try_from(collect(&mut b, &["match", "channel_message"]).await).unwrap();
    assert_eq!(
        joined["match"]["presences"][0]["user_id"],
        ua.as_str(),
        "{joined}"
    );
    assert_eq!(news["channel_message"]["username"], "turn-relay", "{news}");
    assert_eq!(news["channel_message"]["sender_id"], "", "{news}");
    let content: Value = serde_json::from_str(news["channel_message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["started"], match_id.as_str(), "{content}");
    let event = next_with(&mut a, "match_presence_event").await;
    assert_eq!(
        event["match_presence_event"]["joins"][0]["user_id"],
        ub.as_str(),
        "{event}"
    );

    // A third player is refused by the Element; so are ids it never made,
    // and ids of an Element that doesn't exist are not found.
    assert_eq!(
        join_refused(&mut c, &match_id).await,
        (5, "This match is full.".to_owned())
    );
    let forged = format!("{}.element:turn-relay", uuid::Uuid::new_v4());
    assert_eq!(
        join_refused(&mut c, &forged).await,
        (5, "No such match.".to_owned())
    );
    let nobody = format!("{}.element:nobody", uuid::Uuid::new_v4());
    assert_eq!(join_refused(&mut c, &nobody).await.0, 4);
    // Data to a match C is not in goes nowhere.
    send(&mut c, move_of(&match_id, "sneaky")).await;
    assert_eq!(next_with(&mut c, "error").await["error"]["code"], 4);

    // B moves out of turn: told so, and A gets nothing.
    send(&mut b, move_of(&match_id, "e5")).await;
    let answer = next_with(&mut b, "match_data").await;
    assert_eq!(answer["match_data"]["op_code"], "3", "{answer}");
    assert!(answer["match_data"].get("presence").is_none(), "{answer}");

    // A moves: B gets the move from the Element (no sender presence) and a
    // notification that it is their turn; A gets nothing back.
    send(&mut a, move_of(&match_id, "e4")).await;
    let moved = next_with(&mut b, "match_data").await;
    assert_eq!(moved["match_data"]["op_code"], "2", "{moved}");
    assert_eq!(moved["match_data"]["data"], b64(b"e4"), "{moved}");
    let note = next_with(&mut b, "notifications").await;
    assert_eq!(
        note["notifications"]["notifications"][0]["subject"], "Your turn",
        "{note}"
    );
    send(&mut a, json!({"cid": "p", "ping": {}})).await;
    let pong = next(&mut a).await;
    assert_eq!(
        (pong["cid"].as_str(), pong.get("pong").is_some()),
        (Some("p"), true),
        "{pong}"
    );

    // Now B's turn: A gets B's move.
    send(&mut b, move_of(&match_id, "e5")).await;
    let moved = next_with(&mut a, "match_data").await;
    assert_eq!(moved["match_data"]["data"], b64(b"e5"), "{moved}");

    // A leaves: the Element tells B.
    send(&mut a, json!({"cid": "l", "match_leave": {"match_id": match_id}})).await;
    let left = next_with(&mut b, "match_data").await;
    assert_eq!(left["match_data"]["op_code"], "4", "{left}");
    let who: Value = serde_json::from_slice(&{
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(left["match_data"]["data"].as_str().unwrap())
            .unwrap()
    })
    .unwrap();
    assert_eq!(who["user_id"], ua.as_str());

    // The room's history keeps the Element's announcement.
    let (status, history) = request(&server, "GET", "/v2/channel/2...turn-relay", Some(&tb), None).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["messages"][0]["username"], "turn-relay", "{history}");

    // A game server calls the RPC with the HTTP key instead of a session.
    let (status, body) = request(
        &server,
        "POST",
        "/v2/rpc/turn_relay_create?http_key=a-test-http-key",
        None,
        Some(json!("")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["payload"].as_str().unwrap().contains(".element:turn-relay"),
        "{body}"
    );
    for key in ["wrong", "", "a-test-http-ke"] {
        let (status, body) = request(
            &server,
            "POST",
            &format!("/v2/rpc/turn_relay_create?http_key={key}"),
            None,
            Some(json!("")),
        )
        .await;
        assert_eq!(status, 401, "{key:?}: {body}");
    }
    // `unwrap`: the body is the payload as is.
    let (status, body) = request(
        &server,
        "POST",
        "/v2/rpc/turn_relay_create?http_key=a-test-http-key&unwrap",
        None,
        Some(json!({"not": "a string"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn without_an_http_key_set_rpcs_need_a_session() {
    let dirs = Dirs::new();
    dirs.deploy("turn-relay", "turn-relay", &turn_relay_manifest());
    let server = Server::start(&dirs, &[]);
    for path in [
        "/v2/rpc/turn_relay_create?http_key=",
        "/v2/rpc/turn_relay_create?http_key=defaulthttpkey",
        "/v2/rpc/turn_relay_create",
    ] {
        let (status, body) = request(&server, "POST", path, None, Some(json!(""))).await;
        assert_eq!(status, 401, "{path}: {body}");
    }
}

#[tokio::test]
async fn elements_stay_inside_their_realtime_grants() {
    let dirs = Dirs::new();
    dirs.deploy("turn-relay", "turn-relay", &turn_relay_manifest());
    dirs.deploy("nogrants", "misbehave", "");
    dirs.deploy(
        "games",
        "misbehave",
        "grants = [\"realtime.match\", \"realtime.notify\", \"realtime.rooms\"]\n",
    );
    dirs.config(&support::grants_section(
        "games",
        &["realtime.match", "realtime.notify", "realtime.rooms"],
    ));
    let server = Server::start(&dirs, &[]);
    let (token, user) = device_account(&server, "device-grants-1").await;

    // Without the grants every call is refused, naming the grant.
    for (path, grant) in [
        (
            format!("/app/rest/nogrants/realtime/notify?user={user}"),
            "realtime.notify",
        ),
        (
            "/app/rest/nogrants/realtime/room?room=lobby".to_owned(),
            "realtime.rooms",
        ),
        (
            "/app/rest/nogrants/realtime/match-data?id=x".to_owned(),
            "realtime.match",
        ),
        (
            "/app/rest/nogrants/realtime/create-many".to_owned(),
            "realtime.match",
        ),
    ] {
        let (status, body) = request(&server, "POST", &path, None, None).await;
        if path.ends_with("create-many") {
            assert_eq!((status, body["made"].as_i64()), (200, Some(0)), "{body}");
            assert_eq!(body["code"], "FORBIDDEN", "{body}");
            continue;
        }
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(grant),
            "{path}: {body}"
        );
    }

    // With them, an Element still can't send into another Element's match.
    let (status, body) = request(
        &server,
        "POST",
        "/v2/rpc/turn_relay_create",
        Some(&token),
        Some(json!("")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let theirs: Value = serde_json::from_str(body["payload"].as_str().unwrap()).unwrap();
    let path = format!(
        "/app/rest/games/realtime/match-data?id={}",
        theirs["match_id"].as_str().unwrap()
    );
    let (status, body) = request(&server, "POST", &path, None, None).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not a match of this Element"),
        "{body}"
    );

    // Bad input is refused with the reason.
    for path in [
        format!("/app/rest/games/realtime/notify?user={user}&code=0"),
        "/app/rest/games/realtime/notify?user=not-a-user-id".to_owned(),
        "/app/rest/games/realtime/room?room=bad/name".to_owned(),
        "/app/rest/games/realtime/room?room=".to_owned(),
        format!("/app/rest/games/realtime/room?room={}", "r".repeat(500)),
    ] {
        let (status, body) = request(&server, "POST", &path, None, None).await;
        assert_eq!(status, 400, "{path}: {body}");
    }

    // One request makes at most 100 realtime calls.
    let (status, body) = request(
        &server,
        "POST",
        "/app/rest/games/realtime/create-many",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["made"].as_i64(), body["code"].as_str()),
        (Some(100), Some("LIMIT_EXCEEDED")),
        "{body}"
    );

    // What the grants allow arrives: a notification on the user's socket
    // (and stored), a message in the room's history under the Element's name.
    let mut ws = connect(&server, &token).await;
    let (status, body) = request(
        &server,
        "POST",
        &format!("/app/rest/games/realtime/notify?user={user}&code=42"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let note = next_with(&mut ws, "notifications").await;
    let pushed = &note["notifications"]["notifications"][0];
    assert_eq!(
        (pushed["subject"].as_str(), pushed["code"].as_i64()),
        (Some("from misbehave"), Some(42)),
        "{note}"
    );
    let (status, stored) = request(&server, "GET", "/v2/notification?limit=10", Some(&token), None).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["notifications"][0]["id"], pushed["id"], "{stored}");
    let (status, body) = request(
        &server,
        "POST",
        "/app/rest/games/realtime/room?room=lobby",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, history) = request(&server, "GET", "/v2/channel/2...lobby", Some(&token), None).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(
        (
            history["messages"][0]["message_id"].as_str(),
            history["messages"][0]["username"].as_str()
        ),
        (body["id"].as_str(), Some("games")),
        "{history}"
    );
}
