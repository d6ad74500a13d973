//! Two independent app instances over one PostgreSQL and one Redis (Redis in front of the
//! database, Better Auth's `storeSessionInDatabase`): a session made on A works on B, a
//! revocation on B holds on A at the very next request, and a refresh on A is seen by B.
#![cfg(all(feature = "postgres", feature = "redis"))]

mod common;

use axum::routing::get;
use axum::Router;
use common::{get_req, send};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tower_auth_session::extract::CurrentSession;
use tower_auth_session::store::{PostgresStore, RedisStore, RedisWithDatabase};
use tower_auth_session::{ManualClock, SessionConfig, SessionLayer, SignIn, User};

const T0: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

struct Instance {
    app: Router,
    layer: SessionLayer<RedisWithDatabase<PostgresStore>>,
    clock: ManualClock,
}

/// One instance: its own pools, connections and clock, sharing only the servers.
async fn instance(pg_url: &str, redis_url: &str, prefix: &str) -> Instance {
    let clock = ManualClock::new(T0);
    let pg = PostgresStore::builder(pg_url)
        .create_schema(true)
        .build()
        .await
        .unwrap();
    let redis = RedisStore::builder(redis_url)
        .key_prefix(prefix)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let config = SessionConfig::builder()
        .secret(common::SECRET)
        .clock(clock.clone())
        .build()
        .unwrap();
    let layer = SessionLayer::new(config, redis.in_front_of(pg));
    let app = Router::new()
        .route(
            "/me",
            get(|CurrentSession(a): CurrentSession| async move {
                tower_auth_session::test_support::to_iso(a.session.expires_at)
            }),
        )
        .layer(layer.clone());
    Instance { app, layer, clock }
}

#[tokio::test]
async fn two_instances_share_sessions_revocations_and_refreshes() {
    let test = "two_instances_share_sessions_revocations_and_refreshes";
    let Some(redis_url) = common::server_url("TAS_TEST_REDIS_URL", test) else {
        return;
    };
    let Some(pg_url) = common::fresh_pg_database(test).await else {
        return;
    };
    let prefix = common::redis_prefix();
    let a = instance(&pg_url, &redis_url, &prefix).await;
    let b = instance(&pg_url, &redis_url, &prefix).await;

    let user = User::new("multi@example.com", "Multi", T0);
    a.layer.store().database().insert_user(&user).await.unwrap();

    // Sign in on A, use the cookie on B.
    let first = common::session_cookie(
        &a.layer
            .manager()
            .sign_in(&user, SignIn::new())
            .await
            .unwrap(),
    );
    let second = common::session_cookie(
        &a.layer
            .manager()
            .sign_in(&user, SignIn::new())
            .await
            .unwrap(),
    );
    let on_b = send(b.app.clone(), get_req("/me", Some(&first))).await;
    assert_eq!(on_b.status, 200, "{}", on_b.body);
    assert_eq!(on_b.body, "2026-11-30T12:00:00.000Z");

    // Refresh on A is visible on B.
    a.clock
        .set(T0 + Duration::days(1) + Duration::milliseconds(5));
    b.clock
        .set(T0 + Duration::days(1) + Duration::milliseconds(5));
    let refreshed = send(a.app.clone(), get_req("/me", Some(&first))).await;
    assert_eq!(refreshed.body, "2026-12-01T12:00:00.005Z");
    assert!(refreshed.set_cookie("better-auth.session_token").is_some());
    let seen = send(b.app.clone(), get_req("/me", Some(&first))).await;
    assert_eq!(seen.body, "2026-12-01T12:00:00.005Z", "B sees A's refresh");
    assert!(seen.set_cookies().is_empty(), "and does not refresh again");

    // Revoke one on B: the very next request on A is rejected.
    let token = first
        .split_once('=')
        .unwrap()
        .1
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    b.layer.manager().revoke(&token).await.unwrap();
    assert_eq!(
        send(a.app.clone(), get_req("/me", Some(&first)))
            .await
            .status,
        401
    );
    assert_eq!(
        send(a.app.clone(), get_req("/me", Some(&second)))
            .await
            .status,
        200
    );

    // Revoke all on B: rejected on A at once, in both stores.
    b.layer.manager().revoke_all(&user.id).await.unwrap();
    assert_eq!(
        send(a.app.clone(), get_req("/me", Some(&second)))
            .await
            .status,
        401
    );
    assert!(a.layer.manager().list(&user.id).await.unwrap().is_empty());
}
