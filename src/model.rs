//! The session and user records, shaped like Better Auth's `session` and `user` rows.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::handle::SessionManager;
use crate::time_fmt;

/// One row of Better Auth's `session` table (spec §4.1).
///
/// `token` is what the cookie carries; `id` is an unrelated primary key. Since Better Auth 1.0 the
/// two are separate, and a store that looks sessions up by `id` finds nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Primary key, 32 alphanumeric characters when this crate creates it.
    pub id: String,
    /// The secret bearer token the session cookie carries (`TOKEN.SIGNATURE`).
    pub token: String,
    /// The owner, `user.id`.
    pub user_id: String,
    /// When the session stops being valid; extended by refreshes.
    #[serde(with = "time_fmt::iso_ms")]
    pub expires_at: OffsetDateTime,
    /// When the session was created (sign-in time; never changes).
    #[serde(with = "time_fmt::iso_ms")]
    pub created_at: OffsetDateTime,
    /// When the row was last written.
    #[serde(with = "time_fmt::iso_ms")]
    pub updated_at: OffsetDateTime,
    /// Client IP address at sign-in, when known. Better Auth writes `""` when unknown.
    #[serde(default)]
    pub ip_address: Option<String>,
    /// Client `User-Agent` at sign-in, when known. Better Auth writes `""` when unknown.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Columns beyond Better Auth's core schema (plugins such as `impersonatedBy` or
    /// `activeOrganizationId`), by column name.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One row of Better Auth's `user` table (spec §4.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Primary key.
    pub id: String,
    /// Display name (required by Better Auth; may be empty).
    pub name: String,
    /// E-mail address, stored lower-cased by Better Auth.
    pub email: String,
    /// Whether the address was verified.
    pub email_verified: bool,
    /// Avatar URL.
    #[serde(default)]
    pub image: Option<String>,
    /// When the user was created.
    #[serde(with = "time_fmt::iso_ms")]
    pub created_at: OffsetDateTime,
    /// When the user was last updated.
    #[serde(with = "time_fmt::iso_ms")]
    pub updated_at: OffsetDateTime,
    /// Columns beyond Better Auth's core schema (for example the admin plugin's `role` and
    /// `banned`), by column name.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl User {
    /// A new user with a fresh 32-character id, `created_at = updated_at = now`, the e-mail
    /// lower-cased as Better Auth stores it, and no image.
    pub fn new(email: &str, name: &str, now: OffsetDateTime) -> Self {
        let now = time_fmt::truncate_ms(now);
        Self {
            id: crate::codec::generate_id(32),
            name: name.to_owned(),
            email: email.to_lowercase(),
            email_verified: false,
            image: None,
            created_at: now,
            updated_at: now,
            extra: Map::new(),
        }
    }
}

/// A signed-in session and its user. Both are shared (`Arc`), so passing this around or caching
/// it never copies the rows; fields read through the `Arc` as usual (`auth.user.email`).
///
/// For a request, [`AuthContext::authenticated`] gives it; axum handlers use the extractors in
/// [`extract`](crate::extract).
#[derive(Clone, Debug, PartialEq)]
pub struct Authenticated {
    /// The session row, after any refresh this request caused.
    pub session: Arc<Session>,
    /// The session's user.
    pub user: Arc<User>,
}

impl Authenticated {
    /// Wraps a session and its user.
    pub fn new(session: Session, user: User) -> Self {
        Self {
            session: Arc::new(session),
            user: Arc::new(user),
        }
    }

    /// Whether the session is "fresh": created less than `fresh_age` ago, as Better Auth's
    /// `freshSessionMiddleware` requires for sensitive routes. A zero `fresh_age` disables the
    /// check (always fresh).
    pub fn is_fresh(&self, now: OffsetDateTime, fresh_age: time::Duration) -> bool {
        fresh_age.is_zero() || now - self.session.created_at < fresh_age
    }
}

/// How the layer treated an authenticated request: [`AuthContext::info`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// In read-only mode: the session is due for a refresh that this service did not perform
    /// (Better Auth's `needsRefresh` with `deferSessionRefresh`); ask the Better Auth server to
    /// refresh it.
    pub needs_refresh: bool,
    /// The credential came from `Authorization: Bearer`, not the cookie.
    pub via_bearer: bool,
    /// This request extended the session (and the response re-sends the cookie).
    pub refreshed: bool,
    /// The session came from a valid cookie-cache cookie, without a store read.
    pub from_cache: bool,
}

/// What [`SessionLayer`](crate::SessionLayer) established about a request: inserted into the
/// extensions of every request it passes on, signed in or not.
///
/// It is the layer's only request extension (one allocation per request). Plain tower or hyper
/// services read it with `request.extensions().get::<AuthContext>()`; axum handlers use the
/// extractors in [`extract`](crate::extract), which read it for them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_auth_session::{AuthContext, MemoryStore, SessionConfig, SessionLayer};
///
/// let config = SessionConfig::builder().secret("a-private-secret-of-at-least-32-bytes!!").build()?;
/// let service = SessionLayer::new(config, MemoryStore::new()).layer(service_fn(
///     |req: http::Request<String>| async move {
///         let ctx = req.extensions().get::<AuthContext>().expect("the layer is installed");
///         let who = ctx.user().map_or("anonymous".to_owned(), |u| u.email.clone());
///         Ok::<_, std::convert::Infallible>(http::Response::new(who))
///     },
/// ));
/// let response = service.oneshot(http::Request::new(String::new())).await?;
/// assert_eq!(response.body(), "anonymous");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct AuthContext {
    manager: SessionManager,
    authenticated: Option<Authenticated>,
    info: SessionInfo,
}

impl AuthContext {
    pub(crate) fn new(
        manager: SessionManager,
        authenticated: Option<Authenticated>,
        info: SessionInfo,
    ) -> Self {
        Self {
            manager,
            authenticated,
            info,
        }
    }

    /// The session and user, when the request is signed in.
    pub fn authenticated(&self) -> Option<&Authenticated> {
        self.authenticated.as_ref()
    }

    /// The signed-in user, if any.
    pub fn user(&self) -> Option<&Arc<User>> {
        self.authenticated.as_ref().map(|a| &a.user)
    }

    /// The signed-in session, if any.
    pub fn session(&self) -> Option<&Arc<Session>> {
        self.authenticated.as_ref().map(|a| &a.session)
    }

    /// Whether the request is signed in.
    pub fn is_signed_in(&self) -> bool {
        self.authenticated.is_some()
    }

    /// How the layer treated the request (all `false` when signed out).
    pub fn info(&self) -> SessionInfo {
        self.info
    }

    /// The layer's manager, to sign in or out, revoke or list sessions from this request.
    pub fn manager(&self) -> &SessionManager {
        &self.manager
    }
}
