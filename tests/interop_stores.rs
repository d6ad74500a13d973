//! Issue 4: the live Better Auth 1.7.25 peer and the layer over the same PostgreSQL database and
//! the same Redis (alone, and in front of PostgreSQL), checked in every direction: sign-in,
//! refresh, revocation, expiry, "don't remember me", cookie names, the cookie cache, and the
//! secondary-storage key shapes.
#![cfg(all(feature = "postgres", feature = "redis"))]

mod common;

use axum::routing::get;
use axum::Router;
use common::process::{better_auth, http, post_json, Server};
use common::Counting;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use tower_auth_session::extract::CurrentSession;
use tower_auth_session::store::{PostgresStore, RedisStore};
use tower_auth_session::test_support::{parse_iso, to_iso};
use tower_auth_session::{
    CookieCache, ManualClock, SessionConfig, SessionConfigBuilder, SessionInfo, SessionLayer,
    SessionStore, SignIn, SqliteStore, User,
};

const ORIGIN: &str = "http://localhost:3000";

/// Which storage both sides share.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
    Redis,
    RedisAndPostgres,
}

struct Peer<St: SessionStore> {
    ba: Server,
    app: Router,
    layer: SessionLayer<Counting<St>>,
    clock: ManualClock,
    backend: Backend,
    pg: Option<sqlx::PgPool>,
    sqlite: Option<sqlx::SqlitePool>,
    redis_url: Option<String>,
    cookie_name: String,
    _dir: tempfile::TempDir,
}

/// The environment shared by both sides, and a fresh Redis database number per test.
struct Shared {
    dir: tempfile::TempDir,
    pg_url: Option<String>,
    redis_url: Option<String>,
}

async fn shared(test: &str, backend: Backend) -> Option<Shared> {
    let dir = tempfile::tempdir().unwrap();
    let pg_url = match backend {
        Backend::Postgres | Backend::RedisAndPostgres => {
            Some(common::fresh_pg_database(test).await?)
        }
        _ => None,
    };
    let redis_url = match backend {
        Backend::Redis | Backend::RedisAndPostgres => {
            let base = common::server_url("TAS_TEST_REDIS_URL", test)?;
            // Better Auth writes unprefixed keys: give each test its own logical database.
            let db = 1 + (std::process::id() as usize + test.len() * 7 + backend as usize) % 15;
            let url = format!("{}/{db}", base.trim_end_matches('/'));
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
            Some(url)
        }
        _ => None,
    };
    Some(Shared {
        dir,
        pg_url,
        redis_url,
    })
}

fn rust_config(
    clock: &ManualClock,
    f: &dyn Fn(SessionConfigBuilder) -> SessionConfigBuilder,
) -> SessionConfig {
    f(SessionConfig::builder()
        .secret(common::SECRET)
        .clock(clock.clone()))
    .build()
    .unwrap()
}

fn router<St: SessionStore>(layer: &SessionLayer<St>) -> Router {
    Router::new()
        .route(
            "/me",
            get(
                |CurrentSession(a): CurrentSession, info: SessionInfo| async move {
                    axum::Json(json!({
                        "email": a.user.email,
                        "id": a.user.id,
                        "expiresAt": to_iso(a.session.expires_at),
                        "fromCache": info.from_cache,
                    }))
                },
            ),
        )
        .layer(layer.clone())
}

macro_rules! peer {
    ($test:expr, $backend:expr, $ba_env:expr, $cfg:expr) => {{
        let test: &str = $test;
        let backend: Backend = $backend;
        let Some(sh) = shared(test, backend).await else {
            return;
        };
        let sqlite_path = sh.dir.path().join("users.db");
        let ba_db = match &sh.pg_url {
            Some(url) if backend == Backend::Postgres || backend == Backend::RedisAndPostgres => {
                url.clone()
            }
            _ => format!("sqlite:{}", sqlite_path.display()),
        };
        let mut env: Vec<(&str, String)> = vec![
            ("BETTER_AUTH_SECRET", common::SECRET.to_owned()),
            ("BA_DB", ba_db),
            ("BA_MIGRATE", "1".to_owned()),
        ];
        if let Some(url) = &sh.redis_url {
            env.push(("BA_REDIS_URL", url.clone()));
        }
        if backend == Backend::RedisAndPostgres {
            env.push(("BA_STORE_SESSION_IN_DATABASE", "1".to_owned()));
        }
        for (k, v) in $ba_env {
            env.push((k, v.to_string()));
        }
        let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let Some(ba) = better_auth(&env_refs, test) else {
            return;
        };
        let clock = ManualClock::new(OffsetDateTime::now_utc());
        let config = rust_config(&clock, &$cfg);
        let cookie_name = config.session_cookie_name().to_owned();
        let sqlite_url = format!("sqlite://{}", sqlite_path.display());
        let pg = match &sh.pg_url {
            Some(url) => Some(sqlx::PgPool::connect(url).await.unwrap()),
            None => None,
        };
        let sqlite = if backend == Backend::Sqlite {
            Some(sqlx::SqlitePool::connect(&sqlite_url).await.unwrap())
        } else {
            None
        };
        let redis_store = match &sh.redis_url {
            Some(url) => Some(
                RedisStore::builder(url)
                    .clock(clock.clone())
                    .build()
                    .await
                    .unwrap(),
            ),
            None => None,
        };
        (
            sh,
            ba,
            clock,
            config,
            cookie_name,
            pg,
            sqlite,
            redis_store,
            sqlite_url,
        )
    }};
}

/// The first `name=value` pair for `name` in a `Cookie` header Better Auth's harness returned.
fn pair(cookie_header: &str, name: &str) -> String {
    cookie_header
        .split("; ")
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {cookie_header}"))
        .to_owned()
}

fn token_of(pair: &str) -> String {
    let value = pair.split_once('=').unwrap().1;
    value.split('.').next().unwrap().to_owned()
}

impl<St: SessionStore> Peer<St> {
    async fn me(&self, cookie: &str) -> common::Reply {
        common::send(self.app.clone(), common::get_req("/me", Some(cookie))).await
    }
    async fn ba_session(&self, cookie: &str) -> Value {
        post_json(
            &self.ba.url("/test/get-session"),
            json!({"headers": {"cookie": cookie}}),
        )
        .await
    }
    async fn ba_sign_up(&self, email: &str, remember: bool) -> Value {
        let up = post_json(
            &self.ba.url("/test/sign-up"),
            json!({"email": email, "password": "correct horse battery", "name": "Peer", "rememberMe": remember}),
        )
        .await;
        assert_eq!(up["status"], 200, "{up}");
        up
    }
    async fn rust_sign_in(&self, user: &User, remember: bool) -> String {
        // Sign in at the real time: Better Auth's revoked-before marker is real time too.
        self.clock.set(OffsetDateTime::now_utc());
        let signed = self
            .layer
            .manager()
            .sign_in(user, SignIn::new().remember_me(remember))
            .await
            .unwrap();
        signed
            .cookies
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .filter(|p| !p.ends_with('='))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Sets the stored expiry of `token` (so that the other side sees a refresh as due or an
    /// expired session), in every place this backend keeps it.
    async fn set_expiry(&self, token: &str, at: OffsetDateTime) {
        if let Some(pool) = &self.sqlite {
            sqlx::query(r#"update "session" set "expiresAt" = ?1 where "token" = ?2"#)
                .bind(to_iso(at))
                .bind(token)
                .execute(pool)
                .await
                .unwrap();
        }
        if let (Some(pool), true) = (&self.pg, self.backend != Backend::Redis) {
            sqlx::query(r#"update "session" set "expiresAt" = $1 where "token" = $2"#)
                .bind(at)
                .bind(token)
                .execute(pool)
                .await
                .unwrap();
        }
        if let Some(url) = &self.redis_url {
            let mut conn = redis::Client::open(url.as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let raw: Option<String> = redis::AsyncCommands::get(&mut conn, token).await.unwrap();
            if let Some(raw) = raw {
                let mut v: Value = serde_json::from_str(&raw).unwrap();
                v["session"]["expiresAt"] = Value::from(to_iso(at));
                let _: () = redis::cmd("SET")
                    .arg(token)
                    .arg(v.to_string())
                    .arg("KEEPTTL")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }

    /// Whether `token` is still stored anywhere.
    async fn stored(&self, token: &str) -> bool {
        let mut any = false;
        if let Some(pool) = &self.sqlite {
            let n: i64 = sqlx::query_scalar(r#"select count(*) from "session" where "token" = ?1"#)
                .bind(token)
                .fetch_one(pool)
                .await
                .unwrap();
            any |= n > 0;
        }
        if let (Some(pool), true) = (&self.pg, self.backend != Backend::Redis) {
            let n: i64 = sqlx::query_scalar(r#"select count(*) from "session" where "token" = $1"#)
                .bind(token)
                .fetch_one(pool)
                .await
                .unwrap();
            any |= n > 0;
        }
        if let Some(url) = &self.redis_url {
            let mut conn = redis::Client::open(url.as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let n: i64 = redis::AsyncCommands::exists(&mut conn, token)
                .await
                .unwrap();
            any |= n > 0;
        }
        any
    }
}

fn user_of(body: &Value) -> User {
    serde_json::from_value(body["user"].clone()).expect("Better Auth's user JSON reads as a User")
}

/// Items 1–5 and 7 on one backend.
async fn every_direction<St: SessionStore>(p: Peer<St>) {
    let name = p.cookie_name.clone();
    // 1. Better Auth signs up → Rust authenticates the cookie.
    let up = p.ba_sign_up("peer-ba@example.com", true).await;
    let ba_cookie = pair(up["cookie"].as_str().unwrap(), &name);
    let me = p.me(&ba_cookie).await;
    assert_eq!(
        me.status, 200,
        "{:?}: Rust accepts Better Auth's session: {}",
        p.backend, me.body
    );
    assert_eq!(me.json()["id"], up["body"]["user"]["id"]);

    // 2. Rust signs in → Better Auth's getSession returns the same user.
    let user = user_of(&up["body"]);
    let rust_cookie = p.rust_sign_in(&user, true).await;
    let got = p.ba_session(&rust_cookie).await;
    assert_eq!(
        got["session"]["user"]["id"],
        user.id.as_str(),
        "{:?}: {got}",
        p.backend
    );
    assert_eq!(got["setCookie"], json!([]));

    // 3a. Rust refreshes (its clock past updateAge) → Better Auth sees the new expiresAt.
    p.clock.advance(Duration::days(1) + Duration::seconds(1));
    let me = p.me(&rust_cookie).await;
    assert!(
        me.set_cookie(&name)
            .is_some_and(|l| l.contains("Max-Age=604800")),
        "{:?}: {:?}",
        p.backend,
        me.set_cookies()
    );
    let rust_exp = me.json()["expiresAt"].as_str().unwrap().to_owned();
    let got = p.ba_session(&rust_cookie).await;
    assert_eq!(
        parse_iso(got["session"]["session"]["expiresAt"].as_str().unwrap()),
        parse_iso(&rust_exp),
        "{:?}: Better Auth sees Rust's refresh",
        p.backend
    );
    p.clock.set(OffsetDateTime::now_utc());

    // 3b. Better Auth refreshes → Rust sees it.
    let ba_token = token_of(&ba_cookie);
    p.set_expiry(
        &ba_token,
        OffsetDateTime::now_utc() + Duration::days(6) - Duration::seconds(60),
    )
    .await;
    let got = p.ba_session(&ba_cookie).await;
    assert!(
        got["setCookie"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("Max-Age=604800")),
        "{:?}: {got}",
        p.backend
    );
    let ba_exp = parse_iso(got["session"]["session"]["expiresAt"].as_str().unwrap()).unwrap();
    let me = p.me(&ba_cookie).await;
    assert!(
        me.set_cookies().is_empty(),
        "{:?}: nothing due after Better Auth's refresh",
        p.backend
    );
    assert_eq!(
        parse_iso(me.json()["expiresAt"].as_str().unwrap()),
        Some(ba_exp)
    );

    // 4. Better Auth revokes one / signs out / revokes all → Rust rejects at once.
    let second = pair(
        p.ba_sign_up("peer-ba2@example.com", true).await["cookie"]
            .as_str()
            .unwrap(),
        &name,
    );
    let other = p.rust_sign_in(&user, true).await;
    let r = http(
        "POST",
        &p.ba.url("/api/auth/revoke-session"),
        &[("cookie", &ba_cookie), ("origin", ORIGIN)],
        Some(&json!({"token": token_of(&other)}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        p.me(&other).await.status,
        401,
        "{:?}: revoke-one",
        p.backend
    );
    let r = http(
        "POST",
        &p.ba.url("/api/auth/sign-out"),
        &[("cookie", &second), ("origin", ORIGIN)],
        Some("{}"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(p.me(&second).await.status, 401, "{:?}: sign-out", p.backend);
    let r = http(
        "POST",
        &p.ba.url("/api/auth/revoke-sessions"),
        &[("cookie", &ba_cookie), ("origin", ORIGIN)],
        Some("{}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        p.me(&ba_cookie).await.status,
        401,
        "{:?}: revoke-all",
        p.backend
    );
    assert_eq!(
        p.me(&rust_cookie).await.status,
        401,
        "{:?}: revoke-all covers Rust's sessions",
        p.backend
    );

    //    Rust revokes → Better Auth rejects at once.
    let a = p.rust_sign_in(&user, true).await;
    let b = p.rust_sign_in(&user, true).await;
    assert!(p.ba_session(&a).await["session"].is_object());
    p.layer.manager().revoke(&token_of(&a)).await.unwrap();
    assert_eq!(
        p.ba_session(&a).await["session"],
        Value::Null,
        "{:?}: Rust revoke-one",
        p.backend
    );
    p.layer.manager().revoke_all(&user.id).await.unwrap();
    assert_eq!(
        p.ba_session(&b).await["session"],
        Value::Null,
        "{:?}: Rust revoke-all",
        p.backend
    );

    // 5. Expired: both reject, the row goes, the cookies are cleared.
    let c = p.rust_sign_in(&user, true).await;
    p.clock.set(OffsetDateTime::now_utc() + Duration::days(8));
    let r = p.me(&c).await;
    assert_eq!(r.status, 401);
    assert!(r.set_cookie(&name).unwrap().contains("Max-Age=0"));
    assert!(
        !p.stored(&token_of(&c)).await,
        "{:?}: Rust deleted the expired session",
        p.backend
    );
    p.clock.set(OffsetDateTime::now_utc());
    let d = p.rust_sign_in(&user, true).await;
    p.set_expiry(
        &token_of(&d),
        OffsetDateTime::now_utc() - Duration::seconds(5),
    )
    .await;
    let got = p.ba_session(&d).await;
    assert_eq!(got["session"], Value::Null);
    assert!(got["setCookie"].as_array().unwrap().iter().any(|l| l
        .as_str()
        .unwrap()
        .starts_with(&format!("{name}=; Max-Age=0"))));
    assert_eq!(
        p.me(&d).await.status,
        401,
        "{:?}: Rust rejects the expired session too",
        p.backend
    );
    assert!(
        !p.stored(&token_of(&d)).await,
        "{:?}: the expired row is gone",
        p.backend
    );

    // 7. "Don't remember me": Rust never refreshes while the signed marker is present.
    let up = p.ba_sign_up("peer-dont@example.com", false).await;
    let cookies = up["cookie"].as_str().unwrap().to_owned();
    assert!(
        up["setCookie"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| !l.as_str().unwrap().contains("Max-Age")),
        "{up}"
    );
    p.clock.set(OffsetDateTime::now_utc() + Duration::hours(2));
    let r = p.me(&cookies).await;
    assert_eq!(r.status, 200);
    assert!(
        r.set_cookies().is_empty(),
        "{:?}: no refresh under dont_remember",
        p.backend
    );
    let dont = user_of(&up["body"]);
    let rust_dont = p.rust_sign_in(&dont, false).await;
    assert!(rust_dont.contains(".dont_remember=true."), "{rust_dont}");
    let got = p.ba_session(&rust_dont).await;
    assert!(
        got["session"].is_object() && got["setCookie"] == json!([]),
        "{:?}: {got}",
        p.backend
    );
    p.clock.set(OffsetDateTime::now_utc());
}

macro_rules! backend_test {
    ($name:ident, $backend:expr) => {
        #[tokio::test]
        async fn $name() {
            let (sh, ba, clock, config, cookie_name, pg, sqlite, redis_store, sqlite_url) = peer!(
                stringify!($name),
                $backend,
                Vec::<(&str, &str)>::new(),
                |b| b
            );
            let pg_store = match &sh.pg_url {
                Some(url) => Some(PostgresStore::connect(url).await.unwrap()),
                None => None,
            };
            let redis_url = sh.redis_url.clone();
            macro_rules! run {
                ($store:expr) => {{
                    let layer = SessionLayer::new(config, Counting::new($store));
                    let p = Peer {
                        app: router(&layer),
                        layer,
                        ba,
                        clock,
                        backend: $backend,
                        pg,
                        sqlite,
                        redis_url,
                        cookie_name,
                        _dir: sh.dir,
                    };
                    every_direction(p).await;
                }};
            }
            match $backend {
                Backend::Sqlite => run!(SqliteStore::connect(&sqlite_url).await.unwrap()),
                Backend::Postgres => run!(pg_store.unwrap()),
                Backend::Redis => run!(redis_store.unwrap()),
                Backend::RedisAndPostgres => {
                    run!(redis_store.unwrap().in_front_of(pg_store.unwrap()))
                }
            }
        }
    };
}

backend_test!(every_direction_on_sqlite, Backend::Sqlite);
backend_test!(every_direction_on_postgres, Backend::Postgres);
backend_test!(every_direction_on_redis, Backend::Redis);
backend_test!(
    every_direction_on_redis_in_front_of_postgres,
    Backend::RedisAndPostgres
);

/// 6. Cookie names: `__Secure-` (https base URL), a custom prefix, a custom name. Configured the
/// same on both sides, both accept; mismatched, both reject.
#[tokio::test]
async fn cookie_names_must_match_on_both_sides() {
    type Case = (
        &'static [(&'static str, &'static str)],
        fn(SessionConfigBuilder) -> SessionConfigBuilder,
        &'static str,
    );
    let cases: [Case; 3] = [
        (
            &[("BA_BASE_URL", "https://app.example.com")],
            |b| b.base_url("https://app.example.com"),
            "__Secure-better-auth.session_token",
        ),
        (
            &[("BA_COOKIE_PREFIX", "myapp")],
            |b| b.cookie_prefix("myapp"),
            "myapp.session_token",
        ),
        (
            &[("BA_SESSION_COOKIE_NAME", "sid")],
            |b| b.session_cookie_name("sid"),
            "sid",
        ),
    ];
    for (i, (ba_env, cfg, expected)) in cases.into_iter().enumerate() {
        let test = "cookie_names_must_match_on_both_sides";
        let (sh, ba, clock, config, cookie_name, _pg, _sqlite, _redis, sqlite_url) =
            peer!(test, Backend::Sqlite, ba_env.iter().copied(), cfg);
        assert_eq!(cookie_name, expected);
        let layer = SessionLayer::new(
            config,
            Counting::new(SqliteStore::connect(&sqlite_url).await.unwrap()),
        );
        let app = router(&layer);
        let up = post_json(
            &ba.url("/test/sign-up"),
            json!({"email": format!("names{i}@example.com"), "password": "correct horse battery"}),
        )
        .await;
        let ba_pair = pair(up["cookie"].as_str().unwrap(), expected);
        let me = common::send(app.clone(), common::get_req("/me", Some(&ba_pair))).await;
        assert_eq!(
            me.status, 200,
            "{expected}: Rust accepts Better Auth's cookie"
        );
        let user = user_of(&up["body"]);
        let signed = layer.manager().sign_in(&user, SignIn::new()).await.unwrap();
        let line = signed
            .cookies
            .iter()
            .next()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(line.starts_with(&format!("{expected}=")), "{line}");
        let rust_pair = line.split(';').next().unwrap().to_owned();
        let got = post_json(
            &ba.url("/test/get-session"),
            json!({"headers": {"cookie": rust_pair}}),
        )
        .await;
        assert!(
            got["session"].is_object(),
            "{expected}: Better Auth accepts Rust's cookie"
        );

        // A mismatched name (the default one) is ignored by both.
        let value = rust_pair.split_once('=').unwrap().1;
        let wrong = format!("better-auth.session_token={value}");
        if expected != "better-auth.session_token" {
            assert_eq!(
                common::send(app.clone(), common::get_req("/me", Some(&wrong)))
                    .await
                    .status,
                401
            );
            let got = post_json(
                &ba.url("/test/get-session"),
                json!({"headers": {"cookie": wrong}}),
            )
            .await;
            assert_eq!(
                got["session"],
                Value::Null,
                "{expected}: Better Auth ignores the other name"
            );
        }
        drop((sh, clock));
    }
}

/// 8–9. The cookie cache: Better Auth's compact (also chunked) and jwt cookies are trusted with
/// no store read; cache cookies minted here are accepted by Better Auth with no row behind them.
#[tokio::test]
async fn cookie_cache_both_ways() {
    for (strategy, cache) in [
        ("compact", CookieCache::compact()),
        ("jwt", CookieCache::jwt()),
    ] {
        let test = "cookie_cache_both_ways";
        let ba_env = [("BA_COOKIE_CACHE", strategy)];
        let c2 = cache.clone();
        let (sh, ba, clock, config, cookie_name, _pg, sqlite, _redis, sqlite_url) = peer!(
            test,
            Backend::Sqlite,
            ba_env.iter().copied(),
            move |b: SessionConfigBuilder| b.cookie_cache(c2.clone())
        );
        let store = Counting::new(SqliteStore::connect(&sqlite_url).await.unwrap());
        let layer = SessionLayer::new(config, store.clone());
        let app = router(&layer);
        for (i, name_len) in [5usize, 9000].into_iter().enumerate() {
            let email = format!("cache-{strategy}-{i}@example.com");
            let up = post_json(&ba.url("/test/sign-up"), json!({"email": email, "password": "correct horse battery", "name": "N".repeat(name_len)})).await;
            let cookies = up["cookie"].as_str().unwrap().to_owned();
            if name_len > 4000 {
                assert!(
                    cookies.contains("better-auth.session_data.1="),
                    "{strategy}: Better Auth chunked its cache"
                );
            }
            let calls = store.calls();
            let me = common::send(app.clone(), common::get_req("/me", Some(&cookies))).await;
            assert_eq!(me.status, 200, "{strategy}/{name_len}: {}", me.body);
            assert_eq!(
                me.json()["fromCache"],
                true,
                "{strategy}/{name_len}: trusted Better Auth's cache"
            );
            assert_eq!(store.calls(), calls, "{strategy}/{name_len}: no store read");

            // Rust mints a cache cookie on a store read; Better Auth accepts it without the row.
            let token_pair = pair(&cookies, &cookie_name);
            let r = common::send(app.clone(), common::get_req("/me", Some(&token_pair))).await;
            let minted: Vec<String> = r
                .set_cookies()
                .into_iter()
                .filter(|l| l.starts_with("better-auth.session_data"))
                .map(|l| l.split(';').next().unwrap().to_owned())
                .collect();
            assert!(!minted.is_empty(), "{strategy}: Rust issued a cache cookie");
            if name_len > 4000 {
                assert!(
                    minted.len() >= 3,
                    "{strategy}: Rust chunked it: {}",
                    minted.len()
                );
            }
            sqlx::query(r#"delete from "session" where "token" = ?1"#)
                .bind(token_of(&token_pair))
                .execute(sqlite.as_ref().unwrap())
                .await
                .unwrap();
            let jar = format!("{token_pair}; {}", minted.join("; "));
            let got = post_json(
                &ba.url("/test/get-session"),
                json!({"headers": {"cookie": jar}}),
            )
            .await;
            assert_eq!(
                got["session"]["user"]["email"],
                email.as_str(),
                "{strategy}/{name_len}: Better Auth accepted Rust's cache: {got}"
            );
        }
        drop((sh, clock));
    }
}

/// 10. Keys written by Rust have exactly the shapes Better Auth writes.
#[tokio::test]
async fn secondary_storage_keys_match_better_auths() {
    let test = "secondary_storage_keys_match_better_auths";
    let (sh, ba, clock, config, _name, _pg, _sqlite, redis_store, _url) =
        peer!(test, Backend::Redis, Vec::<(&str, &str)>::new(), |b| b);
    let layer = SessionLayer::new(config, redis_store.unwrap());
    let url = sh.redis_url.clone().unwrap();
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    let up = post_json(
        &ba.url("/test/sign-up"),
        json!({"email": "keys@example.com", "password": "correct horse battery"}),
    )
    .await;
    let user = user_of(&up["body"]);
    let ba_token = up["body"]["token"].as_str().unwrap().to_owned();
    let ba_value: String = redis::AsyncCommands::get(&mut conn, &ba_token)
        .await
        .unwrap();
    let ba_ttl: i64 = redis::AsyncCommands::ttl(&mut conn, &ba_token)
        .await
        .unwrap();

    clock.set(OffsetDateTime::now_utc());
    let signed = layer.manager().sign_in(&user, SignIn::new()).await.unwrap();
    let rust_value: String = redis::AsyncCommands::get(&mut conn, &signed.session.token)
        .await
        .unwrap();
    let rust_ttl: i64 = redis::AsyncCommands::ttl(&mut conn, &signed.session.token)
        .await
        .unwrap();

    // Same keys, same order, at every level; values differ only where they must.
    fn shape(v: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for part in ["session", "user"] {
            for k in v[part].as_object().unwrap().keys() {
                out.push(format!("{part}.{k}"));
            }
        }
        out
    }
    let ba_json: Value = serde_json::from_str(&ba_value).unwrap();
    let rust_json: Value = serde_json::from_str(&rust_value).unwrap();
    assert_eq!(
        shape(&rust_json),
        shape(&ba_json),
        "\nrust: {rust_value}\nba:   {ba_value}"
    );
    assert_eq!(
        rust_json["user"], ba_json["user"],
        "the embedded user is byte-identical"
    );
    assert!(
        (ba_ttl - rust_ttl).abs() <= 2,
        "TTLs: Better Auth {ba_ttl}, Rust {rust_ttl}"
    );

    // The list: both sessions, earliest expiry first, `{token, expiresAt}` entries.
    let list: String = redis::AsyncCommands::get(&mut conn, format!("active-sessions-{}", user.id))
        .await
        .unwrap();
    let entries: Vec<Value> = serde_json::from_str(&list).unwrap();
    assert_eq!(entries.len(), 2, "{list}");
    assert_eq!(entries[0]["token"], ba_token.as_str());
    assert_eq!(entries[1]["token"], signed.session.token.as_str());
    for e in &entries {
        assert_eq!(
            e.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["token", "expiresAt"]
        );
    }

    // Better Auth reads Rust's list: its list-sessions shows both.
    let jar = pair(up["cookie"].as_str().unwrap(), "better-auth.session_token");
    let listed = http(
        "GET",
        &ba.url("/api/auth/list-sessions"),
        &[("cookie", &jar)],
        None,
    )
    .await;
    assert_eq!(
        listed.json().as_array().map(Vec::len),
        Some(2),
        "{}",
        listed.body
    );

    // Revoke-all from Rust leaves exactly what Better Auth's leaves: the marker.
    layer.manager().revoke_all(&user.id).await.unwrap();
    let keys: Vec<String> = redis::AsyncCommands::keys(&mut conn, "*").await.unwrap();
    assert_eq!(keys, vec![format!("revoked-sessions-before-{}", user.id)]);
    let marker_ttl: i64 = redis::AsyncCommands::ttl(&mut conn, &keys[0])
        .await
        .unwrap();
    assert!((604_790..=604_800).contains(&marker_ttl), "{marker_ttl}");
    let got = post_json(
        &ba.url("/test/get-session"),
        json!({"headers": {"cookie": jar}}),
    )
    .await;
    assert_eq!(
        got["session"],
        Value::Null,
        "Better Auth honours Rust's revoke-all"
    );
}
