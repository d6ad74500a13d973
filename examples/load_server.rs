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
//! Routes (all behind `SessionLayer`):
//!
//! | route | answer |
//! |---|---|
//! | `GET /anonymous` | `null`, or the user when a session cookie is sent (`MaybeUser`) |
//! | `GET /me` | `{"session":{…},"user":{…}}` like Better Auth's `get-session`; `401` when signed out |
//! | `GET /refresh/me` | the same behind a layer with `update_age(0)`: every request extends the session (one store write and a `Set-Cookie`) |
//! | `GET /health` | `ok` |
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
    MemoryStore, SessionConfig, SessionLayer, SessionStore, SignIn, StoreError, User,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a store gets the user rows its sessions point to.
trait AddUser: SessionStore + Clone {
    async fn add_user(&self, user: &User) -> Result<(), StoreError>;
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

async fn run() -> Result<(), BoxError> {
    let kind = env("STORE").unwrap_or_else(|| "memory".to_owned());
    match kind.as_str() {
        "memory" => serve(MemoryStore::new(), "memory").await,
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            let url = env("DATABASE_URL").unwrap_or_else(|| "sqlite://load-server.db".to_owned());
            let store = tower_auth_session::SqliteStore::connect(&url).await?;
            serve(store, &format!("sqlite {url}")).await
        }
        #[cfg(feature = "postgres")]
        "postgres" => {
            let url = env("DATABASE_URL").ok_or("STORE=postgres needs DATABASE_URL")?;
            let store = tower_auth_session::PostgresStore::builder(&url)
                .create_schema(true)
                .build()
                .await?;
            serve(store, "postgres").await
        }
        #[cfg(feature = "redis")]
        "redis" => {
            let url = env("REDIS_URL").ok_or("STORE=redis needs REDIS_URL")?;
            let store = tower_auth_session::RedisStore::builder(&url)
                .build()
                .await?;
            serve(store, "redis").await
        }
        other => Err(format!(
            "STORE={other:?}: expected memory, sqlite, postgres or redis (with its crate feature)"
        )
        .into()),
    }
}

async fn serve<St: AddUser>(store: St, what: &str) -> Result<(), BoxError> {
    let config = SessionConfig::from_env()?;
    let refresh_config = SessionConfig::builder()
        .secret_from_env()?
        .secure_from_env()
        .update_age(Duration::ZERO)
        .build()?;
    let layer = SessionLayer::new(config, store.clone());
    let refresh_layer = SessionLayer::new(refresh_config, store.clone());

    let sessions = env_num("SEED_SESSIONS", 0)?;
    if sessions > 0 {
        seed(&layer, &store, sessions).await?;
    }
    if env("SEED_ONLY").as_deref() == Some("1") {
        return Ok(());
    }

    let app = Router::new()
        .route("/anonymous", get(anonymous))
        .route("/me", get(me))
        .layer(layer)
        .merge(
            Router::new()
                .route("/refresh/me", get(me))
                .layer(refresh_layer),
        )
        .route("/health", get(|| async { "ok" }));

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
    let path = env("COOKIES_FILE").unwrap_or_else(|| "cookies.txt".to_owned());
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
