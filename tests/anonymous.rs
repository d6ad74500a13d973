//! Better Auth's anonymous plugin: a guest (`isAnonymous`) who signs in with a real account
//! through the `Sessions` extractor is deleted afterwards, with their sessions (and, on SQL,
//! their accounts through the foreign key), as the plugin's after-hook deletes them; the
//! plugin's exceptions hold (the same user, an anonymous new user, `disableDeleteAnonymousUser`,
//! no guest session), and a cache in front stops serving the guest's session at once.
#![cfg(all(feature = "sqlite", feature = "axum", feature = "cache"))]

mod common;

use axum::routing::get;
use tower_auth_session::extract::Sessions;
use tower_auth_session::store::CachedStore;
use tower_auth_session::{
    MemoryStore, SessionConfig, SessionLayer, SessionStore, SignIn, SqliteStore, User,
};

fn guest() -> User {
    let mut user = User::new("temp@anon.example.com", "Anonymous", common::now());
    user.extra.insert("isAnonymous".into(), true.into());
    user
}

/// The config with `delete_anonymous_users(true)`, or the default (guests kept).
fn config(delete: bool) -> SessionConfig {
    let builder = SessionConfig::builder().secret(common::SECRET);
    let builder = if delete {
        builder.delete_anonymous_users(true)
    } else {
        builder
    };
    builder.build().unwrap()
}

/// An app whose `GET /link` signs `user` in through the `Sessions` extractor and answers the
/// new session's cookie.
fn app<St: SessionStore + Clone>(layer: SessionLayer<St>, user: User) -> axum::Router {
    axum::Router::new()
        .route(
            "/link",
            get(move |sessions: Sessions| {
                let user = user.clone();
                async move { (sessions.sign_in(&user).await.unwrap(), "in") }
            }),
        )
        .layer(layer)
}

/// Signs `guest` in, then sends `GET /link` (signing `user` in) with the guest's cookie;
/// returns whether the guest's row and session are still in `store`.
async fn link<St: SessionStore + Clone>(
    store: &St,
    delete: bool,
    guest: &User,
    user: &User,
) -> (bool, bool) {
    let layer = SessionLayer::new(config(delete), store.clone());
    let signed = layer.manager().sign_in(guest, SignIn::new()).await.unwrap();
    let reply = common::send(
        app(layer, user.clone()),
        common::get_req("/link", Some(&common::session_cookie(&signed))),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(reply.set_cookie("better-auth.session_token").is_some());
    let row = store.find_user(&guest.id).await.unwrap().is_some();
    let session = store
        .find(&signed.session.storage_key())
        .await
        .unwrap()
        .is_some();
    (row, session)
}

#[tokio::test]
async fn a_guest_who_signs_in_with_an_account_is_deleted() {
    let store = MemoryStore::new();
    let (guest, real) = (
        guest(),
        User::new("real@example.com", "Real", common::now()),
    );
    store.insert_user(guest.clone());
    store.insert_user(real.clone());
    assert_eq!(link(&store, true, &guest, &real).await, (false, false));
    assert_eq!(
        store
            .list_user_sessions(&real.id, common::now())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn the_plugins_exceptions_keep_the_guest() {
    let real = User::new("real@example.com", "Real", common::now());
    let mut other_guest = guest();
    other_guest.id = "another-guest".into();
    other_guest.email = "other@anon.example.com".into();
    // Off by default (`disableDeleteAnonymousUser`); the guest signing in again; a new
    // anonymous user.
    for (delete, to) in [(false, None), (true, Some(0)), (true, Some(1))] {
        let store = MemoryStore::new();
        let guest = guest();
        let user = match to {
            None => real.clone(),
            Some(0) => guest.clone(),
            _ => other_guest.clone(),
        };
        store.insert_user(guest.clone());
        store.insert_user(user.clone());
        assert_eq!(
            link(&store, delete, &guest, &user).await,
            (true, true),
            "delete {delete}, to {to:?}"
        );
    }
    // A real user is never deleted by signing in as another.
    let store = MemoryStore::new();
    let first = User::new("first@example.com", "First", common::now());
    store.insert_user(first.clone());
    store.insert_user(real.clone());
    assert_eq!(link(&store, true, &first, &real).await, (true, true));
}

/// Both rows are read again before anything is deleted: a guest whose row is no longer
/// anonymous (the request's copy was older) is kept, and the new user is judged by its row.
#[tokio::test]
async fn the_stored_rows_decide() {
    use tower_auth_session::{Authenticated, GuestRemoval, SessionManager};
    let store = MemoryStore::new();
    let manager = SessionManager::new(config(true), store.clone());
    let stale_guest = guest();
    let mut upgraded = stale_guest.clone();
    upgraded.extra.insert("isAnonymous".into(), false.into());
    store.insert_user(upgraded);
    let real = User::new("real@example.com", "Real", common::now());
    store.insert_user(real.clone());
    let signed = manager.sign_in(&stale_guest, SignIn::new()).await.unwrap();
    let previous = Authenticated::new(signed.session.clone(), stale_guest.clone());
    assert_eq!(
        manager
            .delete_linked_anonymous(&previous, &real)
            .await
            .unwrap(),
        GuestRemoval::Kept
    );
    assert!(store.find_user(&stale_guest.id).await.unwrap().is_some());

    // The app's copy of the new user lacks the plugin column; its row is a guest's.
    let guest_a = guest();
    let mut guest_b = guest();
    guest_b.id = "guest-b".into();
    guest_b.email = "b@anon.example.com".into();
    store.insert_user(guest_a.clone());
    store.insert_user(guest_b.clone());
    let mut copy_of_b = guest_b.clone();
    copy_of_b.extra.clear();
    let signed = manager.sign_in(&guest_a, SignIn::new()).await.unwrap();
    let previous = Authenticated::new(signed.session.clone(), guest_a.clone());
    assert_eq!(
        manager
            .delete_linked_anonymous(&previous, &copy_of_b)
            .await
            .unwrap(),
        GuestRemoval::Kept
    );
    // And with a real user: the guest and their sessions go.
    assert_eq!(
        manager
            .delete_linked_anonymous(&previous, &real)
            .await
            .unwrap(),
        GuestRemoval::UserAndSessions
    );
    assert!(store.find_user(&guest_a.id).await.unwrap().is_none());
    assert!(store
        .find(&signed.session.storage_key())
        .await
        .unwrap()
        .is_none());
}

/// On SQLite with the anonymous plugin's column and Better Auth's `account` table (its
/// foreign key cascading, as Better Auth's migration makes it), behind a cache: the guest's
/// row, sessions and accounts are gone, and the cache no longer serves the guest's session.
#[tokio::test]
async fn on_sqlite_behind_a_cache_the_guest_and_its_rows_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let sqlite = SqliteStore::connect(&url).await.unwrap();
    let pool = sqlite.pool().clone();
    for statement in [
        r#"alter table "user" add column "isAnonymous" integer"#,
        r#"create table "account" ("id" text not null primary key, "accountId" text not null, "providerId" text not null, "userId" text not null references "user" ("id") on delete cascade, "createdAt" date not null, "updatedAt" date not null)"#,
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    // The store reads the new column from a fresh connection.
    let sqlite = SqliteStore::connect(&url).await.unwrap();
    let guest = sqlite.insert_user(&guest()).await.unwrap();
    sqlx::query(r#"update "user" set "isAnonymous" = 1 where "id" = ?"#)
        .bind(&guest.id)
        .execute(&pool)
        .await
        .unwrap();
    let real = sqlite
        .insert_user(&User::new("real@example.com", "Real", common::now()))
        .await
        .unwrap();
    for (id, user) in [("A1", &guest.id), ("A2", &real.id)] {
        sqlx::query(r#"insert into "account" values (?, ?, 'anonymous', ?, '2026-11-28T00:00:00.000Z', '2026-11-28T00:00:00.000Z')"#)
            .bind(id)
            .bind(user)
            .bind(user)
            .execute(&pool)
            .await
            .unwrap();
    }
    let guest = sqlite.find_user(&guest.id).await.unwrap().unwrap();
    assert!(guest.is_anonymous(), "{:?}", guest.extra);
    let cached = CachedStore::builder(sqlite.clone())
        .ttl(std::time::Duration::from_secs(600))
        .build();
    assert_eq!(link(&cached, true, &guest, &real).await, (false, false));
    let accounts: Vec<String> = sqlx::query_scalar(r#"select "id" from "account""#)
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(accounts, ["A2"]);
    let sessions: i64 = sqlx::query_scalar(r#"select count(*) from "session" where "userId" = ?"#)
        .bind(&guest.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
}
