//! Persistent, [Better Auth](https://www.better-auth.com)–compatible login sessions for axum,
//! hyper and any tower service, as one [`Layer`](tower_layer::Layer).
//!
//! [`SessionLayer`] reads the `Cookie` header, verifies the signed session cookie
//! (`TOKEN.SIGNATURE`, HMAC-SHA256, byte-compatible with Better Auth), resolves the token in a
//! [`SessionStore`] (memory, SQLite, PostgreSQL, Redis, …), rejects expired sessions, extends
//! live ones once `updateAge` has passed, and hands the signed-in [`User`] and [`Session`] to
//! handlers.
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
//! # How a request flows
//!
//! One way, each step in its own module:
//!
//! | step | module |
//! |---|---|
//! | the credential: the session cookie or a bearer value, verified (`TOKEN.SIGNATURE`, HMAC-SHA256), the origin check | `credential`, [`codec`], `origin` |
//! | resolution: the cookie cache (`session_data`), then the store under its deadline | `resolve`, `cookie_cache`, [`store`] |
//! | one decision, as data: every per-request rule (expiry, refresh after `updateAge`, "don't remember me") | `policy` |
//! | the store write the decision asks for (a coalesced refresh, an expired row's deletion) | `resolve` |
//! | the request extension ([`AuthContext`]) and the inner service | `service`, `context` |
//! | the cookie plan, rendered to `Set-Cookie` once, on the way out | `plan` |
//!
//! Configuration is one flat builder ([`SessionConfigBuilder`]) validated into typed parts;
//! sign-in, sign-out and revocation from Rust go through [`SessionManager`].
//!
//! Comments in the source cite "spec §N": the byte-level contract with Better Auth (cookies,
//! schema, refresh, cookie cache, secondary storage) the project keeps beside the repository,
//! checked against Better Auth's own source; the README's compatibility section summarises it.
#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client_ip;
mod clock;
pub mod codec;
mod config;
mod context;
mod cookie_cache;
mod credential;
mod error;
#[cfg(feature = "axum")]
pub mod extract;
mod fields;
mod future;
mod ids;
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub mod jwt;
mod layer;
mod manager;
pub mod metrics;
mod model;
mod multi;
mod origin;
mod plan;
mod policy;
mod resolve;
pub mod respond;
#[cfg(any(feature = "redis", feature = "jwt"))]
mod rustls_provider;
mod service;
pub mod store;
pub mod test_support;
mod time_fmt;
mod warnings;
mod wire;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    Bearer, CookieCache, CookieCacheStrategy, OutagePolicy, SameSite, SessionConfig,
    SessionConfigBuilder, BETTER_AUTH_DEFAULT_SECRET, DEFAULT_STORE_TIMEOUT, MAX_COOKIE_AGE,
    MIN_SECRET_LEN,
};
pub use context::AuthContext;
pub use error::{BoxError, ConfigError, SchemaError, SessionError, StoreError};
pub use fields::Ban;
pub use future::ResponseFuture;
pub use layer::SessionLayer;
pub use manager::{GuestRemoval, SessionManager, SetCookies, SignIn, SignedIn};
pub use model::{Authenticated, Session, StorageKey, User};
pub use policy::SessionInfo;
pub use service::SessionService;
#[cfg(feature = "cache")]
pub use store::CachedStore;
#[cfg(feature = "mysql")]
pub use store::MySqlStore;
#[cfg(feature = "postgres")]
pub use store::PostgresStore;
#[cfg(feature = "redis")]
pub use store::RedisStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::{AnyStore, MemoryStore, SessionStore};

/// The README's Rust examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
