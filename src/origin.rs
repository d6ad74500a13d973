//! The origin check for cookie-authenticated writes (CSRF), as Better Auth's `trustedOrigins`.

use http::header::{ORIGIN, REFERER};
use http::{HeaderMap, Method};

use crate::error::ConfigError;

/// One trusted origin: an exact `scheme://host[:port]`, or a wildcard host.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    /// `https://app.example.com` (lower-cased, no trailing slash).
    Exact(String),
    /// `*.example.com`, optionally with a scheme and a port: matches hosts that end in
    /// `.example.com` and have at least one more label.
    Wildcard {
        scheme: Option<String>,
        suffix: String,
        port: Option<String>,
    },
}

/// What the layer checks before any store call.
#[derive(Clone, Debug, Default)]
pub(crate) struct OriginCheck {
    enabled: bool,
    patterns: Vec<Pattern>,
    exempt: Vec<String>,
}

/// `scheme`, `host`, `port` of an origin string such as `https://a.example.com:8443`.
fn split_origin(origin: &str) -> Option<(&str, &str, Option<&str>)> {
    let (scheme, rest) = origin.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p))
            if !h.ends_with(']') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (h, Some(p))
        }
        Some((h, p)) if h.ends_with(']') || p.is_empty() => (authority, None),
        Some(_) => return None,
        None => (authority, None),
    };
    (!host.is_empty()).then_some((scheme, host, port))
}

/// The origin (`scheme://host[:port]`, lower-cased) of a URL, or `None`.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, host, port) = split_origin(url.trim())?;
    let mut out = format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    );
    if let Some(port) = port {
        out.push(':');
        out.push_str(port);
    }
    Some(out)
}

impl OriginCheck {
    pub(crate) fn new(
        trusted: &[String],
        enabled: bool,
        exempt: Vec<String>,
    ) -> Result<Self, ConfigError> {
        let mut patterns = Vec::with_capacity(trusted.len());
        for t in trusted {
            let t = t.trim().trim_end_matches('/');
            let invalid = || {
                ConfigError::Invalid {
                option: "trusted_origins",
                reason: format!(
                    "{t:?} is neither an origin like https://app.example.com nor a pattern like *.example.com"
                ),
            }
            };
            let (scheme, rest) = match t.split_once("://") {
                Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
                None => (None, t),
            };
            if let Some(suffix) = rest.strip_prefix("*.") {
                let (suffix, port) = match suffix.rsplit_once(':') {
                    Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => {
                        (h, Some(p.to_owned()))
                    }
                    _ => (suffix, None),
                };
                if suffix.is_empty() || suffix.contains(['*', '/']) {
                    return Err(invalid());
                }
                patterns.push(Pattern::Wildcard {
                    scheme,
                    suffix: format!(".{}", suffix.to_ascii_lowercase()),
                    port,
                });
            } else {
                scheme.as_ref().ok_or_else(invalid)?;
                patterns.push(Pattern::Exact(origin_of(t).ok_or_else(invalid)?));
            }
        }
        if enabled && patterns.is_empty() {
            return Err(ConfigError::Invalid {
                option: "origin_check",
                reason: "the origin check is on but no trusted origin is configured; add trusted_origins".to_owned(),
            });
        }
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
        let Some((scheme, host, port)) = split_origin(&normalized) else {
            return false;
        };
        self.patterns.iter().any(|p| match p {
            Pattern::Exact(o) => *o == normalized,
            Pattern::Wildcard {
                scheme: s,
                suffix,
                port: pp,
            } => {
                s.as_deref().is_none_or(|s| s == scheme)
                    && host.len() > suffix.len()
                    && host.ends_with(suffix.as_str())
                    && pp.as_deref() == port
            }
        })
    }

    /// Whether a request must be refused: a state-changing method, carrying the session
    /// cookie, not exempt, and not from a trusted origin. Never touches the store.
    pub(crate) fn refuses(&self, method: &Method, path: &str, headers: &HeaderMap) -> bool {
        if !self.enabled || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return false;
        }
        if self
            .exempt
            .iter()
            .any(|prefix| path.starts_with(prefix.as_str()))
        {
            return false;
        }
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        match (header(ORIGIN), header(REFERER)) {
            (Some(origin), _) => !self.trusts(origin),
            (None, Some(referer)) => !self.trusts(referer),
            // Neither header: not a browser's cross-site request unless Fetch Metadata says so.
            (None, None) => header(http::HeaderName::from_static("sec-fetch-site"))
                .is_some_and(|site| site.eq_ignore_ascii_case("cross-site")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(trusted: &[&str]) -> OriginCheck {
        let trusted: Vec<String> = trusted.iter().map(|s| s.to_string()).collect();
        OriginCheck::new(&trusted, true, vec!["/webhooks/".into()]).unwrap()
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
        assert!(!c.trusts("null"));
        assert!(!c.trusts(""));
    }

    #[test]
    fn bad_patterns_are_config_errors() {
        for bad in ["app.example.com", "https://", "*.", "https://*.*.x"] {
            assert!(
                OriginCheck::new(&[bad.to_string()], true, vec![]).is_err(),
                "{bad}"
            );
        }
        assert!(OriginCheck::new(&[], true, vec![]).is_err());
    }
}
