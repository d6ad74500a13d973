//! The cookie plan: what a response does with the layer's cookies, decided by the policy as plain
//! data ([`CookiePlan`]), and turned into `Set-Cookie` lines once, on the way out of the request
//! ([`Render`]). Nothing else in the request path writes header bytes.

use http::header::{ACCESS_CONTROL_EXPOSE_HEADERS, CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderName, HeaderValue};
use time::{Duration, OffsetDateTime};

use crate::config::{CookieCache, Cookies, Keys, SessionConfig};
use crate::cookie_cache;
use crate::model::Authenticated;

/// What happens to the session token cookie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum SessionCookie {
    /// Left alone.
    #[default]
    Keep,
    /// (Re-)sent with the same token and this `Max-Age` (`None`: a browser-session cookie):
    /// after a refresh, or re-signed with the current secret.
    Set { max_age: Option<Duration> },
    /// Cleared with the cookie cache (every chunk) and `dont_remember`, as Better Auth's
    /// `deleteSessionCookie` does.
    Clear,
}

/// What happens to the cookie cache (`session_data`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum CacheCookie {
    /// Left alone.
    #[default]
    Keep,
    /// Issued for the session read from the store (a browser-session cookie when
    /// `dont_remember`), after expiring the unusable one the request carried when
    /// `expire_first` (both lines go out, as in Better Auth).
    Issue {
        dont_remember: bool,
        expire_first: bool,
    },
    /// Expired, with every chunk the request carried (an unusable cache cookie).
    Expire,
}

/// The layer's cookies for one response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CookiePlan {
    pub(crate) session: SessionCookie,
    pub(crate) cache: CacheCookie,
    /// Send `set-auth-token` (a bearer client's session was refreshed).
    pub(crate) auth_token: bool,
    /// Re-send the `dont_remember` marker signed with the current secret (a previous one
    /// verified it).
    pub(crate) resign_dont_remember: bool,
}

impl CookiePlan {
    /// Leaves every cookie alone.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Clears every session cookie.
    pub(crate) fn clear() -> Self {
        Self {
            session: SessionCookie::Clear,
            ..Self::default()
        }
    }
}

/// A plan with what rendering it needs: the raw token (it is signed again), the session (for a
/// cache cookie), the clock reading, the cache-cookie chunks the request carried, the
/// multi-session cookies that go with the session cookie, and the other cookies a clearing
/// expires.
pub(crate) struct Render {
    pub(crate) plan: CookiePlan,
    pub(crate) token: String,
    pub(crate) auth: Option<Authenticated>,
    pub(crate) now: OffsetDateTime,
    pub(crate) chunks: Vec<String>,
    /// Multi-session cookies sent with a session cookie sent again (none without the plugin).
    pub(crate) multi: Vec<HeaderValue>,
    /// With [`SessionCookie::Clear`], the deletions of Better Auth's other sign-in cookies the
    /// request carried (the account cookie, `oauth_state`).
    pub(crate) others: Vec<HeaderValue>,
}

/// The configuration parts that rendering reads.
#[derive(Clone, Copy)]
pub(crate) struct Parts<'a> {
    pub(crate) keys: &'a Keys,
    pub(crate) cookies: &'a Cookies,
    pub(crate) cache: Option<&'a CookieCache>,
}

impl<'a> Parts<'a> {
    /// The parts of `config`.
    pub(crate) fn of(config: &'a SessionConfig) -> Self {
        Self {
            keys: &config.keys,
            cookies: &config.cookies,
            cache: config.cache.as_ref(),
        }
    }
}

impl Render {
    /// Appends the plan's `Set-Cookie` lines to `headers`, except for cookies the handler set
    /// itself (a sign-in or sign-out made during the request wins), and `set-auth-token`.
    pub(crate) fn apply(self, parts: Parts<'_>, headers: &mut HeaderMap) {
        let mut cookies = Vec::new();
        let cookie = &parts.cookies;
        // A handler that set the session cookie itself (a sign-in as someone else, a sign-out)
        // decides the session: the layer's cache cookie (for the request's own session, maybe
        // just deleted) and `set-auth-token` stay out. Better Auth's bearer plugin reads the
        // token from the response's final session cookie, and sends none for one cleared.
        let handler_set_session = headers
            .get_all(SET_COOKIE)
            .iter()
            .any(|v| cookie_name(v.as_bytes()) == Some(cookie.session.name.as_bytes()));
        match self.plan.session {
            SessionCookie::Keep => {}
            SessionCookie::Set { max_age } => cookies.push(
                cookie
                    .session
                    .header(&parts.keys.signer.sign_cookie_value(&self.token), max_age),
            ),
            SessionCookie::Clear => {
                cookies.extend(cookie.clearing.iter().cloned());
                cookies.extend(
                    self.chunks
                        .iter()
                        .map(|n| cookie.session_data.renamed(n).expired()),
                );
                cookies.extend(self.others);
            }
        }
        if !handler_set_session {
            cookies.extend(self.multi);
        }
        if self.plan.resign_dont_remember && self.plan.session != SessionCookie::Clear {
            cookies.push(
                cookie
                    .dont_remember
                    .header(&parts.keys.signer.sign_cookie_value("true"), None),
            );
        }
        if self.plan.session != SessionCookie::Clear && !handler_set_session {
            match self.plan.cache {
                CacheCookie::Keep => {}
                CacheCookie::Issue {
                    dont_remember,
                    expire_first,
                } => {
                    if expire_first {
                        cookies
                            .extend(cookie_cache::expire_all(&cookie.session_data, &self.chunks));
                    }
                    if let Some((cache, auth)) = parts.cache.zip(self.auth.as_ref()) {
                        cookies.extend(cookie_cache::issue(
                            &parts.keys.signer,
                            cache,
                            &cookie.session_data,
                            auth,
                            self.now,
                            dont_remember,
                            &self.chunks,
                        ));
                    }
                }
                CacheCookie::Expire => {
                    cookies.extend(cookie_cache::expire_all(&cookie.session_data, &self.chunks));
                }
            }
        }
        append_cookies(headers, cookies);
        if self.plan.auth_token && !handler_set_session && !headers.contains_key(SET_AUTH_TOKEN) {
            set_auth_token(headers, &parts.keys.signer.sign_raw(&self.token));
        }
    }
}

/// Appends `cookies` unless the response already sets a cookie of the same name, then marks
/// the response uncacheable.
pub(crate) fn append_cookies(headers: &mut HeaderMap, cookies: Vec<HeaderValue>) {
    if cookies.is_empty() {
        return;
    }
    let already: Vec<Vec<u8>> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| cookie_name(v.as_bytes()).map(<[u8]>::to_vec))
        .collect();
    let mut added = false;
    for cookie in cookies {
        let name = cookie_name(cookie.as_bytes()).unwrap_or_default();
        if !already.iter().any(|n| n == name) {
            headers.append(SET_COOKIE, cookie);
            added = true;
        }
    }
    if added || !already.is_empty() {
        mark_uncacheable(headers);
    }
}

fn cookie_name(set_cookie: &[u8]) -> Option<&[u8]> {
    set_cookie
        .iter()
        .position(|&b| b == b'=')
        .map(|eq| set_cookie[..eq].trim_ascii())
}

/// `Cache-Control: no-store` and `Vary: Cookie`, for responses that set or clear cookies.
pub(crate) fn mark_uncacheable(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let varies = headers.get_all(VARY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains("cookie"))
    });
    if !varies {
        headers.append(VARY, HeaderValue::from_static("Cookie"));
    }
}

/// The bearer plugin's response header.
const SET_AUTH_TOKEN: HeaderName = HeaderName::from_static("set-auth-token");

/// `set-auth-token: token.signature` (not URL-encoded, as Better Auth's bearer plugin sends it),
/// exposed to cross-origin scripts.
pub(crate) fn set_auth_token(headers: &mut HeaderMap, signed: &str) {
    if let Ok(value) = HeaderValue::try_from(signed) {
        headers.insert(SET_AUTH_TOKEN, value);
        let exposed = headers
            .get_all(ACCESS_CONTROL_EXPOSE_HEADERS)
            .iter()
            .any(|v| {
                v.to_str()
                    .is_ok_and(|s| s.to_ascii_lowercase().contains("set-auth-token"))
            });
        if !exposed {
            headers.append(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("set-auth-token"),
            );
        }
    }
}
