//! PostgreSQL behind a host list, as libpq takes it (`postgres://u@db1:5432,db2:5432/app` with
//! `target_session_attrs=read-write`), the way self-hosted high availability (Patroni, repmgr)
//! is usually reached without a proxy: the store uses the listed server that takes writes, says
//! what to fix when none does, and follows a failover to the promoted standby, whether the
//! primary crashed or stayed up refusing writes; a cache's change feed follows it too.
//!
//! Each test owns a primary and a streaming standby (`pg_basebackup -R`), started here and
//! stopped on drop; the tests take turns, since each runs two servers on two cores.
#![cfg(all(feature = "postgres", feature = "cache"))]

mod common;
mod conformance;

use std::time::{Duration, Instant};

use common::servers::Postgres;
use sqlx::Connection as _;
use tower_auth_session::store::PostgresStore;
use tower_auth_session::{Session, SessionStore, StorageKey, User};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `postgres://postgres@127.0.0.1:P1,127.0.0.1:P2/postgres` with `query` (may be empty).
fn list_url(ports: &[u16], query: &str) -> String {
    let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("postgres://postgres@{}/postgres{query}", hosts.join(","))
}

async fn build(url: &str) -> Result<PostgresStore, tower_auth_session::StoreError> {
    build_with(url, Duration::from_secs(1)).await
}

async fn build_with(
    url: &str,
    timeout: Duration,
) -> Result<PostgresStore, tower_auth_session::StoreError> {
    PostgresStore::builder(url)
        .create_schema(true)
        .timeout(timeout)
        .build()
        .await
}

/// The port of the server the store's pool connects to now.
fn in_use(store: &PostgresStore) -> u16 {
    store.pool().connect_options().get_port()
}

/// One number from `sql` on the server at `port`, on a connection of the test's own.
async fn number(port: u16, sql: &str) -> i64 {
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
    let _ = conn.close().await;
    n
}

async fn execute(port: u16, sql: &str) {
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    let _ = conn.close().await;
}

/// A user and `n` live sessions, written through `store`.
async fn sign_in(store: &PostgresStore, email: &str, n: usize) -> Vec<Session> {
    let user = store
        .insert_user(&User::new(email, "Failover", common::now()))
        .await
        .unwrap();
    let mut sessions = Vec::new();
    for _ in 0..n {
        let session = conformance::session(&user, common::now() + time::Duration::days(7));
        sessions.push(store.create(&session, &user).await.unwrap());
    }
    sessions
}

/// Waits until the standby has replayed everything the primary wrote so far.
async fn replayed(primary: &Postgres, standby: &Postgres) {
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", primary.port);
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let lsn: String = sqlx::query_scalar("select pg_current_wal_lsn()::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    let check = format!("select (pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn)::int::int8");
    common::until(
        "the standby replays the primary's writes",
        Duration::from_secs(10),
        || async { number(standby.port, &check).await == 1 },
    )
    .await;
}

/// A primary, its streaming standby, a store on both (`read-write`, the primary listed first)
/// with `n` sessions of one user, and a cache that watches the store's change feed and holds
/// every session.
struct Pair {
    primary: Postgres,
    standby: Postgres,
    store: PostgresStore,
    sessions: Vec<Session>,
    changes: tower_auth_session::store::SessionChanges,
    inner: common::Counting<PostgresStore>,
    cached: tower_auth_session::store::CachedStore<common::Counting<PostgresStore>>,
}

impl Pair {
    async fn start(test: &str, n: usize) -> Option<Self> {
        let primary = Postgres::start(test)?;
        let standby = primary.standby();
        let url = list_url(
            &[primary.port, standby.port],
            "target_session_attrs=read-write",
        );
        // A failover is tested for what it ends in, not for how fast: 5 s lets the first read
        // after a crash find the promoted server on a loaded machine (CI saw one such read
        // take more than 1 s once, while the servers were busy promoting and reconnecting).
        let store = build_with(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!(in_use(&store), primary.port);
        let sessions = sign_in(&store, &format!("{n}@example.com"), n).await;
        let changes = store
            .session_changes()
            .create_trigger(true)
            .start()
            .await
            .unwrap();
        let (inner, cached) = common::counted_cache(&store, &changes);
        for s in &sessions {
            assert!(cached.find(&s.storage_key()).await.unwrap().is_some());
        }
        replayed(&primary, &standby).await;
        Some(Self {
            primary,
            standby,
            store,
            sessions,
            changes,
            inner,
            cached,
        })
    }

    /// The feed listens on the promoted standby: it dropped the cache when it reconnected
    /// (`kept` is read from the store again), and a delete of `deleted` made there reaches the
    /// cache.
    async fn feed_follows(&self, kept: &Session, deleted: &Session, what: &str) {
        common::cache_dropped(&self.cached, &self.inner, &kept.token, what).await;
        let mut applied = self.changes.applied();
        let delete = format!("delete from \"session\" where token = '{}'", deleted.token);
        common::reported(
            &mut applied,
            Duration::from_secs(10),
            "the feed hears a delete on the promoted server",
            execute(self.standby.port, &delete),
        )
        .await;
        assert!(self
            .cached
            .find(&deleted.storage_key())
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn a_host_list_uses_the_server_that_takes_writes_and_says_what_to_fix_when_none_does() {
    let test = "a_host_list_uses_the_server_that_takes_writes_and_says_what_to_fix_when_none_does";
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(primary) = Postgres::start(test) else {
        return;
    };
    let standby = primary.standby();
    let dead = common::servers::free_port();

    // The standby first in the list: read-write and primary pass it over.
    for attrs in ["read-write", "primary"] {
        let url = list_url(
            &[standby.port, primary.port],
            &format!("target_session_attrs={attrs}"),
        );
        let store = build(&url).await.unwrap();
        assert_eq!(in_use(&store), primary.port, "{attrs}");
        sign_in(&store, &format!("{attrs}@example.com"), 1).await;
    }
    // Without target_session_attrs, the first server that answers: a dead one is passed over.
    let store = build(&list_url(&[dead, primary.port], "")).await.unwrap();
    assert_eq!(in_use(&store), primary.port);
    // A host that accepts the connection and then never answers (a partitioned old primary)
    // does not hold up the choice of the one that takes writes. With a 30 s timeout, waiting
    // for the silent host would take that long; the choice takes milliseconds, so 10 s leaves
    // a loaded machine room without passing a store that waits.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let patient = Duration::from_secs(30);
    let started = Instant::now();
    let store = build_with(
        &list_url(
            &[silent_port, standby.port, primary.port],
            "target_session_attrs=read-write",
        ),
        patient,
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(in_use(&store), primary.port);
    assert!(took < Duration::from_secs(10), "{took:?}");
    // Asked for any server, the list's order decides, but a silent host listed first is
    // waited for only a short grace once a later one answered.
    let started = Instant::now();
    let store = build_with(&list_url(&[silent_port, primary.port], ""), patient)
        .await
        .unwrap();
    assert_eq!(in_use(&store), primary.port);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");
    drop(silent);

    // No server that takes writes: every host and why it was passed over.
    let err = build(&list_url(
        &[dead, standby.port],
        "target_session_attrs=read-write",
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no server in the database URL takes writes"),
        "{err}"
    );
    assert!(
        err.contains(&format!("127.0.0.1:{}: read-only", standby.port)),
        "{err}"
    );
    assert!(err.contains(&format!("127.0.0.1:{dead}: ")), "{err}");
    assert!(err.contains("list the primary"), "{err}");
    let err = build(&list_url(&[standby.port], "target_session_attrs=primary"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("a standby (in recovery)"), "{err}");
    // libpq's other spelling of a list is refused with the one the store takes.
    let err = build(&format!(
        "postgres://postgres@127.0.0.1/postgres?host=127.0.0.1,127.0.0.1&port={},{}",
        standby.port, primary.port
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("host1:port1,host2:port2"), "{err}");
    // Values that cannot write are refused before connecting.
    let err = build(&list_url(
        &[standby.port, primary.port],
        "target_session_attrs=standby",
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("takes no writes"), "{err}");
}

#[tokio::test]
async fn a_crashed_primary_fails_over_to_the_promoted_standby_and_the_feed_follows() {
    let test = "a_crashed_primary_fails_over_to_the_promoted_standby_and_the_feed_follows";
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(pair) = Pair::start(test, 5).await else {
        return;
    };
    let (store, sessions) = (&pair.store, &pair.sessions);
    // A second feed on a listen URL of its own listing both servers (no
    // target_session_attrs: a listener wants the primary), as a store behind a pooler has.
    let listen = store
        .session_changes()
        .listen_url(list_url(&[pair.standby.port, pair.primary.port], ""))
        .start()
        .await
        .unwrap();
    let (listen_inner, listen_cached) = common::counted_cache(store, &listen);
    for s in sessions {
        assert!(listen_cached
            .find(&s.storage_key())
            .await
            .unwrap()
            .is_some());
    }

    // The primary crashes (no goodbye to any client); the standby is promoted.
    pair.primary.kill_postmaster();
    pair.standby.promote();
    let promoted = Instant::now();

    // Every session is still there, read from the promoted server; the first read replaced
    // the pool after its connection failed, asked the hosts, and was tried again there.
    for s in sessions {
        let found = store.find(&s.storage_key()).await.unwrap();
        assert_eq!(found.unwrap().session.id, s.id);
    }
    let reads_back = promoted.elapsed();
    assert_eq!(in_use(store), pair.standby.port);
    // Writes land there too.
    let more = sign_in(store, "after@example.com", 1).await;
    let sql = format!(
        "select count(*) from \"session\" where token = '{}'",
        more[0].token
    );
    assert_eq!(number(pair.standby.port, &sql).await, 1);
    pair.feed_follows(
        &sessions[0],
        &sessions[1],
        "the change feed moves with the store",
    )
    .await;
    // The listen URL's feed chose the promoted server among its hosts.
    common::cache_dropped(
        &listen_cached,
        &listen_inner,
        &sessions[0].token,
        "the listen URL's feed reconnected to the promoted server",
    )
    .await;
    let mut applied = listen.applied();
    let delete = format!(
        "delete from \"session\" where token = '{}'",
        sessions[2].token
    );
    common::reported(
        &mut applied,
        Duration::from_secs(5),
        "the listen URL's feed hears a delete on the promoted server",
        execute(pair.standby.port, &delete),
    )
    .await;
    assert!(listen_cached
        .find(&sessions[2].storage_key())
        .await
        .unwrap()
        .is_none());
    eprintln!("{test}: the store read every session again {reads_back:?} after the promotion");
}

#[tokio::test]
async fn a_primary_that_stays_up_refusing_writes_sends_them_to_the_promoted_standby() {
    let test = "a_primary_that_stays_up_refusing_writes_sends_them_to_the_promoted_standby";
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(pair) = Pair::start(test, 3).await else {
        return;
    };
    let (store, sessions) = (&pair.store, &pair.sessions);
    // The store holds open connections to the primary; it now refuses writes on every
    // connection (as the old primary does to clients that stay connected through a
    // switchover).
    execute(
        pair.primary.port,
        "alter system set default_transaction_read_only = on",
    )
    .await;
    execute(pair.primary.port, "select pg_reload_conf()").await;
    // `pg_reload_conf` only signals the postmaster: once a new connection sees the setting, it
    // has re-read its configuration and signalled every backend, the store's idle ones
    // included, which apply it before their next statement.
    common::until(
        "the primary applied default_transaction_read_only",
        Duration::from_secs(10),
        || async {
            number(
                pair.primary.port,
                "select case when current_setting('default_transaction_read_only') = 'on' then 1::int8 else 0 end",
            )
            .await
                == 1
        },
    )
    .await;
    // Before the promotion no listed server takes writes: the write fails with the server's
    // refusal, and the store stays where it is.
    let later = common::now() + time::Duration::days(8);
    let key = StorageKey::new(sessions[0].token.as_str());
    let err = store
        .extend(&key, later, common::now())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("read-only transaction"), "{err}");
    assert_eq!(in_use(store), pair.primary.port);
    pair.standby.promote();

    // A refresh (a repeatable write) meets "read-only transaction" on the open connection,
    // moves the pool, and lands on the promoted server with no error for the caller.
    let extended = store.extend(&key, later, common::now()).await.unwrap();
    assert!(extended.is_some(), "the session was extended");
    assert_eq!(in_use(store), pair.standby.port);
    let sql = format!(
        "select count(*) from \"session\" where token = '{}' and \"expiresAt\" > now() + interval '7 days 12 hours'",
        sessions[0].token
    );
    assert_eq!(
        number(pair.standby.port, &sql).await,
        1,
        "written on the promoted server"
    );
    // The feed's connection to the old primary is still fine, but the triggers fire on the
    // promoted server now: the feed moves with the store, and hears a delete there.
    pair.feed_follows(
        &sessions[1],
        &sessions[2],
        "the change feed moves with the store",
    )
    .await;
}

#[tokio::test]
async fn a_primary_gone_silent_behind_a_partition_is_left_for_the_promoted_standby() {
    let test = "a_primary_gone_silent_behind_a_partition_is_left_for_the_promoted_standby";
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(primary) = Postgres::start(test) else {
        return;
    };
    let standby = primary.standby();
    // The store reaches the primary through a path that can go silent.
    let path = common::servers::Proxy::start(primary.port).await;
    let url = list_url(
        &[path.port, standby.port],
        "target_session_attrs=read-write",
    );
    // A 6 s timeout: a replacement asks the hosts within half of it (3 s), so waiting for the
    // silent host's own answer would take 3 s where the grace takes 250 ms.
    let store = PostgresStore::builder(&url)
        .create_schema(true)
        .timeout(Duration::from_secs(6))
        .build()
        .await
        .unwrap();
    assert_eq!(in_use(&store), path.port);
    let sessions = sign_in(&store, "partition@example.com", 3).await;
    replayed(&primary, &standby).await;

    // The path goes silent (nothing closed, nothing answered) and the standby is promoted.
    path.black_hole();
    standby.promote();
    // A read on the silent path times out (6 s) and the pool is replaced in the background,
    // on the server the hosts name: the silent one is not waited for past a short grace.
    let err = store.find(&sessions[0].storage_key()).await.unwrap_err();
    assert!(
        matches!(err, tower_auth_session::StoreError::Timeout { .. }),
        "{err}"
    );
    let timed_out = Instant::now();
    common::until(
        "the store moves to the promoted server",
        Duration::from_secs(10),
        || async { in_use(&store) == standby.port },
    )
    .await;
    let back = timed_out.elapsed();
    // The grace (250 ms) and a new pool, not the silent host's whole probe (3 s): 1.5 s of
    // room on either side.
    assert!(back < Duration::from_millis(1500), "{back:?}");
    for s in &sessions {
        assert!(store.find(&s.storage_key()).await.unwrap().is_some());
    }
    eprintln!("{test}: the store moved {back:?} after the read timed out");
}

#[tokio::test]
async fn an_idle_store_is_moved_by_its_change_feed_after_a_crash() {
    let test = "an_idle_store_is_moved_by_its_change_feed_after_a_crash";
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(pair) = Pair::start(test, 2).await else {
        return;
    };
    pair.primary.kill_postmaster();
    pair.standby.promote();
    let promoted = Instant::now();
    // Nobody uses the store: the feed, which cannot listen on the dead primary, has the store
    // ask its hosts, moves it, and listens on the promoted server.
    common::until(
        "the feed moves the idle store to the promoted server",
        // Well under the 5 s the listener's own reconnection would wait on the dead server.
        Duration::from_secs(3),
        || async { in_use(&pair.store) == pair.standby.port },
    )
    .await;
    let moved = promoted.elapsed();
    pair.feed_follows(
        &pair.sessions[0],
        &pair.sessions[1],
        "the change feed listens again and drops the cache",
    )
    .await;
    eprintln!("{test}: the feed moved the store {moved:?} after the promotion");
}

#[tokio::test]
async fn the_first_listed_server_that_takes_writes_wins_unless_it_is_late_past_the_grace() {
    let test = "the_first_listed_server_that_takes_writes_wins_unless_it_is_late_past_the_grace";
    let _turn = ONE_AT_A_TIME.lock().await;
    // Two servers that both take writes (two addresses of one primary, or a split brain):
    // libpq takes the first listed. Here the first is behind a slow path.
    let Some(first) = Postgres::start(test) else {
        return;
    };
    let Some(second) = Postgres::start(test) else {
        return;
    };
    let path = common::servers::Proxy::start(first.port).await;
    let url = list_url(&[path.port, second.port], "target_session_attrs=read-write");
    // 50 ms late: within the 250 ms grace the second one's answer opened, so list order holds.
    path.slow(Duration::from_millis(50));
    assert_eq!(in_use(&build(&url).await.unwrap()), path.port);
    // 800 ms late: past the grace, the one that answered is used.
    path.slow(Duration::from_millis(800));
    assert_eq!(in_use(&build(&url).await.unwrap()), second.port);
}

#[tokio::test]
async fn load_balance_hosts_random_spreads_stores_over_the_servers_that_take_writes() {
    let test = "load_balance_hosts_random_spreads_stores_over_the_servers_that_take_writes";
    let _turn = ONE_AT_A_TIME.lock().await;
    // Two servers that both take writes (say two PgBouncers in front of one primary).
    let Some(first) = Postgres::start(test) else {
        return;
    };
    let Some(second) = Postgres::start(test) else {
        return;
    };
    let ports = [first.port, second.port];
    let mut used = Vec::new();
    for _ in 0..16 {
        let url = list_url(
            &ports,
            "target_session_attrs=read-write&load_balance_hosts=random",
        );
        used.push(in_use(&build(&url).await.unwrap()));
    }
    // Each order is a coin toss: all 16 on one server has odds of 1 in 32,768.
    for port in ports {
        assert!(used.contains(&port), "{port} never chosen: {used:?}");
    }
    // `disable` (libpq's default) keeps the list's order.
    let url = list_url(&ports, "load_balance_hosts=disable");
    for _ in 0..4 {
        assert_eq!(in_use(&build(&url).await.unwrap()), first.port);
    }
    let err = build(&list_url(&ports, "load_balance_hosts=sometimes"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("load_balance_hosts=sometimes") && err.contains("load_balance_hosts=random"),
        "{err}"
    );
}
