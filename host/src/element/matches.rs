//! Running the matches an Element owns (`realtime.create-match`): the
//! hub hands a player's join, leave and match data to the Element's
//! `elements:platform/match-handler` export. Each call runs in a fresh
//! instance with the Element's usual limits, like an event handler.

use std::time::Instant;

use wasmtime::component::InstancePre;

use super::Element;
use super::invoke::InvokeError;
use super::shape;
use crate::instance::{RequestInfo, RequestState};
use crate::log_buffer::{Level, Source};
use crate::services::Services;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "elements:platform/match-host",
    exports: { default: async },
});

pub use MatchHost as MatchHostBindings;
pub use MatchHostPre as MatchHostBindingsPre;
pub use exports::elements::platform::match_handler::Presence as MatchPresence;

/// One call of the match handler.
#[derive(Debug, Clone)]
pub enum MatchCall {
    /// A player asks to join.
    Join,
    /// A player left.
    Leave,
    /// A player sent match data.
    Data {
        /// Application-defined.
        op_code: i64,
        /// As sent.
        data: Vec<u8>,
    },
}

impl MatchCall {
    fn name(&self) -> &'static str {
        match self {
            MatchCall::Join => "join",
            MatchCall::Leave => "leave",
            MatchCall::Data { .. } => "data",
        }
    }
}

/// The export's interface, named without its version.
pub const INTERFACE: &str = "elements:platform/match-handler";

/// Checks, at deploy, that the component's `match-handler` export has the shape
/// this server calls (see [`super::shape`]).
pub fn check_shape<T>(pre: &InstancePre<T>) -> Result<(), String> {
    shape::check_func::<(String, MatchPresence), (Result<(), String>,), T>(pre, INTERFACE, "join")?;
    shape::check_func::<(String, MatchPresence), (), T>(pre, INTERFACE, "leave")?;
    shape::check_func::<(String, MatchPresence, i64, Vec<u8>), (Result<(), String>,), T>(
        pre, INTERFACE, "data",
    )
}

impl Element {
    /// Whether this Element exports the match handler.
    pub fn runs_matches(&self) -> bool {
        self.match_host.is_some()
    }

    /// Calls the Element's match handler. The outer error is the
    /// invocation's (logged to the Element's log); the inner one is the
    /// handler's own refusal or failure.
    pub async fn match_event(
        &self,
        services: &Services,
        match_id: &str,
        player: MatchPresence,
        call: MatchCall,
        info: RequestInfo,
    ) -> Result<Result<(), String>, InvokeError> {
        let Some(pre) = &self.match_host else {
            return Ok(Err("This Element runs no matches.".into()));
        };
        let name = call.name();
        let result = match self.take_slot() {
            Ok(_slot) => self.run_match(pre, services, match_id, player, call, &info).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            self.log.push(
                Level::Error,
                Source::Host,
                Some(&info.request_id),
                &format!("match {name} for {match_id} not handled: {e}"),
            );
            tracing::warn!(element = %self.name, "match {name} for {match_id} not handled: {e}");
        }
        result
    }

    async fn run_match(
        &self,
        pre: &MatchHostBindingsPre<RequestState>,
        services: &Services,
        match_id: &str,
        player: MatchPresence,
        call: MatchCall,
        info: &RequestInfo,
    ) -> Result<Result<(), String>, InvokeError> {
        let deadline = Instant::now() + self.limits.timeout;
        let mut store = self.new_store(services, info, deadline);
        let run = async {
            let host = pre.instantiate_async(&mut store).await?;
            let handler = host.elements_platform_match_handler();
            match call {
                MatchCall::Join => handler.call_join(&mut store, match_id, &player).await,
                MatchCall::Leave => handler.call_leave(&mut store, match_id, &player).await.map(Ok),
                MatchCall::Data { op_code, data } => {
                    handler
                        .call_data(&mut store, match_id, &player, op_code, &data)
                        .await
                }
            }
        };
        match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(self.classify(&store, e)),
            Err(_) => Err(InvokeError::Timeout(self.limits.timeout.as_millis())),
        }
    }
}
