//! The key the in-process stores index sessions by.

/// A session's storage key, held inline when it is a 32-byte Better Auth token and on the heap
/// otherwise (the 64-digit hashes of
/// [`hash_tokens_at_rest`](crate::SessionConfigBuilder::hash_tokens_at_rest), custom tokens).
///
/// Inline, a table slot holds the key itself, so finding a session compares bytes already in
/// the cache line the probe brought in: with many sessions, a key behind a pointer is one more
/// miss per lookup. `MemoryStore` and `CachedStore` both key by it, and both look up by
/// `&[u8]` (through `Borrow`), so a request never builds a key to ask.
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

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `[u8]` hashes, so that a lookup by `&[u8]` finds it.
        self.as_bytes().hash(state);
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::Key;
    use std::hash::BuildHasher;

    /// A key and the bytes it was made from are equal and hash alike, inline or not, so a
    /// lookup by bytes finds what was inserted by key.
    #[test]
    fn keys_hash_and_compare_as_their_bytes() {
        let hasher = foldhash::fast::RandomState::default();
        for text in ["7aON9QvXi7cN5W22aBoYB7O4cBy827eS", "short", &"f".repeat(64)] {
            let key = Key::new(text);
            assert_eq!(key.as_bytes(), text.as_bytes());
            assert_eq!(hasher.hash_one(&key), hasher.hash_one(text.as_bytes()));
        }
        assert!(matches!(Key::new(&"a".repeat(32)), Key::Token(_)));
        assert!(matches!(Key::new(&"a".repeat(33)), Key::Other(_)));
        assert_ne!(Key::new("a"), Key::new("b"));
    }
}
