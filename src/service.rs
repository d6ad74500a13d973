//! [`SessionService`]: header → codec → store → policy → extension → response cookies.

use std::borrow::Cow;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{
    ACCESS_CONTROL_EXPOSE_HEADERS, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER,
    SET_COOKIE, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use tower_service::Service;

use crate::codec::find_token_cookie;
use crate::config::{Bearer, OutagePolicy, SessionConfig};
use crate::cookie_cache;
use crate::error::StoreError;
use crate::future::ResponseFuture;
use crate::handle::SessionManager;
use crate::layer::Shared;
use crate::model::{AuthContext, Authenticated, SessionInfo};
use crate::policy::{judge, Verdict};
use crate::store::SessionStore;

/// The service built by [`SessionLayer`](crate::SessionLayer). See there for what it does.
pub struct SessionService<S, St> {
    inner: S,
    shared: Arc<Shared<St>>,
}

impl<S: Clone, St> Clone for SessionService<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: std::fmt::Debug, St> std::fmt::Debug for SessionService<S, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S, St> SessionService<S, St> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<St>>) -> Self {
        Self { inner, shared }
    }
}

/// The result of looking a verified token up.
#[allow(clippy::large_enum_variant)] // built once per request, never stored
pub(crate) enum Resolution {
    /// Signed in. `cookies` are the refreshed session cookie and cache-cookie updates.
    Authenticated {
        auth: Authenticated,
        cookies: Vec<HeaderValue>,
        info: SessionInfo,
    },
    /// Not signed in, and the cookies the request carried must be cleared (including these
    /// cache-cookie chunks).
    Rejected { chunks: Vec<String> },
    /// Not signed in, cookies left alone.
    Anonymous,
    /// The store failed or timed out: answer 503 and change nothing.
    Unavailable,
}

/// A verified credential: the token (borrowed from the header whenever it can be), whether a
/// previous secret verified it, and whether it came from `Authorization: Bearer`.
struct Credential<'h> {
    token: Cow<'h, str>,
    resign: bool,
    via_bearer: bool,
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    St: SessionStore,
    ReqBody: Send + 'static,
    ResBody: From<&'static str> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        let config = &shared.config;
        let raw_cookie = find_token_cookie(req.headers(), &config.session_cookie.name);
        if raw_cookie.is_some()
            && config
                .origins
                .refuses(req.method(), req.uri().path(), req.headers())
        {
            tracing::info!(
                reason = "untrusted_origin",
                "refused a cookie-authenticated write"
            );
            outcome("untrusted_origin");
            return ResponseFuture::ready(Ok(json_response(
                StatusCode::FORBIDDEN,
                r#"{"code":"INVALID_ORIGIN","message":"this request's Origin is not trusted for cookie-authenticated writes"}"#,
            )));
        }
        let had_cookie = raw_cookie.is_some();
        let credential = match raw_cookie {
            Some(raw) => config.unsign(raw).map(|(token, resign)| Credential {
                token,
                resign,
                via_bearer: false,
            }),
            None => bearer_token(config, req.headers()).map(|token| Credential {
                token,
                resign: false,
                via_bearer: true,
            }),
        };
        let Some(Credential {
            token,
            resign,
            via_bearer,
        }) = credential
        else {
            // No credential, or a malformed or forged one: anonymous, no store call, no
            // Set-Cookie.
            let reason = if had_cookie {
                "bad_signature"
            } else {
                "no_credential"
            };
            tracing::trace!(reason, "anonymous request");
            outcome(reason);
            insert_context(shared, req.extensions_mut(), None, SessionInfo::default());
            return ResponseFuture::passthrough(self.inner.call(req), Vec::new());
        };

        // Whatever can be decided without waiting (a cookie-cache hit, an in-memory store, a
        // cache hit) is served in place: no boxed future, no owned token.
        let pending = match resolve_now(shared, &token, resign, req.headers(), req.uri().path()) {
            Now::Done(resolution) => {
                // The resolution owns what it holds: the borrow of the headers ends here.
                return match settle(shared, resolution, via_bearer, req.extensions_mut()) {
                    Settled::Respond(response) => ResponseFuture::ready(Ok(response)),
                    Settled::Forward { cookies, .. } => {
                        ResponseFuture::passthrough(self.inner.call(req), cookies)
                    }
                };
            }
            Now::Later(pending) => pending,
        };
        let token = token.into_owned();
        // The inner service was driven to readiness in `poll_ready`; take that one and leave a
        // fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        ResponseFuture::boxed(Box::pin(async move {
            let resolution = resolve_later(&shared, &token, resign, req.headers(), pending).await;
            let (cookies, refreshed) =
                match settle(&shared, resolution, via_bearer, req.extensions_mut()) {
                    Settled::Respond(response) => return Ok(response),
                    Settled::Forward { cookies, refreshed } => (cookies, refreshed),
                };
            let mut response = inner.call(req).await?;
            append_cookies(response.headers_mut(), cookies);
            if refreshed && shared.config.bearer != Bearer::Off {
                set_auth_token(
                    response.headers_mut(),
                    &shared.config.signer.sign_raw(&token),
                );
            }
            Ok(response)
        }))
    }
}

/// The request's one extension: what the layer established, and a manager for the handler.
fn insert_context<St: SessionStore>(
    shared: &Arc<Shared<St>>,
    extensions: &mut http::Extensions,
    authenticated: Option<Authenticated>,
    info: SessionInfo,
) {
    extensions.insert(AuthContext::new(
        SessionManager::new(shared.clone()),
        authenticated,
        info,
    ));
}

/// What to do with a request once its session is resolved.
enum Settled<B> {
    /// Answer without calling the inner service (the store is unavailable).
    Respond(Response<B>),
    /// Call the inner service, then add these cookies; `refreshed` says the session was
    /// extended (a bearer client gets a new `set-auth-token`).
    Forward {
        cookies: Vec<HeaderValue>,
        refreshed: bool,
    },
}

/// Counts the outcome, inserts the request's [`AuthContext`] and says what the response needs.
fn settle<St: SessionStore, B: From<&'static str>>(
    shared: &Arc<Shared<St>>,
    resolution: Resolution,
    via_bearer: bool,
    extensions: &mut http::Extensions,
) -> Settled<B> {
    let config = &shared.config;
    let resolution = match resolution {
        // The opt-in alternative to failing closed; never "authenticated".
        Resolution::Unavailable if config.outage == OutagePolicy::Anonymous => {
            outcome("store_error_anonymous");
            Resolution::Anonymous
        }
        other => other,
    };
    let (authenticated, info, cookies) = match resolution {
        Resolution::Unavailable => {
            outcome("store_error");
            return Settled::Respond(json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"code":"SESSION_STORE_UNAVAILABLE","message":"sessions cannot be checked right now; retry shortly"}"#,
            ));
        }
        Resolution::Authenticated {
            auth,
            cookies,
            mut info,
        } => {
            info.via_bearer = via_bearer;
            outcome(if info.from_cache {
                "cache_hit"
            } else {
                "authenticated"
            });
            (Some(auth), info, cookies)
        }
        Resolution::Rejected { chunks } => {
            outcome("rejected");
            let mut cookies = clearing_cookies(config);
            cookies.extend(
                chunks
                    .iter()
                    .map(|n| config.expire_cookie(&config.session_data_cookie.renamed(n))),
            );
            (None, SessionInfo::default(), cookies)
        }
        Resolution::Anonymous => (None, SessionInfo::default(), Vec::new()),
    };
    insert_context(shared, extensions, authenticated, info);
    Settled::Forward {
        cookies,
        refreshed: info.refreshed,
    }
}

/// `Authorization: Bearer …` when the bearer mode allows it: a signed value is verified like
/// the cookie; a raw token only with [`Bearer::SignedOrRaw`].
fn bearer_token<'h>(config: &SessionConfig, headers: &'h HeaderMap) -> Option<Cow<'h, str>> {
    if config.bearer == Bearer::Off {
        return None;
    }
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let credential = value[7..].trim_ascii();
    if credential.contains(&b'.') {
        // Previous secrets verify bearer values too, so a rotation does not log out API
        // clients.
        return config.unsign(credential).map(|(token, _)| token);
    }
    let raw_ok = config.bearer == Bearer::SignedOrRaw
        && !credential.is_empty()
        && credential.len() <= 256
        && credential.iter().all(u8::is_ascii_alphanumeric);
    raw_ok
        .then(|| std::str::from_utf8(credential).ok().map(Cow::Borrowed))
        .flatten()
}

/// `set-auth-token: token.signature` (not URL-encoded, as Better Auth's bearer plugin sends it),
/// exposed to cross-origin scripts.
pub(crate) fn set_auth_token(headers: &mut HeaderMap, signed: &str) {
    if let Ok(value) = HeaderValue::try_from(signed) {
        headers.insert(HeaderName::from_static("set-auth-token"), value);
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

/// Runs one store call under the configured deadline.
async fn timed<T>(
    config: &SessionConfig,
    operation: &'static str,
    fut: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(config.store_timeout, fut).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Timeout {
            operation,
            millis: config.store_timeout.as_millis(),
        }),
    };
    store_metrics(operation, started.elapsed().as_secs_f64(), result.is_err());
    result
}

/// Store latency and errors, with literal labels (no allocation).
fn store_metrics(operation: &'static str, seconds: f64, failed: bool) {
    macro_rules! record {
        ($($op:literal),*) => {
            match operation {
                $($op => {
                    metrics::histogram!("tower_auth_session_store_seconds", "op" => $op).record(seconds);
                    if failed {
                        metrics::counter!("tower_auth_session_store_errors_total", "op" => $op).increment(1);
                    }
                })*
                _ => {}
            }
        };
    }
    record!("find", "extend", "delete");
}

/// A short, non-reversible tag for a token in logs (the first 8 hex digits of its SHA-256),
/// computed only when the event is actually recorded.
struct TokenTag<'a>(&'a str);

impl std::fmt::Display for TokenTag<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::config::sha256_hex(self.0)[..8])
    }
}

/// Counts one request outcome. Every label is a literal, so the `metrics` macros build their
/// keys statically: counting allocates nothing.
fn outcome(kind: &'static str) {
    macro_rules! count {
        ($($kind:literal),*) => {
            match kind {
                $($kind => metrics::counter!("tower_auth_session_requests_total", "outcome" => $kind).increment(1),)*
                _ => metrics::counter!("tower_auth_session_requests_total", "outcome" => "other").increment(1),
            }
        };
    }
    count!(
        "no_credential",
        "bad_signature",
        "untrusted_origin",
        "authenticated",
        "cache_hit",
        "rejected",
        "store_error",
        "store_error_anonymous"
    );
}

/// Removes a token from the in-flight refresh set when the refresh ends (or is cancelled).
struct RefreshSlot<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<String>>,
    key: String,
}

impl<'a> RefreshSlot<'a> {
    /// Claims the refresh of `key`; `None` when another request is already writing it.
    fn claim(
        set: &'a std::sync::Mutex<std::collections::HashSet<String>>,
        key: &str,
    ) -> Option<Self> {
        let mut guard = set.lock().unwrap_or_else(|e| e.into_inner());
        guard.insert(key.to_owned()).then(|| RefreshSlot {
            set,
            key: key.to_owned(),
        })
    }
}

impl Drop for RefreshSlot<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// Where the part of a resolution that needs no waiting stopped.
pub(crate) enum Now {
    /// Decided in place.
    Done(Resolution),
    /// The store must be asked, or written to: [`resolve_later`] goes on from here.
    Later(Pending),
}

/// What [`resolve_now`] found out before it had to stop, so nothing is done twice.
pub(crate) struct Pending {
    /// Cookies already decided (an unusable cache cookie's expiry).
    cookies: Vec<HeaderValue>,
    /// The cookie cache's chunk names, for clearing.
    chunks: Vec<String>,
    /// The `dont_remember` cookie, when it was read.
    dont_remember: Option<bool>,
    /// The store's answer, when it gave one at once, judged at `.1`.
    found: Option<(Found, time::OffsetDateTime)>,
}

/// A store answer judged by the policy.
enum Found {
    /// Final without any store write.
    Final(Resolution),
    /// Expired: delete it (conditionally), then reject.
    Expired,
    /// Due for a refresh to the given expiry.
    Refresh(Authenticated, time::OffsetDateTime),
}

/// The request's side of a resolution: what judging a store answer reads, and the cookies it
/// adds to. Built by [`resolve_now`], rebuilt from [`Pending`] by [`resolve_later`].
struct Judging<'a> {
    config: &'a SessionConfig,
    /// The raw token (it signs cookies; the store knows it by its storage key).
    token: &'a str,
    /// A previous secret verified the cookie: a valid session gets it re-signed.
    resign: bool,
    dont_remember: DontRemember<'a>,
    cookies: Vec<HeaderValue>,
    chunks: Vec<String>,
}

/// Cookie cache → store (only what it answers at once) → policy, for a token whose signature
/// verified. `resign` says a previous secret verified the cookie.
pub(crate) fn resolve_now<St: SessionStore>(
    shared: &Shared<St>,
    token: &str,
    resign: bool,
    headers: &HeaderMap,
    path: &str,
) -> Now {
    let config = &shared.config;
    let key = config.storage_key(token);
    let (cache_value, chunks) = match &config.cookie_cache {
        Some(_) => cookie_cache::read(config, headers),
        None => (None, Vec::new()),
    };
    let mut j = Judging {
        config,
        token,
        resign,
        // Read only when it can change the answer (a due refresh, or a cookie's attributes).
        dont_remember: DontRemember::new(headers, None),
        cookies: Vec::new(),
        chunks,
    };

    // The cookie cache, when configured and the route does not demand an authoritative read.
    if let (Some(cache), Some(value)) = (&config.cookie_cache, &cache_value) {
        if !config
            .authoritative
            .iter()
            .any(|p| path.starts_with(p.as_str()))
        {
            let now = config.clock.now();
            if let Some(auth) = cookie_cache::verify(config, cache, value, &key, now) {
                if resign && !config.read_only {
                    let dont_remember = j.dont_remember.get(config);
                    j.cookies
                        .push(resigned_cookie(config, token, &auth, now, dont_remember));
                }
                return Now::Done(Resolution::Authenticated {
                    auth,
                    cookies: j.cookies,
                    info: SessionInfo {
                        from_cache: true,
                        ..SessionInfo::default()
                    },
                });
            }
            tracing::debug!(reason = "cookie cache invalid", "falling back to the store");
            if !config.read_only {
                // As Better Auth: expire the unusable cache cookie, then read the store.
                j.cookies
                    .extend(cookie_cache::expire_all(config, &j.chunks));
            }
        }
    }

    match shared.store.find_now(&key).map(|answer| j.judge(answer)) {
        Some((Found::Final(resolution), _)) => Now::Done(resolution),
        found => Now::Later(Pending {
            cookies: j.cookies,
            chunks: j.chunks,
            dont_remember: j.dont_remember.known,
            found,
        }),
    }
}

/// The rest of [`resolve_now`]: the store lookup when it could not answer at once, and the
/// writes (deleting an expired session, extending a due one).
pub(crate) async fn resolve_later<St: SessionStore>(
    shared: &Shared<St>,
    token: &str,
    resign: bool,
    headers: &HeaderMap,
    pending: Pending,
) -> Resolution {
    let config = &shared.config;
    let store = &shared.store;
    let key = config.storage_key(token);
    let key = key.as_ref();
    let mut j = Judging {
        config,
        token,
        resign,
        dont_remember: DontRemember::new(headers, pending.dont_remember),
        cookies: pending.cookies,
        chunks: pending.chunks,
    };
    let (found, now) = match pending.found {
        Some(found) => found,
        None => j.judge(timed(config, "find", store.find(key)).await),
    };
    match found {
        Found::Final(resolution) => resolution,
        Found::Expired => {
            tracing::debug!(reason = "expired", token = %TokenTag(token), "rejected a session");
            if let Err(error) = timed(config, "delete", store.delete_if_expired(key, now)).await {
                tracing::warn!(%error, "could not delete an expired session");
            }
            Resolution::Rejected { chunks: j.chunks }
        }
        Found::Refresh(mut auth, expires_at) => {
            let mut info = SessionInfo::default();
            // Coalesce: when another request is already extending this session, let it write.
            let Some(_slot) = RefreshSlot::claim(&shared.refreshing, key) else {
                tracing::trace!("refresh already in flight");
                return j.finish(auth, info, now);
            };
            match timed(config, "extend", store.extend(key, expires_at, now)).await {
                Ok(Some(session)) => {
                    auth.session = Arc::new(session);
                    info.refreshed = true;
                    metrics::counter!("tower_auth_session_refreshes_total").increment(1);
                    j.cookies.push(config.session_set_cookie(token, true));
                }
                Ok(None) => match reread(shared, key).await {
                    Some(Ok(fresh)) => auth = fresh,
                    Some(Err(resolution)) => return resolution,
                    None => return Resolution::Rejected { chunks: j.chunks },
                },
                Err(error) => {
                    // The session is valid; only its extension failed. Serve the request and
                    // try again on the next one.
                    tracing::warn!(%error, "could not extend a session");
                }
            }
            j.finish(auth, info, now)
        }
    }
}

impl Judging<'_> {
    /// Reads the clock and judges a store answer: everything that needs no store write is
    /// final here.
    fn judge(
        &mut self,
        answer: Result<Option<Authenticated>, StoreError>,
    ) -> (Found, time::OffsetDateTime) {
        let now = self.config.clock.now();
        (self.judge_at(answer, now), now)
    }

    fn judge_at(
        &mut self,
        answer: Result<Option<Authenticated>, StoreError>,
        now: time::OffsetDateTime,
    ) -> Found {
        let config = self.config;
        let found = match answer {
            Ok(found) => found,
            Err(StoreError::Corrupt { reason }) => {
                // A row this crate cannot read is not proof that the session is invalid
                // (another writer may use a layout we do not know): anonymous, but the cookies
                // are kept.
                tracing::warn!(%reason, "session row is unreadable; treating the request as anonymous");
                return Found::Final(Resolution::Anonymous);
            }
            Err(error) => {
                tracing::error!(%error, reason = "store_error", token = %TokenTag(self.token), "session store lookup failed");
                return Found::Final(Resolution::Unavailable);
            }
        };
        let Some(auth) = found else {
            tracing::debug!(
                reason = "unknown token or user missing",
                token = %TokenTag(self.token),
                "rejected a session"
            );
            return Found::Final(if config.read_only {
                Resolution::Anonymous
            } else {
                Resolution::Rejected {
                    chunks: std::mem::take(&mut self.chunks),
                }
            });
        };
        let verdict = self.dont_remember.judge(config, &auth.session, now);
        if config.read_only {
            // Never write: expired is anonymous (no deletion, no Set-Cookie), a due refresh is
            // only reported.
            return Found::Final(match verdict {
                Verdict::Expired => {
                    tracing::debug!(reason = "expired", "rejected a session (read-only)");
                    Resolution::Anonymous
                }
                Verdict::Refresh(_) | Verdict::Valid => Resolution::Authenticated {
                    auth,
                    cookies: Vec::new(),
                    info: SessionInfo {
                        needs_refresh: matches!(verdict, Verdict::Refresh(_)),
                        ..SessionInfo::default()
                    },
                },
            });
        }
        match verdict {
            Verdict::Expired => Found::Expired,
            Verdict::Refresh(expires_at) => Found::Refresh(auth, expires_at),
            Verdict::Valid => {
                if self.resign {
                    tracing::debug!("re-signing a cookie verified with a previous secret");
                    let dont_remember = self.dont_remember.get(config);
                    self.cookies.push(resigned_cookie(
                        config,
                        self.token,
                        &auth,
                        now,
                        dont_remember,
                    ));
                }
                Found::Final(self.finish(auth, SessionInfo::default(), now))
            }
        }
    }

    /// A signed-in resolution; as Better Auth, every store read re-issues the cache cookie.
    fn finish(
        &mut self,
        auth: Authenticated,
        info: SessionInfo,
        now: time::OffsetDateTime,
    ) -> Resolution {
        let config = self.config;
        let mut cookies = std::mem::take(&mut self.cookies);
        if let Some(cache) = &config.cookie_cache {
            let dont_remember = self.dont_remember.get(config);
            cookies.extend(cookie_cache::issue(
                config,
                cache,
                &auth,
                now,
                dont_remember,
                &self.chunks,
            ));
        }
        Resolution::Authenticated {
            auth,
            cookies,
            info,
        }
    }
}

/// The session cookie re-signed with the current secret, for its remaining lifetime.
fn resigned_cookie(
    config: &SessionConfig,
    token: &str,
    auth: &Authenticated,
    now: time::OffsetDateTime,
    dont_remember: bool,
) -> HeaderValue {
    let left = auth.session.expires_at - now;
    let value = config.signer.sign_cookie_value(token);
    config.set_cookie(
        &config.session_cookie,
        &value,
        (!dont_remember).then_some(left),
    )
}

/// The conditional extension touched nothing: someone else refreshed, signed out or revoked the
/// session concurrently. Read it again: `Some(Ok)` is a live session to serve (without a
/// cookie: whoever refreshed it sent one), `Some(Err)` a final answer, `None` "gone".
///
/// Only reached after a refresh was judged due, so the request carries no valid
/// `dont_remember` cookie.
async fn reread<St: SessionStore>(
    shared: &Shared<St>,
    token: &str,
) -> Option<Result<Authenticated, Resolution>> {
    let config = &shared.config;
    let found = timed(config, "find", shared.store.find(token)).await;
    let now = config.clock.now();
    match found {
        Ok(Some(auth)) => match judge(config, &auth.session, now, false) {
            Verdict::Expired => None,
            Verdict::Valid => Some(Ok(auth)),
            Verdict::Refresh(_) => {
                tracing::warn!("a due refresh wrote nothing; check that the store's date format matches the table");
                Some(Ok(auth))
            }
        },
        Ok(None) => None,
        Err(StoreError::Corrupt { .. }) => Some(Err(Resolution::Anonymous)),
        Err(_) => Some(Err(Resolution::Unavailable)),
    }
}

/// Whether the request carries a valid signed `dont_remember` cookie, found on first use:
/// most requests never need to scan the header for it a second time.
struct DontRemember<'h> {
    headers: &'h HeaderMap,
    known: Option<bool>,
}

impl<'h> DontRemember<'h> {
    fn new(headers: &'h HeaderMap, known: Option<bool>) -> Self {
        Self { headers, known }
    }

    fn get(&mut self, config: &SessionConfig) -> bool {
        let headers = self.headers;
        *self.known.get_or_insert_with(|| {
            find_token_cookie(headers, &config.dont_remember_cookie.name)
                .and_then(|raw| config.unsign(raw))
                .is_some_and(|(v, _)| v == "true")
        })
    }

    /// [`judge`], reading the cookie only for a due refresh: the one verdict it can change.
    fn judge(
        &mut self,
        config: &SessionConfig,
        session: &crate::model::Session,
        now: time::OffsetDateTime,
    ) -> Verdict {
        match judge(config, session, now, false) {
            Verdict::Refresh(_) if self.get(config) => Verdict::Valid,
            verdict => verdict,
        }
    }
}

/// `Max-Age=0` for the session token, the cookie cache and `dont_remember`, as Better Auth's
/// `deleteSessionCookie` emits them.
pub(crate) fn clearing_cookies(config: &SessionConfig) -> Vec<HeaderValue> {
    config.clearing.to_vec()
}

/// Appends the layer's cookies unless the handler already set a cookie of the same name (a
/// sign-in or sign-out made during this request wins), then marks the response uncacheable.
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

/// A JSON answer the layer gives without calling the inner service: `403` for an untrusted
/// origin, `503` (with `Retry-After`) when the store cannot be asked. Nobody is signed out.
fn json_response<B: From<&'static str>>(status: StatusCode, body: &'static str) -> Response<B> {
    let mut response = Response::new(B::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}
