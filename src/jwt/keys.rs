//! Where verification keys come from, and the cache in front of them.
//!
//! A [`KeySource`] fetches the whole key set: a JWKS URL ([`JwksUrl`], Better Auth's
//! `/api/auth/jwks`), the `jwks` table of the store's database
//! ([`SqlStore::jwks`](crate::store::SqlStore::jwks)), or a fixed [`JwkSet`]. The cache keeps the
//! last set and fetches again only when a token names a `kid` it does not hold or the set is
//! older than its maximum age, and then at most once per cool-down, however many requests ask:
//! a flood of made-up `kid`s costs at most one fetch per cool-down.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::jwk::{Jwk, JwkSet};
use crate::error::BoxError;

/// A boxed future, as [`KeySource::fetch`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Somewhere the whole set of verification keys can be fetched from.
pub trait KeySource: Send + Sync + 'static {
    /// Fetches the current key set. Tokens naming a `kid` the cache does not hold wait for
    /// it, so it should give up in bounded time ([`JwksUrl`] has its timeout, the SQL stores'
    /// `jwks` tables their deadlines).
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, BoxError>>;
}

/// A fixed key set: it never changes, so an unknown `kid` stays unknown.
impl KeySource for JwkSet {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, BoxError>> {
        let set = self.clone();
        Box::pin(async move { Ok(set) })
    }
}

/// A JWKS document over HTTP(S), such as Better Auth's `https://app.example.com/api/auth/jwks`.
///
/// HTTPS is verified against the operating system's certificate store. The body must be a JWKS
/// (`{"keys":[…]}`) of at most 1 MiB; redirects are not followed.
#[derive(Clone, Debug)]
pub struct JwksUrl {
    url: reqwest::Url,
    client: reqwest::Client,
}

/// The largest JWKS body read.
const MAX_JWKS_BYTES: usize = 1 << 20;

impl JwksUrl {
    /// The JWKS at `url`, fetched with a `timeout` per request.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`](crate::ConfigError::Invalid) for a URL that is not `http` or
    /// `https`, or when the HTTP client cannot be built.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, crate::error::ConfigError> {
        let invalid = |reason: String| crate::error::ConfigError::Invalid {
            option: "jwks_url",
            reason,
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| invalid(format!("{url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "{url:?} is not an http(s) URL; Better Auth serves its keys at <baseURL>/api/auth/jwks"
            )));
        }
        crate::rustls_provider::install();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            url: parsed,
            client,
        })
    }
}

impl KeySource for JwksUrl {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, BoxError>> {
        Box::pin(async move {
            let mut response = self
                .client
                .get(self.url.clone())
                .header(http::header::ACCEPT, "application/json")
                .send()
                .await?;
            if !response.status().is_success() {
                return Err(format!("{} answered {}", self.url, response.status()).into());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_JWKS_BYTES {
                    return Err(format!("{} sent more than 1 MiB", self.url).into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(JwkSet::from_json(&body)?)
        })
    }
}

/// What the cache can say about a `kid` without waiting.
pub(crate) enum Cached {
    /// The set holding the key (shared, not copied: [`Loaded::key`]).
    Key(Arc<Loaded>),
    /// Not held, and a fetch is allowed now (the set is missing, stale, or lacks the `kid`
    /// and the cool-down has passed): go and fetch.
    Fetch,
    /// Not held, and no fetch is allowed yet: the `kid` is unknown.
    Unknown,
}

/// A fetched key set.
pub(crate) struct Loaded {
    set: JwkSet,
    at: Instant,
}

impl Loaded {
    /// The key for `kid`.
    pub(crate) fn key(&self, kid: &str) -> Option<&Jwk> {
        self.set.get(kid)
    }
}

/// The fetch under way: every caller that needs it awaits it. It runs in a task of its own
/// (where there is a Tokio runtime), so it ends whatever becomes of the callers.
type Flight = futures_util::future::Shared<BoxFuture<'static, ()>>;

#[derive(Default)]
struct State {
    loaded: Option<Arc<Loaded>>,
    /// When the last fetch started (successful or not).
    last_fetch: Option<Instant>,
    /// The fetch under way, if any.
    flight: Option<Flight>,
}

/// What the cache shares with the fetch it starts.
struct Inner {
    source: Box<dyn KeySource>,
    state: RwLock<State>,
    fetches: std::sync::atomic::AtomicU64,
}

impl Inner {
    /// Fetches the set and keeps it (a failed fetch keeps the previous one), then ends the
    /// flight.
    async fn fetch(self: Arc<Self>) {
        let landing = Landing(&self);
        let fetched = self.source.fetch().await;
        {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            match fetched {
                Ok(set) => {
                    tracing::debug!(keys = set.len(), "fetched the JWT verification keys");
                    state.loaded = Some(Arc::new(Loaded {
                        set,
                        at: Instant::now(),
                    }));
                }
                Err(error) => {
                    tracing::warn!(%error, "could not fetch the JWT verification keys; keeping the previous ones");
                }
            }
        }
        drop(landing);
    }
}

/// Ends the flight however its fetch ends: a key source that panics, or a fetch whose task is
/// cancelled, must not leave it in place (no key set would be fetched again).
struct Landing<'a>(&'a Inner);

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        self.0
            .state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .flight = None;
    }
}

/// The last key set, and the rule for fetching again.
pub(crate) struct KeyCache {
    shared: Arc<Inner>,
    cooldown: Duration,
    max_age: Duration,
}

impl KeyCache {
    pub(crate) fn new(source: Box<dyn KeySource>, cooldown: Duration, max_age: Duration) -> Self {
        Self {
            shared: Arc::new(Inner {
                source,
                state: RwLock::default(),
                fetches: std::sync::atomic::AtomicU64::new(0),
            }),
            cooldown,
            max_age,
        }
    }

    /// How many fetches were made (for tests and diagnostics).
    pub(crate) fn fetches(&self) -> u64 {
        self.shared
            .fetches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn may_fetch(&self, state: &State, now: Instant) -> bool {
        state
            .last_fetch
            .is_none_or(|at| now.duration_since(at) >= self.cooldown)
    }

    /// The key for `kid` if held, else whether fetching (or waiting for the fetch under way)
    /// is allowed now.
    pub(crate) fn get(&self, kid: &str) -> Cached {
        let now = Instant::now();
        let state = self.shared.state.read().unwrap_or_else(|e| e.into_inner());
        match &state.loaded {
            Some(loaded) if loaded.set.get(kid).is_some() => {
                let loaded = Arc::clone(loaded);
                let stale = now.duration_since(loaded.at) > self.max_age
                    && state.flight.is_none()
                    && self.may_fetch(&state, now);
                drop(state);
                if stale {
                    // Fetched again in the background: the held key answers meanwhile (and if
                    // the fetch fails), so no token waits on a slow or dead key endpoint.
                    // Without a runtime to run it on, this token fetches.
                    if tokio::runtime::Handle::try_current().is_err() {
                        return Cached::Fetch;
                    }
                    let mut state = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
                    if state.flight.is_none() && self.may_fetch(&state, now) {
                        drop(self.start(&mut state, now));
                    }
                }
                Cached::Key(loaded)
            }
            // A fetch under way may bring the key (the first tokens after a start, or after
            // Better Auth rotated its key): wait for it rather than refuse a valid token.
            _ if state.flight.is_some() || self.may_fetch(&state, now) => Cached::Fetch,
            _ => Cached::Unknown,
        }
    }

    /// Starts a fetch: in a task of its own where there is a Tokio runtime, so that a caller
    /// that goes away (a client hanging up, a timeout) does not cancel it and leave the set
    /// unfetched for a whole cool-down.
    fn start(&self, state: &mut State, now: Instant) -> Flight {
        use futures_util::FutureExt as _;
        state.last_fetch = Some(now);
        self.shared
            .fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let work = Arc::clone(&self.shared).fetch();
        let flight: BoxFuture<'static, ()> = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let task = runtime.spawn(work);
                Box::pin(async move {
                    // A panic in the key source ends the fetch like a failure.
                    let _ = task.await;
                })
            }
            // Without one, whoever awaits the flight drives it (a later caller resumes it).
            Err(_) => Box::pin(work),
        };
        let flight = flight.shared();
        state.flight = Some(flight.clone());
        flight
    }

    /// Fetches the set again, or waits for the fetch under way (unless the cool-down forbids
    /// one), then answers for `kid`. A failed fetch keeps the previous set.
    pub(crate) async fn refresh(&self, kid: &str) -> Option<Arc<Loaded>> {
        let flight = {
            let mut state = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            match &state.flight {
                Some(flight) => Some(flight.clone()),
                None if self.may_fetch(&state, now) => Some(self.start(&mut state, now)),
                None => None,
            }
        };
        if let Some(flight) = flight {
            flight.await;
        }
        let state = self.shared.state.read().unwrap_or_else(|e| e.into_inner());
        let loaded = state.loaded.as_ref()?;
        loaded.set.get(kid).map(|_| Arc::clone(loaded))
    }
}
