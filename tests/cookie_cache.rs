//! The cookie cache (`session_data`) in the layer: trusted without a store read when valid,
//! falling back to the store on any failure, issued on store reads, chunked when large.

mod common;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use common::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tower_auth_session::extract::{CurrentSession, Sessions};
use tower_auth_session::{
    CookieCache, ManualClock, MemoryStore, SessionConfig, SessionConfigBuilder, SessionInfo,
    SessionLayer, SignIn, StorageKey, User,
};

const T0: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);
const TOKEN_COOKIE: &str = "better-auth.session_token";
const DATA: &str = "better-auth.session_data";

struct Fx {
    app: Router,
    layer: SessionLayer<Counting<MemoryStore>>,
    store: Counting<MemoryStore>,
    clock: ManualClock,
    user: User,
}

fn fx_with(name: &str, f: impl FnOnce(SessionConfigBuilder) -> SessionConfigBuilder) -> Fx {
    let clock = ManualClock::new(T0);
    let store = Counting::new(MemoryStore::new());
    let user = User::new("cache@example.com", name, T0);
    store.inner.insert_user(user.clone());
    let config = f(SessionConfig::builder().secret(SECRET).clock(clock.clone()))
        .build()
        .unwrap();
    let layer = SessionLayer::new(config, store.clone());
    let handler = |CurrentSession(a): CurrentSession, info: SessionInfo| async move {
        format!("{} cache={}", a.user.email, info.from_cache)
    };
    let app = Router::new()
        .route("/me", get(handler))
        .route("/account/security", get(handler))
        .route(
            "/sign-out",
            axum::routing::post(|s: Sessions| async move { (s.sign_out().await.unwrap(), "out") }),
        )
        .route(
            "/revoke-session/{key}",
            axum::routing::post(|s: Sessions, Path(key): Path<String>| async move {
                answer(s.revoke(&StorageKey::new(key)).await.unwrap())
            }),
        )
        .route(
            "/revoke-sessions",
            axum::routing::post(|s: Sessions| async move { answer(s.revoke_all().await.unwrap()) }),
        )
        .route(
            "/revoke-other-sessions",
            axum::routing::post(
                |s: Sessions| async move { answer(s.revoke_others().await.unwrap()) },
            ),
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

/// A revocation's response: its cookies, and how many sessions it deleted as the body.
fn answer(
    revoked: tower_auth_session::extract::Revoked,
) -> (tower_auth_session::extract::Revoked, String) {
    let deleted = revoked.deleted.to_string();
    (revoked, deleted)
}

fn fx() -> Fx {
    fx_with("Cache", |b| {
        b.cookie_cache(CookieCache::compact().max_age(Duration::minutes(5)))
            .authoritative_for("/account/")
    })
}

/// Cookie header value from every `name=value` the response set (deletions skipped).
fn jar(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| l.split(';').next().unwrap())
        .filter(|pair| !pair.ends_with('='))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Fx {
    /// The cookies of a new sign-in, without the cookie cache it issued: the first request
    /// reads the store.
    async fn token_cookie(&self, remember: bool) -> String {
        let s = self
            .layer
            .manager()
            .sign_in(&self.user, SignIn::new().remember_me(remember))
            .await
            .unwrap();
        let lines: Vec<String> = s
            .cookies
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .filter(|line| !line.starts_with(DATA))
            .collect();
        jar(&lines)
    }
    /// The `Set-Cookie` lines of a sign-in of `user`.
    async fn sign_in_lines(&self, user: &User, request: SignIn) -> Vec<String> {
        self.layer
            .manager()
            .sign_in(user, request)
            .await
            .unwrap()
            .cookies
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The `Set-Cookie` lines of a sign-in of `user` (added to the store) in a browser that
    /// holds another account's session and its cache cookie.
    async fn sign_in_after_another(&self, user: &User) -> Vec<String> {
        let a = self.token_cookie(true).await;
        let first = self.get("/me", &a).await;
        let a_jar = format!("{a}; {}", first.cookie_pair(DATA));
        self.store.inner.insert_user(user.clone());
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::COOKIE, a_jar.parse().unwrap());
        let request = SignIn::from_headers(&headers, self.layer.config());
        self.sign_in_lines(user, request).await
    }

    async fn get(&self, path: &str, cookie: &str) -> Reply {
        send(self.app.clone(), get_req(path, Some(cookie))).await
    }
    async fn post(&self, path: &str, cookie: &str) -> Reply {
        let request = http::Request::post(path)
            .header(http::header::COOKIE, cookie)
            .header(http::header::ORIGIN, "http://localhost:3000")
            .body(axum::body::Body::empty())
            .unwrap();
        send(self.app.clone(), request).await
    }
}

/// The storage key (the token) of a session cookie jar's `session_token`.
fn key_of(jar: &str) -> String {
    let value = jar
        .split("; ")
        .find_map(|pair| pair.strip_prefix(&format!("{TOKEN_COOKIE}=")))
        .unwrap();
    value.split('.').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_store_read_issues_the_cache_and_the_cache_skips_the_store() {
    let f = fx();
    let token = f.token_cookie(true).await;
    let first = f.get("/me", &token).await;
    assert_eq!(first.body, "cache@example.com cache=false");
    let line = first
        .set_cookie(DATA)
        .expect("session_data issued on a store read");
    assert!(
        line.ends_with("; Max-Age=300; Path=/; HttpOnly; SameSite=Lax"),
        "{line}"
    );
    let calls = f.store.calls();

    let both = format!("{token}; {}", first.cookie_pair(DATA));
    let cached = f.get("/me", &both).await;
    assert_eq!(cached.body, "cache@example.com cache=true");
    assert!(
        cached.set_cookies().is_empty(),
        "a cache hit writes nothing"
    );
    assert_eq!(f.store.calls(), calls, "no store read on a cache hit");

    // The trade-off: a revoked session keeps working from the cache until it expires...
    f.store.inner.delete_user(&f.user.id);
    assert_eq!(f.get("/me", &both).await.status, 200);
    // ...except on authoritative routes, which always read the store.
    let r = f.get("/account/security", &both).await;
    assert_eq!(r.status, 401);
    // ...and not after the cache cookie's own expiry.
    f.clock
        .advance(Duration::minutes(5) + Duration::milliseconds(1));
    assert_eq!(f.get("/me", &both).await.status, 401);
}

/// Changes one character in the middle of a base64url value (never only unused trailing bits).
fn tamper(value: &str) -> String {
    let mid = value.len() / 2;
    let replacement = if value.as_bytes()[mid] == b'A' {
        "B"
    } else {
        "A"
    };
    format!("{}{replacement}{}", &value[..mid], &value[mid + 1..])
}

#[tokio::test]
async fn any_cache_failure_falls_back_to_the_store_and_expires_the_cache() {
    let f = fx();
    let token = f.token_cookie(true).await;
    let data = f.get("/me", &token).await.cookie_pair(DATA);
    let value = data.split_once('=').unwrap().1.to_owned();
    let other = f.token_cookie(true).await;
    let cases = [
        ("tampered", format!("{token}; {DATA}={}", tamper(&value))),
        ("garbage", format!("{token}; {DATA}=not-base64!!")),
        (
            "another session's cache",
            format!("{other}; {DATA}={value}"),
        ),
    ];
    for (what, cookie) in cases {
        let calls = f.store.calls();
        let r = f.get("/me", &cookie).await;
        assert_eq!(r.status, 200, "{what}: still served, from the store");
        assert!(r.body.ends_with("cache=false"), "{what}");
        assert!(f.store.calls() > calls, "{what}: the store was read");
        let lines: Vec<_> = r
            .set_cookies()
            .into_iter()
            .filter(|l| l.starts_with(&format!("{DATA}=")))
            .collect();
        assert!(
            lines.iter().any(|l| l.contains("Max-Age=0")),
            "{what}: bad cache expired: {lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("Max-Age=300")),
            "{what}: fresh cache issued: {lines:?}"
        );
    }

    // A cache cookie without a valid session token is useless.
    let r = f.get("/me", &format!("{DATA}={value}")).await;
    assert_eq!(r.status, 401);

    // Bumping the version invalidates every cache cookie: the same store and token, a layer
    // configured with version "2", the version-"1" cache cookie above.
    let v2 = SessionLayer::new(
        SessionConfig::builder()
            .secret(SECRET)
            .clock(f.clock.clone())
            .cookie_cache(CookieCache::compact().version("2"))
            .build()
            .unwrap(),
        f.store.clone(),
    );
    let app2 = Router::new()
        .route(
            "/me",
            get(
                |CurrentSession(a): CurrentSession, info: SessionInfo| async move {
                    format!("{} cache={}", a.user.email, info.from_cache)
                },
            ),
        )
        .layer(v2);
    let calls = f.store.calls();
    let r = send(
        app2,
        get_req("/me", Some(&format!("{token}; {DATA}={value}"))),
    )
    .await;
    assert!(r.body.ends_with("cache=false"), "{}", r.body);
    assert!(
        f.store.calls() > calls,
        "version mismatch: the store was read"
    );

    // A cache cookie whose embedded session has expired, while the cache cookie itself has
    // not (a cache max-age longer than the session), is not trusted.
    let long = fx_with("Long", |b| {
        b.cookie_cache(CookieCache::compact().max_age(Duration::days(10)))
    });
    let short = long.token_cookie(true).await;
    let cache = long.get("/me", &short).await.cookie_pair(DATA);
    long.clock
        .set(T0 + Duration::days(7) + Duration::seconds(1));
    let calls = long.store.calls();
    let r = long.get("/me", &format!("{short}; {cache}")).await;
    assert_eq!(r.status, 401, "the session inside the cache expired");
    assert!(long.store.calls() > calls, "fell back to the store");
}

#[tokio::test]
async fn the_session_cache_is_chunked_when_large() {
    // A 9 KB user name makes the cookie exceed 4050 bytes.
    let f = fx_with(&"N".repeat(9000), |b| {
        b.cookie_cache(CookieCache::compact())
    });
    let token = f.token_cookie(true).await;
    let r = f.get("/me", &token).await;
    let chunks: Vec<String> = r
        .set_cookies()
        .into_iter()
        .filter(|l| l.starts_with(&format!("{DATA}.")))
        .collect();
    assert!(chunks.len() >= 3, "{}", chunks.len());
    // The unchunked cookie goes, as Better Auth's chunking expires it: readers take it first.
    assert!(
        r.set_cookie(DATA).is_some_and(|l| l.contains("Max-Age=0")),
        "{:?}",
        r.set_cookies()
    );
    for (i, line) in chunks.iter().enumerate() {
        assert!(line.starts_with(&format!("{DATA}.{i}=")), "{line}");
        assert!(line.len() <= 4050, "{}", line.len());
    }
    let both = format!("{token}; {}", jar(&chunks));
    let calls = f.store.calls();
    let cached = f.get("/me", &both).await;
    assert!(cached.body.ends_with("cache=true"), "chunks reassembled");
    assert_eq!(f.store.calls(), calls);
    // An empty unchunked cookie beside them counts as absent, as in Better Auth.
    let cached = f
        .get("/me", &format!("{token}; {DATA}=; {}", jar(&chunks)))
        .await;
    assert!(cached.body.ends_with("cache=true"), "{}", cached.body);
    assert_eq!(f.store.calls(), calls);
}

/// "Don't remember me" sessions: the sign-in's cache cookie lasts the browser session, and a
/// store read issues none, as Better Auth's `getSession` returns before `setCookieCache` for
/// them (beside a Better Auth server the two would overwrite each other's on every request).
#[tokio::test]
async fn dont_remember_sessions_get_their_cache_at_sign_in_only() {
    let f = fx();
    let lines = f
        .sign_in_lines(&f.user, SignIn::new().remember_me(false))
        .await;
    let data = lines
        .iter()
        .find(|l| l.starts_with(&format!("{DATA}=")))
        .expect("a cache cookie at sign-in");
    assert!(!data.contains("Max-Age"), "{data}");
    let cookies = f.token_cookie(false).await;
    let r = f.get("/me", &cookies).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookie(DATA).is_none(), "{:?}", r.set_cookies());
}

#[tokio::test]
async fn jwt_strategy_round_trips() {
    let f = fx_with("Jwt", |b| b.cookie_cache(CookieCache::jwt()));
    let token = f.token_cookie(true).await;
    let data = f.get("/me", &token).await.cookie_pair(DATA);
    assert_eq!(
        data.split_once('=').unwrap().1.split('.').count(),
        3,
        "a JWT"
    );
    let calls = f.store.calls();
    assert!(f
        .get("/me", &format!("{token}; {data}"))
        .await
        .body
        .ends_with("cache=true"));
    assert_eq!(f.store.calls(), calls);
}

#[test]
fn jwe_is_refused_at_start_up() {
    let err = SessionConfig::builder()
        .secret(SECRET)
        .cookie_cache(CookieCache::with_strategy(
            tower_auth_session::CookieCacheStrategy::Jwe,
        ))
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("\"jwe\" strategy is not supported"),
        "{err}"
    );
}

/// A user whose cache cookie is chunked (a 9,000-character name), a session's cookie, and the
/// chunk lines its first store read issued.
async fn chunked() -> (Fx, String, Vec<String>) {
    let f = fx_with(&"N".repeat(9000), |b| {
        b.cookie_cache(CookieCache::compact())
    });
    let token = f.token_cookie(true).await;
    let chunks: Vec<String> = f
        .get("/me", &token)
        .await
        .set_cookies()
        .into_iter()
        .filter(|l| l.starts_with(&format!("{DATA}.")))
        .collect();
    (f, token, chunks)
}

/// A chunk sent twice (cookies of two paths or domains) is read as Better Auth's
/// `parseCookies` reads it: the last copy counts, and a copy whose value has characters a
/// cookie value may not (a backslash, a quote inside) is skipped.
#[tokio::test]
async fn a_chunk_sent_twice_is_read_as_better_auth_reads_it() {
    let (f, token, chunks) = chunked().await;
    let pairs: Vec<&str> = chunks
        .iter()
        .map(|l| l.split(';').next().unwrap())
        .collect();
    let first = pairs[0];
    let (name, _) = first.split_once('=').unwrap();
    let rest = pairs[1..].join("; ");
    let stale = format!("{name}=stale");
    let cases = [
        // The stale copy first, the good one last: the cache is read.
        (format!("{token}; {stale}; {first}; {rest}"), true),
        // The good copy first, the stale one last: the stale one counts, and the store is read.
        (format!("{token}; {first}; {stale}; {rest}"), false),
        // A last copy Better Auth skips (a backslash): the good one counts.
        (format!("{token}; {first}; {name}=bad\\value; {rest}"), true),
    ];
    for (case, (cookie, cached)) in cases.iter().enumerate() {
        let r = f.get("/me", cookie).await;
        assert_eq!(r.status, 200);
        assert!(
            r.body.ends_with(&format!("cache={cached}")),
            "case {case}: {}",
            r.body.len()
        );
    }
}

#[tokio::test]
async fn expired_sessions_clear_the_cache_chunks_too() {
    let (f, token, chunks) = chunked().await;
    f.clock.set(T0 + Duration::days(8));
    let r = f.get("/me", &format!("{token}; {}", jar(&chunks))).await;
    assert_eq!(r.status, 401);
    for i in 0..chunks.len() {
        assert!(r
            .set_cookie(&format!("{DATA}.{i}"))
            .unwrap()
            .contains("Max-Age=0"));
    }
    assert!(r.set_cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=0"));
}

/// A refresh leaves a cache cookie of another strategy alone, as every other store read does:
/// the Better Auth server's own refresh rewrites it, and the two must not overwrite each other.
#[tokio::test]
async fn a_refresh_leaves_another_strategys_cache_cookie_alone() {
    let f = fx();
    let token = f.token_cookie(true).await;
    // A JWT-shaped cookie (Better Auth set to `jwt`, the layer to `compact`).
    let theirs = format!("{DATA}=eyJhbGciOiJIUzI1NiJ9.eyJzZXNzaW9uIjp7fX0.c2ln");
    f.clock.set(T0 + Duration::days(2));
    let r = f.get("/me", &format!("{token}; {theirs}")).await;
    assert_eq!(r.status, 200);
    assert!(
        r.set_cookie(TOKEN_COOKIE)
            .unwrap()
            .contains("Max-Age=604800"),
        "refreshed"
    );
    assert!(
        r.set_cookie(DATA).is_none(),
        "another strategy's cookie overwritten: {:?}",
        r.set_cookies()
    );
}

/// Clearing a session expires the cache-cookie chunks the request carried even with the
/// layer's cache off (the Better Auth server may have its own on), each chunk once however often
/// the request repeats it.
#[tokio::test]
async fn clearing_expires_each_cache_chunk_once_with_the_layers_cache_off() {
    let f = fx_with("NoCache", |b| b);
    let token = f.token_cookie(true).await;
    f.clock.set(T0 + Duration::days(8));
    let repeated = vec![format!("{DATA}.0=a"); 500].join("; ");
    let r = f
        .get("/me", &format!("{token}; {repeated}; {DATA}.1=b"))
        .await;
    assert_eq!(r.status, 401);
    for name in [format!("{DATA}.0"), format!("{DATA}.1")] {
        let lines: Vec<String> = r
            .set_cookies()
            .into_iter()
            .filter(|l| l.starts_with(&format!("{name}=")))
            .collect();
        assert_eq!(lines.len(), 1, "{name}: {lines:?}");
        assert!(lines[0].contains("Max-Age=0"), "{lines:?}");
    }
    assert!(r.set_cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=0"));
}

/// A "don't remember me" session's JWT cache is trusted for 300 s, as Better Auth's
/// `setCookieCache` signs it (`options.maxAge || 300`; the compact form's fallback is 60 s).
#[tokio::test]
async fn a_dont_remember_jwt_cache_lives_300_seconds() {
    use base64::Engine as _;
    let f = fx_with("Jwt", |b| b.cookie_cache(CookieCache::jwt()));
    // Issued at sign-in (a store read issues none for such a session, as in Better Auth).
    let line = f
        .sign_in_lines(&f.user, SignIn::new().remember_me(false))
        .await
        .into_iter()
        .find(|l| l.starts_with(&format!("{DATA}=")))
        .unwrap();
    assert!(!line.contains("Max-Age"), "{line}");
    let data = line.split(';').next().unwrap();
    let payload = data.split_once('=').unwrap().1.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300,
        "{claims}"
    );
}

/// A sign-out expires the cookie cache's chunks the request carried, as Better Auth's
/// `deleteSessionCookie` does, and the layer does not issue a new cache for the session the
/// handler just ended (it once wrote fresh chunks beside the handler's expiries).
#[tokio::test]
async fn a_sign_out_expires_the_cache_chunks_and_gets_no_new_cache() {
    let (f, token, chunks) = chunked().await;
    assert!(chunks.len() >= 2, "{chunks:?}");
    for cookie in [format!("{token}; {}", jar(&chunks)), token.clone()] {
        let r = send(
            f.app.clone(),
            http::Request::post("/sign-out")
                .header(http::header::COOKIE, &cookie)
                .header(http::header::ORIGIN, "http://localhost:3000")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.set_cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=0"));
        for line in r.set_cookies().iter().filter(|l| l.starts_with(DATA)) {
            assert!(
                line.contains("Max-Age=0"),
                "a cache issued at sign-out: {line}"
            );
        }
        if cookie.contains(DATA) {
            for i in 0..chunks.len() {
                assert!(
                    r.set_cookie(&format!("{DATA}.{i}"))
                        .is_some_and(|l| l.contains("Max-Age=0")),
                    "chunk {i} left: {:?}",
                    r.set_cookies()
                );
            }
        }
    }
}

/// Better Auth's other sign-in cookies, as a browser holds them beside a Better Auth server with
/// `account.storeAccountCookie` (the account cookie, chunked or not) and the cookie state
/// strategy (`oauth_state`).
const OTHERS: [&str; 4] = [
    "better-auth.account_data",
    "better-auth.account_data.0",
    "better-auth.account_data.1",
    "better-auth.oauth_state",
];

/// Asserts that `lines` expire each of [`OTHERS`] once when `carried`, and none otherwise.
fn assert_others_expired(lines: &[String], carried: bool, what: &str) {
    for name in OTHERS {
        let expiries: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{name}=")))
            .collect();
        if carried {
            assert_eq!(expiries.len(), 1, "{what}: {name}: {lines:?}");
            assert!(
                expiries[0].starts_with(&format!("{name}=; Max-Age=0; Path=/")),
                "{what}: {expiries:?}"
            );
        } else {
            assert!(expiries.is_empty(), "{what}: {name} touched: {lines:?}");
        }
    }
}

/// A session cleared by the layer (expired), a sign-out through `Sessions` and one through
/// `SessionManager::sign_out_request` expire Better Auth's account cookie (with its chunks) and
/// `oauth_state` when the request carries them, as Better Auth's `deleteSessionCookie` does: a
/// sign-out from Rust left the previous user's linked-account tokens in the browser, which
/// Better Auth's `getAccountCookie` reads without checking whose they are. A request that
/// carries none of them gets no deletions of them.
#[tokio::test]
async fn clearing_a_session_expires_better_auths_account_and_oauth_state_cookies() {
    let f = fx();
    let others = OTHERS.map(|n| format!("{n}=x")).join("; ");
    for carried in [true, false] {
        let with = |token: &str| {
            if carried {
                format!("{token}; {others}; better-auth.account_data.0=again")
            } else {
                token.to_owned()
            }
        };
        let token = f.token_cookie(true).await;
        let r = send(
            f.app.clone(),
            http::Request::post("/sign-out")
                .header(http::header::COOKIE, with(&token))
                .header(http::header::ORIGIN, "http://localhost:3000")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_others_expired(&r.set_cookies(), carried, "Sessions::sign_out");

        let token = f.token_cookie(true).await;
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::COOKIE, with(&token).parse().unwrap());
        let out = f.layer.manager().sign_out_request(&headers).await.unwrap();
        let lines: Vec<String> = out.iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_others_expired(&lines, carried, "sign_out_request");

        let token = f.token_cookie(true).await;
        f.clock.set(T0 + Duration::days(8));
        let r = f.get("/me", &with(&token)).await;
        assert_eq!(r.status, 401);
        assert_others_expired(&r.set_cookies(), carried, "the layer's clearing");
        // A live session's request leaves them alone.
        f.clock.set(T0);
        let token = f.token_cookie(true).await;
        let r = f.get("/me", &with(&token)).await;
        assert_eq!(r.status, 200);
        assert_others_expired(&r.set_cookies(), false, "a live session");
    }
}

/// `Sessions::revoke` of the request's own session clears its cookies, the cache's chunks
/// among them, as Better Auth's `revoke-session` does (`deleteSessionCookie` when the token is
/// the current one), and the layer issues no cache for the session just ended; revoking
/// another of the user's sessions leaves the request's cookies alone.
#[tokio::test]
async fn revoking_the_own_session_clears_its_cookies_and_gets_no_new_cache() {
    let (f, token, chunks) = chunked().await;
    let other = f.token_cookie(true).await;
    let cookie = format!("{token}; {}", jar(&chunks));

    let r = f
        .post(&format!("/revoke-session/{}", key_of(&other)), &cookie)
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "1"));
    assert!(
        r.set_cookie(TOKEN_COOKIE).is_none(),
        "{:?}",
        r.set_cookies()
    );
    assert_eq!(f.get("/me", &other).await.status, 401);
    assert_eq!(f.get("/me", &token).await.status, 200);

    let r = f
        .post(&format!("/revoke-session/{}", key_of(&token)), &cookie)
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "1"));
    assert!(r.set_cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=0"));
    for line in r.set_cookies().iter().filter(|l| l.starts_with(DATA)) {
        assert!(
            line.contains("Max-Age=0"),
            "a cache issued at revoke: {line}"
        );
    }
    for i in 0..chunks.len() {
        assert!(
            r.set_cookie(&format!("{DATA}.{i}"))
                .is_some_and(|l| l.contains("Max-Age=0")),
            "chunk {i} left: {:?}",
            r.set_cookies()
        );
    }
    assert_eq!(f.get("/me", &token).await.status, 401);
}

/// `Sessions::revoke_all` ends every session of the user and clears this one's cookies
/// (Better Auth's `revoke-sessions`); `revoke_others` ends the others and changes no cookie
/// (`revoke-other-sessions`); signed out, neither deletes anything.
#[tokio::test]
async fn revoke_all_clears_the_cookies_and_revoke_others_keeps_this_session() {
    let f = fx();
    let own = f.token_cookie(true).await;
    let (a, b) = (f.token_cookie(true).await, f.token_cookie(false).await);

    let r = f.post("/revoke-other-sessions", &own).await;
    assert_eq!((r.status, r.body.as_str()), (200, "2"));
    assert!(
        r.set_cookie(TOKEN_COOKIE).is_none(),
        "{:?}",
        r.set_cookies()
    );
    assert!(
        r.set_cookies()
            .iter()
            .all(|l| !l.starts_with(DATA) || !l.contains("Max-Age=0")),
        "{:?}",
        r.set_cookies()
    );
    for gone in [&a, &b] {
        assert_eq!(f.get("/me", gone).await.status, 401);
    }
    assert_eq!(f.get("/me", &own).await.status, 200);

    let again = f.token_cookie(true).await;
    let r = f.post("/revoke-sessions", &own).await;
    assert_eq!((r.status, r.body.as_str()), (200, "2"));
    assert!(r.set_cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=0"));
    for line in r.set_cookies().iter().filter(|l| l.starts_with(DATA)) {
        assert!(
            line.contains("Max-Age=0"),
            "a cache issued at revoke: {line}"
        );
    }
    for gone in [&own, &again] {
        assert_eq!(f.get("/me", gone).await.status, 401);
    }

    let survivor = f.token_cookie(true).await;
    let anonymous = "unrelated=1";
    for path in ["/revoke-other-sessions", "/revoke-sessions"] {
        let r = f.post(path, anonymous).await;
        assert_eq!((r.status, r.body.as_str()), (200, "0"), "{path}");
    }
    let r = f
        .post(&format!("/revoke-session/{}", key_of(&survivor)), anonymous)
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "0"));
    assert_eq!(f.get("/me", &survivor).await.status, 200);
}

/// Better Auth's `jwt({ sessionCookieCache: true })` signs its `jwt` cache cookie with the
/// plugin's keys (`EdDSA`, a `kid`), a form this crate neither reads nor writes: the layer (set
/// to `jwt`, the secret-signed form) leaves it alone on store reads and refreshes, as it does a
/// cookie of another strategy. Before, each side expired and rewrote the other's cookie on
/// every request, so neither cache ever hit.
#[tokio::test]
async fn a_cache_jwt_signed_with_the_plugins_keys_is_left_alone() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let f = fx_with("Cache", |b| b.cookie_cache(CookieCache::jwt()));
    let token = f.token_cookie(true).await;
    let theirs = format!(
        "{DATA}={}.{}.c2ln",
        b64(r#"{"alg":"EdDSA","kid":"k1","typ":"better-auth.session-cache+jwt"}"#),
        b64(r#"{"session":{},"user":{}}"#)
    );
    for at in [T0, T0 + Duration::days(2)] {
        f.clock.set(at);
        let r = f.get("/me", &format!("{token}; {theirs}")).await;
        assert_eq!(r.status, 200);
        assert!(
            r.set_cookie(DATA).is_none(),
            "the plugin's cache cookie overwritten: {:?}",
            r.set_cookies()
        );
    }
    // An HS256 one that fails to verify is still replaced, as before.
    let forged = format!(
        "{DATA}={}.{}.c2ln",
        b64(r#"{"alg":"HS256"}"#),
        b64(r#"{"session":{},"user":{}}"#)
    );
    let r = f.get("/me", &format!("{token}; {forged}")).await;
    let lines = r.set_cookies();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{DATA}=")) && !l.contains("Max-Age=0")),
        "{lines:?}"
    );
}

/// On a route where the store decides (`authoritative_for`), the layer still leaves a cache
/// cookie of another strategy alone (it issued its own there, overwriting Better Auth's).
#[tokio::test]
async fn an_authoritative_route_leaves_another_strategys_cache_cookie_alone() {
    let f = fx();
    let token = f.token_cookie(true).await;
    let theirs = format!("{DATA}=eyJhbGciOiJIUzI1NiJ9.eyJzZXNzaW9uIjp7fX0.c2ln");
    let r = f
        .get("/account/security", &format!("{token}; {theirs}"))
        .await;
    assert_eq!(r.body, "cache@example.com cache=false");
    assert!(
        r.set_cookie(DATA).is_none(),
        "another strategy's cookie overwritten: {:?}",
        r.set_cookies()
    );
    // Its own strategy's cookie is still issued there, as before.
    let r = f.get("/account/security", &token).await;
    assert!(r.set_cookie(DATA).is_some(), "{:?}", r.set_cookies());
}

/// The revocations read a session the cookie cache vouched for from the store first, as Better
/// Auth's `sensitiveSessionMiddleware` does: a session revoked elsewhere, still served from its
/// cache cookie, cannot end the user's other sessions.
#[tokio::test]
async fn a_cached_session_revoked_elsewhere_revokes_nothing() {
    let f = fx();
    let own = f.token_cookie(true).await;
    let other = f.token_cookie(true).await;
    let first = f.get("/me", &own).await;
    let cached = format!("{own}; {}", jar(&first.set_cookies()));
    assert_eq!(
        f.get("/me", &cached).await.body,
        "cache@example.com cache=true"
    );

    f.layer.manager().revoke(&key_of(&own)).await.unwrap();
    assert_eq!(
        f.get("/me", &cached).await.body,
        "cache@example.com cache=true",
        "still served from its cache cookie"
    );
    for path in [
        "/revoke-other-sessions".to_owned(),
        format!("/revoke-session/{}", key_of(&other)),
        "/revoke-sessions".to_owned(),
    ] {
        let r = f.post(&path, &cached).await;
        assert_eq!((r.status, r.body.as_str()), (200, "0"), "{path}");
    }
    assert_eq!(
        f.get("/me", &other).await.status,
        200,
        "the other session lives"
    );
}

/// A sign-in writes the cookie cache of the new session, as Better Auth's `setSessionCookie`
/// does: the cache of the account signed in before on the same browser is replaced (helpers
/// that trust the cache alone, such as Better Auth's `getCookieCache`, would otherwise keep
/// showing that account), and the new session's first request needs no store read. A
/// remembered sign-in on a request without a "don't remember me" marker expires none.
/// A sign-in whose cache must be chunked (a 9,000-character name) expires the previous
/// account's unchunked cache cookie: Better Auth's `getCookieCache`, which does not compare
/// tokens, reads that one first and kept showing the previous account.
#[tokio::test]
async fn a_chunked_sign_in_expires_the_previous_unchunked_cache() {
    let f = fx();
    let big = User::new("big@example.com", &"N".repeat(9000), T0);
    let lines = f.sign_in_after_another(&big).await;
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("{DATA}.0="))),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{DATA}=;")) && l.contains("Max-Age=0")),
        "{lines:?}"
    );
}

/// With the layer's cache off, Better Auth's server may still keep one (the README's advice for
/// the layer, Better Auth's for its server): a sign-in from Rust expires the cache cookie, and
/// its chunks, that the request carried, or `getCookieCache` keeps showing the account signed in
/// before. A request without one gets no deletion.
#[tokio::test]
async fn a_sign_in_with_the_layers_cache_off_expires_the_previous_accounts_cache() {
    let f = fx_with("NoCache", |b| b);
    let bob = User::new("bob@example.com", "Bob", T0);
    f.store.inner.insert_user(bob.clone());
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::COOKIE,
        format!("{DATA}=alice-cache-from-better-auth; {DATA}.0=x")
            .parse()
            .unwrap(),
    );
    let lines = f
        .sign_in_lines(&bob, SignIn::from_headers(&headers, f.layer.config()))
        .await;
    for name in [DATA.to_owned(), format!("{DATA}.0")] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{name}=;")) && l.contains("Max-Age=0")),
            "{name} not expired: {lines:?}"
        );
    }
    let lines = f
        .sign_in_lines(
            &bob,
            SignIn::from_headers(&http::HeaderMap::new(), f.layer.config()),
        )
        .await;
    assert!(
        !lines.iter().any(|l| l.starts_with(DATA)),
        "nothing to expire: {lines:?}"
    );
}

#[tokio::test]
async fn a_sign_in_issues_the_new_sessions_cache() {
    let f = fx();
    let lines = f
        .sign_in_after_another(&User::new("other@example.com", "B", T0))
        .await;
    let data = lines
        .iter()
        .find(|l| l.starts_with(&format!("{DATA}=")))
        .expect("session_data written at sign-in");
    assert!(data.contains("; Max-Age=300;"), "{data}");
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("better-auth.dont_remember=")),
        "no marker to expire: {lines:?}"
    );
    let calls = f.store.calls();
    let r = f.get("/me", &jar(&lines)).await;
    assert_eq!(r.body, "other@example.com cache=true");
    assert_eq!(f.store.calls(), calls, "answered from the new cache");
}
