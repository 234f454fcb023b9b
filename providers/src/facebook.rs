//! Facebook Login. Two kinds of token:
//! - a classic access token, checked through the Graph API: `debug_token`
//!   (with the app's access token) must say it is valid and was issued to
//!   the configured app, and `/me` gives the profile;
//! - a Limited Login token (iOS), a JWT checked against Facebook's published
//!   keys with the app id as audience.
//!
//! The player is Facebook's user id; name, picture and email fill a new
//! account, as Nakama does. Importing the player's friends waits for a
//! friends feature: `sync`/`import` are accepted and do nothing yet.

use std::time::Duration;

use async_trait::async_trait;
use elements_config::providers::Facebook as Settings;
use elements_identity::{
    Credential, IdentityError, IdentityVerifier, Result, Secret, Verification, VerifiedIdentity, scheme,
};
use serde::Deserialize;

use crate::jwt::{self};
use crate::keys::KeySet;
use crate::{Fetcher, MAX_PROOF, not_genuine, required};

/// The Facebook verifier.
pub struct Facebook {
    app_id: String,
    app_secret: Secret,
    graph_url: String,
    fetcher: Fetcher,
    keys: KeySet,
    issuers: Vec<String>,
}

impl Facebook {
    /// A verifier for `settings`.
    pub fn new(settings: &Settings, fetcher: Fetcher, ttl: Duration) -> Facebook {
        Facebook {
            app_id: settings.app_id.clone(),
            app_secret: settings.app_secret.clone(),
            graph_url: settings.graph_url.trim_end_matches('/').to_owned(),
            keys: KeySet::new(
                "Facebook Limited Login keys",
                &settings.limited_login_keys_url,
                fetcher.clone(),
                ttl,
            ),
            fetcher,
            issuers: vec![settings.limited_login_issuer.clone()],
        }
    }

    async fn limited_login(&self, token: &str) -> Result<VerifiedIdentity> {
        let claims = jwt::verify(
            "Facebook",
            token,
            &self.keys,
            &self.issuers,
            std::slice::from_ref(&self.app_id),
        )
        .await?;
        // Limited Login includes the email only when the player shared it.
        jwt::identity(scheme::FACEBOOK, "Facebook", &claims, true)
    }

    async fn access_token(&self, token: &str) -> Result<VerifiedIdentity> {
        #[derive(Deserialize)]
        struct Debug {
            data: DebugData,
        }
        #[derive(Deserialize)]
        struct DebugData {
            #[serde(default)]
            is_valid: bool,
            #[serde(default)]
            app_id: Option<String>,
            #[serde(default)]
            user_id: Option<String>,
        }
        #[derive(Deserialize)]
        struct Me {
            id: String,
            name: Option<String>,
            email: Option<String>,
            picture: Option<Picture>,
        }
        #[derive(Deserialize)]
        struct Picture {
            data: Option<PictureData>,
        }
        #[derive(Deserialize)]
        struct PictureData {
            url: Option<String>,
        }

        let app_token = format!("{}|{}", self.app_id, self.app_secret.expose());
        let url = format!("{}/debug_token", self.graph_url);
        let answer = self
            .fetcher
            .get(
                "Facebook debug_token",
                &url,
                &[("input_token", token), ("access_token", &app_token)],
            )
            .await?;
        if answer.status >= 500 {
            return Err(IdentityError::ProviderUnavailable(format!(
                "Facebook debug_token answered {}",
                answer.status
            )));
        }
        if !answer.ok() {
            tracing::info!(status = answer.status, "Facebook refused to inspect a token");
            return Err(not_genuine("Facebook"));
        }
        let debug: Debug = answer.json("Facebook debug_token")?;
        let data = debug.data;
        if !data.is_valid || data.app_id.as_deref() != Some(self.app_id.as_str()) {
            return Err(not_genuine("Facebook"));
        }
        let user_id = data
            .user_id
            .filter(|u| !u.is_empty())
            .ok_or_else(|| not_genuine("Facebook"))?;

        let url = format!("{}/me", self.graph_url);
        let answer = self
            .fetcher
            .get(
                "Facebook profile",
                &url,
                &[
                    ("fields", "id,name,email,picture.type(large)"),
                    ("access_token", token),
                ],
            )
            .await?;
        if answer.status >= 500 {
            return Err(IdentityError::ProviderUnavailable(format!(
                "Facebook profile answered {}",
                answer.status
            )));
        }
        if !answer.ok() {
            return Err(not_genuine("Facebook"));
        }
        let me: Me = answer.json("Facebook profile")?;
        if me.id != user_id {
            return Err(not_genuine("Facebook"));
        }
        Ok(VerifiedIdentity {
            scheme: scheme::FACEBOOK.into(),
            id: user_id,
            status: Verification::Verified,
            email: me.email.filter(|e| !e.is_empty()).map(|e| e.to_lowercase()),
            display_name: me.name.filter(|n| !n.is_empty()),
            avatar_url: me.picture.and_then(|p| p.data).and_then(|d| d.url),
            ..VerifiedIdentity::default()
        })
    }
}

#[async_trait]
impl IdentityVerifier for Facebook {
    fn scheme(&self) -> &str {
        scheme::FACEBOOK
    }
    fn label(&self) -> &str {
        "Facebook ID"
    }
    fn normalize(&self, id: &str) -> Result<String> {
        Ok(id.to_owned())
    }
    async fn identify(&self, credential: &Credential) -> Result<String> {
        Ok(self.verify(credential).await?.id)
    }
    async fn verify(&self, credential: &Credential) -> Result<VerifiedIdentity> {
        let token = credential
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| required("Facebook access token"))?;
        if token.len() > MAX_PROOF {
            return Err(not_genuine("Facebook"));
        }
        // A Limited Login token is a JWT; a classic access token has no dots.
        if token.split('.').count() == 3 {
            self.limited_login(token).await
        } else {
            self.access_token(token).await
        }
    }
}
