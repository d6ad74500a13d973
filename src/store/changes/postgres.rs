//! PostgreSQL: a trigger that notifies, and a connection that listens.
//!
//! `AFTER DELETE OR UPDATE` on the session table, for each row, the trigger function calls
//! `pg_notify(channel, '#' || encode(sha256(convert_to(OLD.token, 'UTF8')), 'hex'))`: the
//! token's fingerprint, not the token. PostgreSQL checks no privilege on `LISTEN`, so any role
//! that can connect to the database hears the channel; a token there (Better Auth refreshes
//! live sessions) would be a login for it. The cache finds the token by its fingerprint
//! (recorded when it was cached). A trigger function made by an earlier version, which sends
//! the token itself, still works, with a warning to replace it. PostgreSQL delivers
//! notifications when the writing transaction commits, to every connection that ran
//! `LISTEN channel`: each instance keeps one such connection (sqlx's `PgListener`, on a pool of
//! one connection of its own). `sha256()` needs PostgreSQL 11 or later.
//!
//! A cost to know before installing the trigger: PostgreSQL serialises the commits of
//! transactions that notify (a lock taken at commit, across the whole cluster, held through
//! the commit's flush and any synchronous replica's answer). Each session update and delete
//! then commits one at a time with every other notifying transaction in the cluster. With
//! Better Auth's default `updateAge` (a day) that is a few writes per active session per day;
//! with a short `updateAge`, or a synchronous replica far away, measure the write rate first.
//!
//! When the connection drops, the listener reconnects and listens again, then the feed drops
//! every cached entry (notifications sent meanwhile are lost). A connection that goes silent
//! without closing (a network partition) is found by a ping: after 30 s without a message the
//! feed notifies itself and expects to hear it within 5 s, else it reconnects.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::Row as _;

use super::{cannot, literal, quote_with, Change, SessionChanges, SessionTable, Sink};
use crate::error::StoreError;
use crate::store::sql::postgres::Servers;
use crate::store::PostgresStore;

/// Silence after which the feed checks its connection.
const PING_AFTER: Duration = Duration::from_secs(30);
/// How long the check may take.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How long user-row changes gather after the first before they are applied together.
const USER_BATCH_WINDOW: Duration = Duration::from_millis(20);
/// The most user ids applied in one batch.
const USER_BATCH_MAX: usize = 1_000;
/// How often a feed that cannot listen again says so.
const STILL_DOWN_EVERY: Duration = Duration::from_secs(60);
/// How often the triggers are checked by default.
const UPKEEP_EVERY: Duration = Duration::from_secs(60);
/// The longest interval between checks (a longer one would overflow the timer).
const MAX_UPKEEP_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// Watches a [`PostgresStore`]'s session table with a trigger and `LISTEN` (features `postgres`
/// and `cache`): made by [`PostgresStore::session_changes`].
///
/// `LISTEN` needs a session-level connection: through PgBouncer in **transaction** pooling
/// mode (`?pgbouncer=true`, Supabase's and Neon's pooled URLs) notifications are never
/// delivered. For such a store, give a direct URL with [`listen_url`](Self::listen_url);
/// [`start`](Self::start) refuses to listen through the pooler.
#[derive(Debug)]
#[must_use]
pub struct PostgresChangesBuilder {
    store: PostgresStore,
    delete_sql: String,
    delete_user_sql: String,
    name: String,
    create: bool,
    listen_url: Option<String>,
    upkeep_every: Duration,
}

impl PostgresChangesBuilder {
    pub(crate) fn new(store: PostgresStore, delete_sql: &str, delete_user_sql: &str) -> Self {
        Self {
            store,
            delete_sql: delete_sql.to_owned(),
            delete_user_sql: delete_user_sql.to_owned(),
            name: super::DEFAULT_NAME.to_owned(),
            create: false,
            listen_url: None,
            upkeep_every: UPKEEP_EVERY,
        }
    }

    /// How often the running feed checks that its triggers are still in place, enabled, and
    /// notifying fingerprints: a migration that recreates the session table, or an
    /// `ALTER TABLE … DISABLE TRIGGER` for a bulk load, leaves the feed hearing nothing. With
    /// [`create_trigger(true)`](Self::create_trigger) a missing trigger is created again (its
    /// function too, waiting at most half a second for the table's lock) and every cached
    /// session dropped, a missing `TRUNCATE` trigger is created again, and a function an
    /// earlier version put back is replaced; otherwise an error says what is wrong, once each
    /// time it goes wrong. A disabled trigger is only named, never enabled here (whoever
    /// disabled it will). Once a trigger seen missing or disabled fires again, whoever put it
    /// back, every cached session is dropped. Default: 60 s; at most a day.
    pub fn check_triggers_every(mut self, every: Duration) -> Self {
        self.upkeep_every = every.clamp(Duration::from_millis(10), MAX_UPKEEP_EVERY);
        self
    }

    /// Create (or replace) the trigger functions and create the triggers when they are absent.
    /// Needs the right to create functions and triggers on the session table (its owner), and
    /// on the user table for user-row changes (without it the feed starts and warns).
    /// Default: `false`: the session table's must exist (see [`ddl`](Self::ddl)), else
    /// [`start`](Self::start) fails saying so.
    pub fn create_trigger(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// The name of the notification channel, the trigger and its function (user-row changes
    /// use `{name}_users`), at most 57 bytes. Default: `tas_session_changes`.
    pub fn channel(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Listen on a connection to this URL instead of the store's own settings: for a store
    /// that connects through PgBouncer in transaction mode, a URL that reaches PostgreSQL
    /// directly (usually port 5432). It may list several hosts, as libpq takes them
    /// (`postgres://u@db1:5432,db2:5432/app`): the feed listens on the one that is a primary
    /// (or as `target_session_attrs` says), asked again at each reconnection, so it follows a
    /// failover. The TLS settings given to the store's builder
    /// (`ssl_mode`, `tls_root_cert_pem`) apply to it too, and a plaintext connection to
    /// another machine is named in a warning. Default: the store's connection settings.
    pub fn listen_url(mut self, url: impl Into<String>) -> Self {
        self.listen_url = Some(url.into());
        self
    }

    /// The statements [`create_trigger(true)`](Self::create_trigger) runs, for a migration
    /// tool that owns the schema: a function and a trigger on the session table notifying the
    /// channel with each deleted or updated row's token's fingerprint (`#` and the SHA-256 of
    /// the token in hexadecimal), and a function and a trigger on the
    /// user table notifying `{channel}_users` with the user's id (an admin's `setRole`, a new
    /// name: the user's cached sessions are dropped), and a statement-level trigger
    /// `{channel}_trunc` on the session table notifying `*` for a `TRUNCATE` (every cached
    /// session is dropped).
    ///
    /// # Errors
    ///
    /// Only if the store's statements cannot be read (a bug).
    pub fn ddl(&self) -> Result<Vec<String>, StoreError> {
        let [session, user] = self.watched()?;
        Ok(vec![
            session.function(),
            session.trigger(),
            user.function(),
            user.trigger(),
            session.truncate_trigger(),
        ])
    }

    /// What each trigger watches, reports and is named.
    fn watched(&self) -> Result<[Watched; 2], StoreError> {
        let session = SessionTable::from_delete(&self.delete_sql, '"')?;
        let user = SessionTable::from_delete(&self.delete_user_sql, '"')?;
        let users = users_channel(&self.name);
        Ok([
            Watched {
                name: self.name.clone(),
                channel: self.name.clone(),
                table: session.table,
                column: session.token,
                namespace: session.namespace,
                fingerprint: true,
            },
            Watched {
                name: users.clone(),
                channel: users,
                table: user.table,
                column: user.token,
                namespace: user.namespace,
                fingerprint: false,
            },
        ])
    }

    /// Creates or checks the triggers, and starts listening (in a task of its own, on the
    /// current Tokio runtime). Give the result to
    /// [`CachedStoreBuilder::watch`](crate::store::CachedStoreBuilder::watch).
    ///
    /// The user table's trigger came later than the session table's: a database where only
    /// the session table's exists (made by an earlier version's `ddl()`) still starts, with
    /// one warning that user-row changes are served until the cache TTL.
    ///
    /// # Errors
    ///
    /// [`StoreError::Connect`] when the store connects through PgBouncer in transaction mode
    /// and no [`listen_url`](Self::listen_url) is given (or it has `pgbouncer=true` too), or
    /// when the session table's trigger is missing (without `create_trigger(true)`) or a
    /// trigger cannot be created, saying what to do; a backend error when the database cannot
    /// be reached.
    pub async fn start(self) -> Result<SessionChanges, StoreError> {
        let [session, user] = self.watched()?;
        // Subscribed before reading where the store connects: a move from now on is seen.
        // With `listen_url` the feed listens elsewhere and does not follow the store.
        let follow = self
            .listen_url
            .is_none()
            .then(|| (self.store.clone(), self.store.moved()));
        let (options, servers) = self.listen_options().await?;
        let pool = self.store.pool();
        if self.name.len() > MAX_NAME {
            return Err(cannot(
                format!(
                    "the channel name {:?} is longer than {MAX_NAME} bytes: PostgreSQL cuts \
                     identifiers at 63, and `{}` (user-row changes) would not fit",
                    self.name,
                    users_channel(&self.name)
                ),
                "give session_changes().channel(…) a shorter name",
                None,
            ));
        }
        check_version(&pool).await?;
        if self.create {
            session.create(&pool).await?;
            // The user table's trigger is optional (the warning below says what is lost):
            // a role allowed on the session table only still starts.
            if let Err(error) = user.create(&pool).await {
                tracing::debug!(%error, "could not create the user table's change trigger");
            }
        }
        let session_state = session.state(&pool).await?;
        match session_state {
            Trigger::Enabled => {}
            Trigger::Outdated => tracing::warn!(
                trigger = %self.name,
                "the session change trigger's function notifies session tokens, which any \
                 database role may LISTEN to: replace it with create_trigger(true) or the \
                 statements from .ddl() (they notify fingerprints)"
            ),
            // Someone disabled it (a bulk load, say) and will enable it again: start, deaf
            // meanwhile; the upkeep names it, and drops the cache once it fires again.
            Trigger::Disabled => tracing::warn!(
                trigger = %self.name,
                table = %session.table,
                "the session change trigger is disabled: changes Better Auth makes are served \
                 from the cache until its TTL until it is enabled again"
            ),
            Trigger::Missing => {
                return Err(cannot(
                    format!(
                        "no trigger {:?} on table {} reports session changes",
                        self.name, session.table
                    ),
                    "call PostgresStore::session_changes().create_trigger(true) once (as the \
                     table's owner), or run the statements from .ddl()",
                    None,
                ))
            }
        }
        let user_state = user.state(&pool).await?;
        let user_watched = user_state != Trigger::Missing;
        if !user_watched {
            tracing::warn!(
                trigger = %user.name,
                table = %user.table,
                "no trigger reports changes to user rows: a user's new role or name is served \
                 from the cache until its TTL; create it with create_trigger(true) or the \
                 statements from .ddl()"
            );
        }
        if !session.truncate_exists(&pool).await? {
            tracing::warn!(
                trigger = %session.truncate_name(),
                table = %session.table,
                "no trigger reports a TRUNCATE of the session table: truncated sessions are \
                 served from the cache until its TTL; create it with create_trigger(true) or \
                 the statements from .ddl()"
            );
        }
        let listener = listen(&options, &self.name).await?;
        let channel = self.name;
        let (watched, initial) = if user_watched {
            (vec![session, user], vec![session_state, user_state])
        } else {
            (vec![session], vec![session_state])
        };
        let upkeep = Upkeep {
            store: self.store.clone(),
            watched,
            create: self.create,
            every: self.upkeep_every,
        };
        Ok(SessionChanges::spawn_reporting(
            "PostgreSQL LISTEN",
            true,
            move |sink| {
                // One future: dropping the feed ends both at once.
                let upkeep = upkeep.run(sink.clone(), initial);
                let listen = run(listener, options, follow, servers, channel, sink);
                async move {
                    let (upkeep, listen) = (std::pin::pin!(upkeep), std::pin::pin!(listen));
                    futures_util::future::select(upkeep, listen).await;
                }
            },
        ))
    }

    /// Where to listen: `listen_url` (and its servers, asked again at each reconnection when
    /// it lists several), else the store's own connection settings; never through PgBouncer
    /// in transaction mode.
    async fn listen_options(&self) -> Result<(PgConnectOptions, Option<Servers>), StoreError> {
        const FIX: &str = "give session_changes() a URL that reaches PostgreSQL directly \
                           (without the pooler, usually port 5432) with .listen_url(…); the \
                           trigger itself is installed through the store";
        match &self.listen_url {
            Some(url) => {
                // As the store reads its own URL, with the TLS settings given to its builder:
                // `sslmode=require` with a root certificate verifies the chain.
                let (servers, pooled) = Servers::of(url, &self.store).await?;
                if pooled {
                    return Err(cannot(
                        "the listen URL has pgbouncer=true: LISTEN does not work through \
                         PgBouncer in transaction pooling mode (notifications would never arrive)",
                        FIX,
                        None,
                    ));
                }
                Ok((servers.choose().await?, Some(servers)))
            }
            None if self.store.is_pgbouncer() => Err(cannot(
                "the store connects through PgBouncer in transaction pooling mode \
                 (pgbouncer=true), where LISTEN does not work: notifications would never arrive",
                FIX,
                None,
            )),
            None => Ok((self.store.pool().connect_options().as_ref().clone(), None)),
        }
    }
}

/// A listener on a pool of one connection of its own (a new pool each time, so a connection
/// that went silent is never handed out again).
async fn listen(options: &PgConnectOptions, channel: &str) -> Result<PgListener, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await.map_err(feed_error)?;
    // The pool is the listener's own: nobody closes it.
    listener.ignore_pool_close_event(true);
    // A lost connection is reported at once rather than re-established on the same server:
    // `run` reconnects, to where the store connects now when it follows the store.
    listener.eager_reconnect(false);
    listener
        .listen_all([channel, users_channel(channel).as_str()])
        .await
        .map_err(feed_error)?;
    Ok(listener)
}

/// The longest channel name whose users channel (`{name}_users`) PostgreSQL keeps whole.
const MAX_NAME: usize = 63 - "_users".len();

/// The channel user-row changes are notified on.
fn users_channel(name: &str) -> String {
    format!("{name}_users")
}

/// One trigger: on `table`, after a delete or update, notify `channel` with `OLD.column`. The
/// function and the trigger are both called `name`.
struct Watched {
    name: String,
    channel: String,
    table: String,
    column: String,
    /// The table's schema, quoted, where it names one: the function goes there too (a role
    /// may create objects in its schema and not in `public`, as PostgreSQL 15 has it).
    namespace: Option<String>,
    /// Notify the column's fingerprint (the session token), not its value (a user id).
    fingerprint: bool,
}

impl Watched {
    /// The trigger function's name as statements give it.
    fn qualified_function(&self) -> String {
        let function = quote_with('"', &self.name);
        match &self.namespace {
            Some(namespace) => format!("{namespace}.{function}"),
            None => function,
        }
    }

    /// The trigger function. The session table's reports a row's fingerprint, and `*` for a
    /// `TRUNCATE` (its statement-level trigger, [`truncate_trigger`](Self::truncate_trigger)).
    fn function(&self) -> String {
        let channel = literal(&self.channel);
        let column = format!("OLD.{}::text", self.column);
        let body = if self.fingerprint {
            format!(
                "if TG_OP = 'TRUNCATE' then perform pg_notify({channel}, '{EVERYTHING}'); \
                 else perform pg_notify({channel}, '{FINGERPRINT}' || \
                 encode(sha256(convert_to({column}, 'UTF8')), 'hex')); end if;"
            )
        } else {
            format!("perform pg_notify({channel}, {column});")
        };
        format!(
            "create or replace function {function}() returns trigger language plpgsql as \
             $tas$ begin {body} return null; end $tas$",
            function = self.qualified_function(),
        )
    }

    /// The name of the session table's `TRUNCATE` trigger: `{name}_trunc` (as long as
    /// `_users`, so that it fits wherever the name does).
    fn truncate_name(&self) -> String {
        format!("{}_trunc", self.name)
    }

    /// The session table's statement-level trigger: a `TRUNCATE` (of the table, or cascaded
    /// from the user table's) fires no row trigger, and drops every cached session.
    fn truncate_trigger(&self) -> String {
        format!(
            "create trigger {trigger} after truncate on {table} for each statement \
             execute function {function}()",
            trigger = quote_with('"', &self.truncate_name()),
            function = self.qualified_function(),
            table = self.table,
        )
    }

    // `create trigger` has no `if not exists`: `create` runs it only when the trigger is
    // missing (`create or replace trigger` needs PostgreSQL 14).
    fn trigger(&self) -> String {
        format!(
            "create trigger {trigger} after delete or update on {table} for each row \
             execute function {function}()",
            trigger = quote_with('"', &self.name),
            function = self.qualified_function(),
            table = self.table,
        )
    }

    /// Whether the trigger is there. Simple-protocol statements only, here and in `create`:
    /// they also work through PgBouncer in transaction mode, where the store may connect.
    async fn exists(&self, pool: &sqlx::PgPool) -> Result<bool, StoreError> {
        self.trigger_exists(pool, &self.name).await
    }

    /// Whether the trigger `name` is on the table.
    async fn trigger_exists(&self, pool: &sqlx::PgPool, name: &str) -> Result<bool, StoreError> {
        let check = format!(
            "select exists (select 1 from pg_trigger where tgname = {} and tgrelid = to_regclass({}))",
            literal(name),
            literal(&self.table)
        );
        let row = sqlx::raw_sql(&check)
            .fetch_one(pool)
            .await
            .map_err(feed_error)?;
        row.try_get::<bool, _>(0).map_err(feed_error)
    }

    /// Creates (or replaces) the function, and the trigger if it is missing. Instances started
    /// together race here (`tuple concurrently updated` on the function, `trigger already
    /// exists`): one that lost finds the trigger the winner created, or tries again.
    async fn create(&self, pool: &sqlx::PgPool) -> Result<(), StoreError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let made = match sqlx::raw_sql(&self.function()).execute(pool).await {
                Ok(_) if self.exists(pool).await? => Ok(()),
                Ok(_) => sqlx::raw_sql(&self.trigger())
                    .execute(pool)
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            match made {
                Ok(()) => return self.create_truncate(pool).await,
                Err(_) if self.exists(pool).await? => return self.create_truncate(pool).await,
                Err(e) if attempts >= 3 => {
                    return Err(cannot(
                        format!("cannot create the change trigger on {}", self.table),
                        "connect as the table's owner (or a role allowed to create functions \
                         and triggers), or have an administrator run the statements from .ddl()",
                        Some(Box::new(e)),
                    ))
                }
                Err(_) => {}
            }
        }
    }
}

/// What starts a fingerprint on the session channel (a token never does: Better Auth's are
/// alphanumeric, and hashed ones hexadecimal).
const FINGERPRINT: char = '#';

/// Whether a trigger fires on an ordinary session's writes, and as this version needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    Enabled,
    Missing,
    /// Disabled, or enabled only for replication sessions (`tgenabled` `D` or `R`).
    Disabled,
    /// Enabled, with the function an earlier version made, which notifies session tokens (an
    /// earlier version's instance with `create_trigger(true)` may have put it back).
    Outdated,
}

impl Watched {
    /// The trigger's state. A trigger enabled only in replica mode does not fire for Better
    /// Auth's writes either.
    async fn state(&self, pool: &sqlx::PgPool) -> Result<Trigger, StoreError> {
        let check = format!(
            "select t.tgenabled::text, p.prosrc from pg_trigger t join pg_proc p on p.oid = \
             t.tgfoid where t.tgname = {} and t.tgrelid = to_regclass({})",
            literal(&self.name),
            literal(&self.table)
        );
        let rows = sqlx::raw_sql(&check)
            .fetch_all(pool)
            .await
            .map_err(feed_error)?;
        let Some(row) = rows.first() else {
            return Ok(Trigger::Missing);
        };
        let read = |i| -> Result<String, StoreError> { row.try_get(i).map_err(feed_error) };
        Ok(match read(0)?.as_str() {
            "O" | "A" if self.fingerprint && !read(1)?.contains("sha256") => Trigger::Outdated,
            "O" | "A" => Trigger::Enabled,
            _ => Trigger::Disabled,
        })
    }

    /// Makes a trigger that is missing or outdated fire as this version needs: creates it and
    /// its function in one transaction that waits at most half a second for the table's lock
    /// (creating a trigger conflicts with every write of the table: a session write must not
    /// queue behind it for long), or replaces the function (no lock on the table). A disabled
    /// trigger is left alone: whoever disabled it (for a bulk load, say) enables it again.
    async fn restore(&self, pool: &sqlx::PgPool, state: Trigger) -> Result<(), StoreError> {
        match state {
            Trigger::Enabled | Trigger::Disabled => Ok(()),
            Trigger::Missing => {
                let statements = format!("{}; {}", self.function(), self.trigger());
                briefly(pool, &statements).await
            }
            // Replacing the function locks no table.
            Trigger::Outdated => in_time(pool, &self.function()).await,
        }
    }

    /// Creates the session table's `TRUNCATE` trigger if it is missing (the user table has
    /// none). Optional: without it (a role that may not create it, a lost race) a `TRUNCATE`
    /// is served until the cache TTL, as before it existed.
    async fn create_truncate(&self, pool: &sqlx::PgPool) -> Result<(), StoreError> {
        if !self.truncate_exists(pool).await? {
            self.add_truncate(pool).await;
        }
        Ok(())
    }

    /// Creates the session table's `TRUNCATE` trigger, known to be missing; a failure is
    /// logged at debug (see [`create_truncate`](Self::create_truncate)).
    async fn add_truncate(&self, pool: &sqlx::PgPool) {
        if let Err(error) = briefly(pool, &self.truncate_trigger()).await {
            tracing::debug!(%error, "could not create the session table's TRUNCATE trigger");
        }
    }

    /// Whether the session table's `TRUNCATE` trigger is there (always, for the user table's
    /// trigger, which has none).
    async fn truncate_exists(&self, pool: &sqlx::PgPool) -> Result<bool, StoreError> {
        if !self.fingerprint {
            return Ok(true);
        }
        self.trigger_exists(pool, &self.truncate_name()).await
    }
}

/// A driver error of the feed's own statements.
fn feed_error(error: sqlx::Error) -> StoreError {
    StoreError::backend("watch session changes", error)
}

/// [`in_time`], waiting at most half a second for a table's lock: creating a trigger conflicts
/// with every write of the table, and a session write must not queue behind it for long.
async fn briefly(pool: &sqlx::PgPool, statements: &str) -> Result<(), StoreError> {
    in_time(pool, &format!("set local lock_timeout = 500; {statements}")).await
}

/// Runs `statements` (DDL) as one simple query, so one implicit transaction (an error rolls
/// it all back and leaves the connection clean, where an explicit `begin` would leave it
/// aborted), within [`PING_TIMEOUT`].
async fn in_time(pool: &sqlx::PgPool, statements: &str) -> Result<(), StoreError> {
    match tokio::time::timeout(PING_TIMEOUT, sqlx::raw_sql(statements).execute(pool)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(feed_error(e)),
        Err(_) => Err(StoreError::backend(
            "watch session changes",
            std::io::Error::other("no answer in time"),
        )),
    }
}

/// Refuses a server older than PostgreSQL 11, where the trigger function's `sha256()` does not
/// exist: there every session update and delete, Better Auth's included, would fail in it.
async fn check_version(pool: &sqlx::PgPool) -> Result<(), StoreError> {
    let rows = sqlx::raw_sql("show server_version_num")
        .fetch_all(pool)
        .await
        .map_err(feed_error)?;
    let version = rows
        .first()
        .and_then(|row| row.try_get::<String, _>(0).ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    match version {
        Some(version) if version < 110_000 => Err(cannot(
            format!(
                "the session change feed needs PostgreSQL 11 or later (its trigger calls \
                 sha256()), and the server is {}.{}",
                version / 10_000,
                version % 10_000 / 100
            ),
            "upgrade PostgreSQL, or use CachedStore without a feed (its TTL bounds how long a \
             session ended by Better Auth is served)",
            None,
        )),
        _ => Ok(()),
    }
}

/// The running feed's check of its triggers.
struct Upkeep {
    store: PostgresStore,
    /// The triggers to keep: the session table's, and the user table's when it was there at
    /// start.
    watched: Vec<Watched>,
    create: bool,
    every: Duration,
}

impl Upkeep {
    /// Every `every`, until the feed is dropped. A trigger that is missing (a migration
    /// recreated the table), or whose function an earlier version put back, is restored with
    /// `create` (a missing one's changes were missed: every cached session is dropped), and
    /// named in an error otherwise, once each time its state changes. A disabled one is named
    /// (never enabled here: whoever disabled it will). Once one seen missing or disabled fires
    /// again, whoever put it back, every cached session is dropped, since its changes were
    /// missed meanwhile.
    async fn run(self, sink: Sink, initial: Vec<Trigger>) {
        let mut reported = initial;
        // Whether a missing `TRUNCATE` trigger was named (at start it was, if missing).
        let mut truncate_said = true;
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if !sink.alive() {
                return;
            }
            let pool = self.store.pool();
            if let Some(session) = self.watched.first() {
                // The `TRUNCATE` trigger: created again with `create` (a migration that
                // recreated the table took it too), named once otherwise.
                let present = tokio::time::timeout(PING_TIMEOUT, session.truncate_exists(&pool))
                    .await
                    .ok()
                    .and_then(Result::ok);
                match present {
                    // Just looked: missing.
                    Some(false) if self.create => session.add_truncate(&pool).await,
                    Some(false) if !std::mem::replace(&mut truncate_said, true) => {
                        tracing::warn!(
                            trigger = %session.truncate_name(),
                            "no trigger reports a TRUNCATE of the session table any more: \
                             truncated sessions are served from the cache until its TTL"
                        );
                    }
                    Some(true) => truncate_said = false,
                    _ => {}
                }
            }
            for (watched, reported) in self.watched.iter().zip(&mut reported) {
                let mut state = match tokio::time::timeout(PING_TIMEOUT, watched.state(&pool)).await
                {
                    Ok(Ok(state)) => state,
                    // The database is unreachable: the listener reports that.
                    Ok(Err(_)) | Err(_) => continue,
                };
                let mut flushed = false;
                if self.create && matches!(state, Trigger::Missing | Trigger::Outdated) {
                    match watched.restore(&pool, state).await {
                        Ok(()) => {
                            tracing::warn!(trigger = %watched.name, table = %watched.table, ?state, "restored the session change trigger");
                            if state == Trigger::Missing {
                                if !sink.send(Change::All) {
                                    return;
                                }
                                flushed = true;
                            }
                            state = Trigger::Enabled;
                        }
                        Err(error) => {
                            tracing::debug!(%error, "could not restore the change trigger");
                        }
                    }
                }
                let before = std::mem::replace(reported, state);
                if before == state {
                    continue;
                }
                // Firing again after this feed saw it missing or disabled, whoever put it back
                // (another instance, of this version or an earlier one; an operator): its
                // changes were missed meanwhile.
                if matches!(before, Trigger::Disabled | Trigger::Missing)
                    && matches!(state, Trigger::Enabled | Trigger::Outdated)
                    && !flushed
                {
                    tracing::info!(trigger = %watched.name, "the session change trigger fires again; dropped every cached session");
                    if !sink.send(Change::All) {
                        return;
                    }
                }
                match state {
                    Trigger::Enabled => {}
                    Trigger::Outdated => tracing::warn!(
                        trigger = %watched.name,
                        "the session change trigger's function notifies session tokens again \
                         (an earlier version recreated it?): any database role may LISTEN to \
                         them; upgrade every instance, then create_trigger(true) replaces it"
                    ),
                    Trigger::Missing | Trigger::Disabled => tracing::error!(
                        trigger = %watched.name,
                        table = %watched.table,
                        ?state,
                        "the session change trigger does not fire: changes Better Auth makes \
                         are served from the cache until its TTL; enable it again, or create \
                         it (create_trigger(true) does, or the statements from .ddl())"
                    ),
                }
            }
        }
    }
}

/// What the session channel carries for a `TRUNCATE`: every session changed.
const EVERYTHING: &str = "*";

/// What one wait for a message gave.
enum Heard {
    /// A session changed: its token's fingerprint (`#…`), or the token itself (a trigger
    /// function made by an earlier version).
    Token(String),
    /// A user row changed.
    User(String),
    Ping,
    /// The connection was lost.
    Lost,
    Failed(sqlx::Error),
    Silent,
    /// The store this feed follows moved to another server.
    Moved,
}

async fn next(listener: &mut PgListener, wait: Duration, users: &str) -> Heard {
    match tokio::time::timeout(wait, listener.try_recv()).await {
        Ok(Ok(Some(n))) if n.payload().is_empty() => Heard::Ping,
        Ok(Ok(Some(n))) if n.channel() == users => Heard::User(n.payload().to_owned()),
        Ok(Ok(Some(n))) => Heard::Token(n.payload().to_owned()),
        Ok(Ok(None)) => Heard::Lost,
        Ok(Err(e)) => Heard::Failed(e),
        Err(_) => Heard::Silent,
    }
}

/// The change a session channel's `payload` reports: a fingerprint, or a token from a trigger
/// function an earlier version made (said once, in `warned`).
fn session_change<'p>(payload: &'p str, warned: &mut bool) -> Change<'p> {
    if payload == EVERYTHING {
        return Change::All;
    }
    if let Some(fingerprint) = payload.strip_prefix(FINGERPRINT) {
        return Change::Fingerprint(fingerprint);
    }
    if !std::mem::replace(warned, true) {
        tracing::warn!(
            "the session change trigger notifies session tokens, which any database role may \
             LISTEN to: replace its function with create_trigger(true) or the statements from \
             .ddl() (they notify fingerprints)"
        );
    }
    Change::Token(payload)
}

/// Receives notifications until the feed is dropped, reconnecting as needed: to `options`, or,
/// listening where the store connects (`follow`: the store, and its moves), to wherever the
/// store connects now, so that a store whose URL lists several hosts takes the feed along to the
/// primary it moves to.
async fn run(
    mut listener: PgListener,
    mut options: PgConnectOptions,
    mut follow: Option<(PostgresStore, tokio::sync::watch::Receiver<u64>)>,
    servers: Option<Servers>,
    channel: String,
    sink: Sink,
) {
    let mut wait = PING_AFTER;
    let mut warned = false;
    let users = users_channel(&channel);
    // What ended a batch of user-row changes (a lost connection), handled next.
    let mut pending: Option<Heard> = None;
    loop {
        let heard = match (pending.take(), &mut follow) {
            (Some(heard), _) => heard,
            (None, None) => next(&mut listener, wait, &users).await,
            // The store moved to another server (a failover it met first): the triggers fire
            // there now, even if this connection's server stays up.
            (None, Some((_, moved))) => {
                let heard = std::pin::pin!(next(&mut listener, wait, &users));
                let moved = std::pin::pin!(moved.changed());
                match futures_util::future::select(heard, moved).await {
                    futures_util::future::Either::Left((heard, _)) => heard,
                    futures_util::future::Either::Right(_) => Heard::Moved,
                }
            }
        };
        let heard_moved = matches!(heard, Heard::Moved);
        let lost = match heard {
            Heard::Token(payload) => {
                wait = PING_AFTER;
                if !sink.send(session_change(&payload, &mut warned)) {
                    return;
                }
                continue;
            }
            Heard::User(id) => {
                wait = PING_AFTER;
                // Users whose row changed are dropped together: each drop scans the whole
                // cache, and a bulk update (a backfill, a migration) or a plugin that updates
                // the user at every sign-in sends many. What arrives within a short window
                // goes with this one; session changes meanwhile are applied as they come.
                let mut changed = vec![id];
                let until = tokio::time::Instant::now() + USER_BATCH_WINDOW;
                while changed.len() < USER_BATCH_MAX {
                    let heard = match listener.next_buffered() {
                        Some(n) => Ok(Ok(Some(n))),
                        None => tokio::time::timeout_at(until, listener.try_recv()).await,
                    };
                    match heard {
                        Ok(Ok(Some(n))) if n.channel() == users && !n.payload().is_empty() => {
                            if !changed.iter().any(|u| u == n.payload()) {
                                changed.push(n.payload().to_owned());
                            }
                        }
                        Ok(Ok(Some(n))) => {
                            if !n.payload().is_empty()
                                && !sink.send(session_change(n.payload(), &mut warned))
                            {
                                return;
                            }
                        }
                        Ok(Ok(None)) => {
                            pending = Some(Heard::Lost);
                            break;
                        }
                        Ok(Err(e)) => {
                            pending = Some(Heard::Failed(e));
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if !sink.send(Change::Users(&changed)) {
                    return;
                }
                continue;
            }
            Heard::Ping => {
                wait = PING_AFTER;
                continue;
            }
            Heard::Lost => "the connection was lost".to_owned(),
            Heard::Silent if wait == PING_AFTER => {
                // Ask the server to notify us; hearing anything proves the connection lives.
                let ping = tokio::time::timeout(
                    PING_TIMEOUT,
                    sqlx::query("select pg_notify($1, '')")
                        .bind(&channel)
                        .execute(&mut listener),
                )
                .await;
                match ping {
                    Ok(Ok(_)) => {
                        wait = PING_TIMEOUT;
                        continue;
                    }
                    Ok(Err(e)) => format!("ping failed: {e}"),
                    Err(_) => "the connection went silent".to_owned(),
                }
            }
            Heard::Silent => "the connection went silent".to_owned(),
            Heard::Failed(e) => e.to_string(),
            Heard::Moved => "the session store moved to another server".to_owned(),
        };
        tracing::warn!(error = %lost, "session change feed: LISTEN connection lost; reconnecting (cached sessions may be served until the cache TTL meanwhile)");
        drop(listener);
        let mut backoff = Duration::from_millis(200);
        // The store just moved: its choice is fresh for the first attempt.
        let mut chosen = heard_moved;
        let down_since = tokio::time::Instant::now();
        let mut next_warning = down_since + STILL_DOWN_EVERY;
        listener = loop {
            if !sink.alive() {
                return;
            }
            if let Some((store, moved)) = &mut follow {
                if !std::mem::take(&mut chosen) {
                    // The server may be gone for good (a failover the store has not met yet):
                    // have the store ask its hosts, as its next failed statement would; it
                    // moves only if they name another server.
                    store.choose_again(&lost).await;
                }
                // Moves up to now are followed by this reconnection.
                moved.borrow_and_update();
                options = store.pool().connect_options().as_ref().clone();
            }
            if let Some(servers) = &servers {
                // The listen URL's servers, asked again: after a failover, the new primary.
                match servers.choose().await {
                    Ok(chosen) => options = chosen,
                    Err(error) => {
                        tracing::debug!(%error, "session change feed: no listen server suits yet")
                    }
                }
            }
            match listen(&options, &channel).await {
                Ok(fresh) => break fresh,
                Err(error) => {
                    let now = tokio::time::Instant::now();
                    if now >= next_warning {
                        // Once a minute while it lasts: the cache serves changes Better Auth
                        // makes until its TTL all that time, which a log at debug hid.
                        next_warning = now + STILL_DOWN_EVERY;
                        tracing::warn!(%error, down_for = ?now - down_since, "session change feed: still cannot listen; cached sessions are served until the cache TTL");
                    } else {
                        tracing::debug!(%error, "session change feed: cannot listen yet");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        wait = PING_AFTER;
        if !sink.send(Change::All) {
            return;
        }
    }
}
