//! The realtime socket across nodes: two real `elements` processes sharing
//! one store, a real `nats-server`, raw WebSocket clients on each node.
//! Rooms, matches, notifications and status follows cross nodes; a killed
//! node's sockets leave within the heartbeat timeout; with NATS down each
//! node serves its own sockets, and cross-node delivery resumes after NATS
//! is back; forged NATS messages disturb nothing; a match an Element runs
//! has its players on both nodes.

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use support::client::request;
use support::nats::Nats;
use support::socket::{Ws, b64, connect, device_account, send, ws_url};
use support::{Dirs, ROOT_ENV, Server, admin_request, root_secret};

/// How long a cross-node step may take before the test fails (a loaded
/// machine; the steps themselves take milliseconds).
const PATIENCE: Duration = Duration::from_secs(20);

/// A node on `dirs` (the two nodes of a test share its store).
fn node(dirs: &Dirs, nats: &Nats, database: &str) -> Server {
    let url = nats.url();
    Server::start_with(
        dirs,
        &["--nats-url", &url, "--deploy-poll-ms", "60000"],
        ROOT_ENV,
        Some(database),
    )
}

fn wait_for_count(server: &Server, needle: &str, times: usize) {
    let started = Instant::now();
    while server.log().matches(needle).count() < times {
        assert!(
            started.elapsed() < PATIENCE,
            "log never had {times} × {needle:?}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two nodes over one NATS, both receiving from the other.
fn cluster(nats: &Nats, database: &str, config: &str) -> (Server, Server, Dirs) {
    let dirs = Dirs::new();
    dirs.config(config);
    let a = node(&dirs, nats, database);
    let b = node(&dirs, nats, database);
    for server in [&a, &b] {
        server.wait_for_log("connected to NATS", PATIENCE);
        wait_for_count(server, "realtime: receiving from the other nodes", 2);
    }
    (a, b, dirs)
}

/// The first envelope `wanted` accepts, skipping others, within `within`.
async fn until(ws: &mut Ws, within: Duration, what: &str, wanted: impl FnMut(&Value) -> bool) -> Value {
    match within_time(ws, within, what, wanted).await {
        Some(envelope) => envelope,
        None => panic!("no {what} within {within:?}"),
    }
}

/// [`until`], `None` when nothing matched in time.
async fn within_time(
    ws: &mut Ws,
    within: Duration,
    what: &str,
    mut wanted: impl FnMut(&Value) -> bool,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()?
            .expect("the socket is open")
            .expect("a frame");
        match frame {
            Message::Text(text) => {
                let envelope: Value = serde_json::from_str(&text).unwrap();
                if wanted(&envelope) {
                    return Some(envelope);
                }
            }
            Message::Close(frame) => panic!("closed while waiting for {what}: {frame:?}"),
            _ => continue,
        }
    }
}

/// The answer to the request with `cid`.
async fn answer(ws: &mut Ws, cid: &str) -> Value {
    until(ws, PATIENCE, cid, |e| e["cid"] == cid).await
}

fn sessions(presences: &Value) -> Vec<String> {
    presences
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["session_id"].as_str().map(str::to_owned))
        .collect()
}

/// `ws`'s own session id, from a join's `self`.
fn own_session(joined: &Value, field: &str) -> String {
    joined[field]["self"]["session_id"].as_str().unwrap().to_owned()
}

/// Joins room `room` until the answer lists `expected` (the other node's
/// view of its peer is built asynchronously): the join's answer.
async fn join_seeing(ws: &mut Ws, room: &str, expected: &str) -> Value {
    let started = Instant::now();
    for attempt in 0.. {
        let cid = format!("join-{room}-{attempt}");
        send(
            ws,
            json!({"cid": cid, "channel_join": {"target": room, "type": 1, "persistence": true}}),
        )
        .await;
        let joined = answer(ws, &cid).await;
        assert!(joined.get("channel").is_some(), "{joined}");
        if sessions(&joined["channel"]["presences"]).contains(&expected.to_owned()) {
            return joined;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the room never listed {expected}: {joined}"
        );
        let cid = format!("leave-{room}-{attempt}");
        send(
            ws,
            json!({"cid": cid, "channel_leave": {"channel_id": format!("2...{room}")}}),
        )
        .await;
        answer(ws, &cid).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!()
}

/// Sends `content` to the room, then waits until `to` receives it.
async fn say(from: &mut Ws, to: &mut Ws, room: &str, content: Value) {
    let cid = format!("say-{}", content);
    send(
        from,
        json!({"cid": cid, "channel_message_send": {"channel_id": format!("2...{room}"), "content": content.to_string()}}),
    )
    .await;
    let text = content.to_string();
    // The sender gets its ack and its own copy (in either order): both
    // read, so neither is taken for news later.
    let (mut acked, mut copied) = (false, false);
    until(from, PATIENCE, "the ack and the sender's copy", |e| {
        if e["cid"] == cid.as_str() {
            assert!(e.get("channel_message_ack").is_some(), "{e}");
            acked = true;
        }
        copied |= e["channel_message"]["content"] == text.as_str();
        acked && copied
    })
    .await;
    until(to, PATIENCE, "the message", |e| {
        e["channel_message"]["content"] == text.as_str()
    })
    .await;
}

fn presence_event_with(e: &Value, event: &str, side: &str, session: &str) -> bool {
    sessions(&e[event][side]).iter().any(|s| s == session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_on_two_nodes_share_rooms_matches_notifications_and_status() {
    let nats = Nats::start();
    let database = format!("rtcluster_a_{}", std::process::id());
    let (a, b, _dirs) = cluster(&nats, &database, "[realtime]\nmax_sockets_per_user = 2\n");
    let (alice_token, _) = device_account(&a, "device-rtc-alice").await;
    let (bob_token, bob_id) = device_account(&b, "device-rtc-bob").await;
    let mut alice = connect(&a, &alice_token).await;
    let mut bob = connect(&b, &bob_token).await;

    // A room: each sees the other's presence, messages go both ways, and
    // the history (the shared store) has both.
    send(
        &mut alice,
        json!({"cid": "aj", "channel_join": {"target": "lobby", "type": 1, "persistence": true}}),
    )
    .await;
    let joined = answer(&mut alice, "aj").await;
    let alice_sid = own_session(&joined, "channel");
    let joined = join_seeing(&mut bob, "lobby", &alice_sid).await;
    let bob_sid = own_session(&joined, "channel");
    until(&mut alice, PATIENCE, "bob's join", |e| {
        presence_event_with(e, "channel_presence_event", "joins", &bob_sid)
    })
    .await;
    say(&mut bob, &mut alice, "lobby", json!({"from": "bob"})).await;
    say(&mut alice, &mut bob, "lobby", json!({"from": "alice"})).await;
    for server in [&a, &b] {
        let (status, page) = request(
            server,
            "GET",
            "/v2/channel/2...lobby?limit=10&forward=true",
            Some(&alice_token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let contents: Vec<&str> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        assert_eq!(contents, [r#"{"from":"bob"}"#, r#"{"from":"alice"}"#]);
    }

    // A match made on A is joined from B; data flows both ways with the
    // sender's presence. An unknown match still can't be joined.
    send(&mut alice, json!({"cid": "mc", "match_create": {}})).await;
    let made = answer(&mut alice, "mc").await;
    let match_id = made["match"]["match_id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let joined = loop {
        send(
            &mut bob,
            json!({"cid": "mj", "match_join": {"match_id": match_id}}),
        )
        .await;
        let reply = answer(&mut bob, "mj").await;
        if reply.get("match").is_some() {
            break reply;
        }
        assert!(started.elapsed() < PATIENCE, "B never found A's match: {reply}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        sessions(&joined["match"]["presences"]),
        std::slice::from_ref(&alice_sid),
        "{joined}"
    );
    assert_eq!(joined["match"]["size"], 2, "{joined}");
    until(&mut alice, PATIENCE, "bob's match join", |e| {
        presence_event_with(e, "match_presence_event", "joins", &bob_sid)
    })
    .await;
    send(
        &mut bob,
        json!({"match_data_send": {"match_id": match_id, "op_code": 7, "data": "aGk="}}),
    )
    .await;
    let data = until(&mut alice, PATIENCE, "bob's match data", |e| {
        e.get("match_data").is_some()
    })
    .await;
    assert_eq!(
        data["match_data"]["presence"]["session_id"],
        bob_sid.as_str(),
        "{data}"
    );
    assert_eq!(data["match_data"]["data"], "aGk=");
    // Addressed to bob's presence, on the other node.
    send(
        &mut alice,
        json!({"match_data_send": {"match_id": match_id, "op_code": 8, "data": "eW8=", "presences": [{"user_id": bob_id, "session_id": bob_sid, "username": ""}]}}),
    )
    .await;
    let data = until(&mut bob, PATIENCE, "alice's match data", |e| {
        e.get("match_data").is_some()
    })
    .await;
    assert_eq!(
        data["match_data"]["presence"]["session_id"],
        alice_sid.as_str(),
        "{data}"
    );
    assert_eq!(data["match_data"]["op_code"], "8");
    let unknown = format!("{}.elements-00000000", support::uuid_like());
    send(
        &mut bob,
        json!({"cid": "mu", "match_join": {"match_id": unknown}}),
    )
    .await;
    let refused = answer(&mut bob, "mu").await;
    assert_eq!(refused["error"]["message"], "Match not found", "{refused}");

    // A notification sent through A's admin API reaches bob's socket on B.
    let root = root_secret(&a).await;
    let (status, body) = admin_request(
        &a,
        "POST",
        "/api/rest/realtime/notification",
        Some(&root),
        Some(json!({"user_ids": [bob_id], "subject": "hi", "content": {"x": 1}, "code": 101, "persistent": true})),
    )
    .await;
    assert!(status < 300, "{status} {body}");
    let pushed = until(&mut bob, PATIENCE, "the notification", |e| {
        e.get("notifications").is_some()
    })
    .await;
    assert_eq!(
        pushed["notifications"]["notifications"][0]["subject"], "hi",
        "{pushed}"
    );

    // Status: alice on A follows bob on B, sees him online and his update.
    send(
        &mut alice,
        json!({"cid": "sf", "status_follow": {"user_ids": [bob_id]}}),
    )
    .await;
    let followed = answer(&mut alice, "sf").await;
    assert_eq!(
        sessions(&followed["status"]["presences"]),
        std::slice::from_ref(&bob_sid),
        "{followed}"
    );
    send(
        &mut bob,
        json!({"cid": "su", "status_update": {"status": "playing"}}),
    )
    .await;
    answer(&mut bob, "su").await;
    let update = until(&mut alice, PATIENCE, "bob's status", |e| {
        e["status_presence_event"]["joins"][0]["status"] == "playing"
    })
    .await;
    assert_eq!(
        update["status_presence_event"]["joins"][0]["session_id"],
        bob_sid.as_str()
    );

    // The socket cap counts the user's sockets on every node: bob has one
    // on B, one more on A is his second, a third anywhere is refused.
    let _second = connect(&a, &bob_token).await;
    let started = Instant::now();
    loop {
        match tokio_tungstenite::connect_async(ws_url(&a, &bob_token)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 429);
                break;
            }
            Err(e) => panic!("not an HTTP refusal: {e}"),
            Ok(_) => {
                // B's socket not yet in A's view: that one is closed when dropped.
                assert!(started.elapsed() < PATIENCE, "a third socket was never refused");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    // Forged traffic on the realtime subjects, from a plain NATS client:
    // garbage, no node header, a route naming sessions that don't exist, a
    // presence op that is not one. Neither node falls over, and the room
    // still carries messages both ways.
    let raw = nats.client().await;
    let mut forged = elements_cluster::HeaderMap::new();
    forged.insert("Elements-Node", "forger");
    let payloads: [&[u8]; 5] = [
        b"\xff not json",
        b"{\"sessions\":[\"nobody\",\"nowhere\"]}\n{\"channel_message\":{}}",
        b"{\"stream\":{\"key\":\"2...lobby\",\"except\":null}}\n\xff\xfe",
        b"{\"user\":12}\n{}",
        b"",
    ];
    for payload in payloads {
        for headers in [forged.clone(), elements_cluster::HeaderMap::new()] {
            raw.publish(
                "realtime.routes",
                headers,
                elements_cluster::Bytes::copy_from_slice(payload),
            )
            .await
            .unwrap();
        }
    }
    for payload in [
        &b"{\"op\":\"snapshot\",\"sessions\":7}"[..],
        b"[]",
        b"{\"op\":\"nope\"}",
    ] {
        raw.publish(
            "realtime.presence",
            forged.clone(),
            elements_cluster::Bytes::copy_from_slice(payload),
        )
        .await
        .unwrap();
    }
    for server in [&a, &b] {
        server.wait_for_log("dropped an unreadable message from NATS", PATIENCE);
    }
    say(
        &mut bob,
        &mut alice,
        "lobby",
        json!({"after": "forgery", "from": "bob"}),
    )
    .await;
    say(
        &mut alice,
        &mut bob,
        "lobby",
        json!({"after": "forgery", "from": "alice"}),
    )
    .await;
    // No forged envelope reached a socket: bob's next message is the next
    // thing alice reads about the room.
    send(&mut alice, json!({"cid": "p", "ping": {}})).await;
    let next = until(&mut alice, PATIENCE, "the pong", |e| {
        e.get("channel_message").is_some() || e["cid"] == "p"
    })
    .await;
    assert_eq!(next["cid"], "p", "{next}");
    for server in [&a, &b] {
        let (status, _) = request(server, "GET", "/health", None, None).await;
        assert_eq!(status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_down_each_node_serves_its_own_and_a_killed_node_leaves() {
    let mut nats = Nats::start();
    let database = format!("rtcluster_b_{}", std::process::id());
    let (a, mut b, _dirs) = cluster(&nats, &database, "");
    let (alice_token, _) = device_account(&a, "device-rtc2-alice").await;
    let (carol_token, _) = device_account(&a, "device-rtc2-carol").await;
    let (bob_token, _) = device_account(&b, "device-rtc2-bob").await;
    let (dave_token, _) = device_account(&b, "device-rtc2-dave").await;
    let mut alice = connect(&a, &alice_token).await;
    let mut carol = connect(&a, &carol_token).await;
    let mut bob = connect(&b, &bob_token).await;
    let mut dave = connect(&b, &dave_token).await;
    send(
        &mut alice,
        json!({"cid": "aj", "channel_join": {"target": "hall", "type": 1, "persistence": false}}),
    )
    .await;
    let alice_sid = own_session(&answer(&mut alice, "aj").await, "channel");
    let bob_sid = own_session(&join_seeing(&mut bob, "hall", &alice_sid).await, "channel");
    say(&mut bob, &mut alice, "hall", json!({"before": "outage"})).await;

    // NATS goes away: each node's own room members still meet and talk.
    nats.kill();
    for server in [&a, &b] {
        server.wait_for_log("lost the NATS connection", PATIENCE);
    }
    send(
        &mut carol,
        json!({"cid": "cj", "channel_join": {"target": "hall", "type": 1, "persistence": false}}),
    )
    .await;
    let carol_sid = own_session(&answer(&mut carol, "cj").await, "channel");
    until(&mut alice, PATIENCE, "carol's join", |e| {
        presence_event_with(e, "channel_presence_event", "joins", &carol_sid)
    })
    .await;
    say(
        &mut carol,
        &mut alice,
        "hall",
        json!({"during": "outage", "on": "A"}),
    )
    .await;
    send(
        &mut dave,
        json!({"cid": "dj", "channel_join": {"target": "hall", "type": 1, "persistence": false}}),
    )
    .await;
    let dave_sid = own_session(&answer(&mut dave, "dj").await, "channel");
    until(&mut bob, PATIENCE, "dave's join", |e| {
        presence_event_with(e, "channel_presence_event", "joins", &dave_sid)
    })
    .await;
    say(
        &mut dave,
        &mut bob,
        "hall",
        json!({"during": "outage", "on": "B"}),
    )
    .await;
    for server in [&a, &b] {
        let (status, _) = request(server, "GET", "/health", None, None).await;
        assert_eq!(status, 200);
    }

    // Down longer than the heartbeat timeout: each node drops the other's
    // presences, and its members see them leave.
    until(&mut alice, PATIENCE, "bob's leave, NATS down", |e| {
        presence_event_with(e, "channel_presence_event", "leaves", &bob_sid)
    })
    .await;

    // NATS is back: each node's members see who is on the other node again,
    // including who joined meanwhile (the nodes' snapshots heal the views),
    nats.start_again();
    let (mut bob_back, mut dave_back) = (false, false);
    until(
        &mut alice,
        PATIENCE,
        "bob's and dave's joins, after NATS is back",
        |e| {
            bob_back |= presence_event_with(e, "channel_presence_event", "joins", &bob_sid);
            dave_back |= presence_event_with(e, "channel_presence_event", "joins", &dave_sid);
            bob_back && dave_back
        },
    )
    .await;
    until(&mut bob, PATIENCE, "carol's join, after NATS is back", |e| {
        presence_event_with(e, "channel_presence_event", "joins", &carol_sid)
    })
    .await;
    // and messages cross again, both ways (each try is a new
    // message: one sent before the nodes reconnected is lost, at most once).
    for (from, to, label) in [
        (&mut dave, &mut alice, "B to A"),
        (&mut carol, &mut bob, "A to B"),
    ] {
        let started = Instant::now();
        for attempt in 0.. {
            let content = json!({"after": "outage", "dir": label, "attempt": attempt});
            let cid = format!("r{attempt}");
            send(
                from,
                json!({"cid": cid, "channel_message_send": {"channel_id": "2...hall", "content": content.to_string()}}),
            )
            .await;
            answer(from, &cid).await;
            let text = content.to_string();
            let got = within_time(to, Duration::from_millis(500), "a message", |e| {
                e["channel_message"]["content"] == text.as_str()
            })
            .await;
            if got.is_some() {
                println!(
                    "{label}: a message crossed {:?} after the views healed",
                    started.elapsed()
                );
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{label}: no message crossed after NATS restarted\nA:\n{}\nB:\n{}",
                a.log(),
                b.log()
            );
        }
    }

    // B dies: alice on A sees bob and dave leave within the heartbeat
    // timeout (5 s), not later.
    let dead = [bob_sid.clone(), dave_sid.clone()];
    b.kill9();
    let started = Instant::now();
    let mut gone: Vec<String> = Vec::new();
    while !dead.iter().all(|s| gone.contains(s)) {
        let left = within_time(&mut alice, PATIENCE, "the dead node's leaves", |e| {
            dead.iter()
                .any(|s| presence_event_with(e, "channel_presence_event", "leaves", s))
        })
        .await;
        let Some(left) = left else {
            panic!("A's members saw only {gone:?} of {dead:?} leave\nA:\n{}", a.log());
        };
        gone.extend(sessions(&left["channel_presence_event"]["leaves"]));
    }
    let took = started.elapsed();
    println!("a killed node's members left after {took:?}");
    assert!(took < Duration::from_secs(12), "{took:?}");
    // A alone still serves its room.
    say(&mut carol, &mut alice, "hall", json!({"after": "B died"})).await;
}

/// A match an Element runs (the turn-relay example) with its players on two
/// nodes: each player's move is handled by the Element on their own node
/// (the match's state is in the shared store) and reaches the other player
/// on the other node, as do the Element's notification and its word that a
/// player left.
#[tokio::test]
async fn an_element_runs_a_match_whose_players_are_on_two_nodes() {
    let nats = Nats::start();
    let database = format!("rtcluster_c_{}", std::process::id());
    let dirs = Dirs::new();
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/turn-relay/element.toml"
    ))
    .unwrap();
    dirs.deploy("turn-relay", "turn-relay", &manifest);
    let a = node(&dirs, &nats, &database);
    let b = node(&dirs, &nats, &database);
    for server in [&a, &b] {
        server.wait_for_log("connected to NATS", PATIENCE);
        wait_for_count(server, "realtime: receiving from the other nodes", 2);
    }
    let (alice_token, alice_id) = device_account(&a, "device-rtc3-alice").await;
    let (bob_token, _) = device_account(&b, "device-rtc3-bob").await;
    let mut alice = connect(&a, &alice_token).await;
    let mut bob = connect(&b, &bob_token).await;

    send(
        &mut alice,
        json!({"cid": "new", "rpc": {"id": "turn_relay_create", "payload": ""}}),
    )
    .await;
    let created = answer(&mut alice, "new").await;
    let payload: Value = serde_json::from_str(created["rpc"]["payload"].as_str().unwrap()).unwrap();
    let match_id = payload["match_id"].as_str().unwrap().to_owned();
    send(
        &mut alice,
        json!({"cid": "aj", "match_join": {"match_id": match_id}}),
    )
    .await;
    let joined = answer(&mut alice, "aj").await;
    assert_eq!(joined["match"]["authoritative"], true, "{joined}");
    // Bob joins on the other node: the Element there admits him.
    send(
        &mut bob,
        json!({"cid": "bj", "match_join": {"match_id": match_id}}),
    )
    .await;
    let joined = answer(&mut bob, "bj").await;
    assert_eq!(joined["match"]["authoritative"], true, "{joined}");

    let move_of = |text: &str| json!({"match_data_send": {"match_id": match_id, "op_code": "2", "data": b64(text.as_bytes())}});
    send(&mut alice, move_of("e4")).await;
    let moved = until(&mut bob, PATIENCE, "alice's move", |e| {
        e["match_data"]["op_code"] == "2"
    })
    .await;
    assert_eq!(moved["match_data"]["data"], b64(b"e4"), "{moved}");
    until(&mut bob, PATIENCE, "bob's turn", |e| {
        e["notifications"]["notifications"][0]["subject"] == "Your turn"
    })
    .await;
    send(&mut bob, move_of("e5")).await;
    let moved = until(&mut alice, PATIENCE, "bob's move", |e| {
        e["match_data"]["op_code"] == "2"
    })
    .await;
    assert_eq!(moved["match_data"]["data"], b64(b"e5"), "{moved}");

    // Alice's socket closes on A: the Element there tells bob on B.
    alice.close(None).await.unwrap();
    let left = until(&mut bob, PATIENCE, "alice left", |e| {
        e["match_data"]["op_code"] == "4"
    })
    .await;
    let data = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(left["match_data"]["data"].as_str().unwrap())
            .unwrap()
    };
    let who: Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(who["user_id"], alice_id.as_str());
}
