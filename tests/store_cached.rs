//! `CachedStore`: the conformance suite through the cache, negative entries, and revocation
//! reaching other instances through the Redis bus.
#![cfg(feature = "cache")]

mod common;
mod conformance;

use std::time::Duration;

use common::Counting;
use conformance::Harness;
use tower_auth_session::store::CachedStore;
use tower_auth_session::{
    Authenticated, ManualClock, MemoryStore, Session, SessionStore, StorageKey, StoreError, User,
};

impl Harness for CachedStore<MemoryStore> {
    async fn add_user(&self, user: &User) -> User {
        self.inner().insert_user(user.clone());
        user.clone()
    }
    async fn delete_user_row(&self, id: &str) {
        // Deleting a user revokes their sessions through the crate, which invalidates the cache.
        self.delete_user_sessions(id).await.unwrap();
        self.inner().delete_user(id);
    }
    fn keeps_ended_rows(&self) -> bool {
        true
    }
}

async fn cached() -> Option<CachedStore<MemoryStore>> {
    Some(CachedStore::builder(MemoryStore::new()).build())
}

conformance_suite!(cached());

#[tokio::test]
async fn hits_and_negative_entries_spare_the_store() {
    let inner = Counting::new(MemoryStore::new());
    let store = CachedStore::builder(inner.clone()).build();
    let user = User::new("c@example.com", "C", conformance::NOW);
    inner.inner.insert_user(user.clone());
    let s = conformance::session(&user, conformance::NOW + time::Duration::days(7));
    store.create(&s, &user).await.unwrap();
    let calls = inner.calls();
    for _ in 0..10 {
        assert!(store.find(&s.storage_key()).await.unwrap().is_some());
        assert!(store
            .find(&StorageKey::new("garbage-but-signed"))
            .await
            .unwrap()
            .is_none());
    }
    assert_eq!(
        inner.calls() - calls,
        2,
        "one read per token, then the cache answers"
    );

    // A revocation through the cache is seen at once.
    store.delete(&s.storage_key()).await.unwrap();
    assert!(store.find(&s.storage_key()).await.unwrap().is_none());
}

/// A cache over a counted memory store, timed by a manual clock.
fn timed(
    ttl: Duration,
    negative: Duration,
) -> (
    CachedStore<Counting<MemoryStore>>,
    Counting<MemoryStore>,
    ManualClock,
) {
    let inner = Counting::new(MemoryStore::new());
    let clock = ManualClock::new(conformance::NOW);
    let store = CachedStore::builder(inner.clone())
        .ttl(ttl)
        .negative_ttl(negative)
        .clock(clock.clone())
        .build();
    (store, inner, clock)
}

async fn signed_in(store: &CachedStore<Counting<MemoryStore>>, email: &str) -> (User, Session) {
    let user = User::new(email, "T", conformance::NOW);
    store.inner().inner.insert_user(user.clone());
    let s = conformance::session(&user, conformance::NOW + time::Duration::days(7));
    let s = store.create(&s, &user).await.unwrap();
    (user, s)
}

#[tokio::test]
async fn found_entries_are_served_for_their_ttl_and_then_read_again() {
    let (store, inner, clock) = timed(Duration::from_secs(30), Duration::from_secs(5));
    let (_, s) = signed_in(&store, "ttl@example.com").await;
    assert!(store.find(&s.storage_key()).await.unwrap().is_some());
    let calls = inner.calls();
    // Served for at least seven eighths of the TTL, at most all of it.
    clock.advance(time::Duration::milliseconds(26_249));
    assert!(store.find_now(&s.storage_key()).unwrap().unwrap().is_some());
    assert_eq!(inner.calls(), calls, "still within the TTL: a hit");
    clock.advance(time::Duration::milliseconds(3_751));
    assert!(store.find(&s.storage_key()).await.unwrap().is_some());
    assert_eq!(
        inner.calls(),
        calls + 1,
        "expired: read from the store again"
    );
    assert!(store.find(&s.storage_key()).await.unwrap().is_some());
    assert_eq!(inner.calls(), calls + 1, "and cached again");
}

/// A cache over a counted memory store, timed by a manual clock, that reads sessions again
/// ahead of their expiry: served for 7 to 8 s, read again in the last 2 s.
fn refreshed() -> (
    CachedStore<Counting<MemoryStore>>,
    Counting<MemoryStore>,
    ManualClock,
) {
    let inner = Counting::new(MemoryStore::new());
    let clock = ManualClock::new(conformance::NOW);
    let store = CachedStore::builder(inner.clone())
        .ttl(Duration::from_secs(8))
        .refresh_ahead(Duration::from_secs(2))
        .clock(clock.clone())
        .build();
    (store, inner, clock)
}

#[tokio::test]
async fn sessions_still_in_use_are_read_again_ahead_of_their_expiry_in_one_batch() {
    let (store, inner, clock) = refreshed();
    let (_, used) = signed_in(&store, "used@example.com").await;
    let (_, once) = signed_in(&store, "once@example.com").await;
    let (_, revoked) = signed_in(&store, "revoked@example.com").await;
    for s in [&used, &once, &revoked] {
        assert!(
            store.find(&s.storage_key()).await.unwrap().is_some(),
            "a miss fills"
        );
    }
    for s in [&used, &revoked] {
        assert!(
            store.find(&s.storage_key()).await.unwrap().is_some(),
            "a hit marks"
        );
    }
    // Revoked behind the cache's back (no bus, no feed).
    inner.inner.delete(&revoked.storage_key()).await.unwrap();
    let calls = inner.calls();
    assert_eq!(store.refresh_due().await.unwrap(), 0, "nothing is due yet");
    clock.advance(time::Duration::milliseconds(6_500));
    assert_eq!(
        store.refresh_due().await.unwrap(),
        2,
        "the entries read since they were cached, not the one read once"
    );
    assert_eq!(inner.calls(), calls + 2);

    // Past every entry's first term: the refreshed one is served from memory, the one read
    // once is read from the store again, and the revoked one is gone.
    clock.advance(time::Duration::milliseconds(2_000));
    let calls = inner.calls();
    assert!(store.find(&used.storage_key()).await.unwrap().is_some());
    assert_eq!(inner.calls(), calls, "refreshed: a hit");
    assert!(store.find(&once.storage_key()).await.unwrap().is_some());
    assert!(store.find(&revoked.storage_key()).await.unwrap().is_none());
    assert_eq!(inner.calls(), calls + 2, "the other two: misses");

    // The refreshed entry was read again in its new term, so it is refreshed again; the entry
    // the store just filled was not read since, so it is left to expire.
    clock.advance(time::Duration::milliseconds(5_000));
    let calls = inner.calls();
    assert_eq!(store.refresh_due().await.unwrap(), 1);
    assert_eq!(inner.calls(), calls + 1);
}

#[tokio::test]
async fn a_cache_built_with_refresh_ahead_off_or_a_short_ttl_stays_bounded() {
    let inner = Counting::new(MemoryStore::new());
    let clock = ManualClock::new(conformance::NOW);
    let off = CachedStore::builder(inner.clone())
        .ttl(Duration::from_secs(8))
        .refresh_ahead(Duration::ZERO)
        .clock(clock.clone())
        .build();
    let (_, s) = signed_in(&off, "off@example.com").await;
    for _ in 0..2 {
        assert!(off.find(&s.storage_key()).await.unwrap().is_some());
    }
    clock.advance(time::Duration::milliseconds(6_999));
    assert_eq!(off.refresh_due().await.unwrap(), 0, "turned off");

    // A window longer than the TTL is capped at a quarter of it: nothing is read again while
    // more than a quarter of the TTL is left.
    let capped = CachedStore::builder(inner.clone())
        .ttl(Duration::from_secs(8))
        .refresh_ahead(Duration::from_secs(60))
        .clock(clock.clone())
        .build();
    for _ in 0..2 {
        assert!(capped.find(&s.storage_key()).await.unwrap().is_some());
    }
    assert_eq!(capped.refresh_due().await.unwrap(), 0);
    clock.advance(time::Duration::milliseconds(6_500));
    assert_eq!(capped.refresh_due().await.unwrap(), 1);
}

/// A store whose `find_many` fails for batches holding the token `fail`.
#[derive(Clone)]
struct Flaky(MemoryStore);

impl SessionStore for Flaky {
    async fn find(&self, key: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        self.0.find(key).await
    }
    async fn find_many(
        &self,
        keys: &[StorageKey<'_>],
    ) -> Result<Vec<Option<Authenticated>>, StoreError> {
        if keys.iter().any(|k| k.as_str().starts_with("fail")) {
            return Err(StoreError::backend(
                "find many",
                std::io::Error::other("down"),
            ));
        }
        let mut found = Vec::new();
        for key in keys {
            found.push(self.0.find(key).await?);
        }
        Ok(found)
    }
    async fn create(&self, s: &Session, u: &User) -> Result<Session, StoreError> {
        self.0.create(s, u).await
    }
    async fn extend(
        &self,
        key: &StorageKey<'_>,
        at: time::OffsetDateTime,
        now: time::OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        self.0.extend(key, at, now).await
    }
    async fn delete(&self, key: &StorageKey<'_>) -> Result<(), StoreError> {
        self.0.delete(key).await
    }
    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        self.0.delete_user_sessions(user_id).await
    }
    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: time::OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        self.0.list_user_sessions(user_id, now).await
    }
    async fn delete_expired(&self, now: time::OffsetDateTime) -> Result<u64, StoreError> {
        self.0.delete_expired(now).await
    }
}

#[tokio::test]
async fn a_batch_the_store_cannot_read_is_left_to_expire_and_the_rest_are_read() {
    let clock = ManualClock::new(conformance::NOW);
    let store = CachedStore::builder(Flaky(MemoryStore::new()))
        .ttl(Duration::from_secs(8))
        .refresh_ahead(Duration::from_secs(2))
        .clock(clock.clone())
        .build();
    let user = User::new("flaky@example.com", "F", conformance::NOW);
    store.inner().0.insert_user(user.clone());
    // One session whose token fails its batch, then enough others for a second batch.
    let mut sessions = Vec::new();
    for i in 0..300 {
        let mut s = conformance::session(&user, conformance::NOW + time::Duration::days(7));
        if i == 0 {
            s.token = format!("fail-{}", s.token);
        }
        sessions.push(store.create(&s, &user).await.unwrap());
    }
    for s in &sessions {
        for _ in 0..2 {
            assert!(store.find(&s.storage_key()).await.unwrap().is_some());
        }
    }
    clock.advance(time::Duration::milliseconds(6_500));
    assert!(
        store.refresh_due().await.is_err(),
        "the failing batch is reported"
    );
    // Past every entry's first term: what was read ahead is still a hit; the failing batch's
    // entries (at most 256 of them) were left to expire.
    clock.advance(time::Duration::milliseconds(2_000));
    let cached = sessions
        .iter()
        .filter(|s| store.find_now(&s.storage_key()).is_some())
        .count();
    assert!(
        (300 - 256..300).contains(&cached),
        "{cached} of 300 still cached"
    );
}

#[tokio::test(start_paused = true)]
async fn the_cache_reads_ahead_on_its_own_while_the_runtime_runs() {
    let (store, inner, clock) = refreshed();
    let (_, s) = signed_in(&store, "task@example.com").await;
    for _ in 0..2 {
        assert!(store.find(&s.storage_key()).await.unwrap().is_some());
    }
    clock.advance(time::Duration::milliseconds(6_500));
    let calls = inner.calls();
    // The task wakes every half window (1 s of Tokio's paused clock, advanced here).
    tokio::time::advance(Duration::from_millis(1_001)).await;
    for _ in 0..1_000 {
        if inner.calls() > calls {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(inner.calls(), calls + 1, "the task read the entry again");
    clock.advance(time::Duration::milliseconds(2_000));
    let calls = inner.calls();
    assert!(store.find(&s.storage_key()).await.unwrap().is_some());
    assert_eq!(
        inner.calls(),
        calls,
        "and it is still a hit past its first term"
    );
}

/// Sessions cached in the same millisecond do not all expire in the same millisecond: each is
/// served for between seven eighths of the TTL and the TTL, so their reads of the store come
/// spread over the last eighth.
#[tokio::test]
async fn entries_cached_together_expire_spread_over_the_last_eighth_of_the_ttl() {
    let (store, inner, clock) = timed(Duration::from_secs(32), Duration::from_secs(5));
    let mut sessions = Vec::new();
    for i in 0..200 {
        sessions.push(signed_in(&store, &format!("spread{i}@example.com")).await.1);
    }
    let keys: Vec<_> = sessions.iter().map(|s| s.storage_key()).collect();
    for key in &keys {
        assert!(store.find(key).await.unwrap().is_some());
    }
    let calls = inner.calls();
    clock.advance(time::Duration::milliseconds(27_999));
    for key in &keys {
        assert!(store.find(key).await.unwrap().is_some());
    }
    assert_eq!(
        inner.calls(),
        calls,
        "7/8 of the TTL: every entry still served"
    );

    clock.advance(time::Duration::milliseconds(2_001));
    for key in &keys {
        assert!(store.find(key).await.unwrap().is_some());
    }
    let halfway = inner.calls() - calls;
    assert!(
        halfway > 20 && halfway < 180,
        "15/16 of the TTL: some entries expired, not all ({halfway} of 200)"
    );

    clock.advance(time::Duration::milliseconds(2_000));
    let calls = inner.calls();
    for key in &keys {
        assert!(store.find(key).await.unwrap().is_some());
    }
    assert_eq!(
        inner.calls() - calls,
        200 - halfway,
        "at the TTL every entry cached at the start is read again, each once"
    );
}

#[tokio::test]
async fn negative_entries_live_their_shorter_ttl() {
    let (store, inner, clock) = timed(Duration::from_secs(30), Duration::from_secs(5));
    let unknown = StorageKey::new("unknown-but-signed");
    assert!(store.find(&unknown).await.unwrap().is_none());
    let calls = inner.calls();
    clock.advance(time::Duration::milliseconds(4_374));
    assert!(store.find(&unknown).await.unwrap().is_none());
    assert_eq!(inner.calls(), calls, "remembered as missing");
    clock.advance(time::Duration::milliseconds(626));
    assert!(store.find(&unknown).await.unwrap().is_none());
    assert_eq!(inner.calls(), calls + 1, "asked again after negative_ttl");
}

#[tokio::test]
async fn zero_ttls_cache_nothing() {
    let (store, inner, _) = timed(Duration::ZERO, Duration::ZERO);
    let (_, s) = signed_in(&store, "zero@example.com").await;
    let calls = inner.calls();
    for _ in 0..3 {
        assert!(store.find(&s.storage_key()).await.unwrap().is_some());
        assert!(store
            .find(&StorageKey::new("nope"))
            .await
            .unwrap()
            .is_none());
    }
    assert_eq!(inner.calls(), calls + 6);
    assert_eq!(store.entry_count(), 0);
}

#[tokio::test]
async fn the_number_of_entries_is_bounded() {
    let store = CachedStore::builder(MemoryStore::new())
        .max_entries(100)
        .build();
    for i in 0..2_000 {
        let key = format!("garbage-{i}");
        assert!(store.find(&StorageKey::new(key)).await.unwrap().is_none());
    }
    let n = store.entry_count();
    assert!((1..=100).contains(&n), "{n} entries for a bound of 100");
}

#[tokio::test]
async fn revoking_a_user_drops_only_that_users_entries() {
    let (store, inner, _) = timed(Duration::from_secs(30), Duration::from_secs(5));
    let (alice, a1) = signed_in(&store, "alice@example.com").await;
    let a2 = store
        .create(
            &conformance::session(&alice, conformance::NOW + time::Duration::days(7)),
            &alice,
        )
        .await
        .unwrap();
    let (_, b) = signed_in(&store, "bob@example.com").await;
    for s in [&a1, &a2, &b] {
        assert!(store.find(&s.storage_key()).await.unwrap().is_some());
    }
    store.delete_user_sessions(&alice.id).await.unwrap();
    let calls = inner.calls();
    assert!(store.find(&a1.storage_key()).await.unwrap().is_none());
    assert!(store.find(&a2.storage_key()).await.unwrap().is_none());
    assert_eq!(inner.calls(), calls + 2, "alice's entries were dropped");
    assert!(store.find(&b.storage_key()).await.unwrap().is_some());
    assert_eq!(inner.calls(), calls + 2, "bob's is still cached");
}

/// A store whose lookups read the row, then wait for a signal before answering: a read in
/// flight while a revocation happens.
///
/// Writes can be held too: with `hold_writes` set, an extension waits for `write_gate` before
/// it writes (signalling `writing`), and a deletion deletes the row and then never answers (a
/// reply lost, a request dropped); with `commit_later` set, a deletion is received and never
/// answered, and its row goes only when `commit` is notified (a statement the database runs
/// after its client gave up).
#[derive(Clone)]
struct Slow {
    inner: MemoryStore,
    gate: std::sync::Arc<tokio::sync::Notify>,
    reading: std::sync::Arc<tokio::sync::Notify>,
    hold_writes: std::sync::Arc<std::sync::atomic::AtomicBool>,
    write_gate: std::sync::Arc<tokio::sync::Notify>,
    writing: std::sync::Arc<tokio::sync::Notify>,
    commit_later: std::sync::Arc<std::sync::atomic::AtomicBool>,
    commit: std::sync::Arc<tokio::sync::Notify>,
}

impl Slow {
    fn new() -> Self {
        Self {
            inner: MemoryStore::new(),
            gate: std::sync::Arc::default(),
            reading: std::sync::Arc::default(),
            hold_writes: std::sync::Arc::default(),
            write_gate: std::sync::Arc::default(),
            writing: std::sync::Arc::default(),
            commit_later: std::sync::Arc::default(),
            commit: std::sync::Arc::default(),
        }
    }

    fn holds_writes(&self) -> bool {
        self.hold_writes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A user of `email` and a week-long session of theirs, created through `store`.
    async fn signed_in(&self, store: &CachedStore<Slow>, email: &str) -> Session {
        let user = User::new(email, "S", conformance::NOW);
        self.inner.insert_user(user.clone());
        let s = conformance::session(&user, conformance::NOW + time::Duration::days(7));
        store.create(&s, &user).await.unwrap();
        s
    }

    /// A lookup of `s` through `store` that has read the row and is held before it caches the
    /// answer (released by `gate`).
    async fn held_find(
        &self,
        store: &CachedStore<Slow>,
        s: &Session,
    ) -> tokio::task::JoinHandle<Option<Authenticated>> {
        let reader = {
            let store = store.clone();
            let key = s.token.clone();
            tokio::spawn(async move { store.find(&StorageKey::new(key)).await.unwrap() })
        };
        self.reading.notified().await;
        reader
    }
}

impl SessionStore for Slow {
    async fn find(&self, key: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        let found = self.inner.find(key).await;
        self.reading.notify_one();
        self.gate.notified().await;
        found
    }
    async fn create(&self, s: &Session, u: &User) -> Result<Session, StoreError> {
        self.inner.create(s, u).await
    }
    async fn extend(
        &self,
        key: &StorageKey<'_>,
        at: time::OffsetDateTime,
        now: time::OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        if self.holds_writes() {
            self.writing.notify_one();
            self.write_gate.notified().await;
        }
        self.inner.extend(key, at, now).await
    }
    async fn delete(&self, key: &StorageKey<'_>) -> Result<(), StoreError> {
        if self.commit_later.load(std::sync::atomic::Ordering::SeqCst) {
            let (inner, commit, token) = (
                self.inner.clone(),
                self.commit.clone(),
                key.as_str().to_owned(),
            );
            tokio::spawn(async move {
                commit.notified().await;
                inner.delete(&StorageKey::new(token)).await.unwrap();
            });
            std::future::pending::<()>().await;
        }
        self.inner.delete(key).await?;
        if self.holds_writes() {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        self.inner.delete_user_sessions(user_id).await
    }
    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: time::OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        self.inner.list_user_sessions(user_id, now).await
    }
    async fn delete_expired(&self, now: time::OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.delete_expired(now).await
    }
}

/// Polls `call` once and drops it, as a client that went away or a timeout does; fails if the
/// call finished in that poll.
async fn polled_once_then_dropped<T>(call: impl std::future::Future<Output = T>) {
    let mut call = std::pin::pin!(call);
    tokio::select! {
        biased;
        _ = &mut call => panic!("the call was to be held"),
        () = std::future::ready(()) => {}
    }
}

#[tokio::test]
async fn a_revocation_dropped_after_the_store_deleted_the_row_still_drops_the_entry() {
    let slow = Slow::new();
    let store = CachedStore::builder(slow.clone()).build();
    let s = slow.signed_in(&store, "dropped@example.com").await;
    let key = s.storage_key();
    slow.gate.notify_one();
    assert!(store.find(&key).await.unwrap().is_some());
    assert!(store.find_now(&key).is_some(), "cached");

    slow.hold_writes
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // One poll: the store deletes the row, and its answer never comes; then the call is
    // dropped (the client went away, a timeout fired).
    polled_once_then_dropped(store.delete(&key)).await;
    assert!(
        slow.inner.find(&key).await.unwrap().is_none(),
        "the store deleted the row"
    );
    assert!(
        store.find_now(&key).is_none(),
        "the cache still serves a session the store deleted"
    );
}

/// A revocation dropped before the store answered, whose write commits afterwards (a statement
/// the database received runs without its client), while a request in between read the row
/// and cached it: the invalidation is applied again once such a write has had time to land, so
/// the revoked session is not served for the rest of the TTL.
#[tokio::test(start_paused = true)]
async fn a_revocation_that_commits_after_its_call_was_dropped_still_drops_the_entry() {
    let slow = Slow::new();
    let store = CachedStore::builder(slow.clone())
        .ttl(Duration::from_secs(600))
        .build();
    let s = slow.signed_in(&store, "late@example.com").await;
    let key = s.storage_key();
    slow.gate.notify_one();
    assert!(store.find(&key).await.unwrap().is_some());

    slow.commit_later
        .store(true, std::sync::atomic::Ordering::SeqCst);
    polled_once_then_dropped(store.delete(&key)).await;
    assert!(store.find_now(&key).is_none(), "dropped at once");
    // A request reads the row the deletion has not removed yet, and caches it...
    slow.gate.notify_one();
    assert!(store.find(&key).await.unwrap().is_some());
    assert!(store.find_now(&key).is_some(), "cached again");
    // ...then the deletion commits.
    slow.commit.notify_one();
    let mut spins = 0;
    while slow.inner.find(&key).await.unwrap().is_some() {
        spins += 1;
        assert!(spins < 100_000, "the deletion never committed");
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        store.find_now(&key).is_none(),
        "the cache still serves a session whose deletion committed after its call was dropped"
    );
}

#[tokio::test]
async fn an_extension_does_not_give_the_cached_user_row_a_new_ttl() {
    let (store, inner, clock) = timed(Duration::from_secs(8), Duration::from_secs(5));
    let (user, s) = signed_in(&store, "extended@example.com").await;
    let key = s.storage_key();
    assert_eq!(store.find(&key).await.unwrap().unwrap().user.name, "T");
    // The user's row changes behind the cache (an admin renames them; no feed is watched)...
    inner.inner.insert_user(User {
        name: "Renamed".to_owned(),
        ..user
    });
    // ...and the session is extended through the cache 6 s into the 8 s TTL.
    clock.advance(time::Duration::seconds(6));
    let later = conformance::NOW + time::Duration::days(8);
    store
        .extend(&key, later, conformance::NOW)
        .await
        .unwrap()
        .expect("extended");
    let hit = store.find_now(&key).unwrap().unwrap().unwrap();
    assert_eq!(hit.session.expires_at, later, "the new expiry is served");
    // Past the TTL of the read that cached the user row, it is read again.
    clock.advance(time::Duration::seconds(3));
    assert_eq!(
        store.find(&key).await.unwrap().unwrap().user.name,
        "Renamed",
        "the user row was served past its TTL because the session was extended"
    );
}

#[tokio::test]
async fn a_read_ahead_that_began_during_an_extension_does_not_put_the_old_expiry_back() {
    let (store, slow, s) = due_entry("during@example.com").await;
    let key = s.storage_key();
    let later = conformance::NOW + time::Duration::days(8);
    slow.hold_writes
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // The extension has begun and not yet written...
    let extending = {
        let store = store.clone();
        let key = s.token.clone();
        tokio::spawn(async move {
            store
                .extend(&StorageKey::new(key), later, conformance::NOW)
                .await
                .unwrap()
        })
    };
    slow.writing.notified().await;
    // ...a read ahead reads the old row and is held...
    let refresh = {
        let store = store.clone();
        tokio::spawn(async move { store.refresh_due().await.unwrap() })
    };
    slow.reading.notified().await;
    // ...the extension writes and returns, then the read ahead answers.
    slow.write_gate.notify_one();
    assert!(extending.await.unwrap().is_some());
    slow.gate.notify_one();
    assert_eq!(refresh.await.unwrap(), 1);
    slow.gate.notify_one();
    assert_eq!(
        store.find(&key).await.unwrap().unwrap().session.expires_at,
        later,
        "a read ahead that raced the extension cached the old expiry"
    );
}

#[tokio::test]
async fn a_read_that_races_a_revocation_is_not_cached() {
    let slow = Slow::new();
    let store = CachedStore::builder(slow.clone()).build();
    let s = slow.signed_in(&store, "race@example.com").await;

    // A lookup reads the live row and is held before it caches the answer...
    let reader = slow.held_find(&store, &s).await;
    // ...the session is revoked meanwhile...
    store.delete(&s.storage_key()).await.unwrap();
    slow.gate.notify_one();
    assert!(
        reader.await.unwrap().is_some(),
        "the in-flight read saw the old row"
    );
    // ...and the stale answer was not kept: nothing is cached for the token (the inner store
    // answers nothing at once, so only the cache could answer here).
    assert!(
        store.find_now(&s.storage_key()).is_none(),
        "a revoked session was cached by a read that raced its revocation"
    );
    assert_eq!(store.entry_count(), 0);
}

/// A cache over a [`Slow`] store (served 7 to 8 s, read ahead in the last 2 s) holding one
/// session that was read since it was cached, 6.5 s after it was: due for a read ahead.
async fn due_entry(email: &str) -> (CachedStore<Slow>, Slow, Session) {
    let slow = Slow::new();
    let clock = ManualClock::new(conformance::NOW);
    let store = CachedStore::builder(slow.clone())
        .ttl(Duration::from_secs(8))
        .refresh_ahead(Duration::from_secs(2))
        .clock(clock.clone())
        .build();
    let s = slow.signed_in(&store, email).await;
    slow.gate.notify_one();
    assert!(store.find(&s.storage_key()).await.unwrap().is_some());
    slow.reading.notified().await;
    assert!(
        store.find(&s.storage_key()).await.unwrap().is_some(),
        "a hit"
    );
    clock.advance(time::Duration::milliseconds(6_500));
    (store, slow, s)
}

/// [`due_entry`], and a read ahead of it that has read the row and is held before it caches
/// the answer (released by `slow.gate`).
async fn read_ahead_held(
    email: &str,
) -> (
    CachedStore<Slow>,
    Slow,
    Session,
    tokio::task::JoinHandle<usize>,
) {
    let (store, slow, s) = due_entry(email).await;
    let refresh = {
        let store = store.clone();
        tokio::spawn(async move { store.refresh_due().await.unwrap() })
    };
    slow.reading.notified().await;
    (store, slow, s, refresh)
}

#[tokio::test]
async fn a_read_ahead_that_races_a_revocation_is_not_cached() {
    // The read ahead has read the live row and is held before it caches the answer...
    let (store, slow, s, refresh) = read_ahead_held("ahead@example.com").await;
    // ...the session is revoked meanwhile...
    store.delete(&s.storage_key()).await.unwrap();
    slow.gate.notify_one();
    assert_eq!(refresh.await.unwrap(), 1);
    // ...and what it read was not kept.
    assert!(
        store.find_now(&s.storage_key()).is_none(),
        "a read ahead that raced a revocation cached the revoked session"
    );
    assert_eq!(store.entry_count(), 0);
}

#[tokio::test]
async fn a_read_ahead_that_began_before_an_extension_does_not_put_the_old_expiry_back() {
    // A read ahead has read the row, then the session is extended through the cache...
    let (store, slow, s, refresh) = read_ahead_held("extend@example.com").await;
    let later = conformance::NOW + time::Duration::days(8);
    let extended = store
        .extend(&s.storage_key(), later, conformance::NOW)
        .await
        .unwrap()
        .expect("extended");
    assert_eq!(extended.expires_at, later);
    slow.gate.notify_one();
    assert_eq!(refresh.await.unwrap(), 1);
    // ...and the expiry served is the new one, whatever the cache holds.
    slow.gate.notify_one();
    let served = store.find(&s.storage_key()).await.unwrap().unwrap();
    assert_eq!(served.session.expires_at, later, "the old expiry came back");
}

/// An invalidation of something else during a read ahead (another user's sessions revoked,
/// which moves the cache-wide counter every fill is checked against) leaves the entry read
/// again and served: a read ahead exists to keep sessions in use cached without a miss.
#[tokio::test]
async fn a_read_ahead_keeps_its_entry_when_another_user_is_revoked() {
    let (store, slow, s, refresh) = read_ahead_held("kept@example.com").await;
    store.delete_user_sessions("someone-else").await.unwrap();
    slow.gate.notify_one();
    assert_eq!(refresh.await.unwrap(), 1);
    let served = store
        .find_now(&s.storage_key())
        .expect("still cached after another user's revocation")
        .unwrap()
        .expect("the session");
    assert_eq!(served.session.token, s.token);
}

#[tokio::test]
async fn an_entrys_ttl_runs_from_when_its_read_began() {
    let slow = Slow::new();
    let clock = ManualClock::new(conformance::NOW);
    let store = CachedStore::builder(slow.clone())
        .ttl(Duration::from_secs(8))
        .clock(clock.clone())
        .build();
    let s = slow.signed_in(&store, "slowread@example.com").await;
    let reader = slow.held_find(&store, &s).await;
    // The read takes 5 s of the 8 s TTL.
    clock.advance(time::Duration::seconds(5));
    slow.gate.notify_one();
    assert!(reader.await.unwrap().is_some());
    assert!(store.find_now(&s.storage_key()).is_some(), "cached");
    clock.advance(time::Duration::milliseconds(3_001));
    assert!(
        store.find_now(&s.storage_key()).is_none(),
        "served longer than the TTL after the read began"
    );
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_sqlite_feed_drops_rows_deleted_behind_the_stores_back() {
    use tower_auth_session::SqliteStore;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("feed.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    let builder = store.session_changes();
    let ddl = builder.ddl().unwrap();
    assert_eq!(ddl.len(), 4, "{ddl:?}");
    assert!(ddl[1].contains(r#"after delete on "session""#), "{ddl:?}");
    assert!(ddl[3].contains(r#"after update on "user""#), "{ddl:?}");
    let changes = builder.create_trigger(true).start().await.unwrap();
    let cached = watching(&store, &changes);
    assert_eq!(cached.watched().len(), 1);
    let user = store
        .insert_user(&User::new("feed@example.com", "F", conformance::NOW))
        .await
        .unwrap();
    let s = store
        .create(
            &conformance::session(
                &user,
                time::OffsetDateTime::now_utc() + time::Duration::days(7),
            ),
            &user,
        )
        .await
        .unwrap();
    assert!(cached.find(&s.storage_key()).await.unwrap().is_some());

    // Another writer (as Better Auth would) deletes the row through its own connection.
    let mut rx = changes.applied();
    let seen = *rx.borrow();
    let other = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(r#"delete from "session" where "token" = ?"#)
        .bind(&s.token)
        .execute(&other)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|n| *n > seen))
        .await
        .expect("the change table reported the delete")
        .unwrap();
    assert!(cached.find(&s.storage_key()).await.unwrap().is_none());
    // The trigger did not get in the writer's way, and its rows are there to be pruned.
    let rows: i64 = sqlx::query_scalar(r#"select count(*) from "tas_session_changes""#)
        .fetch_one(&other)
        .await
        .unwrap();
    assert!(rows >= 1);
}

/// `authoritative_for` reads past a `CachedStore`'s entry, with the cookie cache on and off:
/// a session deleted behind the cache (by Better Auth, with no change feed) is refused on
/// those routes at once, while the others may serve it until the cache's TTL. It was served on
/// every route, and with the cookie cache off `authoritative_for` did nothing at all.
#[tokio::test]
async fn authoritative_routes_read_past_a_cached_store() {
    use tower_auth_session::extract::MaybeUser;
    use tower_auth_session::{CookieCache, SessionConfig, SessionLayer, SignIn};
    for cookie_cache in [false, true] {
        let inner = MemoryStore::new();
        let store = CachedStore::builder(inner.clone())
            .ttl(Duration::from_secs(600))
            .build();
        let mut config = SessionConfig::builder()
            .secret(common::SECRET)
            .authoritative_for("/account/");
        if cookie_cache {
            config = config.cookie_cache(CookieCache::compact());
        }
        let layer = SessionLayer::new(config.build().unwrap(), store.clone());
        let email = |MaybeUser(u): MaybeUser| async move {
            u.map_or("anonymous".to_owned(), |u| u.email.clone())
        };
        let app = axum::Router::new()
            .route("/me", axum::routing::get(email))
            .route("/account", axum::routing::get(email))
            .route("/account/delete", axum::routing::get(email))
            .layer(layer.clone());
        let user = User::new("past@example.com", "P", conformance::NOW);
        inner.insert_user(user.clone());
        let signed = layer.manager().sign_in(&user, SignIn::new()).await.unwrap();
        let mut cookie = common::session_cookie(&signed);
        let first = common::send(app.clone(), common::get_req("/me", Some(&cookie))).await;
        assert_eq!(first.body, "past@example.com", "cached");
        if cookie_cache {
            // The cache cookie too: the other routes take the session from it.
            cookie = format!(
                "{cookie}; {}",
                first.cookie_pair("better-auth.session_data")
            );
        }
        let get = |path: &'static str| {
            let app = app.clone();
            let cookie = cookie.clone();
            async move {
                common::send(app, common::get_req(path, Some(&cookie)))
                    .await
                    .body
            }
        };
        inner.delete(&signed.session.storage_key()).await.unwrap();
        assert_eq!(
            get("/me").await,
            "past@example.com",
            "other routes are served from the cache until its TTL"
        );
        for path in ["/account", "/account/delete"] {
            assert_eq!(
                get(path).await,
                "anonymous",
                "{path}, cookie cache {cookie_cache}"
            );
        }
    }
}

/// A cache of `store` watching `changes`, with a TTL long enough that only the feed drops
/// entries.
fn watching<S: SessionStore + Clone>(
    store: &S,
    changes: &tower_auth_session::store::SessionChanges,
) -> CachedStore<S> {
    CachedStore::builder(store.clone())
        .ttl(Duration::from_secs(600))
        .watch(changes.clone())
        .build()
}

/// A SQLite store in a fresh file of `dir` named `file`, its URL, and its change feed (created).
#[cfg(feature = "sqlite")]
async fn sqlite_feed(
    dir: &tempfile::TempDir,
    file: &str,
) -> (
    String,
    tower_auth_session::SqliteStore,
    tower_auth_session::store::SessionChanges,
) {
    let url = format!("sqlite://{}", dir.path().join(file).display());
    let store = tower_auth_session::SqliteStore::connect(&url)
        .await
        .unwrap();
    let changes = store
        .session_changes()
        .create_trigger(true)
        .start()
        .await
        .unwrap();
    (url, store, changes)
}

/// The change table emptied and its ids started again (a `TRUNCATE` on MySQL, a rebuilt
/// table, a failover to a server that lacked the last rows; here SQLite's sequence reset) and a
/// session revoked at once: its change row reuses an id the feed had applied, and was skipped
/// for good. The feed sees the ids went backwards and drops every cached session.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_change_ids_start_again_drops_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (url, store, changes) = sqlite_feed(&dir, "restarted.db").await;
    let cached = watching(&store, &changes);
    let user = store
        .insert_user(&User::new("ids@example.com", "I", conformance::NOW))
        .await
        .unwrap();
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(7);
    let other = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mut applied = changes.applied();
    // Three changes the feed applies: ids 1, 2 and 3.
    for _ in 0..3 {
        let s = store
            .create(&conformance::session(&user, later), &user)
            .await
            .unwrap();
        common::reported(
            &mut applied,
            Duration::from_secs(10),
            "a delete was reported",
            async {
                sqlx::query(r#"delete from "session" where "token" = ?"#)
                    .bind(&s.token)
                    .execute(&other)
                    .await
                    .unwrap();
            },
        )
        .await;
    }
    let s = store
        .create(&conformance::session(&user, later), &user)
        .await
        .unwrap();
    assert!(cached.find(&s.storage_key()).await.unwrap().is_some());
    // In one transaction, so the feed never sees the empty table: emptied, ids reset, and the
    // session revoked (change id 1 again).
    let mut tx = other.begin().await.unwrap();
    for statement in [
        r#"delete from "tas_session_changes""#,
        "delete from sqlite_sequence where name = 'tas_session_changes'",
    ] {
        sqlx::query(statement).execute(&mut *tx).await.unwrap();
    }
    sqlx::query(r#"delete from "session" where "token" = ?"#)
        .bind(&s.token)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    common::until(
        "the revoked session is still served from the cache",
        Duration::from_secs(5),
        || async { cached.find_now(&s.storage_key()).is_none() },
    )
    .await;
}

/// A migration tool that drops the change table (not knowing it) leaves its triggers on the
/// session table, and then every session update and delete fails, Better Auth's included.
/// A feed allowed to create the table recreates it, drops every cached session (changes were
/// missed), and goes on reporting.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_change_table_is_recreated_by_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let (url, store, changes) = sqlite_feed(&dir, "dropped.db").await;
    let cached = watching(&store, &changes);
    let user = store
        .insert_user(&User::new("dropped@example.com", "D", conformance::NOW))
        .await
        .unwrap();
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(7);
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let s = conformance::session(&user, later);
        sessions.push(store.create(&s, &user).await.unwrap());
    }
    assert!(cached
        .find(&sessions[0].storage_key())
        .await
        .unwrap()
        .is_some());

    let other = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mut rx = changes.applied();
    sqlx::query(r#"drop table "tas_session_changes""#)
        .execute(&other)
        .await
        .unwrap();
    // Each change the feed applies is a moment to look: the recreation comes with one that
    // drops every cached session.
    let recreated = async {
        loop {
            rx.changed().await.unwrap();
            let tables: i64 = sqlx::query_scalar(
                "select count(*) from sqlite_master where name = 'tas_session_changes'",
            )
            .fetch_one(&other)
            .await
            .unwrap();
            if tables == 1 && cached.find_now(&sessions[0].storage_key()).is_none() {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), recreated)
        .await
        .expect("the feed recreated the table and dropped every cached session");
    // Writers work again, and their changes are reported.
    assert!(cached
        .find(&sessions[1].storage_key())
        .await
        .unwrap()
        .is_some());
    let seen = *rx.borrow();
    sqlx::query(r#"delete from "session" where "token" = ?"#)
        .bind(&sessions[1].token)
        .execute(&other)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|n| *n > seen))
        .await
        .expect("the delete was reported")
        .unwrap();
    assert!(cached
        .find(&sessions[1].storage_key())
        .await
        .unwrap()
        .is_none());
}

/// A migration that rebuilds the user table (Prisma's "redefine table", a copy and rename)
/// drops its triggers: a user's new role or ban was then served from the cache until its TTL,
/// with no log line. The feed keeps the user table's trigger as it keeps the session table's:
/// recreated, and every cached session dropped (changes were missed meanwhile).
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_user_trigger_is_recreated_by_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("user-trigger.db").display());
    let store = tower_auth_session::SqliteStore::connect(&url)
        .await
        .unwrap();
    // Checked every 5 s (a quarter of the retention).
    let changes = store
        .session_changes()
        .create_trigger(true)
        .retention(Duration::from_secs(20))
        .start()
        .await
        .unwrap();
    let cached = watching(&store, &changes);
    let user = store
        .insert_user(&User::new("rebuilt@example.com", "R", conformance::NOW))
        .await
        .unwrap();
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(7);
    let s = store
        .create(&conformance::session(&user, later), &user)
        .await
        .unwrap();
    assert!(cached.find(&s.storage_key()).await.unwrap().is_some());

    let other = sqlx::SqlitePool::connect(&url).await.unwrap();
    let trigger_there = || async {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from sqlite_master where type = 'trigger' \
             and name = 'tas_session_changes_user'",
        )
        .fetch_one(&other)
        .await
        .unwrap();
        n == 1
    };
    let rename = |name: &'static str| {
        let (other, id) = (&other, &user.id);
        async move {
            sqlx::query(r#"update "user" set "name" = ? where "id" = ?"#)
                .bind(name)
                .bind(id)
                .execute(other)
                .await
                .unwrap();
        }
    };
    sqlx::query(r#"drop trigger "tas_session_changes_user""#)
        .execute(&other)
        .await
        .unwrap();
    // The user's row changes while nothing reports it...
    rename("Banned meanwhile").await;
    // ...the feed puts the trigger back and drops what it may have missed.
    common::until(
        "the user trigger was not recreated and the cache not dropped",
        Duration::from_secs(30),
        || async { trigger_there().await && cached.find_now(&s.storage_key()).is_none() },
    )
    .await;
    let served = cached.find(&s.storage_key()).await.unwrap().unwrap();
    assert_eq!(served.user.name, "Banned meanwhile");
    // And a user's change is reported again.
    rename("Again").await;
    common::until(
        "a user's change was not reported",
        Duration::from_secs(10),
        || async { cached.find_now(&s.storage_key()).is_none() },
    )
    .await;
}

/// A migration that swaps in a rebuilt session table and keeps the old one (gh-ost's `_del`
/// table, pt-online-schema-change with `--no-drop-old-table`, a copy and two renames by hand):
/// the feed's triggers move with the old table, and a check by name alone found them there
/// while nothing reported the live table's changes. The feed sees they are on the wrong table,
/// moves them to the table in use, and drops every cached session (changes were missed).
///
/// Another instance, whose own check does not run meanwhile (`bystander`: a feed that may not
/// create and checks every 75 s), drops its cache too: the repairing feed tells it through
/// the change table.
///
/// `delete` deletes a session by token on the store's database; `swap` swaps the session table
/// for a copy and renames the old one `_session_del`; `triggers_on` counts the feed's
/// triggers on a table.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
async fn a_swapped_session_table_gets_the_triggers_back<D, Run, RunFut, Swap, On, OnFut>(
    store: tower_auth_session::store::SqlStore<D>,
    changes: tower_auth_session::store::SessionChanges,
    bystander: tower_auth_session::store::SessionChanges,
    delete: Run,
    swap: Swap,
    triggers_on: On,
) where
    D: tower_auth_session::store::Dialect,
    Run: Fn(String) -> RunFut,
    RunFut: std::future::Future<Output = ()>,
    Swap: std::future::Future<Output = ()>,
    On: Fn(&'static str) -> OnFut,
    OnFut: std::future::Future<Output = i64>,
{
    let cached = watching(&store, &changes);
    let other_instance = watching(&store, &bystander);
    let user = store
        .insert_user(&User::new("swapped@example.com", "S", conformance::NOW))
        .await
        .unwrap();
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(7);
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let s = conformance::session(&user, later);
        sessions.push(store.create(&s, &user).await.unwrap());
    }
    for cache in [&cached, &other_instance] {
        assert!(cache
            .find(&sessions[0].storage_key())
            .await
            .unwrap()
            .is_some());
    }
    assert_eq!(triggers_on("session").await, 2);
    swap.await;

    common::until(
        "the triggers were not moved to the table in use, or the cache not dropped",
        Duration::from_secs(30),
        || async {
            triggers_on("session").await == 2
                && cached.find_now(&sessions[0].storage_key()).is_none()
        },
    )
    .await;
    assert_eq!(triggers_on("_session_del").await, 0);
    common::until(
        "the other instance did not drop its cache",
        Duration::from_secs(10),
        || async {
            other_instance
                .find_now(&sessions[0].storage_key())
                .is_none()
        },
    )
    .await;
    // The live table's changes are reported again.
    assert!(cached
        .find(&sessions[1].storage_key())
        .await
        .unwrap()
        .is_some());
    delete(sessions[1].token.clone()).await;
    common::until(
        "a delete from the table in use was not reported",
        Duration::from_secs(10),
        || async { cached.find_now(&sessions[1].storage_key()).is_none() },
    )
    .await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_session_table_gets_the_triggers_back_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("swapped.db").display());
    let store = tower_auth_session::SqliteStore::connect(&url)
        .await
        .unwrap();
    // Checked every 5 s (a quarter of the retention).
    let changes = store
        .session_changes()
        .create_trigger(true)
        .retention(Duration::from_secs(20))
        .start()
        .await
        .unwrap();
    // Checks every 15 minutes: its own check cannot drop its cache during the test.
    let bystander = store
        .session_changes()
        .retention(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let other = sqlx::SqlitePool::connect(&url).await.unwrap();
    let swap = swap_sqlite_session_table(&other);
    let delete = |token: String| {
        let other = &other;
        async move {
            sqlx::query(r#"delete from "session" where "token" = ?"#)
                .bind(token)
                .execute(other)
                .await
                .unwrap();
        }
    };
    let triggers_on = |table: &'static str| {
        let other = &other;
        async move {
            sqlx::query_scalar(
                "select count(*) from sqlite_master where type = 'trigger' \
                 and name like 'tas_session_changes_%' and tbl_name = ?",
            )
            .bind(table)
            .fetch_one(other)
            .await
            .unwrap()
        }
    };
    a_swapped_session_table_gets_the_triggers_back(
        store,
        changes,
        bystander,
        delete,
        swap,
        triggers_on,
    )
    .await;
}

/// Swaps the session table for a copy, keeping the old one as `_session_del`, in one
/// transaction that checks that the feed's two triggers moved with the old table.
#[cfg(feature = "sqlite")]
async fn swap_sqlite_session_table(db: &sqlx::SqlitePool) {
    let schema: String = sqlx::query_scalar(
        "select sql from sqlite_master where type = 'table' and name = 'session'",
    )
    .fetch_one(db)
    .await
    .unwrap();
    let copy = schema.replacen(r#""session""#, r#""session_new""#, 1);
    assert_ne!(copy, schema, "the copy's statement names its own table");
    let mut swap = db.begin().await.unwrap();
    for statement in [
        copy.as_str(),
        r#"insert into "session_new" select * from "session""#,
        r#"alter table "session" rename to "_session_del""#,
        r#"alter table "session_new" rename to "session""#,
    ] {
        sqlx::query(statement).execute(&mut *swap).await.unwrap();
    }
    let moved: i64 = sqlx::query_scalar(
        "select count(*) from sqlite_master where type = 'trigger' \
         and name like 'tas_session_changes_%' and tbl_name = '_session_del'",
    )
    .fetch_one(&mut *swap)
    .await
    .unwrap();
    assert_eq!(moved, 2, "the triggers moved with the old table");
    swap.commit().await.unwrap();
}

/// Without `create_trigger(true)`, a feed started after such a swap refuses to start, and
/// says where the triggers are and what to drop: the `.ddl()` statements alone cannot create
/// triggers whose names are taken.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_feed_refuses_to_start_on_a_swapped_table_and_says_where_the_triggers_are() {
    let dir = tempfile::tempdir().unwrap();
    let (url, store, changes) = sqlite_feed(&dir, "refused.db").await;
    drop(changes);
    let other = sqlx::SqlitePool::connect(&url).await.unwrap();
    swap_sqlite_session_table(&other).await;
    let error = store
        .session_changes()
        .start()
        .await
        .unwrap_err()
        .to_string();
    for part in [
        "1 of 3 found",
        "tas_session_changes_delete is on table _session_del",
        r#"drop trigger if exists "tas_session_changes_update""#,
        "create_trigger(true)",
    ] {
        assert!(error.contains(part), "{part:?} not in {error}");
    }
}

/// A rolling deploy after such a swap: the new instance's feed moves the triggers back as it
/// starts, and the instances already running (whose own checks have not run yet) drop what
/// they cached while nothing reported the live table's changes.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_that_repairs_as_it_starts_tells_the_running_instances() {
    let dir = tempfile::tempdir().unwrap();
    // Checks every 75 s: not during this test.
    let (url, store, changes) = sqlite_feed(&dir, "deploy.db").await;
    let running = watching(&store, &changes);
    let user = store
        .insert_user(&User::new("deploy@example.com", "D", conformance::NOW))
        .await
        .unwrap();
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(7);
    let s = store
        .create(&conformance::session(&user, later), &user)
        .await
        .unwrap();
    assert!(running.find(&s.storage_key()).await.unwrap().is_some());
    let other = sqlx::SqlitePool::connect(&url).await.unwrap();
    swap_sqlite_session_table(&other).await;
    let _new_instance = store
        .session_changes()
        .create_trigger(true)
        .start()
        .await
        .unwrap();
    common::until(
        "the running instance did not drop its cache",
        Duration::from_secs(10),
        || async { running.find_now(&s.storage_key()).is_none() },
    )
    .await;
}

/// The same swap as gh-ost and pt-online-schema-change make it: one atomic `RENAME TABLE`.
#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_session_table_gets_the_triggers_back_on_mysql() {
    use tower_auth_session::store::MySqlStore;
    let test = "a_swapped_session_table_gets_the_triggers_back_on_mysql";
    let Some(url) = common::fresh_mysql_database(test).await else {
        return;
    };
    let store = MySqlStore::builder(url.as_str())
        .create_schema(true)
        .build()
        .await
        .unwrap();
    let changes = store
        .session_changes()
        .create_trigger(true)
        .retention(Duration::from_secs(20))
        .start()
        .await
        .unwrap();
    // Checks every 15 minutes: its own check cannot drop its cache during the test.
    let bystander = store
        .session_changes()
        .retention(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let other = sqlx::MySqlPool::connect(&url).await.unwrap();
    let swap = async {
        for statement in [
            "create table `session_new` like `session`",
            "insert into `session_new` select * from `session`",
            "rename table `session` to `_session_del`, `session_new` to `session`",
        ] {
            sqlx::query(statement).execute(&other).await.unwrap();
        }
    };
    let delete = |token: String| {
        let other = &other;
        async move {
            sqlx::query("delete from `session` where `token` = ?")
                .bind(token)
                .execute(other)
                .await
                .unwrap();
        }
    };
    let triggers_on = |table: &'static str| {
        let other = &other;
        async move {
            sqlx::query_scalar(
                "select count(*) from information_schema.triggers \
                 where trigger_schema = database() \
                 and trigger_name like 'tas\\_session\\_changes\\_%' \
                 and event_object_table = ?",
            )
            .bind(table)
            .fetch_one(other)
            .await
            .unwrap()
        }
    };
    a_swapped_session_table_gets_the_triggers_back(
        store,
        changes,
        bystander,
        delete,
        swap,
        triggers_on,
    )
    .await;
}

/// A change to a user's row alone (Better Auth's admin `setRole`, a new name or e-mail: an
/// `UPDATE` of the user table) drops that user's cached sessions through the PostgreSQL
/// feed, so the next read sees the new row. A database with only the session table's trigger
/// (made by an earlier version's `ddl()`) still starts.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_new_row_reaches_a_cache_over_postgres() {
    let Some(pg) = pg_feed("a_users_new_row_reaches_a_cache_over_postgres", |b| b).await else {
        return;
    };
    let ddl = pg.store.session_changes().ddl().unwrap();
    assert_eq!(ddl.len(), 5, "{ddl:?}");
    assert!(
        ddl[3].contains(r#"after delete or update on "user""#),
        "{ddl:?}"
    );
    let rename = |id: String| {
        let other = pg.other.clone();
        async move {
            sqlx::query(r#"update "user" set "name" = 'After' where "id" = $1"#)
                .bind(id)
                .execute(&other)
                .await
                .unwrap();
        }
    };
    a_users_new_row_reaches_the_cache(pg.store.clone(), pg.changes.clone(), rename).await;

    // Only the session table's trigger, as an earlier version made: still starts.
    pg.run(r#"drop trigger "tas_session_changes_users" on "user""#)
        .await;
    pg.store.session_changes().start().await.unwrap();
}

/// A PostgreSQL store on a fresh database with Better Auth's tables, its change feed (the
/// triggers created; `tune` changes the builder), and a pool of another client that writes
/// behind the store's back, as Better Auth does.
#[cfg(feature = "postgres")]
struct PgFeed {
    url: String,
    store: tower_auth_session::store::PostgresStore,
    changes: tower_auth_session::store::SessionChanges,
    other: sqlx::PgPool,
}

/// A [`PgFeed`] for `test`, `None` when no server is set.
#[cfg(feature = "postgres")]
async fn pg_feed(
    test: &str,
    tune: impl FnOnce(
        tower_auth_session::store::PostgresChangesBuilder,
    ) -> tower_auth_session::store::PostgresChangesBuilder,
) -> Option<PgFeed> {
    let url = common::fresh_pg_database(test).await?;
    let store = tower_auth_session::store::PostgresStore::builder(url.as_str())
        .create_schema(true)
        .build()
        .await
        .unwrap();
    let changes = tune(store.session_changes().create_trigger(true))
        .start()
        .await
        .unwrap();
    let other = sqlx::PgPool::connect(&url).await.unwrap();
    Some(PgFeed {
        url,
        store,
        changes,
        other,
    })
}

#[cfg(feature = "postgres")]
impl PgFeed {
    /// Runs `sql` (no parameters) as the other client.
    async fn run(&self, sql: &str) {
        sqlx::raw_sql(sql).execute(&self.other).await.unwrap();
    }

    /// Runs `sql` as the other client with `$1` = `token`.
    async fn run_with(&self, sql: &str, token: &str) {
        sqlx::query(sql)
            .bind(token)
            .execute(&self.other)
            .await
            .unwrap();
    }

    /// A user named `email`, with a session of a week written through the store.
    async fn signed_in(&self, email: &str) -> (User, Session) {
        let user = self
            .store
            .insert_user(&User::new(email, "Before", conformance::NOW))
            .await
            .unwrap();
        let session = conformance::session(
            &user,
            time::OffsetDateTime::now_utc() + time::Duration::days(7),
        );
        let session = self.store.create(&session, &user).await.unwrap();
        (user, session)
    }

    /// Runs `sql` with `$1` = `token` (none: no parameter), then waits up to 10 s for the feed
    /// to apply a change (`what` when it does not).
    async fn reported(&self, sql: &str, token: Option<&str>, what: &str) {
        let mut applied = self.changes.applied();
        let write = async {
            match token {
                Some(token) => self.run_with(sql, token).await,
                None => self.run(sql).await,
            }
        };
        common::reported(&mut applied, Duration::from_secs(10), what, write).await;
    }
}

/// PostgreSQL checks no privilege on `LISTEN`: whoever can connect hears the feed's channel.
/// It carries the fingerprint of each deleted or refreshed session's token (`#` and its
/// SHA-256 in hexadecimal), never the token, which would be a login; the cache still finds and
/// drops the session by it. A trigger function an earlier version made (which notifies the
/// token) keeps working.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_feed_tells_listeners_fingerprints_not_tokens() {
    use sha2::Digest as _;
    let test = "the_postgres_feed_tells_listeners_fingerprints_not_tokens";
    let Some(pg) = pg_feed(test, |b| b).await else {
        return;
    };
    let cached = watching(&pg.store, &pg.changes);
    let mut spy = sqlx::postgres::PgListener::connect(&pg.url).await.unwrap();
    spy.listen("tas_session_changes").await.unwrap();
    // Better Auth's refresh, then its sign-out, of a cached session.
    for (i, statement) in [
        r#"update "session" set "expiresAt" = "expiresAt" + interval '1 day' where "token" = $1"#,
        r#"delete from "session" where "token" = $1"#,
    ]
    .into_iter()
    .enumerate()
    {
        let (_, s) = pg.signed_in(&format!("spied{i}@example.com")).await;
        let key = s.storage_key();
        assert!(cached.find(&key).await.unwrap().is_some());
        pg.reported(statement, Some(&s.token), statement).await;
        let heard = tokio::time::timeout(Duration::from_secs(10), spy.recv())
            .await
            .expect("a notification")
            .unwrap();
        let digest: String = sha2::Sha256::digest(key.as_str().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(heard.payload(), format!("#{digest}"), "{statement}");
        assert!(!heard.payload().contains(key.as_str()));
        assert!(
            cached.find_now(&key).is_none(),
            "the cache kept a session changed behind its back: {statement}"
        );
    }

    // The function as an earlier version made it: the token itself.
    pg.run(r#"create or replace function "tas_session_changes"() returns trigger language plpgsql as $tas$ begin perform pg_notify('tas_session_changes', OLD."token"::text); return null; end $tas$"#).await;
    let (_, s) = pg.signed_in("old@example.com").await;
    assert!(cached.find(&s.storage_key()).await.unwrap().is_some());
    let delete = r#"delete from "session" where "token" = $1"#;
    pg.reported(delete, Some(&s.token), "an old trigger's token")
        .await;
    assert!(cached.find_now(&s.storage_key()).is_none());

    // A `TRUNCATE` fires no row trigger: the statement-level one drops every cached session,
    // also when it cascades from the user table. (The function as this version makes it.)
    pg.run(&pg.store.session_changes().ddl().unwrap()[0]).await;
    for statement in [r#"truncate "session""#, r#"truncate "user" cascade"#] {
        let (_, s) = pg.signed_in("truncated@example.com").await;
        assert!(cached.find(&s.storage_key()).await.unwrap().is_some());
        pg.reported(statement, None, statement).await;
        assert!(cached.find_now(&s.storage_key()).is_none(), "{statement}");
        pg.run(r#"delete from "user""#).await;
    }
}

/// A running PostgreSQL feed checks its triggers. One dropped (a migration that recreates the
/// table) is created again with `create_trigger(true)`, and every cached session dropped,
/// since changes were missed; the feed hears Better Auth's deletes again. A function an
/// earlier version put back (notifying tokens) is replaced. A disabled one (a bulk load's
/// `DISABLE TRIGGER`) does not stop the feed from starting, is left for whoever disabled it,
/// and once it fires again every cached session is dropped.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_feed_restores_a_trigger_that_stopped_firing() {
    let Some(pg) = pg_feed(
        "a_postgres_feed_restores_a_trigger_that_stopped_firing",
        |b| b.check_triggers_every(Duration::from_millis(100)),
    )
    .await
    else {
        return;
    };
    let cached = watching(&pg.store, &pg.changes);
    let delete = r#"delete from "session" where "token" = $1"#;
    let (_, missed) = pg.signed_in("missed@example.com").await;
    assert!(cached.find(&missed.storage_key()).await.unwrap().is_some());
    let mut applied = pg.changes.applied();
    let seen = *applied.borrow();
    pg.run(r#"drop trigger "tas_session_changes" on "session""#)
        .await;
    // Deleted while nothing reports it (unless the trigger is back already).
    pg.run_with(delete, &missed.token).await;
    tokio::time::timeout(Duration::from_secs(10), applied.wait_for(|n| *n > seen))
        .await
        .expect("the trigger was created again and the cache dropped")
        .unwrap();
    assert!(cached.find_now(&missed.storage_key()).is_none());
    // The trigger created again reports the next delete.
    let (_, s) = pg.signed_in("next@example.com").await;
    assert!(cached.find(&s.storage_key()).await.unwrap().is_some());
    pg.reported(delete, Some(&s.token), "the delete was reported")
        .await;
    assert!(cached.find_now(&s.storage_key()).is_none());

    // An earlier version's function, put back: replaced with the one that notifies
    // fingerprints.
    pg.run(r#"create or replace function "tas_session_changes"() returns trigger language plpgsql as $tas$ begin perform pg_notify('tas_session_changes', OLD."token"::text); return null; end $tas$"#).await;
    let source = || async {
        sqlx::query_scalar::<_, String>(
            "select prosrc from pg_proc where proname = 'tas_session_changes'",
        )
        .fetch_one(&pg.other)
        .await
        .unwrap()
    };
    common::until("the function replaced", Duration::from_secs(10), || async {
        source().await.contains("sha256")
    })
    .await;

    // The `TRUNCATE` trigger, dropped: created again.
    pg.run(r#"drop trigger "tas_session_changes_trunc" on "session""#)
        .await;
    common::until(
        "the TRUNCATE trigger created again",
        Duration::from_secs(10),
        || async {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from pg_trigger where tgname = 'tas_session_changes_trunc'",
            )
            .fetch_one(&pg.other)
            .await
            .unwrap()
                == 1
        },
    )
    .await;

    // Disabled before a feed starts: it starts, and drops its cache once the trigger fires
    // again (a delete made meanwhile was not reported).
    pg.run(r#"alter table "session" disable trigger "tas_session_changes""#)
        .await;
    let later = pg
        .store
        .session_changes()
        .check_triggers_every(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let cached = watching(&pg.store, &later);
    let (_, missed) = pg.signed_in("disabled@example.com").await;
    assert!(cached.find(&missed.storage_key()).await.unwrap().is_some());
    pg.run_with(delete, &missed.token).await;
    let mut applied = later.applied();
    common::reported(
        &mut applied,
        Duration::from_secs(10),
        "the cache dropped once the trigger fires again",
        pg.run(r#"alter table "session" enable trigger "tas_session_changes""#),
    )
    .await;
    assert!(cached.find_now(&missed.storage_key()).is_none());
}

/// A bulk update of the user table (a backfill, a migration) notifies once per row; each
/// drop of a user's sessions scans the whole cache, so the feed gathers the rows that arrive
/// together and drops them in a few passes, not one per user.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_user_update_reaches_a_postgres_cache_in_a_few_batches() {
    let test = "a_bulk_user_update_reaches_a_postgres_cache_in_a_few_batches";
    let Some(pg) = pg_feed(test, |b| b).await else {
        return;
    };
    let cached = watching(&pg.store, &pg.changes);
    let mut keys = Vec::new();
    for i in 0..300 {
        let (_, s) = pg.signed_in(&format!("bulk{i}@example.com")).await;
        assert!(cached.find(&s.storage_key()).await.unwrap().is_some());
        keys.push(s.token);
    }
    let mut rx = pg.changes.applied();
    let seen = *rx.borrow();
    pg.run(r#"update "user" set "name" = 'After'"#).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while keys.iter().any(|k| {
            cached
                .find_now(&tower_auth_session::StorageKey::new(k.as_str()))
                .is_some()
        }) {
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("every user's sessions were dropped");
    let batches = *rx.borrow() - seen;
    assert!(
        batches <= 10,
        "{batches} passes over the cache for 300 users"
    );
}

/// A session cached through `changes` shows its user's new name once `rename` changes it
/// behind the store's back, as Better Auth's `updateUser` would.
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
async fn a_users_new_row_reaches_the_cache<D, F, Fut>(
    store: tower_auth_session::store::SqlStore<D>,
    changes: tower_auth_session::store::SessionChanges,
    rename: F,
) where
    D: tower_auth_session::store::Dialect,
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let cached = watching(&store, &changes);
    let user = store
        .insert_user(&User::new("polled@example.com", "Before", conformance::NOW))
        .await
        .unwrap();
    let s = conformance::session(
        &user,
        time::OffsetDateTime::now_utc() + time::Duration::days(7),
    );
    let s = store.create(&s, &user).await.unwrap();
    let name = |found: Option<Authenticated>| found.map(|f| f.user.name.clone());
    assert_eq!(
        name(cached.find(&s.storage_key()).await.unwrap()).as_deref(),
        Some("Before")
    );
    let mut rx = changes.applied();
    let seen = *rx.borrow();
    rename(user.id.clone()).await;
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|n| *n > seen))
        .await
        .expect("the user's change was reported")
        .unwrap();
    assert_eq!(
        name(cached.find(&s.storage_key()).await.unwrap()).as_deref(),
        Some("After")
    );
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_new_row_reaches_a_cache_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (url, store, changes) = sqlite_feed(&dir, "users.db").await;
    let rename = |id: String| async move {
        let other = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query(r#"update "user" set "name" = 'After' where "id" = ?"#)
            .bind(id)
            .execute(&other)
            .await
            .unwrap();
    };
    a_users_new_row_reaches_the_cache(store, changes, rename).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_new_row_reaches_a_cache_over_mysql() {
    use tower_auth_session::store::MySqlStore;
    let test = "a_users_new_row_reaches_a_cache_over_mysql";
    let Some(url) = common::fresh_mysql_database(test).await else {
        return;
    };
    let store = MySqlStore::builder(url.as_str())
        .create_schema(true)
        .build()
        .await
        .unwrap();
    let changes = store
        .session_changes()
        .create_trigger(true)
        .start()
        .await
        .unwrap();
    let rename = |id: String| async move {
        let other = sqlx::MySqlPool::connect(&url).await.unwrap();
        sqlx::query("update `user` set `name` = 'After' where `id` = ?")
            .bind(id)
            .execute(&other)
            .await
            .unwrap();
    };
    a_users_new_row_reaches_the_cache(store, changes, rename).await;
}

/// The path the feed's own error recommends: an administrator runs the statements from
/// `.ddl()`, and the application's user has rows only. MySQL shows triggers only to users with
/// the `TRIGGER` privilege, so that user saw "1 of 3 found" and the feed refused to start,
/// though the triggers were there and worked.
#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_feed_an_administrator_installed_starts_without_the_trigger_privilege() {
    use tower_auth_session::store::MySqlStore;
    let test = "a_mysql_feed_an_administrator_installed_starts_without_the_trigger_privilege";
    let Some(url) = common::fresh_mysql_database(test).await else {
        return;
    };
    let owner = MySqlStore::builder(url.as_str())
        .create_schema(true)
        .build()
        .await
        .unwrap();
    let admin = sqlx::MySqlPool::connect(&url).await.unwrap();
    for statement in owner.session_changes().ddl().unwrap() {
        sqlx::raw_sql(&statement).execute(&admin).await.unwrap();
    }
    let (server, database) = url.rsplit_once('/').unwrap();
    let account = format!("app_{}", &database[2..]);
    sqlx::raw_sql(&format!(
        "create user '{account}'@'%' identified by 'pw'; \
         grant select, insert, update, delete on `{database}`.* to '{account}'@'%'"
    ))
    .execute(&admin)
    .await
    .unwrap();
    let (scheme, rest) = server.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let app_url = format!("{scheme}://{account}:pw@{host}/{database}");
    let store = MySqlStore::connect(&app_url).await.unwrap();
    let changes = store.session_changes().start().await.unwrap();
    let cached = watching(&store, &changes);
    let user = store
        .insert_user(&User::new("app@example.com", "App", conformance::NOW))
        .await
        .unwrap();
    let s = conformance::session(
        &user,
        time::OffsetDateTime::now_utc() + time::Duration::days(7),
    );
    let s = store.create(&s, &user).await.unwrap();
    assert!(cached.find(&s.storage_key()).await.unwrap().is_some());
    let mut applied = changes.applied();
    common::reported(
        &mut applied,
        Duration::from_secs(10),
        "an administrator's delete was reported through the triggers",
        async {
            sqlx::query("delete from `session` where `token` = ?")
                .bind(&s.token)
                .execute(&admin)
                .await
                .unwrap();
        },
    )
    .await;
    assert!(cached.find(&s.storage_key()).await.unwrap().is_none());
    sqlx::raw_sql(&format!("drop user '{account}'@'%'"))
        .execute(&admin)
        .await
        .unwrap();
}

#[cfg(all(feature = "postgres", feature = "redis"))]
mod across_instances {
    use super::*;
    use axum::routing::get;
    use tower_auth_session::extract::CurrentUser;
    use tower_auth_session::store::PostgresStore;
    use tower_auth_session::{SessionConfig, SessionLayer, SignIn};

    async fn instance(
        pg: &str,
        redis: &str,
        channel: &str,
    ) -> (
        axum::Router,
        SessionLayer<CachedStore<Counting<PostgresStore>>>,
        Counting<PostgresStore>,
    ) {
        let inner = Counting::new(
            PostgresStore::builder(pg)
                .create_schema(true)
                .build()
                .await
                .unwrap(),
        );
        let store = CachedStore::builder(inner.clone())
            .ttl(Duration::from_secs(600))
            .build()
            .with_redis_bus(redis, channel)
            .await
            .unwrap();
        let layer = SessionLayer::new(
            SessionConfig::builder()
                .secret(common::SECRET)
                .build()
                .unwrap(),
            store,
        );
        let app = axum::Router::new()
            .route(
                "/me",
                get(|CurrentUser(u): CurrentUser| async move { u.email.clone() }),
            )
            .layer(layer.clone());
        (app, layer, inner)
    }

    /// Waits until `rx` has seen `n` more bus messages (bounded), without sleeping.
    async fn bus_delivered(rx: &mut tokio::sync::watch::Receiver<u64>, from: u64) {
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|n| *n > from))
            .await
            .expect("the invalidation arrived over the bus")
            .unwrap();
    }

    #[tokio::test]
    async fn revoke_on_a_rejects_on_b_through_the_cache() {
        let test = "revoke_on_a_rejects_on_b_through_the_cache";
        let Some(redis) = common::server_url("TAS_TEST_REDIS_URL", test) else {
            return;
        };
        let Some(pg) = common::fresh_pg_database(test).await else {
            return;
        };
        let channel = format!(
            "tas-test-{}",
            tower_auth_session::test_support::generate_id(8)
        );
        let (app_a, layer_a, _) = instance(&pg, &redis, &channel).await;
        let (app_b, layer_b, inner_b) = instance(&pg, &redis, &channel).await;
        let user = User::new("bus@example.com", "Bus", time::OffsetDateTime::now_utc());
        layer_a
            .store()
            .inner()
            .inner
            .insert_user(&user)
            .await
            .unwrap();
        let one = common::session_cookie(
            &layer_a
                .manager()
                .sign_in(&user, SignIn::new())
                .await
                .unwrap(),
        );
        let two = common::session_cookie(
            &layer_a
                .manager()
                .sign_in(&user, SignIn::new())
                .await
                .unwrap(),
        );

        // B reads the store once, then serves from its cache.
        for cookie in [&one, &two] {
            assert_eq!(
                common::send(app_b.clone(), common::get_req("/me", Some(cookie)))
                    .await
                    .status,
                200
            );
        }
        let calls = inner_b.calls();
        for cookie in [&one, &two] {
            assert_eq!(
                common::send(app_b.clone(), common::get_req("/me", Some(cookie)))
                    .await
                    .status,
                200
            );
        }
        assert_eq!(inner_b.calls(), calls, "B answered from its cache");

        // Revoke one on A: B rejects it at its next request, through the bus.
        let mut rx = layer_b.store().bus_invalidations();
        let seen = *rx.borrow();
        let token = one
            .split_once('=')
            .unwrap()
            .1
            .split('.')
            .next()
            .unwrap()
            .to_owned();
        layer_a.manager().revoke(&token).await.unwrap();
        bus_delivered(&mut rx, seen).await;
        assert_eq!(
            common::send(app_b.clone(), common::get_req("/me", Some(&one)))
                .await
                .status,
            401
        );
        assert_eq!(
            common::send(app_b.clone(), common::get_req("/me", Some(&two)))
                .await
                .status,
            200
        );

        // Revoke all on A: B rejects the rest.
        let seen = *rx.borrow();
        layer_a.manager().revoke_all(&user.id).await.unwrap();
        bus_delivered(&mut rx, seen).await;
        assert_eq!(
            common::send(app_b.clone(), common::get_req("/me", Some(&two)))
                .await
                .status,
            401
        );
        assert_eq!(
            common::send(app_a, common::get_req("/me", Some(&two)))
                .await
                .status,
            401
        );
    }
}

#[cfg(feature = "redis")]
mod bus {
    use super::*;
    use common::servers::Proxy;

    /// Subscribers to `channel` on the Redis at `url`.
    async fn subscribers(url: &str, channel: &str) -> i64 {
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let (_, n): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut conn)
            .await
            .unwrap();
        n
    }

    fn channel() -> String {
        format!(
            "tas-bus-{}",
            tower_auth_session::test_support::generate_id(8)
        )
    }

    /// Two caches over one memory store, A on Redis directly and B through `proxy`, on one
    /// bus, and a session of a user, cached on B.
    async fn two_instances(
        url: &str,
        proxy: &Proxy,
    ) -> (CachedStore<MemoryStore>, CachedStore<MemoryStore>, Session) {
        let memory = MemoryStore::new();
        let channel = channel();
        let a = CachedStore::builder(memory.clone())
            .build()
            .with_redis_bus(url, &channel)
            .await
            .unwrap();
        let b = CachedStore::builder(memory.clone())
            .ttl(Duration::from_secs(600))
            .build()
            .with_redis_bus(&format!("redis://127.0.0.1:{}/", proxy.port), &channel)
            .await
            .unwrap();
        let user = User::new("bus-silent@example.com", "B", conformance::NOW);
        memory.insert_user(user.clone());
        let s = conformance::session(&user, conformance::NOW + time::Duration::days(7));
        a.create(&s, &user).await.unwrap();
        assert!(b.find(&s.storage_key()).await.unwrap().is_some());
        (a, b, s)
    }

    /// B's subscription is cut off without a reset (a silent network path): it would look
    /// alive for good and hear nothing. Its PING finds it out and drops B's cache; what B
    /// caches while it cannot subscribe again may be revoked unheard, so B drops its cache
    /// once more when the subscription is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bus_subscription_that_went_silent_is_renewed() {
        let test = "a_bus_subscription_that_went_silent_is_renewed";
        let Some(url) = common::server_url("TAS_TEST_REDIS_URL", test) else {
            return;
        };
        let Some(port) = common::server_url("TAS_TEST_REDIS_PORT", test) else {
            return;
        };
        let proxy = Proxy::start(port.parse().unwrap()).await;
        let (a, b, s) = two_instances(&url, &proxy).await;
        let served = || matches!(b.find_now(&s.storage_key()), Some(Ok(Some(_))));
        proxy.black_hole();
        let took = common::until(
            "B's silent subscription was not noticed",
            Duration::from_secs(10),
            || async { b.entry_count() == 0 },
        )
        .await;
        println!(
            "silent bus subscription: B dropped its cache {} ms after the path went silent",
            took.as_millis()
        );
        // Cached again while B cannot subscribe, then revoked on A, unheard.
        assert!(b.find(&s.storage_key()).await.unwrap().is_some());
        a.delete(&s.storage_key()).await.unwrap();
        assert!(served(), "unheard, the revocation has not reached B");
        proxy.heal();
        let took = common::until(
            "B still served a session revoked on A while its bus heard nothing",
            Duration::from_secs(10),
            || async { !served() },
        )
        .await;
        println!(
            "silent bus subscription: B's cache dropped {} ms after the path flowed again",
            took.as_millis()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_cache_unsubscribes_from_a_quiet_bus() {
        let test = "a_dropped_cache_unsubscribes_from_a_quiet_bus";
        let Some(url) = common::server_url("TAS_TEST_REDIS_URL", test) else {
            return;
        };
        let channel = channel();
        let cache = CachedStore::builder(MemoryStore::new())
            .build()
            .with_redis_bus(&url, &channel)
            .await
            .unwrap();
        let clone = cache.clone();
        assert_eq!(subscribers(&url, &channel).await, 1);
        drop(cache);
        assert_eq!(
            subscribers(&url, &channel).await,
            1,
            "a clone still uses the bus"
        );
        drop(clone);
        common::until(
            "the subscriber outlived the last clone of its cache",
            Duration::from_secs(10),
            || async { subscribers(&url, &channel).await == 0 },
        )
        .await;
    }
}
