//! The demo routes shared by the examples: `POST /sign-in` (a demo with no password),
//! `GET /me`, `POST /sign-out` and `GET /`.
#![allow(dead_code)]

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tower_auth_session::extract::{CurrentSession, MaybeUser, Sessions};
use tower_auth_session::{
    SessionConfig, SessionError, SessionLayer, SessionStore, StoreError, User,
};

/// Where the demo finds and creates users (Better Auth's `user` table).
pub trait Directory: Clone + Send + Sync + 'static {
    /// The user with this e-mail address.
    fn find_user_by_email(
        &self,
        email: &str,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;
    /// Inserts a user and returns it as stored (the database may assign its id).
    fn insert_user(&self, user: &User) -> impl Future<Output = Result<User, StoreError>> + Send;
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
impl<D: tower_auth_session::store::Dialect> Directory for tower_auth_session::store::SqlStore<D> {
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        Self::find_user_by_email(self, email).await
    }
    async fn insert_user(&self, user: &User) -> Result<User, StoreError> {
        Self::insert_user(self, user).await
    }
}

/// The demo app: users from `directory`, sessions in `store`.
pub fn router<D: Directory, St: SessionStore>(
    config: SessionConfig,
    directory: D,
    store: St,
) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/me", get(me))
        .route("/sign-in", post(sign_in::<D>))
        .route("/sign-out", post(sign_out))
        .with_state(directory)
        .layer(SessionLayer::new(config, store))
}

/// Serves `app` on `127.0.0.1:$PORT` (default 3000) until Ctrl-C, printing
/// `<name> listening on http://127.0.0.1:PORT (<what>)`.
pub async fn serve(name: &str, what: &str, app: Router) -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("PORT={p:?} is not a port number"))?,
        Err(_) => 3000,
    };
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    println!(
        "{name} listening on http://{} ({what})",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// Logs to stderr at the level `RUST_LOG` names (`warn` when unset), so the layer's warnings
/// and rejection reasons are visible (`RUST_LOG=tower_auth_session=debug` shows every reason).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Installs logging, runs `main`, and prints its error and exits with status 1 on failure.
pub async fn exit_on_error(
    name: &str,
    main: impl Future<Output = Result<(), Box<dyn std::error::Error>>>,
) {
    init_logging();
    if let Err(error) = main.await {
        eprintln!("{name}: {error}");
        std::process::exit(1);
    }
}

#[derive(Deserialize)]
/// The body of `POST /sign-in`.
pub struct SignInBody {
    pub email: String,
    pub name: Option<String>,
    #[serde(default = "yes")]
    pub remember_me: bool,
}

fn yes() -> bool {
    true
}

pub async fn home(MaybeUser(user): MaybeUser) -> Html<String> {
    Html(match user {
        Some(u) => format!(
            "<p>Hello, {}! You are signed in as {}. <form method=post action=/sign-out><button>Sign out</button></form></p>\n",
            escape(&u.name),
            escape(&u.email)
        ),
        None => "<p>You are not signed in. Sign in with:<br><code>curl -c jar -H 'content-type: application/json' -d '{\"email\":\"you@example.com\"}' http://127.0.0.1:3000/sign-in</code></p>\n".to_owned(),
    })
}

pub async fn me(CurrentSession(auth): CurrentSession) -> Json<serde_json::Value> {
    Json(json!({
        "id": auth.user.id,
        "email": auth.user.email,
        "name": auth.user.name,
        "expiresAt": expires_at(&auth.session),
    }))
}

pub async fn sign_in<D: Directory>(
    State(store): State<D>,
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
            store.insert_user(&user).await.map_err(internal)?
        }
    };
    let signed = match sessions.sign_in_with(&user, body.remember_me).await {
        Ok(signed) => signed,
        // Better Auth's answer to a banned user (the admin plugin): 403 BANNED_USER.
        Err(error @ SessionError::Banned(_)) => {
            return Err((
                error.status(),
                Json(json!({
                    "code": error.code(),
                    "message": SessionError::BANNED_USER_MESSAGE,
                })),
            ))
        }
        // Two-factor users: this demo has no second factor to verify.
        Err(error @ SessionError::SecondFactorRequired) => {
            return Err((
                error.status(),
                Json(json!({ "message": error.to_string() })),
            ))
        }
        Err(error) => return Err(internal(error)),
    };
    let expires_at = expires_at(&signed.session);
    Ok((
        signed,
        Json(
            json!({ "id": user.id, "email": user.email, "name": user.name, "expiresAt": expires_at }),
        ),
    ))
}

pub async fn sign_out(
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
    eprintln!("demo: {error}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "code": "INTERNAL", "message": "something went wrong; see the server log" })),
    )
}

/// The session's expiry as Better Auth writes it (`toISOString()`): sessions serialize their
/// dates that way.
fn expires_at(session: &tower_auth_session::Session) -> serde_json::Value {
    serde_json::to_value(session)
        .map(|v| v["expiresAt"].clone())
        .unwrap_or_default()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
