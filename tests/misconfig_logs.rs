//! Loud misconfiguration in the logs: a burst of well-formed cookies that fail the signature
//! check logs one WARN naming `BETTER_AUTH_SECRET` (a single forged cookie does not), and a
//! cache cookie of another strategy is reported once. One test in its own binary: `tracing`
//! caches callsite interest process-wide.
#![cfg(feature = "axum")]

mod common;

use common::{get_req, send, Captured};
use time::OffsetDateTime;
use tower_auth_session::{CookieCache, MemoryStore, SessionConfig, SessionLayer, SignIn, User};

#[test]
fn misconfiguration_is_logged_once() {
    let captured = Captured::default();
    let subscriber = captured.subscriber(tracing::Level::WARN);
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = MemoryStore::new();
            let user = User::new("m@example.com", "M", OffsetDateTime::now_utc());
            store.insert_user(user.clone());
            let config = |secret: &str| {
                SessionConfig::builder()
                    .secret(secret)
                    .cookie_cache(CookieCache::compact())
                    .build()
                    .unwrap()
            };
            // Cookies signed by a Better Auth server with another secret.
            let other = SessionLayer::new(
                config("another-secret-of-the-node-app-0123456789"),
                store.clone(),
            );
            let layer = SessionLayer::new(config(common::SECRET), store.clone());
            let app = common::email_router(layer.clone());
            let mut cookies = Vec::new();
            for _ in 0..60 {
                let signed = other.manager().sign_in(&user, SignIn::new()).await.unwrap();
                cookies.push(common::session_cookie(&signed));
            }

            // Two, and a malformed one: below a burst.
            for cookie in &cookies[..2] {
                assert_eq!(
                    send(app.clone(), get_req("/", Some(cookie))).await.body,
                    "anonymous"
                );
            }
            send(
                app.clone(),
                get_req("/", Some("better-auth.session_token=garbage")),
            )
            .await;
            assert_eq!(captured.take(), "", "no warning for one or two bad cookies");

            // A burst of fifty: one warning, naming the likely cause.
            for cookie in &cookies[2..52] {
                assert_eq!(
                    send(app.clone(), get_req("/", Some(cookie))).await.body,
                    "anonymous"
                );
            }
            let logged = captured.take();
            assert_eq!(logged.matches(" WARN ").count(), 1, "{logged}");
            assert!(logged.contains("BETTER_AUTH_SECRET"), "{logged}");
            assert!(
                !cookies.iter().any(|c| logged.contains(&c[27..59])),
                "no token in the log"
            );

            // A jwt cache cookie next to this compact layer: reported once.
            let jwt = SessionLayer::new(
                SessionConfig::builder()
                    .secret(common::SECRET)
                    .cookie_cache(CookieCache::jwt())
                    .build()
                    .unwrap(),
                store.clone(),
            );
            let signed = jwt.manager().sign_in(&user, SignIn::new()).await.unwrap();
            let session = common::session_cookie(&signed);
            let r = send(common::email_router(jwt), get_req("/", Some(&session))).await;
            let jar = format!("{session}; {}", r.cookie_pair("better-auth.session_data"));
            for _ in 0..5 {
                send(app.clone(), get_req("/", Some(&jar))).await;
            }
            let logged = captured.take();
            assert_eq!(logged.matches(" WARN ").count(), 1, "{logged}");
            assert!(logged.contains("cookie-cache strategy"), "{logged}");
        });
    });
}
