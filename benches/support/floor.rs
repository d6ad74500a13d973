//! The hand-rolled floor of issue 17, in one place: the traffic bench
//! (`benches/support/traffic.rs`) and `load_server`'s `/floor/memory/…` routes include this file,
//! so the floor measured in process and over HTTP is the same code.
//!
//! What a careful hand-rolled check costs: scan the `Cookie` header for the session cookie,
//! percent-decode it on the stack, check its HMAC with a pre-keyed HMAC-SHA256 in constant time,
//! look the token up once in a map of records holding the session and its user, check the
//! expiry, and insert the record as the request's one extension.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::header::COOKIE;
use http::HeaderMap;
use sha2::Sha256;
use time::OffsetDateTime;
use tower::{Layer, Service};
use tower_auth_session::{Session, User};

/// One record per session, holding the session (inline, `Session`, in the floor's own copies;
/// the store's `Arc<Session>` when it shares the store's rows) and its user.
pub struct Record<S = Session> {
    pub session: S,
    pub user: Arc<User>,
}

/// Tokens to records.
pub type Records<S = Session> = HashMap<String, Arc<Record<S>>, foldhash::fast::RandomState>;

/// The floor: a layer that inserts the live record of a verified session cookie.
pub struct Floor<S = Session> {
    records: Arc<RwLock<Records<S>>>,
    mac: Hmac<Sha256>,
    name: Arc<str>,
}

impl<S> Clone for Floor<S> {
    fn clone(&self) -> Self {
        Self {
            records: Arc::clone(&self.records),
            mac: self.mac.clone(),
            name: Arc::clone(&self.name),
        }
    }
}

impl<S: Borrow<Session>> Floor<S> {
    /// A floor over `records`, for cookies named `cookie_name` signed with `secret`.
    pub fn new(records: Records<S>, secret: &[u8], cookie_name: &str) -> Self {
        Self {
            records: Arc::new(RwLock::new(records)),
            mac: Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length"),
            name: cookie_name.into(),
        }
    }

    /// The live record of the session cookie in `headers`, if its signature verifies.
    pub fn check(&self, headers: &HeaderMap) -> Option<Arc<Record<S>>> {
        let mut buf = [0u8; 128];
        let token = verified_token(headers, self.name.as_bytes(), &self.mac, &mut buf)?;
        let record = Arc::clone(
            self.records
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(token)?,
        );
        let session: &Session = record.session.borrow();
        (session.expires_at > OffsetDateTime::now_utc()).then_some(record)
    }
}

/// The token of the `name` cookie in `headers` whose `token.signature` verifies with `mac`:
/// the value percent-decoded into `buf` (a Better Auth value carries `%3D`, maybe `%2B`, `%2F`),
/// split at its last `.`, the base64 signature decoded and compared in constant time.
fn verified_token<'b>(
    headers: &HeaderMap,
    name: &[u8],
    mac: &Hmac<Sha256>,
    buf: &'b mut [u8; 128],
) -> Option<&'b str> {
    let header = headers.get(COOKIE)?.as_bytes();
    let raw = header
        .split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .find_map(|c| c.strip_prefix(name)?.strip_prefix(b"="))?;
    let value = percent_decode(raw, buf)?;
    let dot = value.iter().rposition(|&b| b == b'.')?;
    let (token, signature) = (&value[..dot], &value[dot + 1..]);
    let mut tag = [0u8; 32];
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(signature, &mut tag)
        .ok()?;
    let mut mac = mac.clone();
    mac.update(token);
    mac.verify_slice(&tag[..n]).ok()?;
    std::str::from_utf8(token).ok()
}

/// `raw` percent-decoded into `buf`; `None` for a malformed escape or a value longer than `buf`.
pub fn percent_decode<'b>(raw: &[u8], buf: &'b mut [u8; 128]) -> Option<&'b [u8]> {
    let mut len = 0;
    let mut i = 0;
    while i < raw.len() {
        let b = if raw[i] == b'%' {
            let hi = hex(*raw.get(i + 1)?)?;
            let lo = hex(*raw.get(i + 2)?)?;
            i += 3;
            hi << 4 | lo
        } else {
            i += 1;
            raw[i - 1]
        };
        *buf.get_mut(len)? = b;
        len += 1;
    }
    Some(&buf[..len])
}

fn hex(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

impl<S, I> Layer<I> for Floor<S> {
    type Service = FloorService<S, I>;

    fn layer(&self, inner: I) -> FloorService<S, I> {
        FloorService {
            floor: self.clone(),
            inner,
        }
    }
}

/// The service of [`Floor`].
pub struct FloorService<S, I> {
    floor: Floor<S>,
    inner: I,
}

impl<S, I: Clone> Clone for FloorService<S, I> {
    fn clone(&self) -> Self {
        Self {
            floor: self.floor.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<S, I> Service<Request> for FloorService<S, I>
where
    S: Borrow<Session> + Send + Sync + 'static,
    I: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = I::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> I::Future {
        if let Some(record) = self.floor.check(req.headers()) {
            req.extensions_mut().insert(record);
        }
        self.inner.call(req)
    }
}
