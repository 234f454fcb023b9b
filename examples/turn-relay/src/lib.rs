//! An example Element on the realtime socket: a two-player, turn-based
//! relay. It runs its matches itself (`realtime.create-match`), so players'
//! match data comes to it instead of going straight to the other player,
//! and it passes a move on only when it is the sender's turn.
//!
//! * RPC `turn_relay_create` (`POST /v2/rpc/turn_relay_create` or the
//!   socket's `rpc`): a new match, `{"match_id": "..."}`.
//! * `match_join`: the first two players are admitted; anyone else, or an
//!   id this Element never made, is refused.
//! * The first player admitted moves first: each player learns the other
//!   from the match's presences (the `match_join` answer, then presence
//!   events). When the second one joins, the chat room `turn-relay` hears
//!   of the match.
//! * Op [`OP_MOVE`] from the player whose turn it is goes to the other
//!   player (same op, same bytes), who is also notified that it is their
//!   turn; from anyone else it is answered with op [`OP_NOT_YOUR_TURN`].
//! * A player leaving tells the other with op [`OP_LEFT`]; the match ends.
//!
//! Each call runs in a fresh instance: the match lives in the `matches`
//! collection, one document per match, changed with compare-and-set.

use elements_sdk::prelude::*;
use elements_sdk::realtime::{MatchHandler, Notification, Player};
use serde::{Deserialize, Serialize};

/// A move, relayed as sent.
pub const OP_MOVE: i64 = 2;
/// The sender's move was refused: not their turn.
pub const OP_NOT_YOUR_TURN: i64 = 3;
/// The other player left: `{"user_id": "..."}`.
pub const OP_LEFT: i64 = 4;

const MATCHES: &str = "matches";
const PLAYERS: usize = 2;
/// How often a compare-and-set is retried when another call changed the
/// match first.
const RETRIES: usize = 5;

#[derive(Serialize, Deserialize)]
struct Match {
    #[serde(rename = "_id")]
    id: String,
    #[serde(rename = "_version")]
    version: i64,
    players: Vec<Player>,
    /// Index in `players` of who moves next.
    turn: usize,
    ended: bool,
}

fn router() -> Router {
    Router::new().rpc("turn_relay_create", create)
}

fn create(_req: Request) -> Result<serde_json::Value> {
    let match_id = realtime::create_match()?;
    documents::collection(MATCHES).insert(&json!({
        "_id": match_id, "players": [], "turn": 0, "ended": false,
    }))?;
    Ok(json!({ "match_id": match_id }))
}

fn load(match_id: &str) -> std::result::Result<Option<Match>, String> {
    documents::collection(MATCHES)
        .get_as::<Match>(match_id)
        .map_err(|e| e.to_string())
}

/// Writes `m` back if nobody changed it since it was read.
fn store(m: &Match) -> std::result::Result<bool, String> {
    let update = json!({"$set": {"players": m.players, "turn": m.turn, "ended": m.ended}});
    documents::collection(MATCHES)
        .update_if_version(&m.id, update, m.version)
        .map(|changed| changed.is_some())
        .map_err(|e| e.to_string())
}

fn sessions(players: &[Player], except: &str) -> Vec<String> {
    players
        .iter()
        .filter(|p| p.session_id != except)
        .map(|p| p.session_id.clone())
        .collect()
}

struct TurnRelay;

impl MatchHandler for TurnRelay {
    fn join(match_id: &str, player: &Player) -> std::result::Result<(), String> {
        for _ in 0..RETRIES {
            let Some(mut m) = load(match_id)? else {
                return Err("No such match.".into());
            };
            if m.ended {
                return Err("This match has ended.".into());
            }
            if m.players.iter().any(|p| p.session_id == player.session_id) {
                return Ok(());
            }
            if m.players.len() >= PLAYERS {
                return Err("This match is full.".into());
            }
            m.players.push(player.clone());
            if !store(&m)? {
                continue;
            }
            if m.players.len() == PLAYERS {
                let players: Vec<&str> = m.players.iter().map(|p| p.user_id.as_str()).collect();
                let news = json!({"started": match_id, "players": players});
                if let Err(e) = realtime::send_to_room("turn-relay", &news) {
                    warn!("announcing {match_id}: {e}");
                }
            }
            return Ok(());
        }
        Err("The match is busy; try again.".into())
    }

    fn leave(match_id: &str, player: &Player) {
        for _ in 0..RETRIES {
            let Ok(Some(mut m)) = load(match_id) else {
                return;
            };
            let before = m.players.len();
            m.players.retain(|p| p.session_id != player.session_id);
            if m.players.len() == before {
                return;
            }
            m.ended = true;
            match store(&m) {
                Ok(true) => {
                    let left = serde_json::to_vec(&json!({"user_id": player.user_id})).unwrap_or_default();
                    let to = sessions(&m.players, &player.session_id);
                    if !to.is_empty()
                        && let Err(e) = realtime::send_match_data_to(match_id, OP_LEFT, &left, &to)
                    {
                        warn!("telling the other player of {match_id} failed: {e}");
                    }
                    return;
                }
                Ok(false) => continue,
                Err(e) => {
                    warn!("leaving {match_id}: {e}");
                    return;
                }
            }
        }
    }

    fn data(match_id: &str, sender: &Player, op_code: i64, data: &[u8]) -> std::result::Result<(), String> {
        if op_code != OP_MOVE {
            return Err(format!("Unknown op code {op_code}: send moves as {OP_MOVE}."));
        }
        let Some(mut m) = load(match_id)? else {
            return Err("No such match.".into());
        };
        let whose = m.players.get(m.turn).map(|p| p.session_id.as_str());
        if m.ended || m.players.len() < PLAYERS || whose != Some(sender.session_id.as_str()) {
            return realtime::send_match_data_to(match_id, OP_NOT_YOUR_TURN, b"", &[&sender.session_id])
                .map_err(|e| e.to_string());
        }
        m.turn = (m.turn + 1) % m.players.len();
        if !store(&m)? {
            // Someone else changed the match in between: this move lost.
            return realtime::send_match_data_to(match_id, OP_NOT_YOUR_TURN, b"", &[&sender.session_id])
                .map_err(|e| e.to_string());
        }
        let next = &m.players[m.turn];
        realtime::send_match_data_to(match_id, OP_MOVE, data, &[&next.session_id])
            .map_err(|e| e.to_string())?;
        let note = Notification::new("Your turn", json!({"match_id": match_id})).persistent(false);
        realtime::notify(&[&next.user_id], &note).map_err(|e| e.to_string())
    }
}

elements_sdk::export_element!(router, matches = TurnRelay);
