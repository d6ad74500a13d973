//! Better Auth's `multiSession()` plugin: one `{session cookie}_multi-{token in lower case}`
//! cookie per account signed in in a browser, each holding the same signed value as that
//! account's session cookie (`token.signature`). The layer never reads them to authenticate
//! (Better Auth's `getSession` does not either); sign-in adds one, and sign-out ends the session
//! of every one that verifies. A forged or unsigned `_multi-` cookie drives nothing.
//!
//! When the layer refreshes a session whose `_multi-` cookie the browser no longer sends (it
//! outlived the cookie's `Max-Age`, or predates the plugin), it sets it again, as the plugin's
//! after-hook does on Better Auth's own refreshes, unless the browser holds the most allowed;
//! unlike that hook, it ends none of the user's other sessions there (that stays a sign-in's
//! work). On the same refreshes, `_multi-` cookies that verified only with a previous secret
//! are re-signed with the current one: Better Auth reads them with the current secret only.

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

use crate::config::SessionConfig;

/// What Better Auth's plugin recognises as a multi-session cookie: any name containing this.
const MARKER: &[u8] = b"_multi-";

/// At least this many `_multi-` cookies of one request are verified, and at most this many or
/// `maximumSessions`, whichever is larger (a browser holds at most `maximumSessions` of them;
/// the rest of a larger header is ignored).
const MAX_READ: usize = 64;

/// A `_multi-` cookie of the request whose value verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MultiCookie {
    /// The cookie's name as the browser sent it (what a deletion must name).
    pub(crate) name: String,
    /// The session token it carries.
    pub(crate) token: String,
    /// Verified with a previous secret only.
    pub(crate) resign: bool,
}

/// The multi-session cookies of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MultiCookies {
    /// Those that verified, in header order.
    pub(crate) verified: Vec<MultiCookie>,
    /// How many `_multi-` cookies the request carried, verified or not: Better Auth counts
    /// every one against `maximumSessions`.
    pub(crate) count: usize,
    /// Whether the `Cookie` header mentions the session cookie's name anywhere (Better Auth's
    /// `cookieString.includes(sessionCookieName)`, which a `_multi-` cookie also satisfies).
    pub(crate) mentions_session_cookie: bool,
}

/// The name of the multi-session cookie for `token`.
pub(crate) fn cookie_name(session_cookie: &str, token: &str) -> String {
    let mut name = String::with_capacity(session_cookie.len() + MARKER.len() + token.len());
    name.push_str(session_cookie);
    name.push_str("_multi-");
    name.push_str(&token.to_lowercase());
    name
}

/// Reads and verifies the request's multi-session cookies.
pub(crate) fn read(config: &SessionConfig, headers: &HeaderMap) -> MultiCookies {
    let session_name = config.cookies.session.name.as_bytes();
    let most = MAX_READ.max(config.multi_session.unwrap_or(0));
    let mut out = MultiCookies::default();
    for field in headers.get_all(COOKIE) {
        let field = field.as_bytes();
        out.mentions_session_cookie |= memchr::memmem::find(field, session_name).is_some();
        for segment in field.split(|&b| b == b';') {
            let Some(eq) = segment.iter().position(|&b| b == b'=') else {
                continue;
            };
            let name = segment[..eq].trim_ascii();
            if memchr::memmem::find(name, MARKER).is_none() {
                continue;
            }
            out.count += 1;
            if out.count > most || !is_cookie_name(name) {
                continue;
            }
            let raw = segment[eq + 1..].trim_ascii();
            if let Some(verified) = config.keys.unsign(raw, || config.clock.now()) {
                out.verified.push(MultiCookie {
                    // A cookie-name token is ASCII.
                    name: String::from_utf8_lossy(name).into_owned(),
                    token: verified.value.into_owned(),
                    resign: verified.resign,
                });
            }
        }
    }
    out
}

/// The `Set-Cookie` that sets the multi-session cookie for `token`: the session cookie's value
/// and attributes, with `Max-Age` = `expiresIn` always (also for a "don't remember me" session,
/// as Better Auth).
pub(crate) fn set(config: &SessionConfig, token: &str, signed_value: &str) -> HeaderValue {
    set_named(
        config,
        &cookie_name(&config.cookies.session.name, token),
        signed_value,
    )
}

/// [`set`] for the multi-session cookie named `name` (as the browser sent it, or as made).
fn set_named(config: &SessionConfig, name: &str, signed_value: &str) -> HeaderValue {
    config
        .cookies
        .session
        .renamed(name)
        .header(signed_value, Some(config.lifetimes.expires_in))
}

/// The multi-session cookies for a response that refreshes the session of `token` (or
/// re-signs its cookie), from the request's `headers`: the `_multi-` cookies that verified
/// only with a previous secret, signed again with the current one; and the cookie for `token`
/// when the request lacks it and the browser holds fewer than `maximum` (Better Auth counts
/// every `_multi-` cookie, and the session cookie the response sets).
pub(crate) fn on_refresh(
    config: &SessionConfig,
    headers: &HeaderMap,
    token: &str,
    maximum: usize,
) -> Vec<HeaderValue> {
    let request = read(config, headers);
    let signer = &config.keys.signer;
    let mut cookies: Vec<HeaderValue> = request
        .verified
        .iter()
        .filter(|c| c.resign)
        .map(|c| set_named(config, &c.name, &signer.sign_cookie_value(&c.token)))
        .collect();
    let name = cookie_name(&config.cookies.session.name, token);
    let held = crate::codec::find_token_cookie(headers, &name).is_some();
    if !held && request.count < maximum {
        cookies.push(set_named(config, &name, &signer.sign_cookie_value(token)));
    }
    cookies
}

/// The `Set-Cookie` that deletes the multi-session cookie the browser sent as `name`.
pub(crate) fn expire(config: &SessionConfig, name: &str) -> HeaderValue {
    config.cookies.session.renamed(name).expired()
}

/// An RFC 6265 cookie name (so that it can be written back in a `Set-Cookie`).
fn is_cookie_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SessionConfig {
        SessionConfig::builder()
            .secret("a-private-secret-of-at-least-32-bytes!!")
            .multi_session(5)
            .build()
            .unwrap()
    }

    #[test]
    fn names_lower_case_the_token_only() {
        assert_eq!(
            cookie_name("__Secure-MyApp.session_token", "AbCd"),
            "__Secure-MyApp.session_token_multi-abcd"
        );
    }

    #[test]
    fn only_verified_values_are_kept_but_all_are_counted() {
        let config = config();
        let good = config.keys.signer.sign_cookie_value("TokenA");
        let forged = "TokenB.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D";
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!(
                "theme=dark; better-auth.session_token_multi-tokena={good}; x_multi-y={forged}; better-auth.session_token_multi-unsigned=TokenC"
            ))
            .unwrap(),
        );
        let read = read(&config, &headers);
        assert_eq!(read.count, 3);
        assert!(read.mentions_session_cookie);
        assert_eq!(
            read.verified,
            [MultiCookie {
                name: "better-auth.session_token_multi-tokena".into(),
                token: "TokenA".into(),
                resign: false,
            }]
        );
    }

    #[test]
    fn set_and_expire_keep_the_session_cookie_attributes() {
        let config = config();
        let value = config.keys.signer.sign_cookie_value("TokenA");
        let line = set(&config, "TokenA", &value);
        assert_eq!(
            line.to_str().unwrap(),
            format!("better-auth.session_token_multi-tokena={value}; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax")
        );
        assert_eq!(
            expire(&config, "better-auth.session_token_multi-tokena")
                .to_str()
                .unwrap(),
            "better-auth.session_token_multi-tokena=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
        );
    }
}
