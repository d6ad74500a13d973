//! The live Better Auth 1.7.25 peer and the layer over the same database (SQLite; PostgreSQL and
//! MySQL/MariaDB with Better Auth's text, `uuid` and `serial` ids, each schema made by Better
//! Auth's own migration) and the same Redis (one node, a 3-master cluster, and in front of
//! PostgreSQL), checked in every direction: sign-in, refresh, revocation, expiry, "don't
//! remember me", cookie names, the cookie cache, and the secondary-storage key shapes.
#![cfg(all(feature = "postgres", feature = "redis", feature = "mysql"))]

mod common;

use axum::routing::get;
use axum::Router;
use common::process::{better_auth, http, post_json, Server};
use common::Counting;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use tower_auth_session::extract::CurrentSession;
use tower_auth_session::store::{IdFormat, MySqlStore, PostgresStore, RedisStore, SqlSchema};
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
    SqliteUuid,
    SqliteSerial,
    Postgres,
    PostgresUuid,
    PostgresSerial,
    MySql,
    MySqlUuid,
    MySqlSerial,
    Redis,
    RedisCluster,
    RedisAndPostgres,
    /// Better Auth's `preserveSessionInDatabase` on both sides.
    RedisAndPostgresPreserving,
}

impl Backend {
    /// Better Auth's `advanced.database.generateId`.
    fn generate_id(self) -> Option<&'static str> {
        match self {
            Self::SqliteUuid | Self::PostgresUuid | Self::MySqlUuid => Some("uuid"),
            Self::SqliteSerial | Self::PostgresSerial | Self::MySqlSerial => Some("serial"),
            _ => None,
        }
    }
    /// Whether sessions live in PostgreSQL rows.
    fn postgres(self) -> bool {
        matches!(
            self,
            Self::Postgres
                | Self::PostgresUuid
                | Self::PostgresSerial
                | Self::RedisAndPostgres
                | Self::RedisAndPostgresPreserving
        )
    }
    fn sqlite(self) -> bool {
        matches!(self, Self::Sqlite | Self::SqliteUuid | Self::SqliteSerial)
    }
    fn mysql(self) -> bool {
        matches!(self, Self::MySql | Self::MySqlUuid | Self::MySqlSerial)
    }
}

struct Peer<St: SessionStore> {
    ba: Server,
    app: Router,
    layer: SessionLayer<Counting<St>>,
    clock: ManualClock,
    backend: Backend,
    pg: Option<sqlx::PgPool>,
    sqlite: Option<sqlx::SqlitePool>,
    mysql: Option<sqlx::MySqlPool>,
    redis_url: Option<String>,
    cluster_urls: Option<String>,
    cookie_name: String,
    _dir: tempfile::TempDir,
}

/// The environment shared by both sides, and a fresh Redis database number per test.
struct Shared {
    dir: tempfile::TempDir,
    pg_url: Option<String>,
    mysql_url: Option<String>,
    redis_url: Option<String>,
    cluster_urls: Option<String>,
}

async fn shared(test: &str, backend: Backend) -> Option<Shared> {
    let dir = tempfile::tempdir().unwrap();
    let pg_url = if backend.postgres() {
        Some(common::fresh_pg_database(test).await?)
    } else {
        None
    };
    let mysql_url = if backend.mysql() {
        Some(common::fresh_mysql_database(test).await?)
    } else {
        None
    };
    let cluster_urls = if backend == Backend::RedisCluster {
        // Better Auth writes unprefixed keys; user ids and tokens are random, so tests sharing
        // the cluster never touch each other's keys.
        Some(common::server_url("TAS_TEST_REDIS_CLUSTER_URLS", test)?)
    } else {
        None
    };
    let redis_url = match backend {
        Backend::Redis | Backend::RedisAndPostgres | Backend::RedisAndPostgresPreserving => {
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
        mysql_url,
        redis_url,
        cluster_urls,
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
        let ba_db = match (&sh.pg_url, &sh.mysql_url) {
            (Some(url), _) | (_, Some(url)) => url.clone(),
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
        if let Some(urls) = &sh.cluster_urls {
            env.push(("BA_REDIS_CLUSTER_URLS", urls.clone()));
        }
        if let Some(mode) = backend.generate_id() {
            env.push(("BA_GENERATE_ID", mode.to_owned()));
        }
        if matches!(
            backend,
            Backend::RedisAndPostgres | Backend::RedisAndPostgresPreserving
        ) {
            env.push(("BA_STORE_SESSION_IN_DATABASE", "1".to_owned()));
        }
        if backend == Backend::RedisAndPostgresPreserving {
            env.push(("BA_PRESERVE_SESSION_IN_DATABASE", "1".to_owned()));
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
        let sqlite = if backend.sqlite() {
            Some(sqlx::SqlitePool::connect(&sqlite_url).await.unwrap())
        } else {
            None
        };
        let redis_store = match (&sh.redis_url, &sh.cluster_urls) {
            (Some(url), _) => Some(
                RedisStore::builder(url)
                    .clock(clock.clone())
                    .build()
                    .await
                    .unwrap(),
            ),
            (_, Some(urls)) => Some(
                RedisStore::cluster_builder(urls.split(','))
                    .clock(clock.clone())
                    .build()
                    .await
                    .unwrap(),
            ),
            _ => None,
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

    /// A connection to the shared Redis (one node or the cluster), if there is one.
    async fn redis(&self) -> Option<Redis> {
        match (&self.redis_url, &self.cluster_urls) {
            (Some(url), _) => Some(Redis::Node(
                redis::Client::open(url.as_str())
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap(),
            )),
            (_, Some(urls)) => Some(Redis::Cluster(
                redis::cluster::ClusterClient::new(urls.split(',').collect::<Vec<_>>())
                    .unwrap()
                    .get_async_connection()
                    .await
                    .unwrap(),
            )),
            _ => None,
        }
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
        if let Some(pool) = &self.pg {
            sqlx::query(r#"update "session" set "expiresAt" = $1 where "token" = $2"#)
                .bind(at)
                .bind(token)
                .execute(pool)
                .await
                .unwrap();
        }
        if let Some(pool) = &self.mysql {
            sqlx::query("update `session` set `expiresAt` = ? where `token` = ?")
                .bind(at)
                .bind(token)
                .execute(pool)
                .await
                .unwrap();
        }
        if let Some(mut conn) = self.redis().await {
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
        // With preserveSessionInDatabase, ended rows stay (checked at the end of `every_direction`).
        if let Some(pool) = self
            .pg
            .as_ref()
            .filter(|_| self.backend != Backend::RedisAndPostgresPreserving)
        {
            let n: i64 = sqlx::query_scalar(r#"select count(*) from "session" where "token" = $1"#)
                .bind(token)
                .fetch_one(pool)
                .await
                .unwrap();
            any |= n > 0;
        }
        if let Some(pool) = &self.mysql {
            let n: i64 = sqlx::query_scalar("select count(*) from `session` where `token` = ?")
                .bind(token)
                .fetch_one(pool)
                .await
                .unwrap();
            any |= n > 0;
        }
        if let Some(mut conn) = self.redis().await {
            let n: i64 = redis::AsyncCommands::exists(&mut conn, token)
                .await
                .unwrap();
            any |= n > 0;
        }
        any
    }
}

/// A connection to one Redis node or to the cluster.
enum Redis {
    Node(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Redis {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Node(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Node(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Self::Node(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
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

    //    With preserveSessionInDatabase on both sides, no row of this user was deleted by
    //    either: the seven sessions above are all in the table, ended where Better Auth or Rust
    //    signed them out or revoked them; only `c` (expired by Rust's clock alone, its Redis
    //    key dropped) keeps its expiry.
    if p.backend == Backend::RedisAndPostgresPreserving {
        let pool = p.pg.as_ref().unwrap();
        let (rows, live): (i64, i64) = sqlx::query_as(
            r#"select count(*), count(*) filter (where "expiresAt" > now()) from "session" where "userId" = $1"#,
        )
        .bind(&user.id)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!((rows, live), (7, 1), "rows kept, live");
    }

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
            let expected_ids = match $backend.generate_id() {
                Some("uuid") => IdFormat::Uuid,
                Some(_) => IdFormat::Serial,
                None => IdFormat::Text,
            };
            let pg_store = match &sh.pg_url {
                Some(url) => {
                    // No id option: the column types say which layout Better Auth made.
                    let store = PostgresStore::connect(url).await.unwrap();
                    assert_eq!(store.id_format(), expected_ids);
                    Some(store)
                }
                None => None,
            };
            let (mysql, mysql_store) = match &sh.mysql_url {
                Some(url) => {
                    // MySQL's uuid layout is `varchar(36)`, as with text ids: say so.
                    let store = MySqlStore::builder(url)
                        .schema(SqlSchema::better_auth().ids(expected_ids))
                        .build()
                        .await
                        .unwrap();
                    assert_eq!(store.id_format(), expected_ids);
                    (
                        Some(sqlx::MySqlPool::connect(url).await.unwrap()),
                        Some(store),
                    )
                }
                None => (None, None),
            };
            let redis_url = sh.redis_url.clone();
            let cluster_urls = sh.cluster_urls.clone();
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
                        mysql,
                        redis_url,
                        cluster_urls,
                        cookie_name,
                        _dir: sh.dir,
                    };
                    every_direction(p).await;
                }};
            }
            match $backend {
                Backend::Sqlite | Backend::SqliteUuid | Backend::SqliteSerial => {
                    // SQLite's uuid layout is text ids, as by default: say so.
                    let store = SqliteStore::builder(&sqlite_url)
                        .schema(SqlSchema::better_auth().ids(expected_ids))
                        .create_schema(false)
                        .build()
                        .await
                        .unwrap();
                    assert_eq!(store.id_format(), expected_ids);
                    run!(store)
                }
                Backend::Postgres | Backend::PostgresUuid | Backend::PostgresSerial => {
                    run!(pg_store.unwrap())
                }
                Backend::MySql | Backend::MySqlUuid | Backend::MySqlSerial => {
                    run!(mysql_store.unwrap())
                }
                Backend::Redis | Backend::RedisCluster => run!(redis_store.unwrap()),
                Backend::RedisAndPostgres => {
                    run!(redis_store.unwrap().in_front_of(pg_store.unwrap()))
                }
                Backend::RedisAndPostgresPreserving => run!(redis_store
                    .unwrap()
                    .in_front_of(pg_store.unwrap())
                    .preserve_in_database()),
            }
        }
    };
}

backend_test!(every_direction_on_sqlite, Backend::Sqlite);
backend_test!(every_direction_on_sqlite_uuid_ids, Backend::SqliteUuid);
backend_test!(every_direction_on_sqlite_serial_ids, Backend::SqliteSerial);
backend_test!(every_direction_on_postgres, Backend::Postgres);
backend_test!(every_direction_on_postgres_uuid_ids, Backend::PostgresUuid);
backend_test!(
    every_direction_on_postgres_serial_ids,
    Backend::PostgresSerial
);
backend_test!(every_direction_on_mysql, Backend::MySql);
backend_test!(every_direction_on_mysql_uuid_ids, Backend::MySqlUuid);
backend_test!(every_direction_on_mysql_serial_ids, Backend::MySqlSerial);
backend_test!(every_direction_on_redis, Backend::Redis);
backend_test!(every_direction_on_a_redis_cluster, Backend::RedisCluster);
backend_test!(
    every_direction_on_redis_in_front_of_postgres,
    Backend::RedisAndPostgres
);
backend_test!(
    every_direction_on_redis_in_front_of_postgres_preserving,
    Backend::RedisAndPostgresPreserving
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

/// Fifty parallel Rust sign-ins of one Better Auth user, on one Redis node and on the cluster:
/// every one succeeds, and Better Auth's own list-sessions shows all of them next to its own.
#[tokio::test]
async fn fifty_parallel_sign_ins_are_listed_by_better_auth() {
    for backend in [Backend::Redis, Backend::RedisCluster] {
        let test = "fifty_parallel_sign_ins_are_listed_by_better_auth";
        let (sh, ba, clock, config, name, _pg, _sqlite, redis_store, _url) =
            peer!(test, backend, Vec::<(&str, &str)>::new(), |b| b);
        let layer = SessionLayer::new(config, redis_store.unwrap());
        let up = post_json(
            &ba.url("/test/sign-up"),
            json!({"email": "fifty@example.com", "password": "correct horse battery"}),
        )
        .await;
        let user = user_of(&up["body"]);
        clock.set(OffsetDateTime::now_utc());
        let manager = layer.manager();
        let results =
            futures_util::future::join_all((0..50).map(|_| manager.sign_in(&user, SignIn::new())))
                .await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(
            failed,
            0,
            "{backend:?}: {:?}",
            results.iter().find(|r| r.is_err())
        );
        let jar = pair(up["cookie"].as_str().unwrap(), &name);
        let listed = http(
            "GET",
            &ba.url("/api/auth/list-sessions"),
            &[("cookie", &jar)],
            None,
        )
        .await;
        assert_eq!(
            listed.json().as_array().map(Vec::len),
            Some(51),
            "{backend:?}: Better Auth lists its session and Rust's fifty"
        );
        drop(sh);
    }
}
