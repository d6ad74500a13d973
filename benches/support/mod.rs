//! Shared set-up for the benches: one router per system, each with a session that exists, and the
//! same 4-cookie `Cookie` header shape for all (three unrelated cookies, then the session cookie).
//!
//! Every router is finalized with `.with_state(())` and driven with `tower::ServiceExt::oneshot`,
//! in process, with no network. Every case is checked once (status and body) before it is
//! measured, so a benchmark can never silently time a 401 or a 500.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::routing::{get, post};
use axum::Router;
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, StatusCode, Uri};
use http_body_util::BodyExt;
use time::OffsetDateTime;
use tower::ServiceExt;
use tower_auth_session::codec::Signer;
use tower_auth_session::extract::MaybeUser;
use tower_auth_session::{
    AuthContext, MemoryStore, SessionConfig, SessionLayer, SessionStore, SignIn, SqliteStore, User,
};

pub mod floor;
#[cfg(feature = "cache")]
pub mod traffic;

/// The secret every bench signs with (≥ 32 bytes, not Better Auth's default).
pub const SECRET: &str = "bench-secret-0123456789-abcdefghijklmnopq";

/// The three unrelated cookies every request carries before the session cookie.
pub const NOISE: &str = "theme=dark; _ga=GA1.2.3; csrftoken=abc";

/// The body a handler answers when it saw a signed-in user.
pub const SIGNED_IN: &str = "signed-in";
/// The body a handler answers when it saw nobody.
pub const ANONYMOUS: &str = "anonymous";

/// One thing to measure: a router and the `Cookie` header to send it.
#[derive(Clone)]
pub struct Case {
    /// Criterion id, file-name safe.
    pub name: &'static str,
    /// What it is, for the report.
    pub what: &'static str,
    pub app: Router,
    pub cookie: HeaderValue,
    /// When set, requests take these `Cookie` headers in turn instead of `cookie`.
    pub rotation: Option<Arc<Rotation>>,
    /// The body the handler must answer with (checked once before measuring).
    pub expect: &'static str,
}

/// `Cookie` headers sent in turn, one per request.
pub struct Rotation {
    pub headers: Vec<HeaderValue>,
    pub next: AtomicUsize,
}

impl Rotation {
    fn next(&self) -> &HeaderValue {
        // A power-of-two count: a mask, not a division, on every request.
        let i = self.next.fetch_add(1, Relaxed);
        &self.headers[i & (self.headers.len() - 1)]
    }
}

impl Case {
    /// A fresh request for this case: `GET /` with the case's `Cookie` header.
    #[inline]
    pub fn request(&self) -> Request {
        match &self.rotation {
            Some(rotation) => request(rotation.next()),
            None => request(&self.cookie),
        }
    }

    /// Sends one request and returns the response status (body dropped unread).
    #[inline]
    pub async fn run(&self) -> StatusCode {
        let response = self.app.clone().oneshot(self.request()).await.unwrap();
        response.status()
    }

    /// Sends one request and checks status 200 and the expected body, and that a signed-in
    /// request of this crate wrote nothing (no refresh: no `Set-Cookie`).
    pub async fn check(&self) {
        let response = self.app.clone().oneshot(self.request()).await.unwrap();
        if self.name.starts_with("tas_") && self.expect == SIGNED_IN {
            assert!(
                response.headers().get(SET_COOKIE).is_none(),
                "{}: the session was refreshed; the bench must measure the read-only path",
                self.name
            );
        }
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            (status, &body[..]),
            (StatusCode::OK, self.expect.as_bytes()),
            "{}: unexpected answer",
            self.name
        );
    }
}

/// `GET /` with one `Cookie` header.
#[inline]
pub fn request(cookie: &HeaderValue) -> Request {
    let mut req = Request::new(Body::empty());
    *req.uri_mut() = Uri::from_static("/");
    req.headers_mut().insert(COOKIE, cookie.clone());
    req
}

pub fn header(session_cookie: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{NOISE}; {session_cookie}")).unwrap()
}

/// The configuration every tower-auth-session case uses: Better Auth's defaults (7-day
/// sessions, 1-day `updateAge`) and the system clock. Sessions are created just before they are
/// measured, so no request is anywhere near a refresh: nothing is written while measuring.
pub fn tas_config() -> SessionConfig {
    SessionConfig::builder().secret(SECRET).build().unwrap()
}

/// The session cookie (`name=value`) for `token`, signed with `config`'s secret.
pub fn session_cookie(config: &SessionConfig, token: &str) -> String {
    format!(
        "{}={}",
        config.session_cookie_name(),
        config.signer().sign_cookie_value(token)
    )
}

/// The idiomatic axum handler: `MaybeUser` (clones the user out of the extensions).
async fn tas_handler(MaybeUser(user): MaybeUser) -> &'static str {
    if user.is_some() {
        SIGNED_IN
    } else {
        ANONYMOUS
    }
}

/// A handler that only borrows the `AuthContext` from the extensions: the layer's own cost.
async fn tas_ref_handler(req: Request) -> &'static str {
    if req
        .extensions()
        .get::<AuthContext>()
        .is_some_and(AuthContext::is_signed_in)
    {
        SIGNED_IN
    } else {
        ANONYMOUS
    }
}

/// The router for a tower-auth-session case.
pub fn tas_router<St: SessionStore + Clone>(layer: &SessionLayer<St>, borrow_only: bool) -> Router {
    let route = if borrow_only {
        get(tas_ref_handler)
    } else {
        get(tas_handler)
    };
    Router::new()
        .route("/", route)
        .layer(layer.clone())
        .with_state(())
}

/// Signs `user` in through the layer's manager and returns the session cookie (`name=value`).
pub async fn tas_sign_in<St: SessionStore>(layer: &SessionLayer<St>, user: &User) -> String {
    let token = tas_sign_in_token(layer, user).await;
    session_cookie(layer.config(), &token)
}

/// Signs `user` in through the layer's manager and returns the session token.
pub async fn tas_sign_in_token<St: SessionStore>(layer: &SessionLayer<St>, user: &User) -> String {
    let signed = layer
        .manager()
        .sign_in(user, SignIn::new())
        .await
        .expect("sign-in");
    signed.session.token
}

/// A new user with an address unique to this process (databases outlive runs).
pub fn bench_user(n: usize) -> User {
    User::new(
        &format!(
            "user{n}-{}@example.com",
            tower_auth_session::test_support::generate_id(12)
        ),
        &format!("User {n}"),
        OffsetDateTime::now_utc(),
    )
}

/// No layer at all.
pub fn bare(cookie: &str) -> Case {
    Case {
        name: "bare",
        what: "no session layer (the baseline)",
        app: Router::new()
            .route("/", get(|| async { "ok" }))
            .with_state(()),
        cookie: header(cookie),
        expect: "ok",
        rotation: None,
    }
}

/// Sessions `tas_memory_valid_many` sends in turn (a power of two).
const MANY_SESSIONS: usize = 4096;

/// tower-auth-session over `MemoryStore`: every request kind.
pub struct TasMemory {
    pub valid: Case,
    pub valid_borrow: Case,
    pub valid_many: Case,
    pub anonymous: Case,
    pub bad_signature: Case,
    pub unknown_token: Case,
    /// The valid session cookie (`name=value`), for the bare case's header.
    pub cookie: String,
}

pub async fn tas_memory() -> TasMemory {
    let store = MemoryStore::new();
    let layer = SessionLayer::new(tas_config(), store.clone());
    let user = bench_user(1);
    store.insert_user(user.clone());
    let token = tas_sign_in_token(&layer, &user).await;
    let cookie = session_cookie(layer.config(), &token);
    let app = tas_router(&layer, false);
    // A well-formed cookie (44-character signature ending in `=`) signed with another secret:
    // the HMAC is computed and rejected.
    let forged =
        Signer::new("another-secret-0123456789-abcdefghijklmnop").sign_cookie_value(&token);
    let name = layer.config().session_cookie_name();
    // Many sessions in turn: each cookie is new to the codec's per-thread memo of verified
    // values (64 slots), so every request decodes and computes the HMAC.
    let mut many = Vec::with_capacity(MANY_SESSIONS);
    for _ in 0..MANY_SESSIONS {
        let token = tas_sign_in_token(&layer, &user).await;
        many.push(header(&session_cookie(layer.config(), &token)));
    }
    TasMemory {
        valid: Case {
            name: "tas_memory_valid",
            what: "tower-auth-session, MemoryStore, valid session (`MaybeUser` handler)",
            app: app.clone(),
            cookie: header(&cookie),
            expect: SIGNED_IN,
            rotation: None,
        },
        valid_many: Case {
            name: "tas_memory_valid_many",
            what: "tower-auth-session, MemoryStore, 4,096 valid sessions in turn (each cookie new to the memo: decoded and HMAC'd)",
            app: app.clone(),
            cookie: many[0].clone(),
            rotation: Some(Arc::new(Rotation {
                headers: many,
                next: AtomicUsize::new(0),
            })),
            expect: SIGNED_IN,
        },
        valid_borrow: Case {
            name: "tas_memory_valid_borrow",
            what: "tower-auth-session, MemoryStore, valid session (handler borrows `AuthContext`)",
            app: tas_router(&layer, true),
            cookie: header(&cookie),
            expect: SIGNED_IN,
            rotation: None,
        },
        anonymous: Case {
            name: "tas_anonymous",
            what: "tower-auth-session, no session cookie",
            app: app.clone(),
            cookie: header("lang=en"),
            expect: ANONYMOUS,
            rotation: None,
        },
        bad_signature: Case {
            name: "tas_bad_signature",
            what: "tower-auth-session, well-formed cookie with a wrong HMAC",
            app: app.clone(),
            cookie: header(&format!("{name}={forged}")),
            expect: ANONYMOUS,
            rotation: None,
        },
        unknown_token: Case {
            name: "tas_unknown_token",
            what: "tower-auth-session, MemoryStore, valid HMAC but unknown token (cookies cleared)",
            app,
            cookie: header(&session_cookie(
                layer.config(),
                "UnknownTokenUnknownTokenUnknown1",
            )),
            expect: ANONYMOUS,
            rotation: None,
        },
        cookie,
    }
}

/// tower-auth-session over `SqliteStore` (a file in `dir`).
pub async fn tas_sqlite(dir: &std::path::Path) -> Case {
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let store = SqliteStore::connect(&url).await.expect("sqlite store");
    let layer = SessionLayer::new(tas_config(), store.clone());
    let user = bench_user(1);
    store.insert_user(&user).await.unwrap();
    let cookie = tas_sign_in(&layer, &user).await;
    Case {
        name: "tas_sqlite_valid",
        what: "tower-auth-session, SqliteStore (file), valid session",
        app: tas_router(&layer, false),
        cookie: header(&cookie),
        expect: SIGNED_IN,
        rotation: None,
    }
}

/// tower-auth-session over `CachedStore` in front of `store`, signed in through the layer: the
/// check request fills the cache, so every measured request is a hit (issue 5 target 4).
#[cfg(feature = "cache")]
async fn tas_cached<St: SessionStore + Clone>(
    name: &'static str,
    what: &'static str,
    store: St,
    user: &User,
) -> Case {
    let cached = tower_auth_session::store::CachedStore::builder(store).build();
    let layer = SessionLayer::new(tas_config(), cached);
    let cookie = tas_sign_in(&layer, user).await;
    Case {
        name,
        what,
        app: tas_router(&layer, false),
        cookie: header(&cookie),
        expect: SIGNED_IN,
        rotation: None,
    }
}

/// `CachedStore` over `SqliteStore` (a file in `dir`), a cache hit.
#[cfg(feature = "cache")]
pub async fn tas_cached_sqlite(dir: &std::path::Path) -> Case {
    let url = format!("sqlite://{}", dir.join("cached.db").display());
    let store = SqliteStore::connect(&url).await.expect("sqlite store");
    let user = bench_user(2);
    store.insert_user(&user).await.unwrap();
    tas_cached(
        "tas_cached_sqlite_valid",
        "tower-auth-session, CachedStore over SqliteStore, cache hit",
        store,
        &user,
    )
    .await
}

/// `CachedStore` over `PostgresStore` at `url`, a cache hit.
#[cfg(all(feature = "cache", feature = "postgres"))]
pub async fn tas_cached_postgres(url: &str) -> Case {
    let store = tower_auth_session::PostgresStore::builder(url)
        .create_schema(true)
        .build()
        .await
        .expect("postgres store");
    let user = bench_user(2);
    store.insert_user(&user).await.unwrap();
    tas_cached(
        "tas_cached_postgres_valid",
        "tower-auth-session, CachedStore over PostgresStore, cache hit",
        store,
        &user,
    )
    .await
}

/// tower-auth-session over `PostgresStore` at `url` (tables created when absent).
#[cfg(feature = "postgres")]
pub async fn tas_postgres(url: &str) -> Case {
    let store = tower_auth_session::PostgresStore::builder(url)
        .create_schema(true)
        .build()
        .await
        .expect("postgres store");
    let layer = SessionLayer::new(tas_config(), store.clone());
    let user = bench_user(1);
    store.insert_user(&user).await.unwrap();
    let cookie = tas_sign_in(&layer, &user).await;
    Case {
        name: "tas_postgres_valid",
        what: "tower-auth-session, PostgresStore (loopback), valid session",
        app: tas_router(&layer, false),
        cookie: header(&cookie),
        expect: SIGNED_IN,
        rotation: None,
    }
}

/// tower-auth-session over `RedisStore` at `url`.
#[cfg(feature = "redis")]
pub async fn tas_redis(url: &str) -> Case {
    let store = tower_auth_session::RedisStore::builder(url)
        .build()
        .await
        .expect("redis store");
    let layer = SessionLayer::new(tas_config(), store.clone());
    let cookie = tas_sign_in(&layer, &bench_user(1)).await;
    Case {
        name: "tas_redis_valid",
        what: "tower-auth-session, RedisStore (loopback), valid session",
        app: tas_router(&layer, false),
        cookie: header(&cookie),
        expect: SIGNED_IN,
        rotation: None,
    }
}

/// The `id=…` pair of the first `Set-Cookie` of a response.
pub fn set_cookie_pair(response: &http::Response<Body>) -> String {
    let line = response
        .headers()
        .get(SET_COOKIE)
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap();
    line.split(';').next().unwrap().to_owned()
}

// ---------------------------------------------------------------- tower-sessions 0.15

/// tower-sessions 0.15 with its `MemoryStore`: a session holding a user id, read by the handler.
pub async fn tower_sessions() -> Case {
    use tower_sessions::{MemoryStore, Session, SessionManagerLayer};

    async fn me(session: Session) -> &'static str {
        match session.get::<String>("user_id").await {
            Ok(Some(_)) => SIGNED_IN,
            _ => ANONYMOUS,
        }
    }
    async fn login(session: Session) -> &'static str {
        session.insert("user_id", "user-1").await.unwrap();
        SIGNED_IN
    }

    let app = Router::new()
        .route("/", get(me))
        .route("/login", post(login))
        .layer(SessionManagerLayer::new(MemoryStore::default()))
        .with_state(());
    let mut req = Request::new(Body::empty());
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = Uri::from_static("/login");
    let response = app.clone().oneshot(req).await.unwrap();
    let cookie = set_cookie_pair(&response);
    Case {
        name: "tower_sessions_memory",
        what: "tower-sessions 0.15, its MemoryStore, session with a user id (no signature)",
        app,
        cookie: header(&cookie),
        expect: SIGNED_IN,
        rotation: None,
    }
}

// ---------------------------------------------------------------- axum-login 0.18

/// axum-login 0.18 sits on tower-sessions 0.14, whose `memory-store` feature it does not enable:
/// this is tower-sessions-memory-store's `MemoryStore` (a `tokio::sync::Mutex<HashMap>`), line for
/// line, implemented against the 0.14 trait (its `#[async_trait]` desugared by hand).
pub mod login_store {
    use super::*;
    use axum_login::tower_sessions::session::{Id, Record};
    use axum_login::tower_sessions::session_store::{Result, SessionStore};

    type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

    #[derive(Clone, Debug, Default)]
    pub struct LoginMemoryStore(Arc<tokio::sync::Mutex<HashMap<Id, Record>>>);

    impl SessionStore for LoginMemoryStore {
        fn create<'a, 'b, 'c>(&'a self, record: &'b mut Record) -> BoxFut<'c, Result<()>>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            Box::pin(async move {
                let mut guard = self.0.lock().await;
                while guard.contains_key(&record.id) {
                    record.id = Id::default();
                }
                guard.insert(record.id, record.clone());
                Ok(())
            })
        }

        fn save<'a, 'b, 'c>(&'a self, record: &'b Record) -> BoxFut<'c, Result<()>>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            Box::pin(async move {
                self.0.lock().await.insert(record.id, record.clone());
                Ok(())
            })
        }

        fn load<'a, 'b, 'c>(&'a self, id: &'b Id) -> BoxFut<'c, Result<Option<Record>>>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            Box::pin(async move {
                Ok(self
                    .0
                    .lock()
                    .await
                    .get(id)
                    .filter(|r| r.expiry_date > OffsetDateTime::now_utc())
                    .cloned())
            })
        }

        fn delete<'a, 'b, 'c>(&'a self, id: &'b Id) -> BoxFut<'c, Result<()>>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            Box::pin(async move {
                self.0.lock().await.remove(id);
                Ok(())
            })
        }
    }
}

/// A minimal in-memory axum-login backend: users by numeric id.
#[derive(Clone, Debug)]
pub struct Backend {
    users: Arc<HashMap<u64, LoginUser>>,
}

impl Backend {
    pub fn new(users: HashMap<u64, LoginUser>) -> Self {
        Self {
            users: Arc::new(users),
        }
    }
}

impl LoginUser {
    pub fn new(id: u64, name: String) -> Self {
        Self {
            id,
            name,
            password_hash: b"$argon2id$v=19$m=19456,t=2,p=1$bench$hash".to_vec(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct LoginUser {
    id: u64,
    name: String,
    /// What axum-login hashes into the session to invalidate it on a password change.
    password_hash: Vec<u8>,
}

impl axum_login::AuthUser for LoginUser {
    type Id = u64;
    fn id(&self) -> u64 {
        self.id
    }
    fn session_auth_hash(&self) -> &[u8] {
        &self.password_hash
    }
}

impl axum_login::AuthnBackend for Backend {
    type User = LoginUser;
    type Credentials = u64;
    type Error = std::convert::Infallible;

    async fn authenticate(&self, id: u64) -> Result<Option<LoginUser>, Self::Error> {
        Ok(self.users.get(&id).cloned())
    }

    async fn get_user(&self, id: &u64) -> Result<Option<LoginUser>, Self::Error> {
        Ok(self.users.get(id).cloned())
    }
}

/// axum-login 0.18 (on tower-sessions 0.14, in-memory store), a logged-in user.
pub async fn axum_login() -> Case {
    use axum_login::tower_sessions::SessionManagerLayer;
    use axum_login::{AuthManagerLayerBuilder, AuthSession};

    async fn me(auth: AuthSession<Backend>) -> &'static str {
        if auth.user.is_some() {
            SIGNED_IN
        } else {
            ANONYMOUS
        }
    }
    async fn login(mut auth: AuthSession<Backend>) -> &'static str {
        let user = auth.authenticate(1).await.unwrap().unwrap();
        auth.login(&user).await.unwrap();
        SIGNED_IN
    }

    let user = LoginUser {
        id: 1,
        name: "Alice".to_owned(),
        password_hash: b"$argon2id$v=19$m=19456,t=2,p=1$bench$hash".to_vec(),
    };
    let backend = Backend {
        users: Arc::new(HashMap::from([(1, user)])),
    };
    let sessions = SessionManagerLayer::new(login_store::LoginMemoryStore::default());
    let app = Router::new()
        .route("/", get(me))
        .route("/login", post(login))
        .layer(AuthManagerLayerBuilder::new(backend, sessions).build())
        .with_state(());
    let mut req = Request::new(Body::empty());
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = Uri::from_static("/login");
    let response = app.clone().oneshot(req).await.unwrap();
    let cookie = set_cookie_pair(&response);
    Case {
        name: "axum_login_memory",
        what: "axum-login 0.18 (tower-sessions 0.14, in-memory store), logged-in user",
        app,
        cookie: header(&cookie),
        expect: SIGNED_IN,
        rotation: None,
    }
}

/// Every case, in report order, with what must outlive them (the SQLite file's directory).
/// Postgres and Redis cases are added when `TAS_TEST_POSTGRES_URL` / `TAS_TEST_REDIS_URL` are
/// set and the crate features are on.
pub struct AllCases {
    pub cases: Vec<Case>,
    _dir: tempfile::TempDir,
}

pub async fn all_cases() -> AllCases {
    let dir = tempfile::tempdir().unwrap();
    let tas = tas_memory().await;
    let mut cases = vec![
        bare(&tas.cookie),
        tas.valid,
        tas.valid_borrow,
        tas.valid_many,
        tas.anonymous,
        tas.bad_signature,
        tas.unknown_token,
        tas_sqlite(dir.path()).await,
    ];
    #[cfg(feature = "cache")]
    cases.push(tas_cached_sqlite(dir.path()).await);
    #[cfg(feature = "postgres")]
    if let Some(url) = env_url("TAS_TEST_POSTGRES_URL") {
        cases.push(tas_postgres(&url).await);
        #[cfg(feature = "cache")]
        cases.push(tas_cached_postgres(&url).await);
    }
    #[cfg(feature = "redis")]
    if let Some(url) = env_url("TAS_TEST_REDIS_URL") {
        cases.push(tas_redis(&url).await);
    }
    cases.push(tower_sessions().await);
    cases.push(axum_login().await);
    for case in &cases {
        case.check().await;
    }
    AllCases { cases, _dir: dir }
}

pub fn env_url(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

/// A single-threaded runtime with timers (the layer's store deadline needs them).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
