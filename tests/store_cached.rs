//! `CachedStore`: the conformance suite through the cache, negative entries, and revocation
//! reaching other instances through the Redis bus.
#![cfg(feature = "cache")]

mod common;
mod conformance;

use std::time::Duration;

use common::Counting;
use conformance::Harness;
use tower_auth_session::store::CachedStore;
use tower_auth_session::{MemoryStore, SessionStore, StorageKey, User};

impl Harness for CachedStore<MemoryStore> {
    async fn add_user(&self, user: &User) -> User {
        self.inner().insert_user(user.clone());
        user.clone()
    }
    async fn remove_user(&self, id: &str) {
        // Deleting a user revokes their sessions through the crate, which invalidates the cache.
        self.delete_user_sessions(id).await.unwrap();
        self.inner().delete_user(id);
    }
}

async fn cached() -> Option<CachedStore<MemoryStore>> {
    Some(CachedStore::builder(MemoryStore::new()).build())
}

conformance_suite!(cached());

#[tokio::test]
async fn hits_and_negative_entries_spare_the_store() {
    let inner = Counting::new(MemoryStore::new());
    let store = CachedStore::builder(inner.clone()).build();
    let user = User::new("c@example.com", "C", conformance::NOW);
    inner.inner.insert_user(user.clone());
    let s = conformance::session(&user, conformance::NOW + time::Duration::days(7));
    store.create(&s, &user).await.unwrap();
    let calls = inner.calls();
    for _ in 0..10 {
        assert!(store.find(&s.storage_key()).await.unwrap().is_some());
        assert!(store
            .find(&StorageKey::new("garbage-but-signed"))
            .await
            .unwrap()
            .is_none());
    }
    assert_eq!(
        inner.calls() - calls,
        2,
        "one read per token, then the cache answers"
    );

    // A revocation through the cache is seen at once.
    store.delete(&s.storage_key()).await.unwrap();
    assert!(store.find(&s.storage_key()).await.unwrap().is_none());
}

#[cfg(all(feature = "postgres", feature = "redis"))]
mod across_instances {
    use super::*;
    use axum::routing::get;
    use tower_auth_session::extract::CurrentUser;
    use tower_auth_session::store::PostgresStore;
    use tower_auth_session::{SessionConfig, SessionLayer, SignIn};

    async fn instance(
        pg: &str,
        redis: &str,
        channel: &str,
    ) -> (
        axum::Router,
        SessionLayer<CachedStore<Counting<PostgresStore>>>,
        Counting<PostgresStore>,
    ) {
        let inner = Counting::new(
            PostgresStore::builder(pg)
                .create_schema(true)
                .build()
                .await
                .unwrap(),
        );
        let store = CachedStore::builder(inner.clone())
            .ttl(Duration::from_secs(600))
            .build()
            .with_redis_bus(redis, channel)
            .await
            .unwrap();
        let layer = SessionLayer::new(
            SessionConfig::builder()
                .secret(common::SECRET)
                .build()
                .unwrap(),
            store,
        );
        let app = axum::Router::new()
            .route(
                "/me",
                get(|CurrentUser(u): CurrentUser| async move { u.email.clone() }),
            )
            .layer(layer.clone());
        (app, layer, inner)
    }

    /// Waits until `rx` has seen `n` more bus messages (bounded), without sleeping.
    async fn bus_delivered(rx: &mut tokio::sync::watch::Receiver<u64>, from: u64) {
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|n| *n > from))
            .await
            .expect("the invalidation arrived over the bus")
            .unwrap();
    }

    #[tokio::test]
    async fn revoke_on_a_rejects_on_b_through_the_cache() {
        let test = "revoke_on_a_rejects_on_b_through_the_cache";
        let Some(redis) = common::server_url("TAS_TEST_REDIS_URL", test) else {
            return;
        };
        let Some(pg) = common::fresh_pg_database(test).await else {
            return;
        };
        let channel = format!(
            "tas-test-{}",
            tower_auth_session::test_support::generate_id(8)
        );
        let (app_a, layer_a, _) = instance(&pg, &redis, &channel).await;
        let (app_b, layer_b, inner_b) = instance(&pg, &redis, &channel).await;
        let user = User::new("bus@example.com", "Bus", time::OffsetDateTime::now_utc());
        layer_a
            .store()
            .inner()
            .inner
            .insert_user(&user)
            .await
            .unwrap();
        let one = common::session_cookie(
            &layer_a
                .manager()
                .sign_in(&user, SignIn::new())
                .await
                .unwrap(),
        );
        let two = common::session_cookie(
            &layer_a
                .manager()
                .sign_in(&user, SignIn::new())
                .await
                .unwrap(),
        );

        // B reads the store once, then serves from its cache.
        for cookie in [&one, &two] {
            assert_eq!(
                common::send(app_b.clone(), common::get_req("/me", Some(cookie)))
                    .await
                    .status,
                200
            );
        }
        let calls = inner_b.calls();
        for cookie in [&one, &two] {
            assert_eq!(
                common::send(app_b.clone(), common::get_req("/me", Some(cookie)))
                    .await
                    .status,
                200
            );
        }
        assert_eq!(inner_b.calls(), calls, "B answered from its cache");

        // Revoke one on A: B rejects it at its next request, through the bus.
        let mut rx = layer_b.store().bus_invalidations();
        let seen = *rx.borrow();
        let token = one
            .split_once('=')
            .unwrap()
            .1
            .split('.')
            .next()
            .unwrap()
            .to_owned();
        layer_a.manager().revoke(&token).await.unwrap();
        bus_delivered(&mut rx, seen).await;
        assert_eq!(
            common::send(app_b.clone(), common::get_req("/me", Some(&one)))
                .await
                .status,
            401
        );
        assert_eq!(
            common::send(app_b.clone(), common::get_req("/me", Some(&two)))
                .await
                .status,
            200
        );

        // Revoke all on A: B rejects the rest.
        let seen = *rx.borrow();
        layer_a.manager().revoke_all(&user.id).await.unwrap();
        bus_delivered(&mut rx, seen).await;
        assert_eq!(
            common::send(app_b.clone(), common::get_req("/me", Some(&two)))
                .await
                .status,
            401
        );
        assert_eq!(
            common::send(app_a, common::get_req("/me", Some(&two)))
                .await
                .status,
            401
        );
    }
}
