//! Issue 8: bearer tokens, the origin check for cookie-authenticated writes, read-only
//! verification and the fresh-session guard.

mod common;

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use common::*;
use http::{header, Request};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tower_auth_session::extract::{CurrentSession, FreshSession, Sessions};
use tower_auth_session::{
    Bearer, ManualClock, MemoryStore, SessionConfig, SessionConfigBuilder, SessionInfo,
    SessionLayer, SignIn, User,
};

const T0: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);
const COOKIE: &str = "better-auth.session_token";

struct Fx {
    app: Router,
    layer: SessionLayer<Counting<MemoryStore>>,
    store: Counting<MemoryStore>,
    clock: ManualClock,
    user: User,
}

fn fx(f: impl FnOnce(SessionConfigBuilder) -> SessionConfigBuilder) -> Fx {
    let clock = ManualClock::new(T0);
    let store = Counting::new(MemoryStore::new());
    let user = User::new("bea@example.com", "Bea", T0);
    store.inner.insert_user(user.clone());
    let config = f(SessionConfig::builder().secret(SECRET).clock(clock.clone()))
        .build()
        .unwrap();
    let layer = SessionLayer::new(config, store.clone());
    let u = user.clone();
    let app = Router::new()
        .route(
            "/me",
            get(
                |CurrentSession(a): CurrentSession, info: SessionInfo| async move {
                    format!(
                        "{} needs_refresh={} bearer={}",
                        a.user.email, info.needs_refresh, info.via_bearer
                    )
                },
            ),
        )
        .route(
            "/write",
            post(|CurrentSession(a): CurrentSession| async move { a.user.email.clone() }),
        )
        .route("/webhooks/stripe", post(|| async { "hook" }))
        .route("/public-write", post(|| async { "ok" }))
        .route(
            "/sensitive",
            post(|FreshSession(a): FreshSession| async move { a.user.email.clone() }),
        )
        .route(
            "/sign-in",
            post(move |s: Sessions| {
                let u = u.clone();
                async move { (s.sign_in(&u).await.unwrap(), "in") }
            }),
        )
        .route(
            "/sign-out",
            post(|s: Sessions| async move { (s.sign_out().await.unwrap(), "out") }),
        )
        .layer(layer.clone());
    Fx {
        app,
        layer,
        store,
        clock,
        user,
    }
}

impl Fx {
    async fn signed(&self) -> tower_auth_session::SignedIn {
        self.layer
            .manager()
            .sign_in(&self.user, SignIn::new())
            .await
            .unwrap()
    }
    async fn cookie(&self) -> String {
        let s = self.signed().await;
        let line = s
            .cookies
            .iter()
            .next()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        line.split(';').next().unwrap().to_owned()
    }
    async fn call(&self, req: Request<Body>) -> Reply {
        send(self.app.clone(), req).await
    }
}

fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap()
}

// ---- bearer -------------------------------------------------------------------------------

#[tokio::test]
async fn bearer_is_off_by_default() {
    let f = fx(|b| b);
    let signed = f.signed().await;
    let auth = format!("Bearer {}", signed.signed_token);
    let r = f.call(req("GET", "/me", &[("authorization", &auth)])).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        f.store.calls(),
        1,
        "only the sign-in wrote; the bearer was never looked up"
    );
}

#[tokio::test]
async fn signed_bearer_tokens_authenticate_in_any_case_and_encoding() {
    let f = fx(|b| b.bearer(Bearer::Signed));
    let signed = f.signed().await;
    let encoded = f
        .layer
        .config()
        .signer()
        .sign_cookie_value(&signed.session.token);
    for auth in [
        format!("Bearer {}", signed.signed_token),
        format!("bearer {}", signed.signed_token),
        format!("BEARER   {} ", signed.signed_token),
        format!("Bearer {encoded}"),
    ] {
        let r = f.call(req("GET", "/me", &[("authorization", &auth)])).await;
        assert_eq!(r.status, 200, "{auth}: {}", r.body);
        assert!(r.body.ends_with("bearer=true"), "{}", r.body);
    }
    // Raw tokens need their own opt-in.
    let raw = format!("Bearer {}", signed.session.token);
    assert_eq!(
        f.call(req("GET", "/me", &[("authorization", &raw)]))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn raw_bearer_tokens_need_their_own_opt_in() {
    let f = fx(|b| b.bearer(Bearer::SignedOrRaw));
    let signed = f.signed().await;
    let raw = format!("Bearer {}", signed.session.token);
    assert_eq!(
        f.call(req("GET", "/me", &[("authorization", &raw)]))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn malformed_bearer_values_are_anonymous_without_store_calls() {
    let f = fx(|b| b.bearer(Bearer::Signed));
    let signed = f.signed().await;
    let calls = f.store.calls();
    let (token, sig) = signed.signed_token.split_once('.').unwrap();
    for auth in [
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Basic dXNlcjpwYXNz".to_owned(),
        format!("Bearer {token}"),
        format!("Bearer {token}.{}", &sig[1..]),
        format!("Bearer {token}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        format!("Bearer {token}.{sig}%ZZ"),
        format!("Bearer {}", "x.".repeat(3000)),
        format!("Bearer{}", signed.signed_token),
    ] {
        let r = f.call(req("GET", "/me", &[("authorization", &auth)])).await;
        assert_eq!(r.status, 401, "{auth}");
        assert!(r.set_cookies().is_empty());
    }
    assert_eq!(
        f.store.calls(),
        calls,
        "no store call for malformed bearer values"
    );
}

/// Better Auth's bearer plugin: a bearer value that verifies decides over the session cookie
/// (another user's cookie, or a forged one, never blocks it); one that does not verify is ignored
/// and the cookie decides.
#[tokio::test]
async fn a_verified_bearer_decides_over_the_cookie() {
    let f = fx(|b| b.bearer(Bearer::Signed));
    let bea = f.signed().await;
    let bearer = format!("Bearer {}", bea.signed_token);
    let other = User::new("cookie@example.com", "Cookie", T0);
    f.store.inner.insert_user(other.clone());
    let theirs = f
        .layer
        .manager()
        .sign_in(&other, SignIn::new())
        .await
        .unwrap();
    let their_cookie = common::session_cookie(&theirs);
    for cookie in [format!("{COOKIE}=forged.value"), their_cookie.clone()] {
        let r = f
            .call(req(
                "GET",
                "/me",
                &[("authorization", &bearer), ("cookie", &cookie)],
            ))
            .await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "bea@example.com needs_refresh=false bearer=true"),
            "the bearer decides over {cookie}"
        );
    }
    let forged = format!("Bearer {}.{}=", "A".repeat(32), "B".repeat(43));
    let r = f
        .call(req(
            "GET",
            "/me",
            &[("authorization", &forged), ("cookie", &their_cookie)],
        ))
        .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "cookie@example.com needs_refresh=false bearer=false"),
        "a bearer that does not verify is ignored"
    );
}

#[tokio::test]
async fn sign_in_and_refresh_send_set_auth_token() {
    let f = fx(|b| b.bearer(Bearer::Signed));
    let r = f.call(req("POST", "/sign-in", &[])).await;
    let token = r.headers["set-auth-token"].to_str().unwrap().to_owned();
    assert!(token.ends_with('='), "decoded form with a raw '=': {token}");
    assert_eq!(
        r.headers[header::ACCESS_CONTROL_EXPOSE_HEADERS],
        "set-auth-token"
    );
    let cookie = r.cookie_pair(COOKIE);
    assert_eq!(
        percent_decode(cookie.split_once('=').unwrap().1),
        token,
        "the cookie and the bearer carry the same signed value"
    );

    f.clock.set(T0 + Duration::days(2));
    let auth = format!("Bearer {token}");
    let r = f.call(req("GET", "/me", &[("authorization", &auth)])).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["set-auth-token"],
        token.as_str(),
        "refresh re-sends the token"
    );
    assert!(r.set_cookie(COOKIE).unwrap().contains("Max-Age=604800"));
}

/// A handler that sets the session cookie itself decides `set-auth-token`, as Better Auth's
/// bearer plugin reads it from the response's final session cookie: a sign-in during a request
/// whose bearer session was due for refresh sends the new token, not the old one, and a sign-out
/// sends none (the old one was once sent back, and overwrote the handler's).
#[tokio::test]
async fn a_handler_that_sets_the_session_cookie_decides_set_auth_token() {
    let f = fx(|b| b.bearer(Bearer::Signed));
    let old = f.signed().await;
    f.clock.set(T0 + Duration::days(2));
    let auth = format!("Bearer {}", old.signed_token);
    let r = f
        .call(req("POST", "/sign-in", &[("authorization", &auth)]))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new = percent_decode(r.cookie_pair(COOKIE).split_once('=').unwrap().1);
    assert_ne!(new, old.signed_token);
    assert_eq!(r.headers["set-auth-token"], new.as_str());
    assert_eq!(r.headers.get_all("set-auth-token").iter().count(), 1);

    let other = f.signed().await;
    f.clock.set(T0 + Duration::days(4));
    let auth = format!("Bearer {}", other.signed_token);
    let r = f
        .call(req("POST", "/sign-out", &[("authorization", &auth)]))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.set_cookie(COOKIE).unwrap().contains("Max-Age=0"));
    assert!(
        r.headers.get("set-auth-token").is_none(),
        "no token for a session being signed out: {:?}",
        r.headers.get("set-auth-token")
    );
}

fn percent_decode(s: &str) -> String {
    s.replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=")
}

// ---- origin check ---------------------------------------------------------------------------

fn origin_fx() -> Fx {
    fx(|b| {
        b.trusted_origins(["https://app.example.com", "https://*.example.com"])
            .skip_origin_check_for("/webhooks/")
            .bearer(Bearer::Signed)
    })
}

#[tokio::test]
async fn browser_header_combinations() {
    let f = origin_fx();
    let cookie = f.cookie().await;
    let c = cookie.as_str();
    let calls = f.store.calls();
    let refused = [
        (
            "cross-site form POST",
            vec![
                ("origin", "https://evil.test"),
                ("sec-fetch-site", "cross-site"),
            ],
        ),
        (
            "Origin: null (sandboxed iframe, file://)",
            vec![("origin", "null")],
        ),
        (
            "look-alike host",
            vec![("origin", "https://example.com.evil.test")],
        ),
        (
            "look-alike suffix",
            vec![("origin", "https://evilexample.com")],
        ),
        (
            "scheme downgrade",
            vec![("origin", "http://app.example.com")],
        ),
        (
            "untrusted Referer, no Origin",
            vec![("referer", "https://evil.test/page")],
        ),
        (
            "no Origin or Referer, Fetch Metadata cross-site",
            vec![("sec-fetch-site", "cross-site")],
        ),
    ];
    for (what, headers) in refused {
        let mut h = headers.clone();
        h.push(("cookie", c));
        let r = f.call(req("POST", "/write", &h)).await;
        assert_eq!(r.status, 403, "{what}");
        assert_eq!(r.json()["code"], "INVALID_ORIGIN", "{what}");
        assert!(r.set_cookies().is_empty());
    }
    assert_eq!(f.store.calls(), calls, "refusals make no store call");

    let allowed = [
        (
            "same-origin form POST",
            vec![
                ("origin", "https://app.example.com"),
                ("sec-fetch-site", "same-origin"),
            ],
        ),
        (
            "fetch from a trusted subdomain",
            vec![
                ("origin", "https://admin.example.com"),
                ("sec-fetch-site", "same-site"),
            ],
        ),
        (
            "trusted Referer, no Origin",
            vec![("referer", "https://app.example.com/settings?x=1")],
        ),
        ("non-browser client (no Origin, no Fetch Metadata)", vec![]),
    ];
    for (what, headers) in allowed {
        let mut h = headers.clone();
        h.push(("cookie", c));
        let r = f.call(req("POST", "/write", &h)).await;
        assert_eq!(r.status, 200, "{what}: {}", r.body);
    }
}

#[tokio::test]
async fn safe_methods_bearer_cookieless_and_exempt_routes_pass() {
    let f = origin_fx();
    let cookie = f.cookie().await;
    let evil = ("origin", "https://evil.test");
    assert_eq!(
        f.call(req("GET", "/me", &[evil, ("cookie", &cookie)]))
            .await
            .status,
        200
    );
    assert_eq!(
        f.call(req("POST", "/public-write", &[evil])).await.status,
        200,
        "no session cookie"
    );
    assert_eq!(
        f.call(req(
            "POST",
            "/webhooks/stripe",
            &[evil, ("cookie", &cookie)]
        ))
        .await
        .status,
        200,
        "exempt route"
    );
    let signed = f.signed().await;
    let auth = format!("Bearer {}", signed.signed_token);
    assert_eq!(
        f.call(req("POST", "/write", &[evil, ("authorization", &auth)]))
            .await
            .status,
        200,
        "bearer is exempt"
    );
}

#[test]
fn origin_check_configuration_errors_are_loud() {
    let err = SessionConfig::builder()
        .secret(SECRET)
        .trusted_origins(["example.com"])
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("trusted_origins"), "{err}");
    let err = SessionConfig::builder()
        .secret(SECRET)
        .origin_check(true)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("no trusted origin"), "{err}");
}

// ---- read-only ------------------------------------------------------------------------------

#[tokio::test]
async fn read_only_never_writes_but_still_rejects_expired() {
    let f = fx(|b| b.read_only(true));
    let cookie = f.cookie().await;
    let writes = f.store.writes();

    f.clock.set(T0 + Duration::days(1));
    let r = f.call(req("GET", "/me", &[("cookie", &cookie)])).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("needs_refresh=true"), "{}", r.body);
    assert!(r.set_cookies().is_empty());

    f.clock.set(T0 + Duration::hours(1));
    let r = f.call(req("GET", "/me", &[("cookie", &cookie)])).await;
    assert!(r.body.contains("needs_refresh=false"), "{}", r.body);

    f.clock
        .set(T0 + Duration::days(7) + Duration::milliseconds(1));
    let r = f.call(req("GET", "/me", &[("cookie", &cookie)])).await;
    assert_eq!(r.status, 401, "expired is still rejected");
    assert!(r.set_cookies().is_empty(), "but no Set-Cookie");
    assert_eq!(f.store.inner.session_count(), 1, "and no deletion");

    let unknown = format!(
        "{COOKIE}={}",
        f.layer.config().signer().sign_cookie_value("nope")
    );
    assert!(f
        .call(req("GET", "/me", &[("cookie", &unknown)]))
        .await
        .set_cookies()
        .is_empty());
    assert_eq!(f.store.writes(), writes, "read-only: zero writes");
}

// ---- fresh sessions -------------------------------------------------------------------------

#[tokio::test]
async fn fresh_session_guard() {
    let f = fx(|b| b.update_age(Duration::days(30)));
    let cookie = f.cookie().await;
    f.clock
        .set(T0 + Duration::days(1) - Duration::milliseconds(1));
    assert_eq!(
        f.call(req("POST", "/sensitive", &[("cookie", &cookie)]))
            .await
            .status,
        200
    );
    f.clock.set(T0 + Duration::days(1));
    let r = f
        .call(req("POST", "/sensitive", &[("cookie", &cookie)]))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "SESSION_NOT_FRESH");
    assert_eq!(f.call(req("POST", "/sensitive", &[])).await.status, 401);

    let f = fx(|b| b.fresh_age(Duration::ZERO));
    let cookie = f.cookie().await;
    f.clock.set(T0 + Duration::days(6));
    assert_eq!(
        f.call(req("POST", "/sensitive", &[("cookie", &cookie)]))
            .await
            .status,
        200,
        "0 disables"
    );
}

#[tokio::test]
async fn revoke_only_touches_own_sessions() {
    let f = fx(|b| b);
    let mine = f.cookie().await;
    let other = User::new("other@example.com", "O", T0);
    f.store.inner.insert_user(other.clone());
    let theirs = f
        .layer
        .manager()
        .sign_in(&other, SignIn::new())
        .await
        .unwrap();
    let manager = f.layer.manager();
    assert!(!manager
        .revoke_own(&f.user.id, &theirs.session.storage_key())
        .await
        .unwrap());
    assert_eq!(f.store.inner.session_count(), 2);
    let my_token = mine.split_once('=').unwrap().1.split('.').next().unwrap();
    assert!(manager
        .revoke_own(&f.user.id, &f.layer.config().storage_key(my_token))
        .await
        .unwrap());
    assert_eq!(f.store.inner.session_count(), 1);
}

/// `SessionManager::sign_out_request` in bearer mode deletes the session the bearer value names,
/// as Better Auth's bearer plugin turns it into the cookie before signing out; it deleted
/// nothing, and the token kept working.
#[tokio::test]
async fn sign_out_request_deletes_the_bearer_session() {
    let f = fx(|b| b.bearer(Bearer::Signed));
    let signed = f.signed().await;
    let mut headers = http::HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        format!("Bearer {}", signed.signed_token).parse().unwrap(),
    );
    let _cleared = f.layer.manager().sign_out_request(&headers).await.unwrap();
    let key = tower_auth_session::StorageKey::new(&signed.session.token);
    assert!(tower_auth_session::SessionStore::find(&f.store.inner, &key)
        .await
        .unwrap()
        .is_none());
    let auth = format!("Bearer {}", signed.signed_token);
    let r = f.call(req("GET", "/me", &[("authorization", &auth)])).await;
    assert_eq!(r.status, 401);
}
