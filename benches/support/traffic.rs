//! Realistic traffic for the benches (issue 17): `sessions` distinct users, each with one
//! session, and a different cookie on (almost) every request, sent in a shuffled order so that
//! neither the codec's per-thread memo nor the allocator's placement helps. Every system gets the
//! same users, the same order and the same 4-cookie header shape.
//!
//! The floor (`floor.rs`, shared with `load_server`) is what a careful hand-rolled check costs:
//! scan the `Cookie` header for the session cookie, percent-decode it, check its HMAC with a
//! pre-keyed HMAC-SHA256 in constant time, look the token up once in a map of records holding
//! the session and its user, check the expiry, and insert one extension.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::routing::{get, post};
use axum::Router;
use http::{HeaderValue, Uri};
use time::OffsetDateTime;
use tower::ServiceExt;
use tower_auth_session::store::CachedStore;
use tower_auth_session::{
    Authenticated, MemoryStore, Session, SessionLayer, SessionStore, SignIn, StorageKey, User,
};

use super::floor::{Floor, Record, Records};
use super::{tas_config, tas_router, Case, Rotation, ANONYMOUS, NOISE, SIGNED_IN};

/// The live-session counts of the scaling curve.
pub const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];

/// The header every system's request carries for user `i`, in the shuffled order shared by all
/// systems: a power-of-two list (padded by repeating) so that picking the next costs a mask.
fn rotation(cookies: Vec<String>, order: &[usize]) -> Arc<Rotation> {
    let len = order.len().next_power_of_two();
    let headers = (0..len)
        .map(|i| {
            let user = order[i % order.len()];
            HeaderValue::from_str(&format!("{NOISE}; {}", cookies[user])).unwrap()
        })
        .collect();
    Arc::new(Rotation {
        headers,
        next: AtomicUsize::new(0),
    })
}

/// A fixed pseudo-random permutation of `0..n` (xorshift; the same for every run).
pub fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = (x % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// `n` users and their sessions, signed in through a layer over `store`; returns the cookies
/// (`name=value`), by user.
async fn sign_in_all<St: SessionStore + Clone>(
    layer: &SessionLayer<St>,
    users: &[User],
) -> Vec<String> {
    let manager = layer.manager();
    let mut cookies = Vec::with_capacity(users.len());
    for user in users {
        let signed = manager.sign_in(user, SignIn::new()).await.unwrap();
        cookies.push(super::session_cookie(layer.config(), &{
            let token = signed.session.token.clone();
            drop(signed);
            token
        }));
    }
    cookies
}

fn users(n: usize) -> Vec<User> {
    let now = OffsetDateTime::now_utc();
    (0..n)
        .map(|i| User::new(&format!("user{i}@example.com"), &format!("User {i}"), now))
        .collect()
}

/// Every system at one size, and what they share.
pub struct Traffic {
    pub sessions: usize,
    pub cases: Vec<Case>,
}

/// Builds every case for `n` live sessions: `bare`, `floor`, `tas_memory`, `tas_cached`,
/// `tower_sessions`, `axum_login`, and with `extras` `floor_shared` (after `tas_cached`) and the
/// same-cookie cases.
pub async fn traffic(n: usize, extras: bool) -> Traffic {
    let order = shuffled(n);
    let users = users(n);

    // This crate over MemoryStore.
    let store = MemoryStore::new();
    for user in &users {
        store.insert_user(user.clone());
    }
    let layer = SessionLayer::new(tas_config(), store.clone());
    let cookies = sign_in_all(&layer, &users).await;
    let tas = rotation(cookies.clone(), &order);

    // The floor over the very same sessions and users (its own records, one per session).
    let floor = floor_of_copies(&store, &cookies, &users).await;
    // The same floor over records that share MemoryStore's own rows (an extra at 10,000): the
    // same code over the crate's memory layout rather than copies made one after the other.
    let floor_shared = if extras {
        Some(floor_of_shared(&store, &cookies).await)
    } else {
        None
    };

    // CachedStore over another MemoryStore, every session cached before measuring (a hit:
    // the inner store is never asked).
    let inner = MemoryStore::new();
    for user in &users {
        inner.insert_user(user.clone());
    }
    let cached = CachedStore::builder(inner)
        .max_entries(n as u64 * 2)
        .ttl(std::time::Duration::from_secs(3600))
        .build();
    let cached_layer = SessionLayer::new(tas_config(), cached);
    let cached_cookies = sign_in_all(&cached_layer, &users).await;
    let cached_app = tas_router(&cached_layer, false);
    for cookie in &cached_cookies {
        // Fill the cache: the sign-in wrote through it, a read makes sure.
        let _ = cached_app
            .clone()
            .oneshot(super::request(
                &HeaderValue::from_str(&format!("{NOISE}; {cookie}")).unwrap(),
            ))
            .await;
    }

    let mut cases = vec![
        Case {
            name: "bare",
            what: "no session layer (the baseline), the same headers",
            app: Router::new()
                .route("/", get(|| async { "ok" }))
                .with_state(()),
            cookie: tas.headers[0].clone(),
            rotation: Some(Arc::clone(&tas)),
            expect: "ok",
        },
        Case {
            name: "floor",
            what: "hand-rolled floor: cookie scan, pre-keyed HMAC, one map lookup of a record holding the session and user, one extension",
            app: floor_router(&floor),
            cookie: tas.headers[0].clone(),
            rotation: Some(Arc::clone(&tas)),
            expect: SIGNED_IN,
        },
        Case {
            name: "tas_memory",
            what: "tower-auth-session, MemoryStore (`MaybeUser` handler)",
            app: tas_router(&layer, false),
            cookie: tas.headers[0].clone(),
            rotation: Some(Arc::clone(&tas)),
            expect: SIGNED_IN,
        },
        Case {
            name: "tas_cached",
            what: "tower-auth-session, CachedStore hit (`MaybeUser` handler)",
            app: cached_app,
            cookie: tas.headers[0].clone(),
            rotation: Some(rotation(cached_cookies, &order)),
            expect: SIGNED_IN,
        },
    ];
    // Right after the cases measured twice, as they are: their second runs, in reverse order
    // after all the others, then mirror their first (A B C D E … E D C B A).
    if let Some(shared) = floor_shared {
        cases.push(Case {
            name: "floor_shared",
            what: "the floor's code over records sharing MemoryStore's own session and user rows",
            app: floor_router(&shared),
            cookie: tas.headers[0].clone(),
            rotation: Some(Arc::clone(&tas)),
            expect: SIGNED_IN,
        });
    }
    // At a million sessions only the cases the targets name: the others' set-up would take
    // minutes and gigabytes for a figure the chart already shows at 100,000.
    if n <= 100_000 {
        cases.push(tower_sessions(n, &order).await);
        cases.push(axum_login(n, &order).await);
    }
    if extras {
        let one = super::header(&cookies[order[0]]);
        cases.push(Case {
            name: "tas_memory_same_cookie",
            what: "tower-auth-session, MemoryStore, the same cookie every time (the codec's memo answers)",
            app: tas_router(&layer, false),
            cookie: one.clone(),
            rotation: None,
            expect: SIGNED_IN,
        });
        cases.push(Case {
            name: "floor_same_cookie",
            what: "the floor, the same cookie every time",
            app: floor_router(&floor),
            cookie: one,
            rotation: None,
            expect: SIGNED_IN,
        });
    }
    for case in &cases {
        case.check().await;
    }
    Traffic { sessions: n, cases }
}

// ---------------------------------------------------------------- the floor

/// The token of a `name=value` cookie and what `store` holds for it.
async fn stored<'c>(store: &MemoryStore, cookie: &'c str) -> (&'c str, Authenticated) {
    let value = cookie.split_once('=').unwrap().1;
    let token = value.split('.').next().unwrap();
    let found = store.find(&StorageKey::new(token)).await.unwrap().unwrap();
    (token, found)
}

/// The floor over its own records: copies of each session and its user, made one after the
/// other.
async fn floor_of_copies(store: &MemoryStore, cookies: &[String], users: &[User]) -> Floor {
    let mut records = Records::default();
    for (cookie, user) in cookies.iter().zip(users) {
        let (token, found) = stored(store, cookie).await;
        let record = Record {
            session: (*found.session).clone(),
            user: Arc::new(user.clone()),
        };
        records.insert(token.to_owned(), Arc::new(record));
    }
    new_floor(records)
}

/// The floor over records that share `store`'s session and user rows.
async fn floor_of_shared(store: &MemoryStore, cookies: &[String]) -> Floor<Arc<Session>> {
    let mut records = Records::default();
    for cookie in cookies {
        let (token, found) = stored(store, cookie).await;
        let record = Record {
            session: found.session,
            user: found.user,
        };
        records.insert(token.to_owned(), Arc::new(record));
    }
    new_floor(records)
}

fn new_floor<S: Borrow<Session>>(records: Records<S>) -> Floor<S> {
    Floor::new(
        records,
        super::SECRET.as_bytes(),
        tas_config().session_cookie_name(),
    )
}

/// The floor in front of a handler that, as `MaybeUser` does, takes the user (shared) out of the
/// extension.
fn floor_router<S: Borrow<Session> + Send + Sync + 'static>(floor: &Floor<S>) -> Router {
    async fn handler<S: Send + Sync + 'static>(req: Request) -> &'static str {
        let user = req
            .extensions()
            .get::<Arc<Record<S>>>()
            .map(|r| Arc::clone(&r.user));
        if std::hint::black_box(user).is_some() {
            SIGNED_IN
        } else {
            ANONYMOUS
        }
    }
    Router::new()
        .route("/", get(handler::<S>))
        .layer(floor.clone())
        .with_state(())
}

// ---------------------------------------------------------------- tower-sessions, axum-login

fn login_request() -> Request {
    let mut req = Request::new(Body::empty());
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = Uri::from_static("/login");
    req
}

fn cookie_of(response: &http::Response<Body>) -> String {
    super::set_cookie_pair(response)
}

/// tower-sessions 0.15, its `MemoryStore`: `n` sessions, each holding its user's id.
async fn tower_sessions(n: usize, order: &[usize]) -> Case {
    use tower_sessions::{MemoryStore, Session, SessionManagerLayer};
    async fn me(session: Session) -> &'static str {
        match session.get::<String>("user_id").await {
            Ok(Some(_)) => SIGNED_IN,
            _ => ANONYMOUS,
        }
    }
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    async fn login(session: Session) -> &'static str {
        let id = NEXT.fetch_add(1, Relaxed);
        session
            .insert("user_id", format!("user-{id}"))
            .await
            .unwrap();
        SIGNED_IN
    }
    let app = Router::new()
        .route("/", get(me))
        .route("/login", post(login))
        .layer(SessionManagerLayer::new(MemoryStore::default()))
        .with_state(());
    let mut cookies = Vec::with_capacity(n);
    for _ in 0..n {
        let response = app.clone().oneshot(login_request()).await.unwrap();
        cookies.push(cookie_of(&response));
    }
    let rotation = rotation(cookies, order);
    Case {
        name: "tower_sessions",
        what: "tower-sessions 0.15, its MemoryStore, one session per user",
        app,
        cookie: rotation.headers[0].clone(),
        rotation: Some(rotation),
        expect: SIGNED_IN,
    }
}

/// axum-login 0.18 (tower-sessions 0.14, the in-memory store of `super`): `n` users logged in.
async fn axum_login(n: usize, order: &[usize]) -> Case {
    use axum_login::tower_sessions::SessionManagerLayer;
    use axum_login::{AuthManagerLayerBuilder, AuthSession};

    use super::{Backend, LoginUser};

    async fn me(auth: AuthSession<Backend>) -> &'static str {
        if auth.user.is_some() {
            SIGNED_IN
        } else {
            ANONYMOUS
        }
    }
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    async fn login(mut auth: AuthSession<Backend>) -> &'static str {
        let id = NEXT.fetch_add(1, Relaxed) as u64;
        let user = auth.authenticate(id).await.unwrap().unwrap();
        auth.login(&user).await.unwrap();
        SIGNED_IN
    }
    NEXT.store(0, Relaxed);
    let users: HashMap<u64, LoginUser> = (0..n as u64)
        .map(|id| (id, LoginUser::new(id, format!("User {id}"))))
        .collect();
    let backend = Backend::new(users);
    let sessions = SessionManagerLayer::new(super::login_store::LoginMemoryStore::default());
    let app = Router::new()
        .route("/", get(me))
        .route("/login", post(login))
        .layer(AuthManagerLayerBuilder::new(backend, sessions).build())
        .with_state(());
    let mut cookies = Vec::with_capacity(n);
    for _ in 0..n {
        let response = app.clone().oneshot(login_request()).await.unwrap();
        cookies.push(cookie_of(&response));
    }
    let rotation = rotation(cookies, order);
    Case {
        name: "axum_login",
        what:
            "axum-login 0.18 (tower-sessions 0.14, in-memory store), one logged-in session per user",
        app,
        cookie: rotation.headers[0].clone(),
        rotation: Some(rotation),
        expect: SIGNED_IN,
    }
}
