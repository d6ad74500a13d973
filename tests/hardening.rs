//! Issue 6: outage policy, race-free refresh and revocation, secret rotation, observability,
//! housekeeping, absurd stored dates and hashed tokens at rest.

mod common;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use common::*;
use futures_util::future::join_all;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tower_auth_session::extract::{CurrentSession, MaybeUser};
use tower_auth_session::{
    Authenticated, ManualClock, MemoryStore, OutagePolicy, Session, SessionConfig,
    SessionConfigBuilder, SessionLayer, SessionStore, SignIn, SqliteStore, StorageKey, StoreError,
    User,
};

const T0: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);
const COOKIE: &str = "better-auth.session_token";

/// A store that yields to the scheduler inside every call, so concurrent requests interleave
/// inside the store as they would against a real database.
#[derive(Clone, Debug)]
struct Yielding<S>(S);

async fn pause() {
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
}

impl<S: SessionStore> SessionStore for Yielding<S> {
    async fn find(&self, token: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        pause().await;
        let found = self.0.find(token).await;
        pause().await;
        found
    }
    async fn create(&self, session: &Session, user: &User) -> Result<Session, StoreError> {
        self.0.create(session, user).await
    }
    async fn extend(
        &self,
        token: &StorageKey<'_>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        pause().await;
        self.0.extend(token, expires_at, now).await
    }
    async fn delete(&self, token: &StorageKey<'_>) -> Result<(), StoreError> {
        self.0.delete(token).await
    }
    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        self.0.delete_user_sessions(user_id).await
    }
    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        self.0.list_user_sessions(user_id, now).await
    }
    async fn delete_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.0.delete_expired(now).await
    }
}

fn me_router<St: SessionStore>(layer: &SessionLayer<St>) -> Router {
    Router::new()
        .route(
            "/me",
            get(|CurrentSession(a): CurrentSession| async move {
                tower_auth_session::test_support::to_iso(a.session.expires_at)
            }),
        )
        .route(
            "/",
            get(|MaybeUser(u): MaybeUser| async move {
                u.map_or("anonymous".into(), |u| u.email.clone())
            }),
        )
        .layer(layer.clone())
}

fn config(
    clock: &ManualClock,
    f: impl FnOnce(SessionConfigBuilder) -> SessionConfigBuilder,
) -> SessionConfig {
    f(SessionConfig::builder().secret(SECRET).clock(clock.clone()))
        .build()
        .unwrap()
}

async fn signed_cookie<St: SessionStore>(layer: &SessionLayer<St>, user: &User) -> String {
    session_cookie(&layer.manager().sign_in(user, SignIn::new()).await.unwrap())
}

fn token_of(cookie: &str) -> String {
    cookie
        .split_once('=')
        .unwrap()
        .1
        .split('.')
        .next()
        .unwrap()
        .to_owned()
}

// ---- races -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_refreshes_write_once_and_expiry_only_grows() {
    let clock = ManualClock::new(T0);
    let memory = MemoryStore::new();
    let store = Counting::new(Yielding(memory.clone()));
    let user = User::new("race@example.com", "R", T0);
    memory.insert_user(user.clone());
    let layer = SessionLayer::new(config(&clock, |b| b), store.clone());
    let cookie = signed_cookie(&layer, &user).await;
    let app = me_router(&layer);
    let writes = store.writes();

    clock.set(T0 + Duration::days(1) + Duration::milliseconds(1));
    let replies = join_all((0..50).map(|_| send(app.clone(), get_req("/me", Some(&cookie))))).await;
    assert!(
        replies.iter().all(|r| r.status == 200),
        "nobody is logged out by the race"
    );
    assert_eq!(
        store.writes() - writes,
        1,
        "one store write for 50 concurrent refreshes"
    );
    let refreshed = replies
        .iter()
        .filter(|r| r.set_cookie(COOKIE).is_some())
        .count();
    assert_eq!(refreshed, 1, "one response re-sends the cookie");
    let final_expiry = memory
        .find(&StorageKey::new(token_of(&cookie)))
        .await
        .unwrap()
        .unwrap()
        .session
        .expires_at;
    assert_eq!(
        final_expiry,
        T0 + Duration::days(8) + Duration::milliseconds(1)
    );
    for r in &replies {
        let seen = tower_auth_session::test_support::parse_iso(&r.body).unwrap();
        assert!(
            seen >= T0 + Duration::days(7) && seen <= final_expiry,
            "monotonic: {}",
            r.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_racing_a_slow_refresh_never_resurrects_the_session() {
    for _ in 0..20 {
        let clock = ManualClock::new(T0);
        let memory = MemoryStore::new();
        let user = User::new("race2@example.com", "R", T0);
        memory.insert_user(user.clone());
        let layer = SessionLayer::new(config(&clock, |b| b), Yielding(memory.clone()));
        let cookie = signed_cookie(&layer, &user).await;
        let app = me_router(&layer);
        clock.set(T0 + Duration::days(2));
        let manager = layer.manager();
        let token = token_of(&cookie);
        let (slow, _) = tokio::join!(
            send(app.clone(), get_req("/me", Some(&cookie))),
            manager.sign_out(&token)
        );
        assert!(slow.status == 200 || slow.status == 401, "{}", slow.status);
        assert!(
            memory
                .find(&StorageKey::new(token.as_str()))
                .await
                .unwrap()
                .is_none(),
            "signed out stays signed out"
        );
        assert_eq!(send(app, get_req("/me", Some(&cookie))).await.status, 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_all_racing_a_refresh_wins() {
    for _ in 0..20 {
        let clock = ManualClock::new(T0);
        let memory = MemoryStore::new();
        let user = User::new("race3@example.com", "R", T0);
        memory.insert_user(user.clone());
        let layer = SessionLayer::new(config(&clock, |b| b), Yielding(memory.clone()));
        let a = signed_cookie(&layer, &user).await;
        let b = signed_cookie(&layer, &user).await;
        let app = me_router(&layer);
        clock.set(T0 + Duration::days(2));
        let manager = layer.manager();
        let (_, _, revoked) = tokio::join!(
            send(app.clone(), get_req("/me", Some(&a))),
            send(app.clone(), get_req("/me", Some(&b))),
            manager.revoke_all(&user.id)
        );
        revoked.unwrap();
        assert_eq!(
            memory.session_count(),
            0,
            "no refresh brought a session back"
        );
        assert_eq!(
            send(app.clone(), get_req("/me", Some(&a))).await.status,
            401
        );
        assert_eq!(send(app, get_req("/me", Some(&b))).await.status, 401);
    }
}

// ---- outage policy -----------------------------------------------------------------------------

/// A store that never answers: the per-call deadline must.
#[derive(Clone, Debug)]
struct Hanging;

impl SessionStore for Hanging {
    async fn find(&self, _: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        std::future::pending().await
    }
    async fn create(&self, _: &Session, _: &User) -> Result<Session, StoreError> {
        std::future::pending().await
    }
    async fn extend(
        &self,
        _: &StorageKey<'_>,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        std::future::pending().await
    }
    async fn delete(&self, _: &StorageKey<'_>) -> Result<(), StoreError> {
        std::future::pending().await
    }
    async fn delete_user_sessions(&self, _: &str) -> Result<u64, StoreError> {
        std::future::pending().await
    }
    async fn list_user_sessions(
        &self,
        _: &str,
        _: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        std::future::pending().await
    }
    async fn delete_expired(&self, _: OffsetDateTime) -> Result<u64, StoreError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn outage_policies() {
    let clock = ManualClock::new(T0);
    let cfg = config(&clock, |b| b);
    let cookie = format!(
        "{COOKIE}={}",
        cfg.signer()
            .sign_cookie_value("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    );

    let closed = me_router(&SessionLayer::new(cfg, Down));
    let r = send(closed.clone(), get_req("/", Some(&cookie))).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["code"], "SESSION_STORE_UNAVAILABLE");
    assert!(r.set_cookies().is_empty());

    let anonymous = me_router(&SessionLayer::new(
        config(&clock, |b| b.on_store_error(OutagePolicy::Anonymous)),
        Down,
    ));
    let r = send(anonymous.clone(), get_req("/", Some(&cookie))).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "anonymous"),
        "served as anonymous"
    );
    assert!(r.set_cookies().is_empty(), "but nobody is signed out");
    assert_eq!(
        send(anonymous, get_req("/me", Some(&cookie))).await.status,
        401
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_store_hits_the_deadline() {
    let clock = ManualClock::new(T0);
    let cfg = config(&clock, |b| {
        b.store_timeout(std::time::Duration::from_millis(250))
    });
    let cookie = format!(
        "{COOKIE}={}",
        cfg.signer()
            .sign_cookie_value("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    );
    let app = me_router(&SessionLayer::new(cfg, Hanging));
    // Tokio's paused clock auto-advances to the deadline: no real waiting.
    let r = send(app, get_req("/me", Some(&cookie))).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers["retry-after"], "5");
}

// ---- secret rotation ----------------------------------------------------------------------------

/// The secret before a rotation.
const OLD: &str = "old-secret-0123456789-abcdefghijklmnop";

/// A layer on `memory` signing with [`OLD`]: the deployment before the rotation.
fn under_old_secret(clock: &ManualClock, memory: &MemoryStore) -> SessionLayer<MemoryStore> {
    SessionLayer::new(
        SessionConfig::builder()
            .secret(OLD)
            .clock(clock.clone())
            .build()
            .unwrap(),
        memory.clone(),
    )
}

#[tokio::test]
async fn previous_secrets_verify_and_cookies_are_re_signed() {
    let clock = ManualClock::new(T0);
    let memory = MemoryStore::new();
    let user = User::new("rot@example.com", "R", T0);
    memory.insert_user(user.clone());
    let before = under_old_secret(&clock, &memory);
    let cookie = signed_cookie(&before, &user).await;

    // Rotated: the new secret is current, the old one verifies until `until`.
    let until = T0 + Duration::days(3);
    let after = SessionLayer::new(
        config(&clock, |b| b.previous_secret(OLD, Some(until))),
        memory.clone(),
    );
    let app = me_router(&after);
    clock.set(T0 + Duration::hours(1));
    let r = send(app.clone(), get_req("/me", Some(&cookie))).await;
    assert_eq!(r.status, 200, "an old-secret cookie still works");
    let line = r
        .set_cookie(COOKIE)
        .expect("re-signed with the current secret");
    let resigned = line.split(';').next().unwrap().to_owned();
    assert_ne!(resigned, cookie);
    assert!(
        line.contains("Max-Age=601200"),
        "remaining lifetime: {line}"
    );
    assert_eq!(
        resigned,
        format!(
            "{COOKIE}={}",
            after
                .config()
                .signer()
                .sign_cookie_value(&token_of(&cookie))
        )
    );
    let again = send(app.clone(), get_req("/me", Some(&resigned))).await;
    assert!(
        again.set_cookies().is_empty(),
        "a current-secret cookie is left alone"
    );

    clock.set(until + Duration::milliseconds(1));
    assert_eq!(
        send(app.clone(), get_req("/me", Some(&cookie)))
            .await
            .status,
        401,
        "past its end date"
    );
    assert_eq!(send(app, get_req("/me", Some(&resigned))).await.status, 200);
}

/// A "don't remember me" marker verified with a previous secret is re-signed with the current
/// one along with the session cookie, so the session is still never refreshed once the old
/// secret stops verifying (it was refreshed into a lasting 7-day cookie).
#[tokio::test]
async fn a_dont_remember_marker_is_re_signed_with_the_session_cookie() {
    const MARKER: &str = "better-auth.dont_remember";
    let clock = ManualClock::new(T0);
    let memory = MemoryStore::new();
    let user = User::new("forget@example.com", "F", T0);
    memory.insert_user(user.clone());
    let before = under_old_secret(&clock, &memory);
    let signed = before
        .manager()
        .sign_in(&user, SignIn::new().remember_me(false))
        .await
        .unwrap();
    let pairs: Vec<String> = signed
        .cookies
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    assert_eq!(pairs.len(), 2, "{pairs:?}");
    let old_cookies = pairs.join("; ");

    // Such a session lives a day, and is always due for refresh by `updateAge`.
    let until = T0 + Duration::hours(12);
    let after = SessionLayer::new(
        config(&clock, |b| b.previous_secret(OLD, Some(until))),
        memory.clone(),
    );
    let app = me_router(&after);
    clock.set(T0 + Duration::hours(1));
    let r = send(app.clone(), get_req("/me", Some(&old_cookies))).await;
    assert_eq!(r.status, 200);
    let session = r.set_cookie(COOKIE).expect("the session cookie re-signed");
    assert!(
        !session.contains("Max-Age"),
        "a browser-session cookie: {session}"
    );
    let marker = r.set_cookie(MARKER).expect("the marker re-signed");
    assert!(!marker.contains("Max-Age"), "{marker}");
    let new_cookies = format!("{}; {}", r.cookie_pair(COOKIE), r.cookie_pair(MARKER));
    assert_eq!(
        r.cookie_pair(MARKER),
        format!(
            "{MARKER}={}",
            after.config().signer().sign_cookie_value("true")
        )
    );
    let again = send(app.clone(), get_req("/me", Some(&new_cookies))).await;
    assert!(again.set_cookies().is_empty(), "{:?}", again.set_cookies());

    // Past the old secret's end: still never refreshed.
    clock.set(until + Duration::hours(1));
    let r = send(app, get_req("/me", Some(&new_cookies))).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    let row = memory
        .find(&tower_auth_session::StorageKey::new(&signed.session.token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.session.expires_at, signed.session.expires_at);
}

// ---- observability ------------------------------------------------------------------------------

// ---- housekeeping, dates, Max-Age ---------------------------------------------------------------

#[tokio::test]
async fn sweeper_deletes_expired_sessions_in_bounded_batches() {
    let sqlite = SqliteStore::connect("sqlite::memory:").await.unwrap();
    let store = Counting::new(sqlite.clone());
    let clock = ManualClock::new(T0);
    let layer = SessionLayer::new(config(&clock, |b| b), store.clone());
    let user = User::new("sweep@example.com", "S", T0);
    sqlite.insert_user(&user).await.unwrap();
    for _ in 0..25 {
        let _seeded = layer.manager().sign_in(&user, SignIn::new()).await.unwrap();
    }
    clock.set(T0 + Duration::days(3));
    let live = signed_cookie(&layer, &user).await;
    clock.set(T0 + Duration::days(8));
    let deleted = layer.manager().sweep_expired(10).await.unwrap();
    assert_eq!(deleted, 25);
    assert_eq!(
        *store.batches.lock().unwrap(),
        vec![(10, 10), (10, 10), (10, 5)],
        "bounded batches until one comes back short"
    );
    let left: i64 = sqlx::query_scalar(r#"select count(*) from "session""#)
        .fetch_one(sqlite.pool())
        .await
        .unwrap();
    assert_eq!(left, 1);
    assert_eq!(
        send(me_router(&layer), get_req("/me", Some(&live)))
            .await
            .status,
        200
    );

    // The background task sweeps by itself (Tokio's paused clock is not needed: the first tick
    // fires at once).
    for _ in 0..3 {
        let _seeded = layer.manager().sign_in(&user, SignIn::new()).await.unwrap();
    }
    clock.set(T0 + Duration::days(20));
    store.batches.lock().unwrap().clear();
    let task = layer
        .manager()
        .spawn_sweeper(std::time::Duration::from_secs(3600), 100);
    // Waits for the sweep itself, not for a number of turns: the delete runs on sqlx's SQLite
    // worker thread, which a busy machine may not schedule within a fixed count of yields. The
    // deadline only bounds how long a broken sweeper takes to fail.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.batches.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    task.abort();
    assert_eq!(
        store.batches.lock().unwrap().first(),
        Some(&(100, 4)),
        "the task swept"
    );
}

#[tokio::test]
async fn health_check_round_trips_a_probe() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    let user = User::new("probe@example.com", "P", T0);
    store.insert_user(&user).await.unwrap();
    let layer = SessionLayer::new(
        SessionConfig::builder().secret(SECRET).build().unwrap(),
        store.clone(),
    );
    layer.manager().health_check(&user).await.unwrap();
    let left: i64 = sqlx::query_scalar(r#"select count(*) from "session""#)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0, "the probe is deleted");
    let down = SessionLayer::new(
        SessionConfig::builder().secret(SECRET).build().unwrap(),
        Down,
    );
    assert!(down.manager().health_check(&user).await.is_err());
}

#[tokio::test]
async fn absurd_stored_dates_never_panic() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    let user = User::new("dates@example.com", "D", T0);
    store.insert_user(&user).await.unwrap();
    let clock = ManualClock::new(T0);
    let layer = SessionLayer::new(config(&clock, |b| b), store.clone());
    let app = me_router(&layer);
    let cases = [
        ("9999-12-31T23:59:59.999Z", 200),
        // In UTC past the last year `time` holds: once a panic on every request.
        ("9999-12-31T23:59:59.999-01:00", 200),
        ("0000-01-01T00:30:00.000+01:00", 401),
        ("1969-07-20T20:17:40.000Z", 401),
        ("0000-01-01T00:00:00.000Z", 401),
        ("not a date", 401),
        ("", 401),
        ("99999999999999999999", 401),
    ];
    for (i, (expires, status)) in cases.into_iter().enumerate() {
        let token = format!("AbsurdDate{i:022}");
        sqlx::query(r#"insert into "session" values (?1, ?2, ?3, ?4, ?4, '', '', ?5)"#)
            .bind(format!("id{i}"))
            .bind(expires)
            .bind(&token)
            .bind("2026-11-23T12:00:00.000Z")
            .bind(&user.id)
            .execute(store.pool())
            .await
            .unwrap();
        let cookie = format!(
            "{COOKIE}={}",
            layer.config().signer().sign_cookie_value(&token)
        );
        let r = send(app.clone(), get_req("/me", Some(&cookie))).await;
        assert_eq!(r.status, status, "expiresAt {expires:?}: {}", r.body);
        assert!(r.set_cookies().iter().all(|c| !c.contains("Max-Age=")
            || c.contains("Max-Age=0")
            || c.contains("Max-Age=604800")));
    }
}

#[test]
fn max_age_is_clamped_to_400_days() {
    let cfg = SessionConfig::builder()
        .secret(SECRET)
        .expires_in(Duration::days(400))
        .build()
        .unwrap();
    assert_eq!(cfg.expires_in(), Duration::seconds(34_560_000));
    let err = SessionConfig::builder()
        .secret(SECRET)
        .expires_in(Duration::days(401))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("400 days"), "{err}");
}

/// Settings that could only break every request are start-up errors naming the option: a
/// negative `fresh_age` turned the freshness check off (Better Auth would call no session
/// fresh), and a zero `store_timeout` answered every signed-in request 503.
#[test]
fn a_negative_fresh_age_and_a_zero_store_timeout_are_refused() {
    let err = SessionConfig::builder()
        .secret(SECRET)
        .fresh_age(Duration::seconds(-1))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("fresh_age"), "{err}");
    let err = SessionConfig::builder()
        .secret(SECRET)
        .store_timeout(std::time::Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("store_timeout"), "{err}");
    let cfg = SessionConfig::builder()
        .secret(SECRET)
        .fresh_age(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(
        cfg.fresh_age(),
        Duration::ZERO,
        "zero still turns the check off"
    );
}

#[tokio::test]
async fn a_re_signed_cookie_for_a_far_future_row_is_capped_at_400_days() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    let user = User::new("far@example.com", "F", T0);
    store.insert_user(&user).await.unwrap();
    let token = "FarFutureToken000000000000000000";
    sqlx::query(r#"insert into "session" values ('far', '9999-12-31T23:59:59.999Z', ?1, ?2, ?2, '', '', ?3)"#)
        .bind(token)
        .bind("2026-11-23T12:00:00.000Z")
        .bind(&user.id)
        .execute(store.pool())
        .await
        .unwrap();
    let clock = ManualClock::new(T0);
    let layer = SessionLayer::new(config(&clock, |b| b.previous_secret(OLD, None)), store);
    let cookie = format!(
        "{COOKIE}={}",
        tower_auth_session::codec::Signer::new(OLD).sign_cookie_value(token)
    );
    let r = send(me_router(&layer), get_req("/me", Some(&cookie))).await;
    assert_eq!(r.status, 200);
    assert!(
        r.set_cookie(COOKIE)
            .unwrap()
            .contains("; Max-Age=34560000;"),
        "{:?}",
        r.set_cookies()
    );
}

/// A store whose conditional refresh always writes nothing (as if another instance had just
/// acted), and whose second read returns what `after` says.
#[derive(Clone, Debug)]
struct RacedAway {
    memory: MemoryStore,
    after: Arc<std::sync::Mutex<Option<OffsetDateTime>>>,
    reads: Arc<std::sync::atomic::AtomicUsize>,
}

impl SessionStore for RacedAway {
    async fn find(&self, token: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        let n = self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let found = self.memory.find(token).await?;
        if n == 0 {
            return Ok(found);
        }
        // The re-read: the session was refreshed elsewhere (`Some(expiry)`) or deleted.
        let after = *self.after.lock().unwrap();
        Ok(match (found, after) {
            (Some(mut auth), Some(expires_at)) => {
                Arc::make_mut(&mut auth.session).expires_at = expires_at;
                Some(auth)
            }
            _ => None,
        })
    }
    async fn create(&self, s: &Session, u: &User) -> Result<Session, StoreError> {
        self.memory.create(s, u).await
    }
    async fn extend(
        &self,
        _: &StorageKey<'_>,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        Ok(None)
    }
    async fn delete(&self, t: &StorageKey<'_>) -> Result<(), StoreError> {
        self.memory.delete(t).await
    }
    async fn delete_user_sessions(&self, u: &str) -> Result<u64, StoreError> {
        self.memory.delete_user_sessions(u).await
    }
    async fn list_user_sessions(
        &self,
        u: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        self.memory.list_user_sessions(u, now).await
    }
    async fn delete_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.memory.delete_expired(now).await
    }
}

#[tokio::test]
async fn a_refresh_that_writes_nothing_acts_on_a_fresh_read() {
    for (after, status, refreshed_elsewhere) in [
        (Some(T0 + Duration::days(9)), 200, true),
        (None, 401, false),
    ] {
        let clock = ManualClock::new(T0);
        let memory = MemoryStore::new();
        let user = User::new("reread@example.com", "R", T0);
        memory.insert_user(user.clone());
        let store = RacedAway {
            memory,
            after: Arc::new(std::sync::Mutex::new(after)),
            reads: Arc::default(),
        };
        let layer = SessionLayer::new(config(&clock, |b| b), store.clone());
        let cookie = signed_cookie(&layer, &user).await;
        clock.set(T0 + Duration::days(2));
        let r = send(me_router(&layer), get_req("/me", Some(&cookie))).await;
        assert_eq!(r.status, status);
        assert_eq!(
            store.reads.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "read again after the empty write"
        );
        if refreshed_elsewhere {
            assert_eq!(
                r.body, "2026-12-02T12:00:00.000Z",
                "serves what the re-read found"
            );
            assert!(
                r.set_cookies().is_empty(),
                "the instance that refreshed sent the cookie"
            );
        } else {
            assert!(
                r.set_cookie(COOKIE).unwrap().contains("Max-Age=0"),
                "gone: signed out"
            );
        }
    }
}

#[tokio::test]
async fn max_age_header_never_exceeds_400_days() {
    let clock = ManualClock::new(T0);
    let memory = MemoryStore::new();
    let user = User::new("max@example.com", "M", T0);
    memory.insert_user(user.clone());
    let layer = SessionLayer::new(
        config(&clock, |b| b.expires_in(Duration::days(400))),
        memory,
    );
    let s = layer.manager().sign_in(&user, SignIn::new()).await.unwrap();
    assert!(s
        .cookies
        .iter()
        .next()
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Max-Age=34560000"));
}

// ---- hashed tokens at rest ------------------------------------------------------------------------

#[tokio::test]
async fn hashed_tokens_keep_only_a_digest_in_the_store() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    let user = User::new("hash@example.com", "H", T0);
    store.insert_user(&user).await.unwrap();
    let clock = ManualClock::new(T0);
    let layer = SessionLayer::new(
        config(&clock, |b| b.hash_tokens_at_rest(true)),
        store.clone(),
    );
    let app = me_router(&layer);
    let cookie = signed_cookie(&layer, &user).await;
    let raw = token_of(&cookie);
    let stored: String = sqlx::query_scalar(r#"select "token" from "session""#)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_ne!(stored, raw, "the raw token is not in the table");
    assert_eq!(stored.len(), 64, "a SHA-256 hex digest");
    assert_eq!(stored, layer.config().storage_key(&raw).as_str());
    assert_eq!(
        send(app.clone(), get_req("/me", Some(&cookie)))
            .await
            .status,
        200
    );

    // A leaked table row replayed as a cookie does not authenticate.
    let replay = format!(
        "{COOKIE}={}",
        layer.config().signer().sign_cookie_value(&stored)
    );
    assert_eq!(
        send(app.clone(), get_req("/me", Some(&replay)))
            .await
            .status,
        401
    );

    // Refresh and sign-out work through the digest.
    clock.set(T0 + Duration::days(2));
    let r = send(app.clone(), get_req("/me", Some(&cookie))).await;
    assert!(r.set_cookie(COOKIE).is_some());
    let _cleared = layer.manager().sign_out(&raw).await.unwrap();
    assert_eq!(send(app, get_req("/me", Some(&cookie))).await.status, 401);
}

// ---- metrics ------------------------------------------------------------------------------------

/// A minimal `metrics` recorder that sums counters by name and labels.
#[derive(Clone, Default)]
struct Tally(Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>);

struct TallyCounter(String, Tally);

impl metrics::CounterFn for TallyCounter {
    fn increment(&self, value: u64) {
        *self.1 .0.lock().unwrap().entry(self.0.clone()).or_default() += value;
    }
    fn absolute(&self, value: u64) {
        self.1 .0.lock().unwrap().insert(self.0.clone(), value);
    }
}

impl metrics::Recorder for Tally {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        metrics::Counter::from_arc(Arc::new(TallyCounter(name, self.clone())))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

#[test]
fn every_outcome_and_refresh_is_counted() {
    let tally = Tally::default();
    metrics::with_local_recorder(&tally, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let clock = ManualClock::new(T0);
            let memory = MemoryStore::new();
            let user = User::new("count@example.com", "C", T0);
            memory.insert_user(user.clone());
            let layer = SessionLayer::new(config(&clock, |b| b), memory);
            let app = me_router(&layer);
            let cookie = signed_cookie(&layer, &user).await;
            send(app.clone(), get_req("/me", Some(&cookie))).await;
            clock.set(T0 + Duration::days(2));
            send(app.clone(), get_req("/me", Some(&cookie))).await;
            send(app.clone(), get_req("/me", None)).await;
            send(app.clone(), get_req("/me", Some(&format!("{COOKIE}=x.y")))).await;
            let unknown = format!(
                "{COOKIE}={}",
                layer.config().signer().sign_cookie_value("nope")
            );
            send(app, get_req("/me", Some(&unknown))).await;
        });
    });
    let counts = tally.0.lock().unwrap().clone();
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    assert_eq!(
        get("tower_auth_session_requests_total{outcome=authenticated}"),
        2,
        "{counts:?}"
    );
    assert_eq!(
        get("tower_auth_session_requests_total{outcome=no_credential}"),
        1
    );
    assert_eq!(
        get("tower_auth_session_requests_total{outcome=bad_signature}"),
        1
    );
    assert_eq!(
        get("tower_auth_session_requests_total{outcome=rejected}"),
        1
    );
    assert_eq!(get("tower_auth_session_refreshes_total{}"), 1);
}

/// Listing the user's sessions hands out every session's token: as Better Auth's
/// `list-sessions`, only a fresh session (created within `freshAge`, a day by default) may,
/// and an older one gets `403 SESSION_NOT_FRESH`.
#[tokio::test]
async fn listing_sessions_needs_a_fresh_session() {
    let store = MemoryStore::new();
    let user = User::new("fresh@example.com", "F", T0);
    store.insert_user(user.clone());
    let clock = ManualClock::new(T0);
    let config = SessionConfig::builder()
        .secret(SECRET)
        .clock(clock.clone())
        .build()
        .unwrap();
    let layer = SessionLayer::new(config, store);
    let signed = layer.manager().sign_in(&user, SignIn::new()).await.unwrap();
    let app = Router::new()
        .route(
            "/sessions",
            get(|s: tower_auth_session::extract::Sessions| async move {
                match s.list().await {
                    Ok(list) => (http::StatusCode::OK, list.len().to_string()),
                    Err(e) => (e.status(), e.code().unwrap_or_default().to_owned()),
                }
            }),
        )
        .layer(layer);
    let cookie = session_cookie(&signed);
    let r = send(app.clone(), get_req("/sessions", Some(&cookie))).await;
    assert_eq!((r.status, r.body.as_str()), (200, "1"));
    clock.advance(Duration::days(1));
    let r = send(app, get_req("/sessions", Some(&cookie))).await;
    assert_eq!((r.status, r.body.as_str()), (403, "SESSION_NOT_FRESH"));
}

/// `MemoryStore` whose refresh writes hang (a locked table, a server gone silent) or, with
/// `fail_fast`, fail at once (a read-only server), counting them.
#[derive(Clone, Debug, Default)]
struct NoWrites {
    memory: MemoryStore,
    extends: Arc<std::sync::atomic::AtomicUsize>,
    fail_fast: bool,
}

impl SessionStore for NoWrites {
    async fn find(&self, key: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        self.memory.find(key).await
    }
    async fn create(&self, session: &Session, user: &User) -> Result<Session, StoreError> {
        self.memory.create(session, user).await
    }
    async fn extend(
        &self,
        _: &StorageKey<'_>,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        self.extends
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.fail_fast {
            return Err(StoreError::backend(
                "extend",
                std::io::Error::other("cannot execute UPDATE in a read-only transaction"),
            ));
        }
        std::future::pending().await
    }
    async fn delete(&self, key: &StorageKey<'_>) -> Result<(), StoreError> {
        self.memory.delete(key).await
    }
    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        self.memory.delete_user_sessions(user_id).await
    }
    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        self.memory.list_user_sessions(user_id, now).await
    }
    async fn delete_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.memory.delete_expired(now).await
    }
}

/// A write outage that hangs: a refresh write that runs out of time is not tried again by the
/// next requests due for one for a few seconds, so one request waits on the store rather than
/// every request of every session due for a refresh (each up to the store's deadline). They
/// are served as they are. Paused time: the first write's deadline passes at once, and the rest
/// window (a `std::time::Instant`) cannot pass meanwhile.
#[tokio::test(start_paused = true)]
async fn a_refresh_write_out_of_time_rests_the_others() {
    assert_eq!(
        refresh_writes_tried(false).await,
        1,
        "the second refresh was tried too"
    );
}

/// A write that fails at once (a read-only server, one bad row) rests nothing: one session
/// whose write always fails must not keep the others from being refreshed.
#[tokio::test]
async fn a_refresh_write_that_fails_at_once_rests_nothing() {
    assert_eq!(refresh_writes_tried(true).await, 2);
}

/// Two sessions due for a refresh, asked one after the other of a layer whose store's writes
/// hang or fail at once: how many refresh writes were tried. Both are served as they are.
async fn refresh_writes_tried(fail_fast: bool) -> usize {
    let store = NoWrites {
        fail_fast,
        ..NoWrites::default()
    };
    let clock = ManualClock::new(T0);
    let config = SessionConfig::builder()
        .secret(SECRET)
        .clock(clock.clone())
        // The deadline the first write runs out of.
        .store_timeout(std::time::Duration::from_millis(50))
        .build()
        .unwrap();
    let layer = SessionLayer::new(config, store.clone());
    let app = email_router(layer.clone());
    let mut cookies = Vec::new();
    for email in ["a@example.com", "b@example.com"] {
        let user = User::new(email, "N", T0);
        store.memory.insert_user(user.clone());
        let signed = layer.manager().sign_in(&user, SignIn::new()).await.unwrap();
        cookies.push((email, session_cookie(&signed)));
    }
    // Both due for a refresh (a day after sign-in, `updateAge` one day).
    clock.set(T0 + Duration::days(2));
    for (email, cookie) in &cookies {
        let r = send(app.clone(), get_req("/", Some(cookie))).await;
        assert_eq!((r.status, r.body.as_str()), (200, *email));
        assert!(r.set_cookie(COOKIE).is_none(), "nothing was extended");
    }
    store.extends.load(std::sync::atomic::Ordering::SeqCst)
}
