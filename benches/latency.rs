//! Per-request latency distribution (median, p99) of an authenticated request through
//! `SessionLayer`, in process, over sessions that already exist in a database: the Rust side of
//! the comparison with Better Auth's `auth.api.getSession` on the same database
//! (`scripts/bench/ba-getsession.mjs`), issue 5 target 3.
//!
//! ```sh
//! # seed sessions with the load server, then measure both sides on the same file:
//! STORE=sqlite DATABASE_URL=sqlite:///tmp/b.db SEED_SESSIONS=2000 SEED_ONLY=1 COOKIES_FILE=/tmp/c.txt \
//!     cargo run --release --all-features --example load_server
//! LAT_STORE=sqlite LAT_URL=sqlite:///tmp/b.db COOKIES_FILE=/tmp/c.txt \
//!     cargo bench --all-features --bench latency
//! ```
//!
//! Environment: `BETTER_AUTH_SECRET` (the one the cookies were signed with), `LAT_STORE`
//! (`sqlite`, `postgres`, `redis`), `LAT_URL`, `COOKIES_FILE` (one `name=value` per line),
//! `LAT_REQUESTS` (default 5000, after 500 warm-up requests). Requests run one after another on
//! a single-threaded runtime, each with the 4-cookie header of `overhead`, cycling through the
//! cookies; every answer is checked to be signed in. Prints one JSON line.
//!
//! Then, as the floor any store on the same driver can reach, the driver's own trivial round trip
//! on the same database, sent the same way: sqlx `SELECT 1` (SQLite, PostgreSQL) or a Redis
//! `PING` (`floor_median_us`, `floor_p99_us`). A PostgreSQL URL with `?pgbouncer=true` measures
//! both through PgBouncer, the floor with unnamed statements and no `extra_float_digits`.

#[path = "support/mod.rs"]
mod support;

use std::time::Instant;

use axum::Router;
use http::{HeaderValue, StatusCode};
use tower::ServiceExt;
use tower_auth_session::{SessionConfig, SessionLayer, SessionStore};

fn main() {
    let Some(kind) = support::env_url("LAT_STORE") else {
        eprintln!("latency: LAT_STORE is not set (sqlite, postgres or redis); nothing to do");
        return;
    };
    let url = std::env::var("LAT_URL").expect("LAT_URL");
    let cookies_file = std::env::var("COOKIES_FILE").expect("COOKIES_FILE");
    let requests: usize = std::env::var("LAT_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000);
    let cookies: Vec<HeaderValue> = std::fs::read_to_string(&cookies_file)
        .expect("COOKIES_FILE")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| HeaderValue::from_str(&format!("{}; {l}", support::NOISE)).unwrap())
        .collect();
    assert!(!cookies.is_empty(), "{cookies_file} holds no cookie");
    let config = SessionConfig::from_env().expect("BETTER_AUTH_SECRET");
    let rt = support::runtime();
    let samples = rt.block_on(async {
        match kind.as_str() {
            "sqlite" => {
                let store = tower_auth_session::SqliteStore::connect(&url)
                    .await
                    .unwrap();
                measure(config, store, &cookies, requests).await
            }
            #[cfg(feature = "postgres")]
            "postgres" => {
                let store = tower_auth_session::PostgresStore::connect(&url)
                    .await
                    .unwrap();
                measure(config, store, &cookies, requests).await
            }
            #[cfg(feature = "redis")]
            "redis" => {
                let store = tower_auth_session::RedisStore::connect(&url).await.unwrap();
                measure(config, store, &cookies, requests).await
            }
            other => panic!("LAT_STORE={other}: expected sqlite, postgres or redis"),
        }
    });
    let floor = rt.block_on(driver_floor(&kind, &url, requests));
    let floor = sorted_us(&floor);
    let us = sorted_us(&samples);
    let pct =
        |us: &[f64], p: f64| us[((us.len() as f64 * p).ceil() as usize).clamp(1, us.len()) - 1];
    println!(
        "{}",
        serde_json::json!({
            "system": "tower-auth-session",
            "store": kind,
            "requests": us.len(),
            "sessions": cookies.len(),
            "median_us": pct(&us, 0.50),
            "p99_us": pct(&us, 0.99),
            "floor": if kind == "redis" { "PING" } else { "SELECT 1" },
            "floor_median_us": pct(&floor, 0.50),
            "floor_p99_us": pct(&floor, 0.99),
            "mean_us": us.iter().sum::<f64>() / us.len() as f64,
            "max_us": us[us.len() - 1],
        })
    );
}

async fn measure<St: SessionStore + Clone>(
    config: SessionConfig,
    store: St,
    cookies: &[HeaderValue],
    requests: usize,
) -> Vec<std::time::Duration> {
    let layer = SessionLayer::new(config, store);
    let app: Router = support::tas_router(&layer, false);
    let mut samples = Vec::with_capacity(requests);
    for i in 0..500 + requests {
        let req = support::request(&cookies[i % cookies.len()]);
        let started = Instant::now();
        let response = app.clone().oneshot(req).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(response.status(), StatusCode::OK);
        if i >= 500 {
            samples.push(elapsed);
        }
    }
    // One answer in full: the cookies must really be signed in.
    let response = app
        .clone()
        .oneshot(support::request(&cookies[0]))
        .await
        .unwrap();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], support::SIGNED_IN.as_bytes(), "not signed in");
    samples
}

fn sorted_us(samples: &[std::time::Duration]) -> Vec<f64> {
    let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    us
}

/// The driver's own cheapest round trip on the same database, one after another, after 500
/// warm-up calls: what no store built on that driver can beat.
async fn driver_floor(kind: &str, url: &str, requests: usize) -> Vec<std::time::Duration> {
    macro_rules! sample {
        ($call:expr) => {{
            let mut samples = Vec::with_capacity(requests);
            for i in 0..500 + requests {
                let started = Instant::now();
                $call;
                if i >= 500 {
                    samples.push(started.elapsed());
                }
            }
            samples
        }};
    }
    match kind {
        "sqlite" => {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .test_before_acquire(false)
                .connect(url)
                .await
                .unwrap();
            sample!(sqlx::query("SELECT 1").fetch_one(&pool).await.unwrap())
        }
        #[cfg(feature = "postgres")]
        "postgres" => {
            use std::str::FromStr as _;
            // Behind PgBouncer (`?pgbouncer=true`, the store's own parameter): what the store
            // does there, done by hand: no `extra_float_digits`, unnamed statements.
            let pooler = url.contains("pgbouncer=true");
            let url = url
                .replace("?pgbouncer=true", "")
                .replace("&pgbouncer=true", "");
            let mut options = sqlx::postgres::PgConnectOptions::from_str(&url).unwrap();
            if pooler {
                options = options.extra_float_digits(None);
            }
            let pool = sqlx::postgres::PgPoolOptions::new()
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .unwrap();
            if pooler {
                // Unnamed, inside a transaction, so that parse and bind reach one server
                // connection: as the store sends every statement behind a pooler.
                sample!({
                    let mut tx = pool.begin().await.unwrap();
                    sqlx::query("SELECT 1")
                        .persistent(false)
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                })
            } else {
                sample!(sqlx::query("SELECT 1").fetch_one(&pool).await.unwrap())
            }
        }
        #[cfg(feature = "redis")]
        "redis" => {
            let client = redis::Client::open(url).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            sample!({
                let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
            })
        }
        other => panic!("no driver floor for {other}"),
    }
}
