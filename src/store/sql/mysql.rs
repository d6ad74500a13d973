//! The MySQL and MariaDB dialect: Better Auth's MySQL schema as its own migration creates it
//! (`varchar(36)` ids, `varchar(255)` tokens and e-mails, `timestamp(3)` dates, `boolean`
//! shown as `tinyint(1)`), on sqlx with rustls.
//!
//! * There is no `RETURNING`: a refresh is the conditional `UPDATE` then a `SELECT`, and a serial
//!   id is read back with `last_insert_id()` on the same connection.
//! * Dates are written and read as UTC wall-clock time, on connections whose session
//!   `time_zone` is `'+00:00'` (by default). Better Auth's `mysql2` driver writes JavaScript
//!   dates as wall-clock time in the Node process's *local* zone unless its pool has
//!   `timezone: "Z"`, and never sets `time_zone`, so its connections use the server's default.
//!   Rows agree when `mysql2` writes UTC (`timezone: "Z"`, or Node run with `TZ=UTC`) and the
//!   store's [`time_zone`](MySqlStoreBuilder::time_zone) is the session zone of Better Auth's
//!   connections: the server's default (`SELECT @@global.time_zone`), which is `+00:00` on most
//!   managed servers. (For `timestamp` columns MySQL converts between that zone and UTC;
//!   `datetime` columns store the wall-clock time as written, whatever the zone.)
//! * TLS follows the URL's `ssl-mode` (`DISABLED`, `PREFERRED` (the default), `REQUIRED`,
//!   `VERIFY_CA`, `VERIFY_IDENTITY`) and `ssl-ca`, as the MySQL client does; connections that
//!   fail are never reused ([`super::pool`]), as with PostgreSQL.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::mysql::{
    MySqlArguments, MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlPool,
    MySqlPoolOptions, MySqlRow, MySqlSslMode,
};
use sqlx::{Connection as _, Row, TypeInfo, ValueRef};
use time::{OffsetDateTime, PrimitiveDateTime};

use super::dialect::{Affected, Backend, ColumnType, Param, Placeholder, Stmt, Syntax, TypeName};
use super::pool::{self, network_builder_methods, Guard, NetworkOptions, Pools, Want};
use super::schema::{ddl, DdlTypes, SqlSchema};
use super::{MySqlStore, SqlStore};
use crate::error::StoreError;
use crate::time_fmt;

/// The MySQL dialect of [`SqlStore`]: its connection pool and how it connects.
#[derive(Clone, Debug)]
pub struct MySqlDialect {
    pools: Arc<Pools<sqlx::MySql>>,
    timeout: Duration,
}

/// Builds a [`MySqlStore`] from a URL such as
/// `mysql://user:password@db.example.com:3306/app?ssl-mode=VERIFY_IDENTITY`.
#[derive(Clone, Debug)]
#[must_use]
pub struct MySqlStoreBuilder {
    common: NetworkOptions,
    ssl_mode: Option<MySqlSslMode>,
    time_zone: String,
}

impl MySqlStoreBuilder {
    network_builder_methods!();

    /// The TLS mode; overrides the URL's `ssl-mode`. Default: the URL's, else
    /// [`MySqlSslMode::Preferred`].
    pub fn ssl_mode(mut self, mode: MySqlSslMode) -> Self {
        self.ssl_mode = Some(mode);
        self
    }

    /// The session `time_zone` of the store's connections (`"+00:00"`, `"-05:00"`). Set it to
    /// the session zone of Better Auth's `mysql2` connections, which is the server's default
    /// (`SELECT @@global.time_zone`) when that is not UTC, with `mysql2` writing UTC
    /// (`timezone: "Z"`): MySQL then converts `timestamp` values the same way for both. It does
    /// not make up for `mysql2` writing local time: give it `timezone: "Z"`. Default:
    /// `"+00:00"`.
    pub fn time_zone(mut self, zone: impl Into<String>) -> Self {
        self.time_zone = zone.into();
        self
    }

    /// Connects and checks (or creates) the schema.
    ///
    /// # Errors
    ///
    /// A backend error when the server cannot be reached; [`StoreError::Connect`] when TLS
    /// refuses the connection, saying what to change; [`StoreError::Schema`] naming the missing
    /// table or column.
    pub async fn build(self) -> Result<MySqlStore, StoreError> {
        let mut options = MySqlConnectOptions::from_str(&self.common.url)
            .map_err(|e| StoreError::backend("connect", e))?
            .timezone(Some(self.time_zone.clone()));
        if let Some(mode) = self.ssl_mode {
            options = options.ssl_mode(mode);
        }
        if let Some(pem) = self.common.root_cert.clone() {
            options = options.ssl_ca_from_pem(pem);
        }
        let root_cert = self.common.root_cert.is_some() || names_a_root_cert(&self.common.url);
        let mode = verified(options.get_ssl_mode(), root_cert);
        options = options.ssl_mode(mode);
        let limits = ServerLimits::new(self.common.timeout);
        let pool_options: MySqlPoolOptions = self
            .common
            .pool_options()
            .after_connect(move |conn, _| limits.apply(conn));
        let pool = pool_options
            .clone()
            .connect_with(options.clone())
            .await
            .map_err(|e| explain(&e).unwrap_or_else(|| StoreError::backend("connect", e)))?;
        warn_if_plaintext(&options).await;
        warn_if_zones_differ(&pool, &self.time_zone).await;
        let mode = self.common.mode();
        let schema = self.common.schema;
        let expiry = (
            schema.session_table.clone(),
            schema.session[super::SessionColumn::ExpiresAt as usize].clone(),
        );
        let dialect = MySqlDialect {
            pools: Arc::new(Pools::new(pool.clone(), options, pool_options)),
            timeout: self.common.timeout,
        };
        let store = SqlStore::open_dialect(dialect, mode, schema).await?;
        warn_if_expiry_updates_itself(&pool, &expiry.0, &expiry.1).await;
        Ok(store)
    }
}

/// The server's own limits, a little under the store's deadline, on each connection. The
/// deadline alone is the client's: when it passes, the store closes the connection, but a
/// server thread waiting on a lock (a `LOCK TABLES`, an `ALTER TABLE` queued behind a long
/// transaction) still counts its client as connected (sqlx's goodbye sits unread in its
/// socket) and waits until `lock_wait_timeout`, a year by default: every request then left one
/// thread waiting, and committing late, until `max_connections` refused everyone, Better Auth
/// included. With the limits the server gives up first.
#[derive(Clone, Copy, Debug)]
struct ServerLimits {
    /// `lock_wait_timeout` and `innodb_lock_wait_timeout`: whole seconds, at least 1.
    lock_secs: u64,
    /// The statement time limit in milliseconds.
    statement_ms: u64,
}

impl ServerLimits {
    fn new(timeout: Duration) -> Self {
        let limit = pool::server_limit(timeout);
        Self {
            lock_secs: limit.as_secs().max(1),
            // MySQL's `max_execution_time` is an unsigned 32-bit count of milliseconds.
            statement_ms: u64::try_from(limit.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, u64::from(u32::MAX)),
        }
    }

    /// Sets the limits on a new connection: the lock waits (both servers), and the statement
    /// time as the server names it (MariaDB's `max_statement_time`, every statement, in
    /// seconds; MySQL's `max_execution_time`, `SELECT`s, in milliseconds). A server that
    /// refuses one (a proxy that allows no `SET`) still serves, with a warning.
    fn apply(
        self,
        conn: &mut MySqlConnection,
    ) -> futures_util::future::BoxFuture<'_, Result<(), sqlx::Error>> {
        use sqlx::Executor as _;
        Box::pin(async move {
            let locks = format!(
                "set session lock_wait_timeout = {0}, innodb_lock_wait_timeout = {0}",
                self.lock_secs
            );
            if let Err(error) = conn.execute(locks.as_str()).await {
                tracing::warn!(%error, "could not set the connection's lock wait limits");
            }
            let mariadb = format!(
                "set session max_statement_time = {}",
                self.statement_ms as f64 / 1000.0
            );
            if conn.execute(mariadb.as_str()).await.is_err() {
                let mysql = format!("set session max_execution_time = {}", self.statement_ms);
                if let Err(error) = conn.execute(mysql.as_str()).await {
                    tracing::warn!(%error, "could not set the connection's statement time limit");
                }
            }
            Ok(())
        })
    }
}

/// Logs one warning when the server's default `time_zone`, which Better Auth's `mysql2`
/// connections keep (it never sets one), is another offset from UTC than the store's sessions'
/// `zone`: MySQL converts `timestamp` values through the session's zone, so each side reads
/// the other's dates that far apart (east of UTC, sessions look expired early and their rows
/// are deleted; west of it, a session Better Auth ended stays valid for hours). Says nothing
/// when the check itself fails or the server cannot convert its zone (named zones without the
/// time zone tables).
async fn warn_if_zones_differ(pool: &MySqlPool, zone: &str) {
    let offsets: Result<(Option<i64>, Option<i64>, String), _> = sqlx::query_as(
        "select timestampdiff(minute, utc_timestamp(), now()), \
         timestampdiff(minute, utc_timestamp(), \
         convert_tz(utc_timestamp(), '+00:00', @@global.time_zone)), \
         cast(@@global.time_zone as char)",
    )
    .fetch_one(pool)
    .await;
    if let Ok((Some(ours), Some(theirs), global)) = offsets {
        if ours != theirs {
            tracing::warn!(
                store_time_zone = zone,
                server_time_zone = %global,
                minutes_apart = theirs - ours,
                "the server's default time_zone, which Better Auth's mysql2 connections use, is \
                 not the store's: `timestamp` dates written by one read the other's offset apart \
                 (sessions expire early, or ended ones stay valid). Give the store the server's \
                 zone with MySqlStoreBuilder::time_zone (the value of @@global.time_zone), and \
                 keep mysql2's `timezone: \"Z\"`"
            );
        }
    }
}

/// Logs one warning when the session table's expiry column updates itself: on MySQL, and on
/// MariaDB before 10.10, with `explicit_defaults_for_timestamp` off, the first `timestamp`
/// column declared without a default (Better Auth's migration declares `expiresAt` so) becomes
/// `ON UPDATE CURRENT_TIMESTAMP`, and every update that does not set it (Better Auth's
/// `update-session`, the organization plugin's set-active) ends the session. Says nothing when
/// the check itself fails.
async fn warn_if_expiry_updates_itself(pool: &sqlx::MySqlPool, table: &str, column: &str) {
    let extra: Result<Option<String>, _> = sqlx::query_scalar(
        "select cast(extra as char) from information_schema.columns \
         where table_schema = database() and table_name = ? and column_name = ?",
    )
    .bind(table)
    .bind(column)
    .fetch_optional(pool)
    .await;
    if let Ok(Some(extra)) = extra {
        if extra.to_ascii_lowercase().contains("on update") {
            tracing::warn!(
                table,
                column,
                extra,
                "the session expiry column updates itself on every update of the row (MariaDB \
                 before 10.10 or MySQL with explicit_defaults_for_timestamp off made it so): an \
                 update that does not set it, such as Better Auth's update-session, ends the \
                 session. Fix the column: alter table … modify … timestamp(3) not null default \
                 current_timestamp(3)"
            );
        }
    }
}

/// Where a MySQL user gives a private CA.
const CA_HINT: crate::store::tls::CaHint = crate::store::tls::CaHint {
    url: "ssl-ca=/path/to/ca.pem in the URL",
    builder: "MySqlStoreBuilder::tls_root_cert_pem",
    wrong_name: "connect with a host name the certificate names (ssl-mode=VERIFY_IDENTITY \
                 checks it)",
};

/// A TLS failure as an error naming TLS and the fix.
fn explain(error: &sqlx::Error) -> Option<StoreError> {
    match error {
        sqlx::Error::Tls(_) | sqlx::Error::Io(_) => crate::store::tls::explain(error, &CA_HINT)
            .map(|found| {
                crate::store::tls::connect_error(found, std::io::Error::other(error.to_string()))
            }),
        _ => None,
    }
}

/// Logs one warning when the connection to a remote server is not encrypted.
async fn warn_if_plaintext(options: &MySqlConnectOptions) {
    if options.get_socket().is_some() || crate::store::tls::is_local(options.get_host()) {
        return;
    }
    let plaintext = match options.get_ssl_mode() {
        MySqlSslMode::Disabled => true,
        MySqlSslMode::Preferred => {
            let probe = options.clone().ssl_mode(MySqlSslMode::Required);
            match MySqlConnection::connect_with(&probe).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    false
                }
                Err(sqlx::Error::Tls(_)) => true,
                Err(_) => false,
            }
        }
        _ => false,
    };
    if plaintext {
        tracing::warn!(
            host = options.get_host(),
            "the session store talks to MySQL in plaintext over the network: add \
             ?ssl-mode=VERIFY_IDENTITY (and ssl-ca=… for a private CA) to the database URL"
        );
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::MySql, MySqlArguments>;

fn query<'q>(stmt: &'q Stmt, params: &[Param<'q>]) -> Result<Query<'q>, sqlx::Error> {
    pool::bind(sqlx::query(&stmt.sql), stmt, params)
}

type Got = pool::Got<MySqlRow>;

impl MySqlDialect {
    /// Runs `statements` in order on one healthy connection, under the store's deadline; the
    /// last one's result is returned.
    async fn run(
        &self,
        operation: &'static str,
        statements: &[(&Stmt, &[Param<'_>])],
        want: Want,
        repeatable: bool,
    ) -> Result<Got, StoreError> {
        let attempt = |pool: Arc<MySqlPool>| {
            let want = &want;
            async move {
                let mut guard = Guard::acquire(&pool).await?;
                let result = async {
                    let (last, first) = statements
                        .split_last()
                        .ok_or_else(|| sqlx::Error::Protocol("no statement".into()))?;
                    for (stmt, params) in first {
                        query(stmt, params)?.execute(&mut *guard.conn).await?;
                    }
                    let q = query(last.0, last.1)?;
                    Ok(match want {
                        Want::Optional => Got::Optional(q.fetch_optional(&mut *guard.conn).await?),
                        Want::All => Got::All(q.fetch_all(&mut *guard.conn).await?),
                        Want::Affected => {
                            Got::Affected(q.execute(&mut *guard.conn).await?.rows_affected())
                        }
                    })
                }
                .await;
                guard.finish(&result);
                result
            }
        };
        pool::run_op(
            &self.pools,
            self.timeout,
            operation,
            repeatable,
            attempt,
            explain,
        )
        .await
    }
}

impl SqlStore<MySqlDialect> {
    /// A builder for a store at `url`, such as `mysql://app:secret@127.0.0.1:3306/app`.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_auth_session::store::MySqlStore;
    ///
    /// let store = MySqlStore::builder("mysql://app@127.0.0.1/app")
    ///     .create_schema(true)
    ///     .build()
    ///     .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn builder(url: impl Into<String>) -> MySqlStoreBuilder {
        MySqlStoreBuilder {
            common: NetworkOptions::new(url.into()),
            ssl_mode: None,
            time_zone: "+00:00".to_owned(),
        }
    }

    /// Connects to `url` and verifies Better Auth's schema (creating nothing).
    ///
    /// # Errors
    ///
    /// See [`MySqlStoreBuilder::build`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).build().await
    }

    /// The current connection pool, for the application's own queries. (After a connection
    /// failure the store replaces its pool; ask again rather than keeping this one.)
    pub fn pool(&self) -> MySqlPool {
        (*self.dialect().pools.current()).clone()
    }
}

impl Backend for MySqlDialect {
    type Row = MySqlRow;

    const NAME: &'static str = "MySQL";

    const SYNTAX: Syntax = Syntax {
        quote: '`',
        placeholder: Placeholder::Question,
        returning: false,
        delete_limit: true,
        id_casts: None,
        text_cast: Some("char"),
        dates_in_any_class: false,
        date_types: &["datetime", "timestamp"],
    };

    async fn fetch_optional<'a>(
        &'a self,
        operation: &'static str,
        stmt: &'a Stmt,
        params: &'a [Param<'a>],
        write: bool,
    ) -> Result<Option<MySqlRow>, StoreError> {
        let repeatable = pool::repeatable(stmt, write);
        self.run(operation, &[(stmt, params)], Want::Optional, repeatable)
            .await?
            .optional(operation)
    }

    async fn fetch_all<'a>(
        &'a self,
        operation: &'static str,
        stmt: &'a Stmt,
        params: &'a [Param<'a>],
    ) -> Result<Vec<MySqlRow>, StoreError> {
        self.run(operation, &[(stmt, params)], Want::All, true)
            .await?
            .all(operation)
    }

    async fn execute<'a>(
        &'a self,
        operation: &'static str,
        stmt: &'a Stmt,
        params: &'a [Param<'a>],
    ) -> Result<Affected, StoreError> {
        let repeatable = pool::repeatable(stmt, true);
        self.run(operation, &[(stmt, params)], Want::Affected, repeatable)
            .await?
            .affected(operation)
    }

    async fn insert_then_select<'a>(
        &'a self,
        operation: &'static str,
        insert: &'a Stmt,
        params: &'a [Param<'a>],
        select: &'a Stmt,
    ) -> Result<Option<MySqlRow>, StoreError> {
        self.run(
            operation,
            &[(insert, params), (select, &[])],
            Want::Optional,
            false,
        )
        .await?
        .optional(operation)
    }

    const COLUMNS_SQL: &'static str = "select cast(column_name as char), cast(data_type as char), \
         cast(column_type as char), case when is_nullable = 'NO' and column_default is null \
         and extra not like '%auto_increment%' and extra not like '%GENERATED%' \
         then 'yes' else 'no' end from information_schema.columns \
         where table_schema = database() and table_name = ? order by ordinal_position";

    fn column_kind(data_type: &str, full_type: &str) -> ColumnType {
        match data_type.to_ascii_lowercase().as_str() {
            "varchar" | "char" | "text" | "tinytext" | "mediumtext" | "longtext" => {
                ColumnType::Text
            }
            "int" | "integer" | "bigint" | "smallint" | "mediumint" => ColumnType::Integer,
            _ => ColumnType::Other(full_type.to_owned()),
        }
    }

    fn ddl(&self, schema: &SqlSchema) -> [String; 3] {
        ddl(
            schema,
            &Self::SYNTAX,
            &DdlTypes {
                text: "text",
                short_text: "varchar(255)",
                unique_text: "varchar(255)",
                id_text: "varchar(36)",
                uuid: None,
                serial_primary: "integer not null primary key auto_increment",
                integer: "integer",
                date: "timestamp(3)",
                boolean: "boolean",
                date_default: " default CURRENT_TIMESTAMP(3)",
                index_if_not_exists: false,
            },
        )
    }

    async fn run_ddl<'a>(&'a self, statement: &'a str) -> Result<(), StoreError> {
        let stmt = Stmt {
            sql: statement.to_owned(),
            binds: Vec::new(),
        };
        match self.execute("create schema", &stmt, &[]).await {
            Ok(_) => Ok(()),
            // MySQL has no `CREATE INDEX IF NOT EXISTS`: an index that exists is fine.
            Err(StoreError::Backend { source, .. })
                if source
                    .downcast_ref::<sqlx::Error>()
                    .and_then(|e| e.as_database_error())
                    .and_then(|d| d.try_downcast_ref::<MySqlDatabaseError>())
                    .is_some_and(|m| m.number() == 1061) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Text, or an integer (a serial id) as its decimal form.
    fn text(row: &MySqlRow, idx: usize) -> Result<Option<String>, String> {
        let raw = row.try_get_raw(idx).map_err(|e| e.to_string())?;
        if raw.is_null() {
            return Ok(None);
        }
        let kind = TypeName::new(raw.type_info().name());
        if kind.as_str().contains("INT") {
            return row
                .try_get_unchecked::<i64, _>(idx)
                .map(|n| Some(n.to_string()))
                .map_err(|e| e.to_string());
        }
        match row.try_get_unchecked::<String, _>(idx) {
            Ok(s) => Ok(Some(s)),
            // `text` columns with a binary collation come back as bytes.
            Err(_) => row
                .try_get_unchecked::<Vec<u8>, _>(idx)
                .map(|b| Some(String::from_utf8_lossy(&b).into_owned()))
                .map_err(|e| e.to_string()),
        }
    }

    fn date(row: &MySqlRow, idx: usize) -> Result<Option<OffsetDateTime>, String> {
        let raw = row.try_get_raw(idx).map_err(|e| e.to_string())?;
        if raw.is_null() {
            return Ok(None);
        }
        let kind = TypeName::new(raw.type_info().name());
        let parsed = match kind.as_str() {
            // The session's time zone is UTC (or the one configured): wall time as stored.
            "TIMESTAMP" | "DATETIME" => row
                .try_get_unchecked::<PrimitiveDateTime, _>(idx)
                .ok()
                .map(PrimitiveDateTime::assume_utc),
            k if k.contains("INT") => row
                .try_get_unchecked::<i64, _>(idx)
                .ok()
                .and_then(time_fmt::from_unix_ms),
            _ => Self::text(row, idx)
                .ok()
                .flatten()
                .and_then(|s| time_fmt::parse_iso(&s)),
        };
        parsed.map(Some).ok_or_else(|| "not a date".to_owned())
    }

    fn boolean(row: &MySqlRow, idx: usize) -> Result<Option<bool>, String> {
        let raw = row.try_get_raw(idx).map_err(|e| e.to_string())?;
        if raw.is_null() {
            return Ok(None);
        }
        // As Better Auth's adapter reads a number in a boolean column: `=== 1`.
        row.try_get_unchecked::<i64, _>(idx)
            .map(|v| Some(v == 1))
            .map_err(|e| e.to_string())
    }

    fn json(row: &MySqlRow, idx: usize) -> Value {
        let Ok(raw) = row.try_get_raw(idx) else {
            return Value::Null;
        };
        if raw.is_null() {
            return Value::Null;
        }
        let kind = TypeName::new(raw.type_info().name());
        match kind.as_str() {
            "BOOLEAN" => Self::boolean(row, idx).ok().flatten().map(Value::from),
            "TIMESTAMP" | "DATETIME" => Self::date(row, idx)
                .ok()
                .flatten()
                .map(|t| Value::from(time_fmt::to_iso(t))),
            "FLOAT" | "DOUBLE" => row.try_get_unchecked::<f64, _>(idx).ok().map(Value::from),
            // As mysql2 gives them to Better Auth: `DECIMAL` as its text (it comes as text), `DATE`
            // as the day's midnight (UTC).
            "DECIMAL" | "NEWDECIMAL" => row
                .try_get_unchecked::<String, _>(idx)
                .ok()
                .map(Value::from),
            "DATE" => row
                .try_get_unchecked::<time::Date, _>(idx)
                .ok()
                .map(|d| Value::from(time_fmt::to_iso(d.midnight().assume_utc()))),
            k if k.contains("INT") => row.try_get_unchecked::<i64, _>(idx).ok().map(Value::from),
            "JSON" => row.try_get_unchecked::<Value, _>(idx).ok(),
            _ => Self::text(row, idx).ok().flatten().map(Value::from),
        }
        .unwrap_or(Value::Null)
    }
}

/// Whether the URL names a root certificate (`ssl-ca`, sqlx's spelling, or `sslca`).
fn names_a_root_cert(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| {
        u.query_pairs()
            .any(|(k, _)| matches!(&*k, "ssl-ca" | "sslca"))
    })
}

/// The TLS mode to use: with a root certificate, `PREFERRED` and `REQUIRED` verify the chain
/// (`VERIFY_CA`), as libpq does and the MySQL client does for `--ssl-ca`; sqlx would load the
/// certificate and then accept any server certificate.
fn verified(mode: MySqlSslMode, root_cert: bool) -> MySqlSslMode {
    match mode {
        MySqlSslMode::Preferred | MySqlSslMode::Required if root_cert => MySqlSslMode::VerifyCa,
        other => other,
    }
}

/// The session change feed (features `mysql` and `cache`): see [`crate::store::changes`].
#[cfg(feature = "cache")]
impl SqlStore<MySqlDialect> {
    /// A feed of the session rows deleted or updated (by Better Auth or anyone), from triggers
    /// that write them into a change table polled every 200 ms, for
    /// [`CachedStoreBuilder::watch`](crate::store::CachedStoreBuilder::watch). See
    /// [`MySqlChangesBuilder`](crate::store::MySqlChangesBuilder) for the options and the
    /// privileges the triggers need.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_auth_session::store::{CachedStore, MySqlStore};
    ///
    /// let store = MySqlStore::connect("mysql://app@127.0.0.1/app").await?;
    /// let changes = store.session_changes().create_trigger(true).start().await?;
    /// let cached = CachedStore::builder(store).watch(changes).build();
    /// # let _ = cached; Ok(()) }
    /// ```
    pub fn session_changes(&self) -> crate::store::MySqlChangesBuilder {
        crate::store::MySqlChangesBuilder::new(
            self.clone(),
            &self.q.delete.sql,
            &self.q.delete_user.sql,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mode's name, for comparing (`MySqlSslMode` has no `PartialEq`).
    fn name(mode: MySqlSslMode) -> String {
        format!("{mode:?}")
    }

    #[test]
    fn a_root_certificate_makes_the_chain_verified() {
        assert!(names_a_root_cert("mysql://app@db/app?ssl-ca=%2Fca.pem"));
        assert!(names_a_root_cert(
            "mysql://app@db/app?sslmode=REQUIRED&sslca=/ca.pem"
        ));
        assert!(!names_a_root_cert("mysql://app@db/app?ssl-mode=REQUIRED"));
        for mode in [MySqlSslMode::Preferred, MySqlSslMode::Required] {
            assert_eq!(name(verified(mode, true)), "VerifyCa");
            assert_eq!(name(verified(mode, false)), name(mode));
        }
        for mode in [
            MySqlSslMode::Disabled,
            MySqlSslMode::VerifyCa,
            MySqlSslMode::VerifyIdentity,
        ] {
            assert_eq!(name(verified(mode, true)), name(mode));
        }
    }
}
