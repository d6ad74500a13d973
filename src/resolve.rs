//! Resolving a verified credential into what the policy needs to know: the cookie cache first
//! (when trusted for this path), then the store under the layer's deadline; and running the
//! writes the policy asks for, with concurrent refreshes of one session coalesced into one.
//! No rule is decided here and no header is written.

use std::collections::HashSet;
use std::sync::Mutex;

use http::HeaderMap;
use time::OffsetDateTime;

use crate::config::{CookieCacheStrategy, SessionConfig};
use crate::cookie_cache;
use crate::credential::TokenTag;
use crate::error::StoreError;
use crate::metrics::StoreOp;
use crate::model::{Authenticated, Session, StorageKey};
use crate::policy::{IncomingCache, Lookup};
use crate::store::SessionStore;

/// What the request's cache cookie turned out to be.
#[derive(Default)]
pub(crate) struct CacheRead {
    /// The cache cookie the request carried, if it could not be used.
    pub(crate) incoming: IncomingCache,
    /// The names of the cache-cookie chunks it carried (they are expired or replaced).
    pub(crate) chunks: Vec<String>,
}

/// Resolves what can be resolved without waiting: a valid cache cookie, or a store that
/// answers from memory ([`SessionStore::find_now`]), neither on an `authoritative` route.
/// `None`: the store must be asked ([`find`]).
pub(crate) fn now<St: SessionStore>(
    config: &SessionConfig,
    store: &St,
    key: &StorageKey<'_>,
    headers: &HeaderMap,
    authoritative: bool,
    cache: &mut CacheRead,
) -> Option<Lookup> {
    if let Some(settings) = &config.cache {
        let (value, chunks) = cookie_cache::read(&config.cookies.session_data, headers);
        cache.chunks = chunks;
        if let Some(value) = value {
            if !authoritative {
                let now = config.clock.now();
                if let Some(auth) =
                    cookie_cache::verify(&config.keys.signer, settings, &value, key.as_str(), now)
                {
                    return Some(Lookup::Cached(auth));
                }
            }
            // Another side's cookie is left alone on every route, authoritative ones included.
            let theirs = match cookie_cache::strategy_of(&value) {
                Some(theirs) if theirs != settings.strategy => Some(theirs.as_str()),
                Some(CookieCacheStrategy::Jwt) if cookie_cache::signed_with_jwks(&value) => {
                    Some("jwt signed with the jwt() plugin's keys (sessionCookieCache)")
                }
                _ => None,
            };
            if let Some(theirs) = theirs {
                config
                    .warnings
                    .other_cache_strategy(theirs, settings.strategy.as_str());
                cache.incoming = IncomingCache::OtherStrategy;
            } else if !authoritative {
                tracing::debug!(reason = "cookie cache invalid", "falling back to the store");
                cache.incoming = IncomingCache::Unusable;
            }
        }
    }
    if authoritative {
        // Past any copy in this process (a `CachedStore`'s) too: `find` asks `find_fresh`.
        return None;
    }
    store.find_now(key).map(|answer| lookup(answer, key))
}

/// The names of the cache-cookie chunks (`session_data.0`, …) `headers` carry, read when a
/// session is cleared while the layer's own cache is off: the Better Auth server may have set
/// them, and its sign-out expires them too.
pub(crate) fn cache_chunks(config: &SessionConfig, headers: &HeaderMap) -> Vec<String> {
    config.cookies.session_data.chunk_names(headers)
}

/// Asks the store, under the layer's deadline: past any copy in this process on an
/// `authoritative` route ([`SessionStore::find_fresh`]).
pub(crate) async fn find<St: SessionStore>(
    config: &SessionConfig,
    store: &St,
    key: &StorageKey<'_>,
    authoritative: bool,
) -> Lookup {
    let answer = if authoritative {
        timed(config, StoreOp::Find, store.find_fresh(key)).await
    } else {
        timed(config, StoreOp::Find, store.find(key)).await
    };
    lookup(answer, key)
}

/// What a store answer means for the policy.
fn lookup(answer: Result<Option<Authenticated>, StoreError>, key: &StorageKey<'_>) -> Lookup {
    match answer {
        Ok(Some(auth)) => Lookup::Found(auth),
        Ok(None) => Lookup::Missing,
        Err(StoreError::Corrupt { reason }) => {
            // A row this crate cannot read is not proof that the session is invalid (another
            // writer may use a layout we do not know): anonymous, but the cookies are kept.
            tracing::warn!(%reason, "session row is unreadable; treating the request as anonymous");
            Lookup::Unreadable
        }
        Err(error) => {
            tracing::error!(%error, reason = "store_error", token = %TokenTag(key.as_str()), "session store lookup failed");
            Lookup::Unavailable
        }
    }
}

/// What became of a refresh. Built once per refresh and matched at once, so the size of the
/// written session does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Extension {
    /// Written: the session as extended.
    Written(Session),
    /// The conditional write touched nothing: someone else refreshed, signed out or revoked
    /// the session concurrently. Read it again.
    Raced,
    /// Not attempted (another request of this instance is writing it) or failed: serve the
    /// session as it was read, and try again on a later request.
    NotWritten,
}

/// Tokens whose refresh is being written right now: concurrent requests for the same session
/// skip their own write (at most one store write per session per `updateAge`). And when the
/// last refresh write ran out of time: for [`WRITE_BACKOFF`] after it none is tried, so a write
/// outage that hangs (a locked table, a server that went silent) makes one request wait on the
/// store now and then rather than every request of every session due for one. A write that
/// fails at once (a read-only server, one bad row) costs little and rests nothing: one session
/// whose write always fails must not keep every other session from being refreshed.
#[derive(Debug, Default)]
pub(crate) struct Refreshing {
    in_flight: Mutex<HashSet<String>>,
    failed_at: Mutex<Option<std::time::Instant>>,
}

/// How long refresh writes rest after one failed. Sessions due for a refresh are served as
/// they are meanwhile (they have `expiresIn - updateAge` left, days by default).
const WRITE_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

impl Refreshing {
    fn resting(&self) -> bool {
        self.failed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() < WRITE_BACKOFF)
    }

    fn failed(&self) {
        *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
    }
}

/// Extends a session due for a refresh, unless another request is already doing it.
pub(crate) async fn extend<St: SessionStore>(
    config: &SessionConfig,
    store: &St,
    refreshing: &Refreshing,
    key: &StorageKey<'_>,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Extension {
    if refreshing.resting() {
        tracing::trace!("refresh writes rest after a failure");
        return Extension::NotWritten;
    }
    let Some(_slot) = RefreshSlot::claim(refreshing, key.as_str()) else {
        tracing::trace!("refresh already in flight");
        return Extension::NotWritten;
    };
    match timed(config, StoreOp::Extend, store.extend(key, expires_at, now)).await {
        Ok(Some(session)) => {
            crate::metrics::refreshed();
            Extension::Written(session)
        }
        Ok(None) => Extension::Raced,
        Err(error) => {
            // The session is valid; only its extension failed.
            if matches!(error, StoreError::Timeout { .. }) {
                refreshing.failed();
                tracing::warn!(%error, "could not extend a session in time; refreshes rest for 5 s");
            } else {
                tracing::warn!(%error, "could not extend a session");
            }
            Extension::NotWritten
        }
    }
}

/// Deletes an expired session if it is still expired (another instance whose clock is behind
/// may have just extended it).
pub(crate) async fn delete_expired<St: SessionStore>(
    config: &SessionConfig,
    store: &St,
    key: &StorageKey<'_>,
    now: OffsetDateTime,
) {
    if let Err(error) = timed(config, StoreOp::Delete, store.delete_if_expired(key, now)).await {
        tracing::warn!(%error, "could not delete an expired session");
    }
}

/// Runs one store call under the layer's deadline, and records it.
async fn timed<T>(
    config: &SessionConfig,
    operation: StoreOp,
    fut: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let timeout = config.guards.store_timeout;
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Timeout {
            operation: operation.as_str(),
            millis: timeout.as_millis(),
        }),
    };
    operation.record(started.elapsed().as_secs_f64(), result.is_err());
    result
}

/// Removes a token from the in-flight refresh set when the refresh ends (or is cancelled).
struct RefreshSlot<'a> {
    set: &'a Refreshing,
    key: String,
}

impl<'a> RefreshSlot<'a> {
    /// Claims the refresh of `key`; `None` when another request is already writing it.
    fn claim(set: &'a Refreshing, key: &str) -> Option<Self> {
        let mut guard = set.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        guard.insert(key.to_owned()).then(|| RefreshSlot {
            set,
            key: key.to_owned(),
        })
    }
}

impl Drop for RefreshSlot<'_> {
    fn drop(&mut self) {
        self.set
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}
