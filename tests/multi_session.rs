//! Better Auth's `multiSession()` plugin from Rust: sign-in adds the `_multi-` cookie, a second
//! sign-in of the same user ends the first, `maximumSessions` is respected, and sign-out ends
//! every session named by a `_multi-` cookie that verifies (a forged one deletes nothing).
#![cfg(feature = "axum")]

mod common;

use axum::routing::{get, post};
use axum::{Json, Router};
use common::{send, Jar};
use http::{header, Request};
use serde_json::json;
use time::macros::datetime;
use tower_auth_session::extract::{MaybeUser, Sessions};
use tower_auth_session::{
    ManualClock, MemoryStore, SessionConfig, SessionLayer, SessionStore, SignIn, User,
};

const NAME: &str = "better-auth.session_token";

fn config(maximum: usize) -> SessionConfig {
    SessionConfig::builder()
        .secret(common::SECRET)
        .clock(ManualClock::new(datetime!(2026-11-28 12:00 UTC)))
        .multi_session(maximum)
        .build()
        .unwrap()
}

fn app(store: &MemoryStore, maximum: usize) -> Router {
    let users = store.clone();
    Router::new()
        .route(
            "/sign-in",
            post(
                move |sessions: Sessions, Json(body): Json<serde_json::Value>| {
                    let users = users.clone();
                    async move {
                        let email = body["email"].as_str().unwrap();
                        let user = users.find_user_by_email(email).unwrap_or_else(|| {
                            let u = User::new(email, "U", datetime!(2026-11-01 0:00 UTC));
                            users.insert_user(u.clone());
                            u
                        });
                        (sessions.sign_in(&user).await.unwrap(), "ok")
                    }
                },
            ),
        )
        .route(
            "/sign-out",
            post(|sessions: Sessions| async move { (sessions.sign_out().await.unwrap(), "bye") }),
        )
        .route(
            "/me",
            get(|MaybeUser(u): MaybeUser| async move {
                u.map_or("anonymous".to_owned(), |u| u.email.clone())
            }),
        )
        .layer(SessionLayer::new(config(maximum), store.clone()))
}

async fn call(app: &Router, path: &str, jar: &mut Jar, body: serde_json::Value) -> Vec<String> {
    let mut req = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if !jar.0.is_empty() {
        req = req.header(header::COOKIE, jar.header());
    }
    let r = send(
        app.clone(),
        req.body(axum::body::Body::from(body.to_string())).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    let lines = r.set_cookies();
    jar.apply(&lines);
    lines
}

fn multi_names(jar: &Jar) -> Vec<String> {
    jar.names()
        .into_iter()
        .filter(|n| n.contains("_multi-"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn sign_in_sets_the_multi_cookie_with_the_session_cookies_value() {
    let store = MemoryStore::new();
    let manager = SessionLayer::new(config(5), store.clone()).manager();
    let user = User::new("a@example.com", "A", datetime!(2026-11-01 0:00 UTC));
    store.insert_user(user.clone());
    for remember in [true, false] {
        let signed = manager
            .sign_in(&user, SignIn::new().remember_me(remember))
            .await
            .unwrap();
        let lines: Vec<&str> = signed.cookies.iter().map(|v| v.to_str().unwrap()).collect();
        let session_value = lines[0]
            .strip_prefix(&format!("{NAME}="))
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        let multi = lines
            .iter()
            .find(|l| l.contains("_multi-"))
            .expect("a multi-session cookie");
        assert_eq!(
            *multi,
            format!(
                "{NAME}_multi-{}={session_value}; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax",
                signed.session.token.to_lowercase()
            ),
            "Max-Age is expiresIn even when remember_me is {remember}"
        );
    }
}

#[tokio::test]
async fn sign_out_ends_every_verified_multi_session_and_nothing_forged() {
    let store = MemoryStore::new();
    let app = app(&store, 5);
    let mut jar = Jar::default();
    call(
        &app,
        "/sign-in",
        &mut jar,
        json!({"email": "a@example.com"}),
    )
    .await;
    call(
        &app,
        "/sign-in",
        &mut jar,
        json!({"email": "b@example.com"}),
    )
    .await;
    assert_eq!(multi_names(&jar).len(), 2);
    assert_eq!(store.session_count(), 2);

    // A third account signed in elsewhere, whose token a forged cookie names.
    let c = User::new("c@example.com", "C", datetime!(2026-11-01 0:00 UTC));
    store.insert_user(c.clone());
    let manager = SessionLayer::new(config(5), store.clone()).manager();
    let other = manager.sign_in(&c, SignIn::new()).await.unwrap();
    let forged_name = format!("{NAME}_multi-{}", other.session.token.to_lowercase());
    jar.0.push((
        forged_name.clone(),
        format!(
            "{}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D",
            other.session.token
        ),
    ));
    assert_eq!(store.session_count(), 3);

    let lines = call(&app, "/sign-out", &mut jar, json!({})).await;
    assert_eq!(store.session_count(), 1, "a and b ended; c's stays");
    let left = store
        .list_user_sessions(&c.id, datetime!(2026-11-28 12:00 UTC))
        .await
        .unwrap();
    assert_eq!(left[0].token, other.session.token);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("_multi-") && l.contains("Max-Age=0"))
            .count(),
        2,
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with(&forged_name)),
        "the forged cookie is neither expired nor acted on"
    );
    assert_eq!(multi_names(&jar), [forged_name]);
}

#[tokio::test]
async fn signing_in_again_as_the_same_user_ends_the_earlier_session() {
    let store = MemoryStore::new();
    let app = app(&store, 5);
    let mut jar = Jar::default();
    call(
        &app,
        "/sign-in",
        &mut jar,
        json!({"email": "a@example.com"}),
    )
    .await;
    let first = multi_names(&jar);
    let lines = call(
        &app,
        "/sign-in",
        &mut jar,
        json!({"email": "a@example.com"}),
    )
    .await;
    assert!(lines
        .iter()
        .any(|l| l.starts_with(&format!("{}=; Max-Age=0", first[0]))));
    assert_eq!(store.session_count(), 1);
    assert_eq!(multi_names(&jar).len(), 1);
    assert_ne!(multi_names(&jar), first);
}

#[tokio::test]
async fn maximum_sessions_is_respected() {
    let store = MemoryStore::new();
    let app = app(&store, 2);
    let mut jar = Jar::default();
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        call(&app, "/sign-in", &mut jar, json!({ "email": email })).await;
    }
    // Better Auth's count: two `_multi-` cookies plus the session cookie exceed 2.
    assert_eq!(multi_names(&jar).len(), 2, "{:?}", jar.names());
    assert_eq!(store.session_count(), 3, "the sign-in itself succeeds");
}

/// The layer authenticates by the session cookie's exact name: a `_multi-` cookie alone
/// (whose name starts with it) is not a session cookie.
#[tokio::test]
async fn a_multi_cookie_alone_is_anonymous() {
    let store = MemoryStore::new();
    let app = app(&store, 5);
    let mut jar = Jar::default();
    call(
        &app,
        "/sign-in",
        &mut jar,
        json!({"email": "a@example.com"}),
    )
    .await;
    let multi = multi_names(&jar)[0].clone();
    let value = jar.get(&multi).unwrap().to_owned();
    let r = send(
        app.clone(),
        common::get_req("/me", Some(&format!("{multi}={value}"))),
    )
    .await;
    assert_eq!(r.body, "anonymous");
    let r = send(app, common::get_req("/me", Some(&jar.header()))).await;
    assert_eq!(r.body, "a@example.com");
}
