//! Verifying Better Auth `jwt()` plugin tokens (feature `jwt`), the usual credential of
//! non-browser callers: `Authorization: Bearer <jwt>` with the token from Better Auth's
//! `/api/auth/token` (or its `set-auth-jwt` header).
//!
//! With [`SessionConfigBuilder::jwt`](crate::SessionConfigBuilder::jwt), the layer verifies
//! such tokens itself: the signature with the key the `kid` names (from a JWKS URL, the `jwks`
//! table of the store's database, or keys given in code), pinned to that key's algorithm
//! (EdDSA, ES256, ES512, RS256 or PS256; `none` and HMAC never), then `exp` and `nbf` with a
//! small leeway, `iss` and `aud` (Better Auth's base URL), and `sub`. A verified token signs the
//! request in as the user the token carries: [`CurrentUser`](crate::extract::CurrentUser) and
//! [`MaybeUser`](crate::extract::MaybeUser) see it; there is no session row, so
//! [`CurrentSession`](crate::extract::CurrentSession) does not. Anything else (malformed,
//! expired, wrongly signed, an unknown `kid`, `alg: none`) is anonymous, never a 5xx.
//!
//! The payload must be Better Auth's default, the session user (`id`, `name`, `email`,
//! `emailVerified`, `createdAt`, `updatedAt`, plugin fields), since that user is what the
//! request signs in as: a token from a `jwt({ jwt: { definePayload } })` that leaves some of
//! those out is refused (logged at debug level with the reason `payload`), even though Better
//! Auth's own `verifyJWT` accepts it. Keep the default payload, or spread the user into yours
//! (`definePayload: ({ user }) => ({ ...user, role: user.role })`).
//!
//! # The trade-off
//!
//! A JWT is checked without the store: it stays valid until it expires (Better Auth's default
//! is 15 minutes), after the user signs out, is banned or has every session revoked. Keep the
//! expiry short, and use the session cookie (or the session bearer token) where a revocation
//! must take effect at once.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tower_auth_session::jwt::{JwksUrl, JwtVerifier};
//! use tower_auth_session::SessionConfig;
//!
//! let keys = JwksUrl::new("https://app.example.com/api/auth/jwks", Duration::from_secs(5))?;
//! let config = SessionConfig::builder()
//!     .secret("a-private-secret-of-at-least-32-bytes!!")
//!     .jwt(JwtVerifier::builder("https://app.example.com").keys(keys).build()?)
//!     .build()?;
//! # let _ = config; Ok(()) }
//! ```

mod jwk;
mod keys;
mod token;

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

pub use jwk::{Algorithm, Jwk, JwkError, JwkSet};
pub use keys::{BoxFuture, JwksUrl, KeySource};
pub use token::Claims;

use crate::error::ConfigError;
use crate::model::User;
use keys::{Cached, KeyCache};
use token::{Expect, Reject};

/// A verified token: the user it carries and its claims.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct JwtAuth {
    /// The user, read from the token's payload (Better Auth puts the whole session user there).
    pub user: Arc<User>,
    /// The token's claims, the whole payload included.
    pub claims: Arc<Claims>,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the JWT was refused: {reason}")]
pub struct JwtError {
    reason: &'static str,
}

impl JwtError {
    /// A short reason: `malformed`, `algorithm`, `unknown_kid`, `bad_signature`, `expired`,
    /// `not_yet_valid`, `issuer`, `audience`, `subject` or `payload`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl From<Reject> for JwtError {
    fn from(reject: Reject) -> Self {
        Self {
            reason: reject.as_str(),
        }
    }
}

/// Verifies Better Auth `jwt()` tokens. Cheap to clone (the key cache is shared).
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: String,
    leeway: time::Duration,
    algorithms: Vec<Algorithm>,
    keys: KeyCache,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("algorithms", &self.inner.algorithms)
            .finish_non_exhaustive()
    }
}

/// Builds a [`JwtVerifier`]; see [`JwtVerifier::builder`].
#[must_use]
pub struct JwtVerifierBuilder {
    issuer: String,
    audience: String,
    leeway: time::Duration,
    algorithms: Vec<Algorithm>,
    source: Option<Box<dyn KeySource>>,
    cooldown: Duration,
    max_age: Duration,
}

impl std::fmt::Debug for JwtVerifierBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifierBuilder")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl JwtVerifierBuilder {
    /// The exact `iss` a token must carry, as given. Default: the origin of the base URL given
    /// to [`JwtVerifier::builder`] (Better Auth's `jwt.issuer` default).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The audience `aud` must be (or contain), as given. Default: the origin of the base URL
    /// (Better Auth's `jwt.audience` default).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Clock tolerance for `exp` and `nbf`. Default: 5 seconds (Better Auth's own verifier
    /// uses none; a little absorbs clock skew between hosts).
    pub fn leeway(mut self, leeway: time::Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The algorithms accepted. Default: all five Better Auth can sign with
    /// ([`Algorithm::ALL`]); each key is still pinned to its own.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Where the keys come from: a [`JwksUrl`], the store's `jwks` table
    /// ([`SqlStore::jwks`](crate::store::SqlStore::jwks)), or a fixed [`JwkSet`]. Required.
    pub fn keys(mut self, source: impl KeySource) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The shortest interval between two key fetches, however many tokens name an unknown
    /// `kid`. Default: 30 seconds.
    pub fn key_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// How long a fetched key set is used before it is fetched again: in the background, on
    /// the next token, subject to the cool-down; the old set answers meanwhile and if the fetch
    /// fails (a key Better Auth removed keeps verifying until the new set has arrived).
    /// Default: 10 minutes.
    pub fn key_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Builds the verifier. Keys are fetched on the first token, not here.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] without a key source, without algorithms, or with an empty
    /// issuer or audience.
    pub fn build(self) -> Result<JwtVerifier, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            option: "jwt",
            reason: reason.to_owned(),
        };
        let source = self.source.ok_or_else(|| {
            invalid("no key source: give .keys(JwksUrl::new(\"<baseURL>/api/auth/jwks\", …)) or the store's jwks table")
        })?;
        if self.algorithms.is_empty() {
            return Err(invalid("no algorithm is accepted"));
        }
        if self.issuer.is_empty() || self.audience.is_empty() {
            return Err(invalid(
                "the issuer and audience must be Better Auth's base URL (or its jwt.issuer / jwt.audience)",
            ));
        }
        Ok(JwtVerifier {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                audience: self.audience,
                leeway: self.leeway,
                algorithms: self.algorithms,
                keys: KeyCache::new(source, self.cooldown, self.max_age),
            }),
        })
    }
}

/// The origin of `base_url` as JavaScript's `new URL(base_url).origin` writes it, which is
/// what Better Auth signs as `iss` and `aud`; `base_url` itself when it has no such origin.
fn origin(base_url: String) -> String {
    match url::Url::parse(&base_url).map(|u| u.origin()) {
        Ok(origin @ url::Origin::Tuple(..)) => origin.ascii_serialization(),
        _ => base_url,
    }
}

/// What [`JwtVerifier::verify_now`] could decide without waiting.
pub(crate) enum Now {
    /// Decided.
    Done(Result<JwtAuth, JwtError>),
    /// The keys must be fetched first ([`JwtVerifier::verify`]).
    Fetch,
}

impl JwtVerifier {
    /// A builder for tokens from the Better Auth server at `base_url` (its `baseURL` option or
    /// `BETTER_AUTH_URL`, e.g. `https://app.example.com/api/auth`). Better Auth keeps only the
    /// URL's origin (scheme, lower-case host, port unless the scheme's default) and signs it as
    /// the default issuer and audience, so the builder does the same:
    /// `https://App.Example.com:443/api/auth/` expects `https://app.example.com`. A value that
    /// is not a URL is taken as it is.
    pub fn builder(base_url: impl Into<String>) -> JwtVerifierBuilder {
        let base_url = origin(base_url.into());
        JwtVerifierBuilder {
            issuer: base_url.clone(),
            audience: base_url,
            leeway: time::Duration::seconds(5),
            algorithms: Algorithm::ALL.to_vec(),
            source: None,
            cooldown: Duration::from_secs(30),
            max_age: Duration::from_secs(600),
        }
    }

    /// Verifies `token` at `now`, fetching the keys when needed (within the cool-down).
    ///
    /// # Errors
    ///
    /// [`JwtError`] naming why the token was refused.
    pub async fn verify(&self, token: &str, now: OffsetDateTime) -> Result<JwtAuth, JwtError> {
        let parsed = token::parse(token)?;
        let loaded = match self.inner.keys.get(&parsed.kid) {
            Cached::Key(loaded) => loaded,
            Cached::Unknown => return Err(Reject::UnknownKey.into()),
            Cached::Fetch => self
                .inner
                .keys
                .refresh(&parsed.kid)
                .await
                .ok_or(Reject::UnknownKey)?,
        };
        let key = loaded.key(&parsed.kid).ok_or(Reject::UnknownKey)?;
        self.check(parsed, key, now)
    }

    /// Verifies `token` if its key is already held; [`Now::Fetch`] when it must be fetched.
    pub(crate) fn verify_now(&self, token: &str, now: OffsetDateTime) -> Now {
        let parsed = match token::parse(token) {
            Ok(parsed) => parsed,
            Err(reject) => return Now::Done(Err(reject.into())),
        };
        match self.inner.keys.get(&parsed.kid) {
            Cached::Key(loaded) => Now::Done(match loaded.key(&parsed.kid) {
                Some(key) => self.check(parsed, key, now),
                None => Err(Reject::UnknownKey.into()),
            }),
            Cached::Unknown => Now::Done(Err(Reject::UnknownKey.into())),
            Cached::Fetch => Now::Fetch,
        }
    }

    /// How many times the keys were fetched.
    pub fn key_fetches(&self) -> u64 {
        self.inner.keys.fetches()
    }

    fn check(
        &self,
        parsed: token::Parsed<'_>,
        key: &Jwk,
        now: OffsetDateTime,
    ) -> Result<JwtAuth, JwtError> {
        let inner = &*self.inner;
        let claims = token::check(
            parsed,
            key,
            &Expect {
                issuer: &inner.issuer,
                audience: &inner.audience,
                leeway: inner.leeway,
                now,
                algorithms: &inner.algorithms,
            },
        )?;
        let user = user_of(&claims).ok_or(JwtError { reason: "payload" })?;
        Ok(JwtAuth {
            user: Arc::new(user),
            claims: Arc::new(claims),
        })
    }
}

/// The user in a token's payload: Better Auth's default payload is the session user plus the
/// registered claims. `None` for a payload without one (a custom `definePayload`).
fn user_of(claims: &Claims) -> Option<User> {
    const REGISTERED: [&str; 7] = ["iat", "exp", "nbf", "iss", "aud", "sub", "jti"];
    let mut fields = claims.payload().clone();
    for name in REGISTERED {
        fields.remove(name);
    }
    serde_json::from_value(serde_json::Value::Object(fields)).ok()
}

#[cfg(test)]
mod tests {
    use super::origin;

    /// As JavaScript's `new URL(…).origin`, which Better Auth's `baseURL` goes through.
    #[test]
    fn the_origin_is_javascripts() {
        for (given, origin_) in [
            ("https://app.example.com", "https://app.example.com"),
            (
                "https://App.Example.com:443/api/auth/",
                "https://app.example.com",
            ),
            ("http://localhost:3000/", "http://localhost:3000"),
            ("http://localhost:80", "http://localhost"),
            ("https://[::1]:8443/x?y#z", "https://[::1]:8443"),
            ("https://bücher.example", "https://xn--bcher-kva.example"),
            ("not a url", "not a url"),
            ("file:///tmp/x", "file:///tmp/x"),
        ] {
            assert_eq!(origin(given.to_owned()), origin_, "{given}");
        }
    }
}
