//! Persistent, [Better Auth](https://www.better-auth.com)–compatible login sessions for axum,
//! hyper and any tower service, as one [`Layer`](tower_layer::Layer).
//!
//! [`SessionLayer`] reads the `Cookie` header, verifies the signed session cookie
//! (`TOKEN.SIGNATURE`, HMAC-SHA256, byte-compatible with Better Auth), resolves the token in a
//! [`SessionStore`] (memory, SQLite, …), rejects expired sessions, extends live ones once
//! `updateAge` has passed, and hands the signed-in [`User`] and [`Session`] to handlers.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{routing::get, Router};
//! use tower_auth_session::extract::CurrentUser;
//! use tower_auth_session::{SessionConfig, SessionLayer, SqliteStore};
//!
//! // Refuses to start without a strong BETTER_AUTH_SECRET; no fallback secret exists.
//! # std::env::set_var("BETTER_AUTH_SECRET", "a-private-secret-of-at-least-32-bytes!!");
//! let config = SessionConfig::from_env()?;
//! // Creates Better Auth's tables if absent, or names the missing column if they differ.
//! let store = SqliteStore::connect("sqlite::memory:").await?;
//!
//! let app: Router = Router::new()
//!     .route("/me", get(|CurrentUser(user): CurrentUser| async move { user.email.clone() }))
//!     .layer(SessionLayer::new(config, store));
//! # let _ = app; Ok(()) }
//! ```
//!
//! The data flows one way: header → [`codec`] → [`store`] → [`policy`] (expiry and refresh) →
//! request extension ([`AuthContext`]) → response cookies.
#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
pub mod codec;
mod config;
pub mod cookie_cache;
mod error;
#[cfg(feature = "axum")]
pub mod extract;
mod future;
mod handle;
mod layer;
mod model;
mod origin;
pub mod policy;
mod service;
pub mod store;
pub mod time_fmt;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    Bearer, OutagePolicy, SameSite, SessionConfig, SessionConfigBuilder,
    BETTER_AUTH_DEFAULT_SECRET, DEFAULT_STORE_TIMEOUT, MAX_COOKIE_AGE, MIN_SECRET_LEN,
};
pub use cookie_cache::{CookieCache, CookieCacheStrategy};
pub use error::{BoxError, ConfigError, SchemaError, SessionError, StoreError};
pub use future::ResponseFuture;
pub use handle::{SessionManager, SetCookies, SignIn, SignedIn};
pub use layer::SessionLayer;
pub use model::{AuthContext, Authenticated, Session, SessionInfo, User};
pub use service::SessionService;
#[cfg(feature = "postgres")]
pub use store::PostgresStore;
#[cfg(feature = "redis")]
pub use store::RedisStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::{MemoryStore, SessionStore};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use store::{SchemaMode, SqlSchema};

/// The README's Rust examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
