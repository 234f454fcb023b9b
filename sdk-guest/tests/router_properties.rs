//! Property tests of the router's path matching: a path built from a
//! pattern with generated segment values matches it and yields exactly
//! those values (percent-decoded); any path, even malformed, gets an answer
//! and never a panic.
//!
//! Bounded by `PROPTEST_CASES` (default 256); a failure prints its minimal
//! case and seed and is saved under `sdk-guest/tests/router_properties.proptest-regressions`
//! (commit it: the next run replays it first).

use elements_sdk::{Method, Request, Response, Router};
use proptest::prelude::*;

/// One pattern segment: a literal or a named parameter.
#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param(String),
}

fn segments() -> impl Strategy<Value = Vec<Segment>> {
    prop::collection::vec(
        prop_oneof![
            "[a-z0-9_-]{1,6}".prop_map(Segment::Literal),
            "[a-z]{1,6}".prop_map(Segment::Param),
        ],
        0..5,
    )
    .prop_map(|segs| {
        // Parameter names are unique within a pattern.
        let mut seen = std::collections::BTreeSet::new();
        segs.into_iter()
            .enumerate()
            .map(|(i, s)| match s {
                Segment::Param(n) if !seen.insert(n.clone()) => Segment::Param(format!("{n}{i}")),
                s => s,
            })
            .collect()
    })
}

/// Percent-encodes everything but unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn pattern_of(segs: &[Segment], wildcard: bool) -> String {
    let mut p: String = segs
        .iter()
        .map(|s| match s {
            Segment::Literal(l) => format!("/{l}"),
            Segment::Param(n) => format!("/{{{n}}}"),
        })
        .collect();
    if wildcard {
        p.push_str("/{*rest}");
    }
    if p.is_empty() { "/".to_owned() } else { p }
}

/// A router whose one route answers with its parameters, in order.
fn echo(pattern: String) -> Router {
    Router::new().get(pattern, |req: Request| {
        let params: Vec<(String, String)> = req.params().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
        Response::json(&params)
    })
}

fn params_of(response: &Response) -> Vec<(String, String)> {
    serde_json::from_slice(response.body()).unwrap_or_default()
}

proptest! {
    /// Filling a pattern's parameters with any non-empty values (encoded
    /// in the path) matches, and the handler sees exactly those values.
    #[test]
    fn built_paths_match_and_extract(
        segs in segments(),
        values in prop::collection::vec(".{1,8}", 5),
        rest in prop::option::of(prop::collection::vec("[a-z0-9]{0,4}", 0..3)),
        query in prop::option::of("[a-z=&%+]{0,8}"),
    ) {
        let pattern = pattern_of(&segs, rest.is_some());
        let mut path = String::new();
        let mut expected = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            match s {
                Segment::Literal(l) => path.push_str(&format!("/{l}")),
                Segment::Param(n) => {
                    path.push_str(&format!("/{}", encode(&values[i])));
                    expected.push((n.clone(), values[i].clone()));
                }
            }
        }
        if let Some(tail) = &rest {
            // The wildcard gets the rest of the path, without its `/`.
            let tail = tail.join("/");
            path.push('/');
            path.push_str(&tail);
            expected.push(("rest".to_owned(), tail));
        }
        if path.is_empty() {
            path.push('/');
        }
        if let Some(q) = &query {
            path.push('?');
            path.push_str(q);
        }
        let response = echo(pattern.clone()).handle(Request::new(Method::Get, path.clone()));
        prop_assert_eq!(response.status(), 200, "{} did not match {}", path, pattern);
        prop_assert_eq!(params_of(&response), expected);
    }

    /// A path with one segment more or less than a parameter-only pattern
    /// does not match it: 404, never a partial match.
    #[test]
    fn segment_count_must_agree(n in 1usize..5, extra in prop::bool::ANY, value in "[a-z]{1,4}") {
        let pattern: String = (0..n).map(|i| format!("/{{p{i}}}")).collect();
        let count = if extra { n + 1 } else { n - 1 };
        let path: String = (0..count).map(|_| format!("/{value}")).collect();
        let path = if path.is_empty() { "/".to_owned() } else { path };
        let response = echo(pattern).handle(Request::new(Method::Get, path));
        prop_assert_eq!(response.status(), 404);
    }

    /// Any request target against any routes: an answer (200, 404 or 405),
    /// never a panic.
    #[test]
    fn any_path_gets_an_answer(segs in segments(), target in "\\PC{0,40}", post in prop::bool::ANY) {
        let router = echo(pattern_of(&segs, false)).post("/{*all}", |_req: Request| Response::empty(204));
        let method = if post { Method::Post } else { Method::Get };
        let status = router.handle(Request::new(method, target)).status();
        prop_assert!([200, 204, 404, 405].contains(&status), "status {}", status);
    }
}
