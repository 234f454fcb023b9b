//! Matches run by Elements: the hub asks the Element named in a match id
//! (`UUID.element:NAME`, minted by `realtime.create-match`) to admit each
//! player, hands it their match data and tells it when they leave, through
//! its `match-handler` export.

use std::sync::Arc;

use elements_host::element::matches::{MatchCall, MatchPresence};
use elements_host::instance::RequestInfo;
use elements_realtime::{MatchHandler, MatchRefusal, Presence};

use crate::Deployer;
use crate::registry::Registry;

/// Runs Elements' matches with the mounted Elements.
pub struct ElementMatches {
    registry: Arc<Registry>,
    deployer: Arc<Deployer>,
}

impl ElementMatches {
    /// Matches run by the Elements in `registry`, with `deployer`'s host.
    pub fn new(registry: Arc<Registry>, deployer: Arc<Deployer>) -> ElementMatches {
        ElementMatches { registry, deployer }
    }

    async fn call(
        &self,
        element: &str,
        match_id: &str,
        player: &Presence,
        call: MatchCall,
    ) -> Option<Result<(), String>> {
        let element = self.registry.by_name(element).filter(|e| e.runs_matches())?;
        let presence = MatchPresence {
            user_id: player.user_id.clone(),
            session_id: player.session_id.clone(),
            username: player.username.clone(),
        };
        let info = RequestInfo::internal(uuid::Uuid::new_v4().to_string());
        // The Element's log has the detail; the player learns only that it failed.
        Some(
            element
                .match_event(&self.deployer.host().services, match_id, presence, call, info)
                .await
                .unwrap_or_else(|e| Err(format!("The match's Element {e}."))),
        )
    }
}

#[async_trait::async_trait]
impl MatchHandler for ElementMatches {
    async fn join(&self, element: &str, match_id: &str, player: &Presence) -> Result<(), MatchRefusal> {
        match self.call(element, match_id, player, MatchCall::Join).await {
            None => Err(MatchRefusal::NotFound),
            Some(answer) => answer.map_err(MatchRefusal::Refused),
        }
    }

    async fn leave(&self, element: &str, match_id: &str, player: &Presence) {
        let _ = self.call(element, match_id, player, MatchCall::Leave).await;
    }

    async fn data(
        &self,
        element: &str,
        match_id: &str,
        sender: &Presence,
        op_code: i64,
        data: Vec<u8>,
    ) -> Result<(), String> {
        self.call(element, match_id, sender, MatchCall::Data { op_code, data })
            .await
            .unwrap_or_else(|| Err("Match not found".into()))
    }
}
