//! [`AnyStore`]: any [`SessionStore`] behind one type, for picking a store at run time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use time::OffsetDateTime;

use super::SessionStore;
use crate::error::StoreError;
use crate::model::{Authenticated, Session, StorageKey, User};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`SessionStore`] with its futures boxed, so that it can be a trait object.
trait Erased: Send + Sync + 'static {
    fn find<'a>(
        &'a self,
        key: &'a StorageKey<'a>,
    ) -> BoxFuture<'a, Result<Option<Authenticated>, StoreError>>;
    fn find_now(&self, key: &StorageKey<'_>) -> Option<Result<Option<Authenticated>, StoreError>>;
    fn find_fresh<'a>(
        &'a self,
        key: &'a StorageKey<'a>,
    ) -> BoxFuture<'a, Result<Option<Authenticated>, StoreError>>;
    fn find_many<'a>(
        &'a self,
        keys: &'a [StorageKey<'a>],
    ) -> BoxFuture<'a, Result<Vec<Option<Authenticated>>, StoreError>>;
    fn create<'a>(
        &'a self,
        session: &'a Session,
        user: &'a User,
    ) -> BoxFuture<'a, Result<Session, StoreError>>;
    fn extend<'a>(
        &'a self,
        key: &'a StorageKey<'a>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<Session>, StoreError>>;
    fn delete<'a>(&'a self, key: &'a StorageKey<'a>) -> BoxFuture<'a, Result<(), StoreError>>;
    fn delete_if_expired<'a>(
        &'a self,
        key: &'a StorageKey<'a>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn delete_user_sessions<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
    fn list_user_sessions<'a>(
        &'a self,
        user_id: &'a str,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Vec<Session>, StoreError>>;
    fn purge<'a>(&'a self, key: &'a StorageKey<'a>) -> BoxFuture<'a, Result<(), StoreError>>;
    fn end_session<'a>(
        &'a self,
        key: &'a StorageKey<'a>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn end_user_sessions<'a>(
        &'a self,
        user_id: &'a str,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
    fn delete_expired(&self, now: OffsetDateTime) -> BoxFuture<'_, Result<u64, StoreError>>;
    fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;
    fn find_user<'a>(&'a self, user_id: &'a str)
        -> BoxFuture<'a, Result<Option<User>, StoreError>>;
    fn lift_ban<'a>(
        &'a self,
        user_id: &'a str,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn remove_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn session_lifetime(&self, expires_in: time::Duration);
    fn debug(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result;
}

/// Holds a store; `Debug` is optional for stores, so it is asked for separately.
struct Holder<S>(S);

impl<S: SessionStore> Erased for Holder<S> {
    fn find<'a>(
        &'a self,
        key: &'a StorageKey<'a>,
    ) -> BoxFuture<'a, Result<Option<Authenticated>, StoreError>> {
        Box::pin(self.0.find(key))
    }
    fn find_now(&self, key: &StorageKey<'_>) -> Option<Result<Option<Authenticated>, StoreError>> {
        self.0.find_now(key)
    }
    fn find_fresh<'a>(
        &'a self,
        key: &'a StorageKey<'a>,
    ) -> BoxFuture<'a, Result<Option<Authenticated>, StoreError>> {
        Box::pin(self.0.find_fresh(key))
    }
    fn find_many<'a>(
        &'a self,
        keys: &'a [StorageKey<'a>],
    ) -> BoxFuture<'a, Result<Vec<Option<Authenticated>>, StoreError>> {
        Box::pin(self.0.find_many(keys))
    }
    fn create<'a>(
        &'a self,
        session: &'a Session,
        user: &'a User,
    ) -> BoxFuture<'a, Result<Session, StoreError>> {
        Box::pin(self.0.create(session, user))
    }
    fn extend<'a>(
        &'a self,
        key: &'a StorageKey<'a>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<Session>, StoreError>> {
        Box::pin(self.0.extend(key, expires_at, now))
    }
    fn delete<'a>(&'a self, key: &'a StorageKey<'a>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.0.delete(key))
    }
    fn delete_if_expired<'a>(
        &'a self,
        key: &'a StorageKey<'a>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.0.delete_if_expired(key, now))
    }
    fn delete_user_sessions<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.0.delete_user_sessions(user_id))
    }
    fn list_user_sessions<'a>(
        &'a self,
        user_id: &'a str,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Vec<Session>, StoreError>> {
        Box::pin(self.0.list_user_sessions(user_id, now))
    }
    fn purge<'a>(&'a self, key: &'a StorageKey<'a>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.0.purge(key))
    }
    fn end_session<'a>(
        &'a self,
        key: &'a StorageKey<'a>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.0.end_session(key, now))
    }
    fn end_user_sessions<'a>(
        &'a self,
        user_id: &'a str,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.0.end_user_sessions(user_id, now))
    }
    fn delete_expired(&self, now: OffsetDateTime) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.0.delete_expired(now))
    }
    fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.0.delete_expired_batch(now, limit))
    }
    fn find_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<User>, StoreError>> {
        Box::pin(self.0.find_user(user_id))
    }
    fn lift_ban<'a>(
        &'a self,
        user_id: &'a str,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.0.lift_ban(user_id, now))
    }
    fn remove_user<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.0.remove_user(user_id))
    }
    fn session_lifetime(&self, expires_in: time::Duration) {
        self.0.session_lifetime(expires_in);
    }
    fn debug(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnyStore({})", std::any::type_name::<S>())
    }
}

/// Any [`SessionStore`], erased to one type (each call's future is boxed), for choosing the
/// store at run time. Cloning shares the store.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tower_auth_session::{AnyStore, MemoryStore, SessionConfig, SessionLayer, SqliteStore};
///
/// let store = match std::env::var("SESSIONS").as_deref() {
///     Ok("memory") => AnyStore::new(MemoryStore::new()),
///     _ => AnyStore::new(SqliteStore::connect("sqlite::memory:").await?),
/// };
/// let config = SessionConfig::builder().secret("a-private-secret-of-at-least-32-bytes!!").build()?;
/// let layer = SessionLayer::new(config, store);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AnyStore {
    inner: Arc<dyn Erased>,
}

impl AnyStore {
    /// Erases `store`.
    pub fn new<S: SessionStore>(store: S) -> Self {
        Self {
            inner: Arc::new(Holder(store)),
        }
    }
}

impl std::fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.debug(f)
    }
}

impl SessionStore for AnyStore {
    async fn find(&self, key: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        self.inner.find(key).await
    }
    fn find_now(&self, key: &StorageKey<'_>) -> Option<Result<Option<Authenticated>, StoreError>> {
        self.inner.find_now(key)
    }
    async fn find_fresh(&self, key: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        self.inner.find_fresh(key).await
    }
    async fn find_many(
        &self,
        keys: &[StorageKey<'_>],
    ) -> Result<Vec<Option<Authenticated>>, StoreError> {
        self.inner.find_many(keys).await
    }
    async fn create(&self, session: &Session, user: &User) -> Result<Session, StoreError> {
        self.inner.create(session, user).await
    }
    async fn extend(
        &self,
        key: &StorageKey<'_>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        self.inner.extend(key, expires_at, now).await
    }
    async fn delete(&self, key: &StorageKey<'_>) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn delete_if_expired(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.inner.delete_if_expired(key, now).await
    }
    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        self.inner.delete_user_sessions(user_id).await
    }
    async fn purge(&self, key: &StorageKey<'_>) -> Result<(), StoreError> {
        self.inner.purge(key).await
    }
    async fn end_session(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.inner.end_session(key, now).await
    }
    async fn end_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.inner.end_user_sessions(user_id, now).await
    }
    async fn remove_user(&self, user_id: &str) -> Result<bool, StoreError> {
        self.inner.remove_user(user_id).await
    }
    super::pass_through!();
}
