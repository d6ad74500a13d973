//! A live Better Auth 1.7 server and the quickstart share one SQLite file, both ways, including
//! after refreshes on either side. Needs the Node harness (`scripts/test-all.sh` installs it);
//! plain `cargo test` skips these with a message.

mod common;

use common::process::{better_auth, http, post_json, quickstart, Server};
use serde_json::json;
use sqlx::sqlite::SqlitePool;
use time::{Duration, OffsetDateTime};
use tower_auth_session::test_support::{parse_iso, to_iso};

const ORIGIN: &str = "http://localhost:3000";

struct Pair {
    ba: Server,
    rust: Server,
    db: SqlitePool,
    _dir: tempfile::TempDir,
}

async fn pair(test: &str, rust_first: bool) -> Option<Pair> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let ba_db = format!("sqlite:{}", path.display());
    let url = format!("sqlite://{}", path.display());
    let ba_env = [
        ("BETTER_AUTH_SECRET", common::SECRET),
        ("BA_DB", ba_db.as_str()),
        ("BA_MIGRATE", "1"),
    ];
    let rust_env = [
        ("BETTER_AUTH_SECRET", common::SECRET),
        ("DATABASE_URL", url.as_str()),
    ];
    let (ba, rust) = if rust_first {
        // Rust creates user/session; Better Auth's migration adds account/verification.
        let rust = quickstart(&rust_env);
        (better_auth(&ba_env, test)?, rust)
    } else {
        let ba = better_auth(&ba_env, test)?;
        (ba, quickstart(&rust_env))
    };
    let db = SqlitePool::connect(&url).await.unwrap();
    Some(Pair {
        ba,
        rust,
        db,
        _dir: dir,
    })
}

impl Pair {
    async fn ba_get_session(&self, cookie: &str) -> serde_json::Value {
        post_json(
            &self.ba.url("/test/get-session"),
            json!({"headers": {"cookie": cookie}}),
        )
        .await
    }
    async fn rust_me(&self, cookie: &str) -> common::Reply {
        http("GET", &self.rust.url("/me"), &[("cookie", cookie)], None).await
    }
    /// Moves a session's expiry to `now + 6 days − 60 s`: its last refresh is a day and a
    /// minute old, so the next request on either side must extend it.
    async fn make_refresh_due(&self, token: &str) {
        let due = to_iso(OffsetDateTime::now_utc() + Duration::days(6) - Duration::seconds(60));
        let n = sqlx::query(r#"update "session" set "expiresAt" = ?1 where "token" = ?2"#)
            .bind(due)
            .bind(token)
            .execute(&self.db)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(n, 1);
    }
    async fn expires_at(&self, token: &str) -> OffsetDateTime {
        let s: String =
            sqlx::query_scalar(r#"select "expiresAt" from "session" where "token" = ?1"#)
                .bind(token)
                .fetch_one(&self.db)
                .await
                .unwrap();
        assert!(s.ends_with('Z') && s.len() == 24, "toISOString format: {s}");
        parse_iso(&s).unwrap()
    }
}

fn token_of(cookie: &str) -> String {
    let value = cookie.split_once('=').unwrap().1;
    value.split('.').next().unwrap().to_owned()
}

fn assert_about_seven_days(t: OffsetDateTime) {
    let left = t - OffsetDateTime::now_utc();
    assert!(
        left > Duration::days(7) - Duration::minutes(2) && left <= Duration::days(7),
        "{left}"
    );
}

async fn both_ways(p: Pair) {
    // Better Auth signs up → Rust authenticates that cookie.
    let up = post_json(
        &p.ba.url("/test/sign-up"),
        json!({"email": "ba-user@example.com", "password": "correct horse battery", "name": "From BA"}),
    )
    .await;
    assert_eq!(up["status"], 200, "{up}");
    let ba_cookie = up["cookie"]
        .as_str()
        .unwrap()
        .split("; ")
        .find(|c| c.starts_with("better-auth.session_token="))
        .unwrap()
        .to_owned();
    let me = p.rust_me(&ba_cookie).await;
    assert_eq!(
        me.status, 200,
        "Rust accepts Better Auth's cookie: {}",
        me.body
    );
    assert_eq!(me.json()["email"], "ba-user@example.com");
    assert_eq!(me.json()["id"], up["body"]["user"]["id"]);

    // Rust signs in → Better Auth accepts the cookie and returns the same user.
    let r = http(
        "POST",
        &p.rust.url("/sign-in"),
        &[],
        Some(r#"{"email":"rust-user@example.com","name":"From Rust"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rust_cookie = r.cookie_pair("better-auth.session_token");
    let got = p.ba_get_session(&rust_cookie).await;
    assert_eq!(
        got["session"]["user"]["email"], "rust-user@example.com",
        "{got}"
    );
    assert_eq!(got["session"]["user"]["id"], r.json()["id"]);
    assert_eq!(got["session"]["session"]["token"], token_of(&rust_cookie));
    assert_eq!(got["setCookie"], json!([]), "nothing to refresh yet");

    // Rust refreshes → Better Auth sees the new expiresAt.
    p.make_refresh_due(&token_of(&rust_cookie)).await;
    let me = p.rust_me(&rust_cookie).await;
    let line = me
        .set_cookie("better-auth.session_token")
        .expect("Rust re-sends the cookie");
    assert_eq!(
        line,
        format!("{rust_cookie}; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax")
    );
    assert_about_seven_days(p.expires_at(&token_of(&rust_cookie)).await);
    let got = p.ba_get_session(&rust_cookie).await;
    assert_eq!(
        got["setCookie"],
        json!([]),
        "Better Auth sees the refreshed row: no refresh due"
    );
    let seen = parse_iso(got["session"]["session"]["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(seen, p.expires_at(&token_of(&rust_cookie)).await);

    // Better Auth refreshes → Rust sees the new expiresAt.
    p.make_refresh_due(&token_of(&ba_cookie)).await;
    let got = p.ba_get_session(&ba_cookie).await;
    let lines = got["setCookie"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l
            .as_str()
            .unwrap()
            .starts_with(&format!("{ba_cookie}; Max-Age=604800"))),
        "{got}"
    );
    let me = p.rust_me(&ba_cookie).await;
    assert!(me.set_cookies().is_empty(), "nothing left to refresh");
    let seen = parse_iso(me.json()["expiresAt"].as_str().unwrap()).unwrap();
    assert_about_seven_days(seen);
    assert_eq!(seen, p.expires_at(&token_of(&ba_cookie)).await);

    // Better Auth signs out → Rust rejects at once; Rust signs out → Better Auth rejects.
    let out = http(
        "POST",
        &p.ba.url("/api/auth/sign-out"),
        &[("cookie", &ba_cookie), ("origin", ORIGIN)],
        Some("{}"),
    )
    .await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(p.rust_me(&ba_cookie).await.status, 401);
    let out = http(
        "POST",
        &p.rust.url("/sign-out"),
        &[("cookie", &rust_cookie)],
        None,
    )
    .await;
    assert_eq!(out.status, 200);
    assert_eq!(p.ba_get_session(&rust_cookie).await["session"], json!(null));
}

#[tokio::test]
async fn better_auth_schema_shared_both_ways() {
    if let Some(p) = pair("better_auth_schema_shared_both_ways", false).await {
        both_ways(p).await;
    }
}

#[tokio::test]
async fn rust_created_schema_shared_both_ways() {
    if let Some(p) = pair("rust_created_schema_shared_both_ways", true).await {
        both_ways(p).await;
    }
}
