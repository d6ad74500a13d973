//! The Redis pub/sub bus of [`CachedStore::with_redis_bus`](super::CachedStore::with_redis_bus):
//! each instance publishes the revocations made through it, and drops what the others publish.
//!
//! The subscription is checked with a `PING` every [`CHECK_EVERY`]: a connection cut off
//! without a reset (a load balancer's idle timeout, a network partition) looks alive and hears
//! nothing, and the instance would serve what the others revoke until each entry's TTL, with
//! nothing logged. A subscription that ends or does not answer is made again, and the cache is
//! dropped once it is (what was published meanwhile is lost).

#[cfg(feature = "redis")]
use std::sync::{Arc, PoisonError, Weak};
#[cfg(feature = "redis")]
use std::time::Duration;

use super::Core;
#[cfg(feature = "redis")]
use crate::error::StoreError;

/// How often the subscription must answer a `PING`.
#[cfg(feature = "redis")]
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long connecting, subscribing and a `PING` may take.
#[cfg(feature = "redis")]
const WAIT: Duration = Duration::from_secs(2);

/// Without the `redis` feature there is no bus.
#[cfg(not(feature = "redis"))]
#[derive(Clone)]
pub(super) struct Bus;

/// The Redis pub/sub channel invalidations travel on.
#[cfg(feature = "redis")]
#[derive(Clone)]
pub(super) struct Bus {
    publisher: crate::store::redis::link::Link,
    channel: Arc<str>,
}

#[cfg(feature = "redis")]
impl Bus {
    /// Connects the publisher, subscribes (before returning, so nothing published after this
    /// call is missed) and starts the subscriber task, which applies what it hears to `core`
    /// and counts it in `applied`, until `core` is dropped (with the cache's last clone, those
    /// made before the bus included).
    pub(super) async fn connect(
        core: &Arc<Core>,
        applied: Arc<tokio::sync::watch::Sender<u64>>,
        url: &str,
        channel: &str,
    ) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::backend("bus", e))?;
        let publisher = crate::store::redis::link::Link::connect(
            crate::store::redis::link::Target::Node(client.clone()),
            WAIT,
        )
        .await
        .map_err(|e| StoreError::backend("bus", e))?;
        let channel: Arc<str> = channel.into();
        let first = subscribe(&client, &channel)
            .await
            .map_err(|e| StoreError::backend("bus", e))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        core.bus_stops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(stop);
        let work = listen(
            client,
            Arc::clone(&channel),
            first,
            Arc::downgrade(core),
            applied,
        );
        // The subscriber stops with the cache, even on a quiet channel.
        tokio::spawn(async move {
            futures_util::future::select(std::pin::pin!(work), stopped).await;
        });
        Ok(Self { publisher, channel })
    }

    /// Publishes `message` to the other instances (logged when it cannot be).
    pub(super) async fn publish(&self, message: &str) {
        let sent: Result<i64, _> = self
            .publisher
            .run(|mut conn| async move {
                redis::cmd("PUBLISH")
                    .arg(&*self.channel)
                    .arg(message)
                    .query_async(&mut conn)
                    .await
            })
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, "could not publish a session invalidation; other instances may serve it until their cache TTL");
        }
    }
}

#[cfg(not(feature = "redis"))]
impl Bus {
    #[allow(clippy::unused_async)]
    pub(super) async fn publish(&self, _message: &str) {}
}

/// A subscription to `channel`, within [`WAIT`].
#[cfg(feature = "redis")]
async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> Result<redis::aio::PubSub, redis::RedisError> {
    let timed_out = || redis::RedisError::from((redis::ErrorKind::Io, "timed out"));
    tokio::time::timeout(WAIT, async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    })
    .await
    .unwrap_or_else(|_| Err(timed_out()))
}

/// The subscriber: applies what it hears until the subscription ends or stops answering,
/// subscribes again, and drops the cache once it has. Returns when the cache is gone.
#[cfg(feature = "redis")]
async fn listen(
    client: redis::Client,
    channel: Arc<str>,
    first: redis::aio::PubSub,
    core: Weak<Core>,
    applied: Arc<tokio::sync::watch::Sender<u64>>,
) {
    use futures_util::future::{select, Either};
    use futures_util::StreamExt as _;

    let mut pubsub = Some(first);
    loop {
        let current = match pubsub.take() {
            Some(p) => p,
            None => match subscribe(&client, &channel).await {
                Ok(p) => {
                    // Whatever was published while this instance was not subscribed is lost,
                    // and what it cached meanwhile may be stale: dropped now that nothing more
                    // is missed.
                    let Some(core) = core.upgrade() else { return };
                    tracing::info!("session cache bus subscribed again; dropped the cache");
                    core.invalidate_all();
                    p
                }
                Err(_) => {
                    if core.strong_count() == 0 {
                        return;
                    }
                    tokio::time::sleep(CHECK_EVERY / 2).await;
                    continue;
                }
            },
        };
        let (mut sink, mut messages) = current.split();
        let mut check =
            tokio::time::interval_at(tokio::time::Instant::now() + CHECK_EVERY, CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let why = loop {
            match select(messages.next(), std::pin::pin!(check.tick())).await {
                Either::Left((Some(message), _)) => {
                    let Some(core) = core.upgrade() else { return };
                    if let Ok(payload) = message.get_payload::<String>() {
                        apply(&core, &payload);
                        applied.send_modify(|n| *n += 1);
                    }
                }
                Either::Left((None, _)) => break "disconnected",
                Either::Right(_) => {
                    if core.strong_count() == 0 {
                        return;
                    }
                    let answer = tokio::time::timeout(WAIT, sink.ping::<redis::Value>()).await;
                    if !matches!(answer, Ok(Ok(_))) {
                        break "stopped answering";
                    }
                }
            }
        };
        let Some(core) = core.upgrade() else { return };
        tracing::warn!("session cache bus {why}; subscribing again (entries expire within the cache TTL meanwhile)");
        // Anything missed until now may be stale for at most the TTL; dropped to shorten that.
        core.invalidate_all();
    }
}

/// Applies one invalidation message: `t:<token>` or `u:<user id>`.
pub(super) fn apply(core: &Core, payload: &str) {
    if let Some(token) = payload.strip_prefix("t:") {
        core.invalidate(token);
    } else if let Some(user_id) = payload.strip_prefix("u:") {
        core.invalidate_user(user_id);
    }
}
