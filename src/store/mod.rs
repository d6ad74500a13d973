//! Where sessions live: the [`SessionStore`] trait and its implementations.
//!
//! # Why a generic trait rather than `dyn`
//!
//! The trait's methods return `impl Future + Send` (return-position `impl Trait` in traits), so
//! the layer is generic over its store and the store's futures are polled in place, never boxed
//! twice on the request path. The price is that the trait is not object-safe: to pick a store at
//! run time, wrap it in an [`AnyStore`], the erased handle that
//! [`SessionManager`](crate::SessionManager) also uses.
//!
//! # Contract
//!
//! Every store keeps Better Auth's semantics (spec §4, §5, §7):
//!
//! * sessions are found by **`token`**, never by `id`: the methods take the session's
//!   [`StorageKey`] (the token, or its hash when tokens are hashed at rest);
//! * [`find`](SessionStore::find) returns the session together with its user, and `None` when
//!   either is missing (a session whose user was deleted never authenticates);
//! * [`extend`](SessionStore::extend) is a narrow, conditional write of `expiresAt` and
//!   `updatedAt`: it only moves `expiresAt` forward and only on a row that is still live, so it
//!   can never resurrect a session deleted by a concurrent sign-out, nor shorten one;
//! * `list_user_sessions` returns sessions with `expiresAt > now`, oldest expiry first.
//!
//! The crate's test-suite runs one conformance suite against every store.

use std::future::Future;

use time::OffsetDateTime;

use crate::error::StoreError;
use crate::model::{Authenticated, Session, StorageKey, User};

/// The [`SessionStore`] methods a store that wraps another (`AnyStore`, `CachedStore`) passes
/// straight to `self.inner`: listing, sweeping expired rows, and the user's row.
macro_rules! pass_through {
    () => {
        async fn list_user_sessions(
            &self,
            user_id: &str,
            now: time::OffsetDateTime,
        ) -> Result<Vec<crate::model::Session>, crate::error::StoreError> {
            self.inner.list_user_sessions(user_id, now).await
        }
        async fn delete_expired(
            &self,
            now: time::OffsetDateTime,
        ) -> Result<u64, crate::error::StoreError> {
            self.inner.delete_expired(now).await
        }
        async fn delete_expired_batch(
            &self,
            now: time::OffsetDateTime,
            limit: u64,
        ) -> Result<u64, crate::error::StoreError> {
            self.inner.delete_expired_batch(now, limit).await
        }
        async fn find_user(
            &self,
            user_id: &str,
        ) -> Result<Option<crate::model::User>, crate::error::StoreError> {
            self.inner.find_user(user_id).await
        }
        async fn lift_ban(
            &self,
            user_id: &str,
            now: time::OffsetDateTime,
        ) -> Result<(), crate::error::StoreError> {
            self.inner.lift_ban(user_id, now).await
        }
        fn session_lifetime(&self, expires_in: time::Duration) {
            self.inner.session_lifetime(expires_in);
        }
    };
}
use pass_through;

mod any;
pub use any::AnyStore;

mod key;

mod memory;
pub use memory::MemoryStore;

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod sql;
#[cfg(all(
    feature = "jwt",
    any(feature = "sqlite", feature = "postgres", feature = "mysql")
))]
pub use sql::JwksTable;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use sql::{
    DateFormat, Dialect, FieldType, IdFormat, SessionColumn, SqlSchema, SqlStore, UserColumn,
};
#[cfg(feature = "mysql")]
pub use sql::{MySqlDialect, MySqlStore, MySqlStoreBuilder};
#[cfg(feature = "postgres")]
pub use sql::{PostgresDialect, PostgresStore, PostgresStoreBuilder, DEFAULT_ACQUIRE_TIMEOUT};
#[cfg(feature = "sqlite")]
pub use sql::{SqliteDialect, SqliteStore, SqliteStoreBuilder};

#[cfg(any(feature = "postgres", feature = "mysql", feature = "redis"))]
mod tls;

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use self::redis::{RedisStore, RedisStoreBuilder, RedisWithDatabase};

#[cfg(feature = "cache")]
mod cached;
#[cfg(feature = "cache")]
pub use cached::{CachedStore, CachedStoreBuilder};

#[cfg(feature = "cache")]
pub mod changes;
#[cfg(all(feature = "cache", feature = "mysql"))]
pub use changes::MySqlChangesBuilder;
#[cfg(all(feature = "cache", feature = "postgres"))]
pub use changes::PostgresChangesBuilder;
#[cfg(all(feature = "cache", feature = "redis"))]
pub use changes::RedisChangesBuilder;
#[cfg(feature = "cache")]
pub use changes::SessionChanges;
#[cfg(all(feature = "cache", feature = "sqlite"))]
pub use changes::SqliteChangesBuilder;

/// What a SQL store does at start-up when Better Auth's tables are absent.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaMode {
    /// Create Better Auth's `user` and `session` tables when they do not exist, then verify.
    CreateIfMissing,
    /// Only verify: a missing table or column is an error naming it. For databases whose
    /// schema Better Auth's migrations own.
    VerifyOnly,
}

/// A place where sessions and users are kept. See the [module docs](self) for the contract.
pub trait SessionStore: Send + Sync + 'static {
    /// The session whose `token` column holds `key`, with its user; `None` when either is
    /// absent. Expired sessions are returned too: expiry is the layer's decision.
    fn find(
        &self,
        key: &StorageKey<'_>,
    ) -> impl Future<Output = Result<Option<Authenticated>, StoreError>> + Send;

    /// Answers [`find`](Self::find) at once when the answer is already in this process's
    /// memory (an in-memory store, a cache hit), or returns `None` to send the lookup down the
    /// asynchronous path. When it answers, it must answer as `find` would.
    ///
    /// The layer asks this first: a request whose session is found here, valid and not due for
    /// a refresh is served without allocating or boxing a future. The default answers nothing.
    fn find_now(&self, key: &StorageKey<'_>) -> Option<Result<Option<Authenticated>, StoreError>> {
        let _ = key;
        None
    }

    /// [`find`](Self::find) from where the sessions are kept, past any copy this process
    /// holds: for the routes that must see a revocation made elsewhere at once
    /// ([`authoritative_for`](crate::SessionConfigBuilder::authoritative_for), Better Auth's
    /// `sensitiveSessionMiddleware`) and before the revocations of
    /// [`Sessions`](crate::extract::Sessions). The default is `find`; [`CachedStore`] reads its
    /// inner store and caches that answer in place of its entry.
    fn find_fresh(
        &self,
        key: &StorageKey<'_>,
    ) -> impl Future<Output = Result<Option<Authenticated>, StoreError>> + Send {
        self.find(key)
    }

    /// [`find`](Self::find) for many keys at once: one answer per key, in the order of `keys`
    /// (a key given twice is answered twice). `CachedStore` reads again, in batches, the entries
    /// about to expire that requests still use, so that a cache keeps serving them without a
    /// store round trip per entry.
    ///
    /// The default calls `find` for each key in turn. The SQL stores run one
    /// `… WHERE token IN (…)` per 64 keys, a single Redis node one pipeline per 64 keys, and
    /// Redis in front of a database pipelines Redis, then asks the database once for what
    /// Redis lacks.
    fn find_many(
        &self,
        keys: &[StorageKey<'_>],
    ) -> impl Future<Output = Result<Vec<Option<Authenticated>>, StoreError>> + Send {
        async move {
            let mut found = Vec::with_capacity(keys.len());
            for key in keys {
                found.push(self.find(key).await?);
            }
            Ok(found)
        }
    }

    /// Stores a new session for `user` and returns it as stored. SQL stores write only the
    /// session row (the user row is expected to exist) and may give it another id (a UUID, or
    /// the number the database assigns, as the id columns require); key-value stores embed the
    /// user, as Better Auth's secondary storage.
    fn create(
        &self,
        session: &Session,
        user: &User,
    ) -> impl Future<Output = Result<Session, StoreError>> + Send;

    /// Sets `expiresAt = expires_at` and `updatedAt = now` on the session `key`, only if it
    /// exists, is still live (`expiresAt >= now`) and `expires_at` is later than its current
    /// expiry. Returns the updated session, or `None` when nothing was written.
    fn extend(
        &self,
        key: &StorageKey<'_>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;

    /// Deletes the session `key`. Deleting a missing session is not an error.
    fn delete(&self, key: &StorageKey<'_>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the session `key` only if it is still expired at `now` (`expiresAt < now`),
    /// so that an instance whose clock runs ahead never deletes a session another instance has
    /// just extended. The layer uses this for the sessions it finds expired. The default
    /// deletes unconditionally; the SQL and memory stores make it conditional.
    fn delete_if_expired(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = now;
        self.delete(key)
    }

    /// Deletes every session of `user_id` and returns how many were deleted (where the store
    /// can tell).
    fn delete_user_sessions(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The sessions of `user_id` with `expiresAt > now`, earliest expiry first.
    fn list_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<Session>, StoreError>> + Send;

    /// Ends the session `key` but keeps its row, for an audit trail: sets `expiresAt` and
    /// `updatedAt` to `now` if it is still live (`expiresAt > now`), as Better Auth does with
    /// `preserveSessionInDatabase`. [`RedisWithDatabase`] in
    /// [`preserve_in_database`](RedisWithDatabase::preserve_in_database) mode ends its
    /// database's sessions this way. The default deletes the session; the SQL and memory
    /// stores keep it.
    fn end_session(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = now;
        self.delete(key)
    }

    /// Deletes the session `key` outright, also where the store keeps ended sessions for an
    /// audit trail ([`RedisWithDatabase::preserve_in_database`]): for sessions that never were
    /// a user's, such as [`health_check`](crate::SessionManager::health_check)'s probe. The
    /// default deletes it.
    fn purge(&self, key: &StorageKey<'_>) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.delete(key)
    }

    /// [`end_session`](Self::end_session) for every live session of `user_id`; returns how
    /// many were ended (where the store can tell). The default deletes them.
    fn end_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let _ = now;
        self.delete_user_sessions(user_id)
    }

    /// Deletes sessions with `expiresAt < now` and returns how many were deleted.
    fn delete_expired(
        &self,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes at most `limit` sessions with `expiresAt < now`, for background sweeps that must
    /// not hold long locks. The default deletes them all at once; the SQL stores bound it.
    fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let _ = limit;
        self.delete_expired(now)
    }

    /// The user's row as the store holds it now, read when a session is created to apply the
    /// admin plugin's ban as Better Auth's session-creation hook does. `Ok(None)` when the
    /// store keeps no users (the default: Redis alone, for one): the user given to
    /// [`sign_in`](crate::SessionManager::sign_in) is checked as it is.
    fn find_user(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send {
        let _ = user_id;
        async { Ok(None) }
    }

    /// Lifts the ban of `user_id` (`banned = false`, `banReason` and `banExpires` `NULL`,
    /// `updatedAt = now`), as Better Auth does at sign-in once `banExpires` has passed. The
    /// default does nothing (a store without users has no ban to lift).
    fn lift_ban(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (user_id, now);
        async { Ok(()) }
    }

    /// Deletes the user `user_id` and every session of theirs, as Better Auth's `deleteUser`
    /// does (its accounts go with the row where the foreign key cascades, as Better Auth's
    /// migrations make it); returns whether the store keeps users (if so, the row is gone,
    /// or was never there). Used for Better Auth's anonymous plugin
    /// ([`SessionManager::delete_linked_anonymous`](crate::SessionManager::delete_linked_anonymous)).
    /// The default, for a store without users (Redis alone), deletes the sessions and returns
    /// `false`.
    fn remove_user(&self, user_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let sessions = self.delete_user_sessions(user_id);
        async move { sessions.await.map(|_| false) }
    }

    /// Told the session lifetime (`expiresIn`) of each [`SessionLayer`](crate::SessionLayer)
    /// and [`SessionManager`](crate::SessionManager) built over the store, when it is built:
    /// a store that keeps something for as long as a session may live keeps it at least the
    /// longest it was told (the Redis store's revoked-before marker, which must outlive every
    /// session a revocation of all of a user's sessions ended). Wrappers pass it on. The
    /// default does nothing.
    fn session_lifetime(&self, expires_in: time::Duration) {
        let _ = expires_in;
    }
}

impl<S: SessionStore> SessionStore for std::sync::Arc<S> {
    fn find(
        &self,
        key: &StorageKey<'_>,
    ) -> impl Future<Output = Result<Option<Authenticated>, StoreError>> + Send {
        (**self).find(key)
    }
    fn find_now(&self, key: &StorageKey<'_>) -> Option<Result<Option<Authenticated>, StoreError>> {
        (**self).find_now(key)
    }
    fn find_fresh(
        &self,
        key: &StorageKey<'_>,
    ) -> impl Future<Output = Result<Option<Authenticated>, StoreError>> + Send {
        (**self).find_fresh(key)
    }
    fn find_many(
        &self,
        keys: &[StorageKey<'_>],
    ) -> impl Future<Output = Result<Vec<Option<Authenticated>>, StoreError>> + Send {
        (**self).find_many(keys)
    }
    fn create(
        &self,
        session: &Session,
        user: &User,
    ) -> impl Future<Output = Result<Session, StoreError>> + Send {
        (**self).create(session, user)
    }
    fn extend(
        &self,
        key: &StorageKey<'_>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send {
        (**self).extend(key, expires_at, now)
    }
    fn delete(&self, key: &StorageKey<'_>) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).delete(key)
    }
    fn delete_if_expired(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).delete_if_expired(key, now)
    }
    fn delete_user_sessions(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).delete_user_sessions(user_id)
    }
    fn list_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<Session>, StoreError>> + Send {
        (**self).list_user_sessions(user_id, now)
    }
    fn purge(&self, key: &StorageKey<'_>) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).purge(key)
    }
    fn end_session(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).end_session(key, now)
    }
    fn end_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).end_user_sessions(user_id, now)
    }
    fn delete_expired(
        &self,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).delete_expired(now)
    }
    fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).delete_expired_batch(now, limit)
    }
    fn find_user(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send {
        (**self).find_user(user_id)
    }
    fn lift_ban(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).lift_ban(user_id, now)
    }
    fn remove_user(&self, user_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).remove_user(user_id)
    }
    fn session_lifetime(&self, expires_in: time::Duration) {
        (**self).session_lifetime(expires_in);
    }
}
