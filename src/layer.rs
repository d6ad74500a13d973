//! [`SessionLayer`]: configuration only. The work happens in [`SessionService`].

use std::sync::Arc;

use tower_layer::Layer;

use crate::config::SessionConfig;
use crate::service::SessionService;
use crate::store::SessionStore;

/// Everything a service, a response future and a sign-in handle share: built once.
#[derive(Debug)]
pub(crate) struct Shared<St> {
    pub(crate) config: Arc<SessionConfig>,
    pub(crate) store: St,
    /// Tokens whose refresh is being written right now: concurrent requests for the same
    /// session skip their own write (at most one store write per session per `updateAge`).
    pub(crate) refreshing: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// A tower [`Layer`] that authenticates requests with Better Auth–compatible session cookies.
///
/// For each request the service it builds:
///
/// 1. finds the session cookie and verifies its HMAC (no store call for anything malformed);
/// 2. reads the session and its user from the store, once;
/// 3. rejects expired sessions (deleting the row and clearing the cookies), and extends sessions
///    whose last refresh is `updateAge` old, re-sending the cookie with a fresh `Max-Age`;
/// 4. inserts one [`AuthContext`](crate::AuthContext) into the request extensions: the
///    session and user when signed in, and a [`SessionManager`](crate::SessionManager).
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
pub struct SessionLayer<St> {
    shared: Arc<Shared<St>>,
}

impl<St> Clone for SessionLayer<St> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<St: std::fmt::Debug> std::fmt::Debug for SessionLayer<St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("config", &self.shared.config)
            .field("store", &self.shared.store)
            .finish()
    }
}

impl<St: SessionStore> SessionLayer<St> {
    /// A layer over `store` with `config`.
    pub fn new(config: SessionConfig, store: St) -> Self {
        Self {
            shared: Arc::new(Shared {
                config: Arc::new(config),
                store,
                refreshing: std::sync::Mutex::default(),
            }),
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
    pub fn manager(&self) -> crate::SessionManager {
        crate::SessionManager::new(self.shared.clone())
    }
}

impl<S, St> Layer<S> for SessionLayer<St> {
    type Service = SessionService<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, Arc::clone(&self.shared))
    }
}
