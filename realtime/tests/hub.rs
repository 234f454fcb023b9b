//! The hub without a socket, over a real SQLite store: a full outbox kicks
//! its session (and only it), a disconnect is seen by the room, and match
//! data goes to the addressed presences only.

use std::sync::Arc;

use elements_realtime::{Fabric, Hub, Limits, Op, Replicator, Route};
use elements_store::{SqliteConfig, StoreConfig};
use serde_json::{Value, json};

async fn hub(dir: &tempfile::TempDir, limits: Limits) -> Arc<Hub> {
    let store = elements_store::open(StoreConfig::Sqlite(SqliteConfig::in_data_dir(dir.path())))
        .await
        .unwrap();
    Arc::new(Hub::new("node1", limits, store).await.unwrap())
}

fn user() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn drain(rx: &mut tokio::sync::mpsc::Receiver<Arc<str>>) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(text) = rx.try_recv() {
        out.push(serde_json::from_str(&text).unwrap());
    }
    out
}

#[tokio::test]
async fn a_full_outbox_kicks_only_its_session_and_the_room_sees_it_leave() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(
        &dir,
        Limits {
            send_queue: 4,
            ..Limits::default()
        },
    )
    .await;
    let mut talker = hub.connect(&user(), "talker", false, None).unwrap();
    let sleeper = hub.connect(&user(), "sleeper", false, None).unwrap();
    let join =
        json!({"cid": "1", "channel_join": {"target": "room", "type": 1, "persistence": false}}).to_string();
    hub.receive(&sleeper.session_id, &join).await;
    hub.receive(&talker.session_id, &join).await;
    drain(&mut talker.outbox);
    for i in 0..10 {
        let send = json!({"channel_message_send": {"channel_id": "2...room", "content": json!({"i": i}).to_string()}});
        hub.receive(&talker.session_id, &send.to_string()).await;
        // The talker reads as it goes.
        drain(&mut talker.outbox);
    }
    // The sleeper's queue (4) filled: kicked, with the reason.
    let reason = tokio::time::timeout(std::time::Duration::from_secs(1), sleeper.handle.kicked())
        .await
        .expect("kicked");
    assert!(reason.contains("send queue full"), "{reason}");
    // The socket loop then disconnects it; the room sees it go.
    hub.disconnect(&sleeper.session_id);
    let events = drain(&mut talker.outbox);
    assert!(
        events
            .iter()
            .any(|e| e["channel_presence_event"]["leaves"][0]["username"] == "sleeper"),
        "{events:?}"
    );
    assert_eq!(hub.sessions(), 1);
}

#[tokio::test]
async fn match_data_goes_to_the_addressed_presences_only() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(&dir, Limits::default()).await;
    let mut a = hub.connect(&user(), "a", false, None).unwrap();
    let mut b = hub.connect(&user(), "b", false, None).unwrap();
    let mut c = hub.connect(&user(), "c", false, None).unwrap();
    hub.receive(&a.session_id, r#"{"cid":"1","match_create":{}}"#)
        .await;
    let created = drain(&mut a.outbox).remove(0);
    let match_id = created["match"]["match_id"].as_str().unwrap().to_owned();
    assert!(match_id.ends_with(".node1"), "{match_id}");
    for s in [&b, &c] {
        let join = json!({"cid": "2", "match_join": {"match_id": match_id}});
        hub.receive(&s.session_id, &join.to_string()).await;
    }
    drain(&mut a.outbox);
    drain(&mut b.outbox);
    drain(&mut c.outbox);
    let to_b = json!({"match_data_send": {"match_id": match_id, "op_code": "5", "data": "aGk=",
        "presences": [b.presence]}});
    hub.receive(&a.session_id, &to_b.to_string()).await;
    let got_b = drain(&mut b.outbox);
    assert_eq!(got_b.len(), 1, "{got_b:?}");
    assert_eq!(got_b[0]["match_data"]["op_code"], "5");
    assert_eq!(got_b[0]["match_data"]["data"], "aGk=");
    assert!(drain(&mut c.outbox).is_empty());
    assert!(drain(&mut a.outbox).is_empty());
    // Not base64: an error to the sender, nothing relayed.
    let bad = json!({"match_data_send": {"match_id": match_id, "op_code": 1, "data": "!!"}});
    hub.receive(&a.session_id, &bad.to_string()).await;
    assert_eq!(drain(&mut a.outbox)[0]["error"]["code"], 3);
    assert!(drain(&mut b.outbox).is_empty());
}

/// Two hubs joined in process the way NATS joins two nodes: each one's ops
/// and routes are queued, and [`Wire::pump`] hands them to the other.
#[derive(Default)]
struct Wire {
    ops: std::sync::Mutex<Vec<Op>>,
    routes: std::sync::Mutex<Vec<(Route, Arc<str>)>>,
    local: std::sync::OnceLock<Arc<elements_realtime::Local>>,
}

impl Replicator for Wire {
    fn replicate(&self, op: Op) {
        self.ops.lock().unwrap().push(op);
    }
}

impl Fabric for Wire {
    fn deliver(&self, route: Route, envelope: Arc<str>) {
        self.local.get().unwrap().deliver(&route, &envelope);
        self.routes.lock().unwrap().push((route, envelope));
    }
}

impl Wire {
    /// Hands what `self`'s hub (node `from`) sent to `to`.
    fn pump(&self, from: &str, to: &Hub) {
        for op in std::mem::take(&mut *self.ops.lock().unwrap()) {
            to.apply_remote(from, op);
        }
        for (route, envelope) in std::mem::take(&mut *self.routes.lock().unwrap()) {
            to.local().deliver(&route, &envelope);
        }
    }
}

async fn wired(dir: &tempfile::TempDir, node: &str, limits: Limits) -> (Arc<Hub>, Arc<Wire>) {
    let store = elements_store::open(StoreConfig::Sqlite(SqliteConfig::in_data_dir(dir.path())))
        .await
        .unwrap();
    let hub = Hub::new(node, limits, store).await.unwrap();
    let wire = Arc::new(Wire::default());
    let _ = wire.local.set(hub.local().clone());
    let hub = hub.with_fabric(wire.clone()).with_replicator(wire.clone());
    (Arc::new(hub), wire)
}

#[tokio::test]
async fn two_wired_hubs_share_rooms_matches_status_and_the_socket_cap_until_a_peer_expires() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_sockets_per_user: 2,
        ..Limits::default()
    };
    let (a, wa) = wired(&dir, "a", limits.clone()).await;
    let (b, wb) = wired(&dir, "b", limits).await;
    let pump = || {
        wa.pump("a", &b);
        wb.pump("b", &a);
    };
    let (alice_id, bob_id) = (user(), user());
    let mut alice = a.connect(&alice_id, "alice", true, None).unwrap();
    let mut bob = b.connect(&bob_id, "bob", true, None).unwrap();
    pump();

    // A room: bob's join on B lists alice on A; alice sees bob's join event.
    let join = json!({"cid": "j", "channel_join": {"target": "lobby", "type": 1, "persistence": false}});
    a.receive(&alice.session_id, &join.to_string()).await;
    pump();
    b.receive(&bob.session_id, &join.to_string()).await;
    let joined = drain(&mut bob.outbox).remove(0);
    assert_eq!(
        joined["channel"]["presences"][0]["session_id"], alice.session_id,
        "{joined}"
    );
    pump();
    let events = drain(&mut alice.outbox);
    assert!(
        events
            .iter()
            .any(|e| e["channel_presence_event"]["joins"][0]["session_id"] == bob.session_id),
        "{events:?}"
    );

    // A match made on A is found from B; an unknown one is not.
    a.receive(&alice.session_id, r#"{"cid":"m","match_create":{}}"#)
        .await;
    let made = drain(&mut alice.outbox).remove(0);
    let match_id = made["match"]["match_id"].as_str().unwrap().to_owned();
    let join = json!({"cid": "mj", "match_join": {"match_id": match_id}});
    b.receive(&bob.session_id, &join.to_string()).await;
    assert_eq!(
        drain(&mut bob.outbox)[0]["error"]["code"],
        4,
        "not yet replicated"
    );
    pump();
    b.receive(&bob.session_id, &join.to_string()).await;
    let joined = drain(&mut bob.outbox).remove(0);
    assert_eq!(joined["match"]["size"], 2, "{joined}");
    assert_eq!(joined["match"]["presences"][0]["session_id"], alice.session_id);

    // Status: alice follows bob and sees his session on B.
    let follow = json!({"cid": "f", "status_follow": {"user_ids": [bob_id]}});
    a.receive(&alice.session_id, &follow.to_string()).await;
    let followed = drain(&mut alice.outbox).remove(0);
    assert_eq!(
        followed["status"]["presences"][0]["session_id"], bob.session_id,
        "{followed}"
    );

    // The cap counts bob's socket on B: one more on A, then no more.
    let _second = a.connect(&bob_id, "bob", false, None).unwrap();
    assert!(a.connect(&bob_id, "bob", false, None).is_err());

    // B falls silent: alice gets the leaves of what bob was in.
    pump();
    drain(&mut alice.outbox);
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(
        a.expire_peers(std::time::Duration::from_millis(1)),
        vec!["b".to_owned()]
    );
    let events = drain(&mut alice.outbox);
    for kind in [
        "channel_presence_event",
        "match_presence_event",
        "status_presence_event",
    ] {
        assert!(
            events
                .iter()
                .any(|e| e[kind]["leaves"][0]["session_id"] == bob.session_id),
            "{kind}: {events:?}"
        );
    }
    assert_eq!(a.peers(), 0);
    // And the cap no longer counts it.
    assert!(a.connect(&bob_id, "bob", false, None).is_ok());
}
