//! Cookie-cache settings, Better Auth's `session.cookieCache` (spec §6).

use time::Duration;

use crate::error::ConfigError;

/// How the cache cookie is encoded, Better Auth's `session.cookieCache.strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieCacheStrategy {
    /// base64url JSON with an HMAC-SHA256 signature: Better Auth's default.
    Compact,
    /// A JWT signed HS256 with the secret.
    Jwt,
    /// Encrypted JWE (`dir` + `A256CBC-HS512`): **not supported**; configuring it is a start-up
    /// error rather than a silent miss.
    Jwe,
}

impl CookieCacheStrategy {
    /// Better Auth's name for it: `compact`, `jwt` or `jwe`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compact => "compact",
            Self::Jwt => "jwt",
            Self::Jwe => "jwe",
        }
    }
}

/// Cookie-cache settings.
///
/// # The revocation trade-off
///
/// A valid cache cookie is trusted **without reading the store**, so a session revoked or
/// deleted elsewhere keeps working on this service until the cache cookie expires (`max_age`,
/// 5 minutes by default), exactly as in Better Auth (its issue #6893). Keep `max_age` short,
/// and force an authoritative read on sensitive routes with
/// [`SessionConfigBuilder::authoritative_for`](crate::SessionConfigBuilder::authoritative_for),
/// as Better Auth's `sensitiveSessionMiddleware` does. Without a cache the layer reads the store
/// on every request, which is always correct.
///
/// ```
/// use time::Duration;
/// use tower_auth_session::{CookieCache, SessionConfig};
///
/// let config = SessionConfig::builder()
///     .secret("a-private-secret-of-at-least-32-bytes!!")
///     .cookie_cache(CookieCache::compact().max_age(Duration::minutes(2)))
///     .authoritative_for("/account")
///     .build()
///     .unwrap();
/// # let _ = config;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct CookieCache {
    pub(crate) strategy: CookieCacheStrategy,
    pub(crate) max_age: Duration,
    pub(crate) version: String,
}

impl CookieCache {
    /// The `compact` strategy with Better Auth's defaults (`maxAge` 300 s, version `"1"`).
    pub fn compact() -> Self {
        Self::with_strategy(CookieCacheStrategy::Compact)
    }

    /// The `jwt` strategy with Better Auth's defaults.
    pub fn jwt() -> Self {
        Self::with_strategy(CookieCacheStrategy::Jwt)
    }

    /// Any strategy (`Jwe` is refused when the configuration is built).
    pub fn with_strategy(strategy: CookieCacheStrategy) -> Self {
        Self {
            strategy,
            max_age: Duration::seconds(300),
            version: "1".to_owned(),
        }
    }

    /// How long a cache cookie is trusted, Better Auth's `cookieCache.maxAge`. Default: 5
    /// minutes.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The cache version, Better Auth's `cookieCache.version`: bump it to invalidate every
    /// cache cookie at once. An empty version is `"1"`, as Better Auth reads it. Default:
    /// `"1"`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        if self.version.is_empty() {
            self.version = "1".to_owned();
        }
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.strategy == CookieCacheStrategy::Jwe {
            return Err(ConfigError::Invalid {
                option: "cookie_cache",
                reason: "the \"jwe\" strategy is not supported (its cookies would silently never \
                         match); set Better Auth's session.cookieCache.strategy to \"compact\" or \
                         \"jwt\", or leave the cache off here (the layer then reads the store on \
                         every request, which is always correct)"
                    .to_owned(),
            });
        }
        if self.max_age <= Duration::ZERO || self.max_age > super::MAX_COOKIE_AGE {
            return Err(ConfigError::Invalid {
                option: "cookie_cache.max_age",
                reason: format!("{} is not between 1 second and 400 days", self.max_age),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Better Auth sets no version for an empty one and reads a missing version as `"1"`.
    #[test]
    fn an_empty_version_is_one() {
        assert_eq!(CookieCache::compact().version("").version, "1");
        assert_eq!(CookieCache::compact().version("2").version, "2");
    }
}
