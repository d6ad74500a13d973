//! Better Auth's cookie names and attributes (spec §2.1, §2.2), and the exact form of their
//! `Set-Cookie` lines. Only [`crate::plan`] writes these lines, on the way out of a request, and
//! [`crate::manager`] for sign-ins and sign-outs.

use http::{HeaderMap, HeaderValue};
use time::Duration;

use super::MAX_COOKIE_AGE;
use crate::codec::cookies_with_prefix;
use crate::error::ConfigError;

/// The index of a chunk cookie named `name` (`{prefix}N`): canonical non-negative integers
/// below 100 only, as Better Auth reads them (`String(Number(s)) === s`).
pub(crate) fn chunk_index(name: &[u8], prefix: &str) -> Option<u32> {
    let index = std::str::from_utf8(name.get(prefix.len()..)?).ok()?;
    let n: u32 = index.parse().ok()?;
    (n.to_string() == index && n < 100).then_some(n)
}

/// The `SameSite` attribute of the session cookies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`, Better Auth's default.
    #[default]
    Lax,
    /// `SameSite=None`, which forces `Secure` (but, as in Better Auth, does not rename the cookie).
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        }
    }
}

/// One cookie's final name and the attributes rendered into its `Set-Cookie`. The
/// `__Secure-`/`__Host-` rules depend on each cookie's own name, as in Better Auth.
#[derive(Clone, Debug)]
pub(crate) struct CookieSpec {
    pub(crate) name: String,
    /// `; Domain=…; Path=…`
    scope: String,
    /// `; HttpOnly; Secure; SameSite=…`
    flags: String,
}

impl CookieSpec {
    /// The same attributes under another name (a cache-cookie chunk, a multi-session cookie).
    pub(crate) fn renamed(&self, name: &str) -> CookieSpec {
        CookieSpec {
            name: name.to_owned(),
            ..self.clone()
        }
    }

    /// A `Set-Cookie` value in Better Auth's attribute order:
    /// `name=value; Max-Age=N; Domain=d; Path=p; HttpOnly; Secure; SameSite=Lax`. No `Max-Age`
    /// makes a browser-session cookie.
    pub(crate) fn header(&self, value: &str, max_age: Option<Duration>) -> HeaderValue {
        let mut out = String::with_capacity(
            self.name.len() + value.len() + self.scope.len() + self.flags.len() + 20,
        );
        out.push_str(&self.name);
        out.push('=');
        out.push_str(value);
        if let Some(age) = max_age {
            let secs = age.clamp(Duration::ZERO, MAX_COOKIE_AGE).whole_seconds();
            out.push_str("; Max-Age=");
            out.push_str(&secs.to_string());
        }
        out.push_str(&self.scope);
        out.push_str(&self.flags);
        // Names and attributes were validated at build time and values are URI-encoded, so
        // this cannot fail; fall back to a deletion rather than panic if it ever did.
        HeaderValue::try_from(out)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }

    /// Its deletion: an empty value with `Max-Age=0` and the same attributes.
    pub(crate) fn expired(&self) -> HeaderValue {
        self.header("", Some(Duration::ZERO))
    }

    /// The names of this cookie's chunks (`name.0`, `name.1`, …) `headers` carry, each once:
    /// for a sign-out, which expires them as Better Auth's `deleteSessionCookie` does.
    pub(crate) fn chunk_names(&self, headers: &HeaderMap) -> Vec<String> {
        let prefix = format!("{}.", self.name);
        let mut names: Vec<String> = cookies_with_prefix(headers, &prefix)
            .filter(|(name, _)| chunk_index(name, &prefix).is_some())
            .map(|(name, _)| String::from_utf8_lossy(name).into_owned())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Whether `headers` carry this cookie under its exact name.
    pub(crate) fn carried(&self, headers: &HeaderMap) -> bool {
        cookies_with_prefix(headers, &self.name).any(|(name, _)| name == self.name.as_bytes())
    }
}

/// The layer's cookies: the session token, `dont_remember`, and the cookie cache.
#[derive(Clone, Debug)]
pub(crate) struct Cookies {
    pub(crate) session: CookieSpec,
    pub(crate) dont_remember: CookieSpec,
    pub(crate) session_data: CookieSpec,
    /// `Max-Age=0` for the session token, the cookie cache and `dont_remember`, as Better Auth's
    /// `deleteSessionCookie` emits them: the same bytes on every rejection, so built once.
    pub(crate) clearing: [HeaderValue; 3],
    /// Better Auth's account cookie (`account.storeAccountCookie`): the linked account's
    /// tokens, encrypted. Only ever expired here.
    account_data: CookieSpec,
    /// Better Auth's OAuth state cookie (`oauth_state`, its cookie state strategy). Only ever
    /// expired here.
    oauth_state: CookieSpec,
}

/// What the builder says about cookies.
pub(crate) struct CookieOptions<'a> {
    pub(crate) secure: bool,
    pub(crate) prefix: Option<&'a str>,
    pub(crate) session_cookie_name: Option<&'a str>,
    pub(crate) domain: Option<&'a str>,
    pub(crate) path: Option<&'a str>,
    pub(crate) same_site: SameSite,
    pub(crate) http_only: bool,
    pub(crate) partitioned: bool,
}

impl Cookies {
    /// Better Auth's names and attributes for these options (`createCookieGetter`).
    pub(crate) fn new(options: &CookieOptions<'_>) -> Result<Self, ConfigError> {
        // `cookiePrefix || "better-auth"`: an empty prefix means the default.
        let prefix = options
            .prefix
            .filter(|p| !p.is_empty())
            .unwrap_or("better-auth");
        let secure_prefix = if options.secure { "__Secure-" } else { "" };
        let base = options
            .session_cookie_name
            .filter(|n| !n.is_empty())
            .map_or_else(|| format!("{prefix}.session_token"), str::to_owned);
        let path = options.path.unwrap_or("/");
        check_attr("path", path)?;
        if let Some(domain) = options.domain {
            check_attr("domain", domain)?;
        }
        let spec = |name: String| -> Result<CookieSpec, ConfigError> {
            check_token("cookie name", &name)?;
            // Per cookie, as better-call: `__Host-` forces `Path=/`, no `Domain` and `Secure`;
            // `__Secure-`, `SameSite=None` and `Partitioned` force `Secure`.
            // Matched ignoring case, as better-call and browsers (RFC 6265bis) match them.
            let is_host = has_prefix(&name, "__Host-");
            let mut scope = String::new();
            if let (Some(domain), false) = (options.domain, is_host) {
                scope.push_str("; Domain=");
                scope.push_str(domain);
            }
            scope.push_str("; Path=");
            scope.push_str(if is_host { "/" } else { path });
            let mut flags = String::new();
            if options.http_only {
                flags.push_str("; HttpOnly");
            }
            if options.secure
                || is_host
                || has_prefix(&name, "__Secure-")
                || options.same_site == SameSite::None
                || options.partitioned
            {
                flags.push_str("; Secure");
            }
            flags.push_str("; SameSite=");
            flags.push_str(options.same_site.as_str());
            if options.partitioned {
                flags.push_str("; Partitioned");
            }
            Ok(CookieSpec { name, scope, flags })
        };
        let session = spec(format!("{secure_prefix}{base}"))?;
        let dont_remember = spec(format!("{secure_prefix}{prefix}.dont_remember"))?;
        let session_data = spec(format!("{secure_prefix}{prefix}.session_data"))?;
        let clearing = [
            session.expired(),
            session_data.expired(),
            dont_remember.expired(),
        ];
        Ok(Self {
            session,
            dont_remember,
            session_data,
            clearing,
            account_data: spec(format!("{secure_prefix}{prefix}.account_data"))?,
            oauth_state: spec(format!("{secure_prefix}{prefix}.oauth_state"))?,
        })
    }

    /// The deletions of Better Auth's other sign-in cookies `headers` carry, which its
    /// `deleteSessionCookie` expires with the session (when the options that set them are on,
    /// as they are when the browser holds them): the account cookie and its chunks, and
    /// `oauth_state`. A sign-out from Rust otherwise left the previous user's linked-account
    /// tokens in the browser. Empty when the request carries none (the usual case).
    pub(crate) fn others_carried(&self, headers: &HeaderMap) -> Vec<HeaderValue> {
        let mut out = Vec::new();
        if self.account_data.carried(headers) {
            out.push(self.account_data.expired());
        }
        out.extend(
            self.account_data
                .chunk_names(headers)
                .iter()
                .map(|name| self.account_data.renamed(name).expired()),
        );
        if self.oauth_state.carried(headers) {
            out.push(self.oauth_state.expired());
        }
        out
    }
}

/// RFC 6265 cookie-name characters (an RFC 7230 token).
fn check_token(option: &'static str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            option,
            reason: format!(
                "{name:?} is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~ only)"
            ),
        })
    }
}

fn check_attr(option: &'static str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b';');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            option,
            reason: format!("{value:?} must be non-empty printable ASCII without spaces or ';'"),
        })
    }
}

/// Whether `name` starts with `prefix`, ignoring ASCII case.
fn has_prefix(name: &str, prefix: &str) -> bool {
    name.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `__host-` is `__Host-` to better-call and to browsers: `Secure`, `Path=/` and no
    /// `Domain`, or a browser drops the cookie (and ignores its deletion).
    #[test]
    fn cookie_name_prefixes_are_matched_ignoring_case() {
        for (name, line) in [
            (
                "__host-sid",
                "__host-sid=v; Max-Age=604800; Path=/; HttpOnly; Secure; SameSite=Lax",
            ),
            (
                "__SECURE-sid",
                "__SECURE-sid=v; Max-Age=604800; Domain=example.com; Path=/app; HttpOnly; Secure; SameSite=Lax",
            ),
            (
                "_host-sid",
                "_host-sid=v; Max-Age=604800; Domain=example.com; Path=/app; HttpOnly; SameSite=Lax",
            ),
        ] {
            let cookies = Cookies::new(&CookieOptions {
                secure: false,
                prefix: None,
                session_cookie_name: Some(name),
                domain: Some("example.com"),
                path: Some("/app"),
                same_site: SameSite::Lax,
                http_only: true,
                partitioned: false,
            })
            .unwrap();
            assert_eq!(cookies.session.header("v", Some(Duration::days(7))), line);
        }
    }

    /// As better-call writes them: `Partitioned` last, and `Secure` forced, on the cookies and
    /// on their deletions (a browser deletes a partitioned cookie only with a partitioned
    /// deletion).
    #[test]
    fn partitioned_cookies_are_secure_and_say_so_last() {
        let cookies = Cookies::new(&CookieOptions {
            secure: false,
            prefix: None,
            session_cookie_name: None,
            domain: None,
            path: None,
            same_site: SameSite::Lax,
            http_only: true,
            partitioned: true,
        })
        .unwrap();
        assert_eq!(
            cookies.session.header("v", Some(Duration::days(7))),
            "better-auth.session_token=v; Max-Age=604800; Path=/; HttpOnly; Secure; SameSite=Lax; Partitioned"
        );
        for deletion in &cookies.clearing {
            assert!(deletion
                .to_str()
                .unwrap()
                .ends_with("; Secure; SameSite=Lax; Partitioned"));
        }
    }
}
