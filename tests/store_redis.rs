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

/// A store with a key prefix of its own, the prefix, and a plain connection to the same server:
/// for tests that read or write Better Auth's keys behind the store's back.
struct Raw<C> {
    store: RedisStore,
    prefix: String,
    conn: C,
}

/// [`Raw`] on the single node (`TAS_TEST_REDIS_URL`), the store on `clock`.
async fn raw_node(
    test: &str,
    clock: ManualClock,
) -> Option<Raw<redis::aio::MultiplexedConnection>> {
    let url = common::server_url("TAS_TEST_REDIS_URL", test)?;
    let prefix = common::redis_prefix();
    let store = RedisStore::builder(&url)
        .key_prefix(&prefix)
        .clock(clock)
        .build()
        .await
        .unwrap();
    let conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    Some(Raw {
        store,
        prefix,
        conn,
    })
}

/// [`Raw`] on the Redis Cluster (`TAS_TEST_REDIS_CLUSTER_URLS`), the store on `clock`.
async fn raw_cluster(
    test: &str,
    clock: ManualClock,
) -> Option<Raw<redis::cluster_async::ClusterConnection>> {
    let urls = common::server_url("TAS_TEST_REDIS_CLUSTER_URLS", test)?;
    let prefix = common::redis_prefix();
    let store = RedisStore::cluster_builder(urls.split(','))
        .key_prefix(&prefix)
        .clock(clock)
        .build()
        .await
        .unwrap();
    assert!(store.is_cluster());
    let client = redis::cluster::ClusterClient::new(urls.split(',').collect::<Vec<_>>()).unwrap();
    let conn = client.get_async_connection().await.unwrap();
    Some(Raw {
        store,
        prefix,
        conn,
    })
}

/// Writes `user_id`'s revoked-before marker one millisecond after `NOW` without deleting any
/// key, as another writer (a racing Better Auth instance) may: the marker alone must reject
/// the user's older sessions.
async fn revoke_behind_the_store<C>(conn: &mut C, prefix: &str, user_id: &str)
where
    C: redis::aio::ConnectionLike + Send + Sync,
{
    let marker = tower_auth_session::test_support::to_unix_ms(NOW) + 1;
    let _: () = conn
        .set(
            format!("{prefix}revoked-sessions-before-{user_id}"),
            marker.to_string(),
        )
        .await
        .unwrap();
}

mod in_front_of_postgres {
    #![cfg(feature = "postgres")]
    use super::*;
    use tower_auth_session::store::{PostgresStore, RedisWithDatabase};
    use tower_auth_session::StorageKey;

    impl Harness for RedisWithDatabase<PostgresStore> {
        async fn add_user(&self, user: &User) -> User {
            self.database().insert_user(user).await.unwrap()
        }
        async fn delete_user_row(&self, id: &str) {
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

    #[tokio::test]
    async fn find_many_falls_back_to_the_database_for_what_redis_lacks() {
        let Some(store) = tiered("tiered find_many fallback").await else {
            return;
        };
        let user = store.add_user(&conformance::user("tiered")).await;
        let both = store
            .create(&conformance::session(&user, NOW + Duration::days(7)), &user)
            .await
            .unwrap();
        let row_only = store
            .create(&conformance::session(&user, NOW + Duration::days(7)), &user)
            .await
            .unwrap();
        // Gone from Redis (its TTL ran out, say), still a row in the database.
        store.redis().delete(&row_only.storage_key()).await.unwrap();
        let keys = [
            row_only.storage_key(),
            StorageKey::new("no-such-token"),
            both.storage_key(),
        ];
        let found = store.find_many(&keys).await.unwrap();
        let tokens: Vec<Option<&str>> = found
            .iter()
            .map(|f| f.as_ref().map(|a| a.session.token.as_str()))
            .collect();
        assert_eq!(
            tokens,
            [
                Some(row_only.token.as_str()),
                None,
                Some(both.token.as_str())
            ]
        );
        for (key, answer) in keys.iter().zip(&found) {
            let by_find = store.find(key).await.unwrap();
            assert_eq!(
                answer.as_ref().map(|a| &a.session.id),
                by_find.as_ref().map(|a| &a.session.id)
            );
        }
    }

    /// An unreadable value in Redis is skipped by `find_many`, as Better Auth's `findSessions`
    /// skips it, and not looked for in the database either (nor does Better Auth look).
    #[tokio::test]
    async fn find_many_does_not_look_up_an_unreadable_value_in_the_database() {
        let test = "find_many_does_not_look_up_an_unreadable_value_in_the_database";
        let Some(Raw {
            store,
            prefix,
            mut conn,
        }) = raw_node(test, ManualClock::new(NOW)).await
        else {
            return;
        };
        let Some(url) = common::fresh_pg_database(test).await else {
            return;
        };
        let pg = PostgresStore::builder(url)
            .create_schema(true)
            .build()
            .await
            .unwrap();
        let store = store.in_front_of(pg);
        let user = store.add_user(&conformance::user("unreadable")).await;
        let s = store
            .create(&conformance::session(&user, NOW + Duration::days(7)), &user)
            .await
            .unwrap();
        let _: () = conn
            .set(format!("{prefix}{}", s.token), "not json")
            .await
            .unwrap();
        let found = store.find_many(&[s.storage_key()]).await.unwrap();
        assert!(found[0].is_none(), "read from the database row instead");
    }

    /// A session only Redis holds (signed in before `storeSessionInDatabase` was turned on) is
    /// refreshed, as Better Auth refreshes secondary storage whatever the table says; it was
    /// never extended, and its user signed out at its first expiry however active.
    #[tokio::test]
    async fn a_session_only_redis_holds_is_refreshed() {
        let Some(store) = tiered("tiered redis-only refresh").await else {
            return;
        };
        let user = store.add_user(&conformance::user("redis-only")).await;
        let session = conformance::session(&user, NOW + Duration::days(1));
        store.redis().create(&session, &user).await.unwrap();
        let later = NOW + Duration::days(7);
        let extended = store
            .extend(&session.storage_key(), later, NOW)
            .await
            .unwrap();
        assert_eq!(extended.map(|s| s.expires_at), Some(later));
        let found = store.find(&session.storage_key()).await.unwrap().unwrap();
        assert_eq!(found.session.expires_at, later);
    }

    /// Better Auth's `preserveSessionInDatabase`.
    mod preserving {
        use super::*;

        async fn preserving(test: &str) -> Option<RedisWithDatabase<PostgresStore>> {
            Some(tiered(test).await?.preserve_in_database())
        }

        conformance_suite!(preserving(
            "redis in front of postgres, preserving, conformance"
        ));

        /// `health_check`'s probe is purged, not kept ended: a probe every 10 s would otherwise
        /// add thousands of rows a day to the audit trail.
        #[tokio::test]
        async fn the_health_check_leaves_no_row() {
            let test = "preserving health check";
            let Some(redis) = redis(test).await else {
                return;
            };
            let Some(url) = common::fresh_pg_database(test).await else {
                return;
            };
            let pg = PostgresStore::builder(url.clone())
                .create_schema(true)
                .build()
                .await
                .unwrap();
            let store = redis.in_front_of(pg).preserve_in_database();
            let user = store.add_user(&conformance::user("probe")).await;
            let config = tower_auth_session::SessionConfig::builder()
                .secret(common::SECRET)
                .build()
                .unwrap();
            let manager = tower_auth_session::SessionManager::new(config, store);
            manager.health_check(&user).await.unwrap();
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let rows: i64 = sqlx::query_scalar(r#"select count(*) from "session""#)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(rows, 0);
        }

        /// Sign-outs and revocations delete the Redis key and end the row (its expiry set to
        /// the store's now) rather than deleting it; lookups do not fall back to the table;
        /// sweeps leave the rows; lists read Redis. Before, every one of these deleted the
        /// audit rows a Better Auth server set to preserve them keeps.
        #[tokio::test]
        async fn ended_sessions_keep_their_rows_and_lookups_read_redis_only() {
            let Some(store) = preserving("preserving ends rows").await else {
                return;
            };
            // The store's clock (see `redis`).
            let now = NOW - Duration::seconds(2);
            let user = store.add_user(&conformance::user("preserved")).await;
            let mut sessions = Vec::new();
            for _ in 0..3 {
                let s = conformance::session(&user, NOW + Duration::days(7));
                sessions.push(store.create(&s, &user).await.unwrap());
            }
            let [a, b, c] = <[_; 3]>::try_from(sessions).unwrap();
            let row = |s: &tower_auth_session::Session| {
                let (db, key) = (store.database().clone(), s.storage_key().into_owned());
                async move { db.find(&key).await.unwrap().map(|f| f.session.expires_at) }
            };

            store.delete(&a.storage_key()).await.unwrap();
            assert!(store.find(&a.storage_key()).await.unwrap().is_none());
            assert_eq!(row(&a).await, Some(now), "the row is kept, ended");

            // A row Redis no longer has is not read back from the table.
            store.redis().delete(&b.storage_key()).await.unwrap();
            assert!(store.find(&b.storage_key()).await.unwrap().is_none());
            let many = store
                .find_many(&[b.storage_key(), c.storage_key()])
                .await
                .unwrap();
            assert_eq!(
                many.iter().map(Option::is_some).collect::<Vec<_>>(),
                [false, true]
            );

            let d = conformance::session(&user, NOW + Duration::days(3));
            let d = store.create(&d, &user).await.unwrap();
            store.redis().delete(&c.storage_key()).await.unwrap();
            let listed = store.list_user_sessions(&user.id, NOW).await.unwrap();
            assert_eq!(
                listed.iter().map(|s| &s.token).collect::<Vec<_>>(),
                [&d.token],
                "the list is Redis's"
            );

            store.delete_user_sessions(&user.id).await.unwrap();
            for s in [&b, &c, &d] {
                assert_eq!(row(s).await, Some(now), "revoke-all ends the rows");
            }
            assert_eq!(
                store
                    .delete_expired(NOW + Duration::days(30))
                    .await
                    .unwrap(),
                0
            );
            assert_eq!(
                store
                    .delete_expired_batch(NOW + Duration::days(30), 10)
                    .await
                    .unwrap(),
                0
            );
            store
                .delete_if_expired(&a.storage_key(), NOW + Duration::days(30))
                .await
                .unwrap();
            for s in [&a, &b, &c, &d] {
                assert_eq!(row(s).await, Some(now), "sweeps leave the rows");
            }
        }
    }
}

#[tokio::test]
async fn keys_have_better_auths_shapes_and_ttls() {
    let clock = ManualClock::new(NOW);
    let Some(Raw {
        store,
        prefix,
        mut conn,
    }) = raw_node("keys_have_better_auths_shapes_and_ttls", clock.clone()).await
    else {
        return;
    };
    let user = User::new("rita@example.com", "Rita", NOW);
    let late = conformance::session(&user, NOW + Duration::days(7));
    let early = conformance::session(&user, NOW + Duration::days(2));
    store.create(&late, &user).await.unwrap();
    store.create(&early, &user).await.unwrap();

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

/// A sign-in writes the session with the user's stored row, read again once a lapsed ban is
/// lifted (as Better Auth reads the user for secondary storage), not the row the caller had:
/// Redis held `banned: true` for the session's lifetime before.
#[tokio::test]
async fn a_sign_in_stores_the_users_row_as_the_ban_lift_left_it() {
    let test = "a_sign_in_stores_the_users_row_as_the_ban_lift_left_it";
    let Some(Raw {
        store,
        prefix,
        mut conn,
    }) = raw_node(test, ManualClock::new(NOW)).await
    else {
        return;
    };
    let memory = tower_auth_session::MemoryStore::new();
    let mut user = User::new("lifted@example.com", "L", NOW - Duration::days(3));
    user.extra.insert("banned".into(), true.into());
    user.extra.insert("banReason".into(), "spam".into());
    user.extra.insert(
        "banExpires".into(),
        tower_auth_session::test_support::to_iso(NOW - Duration::milliseconds(1)).into(),
    );
    memory.insert_user(user.clone());
    let config = tower_auth_session::SessionConfig::builder()
        .secret(common::SECRET)
        .clock(ManualClock::new(NOW))
        .build()
        .unwrap();
    let manager = tower_auth_session::SessionManager::new(config, store.in_front_of(memory));
    let signed = manager
        .sign_in(&user, tower_auth_session::SignIn::new())
        .await
        .unwrap();
    let value: String = conn
        .get(format!("{prefix}{}", signed.session.token))
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&value).unwrap();
    assert_eq!(value["user"]["banned"], false, "{value}");
    assert_eq!(value["user"]["banReason"], serde_json::Value::Null);
}

/// The marker must outlive every session a revoke-all ended (a key a racing Better Auth
/// refresh wrote back authenticates again once it expires): a layer whose sessions live 30 days
/// raises it from the store's default 7, as does a manager; a shorter lifetime never lowers it.
#[tokio::test]
async fn the_marker_lives_as_long_as_the_longest_sessions_of_a_layer_over_the_store() {
    let Some(Raw {
        store,
        prefix,
        mut conn,
    }) = raw_node(
        "the_marker_lives_as_long_as_the_longest_sessions_of_a_layer_over_the_store",
        ManualClock::new(NOW),
    )
    .await
    else {
        return;
    };
    let config = |days: i64| {
        tower_auth_session::SessionConfig::builder()
            .secret(common::SECRET)
            .expires_in(Duration::days(days))
            .build()
            .unwrap()
    };
    let _layer = tower_auth_session::SessionLayer::new(config(30), store.clone());
    let _manager = tower_auth_session::SessionManager::new(config(3), store.clone());
    let user = User::new("long@example.com", "L", NOW);
    let s = conformance::session(&user, NOW + Duration::days(30));
    store.create(&s, &user).await.unwrap();
    store.delete_user_sessions(&user.id).await.unwrap();
    let ttl: i64 = conn
        .ttl(format!("{prefix}revoked-sessions-before-{}", user.id))
        .await
        .unwrap();
    assert!((2_591_990..=2_592_000).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn revoked_before_marker_rejects_surviving_keys() {
    let test = "revoked_before_marker_rejects_surviving_keys";
    let Some(Raw {
        store,
        prefix,
        mut conn,
    }) = raw_node(test, ManualClock::new(NOW)).await
    else {
        return;
    };
    let user = User::new("m@example.com", "M", NOW);
    let s = conformance::session(&user, NOW + Duration::days(7));
    store.create(&s, &user).await.unwrap();
    revoke_behind_the_store(&mut conn, &prefix, &user.id).await;
    assert!(store.find(&s.storage_key()).await.unwrap().is_none());
    assert!(store
        .extend(&s.storage_key(), NOW + Duration::days(8), NOW)
        .await
        .unwrap()
        .is_none());
}

/// A marker other software wrote in another numeric form still revokes, as Better Auth's
/// `Number(marker)` reads it.
#[tokio::test]
async fn a_marker_in_any_numeric_form_revokes() {
    let test = "a_marker_in_any_numeric_form_revokes";
    let Some(Raw {
        store,
        prefix,
        mut conn,
    }) = raw_node(test, ManualClock::new(NOW)).await
    else {
        return;
    };
    let after = tower_auth_session::test_support::to_unix_ms(NOW) + 1;
    for marker in [
        format!("{after}.0"),
        format!(" {after} "),
        format!("{}e3", after as f64 / 1000.0),
        format!("{after:#x}"),
        "Infinity".to_owned(),
    ] {
        let user = User::new("n@example.com", "N", NOW);
        let s = conformance::session(&user, NOW + Duration::days(7));
        store.create(&s, &user).await.unwrap();
        let key = format!("{prefix}revoked-sessions-before-{}", user.id);
        let _: () = conn.set(&key, &marker).await.unwrap();
        assert!(
            store.find(&s.storage_key()).await.unwrap().is_none(),
            "{marker:?} did not revoke"
        );
        // A marker before the session's creation rejects nothing; nor does what JavaScript
        // reads as NaN.
        for nothing in [
            format!("{}.5", after - 2),
            "inf".to_owned(),
            "NaN".to_owned(),
        ] {
            let _: () = conn.set(&key, &nothing).await.unwrap();
            assert!(
                store.find(&s.storage_key()).await.unwrap().is_some(),
                "{nothing:?} revoked"
            );
        }
    }
}

/// The lookup script takes the user id from the first `"userId":"` in the value; a JSON field
/// of the session holding a `userId` of its own before the real one must not make the store
/// apply another user's revoked-before marker (or miss the real user's).
#[tokio::test]
async fn the_marker_is_the_sessions_users_whatever_the_value_holds_before_it() {
    let test = "the_marker_is_the_sessions_users_whatever_the_value_holds_before_it";
    let Some(Raw {
        store,
        prefix,
        mut conn,
    }) = raw_node(test, ManualClock::new(NOW)).await
    else {
        return;
    };
    let user = User::new("d@example.com", "D", NOW);
    let s = conformance::session(&user, NOW + Duration::days(7));
    store.create(&s, &user).await.unwrap();
    let key = format!("{prefix}{}", s.token);
    let value: String = conn.get(&key).await.unwrap();
    let decoyed = value.replacen(
        r#"{"session":{"#,
        r#"{"session":{"meta":{"userId":"decoy"},"#,
        1,
    );
    assert_ne!(decoyed, value);
    let _: () = conn.set(&key, &decoyed).await.unwrap();
    let found = |store: RedisStore| {
        let key = s.storage_key().into_owned();
        async move {
            let one = store.find(&key).await.unwrap().is_some();
            let many = store.find_many(std::slice::from_ref(&key)).await.unwrap()[0].is_some();
            assert_eq!(one, many, "find and find_many agree");
            one
        }
    };
    assert!(found(store.clone()).await);
    revoke_behind_the_store(&mut conn, &prefix, &user.id).await;
    assert!(
        !found(store.clone()).await,
        "the real user's marker revokes"
    );
    let _: () = conn
        .del(format!("{prefix}revoked-sessions-before-{}", user.id))
        .await
        .unwrap();
    revoke_behind_the_store(&mut conn, &prefix, "decoy").await;
    assert!(found(store.clone()).await, "another user's marker does not");
}

/// Revoking every session of a user never shortens a revoked-before marker that Better Auth
/// set for longer sessions (its TTL follows its own `expiresIn`), and leaves the list empty.
#[tokio::test]
async fn revoking_all_keeps_a_longer_marker_ttl_and_empties_the_list() {
    let test = "revoking_all_keeps_a_longer_marker_ttl_and_empties_the_list";
    let Some(Raw {
        store,
        prefix,
        mut conn,
    }) = raw_node(test, ManualClock::new(NOW)).await
    else {
        return;
    };
    let user = User::new("t@example.com", "T", NOW);
    for d in 1..=3 {
        store
            .create(&conformance::session(&user, NOW + Duration::days(d)), &user)
            .await
            .unwrap();
    }
    let marker = format!("{prefix}revoked-sessions-before-{}", user.id);
    let thirty_days: i64 = 30 * 86_400;
    let _: () = redis::cmd("SET")
        .arg(&marker)
        .arg("1")
        .arg("EX")
        .arg(thirty_days)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.delete_user_sessions(&user.id).await.unwrap(), 3);
    let ttl: i64 = conn.ttl(&marker).await.unwrap();
    assert!(
        ttl > thirty_days - 60,
        "the marker's TTL shortened to {ttl}"
    );
    // A marker without expiry keeps none.
    let _: () = conn.persist(&marker).await.unwrap();
    store.delete_user_sessions(&user.id).await.unwrap();
    let ttl: i64 = conn.ttl(&marker).await.unwrap();
    assert_eq!(ttl, -1);
    let list: Option<String> = conn
        .get(format!("{prefix}active-sessions-{}", user.id))
        .await
        .unwrap();
    assert_eq!(list, None);
    assert!(store
        .list_user_sessions(&user.id, NOW)
        .await
        .unwrap()
        .is_empty());
}

/// A user's list skips a value that does not parse and a token listed twice, as Better Auth's
/// `listSessions` does, instead of failing the whole list.
#[tokio::test]
async fn a_users_list_skips_unreadable_values_and_repeated_tokens() {
    let test = "a_users_list_skips_unreadable_values_and_repeated_tokens";
    let Some(Raw {
        store,
        prefix,
        mut conn,
    }) = raw_node(test, ManualClock::new(NOW)).await
    else {
        return;
    };
    let user = User::new("l@example.com", "L", NOW);
    let sessions: Vec<_> = (1..=3)
        .map(|d| conformance::session(&user, NOW + Duration::days(d)))
        .collect();
    for s in &sessions {
        store.create(s, &user).await.unwrap();
    }
    let _: () = conn
        .set(
            format!("{prefix}{}", sessions[1].token),
            r#"{"session":{"token":"x"},"user":null}"#,
        )
        .await
        .unwrap();
    let list_key = format!("{prefix}active-sessions-{}", user.id);
    let list: String = conn.get(&list_key).await.unwrap();
    let mut entries: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    entries.push(entries[0].clone());
    let _: () = conn
        .set(&list_key, serde_json::to_string(&entries).unwrap())
        .await
        .unwrap();
    let listed: Vec<String> = store
        .list_user_sessions(&user.id, NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.token)
        .collect();
    assert_eq!(
        listed,
        [sessions[0].token.clone(), sessions[2].token.clone()]
    );
}

/// A store on the 3-master Redis Cluster the test command starts (`TAS_TEST_REDIS_CLUSTER_URLS`,
/// comma-separated seed nodes).
async fn cluster(test: &str) -> Option<RedisStore> {
    let urls = common::server_url("TAS_TEST_REDIS_CLUSTER_URLS", test)?;
    Some(
        RedisStore::cluster_builder(urls.split(','))
            .key_prefix(common::redis_prefix())
            .clock(ManualClock::new(NOW - Duration::seconds(2)))
            .build()
            .await
            .unwrap(),
    )
}

mod on_a_cluster {
    use super::*;
    conformance_suite!(cluster("redis cluster conformance"));
}

/// Fifty sign-ins of one user at once: every one succeeds, every session is listed, and no key
/// is left that the list does not name (Better Auth's own read-then-write of the list can lose
/// entries; the store's per-key compare-and-set must not).
async fn fifty_parallel_sign_ins_are_all_listed(store: RedisStore) {
    let user = User::new("many@example.com", "Many", NOW);
    let sessions: Vec<_> = (0..50)
        .map(|i| conformance::session(&user, NOW + Duration::days(7) + Duration::seconds(i)))
        .collect();
    let results =
        futures_util::future::join_all(sessions.iter().map(|s| store.create(s, &user))).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of 50 failed: {failed:?}",
        failed.len()
    );
    let listed = store.list_user_sessions(&user.id, NOW).await.unwrap();
    assert_eq!(listed.len(), 50, "every session is listed");
    for s in &sessions {
        assert!(
            store.find(&s.storage_key()).await.unwrap().is_some(),
            "{} resolves",
            s.token
        );
    }
    assert_eq!(store.delete_user_sessions(&user.id).await.unwrap(), 50);
    for s in &sessions {
        assert!(store.find(&s.storage_key()).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn fifty_parallel_sign_ins_of_one_user_on_one_node() {
    if let Some(store) = redis("fifty_parallel_sign_ins_of_one_user_on_one_node").await {
        fifty_parallel_sign_ins_are_all_listed(store).await;
    }
}

#[tokio::test]
async fn fifty_parallel_sign_ins_of_one_user_on_a_cluster() {
    if let Some(store) = cluster("fifty_parallel_sign_ins_of_one_user_on_a_cluster").await {
        assert!(store.is_cluster());
        fifty_parallel_sign_ins_are_all_listed(store).await;
    }
}

/// Better Auth's key names on a cluster (where they hash to different slots, so nothing the
/// store does may span them); and a session key whose list entry was never written (a failed
/// step of another writer) is still found, then removed by revoke-all through the marker.
#[tokio::test]
async fn cluster_keys_keep_better_auths_names_across_slots() {
    let test = "cluster_keys_keep_better_auths_names_across_slots";
    let clock = ManualClock::new(NOW);
    let Some(Raw {
        store,
        prefix,
        mut conn,
    }) = raw_cluster(test, clock.clone()).await
    else {
        return;
    };
    let user = User::new("slots@example.com", "Slots", NOW);
    let s = conformance::session(&user, NOW + Duration::days(7));
    store.create(&s, &user).await.unwrap();

    let session_key = format!("{prefix}{}", s.token);
    let list_key = format!("{prefix}active-sessions-{}", user.id);
    let value: String = conn.get(&session_key).await.unwrap();
    assert!(value.starts_with(r#"{"session":{"id":""#), "{value}");
    let list: String = conn.get(&list_key).await.unwrap();
    assert!(list.contains(&s.token), "{list}");

    // A key another writer stored without its list entry (its second step failed).
    let stray = conformance::session(&user, NOW + Duration::days(7));
    let _: () = conn
        .set_ex(
            format!("{prefix}{}", stray.token),
            value.replace(&s.token, &stray.token),
            3600,
        )
        .await
        .unwrap();
    assert!(store.find(&stray.storage_key()).await.unwrap().is_some());
    clock.set(NOW + Duration::seconds(1));
    store.delete_user_sessions(&user.id).await.unwrap();
    assert!(
        store.find(&stray.storage_key()).await.unwrap().is_none(),
        "the revoked-before marker rejects the unlisted key too"
    );
}

/// `find_many` applies each user's revoked-before marker, as `find` does, and keeps key order:
/// on a node (one script per key) and on a cluster (one `MGET` of the sessions, one of the
/// markers). Another writer (a racing Better Auth instance) wrote the marker without deleting
/// the keys, so the marker alone must reject them.
async fn find_many_applies_revoked_before_markers<C>(raw: Raw<C>)
where
    C: redis::aio::ConnectionLike + Send + Sync,
{
    let Raw {
        store,
        prefix,
        mut conn,
    } = raw;
    let revoked = User::new("revoked@example.com", "Revoked", NOW);
    let kept = User::new("kept@example.com", "Kept", NOW);
    let r1 = conformance::session(&revoked, NOW + Duration::days(7));
    let r2 = conformance::session(&revoked, NOW + Duration::days(7));
    let k = conformance::session(&kept, NOW + Duration::days(7));
    for (s, u) in [(&r1, &revoked), (&r2, &revoked), (&k, &kept)] {
        store.create(s, u).await.unwrap();
    }
    revoke_behind_the_store(&mut conn, &prefix, &revoked.id).await;
    let unknown = tower_auth_session::StorageKey::new("no-such-token");
    let keys = [
        r1.storage_key(),
        k.storage_key(),
        unknown,
        r2.storage_key(),
        k.storage_key(),
    ];
    let found = store.find_many(&keys).await.unwrap();
    let tokens: Vec<Option<&str>> = found
        .iter()
        .map(|f| f.as_ref().map(|f| f.session.token.as_str()))
        .collect();
    let kept_token = Some(k.token.as_str());
    assert_eq!(tokens, [None, kept_token, None, None, kept_token]);
    assert_eq!(found[1].as_ref().unwrap().user.email, kept.email);
    for (key, answer) in keys.iter().zip(&found) {
        let by_find = store.find(key).await.unwrap();
        assert_eq!(
            answer.as_ref().map(|a| &a.session.id),
            by_find.as_ref().map(|a| &a.session.id),
            "find_many and find agree"
        );
    }
    // A value that cannot be read is missing in a batch, as Better Auth's `findSessions` skips
    // it, rather than the batch's error (a cache's read ahead would lose every session of the
    // batch); a lookup of it alone reports it.
    let _: () = conn
        .set(format!("{prefix}unreadable-token"), "not json")
        .await
        .unwrap();
    let unreadable = || tower_auth_session::StorageKey::new("unreadable-token");
    let found = store
        .find_many(&[unreadable(), k.storage_key()])
        .await
        .unwrap();
    assert!(found[0].is_none());
    assert_eq!(found[1].as_ref().unwrap().session.token, k.token);
    assert!(store.find(&unreadable()).await.is_err());
}

#[tokio::test]
async fn find_many_applies_revoked_before_markers_on_one_node() {
    let test = "find_many_applies_revoked_before_markers_on_one_node";
    if let Some(raw) = raw_node(test, ManualClock::new(NOW)).await {
        find_many_applies_revoked_before_markers(raw).await;
    }
}

#[tokio::test]
async fn find_many_applies_revoked_before_markers_on_a_cluster() {
    let test = "find_many_applies_revoked_before_markers_on_a_cluster";
    if let Some(raw) = raw_cluster(test, ManualClock::new(NOW)).await {
        find_many_applies_revoked_before_markers(raw).await;
    }
}

/// One node of a cluster given as a plain URL, as a managed service's configuration endpoint
/// is: the store notices and uses cluster mode, so sign-ins do not fail with `MOVED`.
#[tokio::test]
async fn a_cluster_node_url_selects_cluster_mode() {
    let test = "a_cluster_node_url_selects_cluster_mode";
    let Some(urls) = common::server_url("TAS_TEST_REDIS_CLUSTER_URLS", test) else {
        return;
    };
    let one = urls.split(',').next().unwrap();
    let store = RedisStore::builder(one)
        .key_prefix(common::redis_prefix())
        .clock(ManualClock::new(NOW))
        .build()
        .await
        .unwrap();
    assert!(store.is_cluster());
    let user = User::new("node@example.com", "Node", NOW);
    for _ in 0..25 {
        let s = conformance::session(&user, NOW + Duration::days(7));
        store.create(&s, &user).await.unwrap();
    }
    assert_eq!(
        store.list_user_sessions(&user.id, NOW).await.unwrap().len(),
        25
    );
    // A standalone server stays in single-node mode.
    if let Some(url) = common::server_url("TAS_TEST_REDIS_URL", test) {
        assert!(!RedisStore::connect(&url).await.unwrap().is_cluster());
    }
}
