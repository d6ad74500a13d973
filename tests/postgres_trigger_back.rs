//! A PostgreSQL change feed that may not create its trigger (`create_trigger(false)`) finds it
//! gone (a migration recreated the session table); someone else puts it back (another
//! instance's feed, an operator running `ddl()`). The changes made meanwhile were missed, so
//! the feed drops every cached session once it sees the trigger again, as it does for a
//! trigger that was disabled. One test in its own binary: it waits for the feed's log line
//! (`tracing` caches callsite interest process-wide).
#![cfg(all(feature = "postgres", feature = "cache"))]

mod common;

use std::time::{Duration, Instant};

use common::Captured;
use tower_auth_session::store::{CachedStore, PostgresStore};
use tower_auth_session::{SessionStore, User};

#[tokio::test]
async fn a_trigger_someone_else_puts_back_drops_the_cache() {
    let test = "a_trigger_someone_else_puts_back_drops_the_cache";
    let Some(url) = common::fresh_pg_database(test).await else {
        return;
    };
    let captured = Captured::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber(tracing::Level::WARN));
    let store = PostgresStore::builder(url.as_str())
        .create_schema(true)
        .build()
        .await
        .unwrap();
    let ddl = store.session_changes().ddl().unwrap();
    let other = sqlx::PgPool::connect(&url).await.unwrap();
    for statement in &ddl {
        sqlx::raw_sql(statement).execute(&other).await.unwrap();
    }
    let changes = store
        .session_changes()
        .check_triggers_every(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let cached = CachedStore::builder(store.clone())
        .ttl(Duration::from_secs(600))
        .watch(changes.clone())
        .build();
    let user = store
        .insert_user(&User::new("put-back@example.com", "P", common::now()))
        .await
        .unwrap();
    let s = store
        .create(&common::live_session(&user.id), &user)
        .await
        .unwrap();
    assert!(cached.find(&s.storage_key()).await.unwrap().is_some());

    sqlx::raw_sql(r#"drop trigger "tas_session_changes" on "session""#)
        .execute(&other)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut logs = String::new();
    while !logs.contains("the session change trigger does not fire") {
        assert!(
            Instant::now() < deadline,
            "the missing trigger was not named: {logs}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        logs.push_str(&captured.take());
    }
    // Revoked while nothing reports it...
    sqlx::query(r#"delete from "session" where "token" = $1"#)
        .bind(&s.token)
        .execute(&other)
        .await
        .unwrap();
    assert!(cached.find_now(&s.storage_key()).is_some(), "not heard");
    // ...and the trigger put back by someone else.
    let session_trigger = &ddl[1];
    assert!(
        session_trigger.starts_with("create trigger"),
        "{session_trigger}"
    );
    let mut applied = changes.applied();
    common::reported(
        &mut applied,
        Duration::from_secs(10),
        "the feed did not drop its cache once the trigger was back",
        async {
            sqlx::raw_sql(session_trigger)
                .execute(&other)
                .await
                .unwrap();
        },
    )
    .await;
    assert!(
        cached.find_now(&s.storage_key()).is_none(),
        "a session revoked while the trigger was missing is still served"
    );
}
