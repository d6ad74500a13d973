//! Fuzzes the cookie codec: `find_cookie` over `Cookie` headers built from the input, and
//! `Signer::unsign` on raw values, mutated signed values and found cookies.
//!
//! Asserts no panic, that `find_cookie` agrees with a reference scan, and that `unsign` returns
//! `Some(token)` only when the value, decoded the way the spec says (trim, unquote, strict
//! percent-decoding when it holds `%`), is exactly `token.signature` with the signature
//! recomputed by `Signer::sign_raw` (up to the 2 unused low bits of the last base64 character,
//! which `atob` ignores) and within the 1 KiB cap.
#![no_main]

use std::sync::OnceLock;

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tower_auth_session::codec::{find_cookie, Signer, MAX_SIGNED_VALUE_LEN};

const SECRET: &str = "fuzz-secret-0123456789-abcdefghijklmnop";
const NAME: &str = "better-auth.session_token";
const NAMES: &[&str] = &[NAME, "a", "", " ", "better-auth.session_token "];

fn signer() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| Signer::new(SECRET))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        // Header fields separated by `\n`.
        0 => {
            let fields: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
            check_headers(&fields);
            check_unsign(rest);
        }
        // A signed value of a fuzzed token, encoded (1) or raw (2), then edited.
        1 | 2 => {
            let (token, edits) = match rest.iter().position(|&b| b == 0) {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (rest, &[][..]),
            };
            let token = String::from_utf8_lossy(token);
            let signed = if mode % 4 == 1 {
                signer().sign_cookie_value(&token)
            } else {
                signer().sign_raw(&token)
            };
            if mode % 4 == 1 {
                // Round trip: every non-empty token within the cap comes back unchanged.
                let back = signer().unsign(signed.as_bytes());
                if !token.is_empty() && token.len() + 45 <= MAX_SIGNED_VALUE_LEN {
                    assert_eq!(back.as_deref(), Some(&*token));
                } else {
                    assert!(back.is_none());
                }
            }
            let mut value = signed.into_bytes();
            for edit in edits.chunks(3) {
                let (op, pos, byte) = (edit[0], edit.get(1).copied(), edit.get(2).copied());
                let at = usize::from(pos.unwrap_or(0)) * value.len().max(1) / 256;
                let byte = byte.unwrap_or(b'=');
                match op % 3 {
                    0 if at < value.len() => value[at] = byte,
                    1 => value.insert(at.min(value.len()), byte),
                    2 if at < value.len() => {
                        value.remove(at);
                    }
                    _ => {}
                }
            }
            check_unsign(&value);
            let field = [b"x=1; ".as_slice(), NAME.as_bytes(), b"=", &value].concat();
            check_headers(&[&field]);
        }
        // One session cookie with a fuzzed value.
        _ => {
            let field = [NAME.as_bytes(), b"=", rest].concat();
            check_headers(&[&field]);
        }
    }
});

fn check_headers(fields: &[&[u8]]) {
    let mut headers = HeaderMap::new();
    let mut kept: Vec<&[u8]> = Vec::new();
    for field in fields {
        if let Ok(value) = HeaderValue::from_bytes(field) {
            headers.append(COOKIE, value);
            kept.push(field);
        }
    }
    for name in NAMES {
        let found = find_cookie(&headers, name);
        assert_eq!(found, reference_find(&kept, name), "find_cookie({name:?})");
        if let Some(raw) = found {
            check_unsign(raw);
        }
    }
}

/// First segment called exactly `name` (ASCII-trimmed), across fields, split on `;`.
fn reference_find<'a>(fields: &[&'a [u8]], name: &str) -> Option<&'a [u8]> {
    fields.iter().find_map(|field| {
        field.split(|&b| b == b';').find_map(|segment| {
            let eq = segment.iter().position(|&b| b == b'=')?;
            (segment[..eq].trim_ascii() == name.as_bytes()).then(|| &segment[eq + 1..])
        })
    })
}

fn check_unsign(raw: &[u8]) {
    let Some(token) = signer().unsign(raw) else {
        return;
    };
    let decoded = reference_decode(raw).expect("unsign accepted a value over the length limits");
    assert!(decoded.len() <= MAX_SIGNED_VALUE_LEN);
    let canonical = signer().sign_raw(&token).into_bytes();
    let n = canonical.len();
    assert_eq!(decoded.len(), n, "{token:?}: wrong length");
    // Token, dot and the first 42 signature characters exactly; the last character up to its 2
    // unused bits; then `=`.
    assert_eq!(
        &decoded[..n - 2],
        &canonical[..n - 2],
        "{token:?}: HMAC mismatch"
    );
    assert_eq!(
        b64(decoded[n - 2]).map(|v| v >> 2),
        b64(canonical[n - 2]).map(|v| v >> 2),
        "{token:?}: last signature character"
    );
    assert_eq!(decoded[n - 1], b'=');
}

fn b64(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Trim, length guard, unquote, `decodeURIComponent` when the value holds `%` (raw value kept
/// when that throws), length cap.
fn reference_decode(raw: &[u8]) -> Option<Vec<u8>> {
    let v = raw.trim_ascii();
    if v.len() > 3 * MAX_SIGNED_VALUE_LEN {
        return None;
    }
    let v = if v.len() >= 2 && v[0] == b'"' {
        &v[1..v.len() - 1]
    } else {
        v
    };
    let v = if v.contains(&b'%') {
        percent_decode_strict(v).unwrap_or_else(|| v.to_vec())
    } else {
        v.to_vec()
    };
    (!v.is_empty() && v.len() <= MAX_SIGNED_VALUE_LEN).then_some(v)
}

fn percent_decode_strict(v: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            let hi = hex(*v.get(i + 1)?)?;
            let lo = hex(*v.get(i + 2)?)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(String::into_bytes)
}
