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
