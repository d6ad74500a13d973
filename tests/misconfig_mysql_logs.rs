//! A MySQL session table whose `expiresAt` updates itself (`ON UPDATE CURRENT_TIMESTAMP`, what
//! MariaDB before 10.10 and MySQL with `explicit_defaults_for_timestamp` off make of Better
//! Auth's migration) works, but every update that does not set it ends the session: the store
//! says so once at start-up, with the fix. One test in its own binary: `tracing` caches
//! callsite interest process-wide.
#![cfg(feature = "mysql")]

mod common;

use common::Captured;
use tower_auth_session::store::MySqlStore;

#[tokio::test]
async fn an_expiry_that_updates_itself_is_named_at_start_up() {
    let test = "an_expiry_that_updates_itself_is_named_at_start_up";
    let Some(url) = common::fresh_mysql_database(test).await else {
        return;
    };
    let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
    for statement in [
        "create table `user` (`id` varchar(36) not null primary key, `name` varchar(255) not null, `email` varchar(255) not null unique, `emailVerified` boolean not null, `image` text, `createdAt` timestamp(3) default CURRENT_TIMESTAMP(3) not null, `updatedAt` timestamp(3) default CURRENT_TIMESTAMP(3) not null)",
        "create table `session` (`id` varchar(36) not null primary key, `expiresAt` timestamp(3) not null default CURRENT_TIMESTAMP(3) on update CURRENT_TIMESTAMP(3), `token` varchar(255) not null unique, `createdAt` timestamp(3) default CURRENT_TIMESTAMP(3) not null, `updatedAt` timestamp(3) not null, `ipAddress` text, `userAgent` text, `userId` varchar(36) not null references `user` (`id`) on delete cascade)",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let captured = Captured::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber(tracing::Level::WARN));

    MySqlStore::connect(&url).await.unwrap();
    let logs = captured.take();
    assert_eq!(logs.matches("updates itself").count(), 1, "{logs}");
    assert!(logs.contains("default current_timestamp(3)"), "{logs}");

    // Fixed as the warning says: nothing to say.
    sqlx::query("alter table `session` modify `expiresAt` timestamp(3) not null default current_timestamp(3)")
        .execute(&pool)
        .await
        .unwrap();
    MySqlStore::connect(&url).await.unwrap();
    let logs = captured.take();
    assert!(!logs.contains("updates itself"), "{logs}");
}
