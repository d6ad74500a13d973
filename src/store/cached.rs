//! [`CachedStore`]: a bounded in-process cache in front of any store, invalidated at once by
//! revocations made through this crate, and across instances through Redis pub/sub.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::SessionStore;
use crate::error::StoreError;
use crate::model::{Authenticated, Session, StorageKey, User};

/// What the cache remembers for a token: the session, or that the store has none.
#[derive(Clone, Debug)]
enum Entry {
    Found(Authenticated),
    Missing,
}

/// A read-through cache in front of `S`, so that a hit costs no store round trip.
///
/// * **Bounded**: at most `max_entries` tokens (default 100 000), each kept for `ttl` (default
///   30 s, far below Better Auth's 1-day `updateAge`).
/// * **Negative entries**: a token the store does not know is remembered as missing (for
///   `negative_ttl`, default 5 s), so a flood of garbage-but-signed cookies cannot hammer the
///   database. (Unsigned garbage never reaches any store.)
/// * **Revocation**: deleting a session or all of a user's sessions through this store drops the
///   local entries at once, and, with `with_redis_bus` (feature `redis`), publishes
///   the invalidation so every other instance drops them too, before the next request.
/// * **Staleness bound**: when the bus is down (or a revocation bypasses this crate, such as a
///   Better Auth server deleting the row), an instance may serve a revoked session for at most
///   `ttl`. Choose `ttl` accordingly; 30 s is the default.
///
/// Refreshes go to the inner store (conditional, as always) and update the cached entry.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tower_auth_session::store::CachedStore;
/// use tower_auth_session::{MemoryStore, SessionStore, StorageKey};
///
/// let store = CachedStore::builder(MemoryStore::new()).ttl(Duration::from_secs(10)).build();
/// assert!(store.find(&StorageKey::new("unknown")).await?.is_none()); // cached as missing for 5 s
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CachedStore<S> {
    inner: S,
    cache: Sessions,
    negative_ttl: Duration,
    bus: Option<Bus>,
    applied: Arc<watch::Sender<u64>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for CachedStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("inner", &self.inner)
            .field("entries", &self.cache.entry_count())
            .field("bus", &self.bus.is_some())
            .finish()
    }
}

/// The cache: tokens to entries, hashed with foldhash (seeded per cache), several times cheaper
/// than the default SipHash on 32-character tokens.
type Sessions = Cache<String, Entry, foldhash::fast::RandomState>;

/// Builds a [`CachedStore`].
#[must_use]
#[derive(Debug)]
pub struct CachedStoreBuilder<S> {
    inner: S,
    max_entries: u64,
    ttl: Duration,
    negative_ttl: Duration,
}

impl<S: SessionStore> CachedStoreBuilder<S> {
    /// The most tokens kept. Default: 100 000.
    pub fn max_entries(mut self, max: u64) -> Self {
        self.max_entries = max;
        self
    }

    /// How long a found session is served from memory, the staleness bound for revocations
    /// that do not reach this instance. Default: 30 s.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long an unknown token is remembered as missing. Default: 5 s.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Builds the cache (no cross-instance bus).
    pub fn build(self) -> CachedStore<S> {
        let negative = self.negative_ttl;
        let cache = Cache::builder()
            .max_capacity(self.max_entries)
            .time_to_live(self.ttl)
            .expire_after(NegativeExpiry(negative))
            .support_invalidation_closures()
            .build_with_hasher(foldhash::fast::RandomState::default());
        CachedStore {
            inner: self.inner,
            cache,
            negative_ttl: negative,
            bus: None,
            applied: Arc::new(watch::channel(0).0),
        }
    }
}

/// Missing entries live `negative_ttl`; found ones the cache-wide `ttl`.
struct NegativeExpiry(Duration);

impl moka::Expiry<String, Entry> for NegativeExpiry {
    fn expire_after_create(
        &self,
        _: &String,
        value: &Entry,
        _: std::time::Instant,
    ) -> Option<Duration> {
        matches!(value, Entry::Missing).then_some(self.0)
    }
}

/// Without the `redis` feature there is no bus.
#[cfg(not(feature = "redis"))]
#[derive(Clone)]
struct Bus;

/// The Redis pub/sub channel invalidations travel on.
#[cfg(feature = "redis")]
#[derive(Clone)]
struct Bus {
    publisher: super::redis::link::Link,
    channel: Arc<str>,
}

impl<S: SessionStore> CachedStore<S> {
    /// A builder caching `inner`.
    pub fn builder(inner: S) -> CachedStoreBuilder<S> {
        CachedStoreBuilder {
            inner,
            max_entries: 100_000,
            ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The number of cached tokens (approximate).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// A counter of invalidations received from other instances over the bus, for tests and
    /// dashboards.
    pub fn bus_invalidations(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Publishes and subscribes to invalidations on Redis pub/sub `channel` (feature `redis`) (for example
    /// `"tower-auth-session:invalidate"`), so a revocation on one instance drops the cached
    /// session on all of them. The subscriber task reconnects by itself; while it cannot, the
    /// staleness bound is the cache `ttl`. Needs a Tokio runtime.
    ///
    /// # Errors
    ///
    /// A backend error when Redis cannot be reached at start-up.
    #[cfg(feature = "redis")]
    pub async fn with_redis_bus(mut self, url: &str, channel: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::backend("bus", e))?;
        let publisher = super::redis::link::Link::connect(
            super::redis::link::Target::Node(client.clone()),
            Duration::from_secs(2),
        )
        .await
        .map_err(|e| StoreError::backend("bus", e))?;
        let channel: Arc<str> = channel.into();
        // Subscribe before returning, so nothing published after this call is missed.
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .map_err(|e| StoreError::backend("bus", e))?;
        pubsub
            .subscribe(&*channel)
            .await
            .map_err(|e| StoreError::backend("bus", e))?;
        let cache = self.cache.clone();
        let applied = Arc::clone(&self.applied);
        let sub_channel = Arc::clone(&channel);
        tokio::spawn(async move {
            let mut pubsub = Some(pubsub);
            loop {
                let mut current = match pubsub.take() {
                    Some(p) => p,
                    None => match reconnect(&client, &sub_channel).await {
                        Some(p) => p,
                        None => {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            continue;
                        }
                    },
                };
                {
                    use futures_util::StreamExt as _;
                    let mut messages = current.on_message();
                    while let Some(message) = messages.next().await {
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        apply(&cache, &payload);
                        applied.send_modify(|n| *n += 1);
                    }
                }
                tracing::warn!("session cache bus disconnected; reconnecting (entries expire within the cache TTL meanwhile)");
                // Anything missed while disconnected may be stale for at most `ttl`; drop
                // everything to shorten that window.
                cache.invalidate_all();
            }
        });
        self.bus = Some(Bus { publisher, channel });
        Ok(self)
    }

    #[cfg_attr(not(feature = "redis"), allow(clippy::unused_async))]
    async fn publish(&self, message: String) {
        #[cfg(not(feature = "redis"))]
        let _ = message;
        #[cfg(feature = "redis")]
        if let Some(bus) = &self.bus {
            let sent: Result<i64, _> = bus
                .publisher
                .run(|mut conn| {
                    let message = &message;
                    async move {
                        redis::cmd("PUBLISH")
                            .arg(&*bus.channel)
                            .arg(message)
                            .query_async(&mut conn)
                            .await
                    }
                })
                .await;
            if let Err(error) = sent {
                tracing::warn!(%error, "could not publish a session invalidation; other instances may serve it until their cache TTL");
            }
        }
    }
}

#[cfg(feature = "redis")]
async fn reconnect(client: &redis::Client, channel: &str) -> Option<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await.ok()?;
    pubsub.subscribe(channel).await.ok()?;
    Some(pubsub)
}

/// Applies one bus message: `t:<token>` or `u:<user id>`.
#[cfg(feature = "redis")]
fn apply(cache: &Sessions, payload: &str) {
    if let Some(token) = payload.strip_prefix("t:") {
        cache.invalidate(token);
    } else if let Some(user_id) = payload.strip_prefix("u:") {
        invalidate_user(cache, user_id);
    }
}

impl<S> CachedStore<S> {
    /// Caches what the inner store answered for `token` (a miss only with negative entries on).
    fn remember(&self, token: &str, found: Option<&Authenticated>) {
        match found {
            Some(auth) => self
                .cache
                .insert(token.to_owned(), Entry::Found(auth.clone())),
            None if !self.negative_ttl.is_zero() => {
                self.cache.insert(token.to_owned(), Entry::Missing);
            }
            None => {}
        }
    }
}

fn invalidate_user(cache: &Sessions, user_id: &str) {
    let user_id = user_id.to_owned();
    let result = cache.invalidate_entries_if(
        move |_, entry| matches!(entry, Entry::Found(a) if a.session.user_id == user_id),
    );
    if result.is_err() {
        cache.invalidate_all();
    }
}

impl<S: SessionStore> SessionStore for CachedStore<S> {
    async fn find(&self, key: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        if let Some(answer) = self.find_now(key) {
            return answer;
        }
        let found = self.inner.find(key).await?;
        self.remember(key.as_str(), found.as_ref());
        Ok(found)
    }

    fn find_now(&self, key: &StorageKey<'_>) -> Option<Result<Option<Authenticated>, StoreError>> {
        if let Some(entry) = self.cache.get(key.as_str()) {
            return Some(Ok(match entry {
                Entry::Found(auth) => Some(auth),
                Entry::Missing => None,
            }));
        }
        // A miss may still be answered at once by an in-memory inner store.
        let answer = self.inner.find_now(key)?;
        if let Ok(found) = &answer {
            self.remember(key.as_str(), found.as_ref());
        }
        Some(answer)
    }

    async fn create(&self, session: &Session, user: &User) -> Result<Session, StoreError> {
        let stored = self.inner.create(session, user).await?;
        // A negative entry for this token (vanishingly unlikely) must not hide the new session.
        self.cache.invalidate(&session.token);
        Ok(stored)
    }

    async fn extend(
        &self,
        key: &StorageKey<'_>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        let updated = self.inner.extend(key, expires_at, now).await?;
        let token = key.as_str();
        match (&updated, self.cache.get(token)) {
            (Some(session), Some(Entry::Found(mut fresh))) => {
                fresh.session = Arc::new(session.clone());
                self.cache.insert(token.to_owned(), Entry::Found(fresh));
            }
            _ => self.cache.invalidate(token),
        }
        Ok(updated)
    }

    async fn delete(&self, key: &StorageKey<'_>) -> Result<(), StoreError> {
        self.inner.delete(key).await?;
        self.cache.invalidate(key.as_str());
        self.publish(format!("t:{key}")).await;
        Ok(())
    }

    async fn delete_if_expired(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.inner.delete_if_expired(key, now).await?;
        self.cache.invalidate(key.as_str());
        Ok(())
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        let n = self.inner.delete_user_sessions(user_id).await?;
        invalidate_user(&self.cache, user_id);
        self.publish(format!("u:{user_id}")).await;
        Ok(n)
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        self.inner.list_user_sessions(user_id, now).await
    }

    async fn delete_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.delete_expired(now).await
    }

    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> Result<u64, StoreError> {
        self.inner.delete_expired_batch(now, limit).await
    }

    async fn find_user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        self.inner.find_user(user_id).await
    }

    async fn lift_ban(&self, user_id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        self.inner.lift_ban(user_id, now).await
    }
}
