//! The quickstart's routes with sessions in Redis, in Better Auth's secondary-storage format
//! (users stay in a database, as with Better Auth: here a SQLite file).
//!
//! ```sh
//! export BETTER_AUTH_SECRET="$(head -c 32 /dev/urandom | base64)"
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --example redis --features redis
//! ```
//!
//! Environment: `BETTER_AUTH_SECRET` (required), `REDIS_URL` (required unless
//! `REDIS_CLUSTER_URLS` or `REDIS_SENTINEL_URLS` is set), `REDIS_PREFIX` (default none), `DATABASE_URL` for users (default
//! `sqlite://redis-example-users.db`), `PORT` (default 3000), `RUST_LOG` (default `warn`).
//!
//! * TLS: `REDIS_URL=rediss://host:6380/` verifies the server against the Mozilla roots, or
//!   against the CA certificate in the PEM file named by `REDIS_TLS_CA`.
//! * Redis Cluster: `REDIS_CLUSTER_URLS=redis://host1:7000/,redis://host2:7001/` (one or more
//!   nodes; `rediss://` and `REDIS_TLS_CA` work there too).
//! * Redis Sentinel: `REDIS_SENTINEL_URLS=redis://sentinel-1:26379/,redis://sentinel-2:26379/`
//!   and `REDIS_SENTINEL_MASTER=mymaster` (the name in `sentinel monitor`); the master's password
//!   in `REDIS_MASTER_PASSWORD` (with `REDIS_MASTER_USERNAME` for an ACL user) when it has one.

#[path = "common/demo.rs"]
mod demo;

use tower_auth_session::{RedisStore, SessionConfig, SqliteStore};

#[tokio::main]
async fn main() {
    demo::exit_on_error("redis", async {
        let config = SessionConfig::from_env()?;
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let builder = match (var("REDIS_SENTINEL_URLS"), var("REDIS_CLUSTER_URLS")) {
            (Some(urls), _) => {
                let master = var("REDIS_SENTINEL_MASTER").ok_or(
                    "set REDIS_SENTINEL_MASTER to the name the Sentinels watch the master under",
                )?;
                let builder = RedisStore::sentinel_builder(urls.split(',').map(str::trim), master);
                match var("REDIS_MASTER_PASSWORD") {
                    Some(password) => builder
                        .master_auth(var("REDIS_MASTER_USERNAME").as_deref(), &password),
                    None => builder,
                }
            }
            (None, Some(urls)) => RedisStore::cluster_builder(urls.split(',').map(str::trim)),
            (None, None) => RedisStore::builder(var("REDIS_URL").ok_or(
                "set REDIS_URL, e.g. redis://127.0.0.1:6379/ (or REDIS_CLUSTER_URLS, or REDIS_SENTINEL_URLS)",
            )?),
        };
        let builder = match std::env::var("REDIS_TLS_CA") {
            Ok(path) => builder.tls_root_cert_pem(
                std::fs::read(&path).map_err(|e| format!("REDIS_TLS_CA={path}: {e}"))?,
            ),
            Err(_) => builder,
        };
        let users_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "sqlite://redis-example-users.db".to_owned());
        let users = SqliteStore::connect(&users_url).await?;
        let sessions = builder
            .key_prefix(std::env::var("REDIS_PREFIX").unwrap_or_default())
            .expires_in(config.expires_in())
            .build()
            .await?;
        let app = demo::router(config, users, sessions);
        demo::serve("redis", "Redis", app).await
    })
    .await;
}
