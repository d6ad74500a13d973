//! Issue 15 against the live Better Auth 1.7.25 peer with its plugins (`admin()`,
//! `multiSession()`, `bearer()`, `jwt()` with its default EdDSA and with ES256), both sides on
//! one SQLite file made by Better Auth's migration: for the same requests, the verdicts agree.
#![cfg(all(feature = "jwt", feature = "sqlite", feature = "axum"))]

mod common;

use std::time::Duration;

use axum::routing::{get, post};
use axum::{Json, Router};
use common::process::{better_auth, post_json, Server};
use common::{send, Jar};
use http::{header, Request};
use serde_json::{json, Value};
use tower_auth_session::extract::{MaybeUser, Sessions};
use tower_auth_session::jwt::{JwksUrl, JwtVerifier};
use tower_auth_session::{
    Bearer, ManualClock, SessionConfig, SessionConfigBuilder, SessionError, SessionLayer,
    SqliteStore,
};

const BASE: &str = "http://localhost:3000";

struct Both {
    ba: Server,
    store: SqliteStore,
    app: Router,
    _dir: tempfile::TempDir,
}

/// Better Auth with `plugins` (and `extra` environment), and a Rust app on the same file:
/// `GET /me` (the email or `anonymous`), `POST /sign-in {email}` (Better Auth's 403
/// `BANNED_USER` for a banned user), `POST /sign-out`.
async fn both(
    test: &str,
    plugins: &str,
    extra: &[(&str, &str)],
    rust: impl FnOnce(SessionConfigBuilder, &Server) -> SessionConfigBuilder,
) -> Option<Both> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let ba_db = format!("sqlite:{}", path.display());
    let mut env = vec![
        ("BETTER_AUTH_SECRET", common::SECRET),
        ("BA_DB", ba_db.as_str()),
        ("BA_MIGRATE", "1"),
        ("BA_PLUGINS", plugins),
    ];
    env.extend_from_slice(extra);
    let ba = better_auth(&env, test)?;
    let store = SqliteStore::builder(format!("sqlite://{}", path.display()))
        .create_schema(false)
        .build()
        .await
        .unwrap();
    let config = rust(SessionConfig::builder().secret(common::SECRET), &ba)
        .build()
        .unwrap();
    let users = store.clone();
    let app = Router::new()
        .route(
            "/me",
            get(|MaybeUser(u): MaybeUser| async move {
                u.map_or("anonymous".to_owned(), |u| u.email.clone())
            }),
        )
        .route(
            "/sign-in",
            post(move |sessions: Sessions, Json(body): Json<Value>| {
                let users = users.clone();
                async move {
                    let email = body["email"].as_str().unwrap_or_default();
                    let user = users.find_user_by_email(email).await.unwrap().unwrap();
                    match sessions.sign_in(&user).await {
                        Ok(signed) => Ok((signed, Json(json!({"ok": true})))),
                        Err(error @ SessionError::Banned(_)) => Err((
                            error.status(),
                            Json(json!({"code": error.code(), "message": SessionError::BANNED_USER_MESSAGE})),
                        )),
                        Err(error) => panic!("{error}"),
                    }
                }
            }),
        )
        .route(
            "/sign-out",
            post(|sessions: Sessions| async move { (sessions.sign_out().await.unwrap(), "bye") }),
        )
        .layer(SessionLayer::new(config, store.clone()));
    Some(Both {
        ba,
        store,
        app,
        _dir: dir,
    })
}

impl Both {
    async fn ba_sign_up(&self, email: &str) -> Value {
        let up = post_json(
            &self.ba.url("/test/sign-up"),
            json!({"email": email, "password": "correct horse battery"}),
        )
        .await;
        assert_eq!(up["status"], 200, "{up}");
        up
    }
    async fn ba_sign_in(&self, email: &str) -> Value {
        post_json(
            &self.ba.url("/test/sign-in"),
            json!({"email": email, "password": "correct horse battery"}),
        )
        .await
    }
    async fn ba_session(&self, headers: Value) -> Value {
        post_json(
            &self.ba.url("/test/get-session"),
            json!({ "headers": headers }),
        )
        .await
    }
    async fn rust(
        &self,
        method: &str,
        path: &str,
        jar: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> common::Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(jar) = jar {
            req = req.header(header::COOKIE, jar);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                axum::body::Body::from(b.to_string())
            }
            None => axum::body::Body::empty(),
        };
        send(self.app.clone(), req.body(body).unwrap()).await
    }
    async fn sessions_of(&self, user_id: &str) -> i64 {
        sqlx::query_scalar(r#"select count(*) from "session" where "userId" = ?1"#)
            .bind(user_id)
            .fetch_one(self.store.pool())
            .await
            .unwrap()
    }
}

fn set_cookies(v: &Value) -> Vec<String> {
    v["setCookie"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn bans_agree_with_better_auth() {
    let test = "bans_agree_with_better_auth";
    let Some(p) = both(test, "admin", &[], |b, _| b).await else {
        return;
    };
    let up = p.ba_sign_up("banned@example.com").await;
    let id = up["body"]["user"]["id"].as_str().unwrap().to_owned();
    let ban_url = p.ba.url("/test/ban-user");
    let ban = |seconds: i64| {
        post_json(
            &ban_url,
            json!({"userId": id, "banReason": "spam", "banExpiresInSeconds": seconds}),
        )
    };
    ban(3600).await;
    let before = p.sessions_of(&id).await;

    let rust = p
        .rust(
            "POST",
            "/sign-in",
            None,
            &[],
            Some(json!({"email": "banned@example.com"})),
        )
        .await;
    let ba = p.ba_sign_in("banned@example.com").await;
    assert_eq!(
        (rust.status, ba["status"].as_u64()),
        (403, Some(403)),
        "{} / {ba}",
        rust.body
    );
    assert_eq!(rust.json()["code"], "BANNED_USER");
    assert_eq!(ba["body"]["code"], "BANNED_USER");
    assert_eq!(rust.json()["message"], ba["body"]["message"]);
    assert!(rust.set_cookies().is_empty());
    assert_eq!(
        p.sessions_of(&id).await,
        before,
        "no session row from either side"
    );

    // An ended ban: both lift it and sign in.
    ban(-5).await;
    let rust = p
        .rust(
            "POST",
            "/sign-in",
            None,
            &[],
            Some(json!({"email": "banned@example.com"})),
        )
        .await;
    assert_eq!(rust.status, 200, "{}", rust.body);
    let row = post_json(&p.ba.url("/test/user"), json!({"userId": id})).await;
    assert_eq!(row["user"]["banned"], false, "{row}");
    assert_eq!(row["user"]["banReason"], Value::Null);
    assert_eq!(row["user"]["banExpires"], Value::Null);
    let cookie = rust.cookie_pair("better-auth.session_token");
    let got = p.ba_session(json!({ "cookie": cookie })).await;
    assert_eq!(
        got["session"]["user"]["id"],
        id.as_str(),
        "Better Auth accepts the session"
    );
    ban(-5).await;
    let ba = p.ba_sign_in("banned@example.com").await;
    assert_eq!(ba["status"], 200, "{ba}");
}

#[tokio::test]
async fn multi_session_cookies_agree_with_better_auth() {
    let test = "multi_session_cookies_agree_with_better_auth";
    let Some(p) = both(test, "multiSession", &[], |b, _| b.multi_session(5)).await else {
        return;
    };
    // Better Auth signs A in; Rust signs B in, in the same browser.
    let a = p.ba_sign_up("a@example.com").await;
    p.ba_sign_up("b@example.com").await;
    let mut jar = Jar::default();
    jar.apply(&set_cookies(&a));
    assert_eq!(
        jar.names().iter().filter(|n| n.contains("_multi-")).count(),
        1,
        "{:?}",
        jar.names()
    );
    let r = p
        .rust(
            "POST",
            "/sign-in",
            Some(&jar.header()),
            &[],
            Some(json!({"email": "b@example.com"})),
        )
        .await;
    assert_eq!(r.status, 200);
    jar.apply(&r.set_cookies());
    let listed = post_json(
        &p.ba.url("/test/list-device-sessions"),
        json!({"headers": {"cookie": jar.header()}}),
    )
    .await;
    let mut emails: Vec<&str> = listed["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["user"]["email"].as_str().unwrap())
        .collect();
    emails.sort_unstable();
    assert_eq!(
        emails,
        ["a@example.com", "b@example.com"],
        "Better Auth's account switcher lists Rust's sign-in"
    );

    // C is signed in elsewhere; a forged `_multi-` cookie names C's token.
    let c = p.ba_sign_up("c@example.com").await;
    let c_cookie = common::process::cookie_of(&c, "better-auth.session_token");
    let c_token = c_cookie
        .split_once('=')
        .unwrap()
        .1
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let forged = format!("better-auth.session_token_multi-{}", c_token.to_lowercase());
    jar.0.push((
        forged.clone(),
        format!("{c_token}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D"),
    ));
    let a_cookie = common::process::cookie_of(&a, "better-auth.session_token");

    // Rust signs out: A and B end, C stays, as Better Auth's sign-out would.
    let r = p
        .rust("POST", "/sign-out", Some(&jar.header()), &[], None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        p.ba_session(json!({"cookie": a_cookie})).await["session"],
        Value::Null,
        "A ended"
    );
    assert!(
        p.ba_session(json!({"cookie": c_cookie})).await["session"].is_object(),
        "the forged cookie deleted nothing"
    );
    let expired: Vec<String> = r
        .set_cookies()
        .into_iter()
        .filter(|l| l.contains("_multi-") && l.contains("Max-Age=0"))
        .collect();
    assert_eq!(expired.len(), 2, "{expired:?}");
    assert!(!expired.iter().any(|l| l.starts_with(&forged)));

    // The other way: Rust signs D in beside Better Auth's E; Better Auth's sign-out ends D.
    let e = p.ba_sign_up("e@example.com").await;
    p.ba_sign_up("d@example.com").await;
    let mut jar = Jar::default();
    jar.apply(&set_cookies(&e));
    let r = p
        .rust(
            "POST",
            "/sign-in",
            Some(&jar.header()),
            &[],
            Some(json!({"email": "d@example.com"})),
        )
        .await;
    jar.apply(&r.set_cookies());
    let d_cookie = r.cookie_pair("better-auth.session_token");
    assert_eq!(
        p.rust("GET", "/me", Some(&d_cookie), &[], None).await.body,
        "d@example.com"
    );
    let out = post_json(
        &p.ba.url("/test/sign-out"),
        json!({"headers": {"cookie": jar.header()}}),
    )
    .await;
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(
        p.rust("GET", "/me", Some(&d_cookie), &[], None).await.body,
        "anonymous"
    );
}

#[tokio::test]
async fn bearer_precedence_agrees_with_better_auth() {
    let test = "bearer_precedence_agrees_with_better_auth";
    // Better Auth's bearer() default accepts unsigned tokens too: Bearer::SignedOrRaw.
    let Some(p) = both(test, "bearer", &[], |b, _| b.bearer(Bearer::SignedOrRaw)).await else {
        return;
    };
    let a = p.ba_sign_up("a@example.com").await;
    let b = p.ba_sign_up("b@example.com").await;
    let cookie_a = common::process::cookie_of(&a, "better-auth.session_token");
    let bearer_b = b["headers"]["set-auth-token"].as_str().unwrap().to_owned();
    let raw_b = bearer_b.split('.').next().unwrap().to_owned();
    let bad_cookie = format!("{}x", &cookie_a[..cookie_a.len() - 4]);
    let bad_bearer = format!("{raw_b}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let cases: [(&str, Option<&str>, Option<&str>); 7] = [
        ("cookie A, bearer B", Some(&cookie_a), Some(&bearer_b)),
        ("bad cookie, bearer B", Some(&bad_cookie), Some(&bearer_b)),
        ("cookie A, bad bearer", Some(&cookie_a), Some(&bad_bearer)),
        ("cookie A, raw bearer B", Some(&cookie_a), Some(&raw_b)),
        ("cookie A, garbage bearer", Some(&cookie_a), Some("garbage")),
        ("bearer B alone", None, Some(&bearer_b)),
        ("cookie A alone", Some(&cookie_a), None),
    ];
    for (what, cookie, bearer) in cases {
        let mut headers = serde_json::Map::new();
        if let Some(c) = cookie {
            headers.insert("cookie".into(), c.into());
        }
        let auth = bearer.map(|b| format!("Bearer {b}"));
        if let Some(a) = &auth {
            headers.insert("authorization".into(), a.as_str().into());
        }
        let ba = p.ba_session(Value::Object(headers)).await;
        let ba_email = ba["session"]["user"]["email"]
            .as_str()
            .unwrap_or("anonymous")
            .to_owned();
        let extra: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let rust = p.rust("GET", "/me", cookie, &extra, None).await;
        assert_eq!(rust.body, ba_email, "{what}: Rust and Better Auth disagree");
    }
}

/// Better Auth's `/api/auth/token` JWTs, default EdDSA and ES256, verified here with the keys
/// from its `/api/auth/jwks` and from the `jwks` table.
#[tokio::test]
async fn jwt_tokens_from_better_auth_verify_here() {
    for alg in ["EdDSA", "ES256"] {
        let test = "jwt_tokens_from_better_auth_verify_here";
        let clock = ManualClock::new(time::OffsetDateTime::now_utc());
        let c = clock.clone();
        let Some(p) = both(test, "jwt", &[("BA_JWT_ALG", alg)], move |b, ba| {
            let keys = JwksUrl::new(&ba.url("/api/auth/jwks"), Duration::from_secs(5)).unwrap();
            b.clock(c)
                .jwt(JwtVerifier::builder(BASE).keys(keys).build().unwrap())
        })
        .await
        else {
            return;
        };
        let email = format!("jwt-{}@example.com", alg.to_lowercase());
        let up = p.ba_sign_up(&email).await;
        let cookie = common::process::cookie_of(&up, "better-auth.session_token");
        let token = post_json(
            &p.ba.url("/test/token"),
            json!({"headers": {"cookie": cookie}}),
        )
        .await;
        assert_eq!(token["decoded"]["header"]["alg"], alg, "{token}");
        let jwt = token["token"].as_str().unwrap().to_owned();
        let auth = format!("Bearer {jwt}");

        let me = p
            .rust("GET", "/me", None, &[("authorization", &auth)], None)
            .await;
        assert_eq!(me.body, email, "{alg} via the JWKS URL");

        // The same through the jwks table Better Auth's migration made.
        let config = SessionConfig::builder()
            .secret(common::SECRET)
            .clock(clock.clone())
            .jwt(
                JwtVerifier::builder(BASE)
                    .keys(p.store.jwks().default_algorithm(alg.parse().unwrap()))
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let from_table = common::email_router(SessionLayer::new(config, p.store.clone()));
        let req = |t: &str| {
            Request::get("/")
                .header(header::AUTHORIZATION, format!("Bearer {t}"))
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert_eq!(
            send(from_table.clone(), req(&jwt)).await.body,
            email,
            "{alg} via the jwks table"
        );

        // Tampered, or past its 15 minutes: anonymous on both paths.
        let last = if jwt.ends_with('A') { "B" } else { "A" };
        let tampered = format!("{}{last}", &jwt[..jwt.len() - 1]);
        assert_eq!(
            send(from_table.clone(), req(&tampered)).await.body,
            "anonymous"
        );
        clock.set(time::OffsetDateTime::now_utc() + time::Duration::minutes(16));
        assert_eq!(
            send(from_table, req(&jwt)).await.body,
            "anonymous",
            "{alg}: expired"
        );
        let me = p
            .rust("GET", "/me", None, &[("authorization", &auth)], None)
            .await;
        assert_eq!(me.body, "anonymous");
    }
}

/// Better Auth's `anonymous()` plugin: a guest who signs in with an account is deleted (their
/// row and sessions) by Better Auth's own sign-in and by a Rust sign-in through `Sessions`
/// alike, and the guest's cookie is then signed out on both sides.
#[tokio::test]
async fn anonymous_guests_are_deleted_at_sign_in_on_both_sides() {
    let test = "anonymous_guests_are_deleted_at_sign_in_on_both_sides";
    let Some(p) = both(test, "anonymous", &[], |b, _| {
        b.delete_anonymous_users(true)
    })
    .await
    else {
        return;
    };
    for side in ["better-auth", "rust"] {
        let email = format!("{side}@example.com");
        p.ba_sign_up(&email).await;
        let guest = post_json(&p.ba.url("/test/sign-in-anonymous"), json!({})).await;
        assert_eq!(guest["status"], 200, "{guest}");
        let guest_id = guest["body"]["user"]["id"].as_str().unwrap().to_owned();
        let cookie = guest["cookie"].as_str().unwrap().to_owned();
        let me = p.rust("GET", "/me", Some(&cookie), &[], None).await;
        assert!(
            me.body.ends_with("@anonymous.placeholder.invalid"),
            "the guest, here: {}",
            me.body
        );
        let row = p.store.find_user(&guest_id).await.unwrap().unwrap();
        assert!(row.is_anonymous(), "{:?}", row.extra);
        assert_eq!(p.sessions_of(&guest_id).await, 1);

        let status = if side == "better-auth" {
            let signed = post_json(
                &p.ba.url("/test/sign-in"),
                json!({"email": email, "password": "correct horse battery", "headers": {"cookie": cookie}}),
            )
            .await;
            signed["status"].as_u64().unwrap()
        } else {
            let signed = p
                .rust(
                    "POST",
                    "/sign-in",
                    Some(&cookie),
                    &[],
                    Some(json!({ "email": email })),
                )
                .await;
            u64::from(signed.status)
        };
        assert_eq!(status, 200, "{side}");
        assert!(
            p.store.find_user(&guest_id).await.unwrap().is_none(),
            "{side}: the guest's row"
        );
        assert_eq!(
            p.sessions_of(&guest_id).await,
            0,
            "{side}: the guest's sessions"
        );
        let me = p.rust("GET", "/me", Some(&cookie), &[], None).await;
        assert_eq!(me.body, "anonymous", "{side}");
        let ba = p.ba_session(json!({ "cookie": cookie })).await;
        assert!(ba["session"].is_null(), "{side}: {ba}");
    }
}
