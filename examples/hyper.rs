//! The same layer in front of a plain hyper 1.x service, with no axum: handlers read the
//! session from the request extensions and sign in through the `SessionManager` there.
//!
//! ```sh
//! export BETTER_AUTH_SECRET="$(head -c 32 /dev/urandom | base64)"
//! cargo run --example hyper
//! curl -c jar -d 'alice@example.com' http://127.0.0.1:3000/sign-in
//! curl -b jar http://127.0.0.1:3000/me
//! ```
//!
//! Environment: `BETTER_AUTH_SECRET` (required), `PORT` (default 3000), `DATABASE_URL`
//! (default `sqlite://hyper-example.db`).

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use tower_auth_session::{AuthContext, SessionConfig, SessionLayer, SignIn, SqliteStore, User};

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn handle(
    store: SqliteStore,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // The layer inserts an `AuthContext` into every request: a manager, and the session and
    // user when signed in.
    let Some(context) = req.extensions().get::<AuthContext>().cloned() else {
        return Ok(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SessionLayer is not installed",
        ));
    };
    let manager = context.manager();
    let current = context.authenticated();
    let route = (req.method().clone(), req.uri().path().to_owned());
    let options = SignIn::from_headers(req.headers(), manager.config());
    Ok(match (route.0, route.1.as_str()) {
        (Method::GET, "/me") => match current {
            Some(auth) => text(
                StatusCode::OK,
                format!("{} ({})\n", auth.user.email, auth.user.id),
            ),
            None => text(StatusCode::UNAUTHORIZED, "sign in first\n"),
        },
        (Method::POST, "/sign-in") => {
            // An e-mail address: a bounded read (hyper sets no limit of its own).
            let body = match Limited::new(req.into_body(), 1024).collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => {
                    return Ok(text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "send an e-mail address as the body\n",
                    ))
                }
            };
            let email = String::from_utf8_lossy(&body).trim().to_lowercase();
            if !email.contains('@') {
                return Ok(text(
                    StatusCode::BAD_REQUEST,
                    "send an e-mail address as the body\n",
                ));
            }
            let user = match store.find_user_by_email(&email).await {
                Ok(Some(user)) => user,
                Ok(None) => {
                    let user = User::new(
                        &email,
                        email.split('@').next().unwrap_or(""),
                        manager.config().clock().now(),
                    );
                    if store.insert_user(&user).await.is_err() {
                        return Ok(text(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "could not create the user\n",
                        ));
                    }
                    user
                }
                Err(_) => return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, "store error\n")),
            };
            match manager.sign_in(&user, options).await {
                Ok(signed) => {
                    let mut response =
                        text(StatusCode::OK, format!("signed in as {}\n", user.email));
                    signed.cookies.apply(response.headers_mut());
                    response
                }
                Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "could not sign in\n"),
            }
        }
        (Method::POST, "/sign-out") => {
            let cleared = match current {
                Some(auth) => manager.sign_out_session(&auth.session).await,
                None => Ok(manager.clear_cookies()),
            };
            match cleared {
                Ok(cookies) => {
                    let mut response = text(StatusCode::OK, "signed out\n");
                    cookies.apply(response.headers_mut());
                    response
                }
                Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "could not sign out\n"),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "try GET /me, POST /sign-in, POST /sign-out\n",
        ),
    })
}

#[tokio::main]
async fn main() {
    // The layer's warnings and rejection reasons, at the level RUST_LOG names (default warn).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    if let Err(error) = run().await {
        eprintln!("hyper: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = SessionConfig::from_env()?;
    let url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://hyper-example.db".to_owned());
    let store = SqliteStore::connect(&url).await?;
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("PORT={p:?} is not a port number"))?,
        Err(_) => 3000,
    };
    let handler_store = store.clone();
    let service = ServiceBuilder::new()
        .layer(SessionLayer::new(config, store))
        .service_fn(move |req| handle(handler_store.clone(), req));

    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    println!(
        "hyper listening on http://{} (database {url})",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
