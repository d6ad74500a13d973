//! The signed-cookie codec: finding one cookie in `Cookie` headers, and signing and verifying
//! `TOKEN.SIGNATURE` values byte-for-byte the way Better Auth (better-call) does.
//!
//! Every rule of the spec's §2.3–§2.5 lives in this module:
//!
//! * the value is `encodeURIComponent(token + "." + base64std(HMAC-SHA256(secret, token)))`;
//! * on the way in, a value is trimmed, one pair of surrounding double quotes is removed, it is
//!   percent-decoded only when it contains `%` (the raw value is kept if decoding fails), it is
//!   split at the **last** `.`, the signature must be 44 characters ending in `=`, and the HMAC
//!   is compared in constant time;
//! * the first occurrence of a cookie name wins, across every `Cookie` header field.
//!
//! Verifying allocates nothing (values are decoded on the stack; a token spelled plainly on the
//! wire is borrowed from the header), and nothing here can panic on any input.

use std::borrow::Cow;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::header::COOKIE;
use http::HeaderMap;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

mod memo;

type HmacSha256 = Hmac<Sha256>;

/// Length of a standard, padded base64 HMAC-SHA256 signature.
pub(crate) const SIGNATURE_LEN: usize = 44;

/// Session cookie values longer than this are rejected before any decoding or crypto.
///
/// A Better Auth value is 32 + 1 + 44 = 77 raw characters, 79 or more once percent-encoded (the
/// padding `=` becomes `%3D`, and each `+` or `/` three characters); 1 KiB leaves room
/// for longer custom tokens while bounding the work an attacker can ask for.
pub const MAX_SIGNED_VALUE_LEN: usize = 1024;

/// Standard base64 that, like the browser's `atob`, ignores the unused low bits of the last
/// character. Better Auth accepts those non-canonical spellings, so we do too (spec §2.4).
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// What `encodeURIComponent` leaves alone: `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// An HMAC-SHA256 key prepared once.
///
/// Keying HMAC hashes the key into the inner and outer pads; cloning the prepared state is a
/// copy of two SHA-256 states, so requests never pay for re-keying.
///
/// Clones share an identity: cookie values one of them verified are recognised by all of them
/// on the same thread without computing the HMAC again (see [`unsign`](Self::unsign)).
#[derive(Clone)]
pub struct Signer {
    mac: HmacSha256,
    /// This key's identity in the per-thread memo of verified values.
    memo: memo::Key,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { .. }")
    }
}

impl Signer {
    /// Prepares a signer for `secret`, used as its UTF-8 bytes with no key derivation, exactly as
    /// Better Auth does.
    ///
    /// This does not judge the secret's strength: [`SessionConfig`](crate::SessionConfig) does.
    pub fn new(secret: &str) -> Self {
        let mac =
            HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
        Self {
            mac,
            memo: memo::Key::new(),
        }
    }

    fn mac_of(&self, message: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(message);
        mac
    }

    /// The standard base64 signature of `value` (44 characters, ending `=`).
    pub fn signature(&self, value: &str) -> String {
        LENIENT_STANDARD.encode(self.mac_of(value.as_bytes()).finalize().into_bytes())
    }

    /// The raw signed form `value.signature`, as Better Auth's bearer plugin sends it in
    /// `set-auth-token`.
    pub fn sign_raw(&self, value: &str) -> String {
        let mut out = String::with_capacity(value.len() + 1 + SIGNATURE_LEN);
        out.push_str(value);
        out.push('.');
        out.push_str(&self.signature(value));
        out
    }

    /// The cookie value for `value`: `encodeURIComponent(value + "." + signature)`, the exact
    /// bytes Better Auth puts on the wire.
    ///
    /// ```
    /// use tower_auth_session::codec::Signer;
    ///
    /// let signer = Signer::new("better-auth-secret-12345678901234567890");
    /// assert_eq!(
    ///     signer.sign_cookie_value("7aON9QvXi7cN5W22aBoYB7O4cBy827eS"),
    ///     "7aON9QvXi7cN5W22aBoYB7O4cBy827eS.gDPkgSRm9C9ET9NJKyrCSrXKvFFJZGLMEcKUn2sWyTw%3D",
    /// );
    /// ```
    pub fn sign_cookie_value(&self, value: &str) -> String {
        utf8_percent_encode(&self.sign_raw(value), URI_COMPONENT).to_string()
    }

    /// The raw 32-byte HMAC-SHA256 of `message`.
    pub(crate) fn mac(&self, message: &[u8]) -> [u8; 32] {
        self.mac_of(message).finalize().into_bytes().into()
    }

    /// Checks a raw 32-byte tag against `message` in constant time.
    pub(crate) fn verify_tag(&self, message: &[u8], tag: &[u8]) -> bool {
        <&[u8; 32]>::try_from(tag)
            .is_ok_and(|tag| constant_time_eq::constant_time_eq_32(&self.mac(message), tag))
    }

    /// Checks `signature` (standard base64, 44 characters ending `=`) against `value` in
    /// constant time.
    pub fn verify(&self, value: &[u8], signature: &[u8]) -> bool {
        if signature.len() != SIGNATURE_LEN || signature.last() != Some(&b'=') {
            return false;
        }
        let mut decoded = [0u8; 33];
        match LENIENT_STANDARD.decode_slice(signature, &mut decoded) {
            Ok(32) => self.verify_tag(value, &decoded[..32]),
            _ => false,
        }
    }

    /// Verifies a signed cookie value as found in a `Cookie` header and returns the token it
    /// carries, or `None` for anything malformed or forged.
    ///
    /// Each thread remembers the last few values it verified with this key (and its clones):
    /// the same bytes again are answered without decoding or computing the HMAC, compared in
    /// constant time. A forged value is never remembered, and the answer is always the one
    /// verifying would give.
    ///
    /// ```
    /// use tower_auth_session::codec::Signer;
    ///
    /// let signer = Signer::new("better-auth-secret-12345678901234567890");
    /// let wire = b"7aON9QvXi7cN5W22aBoYB7O4cBy827eS.gDPkgSRm9C9ET9NJKyrCSrXKvFFJZGLMEcKUn2sWyTw%3D";
    /// assert_eq!(signer.unsign(wire).as_deref(), Some("7aON9QvXi7cN5W22aBoYB7O4cBy827eS"));
    /// assert_eq!(signer.unsign(b"7aON9QvXi7cN5W22aBoYB7O4cBy827eS"), None);
    /// ```
    pub fn unsign<'a>(&self, raw: &'a [u8]) -> Option<Cow<'a, str>> {
        let value = trim_and_unquote(raw)?;
        // The same bytes verified lately on this thread by this key: the answer is known.
        let place = match memo::recall(&self.memo, value) {
            Ok(token_len) => {
                return std::str::from_utf8(value.get(..token_len)?)
                    .ok()
                    .map(Cow::Borrowed);
            }
            Err(place) => place,
        };
        let token = self.unsign_value(value)?;
        if let (Cow::Borrowed(token), Some(place)) = (&token, place) {
            memo::remember(&self.memo, place, value, token.len());
        }
        Some(token)
    }

    /// [`unsign`](Self::unsign) for a trimmed and unquoted value, without the memo.
    #[inline]
    fn unsign_value<'a>(&self, value: &'a [u8]) -> Option<Cow<'a, str>> {
        match self.unsign_plain_token(value) {
            Shape::Answered(token) => token.map(Cow::Borrowed),
            Shape::Other => self.unsign_decoded(value),
        }
    }

    /// The shape every Better Auth value has: a token with no `%` in it, a literal `.`, and a
    /// signature whose escapes (`%3D`, `%2B`, `%2F`) decode to no `.`. For that shape the
    /// answer of [`unsign_decoded`](Self::unsign_decoded) is known without decoding the whole
    /// value: the decoded text splits at the same `.`, its token is the wire's (borrowed, checked
    /// as UTF-8 once), and only the signature is decoded, on the stack.
    ///
    /// It is the same answer in every case, failures included. The decoded text is the wire
    /// token, `.`, and the decoded signature. When it is valid UTF-8, the general path verifies
    /// exactly this token and signature. When it is not, and the value holds a `%`, the general
    /// path verifies the raw value instead, whose signature then holds a `%` and fails base64;
    /// without a `%`, the raw value is the decoded one and fails UTF-8. A verified signature is
    /// base64, so the decoded text is valid UTF-8 exactly when the token is. And a malformed
    /// escape in the signature also leaves the raw value, which fails the same way.
    fn unsign_plain_token<'a>(&self, value: &'a [u8]) -> Shape<'a> {
        let Some(dot) = memchr::memrchr(b'.', value) else {
            return Shape::Other;
        };
        let token = &value[..dot];
        if token.is_empty() || memchr::memchr(b'%', token).is_some() {
            return Shape::Other;
        }
        // One byte more than a signature, so that a longer one is seen to be longer.
        let mut buf = [0u8; SIGNATURE_LEN + 1];
        let signature = match decode_into(&value[dot + 1..], &mut buf) {
            Decoded::Bytes(signature) => signature,
            // Longer than a signature: only where a `.` in it would split matters.
            Decoded::TooLong => return Shape::Other,
            Decoded::Invalid => return Shape::Answered(None),
        };
        if signature.contains(&b'.') {
            return Shape::Other; // the decoded text would split there instead
        }
        if dot + 1 + signature.len() > MAX_SIGNED_VALUE_LEN || !self.verify(token, signature) {
            return Shape::Answered(None);
        }
        Shape::Answered(std::str::from_utf8(token).ok())
    }

    /// [`unsign_value`](Self::unsign_value) for any value: percent-decoded (when it holds `%`)
    /// as `decodeURIComponent` would, split at the last `.` of the decoded text, verified.
    fn unsign_decoded<'a>(&self, value: &'a [u8]) -> Option<Cow<'a, str>> {
        // Decoded on the stack: a Better Auth value always carries `%3D`, and a request must not
        // allocate to read its own cookie. Longer custom values use the heap.
        let mut small = [0u8; 128];
        let mut large = Vec::new();
        let decoded = if memchr::memchr(b'%', value).is_some() {
            let buf: &mut [u8] = if value.len() <= small.len() {
                &mut small
            } else {
                large.resize(value.len().min(MAX_SIGNED_VALUE_LEN), 0);
                &mut large
            };
            match decode_into(value, buf) {
                // Not UTF-8 once decoded: `decodeURIComponent` threw, as below.
                Decoded::Bytes(bytes) => std::str::from_utf8(bytes).ok(),
                Decoded::TooLong => return None,
                // `decodeURIComponent` threw: better-call keeps the raw value.
                Decoded::Invalid => None,
            }
        } else {
            None
        };
        let Some(decoded) = decoded else {
            let text = std::str::from_utf8(value).ok()?;
            return self.verify_text(text).map(Cow::Borrowed);
        };
        let token = self.verify_text(decoded)?;
        // The token is almost always spelled the same on the wire (it is alphanumeric): borrow
        // it from the header then.
        Some(match value.get(..token.len()) {
            Some(wire) if wire == token.as_bytes() => {
                Cow::Borrowed(std::str::from_utf8(wire).ok()?)
            }
            _ => Cow::Owned(token.to_owned()),
        })
    }

    /// Checks a decoded `TOKEN.SIGNATURE` and returns the token.
    fn verify_text<'t>(&self, text: &'t str) -> Option<&'t str> {
        if text.is_empty() || text.len() > MAX_SIGNED_VALUE_LEN {
            return None;
        }
        split_and_verify(self, text.as_bytes()).map(|dot| &text[..dot])
    }
}

/// What [`Signer::unsign_plain_token`] found.
enum Shape<'a> {
    /// A Better Auth shape: the answer, the same as decoding the whole value would give.
    Answered(Option<&'a str>),
    /// Anything else: decode the whole value.
    Other,
}

/// Splits `value` at its last `.`, verifies the signature, and returns the token's length.
fn split_and_verify(signer: &Signer, value: &[u8]) -> Option<usize> {
    let dot = value.iter().rposition(|&b| b == b'.')?;
    if dot < 1 {
        return None;
    }
    let (token, signature) = (&value[..dot], &value[dot + 1..]);
    signer.verify(token, signature).then_some(dot)
}

/// Trims and unquotes a raw cookie value, rejecting values too long to be worth decoding.
fn trim_and_unquote(raw: &[u8]) -> Option<&[u8]> {
    let mut value = raw.trim_ascii();
    if value.len() > 3 * MAX_SIGNED_VALUE_LEN {
        return None;
    }
    if value.len() >= 2 && value[0] == b'"' {
        // better-call drops the first and the last character when the value starts with `"`.
        value = &value[1..value.len() - 1];
    }
    Some(value)
}

/// The outcome of [`decode_into`].
enum Decoded<'b> {
    /// Decoded into the start of the buffer (not yet checked as UTF-8).
    Bytes(&'b [u8]),
    /// Longer than the buffer once decoded: longer than any value worth verifying.
    TooLong,
    /// A malformed escape, which `decodeURIComponent` would throw on.
    Invalid,
}

/// `decodeURIComponent`'s percent-decoding into a caller's buffer, without allocating. Whether
/// the bytes are UTF-8 (else it would throw too) is the caller's to check: a signature needs
/// only to be base64.
///
/// Written out rather than driven by `percent_encoding::percent_decode`: that byte-at-a-time
/// iterator took a third of a request's cookie handling; here the plain runs between escapes
/// are found with `memchr` and copied whole.
fn decode_into<'b>(value: &[u8], buf: &'b mut [u8]) -> Decoded<'b> {
    let mut n = 0;
    let mut rest = value;
    loop {
        let run = memchr::memchr(b'%', rest).unwrap_or(rest.len());
        let Some(out) = buf.get_mut(n..n + run) else {
            return Decoded::TooLong;
        };
        out.copy_from_slice(&rest[..run]);
        n += run;
        rest = &rest[run..];
        let Some(escape) = rest.get(..3) else {
            if rest.is_empty() {
                break;
            }
            return Decoded::Invalid; // a `%` without two characters after it
        };
        let (Some(hi), Some(lo)) = (hex_value(escape[1]), hex_value(escape[2])) else {
            return Decoded::Invalid;
        };
        let Some(slot) = buf.get_mut(n) else {
            return Decoded::TooLong;
        };
        *slot = (hi << 4) | lo;
        n += 1;
        rest = &rest[3..];
    }
    Decoded::Bytes(&buf[..n])
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Finds the first cookie called exactly `name` across every `Cookie` header field, and returns
/// its raw (undecoded) value.
///
/// The scan follows better-call's `parseCookies`: segments are split on `;`, a segment needs an
/// `=`, the name is the ASCII-trimmed text before the first `=`, and the first occurrence wins.
/// Names are compared byte for byte: never decoded, never Unicode-trimmed.
pub fn find_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    let name_bytes = name.as_bytes();
    if name_bytes.contains(&b'=') || name_bytes.trim_ascii().len() != name_bytes.len() {
        // No trimmed text before a first `=` can equal such a name.
        return None;
    }
    find_token_cookie(headers, name)
}

/// [`find_cookie`] for a name already known to be a cookie-name token (the configuration's
/// names are checked when it is built), without checking it again on every request.
pub(crate) fn find_token_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(COOKIE)
        .iter()
        .find_map(|field| find_in_field(field.as_bytes(), name.as_bytes()))
}

fn find_in_field<'h>(field: &'h [u8], name: &[u8]) -> Option<&'h [u8]> {
    // `name` has no `=` and no surrounding blanks (a cookie-name token), so "the trimmed text
    // before the first `=` is `name`" is "after leading blanks, `name`, then blanks, then `=`":
    // a segment that does not start with the name is skipped without looking for its `=`.
    let mut start = 0;
    for end in memchr::memchr_iter(b';', field).chain(std::iter::once(field.len())) {
        let segment = &field[start..end];
        start = end + 1;
        if let Some(after) = segment.trim_ascii_start().strip_prefix(name) {
            if let Some(value) = after.trim_ascii_start().strip_prefix(b"=") {
                return Some(value);
            }
        }
    }
    None
}

/// Finds every cookie whose name starts with `prefix`, across all `Cookie` fields, in header
/// order, as `(name, raw value)` pairs. Used to reassemble chunked cookies.
pub(crate) fn cookies_with_prefix<'h>(
    headers: &'h HeaderMap,
    prefix: &'h str,
) -> impl Iterator<Item = (&'h [u8], &'h [u8])> + 'h {
    headers.get_all(COOKIE).iter().flat_map(move |field| {
        field
            .as_bytes()
            .split(|&b| b == b';')
            .filter_map(move |segment| {
                let eq = segment.iter().position(|&b| b == b'=')?;
                let name = segment[..eq].trim_ascii();
                name.starts_with(prefix.as_bytes())
                    .then(|| (name, segment[eq + 1..].trim_ascii()))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::generate_id;

    const SECRET: &str = "better-auth-secret-12345678901234567890";

    /// A value verified once is answered from the memo the next time, and the memo never
    /// answers differently from verifying: not for another key, not for other bytes.
    #[test]
    fn memo_answers_exactly_what_verifying_would() {
        let token = "7aON9QvXi7cN5W22aBoYB7O4cBy827eS";
        let signer = Signer::new(SECRET);
        let wire = signer.sign_cookie_value(token);
        assert!(memo::recall(&signer.memo, wire.as_bytes()).is_err());
        assert_eq!(signer.unsign(wire.as_bytes()).as_deref(), Some(token));
        assert_eq!(
            memo::recall(&signer.memo, wire.as_bytes()).ok(),
            Some(token.len())
        );
        // Answered from the memo, by the signer and by its clones.
        assert_eq!(signer.unsign(wire.as_bytes()).as_deref(), Some(token));
        assert_eq!(
            signer.clone().unsign(wire.as_bytes()).as_deref(),
            Some(token)
        );
        // Quoted or padded spellings of the same value are the same bytes once trimmed.
        assert_eq!(
            signer.unsign(format!(" \"{wire}\" ").as_bytes()).as_deref(),
            Some(token)
        );
        // Another key never accepts it, even with the value remembered on this thread.
        let other = Signer::new("another-secret-with-plenty-of-entropy-0123456789");
        assert_eq!(other.unsign(wire.as_bytes()), None);
        // The same key prepared again is a new signer: it verifies, and agrees.
        assert_eq!(
            Signer::new(SECRET).unsign(wire.as_bytes()).as_deref(),
            Some(token)
        );
        // Bytes that differ anywhere, or are a prefix or an extension, are verified afresh.
        let mut forged = wire.clone().into_bytes();
        forged[40] ^= 1;
        assert_eq!(signer.unsign(&forged), None);
        assert_eq!(signer.unsign(&wire.as_bytes()[..wire.len() - 1]), None);
        assert_eq!(signer.unsign(format!("{wire}A").as_bytes()), None);
        assert!(memo::recall(&signer.memo, &forged).is_err());
        // Still remembered after the forgeries.
        assert_eq!(signer.unsign(wire.as_bytes()).as_deref(), Some(token));
    }

    /// Many more values than slots: every answer stays right as slots are overwritten.
    #[test]
    fn memo_eviction_never_changes_an_answer() {
        let signer = Signer::new(SECRET);
        let tokens: Vec<String> = (0..500).map(|_| generate_id(32)).collect();
        for _ in 0..2 {
            for token in &tokens {
                let wire = signer.sign_cookie_value(token);
                assert_eq!(
                    signer.unsign(wire.as_bytes()).as_deref(),
                    Some(token.as_str())
                );
                let forged = format!("{token}.{}", signer.sign_cookie_value("x").split_at(2).1);
                assert_eq!(signer.unsign(forged.as_bytes()), None);
            }
        }
    }

    /// Where the Better Auth shape is answered without decoding the whole value, the answer is
    /// the general path's, for values built to sit on every edge of that shape.
    #[test]
    fn plain_token_shape_answers_like_decoding_the_whole_value() {
        let signer = Signer::new(SECRET);
        let good = signer.sign_cookie_value("7aON9QvXi7cN5W22aBoYB7O4cBy827eq");
        let (token, signature) = good.split_once('.').unwrap();
        let raw_signature = signer.signature(token);
        let mut values: Vec<Vec<u8>> = vec![
            good.clone().into_bytes(),
            format!("{token}.{raw_signature}").into_bytes(),
            // A `.` spelled `%2E` in the signature, or in the token.
            format!("{token}.ab%2E{signature}").into_bytes(),
            format!("{token}%2Ex.{signature}").into_bytes(),
            // Escapes that are malformed, cut short, or decode to `%`, to a non-ASCII byte.
            format!("{token}.{}%3", &raw_signature[..43]).into_bytes(),
            format!("{token}.{}%G1", &raw_signature[..43]).into_bytes(),
            format!("{token}.{}%25", &raw_signature[..43]).into_bytes(),
            format!("{token}.{}%FF", &raw_signature[..43]).into_bytes(),
            // Too long a signature, with and without a `.` beyond the 45th byte.
            format!("{token}.{raw_signature}{raw_signature}").into_bytes(),
            format!("{token}.{raw_signature}%2E{raw_signature}").into_bytes(),
            // No token, no dot, a dot only.
            format!(".{signature}").into_bytes(),
            token.as_bytes().to_vec(),
            b".".to_vec(),
            // A token that is not UTF-8, signed as its bytes, with and without an escape.
            [&b"ab\xffcd."[..], signer.signature("x").as_bytes()].concat(),
            [&b"ab\xff."[..], raw_signature.as_bytes()].concat(),
            // Tokens holding escapes of their own, signed as Better Auth would encode them.
            signer.sign_cookie_value("a.b").into_bytes(),
            signer.sign_cookie_value("é%x").into_bytes(),
            signer.sign_raw("%FF").into_bytes(),
            format!("x.{}", "A".repeat(MAX_SIGNED_VALUE_LEN)).into_bytes(),
        ];
        let long = "t".repeat(MAX_SIGNED_VALUE_LEN - 45);
        values.push(signer.sign_raw(&long).into_bytes());
        values.push(signer.sign_raw(&format!("{long}t")).into_bytes());
        let mut answered = 0;
        for value in &values {
            let general = signer.unsign_decoded(value);
            if let Shape::Answered(found) = signer.unsign_plain_token(value) {
                answered += 1;
                assert_eq!(
                    found,
                    general.as_deref(),
                    "{}",
                    String::from_utf8_lossy(value)
                );
            }
            assert_eq!(signer.unsign_value(value), general);
        }
        assert_eq!(answered, 11, "values that took the Better Auth shape");
        assert_eq!(
            signer.unsign_value(good.as_bytes()).as_deref(),
            Some("7aON9QvXi7cN5W22aBoYB7O4cBy827eq")
        );
        assert_eq!(
            signer
                .unsign_value(signer.sign_raw("%FF").as_bytes())
                .as_deref(),
            Some("%FF")
        );
    }

    proptest::proptest! {
        /// The same, for signed values of generated tokens with generated edits.
        #[test]
        fn plain_token_shape_agrees_on_edited_values(
            token in "[a-zA-Z0-9.%+/= é]{1,40}",
            encode in proptest::bool::ANY,
            edits in proptest::collection::vec(
                (0u8..3, proptest::num::usize::ANY, proptest::sample::select(
                    b"%.23EDFf0A=+/\xff".to_vec(),
                )),
                0..4,
            ),
        ) {
            let signer = Signer::new(SECRET);
            let signed = if encode { signer.sign_cookie_value(&token) } else { signer.sign_raw(&token) };
            let mut value = signed.into_bytes();
            for (op, at, byte) in edits {
                let at = at % (value.len() + 1);
                match op {
                    0 if at < value.len() => value[at] = byte,
                    1 => value.insert(at, byte),
                    2 if at < value.len() => {
                        value.remove(at);
                    }
                    _ => {}
                }
            }
            let general = signer.unsign_decoded(&value);
            if let Shape::Answered(found) = signer.unsign_plain_token(&value) {
                proptest::prop_assert_eq!(found, general.as_deref());
            }
            proptest::prop_assert_eq!(signer.unsign_value(&value), general);
        }
    }

    #[test]
    fn spec_vector_one() {
        let s = Signer::new(SECRET);
        assert_eq!(
            s.signature("7aON9QvXi7cN5W22aBoYB7O4cBy827eS"),
            "gDPkgSRm9C9ET9NJKyrCSrXKvFFJZGLMEcKUn2sWyTw="
        );
    }

    #[test]
    fn spec_vector_two_encodes_plus_slash_equals() {
        let s = Signer::new(SECRET);
        assert_eq!(
            s.sign_cookie_value("7aON9QvXi7cN5W22aBoYB7O4cBy827eq"),
            "7aON9QvXi7cN5W22aBoYB7O4cBy827eq.%2BhA15Gvr%2FyDv4%2Fn%2BNKXYvz3o6xDnwhkFl%2BP7s4Y1Ex8%3D"
        );
        assert_eq!(
            s.sign_cookie_value("true"),
            "true.2Q7qxj%2F11DldXW8be7RmiJCA7bM%2BY0L1gL5sny1v%2FJ8%3D"
        );
    }

    #[test]
    fn non_canonical_trailing_bits_are_accepted_like_atob() {
        let s = Signer::new(SECRET);
        for sig in ["yTw=", "yTx=", "yTz="] {
            let v = format!(
                "7aON9QvXi7cN5W22aBoYB7O4cBy827eS.gDPkgSRm9C9ET9NJKyrCSrXKvFFJZGLMEcKUn2sW{sig}"
            );
            assert!(s.unsign(v.as_bytes()).is_some(), "{sig}");
        }
        let v = "7aON9QvXi7cN5W22aBoYB7O4cBy827eS.gDPkgSRm9C9ET9NJKyrCSrXKvFFJZGLMEcKUn2sWyT0=";
        assert!(s.unsign(v.as_bytes()).is_none());
    }

    #[test]
    fn first_occurrence_wins_across_fields() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, "a=1; sid=first".parse().unwrap());
        h.append(COOKIE, "sid=second".parse().unwrap());
        assert_eq!(find_cookie(&h, "sid"), Some(&b"first"[..]));
        assert_eq!(find_cookie(&h, "a"), Some(&b"1"[..]));
        assert_eq!(find_cookie(&h, "si"), None);
    }

    #[test]
    fn generated_ids_use_the_alphabet() {
        let id = generate_id(32);
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(id, generate_id(32));
    }
}
