//! Issue 13: the network stores recover from servers that die without notice, under concurrent
//! signed-in load. PostgreSQL stopped with `-m immediate` and with SIGKILL of the postmaster,
//! Redis killed with SIGKILL, and both behind a network path that goes silent (a TCP proxy in
//! this harness that stops forwarding without closing anything). For each, in order:
//!
//! 1. signed-in requests answer 200;
//! 2. during the outage they answer 503 within the layer's deadline: nobody is signed out (no
//!    401), no row or key is deleted, and no request hangs;
//! 3. once the server or the path is back, they answer 200 again within 5 s, with no restart of
//!    the app, and from then on every request does.
//!
//! Each test owns its servers (started here, stopped on drop), so crashing them disturbs no
//! other test; the tests run one at a time, since their deadlines and load share two cores.
#![cfg(all(feature = "postgres", feature = "redis"))]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use common::servers::{Outcome, Postgres, Proxy, Record, Redis};
use tower::ServiceExt;
use tower_auth_session::extract::CurrentUser;
use tower_auth_session::store::{PostgresStore, RedisStore};
use tower_auth_session::{SessionConfig, SessionLayer, SessionStore, SignIn, User};

/// The layer's deadline and the stores' own timeouts in these tests.
const DEADLINE: Duration = Duration::from_millis(1000);
/// Slack for scheduling on a loaded two-core machine, on top of the deadline.
const SLACK: Duration = Duration::from_millis(1500);
/// Concurrent clients.
const CLIENTS: usize = 12;
/// Sessions signed in before the load starts.
const SESSIONS: usize = 8;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn app<St: SessionStore>(store: St) -> (Router, SessionLayer<St>) {
    let layer = SessionLayer::new(
        SessionConfig::builder()
            .secret(common::SECRET)
            .store_timeout(DEADLINE)
            .build()
            .unwrap(),
        store,
    );
    let router = Router::new()
        .route(
            "/me",
            get(|CurrentUser(u): CurrentUser| async move { u.email.clone() }),
        )
        .layer(layer.clone());
    (router, layer)
}

/// Signs `SESSIONS` sessions in and returns their `Cookie` header values.
async fn sign_in<St: SessionStore>(layer: &SessionLayer<St>, user: &User) -> Vec<String> {
    let mut cookies = Vec::new();
    for _ in 0..SESSIONS {
        let signed = layer.manager().sign_in(user, SignIn::new()).await.unwrap();
        cookies.push(common::session_cookie(&signed));
    }
    cookies
}

/// Clients sending signed-in requests in a loop until stopped, each outcome recorded.
struct Load {
    record: Record,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(app: Router, cookies: Vec<String>) -> Self {
        let record = Record::default();
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..CLIENTS)
            .map(|i| {
                let (app, cookies, record, stop) =
                    (app.clone(), cookies.clone(), record.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = i;
                    while !stop.load(Ordering::Relaxed) {
                        let cookie = &cookies[n % cookies.len()];
                        n += 1;
                        let started = Instant::now();
                        let response = app
                            .clone()
                            .oneshot(common::get_req("/me", Some(cookie)))
                            .await
                            .unwrap();
                        record.push(Outcome {
                            started,
                            took: started.elapsed(),
                            status: response.status().as_u16(),
                        });
                    }
                })
            })
            .collect();
        Self {
            record,
            stop,
            tasks,
        }
    }

    async fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        self.record.snapshot()
    }
}

/// Runs the load through an outage caused by `cut` and ended by `mend`, checks the
/// 200 → 503 → 200 sequence, and returns the recovery time (from `mend`'s return, the server or
/// path being back, until the first request started after it answered 200). The server's own
/// start-up (a crashed PostgreSQL's recovery under `pg_ctl start -w`) is not the store's time.
async fn through_outage(
    name: &str,
    app: Router,
    cookies: Vec<String>,
    cut: impl FnOnce() + Send + 'static,
    mend: impl FnOnce() + Send + 'static,
) -> Duration {
    let load = Load::start(app, cookies);
    let record = load.record.clone();
    record
        .wait_for(
            "signed-in requests before the outage",
            Duration::from_secs(30),
            |o| o.iter().filter(|o| o.status == 200).count() >= 3 * CLIENTS,
        )
        .await;

    let cut_at = Instant::now();
    tokio::task::spawn_blocking(cut).await.unwrap();
    record
        .wait_for("503s during the outage", Duration::from_secs(30), |o| {
            o.iter()
                .filter(|o| o.started > cut_at && o.status == 503)
                .count()
                >= 2 * CLIENTS
        })
        .await;

    let mending_at = Instant::now();
    tokio::task::spawn_blocking(mend).await.unwrap();
    let mended_at = Instant::now();
    record
        .wait_for(
            "a 200 after the server came back",
            Duration::from_secs(30),
            |o| o.iter().any(|o| o.started > mended_at && o.status == 200),
        )
        .await;
    let first_ok = record
        .snapshot()
        .into_iter()
        .filter(|o| o.started > mended_at && o.status == 200)
        .min_by_key(|o| o.started + o.took)
        .unwrap();
    let recovery = (first_ok.started + first_ok.took) - mended_at;
    let settled = first_ok.started + Duration::from_millis(500);
    record
        .wait_for("requests after recovery", Duration::from_secs(30), |o| {
            o.iter().filter(|o| o.started > settled).count() >= 4 * CLIENTS
        })
        .await;
    let outcomes = load.stop().await;

    eprintln!(
        "[recovery] {name}: {} requests; back to 200 {:.0} ms after the server or path returned",
        outcomes.len(),
        recovery.as_secs_f64() * 1000.0
    );
    for o in &outcomes {
        assert!(
            o.status == 200 || o.status == 503,
            "{name}: only 200 or 503, never {} (nobody is signed out by an outage)",
            o.status
        );
        assert!(
            o.took <= DEADLINE + SLACK,
            "{name}: a request took {:?}, past the deadline",
            o.took
        );
    }
    let during: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.started > cut_at + SLACK && o.started + o.took < mending_at)
        .collect();
    assert!(
        during.iter().all(|o| o.status == 503),
        "{name}: requests made entirely within the outage answer 503"
    );
    let after: Vec<&Outcome> = outcomes.iter().filter(|o| o.started > settled).collect();
    assert!(
        after.iter().all(|o| o.status == 200),
        "{name}: after recovery every request answers 200 ({} of {} did not)",
        after.iter().filter(|o| o.status != 200).count(),
        after.len()
    );
    assert!(
        recovery <= Duration::from_secs(5),
        "{name}: recovery took {recovery:?}"
    );
    recovery
}

async fn pg_store(url: &str) -> PostgresStore {
    PostgresStore::builder(url)
        .create_schema(true)
        .acquire_timeout(DEADLINE)
        .timeout(DEADLINE)
        .build()
        .await
        .unwrap()
}

async fn redis_store(url: &str) -> RedisStore {
    RedisStore::builder(url)
        .timeout(DEADLINE)
        .build()
        .await
        .unwrap()
}

/// Makes everything written so far durable (the throwaway servers run with
/// `synchronous_commit=off`, so a crash would otherwise lose the last commits, the schema
/// included, and the test would measure lost data, not recovery).
async fn checkpoint(url: &str) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query("checkpoint").execute(&pool).await.unwrap();
    pool.close().await;
}

async fn count_sessions(url: &str) -> i64 {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let n = sqlx::query_scalar(r#"select count(*) from "session""#)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

async fn postgres_crash(test: &str, crash: fn(&Postgres)) {
    let _serial = SERIAL.lock().await;
    let Some(pg) = Postgres::start(test) else {
        return;
    };
    let pg = Arc::new(pg);
    let url = pg.url();
    let store = pg_store(&url).await;
    let user = store
        .insert_user(&User::new("crash@example.com", "Crash", common::now()))
        .await
        .unwrap();
    let (app, layer) = app(store);
    let cookies = sign_in(&layer, &user).await;
    checkpoint(&url).await;
    let (a, b) = (pg.clone(), pg.clone());
    through_outage(
        test,
        app,
        cookies,
        move || crash(&a),
        move || b.start_again(),
    )
    .await;
    assert_eq!(
        count_sessions(&url).await,
        SESSIONS as i64,
        "no session row was deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_immediately_under_load() {
    postgres_crash("postgres_stopped_immediately_under_load", |pg| {
        pg.stop("immediate")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_postmaster_killed_under_load() {
    postgres_crash(
        "postgres_postmaster_killed_under_load",
        Postgres::kill_postmaster,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_black_holed_under_load() {
    let test = "postgres_black_holed_under_load";
    let _serial = SERIAL.lock().await;
    let Some(pg) = Postgres::start(test) else {
        return;
    };
    let proxy = Arc::new(Proxy::start(pg.port).await);
    let through = format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port);
    let store = pg_store(&through).await;
    let user = store
        .insert_user(&User::new("hole@example.com", "Hole", common::now()))
        .await
        .unwrap();
    let (app, layer) = app(store);
    let cookies = sign_in(&layer, &user).await;
    let (a, b) = (proxy.clone(), proxy.clone());
    through_outage(test, app, cookies, move || a.black_hole(), move || b.heal()).await;
    assert_eq!(count_sessions(&pg.url()).await, SESSIONS as i64);
}

async fn redis_keys(url: &str) -> usize {
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load() {
    let test = "redis_killed_under_load";
    let _serial = SERIAL.lock().await;
    let Some(redis) = Redis::start(test) else {
        return;
    };
    let redis = Arc::new(redis);
    let store = redis_store(&redis.url()).await;
    let user = User::new("kill@example.com", "Kill", common::now());
    let (app, layer) = app(store);
    let cookies = sign_in(&layer, &user).await;
    let (a, b) = (redis.clone(), redis.clone());
    through_outage(
        test,
        app,
        cookies,
        move || a.kill(),
        move || b.start_again(),
    )
    .await;
    assert_eq!(
        redis_keys(&redis.url()).await,
        SESSIONS + 1,
        "every session key and the user's list survived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_black_holed_under_load() {
    let test = "redis_black_holed_under_load";
    let _serial = SERIAL.lock().await;
    let Some(redis) = Redis::start(test) else {
        return;
    };
    let proxy = Arc::new(Proxy::start(redis.port).await);
    let store = redis_store(&format!("redis://127.0.0.1:{}/", proxy.port)).await;
    let user = User::new("quiet@example.com", "Quiet", common::now());
    let (app, layer) = app(store);
    let cookies = sign_in(&layer, &user).await;
    let (a, b) = (proxy.clone(), proxy.clone());
    through_outage(test, app, cookies, move || a.black_hole(), move || b.heal()).await;
    assert_eq!(redis_keys(&redis.url()).await, SESSIONS + 1);
}

/// A server that crashed while the app was idle: the pooled connections are all dead, and the
/// first request after the server is back answers 200 (the failed connection is dropped, and
/// the lookup is tried again on a fresh one), as does every one after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_request_after_an_idle_crash_answers_200() {
    let test = "the_first_request_after_an_idle_crash_answers_200";
    let _serial = SERIAL.lock().await;
    let (Some(pg), Some(redis)) = (Postgres::start(test), Redis::start(test)) else {
        return;
    };
    let store = pg_store(&pg.url()).await;
    let user = store
        .insert_user(&User::new("idle@example.com", "Idle", common::now()))
        .await
        .unwrap();
    let (pg_app, pg_layer) = app(store);
    let pg_cookies = sign_in(&pg_layer, &user).await;
    let (redis_app, redis_layer) = app(redis_store(&redis.url()).await);
    let redis_cookies = sign_in(&redis_layer, &user).await;
    checkpoint(&pg.url()).await;

    // Concurrent requests leave several connections in the pool.
    for (app, cookies) in [(&pg_app, &pg_cookies), (&redis_app, &redis_cookies)] {
        let load = Load::start(app.clone(), cookies.clone());
        load.record
            .wait_for("warm-up", Duration::from_secs(30), |o| {
                o.len() >= 10 * CLIENTS
            })
            .await;
        assert!(load.stop().await.iter().all(|o| o.status == 200));
    }

    pg.stop("immediate");
    pg.start_again();
    redis.kill();
    redis.start_again();
    for (name, app, cookies) in [
        ("postgres", &pg_app, &pg_cookies),
        ("redis", &redis_app, &redis_cookies),
    ] {
        for cookie in cookies.iter().chain(cookies) {
            let r = common::send(app.clone(), common::get_req("/me", Some(cookie))).await;
            assert_eq!(
                (r.status, r.body.as_str()),
                (200, "idle@example.com"),
                "{name}: the first requests after the crash"
            );
        }
    }
}
