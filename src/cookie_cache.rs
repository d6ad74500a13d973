//! Better Auth's cookie cache, the `session_data` cookie (spec §6): a signed copy of the session
//! and user that lets a request skip the store.
//!
//! Whether to trust it is a trade-off: see [`CookieCache`](crate::CookieCache).
//!
//! Supported strategies: `compact` (Better Auth's default) and `jwt` (HS256 with the secret),
//! both read and issued. `jwe` is refused at start-up.
//!
//! This module is the cookie's codec only: reading the (chunked) value from the request,
//! verifying it, and encoding and chunking a new one. Whether to trust, issue or expire it is the
//! policy's decision ([`crate::policy`]); its `Set-Cookie` lines are written on the way out
//! ([`crate::plan`]).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use http::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::codec::{cookies_with_prefix, find_token_cookie, Signer};
use crate::config::{chunk_index, CookieCache, CookieCacheStrategy, CookieSpec};
use crate::model::{Authenticated, Session, User};
use crate::time_fmt;
use crate::wire::{SessionRow, UserRow};

/// base64url, no padding on output; padding tolerated on input (Better Auth's decoder stops at
/// `=`).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Better Auth's largest `Set-Cookie` before it chunks the cache (spec §6.5).
const CHUNK_LIMIT: usize = 4050;
/// Cache cookies longer than this (all chunks together) are ignored unread.
const MAX_CACHE_LEN: usize = 100 * CHUNK_LIMIT;

/// The raw cache cookie: the exact name, else its chunks `.0`, `.1`, … concatenated in numeric
/// order (spec §6.5). Returns the value and the chunk names seen (for expiring them).
pub(crate) fn read(spec: &CookieSpec, headers: &HeaderMap) -> (Option<Vec<u8>>, Vec<String>) {
    let prefix = format!("{}.", spec.name);
    let mut chunks: Vec<(u32, &[u8], String)> = cookies_with_prefix(headers, &prefix)
        .filter_map(|(name, value)| {
            chunk_index(name, &prefix)
                .map(|n| (n, value, String::from_utf8_lossy(name).into_owned()))
        })
        .collect();
    // Each name once, however often the request repeats it: one expiry line per chunk.
    let mut names: Vec<String> = chunks.iter().map(|c| c.2.clone()).collect();
    names.sort_unstable();
    names.dedup();
    // An empty one counts as absent, as Better Auth's `getChunkedCookie` (`if (value)`) has it.
    if let Some(exact) = find_token_cookie(headers, &spec.name)
        .map(<[u8]>::trim_ascii)
        .filter(|exact| !exact.is_empty())
    {
        return (
            (exact.len() <= MAX_CACHE_LEN).then(|| exact.to_vec()),
            names,
        );
    }
    if chunks.is_empty() {
        return (None, names);
    }
    // Chunks are read as Better Auth's `parseCookies` reads them: a value outside RFC 6265's
    // characters is skipped, and of a chunk sent twice the last copy counts (a map insert).
    chunks.retain(|c| cookie_value_ok(c.1));
    chunks.reverse();
    chunks.sort_by_key(|c| c.0);
    chunks.dedup_by_key(|c| c.0);
    let total: usize = chunks.iter().map(|c| c.1.len()).sum();
    if total > MAX_CACHE_LEN {
        return (None, names);
    }
    let mut value = Vec::with_capacity(total);
    for (_, part, _) in &chunks {
        value.extend_from_slice(part);
    }
    (Some(value), names)
}

/// Whether Better Auth's `parseCookies` keeps a cookie with this (trimmed) value: once a pair
/// of surrounding double quotes is taken off, RFC 6265's cookie-value characters, space and
/// comma.
fn cookie_value_ok(value: &[u8]) -> bool {
    let value = match value {
        [b'"', inner @ .., b'"'] => inner,
        other => other,
    };
    value
        .iter()
        .all(|&b| matches!(b, 0x20 | 0x21 | 0x23..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E))
}

#[derive(Deserialize)]
struct Payload {
    session: Session,
    user: User,
    #[serde(rename = "updatedAt")]
    _updated_at: Option<i64>,
    version: Option<String>,
}

#[derive(Deserialize)]
struct CompactOuter<'a> {
    #[serde(borrow)]
    session: &'a RawValue,
    #[serde(borrow, rename = "expiresAt")]
    expires_at: &'a RawValue,
    signature: String,
}

#[derive(Deserialize)]
struct JwtClaims {
    #[serde(flatten)]
    payload: Payload,
    exp: i64,
}

/// Which strategy wrote a cache cookie, from its shape alone: five dot-separated parts is a
/// JWE, three a JWT, one a compact value (base64url JSON with a `signature`). `None` when it
/// is none of them.
pub(crate) fn strategy_of(value: &[u8]) -> Option<CookieCacheStrategy> {
    let parts = value.split(|&b| b == b'.').count();
    let header_is_json = || {
        let header = value.split(|&b| b == b'.').next().unwrap_or_default();
        B64URL
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice::<serde_json::Map<String, Value>>(&h).ok())
            .is_some()
    };
    match parts {
        5 if header_is_json() => Some(CookieCacheStrategy::Jwe),
        3 if header_is_json() => Some(CookieCacheStrategy::Jwt),
        1 => {
            let json = B64URL.decode(value).ok()?;
            let outer: serde_json::Map<String, Value> = serde_json::from_slice(&json).ok()?;
            outer
                .contains_key("signature")
                .then_some(CookieCacheStrategy::Compact)
        }
        _ => None,
    }
}

/// Whether `value` is a JWT cache cookie signed with the `jwt()` plugin's keys (Better Auth's
/// `jwt({ sessionCookieCache: true })`: an asymmetric `alg` and a `kid`) rather than with the
/// secret (`HS256`), which is the only form this crate reads and writes. The two sides would
/// otherwise each expire the other's cookie on every request.
pub(crate) fn signed_with_jwks(value: &[u8]) -> bool {
    let mut parts = value.split(|&b| b == b'.');
    let header = parts.next().unwrap_or_default();
    if parts.count() != 2 {
        return false;
    }
    B64URL
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice::<serde_json::Map<String, Value>>(&h).ok())
        .is_some_and(|h| {
            h.get("alg")
                .and_then(Value::as_str)
                .is_some_and(|alg| alg != "HS256")
        })
}

/// Verifies a cache cookie for the session stored under `key` at `now`; `None` means "not
/// usable, fall back to the store" (never "signed out").
pub(crate) fn verify(
    signer: &Signer,
    cache: &CookieCache,
    value: &[u8],
    key: &str,
    now: OffsetDateTime,
) -> Option<Authenticated> {
    let now_ms = time_fmt::to_unix_ms(now);
    let payload = match cache.strategy {
        CookieCacheStrategy::Compact => verify_compact(signer, value, now_ms)?,
        CookieCacheStrategy::Jwt => verify_jwt(signer, value, now_ms)?,
        CookieCacheStrategy::Jwe => return None,
    };
    let version_ok = payload.version.as_deref().unwrap_or("1") == cache.version;
    (version_ok && payload.session.token == key && payload.session.expires_at >= now)
        .then(|| Authenticated::new(payload.session, payload.user))
}

/// Compact: HMAC over the signed message rebuilt from the raw bytes (no re-serialization), then
/// the outer expiry.
fn verify_compact(signer: &Signer, value: &[u8], now_ms: i64) -> Option<Payload> {
    let json = B64URL.decode(value).ok()?;
    let outer: CompactOuter<'_> = serde_json::from_slice(&json).ok()?;
    let session = outer.session.get();
    let expires_at = outer.expires_at.get();
    if !session.starts_with('{') || !session.ends_with('}') || session.len() < 2 {
        return None;
    }
    let body = &session[..session.len() - 1];
    let separator = if body.len() > 1 { "," } else { "" };
    let message = format!("{body}{separator}\"expiresAt\":{expires_at}}}");
    let tag = B64URL.decode(outer.signature.as_bytes()).ok()?;
    if tag.len() != 32 || !signer.verify_tag(message.as_bytes(), &tag) {
        return None;
    }
    let expires: f64 = serde_json::from_str(expires_at).ok()?;
    // NaN cannot come out of JSON; anything not at or after now is expired.
    if expires.is_nan() || expires < now_ms as f64 {
        return None;
    }
    serde_json::from_str(session).ok()
}

/// JWT: `{"alg":"HS256"}` only, HMAC over `header.payload`, `exp` in seconds.
fn verify_jwt(signer: &Signer, value: &[u8], now_ms: i64) -> Option<Payload> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split('.');
    let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&B64URL.decode(header).ok()?).ok()?;
    if header.get("alg")?.as_str()? != "HS256" {
        return None;
    }
    let tag = B64URL.decode(signature).ok()?;
    let signed = &text[..header_len(text)?];
    if tag.len() != 32 || !signer.verify_tag(signed.as_bytes(), &tag) {
        return None;
    }
    let claims: JwtClaims = serde_json::from_slice(&B64URL.decode(claims).ok()?).ok()?;
    (claims.exp.checked_mul(1000)? > now_ms).then_some(claims.payload)
}

/// The length of `header.payload` in a JWT.
fn header_len(jwt: &str) -> Option<usize> {
    jwt.rfind('.')
}

/// `{"session":{…},"user":{…},"updatedAt":N,"version":"…"` without the closing brace, as
/// `JSON.stringify` writes the payload.
fn payload_prefix(auth: &Authenticated, updated_at_ms: i64, version: &str) -> Option<String> {
    let session = serde_json::to_string(&SessionRow::new(&auth.session)).ok()?;
    let user = serde_json::to_string(&UserRow::new(&auth.user)).ok()?;
    let version = serde_json::to_string(version).ok()?;
    Some(format!(
        "{{\"session\":{session},\"user\":{user},\"updatedAt\":{updated_at_ms},\"version\":{version}"
    ))
}

/// The compact cookie value, byte-compatible with Better Auth's `setCookieCache`.
pub(crate) fn encode_compact(
    signer: &Signer,
    auth: &Authenticated,
    updated_at_ms: i64,
    version: &str,
    expires_at_ms: i64,
) -> Option<String> {
    let payload = payload_prefix(auth, updated_at_ms, version)?;
    let signed = format!("{payload},\"expiresAt\":{expires_at_ms}}}");
    let signature = B64URL.encode(signer.mac(signed.as_bytes()));
    let outer = format!(
        "{{\"session\":{payload}}},\"expiresAt\":{expires_at_ms},\"signature\":\"{signature}\"}}"
    );
    Some(B64URL.encode(outer))
}

/// The JWT cookie value, as Better Auth's `signJWT` (`{"alg":"HS256"}`, `iat`, `exp`).
pub(crate) fn encode_jwt(
    signer: &Signer,
    auth: &Authenticated,
    now_ms: i64,
    version: &str,
    max_age: Duration,
) -> Option<String> {
    let payload = payload_prefix(auth, now_ms, version)?;
    let iat = now_ms.div_euclid(1000);
    let exp = iat + max_age.whole_seconds();
    let claims = format!("{payload},\"iat\":{iat},\"exp\":{exp}}}");
    let signed = format!(
        "{}.{}",
        B64URL.encode(br#"{"alg":"HS256"}"#),
        B64URL.encode(claims)
    );
    let signature = B64URL.encode(signer.mac(signed.as_bytes()));
    Some(format!("{signed}.{signature}"))
}

/// The `Set-Cookie` lines that issue the cache cookie for `auth` at `now` ([`encode`], then
/// [`set_cookies`]: chunked as needed, the request's unused chunks `seen_chunks` expired); none
/// when the strategy cannot be written here (JWE) or the value is too large.
pub(crate) fn issue(
    signer: &Signer,
    cache: &CookieCache,
    spec: &CookieSpec,
    auth: &Authenticated,
    now: OffsetDateTime,
    dont_remember: bool,
    seen_chunks: &[String],
) -> Vec<HeaderValue> {
    encode(signer, cache, auth, now, dont_remember).map_or_else(Vec::new, |(value, max_age)| {
        set_cookies(spec, &value, max_age, seen_chunks)
    })
}

/// A new cache cookie's value for `auth` at `now`, and its `Max-Age` (`None` for a
/// "don't remember me" session, whose cache cookie ends with the browser session and whose
/// payload is trusted for 60 s, or 300 s as a JWT, as Better Auth's `setCookieCache` falls back
/// to `|| 60` and `|| 300`).
fn encode(
    signer: &Signer,
    cache: &CookieCache,
    auth: &Authenticated,
    now: OffsetDateTime,
    dont_remember: bool,
) -> Option<(String, Option<Duration>)> {
    let now_ms = time_fmt::to_unix_ms(now);
    let (inner_age, max_age) = if dont_remember {
        (Duration::seconds(60), None)
    } else {
        (cache.max_age, Some(cache.max_age))
    };
    let value = match cache.strategy {
        CookieCacheStrategy::Compact => encode_compact(
            signer,
            auth,
            now_ms,
            &cache.version,
            now_ms + inner_age.whole_milliseconds() as i64,
        ),
        CookieCacheStrategy::Jwt => {
            let age = if dont_remember {
                Duration::seconds(300)
            } else {
                inner_age
            };
            encode_jwt(signer, auth, now_ms, &cache.version, age)
        }
        CookieCacheStrategy::Jwe => None,
    }?;
    Some((value, max_age))
}

/// The `Set-Cookie` lines for a cache cookie `value`, chunked above 4050 bytes as Better Auth
/// chunks it (spec §6.5), plus deletions of chunks the request carried that are no longer used,
/// and when chunked, of the unchunked cookie: every reader (Better Auth's `getCookieCache`,
/// which does not compare tokens, among them) takes that one first, so a previous account's
/// would go on answering. When the value would need more than 100 chunks, Better Auth skips
/// the cache and so does this: only the deletions.
fn set_cookies(
    spec: &CookieSpec,
    value: &str,
    max_age: Option<Duration>,
    seen_chunks: &[String],
) -> Vec<HeaderValue> {
    let whole = spec.header(value, max_age);
    if whole.len() <= CHUNK_LIMIT {
        return seen_chunks
            .iter()
            .map(|name| spec.renamed(name).expired())
            .chain(std::iter::once(whole))
            .collect();
    }
    let overhead = spec
        .renamed(&format!("{}.99", spec.name))
        .header("", max_age)
        .len();
    let size = CHUNK_LIMIT.saturating_sub(overhead).max(1);
    let pieces: Vec<&str> = value
        .as_bytes()
        .chunks(size)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    if pieces.len() > 100 {
        tracing::warn!("session too large for the cookie cache; not caching it");
        return expire_all(spec, seen_chunks);
    }
    let mut out: Vec<HeaderValue> = std::iter::once(spec.expired())
        .chain(pieces.iter().enumerate().map(|(i, piece)| {
            spec.renamed(&format!("{}.{i}", spec.name))
                .header(piece, max_age)
        }))
        .collect();
    for name in seen_chunks {
        let index: usize = name
            .rsplit('.')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if index >= pieces.len() {
            out.push(spec.renamed(name).expired());
        }
    }
    out
}

/// Deletions for the cache cookie and every chunk the request carried.
pub(crate) fn expire_all(spec: &CookieSpec, seen_chunks: &[String]) -> Vec<HeaderValue> {
    std::iter::once(spec.expired())
        .chain(seen_chunks.iter().map(|n| spec.renamed(n).expired()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const SECRET: &str = "better-auth-secret-12345678901234567890";
    const VECTOR: &str = "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsiZXhwaXJlc0F0IjoiMjA5OS0xMi0zMVQwMDowMDowMC4wMDBaIiwidG9rZW4iOiI3YU9OOVF2WGk3Y041VzIyYUJvWUI3TzRjQnk4MjdlUyIsImNyZWF0ZWRBdCI6IjIwMjYtMDEtMDFUMDA6MDA6MDAuMDAwWiIsInVwZGF0ZWRBdCI6IjIwMjYtMDEtMDFUMDA6MDA6MDAuMDAwWiIsImlwQWRkcmVzcyI6IiIsInVzZXJBZ2VudCI6IiIsInVzZXJJZCI6IlUwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAxIiwiaWQiOiJTMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMSJ9LCJ1c2VyIjp7Im5hbWUiOiJBbGljZSIsImVtYWlsIjoiYWxpY2VAZXhhbXBsZS5jb20iLCJlbWFpbFZlcmlmaWVkIjpmYWxzZSwiaW1hZ2UiOm51bGwsImNyZWF0ZWRBdCI6IjIwMjYtMDEtMDFUMDA6MDA6MDAuMDAwWiIsInVwZGF0ZWRBdCI6IjIwMjYtMDEtMDFUMDA6MDA6MDAuMDAwWiIsImlkIjoiVTAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDEifSwidXBkYXRlZEF0IjoxNzY3MjI1NjAwMDAwLCJ2ZXJzaW9uIjoiMSJ9LCJleHBpcmVzQXQiOjQxMDI0NDQ4MDAwMDAsInNpZ25hdHVyZSI6InIzZW0zek9waTJ1RmgxSUVCZGp4ekJRMHF3anhxdVBVZndzYWJmWXhiUzgifQ";
    const JWT_VECTOR: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzZXNzaW9uIjp7ImV4cGlyZXNBdCI6IjIwOTktMTItMzFUMDA6MDA6MDAuMDAwWiIsInRva2VuIjoiN2FPTjlRdlhpN2NONVcyMmFCb1lCN080Y0J5ODI3ZVMiLCJjcmVhdGVkQXQiOiIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJ1cGRhdGVkQXQiOiIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJpcEFkZHJlc3MiOiIiLCJ1c2VyQWdlbnQiOiIiLCJ1c2VySWQiOiJVMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMSIsImlkIjoiUzAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDEifSwidXNlciI6eyJuYW1lIjoiQWxpY2UiLCJlbWFpbCI6ImFsaWNlQGV4YW1wbGUuY29tIiwiZW1haWxWZXJpZmllZCI6ZmFsc2UsImltYWdlIjpudWxsLCJjcmVhdGVkQXQiOiIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJ1cGRhdGVkQXQiOiIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJpZCI6IlUwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAxIn0sInVwZGF0ZWRBdCI6MTc2NzIyNTYwMDAwMCwidmVyc2lvbiI6IjEiLCJpYXQiOjE3NjcyMjU2MDAsImV4cCI6NDEwMjQ0NDgwMH0.59ckpOAy_owYEcprgwsqnD2mduEOREeM2Xd1SZqYANU";
    const TOKEN: &str = "7aON9QvXi7cN5W22aBoYB7O4cBy827eS";

    fn vector_auth() -> Authenticated {
        let p: Payload = serde_json::from_str(
            r#"{"session":{"expiresAt":"2099-12-31T00:00:00.000Z","token":"7aON9QvXi7cN5W22aBoYB7O4cBy827eS","createdAt":"2026-01-01T00:00:00.000Z","updatedAt":"2026-01-01T00:00:00.000Z","ipAddress":"","userAgent":"","userId":"U0000000000000000000000000000001","id":"S0000000000000000000000000000001"},"user":{"name":"Alice","email":"alice@example.com","emailVerified":false,"image":null,"createdAt":"2026-01-01T00:00:00.000Z","updatedAt":"2026-01-01T00:00:00.000Z","id":"U0000000000000000000000000000001"},"updatedAt":1767225600000,"version":"1"}"#,
        )
        .unwrap();
        Authenticated::new(p.session, p.user)
    }

    #[test]
    fn compact_vector_verifies_and_tampering_fails() {
        let signer = Signer::new(SECRET);
        let now = time_fmt::to_unix_ms(datetime!(2026-11-23 12:00 UTC));
        let p = verify_compact(&signer, VECTOR.as_bytes(), now).expect("spec vector verifies");
        assert_eq!(p.user.email, "alice@example.com");
        assert_eq!(p.session.token, TOKEN);
        let json = String::from_utf8(B64URL.decode(VECTOR).unwrap()).unwrap();
        let tampered = B64URL.encode(json.replace("Alice", "Alicf"));
        assert!(verify_compact(&signer, tampered.as_bytes(), now).is_none());
        assert!(verify_compact(
            &Signer::new("another-secret-0123456789-abcdefghijk"),
            VECTOR.as_bytes(),
            now
        )
        .is_none());
        // Past the outer expiry (2100-01-01) it is no longer trusted.
        assert!(verify_compact(&signer, VECTOR.as_bytes(), 4_102_444_800_001).is_none());
    }

    #[test]
    fn compact_issue_reproduces_the_vector_byte_for_byte() {
        let signer = Signer::new(SECRET);
        let value = encode_compact(
            &signer,
            &vector_auth(),
            1_767_225_600_000,
            "1",
            4_102_444_800_000,
        )
        .unwrap();
        assert_eq!(value, VECTOR);
    }

    #[test]
    fn jwt_vector_verifies_and_issue_reproduces_it() {
        let signer = Signer::new(SECRET);
        let now = time_fmt::to_unix_ms(datetime!(2026-11-23 12:00 UTC));
        let p = verify_jwt(&signer, JWT_VECTOR.as_bytes(), now).expect("spec JWT vector verifies");
        assert_eq!(p.user.name, "Alice");
        let minted = encode_jwt(
            &signer,
            &vector_auth(),
            1_767_225_600_000,
            "1",
            Duration::seconds(4_102_444_800 - 1_767_225_600),
        )
        .unwrap();
        assert_eq!(minted, JWT_VECTOR);
        let mut bad = JWT_VECTOR.to_owned();
        bad.replace_range(bad.len() - 2.., "AA");
        assert!(verify_jwt(&signer, bad.as_bytes(), now).is_none());
    }

    #[test]
    fn jwe_is_a_startup_error() {
        let err = CookieCache::with_strategy(CookieCacheStrategy::Jwe)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("jwe"), "{err}");
    }
}
