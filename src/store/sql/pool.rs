//! Connections to a database server that can crash, fail over or go silent, for the network
//! dialects (PostgreSQL, MySQL): **a connection that failed never goes back into rotation.**
//!
//! * A statement that fails on its connection (reset, end of stream, a protocol error, a server
//!   shutting down) or is cancelled mid-flight closes that connection instead of returning it to
//!   the pool ([`Guard`]): sqlx would otherwise hand it out again, or hang on its health check.
//! * A connection-level failure or a timeout also replaces the whole pool ([`Pools::renew`]):
//!   the other idle connections died with the server, or sit on a network path that went silent,
//!   and would each fail one more request.
//! * A repeatable statement (a read, or a conditional or idempotent write) is tried once more on
//!   the new pool, so the first request after a crash while the app was idle succeeds.
//! * With several hosts to choose from ([`Pools::choosing`], PostgreSQL's multi-host URLs), a
//!   replacement first asks them which one to use, in a task of its own (a caller's deadline
//!   never leaves it half done).
//! * A write refused as read-only (PostgreSQL's SQLSTATE 25006, MySQL's 1290 and 1836: the
//!   connection reached a replica, as after a failover behind a name that still points at the
//!   old primary) closes that connection, and the write (even an insert: it did not run) is
//!   tried once more on another one; when the pool chooses the server that takes writes, it
//!   first moves the pool if the hosts name another server.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use sqlx::pool::{PoolConnection, PoolOptions};
use sqlx::{Connection, Database, Pool};

use crate::error::StoreError;

/// What the builders of the network dialects (PostgreSQL, MySQL) share: the schema, its
/// creation, the pool and the deadlines, and a private CA. Their setters come from
/// [`network_builder_methods!`].
#[derive(Clone, Debug)]
pub(crate) struct NetworkOptions {
    pub(crate) url: String,
    pub(crate) schema: super::SqlSchema,
    pub(crate) create: bool,
    pub(crate) acquire_timeout: Duration,
    pub(crate) max_connections: u32,
    pub(crate) timeout: Duration,
    pub(crate) root_cert: Option<Vec<u8>>,
}

/// How long a network store waits for a pooled connection by default (sqlx's own default is
/// 30 s, far too long for a request path).
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

impl NetworkOptions {
    /// The defaults: Better Auth's schema, verified only; a pool of 10; 2-second deadlines.
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            schema: super::SqlSchema::better_auth(),
            create: false,
            acquire_timeout: ACQUIRE_TIMEOUT,
            max_connections: 10,
            timeout: Duration::from_secs(2),
            root_cert: None,
        }
    }

    /// What to do with a missing schema.
    pub(crate) fn mode(&self) -> crate::store::SchemaMode {
        if self.create {
            crate::store::SchemaMode::CreateIfMissing
        } else {
            crate::store::SchemaMode::VerifyOnly
        }
    }

    /// The pool's settings. No ping before each use (a second round trip per lookup): a dead
    /// connection fails its statement instead, which closes it and replaces the pool.
    pub(crate) fn pool_options<DB: Database>(&self) -> PoolOptions<DB> {
        PoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .test_before_acquire(false)
    }
}

/// The setters of [`NetworkOptions`] on a builder with a `common: NetworkOptions` field.
macro_rules! network_builder_methods {
    () => {
        /// Table and column names. Default: [`SqlSchema::better_auth`](crate::store::SqlSchema::better_auth).
        pub fn schema(mut self, schema: crate::store::SqlSchema) -> Self {
            self.common.schema = schema;
            self
        }

        /// Create Better Auth's tables when they are absent. Default: `false` (verify only: the
        /// schema usually belongs to Better Auth's migrations).
        pub fn create_schema(mut self, create: bool) -> Self {
            self.common.create = create;
            self
        }

        /// How long a request waits for a pooled connection (or a new one). Default: 2 seconds.
        pub fn acquire_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.common.acquire_timeout = timeout;
            self
        }

        /// The deadline of one store operation (waiting for a connection, the statement, and
        /// one retry on a fresh connection after a connection failure). An operation past it
        /// fails with [`StoreError::Timeout`](crate::StoreError::Timeout) and the pool is
        /// replaced, since a silent network path is the usual cause. Default: 2 seconds, the
        /// layer's own default deadline.
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.common.timeout = timeout;
            self
        }

        /// The pool size. Default: 10.
        pub fn max_connections(mut self, max: u32) -> Self {
            self.common.max_connections = max;
            self
        }

        /// Trust the certificate authority in `pem` (one or more PEM certificates) for TLS, as
        /// the URL's root-certificate parameter does; the chain is then verified. Default: the
        /// built-in Mozilla roots.
        pub fn tls_root_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
            self.common.root_cert = Some(pem.into());
            self
        }
    };
}
pub(crate) use network_builder_methods;

/// `stmt` with `params` bound in its placeholders' order, for the network dialects, whose
/// drivers bind every [`Param`](super::dialect::Param) natively (SQLite binds dates and booleans
/// its own way).
/// The limit the database server itself is given on a statement (and a lock wait) of an
/// operation with `timeout`: a little under it, so the server gives up first and the
/// connection can be reused.
pub(crate) fn server_limit(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 20).min(Duration::from_millis(100)))
}

pub(crate) fn bind<'q, DB>(
    mut query: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
    stmt: &super::dialect::Stmt,
    params: &[super::dialect::Param<'q>],
) -> Result<sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>, sqlx::Error>
where
    DB: Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    time::OffsetDateTime: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    use super::dialect::Param;
    for &i in &stmt.binds {
        let param = params
            .get(i)
            .copied()
            .ok_or_else(|| sqlx::Error::Protocol("missing statement parameter".into()))?;
        query = match param {
            Param::Text(s) => query.bind(s),
            Param::OptText(s) => query.bind(s),
            Param::Bool(b) => query.bind(b),
            Param::Int(n) => query.bind(n),
            Param::Date(t) => query.bind(t),
        };
    }
    Ok(query)
}

/// How long a replaced pool is left alone before the next replacement: one failure replaces the
/// pool; the failures of the requests that were using it at the same moment do not.
const RESET_INTERVAL: Duration = Duration::from_millis(250);

/// The connect options of DB's connections.
pub(crate) type Options<DB> = <<DB as Database>::Connection as Connection>::Options;

/// A server a choice picked: how to connect to it, and its name (`host:port`), which tells
/// whether the choice moved.
pub(crate) struct Picked<DB: Database> {
    pub(crate) options: Options<DB>,
    pub(crate) name: String,
}

// By hand: a derive would ask `DB: Clone` of the database marker type.
impl<DB: Database> Clone for Picked<DB> {
    fn clone(&self) -> Self {
        Self {
            options: self.options.clone(),
            name: self.name.clone(),
        }
    }
}

/// Picks the server a replacement pool connects to (PostgreSQL's multi-host URLs): `None` when
/// no server would do right now.
pub(crate) type Choose<DB> =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<Picked<DB>>> + Send>> + Send + Sync>;

/// How replacements pick their server.
struct Choice<DB: Database> {
    choose: Choose<DB>,
    /// The choice looks for the server that takes writes: a write refused as read-only asks
    /// again (with any server allowed, the refusal says nothing about which one to use).
    for_writes: bool,
    /// The server in use now.
    name: Mutex<String>,
    /// The last answer and when its question was asked: a renewal that waited for another one
    /// (the change feed's check, say) uses its answer rather than asking the hosts again.
    last: Mutex<Option<(Instant, Option<Picked<DB>>)>>,
}

impl<DB: Database> Choice<DB> {
    /// What `choose` answers now, or answered to a question asked after `since` (while the
    /// caller waited for its turn, so after the failure that made it ask; not an older answer
    /// that a promotion since may have made wrong).
    async fn pick(&self, since: Instant) -> Option<Picked<DB>> {
        let recent = self
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(at, _)| *at >= since)
            .map(|(_, picked)| picked.clone());
        if let Some(picked) = recent {
            return picked;
        }
        let asked = Instant::now();
        let picked = (self.choose)().await;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((asked, picked.clone()));
        picked
    }
}

/// The current pool and how to build its replacement.
pub(crate) struct Pools<DB: Database> {
    current: ArcSwap<Pool<DB>>,
    options: ArcSwap<Options<DB>>,
    pool_options: PoolOptions<DB>,
    last_reset: Mutex<Option<Instant>>,
    /// When a read-only refusal was last logged.
    last_warned: Mutex<Option<Instant>>,
    choice: Option<Choice<DB>>,
    /// One replacement at a time: the others wait for it, then use the pool it made.
    turn: tokio::sync::Mutex<()>,
    /// Counts the moves to another server.
    moved: tokio::sync::watch::Sender<u64>,
}

impl<DB: Database> std::fmt::Debug for Pools<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools")
            .field("size", &self.current.load().size())
            .finish_non_exhaustive()
    }
}

impl<DB: Database> Pools<DB> {
    pub(crate) fn new(pool: Pool<DB>, options: Options<DB>, pool_options: PoolOptions<DB>) -> Self {
        Self {
            current: ArcSwap::from_pointee(pool),
            options: ArcSwap::from_pointee(options),
            pool_options,
            last_reset: Mutex::new(None),
            last_warned: Mutex::new(None),
            choice: None,
            turn: tokio::sync::Mutex::new(()),
            moved: tokio::sync::watch::channel(0).0,
        }
    }

    /// Replacements connect to the server `choose` picks (the last one picked while it picks
    /// none); `now` is the server in use. `for_writes`: the choice looks for the server that
    /// takes writes.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn choosing(mut self, choose: Choose<DB>, now: String, for_writes: bool) -> Self {
        self.choice = Some(Choice {
            choose,
            for_writes,
            name: Mutex::new(now),
            last: Mutex::new(None),
        });
        self
    }

    /// Changes each time the pool moves to another server.
    #[cfg_attr(not(all(feature = "postgres", feature = "cache")), allow(dead_code))]
    pub(crate) fn moved(&self) -> tokio::sync::watch::Receiver<u64> {
        self.moved.subscribe()
    }

    /// The pool in use now.
    pub(crate) fn current(&self) -> Arc<Pool<DB>> {
        self.current.load_full()
    }

    /// How `error` should renew the pool: a connection-level failure replaces it; a write
    /// refused as read-only is tried once more on another connection (the refused one is
    /// closed), after moving the pool when it chooses the server that takes writes and the
    /// hosts name another one (the pool is not rebuilt otherwise: a database read-only for
    /// another reason would have every write rebuild it on the same server).
    fn renewal(&self, error: &sqlx::Error) -> Option<Renewal> {
        if connection_broken(error) {
            Some(Renewal::Replace)
        } else if !read_only(error) {
            None
        } else if self.choice.as_ref().is_some_and(|c| c.for_writes) {
            Some(Renewal::IfMoved)
        } else {
            Some(Renewal::Retry)
        }
    }

    /// Says, at most once every 10 s, that a write was refused as read-only and tried again on
    /// another connection (a database that stays read-only costs a connection per write).
    fn refused_as_read_only(&self, error: &sqlx::Error) {
        let mut last = self.last_warned.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::warn!(
                %error,
                database = DB::NAME,
                "a write was refused because the server is read-only (a replica: after a failover, \
                 a name may still point at the old primary); its connection was closed and the \
                 write tried again on another"
            );
        }
    }

    /// Renews the pool after `failed` (if it is still the current pool) met `why`, in a task of
    /// its own: the caller's deadline may end its wait, never the renewal. Callers that find
    /// one under way wait for it.
    async fn renew_for(self: &Arc<Self>, failed: &Arc<Pool<DB>>, why: String, renewal: Renewal) {
        let (pools, failed) = (Arc::clone(self), Arc::clone(failed));
        let _ = tokio::spawn(async move { pools.renew(&failed, &why, renewal).await }).await;
    }

    /// When the pool chooses its server: moves to the one the choice picks now, if that is
    /// another (a check for the change feed, whose connection failed). After a renewal under
    /// way (waited for: the feed then connects where it went) or one just done, nothing.
    #[cfg_attr(not(all(feature = "postgres", feature = "cache")), allow(dead_code))]
    pub(crate) async fn follow_choice(&self, why: &str) {
        if self.choice.is_some() {
            self.renew(&self.current(), why, Renewal::IfMoved).await;
        }
    }

    /// Replaces `failed`, if it is still the current pool, by a fresh, lazily connecting pool,
    /// to the server the choice picks if there is one; with [`Renewal::IfMoved`], only when the
    /// choice picks another server than the one in use.
    async fn renew(&self, failed: &Arc<Pool<DB>>, why: &str, renewal: Renewal) {
        let only_if_moved = renewal == Renewal::IfMoved;
        let waited_from = Instant::now();
        let _turn = self.turn.lock().await;
        let recent = self
            .last_reset
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() < RESET_INTERVAL);
        if recent || !Arc::ptr_eq(&self.current.load(), failed) {
            return;
        }
        let picked = match &self.choice {
            Some(choice) => choice.pick(waited_from).await,
            None => None,
        };
        if let Some(choice) = &self.choice {
            let mut name = choice.name.lock().unwrap_or_else(|e| e.into_inner());
            match &picked {
                Some(p) if *name != p.name => {
                    tracing::warn!(
                        %why,
                        database = DB::NAME,
                        from = %*name,
                        to = %p.name,
                        "the session store moves to another server of its database URL"
                    );
                    name.clone_from(&p.name);
                    self.moved.send_modify(|n| *n += 1);
                }
                Some(_) if only_if_moved => return,
                Some(_) => {}
                None => {
                    if only_if_moved {
                        return;
                    }
                    tracing::warn!(
                        %why,
                        database = DB::NAME,
                        "no server in the database URL can take the session store now; trying the last one used"
                    );
                }
            }
        }
        if !only_if_moved {
            tracing::warn!(
                %why,
                database = DB::NAME,
                "database connection failed; replacing the session store's connection pool"
            );
        }
        if let Some(p) = picked {
            self.options.store(Arc::new(p.options));
        }
        let fresh = self
            .pool_options
            .clone()
            .connect_lazy_with((**self.options.load()).clone());
        let old = self.current.swap(Arc::new(fresh));
        tokio::spawn(async move { old.close().await });
        // Counted from the end of a replacement, which may have waited for the hosts' answers.
        *self.last_reset.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }
}

/// What a failure does to the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Renewal {
    /// Replace it (on the server the choice picks, if there is a choice).
    Replace,
    /// Move it, if the choice picks another server than the one in use.
    IfMoved,
    /// Leave it: only try once more, on another connection.
    Retry,
}

/// A pooled connection that is closed, not returned to the pool, unless the statement on it
/// finished: a statement dropped mid-flight leaves the connection in an unknown state.
pub(crate) struct Guard<DB: Database> {
    pub(crate) conn: PoolConnection<DB>,
    finished: bool,
}

impl<DB: Database> Guard<DB> {
    pub(crate) async fn acquire(pool: &Pool<DB>) -> Result<Self, sqlx::Error> {
        Ok(Self {
            conn: pool.acquire().await?,
            finished: false,
        })
    }

    /// The statement on this connection finished: return it to the pool when dropped, unless
    /// `result` says the connection itself failed.
    pub(crate) fn finish<T>(&mut self, result: &Result<T, sqlx::Error>) {
        self.finished = !matches!(result, Err(e) if connection_broken(e) || read_only(e));
    }
}

impl<DB: Database> Drop for Guard<DB> {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.close_on_drop();
        }
    }
}

/// Whether the connection a statement ran on is unusable after `error`.
pub(crate) fn connection_broken(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception: PostgreSQL, and MySQL's 08S01 "communication
        // link failure") and PostgreSQL's 57P0x (the server is shutting down or crashed).
        sqlx::Error::Database(db) => {
            db.code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P0"))
                || mysql_closing(&**db)
        }
        _ => false,
    }
}

/// MySQL 8.0.24's error 4031 (`ER_CLIENT_INTERACTION_TIMEOUT`): the server closes a connection
/// idle past its `wait_timeout`, and says so with SQLSTATE `HY000` rather than a connection
/// class. The statement never ran.
fn mysql_closing(db: &dyn sqlx::error::DatabaseError) -> bool {
    #[cfg(feature = "mysql")]
    if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return mysql.number() == 4031;
    }
    let _ = db;
    false
}

/// Whether `error` refuses a write because the server is read-only: PostgreSQL's SQLSTATE
/// 25006 (a read-only transaction: the connection reached a standby), MySQL's and MariaDB's
/// 1290 (`--read-only`, `--super-read-only`) and 1836 (read-only mode). The connection reached
/// a replica: the old primary after a failover, or a DNS name that still points at it (Aurora
/// and RDS reuse the name). It is not used again: a new connection resolves the name again and
/// may reach the new primary.
pub(crate) fn read_only(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    if db.code().as_deref() == Some("25006") {
        return true;
    }
    #[cfg(feature = "mysql")]
    if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return matches!(mysql.number(), 1290 | 1836);
    }
    false
}

/// Why an operation failed.
pub(crate) enum Failure {
    /// The driver's error.
    Sqlx(sqlx::Error),
    /// It took longer than the store's deadline.
    Timeout,
}

/// What a statement is run for.
pub(crate) enum Want {
    Optional,
    All,
    Affected,
}

/// What it gave.
pub(crate) enum Got<R> {
    Optional(Option<R>),
    All(Vec<R>),
    Affected(super::dialect::Affected),
}

impl<R> Got<R> {
    pub(crate) fn optional(self, operation: &'static str) -> Result<Option<R>, StoreError> {
        match self {
            Got::Optional(row) => Ok(row),
            _ => Err(unexpected(operation)),
        }
    }

    pub(crate) fn all(self, operation: &'static str) -> Result<Vec<R>, StoreError> {
        match self {
            Got::All(rows) => Ok(rows),
            _ => Err(unexpected(operation)),
        }
    }

    pub(crate) fn affected(
        self,
        operation: &'static str,
    ) -> Result<super::dialect::Affected, StoreError> {
        match self {
            Got::Affected(n) => Ok(n),
            _ => Err(unexpected(operation)),
        }
    }
}

fn unexpected(operation: &'static str) -> StoreError {
    StoreError::backend(
        operation,
        std::io::Error::other("unexpected statement result"),
    )
}

/// Whether a statement may run twice (once more after a connection failure): inserts are the
/// only writes that must not; every other statement here is a read, or conditional, or
/// idempotent.
pub(crate) fn repeatable(stmt: &super::dialect::Stmt, write: bool) -> bool {
    !(write && stmt.sql.starts_with("insert"))
}

/// [`run`] for a store operation: its errors as [`StoreError`]s, the driver's explained by
/// `explain` when it can (TLS, a pooler) and a timeout named by `operation`.
pub(crate) async fn run_op<DB, T, F, Fut>(
    pools: &Arc<Pools<DB>>,
    timeout: Duration,
    operation: &'static str,
    repeatable: bool,
    attempt: F,
    explain: impl FnOnce(&sqlx::Error) -> Option<StoreError>,
) -> Result<T, StoreError>
where
    DB: Database,
    F: Fn(Arc<Pool<DB>>) -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    match run(pools, timeout, repeatable, attempt).await {
        Ok(got) => Ok(got),
        Err(Failure::Sqlx(e)) => {
            Err(explain(&e).unwrap_or_else(|| StoreError::backend(operation, e)))
        }
        Err(Failure::Timeout) => Err(StoreError::Timeout {
            operation,
            millis: timeout.as_millis(),
        }),
    }
}

/// Runs `attempt` on the current pool under `timeout`. A connection-level failure replaces the
/// pool; a `repeatable` operation is then tried once more on the new pool. A timeout replaces
/// the pool too (a silent network path is the usual cause), in the background: the caller's
/// deadline has passed.
pub(crate) async fn run<DB, T, F, Fut>(
    pools: &Arc<Pools<DB>>,
    timeout: Duration,
    repeatable: bool,
    attempt: F,
) -> Result<T, Failure>
where
    DB: Database,
    F: Fn(Arc<Pool<DB>>) -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let pool = pools.current();
    let work = async {
        match attempt(Arc::clone(&pool)).await {
            Err(e) => match pools.renewal(&e) {
                Some(renewal) => {
                    if renewal == Renewal::Retry {
                        pools.refused_as_read_only(&e);
                    } else {
                        pools.renew_for(&pool, e.to_string(), renewal).await;
                    }
                    // A read-only refusal means the statement did not run: even an insert may
                    // be tried again.
                    if !repeatable && renewal == Renewal::Replace {
                        return Err(e);
                    }
                    attempt(pools.current()).await
                }
                None => Err(e),
            },
            ok => ok,
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result.map_err(Failure::Sqlx),
        Err(_) => {
            let pools = Arc::clone(pools);
            tokio::spawn(async move {
                pools
                    .renew(&pool, "a statement timed out", Renewal::Replace)
                    .await;
            });
            Err(Failure::Timeout)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn a_renewal_right_after_another_uses_its_answer() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&asked);
        let choose: Choose<sqlx::Postgres> = Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {
                Some(Picked {
                    options: sqlx::postgres::PgConnectOptions::new(),
                    name: "db2:5432".to_owned(),
                })
            })
        });
        let choice = Choice {
            choose,
            for_writes: true,
            name: Mutex::new("db1:5432".to_owned()),
            last: Mutex::new(None),
        };
        // A renewal that started waiting before the first one answered uses its answer.
        let waiting = Instant::now();
        assert_eq!(choice.pick(waiting).await.unwrap().name, "db2:5432");
        assert_eq!(choice.pick(waiting).await.unwrap().name, "db2:5432");
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "the second used the first's answer"
        );
        // One that started after it asks again: a promotion since may have changed the answer.
        assert!(choice
            .pick(Instant::now() + std::time::Duration::from_millis(1))
            .await
            .is_some());
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn connection_failures_are_told_from_statement_failures() {
        assert!(connection_broken(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::UnexpectedEof
        ))));
        assert!(connection_broken(&sqlx::Error::Protocol("desync".into())));
        assert!(!connection_broken(&sqlx::Error::RowNotFound));
        assert!(!connection_broken(&sqlx::Error::PoolTimedOut));
        assert!(!connection_broken(&sqlx::Error::ColumnNotFound("x".into())));
        assert!(!read_only(&sqlx::Error::RowNotFound));
        assert!(!read_only(&sqlx::Error::PoolTimedOut));
    }
}
