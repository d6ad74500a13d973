//! `RedisStore` against a real server (`TAS_TEST_REDIS_URL`): the conformance suite alone and
//! in front of PostgreSQL, and Better Auth's exact key shapes.
#![cfg(feature = "redis")]

mod common;
mod conformance;

use conformance::{Harness, NOW};
use redis::AsyncCommands;
use time::Duration;
use tower_auth_session::store::RedisStore;
use tower_auth_session::{ManualClock, SessionStore, User};

async fn redis(test: &str) -> Option<RedisStore> {
    let url = common::server_url("TAS_TEST_REDIS_URL", test)?;
    // Two seconds before the suite's "now", so sessions expiring at NOW are still stored.
    Some(
        RedisStore::builder(url)
            .key_prefix(common::redis_prefix())
            .clock(ManualClock::new(NOW - Duration::seconds(2)))
            .build()
            .await
            .unwrap(),
    )
}

conformance_suite!(redis("redis conformance"));

mod in_front_of_postgres {
    #![cfg(feature = "postgres")]
    use super::*;
    use tower_auth_session::store::{PostgresStore, RedisWithDatabase};

    impl Harness for RedisWithDatabase<PostgresStore> {
        async fn add_user(&self, user: &User) -> User {
            self.database().insert_user(user).await.unwrap()
        }
        async fn remove_user(&self, id: &str) {
            self.delete_user_sessions(id).await.unwrap();
            self.database().delete_user(id).await.unwrap();
        }
        /// Rows are swept, but Redis keeps an expired key until its TTL, and lookups read
        /// Redis first; the layer rejects (and deletes) it on sight.
        fn sweeps(&self) -> bool {
            false
        }
    }

    async fn tiered(test: &str) -> Option<RedisWithDatabase<PostgresStore>> {
        let redis = redis(test).await?;
        let url = common::fresh_pg_database(test).await?;
        let pg = PostgresStore::builder(url)
            .create_schema(true)
            .build()
            .await
            .unwrap();
        Some(redis.in_front_of(pg))
    }

    conformance_suite!(tiered("redis in front of postgres conformance"));
}

#[tokio::test]
async fn keys_have_better_auths_shapes_and_ttls() {
    let Some(url) = common::server_url(
        "TAS_TEST_REDIS_URL",
        "keys_have_better_auths_shapes_and_ttls",
    ) else {
        return;
    };
    let prefix = common::redis_prefix();
    let clock = ManualClock::new(NOW);
    let store = RedisStore::builder(&url)
        .key_prefix(&prefix)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let user = User::new("rita@example.com", "Rita", NOW);
    let late = conformance::session(&user, NOW + Duration::days(7));
    let early = conformance::session(&user, NOW + Duration::days(2));
    store.create(&late, &user).await.unwrap();
    store.create(&early, &user).await.unwrap();

    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let value: String = conn.get(format!("{prefix}{}", late.token)).await.unwrap();
    let expected = format!(
        r#"{{"session":{{"id":"{}","ipAddress":"127.0.0.1","userAgent":"conformance/1.0","expiresAt":"2026-11-30T12:00:00.123Z","userId":"{}","token":"{}","createdAt":"2026-11-23T12:00:00.123Z","updatedAt":"2026-11-23T12:00:00.123Z"}},"user":{{"name":"Rita","email":"rita@example.com","emailVerified":false,"image":null,"createdAt":"2026-11-23T12:00:00.123Z","updatedAt":"2026-11-23T12:00:00.123Z","id":"{}"}}}}"#,
        late.id, user.id, late.token, user.id
    );
    assert_eq!(value, expected);
    let ttl: i64 = conn.ttl(format!("{prefix}{}", late.token)).await.unwrap();
    assert!((604_790..=604_800).contains(&ttl), "{ttl}");

    let list: String = conn
        .get(format!("{prefix}active-sessions-{}", user.id))
        .await
        .unwrap();
    assert_eq!(
        list,
        format!(
            r#"[{{"token":"{}","expiresAt":{}}},{{"token":"{}","expiresAt":{}}}]"#,
            early.token,
            tower_auth_session::test_support::to_unix_ms(early.expires_at),
            late.token,
            tower_auth_session::test_support::to_unix_ms(late.expires_at)
        ),
        "earliest expiry first"
    );
    let ttl: i64 = conn
        .ttl(format!("{prefix}active-sessions-{}", user.id))
        .await
        .unwrap();
    assert!(
        (604_790..=604_800).contains(&ttl),
        "list TTL follows the latest expiry: {ttl}"
    );

    // Refresh rewrites only expiresAt and updatedAt, in place, with a new TTL.
    let now = NOW + Duration::days(1);
    clock.set(now);
    store
        .extend(&late.storage_key(), now + Duration::days(7), now)
        .await
        .unwrap()
        .unwrap();
    let refreshed: String = conn.get(format!("{prefix}{}", late.token)).await.unwrap();
    assert_eq!(
        refreshed,
        expected
            .replace(
                r#""expiresAt":"2026-11-30T12:00:00.123Z""#,
                r#""expiresAt":"2026-12-01T12:00:00.123Z""#
            )
            .replacen(
                r#""updatedAt":"2026-11-23T12:00:00.123Z""#,
                r#""updatedAt":"2026-11-24T12:00:00.123Z""#,
                1
            )
    );

    // Revoke-all writes the marker with max(expiresIn, 1 day) TTL and removes everything else.
    assert_eq!(store.delete_user_sessions(&user.id).await.unwrap(), 2);
    let marker: String = conn
        .get(format!("{prefix}revoked-sessions-before-{}", user.id))
        .await
        .unwrap();
    assert_eq!(
        marker,
        tower_auth_session::test_support::to_unix_ms(now).to_string()
    );
    let ttl: i64 = conn
        .ttl(format!("{prefix}revoked-sessions-before-{}", user.id))
        .await
        .unwrap();
    assert!((604_790..=604_800).contains(&ttl), "{ttl}");
    let left: Vec<String> = conn.keys(format!("{prefix}*")).await.unwrap();
    assert_eq!(
        left,
        vec![format!("{prefix}revoked-sessions-before-{}", user.id)]
    );
}

#[tokio::test]
async fn revoked_before_marker_rejects_surviving_keys() {
    let Some(url) = common::server_url(
        "TAS_TEST_REDIS_URL",
        "revoked_before_marker_rejects_surviving_keys",
    ) else {
        return;
    };
    let prefix = common::redis_prefix();
    let store = RedisStore::builder(&url)
        .key_prefix(&prefix)
        .clock(ManualClock::new(NOW))
        .build()
        .await
        .unwrap();
    let user = User::new("m@example.com", "M", NOW);
    let s = conformance::session(&user, NOW + Duration::days(7));
    store.create(&s, &user).await.unwrap();
    // Another writer (a racing Better Auth instance) revoked at a later instant without
    // deleting our key: the marker alone must reject it.
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let marker = tower_auth_session::test_support::to_unix_ms(NOW) + 1;
    let _: () = conn
        .set(
            format!("{prefix}revoked-sessions-before-{}", user.id),
            marker.to_string(),
        )
        .await
        .unwrap();
    assert!(store.find(&s.storage_key()).await.unwrap().is_none());
    assert!(store
        .extend(&s.storage_key(), NOW + Duration::days(8), NOW)
        .await
        .unwrap()
        .is_none());
}
