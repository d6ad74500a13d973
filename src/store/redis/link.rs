//! One connection to Redis (a node, a cluster, or the master Sentinels name) that is replaced
//! when it fails.
//!
//! A multiplexed connection whose server was killed, failed over, or went silent behind a
//! network partition never recovers by itself: a timeout is not a disconnection, so the driver
//! keeps sending on it. [`Link`] drops the connection on any connection-level failure (an I/O
//! error, a reset, a timeout), connects again on the next use, and tries the operation once more
//! on the new connection. While the server stays unreachable, callers fail at once instead of
//! queueing behind connection attempts: one attempt at a time, at most one every
//! [`RETRY_EVERY`].
//!
//! Behind Redis Sentinel, every new connection asks the Sentinels for the master first, so
//! the connection that replaces one lost in a failover reaches the promoted replica. A master
//! demoted while the connection stayed up answers writes with `READONLY`: that too replaces
//! the connection.
//!
//! A cluster connection is different in two ways. It still serves the healthy masters when one
//! fails, so it is kept, not dropped. And it does not learn by itself that a replica took over
//! a master that went silent: it keeps sending that master's slots to the silent node. So a
//! connection-level failure on a cluster starts building a fresh connection in the background,
//! which reads the topology again, and swaps it in once it is ready; the caller gets its error
//! at once (or a retry on a connection already rebuilt). Building waits for every seed node to
//! answer or time out, so it gets [`CLUSTER_CONNECT_WAIT`] response timeouts.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// The shortest interval between two connection attempts after one failed.
const RETRY_EVERY: Duration = Duration::from_millis(200);

/// How many response timeouts building a cluster connection may take: the driver connects to
/// every seed (a silent one costs a connection or response timeout), then reads the slots and
/// connects to the masters they name.
const CLUSTER_CONNECT_WAIT: u32 = 3;

/// A client for one node, trusting the certificate authority in `root_cert` when given (else
/// the built-in roots) for a `rediss://` address.
pub(crate) fn node_client(
    info: impl redis::IntoConnectionInfo,
    root_cert: Option<&[u8]>,
) -> RedisResult<redis::Client> {
    match root_cert {
        Some(pem) => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        ),
        None => redis::Client::open(info),
    }
}

/// Connection settings for one node: `timeout` bounds connecting and every response.
pub(crate) fn node_config(timeout: Duration) -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
}

/// Where to connect. Built once per store, so the size difference does not matter.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Target {
    Node(redis::Client),
    Cluster(redis::cluster::ClusterClient),
    /// The master a Redis Sentinel deployment names, asked for at every connection.
    Sentinel(Arc<Sentinels>),
}

/// Makes one client per Sentinel (each with its own URL's credentials and TLS).
pub(crate) type MakeSentinelClients =
    Arc<dyn Fn() -> RedisResult<Vec<redis::sentinel::SentinelClient>> + Send + Sync>;

/// The Sentinels that name one master, each asked on a client of its own, all at once: the
/// first to name a server that answers as a master (the driver checks `ROLE`) wins, so a
/// Sentinel that is frozen (one often runs beside the master that froze) or has not yet seen a
/// failover holds nobody back. One lookup at a time per Sentinel (a client caches its
/// connection), the whole bounded by a timeout.
pub(crate) struct Sentinels {
    clients: Vec<tokio::sync::Mutex<redis::sentinel::SentinelClient>>,
    /// Makes the clients again, for [`another`](Self::another) (the change feed's).
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    make: MakeSentinelClients,
    /// A plain client of each Sentinel (its URL's credentials and TLS), for questions the
    /// driver's Sentinel client does not ask (the change feed's).
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) plain: Vec<redis::Client>,
    /// The master's name (`sentinel monitor <name> …`).
    pub(crate) name: String,
}

impl Sentinels {
    pub(crate) fn new(
        make: MakeSentinelClients,
        plain: Vec<redis::Client>,
        name: String,
    ) -> RedisResult<Self> {
        Ok(Self {
            clients: make()?.into_iter().map(tokio::sync::Mutex::new).collect(),
            make,
            plain,
            name,
        })
    }

    /// Another set of clients to the same Sentinels, so that a user of its own (the change
    /// feed, which asks every second) never waits behind the store's lookups, nor they behind
    /// its.
    #[cfg(feature = "cache")]
    pub(crate) fn another(&self) -> RedisResult<Self> {
        Self::new(self.make.clone(), self.plain.clone(), self.name.clone())
    }

    /// A client for the master the Sentinels name now, within `timeout`. When none names
    /// one, the error it reports is the most telling one met by then: a named master that
    /// answered and refused (a wrong password, say) before a Sentinel's "no such master", and
    /// that before a server (a Sentinel or the master) that could not be reached.
    pub(crate) async fn master(&self, timeout: Duration) -> RedisResult<redis::Client> {
        use futures_util::StreamExt as _;
        let mut lookups: futures_util::stream::FuturesUnordered<_> = self
            .clients
            .iter()
            .map(|client| async move { client.lock().await.async_get_client().await })
            .collect();
        let rank = |e: &RedisError| match e.kind() {
            redis::ErrorKind::MasterNameNotFoundBySentinel => 1,
            _ if e.is_io_error() || e.is_timeout() || e.is_connection_refusal() => 0,
            _ => 2,
        };
        // Kept outside the lookups, so that a Sentinel still silent at the deadline does not
        // hide what the others said.
        let mut best: Option<RedisError> = None;
        let first = async {
            while let Some(lookup) = lookups.next().await {
                match lookup {
                    Ok(master) => return Some(master),
                    Err(e) if best.as_ref().is_none_or(|b| rank(&e) > rank(b)) => {
                        best = Some(e);
                    }
                    Err(_) => {}
                }
            }
            None
        };
        if let Ok(Some(master)) = tokio::time::timeout(timeout, first).await {
            return Ok(master);
        }
        Err(best.unwrap_or_else(|| {
            if self.clients.is_empty() {
                RedisError::from((redis::ErrorKind::EmptySentinelList, "no Sentinel URL given"))
            } else {
                RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the Redis Sentinels did not name a reachable master {:?} in time",
                        self.name
                    ),
                ))
            }
        }))
    }
}

/// A connection of either kind.
#[derive(Clone)]
pub(crate) enum Conn {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// The current connection, tagged with its generation.
struct Current {
    generation: u64,
    conn: Conn,
}

/// A connection that is replaced when it fails. Cloning shares it.
#[derive(Clone)]
pub(crate) struct Link {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    timeout: Duration,
    current: ArcSwapOption<Current>,
    generation: AtomicU64,
    /// One connection attempt at a time; holds when the last one failed.
    connecting: tokio::sync::Mutex<Option<Instant>>,
    /// A cluster connection is being rebuilt in the background.
    rebuilding: AtomicBool,
}

/// Whether `error` means the connection it came from is unusable.
pub(crate) fn connection_failed(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
}

/// Whether `error`, met on a connection to `target`, means the link must connect again: a
/// connection-level failure, or, behind Sentinels, a `READONLY` answer from a master demoted
/// while the connection stayed up (the Sentinels close their clients' connections when they
/// reconfigure a server, so this is the rare case where that did not happen: a replica that
/// answers as a master for a moment after waking up, say). On a plain node there is nowhere
/// else to go.
fn must_reconnect(target: &Target, error: &RedisError) -> bool {
    connection_failed(error)
        || (matches!(target, Target::Sentinel(_))
            && error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly))
}

impl Link {
    /// Connects to `target`; `timeout` bounds connecting and every response.
    pub(crate) async fn connect(target: Target, timeout: Duration) -> RedisResult<Self> {
        let link = Self {
            inner: Arc::new(Inner {
                target,
                timeout,
                current: ArcSwapOption::empty(),
                generation: AtomicU64::new(0),
                connecting: tokio::sync::Mutex::new(None),
                rebuilding: AtomicBool::new(false),
            }),
        };
        link.open().await?;
        Ok(link)
    }

    /// Whether this is a cluster connection.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.inner.target, Target::Cluster(_))
    }

    /// The Sentinels, when the master is found through them (for the change feed).
    #[cfg(feature = "cache")]
    pub(crate) fn sentinels(&self) -> Option<&Arc<Sentinels>> {
        match &self.inner.target {
            Target::Sentinel(sentinels) => Some(sentinels),
            _ => None,
        }
    }

    /// Opens a new connection and makes it current.
    async fn open(&self) -> RedisResult<(u64, Conn)> {
        let inner = &self.inner;
        let conn = match &inner.target {
            Target::Node(client) => Conn::Node(
                client
                    .get_multiplexed_async_connection_with_config(&node_config(inner.timeout))
                    .await?,
            ),
            Target::Cluster(client) => Conn::Cluster(client.get_async_connection().await?),
            Target::Sentinel(sentinels) => {
                // Three quarters of the connection's time, so that a lookup that found only
                // errors by then reports them rather than the caller's bare timeout.
                let master = sentinels.master(inner.timeout * 3 / 4).await?;
                tracing::debug!(master = %master.get_connection_info().addr(), name = %sentinels.name, "the Redis Sentinels name the master");
                Conn::Node(
                    master
                        .get_multiplexed_async_connection_with_config(&node_config(inner.timeout))
                        .await?,
                )
            }
        };
        let generation = inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
        inner.current.store(Some(Arc::new(Current {
            generation,
            conn: conn.clone(),
        })));
        Ok((generation, conn))
    }

    /// The current connection, or a new one.
    async fn get(&self) -> RedisResult<(u64, Conn)> {
        if let Some(current) = self.inner.current.load_full() {
            return Ok((current.generation, current.conn.clone()));
        }
        let mut last_failure = self.inner.connecting.lock().await;
        // Someone else connected while this caller waited.
        if let Some(current) = self.inner.current.load_full() {
            return Ok((current.generation, current.conn.clone()));
        }
        if last_failure.is_some_and(|at| at.elapsed() < RETRY_EVERY) {
            return Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "Redis is unreachable (the last connection attempt failed moments ago)",
            )));
        }
        match tokio::time::timeout(self.inner.timeout, self.open()).await {
            Ok(Ok(opened)) => {
                *last_failure = None;
                tracing::info!("reconnected to Redis");
                Ok(opened)
            }
            Ok(Err(e)) => {
                *last_failure = Some(Instant::now());
                Err(e)
            }
            Err(_) => {
                *last_failure = Some(Instant::now());
                Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connecting to Redis timed out",
                )))
            }
        }
    }

    /// Drops the connection of `generation` if it is still the current one.
    fn drop_connection(&self, generation: u64, error: &RedisError) {
        let current = self.inner.current.load();
        if current.as_ref().is_some_and(|c| c.generation == generation) {
            tracing::warn!(%error, "Redis connection failed; it will be replaced");
            self.inner.current.store(None);
        }
    }

    /// Runs `op` on the connection; after a connection-level failure, drops the connection and
    /// runs `op` once more on a new one. Every operation this store runs may be repeated: reads,
    /// idempotent writes, and compare-and-set scripts.
    pub(crate) async fn run<T, F, Fut>(&self, op: F) -> RedisResult<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let (generation, conn) = self.get().await?;
        match op(conn).await {
            Err(e) if connection_failed(&e) && self.is_cluster() => {
                self.rebuild(generation, &e);
                match self.inner.current.load_full() {
                    Some(newer) if newer.generation != generation => op(newer.conn.clone()).await,
                    _ => Err(e),
                }
            }
            Err(e) if must_reconnect(&self.inner.target, &e) => {
                self.drop_connection(generation, &e);
                let (_, conn) = self.get().await?;
                op(conn).await
            }
            other => other,
        }
    }

    /// Builds a fresh cluster connection in the background, reading the topology again, and
    /// makes it current once it is ready; the connection of `generation` serves meanwhile.
    /// One build at a time, at most one every [`RETRY_EVERY`].
    fn rebuild(&self, generation: u64, error: &RedisError) {
        if self.inner.rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        // Clears the flag when the build ends, also if its task is dropped with the runtime.
        let building = Building(self.clone());
        let current = self.inner.current.load();
        if current.as_ref().is_some_and(|c| c.generation != generation) {
            return;
        }
        tracing::warn!(%error, "Redis Cluster connection failed; rebuilding it with a fresh topology in the background");
        let wait = self.inner.timeout.saturating_mul(CLUSTER_CONNECT_WAIT);
        tokio::spawn(async move {
            let started = Instant::now();
            match tokio::time::timeout(wait, building.0.open()).await {
                Ok(Ok(_)) => tracing::info!(
                    took_ms = started.elapsed().as_millis(),
                    "rebuilt the Redis Cluster connection"
                ),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "could not rebuild the Redis Cluster connection yet");
                }
                Err(_) => tracing::warn!(
                    "rebuilding the Redis Cluster connection timed out after {wait:?}"
                ),
            }
            tokio::time::sleep(RETRY_EVERY.saturating_sub(started.elapsed())).await;
        });
    }
}

/// A cluster connection being rebuilt: lets the next build start when dropped.
struct Building(Link);

impl Drop for Building {
    fn drop(&mut self) {
        self.0.inner.rebuilding.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readonly_replaces_the_connection_only_behind_sentinels() {
        let readonly =
            redis::parse_redis_value(b"-READONLY You can't write against a read only replica.\r\n")
                .unwrap()
                .extract_error()
                .unwrap_err();
        assert_eq!(
            readonly.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        );
        let make: MakeSentinelClients = Arc::new(|| {
            Ok(vec![redis::sentinel::SentinelClientBuilder::new(
                [redis::ConnectionAddr::Tcp("127.0.0.1".into(), 1)],
                "tas",
                redis::sentinel::SentinelServerType::Master,
            )?
            .build()?])
        });
        let sentinels = Target::Sentinel(Arc::new(
            Sentinels::new(make, Vec::new(), "tas".into()).unwrap(),
        ));
        let node = Target::Node(redis::Client::open("redis://127.0.0.1:1/").unwrap());
        assert!(must_reconnect(&sentinels, &readonly));
        assert!(!must_reconnect(&node, &readonly));
        let other = redis::parse_redis_value(b"-ERR wrong number of arguments\r\n")
            .unwrap()
            .extract_error()
            .unwrap_err();
        assert!(!must_reconnect(&sentinels, &other));
        let reset = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(must_reconnect(&sentinels, &reset) && must_reconnect(&node, &reset));
    }
}
