//! Change feeds: how a [`CachedStore`](super::CachedStore) learns that the Better Auth server
//! deleted, revoked or refreshed a session, so it stops serving it within about a second.
//!
//! Revocations made through this crate invalidate the cache by themselves (and, with the Redis
//! bus, on every instance). Better Auth's own sign-outs and revocations never pass through
//! this crate: without a feed, a cached session stays valid for the cache's `ttl` after the
//! user signed out in the Node app. A feed watches the database or Redis instead:
//!
//! | store | mechanism | delay | needs |
//! |---|---|---|---|
//! | `PostgresStore` | a trigger `AFTER DELETE OR UPDATE` on the session table calls `pg_notify(channel, …)` with the token's fingerprint, `'#'` and its SHA-256 in hexadecimal (any role may `LISTEN`; the cache finds the token by it) (on the user table, `pg_notify(channel_users, OLD.id)`); the feed `LISTEN`s on a connection of its own | one round trip | the trigger (once; [`PostgresChangesBuilder::create_trigger`]); a direct connection (`LISTEN` does not work through PgBouncer in transaction mode) |
//! | `SqliteStore`, `MySqlStore` | triggers write deleted and updated tokens into a small change table, polled by id every 200 ms and pruned as it ages | ≤ the poll interval | the table and triggers (once; `create_trigger(true)`) |
//! | `RedisStore` | keyspace notifications (`notify-keyspace-events` with `K`, `g`, `$`, `x`) on the session keys | one round trip | the setting (set at start when the server allows `CONFIG SET`); on a Redis Cluster, one subscription per master, following failovers (masters read again every second) |
//!
//! Schema changes are opt-in and idempotent: nothing is created unless `create_trigger(true)`
//! is given, and creating again is harmless (also by several instances starting at once). The
//! triggers only add a row or a notification to Better Auth's own writes; they never fail them
//! while their table exists (the PostgreSQL feed needs PostgreSQL 11 or later, for
//! `sha256()`, and refuses to start on an older server). Each builder's `ddl()` gives the statements for a migration tool
//! instead. A migration tool that does not know the change table may drop it (then the
//! SQLite and MySQL triggers fail every session update and delete and every user update,
//! Better Auth's included) or
//! rebuild the session or user table without the triggers (then the feed hears nothing): the
//! polling feeds check for both, at once when a read fails and every quarter of the retention,
//! and the PostgreSQL feed checks that its triggers are there and enabled every minute
//! ([`PostgresChangesBuilder::check_triggers_every`]); each recreates what is missing when
//! `create_trigger(true)` was given, or logs an error saying what is broken. A disabled
//! PostgreSQL trigger is only named, never enabled (whoever disabled it will). Whenever a feed
//! finds again what it saw missing or disabled, whoever put it back (itself, another instance,
//! an operator), it drops every cached session: changes were missed meanwhile. A SQLite or
//! MySQL feed that recreated a trigger also writes a row to the change table that makes every
//! instance's feed drop its cache, including those whose own check did not run meanwhile. A
//! polling feed counts a trigger only on the table it belongs on: after a migration swapped in
//! a rebuilt table and kept the old one (which took the triggers with it), it moves them.
//! Otherwise an outage shorter than the check interval goes unseen. Tell the migration tool
//! to leave the `tas_session_changes` objects alone.
//!
//! A change to a user's row alone (Better Auth's admin `setRole`, a new name or e-mail) drops
//! that user's cached sessions too: on PostgreSQL, SQLite and MySQL a trigger on the user
//! table reports it (on the channel `{name}_users`, or as a change-table row holding the id
//! after a `\x01`); on Redis, Better Auth rewrites each session value, which holds the user.
//! A database set up by an earlier version's `ddl()` lacks that trigger: the feed starts and
//! warns. What the feeds do not report, and so is served for at most the cache's `ttl`:
//! `TRUNCATE` on MySQL (no trigger fires; on PostgreSQL a statement-level trigger drops every
//! cached session); Redis `FLUSHALL`/`FLUSHDB` (no key event); Redis evictions under
//! `maxmemory`. With `RedisStore::in_front_of`, Better Auth deletes the Redis key before the
//! row: watch the database's feed too, or a read in between caches the row again.
//!
//! A feed that loses its connection reconnects by itself and then drops every cached entry,
//! since changes may have been missed meanwhile. While it cannot reconnect, the staleness
//! bound is the cache's `ttl`. Expiry needs no feed: the layer rejects expired sessions on
//! every request from the cached `expiresAt`.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tower_auth_session::store::CachedStore;
//! use tower_auth_session::SqliteStore;
//!
//! let store = SqliteStore::connect("sqlite://app.db").await?;
//! let changes = store.session_changes().create_trigger(true).start().await?;
//! let cached = CachedStore::builder(store).watch(changes).build();
//! # let _ = cached; Ok(()) }
//! ```

// Which parts a build uses depends on which stores it has.
#![cfg_attr(
    not(all(
        feature = "postgres",
        feature = "sqlite",
        feature = "mysql",
        feature = "redis"
    )),
    allow(dead_code)
)]

use std::future::Future;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{oneshot, watch};

use crate::error::StoreError;

#[cfg(any(feature = "sqlite", feature = "mysql"))]
mod polled;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "mysql")]
pub use polled::MySqlChangesBuilder;
#[cfg(feature = "sqlite")]
pub use polled::SqliteChangesBuilder;
#[cfg(feature = "postgres")]
pub use postgres::PostgresChangesBuilder;
#[cfg(feature = "redis")]
pub use redis::RedisChangesBuilder;

/// The default name of the change table (SQLite, MySQL), of the trigger and function
/// (PostgreSQL), and of the notification channel (PostgreSQL).
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
pub(crate) const DEFAULT_NAME: &str = "tas_session_changes";

/// What a feed reports.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Change<'a> {
    /// The session stored under this key was deleted or rewritten.
    Token(&'a str),
    /// The session stored under the key with this fingerprint (the SHA-256 of the key, in
    /// hexadecimal: at least its first 32 digits) was deleted or rewritten. Sent by a feed
    /// whose messages others may read ([`SessionChanges::reports_fingerprints`]).
    Fingerprint(&'a str),
    /// Every session of this user was revoked.
    User(&'a str),
    /// The rows of these users changed (a new role or name): their sessions are read again.
    /// Sent once per batch, as dropping them scans the whole cache.
    Users(&'a [String]),
    /// Changes may have been missed (a reconnect): drop everything.
    All,
}

/// What a feed invalidates: a cache.
pub(crate) trait Target: Send + Sync {
    fn apply(&self, change: &Change<'_>);
}

/// A running change feed of one store, to give to [`CachedStoreBuilder::watch`]. Cloning
/// shares the feed; it stops when the last clone and the last cache watching it are dropped.
///
/// Made by the stores' `session_changes()` builders: [`PostgresChangesBuilder`],
/// [`SqliteChangesBuilder`], [`MySqlChangesBuilder`], [`RedisChangesBuilder`] (each with its
/// feature). One feed can serve several caches.
///
/// [`CachedStoreBuilder::watch`]: super::CachedStoreBuilder::watch
#[derive(Clone)]
pub struct SessionChanges {
    feed: Arc<Feed>,
}

struct Feed {
    source: &'static str,
    /// Reports [`Change::Fingerprint`]s.
    fingerprints: bool,
    targets: Mutex<Vec<Weak<dyn Target>>>,
    applied: watch::Sender<u64>,
    /// Dropped with the feed, which ends its task.
    _stop: oneshot::Sender<()>,
}

impl std::fmt::Debug for SessionChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionChanges")
            .field("source", &self.feed.source)
            .field("applied", &*self.feed.applied.borrow())
            .finish()
    }
}

impl SessionChanges {
    /// Where the changes come from, for logs: `"PostgreSQL LISTEN"`, `"SQLite change table"`,
    /// `"MySQL change table"` or `"Redis keyspace notifications"`.
    pub fn source(&self) -> &'static str {
        self.feed.source
    }

    /// A counter of the changes the feed has applied (each changed token, each revoked user,
    /// each "drop everything" after a reconnect), for tests and dashboards.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.feed.applied.subscribe()
    }

    /// Whether the feed reports sessions by fingerprint ([`Change::Fingerprint`]): a cache
    /// watching it records its tokens' fingerprints.
    pub(crate) fn reports_fingerprints(&self) -> bool {
        self.feed.fingerprints
    }

    /// Registers a cache with the feed.
    pub(crate) fn attach(&self, target: Weak<dyn Target>) {
        let mut targets = self
            .feed
            .targets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        targets.retain(|t| t.strong_count() > 0);
        targets.push(target);
    }

    /// Starts a feed: `run` gets the sink to report changes to and runs in its own task
    /// until the feed is dropped. Needs a Tokio runtime.
    pub(crate) fn spawn<F>(source: &'static str, run: impl FnOnce(Sink) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        Self::spawn_reporting(source, false, run)
    }

    /// [`spawn`](Self::spawn) a feed that reports fingerprints (`fingerprints`) or not.
    pub(crate) fn spawn_reporting<F>(
        source: &'static str,
        fingerprints: bool,
        run: impl FnOnce(Sink) -> F,
    ) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        let feed = Arc::new(Feed {
            source,
            fingerprints,
            targets: Mutex::new(Vec::new()),
            applied: watch::channel(0).0,
            _stop: stop,
        });
        let work = run(Sink {
            feed: Arc::downgrade(&feed),
        });
        tokio::spawn(async move {
            let work = std::pin::pin!(work);
            // Ends when the work ends or the feed is dropped, whichever comes first.
            let _ = futures_util::future::select(work, stopped).await;
        });
        Self { feed }
    }
}

/// Where a feed's task reports changes (clones report to the same feed).
#[derive(Clone)]
pub(crate) struct Sink {
    feed: Weak<Feed>,
}

impl Sink {
    /// Applies `change` to every cache watching the feed. `false` once the feed is gone.
    pub(crate) fn send(&self, change: Change<'_>) -> bool {
        let Some(feed) = self.feed.upgrade() else {
            return false;
        };
        let targets: Vec<Arc<dyn Target>> = feed
            .targets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for target in &targets {
            target.apply(&change);
        }
        feed.applied.send_modify(|n| *n += 1);
        true
    }

    /// Whether the feed is still wanted.
    pub(crate) fn alive(&self) -> bool {
        self.feed.strong_count() > 0
    }
}

/// An error that says why a feed cannot start and what to do.
pub(crate) fn cannot(
    problem: impl Into<String>,
    fix: impl Into<String>,
    source: Option<crate::error::BoxError>,
) -> StoreError {
    StoreError::Connect {
        problem: problem.into(),
        fix: fix.into(),
        source,
    }
}

/// The session table and its token and user-id columns, as quoted identifiers, read back from
/// the SQL store's own statements (`delete from <table> where <token> = …` and
/// `delete from <table> where <userId> = …`), so a feed watches exactly the table the store
/// reads, whatever the schema's names.
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
#[derive(Clone, Debug)]
pub(crate) struct SessionTable {
    /// As statements name it: quoted, after its schema if it has one (`"auth"."session"`).
    pub(crate) table: String,
    /// The table's own name, unquoted and without its schema (`session`): what a database's
    /// catalog says a trigger is on.
    #[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
    pub(crate) name: String,
    pub(crate) token: String,
    /// The quoted schema (`"auth"`) of a table named in one ([`SqlSchema::schema_name`]).
    ///
    /// [`SqlSchema::schema_name`]: crate::store::SqlSchema::schema_name
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) namespace: Option<String>,
}

#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
impl SessionTable {
    /// Reads the names from the store's `delete` statement.
    pub(crate) fn from_delete(delete: &str, quote: char) -> Result<Self, StoreError> {
        let parse = || -> Option<Self> {
            let rest = delete.strip_prefix("delete from ")?;
            let (first, rest) = quoted(rest, quote)?;
            let (table, name, namespace, rest) = match rest.strip_prefix('.') {
                Some(rest) => {
                    let (table, rest) = quoted(rest, quote)?;
                    let name = unquote(table, quote);
                    (
                        format!("{first}.{table}"),
                        name,
                        Some(first.to_owned()),
                        rest,
                    )
                }
                None => (first.to_owned(), unquote(first, quote), None, rest),
            };
            let rest = rest.strip_prefix(" where ")?;
            let (token, _) = quoted(rest, quote)?;
            Some(Self {
                table,
                name,
                token: token.to_owned(),
                namespace,
            })
        };
        parse().ok_or_else(|| {
            cannot(
                format!("cannot read the session table's name from {delete:?}"),
                "this is a bug in tower-auth-session: please report it",
                None,
            )
        })
    }
}

/// The name a quoted identifier (as [`quoted`] splits it off) stands for: without its outer
/// quotes, a doubled quote inside read as one.
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
fn unquote(quoted: &str, quote: char) -> String {
    let inner = quoted
        .strip_prefix(quote)
        .and_then(|s| s.strip_suffix(quote))
        .unwrap_or(quoted);
    inner.replace(&format!("{quote}{quote}"), &quote.to_string())
}

/// Splits a quoted identifier (quotes doubled inside) off the front of `s`.
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
fn quoted(s: &str, quote: char) -> Option<(&str, &str)> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != quote {
        return None;
    }
    let mut escaped = false;
    for (i, c) in chars {
        if escaped {
            if c != quote {
                // The previous quote closed the identifier.
                return Some(s.split_at(i));
            }
            escaped = false;
        } else if c == quote {
            escaped = true;
        }
    }
    escaped.then_some((s, ""))
}

/// Quotes `ident` with `quote`, doubling embedded quotes: the SQL stores' own quoting.
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
pub(crate) use super::sql::quote_with;

/// A string literal for SQL text (single quotes doubled).
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(all(test, any(feature = "sqlite", feature = "mysql", feature = "postgres")))]
mod tests {
    use super::*;

    #[test]
    fn the_session_table_is_read_back_from_the_delete_statement() {
        let t =
            SessionTable::from_delete(r#"delete from "session" where "token" = $1"#, '"').unwrap();
        assert_eq!(
            (t.table.as_str(), t.token.as_str()),
            (r#""session""#, r#""token""#)
        );
        let t =
            SessionTable::from_delete(r#"delete from "my ""odd"" table" where "tok""en" = ?"#, '"')
                .unwrap();
        assert_eq!(t.table, r#""my ""odd"" table""#);
        assert_eq!(t.name, r#"my "odd" table"#);
        assert_eq!(t.token, r#""tok""en""#);
        let t = SessionTable::from_delete("delete from `sessions` where `token` = ?", '`').unwrap();
        assert_eq!(
            (t.table.as_str(), t.token.as_str()),
            ("`sessions`", "`token`")
        );
        assert_eq!(t.name, "sessions");
        let t =
            SessionTable::from_delete(r#"delete from "auth"."session" where "token" = $1"#, '"')
                .unwrap();
        assert_eq!(t.table, r#""auth"."session""#);
        assert_eq!(t.namespace.as_deref(), Some(r#""auth""#));
        assert_eq!(t.name, "session");
        assert_eq!(t.token, r#""token""#);
        assert_eq!(
            SessionTable::from_delete(r#"delete from "a.b" where "t" = $1"#, '"')
                .unwrap()
                .namespace,
            None
        );
        assert!(SessionTable::from_delete("select 1", '"').is_err());
        assert_eq!(quote_with('"', r#"a"b"#), r#""a""b""#);
        assert_eq!(literal("it's"), "'it''s'");
    }
}
