//! The servers the Redis change feed subscribes on: one, a cluster's masters, read with
//! `CLUSTER SLOTS` (through the store at start, then from the nodes themselves), or the master
//! Redis Sentinel names.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::{ConnectionAddr, ConnectionInfo};

use super::super::cannot;
use crate::error::StoreError;
use crate::store::redis::link::{node_client, node_config, Sentinels};
use crate::store::RedisStore;

/// The flags the feed needs in `notify-keyspace-events`.
const NEEDED: [char; 4] = ['K', 'g', '$', 'x'];

/// How long a subscription may take to connect.
pub(super) const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// How long, after the first node told the cluster's layout, the others' answers are waited
/// for.
const ANSWER_GRACE: Duration = Duration::from_millis(250);

/// How many readings of a cluster's masters in a row, over at least as many checks, must leave
/// out a node before its subscription ends (a master demoted to a replica); also how many
/// readings in a row a node may miss before the connection it is asked on is made again.
pub(super) const DROP_AFTER: u32 = 3;

/// One server the feed subscribes on.
#[derive(Clone)]
pub(super) struct Node {
    /// `host:port`, for logs and to tell subscriptions apart.
    pub(super) addr: Arc<str>,
    pub(super) client: redis::Client,
    /// The cluster slots it serves, as inclusive ranges; empty for a single server.
    pub(super) slots: Vec<(i64, i64)>,
}

impl Node {
    pub(super) fn serves(&self, slot: i64) -> bool {
        self.slots
            .iter()
            .any(|&(first, last)| (first..=last).contains(&slot))
    }

    /// Makes sure `notify-keyspace-events` holds every flag in [`NEEDED`] here, adding the
    /// missing ones with `CONFIG SET` when `configure`. [`Flags::Unread`] when the node
    /// refuses `CONFIG GET` (managed services often rename or forbid it): at start the probe
    /// then tells whether notifications arrive; later, nothing does.
    pub(super) async fn ensure_flags(&self, configure: bool) -> Result<Flags, StoreError> {
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
                return Ok(Flags::Unreachable);
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
                tracing::debug!(%error, node = on, "CONFIG GET {SETTING} refused");
                return Ok(Flags::Unread);
            }
        };
        let missing = missing_flags(&current);
        if missing.is_empty() {
            return Ok(Flags::Set);
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
                Ok(Flags::Set)
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

/// What [`Node::ensure_flags`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flags {
    /// Every flag the feed needs is set.
    Set,
    /// The node refused `CONFIG GET`.
    Unread,
    /// The node could not be reached (its subscription fails the same way, and says so).
    Unreachable,
}

/// Where the feed's servers come from. One per feed, so its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Nodes {
    /// One server: the one the URL names.
    One(Node),
    /// A cluster's masters.
    Cluster(Cluster),
    /// The master the store's Sentinels name, asked for at every check.
    Sentinel(SentinelMaster),
}

impl Nodes {
    /// The servers to hear now.
    pub(super) async fn current(&mut self) -> Result<Vec<Node>, StoreError> {
        match self {
            Self::One(node) => Ok(vec![node.clone()]),
            Self::Cluster(cluster) => cluster.masters().await,
            Self::Sentinel(master) => Ok(vec![master.current().await?]),
        }
    }
}

/// Follows the master the Sentinels name, cheaply: each check asks every Sentinel for the
/// master's address (`SENTINEL get-master-addr-by-name`) on a connection kept for it, and
/// takes the answers that come within [`ANSWER_GRACE`] of the first. While they all name the
/// master found last, that is the answer (its subscription's `PING` tells whether it is
/// alive). Otherwise (a failover, or no answer) the full lookup runs: the driver asks the
/// Sentinels and checks with `ROLE`, on a new connection, that the server named is a master.
pub(super) struct SentinelMaster {
    sentinels: Sentinels,
    /// A connection to each Sentinel, kept between checks; `None` until made, or after it
    /// failed.
    conns: Vec<Option<redis::aio::MultiplexedConnection>>,
    last: Option<Node>,
}

impl SentinelMaster {
    pub(super) fn new(sentinels: Sentinels) -> Self {
        Self {
            conns: vec![None; sentinels.plain.len()],
            sentinels,
            last: None,
        }
    }

    async fn current(&mut self) -> Result<Node, StoreError> {
        if let Some(last) = self.last.clone() {
            let named = self.named().await;
            if !named.is_empty() && named.iter().all(|addr| **addr == *last.addr) {
                return Ok(last);
            }
        }
        let master = self
            .sentinels
            .master(SUBSCRIBE_WAIT)
            .await
            .map_err(|e| StoreError::backend("watch session changes", e))?;
        let node = Node {
            addr: master.get_connection_info().addr().to_string().into(),
            client: master,
            slots: Vec::new(),
        };
        self.last = Some(node.clone());
        Ok(node)
    }

    /// The master's address (`host:port`) as each Sentinel that answered within
    /// [`ANSWER_GRACE`] of the first (or within [`SUBSCRIBE_WAIT`], when none did) names it.
    async fn named(&mut self) -> Vec<String> {
        let name = self.sentinels.name.clone();
        let asks: futures_util::stream::FuturesUnordered<_> = self
            .conns
            .iter_mut()
            .zip(&self.sentinels.plain)
            .map(|(conn, client)| {
                let name = name.clone();
                let ask = async move {
                    if conn.is_none() {
                        *conn = client
                            .get_multiplexed_async_connection_with_config(&node_config(
                                SUBSCRIBE_WAIT,
                            ))
                            .await
                            .ok();
                    }
                    let c = conn.as_mut()?;
                    let answer: redis::RedisResult<Option<(String, u16)>> = redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(&name)
                        .query_async(c)
                        .await;
                    match answer {
                        Ok(Some((host, port))) => Some(format!("{host}:{port}")),
                        Ok(None) => None,
                        Err(_) => {
                            // Made again at the next check.
                            *conn = None;
                            None
                        }
                    }
                };
                async move {
                    tokio::time::timeout(SUBSCRIBE_WAIT, ask)
                        .await
                        .ok()
                        .flatten()
                }
            })
            .collect();
        let mut named = Vec::new();
        within_grace(asks, |answer| {
            let useful = answer.is_some();
            named.extend(answer);
            useful
        })
        .await;
        named
    }
}

/// Reads a cluster's masters: through the store at start, then from the masters the last
/// reading named (the other nodes it named when none of them answers), each asked directly on
/// a connection of the feed's own.
///
/// After a failover the store's connection may still be waiting on the lost master (it builds
/// a new one in the background), while the live masters already name the promoted replica; so
/// the feed asks them, and hears the new master one check after the promotion. A node that
/// has not answered [`ANSWER_GRACE`] after the first answer (or within [`SUBSCRIBE_WAIT`],
/// when none came) is left out of that reading; when no node answers, the store is asked.
///
/// The cost: each instance keeps one connection to every master and sends each one
/// `CLUSTER SLOTS` a second.
pub(super) struct Cluster {
    store: RedisStore,
    /// The URL given: it lends its scheme, credentials and TLS settings to every node.
    template: ConnectionInfo,
    root_cert: Option<Vec<u8>>,
    /// A client for each node named in the last reading, by address.
    clients: HashMap<Arc<str>, redis::Client>,
    /// Every node the last reading named, masters and replicas.
    peers: Vec<Arc<str>>,
    /// The masters the last reading named: the nodes asked first.
    masters_named: Vec<Arc<str>>,
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
    /// Nodes whose last connection attempt failed.
    unreachable: HashSet<Arc<str>>,
}

impl Cluster {
    pub(super) fn new(
        store: RedisStore,
        template: ConnectionInfo,
        root_cert: Option<Vec<u8>>,
    ) -> Self {
        Self {
            store,
            template,
            root_cert,
            clients: HashMap::new(),
            peers: Vec::new(),
            masters_named: Vec::new(),
            conns: HashMap::new(),
            missed: HashMap::new(),
            connecting: tokio::task::JoinSet::new(),
            pending: HashMap::new(),
            unreachable: HashSet::new(),
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
        // The masters are among the nodes named.
        self.clients.retain(|addr, _| peers.contains(addr));
        self.conns.retain(|addr, _| peers.contains(addr));
        self.unreachable.retain(|addr| peers.contains(addr));
        self.peers = peers;
        self.masters_named = nodes.iter().map(|node| node.addr.clone()).collect();
        Ok(nodes)
    }

    /// What the masters of the last reading answer to `CLUSTER SLOTS`, merged (a node that any
    /// of them names as a master is one); when none of them answers (a cluster whose only
    /// master froze), what the other nodes it named answer; at start, or when no node answers,
    /// the store's answer.
    ///
    /// Only nodes with a connection are asked, a single round trip each; connections are made
    /// in tasks of their own and used from the next reading on, so a node that is slow to
    /// connect (or frozen) holds no reading back. Replicas are connected to only once the
    /// masters stopped answering. A connection whose node missed [`DROP_AFTER`] readings in a
    /// row is dropped (and made again if the node is still asked).
    async fn topology(&mut self) -> Result<Topology, StoreError> {
        self.connected();
        let masters = self.masters_named.clone();
        self.connect(&masters);
        let mut reading = Reading::default();
        let mut merged = self.ask(&masters, &mut reading).await;
        if merged.is_none() {
            let others: Vec<Arc<str>> = self
                .peers
                .iter()
                .filter(|addr| !masters.contains(addr))
                .cloned()
                .collect();
            // Not at the first readings, when the masters are simply not connected yet; but
            // as soon as one was asked, or cannot be connected to.
            if !reading.asked.is_empty() || masters.iter().any(|m| self.unreachable.contains(m)) {
                self.connect(&others);
            }
            merged = self.ask(&others, &mut reading).await;
        }
        // A connection that failed for good is made again at once. A node that keeps missing
        // readings gets a new connection too: the one it has may be half-open. One that is no
        // longer asked (a replica, once the masters answer again) is let go the same way.
        let missed = &mut self.missed;
        self.conns.retain(|addr, _| {
            if reading.broken.contains(addr) {
                return false;
            }
            if reading.answered.contains(addr) {
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
        match topology(&reply, &default_host) {
            Ok(layout) if layout.masters.is_empty() => Err(StoreError::Corrupt {
                reason: "CLUSTER SLOTS names no master".to_owned(),
            }),
            Ok(layout) => Ok(layout),
            Err(reason) => Err(StoreError::Corrupt {
                reason: format!("CLUSTER SLOTS: {reason}"),
            }),
        }
    }

    /// Takes the connections that were made since the last reading.
    fn connected(&mut self) {
        while let Some(made) = self.connecting.try_join_next_with_id() {
            match made {
                Ok((id, (addr, conn))) => {
                    self.pending.remove(&id);
                    match conn {
                        Ok(conn) => {
                            self.unreachable.remove(&addr);
                            if self.peers.contains(&addr) {
                                self.conns.insert(addr, conn);
                            }
                        }
                        Err(error) => {
                            tracing::debug!(%error, node = %addr, "session change feed: cannot connect to a Redis node to read the cluster's layout");
                            self.unreachable.insert(addr);
                        }
                    }
                }
                Err(error) => {
                    self.pending.remove(&error.id());
                }
            }
        }
    }

    /// Starts making a connection to each of `nodes` that has none and is not being connected
    /// to.
    fn connect(&mut self, nodes: &[Arc<str>]) {
        for addr in nodes {
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
    }

    /// Asks each of `nodes` that has a connection for `CLUSTER SLOTS`, all at once, and merges
    /// every readable answer that comes within [`ANSWER_GRACE`] of the first: a node that does
    /// not answer (a frozen master) holds the reading back no longer than that. Notes in
    /// `reading` which nodes were asked, which answered, and whose connection failed for good.
    async fn ask(&self, nodes: &[Arc<str>], reading: &mut Reading) -> Option<Topology> {
        let asks: futures_util::stream::FuturesUnordered<_> = nodes
            .iter()
            .filter_map(|addr| {
                let mut conn = self.conns.get(addr)?.clone();
                reading.asked.insert(addr.clone());
                let addr = addr.clone();
                Some(async move {
                    let answer = tokio::time::timeout(
                        SUBSCRIBE_WAIT,
                        redis::cmd("CLUSTER")
                            .arg("SLOTS")
                            .query_async::<redis::Value>(&mut conn),
                    )
                    .await;
                    (addr, answer)
                })
            })
            .collect();
        let mut merged: Option<Topology> = None;
        within_grace(asks, |(addr, answer)| {
            let reply = match answer {
                Ok(Ok(reply)) => reply,
                Ok(Err(error)) => {
                    tracing::debug!(%error, node = %addr, "session change feed: a Redis node did not tell the cluster's layout");
                    if error.is_connection_dropped() || error.is_unrecoverable_error() {
                        reading.broken.insert(addr);
                    }
                    return false;
                }
                Err(_) => return false,
            };
            // An empty host in a node's answer is that node's own.
            let own_host = addr.rsplit_once(':').map_or("", |(host, _)| host);
            match topology(&reply, own_host) {
                // A node that lost its configuration (or a `CLUSTER RESET`) names no master:
                // taken as unreadable, not as a cluster without masters.
                Ok(seen) if seen.masters.is_empty() => {
                    tracing::debug!(node = %addr, "session change feed: a Redis node names no master");
                    false
                }
                Ok(seen) => {
                    reading.answered.insert(addr);
                    match &mut merged {
                        Some(merged) => merged.merge(seen),
                        None => merged = Some(seen),
                    }
                    true
                }
                Err(error) => {
                    tracing::debug!(%error, node = %addr, "session change feed: unreadable CLUSTER SLOTS");
                    false
                }
            }
        })
        .await;
        merged
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

/// What one reading of [`Cluster::topology`] learned of the nodes it asked.
#[derive(Default)]
struct Reading {
    asked: HashSet<Arc<str>>,
    answered: HashSet<Arc<str>>,
    /// Nodes whose connection failed for good (dropped, or an unrecoverable error).
    broken: HashSet<Arc<str>>,
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

/// Hands each answer of `asks` to `take` as it comes (`take` says whether it was a useful one),
/// until every ask has ended, or [`ANSWER_GRACE`] after the first useful answer: a node that
/// does not answer (a frozen one) holds a reading back no longer than that. Each ask bounds
/// its own wait.
async fn within_grace<F: std::future::Future>(
    mut asks: futures_util::stream::FuturesUnordered<F>,
    mut take: impl FnMut(F::Output) -> bool,
) {
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = match deadline {
            None => asks.next().await,
            Some(at) => tokio::time::timeout_at(at, asks.next())
                .await
                .ok()
                .flatten(),
        };
        let Some(answer) = next else { return };
        if take(answer) {
            deadline.get_or_insert_with(|| tokio::time::Instant::now() + ANSWER_GRACE);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked_as_redis_spells_them() {
        assert_eq!(missing_flags(""), "Kg$x");
        assert_eq!(missing_flags("AKE"), "");
        assert_eq!(missing_flags("Ex"), "Kg$");
        assert_eq!(missing_flags("g$xK"), "");
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
