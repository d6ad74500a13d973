//! A PostgreSQL store pointed at a server that takes no writes (a standby, or one with
//! `default_transaction_read_only`) starts, since reads work there, but says once at start-up
//! that sign-in, refresh and sign-out will fail and what to change. One test in its own binary:
//! `tracing` caches callsite interest process-wide. It owns a primary and a streaming standby.
#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use common::servers::Postgres;
use common::Captured;
use tower_auth_session::store::PostgresStore;

#[tokio::test]
async fn a_store_on_a_server_that_takes_no_writes_says_so_at_start_up() {
    let test = "a_store_on_a_server_that_takes_no_writes_says_so_at_start_up";
    let Some(primary) = Postgres::start(test) else {
        return;
    };
    // The schema first, on the primary; the standby replays it.
    PostgresStore::builder(primary.url())
        .create_schema(true)
        .build()
        .await
        .unwrap();
    let standby = primary.standby();
    let captured = Captured::default();
    let subscriber = captured.subscriber(tracing::Level::WARN);
    let _guard = tracing::subscriber::set_default(subscriber);

    // On the primary: nothing to say.
    PostgresStore::builder(primary.url())
        .timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let logs = captured.take();
    assert!(!logs.contains("takes no writes"), "{logs}");
    assert!(!logs.contains("without time zone"), "{logs}");

    // Dates in `timestamp without time zone` (Better Auth's migrations before 1.3), which
    // node-postgres fills in the Node process's local time: named at start-up.
    let admin = sqlx::PgPool::connect(&primary.url()).await.unwrap();
    sqlx::query("create database old_dates")
        .execute(&admin)
        .await
        .unwrap();
    let (server, _) = primary
        .url()
        .rsplit_once('/')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .unwrap();
    let old = format!("{server}/old_dates");
    let pool = sqlx::PgPool::connect(&old).await.unwrap();
    for ddl in [
        r#"create table "user" ("id" text not null primary key, "name" text not null, "email" text not null unique, "emailVerified" boolean not null, "image" text, "createdAt" timestamp not null, "updatedAt" timestamp not null)"#,
        r#"create table "session" ("id" text not null primary key, "expiresAt" timestamp not null, "token" text not null unique, "createdAt" timestamp not null, "updatedAt" timestamp not null, "ipAddress" text, "userAgent" text, "userId" text not null references "user" ("id") on delete cascade)"#,
    ] {
        sqlx::query(ddl).execute(&pool).await.unwrap();
    }
    PostgresStore::connect(&old).await.unwrap();
    let logs = captured.take();
    assert_eq!(logs.matches("without time zone").count(), 1, "{logs}");
    assert!(
        logs.contains("TZ=UTC") && logs.contains("timestamptz"),
        "{logs}"
    );

    // On the standby: it starts (reads work there), and says what to change.
    let standby_url = standby.url();
    common::until(
        "the standby has replayed the schema",
        Duration::from_secs(10),
        || async {
            PostgresStore::builder(standby_url.as_str())
                .timeout(Duration::from_secs(1))
                .build()
                .await
                .is_ok()
        },
    )
    .await;
    let logs = captured.take();
    assert_eq!(logs.matches("takes no writes").count(), 1, "{logs}");
    assert!(logs.contains("target_session_attrs=read-write"), "{logs}");
    assert!(
        logs.contains(&format!("127.0.0.1:{}", standby.port)),
        "{logs}"
    );
}
