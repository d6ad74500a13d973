//! What the layer established about a request: the [`AuthContext`] extension every request it
//! passes on carries (with the policy's [`SessionInfo`]).

use std::sync::Arc;

use crate::manager::SessionManager;
use crate::model::{Authenticated, Session, User};
use crate::policy::SessionInfo;

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
    #[cfg(feature = "jwt")]
    jwt: Option<crate::jwt::JwtAuth>,
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
            #[cfg(feature = "jwt")]
            jwt: None,
            info,
        }
    }

    /// A request signed in (or not) by a Better Auth JWT.
    #[cfg(feature = "jwt")]
    pub(crate) fn from_jwt(manager: SessionManager, jwt: Option<crate::jwt::JwtAuth>) -> Self {
        let info = SessionInfo {
            via_bearer: jwt.is_some(),
            via_jwt: jwt.is_some(),
            ..SessionInfo::default()
        };
        Self {
            manager,
            authenticated: None,
            jwt,
            info,
        }
    }

    /// The verified Better Auth JWT that signed the request in, with its claims.
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub fn jwt(&self) -> Option<&crate::jwt::JwtAuth> {
        self.jwt.as_ref()
    }

    /// The session and user, when the request is signed in.
    pub fn authenticated(&self) -> Option<&Authenticated> {
        self.authenticated.as_ref()
    }

    /// The signed-in user, if any: the session's, or (feature `jwt`) the one a verified JWT
    /// carries.
    pub fn user(&self) -> Option<&Arc<User>> {
        let session_user = self.authenticated.as_ref().map(|a| &a.user);
        #[cfg(feature = "jwt")]
        let session_user = session_user.or_else(|| self.jwt.as_ref().map(|j| &j.user));
        session_user
    }

    /// The signed-in session, if any (none for a request signed in by a JWT).
    pub fn session(&self) -> Option<&Arc<Session>> {
        self.authenticated.as_ref().map(|a| &a.session)
    }

    /// Whether the request is signed in (by a session, or by a verified JWT).
    pub fn is_signed_in(&self) -> bool {
        self.user().is_some()
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
