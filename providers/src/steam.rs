//! Steam: the client sends a session ticket (`GetAuthSessionTicket` /
//! `GetAuthTicketForWebApi`, hex); the partner Web API's
//! `ISteamUserAuth/AuthenticateUserTicket` with the publisher key and app
//! id says whether it is genuine and whose it is (the SteamID).

use async_trait::async_trait;
use elements_config::providers::Steam as Settings;
use elements_identity::{
    Credential, IdentityError, IdentityVerifier, Result, Secret, Verification, VerifiedIdentity, scheme,
};
use serde::Deserialize;

use crate::{Fetcher, MAX_PROOF, not_genuine, required};

/// The Steam verifier.
pub struct Steam {
    app_id: String,
    key: Secret,
    url: String,
    fetcher: Fetcher,
}

impl Steam {
    /// A verifier for `settings`.
    pub fn new(settings: &Settings, fetcher: Fetcher) -> Steam {
        Steam {
            app_id: settings.app_id.to_string(),
            key: settings.publisher_key.clone(),
            url: format!(
                "{}/ISteamUserAuth/AuthenticateUserTicket/v1/",
                settings.api_url.trim_end_matches('/')
            ),
            fetcher,
        }
    }
}

#[async_trait]
impl IdentityVerifier for Steam {
    fn scheme(&self) -> &str {
        scheme::STEAM
    }
    fn label(&self) -> &str {
        "Steam ID"
    }
    fn normalize(&self, id: &str) -> Result<String> {
        Ok(id.to_owned())
    }
    async fn identify(&self, credential: &Credential) -> Result<String> {
        Ok(self.verify(credential).await?.id)
    }
    async fn verify(&self, credential: &Credential) -> Result<VerifiedIdentity> {
        #[derive(Deserialize)]
        struct Answer {
            response: Response,
        }
        #[derive(Deserialize)]
        struct Response {
            params: Option<Params>,
        }
        #[derive(Deserialize)]
        struct Params {
            result: String,
            steamid: String,
        }
        let ticket = credential
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| required("Steam token"))?;
        // Tickets are hex; anything else can't be one and isn't sent on.
        if ticket.len() > MAX_PROOF || !ticket.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_genuine("Steam"));
        }
        let answer = self
            .fetcher
            .get(
                "Steam AuthenticateUserTicket",
                &self.url,
                &[
                    ("key", self.key.expose()),
                    ("appid", &self.app_id),
                    ("ticket", ticket),
                ],
            )
            .await?;
        if !answer.ok() {
            // 401/403: the publisher key is wrong; 5xx: Steam is down. Either
            // way nothing was learnt about the ticket.
            return Err(IdentityError::ProviderUnavailable(format!(
                "Steam AuthenticateUserTicket answered {}",
                answer.status
            )));
        }
        let answer: Answer = answer.json("Steam AuthenticateUserTicket")?;
        // An invalid ticket is answered 200 with `response.error`.
        let params = answer.response.params.ok_or_else(|| not_genuine("Steam"))?;
        if params.result != "OK"
            || params.steamid.is_empty()
            || !params.steamid.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(not_genuine("Steam"));
        }
        Ok(VerifiedIdentity {
            scheme: scheme::STEAM.into(),
            id: params.steamid,
            status: Verification::Verified,
            ..VerifiedIdentity::default()
        })
    }
}
