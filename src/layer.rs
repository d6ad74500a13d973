//! [`SessionLayer`]: configuration only. The work happens in [`SessionService`].

use std::sync::Arc;

use tower_layer::Layer;

use crate::config::SessionConfig;
use crate::manager::SessionManager;
use crate::respond::JsonResponses;
use crate::service::{SessionService, Shared};
use crate::store::SessionStore;

/// A tower [`Layer`] that authenticates requests with Better Auth–compatible session cookies.
///
/// For each request the service it builds:
///
/// 1. finds the session cookie and verifies its HMAC (no store call for anything malformed);
/// 2. reads the session and its user from the store, once;
/// 3. rejects expired sessions (deleting the row and clearing the cookies), and extends sessions
///    whose last refresh is `updateAge` old, re-sending the cookie with a fresh `Max-Age`;
/// 4. inserts one [`AuthContext`](crate::AuthContext) into the request extensions: the
///    session and user when signed in, and a [`SessionManager`](crate::SessionManager);
/// 5. answers itself only with `503` while the store cannot be asked and `403` for an
///    untrusted origin, in the shape [`respond_with`](Self::respond_with) gives them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tower_auth_session::{MemoryStore, SessionConfig, SessionLayer};
///
/// let config = SessionConfig::builder()
///     .secret("a-private-secret-of-at-least-32-bytes!!")
///     .build()?;
/// let layer = SessionLayer::new(config, MemoryStore::new());
/// let app = axum::Router::<()>::new()
///     .route("/", axum::routing::get(|| async { "hello" }))
///     .layer(layer);
/// # let _ = app; Ok(()) }
/// ```
#[must_use]
pub struct SessionLayer<St, R = JsonResponses> {
    shared: Arc<Shared<St>>,
    respond: R,
}

impl<St, R: Clone> Clone for SessionLayer<St, R> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            respond: self.respond.clone(),
        }
    }
}

impl<St: std::fmt::Debug, R> std::fmt::Debug for SessionLayer<St, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("config", &self.shared.config)
            .field("store", &self.shared.store)
            .finish()
    }
}

impl<St: SessionStore> SessionLayer<St> {
    /// A layer over `store` with `config`, answering its own `503` and `403` in Better Auth's
    /// JSON shape ([`JsonResponses`]).
    pub fn new(config: SessionConfig, store: St) -> Self {
        Self {
            shared: Arc::new(Shared::new(config, store)),
            respond: JsonResponses,
        }
    }
}

impl<St: SessionStore, R> SessionLayer<St, R> {
    /// The same layer, answering its own `503` and `403` with `respond` (a closure
    /// `Fn(LayerRejection, &RequestHead<'_>) -> Response<B>`, or any
    /// [`RespondWith`](crate::respond::RespondWith)): an API's own error shape, or an HTML page.
    /// Default: [`JsonResponses`]. See [`crate::respond`].
    pub fn respond_with<R2>(self, respond: R2) -> SessionLayer<St, R2> {
        SessionLayer {
            shared: self.shared,
            respond,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.shared.config
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.shared.store
    }

    /// A handle for signing in and out outside of a request (background jobs, admin tools).
    pub fn manager(&self) -> SessionManager {
        self.shared.manager.clone()
    }
}

impl<S, St, R: Clone> Layer<S> for SessionLayer<St, R> {
    type Service = SessionService<S, St, R>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, Arc::clone(&self.shared), self.respond.clone())
    }
}
