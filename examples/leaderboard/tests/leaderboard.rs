//! The leaderboard Element in the real runtime (elements-test): documents,
//! the events it publishes and the ones it receives.

use elements_test::Harness;
use serde_json::json;

#[test]
fn best_scores_are_kept_and_announced() {
    let harness = Harness::build(env!("CARGO_MANIFEST_DIR")).start();

    for (player, score) in [("ada", 10), ("bob", 30), ("ada", 20), ("ada", 5)] {
        let res = harness
            .post("/scores")
            .json(&json!({"player": player, "score": score}))
            .send();
        assert_eq!(res.status(), 200, "{}", res.text());
    }
    let top = harness.get("/top").send();
    assert_eq!(
        top.json(),
        json!([{"player": "bob", "score": 30}, {"player": "ada", "score": 20}])
    );
    assert_eq!(harness.get("/players/ada").send().json()["score"], 20);
    assert_eq!(harness.get("/players/eve").send().status(), 404);
    assert_eq!(harness.get("/top?limit=0").send().status(), 400);

    // The lower score still announces itself, with the best kept.
    let posted = harness.wait_for_event("leaderboard.score_posted");
    assert_eq!(posted.payload, json!({"player": "ada", "score": 10, "best": 10}));
    let events = harness.events();
    let announced = events
        .iter()
        .filter(|e| e.name == "leaderboard.score_posted")
        .count();
    assert_eq!(announced, 4, "{events:?}");

    // Its own subscription counts them (delivered after each request).
    let started = std::time::Instant::now();
    loop {
        let stats = harness.get("/stats").send().json();
        if stats["leaderboard.score_posted"] == 4 {
            break;
        }
        assert!(started.elapsed().as_secs() < 10, "stats stayed {stats}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_bad_body_is_a_400() {
    let harness = Harness::build(env!("CARGO_MANIFEST_DIR")).start();
    let res = harness.post("/scores").body("not json").send();
    assert_eq!(res.status(), 400, "{}", res.text());
    let empty = harness
        .post("/scores")
        .json(&json!({"player": "", "score": 1}))
        .send();
    assert_eq!(empty.status(), 400, "{}", empty.text());
}
