//! Better Auth's admin plugin at sign-in: a banned user gets no session (`SessionError::Banned`,
//! Better Auth's `403 BANNED_USER`), a ban whose `banExpires` has passed is lifted, and the
//! examples answer as Better Auth does. And the two-factor plugin: a user with
//! `twoFactorEnabled` gets no session until the caller says the second factor was verified.
#![cfg(all(feature = "sqlite", feature = "axum"))]

mod common;

use serde_json::{json, Value};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tower_auth_session::{
    ManualClock, MemoryStore, SessionConfig, SessionError, SessionManager, SessionStore, SignIn,
    SqliteStore, User,
};

const NOW: OffsetDateTime = datetime!(2026-11-28 12:00:00.250 UTC);

fn manager(store: impl SessionStore) -> SessionManager {
    let config = SessionConfig::builder()
        .secret(common::SECRET)
        .clock(ManualClock::new(NOW))
        .build()
        .unwrap();
    SessionManager::new(config, store)
}

fn banned(reason: Option<&str>, expires: Option<OffsetDateTime>) -> User {
    let mut user = User::new("banned@example.com", "B", NOW - Duration::days(3));
    user.extra.insert("role".into(), "user".into());
    user.extra.insert("banned".into(), true.into());
    user.extra.insert("banReason".into(), json!(reason));
    user.extra.insert(
        "banExpires".into(),
        json!(expires.map(tower_auth_session::test_support::to_iso)),
    );
    user
}

#[tokio::test]
async fn a_banned_user_gets_no_session() {
    for expires in [None, Some(NOW + Duration::hours(1)), Some(NOW)] {
        let store = MemoryStore::new();
        let user = banned(Some("spam"), expires);
        store.insert_user(user.clone());
        let err = manager(store.clone())
            .sign_in(&user, SignIn::new())
            .await
            .unwrap_err();
        let SessionError::Banned(ban) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(ban.reason.as_deref(), Some("spam"));
        assert_eq!(
            (err.code(), err.status().as_u16()),
            (Some("BANNED_USER"), 403)
        );
        assert!(err.to_string().starts_with("the user is banned"), "{err}");
        assert_eq!(store.session_count(), 0, "no session row for {expires:?}");
    }
}

#[tokio::test]
async fn an_ended_ban_is_lifted_at_sign_in() {
    let store = MemoryStore::new();
    let user = banned(Some("spam"), Some(NOW - Duration::milliseconds(1)));
    store.insert_user(user.clone());
    let signed = manager(store.clone())
        .sign_in(&user, SignIn::new())
        .await
        .unwrap();
    assert_eq!(signed.session.user_id, user.id);
    let row = store.find_user(&user.id).await.unwrap().unwrap();
    assert_eq!(row.extra["banned"], false);
    assert_eq!(row.extra["banReason"], Value::Null);
    assert_eq!(row.extra["banExpires"], Value::Null);
    assert_eq!(row.updated_at, NOW);
    assert!(row.ban().is_none());
}

/// The store's row decides, not the (possibly stale) user the app passes in: a user banned
/// since the app loaded it is refused, and one unbanned since is admitted.
#[tokio::test]
async fn the_stored_row_decides() {
    let store = MemoryStore::new();
    let stale = User::new("x@example.com", "X", NOW);
    let mut now_banned = stale.clone();
    now_banned.extra.insert("banned".into(), true.into());
    store.insert_user(now_banned.clone());
    assert!(matches!(
        manager(store.clone()).sign_in(&stale, SignIn::new()).await,
        Err(SessionError::Banned(_))
    ));
    let store = MemoryStore::new();
    store.insert_user(stale.clone());
    let _signed = manager(store)
        .sign_in(&now_banned, SignIn::new())
        .await
        .unwrap();
}

/// A store without users (here a wrapper that keeps none, as Redis alone) checks the user as
/// given.
#[tokio::test]
async fn without_users_in_the_store_the_given_user_is_checked() {
    let store = common::Counting::new(MemoryStore::new());
    let user = banned(None, None);
    let err = manager(store.clone())
        .sign_in(&user, SignIn::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SessionError::Banned(ref b) if b.reason.is_none() && b.expires.is_none())
    );
    assert_eq!(store.writes(), 0);
}

/// Better Auth 1.7.25's SQLite DDL with the admin plugin's columns.
const SQLITE_DDL: [&str; 2] = [
    r#"create table "user" ("id" text not null primary key, "name" text not null, "email" text not null unique, "emailVerified" integer not null, "image" text, "createdAt" date not null, "updatedAt" date not null, "role" text, "banned" integer, "banReason" text, "banExpires" date)"#,
    r#"create table "session" ("id" text not null primary key, "expiresAt" date not null, "token" text not null unique, "createdAt" date not null, "updatedAt" date not null, "ipAddress" text, "userAgent" text, "userId" text not null references "user" ("id") on delete cascade, "impersonatedBy" text, "activeOrganizationId" text)"#,
];

async fn sqlite_with_admin_columns() -> (tempfile::TempDir, String, sqlx::SqlitePool) {
    sqlite_with(&SQLITE_DDL).await
}

/// A new SQLite file where `statements` ran: its directory, URL and a pool of the test's own.
async fn sqlite_with(statements: &[&str]) -> (tempfile::TempDir, String, sqlx::SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
        .await
        .unwrap();
    for statement in statements {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    (dir, url, pool)
}

#[tokio::test]
async fn sqlite_rows_as_better_auth_writes_them() {
    let (_dir, url, pool) = sqlite_with_admin_columns().await;
    // As Better Auth's ban-user writes them: integer booleans, ISO text dates.
    sqlx::query(r#"insert into "user" values ('U1', 'Bob', 'bob@example.com', 0, null, '2026-11-20T00:00:00.000Z', '2026-11-28T11:00:00.000Z', 'user', 1, 'spam', '2026-11-28T13:00:00.000Z'), ('U2', 'Eve', 'eve@example.com', 0, null, '2026-11-20T00:00:00.000Z', '2026-11-28T11:00:00.000Z', 'user', 1, 'spam', '2026-11-28T11:59:59.999Z')"#)
        .execute(&pool)
        .await
        .unwrap();
    let store = SqliteStore::connect(&url).await.unwrap();
    let m = manager(store.clone());
    let bob = store.find_user("U1").await.unwrap().unwrap();
    assert!(bob.is_banned(NOW));
    assert!(matches!(
        m.sign_in(&bob, SignIn::new()).await,
        Err(SessionError::Banned(_))
    ));
    let n: i64 = sqlx::query_scalar(r#"select count(*) from "session""#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "no session row for a banned user");

    let eve = store.find_user("U2").await.unwrap().unwrap();
    let _signed = m.sign_in(&eve, SignIn::new()).await.unwrap();
    let row: (i64, Option<String>, Option<String>, String) = sqlx::query_as(
        r#"select "banned", "banReason", "banExpires", "updatedAt" from "user" where "id" = 'U2'"#,
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        (0, None, None, "2026-11-28T12:00:00.250Z".to_owned()),
        "lifted as Better Auth lifts it"
    );
}

/// The examples' `POST /sign-in` answers a banned user with Better Auth's 403 and writes no
/// session row.
#[tokio::test]
async fn the_example_answers_403_banned_user() {
    let (_dir, url, pool) = sqlite_with_admin_columns().await;
    sqlx::query(r#"insert into "user" values ('U1', 'Bob', 'bob@example.com', 0, null, '2026-11-20T00:00:00.000Z', '2026-11-20T00:00:00.000Z', 'user', 1, 'spam', null)"#)
        .execute(&pool)
        .await
        .unwrap();
    let app = common::process::quickstart(&[
        ("BETTER_AUTH_SECRET", common::SECRET),
        ("DATABASE_URL", &url),
    ]);
    let r = common::process::http(
        "POST",
        &app.url("/sign-in"),
        &[],
        Some(r#"{"email":"bob@example.com"}"#),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["code"], "BANNED_USER");
    assert_eq!(
        r.json()["message"],
        "You have been banned from this application. Please contact support if you believe this is an error."
    );
    assert!(r.set_cookies().is_empty());
    let n: i64 = sqlx::query_scalar(r#"select count(*) from "session""#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    app.stop();
}

/// A user's own session list leaves out the sessions an admin opened by impersonating them, as
/// Better Auth's `list-sessions` does (so the user cannot end the admin's either); the manager's
/// list has them all.
#[tokio::test]
async fn a_users_list_leaves_out_impersonation_sessions() {
    use axum::routing::get;
    use tower_auth_session::extract::Sessions;
    let (_dir, url, pool) = sqlite_with_admin_columns().await;
    let store = SqliteStore::connect(&url).await.unwrap();
    let user = store
        .insert_user(&User::new("imp@example.com", "I", NOW))
        .await
        .unwrap();
    let config = SessionConfig::builder()
        .secret(common::SECRET)
        .clock(ManualClock::new(NOW))
        .build()
        .unwrap();
    let layer = tower_auth_session::SessionLayer::new(config, store);
    let own = layer.manager().sign_in(&user, SignIn::new()).await.unwrap();
    let admins = layer.manager().sign_in(&user, SignIn::new()).await.unwrap();
    sqlx::query(r#"update "session" set "impersonatedBy" = 'admin-1' where "id" = ?"#)
        .bind(&admins.session.id)
        .execute(&pool)
        .await
        .unwrap();
    let app = axum::Router::new()
        .route(
            "/sessions",
            get(|s: Sessions| async move {
                let ids: Vec<String> = s.list().await.unwrap().into_iter().map(|s| s.id).collect();
                ids.join(",")
            }),
        )
        .layer(layer.clone());
    let cookie = own.cookies.iter().next().unwrap().to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap();
    let r = common::send(app, common::get_req("/sessions", Some(cookie))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, own.session.id);
    assert_eq!(layer.manager().list(&user.id).await.unwrap().len(), 2);
}

// ---------------------------------------------------------------- two-factor

/// A user with Better Auth's two-factor plugin on (`twoFactorEnabled`) gets no session from a
/// sign-in that does not say the second factor was verified, as Better Auth's password sign-in
/// gives none before `/two-factor/verify-*`; with `second_factor_verified` the sign-in goes
/// on. The stored row decides, as for bans.
#[tokio::test]
async fn two_factor_users_get_no_session_until_the_second_factor_is_verified() {
    let store = MemoryStore::new();
    let mut user = User::new("totp@example.com", "T", NOW - Duration::days(3));
    user.extra.insert("twoFactorEnabled".into(), true.into());
    store.insert_user(user.clone());
    let m = manager(store.clone());
    // The given user says nothing of two-factor: the stored row still refuses it.
    let mut stale = user.clone();
    stale.extra.remove("twoFactorEnabled");
    for given in [&user, &stale] {
        let err = m.sign_in(given, SignIn::new()).await.unwrap_err();
        assert!(matches!(err, SessionError::SecondFactorRequired), "{err:?}");
        assert_eq!(err.status().as_u16(), 403);
        assert!(err.to_string().contains("second_factor_verified"), "{err}");
        assert_eq!(store.session_count(), 0);
    }
    let _signed = m
        .sign_in(&user, SignIn::new().second_factor_verified())
        .await
        .unwrap();
    assert_eq!(store.session_count(), 1);

    // A ban comes first, as Better Auth's session hook runs before the two-factor gate.
    let mut both = banned(None, None);
    both.extra.insert("twoFactorEnabled".into(), true.into());
    let err = manager(MemoryStore::new())
        .sign_in(&both, SignIn::new())
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::Banned(_)), "{err:?}");
}

/// The two-factor plugin's column as Better Auth's SQLite migration makes it and its adapter
/// writes it (an integer boolean): 1 is refused, 0 and null sign in.
#[tokio::test]
async fn sqlite_two_factor_column_as_better_auth_writes_it() {
    let (_dir, url, pool) = sqlite_with_admin_columns().await;
    sqlx::query(r#"alter table "user" add column "twoFactorEnabled" integer"#)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(r#"insert into "user" ("id", "name", "email", "emailVerified", "createdAt", "updatedAt", "twoFactorEnabled") values ('T1', 'On', 'on@example.com', 0, '2026-11-20T00:00:00.000Z', '2026-11-20T00:00:00.000Z', 1), ('T0', 'Off', 'off@example.com', 0, '2026-11-20T00:00:00.000Z', '2026-11-20T00:00:00.000Z', 0), ('TN', 'Never', 'never@example.com', 0, '2026-11-20T00:00:00.000Z', '2026-11-20T00:00:00.000Z', null)"#)
        .execute(&pool)
        .await
        .unwrap();
    let store = SqliteStore::connect(&url).await.unwrap();
    let m = manager(store.clone());
    let on = store.find_user("T1").await.unwrap().unwrap();
    assert!(on.two_factor_enabled());
    assert!(matches!(
        m.sign_in(&on, SignIn::new()).await,
        Err(SessionError::SecondFactorRequired)
    ));
    let sessions = |id: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(r#"select count(*) from "session" where "userId" = ?"#)
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(sessions("T1").await, 0);
    for id in ["T0", "TN"] {
        let user = store.find_user(id).await.unwrap().unwrap();
        assert!(!user.two_factor_enabled());
        let _signed = m.sign_in(&user, SignIn::new()).await.unwrap();
        assert_eq!(sessions(id).await, 1, "{id}");
    }
}

/// Through the `Sessions` extractor: `sign_in` refuses a two-factor user (no cookie), and the
/// request's own options with `second_factor_verified` sign them in.
#[tokio::test]
async fn sessions_sign_in_a_two_factor_user_only_once_verified() {
    use axum::routing::post;
    use tower_auth_session::extract::Sessions;
    let store = MemoryStore::new();
    let mut user = User::new("totp@example.com", "T", NOW);
    user.extra.insert("twoFactorEnabled".into(), true.into());
    store.insert_user(user.clone());
    let config = SessionConfig::builder()
        .secret(common::SECRET)
        .clock(ManualClock::new(NOW))
        .build()
        .unwrap();
    let layer = tower_auth_session::SessionLayer::new(config, store.clone());
    let (u1, u2) = (user.clone(), user.clone());
    let app = axum::Router::new()
        .route(
            "/password",
            post(move |s: Sessions| async move {
                use axum::response::IntoResponse as _;
                match s.sign_in(&u1).await {
                    Ok(signed) => (signed, "in").into_response(),
                    Err(e) => e.status().into_response(),
                }
            }),
        )
        .route(
            "/verified",
            post(move |s: Sessions| async move {
                let options = s.sign_in_options().second_factor_verified();
                (s.sign_in_using(&u2, options).await.unwrap(), "in")
            }),
        )
        .layer(layer);
    let post = |path: &str| {
        http::Request::post(path)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let r = common::send(app.clone(), post("/password")).await;
    assert_eq!(r.status, 403);
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    assert_eq!(store.session_count(), 0);
    let r = common::send(app, post("/verified")).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookie("better-auth.session_token").is_some());
    assert_eq!(store.session_count(), 1);
}

/// A store without user rows keeps the user inside each session (Redis alone; here a memory
/// store given no user row): the session of a sign-in that lifted an ended ban carries the user
/// as the lift leaves it, not `banned: true`, which Better Auth code reading
/// `session.user.banned` would take for a ban.
#[tokio::test]
async fn a_lifted_ban_is_not_written_into_the_new_session() {
    let store = MemoryStore::new();
    let user = banned(Some("spam"), Some(NOW - Duration::milliseconds(1)));
    let signed = manager(store.clone())
        .sign_in(&user, SignIn::new())
        .await
        .unwrap();
    let found = store
        .find(&signed.session.storage_key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found.user.ban().map(|b| b.reason),
        None,
        "{:?}",
        found.user.extra
    );
    assert_eq!(found.user.extra["banned"], false);
    assert_eq!(found.user.extra["banReason"], Value::Null);
    assert_eq!(found.user.updated_at, NOW);
}

// ---------------------------------------------------------------- bans on the server stores

/// Bans on PostgreSQL and MySQL/MariaDB with the admin plugin's columns as Better Auth's
/// migration types them there (`boolean` and `timestamptz`; `tinyint(1)` and `datetime(3)`):
/// a ban still running refuses the sign-in and writes no session; an ended one is lifted as
/// Better Auth lifts it (`banned` false, reason and end cleared, `updatedAt` now).
///
/// `store` holds `B1`, banned until after `NOW`, and `B2`, whose ban ended just before it;
/// `lifted` reads `B2`'s `banned`, `banReason` and whether `banExpires` is null.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn bans_on_a_server_store<S: SessionStore + Clone>(
    store: S,
    lifted: impl std::future::Future<Output = (bool, Option<String>, bool)>,
) {
    let m = manager(store.clone());
    let running = store.find_user("B1").await.unwrap().unwrap();
    assert!(running.is_banned(NOW), "{:?}", running.extra);
    assert!(matches!(
        m.sign_in(&running, SignIn::new()).await,
        Err(SessionError::Banned(_))
    ));
    assert!(store
        .list_user_sessions("B1", NOW)
        .await
        .unwrap()
        .is_empty());
    let ended = store.find_user("B2").await.unwrap().unwrap();
    assert!(ended.ban().is_some() && !ended.is_banned(NOW));
    let signed = m.sign_in(&ended, SignIn::new()).await.unwrap();
    assert_eq!(signed.session.user_id, "B2");
    let (banned, reason, expires_cleared) = lifted.await;
    assert_eq!((banned, reason, expires_cleared), (false, None, true));
    let user = store.find_user("B2").await.unwrap().unwrap();
    assert_eq!(user.ban().map(|b| b.reason), None);
    assert_eq!(user.updated_at, NOW);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn bans_on_postgres() {
    let Some(url) = common::fresh_pg_database("bans_on_postgres").await else {
        return;
    };
    let store = tower_auth_session::PostgresStore::builder(url.as_str())
        .create_schema(true)
        .build()
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(r#"alter table "user" add column "role" text, add column "banned" boolean, add column "banReason" text, add column "banExpires" timestamptz"#)
        .execute(&pool)
        .await
        .unwrap();
    // Opened again: a store reads the extra columns there are when it opens.
    drop(store);
    let store = tower_auth_session::PostgresStore::connect(&url)
        .await
        .unwrap();
    sqlx::raw_sql(r#"insert into "user" ("id", "name", "email", "emailVerified", "createdAt", "updatedAt", "role", "banned", "banReason", "banExpires") values ('B1', 'Bob', 'bob@example.com', false, '2026-11-20T00:00:00Z', '2026-11-20T00:00:00Z', 'user', true, 'spam', '2026-11-28T13:00:00Z'), ('B2', 'Eve', 'eve@example.com', false, '2026-11-20T00:00:00Z', '2026-11-20T00:00:00Z', 'user', true, 'spam', '2026-11-28T11:59:59.999Z')"#)
        .execute(&pool)
        .await
        .unwrap();
    let lifted = async {
        sqlx::query_as::<_, (bool, Option<String>, bool)>(
            r#"select "banned", "banReason", "banExpires" is null from "user" where "id" = 'B2'"#,
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    bans_on_a_server_store(store, lifted).await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn bans_on_mysql() {
    let Some(url) = common::fresh_mysql_database("bans_on_mysql").await else {
        return;
    };
    let store = tower_auth_session::MySqlStore::builder(url.as_str())
        .create_schema(true)
        .build()
        .await
        .unwrap();
    let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
    sqlx::raw_sql("alter table `user` add column `role` text, add column `banned` tinyint(1), add column `banReason` text, add column `banExpires` datetime(3)")
        .execute(&pool)
        .await
        .unwrap();
    drop(store);
    let store = tower_auth_session::MySqlStore::connect(&url).await.unwrap();
    sqlx::raw_sql("insert into `user` (`id`, `name`, `email`, `emailVerified`, `createdAt`, `updatedAt`, `role`, `banned`, `banReason`, `banExpires`) values ('B1', 'Bob', 'bob@example.com', 0, '2026-11-20 00:00:00.000', '2026-11-20 00:00:00.000', 'user', 1, 'spam', '2026-11-28 13:00:00.000'), ('B2', 'Eve', 'eve@example.com', 0, '2026-11-20 00:00:00.000', '2026-11-20 00:00:00.000', 'user', 1, 'spam', '2026-11-28 11:59:59.999')")
        .execute(&pool)
        .await
        .unwrap();
    let lifted = async {
        let (banned, reason, cleared): (i8, Option<String>, i64) = sqlx::query_as(
            "select `banned`, `banReason`, `banExpires` is null from `user` where `id` = 'B2'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (banned != 0, reason, cleared == 1)
    };
    bans_on_a_server_store(store, lifted).await;
}

/// The admin plugin's fields under columns its `schema` option renamed
/// (`fields: { banned: "is_banned", banReason: "ban_note" }`), and an impersonation column
/// renamed on the session table: with `user_field_column` the ban in `is_banned` is seen
/// (without it the column was an unknown extra and the banned user signed in), the fields read
/// under Better Auth's names, and lifting an ended ban writes the renamed columns.
#[tokio::test]
async fn renamed_plugin_columns_read_as_better_auth_names_them() {
    use tower_auth_session::store::SqlSchema;
    let (_dir, url, pool) = sqlite_with(&[
        r#"create table "user" ("id" text not null primary key, "name" text not null, "email" text not null unique, "emailVerified" integer not null, "image" text, "createdAt" date not null, "updatedAt" date not null, "is_banned" integer, "ban_note" text, "banExpires" date, "banned" text)"#,
        r#"create table "session" ("id" text not null primary key, "expiresAt" date not null, "token" text not null unique, "createdAt" date not null, "updatedAt" date not null, "ipAddress" text, "userAgent" text, "userId" text not null references "user" ("id") on delete cascade, "impersonator" text)"#,
        // U1's ban runs, U2's ended; "banned" is a stale column of another meaning.
        r#"insert into "user" values ('U1', 'Bob', 'bob@example.com', 0, null, '2026-11-20T00:00:00.000Z', '2026-11-28T11:00:00.000Z', 1, 'spam', '2026-11-28T13:00:00.000Z', 'no'), ('U2', 'Eve', 'eve@example.com', 0, null, '2026-11-20T00:00:00.000Z', '2026-11-28T11:00:00.000Z', 1, 'spam', '2026-11-28T11:59:59.999Z', 'no')"#,
    ])
    .await;
    let schema = SqlSchema::better_auth()
        .user_field_column("banned", "is_banned")
        .user_field_column("banReason", "ban_note")
        .session_field_column("impersonatedBy", "impersonator");
    let store = SqliteStore::builder(&url)
        .schema(schema.clone())
        .build()
        .await
        .unwrap();
    let m = manager(store.clone());

    let bob = store.find_user("U1").await.unwrap().unwrap();
    assert_eq!(bob.extra["banned"], true, "{:?}", bob.extra);
    assert_eq!(bob.extra["banReason"], "spam");
    assert!(!bob.extra.contains_key("is_banned") && !bob.extra.contains_key("ban_note"));
    assert!(bob.is_banned(NOW));
    let err = m.sign_in(&bob, SignIn::new()).await.unwrap_err();
    let SessionError::Banned(ban) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(ban.reason.as_deref(), Some("spam"));

    let eve = store.find_user("U2").await.unwrap().unwrap();
    let signed = m.sign_in(&eve, SignIn::new()).await.unwrap();
    let row: (i64, Option<String>, Option<String>, String) = sqlx::query_as(
        r#"select "is_banned", "ban_note", "banExpires", "banned" from "user" where "id" = 'U2'"#,
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        (0, None, None, "no".to_owned()),
        "lifted in the renamed columns"
    );

    // The session table's renamed column reads as `impersonatedBy`, in a lookup and in a list
    // (whose `Sessions::list` leaves impersonation sessions out).
    sqlx::query(r#"update "session" set "impersonator" = 'admin-1' where "id" = ?"#)
        .bind(&signed.session.id)
        .execute(&pool)
        .await
        .unwrap();
    let found = store
        .find(&signed.session.storage_key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.session.extra["impersonatedBy"], "admin-1");
    assert!(found.session.is_impersonation());
    let listed = m.list("U2").await.unwrap();
    assert!(
        listed.len() == 1 && listed[0].is_impersonation(),
        "{listed:?}"
    );

    // A renamed column the table lacks is a start-up error naming it and the field.
    let err = SqliteStore::builder(&url)
        .schema(schema.user_field_column("twoFactorEnabled", "has_2fa"))
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(r#"column "has_2fa""#) && err.contains(r#"field "twoFactorEnabled""#),
        "{err}"
    );
    // Renames that would read one column and write another are refused before connecting.
    for (schema, says) in [
        (
            SqlSchema::better_auth()
                .user_field_column("banned", "is_banned")
                .user_field_column("banned", "ban_note"),
            "the field is given two columns",
        ),
        (
            SqlSchema::better_auth()
                .user_field_column("banned", "is_banned")
                .user_field_column("isBanned", "is_banned"),
            "the column is given two fields",
        ),
        (
            SqlSchema::better_auth().user_field_column("name", "ban_note"),
            "core fields",
        ),
        (
            SqlSchema::better_auth().session_field_column("impersonatedBy", "token"),
            "core columns",
        ),
    ] {
        let err = SqliteStore::builder(&url)
            .schema(schema)
            .build()
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{err}");
    }
}
