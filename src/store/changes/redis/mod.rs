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
//! connection at start, then from the masters themselves (the replicas when none answers) on
//! connections of its own ([`Cluster`], in `nodes`). At start, each subscription is proven with
//! a probe key in that master's slots.
//!
//! Afterwards a [`Follower`] (in `follower`) keeps the subscriptions, beside the task's
//! receiving loop so that a slow node never holds back the others' notifications. Every
//! [`CHECK_EVERY`](follower::CHECK_EVERY) it sends each subscription a `PING` (a connection cut
//! off without a reset hears nothing and looks alive otherwise) and reads the masters again; at
//! once when a subscription ends. It subscribes on every master it does not hear (a replica
//! promoted by a failover, a master added to the cluster, a subscription renewed), after
//! checking or setting the flags there, and the cache is dropped, since changes on that master
//! may have been missed. A node that [`DROP_AFTER`](nodes::DROP_AFTER) readings in a row, over
//! at least as many seconds, no longer name as a master (one demoted by a failover) is
//! unsubscribed. Masters found after start are not probed: a warning says when their flags
//! could not be checked (`CONFIG GET` refused). Behind Redis Sentinel the one node followed is the master the
//! Sentinels name, asked for at every check.

mod follower;
mod nodes;

use std::time::Duration;

use futures_util::future::Either;
use futures_util::stream::SelectAll;
use futures_util::StreamExt as _;
use redis::IntoConnectionInfo as _;
use tokio::sync::mpsc;

use super::{cannot, Change, SessionChanges, Sink};
use crate::error::StoreError;
use crate::store::redis::link::node_client;
use crate::store::RedisStore;
use follower::{Event, Follower, Notifications};
use nodes::{Cluster, Node, Nodes, SentinelMaster};

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
    /// `CLUSTER SLOTS`. Afterwards the feed asks the masters for `CLUSTER SLOTS` once a second,
    /// on a connection of its own to each (the other nodes when no master answers), and
    /// subscribes on a master it does not hear yet, then drops the cache (changes may have been
    /// missed). A master subscribed on later (a promoted replica) gets the missing flags the
    /// same way first. A node that three readings in a row, over at least 3 s, no longer name a
    /// master (a master demoted by a failover) is unsubscribed.
    ///
    /// Behind Redis Sentinel ([`RedisStore::sentinel_builder`]), the feed subscribes on the
    /// master the store's Sentinels name, with the store's settings for it (credentials,
    /// database, TLS); the URL is only parsed. Afterwards it asks each Sentinel once a second
    /// where the master is (`SENTINEL get-master-addr-by-name`, on a connection kept for it).
    /// When one names another server (a failover), it looks the master up as the store does
    /// (every Sentinel asked, the server named checked with `ROLE`), subscribes there, drops
    /// the cache, and leaves the old master three readings later.
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
        let url_db = template.redis_settings().db();
        let mut nodes = if let Some(sentinels) = self.store.sentinels() {
            // Clients of its own: its lookup every second never holds up the store's.
            Nodes::Sentinel(SentinelMaster::new(sentinels.another().map_err(watch)?))
        } else if self.store.is_cluster() {
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
        // Behind Sentinels the master's settings are the store's, the URL's address unused.
        let db = match (&nodes, found.first()) {
            (Nodes::Sentinel(_), Some(master)) => {
                master.client.get_connection_info().redis_settings().db()
            }
            _ => url_db,
        };
        for node in &found {
            // Unread flags are left to the probe below.
            let _flags = node.ensure_flags(self.configure).await?;
        }
        let channel_prefix = format!("__keyspace@{db}__:{}", self.store.key_prefix());
        let mut follower = Follower::new(
            nodes,
            self.configure,
            format!("{}*", escape_glob(&channel_prefix)),
        );
        let mut streams = SelectAll::new();
        for node in &found {
            follower.flags_known(node.addr.clone());
            let pubsub = Follower::open(node, follower.pattern())
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

/// How long the start-up probe waits for its own notifications.
const PROBE_WAIT: Duration = Duration::from_secs(3);

/// How many probe keys are tried per master to find one in its slots (a master holding a
/// third of the slots misses all 64 with a chance of 1 in 10^11).
const PROBE_TRIES_PER_NODE: usize = 64;

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
    // A user id may hold any character: looked at before the filters below.
    if let Some(user_id) = suffix.strip_prefix("revoked-sessions-before-") {
        return (event == "set").then_some(Change::User(user_id));
    }
    // Better Auth keeps more than sessions in the same storage: its rate limiter counts every
    // request under `{ip}|{path}` (`INCR`, then `EXPIRE`, then `expired`), and verification
    // values live under `verification:{id}`. A session key (a token, or its hex hash) holds
    // neither `|` nor `:`, and no session is written by a counter command. Taken for sessions,
    // each counter fenced a stripe of every instance's cache, dropping fills.
    if suffix.starts_with("active-sessions-")
        || suffix.starts_with("tas-session-changes-probe-")
        || suffix.contains(['|', ':'])
        || matches!(event, "incrby" | "incrbyfloat" | "append" | "setrange")
    {
        return None;
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
    fn glob_characters_are_escaped() {
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
        // Better Auth's rate-limit counters share the storage and its prefix.
        for event in ["incrby", "expire", "expired", "set", "del"] {
            assert!(
                change_of("__keyspace@3__:app:203.0.113.7|/get-session", p, event).is_none(),
                "{event}"
            );
        }
        assert!(change_of("__keyspace@3__:app:tok123", p, "incrby").is_none());
        assert!(change_of("__keyspace@3__:app:verification:abc", p, "del").is_none());
        // A user id holding either character still has its revocations heard.
        assert!(matches!(
            change_of(
                "__keyspace@3__:app:revoked-sessions-before-auth0|42",
                p,
                "set"
            ),
            Some(Change::User("auth0|42"))
        ));
        assert!(change_of("__keyspace@4__:app:tok", p, "del").is_none());
        assert!(matches!(
            change_of("__keyspace@3__:app:tok", p, "expired"),
            Some(Change::Token("tok"))
        ));
        assert!(change_of("__keyspace@3__:app:tok", p, "expire").is_none());
        assert!(change_of("__keyspace@3__:app:tok", p, "persist").is_none());
    }
}
