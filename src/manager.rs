//! [`SessionManager`]: sign in, sign out, revoke and list sessions from Rust, writing rows a
//! Better Auth server accepts.

use std::sync::Arc;

use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};
use serde_json::Map;
use time::Duration;

use crate::config::{Bearer, SessionConfig};
use crate::error::SessionError;
use crate::ids::generate_id;
use crate::model::{Authenticated, Session, StorageKey, User};
use crate::multi::MultiCookies;
use crate::plan::{mark_uncacheable, set_auth_token};
use crate::store::{AnyStore, SessionStore};
use crate::time_fmt;

/// Signs users in and out, and revokes and lists sessions, through the layer's store and
/// configuration.
///
/// Every request's [`AuthContext`](crate::AuthContext) carries one; [`SessionLayer::manager`](crate::SessionLayer::manager)
/// gives one for use outside requests. Cloning is cheap.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use time::OffsetDateTime;
/// use tower_auth_session::{MemoryStore, SessionConfig, SessionLayer, SignIn, User};
///
/// let store = MemoryStore::new();
/// let config = SessionConfig::builder().secret("a-private-secret-of-at-least-32-bytes!!").build()?;
/// let manager = SessionLayer::new(config, store.clone()).manager();
///
/// let user = User::new("alice@example.com", "Alice", OffsetDateTime::now_utc());
/// store.insert_user(user.clone());
/// let signed_in = manager.sign_in(&user, SignIn::new()).await?;
/// assert!(signed_in.cookies.iter().next().unwrap().to_str()?.starts_with("better-auth.session_token="));
/// assert_eq!(manager.list(&user.id).await?.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<SessionConfig>,
    store: AnyStore,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("config", &self.inner.config)
            .field("store", &self.inner.store)
            .finish()
    }
}

/// `user` as Better Auth's lifting of a ban leaves the row: `banned` false, the reason and the
/// end cleared (under whichever names the row has them), `updatedAt` now.
fn lifted(user: &User, now: time::OffsetDateTime) -> User {
    let mut user = user.clone();
    user.extra
        .insert("banned".to_owned(), serde_json::Value::Bool(false));
    for field in ["banReason", "ban_reason", "banExpires", "ban_expires"] {
        if let Some(value) = user.extra.get_mut(field) {
            *value = serde_json::Value::Null;
        }
    }
    user.updated_at = now;
    user
}

/// Options for [`SessionManager::sign_in`].
#[derive(Clone, Debug)]
#[must_use]
pub struct SignIn {
    remember_me: bool,
    ip_address: Option<String>,
    user_agent: Option<String>,
    /// The request's multi-session cookies, when that plugin is configured.
    pub(crate) multi: Option<MultiCookies>,
    /// Whether the request carried a "don't remember me" marker that verifies (`None`: no
    /// request seen, so a remembered sign-in expires it in any case).
    dont_remember_seen: Option<bool>,
    /// The caller verified the user's second factor (or the sign-in is of a kind Better
    /// Auth's two-factor plugin does not gate).
    second_factor: bool,
    /// The chunks of the cookie cache the request carried, replaced or expired by the new one.
    cache_chunks: Vec<String>,
    /// Whether the request carried a cookie cache, whole or in chunks.
    cache_seen: bool,
    /// The deletions of Better Auth's other sign-in cookies the request carried, for a
    /// sign-out ([`Cookies::others_carried`](crate::config::Cookies::others_carried)).
    others: Vec<HeaderValue>,
}

impl Default for SignIn {
    fn default() -> Self {
        Self::new()
    }
}

/// The request's `User-Agent` as Better Auth on Node gets it: each byte read as Latin-1 (as
/// Node decodes header values), and the first line only (Node's `IncomingMessage` drops
/// repeated `User-Agent` lines).
fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(http::header::USER_AGENT)
        .map(|v| v.as_bytes().iter().map(|&b| char::from(b)).collect())
}

impl SignIn {
    /// Remembered (a persistent cookie), with no IP address or user agent recorded, and no
    /// request cookies: with [`multi_session`](crate::SessionConfigBuilder::multi_session), the
    /// sign-in then always adds its `_multi-` cookie and ends none of the user's earlier
    /// sessions, since it cannot see the browser's; nor can it expire a cookie cache Better
    /// Auth's server set when the layer keeps none. Use [`from_headers`](Self::from_headers)
    /// (what the `Sessions` extractor does) to apply `maximumSessions` and that clean-up.
    pub fn new() -> Self {
        Self {
            remember_me: true,
            ip_address: None,
            user_agent: None,
            multi: None,
            dont_remember_seen: None,
            second_factor: false,
            cache_chunks: Vec::new(),
            cache_seen: false,
            others: Vec::new(),
        }
    }

    /// Options filled from a request: its `User-Agent`, its client IP from the configured
    /// [`ip_address_headers`](crate::SessionConfigBuilder::ip_address_headers) (and
    /// [`trusted_proxies`](crate::SessionConfigBuilder::trusted_proxies)), and, with
    /// [`multi_session`](crate::SessionConfigBuilder::multi_session), the browser's
    /// multi-session cookies (a sign-in ends this user's earlier sessions among them and
    /// respects `maximumSessions`, as Better Auth's plugin does), and the cookie cache it
    /// carried (replaced by the new session's, or expired when the layer keeps none).
    pub fn from_headers(headers: &HeaderMap, config: &SessionConfig) -> Self {
        let ip_address = config.ip.client_ip(headers);
        let cache_chunks = config.cookies.session_data.chunk_names(headers);
        let cache_seen = !cache_chunks.is_empty() || config.cookies.session_data.carried(headers);
        Self {
            remember_me: true,
            ip_address,
            user_agent: user_agent(headers),
            multi: config
                .multi_session
                .map(|_| crate::multi::read(config, headers)),
            dont_remember_seen: Some(crate::credential::DontRemember::new(headers).get(config)),
            second_factor: false,
            cache_chunks,
            cache_seen,
            others: config.cookies.others_carried(headers),
        }
    }

    /// The chunks of the cookie cache the request carried.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn cache_chunks(&self) -> &[String] {
        &self.cache_chunks
    }

    /// The deletions of Better Auth's other sign-in cookies the request carried.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn others(&self) -> Vec<HeaderValue> {
        self.others.clone()
    }

    /// `false` gives Better Auth's "don't remember me" session: it lasts one day whatever
    /// `expiresIn` is, its cookie has no `Max-Age` (it ends with the browser session), a signed
    /// `dont_remember` cookie is set, and it is never refreshed. Default: `true`.
    pub fn remember_me(mut self, remember: bool) -> Self {
        self.remember_me = remember;
        self
    }

    /// Says that the caller has verified the user's second factor, or that this sign-in is of
    /// a kind Better Auth's two-factor plugin does not gate (its gate covers the password
    /// sign-ins `/sign-in/email`, `/sign-in/username` and `/sign-in/phone-number`; social
    /// sign-ins, magic links and passkeys pass). Without it, a user whose `twoFactorEnabled`
    /// is true is refused with [`SessionError::SecondFactorRequired`] and no session is
    /// written. Default: not verified.
    pub fn second_factor_verified(mut self) -> Self {
        self.second_factor = true;
        self
    }

    /// The client IP address recorded on the session. Default: none (stored as `""`).
    pub fn ip_address(mut self, ip: impl Into<String>) -> Self {
        self.ip_address = Some(ip.into());
        self
    }

    /// The client user agent recorded on the session. Default: none (stored as `""`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }
}

/// `Set-Cookie` headers to send with a response, produced by a sign-in or sign-out.
///
/// With the `axum` feature it is an `IntoResponseParts`; elsewhere call
/// [`apply`](SetCookies::apply). Either way a response that gets any cookie also gets
/// `Cache-Control: no-store` and `Vary: Cookie`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use = "the cookies only take effect when added to the response"]
pub struct SetCookies {
    cookies: Vec<HeaderValue>,
    auth_token: Option<String>,
}

impl SetCookies {
    pub(crate) fn new(cookies: Vec<HeaderValue>) -> Self {
        Self {
            cookies,
            auth_token: None,
        }
    }

    /// The `Set-Cookie` values.
    pub fn iter(&self) -> impl Iterator<Item = &HeaderValue> {
        self.cookies.iter()
    }

    /// The `set-auth-token` value sent along (bearer mode only).
    pub fn auth_token(&self) -> Option<&str> {
        self.auth_token.as_deref()
    }

    /// Appends the cookies to `headers`, with `Cache-Control: no-store` and `Vary: Cookie` when
    /// there is any, and in bearer mode `set-auth-token` and `Access-Control-Expose-Headers`.
    pub fn apply(self, headers: &mut HeaderMap) {
        if let Some(token) = &self.auth_token {
            set_auth_token(headers, token);
        }
        if self.cookies.is_empty() {
            return;
        }
        for cookie in self.cookies {
            headers.append(SET_COOKIE, cookie);
        }
        mark_uncacheable(headers);
    }
}

/// The result of [`SessionManager::sign_in`]. Send its cookies with the response (it is an
/// axum `IntoResponseParts`): dropping it leaves a session nobody can use.
#[derive(Clone, Debug)]
#[non_exhaustive]
#[must_use = "the session only reaches the browser if its cookies are sent with the response"]
pub struct SignedIn {
    /// The session row written.
    pub session: Session,
    /// The signed value `token.signature` (not URL-encoded), as Better Auth's bearer plugin
    /// returns it in `set-auth-token`.
    pub signed_token: String,
    /// The cookies to send: the session cookie, `dont_remember` handling, and with those
    /// features the cookie cache and the `_multi-` cookie.
    pub cookies: SetCookies,
}

/// What [`SessionManager::delete_linked_anonymous`] deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuestRemoval {
    /// Nothing: the previous session was not a guest's, the same user signed in, the new user
    /// is anonymous too, or deleting guests is off.
    Kept,
    /// The guest's row and their sessions (accounts go with the row where the foreign key
    /// cascades, as Better Auth's migrations make it).
    UserAndSessions,
    /// The guest's sessions: the store keeps no users (Redis alone).
    SessionsOnly,
}

impl SessionManager {
    /// A manager for `store` with `config`. [`SessionLayer::manager`](crate::SessionLayer::manager)
    /// gives the layer's own.
    pub fn new(config: SessionConfig, store: impl SessionStore) -> Self {
        store.session_lifetime(config.lifetimes.expires_in);
        Self::from_parts(Arc::new(config), AnyStore::new(store))
    }

    pub(crate) fn from_parts(config: Arc<SessionConfig>, store: AnyStore) -> Self {
        Self {
            inner: Arc::new(Inner { config, store }),
        }
    }

    /// The configuration this manager signs with.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// The store, erased.
    pub fn store(&self) -> &AnyStore {
        &self.inner.store
    }

    /// Creates a session for `user` and returns the cookies that carry it.
    ///
    /// The token is 32 characters of `[A-Za-z0-9]` from the OS CSPRNG and the session `id` is a
    /// separate value, as in Better Auth. A remembered session lasts `expiresIn`; a "don't
    /// remember me" session lasts one day. For SQL stores the user row must already exist.
    ///
    /// # Bans (Better Auth's admin plugin)
    ///
    /// As Better Auth's session-creation hook does, the user's row is read again from the store
    /// (stores without users, such as Redis alone, check `user` as given): a user whose
    /// `banned` column is true is refused with [`SessionError::Banned`] and no session is
    /// written, unless `banExpires` has passed, in which case the ban is lifted in the store
    /// (`banned = false`, `banReason` and `banExpires` cleared) and the sign-in proceeds.
    /// Answer a refusal as Better Auth does: `403` with `{"code":"BANNED_USER"}`
    /// ([`SessionError::status`], [`SessionError::code`]). Sessions that already exist are not
    /// affected (Better Auth deletes them when it bans a user).
    ///
    /// # Two-factor authentication (Better Auth's two-factor plugin)
    ///
    /// A user whose `twoFactorEnabled` is true (in the stored row, else in `user`) is refused
    /// with [`SessionError::SecondFactorRequired`] and no session is written, unless `options`
    /// say [`second_factor_verified`](SignIn::second_factor_verified): Better Auth's password
    /// sign-in gives such a user no session until the second factor is verified, and a
    /// password checked in Rust must not get around it.
    ///
    /// # Errors
    ///
    /// [`SessionError::Banned`] for a banned user; [`SessionError::SecondFactorRequired`] for
    /// a user with two-factor authentication without
    /// [`second_factor_verified`](SignIn::second_factor_verified); [`SessionError::Store`]
    /// when the user cannot be read or the row cannot be written.
    pub async fn sign_in(&self, user: &User, options: SignIn) -> Result<SignedIn, SessionError> {
        let config = self.config();
        let now = config.clock.now();
        // The stored row, when the store keeps users (with a lapsed ban lifted), is what the
        // session is written with, as Better Auth reads the user again for it.
        let stored_user = self.admit(user, now).await?;
        let user = stored_user.as_ref().unwrap_or(user);
        if user.two_factor_enabled() && !options.second_factor {
            tracing::info!(user_id = %user.id, reason = "second_factor_required", "refused a sign-in");
            return Err(SessionError::SecondFactorRequired);
        }
        let lifetime = config.lifetimes.of_new_session(options.remember_me);
        let token = generate_id(32);
        let session = Session {
            id: generate_id(32),
            // The store sees the storage key (the token, or its hash when hashing at rest).
            token: config.storage_key(&token).as_str().to_owned(),
            user_id: user.id.clone(),
            expires_at: time_fmt::truncate_ms(now + lifetime),
            created_at: now,
            updated_at: now,
            ip_address: Some(options.ip_address.unwrap_or_default()),
            user_agent: Some(options.user_agent.unwrap_or_default()),
            extra: Map::new(),
        };
        let session = self.store().create(&session, user).await?;
        let (signer, cookie) = (&config.keys.signer, &config.cookies);
        let mut cookies = vec![cookie.session.header(
            &signer.sign_cookie_value(&token),
            options.remember_me.then_some(config.lifetimes.expires_in),
        )];
        if options.remember_me {
            // Better Auth 1.7 expires a leftover "don't remember me" marker on a remembered
            // sign-in, or the new session would never be refreshed: when the request carried
            // one (or, without the request's headers, in any case).
            if options.dont_remember_seen != Some(false) {
                cookies.push(cookie.dont_remember.expired());
            }
        } else {
            cookies.push(
                cookie
                    .dont_remember
                    .header(&signer.sign_cookie_value("true"), None),
            );
        }
        // Better Auth's `setSessionCookie` ends with the cookie cache: without it, the cache of
        // the account signed in before stays in the browser, and helpers that trust the cache
        // alone (Better Auth's `getCookieCache`) keep showing that account.
        if let Some(cache) = &config.cache {
            cookies.extend(crate::cookie_cache::issue(
                signer,
                cache,
                &cookie.session_data,
                &Authenticated::new(session.clone(), user.clone()),
                now,
                !options.remember_me,
                &options.cache_chunks,
            ));
        } else if options.cache_seen {
            // The layer keeps no cookie cache, but Better Auth's server may: the cache of the
            // account signed in before, which the request carried, would outlive the sign-in.
            cookies.extend(crate::cookie_cache::expire_all(
                &cookie.session_data,
                &options.cache_chunks,
            ));
        }
        if let Some(maximum) = config.multi_session {
            let value = signer.sign_cookie_value(&token);
            self.add_multi_session(
                &session,
                &token,
                &value,
                options.multi,
                maximum,
                &mut cookies,
            )
            .await;
        }
        tracing::debug!(user_id = %user.id, "signed in");
        let signed_token = signer.sign_raw(&token);
        let auth_token = (config.guards.bearer != Bearer::Off).then(|| signed_token.clone());
        Ok(SignedIn {
            signed_token,
            session,
            cookies: SetCookies {
                cookies,
                auth_token,
            },
        })
    }

    /// Better Auth's `multiSession()` after-hook for a new session: ends this user's earlier
    /// sessions named by the browser's verified `_multi-` cookies (and expires those cookies),
    /// then adds the new session's cookie unless the browser already holds `maximum`.
    async fn add_multi_session(
        &self,
        session: &Session,
        token: &str,
        signed_value: &str,
        request: Option<MultiCookies>,
        maximum: usize,
        cookies: &mut Vec<HeaderValue>,
    ) {
        let config = self.config();
        let request = request.unwrap_or_default();
        let mut ended = 0;
        for cookie in &request.verified {
            let key = config.storage_key(&cookie.token);
            let same_user = match self.store().find(&key).await {
                Ok(found) => found.is_some_and(|f| f.session.user_id == session.user_id),
                Err(error) => {
                    tracing::warn!(%error, "could not read a multi-session cookie's session");
                    false
                }
            };
            if same_user {
                if let Err(error) = self.store().delete(&key).await {
                    tracing::warn!(%error, "could not end this user's earlier session");
                    continue;
                }
                cookies.push(crate::multi::expire(config, &cookie.name));
                ended += 1;
            }
        }
        let held = request.count - ended + usize::from(request.mentions_session_cookie);
        if held > maximum {
            tracing::debug!(
                held,
                maximum,
                "the browser holds the most multi-session cookies allowed; none added"
            );
            return;
        }
        cookies.push(crate::multi::set(config, token, signed_value));
    }

    /// Ends the session of every multi-session cookie in `multi` that verified (whoever's
    /// it is, as Better Auth's sign-out), and returns the cookies that expire them.
    async fn end_multi_sessions(
        &self,
        multi: &MultiCookies,
    ) -> Result<Vec<HeaderValue>, SessionError> {
        let config = self.config();
        let mut cookies = Vec::with_capacity(multi.verified.len());
        for cookie in &multi.verified {
            self.store()
                .delete(&config.storage_key(&cookie.token))
                .await?;
            cookies.push(crate::multi::expire(config, &cookie.name));
        }
        Ok(cookies)
    }

    /// Signs out the browser that sent `headers`: deletes the session its session cookie (or,
    /// in bearer mode, its bearer value) names and, with
    /// [`multi_session`](crate::SessionConfigBuilder::multi_session), every session named by
    /// one of its `_multi-` cookies that verifies; returns the cookies that clear them all,
    /// the cookie cache's chunks among them, and Better Auth's account cookie (with its chunks)
    /// and `oauth_state` when the request carries them, as its `deleteSessionCookie` does.
    /// Values that do not verify delete nothing. (`Sessions::sign_out` does the same for axum
    /// handlers.)
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when a session cannot be deleted; the cookies are then not
    /// cleared, so the user can retry.
    pub async fn sign_out_request(&self, headers: &HeaderMap) -> Result<SetCookies, SessionError> {
        let config = self.config();
        let mut cookies = self.clear_cookies();
        if let Some(token) = crate::credential::sign_out_token(config, headers) {
            self.store().delete(&config.storage_key(&token)).await?;
        }
        if config.multi_session.is_some() {
            let multi = crate::multi::read(config, headers);
            cookies
                .cookies
                .extend(self.end_multi_sessions(&multi).await?);
        }
        let chunks = config.cookies.session_data.chunk_names(headers);
        self.expire_carried(
            &chunks,
            config.cookies.others_carried(headers),
            &mut cookies,
        );
        Ok(cookies)
    }

    /// Adds to a sign-out's `cookies` the expiries of the cache-cookie chunks named `chunks`
    /// and `others` (Better Auth's other sign-in cookies the request carried).
    pub(crate) fn expire_carried(
        &self,
        chunks: &[String],
        others: Vec<HeaderValue>,
        cookies: &mut SetCookies,
    ) {
        let spec = &self.config().cookies.session_data;
        cookies
            .cookies
            .extend(chunks.iter().map(|name| spec.renamed(name).expired()));
        cookies.cookies.extend(others);
    }

    /// Ends the sessions of a request's multi-session cookies and adds their expiries to
    /// `cookies` (for [`Sessions::sign_out`](crate::extract::Sessions::sign_out)).
    #[cfg(feature = "axum")]
    pub(crate) async fn sign_out_multi(
        &self,
        multi: Option<&MultiCookies>,
        cookies: &mut SetCookies,
    ) -> Result<(), SessionError> {
        if let Some(multi) = multi {
            cookies
                .cookies
                .extend(self.end_multi_sessions(multi).await?);
        }
        Ok(())
    }

    /// Applies the admin plugin's ban to a sign-in of `user` at `now`, and returns the user's
    /// stored row (read again after a lapsed ban is lifted), when the store keeps users.
    async fn admit(
        &self,
        user: &User,
        now: time::OffsetDateTime,
    ) -> Result<Option<User>, SessionError> {
        let current = self.store().find_user(&user.id).await?;
        let Some(ban) = current.as_ref().unwrap_or(user).ban() else {
            return Ok(current);
        };
        if ban.has_ended(now) {
            self.store().lift_ban(&user.id, now).await?;
            tracing::info!(user_id = %user.id, "lifted an expired ban at sign-in");
            // A store without user rows (Redis alone) keeps the user inside each session:
            // the new one must not carry the ban just lifted.
            let stored = self.store().find_user(&user.id).await?;
            return Ok(Some(stored.unwrap_or_else(|| lifted(user, now))));
        }
        tracing::info!(user_id = %user.id, reason = "banned_user", "refused a sign-in");
        Err(SessionError::Banned(ban))
    }

    /// Deletes the session of `token` (the token a session cookie or bearer value carries) and
    /// returns the cookies that clear it from the browser: the session cookie, the cookie
    /// cache and `dont_remember`, not the cache's chunks, the `_multi-` cookies or Better
    /// Auth's account and `oauth_state` cookies the browser may also hold, which only the
    /// request shows ([`sign_out_request`](Self::sign_out_request) and the `Sessions`
    /// extractor clear those too).
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the row cannot be deleted; the cookies are then not
    /// cleared, so the user can retry.
    pub async fn sign_out(&self, token: &str) -> Result<SetCookies, SessionError> {
        self.store()
            .delete(&self.config().storage_key(token))
            .await?;
        Ok(self.clear_cookies())
    }

    /// Deletes `session` (as found by the layer or returned by [`list`](Self::list)) and
    /// returns the cookies that clear it.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the row cannot be deleted.
    pub async fn sign_out_session(&self, session: &Session) -> Result<SetCookies, SessionError> {
        self.store().delete(&session.storage_key()).await?;
        Ok(self.clear_cookies())
    }

    /// Deletes the session of `token` (the token a session cookie or bearer value carries, for
    /// example another device's), without touching cookies.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the row cannot be deleted.
    pub async fn revoke(&self, token: &str) -> Result<(), SessionError> {
        Ok(self
            .store()
            .delete(&self.config().storage_key(token))
            .await?)
    }

    /// Deletes `session` (as returned by [`list`](Self::list)), without touching cookies.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the row cannot be deleted.
    pub async fn revoke_session(&self, session: &Session) -> Result<(), SessionError> {
        Ok(self.store().delete(&session.storage_key()).await?)
    }

    /// Deletes the session stored under `key` (the `token` of a session [`list`](Self::list)
    /// returned, [`Session::storage_key`]) only if it belongs to `user_id`, as Better Auth's
    /// `revoke-session` endpoint does; returns whether it was deleted. Use this for requests
    /// where a user revokes one of their own sessions.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the store cannot be read or written.
    pub async fn revoke_own(
        &self,
        user_id: &str,
        key: &StorageKey<'_>,
    ) -> Result<bool, SessionError> {
        match self.store().find(key).await? {
            Some(found) if found.session.user_id == user_id => {
                self.store().delete(key).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Better Auth's anonymous plugin after a sign-in: when `previous` (the request's session
    /// before it signed `user` in) was a guest's (`isAnonymous`) and `user` is another,
    /// non-anonymous user, deletes the guest and their sessions
    /// ([`SessionStore::remove_user`](crate::SessionStore::remove_user)), as the plugin does
    /// when a guest links an account. Only with
    /// [`delete_anonymous_users(true)`](crate::SessionConfigBuilder::delete_anonymous_users).
    /// Where the store keeps users, both rows are read again first: a guest whose row is no
    /// longer anonymous (the request's copy may be a cookie cache's) is kept, and `user` is
    /// judged by its stored row (its id as the store spells it).
    /// [`Sessions::sign_in`](crate::extract::Sessions::sign_in) calls it; call it after
    /// [`sign_in`](Self::sign_in) where the request's session is at hand otherwise
    /// ([`AuthContext::authenticated`](crate::AuthContext::authenticated)).
    ///
    /// Returns what went: [`GuestRemoval::Kept`] when nothing applied,
    /// [`GuestRemoval::UserAndSessions`], or [`GuestRemoval::SessionsOnly`] from a store
    /// without users (Redis alone: the guest's row is in Better Auth's database, for it or the
    /// app to delete).
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when a row cannot be read or deleted. The SQL stores delete the
    /// sessions and then the row, as Better Auth does; a foreign key of the app's that
    /// restricts the row's deletion leaves the guest without sessions.
    pub async fn delete_linked_anonymous(
        &self,
        previous: &Authenticated,
        user: &User,
    ) -> Result<GuestRemoval, SessionError> {
        let guest = &previous.user;
        if !self.config().delete_anonymous || !guest.is_anonymous() || guest.id == user.id {
            return Ok(GuestRemoval::Kept);
        }
        let store = self.store();
        let guest_row = store.find_user(&guest.id).await?;
        if guest_row.as_ref().is_some_and(|row| !row.is_anonymous()) {
            return Ok(GuestRemoval::Kept);
        }
        let new_row = store.find_user(&user.id).await?;
        let new_user = new_row.as_ref().unwrap_or(user);
        if new_user.id == guest.id || new_user.is_anonymous() {
            return Ok(GuestRemoval::Kept);
        }
        Ok(if store.remove_user(&guest.id).await? {
            GuestRemoval::UserAndSessions
        } else {
            GuestRemoval::SessionsOnly
        })
    }

    /// Deletes every session of `user_id` ("sign out everywhere"); returns how many.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the rows cannot be deleted.
    pub async fn revoke_all(&self, user_id: &str) -> Result<u64, SessionError> {
        Ok(self.store().delete_user_sessions(user_id).await?)
    }

    /// The live sessions of `user_id`, earliest expiry first.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the store cannot be read.
    pub async fn list(&self, user_id: &str) -> Result<Vec<Session>, SessionError> {
        let now = self.config().clock.now();
        Ok(self.store().list_user_sessions(user_id, now).await?)
    }

    /// Writes, reads and deletes a probe session for `probe_user` through the store, and returns
    /// how long the round trip took: a health check for the app to expose. SQL stores need
    /// `probe_user` to exist.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] naming the step that failed, or [`SessionError::HealthCheck`]
    /// when the probe was written but could not be read back.
    pub async fn health_check(
        &self,
        probe_user: &User,
    ) -> Result<std::time::Duration, SessionError> {
        let started = std::time::Instant::now();
        let now = self.config().clock.now();
        let probe = Session {
            id: generate_id(32),
            token: format!("health-check-{}", generate_id(20)),
            user_id: probe_user.id.clone(),
            expires_at: time_fmt::truncate_ms(now + Duration::minutes(1)),
            created_at: now,
            updated_at: now,
            ip_address: None,
            user_agent: Some("tower-auth-session health check".to_owned()),
            extra: Map::new(),
        };
        let probe = self.store().create(&probe, probe_user).await?;
        let read = self.store().find(&probe.storage_key()).await;
        let deleted = self.store().purge(&probe.storage_key()).await;
        match read? {
            Some(found) if found.session.id == probe.id => {}
            _ => {
                return Err(SessionError::HealthCheck(
                    "the probe session was written but not found",
                ))
            }
        }
        deleted?;
        Ok(started.elapsed())
    }

    /// Starts a background task that deletes expired sessions every `every`, at most `batch`
    /// at a time per pass (repeating passes while full batches come back). Stores that expire
    /// sessions by themselves (Redis) report nothing to delete. Abort the returned handle to
    /// stop it. Needs a Tokio runtime.
    pub fn spawn_sweeper(
        &self,
        every: std::time::Duration,
        batch: u64,
    ) -> tokio::task::JoinHandle<()> {
        let manager = self.clone();
        // `interval` panics on zero: once a millisecond is the least.
        let every = every.max(std::time::Duration::from_millis(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match manager.sweep_expired(batch).await {
                    Ok(n) if n > 0 => tracing::debug!(deleted = n, "swept expired sessions"),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "expired-session sweep failed"),
                }
            }
        })
    }

    /// One sweep: deletes expired sessions in batches of at most `batch` until a batch comes
    /// back short; returns how many were deleted.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when a batch fails (earlier batches stay deleted).
    pub async fn sweep_expired(&self, batch: u64) -> Result<u64, SessionError> {
        let batch = batch.max(1);
        let mut total = 0;
        loop {
            let now = self.config().clock.now();
            let n = self.store().delete_expired_batch(now, batch).await?;
            total += n;
            if n < batch {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// The cookies that clear the session from a browser, without touching the store.
    pub fn clear_cookies(&self) -> SetCookies {
        SetCookies::new(self.config().cookies.clearing.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As Node hands the user agent to Better Auth: Latin-1, the first line.
    #[test]
    fn user_agents_read_as_node_reads_them() {
        let mut headers = HeaderMap::new();
        assert_eq!(user_agent(&headers), None);
        headers.append(
            http::header::USER_AGENT,
            HeaderValue::from_bytes(b"Mozilla \xc3\xa9").unwrap(),
        );
        assert_eq!(
            user_agent(&headers).as_deref(),
            Some("Mozilla \u{c3}\u{a9}")
        );
        headers.append(http::header::USER_AGENT, HeaderValue::from_static("second"));
        assert_eq!(
            user_agent(&headers).as_deref(),
            Some("Mozilla \u{c3}\u{a9}")
        );
    }
}
