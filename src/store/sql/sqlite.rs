//! The SQLite dialect: Better Auth's SQLite schema (spec §4.2, §4.3) on sqlx with a bundled
//! SQLite. Dates are written as `toISOString()` text, unix milliseconds (the Drizzle and Prisma
//! layouts) or unix seconds ([`DateFormat::UnixSeconds`]), and read and compared in whatever
//! form each row holds; booleans `0`/`1`.
//!
//! Writes go through one connection of their own and reads through a pool: SQLite has a single
//! write lock per file, so several pooled connections writing at once would wait for each other
//! in SQLite's sleeping busy handler; one writer queues them in order instead, and readers never
//! wait for it (WAL). Refreshes waiting for the writer at the same moment go out as one
//! statement ([`super::batch`]), and a background task keeps the write-ahead log short
//! ([`super::wal`]), so that no write waits for a checkpoint's `fsync`. Reads of a database file
//! run on the calling thread ([`super::inline`]) and fall back to the pool when they would
//! wait.

use std::str::FromStr;
use std::sync::Arc;

use rusqlite::types::{Null, ToSqlOutput};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, TypeInfo, ValueRef};
use time::OffsetDateTime;

use super::batch::Batcher;
use super::dialect::{Affected, Backend, ColumnType, ExtendMany, Param, Placeholder, Stmt, Syntax};
use super::inline::{InlineReader, InlineRow, Val};
use super::schema::{ddl, quote_with, DateFormat, DdlTypes, SessionColumn, SqlSchema};
use super::{SqlStore, SqliteStore};
use crate::error::{SchemaError, StoreError};
use crate::store::SchemaMode;
use crate::time_fmt;

/// The SQLite dialect of [`SqlStore`]: its connection pools and date format.
#[derive(Clone, Debug)]
pub struct SqliteDialect {
    read: SqlitePool,
    write: SqlitePool,
    dates: DateFormat,
    /// The connection that checkpoints the write-ahead log, for a file the store opened.
    checkpoint: Option<SqlitePool>,
    /// The refresh batcher, once the store is open.
    refresh: Option<Batcher<SqliteDialect>>,
    /// Reads on the calling thread, for a database file the store opened.
    inline: Option<Arc<InlineReader>>,
    /// Shared by every clone; the log keeper stops when the last one is dropped.
    alive: Arc<()>,
}

impl SqliteDialect {
    fn new(read: SqlitePool, write: SqlitePool, dates: DateFormat) -> Self {
        Self {
            read,
            write,
            dates,
            checkpoint: None,
            refresh: None,
            inline: None,
            alive: Arc::new(()),
        }
    }
}

/// Builds a [`SqliteStore`](super::SqliteStore) from a URL.
#[derive(Clone, Debug)]
#[must_use]
pub struct SqliteStoreBuilder {
    url: String,
    schema: SqlSchema,
    create: bool,
    readers: u32,
    inline: bool,
}

impl SqliteStoreBuilder {
    /// Table and column names. Default: [`SqlSchema::better_auth`].
    pub fn schema(mut self, schema: SqlSchema) -> Self {
        self.schema = schema;
        self
    }

    /// Create Better Auth's tables when they are absent. Default: `true` (an embedded database
    /// usually belongs to the app).
    pub fn create_schema(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// How many connections serve reads; writes always use one connection of their own.
    /// Default: 8. An in-memory database always uses one connection for everything.
    pub fn read_connections(mut self, n: u32) -> Self {
        self.readers = n.max(1);
        self
    }

    /// Run lookups on the thread that asks instead of sending them to a pooled connection's
    /// worker thread. Default: `true`, for a database file (an in-memory database always uses
    /// its one pooled connection).
    ///
    /// sqlx runs every SQLite connection on a thread of its own, and hands each query to it
    /// and each row back: three or four context switches per lookup, more than a lookup by
    /// token costs when its pages are in the page cache. Over HTTP with 10,000 sessions the
    /// same query served 1.4 to 1.6 times as many requests run on the calling thread
    /// (`BENCHMARKS.md` compares it with a hand-written sqlx query on the same file). These
    /// reads use up to [`read_connections`](Self::read_connections) connections of their own
    /// and never wait: a read that would wait for a lock, or fails, goes through the pool.
    ///
    /// Turn it off when the file lives where a read can block for long (a network file
    /// system, a disk that is not local): a lookup would then hold an async worker thread
    /// while it waits for the disk.
    pub fn inline_reads(mut self, inline: bool) -> Self {
        self.inline = inline;
        self
    }

    /// Opens the database (creating the file if needed) and checks (or creates) the schema.
    ///
    /// # Errors
    ///
    /// A backend error when the URL is invalid or the file cannot be opened, or
    /// [`StoreError::Schema`] naming the missing table or column.
    pub async fn build(self) -> Result<SqliteStore, StoreError> {
        let options = connect_options(&self.url)?;
        let mode = if self.create {
            SchemaMode::CreateIfMissing
        } else {
            SchemaMode::VerifyOnly
        };
        let dialect = if is_memory(&self.url) {
            // An in-memory database exists per connection: keep exactly one, for everything.
            let pool = pool(options, 1).await?;
            SqliteDialect::new(pool.clone(), pool, self.schema.sqlite_dates)
        } else {
            // The log keeper checkpoints; the connections themselves only if it falls behind.
            let options =
                options.pragma("wal_autocheckpoint", super::wal::FALLBACK_PAGES.to_string());
            // The writer first: it creates the file and switches it to WAL before readers open it.
            let write = pool(options.clone(), 1).await?;
            let read = pool(options.clone(), self.readers).await?;
            let mut dialect = SqliteDialect::new(read, write, self.schema.sqlite_dates);
            if self.inline {
                // The writer has created the file and switched it to WAL.
                let keep = usize::try_from(self.readers).unwrap_or(usize::MAX);
                let path = options.get_filename().to_path_buf();
                dialect.inline = Some(Arc::new(
                    InlineReader::open(path, keep)
                        .map_err(|e| StoreError::backend("connect", e))?,
                ));
            }
            dialect.checkpoint = Some(pool(options, 1).await?);
            dialect
        };
        let store = SqlStore::open_dialect(dialect, mode, self.schema.clone()).await?;
        check_dates(&store, &self.schema).await?;
        Ok(store)
    }
}

fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

fn connect_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::backend("connect", e))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // WAL's recommended setting: a commit is not flushed to disk on its own, only at
        // checkpoints. The database cannot be corrupted; a power cut can lose the last
        // refreshes or sign-ins, which for sessions means signing in again. With `FULL`, every
        // refresh waited for an fsync.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .pragma("mmap_size", "268435456"))
}

async fn pool(options: SqliteConnectOptions, max: u32) -> Result<SqlitePool, StoreError> {
    SqlitePoolOptions::new()
        // No ping before each use: an in-process database has no connection to lose.
        .test_before_acquire(false)
        .max_connections(max)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(std::time::Duration::from_secs(2))
        .connect_with(options)
        .await
        .map_err(|e| StoreError::backend("connect", e))
}

impl SqlStore<SqliteDialect> {
    /// Opens (creating the file if needed) the database at `url`, such as
    /// `sqlite://app.db`, in WAL mode, and creates Better Auth's tables when they are absent.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_auth_session::SqliteStore;
    ///
    /// let store = SqliteStore::connect("sqlite::memory:").await?;
    /// # let _ = store; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// Fails when the file cannot be opened, or when existing tables lack a column the store
    /// needs ([`StoreError::Schema`], naming it).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).build().await
    }

    /// A builder for a store at `url`, to change the schema or the pool.
    pub fn builder(url: impl Into<String>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            url: url.into(),
            schema: SqlSchema::better_auth(),
            create: true,
            readers: 8,
            inline: true,
        }
    }

    /// A pool for `url` with the settings the store expects: the file is created if missing,
    /// WAL journal, foreign keys on, a 2-second acquire timeout, and reads through a memory map
    /// of up to 256 MiB (`PRAGMA mmap_size`).
    ///
    /// The memory map lets a lookup read pages straight from the operating system's page cache,
    /// shared by every connection, instead of a `read` system call per page: pinned to one CPU,
    /// a lookup over 10,000 sessions went from 19 µs to 12.6 µs. It reserves address space, not
    /// memory. Build your own pool and pass it to [`open`](Self::open) to choose otherwise.
    ///
    /// # Errors
    ///
    /// A backend error when the URL is invalid or the file cannot be opened.
    pub async fn pool_for(url: &str) -> Result<SqlitePool, StoreError> {
        let max = if is_memory(url) { 1 } else { 8 };
        pool(connect_options(url)?, max).await
    }

    /// Uses an existing pool, for reads and writes, with Better Auth's default schema. With
    /// [`SchemaMode::VerifyOnly`] nothing is ever created.
    ///
    /// # Errors
    ///
    /// [`StoreError::Schema`] naming the missing table or column, or a backend error.
    pub async fn open(pool: SqlitePool, mode: SchemaMode) -> Result<Self, StoreError> {
        Self::open_with(pool, mode, SqlSchema::better_auth()).await
    }

    /// Uses an existing pool, for reads and writes, with custom table and column names (for
    /// example [`SqlSchema::drizzle`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::Schema`] naming the missing table or column, or a backend error.
    pub async fn open_with(
        pool: SqlitePool,
        mode: SchemaMode,
        schema: SqlSchema,
    ) -> Result<Self, StoreError> {
        let dialect = SqliteDialect::new(pool.clone(), pool, schema.sqlite_dates);
        let store = SqlStore::open_dialect(dialect, mode, schema.clone()).await?;
        check_dates(&store, &schema).await?;
        Ok(store)
    }

    /// The pool for the store's reads, for the application's own queries. (The store's writes
    /// use a connection of their own; writes made through this pool wait for SQLite's write lock
    /// as usual. A store built with [`inline_reads`](SqliteStoreBuilder::inline_reads) runs its
    /// own lookups on the calling thread and only falls back to this pool.)
    pub fn pool(&self) -> &SqlitePool {
        &self.dialect().read
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, SqliteArguments<'q>>;

impl SqliteDialect {
    fn query<'q>(&self, stmt: &'q Stmt, params: &[Param<'q>]) -> Result<Query<'q>, StoreError> {
        let mut query = sqlx::query(&stmt.sql);
        for &i in &stmt.binds {
            let param = params.get(i).copied().ok_or_else(|| {
                StoreError::backend("bind", std::io::Error::other("missing parameter"))
            })?;
            query = match param {
                Param::Text(s) => query.bind(s),
                Param::OptText(s) => query.bind(s),
                Param::Bool(b) => query.bind(i64::from(b)),
                Param::Int(n) => query.bind(n),
                Param::Date(t) => match self.dates {
                    DateFormat::IsoText => query.bind(time_fmt::to_iso(t)),
                    DateFormat::UnixMillis => query.bind(time_fmt::to_unix_ms(t)),
                    DateFormat::UnixSeconds => query.bind(unix_secs(t)),
                },
            };
        }
        Ok(query)
    }

    /// Reads on the calling thread: `None` when there is no inline reader, or the read could
    /// not run there without waiting; the caller then uses the read pool.
    fn read_inline(
        &self,
        stmt: &Stmt,
        params: &[Param<'_>],
        limit: usize,
    ) -> Option<Vec<SqliteRecord>> {
        let inline = self.inline.as_deref()?;
        let mut binds = Vec::with_capacity(stmt.binds.len());
        for &i in &stmt.binds {
            binds.push(match *params.get(i)? {
                Param::Text(s) => ToSqlOutput::from(s),
                Param::OptText(s) => s.map_or(ToSqlOutput::from(Null), ToSqlOutput::from),
                Param::Bool(b) => ToSqlOutput::from(i64::from(b)),
                Param::Int(n) => ToSqlOutput::from(n),
                Param::Date(t) => match self.dates {
                    DateFormat::IsoText => ToSqlOutput::from(time_fmt::to_iso(t)),
                    DateFormat::UnixMillis => ToSqlOutput::from(time_fmt::to_unix_ms(t)),
                    DateFormat::UnixSeconds => ToSqlOutput::from(unix_secs(t)),
                },
            });
        }
        let rows = inline.query(&stmt.sql, &binds, limit)?;
        Some(rows.into_iter().map(SqliteRecord::Inline).collect())
    }
}

impl Backend for SqliteDialect {
    type Row = SqliteRecord;

    const NAME: &'static str = "SQLite";

    const SYNTAX: Syntax = Syntax {
        quote: '"',
        placeholder: Placeholder::QuestionNumbered,
        returning: true,
        delete_limit: false,
        id_casts: None,
        text_cast: None,
        dates_in_any_class: true,
        date_types: &[],
    };

    async fn fetch_optional<'a>(
        &'a self,
        operation: &'static str,
        stmt: &'a Stmt,
        params: &'a [Param<'a>],
        write: bool,
    ) -> Result<Option<SqliteRecord>, StoreError> {
        if !write {
            if let Some(rows) = self.read_inline(stmt, params, 1) {
                return Ok(rows.into_iter().next());
            }
        }
        let pool = if write { &self.write } else { &self.read };
        self.query(stmt, params)?
            .fetch_optional(pool)
            .await
            .map(|row| row.map(SqliteRecord::Pool))
            .map_err(|e| StoreError::backend(operation, e))
    }

    async fn extend<'a>(
        &'a self,
        stmt: &'a Stmt,
        key: &'a str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<SqliteRecord>, StoreError> {
        if let Some(batcher) = &self.refresh {
            return batcher.extend(key, expires_at, now).await;
        }
        let params = [Param::Date(expires_at), Param::Date(now), Param::Text(key)];
        self.fetch_optional("extend", stmt, &params, true).await
    }

    fn ready(&mut self, extend_many: &ExtendMany) {
        // The batcher's statements all go to the writer connection.
        let writer = Self::new(self.write.clone(), self.write.clone(), self.dates);
        self.refresh = Some(Batcher::new(writer, extend_many));
        if let Some(checkpoint) = &self.checkpoint {
            super::wal::keep_short(
                checkpoint.clone(),
                self.write.clone(),
                Arc::downgrade(&self.alive),
            );
        }
    }

    async fn fetch_all<'a>(
        &'a self,
        operation: &'static str,
        stmt: &'a Stmt,
        params: &'a [Param<'a>],
    ) -> Result<Vec<SqliteRecord>, StoreError> {
        if let Some(rows) = self.read_inline(stmt, params, usize::MAX) {
            return Ok(rows);
        }
        self.query(stmt, params)?
            .fetch_all(&self.read)
            .await
            .map(|rows| rows.into_iter().map(SqliteRecord::Pool).collect())
            .map_err(|e| StoreError::backend(operation, e))
    }

    async fn execute<'a>(
        &'a self,
        operation: &'static str,
        stmt: &'a Stmt,
        params: &'a [Param<'a>],
    ) -> Result<Affected, StoreError> {
        self.query(stmt, params)?
            .execute(&self.write)
            .await
            .map(|done| done.rows_affected())
            .map_err(|e| StoreError::backend(operation, e))
    }

    const COLUMNS_SQL: &'static str = "select name, type, type, \
         case when \"notnull\" = 1 and dflt_value is null and pk = 0 then 'yes' else 'no' end \
         from pragma_table_info(?1)";

    /// SQLite's type affinity rules (§3.1 of its datatype docs), reduced to what an id column
    /// can be.
    fn column_kind(data_type: &str, _full_type: &str) -> ColumnType {
        let upper = data_type.to_ascii_uppercase();
        if upper.contains("INT") {
            ColumnType::Integer
        } else if upper.is_empty()
            || upper.contains("CHAR")
            || upper.contains("CLOB")
            || upper.contains("TEXT")
            || upper == "UUID"
        {
            ColumnType::Text
        } else {
            ColumnType::Other(data_type.to_owned())
        }
    }

    fn ddl(&self, schema: &SqlSchema) -> [String; 3] {
        let date = match self.dates {
            DateFormat::IsoText => "date",
            DateFormat::UnixMillis | DateFormat::UnixSeconds => "integer",
        };
        ddl(
            schema,
            &Self::SYNTAX,
            &DdlTypes {
                text: "text",
                short_text: "text",
                unique_text: "text",
                id_text: "text",
                uuid: None,
                serial_primary: "integer primary key autoincrement",
                integer: "integer",
                date,
                boolean: "integer",
                date_default: "",
                index_if_not_exists: true,
            },
        )
    }

    async fn run_ddl<'a>(&'a self, statement: &'a str) -> Result<(), StoreError> {
        sqlx::query(statement)
            .execute(&self.write)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::backend("create schema", e))
    }

    /// Text, or an integer as its decimal string (Better Auth's `generateId: "serial"` ids
    /// are integers in the database and `String(n)` in JavaScript).
    fn text(row: &SqliteRecord, idx: usize) -> Result<Option<String>, String> {
        Ok(match value(row, idx)? {
            Val::Null => None,
            Val::Integer(n) => Some(n.to_string()),
            Val::Real(f) => Some(f.to_string()),
            Val::Text(s) => Some(s.to_owned()),
            Val::Blob(b) => Some(utf8(b)?.to_owned()),
        })
    }

    /// A date stored as ISO text (Better Auth's Kysely path), as unix milliseconds (its
    /// Drizzle generator) or as unix seconds (Drizzle's `timestamp` mode): a number below
    /// [`time_fmt::SECONDS_BELOW`] counts as seconds, as in the statements' comparisons.
    fn date(row: &SqliteRecord, idx: usize) -> Result<Option<OffsetDateTime>, String> {
        let text_date = |s: &str| match s.trim().parse::<i64>() {
            Ok(n) => time_fmt::from_unix_number(n),
            Err(_) => time_fmt::parse_iso(s),
        };
        let parsed = match value(row, idx)? {
            Val::Null => return Ok(None),
            Val::Integer(n) => time_fmt::from_unix_number(n),
            Val::Real(f) => time_fmt::from_unix_float(f),
            Val::Text(s) => text_date(s),
            Val::Blob(b) => std::str::from_utf8(b).ok().and_then(text_date),
        };
        parsed.map(Some).ok_or_else(|| "not a date".to_owned())
    }

    fn boolean(row: &SqliteRecord, idx: usize) -> Result<Option<bool>, String> {
        Ok(match value(row, idx)? {
            Val::Null => None,
            // As Better Auth's adapter reads a number in a boolean column: `=== 1`.
            Val::Integer(v) => Some(v == 1),
            #[allow(clippy::float_cmp)]
            Val::Real(f) => Some(f == 1.0),
            Val::Text(s) => Some(matches!(s, "1" | "true")),
            Val::Blob(b) => Some(matches!(b, b"1" | b"true")),
        })
    }

    fn json(row: &SqliteRecord, idx: usize) -> Value {
        match value(row, idx) {
            Ok(Val::Integer(n)) => Value::from(n),
            Ok(Val::Real(f)) => Value::from(f),
            Ok(Val::Text(s)) => Value::from(s),
            Ok(Val::Blob(b)) => Value::from(String::from_utf8_lossy(b).into_owned()),
            Ok(Val::Null) | Err(_) => Value::Null,
        }
    }
}

/// A row of the SQLite store: read on the calling thread, or through a pooled connection.
pub enum SqliteRecord {
    /// Read through sqlx's pool (and every row a write returns).
    Pool(SqliteRow),
    /// Read on the calling thread.
    Inline(InlineRow),
}

/// Refuses a session table whose expiries (a sample of up to 256 rows) are all stored in
/// another form than `schema` says, since the store would then write dates that Better Auth's
/// adapter reads wrongly; warns when the rows mix forms (each is still read and compared
/// right). For an empty table, a declared type that disagrees is a warning
/// ([`check_declared_date_type`]).
async fn check_dates(store: &SqliteStore, schema: &SqlSchema) -> Result<(), StoreError> {
    let table = &schema.session_table;
    let column = &schema.session[SessionColumn::ExpiresAt as usize];
    let sql = format!(
        "select {c} from {t} where {c} is not null limit 256",
        c = quote_with('"', column),
        t = quote_with('"', table),
    );
    let rows = sqlx::query(&sql)
        .fetch_all(store.pool())
        .await
        .map_err(|e| StoreError::backend("check dates", e))?;
    let mut seen: Vec<(DateFormat, usize)> = Vec::new();
    for row in &rows {
        let Ok(raw) = row.try_get_raw(0) else {
            continue;
        };
        let name = raw.type_info().name().to_ascii_uppercase();
        let number = match name.as_str() {
            "INTEGER" => row.try_get::<i64, _>(0).ok(),
            "REAL" => row.try_get::<f64, _>(0).ok().map(|f| f as i64),
            "BLOB" => row
                .try_get::<Vec<u8>, _>(0)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.trim().parse::<i64>().ok()),
            _ => row
                .try_get::<String, _>(0)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok()),
        };
        let format = match number {
            Some(n) if time_fmt::counts_as_seconds(n) => DateFormat::UnixSeconds,
            Some(_) => DateFormat::UnixMillis,
            None => DateFormat::IsoText,
        };
        match seen.iter_mut().find(|(f, _)| *f == format) {
            Some((_, n)) => *n += 1,
            None => seen.push((format, 1)),
        }
    }
    let configured = schema.sqlite_dates;
    match seen.as_slice() {
        [] => check_declared_date_type(store, table, column, configured).await,
        [(found, _)] if *found == configured => Ok(()),
        [(found, _)] => Err(SchemaError::DateFormatMismatch {
            table: table.clone(),
            column: column.clone(),
            found: found.describe(),
            configured: configured.describe(),
            fix: found.setting(),
        }
        .into()),
        mixed => {
            let forms: Vec<String> = mixed
                .iter()
                .map(|(f, n)| format!("{n} as {}", f.describe()))
                .collect();
            tracing::warn!(
                table = %table,
                column = %column,
                forms = %forms.join(", "),
                writes = configured.describe(),
                "the session table's expiries are stored in more than one form: the store reads \
                 and compares each right, but Better Auth's adapter may not; set \
                 SqlSchema::sqlite_dates to the form its adapter writes"
            );
            Ok(())
        }
    }
}

/// With no session yet, the expiry column's declared type hints at what its adapter writes:
/// Better Auth's migration declares `date` (and its Kysely adapter writes ISO text), Drizzle's
/// `integer(…, { mode: "timestamp_ms" })` declares `integer` (and writes numbers). In SQLite a
/// number sorts below any text, so a form other than the adapter's makes Better Auth list no
/// live session, or keep expired ones live. The declared type tells which tool made the table,
/// not which one writes it (Better Auth's adapter may write into a table drizzle-kit made), so
/// a disagreement is only a warning; the rows, once there are some, decide
/// ([`check_dates`]). Other declared types (Prisma's `DATETIME`, which its engine and its
/// driver adapters fill differently) say nothing.
async fn check_declared_date_type(
    store: &SqliteStore,
    table: &str,
    column: &str,
    configured: DateFormat,
) -> Result<(), StoreError> {
    let declared: Option<String> =
        sqlx::query_scalar("select type from pragma_table_info(?1) where name = ?2")
            .bind(table)
            .bind(column)
            .fetch_optional(store.pool())
            .await
            .map_err(|e| StoreError::backend("check dates", e))?;
    let declared = declared.unwrap_or_default().to_ascii_lowercase();
    let hint = if declared.contains("int") {
        (configured == DateFormat::IsoText).then_some("DateFormat::UnixMillis or UnixSeconds")
    } else if declared == "date" || declared == "text" {
        (configured != DateFormat::IsoText).then_some("DateFormat::IsoText")
    } else {
        None
    };
    if let Some(setting) = hint {
        tracing::warn!(
            table = %table,
            column = %column,
            declared = %declared,
            writes = configured.describe(),
            "the session table has no row yet, and its expiry column's declared type suggests \
             another date form than the store writes: if Better Auth's adapter writes this table, \
             check SqlSchema::sqlite_dates (perhaps {setting}); the first rows will tell"
        );
    }
    Ok(())
}

/// `t` in whole unix seconds (floored), for [`DateFormat::UnixSeconds`].
fn unix_secs(t: OffsetDateTime) -> i64 {
    time_fmt::to_unix_ms(t).div_euclid(1000)
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| e.to_string())
}

/// Column `idx` of `row`, read without allocating, as it is for every column of every row a
/// lookup returns.
fn value(row: &SqliteRecord, idx: usize) -> Result<Val<'_>, String> {
    let row = match row {
        SqliteRecord::Inline(row) => return row.get(idx),
        SqliteRecord::Pool(row) => row,
    };
    let raw = row.try_get_raw(idx).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(Val::Null);
    }
    let info = raw.type_info();
    let name = info.name();
    let value = if name.eq_ignore_ascii_case("INTEGER") {
        row.try_get_unchecked(idx).map(Val::Integer)
    } else if name.eq_ignore_ascii_case("REAL") {
        row.try_get_unchecked(idx).map(Val::Real)
    } else if name.eq_ignore_ascii_case("BLOB") {
        row.try_get_unchecked(idx).map(Val::Blob)
    } else {
        row.try_get_unchecked(idx).map(Val::Text)
    };
    value.map_err(|e| e.to_string())
}

/// The session change feed (features `sqlite` and `cache`): see [`crate::store::changes`].
#[cfg(feature = "cache")]
impl SqlStore<SqliteDialect> {
    /// A feed of the session rows deleted or updated (by Better Auth or anyone), from triggers
    /// that write them into a change table polled every 200 ms, for
    /// [`CachedStoreBuilder::watch`](crate::store::CachedStoreBuilder::watch). See
    /// [`SqliteChangesBuilder`](crate::store::SqliteChangesBuilder) for the options.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_auth_session::store::CachedStore;
    /// use tower_auth_session::SqliteStore;
    ///
    /// let store = SqliteStore::connect("sqlite::memory:").await?;
    /// let changes = store.session_changes().create_trigger(true).start().await?;
    /// let cached = CachedStore::builder(store).watch(changes).build();
    /// # let _ = cached; Ok(()) }
    /// ```
    pub fn session_changes(&self) -> crate::store::SqliteChangesBuilder {
        crate::store::SqliteChangesBuilder::new(
            self.clone(),
            &self.q.delete.sql,
            &self.q.delete_user.sql,
        )
    }
}
