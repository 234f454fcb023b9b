//! The identity service over a real store (SQLite in a temp folder): the
//! operations host services will call.

use std::sync::Arc;
use std::time::Duration;

use elements_identity::{
    CallerSession, Credential, FindOrCreate, IdentityConfig, IdentityError, IdentityService, Level, NewUser,
    Verification, VerifiedIdentity, scheme,
};
use elements_store::filter::{Filter, Query, SortKey};
use elements_store::namespace::{CollectionName, Namespace};
use elements_store::update::Update;
use elements_store::{SqliteConfig, StoreConfig};
use serde_json::Value;

async fn service(dir: &tempfile::TempDir) -> Arc<IdentityService> {
    let store = elements_store::open(StoreConfig::Sqlite(SqliteConfig::in_data_dir(dir.path())))
        .await
        .expect("store");
    Arc::new(
        IdentityService::new(store, IdentityConfig::default())
            .await
            .expect("service"),
    )
}

fn device(id: &str) -> FindOrCreate {
    FindOrCreate {
        identity: VerifiedIdentity {
            scheme: scheme::DEVICE.into(),
            id: id.into(),
            status: Verification::Unverified,
            password: None,
            email: None,
            ..VerifiedIdentity::default()
        },
        create: true,
        username: None,
        client: None,
    }
}

#[tokio::test]
async fn host_service_operations() {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = service(&dir).await;

    // Concurrent find-or-create of one identity: one user.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let service = service.clone();
        tasks.push(tokio::spawn(async move {
            service.find_or_create_user(device("device-race-1")).await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for task in tasks {
        let outcome = task.await.expect("task").expect("find or create");
        ids.insert(outcome.user.id);
        created += usize::from(outcome.created);
    }
    assert_eq!((ids.len(), created), (1, 1));
    let user_id = ids.into_iter().next().unwrap_or_default();

    // Link an email, then verify it.
    service
        .link_email(&user_id, "Player@Example.com", None)
        .await
        .expect("link");
    let identity = service
        .set_verification_status(scheme::EMAIL, "player@example.com", Verification::Verified)
        .await
        .expect("status");
    assert_eq!(
        (identity.user_id.as_str(), identity.status),
        (user_id.as_str(), Verification::Verified)
    );
    assert_eq!(
        service
            .find_user_by_identity(scheme::EMAIL, "player@example.com")
            .await
            .expect("find")
            .map(|u| u.id),
        Some(user_id.clone())
    );

    // A profile per application, and a session that resolves to the caller.
    let root = service
        .create_user(NewUser {
            name: "admin".into(),
            password: Some("password1".into()),
            level: Level::Superuser,
            ..NewUser::default()
        })
        .await
        .expect("superuser");
    let app = service
        .create_application(&root, "chess", None)
        .await
        .expect("application");
    // Found by name and by id alike.
    assert_eq!(service.application("chess").await.expect("by name").id, app.id);
    assert_eq!(service.application(&app.id).await.expect("by id").name, "chess");
    // A name shaped like an id is still found by name.
    let uuid_name = "0b4a7c1e-9d2f-4e3a-8b5c-6d7e8f901234";
    let named = service
        .create_application(&root, uuid_name, None)
        .await
        .expect("an application named like an id");
    assert_eq!(
        service.application(uuid_name).await.expect("by that name").id,
        named.id
    );
    let (profile, created) = service
        .find_or_create_profile(&user_id, &app)
        .await
        .expect("profile");
    assert!(created);
    let (again, created) = service
        .find_or_create_profile(&user_id, &app)
        .await
        .expect("profile");
    assert_eq!((again.id.as_str(), created), (profile.id.as_str(), false));
    let (secret, session) = service
        .create_session(
            &user_id,
            Some(&profile),
            Some(&app.id),
            Some(Duration::from_secs(60)),
        )
        .await
        .expect("session");
    assert!(!secret.contains(&session.id), "the secret is signed, not the id");
    let last_login = service
        .profile_as_system(&profile.id)
        .await
        .expect("profile")
        .last_login
        .expect("the first login is recorded");
    // A second session within the minute: nothing written, the first stays.
    let logged_in = service.profile_as_system(&profile.id).await.expect("profile");
    let (second, _) = service
        .create_session(&user_id, Some(&logged_in), Some(&app.id), None)
        .await
        .expect("session");
    assert_eq!(
        service
            .profile_as_system(&profile.id)
            .await
            .expect("profile")
            .last_login,
        Some(last_login)
    );
    // Another user's profile is refused.
    assert!(matches!(
        service
            .create_session("someone-else", Some(&profile), None, None)
            .await,
        Err(IdentityError::InvalidArgument(_))
    ));
    let caller = service.resolve_credential(&secret).await.expect("caller");
    assert_eq!(caller.user.id, user_id);
    match caller.session {
        CallerSession::Elements(resolved) => {
            assert_eq!(resolved.profile.map(|p| p.id), Some(profile.id.clone()));
        }
        CallerSession::Token(_) => panic!("an Elements session"),
    }
    // A Nakama token resolves too.
    let pair = service
        .issue_tokens(&caller.user, Default::default())
        .await
        .expect("tokens");
    assert!(matches!(
        service.resolve_credential(&pair.token).await.map(|c| c.session),
        Ok(CallerSession::Token(_))
    ));
    assert!(matches!(
        service.resolve_credential("nonsense").await,
        Err(IdentityError::Unauthenticated(_))
    ));
    assert!(service.delete_session(&secret).await.expect("delete"));
    assert!(service.resolve_session(&secret).await.is_err());
    assert!(!service.delete_session(&secret).await.expect("delete"), "once");
    // Logging one session out leaves the other.
    assert_eq!(
        service.resolve_session(&second).await.expect("second").user.id,
        user_id
    );
    // A forged one: the same payload, the MAC of another.
    let (payload, _) = secret.split_once('.').expect("payload.mac");
    let (_, mac) = second.split_once('.').expect("payload.mac");
    assert!(
        service
            .resolve_session(&format!("{payload}.{mac}"))
            .await
            .is_err()
    );
    assert!(
        !service
            .delete_session(&format!("{payload}.{mac}"))
            .await
            .expect("delete")
    );

    // Unlinking down to the last identifier.
    service
        .unlink(&user_id, scheme::EMAIL, &Credential::id("player@example.com"))
        .await
        .expect("unlink email");
    assert_eq!(
        service
            .unlink(&user_id, scheme::DEVICE, &Credential::id("device-race-1"))
            .await,
        Err(IdentityError::last_identifier())
    );
}

#[tokio::test]
async fn names_are_unique_by_key_even_in_a_race() {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = service(&dir).await;
    let spellings = [
        "Jos\u{e9}",
        "Jose\u{301}",
        "JOS\u{c9}",
        "jose\u{301}",
        "\u{ff2a}os\u{e9}",
    ];
    let mut tasks = Vec::new();
    for (i, name) in spellings.iter().cycle().take(20).enumerate() {
        let service = service.clone();
        let name = name.to_string();
        tasks.push(tokio::spawn(async move {
            service
                .create_user(NewUser {
                    name,
                    email: Some(format!("jose{i}@example.com")),
                    ..NewUser::default()
                })
                .await
        }));
    }
    let (mut created, mut in_use) = (0, 0);
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => created += 1,
            Err(IdentityError::AlreadyExists(m)) if m == "Username is already in use." => in_use += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!((created, in_use), (1, 19));
    let found = service
        .find_user_by_name("jos\u{e9}")
        .await
        .expect("find")
        .expect("user");
    assert_eq!(
        elements_identity::validate::username_key(&found.name),
        "jos\u{e9}"
    );
    assert!(!found.name.contains('\u{301}'), "stored in NFC: {:?}", found.name);
}

#[tokio::test]
async fn users_stored_before_name_keys_still_log_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = elements_store::open(StoreConfig::Sqlite(SqliteConfig::in_data_dir(dir.path())))
        .await
        .expect("store");
    // Users as an earlier version stored them: no name key, and names that
    // now share one (`ROOT`, `root`) or have an `@`.
    let users = elements_store::Namespace::core()
        .collection("users")
        .expect("collection");
    for (id, name) in [
        ("u1", "root"),
        ("u2", "ROOT"),
        ("u3", "Ana"),
        ("u4", "old@corp.com"),
    ] {
        store
            .insert(
                &users,
                serde_json::json!({"_id": id, "name": name, "level": "USER", "created": 1, "updated": 1}),
            )
            .await
            .expect("legacy user");
    }
    let open = || async {
        IdentityService::new(store.clone(), IdentityConfig::default())
            .await
            .expect("service")
    };
    let service = open().await;
    // Twice: the backfill is a no-op once done.
    let service2 = open().await;
    let id_of = |name: &'static str| {
        let service = &service2;
        async move {
            service
                .find_user_by_name(name)
                .await
                .expect("find")
                .map(|u| u.id)
                .unwrap_or_default()
        }
    };
    assert_eq!(id_of("root").await, "u1");
    assert_eq!(id_of("ROOT").await, "u2");
    assert_eq!(id_of("Root").await, "u1");
    assert_eq!(id_of("ANA").await, "u3");
    assert_eq!(id_of("old@corp.com").await, "u4");
    let taken = service
        .create_user(NewUser {
            name: "aNa".into(),
            ..NewUser::default()
        })
        .await;
    assert!(matches!(taken, Err(IdentityError::AlreadyExists(_))), "{taken:?}");
    // A key with `@` (the apart key of u2) can't be claimed by a new name.
    assert!(
        service
            .create_user(NewUser {
                name: "Root".into(),
                ..NewUser::default()
            })
            .await
            .is_err()
    );
}

#[tokio::test]
async fn two_superusers_demoting_each_other_leave_one() {
    let dirs = tempfile::tempdir().expect("temp dir");
    let service = service(&dirs).await;
    let superuser = |name: &str| NewUser {
        name: name.into(),
        level: Level::Superuser,
        ..NewUser::default()
    };
    let a = service.create_user(superuser("boss-a")).await.expect("a");
    let b = service.create_user(superuser("boss-b")).await.expect("b");
    let demote = || elements_identity::UserUpdate {
        level: Some(Level::User),
        ..Default::default()
    };
    for _ in 0..20 {
        let (s1, s2) = (service.clone(), service.clone());
        let (a1, b1) = (a.clone(), b.clone());
        let first = tokio::spawn(async move { s1.update_user(&a1, &b1.id, demote()).await });
        let (a2, b2) = (a.clone(), b.clone());
        let second = tokio::spawn(async move { s2.update_user(&b2, &a2.id, demote()).await });
        let results = [first.await.expect("task"), second.await.expect("task")];
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(IdentityError::PermissionDenied(m)) if m.contains("last superuser")))
            .count();
        assert_eq!(refused, 1, "{results:?}");
        let mut superusers = 0;
        for id in [&a.id, &b.id] {
            let user = service.user(id).await.expect("user");
            superusers += usize::from(user.level == Level::Superuser);
        }
        assert_eq!(superusers, 1);
        // Promote the demoted one back for the next round.
        let promote = elements_identity::UserUpdate {
            level: Some(Level::Superuser),
            ..Default::default()
        };
        for id in [&a.id, &b.id] {
            service
                .update_user(&a, id, promote.clone())
                .await
                .expect("promote");
        }
    }
}

/// With only a session, Nakama's email link and unlink would replace or
/// remove an account's password; an account that has one needs it.
#[tokio::test]
async fn email_link_and_unlink_need_the_current_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = service(&dir).await;
    let user = service
        .find_or_create_user(device("device-email-owner"))
        .await
        .expect("user")
        .user;
    let email = |id: &str, password: Option<&str>| Credential {
        id: id.into(),
        password: password.map(str::to_owned),
        ..Credential::default()
    };
    // No password yet: linking sets one.
    service
        .link(
            &user.id,
            scheme::EMAIL,
            &email("owner@example.com", Some("first-password")),
        )
        .await
        .expect("first link");
    // A thief with the session tries to swap in their address and password,
    // or to remove the email (and so the password).
    for (what, result) in [
        (
            "link with another password",
            service
                .link(
                    &user.id,
                    scheme::EMAIL,
                    &email("thief@example.com", Some("thief-password")),
                )
                .await,
        ),
        (
            "unlink without a password",
            service
                .unlink(&user.id, scheme::EMAIL, &email("owner@example.com", None))
                .await,
        ),
        (
            "unlink with a wrong password",
            service
                .unlink(
                    &user.id,
                    scheme::EMAIL,
                    &email("owner@example.com", Some("guess-guess")),
                )
                .await,
        ),
    ] {
        assert!(
            matches!(result, Err(IdentityError::InvalidArgument(_))),
            "{what}: {result:?}"
        );
    }
    let login = service
        .login_password("owner@example.com", "first-password", None)
        .await;
    assert_eq!(
        login.map(|u| u.id).ok(),
        Some(user.id.clone()),
        "the owner still logs in"
    );
    // The owner, who knows the password, moves the email; the password stays.
    service
        .link(
            &user.id,
            scheme::EMAIL,
            &email("owner2@example.com", Some("first-password")),
        )
        .await
        .expect("owner moves the email");
    let login = service
        .login_password("owner2@example.com", "first-password", None)
        .await;
    assert_eq!(login.map(|u| u.id).ok(), Some(user.id.clone()));
    service
        .unlink(
            &user.id,
            scheme::EMAIL,
            &email("owner2@example.com", Some("first-password")),
        )
        .await
        .expect("owner unlinks");
}

/// Deleting a user takes its identities, profiles, sessions and tokens with
/// it; only the user or a superuser may, and never the last superuser.
#[tokio::test]
async fn deleting_a_user_frees_its_identities_and_revokes_its_sessions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = service(&dir).await;
    let boss = service
        .create_user(NewUser {
            name: "boss".into(),
            level: Level::Superuser,
            ..NewUser::default()
        })
        .await
        .expect("superuser");
    let player = service
        .find_or_create_user(device("device-doomed-1"))
        .await
        .expect("player")
        .user;
    let other = service
        .find_or_create_user(device("device-bystander"))
        .await
        .expect("other")
        .user;
    service
        .link(&player.id, scheme::CUSTOM, &Credential::id("custom-doomed"))
        .await
        .expect("custom");
    service
        .link_email(&player.id, "doomed@example.com", Some("password1".into()))
        .await
        .expect("email");
    let chess = service
        .create_application(&boss, "chess", None)
        .await
        .expect("application");
    let (profile, _) = service
        .find_or_create_profile(&player.id, &chess)
        .await
        .expect("profile");
    let (secret, _) = service
        .create_session(&player.id, Some(&profile), None, None)
        .await
        .expect("session");
    let pair = service
        .issue_tokens(&player, Default::default())
        .await
        .expect("tokens");

    // Another (non-superuser) account may not.
    assert!(matches!(
        service.delete_user(&other, &player.id).await,
        Err(IdentityError::PermissionDenied(_))
    ));
    service.delete_user(&player, &player.id).await.expect("delete");

    assert!(matches!(
        service.user(&player.id).await,
        Err(IdentityError::NotFound(_))
    ));
    assert_eq!(
        service.identities_of(&player.id).await.expect("identities"),
        vec![]
    );
    for (kind, id) in [
        (scheme::DEVICE, "device-doomed-1"),
        (scheme::CUSTOM, "custom-doomed"),
        (scheme::EMAIL, "doomed@example.com"),
    ] {
        assert_eq!(
            service.identity(kind, id).await.expect("identity"),
            None,
            "{kind}"
        );
    }
    assert!(matches!(
        service.profile_as_system(&profile.id).await,
        Err(IdentityError::NotFound(_))
    ));
    assert!(service.resolve_session(&secret).await.is_err());
    assert!(service.verify_token(&pair.token).await.is_err());
    assert!(
        service
            .refresh_tokens(&pair.refresh_token, Default::default())
            .await
            .is_err()
    );
    // The device makes a fresh account; the email and name are free.
    let again = service
        .find_or_create_user(device("device-doomed-1"))
        .await
        .expect("fresh account");
    assert!(again.created);
    assert_ne!(again.user.id, player.id);
    service
        .link_email(&again.user.id, "doomed@example.com", None)
        .await
        .expect("the email is free again");
    // Twice: gone.
    assert!(matches!(
        service.delete_user(&player, &player.id).await,
        Err(IdentityError::NotFound(_))
    ));
    // The bystander is untouched.
    assert_eq!(service.user(&other.id).await.expect("other").id, other.id);

    // A superuser may delete another account, but not the last superuser.
    service
        .delete_user(&boss, &other.id)
        .await
        .expect("by a superuser");
    let refused = service.delete_user(&boss, &boss.id).await;
    assert!(
        matches!(&refused, Err(IdentityError::PermissionDenied(m)) if m.contains("last superuser")),
        "{refused:?}"
    );
    assert_eq!(
        service.user(&boss.id).await.expect("boss").level,
        Level::Superuser
    );
    let second = service
        .create_user(NewUser {
            name: "boss-2".into(),
            level: Level::Superuser,
            ..NewUser::default()
        })
        .await
        .expect("second superuser");
    service
        .delete_user(&boss, &boss.id)
        .await
        .expect("not the last one now");
    assert!(matches!(
        service.delete_user(&second, &second.id).await,
        Err(IdentityError::PermissionDenied(_))
    ));
}

/// Two superusers deleting themselves at once: one stays.
#[tokio::test]
async fn two_superusers_deleting_themselves_at_once_leave_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = service(&dir).await;
    for round in 0..10 {
        let superuser = |name: String| NewUser {
            name,
            level: Level::Superuser,
            ..NewUser::default()
        };
        let a = service
            .create_user(superuser(format!("self-a{round}")))
            .await
            .expect("a");
        let b = service
            .create_user(superuser(format!("self-b{round}")))
            .await
            .expect("b");
        // Only these two are superusers: the previous round's survivor goes.
        if round > 0 {
            let survivors = service
                .search_users(&a, Some("self-"), 0, 100)
                .await
                .expect("search");
            for user in survivors.items.iter().filter(|u| u.id != a.id && u.id != b.id) {
                service.delete_user(&a, &user.id).await.expect("clean up");
            }
        }
        let (s1, s2, a1, b1) = (service.clone(), service.clone(), a.clone(), b.clone());
        let first = tokio::spawn(async move { s1.delete_user(&a1, &a1.id).await });
        let second = tokio::spawn(async move { s2.delete_user(&b1, &b1.id).await });
        let results = [first.await.expect("task"), second.await.expect("task")];
        let deleted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(deleted, 1, "{results:?}");
    }
}

/// Linking a custom id replaces the account's previous one.
#[tokio::test]
async fn a_custom_id_link_replaces_the_previous_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = service(&dir).await;
    let user = service
        .find_or_create_user(device("device-custom-owner"))
        .await
        .expect("user")
        .user;
    for id in ["custom-first", "custom-second"] {
        service
            .link(&user.id, scheme::CUSTOM, &Credential::id(id))
            .await
            .expect("link");
    }
    let customs: Vec<String> = service
        .identities_of(&user.id)
        .await
        .expect("identities")
        .into_iter()
        .filter(|i| i.scheme == scheme::CUSTOM)
        .map(|i| i.id)
        .collect();
    assert_eq!(customs, vec!["custom-second".to_owned()]);
    // Concurrent links: the account ends with exactly one of them.
    let mut tasks = Vec::new();
    for n in 0..8 {
        let (service, user_id) = (service.clone(), user.id.clone());
        tasks.push(tokio::spawn(async move {
            service
                .link(
                    &user_id,
                    scheme::CUSTOM,
                    &Credential::id(format!("custom-race-{n}")),
                )
                .await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("link");
    }
    let customs = service
        .identities_of(&user.id)
        .await
        .expect("identities")
        .into_iter()
        .filter(|i| i.scheme == scheme::CUSTOM)
        .count();
    assert_eq!(customs, 1);
}

/// A store through which a user is deleted, with their identities, the
/// moment a login reads that user: what a deletion landing between a
/// login's read of the identity and its read of the user does.
struct DeletedBetweenReads {
    inner: Arc<dyn elements_store::DocumentStore>,
    armed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl elements_store::DocumentStore for DeletedBetweenReads {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn ping(&self) -> elements_store::Result<()> {
        self.inner.ping().await
    }
    async fn ensure_index(
        &self,
        c: &CollectionName,
        index: &elements_store::IndexSpec,
    ) -> elements_store::Result<()> {
        self.inner.ensure_index(c, index).await
    }
    async fn insert(&self, c: &CollectionName, document: Value) -> elements_store::Result<Value> {
        self.inner.insert(c, document).await
    }
    async fn get(&self, c: &CollectionName, id: &str) -> elements_store::Result<Option<Value>> {
        if c.physical().ends_with("users") && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            let identities = Namespace::core().collection("identities").expect("collection");
            self.inner
                .delete_many(&identities, &Filter::eq("user_id", id).expect("filter"))
                .await?;
            self.inner.delete_by_id(c, id, None).await?;
        }
        self.inner.get(c, id).await
    }
    async fn find(&self, c: &CollectionName, query: &Query) -> elements_store::Result<Vec<Value>> {
        self.inner.find(c, query).await
    }
    async fn count(&self, c: &CollectionName, filter: &Filter) -> elements_store::Result<u64> {
        self.inner.count(c, filter).await
    }
    async fn update_by_id(
        &self,
        c: &CollectionName,
        id: &str,
        update: &Update,
        expected_version: Option<i64>,
    ) -> elements_store::Result<Value> {
        self.inner.update_by_id(c, id, update, expected_version).await
    }
    async fn find_one_and_update(
        &self,
        c: &CollectionName,
        filter: &Filter,
        update: &Update,
        options: &elements_store::FindAndModify,
    ) -> elements_store::Result<Option<Value>> {
        self.inner.find_one_and_update(c, filter, update, options).await
    }
    async fn find_one_and_delete(
        &self,
        c: &CollectionName,
        filter: &Filter,
        sort: &[SortKey],
    ) -> elements_store::Result<Option<Value>> {
        self.inner.find_one_and_delete(c, filter, sort).await
    }
    async fn delete_by_id(
        &self,
        c: &CollectionName,
        id: &str,
        expected_version: Option<i64>,
    ) -> elements_store::Result<bool> {
        self.inner.delete_by_id(c, id, expected_version).await
    }
    async fn delete_many(&self, c: &CollectionName, filter: &Filter) -> elements_store::Result<u64> {
        self.inner.delete_many(c, filter).await
    }
    async fn transaction(
        &self,
        ops: Vec<elements_store::WriteOp>,
    ) -> elements_store::Result<Vec<elements_store::WriteOutcome>> {
        self.inner.transaction(ops).await
    }
    async fn sweep_expired(&self) -> elements_store::Result<u64> {
        self.inner.sweep_expired().await
    }
    async fn drop_collection(&self, c: &CollectionName) -> elements_store::Result<()> {
        self.inner.drop_collection(c).await
    }
}

/// An account deleted between a login's read of its identity and its read
/// of the user: the login starts over and makes a new account (or, with
/// `create` off, finds none), never an internal error.
#[tokio::test]
async fn a_login_racing_the_accounts_deletion_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let inner = elements_store::open(StoreConfig::Sqlite(SqliteConfig::in_data_dir(dir.path())))
        .await
        .expect("store");
    let store = Arc::new(DeletedBetweenReads {
        inner,
        armed: false.into(),
    });
    let service = IdentityService::new(store.clone(), IdentityConfig::default())
        .await
        .expect("service");
    let first = service
        .find_or_create_user(device("device-deleted-race"))
        .await
        .unwrap();
    assert!(first.created);

    store.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let again = service
        .find_or_create_user(device("device-deleted-race"))
        .await
        .unwrap();
    assert!(
        again.created,
        "the deleted account was not found, a new one was made"
    );
    assert_ne!(again.user.id, first.user.id);

    store.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut no_create = device("device-deleted-race");
    no_create.create = false;
    match service.find_or_create_user(no_create).await {
        Err(IdentityError::NotFound(_)) => {}
        other => panic!("expected the account not to be found, got {other:?}"),
    }
}
