//! The Redis example: sessions in Better Auth's secondary-storage format survive an app
//! restart.
#![cfg(all(feature = "redis", feature = "sqlite"))]

mod common;

use common::process::{example, http};

#[tokio::test]
async fn redis_example_survives_an_app_restart() {
    let Some(url) = common::server_url(
        "TAS_TEST_REDIS_URL",
        "redis_example_survives_an_app_restart",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let users = format!("sqlite://{}", dir.path().join("users.db").display());
    let prefix = common::redis_prefix();
    let env = [
        ("BETTER_AUTH_SECRET", common::SECRET),
        ("REDIS_URL", url.as_str()),
        ("REDIS_PREFIX", prefix.as_str()),
        ("DATABASE_URL", users.as_str()),
    ];
    let app = example("redis", &env);
    let r = http(
        "POST",
        &app.url("/sign-in"),
        &[],
        Some(r#"{"email":"rita@example.com"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.cookie_pair("better-auth.session_token");
    let token = cookie
        .split_once('=')
        .unwrap()
        .1
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Option<String> = redis::AsyncCommands::get(&mut conn, format!("{prefix}{token}"))
        .await
        .unwrap();
    assert!(
        stored.unwrap().contains("rita@example.com"),
        "the session lives in Redis"
    );

    app.stop();
    let app = example("redis", &env);
    let me = http("GET", &app.url("/me"), &[("cookie", &cookie)], None).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["email"], "rita@example.com");
    let out = http("POST", &app.url("/sign-out"), &[("cookie", &cookie)], None).await;
    assert_eq!(out.status, 200);
    let gone: Option<String> = redis::AsyncCommands::get(&mut conn, format!("{prefix}{token}"))
        .await
        .unwrap();
    assert!(gone.is_none());
    assert_eq!(
        http("GET", &app.url("/me"), &[("cookie", &cookie)], None)
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn redis_example_runs_behind_sentinel() {
    let test = "redis_example_runs_behind_sentinel";
    let Some(sentinels) = common::server_url("TAS_TEST_REDIS_SENTINEL_URLS", test) else {
        return;
    };
    let Some(name) = common::server_url("TAS_TEST_REDIS_SENTINEL_MASTER", test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let users = format!("sqlite://{}", dir.path().join("users.db").display());
    let prefix = common::redis_prefix();
    let env = [
        ("BETTER_AUTH_SECRET", common::SECRET),
        ("REDIS_SENTINEL_URLS", sentinels.as_str()),
        ("REDIS_SENTINEL_MASTER", name.as_str()),
        ("REDIS_PREFIX", prefix.as_str()),
        ("DATABASE_URL", users.as_str()),
    ];
    let app = example("redis", &env);
    let r = http(
        "POST",
        &app.url("/sign-in"),
        &[],
        Some(r#"{"email":"sam@example.com"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.cookie_pair("better-auth.session_token");
    let token = cookie.split_once('=').unwrap().1.split('.').next().unwrap();
    let sentinel = sentinels.split(',').next().unwrap();
    let master = common::redis_nodes::sentinel_master(sentinel, &name).await;
    assert!(
        common::redis_nodes::holds(&master, &format!("{prefix}{token}")).await,
        "the session lives on the master the Sentinel names"
    );
    let me = http("GET", &app.url("/me"), &[("cookie", &cookie)], None).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["email"], "sam@example.com");
    let out = http("POST", &app.url("/sign-out"), &[("cookie", &cookie)], None).await;
    assert_eq!(out.status, 200);
    assert_eq!(
        http("GET", &app.url("/me"), &[("cookie", &cookie)], None)
            .await
            .status,
        401
    );
}
