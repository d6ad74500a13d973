//! A Redis Cluster master freezes (SIGSTOP: a hung machine or a network partition, not a
//! polite shutdown) and its replica takes over. The store keeps every session and serves the
//! master's slots again from the promoted replica; the cache's change feed subscribes on the
//! new master and reports its deletes. Then the old master wakes up as a replica and the test
//! puts the roles back. The same behind Redis Sentinel, a failover there asked for while the
//! store's connection is up, and a master demoted under the store's open connection (servers
//! of that test's own), which answers `READONLY`. Its own test binary, because it changes the shared servers' roles;
//! the two tests take turns ([`ONE_AT_A_TIME`]), since each freezes a server and times what
//! follows on the machine's two cores.
#![cfg(all(feature = "redis", feature = "cache"))]

mod common;

use std::time::{Duration, Instant};

use common::redis_nodes::{
    conn, del, holds, info, role, sentinel_master, sentinel_replicas, try_info, try_role,
};
use common::until;
use common::Counting;
use tower_auth_session::store::{CachedStore, RedisStore};
use tower_auth_session::{SessionStore, StorageKey, User};

/// Held by each test for its whole run.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A frozen Redis process, woken again when this is dropped (also when the test fails).
struct Frozen {
    pid: String,
}

impl Frozen {
    fn new(pid: String) -> Self {
        signal("STOP", &pid);
        Self { pid }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("CONT", &self.pid);
    }
}

fn signal(name: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid)
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_cluster_master_fails_over_and_the_store_and_feed_follow() {
    let test = "a_frozen_cluster_master_fails_over_and_the_store_and_feed_follow";
    let Some(urls) = common::server_url("TAS_TEST_REDIS_CLUSTER_URLS", test) else {
        return;
    };
    let Some(replica) = common::server_url("TAS_TEST_REDIS_CLUSTER_REPLICA_URL", test) else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let nodes: Vec<&str> = urls.split(',').collect();
    let master = nodes[0];
    assert_eq!(role(master).await, "master");
    assert_eq!(role(&replica).await, "slave");

    let prefix = common::redis_prefix();
    let store = RedisStore::cluster_builder(nodes.iter().copied())
        .key_prefix(&prefix)
        .build()
        .await
        .unwrap();
    let changes = store.session_changes(nodes[1]).start().await.unwrap();
    let (inner, cached) = common::counted_cache(&store, &changes);

    // Sessions until two live on the master that will freeze, both copied to its replica.
    let user = User::new("failover@example.com", "F", time::OffsetDateTime::now_utc());
    let mut everyone = Vec::new();
    let mut on_master = Vec::new();
    while on_master.len() < 2 {
        assert!(everyone.len() < 200, "no session landed on {master}");
        let token = common::new_session(&store, &user).await;
        if holds(master, &format!("{prefix}{token}")).await {
            on_master.push(token.clone());
        }
        everyone.push(token);
    }
    for token in &on_master {
        let key = format!("{prefix}{token}");
        until(
            "the replica has the session",
            Duration::from_secs(5),
            || holds(&replica, &key),
        )
        .await;
    }
    let all: Vec<&str> = everyone.iter().map(String::as_str).collect();
    common::finds_all(&cached, &all).await;
    let (kept, deleted) = (&on_master[0], &on_master[1]);
    let mut applied = changes.applied();

    // The master freezes; its replica takes over once the others count it as failed.
    let frozen = Frozen::new(info(master, "server", "process_id").await);
    let start = Instant::now();
    // When the feed subscribes on the replica, watched from now on, beside the store's reads:
    // the feed reads the masters from the nodes themselves, not through the store.
    let feed_on_replica = watch_feed_subscribe(&replica);
    until("the replica took over", Duration::from_secs(30), || async {
        role(&replica).await == "master"
    })
    .await;
    let promoted = start.elapsed();

    // The store serves the frozen master's slots from the promoted replica, with every
    // session, and writes new ones there.
    let failed = read_again(&store, kept, start, Duration::from_secs(45)).await;
    let served = start.elapsed();
    common::finds_all(&store, &all).await;
    let mut written = false;
    for _ in 0..200 {
        let token = common::new_session(&store, &user).await;
        if holds(&replica, &format!("{prefix}{token}")).await {
            written = true;
            break;
        }
    }
    assert!(written, "a new session was written on the promoted replica");

    let subscribed = feed_on_replica.await.unwrap();
    feed_follows(
        (&cached, &inner, &mut applied),
        &replica,
        &prefix,
        (kept, deleted),
    )
    .await;
    println!(
        "failover: replica promoted after {} ms, store served the slots after {} ms ({failed} \
         failed reads meanwhile), feed subscribed after {} ms ({} ms after the promotion)",
        promoted.as_millis(),
        served.as_millis(),
        subscribed.as_millis(),
        subscribed.saturating_sub(promoted).as_millis()
    );

    // The old master wakes up as a replica of the new one; then the roles go back.
    drop(frozen);
    until(
        "the old master follows the new one",
        Duration::from_secs(30),
        || async {
            role(master).await == "slave"
                && info(master, "replication", "master_link_status").await == "up"
        },
    )
    .await;
    // A manual failover gives up without a word when the replica does not catch up in time
    // (seen about once in fifteen runs here): ask again until the roles are back.
    let back = Instant::now();
    'roles: loop {
        // Only a replica takes the command: a failover that completed just after the last
        // window needs no other.
        if role(master).await == "slave" {
            let _: redis::Value = redis::cmd("CLUSTER")
                .arg("FAILOVER")
                .query_async(&mut conn(master).await)
                .await
                .unwrap();
        }
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(10) {
            if role(master).await == "master" && role(&replica).await == "slave" {
                break 'roles;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            back.elapsed() < Duration::from_secs(60),
            "the roles are back: not within 60 s"
        );
        println!("the manual failover back did not happen in 10 s; asking again");
    }
    // The feed follows: it subscribes on the master again and, once the nodes stop naming the
    // replica as a master, ends its subscription there.
    let followed = until(
        "the feed hears the master again and left the replica",
        Duration::from_secs(20),
        || async {
            info(master, "stats", "pubsub_patterns").await == "1"
                && info(&replica, "stats", "pubsub_patterns").await == "0"
        },
    )
    .await;
    println!(
        "failover back: the feed moved back to the master {} ms after the roles",
        followed.as_millis()
    );
    // And hears it: a delete there is reported.
    let mut back = None;
    for _ in 0..200 {
        let token = common::new_session(&store, &user).await;
        if holds(master, &format!("{prefix}{token}")).await {
            back = Some(token);
            break;
        }
    }
    let back = back.expect("a new session landed on the master");
    let key = StorageKey::new(back.as_str());
    assert!(cached.find(&key).await.unwrap().is_some());
    assert_eq!(del(master, &format!("{prefix}{back}")).await, 1);
    // Cached, the session is served until the feed reports its delete.
    until(
        "a delete on the master reached the cache after the roles went back",
        Duration::from_secs(10),
        || async { cached.find(&key).await.unwrap().is_none() },
    )
    .await;
    until("the cluster is whole", Duration::from_secs(30), || async {
        for node in nodes.iter().copied().chain([replica.as_str()]) {
            if info(node, "cluster", "cluster_enabled").await != "1" {
                return false;
            }
            let state: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut conn(node).await)
                .await
                .unwrap();
            if !state.contains("cluster_state:ok") {
                return false;
            }
        }
        info(&replica, "replication", "master_link_status").await == "up"
    })
    .await;
    assert!(store
        .find(&StorageKey::new(kept.as_str()))
        .await
        .unwrap()
        .is_some());
}

/// From now on, how long until `node` serves one pattern subscription (the feed's), polled
/// through the Sentinel's or the cluster's killing of clients during a failover.
fn watch_feed_subscribe(node: &str) -> tokio::task::JoinHandle<Duration> {
    let node = node.to_owned();
    tokio::spawn(async move {
        until(
            "the feed subscribed on the promoted replica",
            Duration::from_secs(40),
            || async {
                try_info(&node, "stats", "pubsub_patterns")
                    .await
                    .is_ok_and(|n| n == "1")
            },
        )
        .await
    })
}

/// Once the feed has subscribed on the promoted `replica`: it dropped the cache (it may have
/// missed changes there), and a delete of `deleted` there is reported and read
/// again alone (`kept` stays cached).
async fn feed_follows(
    (cached, inner, applied): (
        &CachedStore<Counting<RedisStore>>,
        &Counting<RedisStore>,
        &mut tokio::sync::watch::Receiver<u64>,
    ),
    replica: &str,
    prefix: &str,
    (kept, deleted): (&str, &str),
) {
    common::cache_dropped(cached, inner, kept, "the cache was dropped").await;
    let gone = common::reported(
        applied,
        Duration::from_secs(10),
        "the delete on the promoted replica was reported",
        del(replica, &format!("{prefix}{deleted}")),
    )
    .await;
    assert_eq!(gone, 1);
    common::only_gone_is_read_again(cached, inner, deleted, kept).await;
}

/// Tries `find` of `token` until the store answers again; how many reads failed meanwhile.
async fn read_again(store: &RedisStore, token: &str, start: Instant, limit: Duration) -> u32 {
    let mut failed = 0;
    loop {
        match store.find(&StorageKey::new(token)).await {
            Ok(found) => {
                assert!(found.is_some(), "the session survived the failover");
                return failed;
            }
            Err(error) => {
                if failed % 25 == 0 {
                    println!("{} ms: {error}", start.elapsed().as_millis());
                }
                failed += 1;
            }
        }
        assert!(start.elapsed() < limit, "the store did not read again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_master_behind_sentinel_fails_over_and_the_store_and_feed_follow() {
    let test = "a_frozen_master_behind_sentinel_fails_over_and_the_store_and_feed_follow";
    let Some(sentinels) = common::server_url("TAS_TEST_REDIS_SENTINEL_URLS", test) else {
        return;
    };
    let Some(name) = common::server_url("TAS_TEST_REDIS_SENTINEL_MASTER", test) else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let sentinel = sentinels.split(',').next().unwrap().to_owned();
    // Whichever server the Sentinel names now (an earlier run may have swapped them).
    let master = sentinel_master(&sentinel, &name).await;
    let replica = sentinel_replicas(&sentinel, &name)
        .await
        .into_iter()
        .find(|r| *r != master)
        .expect("the Sentinel knows a replica");
    until(
        "the replica follows the master",
        Duration::from_secs(30),
        || async {
            try_role(&master).await.is_ok_and(|r| r == "master")
                && try_role(&replica).await.is_ok_and(|r| r == "slave")
                && try_info(&replica, "replication", "master_link_status")
                    .await
                    .is_ok_and(|v| v == "up")
        },
    )
    .await;

    let prefix = common::redis_prefix();
    let store = RedisStore::sentinel_builder(sentinels.split(','), name.as_str())
        .key_prefix(&prefix)
        .build()
        .await
        .unwrap();
    let changes = store.session_changes(&sentinel).start().await.unwrap();
    let (inner, cached) = common::counted_cache(&store, &changes);
    let user = User::new(
        "sentinel-failover@example.com",
        "F",
        time::OffsetDateTime::now_utc(),
    );
    let mut everyone = Vec::new();
    for _ in 0..3 {
        let token = common::new_session(&store, &user).await;
        let key = format!("{prefix}{token}");
        until(
            "the replica has the session",
            Duration::from_secs(5),
            || holds(&replica, &key),
        )
        .await;
        everyone.push(token);
    }
    let all: Vec<&str> = everyone.iter().map(String::as_str).collect();
    common::finds_all(&cached, &all).await;
    let (kept, deleted) = (&everyone[0], &everyone[1]);
    let mut applied = changes.applied();

    // The master freezes; the Sentinel takes it for down after 2 s and promotes the replica.
    let frozen = Frozen::new(info(&master, "server", "process_id").await);
    let start = Instant::now();
    let feed_on_replica = watch_feed_subscribe(&replica);
    // Traffic: a read starts every 50 ms, each on its own, as requests would. Their timeouts
    // on the frozen master are what make the store connect again (an idle store would wait
    // for its next call's timeout); the store's recovery below is measured with them.
    let traffic = tokio::spawn({
        let (store, token) = (store.clone(), kept.clone());
        async move {
            loop {
                let (store, token) = (store.clone(), token.clone());
                tokio::spawn(async move {
                    let _ = store.find(&StorageKey::new(token.as_str())).await;
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    until(
        "the Sentinel names the replica",
        Duration::from_secs(30),
        || async {
            sentinel_master(&sentinel, &name).await == replica
                && try_role(&replica).await.is_ok_and(|r| r == "master")
        },
    )
    .await;
    let promoted = start.elapsed();

    // The store reads every session from the promoted replica and writes new ones there.
    let failed = read_again(&store, kept, start, Duration::from_secs(30)).await;
    let served = start.elapsed();
    traffic.abort();
    common::finds_all(&store, &all).await;
    let token = common::new_session(&store, &user).await;
    assert!(holds(&replica, &format!("{prefix}{token}")).await);

    let subscribed = feed_on_replica.await.unwrap();
    feed_follows(
        (&cached, &inner, &mut applied),
        &replica,
        &prefix,
        (kept, deleted),
    )
    .await;
    println!(
        "sentinel failover: replica promoted after {} ms, store read again after {} ms ({failed} \
         failed reads meanwhile), feed subscribed after {} ms",
        promoted.as_millis(),
        served.as_millis(),
        subscribed.as_millis(),
    );

    // The old master wakes up; the Sentinel makes it a replica of the new one, and the feed
    // leaves it.
    drop(frozen);
    until(
        "the old master follows the new one",
        Duration::from_secs(30),
        || async {
            try_role(&master).await.is_ok_and(|r| r == "slave")
                && try_info(&master, "replication", "master_link_status")
                    .await
                    .is_ok_and(|v| v == "up")
        },
    )
    .await;
    until(
        "the feed left the demoted master",
        Duration::from_secs(20),
        || async {
            try_info(&master, "stats", "pubsub_patterns")
                .await
                .is_ok_and(|v| v == "0")
        },
    )
    .await;

    // A failover the Sentinel is asked for demotes the master under the store's open
    // connection (the Sentinel closes the clients of a server it reconfigures): the store's
    // next write connects again through the Sentinel and lands on the server promoted back.
    // The Sentinel refuses while it still counts the old master's link as syncing
    // (NOGOODSLAVE) or a failover runs (INPROG): ask until it takes it.
    let back = Instant::now();
    until(
        "the Sentinel took the failover",
        Duration::from_secs(30),
        || async {
            let asked: redis::RedisResult<redis::Value> = redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg(&name)
                .query_async(&mut conn(&sentinel).await)
                .await;
            asked.is_ok()
        },
    )
    .await;
    until("the roles went back", Duration::from_secs(30), || async {
        sentinel_master(&sentinel, &name).await == master
            && try_role(&master).await.is_ok_and(|r| r == "master")
            && try_role(&replica).await.is_ok_and(|r| r == "slave")
    })
    .await;
    let token = common::new_session(&store, &user).await;
    assert!(holds(&master, &format!("{prefix}{token}")).await);
    println!(
        "sentinel failover back: roles back after {} ms; the next write landed on the new master",
        back.elapsed().as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_demoted_under_an_open_connection_answers_readonly_and_the_store_moves() {
    let test = "a_master_demoted_under_an_open_connection_answers_readonly_and_the_store_moves";
    // Servers of the test's own: it demotes one.
    let Some(a) = common::servers::Redis::start(test) else {
        return;
    };
    let Some(b) = common::servers::Redis::start(test) else {
        return;
    };
    let Some(sentinel) = common::servers::Sentinel::start(test, "demoted", a.port) else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let prefix = common::redis_prefix();
    let store = RedisStore::sentinel_builder([sentinel.url()], "demoted")
        .key_prefix(&prefix)
        .build()
        .await
        .unwrap();
    let user = User::new("demoted@example.com", "D", time::OffsetDateTime::now_utc());
    let first = common::new_session(&store, &user).await;
    assert!(holds(&a.url(), &format!("{prefix}{first}")).await);

    // A becomes B's replica while the store's connection to it stays open (a failover whose
    // Sentinel did not close A's clients), and the Sentinel now names B.
    let _: redis::Value = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(b.port)
        .query_async(&mut conn(&a.url()).await)
        .await
        .unwrap();
    until("A is a replica", Duration::from_secs(10), || async {
        try_role(&a.url()).await.is_ok_and(|r| r == "slave")
    })
    .await;
    let mut s = conn(&sentinel.url()).await;
    let _: redis::Value = redis::cmd("SENTINEL")
        .arg("REMOVE")
        .arg("demoted")
        .query_async(&mut s)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("SENTINEL")
        .arg("MONITOR")
        .arg("demoted")
        .arg("127.0.0.1")
        .arg(b.port)
        .arg(1)
        .query_async(&mut s)
        .await
        .unwrap();
    assert_eq!(sentinel_master(&sentinel.url(), "demoted").await, b.url());

    // The next write meets READONLY on A, connects again through the Sentinel, and lands on
    // B: no error reaches the caller.
    let second = common::new_session(&store, &user).await;
    assert!(holds(&b.url(), &format!("{prefix}{second}")).await);
    common::finds_all(&store, &[second.as_str()]).await;
}
