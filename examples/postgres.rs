//! The quickstart's routes with sessions and users in PostgreSQL.
//!
//! ```sh
//! export BETTER_AUTH_SECRET="$(head -c 32 /dev/urandom | base64)"
//! DATABASE_URL=postgres://user:password@127.0.0.1:5432/app cargo run --example postgres --features postgres
//! ```
//!
//! Environment: `BETTER_AUTH_SECRET` (required), `DATABASE_URL` (required), `PORT` (default
//! 3000), `CREATE_SCHEMA` (`0` to only verify an existing Better Auth schema; default creates the
//! tables when absent), `RUST_LOG` (default `warn`).
//!
//! TLS and poolers come from the URL, as with libpq: `?sslmode=verify-full&sslrootcert=/path/ca.pem`
//! for a managed database with a private CA (`verify-full` against the Mozilla roots without
//! `sslrootcert`), and `&pgbouncer=true` behind PgBouncer or Supabase's or Neon's pooler in
//! transaction mode. Several hosts with `target_session_attrs=read-write`
//! (`postgres://app@db1:5432,db2:5432/app?target_session_attrs=read-write`) follow a failover to
//! whichever listed server takes writes.

#[path = "common/demo.rs"]
mod demo;

use tower_auth_session::{PostgresStore, SessionConfig};

#[tokio::main]
async fn main() {
    demo::exit_on_error("postgres", async {
        let config = SessionConfig::from_env()?;
        let url = std::env::var("DATABASE_URL").map_err(|_| {
            "set DATABASE_URL to a PostgreSQL URL, e.g. postgres://user:password@127.0.0.1:5432/app"
        })?;
        let create = std::env::var("CREATE_SCHEMA").map_or(true, |v| v != "0");
        let store = PostgresStore::builder(&url)
            .create_schema(create)
            .build()
            .await?;
        let app = demo::router(config, store.clone(), store);
        demo::serve("postgres", "PostgreSQL", app).await
    })
    .await;
}
