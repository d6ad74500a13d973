//! The key the in-process stores index sessions by, and the table of one-cache-line slots
//! they keep under it.

use std::hash::BuildHasher;

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;

/// A session's storage key, held inline when it is a 32-byte Better Auth token and on the heap
/// otherwise (the 64-digit hashes of
/// [`hash_tokens_at_rest`](crate::SessionConfigBuilder::hash_tokens_at_rest), custom tokens).
///
/// Inline, a table slot holds the key itself, so finding a session compares bytes already in
/// the cache line the probe brought in: with many sessions, a key behind a pointer is one more
/// miss per lookup. `MemoryStore` and `CachedStore` both key their [`Slots`] by it, and both
/// look up by `&[u8]`, so a request never builds a key to ask.
#[derive(Clone, Debug)]
pub(crate) enum Key {
    Token([u8; TOKEN_LEN]),
    Other(Box<[u8]>),
}

const TOKEN_LEN: usize = 32;

impl Key {
    pub(crate) fn new(key: &str) -> Self {
        match <[u8; TOKEN_LEN]>::try_from(key.as_bytes()) {
            Ok(token) => Self::Token(token),
            Err(_) => Self::Other(key.as_bytes().into()),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Token(bytes) => bytes,
            Self::Other(bytes) => bytes,
        }
    }
}

/// A value kept under its key, the two on one cache line (for values of up to 24 bytes).
///
/// A 40-byte key and 16 bytes of value, unaligned, would straddle two lines in three slots out
/// of four, and a lookup reads both ends: the key to compare, the value to copy.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Slot<V> {
    pub(crate) key: Key,
    pub(crate) value: V,
}

/// Keys to values in hashbrown's `HashTable`, one [`Slot`] each. The owner hashes the key's
/// bytes with one hasher for every call (and may use the same hash for more, as
/// `CachedStore` picks a shard with it); the table rehashes with that hasher as it grows.
#[derive(Debug)]
pub(crate) struct Slots<V> {
    table: HashTable<Slot<V>>,
}

impl<V> Default for Slots<V> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<V> Slots<V> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            table: HashTable::with_capacity(capacity),
        }
    }

    /// The slot for `key`, whose hash is `hash`.
    pub(crate) fn get(&self, hash: u64, key: &[u8]) -> Option<&Slot<V>> {
        self.table.find(hash, |s| s.key.as_bytes() == key)
    }

    pub(crate) fn get_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut V> {
        self.table
            .find_mut(hash, |s| s.key.as_bytes() == key)
            .map(|s| &mut s.value)
    }

    /// Sets `key`'s value, replacing any; `hash` is `hasher`'s hash of `key`.
    pub(crate) fn insert(&mut self, hash: u64, key: &str, value: V, hasher: &impl BuildHasher) {
        let rehash = |s: &Slot<V>| hasher.hash_one(s.key.as_bytes());
        match self
            .table
            .entry(hash, |s| s.key.as_bytes() == key.as_bytes(), rehash)
        {
            Entry::Occupied(mut slot) => slot.get_mut().value = value,
            Entry::Vacant(slot) => {
                slot.insert(Slot {
                    key: Key::new(key),
                    value,
                });
            }
        }
    }

    pub(crate) fn remove(&mut self, hash: u64, key: &[u8]) {
        if let Ok(slot) = self.table.find_entry(hash, |s| s.key.as_bytes() == key) {
            slot.remove();
        }
    }

    /// Keeps the values `keep` accepts; returns how many it dropped.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) -> u64 {
        let before = self.table.len();
        self.table.retain(|s| keep(&mut s.value));
        (before - self.table.len()) as u64
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Slot<V>> {
        self.table.iter()
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.table.iter_mut().map(|s| &mut s.value)
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Empties the table (`CachedStore` dropping everything after a change feed reconnects).
    #[cfg(feature = "cache")]
    pub(crate) fn clear(&mut self) {
        self.table.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::{Key, Slot, Slots};
    use std::hash::BuildHasher;

    #[test]
    fn keys_keep_their_bytes_inline_when_they_are_tokens() {
        for text in ["7aON9QvXi7cN5W22aBoYB7O4cBy827eS", "short", &"f".repeat(64)] {
            assert_eq!(Key::new(text).as_bytes(), text.as_bytes());
        }
        assert!(matches!(Key::new(&"a".repeat(32)), Key::Token(_)));
        assert!(matches!(Key::new(&"a".repeat(33)), Key::Other(_)));
    }

    #[test]
    fn a_slot_of_up_to_24_bytes_of_value_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Slot<[u64; 3]>>(), 64);
        assert_eq!(std::mem::align_of::<Slot<[u64; 3]>>(), 64);
    }

    /// What was inserted by key is found by its bytes, inline or not, after the table grew
    /// (and rehashed) many times; replacing, removing and retaining act on the right slot.
    #[test]
    fn slots_are_found_by_the_bytes_of_their_key() {
        let hasher = foldhash::fast::RandomState::default();
        let hash = |k: &str| hasher.hash_one(k.as_bytes());
        let keys: Vec<String> = (0..1_000)
            .map(|i| match i % 3 {
                0 => format!("{i:032}"),
                1 => format!("short-{i}"),
                _ => format!("{i:064}"),
            })
            .collect();
        let mut slots = Slots::default();
        for (i, k) in keys.iter().enumerate() {
            slots.insert(hash(k), k, i, &hasher);
        }
        slots.insert(hash(&keys[7]), &keys[7], 70, &hasher);
        assert_eq!(slots.len(), keys.len());
        for (i, k) in keys.iter().enumerate() {
            let want = if i == 7 { 70 } else { i };
            assert_eq!(
                slots.get(hash(k), k.as_bytes()).map(|s| s.value),
                Some(want)
            );
        }
        slots.remove(hash(&keys[1]), keys[1].as_bytes());
        assert!(slots.get(hash(&keys[1]), keys[1].as_bytes()).is_none());
        assert_eq!(slots.retain(|v| *v % 2 == 0), 498);
        assert!(slots.iter().all(|s| s.value % 2 == 0));
    }
}
