//! `SqliteStore`: the conformance suite, Better Auth's row format, schema checks, and restart
//! survival.

mod common;
mod conformance;

use sqlx::Row;
use time::macros::datetime;
use tower_auth_session::{
    store::SchemaMode, SchemaError, SessionConfig, SessionLayer, SessionStore, SignIn, SqliteStore,
    StorageKey, StoreError, User,
};

async fn memory_db() -> Option<SqliteStore> {
    Some(SqliteStore::connect("sqlite::memory:").await.unwrap())
}

conformance_suite!(memory_db());

fn temp_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    (dir, url)
}

#[tokio::test]
async fn writes_rows_exactly_as_better_auth_does() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    let user = User::new(
        "Alice@Example.com",
        "Alice",
        datetime!(2026-11-29 13:26:18.309_999 UTC),
    );
    store.insert_user(&user).await.unwrap();
    let config = SessionConfig::builder()
        .secret(common::SECRET)
        .clock(tower_auth_session::ManualClock::new(
            datetime!(2026-11-29 13:26:18.309_999 UTC),
        ))
        .build()
        .unwrap();
    let manager = SessionLayer::new(config, store.clone()).manager();
    let signed = manager.sign_in(&user, SignIn::new()).await.unwrap();

    let row = sqlx::query(
        r#"select "expiresAt", typeof("expiresAt"), "createdAt", "ipAddress", "userAgent", "id" <> "token" from "session""#,
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>(0), "2026-12-06T13:26:18.309Z");
    assert_eq!(row.get::<String, _>(1), "text");
    assert_eq!(row.get::<String, _>(2), "2026-11-29T13:26:18.309Z");
    assert_eq!(
        row.get::<String, _>(3),
        "",
        "unknown IP is written as an empty string"
    );
    assert_eq!(row.get::<String, _>(4), "");
    assert!(row.get::<bool, _>(5));
    let u = sqlx::query(
        r#"select "email", "emailVerified", typeof("emailVerified"), "createdAt" from "user""#,
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(u.get::<String, _>(0), "alice@example.com");
    assert_eq!(u.get::<i64, _>(1), 0);
    assert_eq!(u.get::<String, _>(2), "integer");
    assert_eq!(u.get::<String, _>(3), "2026-11-29T13:26:18.309Z");
    assert_eq!(signed.session.token.len(), 32);
}

#[tokio::test]
async fn reads_rows_better_auth_wrote_with_plugin_columns() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    // Plugins add columns (admin: user.role, user.banned; session.impersonatedBy).
    for ddl in [
        r#"alter table "user" add column "role" text"#,
        r#"alter table "user" add column "banned" integer"#,
        r#"alter table "session" add column "impersonatedBy" text"#,
    ] {
        sqlx::query(ddl).execute(store.pool()).await.unwrap();
    }
    // Reopen so the store sees the new columns, as an app restarted after a migration would.
    let store = SqliteStore::open(store.pool().clone(), SchemaMode::VerifyOnly)
        .await
        .unwrap();
    sqlx::query(r#"insert into "user" values ('JdQmUser', 'A', 'a@b.co', 1, null, '2026-11-22T12:50:00.395Z', '2026-11-22T12:50:00.395Z', 'admin', 0)"#)
        .execute(store.pool()).await.unwrap();
    sqlx::query(r#"insert into "session" values ('qdkvId', '2026-11-29T12:50:00.395Z', 'BcRqToken', '2026-11-22T12:50:00.395Z', '2026-11-22T12:50:00.395Z', '', '', 'JdQmUser', null)"#)
        .execute(store.pool()).await.unwrap();
    let found = store
        .find(&StorageKey::new("BcRqToken"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.session.id, "qdkvId");
    assert_eq!(
        found.session.expires_at,
        datetime!(2026-11-29 12:50:00.395 UTC)
    );
    assert!(found.user.email_verified);
    assert_eq!(found.user.extra["role"], "admin");
    assert_eq!(found.user.extra["banned"], 0);
    assert!(found.session.extra["impersonatedBy"].is_null());
}

#[tokio::test]
async fn old_layout_without_token_column_is_refused_by_name() {
    let (_dir, url) = temp_db();
    let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
        .await
        .unwrap();
    sqlx::query(r#"create table "user" ("id" text primary key, "name" text, "email" text, "emailVerified" integer, "image" text, "createdAt" date, "updatedAt" date)"#)
        .execute(&pool).await.unwrap();
    // Better Auth 0.x: the session id was the cookie token; there is no "token" column.
    sqlx::query(r#"create table "session" ("id" text primary key, "expiresAt" date, "createdAt" date, "updatedAt" date, "ipAddress" text, "userAgent" text, "userId" text)"#)
        .execute(&pool).await.unwrap();
    pool.close().await;
    let err = SqliteStore::connect(&url).await.unwrap_err();
    match &err {
        StoreError::Schema(SchemaError::MissingColumn { table, column, .. }) => {
            assert_eq!((table.as_str(), column.as_str()), ("session", "token"));
        }
        other => panic!("expected a missing-column error, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(r#"column "token" is missing from table "session""#),
        "{msg}"
    );
    assert!(msg.contains("pre-1.0"), "{msg}");
}

#[tokio::test]
async fn verify_only_names_a_missing_table_and_creates_nothing() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let err = SqliteStore::open(pool.clone(), SchemaMode::VerifyOnly)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(r#"table "session" is missing"#),
        "{err}"
    );
    let n: i64 = sqlx::query_scalar("select count(*) from sqlite_master where type = 'table'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn snake_case_tables_get_a_hint() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    sqlx::query(r#"create table "user" ("id" text, "name" text, "email" text, "email_verified" integer, "image" text, "created_at" integer, "updated_at" integer)"#)
        .execute(&pool).await.unwrap();
    sqlx::query(r#"create table "session" ("id" text, "expires_at" integer, "token" text, "created_at" integer, "updated_at" integer, "ip_address" text, "user_agent" text, "user_id" text)"#)
        .execute(&pool).await.unwrap();
    let err = SqliteStore::open(pool, SchemaMode::VerifyOnly)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(r#"column "userId" is missing from table "session""#),
        "{err}"
    );
    assert!(err.contains("snake_case"), "{err}");
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let (_dir, url) = temp_db();
    let config = || {
        SessionConfig::builder()
            .secret(common::SECRET)
            .build()
            .unwrap()
    };
    let cookie = {
        let store = SqliteStore::connect(&url).await.unwrap();
        let user = User::new(
            "alice@example.com",
            "Alice",
            time::OffsetDateTime::now_utc(),
        );
        store.insert_user(&user).await.unwrap();
        let signed = SessionLayer::new(config(), store.clone())
            .manager()
            .sign_in(&user, SignIn::new())
            .await
            .unwrap();
        store.pool().close().await;
        let line = signed
            .cookies
            .iter()
            .next()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        line.split(';').next().unwrap().to_owned()
    };
    // Everything from the first "process" is gone; reopen the file.
    let store = SqliteStore::connect(&url).await.unwrap();
    let app = axum::Router::new()
        .route(
            "/me",
            axum::routing::get(|tower_auth_session::extract::CurrentUser(u): tower_auth_session::extract::CurrentUser| async move { u.email.clone() }),
        )
        .layer(SessionLayer::new(config(), store));
    let r = common::send(app, common::get_req("/me", Some(&cookie))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "alice@example.com");
}

#[tokio::test]
async fn drizzle_layout_with_unix_ms_dates() {
    use tower_auth_session::store::SqlSchema;
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let store = SqliteStore::open_with(
        pool.clone(),
        SchemaMode::CreateIfMissing,
        SqlSchema::drizzle(),
    )
    .await
    .unwrap();
    conformance::find_returns_what_create_wrote(store.clone()).await;
    conformance::extend_moves_expiry_forward_only(store.clone()).await;
    conformance::list_live_sessions_in_expiry_order(store.clone()).await;
    conformance::delete_expired_sessions(store.clone()).await;
    let row =
        sqlx::query(r#"select typeof("expires_at"), typeof("created_at") from "session" limit 1"#)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(row.get::<String, _>(0), "integer", "Drizzle's timestamp_ms");
    assert_eq!(row.get::<String, _>(1), "integer");
}

#[tokio::test]
async fn prisma_layout_with_unix_ms_dates() {
    use tower_auth_session::store::SqlSchema;
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let store = SqliteStore::open_with(
        pool.clone(),
        SchemaMode::CreateIfMissing,
        SqlSchema::prisma(),
    )
    .await
    .unwrap();
    conformance::find_returns_what_create_wrote(store.clone()).await;
    conformance::extend_never_resurrects(store.clone()).await;
    conformance::list_live_sessions_in_expiry_order(store.clone()).await;
    let row = sqlx::query(r#"select typeof("expiresAt") from "session" limit 1"#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        row.get::<String, _>(0),
        "integer",
        "Prisma's DateTime in SQLite"
    );
}

/// `connect` opens the file with the settings its docs promise: WAL, foreign keys, and reads
/// through a 256 MiB memory map.
#[tokio::test]
async fn connect_uses_wal_foreign_keys_and_a_memory_map() {
    let (_dir, url) = temp_db();
    let store = SqliteStore::connect(&url).await.unwrap();
    let pragma = |name: &'static str| {
        let pool = store.pool().clone();
        async move {
            sqlx::query(&format!("PRAGMA {name}"))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let journal: String = pragma("journal_mode").await.get(0);
    assert_eq!(journal, "wal");
    let foreign_keys: i64 = pragma("foreign_keys").await.get(0);
    assert_eq!(foreign_keys, 1);
    let mmap: i64 = pragma("mmap_size").await.get(0);
    assert_eq!(mmap, 268_435_456);
}
