//! Configuration: the secret, cookie names and attributes, and the session lifetimes, with
//! Better Auth's defaults (spec §1, §2.1, §2.2).

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use time::Duration;

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

/// Validated session configuration, shared by the layer, its services and the sign-in handle.
///
/// Build one with [`SessionConfig::builder`] or [`SessionConfig::from_env`].
#[derive(Clone)]
pub struct SessionConfig {
    pub(crate) signer: Signer,
    pub(crate) session_cookie: String,
    pub(crate) dont_remember_cookie: String,
    pub(crate) session_data_cookie: String,
    /// `; Domain=…; Path=…` as rendered into every Set-Cookie.
    pub(crate) scope_attrs: String,
    /// `; HttpOnly; Secure; SameSite=…` as rendered into every Set-Cookie.
    pub(crate) flag_attrs: String,
    pub(crate) expires_in: Duration,
    pub(crate) update_age: Duration,
    pub(crate) disable_refresh: bool,
    pub(crate) ip_address_headers: Vec<http::HeaderName>,
    pub(crate) store_timeout: std::time::Duration,
    pub(crate) clock: Arc<dyn Clock>,
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

    /// Builds a configuration with Better Auth's defaults and the secret read from
    /// `BETTER_AUTH_SECRET` (then `AUTH_SECRET`), as Better Auth reads it.
    ///
    /// # Errors
    ///
    /// Fails when neither variable is set, or the secret is weak (see
    /// [`SessionConfigBuilder::build`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::builder().secret_from_env()?.build()
    }

    /// The exact name of the session token cookie, including any `__Secure-` prefix.
    pub fn session_cookie_name(&self) -> &str {
        &self.session_cookie
    }

    /// The exact name of the `dont_remember` cookie.
    pub fn dont_remember_cookie_name(&self) -> &str {
        &self.dont_remember_cookie
    }

    /// The exact name of the cookie-cache cookie (`session_data`).
    pub fn session_data_cookie_name(&self) -> &str {
        &self.session_data_cookie
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

    /// The clock the layer reads.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// A `Set-Cookie` value in Better Auth's attribute order:
    /// `name=value; Max-Age=N; Domain=d; Path=p; HttpOnly; Secure; SameSite=Lax`.
    pub(crate) fn set_cookie(
        &self,
        name: &str,
        value: &str,
        max_age: Option<Duration>,
    ) -> HeaderValue {
        let mut out = String::with_capacity(
            name.len() + value.len() + self.scope_attrs.len() + self.flag_attrs.len() + 20,
        );
        out.push_str(name);
        out.push('=');
        out.push_str(value);
        if let Some(age) = max_age {
            let secs = age.clamp(Duration::ZERO, MAX_COOKIE_AGE).whole_seconds();
            out.push_str("; Max-Age=");
            out.push_str(&secs.to_string());
        }
        out.push_str(&self.scope_attrs);
        out.push_str(&self.flag_attrs);
        // Names and attributes were validated at build time and values are URI-encoded, so
        // this cannot fail; fall back to a deletion rather than panic if it ever did.
        HeaderValue::try_from(out)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }

    /// The session cookie for a signed-in session.
    pub(crate) fn session_set_cookie(&self, token: &str, remember: bool) -> HeaderValue {
        let value = self.signer.sign_cookie_value(token);
        let max_age = remember.then_some(self.expires_in);
        self.set_cookie(&self.session_cookie, &value, max_age)
    }

    /// The deletion of cookie `name` (`Max-Age=0`, same attributes).
    pub(crate) fn expire_cookie(&self, name: &str) -> HeaderValue {
        self.set_cookie(name, "", Some(Duration::ZERO))
    }
}

/// Builds a [`SessionConfig`]. Every setting has Better Auth's default except the secret.
#[derive(Clone, Default)]
#[must_use]
pub struct SessionConfigBuilder {
    secret: Option<String>,
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

    /// Reads the secret from `BETTER_AUTH_SECRET`, then `AUTH_SECRET`, as Better Auth does.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingSecret`] when neither is set, [`ConfigError::NotUnicode`] when the
    /// value is not UTF-8.
    pub fn secret_from_env(self) -> Result<Self, ConfigError> {
        for var in ["BETTER_AUTH_SECRET", "AUTH_SECRET"] {
            match std::env::var(var) {
                Ok(v) if !v.is_empty() => return Ok(self.secret(v)),
                Ok(_) | Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(ConfigError::NotUnicode { var })
                }
            }
        }
        Err(ConfigError::MissingSecret)
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
        let prefix = self
            .cookie_prefix
            .unwrap_or_else(|| "better-auth".to_owned());
        let secure_prefix = if secure { "__Secure-" } else { "" };
        let base = self
            .session_cookie_name
            .unwrap_or_else(|| format!("{prefix}.session_token"));
        let session_cookie = format!("{secure_prefix}{base}");
        let dont_remember_cookie = format!("{secure_prefix}{prefix}.dont_remember");
        let session_data_cookie = format!("{secure_prefix}{prefix}.session_data");
        for name in [&session_cookie, &dont_remember_cookie, &session_data_cookie] {
            check_token("cookie name", name)?;
        }

        let is_host = session_cookie.starts_with("__Host-");
        let path = if is_host {
            "/".to_owned()
        } else {
            self.path.unwrap_or_else(|| "/".to_owned())
        };
        check_attr("path", &path)?;
        let mut scope_attrs = String::new();
        if let (Some(domain), false) = (&self.domain, is_host) {
            check_attr("domain", domain)?;
            scope_attrs.push_str("; Domain=");
            scope_attrs.push_str(domain);
        }
        scope_attrs.push_str("; Path=");
        scope_attrs.push_str(&path);

        let forced_secure = secure
            || session_cookie.starts_with("__Secure-")
            || is_host
            || self.same_site == SameSite::None;
        let mut flag_attrs = String::new();
        if self.http_only.unwrap_or(true) {
            flag_attrs.push_str("; HttpOnly");
        }
        if forced_secure {
            flag_attrs.push_str("; Secure");
        }
        flag_attrs.push_str("; SameSite=");
        flag_attrs.push_str(self.same_site.as_str());

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

        Ok(SessionConfig {
            signer: Signer::new(&secret),
            session_cookie,
            dont_remember_cookie,
            session_data_cookie,
            scope_attrs,
            flag_attrs,
            expires_in,
            update_age,
            disable_refresh: self.disable_refresh,
            ip_address_headers,
            store_timeout: self.store_timeout.unwrap_or(DEFAULT_STORE_TIMEOUT),
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
        })
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
