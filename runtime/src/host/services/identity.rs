//! `elements:platform/identity`: users, identities, profiles and sessions for
//! Elements, over the same [`IdentityService`] as `/api/rest` and `/v2`, so a
//! player created by an Element is the same user everywhere. Entities are
//! JSON in the `/api/rest` shapes.
//!
//! The caller of a request is resolved from the credentials the HTTP layer
//! took from the request (`Authorization: Bearer` or
//! `Elements-SessionSecret`), never from anything the Element passes in.

use std::sync::Arc;
use std::time::Duration;

use elements_identity::{
    CallerSession, FindOrCreate, IdentityError, IdentityService, ProfileUpdate, VerificationStatus,
    VerifiedIdentity,
};
use serde::Serialize;
use serde_json::{Value, json};
use wasmtime::component::{HasSelf, Linker};

use super::elements::platform::identity::{self as wit, Error, Verification};
use super::{DeployContext, HostService, ServiceConfigError};
use crate::api::rest::{ApplicationDto, ProfileDto, SessionDto, UserDto};
use crate::host::{RequestInfo, RequestState};

/// Longest session an Element may create: 90 days.
const MAX_SESSION: Duration = Duration::from_secs(90 * 24 * 3600);

/// The identity service.
pub struct IdentityHostService {
    service: Arc<IdentityService>,
}

impl IdentityHostService {
    /// Over the server's identity service.
    pub fn new(service: Arc<IdentityService>) -> IdentityHostService {
        IdentityHostService { service }
    }
}

/// One instance's view: the service and the request's credential.
pub struct Identities {
    service: Arc<IdentityService>,
    credential: Option<Arc<str>>,
}

impl HostService for IdentityHostService {
    type Deployed = ();
    type Instance = Identities;

    fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        wit::add_to_linker::<RequestState, HasSelf<Identities>>(linker, |state| &mut state.services.identity)
    }

    fn deploy(&self, _element: &DeployContext<'_>) -> Result<(), ServiceConfigError> {
        Ok(())
    }

    fn prepare(&self, _deployed: &(), request: &RequestInfo) -> Identities {
        Identities {
            service: self.service.clone(),
            credential: request.credential.clone(),
        }
    }
}

fn to_wit(error: IdentityError) -> Error {
    match error {
        IdentityError::NotFound(m) => Error::NotFound(m),
        IdentityError::AlreadyExists(m) => Error::Conflict(m),
        IdentityError::InvalidArgument(m) => Error::Invalid(m),
        IdentityError::PermissionDenied(m) => Error::Forbidden(m),
        IdentityError::Unavailable(m) => Error::Unavailable(m),
        other => Error::Internal(other.to_string()),
    }
}

fn to_json(value: impl Serialize) -> Result<String, Error> {
    serde_json::to_string(&value).map_err(|e| Error::Internal(e.to_string()))
}

/// Verification statuses as WIT has them.
fn status(v: Verification) -> VerificationStatus {
    match v {
        Verification::Unverified => VerificationStatus::Unverified,
        Verification::Pending => VerificationStatus::Pending,
        Verification::Verified => VerificationStatus::Verified,
    }
}

fn identity_json(identity: &elements_identity::Identity) -> Value {
    json!({
        "scheme": identity.scheme,
        "id": identity.id,
        "userId": identity.user_id,
        "verification": identity.status,
    })
}

impl wit::Host for Identities {
    async fn find_or_create_user(
        &mut self,
        scheme: String,
        id: String,
        username: Option<String>,
    ) -> Result<(String, bool), Error> {
        if scheme.is_empty() || id.is_empty() || scheme.len() > 128 || id.len() > 256 {
            return Err(Error::Invalid(
                "the scheme and id must be 1 to 128 and 1 to 256 bytes".into(),
            ));
        }
        let outcome = self
            .service
            .find_or_create_user(FindOrCreate {
                identity: VerifiedIdentity {
                    scheme,
                    id,
                    status: VerificationStatus::Verified,
                    password: None,
                    email: None,
                },
                create: true,
                username,
            })
            .await
            .map_err(to_wit)?;
        Ok((to_json(UserDto::from(outcome.user))?, outcome.created))
    }

    async fn user(&mut self, user_id: String) -> Result<String, Error> {
        to_json(UserDto::from(self.service.user(&user_id).await.map_err(to_wit)?))
    }

    async fn application(&mut self, name_or_id: String) -> Result<Option<String>, Error> {
        match self.service.application(&name_or_id).await {
            Ok(app) => Ok(Some(to_json(ApplicationDto::from(app))?)),
            Err(IdentityError::NotFound(_)) => Ok(None),
            Err(e) => Err(to_wit(e)),
        }
    }

    async fn find_or_create_profile(
        &mut self,
        user_id: String,
        application: String,
    ) -> Result<(String, bool), Error> {
        let application = self.service.application(&application).await.map_err(to_wit)?;
        let (profile, created) = self
            .service
            .find_or_create_profile(&user_id, &application.id)
            .await
            .map_err(to_wit)?;
        Ok((to_json(ProfileDto::from(profile))?, created))
    }

    async fn update_profile(&mut self, profile_id: String, update: String) -> Result<String, Error> {
        let update: Value = serde_json::from_str(&update)
            .map_err(|e| Error::Invalid(format!("the update is not JSON: {e}")))?;
        let text = |key: &str| -> Result<Option<String>, Error> {
            match update.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(Error::Invalid(format!("`{key}` must be a string"))),
            }
        };
        let metadata = match update.get("metadata") {
            None | Some(Value::Null) => None,
            Some(m @ Value::Object(_)) => Some(m.clone()),
            Some(_) => return Err(Error::Invalid("`metadata` must be a JSON object".into())),
        };
        let change = ProfileUpdate {
            display_name: text("displayName")?,
            image_url: text("imageUrl")?,
            metadata,
        };
        let profile = self
            .service
            .update_profile_as_system(&profile_id, change)
            .await
            .map_err(to_wit)?;
        to_json(ProfileDto::from(profile))
    }

    async fn create_session(
        &mut self,
        user_id: String,
        profile_id: Option<String>,
        expiry_seconds: u64,
    ) -> Result<String, Error> {
        let ttl = Duration::from_secs(expiry_seconds);
        if ttl.is_zero() || ttl > MAX_SESSION {
            return Err(Error::Invalid(format!(
                "expiry-seconds must be between 1 and {}",
                MAX_SESSION.as_secs()
            )));
        }
        let user = self.service.user(&user_id).await.map_err(to_wit)?;
        let profile = match &profile_id {
            Some(id) => Some(self.service.profile_as_system(id).await.map_err(to_wit)?),
            None => None,
        };
        if let Some(p) = &profile
            && p.user_id != user.id
        {
            return Err(Error::Invalid("the profile belongs to another user".into()));
        }
        let application = match &profile {
            Some(p) => Some(
                self.service
                    .application(&p.application_id)
                    .await
                    .map_err(to_wit)?,
            ),
            None => None,
        };
        let (secret, session) = self
            .service
            .create_session(
                &user.id,
                profile.as_ref().map(|p| p.id.as_str()),
                application.as_ref().map(|a| a.id.as_str()),
                Some(ttl),
            )
            .await
            .map_err(to_wit)?;
        to_json(json!({
            "sessionSecret": secret,
            "session": SessionDto {
                user: user.into(),
                profile: profile.map(Into::into),
                application: application.map(Into::into),
                expiry: session.expiry,
            },
        }))
    }

    async fn caller(&mut self) -> Result<Option<String>, Error> {
        let Some(credential) = &self.credential else {
            return Ok(None);
        };
        let caller = match self.service.resolve_credential(credential).await {
            Ok(caller) => caller,
            Err(IdentityError::Unauthenticated(_) | IdentityError::NotFound(_)) => return Ok(None),
            Err(IdentityError::PermissionDenied(_)) => return Ok(None),
            Err(e) => return Err(to_wit(e)),
        };
        let (profile, application) = match caller.session {
            CallerSession::Elements(resolved) => (resolved.profile, resolved.application),
            CallerSession::Token(_) => (None, None),
        };
        to_json(json!({
            "user": UserDto::from(caller.user),
            "profile": profile.map(ProfileDto::from),
            "application": application.map(ApplicationDto::from),
        }))
        .map(Some)
    }

    async fn get_identity(&mut self, scheme: String, id: String) -> Result<Option<String>, Error> {
        let found = self.service.identity(&scheme, &id).await.map_err(to_wit)?;
        found.map(|i| to_json(identity_json(&i))).transpose()
    }

    async fn set_verification(
        &mut self,
        scheme: String,
        id: String,
        verification: Verification,
    ) -> Result<String, Error> {
        let identity = self
            .service
            .set_verification_status(&scheme, &id, status(verification))
            .await
            .map_err(to_wit)?;
        to_json(identity_json(&identity))
    }

    async fn link_email(&mut self, user_id: String, email: String) -> Result<(), Error> {
        self.service
            .link_email(&user_id, &email, None)
            .await
            .map_err(to_wit)
    }
}
