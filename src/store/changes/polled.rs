//! Change tables, for the databases without notifications (SQLite, MySQL and MariaDB).
//!
//! Two triggers on the session table (`AFTER DELETE`, `AFTER UPDATE`) insert the old token
//! into a small change table (`id`, `token`, `at`); every instance polls it by id
//! (`where id > ?`, a primary-key range that returns nothing while nothing changes) and drops
//! what it reads from its cache. Any instance deletes rows older than the retention (5 minutes
//! by default) now and then.
//!
//! Ids are allocated when a transaction writes and become visible when it commits, so on MySQL
//! and MariaDB an id can appear after a larger one has been read (SQLite has one writer, and
//! reuses a rolled-back id). The poller therefore keeps reading from the largest id it had
//! seen two seconds earlier (remembering which ids it already applied), and only then moves
//! past any gap. The ids it passed over are looked up by id once a second for up to a minute
//! more (a transaction that stayed open, or one rolled back whose id never comes), so a change
//! committed that late is still applied. A poller that could not read for half the retention,
//! or finds the table's ids moved backwards (recreated or truncated, or a failover to a server
//! that lacked the last rows), drops its whole cache.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::time::Duration;

// Tokio's clock: the same as the system's, and paused in tests.
use tokio::time::Instant;

use super::{cannot, quote_with, Change, SessionChanges, SessionTable, Sink};
use crate::error::StoreError;

/// How long an allocated id may stay invisible (its transaction not yet committed) before the
/// poller reads past it.
const SETTLE: Duration = Duration::from_secs(2);

/// How long an id read past is still looked up ([`LATE_EVERY`]), counted from when the poller
/// read past it, and by successful look-ups only (a look-up that fails expires nothing); at
/// most the retention less [`SETTLE`] twice, so that pruning does not take a row first.
const LATE_FOR: Duration = Duration::from_secs(60);

/// How often the ids read past are looked up.
const LATE_EVERY: Duration = Duration::from_secs(1);

/// The most ids read past that are looked up; beyond it the oldest are given up (rolled back
/// ids, or ids that jump, as under Galera's `auto_increment_increment`, where the window is
/// shorter than [`LATE_FOR`] once the ids never used fill it).
const LATE_MAX: usize = 1024;

/// The most ids one move of the floor adds: of a longer gap (a jump of the counter), the
/// lowest and the highest half of this, where a transaction still open most likely sits.
const LATE_PER_GAP: usize = 64;

/// What the poller needs from one database.
trait ChangeTable: Send + Sync + 'static {
    /// Rows with `id > after`, by id.
    fn since(
        &self,
        after: i64,
    ) -> impl Future<Output = Result<Vec<(i64, String)>, sqlx::Error>> + Send;
    /// The rows among `ids` (at most [`LATE_MAX`]; none when it is empty).
    fn among(
        &self,
        ids: &[i64],
    ) -> impl Future<Output = Result<Vec<(i64, String)>, sqlx::Error>> + Send;
    /// The largest id (0 when empty).
    fn max_id(&self) -> impl Future<Output = Result<i64, sqlx::Error>> + Send;
    /// Deletes rows older than `secs` seconds.
    fn prune(&self, secs: u64) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;
    /// Runs one of the `CREATE` statements (idempotent).
    fn run(&self, sql: &str) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    /// How many of the change table and its two triggers on the session table exist (a
    /// trigger of that name on another table does not count).
    fn count_objects(&self, names: &Names)
        -> impl Future<Output = Result<i64, sqlx::Error>> + Send;
    /// Whether the trigger named `name` exists on the table named `table` (unquoted).
    fn has_trigger(
        &self,
        name: &str,
        table: &str,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;
    /// The table (unquoted) the trigger named `name` is on, if there is one of that name.
    fn trigger_table(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, sqlx::Error>> + Send;
}

/// Keeps the change table and its triggers there while the feed runs. A migration tool that
/// does not know them may drop the table (then every update and delete of a session row fails
/// in the triggers, Better Auth's sign-outs and refreshes included) or rebuild the session
/// table without them (then the feed hears nothing). The poller recreates them when its
/// builder may create them, and otherwise says loudly what is broken.
struct Upkeep {
    names: Names,
    create: bool,
    /// The user table's trigger was there at start, so it is kept there too (a feed started
    /// without it said so then, and runs without it).
    user_watched: bool,
    /// The change table or the session table's triggers reported missing, not yet seen back.
    reported: bool,
    /// The user table's trigger reported missing, not yet seen back.
    user_reported: bool,
    /// Found something missing since everything was last seen there: changes may have been
    /// missed, whoever puts it back (this instance, another, an operator).
    missed: bool,
}

/// What a check of the change table and its triggers found.
#[derive(Debug, PartialEq, Eq)]
enum Upkept {
    /// Nothing changed since the last check, or something is still missing.
    Same,
    /// Something seen missing is there again: changes were missed meanwhile.
    Back,
    /// This feed created the change table or the session triggers again (the table may be a
    /// new one, its ids starting again).
    Recreated,
}

impl Upkeep {
    /// Checks that everything is there, recreating what is missing when the builder may.
    async fn check<T: ChangeTable>(&mut self, db: &T) -> Upkept {
        let Ok(found) = db.count_objects(&self.names).await else {
            return Upkept::Same;
        };
        let user_trigger = if self.user_watched {
            let Ok(there) = db
                .has_trigger(&self.names.raw_user, &self.names.user.name)
                .await
            else {
                return Upkept::Same;
            };
            there
        } else {
            true
        };
        if found >= 3 && std::mem::take(&mut self.reported) {
            tracing::info!(
                source = SOURCE,
                "the session change table and triggers are back"
            );
        }
        if user_trigger && std::mem::take(&mut self.user_reported) {
            tracing::info!(
                source = SOURCE,
                "the trigger that reports changes to user rows is back"
            );
        }
        if found >= 3 && user_trigger {
            return if std::mem::take(&mut self.missed) {
                Upkept::Back
            } else {
                Upkept::Same
            };
        }
        self.missed = true;
        if found < 3 {
            return self.session_objects_missing(db, found).await;
        }
        if self.user_trigger_missing(db).await {
            self.missed = false;
            return Upkept::Back;
        }
        Upkept::Same
    }

    /// The change table or a session table trigger is missing: all recreated when the builder
    /// may, else reported once.
    async fn session_objects_missing<T: ChangeTable>(&mut self, db: &T, found: i64) -> Upkept {
        if self.create && matches!(create_all(db, &self.names).await, Ok(Ok(()))) {
            tracing::warn!(
                source = SOURCE,
                table = %self.names.changes,
                "the session change table or its triggers had gone (dropped or rebuilt by a \
                 migration?): recreated them, and dropped every cached session"
            );
            tell_everyone(db, &self.names).await;
            self.reported = false;
            self.user_reported = false;
            self.missed = false;
            return Upkept::Recreated;
        }
        if !std::mem::replace(&mut self.reported, true) {
            let elsewhere = misplaced(db, &self.names).await.unwrap_or_default();
            tracing::error!(
                source = SOURCE,
                table = %self.names.changes,
                session_table = %self.names.session.table,
                found,
                elsewhere = %elsewhere.trim_start_matches("; "),
                "the session change table or its triggers are missing (dropped or rebuilt by a \
                 migration?). While the table is missing and its triggers remain, every update \
                 and delete of a session, and every update of a user, fails, Better Auth's \
                 sign-outs and refreshes included; \
                 while the triggers are missing, cached sessions are served until the cache TTL. \
                 Recreate them (create_trigger(true), or the statements from .ddl()), or drop \
                 the triggers"
            );
        }
        Upkept::Same
    }

    /// The session table's triggers are there, the user table's is not (a migration rebuilt
    /// the user table): recreated when the builder may create it, else reported once. Whether
    /// it is there again.
    async fn user_trigger_missing<T: ChangeTable>(&mut self, db: &T) -> bool {
        // The last statement of `ddl` is the user table's trigger.
        if let (true, Some(statement)) = (self.create, self.names.ddl().pop()) {
            let user = (self.names.raw_user.as_str(), self.names.user.name.as_str());
            let moved = matches!(move_misplaced(db, &self.names, &[user]).await, Ok(Ok(())));
            if (moved && db.run(&statement).await.is_ok())
                || db
                    .has_trigger(&self.names.raw_user, &self.names.user.name)
                    .await
                    .unwrap_or(false)
            {
                tracing::warn!(
                    source = SOURCE,
                    trigger = %self.names.raw_user,
                    table = %self.names.user.table,
                    "the trigger that reports changes to user rows had gone (the user table \
                     rebuilt by a migration?): recreated it, and dropped every cached session"
                );
                tell_everyone(db, &self.names).await;
                self.user_reported = false;
                return true;
            }
        }
        if !std::mem::replace(&mut self.user_reported, true) {
            tracing::error!(
                source = SOURCE,
                trigger = %self.names.raw_user,
                table = %self.names.user.table,
                "the trigger that reports changes to user rows is missing (the user table \
                 rebuilt by a migration?): a user's new role, ban or name is served from the \
                 cache until its TTL. Recreate it (create_trigger(true), or the statements from \
                 .ddl())"
            );
        }
        false
    }
}

/// Runs the `CREATE` statements up to the first that fails. `Ok(Ok(()))` when they all ran, or
/// when the change table and the session table's triggers are there anyway (another instance
/// made them meanwhile); `Ok(Err(e))` with the failed statement's error when they are not; the
/// outer error when that check itself failed.
async fn create_all<T: ChangeTable>(
    db: &T,
    names: &Names,
) -> Result<Result<(), sqlx::Error>, sqlx::Error> {
    if let Err(e) = move_misplaced(db, names, &names.triggers()).await? {
        return Ok(Err(e));
    }
    for statement in names.ddl() {
        if let Err(e) = db.run(&statement).await {
            return Ok(if db.count_objects(names).await? >= 3 {
                Ok(())
            } else {
                Err(e)
            });
        }
    }
    Ok(Ok(()))
}

/// Drops each of `triggers` (name, the table it belongs on) that is on another table, so that
/// the `CREATE` statements make it again where it belongs: trigger names are unique in a
/// schema, and a trigger moves with its table when the table is renamed. A migration that
/// swaps in a rebuilt table and keeps the old one (gh-ost's `_del` table, pt-online-schema-change
/// with `--no-drop-old-table`, a hand-written copy and rename) leaves the feed's triggers on the
/// old table, where they report nothing. The outer error when reading the catalog failed, the
/// inner one when a drop did.
async fn move_misplaced<T: ChangeTable>(
    db: &T,
    names: &Names,
    triggers: &[(&str, &str)],
) -> Result<Result<(), sqlx::Error>, sqlx::Error> {
    for &(trigger, table) in triggers {
        let Some(on) = elsewhere(db, trigger, table).await? else {
            continue;
        };
        if let Err(e) = db.run(&names.drop_trigger(trigger)).await {
            return Ok(Err(e));
        }
        tracing::warn!(
            source = SOURCE,
            trigger,
            on = %on,
            table,
            "a change trigger was on another table (the table swapped for a rebuilt copy that \
             kept the old one?): dropped it there, to create it again on the table in use"
        );
    }
    Ok(Ok(()))
}

/// After this instance put triggers back: a row telling every instance's feed to drop its
/// cache (changes were missed meanwhile). A failure is logged: the instances whose own check
/// saw the triggers missing drop theirs anyway, the others keep what they cached until the
/// TTL.
async fn tell_everyone<T: ChangeTable>(db: &T, names: &Names) {
    if let Err(error) = db.run(&names.all_marker()).await {
        tracing::warn!(
            source = SOURCE,
            %error,
            "could not tell the other instances that session changes were missed: they \
             serve what they cached until the cache TTL"
        );
    }
}

/// For an error saying the triggers are missing: those found on another table, which the
/// `.ddl()` statements cannot create again until they are dropped there (empty when none).
async fn misplaced<T: ChangeTable>(db: &T, names: &Names) -> Result<String, sqlx::Error> {
    let mut found = String::new();
    for (trigger, table) in names.triggers() {
        if let Some(on) = elsewhere(db, trigger, table).await? {
            found.push_str(&format!(
                "; the trigger {trigger} is on table {on}, not {table} (a table swap that \
                 kept the old table?): drop it there ({}) before running .ddl()",
                names.drop_trigger(trigger)
            ));
        }
    }
    Ok(found)
}

/// The table the trigger named `trigger` is on when that is not `table` (`None` when it is
/// there, or there is none of that name).
async fn elsewhere<T: ChangeTable>(
    db: &T,
    trigger: &str,
    table: &str,
) -> Result<Option<String>, sqlx::Error> {
    Ok(db
        .trigger_table(trigger)
        .await?
        .filter(|on| !same_table(on, table)))
}

/// Whether a catalog's table name `on` names `table`: ASCII letters in either case, as SQLite
/// reads identifiers (and MySQL where table names do not depend on case).
fn same_table(on: &str, table: &str) -> bool {
    on.eq_ignore_ascii_case(table)
}

/// The settings both builders share.
#[derive(Clone, Debug)]
struct Settings {
    delete_sql: String,
    delete_user_sql: String,
    name: String,
    create: bool,
    interval: Duration,
    retention: Duration,
}

impl Settings {
    fn new(delete_sql: &str, delete_user_sql: &str) -> Self {
        Self {
            delete_sql: delete_sql.to_owned(),
            delete_user_sql: delete_user_sql.to_owned(),
            name: super::DEFAULT_NAME.to_owned(),
            create: false,
            interval: Duration::from_millis(200),
            retention: Duration::from_secs(300),
        }
    }
}

macro_rules! builder_methods {
    ($store:literal) => {
        /// Create the change table and its triggers (two on the session table, one on the
        /// user table) when they are absent (`create … if
        /// not exists`: harmless when they exist), at start and whenever the feed finds them
        /// gone. A trigger of the feed's name found on another table (a migration swapped in a
        /// rebuilt table and kept the old one, which took the trigger with it) is dropped
        /// there and created on the table in use. Needs the right to create tables and
        /// triggers. Default: `false`: they must exist (see [`ddl`](Self::ddl)), else
        /// [`start`](Self::start) fails saying so.
        pub fn create_trigger(mut self, create: bool) -> Self {
            self.settings.create = create;
            self
        }

        /// The name of the change table; the triggers are named after it (`{name}_delete`,
        /// `{name}_update` on the session table, `{name}_user` on the user table). Default:
        /// `tas_session_changes`.
        pub fn table(mut self, name: impl Into<String>) -> Self {
            self.settings.name = name.into();
            self
        }

        /// How often the change table is read: the longest a Better Auth revocation is still
        /// served from the cache (plus one query). Default: 200 ms.
        pub fn poll_interval(mut self, interval: Duration) -> Self {
            self.settings.interval = interval.max(Duration::from_millis(10));
            self
        }

        /// How long change rows are kept before any instance deletes them. An instance that
        /// could not read the table for half of it drops its whole cache. Default: 5 minutes.
        pub fn retention(mut self, retention: Duration) -> Self {
            self.settings.retention = retention.max(Duration::from_secs(10));
            self
        }

        /// The statements [`create_trigger(true)`](Self::create_trigger) runs, for a migration
        /// tool that owns the schema.
        ///
        /// # Errors
        ///
        /// Only if the store's statements cannot be read (a bug).
        pub fn ddl(&self) -> Result<Vec<String>, StoreError> {
            Ok(self.names()?.ddl())
        }

        /// Creates or checks the table and triggers, and starts polling (in a task of its own,
        /// on the current Tokio runtime). Give the result to
        /// [`CachedStoreBuilder::watch`](crate::store::CachedStoreBuilder::watch).
        ///
        /// # Errors
        ///
        /// [`StoreError::Connect`] when the table or a trigger is missing (without
        /// `create_trigger(true)`) or cannot be created, saying what to do; a backend error
        /// when the database cannot be reached.
        pub async fn start(self) -> Result<SessionChanges, StoreError> {
            let names = self.names()?;
            let db = self.table_for(&names);
            if self.settings.create {
                // Something there and something missing (or on another table): whoever
                // watched meanwhile missed changes.
                let repairing = (1..3).contains(&db.count_objects(&names).await.map_err(backend)?);
                // Instances started together race to create them (`trigger already exists`):
                // the statements are idempotent, so one that lost runs them again, and finds
                // what the winner made.
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    match create_all(&db, &names).await.map_err(backend)? {
                        Ok(()) => break,
                        Err(e) if attempts >= 3 => return Err(self.create_error(e)),
                        Err(_) => {}
                    }
                }
                if repairing {
                    tell_everyone(&db, &names).await;
                }
            }
            let found = db.count_objects(&names).await.map_err(backend)?;
            if found < 3 {
                let elsewhere = misplaced(&db, &names).await.unwrap_or_default();
                return Err(cannot(
                    format!(
                        "the change table {} or its triggers on {} are missing ({found} of 3 \
                         found){elsewhere}",
                        names.changes, names.session.table
                    ),
                    concat!(
                        "call ",
                        $store,
                        "::session_changes().create_trigger(true) once (it needs the right to \
                         create tables and triggers), or run the statements from .ddl()"
                    ),
                    None,
                ));
            }
            let user_watched = db
                .has_trigger(&names.raw_user, &names.user.name)
                .await
                .map_err(backend)?;
            if !user_watched {
                tracing::warn!(
                    trigger = %names.raw_user,
                    table = %names.user.table,
                    "no trigger reports changes to user rows: a user's new role or name is served \
                     from the cache until its TTL; create it with create_trigger(true) or the \
                     statements from .ddl()"
                );
            }
            let floor = db.max_id().await.map_err(backend)?;
            let settings = self.settings;
            let upkeep = Upkeep {
                names,
                create: settings.create,
                user_watched,
                reported: false,
                user_reported: false,
                missed: false,
            };
            Ok(SessionChanges::spawn(SOURCE, move |sink| {
                poll(db, upkeep, sink, floor, settings.interval, settings.retention)
            }))
        }
    };
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::backend("watch session changes", e)
}

/// The quoted names a change table uses.
struct Names {
    session: SessionTable,
    /// The user table and its id column.
    user: SessionTable,
    changes: String,
    on_delete: String,
    on_update: String,
    on_user: String,
    raw: [String; 3],
    /// The user table's trigger, unquoted (optional: earlier versions did not make it).
    raw_user: String,
    /// `CREATE TRIGGER` statements, per dialect.
    dialect: Dialect,
}

#[derive(Clone, Copy, PartialEq)]
enum Dialect {
    #[cfg(feature = "sqlite")]
    Sqlite,
    #[cfg(feature = "mysql")]
    MySql,
}

impl Names {
    fn new(settings: &Settings, quote: char, dialect: Dialect) -> Result<Self, StoreError> {
        let session = SessionTable::from_delete(&settings.delete_sql, quote)?;
        let user = SessionTable::from_delete(&settings.delete_user_sql, quote)?;
        let raw_user = format!("{}_user", settings.name);
        let raw = [
            settings.name.clone(),
            format!("{}_delete", settings.name),
            format!("{}_update", settings.name),
        ];
        Ok(Self {
            session,
            user,
            changes: quote_with(quote, &raw[0]),
            on_delete: quote_with(quote, &raw[1]),
            on_update: quote_with(quote, &raw[2]),
            on_user: quote_with(quote, &raw_user),
            raw,
            raw_user,
            dialect,
        })
    }

    /// The feed's triggers, each with the table it belongs on (unquoted).
    fn triggers(&self) -> [(&str, &str); 3] {
        [
            (&self.raw[1], &self.session.name),
            (&self.raw[2], &self.session.name),
            (&self.raw_user, &self.user.name),
        ]
    }

    /// The statement writing [`ALL_MARK`] to the change table.
    fn all_marker(&self) -> String {
        let ct = &self.changes;
        match self.dialect {
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => format!("insert into {ct} (\"token\") values (char(2))"),
            #[cfg(feature = "mysql")]
            Dialect::MySql => format!("insert into {ct} (`token`) values (char(2 using utf8mb4))"),
        }
    }

    /// The statement dropping the trigger named `name` (unquoted).
    fn drop_trigger(&self, name: &str) -> String {
        let quote = match self.dialect {
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => '"',
            #[cfg(feature = "mysql")]
            Dialect::MySql => '`',
        };
        format!("drop trigger if exists {}", quote_with(quote, name))
    }

    fn ddl(&self) -> Vec<String> {
        let (ct, st, tok) = (&self.changes, &self.session.table, &self.session.token);
        match self.dialect {
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => {
                let trigger = |name: &str, event: &str| {
                    format!(
                        "create trigger if not exists {name} after {event} on {st} begin \
                         insert into {ct} (\"token\") values (old.{tok}); end"
                    )
                };
                vec![
                    // AUTOINCREMENT: ids are never reused, even after pruning empties the table.
                    format!(
                        "create table if not exists {ct} (\"id\" integer primary key autoincrement, \
                         \"token\" text not null, \
                         \"at\" integer not null default (cast(strftime('%s', 'now') as integer)))"
                    ),
                    trigger(&self.on_delete, "delete"),
                    trigger(&self.on_update, "update"),
                    // A user row's change, as its id after a `\x01` no token starts with.
                    format!(
                        "create trigger if not exists {name} after update on {ut} begin \
                         insert into {ct} (\"token\") values (char(1) || old.{id}); end",
                        name = self.on_user,
                        ut = self.user.table,
                        id = self.user.token,
                    ),
                ]
            }
            #[cfg(feature = "mysql")]
            Dialect::MySql => {
                let trigger = |name: &str, event: &str| {
                    format!(
                        "create trigger {name} after {event} on {st} for each row \
                         insert into {ct} (`token`) values (old.{tok})"
                    )
                };
                vec![
                    format!(
                        "create table if not exists {ct} (`id` bigint not null auto_increment primary key, \
                         `token` varchar(255) not null, \
                         `at` timestamp(3) not null default current_timestamp(3))"
                    ),
                    trigger(&self.on_delete, "delete"),
                    trigger(&self.on_update, "update"),
                    format!(
                        "create trigger {name} after update on {ut} for each row \
                         insert into {ct} (`token`) values (concat(char(1 using utf8mb4), old.{id}))",
                        name = self.on_user,
                        ut = self.user.table,
                        id = self.user.token,
                    ),
                ]
            }
        }
    }
}

/// The change table's marker for a user row's change: its `token` is the user's id after it.
const USER_MARK: char = '\u{1}';

/// The change table's row for "changes were missed: drop everything", written by the instance
/// that put the triggers back, so that every instance drops what it cached meanwhile, not
/// only those whose own check ran while the triggers were missing. (An earlier version reads
/// it as a token no session has.)
const ALL_MARK: &str = "\u{2}";

/// How long one of the poller's statements may take: a connection that went silent fails it
/// (logged, and the cache dropped once reads work again) rather than silencing the feed.
const DEADLINE: Duration = Duration::from_secs(5);

/// [`Upkeep::check`] within [`DEADLINE`] (a silent connection: nothing recreated).
async fn checked<T: ChangeTable>(upkeep: &mut Upkeep, db: &T) -> Upkept {
    tokio::time::timeout(DEADLINE, upkeep.check(db))
        .await
        .unwrap_or(Upkept::Same)
}

/// Acts on what a check found: every cached session dropped when changes may have been
/// missed, and the ids read again from the start when the change table may be a new one (the
/// ids of a table recreated elsewhere are caught by the look at its largest id). Whether the
/// cache was dropped.
fn upkept(found: Upkept, at: &mut Position, sink: &Sink) -> bool {
    match found {
        Upkept::Same => return false,
        Upkept::Back => {}
        Upkept::Recreated => at.restart(0),
    }
    sink.send(Change::All);
    true
}

/// `work` within [`DEADLINE`].
async fn within<T>(work: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, sqlx::Error> {
    tokio::time::timeout(DEADLINE, work)
        .await
        .unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the change table did not answer within 5 s",
            )))
        })
}

/// Where the poller is in the change table.
struct Position {
    /// Every id at or below it was applied, or read past ([`Late`]).
    floor: i64,
    /// The largest id read.
    max_seen: i64,
    /// The ids above `floor` already applied.
    seen: BTreeSet<i64>,
    /// When each poll read, and the largest id seen by then: the floor follows [`SETTLE`]
    /// behind.
    history: VecDeque<(Instant, i64)>,
    late: Late,
}

impl Position {
    fn new(floor: i64, retention: Duration) -> Self {
        Self {
            floor,
            max_seen: floor,
            seen: BTreeSet::new(),
            history: VecDeque::new(),
            late: Late::new(retention),
        }
    }

    /// Starts reading a recreated change table after id `from`: its ids started again. After
    /// a recreation by the upkeep, from its first row (rows read twice, where only the
    /// triggers were recreated, drop entries twice: harmless).
    fn restart(&mut self, from: i64) {
        self.floor = from;
        self.max_seen = from;
        self.seen.clear();
        self.history.clear();
        self.late.ids.clear();
    }

    /// Takes the rows of one read: the ones not applied yet, for the sink.
    fn read(&mut self, rows: Vec<(i64, String)>) -> Vec<(i64, String)> {
        rows.into_iter()
            .filter(|&(id, _)| {
                self.max_seen = self.max_seen.max(id);
                self.seen.insert(id)
            })
            .collect()
    }

    /// After a read at `at`: the floor moves to the largest id seen [`SETTLE`] ago, reading
    /// past the ids still missing below it.
    fn settle(&mut self, at: Instant) {
        self.history.push_back((at, self.max_seen));
        while let Some(&(then, max)) = self.history.front() {
            if then.elapsed() < SETTLE {
                break;
            }
            self.late.passed(self.floor, max, &self.seen);
            self.floor = self.floor.max(max);
            self.history.pop_front();
        }
        self.seen = self.seen.split_off(&(self.floor + 1));
    }
}

/// Polls `db` every `interval` until the feed is dropped.
async fn poll<T: ChangeTable>(
    db: T,
    mut upkeep: Upkeep,
    sink: Sink,
    floor: i64,
    interval: Duration,
    retention: Duration,
) {
    let prune_every = (retention / 4).max(Duration::from_secs(5));
    let mut at = Position::new(floor, retention);
    let mut last_ok = Instant::now();
    let mut last_prune = Instant::now();
    let mut last_check = Instant::now()
        .checked_sub(RECHECK)
        .unwrap_or_else(Instant::now);
    let mut failing = false;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if !sink.alive() {
            return;
        }
        match within(db.since(at.floor)).await {
            Ok(rows) => {
                let recovered = std::mem::take(&mut failing);
                if recovered {
                    tracing::info!(source = SOURCE, "session change feed reads again");
                }
                // Nothing new: a cheap look at whether the ids went backwards, as they do when
                // the table is recreated or truncated, or after a failover to a server that had
                // not received the last rows. Its new rows reuse ids this poller has seen (or
                // passed), and would be skipped for good.
                let fresh = rows
                    .iter()
                    .any(|(id, _)| *id > at.max_seen || !at.seen.contains(id));
                if recovered || !fresh {
                    if let Ok(max) = within(db.max_id()).await {
                        if max < at.max_seen {
                            at.restart(max);
                            sink.send(Change::All);
                            continue;
                        }
                    }
                }
                if last_ok.elapsed() > retention / 2 {
                    // Rows may have been pruned before this instance read them. (After a
                    // shorter failure nothing was missed: the floor did not move, and this
                    // read brings what was written meanwhile.)
                    sink.send(Change::All);
                }
                last_ok = Instant::now();
                if !report(&sink, at.read(rows)) {
                    return;
                }
                at.settle(last_ok);
                if !at.late.look_up(&db, &sink).await {
                    return;
                }
            }
            Err(error) => {
                // A dropped table fails Better Auth's writes: recreated as soon as allowed
                // (checked at most every few seconds while reads fail).
                if last_check.elapsed() >= RECHECK {
                    last_check = Instant::now();
                    if upkept(checked(&mut upkeep, &db).await, &mut at, &sink) {
                        continue;
                    }
                }
                if !failing {
                    tracing::warn!(
                        source = SOURCE,
                        %error,
                        "cannot read the session change table; cached sessions may be served \
                         until the cache TTL until it can"
                    );
                    failing = true;
                }
            }
        }
        if last_prune.elapsed() >= prune_every {
            last_prune = Instant::now();
            upkept(checked(&mut upkeep, &db).await, &mut at, &sink);
            let secs = retention.as_secs();
            if let Err(error) = within(db.prune(secs)).await {
                tracing::debug!(%error, "could not prune the session change table");
            }
            if let Ok(max) = within(db.max_id()).await {
                if max < at.floor {
                    // The table was recreated: its ids started again.
                    at.restart(max);
                    sink.send(Change::All);
                }
            }
        }
    }
}

/// Sends what `rows` report to the sink: each token's change, and the users whose row changed
/// together, once (each drop of a user scans the whole cache, and some plugins update the user
/// at every sign-in). `false` once the feed is gone.
fn report(sink: &Sink, rows: impl IntoIterator<Item = (i64, String)>) -> bool {
    let mut users: Vec<String> = Vec::new();
    for (_, token) in rows {
        if token == ALL_MARK {
            if !sink.send(Change::All) {
                return false;
            }
            continue;
        }
        match token.strip_prefix(USER_MARK) {
            Some(user_id) if !users.iter().any(|u| u == user_id) => {
                users.push(user_id.to_owned());
            }
            Some(_) => {}
            None if !sink.send(Change::Token(&token)) => return false,
            None => {}
        }
    }
    users.is_empty() || sink.send(Change::Users(&users))
}

/// The ids the poller read past before they became visible, looked up by id for up to
/// [`LATE_FOR`]: a transaction that committed more than [`SETTLE`] after its id was taken
/// (a long one, or a server that stalled) is applied when it does.
struct Late {
    /// Id → how long it is still looked up (the time left counts down only while look-ups
    /// succeed).
    ids: BTreeMap<i64, Duration>,
    /// The last look-up tried, and the last that succeeded.
    tried: Option<Instant>,
    succeeded: Option<Instant>,
    /// [`LATE_FOR`], or less under a short retention.
    keep: Duration,
}

impl Late {
    fn new(retention: Duration) -> Self {
        Self {
            ids: BTreeMap::new(),
            tried: None,
            succeeded: None,
            keep: LATE_FOR.min(retention.saturating_sub(SETTLE * 2)),
        }
    }

    /// The floor moves from `floor` to `to`: the ids between them not `seen` are read past.
    /// Of a gap longer than [`LATE_PER_GAP`], its two ends.
    fn passed(&mut self, floor: i64, to: i64, seen: &BTreeSet<i64>) {
        let half = (LATE_PER_GAP / 2) as i64;
        let mut add = |from: i64, through: i64| {
            for id in (from..=through).filter(|id| !seen.contains(id)) {
                self.ids.insert(id, self.keep);
            }
        };
        if to.saturating_sub(floor) > 2 * half {
            add(floor + 1, floor + half);
            add(to - half + 1, to);
        } else {
            add(floor + 1, to);
        }
        while self.ids.len() > LATE_MAX {
            self.ids.pop_first();
        }
    }

    /// Once every [`LATE_EVERY`]: the ids read past that are visible now are reported and
    /// forgotten; after a look-up that succeeded, those looked up for their whole time are
    /// given up. `false` once the feed is gone.
    async fn look_up<T: ChangeTable>(&mut self, db: &T, sink: &Sink) -> bool {
        if self.ids.is_empty() || self.tried.is_some_and(|at| at.elapsed() < LATE_EVERY) {
            return true;
        }
        self.tried = Some(Instant::now());
        let ids: Vec<i64> = self.ids.keys().copied().collect();
        let rows = match within(db.among(&ids)).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::debug!(
                    source = SOURCE,
                    %error,
                    "could not look up the change table's late ids"
                );
                return true;
            }
        };
        // The time between two look-ups that succeeded counts against every id.
        let since = self.succeeded.map_or(Duration::ZERO, |at| at.elapsed());
        self.succeeded = self.tried;
        let rows: Vec<(i64, String)> = rows
            .into_iter()
            .filter(|(id, _)| self.ids.remove(id).is_some())
            .collect();
        if !rows.is_empty() {
            tracing::debug!(
                source = SOURCE,
                late = rows.len(),
                "applied changes committed after the poller had read past their ids"
            );
        }
        self.ids.retain(|_, left| {
            *left = left.saturating_sub(since);
            !left.is_zero()
        });
        report(sink, rows)
    }
}

/// How often the upkeep looks while reads of the change table fail.
const RECHECK: Duration = Duration::from_secs(5);

/// `prefix` (`select … where id in (`) with `ids` and the closing parenthesis: numbers, so
/// written into the statement rather than bound (one statement whatever their count).
fn id_list(prefix: &str, ids: &[i64]) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(prefix.len() + ids.len() * 12 + 1);
    sql.push_str(prefix);
    for (i, id) in ids.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        let _ = write!(sql, "{comma}{id}");
    }
    sql.push(')');
    sql
}

/// The feed's name for logs (both dialects run the same poller).
const SOURCE: &str = "change table";

#[cfg(feature = "sqlite")]
mod sqlite {
    use sqlx::SqlitePool;

    use super::{ChangeTable, Names};
    use crate::store::SqliteStore;

    /// SQLite statements, on the store's read pool.
    pub(super) struct Sqlite {
        pub(super) pool: SqlitePool,
        pub(super) since: String,
        /// `… where "id" in (`, the ids and `)` appended.
        pub(super) among: String,
        pub(super) max: String,
        pub(super) prune: String,
    }

    impl Sqlite {
        pub(super) fn new(store: &SqliteStore, names: &Names) -> Self {
            Self::on(store.pool().clone(), &names.changes)
        }

        /// The statements for the change table `ct`, on `pool`. Pruning keeps the newest row,
        /// so that the table is never empty once used: an empty table's `max(id)` of 0 would
        /// read as a recreated table and flush every cache after each quiet spell.
        fn on(pool: SqlitePool, ct: &str) -> Self {
            Self {
                pool,
                since: format!(
                    "select \"id\", \"token\" from {ct} where \"id\" > ? order by \"id\""
                ),
                among: format!("select \"id\", \"token\" from {ct} where \"id\" in ("),
                max: format!("select coalesce(max(\"id\"), 0) from {ct}"),
                prune: format!(
                    "delete from {ct} where \"at\" < cast(strftime('%s', 'now') as integer) - ? \
                     and \"id\" < (select max(\"id\") from {ct})"
                ),
            }
        }
    }

    impl ChangeTable for Sqlite {
        async fn run(&self, sql: &str) -> Result<(), sqlx::Error> {
            sqlx::query(sql).execute(&self.pool).await.map(|_| ())
        }
        async fn count_objects(&self, names: &Names) -> Result<i64, sqlx::Error> {
            sqlx::query_scalar(
                "select count(*) from sqlite_master where (type = 'table' and name = ?) \
                 or (type = 'trigger' and name in (?, ?) and tbl_name = ? collate nocase)",
            )
            .bind(&names.raw[0])
            .bind(&names.raw[1])
            .bind(&names.raw[2])
            .bind(&names.session.name)
            .fetch_one(&self.pool)
            .await
        }
        async fn has_trigger(&self, name: &str, table: &str) -> Result<bool, sqlx::Error> {
            Ok(self
                .trigger_table(name)
                .await?
                .is_some_and(|on| super::same_table(&on, table)))
        }
        async fn trigger_table(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
            sqlx::query_scalar(
                "select tbl_name from sqlite_master where type = 'trigger' and name = ?",
            )
            .bind(name)
            .fetch_optional(&self.pool)
            .await
        }
        async fn since(&self, after: i64) -> Result<Vec<(i64, String)>, sqlx::Error> {
            sqlx::query_as(&self.since)
                .bind(after)
                .fetch_all(&self.pool)
                .await
        }
        async fn among(&self, ids: &[i64]) -> Result<Vec<(i64, String)>, sqlx::Error> {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let sql = super::id_list(&self.among, ids);
            // Not prepared for good: the list differs at every look-up.
            sqlx::query_as(&sql)
                .persistent(false)
                .fetch_all(&self.pool)
                .await
        }
        async fn max_id(&self) -> Result<i64, sqlx::Error> {
            sqlx::query_scalar(&self.max).fetch_one(&self.pool).await
        }
        async fn prune(&self, secs: u64) -> Result<u64, sqlx::Error> {
            let secs = i64::try_from(secs).unwrap_or(i64::MAX);
            Ok(sqlx::query(&self.prune)
                .bind(secs)
                .execute(&self.pool)
                .await?
                .rows_affected())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Pruning keeps the newest row, so the table's `max(id)` never falls back to 0 (read
        /// as a recreated table, which flushes every cache) after a quiet spell.
        #[tokio::test]
        async fn pruning_keeps_the_newest_row() {
            let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
            sqlx::query(
                "create table \"changes\" (\"id\" integer primary key autoincrement, \
                 \"token\" text not null, \"at\" integer not null)",
            )
            .execute(&pool)
            .await
            .unwrap();
            for token in ["a", "b", "c"] {
                sqlx::query("insert into \"changes\" (\"token\", \"at\") values (?, 0)")
                    .bind(token)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            let table = Sqlite::on(pool, "\"changes\"");
            assert_eq!(table.prune(10).await.unwrap(), 2);
            assert_eq!(table.max_id().await.unwrap(), 3);
            assert_eq!(table.prune(10).await.unwrap(), 0);
            assert_eq!(table.since(2).await.unwrap(), [(3, "c".to_owned())]);
            // Late ids are looked up by id, in one statement; none, in none.
            assert_eq!(
                table.among(&[1, 3, 9]).await.unwrap(),
                [(3, "c".to_owned())]
            );
            assert!(table.among(&[]).await.unwrap().is_empty());
        }
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::Names;
    use crate::store::MySqlStore;

    /// MySQL statements, on the store's current pool (replaced after connection failures).
    pub(super) struct MySql {
        pub(super) store: MySqlStore,
        pub(super) since: String,
        /// `… where `id` in (`, the ids and `)` appended.
        pub(super) among: String,
        pub(super) max: String,
        pub(super) prune: String,
        /// Said once: the user cannot see triggers, so they are taken on trust.
        pub(super) blind_warned: std::sync::atomic::AtomicBool,
    }

    impl MySql {
        pub(super) fn new(store: &MySqlStore, names: &Names) -> Self {
            let ct = &names.changes;
            Self {
                store: store.clone(),
                since: format!("select `id`, `token` from {ct} where `id` > ? order by `id`"),
                among: format!("select `id`, `token` from {ct} where `id` in ("),
                max: format!("select cast(coalesce(max(`id`), 0) as signed) from {ct}"),
                // Keeps the newest row (see the SQLite poller); MySQL reads the table it
                // deletes from only through a derived table.
                prune: format!(
                    "delete from {ct} where `at` < now(3) - interval ? second \
                     and `id` < (select newest from (select max(`id`) as newest from {ct}) as m)"
                ),
                blind_warned: std::sync::atomic::AtomicBool::new(false),
            }
        }

        /// Whether the store's user may see triggers at all: MySQL and MariaDB list a table's
        /// triggers only to users with the `TRIGGER` privilege on it, and an application user
        /// whose administrator ran the statements from `.ddl()` usually has rows only. Its own
        /// grants, globally, on this database (patterns included) or on one of its tables.
        async fn can_see_triggers(&self) -> Result<bool, sqlx::Error> {
            // The store's own grants only: a user allowed to read `mysql.*` sees everyone's.
            // (A TRIGGER privilege that comes through a role is not listed: such a user's
            // feed takes its triggers on trust too.)
            let n: i64 = sqlx::query_scalar(
                "select (select count(*) from information_schema.user_privileges \
                 where privilege_type = 'TRIGGER' and grantee = me.g) \
                 + (select count(*) from information_schema.schema_privileges \
                 where privilege_type = 'TRIGGER' and grantee = me.g \
                 and database() like table_schema) \
                 + (select count(*) from information_schema.table_privileges \
                 where privilege_type = 'TRIGGER' and grantee = me.g \
                 and database() like table_schema) \
                 from (select concat('''', substring_index(current_user(), '@', 1), '''@''', \
                 substring_index(current_user(), '@', -1), '''') as g) as me",
            )
            .fetch_one(&self.store.pool())
            .await?;
            let visible = n > 0;
            if !visible
                && !self
                    .blind_warned
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!(
                    "the store's database user has no TRIGGER privilege, so MySQL shows it no \
                     triggers: the change feed trusts that its triggers were created (the \
                     statements from .ddl()) and cannot tell when they go missing"
                );
            }
            Ok(visible)
        }

        pub(super) async fn run(&self, sql: &str) -> Result<(), sqlx::Error> {
            // `CREATE TRIGGER` waits for a lock on its table that every write of the table then
            // queues behind: the store's connections carry `lock_wait_timeout` a little under
            // its deadline (`ServerLimits`), so the server gives up first and the next check
            // tries again. Plain text protocol: MySQL cannot prepare `CREATE TRIGGER`.
            sqlx::raw_sql(sql)
                .execute(&self.store.pool())
                .await
                .map(|_| ())
        }

        pub(super) async fn count_objects(&self, names: &Names) -> Result<i64, sqlx::Error> {
            let tables: i64 = sqlx::query_scalar(
                "select count(*) from information_schema.tables \
                 where table_schema = database() and table_name = ?",
            )
            .bind(&names.raw[0])
            .fetch_one(&self.store.pool())
            .await?;
            // Those of the names, and those of them on the session table: a user that sees
            // none at all may lack the privilege to see triggers, and is not refused for it.
            let (named, placed): (i64, i64) = sqlx::query_as(
                "select count(*), \
                 cast(coalesce(sum(lower(cast(event_object_table as char)) = lower(?)), 0) as signed) \
                 from information_schema.triggers \
                 where trigger_schema = database() and trigger_name in (?, ?)",
            )
            .bind(&names.session.name)
            .bind(&names.raw[1])
            .bind(&names.raw[2])
            .fetch_one(&self.store.pool())
            .await?;
            if tables == 1 && named == 0 && !self.can_see_triggers().await? {
                return Ok(3);
            }
            Ok(tables + placed)
        }

        /// Whether the trigger named `name` exists on the table named `table` (or, to a user
        /// that cannot see triggers, whether it may: it is taken as there).
        pub(super) async fn has_trigger(
            &self,
            name: &str,
            table: &str,
        ) -> Result<bool, sqlx::Error> {
            Ok(match self.trigger_table(name).await? {
                Some(on) => super::same_table(&on, table),
                None => !self.can_see_triggers().await?,
            })
        }

        /// The table the trigger named `name` is on, if this user sees one of that name.
        pub(super) async fn trigger_table(
            &self,
            name: &str,
        ) -> Result<Option<String>, sqlx::Error> {
            sqlx::query_scalar(
                // Cast: MySQL 8 sends the data dictionary's names as binary strings.
                "select cast(event_object_table as char) from information_schema.triggers \
                 where trigger_schema = database() and trigger_name = ?",
            )
            .bind(name)
            .fetch_optional(&self.store.pool())
            .await
        }
    }

    /// The poller's reads (through [`MySqlTable`](super::MySqlTable)).
    impl MySql {
        pub(super) async fn since(&self, after: i64) -> Result<Vec<(i64, String)>, sqlx::Error> {
            sqlx::query_as(&self.since)
                .bind(after)
                .fetch_all(&self.store.pool())
                .await
        }
        pub(super) async fn among(&self, ids: &[i64]) -> Result<Vec<(i64, String)>, sqlx::Error> {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let sql = super::id_list(&self.among, ids);
            // Not prepared for good: the list differs at every look-up, and the store's
            // statement cache (and the server's count of prepared statements, which Better
            // Auth shares) would fill with them.
            sqlx::query_as(&sql)
                .persistent(false)
                .fetch_all(&self.store.pool())
                .await
        }
        pub(super) async fn max_id(&self) -> Result<i64, sqlx::Error> {
            sqlx::query_scalar(&self.max)
                .fetch_one(&self.store.pool())
                .await
        }
        pub(super) async fn prune(&self, secs: u64) -> Result<u64, sqlx::Error> {
            Ok(sqlx::query(&self.prune)
                .bind(secs)
                .execute(&self.store.pool())
                .await?
                .rows_affected())
        }
    }
}

/// Watches a [`SqliteStore`](crate::SqliteStore)'s session table through a change table
/// (feature `sqlite` and `cache`): made by
/// [`SqliteStore::session_changes`](crate::SqliteStore::session_changes).
///
/// Works across processes on one file (a Better Auth server on Node and this crate), in WAL
/// mode as the store opens it.
#[cfg(feature = "sqlite")]
#[derive(Debug)]
#[must_use]
pub struct SqliteChangesBuilder {
    store: crate::store::SqliteStore,
    settings: Settings,
}

#[cfg(feature = "sqlite")]
impl SqliteChangesBuilder {
    pub(crate) fn new(
        store: crate::store::SqliteStore,
        delete_sql: &str,
        delete_user_sql: &str,
    ) -> Self {
        Self {
            store,
            settings: Settings::new(delete_sql, delete_user_sql),
        }
    }

    fn names(&self) -> Result<Names, StoreError> {
        Names::new(&self.settings, '"', Dialect::Sqlite)
    }

    fn table_for(&self, names: &Names) -> sqlite::Sqlite {
        sqlite::Sqlite::new(&self.store, names)
    }

    #[allow(clippy::unused_self)]
    fn create_error(&self, e: sqlx::Error) -> StoreError {
        cannot(
            "cannot create the session change table or its triggers",
            "check that the database file is writable and the session table exists, or run the \
             statements from .ddl() yourself",
            Some(Box::new(e)),
        )
    }

    builder_methods!("SqliteStore");
}

/// Watches a [`MySqlStore`](crate::store::MySqlStore)'s session table through a change table
/// (features `mysql` and `cache`): made by
/// [`MySqlStore::session_changes`](crate::store::MySqlStore::session_changes). MySQL 8 and
/// MariaDB 10.11+.
///
/// Creating the triggers needs the `TRIGGER` privilege and, with binary logging on and without
/// `SUPER`, `log_bin_trust_function_creators = 1`. MySQL does not run triggers for rows a
/// foreign key's `ON DELETE CASCADE` removes: a session deleted with its user by SQL alone is
/// not reported (Better Auth's `deleteUser` deletes the sessions first, which is reported).
#[cfg(feature = "mysql")]
#[derive(Debug)]
#[must_use]
pub struct MySqlChangesBuilder {
    store: crate::store::MySqlStore,
    settings: Settings,
}

#[cfg(feature = "mysql")]
impl MySqlChangesBuilder {
    pub(crate) fn new(
        store: crate::store::MySqlStore,
        delete_sql: &str,
        delete_user_sql: &str,
    ) -> Self {
        Self {
            store,
            settings: Settings::new(delete_sql, delete_user_sql),
        }
    }

    fn names(&self) -> Result<Names, StoreError> {
        Names::new(&self.settings, '`', Dialect::MySql)
    }

    fn table_for(&self, names: &Names) -> MySqlTable {
        MySqlTable {
            inner: mysql::MySql::new(&self.store, names),
            triggers: names
                .triggers()
                .map(|(name, table)| (name.to_owned(), table.to_owned())),
        }
    }

    #[allow(clippy::unused_self)]
    fn create_error(&self, e: sqlx::Error) -> StoreError {
        let message = e.to_string();
        let fix = if message.contains("SUPER") || message.contains("1419") {
            "binary logging is on: set log_bin_trust_function_creators = 1 on the server, or \
             have an administrator run the statements from .ddl()"
        } else if message.contains("denied") {
            "grant the store's user the TRIGGER and CREATE privileges on the database, or have \
             an administrator run the statements from .ddl()"
        } else if message.contains("1359") || message.contains("already exists") {
            "a trigger of the feed's name exists on a table this user cannot see (the session \
             table swapped for a copy, the old one kept?): have an administrator drop it there, \
             then start the feed again"
        } else {
            "check that the session table exists, or run the statements from .ddl() yourself"
        };
        cannot(
            "cannot create the session change table or its triggers",
            fix,
            Some(Box::new(e)),
        )
    }

    builder_methods!("MySqlStore");
}

/// MySQL has no `create trigger if not exists` before 8.0.29: each trigger is created only
/// when missing.
#[cfg(feature = "mysql")]
struct MySqlTable {
    inner: mysql::MySql,
    /// The feed's triggers, each with the table it belongs on.
    triggers: [(String, String); 3],
}

#[cfg(feature = "mysql")]
impl ChangeTable for MySqlTable {
    async fn run(&self, sql: &str) -> Result<(), sqlx::Error> {
        if sql.starts_with("create trigger") {
            for (name, table) in &self.triggers {
                let quoted = quote_with('`', name);
                if sql.starts_with(&format!("create trigger {quoted} "))
                    && self.inner.has_trigger(name, table).await?
                {
                    return Ok(());
                }
            }
        }
        self.inner.run(sql).await
    }

    async fn count_objects(&self, names: &Names) -> Result<i64, sqlx::Error> {
        self.inner.count_objects(names).await
    }
    fn has_trigger(
        &self,
        name: &str,
        table: &str,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send {
        self.inner.has_trigger(name, table)
    }
    fn trigger_table(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, sqlx::Error>> + Send {
        self.inner.trigger_table(name)
    }
    fn since(
        &self,
        after: i64,
    ) -> impl Future<Output = Result<Vec<(i64, String)>, sqlx::Error>> + Send {
        self.inner.since(after)
    }
    fn among(
        &self,
        ids: &[i64],
    ) -> impl Future<Output = Result<Vec<(i64, String)>, sqlx::Error>> + Send {
        self.inner.among(ids)
    }
    fn max_id(&self) -> impl Future<Output = Result<i64, sqlx::Error>> + Send {
        self.inner.max_id()
    }
    fn prune(&self, secs: u64) -> impl Future<Output = Result<u64, sqlx::Error>> + Send {
        self.inner.prune(secs)
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod late_tests {
    use std::sync::{Arc, Mutex};

    use time::OffsetDateTime;

    use super::*;
    use crate::model::{Session, StorageKey, User};
    use crate::store::{CachedStore, MemoryStore, SessionStore};

    /// A change table whose rows become visible when the test commits them.
    #[derive(Clone, Default)]
    struct Fake(Arc<Mutex<Vec<(i64, String)>>>);

    impl Fake {
        fn commit(&self, id: i64, token: &str) {
            self.0.lock().unwrap().push((id, token.to_owned()));
        }
        fn rows(&self, keep: impl Fn(i64) -> bool) -> Vec<(i64, String)> {
            let mut rows: Vec<_> = self
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|(id, _)| keep(*id))
                .cloned()
                .collect();
            rows.sort();
            rows
        }
    }

    impl ChangeTable for Fake {
        async fn since(&self, after: i64) -> Result<Vec<(i64, String)>, sqlx::Error> {
            Ok(self.rows(|id| id > after))
        }
        async fn among(&self, ids: &[i64]) -> Result<Vec<(i64, String)>, sqlx::Error> {
            Ok(self.rows(|id| ids.contains(&id)))
        }
        async fn max_id(&self) -> Result<i64, sqlx::Error> {
            Ok(self.rows(|_| true).last().map_or(0, |(id, _)| *id))
        }
        async fn prune(&self, _secs: u64) -> Result<u64, sqlx::Error> {
            Ok(0)
        }
        async fn run(&self, _sql: &str) -> Result<(), sqlx::Error> {
            Ok(())
        }
        async fn count_objects(&self, _names: &Names) -> Result<i64, sqlx::Error> {
            Ok(3)
        }
        async fn has_trigger(&self, _name: &str, _table: &str) -> Result<bool, sqlx::Error> {
            Ok(true)
        }
        async fn trigger_table(&self, _name: &str) -> Result<Option<String>, sqlx::Error> {
            Ok(Some("session".to_owned()))
        }
    }

    /// A feed polling `table` every 200 ms, from id 0, without creating anything.
    fn fake_feed(table: &Fake) -> SessionChanges {
        let settings = Settings::new(
            "delete from \"session\" where \"token\" = ?",
            "delete from \"user\" where \"id\" = ?",
        );
        let upkeep = Upkeep {
            names: Names::new(&settings, '"', Dialect::Sqlite).unwrap(),
            create: false,
            user_watched: true,
            reported: false,
            user_reported: false,
            missed: false,
        };
        let db = table.clone();
        SessionChanges::spawn("test", move |sink| {
            poll(
                db,
                upkeep,
                sink,
                0,
                Duration::from_millis(200),
                Duration::from_secs(300),
            )
        })
    }

    /// A cache watching `feed` over a memory store holding a session for each of `tokens`
    /// (one user's), each cached; and their keys.
    async fn cached_sessions(
        feed: &SessionChanges,
        tokens: &[&str],
    ) -> (CachedStore<MemoryStore>, Vec<StorageKey<'static>>) {
        let store = MemoryStore::new();
        let now = OffsetDateTime::now_utc();
        let user = User::new("late@example.com", "L", now);
        store.insert_user(user.clone());
        let mut keys = Vec::new();
        for token in tokens {
            let session = Session::for_tests(&user.id, token, now + time::Duration::days(1), now);
            keys.push(StorageKey::new(
                store.create(&session, &user).await.unwrap().token,
            ));
        }
        let cached = CachedStore::builder(store).watch(feed.clone()).build();
        for key in &keys {
            assert!(cached.find(key).await.unwrap().is_some());
        }
        (cached, keys)
    }

    /// Id 2 is taken by a transaction that commits only after id 3 was read and the poller's
    /// settling time has passed (it read past id 2): its change still reaches the cache, on
    /// a later look-up of the ids read past. Before, it was skipped for good.
    #[tokio::test(start_paused = true)]
    async fn a_change_committed_after_the_poller_read_past_its_id_is_applied() {
        let table = Fake::default();
        let feed = fake_feed(&table);
        let (cached, keys) = cached_sessions(&feed, &["first", "late", "third"]).await;
        let mut applied = feed.applied();

        table.commit(1, "first");
        table.commit(3, "third");
        tokio::time::timeout(SETTLE, applied.changed())
            .await
            .expect("ids 1 and 3 were reported")
            .unwrap();
        tokio::time::sleep(SETTLE * 2).await;
        // (Tokio's clock is paused: the sleep only moves it on.)
        let held = |key: &StorageKey<'_>| cached.holds(key);
        assert!(!held(&keys[0]) && !held(&keys[2]));
        assert!(held(&keys[1]), "nothing reported it yet");

        table.commit(2, "late");
        let applied_late = async {
            while held(&keys[1]) {
                applied.changed().await.unwrap();
            }
        };
        tokio::time::timeout(LATE_EVERY * 2, applied_late)
            .await
            .expect("the late change was applied within two look-ups");
    }

    /// The marker row an instance writes after it put triggers back drops every cached
    /// session, and a token in the same batch is still reported (an earlier version reads the
    /// marker as a token no session has).
    #[tokio::test(start_paused = true)]
    async fn the_all_marker_drops_every_cached_session() {
        let table = Fake::default();
        let feed = fake_feed(&table);
        let (cached, keys) = cached_sessions(&feed, &["one", "two"]).await;
        let mut applied = feed.applied();
        table.commit(1, ALL_MARK);
        table.commit(2, "unknown");
        let dropped = async {
            while keys.iter().any(|k| cached.holds(k)) {
                applied.changed().await.unwrap();
            }
        };
        tokio::time::timeout(SETTLE * 4, dropped)
            .await
            .expect("the marker dropped every cached session");
    }

    /// Of a long gap (a jump of the counter), its two ends; in all, the newest [`LATE_MAX`].
    #[test]
    fn ids_read_past_are_bounded() {
        let mut late = Late::new(Duration::from_secs(300));
        late.passed(0, 10, &BTreeSet::from([5]));
        let ids = |late: &Late| late.ids.keys().copied().collect::<Vec<_>>();
        assert_eq!(ids(&late), [1, 2, 3, 4, 6, 7, 8, 9, 10]);
        let mut late = Late::new(Duration::from_secs(300));
        late.passed(100, 1000, &BTreeSet::new());
        let expected: Vec<i64> = (101..=132).chain(969..=1000).collect();
        assert_eq!(ids(&late), expected);
        for step in 0..40 {
            late.passed(1000 + step * 64, 1000 + (step + 1) * 64, &BTreeSet::new());
        }
        assert_eq!(late.ids.len(), LATE_MAX);
        assert_eq!(late.ids.keys().last(), Some(&(1000 + 40 * 64)));
        // A short retention shortens the look-ups, so that pruning does not come first.
        assert_eq!(
            Late::new(Duration::from_secs(10)).keep,
            Duration::from_secs(6)
        );
    }
}
