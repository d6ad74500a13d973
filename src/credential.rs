//! The request's credential (spec §2.4, §2.6): the session cookie or an `Authorization: Bearer`
//! value, verified with the current secret or a previous one, and the origin check that guards
//! cookie-authenticated writes. Nothing here reads the store.
//!
//! Precedence follows Better Auth's `bearer()` plugin: when bearer mode is on and the request
//! carries a bearer value that verifies, the bearer decides (the session cookie is ignored, so
//! a bad cookie never blocks a good bearer); a bearer that does not verify is ignored and the
//! cookie decides.

use std::borrow::Cow;

use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, Uri};

use crate::codec::find_token_cookie;
use crate::config::{Bearer, SessionConfig};
use crate::metrics::Outcome;

/// Where a credential came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    Cookie,
    Bearer,
}

/// A verified credential.
pub(crate) struct Credential<'h> {
    /// The session token, borrowed from the header whenever it can be.
    pub(crate) token: Cow<'h, str>,
    /// A previous secret verified it: re-sign the cookie with the current one.
    pub(crate) resign: bool,
    pub(crate) via: Via,
}

/// What the request carries.
pub(crate) enum Read<'h> {
    /// A verified credential.
    Credential(Credential<'h>),
    /// No credential, or one that did not verify: anonymous, with this outcome.
    Anonymous(Outcome),
    /// A cookie-authenticated write from an origin that is not trusted.
    UntrustedOrigin,
    /// `Authorization: Bearer` holding what looks like a Better Auth JWT (with a verifier
    /// configured): it decides, whatever cookie the request also carries.
    #[cfg(feature = "jwt")]
    Jwt(&'h str),
}

/// Reads and verifies the credential of a request.
pub(crate) fn read<'h>(
    config: &SessionConfig,
    method: &Method,
    uri: &Uri,
    headers: &'h HeaderMap,
) -> Read<'h> {
    #[cfg(feature = "jwt")]
    if config.jwt.is_some() {
        if let Some(token) = jwt_bearer(headers) {
            return Read::Jwt(token);
        }
    }
    let guards = &config.guards;
    let mut bad_bearer = false;
    if guards.bearer != Bearer::Off {
        match bearer(config, headers) {
            Some(Some(token)) => {
                return Read::Credential(Credential {
                    token,
                    resign: false,
                    via: Via::Bearer,
                })
            }
            Some(None) => bad_bearer = true,
            None => {}
        }
    }
    let Some(raw) = find_token_cookie(headers, &config.cookies.session.name) else {
        return Read::Anonymous(if bad_bearer {
            Outcome::BadSignature
        } else {
            Outcome::NoCredential
        });
    };
    if guards.origins.refuses(method, uri, headers) {
        return Read::UntrustedOrigin;
    }
    match config.keys.unsign(raw, || config.clock.now()) {
        Some(verified) => Read::Credential(Credential {
            token: verified.value,
            resign: verified.resign,
            via: Via::Cookie,
        }),
        None => {
            if looks_signed(raw) {
                config.warnings.bad_signature();
            }
            Read::Anonymous(Outcome::BadSignature)
        }
    }
}

/// `Authorization: Bearer` with a compact JWS (three dot-separated parts, a JSON header):
/// Better Auth's session bearer values (`token.signature`) have one dot, so the two never mix.
#[cfg(feature = "jwt")]
fn jwt_bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case("bearer ") {
        return None;
    }
    let token = value[7..].trim();
    (token.starts_with("eyJ") && token.bytes().filter(|&b| b == b'.').count() == 2).then_some(token)
}

/// Whether a raw value has the shape of Better Auth's signed value (`token.` and 44 characters
/// of standard base64 ending in `=`, URL-encoded or not), so that failing to verify it points
/// at the secret rather than at a malformed or truncated cookie.
fn looks_signed(raw: &[u8]) -> bool {
    let raw = raw.trim_ascii();
    let Some(dot) = raw.iter().rposition(|&b| b == b'.') else {
        return false;
    };
    if dot == 0 {
        return false;
    }
    // Decoded on the fly (`%2B`, `%2F`, `%3D`), without allocating: 43 base64 characters
    // and a final `=`.
    let mut len = 0;
    let mut last = 0;
    let mut rest = &raw[dot + 1..];
    while let Some((&b, tail)) = rest.split_first() {
        let (byte, tail) = match (b, tail) {
            (b'%', [b'2', b'B' | b'b', tail @ ..]) => (b'+', tail),
            (b'%', [b'2', b'F' | b'f', tail @ ..]) => (b'/', tail),
            (b'%', [b'3', b'D' | b'd', tail @ ..]) => (b'=', tail),
            _ => (b, tail),
        };
        let base64 = byte.is_ascii_alphanumeric() || byte == b'+' || byte == b'/';
        if len >= 44 || (len < 43 && !base64) {
            return false;
        }
        len += 1;
        last = byte;
        rest = tail;
    }
    len == 44 && last == b'='
}

/// The session token a sign-out deletes: what the layer would have used, a verified bearer
/// value over the session cookie (Better Auth's bearer plugin turns it into the cookie before
/// signing out), but never a JWT (the bearer plugin ignores one, and the cookie decides).
pub(crate) fn sign_out_token<'h>(
    config: &SessionConfig,
    headers: &'h HeaderMap,
) -> Option<Cow<'h, str>> {
    bearer_token(config, headers).or_else(|| {
        find_token_cookie(headers, &config.cookies.session.name)
            .and_then(|raw| config.keys.unsign(raw, || config.clock.now()))
            .map(|verified| verified.value)
    })
}

/// The session token a verified `Authorization: Bearer` value names, in bearer mode (the
/// credential that decides over the cookie, as in [`read`]).
fn bearer_token<'h>(config: &SessionConfig, headers: &'h HeaderMap) -> Option<Cow<'h, str>> {
    if config.guards.bearer == Bearer::Off {
        return None;
    }
    bearer(config, headers).flatten()
}

/// `Authorization: Bearer …`: `None` without one, `Some(None)` for one that does not verify,
/// `Some(Some(token))` for a signed value that verifies (also with a previous secret, so a
/// rotation does not log out API clients), or a raw token with [`Bearer::SignedOrRaw`].
fn bearer<'h>(config: &SessionConfig, headers: &'h HeaderMap) -> Option<Option<Cow<'h, str>>> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let credential = value[7..].trim_ascii();
    if credential.contains(&b'.') {
        let verified = config.keys.unsign(credential, || config.clock.now());
        if verified.is_none() && looks_signed(credential) {
            config.warnings.bad_signature();
        }
        return Some(verified.map(|v| v.value));
    }
    let raw_ok = config.guards.bearer == Bearer::SignedOrRaw
        && !credential.is_empty()
        && credential.len() <= 256
        && credential.iter().all(u8::is_ascii_alphanumeric);
    Some(
        raw_ok
            .then(|| std::str::from_utf8(credential).ok().map(Cow::Borrowed))
            .flatten(),
    )
}

/// Whether the request carries a valid signed `dont_remember` cookie, read on first use: most
/// requests never need to know.
pub(crate) struct DontRemember<'h> {
    headers: &'h HeaderMap,
    /// Whether the cookie is valid, and whether only a previous secret verified it.
    known: Option<(bool, bool)>,
}

impl<'h> DontRemember<'h> {
    pub(crate) fn new(headers: &'h HeaderMap) -> Self {
        Self {
            headers,
            known: None,
        }
    }

    pub(crate) fn get(&mut self, config: &SessionConfig) -> bool {
        self.read(config).0
    }

    /// A valid cookie that only a previous secret verified: re-signed with the current one
    /// while that still verifies it, or "don't remember me" would end with the old secret and
    /// the session start being refreshed into a lasting cookie.
    pub(crate) fn needs_resign(&mut self, config: &SessionConfig) -> bool {
        !config.keys.previous.is_empty() && self.read(config) == (true, true)
    }

    fn read(&mut self, config: &SessionConfig) -> (bool, bool) {
        let headers = self.headers;
        *self.known.get_or_insert_with(|| {
            find_token_cookie(headers, &config.cookies.dont_remember.name)
                .and_then(|raw| config.keys.unsign(raw, || config.clock.now()))
                .filter(|v| v.value == "true")
                .map_or((false, false), |v| (true, v.resign))
        })
    }
}

/// A short, non-reversible tag for a token in logs (the first 8 hex digits of its SHA-256),
/// computed only when the event is actually recorded.
pub(crate) struct TokenTag<'a>(pub(crate) &'a str);

impl std::fmt::Display for TokenTag<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::config::sha256_hex(self.0)[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::looks_signed;

    #[test]
    fn the_shape_of_a_signed_value() {
        let sig = "gDPkgSRm9C9ET9NJKyrCSrXKvFFJZGLMEcKUn2sWyTw";
        assert!(looks_signed(format!("tok.{sig}%3D").as_bytes()));
        assert!(looks_signed(format!("tok.{sig}=").as_bytes()));
        assert!(looks_signed(
            b"tok.a%2Bb%2F000000000000000000000000000000000000000%3D"
        ));
        for not in [
            format!("tok.{sig}"),
            format!("tok{sig}%3D"),
            format!(".{sig}%3D"),
            format!("tok.{sig}A%3D"),
            format!("tok.{}%3D", &sig[1..]),
            format!("tok.{}!%3D", &sig[1..]),
            "garbage".to_owned(),
            String::new(),
        ] {
            assert!(!looks_signed(not.as_bytes()), "{not}");
        }
    }
}
