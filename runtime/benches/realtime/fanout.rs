//! Room fan-out: members of one room, some of them sending; every member
//! receives every message (its sender too). Each message's content carries
//! its send time, so each delivery's latency is measured on arrival, in
//! this process (one clock for senders and receivers).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::node;
use crate::socket::{self, Ws};

/// The run's shape.
pub struct Shape {
    /// Per node: its address, its process id and its members.
    pub nodes: Vec<(SocketAddr, u32, usize)>,
    /// Members that send (spread over the nodes).
    pub senders: usize,
    /// Messages one sender may have sent and not yet seen come back.
    pub window: usize,
    /// Measured sending time (after a 1 s warm-up).
    pub seconds: u64,
}

/// What the receivers saw since the last reset.
#[derive(Default)]
struct Tally {
    delivered: u64,
    latencies_us: Vec<u32>,
    last_delivery: Option<Instant>,
}

/// What the senders and receivers share (one thread: no locks).
struct Room {
    epoch: Instant,
    tally: RefCell<Tally>,
    /// Messages some member they should reach hasn't received yet:
    /// number → (sender, members still to receive it).
    pending: RefCell<HashMap<u64, (usize, u32)>>,
    /// Per sender: messages it may still send before the ones in flight
    /// have reached everyone. Bounding what every member has yet to read
    /// keeps the server's per-socket send queue (256) from overflowing,
    /// which would disconnect the member (as it should a slow client).
    windows: Vec<Semaphore>,
    /// Per member: how many members its messages should reach.
    reach: RefCell<Vec<u32>>,
    next_number: Cell<u64>,
    disconnected: Cell<usize>,
}

pub struct Outcome {
    pub nodes: usize,
    pub members: usize,
    pub sent: u64,
    pub delivered: u64,
    pub expected: u64,
    /// From the first measured send to the last delivery.
    pub elapsed: Duration,
    pub latencies_us: Vec<u32>,
    /// Of one message sent before the run, how many members received it
    /// (all of them when messages cross nodes).
    pub probe_reached: usize,
    /// Members the server disconnected during the run.
    pub disconnected: usize,
    /// Senders that stopped because their messages stopped arriving.
    pub stalled: usize,
    /// CPU seconds used in the measured round by this process (the
    /// clients) and by the server processes.
    pub client_cpu: f64,
    pub server_cpu: f64,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// Content keys unlikely to occur elsewhere in an envelope, found by a
/// substring search whether or not the content's quotes are escaped.
const TIME_KEY: &str = "bench_t";
const NUMBER_KEY: &str = "bench_n";

/// How long a sender waits for a place in its window before it stops.
const STALL: Duration = Duration::from_secs(5);

/// The number after `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(key)? + key.len()..];
    let start = rest.find(|c: char| c.is_ascii_digit())?;
    let digits = &rest[start..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Runs on a current-thread runtime, inside a `LocalSet`.
pub async fn run(shape: &Shape, room_name: &str) -> Outcome {
    let members: usize = shape.nodes.iter().map(|(_, _, n)| n).sum();
    // node_of[member]: the node the member's socket is on.
    let mut node_of = Vec::new();
    let mut sockets = Vec::new();
    for (node, (addr, _, count)) in shape.nodes.iter().enumerate() {
        let tokens =
            socket::login_devices(*addr, &format!("bench-room-{room_name}-node{node}"), *count).await;
        for token in tokens {
            sockets.push(socket::connect(*addr, &token).await.expect("a member's socket"));
            node_of.push(node);
        }
    }
    // Senders take turns between the nodes.
    let mut sender_ids = Vec::new();
    let mut by_node: Vec<Vec<usize>> = vec![Vec::new(); shape.nodes.len()];
    for (member, &node) in node_of.iter().enumerate() {
        by_node[node].push(member);
    }
    'pick: for i in 0..members {
        for node in &by_node {
            if let Some(&member) = node.get(i) {
                sender_ids.push(member);
                if sender_ids.len() == shape.senders.min(members) {
                    break 'pick;
                }
            }
        }
    }

    let join = serde_json::json!({"cid": "join", "channel_join": {
        "target": room_name, "type": 1, "persistence": false, "hidden": false,
    }})
    .to_string();
    let mut channel_id = String::new();
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for mut ws in sockets {
        ws.send(Message::text(join.clone())).await.expect("join sent");
        let answer = joined(&mut ws).await;
        channel_id = answer["channel"]["id"].as_str().expect("a channel id").to_owned();
        let (write, read) = ws.split();
        writers.push(Some(write));
        readers.push(read);
    }

    let room = Rc::new(Room {
        epoch: Instant::now(),
        tally: RefCell::default(),
        pending: RefCell::default(),
        windows: (0..members).map(|_| Semaphore::new(shape.window)).collect(),
        reach: RefCell::new(vec![members as u32; members]),
        next_number: Cell::new(0),
        disconnected: Cell::new(0),
    });
    let stop_reading = Rc::new(tokio::sync::Notify::new());
    let mut reader_tasks = Vec::new();
    for (me, read) in readers.into_iter().enumerate() {
        reader_tasks.push(tokio::task::spawn_local(receive(
            me,
            read,
            room.clone(),
            stop_reading.clone(),
        )));
    }
    // The joins' presence events settle before anything is sent.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut senders: Senders = sender_ids
        .iter()
        .map(|&id| (id, writers[id].take().expect("one writer per sender")))
        .collect();

    // One message first: does it reach the members on other nodes? If not,
    // each sender's window waits only for the members of its own node.
    let probe_reached = {
        let (id, write) = &mut senders[0];
        room.windows[*id]
            .acquire()
            .await
            .expect("the window stays open")
            .forget();
        send_one(&room, *id, write, &channel_id).await;
        let deadline = Instant::now() + Duration::from_secs(3);
        while !room.pending.borrow().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = room
            .pending
            .borrow_mut()
            .drain()
            .map(|(_, (_, left))| left)
            .sum::<u32>();
        members - left as usize
    };
    if probe_reached < members {
        let mut reach = room.reach.borrow_mut();
        for (member, &node) in node_of.iter().enumerate() {
            reach[member] = by_node[node].len() as u32;
        }
        // The probe's window place, which its last receiver would have
        // given back.
        room.windows[senders[0].0].add_permits(1);
    }

    // Warm-up, then the measured round on the same sockets.
    let (senders, _, _) = send_round(senders, &channel_id, &room, Duration::from_secs(1)).await;
    drain(&room, Duration::from_secs(2)).await;
    *room.tally.borrow_mut() = Tally::default();
    let cpu = || {
        let servers: f64 = shape
            .nodes
            .iter()
            .map(|(_, pid, _)| node::cpu_seconds(*pid))
            .sum();
        (node::cpu_seconds(std::process::id()), servers)
    };
    let cpu_before = cpu();
    let started = Instant::now();
    let (_senders, sent, stalled) =
        send_round(senders, &channel_id, &room, Duration::from_secs(shape.seconds)).await;
    let expected = sent * members as u64;
    // Stragglers: until everything arrived, or nothing more came for 2 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = room.tally.borrow().delivered;
        if before >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if room.tally.borrow().delivered == before {
            drain(&room, Duration::from_secs(2)).await;
            break;
        }
    }
    let cpu_after = cpu();
    stop_reading.notify_waiters();
    for task in reader_tasks {
        let _ = task.await;
    }
    let mut tally = room.tally.borrow_mut();
    let mut latencies_us = std::mem::take(&mut tally.latencies_us);
    latencies_us.sort_unstable();
    Outcome {
        nodes: shape.nodes.len(),
        members,
        sent,
        delivered: tally.delivered,
        expected,
        elapsed: tally.last_delivery.unwrap_or(started) - started,
        latencies_us,
        probe_reached,
        disconnected: room.disconnected.get(),
        stalled,
        client_cpu: cpu_after.0 - cpu_before.0,
        server_cpu: cpu_after.1 - cpu_before.1,
    }
}

/// The answer to the join (skipping presence events of earlier joiners).
async fn joined(ws: &mut Ws) -> serde_json::Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a join answer within 10 s")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            let envelope: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            assert!(envelope.get("error").is_none(), "join refused: {envelope}");
            if envelope.get("channel").is_some() {
                return envelope;
            }
        }
    }
}

/// Waits until no delivery arrived for `quiet`.
async fn drain(room: &Room, quiet: Duration) {
    let mut seen = room.tally.borrow().delivered;
    loop {
        tokio::time::sleep(quiet).await;
        let now = room.tally.borrow().delivered;
        if now == seen {
            return;
        }
        seen = now;
    }
}

type Senders = Vec<(usize, SplitSink<Ws, Message>)>;

/// Sends one message from member `id`, stamped with its number and send
/// time; false when the socket is gone.
async fn send_one(room: &Room, id: usize, write: &mut SplitSink<Ws, Message>, channel_id: &str) -> bool {
    let number = room.next_number.get();
    room.next_number.set(number + 1);
    let reach = room.reach.borrow()[id];
    room.pending.borrow_mut().insert(number, (id, reach));
    let content = format!(
        r#"{{"{TIME_KEY}":{},"{NUMBER_KEY}":{number}}}"#,
        room.epoch.elapsed().as_micros()
    );
    let envelope = serde_json::json!({"channel_message_send": {
        "channel_id": channel_id, "content": content,
    }});
    write.send(Message::text(envelope.to_string())).await.is_ok()
}

/// Every sender sends for `duration`, within its window; the senders, how
/// many messages they sent, and how many stalled.
async fn send_round(
    senders: Senders,
    channel_id: &str,
    room: &Rc<Room>,
    duration: Duration,
) -> (Senders, u64, usize) {
    let until = Instant::now() + duration;
    let mut tasks = Vec::new();
    for (id, mut write) in senders {
        let (room, channel_id) = (room.clone(), channel_id.to_owned());
        tasks.push(tokio::task::spawn_local(async move {
            let (mut sent, mut stalled) = (0u64, false);
            while Instant::now() < until {
                let permit = match tokio::time::timeout(STALL, room.windows[id].acquire()).await {
                    Ok(permit) => permit.expect("the window stays open"),
                    Err(_) => {
                        stalled = true;
                        break;
                    }
                };
                // Given back when the message has reached every member it
                // should.
                permit.forget();
                if !send_one(&room, id, &mut write, &channel_id).await {
                    break;
                }
                sent += 1;
            }
            (id, write, sent, stalled)
        }));
    }
    let (mut back, mut total, mut stalls) = (Vec::new(), 0, 0);
    for task in tasks {
        let (id, write, sent, stalled) = task.await.expect("sender task");
        back.push((id, write));
        total += sent;
        stalls += usize::from(stalled);
    }
    (back, total, stalls)
}

/// One member's receiver: counts each channel message and its latency,
/// and gives a sender its window place back once its message has reached
/// everyone it should.
async fn receive(me: usize, mut read: SplitStream<Ws>, room: Rc<Room>, stop: Rc<tokio::sync::Notify>) {
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        let frame = tokio::select! {
            () = &mut stopped => return,
            frame = read.next() => frame,
        };
        let Some(Ok(Message::Text(text))) = frame else {
            match frame {
                Some(Ok(Message::Close(reason))) => {
                    eprintln!("member {me}: closed by the server: {reason:?}");
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => eprintln!("member {me}: socket error: {e}"),
                None => eprintln!("member {me}: socket closed"),
            }
            room.disconnected.set(room.disconnected.get() + 1);
            return;
        };
        if !text.contains("\"channel_message\"") {
            continue;
        }
        let (Some(sent_us), Some(number)) = (number_after(&text, TIME_KEY), number_after(&text, NUMBER_KEY))
        else {
            continue;
        };
        let latency_us = (room.epoch.elapsed().as_micros() as u64).saturating_sub(sent_us);
        {
            let mut pending = room.pending.borrow_mut();
            if let Some((sender, left)) = pending.get_mut(&number) {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    room.windows[*sender].add_permits(1);
                    pending.remove(&number);
                }
            }
        }
        let mut t = room.tally.borrow_mut();
        t.delivered += 1;
        t.latencies_us.push(latency_us.min(u32::MAX as u64) as u32);
        t.last_delivery = Some(Instant::now());
    }
}
