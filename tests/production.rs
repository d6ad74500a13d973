//! Issue 13: the network stores as production runs them. PostgreSQL over TLS (`verify-full`
//! against the harness's CA), Redis and a Redis Cluster over TLS, Redis behind Sentinel, and
//! PostgreSQL behind PgBouncer 1.18 in transaction pooling mode, each with the conformance
//! suite; TLS failures that name TLS and the fix; and PgBouncer under 50 concurrent clients and
//! two app instances, every answer checked. The servers come from `scripts/with-servers.sh`
//! (`TAS_TEST_POSTGRES_TLS_URL`, `TAS_TEST_REDIS_TLS_URL`, `TAS_TEST_REDIS_TLS_CLUSTER_URLS`,
//! `TAS_TEST_REDIS_SENTINEL_URLS`, `TAS_TEST_PGBOUNCER_URL`, `TAS_TEST_PGBOUNCER_STATEMENT_URL`,
//! `TAS_TEST_TLS_CA`, `TAS_TEST_TLS_UNTRUSTED_CA`).
#![cfg(all(feature = "postgres", feature = "redis"))]

mod common;
mod conformance;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::redis_nodes::{conn, del, holds, info};
use common::until;
use tower_auth_session::extract::CurrentUser;
use tower_auth_session::store::{PostgresStore, RedisStore};
use tower_auth_session::{SessionConfig, SessionLayer, SignIn, StoreError, User};

fn ca(var: &str, test: &str) -> Option<String> {
    common::server_url(var, test)
}

/// `base` (a server URL ending in `/postgres`) with a new database, and `params` appended.
async fn fresh_database(admin_url: &str, base: &str, params: &str) -> String {
    let name = format!(
        "t_{}",
        tower_auth_session::test_support::generate_id(12).to_lowercase()
    );
    let admin = sqlx::PgPool::connect(admin_url).await.unwrap();
    sqlx::query(&format!("create database {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{name}{params}")
}

/// The TLS cluster, `verify-full` against the harness's CA, on a fresh database.
async fn tls_url(test: &str, host: &str, params: &str) -> Option<String> {
    let base = common::server_url("TAS_TEST_POSTGRES_TLS_URL", test)?;
    let ca = ca("TAS_TEST_TLS_CA", test)?;
    let admin = format!("{base}?sslmode=verify-full&sslrootcert={ca}");
    let url = fresh_database(&admin, &base, params).await;
    Some(url.replacen("127.0.0.1", host, 1))
}

async fn tls_store(test: &str) -> Option<PostgresStore> {
    let ca = ca("TAS_TEST_TLS_CA", test)?;
    let url = tls_url(
        test,
        "127.0.0.1",
        &format!("?sslmode=verify-full&sslrootcert={ca}"),
    )
    .await?;
    Some(
        PostgresStore::builder(url)
            .create_schema(true)
            .build()
            .await
            .unwrap(),
    )
}

mod postgres_over_tls {
    use super::*;
    conformance_suite!(tls_store("postgres over TLS conformance"));
}

/// Asserts that `err` is a connection error that names TLS and `fix`.
fn names_tls_and(err: &StoreError, fix: &str) {
    let text = err.to_string();
    assert!(
        matches!(err, StoreError::Connect { .. }) && text.contains("TLS") && text.contains(fix),
        "{text}"
    );
}

/// A change feed's own `listen_url` is read as the store reads its URL: `sslmode=require`
/// with a root certificate verifies the chain, as libpq does (the notifications carry session
/// tokens). It connected to any server before.
#[tokio::test]
async fn a_listen_url_under_require_with_an_untrusted_root_is_refused() {
    let test = "a_listen_url_under_require_with_an_untrusted_root_is_refused";
    let Some(untrusted) = ca("TAS_TEST_TLS_UNTRUSTED_CA", test) else {
        return;
    };
    let Some(store) = tls_store(test).await else {
        return;
    };
    let Some(listen) = tls_url(
        test,
        "127.0.0.1",
        &format!("?sslmode=require&sslrootcert={untrusted}"),
    )
    .await
    else {
        return;
    };
    let err = store
        .session_changes()
        .create_trigger(true)
        .listen_url(listen)
        .start()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("TLS") || text.contains("certificate"),
        "{text}"
    );
}

/// The TLS settings given to the store's builder apply to a feed's `listen_url` as to the
/// store's own URL: a root certificate given in code turns the listen URL's `sslmode=require`
/// into a verified connection, refused when the server's certificate is not signed by it. The
/// listen URL was read on its own before, and `require` accepted any certificate.
#[tokio::test]
async fn a_listen_url_follows_the_tls_settings_given_in_code() {
    let test = "a_listen_url_follows_the_tls_settings_given_in_code";
    let (Some(trusted), Some(untrusted)) = (
        ca("TAS_TEST_TLS_CA", test),
        ca("TAS_TEST_TLS_UNTRUSTED_CA", test),
    ) else {
        return;
    };
    let Some(plain) = common::fresh_pg_database(test).await else {
        return;
    };
    let Some(listen) = tls_url(test, "127.0.0.1", "?sslmode=require").await else {
        return;
    };
    for (pem, verified) in [(&untrusted, false), (&trusted, true)] {
        // A store on the plaintext server (`prefer` finds no TLS there), given a root in code.
        let store = PostgresStore::builder(plain.as_str())
            .create_schema(true)
            .tls_root_cert_pem(std::fs::read(pem).unwrap())
            .build()
            .await
            .unwrap();
        let started = store
            .session_changes()
            .create_trigger(true)
            .listen_url(listen.as_str())
            .start()
            .await;
        match started {
            Ok(_) => assert!(
                verified,
                "listened under a root that did not sign the server"
            ),
            Err(err) => {
                let text = err.to_string();
                assert!(!verified, "{text}");
                assert!(
                    text.contains("TLS") || text.contains("certificate"),
                    "{text}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_wrong_hostname_under_verify_full_names_tls_and_the_fix() {
    let test = "a_wrong_hostname_under_verify_full_names_tls_and_the_fix";
    let Some(ca) = ca("TAS_TEST_TLS_CA", test) else {
        return;
    };
    // The certificate names IP:127.0.0.1 only: `localhost` is not in it.
    let Some(url) = tls_url(
        test,
        "localhost",
        &format!("?sslmode=verify-full&sslrootcert={ca}"),
    )
    .await
    else {
        return;
    };
    let err = PostgresStore::connect(&url).await.unwrap_err();
    names_tls_and(&err, "host name");
    names_tls_and(&err, "verify-full");
    // The same database under the name the certificate holds connects.
    let url = url.replacen("localhost", "127.0.0.1", 1);
    PostgresStore::builder(url)
        .create_schema(true)
        .build()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_untrusted_ca_names_tls_and_the_fix() {
    let test = "an_untrusted_ca_names_tls_and_the_fix";
    let Some(untrusted) = ca("TAS_TEST_TLS_UNTRUSTED_CA", test) else {
        return;
    };
    let Some(url) = tls_url(
        test,
        "127.0.0.1",
        &format!("?sslmode=verify-full&sslrootcert={untrusted}"),
    )
    .await
    else {
        return;
    };
    let err = PostgresStore::connect(&url).await.unwrap_err();
    names_tls_and(&err, "sslrootcert");
    // Without any root the Mozilla roots are used: the private CA is not among them. The same
    // with libpq 16's `sslrootcert=system` (it was read as a file named "system").
    let base = url.split('?').next().unwrap().to_owned();
    for params in ["?sslmode=verify-full", "?sslrootcert=system"] {
        names_tls_and(
            &PostgresStore::connect(&format!("{base}{params}"))
                .await
                .unwrap_err(),
            "sslrootcert",
        );
    }
    // As in libpq, `require` with a root certificate verifies the chain; without one it only
    // encrypts.
    let require = url.replace("sslmode=verify-full", "sslmode=require");
    names_tls_and(
        &PostgresStore::connect(&require).await.unwrap_err(),
        "sslrootcert",
    );
    let bare_require = url.split('?').next().unwrap().to_owned() + "?sslmode=require";
    PostgresStore::builder(bare_require)
        .create_schema(true)
        .build()
        .await
        .unwrap();
    // A CA given from Rust instead of the URL.
    let pem = std::fs::read(ca("TAS_TEST_TLS_CA", test).unwrap()).unwrap();
    PostgresStore::builder(format!("{base}?sslmode=verify-full"))
        .tls_root_cert_pem(pem)
        .create_schema(true)
        .build()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_tls_server_refuses_plaintext() {
    let test = "the_tls_server_refuses_plaintext";
    let Some(url) = tls_url(test, "127.0.0.1", "?sslmode=disable").await else {
        return;
    };
    assert!(PostgresStore::connect(&url).await.is_err());
}

// ---------------------------------------------------------------- Redis over TLS

async fn redis_tls(test: &str) -> Option<RedisStore> {
    let url = common::server_url("TAS_TEST_REDIS_TLS_URL", test)?;
    conformance_store(RedisStore::builder(url), test).await
}

/// The store `builder` makes for the conformance suite: the harness's CA, a fresh prefix, and
/// the suite's clock.
async fn conformance_store(
    builder: tower_auth_session::store::RedisStoreBuilder,
    test: &str,
) -> Option<RedisStore> {
    let pem = std::fs::read(ca("TAS_TEST_TLS_CA", test)?).unwrap();
    Some(
        builder
            .key_prefix(common::redis_prefix())
            .clock(tower_auth_session::ManualClock::new(
                conformance::NOW - time::Duration::seconds(2),
            ))
            .tls_root_cert_pem(pem)
            .build()
            .await
            .unwrap(),
    )
}

mod redis_over_tls {
    use super::*;
    conformance_suite!(redis_tls("redis over TLS conformance"));
}

/// The nodes of the Redis Cluster that listens over TLS only.
fn tls_cluster_urls(test: &str) -> Option<Vec<String>> {
    let urls = common::server_url("TAS_TEST_REDIS_TLS_CLUSTER_URLS", test)?;
    Some(urls.split(',').map(str::to_owned).collect())
}

async fn redis_tls_cluster(test: &str) -> Option<RedisStore> {
    let urls = tls_cluster_urls(test)?;
    conformance_store(RedisStore::cluster_builder(urls), test).await
}

mod redis_cluster_over_tls {
    use super::*;
    conformance_suite!(redis_tls_cluster("redis cluster over TLS conformance"));
}

// ---------------------------------------------------------------- Redis behind Sentinel

/// The URLs of the Sentinels in `var` and the name they watch the master under.
fn sentinels_in(var: &str, test: &str) -> Option<(Vec<String>, String)> {
    let urls = common::server_url(var, test)?;
    let name = common::server_url("TAS_TEST_REDIS_SENTINEL_MASTER", test)?;
    Some((urls.split(',').map(str::to_owned).collect(), name))
}

/// A server that accepts connections and never answers, as a frozen Sentinel does: its URL,
/// and the task holding its connections (abort it to close them).
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}/", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    (url, held)
}

/// Starts `store`'s change feed (given `url`) and checks that it reports `change` (within 10 s:
/// a feed that missed it never reports it).
#[cfg(feature = "cache")]
async fn feed_reports<T>(
    store: &RedisStore,
    url: &str,
    what: &str,
    change: impl std::future::Future<Output = T>,
) -> T {
    let changes = store.session_changes(url).start().await.unwrap();
    let mut applied = changes.applied();
    common::reported(&mut applied, Duration::from_secs(10), what, change).await
}

/// The plaintext Sentinel deployment.
fn sentinels(test: &str) -> Option<(Vec<String>, String)> {
    sentinels_in("TAS_TEST_REDIS_SENTINEL_URLS", test)
}

/// The TLS-only Sentinel deployment.
fn tls_sentinels(test: &str) -> Option<(Vec<String>, String)> {
    sentinels_in("TAS_TEST_REDIS_TLS_SENTINEL_URLS", test)
}

async fn redis_sentinel(test: &str) -> Option<RedisStore> {
    let (urls, name) = sentinels(test)?;
    // The CA goes unused: the Sentinel URLs are plaintext.
    conformance_store(RedisStore::sentinel_builder(urls, name), test).await
}

mod redis_behind_sentinel {
    use super::*;
    conformance_suite!(redis_sentinel("redis behind sentinel conformance"));
}

async fn redis_tls_sentinel(test: &str) -> Option<RedisStore> {
    let (urls, name) = tls_sentinels(test)?;
    conformance_store(RedisStore::sentinel_builder(urls, name), test).await
}

mod redis_behind_sentinel_over_tls {
    use super::*;
    conformance_suite!(redis_tls_sentinel(
        "redis behind sentinel over TLS conformance"
    ));
}

#[tokio::test]
async fn a_store_behind_sentinel_over_tls_verifies_the_certificates() {
    let test = "a_store_behind_sentinel_over_tls_verifies_the_certificates";
    let Some((urls, name)) = tls_sentinels(test) else {
        return;
    };
    let untrusted = std::fs::read(ca("TAS_TEST_TLS_UNTRUSTED_CA", test).unwrap()).unwrap();
    let err = RedisStore::sentinel_builder(urls.clone(), name.clone())
        .tls_root_cert_pem(untrusted)
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("TLS") && err.contains("tls_root_cert_pem"),
        "{err}"
    );
    // Plaintext to the TLS-only Sentinel is refused.
    let plain: Vec<String> = urls
        .iter()
        .map(|u| u.replacen("rediss://", "redis://", 1))
        .collect();
    assert!(RedisStore::sentinel_builder(plain, name.clone())
        .timeout(Duration::from_millis(1500))
        .build()
        .await
        .is_err());
    // With the CA, a session goes to the master over TLS, and the feed hears it there.
    let store = redis_tls_sentinel(test).await.unwrap();
    let user = User::new(
        "sentinel-tls@example.com",
        "S",
        time::OffsetDateTime::now_utc(),
    );
    let token = common::new_session(&store, &user).await;
    common::finds_all(&store, &[token.as_str()]).await;
    #[cfg(feature = "cache")]
    {
        use tower_auth_session::SessionStore as _;
        feed_reports(
            &store,
            &urls[0],
            "a delete through the store was reported",
            store.delete(&tower_auth_session::StorageKey::new(token.as_str())),
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_store_behind_sentinel_says_what_to_fix_and_skips_a_dead_sentinel() {
    let test = "a_store_behind_sentinel_says_what_to_fix_and_skips_a_dead_sentinel";
    let Some((urls, name)) = sentinels(test) else {
        return;
    };
    // A name the Sentinels do not watch.
    let err = RedisStore::sentinel_builder(urls.clone(), "no-such-master")
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("names a master \"no-such-master\""), "{err}");
    // No Sentinel answers.
    let err = RedisStore::sentinel_builder(["redis://127.0.0.1:1/"], name.clone())
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("through the Redis Sentinels") && err.contains("Sentinel URLs"),
        "{err}"
    );
    // No URL at all.
    let err = RedisStore::sentinel_builder(Vec::<String>::new(), name.clone())
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no Sentinel URL given"), "{err}");
    // Mixed schemes.
    let err = RedisStore::sentinel_builder(
        ["rediss://127.0.0.1:1/".to_owned(), urls[0].clone()],
        name.clone(),
    )
    .build()
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("mix redis://, rediss://"), "{err}");
    // TLS verified for some, `#insecure` for others.
    let err = RedisStore::sentinel_builder(
        ["rediss://127.0.0.1:1/", "rediss://127.0.0.1:2/#insecure"],
        name.clone(),
    )
    .build()
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("#insecure on all or none"), "{err}");
    // A dead Sentinel and a silent one (it accepts connections and never answers, as a frozen
    // one does) listed first hold nothing up, and the session lands on the master the live one
    // names.
    let (silent_url, held) = silent_server().await;
    let prefix = common::redis_prefix();
    let started = std::time::Instant::now();
    let store = RedisStore::sentinel_builder(
        std::iter::once("redis://127.0.0.1:1/".to_owned())
            .chain(std::iter::repeat_n(silent_url, 20))
            .chain(urls.iter().cloned()),
        name.clone(),
    )
    .key_prefix(&prefix)
    .build()
    .await
    .unwrap();
    // Waiting for the silent one, listed twenty times, would cost at least twenty of the
    // driver's 0.5 s response timeouts (10 s); the live one answers on loopback in
    // milliseconds, so 5 s leaves a loaded machine room without passing a broken store.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the silent Sentinel was waited for: {:?}",
        started.elapsed()
    );
    held.abort();
    let user = User::new("sentinel@example.com", "S", time::OffsetDateTime::now_utc());
    let token = common::new_session(&store, &user).await;
    common::finds_all(&store, &[token.as_str()]).await;
    let master = common::redis_nodes::sentinel_master(&urls[0], &name).await;
    assert!(holds(&master, &format!("{prefix}{token}")).await);
}

#[tokio::test]
async fn a_store_behind_sentinel_uses_the_master_settings() {
    let test = "a_store_behind_sentinel_uses_the_master_settings";
    let Some((urls, name)) = sentinels(test) else {
        return;
    };
    // The master's credentials reach the master (which has none: it refuses them).
    let err = RedisStore::sentinel_builder(urls.clone(), name.clone())
        .master_auth(None, "not-the-password")
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("authentication failed") && err.contains("master_auth"),
        "{err}"
    );
    // The same while a silent Sentinel keeps its lookup going until the deadline: the refusal
    // is still what the error says, not the timeout.
    let (silent_url, held) = silent_server().await;
    let err = RedisStore::sentinel_builder(
        std::iter::once(silent_url).chain(urls.iter().cloned()),
        name.clone(),
    )
    .master_auth(None, "not-the-password")
    .build()
    .await
    .unwrap_err()
    .to_string();
    held.abort();
    assert!(err.contains("authentication failed"), "{err}");
    // The master's database number.
    let prefix = common::redis_prefix();
    let store = RedisStore::sentinel_builder(urls.clone(), name.clone())
        .master_database(3)
        .key_prefix(&prefix)
        .build()
        .await
        .unwrap();
    let user = User::new(
        "sentinel-db@example.com",
        "S",
        time::OffsetDateTime::now_utc(),
    );
    let token = common::new_session(&store, &user).await;
    let master = common::redis_nodes::sentinel_master(&urls[0], &name).await;
    let key = format!("{prefix}{token}");
    assert!(!holds(&master, &key).await, "not in database 0");
    assert!(holds(&format!("{master}3"), &key).await, "in database 3");
    // The change feed hears that database.
    #[cfg(feature = "cache")]
    feed_reports(
        &store,
        &urls[0],
        "a delete in database 3 was reported",
        del(&format!("{master}3"), &key),
    )
    .await;
}

#[cfg(feature = "cache")]
#[tokio::test]
async fn a_change_feed_behind_sentinel_hears_the_master() {
    let test = "a_change_feed_behind_sentinel_hears_the_master";
    let Some((urls, name)) = sentinels(test) else {
        return;
    };
    let prefix = common::redis_prefix();
    let store = RedisStore::sentinel_builder(urls.clone(), name.clone())
        .key_prefix(&prefix)
        .build()
        .await
        .unwrap();
    let changes = store.session_changes(&urls[0]).start().await.unwrap();
    let (inner, cached) = common::counted_cache(&store, &changes);
    let user = User::new(
        "sentinel-feed@example.com",
        "S",
        time::OffsetDateTime::now_utc(),
    );
    let kept = common::new_session(&store, &user).await;
    let gone = common::new_session(&store, &user).await;
    common::finds_all(&cached, &[kept.as_str(), gone.as_str()]).await;
    let master = common::redis_nodes::sentinel_master(&urls[0], &name).await;
    assert!(holds(&master, &format!("{prefix}{gone}")).await);
    let mut applied = changes.applied();
    let deleted = common::reported(
        &mut applied,
        Duration::from_secs(10),
        "a delete on the master was reported",
        del(&master, &format!("{prefix}{gone}")),
    )
    .await;
    assert_eq!(deleted, 1);
    common::only_gone_is_read_again(&cached, &inner, &gone, &kept).await;
}

#[tokio::test]
async fn a_redis_cluster_over_tls_verifies_the_certificate() {
    let test = "a_redis_cluster_over_tls_verifies_the_certificate";
    let Some(urls) = tls_cluster_urls(test) else {
        return;
    };
    let untrusted = std::fs::read(ca("TAS_TEST_TLS_UNTRUSTED_CA", test).unwrap()).unwrap();
    let err = RedisStore::cluster_builder(urls.clone())
        .tls_root_cert_pem(untrusted)
        .build()
        .await
        .unwrap_err();
    names_tls_and(&err, "tls_root_cert_pem");
    let plain: Vec<String> = urls
        .iter()
        .map(|u| u.replacen("rediss://", "redis://", 1))
        .collect();
    assert!(RedisStore::cluster_builder(plain)
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .is_err());
}

#[tokio::test]
async fn redis_tls_verifies_the_certificate_unless_told_not_to() {
    let test = "redis_tls_verifies_the_certificate_unless_told_not_to";
    let Some(url) = common::server_url("TAS_TEST_REDIS_TLS_URL", test) else {
        return;
    };
    let untrusted = std::fs::read(ca("TAS_TEST_TLS_UNTRUSTED_CA", test).unwrap()).unwrap();
    let err = RedisStore::builder(&url)
        .tls_root_cert_pem(untrusted)
        .build()
        .await
        .unwrap_err();
    names_tls_and(&err, "tls_root_cert_pem");
    // The Mozilla roots do not include the harness's CA either.
    names_tls_and(
        &RedisStore::connect(&url).await.unwrap_err(),
        "tls_root_cert_pem",
    );
    // `#insecure` is the explicit opt-out.
    RedisStore::connect(&format!("{url}#insecure"))
        .await
        .unwrap();
    // A plaintext client gets nothing from a TLS-only port.
    let plain = url.replacen("rediss://", "redis://", 1);
    assert!(RedisStore::builder(plain)
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .is_err());
}

/// The change feed reaches a TLS-only Redis with the same certificate authority as the store,
/// and hears a delete made behind the store's back.
#[cfg(feature = "cache")]
#[tokio::test]
async fn a_change_feed_over_redis_tls_hears_deletes() {
    use tower_auth_session::store::CachedStore;
    use tower_auth_session::{SessionStore, StorageKey};
    let test = "a_change_feed_over_redis_tls_hears_deletes";
    let Some(url) = common::server_url("TAS_TEST_REDIS_TLS_URL", test) else {
        return;
    };
    let pem = std::fs::read(ca("TAS_TEST_TLS_CA", test).unwrap()).unwrap();
    let prefix = common::redis_prefix();
    let store = RedisStore::builder(&url)
        .key_prefix(&prefix)
        .tls_root_cert_pem(pem.clone())
        .build()
        .await
        .unwrap();
    let err = store.session_changes(&url).start().await.unwrap_err();
    println!("without the CA: {err}");
    assert!(
        err.to_string().contains("certificate"),
        "without the CA the feed cannot connect: {err}"
    );
    let changes = store
        .session_changes(&url)
        .tls_root_cert_pem(pem)
        .start()
        .await
        .unwrap();
    let cached = CachedStore::builder(store.clone())
        .ttl(Duration::from_secs(600))
        .watch(changes.clone())
        .build();
    let user = User::new("feed-tls@example.com", "F", time::OffsetDateTime::now_utc());
    let token = common::new_session(&store, &user).await;
    let key = StorageKey::new(token.as_str());
    assert!(cached.find(&key).await.unwrap().is_some());
    let deleted = common::reported(
        &mut changes.applied(),
        Duration::from_secs(10),
        "the delete was reported",
        del(&url, &format!("{prefix}{token}")),
    )
    .await;
    assert_eq!(deleted, 1);
    assert!(cached.find(&key).await.unwrap().is_none());
}

/// On a Redis Cluster over TLS only, the change feed reaches every master with the store's
/// certificate authority (the nodes' addresses come from `CLUSTER SLOTS`), and hears a delete
/// made behind the store's back on each; a subscription killed by the server is made again.
#[cfg(feature = "cache")]
#[tokio::test]
async fn a_change_feed_over_a_redis_cluster_over_tls_hears_every_master() {
    use tower_auth_session::{SessionStore, StorageKey};
    let test = "a_change_feed_over_a_redis_cluster_over_tls_hears_every_master";
    let Some(urls) = tls_cluster_urls(test) else {
        return;
    };
    let pem = std::fs::read(ca("TAS_TEST_TLS_CA", test).unwrap()).unwrap();
    let prefix = common::redis_prefix();
    let store = RedisStore::cluster_builder(urls.clone())
        .key_prefix(&prefix)
        .tls_root_cert_pem(pem.clone())
        .build()
        .await
        .unwrap();
    let err = store.session_changes(&urls[1]).start().await.unwrap_err();
    println!("without the CA: {err}");
    assert!(
        err.to_string().contains("certificate"),
        "without the CA the feed cannot reach the nodes: {err}"
    );
    let changes = store
        .session_changes(&urls[1])
        .tls_root_cert_pem(pem)
        .start()
        .await
        .unwrap();
    // Counted, so that a cache dropped as a whole (after a renewed subscription) cannot pass
    // for a delete that was heard.
    let (inner, cached) = common::counted_cache(&store, &changes);
    // One session on each master.
    let user = User::new(
        "feed-tls-cluster@example.com",
        "F",
        time::OffsetDateTime::now_utc(),
    );
    let mut on = vec![None; urls.len()];
    for _ in 0..300 {
        if on.iter().all(Option::is_some) {
            break;
        }
        let token = common::new_session(&store, &user).await;
        for (i, url) in urls.iter().enumerate() {
            if on[i].is_none() && holds(url, &format!("{prefix}{token}")).await {
                on[i] = Some(token.clone());
            }
        }
    }
    let on: Vec<String> = on
        .into_iter()
        .map(|t| t.expect("a session on every master"))
        .collect();
    let kept = common::new_session(&store, &user).await;
    assert!(cached
        .find(&StorageKey::new(kept.as_str()))
        .await
        .unwrap()
        .is_some());
    // The server ends the feed's subscription on the last master (the only feed on this
    // cluster: no other test subscribes there); the feed subscribes again.
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn(&urls[2]).await)
        .await
        .unwrap();
    assert_eq!(killed, 1, "the feed had one subscription there");
    until(
        "the feed subscribed again on the master",
        Duration::from_secs(10),
        || async { info(&urls[2], "stats", "pubsub_patterns").await == "1" },
    )
    .await;
    // The renewed subscription drops the cache once (the kept session is read again): wait
    // for that before caching the others.
    common::cache_dropped(
        &cached,
        &inner,
        &kept,
        "the renewed subscription dropped the cache",
    )
    .await;
    let mut applied = changes.applied();
    for (url, token) in urls.iter().zip(&on) {
        let key = StorageKey::new(token.as_str());
        assert!(cached.find(&key).await.unwrap().is_some());
        let deleted = common::reported(
            &mut applied,
            Duration::from_secs(10),
            &format!("the delete on {url} was reported"),
            del(url, &format!("{prefix}{token}")),
        )
        .await;
        assert_eq!(deleted, 1);
        // That session alone was dropped, not the whole cache.
        common::only_gone_is_read_again(&cached, &inner, token, &kept).await;
    }
}

// ---------------------------------------------------------------- PgBouncer

/// A fresh database reached through PgBouncer (`?pgbouncer=true`).
async fn through_pgbouncer(test: &str, params: &str) -> Option<String> {
    let direct = common::server_url("TAS_TEST_POSTGRES_URL", test)?;
    let bouncer = common::server_url("TAS_TEST_PGBOUNCER_URL", test)?;
    Some(fresh_database(&direct, &bouncer, params).await)
}

async fn bouncer_store(test: &str) -> Option<PostgresStore> {
    let url = through_pgbouncer(test, "?pgbouncer=true").await?;
    Some(
        PostgresStore::builder(url)
            .create_schema(true)
            .build()
            .await
            .unwrap(),
    )
}

mod postgres_behind_pgbouncer {
    use super::*;
    conformance_suite!(bouncer_store("postgres behind pgbouncer conformance"));
}

/// Without pgbouncer mode the store refuses to start, saying how to turn it on, instead of
/// running statements that could answer for another client.
#[tokio::test]
async fn pgbouncer_without_pooler_mode_is_a_clear_start_up_error() {
    let test = "pgbouncer_without_pooler_mode_is_a_clear_start_up_error";
    let Some(url) = through_pgbouncer(test, "").await else {
        return;
    };
    let err = PostgresStore::connect(&url).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, StoreError::Connect { .. }) && text.contains("pgbouncer=true"),
        "{text}"
    );
    assert!(bouncer_store(test).await.unwrap().is_pgbouncer());
}

/// A database PgBouncer pools by statement cannot run the transaction each statement needs in
/// pgbouncer mode: the store refuses to start, naming the pool mode and its fix, rather than
/// failing as "create schema failed" (or, without creating tables, on every request).
#[tokio::test]
async fn pgbouncer_in_statement_pooling_mode_is_a_clear_start_up_error() {
    let test = "pgbouncer_in_statement_pooling_mode_is_a_clear_start_up_error";
    let Some(url) = common::server_url("TAS_TEST_PGBOUNCER_STATEMENT_URL", test) else {
        return;
    };
    for create in [true, false] {
        let err = PostgresStore::builder(format!("{url}?pgbouncer=true"))
            .create_schema(create)
            .build()
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, StoreError::Connect { .. })
                && text.contains("statement pooling mode")
                && text.contains("pool_mode = transaction"),
            "{text}"
        );
    }
}

/// Better Auth's `database.schemaName` behind PgBouncer, which refuses (or, told to ignore it,
/// drops) the `options` startup parameter a `search_path` would need: the store names the
/// schema in every statement. Tables of another shape in `public` are never read (a store that
/// read them would refuse to start); sessions are written, found, listed and ended in `auth`.
#[tokio::test]
async fn a_schema_of_its_own_is_used_through_pgbouncer() {
    use tower_auth_session::store::SqlSchema;
    use tower_auth_session::{SessionStore, StorageKey};
    let test = "a_schema_of_its_own_is_used_through_pgbouncer";
    let Some(url) = through_pgbouncer(test, "?pgbouncer=true").await else {
        return;
    };
    let direct = common::server_url("TAS_TEST_POSTGRES_URL", test).unwrap();
    let (_, database) = url.split('?').next().unwrap().rsplit_once('/').unwrap();
    let direct = format!("{}/{database}", direct.rsplit_once('/').unwrap().0);
    let pool = sqlx::PgPool::connect(&direct).await.unwrap();
    for decoy in [
        r#"create table "user" ("x" integer)"#,
        r#"create table "session" ("x" integer)"#,
    ] {
        sqlx::query(decoy).execute(&pool).await.unwrap();
    }
    let store = PostgresStore::builder(&url)
        .schema(SqlSchema::better_auth().schema_name("auth"))
        .create_schema(true)
        .build()
        .await
        .unwrap();
    assert!(store.is_pgbouncer());
    let user = store
        .insert_user(&User::new("schema@example.com", "S", common::now()))
        .await
        .unwrap();
    let token = common::new_session(&store, &user).await;
    let found = store.find(&StorageKey::new(&token)).await.unwrap().unwrap();
    assert_eq!(found.user.email, "schema@example.com");
    assert_eq!(
        store
            .list_user_sessions(&user.id, common::now())
            .await
            .unwrap()
            .len(),
        1
    );
    let (in_auth,): (i64,) = sqlx::query_as(r#"select count(*) from "auth"."session""#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(in_auth, 1);
    store.delete(&StorageKey::new(&token)).await.unwrap();
    assert!(store
        .find(&StorageKey::new(&token))
        .await
        .unwrap()
        .is_none());
    pool.close().await;
}

/// 50 concurrent clients, each its own user and session, through two app instances sharing a
/// two-connection server pool: every answer names the client's own user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_and_two_instances_through_pgbouncer_get_their_own_answers() {
    let test = "fifty_clients_and_two_instances_through_pgbouncer_get_their_own_answers";
    let Some(url) = through_pgbouncer(test, "?pgbouncer=true").await else {
        return;
    };
    let config = || {
        SessionConfig::builder()
            .secret(common::SECRET)
            .build()
            .unwrap()
    };
    let mut apps = Vec::new();
    for _ in 0..2 {
        let store = PostgresStore::builder(&url)
            .create_schema(true)
            .max_connections(20)
            .build()
            .await
            .unwrap();
        let layer = SessionLayer::new(config(), store.clone());
        let router = Router::new()
            .route(
                "/me",
                get(|CurrentUser(u): CurrentUser| async move { u.email.clone() }),
            )
            .layer(layer.clone());
        apps.push((store, layer, router));
    }
    let mut clients = Vec::new();
    for i in 0..50 {
        let (store, layer, _) = &apps[i % 2];
        let user = store
            .insert_user(&User::new(&format!("c{i}@example.com"), "C", common::now()))
            .await
            .unwrap();
        let signed = layer.manager().sign_in(&user, SignIn::new()).await.unwrap();
        clients.push((user.email, common::session_cookie(&signed)));
    }
    let routers: Arc<Vec<Router>> = Arc::new(apps.iter().map(|a| a.2.clone()).collect());
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, (email, cookie))| {
            let routers = routers.clone();
            tokio::spawn(async move {
                let mut wrong = 0;
                for round in 0..20 {
                    let app = routers[(i + round) % 2].clone();
                    let r = common::send(app, common::get_req("/me", Some(&cookie))).await;
                    if r.status != 200 || r.body != email {
                        wrong += 1;
                    }
                }
                wrong
            })
        })
        .collect();
    let mut wrong = 0;
    for task in tasks {
        wrong += task.await.unwrap();
    }
    assert_eq!(
        wrong, 0,
        "of 1,000 answers, {wrong} were not the client's own"
    );
}

// ---------------------------------------------------------------- the examples over TLS

/// Signs in through an example's `POST /sign-in` and reads `/me` with the cookie.
async fn sign_in_and_read_me(app: &common::process::Server, email: &str) {
    use common::process::http;
    let r = http(
        "POST",
        &app.url("/sign-in"),
        &[],
        Some(&format!(r#"{{"email":"{email}"}}"#)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.cookie_pair("better-auth.session_token");
    let me = http("GET", &app.url("/me"), &[("cookie", &cookie)], None).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["email"], email);
}

/// `examples/postgres.rs` takes TLS from `DATABASE_URL` (`sslmode`, `sslrootcert`) and
/// `examples/redis.rs` from `REDIS_URL=rediss://…` with the CA file named by `REDIS_TLS_CA`.
#[tokio::test]
async fn the_examples_take_tls_settings_from_their_environment() {
    let test = "the_examples_take_tls_settings_from_their_environment";
    let Some(ca) = ca("TAS_TEST_TLS_CA", test) else {
        return;
    };
    let Some(database) = tls_url(
        test,
        "127.0.0.1",
        &format!("?sslmode=verify-full&sslrootcert={ca}"),
    )
    .await
    else {
        return;
    };
    let app = common::process::example(
        "postgres",
        &[
            ("BETTER_AUTH_SECRET", common::SECRET),
            ("DATABASE_URL", database.as_str()),
        ],
    );
    sign_in_and_read_me(&app, "tls-pg@example.com").await;

    let Some(redis_url) = common::server_url("TAS_TEST_REDIS_TLS_URL", test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let users = format!("sqlite://{}", dir.path().join("users.db").display());
    let prefix = common::redis_prefix();
    let app = common::process::example(
        "redis",
        &[
            ("BETTER_AUTH_SECRET", common::SECRET),
            ("REDIS_URL", redis_url.as_str()),
            ("REDIS_TLS_CA", ca.as_str()),
            ("REDIS_PREFIX", prefix.as_str()),
            ("DATABASE_URL", users.as_str()),
        ],
    );
    sign_in_and_read_me(&app, "tls-redis@example.com").await;
}

// ---------------------------------------------------------------- server-side limits

/// A lookup waits on a lock past the store's deadline (a migration holds the session table).
/// The store gives up on it; the server must too: a backend waiting on a lock does not notice
/// its client went away, so without the server's own `lock_timeout` every such request left
/// one waiting (and committing later), until the server refused connections to everyone.
async fn a_lock_wait_is_given_up_by_the_server(store: PostgresStore, direct: &str) {
    use tower_auth_session::SessionStore as _;
    let user = store
        .insert_user(&User::new(
            "locked@example.com",
            "L",
            time::OffsetDateTime::now_utc(),
        ))
        .await
        .unwrap();
    let session = conformance::session(
        &user,
        time::OffsetDateTime::now_utc() + time::Duration::days(1),
    );
    store.create(&session, &user).await.unwrap();
    let admin = sqlx::PgPool::connect(direct).await.unwrap();
    let mut locker = admin.begin().await.unwrap();
    let locker_pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut *locker)
        .await
        .unwrap();
    sqlx::query(r#"lock table "session" in access exclusive mode"#)
        .execute(&mut *locker)
        .await
        .unwrap();
    assert!(
        store.find(&session.storage_key()).await.is_err(),
        "the lock held it"
    );
    // Given up by the server within its limit (the client's deadline may come first).
    let waiting = || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from pg_stat_activity where datname = current_database() \
             and wait_event_type = 'Lock' and pid <> $1",
        )
        .bind(locker_pid)
        .fetch_one(&admin)
        .await
        .unwrap()
    };
    common::until(
        "a backend still waits on the lock for a request given up",
        Duration::from_secs(10),
        || async { waiting().await == 0 },
    )
    .await;
    locker.rollback().await.unwrap();
    assert!(store.find(&session.storage_key()).await.unwrap().is_some());
}

#[tokio::test]
async fn a_lock_wait_past_the_deadline_is_given_up_by_the_server() {
    let test = "a_lock_wait_past_the_deadline_is_given_up_by_the_server";
    let Some(url) = common::fresh_pg_database(test).await else {
        return;
    };
    let store = PostgresStore::builder(&url)
        .create_schema(true)
        .build()
        .await
        .unwrap();
    a_lock_wait_is_given_up_by_the_server(store, &url).await;
}

#[tokio::test]
async fn a_lock_wait_past_the_deadline_is_given_up_by_the_server_behind_pgbouncer() {
    let test = "a_lock_wait_past_the_deadline_is_given_up_by_the_server_behind_pgbouncer";
    let Some(direct) = common::server_url("TAS_TEST_POSTGRES_URL", test) else {
        return;
    };
    let Some(url) = through_pgbouncer(test, "?pgbouncer=true").await else {
        return;
    };
    let store = PostgresStore::builder(&url)
        .create_schema(true)
        .build()
        .await
        .unwrap();
    let (_, name) = url
        .trim_end_matches("?pgbouncer=true")
        .rsplit_once('/')
        .unwrap();
    let (server, _) = direct.rsplit_once('/').unwrap();
    a_lock_wait_is_given_up_by_the_server(store, &format!("{server}/{name}")).await;
}
