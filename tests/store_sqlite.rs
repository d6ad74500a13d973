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

/// The suite again on a database file, where lookups run on the calling thread rather than
/// through the pool.
mod on_a_file {
    use super::SqliteStore;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn file_db() -> Option<SqliteStore> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "conformance-{}-{}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        Some(
            SqliteStore::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap(),
        )
    }

    crate::conformance_suite!(file_db());
}

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
    assert_eq!(
        found.user.extra["banned"], false,
        "0/1 plugin booleans read as booleans"
    );
    assert!(found.session.extra["impersonatedBy"].is_null());

    // Another tool wrote 2 in boolean columns: Better Auth's adapter reads a number there as
    // `=== 1`, false, and so does the store.
    sqlx::query(r#"update "user" set "emailVerified" = 2, "banned" = 2"#)
        .execute(store.pool())
        .await
        .unwrap();
    let found = store
        .find(&StorageKey::new("BcRqToken"))
        .await
        .unwrap()
        .unwrap();
    assert!(!found.user.email_verified);
    assert_eq!(found.user.extra["banned"], false);
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
async fn connect_uses_wal_synchronous_normal_foreign_keys_and_a_memory_map() {
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
    let synchronous: i64 = pragma("synchronous").await.get(0);
    assert_eq!(
        synchronous, 1,
        "NORMAL: a commit does not wait for an fsync"
    );
}

/// Better Auth 1.7.25's own SQLite DDL (`getMigrations().compileMigrations()` with
/// better-sqlite3, with the admin and organization plugins) for `generateId: "uuid"` (text ids
/// holding UUIDs, made by the writer) and `"serial"` (an integer rowid the database assigns).
mod layouts {
    pub const UUID: [&str; 3] = [
        r#"create table "user" ("id" text not null primary key, "name" text not null, "email" text not null unique, "emailVerified" integer not null, "image" text, "createdAt" date not null, "updatedAt" date not null, "role" text, "banned" integer, "banReason" text, "banExpires" date)"#,
        r#"create table "session" ("id" text not null primary key, "expiresAt" date not null, "token" text not null unique, "createdAt" date not null, "updatedAt" date not null, "ipAddress" text, "userAgent" text, "userId" text not null references "user" ("id") on delete cascade, "impersonatedBy" text, "activeOrganizationId" text)"#,
        r#"create index "session_userId_idx" on "session" ("userId")"#,
    ];
    pub const SERIAL: [&str; 3] = [
        r#"create table "user" ("id" integer not null primary key, "name" text not null, "email" text not null unique, "emailVerified" integer not null, "image" text, "createdAt" date not null, "updatedAt" date not null, "role" text, "banned" integer, "banReason" text, "banExpires" date)"#,
        r#"create table "session" ("id" integer not null primary key, "expiresAt" date not null, "token" text not null unique, "createdAt" date not null, "updatedAt" date not null, "ipAddress" text, "userAgent" text, "userId" integer not null references "user" ("id") on delete cascade, "impersonatedBy" text, "activeOrganizationId" text)"#,
        r#"create index "session_userId_idx" on "session" ("userId")"#,
    ];
}

/// A database file with `ddl` applied, opened with `schema` (the store only verifies it). The
/// directory is kept for the test's lifetime by leaking it into the temp dir; it is tiny.
async fn store_on(ddl: &[&str], schema: tower_auth_session::store::SqlSchema) -> SqliteStore {
    let (dir, url) = temp_db();
    let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
        .await
        .unwrap();
    for statement in ddl {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let store = SqliteStore::builder(url)
        .schema(schema)
        .create_schema(false)
        .build()
        .await
        .unwrap();
    let _ = dir.keep();
    store
}

mod uuid_layout {
    use super::*;
    conformance_suite!(async {
        Some(
            store_on(
                &layouts::UUID,
                tower_auth_session::store::SqlSchema::better_auth()
                    .ids(tower_auth_session::store::IdFormat::Uuid),
            )
            .await,
        )
    });
}

mod serial_layout {
    use super::*;
    conformance_suite!(async {
        Some(
            store_on(
                &layouts::SERIAL,
                tower_auth_session::store::SqlSchema::better_auth(),
            )
            .await,
        )
    });
}

/// Each layout is recognised and named: a v4 UUID written by Rust for `uuid`, and for `serial`
/// the rowid SQLite assigns, read back as Better Auth's `String(n)`; rows Better Auth wrote with
/// integer ids are found and joined to their user.
#[tokio::test]
async fn uuid_and_serial_layouts_are_recognised_and_written_natively() {
    use tower_auth_session::store::{IdFormat, SqlSchema};
    let uuid = store_on(&layouts::UUID, SqlSchema::better_auth().ids(IdFormat::Uuid)).await;
    assert_eq!(uuid.id_format(), IdFormat::Uuid);
    let user = uuid
        .insert_user(&User::new(
            "u@example.com",
            "U",
            datetime!(2026-11-23 12:00 UTC),
        ))
        .await
        .unwrap();
    assert_eq!(user.id.len(), 36, "a uuid: {}", user.id);
    assert_eq!(&user.id[14..15], "4", "version 4: {}", user.id);
    let session = uuid
        .create(
            &conformance::session(&user, datetime!(2026-12-01 0:00 UTC)),
            &user,
        )
        .await
        .unwrap();
    let dashes: Vec<usize> = session.id.match_indices('-').map(|(i, _)| i).collect();
    assert_eq!(dashes, [8, 13, 18, 23], "a uuid: {}", session.id);

    let serial = store_on(&layouts::SERIAL, SqlSchema::better_auth()).await;
    assert_eq!(serial.id_format(), IdFormat::Serial);
    // A row Better Auth wrote (integer ids, ISO text dates, integer booleans).
    for statement in [
        r#"insert into "user" values (1, 'Alice', 'alice@example.com', 0, null, '2026-11-28T22:02:45.908Z', '2026-11-28T22:02:45.908Z', 'user', 0, null, null)"#,
        r#"insert into "session" values (1, '2026-12-05T22:02:45.909Z', 'Tok1', '2026-11-28T22:02:45.909Z', '2026-11-28T22:02:45.909Z', null, null, 1, null, null)"#,
    ] {
        sqlx::query(statement).execute(serial.pool()).await.unwrap();
    }
    let found = serial
        .find(&StorageKey::new("Tok1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.session.id.as_str(), found.user.id.as_str()),
        ("1", "1")
    );
    let b = serial
        .insert_user(&User::new(
            "b@example.com",
            "B",
            datetime!(2026-11-23 12:00 UTC),
        ))
        .await
        .unwrap();
    assert_eq!(b.id, "2", "the next rowid, as String(n)");
    let s = serial
        .create(
            &conformance::session(&b, datetime!(2026-12-01 0:00 UTC)),
            &b,
        )
        .await
        .unwrap();
    assert_eq!((s.id.as_str(), s.user_id.as_str()), ("2", "2"));
    let (kind, user_kind): (String, String) =
        sqlx::query_as(r#"select typeof("id"), typeof("userId") from "session" where "id" = 2"#)
            .fetch_one(serial.pool())
            .await
            .unwrap();
    assert_eq!((kind.as_str(), user_kind.as_str()), ("integer", "integer"));
    assert!(serial
        .list_user_sessions("not-a-number", conformance::NOW)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(serial.delete_user_sessions("x").await.unwrap(), 0);
}

/// A date may be stored as ISO text (Better Auth's Kysely adapter), integer milliseconds
/// (Drizzle's `timestamp_ms`) or a real number of milliseconds (a JavaScript number written as
/// is): the reader takes each storage class as it comes, row by row.
#[tokio::test]
async fn dates_are_read_in_every_storage_class() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    let user = User::new(
        "dates@example.com",
        "D",
        datetime!(2026-11-29 13:26:18.309 UTC),
    );
    let user = store.insert_user(&user).await.unwrap();
    sqlx::query(
        r#"insert into "session" ("id", "expiresAt", "token", "createdAt", "updatedAt", "ipAddress", "userAgent", "userId") values ('s1', ?, 'TokDates', ?, '2026-11-29T13:26:18.309Z', null, null, ?)"#,
    )
    .bind(4_102_444_800_000.5_f64)
    .bind(1_795_958_778_309_i64)
    .bind(&user.id)
    .execute(store.pool())
    .await
    .unwrap();
    let (expires, created, updated): (String, String, String) = sqlx::query_as(
        r#"select typeof("expiresAt"), typeof("createdAt"), typeof("updatedAt") from "session" where "id" = 's1'"#,
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(
        (expires.as_str(), created.as_str(), updated.as_str()),
        ("real", "integer", "text")
    );
    let found = store
        .find(&StorageKey::new("TokDates"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.session.expires_at, datetime!(2100-01-01 0:00 UTC));
    assert_eq!(
        found.session.created_at,
        datetime!(2026-11-29 13:26:18.309 UTC)
    );
    assert_eq!(
        found.session.updated_at,
        datetime!(2026-11-29 13:26:18.309 UTC)
    );
    assert_eq!(
        found.user.created_at,
        datetime!(2026-11-29 13:26:18.309 UTC)
    );
}

/// Lookups on the calling thread read what the pool reads: dates in every storage class, a
/// NULL, a serial-looking integer id, and lists, on the same file with and without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_on_the_calling_thread_match_the_pool() {
    let (_dir, url) = temp_db();
    let inline = SqliteStore::connect(&url).await.unwrap();
    let pooled = SqliteStore::builder(&url)
        .inline_reads(false)
        .build()
        .await
        .unwrap();
    let user = User::new(
        "inline@example.com",
        "I",
        datetime!(2026-11-29 13:26:18.309 UTC),
    );
    let user = inline.insert_user(&user).await.unwrap();
    for (id, expires, created) in [
        ("s1", "4102444800000.5", "1795958778309"),
        (
            "s2",
            "'2099-01-01T00:00:00.000Z'",
            "'2026-11-29T13:26:18.309Z'",
        ),
    ] {
        sqlx::query(&format!(
            r#"insert into "session" ("id", "expiresAt", "token", "createdAt", "updatedAt", "ipAddress", "userAgent", "userId") values ('{id}', {expires}, 'Tok{id}', {created}, '2026-11-29T13:26:18.309Z', null, 'agent ✓', ?)"#,
        ))
        .bind(&user.id)
        .execute(inline.pool())
        .await
        .unwrap();
    }
    for token in ["Toks1", "Toks2", "TokNone"] {
        let key = StorageKey::new(token);
        let a = inline.find(&key).await.unwrap();
        let b = pooled.find(&key).await.unwrap();
        let json = |a: &Option<tower_auth_session::Authenticated>| {
            a.as_ref()
                .map(|a| serde_json::json!({ "session": a.session, "user": a.user }))
        };
        assert_eq!(json(&a), json(&b), "{token}");
        assert_eq!(a.is_some(), token != "TokNone");
    }
    let found = inline
        .find(&StorageKey::new("Toks1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.session.expires_at, datetime!(2100-01-01 0:00 UTC));
    assert_eq!(found.session.ip_address, None);
    assert_eq!(found.session.user_agent.as_deref(), Some("agent ✓"));
    let now = datetime!(2026-11-29 14:00 UTC);
    let a = inline.list_user_sessions(&user.id, now).await.unwrap();
    let b = pooled.list_user_sessions(&user.id, now).await.unwrap();
    // Both listed, the ISO one (2099) first: the list compares and orders dates, not storage
    // classes (a real number once sorted below any text, and the session went unlisted).
    let ids: Vec<&str> = a.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["s2", "s1"]);
    assert_eq!(
        serde_json::to_value(&a).unwrap(),
        serde_json::to_value(&b).unwrap()
    );
    // With the pool closed, lookups still answer: they did not go through it.
    inline.pool().close().await;
    let found = inline.find(&StorageKey::new("Toks2")).await.unwrap();
    assert!(found.is_some());
}

/// The refresh batcher on a file (a writer connection of its own, readers beside it), with the
/// runtime's threads taking the answers: each caller still gets its own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_extends_on_a_file_answer_as_one_at_a_time() {
    let (_dir, url) = temp_db();
    let store = SqliteStore::connect(&url).await.unwrap();
    conformance::concurrent_extends_answer_as_one_at_a_time(store.clone()).await;
    conformance::extend_moves_expiry_forward_only(store.clone()).await;
    conformance::extend_never_resurrects(store).await;
}

/// One session of `user` with its expiry written as the SQL literal `expires`.
async fn session_with_expiry(store: &SqliteStore, user: &User, id: &str, expires: &str) {
    sqlx::query(&format!(
        r#"insert into "session" ("id", "expiresAt", "token", "createdAt", "updatedAt", "ipAddress", "userAgent", "userId") values ('{id}', {expires}, 'Tok{id}', '2026-11-29T13:26:18.309Z', '2026-11-29T13:26:18.309Z', null, null, ?)"#,
    ))
    .bind(&user.id)
    .execute(store.pool())
    .await
    .unwrap();
}

/// Expiries in every form a Better Auth adapter (or a store set to the wrong one) leaves in
/// SQLite, live and past, are compared as dates by every statement with a date in it: the list,
/// the refresh's guard, the conditional delete and the sweep. Comparing storage classes, the
/// sweep deleted live sessions stored as numbers under an ISO store, and seconds (Drizzle's
/// `timestamp` mode) read as milliseconds made every such session look expired.
#[tokio::test]
async fn expiries_in_every_form_compare_as_dates() {
    use tower_auth_session::store::{DateFormat, SqlSchema};
    let now = datetime!(2026-11-29 14:00 UTC);
    let live = [
        ("iso", "'2026-12-06T00:00:00.000Z'"),
        ("ms", "1796515200000"),
        ("real", "1796515200000.5"),
        ("secs", "1796515201"),
        ("digits", "'1796515202000'"),
        ("spaced", "'2026-12-06 00:00:03'"),
        ("loose", "' 2026-12-06t00:00:04.000z'"),
        ("signed", "'+1796515205000'"),
    ];
    let dead = [
        ("iso_dead", "'2026-11-29T13:59:59.999Z'"),
        ("ms_dead", "1795960799999"),
        ("secs_dead", "1795960799"),
        // The smallest integer: SQLite's abs() of it is an error that failed the whole sweep.
        ("min_dead", "-9223372036854775808"),
    ];
    for dates in [
        DateFormat::IsoText,
        DateFormat::UnixMillis,
        DateFormat::UnixSeconds,
    ] {
        let (_dir, url) = temp_db();
        let store = SqliteStore::builder(&url)
            .schema(SqlSchema::better_auth().sqlite_dates(dates))
            .create_schema(true)
            .build()
            .await
            .unwrap();
        let user = store
            .insert_user(&User::new("forms@example.com", "F", now))
            .await
            .unwrap();
        for (id, expires) in live.iter().chain(&dead) {
            session_with_expiry(&store, &user, id, expires).await;
        }
        let listed: Vec<String> = store
            .list_user_sessions(&user.id, now)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        // Earliest expiry first: iso 00:00:00, ms/real 00:00:00(.0005), secs :01, digits :02,
        // spaced :03, loose :04, signed :05.
        assert_eq!(
            listed,
            ["iso", "ms", "real", "secs", "digits", "spaced", "loose", "signed"],
            "{dates:?}"
        );
        let secs = store
            .find(&StorageKey::new("Toksecs"))
            .await
            .unwrap()
            .expect("a live session stored in seconds");
        assert_eq!(secs.session.expires_at, datetime!(2026-12-06 0:00:01 UTC));
        // The conditional delete of a session the layer found expired spares a live one.
        for (id, _) in live {
            let key = format!("Tok{id}");
            store
                .delete_if_expired(&StorageKey::new(&key), now)
                .await
                .unwrap();
            assert!(
                store.find(&StorageKey::new(&key)).await.unwrap().is_some(),
                "{dates:?}: {id} deleted while live"
            );
        }
        // The sweep deletes exactly the past ones.
        assert_eq!(store.delete_expired(now).await.unwrap(), 4, "{dates:?}");
        let left: i64 = sqlx::query_scalar(r#"select count(*) from "session""#)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(left, 8, "{dates:?}");
        // The refresh's guard sees every live one as live and moves it forward.
        let later = datetime!(2026-12-20 0:00 UTC);
        for (id, _) in live {
            let extended = store
                .extend(&StorageKey::new(format!("Tok{id}")), later, now)
                .await
                .unwrap();
            assert_eq!(
                extended.map(|s| s.expires_at),
                Some(later),
                "{dates:?}: {id} not extended"
            );
        }
    }
}

/// A session table whose expiries are all in another form than the store is set to write is
/// refused at start-up, naming the setting that matches; the matching setting writes that form.
/// Opening `url` with `dates` fails with [`SchemaError::DateFormatMismatch`], whose message
/// holds each of `says`.
async fn refused_for_dates(url: &str, dates: tower_auth_session::store::DateFormat, says: &[&str]) {
    let err = SqliteStore::builder(url)
        .schema(tower_auth_session::store::SqlSchema::better_auth().sqlite_dates(dates))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Schema(SchemaError::DateFormatMismatch { .. })
        ),
        "{dates:?}: {err:?}"
    );
    let message = err.to_string();
    for said in says {
        assert!(message.contains(said), "{said:?} not in {message}");
    }
}

#[tokio::test]
async fn a_table_of_dates_in_another_form_is_refused_with_the_setting_to_use() {
    use tower_auth_session::store::{DateFormat, SqlSchema};
    let now = datetime!(2026-11-29 14:00 UTC);
    let (_dir, url) = temp_db();
    let drizzle_secs = SqlSchema::better_auth().sqlite_dates(DateFormat::UnixSeconds);
    let store = SqliteStore::builder(&url)
        .schema(drizzle_secs.clone())
        .create_schema(true)
        .build()
        .await
        .unwrap();
    let user = store
        .insert_user(&User::new("secs@example.com", "S", now))
        .await
        .unwrap();
    session_with_expiry(&store, &user, "a", "1796515201").await;
    drop(store);
    for (dates, found) in [
        (DateFormat::IsoText, "ISO 8601 text"),
        (DateFormat::UnixMillis, "unix milliseconds"),
    ] {
        refused_for_dates(
            &url,
            dates,
            &[
                "unix seconds",
                found,
                "sqlite_dates(DateFormat::UnixSeconds)",
            ],
        )
        .await;
    }
    let store = SqliteStore::builder(&url)
        .schema(drizzle_secs)
        .build()
        .await
        .unwrap();
    let mut session = conformance::session(&user, datetime!(2026-12-06 0:00:00.700 UTC));
    session.id = "b".into();
    let signed_in = store.create(&session, &user).await.unwrap();
    let stored: (String, i64) = sqlx::query_as(
        r#"select typeof("expiresAt"), "expiresAt" from "session" where "id" = 'b'"#,
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    // Whole seconds, as Drizzle's `timestamp` mode reads them back.
    assert_eq!(
        stored,
        ("integer".to_owned(), signed_in.expires_at.unix_timestamp())
    );
    assert_eq!(stored.1, 1_796_515_200);
}

/// With no session yet, the expiry column's declared type hints at the form its adapter
/// writes: numbers in Better Auth's `date` column (or ISO text in an ORM's integer one) would
/// make Better Auth list no live session, or keep expired ones live. The table may be written
/// by another adapter than the one that made it, so the store warns and starts.
#[test]
fn an_empty_table_whose_declared_date_type_disagrees_is_named() {
    use tower_auth_session::store::{DateFormat, SqlSchema};
    let captured = common::Captured::default();
    captured.run(tracing::Level::WARN, async {
        for (made_with, opened_with, hint) in [
            (
                DateFormat::IsoText,
                DateFormat::UnixMillis,
                "DateFormat::IsoText",
            ),
            (
                DateFormat::UnixSeconds,
                DateFormat::IsoText,
                "DateFormat::UnixMillis or UnixSeconds",
            ),
        ] {
            let (_dir, url) = temp_db();
            // The store's own tables declare `date` for ISO text and `integer` for numbers, as
            // Better Auth's migration and Drizzle do.
            let open = |dates| {
                SqliteStore::builder(&url)
                    .schema(SqlSchema::better_auth().sqlite_dates(dates))
                    .create_schema(true)
                    .build()
            };
            drop(open(made_with).await.unwrap());
            assert_eq!(
                captured.take(),
                "",
                "{made_with:?} as it was made: no warning"
            );
            drop(open(opened_with).await.unwrap());
            let logs = captured.take();
            assert!(
                logs.contains("declared type suggests") && logs.contains(hint),
                "{made_with:?} opened as {opened_with:?}: {logs}"
            );
        }
    });
}

/// Better Auth's SQLite migration gives a required additional field (`required: true,
/// defaultValue: "free"`) no default in the database: it fills it in JavaScript. The store,
/// which does not write such columns, names them at start-up, where its inserts would fail
/// later; nullable columns and those with a default are fine.
#[test]
fn required_columns_the_store_does_not_write_are_named_at_start_up() {
    let captured = common::Captured::default();
    captured.run(tracing::Level::WARN, async {
        let (_dir, url) = temp_db();
        let store = SqliteStore::builder(&url)
            .create_schema(true)
            .build()
            .await
            .unwrap();
        for ddl in [
            r#"alter table "session" add column "activeOrganizationId" text"#,
            r#"alter table "user" add column "credits" integer not null default 0"#,
        ] {
            sqlx::query(ddl).execute(store.pool()).await.unwrap();
        }
        drop(store);
        SqliteStore::connect(&url).await.unwrap();
        assert_eq!(captured.take(), "", "nullable, or with a default: no warning");

        // Made the way Better Auth's migration makes a new required field on SQLite: the
        // table rebuilt with the column `not null`, no default (here on an empty table).
        let store = SqliteStore::connect(&url).await.unwrap();
        sqlx::query(r#"alter table "user" add column "plan" text not null default 'x'"#)
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query(r#"drop table "session""#)
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query(
            r#"create table "session" ("id" text not null primary key, "expiresAt" date not null, "token" text not null unique, "createdAt" date not null, "updatedAt" date not null, "ipAddress" text, "userAgent" text, "userId" text not null references "user" ("id") on delete cascade, "tenant" text not null)"#,
        )
        .execute(store.pool())
        .await
        .unwrap();
        drop(store);
        SqliteStore::connect(&url).await.unwrap();
        let logs = captured.take();
        assert!(
            logs.contains("sign-ins made from Rust will fail") && logs.contains("tenant"),
            "{logs}"
        );
        assert!(!logs.contains("plan"), "a default is enough: {logs}");
    });
}

/// Additional fields declared with their Better Auth type read as Better Auth's adapter reads
/// them (a boolean's 0/1, a JSON field's text); undeclared ones as SQLite gives them.
#[tokio::test]
async fn declared_additional_fields_read_as_better_auth_reads_them() {
    use tower_auth_session::store::{FieldType, SqlSchema};
    let (_dir, url) = temp_db();
    let store = SqliteStore::builder(&url)
        .create_schema(true)
        .build()
        .await
        .unwrap();
    for ddl in [
        r#"alter table "user" add column "isPremium" integer"#,
        r#"alter table "user" add column "tags" text"#,
        r#"alter table "user" add column "broken" text"#,
        r#"alter table "user" add column "note" text"#,
        r#"alter table "session" add column "scopes" text"#,
    ] {
        sqlx::query(ddl).execute(store.pool()).await.unwrap();
    }
    drop(store);
    let store = SqliteStore::builder(&url)
        .schema(
            SqlSchema::better_auth()
                .user_field("isPremium", FieldType::Boolean)
                .user_field("tags", FieldType::Array)
                .user_field("broken", FieldType::Json)
                .session_field("scopes", FieldType::Json),
        )
        .build()
        .await
        .unwrap();
    let now = datetime!(2026-11-29 14:00 UTC);
    let user = store
        .insert_user(&User::new("typed@example.com", "T", now))
        .await
        .unwrap();
    sqlx::query(r#"update "user" set "isPremium" = 1, "tags" = '["a","b"]', "broken" = 'x{', "note" = '["not", "declared"]'"#)
        .execute(store.pool())
        .await
        .unwrap();
    let session = conformance::session(&user, now + time::Duration::days(7));
    store.create(&session, &user).await.unwrap();
    sqlx::query(r#"update "session" set "scopes" = '{"read":true}'"#)
        .execute(store.pool())
        .await
        .unwrap();
    let found = store.find(&session.storage_key()).await.unwrap().unwrap();
    let extra = &found.user.extra;
    assert_eq!(extra["isPremium"], serde_json::json!(true));
    assert_eq!(extra["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        extra["broken"],
        serde_json::Value::Null,
        "not JSON: null, as safeJSONParse"
    );
    assert_eq!(extra["note"], serde_json::json!(r#"["not", "declared"]"#));
    assert_eq!(
        found.session.extra["scopes"],
        serde_json::json!({"read": true})
    );
}

/// Better Auth's `database.schemaName` is PostgreSQL's: given to the SQLite store, a start-up
/// error that says so rather than tables looked up somewhere else.
#[tokio::test]
async fn a_schema_name_is_refused_naming_postgres() {
    let err = SqliteStore::builder("sqlite::memory:")
        .schema(tower_auth_session::store::SqlSchema::better_auth().schema_name("auth"))
        .create_schema(true)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Schema(SchemaError::NamespaceUnsupported { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("PostgreSQL"), "{err}");
}
