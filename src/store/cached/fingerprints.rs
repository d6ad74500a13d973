//! Fingerprints of cached tokens, for a change feed that reports fingerprints rather than
//! tokens (PostgreSQL's `NOTIFY`, which any role that can connect may `LISTEN` to: a token
//! there would be a login for whoever listens).
//!
//! A fingerprint is the first 16 bytes of the SHA-256 of the storage key (the session table's
//! `token` column as text), as the trigger computes it. Fills record `fingerprint → token`
//! here; a reported fingerprint finds the token to drop. Only fills with a session are
//! recorded (a change to a row no instance has cached finds nothing), and records of tokens
//! the cache no longer holds (evicted, expired, dropped with a user) are swept out once a
//! shard holds twice its share of the cache's capacity.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use sha2::{Digest as _, Sha256};

/// The bytes of a fingerprint.
pub(super) type Fingerprint = [u8; 16];

/// The fingerprint of `token`.
pub(super) fn of(token: &str) -> Fingerprint {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = [0; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// A fingerprint as a feed reports it: at least 32 hexadecimal digits (the SHA-256's first 16
/// bytes; more digits are ignored), either case. `None` for anything else.
pub(super) fn parse(hex: &str) -> Option<Fingerprint> {
    let bytes = hex.as_bytes().get(..32)?;
    let mut out = [0; 16];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16);
        *byte = u8::try_from(digit(pair[0])? << 4 | digit(pair[1])?).ok()?;
    }
    Some(out)
}

/// Which invalidation stripe (of `stripes`, a power of two) a fingerprint falls in: a fill and
/// a reported fingerprint meet there without the token.
pub(super) fn stripe(fingerprint: &Fingerprint, stripes: usize) -> usize {
    usize::from(u16::from_le_bytes([fingerprint[0], fingerprint[1]])) & (stripes - 1)
}

const SHARDS: usize = 16;

/// `fingerprint → token` for the cached sessions.
pub(super) struct Fingerprints {
    shards: [Mutex<HashMap<Fingerprint, Box<str>>>; SHARDS],
    /// Records in one shard past which it is swept.
    limit: usize,
}

impl Fingerprints {
    /// For a cache of at most `capacity` entries.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
            limit: (capacity / SHARDS).saturating_mul(2).max(64),
        }
    }

    fn shard(&self, fingerprint: &Fingerprint) -> MutexGuard<'_, HashMap<Fingerprint, Box<str>>> {
        // One insert, remove or retain at a time: a panic cannot leave a shard torn.
        self.shards[usize::from(fingerprint[2]) % SHARDS]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `token` under `fingerprint`. When the shard is full, first keeps only the
    /// records of tokens `cached` says the cache still holds.
    pub(super) fn insert(
        &self,
        fingerprint: Fingerprint,
        token: &str,
        cached: impl Fn(&str) -> bool,
    ) {
        let mut shard = self.shard(&fingerprint);
        if shard.len() >= self.limit && !shard.contains_key(&fingerprint) {
            // Under the lock, so that no record is dropped while its token is cached again: a
            // probe of the cache per record, once per half the shard's share of fills.
            shard.retain(|_, token| cached(token));
        }
        if shard.get(&fingerprint).map(|t| &**t) != Some(token) {
            shard.insert(fingerprint, token.into());
        }
    }

    /// The token recorded under `fingerprint`, forgotten.
    pub(super) fn take(&self, fingerprint: &Fingerprint) -> Option<Box<str>> {
        self.shard(fingerprint).remove(fingerprint)
    }

    /// Forgets every record.
    pub(super) fn clear(&self) {
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_the_sha256_prefix_postgres_computes() {
        // select encode(sha256(convert_to('abc', 'UTF8')), 'hex')
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(parse(hex), Some(of("abc")));
        assert_eq!(parse(&hex[..32]), Some(of("abc")));
        assert_eq!(parse(&hex.to_uppercase()), Some(of("abc")));
        for bad in [
            "",
            "abc",
            &hex[..31],
            "zz7816bf8f01cfea414140de5dae2223",
            "ba7816bf8f01cfea414140de5dae222é",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_full_shard_keeps_the_records_of_cached_tokens() {
        let prints = Fingerprints::new(0);
        let tokens: Vec<String> = (0..2_000).map(|i| format!("token-{i}")).collect();
        for t in &tokens {
            prints.insert(of(t), t, |_| false);
        }
        // Every shard was swept (nothing is cached), so none holds more than its limit.
        assert!(prints.len() <= SHARDS * 64, "{}", prints.len());
        let kept = "token-kept";
        prints.insert(of(kept), kept, |_| false);
        for t in &tokens {
            prints.insert(of(t), t, |t| t == kept);
        }
        assert_eq!(prints.take(&of(kept)).as_deref(), Some(kept));
        assert_eq!(prints.take(&of(kept)), None);
        prints.clear();
        assert_eq!(prints.len(), 0);
    }

    #[test]
    fn stripes_stay_in_range() {
        for t in ["a", "b", "c", "token"] {
            assert!(stripe(&of(t), 64) < 64);
        }
    }
}
