//! Redis: keyspace notifications on the session keys.
//!
//! Better Auth deletes `{token}` on sign-out and revocation, and rewrites it on a refresh or a
//! user update; a revoke-all also sets `revoked-sessions-before-{userId}`. With
//! `notify-keyspace-events` holding `K` (keyspace channels) and the classes `g` (generic:
//! `DEL`, `RENAME`, `EXPIRE`), `$` (string: `SET`) and `x` (expiry), the server publishes each
//! of those on `__keyspace@{db}__:{key}`; the feed subscribes to the pattern for the store's
//! prefix and drops the token (or the user's sessions) from the cache.
//!
//! Notifications are per node and never cross a cluster's nodes, so a feed needs one node:
//! [`RedisChangesBuilder::start`] refuses a Redis Cluster store (use the Redis bus and a short
//! `ttl` there).

use std::time::Duration;

use futures_util::StreamExt as _;

use super::{cannot, Change, SessionChanges, Sink};
use crate::error::StoreError;
use crate::store::RedisStore;

/// The flags the feed needs in `notify-keyspace-events`.
const NEEDED: [char; 4] = ['K', 'g', '$', 'x'];

/// How long the start-up probe waits for its own notification.
const PROBE_WAIT: Duration = Duration::from_secs(3);

/// Watches a [`RedisStore`]'s session keys with keyspace notifications (features `redis` and
/// `cache`): made by [`RedisStore::session_changes`].
///
/// At start it reads `notify-keyspace-events` (`CONFIG GET`) and, when `K`, `g`, `$` or `x` is
/// missing, adds them (`CONFIG SET`, unless [`configure_server(false)`](Self::configure_server)):
/// managed services that forbid `CONFIG` need the setting in their parameter group instead.
/// Then it subscribes, writes a short-lived probe key through the store and waits for its
/// notification, which proves that the subscription hears the store's server and database.
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
    /// # Errors
    ///
    /// [`StoreError::Connect`], saying what to do, for a cluster store, when
    /// `notify-keyspace-events` lacks a flag and cannot be changed, or when the probe's
    /// notification does not arrive (the URL reaches another server or database than the
    /// store); a backend error when Redis cannot be reached.
    pub async fn start(self) -> Result<SessionChanges, StoreError> {
        if self.store.is_cluster() {
            return Err(cannot(
                "Redis keyspace notifications are per node and a cluster's never reach a \
                 single subscriber, so session changes cannot be watched on a Redis Cluster",
                "on a cluster, rely on the Redis bus (CachedStore::with_redis_bus) for \
                 revocations made through this crate and keep the cache ttl short for Better \
                 Auth's own",
                None,
            ));
        }
        self.ensure_flags().await?;
        let client = match self.root_cert.clone() {
            Some(pem) => redis::Client::build_with_tls(
                self.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            ),
            None => redis::Client::open(self.url.as_str()),
        }
        .map_err(|e| StoreError::backend("watch session changes", e))?;
        let db = client.get_connection_info().redis_settings().db();
        let prefix = self.store.key_prefix().to_owned();
        let channel_prefix = format!("__keyspace@{db}__:{prefix}");
        let pattern = format!("{}*", escape_glob(&channel_prefix));
        let mut messages = subscribe(&client, &pattern)
            .await
            .map_err(|e| StoreError::backend("watch session changes", e))?;
        self.probe(&mut messages, &channel_prefix, db).await?;
        Ok(SessionChanges::spawn(
            "Redis keyspace notifications",
            move |sink| run(client, pattern, channel_prefix, messages, sink),
        ))
    }

    /// Makes sure `notify-keyspace-events` holds every flag in [`NEEDED`].
    async fn ensure_flags(&self) -> Result<(), StoreError> {
        const SETTING: &str = "notify-keyspace-events";
        let fix = format!(
            "set {SETTING} to include K, g, $ and x (for example \"Kg$x\") in the Redis \
             server's configuration (on a managed service, its parameter group)"
        );
        let current: Result<std::collections::HashMap<String, String>, _> = self
            .store
            .command(redis::cmd("CONFIG").arg("GET").arg(SETTING))
            .await;
        let current = match current {
            Ok(map) => map.get(SETTING).cloned().unwrap_or_default(),
            Err(error) => {
                // Managed services often rename or forbid CONFIG: the probe in `start` tells
                // whether notifications arrive, and its error names the setting.
                tracing::debug!(%error, "CONFIG GET {SETTING} refused; relying on the probe");
                return Ok(());
            }
        };
        let missing = missing_flags(&current);
        if missing.is_empty() {
            return Ok(());
        }
        if !self.configure {
            return Err(cannot(
                format!("{SETTING} is {current:?}, without {missing}"),
                fix,
                None,
            ));
        }
        let wanted = format!("{current}{missing}");
        let set: Result<redis::Value, _> = self
            .store
            .command(redis::cmd("CONFIG").arg("SET").arg(SETTING).arg(&wanted))
            .await;
        match set {
            Ok(_) => {
                tracing::info!(setting = SETTING, value = %wanted, "enabled Redis keyspace notifications for the session change feed");
                Ok(())
            }
            Err(e) => Err(cannot(
                format!("{SETTING} is {current:?}, without {missing}, and CONFIG SET was refused"),
                fix,
                Some(Box::new(e)),
            )),
        }
    }

    /// Writes a probe key through the store and waits for its notification.
    async fn probe(
        &self,
        messages: &mut redis::aio::PubSubStream,
        channel_prefix: &str,
        db: i64,
    ) -> Result<(), StoreError> {
        let suffix = format!("tas-session-changes-probe-{}", crate::ids::generate_id(16));
        let key = format!("{}{suffix}", self.store.key_prefix());
        let _: redis::Value = self
            .store
            .command(redis::cmd("SET").arg(&key).arg("1").arg("PX").arg(10_000))
            .await?;
        let expected = format!("{channel_prefix}{suffix}");
        let heard = tokio::time::timeout(PROBE_WAIT, async {
            while let Some(message) = messages.next().await {
                if message.get_channel_name() == expected {
                    return true;
                }
            }
            false
        })
        .await;
        let _: Result<redis::Value, _> = self.store.command(redis::cmd("DEL").arg(&key)).await;
        if heard == Ok(true) {
            return Ok(());
        }
        Err(cannot(
            format!(
                "subscribed to Redis keyspace notifications of database {db}, but a key written \
                 through the store was not reported within {} s",
                PROBE_WAIT.as_secs()
            ),
            "give session_changes() the URL the store connects to (same server and database \
             number), and check that notify-keyspace-events includes K, g, $ and x",
            None,
        ))
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

async fn subscribe(
    client: &redis::Client,
    pattern: &str,
) -> redis::RedisResult<redis::aio::PubSubStream> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(pattern).await?;
    Ok(pubsub.into_on_message())
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
    Some(Change::Token(suffix))
}

/// Receives notifications until the feed is dropped, resubscribing after a disconnection.
async fn run(
    client: redis::Client,
    pattern: String,
    channel_prefix: String,
    mut messages: redis::aio::PubSubStream,
    sink: Sink,
) {
    loop {
        while let Some(message) = messages.next().await {
            let event: String = message.get_payload().unwrap_or_default();
            if let Some(change) = change_of(message.get_channel_name(), &channel_prefix, &event) {
                if !sink.send(change) {
                    return;
                }
            }
        }
        tracing::warn!("session change feed: the Redis subscription was lost; resubscribing (cached sessions may be served until the cache TTL meanwhile)");
        let mut backoff = Duration::from_millis(200);
        messages = loop {
            if !sink.alive() {
                return;
            }
            match subscribe(&client, &pattern).await {
                Ok(stream) => break stream,
                Err(error) => {
                    tracing::debug!(%error, "session change feed: cannot subscribe yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        // Notifications published meanwhile are lost.
        if !sink.send(Change::All) {
            return;
        }
    }
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
    }
}
