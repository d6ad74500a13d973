//! Refresh-heavy traffic on the embedded SQLite store (`update_age(0)`: every request writes)
//! while a live Better Auth server writes the same file: both keep answering, nobody is signed
//! out, and every refresh lands.
#![cfg(all(feature = "sqlite", feature = "axum"))]

mod common;

use common::process::{better_auth, post_json};
use futures_util::future::join_all;
use serde_json::json;
use time::Duration;
use tower_auth_session::{SessionConfig, SessionLayer, SessionStore as _, SqliteStore, StorageKey};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_heavy_traffic_beside_better_auth_writing_the_same_file() {
    let test = "refresh_heavy_traffic_beside_better_auth_writing_the_same_file";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let ba_db = format!("sqlite:{}", path.display());
    let Some(ba) = better_auth(
        &[
            ("BETTER_AUTH_SECRET", common::SECRET),
            ("BA_DB", ba_db.as_str()),
            ("BA_MIGRATE", "1"),
        ],
        test,
    ) else {
        return;
    };
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let layer = SessionLayer::new(
        SessionConfig::builder()
            .secret(common::SECRET)
            .update_age(Duration::ZERO)
            .build()
            .unwrap(),
        store.clone(),
    );
    let app = common::email_router(layer);

    // Twenty users signed in by Better Auth.
    let mut cookies = Vec::new();
    for i in 0..20 {
        let up = post_json(
            &ba.url("/test/sign-up"),
            json!({"email": format!("w{i}@example.com"), "password": "correct horse battery"}),
        )
        .await;
        cookies.push(common::process::cookie_of(&up, "better-auth.session_token"));
    }

    // Warm: the store's connections are open.
    for cookie in &cookies {
        common::send(app.clone(), common::get_req("/", Some(cookie))).await;
    }
    // Each session's expiry as the file holds it before the burst.
    let expiry = |cookie: &str| {
        let value = cookie.split_once('=').map_or("", |(_, v)| v);
        let token = value.split('.').next().unwrap_or_default().to_owned();
        let store = &store;
        async move {
            let found = store.find(&StorageKey::new(token)).await.unwrap();
            found.expect("the session is there").session.expires_at
        }
    };
    let mut before = Vec::new();
    for cookie in &cookies {
        before.push(expiry(cookie).await);
    }

    // At once: 400 Rust requests (each refreshes, so each writes) and Better Auth signing up
    // 40 more users and refreshing sessions of its own.
    let rust = join_all((0..400).map(|i| {
        let app = app.clone();
        let cookie = cookies[i % cookies.len()].clone();
        tokio::spawn(async move { common::send(app, common::get_req("/", Some(&cookie))).await })
    }));
    let node = async {
        let mut failed = Vec::new();
        for i in 0..40 {
            let email = format!("n{i}@example.com");
            let up = post_json(
                &ba.url("/test/sign-up"),
                json!({"email": email, "password": "correct horse battery"}),
            )
            .await;
            if up["status"] != 200 {
                // Better Auth's sign-up is a deferred transaction (read, then write): SQLite
                // refuses it with "database is locked" when another writer commits in between,
                // without waiting. A retry goes through.
                assert_eq!(up["body"]["code"], "FAILED_TO_CREATE_USER", "{up}");
                failed.push(email);
            }
        }
        failed
    };
    let started = std::time::Instant::now();
    let (rust, failed) = tokio::join!(rust, node);
    let burst = started.elapsed();
    let mut refreshed = 0;
    for (i, reply) in rust.into_iter().enumerate() {
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200, "request {i}: {}", reply.body);
        assert!(
            reply.body.ends_with("@example.com"),
            "request {i} signed out: {}",
            reply.body
        );
        // Concurrent refreshes of one session are coalesced (and a refresh in the same
        // millisecond as another moves nothing), so not every request re-sends the cookie.
        refreshed += usize::from(reply.set_cookie("better-auth.session_token").is_some());
    }
    assert!(
        refreshed >= cookies.len(),
        "only {refreshed} refreshes landed"
    );
    // Twenty requests each, later than the warm-up: every session's expiry moved in the file.
    for (cookie, before) in cookies.iter().zip(before) {
        let after = expiry(cookie).await;
        assert!(
            after > before,
            "no refresh of a session reached the file: {before} then {after}"
        );
    }
    assert!(
        failed.len() <= 4,
        "{} of 40 Better Auth sign-ups refused",
        failed.len()
    );
    eprintln!(
        "400 refresh-heavy requests and 40 Better Auth sign-ups in {burst:?}; {} sign-ups refused once",
        failed.len()
    );
    for email in failed {
        let up = post_json(
            &ba.url("/test/sign-up"),
            json!({"email": email, "password": "correct horse battery"}),
        )
        .await;
        assert_eq!(up["status"], 200, "the retry: {up}");
    }

    // Better Auth still reads every session Rust refreshed.
    for cookie in &cookies {
        let got = post_json(
            &ba.url("/test/get-session"),
            json!({"headers": {"cookie": cookie}}),
        )
        .await;
        assert!(got["session"].is_object(), "{got}");
    }
}
