//! The PostgreSQL dialect: Better Auth's PostgreSQL schema (spec §4.2), on sqlx with rustls.
//!
//! Connections, as production servers need them:
//!
//! * **TLS** follows libpq's `sslmode` (`disable`, `allow`, `prefer` (the default), `require`,
//!   `verify-ca`, `verify-full`) and `sslrootcert`, from the URL or the builder. As in libpq,
//!   `require` with a root certificate verifies the chain (`verify-ca`). A plaintext connection to
//!   a host that is not on this machine logs one warning at start-up.
//! * **A connection that failed never goes back into rotation.** A statement that fails on the
//!   connection itself (reset, end of stream, a protocol error, a server shutting down) or is
//!   cancelled mid-flight closes that connection; a connection-level failure or a statement that
//!   times out also replaces the pool, so connections that died with it (a crashed server, a
//!   failover, a network path that went silent) are never handed out. A lookup or another
//!   repeatable statement is tried once more on the new pool.
//! * **PgBouncer in transaction pooling mode** (`?pgbouncer=true` or
//!   [`PostgresStoreBuilder::pgbouncer`]): no startup parameter PgBouncer refuses, and each
//!   statement runs unnamed inside its own transaction, so its messages cannot land on two server
//!   connections. A database the pooler runs in statement pooling mode, which refuses
//!   transactions, is a start-up error naming the pool mode to set.
//! * **Several hosts**, as libpq takes them (`postgres://u@db1:5432,db2:5432/app`), with
//!   `target_session_attrs=read-write` (or `primary`) to use only the server that takes writes:
//!   the hosts are asked at start-up and again whenever the pool is replaced, so the store follows
//!   a failover to whichever listed server is the primary now. A write refused as read-only
//!   (SQLSTATE 25006) closes its connection and is tried once more on another; with
//!   `read-write` or `primary`, the pool first moves if the hosts name another server.
//!   `load_balance_hosts=random` asks the hosts in a new random order each time, as libpq
//!   does, so that instances sharing one URL (several PgBouncers in front of one primary, say)
//!   spread over the servers that suit rather than all taking the first.
//! * **`connect_timeout`** (libpq's, whole seconds) bounds connecting at start-up: a serverless
//!   database (Neon, a paused instance) may take several seconds to wake, more than the pool's
//!   2-second wait. On the request path the store's own deadlines still apply.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::{
    PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow, PgSslMode,
    PgValueFormat,
};
use sqlx::{Connection as _, Row, TypeInfo, ValueRef};
use time::{OffsetDateTime, PrimitiveDateTime};

use super::dialect::{Affected, Backend, ColumnType, Param, Placeholder, Stmt, Syntax, TypeName};
use super::pool::{self, network_builder_methods, Guard, NetworkOptions, Pools, Want};
use super::schema::{ddl, DdlTypes, SqlSchema};
use super::{PostgresStore, SqlStore};
use crate::error::StoreError;
use crate::store::SchemaMode;
use crate::time_fmt;

/// The default time to wait for a pooled connection before failing: 2 s (sqlx's own default
/// is 30 s, far too long for a request path).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = super::pool::ACQUIRE_TIMEOUT;

/// The PostgreSQL dialect of [`SqlStore`]: its connection pool and how it connects.
#[derive(Clone, Debug)]
pub struct PostgresDialect {
    pools: Arc<Pools<sqlx::Postgres>>,
    /// PgBouncer transaction pooling: every statement unnamed, inside a transaction.
    pooler: bool,
    /// The deadline of one store operation, including a retry on a fresh connection.
    timeout: Duration,
    /// In pooler mode, the statement that opens each transaction with the server's own
    /// limits ([`ServerLimits`]).
    begin: String,
    /// The TLS settings given to the builder, for connections of the store's own to other
    /// URLs (a change feed's `listen_url`).
    tls: Tls,
}

/// TLS settings given in code ([`PostgresStoreBuilder::ssl_mode`],
/// [`tls_root_cert_pem`](PostgresStoreBuilder::tls_root_cert_pem)), which win over the URL's.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tls {
    mode: Option<PgSslMode>,
    root_pem: Option<Vec<u8>>,
}

impl Tls {
    /// `options` (read from a URL that names a root certificate or not: `url_root`) with these
    /// settings applied, and libpq's rule that `require` with a root certificate verifies it.
    fn apply(&self, mut options: PgConnectOptions, url_root: bool) -> PgConnectOptions {
        if let Some(mode) = self.mode {
            options = options.ssl_mode(mode);
        }
        if let Some(pem) = self.root_pem.clone() {
            options = options.ssl_root_cert_from_pem(pem);
        }
        require_as_libpq(
            options,
            self.root_pem.is_some() || url_root || env_root_cert(),
        )
    }
}

/// `statement_timeout` and `lock_timeout` a little under the store's deadline, on the server.
/// The deadline alone is the client's: when it passes, the store closes the connection, but a
/// backend waiting on a lock does not notice a closed client, and runs (and commits) once the
/// lock is released. Behind a migration that holds the session table for a while, every
/// request then left one such backend, until the server refused connections to everyone;
/// with the limits, the server gives up first and the connection is reused.
struct ServerLimits {
    /// Milliseconds.
    ms: u128,
    statement: bool,
    lock: bool,
}

impl ServerLimits {
    /// For `timeout`, leaving alone what the URL's `options` already set.
    fn new(timeout: Duration, options: &PgConnectOptions) -> Self {
        let set = options.get_options().unwrap_or_default();
        Self {
            // PostgreSQL takes at most `INT_MAX` milliseconds (about 24.8 days).
            ms: pool::server_limit(timeout)
                .as_millis()
                .clamp(1, i32::MAX as u128),
            statement: !set.contains("statement_timeout"),
            lock: !set.contains("lock_timeout"),
        }
    }

    /// The settings to make, as `(name, milliseconds)`.
    fn pairs(&self) -> Vec<(&'static str, u128)> {
        [
            ("statement_timeout", self.statement),
            ("lock_timeout", self.lock),
        ]
        .into_iter()
        .filter(|(_, wanted)| *wanted)
        .map(|(name, _)| (name, self.ms))
        .collect()
    }

    /// `SET LOCAL` statements for one transaction, one string; empty for none.
    fn set_local(&self) -> String {
        self.pairs()
            .into_iter()
            .map(|(name, ms)| format!("SET LOCAL {name} = {ms}; "))
            .collect()
    }
}

/// Builds a [`PostgresStore`] from a URL.
#[derive(Clone, Debug)]
#[must_use]
pub struct PostgresStoreBuilder {
    common: NetworkOptions,
    pgbouncer: Option<bool>,
    ssl_mode: Option<PgSslMode>,
}

impl PostgresStoreBuilder {
    network_builder_methods!();

    /// Connect through PgBouncer (or another pooler) in **transaction** pooling mode, as
    /// Supabase's and Neon's pooled URLs do: no `extra_float_digits` startup parameter (which
    /// PgBouncer refuses), and each statement runs unnamed inside its own transaction, so
    /// consecutive protocol messages can never reach two different server connections.
    /// Costs three extra round trips per statement. Also set by `?pgbouncer=true` in the URL.
    /// Default: off.
    pub fn pgbouncer(mut self, enabled: bool) -> Self {
        self.pgbouncer = Some(enabled);
        self
    }

    /// The TLS mode, as libpq's `sslmode`; overrides the URL's. Default: the URL's, else
    /// [`PgSslMode::Prefer`].
    pub fn ssl_mode(mut self, mode: PgSslMode) -> Self {
        self.ssl_mode = Some(mode);
        self
    }

    /// Connects and checks (or creates) the schema.
    ///
    /// # Errors
    ///
    /// A backend error when the server cannot be reached; [`StoreError::Connect`] when TLS or
    /// a pooler refuses the connection, saying what to change; [`StoreError::Schema`] naming
    /// the missing table or column, or an id column of a type the store cannot use.
    pub async fn build(self) -> Result<PostgresStore, StoreError> {
        let tls = Tls {
            mode: self.ssl_mode,
            root_pem: self.common.root_cert.clone(),
        };
        let (hosts, from_url) = read_hosts(&self.common.url, &tls)?;
        let pooler = self.pgbouncer.or(from_url.pgbouncer).unwrap_or(false);
        let hosts = hosts
            .into_iter()
            .map(|mut options| {
                if pooler {
                    // PgBouncer refuses startup parameters it does not track.
                    options = options.extra_float_digits(None);
                } else {
                    // As startup parameters: a session `SET` through a pooler in transaction
                    // mode (one that runs the store without pgbouncer mode) would stay on server
                    // connections other clients use; a pooler refuses these instead, and the
                    // refusal names pgbouncer mode.
                    let limits = ServerLimits::new(self.common.timeout, &options);
                    options = options.options(limits.pairs());
                }
                options
            })
            .collect::<Vec<_>>();
        let attrs = from_url.attrs;
        let random = from_url.random;
        let timeout = self.common.timeout;
        // libpq's `connect_timeout` bounds connecting at start-up, where a serverless database
        // (Neon, a paused instance) may take seconds to wake; on the request path the store's
        // own deadlines apply, as a request cannot wait that long.
        let waking = from_url.connect_timeout.unwrap_or_default();
        let choice = (hosts.len() > 1 || attrs != Attrs::Any).then(|| Arc::new(hosts.clone()));
        let options = match &choice {
            None => hosts[0].clone(),
            Some(hosts) => pick(&in_order(hosts, random), attrs, timeout.max(waking), pooler)
                .await
                .map_err(|why| no_server(attrs, &why))?,
        };
        let pool_options: PgPoolOptions = self.common.pool_options();
        let pool = pool_options
            .clone()
            .acquire_timeout(self.common.acquire_timeout.max(waking))
            .connect_with(options.clone())
            .await
            .map_err(|e| connect_error(e, pooler))?;
        // In pgbouncer mode the limits go with each transaction (startup parameters are
        // refused there); elsewhere they are the connections' own.
        let begin = if pooler {
            let begin = format!(
                "BEGIN; {}",
                ServerLimits::new(timeout, &hosts[0]).set_local()
            );
            check_transactions(&pool, &begin).await?;
            begin
        } else {
            String::new()
        };
        warn_if_plaintext(&options).await;
        if attrs == Attrs::Any {
            warn_if_read_only(&pool, &options).await;
        }
        let now = name(&options);
        let mut pools = Pools::new(pool, options, pool_options);
        if let Some(hosts) = choice {
            // Within half the operation's deadline, so the caller that met the failure has
            // time left for its retry on the server picked.
            let probe = timeout / 2;
            let choose: pool::Choose<sqlx::Postgres> = Arc::new(move || {
                let hosts = Arc::clone(&hosts);
                Box::pin(async move {
                    let options = pick(&in_order(&hosts, random), attrs, probe, pooler)
                        .await
                        .ok()?;
                    Some(pool::Picked {
                        name: name(&options),
                        options,
                    })
                })
            });
            pools = pools.choosing(choose, now, attrs != Attrs::Any);
        }
        let dialect = PostgresDialect {
            pools: Arc::new(pools),
            pooler,
            timeout,
            begin,
            tls,
        };
        let mode = self.common.mode();
        SqlStore::open_dialect(dialect, mode, self.common.schema).await
    }
}

/// What the store itself reads from the URL.
#[derive(Debug, Default)]
struct UrlParams {
    pgbouncer: Option<bool>,
    root_cert: bool,
    attrs: Attrs,
    /// `load_balance_hosts=random`: the hosts are asked in a new random order each time.
    random: bool,
    /// libpq's `connect_timeout` (whole seconds; below 2 counts as 2, 0 or less as none).
    connect_timeout: Option<Duration>,
}

/// `hosts` in the order to prefer them: the URL's, or with `load_balance_hosts=random` a
/// random one (libpq's), so that instances started from the same URL spread over the servers
/// that suit. Falls back to the URL's order if the system's random source fails.
fn in_order(hosts: &[PgConnectOptions], random: bool) -> Vec<PgConnectOptions> {
    let mut hosts = hosts.to_vec();
    if random {
        // Fisher–Yates; the modulo bias over a handful of hosts is immaterial.
        let mut draws = [0u8; 64];
        if getrandom::fill(&mut draws).is_ok() {
            for i in (1..hosts.len().min(draws.len())).rev() {
                hosts.swap(i, usize::from(draws[i]) % (i + 1));
            }
        }
    }
    hosts
}

/// Which of the URL's servers the store may use, as libpq's `target_session_attrs` (sqlx does
/// not know the parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Attrs {
    /// The first that accepts a connection (libpq's default).
    #[default]
    Any,
    /// The first that takes writes: `SHOW transaction_read_only` is `off`.
    ReadWrite,
    /// The first that is not a standby: `pg_is_in_recovery()` is false.
    Primary,
}

impl Attrs {
    /// `target_session_attrs=value`: the values that let the store write, or what to use.
    fn parse(value: &str) -> Result<Self, StoreError> {
        let fix = "use target_session_attrs=read-write (or primary), or leave it out".to_owned();
        match value {
            "any" => Ok(Self::Any),
            "read-write" => Ok(Self::ReadWrite),
            "primary" => Ok(Self::Primary),
            "read-only" | "standby" | "prefer-standby" => Err(StoreError::Connect {
                problem: format!(
                    "`target_session_attrs={value}` in the database URL asks for a server that \
                     takes no writes, and the session store writes (sign-in, refresh, sign-out)"
                ),
                fix,
                source: None,
            }),
            other => Err(StoreError::Connect {
                problem: format!(
                    "`target_session_attrs={other}` in the database URL is not one of libpq's values"
                ),
                fix,
                source: None,
            }),
        }
    }

    /// What the chosen server must be, for messages.
    fn wanted(self) -> &'static str {
        match self {
            Self::Any => "accepts connections",
            Self::ReadWrite => "takes writes (target_session_attrs=read-write)",
            Self::Primary => "is a primary (target_session_attrs=primary)",
        }
    }
}

/// One URL per host of a libpq multi-host URL (`postgres://u:p@db1:5432,db2:5433/app?…`), each
/// with the same user, database and parameters; the URL itself when it names one host.
fn split_hosts(url: &str) -> Result<Vec<String>, StoreError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(vec![url.to_owned()]);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, hosts) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    if !hosts.contains(',') {
        return Ok(vec![url.to_owned()]);
    }
    hosts
        .split(',')
        .map(|host| {
            if host.is_empty() {
                return Err(StoreError::Connect {
                    problem: "the database URL's host list has an empty entry".to_owned(),
                    fix: "list the hosts as host1:port1,host2:port2".to_owned(),
                    source: None,
                });
            }
            Ok(format!("{scheme}://{user}{host}{tail}"))
        })
        .collect()
}

/// `host:port` of the server `options` reach.
fn name(options: &PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

/// How long a host that suits waits for the hosts listed before it that have not answered.
const GRACE: Duration = Duration::from_millis(250);

/// The server of `hosts` to use, or why each was passed over. All are asked at once, each
/// within `timeout`; the first in the list that `attrs` accepts wins (libpq's order), except
/// that once one has said yes, the hosts before it that have not answered yet get [`GRACE`]
/// more: a host gone silent (the old primary behind a partition) must not hold up a failover
/// for its whole timeout.
async fn pick(
    hosts: &[PgConnectOptions],
    attrs: Attrs,
    timeout: Duration,
    pooler: bool,
) -> Result<PgConnectOptions, Vec<String>> {
    use futures_util::stream::{FuturesUnordered, StreamExt as _};
    let mut asked: FuturesUnordered<_> = hosts
        .iter()
        .enumerate()
        .map(|(i, options)| async move {
            let answer = tokio::time::timeout(timeout, suits(options, attrs, pooler))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())));
            (i, answer)
        })
        .collect();
    let mut answers: Vec<Option<Result<(), String>>> = vec![None; hosts.len()];
    let mut until = None;
    loop {
        let next = match until {
            None => asked.next().await,
            Some(at) => tokio::time::timeout_at(at, asked.next())
                .await
                .unwrap_or(None),
        };
        let Some((i, answer)) = next else {
            // Everyone answered, or the grace ran out: the first in the list that suits.
            let first = answers.iter().position(|a| matches!(a, Some(Ok(()))));
            if let Some(first) = first {
                return Ok(hosts[first].clone());
            }
            break;
        };
        if answer.is_ok() && until.is_none() {
            until = Some(tokio::time::Instant::now() + GRACE);
        }
        answers[i] = Some(answer);
        for (options, answer) in hosts.iter().zip(&answers) {
            match answer {
                None => break,
                Some(Ok(())) => return Ok(options.clone()),
                Some(Err(_)) => {}
            }
        }
    }
    Err(hosts
        .iter()
        .zip(answers)
        .map(|(options, answer)| {
            let why = match answer {
                Some(Err(why)) => why,
                _ => format!("no answer within {} ms", timeout.as_millis()),
            };
            format!("{}:{}: {why}", options.get_host(), options.get_port())
        })
        .collect())
}

/// Why a server that takes no writes was passed over.
const READ_ONLY: &str = "read-only (a standby, or default_transaction_read_only is on)";

/// Logs one warning when the server the store uses takes no writes (a standby, or
/// `default_transaction_read_only`), which only `target_session_attrs` would have avoided:
/// signing in, refreshing and signing out would each fail there. Asks on one of the pool's
/// connections (the simple protocol, which a pooler in transaction mode passes); says nothing
/// when the check itself fails.
async fn warn_if_read_only(pool: &PgPool, options: &PgConnectOptions) {
    let answer = sqlx::Executor::fetch_one(pool, "show transaction_read_only").await;
    if answer.is_ok_and(|row| row.try_get::<String, _>(0).is_ok_and(|v| v == "on")) {
        tracing::warn!(
            server = %name(options),
            "the session store's PostgreSQL server takes no writes (a standby, or \
             default_transaction_read_only is on): sign-in, refresh and sign-out will fail there; \
             point the URL at the primary, or list the hosts with target_session_attrs=read-write"
        );
    }
}

/// Whether the server `options` reaches is one `attrs` accepts, or why not. The question has no
/// parameters, so sqlx sends it in the simple query protocol, which a pooler in transaction
/// mode passes as one transaction.
async fn suits(options: &PgConnectOptions, attrs: Attrs, pooler: bool) -> Result<(), String> {
    let mut conn = PgConnection::connect_with(options)
        .await
        .map_err(|e| explain(&e, pooler).map_or_else(|| e.to_string(), |e| e.to_string()))?;
    let (question, refusal) = match attrs {
        Attrs::Any => (None, ""),
        Attrs::ReadWrite => (Some("show transaction_read_only"), READ_ONLY),
        Attrs::Primary => (
            Some("select case when pg_is_in_recovery() then 'on' else 'off' end"),
            "a standby (in recovery)",
        ),
    };
    let verdict = match question {
        None => Ok(()),
        Some(sql) => match sqlx::Executor::fetch_one(&mut conn, sql).await {
            Ok(row) => match row.try_get::<String, _>(0).as_deref() {
                Ok("off") => Ok(()),
                Ok(_) => Err(refusal.to_owned()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        },
    };
    let _ = conn.close().await;
    verdict
}

/// The error of a start-up where no listed server would do.
fn no_server(attrs: Attrs, why: &[String]) -> StoreError {
    StoreError::Connect {
        problem: format!(
            "no server in the database URL {}: {}",
            attrs.wanted(),
            why.join("; ")
        ),
        fix: "list the primary among the URL's hosts (host1:port1,host2:port2) and check that \
              it is up and reachable from here"
            .to_owned(),
        source: None,
    }
}

/// Whether `PGSSLROOTCERT` names a root certificate, which the driver loads as libpq does.
fn env_root_cert() -> bool {
    std::env::var_os("PGSSLROOTCERT").is_some_and(|v| !v.is_empty())
}

/// The servers a connection of the store's own (a change feed's `listen_url`) may use, read as
/// `store` reads its own URL: one, or a host list (`host1:port1,host2:port2`) asked at each
/// connection for the one that suits, as the store asks its own.
#[derive(Clone, Debug)]
pub(crate) struct Servers {
    hosts: Vec<PgConnectOptions>,
    attrs: Attrs,
    random: bool,
    timeout: Duration,
}

impl Servers {
    /// Reads `url`: the TLS settings given to `store`'s builder apply, libpq's
    /// `sslmode=require` with a root certificate (given in code, in the URL or
    /// `PGSSLROOTCERT`) verifies the chain, and the store's own parameters are taken out. Of a
    /// host list, the primary is wanted unless `target_session_attrs` says otherwise (a
    /// standby refuses `LISTEN`). Also whether it asks for pgbouncer mode. A plaintext
    /// connection to another machine is named in a warning, as for the store.
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) async fn of(url: &str, store: &PostgresStore) -> Result<(Self, bool), StoreError> {
        let (hosts, from_url) = read_hosts(url, &store.dialect().tls)?;
        for host in &hosts {
            warn_if_plaintext(host).await;
        }
        let attrs = match from_url.attrs {
            Attrs::Any if hosts.len() > 1 => Attrs::Primary,
            attrs => attrs,
        };
        let timeout = store
            .dialect()
            .timeout
            .max(from_url.connect_timeout.unwrap_or_default());
        let servers = Self {
            hosts,
            attrs,
            random: from_url.random,
            timeout,
        };
        Ok((servers, from_url.pgbouncer == Some(true)))
    }

    /// The server to connect to now: the only one, or the first of the list that suits.
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) async fn choose(&self) -> Result<PgConnectOptions, StoreError> {
        if let ([only], Attrs::Any) = (self.hosts.as_slice(), self.attrs) {
            return Ok(only.clone());
        }
        pick(
            &in_order(&self.hosts, self.random),
            self.attrs,
            self.timeout,
            false,
        )
        .await
        .map_err(|why| no_server(self.attrs, &why))
    }
}

/// The connection settings of each host of `url` (one, or a libpq host list), with `tls`
/// applied, and the store's own parameters the URL carries (taken out of the settings).
fn read_hosts(url: &str, tls: &Tls) -> Result<(Vec<PgConnectOptions>, UrlParams), StoreError> {
    let mut hosts = Vec::new();
    let mut from_url = UrlParams::default();
    for host in split_hosts(url)? {
        let (clean, params) = take_params(&host)?;
        let options =
            PgConnectOptions::from_str(&clean).map_err(|e| StoreError::backend("connect", e))?;
        hosts.push(tls.apply(options, params.root_cert));
        from_url = params;
    }
    Ok((hosts, from_url))
}

/// libpq's rule: `sslmode=require` with a root certificate (`has_root`) verifies the chain.
fn require_as_libpq(options: PgConnectOptions, has_root: bool) -> PgConnectOptions {
    if has_root && matches!(options.get_ssl_mode(), PgSslMode::Require) {
        options.ssl_mode(PgSslMode::VerifyCa)
    } else {
        options
    }
}

/// Removes `pgbouncer=…` (the store's own parameter) and libpq's `target_session_attrs=…`,
/// `load_balance_hosts=…` and `connect_timeout=…`, which sqlx does not know (it would warn
/// and ignore them), from the URL, and notes whether it names a root certificate.
fn take_params(url: &str) -> Result<(String, UrlParams), StoreError> {
    let mut parsed = url::Url::parse(url).map_err(|e| StoreError::backend("connect", e))?;
    let mut params = UrlParams::default();
    let mut kept = Vec::new();
    let mut system_roots = false;
    for (key, value) in parsed.query_pairs() {
        match &*key {
            "pgbouncer" => {
                params.pgbouncer = Some(match &*value {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    other => {
                        return Err(StoreError::Connect {
                            problem: format!(
                                "`pgbouncer={other}` in the database URL is not a boolean"
                            ),
                            fix: "use ?pgbouncer=true or ?pgbouncer=false".to_owned(),
                            source: None,
                        })
                    }
                });
            }
            // libpq 16's special value: the trusted roots the client has (here the Mozilla
            // roots the TLS stack bundles), with `verify-full` (which the connection strings
            // of Neon and others pair it with).
            "sslrootcert" if value == "system" => system_roots = true,
            "sslrootcert" => {
                params.root_cert = true;
                kept.push((key.into_owned(), value.into_owned()));
            }
            "target_session_attrs" => params.attrs = Attrs::parse(&value)?,
            "load_balance_hosts" => {
                params.random = match &*value {
                    "disable" => false,
                    "random" => true,
                    other => {
                        return Err(StoreError::Connect {
                            problem: format!(
                                "`load_balance_hosts={other}` in the database URL is not one of \
                                 libpq's values"
                            ),
                            fix: "use load_balance_hosts=random or load_balance_hosts=disable"
                                .to_owned(),
                            source: None,
                        })
                    }
                }
            }
            "connect_timeout" => {
                let seconds: i64 = value.trim().parse().map_err(|_| StoreError::Connect {
                    problem: format!(
                        "`connect_timeout={value}` in the database URL is not a whole number of \
                         seconds"
                    ),
                    fix: "use connect_timeout=10 (seconds), as libpq".to_owned(),
                    source: None,
                })?;
                params.connect_timeout = u64::try_from(seconds)
                    .ok()
                    .filter(|&s| s > 0)
                    .map(|s| Duration::from_secs(s.max(2)));
            }
            "host" | "hostaddr" | "port" if value.contains(',') => {
                return Err(StoreError::Connect {
                    problem: format!(
                        "`{key}={value}` in the database URL lists several; the store takes a \
                         host list in the URL's host part only"
                    ),
                    fix: "write the hosts as postgres://user@host1:port1,host2:port2/database"
                        .to_owned(),
                    source: None,
                })
            }
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    if system_roots {
        match kept.iter().find(|(k, _)| k == "sslmode") {
            None => kept.push(("sslmode".to_owned(), "verify-full".to_owned())),
            Some((_, mode)) if mode == "verify-full" => {}
            Some((_, mode)) => {
                return Err(StoreError::Connect {
                    problem: format!(
                        "`sslmode={mode}` with `sslrootcert=system` in the database URL: libpq \
                         refuses a weaker mode than verify-full with the system's roots"
                    ),
                    fix: "use sslmode=verify-full with sslrootcert=system".to_owned(),
                    source: None,
                })
            }
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((parsed.into(), params))
}

/// Whether a store connected with `mode` to `host` sends its traffic in plaintext:
/// `Some(true)` for certain, `None` when only a TLS probe can tell (`prefer`, `allow`).
fn plaintext(host: &str, socket: bool, mode: PgSslMode) -> Option<bool> {
    if socket || crate::store::tls::is_local(host) {
        return Some(false);
    }
    match mode {
        PgSslMode::Disable | PgSslMode::Allow => Some(true),
        PgSslMode::Prefer => None,
        _ => Some(false),
    }
}

/// Logs one warning when the connection to a remote server is not encrypted: `sslmode=disable`,
/// or `prefer` (the default) against a server that offers no TLS (probed with one connection).
async fn warn_if_plaintext(options: &PgConnectOptions) {
    let host = options.get_host();
    let mode = options.get_ssl_mode();
    let certain = match plaintext(host, options.get_socket().is_some(), mode) {
        Some(p) => p,
        None => {
            let probe = options.clone().ssl_mode(PgSslMode::Require);
            match PgConnection::connect_with(&probe).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    false
                }
                Err(sqlx::Error::Tls(_)) => true,
                // Not a TLS answer (the probe could not tell): say nothing.
                Err(_) => false,
            }
        }
    };
    if certain {
        tracing::warn!(
            host,
            sslmode = ?mode,
            "the session store talks to PostgreSQL in plaintext over the network: add \
             ?sslmode=verify-full (and sslrootcert=… for a private CA) to the database URL"
        );
    }
}

/// In pgbouncer mode, opens and commits one transaction as every statement will: a pooler that
/// refuses transactions (PgBouncer's `pool_mode = statement`) is a start-up error that says so,
/// not a "create schema failed" or a failure of every request.
async fn check_transactions(pool: &PgPool, begin: &str) -> Result<(), StoreError> {
    let probe = async {
        let mut conn = pool.acquire().await?;
        let tx = conn.begin_with(begin.to_owned()).await?;
        tx.commit().await
    };
    probe.await.map_err(|e| connect_error(e, true))
}

/// Turns a connection failure into an error that says what to change, where the cause is known.
fn connect_error(error: sqlx::Error, pooler: bool) -> StoreError {
    if let Some(connect) = explain(&error, pooler) {
        return connect;
    }
    StoreError::backend("connect", error)
}

fn explain(error: &sqlx::Error, pooler: bool) -> Option<StoreError> {
    let (problem, fix) = match error {
        // rustls failures arrive as `Tls` (configuration) or `Io` (the handshake) errors.
        sqlx::Error::Tls(_) | sqlx::Error::Io(_) => crate::store::tls::explain(error, &CA_HINT)?,
        sqlx::Error::Database(db) if db.message().contains("unsupported startup parameter") => (
            format!("the server refused a startup parameter ({})", db.message()),
            if pooler {
                "the pooler refuses a parameter of the URL (the store sends none of its own in \
                 pgbouncer mode); add it to PgBouncer's ignore_startup_parameters, except a \
                 search_path in `options`: a pooler that ignores it leaves the store on the \
                 public schema's tables, so name the schema with SqlSchema::schema_name \
                 (Better Auth's database.schemaName) instead"
                    .to_owned()
            } else {
                "this looks like PgBouncer; in transaction pooling mode connect with \
                 ?pgbouncer=true in the URL (or PostgresStoreBuilder::pgbouncer(true))"
                    .to_owned()
            },
        ),
        sqlx::Error::Database(db) if db.message().contains("statement pooling mode") => (
            format!(
                "the pooler runs this database in statement pooling mode ({}), where a \
                 statement cannot run inside a transaction; the store needs one for each \
                 statement in pgbouncer mode, as Better Auth does for a sign-up",
                db.message()
            ),
            "set pool_mode = transaction (or session) for this database in pgbouncer.ini \
             (a `pool_mode=transaction` in its [databases] entry, or the [pgbouncer] default), \
             or connect to PostgreSQL directly"
                .to_owned(),
        ),
        sqlx::Error::Database(db) if db.message().contains("prepared statement") && !pooler => (
            format!("the server lost a prepared statement ({})", db.message()),
            "this looks like a pooler in transaction mode (PgBouncer, Supavisor): connect \
                 with ?pgbouncer=true in the URL (or PostgresStoreBuilder::pgbouncer(true))"
                .to_owned(),
        ),
        _ => return None,
    };
    // The driver's error as the source of ours (sqlx errors are not `Clone`).
    Some(crate::store::tls::connect_error(
        (problem, fix),
        std::io::Error::other(error.to_string()),
    ))
}

/// Where a PostgreSQL user gives a private CA.
const CA_HINT: crate::store::tls::CaHint = crate::store::tls::CaHint {
    url: "sslrootcert=/path/to/ca.pem in the URL",
    builder: "PostgresStoreBuilder::tls_root_cert_pem",
    wrong_name: "connect with a host name the certificate names (sslmode=verify-full checks it; \
                 with sqlx 0.8 so does verify-ca)",
};

/// What a statement returns.
type Got = pool::Got<PgRow>;

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, PgArguments>;

fn query<'q>(
    stmt: &'q Stmt,
    params: &[Param<'q>],
    persistent: bool,
) -> Result<Query<'q>, sqlx::Error> {
    pool::bind(sqlx::query(&stmt.sql).persistent(persistent), stmt, params)
}

async fn exec(
    conn: &mut PgConnection,
    stmt: &Stmt,
    params: &[Param<'_>],
    want: &Want,
    persistent: bool,
) -> Result<Got, sqlx::Error> {
    let query = query(stmt, params, persistent)?;
    Ok(match want {
        Want::Optional => Got::Optional(query.fetch_optional(conn).await?),
        Want::All => Got::All(query.fetch_all(conn).await?),
        Want::Affected => Got::Affected(query.execute(conn).await?.rows_affected()),
    })
}

impl PostgresDialect {
    /// One attempt on `pool`.
    async fn attempt(
        &self,
        pool: &PgPool,
        stmt: &Stmt,
        params: &[Param<'_>],
        want: &Want,
    ) -> Result<Got, sqlx::Error> {
        let mut guard = Guard::acquire(pool).await?;
        let result = if self.pooler {
            let mut tx = guard.conn.begin_with(self.begin.clone()).await?;
            match exec(&mut tx, stmt, params, want, false).await {
                Ok(got) => tx.commit().await.map(|()| got),
                // Rolled back when the transaction is dropped (before the connection is reused).
                Err(e) => Err(e),
            }
        } else {
            exec(&mut guard.conn, stmt, params, want, true).await
        };
        guard.finish(&result);
        result
    }

    /// Runs a statement under the store's deadline, on a connection that has not failed.
    async fn run(
        &self,
        operation: &'static str,
        stmt: &Stmt,
        params: &[Param<'_>],
        want: Want,
        repeatable: bool,
    ) -> Result<Got, StoreError> {
        let attempt = |pool: Arc<PgPool>| {
            let want = &want;
            async move { self.attempt(&pool, stmt, params, want).await }
        };
        pool::run_op(
            &self.pools,
            self.timeout,
            operation,
            repeatable,
            attempt,
            |e| explain(e, self.pooler),
        )
        .await
    }
}

impl SqlStore<PostgresDialect> {
    /// A builder for a store at `url`, such as
    /// `postgres://user:password@db.example.com:5432/app?sslmode=verify-full`.
    ///
    /// Several hosts, as libpq takes them, let the store follow a failover:
    /// `postgres://app@db1:5432,db2:5432/app?target_session_attrs=read-write` uses the first
    /// listed server that takes writes (`primary`: not in recovery; `any`, the default: the
    /// first that answers), asks the hosts again whenever its pool is replaced (a connection
    /// failure, a timeout, and with `read-write` or `primary` a write refused as read-only),
    /// and fails at start-up naming each host and why it was passed over when none will do.
    /// The hosts go in the URL's host part; libpq's `host=`/`port=` lists are refused.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_auth_session::store::PostgresStore;
    ///
    /// let store = PostgresStore::builder("postgres://app@127.0.0.1/app")
    ///     .create_schema(true)
    ///     .build()
    ///     .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            common: NetworkOptions::new(url.into()),
            pgbouncer: None,
            ssl_mode: None,
        }
    }

    /// Connects to `url` and verifies Better Auth's schema (creating nothing).
    ///
    /// # Errors
    ///
    /// See [`PostgresStoreBuilder::build`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).build().await
    }

    /// Uses an existing pool (its connections are used as they are: no pgbouncer mode, no
    /// server-side `statement_timeout` or `lock_timeout` set by the store, and a failed pool is
    /// not replaced).
    ///
    /// # Errors
    ///
    /// [`StoreError::Schema`] naming the missing table or column, or an id column of a type
    /// the store cannot use ([`SchemaError::UnsupportedColumnType`](crate::SchemaError)), or a
    /// backend error.
    pub async fn open(
        pool: PgPool,
        mode: SchemaMode,
        schema: SqlSchema,
    ) -> Result<Self, StoreError> {
        let options = pool.connect_options().as_ref().clone();
        let pool_options = pool.options().clone();
        let dialect = PostgresDialect {
            pools: Arc::new(Pools::new(pool, options, pool_options)),
            pooler: false,
            timeout: Duration::from_secs(2),
            begin: String::new(),
            tls: Tls::default(),
        };
        SqlStore::open_dialect(dialect, mode, schema).await
    }

    /// The current connection pool, for the application's own queries. (After a connection
    /// failure the store replaces its pool; ask again rather than keeping this one.) Its
    /// connections carry the store's `statement_timeout` and `lock_timeout` (a little under
    /// its deadline): a longer query needs `SET LOCAL` in its transaction, or a pool of its own.
    pub fn pool(&self) -> PgPool {
        (*self.dialect().pools.current()).clone()
    }

    /// Whether the store runs in PgBouncer transaction-pooling mode.
    pub fn is_pgbouncer(&self) -> bool {
        self.dialect().pooler
    }

    /// When the URL lets the store choose among servers: asks the hosts again, and moves the
    /// pool if they name another server now (for the change feed, whose connection failed).
    #[cfg(feature = "cache")]
    pub(crate) async fn choose_again(&self, why: &str) {
        self.dialect().pools.follow_choice(why).await;
    }

    /// Changes each time the store moves to another server of its URL.
    #[cfg(feature = "cache")]
    pub(crate) fn moved(&self) -> tokio::sync::watch::Receiver<u64> {
        self.dialect().pools.moved()
    }
}

impl Backend for PostgresDialect {
    type Row = PgRow;

    const NAME: &'static str = "PostgreSQL";
    const NATIVE_TYPES: bool = true;

    const SYNTAX: Syntax = Syntax {
        quote: '"',
        placeholder: Placeholder::DollarNumbered,
        returning: true,
        delete_limit: false,
        id_casts: Some(("uuid", "bigint")),
        text_cast: Some("text"),
        dates_in_any_class: false,
        date_types: &["timestamp"],
    };

    async fn fetch_optional<'a>(
        &'a self,
        operation: &'static str,
        stmt: &'a Stmt,
        params: &'a [Param<'a>],
        write: bool,
    ) -> Result<Option<PgRow>, StoreError> {
        let repeatable = pool::repeatable(stmt, write);
        self.run(operation, stmt, params, Want::Optional, repeatable)
            .await?
            .optional(operation)
    }

    async fn fetch_all<'a>(
        &'a self,
        operation: &'static str,
        stmt: &'a Stmt,
        params: &'a [Param<'a>],
    ) -> Result<Vec<PgRow>, StoreError> {
        self.run(operation, stmt, params, Want::All, true)
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
        self.run(operation, stmt, params, Want::Affected, repeatable)
            .await?
            .affected(operation)
    }

    const COLUMNS_SQL: &'static str = "select column_name::text, data_type::text, \
         data_type::text, case when is_nullable = 'NO' and column_default is null \
         and is_identity = 'NO' and is_generated = 'NEVER' then 'yes' else 'no' end \
         from information_schema.columns \
         where table_schema::text = coalesce($2::text, current_schema()::text) \
         and table_name = $1 order by ordinal_position";

    const COLUMNS_BINDS: &'static [usize] = &[0, 1];

    const NAMESPACES: bool = true;

    fn column_kind(data_type: &str, _full_type: &str) -> ColumnType {
        match data_type {
            "text" | "character varying" | "character" => ColumnType::Text,
            "uuid" => ColumnType::Uuid,
            "integer" | "bigint" | "smallint" => ColumnType::Integer,
            other => ColumnType::Other(other.to_owned()),
        }
    }

    fn ddl(&self, schema: &SqlSchema) -> [String; 3] {
        ddl(
            schema,
            &Self::SYNTAX,
            &DdlTypes {
                text: "text",
                short_text: "text",
                unique_text: "text",
                id_text: "text",
                uuid: Some("uuid default gen_random_uuid()"),
                serial_primary: "integer generated by default as identity not null primary key",
                integer: "integer",
                date: "timestamptz",
                boolean: "boolean",
                date_default: " default CURRENT_TIMESTAMP",
                index_if_not_exists: true,
            },
        )
    }

    async fn run_ddl<'a>(&'a self, statement: &'a str) -> Result<(), StoreError> {
        let stmt = Stmt {
            sql: statement.to_owned(),
            binds: Vec::new(),
        };
        self.execute("create schema", &stmt, &[]).await.map(|_| ())
    }

    fn text(row: &PgRow, idx: usize) -> Result<Option<String>, String> {
        let Some(kind) = type_name(row, idx) else {
            return Ok(None);
        };
        match kind.as_str() {
            "INT2" => row.try_get::<i16, _>(idx).map(|n| n.to_string()),
            "INT4" => row.try_get::<i32, _>(idx).map(|n| n.to_string()),
            "INT8" => row.try_get::<i64, _>(idx).map(|n| n.to_string()),
            _ => row.try_get::<String, _>(idx),
        }
        .map(Some)
        .map_err(|e| e.to_string())
    }

    fn date(row: &PgRow, idx: usize) -> Result<Option<OffsetDateTime>, String> {
        let Some(kind) = type_name(row, idx) else {
            return Ok(None);
        };
        let parsed = match kind.as_str() {
            // `timestamp` columns (Drizzle, Prisma) hold UTC wall time: sqlx connects with
            // TimeZone=UTC, so both read the same.
            "TIMESTAMPTZ" | "TIMESTAMP" => timestamp(row, idx),
            "INT8" => row
                .try_get::<i64, _>(idx)
                .ok()
                .and_then(time_fmt::from_unix_ms),
            "TEXT" | "VARCHAR" => row
                .try_get::<String, _>(idx)
                .ok()
                .and_then(|s| time_fmt::parse_iso(&s)),
            _ => None,
        };
        parsed.map(Some).ok_or_else(|| "not a date".to_owned())
    }

    fn boolean(row: &PgRow, idx: usize) -> Result<Option<bool>, String> {
        let Some(kind) = type_name(row, idx) else {
            return Ok(None);
        };
        match kind.as_str() {
            "BOOL" => row.try_get::<bool, _>(idx),
            "INT4" => row.try_get::<i32, _>(idx).map(|v| v != 0),
            "INT8" => row.try_get::<i64, _>(idx).map(|v| v != 0),
            other => return Err(format!("unexpected type {other}")),
        }
        .map(Some)
        .map_err(|e| e.to_string())
    }

    fn json(row: &PgRow, idx: usize) -> Value {
        let Some(kind) = type_name(row, idx) else {
            return Value::Null;
        };
        match kind.as_str() {
            "BOOL" => row.try_get::<bool, _>(idx).map(Value::from).ok(),
            "INT2" => row.try_get::<i16, _>(idx).map(Value::from).ok(),
            "INT4" => row.try_get::<i32, _>(idx).map(Value::from).ok(),
            "INT8" => row.try_get::<i64, _>(idx).map(Value::from).ok(),
            "FLOAT4" => row.try_get::<f32, _>(idx).map(Value::from).ok(),
            "FLOAT8" => row.try_get::<f64, _>(idx).map(Value::from).ok(),
            "JSON" | "JSONB" => row.try_get::<Value, _>(idx).ok(),
            // Drizzle's and Prisma's `string[]`/`number[]` (`text[]`, `integer[]`): arrays, as
            // node-postgres gives them.
            "TEXT[]" | "VARCHAR[]" => row.try_get::<Vec<String>, _>(idx).map(Value::from).ok(),
            "INT4[]" => row.try_get::<Vec<i32>, _>(idx).map(Value::from).ok(),
            "INT8[]" => row.try_get::<Vec<i64>, _>(idx).map(Value::from).ok(),
            "FLOAT8[]" => row.try_get::<Vec<f64>, _>(idx).map(Value::from).ok(),
            "TIMESTAMPTZ" | "TIMESTAMP" => Self::date(row, idx)
                .ok()
                .flatten()
                .map(|t| Value::from(time_fmt::to_iso(t))),
            // As node-postgres gives them to Better Auth: `numeric` as its text, `date` as the
            // day's midnight (UTC).
            "NUMERIC" => numeric(row, idx).map(Value::from),
            "DATE" => {
                day(row, idx).map(|d| Value::from(time_fmt::to_iso(d.midnight().assume_utc())))
            }
            _ => row.try_get::<String, _>(idx).map(Value::from).ok(),
        }
        .unwrap_or(Value::Null)
    }
}

/// A `numeric` value as text (`12.50`, `-0.001`, `NaN`), decoded here: sqlx decodes it only
/// with a decimal crate this crate does not otherwise need.
fn numeric(row: &PgRow, idx: usize) -> Option<String> {
    let raw = row.try_get_raw(idx).ok()?;
    match raw.format() {
        PgValueFormat::Text => Some(raw.as_str().ok()?.to_owned()),
        PgValueFormat::Binary => numeric_text(raw.as_bytes().ok()?),
    }
}

/// The binary `numeric` form: digit count, weight (of the first base-10000 digit), sign, display
/// scale, then the base-10000 digits.
fn numeric_text(bytes: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes(
            bytes.get(i * 2..i * 2 + 2)?.try_into().ok()?,
        ))
    };
    let (ndigits, weight, sign, scale) = (
        usize::from(word(0)?),
        i32::from(word(1)? as i16),
        word(2)?,
        usize::from(word(3)?),
    );
    let special = match sign {
        0x0000 | 0x4000 => None,
        0xC000 => Some("NaN"),
        0xD000 => Some("Infinity"),
        0xF000 => Some("-Infinity"),
        _ => return None,
    };
    if let Some(special) = special {
        return Some(special.to_owned());
    }
    let digits: Vec<u16> = (0..ndigits).map(|i| word(4 + i)).collect::<Option<_>>()?;
    if digits.iter().any(|&d| d > 9999) {
        return None;
    }
    // Base-10000 digit `i` stands for 10000^(weight - i).
    let digit = |i: i32| -> u16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            let d = digit(i);
            if i == 0 {
                out.push_str(&d.to_string());
            } else {
                out.push_str(&format!("{d:04}"));
            }
        }
    }
    if scale > 0 {
        let mut fraction = String::new();
        let mut i = weight + 1;
        while fraction.len() < scale {
            fraction.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        fraction.truncate(scale);
        out.push('.');
        out.push_str(&fraction);
    }
    Some(out)
}

/// A `date` value: days from 2000-01-01 (binary) or `YYYY-MM-DD` (text); infinities and
/// years out of range are not a day.
fn day(row: &PgRow, idx: usize) -> Option<time::Date> {
    let raw = row.try_get_raw(idx).ok()?;
    match raw.format() {
        PgValueFormat::Binary => {
            let days = i32::from_be_bytes(raw.as_bytes().ok()?.try_into().ok()?);
            let epoch = time::Date::from_calendar_date(2000, time::Month::January, 1).ok()?;
            epoch.checked_add(time::Duration::days(i64::from(days)))
        }
        PgValueFormat::Text => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(raw.as_str().ok()?.trim(), &format).ok()
        }
    }
}

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01.
const PG_EPOCH_US: i128 = 946_684_800_000_000;

/// A `timestamp` or `timestamptz` value, decoded here rather than by sqlx, whose decoding panics
/// on `infinity` and on years past 9999 (`time` without its `large-dates`). `infinity` and
/// `-infinity` become the last and first millisecond `time` holds (Better Auth reads them as
/// `Infinity`: a session that never expires); other years out of range are not a date.
fn timestamp(row: &PgRow, idx: usize) -> Option<OffsetDateTime> {
    let raw = row.try_get_raw(idx).ok()?;
    let (last, first) = (
        PrimitiveDateTime::MAX.assume_utc(),
        PrimitiveDateTime::MIN.assume_utc(),
    );
    match raw.format() {
        PgValueFormat::Binary => {
            let bytes: [u8; 8] = raw.as_bytes().ok()?.try_into().ok()?;
            match i64::from_be_bytes(bytes) {
                i64::MAX => Some(time_fmt::truncate_ms(last)),
                i64::MIN => Some(time_fmt::truncate_ms(first)),
                us => {
                    OffsetDateTime::from_unix_timestamp_nanos((i128::from(us) + PG_EPOCH_US) * 1000)
                        .ok()
                        .map(time_fmt::truncate_ms)
                }
            }
        }
        // The simple protocol's text form: `2026-11-30 09:00:00.123+00`.
        PgValueFormat::Text => match raw.as_str().ok()?.trim() {
            "infinity" => Some(time_fmt::truncate_ms(last)),
            "-infinity" => Some(time_fmt::truncate_ms(first)),
            text => {
                let short_offset = text.len() > 3
                    && matches!(text.as_bytes()[text.len() - 3], b'+' | b'-')
                    && text.as_bytes()[text.len() - 2..]
                        .iter()
                        .all(u8::is_ascii_digit);
                if short_offset {
                    time_fmt::parse_iso(&format!("{text}:00"))
                } else {
                    time_fmt::parse_iso(text)
                }
            }
        },
    }
}

fn type_name(row: &PgRow, idx: usize) -> Option<TypeName> {
    let raw = row.try_get_raw(idx).ok()?;
    if raw.is_null() {
        return None;
    }
    Some(TypeName::new(raw.type_info().name()))
}

/// The session change feed (features `postgres` and `cache`): see [`crate::store::changes`].
#[cfg(feature = "cache")]
impl SqlStore<PostgresDialect> {
    /// A feed of the session rows deleted or updated (by Better Auth or anyone), from a
    /// trigger that notifies and a connection that listens, for
    /// [`CachedStoreBuilder::watch`](crate::store::CachedStoreBuilder::watch). See
    /// [`PostgresChangesBuilder`](crate::store::PostgresChangesBuilder) for the options and
    /// the PgBouncer caveat.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_auth_session::store::{CachedStore, PostgresStore};
    ///
    /// let store = PostgresStore::connect("postgres://app@127.0.0.1/app").await?;
    /// let changes = store.session_changes().create_trigger(true).start().await?;
    /// let cached = CachedStore::builder(store).watch(changes).build();
    /// # let _ = cached; Ok(()) }
    /// ```
    pub fn session_changes(&self) -> crate::store::PostgresChangesBuilder {
        crate::store::PostgresChangesBuilder::new(
            self.clone(),
            &self.q.delete.sql,
            &self.q.delete_user.sql,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_is_judged_per_host_and_mode() {
        assert_eq!(
            plaintext("127.0.0.1", false, PgSslMode::Disable),
            Some(false)
        );
        assert_eq!(
            plaintext("localhost", false, PgSslMode::Prefer),
            Some(false)
        );
        assert_eq!(plaintext("::1", false, PgSslMode::Disable), Some(false));
        assert_eq!(
            plaintext("db.example.com", true, PgSslMode::Disable),
            Some(false)
        );
        assert_eq!(
            plaintext("db.example.com", false, PgSslMode::Disable),
            Some(true)
        );
        assert_eq!(plaintext("10.0.0.5", false, PgSslMode::Allow), Some(true));
        assert_eq!(plaintext("10.0.0.5", false, PgSslMode::Prefer), None);
        assert_eq!(
            plaintext("10.0.0.5", false, PgSslMode::Require),
            Some(false)
        );
        assert_eq!(
            plaintext("10.0.0.5", false, PgSslMode::VerifyFull),
            Some(false)
        );
    }

    /// The binary `numeric` form, as PostgreSQL sends it.
    #[test]
    fn numerics_read_as_their_text() {
        fn bytes(ndigits: u16, weight: i16, sign: u16, scale: u16, digits: &[u16]) -> Vec<u8> {
            let mut out = Vec::new();
            for w in [ndigits, weight as u16, sign, scale] {
                out.extend_from_slice(&w.to_be_bytes());
            }
            for d in digits {
                out.extend_from_slice(&d.to_be_bytes());
            }
            out
        }
        let cases: [(Vec<u8>, &str); 7] = [
            (bytes(2, 0, 0, 2, &[12, 5000]), "12.50"),
            (bytes(1, 1, 0, 0, &[1]), "10000"),
            (bytes(2, 1, 0x4000, 0, &[1, 2]), "-10002"),
            (bytes(1, -1, 0, 3, &[10]), "0.001"),
            (bytes(0, 0, 0, 0, &[]), "0"),
            (bytes(0, 0, 0, 2, &[]), "0.00"),
            (bytes(0, 0, 0xC000, 0, &[]), "NaN"),
        ];
        for (raw, text) in cases {
            assert_eq!(numeric_text(&raw).as_deref(), Some(text));
        }
        assert_eq!(numeric_text(&[0, 1]), None, "truncated");
        assert_eq!(
            numeric_text(&bytes(1, 0, 0, 0, &[10000])),
            None,
            "a digit past 9999"
        );
    }

    #[test]
    fn the_store_takes_its_own_url_parameters_and_leaves_the_rest() {
        let (url, p) = take_params(
            "postgres://u@db.example.com/app?sslmode=require&pgbouncer=true&sslrootcert=%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://u@db.example.com/app?sslmode=require&sslrootcert=%2Fca.pem"
        );
        assert_eq!(p.pgbouncer, Some(true));
        assert!(p.root_cert);
        let (url, p) = take_params("postgres://u@h/app?pgbouncer=false").unwrap();
        assert_eq!(url, "postgres://u@h/app");
        assert_eq!(p.pgbouncer, Some(false));
        let err = take_params("postgres://u@h/app?pgbouncer=maybe").unwrap_err();
        assert!(err.to_string().contains("pgbouncer=true"), "{err}");
        for (given, wanted) in [("10", Some(10)), ("1", Some(2)), ("0", None), ("-3", None)] {
            let (url, p) = take_params(&format!(
                "postgres://u@h/app?connect_timeout={given}&sslmode=require"
            ))
            .unwrap();
            assert_eq!(url, "postgres://u@h/app?sslmode=require");
            assert_eq!(
                p.connect_timeout,
                wanted.map(Duration::from_secs),
                "{given}"
            );
        }
        let err = take_params("postgres://u@h/app?connect_timeout=ten").unwrap_err();
        assert!(err.to_string().contains("connect_timeout=10"), "{err}");
    }

    /// libpq 16's `sslrootcert=system`, as Neon's connection strings have it: the client's
    /// trusted roots, under `verify-full` (a weaker mode is refused, as libpq refuses it).
    #[test]
    fn sslrootcert_system_is_the_bundled_roots_under_verify_full() {
        let (url, p) = take_params("postgres://h/a?sslrootcert=system").unwrap();
        assert_eq!(url, "postgres://h/a?sslmode=verify-full");
        assert!(!p.root_cert);
        let (url, _) =
            take_params("postgres://h/a?sslmode=verify-full&sslrootcert=system").unwrap();
        assert_eq!(url, "postgres://h/a?sslmode=verify-full");
        let err = take_params("postgres://h/a?sslmode=require&sslrootcert=system")
            .unwrap_err()
            .to_string();
        assert!(err.contains("verify-full"), "{err}");
    }

    #[test]
    fn a_host_list_becomes_one_url_per_host_with_the_same_rest() {
        assert_eq!(
            split_hosts("postgres://u:p%40ss@db1:5432,db2:5433,[::1]/app?sslmode=require").unwrap(),
            [
                "postgres://u:p%40ss@db1:5432/app?sslmode=require",
                "postgres://u:p%40ss@db2:5433/app?sslmode=require",
                "postgres://u:p%40ss@[::1]/app?sslmode=require",
            ]
        );
        assert_eq!(
            split_hosts("postgresql://a,b?target_session_attrs=read-write").unwrap(),
            [
                "postgresql://a?target_session_attrs=read-write",
                "postgresql://b?target_session_attrs=read-write"
            ]
        );
        // One host, or a comma only after the host part: the URL as it is.
        let one = "postgres://u@db/app?options=-c%20a%3D1,2";
        assert_eq!(split_hosts(one).unwrap(), [one]);
        let err = split_hosts("postgres://u@db1,,db2/app").unwrap_err();
        assert!(err.to_string().contains("host1:port1,host2:port2"), "{err}");
    }

    #[test]
    fn target_session_attrs_takes_the_values_that_write_and_explains_the_others() {
        let (url, p) =
            take_params("postgres://u@h/app?target_session_attrs=read-write&sslmode=require")
                .unwrap();
        assert_eq!(url, "postgres://u@h/app?sslmode=require");
        assert_eq!(p.attrs, Attrs::ReadWrite);
        assert_eq!(
            take_params("postgres://h/a?target_session_attrs=primary")
                .unwrap()
                .1
                .attrs,
            Attrs::Primary
        );
        assert_eq!(
            take_params("postgres://h/a?target_session_attrs=any")
                .unwrap()
                .1
                .attrs,
            Attrs::Any
        );
        for (value, says) in [
            ("standby", "takes no writes"),
            ("read-only", "takes no writes"),
            ("prefer-standby", "takes no writes"),
            ("readwrite", "not one of libpq's values"),
        ] {
            let err = take_params(&format!("postgres://h/a?target_session_attrs={value}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{value}: {err}");
            assert!(
                err.contains("target_session_attrs=read-write"),
                "{value}: {err}"
            );
        }
    }

    #[test]
    fn load_balance_hosts_random_shuffles_the_hosts_and_disable_keeps_their_order() {
        let (_, p) =
            take_params("postgres://h/a?load_balance_hosts=random&sslmode=require").unwrap();
        assert!(p.random);
        let (url, p) = take_params("postgres://h/a?load_balance_hosts=disable").unwrap();
        assert!(!p.random);
        assert_eq!(url, "postgres://h/a");
        let err = take_params("postgres://h/a?load_balance_hosts=yes")
            .unwrap_err()
            .to_string();
        assert!(err.contains("load_balance_hosts=random"), "{err}");

        let hosts: Vec<PgConnectOptions> = (1..=3)
            .map(|port| PgConnectOptions::new().host("h").port(port))
            .collect();
        let ports = |hosts: &[PgConnectOptions]| -> Vec<u16> {
            hosts.iter().map(PgConnectOptions::get_port).collect()
        };
        assert_eq!(ports(&in_order(&hosts, false)), [1, 2, 3]);
        let mut first = std::collections::BTreeSet::new();
        for _ in 0..64 {
            let mut shuffled = ports(&in_order(&hosts, true));
            first.insert(shuffled[0]);
            shuffled.sort_unstable();
            assert_eq!(shuffled, [1, 2, 3]);
        }
        // Each host leads a third of the orders: one never leading in 64 has odds of 1e-11.
        assert_eq!(first.len(), 3, "{first:?}");
    }
}
