//! The origin check for cookie-authenticated writes (CSRF), as Better Auth's `trustedOrigins`.

use http::header::{HOST, ORIGIN, REFERER};
use http::{HeaderMap, Method, Uri};

use crate::error::ConfigError;

/// One trusted origin, as Better Auth's `trustedOrigins` reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    /// `https://app.example.com` (lower-cased, no trailing slash, no default port).
    Exact(String),
    /// A pattern with `*` (any run of characters) or `?` (any one character), matched against
    /// the whole origin when it has a scheme (`https://*.example.com`,
    /// `https://my-app-*.vercel.app`, `http://localhost:*`), else against the host and port
    /// (`*.example.com`). A host pattern of digits, dots and wildcards (`192.168.*.*`) only
    /// matches IPv4 addresses (`ipv4_only`).
    Glob {
        /// The pattern, lower-cased, as characters for [`glob`].
        pattern: Vec<char>,
        with_scheme: bool,
        ipv4_only: bool,
    },
}

impl Pattern {
    /// One entry of `trusted_origins`.
    fn parse(entry: &str) -> Result<Self, ConfigError> {
        let t = entry.trim().trim_end_matches('/');
        let invalid = || ConfigError::Invalid {
            option: "trusted_origins",
            reason: format!(
                "{t:?} is neither an origin like https://app.example.com nor a pattern like \
                 *.example.com or https://*.example.com"
            ),
        };
        if t.contains(['*', '?']) {
            let with_scheme = t.contains("://");
            let host = t.split_once("://").map_or(t, |(_, rest)| rest);
            if host.is_empty() || host.contains('/') || host.trim_matches('*').is_empty() {
                return Err(invalid());
            }
            let pattern_host = host.split(':').next().unwrap_or_default();
            Ok(Self::Glob {
                pattern: t.to_ascii_lowercase().chars().collect(),
                with_scheme,
                ipv4_only: ipv4_pattern(pattern_host),
            })
        } else {
            if !t.contains("://") {
                return Err(invalid());
            }
            Ok(Self::Exact(origin_of(t).ok_or_else(invalid)?))
        }
    }
}

/// Whether `entry` of Better Auth's `trustedOrigins` is one the origin check can match a
/// browser's `Origin` against: an `http(s)` origin or a host pattern. Better Auth also takes
/// entries that only its redirect checks use (an app's scheme, `myapp://`; a pattern with a
/// path, `exp://192.168.*.*:*/**`), which no `Origin` header carries.
pub(crate) fn usable(entry: &str) -> bool {
    let scheme = entry.trim().split_once("://").map(|(scheme, _)| scheme);
    scheme.is_none_or(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
        && Pattern::parse(entry).is_ok()
}

/// What the layer checks before any store call.
#[derive(Clone, Debug, Default)]
pub(crate) struct OriginCheck {
    enabled: bool,
    patterns: Vec<Pattern>,
    /// Exempt paths, without trailing slashes: each matches itself and what lies below it.
    exempt: Vec<String>,
}

/// `scheme`, `host`, `port` of an origin string such as `https://a.example.com:8443` or
/// `http://[::1]:3000`.
fn split_origin(origin: &str) -> Option<(&str, &str, Option<&str>)> {
    let (scheme, rest) = origin.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains(['@', '\\']) {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        match rest.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if rest.is_empty() => (host, None),
            None => return None,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = port.filter(|p| !p.is_empty());
    if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    (!host.is_empty()).then_some((scheme, host, port))
}

/// The origin (`scheme://host[:port]`, lower-cased, without the scheme's default port, as
/// JavaScript's `URL.origin` writes it) of a URL, or `None`.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, host, port) = split_origin(url.trim())?;
    let scheme = scheme.to_ascii_lowercase();
    let mut out = format!("{scheme}://{}", host.to_ascii_lowercase());
    let default = match scheme.as_str() {
        "https" => Some("443"),
        "http" => Some("80"),
        _ => None,
    };
    if let Some(port) = port.filter(|&p| Some(p) != default) {
        out.push(':');
        out.push_str(port);
    }
    Some(out)
}

/// Whether `text` matches the glob `pattern` (`*` any run, `?` any one character, `\` escapes
/// the next one), as Better Auth's `wildcardMatch` without a separator.
fn glob(pattern: &[char], text: &[char]) -> bool {
    // Iterative, with one backtracking point: linear for patterns of one `*` run at a time.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some('?') => {
                p += 1;
                t += 1;
            }
            Some('\\') if pattern.get(p + 1) == Some(&text[t]) => {
                p += 2;
                t += 1;
            }
            Some(&c) if c != '\\' && c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether the host part of a host pattern is an IPv4 wildcard (`192.168.*.*`).
fn ipv4_pattern(host: &str) -> bool {
    host.contains(['*', '?'])
        && host
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'*' | b'?'))
}

impl OriginCheck {
    /// `base_url` (Better Auth's `baseURL`) is trusted as well, as Better Auth always trusts
    /// its own origin.
    pub(crate) fn new(
        trusted: &[String],
        base_url: Option<&str>,
        enabled: bool,
        exempt: Vec<String>,
    ) -> Result<Self, ConfigError> {
        let mut patterns = Vec::with_capacity(trusted.len() + 1);
        // Read only for the check: a base URL that only decides `Secure` stays as lenient as
        // it always was.
        if let Some(base) = base_url.filter(|_| enabled) {
            let origin = origin_of(base).ok_or_else(|| ConfigError::Invalid {
                option: "base_url",
                reason: format!(
                    "{base:?} is not a URL like https://app.example.com (the origin check trusts \
                     its origin)"
                ),
            })?;
            patterns.push(Pattern::Exact(origin));
        }
        for t in trusted {
            patterns.push(Pattern::parse(t)?);
        }
        if enabled && patterns.is_empty() {
            return Err(ConfigError::Invalid {
                option: "origin_check",
                reason: "the origin check is on but no trusted origin is configured; add trusted_origins".to_owned(),
            });
        }
        let exempt = exempt
            .into_iter()
            .map(|p| p.trim_end_matches('/').to_owned())
            .collect();
        Ok(Self {
            enabled,
            patterns,
            exempt,
        })
    }

    fn trusts(&self, origin: &str) -> bool {
        let Some(normalized) = origin_of(origin) else {
            return false;
        };
        let Some((_, host, port)) = split_origin(&normalized) else {
            return false;
        };
        let authority = match port {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        self.patterns.iter().any(|p| match p {
            Pattern::Exact(o) => *o == normalized,
            Pattern::Glob {
                pattern,
                with_scheme,
                ipv4_only,
            } => {
                let text = if *with_scheme {
                    &normalized
                } else {
                    &authority
                };
                glob(pattern, &text.chars().collect::<Vec<_>>())
                    && (!ipv4_only || host.parse::<std::net::Ipv4Addr>().is_ok())
            }
        })
    }

    /// Whether the request's own origin is trusted: `Host` (else the URI's authority) with the
    /// URI's scheme, or with `https` or `http` when the URI has none (Better Auth's Node
    /// adapter knows the connection's scheme, or reads `X-Forwarded-Proto`; the layer does not
    /// see the connection, and the host is what a page cannot choose).
    fn trusts_own_origin(&self, uri: &Uri, headers: &HeaderMap) -> bool {
        let host = match headers.get(HOST) {
            Some(value) => value.to_str().ok(),
            None => uri.authority().map(http::uri::Authority::as_str),
        };
        let Some(host) = host.map(str::trim).filter(|h| !h.is_empty()) else {
            return false;
        };
        match uri.scheme_str() {
            Some(scheme) => self.trusts(&format!("{scheme}://{host}")),
            None => ["https", "http"]
                .iter()
                .any(|scheme| self.trusts(&format!("{scheme}://{host}"))),
        }
    }

    /// Whether `path` is exempt: an exempt path itself or anything below it.
    fn exempt(&self, path: &str) -> bool {
        self.exempt.iter().any(|prefix| {
            path.strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    /// Whether a request must be refused: a state-changing method, carrying the session
    /// cookie, not exempt, and not from a trusted origin. Never touches the store.
    ///
    /// As Better Auth: `Origin`, else (absent or empty) `Referer`. `Origin: null` with
    /// `Sec-Fetch-Site: same-origin` (a same-origin request from a page with
    /// `Referrer-Policy: no-referrer`) stands for the request's own origin, which must be
    /// trusted: as Better Auth, it is rebuilt from the `Host` header (or, over HTTP/2, the
    /// URI's authority) with the URI's scheme, or either of `https` and `http` when the URI has
    /// none (a forwarded host is not read). Unlike Better Auth, a request with neither header
    /// is refused only when Fetch Metadata says it is cross-site (non-browser clients send
    /// neither). An `Origin` that is not text, or given twice, is refused.
    pub(crate) fn refuses(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        if !self.enabled || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return false;
        }
        if self.exempt(uri.path()) {
            return false;
        }
        let fetch_site = headers
            .get(http::HeaderName::from_static("sec-fetch-site"))
            .and_then(|v| v.to_str().ok());
        let mut origins = headers.get_all(ORIGIN).iter();
        let origin = match (origins.next(), origins.next()) {
            (Some(_), Some(_)) => return true,
            (Some(value), None) => match value.to_str() {
                Ok(text) if !text.trim().is_empty() => Some(text.trim()),
                Ok(_) => None,
                Err(_) => return true,
            },
            (None, _) => None,
        };
        let referer = headers
            .get(REFERER)
            .and_then(|v| v.to_str().ok())
            .filter(|r| !r.trim().is_empty());
        match (origin, referer) {
            (Some("null"), _) => {
                !(fetch_site.is_some_and(|s| s.eq_ignore_ascii_case("same-origin"))
                    && self.trusts_own_origin(uri, headers))
            }
            (Some(origin), _) => !self.trusts(origin),
            (None, Some(referer)) => !self.trusts(referer),
            // Neither header: not a browser's cross-site request unless Fetch Metadata says so.
            (None, None) => fetch_site.is_some_and(|site| site.eq_ignore_ascii_case("cross-site")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(trusted: &[&str]) -> OriginCheck {
        let trusted: Vec<String> = trusted.iter().map(|s| s.to_string()).collect();
        OriginCheck::new(&trusted, None, true, vec!["/webhooks/".into()]).unwrap()
    }

    fn post(headers: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn exact_and_wildcard_origins() {
        let c = check(&[
            "https://app.example.com",
            "*.example.org",
            "https://*.example.net:8443",
        ]);
        assert!(c.trusts("https://app.example.com"));
        assert!(c.trusts("HTTPS://App.Example.com"));
        assert!(c.trusts("https://app.example.com:443"), "the default port");
        assert!(!c.trusts("http://app.example.com"));
        assert!(!c.trusts("https://app.example.com:444"));
        assert!(!c.trusts("https://app.example.com.evil.test"));
        assert!(c.trusts("https://a.example.org"));
        assert!(c.trusts("http://a.b.example.org"));
        assert!(!c.trusts("https://example.org"));
        assert!(!c.trusts("https://evilexample.org"));
        assert!(!c.trusts("https://example.org.evil.test"));
        assert!(c.trusts("https://x.example.net:8443"));
        assert!(!c.trusts("https://x.example.net"));
        assert!(!c.trusts("https://evil.com\\.example.org"));
        assert!(!c.trusts("null"));
        assert!(!c.trusts(""));
    }

    /// Better Auth's `trustedOrigins` patterns: `*` and `?` anywhere, IPv6 hosts, IPv4
    /// wildcards that only match addresses.
    #[test]
    fn patterns_as_better_auth_reads_them() {
        let c = check(&[
            "https://my-app-*.vercel.app",
            "http://localhost:*",
            "http://[::1]:3000",
            "192.168.*.*",
            "https://app?.example.com",
        ]);
        assert!(c.trusts("https://my-app-git-main.vercel.app"));
        assert!(!c.trusts("https://other-app.vercel.app"));
        assert!(c.trusts("http://localhost:5173"));
        assert!(!c.trusts("https://localhost:5173"));
        assert!(c.trusts("http://[::1]:3000"));
        assert!(!c.trusts("http://[::1]:3001"));
        assert!(c.trusts("http://192.168.1.20"));
        assert!(!c.trusts("http://192.168.evil.com"));
        assert!(c.trusts("https://app2.example.com"));
        assert!(!c.trusts("https://app22.example.com"));
        assert!(glob(
            &['a', '*', 'b', '*', 'c'],
            &"axxbyyc".chars().collect::<Vec<_>>()
        ));
        assert!(!glob(
            &['a', '*', 'b'],
            &"axxbc".chars().collect::<Vec<_>>()
        ));
    }

    #[test]
    fn the_base_urls_origin_is_trusted() {
        let c =
            OriginCheck::new(&[], Some("https://App.example.com/api/auth"), true, vec![]).unwrap();
        assert!(c.trusts("https://app.example.com"));
        assert!(!c.trusts("https://other.example.com"));
    }

    #[test]
    fn what_a_request_carries() {
        let c = check(&["https://app.example.com"]);
        let uri = Uri::from_static("/x");
        let refuses = |headers: &[(&str, &[u8])]| c.refuses(&Method::POST, &uri, &post(headers));
        assert!(!refuses(&[("origin", b"https://app.example.com")]));
        assert!(refuses(&[("origin", b"https://evil.example.com")]));
        // `Origin: null` from the page's own origin (Referrer-Policy: no-referrer): that
        // origin, from `Host`, must be trusted.
        assert!(!refuses(&[
            ("origin", b"null"),
            ("sec-fetch-site", b"same-origin"),
            ("host", b"app.example.com"),
        ]));
        assert!(refuses(&[
            ("origin", b"null"),
            ("sec-fetch-site", b"same-origin"),
            ("host", b"evil.example.com"),
        ]));
        assert!(refuses(&[
            ("origin", b"null"),
            ("sec-fetch-site", b"same-origin")
        ]));
        assert!(refuses(&[
            ("origin", b"null"),
            ("sec-fetch-site", b"cross-site"),
            ("host", b"app.example.com"),
        ]));
        // Over HTTP/2 the authority is the URI's, and its scheme counts.
        let h2 = |uri: &'static str| {
            c.refuses(
                &Method::POST,
                &Uri::from_static(uri),
                &post(&[("origin", b"null"), ("sec-fetch-site", b"same-origin")]),
            )
        };
        assert!(!h2("https://app.example.com/x"));
        assert!(h2("http://app.example.com/x"));
        assert!(h2("https://evil.example.com/x"));
        assert!(refuses(&[("origin", b"null")]));
        // An empty Origin falls back to the Referer.
        assert!(!refuses(&[
            ("origin", b""),
            ("referer", b"https://app.example.com/page")
        ]));
        // Not text, or twice: refused rather than taken as absent.
        assert!(refuses(&[("origin", b"https://app.example.com\xff")]));
        assert!(refuses(&[
            ("origin", b"https://app.example.com"),
            ("origin", b"https://app.example.com")
        ]));
        assert!(!refuses(&[]));
        assert!(refuses(&[("sec-fetch-site", b"cross-site")]));
    }

    #[test]
    fn exempt_paths_are_a_path_and_what_lies_below() {
        let c = check(&["https://app.example.com"]);
        let evil = post(&[("origin", b"https://evil.example.com")]);
        let refuses = |path: &'static str| c.refuses(&Method::POST, &Uri::from_static(path), &evil);
        assert!(!refuses("/webhooks"));
        assert!(!refuses("/webhooks/stripe"));
        assert!(refuses("/webhooks-settings/delete"));
    }

    #[test]
    fn bad_patterns_are_config_errors() {
        for bad in [
            "app.example.com",
            "https://",
            "*",
            "https://*",
            "https://*/path",
        ] {
            assert!(
                OriginCheck::new(&[bad.to_string()], None, true, vec![]).is_err(),
                "{bad}"
            );
        }
        assert!(OriginCheck::new(&[], None, true, vec![]).is_err());
        assert!(OriginCheck::new(&[], Some("not a url"), true, vec![]).is_err());
        assert!(OriginCheck::new(&[], Some("not a url"), false, vec![]).is_ok());
    }
}
