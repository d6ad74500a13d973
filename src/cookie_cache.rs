//! Better Auth's cookie cache, the `session_data` cookie (spec §6): a signed copy of the session
//! and user that lets a request skip the store.
//!
//! # The revocation trade-off
//!
//! A valid cache cookie is trusted **without reading the store**, so a session revoked or
//! deleted elsewhere keeps working on this service until the cache cookie expires (`max_age`,
//! 5 minutes by default), exactly as in Better Auth (its issue #6893). Keep `max_age` short,
//! and force an authoritative read on sensitive routes with
//! [`SessionConfigBuilder::authoritative_for`](crate::SessionConfigBuilder::authoritative_for),
//! as Better Auth's `sensitiveSessionMiddleware` does. Without a cache the layer reads the store
//! on every request, which is always correct.
//!
//! Supported strategies: `compact` (Better Auth's default) and `jwt` (HS256 with the secret),
//! both read and issued. `jwe` is refused at start-up.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::codec::{cookies_with_prefix, find_token_cookie, Signer};
use crate::config::SessionConfig;
use crate::error::ConfigError;
use crate::model::{Authenticated, Session, User};
use crate::time_fmt;

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

/// How the cache cookie is encoded, Better Auth's `session.cookieCache.strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieCacheStrategy {
    /// base64url JSON with an HMAC-SHA256 signature: Better Auth's default.
    Compact,
    /// A JWT signed HS256 with the secret.
    Jwt,
    /// Encrypted JWE (`dir` + `A256CBC-HS512`): **not supported**; configuring it is a start-up
    /// error rather than a silent miss.
    Jwe,
}

/// Cookie-cache settings. See the [module docs](self) for the revocation trade-off.
///
/// ```
/// use time::Duration;
/// use tower_auth_session::{CookieCache, SessionConfig};
///
/// let config = SessionConfig::builder()
///     .secret("a-private-secret-of-at-least-32-bytes!!")
///     .cookie_cache(CookieCache::compact().max_age(Duration::minutes(2)))
///     .authoritative_for("/account")
///     .build()
///     .unwrap();
/// # let _ = config;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct CookieCache {
    pub(crate) strategy: CookieCacheStrategy,
    pub(crate) max_age: Duration,
    pub(crate) version: String,
}

impl CookieCache {
    /// The `compact` strategy with Better Auth's defaults (`maxAge` 300 s, version `"1"`).
    pub fn compact() -> Self {
        Self::with_strategy(CookieCacheStrategy::Compact)
    }

    /// The `jwt` strategy with Better Auth's defaults.
    pub fn jwt() -> Self {
        Self::with_strategy(CookieCacheStrategy::Jwt)
    }

    /// Any strategy (`Jwe` is refused when the configuration is built).
    pub fn with_strategy(strategy: CookieCacheStrategy) -> Self {
        Self {
            strategy,
            max_age: Duration::seconds(300),
            version: "1".to_owned(),
        }
    }

    /// How long a cache cookie is trusted, Better Auth's `cookieCache.maxAge`. Default: 5
    /// minutes.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The cache version, Better Auth's `cookieCache.version`: bump it to invalidate every
    /// cache cookie at once. Default: `"1"`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.strategy == CookieCacheStrategy::Jwe {
            return Err(ConfigError::Invalid {
                option: "cookie_cache",
                reason: "the \"jwe\" strategy is not supported (its cookies would silently never \
                         match); set Better Auth's session.cookieCache.strategy to \"compact\" or \
                         \"jwt\", or leave the cache off here (the layer then reads the store on \
                         every request, which is always correct)"
                    .to_owned(),
            });
        }
        if self.max_age <= Duration::ZERO || self.max_age > crate::config::MAX_COOKIE_AGE {
            return Err(ConfigError::Invalid {
                option: "cookie_cache.max_age",
                reason: format!("{} is not between 1 second and 400 days", self.max_age),
            });
        }
        Ok(())
    }
}

/// The raw cache cookie: the exact name, else its chunks `.0`, `.1`, … concatenated in numeric
/// order (spec §6.5). Returns the value and the chunk names seen (for expiring them).
pub(crate) fn read(config: &SessionConfig, headers: &HeaderMap) -> (Option<Vec<u8>>, Vec<String>) {
    let spec = &config.session_data_cookie;
    let prefix = format!("{}.", spec.name);
    let mut chunks: Vec<(u32, &[u8], String)> = cookies_with_prefix(headers, &prefix)
        .filter_map(|(name, value)| {
            let index = std::str::from_utf8(&name[prefix.len()..]).ok()?;
            // Canonical non-negative integers only: `String(Number(s)) === s`.
            let n: u32 = index.parse().ok()?;
            (n.to_string() == index && n < 100)
                .then(|| (n, value, String::from_utf8_lossy(name).into_owned()))
        })
        .collect();
    let names = chunks.iter().map(|c| c.2.clone()).collect();
    if let Some(exact) = find_token_cookie(headers, &spec.name) {
        let exact = exact.trim_ascii();
        return (
            (!exact.is_empty() && exact.len() <= MAX_CACHE_LEN).then(|| exact.to_vec()),
            names,
        );
    }
    if chunks.is_empty() {
        return (None, names);
    }
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

/// Verifies a cache cookie for `token` at `now`; `None` means "not usable, fall back to the
/// store" (never "signed out").
pub(crate) fn verify(
    config: &SessionConfig,
    cache: &CookieCache,
    value: &[u8],
    token: &str,
    now: OffsetDateTime,
) -> Option<Authenticated> {
    let now_ms = time_fmt::to_unix_ms(now);
    let payload = match cache.strategy {
        CookieCacheStrategy::Compact => verify_compact(&config.signer, value, now_ms)?,
        CookieCacheStrategy::Jwt => verify_jwt(&config.signer, value, now_ms)?,
        CookieCacheStrategy::Jwe => return None,
    };
    let version_ok = payload.version.as_deref().unwrap_or("1") == cache.version;
    (version_ok && payload.session.token == token && payload.session.expires_at >= now)
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

/// The session as Better Auth's adapter returns it: schema fields, plugin fields, `id` last.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionOut<'a> {
    expires_at: String,
    token: &'a str,
    created_at: String,
    updated_at: String,
    ip_address: &'a Option<String>,
    user_agent: &'a Option<String>,
    user_id: &'a str,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
    id: &'a str,
}

/// The user as Better Auth's adapter returns it: schema fields, plugin fields, `id` last.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserOut<'a> {
    name: &'a str,
    email: &'a str,
    email_verified: bool,
    image: &'a Option<String>,
    created_at: String,
    updated_at: String,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
    id: &'a str,
}

/// `{"session":{…},"user":{…},"updatedAt":N,"version":"…"` without the closing brace, as
/// `JSON.stringify` writes the payload.
fn payload_prefix(auth: &Authenticated, updated_at_ms: i64, version: &str) -> Option<String> {
    let s = &auth.session;
    let u = &auth.user;
    let session = serde_json::to_string(&SessionOut {
        expires_at: time_fmt::to_iso(s.expires_at),
        token: &s.token,
        created_at: time_fmt::to_iso(s.created_at),
        updated_at: time_fmt::to_iso(s.updated_at),
        ip_address: &s.ip_address,
        user_agent: &s.user_agent,
        user_id: &s.user_id,
        extra: &s.extra,
        id: &s.id,
    })
    .ok()?;
    let user = serde_json::to_string(&UserOut {
        name: &u.name,
        email: &u.email,
        email_verified: u.email_verified,
        image: &u.image,
        created_at: time_fmt::to_iso(u.created_at),
        updated_at: time_fmt::to_iso(u.updated_at),
        extra: &u.extra,
        id: &u.id,
    })
    .ok()?;
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

/// The `Set-Cookie` lines that issue a cache cookie for `auth`, chunked above 4050 bytes, plus
/// deletions of chunks the request carried that are no longer used.
pub(crate) fn issue(
    config: &SessionConfig,
    cache: &CookieCache,
    auth: &Authenticated,
    now: OffsetDateTime,
    dont_remember: bool,
    seen_chunks: &[String],
) -> Vec<HeaderValue> {
    let now_ms = time_fmt::to_unix_ms(now);
    // "Don't remember me" sessions get a browser-session cookie with a 60 s inner expiry.
    let (inner_age, max_age) = if dont_remember {
        (Duration::seconds(60), None)
    } else {
        (cache.max_age, Some(cache.max_age))
    };
    let value = match cache.strategy {
        CookieCacheStrategy::Compact => encode_compact(
            &config.signer,
            auth,
            now_ms,
            &cache.version,
            now_ms + inner_age.whole_milliseconds() as i64,
        ),
        CookieCacheStrategy::Jwt => {
            encode_jwt(&config.signer, auth, now_ms, &cache.version, inner_age)
        }
        CookieCacheStrategy::Jwe => None,
    };
    let Some(value) = value else {
        return Vec::new();
    };
    let spec = &config.session_data_cookie;
    let whole = config.set_cookie(spec, &value, max_age);
    if whole.len() <= CHUNK_LIMIT {
        return seen_chunks
            .iter()
            .map(|name| config.expire_cookie(&spec.renamed(name)))
            .chain(std::iter::once(whole))
            .collect();
    }
    let overhead = config
        .set_cookie(&spec.renamed(&format!("{}.99", spec.name)), "", max_age)
        .len();
    let size = CHUNK_LIMIT.saturating_sub(overhead).max(1);
    let pieces: Vec<&str> = value
        .as_bytes()
        .chunks(size)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    if pieces.len() > 100 {
        tracing::warn!("session too large for the cookie cache; not caching it");
        return Vec::new();
    }
    let mut out: Vec<HeaderValue> = pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            config.set_cookie(&spec.renamed(&format!("{}.{i}", spec.name)), piece, max_age)
        })
        .collect();
    for name in seen_chunks {
        let index: usize = name
            .rsplit('.')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if index >= pieces.len() {
            out.push(config.expire_cookie(&spec.renamed(name)));
        }
    }
    out
}

/// Deletions for the cache cookie and every chunk the request carried.
pub(crate) fn expire_all(config: &SessionConfig, seen_chunks: &[String]) -> Vec<HeaderValue> {
    let spec = &config.session_data_cookie;
    std::iter::once(config.expire_cookie(spec))
        .chain(
            seen_chunks
                .iter()
                .map(|n| config.expire_cookie(&spec.renamed(n))),
        )
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
