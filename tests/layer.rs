//! The layer's rules (issue 2, item 4) at their exact boundaries, with an injected clock.

mod common;

use axum::routing::{get, post};
use axum::{Json, Router};
use common::*;
use http::header;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tower_auth_session::extract::{CurrentSession, CurrentUser, MaybeUser, Sessions};
use tower_auth_session::{
    AuthContext, ManualClock, MemoryStore, SessionConfig, SessionLayer, SessionStore, SignIn,
    StorageKey, User,
};

const T0: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);
const COOKIE: &str = "better-auth.session_token";

struct Fixture {
    app: Router,
    layer: SessionLayer<Counting<MemoryStore>>,
    store: Counting<MemoryStore>,
    clock: ManualClock,
    user: User,
}

fn fixture_with(
    config: impl FnOnce(
        tower_auth_session::SessionConfigBuilder,
    ) -> tower_auth_session::SessionConfigBuilder,
) -> Fixture {
    fixture_on(Counting::new(MemoryStore::new()), config)
}

fn fixture_on(
    store: Counting<MemoryStore>,
    config: impl FnOnce(
        tower_auth_session::SessionConfigBuilder,
    ) -> tower_auth_session::SessionConfigBuilder,
) -> Fixture {
    let clock = ManualClock::new(T0);
    let user = User::new("alice@example.com", "Alice", T0);
    store.inner.insert_user(user.clone());
    let cfg = config(SessionConfig::builder().secret(SECRET).clock(clock.clone()))
        .build()
        .unwrap();
    let layer = SessionLayer::new(cfg, store.clone());
    let sign_in_user = user.clone();
    let app = Router::new()
        .route(
            "/me",
            get(|CurrentSession(a): CurrentSession| async move {
                Json(serde_json::json!({
                    "email": a.user.email,
                    "expiresAt": tower_auth_session::test_support::to_iso(a.session.expires_at),
                }))
            }),
        )
        .route(
            "/user",
            get(|CurrentUser(u): CurrentUser| async move { u.email.clone() }),
        )
        .route(
            "/maybe",
            get(|MaybeUser(u): MaybeUser| async move {
                u.map_or("anonymous".to_owned(), |u| u.email.clone())
            }),
        )
        .route(
            "/sign-in",
            post(move |sessions: Sessions| {
                let user = sign_in_user.clone();
                async move {
                    let signed = sessions.sign_in(&user).await.unwrap();
                    (signed, "signed in")
                }
            }),
        )
        .route(
            "/sign-out",
            post(|sessions: Sessions| async move { (sessions.sign_out().await.unwrap(), "bye") }),
        )
        .layer(layer.clone());
    Fixture {
        app,
        layer,
        store,
        clock,
        user,
    }
}

fn fixture() -> Fixture {
    fixture_with(|b| b)
}

impl Fixture {
    async fn sign_in(&self) -> String {
        let signed = self
            .layer
            .manager()
            .sign_in(&self.user, SignIn::new())
            .await
            .unwrap();
        let line = signed
            .cookies
            .iter()
            .next()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        line.split(';').next().unwrap().to_owned()
    }
    async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        send(self.app.clone(), get_req(path, cookie)).await
    }
}

/// A store that answers at once (`find_now`) is served in place; any other lookup, and every
/// write, takes the asynchronous path. Request by request, both must answer the same.
#[tokio::test]
async fn in_place_and_asynchronous_lookups_agree() {
    type Seen = (u16, String, Vec<String>);
    async fn script(f: Fixture) -> (Vec<Seen>, usize) {
        let cookie = f.sign_in().await;
        let unknown = format!(
            "{COOKIE}={}",
            tower_auth_session::codec::Signer::new(SECRET)
                .sign_cookie_value("UnknownTokenUnknownTokenUnknown1")
        );
        let mut seen = Vec::new();
        for (advance, path, cookie) in [
            (Duration::ZERO, "/me", &cookie),
            (Duration::ZERO, "/maybe", &unknown),
            (Duration::days(1), "/me", &cookie), // a refresh is due
            (Duration::ZERO, "/me", &cookie),
            (Duration::days(8), "/me", &cookie), // expired
            (Duration::ZERO, "/maybe", &cookie), // deleted
        ] {
            f.clock.advance(advance);
            let r = f.get(path, Some(cookie)).await;
            // Cookie values carry the random token; compare names and attributes.
            let cookies = r
                .set_cookies()
                .iter()
                .map(|c| {
                    let (pair, attributes) = c.split_once(';').unwrap_or((c, ""));
                    let name = pair.split('=').next().unwrap_or_default();
                    let empty = pair.ends_with('=');
                    format!("{name}={}{attributes}", if empty { "" } else { "…" })
                })
                .collect();
            seen.push((r.status, r.body, cookies));
        }
        (seen, f.store.writes())
    }
    let in_place = script(fixture_on(Counting::new(MemoryStore::new()), |b| b)).await;
    let deferred = script(fixture_on(Counting::async_only(MemoryStore::new()), |b| b)).await;
    assert_eq!(in_place, deferred);

    let (seen, writes) = in_place;
    let statuses: Vec<u16> = seen.iter().map(|s| s.0).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 401, 200]);
    assert_eq!(seen[1].1, "anonymous");
    assert_eq!(seen[1].2.len(), 3, "an unknown token clears the cookies");
    assert_eq!(seen[2].2.len(), 1, "the due refresh re-sends the cookie");
    assert!(seen[2].2[0].contains("Max-Age=604800"), "{:?}", seen[2].2);
    assert!(seen[3].2.is_empty(), "a fresh session writes nothing");
    assert_eq!(seen[4].2.len(), 3, "an expired session clears the cookies");
    assert_eq!(seen[5].1, "anonymous");
    // Sign-in, the refresh and the deletion of the expired row.
    assert_eq!(writes, 3);
}

#[tokio::test]
async fn anonymous_requests_touch_nothing() {
    let f = fixture();
    let r = f.get("/me", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], "UNAUTHORIZED");
    assert!(r.set_cookies().is_empty());
    assert!(r.headers.get(header::CACHE_CONTROL).is_none());
    assert_eq!(f.get("/maybe", None).await.body, "anonymous");
    assert_eq!(f.store.calls(), 0);
}

#[tokio::test]
async fn sign_in_sets_better_auth_cookie_and_authenticates() {
    let f = fixture();
    let r = send(f.app.clone(), post_json("/sign-in", None, "{}")).await;
    assert_eq!(r.status, 200);
    let line = r.set_cookie(COOKIE).unwrap();
    let value = line
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("better-auth.session_token=")
        .unwrap();
    let (token, sig) = value.split_once('.').unwrap();
    assert_eq!(token.len(), 32);
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(sig.ends_with("%3D"), "{sig}");
    assert!(
        line.ends_with("; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax"),
        "{line}"
    );
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");

    let cookie = r.cookie_pair(COOKIE);
    let me = f.get("/me", Some(&cookie)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["email"], "alice@example.com");
    assert_eq!(me.json()["expiresAt"], "2026-11-30T12:00:00.000Z");
    assert!(me.set_cookies().is_empty());
    assert_eq!(
        f.get("/user", Some(&cookie)).await.body,
        "alice@example.com"
    );
    assert_eq!(
        f.get("/maybe", Some(&cookie)).await.body,
        "alice@example.com"
    );

    // The row has a separate id and the token the cookie carries.
    let row = f
        .store
        .inner
        .find(&StorageKey::new(token))
        .await
        .unwrap()
        .unwrap()
        .session;
    assert_ne!(row.id, row.token);
    assert_eq!(row.token, token);
}

#[tokio::test]
async fn no_refresh_one_millisecond_before_update_age() {
    let f = fixture();
    let cookie = f.sign_in().await;
    let writes = f.store.writes();
    f.clock
        .set(T0 + Duration::days(1) - Duration::milliseconds(1));
    let r = f.get("/me", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookies().is_empty());
    assert!(r.headers.get(header::CACHE_CONTROL).is_none());
    assert_eq!(f.store.writes(), writes, "no store write before updateAge");
    assert_eq!(r.json()["expiresAt"], "2026-11-30T12:00:00.000Z");
}

#[tokio::test]
async fn refresh_exactly_at_update_age_extends_and_resends_cookie() {
    let f = fixture();
    let cookie = f.sign_in().await;
    let writes = f.store.writes();
    f.clock.set(T0 + Duration::days(1));
    let r = f.get("/me", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    assert_eq!(f.store.writes(), writes + 1);
    assert_eq!(r.json()["expiresAt"], "2026-12-01T12:00:00.000Z");
    let line = r.set_cookie(COOKIE).expect("refreshed cookie");
    assert_eq!(
        line,
        format!("{cookie}; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax")
    );
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(r.headers[header::VARY], "Cookie");

    // The next request is inside the new window: no further write.
    f.clock.advance(Duration::hours(23));
    let r = f.get("/me", Some(&cookie)).await;
    assert!(r.set_cookies().is_empty());
    assert_eq!(f.store.writes(), writes + 1);
}

#[tokio::test]
async fn refresh_one_millisecond_after_update_age() {
    let f = fixture();
    let cookie = f.sign_in().await;
    f.clock
        .set(T0 + Duration::days(1) + Duration::milliseconds(1));
    let r = f.get("/me", Some(&cookie)).await;
    assert_eq!(r.json()["expiresAt"], "2026-12-01T12:00:00.001Z");
    assert!(r.set_cookie(COOKIE).is_some());
}

#[tokio::test]
async fn valid_at_the_exact_expiry_millisecond() {
    let f = fixture_with(|b| b.disable_refresh(true));
    let cookie = f.sign_in().await;
    f.clock.set(T0 + Duration::days(7));
    let r = f.get("/me", Some(&cookie)).await;
    assert_eq!(r.status, 200, "expiresAt == now is still valid");
    assert!(r.set_cookies().is_empty(), "refresh disabled: no cookie");
    f.clock
        .set(T0 + Duration::days(7) - Duration::milliseconds(1));
    assert_eq!(f.get("/me", Some(&cookie)).await.status, 200);
}

#[tokio::test]
async fn expired_one_millisecond_later_is_deleted_and_cleared() {
    let f = fixture();
    let cookie = f.sign_in().await;
    assert_eq!(f.store.inner.session_count(), 1);
    f.clock
        .set(T0 + Duration::days(7) + Duration::milliseconds(1));
    let r = f.get("/me", Some(&cookie)).await;
    assert_eq!(r.status, 401);
    assert_eq!(f.store.inner.session_count(), 0, "expired row deleted");
    assert_eq!(
        r.set_cookie(COOKIE).unwrap(),
        "better-auth.session_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
    );
    assert!(r
        .set_cookie("better-auth.session_data")
        .unwrap()
        .contains("Max-Age=0"));
    assert!(r
        .set_cookie("better-auth.dont_remember")
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn unknown_token_is_anonymous_and_cleared() {
    let f = fixture();
    let signer = f.layer.config().signer();
    let cookie = format!(
        "{COOKIE}={}",
        signer.sign_cookie_value("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    );
    let r = f.get("/me", Some(&cookie)).await;
    assert_eq!(r.status, 401);
    assert_eq!(f.store.calls(), 1, "exactly one store read");
    assert!(r.set_cookie(COOKIE).unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn deleted_user_never_authenticates() {
    let f = fixture();
    let cookie = f.sign_in().await;
    f.store.inner.delete_user(&f.user.id);
    let r = f.get("/me", Some(&cookie)).await;
    assert_eq!(r.status, 401);
    assert!(r.set_cookie(COOKIE).unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn sign_out_deletes_row_and_clears_cookies() {
    let f = fixture();
    let cookie = f.sign_in().await;
    let r = send(f.app.clone(), post_json("/sign-out", Some(&cookie), "")).await;
    assert_eq!(r.status, 200);
    assert_eq!(f.store.inner.session_count(), 0);
    assert_eq!(
        r.set_cookie(COOKIE).unwrap(),
        "better-auth.session_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
    );
    assert_eq!(
        r.set_cookies()
            .iter()
            .filter(|c| c.starts_with(COOKIE))
            .count(),
        1,
        "handler's cookie is not duplicated"
    );
    assert_eq!(f.get("/me", Some(&cookie)).await.status, 401);
}

#[tokio::test]
async fn dont_remember_sessions_are_never_refreshed_while_marked() {
    let f = fixture();
    let signed = f
        .layer
        .manager()
        .sign_in(&f.user, SignIn::new().remember_me(false))
        .await
        .unwrap();
    let lines: Vec<String> = signed
        .cookies
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        !lines[0].contains("Max-Age"),
        "browser-session cookie: {}",
        lines[0]
    );
    assert_eq!(signed.session.expires_at, T0 + Duration::days(1));
    let dont = lines
        .iter()
        .find(|l| l.starts_with("better-auth.dont_remember="))
        .unwrap();
    assert!(!dont.contains("Max-Age"));
    let session_pair = lines[0].split(';').next().unwrap().to_owned();
    let dont_pair = dont.split(';').next().unwrap().to_owned();

    // expiresAt − 7d + 1d ≤ now from the very start: due, but the marker forbids it.
    f.clock.set(T0 + Duration::hours(1));
    let both = format!("{session_pair}; {dont_pair}");
    let r = f.get("/me", Some(&both)).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookies().is_empty());
    assert_eq!(r.json()["expiresAt"], "2026-11-24T12:00:00.000Z");

    // A forged marker does not count: Better Auth then extends to 7 days.
    let forged = format!("{session_pair}; better-auth.dont_remember=true.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D");
    let r = f.get("/me", Some(&forged)).await;
    assert_eq!(r.json()["expiresAt"], "2026-11-30T13:00:00.000Z");
    assert!(r.set_cookie(COOKIE).unwrap().contains("Max-Age=604800"));
}

#[tokio::test]
async fn handler_sign_in_wins_over_layer_clearing() {
    let f = fixture();
    let cookie = f.sign_in().await;
    f.clock.set(T0 + Duration::days(8));
    let r = send(f.app.clone(), post_json("/sign-in", Some(&cookie), "{}")).await;
    let mine: Vec<_> = r
        .set_cookies()
        .into_iter()
        .filter(|c| c.starts_with(&format!("{COOKIE}=")))
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert!(
        mine[0].contains("Max-Age=604800"),
        "the new session cookie is kept: {mine:?}"
    );
}

#[tokio::test]
async fn secure_and_custom_names() {
    let f = fixture_with(|b| {
        b.base_url("https://app.example.com")
            .cookie_prefix("myapp")
            .domain("example.com")
    });
    let r = send(f.app.clone(), post_json("/sign-in", None, "{}")).await;
    let line = r.set_cookie("__Secure-myapp.session_token").unwrap();
    assert!(
        line.ends_with(
            "; Max-Age=604800; Domain=example.com; Path=/; HttpOnly; Secure; SameSite=Lax"
        ),
        "{line}"
    );
    let cookie = r.cookie_pair("__Secure-myapp.session_token");
    assert_eq!(f.get("/me", Some(&cookie)).await.status, 200);
    // The unprefixed name is not the configured one, and is ignored.
    let unprefixed = cookie.replacen("__Secure-", "", 1);
    assert_eq!(f.get("/me", Some(&unprefixed)).await.status, 401);

    let f = fixture_with(|b| b.session_cookie_name("sid"));
    let r = send(f.app.clone(), post_json("/sign-in", None, "{}")).await;
    assert!(r.set_cookie("sid").is_some(), "{:?}", r.set_cookies());
}

#[tokio::test]
async fn store_outage_is_503_and_signs_nobody_out() {
    let cfg = SessionConfig::builder().secret(SECRET).build().unwrap();
    let signer = cfg.signer().clone();
    let app = Router::new()
        .route("/", get(|| async { "public" }))
        .layer(SessionLayer::new(cfg, Down));
    let cookie = format!(
        "{COOKIE}={}",
        signer.sign_cookie_value("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    );
    let r = send(app.clone(), get_req("/", Some(&cookie))).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers[header::RETRY_AFTER], "5");
    assert!(
        r.set_cookies().is_empty(),
        "no cookie clearing during an outage"
    );
    // Requests without a valid cookie never touch the store and are served.
    assert_eq!(send(app.clone(), get_req("/", None)).await.status, 200);
    assert_eq!(
        send(app, get_req("/", Some("better-auth.session_token=garbage")))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn missing_layer_is_a_loud_500() {
    let app: Router = Router::new().route(
        "/me",
        get(|CurrentUser(u): CurrentUser| async move { u.email.clone() }),
    );
    let r = send(app, get_req("/me", None)).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["code"], "SESSION_LAYER_MISSING");
}

#[tokio::test]
async fn plain_tower_service_reads_the_extension() {
    use tower::ServiceBuilder;
    let f = fixture();
    let cookie = f.sign_in().await;
    let svc = ServiceBuilder::new().layer(f.layer.clone()).service_fn(
        |req: http::Request<axum::body::Body>| async move {
            let who = req
                .extensions()
                .get::<AuthContext>()
                .and_then(AuthContext::user)
                .map_or("anonymous".to_owned(), |u| u.email.clone());
            Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::from(who)))
        },
    );
    assert_eq!(
        send(svc.clone(), get_req("/", Some(&cookie))).await.body,
        "alice@example.com"
    );
    assert_eq!(send(svc, get_req("/", None)).await.body, "anonymous");
}

#[tokio::test]
async fn revoke_all_and_list() {
    let f = fixture();
    let a = f.sign_in().await;
    let b = f.sign_in().await;
    let manager = f.layer.manager();
    assert_eq!(manager.list(&f.user.id).await.unwrap().len(), 2);
    assert_eq!(manager.revoke_all(&f.user.id).await.unwrap(), 2);
    assert_eq!(f.get("/me", Some(&a)).await.status, 401);
    assert_eq!(f.get("/me", Some(&b)).await.status, 401);
    assert!(manager.list(&f.user.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn sign_in_records_user_agent_and_client_ip() {
    let f = fixture();
    let sign_in = |headers: Vec<(&'static str, &'static str)>| signed_in_row(&f, headers);
    let row = sign_in(vec![
        ("user-agent", "Mozilla/5.0 (test)"),
        ("x-forwarded-for", " 203.0.113.7 "),
    ])
    .await;
    assert_eq!(row.user_agent.as_deref(), Some("Mozilla/5.0 (test)"));
    assert_eq!(row.ip_address.as_deref(), Some("203.0.113.7"));
    // As Better Auth 1.7 records them (`getIP` without trusted proxies): a list records
    // nothing (its leftmost is whatever the client sent), a mapped IPv4 as IPv4, other IPv6
    // as its /64 written out in full.
    for (forwarded, recorded) in [
        ("203.0.113.7, 10.0.0.1", ""),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("2001:DB8::1", "2001:0db8:0000:0000:0000:0000:0000:0000"),
        (
            "2001:db8:1:2:3:4:5:6",
            "2001:0db8:0001:0002:0000:0000:0000:0000",
        ),
    ] {
        let row = sign_in(vec![("x-forwarded-for", forwarded)]).await;
        assert_eq!(row.ip_address.as_deref(), Some(recorded), "{forwarded}");
    }

    // Unknown values are written as "", as Better Auth does; a bogus forwarded value is ignored.
    let row = sign_in(vec![("x-forwarded-for", "not-an-ip")]).await;
    assert_eq!(
        (row.user_agent.as_deref(), row.ip_address.as_deref()),
        (Some(""), Some(""))
    );
}

/// Signs in through the `Sessions` extractor with `headers`; returns the stored session.
async fn signed_in_row(
    f: &Fixture,
    headers: Vec<(&'static str, &'static str)>,
) -> tower_auth_session::Session {
    let mut req = http::Request::post("/sign-in");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let r = send(f.app.clone(), req.body(axum::body::Body::empty()).unwrap()).await;
    let pair = r.cookie_pair(COOKIE);
    let token = pair.split_once('=').unwrap().1.split('.').next().unwrap();
    f.store
        .inner
        .find(&StorageKey::new(token))
        .await
        .unwrap()
        .unwrap()
        .session
        .as_ref()
        .clone()
}

/// Better Auth's `trustedProxies`, `ipv6Subnet` and `disableIpTracking`.
#[tokio::test]
async fn the_client_ip_behind_trusted_proxies_and_its_subnet() {
    let f = fixture_with(|b| {
        b.trusted_proxies(["10.0.0.0/8", "fd00::/8"])
            .ipv6_subnet(128)
    });
    for (forwarded, recorded) in [
        ("spoofed, 198.51.100.4, 10.1.2.3", "198.51.100.4"),
        ("10.1.2.3, 10.9.9.9", ""),
        (
            "2001:db8::1, fd00::2",
            "2001:0db8:0000:0000:0000:0000:0000:0001",
        ),
    ] {
        let row = signed_in_row(&f, vec![("x-forwarded-for", forwarded)]).await;
        assert_eq!(row.ip_address.as_deref(), Some(recorded), "{forwarded}");
    }
    let off = fixture_with(|b| b.disable_ip_tracking(true));
    let row = signed_in_row(&off, vec![("x-forwarded-for", "203.0.113.7")]).await;
    assert_eq!(row.ip_address.as_deref(), Some(""));
    let err = SessionConfig::builder()
        .secret(SECRET)
        .trusted_proxies(["10.0.0.0/40"])
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("trusted_proxies"), "{err}");
}

#[test]
fn the_public_default_secret_and_weak_secrets_are_refused() {
    let err = SessionConfig::builder()
        .secret(tower_auth_session::BETTER_AUTH_DEFAULT_SECRET)
        .build()
        .unwrap_err();
    assert!(
        matches!(err, tower_auth_session::ConfigError::DefaultSecret),
        "{err:?}"
    );
    assert!(err.to_string().contains("BETTER_AUTH_SECRET"), "{err}");
    let err = SessionConfig::builder()
        .secret("short")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("at least 32"), "{err}");
    let err = SessionConfig::builder().secret("").build().unwrap_err();
    assert!(err.to_string().contains("BETTER_AUTH_SECRET"), "{err}");
}

/// The layer's own answers take the shape the app gives them (`respond_with`): here an HTML page
/// for the outage and a redirect for the untrusted origin, with a body type that is not built
/// from a `&str`.
#[tokio::test]
async fn respond_with_shapes_the_layers_own_answers() {
    use tower::ServiceExt;
    use tower_auth_session::respond::{LayerRejection, RequestHead};

    type Body = http_body_util::Full<bytes::Bytes>;
    let respond = |rejection: LayerRejection, request: &RequestHead<'_>| -> http::Response<Body> {
        let (status, location_or_page) = match rejection {
            LayerRejection::StoreUnavailable => {
                (503, format!("<p>down at {}</p>", request.uri().path()))
            }
            _ => (303, "/login".to_owned()),
        };
        let mut response = http::Response::new(Body::from(location_or_page.clone()));
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        if status == 303 {
            response.headers_mut().insert(
                header::LOCATION,
                http::HeaderValue::from_str(&location_or_page).unwrap(),
            );
        }
        response
    };
    let config = SessionConfig::builder()
        .secret(SECRET)
        .trusted_origins(["https://app.example.com"])
        .build()
        .unwrap();
    let signer = config.signer().clone();
    let layer = SessionLayer::new(config, Down).respond_with(respond);
    let svc =
        tower::ServiceBuilder::new()
            .layer(layer)
            .service_fn(|_req: http::Request<Body>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::from("inner")))
            });
    let cookie = format!(
        "{COOKIE}={}",
        signer.sign_cookie_value("sometoken0123456789sometoken0123")
    );

    let down = svc
        .clone()
        .oneshot(
            http::Request::get("/page")
                .header(header::COOKIE, &cookie)
                .body(Body::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(down.status(), 503);
    let body = http_body_util::BodyExt::collect(down.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"<p>down at /page</p>");

    let cross_site = svc
        .oneshot(
            http::Request::post("/write")
                .header(header::COOKIE, &cookie)
                .header(header::ORIGIN, "https://evil.example")
                .body(Body::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 303);
    assert_eq!(cross_site.headers()[header::LOCATION], "/login");
}
