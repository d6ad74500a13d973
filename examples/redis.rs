//! The quickstart's routes with sessions in Redis, in Better Auth's secondary-storage format
//! (users stay in a database, as with Better Auth: here a SQLite file).
//!
//! ```sh
//! export BETTER_AUTH_SECRET="$(head -c 32 /dev/urandom | base64)"
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --example redis --features redis
//! ```
//!
//! Environment: `BETTER_AUTH_SECRET` (required), `REDIS_URL` (required), `REDIS_PREFIX`
//! (default none), `DATABASE_URL` for users (default `sqlite://redis-example-users.db`),
//! `PORT` (default 3000).

#[path = "common/demo.rs"]
mod demo;

use tower_auth_session::{RedisStore, SessionConfig, SqliteStore};

#[tokio::main]
async fn main() {
    demo::exit_on_error("redis", async {
        let config = SessionConfig::from_env()?;
        let url = std::env::var("REDIS_URL")
            .map_err(|_| "set REDIS_URL, e.g. redis://127.0.0.1:6379/")?;
        let users_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "sqlite://redis-example-users.db".to_owned());
        let users = SqliteStore::connect(&users_url).await?;
        let sessions = RedisStore::builder(&url)
            .key_prefix(std::env::var("REDIS_PREFIX").unwrap_or_default())
            .expires_in(config.expires_in())
            .build()
            .await?;
        let app = demo::router(config, users, sessions);
        demo::serve("redis", "Redis", app).await
    })
    .await;
}
