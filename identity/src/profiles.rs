//! Profiles (a user in one application) and applications.

use elements_store::{Filter, StoreError, Update};
use elements_wire::{ApplicationUpdate, ProfileUpdate};
use serde_json::{Map, Value, json};

use crate::error::{IdentityError, Result};
use crate::model::{Application, Level, Page, Profile, User, empty_object};
use crate::service::{IdentityService, require_self_or_superuser, require_superuser};
use crate::store_util::{duplicate_in, page, parse, to_doc};
use crate::time::now_ms;
/// Which profiles [`IdentityService::list_profiles`] returns; every given
/// condition must hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProfileQuery<'a> {
    /// Only this user's.
    pub user_id: Option<&'a str>,
    /// Only in this application (id or name).
    pub application: Option<&'a str>,
    /// Only those whose display name starts with this (case-sensitive).
    pub display_name: Option<&'a str>,
}

/// A profile to create.
#[derive(Debug, Clone, Default)]
pub struct NewProfile {
    /// Owner.
    pub user_id: String,
    /// Application id or name.
    pub application: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Image URL.
    pub image_url: Option<String>,
    /// Metadata (a JSON object; `{}` when absent).
    pub metadata: Option<Value>,
}

fn profile_not_found() -> IdentityError {
    IdentityError::not_found("Profile not found.")
}

fn application_not_found() -> IdentityError {
    IdentityError::not_found("Application not found.")
}

fn application_name(name: &str) -> Result<String> {
    elements_store::namespace::validate_name_part("application", name)
        .map_err(|e| IdentityError::invalid(e.to_string().replace("invalid name: ", "")))?;
    Ok(name.to_owned())
}

fn object(metadata: Option<Value>) -> Result<Value> {
    match metadata {
        None => Ok(empty_object()),
        Some(v) => {
            crate::validate::metadata(&v)?;
            Ok(v)
        }
    }
}

impl IdentityService {
    // -------------------------------------------------------- applications

    /// The application with this id or name.
    pub async fn application(&self, id_or_name: &str) -> Result<Application> {
        // Ids are UUIDs, so a name that is not one skips a read that
        // cannot find anything (a login names its application).
        if uuid::Uuid::try_parse(id_or_name).is_ok()
            && let Some(doc) = self.store.get(&self.c.applications, id_or_name).await?
        {
            return parse(doc);
        }
        let doc = self
            .store
            .find_one(&self.c.applications, &Filter::eq("name", id_or_name)?)
            .await?;
        doc.map(parse).transpose()?.ok_or_else(application_not_found)
    }

    /// Creates an application (superusers only). Names are 1–48 ASCII letters,
    /// digits, `_` or `-`: they also name the application's storage namespace.
    pub async fn create_application(
        &self,
        actor: &User,
        name: &str,
        description: Option<String>,
    ) -> Result<Application> {
        require_superuser(actor)?;
        let now = now_ms();
        let application = Application {
            id: uuid::Uuid::new_v4().to_string(),
            name: application_name(name)?,
            description: description.filter(|d| !d.is_empty()),
            created: now,
            updated: now,
        };
        match self
            .store
            .insert(&self.c.applications, to_doc(&application)?)
            .await
        {
            Ok(_) => Ok(application),
            Err(e) if e.is_duplicate_key() => Err(IdentityError::AlreadyExists(
                "Application name is already in use.".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Applications by name (superusers only).
    pub async fn list_applications(
        &self,
        actor: &User,
        offset: u64,
        count: u64,
    ) -> Result<Page<Application>> {
        require_superuser(actor)?;
        page(
            &*self.store,
            &self.c.applications,
            Filter::all(),
            "name",
            offset,
            count,
        )
        .await
    }

    /// Changes an application (superusers only).
    pub async fn update_application(
        &self,
        actor: &User,
        id_or_name: &str,
        update: ApplicationUpdate,
    ) -> Result<Application> {
        require_superuser(actor)?;
        let current = self.application(id_or_name).await?;
        let mut set = Map::new();
        set.insert("updated".into(), json!(now_ms()));
        let mut doc = Map::new();
        if let Some(name) = &update.name {
            set.insert("name".into(), json!(application_name(name)?));
        }
        match update.description.as_deref() {
            Some("") => {
                doc.insert("$unset".into(), json!({"description": ""}));
            }
            Some(d) => {
                set.insert("description".into(), json!(d));
            }
            None => {}
        }
        doc.insert("$set".into(), Value::Object(set));
        let update = Update::parse(&Value::Object(doc))?;
        match self
            .store
            .update_by_id(&self.c.applications, &current.id, &update, None)
            .await
        {
            Ok(doc) => parse(doc),
            Err(e) if e.is_duplicate_key() => Err(IdentityError::AlreadyExists(
                "Application name is already in use.".into(),
            )),
            Err(StoreError::NotFound(_)) => Err(application_not_found()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an application and its profiles (superusers only).
    pub async fn delete_application(&self, actor: &User, id_or_name: &str) -> Result<()> {
        require_superuser(actor)?;
        let current = self.application(id_or_name).await?;
        self.store
            .delete_many(
                &self.c.profiles,
                &Filter::eq("application_id", current.id.as_str())?,
            )
            .await?;
        self.store
            .delete_by_id(&self.c.applications, &current.id, None)
            .await?;
        Ok(())
    }

    // ------------------------------------------------------------ profiles

    /// The profile of `user_id` in an application, created (empty) if absent.
    /// Race-free with the unique (user, application) index: a concurrent
    /// creator's duplicate makes the loser read the winner's profile.
    pub async fn find_or_create_profile(
        &self,
        user_id: &str,
        application: &Application,
    ) -> Result<(Profile, bool)> {
        let filter =
            Filter::eq("user_id", user_id)?.and(Filter::eq("application_id", application.id.as_str())?);
        for _ in 0..4 {
            if let Some(doc) = self.store.find_one(&self.c.profiles, &filter).await? {
                return Ok((parse(doc)?, false));
            }
            let now = now_ms();
            let profile = Profile {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: user_id.into(),
                application_id: application.id.clone(),
                display_name: None,
                image_url: None,
                metadata: empty_object(),
                last_login: None,
                created: now,
                updated: now,
            };
            match self.store.insert(&self.c.profiles, to_doc(&profile)?).await {
                Ok(_) => return Ok((profile, true)),
                Err(e) if e.is_duplicate_key() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(IdentityError::internal(
            "could not find or create the profile (too much contention)",
        ))
    }

    /// The profile with this id; its owner or a superuser.
    pub async fn profile(&self, actor: &User, id: &str) -> Result<Profile> {
        let profile = self.profile_as_system(id).await?;
        require_self_or_superuser(actor, &profile.user_id)?;
        Ok(profile)
    }

    /// A profile by id, without an actor: for host services, which act on
    /// behalf of an Element the operator deployed (the Element decides who
    /// may do what).
    pub async fn profile_as_system(&self, id: &str) -> Result<Profile> {
        self.store
            .get(&self.c.profiles, id)
            .await?
            .map(parse)
            .transpose()?
            .ok_or_else(profile_not_found)
    }

    /// Creates a profile for `new.user_id` (the actor themself, or anyone for
    /// a superuser). One per user per application unless configured otherwise.
    pub async fn create_profile(&self, actor: &User, new: NewProfile) -> Result<Profile> {
        require_self_or_superuser(actor, &new.user_id)?;
        let owner = self.user(&new.user_id).await?;
        let application = self.application(&new.application).await?;
        let now = now_ms();
        let profile = Profile {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: owner.id,
            application_id: application.id,
            display_name: new.display_name.filter(|d| !d.is_empty()),
            image_url: new.image_url.filter(|d| !d.is_empty()),
            metadata: object(new.metadata)?,
            last_login: None,
            created: now,
            updated: now,
        };
        match self.store.insert(&self.c.profiles, to_doc(&profile)?).await {
            Ok(_) => Ok(profile),
            Err(e) if duplicate_in(&e).is_some() => Err(IdentityError::AlreadyExists(
                "The user already has a profile in this application.".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Profiles matching `query`, by creation time. Users see their own;
    /// superusers everyone's.
    pub async fn list_profiles(
        &self,
        actor: &User,
        query: &ProfileQuery<'_>,
        offset: u64,
        count: u64,
    ) -> Result<Page<Profile>> {
        let user_id = match query.user_id {
            Some(u) => {
                require_self_or_superuser(actor, u)?;
                Some(u.to_owned())
            }
            None if actor.level == Level::Superuser => None,
            None => Some(actor.id.clone()),
        };
        let mut filter = Filter::all();
        if let Some(u) = &user_id {
            filter = filter.and(Filter::eq("user_id", u.as_str())?);
        }
        if let Some(a) = query.application.filter(|a| !a.is_empty()) {
            let application = self.application(a).await?;
            filter = filter.and(Filter::eq("application_id", application.id.as_str())?);
        }
        if let Some(prefix) = query.display_name.filter(|p| !p.is_empty()) {
            // Strings compare by UTF-8 bytes: [p, p + U+10FFFF) is "starts with p".
            let upper = format!("{prefix}\u{10FFFF}");
            filter = filter.and(Filter::parse(
                &json!({"display_name": {"$gte": prefix, "$lt": upper}}),
            )?);
        }
        page(&*self.store, &self.c.profiles, filter, "created", offset, count).await
    }

    /// Changes a profile; its owner or a superuser.
    pub async fn update_profile(&self, actor: &User, id: &str, update: ProfileUpdate) -> Result<Profile> {
        let current = self.profile(actor, id).await?;
        self.apply_profile_update(&current.id, update).await
    }

    /// Changes a profile without an actor (see [`Self::profile_as_system`]).
    pub async fn update_profile_as_system(&self, id: &str, update: ProfileUpdate) -> Result<Profile> {
        let current = self.profile_as_system(id).await?;
        self.apply_profile_update(&current.id, update).await
    }

    async fn apply_profile_update(&self, id: &str, update: ProfileUpdate) -> Result<Profile> {
        let mut set = Map::new();
        let mut unset = Map::new();
        set.insert("updated".into(), json!(now_ms()));
        for (field, value) in [
            ("display_name", &update.display_name),
            ("image_url", &update.image_url),
        ] {
            match value.as_deref() {
                Some("") => {
                    unset.insert(field.into(), json!(""));
                }
                Some(v) => {
                    set.insert(field.into(), json!(v));
                }
                None => {}
            }
        }
        if update.metadata.is_some() {
            set.insert("metadata".into(), object(update.metadata)?);
        }
        let mut doc = Map::new();
        doc.insert("$set".into(), Value::Object(set));
        if !unset.is_empty() {
            doc.insert("$unset".into(), Value::Object(unset));
        }
        let update = Update::parse(&Value::Object(doc))?;
        match self.store.update_by_id(&self.c.profiles, id, &update, None).await {
            Ok(doc) => parse(doc),
            Err(StoreError::NotFound(_)) => Err(profile_not_found()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a profile; its owner or a superuser.
    pub async fn delete_profile(&self, actor: &User, id: &str) -> Result<()> {
        let current = self.profile(actor, id).await?;
        self.store
            .delete_by_id(&self.c.profiles, &current.id, None)
            .await?;
        Ok(())
    }
}
