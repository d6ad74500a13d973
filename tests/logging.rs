//! Rejections are logged with a reason and never the token. Its own test binary: `tracing`
//! caches callsite interest process-wide, so a scoped subscriber must not share the process
//! with tests running on other threads.

mod common;

use axum::routing::get;
use common::{get_req, send, Captured, SECRET};
use tower_auth_session::extract::CurrentUser;
use tower_auth_session::Clock as _;
use tower_auth_session::{MemoryStore, SessionConfig, SessionLayer};

const COOKIE: &str = "better-auth.session_token";

#[test]
fn rejections_are_logged_with_a_reason_and_never_the_token() {
    let captured = Captured::default();
    let subscriber = captured.subscriber(tracing::Level::TRACE);
    let token = "SecretTokenValue0123456789abcdef";
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let layer = SessionLayer::new(
                SessionConfig::builder().secret(SECRET).build().unwrap(),
                MemoryStore::new(),
            );
            let app = axum::Router::new()
                .route(
                    "/me",
                    get(|CurrentUser(u): CurrentUser| async move { u.email.clone() }),
                )
                .layer(layer.clone());
            let cookie = format!(
                "{COOKIE}={}",
                layer.config().signer().sign_cookie_value(token)
            );
            send(app.clone(), get_req("/me", Some(&cookie))).await;
            send(
                app.clone(),
                get_req("/me", Some(&format!("{COOKIE}={token}.bad"))),
            )
            .await;
            send(app, get_req("/me", None)).await;

            // An expired session, and a store that is down.
            let clock = tower_auth_session::ManualClock::new(time::OffsetDateTime::now_utc());
            let store = MemoryStore::new();
            let user = tower_auth_session::User::new("log@example.com", "L", clock.now());
            store.insert_user(user.clone());
            let layer = SessionLayer::new(
                SessionConfig::builder()
                    .secret(SECRET)
                    .clock(clock.clone())
                    .build()
                    .unwrap(),
                store,
            );
            let signed = layer
                .manager()
                .sign_in(&user, tower_auth_session::SignIn::new())
                .await
                .unwrap();
            let expired = common::session_cookie(&signed);
            clock.advance(time::Duration::days(8));
            let app = axum::Router::new()
                .route(
                    "/me",
                    get(|CurrentUser(u): CurrentUser| async move { u.email.clone() }),
                )
                .layer(layer);
            send(app, get_req("/me", Some(&expired))).await;
            let down = axum::Router::new()
                .route(
                    "/me",
                    get(|CurrentUser(u): CurrentUser| async move { u.email.clone() }),
                )
                .layer(SessionLayer::new(
                    SessionConfig::builder().secret(SECRET).build().unwrap(),
                    common::Down,
                ));
            send(down, get_req("/me", Some(&cookie))).await;
        });
    });
    let logs = captured.take();
    assert!(logs.contains("unknown token or user missing"), "{logs}");
    assert!(logs.contains("bad_signature"), "{logs}");
    assert!(logs.contains("no_credential"), "{logs}");
    assert!(logs.contains("reason=\"expired\""), "{logs}");
    assert!(logs.contains("reason=\"store_error\""), "{logs}");
    // The token is tagged by the first 8 hex digits of its SHA-256, never written out.
    let tag = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(token.as_bytes());
        digest
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert!(
        logs.contains(&format!("token={tag}")),
        "tag {tag} in:\n{logs}"
    );
    assert!(
        !logs.contains(token),
        "the token never appears in logs:\n{logs}"
    );
}
