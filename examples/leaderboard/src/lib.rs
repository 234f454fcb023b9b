//! The second example Element: a leaderboard on documents and events.
//!
//! * `POST /scores` `{"player": "ada", "score": 42}` keeps each player's best
//!   score and publishes `leaderboard.score_posted`.
//! * `GET /top?limit=10`: the best scores, highest first.
//! * `GET /players/{player}`: one player's best score, or 404.
//! * `GET /stats`: how many events of each name the Element has received.
//!   It subscribes to `leaderboard.*` (see `element.toml`), so this counts its
//!   own `score_posted` events: the event path end to end.

use std::collections::BTreeMap;

use elements_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// One document per player: `{"player": "ada", "score": 42}`.
const SCORES: &str = "scores";
/// One document per event name: `{"_id": "leaderboard.score_posted", "count": 3}`.
const STATS: &str = "stats";

#[derive(Serialize, Deserialize)]
struct Score {
    player: String,
    score: i64,
}

fn router() -> Router {
    Router::new()
        .post("/scores", post_score)
        .get("/top", top)
        .get("/players/{player}", player)
        .get("/stats", stats)
}

/// Records a score; the player's stored best only ever goes up.
fn post_score(req: Request) -> Result<serde_json::Value> {
    let Score { player, score } = req.json()?;
    if player.is_empty() {
        return Err(Error::bad_request("player must not be empty"));
    }
    let scores = documents::collection(SCORES);
    // One document per player. Idempotent, so it's fine on every write.
    scores.ensure_unique_index(&["player"])?;

    // Raise the player's best if this score beats it; with `upsert`, insert
    // the player when they have no score yet. When they already have an equal
    // or better one, nothing matches, the upsert would add a second document
    // for the player, and the unique index refuses it with a conflict.
    let best = match scores.find_one_and_update(
        json!({"player": player, "score": {"$lt": score}}),
        json!({"$set": {"score": score}}),
        FindAndModify::new().upsert(),
    ) {
        Ok(_) => score,
        Err(e) if e.code() == "CONFLICT" => best_of(&player)?.map_or(score, |best| best.score),
        Err(e) => return Err(e),
    };

    let posted = json!({"player": player, "score": score, "best": best});
    events::publish("leaderboard.score_posted", &posted)?;
    Ok(posted)
}

/// `GET /top?limit=N` (1 to 100, default 10).
fn top(req: Request) -> Result<Response> {
    let limit = match req.query("limit") {
        Some(limit) => limit
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| Error::bad_request("limit must be a number from 1 to 100"))?,
        None => 10,
    };
    let top: Vec<Score> = documents::collection(SCORES)
        .find(json!({}))
        .sort_desc("score")
        .sort_asc("player")
        .limit(limit)
        .all_as()?;
    Ok(Response::json(&top))
}

fn player(req: Request) -> Result<Response> {
    let player = req.param("player").unwrap_or_default();
    let best = best_of(player)?.ok_or_else(|| Error::not_found(format!("no scores for {player}")))?;
    Ok(Response::json(&best))
}

fn best_of(player: &str) -> Result<Option<Score>> {
    documents::collection(SCORES)
        .find(json!({"player": player}))
        .first_as()
}

/// `{"leaderboard.score_posted": 3, ...}`
fn stats(_req: Request) -> Result<Response> {
    #[derive(Deserialize)]
    struct Count {
        #[serde(rename = "_id")]
        name: String,
        count: u64,
    }
    let counts: Vec<Count> = documents::collection(STATS).find(json!({})).all_as()?;
    let counts: BTreeMap<String, u64> = counts.into_iter().map(|c| (c.name, c.count)).collect();
    Ok(Response::json(&counts))
}

/// Runs once per `leaderboard.*` event, in a fresh instance.
fn on_event(event: Event) -> Result<()> {
    debug!("received {}", event.name);
    documents::collection(STATS).find_one_and_update(
        json!({"_id": event.name}),
        json!({"$inc": {"count": 1}}),
        FindAndModify::new().upsert(),
    )?;
    Ok(())
}

elements_sdk::export_element!(router, events = on_event);
