//! The hub without a socket, over a real SQLite store: a full outbox kicks
//! its session (and only it), a disconnect is seen by the room, and match
//! data goes to the addressed presences only.

use std::sync::Arc;

use elements_realtime::{Hub, Limits};
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
