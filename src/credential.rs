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
use http::{HeaderMap, Method};

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
}

/// Reads and verifies the credential of a request.
pub(crate) fn read<'h>(
    config: &SessionConfig,
    method: &Method,
    path: &str,
    headers: &'h HeaderMap,
) -> Read<'h> {
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
    if guards.origins.refuses(method, path, headers) {
        return Read::UntrustedOrigin;
    }
    match config.keys.unsign(raw, || config.clock.now()) {
        Some(verified) => Read::Credential(Credential {
            token: verified.value,
            resign: verified.resign,
            via: Via::Cookie,
        }),
        None => Read::Anonymous(Outcome::BadSignature),
    }
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
        return Some(
            config
                .keys
                .unsign(credential, || config.clock.now())
                .map(|v| v.value),
        );
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
    known: Option<bool>,
}

impl<'h> DontRemember<'h> {
    pub(crate) fn new(headers: &'h HeaderMap) -> Self {
        Self {
            headers,
            known: None,
        }
    }

    pub(crate) fn get(&mut self, config: &SessionConfig) -> bool {
        let headers = self.headers;
        *self.known.get_or_insert_with(|| {
            find_token_cookie(headers, &config.cookies.dont_remember.name)
                .and_then(|raw| config.keys.unsign(raw, || config.clock.now()))
                .is_some_and(|v| v.value == "true")
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
