//! Store benchmark: insert, get by id and find by a unique field; ops/s and
//! p50/p99 latency, on SQLite and (when `ELEMENTS_MONGODB_URI` is set) MongoDB.
//!
//! `cargo bench -p elements-store --bench store_bench` (N with
//! `ELEMENTS_BENCH_N`, default 2000 operations per measurement). One client
//! issuing operations one after another, plus concurrent inserts from 8 tasks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use elements_store::*;
use serde_json::json;

fn report(backend: &str, what: &str, mut lat: Vec<Duration>, wall: Duration) {
    lat.sort();
    let pct = |p: f64| {
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat.get(i).copied().unwrap_or_default()
    };
    println!(
        "{backend:<8} {what:<26} {:>9.0} ops/s   p50 {:>8.1} µs   p99 {:>8.1} µs   (n={})",
        lat.len() as f64 / wall.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        lat.len()
    );
}

async fn bench(store: Arc<dyn DocumentStore>, n: usize) -> Result<()> {
    let b = store.backend();
    let c = Namespace::core().collection("bench_users")?;
    store.ensure_index(&c, &IndexSpec::unique(&["email"])?).await?;

    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let d = store
            .insert(&c, json!({"email": format!("user{i}@example.com"), "name": format!("User {i}"), "coins": i, "tags": ["a", "b"]}))
            .await?;
        lat.push(t.elapsed());
        ids.push(d["_id"].as_str().unwrap_or_default().to_string());
    }
    report(b, "insert", lat, start.elapsed());

    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let id = &ids[(i * 7919) % n];
        let t = Instant::now();
        let d = store.get(&c, id).await?;
        lat.push(t.elapsed());
        assert!(d.is_some());
    }
    report(b, "get by id", lat, start.elapsed());

    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let f = Filter::eq("email", format!("user{}@example.com", (i * 7919) % n))?;
        let t = Instant::now();
        let d = store.find_one(&c, &f).await?;
        lat.push(t.elapsed());
        assert!(d.is_some());
    }
    report(b, "find by unique field", lat, start.elapsed());

    let tasks = 8;
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|w| {
            let (store, c) = (store.clone(), c.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                for i in 0..n / tasks {
                    let t = Instant::now();
                    store
                        .insert(&c, json!({"email": format!("c{w}-{i}@example.com")}))
                        .await?;
                    lat.push(t.elapsed());
                }
                Ok::<_, StoreError>(lat)
            })
        })
        .collect();
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(h.await.map_err(|e| StoreError::Internal(e.to_string()))??);
    }
    report(b, "insert (8 concurrent)", lat, start.elapsed());
    store.drop_collection(&c).await
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we
    // need to honour, but keep the run short there.
    let n: usize = std::env::var("ELEMENTS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            2000
        } else {
            50
        });
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(async move {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Internal(e.to_string()))?;
        let sqlite = open(StoreConfig::Sqlite(SqliteConfig::in_data_dir(dir.path()))).await?;
        bench(sqlite, n).await?;
        match MongoConfig::from_env() {
            Some(mut cfg) => {
                cfg.database = format!("elements_bench_{}", std::process::id());
                let m = mongo::MongoStore::open(cfg.clone(), OpenOptions::default()).await?;
                let store = open(StoreConfig::Mongo(cfg)).await?;
                let r = bench(store, n).await;
                m.drop_database().await?;
                r?;
            }
            None => println!("mongodb  not run: ELEMENTS_MONGODB_URI is not set"),
        }
        Ok::<_, StoreError>(())
    });
    if let Err(e) = result {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}
