//! Better Auth's identifiers (spec §3): tokens and ids from the operating system's CSPRNG.

/// Generates a Better Auth identifier: `len` characters from `[a-zA-Z0-9]`, drawn from the
/// operating system's CSPRNG with rejection sampling (bytes ≥ 248 are discarded, then `% 62`),
/// exactly like Better Auth's `generateId` (spec §3). 32 characters carry about 190 bits.
///
/// # Panics
///
/// Panics if the operating system's random number generator fails, which `getrandom` reports
/// only on a broken platform; a session must never be issued with a guessable token.
pub fn generate_id(len: usize) -> String {
    const ALPHABET: &[u8; 62] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_random(&mut buf);
        for &b in &buf {
            if b < 248 && out.len() < len {
                out.push(ALPHABET[usize::from(b % 62)] as char);
            }
        }
    }
    out
}

/// Fills `buf` from the operating system's CSPRNG.
///
/// # Panics
///
/// As [`generate_id`]: only on a platform whose random number generator is broken.
pub(crate) fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's CSPRNG is unavailable");
}
