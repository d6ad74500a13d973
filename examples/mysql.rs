//! The quickstart's routes with sessions and users in MySQL or MariaDB.
//!
//! ```sh
//! export BETTER_AUTH_SECRET="$(head -c 32 /dev/urandom | base64)"
//! DATABASE_URL=mysql://user:password@127.0.0.1:3306/app cargo run --example mysql --features mysql
//! ```
//!
//! Environment: `BETTER_AUTH_SECRET` (required), `DATABASE_URL` (required), `PORT` (default
//! 3000), `CREATE_SCHEMA` (`0` to only verify an existing Better Auth schema; default creates the
//! tables, as Better Auth's migration would, when absent), `ID_FORMAT` (`uuid` when Better Auth
//! runs with `generateId: "uuid"`, whose MySQL ids are `varchar(36)` like its default ones;
//! serial ids are recognised from the column type), `RUST_LOG` (default `warn`).
//!
//! TLS comes from the URL: `?ssl-mode=verify_identity&ssl-ca=/path/ca.pem` for a managed
//! database with a private CA.

#[path = "common/demo.rs"]
mod demo;

use tower_auth_session::store::{IdFormat, SqlSchema};
use tower_auth_session::{MySqlStore, SessionConfig};

#[tokio::main]
async fn main() {
    demo::exit_on_error("mysql", async {
        let config = SessionConfig::from_env()?;
        let url = std::env::var("DATABASE_URL").map_err(|_| {
            "set DATABASE_URL to a MySQL URL, e.g. mysql://user:password@127.0.0.1:3306/app"
        })?;
        let create = std::env::var("CREATE_SCHEMA").map_or(true, |v| v != "0");
        let ids = match std::env::var("ID_FORMAT").as_deref() {
            Ok("uuid") => IdFormat::Uuid,
            Ok("serial") => IdFormat::Serial,
            Ok("text") | Err(_) => IdFormat::Text,
            Ok(other) => return Err(format!("ID_FORMAT={other}: use text, uuid or serial").into()),
        };
        let store = MySqlStore::builder(&url)
            .schema(SqlSchema::better_auth().ids(ids))
            .create_schema(create)
            .build()
            .await?;
        let app = demo::router(config, store.clone(), store);
        demo::serve("mysql", "MySQL", app).await
    })
    .await;
}
