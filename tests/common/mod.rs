//! Shared test helpers: a store wrapper that counts calls, request helpers, cookie parsing.
#![allow(dead_code, unreachable_pub)]

pub mod process;
#[cfg(feature = "redis")]
pub mod redis_nodes;
pub mod servers;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use http::{header, Request, Response};
use http_body_util::BodyExt;
use time::OffsetDateTime;
use tower::ServiceExt;
use tower_auth_session::{Authenticated, Session, SessionStore, StorageKey, StoreError, User};

pub const SECRET: &str = "test-secret-0123456789-abcdefghijklmnop";

/// `GET /`: the signed-in user's e-mail, or `anonymous`.
pub fn email_router<St: SessionStore>(layer: tower_auth_session::SessionLayer<St>) -> axum::Router {
    use tower_auth_session::extract::MaybeUser;
    axum::Router::new()
        .route(
            "/",
            axum::routing::get(|MaybeUser(u): MaybeUser| async move {
                u.map_or("anonymous".to_owned(), |u| u.email.clone())
            }),
        )
        .layer(layer)
}

/// Counts every store call, so tests can assert "zero store calls".
#[derive(Clone, Debug)]
pub struct Counting<S> {
    pub inner: S,
    pub calls: Arc<AtomicUsize>,
    pub writes: Arc<AtomicUsize>,
    /// `(limit, deleted)` of every `delete_expired_batch` call.
    pub batches: Arc<std::sync::Mutex<Vec<(u64, u64)>>>,
    /// Whether `find_now` passes the inner store's immediate answers on (the layer's in-place
    /// path) or always defers to `find` (its asynchronous path).
    pub answer_now: bool,
}

impl<S> Counting<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            calls: Arc::default(),
            writes: Arc::default(),
            batches: Arc::default(),
            answer_now: true,
        }
    }
    /// Like [`new`](Self::new), but every lookup takes the layer's asynchronous path.
    pub fn async_only(inner: S) -> Self {
        Self {
            answer_now: false,
            ..Self::new(inner)
        }
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
    fn hit(&self, write: bool) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if write {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl<S: SessionStore> SessionStore for Counting<S> {
    async fn find(&self, key: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        self.hit(false);
        self.inner.find(key).await
    }
    fn find_now(&self, key: &StorageKey<'_>) -> Option<Result<Option<Authenticated>, StoreError>> {
        if !self.answer_now {
            return None;
        }
        let answer = self.inner.find_now(key)?;
        self.hit(false);
        Some(answer)
    }
    async fn create(&self, session: &Session, user: &User) -> Result<Session, StoreError> {
        self.hit(true);
        self.inner.create(session, user).await
    }
    async fn extend(
        &self,
        key: &StorageKey<'_>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        self.hit(true);
        self.inner.extend(key, expires_at, now).await
    }
    async fn delete(&self, key: &StorageKey<'_>) -> Result<(), StoreError> {
        self.hit(true);
        self.inner.delete(key).await
    }
    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        self.hit(true);
        self.inner.delete_user_sessions(user_id).await
    }
    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        self.hit(false);
        self.inner.list_user_sessions(user_id, now).await
    }
    async fn delete_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.hit(true);
        self.inner.delete_expired(now).await
    }
    async fn delete_if_expired(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.hit(true);
        self.inner.delete_if_expired(key, now).await
    }
    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> Result<u64, StoreError> {
        self.hit(true);
        let n = self.inner.delete_expired_batch(now, limit).await?;
        self.batches.lock().unwrap().push((limit, n));
        Ok(n)
    }
}

/// A simple response snapshot.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
    /// The `Set-Cookie` line for `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }
    /// `name=value` for the `Cookie` header, taken from the `Set-Cookie` for `name`.
    pub fn cookie_pair(&self, name: &str) -> String {
        let line = self
            .set_cookie(name)
            .unwrap_or_else(|| panic!("no Set-Cookie for {name}: {:?}", self.set_cookies()));
        line.split(';').next().unwrap().to_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub async fn send<S>(svc: S, req: Request<Body>) -> Reply
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Send,
    S::Error: std::fmt::Debug,
    S::Future: Send,
{
    let resp = svc.oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub fn get_req(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

pub fn post_json(path: &str, cookie: Option<&str>, json: &str) -> Request<Body> {
    let mut b = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(json.to_owned())).unwrap()
}

/// Whether `TAS_REQUIRE_SERVERS` asks for failures instead of skips.
pub fn servers_required() -> bool {
    std::env::var_os("TAS_REQUIRE_SERVERS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Reads a server URL from `var`; without it, the test is skipped with a message, or fails
/// when the full test command (`TAS_REQUIRE_SERVERS=1`) runs it.
pub fn server_url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                !servers_required(),
                "{test}: {var} is not set but TAS_REQUIRE_SERVERS is: the full test command must start the server"
            );
            // Straight to the process's stderr: libtest captures `eprintln!` of passing tests,
            // and a skip must be visible.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {var} is not set (scripts/test-all.sh starts the server and fails instead of skipping)"
            );
            None
        }
    }
}

/// A fresh, empty PostgreSQL database on the test server, or `None` (after saying why) when
/// there is no server and none is required.
#[cfg(feature = "postgres")]
pub async fn fresh_pg_database(test: &str) -> Option<String> {
    let url = server_url("TAS_TEST_POSTGRES_URL", test)?;
    let name = format!(
        "t_{}",
        tower_auth_session::test_support::generate_id(12).to_lowercase()
    );
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(&format!("create database {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let (base, _) = url.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

/// A new, empty MySQL/MariaDB database on the test server (`TAS_TEST_MYSQL_URL`), as a URL.
#[cfg(feature = "mysql")]
pub async fn fresh_mysql_database(test: &str) -> Option<String> {
    let base = server_url("TAS_TEST_MYSQL_URL", test)?;
    let name = format!(
        "t_{}",
        tower_auth_session::test_support::generate_id(12).to_lowercase()
    );
    let admin = sqlx::MySqlPool::connect(&base).await.unwrap();
    sqlx::query(&format!("create database {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    Some(format!("{}/{name}", base.trim_end_matches('/')))
}

/// A random Redis key prefix, so tests sharing the server never see each other's keys.
pub fn redis_prefix() -> String {
    format!("t{}:", tower_auth_session::test_support::generate_id(10))
}

/// A store whose every call fails, as a database that refuses connections would.
#[derive(Clone, Debug)]
pub struct Down;

fn refused(op: &'static str) -> StoreError {
    StoreError::backend(op, std::io::Error::other("connection refused"))
}

impl SessionStore for Down {
    async fn find(&self, _: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        Err(refused("find"))
    }
    async fn create(&self, _: &Session, _: &User) -> Result<Session, StoreError> {
        Err(refused("create"))
    }
    async fn extend(
        &self,
        _: &StorageKey<'_>,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        Err(refused("extend"))
    }
    async fn delete(&self, _: &StorageKey<'_>) -> Result<(), StoreError> {
        Err(refused("delete"))
    }
    async fn delete_user_sessions(&self, _: &str) -> Result<u64, StoreError> {
        Err(refused("delete user sessions"))
    }
    async fn list_user_sessions(
        &self,
        _: &str,
        _: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        Err(refused("list"))
    }
    async fn delete_expired(&self, _: OffsetDateTime) -> Result<u64, StoreError> {
        Err(refused("delete expired"))
    }
}

/// `name=value` of the session cookie a sign-in set (its first `Set-Cookie`).
pub fn session_cookie(signed: &tower_auth_session::SignedIn) -> String {
    let line = signed.cookies.iter().next().unwrap().to_str().unwrap();
    line.split(';').next().unwrap().to_owned()
}

/// The wall clock, truncated to milliseconds as Better Auth keeps dates.
pub fn now() -> OffsetDateTime {
    tower_auth_session::test_support::truncate_ms(OffsetDateTime::now_utc())
}

/// A browser's cookie jar, enough for these tests: `Set-Cookie` lines set or (with
/// `Max-Age=0`) delete a cookie by name; [`header`](Self::header) is the `Cookie` header.
#[derive(Clone, Debug, Default)]
pub struct Jar(pub Vec<(String, String)>);

impl Jar {
    pub fn apply<S: AsRef<str>>(&mut self, set_cookies: &[S]) {
        for line in set_cookies {
            let line = line.as_ref();
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.0.retain(|(n, _)| n != name);
            if !line.contains("Max-Age=0") {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }
    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A live session of `user_id` with a fresh id and token, a day from expiry.
pub fn live_session(user_id: &str) -> tower_auth_session::Session {
    let now = OffsetDateTime::now_utc();
    tower_auth_session::Session {
        id: tower_auth_session::test_support::generate_id(32),
        token: tower_auth_session::test_support::generate_id(32),
        user_id: user_id.to_owned(),
        expires_at: now + time::Duration::days(1),
        created_at: now,
        updated_at: now,
        ip_address: None,
        user_agent: None,
        extra: serde_json::Map::new(),
    }
}

/// Writes a [`live_session`] of `user` through `store`; its token.
pub async fn new_session<S: SessionStore>(store: &S, user: &User) -> String {
    store
        .create(&live_session(&user.id), user)
        .await
        .unwrap()
        .token
}

/// Asserts that `store` finds a live session for every token (a cache reads and keeps each).
pub async fn finds_all<S: SessionStore>(store: &S, tokens: &[&str]) {
    for token in tokens {
        assert!(
            store
                .find(&StorageKey::new(*token))
                .await
                .unwrap()
                .is_some(),
            "no session for {token}"
        );
    }
}

/// After `gone` was deleted behind the cache's back and the deletion reported: `cached` no
/// longer serves `gone`, still serves `kept` from memory, and only `gone` was read again.
pub async fn only_gone_is_read_again<C: SessionStore, S>(
    cached: &C,
    inner: &Counting<S>,
    gone: &str,
    kept: &str,
) {
    let calls = inner.calls();
    assert!(cached.find(&StorageKey::new(gone)).await.unwrap().is_none());
    assert!(cached.find(&StorageKey::new(kept)).await.unwrap().is_some());
    assert_eq!(
        inner.calls(),
        calls + 1,
        "only the deleted session was read again"
    );
}

/// Asks `check` every 20 ms until it says yes; fails after `limit`, naming `what`. Returns the
/// time taken.
pub async fn until<F, Fut>(
    what: &str,
    limit: std::time::Duration,
    mut check: F,
) -> std::time::Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// Runs `change`, then waits up to `within` for the change feed behind `applied` to apply
/// something more; fails with `what` otherwise. Returns what `change` returned.
pub async fn reported<T>(
    applied: &mut tokio::sync::watch::Receiver<u64>,
    within: std::time::Duration,
    what: &str,
    change: impl std::future::Future<Output = T>,
) -> T {
    let seen = *applied.borrow();
    let out = change.await;
    tokio::time::timeout(within, applied.wait_for(|n| *n > seen))
        .await
        .unwrap_or_else(|_| panic!("{what}"))
        .unwrap();
    out
}

/// `store` counted (to tell what the cache reads again) behind a cache that keeps entries for
/// 10 minutes, so that within a test only `changes` drops them: the counted store and the
/// cache.
#[cfg(feature = "cache")]
pub fn counted_cache<S: SessionStore + Clone>(
    store: &S,
    changes: &tower_auth_session::store::SessionChanges,
) -> (
    Counting<S>,
    tower_auth_session::store::CachedStore<Counting<S>>,
) {
    let inner = Counting::new(store.clone());
    let cached = tower_auth_session::store::CachedStore::builder(inner.clone())
        .ttl(std::time::Duration::from_secs(600))
        .watch(changes.clone())
        .build();
    (inner, cached)
}

/// Waits up to 5 s for `cached` to be dropped as a whole: until finding `kept`, a session
/// it held, reads `inner` again. Fails with `what` otherwise.
pub async fn cache_dropped<C: SessionStore, S>(
    cached: &C,
    inner: &Counting<S>,
    kept: &str,
    what: &str,
) {
    let calls = inner.calls();
    until(what, std::time::Duration::from_secs(15), || async {
        assert!(cached.find(&StorageKey::new(kept)).await.unwrap().is_some());
        inner.calls() > calls
    })
    .await;
}

/// What a `tracing` subscriber made by [`Captured::subscriber`] wrote, for tests that read the
/// logs (each in a binary of its own: `tracing` caches callsite interest process-wide).
#[derive(Clone, Default)]
pub struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// A subscriber that writes plain lines (no colours) up to `level` here.
    pub fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
    }

    /// Runs `work` to completion on a runtime of its own (current thread), with this capture
    /// as the subscriber, up to `level`.
    pub fn run(&self, level: tracing::Level, work: impl std::future::Future<Output = ()>) {
        tracing::subscriber::with_default(self.subscriber(level), || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(work)
        });
    }

    /// What was written since the last call.
    pub fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}
