//! The JSON shapes of the identity entities — users, profiles,
//! applications and sessions — as every client sees them: the `/api/rest`
//! API answers them and the host's identity service hands them to
//! Elements (the SDK's `identity` types read the same fields). One
//! definition, converted from the domain model of `elements-identity` by
//! the `From` impls here, so the API and Elements can't drift apart.
//!
//! Field names are camelCase; times are epoch milliseconds.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use elements_identity::{Application, Level, Profile, User};

/// A user's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LevelDto {
    /// May hold a session only.
    Unprivileged,
    /// A player.
    User,
    /// An administrator.
    Superuser,
}

impl From<Level> for LevelDto {
    fn from(l: Level) -> LevelDto {
        match l {
            Level::Unprivileged => LevelDto::Unprivileged,
            Level::User => LevelDto::User,
            Level::Superuser => LevelDto::Superuser,
        }
    }
}

impl From<LevelDto> for Level {
    fn from(l: LevelDto) -> Level {
        match l {
            LevelDto::Unprivileged => Level::Unprivileged,
            LevelDto::User => Level::User,
            LevelDto::Superuser => Level::Superuser,
        }
    }
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Avatar URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Language tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang_tag: Option<String>,
    /// Free-form JSON object.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Level.
    pub level: LevelDto,
    /// Banned.
    pub banned: bool,
    /// Creation time, epoch milliseconds.
    pub created: i64,
    /// Last update, epoch milliseconds.
    pub updated: i64,
}

impl From<User> for UserDto {
    fn from(u: User) -> UserDto {
        UserDto {
            id: u.id,
            name: u.name,
            email: u.email,
            display_name: u.display_name,
            avatar_url: u.avatar_url,
            lang_tag: u.lang_tag,
            metadata: u.metadata,
            level: u.level.into(),
            banned: u.banned,
            created: u.created,
            updated: u.updated,
        }
    }
}

/// A user's profile in one application.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileDto {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Application.
    pub application_id: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Image URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Free-form JSON object.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Last session opened with this profile, epoch milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_login: Option<i64>,
    /// Creation time, epoch milliseconds.
    pub created: i64,
    /// Last update, epoch milliseconds.
    pub updated: i64,
}

impl From<Profile> for ProfileDto {
    fn from(p: Profile) -> ProfileDto {
        ProfileDto {
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

/// An application.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDto {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Creation time, epoch milliseconds.
    pub created: i64,
    /// Last update, epoch milliseconds.
    pub updated: i64,
}

impl From<Application> for ApplicationDto {
    fn from(a: Application) -> ApplicationDto {
        ApplicationDto {
            id: a.id,
            name: a.name,
            description: a.description,
            created: a.created,
            updated: a.updated,
        }
    }
}

/// A session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDto {
    /// Its user.
    pub user: UserDto,
    /// Its profile.
    pub profile: Option<ProfileDto>,
    /// Its application.
    pub application: Option<ApplicationDto>,
    /// Expiry, epoch milliseconds.
    pub expiry: i64,
}
