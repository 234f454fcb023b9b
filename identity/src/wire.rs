//! How the model appears to clients: conversions into `elements-wire`'s
//! shapes, which `/api/rest`, the host's identity service (and through it
//! the Element SDK) and the Nakama-compatible `/v2` answer with.
//!
//! What never leaves: password hashes, the name key, the ban's start on
//! `/api/rest` (`banned` says enough), identities' storage keys. Times stay
//! epoch milliseconds except in Nakama's shapes, which want RFC 3339.

use elements_wire as wire;

use crate::model::{Application, Identity, Profile, User, Verification, scheme};
use crate::time::rfc3339;

impl From<User> for wire::User {
    fn from(u: User) -> wire::User {
        wire::User {
            id: u.id,
            name: u.name,
            email: u.email,
            display_name: u.display_name,
            avatar_url: u.avatar_url,
            lang_tag: u.lang_tag,
            location: u.location,
            timezone: u.timezone,
            metadata: u.metadata,
            level: u.level,
            banned: u.banned,
            created: u.created,
            updated: u.updated,
        }
    }
}

impl From<Profile> for wire::Profile {
    fn from(p: Profile) -> wire::Profile {
        wire::Profile {
            id: p.id,
            user_id: p.user_id,
            application_id: p.application_id,
            display_name: p.display_name,
            image_url: p.image_url,
            metadata: p.metadata,
            last_login: p.last_login,
            created: p.created,
            updated: p.updated,
        }
    }
}

impl From<Application> for wire::Application {
    fn from(a: Application) -> wire::Application {
        wire::Application {
            id: a.id,
            name: a.name,
            description: a.description,
            created: a.created,
            updated: a.updated,
        }
    }
}

impl From<Identity> for wire::Identity {
    fn from(i: Identity) -> wire::Identity {
        wire::Identity::new(i.scheme, i.id, i.user_id, i.status)
    }
}

/// A session's wire shape: its user, profile and application, and expiry.
pub fn session(
    user: User,
    profile: Option<Profile>,
    application: Option<Application>,
    expiry: i64,
) -> wire::Session {
    wire::Session {
        user: user.into(),
        profile: profile.map(Into::into),
        application: application.map(Into::into),
        expiry,
    }
}

impl From<User> for wire::nakama::User {
    fn from(u: User) -> wire::nakama::User {
        wire::nakama::User {
            id: u.id,
            username: u.name,
            display_name: u.display_name,
            avatar_url: u.avatar_url,
            lang_tag: u.lang_tag,
            location: u.location,
            timezone: u.timezone,
            metadata: u.metadata.to_string(),
            facebook_id: None,
            google_id: None,
            gamecenter_id: None,
            steam_id: None,
            apple_id: None,
            facebook_instant_game_id: None,
            create_time: rfc3339(u.created),
            update_time: rfc3339(u.updated),
        }
    }
}

/// Nakama's user with the provider ids among `identities` filled in.
pub fn nakama_user(user: User, identities: &[Identity]) -> wire::nakama::User {
    let id_of = |s: &str| identities.iter().find(|i| i.scheme == s).map(|i| i.id.clone());
    wire::nakama::User {
        facebook_id: id_of(scheme::FACEBOOK),
        google_id: id_of(scheme::GOOGLE),
        gamecenter_id: id_of(scheme::GAME_CENTER),
        steam_id: id_of(scheme::STEAM),
        apple_id: id_of(scheme::APPLE),
        facebook_instant_game_id: id_of(scheme::FACEBOOK_INSTANT_GAME),
        ..user.into()
    }
}

/// Nakama's `Account` of `user`, whose identities are `identities`: its
/// devices, custom id and, when the email identity is verified, since when.
/// Nakama has no wallet here, so it is always `{}`. Devices are ids alone:
/// Nakama's `AccountDevice` has `vars`, but Nakama stores none for a device
/// (vars given at authenticate go into the session token only) and its
/// gateway leaves the empty map out, so nakama-js never sees any.
pub fn nakama_account(user: User, identities: &[Identity]) -> wire::nakama::Account {
    let devices = identities
        .iter()
        .filter(|i| i.scheme == scheme::DEVICE)
        .map(|i| wire::nakama::AccountDevice { id: i.id.clone() })
        .collect();
    let custom_id = identities
        .iter()
        .find(|i| i.scheme == scheme::CUSTOM)
        .map(|i| i.id.clone());
    let verify_time = identities
        .iter()
        .find(|i| i.scheme == scheme::EMAIL && i.status == Verification::Verified)
        .map(|i| rfc3339(i.updated));
    wire::nakama::Account {
        email: user.email.clone(),
        disable_time: user.banned_at.map(rfc3339),
        user: nakama_user(user, identities),
        wallet: "{}".into(),
        devices,
        custom_id,
        verify_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(scheme: &str, id: &str, status: Verification) -> Identity {
        Identity {
            key: Identity::key_of(scheme, id),
            scheme: scheme.into(),
            id: id.into(),
            user_id: "u1".into(),
            status,
            created: 0,
            updated: 86_400_000,
        }
    }

    fn user() -> User {
        User {
            id: "u1".into(),
            name: "ada".into(),
            email: Some("ada@example.com".into()),
            level: crate::Level::User,
            display_name: None,
            avatar_url: None,
            lang_tag: Some("en".into()),
            location: None,
            timezone: None,
            metadata: json!({"k": 1}),
            banned: true,
            banned_at: Some(1000),
            created: 0,
            updated: 2000,
        }
    }

    #[test]
    fn users_show_no_storage_fields() {
        let shown = serde_json::to_value(wire::User::from(user())).unwrap();
        assert_eq!(
            shown,
            json!({"id": "u1", "name": "ada", "email": "ada@example.com", "langTag": "en",
                   "metadata": {"k": 1}, "level": "USER", "banned": true, "created": 0, "updated": 2000})
        );
    }

    #[test]
    fn nakama_accounts_list_devices_custom_id_and_verified_email() {
        let identities = [
            identity(scheme::DEVICE, "d1", Verification::Unverified),
            identity(scheme::DEVICE, "d2", Verification::Unverified),
            identity(scheme::CUSTOM, "c1", Verification::Unverified),
            identity(scheme::EMAIL, "ada@example.com", Verification::Verified),
        ];
        let account = serde_json::to_value(nakama_account(user(), &identities)).unwrap();
        assert_eq!(
            account,
            json!({
                "user": {"id": "u1", "username": "ada", "lang_tag": "en", "metadata": "{\"k\":1}",
                         "create_time": "1970-01-01T00:00:00Z", "update_time": "1970-01-01T00:00:02Z"},
                "wallet": "{}", "email": "ada@example.com",
                "devices": [{"id": "d1"}, {"id": "d2"}], "custom_id": "c1",
                "verify_time": "1970-01-02T00:00:00Z", "disable_time": "1970-01-01T00:00:01Z"
            })
        );
        let unverified = [identity(scheme::EMAIL, "ada@example.com", Verification::Pending)];
        let account = nakama_account(user(), &unverified);
        assert_eq!((account.verify_time, account.devices.len()), (None, 0));
    }
}
