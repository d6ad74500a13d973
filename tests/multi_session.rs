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

/// A layer with its own clock and, optionally, a previous secret.
fn clocked(
    store: &MemoryStore,
    secret: &str,
    previous: Option<&str>,
    maximum: usize,
) -> (Router, ManualClock) {
    let clock = ManualClock::new(datetime!(2026-11-28 12:00 UTC));
    let mut builder = SessionConfig::builder()
        .secret(secret)
        .clock(clock.clone())
        .multi_session(maximum);
    if let Some(previous) = previous {
        builder = builder.previous_secret(previous, None);
    }
    let app = Router::new()
        .route(
            "/me",
            get(|MaybeUser(u): MaybeUser| async move {
                u.map_or("anonymous".to_owned(), |u| u.email.clone())
            }),
        )
        .layer(SessionLayer::new(builder.build().unwrap(), store.clone()));
    (app, clock)
}

async fn get_me(app: &Router, jar: &Jar) -> Vec<String> {
    let req = Request::get("/me").header(header::COOKIE, jar.header());
    let r = send(app.clone(), req.body(axum::body::Body::empty()).unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "a@example.com");
    r.set_cookies()
}

/// A refresh by the layer sets the session's `_multi-` cookie again when the browser no longer
/// sends it (it outlived its `Max-Age`), as the plugin's after-hook does on Better Auth's own
/// refreshes; not when the browser holds the most allowed, and not when it still has it.
#[tokio::test]
async fn a_refresh_sets_a_lost_multi_cookie_again() {
    for (others, expect_multi) in [(0, true), (2, true), (3, false)] {
        let store = MemoryStore::new();
        let (app, clock) = clocked(&store, common::SECRET, None, 3);
        let signer = tower_auth_session::codec::Signer::new(common::SECRET);
        let user = User::new("a@example.com", "A", datetime!(2026-11-01 0:00 UTC));
        store.insert_user(user.clone());
        let signed = SessionLayer::new(config(3), store.clone())
            .manager()
            .sign_in(&user, SignIn::new())
            .await
            .unwrap();
        let mut jar = Jar::default();
        jar.apply(
            &signed
                .cookies
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>(),
        );
        let multi = format!("{NAME}_multi-{}", signed.session.token.to_lowercase());
        assert!(jar.get(&multi).is_some());

        // Still held: a refresh leaves it.
        clock.advance(time::Duration::days(1) + time::Duration::seconds(1));
        let lines = get_me(&app, &jar).await;
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("{NAME}="))),
            "refreshed"
        );
        assert!(!lines.iter().any(|l| l.contains("_multi-")), "{lines:?}");

        // Lost, beside `others` other accounts' cookies.
        jar.0.retain(|(n, _)| n != &multi);
        for i in 0..others {
            jar.0.push((
                format!("{NAME}_multi-other{i}"),
                signer.sign_cookie_value(&format!("OtherToken{i}")),
            ));
        }
        clock.advance(time::Duration::days(1) + time::Duration::seconds(1));
        let lines = get_me(&app, &jar).await;
        let again = lines.iter().find(|l| l.starts_with(&format!("{multi}=")));
        assert_eq!(again.is_some(), expect_multi, "{others} others: {lines:?}");
        if let Some(line) = again {
            assert!(line.contains("Max-Age=604800"), "{line}");
            let value = line.split(';').next().unwrap().split_once('=').unwrap().1;
            assert_eq!(value, jar.get(NAME).unwrap(), "the session cookie's value");
        }
    }
}

/// `_multi-` cookies that only a previous secret verifies are re-signed with the current one
/// when the session cookie is (Better Auth reads them with the current secret only, so its
/// account switcher would list nothing after a rotation).
#[tokio::test]
async fn a_rotation_re_signs_the_multi_cookies_too() {
    const OLD: &str = "an-old-secret-of-at-least-thirty-two-bytes!!";
    let store = MemoryStore::new();
    let user = User::new("a@example.com", "A", datetime!(2026-11-01 0:00 UTC));
    store.insert_user(user.clone());
    let (old_app, _) = clocked(&store, OLD, None, 5);
    let mut jar = Jar::default();
    let old_manager = {
        let config = SessionConfig::builder()
            .secret(OLD)
            .clock(ManualClock::new(datetime!(2026-11-28 12:00 UTC)))
            .multi_session(5)
            .build()
            .unwrap();
        SessionLayer::new(config, store.clone()).manager()
    };
    let signed = old_manager.sign_in(&user, SignIn::new()).await.unwrap();
    jar.apply(
        &signed
            .cookies
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
    );
    assert_eq!(get_me(&old_app, &jar).await, Vec::<String>::new());

    let (new_app, _) = clocked(&store, common::SECRET, Some(OLD), 5);
    let lines = get_me(&new_app, &jar).await;
    jar.apply(&lines);
    let current = tower_auth_session::codec::Signer::new(common::SECRET);
    let multi = format!("{NAME}_multi-{}", signed.session.token.to_lowercase());
    for name in [NAME, multi.as_str()] {
        let value = jar.get(name).unwrap();
        assert!(
            current.unsign(value.as_bytes()).is_some(),
            "{name} not re-signed: {lines:?}"
        );
    }
}
