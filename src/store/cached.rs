//! [`CachedStore`]: a bounded in-process cache in front of any store, invalidated at once by
//! revocations made through this crate, across instances through Redis pub/sub, and, with
//! [`CachedStoreBuilder::watch`], by the Better Auth server's own revocations.
//!
//! # The structure
//!
//! Tokens map to entries in a sharded table of one-cache-line slots ([`table`]), hashed with
//! foldhash and bounded by a CLOCK sweep. The table has no notion of time: each entry carries
//! the tick from which it stops being served, checked on every read, and an expired entry is a
//! miss (it is overwritten by the next read of the store, or swept). A hit is a shard read
//! lock, one hash-table probe, two reference-count increments and one clock read; it never
//! allocates.
//!
//! # Reading ahead
//!
//! Left alone, every cached session would miss once per TTL, and a request would wait for the
//! store's answer. With [`CachedStoreBuilder::refresh_ahead`], a task reads again, every half
//! window, the entries that were read since they were cached and expire within the window,
//! [`SessionStore::find_many`] at a time: off the request path, and batched where the store
//! batches, rather than one read per session on it. An entry's TTL runs from the moment its
//! read began (the stamp's tick), so what is served is never older than the TTL.
//!
//! # Stale fills
//!
//! A lookup that misses reads the store and then caches the answer. If the session is revoked
//! between that read and the caching (a notification arrives while the read is in flight), the
//! cache would keep the old answer for a whole TTL. Every invalidation therefore bumps a
//! counter (one of 64, chosen by the token's hash; all of them for a user or everything), and
//! a fill that sees its counter moved drops what it just cached.

mod bus;
mod fingerprints;
mod table;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use self::bus::{apply, Bus};
use super::changes::{Change, SessionChanges, Target};
use super::SessionStore;
use crate::clock::Clock;
use crate::error::StoreError;
use crate::model::{Authenticated, Session, StorageKey, User};

/// How many invalidation counters guard fills (a power of two).
const STRIPES: usize = 64;

/// How many entries one refresh-ahead read asks the store for.
const REFRESH_BATCH: usize = 256;

/// Where entry lifetimes are measured.
enum Ticks {
    /// Milliseconds since the cache was built, on the coarse monotonic clock (the default):
    /// the kernel's tick (1 to 10 ms) is fine enough for TTLs of seconds, and reading it
    /// costs a tenth of a precise reading (3 ns against 22 ns here), on every hit.
    Monotonic(coarsetime::Instant),
    /// Unix milliseconds of an injected clock (tests).
    Clock(Arc<dyn Clock>),
}

impl Ticks {
    fn now(&self) -> u64 {
        match self {
            // Without updating coarsetime's shared "recent" instant: a store to one cache line
            // from every thread on every hit.
            Self::Monotonic(start) => coarsetime::Instant::now_without_cache_update()
                .duration_since(*start)
                .as_millis(),
            Self::Clock(clock) => {
                u64::try_from(crate::time_fmt::to_unix_ms(clock.now())).unwrap_or(0)
            }
        }
    }
}

/// The state every clone of a [`CachedStore`] shares, and what change feeds invalidate.
pub(crate) struct Core {
    /// Tokens to what the store answered (the session, or `None`: it has none), each with the
    /// tick (milliseconds on `ticks`) from which it is no longer served.
    cache: table::Table,
    ttl: u64,
    negative_ttl: u64,
    /// Entries read since they were cached are read again once less than this is left of
    /// their TTL (milliseconds; zero: never).
    refresh_window: u64,
    ticks: Ticks,
    stripes: [AtomicU64; STRIPES],
    /// Bumped by invalidations of a user or of everything.
    epoch: AtomicU64,
    /// With a feed that reports fingerprints (PostgreSQL): the cached tokens by fingerprint,
    /// and the stripes picked by fingerprint rather than by the keyed hash.
    fingerprints: Option<fingerprints::Fingerprints>,
    /// Dropped with the cache's last clone (whichever clones have the bus): stop the bus
    /// subscribers, which hear for every clone.
    #[cfg(feature = "redis")]
    bus_stops: std::sync::Mutex<Vec<tokio::sync::oneshot::Sender<()>>>,
    /// Revocations whose calls were dropped unanswered, to apply again
    /// ([`LATE_WRITE_CHECKS`]).
    late: std::sync::Mutex<Late>,
}

/// Revocations to apply again after their calls were dropped unanswered, gathered so that a
/// burst of them (a batch job revoking many users behind a tight timeout, a database stall
/// that makes many sign-outs give up) costs one pass over the cache per round rather than one
/// per dropped call and round, here and on every instance the bus reaches.
#[derive(Default)]
struct Late {
    /// Each message (`t:{token}` or `u:{user id}`), when it is due, and the bus to publish it
    /// on (that of the clone whose call was dropped).
    due: Vec<(tokio::time::Instant, String, Option<Bus>)>,
    /// A task is applying them ([`reapply_late`]).
    running: bool,
}

/// The invalidation counters a fill started under.
#[derive(Clone, Copy)]
struct Stamp {
    stripe: usize,
    /// The token's keyed hash ([`Core::hash`]).
    hash: u64,
    count: u64,
    epoch: u64,
    /// The tick the stamp was taken at, before the store was read: what the entry's TTL runs
    /// from, so that however long the read takes, nothing is served longer than the TTL after it
    /// began.
    at: u64,
    /// The token's fingerprint, when a feed reports fingerprints (computed once per fill).
    print: Option<fingerprints::Fingerprint>,
}

impl Core {
    /// The cached answer for `token`, if it is still served.
    #[inline]
    fn lookup(&self, token: &str) -> Option<Option<Authenticated>> {
        self.cache.get(token.as_bytes(), || self.ticks.now())
    }

    /// The token's keyed hash: its low bits pick its stripe, the rest spread its expiry.
    fn hash(&self, token: &str) -> u64 {
        self.cache.hash(token.as_bytes())
    }

    fn stripe(hash: u64) -> usize {
        // Truncation is intended: only the low bits pick a stripe.
        #[allow(clippy::cast_possible_truncation)]
        let low = hash as usize;
        low & (STRIPES - 1)
    }

    /// The stripe of `token`, whose keyed hash is `hash`, and its fingerprint when a feed
    /// reports fingerprints: then the stripe is the fingerprint's, so that a reported one
    /// fences the fills of its token.
    fn stripe_of(&self, token: &str, hash: u64) -> (usize, Option<fingerprints::Fingerprint>) {
        match self.fingerprints {
            Some(_) => {
                let print = fingerprints::of(token);
                (fingerprints::stripe(&print, STRIPES), Some(print))
            }
            None => (Self::stripe(hash), None),
        }
    }

    /// Taken before reading the store for `token`.
    fn stamp(&self, token: &str) -> Stamp {
        let hash = self.hash(token);
        let (stripe, print) = self.stripe_of(token, hash);
        Stamp {
            stripe,
            hash,
            count: self.stripes[stripe].load(Ordering::SeqCst),
            epoch: self.epoch.load(Ordering::SeqCst),
            at: self.ticks.now(),
            print,
        }
    }

    /// Caches what the store answered for `token` (a miss only with negative entries on),
    /// unless an invalidation of `token` came in since `stamp`.
    fn remember(&self, token: &str, found: Option<&Authenticated>, stamp: Stamp) {
        let ttl = if found.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        let now = self.ticks.now();
        let Some(until) = Self::served_until(ttl, stamp.hash, stamp.at, now) else {
            return;
        };
        self.cache.insert(token, found.cloned(), until, now);
        if let (Some(prints), Some(print), Some(_)) = (&self.fingerprints, stamp.print, found) {
            // Recorded after the entry is cached (a record then always has its entry, which a
            // sweep of full records keeps) and before the check below: a fingerprint reported
            // before this record fenced the stripe, and one reported after it finds the token.
            prints.insert(print, token, |t| self.cache.contains(t.as_bytes()));
        }
        // Inserted first, checked second: an invalidation that raced the store read either
        // shows here, or removes the entry after this insert.
        if self.stripes[stamp.stripe].load(Ordering::SeqCst) != stamp.count
            || self.epoch.load(Ordering::SeqCst) != stamp.epoch
        {
            self.cache.remove(token.as_bytes());
        }
    }

    /// Until which tick an answer for the token of keyed `hash`, read from tick `at` on, is
    /// served with `ttl`; `None` when not at all (no TTL, or the read took longer than the
    /// entry would be served).
    fn served_until(ttl: u64, hash: u64, at: u64, now: u64) -> Option<u64> {
        if ttl == 0 {
            return None;
        }
        // Served for between seven eighths of the TTL and all of it, by token: entries filled
        // together (a cold start, a deploy) then expire over an eighth of the TTL rather than in
        // the same millisecond, and their reads of the store come spread, not as one burst.
        let spread = (hash >> 16) % (ttl / 8 + 1);
        let until = at.saturating_add(ttl - spread);
        (until > now).then_some(until)
    }

    /// Reads again from `inner`, in batches, the entries [`due`](table::Table::due) within the
    /// refresh window. Each answer replaces its entry only if the entry still holds the
    /// records it held when the read began ([`replace_if`](table::Table::replace_if)): a
    /// revocation of the session or its user meanwhile removed it, and an extension put
    /// another session in it, so neither is undone; an invalidation of anything else leaves
    /// the entry served. An entry whose session the store no longer has is dropped. A batch
    /// the store fails to read is left to expire, and the others are still read. Returns how
    /// many entries were read, or the first error.
    async fn refresh_due<S: SessionStore>(&self, inner: &S) -> Result<usize, StoreError> {
        if self.refresh_window == 0 {
            return Ok(0);
        }
        let now = self.ticks.now();
        let due = self.cache.due(now, now.saturating_add(self.refresh_window));
        let mut read = 0;
        let mut failed = None;
        for batch in due.chunks(REFRESH_BATCH) {
            let began = self.ticks.now();
            let keys: Vec<StorageKey<'_>> = batch
                .iter()
                .map(|(token, _)| StorageKey::new(token))
                .collect();
            let answers = match inner.find_many(&keys).await {
                Ok(answers) => answers,
                Err(error) => {
                    failed.get_or_insert(error);
                    continue;
                }
            };
            read += batch.len();
            let now = self.ticks.now();
            for ((token, held), answer) in batch.iter().zip(answers) {
                let Some(found) = answer else {
                    self.cache.remove(token.as_bytes());
                    continue;
                };
                // Not served at all when the read took longer than that: left to expire.
                if let Some(until) = Self::served_until(self.ttl, self.hash(token), began, now) {
                    self.cache.replace_if(token, held, found, until);
                }
            }
        }
        failed.map_or(Ok(read), Err)
    }

    /// The revocations to apply again ([`Late`]); a panic elsewhere while it was held does not
    /// stop them.
    fn late(&self) -> std::sync::MutexGuard<'_, Late> {
        self.late
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes every fill of `token` already in flight drop its answer rather than cache it.
    /// (A read ahead is guarded otherwise: it replaces an entry only if the entry still holds
    /// the records it began from, see [`Table::replace_if`](table::Table::replace_if).)
    fn fence(&self, token: &str) {
        let (stripe, _) = self.stripe_of(token, self.hash(token));
        self.stripes[stripe].fetch_add(1, Ordering::SeqCst);
    }

    /// Drops the cached session whose token has this fingerprint (`hex`, as a feed reports
    /// it), and fences its fills in flight. Without fingerprints recorded (no such feed was
    /// given to the builder) drops everything; a malformed one drops nothing (anyone who can
    /// connect to PostgreSQL can send one: it must not empty every cache).
    fn invalidate_fingerprint(&self, hex: &str) {
        let Some(prints) = &self.fingerprints else {
            self.invalidate_all();
            return;
        };
        let Some(print) = fingerprints::parse(hex) else {
            tracing::debug!("ignored a malformed session fingerprint");
            return;
        };
        self.stripes[fingerprints::stripe(&print, STRIPES)].fetch_add(1, Ordering::SeqCst);
        if let Some(token) = prints.take(&print) {
            self.cache.remove(token.as_bytes());
        }
    }

    fn invalidate(&self, token: &str) {
        self.fence(token);
        self.cache.remove(token.as_bytes());
    }

    fn invalidate_user(&self, user_id: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cache
            .retain(|found| found.is_none_or(|a| a.session.user_id != user_id));
    }

    /// [`invalidate_user`](Self::invalidate_user) for several users in one pass over the cache.
    fn invalidate_users(&self, user_ids: &[String]) {
        match user_ids {
            [] => {}
            [one] => self.invalidate_user(one),
            many => {
                let ids: std::collections::HashSet<&str> =
                    many.iter().map(String::as_str).collect();
                self.epoch.fetch_add(1, Ordering::SeqCst);
                self.cache.retain(|found| {
                    found.is_none_or(|a| !ids.contains(a.session.user_id.as_str()))
                });
            }
        }
    }

    #[cfg_attr(
        not(any(
            feature = "redis",
            feature = "postgres",
            feature = "sqlite",
            feature = "mysql"
        )),
        allow(dead_code)
    )]
    fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        // The records before the entries: a fill recorded after the records went has its entry
        // after the entries went, and keeps both (a stale record only costs a miss).
        if let Some(prints) = &self.fingerprints {
            prints.clear();
        }
        self.cache.clear();
    }
}

impl Target for Core {
    fn apply(&self, change: &Change<'_>) {
        match change {
            Change::Token(token) => self.invalidate(token),
            Change::Fingerprint(hex) => self.invalidate_fingerprint(hex),
            Change::User(user_id) => self.invalidate_user(user_id),
            Change::Users(user_ids) => self.invalidate_users(user_ids),
            Change::All => self.invalidate_all(),
        }
    }
}

/// A read-through cache in front of `S`, so that a hit costs no store round trip.
///
/// * **Bounded**: at most `max_entries` tokens (default 100 000; a full shard drops first what
///   expired and what was not read lately, CLOCK), each
///   served for `ttl` (default 30 s, far below Better Auth's 1-day `updateAge`), less up to an
///   eighth of it chosen by the token, so that sessions cached together (after a deploy, say)
///   are read from the store again over a few seconds rather than in one burst.
/// * **Negative entries**: a token the store does not know is remembered as missing (for
///   `negative_ttl`, default 5 s), so a flood of garbage-but-signed cookies cannot hammer the
///   database. (Unsigned garbage never reaches any store.)
/// * **Revocation through this crate**: deleting a session or all of a user's sessions through
///   this store drops the local entries at once (before the call returns), and, with
///   `with_redis_bus` (feature `redis`), publishes the invalidation so every other instance
///   drops them too, as soon as the message reaches it (asynchronously: usually within
///   milliseconds). A revocation whose call is dropped unanswered is applied again later, in
///   case its write still lands (after about 1 s and 5 s, those due within a quarter of a
///   second of each other in one pass).
/// * **Revocation by Better Auth**: with [`CachedStoreBuilder::watch`] and a store's change
///   feed (`PostgresStore::session_changes`, `SqliteStore::session_changes`,
///   `MySqlStore::session_changes`, `RedisStore::session_changes`), sessions the Better Auth
///   server deletes, revokes or refreshes are dropped from every instance within about a
///   second. See [`SessionChanges`].
/// * **Staleness bound**: what no bus and no feed reports (a feed or bus that is down, a
///   revocation that bypasses both) may be served for at most `ttl`. Choose `ttl`
///   accordingly; 30 s is the default.
///
/// * **Reading ahead**: sessions that requests still use are read again from the store in
///   batches shortly before their TTL runs out ([`CachedStoreBuilder::refresh_ahead`], 2 s by
///   default), so active sessions do not miss on the request path.
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
pub struct CachedStore<S> {
    inner: Arc<S>,
    core: Arc<Core>,
    bus: Option<Bus>,
    /// The change feeds this cache is registered with, kept alive as long as the cache.
    feeds: Arc<[SessionChanges]>,
    applied: Arc<watch::Sender<u64>>,
}

impl<S> Clone for CachedStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            core: Arc::clone(&self.core),
            bus: self.bus.clone(),
            feeds: Arc::clone(&self.feeds),
            applied: Arc::clone(&self.applied),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for CachedStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("inner", &self.inner)
            .field("entries", &self.core.cache.len())
            .field("bus", &self.bus.is_some())
            .field("feeds", &self.feeds)
            .finish()
    }
}

/// Builds a [`CachedStore`].
#[must_use]
pub struct CachedStoreBuilder<S> {
    inner: S,
    max_entries: u64,
    ttl: Duration,
    negative_ttl: Duration,
    refresh_ahead: Duration,
    clock: Option<Arc<dyn Clock>>,
    feeds: Vec<SessionChanges>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for CachedStoreBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStoreBuilder")
            .field("inner", &self.inner)
            .field("max_entries", &self.max_entries)
            .field("ttl", &self.ttl)
            .field("negative_ttl", &self.negative_ttl)
            .field("refresh_ahead", &self.refresh_ahead)
            .field("clock", &self.clock.is_some())
            .field("feeds", &self.feeds)
            .finish()
    }
}

impl<S: SessionStore> CachedStoreBuilder<S> {
    /// The most tokens kept (found and missing alike). Default: 100 000.
    pub fn max_entries(mut self, max: u64) -> Self {
        self.max_entries = max;
        self
    }

    /// How long a found session is served from memory, the staleness bound for revocations
    /// that reach this instance neither through the bus nor through a watched change feed.
    /// Each entry is served for between seven eighths of it and all of it (spread by token).
    /// Zero caches no sessions. Default: 30 s.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long an unknown token is remembered as missing (spread like `ttl`). Zero caches no
    /// misses. Default: 5 s.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Keeps the sessions requests still use cached without a miss: an entry read since it was
    /// cached is read again from the store once less than `window` of its TTL is left, in
    /// batches ([`SessionStore::find_many`]: one query per 64 sessions on the SQL stores),
    /// by a task that wakes every `window / 2`. The staleness bound stays `ttl`: what is
    /// served was read from the store at most `ttl` ago. Sessions no request reads expire as
    /// before. The window is capped at a quarter of `ttl`; zero turns this off.
    ///
    /// The task needs a Tokio runtime with timers (as the layer's store deadlines do) when
    /// [`build`](Self::build) runs: without one, nothing is refreshed ahead, and
    /// [`CachedStore::refresh_due`] does one round by hand. It ends when the last clone of the
    /// cache is dropped. Default: 2 s.
    ///
    /// Without it, each cached session costs one store read per TTL on the request path (at
    /// the default 30 s TTL and 10,000 active sessions, about 330 single-row reads a second).
    /// With it, those reads are made off the request path: a few batched reads a second on
    /// the SQL stores, a single Redis node and Redis in front of a database (one statement or
    /// pipeline per 64 sessions) and a Redis Cluster (two `MGET`s per 64 sessions), one read
    /// per session, in turn, on stores that do not batch ([`SessionStore::find_many`]'s
    /// default: your own stores).
    pub fn refresh_ahead(mut self, window: Duration) -> Self {
        self.refresh_ahead = window;
        self
    }

    /// The clock that times entries (`ttl`, `negative_ttl`). Default: the system's monotonic
    /// clock. Tests pass a [`ManualClock`](crate::ManualClock) to expire entries without
    /// sleeping.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_auth_session::store::CachedStore;
    /// use tower_auth_session::{ManualClock, MemoryStore};
    ///
    /// let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    /// let store = CachedStore::builder(MemoryStore::new()).clock(clock.clone()).build();
    /// clock.advance(time::Duration::seconds(31)); // every entry cached before is now a miss
    /// # let _ = store;
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Drops cached sessions as the database or Redis reports them changed: `changes` comes
    /// from the store's `session_changes()` (see [`SessionChanges`]), so that sessions a
    /// Better Auth server deletes, revokes or refreshes stop being served within about a
    /// second, on every instance that watches. May be called more than once (to watch both
    /// Redis and the database behind `RedisStore::in_front_of`, say). Default: nothing is
    /// watched, and such revocations are served until `ttl` runs out.
    ///
    /// A hit costs the same with or without a watch: the feed runs in its own task.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_auth_session::store::CachedStore;
    /// use tower_auth_session::SqliteStore;
    ///
    /// let store = SqliteStore::connect("sqlite://app.db").await?;
    /// let changes = store.session_changes().create_trigger(true).start().await?;
    /// let cached = CachedStore::builder(store).watch(changes).build();
    /// # let _ = cached; Ok(()) }
    /// ```
    pub fn watch(mut self, changes: SessionChanges) -> Self {
        self.feeds.push(changes);
        self
    }

    /// Builds the cache (no cross-instance bus: see
    /// [`with_redis_bus`](CachedStore::with_redis_bus)).
    pub fn build(self) -> CachedStore<S> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let capacity = usize::try_from(self.max_entries).unwrap_or(usize::MAX);
        let ttl = millis(self.ttl);
        let core = Arc::new(Core {
            cache: table::Table::new(capacity, foldhash::fast::RandomState::default()),
            ttl,
            negative_ttl: millis(self.negative_ttl),
            refresh_window: millis(self.refresh_ahead).min(ttl / 4),
            ticks: match self.clock {
                Some(clock) => Ticks::Clock(clock),
                None => Ticks::Monotonic(coarsetime::Instant::now_without_cache_update()),
            },
            stripes: std::array::from_fn(|_| AtomicU64::new(0)),
            epoch: AtomicU64::new(0),
            fingerprints: self
                .feeds
                .iter()
                .any(SessionChanges::reports_fingerprints)
                .then(|| fingerprints::Fingerprints::new(capacity)),
            #[cfg(feature = "redis")]
            bus_stops: std::sync::Mutex::default(),
            late: std::sync::Mutex::default(),
        });
        for feed in &self.feeds {
            let weak: Weak<Core> = Arc::downgrade(&core);
            feed.attach(weak);
        }
        let inner = Arc::new(self.inner);
        if core.refresh_window > 0 {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let period =
                    Duration::from_millis(core.refresh_window / 2).max(Duration::from_millis(1));
                runtime.spawn(refresh_ahead(
                    Arc::downgrade(&core),
                    Arc::downgrade(&inner),
                    tokio::time::Instant::now() + period,
                    period,
                ));
            }
        }
        CachedStore {
            inner,
            core,
            bus: None,
            feeds: self.feeds.into(),
            applied: Arc::new(watch::channel(0).0),
        }
    }
}

/// The refresh-ahead task: one round every `period` from `start` (one period after the cache
/// was built, not after the task first runs), until the cache is dropped.
///
/// On a runtime built without timers, `interval_at` panics here, in the task: the task ends,
/// and the cache works as without refresh-ahead.
async fn refresh_ahead<S: SessionStore>(
    core: Weak<Core>,
    inner: Weak<S>,
    start: tokio::time::Instant,
    period: Duration,
) {
    let mut ticks = tokio::time::interval_at(start, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticks.tick().await;
        let (Some(core), Some(inner)) = (core.upgrade(), inner.upgrade()) else {
            return;
        };
        match core.refresh_due(&*inner).await {
            Ok(_) => failing = false,
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "could not read cached sessions ahead of their expiry; they are read again as requests miss");
            }
            Err(_) => {}
        }
    }
}

impl<S: SessionStore> CachedStore<S> {
    /// A builder caching `inner`.
    pub fn builder(inner: S) -> CachedStoreBuilder<S> {
        CachedStoreBuilder {
            inner,
            max_entries: 100_000,
            ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
            refresh_ahead: Duration::from_secs(2),
            clock: None,
            feeds: Vec::new(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The number of cached tokens (found and missing, expired ones until they are replaced
    /// or evicted).
    pub fn entry_count(&self) -> u64 {
        u64::try_from(self.core.cache.len()).unwrap_or(u64::MAX)
    }

    /// Reads again from the store, in batches, the cached sessions that were read since they
    /// were cached and stop being served within the refresh window
    /// ([`CachedStoreBuilder::refresh_ahead`]), and returns how many it read. The cache's own
    /// task does this every half window; call it to drive refreshes without that task (no
    /// Tokio runtime at build time) or in tests, with an injected clock.
    ///
    /// # Errors
    ///
    /// The store's error; the entries it did not read stay cached until their TTL.
    pub async fn refresh_due(&self) -> Result<usize, StoreError> {
        self.core.refresh_due(&*self.inner).await
    }

    /// The change feeds this cache watches (see [`CachedStoreBuilder::watch`]).
    pub fn watched(&self) -> &[SessionChanges] {
        &self.feeds
    }

    /// Whether the cache holds an answer for `key` now (for the feeds' tests).
    #[cfg(test)]
    pub(crate) fn holds(&self, key: &StorageKey<'_>) -> bool {
        self.core.lookup(key.as_str()).is_some()
    }

    /// A counter of invalidations received from other instances over the bus, for tests and
    /// dashboards.
    pub fn bus_invalidations(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Publishes and subscribes to invalidations on Redis pub/sub `channel` (feature `redis`)
    /// (for example `"tower-auth-session:invalidate"`), so a revocation on one instance drops
    /// the cached session on all of them. The subscriber task reconnects by itself; while it
    /// cannot, the staleness bound is the cache `ttl`. Needs a Tokio runtime. Call it before
    /// the cache is cloned (before a layer takes it): clones made earlier hear the bus, but do
    /// not publish their own revocations.
    ///
    /// # Errors
    ///
    /// A backend error when Redis cannot be reached at start-up.
    #[cfg(feature = "redis")]
    pub async fn with_redis_bus(mut self, url: &str, channel: &str) -> Result<Self, StoreError> {
        let bus = Bus::connect(&self.core, Arc::clone(&self.applied), url, channel).await?;
        self.bus = Some(bus);
        Ok(self)
    }

    /// Runs the revocation `call` on the store, then applies `message` (`t:{token}` or
    /// `u:{user id}`) here and publishes it on the bus, whatever the store answered (an error
    /// may come after the write committed); if this is dropped first, at the drop (the
    /// publication then on a task of its own), and, when the store had not answered, again
    /// after each of [`LATE_WRITE_CHECKS`], in case the write committed after the drop (the
    /// runtime's timers needed, as for the read-ahead task).
    async fn ended<T>(
        &self,
        message: String,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let mut ending = Ending {
            core: &self.core,
            bus: self.bus.as_ref(),
            message: Some(message),
            answered: false,
        };
        let result = call.await;
        ending.answered = true;
        ending.finish().await;
        result
    }
}

/// How long after a revocation call was dropped unanswered its invalidation is applied (and
/// published) again, each wait after the previous one: the write may still commit (a statement
/// the database received runs without its client), after a request in between read the row
/// and cached it. A write that lands later still is bounded by the TTL.
const LATE_WRITE_CHECKS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(4)];

/// A revocation in flight (see [`CachedStore::ended`]).
struct Ending<'a> {
    core: &'a Arc<Core>,
    bus: Option<&'a Bus>,
    message: Option<String>,
    /// The store answered: its write landed or failed, nothing to apply again later.
    answered: bool,
}

impl Ending<'_> {
    /// Applies the invalidation here, then waits for the bus to take it.
    async fn finish(mut self) {
        if let Some(message) = &self.message {
            apply(self.core, message);
            if let Some(bus) = self.bus {
                bus.publish(message).await;
            }
        }
        // Kept until published: dropped while publishing, the drop publishes it again.
        self.message = None;
    }
}

impl Drop for Ending<'_> {
    fn drop(&mut self) {
        let Some(message) = self.message.take() else {
            return;
        };
        apply(self.core, &message);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let bus = self.bus.cloned();
        if !self.answered {
            // The write may still commit: applied again later (with the other revocations
            // then due). Dropped while publishing, the write is done: only the publication is
            // left.
            let start = {
                let mut late = self.core.late();
                let mut at = tokio::time::Instant::now();
                for wait in LATE_WRITE_CHECKS {
                    at += wait;
                    late.due.push((at, message.clone(), bus.clone()));
                }
                !std::mem::replace(&mut late.running, true)
            };
            if start {
                // The guard made here, not in the task: a task its runtime drops unpolled
                // (spawned while the runtime shuts down) still marks itself stopped.
                runtime.spawn(reapply_late(Stopped {
                    core: Arc::downgrade(self.core),
                    done: false,
                }));
            }
        }
        if let Some(bus) = bus {
            runtime.spawn(async move { bus.publish(&message).await });
        }
    }
}

/// Marks the re-applying task ([`reapply_late`]) stopped when it ends otherwise than by finding
/// the queue empty: a panic (on a runtime without timers its first wait panics), its runtime
/// shutting down, or its runtime dropping it before it first ran. The revocations queued are
/// then dropped (each was applied once, at its drop), so that the next drop starts a new task
/// rather than queue behind one that no longer runs.
struct Stopped {
    core: Weak<Core>,
    done: bool,
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(core) = self.core.upgrade() {
            let mut late = core.late();
            late.running = false;
            late.due.clear();
        }
    }
}

/// How long after the earliest revocation due the re-applying task waits for others to fall
/// due, so that revocations dropped a little apart (a batch job's, one by one) are applied in
/// one pass: a late re-apply runs at most this much later than due.
const LATE_GATHER: Duration = Duration::from_millis(250);

/// Applies (and publishes) again the revocations of [`Core::late`] as they fall due, those due
/// within [`LATE_GATHER`] of each other in one pass, until none is left; the cache's last
/// clone dropped ends it.
async fn reapply_late(mut stopped: Stopped) {
    let core = stopped.core.clone();
    loop {
        let next = {
            let Some(core) = core.upgrade() else { return };
            let mut late = core.late();
            match late.due.iter().map(|(at, _, _)| *at).min() {
                Some(at) => at,
                None => {
                    // Under the lock that queues: a revocation queued after this starts a
                    // new task.
                    late.running = false;
                    stopped.done = true;
                    return;
                }
            }
        };
        // Every revocation is queued at least the first of the checks before it is due: with
        // nothing due sooner, looking again after that long, none queued meanwhile runs
        // later than the gathering time.
        let look = tokio::time::Instant::now() + LATE_WRITE_CHECKS[0];
        if next > look {
            tokio::time::sleep_until(look).await;
            continue;
        }
        tokio::time::sleep_until(next + LATE_GATHER).await;
        let messages: Vec<(String, Option<Bus>)> = {
            // Not kept while publishing: a cache dropped meanwhile goes at once.
            let Some(core) = core.upgrade() else { return };
            let now = tokio::time::Instant::now();
            let mut late = core.late();
            let (due, later) = std::mem::take(&mut late.due)
                .into_iter()
                .partition(|(at, _, _)| *at <= now);
            late.due = later;
            drop(late);
            let mut messages: Vec<(String, Option<Bus>)> = due
                .into_iter()
                .map(|(_, message, bus)| (message, bus))
                .collect();
            // One of each message, with a bus when any of its calls had one.
            messages.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.is_some().cmp(&a.1.is_some())));
            messages.dedup_by(|later, first| later.0 == first.0);
            let mut users = Vec::new();
            for (message, _) in &messages {
                match message.strip_prefix("u:") {
                    Some(user_id) => users.push(user_id.to_owned()),
                    None => apply(&core, message),
                }
            }
            core.invalidate_users(&users);
            messages
        };
        // Published on a task of their own: a slow bus delays no local re-apply.
        let published: Vec<(String, Bus)> = messages
            .into_iter()
            .filter_map(|(message, bus)| Some((message, bus?)))
            .collect();
        if !published.is_empty() {
            tokio::spawn(async move {
                for (message, bus) in published {
                    bus.publish(&message).await;
                }
            });
        }
    }
}

/// A store call that may change what is cached for a token: unless disarmed, the token's
/// entry is dropped here when this is (the call errs, or its future is dropped).
struct Invalidation<'a> {
    core: &'a Core,
    token: &'a str,
    armed: bool,
}

impl<'a> Invalidation<'a> {
    fn local(core: &'a Core, token: &'a str) -> Self {
        Self {
            core,
            token,
            armed: true,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Invalidation<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.core.invalidate(self.token);
        }
    }
}

impl<S: SessionStore> SessionStore for CachedStore<S> {
    async fn find(&self, key: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        if let Some(found) = self.core.lookup(key.as_str()) {
            return Ok(found);
        }
        let stamp = self.core.stamp(key.as_str());
        let found = match self.inner.find_now(key) {
            Some(answer) => answer?,
            None => self.inner.find(key).await?,
        };
        self.core.remember(key.as_str(), found.as_ref(), stamp);
        Ok(found)
    }

    #[inline]
    fn find_now(&self, key: &StorageKey<'_>) -> Option<Result<Option<Authenticated>, StoreError>> {
        if let Some(found) = self.core.lookup(key.as_str()) {
            return Some(Ok(found));
        }
        // A miss may still be answered at once by an in-memory inner store.
        let stamp = self.core.stamp(key.as_str());
        let answer = self.inner.find_now(key)?;
        if let Ok(found) = &answer {
            self.core.remember(key.as_str(), found.as_ref(), stamp);
        }
        Some(answer)
    }

    /// Past the cache: the entry is dropped, the inner store asked, and its answer cached.
    async fn find_fresh(&self, key: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        self.core.invalidate(key.as_str());
        let stamp = self.core.stamp(key.as_str());
        let found = self.inner.find_fresh(key).await?;
        self.core.remember(key.as_str(), found.as_ref(), stamp);
        Ok(found)
    }

    async fn create(&self, session: &Session, user: &User) -> Result<Session, StoreError> {
        let stored = self.inner.create(session, user).await?;
        // A negative entry for this token (vanishingly unlikely) must not hide the new session.
        self.core.invalidate(&session.token);
        Ok(stored)
    }

    async fn extend(
        &self,
        key: &StorageKey<'_>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        let token = key.as_str();
        // Dropped before the store answers (the request's future dropped, a timeout): the
        // write may have committed, so the entry goes.
        let pending = Invalidation::local(&self.core, token);
        let updated = self.inner.extend(key, expires_at, now).await;
        // Fenced after the write: every fill of the token in flight may have read the old
        // expiry (however its stamp compares with the write's start), and drops its answer
        // rather than cache it for a whole TTL; reads that begin now see the new one. A read
        // ahead in flight finds a new session record in the entry (a new `Arc`, never the
        // old one kept: that is its guard) and leaves it.
        self.core.fence(token);
        match &updated {
            // The cached entry takes the new session and keeps its expiry: its user row was
            // read when it was cached, and must not be served longer than the TTL from then.
            Ok(Some(session)) => {
                pending.disarm();
                self.core
                    .cache
                    .replace_session(token, Arc::new(session.clone()));
            }
            // Gone, or unknown whether it was written.
            Ok(None) | Err(_) => drop(pending),
        }
        updated
    }

    async fn delete(&self, key: &StorageKey<'_>) -> Result<(), StoreError> {
        self.ended(format!("t:{key}"), self.inner.delete(key)).await
    }

    async fn delete_if_expired(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let pending = Invalidation::local(&self.core, key.as_str());
        let result = self.inner.delete_if_expired(key, now).await;
        drop(pending);
        result
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        self.ended(
            format!("u:{user_id}"),
            self.inner.delete_user_sessions(user_id),
        )
        .await
    }

    async fn purge(&self, key: &StorageKey<'_>) -> Result<(), StoreError> {
        self.ended(format!("t:{key}"), self.inner.purge(key)).await
    }

    async fn end_session(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.ended(format!("t:{key}"), self.inner.end_session(key, now))
            .await
    }

    async fn end_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.ended(
            format!("u:{user_id}"),
            self.inner.end_user_sessions(user_id, now),
        )
        .await
    }

    async fn remove_user(&self, user_id: &str) -> Result<bool, StoreError> {
        self.ended(format!("u:{user_id}"), self.inner.remove_user(user_id))
            .await
    }

    super::pass_through!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    /// A cache over a memory store holding one session, built as a PostgreSQL feed's watcher
    /// is (recording fingerprints), and the session's storage key.
    async fn watched() -> (CachedStore<MemoryStore>, String) {
        let feed = SessionChanges::spawn_reporting("test", true, |_sink| async {});
        let store = MemoryStore::new();
        let user = User::new("print@example.com", "P", OffsetDateTime::now_utc());
        store.insert_user(user.clone());
        let now = OffsetDateTime::now_utc();
        let session =
            Session::for_tests(&user.id, "print-token", now + time::Duration::days(1), now);
        let session = store.create(&session, &user).await.unwrap();
        let cached = CachedStore::builder(store).watch(feed).build();
        assert!(cached.core.fingerprints.is_some());
        (cached, session.token)
    }

    fn hex(token: &str) -> String {
        fingerprints::of(token)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[tokio::test]
    async fn a_reported_fingerprint_drops_its_session_only() {
        let (cached, token) = watched().await;
        let key = StorageKey::new(token.clone());
        assert!(cached.find(&key).await.unwrap().is_some());
        cached
            .core
            .apply(&Change::Fingerprint(&hex("another token")));
        assert!(
            cached.core.lookup(&token).is_some(),
            "another session's change"
        );
        cached.core.apply(&Change::Fingerprint(&hex(&token)));
        assert!(cached.core.lookup(&token).is_none());
    }

    /// A fill that read the store before the fingerprint arrived (and recorded it after) is
    /// not cached: the fingerprint fenced its stripe.
    #[tokio::test]
    async fn a_fill_that_raced_a_reported_fingerprint_is_not_cached() {
        let (cached, token) = watched().await;
        let key = StorageKey::new(token.clone());
        let stamp = cached.core.stamp(&token);
        let found = cached.inner().find(&key).await.unwrap();
        cached.core.apply(&Change::Fingerprint(&hex(&token)));
        cached.core.remember(&token, found.as_ref(), stamp);
        assert!(cached.core.lookup(&token).is_none());
        assert_eq!(cached.entry_count(), 0);
    }

    /// A fingerprint the cache cannot read drops nothing: anyone who can connect to the
    /// database may send one, and must not be able to empty every cache with it.
    #[tokio::test]
    async fn a_malformed_fingerprint_drops_nothing() {
        let (cached, token) = watched().await;
        let key = StorageKey::new(token.clone());
        assert!(cached.find(&key).await.unwrap().is_some());
        cached.core.apply(&Change::Fingerprint("not hex"));
        assert!(cached.core.lookup(&token).is_some());
    }

    /// A fill stamped before a drop of everything caches nothing; one after it is cached with
    /// its record, and found by its fingerprint.
    #[tokio::test]
    async fn a_session_cached_again_after_a_drop_is_found_by_its_fingerprint() {
        let (cached, token) = watched().await;
        let key = StorageKey::new(token.clone());
        let stamp = cached.core.stamp(&token);
        let found = cached.inner().find(&key).await.unwrap();
        cached.core.invalidate_all();
        cached.core.remember(&token, found.as_ref(), stamp);
        assert!(
            cached.core.lookup(&token).is_none(),
            "stamped before the drop"
        );
        let stamp = cached.core.stamp(&token);
        cached.core.remember(&token, found.as_ref(), stamp);
        assert!(cached.core.lookup(&token).is_some());
        cached.core.apply(&Change::Fingerprint(&hex(&token)));
        assert!(cached.core.lookup(&token).is_none(), "its record was kept");
    }

    /// A cache over a memory store, and a session of its own user in it.
    async fn with_session(email: &str) -> (CachedStore<MemoryStore>, Session) {
        let store = MemoryStore::new();
        let user = User::new(email, "L", OffsetDateTime::now_utc());
        store.insert_user(user.clone());
        let now = OffsetDateTime::now_utc();
        let session = Session::for_tests(&user.id, email, now + time::Duration::days(1), now);
        let session = store.create(&session, &user).await.unwrap();
        let cached = CachedStore::builder(store)
            .ttl(Duration::from_secs(600))
            .build();
        (cached, session)
    }

    /// Drops a revocation of `message` as a call dropped unanswered does.
    fn drop_unanswered(cached: &CachedStore<MemoryStore>, message: String) {
        drop(Ending {
            core: &cached.core,
            bus: None,
            message: Some(message),
            answered: false,
        });
    }

    /// A burst of revocations dropped unanswered a little apart (a batch job behind a tight
    /// timeout): each is applied at its drop, then all of them again in one pass per round,
    /// not one pass per user and round. And the late pass still drops what a request cached
    /// meanwhile.
    #[tokio::test(start_paused = true)]
    async fn revocations_dropped_together_are_applied_again_in_one_pass() {
        let (cached, session) = with_session("late@example.com").await;
        let epoch = || cached.core.epoch.load(Ordering::SeqCst);
        let before = epoch();
        let mut users: Vec<String> = (0..100).map(|i| format!("other-{i}")).collect();
        users.push(session.user_id.clone());
        for id in &users {
            drop_unanswered(&cached, format!("u:{id}"));
            tokio::time::advance(Duration::from_millis(2)).await;
        }
        assert_eq!(epoch(), before + 101, "each applied at its drop");
        // A request reads the session the revocation has not removed yet, and caches it.
        assert!(cached.find(&session.storage_key()).await.unwrap().is_some());
        assert!(cached.core.lookup(&session.token).is_some());

        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(epoch(), before + 102, "one pass for the 101 at 1 s");
        assert!(
            cached.core.lookup(&session.token).is_none(),
            "dropped again"
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(epoch(), before + 103, "and one at 5 s");
        assert!(cached.core.late.lock().unwrap().due.is_empty());
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(epoch(), before + 103, "nothing after");
        assert!(!cached.core.late.lock().unwrap().running, "the task ended");
    }

    /// A revocation dropped while the task waits for another's 5 s round is applied again
    /// about 1 s after its drop, not at that round.
    #[tokio::test(start_paused = true)]
    async fn a_revocation_dropped_during_a_long_wait_is_not_late() {
        let (cached, session) = with_session("wait@example.com").await;
        drop_unanswered(&cached, "u:someone-else".to_owned());
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        // The first revocation's 1 s round is done; its 5 s one is 3.5 s away.
        drop_unanswered(&cached, format!("t:{}", session.token));
        assert!(cached.find(&session.storage_key()).await.unwrap().is_some());
        assert!(cached.core.lookup(&session.token).is_some(), "cached again");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(
            cached.core.lookup(&session.token).is_none(),
            "applied again 1 s after its drop, within the gathering time"
        );
    }

    /// The task's runtime shut down while it waited, or before it ever ran: the next drop,
    /// on another runtime, is queued for a new task rather than behind one that no longer
    /// runs.
    #[test]
    fn a_task_ended_with_its_runtime_is_started_again() {
        for polled in [true, false] {
            let first = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let cached = first.block_on(async {
                let (cached, _) = with_session("runtime@example.com").await;
                drop_unanswered(&cached, "u:first".to_owned());
                if polled {
                    // The task starts and waits.
                    tokio::task::yield_now().await;
                }
                cached
            });
            assert!(cached.core.late.lock().unwrap().running);
            drop(first);
            {
                let late = cached.core.late.lock().unwrap();
                assert!(
                    !late.running,
                    "polled {polled}: marked stopped with its runtime"
                );
                assert!(late.due.is_empty());
            }
            let second = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            second.block_on(async {
                let before = cached.core.epoch.load(Ordering::SeqCst);
                drop_unanswered(&cached, "u:second".to_owned());
                tokio::time::sleep(Duration::from_secs(2)).await;
                assert_eq!(
                    cached.core.epoch.load(Ordering::SeqCst),
                    before + 2,
                    "polled {polled}: applied at the drop and again at 1 s"
                );
            });
        }
    }

    /// On a runtime built without timers the re-applying task cannot wait: it stops, and the
    /// next dropped revocation is still applied at once and queued for a new task, rather than
    /// queued for good behind a task that no longer runs.
    #[test]
    fn without_timers_dropped_revocations_do_not_pile_up() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let cached = CachedStore::builder(MemoryStore::new()).build();
            for round in 0..3 {
                let before = cached.core.epoch.load(Ordering::SeqCst);
                drop_unanswered(&cached, format!("u:user-{round}"));
                assert_eq!(cached.core.epoch.load(Ordering::SeqCst), before + 1);
                assert!(
                    cached.core.late.lock().unwrap().running,
                    "a task was started"
                );
                // The task runs, and its wait panics.
                for _ in 0..10 {
                    tokio::task::yield_now().await;
                }
                let late = cached.core.late.lock().unwrap();
                assert!(!late.running, "round {round}: the task is marked stopped");
                assert!(late.due.is_empty(), "round {round}: nothing is left queued");
            }
        });
    }
}
