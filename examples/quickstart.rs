//! The README's first command: an axum app with persistent, Better Auth–compatible sessions on
//! the embedded SQLite store.
//!
//! ```sh
//! export BETTER_AUTH_SECRET="$(head -c 32 /dev/urandom | base64)"
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

use std::net::{Ipv4Addr, SocketAddr};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tower_auth_session::extract::{CurrentSession, MaybeUser, Sessions};
use tower_auth_session::time_fmt::to_iso;
use tower_auth_session::{SessionConfig, SessionLayer, SqliteStore, User};

#[derive(Deserialize)]
struct SignInBody {
    email: String,
    name: Option<String>,
    #[serde(default = "yes")]
    remember_me: bool,
}

fn yes() -> bool {
    true
}

async fn home(MaybeUser(user): MaybeUser) -> Html<String> {
    Html(match user {
        Some(u) => format!(
            "<p>Hello, {}! You are signed in as {}. <form method=post action=/sign-out><button>Sign out</button></form></p>\n",
            escape(&u.name),
            escape(&u.email)
        ),
        None => "<p>You are not signed in. Sign in with:<br><code>curl -c jar -H 'content-type: application/json' -d '{\"email\":\"you@example.com\"}' http://127.0.0.1:3000/sign-in</code></p>\n".to_owned(),
    })
}

async fn me(CurrentSession(auth): CurrentSession) -> Json<serde_json::Value> {
    Json(json!({
        "id": auth.user.id,
        "email": auth.user.email,
        "name": auth.user.name,
        "expiresAt": to_iso(auth.session.expires_at),
    }))
}

async fn sign_in(
    State(store): State<SqliteStore>,
    sessions: Sessions,
    Json(body): Json<SignInBody>,
) -> Result<impl IntoResponse, (StatusCode, Json<serde_json::Value>)> {
    let email = body.email.trim().to_lowercase();
    if email.is_empty() || !email.contains('@') {
        return Err(bad_request(
            "INVALID_EMAIL",
            "give an e-mail address, e.g. {\"email\":\"you@example.com\"}",
        ));
    }
    let user = match store.find_user_by_email(&email).await.map_err(internal)? {
        Some(user) => user,
        None => {
            let name = body
                .name
                .unwrap_or_else(|| email.split('@').next().unwrap_or("").to_owned());
            let user = User::new(&email, &name, sessions.manager().config().clock().now());
            store.insert_user(&user).await.map_err(internal)?;
            user
        }
    };
    let signed = sessions
        .sign_in_with(&user, body.remember_me)
        .await
        .map_err(internal)?;
    let expires_at = to_iso(signed.session.expires_at);
    Ok((
        signed,
        Json(
            json!({ "id": user.id, "email": user.email, "name": user.name, "expiresAt": expires_at }),
        ),
    ))
}

async fn sign_out(
    sessions: Sessions,
) -> Result<impl IntoResponse, (StatusCode, Json<serde_json::Value>)> {
    let cookies = sessions.sign_out().await.map_err(internal)?;
    Ok((cookies, Json(json!({ "success": true }))))
}

fn bad_request(code: &str, message: &str) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "code": code, "message": message })),
    )
}

fn internal(error: impl std::fmt::Display) -> (StatusCode, Json<serde_json::Value>) {
    eprintln!("quickstart: {error}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "code": "INTERNAL", "message": "something went wrong; see the server log" })),
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("quickstart: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Refuses to start without a strong secret: there is no fallback.
    let config = SessionConfig::from_env()?;
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://quickstart.db".to_owned());
    let store = SqliteStore::connect(&url).await?;
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("PORT={p:?} is not a port number"))?,
        Err(_) => 3000,
    };

    let app = Router::new()
        .route("/", get(home))
        .route("/me", get(me))
        .route("/sign-in", post(sign_in))
        .route("/sign-out", post(sign_out))
        .with_state(store.clone())
        .layer(SessionLayer::new(config, store));

    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    println!(
        "quickstart listening on http://{} (database {url})",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
