//! A small per-thread memo of the session cookie values this thread verified lately.
//!
//! A client sends the same cookie with every request, and verifying it again costs a
//! percent-decode, a base64 decode and an HMAC-SHA256: together about half of what the layer
//! adds to a signed-in request. The memo keeps, per thread, the last verified value seen in each
//! of [`SLOTS`] slots, so the next request carrying those exact bytes skips all three.
//!
//! Why this answers exactly what verifying again would:
//! * a value is remembered only after it verified, as the bytes found in the header (trimmed and
//!   unquoted, before decoding), together with the id of the [`Signer`](super::Signer) (its
//!   HMAC key) that verified it; a hit needs the same signer id and the same bytes, and HMAC is
//!   a function of key and message;
//! * the comparison runs in constant time: a slot may hold another client's cookie, and a
//!   byte-at-a-time comparison would tell a guess how much of it matched;
//! * the slot is picked by a hash with a random per-signer key, so where a value lands says
//!   nothing about it, and forged values are never remembered, so they cannot evict anything
//!   either;
//! * nothing here says whether a session is live: expiry and revocation stay with the store and
//!   the policy, which run on every request.
//!
//! A value is remembered per thread rather than in one shared map so that a hit takes no lock
//! and touches no shared cache line. A miss costs a keyed hash and, once the value verifies, a
//! copy into its slot (about 20 ns in the benches, against about 200 ns saved per hit). No cache
//! crate fits: they lock, and they compare keys with `==`.
//!
//! Traffic from many users seldom repeats a cookie on one thread before its slot is taken, and
//! there every lookup is a miss paid for nothing. After [`QUIET_AFTER`] misses in a row a thread
//! consults the memo on one request in [`SAMPLE`] only (the others verify at once and are not
//! remembered); the first hit returns it to every request. Which requests skip the memo changes
//! nothing in their answers, only in their cost.

use std::cell::{Cell, RefCell};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// Slots per thread (a power of two).
const SLOTS: usize = 64;

/// Longest wire value remembered. Better Auth's are 79 bytes (32-character token, `.`, 43
/// base64 characters and `%3D`); longer custom tokens are simply verified every time.
const MAX_LEN: usize = 128;

#[derive(Clone, Copy)]
struct Slot {
    /// The verifying signer's id; 0 (never issued) marks an empty slot.
    signer: u64,
    /// The value's keyed hash: a cheap first test, so a miss skips the byte comparison.
    hash: u64,
    len: u8,
    token_len: u8,
    value: [u8; MAX_LEN],
}

const EMPTY: Slot = Slot {
    signer: 0,
    hash: 0,
    len: 0,
    token_len: 0,
    value: [0; MAX_LEN],
};

/// A signer's identity in the memo: which slot holds a value, and whose verification it was.
///
/// Clones are the same key (same id, same hash), so they share remembered values.
#[derive(Clone)]
pub(super) struct Key {
    /// Never 0, which marks an empty slot.
    id: u64,
    /// Seeded at random per key: where a value lands says nothing about it.
    hasher: foldhash::fast::RandomState,
}

impl Key {
    /// A key no other signer has.
    pub(super) fn new() -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// The value's keyed hash and the slot it picks (its low bits).
    fn place(&self, value: &[u8]) -> (u64, usize) {
        let hash = self.hasher.hash_one(value);
        // Truncation is the point: only the low bits pick the slot.
        #[allow(clippy::cast_possible_truncation)]
        let slot = hash as usize & (SLOTS - 1);
        (hash, slot)
    }
}

thread_local! {
    // Constant-initialised and without a destructor: reaching it is one TLS offset, no lazy
    // set-up on each access.
    static MEMO: RefCell<[Slot; SLOTS]> = const { RefCell::new([EMPTY; SLOTS]) };
    static STREAK: Cell<Streak> = const { Cell::new(Streak { misses: 0, tick: 0 }) };
}

/// Misses in a row after which a thread consults the memo on one request in [`SAMPLE`].
const QUIET_AFTER: u16 = 256;

/// While quiet, one request in this many consults the memo (and is remembered if it verifies).
const SAMPLE: u8 = 16;

/// This thread's run of misses.
#[derive(Clone, Copy)]
struct Streak {
    /// Misses in a row, up to [`QUIET_AFTER`].
    misses: u16,
    /// Counts requests while quiet, to pick one in [`SAMPLE`].
    tick: u8,
}

/// Whether this request should consult the memo, counting it if not.
fn consult() -> bool {
    STREAK
        .try_with(|cell| {
            let mut streak = cell.get();
            if streak.misses < QUIET_AFTER {
                return true;
            }
            streak.tick = streak.tick.wrapping_add(1);
            cell.set(streak);
            streak.tick % SAMPLE == 0
        })
        .unwrap_or(true)
}

/// Counts the answer of a lookup made.
fn count(hit: bool) {
    let _ = STREAK.try_with(|cell| {
        let mut streak = cell.get();
        streak.misses = if hit {
            0
        } else {
            streak.misses.saturating_add(1).min(QUIET_AFTER)
        };
        cell.set(streak);
    });
}

/// Where a value goes in the memo: computed once per request, for [`recall`] and, after a
/// successful verification, for [`remember`].
pub(super) struct Place {
    hash: u64,
    slot: usize,
}

/// Looks `value` up: `Ok(token_len)` when this thread verified exactly these bytes with `key`
/// lately; otherwise `Err` with the place to [`remember`] it at once verified (`None` when the
/// value is too long to be remembered).
pub(super) fn recall(key: &Key, value: &[u8]) -> Result<usize, Option<Place>> {
    if value.len() > MAX_LEN || !consult() {
        return Err(None);
    }
    let (hash, slot) = key.place(value);
    let hit = MEMO
        .try_with(|slots| {
            let slots = slots.try_borrow().ok()?;
            let remembered = &slots[slot];
            // Equal keyed hashes of unequal values happen once in 2^64 and say nothing about
            // the bytes (the hash key is random and never leaves the process): only equal values
            // reach the constant-time comparison, which has the last word.
            let bytes = &remembered.value[..usize::from(remembered.len)];
            (remembered.hash == hash
                && remembered.signer == key.id
                && constant_time_eq::constant_time_eq(bytes, value))
            .then_some(usize::from(remembered.token_len))
        })
        .ok()
        .flatten();
    count(hit.is_some());
    hit.ok_or(Some(Place { hash, slot }))
}

/// Remembers that `key` verified `value` (looked up at `place`), whose first `token_len` bytes
/// are the token.
pub(super) fn remember(key: &Key, place: Place, value: &[u8], token_len: usize) {
    let (Ok(len), Ok(token_len)) = (u8::try_from(value.len()), u8::try_from(token_len)) else {
        return;
    };
    if value.len() > MAX_LEN {
        return;
    }
    let _ = MEMO.try_with(|slots| {
        let Ok(mut slots) = slots.try_borrow_mut() else {
            return;
        };
        let slot = &mut slots[place.slot];
        slot.signer = key.id;
        slot.hash = place.hash;
        slot.len = len;
        slot.token_len = token_len;
        slot.value[..value.len()].copy_from_slice(value);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consulted(answer: &Result<usize, Option<Place>>) -> bool {
        !matches!(answer, Err(None))
    }

    /// A run of misses makes a thread consult the memo on one request in `SAMPLE`; a value
    /// remembered then is still found, and that hit returns the thread to every request.
    #[test]
    fn a_thread_of_misses_goes_quiet_and_a_hit_wakes_it() {
        std::thread::spawn(|| {
            let key = Key::new();
            for i in 0..QUIET_AFTER {
                assert!(consulted(&recall(&key, format!("miss {i}").as_bytes())));
            }
            let asked = (0..u32::from(SAMPLE) * 4)
                .filter(|i| consulted(&recall(&key, format!("quiet {i}").as_bytes())))
                .count();
            assert_eq!(asked, 4);

            let value = b"a value that verified";
            let place = (0..SAMPLE)
                .find_map(|_| recall(&key, value).err().flatten())
                .expect("one request in SAMPLE consults the memo");
            remember(&key, place, value, 7);
            let hit = (0..SAMPLE).find_map(|_| recall(&key, value).ok());
            assert_eq!(hit, Some(7));

            for i in 0..8 {
                assert!(consulted(&recall(&key, format!("awake {i}").as_bytes())));
            }
        })
        .join()
        .expect("the test thread");
    }
}
