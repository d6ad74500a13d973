//! The cache sees Better Auth's own revocations: with the live Better Auth 1.7.25 peer on the
//! same SQLite file, PostgreSQL, MySQL/MariaDB or Redis, a Rust layer over a `CachedStore` that
//! watches the store's change feed serves a Better Auth session (so it is cached), then Better
//! Auth signs out, revokes that one session, or revokes all of the user's sessions, and the
//! layer answers 401 within 1 s. A second cache over the same store without the watch still
//! serves the revoked sessions afterwards: the feed does the work, not a TTL.
#![cfg(feature = "cache")]

mod common;

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use common::process::{better_auth, cookie_of, http, post_json, Server};
use serde_json::json;
use tower_auth_session::extract::CurrentUser;
use tower_auth_session::store::{CachedStore, SessionChanges};
use tower_auth_session::{SessionConfig, SessionLayer, SessionStore};

const ORIGIN: &str = "http://localhost:3000";
const COOKIE: &str = "better-auth.session_token";
const PASSWORD: &str = "correct horse battery";
/// What the feeds promise.
const DEADLINE: Duration = Duration::from_secs(1);
/// How often the layer is asked while waiting.
const EVERY: Duration = Duration::from_millis(20);

fn app<S: SessionStore>(store: S) -> Router {
    let config = SessionConfig::builder()
        .secret(common::SECRET)
        .build()
        .unwrap();
    Router::new()
        .route(
            "/me",
            get(|CurrentUser(u): CurrentUser| async move { u.email.clone() }),
        )
        .layer(SessionLayer::new(config, store))
}

async fn status(app: &Router, cookie: &str) -> u16 {
    common::send(app.clone(), common::get_req("/me", Some(cookie)))
        .await
        .status
}

/// Asks `app` every 20 ms until it answers 401 for `cookie`, and returns how long that took;
/// fails if it still answers 200 after [`DEADLINE`].
async fn rejected(app: &Router, cookie: &str, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        match status(app, cookie).await {
            401 => {
                let took = start.elapsed();
                println!("{what}: rejected after {} ms", took.as_millis());
                assert!(took <= DEADLINE, "{what}: rejected only after {took:?}");
                return took;
            }
            200 => {}
            other => panic!("{what}: unexpected status {other}"),
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: the cache still served the session {DEADLINE:?} after Better Auth revoked it"
        );
        tokio::time::sleep(EVERY).await;
    }
}

/// A Better Auth session: sign-up for the first, sign-in for the others. Returns the
/// `better-auth.session_token=…` pair and the raw token.
async fn ba_session(ba: &Server, email: &str, first: bool) -> (String, String) {
    let answer = if first {
        post_json(
            &ba.url("/test/sign-up"),
            json!({"email": email, "password": PASSWORD, "name": "Rev"}),
        )
        .await
    } else {
        post_json(
            &ba.url("/test/sign-in"),
            json!({"email": email, "password": PASSWORD}),
        )
        .await
    };
    assert_eq!(answer["status"], 200, "{answer}");
    let token = answer["body"]["token"].as_str().unwrap().to_owned();
    (cookie_of(&answer, COOKIE), token)
}

async fn ba_post(ba: &Server, path: &str, cookie: &str, body: serde_json::Value) {
    let reply = http(
        "POST",
        &ba.url(path),
        &[("cookie", cookie), ("origin", ORIGIN)],
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(reply.status, 200, "POST {path}: {}", reply.body);
}

/// Sign-out, revoke-session and revoke-sessions by Better Auth, each seen through the watched
/// cache within the deadline and not through the unwatched one. Returns the three delays.
async fn revocations_reach_the_cache<S: SessionStore + Clone>(
    ba: &Server,
    store: S,
    changes: SessionChanges,
    label: &str,
) -> [Duration; 3] {
    let long = Duration::from_secs(600);
    let watched = app(CachedStore::builder(store.clone())
        .ttl(long)
        .watch(changes.clone())
        .build());
    let unwatched = app(CachedStore::builder(store).ttl(long).build());
    let email = format!(
        "rev-{}@example.com",
        tower_auth_session::test_support::generate_id(8).to_lowercase()
    );
    let (one, _) = ba_session(ba, &email, true).await;
    let (two, two_token) = ba_session(ba, &email, false).await;
    let (three, _) = ba_session(ba, &email, false).await;
    let (four, _) = ba_session(ba, &email, false).await;
    for cookie in [&one, &two, &three, &four] {
        // Read once from the store, then cached by both.
        assert_eq!(status(&watched, cookie).await, 200);
        assert_eq!(status(&unwatched, cookie).await, 200);
    }

    // 1. Sign-out in Better Auth.
    ba_post(ba, "/api/auth/sign-out", &one, json!({})).await;
    let sign_out = rejected(&watched, &one, &format!("{label}: sign-out")).await;
    assert_eq!(
        status(&unwatched, &one).await,
        200,
        "{label}: without the watch the cache still serves a signed-out session"
    );
    assert_eq!(status(&watched, &two).await, 200, "{label}: only that one");

    // 2. Revoke one session (`two`) from another (`three`).
    ba_post(
        ba,
        "/api/auth/revoke-session",
        &three,
        json!({"token": two_token}),
    )
    .await;
    let revoke = rejected(&watched, &two, &format!("{label}: revoke-session")).await;
    assert_eq!(status(&unwatched, &two).await, 200);
    assert_eq!(
        status(&watched, &three).await,
        200,
        "{label}: only that one"
    );

    // 3. Revoke all of the user's sessions.
    ba_post(ba, "/api/auth/revoke-sessions", &three, json!({})).await;
    let start = Instant::now();
    rejected(&watched, &three, &format!("{label}: revoke-sessions")).await;
    rejected(
        &watched,
        &four,
        &format!("{label}: revoke-sessions (other)"),
    )
    .await;
    let revoke_all = start.elapsed();
    assert!(
        revoke_all <= DEADLINE,
        "{label}: revoke-sessions took {revoke_all:?}"
    );
    assert_eq!(status(&unwatched, &four).await, 200);
    assert!(
        *changes.applied().borrow() >= 4,
        "{label}: the feed reported the changes"
    );
    println!(
        "{label}: sign-out {} ms, revoke-session {} ms, revoke-sessions {} ms",
        sign_out.as_millis(),
        revoke.as_millis(),
        revoke_all.as_millis()
    );
    [sign_out, revoke, revoke_all]
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn better_auth_revocations_reach_a_cache_over_sqlite() {
    use tower_auth_session::SqliteStore;
    let test = "better_auth_revocations_reach_a_cache_over_sqlite";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let db = format!("sqlite:{}", path.display());
    let Some(ba) = better_auth(
        &[
            ("BETTER_AUTH_SECRET", common::SECRET),
            ("BA_DB", &db),
            ("BA_MIGRATE", "1"),
        ],
        test,
    ) else {
        return;
    };
    let store = SqliteStore::builder(format!("sqlite://{}", path.display()))
        .create_schema(false)
        .build()
        .await
        .unwrap();
    // Without the table and triggers, and without the opt-in, the feed refuses to start.
    let err = store.session_changes().start().await.unwrap_err();
    assert!(err.to_string().contains("create_trigger(true)"), "{err}");
    // Idempotent, also for instances started together: every one starts.
    let start = || store.session_changes().create_trigger(true).start();
    let (changes, again, third) = tokio::join!(start(), start(), start());
    let changes = changes.unwrap();
    drop((again.unwrap(), third.unwrap()));
    revocations_reach_the_cache(&ba, store, changes, "SQLite").await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn better_auth_revocations_reach_a_cache_over_postgres() {
    use tower_auth_session::store::PostgresStore;
    let test = "better_auth_revocations_reach_a_cache_over_postgres";
    let Some(pg) = common::fresh_pg_database(test).await else {
        return;
    };
    let Some(ba) = better_auth(
        &[
            ("BETTER_AUTH_SECRET", common::SECRET),
            ("BA_DB", &pg),
            ("BA_MIGRATE", "1"),
        ],
        test,
    ) else {
        return;
    };
    let store = PostgresStore::connect(&pg).await.unwrap();
    let err = store.session_changes().start().await.unwrap_err();
    assert!(err.to_string().contains("create_trigger(true)"), "{err}");
    // LISTEN through PgBouncer in transaction mode never hears anything: refused, loudly.
    let err = store
        .session_changes()
        .listen_url(format!("{pg}?pgbouncer=true"))
        .create_trigger(true)
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PgBouncer"), "{err}");
    // Instances started together race to create the trigger: every one starts.
    let start = || store.session_changes().create_trigger(true).start();
    let (changes, again, third) = tokio::join!(start(), start(), start());
    let changes = changes.unwrap();
    drop((again.unwrap(), third.unwrap()));
    revocations_reach_the_cache(&ba, store, changes, "PostgreSQL").await;
}

/// Better Auth with `database.schemaName`: its tables in schema `auth`, none in `public`. The
/// store finds them only when told the schema's name (whatever the connection's `search_path`),
/// Rust and Better Auth sign-ins are each other's, and the feed's functions and triggers go in
/// the same schema.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn better_auth_revocations_reach_a_cache_over_postgres_in_a_schema_of_its_own() {
    use tower_auth_session::store::{PostgresStore, SqlSchema};
    use tower_auth_session::StorageKey;
    let test = "better_auth_revocations_reach_a_cache_over_postgres_in_a_schema_of_its_own";
    let Some(pg) = common::fresh_pg_database(test).await else {
        return;
    };
    let Some(ba) = better_auth(
        &[
            ("BETTER_AUTH_SECRET", common::SECRET),
            ("BA_DB", &pg),
            ("BA_MIGRATE", "1"),
            ("BA_PG_SCHEMA", "auth"),
        ],
        test,
    ) else {
        return;
    };
    // The connection's search_path finds nothing: a start-up error naming the table.
    let err = PostgresStore::connect(&pg).await.unwrap_err();
    assert!(
        err.to_string().contains(r#"table "session" is missing"#),
        "{err}"
    );
    let store = PostgresStore::builder(&pg)
        .schema(SqlSchema::better_auth().schema_name("auth"))
        .build()
        .await
        .unwrap();
    // A Better Auth session is found by the store.
    let email = format!(
        "schema-{}@example.com",
        tower_auth_session::test_support::generate_id(8).to_lowercase()
    );
    let (_, token) = ba_session(&ba, &email, true).await;
    let found = store.find(&StorageKey::new(&token)).await.unwrap().unwrap();
    assert_eq!(found.user.email, email);
    let changes = store
        .session_changes()
        .create_trigger(true)
        .start()
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(&pg).await.unwrap();
    let homes: Vec<(String, String)> = sqlx::query_as(
        "select p.proname::text, n.nspname::text from pg_proc p \
         join pg_namespace n on n.oid = p.pronamespace \
         where p.proname like 'tas_session_changes%' order by 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        homes,
        [
            ("tas_session_changes".to_owned(), "auth".to_owned()),
            ("tas_session_changes_users".to_owned(), "auth".to_owned()),
        ]
    );
    pool.close().await;
    revocations_reach_the_cache(&ba, store, changes, "PostgreSQL, schema auth").await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn better_auth_revocations_reach_a_cache_over_mysql() {
    use tower_auth_session::store::MySqlStore;
    let test = "better_auth_revocations_reach_a_cache_over_mysql";
    let Some(url) = common::fresh_mysql_database(test).await else {
        return;
    };
    let Some(ba) = better_auth(
        &[
            ("BETTER_AUTH_SECRET", common::SECRET),
            ("BA_DB", &url),
            ("BA_MIGRATE", "1"),
        ],
        test,
    ) else {
        return;
    };
    let store = MySqlStore::connect(&url).await.unwrap();
    let err = store.session_changes().start().await.unwrap_err();
    assert!(err.to_string().contains("create_trigger(true)"), "{err}");
    // Instances started together race to create the trigger: every one starts.
    let start = || store.session_changes().create_trigger(true).start();
    let (changes, again, third) = tokio::join!(start(), start(), start());
    let changes = changes.unwrap();
    drop((again.unwrap(), third.unwrap()));
    revocations_reach_the_cache(&ba, store, changes, "MySQL/MariaDB").await;
}

/// One test at a time on the shared Redis Cluster: a feed with an empty prefix hears every
/// key there, and the subscription counts and kills are per server.
#[cfg(feature = "redis")]
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A Better Auth peer with its users in a SQLite file of a temporary directory (kept alive by
/// the first value) and its sessions in Redis, as `redis` (`BA_REDIS_URL` or
/// `BA_REDIS_CLUSTER_URLS`) says.
#[cfg(all(feature = "redis", feature = "sqlite"))]
fn better_auth_on_redis(redis: (&str, &str), test: &str) -> Option<(tempfile::TempDir, Server)> {
    let dir = tempfile::tempdir().unwrap();
    let users = format!("sqlite:{}", dir.path().join("users.db").display());
    let ba = better_auth(
        &[
            ("BETTER_AUTH_SECRET", common::SECRET),
            ("BA_DB", &users),
            ("BA_MIGRATE", "1"),
            redis,
        ],
        test,
    )?;
    Some((dir, ba))
}

#[cfg(all(feature = "redis", feature = "sqlite"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn better_auth_revocations_reach_a_cache_over_redis() {
    use tower_auth_session::store::RedisStore;
    let test = "better_auth_revocations_reach_a_cache_over_redis";
    let Some(base) = common::server_url("TAS_TEST_REDIS_URL", test) else {
        return;
    };
    // Better Auth writes unprefixed keys: a logical database of this test's own.
    let db_number = 1 + (std::process::id() as usize + 5) % 15;
    let url = format!("{}/{db_number}", base.trim_end_matches('/'));
    {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
    }
    let Some((_dir, ba)) = better_auth_on_redis(("BA_REDIS_URL", &url), test) else {
        return;
    };
    let store = RedisStore::connect(&url).await.unwrap();
    // A URL that reaches another database than the store's is caught by the probe.
    let other = format!("{}/{}", base.trim_end_matches('/'), db_number % 15 + 1);
    let err = store.session_changes(other).start().await.unwrap_err();
    assert!(
        err.to_string().contains("same server and database"),
        "{err}"
    );
    let changes = store.session_changes(url.as_str()).start().await.unwrap();
    revocations_reach_the_cache(&ba, store, changes, "Redis").await;
}

/// On a Redis Cluster, whose nodes publish only their own keys' notifications, the feed hears
/// every master: Better Auth's revocations reach the cache whichever master holds the token.
/// Then the server closes the feed's subscriptions on every master: the feed subscribes
/// again, drops the cache (changes may have been missed meanwhile) and reports deletes again.
#[cfg(all(feature = "redis", feature = "sqlite"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn better_auth_revocations_reach_a_cache_over_a_redis_cluster() {
    use common::redis_nodes::{conn, psubscribed};
    use tower_auth_session::store::RedisStore;
    use tower_auth_session::StorageKey;
    let test = "better_auth_revocations_reach_a_cache_over_a_redis_cluster";
    let _cluster = CLUSTER.lock().await;
    let Some(urls) = common::server_url("TAS_TEST_REDIS_CLUSTER_URLS", test) else {
        return;
    };
    let nodes: Vec<&str> = urls.split(',').collect();
    let Some((_dir, ba)) = better_auth_on_redis(("BA_REDIS_CLUSTER_URLS", &urls), test) else {
        return;
    };
    let store = RedisStore::cluster_builder(nodes.iter().copied())
        .build()
        .await
        .unwrap();
    let changes = store.session_changes(nodes[0]).start().await.unwrap();
    assert_eq!(changes.source(), "Redis keyspace notifications");
    assert_eq!(
        psubscribed(&nodes).await,
        vec![1; nodes.len()],
        "one subscription on every master"
    );
    revocations_reach_the_cache(&ba, store.clone(), changes.clone(), "Redis Cluster").await;

    // The server drops the feed's subscriptions on every master.
    let (inner, cached) = common::counted_cache(&store, &changes);
    let email = format!(
        "kill-{}@example.com",
        tower_auth_session::test_support::generate_id(8).to_lowercase()
    );
    let (_, kept) = ba_session(&ba, &email, true).await;
    common::finds_all(&cached, &[&kept]).await;
    let calls = inner.calls();
    let mut rx = changes.applied();
    let seen = *rx.borrow();
    for node in &nodes {
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut conn(node).await)
            .await
            .unwrap();
        assert_eq!(killed, 1, "the feed's subscription on {node}");
    }
    common::until(
        "the feed subscribed again on every master",
        Duration::from_secs(10),
        || async { psubscribed(&nodes).await == vec![1; nodes.len()] },
    )
    .await;
    // Each renewed subscription drops the cache once.
    tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|n| *n >= seen + nodes.len() as u64),
    )
    .await
    .expect("the feed dropped the cache after subscribing again")
    .unwrap();
    assert!(cached
        .find(&StorageKey::new(kept.as_str()))
        .await
        .unwrap()
        .is_some());
    assert_eq!(inner.calls(), calls + 1, "the cache was dropped");

    // Subscribed again: a delete behind the store's back reaches the cache, and only that
    // session is read again. The sessions' own writes (one `set` each) are reported too:
    // wait for them first.
    let before = *rx.borrow();
    let user = tower_auth_session::User::new(&email, "K", time::OffsetDateTime::now_utc());
    let mut tokens = Vec::new();
    for _ in 0..2 {
        tokens.push(common::new_session(&store, &user).await);
    }
    let (fresh, gone) = (&tokens[0], &tokens[1]);
    tokio::time::timeout(DEADLINE, rx.wait_for(|n| *n >= before + 2))
        .await
        .expect("the writes were reported")
        .unwrap();
    common::finds_all(&cached, &[fresh, gone]).await;
    let mut cluster = redis::cluster::ClusterClient::new(nodes.clone())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let seen = *rx.borrow();
    let _: i64 = redis::cmd("DEL")
        .arg(gone)
        .query_async(&mut cluster)
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, rx.wait_for(|n| *n > seen))
        .await
        .expect("the delete was reported")
        .unwrap();
    common::only_gone_is_read_again(&cached, &inner, gone, fresh).await;
}

/// The LISTEN connection is killed by the server: the feed reconnects, drops the cache (a
/// change may have been missed meanwhile), and reports changes again afterwards.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_feed_recovers_from_a_killed_connection() {
    use tower_auth_session::store::PostgresStore;
    use tower_auth_session::{StorageKey, User};
    let test = "a_postgres_feed_recovers_from_a_killed_connection";
    let Some(pg) = common::fresh_pg_database(test).await else {
        return;
    };
    let store = PostgresStore::builder(&pg)
        .create_schema(true)
        .build()
        .await
        .unwrap();
    let changes = store
        .session_changes()
        .channel("tas_test_changes")
        .create_trigger(true)
        .start()
        .await
        .unwrap();
    assert_eq!(changes.source(), "PostgreSQL LISTEN");
    let (inner, cached) = common::counted_cache(&store, &changes);
    let user = store
        .insert_user(&User::new(
            "kill@example.com",
            "K",
            time::OffsetDateTime::now_utc(),
        ))
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for _ in 0..2 {
        tokens.push(common::new_session(&store, &user).await);
    }
    common::finds_all(&cached, &[&tokens[0], &tokens[1]]).await;
    let calls = inner.calls();
    assert!(cached
        .find(&StorageKey::new(tokens[0].as_str()))
        .await
        .unwrap()
        .is_some());
    assert_eq!(inner.calls(), calls, "cached");

    let mut rx = changes.applied();
    let seen = *rx.borrow();
    let admin = sqlx::PgPool::connect(&pg).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity \
         where datname = current_database() and query ilike 'listen%'",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(killed, 1, "the feed's LISTEN connection");
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|n| *n > seen))
        .await
        .expect("the feed noticed and reconnected")
        .unwrap();
    assert!(cached
        .find(&StorageKey::new(tokens[0].as_str()))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        inner.calls(),
        calls + 1,
        "the cache was dropped on reconnect"
    );

    // Listening again: a delete behind the store's back reaches the cache.
    let seen = *rx.borrow();
    sqlx::query(r#"delete from "session" where "token" = $1"#)
        .bind(&tokens[1])
        .execute(&admin)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|n| *n > seen))
        .await
        .expect("the delete was notified after the reconnect")
        .unwrap();
    assert!(cached
        .find(&StorageKey::new(tokens[1].as_str()))
        .await
        .unwrap()
        .is_none());
}

/// The feed's connection is cut off without a reset (a silent network path): it would look
/// alive for good and hear nothing. The feed's PING finds it out, subscribes again once the
/// path flows, and drops the cache, so a session deleted while it heard nothing is not served.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_feed_renews_a_subscription_that_went_silent() {
    use common::servers::Proxy;
    use tower_auth_session::store::RedisStore;
    use tower_auth_session::{StorageKey, User};
    let test = "a_redis_feed_renews_a_subscription_that_went_silent";
    let Some(url) = common::server_url("TAS_TEST_REDIS_URL", test) else {
        return;
    };
    let Some(port) = common::server_url("TAS_TEST_REDIS_PORT", test) else {
        return;
    };
    let proxy = Proxy::start(port.parse().unwrap()).await;
    let prefix = common::redis_prefix();
    let store = RedisStore::builder(&url)
        .key_prefix(&prefix)
        .build()
        .await
        .unwrap();
    let changes = store
        .session_changes(format!("redis://127.0.0.1:{}/", proxy.port))
        .start()
        .await
        .unwrap();
    let (_, cached) = common::counted_cache(&store, &changes);
    let user = User::new("silent@example.com", "S", time::OffsetDateTime::now_utc());
    let mut applied = changes.applied();
    let before = *applied.borrow();
    let mut tokens = Vec::new();
    for _ in 0..2 {
        tokens.push(common::new_session(&store, &user).await);
    }
    // The sessions' own writes are reported too: wait for them before caching.
    tokio::time::timeout(DEADLINE, applied.wait_for(|n| *n >= before + 2))
        .await
        .expect("the writes were reported")
        .unwrap();
    let (kept, gone) = (
        StorageKey::new(tokens[0].as_str()),
        StorageKey::new(tokens[1].as_str()),
    );
    for key in [&kept, &gone] {
        assert!(cached.find(key).await.unwrap().is_some());
    }

    proxy.black_hole();
    let deleted = common::redis_nodes::del(&url, &format!("{prefix}{}", tokens[1])).await;
    assert_eq!(deleted, 1);
    assert!(
        cached.find(&gone).await.unwrap().is_some(),
        "unheard, the delete has not reached the cache"
    );
    proxy.heal();
    let took = common::until(
        "the cache still served a session deleted while the feed heard nothing",
        Duration::from_secs(10),
        || async { cached.find(&gone).await.unwrap().is_none() },
    )
    .await;
    println!(
        "silent subscription: cache dropped {} ms after the path flowed again",
        took.as_millis()
    );
    assert!(cached.find(&kept).await.unwrap().is_some());
}

/// A key prefix with a hash tag puts every key of the store on one master: the feed starts
/// (only that master's subscription can be probed) and hears the store's keys there.
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_redis_cluster_feed_starts_under_a_hash_tagged_prefix() {
    use tower_auth_session::store::RedisStore;
    use tower_auth_session::{StorageKey, User};
    let test = "a_redis_cluster_feed_starts_under_a_hash_tagged_prefix";
    let _cluster = CLUSTER.lock().await;
    let Some(urls) = common::server_url("TAS_TEST_REDIS_CLUSTER_URLS", test) else {
        return;
    };
    let nodes: Vec<&str> = urls.split(',').collect();
    let prefix = format!("{{{}}}:", common::redis_prefix().trim_end_matches(':'));
    let store = RedisStore::cluster_builder(nodes.iter().copied())
        .key_prefix(&prefix)
        .build()
        .await
        .unwrap();
    let changes = store.session_changes(nodes[0]).start().await.unwrap();
    let cached = CachedStore::builder(store.clone())
        .ttl(Duration::from_secs(600))
        .watch(changes.clone())
        .build();
    let user = User::new("tagged@example.com", "T", time::OffsetDateTime::now_utc());
    let mut applied = changes.applied();
    let before = *applied.borrow();
    let token = common::new_session(&store, &user).await;
    tokio::time::timeout(DEADLINE, applied.wait_for(|n| *n > before))
        .await
        .expect("the write was reported")
        .unwrap();
    let key = StorageKey::new(token.as_str());
    assert!(cached.find(&key).await.unwrap().is_some());
    common::reported(
        &mut applied,
        DEADLINE,
        "the delete was reported",
        store.delete(&key),
    )
    .await
    .unwrap();
    assert!(cached.find(&key).await.unwrap().is_none());
}

/// A managed Redis (ElastiCache, Memorystore and the like) forbids `CONFIG`: the feed can
/// neither read nor set `notify-keyspace-events`. Until the operator makes the setting, starting
/// the feed fails and names it, whether `CONFIG` is forbidden outright (the probe hears
/// nothing), allowed only to read, or the application turned configuring off, and none of those
/// attempts changes the server. Once it is set in the server's configuration, the feed starts
/// through the same restricted user and hears a session deleted behind the store's back. A
/// server of the test's own: the setting is server-wide.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_feed_where_config_is_forbidden_says_what_to_set_and_then_hears_deletes() {
    use tower_auth_session::store::RedisStore;
    use tower_auth_session::{StorageKey, User};
    let test = "a_redis_feed_where_config_is_forbidden_says_what_to_set_and_then_hears_deletes";
    let Some(server) = common::servers::Redis::start(test) else {
        return;
    };
    let admin = server.url();
    let mut conn = common::redis_nodes::conn(&admin).await;
    let setting = |conn: redis::aio::MultiplexedConnection| async move {
        let mut conn = conn;
        let got: (String, String) = redis::cmd("CONFIG")
            .arg("GET")
            .arg("notify-keyspace-events")
            .query_async(&mut conn)
            .await
            .unwrap();
        got.1
    };
    assert_eq!(
        setting(conn.clone()).await,
        "",
        "a fresh server notifies nothing"
    );
    // Users as a managed service hands them out: every command but CONFIG, or CONFIG GET only.
    for (user, rules) in [
        ("no-config", &["-config"][..]),
        ("read-config", &["-config", "+config|get"][..]),
    ] {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(user)
            .arg(&["on", ">managed-secret", "~*", "&*", "+@all"])
            .arg(rules)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let as_user = |user: &str| format!("redis://{user}:managed-secret@127.0.0.1:{}/", server.port);
    let store = RedisStore::connect(&admin).await.unwrap();

    let refused = |e: tower_auth_session::StoreError| e.to_string();
    let told_off = refused(
        store
            .session_changes(admin.as_str())
            .configure_server(false)
            .start()
            .await
            .unwrap_err(),
    );
    let read_only = refused(
        store
            .session_changes(as_user("read-config"))
            .start()
            .await
            .unwrap_err(),
    );
    let forbidden = refused(
        store
            .session_changes(as_user("no-config"))
            .start()
            .await
            .unwrap_err(),
    );
    for (what, err) in [
        ("configure_server(false)", &told_off),
        ("CONFIG SET refused", &read_only),
        ("CONFIG refused", &forbidden),
    ] {
        assert!(
            err.contains("notify-keyspace-events") && err.contains("K, g, $ and x"),
            "{what}: the error names the setting and its flags: {err}"
        );
    }
    assert!(told_off.contains("parameter group"), "{told_off}");
    assert!(read_only.contains("CONFIG SET was refused"), "{read_only}");
    assert!(forbidden.contains("was not reported"), "{forbidden}");
    assert_eq!(
        setting(conn.clone()).await,
        "",
        "no attempt changed the server"
    );

    // The operator makes the setting; the restricted user's feed now starts and hears deletes.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("Kg$x")
        .query_async(&mut conn)
        .await
        .unwrap();
    let changes = store
        .session_changes(as_user("no-config"))
        .start()
        .await
        .unwrap();
    let (inner, cached) = common::counted_cache(&store, &changes);
    let user = User::new("managed@example.com", "M", time::OffsetDateTime::now_utc());
    let mut applied = changes.applied();
    let before = *applied.borrow();
    let gone = common::new_session(&store, &user).await;
    let kept = common::new_session(&store, &user).await;
    // The sessions' own writes are reported too: wait for them before caching.
    tokio::time::timeout(DEADLINE, applied.wait_for(|n| *n >= before + 2))
        .await
        .expect("the writes were reported")
        .unwrap();
    for token in [&gone, &kept] {
        assert!(cached
            .find(&StorageKey::new(token.as_str()))
            .await
            .unwrap()
            .is_some());
    }
    common::reported(
        &mut applied,
        DEADLINE,
        "a delete behind the store's back was not reported",
        async {
            assert_eq!(common::redis_nodes::del(&admin, &gone).await, 1);
        },
    )
    .await;
    common::only_gone_is_read_again(&cached, &inner, &gone, &kept).await;
}
