//! SQLite-only checks: index usage, durability settings, reopening.

use elements_store::*;
use serde_json::json;

#[tokio::test]
async fn find_by_unique_field_uses_the_index() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = SqliteConfig::in_data_dir(dir.path());
    let store = open(StoreConfig::Sqlite(cfg.clone())).await.expect("open");
    let c = Namespace::core().collection("users").expect("name");
    store
        .ensure_index(&c, &IndexSpec::unique(&["email"]).expect("spec"))
        .await
        .expect("index");
    store
        .ensure_index(&c, &IndexSpec::unique(&["p", "s"]).expect("spec"))
        .await
        .expect("index");
    for i in 0..100 {
        store
            .insert(
                &c,
                json!({"email": format!("u{i}@e"), "p": "dev", "s": i.to_string()}),
            )
            .await
            .expect("insert");
    }
    let conn = rusqlite_connection(&cfg.path);
    for filter in [
        json!({"email": "u5@e"}),
        json!({"p": "dev", "s": "7"}),
        json!({"_id": "x"}),
    ] {
        let (sql, n) = sqlite::debug_find_sql(&c, &Filter::parse(&filter).expect("filter"));
        let plan = explain(&conn, &sql, n);
        assert!(
            plan.contains("USING INDEX") || plan.contains("USING PRIMARY KEY"),
            "{filter}: {plan}"
        );
        assert!(!plan.contains("SCAN"), "{filter}: {plan}");
    }
    let found = store
        .find_one(&c, &Filter::parse(&json!({"email": "u5@e"})).expect("filter"))
        .await
        .expect("find");
    assert_eq!(found.expect("one")["s"], json!("5"));
}

fn rusqlite_connection(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("open db")
}

fn explain(conn: &rusqlite::Connection, sql: &str, n: usize) -> String {
    let params: Vec<rusqlite::types::Value> = (0..n).map(|_| rusqlite::types::Value::Null).collect();
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("prepare");
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |r| {
            r.get::<_, String>(3)
        })
        .expect("explain");
    rows.map(|r| r.expect("row")).collect::<Vec<_>>().join(" | ")
}

#[tokio::test]
async fn pragmas_and_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = SqliteConfig::in_data_dir(dir.path().join("nested/data"));
    let c = Namespace::core().collection("things").expect("name");
    {
        let store = open(StoreConfig::Sqlite(cfg.clone()))
            .await
            .expect("open creates the dir");
        store
            .ensure_index(&c, &IndexSpec::unique(&["k"]).expect("spec"))
            .await
            .expect("index");
        store
            .insert(&c, json!({"_id": "a", "k": 1}))
            .await
            .expect("insert");
    }
    let conn = rusqlite_connection(&cfg.path);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(mode, "wal");
    let store = open(StoreConfig::Sqlite(cfg)).await.expect("reopen");
    assert_eq!(
        store.get(&c, "a").await.expect("get").expect("doc")["k"],
        json!(1)
    );
    let e = store
        .insert(&c, json!({"k": 1}))
        .await
        .expect_err("index survives reopen");
    assert!(e.is_duplicate_key(), "{e:?}");
}

#[tokio::test]
async fn background_sweep_deletes_expired() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = SqliteConfig::in_data_dir(dir.path());
    cfg.sweep_interval = std::time::Duration::from_millis(50);
    let clock = ManualClock::new();
    let store = open_with(
        StoreConfig::Sqlite(cfg.clone()),
        OpenOptions {
            clock: clock.clone(),
            background_sweep: true,
        },
    )
    .await
    .expect("open");
    let c = Namespace::core().collection("tokens").expect("name");
    let now = clock.now_millis();
    store
        .insert(&c, json!({"_id": "t", "_expiresAt": now + 10}))
        .await
        .expect("insert");
    clock.advance(1_000);
    let conn = rusqlite_connection(&cfg.path);
    let mut left = 1;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        left = conn
            .query_row("SELECT COUNT(*) FROM \"core.tokens\"", [], |r| r.get::<_, i64>(0))
            .expect("count");
        if left == 0 {
            break;
        }
    }
    assert_eq!(left, 0, "the background sweep did not delete the expired row");
}

/// The data folder and the database (password hashes, signing keys) are
/// the owner's alone.
#[cfg(unix)]
#[tokio::test]
async fn the_database_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = SqliteConfig::in_data_dir(dir.path().join("data"));
    let store = open(StoreConfig::Sqlite(cfg.clone())).await.expect("open");
    let c = Namespace::core().collection("things").expect("name");
    store.insert(&c, json!({"k": 1})).await.expect("insert");
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(cfg.path.parent().unwrap()), 0o700);
    let db = cfg.path.file_name().unwrap().to_str().unwrap().to_owned();
    let mut seen = 0;
    for entry in std::fs::read_dir(cfg.path.parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_str().unwrap().starts_with(&db) {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 2, "the database and its write-ahead log");
}

/// A database written before table names were encoded (upper-case letters
/// as they are) opens with its data under the same names.
#[tokio::test]
async fn tables_from_before_the_name_encoding_keep_their_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = SqliteConfig::in_data_dir(dir.path().join("data"));
    let game = Namespace::element("Game", None)
        .expect("ns")
        .collection("Scores")
        .expect("name");
    let lower = Namespace::element("game", None)
        .expect("ns")
        .collection("scores")
        .expect("name");
    {
        let store = open(StoreConfig::Sqlite(cfg.clone())).await.expect("open");
        store
            .insert(&game, json!({"_id": "a", "n": 1}))
            .await
            .expect("insert");
    }
    // As the old code named it.
    let conn = rusqlite_connection(&cfg.path);
    conn.execute_batch(r#"ALTER TABLE "el.^game.^scores" RENAME TO "el.Game.Scores""#)
        .expect("rename to the old name");
    drop(conn);
    let store = open(StoreConfig::Sqlite(cfg.clone())).await.expect("reopen");
    assert_eq!(store.get(&game, "a").await.expect("get").expect("kept")["n"], 1);
    assert_eq!(store.count(&lower, &Filter::all()).await.expect("count"), 0);
}

/// Concurrent writes share commits (group commit) yet each stays atomic on
/// its own: a batch whose second insert collides leaves no trace of its
/// first, and the writes committed beside it are all there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_commit_together_and_fail_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(StoreConfig::Sqlite(SqliteConfig::in_data_dir(dir.path())))
        .await
        .expect("open");
    let c = Namespace::core().collection("group").expect("name");
    store.insert(&c, json!({"_id": "taken"})).await.expect("insert");
    let counter = Namespace::core().collection("counter").expect("name");
    store
        .insert(&counter, json!({"_id": "n", "n": 0}))
        .await
        .expect("insert");
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let (store, c, counter) = (store.clone(), c.clone(), counter.clone());
            tokio::spawn(async move {
                let second = if i % 3 == 0 {
                    "taken".to_string()
                } else {
                    format!("b{i}")
                };
                let batch = store
                    .transaction(vec![
                        WriteOp::Insert {
                            collection: c.clone(),
                            document: json!({"_id": format!("a{i}")}),
                        },
                        WriteOp::Insert {
                            collection: c.clone(),
                            document: json!({"_id": second}),
                        },
                    ])
                    .await;
                let bump = Update::parse(&json!({"$inc": {"n": 1}})).expect("update");
                store
                    .find_one_and_update(&counter, &Filter::by_id("n"), &bump, &FindAndModify::default())
                    .await
                    .expect("increment");
                (i, batch)
            })
        })
        .collect();
    for task in tasks {
        let (i, batch) = task.await.expect("join");
        let first = store.get(&c, &format!("a{i}")).await.expect("get");
        if i % 3 == 0 {
            assert!(batch.expect_err("collides").is_duplicate_key());
            assert!(first.is_none(), "batch {i} failed but its first insert stayed");
        } else {
            batch.expect("batch");
            assert!(
                first.is_some(),
                "batch {i} succeeded but its first insert is missing"
            );
        }
    }
    let n = store.get(&counter, "n").await.expect("get").expect("counter");
    assert_eq!(n["n"], json!(400), "every increment counted exactly once");
    // Reopened from disk, everything acknowledged is there.
    drop(store);
    let store = open(StoreConfig::Sqlite(SqliteConfig::in_data_dir(dir.path())))
        .await
        .expect("reopen");
    assert_eq!(store.count(&c, &Filter::all()).await.expect("count"), 1 + 2 * 266);
}
