//! A MariaDB whose default `time_zone` is not UTC. Better Auth's `mysql2` connections keep the
//! server's zone, and MySQL converts `timestamp` values through each session's zone, so the
//! store (on `+00:00` by default) read Better Auth's dates two hours early here, without a
//! word. It now names the difference at start-up, and `time_zone` set to the server's reads
//! them as Better Auth does.
//!
//! `time_zone` is a global setting: this binary holds this one test (test binaries run one
//! after another), and the setting is put back when it ends, even on failure.
#![cfg(feature = "mysql")]

mod common;

use std::str::FromStr as _;

use common::Captured;
use sqlx::Connection as _;
use time::macros::datetime;
use tower_auth_session::store::MySqlStore;
use tower_auth_session::{SessionStore, StorageKey};

/// `set global time_zone = …` through `admin`, put back on drop.
struct GlobalZone {
    admin: String,
    before: String,
}

async fn set_zone(admin: &str, zone: &str) -> String {
    let pool = sqlx::MySqlPool::connect(admin).await.unwrap();
    let before: String = sqlx::query_scalar("select cast(@@global.time_zone as char)")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query(&format!("set global time_zone = '{zone}'"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    before
}

impl GlobalZone {
    async fn set(admin: &str, zone: &str) -> Self {
        let before = set_zone(admin, zone).await;
        Self {
            admin: admin.to_owned(),
            before,
        }
    }
}

impl Drop for GlobalZone {
    fn drop(&mut self) {
        // Drop cannot await: a runtime of its own, on a thread of its own.
        let (admin, before) = (self.admin.clone(), self.before.clone());
        let reset = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(set_zone(&admin, &before));
        })
        .join();
        if reset.is_err() {
            eprintln!("could not put MariaDB's time_zone back: later MySQL tests may fail");
        }
    }
}

#[test]
fn a_server_zone_other_than_the_stores_is_named_and_time_zone_mends_it() {
    let test = "a_server_zone_other_than_the_stores_is_named_and_time_zone_mends_it";
    if common::server_url("TAS_TEST_MYSQL_URL", test).is_none() {
        return;
    }
    let captured = Captured::default();
    captured.run(tracing::Level::WARN, async {
        let url = common::fresh_mysql_database(test).await.unwrap();
        let _zone = GlobalZone::set(&url, "+02:00").await;
        let store = MySqlStore::builder(&url)
            .create_schema(true)
            .build()
            .await
            .unwrap();
        // As Better Auth writes with mysql2 (`timezone: "Z"`): UTC wall-clock time, on a
        // connection in the server's zone.
        let options = sqlx::mysql::MySqlConnectOptions::from_str(&url)
            .unwrap()
            .timezone(None::<String>);
        let mut better_auth = sqlx::MySqlConnection::connect_with(&options).await.unwrap();
        for row in [
            "insert into `user` (`id`, `name`, `email`, `emailVerified`, `createdAt`, `updatedAt`) \
             values ('U1', 'Zoe', 'zoe@example.com', 0, '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000')",
            "insert into `session` (`id`, `expiresAt`, `token`, `createdAt`, `updatedAt`, `userId`) \
             values ('S1', '2030-01-01 12:00:00.000', 'TokZone', '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000', 'U1')",
        ] {
            sqlx::raw_sql(row).execute(&mut better_auth).await.unwrap();
        }
        let key = StorageKey::new("TokZone");
        let read = store.find(&key).await.unwrap().unwrap();
        assert_eq!(
            read.session.expires_at,
            datetime!(2030-01-01 10:00 UTC),
            "the default zone reads it two hours early (what the warning says)"
        );
        let mended = MySqlStore::builder(&url)
            .time_zone("+02:00")
            .build()
            .await
            .unwrap();
        let read = mended.find(&key).await.unwrap().unwrap();
        assert_eq!(read.session.expires_at, datetime!(2030-01-01 12:00 UTC));
    });
    let logs = captured.take();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("minutes_apart"))
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(
        warnings[0].contains("minutes_apart=120") && warnings[0].contains("time_zone"),
        "{logs}"
    );
}
