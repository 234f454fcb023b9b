//! The realtime socket's benchmark (issue 17): what idle sockets cost the
//! server, and how fast a room fans messages out, on one node and on two
//! nodes sharing a store and a real `nats-server`.
//!
//! Every server is the release `elements` binary as a child process (its
//! RSS is its own); the clients (device logins through the Nakama API,
//! then WebSockets speaking Nakama's JSON envelopes to `/ws?token=`) run
//! in this process on one thread, over loopback. Run with
//! `cargo xtask bench --bench realtime`. Knobs: `BENCH_SOCKETS` (idle
//! sockets, default 10000), `BENCH_IDLE_SECONDS` (how long they are held,
//! default 15), `BENCH_ROOM` (room members, default 100, split evenly on
//! two nodes), `BENCH_SENDERS` (default 10), `BENCH_WINDOW` (messages one
//! sender may have in flight, default 8), `BENCH_SECONDS` (measured
//! sending, default 5, after 1 s of warm-up), `BENCH_CLIENT_READ_BUFFER`
//! (the client sockets' read buffer, default 4096 bytes), `BENCH_ONLY`
//! (`idle`, `one node` or `two nodes`: run only the parts whose name
//! contains it).
//!
//! Figures, not a pass/fail test: nothing here asserts a timing.

mod common;
#[path = "realtime/fanout.rs"]
mod fanout;
#[path = "realtime/idle.rs"]
mod idle;
#[path = "realtime/node.rs"]
mod node;
#[path = "realtime/socket.rs"]
mod socket;

use std::time::Duration;

use common::{Request, env_or};
use node::{Nats, NodeOptions};

/// The rate limits lifted for the senders (a config file of the bench's;
/// the defaults, 50/s with a burst of 100, stay as they are).
const FANOUT_CONFIG: &str = "[realtime]\nmessages_per_sec = 1000000\nmessage_burst = 1000000\n";

fn main() {
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wants = |name: &str| only.is_empty() || name.contains(only.as_str());
    let sockets = env_or("BENCH_SOCKETS", 10_000) as usize;
    let hold = Duration::from_secs(env_or("BENCH_IDLE_SECONDS", 15));
    let room = env_or("BENCH_ROOM", 100).max(2) as usize;
    let shape = |nodes: &[&node::Node]| fanout::Shape {
        nodes: nodes
            .iter()
            .enumerate()
            .map(|(k, n)| {
                let members = room / nodes.len() + usize::from(k < room % nodes.len());
                (n.addr, n.pid(), members)
            })
            .collect(),
        senders: env_or("BENCH_SENDERS", 10).max(1) as usize,
        window: env_or("BENCH_WINDOW", 8).max(1) as usize,
        seconds: env_or("BENCH_SECONDS", 5).max(1),
    };
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();

    if wants("idle") {
        local.block_on(&client, idle::run(sockets, hold));
    }

    if wants("one node") {
        local.block_on(&client, async {
            let dir = tempfile::tempdir().expect("temp dir");
            let server = node::start(&NodeOptions {
                dir: dir.path(),
                config: FANOUT_CONFIG,
                nats_url: None,
            })
            .await;
            let shape = shape(&[&server]);
            println!(
                "== room fan-out, one node: {room} members, {} senders (window {}), {} s after 1 s \
                 of warm-up, joined without persistence (messages not stored)",
                shape.senders, shape.window, shape.seconds
            );
            let native = common::run(server.addr, 16, Duration::from_secs(3), |_| {
                Request::get("/health")
            })
            .await;
            println!(
                "baseline: native GET /health {:.0} req/s (16 connections, 3 s, {} errors)",
                native.rate(),
                native.errors
            );
            let outcome = fanout::run(&shape, "one").await;
            report(&outcome);
        });
    }

    if wants("two nodes") {
        local.block_on(&client, async {
            let Some(nats) = Nats::start() else {
                println!("== room fan-out, two nodes: skipped (no nats-server could be started)");
                return;
            };
            let dir = tempfile::tempdir().expect("temp dir");
            let url = nats.url();
            let options = NodeOptions {
                dir: dir.path(),
                config: FANOUT_CONFIG,
                nats_url: Some(&url),
            };
            let a = node::start(&options).await;
            let b = node::start(&options).await;
            let shape = shape(&[&a, &b]);
            println!(
                "== room fan-out, two nodes (one SQLite store, nats-server {url}): {} + {} members, \
                 {} senders on both (window {}), {} s after 1 s of warm-up, without persistence",
                shape.nodes[0].2, shape.nodes[1].2, shape.senders, shape.window, shape.seconds
            );
            let outcome = fanout::run(&shape, "two").await;
            report(&outcome);
            if outcome.probe_reached < outcome.members {
                println!(
                    "  a message reached {} of {} members before the run: only the sender's own \
                     node delivers it (cross-node fan-out over NATS is pending), so about half \
                     of the expected deliveries arrive; each sender's window waits only for its \
                     node's members",
                    outcome.probe_reached, outcome.members
                );
            }
        });
    }
}

fn report(outcome: &fanout::Outcome) {
    println!(
        "{} messages sent to {} members: {} of {} deliveries arrived ({:.1} %), {:.0} deliveries/s \
         ({:.0} messages/s), latency p50 {:.2} ms, p99 {:.2} ms",
        outcome.sent,
        outcome.members,
        outcome.delivered,
        outcome.expected,
        100.0 * outcome.delivered as f64 / outcome.expected.max(1) as f64,
        outcome.rate(),
        outcome.sent as f64 / outcome.elapsed.as_secs_f64().max(1e-9),
        outcome.percentile_ms(50.0),
        outcome.percentile_ms(99.0),
    );
    let seconds = outcome.elapsed.as_secs_f64().max(1e-9);
    println!(
        "  CPU in that time: clients (this process, one thread) {:.0} % of a core, server{} {:.0} % \
         of a core ({} cores on this machine, shared)",
        100.0 * outcome.client_cpu / seconds,
        if outcome.nodes > 1 { "s" } else { "" },
        100.0 * outcome.server_cpu / seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    if outcome.disconnected > 0 || outcome.stalled > 0 {
        println!(
            "  {} members were disconnected, {} senders stopped waiting for their messages",
            outcome.disconnected, outcome.stalled
        );
    }
}
