//! An HTML app: protected pages redirect to a login page, and the layer's own answers (a store
//! outage, an untrusted origin) are HTML pages instead of JSON.
//!
//! ```sh
//! export BETTER_AUTH_SECRET="$(head -c 32 /dev/urandom | base64)"
//! cargo run --example html            # then open http://127.0.0.1:3000/dashboard
//! ```
//!
//! Environment: `BETTER_AUTH_SECRET` (required), `DATABASE_URL` (default
//! `sqlite://html-example.db`), `PORT` (default 3000), `RUST_LOG` (default `warn`).
//!
//! As in the quickstart, `POST /login` signs in whoever names an e-mail address, **with no
//! password**: a real app checks credentials first.

#[path = "common/demo.rs"]
mod demo;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, Response, StatusCode};
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use tower_auth_session::extract::{MaybeUser, Sessions};
use tower_auth_session::respond::{LayerRejection, RequestHead};
use tower_auth_session::{SessionConfig, SessionLayer, SqliteStore, User};

/// The signed-in user of a page that needs one; without one, a redirect to the login page that
/// comes back here afterwards.
struct LoggedIn(Arc<User>);

impl<S: Send + Sync> FromRequestParts<S> for LoggedIn {
    type Rejection = Redirect;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Redirect> {
        let MaybeUser(user) = MaybeUser::from_request_parts(parts, state)
            .await
            .map_err(|_| Redirect::to("/login"))?;
        user.map(LoggedIn).ok_or_else(|| {
            let next: String = url_escape(parts.uri.path());
            Redirect::to(&format!("/login?next={next}"))
        })
    }
}

/// The layer's own answers, as pages.
fn html_responses(rejection: LayerRejection, _: &RequestHead<'_>) -> Response<axum::body::Body> {
    let (status, page) = match rejection {
        LayerRejection::StoreUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "<h1>We'll be right back</h1><p>Signing in is unavailable for a moment. Please try again.</p>",
        ),
        _ => (
            StatusCode::FORBIDDEN,
            "<h1>Forbidden</h1><p>This form was sent from another site.</p>",
        ),
    };
    let mut response = (status, Html(page)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().unwrap());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, "5".parse().unwrap());
    }
    response
}

async fn home(MaybeUser(user): MaybeUser) -> Html<String> {
    Html(match user {
        Some(u) => format!(
            "<p>Signed in as {}. <a href=/dashboard>Dashboard</a></p>",
            escape(&u.email)
        ),
        None => "<p>Welcome. <a href=/dashboard>Dashboard</a> (asks you to log in)</p>".into(),
    })
}

async fn dashboard(LoggedIn(user): LoggedIn) -> Html<String> {
    Html(format!(
        "<h1>Dashboard</h1><p>Hello, {}.</p><form method=post action=/logout><button>Log out</button></form>",
        escape(&user.email)
    ))
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

async fn login_page(Query(q): Query<Next>) -> Html<String> {
    let next = escape(q.next.as_deref().unwrap_or("/dashboard"));
    Html(format!(
        "<form method=post action=/login><input type=hidden name=next value=\"{next}\"><input name=email placeholder=you@example.com><button>Log in</button></form>"
    ))
}

#[derive(Deserialize)]
struct Login {
    email: String,
    next: Option<String>,
}

async fn login(
    State(store): State<SqliteStore>,
    sessions: Sessions,
    Form(form): Form<Login>,
) -> Result<impl IntoResponse, (StatusCode, Html<&'static str>)> {
    fn failed(error: impl std::fmt::Display) -> (StatusCode, Html<&'static str>) {
        eprintln!("html: {error}");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Html("<p>Something went wrong.</p>"),
        )
    }
    let email = form.email.trim().to_lowercase();
    if !email.contains('@') {
        return Err((
            StatusCode::BAD_REQUEST,
            Html("<p>Give an e-mail address.</p>"),
        ));
    }
    let user = match store.find_user_by_email(&email).await.map_err(failed)? {
        Some(user) => user,
        None => {
            let now = sessions.manager().config().clock().now();
            store
                .insert_user(&User::new(
                    &email,
                    email.split('@').next().unwrap_or(""),
                    now,
                ))
                .await
                .map_err(failed)?
        }
    };
    let signed_in = sessions.sign_in(&user).await.map_err(failed)?;
    // Only local paths: never redirect to another site. Browsers read `\` as `/` and drop
    // tabs and newlines, so `/\evil.test` and `/<TAB>/evil.test` are other sites too.
    let next = form
        .next
        .filter(|n| {
            n.starts_with('/')
                && !n.starts_with("//")
                && !n.chars().any(|c| c == '\\' || c.is_control())
        })
        .unwrap_or_else(|| "/dashboard".to_owned());
    Ok((signed_in, Redirect::to(&next)))
}

async fn logout(sessions: Sessions) -> impl IntoResponse {
    match sessions.sign_out().await {
        Ok(cookies) => (cookies, Redirect::to("/")).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Percent-encodes a path for a query parameter.
fn url_escape(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::main]
async fn main() {
    demo::exit_on_error("html", async {
        let config = SessionConfig::from_env()?;
        let url =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://html-example.db".to_owned());
        let store = SqliteStore::connect(&url).await?;
        let app = Router::new()
            .route("/", get(home))
            .route("/dashboard", get(dashboard))
            .route("/login", get(login_page).post(login))
            .route("/logout", post(logout))
            .with_state(store.clone())
            .layer(SessionLayer::new(config, store).respond_with(html_responses));
        demo::serve("html", "SQLite, HTML pages", app).await
    })
    .await;
}
