//! Better Auth `jwt()` tokens through the layer (feature `jwt`): every algorithm Better Auth
//! signs with, keys from a fixed set, a JWKS URL on 127.0.0.1 and the `jwks` table; refusals
//! are anonymous (never a 5xx); a flood of unknown `kid`s costs at most one key fetch per
//! cool-down; the JWT decides over a session cookie in the same request.
#![cfg(all(feature = "jwt", feature = "sqlite", feature = "axum"))]

mod common;
#[path = "jwt_support/vectors.rs"]
mod vectors;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::send;
use http::{header, Request};
use time::macros::datetime;
use tower_auth_session::extract::{CurrentSession, CurrentUser};
use tower_auth_session::jwt::{BoxFuture, JwkSet, JwksUrl, JwtVerifier, KeySource};
use tower_auth_session::{
    AuthContext, BoxError, ManualClock, MemoryStore, SessionConfig, SessionLayer, SignIn,
    SqliteStore, User,
};
use vectors::VECTORS;

const BASE: &str = "http://localhost:3000";

fn all_keys() -> JwkSet {
    let keys: Vec<_> = VECTORS
        .iter()
        .flat_map(|(_, _, jwks)| {
            JwkSet::from_json(jwks.as_bytes())
                .unwrap()
                .iter()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    JwkSet::from_keys(keys)
}

fn app(verifier: JwtVerifier, clock: &ManualClock, store: MemoryStore) -> Router {
    let config = SessionConfig::builder()
        .secret(common::SECRET)
        .clock(clock.clone())
        .jwt(verifier)
        .build()
        .unwrap();
    Router::new()
        .route(
            "/me",
            get(|CurrentUser(u): CurrentUser, ctx: AuthContext| async move {
                format!(
                    "{} {} {}",
                    u.email,
                    ctx.info().via_jwt,
                    ctx.jwt()
                        .map_or("-".to_owned(), |j| j.claims.sub().to_owned())
                )
            }),
        )
        .route(
            "/session",
            get(|CurrentSession(s): CurrentSession| async move { s.session.id.clone() }),
        )
        .route(
            "/sign-out",
            axum::routing::post(|s: tower_auth_session::extract::Sessions| async move {
                (s.sign_out().await.unwrap(), "out")
            }),
        )
        .layer(SessionLayer::new(config, store))
}

fn bearer(path: &str, token: &str) -> Request<axum::body::Body> {
    Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap()
}

fn verifier(source: impl KeySource) -> JwtVerifier {
    JwtVerifier::builder(BASE).keys(source).build().unwrap()
}

#[tokio::test]
async fn every_better_auth_algorithm_signs_in_as_the_token_user() {
    let clock = ManualClock::new(datetime!(2026-11-28 12:00 UTC));
    let app = app(verifier(all_keys()), &clock, MemoryStore::new());
    for (alg, token, _) in VECTORS {
        let r = send(app.clone(), bearer("/me", token)).await;
        assert_eq!(r.status, 200, "{alg}: {}", r.body);
        assert_eq!(
            r.body, "alice@example.com true U0000000000000000000000000000001",
            "{alg}"
        );
        assert!(r.set_cookies().is_empty(), "{alg}: no cookie for a JWT");
        let r = send(app.clone(), bearer("/session", token)).await;
        assert_eq!(r.status, 401, "{alg}: a JWT has no session row");
    }
}

#[tokio::test]
async fn refused_tokens_are_anonymous_never_an_error() {
    let clock = ManualClock::new(datetime!(2026-11-28 12:00 UTC));
    let app = app(verifier(all_keys()), &clock, MemoryStore::new());
    let (_, eddsa, _) = VECTORS[0];
    let (header, rest) = eddsa.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mut flipped = signature.as_bytes().to_vec();
    flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    // {"alg":"none","kid":"9j4qLiieU2xSw1XJBo8HP0Erf8B3jGn8"}
    let none = "eyJhbGciOiJub25lIiwia2lkIjoiOWo0cUxpaWVVMnhTdzFYSkJvOEhQMEVyZjhCM2pHbjgifQ";
    // {"alg":"EdDSA","kid":"unknown"}
    let unknown = "eyJhbGciOiJFZERTQSIsImtpZCI6InVua25vd24ifQ";
    for (what, token) in [
        ("bad signature", format!("{header}.{payload}.{flipped}")),
        ("alg none", format!("{none}.{payload}.")),
        (
            "alg none, signature kept",
            format!("{none}.{payload}.{signature}"),
        ),
        ("unknown kid", format!("{unknown}.{payload}.{signature}")),
        (
            "another key's header",
            format!(
                "{}.{payload}.{signature}",
                VECTORS[1].1.split('.').next().unwrap()
            ),
        ),
        ("malformed", "eyJ.e.e".to_owned()),
        ("empty payload", format!("{header}..{signature}")),
    ] {
        let r = send(app.clone(), bearer("/me", &token)).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
    }
    clock.set(datetime!(2100-01-01 0:00:05 UTC));
    let r = send(app.clone(), bearer("/me", eddsa)).await;
    assert_eq!(r.status, 401, "expired (past the 5 s leeway)");
    clock.set(datetime!(2100-01-01 0:00:04 UTC));
    let r = send(app, bearer("/me", eddsa)).await;
    assert_eq!(r.status, 200, "within the leeway");
}

#[tokio::test]
async fn issuer_and_audience_must_be_the_base_url() {
    let clock = ManualClock::new(datetime!(2026-11-28 12:00 UTC));
    for verifier in [
        JwtVerifier::builder("https://other.example.com")
            .keys(all_keys())
            .build()
            .unwrap(),
        JwtVerifier::builder(BASE)
            .audience("https://api.example.com")
            .keys(all_keys())
            .build()
            .unwrap(),
    ] {
        let app = app(verifier, &clock, MemoryStore::new());
        let r = send(app, bearer("/me", VECTORS[0].1)).await;
        assert_eq!(r.status, 401);
    }
}

/// Better Auth signs its `baseURL`'s origin (`new URL(baseURL).origin`) as `iss` and `aud`,
/// so a base URL given with a path, a trailing slash, capitals or the default port verifies
/// the same tokens; it refused every one before.
#[tokio::test]
async fn the_base_url_is_reduced_to_its_origin_as_better_auth_does() {
    let clock = ManualClock::new(datetime!(2026-11-28 12:00 UTC));
    for base in [
        format!("{BASE}/"),
        format!("{BASE}/api/auth"),
        "HTTP://LocalHost:3000/api/auth/".to_owned(),
    ] {
        let verifier = JwtVerifier::builder(base.clone())
            .keys(all_keys())
            .build()
            .unwrap();
        let app = app(verifier, &clock, MemoryStore::new());
        let r = send(app, bearer("/me", VECTORS[0].1)).await;
        assert_eq!(r.status, 200, "{base}: {}", r.body);
    }
}

/// The bearer credential decides: a valid JWT beside another user's session cookie signs in
/// as the JWT's user, and a refused JWT is anonymous whatever cookie is there.
#[tokio::test]
async fn the_jwt_decides_over_a_session_cookie() {
    let clock = ManualClock::new(datetime!(2026-11-28 12:00 UTC));
    let store = MemoryStore::new();
    let bob = User::new("bob@example.com", "Bob", datetime!(2026-11-01 0:00 UTC));
    store.insert_user(bob.clone());
    let config = SessionConfig::builder()
        .secret(common::SECRET)
        .clock(clock.clone())
        .build()
        .unwrap();
    let signed = SessionLayer::new(config, store.clone())
        .manager()
        .sign_in(&bob, SignIn::new())
        .await
        .unwrap();
    let cookie = common::session_cookie(&signed);
    let app = app(verifier(all_keys()), &clock, store);
    let with = |token: &str| {
        Request::get("/me")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::COOKIE, &cookie)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let r = send(app.clone(), with(VECTORS[0].1)).await;
    assert!(r.body.starts_with("alice@example.com true"), "{}", r.body);
    let r = send(app.clone(), with(&VECTORS[0].1.replace(".eyJ", ".eyK"))).await;
    assert_eq!(r.status, 401);
    let r = send(app, common::get_req("/me", Some(&cookie))).await;
    assert!(r.body.starts_with("bob@example.com false"), "{}", r.body);
}

/// A sign-out whose request also carries a JWT bearer (the layer decides on the JWT) deletes
/// the session of the request's cookie, as Better Auth's sign-out does (its bearer plugin
/// ignores a JWT): the browser forgot the cookie, and the row must not stay valid.
#[tokio::test]
async fn a_sign_out_with_a_jwt_bearer_ends_the_cookies_session() {
    let clock = ManualClock::new(datetime!(2026-11-28 12:00 UTC));
    let store = MemoryStore::new();
    let bob = User::new("bob@example.com", "Bob", datetime!(2026-11-01 0:00 UTC));
    store.insert_user(bob.clone());
    let config = SessionConfig::builder()
        .secret(common::SECRET)
        .clock(clock.clone())
        .build()
        .unwrap();
    let manager = SessionLayer::new(config, store.clone()).manager().clone();
    for jwt in [
        VECTORS[0].1.to_owned(),
        VECTORS[0].1.replace(".eyJ", ".eyK"),
    ] {
        let signed = manager.sign_in(&bob, SignIn::new()).await.unwrap();
        let cookie = common::session_cookie(&signed);
        let app = app(verifier(all_keys()), &clock, store.clone());
        let request = Request::post("/sign-out")
            .header(header::AUTHORIZATION, format!("Bearer {jwt}"))
            .header(header::COOKIE, &cookie)
            .body(axum::body::Body::empty())
            .unwrap();
        let r = send(app, request).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            store.session_count(),
            0,
            "the cookie's session was left valid"
        );
    }
}

/// A key source that counts fetches and can be changed (a rotation on the Better Auth side).
#[derive(Clone, Default)]
struct Counting {
    set: Arc<Mutex<JwkSet>>,
    fetches: Arc<AtomicUsize>,
}

impl KeySource for Counting {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, BoxError>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let set = self.set.lock().unwrap().clone();
        Box::pin(async move { Ok(set) })
    }
}

#[tokio::test]
async fn a_flood_of_unknown_kids_costs_one_fetch_per_cooldown() {
    let clock = ManualClock::new(datetime!(2026-11-28 12:00 UTC));
    let source = Counting::default();
    *source.set.lock().unwrap() = JwkSet::from_json(VECTORS[0].2.as_bytes()).unwrap();
    let app = app(verifier(source.clone()), &clock, MemoryStore::new());
    let (_, token, _) = VECTORS[0];
    assert_eq!(send(app.clone(), bearer("/me", token)).await.status, 200);
    assert_eq!(
        source.fetches.load(Ordering::SeqCst),
        1,
        "fetched on first use"
    );
    let (_, payload_and_sig) = token.split_once('.').unwrap();
    let requests = (0..500).map(|i| {
        // {"alg":"EdDSA","kid":"<i>"}
        let header = base64url(&format!(r#"{{"alg":"EdDSA","kid":"made-up-{i}"}}"#));
        send(
            app.clone(),
            bearer("/me", &format!("{header}.{payload_and_sig}")),
        )
    });
    let replies = futures_util::future::join_all(requests).await;
    assert!(replies.iter().all(|r| r.status == 401));
    assert_eq!(
        source.fetches.load(Ordering::SeqCst),
        1,
        "the cool-down bounds fetches, whatever the kids"
    );
    assert_eq!(send(app, bearer("/me", token)).await.status, 200);
}

/// A key source whose fetch waits until the test lets it go: a slow JWKS endpoint.
#[derive(Clone)]
struct Gated {
    set: JwkSet,
    gate: Arc<tokio::sync::Semaphore>,
    fetches: Arc<AtomicUsize>,
}

impl Gated {
    fn new() -> Self {
        Self {
            set: JwkSet::from_json(VECTORS[0].2.as_bytes()).unwrap(),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
            fetches: Arc::default(),
        }
    }

    /// Runs the other tasks until the first fetch has started.
    async fn started(&self) {
        self.started_again(1).await;
    }

    /// Runs the other tasks until `n` fetches have started.
    async fn started_again(&self, n: usize) {
        while self.fetches.load(Ordering::SeqCst) < n {
            tokio::task::yield_now().await;
        }
    }
}

/// An app whose keys come from a [`Gated`] source, and a first request (the token of
/// `VECTORS[0]`) waiting in the fetch it started.
async fn waiting_in_a_fetch() -> (Gated, Router, tokio::task::JoinHandle<common::Reply>) {
    let clock = ManualClock::new(datetime!(2026-11-28 12:00 UTC));
    let source = Gated::new();
    let app = app(verifier(source.clone()), &clock, MemoryStore::new());
    let first = tokio::spawn(send(app.clone(), bearer("/me", VECTORS[0].1)));
    source.started().await;
    (source, app, first)
}

impl KeySource for Gated {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, BoxError>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            // One permit a fetch.
            self.gate.acquire().await.unwrap().forget();
            Ok(self.set.clone())
        })
    }
}

/// Tokens that arrive while the first fetch is under way (a cold start with traffic, the
/// first tokens of a rotated key) wait for it: they were refused as of an unknown `kid` for the
/// whole cool-down.
#[tokio::test]
async fn tokens_arriving_during_a_fetch_wait_for_it() {
    let (source, app, first) = waiting_in_a_fetch().await;
    let token = VECTORS[0].1;
    let others: Vec<_> = (0..3)
        .map(|_| tokio::spawn(send(app.clone(), bearer("/me", token))))
        .collect();
    // Every request runs until it waits.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    source.gate.add_permits(10);
    assert_eq!(first.await.unwrap().status, 200);
    for other in others {
        assert_eq!(other.await.unwrap().status, 200);
    }
    assert_eq!(
        source.fetches.load(Ordering::SeqCst),
        1,
        "one fetch for all"
    );
}

/// The request that started a fetch goes away (the client hangs up, a timeout layer fires):
/// the fetch still ends and its keys are kept. It was cancelled with the request, and every
/// token was refused until the cool-down allowed another.
#[tokio::test]
async fn a_fetch_outlives_the_request_that_started_it() {
    let (source, app, first) = waiting_in_a_fetch().await;
    let token = VECTORS[0].1;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    source.gate.add_permits(10);
    assert_eq!(send(app.clone(), bearer("/me", token)).await.status, 200);
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
}

/// A stale key set is fetched again in the background: the token that finds it stale is
/// answered with the key held (it waited on the fetch, the whole HTTP timeout while the key
/// endpoint was down, once per cool-down).
#[tokio::test]
async fn a_stale_key_set_is_fetched_again_without_waiting() {
    let clock = ManualClock::new(datetime!(2026-11-28 12:00 UTC));
    let source = Gated::new();
    source.gate.add_permits(1);
    let verifier = JwtVerifier::builder(BASE)
        .keys(source.clone())
        .key_max_age(Duration::ZERO)
        .key_cooldown(Duration::ZERO)
        .build()
        .unwrap();
    let app = app(verifier, &clock, MemoryStore::new());
    let token = VECTORS[0].1;
    assert_eq!(send(app.clone(), bearer("/me", token)).await.status, 200);
    // Stale at once; the next fetch waits on a closed gate (a dead key endpoint).
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        send(app.clone(), bearer("/me", token)),
    )
    .await
    .expect("the token waited on the key fetch");
    assert_eq!(reply.status, 200);
    source.started_again(2).await;
    source.gate.add_permits(1);
}

/// A key source whose first fetch panics (a bug in a custom source, a client library's
/// panic).
struct PanicsOnce {
    set: JwkSet,
    calls: AtomicUsize,
}

impl KeySource for PanicsOnce {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, BoxError>> {
        let first = self.calls.fetch_add(1, Ordering::SeqCst) == 0;
        let set = self.set.clone();
        Box::pin(async move {
            assert!(!first, "the key source panicked (as this test wants)");
            Ok(set)
        })
    }
}

/// A fetch that panics ends like a failed one: that token is refused, and the next one's fetch
/// is made. The fetch stayed marked as under way for good, and no key set was fetched again.
#[tokio::test]
async fn a_key_source_that_panics_does_not_stop_later_fetches() {
    let clock = ManualClock::new(datetime!(2026-11-28 12:00 UTC));
    let verifier = JwtVerifier::builder(BASE)
        .keys(PanicsOnce {
            set: JwkSet::from_json(VECTORS[0].2.as_bytes()).unwrap(),
            calls: AtomicUsize::new(0),
        })
        .key_cooldown(Duration::ZERO)
        .build()
        .unwrap();
    let app = app(verifier, &clock, MemoryStore::new());
    let token = VECTORS[0].1;
    assert_eq!(send(app.clone(), bearer("/me", token)).await.status, 401);
    assert_eq!(send(app, bearer("/me", token)).await.status, 200);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_on_its_first_token() {
    let clock = ManualClock::new(datetime!(2026-11-28 12:00 UTC));
    let source = Counting::default();
    *source.set.lock().unwrap() = JwkSet::from_json(VECTORS[0].2.as_bytes()).unwrap();
    let verifier = JwtVerifier::builder(BASE)
        .keys(source.clone())
        .key_cooldown(Duration::ZERO)
        .build()
        .unwrap();
    let app = app(verifier, &clock, MemoryStore::new());
    assert_eq!(
        send(app.clone(), bearer("/me", VECTORS[0].1)).await.status,
        200
    );
    assert_eq!(
        send(app.clone(), bearer("/me", VECTORS[1].1)).await.status,
        401
    );
    // Better Auth rotates: the new key appears in its set.
    *source.set.lock().unwrap() = all_keys();
    assert_eq!(
        send(app.clone(), bearer("/me", VECTORS[1].1)).await.status,
        200
    );
    assert_eq!(send(app, bearer("/me", VECTORS[0].1)).await.status, 200);
}

fn base64url(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// Keys from a JWKS URL (a server on 127.0.0.1, as Better Auth's `/api/auth/jwks`).
#[tokio::test]
async fn keys_from_a_jwks_url() {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let jwks = VECTORS[2].2;
    let server = Router::new().route(
        "/api/auth/jwks",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { ([(header::CONTENT_TYPE, "application/json")], jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, server).await.unwrap() });

    let clock = ManualClock::new(datetime!(2026-11-28 12:00 UTC));
    let url = format!("http://{addr}/api/auth/jwks");
    let keys = JwksUrl::new(&url, Duration::from_secs(5)).unwrap();
    let app = app(verifier(keys), &clock, MemoryStore::new());
    for _ in 0..3 {
        let r = send(app.clone(), bearer("/me", VECTORS[2].1)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(
        served.load(Ordering::SeqCst),
        1,
        "fetched once, then cached"
    );

    // An unreachable JWKS: anonymous, not an error.
    let dead = JwksUrl::new("http://127.0.0.1:9/jwks", Duration::from_millis(500)).unwrap();
    let app = app_for_dead(dead, &clock);
    assert_eq!(send(app, bearer("/me", VECTORS[2].1)).await.status, 401);
    assert!(JwksUrl::new("ftp://example.com/jwks", Duration::from_secs(1)).is_err());
    task.abort();
}

fn app_for_dead(keys: JwksUrl, clock: &ManualClock) -> Router {
    app(verifier(keys), clock, MemoryStore::new())
}

/// Keys from the `jwks` table Better Auth's migration creates, in the store's own database.
#[tokio::test]
async fn keys_from_the_jwks_table() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    sqlx::query(r#"create table "jwks" ("id" text not null primary key, "publicKey" text not null, "privateKey" text not null, "createdAt" date not null, "expiresAt" date, "alg" text, "crv" text)"#)
        .execute(store.pool())
        .await
        .unwrap();
    // As Better Auth stores it: the public JWK without kid and alg, which have their columns.
    for (i, (_, _, jwks)) in VECTORS.iter().enumerate() {
        let set: serde_json::Value = serde_json::from_str(jwks).unwrap();
        let mut key = set["keys"][0].as_object().unwrap().clone();
        let kid = key.remove("kid").unwrap();
        let alg = key.remove("alg").unwrap();
        let crv = key.get("crv").cloned();
        sqlx::query(r#"insert into "jwks" values (?1, ?2, '"encrypted"', '2026-01-01T00:00:00.000Z', null, ?3, ?4)"#)
            .bind(kid.as_str().unwrap())
            .bind(serde_json::Value::Object(key).to_string())
            .bind(if i == 0 { None } else { alg.as_str().map(str::to_owned) })
            .bind(crv.and_then(|c| c.as_str().map(str::to_owned)))
            .execute(store.pool())
            .await
            .unwrap();
    }
    let clock = ManualClock::new(datetime!(2026-11-28 12:00 UTC));
    let app = app(verifier(store.jwks()), &clock, MemoryStore::new());
    for (alg, token, _) in VECTORS {
        let r = send(app.clone(), bearer("/me", token)).await;
        assert_eq!(
            r.status, 200,
            "{alg} (a NULL alg column reads as EdDSA): {}",
            r.body
        );
    }
}
