//! Bearer tokens and trusted origins checked against the live Better Auth peer (its `bearer()`
//! plugin and `trustedOrigins`), both sides on one SQLite file.

mod common;

use axum::routing::{get, post};
use axum::Router;
use common::process::{better_auth, http, post_json, Server};
use serde_json::json;
use tower_auth_session::extract::CurrentUser;
use tower_auth_session::{
    Bearer, SessionConfig, SessionConfigBuilder, SessionLayer, SignIn, SqliteStore,
};

struct Both {
    ba: Server,
    app: Router,
    layer: SessionLayer<SqliteStore>,
    _dir: tempfile::TempDir,
}

async fn both(
    test: &str,
    ba_env: &[(&str, &str)],
    rust: impl FnOnce(SessionConfigBuilder) -> SessionConfigBuilder,
) -> Option<Both> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let ba_db = format!("sqlite:{}", path.display());
    let mut env = vec![
        ("BETTER_AUTH_SECRET", common::SECRET),
        ("BA_DB", ba_db.as_str()),
        ("BA_MIGRATE", "1"),
    ];
    env.extend_from_slice(ba_env);
    let ba = better_auth(&env, test)?;
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let layer = SessionLayer::new(
        rust(SessionConfig::builder().secret(common::SECRET))
            .build()
            .unwrap(),
        store,
    );
    let app = Router::new()
        .route(
            "/me",
            get(|CurrentUser(u): CurrentUser| async move { u.email.clone() }),
        )
        .route(
            "/write",
            post(|CurrentUser(u): CurrentUser| async move { u.email.clone() }),
        )
        .layer(layer.clone());
    Some(Both {
        ba,
        app,
        layer,
        _dir: dir,
    })
}

fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> http::Request<axum::body::Body> {
    let mut b = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(axum::body::Body::empty()).unwrap()
}

#[tokio::test]
async fn bearer_tokens_work_in_both_directions() {
    let Some(b) = both(
        "bearer_tokens_work_in_both_directions",
        &[("BA_BEARER", "1")],
        |c| c.bearer(Bearer::Signed),
    )
    .await
    else {
        return;
    };
    // Better Auth hands out set-auth-token; Rust accepts it.
    let up = post_json(
        &b.ba.url("/test/sign-up"),
        json!({"email": "bearer@example.com", "password": "correct horse battery"}),
    )
    .await;
    let token = up["headers"]["set-auth-token"]
        .as_str()
        .expect("Better Auth sent set-auth-token")
        .to_owned();
    assert!(token.ends_with('='), "decoded form: {token}");
    let auth = format!("Bearer {token}");
    let r = common::send(
        b.app.clone(),
        req("GET", "/me", &[("authorization", &auth)]),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "bearer@example.com"));

    // Rust mints one (same value it would send in set-auth-token); Better Auth accepts it.
    let user = b
        .layer
        .store()
        .find_user_by_email("bearer@example.com")
        .await
        .unwrap()
        .unwrap();
    let signed = b
        .layer
        .manager()
        .sign_in(&user, SignIn::new())
        .await
        .unwrap();
    assert_eq!(
        signed.cookies.auth_token(),
        Some(signed.signed_token.as_str())
    );
    let auth = format!("Bearer {}", signed.signed_token);
    let got = http(
        "GET",
        &b.ba.url("/api/auth/get-session"),
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(
        got.json()["user"]["email"],
        "bearer@example.com",
        "{}",
        got.body
    );
    assert_eq!(got.json()["session"]["token"], signed.session.token);

    // A forged signature is refused by both.
    let forged = format!(
        "Bearer {}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        signed.session.token
    );
    let got = http(
        "GET",
        &b.ba.url("/api/auth/get-session"),
        &[("authorization", &forged)],
        None,
    )
    .await;
    assert_eq!(got.body, "null", "Better Auth refuses the forgery");
    let r = common::send(
        b.app.clone(),
        req("GET", "/me", &[("authorization", &forged)]),
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn trusted_origins_agree_with_better_auth() {
    let trusted = "https://app.example.com";
    let Some(b) = both(
        "trusted_origins_agree_with_better_auth",
        &[("BA_TRUSTED_ORIGINS", trusted)],
        // Better Auth trusts its baseURL's origin by itself; so does the layer given it.
        |c| {
            c.base_url("http://localhost:3000")
                .trusted_origins([trusted])
        },
    )
    .await
    else {
        return;
    };
    let up = post_json(
        &b.ba.url("/test/sign-up"),
        json!({"email": "origin@example.com", "password": "correct horse battery"}),
    )
    .await;
    let cookie = up["cookie"].as_str().unwrap().to_owned();

    // Each case: headers, and whether both sides must accept the cookie-authenticated POST.
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, bool);
    let cases: [Case<'_>; 9] = [
        ("trusted origin", vec![("origin", trusted)], true),
        (
            "base URL origin",
            vec![("origin", "http://localhost:3000")],
            true,
        ),
        (
            "trusted Referer",
            vec![("referer", "https://app.example.com/account")],
            true,
        ),
        (
            "cross-site origin",
            vec![("origin", "https://evil.test")],
            false,
        ),
        ("Origin: null", vec![("origin", "null")], false),
        (
            "Origin: null from the page's own origin (Referrer-Policy: no-referrer)",
            // Better Auth checks the origin the request was sent to (from `Host`), which the
            // browser says the page shares.
            vec![
                ("origin", "null"),
                ("sec-fetch-site", "same-origin"),
                ("host", "localhost:3000"),
            ],
            true,
        ),
        (
            "Origin: null, same-origin, sent to an untrusted host",
            vec![
                ("origin", "null"),
                ("sec-fetch-site", "same-origin"),
                ("host", "evil.test"),
            ],
            false,
        ),
        (
            "trusted origin with its default port",
            vec![("origin", "https://app.example.com:443")],
            true,
        ),
        (
            "look-alike host",
            vec![("origin", "https://app.example.com.evil.test")],
            false,
        ),
    ];
    for (what, headers, ok) in cases {
        let mut h = headers.clone();
        h.push(("cookie", cookie.as_str()));
        // Better Auth: revoke-other-sessions is a cookie-authenticated POST that changes nothing
        // for the current session.
        let ba = http(
            "POST",
            &b.ba.url("/api/auth/revoke-other-sessions"),
            &h,
            Some("{}"),
        )
        .await;
        let rust = common::send(b.app.clone(), req("POST", "/write", &h)).await;
        assert_eq!(
            ba.status == 200,
            ok,
            "Better Auth, {what}: {} {}",
            ba.status,
            ba.body
        );
        assert_eq!(
            rust.status == 200,
            ok,
            "Rust, {what}: {} {}",
            rust.status,
            rust.body
        );
        if !ok {
            assert_eq!(rust.status, 403);
            assert_eq!(rust.json()["code"], "INVALID_ORIGIN");
            assert_eq!(ba.status, 403, "{what}");
        }
    }
}
