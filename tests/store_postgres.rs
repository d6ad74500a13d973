//! `PostgresStore` against a real server (`TAS_TEST_POSTGRES_URL`, started by
//! `scripts/test-all.sh`): the conformance suite, schema checks and presets.
#![cfg(feature = "postgres")]

mod common;
mod conformance;

use sqlx::Row;
use time::macros::datetime;
use tower_auth_session::store::{PostgresStore, SqlSchema};
use tower_auth_session::{SchemaError, SessionStore, StorageKey, StoreError, User};

async fn store(test: &str) -> Option<PostgresStore> {
    let url = common::fresh_pg_database(test).await?;
    Some(
        PostgresStore::builder(url)
            .create_schema(true)
            .build()
            .await
            .unwrap(),
    )
}

conformance_suite!(store("postgres conformance"));

/// A fresh database whose Better Auth tables are in schema `auth` (Better Auth's
/// `database.schemaName`), with tables of another shape in `public` that a store reading them
/// would refuse.
async fn store_in_schema(test: &str) -> Option<PostgresStore> {
    let url = common::fresh_pg_database(test).await?;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for decoy in [
        r#"create table "user" ("x" integer)"#,
        r#"create table "session" ("x" integer)"#,
    ] {
        sqlx::query(decoy).execute(&pool).await.unwrap();
    }
    pool.close().await;
    Some(
        PostgresStore::builder(url)
            .schema(SqlSchema::better_auth().schema_name("auth"))
            .create_schema(true)
            .build()
            .await
            .unwrap(),
    )
}

mod in_a_schema_of_its_own {
    use super::*;
    conformance_suite!(store_in_schema("postgres schema conformance"));
}

#[tokio::test]
async fn better_auth_ddl_rows_are_read_and_written() {
    let Some(url) = common::fresh_pg_database("better_auth_ddl_rows_are_read_and_written").await
    else {
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // Better Auth 1.7.25's own DDL (spec §4.2), plus the admin plugin's columns.
    for ddl in [
        r#"create table "user" ("id" text not null primary key, "name" text not null, "email" text not null unique, "emailVerified" boolean not null, "image" text, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, "updatedAt" timestamptz default CURRENT_TIMESTAMP not null, "role" text, "banned" boolean)"#,
        r#"create table "session" ("id" text not null primary key, "expiresAt" timestamptz not null, "token" text not null unique, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, "updatedAt" timestamptz not null, "ipAddress" text, "userAgent" text, "userId" text not null references "user" ("id") on delete cascade, "impersonatedBy" text)"#,
        r#"create index "session_userId_idx" on "session" ("userId")"#,
        r#"insert into "user" values ('U1', 'Alice', 'alice@example.com', true, null, '2026-11-22T12:50:00.395Z', '2026-11-22T12:50:00.395Z', 'admin', false)"#,
        r#"insert into "session" values ('S1', '2026-11-29T12:50:00.395Z', 'Tok1', '2026-11-22T12:50:00.395Z', '2026-11-22T12:50:00.395Z', '', '', 'U1', null)"#,
    ] {
        sqlx::query(ddl).execute(&pool).await.unwrap();
    }
    let store = PostgresStore::connect(&url).await.unwrap();
    let found = store.find(&StorageKey::new("Tok1")).await.unwrap().unwrap();
    assert_eq!(found.session.id, "S1");
    assert_eq!(
        found.session.expires_at,
        datetime!(2026-11-29 12:50:00.395 UTC)
    );
    assert!(found.user.email_verified);
    assert_eq!(found.user.extra["role"], "admin");
    assert_eq!(found.user.extra["banned"], false);
    assert!(found.session.extra["impersonatedBy"].is_null());
    // Drizzle's and Prisma's `string[]` on PostgreSQL is `text[]`: an array, as node-postgres
    // gives it to Better Auth.
    sqlx::query(r#"alter table "user" add column "tags" text[]"#)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(r#"update "user" set "tags" = '{a,b}'"#)
        .execute(&pool)
        .await
        .unwrap();
    let store = PostgresStore::connect(&url).await.unwrap();
    let found = store.find(&StorageKey::new("Tok1")).await.unwrap().unwrap();
    assert_eq!(found.user.extra["tags"], serde_json::json!(["a", "b"]));
    // A refresh is a narrow write of expiresAt and updatedAt.
    let now = datetime!(2026-11-23 12:00:00.5 UTC);
    let s = store
        .extend(
            &StorageKey::new("Tok1"),
            datetime!(2026-11-30 12:00:00.5 UTC),
            now,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.updated_at, now);
    let row = sqlx::query(
        r#"select "expiresAt"::text, "updatedAt"::text, "createdAt"::text from "session""#,
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>(0), "2026-11-30 12:00:00.5+00");
    assert_eq!(row.get::<String, _>(1), "2026-11-23 12:00:00.5+00");
    assert_eq!(row.get::<String, _>(2), "2026-11-22 12:50:00.395+00");
}

#[tokio::test]
async fn old_layout_is_refused_naming_the_token_column() {
    let Some(url) =
        common::fresh_pg_database("old_layout_is_refused_naming_the_token_column").await
    else {
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(r#"create table "user" ("id" text primary key, "name" text, "email" text, "emailVerified" boolean, "image" text, "createdAt" timestamptz, "updatedAt" timestamptz)"#).execute(&pool).await.unwrap();
    sqlx::query(r#"create table "session" ("id" text primary key, "expiresAt" timestamptz, "createdAt" timestamptz, "updatedAt" timestamptz, "ipAddress" text, "userAgent" text, "userId" text)"#).execute(&pool).await.unwrap();
    let err = PostgresStore::connect(&url).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Schema(SchemaError::MissingColumn { table, column, .. }) if table == "session" && column == "token"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(r#"column "token" is missing from table "session""#),
        "{err}"
    );
    let missing =
        PostgresStore::connect(&common::fresh_pg_database("missing table").await.unwrap())
            .await
            .unwrap_err();
    assert!(
        missing
            .to_string()
            .contains(r#"table "session" is missing"#),
        "{missing}"
    );
}

#[tokio::test]
async fn drizzle_layout_with_timestamp_without_time_zone() {
    let Some(url) =
        common::fresh_pg_database("drizzle_layout_with_timestamp_without_time_zone").await
    else {
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // Better Auth's Drizzle generator: snake_case, `timestamp` without time zone.
    sqlx::query(r#"create table "user" ("id" text primary key, "name" text not null, "email" text not null unique, "email_verified" boolean not null, "image" text, "created_at" timestamp not null, "updated_at" timestamp not null)"#).execute(&pool).await.unwrap();
    sqlx::query(r#"create table "session" ("id" text primary key, "expires_at" timestamp not null, "token" text not null unique, "created_at" timestamp not null, "updated_at" timestamp not null, "ip_address" text, "user_agent" text, "user_id" text not null references "user"("id") on delete cascade)"#).execute(&pool).await.unwrap();
    let err = PostgresStore::connect(&url).await.unwrap_err().to_string();
    assert!(err.contains("SqlSchema::drizzle()"), "{err}");
    let store = PostgresStore::builder(&url)
        .schema(SqlSchema::drizzle())
        .build()
        .await
        .unwrap();
    conformance::find_returns_what_create_wrote(store.clone()).await;
    conformance::extend_moves_expiry_forward_only(store.clone()).await;
    let stored: String = sqlx::query_scalar(r#"select min("expires_at")::text from "session""#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        stored.starts_with("2026-11-"),
        "UTC wall time stored: {stored}"
    );
}

#[tokio::test]
async fn acquire_timeout_is_short_when_the_server_is_unreachable() {
    // A port nobody listens on: connecting fails fast instead of waiting sqlx's 30 s.
    let started = std::time::Instant::now();
    let err = PostgresStore::builder("postgres://postgres@127.0.0.1:9/none")
        .acquire_timeout(std::time::Duration::from_millis(300))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn read_only_role_serves_requests_without_writing() {
    use axum::routing::get;
    use tower_auth_session::extract::CurrentSession;
    use tower_auth_session::{ManualClock, SessionConfig, SessionInfo, SessionLayer, SignIn};

    let test = "read_only_role_serves_requests_without_writing";
    let Some(url) = common::fresh_pg_database(test).await else {
        return;
    };
    let t0 = datetime!(2026-11-23 12:00 UTC);
    let owner = PostgresStore::builder(&url)
        .create_schema(true)
        .build()
        .await
        .unwrap();
    let user = User::new("ro@example.com", "RO", t0);
    owner.insert_user(&user).await.unwrap();
    let clock = ManualClock::new(t0);
    let writer = SessionLayer::new(
        SessionConfig::builder()
            .secret(common::SECRET)
            .clock(clock.clone())
            .build()
            .unwrap(),
        owner.clone(),
    );
    let cookie = |s: tower_auth_session::SignedIn| {
        s.cookies
            .iter()
            .next()
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    let live = cookie(
        writer
            .manager()
            .sign_in(&user, SignIn::new())
            .await
            .unwrap(),
    );
    clock.set(t0 - time::Duration::days(8));
    let old = cookie(
        writer
            .manager()
            .sign_in(&user, SignIn::new())
            .await
            .unwrap(),
    );

    // A role with SELECT on the two tables and nothing else.
    let role = format!(
        "ro_{}",
        tower_auth_session::test_support::generate_id(8).to_lowercase()
    );
    let db = url.rsplit('/').next().unwrap();
    for sql in [
        format!("create role {role} login"),
        format!("grant connect on database {db} to {role}"),
        format!(r#"grant select on "user", "session" to {role}"#),
    ] {
        sqlx::query(&sql).execute(&owner.pool()).await.unwrap();
    }
    let ro_url = url.replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    let ro = common::Counting::new(PostgresStore::connect(&ro_url).await.unwrap());
    let denied = sqlx::query(r#"delete from "session""#)
        .execute(&ro.inner.pool())
        .await;
    assert!(denied.is_err(), "the role really is read-only");

    let layer = SessionLayer::new(
        SessionConfig::builder()
            .secret(common::SECRET)
            .clock(clock.clone())
            .read_only(true)
            .build()
            .unwrap(),
        ro.clone(),
    );
    let app = axum::Router::new()
        .route(
            "/me",
            get(
                |CurrentSession(a): CurrentSession, info: SessionInfo| async move {
                    format!("{} {}", a.user.email, info.needs_refresh)
                },
            ),
        )
        .layer(layer);
    clock.set(t0 + time::Duration::days(2));
    let r = common::send(app.clone(), common::get_req("/me", Some(&live))).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "ro@example.com true"),
        "refresh due, only reported"
    );
    assert!(r.set_cookies().is_empty());
    let r = common::send(app.clone(), common::get_req("/me", Some(&old))).await;
    assert_eq!(r.status, 401, "expired is rejected");
    assert!(r.set_cookies().is_empty());
    assert_eq!(ro.writes(), 0, "no write attempted");
    let rows: i64 = sqlx::query_scalar(r#"select count(*) from "session""#)
        .fetch_one(&owner.pool())
        .await
        .unwrap();
    assert_eq!(
        rows, 2,
        "the expired row is left for the Better Auth server"
    );
}

/// Better Auth 1.7.25's own DDL for `generateId: "uuid"` and `"serial"` (its migration with the
/// admin, organization and multi-session plugins, as `getMigrations().compileMigrations()`
/// prints it), so the suites below run on the layouts Better Auth really creates.
mod layouts {
    pub const UUID: [&str; 3] = [
        r#"create table "user" ("id" uuid default pg_catalog.gen_random_uuid() not null primary key, "name" text not null, "email" text not null unique, "emailVerified" boolean not null, "image" text, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, "updatedAt" timestamptz default CURRENT_TIMESTAMP not null, "role" text, "banned" boolean, "banReason" text, "banExpires" timestamptz)"#,
        r#"create table "session" ("id" uuid default pg_catalog.gen_random_uuid() not null primary key, "expiresAt" timestamptz not null, "token" text not null unique, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, "updatedAt" timestamptz not null, "ipAddress" text, "userAgent" text, "userId" uuid not null references "user" ("id") on delete cascade, "impersonatedBy" text, "activeOrganizationId" text)"#,
        r#"create index "session_userId_idx" on "session" ("userId")"#,
    ];
    pub const SERIAL: [&str; 3] = [
        r#"create table "user" ("id" integer GENERATED BY DEFAULT AS IDENTITY not null primary key, "name" text not null, "email" text not null unique, "emailVerified" boolean not null, "image" text, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, "updatedAt" timestamptz default CURRENT_TIMESTAMP not null, "role" text, "banned" boolean, "banReason" text, "banExpires" timestamptz)"#,
        r#"create table "session" ("id" integer GENERATED BY DEFAULT AS IDENTITY not null primary key, "expiresAt" timestamptz not null, "token" text not null unique, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, "updatedAt" timestamptz not null, "ipAddress" text, "userAgent" text, "userId" integer not null references "user" ("id") on delete cascade, "impersonatedBy" text, "activeOrganizationId" text)"#,
        r#"create index "session_userId_idx" on "session" ("userId")"#,
    ];
}

/// A fresh database with `ddl` applied, and a store over it.
async fn store_on(test: &str, ddl: &[&str]) -> Option<PostgresStore> {
    let url = common::fresh_pg_database(test).await?;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for statement in ddl {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    Some(PostgresStore::connect(&url).await.unwrap())
}

mod uuid_layout {
    use super::*;
    conformance_suite!(store_on("postgres uuid conformance", &layouts::UUID));
}

mod serial_layout {
    use super::*;
    conformance_suite!(store_on("postgres serial conformance", &layouts::SERIAL));
}

/// Each layout is recognised and named; ids are written in the column's type (a v4 UUID from
/// Rust; the number the database assigns for serial), and ids of the wrong shape are simply
/// not found rather than a database error.
#[tokio::test]
async fn uuid_and_serial_layouts_are_recognised_and_written_natively() {
    use tower_auth_session::store::IdFormat;
    let test = "uuid_and_serial_layouts_are_recognised_and_written_natively";
    let Some(uuid) = store_on(test, &layouts::UUID).await else {
        return;
    };
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
    assert_eq!(session.id.len(), 36, "{}", session.id);
    let kind: String = sqlx::query_scalar(r#"select pg_typeof("id")::text from "session""#)
        .fetch_one(&uuid.pool())
        .await
        .unwrap();
    assert_eq!(kind, "uuid");
    assert!(uuid
        .list_user_sessions("not-a-uuid", conformance::NOW)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(uuid.delete_user_sessions("42").await.unwrap(), 0);
    assert!(uuid.find_user("nope").await.unwrap().is_none());

    let Some(serial) = store_on(test, &layouts::SERIAL).await else {
        return;
    };
    assert_eq!(serial.id_format(), IdFormat::Serial);
    let a = serial
        .insert_user(&User::new(
            "a@example.com",
            "A",
            datetime!(2026-11-23 12:00 UTC),
        ))
        .await
        .unwrap();
    let b = serial
        .insert_user(&User::new(
            "b@example.com",
            "B",
            datetime!(2026-11-23 12:00 UTC),
        ))
        .await
        .unwrap();
    assert_eq!(
        (a.id.as_str(), b.id.as_str()),
        ("1", "2"),
        "String(n), as Better Auth"
    );
    let s = serial
        .create(
            &conformance::session(&b, datetime!(2026-12-01 0:00 UTC)),
            &b,
        )
        .await
        .unwrap();
    assert_eq!(s.id, "1");
    assert_eq!(s.user_id, "2");
    let found = serial.find(&s.storage_key()).await.unwrap().unwrap();
    assert_eq!(
        (found.session.id.as_str(), found.user.id.as_str()),
        ("1", "2")
    );
    assert_eq!(found.user.extra["banned"], serde_json::Value::Null);
    assert!(serial
        .list_user_sessions("x", conformance::NOW)
        .await
        .unwrap()
        .is_empty());
}

/// A date column of a type the store cannot compare dates in (`date`, `text`, `bigint`) is
/// refused at start-up, naming it: it passed, and every list and refresh then failed.
#[tokio::test]
async fn a_date_column_of_another_type_is_refused_naming_it() {
    for (ty, column) in [
        ("date", "expiresAt"),
        ("text", "createdAt"),
        ("bigint", "updatedAt"),
    ] {
        let ddl = layouts::SERIAL.map(|s| {
            if s.starts_with(r#"create table "session""#) {
                s.replace(
                    &format!(r#""{column}" timestamptz"#),
                    &format!(r#""{column}" {ty}"#),
                )
            } else {
                s.to_owned()
            }
        });
        let test = format!("a_date_column_of_another_type_is_refused_{ty}");
        let Some(url) = common::fresh_pg_database(&test).await else {
            return;
        };
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        for statement in &ddl {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;
        let err = PostgresStore::connect(&url).await.unwrap_err();
        assert!(
            matches!(
                &err,
                StoreError::Schema(SchemaError::UnsupportedDateType { column: c, found, .. })
                    if c == column && found.contains(ty)
            ),
            "{ty}: {err:?}"
        );
        assert!(err.to_string().contains("timestamptz"), "{err}");
    }
}

/// `bigint` ids past 2³¹ (a `bigserial` layout, or an identity that has run long) are bound as
/// `bigint`: cast to `integer` they failed with "out of range" in every lookup by user id.
#[tokio::test]
async fn bigint_ids_past_two_to_the_31_are_found() {
    let ddl = layouts::SERIAL.map(|s| s.replace("integer", "bigint"));
    let ddl: Vec<&str> = ddl.iter().map(String::as_str).collect();
    let Some(store) = store_on("bigint_ids_past_two_to_the_31_are_found", &ddl).await else {
        return;
    };
    sqlx::query(r#"alter table "user" alter column "id" restart with 3000000000"#)
        .execute(&store.pool())
        .await
        .unwrap();
    let user = store
        .insert_user(&User::new("big@example.com", "B", conformance::NOW))
        .await
        .unwrap();
    assert_eq!(user.id, "3000000000");
    assert_eq!(
        store.find_user(&user.id).await.unwrap().map(|u| u.email),
        Some("big@example.com".to_owned())
    );
    let s = store
        .create(
            &conformance::session(&user, datetime!(2026-12-01 0:00 UTC)),
            &user,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .list_user_sessions(&user.id, conformance::NOW)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.delete_user_sessions(&user.id).await.unwrap(), 1);
    assert!(store.find(&s.storage_key()).await.unwrap().is_none());
}

/// A session table whose user id does not have the user table's id type cannot join its user:
/// refused at start-up, naming both columns.
#[tokio::test]
async fn mismatched_id_types_are_refused_naming_both_columns() {
    let Some(url) =
        common::fresh_pg_database("mismatched_id_types_are_refused_naming_both_columns").await
    else {
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(layouts::UUID[0]).execute(&pool).await.unwrap();
    sqlx::query(r#"create table "session" ("id" text not null primary key, "expiresAt" timestamptz not null, "token" text not null unique, "createdAt" timestamptz not null, "updatedAt" timestamptz not null, "ipAddress" text, "userAgent" text, "userId" text not null)"#)
        .execute(&pool)
        .await
        .unwrap();
    let err = PostgresStore::connect(&url).await.unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Schema(SchemaError::IdTypeMismatch { table, column, user_table, user_column })
                if table == "session" && column == "userId" && user_table == "user" && user_column == "id"
        ),
        "{err:?}"
    );
    // An id column of a type no layout uses is named with its type.
    sqlx::query(r#"drop table "session""#)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(r#"create table "session" ("id" bytea not null primary key, "expiresAt" timestamptz not null, "token" text not null unique, "createdAt" timestamptz not null, "updatedAt" timestamptz not null, "ipAddress" text, "userAgent" text, "userId" uuid not null)"#)
        .execute(&pool)
        .await
        .unwrap();
    let err = PostgresStore::connect(&url).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(r#"column "id" of table "session" has type bytea"#),
        "{err}"
    );
}

/// `infinity` (which Better Auth reads as a session that never expires) and years past 9999
/// in a timestamp column are read without a panic: sqlx's own decoding panicked on both, on
/// every request carrying such a session's cookie.
#[tokio::test]
async fn infinite_and_far_dates_are_read_without_a_panic() {
    let Some(store) = store("infinite_and_far_dates_are_read_without_a_panic").await else {
        return;
    };
    let user = store
        .insert_user(&User::new("inf@example.com", "I", conformance::NOW))
        .await
        .unwrap();
    let pool = store.pool();
    let insert = |token: &'static str, expires: &'static str| {
        sqlx::query(
            r#"insert into "session" ("id", "expiresAt", "token", "createdAt", "updatedAt", "userId") values ($1, $2::timestamptz, $1, now(), now(), $3)"#,
        )
        .bind(token)
        .bind(expires)
        .bind(user.id.clone())
        .execute(&pool)
    };
    insert("TokInfinity", "infinity").await.unwrap();
    let found = store
        .find(&StorageKey::new("TokInfinity"))
        .await
        .unwrap()
        .expect("a session that never expires");
    assert_eq!(found.session.expires_at.year(), 9999);
    // Listed like any live session, and never swept.
    let listed = store
        .list_user_sessions(&user.id, conformance::NOW)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(store.delete_expired(conformance::NOW).await.unwrap(), 0);

    insert("TokFar", "10000-01-01T00:00:00Z").await.unwrap();
    let far = store.find(&StorageKey::new("TokFar")).await;
    assert!(
        matches!(far, Err(StoreError::Corrupt { .. })),
        "not a date this crate holds: {far:?}"
    );
}

/// libpq's `connect_timeout` is taken out of the URL (sqlx warned and ignored it) and the store
/// starts; a value that is not whole seconds is refused, naming it.
#[tokio::test]
async fn connect_timeout_in_the_url_is_accepted() {
    let test = "connect_timeout_in_the_url_is_accepted";
    let Some(url) = common::fresh_pg_database(test).await else {
        return;
    };
    PostgresStore::builder(format!("{url}?connect_timeout=10"))
        .create_schema(true)
        .build()
        .await
        .unwrap();
    let err = PostgresStore::builder(format!("{url}?connect_timeout=soon"))
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("connect_timeout"), "{err}");
}

/// Plugin columns of types Better Auth's generator does not make but custom schemas do
/// (`numeric`, `date`) read as node-postgres hands them to Better Auth: the number's text, the
/// day's midnight. They read as null before.
#[tokio::test]
async fn numeric_and_date_columns_read_as_better_auth_sees_them() {
    let test = "numeric_and_date_columns_read_as_better_auth_sees_them";
    let Some(url) = common::fresh_pg_database(test).await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for ddl in [
        r#"create table "user" ("id" text not null primary key, "name" text not null, "email" text not null unique, "emailVerified" boolean not null, "image" text, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, "updatedAt" timestamptz default CURRENT_TIMESTAMP not null, "credits" numeric(12,2), "birthday" date, "ratio" numeric)"#,
        r#"create table "session" ("id" text not null primary key, "expiresAt" timestamptz not null, "token" text not null unique, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, "updatedAt" timestamptz not null, "ipAddress" text, "userAgent" text, "userId" text not null references "user" ("id") on delete cascade)"#,
        r#"insert into "user" values ('U1', 'Alice', 'alice@example.com', true, null, now(), now(), 12345678.5, '1990-05-17', -0.000120)"#,
        r#"insert into "session" values ('S1', now() + interval '7 days', 'Tok1', now(), now(), '', '', 'U1')"#,
    ] {
        sqlx::query(ddl).execute(&pool).await.unwrap();
    }
    let store = PostgresStore::connect(&url).await.unwrap();
    let found = store.find(&StorageKey::new("Tok1")).await.unwrap().unwrap();
    assert_eq!(found.user.extra["credits"], "12345678.50");
    assert_eq!(found.user.extra["birthday"], "1990-05-17T00:00:00.000Z");
    assert_eq!(found.user.extra["ratio"], "-0.000120");
}
