//! The signing keys (spec §2.3, §8): the current secret, previous secrets still in force during
//! a rotation, and how a token becomes the key a store knows it by.

use std::borrow::Cow;

use time::OffsetDateTime;

use crate::codec::Signer;
use crate::model::StorageKey;

/// The current signer, previous ones, and hashing at rest.
#[derive(Clone)]
pub(crate) struct Keys {
    pub(crate) signer: Signer,
    /// Old secrets that still verify, each until its optional end.
    pub(crate) previous: Vec<(Signer, Option<OffsetDateTime>)>,
    /// Stores see SHA-256 of each token instead of the token.
    pub(crate) hash_at_rest: bool,
}

/// A value whose signature verified.
pub(crate) struct Verified<'a> {
    /// What was signed (a token, or `true` for `dont_remember`).
    pub(crate) value: Cow<'a, str>,
    /// A previous secret verified it: re-sign it with the current one.
    pub(crate) resign: bool,
}

impl Keys {
    /// Verifies a raw signed value with the current secret, then with each previous secret
    /// still in force at `now` (asked only when a previous secret is configured).
    pub(crate) fn unsign<'a>(
        &self,
        raw: &'a [u8],
        now: impl FnOnce() -> OffsetDateTime,
    ) -> Option<Verified<'a>> {
        if let Some(value) = self.signer.unsign(raw) {
            return Some(Verified {
                value,
                resign: false,
            });
        }
        if self.previous.is_empty() {
            return None;
        }
        let now = now();
        self.previous
            .iter()
            .filter(|(_, until)| until.is_none_or(|u| now <= u))
            .find_map(|(signer, _)| signer.unsign(raw))
            .map(|value| Verified {
                value,
                resign: true,
            })
    }

    /// The key a token is stored under: the token itself, or its SHA-256 (hex) when hashing
    /// at rest. Borrows the token in the usual case; hashing allocates the hex string.
    pub(crate) fn storage_key<'t>(&self, token: &'t str) -> StorageKey<'t> {
        if self.hash_at_rest {
            StorageKey::from_cow(Cow::Owned(sha256_hex(token)))
        } else {
            StorageKey::from_cow(Cow::Borrowed(token))
        }
    }
}

/// Lower-case hex SHA-256.
pub(crate) fn sha256_hex(input: &str) -> String {
    use sha2::Digest;
    use std::fmt::Write as _;
    let digest = sha2::Sha256::digest(input.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}
