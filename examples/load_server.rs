//! An axum server for load tests (`wrk`), with the session store chosen by the environment.
//! `scripts/bench.sh` drives it; it is not a template for an application.
//!
//! ```sh
//! export BETTER_AUTH_SECRET="$(head -c 32 /dev/urandom | base64)"
//! STORE=memory SEED_SESSIONS=100000 COOKIES_FILE=/tmp/cookies.txt \
//!     cargo run --release --all-features --example load_server
//! wrk -t2 -c64 -d10s -s scripts/bench/sessions.lua http://127.0.0.1:PORT/me   # COOKIES_FILE too
//! ```
//!
//! Routes:
//!
//! | route | answer |
//! |---|---|
//! | `GET /anonymous` | `null`, or the user when a session cookie is sent (`MaybeUser`) |
//! | `GET /me` | `{"session":{…},"user":{…}}` like Better Auth's `get-session`; `401` when signed out |
//! | `GET /refresh/me` | the same behind a layer with `update_age(0)`: every request extends the session (one store write and a `Set-Cookie`) |
//! | `GET /bare/me` | no session layer: the same JSON as `/me` for one constant session (signed in at start-up), serialized the same way on every request; the baseline of `CACHE=1` |
//! | `GET /floor/me` | `STORE=sqlite` only, no session layer: a careful hand-written check on its own sqlx pool of the same file (find the cookie, verify `token.signature` with HMAC-SHA256, one prepared `select … join "user"` by token, check the expiry, answer the JSON of `/me`); `401` when signed out |
//! | `GET /floor/memory/me` | with `FLOOR_MEMORY=1`, no session layer: the traffic bench's hand-rolled floor served over HTTP, a layer of its own (find the cookie, verify `token.signature` with HMAC-SHA256, one lookup in a map of records holding the session and its user, check the expiry, insert the record as the one extension), then the JSON of `/me`; `401` when signed out |
//! | `GET /floor/memory/shared/me` | the same floor over records that share the store's own session and user rows (`Arc`s) rather than copies made together at start-up: the same code, the crate's memory layout |
//! | `GET /health` | `ok` |
//!
//! All but `/bare/me`, the `/floor/…` routes and `/health` are behind `SessionLayer`.
//!
//! Environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `BETTER_AUTH_SECRET` | required (≥ 32 bytes) |
//! | `STORE` | `memory` (default), `sqlite`, `postgres` or `redis` |
//! | `DATABASE_URL` | SQLite (default `sqlite://load-server.db`) or PostgreSQL URL (required for `postgres`); the tables are created when absent |
//! | `REDIS_URL` | required for `redis` (sessions in Better Auth's secondary-storage format) |
//! | `PORT` | default `0` (a free port); the server prints `LISTENING <port>` on stdout when ready |
//! | `SEED_SESSIONS` | sign in this many sessions at start-up (default 0) and write their cookies, one `name=value` per line, to `COOKIES_FILE` (default `cookies.txt`) |
//! | `SEED_USERS` | how many users the sessions are spread over (default: one per 10 sessions) |
//! | `SEED_ONLY=1` | seed, write the cookies and exit without serving |
//! | `WORKERS` | tokio worker threads (default: the number of CPUs) |
//! | `CACHE=1` | wrap the store in `CachedStore::builder(store).build()` (feature `cache`; default settings) |
//! | `FLOOR_MEMORY=1` | serve `/floor/memory/me` and `/floor/memory/shared/me`: their records hold the sessions in `COOKIES_FILE` and their users, read from the store at start-up (after any seeding) |
//! | `CACHE_TTL_SECS` | with `CACHE=1`, the cache's `ttl` instead of its default (30 s): to separate what refills cost from what a hit costs |
//! | `CACHE_REFRESH_AHEAD_MS` | with `CACHE=1`, the cache's `refresh_ahead` window instead of its default (2,000 ms; 0 turns it off) |

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use tower_auth_session::extract::{CurrentSession, MaybeUser};
use tower_auth_session::{
    Authenticated, MemoryStore, SessionConfig, SessionLayer, SessionStore, SignIn, StoreError, User,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a store gets the user rows its sessions point to.
trait AddUser: SessionStore + Clone {
    async fn add_user(&self, user: &User) -> Result<(), StoreError>;
}

/// The traffic bench's hand-rolled floor, shared with it.
#[path = "../benches/support/floor.rs"]
mod bench_floor;

/// `GET /floor/memory/me` (`FLOOR_MEMORY=1`): the traffic bench's hand-rolled floor over HTTP,
/// so that what a request costs beyond `/bare/me` can be split into what any session check costs
/// on this machine and what this crate adds. A layer of its own finds the session cookie,
/// verifies `token.signature` with HMAC-SHA256, looks the token up once in a map of records
/// holding the session and its user, checks the expiry and inserts the record as the request's
/// one extension; the handler answers the JSON `/me` answers.
mod memory_floor {
    use std::borrow::Borrow;
    use std::sync::Arc;

    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::{Extension, Json, Router};
    use serde_json::json;
    use tower_auth_session::{Session, SessionLayer, SessionStore, StorageKey};

    use super::bench_floor::{Floor, Record, Records};
    use super::BoxError;

    /// The two routes, with records for every live session whose cookie is in `cookies_file`:
    /// at `/floor/memory/me` copies of its session and user made one after the other, as the
    /// traffic bench's floor makes them (so each record's rows sit together in memory), at
    /// `/floor/memory/shared/me` the store's own rows.
    pub(super) async fn router<St: SessionStore>(
        layer: &SessionLayer<St>,
        store: &St,
        cookies_file: &str,
    ) -> Result<Router, BoxError> {
        let config = layer.config();
        let signer = config.signer();
        let secret = std::env::var("BETTER_AUTH_SECRET")
            .map_err(|_| "FLOOR_MEMORY=1 needs the secret in BETTER_AUTH_SECRET")?;
        let name = config.session_cookie_name();
        let mut copies = Records::default();
        let mut shared = Records::default();
        for line in std::fs::read_to_string(cookies_file)?.lines() {
            let Some(value) = line.strip_prefix(name).and_then(|l| l.strip_prefix('=')) else {
                continue;
            };
            let token = signer
                .unsign(value.as_bytes())
                .ok_or_else(|| format!("{cookies_file}: a cookie that does not verify"))?;
            // With `CACHE=1` this read fills the cache too, as the warm-up run before the first
            // measured run would: the entry holds the same rows either way.
            if let Some(found) = store.find(&StorageKey::new(token.as_ref())).await? {
                let copy = Record {
                    session: (*found.session).clone(),
                    user: Arc::new((*found.user).clone()),
                };
                copies.insert(token.to_string(), Arc::new(copy));
                let own = Record {
                    session: found.session,
                    user: found.user,
                };
                shared.insert(token.into_owned(), Arc::new(own));
            }
        }
        eprintln!(
            "load_server: the memory floors hold {} records",
            copies.len()
        );
        let secret = secret.as_bytes();
        Ok(Router::new()
            .route(
                "/floor/memory/me",
                get(me::<Session>).layer(Floor::new(copies, secret, name)),
            )
            .route(
                "/floor/memory/shared/me",
                get(me::<Arc<Session>>).layer(Floor::new(shared, secret, name)),
            ))
    }

    async fn me<S>(record: Option<Extension<Arc<Record<S>>>>) -> Response
    where
        S: Borrow<Session> + Send + Sync + 'static,
    {
        match record {
            Some(Extension(r)) => {
                let session: &Session = r.session.borrow();
                Json(json!({ "session": session, "user": r.user })).into_response()
            }
            None => StatusCode::UNAUTHORIZED.into_response(),
        }
    }
}

impl AddUser for MemoryStore {
    async fn add_user(&self, user: &User) -> Result<(), StoreError> {
        self.insert_user(user.clone());
        Ok(())
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl<D: tower_auth_session::store::Dialect> AddUser for tower_auth_session::store::SqlStore<D> {
    async fn add_user(&self, user: &User) -> Result<(), StoreError> {
        self.insert_user(user).await.map(|_| ())
    }
}

/// Redis keeps the user inside each session value, as Better Auth's secondary storage does.
#[cfg(feature = "redis")]
impl AddUser for tower_auth_session::RedisStore {
    async fn add_user(&self, _user: &User) -> Result<(), StoreError> {
        Ok(())
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `COOKIES_FILE`: where the seeded sessions' cookies are written, and read back.
fn cookies_file() -> String {
    env("COOKIES_FILE").unwrap_or_else(|| "cookies.txt".to_owned())
}

fn env_num(name: &str, default: usize) -> Result<usize, BoxError> {
    match env(name) {
        Some(v) => Ok(v
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a number"))?),
        None => Ok(default),
    }
}

fn main() {
    let result = env_num(
        "WORKERS",
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    )
    .and_then(|workers| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .enable_all()
            .build()?
            .block_on(run())
    });
    if let Err(error) = result {
        eprintln!("load_server: {error}");
        std::process::exit(1);
    }
}

/// A cache holds no users: they go to the store behind it.
#[cfg(feature = "cache")]
impl<St: AddUser> AddUser for tower_auth_session::store::CachedStore<St> {
    async fn add_user(&self, user: &User) -> Result<(), StoreError> {
        self.inner().add_user(user).await
    }
}

/// The pool `/floor/me` reads through (`STORE=sqlite` only).
#[cfg(feature = "sqlite")]
type FloorDb = Option<sqlx::SqlitePool>;
#[cfg(not(feature = "sqlite"))]
type FloorDb = Option<std::convert::Infallible>;

async fn run() -> Result<(), BoxError> {
    let kind = env("STORE").unwrap_or_else(|| "memory".to_owned());
    match kind.as_str() {
        "memory" => serve_store(MemoryStore::new(), "memory", None).await,
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            let url = env("DATABASE_URL").unwrap_or_else(|| "sqlite://load-server.db".to_owned());
            let store = tower_auth_session::SqliteStore::connect(&url).await?;
            // The floor's own pool on the same file, with the settings the store's pools use.
            let floor = tower_auth_session::SqliteStore::pool_for(&url).await?;
            serve_store(store, &format!("sqlite {url}"), Some(floor)).await
        }
        #[cfg(feature = "postgres")]
        "postgres" => {
            let url = env("DATABASE_URL").ok_or("STORE=postgres needs DATABASE_URL")?;
            let store = tower_auth_session::PostgresStore::builder(&url)
                .create_schema(true)
                .build()
                .await?;
            serve_store(store, "postgres", None).await
        }
        #[cfg(feature = "redis")]
        "redis" => {
            let url = env("REDIS_URL").ok_or("STORE=redis needs REDIS_URL")?;
            let store = tower_auth_session::RedisStore::builder(&url)
                .build()
                .await?;
            serve_store(store, "redis", None).await
        }
        other => Err(format!(
            "STORE={other:?}: expected memory, sqlite, postgres or redis (with its crate feature)"
        )
        .into()),
    }
}

/// Serves `store`, or with `CACHE=1` a `CachedStore` in front of it.
async fn serve_store<St: AddUser>(store: St, what: &str, floor: FloorDb) -> Result<(), BoxError> {
    match env("CACHE").as_deref() {
        None | Some("0") => serve(store, what, floor).await,
        #[cfg(feature = "cache")]
        Some("1") => {
            let mut builder = tower_auth_session::store::CachedStore::builder(store);
            if let Some(secs) = env("CACHE_TTL_SECS") {
                let secs: u64 = secs
                    .parse()
                    .map_err(|_| format!("CACHE_TTL_SECS={secs:?}: expected whole seconds"))?;
                builder = builder.ttl(std::time::Duration::from_secs(secs));
            }
            if let Some(ms) = env("CACHE_REFRESH_AHEAD_MS") {
                let ms: u64 = ms.parse().map_err(|_| {
                    format!("CACHE_REFRESH_AHEAD_MS={ms:?}: expected whole milliseconds")
                })?;
                builder = builder.refresh_ahead(std::time::Duration::from_millis(ms));
            }
            let cached = builder.build();
            serve(cached, &format!("{what}, behind CachedStore"), floor).await
        }
        Some(other) => Err(format!(
            "CACHE={other:?}: expected 0 or 1 (CACHE=1 needs the crate feature `cache`)"
        )
        .into()),
    }
}

async fn serve<St: AddUser>(store: St, what: &str, floor: FloorDb) -> Result<(), BoxError> {
    let config = SessionConfig::from_env()?;
    let refresh_config = SessionConfig::builder()
        .secret_from_env()?
        .secure_from_env()
        .update_age(Duration::ZERO)
        .build()?;
    #[cfg(feature = "sqlite")]
    let floor = floor
        .map(|pool| floor::router(pool, config.signer().clone(), config.session_cookie_name()));
    #[cfg(not(feature = "sqlite"))]
    let floor: Option<Router> = floor.map(|never| match never {});
    let layer = SessionLayer::new(config, store.clone());
    let refresh_layer = SessionLayer::new(refresh_config, store.clone());

    let sessions = env_num("SEED_SESSIONS", 0)?;
    if sessions > 0 {
        seed(&layer, &store, sessions).await?;
    }
    if env("SEED_ONLY").as_deref() == Some("1") {
        return Ok(());
    }
    let sample = sample(&layer, &store).await?;
    let memory_floor = if env("FLOOR_MEMORY").as_deref() == Some("1") {
        let path = cookies_file();
        Some(memory_floor::router(&layer, &store, &path).await?)
    } else {
        None
    };

    let mut app = Router::new()
        .route("/anonymous", get(anonymous))
        .route("/me", get(me))
        .layer(layer)
        .merge(
            Router::new()
                .route("/refresh/me", get(me))
                .layer(refresh_layer),
        )
        .route(
            "/bare/me",
            get(move || {
                let sample = sample.clone();
                async move { bare_me(&sample) }
            }),
        )
        .route("/health", get(|| async { "ok" }));
    if let Some(floor) = floor {
        app = app.merge(floor);
    }
    if let Some(floor) = memory_floor {
        app = app.merge(floor);
    }

    let port: u16 = env_num("PORT", 0)?.try_into()?;
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    eprintln!(
        "load_server: store {what}, http://{}",
        listener.local_addr()?
    );
    println!("LISTENING {}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn anonymous(MaybeUser(user): MaybeUser) -> Json<Value> {
    Json(user.map_or(Value::Null, |u| json!(u)))
}

async fn me(CurrentSession(auth): CurrentSession) -> Json<Value> {
    Json(json!({ "session": auth.session, "user": auth.user }))
}

/// `/bare/me`: the body of `/me` for one constant session, built the way `me` builds it.
fn bare_me(sample: &Authenticated) -> Json<Value> {
    Json(json!({ "session": sample.session, "user": sample.user }))
}

/// One session signed in at start-up (a user of its own), whose JSON `/bare/me` answers.
async fn sample<St: AddUser>(
    layer: &SessionLayer<St>,
    store: &St,
) -> Result<Authenticated, BoxError> {
    let now = OffsetDateTime::now_utc();
    // Unique per process: two servers may share a database.
    let user = User::new(
        &format!(
            "bare-{:x}-{}@example.com",
            now.unix_timestamp(),
            std::process::id()
        ),
        "Bare Route",
        now,
    );
    store.add_user(&user).await?;
    let signed = layer.manager().sign_in(&user, SignIn::new()).await?;
    Ok(Authenticated::new(signed.session, user))
}

/// Signs in `sessions` sessions spread over `SEED_USERS` users, 16 at a time, and writes their
/// cookies to `COOKIES_FILE`.
async fn seed<St: AddUser>(
    layer: &SessionLayer<St>,
    store: &St,
    sessions: usize,
) -> Result<(), BoxError> {
    let started = Instant::now();
    let users = env_num("SEED_USERS", sessions.div_ceil(10))?.clamp(1, sessions);
    let run = format!("{:x}", OffsetDateTime::now_utc().unix_timestamp());
    let now = OffsetDateTime::now_utc();
    let users: Arc<Vec<User>> = Arc::new(
        (0..users)
            .map(|i| {
                User::new(
                    &format!("load{i}-{run}@example.com"),
                    &format!("Load {i}"),
                    now,
                )
            })
            .collect(),
    );
    for user in users.iter() {
        store.add_user(user).await?;
    }
    const TASKS: usize = 16;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let manager = layer.manager();
        let users = Arc::clone(&users);
        tasks.spawn(async move {
            let mut cookies = Vec::new();
            for i in (t..sessions).step_by(TASKS) {
                let user = &users[i % users.len()];
                let signed = manager.sign_in(user, SignIn::new()).await?;
                let value = manager
                    .config()
                    .signer()
                    .sign_cookie_value(&signed.session.token);
                cookies.push(format!(
                    "{}={value}",
                    manager.config().session_cookie_name()
                ));
            }
            Ok::<_, tower_auth_session::SessionError>(cookies)
        });
    }
    let path = cookies_file();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
    while let Some(done) = tasks.join_next().await {
        for cookie in done?? {
            writeln!(out, "{cookie}")?;
        }
    }
    out.flush()?;
    eprintln!(
        "load_server: seeded {sessions} sessions over {} users in {:.1} s; cookies in {path}",
        users.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `GET /floor/me` (`STORE=sqlite`): the floor a careful hand-written handler sets on the same
/// database file, with no session layer: find the session cookie, verify `token.signature` with
/// HMAC-SHA256, run one prepared query joining the session to its user, check the expiry, and
/// answer the JSON `/me` answers.
#[cfg(feature = "sqlite")]
mod floor {
    use std::sync::Arc;

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::json;
    use sqlx::{Row, SqlitePool};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;
    use tower_auth_session::codec::{find_cookie, Signer};

    /// Better Auth's SQLite layout: dates are `toISOString()` text, booleans `0`/`1`.
    const SELECT: &str = r#"select s."id", s."token", s."userId", s."expiresAt", s."createdAt", s."updatedAt", s."ipAddress", s."userAgent", u."id", u."name", u."email", u."emailVerified", u."image", u."createdAt", u."updatedAt" from "session" s join "user" u on u."id" = s."userId" where s."token" = ?"#;

    struct Floor {
        pool: SqlitePool,
        signer: Signer,
        cookie: String,
    }

    pub(super) fn router(pool: SqlitePool, signer: Signer, cookie: &str) -> Router {
        let floor = Arc::new(Floor {
            pool,
            signer,
            cookie: cookie.to_owned(),
        });
        Router::new().route("/floor/me", get(me)).with_state(floor)
    }

    async fn me(State(floor): State<Arc<Floor>>, headers: HeaderMap) -> Response {
        let mut buf = [0u8; 128];
        let Some(token) = verified_token(&floor, &headers, &mut buf) else {
            return StatusCode::UNAUTHORIZED.into_response();
        };
        // sqlx prepares the statement once per connection and keeps it (`persistent`).
        let row = match sqlx::query(SELECT)
            .bind(token)
            .fetch_optional(&floor.pool)
            .await
        {
            Ok(Some(row)) => row,
            Ok(None) => return StatusCode::UNAUTHORIZED.into_response(),
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        };
        match answer(&row) {
            Ok(Some(body)) => body.into_response(),
            Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    }

    /// The token of a session cookie whose signature verifies, percent-decoded into `buf`.
    fn verified_token<'b>(
        floor: &Floor,
        headers: &HeaderMap,
        buf: &'b mut [u8; 128],
    ) -> Option<&'b str> {
        let raw = find_cookie(headers, &floor.cookie)?;
        let value = super::bench_floor::percent_decode(raw, buf)?;
        let dot = value.iter().rposition(|&b| b == b'.')?;
        let (token, signature) = (&value[..dot], &value[dot + 1..]);
        if !floor.signer.verify(token, signature) {
            return None;
        }
        std::str::from_utf8(token).ok()
    }

    /// The JSON of a live session's row, `None` when it has expired.
    fn answer(
        row: &sqlx::sqlite::SqliteRow,
    ) -> Result<Option<Json<serde_json::Value>>, sqlx::Error> {
        let expires_at: String = row.try_get(3)?;
        let expired = OffsetDateTime::parse(&expires_at, &Rfc3339)
            .map_or(true, |at| at <= OffsetDateTime::now_utc());
        if expired {
            return Ok(None);
        }
        Ok(Some(Json(json!({
            "session": {
                "id": row.try_get::<&str, _>(0)?,
                "token": row.try_get::<&str, _>(1)?,
                "userId": row.try_get::<&str, _>(2)?,
                "expiresAt": expires_at,
                "createdAt": row.try_get::<&str, _>(4)?,
                "updatedAt": row.try_get::<&str, _>(5)?,
                "ipAddress": row.try_get::<Option<&str>, _>(6)?,
                "userAgent": row.try_get::<Option<&str>, _>(7)?,
            },
            "user": {
                "id": row.try_get::<&str, _>(8)?,
                "name": row.try_get::<&str, _>(9)?,
                "email": row.try_get::<&str, _>(10)?,
                "emailVerified": row.try_get::<bool, _>(11)?,
                "image": row.try_get::<Option<&str>, _>(12)?,
                "createdAt": row.try_get::<&str, _>(13)?,
                "updatedAt": row.try_get::<&str, _>(14)?,
            },
        }))))
    }
}
