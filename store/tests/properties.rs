//! Property tests of the filter and update languages: whatever JSON a
//! client (through an Element) sends, parsing and applying never panic, and
//! what they do agrees with a simple model.
//!
//! Bounded by `PROPTEST_CASES` (default 256). A failure prints the minimal
//! input and its seed, and is saved under `store/tests/properties.proptest-regressions`
//! (commit it): the next run replays it first.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use elements_store::{FieldPath, Filter, Query, Update};

/// Any JSON value, with keys drawn partly from the operators and reserved
/// fields so the parsers' interesting branches are reached.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("$set".to_owned()),
        Just("$unset".to_owned()),
        Just("$inc".to_owned()),
        Just("$push".to_owned()),
        Just("$and".to_owned()),
        Just("$or".to_owned()),
        Just("$eq".to_owned()),
        Just("$ne".to_owned()),
        Just("$gt".to_owned()),
        Just("$in".to_owned()),
        Just("$nin".to_owned()),
        Just("$exists".to_owned()),
        Just("$where".to_owned()),
        Just("_id".to_owned()),
        Just("_version".to_owned()),
        Just("_expiresAt".to_owned()),
        "[a-c]{1,2}(\\.[a-c]{1,2}){0,2}",
        ".{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A field name the store accepts.
fn field() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,7}"
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => {
            let mut m = Map::new();
            m.insert("v".into(), other);
            m
        }
    }
}

proptest! {
    /// Any JSON is a filter or a typed error; never a panic.
    #[test]
    fn filter_parse_never_panics(v in any_json()) {
        let _ = Filter::parse(&v);
        let _ = Query::parse(&v);
    }

    /// Any JSON is an update or a typed error, and a parsed update applied
    /// to any document (and as an upsert seed) succeeds or errs, never panics.
    #[test]
    fn update_parse_and_apply_never_panic(u in any_json(), doc in any_json(), f in any_json()) {
        if let Ok(update) = Update::parse(&u) {
            let mut doc = object(doc);
            doc.insert("_id".into(), json!("d"));
            let _ = update.apply(&mut doc);
            if let Ok(filter) = Filter::parse(&f) {
                let _ = update.upsert_seed(&filter);
            }
        }
    }

    /// `$set` then reading the path gives the value, bumps `_version` by
    /// one and keeps `_id`.
    #[test]
    fn set_then_get(path in prop::collection::vec(field(), 1..4), value in any_json(), start in 0i64..1000) {
        let dotted = path.join(".");
        let Ok(update) = Update::parse(&json!({"$set": {&dotted: value.clone()}})) else {
            // Only values with invalid keys or integers out of range are refused.
            prop_assert!(elements_store::document::validate_value(&value, "v").is_err());
            return Ok(());
        };
        let mut doc = object(json!({"_id": "d", "_version": start, "other": 1}));
        update.apply(&mut doc).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let path = FieldPath::parse(&dotted).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(path.get(&doc), Some(&value));
        prop_assert_eq!(doc.get("_version"), Some(&json!(start + 1)));
        prop_assert_eq!(doc.get("_id"), Some(&json!("d")));
        if path.segments()[0] != "other" {
            prop_assert_eq!(doc.get("other"), Some(&json!(1)));
        }
    }

    /// `$inc` on integers is checked addition: the model's sum, or an error
    /// exactly when it overflows.
    #[test]
    fn inc_is_checked_addition(start in any::<i64>(), by in any::<i64>()) {
        let update = Update::parse(&json!({"$inc": {"n": by}})).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut doc = object(json!({"_id": "d", "n": start}));
        let result = update.apply(&mut doc);
        match start.checked_add(by) {
            Some(sum) => {
                prop_assert!(result.is_ok());
                prop_assert_eq!(doc.get("n"), Some(&json!(sum)));
            }
            None => prop_assert!(result.is_err()),
        }
    }

    /// `$unset` removes exactly the field; `$push` appends to the array.
    #[test]
    fn unset_and_push(items in prop::collection::vec(any::<i64>(), 0..5), pushed in any::<i64>()) {
        let mut doc = object(json!({"_id": "d", "gone": true, "list": items.clone()}));
        Update::parse(&json!({"$unset": {"gone": ""}, "$push": {"list": pushed}}))
            .and_then(|u| u.apply(&mut doc))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(!doc.contains_key("gone"));
        let mut expected = items;
        expected.push(pushed);
        prop_assert_eq!(doc.get("list"), Some(&json!(expected)));
    }

    /// A replacement keeps `_id`; a replacement naming another `_id` is refused.
    #[test]
    fn replacement_keeps_id(fields in prop::collection::btree_map(field(), any::<i64>(), 0..4), other_id in "[a-z]{1,8}") {
        let replacement = Value::Object(fields.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
        let update = Update::parse(&replacement).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut doc = object(json!({"_id": "d", "_version": 3, "old": 1}));
        update.apply(&mut doc).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(doc.get("_id"), Some(&json!("d")));
        prop_assert_eq!(doc.get("_version"), Some(&json!(4)));
        for (k, v) in &fields {
            prop_assert_eq!(doc.get(k), Some(&json!(v)));
        }
        if !fields.contains_key("old") {
            prop_assert!(!doc.contains_key("old"));
        }
        let mut with_id = object(replacement);
        with_id.insert("_id".into(), json!(other_id.clone()));
        let update = Update::parse(&Value::Object(with_id)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut doc = object(json!({"_id": "d"}));
        prop_assert_eq!(update.apply(&mut doc).is_ok(), other_id == "d");
    }
}

/// One comparison operator and its meaning on integers.
fn cmp_op() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("$eq"),
        Just("$ne"),
        Just("$gt"),
        Just("$gte"),
        Just("$lt"),
        Just("$lte")
    ]
}

fn model(op: &str, field: Option<i64>, k: i64) -> bool {
    match (op, field) {
        ("$eq", f) => f == Some(k),
        ("$ne", f) => f != Some(k),
        (_, None) => false,
        ("$gt", Some(f)) => f > k,
        ("$gte", Some(f)) => f >= k,
        ("$lt", Some(f)) => f < k,
        ("$lte", Some(f)) => f <= k,
        _ => unreachable!("not generated"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64)
    ))]

    /// On the real SQLite store, a comparison filter finds exactly the
    /// documents the model says (missing fields included), and `$in` of
    /// the values finds those holding one of them.
    #[test]
    fn sqlite_finds_what_the_model_says(
        values in prop::collection::vec(prop::option::of(-3i64..3), 0..8),
        op in cmp_op(),
        k in -3i64..3,
        set in prop::collection::vec(-3i64..3, 1..3),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        runtime.block_on(async {
            let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let store = elements_store::open(elements_store::StoreConfig::Sqlite(
                elements_store::SqliteConfig::in_data_dir(dir.path()),
            ))
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let c = elements_store::Namespace::core().collection("props")
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            for (i, v) in values.iter().enumerate() {
                let doc = match v {
                    Some(n) => json!({"_id": format!("{i:02}"), "n": n}),
                    None => json!({"_id": format!("{i:02}")}),
                };
                store.insert(&c, doc).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            let ids = |docs: Vec<Value>| {
                let mut ids: Vec<String> = docs.iter().filter_map(|d| d["_id"].as_str().map(str::to_owned)).collect();
                ids.sort();
                ids
            };
            let found = store
                .find(&c, &Query::parse(&json!({"n": {op: k}})).map_err(|e| TestCaseError::fail(e.to_string()))?)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let expected: Vec<String> = values.iter().enumerate()
                .filter(|(_, v)| model(op, **v, k))
                .map(|(i, _)| format!("{i:02}"))
                .collect();
            prop_assert_eq!(ids(found), expected, "filter {{n: {{{}: {}}}}}", op, k);

            let found = store
                .find(&c, &Query::parse(&json!({"n": {"$in": set.clone()}})).map_err(|e| TestCaseError::fail(e.to_string()))?)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let expected: Vec<String> = values.iter().enumerate()
                .filter(|(_, v)| v.is_some_and(|n| set.contains(&n)))
                .map(|(i, _)| format!("{i:02}"))
                .collect();
            prop_assert_eq!(ids(found), expected, "filter {{n: {{$in: {:?}}}}}", set);
            Ok(())
        })?;
    }
}
