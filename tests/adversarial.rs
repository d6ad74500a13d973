//! Adversarial input (issue 6, item 1): property tests through the real layer.
//!
//! Every request goes through `SessionLayer` + an axum `Router` over a `Counting<MemoryStore>`,
//! and is judged against an independent reference model of the cookie rules written here
//! (first occurrence across `Cookie` fields, trim, unquote, `decodeURIComponent` only when the
//! value holds `%`, 1 KiB cap, split at the last `.`, 44-character standard base64 signature
//! with `atob`'s lenient trailing bits, HMAC-SHA256 from the `hmac` crate). The properties:
//!
//! * never a panic and never a 5xx (every request here is a `GET`, so always `200`);
//! * a store call happens exactly when the reference says the signature verifies (so a
//!   genuinely valid cookie generated in-test must still authenticate: the property can fail);
//! * the right user is signed in, and only for a known token;
//! * no `Set-Cookie` at all for input whose signature does not verify.
//!
//! Bounded work is checked by counting, never by timing: allocations made by the codec on
//! oversized values (none: rejected before the percent-decoding pass, which precedes any
//! crypto), and allocations made by a whole request as the `Cookie` header grows from 10 to
//! 10 000 segments (constant: no per-segment work that allocates, no cookie-jar parsing).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Debug;

use axum::body::Body;
use axum::Router;
use common::*;
use hmac::{Hmac, Mac};
use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderValue, Request};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sha2::Sha256;
use tower_auth_session::codec::{find_cookie, Signer, MAX_SIGNED_VALUE_LEN};
use tower_auth_session::{Bearer, MemoryStore, SessionConfig, SessionLayer, SignIn, User};

const NAME: &str = "better-auth.session_token";
const CAP: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Counting allocations, per thread (each test drives its requests on its own thread with a
// current-thread runtime, so parallel tests do not disturb each other's counts).

struct CountingAlloc;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count_alloc() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to the system allocator unchanged; the counter is a
// const-initialised thread-local `Cell` without a destructor, so touching it never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_alloc();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Runs `f` and returns its result with the number of allocations it made on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCS.with(Cell::get);
    let out = f();
    (out, ALLOCS.with(Cell::get) - before)
}

// ---------------------------------------------------------------------------------------------
// The reference model: the spec's rules, written independently of `src/codec.rs`.

fn ref_find<'a>(fields: &'a [Vec<u8>], name: &str) -> Option<&'a [u8]> {
    for field in fields {
        for segment in field.split(|&b| b == b';') {
            if let Some(eq) = segment.iter().position(|&b| b == b'=') {
                if segment[..eq].trim_ascii() == name.as_bytes() {
                    return Some(&segment[eq + 1..]);
                }
            }
        }
    }
    None
}

/// `decodeURIComponent`: `None` on a malformed escape or on bytes that are not UTF-8.
fn ref_percent_decode(v: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            let hi = hex(*v.get(i + 1)?)?;
            let lo = hex(*v.get(i + 2)?)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(String::into_bytes)
}

/// Standard base64 of 32 bytes, padded, ignoring the last character's 2 unused bits (`atob`).
fn ref_decode_signature(sig: &[u8]) -> Option<Vec<u8>> {
    if sig.len() != 44 || sig[43] != b'=' {
        return None;
    }
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::with_capacity(32));
    for &c in &sig[..43] {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn ref_hmac(token: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(token);
    mac.finalize().into_bytes().to_vec()
}

/// The token a raw cookie value carries when its signature truly verifies.
fn ref_unsign(raw: &[u8]) -> Option<String> {
    let v = raw.trim_ascii();
    if v.len() > 3 * CAP {
        return None;
    }
    let v = if v.len() >= 2 && v[0] == b'"' {
        &v[1..v.len() - 1]
    } else {
        v
    };
    let v = if v.contains(&b'%') {
        ref_percent_decode(v).unwrap_or_else(|| v.to_vec())
    } else {
        v.to_vec()
    };
    if v.is_empty() || v.len() > CAP {
        return None;
    }
    let dot = v.iter().rposition(|&b| b == b'.')?;
    if dot == 0 {
        return None;
    }
    let (token, sig) = (&v[..dot], &v[dot + 1..]);
    (ref_decode_signature(sig)? == ref_hmac(token))
        .then(|| String::from_utf8(token.to_vec()).ok())
        .flatten()
}

/// `Authorization: Bearer <signed>` as the layer's `Bearer::Signed` mode reads it.
fn ref_bearer(value: &[u8]) -> Option<String> {
    if value.len() < 7 || !value[..7].eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let credential = value[7..].trim_ascii();
    if credential.contains(&b'.') {
        ref_unsign(credential)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The fixture: a real layer over a counting memory store, with a few signed-in users.

struct Signed {
    token: String,
    /// `token.signature`, not URL-encoded.
    raw: String,
    /// `encodeURIComponent(raw)`, the bytes Better Auth sends.
    wire: String,
    email: String,
}

struct Fx {
    rt: tokio::runtime::Runtime,
    app: Router,
    store: Counting<MemoryStore>,
    sessions: Vec<Signed>,
    signer: Signer,
    bearer: bool,
    /// Outcomes seen: anonymous without a lookup, verified but unknown, signed in.
    outcomes: Cell<[u32; 3]>,
}

impl Drop for Fx {
    fn drop(&mut self) {
        let [anonymous, unknown, signed_in] = self.outcomes.get();
        eprintln!(
            "outcomes: {anonymous} anonymous, {unknown} verified-unknown, {signed_in} signed in"
        );
    }
}

impl Fx {
    fn new(bearer: bool) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = Counting::new(MemoryStore::new());
        let config = SessionConfig::builder()
            .secret(SECRET)
            .bearer(if bearer { Bearer::Signed } else { Bearer::Off })
            .build()
            .unwrap();
        let layer = SessionLayer::new(config, store.clone());
        let signer = Signer::new(SECRET);
        // A few sessions, until their signatures hold both `+` and `/` (which the wire form
        // percent-encodes), so the alphabet and encoding mutations have something to bite.
        let mut sessions = Vec::new();
        for n in 0..64 {
            let sigs: String = sessions
                .iter()
                .map(|s: &Signed| s.raw.clone())
                .collect::<Vec<_>>()
                .concat();
            if sessions.len() >= 3 && sigs.contains('+') && sigs.contains('/') {
                break;
            }
            let email = format!("user{n}@example.com");
            let user = User::new(&email, "User", time::OffsetDateTime::now_utc());
            store.inner.insert_user(user.clone());
            let signed = rt
                .block_on(layer.manager().sign_in(&user, SignIn::new()))
                .unwrap();
            let token = signed.session.token.clone();
            sessions.push(Signed {
                raw: signer.sign_raw(&token),
                wire: signer.sign_cookie_value(&token),
                token,
                email,
            });
        }
        let app = email_router(layer);
        Self {
            rt,
            app,
            store,
            sessions,
            signer,
            bearer,
            outcomes: Cell::new([0; 3]),
        }
    }

    fn session(&self, i: &Index) -> &Signed {
        &self.sessions[i.index(self.sessions.len())]
    }

    /// Sends `GET /` with these `Cookie` fields (and `Authorization`), then checks every
    /// property against the reference model. Returns whether the request authenticated.
    fn check(
        &self,
        fields: &[Vec<u8>],
        authorization: Option<&[u8]>,
    ) -> Result<bool, TestCaseError> {
        let mut req = Request::get("/").body(Body::empty()).unwrap();
        for field in fields {
            // The generators only produce bytes a header can hold; skip the rare value the
            // `http` crate still refuses.
            let Ok(value) = HeaderValue::from_bytes(field) else {
                return Ok(false);
            };
            req.headers_mut().append(COOKIE, value);
        }
        if let Some(auth) = authorization {
            let Ok(value) = HeaderValue::from_bytes(auth) else {
                return Ok(false);
            };
            req.headers_mut().insert(AUTHORIZATION, value);
        }

        // Better Auth's bearer plugin: a bearer value that verifies decides; otherwise the
        // cookie does.
        let bearer = self
            .bearer
            .then(|| authorization.and_then(ref_bearer))
            .flatten();
        let expected = match bearer {
            Some(token) => Some(token),
            None => ref_find(fields, NAME).and_then(ref_unsign),
        };
        let before = self.store.calls();
        let reply = self.rt.block_on(send(self.app.clone(), req));
        let calls = self.store.calls() - before;

        let mut outcomes = self.outcomes.get();
        outcomes[match &expected {
            None => 0,
            Some(t) if self.sessions.iter().any(|s| &s.token == t) => 2,
            Some(_) => 1,
        }] += 1;
        self.outcomes.set(outcomes);
        prop_assert!(reply.status < 500, "5xx: {}", reply.status);
        prop_assert_eq!(reply.status, 200);
        match expected {
            None => {
                prop_assert_eq!(calls, 0, "a store call without a valid signature");
                prop_assert_eq!(&reply.body, "anonymous");
                prop_assert!(
                    reply.set_cookies().is_empty(),
                    "Set-Cookie for malformed input: {:?}",
                    reply.set_cookies()
                );
                Ok(false)
            }
            Some(token) => {
                prop_assert_eq!(calls, 1, "one lookup for a verified token");
                match self.sessions.iter().find(|s| s.token == token) {
                    Some(s) => {
                        prop_assert_eq!(&reply.body, &s.email);
                        prop_assert!(reply.set_cookies().is_empty());
                        Ok(true)
                    }
                    None => {
                        // Verified but unknown: anonymous, and the cookies are cleared.
                        prop_assert_eq!(&reply.body, "anonymous");
                        prop_assert!(reply
                            .set_cookie(NAME)
                            .is_some_and(|c| c.contains("Max-Age=0")));
                        Ok(false)
                    }
                }
            }
        }
    }
}

fn run<S>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

/// Drops the bytes a header value cannot hold (controls other than tab, and DEL).
fn header_safe(mut v: Vec<u8>) -> Vec<u8> {
    v.retain(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
    v
}

fn cookie(value: &[u8]) -> Vec<u8> {
    [format!("{NAME}=").as_bytes(), value].concat()
}

// ---------------------------------------------------------------------------------------------
// Generators.

/// Bytes biased towards the ones the codec cares about.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => any::<u8>(),
        2 => prop::sample::select(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".to_vec()
        ),
        2 => prop::sample::select(b".%=;\" \t-_,\\".to_vec()),
        1 => 0x80u8..=0xff,
    ]
}

/// One edit of a valid signed value.
#[derive(Clone, Debug)]
enum Mutation {
    None,
    Flip(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
    ToUrlAlphabet,
    ToStdAlphabet,
    DropPad,
    AddPad(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => Just(Mutation::None),
        4 => (any::<Index>(), interesting_byte()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        3 => (any::<Index>(), interesting_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        3 => any::<Index>().prop_map(Mutation::Delete),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => Just(Mutation::ToUrlAlphabet),
        1 => Just(Mutation::ToStdAlphabet),
        1 => Just(Mutation::DropPad),
        1 => (1usize..4).prop_map(Mutation::AddPad),
    ]
}

/// Which valid value a mutation starts from, and where it may edit.
#[derive(Clone, Debug)]
struct Mutated {
    session: Index,
    wire: bool,
    signature_only: bool,
    mutation: Mutation,
}

fn mutated() -> impl Strategy<Value = Mutated> {
    (any::<Index>(), any::<bool>(), any::<bool>(), mutation()).prop_map(
        |(session, wire, signature_only, mutation)| Mutated {
            session,
            wire,
            signature_only,
            mutation,
        },
    )
}

impl Mutated {
    fn apply(&self, fx: &Fx) -> Vec<u8> {
        let s = fx.session(&self.session);
        let base = if self.wire { &s.wire } else { &s.raw };
        let mut v = base.as_bytes().to_vec();
        // Edits land anywhere, or only after the last dot (in the signature).
        let start = if self.signature_only {
            s.token.len() + 1
        } else {
            0
        };
        let pick = |i: &Index, extra: usize| start + i.index(v.len() - start + extra);
        match &self.mutation {
            Mutation::None => {}
            Mutation::Flip(i, b) => {
                let at = pick(i, 0);
                v[at] = if v[at] == *b { b ^ 1 } else { *b };
            }
            Mutation::Insert(i, b) => {
                let at = pick(i, 1);
                v.insert(at, *b);
            }
            Mutation::Delete(i) => {
                let at = pick(i, 0);
                v.remove(at);
            }
            Mutation::Truncate(i) => {
                let at = pick(i, 0);
                v.truncate(at);
            }
            Mutation::ToUrlAlphabet => {
                let text = String::from_utf8(v).unwrap();
                v = text
                    .replace("%2B", "-")
                    .replace("%2F", "_")
                    .replace('+', "-")
                    .replace('/', "_")
                    .into_bytes();
            }
            Mutation::ToStdAlphabet => {
                let text = String::from_utf8(v).unwrap();
                v = text.replace('-', "+").replace('_', "/").into_bytes();
            }
            Mutation::DropPad => {
                if v.ends_with(b"%3D") {
                    v.truncate(v.len() - 3);
                } else if v.ends_with(b"=") {
                    v.pop();
                }
            }
            Mutation::AddPad(n) => {
                for _ in 0..*n {
                    v.extend_from_slice(if self.wire { b"%3D" } else { b"=" });
                }
            }
        }
        header_safe(v)
    }
}

const BAD_ESCAPES: &[&str] = &[
    "%", "%G1", "%3", "%zz", "%FF", "%C3%28", "%E2%82", "%00", "%2", "%%", "%%33D", "%u0041",
];

fn pct(out: &mut String, b: u8, lower: bool) {
    if lower {
        out.push_str(&format!("%{b:02x}"));
    } else {
        out.push_str(&format!("%{b:02X}"));
    }
}

/// A percent-encoding variant of a valid raw value.
#[derive(Clone, Debug)]
struct Encoded {
    session: Index,
    /// Per character: 0–2 keep, 3 `%XX`, 4 `%xx`, 5 `%25XX` (double-encoded).
    choices: Vec<u8>,
    /// 0: per character; 1: encode all, upper; 2: encode all, lower; 3: double-encode the wire
    /// form; 4: the wire form as is.
    mode: u8,
    bad_escape: Option<(Index, Index)>,
    quoted: bool,
}

fn encoded() -> impl Strategy<Value = Encoded> {
    (
        any::<Index>(),
        prop::collection::vec(0u8..6, 1..96),
        0u8..5,
        prop::option::weighted(0.3, (any::<Index>(), any::<Index>())),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(session, choices, mode, bad_escape, quoted)| Encoded {
            session,
            choices,
            mode,
            bad_escape,
            quoted,
        })
}

impl Encoded {
    fn apply(&self, fx: &Fx) -> Vec<u8> {
        let s = fx.session(&self.session);
        let mut out = String::new();
        match self.mode {
            3 => out = s.wire.replace('%', "%25"),
            4 => out.clone_from(&s.wire),
            _ => {
                for (i, b) in s.raw.bytes().enumerate() {
                    let choice = match self.mode {
                        1 => 3,
                        2 => 4,
                        _ => self.choices[i % self.choices.len()],
                    };
                    match choice {
                        3 => pct(&mut out, b, false),
                        4 => pct(&mut out, b, true),
                        5 => {
                            out.push_str("%25");
                            out.push_str(&format!("{b:02X}"));
                        }
                        _ => out.push(char::from(b)),
                    }
                }
            }
        }
        if let Some((at, which)) = &self.bad_escape {
            // Only at a character boundary of what is (ASCII) text so far.
            let at = at.index(out.len() + 1);
            out.insert_str(at, BAD_ESCAPES[which.index(BAD_ESCAPES.len())]);
        }
        if self.quoted {
            out = format!("\"{out}\"");
        }
        out.into_bytes()
    }
}

/// One cookie segment for the duplicate and many-field generators.
#[derive(Clone, Debug)]
enum Entry {
    Valid {
        session: Index,
        wire: bool,
    },
    Mutated(Mutated),
    Encoded(Encoded),
    /// An arbitrary token genuinely signed with the secret (verifies, but is not in the store).
    SignedUnknown(String),
    /// Like `SignedUnknown`, but not URL-encoded, from a token that may hold `%` escapes
    /// (valid or not): `decodeURIComponent` either succeeds and breaks the HMAC, or throws and
    /// the raw value, which verifies, is kept.
    SignedRaw(String),
    Garbage(Vec<u8>),
    /// A different cookie: a near-miss name, or an unrelated one.
    Other(Index, Vec<u8>),
    /// The session cookie's name with whitespace around it (trimmed: it still matches).
    Spaced {
        session: Index,
        left: u8,
        right: u8,
    },
}

const OTHER_NAMES: &[&str] = &[
    "a",
    "better-auth.session_data",
    "better-auth.dont_remember",
    "__Secure-better-auth.session_token",
    "better-auth.session_token_",
    "better-auth-session_token",
    "Better-Auth.session_token",
    "better-auth%2Esession_token",
    "\"better-auth.session_token\"",
    "\u{a0}better-auth.session_token",
    "",
];

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        3 => (any::<Index>(), any::<bool>()).prop_map(|(session, wire)| Entry::Valid { session, wire }),
        3 => mutated().prop_map(Entry::Mutated),
        2 => encoded().prop_map(Entry::Encoded),
        1 => "\\PC{1,40}".prop_map(Entry::SignedUnknown),
        1 => "[a-fA-Z0-9%._~ -]{1,30}".prop_map(Entry::SignedRaw),
        2 => prop::collection::vec(interesting_byte(), 0..60).prop_map(Entry::Garbage),
        3 => (any::<Index>(), prop::collection::vec(interesting_byte(), 0..30))
            .prop_map(|(i, v)| Entry::Other(i, v)),
        1 => (any::<Index>(), 0u8..3, 0u8..3)
            .prop_map(|(session, left, right)| Entry::Spaced { session, left, right }),
    ]
}

impl Entry {
    fn segment(&self, fx: &Fx) -> Vec<u8> {
        match self {
            Self::Valid { session, wire } => {
                let s = fx.session(session);
                cookie(if *wire { &s.wire } else { &s.raw }.as_bytes())
            }
            Self::Mutated(m) => cookie(&m.apply(fx)),
            Self::Encoded(e) => cookie(&e.apply(fx)),
            Self::SignedUnknown(token) => cookie(fx.signer.sign_cookie_value(token).as_bytes()),
            Self::SignedRaw(token) => cookie(fx.signer.sign_raw(token).as_bytes()),
            Self::Garbage(v) => cookie(&header_safe(v.clone())),
            Self::Other(i, v) => header_safe(
                [
                    OTHER_NAMES[i.index(OTHER_NAMES.len())].as_bytes(),
                    b"=",
                    v.as_slice(),
                ]
                .concat(),
            ),
            Self::Spaced {
                session,
                left,
                right,
            } => format!(
                "{}{NAME}{}={}",
                " ".repeat(usize::from(*left)),
                "\t".repeat(usize::from(*right)),
                fx.session(session).wire
            )
            .into_bytes(),
        }
    }
}

/// Joins segments into fields: `breaks[i]` starts a new `Cookie` field before segment `i`.
fn fields_of(segments: Vec<Vec<u8>>, breaks: &[bool], tight: bool) -> Vec<Vec<u8>> {
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for (i, seg) in segments.into_iter().enumerate() {
        match fields.last_mut() {
            Some(field) if !breaks.get(i).copied().unwrap_or(false) => {
                field.extend_from_slice(if tight { b";" } else { b"; " });
                field.extend_from_slice(&seg);
            }
            _ => fields.push(seg),
        }
    }
    fields
}

// ---------------------------------------------------------------------------------------------
// Properties through the layer.

#[test]
fn random_bytes_as_cookie_values() {
    let fx = Fx::new(false);
    let strategy = (
        0u8..3,
        prop::collection::vec(interesting_byte(), 0..300),
        prop::collection::vec(any::<u8>(), 0..64),
    );
    run(512, strategy, |(kind, bytes, raw)| {
        let bytes = header_safe(bytes);
        let field = match kind {
            0 => cookie(&bytes),
            1 => [b"a=b; ".as_slice(), &cookie(&bytes), b"; c=d"].concat(),
            _ => bytes,
        };
        fx.check(&[field, cookie(&header_safe(raw))], None)?;
        Ok(())
    });
}

/// Whole headers assembled from the pieces the codec splits on, valid values included.
#[derive(Clone, Debug)]
enum Piece {
    Name,
    Eq,
    Semi,
    Space,
    Quote,
    Dot,
    Percent,
    Raw(Index),
    Wire(Index),
    Signature(Index),
    Byte(u8),
}

#[test]
fn headers_assembled_from_structural_pieces() {
    let fx = Fx::new(false);
    let piece = prop_oneof![
        3 => Just(Piece::Name),
        3 => Just(Piece::Eq),
        3 => Just(Piece::Semi),
        1 => Just(Piece::Space),
        1 => Just(Piece::Quote),
        1 => Just(Piece::Dot),
        1 => Just(Piece::Percent),
        2 => any::<Index>().prop_map(Piece::Raw),
        2 => any::<Index>().prop_map(Piece::Wire),
        1 => any::<Index>().prop_map(Piece::Signature),
        3 => interesting_byte().prop_map(Piece::Byte),
    ];
    let strategy = prop::collection::vec(prop::collection::vec(piece, 0..24), 1..4);
    run(512, strategy, |fields| {
        let fields: Vec<Vec<u8>> = fields
            .iter()
            .map(|pieces| {
                let mut out = Vec::new();
                for p in pieces {
                    match p {
                        Piece::Name => out.extend_from_slice(NAME.as_bytes()),
                        Piece::Eq => out.push(b'='),
                        Piece::Semi => out.push(b';'),
                        Piece::Space => out.push(b' '),
                        Piece::Quote => out.push(b'"'),
                        Piece::Dot => out.push(b'.'),
                        Piece::Percent => out.push(b'%'),
                        Piece::Raw(i) => out.extend_from_slice(fx.session(i).raw.as_bytes()),
                        Piece::Wire(i) => out.extend_from_slice(fx.session(i).wire.as_bytes()),
                        Piece::Signature(i) => {
                            let s = fx.session(i);
                            out.extend_from_slice(&s.raw.as_bytes()[s.token.len()..]);
                        }
                        Piece::Byte(b) => out.push(*b),
                    }
                }
                header_safe(out)
            })
            .collect();
        fx.check(&fields, None)?;
        Ok(())
    });
}

#[test]
fn valid_tokens_with_mutated_signatures() {
    let fx = Fx::new(false);
    let authenticated = Cell::new(0u32);
    run(512, mutated(), |m| {
        // The genuine value first, so that it sits in the codec's memo of verified values: the
        // mutated one must still be judged exactly as the reference model judges it.
        let s = fx.session(&m.session);
        let genuine = if m.wire { &s.wire } else { &s.raw };
        prop_assert!(
            fx.check(&[cookie(genuine.as_bytes())], None)?,
            "the genuine value must sign in"
        );
        let value = m.apply(&fx);
        if fx.check(&[cookie(&value)], None)? {
            authenticated.set(authenticated.get() + 1);
        }
        Ok(())
    });
    // `Mutation::None` (and harmless edits) must still sign in: the property can fail.
    assert!(authenticated.get() > 0, "no mutated case authenticated");
}

#[test]
fn percent_encoding_variants() {
    let fx = Fx::new(false);
    let authenticated = Cell::new(0u32);
    run(512, encoded(), |e| {
        if fx.check(&[cookie(&e.apply(&fx))], None)? {
            authenticated.set(authenticated.get() + 1);
        }
        Ok(())
    });
    assert!(authenticated.get() > 0, "no encoding variant authenticated");
}

#[test]
fn duplicated_cookies_first_occurrence_wins() {
    let fx = Fx::new(false);
    let strategy = (
        prop::collection::vec(entry(), 2..7),
        prop::collection::vec(any::<bool>(), 7),
        any::<bool>(),
    );
    run(512, strategy, |(entries, breaks, tight)| {
        let segments = entries.iter().map(|e| e.segment(&fx)).collect();
        fx.check(&fields_of(segments, &breaks, tight), None)?;
        Ok(())
    });
}

/// Shapes far above the 1 KiB cap, in headers up to about 64 KiB.
#[derive(Clone, Debug)]
enum Oversized {
    /// A token genuinely signed with the secret, but longer than the cap allows.
    LongSignedToken { extra: usize, wire: bool },
    /// A valid value with whitespace around it (trimmed away: still valid when short enough).
    Padded {
        session: Index,
        left: usize,
        right: usize,
        tab: bool,
    },
    /// A huge unrelated cookie before a valid session cookie.
    JunkBefore { session: Index, len: usize },
    /// A huge session cookie value made of one byte.
    Filler { len: usize, byte: u8 },
    /// A long token, fully percent-encoded (decoded length around the cap).
    EncodedLong { len: usize, lower: bool },
    /// A valid value inside a huge pair of quotes.
    QuotedLong { session: Index, len: usize },
}

fn oversized() -> impl Strategy<Value = Oversized> {
    let big = 1000usize..65_000;
    prop_oneof![
        (big.clone(), any::<bool>())
            .prop_map(|(extra, wire)| Oversized::LongSignedToken { extra, wire }),
        (
            any::<Index>(),
            0usize..40_000,
            0usize..25_000,
            any::<bool>()
        )
            .prop_map(|(session, left, right, tab)| Oversized::Padded {
                session,
                left,
                right,
                tab
            }),
        (any::<Index>(), big.clone())
            .prop_map(|(session, len)| Oversized::JunkBefore { session, len }),
        (big.clone(), interesting_byte()).prop_map(|(len, byte)| Oversized::Filler { len, byte }),
        (950usize..1100, any::<bool>())
            .prop_map(|(len, lower)| Oversized::EncodedLong { len, lower }),
        (any::<Index>(), big).prop_map(|(session, len)| Oversized::QuotedLong { session, len }),
    ]
}

#[test]
fn oversized_cookies_are_anonymous_without_store_calls() {
    let fx = Fx::new(false);
    let authenticated = Cell::new(0u32);
    run(256, oversized(), |shape| {
        let field = match &shape {
            Oversized::LongSignedToken { extra, wire } => {
                let token = "a".repeat(CAP + extra);
                let value = if *wire {
                    fx.signer.sign_cookie_value(&token)
                } else {
                    fx.signer.sign_raw(&token)
                };
                prop_assert!(ref_unsign(value.as_bytes()).is_none());
                cookie(value.as_bytes())
            }
            Oversized::Padded {
                session,
                left,
                right,
                tab,
            } => {
                let ws = if *tab { "\t" } else { " " };
                let s = fx.session(session);
                cookie(format!("{}{}{}", ws.repeat(*left), s.wire, ws.repeat(*right)).as_bytes())
            }
            Oversized::JunkBefore { session, len } => format!(
                "junk={}; {NAME}={}",
                "x".repeat(*len),
                fx.session(session).wire
            )
            .into_bytes(),
            Oversized::Filler { len, byte } => cookie(&header_safe(vec![*byte; *len])),
            Oversized::EncodedLong { len, lower } => {
                let raw = fx.signer.sign_raw(&"a".repeat(*len));
                let mut out = String::new();
                for b in raw.bytes() {
                    pct(&mut out, b, *lower);
                }
                cookie(out.as_bytes())
            }
            Oversized::QuotedLong { session, len } => {
                cookie(format!("\"{}{}\"", fx.session(session).wire, " ".repeat(*len)).as_bytes())
            }
        };
        if fx.check(&[field], None)? {
            authenticated.set(authenticated.get() + 1);
        }
        Ok(())
    });
    // Short padding and junk before a valid cookie still sign in.
    assert!(authenticated.get() > 0);
}

#[test]
fn non_utf8_bytes_in_valid_values() {
    let fx = Fx::new(false);
    let strategy = (
        any::<Index>(),
        any::<bool>(),
        prop::collection::vec((any::<Index>(), 0x80u8..=0xff), 1..4),
    );
    run(256, strategy, |(session, wire, inserts)| {
        let s = fx.session(&session);
        let mut v = if wire { &s.wire } else { &s.raw }.as_bytes().to_vec();
        for (at, b) in &inserts {
            let at = at.index(v.len() + 1);
            v.insert(at, *b);
        }
        // A byte that is not UTF-8 changes the token or the signature: never valid.
        prop_assert!(!fx.check(&[cookie(&v)], None)?);
        Ok(())
    });
}

#[test]
fn many_cookie_header_fields() {
    let fx = Fx::new(false);
    let filler = (
        any::<Index>(),
        prop::collection::vec(interesting_byte(), 0..20),
    )
        .prop_map(|(i, v)| Entry::Other(i, v));
    let strategy = (
        prop::collection::vec(filler, 1..160),
        prop::collection::vec((any::<Index>(), entry()), 0..4),
    );
    run(256, strategy, |(fillers, placed)| {
        let mut fields: Vec<Vec<u8>> = fillers.iter().map(|e| e.segment(&fx)).collect();
        for (at, e) in &placed {
            let at = at.index(fields.len() + 1);
            fields.insert(at, e.segment(&fx));
        }
        fx.check(&fields, None)?;
        Ok(())
    });
}

/// `Authorization` garbage with `Bearer::Signed`.
#[derive(Clone, Debug)]
enum Credential {
    Valid {
        session: Index,
        wire: bool,
    },
    Mutated(Mutated),
    /// The bare token: accepted only with `Bearer::SignedOrRaw`, never here.
    RawToken(Index),
    SignedUnknown(String),
    Random(Vec<u8>),
}

const SCHEMES: &[&str] = &[
    "Bearer ",
    "bearer ",
    "BEARER ",
    "Bearer",
    "Bearer  ",
    "Bearer\t",
    "Basic ",
    " Bearer ",
    "",
    "Bearer ab.",
];

#[test]
fn bearer_garbage_with_signed_bearer_mode() {
    let fx = Fx::new(true);
    let credential = prop_oneof![
        2 => (any::<Index>(), any::<bool>()).prop_map(|(session, wire)| Credential::Valid { session, wire }),
        3 => mutated().prop_map(Credential::Mutated),
        1 => any::<Index>().prop_map(Credential::RawToken),
        1 => "\\PC{1,40}".prop_map(Credential::SignedUnknown),
        1 => "[a-fA-Z0-9%._~ -]{1,30}".prop_map(Credential::SignedUnknown),
        3 => prop::collection::vec(interesting_byte(), 0..200).prop_map(Credential::Random),
    ];
    let strategy = (
        any::<Index>(),
        credential,
        0usize..3,
        prop::option::weighted(0.25, entry()),
    );
    let authenticated = Cell::new(0u32);
    run(512, strategy, |(scheme, credential, pad, cookie_entry)| {
        let mut value = SCHEMES[scheme.index(SCHEMES.len())].as_bytes().to_vec();
        match &credential {
            Credential::Valid { session, wire } => {
                let s = fx.session(session);
                value.extend_from_slice(if *wire { &s.wire } else { &s.raw }.as_bytes());
            }
            Credential::Mutated(m) => value.extend_from_slice(&m.apply(&fx)),
            Credential::RawToken(i) => value.extend_from_slice(fx.session(i).token.as_bytes()),
            Credential::SignedUnknown(t) => {
                value.extend_from_slice(fx.signer.sign_raw(t).as_bytes())
            }
            Credential::Random(v) => value.extend_from_slice(v),
        }
        value.extend(std::iter::repeat_n(b' ', pad));
        let value = header_safe(value);
        let fields: Vec<Vec<u8>> = cookie_entry.iter().map(|e| e.segment(&fx)).collect();
        if matches!(credential, Credential::RawToken(_)) && fields.is_empty() {
            prop_assert!(ref_bearer(&value).is_none());
        }
        if fx.check(&fields, Some(&value))? {
            authenticated.set(authenticated.get() + 1);
        }
        Ok(())
    });
    assert!(authenticated.get() > 0, "no bearer case authenticated");
}

// ---------------------------------------------------------------------------------------------
// Codec-level properties.

#[test]
fn any_signed_token_round_trips_and_only_verified_values_unsign() {
    let signer = Signer::new(SECRET);
    let strategy = (
        "\\PC{0,120}",
        prop::collection::vec(interesting_byte(), 0..200),
    );
    run(512, strategy, |(token, junk)| {
        let wire = signer.sign_cookie_value(&token);
        let expected = (!token.is_empty() && token.len() + 45 <= CAP).then(|| token.clone());
        prop_assert_eq!(
            signer.unsign(wire.as_bytes()).map(|t| t.into_owned()),
            expected
        );
        // Arbitrary bytes: `unsign` agrees with the reference model, which recomputes the HMAC.
        prop_assert_eq!(
            signer.unsign(&junk).map(|t| t.into_owned()),
            ref_unsign(&junk)
        );
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Bounded work, by counting.

#[test]
fn values_above_the_cap_are_rejected_before_decoding_or_crypto() {
    assert_eq!(MAX_SIGNED_VALUE_LEN, CAP);
    let signer = Signer::new(SECRET);

    // The cap is exact: 979 + 1 + 44 = 1024 bytes verifies, one more byte does not, although
    // its HMAC is genuine.
    let at_cap = signer.sign_raw(&"a".repeat(CAP - 45));
    assert_eq!(at_cap.len(), CAP);
    assert!(signer.unsign(at_cap.as_bytes()).is_some());
    let over = signer.sign_raw(&"a".repeat(CAP - 44));
    assert_eq!(over.len(), CAP + 1);
    assert!(signer.unsign(over.as_bytes()).is_none());
    // Encoded, the cap applies to the decoded value.
    let at_cap_wire = signer.sign_cookie_value(&"a".repeat(CAP - 45));
    assert!(at_cap_wire.len() > CAP);
    assert!(signer.unsign(at_cap_wire.as_bytes()).is_some());

    // Genuinely signed, percent-encoded values longer than three times the cap are refused
    // without a single allocation: the percent-decoding pass (which allocates, and precedes
    // the signature check) never runs, so neither does any crypto.
    for len in [3 * CAP, 10_000, 100_000, 1 << 20] {
        let wire = signer.sign_cookie_value(&"%".repeat(len / 3));
        assert!(wire.len() > 3 * CAP);
        let (out, allocs) = allocations(|| signer.unsign(wire.as_bytes()).is_some());
        assert!(!out, "{len}");
        assert_eq!(allocs, 0, "{len}: the oversized value was decoded");
    }
    // Unencoded values over the cap: rejected without allocating either.
    for len in [CAP + 1, 3 * CAP, 1 << 20] {
        let raw = signer.sign_raw(&"a".repeat(len));
        let (out, allocs) = allocations(|| signer.unsign(raw.as_bytes()).is_some());
        assert!(!out && allocs == 0, "{len}");
    }

    // Finding a cookie in a 1 MiB header never allocates, wherever the cookie is.
    let mut headers = HeaderMap::new();
    let filler = (0..10_000)
        .map(|i| format!("c{i}={}", "v".repeat(96)))
        .collect::<Vec<_>>()
        .join("; ");
    headers.append(
        COOKIE,
        HeaderValue::try_from(format!("{filler}; {NAME}=last")).unwrap(),
    );
    let (found, allocs) = allocations(|| find_cookie(&headers, NAME));
    assert_eq!(found, Some(&b"last"[..]));
    assert_eq!(allocs, 0);
    let (found, allocs) = allocations(|| find_cookie(&headers, "absent"));
    assert_eq!((found, allocs), (None, 0));
}

/// `segments` cookies of about 100 bytes each, then `tail`.
fn big_header(segments: usize, tail: &str) -> String {
    let mut out = String::with_capacity(segments * 105 + tail.len());
    for i in 0..segments {
        out.push_str(&format!("c{i:05}={}; ", "v".repeat(96)));
    }
    out.push_str(tail);
    out
}

#[test]
fn megabyte_cookie_header_with_ten_thousand_segments() {
    let fx = Fx::new(true);
    let s = &fx.sessions[0];
    let valid = format!("{NAME}={}", s.wire);
    let mut forged = s.raw.clone().into_bytes();
    let k = s.token.len() + 1;
    forged[k] = if forged[k] == b'A' { b'B' } else { b'A' };
    let forged = format!("{NAME}={}", String::from_utf8(forged).unwrap());

    let header = big_header(10_000, &valid);
    assert!(header.len() >= 1 << 20, "{}", header.len());
    // The valid cookie at the very end of 1 MiB is found and signs in, with one lookup.
    assert!(fx.check(&[header.into_bytes()], None).unwrap());
    // Without it, or behind a forged one: anonymous, no lookup, no Set-Cookie.
    assert!(!fx
        .check(&[big_header(10_000, "end=1").into_bytes()], None)
        .unwrap());
    assert!(!fx
        .check(
            &[big_header(10_000, &format!("{forged}; {valid}")).into_bytes()],
            None
        )
        .unwrap());
    // 10 000 session cookies with junk values: only the first counts.
    let junk = (0..10_000)
        .map(|i| format!("{NAME}={i:0100}"))
        .collect::<Vec<_>>()
        .join("; ");
    assert!(junk.len() >= 1 << 20);
    assert!(!fx
        .check(&[format!("{junk}; {valid}").into_bytes()], None)
        .unwrap());
    // 10 000 `Cookie` fields, the valid one last.
    let mut fields: Vec<Vec<u8>> = (0..10_000)
        .map(|i| format!("c{i}={}", "v".repeat(100)).into_bytes())
        .collect();
    fields.push(valid.clone().into_bytes());
    assert!(fx.check(&fields, None).unwrap());
    // A 1 MiB bearer credential (bearer mode is on here): anonymous, no lookup.
    let bearer = format!(
        "Bearer {}.{}",
        "t".repeat(1 << 20),
        &s.raw[s.token.len() + 1..]
    );
    assert!(!fx.check(&[], Some(bearer.as_bytes())).unwrap());

    // The work a request does that allocates is the same for 10 and for 10 000 segments: the
    // header is scanned, never parsed into a jar. (The requests are built outside the count.)
    let measure = |segments: usize, tail: &str| {
        let req = || {
            Request::get("/")
                .header(COOKIE, big_header(segments, tail))
                .body(Body::empty())
                .unwrap()
        };
        // Warm up once, then count one request.
        fx.rt.block_on(send(fx.app.clone(), req()));
        let request = req();
        let app = fx.app.clone();
        allocations(|| fx.rt.block_on(send(app, request))).1
    };
    for tail in ["end=1", forged.as_str(), valid.as_str()] {
        let small = measure(10, tail);
        let large = measure(10_000, tail);
        eprintln!("allocations: {small} for 10 segments, {large} for 10 000 ({tail:.12})");
        assert!(
            large <= small + 4,
            "{tail}: {small} allocations for 10 segments, {large} for 10 000"
        );
    }
}
