//! The store's conformance suite: the whole contract, written once, run
//! against SQLite always and against MongoDB when `ELEMENTS_MONGODB_URI` is set
//! (set `ELEMENTS_REQUIRE_MONGODB=1` to make a missing URI a failure, as CI does).

use std::io::Write as _;
use std::sync::Arc;

use elements_store::*;
use serde_json::{Value, json};

struct Harness {
    store: Arc<dyn DocumentStore>,
    clock: Arc<ManualClock>,
    mongo: Option<mongo::MongoStore>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = ManualClock::new();
        let store = open_with(
            StoreConfig::Sqlite(SqliteConfig::in_data_dir(dir.path())),
            OpenOptions {
                clock: clock.clone(),
                background_sweep: false,
            },
        )
        .await
        .expect("open sqlite");
        Harness {
            store,
            clock,
            mongo: None,
            _dir: Some(dir),
        }
    }

    async fn mongo(case: &str) -> Option<Harness> {
        let Some(mut cfg) = MongoConfig::from_env() else {
            if std::env::var("ELEMENTS_REQUIRE_MONGODB").is_ok_and(|v| v == "1") {
                panic!("ELEMENTS_REQUIRE_MONGODB=1 but ELEMENTS_MONGODB_URI is not set");
            }
            // Straight to stderr: libtest captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "NOT RUN: MongoDB conformance case `{case}`: ELEMENTS_MONGODB_URI is not set"
            );
            return None;
        };
        let short: String = case.chars().take(40).collect();
        cfg.database = format!("elt_{short}_{}", &uuid_hex()[..8]);
        let clock = ManualClock::new();
        let opts = OpenOptions {
            clock: clock.clone(),
            background_sweep: false,
        };
        let store: Arc<dyn DocumentStore> = open_with(StoreConfig::Mongo(cfg.clone()), opts.clone())
            .await
            .expect("open mongodb");
        let admin = mongo::MongoStore::open(cfg, opts).await.expect("open mongodb");
        Some(Harness {
            store,
            clock,
            mongo: Some(admin),
            _dir: None,
        })
    }

    async fn cleanup(&self) {
        if let Some(m) = &self.mongo {
            let _ = m.drop_database().await;
        }
    }
}

fn uuid_hex() -> String {
    document::new_id().replace('-', "")
}

fn coll(name: &str) -> CollectionName {
    Namespace::core().collection(name).expect("valid name")
}

fn f(v: Value) -> Filter {
    Filter::parse(&v).expect("valid filter")
}

fn u(v: Value) -> Update {
    Update::parse(&v).expect("valid update")
}

fn ids(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| d["_id"].as_str().unwrap_or("?").to_string())
        .collect()
}

async fn find_ids(h: &Harness, c: &CollectionName, q: Query) -> Vec<String> {
    ids(&h.store.find(c, &q).await.expect("find"))
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let h = super::Harness::sqlite().await;
                    super::$case(&h).await;
                }
            )*
        }
        mod mongodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(h) = super::Harness::mongo(stringify!($case)).await else { return };
                    super::$case(&h).await;
                    h.cleanup().await;
                }
            )*
        }
    };
}

suite!(
    insert_and_get,
    invalid_documents,
    round_trip_types,
    filters,
    invalid_filters,
    sort_skip_limit,
    updates,
    invalid_updates,
    compare_and_set,
    find_one_and_update_and_delete,
    upsert,
    unique_indexes,
    expiry,
    transactions,
    delete_count_drop,
    namespaces_are_isolated,
    race_unique_inserts,
    race_inc,
    race_compare_and_set,
    race_upserts,
    race_find_or_create,
);

async fn insert_and_get(h: &Harness) {
    let c = coll("docs");
    assert_eq!(h.store.get(&c, "nope").await.expect("get"), None);
    let d = h.store.insert(&c, json!({"name": "a"})).await.expect("insert");
    let id = d["_id"].as_str().expect("generated id").to_string();
    assert!(!id.is_empty());
    assert_eq!(d["_version"], json!(1));
    assert_eq!(h.store.get(&c, &id).await.expect("get"), Some(d.clone()));
    let d2 = h
        .store
        .insert(&c, json!({"_id": "fixed", "name": "b"}))
        .await
        .expect("insert");
    assert_eq!(d2, json!({"_id": "fixed", "name": "b", "_version": 1}));
    let dup = h
        .store
        .insert(&c, json!({"_id": "fixed"}))
        .await
        .expect_err("duplicate id");
    assert!(dup.is_duplicate_key(), "{dup:?}");
    // Documents on either side of SQLite's inline-read size come back whole.
    for size in [60 * 1024, 70 * 1024, 2 * 1024 * 1024] {
        let id = format!("sized-{size}");
        let doc = h
            .store
            .insert(&c, json!({"_id": id, "body": "é".repeat(size / 2)}))
            .await
            .expect("insert");
        assert_eq!(
            h.store.get(&c, &id).await.expect("get"),
            Some(doc),
            "{size} bytes"
        );
    }
    assert_eq!(
        h.store
            .find_one(&c, &f(json!({"name": "b"})))
            .await
            .expect("find_one"),
        Some(d2)
    );
    h.store.ping().await.expect("ping");
}

async fn invalid_documents(h: &Harness) {
    let c = coll("docs");
    for bad in [
        json!([1, 2]),
        json!("x"),
        json!({"$set": 1}),
        json!({"a.b": 1}),
        json!({"nested": {"$x": 1}}),
        json!({"_id": 5}),
        json!({"_id": ""}),
        json!({"_version": 3}),
        json!({"big": 18446744073709551615u64}),
        json!({"_expiresAt": "tomorrow"}),
    ] {
        let e = h
            .store
            .insert(&c, bad.clone())
            .await
            .expect_err("invalid document");
        assert!(matches!(e, StoreError::InvalidDocument(_)), "{bad}: {e:?}");
    }
    assert!(matches!(
        Namespace::core().collection("a.b"),
        Err(StoreError::InvalidName(_))
    ));
}

async fn round_trip_types(h: &Harness) {
    let c = coll("types");
    let doc = json!({
        "_id": "t",
        "null": null, "t": true, "f": false,
        "int": 42, "neg": -7, "max": i64::MAX, "min": i64::MIN,
        "float": 1.5, "whole_float": 2.0, "tiny": 1e-300,
        "s": "héllo ✓ \u{1F600}", "empty": "",
        "arr": [1, "two", {"three": 3}, [4], null],
        "obj": {"a": {"b": {"c": [1, 2.5]}}},
        "eobj": {}, "earr": []
    });
    let stored = h.store.insert(&c, doc.clone()).await.expect("insert");
    let mut expected = doc.clone();
    expected["_version"] = json!(1);
    assert_eq!(stored, expected);
    let got = h.store.get(&c, "t").await.expect("get").expect("found");
    assert_eq!(got, expected);
    assert!(got["int"].is_i64() && got["whole_float"].is_f64());
}

async fn seed_people(h: &Harness, c: &CollectionName) {
    let people = [
        json!({"_id": "p1", "name": "ann", "age": 30, "city": {"name": "Oslo", "zip": "0150"}, "tags": ["a"], "score": 1.5}),
        json!({"_id": "p2", "name": "bob", "age": 25, "city": {"name": "Rome"}, "vip": true}),
        json!({"_id": "p3", "name": "cid", "age": 35.0, "city": {"name": "Oslo"}, "vip": false, "nick": null}),
        json!({"_id": "p4", "name": "dan", "age": "40", "score": 3}),
        json!({"_id": "p5", "name": "eve"}),
    ];
    for p in people {
        h.store.insert(c, p).await.expect("insert");
    }
}

async fn filters(h: &Harness) {
    let c = coll("people");
    seed_people(h, &c).await;
    let q = |v: Value| Query::new(f(v));
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["p1", "p2", "p3", "p4", "p5"]),
        (json!({"name": "bob"}), vec!["p2"]),
        (json!({"city.name": "Oslo"}), vec!["p1", "p3"]),
        (json!({"city": {"name": "Rome"}}), vec!["p2"]),
        (json!({"city.zip": {"$exists": true}}), vec!["p1"]),
        (json!({"nick": {"$exists": true}}), vec!["p3"]),
        (json!({"nick": null}), vec!["p1", "p2", "p3", "p4", "p5"]),
        (json!({"vip": null}), vec!["p1", "p4", "p5"]),
        (json!({"vip": {"$ne": null}}), vec!["p2", "p3"]),
        (json!({"vip": true}), vec!["p2"]),
        (json!({"vip": {"$ne": true}}), vec!["p1", "p3", "p4", "p5"]),
        (json!({"age": 35}), vec!["p3"]),
        (json!({"age": 30.0}), vec!["p1"]),
        (json!({"age": "40"}), vec!["p4"]),
        (json!({"age": 40}), vec![]),
        (json!({"score": 1}), vec![]),
        (json!({"vip": 1}), vec![]),
        (json!({"age": {"$gt": 25}}), vec!["p1", "p3"]),
        (json!({"age": {"$gte": 25, "$lt": 35}}), vec!["p1", "p2"]),
        (json!({"age": {"$lte": 30.5}}), vec!["p1", "p2"]),
        (json!({"age": {"$gt": "3"}}), vec!["p4"]),
        (json!({"name": {"$gte": "bob", "$lt": "dan"}}), vec!["p2", "p3"]),
        (json!({"name": {"$in": ["ann", "eve", "zed"]}}), vec!["p1", "p5"]),
        (json!({"age": {"$in": [25, "40"]}}), vec!["p2", "p4"]),
        (json!({"name": {"$nin": ["ann", "eve"]}}), vec!["p2", "p3", "p4"]),
        (json!({"vip": {"$nin": [true]}}), vec!["p1", "p3", "p4", "p5"]),
        (json!({"name": {"$in": []}}), vec![]),
        (json!({"name": {"$ne": "ann"}}), vec!["p2", "p3", "p4", "p5"]),
        (
            json!({"missing": {"$exists": false}}),
            vec!["p1", "p2", "p3", "p4", "p5"],
        ),
        (
            json!({"$or": [{"name": "ann"}, {"age": {"$gte": 35}}]}),
            vec!["p1", "p3"],
        ),
        (
            json!({"$and": [{"city.name": "Oslo"}, {"age": {"$lt": 33}}]}),
            vec!["p1"],
        ),
        (
            json!({"$or": [{"$and": [{"vip": {"$exists": true}}, {"age": {"$gt": 30}}]}, {"name": "eve"}]}),
            vec!["p3", "p5"],
        ),
        (json!({"name": "ann", "age": 30}), vec!["p1"]),
        (json!({"_id": "p4"}), vec!["p4"]),
        (json!({"_id": {"$in": ["p1", "p5", "zz"]}}), vec!["p1", "p5"]),
        (json!({"_id": {"$gt": "p3"}}), vec!["p4", "p5"]),
        (json!({"tags": ["a"]}), vec!["p1"]),
        (json!({"city": {"name": "Oslo", "zip": "0150"}}), vec!["p1"]),
    ];
    for (filter, want) in cases {
        assert_eq!(find_ids(h, &c, q(filter.clone())).await, want, "filter {filter}");
        assert_eq!(
            h.store.count(&c, &f(filter.clone())).await.expect("count"),
            want.len() as u64,
            "count {filter}"
        );
    }
}

async fn invalid_filters(h: &Harness) {
    for bad in [
        json!({"$where": "1"}),
        json!({"a": {"$regex": "x"}}),
        json!({"a": {"$foo": 1}}),
        json!({"a": {"$gt": true}}),
        json!({"a": {"$gt": null}}),
        json!({"a": {"$in": 5}}),
        json!({"a": {"$exists": 1}}),
        json!({"$and": []}),
        json!({"$or": {}}),
        json!({"a": {"$gt": 1, "b": 2}}),
        json!({"a..b": 1}),
        json!({"$nor": [{"a": 1}]}),
        json!([1]),
    ] {
        assert!(
            matches!(Filter::parse(&bad), Err(StoreError::InvalidFilter(_))),
            "{bad}"
        );
    }
    let _ = h;
}

async fn sort_skip_limit(h: &Harness) {
    let c = coll("people");
    seed_people(h, &c).await;
    h.store
        .insert(
            &c,
            json!({"_id": "p6", "name": "fay", "age": 25, "city": {"name": "Bonn"}}),
        )
        .await
        .expect("insert");
    let all = || Query::new(Filter::all());
    // Cross-type order: missing < numbers < strings.
    assert_eq!(
        find_ids(h, &c, all().sort_asc("age").expect("sort")).await,
        ["p5", "p2", "p6", "p1", "p3", "p4"]
    );
    assert_eq!(
        find_ids(h, &c, all().sort_desc("age").expect("sort")).await,
        ["p4", "p3", "p1", "p2", "p6", "p5"]
    );
    assert_eq!(
        find_ids(
            h,
            &c,
            all().sort_asc("age").expect("s").sort_desc("name").expect("s")
        )
        .await,
        ["p5", "p6", "p2", "p1", "p3", "p4"]
    );
    assert_eq!(
        find_ids(h, &c, all().sort_asc("city.name").expect("s").skip(1).limit(3)).await,
        ["p5", "p6", "p1"]
    );
    assert_eq!(find_ids(h, &c, all().skip(4)).await, ["p5", "p6"]);
    assert_eq!(find_ids(h, &c, all().limit(2)).await, ["p1", "p2"]);
    assert_eq!(find_ids(h, &c, all().limit(0)).await, Vec::<String>::new());
    assert_eq!(
        find_ids(
            h,
            &c,
            Query::new(f(json!({"age": {"$gte": 25}})))
                .sort_desc("_id")
                .expect("s")
                .limit(2)
        )
        .await,
        ["p6", "p3"]
    );
}

async fn updates(h: &Harness) {
    let c = coll("upd");
    h.store
        .insert(
            &c,
            json!({"_id": "d", "a": 1, "f": 1.5, "list": [1], "keep": "k", "gone": 1}),
        )
        .await
        .expect("insert");
    let d = h
        .store
        .update_by_id(
            &c,
            "d",
            &u(json!({
                "$set": {"x.y.z": "deep", "keep": "kept"},
                "$unset": {"gone": "", "never": ""},
                "$inc": {"a": 2, "f": 1, "new": 5, "fl": 0.5},
                "$push": {"list": {"o": 1}, "fresh": "v"}
            })),
            None,
        )
        .await
        .expect("update");
    let want = json!({
        "_id": "d", "_version": 2, "a": 3, "f": 2.5, "new": 5, "fl": 0.5,
        "list": [1, {"o": 1}], "fresh": ["v"], "keep": "kept", "x": {"y": {"z": "deep"}}
    });
    assert_eq!(d, want);
    assert_eq!(h.store.get(&c, "d").await.expect("get"), Some(want));
    // Replacement keeps the id, bumps the version, drops the other fields.
    let r = h
        .store
        .update_by_id(&c, "d", &u(json!({"only": true})), None)
        .await
        .expect("replace");
    assert_eq!(r, json!({"_id": "d", "_version": 3, "only": true}));
    let r = h
        .store
        .update_by_id(&c, "d", &u(json!({"_id": "d", "again": 1})), Some(3))
        .await
        .expect("replace");
    assert_eq!(r, json!({"_id": "d", "_version": 4, "again": 1}));
    let e = h
        .store
        .update_by_id(&c, "missing", &u(json!({"$set": {"a": 1}})), None)
        .await
        .expect_err("missing");
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
}

async fn invalid_updates(h: &Harness) {
    for bad in [
        json!({"$set": {"_id": "x"}}),
        json!({"$set": {"_version": 9}}),
        json!({"$inc": {"_version": 1}}),
        json!({"$rename": {"a": "b"}}),
        json!({"$set": {"a": 1}, "b": 2}),
        json!({"$set": {"a": 1}, "$inc": {"a": 1}}),
        json!({"$set": {"a": 1, "a.b": 2}}),
        json!({"$inc": {"a": "x"}}),
        json!({"$set": 5}),
        json!({"$set": {"$a": 1}}),
        json!({"$set": {}}),
        json!({"$set": {"_expiresAt": "soon"}}),
        json!({"_version": 1}),
        json!({"a.b": 1}),
        json!(7),
    ] {
        assert!(
            matches!(Update::parse(&bad), Err(StoreError::InvalidUpdate(_))),
            "{bad}"
        );
    }
    let c = coll("upd");
    h.store
        .insert(&c, json!({"_id": "d", "s": "str", "n": 1, "o": 5}))
        .await
        .expect("insert");
    for bad in [
        json!({"$inc": {"s": 1}}),
        json!({"$push": {"n": 1}}),
        json!({"$set": {"o.x": 1}}),
        json!({"_id": "other"}),
    ] {
        let e = h
            .store
            .update_by_id(&c, "d", &u(bad.clone()), None)
            .await
            .expect_err("invalid");
        assert!(matches!(e, StoreError::InvalidUpdate(_)), "{bad}: {e:?}");
    }
    // Nothing changed.
    assert_eq!(
        h.store.get(&c, "d").await.expect("get").expect("doc")["_version"],
        json!(1)
    );
}

async fn compare_and_set(h: &Harness) {
    let c = coll("cas");
    h.store
        .insert(&c, json!({"_id": "k", "n": 0}))
        .await
        .expect("insert");
    let d = h
        .store
        .update_by_id(&c, "k", &u(json!({"$inc": {"n": 1}})), Some(1))
        .await
        .expect("cas");
    assert_eq!(d["_version"], json!(2));
    let e = h
        .store
        .update_by_id(&c, "k", &u(json!({"$inc": {"n": 1}})), Some(1))
        .await
        .expect_err("stale");
    match e {
        StoreError::Conflict(Conflict::Version { expected, actual, .. }) => {
            assert_eq!((expected, actual), (1, 2));
        }
        e => panic!("expected a version conflict, got {e:?}"),
    }
    let e = h
        .store
        .update_by_id(&c, "nope", &u(json!({"$inc": {"n": 1}})), Some(1))
        .await
        .expect_err("missing");
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    // A version in the filter works too (find_one_and_update CAS).
    let none = h
        .store
        .find_one_and_update(
            &c,
            &f(json!({"_id": "k", "_version": 1})),
            &u(json!({"$set": {"x": 1}})),
            &FindAndModify::default(),
        )
        .await
        .expect("fam");
    assert_eq!(none, None);
    let e = h
        .store
        .delete_by_id(&c, "k", Some(1))
        .await
        .expect_err("stale delete");
    assert!(e.is_version_conflict(), "{e:?}");
    assert!(h.store.delete_by_id(&c, "k", Some(2)).await.expect("delete"));
    assert!(!h.store.delete_by_id(&c, "k", None).await.expect("delete again"));
}

async fn find_one_and_update_and_delete(h: &Harness) {
    let c = coll("jobs");
    for (id, prio) in [("j1", 2), ("j2", 5), ("j3", 1)] {
        h.store
            .insert(&c, json!({"_id": id, "prio": prio, "state": "new"}))
            .await
            .expect("insert");
    }
    let by_prio = FindAndModify {
        sort: vec![SortKey {
            path: FieldPath::parse("prio").expect("p"),
            order: Order::Desc,
        }],
        ..Default::default()
    };
    let before = FindAndModify {
        return_document: ReturnDocument::Before,
        ..by_prio.clone()
    };
    let got = h
        .store
        .find_one_and_update(
            &c,
            &f(json!({"state": "new"})),
            &u(json!({"$set": {"state": "taken"}})),
            &before,
        )
        .await
        .expect("fam")
        .expect("one");
    assert_eq!(
        got,
        json!({"_id": "j2", "prio": 5, "state": "new", "_version": 1})
    );
    let got = h
        .store
        .find_one_and_update(
            &c,
            &f(json!({"state": "new"})),
            &u(json!({"$set": {"state": "taken"}})),
            &by_prio,
        )
        .await
        .expect("fam")
        .expect("one");
    assert_eq!(
        got,
        json!({"_id": "j1", "prio": 2, "state": "taken", "_version": 2})
    );
    let none = h
        .store
        .find_one_and_update(
            &c,
            &f(json!({"state": "gone"})),
            &u(json!({"$set": {"x": 1}})),
            &by_prio,
        )
        .await
        .expect("fam");
    assert_eq!(none, None);
    let del = h
        .store
        .find_one_and_delete(
            &c,
            &f(json!({"state": "taken"})),
            &[SortKey {
                path: FieldPath::parse("prio").expect("p"),
                order: Order::Asc,
            }],
        )
        .await
        .expect("delete")
        .expect("one");
    assert_eq!(del["_id"], json!("j1"));
    assert_eq!(h.store.get(&c, "j1").await.expect("get"), None);
    assert_eq!(
        h.store
            .find_one_and_delete(&c, &f(json!({"state": "zzz"})), &[])
            .await
            .expect("delete"),
        None
    );
}

async fn upsert(h: &Harness) {
    let c = coll("ups");
    let up = FindAndModify {
        upsert: true,
        ..Default::default()
    };
    let d = h
        .store
        .find_one_and_update(
            &c,
            &f(json!({"kind": "counter", "meta.owner": "me"})),
            &u(json!({"$inc": {"n": 1}})),
            &up,
        )
        .await
        .expect("upsert")
        .expect("after");
    assert!(d["_id"].as_str().is_some_and(|s| !s.is_empty()), "{d}");
    assert_eq!(d["_version"], json!(1));
    assert_eq!(
        (d["kind"].clone(), d["meta"].clone(), d["n"].clone()),
        (json!("counter"), json!({"owner": "me"}), json!(1))
    );
    let d2 = h
        .store
        .find_one_and_update(
            &c,
            &f(json!({"kind": "counter", "meta.owner": "me"})),
            &u(json!({"$inc": {"n": 1}})),
            &up,
        )
        .await
        .expect("upsert")
        .expect("after");
    assert_eq!(
        (d2["_id"].clone(), d2["n"].clone(), d2["_version"].clone()),
        (d["_id"].clone(), json!(2), json!(2))
    );
    // With an _id in the filter and Before: returns None on insert.
    let before = FindAndModify {
        upsert: true,
        return_document: ReturnDocument::Before,
        ..Default::default()
    };
    let r = h
        .store
        .find_one_and_update(
            &c,
            &f(json!({"_id": "fixed"})),
            &u(json!({"$set": {"v": 1}})),
            &before,
        )
        .await
        .expect("upsert");
    assert_eq!(r, None);
    assert_eq!(
        h.store.get(&c, "fixed").await.expect("get"),
        Some(json!({"_id": "fixed", "v": 1, "_version": 1}))
    );
    // Replacement upsert.
    let r = h
        .store
        .find_one_and_update(&c, &f(json!({"_id": "rep"})), &u(json!({"whole": true})), &up)
        .await
        .expect("upsert")
        .expect("after");
    assert_eq!(r, json!({"_id": "rep", "whole": true, "_version": 1}));
    let r = h
        .store
        .find_one_and_update(&c, &f(json!({"_id": "rep"})), &u(json!({"whole": false})), &up)
        .await
        .expect("upsert")
        .expect("after");
    assert_eq!(r, json!({"_id": "rep", "whole": false, "_version": 2}));
    assert_eq!(h.store.count(&c, &Filter::all()).await.expect("count"), 3);
}

async fn unique_indexes(h: &Harness) {
    let c = coll("accounts");
    let email = IndexSpec::unique(&["email"]).expect("spec");
    let pair = IndexSpec::unique(&["provider", "subject"]).expect("spec");
    h.store.ensure_index(&c, &email).await.expect("index");
    h.store.ensure_index(&c, &email).await.expect("idempotent");
    h.store.ensure_index(&c, &pair).await.expect("index");
    h.store
        .ensure_index(&c, &IndexSpec::non_unique(&["city"]).expect("spec"))
        .await
        .expect("index");
    h.store
        .insert(
            &c,
            json!({"_id": "a", "email": "x@e", "provider": "dev", "subject": "1"}),
        )
        .await
        .expect("insert");
    let e = h
        .store
        .insert(&c, json!({"email": "x@e"}))
        .await
        .expect_err("dup email");
    assert!(e.is_duplicate_key(), "{e:?}");
    let e = h
        .store
        .insert(&c, json!({"provider": "dev", "subject": "1"}))
        .await
        .expect_err("dup pair");
    assert!(e.is_duplicate_key(), "{e:?}");
    h.store
        .insert(&c, json!({"_id": "b", "provider": "dev", "subject": "2"}))
        .await
        .expect("other pair");
    h.store
        .insert(&c, json!({"_id": "c", "provider": "google", "subject": "1"}))
        .await
        .expect("other pair");
    // Sparse: documents without the fields are not constrained.
    h.store.insert(&c, json!({"_id": "d"})).await.expect("no email");
    h.store
        .insert(&c, json!({"_id": "e"}))
        .await
        .expect("no email either");
    // Updates are checked too, and a failed update changes nothing.
    let e = h
        .store
        .update_by_id(&c, "b", &u(json!({"$set": {"email": "x@e"}})), None)
        .await
        .expect_err("dup via update");
    assert!(e.is_duplicate_key(), "{e:?}");
    assert_eq!(
        h.store.get(&c, "b").await.expect("get").expect("b")["_version"],
        json!(1)
    );
    // Find by unique field.
    let found = h
        .store
        .find_one(&c, &f(json!({"email": "x@e"})))
        .await
        .expect("find")
        .expect("one");
    assert_eq!(found["_id"], json!("a"));
    let found = h
        .store
        .find(&c, &Query::new(f(json!({"provider": "dev", "subject": "2"}))))
        .await
        .expect("find");
    assert_eq!(ids(&found), ["b"]);
    // A unique index over existing duplicates fails.
    let c2 = coll("dups");
    h.store.insert(&c2, json!({"k": 1})).await.expect("insert");
    h.store.insert(&c2, json!({"k": 1})).await.expect("insert");
    let e = h
        .store
        .ensure_index(&c2, &IndexSpec::unique(&["k"]).expect("spec"))
        .await
        .expect_err("dups");
    assert!(e.is_duplicate_key(), "{e:?}");
}

async fn expiry(h: &Harness) {
    let c = coll("tokens");
    h.store
        .ensure_index(&c, &IndexSpec::unique(&["token"]).expect("spec"))
        .await
        .expect("index");
    let now = h.clock.now_millis();
    h.store
        .insert(
            &c,
            json!({"_id": "t1", "token": "abc", "_expiresAt": now + 60_000}),
        )
        .await
        .expect("insert");
    h.store
        .insert(
            &c,
            json!({"_id": "t2", "token": "def", "_expiresAt": now + 120_000}),
        )
        .await
        .expect("insert");
    h.store
        .insert(&c, json!({"_id": "t3", "token": "ghi", "_expiresAt": null}))
        .await
        .expect("insert");
    h.store
        .insert(&c, json!({"_id": "t4", "token": "jkl"}))
        .await
        .expect("insert");
    let got = h.store.get(&c, "t1").await.expect("get").expect("live");
    assert_eq!(got["_expiresAt"], json!(now + 60_000));
    assert_eq!(h.store.count(&c, &Filter::all()).await.expect("count"), 4);
    // Filter on the expiry as a number.
    assert_eq!(
        find_ids(h, &c, Query::new(f(json!({"_expiresAt": {"$gt": now + 90_000}})))).await,
        ["t2"]
    );

    h.clock.advance(90_000); // t1 expired, not swept
    assert_eq!(h.store.get(&c, "t1").await.expect("get"), None);
    assert_eq!(
        find_ids(h, &c, Query::new(Filter::all())).await,
        ["t2", "t3", "t4"]
    );
    assert_eq!(
        h.store
            .count(&c, &f(json!({"token": "abc"})))
            .await
            .expect("count"),
        0
    );
    assert_eq!(
        h.store
            .find_one(&c, &f(json!({"token": "abc"})))
            .await
            .expect("find"),
        None
    );
    let e = h
        .store
        .update_by_id(&c, "t1", &u(json!({"$set": {"x": 1}})), None)
        .await
        .expect_err("expired");
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    assert_eq!(
        h.store
            .find_one_and_update(
                &c,
                &f(json!({"_id": "t1"})),
                &u(json!({"$set": {"x": 1}})),
                &FindAndModify::default()
            )
            .await
            .expect("fam"),
        None
    );
    assert_eq!(
        h.store
            .find_one_and_delete(&c, &f(json!({"_id": "t1"})), &[])
            .await
            .expect("fad"),
        None
    );
    assert!(!h.store.delete_by_id(&c, "t1", None).await.expect("delete"));
    // Expired documents hold no keys: the same token and the same _id can be reused.
    h.store
        .insert(&c, json!({"_id": "t1", "token": "abc"}))
        .await
        .expect("reuse after expiry");
    assert_eq!(
        h.store.get(&c, "t1").await.expect("get").expect("new t1")["_version"],
        json!(1)
    );
    // Extending the expiry by update; then sweeping.
    let d = h
        .store
        .update_by_id(&c, "t2", &u(json!({"$set": {"_expiresAt": now + 200_000}})), None)
        .await
        .expect("extend");
    assert_eq!(d["_expiresAt"], json!(now + 200_000));
    h.clock.advance(60_000); // t2 would have expired at +120s
    assert!(h.store.get(&c, "t2").await.expect("get").is_some());
    h.store
        .update_by_id(&c, "t4", &u(json!({"$set": {"_expiresAt": now}})), None)
        .await
        .expect("expire now");
    assert_eq!(h.store.get(&c, "t4").await.expect("get"), None);
    let swept = h.store.sweep_expired().await.expect("sweep");
    assert!(swept >= 1, "swept {swept}");
    h.clock.advance(-1_000_000); // even with the clock back, swept documents are gone
    assert_eq!(h.store.get(&c, "t4").await.expect("get"), None);
    h.store
        .update_by_id(&c, "t3", &u(json!({"$unset": {"_expiresAt": ""}})), None)
        .await
        .expect("unset expiry");
}

async fn transactions(h: &Harness) {
    let (users, idents) = (coll("users"), coll("identities"));
    let out = h
        .store
        .transaction(vec![
            WriteOp::Require {
                collection: idents.clone(),
                filter: Filter::by_id("dev:1"),
                exists: false,
            },
            WriteOp::Insert {
                collection: users.clone(),
                document: json!({"_id": "u1", "coins": 0}),
            },
            WriteOp::Insert {
                collection: idents.clone(),
                document: json!({"_id": "dev:1", "user": "u1"}),
            },
            WriteOp::Update {
                collection: users.clone(),
                filter: Filter::by_id("u1"),
                update: u(json!({"$inc": {"coins": 10}})),
                upsert: false,
                require_match: true,
            },
        ])
        .await
        .expect("transaction");
    assert_eq!(out.len(), 4);
    assert_eq!(out[0], WriteOutcome::Checked);
    assert_eq!(
        out[3],
        WriteOutcome::Updated(Some(json!({"_id": "u1", "coins": 10, "_version": 2})))
    );
    // A failing op rolls back everything before it.
    let e = h
        .store
        .transaction(vec![
            WriteOp::Insert {
                collection: users.clone(),
                document: json!({"_id": "u2"}),
            },
            WriteOp::Update {
                collection: users.clone(),
                filter: Filter::by_id("u1"),
                update: u(json!({"$inc": {"coins": 5}})),
                upsert: false,
                require_match: true,
            },
            WriteOp::Insert {
                collection: idents.clone(),
                document: json!({"_id": "dev:1", "user": "u2"}),
            },
        ])
        .await
        .expect_err("duplicate identity");
    assert!(e.is_duplicate_key(), "{e:?}");
    assert_eq!(h.store.get(&users, "u2").await.expect("get"), None);
    assert_eq!(
        h.store.get(&users, "u1").await.expect("get").expect("u1")["coins"],
        json!(10)
    );
    // A failed precondition aborts with Conflict::Precondition.
    let e = h
        .store
        .transaction(vec![
            WriteOp::Insert {
                collection: users.clone(),
                document: json!({"_id": "u3"}),
            },
            WriteOp::Delete {
                collection: idents.clone(),
                filter: Filter::by_id("dev:none"),
                require_match: true,
            },
        ])
        .await
        .expect_err("precondition");
    assert!(
        matches!(
            e,
            StoreError::Conflict(Conflict::Precondition { op_index: 1, .. })
        ),
        "{e:?}"
    );
    assert_eq!(h.store.get(&users, "u3").await.expect("get"), None);
    let out = h
        .store
        .transaction(vec![WriteOp::Delete {
            collection: idents.clone(),
            filter: Filter::by_id("dev:1"),
            require_match: true,
        }])
        .await
        .expect("delete");
    assert!(matches!(&out[0], WriteOutcome::Deleted(Some(d)) if d["user"] == json!("u1")));
}

async fn delete_count_drop(h: &Harness) {
    let c = coll("many");
    for i in 0..10 {
        h.store
            .insert(&c, json!({"i": i, "even": i % 2 == 0}))
            .await
            .expect("insert");
    }
    assert_eq!(
        h.store.count(&c, &f(json!({"even": true}))).await.expect("count"),
        5
    );
    assert_eq!(
        h.store
            .delete_many(&c, &f(json!({"i": {"$gte": 7}})))
            .await
            .expect("delete"),
        3
    );
    assert_eq!(h.store.count(&c, &Filter::all()).await.expect("count"), 7);
    h.store.drop_collection(&c).await.expect("drop");
    assert_eq!(h.store.count(&c, &Filter::all()).await.expect("count"), 0);
    h.store
        .insert(&c, json!({"again": true}))
        .await
        .expect("insert after drop");
    assert_eq!(h.store.count(&c, &Filter::all()).await.expect("count"), 1);
    // Reads of a collection that never existed are empty, not errors.
    let none = coll("never");
    assert_eq!(
        h.store
            .find(&none, &Query::new(Filter::all()))
            .await
            .expect("find"),
        Vec::<Value>::new()
    );
    assert_eq!(
        h.store.delete_many(&none, &Filter::all()).await.expect("delete"),
        0
    );
}

async fn namespaces_are_isolated(h: &Harness) {
    let core = Namespace::core().collection("data").expect("name");
    let a = Namespace::element("alpha", None)
        .expect("ns")
        .collection("data")
        .expect("name");
    let a1 = Namespace::element("alpha", Some("app1"))
        .expect("ns")
        .collection("data")
        .expect("name");
    let b = Namespace::element("beta", None)
        .expect("ns")
        .collection("data")
        .expect("name");
    // Names differing only in case are different Elements and collections
    // (SQLite compares table names case-insensitively; the store must not).
    let upper = Namespace::element("Alpha", None)
        .expect("ns")
        .collection("data")
        .expect("name");
    let upper_collection = Namespace::element("alpha", None)
        .expect("ns")
        .collection("Data")
        .expect("name");
    let all = [
        (&core, "core"),
        (&a, "a"),
        (&a1, "a1"),
        (&b, "b"),
        (&upper, "upper"),
        (&upper_collection, "upper_collection"),
    ];
    for (c, tag) in all {
        h.store
            .insert(c, json!({"_id": "same", "tag": tag}))
            .await
            .expect("insert");
    }
    for (c, tag) in all {
        assert_eq!(
            h.store.get(c, "same").await.expect("get").expect("doc")["tag"],
            json!(tag)
        );
        assert_eq!(h.store.count(c, &Filter::all()).await.expect("count"), 1);
    }
}

async fn race_unique_inserts(h: &Harness) {
    let c = coll("race_unique");
    h.store
        .ensure_index(&c, &IndexSpec::unique(&["key"]).expect("spec"))
        .await
        .expect("index");
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (s, c) = (h.store.clone(), c.clone());
            tokio::spawn(async move { s.insert(&c, json!({"key": "same", "n": i})).await })
        })
        .collect();
    let (mut ok, mut conflict) = (0, 0);
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => ok += 1,
            Err(e) if e.is_duplicate_key() => conflict += 1,
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!((ok, conflict), (1, 49));
    assert_eq!(h.store.count(&c, &Filter::all()).await.expect("count"), 1);
}

async fn race_inc(h: &Harness) {
    let c = coll("race_inc");
    h.store
        .insert(&c, json!({"_id": "ctr", "n": 0}))
        .await
        .expect("insert");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (s, c) = (h.store.clone(), c.clone());
            tokio::spawn(async move {
                s.update_by_id(&c, "ctr", &Update::parse(&json!({"$inc": {"n": 1}}))?, None)
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("join").expect("inc");
    }
    let d = h.store.get(&c, "ctr").await.expect("get").expect("doc");
    assert_eq!((d["n"].clone(), d["_version"].clone()), (json!(50), json!(51)));
}

async fn race_compare_and_set(h: &Harness) {
    let c = coll("race_cas");
    h.store
        .insert(&c, json!({"_id": "k", "owner": null}))
        .await
        .expect("insert");
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let (s, c) = (h.store.clone(), c.clone());
            tokio::spawn(async move {
                s.update_by_id(&c, "k", &Update::parse(&json!({"$set": {"owner": i}}))?, Some(1))
                    .await
            })
        })
        .collect();
    let (mut ok, mut conflict) = (0, 0);
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => ok += 1,
            Err(e) if e.is_version_conflict() => conflict += 1,
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!((ok, conflict), (1, 29));
    assert_eq!(
        h.store.get(&c, "k").await.expect("get").expect("doc")["_version"],
        json!(2)
    );
}

async fn race_upserts(h: &Harness) {
    let c = coll("race_upsert");
    h.store
        .ensure_index(&c, &IndexSpec::unique(&["device"]).expect("spec"))
        .await
        .expect("index");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (s, c) = (h.store.clone(), c.clone());
            tokio::spawn(async move {
                let opts = FindAndModify {
                    upsert: true,
                    ..Default::default()
                };
                s.find_one_and_update(
                    &c,
                    &Filter::eq("device", "d1")?,
                    &Update::parse(&json!({"$inc": {"logins": 1}}))?,
                    &opts,
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("join").expect("upsert");
    }
    let all = h.store.find(&c, &Query::new(Filter::all())).await.expect("find");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["logins"], json!(20));
}

/// The identity layer's pattern (see the crate docs): 20 concurrent first
/// logins with one device id create exactly one user.
async fn race_find_or_create(h: &Harness) {
    let core = Namespace::core();
    let users = core.collection("users").expect("name");
    let idents = core.collection("identities").expect("name");
    let profiles = core.collection("profiles").expect("name");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (s, users, idents, profiles) =
                (h.store.clone(), users.clone(), idents.clone(), profiles.clone());
            tokio::spawn(async move {
                let identity_id = "device:abc".to_string();
                loop {
                    if let Some(i) = s.get(&idents, &identity_id).await? {
                        return Ok::<String, StoreError>(
                            i["user_id"].as_str().unwrap_or_default().to_string(),
                        );
                    }
                    let user_id = document::new_id();
                    let r = s
                        .transaction(vec![
                            WriteOp::Insert {
                                collection: idents.clone(),
                                document: json!({"_id": identity_id, "user_id": user_id}),
                            },
                            WriteOp::Insert {
                                collection: users.clone(),
                                document: json!({"_id": user_id}),
                            },
                            WriteOp::Insert {
                                collection: profiles.clone(),
                                document: json!({"_id": user_id}),
                            },
                        ])
                        .await;
                    match r {
                        Ok(_) => return Ok(user_id),
                        Err(e) if e.is_duplicate_key() => continue,
                        Err(e) => return Err(e),
                    }
                }
            })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for t in tasks {
        seen.insert(t.await.expect("join").expect("login"));
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(h.store.count(&users, &Filter::all()).await.expect("count"), 1);
    assert_eq!(h.store.count(&profiles, &Filter::all()).await.expect("count"), 1);
    assert_eq!(h.store.count(&idents, &Filter::all()).await.expect("count"), 1);
}
