//! Redis: keyspace notifications on the session keys.
//!
//! Better Auth deletes `{token}` on sign-out and revocation, and rewrites it on a refresh or a
//! user update; a revoke-all also sets `revoked-sessions-before-{userId}`. With
//! `notify-keyspace-events` holding `K` (keyspace channels) and the classes `g` (generic:
//! `DEL`, `RENAME`, `EXPIRE`), `$` (string: `SET`) and `x` (expiry), the server publishes each
//! of those on `__keyspace@{db}__:{key}`; the feed subscribes to the pattern for the store's
//! prefix and drops the token (or the user's sessions) from the cache.
//!
//! A server publishes the notifications of its own keys only, so on a Redis Cluster the feed
//! subscribes on every master, which it reads with `CLUSTER SLOTS`: through the store's
//! connection at start, then from every node (replicas too) on connections of its own
//! ([`Cluster`]). At start, each subscription is proven with a probe key in that master's slots.
//!
//! Afterwards a [`Follower`] keeps the subscriptions, beside the task's receiving loop so that a
//! slow node never holds back the others' notifications. Every [`CHECK_EVERY`] it sends each
//! subscription a `PING` (a connection cut off without a reset hears nothing and looks alive
//! otherwise) and reads the masters again; at once when a subscription ends. It subscribes on
//! every master it does not hear (a replica promoted by a failover, a master added to the
//! cluster, a subscription renewed), after checking or setting the flags there, and the cache
//! is dropped, since changes on that master may have been missed. A node that [`DROP_AFTER`]
//! readings in a row no longer name as a master (one demoted by a failover) is unsubscribed.
//! Masters found after start are not probed: a warning says when their flags could not be
//! checked.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;
use futures_util::stream::{AbortHandle, BoxStream, SelectAll};
use futures_util::StreamExt as _;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo as _};
use tokio::sync::mpsc;

use super::{cannot, Change, SessionChanges, Sink};
use crate::error::StoreError;
use crate::store::redis::link::{node_client, node_config};
use crate::store::RedisStore;

/// The flags the feed needs in `notify-keyspace-events`.
const NEEDED: [char; 4] = ['K', 'g', '$', 'x'];

/// How long the start-up probe waits for its own notifications.
const PROBE_WAIT: Duration = Duration::from_secs(3);

/// How long a subscription may take to connect.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// How often the feed checks that it hears every node: a cluster's masters are read again,
/// and a subscription that could not be mended at once is tried again.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long, after the first node told the cluster's layout, the others' answers are waited
/// for.
const ANSWER_GRACE: Duration = Duration::from_millis(250);

/// How many readings of a cluster's masters in a row, over at least as many checks, must leave
/// out a node before its subscription ends (a master demoted to a replica); also how many
/// readings in a row a node may miss before the connection it is asked on is made again.
const DROP_AFTER: u32 = 3;

/// How many probe keys are tried per master to find one in its slots (a master holding a
/// third of the slots misses all 64 with a chance of 1 in 10^11).
const PROBE_TRIES_PER_NODE: usize = 64;

/// Watches a [`RedisStore`]'s session keys with keyspace notifications (features `redis` and
/// `cache`): made by [`RedisStore::session_changes`].
///
/// At start it reads `notify-keyspace-events` (`CONFIG GET`) and, when `K`, `g`, `$` or `x` is
/// missing, adds them (`CONFIG SET`, unless [`configure_server(false)`](Self::configure_server)):
/// managed services that forbid `CONFIG` need the setting in their parameter group instead.
/// Then it subscribes, writes a short-lived probe key through the store and waits for its
/// notification, which proves that the subscription hears the store's server and database.
///
/// On a Redis Cluster it does all of that on every master (read with `CLUSTER SLOTS`), with
/// one probe key in each master's slots, and keeps following the masters afterwards: see
/// [`start`](Self::start).
#[must_use]
pub struct RedisChangesBuilder {
    store: RedisStore,
    url: String,
    configure: bool,
    root_cert: Option<Vec<u8>>,
}

impl std::fmt::Debug for RedisChangesBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisChangesBuilder")
            .field("store", &self.store)
            .field("configure", &self.configure)
            .finish_non_exhaustive()
    }
}

impl RedisChangesBuilder {
    pub(crate) fn new(store: RedisStore, url: String) -> Self {
        Self {
            store,
            url,
            configure: true,
            root_cert: None,
        }
    }

    /// Add the missing flags to `notify-keyspace-events` with `CONFIG SET` at start. With
    /// `false`, a missing flag is an error naming the setting. Default: `true`.
    pub fn configure_server(mut self, configure: bool) -> Self {
        self.configure = configure;
        self
    }

    /// Trust the certificate authority in `pem` for a `rediss://` URL, as
    /// [`RedisStoreBuilder::tls_root_cert_pem`](crate::store::RedisStoreBuilder::tls_root_cert_pem)
    /// does for the store. Default: the built-in Mozilla roots.
    pub fn tls_root_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_cert = Some(pem.into());
        self
    }

    /// Checks (or sets) `notify-keyspace-events`, subscribes, proves the subscription with a
    /// probe key, and starts receiving (in a task of its own, on the current Tokio runtime).
    /// Give the result to
    /// [`CachedStoreBuilder::watch`](crate::store::CachedStoreBuilder::watch).
    ///
    /// On a Redis Cluster, each master is checked, subscribed to and probed. The URL's scheme,
    /// user, password and TLS settings serve for every node; the nodes' addresses come from
    /// `CLUSTER SLOTS`. Afterwards the feed reads `CLUSTER SLOTS` once a second and subscribes
    /// on a master it does not hear yet, then drops the cache (changes may have been missed).
    /// A master subscribed on later (a promoted replica) gets the missing flags the same way
    /// first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Connect`], saying what to do, when `notify-keyspace-events` lacks a flag
    /// and cannot be changed, or when a probe's notification does not arrive (the URL reaches
    /// another server or database than the store); a backend error when Redis cannot be
    /// reached.
    pub async fn start(self) -> Result<SessionChanges, StoreError> {
        let watch = |e| StoreError::backend("watch session changes", e);
        let template = self.url.as_str().into_connection_info().map_err(watch)?;
        let db = template.redis_settings().db();
        let mut nodes = if self.store.is_cluster() {
            Nodes::Cluster(Cluster::new(
                self.store.clone(),
                template,
                self.root_cert.clone(),
            ))
        } else {
            Nodes::One(Node {
                addr: template.addr().to_string().into(),
                client: node_client(template, self.root_cert.as_deref()).map_err(watch)?,
                slots: Vec::new(),
            })
        };
        let found = nodes.current().await?;
        for node in &found {
            node.ensure_flags(self.configure).await?;
        }
        let channel_prefix = format!("__keyspace@{db}__:{}", self.store.key_prefix());
        let mut follower = Follower {
            nodes,
            configure: self.configure,
            pattern: format!("{}*", escape_glob(&channel_prefix)),
            heard: HashMap::new(),
            failing: HashSet::new(),
            subscribed_at: HashMap::new(),
            unnamed: HashMap::new(),
            trying: HashMap::new(),
            next_id: 0,
        };
        let mut streams = SelectAll::new();
        for node in &found {
            let pubsub = Follower::open(node, &follower.pattern)
                .await
                .map_err(watch)?;
            streams.push(follower.keep(node, pubsub));
        }
        let ended_early = self
            .probe(&mut streams, &found, &channel_prefix, db)
            .await?;
        let (ended, ended_rx) = mpsc::unbounded_channel();
        for id in ended_early {
            let _ = ended.send(id);
        }
        let (found, found_rx) = mpsc::unbounded_channel();
        Ok(SessionChanges::spawn(
            "Redis keyspace notifications",
            move |sink| async move {
                let follow = std::pin::pin!(follower.run(ended_rx, found));
                let receive =
                    std::pin::pin!(receive(streams, channel_prefix, found_rx, ended, sink));
                futures_util::future::select(follow, receive).await;
            },
        ))
    }

    /// Writes one probe key through the store for each node (on a cluster, a key in that
    /// node's slots) and waits until each node's subscription has reported its own. Returns
    /// the subscriptions that ended meanwhile, for the [`Follower`] to renew.
    async fn probe(
        &self,
        streams: &mut SelectAll<Notifications>,
        nodes: &[Node],
        channel_prefix: &str,
        db: i64,
    ) -> Result<Vec<u64>, StoreError> {
        let mut waiting = Vec::with_capacity(nodes.len());
        let suffixes = self.probe_suffixes(nodes).await?;
        for (node, suffix) in nodes.iter().zip(suffixes) {
            let Some(suffix) = suffix else {
                continue;
            };
            let key = format!("{}{suffix}", self.store.key_prefix());
            let _: redis::Value = self
                .store
                .command(redis::cmd("SET").arg(&key).arg("1").arg("PX").arg(10_000))
                .await?;
            waiting.push((node.addr.clone(), format!("{channel_prefix}{suffix}"), key));
        }
        let keys: Vec<String> = waiting.iter().map(|(_, _, key)| key.clone()).collect();
        let mut ended = Vec::new();
        let heard = tokio::time::timeout(PROBE_WAIT, async {
            while !waiting.is_empty() {
                match streams.next().await {
                    Some(Event::Message(from, message)) => {
                        let channel = message.get_channel_name();
                        waiting
                            .retain(|(addr, expected, _)| !(*addr == from && expected == channel));
                    }
                    Some(Event::Lost(id)) => ended.push(id),
                    None => return,
                }
            }
        })
        .await;
        for key in &keys {
            let _: Result<redis::Value, _> = self.store.command(redis::cmd("DEL").arg(key)).await;
        }
        if heard.is_ok() && waiting.is_empty() {
            return Ok(ended);
        }
        let silent: Vec<&str> = waiting.iter().map(|(addr, _, _)| addr.as_ref()).collect();
        Err(cannot(
            format!(
                "subscribed to Redis keyspace notifications of database {db}, but a key written \
                 through the store was not reported within {} s by {}",
                PROBE_WAIT.as_secs(),
                silent.join(", ")
            ),
            "give session_changes() the URL the store connects to (same server and database \
             number; on a cluster, one of its nodes), and check that notify-keyspace-events \
             includes K, g, $ and x",
            None,
        ))
    }

    /// A probe key's suffix for each node: any on a single server; on a cluster, one whose
    /// slot (`CLUSTER KEYSLOT`, so a hash tag in the prefix counts) that node serves, found
    /// among [`PROBE_TRIES_PER_NODE`] random ones per node, asked all at once. `None` for a
    /// node none of them lands on: a prefix with a hash tag puts every key of the store in one
    /// slot, so the other masters hold none of them.
    async fn probe_suffixes(&self, nodes: &[Node]) -> Result<Vec<Option<String>>, StoreError> {
        let suffix = || format!("tas-session-changes-probe-{}", crate::ids::generate_id(16));
        if nodes.iter().all(|node| node.slots.is_empty()) {
            return Ok(nodes.iter().map(|_| Some(suffix())).collect());
        }
        let candidates: Vec<String> = (0..PROBE_TRIES_PER_NODE * nodes.len())
            .map(|_| suffix())
            .collect();
        let slots = futures_util::future::try_join_all(candidates.iter().map(|candidate| {
            let key = format!("{}{candidate}", self.store.key_prefix());
            async move {
                self.store
                    .command::<i64>(redis::cmd("CLUSTER").arg("KEYSLOT").arg(&key))
                    .await
            }
        }))
        .await?;
        Ok(nodes
            .iter()
            .map(|node| {
                let found = candidates
                    .iter()
                    .zip(&slots)
                    .find(|(_, &slot)| node.serves(slot))
                    .map(|(candidate, _)| candidate.clone());
                if found.is_none() {
                    tracing::debug!(node = %node.addr, prefix = self.store.key_prefix(), "no probe key under the prefix lands on this cluster master; its subscription is not probed");
                }
                found
            })
            .collect())
    }
}

/// One server the feed subscribes on.
#[derive(Clone)]
struct Node {
    /// `host:port`, for logs and to tell subscriptions apart.
    addr: Arc<str>,
    client: redis::Client,
    /// The cluster slots it serves, as inclusive ranges; empty for a single server.
    slots: Vec<(i64, i64)>,
}

impl Node {
    fn serves(&self, slot: i64) -> bool {
        self.slots
            .iter()
            .any(|&(first, last)| (first..=last).contains(&slot))
    }

    /// Makes sure `notify-keyspace-events` holds every flag in [`NEEDED`] here, adding the
    /// missing ones with `CONFIG SET` when `configure`.
    async fn ensure_flags(&self, configure: bool) -> Result<(), StoreError> {
        const SETTING: &str = "notify-keyspace-events";
        let fix = format!(
            "set {SETTING} to include K, g, $ and x (for example \"Kg$x\") in the Redis \
             server's configuration (on a managed service, its parameter group)"
        );
        let on = self.addr.as_ref();
        let mut conn = match self
            .client
            .get_multiplexed_async_connection_with_config(&node_config(SUBSCRIBE_WAIT))
            .await
        {
            Ok(conn) => conn,
            Err(error) => {
                // The subscription that follows fails the same way, and says so.
                tracing::debug!(%error, node = on, "cannot reach the node to read {SETTING}");
                return Ok(());
            }
        };
        let current: Result<std::collections::HashMap<String, String>, _> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(SETTING)
            .query_async(&mut conn)
            .await;
        let current = match current {
            Ok(map) => map.get(SETTING).cloned().unwrap_or_default(),
            Err(error) => {
                // Managed services often rename or forbid CONFIG: the probe in `start` tells
                // whether notifications arrive, and its error names the setting.
                tracing::debug!(%error, node = on, "CONFIG GET {SETTING} refused; relying on the probe");
                return Ok(());
            }
        };
        let missing = missing_flags(&current);
        if missing.is_empty() {
            return Ok(());
        }
        if !configure {
            return Err(cannot(
                format!("{SETTING} is {current:?} on {on}, without {missing}"),
                fix,
                None,
            ));
        }
        let wanted = format!("{current}{missing}");
        let set: Result<redis::Value, _> = redis::cmd("CONFIG")
            .arg("SET")
            .arg(SETTING)
            .arg(&wanted)
            .query_async(&mut conn)
            .await;
        match set {
            Ok(_) => {
                tracing::info!(setting = SETTING, value = %wanted, node = on, "enabled Redis keyspace notifications for the session change feed");
                Ok(())
            }
            Err(e) => Err(cannot(
                format!(
                    "{SETTING} is {current:?} on {on}, without {missing}, and CONFIG SET was refused"
                ),
                fix,
                Some(Box::new(e)),
            )),
        }
    }
}

/// Where the feed's servers come from. One per feed, so its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Nodes {
    /// One server: the one the URL names.
    One(Node),
    /// A cluster's masters.
    Cluster(Cluster),
}

impl Nodes {
    /// The servers to hear now.
    async fn current(&mut self) -> Result<Vec<Node>, StoreError> {
        match self {
            Self::One(node) => Ok(vec![node.clone()]),
            Self::Cluster(cluster) => cluster.masters().await,
        }
    }
}

/// Reads a cluster's masters: through the store at start, then from every node the last
/// answer named, masters and replicas, each asked directly on a connection of the feed's own.
///
/// After a failover the store's connection may still be waiting on the lost master (it builds
/// a new one in the background), while any live node already names the promoted replica; so
/// the feed asks the nodes, and hears the new master one check after the promotion. A node
/// that has not answered [`ANSWER_GRACE`] after the first answer (or within
/// [`SUBSCRIBE_WAIT`], when none came) is left out of that reading; when none answers, the
/// store is asked.
///
/// The cost: each instance keeps one connection to every node of the cluster and sends each
/// one `CLUSTER SLOTS` a second.
struct Cluster {
    store: RedisStore,
    /// The URL given: it lends its scheme, credentials and TLS settings to every node.
    template: ConnectionInfo,
    root_cert: Option<Vec<u8>>,
    /// A client for each node named in the last reading, by address.
    clients: HashMap<Arc<str>, redis::Client>,
    /// The nodes to ask next time: every one the last answers named.
    peers: Vec<Arc<str>>,
    /// Connections to the peers, kept between checks.
    conns: HashMap<Arc<str>, redis::aio::MultiplexedConnection>,
    /// For each connection, the readings in a row its node did not answer.
    missed: HashMap<Arc<str>, u32>,
    /// Connections being made, each in a task of its own (ended when the feed is dropped).
    connecting: tokio::task::JoinSet<(
        Arc<str>,
        redis::RedisResult<redis::aio::MultiplexedConnection>,
    )>,
    /// The node each task of `connecting` connects to.
    pending: HashMap<tokio::task::Id, Arc<str>>,
}

impl Cluster {
    fn new(store: RedisStore, template: ConnectionInfo, root_cert: Option<Vec<u8>>) -> Self {
        Self {
            store,
            template,
            root_cert,
            clients: HashMap::new(),
            peers: Vec::new(),
            conns: HashMap::new(),
            missed: HashMap::new(),
            connecting: tokio::task::JoinSet::new(),
            pending: HashMap::new(),
        }
    }

    /// The masters, with a client for each.
    async fn masters(&mut self) -> Result<Vec<Node>, StoreError> {
        let topology = self.topology().await?;
        let mut peers: Vec<Arc<str>> = Vec::with_capacity(topology.named.len());
        for (host, port) in &topology.named {
            let addr: Arc<str> = format!("{host}:{port}").into();
            self.client(&addr, host, *port)?;
            peers.push(addr);
        }
        let mut nodes = Vec::with_capacity(topology.masters.len());
        for Master { host, port, slots } in topology.masters {
            let addr: Arc<str> = format!("{host}:{port}").into();
            let client = self.client(&addr, &host, port)?;
            nodes.push(Node {
                addr,
                client,
                slots,
            });
        }
        self.clients
            .retain(|addr, _| peers.contains(addr) || nodes.iter().any(|n| n.addr == *addr));
        self.conns.retain(|addr, _| peers.contains(addr));
        self.peers = peers;
        Ok(nodes)
    }

    /// What the peers answer to `CLUSTER SLOTS`, merged (a node that any of them names as a
    /// master is one); at start, or when no peer answers, the store's answer.
    ///
    /// Only peers with a connection are asked, a single round trip each; connections to the
    /// others are made in tasks of their own and used from the next reading on, so a node
    /// that is slow to connect (or frozen) holds no reading back. A connection whose node
    /// missed [`DROP_AFTER`] readings in a row is dropped and made again.
    async fn topology(&mut self) -> Result<Topology, StoreError> {
        while let Some(made) = self.connecting.try_join_next_with_id() {
            match made {
                Ok((id, (addr, conn))) => {
                    self.pending.remove(&id);
                    match conn {
                        Ok(conn) if self.peers.contains(&addr) => {
                            self.conns.insert(addr, conn);
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::debug!(%error, node = %addr, "session change feed: cannot connect to a Redis node to read the cluster's layout");
                        }
                    }
                }
                Err(error) => {
                    self.pending.remove(&error.id());
                }
            }
        }
        for addr in &self.peers {
            if self.conns.contains_key(addr) || self.connecting_to(addr) {
                continue;
            }
            let Some(client) = self.clients.get(addr).cloned() else {
                continue;
            };
            let task = self.connecting.spawn({
                let addr = addr.clone();
                async move {
                    let conn = client
                        .get_multiplexed_async_connection_with_config(&node_config(SUBSCRIBE_WAIT))
                        .await;
                    (addr, conn)
                }
            });
            self.pending.insert(task.id(), addr.clone());
        }
        let asks: futures_util::stream::FuturesUnordered<_> = self
            .conns
            .iter()
            .map(|(addr, conn)| {
                let (addr, mut conn) = (addr.clone(), conn.clone());
                async move {
                    let answer = tokio::time::timeout(
                        SUBSCRIBE_WAIT,
                        redis::cmd("CLUSTER")
                            .arg("SLOTS")
                            .query_async::<redis::Value>(&mut conn),
                    )
                    .await;
                    (addr, answer)
                }
            })
            .collect();
        let mut merged: Option<Topology> = None;
        let mut answered = HashSet::new();
        // Every answer that comes within `ANSWER_GRACE` of the first readable one: a node that
        // does not answer (a frozen master) holds the reading back no longer than that.
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut asks = asks;
        loop {
            let next = match deadline {
                None => asks.next().await,
                Some(at) => tokio::time::timeout_at(at, asks.next())
                    .await
                    .ok()
                    .flatten(),
            };
            let Some((addr, answer)) = next else {
                break;
            };
            let reply = match answer {
                Ok(Ok(reply)) => reply,
                Ok(Err(error)) => {
                    tracing::debug!(%error, node = %addr, "session change feed: a Redis node did not tell the cluster's layout");
                    continue;
                }
                Err(_) => continue,
            };
            // An empty host in a node's answer is that node's own.
            let own_host = addr.rsplit_once(':').map_or("", |(host, _)| host);
            match topology(&reply, own_host) {
                Ok(seen) => {
                    answered.insert(addr);
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + ANSWER_GRACE);
                    match &mut merged {
                        Some(merged) => merged.merge(seen),
                        None => merged = Some(seen),
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, node = %addr, "session change feed: unreadable CLUSTER SLOTS");
                }
            }
        }
        drop(asks);
        // A node that keeps missing readings gets a new connection: the one it has may be
        // half-open.
        let missed = &mut self.missed;
        self.conns.retain(|addr, _| {
            if answered.contains(addr) {
                missed.remove(addr);
                return true;
            }
            let count = missed.entry(addr.clone()).or_insert(0);
            *count += 1;
            *count < DROP_AFTER
        });
        missed.retain(|addr, _| self.conns.contains_key(addr));
        if let Some(merged) = merged {
            return Ok(merged);
        }
        let default_host = match self.template.addr() {
            ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
            _ => String::new(),
        };
        let reply: redis::Value = self
            .store
            .command(redis::cmd("CLUSTER").arg("SLOTS"))
            .await?;
        topology(&reply, &default_host).map_err(|reason| StoreError::Corrupt {
            reason: format!("CLUSTER SLOTS: {reason}"),
        })
    }

    /// Whether a connection to `addr` is being made.
    fn connecting_to(&self, addr: &Arc<str>) -> bool {
        self.pending.values().any(|a| a == addr)
    }

    /// The client for the node at `host:port` (`addr`), made once.
    fn client(
        &mut self,
        addr: &Arc<str>,
        host: &str,
        port: u16,
    ) -> Result<redis::Client, StoreError> {
        if let Some(client) = self.clients.get(addr) {
            return Ok(client.clone());
        }
        let host = host.to_owned();
        let at = match self.template.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        let client = node_client(
            self.template.clone().set_addr(at),
            self.root_cert.as_deref(),
        )
        .map_err(|e| StoreError::backend("watch session changes", e))?;
        self.clients.insert(addr.clone(), client.clone());
        Ok(client)
    }
}

/// A cluster's layout, as `CLUSTER SLOTS` tells it.
#[derive(Debug, Default, PartialEq)]
struct Topology {
    masters: Vec<Master>,
    /// Every node named, masters and replicas, as host and port, in address order.
    named: Vec<(String, u16)>,
}

impl Topology {
    /// Adds what another node sees: its masters (a master both name keeps the slots this
    /// layout gave it) and the nodes it names.
    fn merge(&mut self, other: Self) {
        for master in other.masters {
            if !self
                .masters
                .iter()
                .any(|m| m.host == master.host && m.port == master.port)
            {
                self.masters.push(master);
            }
        }
        for node in other.named {
            if !self.named.contains(&node) {
                self.named.push(node);
            }
        }
        self.masters
            .sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
        self.named.sort();
    }
}

/// A cluster master, as `CLUSTER SLOTS` names it.
#[derive(Debug, PartialEq)]
struct Master {
    host: String,
    port: u16,
    /// Inclusive slot ranges.
    slots: Vec<(i64, i64)>,
}

/// A cluster's layout from a `CLUSTER SLOTS` reply: its masters, each with host, port and slot
/// ranges, and every node named, replicas included, each in address order. An empty or
/// missing host (the node does not know its own address) is `default_host`, the seed's; `?`
/// (an endpoint the node does not know) is skipped, as the driver does.
fn topology(reply: &redis::Value, default_host: &str) -> Result<Topology, String> {
    let redis::Value::Array(ranges) = reply else {
        return Err(format!("expected an array, got {reply:?}"));
    };
    let mut layout = Topology::default();
    for range in ranges {
        let redis::Value::Array(fields) = range else {
            return Err(format!("expected a slot range, got {range:?}"));
        };
        let (Some(redis::Value::Int(first)), Some(redis::Value::Int(last)), Some(master)) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return Err(format!(
                "expected first slot, last slot and master, got {fields:?}"
            ));
        };
        // Replicas are only asked later: one this parser cannot read is left out.
        for replica in &fields[3..] {
            if let Ok(Some(node)) = endpoint(replica, default_host, "replica") {
                if !layout.named.contains(&node) {
                    layout.named.push(node);
                }
            }
        }
        let Some((host, port)) = endpoint(master, default_host, "master")? else {
            continue;
        };
        if !layout.named.iter().any(|(h, p)| *h == host && *p == port) {
            layout.named.push((host.clone(), port));
        }
        match layout
            .masters
            .iter_mut()
            .find(|m| m.host == host && m.port == port)
        {
            Some(known) => known.slots.push((*first, *last)),
            None => layout.masters.push(Master {
                host,
                port,
                slots: vec![(*first, *last)],
            }),
        }
    }
    layout
        .masters
        .sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
    layout.named.sort();
    Ok(layout)
}

/// The host and port of one node of a `CLUSTER SLOTS` range (`[host, port, id, …]`); `None`
/// for `?`. `what` names the node in errors.
fn endpoint(
    node: &redis::Value,
    default_host: &str,
    what: &str,
) -> Result<Option<(String, u16)>, String> {
    let redis::Value::Array(node) = node else {
        return Err(format!("expected the {what}, got {node:?}"));
    };
    let host = match node.first() {
        Some(redis::Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(redis::Value::SimpleString(s)) => s.clone(),
        Some(redis::Value::Nil) => String::new(),
        other => return Err(format!("expected the {what}'s host, got {other:?}")),
    };
    if host == "?" {
        return Ok(None);
    }
    let host = if host.is_empty() {
        default_host.to_owned()
    } else {
        host
    };
    let port = match node.get(1) {
        Some(redis::Value::Int(port)) => {
            u16::try_from(*port).map_err(|_| format!("port {port} out of range"))?
        }
        other => return Err(format!("expected the {what}'s port, got {other:?}")),
    };
    Ok(Some((host, port)))
}

/// What the merged subscriptions yield.
enum Event {
    /// A notification, and the node it came from.
    Message(Arc<str>, redis::Msg),
    /// The subscription with this number ended.
    Lost(u64),
}

/// The notifications of one subscription, ending with [`Event::Lost`].
type Notifications = BoxStream<'static, Event>;

/// A live subscription, as the [`Follower`] keeps it.
struct Subscription {
    id: u64,
    /// Asks the server for a `PING` answer on the subscription's own connection.
    sink: redis::aio::PubSubSink,
    /// Ends the notification stream (which then yields its [`Event::Lost`]).
    stop: AbortHandle,
}

/// Keeps one subscription on every node: checks every [`CHECK_EVERY`], and at once when a
/// subscription ends, that each subscription still answers, reads the nodes again, and
/// subscribes on those it does not hear. Runs beside [`receive`], in the same task, so a slow
/// node never holds back the notifications of the others.
struct Follower {
    nodes: Nodes,
    /// Whether a node subscribed on later may get the flags with `CONFIG SET`.
    configure: bool,
    pattern: String,
    heard: HashMap<Arc<str>, Subscription>,
    /// Nodes whose last subscription attempt failed (warned once until one succeeds).
    failing: HashSet<Arc<str>>,
    /// When each node was last subscribed on.
    subscribed_at: HashMap<Arc<str>, std::time::Instant>,
    /// For the nodes heard that the last readings did not name: how many in a row, and since
    /// when.
    unnamed: HashMap<Arc<str>, (u32, std::time::Instant)>,
    /// Nodes with a subscription attempt under way, by the attempt's task.
    trying: HashMap<tokio::task::Id, Arc<str>>,
    next_id: u64,
}

impl Follower {
    /// Connects to `node` and subscribes to the session keys' notifications.
    async fn open(node: &Node, pattern: &str) -> redis::RedisResult<redis::aio::PubSub> {
        tokio::time::timeout(SUBSCRIBE_WAIT, async {
            let mut pubsub = node.client.get_async_pubsub().await?;
            pubsub.psubscribe(pattern).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "subscribing took too long",
            ))
        })?
    }

    /// Keeps `pubsub` as `node`'s subscription; returns its notifications.
    fn keep(&mut self, node: &Node, pubsub: redis::aio::PubSub) -> Notifications {
        let (sink, stream) = pubsub.split();
        let (stream, stop) = futures_util::stream::abortable(stream);
        self.next_id += 1;
        let id = self.next_id;
        self.heard
            .insert(node.addr.clone(), Subscription { id, sink, stop });
        self.failing.remove(&node.addr);
        self.subscribed_at
            .insert(node.addr.clone(), std::time::Instant::now());
        let from = node.addr.clone();
        stream
            .map(move |message| Event::Message(from.clone(), message))
            .chain(futures_util::stream::once(async move { Event::Lost(id) }))
            .boxed()
    }

    /// Forgets the subscription numbered `id` (already ended), if it is still the node's.
    fn lost(&mut self, id: u64) {
        let addr = self
            .heard
            .iter()
            .find_map(|(addr, s)| (s.id == id).then(|| addr.clone()));
        if let Some(addr) = addr {
            self.forget(&addr, "was lost");
        }
    }

    /// Ends and forgets the subscription on `addr`, saying `what` happened to it; the next
    /// check subscribes there again.
    fn forget(&mut self, addr: &Arc<str>, what: &str) {
        if let Some(s) = self.heard.remove(addr) {
            s.stop.abort();
            tracing::warn!(node = %addr, "session change feed: the Redis subscription {what}; subscribing again (cached sessions may be served until the cache TTL meanwhile)");
        }
    }

    /// The nodes whose subscription does not answer a `PING` within [`SUBSCRIBE_WAIT`]: a
    /// connection cut off without a reset looks alive otherwise, and hears nothing. The
    /// future borrows nothing, so it runs beside the reading of the nodes.
    fn unanswered(&self) -> impl std::future::Future<Output = Vec<Arc<str>>> + use<> {
        let pings: Vec<_> = self
            .heard
            .iter()
            .map(|(addr, s)| {
                let (addr, mut sink) = (addr.clone(), s.sink.clone());
                async move {
                    let answer =
                        tokio::time::timeout(SUBSCRIBE_WAIT, sink.ping::<redis::Value>()).await;
                    (addr, matches!(answer, Ok(Ok(_))))
                }
            })
            .collect();
        async move {
            futures_util::future::join_all(pings)
                .await
                .into_iter()
                .filter_map(|(addr, answered)| (!answered).then_some(addr))
                .collect()
        }
    }

    /// Starts a subscription attempt, into `attempts`, on every node of `nodes` that is neither
    /// heard nor being tried; ends the subscriptions on nodes no longer named
    /// ([`drop_unnamed`](Self::drop_unnamed)).
    fn catch_up(&mut self, nodes: Result<Vec<Node>, StoreError>, attempts: &mut Attempts) {
        let nodes = match nodes {
            Ok(nodes) => nodes,
            Err(error) => {
                tracing::debug!(%error, "session change feed: cannot read the Redis nodes yet");
                return;
            }
        };
        self.drop_unnamed(&nodes);
        for node in nodes {
            // A node subscribed on less than a check ago waits for the next check: one that
            // drops every subscription at once would otherwise be asked again as fast as it
            // answers, and the cache dropped each time.
            let wait = self
                .subscribed_at
                .get(&node.addr)
                .is_some_and(|at| at.elapsed() < CHECK_EVERY);
            if wait
                || self.heard.contains_key(&node.addr)
                || self.trying.values().any(|addr| *addr == node.addr)
            {
                continue;
            }
            let (configure, pattern) = (self.configure, self.pattern.clone());
            let addr = node.addr.clone();
            let task = attempts.spawn(async move {
                // A promoted replica or a new master may lack the flags the masters got at
                // start.
                if let Err(error) = node.ensure_flags(configure).await {
                    tracing::warn!(%error, node = %node.addr, "session change feed: a new Redis master may not publish keyspace notifications");
                }
                let subscribed = Self::open(&node, &pattern).await;
                (node, subscribed)
            });
            self.trying.insert(task.id(), addr);
        }
    }

    /// Keeps what an attempt of [`catch_up`](Self::catch_up) made and hands it to `found`;
    /// `false` once `found` is gone.
    fn attempted(
        &mut self,
        attempt: Result<(tokio::task::Id, Attempt), tokio::task::JoinError>,
        found: &mpsc::UnboundedSender<Notifications>,
    ) -> bool {
        let (node, subscribed) = match attempt {
            Ok((id, attempt)) => {
                self.trying.remove(&id);
                attempt
            }
            Err(error) => {
                // Panicked: the next check tries that node again.
                self.trying.remove(&error.id());
                return true;
            }
        };
        let node = &node;
        match subscribed {
            Ok(pubsub) => {
                tracing::info!(node = %node.addr, "session change feed: subscribed to Redis keyspace notifications");
                return found.send(self.keep(node, pubsub)).is_ok();
            }
            Err(error) if self.failing.insert(node.addr.clone()) => {
                tracing::warn!(%error, node = %node.addr, "session change feed: cannot subscribe on a Redis node yet; trying again");
            }
            Err(error) => {
                tracing::debug!(%error, node = %node.addr, "session change feed: cannot subscribe yet");
            }
        }
        true
    }

    /// Counts, for each subscription, the readings in a row that did not name its node, and
    /// ends it once there were [`DROP_AFTER`] of them over at least as many checks' time. Not
    /// at once: during a failover the nodes may disagree for a moment, and every new
    /// subscription drops the cache.
    fn drop_unnamed(&mut self, nodes: &[Node]) {
        let named = |addr: &Arc<str>| nodes.iter().any(|node| node.addr == *addr);
        let heard = &self.heard;
        self.unnamed
            .retain(|addr, _| !named(addr) && heard.contains_key(addr));
        let mut gone = Vec::new();
        for addr in self.heard.keys().filter(|addr| !named(addr)) {
            let (count, since) = self
                .unnamed
                .entry(addr.clone())
                .or_insert((0, std::time::Instant::now()));
            *count += 1;
            if *count >= DROP_AFTER && since.elapsed() >= CHECK_EVERY * DROP_AFTER {
                gone.push(addr.clone());
            }
        }
        for addr in gone {
            self.unnamed.remove(&addr);
            if let Some(s) = self.heard.remove(&addr) {
                s.stop.abort();
                tracing::info!(node = %addr, "session change feed: the Redis node is no longer a master; unsubscribed");
            }
        }
    }

    /// Follows the nodes until [`receive`] is gone: `ended` brings the numbers of the
    /// subscriptions that ended, `found` takes the new ones. Subscription attempts run beside
    /// the checks, so a node that does not answer delays neither the next check nor the
    /// subscriptions on the others.
    async fn run(
        mut self,
        mut ended: mpsc::UnboundedReceiver<u64>,
        found: mpsc::UnboundedSender<Notifications>,
    ) {
        let mut check =
            tokio::time::interval_at(tokio::time::Instant::now() + CHECK_EVERY, CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut attempts = Attempts::new();
        loop {
            let checking = {
                let (recv, tick) = (std::pin::pin!(ended.recv()), std::pin::pin!(check.tick()));
                let woken = futures_util::future::select(recv, tick);
                // With no attempt under way, `attempts` would end at once: wait for the others.
                let attempt = async {
                    match attempts.join_next_with_id().await {
                        Some(attempt) => attempt,
                        None => std::future::pending().await,
                    }
                };
                match futures_util::future::select(woken, std::pin::pin!(attempt)).await {
                    Either::Left((Either::Left((Some(id), _)), _)) => {
                        self.lost(id);
                        false
                    }
                    Either::Left((Either::Left((None, _)), _)) => return,
                    Either::Left((Either::Right(_), _)) => true,
                    Either::Right((attempt, _)) => {
                        if !self.attempted(attempt, &found) {
                            return;
                        }
                        continue;
                    }
                }
            };
            while let Ok(id) = ended.try_recv() {
                self.lost(id);
            }
            // The PINGs and the reading of the nodes wait side by side, so a frozen node costs
            // one timeout a check, not two.
            let nodes = if checking {
                let unanswered = self.unanswered();
                let (dead, nodes) =
                    futures_util::future::join(unanswered, self.nodes.current()).await;
                for addr in &dead {
                    self.forget(addr, "stopped answering");
                }
                nodes
            } else {
                self.nodes.current().await
            };
            self.catch_up(nodes, &mut attempts);
        }
    }
}

/// A subscription attempt's node and what it made.
type Attempt = (Node, redis::RedisResult<redis::aio::PubSub>);

/// Subscription attempts under way, each a task of its own (so they go on while a check
/// waits), all ended when the feed is dropped.
type Attempts = tokio::task::JoinSet<Attempt>;

/// Applies the notifications of every subscription until the feed is dropped; takes new
/// subscriptions from the [`Follower`] (dropping the cache after each: changes on that node
/// may have been missed) and tells it which ended.
async fn receive(
    mut streams: SelectAll<Notifications>,
    channel_prefix: String,
    mut found: mpsc::UnboundedReceiver<Notifications>,
    ended: mpsc::UnboundedSender<u64>,
    sink: Sink,
) {
    loop {
        // With no subscription left, the merged stream ends at once: wait for a new one.
        let next = if streams.is_empty() {
            Either::Right(found.recv().await)
        } else {
            // New subscriptions first: they are rare, and a flood of notifications must not
            // hold them (and the `All` that follows them) back.
            match futures_util::future::select(std::pin::pin!(found.recv()), streams.next()).await {
                Either::Left((notifications, _)) => Either::Right(notifications),
                Either::Right((event, _)) => Either::Left(event),
            }
        };
        let alive = match next {
            Either::Left(Some(Event::Message(_, message))) => {
                let event: String = message.get_payload().unwrap_or_default();
                match change_of(message.get_channel_name(), &channel_prefix, &event) {
                    Some(change) => sink.send(change),
                    None => true,
                }
            }
            Either::Left(Some(Event::Lost(id))) => ended.send(id).is_ok(),
            Either::Left(None) => true,
            Either::Right(Some(notifications)) => {
                streams.push(notifications);
                sink.send(Change::All)
            }
            Either::Right(None) => false,
        };
        if !alive {
            return;
        }
    }
}

/// The flags of [`NEEDED`] that `current` lacks (`A` stands for every class, `x` included).
fn missing_flags(current: &str) -> String {
    NEEDED
        .iter()
        .filter(|&&flag| !(current.contains(flag) || (flag != 'K' && current.contains('A'))))
        .collect()
}

/// Escapes Redis glob characters.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What a notification on `channel` (`__keyspace@N__:{prefix}{suffix}`) means for the cache.
fn change_of<'a>(channel: &'a str, channel_prefix: &str, event: &str) -> Option<Change<'a>> {
    let suffix = channel.strip_prefix(channel_prefix)?;
    if suffix.starts_with("active-sessions-") || suffix.starts_with("tas-session-changes-probe-") {
        return None;
    }
    if let Some(user_id) = suffix.strip_prefix("revoked-sessions-before-") {
        return (event == "set").then_some(Change::User(user_id));
    }
    // `SET … EX` publishes `set`, then `expire`; a TTL change alone leaves the session (and
    // the `expiresAt` inside it) as it was. An `EXPIRE` into the past publishes `del`.
    if matches!(event, "expire" | "persist") {
        return None;
    }
    Some(Change::Token(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked_as_redis_spells_them() {
        assert_eq!(missing_flags(""), "Kg$x");
        assert_eq!(missing_flags("AKE"), "");
        assert_eq!(missing_flags("Ex"), "Kg$");
        assert_eq!(missing_flags("g$xK"), "");
        assert_eq!(escape_glob("__keyspace@0__:a*b"), "__keyspace@0__:a\\*b");
    }

    #[test]
    fn notifications_map_to_cache_changes() {
        let p = "__keyspace@3__:app:";
        assert!(matches!(
            change_of("__keyspace@3__:app:tok123", p, "del"),
            Some(Change::Token("tok123"))
        ));
        assert!(matches!(
            change_of("__keyspace@3__:app:revoked-sessions-before-u1", p, "set"),
            Some(Change::User("u1"))
        ));
        assert!(change_of(
            "__keyspace@3__:app:revoked-sessions-before-u1",
            p,
            "expired"
        )
        .is_none());
        assert!(change_of("__keyspace@3__:app:active-sessions-u1", p, "set").is_none());
        assert!(change_of("__keyspace@4__:app:tok", p, "del").is_none());
        assert!(matches!(
            change_of("__keyspace@3__:app:tok", p, "expired"),
            Some(Change::Token("tok"))
        ));
        assert!(change_of("__keyspace@3__:app:tok", p, "expire").is_none());
        assert!(change_of("__keyspace@3__:app:tok", p, "persist").is_none());
    }

    #[test]
    fn cluster_slots_name_each_master_once_with_all_its_ranges() {
        use redis::Value::{Array, BulkString, Int, SimpleString};
        let master = |host: &str, port, slots| Master {
            host: host.to_owned(),
            port,
            slots,
        };
        let node = |host: &str, port: i64, id: &str| {
            Array(vec![
                BulkString(host.into()),
                Int(port),
                BulkString(id.into()),
                Array(vec![]),
            ])
        };
        let reply = Array(vec![
            Array(vec![
                Int(0),
                Int(5460),
                node("10.0.0.2", 7001, "b"),
                node("10.0.0.9", 7009, "r"),
            ]),
            Array(vec![Int(5461), Int(10922), node("10.0.0.1", 7000, "a")]),
            Array(vec![Int(10923), Int(12000), node("", 7002, "c")]),
            Array(vec![Int(12001), Int(16383), node("10.0.0.1", 7000, "a")]),
            Array(vec![
                Int(16384),
                Int(16384),
                Array(vec![BulkString("?".into()), Int(7005)]),
            ]),
        ]);
        let layout = topology(&reply, "seed.example").unwrap();
        assert_eq!(
            layout.masters,
            vec![
                master("10.0.0.1", 7000, vec![(5461, 10922), (12001, 16383)]),
                master("10.0.0.2", 7001, vec![(0, 5460)]),
                master("seed.example", 7002, vec![(10923, 12000)]),
            ],
            "replicas are not masters; an empty host is the seed's; an unknown endpoint is skipped"
        );
        let named = |nodes: &[(&str, u16)]| -> Vec<(String, u16)> {
            nodes.iter().map(|&(h, p)| (h.to_owned(), p)).collect()
        };
        assert_eq!(
            layout.named,
            named(&[
                ("10.0.0.1", 7000),
                ("10.0.0.2", 7001),
                ("10.0.0.9", 7009),
                ("seed.example", 7002)
            ]),
            "every node is named once, replicas too"
        );
        assert_eq!(topology(&Array(vec![]), "h").unwrap(), Topology::default());
        let unknown_host = Array(vec![Array(vec![
            Int(0),
            Int(16383),
            Array(vec![redis::Value::Nil, Int(7000)]),
        ])]);
        assert_eq!(
            topology(&unknown_host, "h").unwrap().masters,
            vec![master("h", 7000, vec![(0, 16383)])]
        );
        for bad in [
            SimpleString("OK".into()),
            Array(vec![Int(1)]),
            Array(vec![Array(vec![
                Int(0),
                Int(1),
                Array(vec![Int(3), Int(7000)]),
            ])]),
            Array(vec![Array(vec![Int(0), Int(1), node("h", 70_000, "a")])]),
        ] {
            assert!(topology(&bad, "h").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_nodes_views_merge_into_every_master_any_of_them_names() {
        use redis::Value::{Array, BulkString, Int};
        let node = |port: i64| Array(vec![BulkString("h".into()), Int(port)]);
        let range = |first, last, nodes: Vec<redis::Value>| {
            let mut fields = vec![Int(first), Int(last)];
            fields.extend(nodes);
            Array(fields)
        };
        // Before a failover 7000 holds the first half, with 7003 as its replica; one node
        // already names 7003 as its master, another does not yet.
        let before = Array(vec![
            range(0, 8191, vec![node(7000), node(7003)]),
            range(8192, 16383, vec![node(7001)]),
        ]);
        let after = Array(vec![
            range(0, 8191, vec![node(7003)]),
            range(8192, 16383, vec![node(7001)]),
        ]);
        let mut merged = topology(&after, "h").unwrap();
        merged.merge(topology(&before, "h").unwrap());
        let masters: Vec<u16> = merged.masters.iter().map(|m| m.port).collect();
        assert_eq!(masters, [7000, 7001, 7003]);
        let named: Vec<u16> = merged.named.iter().map(|n| n.1).collect();
        assert_eq!(named, [7000, 7001, 7003]);
        let slots = |port| {
            merged
                .masters
                .iter()
                .find(|m| m.port == port)
                .unwrap()
                .slots
                .clone()
        };
        assert_eq!(slots(7003), [(0, 8191)]);
        assert_eq!(slots(7000), [(0, 8191)]);
    }
}
