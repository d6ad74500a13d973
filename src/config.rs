//! Configuration: the secret, cookie names and attributes, and the session lifetimes, with
//! Better Auth's defaults (spec §1, §2.1, §2.2).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use time::{Duration, OffsetDateTime};

use crate::clock::{Clock, SystemClock};
use crate::codec::Signer;
use crate::error::ConfigError;

/// Better Auth's published development secret. Anyone can forge cookies with it, so this crate
/// refuses it.
pub const BETTER_AUTH_DEFAULT_SECRET: &str = "better-auth-secret-12345678901234567890";

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// The largest `Max-Age` a browser honours (400 days), which Better Auth also enforces.
pub const MAX_COOKIE_AGE: Duration = Duration::seconds(34_560_000);

/// Whether `Authorization: Bearer` authenticates requests (Better Auth's `bearer()` plugin).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Bearer {
    /// Only the session cookie counts. The default.
    #[default]
    Off,
    /// `Authorization: Bearer <token>.<signature>` is accepted when no session cookie is
    /// present, with the same HMAC check as the cookie. Sign-ins and refreshes answer with
    /// `set-auth-token`.
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
    /// `503 Service Unavailable` with `Retry-After` and a generic JSON body; no cookie is
    /// cleared and nothing is deleted, so nobody is signed out by an outage. The default.
    #[default]
    FailClosed,
    /// Serve the request as anonymous (again without clearing cookies): public pages keep
    /// working, protected routes answer `401` until the store is back.
    Anonymous,
}

/// The default deadline for one store call made while serving a request.
pub const DEFAULT_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

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
    /// The same attributes under another name (a cache-cookie chunk).
    pub(crate) fn renamed(&self, name: &str) -> CookieSpec {
        CookieSpec {
            name: name.to_owned(),
            ..self.clone()
        }
    }

    /// A `Set-Cookie` value in Better Auth's attribute order:
    /// `name=value; Max-Age=N; Domain=d; Path=p; HttpOnly; Secure; SameSite=Lax`.
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
}

/// Validated session configuration, shared by the layer, its services and the sign-in handle.
///
/// Build one with [`SessionConfig::builder`] or [`SessionConfig::from_env`].
#[derive(Clone)]
pub struct SessionConfig {
    pub(crate) signer: Signer,
    /// Old secrets that still verify, each until its optional end.
    pub(crate) previous_signers: Vec<(Signer, Option<OffsetDateTime>)>,
    pub(crate) session_cookie: CookieSpec,
    pub(crate) dont_remember_cookie: CookieSpec,
    pub(crate) session_data_cookie: CookieSpec,
    pub(crate) expires_in: Duration,
    pub(crate) update_age: Duration,
    pub(crate) disable_refresh: bool,
    pub(crate) ip_address_headers: Vec<http::HeaderName>,
    pub(crate) store_timeout: std::time::Duration,
    pub(crate) bearer: Bearer,
    pub(crate) origins: crate::origin::OriginCheck,
    pub(crate) read_only: bool,
    pub(crate) fresh_age: Duration,
    pub(crate) cookie_cache: Option<crate::cookie_cache::CookieCache>,
    pub(crate) authoritative: Vec<String>,
    pub(crate) outage: OutagePolicy,
    pub(crate) hash_tokens: bool,
    pub(crate) clock: Arc<dyn Clock>,
    /// `Max-Age=0` for the session token, the cookie cache and `dont_remember`: the same bytes on
    /// every rejection, so built once.
    pub(crate) clearing: [HeaderValue; 3],
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("secret", &"<redacted>")
            .field("session_cookie", &self.session_cookie)
            .field("expires_in", &self.expires_in)
            .field("update_age", &self.update_age)
            .field("disable_refresh", &self.disable_refresh)
            .finish_non_exhaustive()
    }
}

impl SessionConfig {
    /// A builder with Better Auth's defaults. Only the secret must be set.
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

    /// Builds a configuration with Better Auth's defaults, reading the environment as Better
    /// Auth does:
    ///
    /// * the secret from `BETTER_AUTH_SECRETS` (`version:value,…`, the first is current, the
    ///   others still verify), else `BETTER_AUTH_SECRET`, else `AUTH_SECRET`;
    /// * secure cookies (`__Secure-` names) when the base URL (`BETTER_AUTH_URL`,
    ///   `NEXT_PUBLIC_BETTER_AUTH_URL`, `PUBLIC_BETTER_AUTH_URL`, `NUXT_PUBLIC_BETTER_AUTH_URL`,
    ///   `NUXT_PUBLIC_AUTH_URL`, `BASE_URL`, first set wins) starts with `https://`, or, with no
    ///   base URL, when `NODE_ENV=production`.
    ///
    /// # Errors
    ///
    /// Fails when no secret is set, or the secret is weak (see
    /// [`SessionConfigBuilder::build`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::builder().secret_from_env()?.secure_from_env().build()
    }

    /// The exact name of the session token cookie, including any `__Secure-` prefix.
    pub fn session_cookie_name(&self) -> &str {
        &self.session_cookie.name
    }

    /// The exact name of the `dont_remember` cookie.
    pub fn dont_remember_cookie_name(&self) -> &str {
        &self.dont_remember_cookie.name
    }

    /// The exact name of the cookie-cache cookie (`session_data`).
    pub fn session_data_cookie_name(&self) -> &str {
        &self.session_data_cookie.name
    }

    /// How long a session lives after its last refresh (`expiresIn`).
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// How old the last refresh must be before a request extends the session (`updateAge`).
    pub fn update_age(&self) -> Duration {
        self.update_age
    }

    /// The signer prepared from the secret.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// How recently a session must have been created for fresh-session routes (`freshAge`).
    pub fn fresh_age(&self) -> Duration {
        self.fresh_age
    }

    /// Whether the layer runs read-only (never writes).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The bearer-token mode.
    pub fn bearer_mode(&self) -> Bearer {
        self.bearer
    }

    /// The clock the layer reads.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// A `Set-Cookie` value in Better Auth's attribute order (see [`CookieSpec::header`]).
    pub(crate) fn set_cookie(
        &self,
        spec: &CookieSpec,
        value: &str,
        max_age: Option<Duration>,
    ) -> HeaderValue {
        spec.header(value, max_age)
    }

    /// Verifies a raw cookie value with the current secret, then with each previous secret
    /// still in force. Returns the value and whether an old secret verified it (so the cookie
    /// should be re-signed).
    pub(crate) fn unsign<'a>(&self, raw: &'a [u8]) -> Option<(Cow<'a, str>, bool)> {
        if let Some(v) = self.signer.unsign(raw) {
            return Some((v, false));
        }
        if self.previous_signers.is_empty() {
            return None;
        }
        let now = self.clock.now();
        self.previous_signers
            .iter()
            .filter(|(_, until)| until.is_none_or(|u| now <= u))
            .find_map(|(signer, _)| signer.unsign(raw))
            .map(|v| (v, true))
    }

    /// The key a token is stored under: the token itself, or its SHA-256 (hex) with
    /// [`hash_tokens_at_rest`](SessionConfigBuilder::hash_tokens_at_rest).
    pub fn storage_key<'t>(&self, token: &'t str) -> Cow<'t, str> {
        if self.hash_tokens {
            Cow::Owned(sha256_hex(token))
        } else {
            Cow::Borrowed(token)
        }
    }

    /// The session cookie for a signed-in session.
    pub(crate) fn session_set_cookie(&self, token: &str, remember: bool) -> HeaderValue {
        let value = self.signer.sign_cookie_value(token);
        let max_age = remember.then_some(self.expires_in);
        self.set_cookie(&self.session_cookie, &value, max_age)
    }

    /// The deletion of a cookie (`Max-Age=0`, same attributes).
    pub(crate) fn expire_cookie(&self, spec: &CookieSpec) -> HeaderValue {
        spec.expired()
    }
}

/// Builds a [`SessionConfig`]. Every setting has Better Auth's default except the secret.
#[derive(Clone, Default)]
#[must_use]
pub struct SessionConfigBuilder {
    secret: Option<String>,
    previous_secrets: Vec<(String, Option<OffsetDateTime>)>,
    secure: Option<bool>,
    cookie_prefix: Option<String>,
    session_cookie_name: Option<String>,
    domain: Option<String>,
    path: Option<String>,
    same_site: SameSite,
    http_only: Option<bool>,
    expires_in: Option<Duration>,
    update_age: Option<Duration>,
    disable_refresh: bool,
    ip_address_headers: Option<Vec<String>>,
    store_timeout: Option<std::time::Duration>,
    bearer: Bearer,
    trusted_origins: Vec<String>,
    origin_check: Option<bool>,
    origin_check_exempt: Vec<String>,
    read_only: bool,
    fresh_age: Option<Duration>,
    cookie_cache: Option<crate::cookie_cache::CookieCache>,
    authoritative: Vec<String>,
    outage: OutagePolicy,
    hash_tokens: bool,
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

    /// Reads the secret as Better Auth does: `BETTER_AUTH_SECRETS` (`version:value,…`, first
    /// is current, the rest become [`previous_secret`](Self::previous_secret)s), else
    /// `BETTER_AUTH_SECRET`, else `AUTH_SECRET`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingSecret`] when none is set, [`ConfigError::NotUnicode`] when a
    /// value is not UTF-8, [`ConfigError::Invalid`] for a malformed `BETTER_AUTH_SECRETS`.
    pub fn secret_from_env(mut self) -> Result<Self, ConfigError> {
        if let Some(list) = env_var("BETTER_AUTH_SECRETS")? {
            let secrets = parse_secrets(&list)?;
            let mut values = secrets.into_iter();
            if let Some(current) = values.next() {
                self = self.secret(current);
                for old in values {
                    self = self.previous_secret(old, None);
                }
                return Ok(self);
            }
        }
        for var in ["BETTER_AUTH_SECRET", "AUTH_SECRET"] {
            if let Some(v) = env_var(var)? {
                return Ok(self.secret(v));
            }
        }
        Err(ConfigError::MissingSecret)
    }

    /// Sets [`secure`](Self::secure) from the environment as Better Auth does: the first base
    /// URL variable set (`BETTER_AUTH_URL`, `NEXT_PUBLIC_BETTER_AUTH_URL`,
    /// `PUBLIC_BETTER_AUTH_URL`, `NUXT_PUBLIC_BETTER_AUTH_URL`, `NUXT_PUBLIC_AUTH_URL`,
    /// `BASE_URL`) decides; without one, `NODE_ENV=production` means secure. An explicit
    /// `secure(…)` wins.
    pub fn secure_from_env(self) -> Self {
        if self.secure.is_some() {
            return self;
        }
        for var in [
            "BETTER_AUTH_URL",
            "NEXT_PUBLIC_BETTER_AUTH_URL",
            "PUBLIC_BETTER_AUTH_URL",
            "NUXT_PUBLIC_BETTER_AUTH_URL",
            "NUXT_PUBLIC_AUTH_URL",
            "BASE_URL",
        ] {
            if let Ok(Some(url)) = env_var(var) {
                return self.base_url(&url);
            }
        }
        let production = matches!(env_var("NODE_ENV"), Ok(Some(v)) if v == "production");
        self.secure(production)
    }

    /// Whether cookies are `Secure` and their names get the `__Secure-` prefix, like Better
    /// Auth's `advanced.useSecureCookies`. Default: `false` (Better Auth on an `http://` base
    /// URL); see also [`base_url`](Self::base_url).
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = Some(secure);
        self
    }

    /// Derives [`secure`](Self::secure) from Better Auth's `baseURL`: an `https://` URL means
    /// secure cookies. An explicit `secure(…)` wins, whatever the order of the calls.
    pub fn base_url(mut self, url: &str) -> Self {
        if self.secure.is_none() {
            self.secure = Some(url.starts_with("https://"));
        }
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
    /// (the first address of a comma-separated list is taken). Default: `x-forwarded-for`,
    /// as Better Auth. Only trust headers your proxy sets.
    pub fn ip_address_headers<I, S>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ip_address_headers = Some(headers.into_iter().map(Into::into).collect());
        self
    }

    /// The deadline for each store call made while serving a request; past it the request is
    /// answered `503 Service Unavailable` with `Retry-After`, and nobody is signed out.
    /// Default: 2 seconds.
    pub fn store_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.store_timeout = Some(timeout);
        self
    }

    /// Accept `Authorization: Bearer` credentials when no session cookie is present. Default:
    /// [`Bearer::Off`].
    pub fn bearer(mut self, mode: Bearer) -> Self {
        self.bearer = mode;
        self
    }

    /// Origins trusted for cookie-authenticated writes, as Better Auth's `trustedOrigins`:
    /// exact origins (`https://app.example.com`) and wildcard hosts (`*.example.com`,
    /// `https://*.example.com`). Setting any turns on the origin check (CSRF defence): a
    /// request other than GET, HEAD or OPTIONS that carries the session cookie must come from
    /// one of them (`Origin`, else `Referer`; with neither, `Sec-Fetch-Site: cross-site` is
    /// refused), or it gets `403 {"code":"INVALID_ORIGIN"}` without any store call.
    /// Bearer-authenticated requests are exempt. Default: none (check off).
    pub fn trusted_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.trusted_origins
            .extend(origins.into_iter().map(Into::into));
        self
    }

    /// Turns the origin check on or off explicitly. Default: on exactly when
    /// [`trusted_origins`](Self::trusted_origins) are configured.
    pub fn origin_check(mut self, enabled: bool) -> Self {
        self.origin_check = Some(enabled);
        self
    }

    /// Exempts request paths starting with `prefix` from the origin check (for webhooks that
    /// receive cross-site POSTs). Default: none.
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
    /// to the store. Read the revocation trade-off in [`crate::cookie_cache`]. Default: off.
    pub fn cookie_cache(mut self, cache: crate::cookie_cache::CookieCache) -> Self {
        self.cookie_cache = Some(cache);
        self
    }

    /// Request paths starting with `prefix` always read the store, ignoring the cookie cache
    /// (Better Auth's `sensitiveSessionMiddleware`), so a revoked session cannot use them even
    /// while its cache cookie is valid. Default: none.
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
    ///   `Set-Cookie` header, or a lifetime that is zero, negative or over 400 days.
    pub fn build(self) -> Result<SessionConfig, ConfigError> {
        let secret = self.secret.ok_or(ConfigError::MissingSecret)?;
        if secret.is_empty() {
            return Err(ConfigError::MissingSecret);
        }
        if secret == BETTER_AUTH_DEFAULT_SECRET {
            return Err(ConfigError::DefaultSecret);
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::WeakSecret { len: secret.len() });
        }

        let secure = self.secure.unwrap_or(false);
        // `cookiePrefix || "better-auth"`: an empty prefix means the default.
        let prefix = self
            .cookie_prefix
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "better-auth".to_owned());
        let secure_prefix = if secure { "__Secure-" } else { "" };
        let base = self
            .session_cookie_name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{prefix}.session_token"));
        let path = self.path.unwrap_or_else(|| "/".to_owned());
        check_attr("path", &path)?;
        if let Some(domain) = &self.domain {
            check_attr("domain", domain)?;
        }
        let http_only = self.http_only.unwrap_or(true);
        let spec = |name: String| -> Result<CookieSpec, ConfigError> {
            check_token("cookie name", &name)?;
            // Per cookie, as better-call: `__Host-` forces `Path=/`, no `Domain` and `Secure`;
            // `__Secure-` and `SameSite=None` force `Secure`.
            let is_host = name.starts_with("__Host-");
            let mut scope = String::new();
            if let (Some(domain), false) = (&self.domain, is_host) {
                scope.push_str("; Domain=");
                scope.push_str(domain);
            }
            scope.push_str("; Path=");
            scope.push_str(if is_host { "/" } else { &path });
            let mut flags = String::new();
            if http_only {
                flags.push_str("; HttpOnly");
            }
            if secure
                || is_host
                || name.starts_with("__Secure-")
                || self.same_site == SameSite::None
            {
                flags.push_str("; Secure");
            }
            flags.push_str("; SameSite=");
            flags.push_str(self.same_site.as_str());
            Ok(CookieSpec { name, scope, flags })
        };
        let session_cookie = spec(format!("{secure_prefix}{base}"))?;
        let dont_remember_cookie = spec(format!("{secure_prefix}{prefix}.dont_remember"))?;
        let session_data_cookie = spec(format!("{secure_prefix}{prefix}.session_data"))?;

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
        let ip_address_headers = self
            .ip_address_headers
            .unwrap_or_else(|| vec!["x-forwarded-for".to_owned()])
            .into_iter()
            .map(|h| {
                http::HeaderName::try_from(h.as_str()).map_err(|_| ConfigError::Invalid {
                    option: "ip_address_headers",
                    reason: format!("{h:?} is not a valid header name"),
                })
            })
            .collect::<Result<_, _>>()?;

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
        let clearing = [
            session_cookie.expired(),
            session_data_cookie.expired(),
            dont_remember_cookie.expired(),
        ];
        Ok(SessionConfig {
            previous_signers: previous,
            signer: Signer::new(&secret),
            session_cookie,
            dont_remember_cookie,
            session_data_cookie,
            expires_in,
            update_age,
            disable_refresh: self.disable_refresh,
            ip_address_headers,
            store_timeout: self.store_timeout.unwrap_or(DEFAULT_STORE_TIMEOUT),
            bearer: self.bearer,
            origins: crate::origin::OriginCheck::new(
                &self.trusted_origins,
                self.origin_check
                    .unwrap_or(!self.trusted_origins.is_empty()),
                self.origin_check_exempt,
            )?,
            read_only: self.read_only,
            cookie_cache: match self.cookie_cache {
                Some(cache) => {
                    cache.validate()?;
                    Some(cache)
                }
                None => None,
            },
            authoritative: self.authoritative,
            outage: self.outage,
            hash_tokens: self.hash_tokens,
            fresh_age: self
                .fresh_age
                .unwrap_or(Duration::days(1))
                .max(Duration::ZERO),
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            clearing,
        })
    }
}

/// Lower-case hex SHA-256.
pub(crate) fn sha256_hex(input: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(input.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads an environment variable; unset and empty are both `None`.
fn env_var(var: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(Some(v)),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode { var }),
    }
}

/// Parses `BETTER_AUTH_SECRETS`: comma-separated `version:value`, non-negative integer versions,
/// no duplicates; returns the values, current first.
fn parse_secrets(list: &str) -> Result<Vec<String>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        option: "BETTER_AUTH_SECRETS",
        reason,
    };
    let mut versions = Vec::new();
    let mut values = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (version, value) = entry
            .split_once(':')
            .ok_or_else(|| invalid("expected comma-separated `version:value` entries, e.g. `2:new-secret,1:old-secret`".to_owned()))?;
        let version: u64 = version
            .trim()
            .parse()
            .map_err(|_| invalid(format!("version {version:?} is not a non-negative integer")))?;
        if versions.contains(&version) {
            return Err(invalid(format!("version {version} appears twice")));
        }
        versions.push(version);
        values.push(value.to_owned());
    }
    if values.is_empty() {
        return Err(invalid("no `version:value` entry".to_owned()));
    }
    Ok(values)
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
