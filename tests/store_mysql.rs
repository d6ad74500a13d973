//! `MySqlStore` against a real MariaDB 10.11 (`TAS_TEST_MYSQL_URL`, started by
//! `scripts/test-all.sh`): the conformance suite on Better Auth's own MySQL DDL with text, uuid
//! and serial ids, Better Auth's row format, TLS, and the store creating its own schema.
#![cfg(feature = "mysql")]

mod common;
mod conformance;

use sqlx::Row;
use time::macros::datetime;
use tower_auth_session::store::{IdFormat, MySqlStore, SqlSchema};
use tower_auth_session::{SessionStore, StorageKey, User};

/// Better Auth 1.7.25's own MySQL DDL (`getMigrations().compileMigrations()` with mysql2, with
/// the admin and organization plugins), per id layout.
mod ddl {
    pub const TEXT: [&str; 3] = [
        "create table `user` (`id` varchar(36) not null primary key, `name` varchar(255) not null, `email` varchar(255) not null unique, `emailVerified` boolean not null, `image` text, `createdAt` timestamp(3) default CURRENT_TIMESTAMP(3) not null, `updatedAt` timestamp(3) default CURRENT_TIMESTAMP(3) not null, `role` text, `banned` boolean, `banReason` text, `banExpires` timestamp(3))",
        "create table `session` (`id` varchar(36) not null primary key, `expiresAt` timestamp(3) not null, `token` varchar(255) not null unique, `createdAt` timestamp(3) default CURRENT_TIMESTAMP(3) not null, `updatedAt` timestamp(3) not null, `ipAddress` text, `userAgent` text, `userId` varchar(36) not null references `user` (`id`) on delete cascade, `impersonatedBy` text, `activeOrganizationId` text)",
        "create index `session_userId_idx` on `session` (`userId`)",
    ];
    pub const SERIAL: [&str; 3] = [
        "create table `user` (`id` integer not null primary key auto_increment, `name` varchar(255) not null, `email` varchar(255) not null unique, `emailVerified` boolean not null, `image` text, `createdAt` timestamp(3) default CURRENT_TIMESTAMP(3) not null, `updatedAt` timestamp(3) default CURRENT_TIMESTAMP(3) not null, `role` text, `banned` boolean, `banReason` text, `banExpires` timestamp(3))",
        "create table `session` (`id` integer not null primary key auto_increment, `expiresAt` timestamp(3) not null, `token` varchar(255) not null unique, `createdAt` timestamp(3) default CURRENT_TIMESTAMP(3) not null, `updatedAt` timestamp(3) not null, `ipAddress` text, `userAgent` text, `userId` integer not null references `user` (`id`) on delete cascade, `impersonatedBy` text, `activeOrganizationId` text)",
        "create index `session_userId_idx` on `session` (`userId`)",
    ];
}

/// A fresh database on the test server (`params` appended to its URL), with `ddl` applied.
async fn database(test: &str, ddl: &[&str], params: &str) -> Option<String> {
    let url = common::fresh_mysql_database(test).await?;
    let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
    for statement in ddl {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    Some(format!("{url}{params}"))
}

async fn store(test: &str, ddl: &[&str], schema: SqlSchema) -> Option<MySqlStore> {
    let url = database(test, ddl, "").await?;
    Some(
        MySqlStore::builder(url)
            .schema(schema)
            .build()
            .await
            .unwrap(),
    )
}

mod text_ids {
    use super::*;
    conformance_suite!(store(
        "mysql conformance",
        &ddl::TEXT,
        SqlSchema::better_auth()
    ));
}

mod uuid_ids {
    use super::*;
    conformance_suite!(store(
        "mysql uuid conformance",
        &ddl::TEXT,
        SqlSchema::better_auth().ids(IdFormat::Uuid)
    ));
}

mod serial_ids {
    use super::*;
    conformance_suite!(store(
        "mysql serial conformance",
        &ddl::SERIAL,
        SqlSchema::better_auth()
    ));
}

mod created_schema {
    use super::*;
    async fn created(test: &str) -> Option<MySqlStore> {
        let url = database(test, &[], "").await?;
        Some(
            MySqlStore::builder(url)
                .create_schema(true)
                .build()
                .await
                .unwrap(),
        )
    }
    conformance_suite!(created("mysql created schema conformance"));
}

/// Rows as Better Auth's mysql2 writes them (`timestamp(3)` in UTC, `tinyint(1)` booleans,
/// plugin columns) are read, and the store's writes land in the same forms.
#[tokio::test]
async fn better_auth_rows_are_read_and_written() {
    let test = "mysql better_auth_rows_are_read_and_written";
    let Some(url) = database(test, &ddl::TEXT, "").await else {
        return;
    };
    let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
    for statement in [
        "insert into `user` values ('U1', 'Alice', 'alice@example.com', 1, null, '2026-11-22 12:50:00.395', '2026-11-22 12:50:00.395', 'admin,user', 0, null, null)",
        "insert into `session` values ('S1', '2026-11-29 12:50:00.395', 'Tok1', '2026-11-22 12:50:00.395', '2026-11-22 12:50:00.395', '', '', 'U1', null, null)",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let store = MySqlStore::connect(&url).await.unwrap();
    let found = store.find(&StorageKey::new("Tok1")).await.unwrap().unwrap();
    assert_eq!(found.session.id, "S1");
    assert_eq!(
        found.session.expires_at,
        datetime!(2026-11-29 12:50:00.395 UTC)
    );
    assert!(found.user.email_verified);
    assert_eq!(found.user.extra["role"], "admin,user");
    assert_eq!(found.user.extra["banned"], false);
    assert!(found.session.extra["impersonatedBy"].is_null());

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
        "select cast(`expiresAt` as char), cast(`updatedAt` as char), cast(`createdAt` as char) from `session`",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>(0), "2026-11-30 12:00:00.500");
    assert_eq!(row.get::<String, _>(1), "2026-11-23 12:00:00.500");
    assert_eq!(row.get::<String, _>(2), "2026-11-22 12:50:00.395");
}

/// Serial ids are assigned by the database and read as `String(n)`; uuid ids are v4 UUIDs.
#[tokio::test]
async fn serial_and_uuid_ids_are_written_as_better_auth_writes_them() {
    let test = "mysql serial_and_uuid_ids_are_written_as_better_auth_writes_them";
    let Some(serial) = store(test, &ddl::SERIAL, SqlSchema::better_auth()).await else {
        return;
    };
    assert_eq!(serial.id_format(), IdFormat::Serial);
    let user = serial
        .insert_user(&User::new("s@example.com", "S", conformance::NOW))
        .await
        .unwrap();
    assert_eq!(user.id, "1");
    let s = serial
        .create(
            &conformance::session(&user, conformance::NOW + time::Duration::days(1)),
            &user,
        )
        .await
        .unwrap();
    assert_eq!((s.id.as_str(), s.user_id.as_str()), ("1", "1"));

    let uuid = store(
        test,
        &ddl::TEXT,
        SqlSchema::better_auth().ids(IdFormat::Uuid),
    )
    .await
    .unwrap();
    let user = uuid
        .insert_user(&User::new("u@example.com", "U", conformance::NOW))
        .await
        .unwrap();
    assert_eq!(user.id.len(), 36, "{}", user.id);
    let s = uuid
        .create(
            &conformance::session(&user, conformance::NOW + time::Duration::days(1)),
            &user,
        )
        .await
        .unwrap();
    assert_eq!(&s.id[14..15], "4", "a version 4 UUID: {}", s.id);
}

/// TLS to MariaDB, verifying the harness's CA and the host name.
#[tokio::test]
async fn mysql_over_tls_verifies_the_certificate() {
    let test = "mysql_over_tls_verifies_the_certificate";
    let Some(ca) = common::server_url("TAS_TEST_TLS_CA", test) else {
        return;
    };
    let Some(url) = database(
        test,
        &ddl::TEXT,
        &format!("?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
    )
    .await
    else {
        return;
    };
    let store = MySqlStore::connect(&url).await.unwrap();
    conformance::find_returns_what_create_wrote(store).await;
    let untrusted = common::server_url("TAS_TEST_TLS_UNTRUSTED_CA", test).unwrap();
    let wrong = url.replace(&ca, &untrusted);
    let err = MySqlStore::connect(&wrong).await.unwrap_err().to_string();
    assert!(err.contains("TLS") && err.contains("ssl-ca"), "{err}");
}

/// A root certificate named in the URL without `ssl-mode` (or with `REQUIRED`) verifies the
/// chain, as the MySQL client does for `--ssl-ca`: sqlx loaded it and accepted any certificate.
#[tokio::test]
async fn an_ssl_ca_in_the_url_is_checked() {
    let test = "an_ssl_ca_in_the_url_is_checked";
    let Some(untrusted) = common::server_url("TAS_TEST_TLS_UNTRUSTED_CA", test) else {
        return;
    };
    for params in [
        format!("?ssl-ca={untrusted}"),
        format!("?ssl-mode=REQUIRED&ssl-ca={untrusted}"),
    ] {
        let Some(url) = database(test, &ddl::TEXT, &params).await else {
            return;
        };
        let err = MySqlStore::connect(&url).await.unwrap_err().to_string();
        assert!(err.contains("TLS"), "{params}: {err}");
    }
}

/// Under MariaDB's and MySQL's default collations `=` matches a token in another case or with
/// trailing spaces; the store answers only the token itself (a cache in front kept such a
/// spelling past the revocation of the real one).
#[tokio::test]
async fn a_token_matches_only_itself() {
    let test = "a_token_matches_only_itself";
    let Some(store) = store(test, &ddl::TEXT, SqlSchema::better_auth()).await else {
        return;
    };
    let user = store
        .insert_user(&User::new("case@example.com", "C", conformance::NOW))
        .await
        .unwrap();
    let s = conformance::session(&user, conformance::NOW + time::Duration::days(7));
    let s = store.create(&s, &user).await.unwrap();
    assert!(store.find(&s.storage_key()).await.unwrap().is_some());
    for variant in [
        s.token.to_uppercase(),
        s.token.to_lowercase(),
        format!("{} ", s.token),
    ] {
        let key = StorageKey::new(variant.as_str());
        assert!(store.find(&key).await.unwrap().is_none(), "{variant:?}");
        assert!(
            store.find_many(&[key]).await.unwrap()[0].is_none(),
            "{variant:?}"
        );
    }
}

/// `DECIMAL` and `DATE` plugin columns read as mysql2 hands them to Better Auth: the number's
/// text, the day's midnight. They read as null before.
#[tokio::test]
async fn decimal_and_date_columns_read_as_better_auth_sees_them() {
    let test = "decimal_and_date_columns_read_as_better_auth_sees_them";
    let Some(url) = database(
        test,
        &[
            "create table `user` (`id` varchar(36) not null primary key, `name` varchar(255) not null, `email` varchar(255) not null unique, `emailVerified` boolean not null, `image` text, `createdAt` timestamp(3) default CURRENT_TIMESTAMP(3) not null, `updatedAt` timestamp(3) default CURRENT_TIMESTAMP(3) not null, `credits` decimal(12,2), `birthday` date)",
            "create table `session` (`id` varchar(36) not null primary key, `expiresAt` timestamp(3) not null, `token` varchar(255) not null unique, `createdAt` timestamp(3) default CURRENT_TIMESTAMP(3) not null, `updatedAt` timestamp(3) not null, `ipAddress` text, `userAgent` text, `userId` varchar(36) not null references `user` (`id`) on delete cascade)",
            "insert into `user` values ('U1', 'Alice', 'alice@example.com', true, null, now(3), now(3), 12345678.5, '1990-05-17')",
            "insert into `session` values ('S1', now(3) + interval 7 day, 'Tok1', now(3), now(3), '', '', 'U1')",
        ],
        "",
    )
    .await
    else {
        return;
    };
    let store = MySqlStore::connect(&url).await.unwrap();
    let found = store.find(&StorageKey::new("Tok1")).await.unwrap().unwrap();
    assert_eq!(found.user.extra["credits"], "12345678.50");
    assert_eq!(found.user.extra["birthday"], "1990-05-17T00:00:00.000Z");
}

/// A lookup waits on a lock past the store's deadline (`LOCK TABLES … WRITE`, a migration
/// holding the session table). The store gives up on it; the server must too: a thread waiting
/// on a metadata lock counts its client as connected while the client's goodbye sits unread,
/// and `lock_wait_timeout` is a year by default, so every such request left one thread waiting
/// until `max_connections` refused everyone.
#[tokio::test]
async fn a_lock_wait_past_the_deadline_is_given_up_by_the_server() {
    use sqlx::Connection as _;
    let test = "a_lock_wait_past_the_deadline_is_given_up_by_the_server";
    let Some(url) = database(test, &ddl::TEXT, "").await else {
        return;
    };
    let store = MySqlStore::connect(&url).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let user = store
        .insert_user(&User::new("locked@example.com", "L", now))
        .await
        .unwrap();
    let session = conformance::session(&user, now + time::Duration::days(1));
    store.create(&session, &user).await.unwrap();
    let mut locker = sqlx::MySqlConnection::connect(&url).await.unwrap();
    let locker_id: u64 = sqlx::query_scalar("select connection_id()")
        .fetch_one(&mut locker)
        .await
        .unwrap();
    sqlx::raw_sql("lock tables `session` write, `user` write")
        .execute(&mut locker)
        .await
        .unwrap();
    assert!(
        store.find(&session.storage_key()).await.is_err(),
        "the lock held it"
    );
    let admin = sqlx::MySqlPool::connect(&url).await.unwrap();
    common::until(
        "a server thread still waits on the lock for a request given up",
        std::time::Duration::from_secs(10),
        || async {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from information_schema.processlist \
                 where db = database() and id <> ? and state like 'Waiting for%lock%'",
            )
            .bind(locker_id)
            .fetch_one(&admin)
            .await
            .unwrap()
                == 0
        },
    )
    .await;
    sqlx::raw_sql("unlock tables")
        .execute(&mut locker)
        .await
        .unwrap();
    assert!(store.find(&session.storage_key()).await.unwrap().is_some());
}
