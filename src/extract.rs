//! Axum extractors (feature `axum`), built on `axum-core` only.
//!
//! | extractor | when signed out |
//! |---|---|
//! | [`CurrentUser`] | rejects with `401` and a JSON body |
//! | [`CurrentSession`] | rejects with `401` and a JSON body |
//! | [`MaybeUser`] (or `Option<CurrentUser>`) | `None` |
//! | [`FreshSession`] | rejects with `401`; `403 SESSION_NOT_FRESH` when created more than `freshAge` ago |
//! | [`Sessions`] | always succeeds: sign in, sign out, list, revoke |
//! | [`AuthContext`], [`SessionInfo`] | always succeed: the layer's view of the request |
//!
//! All of them need [`SessionLayer`](crate::SessionLayer) in front of the route; without it
//! they reject with `500` and a message saying so, rather than silently treating every
//! request as anonymous.

use std::sync::Arc;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{HeaderValue, StatusCode};

use crate::context::AuthContext;
use crate::error::SessionError;
use crate::manager::{SessionManager, SetCookies, SignIn, SignedIn};
use crate::model::{Authenticated, Session, StorageKey, User};
use crate::policy::SessionInfo;
use crate::store::SessionStore;

/// Why an extractor refused the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The request is not signed in: `401 {"code":"UNAUTHORIZED",…}`.
    Unauthorized,
    /// `SessionLayer` is not installed in front of this route: `500`.
    MissingLayer,
    /// The session is older than `freshAge`: `403 {"code":"SESSION_NOT_FRESH",…}`.
    NotFresh,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                r#"{"code":"UNAUTHORIZED","message":"sign in to access this resource"}"#,
            ),
            Self::NotFresh => (
                StatusCode::FORBIDDEN,
                r#"{"code":"SESSION_NOT_FRESH","message":"Session is not fresh"}"#,
            ),
            Self::MissingLayer => (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"code":"SESSION_LAYER_MISSING","message":"tower_auth_session::SessionLayer is not installed in front of this route"}"#,
            ),
        };
        (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body,
        )
            .into_response()
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unauthorized => "the request is not signed in",
            Self::MissingLayer => "SessionLayer is not installed in front of this route",
            Self::NotFresh => "the session is not fresh enough for this route",
        })
    }
}

impl std::error::Error for Rejection {}

fn context(parts: &Parts) -> Result<&AuthContext, Rejection> {
    parts
        .extensions
        .get::<AuthContext>()
        .ok_or(Rejection::MissingLayer)
}

fn authenticated(parts: &Parts) -> Result<Option<&Authenticated>, Rejection> {
    context(parts).map(AuthContext::authenticated)
}

/// The signed-in user: of the session, or of a verified JWT.
fn user(parts: &Parts) -> Result<Option<&Arc<User>>, Rejection> {
    context(parts).map(AuthContext::user)
}

impl<S: Send + Sync> FromRequestParts<S> for AuthContext {
    type Rejection = Rejection;

    /// The whole context: signed in or not, how the request was treated, and the manager.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        context(parts).cloned()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SessionInfo {
    type Rejection = Rejection;

    /// How the layer treated the request (a refresh, a cookie-cache hit, a bearer token, a
    /// refresh left to Better Auth in read-only mode).
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        context(parts).map(AuthContext::info)
    }
}

/// The signed-in user (of a session, or of a verified Better Auth JWT with the `jwt`
/// feature); rejects with `401` when signed out.
///
/// The user row is shared with the request, not copied (`Arc`): fields read as usual, and
/// `Json(user)` serializes it.
///
/// ```
/// use tower_auth_session::extract::CurrentUser;
///
/// async fn me(CurrentUser(user): CurrentUser) -> String {
///     format!("hello {}", user.email)
/// }
/// # let _ = axum::Router::<()>::new().route("/me", axum::routing::get(me));
/// ```
#[derive(Clone, Debug)]
pub struct CurrentUser(pub Arc<User>);

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        user(parts)?
            .map(|u| Self(Arc::clone(u)))
            .ok_or(Rejection::Unauthorized)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for CurrentUser {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(user(parts)?.map(|u| Self(Arc::clone(u))))
    }
}

/// The signed-in session, required to be *fresh*: created less than
/// [`fresh_age`](crate::SessionConfigBuilder::fresh_age) ago (Better Auth's
/// `freshSessionMiddleware`), for sensitive routes such as changing a password. Rejects with
/// `401` when signed out and `403 {"code":"SESSION_NOT_FRESH"}` when the sign-in is too old.
#[derive(Clone, Debug)]
pub struct FreshSession(pub Authenticated);

impl<S: Send + Sync> FromRequestParts<S> for FreshSession {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let context = context(parts)?;
        let auth = context.authenticated().ok_or(Rejection::Unauthorized)?;
        let config = context.manager().config();
        if auth.is_fresh(config.clock().now(), config.fresh_age()) {
            Ok(Self(auth.clone()))
        } else {
            Err(Rejection::NotFresh)
        }
    }
}

/// The signed-in user, or `None`. Shared, not copied, like [`CurrentUser`].
#[derive(Clone, Debug)]
pub struct MaybeUser(pub Option<Arc<User>>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(user(parts)?.map(Arc::clone)))
    }
}

/// The signed-in session and user; rejects with `401` when signed out (and for a request
/// signed in by a JWT, which has no session row).
#[derive(Clone, Debug)]
pub struct CurrentSession(pub Authenticated);

impl<S: Send + Sync> FromRequestParts<S> for CurrentSession {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        authenticated(parts)?
            .cloned()
            .map(Self)
            .ok_or(Rejection::Unauthorized)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for CurrentSession {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(authenticated(parts)?.cloned().map(Self))
    }
}

/// Signs in and out from a handler. Carries the request's user agent and client IP for the
/// session row, and the current session, if any.
///
/// ```
/// use axum::Json;
/// use tower_auth_session::extract::Sessions;
/// use tower_auth_session::{SetCookies, User};
///
/// async fn sign_out(sessions: Sessions) -> Result<(SetCookies, &'static str), String> {
///     let cookies = sessions.sign_out().await.map_err(|e| e.to_string())?;
///     Ok((cookies, "bye"))
/// }
/// # let _ = axum::Router::<()>::new().route("/sign-out", axum::routing::post(sign_out));
/// ```
#[derive(Clone, Debug)]
pub struct Sessions {
    manager: SessionManager,
    current: Option<Authenticated>,
    request: SignIn,
    /// Without a current session, the token of the request's session cookie when it verifies
    /// (the layer may have decided on a JWT bearer instead, or found the session gone): what a
    /// sign-out deletes, as Better Auth's does.
    cookie_token: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Sessions {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let context = context(parts)?;
        let manager = context.manager().clone();
        let config = manager.config();
        let request = SignIn::from_headers(&parts.headers, config);
        let current = context.authenticated().cloned();
        let cookie_token = if current.is_none() {
            crate::credential::sign_out_token(config, &parts.headers)
                .map(std::borrow::Cow::into_owned)
        } else {
            None
        };
        Ok(Self {
            current,
            manager,
            request,
            cookie_token,
        })
    }
}

impl Sessions {
    /// Signs `user` in with a remembered session ([`SessionManager::sign_in`] with
    /// [`sign_in_options`](Self::sign_in_options)). With
    /// [`delete_anonymous_users`](crate::SessionConfigBuilder::delete_anonymous_users), a
    /// guest of Better Auth's anonymous plugin whose request this was is deleted afterwards
    /// (see [`sign_in_using`](Self::sign_in_using)).
    ///
    /// # Errors
    ///
    /// [`SessionError::Banned`] for a banned user, [`SessionError::SecondFactorRequired`] for
    /// a user with two-factor authentication on, [`SessionError::Store`] when the session
    /// cannot be written.
    pub async fn sign_in(&self, user: &User) -> Result<SignedIn, SessionError> {
        self.sign_in_using(user, self.request.clone()).await
    }

    /// Signs `user` in with `options` (start from [`sign_in_options`](Self::sign_in_options)).
    /// Like every sign-in of this extractor, with
    /// [`delete_anonymous_users`](crate::SessionConfigBuilder::delete_anonymous_users) a guest
    /// of Better Auth's anonymous plugin who signs in with a real account is deleted once the
    /// new session is written ([`SessionManager::delete_linked_anonymous`]; a failure there is
    /// logged, not returned, as the plugin logs it). Unlike Better Auth, whose after-hook does
    /// not run at `/two-factor/verify-*`, this includes a sign-in completing a second factor.
    ///
    /// # Errors
    ///
    /// As [`sign_in`](Self::sign_in).
    pub async fn sign_in_using(
        &self,
        user: &User,
        options: SignIn,
    ) -> Result<SignedIn, SessionError> {
        let signed = self.manager.sign_in(user, options).await?;
        if let Some(previous) = &self.current {
            if let Err(error) = self.manager.delete_linked_anonymous(previous, user).await {
                tracing::error!(
                    anonymous_user = %previous.user.id,
                    %error,
                    "could not delete the anonymous user who signed in with an account"
                );
            }
        }
        Ok(signed)
    }

    /// The options this request gives a sign-in ([`SignIn::from_headers`]), to change before
    /// [`sign_in_using`](Self::sign_in_using): for example, after the app has verified a
    /// two-factor user's second factor,
    /// `sessions.sign_in_using(&user, sessions.sign_in_options().second_factor_verified())`.
    pub fn sign_in_options(&self) -> SignIn {
        self.request.clone()
    }

    /// Signs `user` in; `remember_me: false` makes a browser-session cookie that lasts at most
    /// one day and is never refreshed, as Better Auth's `rememberMe: false`. A guest is
    /// deleted as with [`sign_in_using`](Self::sign_in_using).
    ///
    /// # Errors
    ///
    /// As [`sign_in`](Self::sign_in).
    pub async fn sign_in_with(
        &self,
        user: &User,
        remember_me: bool,
    ) -> Result<SignedIn, SessionError> {
        let options = self.request.clone().remember_me(remember_me);
        self.sign_in_using(user, options).await
    }

    /// Signs the current session out (deletes it) and returns the clearing cookies (the
    /// cookie cache's chunks among them, and Better Auth's account and `oauth_state` cookies
    /// the request carried). When the request is not signed in but carries a session cookie
    /// that verifies (a JWT bearer decided, or the session was not found), that cookie's
    /// session is deleted too, as Better Auth's sign-out does; otherwise only the cookies are
    /// cleared. With
    /// [`multi_session`](crate::SessionConfigBuilder::multi_session), every session named by
    /// one of the browser's `_multi-` cookies that verifies ends too, and those cookies are
    /// expired, as Better Auth's sign-out does.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the session cannot be deleted.
    pub async fn sign_out(&self) -> Result<SetCookies, SessionError> {
        let mut cookies = match (&self.current, &self.cookie_token) {
            (Some(current), _) => self.manager.sign_out_session(&current.session).await?,
            (None, Some(token)) => self.manager.sign_out(token).await?,
            (None, None) => self.manager.clear_cookies(),
        };
        self.manager
            .sign_out_multi(self.request.multi.as_ref(), &mut cookies)
            .await?;
        self.manager.expire_carried(
            self.request.cache_chunks(),
            self.request.others(),
            &mut cookies,
        );
        Ok(cookies)
    }

    /// The current session and user, if signed in.
    pub fn current(&self) -> Option<&Authenticated> {
        self.current.as_ref()
    }

    /// The live sessions of the current user (empty when signed out), without those an admin
    /// opened by impersonating them (the admin plugin's `impersonatedBy`), as Better Auth's
    /// `list-sessions` leaves them out. [`SessionManager::list`] lists them all. As Better
    /// Auth's endpoint, only for a fresh session (created within
    /// [`fresh_age`](crate::SessionConfigBuilder::fresh_age), one day by default; zero turns
    /// the check off): the list holds every session's token, which an old, perhaps stolen,
    /// cookie must not be enough to read.
    ///
    /// # Errors
    ///
    /// [`SessionError::NotFresh`] for a session older than `fresh_age` (`403`
    /// `SESSION_NOT_FRESH`); [`SessionError::Store`] when the store cannot be read.
    pub async fn list(&self) -> Result<Vec<Session>, SessionError> {
        match &self.current {
            Some(current) => {
                let config = self.manager.config();
                if !current.is_fresh(config.clock().now(), config.fresh_age()) {
                    return Err(SessionError::NotFresh);
                }
                let mut sessions = self.manager.list(&current.user.id).await?;
                sessions.retain(|s| !s.is_impersonation());
                Ok(sessions)
            }
            None => Ok(Vec::new()),
        }
    }

    /// Revokes one of the current user's own sessions, by the key [`list`](Self::list) gave it
    /// ([`Session::storage_key`]); others' are left alone, as Better Auth's `revoke-session`.
    /// When `key` is the request's own session, the result also carries the cookies that
    /// clear it (the cookie cache's chunks among them), as Better Auth's endpoint sends them:
    /// return it with the response, or the browser keeps a cache cookie that other readers
    /// trust until it expires.
    ///
    /// A session the layer took from the cookie cache is read from the store first, as Better
    /// Auth does for its revocation endpoints: one revoked meanwhile revokes nothing.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the store fails; no cookies are cleared then.
    pub async fn revoke(&self, key: &StorageKey<'_>) -> Result<Revoked, SessionError> {
        let Some(current) = self.authoritative().await? else {
            return Ok(Revoked::default());
        };
        let deleted = self.manager.revoke_own(&current.user.id, key).await?;
        let cookies = if *key == current.session.storage_key() {
            self.clearing_cookies()
        } else {
            SetCookies::default()
        };
        Ok(Revoked {
            deleted: u64::from(deleted),
            cookies,
        })
    }

    /// Revokes every session of the current user, this one included, and clears its cookies,
    /// as Better Auth's `revoke-sessions` ("sign out everywhere"). Signed out, nothing is
    /// deleted and only the cookies are cleared.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the sessions cannot be deleted; no cookies are cleared
    /// then.
    pub async fn revoke_all(&self) -> Result<Revoked, SessionError> {
        let deleted = match self.authoritative().await? {
            Some(current) => self.manager.revoke_all(&current.user.id).await?,
            None => 0,
        };
        Ok(Revoked {
            deleted,
            cookies: self.clearing_cookies(),
        })
    }

    /// Revokes every session of the current user except this one, as Better Auth's
    /// `revoke-other-sessions`: the live sessions [`SessionManager::list`] gives (those an
    /// admin opened by impersonating the user among them), one by one. No cookies change.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the store fails; the sessions deleted before the failure
    /// stay deleted.
    pub async fn revoke_others(&self) -> Result<Revoked, SessionError> {
        let Some(current) = self.authoritative().await? else {
            return Ok(Revoked::default());
        };
        let mut deleted = 0;
        for session in self.manager.list(&current.user.id).await? {
            if session.token != current.session.token {
                self.manager.revoke_session(&session).await?;
                deleted += 1;
            }
        }
        Ok(Revoked {
            deleted,
            cookies: SetCookies::default(),
        })
    }

    /// The request's session as the store holds it now, for the revocations: read again past
    /// the cookie cache (a cache cookie outlives a revocation made elsewhere by up to its
    /// `maxAge`) and past a `CachedStore`'s entry ([`SessionStore::find_fresh`]), as Better
    /// Auth's `sensitiveSessionMiddleware` reads it again for `revoke-session(s)`. `None` when
    /// it is gone or expired.
    async fn authoritative(&self) -> Result<Option<Authenticated>, SessionError> {
        let Some(current) = &self.current else {
            return Ok(None);
        };
        let now = self.manager.config().clock.now();
        let found = self
            .manager
            .store()
            .find_fresh(&current.session.storage_key())
            .await?;
        Ok(found.filter(|f| f.session.expires_at >= now))
    }

    /// The cookies that clear this request's session from the browser: the session cookie,
    /// the cache cookie with the chunks the request carried, the "don't remember me" marker,
    /// and Better Auth's account and `oauth_state` cookies the request carried.
    fn clearing_cookies(&self) -> SetCookies {
        let mut cookies = self.manager.clear_cookies();
        self.manager.expire_carried(
            self.request.cache_chunks(),
            self.request.others(),
            &mut cookies,
        );
        cookies
    }

    /// The manager, for revocations and other users' sessions.
    pub fn manager(&self) -> &SessionManager {
        &self.manager
    }
}

impl IntoResponseParts for SetCookies {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        self.apply(res.headers_mut());
        Ok(res)
    }
}

/// What [`Sessions::revoke`], [`revoke_all`](Sessions::revoke_all) and
/// [`revoke_others`](Sessions::revoke_others) did. Send it with the response (it is an
/// `IntoResponseParts`): when the request's own session ended, it carries the cookies that
/// clear it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use = "when the request's own session ended, its cookies are only cleared if this is sent with the response"]
pub struct Revoked {
    /// How many sessions were deleted.
    pub deleted: u64,
    /// The clearing cookies: empty unless the request's own session ended.
    pub cookies: SetCookies,
}

impl IntoResponseParts for Revoked {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        self.cookies.into_response_parts(res)
    }
}

impl IntoResponseParts for SignedIn {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        self.cookies.into_response_parts(res)
    }
}
