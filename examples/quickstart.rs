//! The README's first command: an axum app with persistent, Better Auth–compatible sessions on
//! the embedded SQLite store.
//!
//! ```sh
//! export BETTER_AUTH_SECRET="${BETTER_AUTH_SECRET:-$(head -c 32 /dev/urandom | base64)}"
//! cargo run --example quickstart
//! curl -i -c jar -H 'content-type: application/json' -d '{"email":"alice@example.com"}' localhost:3000/sign-in
//! curl -b jar localhost:3000/me      # stop and restart the server: still signed in
//! ```
//!
//! Environment: `BETTER_AUTH_SECRET` (required, ≥ 32 bytes), `PORT` (default 3000),
//! `DATABASE_URL` (default `sqlite://quickstart.db`, created if missing).
//!
//! `POST /sign-in` is a demo: it signs in whoever names an e-mail address, with no password.
//! Real apps verify credentials first (or let a Better Auth server do it) and then call
//! `sessions.sign_in(&user)`.

#[path = "common/demo.rs"]
mod demo;

use tower_auth_session::{SessionConfig, SqliteStore};

#[tokio::main]
async fn main() {
    demo::exit_on_error("quickstart", async {
        // Refuses to start without a strong secret: there is no fallback.
        let config = SessionConfig::from_env()?;
        let url =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://quickstart.db".to_owned());
        // Creates Better Auth's tables if absent; names a missing column if they differ.
        let store = SqliteStore::connect(&url).await?;
        let app = demo::router(config, store.clone(), store);
        demo::serve("quickstart", &format!("database {url}"), app).await
    })
    .await;
}
