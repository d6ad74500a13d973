//! Configuration: one flat builder for users, with Better Auth's defaults (spec §1, §2.1, §2.2),
//! validated into typed parts that each consumer takes on its own:
//!
//! | part | what it holds | read by |
//! |---|---|---|
//! | [`Keys`] (`keys.rs`) | the signer, previous secrets, hashing at rest | credentials, sign-in, rendering |
//! | [`Cookies`] (`cookies.rs`) | cookie names and attributes | credentials, rendering |
//! | [`Lifetimes`] | `expiresIn`, `updateAge`, refresh switch, `freshAge` | the policy, sign-in |
//! | [`Guards`] | bearer mode, origin check, read-only, outage policy, deadlines | credentials, the policy, resolution |
//!
//! The environment is read in `env.rs`.

use std::fmt;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::clock::{Clock, SystemClock};
use crate::codec::Signer;
use crate::error::ConfigError;
use crate::model::StorageKey;

mod cache;
mod cookies;
mod env;
mod keys;

pub use cache::{CookieCache, CookieCacheStrategy};
pub use cookies::SameSite;
pub(crate) use cookies::{chunk_index, CookieSpec, Cookies};
pub(crate) use keys::{sha256_hex, Keys};

/// Better Auth's published development secret. Anyone can forge cookies with it, so this crate
/// refuses it.
pub const BETTER_AUTH_DEFAULT_SECRET: &str = "better-auth-secret-12345678901234567890";

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// The largest `Max-Age` a browser honours (400 days), which Better Auth also enforces.
pub const MAX_COOKIE_AGE: Duration = Duration::seconds(34_560_000);

/// The default deadline for one store call made while serving a request.
pub const DEFAULT_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a "don't remember me" session lasts, whatever `expiresIn` is (Better Auth's
/// `createSession`).
pub(crate) const DONT_REMEMBER_LIFETIME: Duration = Duration::days(1);

/// Whether `Authorization: Bearer` authenticates requests (Better Auth's `bearer()` plugin).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Bearer {
    /// Only the session cookie counts. The default.
    #[default]
    Off,
    /// `Authorization: Bearer <token>.<signature>` is accepted, with the same HMAC check as the
    /// cookie. When a request carries both, a bearer that verifies decides, as in Better Auth's
    /// plugin (a bad cookie never blocks a good bearer); one that does not verify is ignored and
    /// the cookie decides. Sign-ins and refreshes answer with `set-auth-token`.
    Signed,
    /// Like [`Signed`](Self::Signed), and a raw, unsigned `Bearer <token>` is accepted too, as
    /// Better Auth's bearer plugin does by default. **Risk:** anyone who reads the session table
    /// (a backup, a replica, a SQL injection elsewhere) gets working credentials; signed values
    /// also need the secret.
    SignedOrRaw,
}

/// What a request with a valid signed credential gets when the store fails or times out.
/// There is deliberately no "treat as authenticated".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OutagePolicy {
    /// `503 Service Unavailable` with `Retry-After` and a generic JSON body (or what
    /// [`SessionLayer::respond_with`](crate::SessionLayer::respond_with) says); no cookie is
    /// cleared and nothing is deleted, so nobody is signed out by an outage. The default.
    #[default]
    FailClosed,
    /// Serve the request as anonymous (again without clearing cookies): public pages keep
    /// working, protected routes answer `401` until the store is back.
    Anonymous,
}

/// Session lifetimes (spec §5).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lifetimes {
    /// `session.expiresIn`.
    pub(crate) expires_in: Duration,
    /// `session.updateAge`.
    pub(crate) update_age: Duration,
    /// `session.disableSessionRefresh`.
    pub(crate) disable_refresh: bool,
    /// `session.freshAge` (zero: always fresh).
    pub(crate) fresh_age: Duration,
}

impl Lifetimes {
    /// The lifetime of a new session: `expiresIn`, or one day for "don't remember me".
    pub(crate) fn of_new_session(&self, remember_me: bool) -> Duration {
        if remember_me {
            self.expires_in
        } else {
            DONT_REMEMBER_LIFETIME
        }
    }
}

/// What guards the request path.
#[derive(Clone, Debug)]
pub(crate) struct Guards {
    pub(crate) bearer: Bearer,
    pub(crate) origins: crate::origin::OriginCheck,
    /// Never write (Better Auth's `deferSessionRefresh`).
    pub(crate) read_only: bool,
    pub(crate) outage: OutagePolicy,
    /// Path prefixes that always read the store, ignoring the cookie cache.
    pub(crate) authoritative: Vec<String>,
    /// The deadline of each store call made while serving a request.
    pub(crate) store_timeout: std::time::Duration,
}

impl Guards {
    /// Whether `path` must read the store even with a valid cookie cache. A prefix's trailing
    /// `/` is not needed to match (`/account/` covers `/account` too); any path that starts
    /// with it matches (a safe excess: a store read).
    pub(crate) fn is_authoritative(&self, path: &str) -> bool {
        !self.authoritative.is_empty()
            && self
                .authoritative
                .iter()
                .any(|p| path.starts_with(p.trim_end_matches('/')))
    }
}

/// Validated session configuration, shared by the layer, its services and the sign-in handle.
///
/// Build one with [`SessionConfig::builder`] or [`SessionConfig::from_env`].
#[derive(Clone)]
pub struct SessionConfig {
    pub(crate) keys: Keys,
    pub(crate) cookies: Cookies,
    pub(crate) lifetimes: Lifetimes,
    pub(crate) guards: Guards,
    pub(crate) cache: Option<CookieCache>,
    pub(crate) ip: crate::client_ip::IpTracking,
    /// Better Auth's `multiSession({ maximumSessions })`, when enabled.
    pub(crate) multi_session: Option<usize>,
    /// Whether a sign-in over an anonymous user's session deletes that user
    /// ([`SessionConfigBuilder::delete_anonymous_users`]).
    pub(crate) delete_anonymous: bool,
    /// Rate-limited warnings about misconfiguration, shared by clones.
    pub(crate) warnings: Arc<crate::warnings::Warnings>,
    /// Better Auth `jwt()` tokens accepted from `Authorization: Bearer`.
    #[cfg(feature = "jwt")]
    pub(crate) jwt: Option<crate::jwt::JwtVerifier>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("secret", &"<redacted>")
            .field("session_cookie", &self.cookies.session.name)
            .field("expires_in", &self.lifetimes.expires_in)
            .field("update_age", &self.lifetimes.update_age)
            .field("disable_refresh", &self.lifetimes.disable_refresh)
            .finish_non_exhaustive()
    }
}

impl SessionConfig {
    /// A builder with Better Auth's defaults, except that the plugin behaviours are off until
    /// turned on. Only the secret must be set.
    ///
    /// ```
    /// use tower_auth_session::SessionConfig;
    ///
    /// let config = SessionConfig::builder()
    ///     .secret("a-private-secret-of-at-least-32-bytes!!")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.session_cookie_name(), "better-auth.session_token");
    ///
    /// let err = SessionConfig::builder().build().unwrap_err();
    /// assert!(err.to_string().contains("BETTER_AUTH_SECRET"));
    /// ```
    pub fn builder() -> SessionConfigBuilder {
        SessionConfigBuilder::default()
    }

    /// Builds a configuration with Better Auth's defaults from the environment, as
    /// [`SessionConfigBuilder::from_env`] reads it.
    ///
    /// # Errors
    ///
    /// Fails when no secret is set, or the secret is weak (see
    /// [`SessionConfigBuilder::build`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::builder().from_env()?.build()
    }

    /// The exact name of the session token cookie, including any `__Secure-` prefix.
    pub fn session_cookie_name(&self) -> &str {
        &self.cookies.session.name
    }

    /// The exact name of the `dont_remember` cookie.
    pub fn dont_remember_cookie_name(&self) -> &str {
        &self.cookies.dont_remember.name
    }

    /// The exact name of the cookie-cache cookie (`session_data`).
    pub fn session_data_cookie_name(&self) -> &str {
        &self.cookies.session_data.name
    }

    /// How long a session lives after its last refresh (`expiresIn`).
    pub fn expires_in(&self) -> Duration {
        self.lifetimes.expires_in
    }

    /// How old the last refresh must be before a request extends the session (`updateAge`).
    pub fn update_age(&self) -> Duration {
        self.lifetimes.update_age
    }

    /// The signer prepared from the current secret.
    pub fn signer(&self) -> &Signer {
        &self.keys.signer
    }

    /// How recently a session must have been created for fresh-session routes (`freshAge`).
    pub fn fresh_age(&self) -> Duration {
        self.lifetimes.fresh_age
    }

    /// Whether the layer runs read-only (never writes).
    pub fn is_read_only(&self) -> bool {
        self.guards.read_only
    }

    /// The bearer-token mode.
    pub fn bearer_mode(&self) -> Bearer {
        self.guards.bearer
    }

    /// The clock the layer reads.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The key the store knows the session of `token` by: the token itself, or its SHA-256
    /// (hex) with [`hash_tokens_at_rest`](SessionConfigBuilder::hash_tokens_at_rest).
    pub fn storage_key<'t>(&self, token: &'t str) -> StorageKey<'t> {
        self.keys.storage_key(token)
    }
}

/// Builds a [`SessionConfig`]. Every setting has Better Auth's default except the secret
/// (required) and the plugin behaviours ([`multi_session`](Self::multi_session),
/// [`delete_anonymous_users`](Self::delete_anonymous_users), `jwt`), which are off until turned on.
#[derive(Clone, Default)]
#[must_use]
pub struct SessionConfigBuilder {
    secret: Option<String>,
    previous_secrets: Vec<(String, Option<OffsetDateTime>)>,
    /// Set by `secure(…)`: always wins.
    secure: Option<bool>,
    /// Set by `base_url(…)`.
    base_url_secure: Option<bool>,
    base_url: Option<String>,
    /// Found in the environment.
    env_secure: Option<bool>,
    cookie_prefix: Option<String>,
    session_cookie_name: Option<String>,
    domain: Option<String>,
    path: Option<String>,
    same_site: SameSite,
    http_only: Option<bool>,
    partitioned: bool,
    expires_in: Option<Duration>,
    update_age: Option<Duration>,
    disable_refresh: bool,
    ip_address_headers: Option<Vec<String>>,
    trusted_proxies: Vec<String>,
    ipv6_subnet: Option<u8>,
    disable_ip_tracking: bool,
    store_timeout: Option<std::time::Duration>,
    bearer: Bearer,
    trusted_origins: Vec<String>,
    origin_check: Option<bool>,
    origin_check_exempt: Vec<String>,
    read_only: bool,
    fresh_age: Option<Duration>,
    cookie_cache: Option<CookieCache>,
    authoritative: Vec<String>,
    outage: OutagePolicy,
    hash_tokens: bool,
    multi_session: Option<usize>,
    delete_anonymous: bool,
    #[cfg(feature = "jwt")]
    jwt: Option<crate::jwt::JwtVerifier>,
    clock: Option<Arc<dyn Clock>>,
}

impl fmt::Debug for SessionConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfigBuilder")
            .finish_non_exhaustive()
    }
}

impl SessionConfigBuilder {
    /// The signing secret, the same value as Better Auth's `secret` / `BETTER_AUTH_SECRET`.
    /// Required: at least 32 bytes, and not Better Auth's public default. No default.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// A previous secret that still verifies cookies, for rotating secrets without logging
    /// everyone out (Better Auth itself rejects cookies signed with an old secret). A cookie
    /// verified with it is re-signed with the current secret on that response. After `until`
    /// (if given) it no longer verifies anything. Default: none.
    pub fn previous_secret(
        mut self,
        secret: impl Into<String>,
        until: Option<OffsetDateTime>,
    ) -> Self {
        self.previous_secrets.push((secret.into(), until));
        self
    }

    /// Applies the environment as Better Auth reads it, everything [`SessionConfig::from_env`]
    /// applies, so that builder options can be added on top:
    ///
    /// * the secret from `BETTER_AUTH_SECRETS` (`version:value,…`, values trimmed: the first is
    ///   current, the others become [`previous_secret`](Self::previous_secret)s, except one
    ///   shorter than 32 bytes or Better Auth's default, which is left out with a warning), else
    ///   `BETTER_AUTH_SECRET`, else `AUTH_SECRET`;
    /// * secure cookies (`__Secure-` names) when the base URL (`BETTER_AUTH_URL`,
    ///   `NEXT_PUBLIC_BETTER_AUTH_URL`, `PUBLIC_BETTER_AUTH_URL`, `NUXT_PUBLIC_BETTER_AUTH_URL`,
    ///   `NUXT_PUBLIC_AUTH_URL`, `BASE_URL`, first set wins) starts with `https://`, or, with no
    ///   base URL, when `NODE_ENV=production`. An explicit [`secure`](Self::secure) or
    ///   [`base_url`](Self::base_url) wins, whatever the order of the calls;
    /// * the trusted origins in `BETTER_AUTH_TRUSTED_ORIGINS`, which turn on the origin check
    ///   ([`trusted_origins_from_env`](Self::trusted_origins_from_env)).
    ///
    /// ```
    /// # std::env::set_var("BETTER_AUTH_SECRET", "a-private-secret-of-at-least-32-bytes!!");
    /// use tower_auth_session::SessionConfig;
    ///
    /// let config = SessionConfig::builder()
    ///     .from_env()?
    ///     .update_age(time::Duration::hours(1))
    ///     .build()?;
    /// # let _ = config;
    /// # Ok::<(), tower_auth_session::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingSecret`] when no secret is set, [`ConfigError::NotUnicode`] when a
    /// value is not UTF-8, [`ConfigError::Invalid`] for a malformed `BETTER_AUTH_SECRETS`.
    pub fn from_env(self) -> Result<Self, ConfigError> {
        self.secret_from_env()?
            .secure_from_env()
            .trusted_origins_from_env()
    }

    /// Adds the origins listed in `BETTER_AUTH_TRUSTED_ORIGINS` (comma-separated, exact origins
    /// or patterns, as Better Auth reads the variable; unlike Better Auth, spaces around an
    /// entry are ignored) to the [`trusted_origins`](Self::trusted_origins), which turns on
    /// the origin check, and with them the origin of the environment's base URL
    /// (`BETTER_AUTH_URL` and the others [`from_env`](Self::from_env) reads), which Better Auth
    /// always trusts. Entries only Better Auth's redirect checks use (an app scheme such as
    /// `myapp://`, a pattern with a path) are skipped with a warning, as are entries that are
    /// not origins: the variable is usually shared with the Better Auth server. Nothing when
    /// the variable is unset or empty.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NotUnicode`] when a value is not UTF-8.
    pub fn trusted_origins_from_env(mut self) -> Result<Self, ConfigError> {
        let Some(list) = env::var("BETTER_AUTH_TRUSTED_ORIGINS")? else {
            return Ok(self);
        };
        let mut listed = Vec::new();
        let mut any = false;
        for entry in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            any = true;
            if crate::origin::usable(entry) {
                listed.push(entry.to_owned());
            } else {
                tracing::warn!(
                    entry,
                    "BETTER_AUTH_TRUSTED_ORIGINS: skipped an entry no browser Origin matches \
                     (an app scheme, a path, or not an origin)"
                );
            }
        }
        if !any {
            return Ok(self);
        }
        // On even when every entry was skipped (an Expo app's schemes only): Better Auth still
        // checks browsers' origins, against its base URL at least.
        self.origin_check = Some(true);
        if let Some(base) = env::base_url()?.filter(|b| crate::origin::usable(b)) {
            self.trusted_origins.push(base);
        }
        self.trusted_origins.extend(listed);
        Ok(self)
    }

    /// Reads the secret as [`from_env`](Self::from_env) does, and, since a builder that reads
    /// its secret from the environment is almost always deployed beside a Better Auth server
    /// configured by the same environment, whether cookies are secure too (as
    /// [`secure_from_env`](Self::secure_from_env)); [`secure`](Self::secure) and
    /// [`base_url`](Self::base_url) still win.
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn secret_from_env(mut self) -> Result<Self, ConfigError> {
        let mut secrets = env::secrets()?.into_iter();
        if let Some(current) = secrets.next() {
            self = self.secret(current);
        }
        for old in secrets {
            // Better Auth keeps older entries only to decrypt what it encrypted with them and
            // judges none of them: a weak one (the reason to rotate) is not refused, only left
            // out of the cookie checks here.
            if old.len() < MIN_SECRET_LEN || old == BETTER_AUTH_DEFAULT_SECRET {
                tracing::warn!(
                    "an older BETTER_AUTH_SECRETS entry is shorter than 32 bytes or Better Auth's \
                     default: cookies signed with it are not accepted (Better Auth accepts none \
                     signed with an older secret either)"
                );
                continue;
            }
            self = self.previous_secret(old, None);
        }
        Ok(self.secure_from_env())
    }

    /// Sets whether cookies are secure from the environment as Better Auth does (see
    /// [`from_env`](Self::from_env)). An explicit [`secure`](Self::secure) or
    /// [`base_url`](Self::base_url) wins.
    pub fn secure_from_env(mut self) -> Self {
        self.env_secure = env::secure();
        self
    }

    /// Whether cookies are `Secure` and their names get the `__Secure-` prefix, like Better
    /// Auth's `advanced.useSecureCookies`. Wins over [`base_url`](Self::base_url) and the
    /// environment. Default: `false` (Better Auth on an `http://` base URL).
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = Some(secure);
        self
    }

    /// Better Auth's `baseURL`. Derives [`secure`](Self::secure) from it (an `https://` URL
    /// means secure cookies; wins over the environment; an explicit `secure(…)` wins over it),
    /// and, as Better Auth, trusts its origin when the [origin check](Self::trusted_origins)
    /// is on.
    pub fn base_url(mut self, url: &str) -> Self {
        self.base_url_secure = Some(url.starts_with("https://"));
        self.base_url = Some(url.to_owned());
        self
    }

    /// The cookie prefix, Better Auth's `advanced.cookiePrefix`. Default: `better-auth`, which
    /// gives `better-auth.session_token`.
    pub fn cookie_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.cookie_prefix = Some(prefix.into());
        self
    }

    /// A custom session cookie name replacing `{prefix}.session_token`, Better Auth's
    /// `advanced.cookies.session_token.name`. The `__Secure-` prefix is still added when secure.
    /// Default: none.
    pub fn session_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.session_cookie_name = Some(name.into());
        self
    }

    /// The cookies' `Domain` attribute (Better Auth's `crossSubDomainCookies.domain`). Default:
    /// none (host-only cookies).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The cookies' `Path` attribute. Default: `/`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// The cookies' `SameSite` attribute. Default: [`SameSite::Lax`].
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Whether the cookies are `HttpOnly`. Default: `true`.
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = Some(http_only);
        self
    }

    /// Whether the cookies are `Partitioned` (CHIPS: kept per top-level site, for an app in a
    /// third-party iframe), which makes them `Secure` too: Better Auth's
    /// `advanced.defaultCookieAttributes.partitioned`. Match the Better Auth server's setting:
    /// a browser deletes a partitioned cookie only when the deletion is partitioned as well, so
    /// a sign-out without it leaves Better Auth's cookies in place. Default: `false`.
    pub fn partitioned(mut self, partitioned: bool) -> Self {
        self.partitioned = partitioned;
        self
    }

    /// Session lifetime after each refresh, Better Auth's `session.expiresIn`. Default: 7 days.
    /// At most 400 days, the longest cookie lifetime browsers keep.
    pub fn expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_in = Some(expires_in);
        self
    }

    /// How old the last refresh must be before a request extends the session, Better Auth's
    /// `session.updateAge`. Default: 1 day. Zero refreshes on every request.
    pub fn update_age(mut self, update_age: Duration) -> Self {
        self.update_age = Some(update_age);
        self
    }

    /// Never extend sessions (Better Auth's `session.disableSessionRefresh`). Default: `false`.
    pub fn disable_refresh(mut self, disable: bool) -> Self {
        self.disable_refresh = disable;
        self
    }

    /// Request headers from which the client IP recorded at sign-in is read, first match wins
    /// (Better Auth's `advanced.ipAddress.ipAddressHeaders`). As Better Auth 1.7: without
    /// [`trusted_proxies`](Self::trusted_proxies) a header listing several addresses records
    /// none (its leftmost is whatever the client sent); an IPv4-mapped IPv6 address is
    /// recorded as IPv4, and other IPv6 addresses as their [`ipv6_subnet`](Self::ipv6_subnet)
    /// written out in full. Default: `x-forwarded-for`, as Better Auth. Only trust headers
    /// your proxy sets.
    pub fn ip_address_headers<I, S>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ip_address_headers = Some(headers.into_iter().map(Into::into).collect());
        self
    }

    /// Better Auth's `advanced.ipAddress.trustedProxies`: addresses and ranges (`10.0.0.0/8`,
    /// `fd00::/8`, `192.0.2.9`) of the proxies in front of the app. A forwarded list is read
    /// from the right, skipping their hops; the first hop that is not one of them is the
    /// client (a hop that is not an address records none). Default: none (only a header
    /// holding exactly one address is recorded). An entry that is not an address or a range
    /// is refused at [`build`](Self::build).
    pub fn trusted_proxies<I, S>(mut self, proxies: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.trusted_proxies
            .extend(proxies.into_iter().map(Into::into));
        self
    }

    /// Better Auth's `advanced.ipAddress.ipv6Subnet`: how many leading bits of an IPv6 client
    /// address are recorded (the rest are zero), 0 to 128. Default: 64, as Better Auth.
    pub fn ipv6_subnet(mut self, bits: u8) -> Self {
        self.ipv6_subnet = Some(bits);
        self
    }

    /// Better Auth's `advanced.ipAddress.disableIpTracking`: record no client IP at sign-in.
    /// Default: `false`.
    pub fn disable_ip_tracking(mut self, disable: bool) -> Self {
        self.disable_ip_tracking = disable;
        self
    }

    /// The deadline for each store call made while serving a request; past it the request is
    /// answered `503 Service Unavailable` with `Retry-After`, and nobody is signed out.
    /// Default: 2 seconds.
    pub fn store_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.store_timeout = Some(timeout);
        self
    }

    /// Accept `Authorization: Bearer` credentials. Default: [`Bearer::Off`].
    pub fn bearer(mut self, mode: Bearer) -> Self {
        self.bearer = mode;
        self
    }

    /// Origins trusted for cookie-authenticated writes, as Better Auth's `trustedOrigins`:
    /// exact origins (`https://app.example.com`; a default port is dropped) and patterns with
    /// `*` or `?` anywhere, matched against the whole origin when they have a scheme
    /// (`https://*.example.com`, `https://my-app-*.vercel.app`, `http://localhost:*`), else
    /// against the host and port (`*.example.com`); a [`base_url`](Self::base_url)'s origin is
    /// trusted too. Setting any turns on the origin check
    /// (CSRF defence): a request other than GET, HEAD or OPTIONS that carries the session
    /// cookie must come from one of them (`Origin`, else `Referer`; `Origin: null` with
    /// `Sec-Fetch-Site: same-origin` stands for the request's own origin, from `Host`, which
    /// must be trusted; with neither header,
    /// `Sec-Fetch-Site: cross-site` is refused), or it gets `403 {"code":"INVALID_ORIGIN"}`
    /// without any store call. Bearer-authenticated requests are exempt. Default: none.
    pub fn trusted_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.trusted_origins
            .extend(origins.into_iter().map(Into::into));
        self
    }

    /// Turns the origin check on or off explicitly (on with only a
    /// [`base_url`](Self::base_url), its origin is the one trusted). Default: on exactly when
    /// [`trusted_origins`](Self::trusted_origins) are configured.
    pub fn origin_check(mut self, enabled: bool) -> Self {
        self.origin_check = Some(enabled);
        self
    }

    /// Exempts the path `prefix` and the paths below it (`/webhooks` exempts `/webhooks` and
    /// `/webhooks/stripe`, not `/webhooks-settings`) from the origin check, for webhooks that
    /// receive cross-site POSTs. Default: none.
    pub fn skip_origin_check_for(mut self, prefix: impl Into<String>) -> Self {
        self.origin_check_exempt.push(prefix.into());
        self
    }

    /// Read-only verification, for services with only `SELECT` on the auth tables (a replica or
    /// a read-only role): the layer never writes (no refresh, no deletion of expired sessions,
    /// no `Set-Cookie`), still rejects expired sessions, and reports a due refresh in
    /// [`SessionInfo::needs_refresh`](crate::SessionInfo) (Better Auth's
    /// `deferSessionRefresh`) so the app can ask its Better Auth server to refresh.
    /// Default: `false`.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// How recently a session must have been created for "fresh session" routes
    /// ([`FreshSession`](crate::extract::FreshSession)), Better Auth's `session.freshAge`.
    /// Zero disables the check. Default: 1 day.
    pub fn fresh_age(mut self, fresh_age: Duration) -> Self {
        self.fresh_age = Some(fresh_age);
        self
    }

    /// Trust Better Auth's cookie cache (`session_data`): a request whose cache cookie verifies
    /// (HMAC, token, version, both expiries) is served **without a store read**, and every store
    /// read re-issues the cache cookie, byte-compatibly with Better Auth. Any failure falls back
    /// to the store. Read the revocation trade-off in [`CookieCache`]. Default: off.
    pub fn cookie_cache(mut self, cache: CookieCache) -> Self {
        self.cookie_cache = Some(cache);
        self
    }

    /// Request paths starting with `prefix` always read the store, ignoring the cookie cache
    /// and reading past a [`CachedStore`](crate::store::CachedStore)'s copy (Better Auth's
    /// `sensitiveSessionMiddleware`), so a revoked session cannot use them even while its
    /// cache cookie or cache entry is valid. `/account/` covers `/account` too. The path is the
    /// one this layer sees: inside axum's `Router::nest`, without the nest's prefix. Default:
    /// none.
    pub fn authoritative_for(mut self, prefix: impl Into<String>) -> Self {
        self.authoritative.push(prefix.into());
        self
    }

    /// What a request with a valid credential gets while the store is failing or slower than
    /// [`store_timeout`](Self::store_timeout). Default: [`OutagePolicy::FailClosed`] (`503`).
    pub fn on_store_error(mut self, policy: OutagePolicy) -> Self {
        self.outage = policy;
        self
    }

    /// Keep only SHA-256 of each token in the store (the Copenhagen Book's advice): a leaked
    /// session table cannot be replayed as cookies. **Off by default, and incompatible with a
    /// Better Auth server sharing the store**, which stores and looks up raw tokens; use it for
    /// Rust-only deployments. Sessions created before switching it on stop working.
    pub fn hash_tokens_at_rest(mut self, enabled: bool) -> Self {
        self.hash_tokens = enabled;
        self
    }

    /// Better Auth's `multiSession()` plugin, with its `maximumSessions` (Better Auth's
    /// default is 5): a sign-in also sets the `{session cookie}_multi-{token}` cookie that
    /// Better Auth's account switcher lists (unless the browser already holds `maximum`
    /// of them), and ends this user's earlier sessions named by the browser's `_multi-`
    /// cookies; [`Sessions::sign_out`](crate::extract::Sessions::sign_out) and
    /// [`SessionManager::sign_out_request`](crate::SessionManager::sign_out_request) end
    /// every session named by a `_multi-` cookie that verifies, and expire those cookies.
    /// The maximum and the clean-up need the browser's cookies: sign-ins made with
    /// [`SignIn::from_headers`](crate::SignIn::from_headers) (the `Sessions` extractor's)
    /// apply them, [`SignIn::new`](crate::SignIn::new) cannot. A refresh by the layer sets the
    /// session's `_multi-` cookie again when the browser no longer sends it (below the
    /// maximum), and re-signs `_multi-` cookies a previous secret verified.
    /// Default: off.
    pub fn multi_session(mut self, maximum_sessions: usize) -> Self {
        self.multi_session = Some(maximum_sessions);
        self
    }

    /// Better Auth's anonymous plugin (`anonymous()`): when a guest (a user whose
    /// `isAnonymous` is true) signs in with a real account, delete the guest and their
    /// sessions, as the plugin does unless `disableDeleteAnonymousUser`. Turn it on when the
    /// Better Auth server runs the plugin that way: the crate cannot see the server's plugin
    /// list, and an `isAnonymous` column of another meaning must not delete users.
    /// [`Sessions::sign_in`](crate::extract::Sessions::sign_in) (and its siblings) then
    /// delete the guest once the new session is written: move what the guest owns to the new
    /// user before, as the plugin's `onLinkAccount` would. Elsewhere call
    /// [`SessionManager::delete_linked_anonymous`](crate::SessionManager::delete_linked_anonymous).
    /// Default: off (guests are kept, as with `disableDeleteAnonymousUser: true`).
    pub fn delete_anonymous_users(mut self, delete: bool) -> Self {
        self.delete_anonymous = delete;
        self
    }

    /// Accept Better Auth `jwt()` plugin tokens from `Authorization: Bearer` (feature `jwt`):
    /// a bearer value shaped like a JWT is verified by `verifier` and, when valid, signs the
    /// request in as the user it carries, without a store read. It decides over a session
    /// cookie in the same request (as any bearer credential does), and a JWT that fails is
    /// anonymous. See [`jwt`](crate::jwt) for the checks and the revocation trade-off.
    /// Default: off (JWTs are not session credentials).
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub fn jwt(mut self, verifier: crate::jwt::JwtVerifier) -> Self {
        self.jwt = Some(verifier);
        self
    }

    /// The clock the layer reads; tests inject a [`ManualClock`](crate::ManualClock).
    /// Default: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    ///
    /// * [`ConfigError::MissingSecret`], [`ConfigError::WeakSecret`] or
    ///   [`ConfigError::DefaultSecret`] unless a private secret of at least 32 bytes was given;
    /// * [`ConfigError::Invalid`] for a cookie name, domain or path that cannot appear in a
    ///   `Set-Cookie` header, a lifetime that is zero, negative or over 400 days, a negative
    ///   `fresh_age` or a zero `store_timeout`.
    pub fn build(self) -> Result<SessionConfig, ConfigError> {
        let secret = self.secret.ok_or(ConfigError::MissingSecret)?;
        check_secret(&secret)?;
        let secure = self
            .secure
            .or(self.base_url_secure)
            .or(self.env_secure)
            .unwrap_or(false);
        let cookies = Cookies::new(&cookies::CookieOptions {
            secure,
            prefix: self.cookie_prefix.as_deref(),
            session_cookie_name: self.session_cookie_name.as_deref(),
            domain: self.domain.as_deref(),
            path: self.path.as_deref(),
            same_site: self.same_site,
            http_only: self.http_only.unwrap_or(true),
            partitioned: self.partitioned,
        })?;

        let expires_in = self.expires_in.unwrap_or(Duration::days(7));
        if expires_in <= Duration::ZERO || expires_in > MAX_COOKIE_AGE {
            return Err(ConfigError::Invalid {
                option: "expires_in",
                reason: format!(
                    "{expires_in} is not between 1 second and 400 days (the longest cookie lifetime browsers keep)"
                ),
            });
        }
        let update_age = self.update_age.unwrap_or(Duration::days(1));
        if update_age < Duration::ZERO {
            return Err(ConfigError::Invalid {
                option: "update_age",
                reason: format!("{update_age} is negative; use zero to refresh on every request"),
            });
        }
        let fresh_age = self.fresh_age.unwrap_or(Duration::days(1));
        if fresh_age < Duration::ZERO {
            return Err(ConfigError::Invalid {
                option: "fresh_age",
                reason: format!(
                    "{fresh_age} is negative; use zero to turn the freshness check off"
                ),
            });
        }
        if self.store_timeout == Some(std::time::Duration::ZERO) {
            return Err(ConfigError::Invalid {
                option: "store_timeout",
                reason: "zero leaves no time for any store call: every signed-in request would \
                         be answered 503"
                    .to_owned(),
            });
        }
        let ip = crate::client_ip::IpTracking::new(
            self.ip_address_headers,
            &self.trusted_proxies,
            self.ipv6_subnet,
            self.disable_ip_tracking,
        )?;

        let mut previous = Vec::with_capacity(self.previous_secrets.len());
        for (old, until) in self.previous_secrets {
            if old.len() < MIN_SECRET_LEN || old == BETTER_AUTH_DEFAULT_SECRET {
                return Err(ConfigError::Invalid {
                    option: "previous_secret",
                    reason: "a previous secret must also be at least 32 bytes and not Better Auth's default".to_owned(),
                });
            }
            if old != secret {
                previous.push((Signer::new(&old), until));
            }
        }
        if let Some(cache) = &self.cookie_cache {
            cache.validate()?;
        }
        Ok(SessionConfig {
            keys: Keys {
                signer: Signer::new(&secret),
                previous,
                hash_at_rest: self.hash_tokens,
            },
            cookies,
            lifetimes: Lifetimes {
                expires_in,
                update_age,
                disable_refresh: self.disable_refresh,
                fresh_age,
            },
            guards: Guards {
                bearer: self.bearer,
                origins: crate::origin::OriginCheck::new(
                    &self.trusted_origins,
                    self.base_url.as_deref(),
                    self.origin_check
                        .unwrap_or(!self.trusted_origins.is_empty()),
                    self.origin_check_exempt,
                )?,
                read_only: self.read_only,
                outage: self.outage,
                authoritative: self.authoritative,
                store_timeout: self.store_timeout.unwrap_or(DEFAULT_STORE_TIMEOUT),
            },
            cache: self.cookie_cache,
            ip,
            multi_session: match self.multi_session {
                Some(0) => {
                    return Err(ConfigError::Invalid {
                        option: "multi_session",
                        reason: "maximum_sessions must be at least 1 (Better Auth's default is 5)"
                            .to_owned(),
                    })
                }
                other => other,
            },
            delete_anonymous: self.delete_anonymous,
            warnings: Arc::default(),
            #[cfg(feature = "jwt")]
            jwt: self.jwt,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
        })
    }
}

fn check_secret(secret: &str) -> Result<(), ConfigError> {
    if secret.is_empty() {
        return Err(ConfigError::MissingSecret);
    }
    if secret == BETTER_AUTH_DEFAULT_SECRET {
        return Err(ConfigError::DefaultSecret);
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(ConfigError::WeakSecret { len: secret.len() });
    }
    Ok(())
}
