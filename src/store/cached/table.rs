//! The table behind [`CachedStore`](super::CachedStore): tokens to entries, in shards of
//! one-cache-line slots, bounded by a CLOCK sweep.
//!
//! A hit is one shard read lock, one hash-table probe that lands on one cache line (the token
//! to compare, the record's two pointers and the entry's expiry all share it), two reference
//! counts and, the first time after a sweep, one bit set. It never allocates.
//!
//! A general-purpose cache (quick_cache, CLOCK-Pro) served this before; its slots were two
//! cache lines apart from its index, and a hit cost a third more than the memory store's
//! lookup. The cache needs less than such a library offers: no weights, no loaders, no
//! ghost entries. Scans (a flood of unknown tokens) are handled by the short negative TTL.

use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::super::key::Slots;
use crate::model::{Authenticated, Session};

/// What is cached for one token: 16 bytes of record, 8 of expiry and use bit, on one line with
/// the token's 40 ([`Slots`]).
struct Entry {
    found: Option<Authenticated>,
    /// `until << 1 | referenced`: the tick from which the entry is no longer served, and
    /// whether it was read since the last sweep of its shard.
    state: AtomicU64,
}

type Shard = Slots<Entry>;

/// Tokens to cached answers, at most about `capacity` of them.
pub(super) struct Table {
    shards: Box<[RwLock<Shard>]>,
    /// The most slots one shard holds.
    per_shard: usize,
    /// `shards.len() - 1` (a power of two less one).
    mask: u64,
    hasher: foldhash::fast::RandomState,
}

impl Table {
    /// A table for at most `capacity` entries (zero: nothing is ever kept).
    pub(super) fn new(capacity: usize, hasher: foldhash::fast::RandomState) -> Self {
        // Four shards per CPU, as many as keep at least 16 slots each, a power of two.
        let cpus = std::thread::available_parallelism().map_or(4, usize::from);
        let wanted = (cpus * 4).next_power_of_two();
        let mut count = 1;
        while count < wanted && capacity / (count * 2) >= 16 {
            count *= 2;
        }
        let per_shard = capacity / count;
        let shards = (0..count)
            .map(|_| RwLock::new(Shard::with_capacity(per_shard.min(4096))))
            .collect();
        Self {
            shards,
            per_shard,
            mask: count as u64 - 1,
            hasher,
        }
    }

    /// The token's hash: its top bits pick a shard, the table uses all of it.
    pub(super) fn hash(&self, token: &[u8]) -> u64 {
        self.hasher.hash_one(token)
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        // Truncation is intended: the top bits pick a shard; hashbrown uses the low ones.
        #[allow(clippy::cast_possible_truncation)]
        let at = ((hash >> 48) & self.mask) as usize;
        &self.shards[at]
    }

    fn read(&self, hash: u64) -> RwLockReadGuard<'_, Shard> {
        // Every write is one insert, remove or retain: a panic cannot leave a shard torn.
        self.shard(hash).read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, hash: u64) -> RwLockWriteGuard<'_, Shard> {
        self.shard(hash).write().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer cached for `token`, if it is still served at tick `now`.
    #[inline]
    pub(super) fn get(
        &self,
        token: &[u8],
        now: impl FnOnce() -> u64,
    ) -> Option<Option<Authenticated>> {
        let hash = self.hash(token);
        let shard = self.read(hash);
        let slot = &shard.get(hash, token)?.value;
        let state = slot.state.load(Ordering::Relaxed);
        if state >> 1 <= now() {
            return None;
        }
        if state & 1 == 0 {
            slot.state.fetch_or(1, Ordering::Relaxed);
        }
        Some(slot.found.clone())
    }

    /// Caches `found` for `token` until tick `until`, replacing what was there; a full shard
    /// is swept first.
    ///
    /// A refill that read the same session or the same user again (what an entry's expiry
    /// usually comes to) keeps the records already cached rather than the copies just read:
    /// the rows are not allocated again, records filled together stay together in memory,
    /// and a request that kept an earlier answer shares it.
    pub(super) fn insert(&self, token: &str, found: Option<Authenticated>, until: u64, now: u64) {
        if self.per_shard == 0 {
            return;
        }
        let hash = self.hash(token.as_bytes());
        let found = match found {
            Some(new) => {
                // Compared outside the write lock: readers of the shard never wait on it.
                let old = self
                    .read(hash)
                    .get(hash, token.as_bytes())
                    .and_then(|slot| slot.value.found.clone());
                Some(match old {
                    Some(old) => Authenticated {
                        session: same_or_new(old.session, new.session),
                        user: same_or_new(old.user, new.user),
                    },
                    None => new,
                })
            }
            None => None,
        };
        let mut shard = self.write(hash);
        if shard.len() >= self.per_shard && shard.get(hash, token.as_bytes()).is_none() {
            sweep(&mut shard, self.per_shard, now);
        }
        let entry = Entry {
            found,
            state: AtomicU64::new(until << 1),
        };
        shard.insert(hash, token, entry, &self.hasher);
    }

    /// Puts `session` in the entry cached for `token`, if there is one holding a session,
    /// keeping the entry's expiry, its user and its use bit; never inserts. What a session's
    /// extension changes in the cache: the user row stays as old as when it was read, and so
    /// is still served only until the TTL from that read.
    pub(super) fn replace_session(&self, token: &str, session: Arc<Session>) {
        let hash = self.hash(token.as_bytes());
        let mut shard = self.write(hash);
        if let Some(Entry {
            found: Some(found), ..
        }) = shard.get_mut(hash, token.as_bytes())
        {
            found.session = session;
        }
    }

    /// Puts `new` for `token` until tick `until`, if the entry still holds the records of
    /// `held` (the same session and user, not equal copies: held since [`due`](Self::due)
    /// listed it, so no other entry can have reused their memory); never inserts. Whether it
    /// did.
    ///
    /// What a read ahead caches: every invalidation that concerns the token removes its entry,
    /// and an extension puts another session in it, so an entry that still holds the very
    /// records it held when the read began has seen neither, and the read is at least as fresh.
    /// An invalidation of something else (another user, another token in the same fence
    /// stripe) leaves the entry served, where a fill's coarser check would drop it.
    pub(super) fn replace_if(
        &self,
        token: &str,
        held: &Authenticated,
        new: Authenticated,
        until: u64,
    ) -> bool {
        let holds = |found: &Option<Authenticated>| {
            found.as_ref().is_some_and(|cur| {
                Arc::ptr_eq(&cur.session, &held.session) && Arc::ptr_eq(&cur.user, &held.user)
            })
        };
        let hash = self.hash(token.as_bytes());
        // Compared outside the write lock, as `insert` does: records read again keep the
        // cached ones when they hold the same rows.
        let new = Authenticated {
            session: same_or_new(held.session.clone(), new.session),
            user: same_or_new(held.user.clone(), new.user),
        };
        let mut shard = self.write(hash);
        match shard.get_mut(hash, token.as_bytes()) {
            Some(entry) if holds(&entry.found) => {
                entry.found = Some(new);
                entry.state = AtomicU64::new(until << 1);
                true
            }
            _ => false,
        }
    }

    /// The entries that hold a session, were read since they were cached (or since their
    /// shard's last sweep), and stop being served after tick `now` but by `before`: the ones
    /// worth reading again before they expire, with the records they hold (for
    /// [`replace_if`](Self::replace_if)). Each shard is read-locked in turn.
    pub(super) fn due(&self, now: u64, before: u64) -> Vec<(String, Authenticated)> {
        let mut due = Vec::new();
        for shard in &self.shards {
            let shard = shard.read().unwrap_or_else(|e| e.into_inner());
            for slot in shard.iter() {
                let state = slot.value.state.load(Ordering::Relaxed);
                let until = state >> 1;
                if state & 1 == 0 || until <= now || until > before {
                    continue;
                }
                // Keys are inserted from `&str`: always UTF-8.
                if let (Some(found), Ok(token)) =
                    (&slot.value.found, std::str::from_utf8(slot.key.as_bytes()))
                {
                    due.push((token.to_owned(), found.clone()));
                }
            }
        }
        due
    }

    /// Whether an entry for `token` is held (served or not).
    pub(super) fn contains(&self, token: &[u8]) -> bool {
        let hash = self.hash(token);
        self.read(hash).get(hash, token).is_some()
    }

    /// Forgets `token`.
    pub(super) fn remove(&self, token: &[u8]) {
        let hash = self.hash(token);
        self.write(hash).remove(hash, token);
    }

    /// Keeps only the entries whose answer passes `keep`.
    pub(super) fn retain(&self, mut keep: impl FnMut(Option<&Authenticated>) -> bool) {
        for shard in &self.shards {
            let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
            shard.retain(|e| keep(e.found.as_ref()));
        }
    }

    /// Forgets everything.
    pub(super) fn clear(&self) {
        for shard in &self.shards {
            shard.write().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// The number of entries, expired ones included until they are swept or replaced.
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

/// `old` when it holds what `new` does, else `new`.
fn same_or_new<T: PartialEq>(old: Arc<T>, new: Arc<T>) -> Arc<T> {
    if Arc::ptr_eq(&old, &new) || *old == *new {
        old
    } else {
        new
    }
}

/// Makes room in a full shard (CLOCK, one sweep at a time): drops what expired and what was
/// not read since the last sweep, clearing the use bit of the rest; if that frees less than
/// an eighth of the shard (everything was read lately), drops entries in table order, which
/// is hash order and so unrelated to use, until an eighth is free. A sweep frees at least an
/// eighth of the shard, so its cost spreads over the inserts that fill it again.
fn sweep(slots: &mut Shard, per_shard: usize, now: u64) {
    slots.retain(|e| {
        let state = e.state.get_mut();
        let keep = *state >> 1 > now && *state & 1 == 1;
        *state &= !1;
        keep
    });
    let keep = per_shard - per_shard.div_ceil(8);
    let mut over = slots.len().saturating_sub(keep);
    if over > 0 {
        slots.retain(|_| {
            if over == 0 {
                return true;
            }
            over -= 1;
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Session, User};
    use crate::store::key::Slot;

    fn found(user_id: &str) -> Option<Authenticated> {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let mut user = User::new("a@example.com", "A", now);
        user.id = user_id.into();
        let session = Session::for_tests(&user.id, "t", now + time::Duration::days(1), now);
        Some(Authenticated {
            session: Arc::new(session),
            user: Arc::new(user),
        })
    }

    #[test]
    fn a_slot_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Slot<Entry>>(), 64);
        assert_eq!(std::mem::align_of::<Slot<Entry>>(), 64);
    }

    #[test]
    fn entries_are_served_until_their_tick() {
        let table = Table::new(100, foldhash::fast::RandomState::default());
        table.insert("t", found("u"), 10, 0);
        assert!(table.get(b"t", || 9).is_some_and(|f| f.is_some()));
        assert!(table.get(b"t", || 10).is_none());
        table.insert("t", None, 20, 10);
        assert!(table.get(b"t", || 15).is_some_and(|f| f.is_none()));
        assert_eq!(table.len(), 1);
        table.remove(b"t");
        assert!(table.get(b"t", || 0).is_none());
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_full_shard_keeps_what_was_read_since_the_last_sweep() {
        let table = Table::new(32, foldhash::fast::RandomState::default());
        assert_eq!(table.shards.len(), 2);
        // Fill one shard, read half of it, then add one more token to that shard.
        let shard_of = |t: &str| table.hash(t.as_bytes()) >> 48 & table.mask;
        let tokens: Vec<String> = (0..)
            .map(|i| format!("token-{i}"))
            .filter(|t| shard_of(t) == 0)
            .take(17)
            .collect();
        for t in &tokens[..16] {
            table.insert(t, found("u"), 100, 0);
        }
        for t in &tokens[..8] {
            assert!(table.get(t.as_bytes(), || 1).is_some());
        }
        table.insert(&tokens[16], found("u"), 100, 1);
        for t in &tokens[..8] {
            assert!(
                table.get(t.as_bytes(), || 1).is_some(),
                "{t} was read: kept"
            );
        }
        for t in &tokens[8..16] {
            assert!(
                table.get(t.as_bytes(), || 1).is_none(),
                "{t} was not read: swept"
            );
        }
        assert!(table.get(tokens[16].as_bytes(), || 1).is_some());
    }

    #[test]
    fn a_shard_of_hot_entries_still_makes_room() {
        let table = Table::new(16, foldhash::fast::RandomState::default());
        for i in 0..1_000 {
            let t = format!("token-{i}");
            table.insert(&t, None, 100, 0);
            assert!(table.get(t.as_bytes(), || 0).is_some());
            assert!(table.len() <= 16);
        }
    }

    #[test]
    fn a_refill_that_read_the_same_rows_keeps_the_cached_records() {
        let table = Table::new(100, foldhash::fast::RandomState::default());
        let first = found("u").unwrap();
        table.insert("t", Some(first.clone()), 10, 0);
        // The entry expired; the store read the same rows again, as new allocations.
        let again = found("u").unwrap();
        assert!(!Arc::ptr_eq(&again.session, &first.session));
        table.insert("t", Some(again), 20, 10);
        let served = table.get(b"t", || 15).flatten().unwrap();
        assert!(Arc::ptr_eq(&served.session, &first.session));
        assert!(Arc::ptr_eq(&served.user, &first.user));
        // A session that changed is replaced; its unchanged user is still shared.
        let mut refreshed = found("u").unwrap();
        Arc::make_mut(&mut refreshed.session).expires_at += time::Duration::days(1);
        table.insert("t", Some(refreshed.clone()), 30, 20);
        let served = table.get(b"t", || 25).flatten().unwrap();
        assert!(Arc::ptr_eq(&served.session, &refreshed.session));
        assert!(Arc::ptr_eq(&served.user, &first.user));
        // A user that changed (renamed) is replaced too.
        let mut renamed = refreshed.clone();
        Arc::make_mut(&mut renamed.user).name = "B".into();
        table.insert("t", Some(renamed), 40, 30);
        let served = table.get(b"t", || 35).flatten().unwrap();
        assert_eq!(served.user.name, "B");
        assert!(Arc::ptr_eq(&served.session, &refreshed.session));
    }

    #[test]
    fn due_entries_are_the_found_ones_read_and_about_to_expire() {
        let table = Table::new(100, foldhash::fast::RandomState::default());
        table.insert("read-soon", found("u"), 10, 0);
        table.insert("unread-soon", found("u"), 10, 0);
        table.insert("read-later", found("u"), 30, 0);
        table.insert("read-missing", None, 10, 0);
        table.insert("read-expired", found("u"), 5, 0);
        for t in ["read-soon", "read-later", "read-missing", "read-expired"] {
            assert!(table.get(t.as_bytes(), || 1).is_some());
        }
        // At tick 6, for entries that stop being served by tick 12.
        let tokens = |due: Vec<(String, Authenticated)>| -> Vec<String> {
            due.into_iter().map(|(t, _)| t).collect()
        };
        assert_eq!(tokens(table.due(6, 12)), ["read-soon"]);
        // Filling again clears the use bit: not due until read again.
        table.insert("read-soon", found("u"), 20, 6);
        assert!(tokens(table.due(6, 30)).iter().all(|t| t != "read-soon"));
    }

    #[test]
    fn a_read_ahead_replaces_only_the_records_it_began_from() {
        let table = Table::new(100, foldhash::fast::RandomState::default());
        table.insert("t", found("u"), 10, 0);
        assert!(table.get(b"t", || 1).is_some());
        let (_, held) = table.due(6, 12).pop().unwrap();
        let mut read = found("u").unwrap();
        Arc::make_mut(&mut read.session).ip_address = Some("new".into());
        assert!(table.replace_if("t", &held, read.clone(), 40));
        let served = table.get(b"t", || 35).flatten().unwrap();
        assert_eq!(served.session.ip_address.as_deref(), Some("new"));
        assert!(
            Arc::ptr_eq(&served.user, &held.user),
            "the same user row kept"
        );
        // The entry now holds other records (refilled, extended): a read begun before is not
        // put in, and neither is one for an entry that went.
        assert!(!table.replace_if("t", &held, read.clone(), 50));
        table.remove(b"t");
        assert!(!table.replace_if("t", &served, read, 50));
        assert!(!table.contains(b"t"), "never inserts");
    }

    #[test]
    fn a_zero_capacity_keeps_nothing() {
        let table = Table::new(0, foldhash::fast::RandomState::default());
        table.insert("t", found("u"), 100, 0);
        assert!(table.get(b"t", || 0).is_none());
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn retain_and_clear_reach_every_shard() {
        let table = Table::new(1_000, foldhash::fast::RandomState::default());
        for i in 0..200 {
            let user = if i % 2 == 0 { "even" } else { "odd" };
            table.insert(&format!("token-{i}"), found(user), 100, 0);
        }
        table.retain(|f| f.is_none_or(|a| a.user.id != "even"));
        assert_eq!(table.len(), 100);
        table.clear();
        assert_eq!(table.len(), 0);
    }
}
