//! Durability of the embedded backend: a writer process is SIGKILLed in the
//! middle of a write load; after reopening, every write it acknowledged is there.
//!
//! The writer is this same test binary re-run with `ELEMENTS_CRASH_CHILD_DB`
//! set (see `child_writer`), printing `ACK ...` after each acknowledged write.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use elements_store::*;
use serde_json::json;

const CHILD_ENV: &str = "ELEMENTS_CRASH_CHILD_DB";

/// Not a test on its own: the write load, run in a child process.
#[test]
fn child_writer() {
    let Ok(db) = std::env::var(CHILD_ENV) else { return };
    let round: u64 = std::env::var("ELEMENTS_CRASH_ROUND")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut cfg = SqliteConfig::in_data_dir(&db);
        cfg.readers = 1;
        let store = open(StoreConfig::Sqlite(cfg)).await.expect("open");
        let c = Namespace::core().collection("acks").expect("name");
        let tasks: Vec<_> = (0..4u64)
            .map(|w| {
                let (store, c) = (store.clone(), c.clone());
                tokio::spawn(async move {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let inc = Update::parse(&json!({"$inc": {"n": 1}})).expect("update");
                    let up = FindAndModify {
                        upsert: true,
                        ..Default::default()
                    };
                    let mut i = 0u64;
                    while Instant::now() < deadline {
                        let id = format!("r{round}-w{w}-{i}");
                        if store
                            .insert(&c, json!({"_id": id, "payload": "x".repeat(200)}))
                            .await
                            .is_ok()
                        {
                            println!("ACK insert {id}");
                        }
                        let ctr = format!("ctr-{w}");
                        if let Ok(Some(d)) = store
                            .find_one_and_update(&c, &Filter::by_id(&ctr), &inc, &up)
                            .await
                        {
                            println!("ACK inc {ctr} {}", d["n"]);
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_writes_keeps_every_acknowledged_write() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("test binary");
    let mut acked_inserts = Vec::new();
    let mut acked_counters: std::collections::HashMap<String, i64> = Default::default();
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env("ELEMENTS_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let it write for a while (at least 200 acknowledged inserts or 20 s),
        // then kill it mid-flight.
        let start = Instant::now();
        let mut seen = 0;
        let mut lines = Vec::new();
        while seen < 200 && start.elapsed() < Duration::from_secs(20) {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
                if l.starts_with("ACK insert") {
                    seen += 1;
                }
                lines.push(l);
            }
        }
        child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
        let status = child.wait().expect("wait");
        assert!(!status.success(), "the writer should have been killed");
        reader.join().expect("reader");
        lines.extend(rx.try_iter());
        let before = acked_inserts.len();
        for l in &lines {
            let parts: Vec<&str> = l.split_whitespace().collect();
            match parts.as_slice() {
                ["ACK", "insert", id] => acked_inserts.push(id.to_string()),
                ["ACK", "inc", ctr, n] => {
                    let n: i64 = n.parse().expect("number");
                    let e = acked_counters.entry(ctr.to_string()).or_default();
                    *e = (*e).max(n);
                }
                _ => {}
            }
        }
        assert!(
            acked_inserts.len() - before >= 50,
            "round {round}: too few acknowledged writes: {lines:?}"
        );

        // Reopen after the crash: every acknowledged write is there.
        let store = open(StoreConfig::Sqlite(SqliteConfig::in_data_dir(dir.path())))
            .await
            .expect("reopen");
        let c = Namespace::core().collection("acks").expect("name");
        for id in &acked_inserts {
            assert!(
                store.get(&c, id).await.expect("get").is_some(),
                "round {round}: acknowledged {id} lost"
            );
        }
        for (ctr, n) in &acked_counters {
            let d = store.get(&c, ctr).await.expect("get").expect("counter");
            assert!(
                d["n"].as_i64().unwrap_or(0) >= *n,
                "round {round}: counter {ctr} lost increments: {d} < {n}"
            );
        }
        eprintln!(
            "round {round}: {} acknowledged inserts, counters {:?}: all present after SIGKILL",
            acked_inserts.len(),
            acked_counters
        );
    }
}
