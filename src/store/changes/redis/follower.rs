//! The [`Follower`]: keeps one subscription on every node the feed hears.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;
use futures_util::stream::{AbortHandle, BoxStream};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use super::nodes::{Flags, Node, Nodes, DROP_AFTER, SUBSCRIBE_WAIT};
use crate::error::StoreError;

/// How often the feed checks that it hears every node: a cluster's masters are read again,
/// and a subscription that could not be mended at once is tried again.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What the merged subscriptions yield.
pub(super) enum Event {
    /// A notification, and the node it came from.
    Message(Arc<str>, redis::Msg),
    /// The subscription with this number ended.
    Lost(u64),
}

/// The notifications of one subscription, ending with [`Event::Lost`].
pub(super) type Notifications = BoxStream<'static, Event>;

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
/// subscribes on those it does not hear. Runs beside [`receive`](super::receive), in the same
/// task, so a slow node never holds back the notifications of the others.
pub(super) struct Follower {
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
    /// The masters the last reading named, and those the one before named.
    named: HashSet<Arc<str>>,
    named_before: HashSet<Arc<str>>,
    /// Nodes with a subscription attempt under way, by the attempt's task.
    trying: HashMap<tokio::task::Id, Arc<str>>,
    next_id: u64,
    /// Nodes whose flags are known to do (probed at start), or whose unreadable flags were
    /// already named: a resubscription there says nothing.
    flags_said: Arc<std::sync::Mutex<HashSet<Arc<str>>>>,
}

impl Follower {
    /// Follows `nodes`, subscribing with `pattern`; `configure`: whether a node subscribed on
    /// later may get the flags with `CONFIG SET`.
    pub(super) fn new(nodes: Nodes, configure: bool, pattern: String) -> Self {
        Self {
            nodes,
            configure,
            pattern,
            heard: HashMap::new(),
            failing: HashSet::new(),
            subscribed_at: HashMap::new(),
            unnamed: HashMap::new(),
            named: HashSet::new(),
            named_before: HashSet::new(),
            trying: HashMap::new(),
            next_id: 0,
            flags_said: Arc::default(),
        }
    }

    /// Notes that `addr`'s flags are known to do (the start-up probe heard it).
    pub(super) fn flags_known(&self, addr: Arc<str>) {
        self.flags_said
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(addr);
    }

    /// The pattern subscribed to.
    pub(super) fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Connects to `node` and subscribes to the session keys' notifications.
    pub(super) async fn open(node: &Node, pattern: &str) -> redis::RedisResult<redis::aio::PubSub> {
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
    pub(super) fn keep(&mut self, node: &Node, pubsub: redis::aio::PubSub) -> Notifications {
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

    /// Ends and forgets the subscription on `addr`; whether there was one.
    fn end(&mut self, addr: &Arc<str>) -> bool {
        self.heard.remove(addr).map(|s| s.stop.abort()).is_some()
    }

    /// Ends and forgets the subscription on `addr`, saying `what` happened to it; the next
    /// check subscribes there again.
    fn forget(&mut self, addr: &Arc<str>, what: &str) {
        if self.end(addr) {
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
        self.named_before = std::mem::replace(
            &mut self.named,
            nodes.iter().map(|node| node.addr.clone()).collect(),
        );
        self.drop_unnamed();
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
            let said = Arc::clone(&self.flags_said);
            let task = attempts.spawn(async move {
                // A promoted replica or a new master may lack the flags the masters got at
                // start.
                match node.ensure_flags(configure).await {
                    Ok(Flags::Set | Flags::Unreachable) => {}
                    // Not probed (the start-up probe ran on the masters of then): say so, once
                    // per node.
                    Ok(Flags::Unread)
                        if !said
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(node.addr.clone()) => {}
                    Ok(Flags::Unread) => tracing::warn!(node = %node.addr, "session change feed: cannot read notify-keyspace-events on a new Redis master (CONFIG refused); if it lacks K, g, $ and x, changes there are served from the cache until its TTL"),
                    Err(error) => tracing::warn!(%error, node = %node.addr, "session change feed: a new Redis master may not publish keyspace notifications"),
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
            // The last two readings no longer name it (a frozen master that woke up as a
            // replica while its attempt waited): keeping it would only drop the cache for
            // nothing. Two, so that one stale reading does not cost a new master a check.
            Ok(_)
                if !self.named.contains(&node.addr) && !self.named_before.contains(&node.addr) =>
            {
                tracing::debug!(node = %node.addr, "session change feed: the Redis node stopped being a master while subscribing; not kept");
            }
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
    fn drop_unnamed(&mut self) {
        let (named, heard) = (&self.named, &self.heard);
        self.unnamed
            .retain(|addr, _| !named.contains(addr) && heard.contains_key(addr));
        let mut gone = Vec::new();
        for addr in heard.keys().filter(|addr| !named.contains(*addr)) {
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
            if self.end(&addr) {
                tracing::info!(node = %addr, "session change feed: the Redis node is no longer a master; unsubscribed");
            }
        }
    }

    /// Follows the nodes until [`receive`](super::receive) is gone: `ended` brings the numbers
    /// of the subscriptions that ended, `found` takes the new ones. Subscription attempts run
    /// beside the checks, so a node that does not answer delays neither the next check nor the
    /// subscriptions on the others.
    pub(super) async fn run(
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
