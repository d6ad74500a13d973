//! [`SessionService`]: the request path, in one direction.
//!
//! ```text
//! credential (cookie or bearer, key rotation)        credential.rs
//!   → resolution (cookie cache, store under deadline) resolve.rs
//!   → decision (every per-request rule, as data)      policy.rs
//!   → the store write the decision asks for           resolve.rs
//!   → the request extension                           context.rs
//!   → the inner service
//!   → the cookie plan, rendered once on the way out   plan.rs
//! ```
//!
//! Whatever can be decided without waiting (no credential, a forged one, a session answered
//! from memory or from the cookie cache, needing no write) is served in place: no boxed future,
//! no owned token. Everything else runs in one boxed future.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Extensions, Request, Response};
use time::OffsetDateTime;
use tower_service::Service;

use crate::config::SessionConfig;
use crate::context::AuthContext;
use crate::credential::{self, DontRemember, Read};
use crate::future::ResponseFuture;
use crate::manager::SessionManager;
use crate::metrics::Outcome;
use crate::model::Authenticated;
use crate::plan::{Parts, Render, SessionCookie};
use crate::policy::SessionInfo;
use crate::policy::{self, Decision, Facts, Lookup, Serve, Stage, Write};
use crate::resolve::{self, CacheRead, Extension, Refreshing};
use crate::respond::{JsonResponses, LayerRejection, RequestHead, RespondWith};
use crate::store::{AnyStore, SessionStore};

/// What the layer, its services, their futures and the manager share: built once.
pub(crate) struct Shared<St> {
    pub(crate) config: Arc<SessionConfig>,
    pub(crate) store: Arc<St>,
    /// Handed to every request in its [`AuthContext`].
    pub(crate) manager: SessionManager,
    pub(crate) refreshing: Refreshing,
}

impl<St: SessionStore> Shared<St> {
    pub(crate) fn new(config: SessionConfig, store: St) -> Self {
        store.session_lifetime(config.lifetimes.expires_in);
        let config = Arc::new(config);
        let store = Arc::new(store);
        Self {
            manager: SessionManager::from_parts(
                Arc::clone(&config),
                AnyStore::new(Arc::clone(&store)),
            ),
            config,
            store,
            refreshing: Refreshing::default(),
        }
    }
}

/// The service built by [`SessionLayer`](crate::SessionLayer). See there for what it does.
pub struct SessionService<S, St, R = JsonResponses> {
    inner: S,
    shared: Arc<Shared<St>>,
    respond: R,
}

impl<S: Clone, St, R: Clone> Clone for SessionService<S, St, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            respond: self.respond.clone(),
        }
    }
}

impl<S: std::fmt::Debug, St, R> std::fmt::Debug for SessionService<S, St, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S, St, R> SessionService<S, St, R> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<St>>, respond: R) -> Self {
        Self {
            inner,
            shared,
            respond,
        }
    }
}

/// Inserts the request's one extension: what the layer established, and the manager.
fn insert_context(
    manager: &SessionManager,
    extensions: &mut Extensions,
    authenticated: Option<Authenticated>,
    info: SessionInfo,
) {
    extensions.insert(AuthContext::new(manager.clone(), authenticated, info));
}

/// The plan of `serve`, with what rendering it needs, when it changes any cookie. Clearing the
/// session also expires the cache-cookie chunks the request carried when the layer's own cache
/// is off (and they were not read): Better Auth's server may have set them; and its other
/// sign-in cookies the request carried (the account cookie, `oauth_state`). With multi-session,
/// a session cookie sent again brings its `_multi-` cookies ([`crate::multi::on_refresh`]).
fn render(
    config: &SessionConfig,
    headers: &http::HeaderMap,
    serve: &Serve,
    token: &str,
    now: OffsetDateTime,
    mut chunks: Vec<String>,
) -> Option<Render> {
    let clear = serve.plan.session == SessionCookie::Clear;
    if clear && config.cache.is_none() {
        chunks = resolve::cache_chunks(config, headers);
    }
    let others = if clear {
        config.cookies.others_carried(headers)
    } else {
        Vec::new()
    };
    let multi = match (config.multi_session, serve.plan.session) {
        (Some(maximum), SessionCookie::Set { .. }) => {
            crate::multi::on_refresh(config, headers, token, maximum)
        }
        _ => Vec::new(),
    };
    (!serve.plan.is_empty()).then(|| Render {
        plan: serve.plan,
        token: token.to_owned(),
        auth: serve.auth.clone(),
        now,
        chunks,
        multi,
        others,
    })
}

/// Inserts the extension for a request that carried a JWT, and counts it.
#[cfg(feature = "jwt")]
fn insert_jwt(
    manager: &SessionManager,
    extensions: &mut Extensions,
    verified: Result<crate::jwt::JwtAuth, crate::jwt::JwtError>,
) {
    let auth = match verified {
        Ok(auth) => {
            Outcome::Jwt.count();
            Some(auth)
        }
        Err(error) => {
            tracing::debug!(reason = error.reason(), "refused a JWT");
            Outcome::JwtRejected.count();
            None
        }
    };
    extensions.insert(AuthContext::from_jwt(manager.clone(), auth));
}

#[cfg(feature = "jwt")]
impl<S, St, R> SessionService<S, St, R>
where
    St: SessionStore,
{
    /// A request whose bearer credential is a JWT: verified without the store, with the keys
    /// held (in place) or after fetching them (boxed). No cookie is read or written.
    fn jwt<ReqBody, ResBody>(
        &mut self,
        mut req: Request<ReqBody>,
        token: String,
    ) -> ResponseFuture<S::Future>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: 'static,
        ReqBody: Send + 'static,
        ResBody: Send + 'static,
    {
        use crate::jwt::Now;
        let shared = &*self.shared;
        let config = &*shared.config;
        let Some(verifier) = config.jwt.clone() else {
            // `credential::read` only reports a JWT when a verifier is configured.
            insert_context(
                &shared.manager,
                req.extensions_mut(),
                None,
                SessionInfo::default(),
            );
            return ResponseFuture::passthrough(self.inner.call(req), None);
        };
        let now = config.clock.now();
        match verifier.verify_now(&token, now) {
            Now::Done(verified) => {
                insert_jwt(&shared.manager, req.extensions_mut(), verified);
                ResponseFuture::passthrough(self.inner.call(req), None)
            }
            Now::Fetch => {
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let manager = shared.manager.clone();
                ResponseFuture::boxed(Box::pin(async move {
                    let verified = verifier.verify(&token, now).await;
                    insert_jwt(&manager, req.extensions_mut(), verified);
                    inner.call(req).await
                }))
            }
        }
    }
}

impl<S, St, R, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S, St, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    St: SessionStore,
    R: RespondWith<ResBody>,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        let config = &*shared.config;
        let credential = match credential::read(config, req.method(), req.uri(), req.headers()) {
            Read::Credential(credential) => credential,
            Read::Anonymous(outcome) => {
                // No credential, or a malformed or forged one: no store call, no Set-Cookie.
                tracing::trace!(reason = %outcome, "anonymous request");
                outcome.count();
                insert_context(
                    &shared.manager,
                    req.extensions_mut(),
                    None,
                    SessionInfo::default(),
                );
                return ResponseFuture::passthrough(self.inner.call(req), None);
            }
            #[cfg(feature = "jwt")]
            Read::Jwt(token) => {
                let token = token.to_owned();
                return self.jwt(req, token);
            }
            Read::UntrustedOrigin => {
                tracing::info!(
                    reason = "untrusted_origin",
                    "refused a cookie-authenticated write"
                );
                Outcome::UntrustedOrigin.count();
                let head = RequestHead::new(req.method(), req.uri(), req.headers());
                return ResponseFuture::ready(Ok(self
                    .respond
                    .respond(LayerRejection::UntrustedOrigin, &head)));
            }
        };

        let key = config.keys.storage_key(&credential.token);
        let mut cache = CacheRead::default();
        let authoritative = config.guards.is_authoritative(req.uri().path());
        let known = resolve::now(
            config,
            &*shared.store,
            &key,
            req.headers(),
            authoritative,
            &mut cache,
        );
        let mut pending = None;
        if let Some(lookup) = known {
            let now = config.clock.now();
            let mut dont_remember = DontRemember::new(req.headers());
            let decision = policy::decide(
                config,
                Facts {
                    lookup,
                    stage: Stage::First,
                    via: credential.via,
                    resign: credential.resign,
                    cache_cookie: cache.incoming,
                    dont_remember: &mut dont_remember,
                    now,
                    token: &credential.token,
                },
            );
            match decision {
                Decision::Serve(serve) => {
                    // Decided in place: the borrow of the headers ends with the rendering data.
                    serve.outcome.count();
                    let render = render(
                        config,
                        req.headers(),
                        &serve,
                        &credential.token,
                        now,
                        cache.chunks,
                    );
                    insert_context(
                        &shared.manager,
                        req.extensions_mut(),
                        serve.auth,
                        serve.info,
                    );
                    let render = render.map(|r| (r, Arc::clone(&shared.config)));
                    return ResponseFuture::passthrough(self.inner.call(req), render);
                }
                Decision::Respond(rejection, outcome) => {
                    outcome.count();
                    let head = RequestHead::new(req.method(), req.uri(), req.headers());
                    return ResponseFuture::ready(Ok(self.respond.respond(rejection, &head)));
                }
                write @ Decision::Write(_) => pending = Some(write),
            }
        }

        let token = credential.token.into_owned();
        let (via, resign, cache_cookie) = (credential.via, credential.resign, cache.incoming);
        let chunks = cache.chunks;
        // The inner service was driven to readiness in `poll_ready`; take that one and leave a
        // fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        let respond = self.respond.clone();
        ResponseFuture::boxed(Box::pin(async move {
            let config = &*shared.config;
            let store = &*shared.store;
            let key = config.keys.storage_key(&token);
            let mut dont_remember = DontRemember::new(req.headers());
            macro_rules! facts {
                ($lookup:expr, $stage:expr, $now:expr) => {
                    Facts {
                        lookup: $lookup,
                        stage: $stage,
                        via,
                        resign,
                        cache_cookie,
                        dont_remember: &mut dont_remember,
                        now: $now,
                        token: &token,
                    }
                };
            }
            let mut now = config.clock.now();
            let mut decision = match pending {
                Some(decision) => decision,
                None => {
                    let lookup = resolve::find(config, store, &key, authoritative).await;
                    now = config.clock.now();
                    policy::decide(config, facts!(lookup, Stage::First, now))
                }
            };
            let serve = loop {
                match decision {
                    Decision::Serve(serve) => break serve,
                    Decision::Respond(rejection, outcome) => {
                        outcome.count();
                        let head = RequestHead::new(req.method(), req.uri(), req.headers());
                        return Ok(respond.respond(rejection, &head));
                    }
                    Decision::Write(Write::DeleteExpired { now, then }) => {
                        resolve::delete_expired(config, store, &key, now).await;
                        break then;
                    }
                    Decision::Write(Write::Extend { auth, expires_at }) => {
                        let extension = resolve::extend(
                            config,
                            store,
                            &shared.refreshing,
                            &key,
                            expires_at,
                            now,
                        )
                        .await;
                        let (lookup, stage) = match extension {
                            Extension::Written(session) => (
                                Lookup::Extended(Authenticated {
                                    session: Arc::new(session),
                                    user: auth.user,
                                }),
                                Stage::First,
                            ),
                            Extension::NotWritten => (Lookup::NotExtended(auth), Stage::First),
                            Extension::Raced => (
                                resolve::find(config, store, &key, authoritative).await,
                                Stage::Reread,
                            ),
                        };
                        now = config.clock.now();
                        decision = policy::decide(config, facts!(lookup, stage, now));
                    }
                }
            };
            serve.outcome.count();
            let render = render(config, req.headers(), &serve, &token, now, chunks);
            insert_context(
                &shared.manager,
                req.extensions_mut(),
                serve.auth,
                serve.info,
            );
            let mut response = inner.call(req).await?;
            if let Some(render) = render {
                render.apply(Parts::of(config), response.headers_mut());
            }
            Ok(response)
        }))
    }
}
