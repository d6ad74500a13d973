//! Redis goes down under load and comes back: no request panics or gets a 500, nobody is
//! signed out, and service recovers by itself. Its own test binary, because it stops the
//! shared Redis server.
#![cfg(all(feature = "redis", feature = "postgres"))]

mod common;

use axum::routing::get;
use futures_util::future::join_all;
use tower_auth_session::extract::MaybeUser;
use tower_auth_session::store::{PostgresStore, RedisStore};
use tower_auth_session::{SessionConfig, SessionLayer, SignIn, User};

fn redis_ctl(action: &str) {
    let ctl = std::env::var("TAS_TEST_REDIS_CTL").expect("TAS_TEST_REDIS_CTL");
    let status = std::process::Command::new(ctl)
        .arg(action)
        .status()
        .unwrap();
    assert!(status.success(), "redis ctl {action}: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_under_load_signs_nobody_out() {
    let test = "redis_outage_under_load_signs_nobody_out";
    let Some(redis_url) = common::server_url("TAS_TEST_REDIS_URL", test) else {
        return;
    };
    let Some(pg_url) = common::fresh_pg_database(test).await else {
        return;
    };
    if common::server_url("TAS_TEST_REDIS_CTL", test).is_none() {
        return;
    }
    let pg = PostgresStore::builder(&pg_url)
        .create_schema(true)
        .build()
        .await
        .unwrap();
    let redis = RedisStore::builder(&redis_url)
        .key_prefix(common::redis_prefix())
        .timeout(std::time::Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let config = SessionConfig::builder()
        .secret(common::SECRET)
        .store_timeout(std::time::Duration::from_secs(1))
        .build()
        .unwrap();
    let layer = SessionLayer::new(config, redis.in_front_of(pg.clone()));
    let app = axum::Router::new()
        .route(
            "/",
            get(|MaybeUser(u): MaybeUser| async move {
                u.map_or("anonymous".into(), |u| u.email.clone())
            }),
        )
        .layer(layer.clone());
    let user = User::new("load@example.com", "L", time::OffsetDateTime::now_utc());
    pg.insert_user(&user).await.unwrap();
    let mut cookies = Vec::new();
    for _ in 0..8 {
        let s = layer.manager().sign_in(&user, SignIn::new()).await.unwrap();
        let line = s
            .cookies
            .iter()
            .next()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        cookies.push(line.split(';').next().unwrap().to_owned());
    }

    // Load: every cookie, plus anonymous traffic, in parallel.
    let burst = |app: axum::Router, cookies: Vec<String>| async move {
        let signed = cookies
            .iter()
            .map(|c| common::send(app.clone(), common::get_req("/", Some(c))));
        let anonymous = (0..8).map(|_| common::send(app.clone(), common::get_req("/", None)));
        let (signed, anonymous) = tokio::join!(join_all(signed), join_all(anonymous));
        (signed, anonymous)
    };

    let (ok, _) = burst(app.clone(), cookies.clone()).await;
    assert!(ok.iter().all(|r| r.body == "load@example.com"));

    redis_ctl("stop");
    for _ in 0..3 {
        let (signed, anonymous) = burst(app.clone(), cookies.clone()).await;
        for r in &signed {
            assert_eq!(r.status, 503, "fail closed during the outage: {}", r.body);
            assert!(r.set_cookies().is_empty(), "nobody is signed out");
        }
        assert!(anonymous
            .iter()
            .all(|r| r.status == 200 && r.body == "anonymous"));
    }
    redis_ctl("start");

    // Redis came back empty (no persistence): lookups fall back to PostgreSQL by themselves.
    let mut recovered = false;
    for _ in 0..50 {
        let (signed, _) = burst(app.clone(), cookies.clone()).await;
        assert!(
            signed.iter().all(|r| r.status == 200 || r.status == 503),
            "never a 500"
        );
        assert!(signed.iter().all(|r| r.set_cookies().is_empty()));
        if signed.iter().all(|r| r.body == "load@example.com") {
            recovered = true;
            break;
        }
        // Polling an external server's recovery, bounded at ~5 s.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "service recovered without intervention");
}
