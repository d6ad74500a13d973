//! Better Auth `jwt()` plugin tokens: the compact JWS, its signature and its claims.
//!
//! The Better Auth 1.7.25 rules this module owns (signed by `jose`):
//!
//! * a token is `base64url(header).base64url(payload).base64url(signature)`, unpadded, and
//!   Better Auth's header is exactly `{"alg":…,"kid":…}` (no `typ`). Other header members are
//!   tolerated, but a token carrying `crit`, naming an algorithm outside [`Algorithm`] (`none`,
//!   `HS256`, …), lacking a `kid`, or typed as Better Auth's JWT cookie cache
//!   (`better-auth.session-cache+jwt`) is refused before any cryptography;
//! * the header's `alg` must be the algorithm the `kid`'s key is pinned to, and one the
//!   deployment allows; the signature is checked before any claim is looked at, so an unsigned
//!   token is only ever reported as a bad signature;
//! * the payload is the session user (`name`, `email`, …, plugin fields such as `role`) plus
//!   `sub` (the user id), `iat`, `exp = iat + 900`, and `iss` = `aud` = the `baseURL`'s origin.
//!   `exp` is required and, as in `jose`, the token is expired from the second `exp` (plus
//!   leeway) on; `nbf`, absent in Better Auth's tokens, is honoured when present; `iss` must
//!   match exactly; `aud` is a string or an array that must contain the expected audience; `sub`
//!   must be a non-empty string.
//!
//! Tokens are attacker-controlled: nothing here can panic, and a token longer than
//! [`MAX_TOKEN_LEN`] is refused unread.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use super::jwk::{Algorithm, Jwk};

/// Longest token accepted, in bytes (a Better Auth token with a modest user object is well
/// under 2 KiB).
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The `typ` of Better Auth's JWT-signed cookie cache (`session_data`), a different token that
/// must never pass as a `jwt()` access token.
const SESSION_CACHE_TYP: &str = "better-auth.session-cache+jwt";

/// Why a token was refused. [`Reject::as_str`] gives a short label for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Not a well-formed Better Auth JWS, or a claim of the wrong JSON type; the detail says
    /// which part.
    Malformed(&'static str),
    /// The header's `alg` is unsupported, not allowed, or not the key's algorithm.
    Algorithm,
    /// No key has the token's `kid`.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `exp` (plus leeway) has passed.
    Expired,
    /// `nbf` (minus leeway) is still to come.
    NotYetValid,
    /// `iss` is missing or not the expected issuer.
    Issuer,
    /// `aud` is missing or does not contain the expected audience.
    Audience,
    /// `sub` is missing, empty or not a string.
    Subject,
}

impl Reject {
    /// A short snake_case reason: `"malformed"`, `"algorithm"`, `"unknown_kid"`,
    /// `"bad_signature"`, `"expired"`, `"not_yet_valid"`, `"issuer"`, `"audience"` or
    /// `"subject"`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reject::Malformed(_) => "malformed",
            Reject::Algorithm => "algorithm",
            Reject::UnknownKey => "unknown_kid",
            Reject::BadSignature => "bad_signature",
            Reject::Expired => "expired",
            Reject::NotYetValid => "not_yet_valid",
            Reject::Issuer => "issuer",
            Reject::Audience => "audience",
            Reject::Subject => "subject",
        }
    }
}

/// A token split and decoded, its signature not yet checked.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    /// The header's `alg`.
    pub(crate) alg: Algorithm,
    /// The header's `kid`: which key to check the signature with.
    pub(crate) kid: String,
    /// `header.payload`, exactly as in the token: the bytes that were signed.
    pub(crate) signing_input: &'a [u8],
    /// The decoded signature.
    pub(crate) signature: Vec<u8>,
    /// The decoded payload.
    pub(crate) payload: Map<String, Value>,
}

/// What a valid token must show, besides a good signature.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expect<'a> {
    /// The exact `iss` (Better Auth: its `baseURL`'s origin, e.g. `http://localhost:3000`).
    pub(crate) issuer: &'a str,
    /// The audience `aud` must be or contain (Better Auth: its `baseURL`'s origin).
    pub(crate) audience: &'a str,
    /// Clock tolerance applied to `exp` and `nbf` (Better Auth's own verifier uses 0); a negative
    /// value counts as 0.
    pub(crate) leeway: Duration,
    /// The current time.
    pub(crate) now: OffsetDateTime,
    /// The algorithms the deployment accepts.
    pub(crate) algorithms: &'a [Algorithm],
}

/// The claims of a verified Better Auth `jwt()` token.
///
/// The registered claims are checked and typed; [`Claims::payload`] keeps the whole payload,
/// Better Auth's user object included (`name`, `email`, `emailVerified`, `image`, `createdAt`,
/// `updatedAt`, `id`, and plugin fields such as `role` and `banned`), for the application's own
/// use.
#[derive(Clone, Debug, PartialEq)]
pub struct Claims {
    sub: String,
    iss: String,
    aud: Vec<String>,
    iat: Option<OffsetDateTime>,
    exp: OffsetDateTime,
    nbf: Option<OffsetDateTime>,
    kid: String,
    alg: Algorithm,
    payload: Map<String, Value>,
}

impl Claims {
    /// `sub`: the user id (Better Auth's `user.id`, unless the deployment sets `getSubject`).
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// `iss`: the issuer, equal to the expected one.
    pub fn iss(&self) -> &str {
        &self.iss
    }

    /// `aud`: the audiences, one for Better Auth's tokens; a string `aud` gives one element.
    pub fn aud(&self) -> &[String] {
        &self.aud
    }

    /// `iat`: when the token was issued, if it says.
    pub fn iat(&self) -> Option<OffsetDateTime> {
        self.iat
    }

    /// `exp`: when the token expires (Better Auth: `iat` + 15 minutes).
    pub fn exp(&self) -> OffsetDateTime {
        self.exp
    }

    /// `nbf`: when the token becomes valid, if it says (Better Auth's tokens do not).
    pub fn nbf(&self) -> Option<OffsetDateTime> {
        self.nbf
    }

    /// The `kid` of the key that verified the token.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm the token was signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The whole payload, registered claims included.
    pub fn payload(&self) -> &Map<String, Value> {
        &self.payload
    }

    /// One member of the payload, such as `"email"` or `"role"`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.payload.get(name)
    }

    /// The whole payload, by value.
    pub fn into_payload(self) -> Map<String, Value> {
        self.payload
    }
}

/// Splits and decodes a compact JWS, refusing anything that is not shaped like a Better Auth
/// token before any cryptography.
pub(crate) fn parse(token: &str) -> Result<Parsed<'_>, Reject> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Reject::Malformed("token longer than 16 KiB"));
    }
    let mut segments = token.split('.');
    let (header_b64, payload_b64, signature_b64) = match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some(h), Some(p), Some(s), None) => (h, p, s),
        _ => return Err(Reject::Malformed("not three dot-separated segments")),
    };

    // `header.payload`, exactly as in the token: what was signed.
    let signing_input = token
        .as_bytes()
        .get(..header_b64.len() + 1 + payload_b64.len())
        .ok_or(Reject::Malformed("not three dot-separated segments"))?;
    let header = decode(header_b64).ok_or(Reject::Malformed("header is not unpadded base64url"))?;
    let header: Map<String, Value> = serde_json::from_slice(&header)
        .map_err(|_| Reject::Malformed("header is not a JSON object"))?;
    if header.contains_key("crit") {
        return Err(Reject::Malformed("header has crit"));
    }
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.parse::<Algorithm>().map_err(|_| Reject::Algorithm)?,
        _ => return Err(Reject::Malformed("header has no string alg")),
    };
    let kid = match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => kid.clone(),
        _ => return Err(Reject::Malformed("header has no string kid")),
    };
    match header.get("typ") {
        None => {}
        Some(Value::String(typ)) if typ != SESSION_CACHE_TYP => {}
        Some(_) => return Err(Reject::Malformed("header typ is not a jwt() token's")),
    }

    let payload_json =
        decode(payload_b64).ok_or(Reject::Malformed("payload is not unpadded base64url"))?;
    let payload: Map<String, Value> = serde_json::from_slice(&payload_json)
        .map_err(|_| Reject::Malformed("payload is not a JSON object"))?;
    let signature =
        decode(signature_b64).ok_or(Reject::Malformed("signature is not unpadded base64url"))?;
    Ok(Parsed {
        alg,
        kid,
        signing_input,
        signature,
        payload,
    })
}

/// Unpadded base64url, canonical (no `=`, no stray trailing bits, no other alphabet).
fn decode(segment: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(segment).ok()
}

/// Checks a parsed token with the key its `kid` named: algorithm, then signature, then claims.
pub(crate) fn check(parsed: Parsed<'_>, key: &Jwk, expect: &Expect<'_>) -> Result<Claims, Reject> {
    if parsed.alg != key.algorithm() || !expect.algorithms.contains(&parsed.alg) {
        return Err(Reject::Algorithm);
    }
    if !key.verify(parsed.signing_input, &parsed.signature) {
        return Err(Reject::BadSignature);
    }

    let payload = parsed.payload;
    let leeway = expect.leeway.max(Duration::ZERO);
    let exp = payload
        .get("exp")
        .and_then(numeric_date)
        .ok_or(Reject::Malformed("exp is missing or not a NumericDate"))?;
    // Expired from `exp + leeway` on (RFC 7519 §4.1.4, and jose's `exp <= now - tolerance`).
    // A sum beyond the calendar's end is never reached.
    if exp
        .checked_add(leeway)
        .is_some_and(|limit| expect.now >= limit)
    {
        return Err(Reject::Expired);
    }
    let nbf = optional_date(&payload, "nbf", "nbf is not a NumericDate")?;
    if let Some(nbf) = nbf {
        if expect
            .now
            .checked_add(leeway)
            .is_some_and(|late| late < nbf)
        {
            return Err(Reject::NotYetValid);
        }
    }
    let iat = optional_date(&payload, "iat", "iat is not a NumericDate")?;

    let iss = match payload.get("iss") {
        Some(Value::String(iss)) if iss == expect.issuer => iss.clone(),
        _ => return Err(Reject::Issuer),
    };
    let aud = match payload.get("aud") {
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(auds)) => auds
            .iter()
            .map(|aud| aud.as_str().map(str::to_owned))
            .collect::<Option<Vec<String>>>()
            .ok_or(Reject::Audience)?,
        _ => return Err(Reject::Audience),
    };
    if !aud.iter().any(|aud| aud == expect.audience) {
        return Err(Reject::Audience);
    }
    let sub = match payload.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        _ => return Err(Reject::Subject),
    };

    Ok(Claims {
        sub,
        iss,
        aud,
        iat,
        exp,
        nbf,
        kid: parsed.kid,
        alg: parsed.alg,
        payload,
    })
}

/// An optional NumericDate claim: absent is fine, present must be a number in range.
fn optional_date(
    payload: &Map<String, Value>,
    name: &str,
    problem: &'static str,
) -> Result<Option<OffsetDateTime>, Reject> {
    payload
        .get(name)
        .map(|value| numeric_date(value).ok_or(Reject::Malformed(problem)))
        .transpose()
}

/// A JWT NumericDate: seconds since the epoch, integer or not, within years -9999..=9999.
fn numeric_date(value: &Value) -> Option<OffsetDateTime> {
    if let Some(secs) = value.as_i64() {
        return OffsetDateTime::from_unix_timestamp(secs).ok();
    }
    let secs = value.as_f64().filter(|secs| secs.is_finite())?;
    let whole = secs.floor();
    // `as` saturates, and `time` then refuses what is out of its range; the fraction is in
    // [0, 1), so its nanoseconds fit.
    let nanos = ((secs - whole) * 1e9) as i64;
    OffsetDateTime::from_unix_timestamp(whole as i64)
        .ok()?
        .checked_add(Duration::nanoseconds(nanos))
}

#[cfg(test)]
pub(crate) mod vectors {
    //! Better Auth 1.7.25 tokens and JWKS (ba-research §4.7), valid until 2100.

    use super::Algorithm;

    /// One real token and the JWKS that verifies it.
    pub(crate) struct Vector {
        pub(crate) alg: Algorithm,
        pub(crate) kid: &'static str,
        pub(crate) token: &'static str,
        pub(crate) jwks: &'static str,
    }

    /// `iat` of every vector: 2026-01-01T00:00:00Z.
    pub(crate) const IAT: i64 = 1_767_225_600;
    /// `exp` of every vector: 2100-01-01T00:00:00Z.
    pub(crate) const EXP: i64 = 4_102_444_800;
    /// `iss` and `aud` of every vector.
    pub(crate) const BASE: &str = "http://localhost:3000";
    /// `sub` of every vector.
    pub(crate) const SUB: &str = "U0000000000000000000000000000001";

    pub(crate) const VECTORS: [Vector; 5] = [
        Vector {
            alg: Algorithm::EdDsa,
            kid: "9j4qLiieU2xSw1XJBo8HP0Erf8B3jGn8",
            token: "eyJhbGciOiJFZERTQSIsImtpZCI6IjlqNHFMaWllVTJ4U3cxWEpCbzhIUDBFcmY4QjNqR244In0.eyJuYW1lIjoiQWxpY2UiLCJlbWFpbCI6ImFsaWNlQGV4YW1wbGUuY29tIiwiZW1haWxWZXJpZmllZCI6ZmFsc2UsImltYWdlIjpudWxsLCJjcmVhdGVkQXQiOiIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJ1cGRhdGVkQXQiOiIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJpZCI6IlUwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAxIiwic3ViIjoiVTAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDEiLCJpYXQiOjE3NjcyMjU2MDAsImV4cCI6NDEwMjQ0NDgwMCwiaXNzIjoiaHR0cDovL2xvY2FsaG9zdDozMDAwIiwiYXVkIjoiaHR0cDovL2xvY2FsaG9zdDozMDAwIn0.izMKUHgeKt23Q0W2ICfzmZmq1hZaqXABJamd5JupEtSFDPij2q-Xe_poLWRz_gwD2wWMGO6VRkZhmQphgw8-AA",
            jwks: r#"{"keys":[{"alg":"EdDSA","crv":"Ed25519","x":"QP7Yto5-UPxlXt6aicx79PM-FbI8LSy1cMiq0cuVlBg","kty":"OKP","kid":"9j4qLiieU2xSw1XJBo8HP0Erf8B3jGn8"}]}"#,
        },
        Vector {
            alg: Algorithm::Es256,
            kid: "6KlDvRY90cw0gvVunS5tY93AD8Bnwx8e",
            token: "eyJhbGciOiJFUzI1NiIsImtpZCI6IjZLbER2Ulk5MGN3MGd2VnVuUzV0WTkzQUQ4Qm53eDhlIn0.eyJuYW1lIjoiQWxpY2UiLCJlbWFpbCI6ImFsaWNlQGV4YW1wbGUuY29tIiwiZW1haWxWZXJpZmllZCI6ZmFsc2UsImltYWdlIjpudWxsLCJjcmVhdGVkQXQiOiIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJ1cGRhdGVkQXQiOiIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJpZCI6IlUwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAxIiwic3ViIjoiVTAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDEiLCJpYXQiOjE3NjcyMjU2MDAsImV4cCI6NDEwMjQ0NDgwMCwiaXNzIjoiaHR0cDovL2xvY2FsaG9zdDozMDAwIiwiYXVkIjoiaHR0cDovL2xvY2FsaG9zdDozMDAwIn0.pifPW5mTa1bOXANZYxiGXDK3ZXoED0GvGhali04i4XD0XjmUmuFZqWDOjmdMYWrQyj2GAV9N-qSQJTWdCvkFKQ",
            jwks: r#"{"keys":[{"alg":"ES256","crv":"P-256","kty":"EC","x":"uREJQsFvO6bMDwoy_dsWteHxHLtrjQHcZ-r8DAJiJ2M","y":"k9d28sWTZrCQicPkg-Unzv8SWx1bnq7WUaduWMHyikc","kid":"6KlDvRY90cw0gvVunS5tY93AD8Bnwx8e"}]}"#,
        },
        Vector {
            alg: Algorithm::Es512,
            kid: "MiKBlv9YWgM8FCXRtuC4Fs1Ta2kvvdLj",
            token: "eyJhbGciOiJFUzUxMiIsImtpZCI6Ik1pS0JsdjlZV2dNOEZDWFJ0dUM0RnMxVGEya3Z2ZExqIn0.eyJuYW1lIjoiQWxpY2UiLCJlbWFpbCI6ImFsaWNlQGV4YW1wbGUuY29tIiwiZW1haWxWZXJpZmllZCI6ZmFsc2UsImltYWdlIjpudWxsLCJjcmVhdGVkQXQiOiIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJ1cGRhdGVkQXQiOiIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJpZCI6IlUwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAxIiwic3ViIjoiVTAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDEiLCJpYXQiOjE3NjcyMjU2MDAsImV4cCI6NDEwMjQ0NDgwMCwiaXNzIjoiaHR0cDovL2xvY2FsaG9zdDozMDAwIiwiYXVkIjoiaHR0cDovL2xvY2FsaG9zdDozMDAwIn0.AHduBmAb_JzZKn4Nz9l-D1pqNreTgipWffVOjSPKWRAojNFkfUKUlMNXfvMYSyikdV2ihyT3e-J8xeuQUnuumYYyAHB6how2-Wz9xxiXPkj1LiawXmfdQcrUAvPmhBursAmMDxbbwFGj9wqdvxVN6vPdlZM_hL_8XRB7UR_tjW0FQcwe",
            jwks: r#"{"keys":[{"alg":"ES512","crv":"P-521","kty":"EC","x":"APczp91dZKQCbxNwvh4HRdHTKkB2-RtDQ5Vnm6pZAerWhAdPA8KL1_pK6uX3gjiHh0-_yAvCLHMSlQJmQ5TR_slR","y":"AWKOf-TfRRWsOVJlq5NN7tt4FnAw_XkQ0CnTdwjgUD3665FNbI_62p7mvPOXhozsyZ3NUNyDk8x69r1HsLY3fsni","kid":"MiKBlv9YWgM8FCXRtuC4Fs1Ta2kvvdLj"}]}"#,
        },
        Vector {
            alg: Algorithm::Rs256,
            kid: "8SREuZGLhJw9paVNclTM5f1FP8J4wVvA",
            token: "eyJhbGciOiJSUzI1NiIsImtpZCI6IjhTUkV1WkdMaEp3OXBhVk5jbFRNNWYxRlA4SjR3VnZBIn0.eyJuYW1lIjoiQWxpY2UiLCJlbWFpbCI6ImFsaWNlQGV4YW1wbGUuY29tIiwiZW1haWxWZXJpZmllZCI6ZmFsc2UsImltYWdlIjpudWxsLCJjcmVhdGVkQXQiOiIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJ1cGRhdGVkQXQiOiIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJpZCI6IlUwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAxIiwic3ViIjoiVTAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDEiLCJpYXQiOjE3NjcyMjU2MDAsImV4cCI6NDEwMjQ0NDgwMCwiaXNzIjoiaHR0cDovL2xvY2FsaG9zdDozMDAwIiwiYXVkIjoiaHR0cDovL2xvY2FsaG9zdDozMDAwIn0.hWQ_Eu9kHNHb5i0N2kmiL-N-j5Alp6ADWP1nRb657ZcgdUDIRx99ByNc-0c2jLknKN5vj5dFAS5axZ3C5aM1D0HCOZVqaxOQWUpfEMogZfVkyIQ3SROGYb0PEbYpCudhonJtQJ7ptlHJij5o4rSED3gDw97F1nafggrdUsbuJvj8Z9KT0W_gi4ogL6rh5rqb7pYh_V86b7hzmQxRAvaPNdAuxRsoD32DhKPQsgNqy0XxATZ2lHlhkszP-km0XxRJknpecYxiiib6VsD4MxdJ1vUQwBnI1_AfI-2ykq36W_YZaP4dq8_27luWEmkIIXHRoOftcX-fa09aud3Ok8h4SQ",
            jwks: r#"{"keys":[{"alg":"RS256","kty":"RSA","n":"jPBZLmLNwa-I6O0L2uHQ0zMJKRFSAMBk2vQ06rc-F86A2X0eBaST7bbLGMgW_jIO7GYNK3gRON8FIOF7tsjIodnDyEBEC9v_477loV3zW69SlIqY-D6mEnZEGO8MBCaqsWY75HLO_a7frbC0SQ3KtJktvjXCXPCBJanD4_at28RhgDzMHKbAdnDLO7UnMir2MuSjVIS7Cpeq_i_quvZ-85jlJD0Z9DaFNl3x9nfeg94yxgejTlxVPtOTqrPAwYLDRWbXikpDwbpEGCkAvz50OH78l6__TlythIwfGaeikHk2f5toFAImHIIH5k2zg5PEDzeAhz4ziJd7ySixfKDNWQ","e":"AQAB","kid":"8SREuZGLhJw9paVNclTM5f1FP8J4wVvA"}]}"#,
        },
        Vector {
            alg: Algorithm::Ps256,
            kid: "tZFq6nWZYTPkJ22WG8bQbLCBBJMnTksN",
            token: "eyJhbGciOiJQUzI1NiIsImtpZCI6InRaRnE2bldaWVRQa0oyMldHOGJRYkxDQkJKTW5Ua3NOIn0.eyJuYW1lIjoiQWxpY2UiLCJlbWFpbCI6ImFsaWNlQGV4YW1wbGUuY29tIiwiZW1haWxWZXJpZmllZCI6ZmFsc2UsImltYWdlIjpudWxsLCJjcmVhdGVkQXQiOiIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJ1cGRhdGVkQXQiOiIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJpZCI6IlUwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAxIiwic3ViIjoiVTAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDEiLCJpYXQiOjE3NjcyMjU2MDAsImV4cCI6NDEwMjQ0NDgwMCwiaXNzIjoiaHR0cDovL2xvY2FsaG9zdDozMDAwIiwiYXVkIjoiaHR0cDovL2xvY2FsaG9zdDozMDAwIn0.dQb3i1FGXjRlBa2dvbDyBk-IKOBzORy-gmWrJwSQzd4B99WTNtPY_mfQQiTE0ehAmtlhJNJjPQGAfOCK-0FUe7OikyNV5r6GXw5mBG1asxU1BGi2ysBurg7XF9iTvJMy76sbn1wi_Cyiuxw66CccuZpGD1KV7CY08I9AvpITrQDh55nE18ZYLvk_qDNNBnC1T6z094-tKWqgaeQ7duKg-ylmF6dFEwHdGxHiAfGEfCFejzRsnwLjFjOQ0Vg8wzYxZPRntL0ieN-VvpX8s4RgKEoKVMX3_jyqIjizobwvGngjyKEBYj5XKgv4B9IL676WCXpuA2oisZXFT7KzXYwfZQ",
            jwks: r#"{"keys":[{"alg":"PS256","kty":"RSA","n":"w-7eR_80pXaMXDKCyPcLsMOWDJL3VvCG0JJRezBPokqGoMh_787Fmkf-eLgUhczstmQBT45j55DYgZA4i3hqdyHzFKCE7w_IhHY4VxfBXcd1uH5Z4C7saA2YbIkeuUnSm9en_biovvrOzNykRJQ4NA60QVvoKGjjAVfG3NkfBOwuMBbBT4F87vQ7iUK8oYcLsXKg0I7gOMOOyXvq-eahqINP6OS_rj6uBSgPF6fvhwxHiIkAsrAqua34USor_rSrHTQM7JmUVA_ceNIlU1v7CLF31RflKsTLKjUoDM3kZjREXeQNz8JQJV8965aIIB11AAvsMRoEt6zbVHw3ANGLmw","e":"AQAB","kid":"tZFq6nWZYTPkJ22WG8bQbLCBBJMnTksN"}]}"#,
        },
    ];

    /// A real `GET /api/auth/token` answer (EdDSA; iat 1795903454 = 2026-11-28T22:04:14Z,
    /// exp = iat + 900).
    pub(crate) const TOKEN_ENDPOINT: Vector = Vector {
        alg: Algorithm::EdDsa,
        kid: "rCCGh4VNN37Oan1hO5jl47fitoeiYdud",
        token: "eyJhbGciOiJFZERTQSIsImtpZCI6InJDQ0doNFZOTjM3T2FuMWhPNWpsNDdmaXRvZWlZZHVkIn0.eyJpYXQiOjE3OTU5MDM0NTQsIm5hbWUiOiJBbGljZSIsImVtYWlsIjoiYWxpY2VAZXhhbXBsZS5jb20iLCJlbWFpbFZlcmlmaWVkIjpmYWxzZSwiaW1hZ2UiOm51bGwsImNyZWF0ZWRBdCI6IjIwMjYtMTEtMjhUMjI6MDQ6MTQuNDc1WiIsInVwZGF0ZWRBdCI6IjIwMjYtMTEtMjhUMjI6MDQ6MTQuNDc1WiIsImlkIjoiTjd0dDRnbmM4Z0hoWjFBb25UUnEwb0xPNEt5UDZpeG8iLCJzdWIiOiJON3R0NGduYzhnSGhaMUFvblRScTBvTE80S3lQNml4byIsImV4cCI6MTc5NTkwNDM1NCwiaXNzIjoiaHR0cDovL2xvY2FsaG9zdDozMDAwIiwiYXVkIjoiaHR0cDovL2xvY2FsaG9zdDozMDAwIn0.4cA8rARJ4SddfyOz5HfrUUPmh-Zdmlacl9wfkY3wTXI4Pge3562mAZ8_46tYyxvdkldrZ7w_4cn4Bl1qc7AvDA",
        jwks: r#"{"keys":[{"alg":"EdDSA","crv":"Ed25519","x":"1L6MF7o53PHI4rb1YC-7OmB4uTol55FCofuElH6r6Ns","kty":"OKP","kid":"rCCGh4VNN37Oan1hO5jl47fitoeiYdud"}]}"#,
    };
}

#[cfg(test)]
mod tests {
    use super::super::jwk::JwkSet;
    use super::vectors::{Vector, BASE, EXP, IAT, SUB, TOKEN_ENDPOINT, VECTORS};
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn expect(now: OffsetDateTime) -> Expect<'static> {
        Expect {
            issuer: BASE,
            audience: BASE,
            leeway: Duration::ZERO,
            now,
            algorithms: &Algorithm::ALL,
        }
    }

    fn verify(token: &str, key: &Jwk, expect: &Expect<'_>) -> Result<Claims, Reject> {
        check(parse(token)?, key, expect)
    }

    fn key_of(v: &Vector) -> Jwk {
        let set = JwkSet::from_json(v.jwks.as_bytes()).expect("vector JWKS");
        set.get(v.kid).expect("vector kid").clone()
    }

    /// Splits a token into its three segments.
    fn segments(token: &str) -> [&str; 3] {
        let mut it = token.split('.');
        [it.next(), it.next(), it.next()].map(|s| s.expect("three segments"))
    }

    /// The token with one segment replaced.
    fn replace(token: &str, index: usize, segment: &str) -> String {
        let mut parts = segments(token).map(str::to_owned);
        parts[index] = segment.to_owned();
        parts.join(".")
    }

    // --- Test keys of our own, to sign claim variations. ---

    fn ed_key() -> (ed25519_dalek::SigningKey, Jwk) {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let jwk = Jwk::from_json(&json!({
            "kty": "OKP", "crv": "Ed25519", "kid": "test-ed",
            "x": b64(sk.verifying_key().as_bytes()),
        }))
        .expect("test Ed25519 key");
        (sk, jwk)
    }

    fn p256_key() -> (p256::ecdsa::SigningKey, Jwk) {
        let sk = p256::ecdsa::SigningKey::from_bytes(&[9; 32].into()).expect("test P-256 key");
        let point = sk.verifying_key().to_encoded_point(false);
        let jwk = Jwk::from_json(&json!({
            "kty": "EC", "crv": "P-256", "kid": "test-p256",
            "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y")),
        }))
        .expect("test P-256 JWK");
        (sk, jwk)
    }

    fn header_b64(alg: &str, kid: &str) -> String {
        b64(json!({ "alg": alg, "kid": kid }).to_string().as_bytes())
    }

    fn sign_ed(payload: &Value) -> String {
        use ed25519_dalek::Signer as _;
        let (sk, _) = ed_key();
        let input = format!(
            "{}.{}",
            header_b64("EdDSA", "test-ed"),
            b64(payload.to_string().as_bytes())
        );
        let sig = sk.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig.to_bytes()))
    }

    fn sign_p256(payload: &Value) -> String {
        use p256::ecdsa::signature::Signer as _;
        let (sk, _) = p256_key();
        let input = format!(
            "{}.{}",
            header_b64("ES256", "test-p256"),
            b64(payload.to_string().as_bytes())
        );
        let sig: p256::ecdsa::Signature = sk.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig.to_bytes()))
    }

    const T_IAT: i64 = 1_795_867_200; // 2026-11-28T12:00:00Z = NOW
    const T_EXP: i64 = T_IAT + 900;

    fn claims(changes: Value) -> Value {
        let mut base = json!({
            "name": "Alice", "email": "alice@example.com", "role": "admin",
            "id": "u1", "sub": "u1", "iat": T_IAT, "exp": T_EXP, "iss": BASE, "aud": BASE,
        });
        let map = base.as_object_mut().expect("object");
        for (name, value) in changes.as_object().expect("object") {
            if value.is_null() {
                map.remove(name);
            } else {
                map.insert(name.clone(), value.clone());
            }
        }
        base
    }

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).expect("in range")
    }

    // --- Better Auth's vectors ---

    #[test]
    fn every_vector_verifies() {
        assert_eq!(at(T_IAT), NOW);
        for v in &VECTORS {
            let key = key_of(v);
            assert_eq!(key.algorithm(), v.alg);
            let claims =
                verify(v.token, &key, &expect(NOW)).unwrap_or_else(|r| panic!("{}: {r:?}", v.alg));
            assert_eq!(claims.sub(), SUB);
            assert_eq!(claims.iss(), BASE);
            assert_eq!(claims.aud(), [BASE.to_owned()]);
            assert_eq!(claims.iat(), Some(at(IAT)));
            assert_eq!(claims.exp(), at(EXP));
            assert_eq!(claims.nbf(), None);
            assert_eq!(claims.kid(), v.kid);
            assert_eq!(claims.algorithm(), v.alg);
            assert_eq!(claims.get("email"), Some(&json!("alice@example.com")));
            assert_eq!(claims.payload().get("emailVerified"), Some(&json!(false)));
            assert_eq!(claims.clone().into_payload().len(), 12);
        }
    }

    #[test]
    fn the_token_endpoint_output_verifies_before_its_exp() {
        let key = key_of(&TOKEN_ENDPOINT);
        let claims = verify(
            TOKEN_ENDPOINT.token,
            &key,
            &expect(datetime!(2026-11-28 22:05 UTC)),
        )
        .expect("valid before exp");
        assert_eq!(claims.sub(), "N7tt4gnc8gHhZ1AonTRq0oLO4KyP6ixo");
        assert_eq!(
            claims.exp() - claims.iat().expect("iat"),
            Duration::seconds(900)
        );
        assert_eq!(
            verify(
                TOKEN_ENDPOINT.token,
                &key,
                &expect(datetime!(2026-11-28 22:20 UTC))
            ),
            Err(Reject::Expired)
        );
    }

    #[test]
    fn a_flipped_signature_bit_fails() {
        for v in &VECTORS {
            let [_, _, sig] = segments(v.token);
            let mut sig = URL_SAFE_NO_PAD.decode(sig).expect("sig");
            for (byte, bit) in [(0, 0), (10, 3), (sig.len() - 1, 7)] {
                sig[byte] ^= 1 << bit;
                let token = replace(v.token, 2, &b64(&sig));
                assert_eq!(
                    verify(&token, &key_of(v), &expect(NOW)),
                    Err(Reject::BadSignature),
                    "{} byte {byte}",
                    v.alg
                );
                sig[byte] ^= 1 << bit;
            }
        }
    }

    #[test]
    fn a_changed_payload_byte_fails() {
        for v in &VECTORS {
            let [_, payload, _] = segments(v.token);
            let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("payload"))
                .expect("utf-8");
            for (from, to) in [("Alice", "Alicf"), ("000001\",\"iat", "000002\",\"iat")] {
                let changed = json.replacen(from, to, 1);
                assert_ne!(changed, json);
                let token = replace(v.token, 1, &b64(changed.as_bytes()));
                assert_eq!(
                    verify(&token, &key_of(v), &expect(NOW)),
                    Err(Reject::BadSignature),
                    "{}",
                    v.alg
                );
            }
        }
    }

    #[test]
    fn another_key_fails() {
        // Every other vector's key: another algorithm, so the header's alg does not fit.
        for v in &VECTORS {
            for other in VECTORS.iter().filter(|o| o.alg != v.alg) {
                assert_eq!(
                    verify(v.token, &key_of(other), &expect(NOW)),
                    Err(Reject::Algorithm),
                    "{} token, {} key",
                    v.alg,
                    other.alg
                );
            }
        }
        // Keys of the same algorithm but other material: the signature does not verify.
        let p521_key = {
            let sk = p521::ecdsa::SigningKey::from_slice(&[1; 66]).expect("test P-521 key");
            let point = p521::ecdsa::VerifyingKey::from(&sk).to_encoded_point(false);
            Jwk::from_json(&json!({
                "kty": "EC", "crv": "P-521", "kid": VECTORS[2].kid,
                "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y")),
            }))
            .expect("test P-521 JWK")
        };
        let rsa_as = |v: &Vector, alg: &str| {
            let mut jwk: Value = serde_json::from_str(v.jwks).expect("jwks");
            let jwk = &mut jwk["keys"][0];
            jwk["alg"] = json!(alg);
            Jwk::from_json(jwk).expect("RSA JWK")
        };
        let wrong = [
            key_of(&TOKEN_ENDPOINT),
            p256_key().1,
            p521_key,
            rsa_as(&VECTORS[4], "RS256"),
            rsa_as(&VECTORS[3], "PS256"),
        ];
        for (v, key) in VECTORS.iter().zip(&wrong) {
            assert_eq!(key.algorithm(), v.alg);
            assert_eq!(
                verify(v.token, key, &expect(NOW)),
                Err(Reject::BadSignature),
                "{}",
                v.alg
            );
        }
    }

    #[test]
    fn the_algorithm_is_pinned_to_the_key() {
        let [_, payload, sig] = segments(VECTORS[1].token);
        let rs256_key = key_of(&VECTORS[3]);
        // An ES256 token against the RS256 key: refused before any RSA math.
        assert_eq!(
            verify(VECTORS[1].token, &rs256_key, &expect(NOW)),
            Err(Reject::Algorithm)
        );
        // Its header rewritten to RS256 and the RS256 key's kid: alg fits, signature does not.
        let relabelled = format!("{}.{payload}.{sig}", header_b64("RS256", VECTORS[3].kid));
        assert_eq!(
            verify(&relabelled, &rs256_key, &expect(NOW)),
            Err(Reject::BadSignature)
        );
        // RS256 and PS256 keys share material: an RS256 token relabelled PS256 against the
        // RS256-pinned key is refused on the algorithm, against a PS256 pin on the signature.
        let [_, payload, sig] = segments(VECTORS[3].token);
        let as_ps = format!("{}.{payload}.{sig}", header_b64("PS256", VECTORS[3].kid));
        assert_eq!(
            verify(&as_ps, &rs256_key, &expect(NOW)),
            Err(Reject::Algorithm)
        );
        let mut jwk: Value = serde_json::from_str(VECTORS[3].jwks).expect("jwks");
        jwk["keys"][0]["alg"] = json!("PS256");
        let ps_pinned = Jwk::from_json(&jwk["keys"][0]).expect("PS256 pin");
        assert_eq!(
            verify(&as_ps, &ps_pinned, &expect(NOW)),
            Err(Reject::BadSignature)
        );
    }

    #[test]
    fn only_the_allowed_algorithms_pass() {
        let v = &VECTORS[0];
        let mut only_es256 = expect(NOW);
        only_es256.algorithms = &[Algorithm::Es256];
        assert_eq!(
            verify(v.token, &key_of(v), &only_es256),
            Err(Reject::Algorithm)
        );
        only_es256.algorithms = &[];
        assert_eq!(
            verify(v.token, &key_of(v), &only_es256),
            Err(Reject::Algorithm)
        );
    }

    #[test]
    fn alg_none_and_hmac_are_refused() {
        for v in &VECTORS {
            let [_, payload, _] = segments(v.token);
            for alg in ["none", "None", "HS256", "RS512", "ES384", "eddsa", ""] {
                let token = format!("{}.{payload}.", header_b64(alg, v.kid));
                assert_eq!(parse(&token).map(|_| ()), Err(Reject::Algorithm), "{alg}");
            }
        }
        let unsigned = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(b"{}"));
        assert_eq!(parse(&unsigned).map(|_| ()), Err(Reject::Algorithm));
        // A right alg with an empty signature parses, then fails the signature.
        for v in &VECTORS {
            let token = replace(v.token, 2, "");
            assert_eq!(
                verify(&token, &key_of(v), &expect(NOW)),
                Err(Reject::BadSignature)
            );
        }
    }

    #[test]
    fn wrong_length_signatures_fail_without_panicking() {
        for v in &VECTORS {
            let key = key_of(v);
            let [header, payload, _] = segments(v.token);
            let input = format!("{header}.{payload}");
            for len in [0, 1, 31, 63, 64, 65, 131, 132, 133, 255, 256, 257, 1024] {
                assert!(
                    !key.verify(input.as_bytes(), &vec![0; len]),
                    "{} {len}",
                    v.alg
                );
                assert!(
                    !key.verify(input.as_bytes(), &vec![0xff; len]),
                    "{} {len}",
                    v.alg
                );
            }
        }
    }

    // --- Claims, with tokens of our own ---

    #[test]
    fn own_tokens_verify() {
        let (_, ed) = ed_key();
        let (_, p) = p256_key();
        let c = verify(&sign_ed(&claims(json!({}))), &ed, &expect(NOW)).expect("EdDSA");
        assert_eq!(
            (c.sub(), c.kid(), c.get("role")),
            ("u1", "test-ed", Some(&json!("admin")))
        );
        let c = verify(&sign_p256(&claims(json!({}))), &p, &expect(NOW)).expect("ES256");
        assert_eq!((c.sub(), c.algorithm()), ("u1", Algorithm::Es256));
    }

    #[test]
    fn expiry_and_leeway() {
        let (_, ed) = ed_key();
        let token = sign_ed(&claims(json!({})));
        let mut e = expect(at(T_EXP - 1));
        assert!(verify(&token, &ed, &e).is_ok());
        // As in jose and RFC 7519, the second `exp` itself is too late.
        e.now = at(T_EXP);
        assert_eq!(verify(&token, &ed, &e), Err(Reject::Expired));
        e.now = at(T_EXP) + Duration::milliseconds(500);
        assert_eq!(verify(&token, &ed, &e), Err(Reject::Expired));
        e.leeway = Duration::seconds(60);
        e.now = at(T_EXP + 59);
        assert!(verify(&token, &ed, &e).is_ok(), "just inside the leeway");
        e.now = at(T_EXP + 60);
        assert_eq!(verify(&token, &ed, &e), Err(Reject::Expired));
        // A negative leeway counts as none; a huge one cannot overflow.
        e.leeway = Duration::seconds(-3600);
        e.now = at(T_EXP - 1);
        assert!(verify(&token, &ed, &e).is_ok());
        e.leeway = Duration::MAX;
        e.now = datetime!(9999-12-31 23:59:59 UTC);
        assert!(verify(&token, &ed, &e).is_ok());
        // The real vectors expire in 2100.
        let v = &VECTORS[0];
        assert_eq!(
            verify(v.token, &key_of(v), &expect(at(EXP))),
            Err(Reject::Expired)
        );
        assert!(verify(v.token, &key_of(v), &expect(at(EXP - 1))).is_ok());
    }

    #[test]
    fn a_bad_signature_hides_claim_problems() {
        let (_, ed) = ed_key();
        let token = sign_ed(&claims(json!({ "iss": "https://evil.example", "exp": 1 })));
        assert_eq!(verify(&token, &ed, &expect(NOW)), Err(Reject::Expired));
        let [h, p, _] = segments(&token);
        let forged = format!("{h}.{p}.{}", b64(&[0; 64]));
        assert_eq!(
            verify(&forged, &ed, &expect(NOW)),
            Err(Reject::BadSignature)
        );
    }

    #[test]
    fn exp_is_required_and_numeric() {
        let (_, ed) = ed_key();
        for exp in [
            json!(null),
            json!("4102444800"),
            json!(true),
            json!([T_EXP]),
            json!(1e300),
            json!(u64::MAX),
        ] {
            let token = sign_ed(&claims(json!({ "exp": exp })));
            assert!(
                matches!(verify(&token, &ed, &expect(NOW)), Err(Reject::Malformed(_))),
                "exp {exp}"
            );
        }
        let token = sign_ed(&claims(json!({ "exp": T_EXP as f64 + 0.5 })));
        let c = verify(&token, &ed, &expect(NOW)).expect("fractional exp");
        assert_eq!(c.exp(), at(T_EXP) + Duration::milliseconds(500));
        let token = sign_ed(&claims(json!({ "exp": -1e20 })));
        assert!(matches!(
            verify(&token, &ed, &expect(NOW)),
            Err(Reject::Malformed(_))
        ));
        let token = sign_ed(&claims(json!({ "exp": -5 })));
        assert_eq!(verify(&token, &ed, &expect(NOW)), Err(Reject::Expired));
    }

    #[test]
    fn nbf_is_honoured() {
        let (_, ed) = ed_key();
        let token = sign_ed(&claims(json!({ "nbf": T_IAT + 60 })));
        assert_eq!(verify(&token, &ed, &expect(NOW)), Err(Reject::NotYetValid));
        let mut e = expect(NOW);
        e.leeway = Duration::seconds(60);
        let c = verify(&token, &ed, &e).expect("nbf within the leeway");
        assert_eq!(c.nbf(), Some(at(T_IAT + 60)));
        e.leeway = Duration::seconds(59);
        assert_eq!(verify(&token, &ed, &e), Err(Reject::NotYetValid));
        assert!(verify(&token, &ed, &expect(at(T_IAT + 60))).is_ok());
        let token = sign_ed(&claims(json!({ "nbf": "soon" })));
        assert!(matches!(
            verify(&token, &ed, &expect(NOW)),
            Err(Reject::Malformed(_))
        ));
        let token = sign_ed(&claims(json!({ "iat": "now" })));
        assert!(matches!(
            verify(&token, &ed, &expect(NOW)),
            Err(Reject::Malformed(_))
        ));
        let token = sign_ed(&claims(json!({ "iat": null })));
        assert_eq!(
            verify(&token, &ed, &expect(NOW)).expect("no iat").iat(),
            None
        );
    }

    #[test]
    fn issuer_must_match_exactly() {
        let (_, ed) = ed_key();
        for iss in [
            json!("http://localhost:3000/"),
            json!("http://localhost:3001"),
            json!(null),
            json!(["http://localhost:3000"]),
            json!(""),
        ] {
            let token = sign_ed(&claims(json!({ "iss": iss })));
            assert_eq!(
                verify(&token, &ed, &expect(NOW)),
                Err(Reject::Issuer),
                "iss {iss}"
            );
        }
    }

    #[test]
    fn audience_string_or_array() {
        let (_, ed) = ed_key();
        let (_, p) = p256_key();
        let listed = claims(json!({ "aud": ["https://api.example", BASE] }));
        let c = verify(&sign_ed(&listed), &ed, &expect(NOW)).expect("aud array with ours");
        assert_eq!(c.aud(), ["https://api.example".to_owned(), BASE.to_owned()]);
        assert!(verify(&sign_p256(&listed), &p, &expect(NOW)).is_ok());
        for aud in [
            json!("http://localhost:3001"),
            json!(["https://api.example"]),
            json!([]),
            json!([BASE, 1]),
            json!(null),
            json!(3000),
            json!({ "aud": BASE }),
        ] {
            let token = sign_ed(&claims(json!({ "aud": aud })));
            assert_eq!(
                verify(&token, &ed, &expect(NOW)),
                Err(Reject::Audience),
                "aud {aud}"
            );
            let token = sign_p256(&claims(json!({ "aud": aud })));
            assert_eq!(
                verify(&token, &p, &expect(NOW)),
                Err(Reject::Audience),
                "aud {aud}"
            );
        }
    }

    #[test]
    fn subject_is_required() {
        let (_, ed) = ed_key();
        for sub in [json!(null), json!(""), json!(1), json!(["u1"])] {
            let token = sign_ed(&claims(json!({ "sub": sub })));
            assert_eq!(
                verify(&token, &ed, &expect(NOW)),
                Err(Reject::Subject),
                "sub {sub}"
            );
        }
    }

    // --- Malformed input ---

    #[test]
    fn malformed_tokens() {
        let v = &VECTORS[0];
        let [header, payload, sig] = segments(v.token);
        let cases: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("one segment", header.to_owned()),
            ("two segments", format!("{header}.{payload}")),
            ("four segments", format!("{}.{sig}", v.token)),
            ("dots only", "..".to_owned()),
            ("padded header", format!("{header}=.{payload}.{sig}")),
            ("padded signature", format!("{header}.{payload}.{sig}==")),
            (
                "standard alphabet",
                replace(v.token, 2, &sig.replace('-', "+").replace('_', "/")),
            ),
            ("bad base64", replace(v.token, 0, "!!!!")),
            ("impossible length", replace(v.token, 1, "abcde")),
            ("header not JSON", replace(v.token, 0, &b64(b"hello"))),
            (
                "header array",
                replace(v.token, 0, &b64(br#"[{"alg":"EdDSA"}]"#)),
            ),
            ("header string", replace(v.token, 0, &b64(br#""EdDSA""#))),
            ("no alg", replace(v.token, 0, &b64(br#"{"kid":"k"}"#))),
            (
                "alg number",
                replace(v.token, 0, &b64(br#"{"alg":1,"kid":"k"}"#)),
            ),
            ("no kid", replace(v.token, 0, &b64(br#"{"alg":"EdDSA"}"#))),
            (
                "empty kid",
                replace(v.token, 0, &b64(br#"{"alg":"EdDSA","kid":""}"#)),
            ),
            (
                "kid number",
                replace(v.token, 0, &b64(br#"{"alg":"EdDSA","kid":7}"#)),
            ),
            (
                "crit",
                replace(
                    v.token,
                    0,
                    &b64(br#"{"alg":"EdDSA","kid":"k","crit":["b64"],"b64":false}"#),
                ),
            ),
            (
                "cookie-cache typ",
                replace(
                    v.token,
                    0,
                    &b64(br#"{"alg":"EdDSA","kid":"k","typ":"better-auth.session-cache+jwt"}"#),
                ),
            ),
            ("payload not JSON", replace(v.token, 1, &b64(b"Alice"))),
            ("payload array", replace(v.token, 1, &b64(b"[]"))),
            (
                "payload invalid utf-8",
                replace(v.token, 1, &b64(b"{\"a\":\"\xff\"}")),
            ),
            (
                "deep nesting",
                replace(
                    v.token,
                    1,
                    &b64(format!("{}{}", "[".repeat(5000), "]".repeat(5000)).as_bytes()),
                ),
            ),
            ("signature bad base64", replace(v.token, 2, "a*b")),
            (
                "17 KiB",
                format!("{}.{}.{sig}", header, "A".repeat(17 * 1024)),
            ),
            ("spaces", format!(" {}", v.token)),
        ];
        for (what, token) in &cases {
            assert!(
                matches!(parse(token), Err(Reject::Malformed(_))),
                "{what}: {:?}",
                parse(token).map(|_| ())
            );
        }
        // Other typ values are tolerated (Better Auth lets deployments add header members).
        let with_typ = replace(
            v.token,
            0,
            &b64(br#"{"alg":"EdDSA","kid":"k","typ":"JWT"}"#),
        );
        assert!(parse(&with_typ).is_ok());
    }

    #[test]
    fn parse_exposes_the_parts() {
        let v = &VECTORS[2];
        let parsed = parse(v.token).expect("ES512 vector");
        let [header, payload, sig] = segments(v.token);
        assert_eq!(parsed.alg, Algorithm::Es512);
        assert_eq!(parsed.kid, v.kid);
        assert_eq!(
            parsed.signing_input,
            format!("{header}.{payload}").as_bytes()
        );
        assert_eq!(parsed.signature, URL_SAFE_NO_PAD.decode(sig).expect("sig"));
        assert_eq!(parsed.signature.len(), 132);
        assert_eq!(parsed.payload.get("sub"), Some(&json!(SUB)));
    }

    #[test]
    fn reject_labels() {
        let all = [
            (Reject::Malformed("x"), "malformed"),
            (Reject::Algorithm, "algorithm"),
            (Reject::UnknownKey, "unknown_kid"),
            (Reject::BadSignature, "bad_signature"),
            (Reject::Expired, "expired"),
            (Reject::NotYetValid, "not_yet_valid"),
            (Reject::Issuer, "issuer"),
            (Reject::Audience, "audience"),
            (Reject::Subject, "subject"),
        ];
        for (reject, label) in all {
            assert_eq!(reject.as_str(), label);
        }
    }

    fn keys() -> Vec<Jwk> {
        let mut keys: Vec<Jwk> = VECTORS.iter().map(key_of).collect();
        keys.push(ed_key().1);
        keys
    }

    /// Parses and checks `token` against every key; returns nothing, must not panic.
    fn exercise(token: &str, keys: &[Jwk]) {
        for key in keys {
            if let Ok(parsed) = parse(token) {
                let _ = check(parsed, key, &expect(NOW));
            }
        }
    }

    const TOKEN_CHARS: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_strings(s in "\\PC{0,300}", t in "[A-Za-z0-9_=.+/-]{0,400}") {
            let keys = keys();
            exercise(&s, &keys);
            exercise(&t, &keys);
        }

        #[test]
        fn never_panics_on_mutated_tokens(
            which in 0..VECTORS.len() + 1,
            edits in proptest::collection::vec((any::<usize>(), any::<usize>(), 0u8..3), 1..6),
        ) {
            let keys = keys();
            // `keys()[i]` verifies `original`: the vectors, then our own EdDSA key.
            let original = if which == VECTORS.len() {
                sign_ed(&claims(json!({})))
            } else {
                VECTORS[which].token.to_owned()
            };
            prop_assert!(verify(&original, &keys[which], &expect(NOW)).is_ok());
            let mut bytes = original.clone().into_bytes();
            for (pos, pick, op) in edits {
                let ch = TOKEN_CHARS[pick % TOKEN_CHARS.len()];
                let pos = pos % (bytes.len() + 1);
                match op {
                    0 if pos < bytes.len() => bytes[pos] = ch,
                    1 if pos < bytes.len() => { bytes.remove(pos); }
                    _ => bytes.insert(pos, ch),
                }
            }
            let mutated = String::from_utf8(bytes).expect("ASCII edits");
            exercise(&mutated, &keys);
            if mutated != original {
                // No edit yields another valid token: each changes the signed bytes or the
                // signature, and non-canonical base64 spellings are refused.
                prop_assert!(verify(&mutated, &keys[which], &expect(NOW)).is_err());
            }
        }

        #[test]
        fn never_panics_on_signed_odd_claims(
            exp in prop_oneof![any::<i64>().prop_map(Value::from), any::<f64>().prop_map(|f| json!(f)), Just(json!(null)), ".*".prop_map(Value::from)],
            nbf in prop_oneof![any::<i64>().prop_map(Value::from), any::<f64>().prop_map(|f| json!(f)), Just(json!(null))],
            aud in prop_oneof![Just(json!(BASE)), Just(json!([BASE])), ".*".prop_map(Value::from), any::<u32>().prop_map(Value::from)],
            leeway in any::<i64>(),
        ) {
            let (_, ed) = ed_key();
            let token = sign_ed(&claims(json!({ "exp": exp, "nbf": nbf, "aud": aud })));
            let mut e = expect(NOW);
            e.leeway = Duration::seconds(leeway);
            let _ = verify(&token, &ed, &e);
        }
    }
}
