//! Idle sockets: what holding N logged-in users' realtime sockets costs the
//! server (its RSS, the release binary as a child process).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::node::{self, NodeOptions};
use crate::socket::{self, Ws};

/// Sockets being opened at once.
const CONNECT_CONCURRENCY: usize = 64;

/// The goal the figure is printed beside: 10,000 sockets under 200 MB.
const GOAL_SOCKETS: f64 = 10_000.0;
const GOAL_MB: f64 = 200.0;

pub async fn run(sockets: usize, hold: Duration) {
    println!(
        "== idle sockets: {sockets} users, one socket each, held {} s",
        hold.as_secs()
    );
    let client_files = node::raise_own_file_limit();
    let dir = tempfile::tempdir().expect("temp dir");
    // The node's socket cap (`max_sockets`, 10,000 by default) is set to
    // the sockets asked for, so a larger run measures rather than refuses;
    // each user holds one socket (the default allows 8). The server's
    // open-file limit still bounds what it can hold.
    let config = format!("[realtime]\nmax_sockets = {}\n", sockets.max(1));
    let server = node::start(&NodeOptions {
        dir: dir.path(),
        config: &config,
        nats_url: None,
    })
    .await;
    let pid = server.pid();
    println!(
        "server: release `elements` binary, child pid {pid} (RSS is its own), SQLite, open-file \
         limit {}; client: this process, open-file limit {client_files}",
        node::open_file_limit(pid).map_or("?".to_owned(), |l| l.to_string()),
    );
    let rss_up = node::rss_kib(pid);

    let started = Instant::now();
    let tokens = socket::login_devices(server.addr, "bench-idle", sockets).await;
    println!(
        "logged in {sockets} users (device auth through the Nakama API, 16 at once) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The server trims its heap every 10 s: what the logins freed is
    // handed back before the baseline is read.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let rss_before = node::rss_kib(pid);

    let client_before = node::rss_kib(std::process::id());
    let started = Instant::now();
    let (mut open, refusals) = connect_all(server.addr, &tokens).await;
    let connect_secs = started.elapsed().as_secs_f64();
    let rss_open = node::rss_kib(pid);
    tokio::time::sleep(hold).await;
    let rss_held = node::rss_kib(pid);
    let alive = still_open(&mut open).await;
    // After every socket has read a frame (the pong): what a socket holds
    // once it has been used.
    let client_after = node::rss_kib(std::process::id());
    println!(
        "opened {} sockets in {connect_secs:.1} s ({} refused{}); {alive} answered a ping after \
         the hold",
        open.len(),
        refusals.len(),
        refusals
            .first()
            .map_or(String::new(), |e| format!(", first: {e}")),
    );

    let mib = |kib: u64| kib as f64 / 1024.0;
    let added = rss_held.saturating_sub(rss_before);
    let per_socket_kib = if alive > 0 {
        added as f64 / alive as f64
    } else {
        0.0
    };
    println!(
        "server RSS: {:.1} MiB up, {:.1} MiB after the logins (before the sockets), {:.1} MiB \
         with the sockets open, {:.1} MiB after {} s idle",
        mib(rss_up),
        mib(rss_before),
        mib(rss_open),
        mib(rss_held),
        hold.as_secs()
    );
    let at_goal_mb = rss_before as f64 * 1024.0 / 1e6 + per_socket_kib * 1024.0 * GOAL_SOCKETS / 1e6;
    println!(
        "sockets held {alive}: {:.1} MiB added, {per_socket_kib:.1} KiB per socket; at 10,000 \
         sockets that is {at_goal_mb:.0} MB of server RSS (goal: 10,000 sockets under \
         {GOAL_MB:.0} MB: {})",
        mib(added),
        if at_goal_mb < GOAL_MB { "met" } else { "NOT met" }
    );

    println!(
        "client (this process, tungstenite with a {} byte read buffer): {:.1} KiB per socket",
        socket::read_buffer(),
        client_after.saturating_sub(client_before) as f64 / open.len().max(1) as f64
    );

    // Closed before the server goes, so the client doesn't count resets.
    for mut ws in open {
        let _ = ws.close(None).await;
    }
}

/// Opens one socket per token, `CONNECT_CONCURRENCY` at a time; the open
/// sockets and the errors of the others.
async fn connect_all(addr: std::net::SocketAddr, tokens: &[String]) -> (Vec<Ws>, Vec<String>) {
    let mut open = Vec::with_capacity(tokens.len());
    let mut errors = Vec::new();
    for chunk in tokens.chunks(CONNECT_CONCURRENCY) {
        let attempts = chunk.iter().map(|token| socket::connect(addr, token));
        for result in futures_util::future::join_all(attempts).await {
            match result {
                Ok(ws) => open.push(ws),
                Err(e) => errors.push(e),
            }
        }
    }
    (open, errors)
}

/// How many of the sockets answer a ping with a pong within 10 s: those
/// the server still holds.
async fn still_open(sockets: &mut [Ws]) -> usize {
    let mut alive = 0;
    for chunk in sockets.chunks_mut(256) {
        let pings = chunk.iter_mut().map(|ws| async move {
            if ws
                .send(Message::text(r#"{"cid":"held","ping":{}}"#))
                .await
                .is_err()
            {
                return false;
            }
            let answer = tokio::time::timeout(Duration::from_secs(10), async {
                while let Some(Ok(frame)) = ws.next().await {
                    if let Message::Text(text) = frame
                        && text.contains("pong")
                    {
                        return true;
                    }
                }
                false
            });
            answer.await.unwrap_or(false)
        });
        alive += futures_util::future::join_all(pings)
            .await
            .into_iter()
            .filter(|&ok| ok)
            .count();
    }
    alive
}
