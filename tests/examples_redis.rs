//! The Redis example: sessions in Better Auth's secondary-storage format survive an app
//! restart.
#![cfg(all(feature = "redis", feature = "sqlite"))]

mod common;

use common::process::{example, http, Server};

/// The example's environment: the test secret, a fresh key prefix, users in a SQLite file in
/// `dir`, and `store` (where the sessions go).
fn env_for(
    dir: &tempfile::TempDir,
    store: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("BETTER_AUTH_SECRET", common::SECRET.to_owned()),
        ("REDIS_PREFIX", common::redis_prefix()),
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("users.db").display()),
        ),
    ];
    env.extend(store.iter().cloned());
    env
}

/// Signs `email` in; the session cookie (`name=value`) and its token.
async fn sign_in(app: &Server, email: &str) -> (String, String) {
    let r = http(
        "POST",
        &app.url("/sign-in"),
        &[],
        Some(&format!(r#"{{"email":"{email}"}}"#)),
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
    (cookie, token)
}

/// `/me` answers for `email`; after signing out, `401`.
async fn me_then_sign_out(app: &Server, cookie: &str, email: &str) {
    let me = http("GET", &app.url("/me"), &[("cookie", cookie)], None).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["email"], email);
    let out = http("POST", &app.url("/sign-out"), &[("cookie", cookie)], None).await;
    assert_eq!(out.status, 200);
    assert_eq!(
        http("GET", &app.url("/me"), &[("cookie", cookie)], None)
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn redis_example_survives_an_app_restart() {
    let Some(url) = common::server_url(
        "TAS_TEST_REDIS_URL",
        "redis_example_survives_an_app_restart",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = env_for(&dir, &[("REDIS_URL", url.clone())]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let prefix = env.iter().find(|(k, _)| *k == "REDIS_PREFIX").unwrap().1;
    let app = example("redis", &env);
    let (cookie, token) = sign_in(&app, "rita@example.com").await;
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
    me_then_sign_out(&app, &cookie, "rita@example.com").await;
    let gone: Option<String> = redis::AsyncCommands::get(&mut conn, format!("{prefix}{token}"))
        .await
        .unwrap();
    assert!(gone.is_none());
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
    let env = env_for(
        &dir,
        &[
            ("REDIS_SENTINEL_URLS", sentinels.clone()),
            ("REDIS_SENTINEL_MASTER", name.clone()),
        ],
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let prefix = env.iter().find(|(k, _)| *k == "REDIS_PREFIX").unwrap().1;
    let app = example("redis", &env);
    let (cookie, token) = sign_in(&app, "sam@example.com").await;
    let sentinel = sentinels.split(',').next().unwrap();
    let master = common::redis_nodes::sentinel_master(sentinel, &name).await;
    assert!(
        common::redis_nodes::holds(&master, &format!("{prefix}{token}")).await,
        "the session lives on the master the Sentinel names"
    );
    me_then_sign_out(&app, &cookie, "sam@example.com").await;
}
