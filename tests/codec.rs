//! The cookie codec (issue 2, item 1): the spec's vectors, and malformed cookies that must be
//! anonymous with zero store calls.

mod common;

use common::*;
use http::header::COOKIE;
use http::HeaderMap;
use tower_auth_session::codec::{find_cookie, Signer};
use tower_auth_session::{MemoryStore, SessionConfig, SessionLayer, SignIn, User};

const SPEC_SECRET: &str = "better-auth-secret-12345678901234567890";

#[test]
fn spec_vector_1_signs_and_verifies() {
    let s = Signer::new(SPEC_SECRET);
    let token = "7aON9QvXi7cN5W22aBoYB7O4cBy827eS";
    assert_eq!(
        s.signature(token),
        "gDPkgSRm9C9ET9NJKyrCSrXKvFFJZGLMEcKUn2sWyTw="
    );
    assert_eq!(
        s.sign_raw(token),
        "7aON9QvXi7cN5W22aBoYB7O4cBy827eS.gDPkgSRm9C9ET9NJKyrCSrXKvFFJZGLMEcKUn2sWyTw="
    );
    let wire = "7aON9QvXi7cN5W22aBoYB7O4cBy827eS.gDPkgSRm9C9ET9NJKyrCSrXKvFFJZGLMEcKUn2sWyTw%3D";
    assert_eq!(s.sign_cookie_value(token), wire);
    assert_eq!(s.unsign(wire.as_bytes()).as_deref(), Some(token));
    // The raw (not percent-encoded) form is accepted too, as Better Auth does.
    assert_eq!(
        s.unsign(s.sign_raw(token).as_bytes()).as_deref(),
        Some(token)
    );
}

#[test]
fn spec_vector_2_encodes_plus_slash_and_equals() {
    let s = Signer::new(SPEC_SECRET);
    let token = "7aON9QvXi7cN5W22aBoYB7O4cBy827eq";
    assert_eq!(
        s.signature(token),
        "+hA15Gvr/yDv4/n+NKXYvz3o6xDnwhkFl+P7s4Y1Ex8="
    );
    let wire =
        "7aON9QvXi7cN5W22aBoYB7O4cBy827eq.%2BhA15Gvr%2FyDv4%2Fn%2BNKXYvz3o6xDnwhkFl%2BP7s4Y1Ex8%3D";
    assert_eq!(s.sign_cookie_value(token), wire);
    assert_eq!(s.unsign(wire.as_bytes()).as_deref(), Some(token));
    assert_eq!(
        s.sign_cookie_value("true"),
        "true.2Q7qxj%2F11DldXW8be7RmiJCA7bM%2BY0L1gL5sny1v%2FJ8%3D"
    );
}

#[test]
fn quoted_and_padded_values_are_accepted() {
    let s = Signer::new(SPEC_SECRET);
    let wire = "7aON9QvXi7cN5W22aBoYB7O4cBy827eS.gDPkgSRm9C9ET9NJKyrCSrXKvFFJZGLMEcKUn2sWyTw%3D";
    assert!(s.unsign(format!("\"{wire}\"").as_bytes()).is_some());
    assert!(s.unsign(format!("  {wire} ").as_bytes()).is_some());
}

#[test]
fn tokens_with_dots_split_at_the_last_dot() {
    let s = Signer::new(SPEC_SECRET);
    let wire = s.sign_cookie_value("a.b.c");
    assert_eq!(s.unsign(wire.as_bytes()).as_deref(), Some("a.b.c"));
}

#[test]
fn find_cookie_is_exact_and_first_wins() {
    let mut h = HeaderMap::new();
    h.append(COOKIE, "x=1;  sid = first ; sid=second".parse().unwrap());
    h.append(COOKIE, "sid=third".parse().unwrap());
    assert_eq!(find_cookie(&h, "sid"), Some(&b" first "[..]));
    assert_eq!(find_cookie(&h, "SID"), None);
    assert_eq!(find_cookie(&h, "x"), Some(&b"1"[..]));
}

/// A `Cookie` header value, or several header fields.
enum Shape {
    One(Vec<u8>),
    Many(Vec<Vec<u8>>),
}

fn malformed(good: &str, other_secret_good: &str) -> Vec<(&'static str, Shape)> {
    let name = "better-auth.session_token";
    let (token, sig) = good.split_once('.').unwrap();
    let raw_sig = sig
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    let one = |s: String| Shape::One(s.into_bytes());
    let mut flipped = raw_sig.clone().into_bytes();
    flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    // The signature in base64url: `-` and `_` where standard base64 has `+` and `/` (forced at
    // the first character when this signature happens to have neither).
    let url_sig = if raw_sig.contains(['+', '/']) {
        raw_sig.replace('+', "-").replace('/', "_")
    } else {
        format!("-{}", &raw_sig[1..])
    };
    vec![
        ("no dot", one(format!("{name}={token}"))),
        ("empty value", one(format!("{name}="))),
        ("only a dot", one(format!("{name}=."))),
        ("empty token", one(format!("{name}=.{sig}"))),
        ("empty signature", one(format!("{name}={token}."))),
        (
            "signature too short",
            one(format!("{name}={token}.{}", &raw_sig[..43])),
        ),
        (
            "signature too long",
            one(format!("{name}={token}.A{raw_sig}")),
        ),
        (
            "signature without padding",
            one(format!("{name}={token}.{}A", &raw_sig[..43])),
        ),
        (
            "base64url alphabet",
            one(format!("{name}={token}.{url_sig}")),
        ),
        (
            "flipped signature byte",
            one(format!("{name}={token}.{flipped}")),
        ),
        (
            "signed with another secret",
            one(format!("{name}={other_secret_good}")),
        ),
        (
            "signature of another token",
            one(format!(
                "{name}={}{}.{raw_sig}",
                if token.starts_with('X') { 'Y' } else { 'X' },
                &token[1..]
            )),
        ),
        (
            "bad percent escape",
            one(format!("{name}={token}.{}%G1", &raw_sig[..43])),
        ),
        (
            "truncated percent escape",
            one(format!("{name}={token}.{}%3", &raw_sig[..43])),
        ),
        (
            "percent-encoded invalid UTF-8",
            one(format!("{name}={token}%FF.{sig}")),
        ),
        (
            "oversized value",
            one(format!("{name}={}.{sig}", "a".repeat(5000))),
        ),
        (
            "wrong prefix variant",
            one(format!("__Secure-{name}={good}")),
        ),
        (
            "dash instead of dot in name",
            one(format!("better-auth-session_token={good}")),
        ),
        (
            "name differs in case",
            one(format!("Better-Auth.session_token={good}")),
        ),
        (
            "name percent-encoded",
            one(format!("better-auth%2Esession_token={good}")),
        ),
        (
            "name with unicode space",
            one(format!("\u{a0}{name}={good}")),
        ),
        (
            "invalid first duplicate wins",
            one(format!("{name}={token}.{flipped}; {name}={good}")),
        ),
        (
            "invalid first duplicate across fields",
            Shape::Many(vec![
                format!("{name}=nope").into_bytes(),
                format!("{name}={good}").into_bytes(),
            ]),
        ),
        (
            "segment without equals",
            one(format!("{name}; other={good}")),
        ),
        (
            "non-UTF-8 bytes",
            Shape::One(
                [
                    format!("{name}={token}").as_bytes(),
                    b"\xff\xfe.",
                    raw_sig.as_bytes(),
                ]
                .concat(),
            ),
        ),
        (
            "raw unsigned token (no bearer)",
            one(format!("{name}={token}")),
        ),
        (
            "signature with whitespace inside",
            one(format!(
                "{name}={token}.{} {}",
                &raw_sig[..20],
                &raw_sig[21..]
            )),
        ),
        (
            "double-encoded",
            one(format!("{name}={}", good.replace('%', "%25"))),
        ),
    ]
}

#[tokio::test]
async fn malformed_cookies_are_anonymous_with_zero_store_calls() {
    let store = Counting::new(MemoryStore::new());
    let config = SessionConfig::builder().secret(SECRET).build().unwrap();
    let layer = SessionLayer::new(config, store.clone());
    let user = User::new(
        "alice@example.com",
        "Alice",
        time::OffsetDateTime::now_utc(),
    );
    store.inner.insert_user(user.clone());
    let signed = layer.manager().sign_in(&user, SignIn::new()).await.unwrap();
    let good = signed.cookies.iter().next().unwrap().to_str().unwrap();
    let good = good
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let other = Signer::new("another-secret-0123456789-abcdefghijk")
        .sign_cookie_value(&signed.session.token);

    let app = email_router(layer);

    // Sanity: the good cookie works, so every rejection below is the shape's doing.
    let ok = send(
        app.clone(),
        get_req("/", Some(&format!("better-auth.session_token={good}"))),
    )
    .await;
    assert_eq!(ok.body, "alice@example.com");
    let calls_before = store.calls();

    let cases = malformed(&good, &other);
    assert!(cases.len() >= 20);
    for (what, shape) in cases {
        let mut req = http::Request::get("/");
        let fields = match shape {
            Shape::One(v) => vec![v],
            Shape::Many(v) => v,
        };
        for field in fields {
            req = req.header(COOKIE, http::HeaderValue::from_bytes(&field).unwrap());
        }
        let r = send(app.clone(), req.body(axum::body::Body::empty()).unwrap()).await;
        assert_eq!(r.status, 200, "{what}: never a 5xx");
        assert_eq!(r.body, "anonymous", "{what}");
        assert!(
            r.set_cookies().is_empty(),
            "{what}: no Set-Cookie for a malformed cookie"
        );
        assert_eq!(store.calls(), calls_before, "{what}: no store call");
    }
}
