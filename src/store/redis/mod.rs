//! Sessions in Redis, in Better Auth's secondary-storage format (spec §7), on one node, a
//! Redis Cluster, or the master Redis Sentinel names, over plaintext or TLS.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::SessionStore;
use crate::clock::{Clock, SystemClock};
use crate::error::StoreError;
use crate::model::{Authenticated, Session, StorageKey, User};
use crate::time_fmt;

pub(crate) mod link;

use link::{Conn, Link, Target};

/// Compare-and-set on one key: `KEYS[1]` becomes `ARGV[2]` with TTL `ARGV[3]` seconds (deleted
/// when `ARGV[2]` is empty or the TTL is not positive), only if it still holds `ARGV[1]`.
/// Keeps a read-modify-write atomic without rewriting the JSON in Lua, so the bytes stay
/// exactly as Better Auth wrote them.
const CAS: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur == false then return 0 end
if cur ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' and tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
";

/// One edit of `active-sessions-{userId}` (`KEYS[1]`), atomically, as Better Auth's
/// `setActiveSessionReferences` writes the list: the entry for token `ARGV[2]` is removed (and
/// those of any tokens from `ARGV[4]` on), entries expired at `ARGV[1]` (ms) are pruned, and
/// with a new expiry `ARGV[3]` (ms) the token is added back; the list is sorted by expiry and
/// stored with the TTL of the latest one, or deleted when empty. Entries are written as
/// `{"token":…,"expiresAt":N}` as `JSON.stringify` writes them. One key, so it is atomic on a
/// single node and on a cluster, and concurrent sign-ins of one user can never lose an entry
/// or fail on contention.
const LIST_EDIT: &str = r#"
local raw = redis.call('GET', KEYS[1])
local now = tonumber(ARGV[1])
local drop = {[ARGV[2]] = true}
for i = 4, #ARGV do drop[ARGV[i]] = true end
local out = {}
if raw then
  local ok, list = pcall(cjson.decode, raw)
  if ok and type(list) == 'table' then
    for _, e in ipairs(list) do
      if type(e) == 'table' and type(e.token) == 'string' and type(e.expiresAt) == 'number'
         and not drop[e.token] and e.expiresAt > now then
        out[#out + 1] = e
      end
    end
  end
end
if ARGV[3] ~= '' then
  out[#out + 1] = {token = ARGV[2], expiresAt = tonumber(ARGV[3])}
end
table.sort(out, function(a, b) return a.expiresAt < b.expiresAt end)
local ttl = 0
if #out > 0 then ttl = math.floor((out[#out].expiresAt - now) / 1000) end
if ttl <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
local parts = {}
for i, e in ipairs(out) do
  parts[i] = '{"token":' .. cjson.encode(e.token) .. ',"expiresAt":' .. string.format('%.0f', e.expiresAt) .. '}'
end
redis.call('SET', KEYS[1], '[' .. table.concat(parts, ',') .. ']', 'EX', ttl)
return #out
"#;

/// Sets the revoked-before marker (`KEYS[1]`) to `max(ARGV[1], its current value)` with TTL
/// `ARGV[2]`, as Better Auth 1.7.16+ does: the marker never moves back. Nor does its TTL: one
/// Better Auth set for longer sessions than this store's `expires_in` is kept, and a marker
/// without expiry keeps none. A marker of `Infinity` is left as it is.
const MARKER: &str = r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
-- Infinity (written by other software) already rejects every session: left as it is.
if cur == math.huge then return 1 end
local at = tonumber(ARGV[1])
if cur > at then at = cur end
local ttl = tonumber(ARGV[2])
local left = redis.call('TTL', KEYS[1])
if left == -1 then
  -- No expiry: it keeps none.
  redis.call('SET', KEYS[1], string.format('%.0f', at))
  return 1
end
if left > ttl then ttl = left end
redis.call('SET', KEYS[1], string.format('%.0f', at), 'EX', ttl)
return 1
";

/// On a single node, one round trip per lookup: the session value, its user's revoked-before
/// marker (a key the script derives from the value, which a cluster forbids), and the user id
/// the script took. The id is the value of the first `"userId":"` in the value, which in Better
/// Auth's `{"session":{…},"user":{…}}` is the session's own: inside a JSON string a quote is
/// always escaped, so the text can only be a key. It costs Redis about 40% less than decoding
/// the whole value with `cjson` (5.5 against 9 µs a call); the store checks the id against the
/// value it decodes anyway and reads the right marker when they differ (a JSON field of the
/// session holding a `userId` of its own before the real one, an id with escapes).
const FIND: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local uid = ''
local _, e = string.find(v, '"userId":"', 1, true)
if e then
  local q = string.find(v, '"', e + 1, true)
  if q then uid = string.sub(v, e + 1, q - 1) end
end
local marker = redis.call('GET', ARGV[1] .. uid)
if not marker then marker = '' end
return {v, marker, uid}
"#;

const CAS_RETRIES: usize = 8;

/// Sessions in Redis exactly as Better Auth's `secondaryStorage` keeps them (spec §7):
///
/// | key | value | TTL |
/// |---|---|---|
/// | `{prefix}{token}` | `{"session":{…},"user":{…}}` | until `expiresAt` |
/// | `{prefix}active-sessions-{userId}` | `[{"token":…,"expiresAt":ms},…]`, earliest first | the latest expiry |
/// | `{prefix}revoked-sessions-before-{userId}` | ms timestamp of the last revoke-all | `max(expiresIn, 1 day)`, or the longer TTL (or none) it already had |
///
/// A Better Auth server configured with the same Redis as `secondaryStorage` (and the same key
/// prefix, none by default) shares sessions with this store in both directions.
///
/// * **One node or a cluster**: [`RedisStore::builder`] connects to one node;
///   [`RedisStore::cluster_builder`] (or [`RedisStoreBuilder::cluster`]) to a Redis Cluster, whose
///   client follows `MOVED`/`ASK` redirections and failed-over masters. Better Auth's keys hash
///   to different slots, so every script and compare-and-set here touches one key; a multi-step
///   change orders its steps so that a failure part-way leaves nothing a later step cannot
///   repair (the user's session list is written before the session key, and a revoke-all sets
///   its marker before deleting anything).
/// * **Sentinel**: [`RedisStore::sentinel_builder`] connects to the master that Redis Sentinel
///   names, and after a failover to the replica it promoted.
/// * **TLS**: `rediss://` URLs verify the server's certificate against the Mozilla roots, or
///   against [`RedisStoreBuilder::tls_root_cert_pem`]; `#insecure` at the end of the URL is the
///   explicit opt-out.
/// * **Failures**: a connection that fails (a reset, a killed server, a timeout on a silent
///   network path) is replaced on the next use, and the operation is tried once more on the new
///   connection.
///
/// To keep session rows in SQL as well (Better Auth's `storeSessionInDatabase`), wrap a SQL
/// store with [`RedisStore::in_front_of`].
#[derive(Clone)]
pub struct RedisStore {
    link: Link,
    prefix: Arc<str>,
    /// Seconds: the longest of the builder's `expires_in`, a day, and the session lifetimes
    /// the layers and managers over the store told it ([`SessionStore::session_lifetime`]).
    marker_ttl: Arc<AtomicU64>,
    clock: Arc<dyn Clock>,
    scripts: Arc<Scripts>,
}

struct Scripts {
    cas: Script,
    list_edit: Script,
    marker: Script,
    find: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("cluster", &self.link.is_cluster())
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisStore`].
#[must_use]
pub struct RedisStoreBuilder {
    urls: Vec<String>,
    cluster: bool,
    /// With Sentinels (`urls` are theirs): the master's name, user name, password, database.
    sentinel: Option<SentinelMaster>,
    prefix: String,
    expires_in: time::Duration,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    root_cert: Option<Vec<u8>>,
}

impl std::fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("prefix", &self.prefix)
            .field("cluster", &self.cluster)
            .field("sentinel_master", &self.sentinel.as_ref().map(|m| &m.name))
            .finish_non_exhaustive()
    }
}

/// What [`RedisStore::sentinel_builder`] connects to: the master the Sentinels name.
#[derive(Clone, Default)]
struct SentinelMaster {
    name: String,
    username: Option<String>,
    password: Option<String>,
    db: i64,
}

/// Where a Redis user gives a private CA.
const CA_HINT: super::tls::CaHint = super::tls::CaHint {
    url: "REDIS_TLS_CA in the examples",
    builder: "RedisStoreBuilder::tls_root_cert_pem",
    wrong_name: "connect with a host name the certificate names",
};

/// A connection failure as an error that says what to change, where the cause is known.
fn connect_error(error: redis::RedisError) -> StoreError {
    match super::tls::explain(&error, &CA_HINT) {
        Some(explained) => super::tls::connect_error(explained, error),
        None => StoreError::backend("connect", error),
    }
}

impl RedisStoreBuilder {
    /// A prefix for every key, as adapters such as `@better-auth/redis-storage` add. Default:
    /// none (Better Auth's own keys).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The session lifetime (`expiresIn`), used for the revoked-before marker's TTL (at
    /// least a day, as Better Auth's). Default: 7 days, raised to the `expires_in` of every
    /// [`SessionLayer`](crate::SessionLayer) and [`SessionManager`](crate::SessionManager)
    /// built over the store; set it when Better Auth's sessions live longer than the layer's.
    pub fn expires_in(mut self, expires_in: time::Duration) -> Self {
        self.expires_in = expires_in;
        self
    }

    /// Connection and response timeout. Default: 2 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The clock for TTLs and the revoked-before marker. Default: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Treat the URL(s) as seed nodes of a Redis Cluster. Default: `false`: one node, unless
    /// the server says it is a cluster node (`INFO cluster`), which selects cluster mode.
    pub fn cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }

    /// Another seed node of the cluster (with [`cluster`](Self::cluster)). Default: none.
    pub fn seed(mut self, url: impl Into<String>) -> Self {
        self.urls.push(url.into());
        self
    }

    /// Trust the certificate authority in `pem` (PEM certificates) for `rediss://` URLs, instead
    /// of the built-in Mozilla roots. Default: none.
    pub fn tls_root_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_cert = Some(pem.into());
        self
    }

    /// With [`RedisStore::sentinel_builder`]: the credentials of the master (and of the
    /// replica that may replace it), `username` `None` for the default user (`requirepass`).
    /// The Sentinels' own credentials go in their URLs. Ignored without Sentinels. Default:
    /// none.
    pub fn master_auth(mut self, username: Option<&str>, password: &str) -> Self {
        if let Some(master) = &mut self.sentinel {
            master.username = username.map(str::to_owned);
            master.password = Some(password.to_owned());
        }
        self
    }

    /// With [`RedisStore::sentinel_builder`]: the master's database number (a URL's path
    /// names the Sentinel's, which has none). Ignored without Sentinels. Default: 0.
    pub fn master_database(mut self, db: i64) -> Self {
        if let Some(master) = &mut self.sentinel {
            master.db = db;
        }
        self
    }

    /// Connects.
    ///
    /// # Errors
    ///
    /// A backend error when a URL is invalid or the server cannot be reached;
    /// [`StoreError::Connect`] when TLS refuses the connection, saying what to change.
    pub async fn build(self) -> Result<RedisStore, StoreError> {
        crate::rustls_provider::install();
        let mut link = Link::connect(self.target(self.cluster)?, self.timeout)
            .await
            .map_err(|e| match &self.sentinel {
                Some(master) => sentinel_error(&master.name, e),
                None => connect_error(e),
            })?;
        if !self.cluster && self.sentinel.is_none() && cluster_enabled(&link).await {
            // One node of a cluster given as a plain URL (a managed service's configuration
            // endpoint, say): single-node mode would fail every sign-in with `MOVED`.
            tracing::info!("the Redis server is a cluster node: using cluster mode");
            link = Link::connect(self.target(true)?, self.timeout)
                .await
                .map_err(connect_error)?;
        }
        Ok(RedisStore {
            link,
            prefix: self.prefix.into(),
            marker_ttl: Arc::new(AtomicU64::new(
                u64::try_from(self.expires_in.whole_seconds().max(86_400)).unwrap_or(86_400),
            )),
            clock: self.clock,
            scripts: Arc::new(Scripts {
                cas: Script::new(CAS),
                list_edit: Script::new(LIST_EDIT),
                marker: Script::new(MARKER),
                find: Script::new(FIND),
            }),
        })
    }
}

impl RedisStoreBuilder {
    /// The client for one node, for the cluster the URLs seed, or for the master the
    /// Sentinels name.
    fn target(&self, cluster: bool) -> Result<Target, StoreError> {
        if let Some(master) = &self.sentinel {
            return self.sentinel_target(master);
        }
        if cluster {
            let mut builder = redis::cluster::ClusterClientBuilder::new(self.urls.clone())
                .connection_timeout(self.timeout)
                .response_timeout(self.timeout);
            if let Some(pem) = self.root_cert.clone() {
                builder = builder.certs(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                });
            }
            return Ok(Target::Cluster(builder.build().map_err(connect_error)?));
        }
        let url = self.urls.first().map_or("", String::as_str);
        let client = link::node_client(url, self.root_cert.as_deref()).map_err(connect_error)?;
        Ok(Target::Node(client))
    }
}

impl RedisStoreBuilder {
    /// The Sentinels' clients, one per URL with that URL's credentials. Their scheme decides
    /// TLS for the master too (deployments use one setting for both), verified against the
    /// same roots; a list that mixes schemes is refused.
    fn sentinel_target(&self, master: &SentinelMaster) -> Result<Target, StoreError> {
        use redis::IntoConnectionInfo as _;
        let infos = self
            .urls
            .iter()
            .map(|url| url.as_str().into_connection_info())
            .collect::<Result<Vec<_>, _>>()
            .map_err(connect_error)?;
        // None: plaintext; Some(insecure): TLS, verified unless `#insecure`.
        let tls = |info: &redis::ConnectionInfo| match info.addr() {
            redis::ConnectionAddr::TcpTls { insecure, .. } => Some(*insecure),
            _ => None,
        };
        let Some(first) = infos.first() else {
            return Err(sentinel_error(
                &master.name,
                redis::RedisError::from((
                    redis::ErrorKind::EmptySentinelList,
                    "no Sentinel URL given",
                )),
            ));
        };
        let mode = tls(first);
        if infos.iter().any(|info| tls(info) != mode) {
            return Err(StoreError::Connect {
                problem: "the Sentinel URLs mix redis://, rediss:// and rediss://…#insecure".to_owned(),
                fix: "give every Sentinel URL the same scheme (and #insecure on all or none): rediss:// for TLS to the Sentinels and the master, redis:// for neither".to_owned(),
                source: None,
            });
        }
        // The roots serve verified TLS only (a plaintext or `#insecure` client refuses them).
        let roots = self.root_cert.clone().filter(|_| mode == Some(false));
        let plain = infos
            .iter()
            .map(|info| link::node_client(info.clone(), roots.as_deref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(connect_error)?;
        let settings = master.clone();
        let make: link::MakeSentinelClients = Arc::new(move || {
            infos
                .iter()
                .map(|info| sentinel_client(info, &settings, mode, roots.as_deref()))
                .collect()
        });
        let sentinels =
            link::Sentinels::new(make, plain, master.name.clone()).map_err(connect_error)?;
        Ok(Target::Sentinel(Arc::new(sentinels)))
    }
}

/// A client of the one Sentinel `info` names, for `master`. `tls`: `None` for plaintext to
/// the master, else whether it is `#insecure`; `roots`: the CA to verify both against.
fn sentinel_client(
    info: &redis::ConnectionInfo,
    master: &SentinelMaster,
    tls: Option<bool>,
    roots: Option<&[u8]>,
) -> redis::RedisResult<redis::sentinel::SentinelClient> {
    use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
    let own = info.redis_settings();
    let mut builder = SentinelClientBuilder::new(
        [info.addr().clone()],
        &master.name,
        SentinelServerType::Master,
    )?
    .set_client_to_redis_db(master.db);
    if let Some(user) = own.username() {
        builder = builder.set_client_to_sentinel_username(user);
    }
    if let Some(secret) = own.password() {
        builder = builder.set_client_to_sentinel_password(secret);
    }
    if let Some(user) = &master.username {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(secret) = &master.password {
        builder = builder.set_client_to_redis_password(secret);
    }
    if let Some(insecure) = tls {
        let mode = if insecure {
            redis::TlsMode::Insecure
        } else {
            redis::TlsMode::Secure
        };
        builder = builder.set_client_to_redis_tls_mode(mode);
        if let Some(pem) = roots {
            let certs = || redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            };
            builder = builder
                .set_client_to_redis_certificates(certs())
                .set_client_to_sentinel_certificates(certs());
        }
    }
    builder.build()
}

/// A failure to reach the master through the Sentinels, saying what to check.
fn sentinel_error(name: &str, error: redis::RedisError) -> StoreError {
    if super::tls::explain(&error, &CA_HINT).is_some() {
        return connect_error(error);
    }
    let reason = match error.kind() {
        redis::ErrorKind::MasterNameNotFoundBySentinel => format!(
            "no Sentinel reached names a master {name:?} that answers as a master ({error})"
        ),
        _ => format!("could not reach the master {name:?} through the Redis Sentinels: {error}"),
    };
    StoreError::Connect {
        problem: reason,
        fix: format!(
            "check the Sentinel URLs (redis://host:26379, their credentials in the URL), that \"{name}\" is the name in their `sentinel monitor` line, and the master's credentials (RedisStoreBuilder::master_auth)"
        ),
        source: Some(Box::new(error)),
    }
}

/// Whether the server behind `link` runs with `cluster-enabled yes`. A server that refuses
/// `INFO` (some managed services rename it) counts as a single node.
async fn cluster_enabled(link: &Link) -> bool {
    let info: redis::RedisResult<String> = link
        .run(|mut c| async move { redis::cmd("INFO").arg("cluster").query_async(&mut c).await })
        .await;
    info.is_ok_and(|info| info.contains("cluster_enabled:1"))
}

/// What Better Auth stores under a token.
#[derive(Deserialize)]
struct Stored {
    session: Session,
    user: User,
}

impl Stored {
    /// The session and its user, unless the user's revoked-before marker rejects it.
    fn unless_revoked(self, revoked: bool) -> Option<Authenticated> {
        (!revoked).then(|| Authenticated::new(self.session, self.user))
    }
}

/// An entry of `active-sessions-{userId}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Active {
    token: String,
    expires_at: i64,
}

fn backend(operation: &'static str) -> impl FnOnce(redis::RedisError) -> StoreError {
    move |e| StoreError::backend(operation, e)
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        reason: format!("Redis session value: {e}"),
    }
}

/// One key of a batch read ([`SessionStore::find_many`]).
// Each lives only until its batch is answered, as the `Option<(Stored, bool)>` before it did:
// boxing the value would allocate once more per session read.
#[allow(clippy::large_enum_variant)]
enum BatchRead {
    /// The value, and whether the user's revoked-before marker rejects it.
    Found(Stored, bool),
    /// No such key.
    Missing,
    /// A value that cannot be read: skipped rather than the batch's error, as Better Auth's
    /// `findSessions` skips it (the others are still read; a lookup of that token alone
    /// reports it), and never looked for in a database either.
    Unreadable,
}

impl BatchRead {
    /// `read` of one value, with an unreadable one [`Unreadable`](Self::Unreadable).
    fn of(read: Result<(Stored, bool), StoreError>) -> Result<Self, StoreError> {
        match read {
            Ok((stored, revoked)) => Ok(Self::Found(stored, revoked)),
            Err(StoreError::Corrupt { reason }) => Ok(Self::unreadable(reason)),
            Err(error) => Err(error),
        }
    }

    /// [`Unreadable`](Self::Unreadable), logged with `reason`.
    fn unreadable(reason: impl std::fmt::Display) -> Self {
        tracing::warn!(%reason, "skipped an unreadable session value in a batch read");
        Self::Unreadable
    }

    /// The session it authenticates, if any.
    fn authenticated(self) -> Option<Authenticated> {
        match self {
            Self::Found(stored, revoked) => stored.unless_revoked(revoked),
            Self::Missing | Self::Unreadable => None,
        }
    }
}

/// Seconds from `now` until `at`, floored, as Better Auth's `getTTLSeconds`.
fn ttl_secs(at: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (time_fmt::to_unix_ms(at) - time_fmt::to_unix_ms(now)).div_euclid(1000)
}

impl RedisStore {
    /// A builder for a store on one node at `url`, such as `redis://127.0.0.1:6379/` or
    /// `rediss://cache.example.com:6380/`.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            urls: vec![url.into()],
            cluster: false,
            sentinel: None,
            prefix: String::new(),
            expires_in: time::Duration::days(7),
            timeout: Duration::from_secs(2),
            clock: Arc::new(SystemClock),
            root_cert: None,
        }
    }

    /// A builder for a store on a Redis Cluster, given one or more of its nodes' URLs.
    pub fn cluster_builder<I, S>(urls: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder {
            urls: urls.into_iter().map(Into::into).collect(),
            cluster: true,
            ..Self::builder(String::new())
        }
    }

    /// A builder for a store on the master that Redis Sentinel names `master_name` (the name
    /// in `sentinel monitor <name> …`), given one or more Sentinels' URLs, such as
    /// `redis://sentinel-1:26379/`. Put each Sentinel's own credentials in its URL, the
    /// master's in [`master_auth`](RedisStoreBuilder::master_auth). `rediss://` Sentinel URLs
    /// (all or none; `#insecure` on all or none) mean TLS to the master too, against the same roots
    /// ([`tls_root_cert_pem`](RedisStoreBuilder::tls_root_cert_pem)); the master's certificate
    /// must name the address the Sentinels announce for it (often an IP address).
    ///
    /// Each connection asks every Sentinel at once and takes the first server named that
    /// calls itself a master (`ROLE`), so a dead or frozen Sentinel, or one that has not yet
    /// seen a failover, holds nothing up. After a failover, the connection that replaces the
    /// lost one (a timeout, a reset, or a `READONLY` answer from the demoted master) reaches
    /// the promoted replica, and the operation is tried once more there. Inside one lookup the
    /// driver's own limits apply to each Sentinel (1 s to connect, 0.5 s per answer); the
    /// [`timeout`](RedisStoreBuilder::timeout) bounds the whole.
    pub fn sentinel_builder<I, S>(
        sentinel_urls: I,
        master_name: impl Into<String>,
    ) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder {
            urls: sentinel_urls.into_iter().map(Into::into).collect(),
            sentinel: Some(SentinelMaster {
                name: master_name.into(),
                ..SentinelMaster::default()
            }),
            ..Self::builder(String::new())
        }
    }

    /// Connects to one node at `url` with the defaults.
    ///
    /// # Errors
    ///
    /// A backend error when the URL is invalid or the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).build().await
    }

    /// Keeps sessions in `database` too, Better Auth's `storeSessionInDatabase: true`: writes go
    /// to both, reads try Redis first and fall back to the database. For Better Auth's
    /// `preserveSessionInDatabase: true` as well, add
    /// [`preserve_in_database`](RedisWithDatabase::preserve_in_database).
    pub fn in_front_of<D: SessionStore>(self, database: D) -> RedisWithDatabase<D> {
        RedisWithDatabase {
            redis: self,
            database,
            preserve: false,
        }
    }

    /// Whether the store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.link.is_cluster()
    }

    /// The Sentinels that name the master, for a store made with
    /// [`sentinel_builder`](Self::sentinel_builder) (the change feed follows them).
    #[cfg(feature = "cache")]
    pub(crate) fn sentinels(&self) -> Option<&Arc<link::Sentinels>> {
        self.link.sentinels()
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    fn list_key(&self, user_id: &str) -> String {
        format!("{}active-sessions-{user_id}", self.prefix)
    }

    fn marker_key(&self, user_id: &str) -> String {
        format!("{}revoked-sessions-before-{user_id}", self.prefix)
    }

    /// Runs `op` on the connection, replacing it after a connection failure.
    async fn run<T, F, Fut>(&self, operation: &'static str, op: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        self.link.run(op).await.map_err(backend(operation))
    }

    /// Atomically replaces `key`'s `old` value by `new` (`""` = delete).
    async fn cas(&self, key: &str, old: &str, new: &str, ttl: i64) -> Result<bool, StoreError> {
        let done: i64 = self
            .run("write", |mut c| async move {
                self.scripts
                    .cas
                    .key(key)
                    .arg(old)
                    .arg(new)
                    .arg(ttl.max(0))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(done == 1)
    }

    /// Removes `token` from `active-sessions-{user_id}`, pruning expired entries, and with
    /// `expires_at` adds it back with that expiry: one atomic step on one key.
    async fn edit_list(
        &self,
        user_id: &str,
        token: &str,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.edit_list_dropping(user_id, token, expires_at, now, &[])
            .await
    }

    /// [`edit_list`](Self::edit_list) that also removes each of `also`.
    async fn edit_list_dropping(
        &self,
        user_id: &str,
        token: &str,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
        also: &[&str],
    ) -> Result<(), StoreError> {
        let key = self.list_key(user_id);
        let now_ms = time_fmt::to_unix_ms(now);
        let expires = expires_at.map_or_else(String::new, |t| time_fmt::to_unix_ms(t).to_string());
        let _: i64 = self
            .run("update active-sessions", |mut c| {
                let (key, expires) = (&key, &expires);
                async move {
                    self.scripts
                        .list_edit
                        .key(key)
                        .arg(now_ms)
                        .arg(token)
                        .arg(expires)
                        .arg(also)
                        .invoke_async(&mut c)
                        .await
                }
            })
            .await?;
        Ok(())
    }

    /// The user's session list as stored.
    async fn active(&self, user_id: &str) -> Result<Vec<Active>, StoreError> {
        let key = self.list_key(user_id);
        let list: Option<String> = self
            .run("read active-sessions", |mut c| {
                let key = &key;
                async move { c.get(key).await }
            })
            .await?;
        Ok(list
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default())
    }

    /// Reads the raw value and the parsed session, and whether the user's revoked-before
    /// marker rejects it.
    async fn read(&self, token: &str) -> Result<Option<(String, Stored, bool)>, StoreError> {
        let key = self.key(token);
        let (raw, marker) = if self.link.is_cluster() {
            // The session key and its user's marker live in different slots: two lookups.
            let raw: Option<String> = self
                .run("find", |mut c| {
                    let key = &key;
                    async move { c.get(key).await }
                })
                .await?;
            let Some(raw) = raw else { return Ok(None) };
            let user_id = serde_json::from_str::<Stored>(&raw)
                .map(|s| s.session.user_id)
                .unwrap_or_default();
            let marker = self.marker(&user_id).await?;
            (raw, marker)
        } else {
            let marker_prefix = self.marker_key("");
            let found: Option<(String, String, String)> = self
                .run("find", |mut c| {
                    let (key, marker_prefix) = (&key, &marker_prefix);
                    async move {
                        self.scripts
                            .find
                            .key(key)
                            .arg(marker_prefix)
                            .invoke_async(&mut c)
                            .await
                    }
                })
                .await?;
            let Some((raw, marker, uid)) = found else {
                return Ok(None);
            };
            let (stored, revoked) = self.decode_found(&raw, &marker, &uid).await?;
            return Ok(Some((raw, stored, revoked)));
        };
        let (stored, revoked) = decode(&raw, &marker)?;
        Ok(Some((raw, stored, revoked)))
    }

    /// Decodes what [`FIND`] answered: `marker` is the revoked-before marker of `uid`, the id
    /// the script found; when the session names another user, that user's marker is read.
    async fn decode_found(
        &self,
        raw: &str,
        marker: &str,
        uid: &str,
    ) -> Result<(Stored, bool), StoreError> {
        let (stored, by_uid) = decode(raw, marker)?;
        if stored.session.user_id == uid {
            return Ok((stored, by_uid));
        }
        let marker = self.marker(&stored.session.user_id).await?;
        let rejected = revoked(&stored, &marker);
        Ok((stored, rejected))
    }

    /// The revoked-before marker of `user_id` (`""` when there is none).
    async fn marker(&self, user_id: &str) -> Result<String, StoreError> {
        let marker_key = self.marker_key(user_id);
        let marker: Option<String> = self
            .run("find", |mut c| {
                let marker_key = &marker_key;
                async move { c.get(marker_key).await }
            })
            .await?;
        Ok(marker.unwrap_or_default())
    }

    /// [`read`](Self::read) for many keys, one answer per key in order (without the raw
    /// values): one pipeline per 64 keys on a single node, each key read by the same script
    /// (loaded first in the pipeline, so a restarted Redis that lost it still answers); on a
    /// cluster, [`read_many_on_cluster`](Self::read_many_on_cluster).
    async fn read_many(&self, keys: &[StorageKey<'_>]) -> Result<Vec<BatchRead>, StoreError> {
        if self.link.is_cluster() {
            return self.read_many_on_cluster(keys).await;
        }
        let mut found = Vec::with_capacity(keys.len());
        let marker_prefix = self.marker_key("");
        for chunk in keys.chunks(64) {
            let names: Vec<String> = chunk.iter().map(|k| self.key(k.as_str())).collect();
            let replies: Vec<Option<(String, String, String)>> = self
                .run("find many", |mut c| {
                    let (names, marker_prefix) = (&names, &marker_prefix);
                    async move {
                        let invocations: Vec<_> = names
                            .iter()
                            .map(|name| {
                                let mut invocation = self.scripts.find.key(name);
                                invocation.arg(marker_prefix);
                                invocation
                            })
                            .collect();
                        let mut pipe = redis::pipe();
                        pipe.load_script(&self.scripts.find).ignore();
                        for invocation in &invocations {
                            pipe.invoke_script(invocation);
                        }
                        pipe.query_async(&mut c).await
                    }
                })
                .await?;
            for reply in one_answer_each("a pipeline of reads", chunk.len(), replies)? {
                found.push(match reply {
                    Some((raw, marker, uid)) => {
                        BatchRead::of(self.decode_found(&raw, &marker, &uid).await)?
                    }
                    None => BatchRead::Missing,
                });
            }
        }
        Ok(found)
    }

    /// [`read_many`](Self::read_many) on a cluster, where a session and its user's marker live
    /// in different slots (so no script can read both): per 64 keys, one `MGET` of the
    /// sessions, then one `MGET` of the markers of the users found. The client splits each
    /// `MGET` by hash slot, sends the parts at once over its connections to the nodes and
    /// answers in key order: two waits per batch rather than two per key (the nodes still run
    /// one small command per slot). Like [`read`](Self::read) on a cluster, the two reads are
    /// not one atomic step. Unlike `GET`, `MGET` reads a key of another type as missing: a
    /// marker key that is not a string rejects nothing here, where `find` fails.
    async fn read_many_on_cluster(
        &self,
        keys: &[StorageKey<'_>],
    ) -> Result<Vec<BatchRead>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(64) {
            let names: Vec<String> = chunk.iter().map(|k| self.key(k.as_str())).collect();
            let raws = self.mget(&names).await?;
            let parsed: Vec<Option<serde_json::Result<Stored>>> = raws
                .iter()
                .map(|raw| raw.as_deref().map(serde_json::from_str::<Stored>))
                .collect();
            let marker_names: Vec<String> = parsed
                .iter()
                .flatten()
                .flatten()
                .map(|s| self.marker_key(&s.session.user_id))
                .collect();
            let mut markers = self.mget(&marker_names).await?.into_iter();
            for read in parsed {
                found.push(match read {
                    Some(Ok(stored)) => {
                        let marker = markers.next().flatten().unwrap_or_default();
                        let revoked = revoked(&stored, &marker);
                        BatchRead::Found(stored, revoked)
                    }
                    Some(Err(error)) => BatchRead::unreadable(corrupt(error)),
                    None => BatchRead::Missing,
                });
            }
        }
        Ok(found)
    }

    /// The string values of `names`, in order (`None` for a missing key); no round trip for
    /// none.
    async fn mget(&self, names: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> = self
            .run("find many", |mut c| async move {
                redis::cmd("MGET").arg(names).query_async(&mut c).await
            })
            .await?;
        one_answer_each("MGET", names.len(), values)
    }

    /// Deletes one key.
    async fn del(&self, operation: &'static str, key: &str) -> Result<(), StoreError> {
        self.run(operation, |mut c| async move { c.del::<_, ()>(key).await })
            .await
    }
}

/// A session value and its user's revoked-before marker (`""` when there is none): the
/// stored session, and whether the marker rejects it.
fn decode(raw: &str, marker: &str) -> Result<(Stored, bool), StoreError> {
    let stored: Stored = serde_json::from_str(raw).map_err(corrupt)?;
    let revoked = revoked(&stored, marker);
    Ok((stored, revoked))
}

/// `answers` when `what` answered each of the `asked` keys once; a corrupt-data error else.
fn one_answer_each<T>(what: &str, asked: usize, answers: Vec<T>) -> Result<Vec<T>, StoreError> {
    if answers.len() == asked {
        Ok(answers)
    } else {
        Err(corrupt(format!(
            "{what} of {asked} keys answered {} times",
            answers.len()
        )))
    }
}

/// Whether the user's revoked-before `marker` (`""` when there is none) rejects `stored`.
fn revoked(stored: &Stored, marker: &str) -> bool {
    // Read as Better Auth's `Number(marker)` reads it: surrounding blanks, a fraction or an
    // exponent still make a number (`"1795352011489.0"`, written by other software).
    let marker = marker.trim();
    let created = time_fmt::to_unix_ms(stored.session.created_at);
    if let Ok(before) = marker.parse::<i64>() {
        return created < before;
    }
    if let Some(hex) = marker
        .strip_prefix("0x")
        .or_else(|| marker.strip_prefix("0X"))
    {
        return i64::from_str_radix(hex, 16).is_ok_and(|before| created < before);
    }
    // JavaScript spells infinity one way only; Rust's parser takes `inf` and `nan` too.
    if marker
        .chars()
        .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        && marker.trim_start_matches(['+', '-']) != "Infinity"
    {
        return false;
    }
    // Milliseconds are exact in an f64 for any date `time` holds.
    #[allow(clippy::cast_precision_loss)]
    let created = created as f64;
    marker
        .replace("Infinity", "inf")
        .parse::<f64>()
        .is_ok_and(|before| created < before)
}

impl SessionStore for RedisStore {
    async fn find(&self, key: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        Ok(self
            .read(key.as_str())
            .await?
            .and_then(|(_, stored, revoked)| stored.unless_revoked(revoked)))
    }

    /// One pipeline per 64 keys on a single node, each key read by the same script as `find`
    /// (loaded first in the pipeline, so a restarted Redis still answers); on a cluster, per
    /// 64 keys one `MGET` of the sessions and one of their users' revoked-before markers.
    async fn find_many(
        &self,
        keys: &[StorageKey<'_>],
    ) -> Result<Vec<Option<Authenticated>>, StoreError> {
        Ok(self
            .read_many(keys)
            .await?
            .into_iter()
            .map(BatchRead::authenticated)
            .collect())
    }

    /// The user's list first, then the session key (as Better Auth orders them): a failure
    /// between the two leaves a list entry whose key is missing, which readers skip and the
    /// list drops at that entry's expiry, never a session key that no list names.
    async fn create(&self, session: &Session, user: &User) -> Result<Session, StoreError> {
        let now = self.clock.now();
        let ttl = ttl_secs(session.expires_at, now);
        if ttl <= 0 {
            return Ok(session.clone());
        }
        self.edit_list(
            &session.user_id,
            &session.token,
            Some(session.expires_at),
            now,
        )
        .await?;
        let value = serde_json::to_string(&crate::wire::Stored {
            session: crate::wire::CreatedSession::new(session),
            user: crate::wire::UserRow::new(user),
        })
        .map_err(corrupt)?;
        let key = self.key(&session.token);
        let written = self
            .run("create", |mut c| {
                let (key, value) = (&key, &value);
                async move { c.set_ex::<_, _, ()>(key, value, ttl as u64).await }
            })
            .await;
        if let Err(error) = written {
            // Best effort: take the entry back out of the list.
            let _ = self
                .edit_list(&session.user_id, &session.token, None, now)
                .await;
            return Err(error);
        }
        Ok(session.clone())
    }

    async fn extend(
        &self,
        key: &StorageKey<'_>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        let token = key.as_str();
        let key = self.key(token);
        for _ in 0..CAS_RETRIES {
            let Some((raw, stored, revoked)) = self.read(token).await? else {
                return Ok(None);
            };
            let current = stored.session.expires_at;
            if revoked || current < now || current >= expires_at {
                return Ok(None);
            }
            // Merge into the stored object, keeping its key order, as Better Auth's
            // `updateSession` does.
            let mut value: Value = serde_json::from_str(&raw).map_err(corrupt)?;
            if let Some(s) = value.get_mut("session").and_then(Value::as_object_mut) {
                s.insert("expiresAt".into(), time_fmt::to_iso(expires_at).into());
                s.insert("updatedAt".into(), time_fmt::to_iso(now).into());
            }
            if self
                .cas(&key, &raw, &value.to_string(), ttl_secs(expires_at, now))
                .await?
            {
                let mut session = stored.session;
                session.expires_at = time_fmt::truncate_ms(expires_at);
                session.updated_at = time_fmt::truncate_ms(now);
                self.edit_list(&session.user_id, token, Some(expires_at), now)
                    .await?;
                return Ok(Some(session));
            }
        }
        Err(StoreError::backend(
            "extend",
            std::io::Error::other("the session changed under eight refreshes in a row"),
        ))
    }

    async fn delete(&self, key: &StorageKey<'_>) -> Result<(), StoreError> {
        let token = key.as_str();
        let key = self.key(token);
        let raw: Option<String> = self
            .run("delete", |mut c| {
                let key = &key;
                async move { c.get(key).await }
            })
            .await?;
        self.del("delete", &key).await?;
        let user_id = raw
            .as_deref()
            .and_then(|r| serde_json::from_str::<Stored>(r).ok())
            .map(|s| s.session.user_id);
        if let Some(user_id) = user_id {
            self.edit_list(&user_id, token, None, self.clock.now())
                .await?;
        }
        Ok(())
    }

    async fn delete_if_expired(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        match self.read(key.as_str()).await? {
            Some((_, stored, _)) if stored.session.expires_at < now => self.delete(key).await,
            _ => Ok(()),
        }
    }

    /// The marker first: every session created before it is rejected from then on, so a
    /// failure part-way through the deletions leaves nothing that still authenticates.
    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        let now_ms = time_fmt::to_unix_ms(self.clock.now());
        let marker_key = self.marker_key(user_id);
        let marker_ttl = self.marker_ttl.load(Ordering::Relaxed);
        let _: i64 = self
            .run("revoke all", |mut c| {
                let marker_key = &marker_key;
                async move {
                    self.scripts
                        .marker
                        .key(marker_key)
                        .arg(now_ms)
                        .arg(marker_ttl)
                        .invoke_async(&mut c)
                        .await
                }
            })
            .await?;
        let list = self.active(user_id).await?;
        for entry in &list {
            self.del("revoke all", &self.key(&entry.token)).await?;
        }
        // Only the tokens deleted leave the list (as Better Auth filters it): a sign-in that
        // landed meanwhile keeps its entry, so it is still listed and revoked by the next
        // revocation, rather than living on unlisted.
        let gone: Vec<&str> = list.iter().map(|e| e.token.as_str()).collect();
        self.edit_list_dropping(user_id, "", None, self.clock.now(), &gone)
            .await?;
        Ok(list.len() as u64)
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        let list = self.active(user_id).await?;
        let mut sessions = Vec::with_capacity(list.len());
        let mut seen = std::collections::HashSet::with_capacity(list.len());
        for entry in list {
            // As Better Auth's `listSessions`: each token once, and a value that does not parse
            // (written by other software) skipped rather than failing the whole list.
            if !seen.insert(entry.token.clone()) {
                continue;
            }
            match self.find(&StorageKey::new(entry.token)).await {
                Ok(Some(auth)) if auth.session.expires_at > now => {
                    sessions.push((*auth.session).clone());
                }
                Ok(_) => {}
                Err(StoreError::Corrupt { reason }) => {
                    tracing::debug!(%reason, "skipped an unreadable session in a user's list");
                }
                Err(e) => return Err(e),
            }
        }
        sessions.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then(a.id.cmp(&b.id)));
        Ok(sessions)
    }

    /// Redis expires keys by itself (every key has a TTL), so there is nothing to sweep.
    async fn delete_expired(&self, _now: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(0)
    }

    fn session_lifetime(&self, expires_in: time::Duration) {
        if let Ok(seconds) = u64::try_from(expires_in.whole_seconds()) {
            self.marker_ttl.fetch_max(seconds, Ordering::Relaxed);
        }
    }
}

/// Redis in front of a SQL store, Better Auth's `secondaryStorage` with
/// `storeSessionInDatabase: true`. Built by [`RedisStore::in_front_of`].
///
/// Writes go to the database first (the authority), then to Redis; lookups try Redis and fall
/// back to the database on a miss; revocations clear both. With
/// [`preserve_in_database`](Self::preserve_in_database), the database keeps ended sessions.
#[derive(Clone, Debug)]
pub struct RedisWithDatabase<D> {
    redis: RedisStore,
    database: D,
    preserve: bool,
}

impl<D> RedisWithDatabase<D> {
    /// Better Auth's `preserveSessionInDatabase: true`: the database keeps every session row
    /// for an audit trail. A sign-out or revocation deletes the session from Redis and ends
    /// its row ([`SessionStore::end_session`]: `expiresAt` and `updatedAt` set to now) instead
    /// of deleting it; sweeps and expired sessions leave rows alone; lookups and lists read
    /// Redis only, without falling back to the database, as Better Auth does in this mode.
    /// Set it exactly when the Better Auth server sharing these sessions does: otherwise one
    /// side deletes the rows the other keeps. Default: off.
    pub fn preserve_in_database(mut self) -> Self {
        self.preserve = true;
        self
    }

    /// The Redis half.
    pub fn redis(&self) -> &RedisStore {
        &self.redis
    }

    /// The database half.
    pub fn database(&self) -> &D {
        &self.database
    }
}

impl<D: SessionStore> SessionStore for RedisWithDatabase<D> {
    async fn find(&self, key: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        match self.redis.read(key.as_str()).await? {
            // A session revoked by the marker is authoritative: no fallback.
            Some((_, stored, revoked)) => Ok(stored.unless_revoked(revoked)),
            None if self.preserve => Ok(None),
            None => self.database.find(key).await,
        }
    }

    /// Redis first, in pipelines; the keys Redis does not have (and no marker revokes) then go
    /// to the database in one `find_many`.
    async fn find_many(
        &self,
        keys: &[StorageKey<'_>],
    ) -> Result<Vec<Option<Authenticated>>, StoreError> {
        let reads = self.redis.read_many(keys).await?;
        let mut found = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, read) in reads.into_iter().enumerate() {
            if matches!(read, BatchRead::Missing) {
                missing.push(i);
            }
            found.push(read.authenticated());
        }
        if !missing.is_empty() && !self.preserve {
            let asked: Vec<StorageKey<'_>> = missing
                .iter()
                .map(|&i| StorageKey::new(keys[i].as_str()))
                .collect();
            let answers = self.database.find_many(&asked).await?;
            for (i, answer) in missing.into_iter().zip(answers) {
                found[i] = answer;
            }
        }
        Ok(found)
    }

    async fn create(&self, session: &Session, user: &User) -> Result<Session, StoreError> {
        let stored = self.database.create(session, user).await?;
        self.redis.create(&stored, user).await
    }

    async fn extend(
        &self,
        key: &StorageKey<'_>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        // Both, whatever the other answers, as Better Auth updates secondary storage and then
        // the table: a session only Redis holds (made before `storeSessionInDatabase` was on)
        // is still refreshed, and one only the table holds too (reads fall back to it).
        let updated = self.database.extend(key, expires_at, now).await?;
        let in_redis = self.redis.extend(key, expires_at, now).await?;
        Ok(updated.or(in_redis))
    }

    async fn delete(&self, key: &StorageKey<'_>) -> Result<(), StoreError> {
        if self.preserve {
            self.database
                .end_session(key, self.redis.clock.now())
                .await?;
        } else {
            self.database.delete(key).await?;
        }
        self.redis.delete(key).await
    }

    async fn purge(&self, key: &StorageKey<'_>) -> Result<(), StoreError> {
        self.database.purge(key).await?;
        self.redis.delete(key).await
    }

    async fn delete_if_expired(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if !self.preserve {
            self.database.delete_if_expired(key, now).await?;
        }
        // The Redis key carries its own TTL; drop it only if it too says expired.
        match self.redis.read(key.as_str()).await? {
            Some((_, stored, _)) if stored.session.expires_at >= now => Ok(()),
            Some(_) => self.redis.delete(key).await,
            None => Ok(()),
        }
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        let n = if self.preserve {
            let now = self.redis.clock.now();
            self.database.end_user_sessions(user_id, now).await?
        } else {
            self.database.delete_user_sessions(user_id).await?
        };
        let m = self.redis.delete_user_sessions(user_id).await?;
        Ok(n.max(m))
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        if self.preserve {
            return self.redis.list_user_sessions(user_id, now).await;
        }
        self.database.list_user_sessions(user_id, now).await
    }

    async fn delete_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        if self.preserve {
            return Ok(0);
        }
        self.database.delete_expired(now).await
    }

    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> Result<u64, StoreError> {
        if self.preserve {
            return Ok(0);
        }
        self.database.delete_expired_batch(now, limit).await
    }

    async fn find_user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        self.database.find_user(user_id).await
    }

    async fn lift_ban(&self, user_id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        self.database.lift_ban(user_id, now).await
    }

    /// The user in the database, then their sessions in Redis.
    async fn remove_user(&self, user_id: &str) -> Result<bool, StoreError> {
        let held = self.database.remove_user(user_id).await?;
        self.redis.delete_user_sessions(user_id).await?;
        Ok(held)
    }

    fn session_lifetime(&self, expires_in: time::Duration) {
        self.redis.session_lifetime(expires_in);
        self.database.session_lifetime(expires_in);
    }
}

/// The session change feed (features `redis` and `cache`): see [`crate::store::changes`].
#[cfg(feature = "cache")]
impl RedisStore {
    /// A feed of the session keys Better Auth (or anyone) deletes or rewrites, from Redis
    /// keyspace notifications, for
    /// [`CachedStoreBuilder::watch`](crate::store::CachedStoreBuilder::watch). `url` is the
    /// URL this store connects to (same server and database number): the feed subscribes on a
    /// connection of its own. On a Redis Cluster, give any one of its nodes' URLs: the feed
    /// subscribes on every master, with that URL's scheme, credentials and TLS settings (see
    /// [`start`](crate::store::RedisChangesBuilder::start)). Behind Redis Sentinel, give one of
    /// the Sentinels' URLs: the feed follows the master they name.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_auth_session::store::{CachedStore, RedisStore};
    ///
    /// let url = "redis://127.0.0.1:6379/";
    /// let store = RedisStore::connect(url).await?;
    /// let changes = store.session_changes(url).start().await?;
    /// let cached = CachedStore::builder(store).watch(changes).build();
    /// # let _ = cached; Ok(()) }
    /// ```
    pub fn session_changes(&self, url: impl Into<String>) -> crate::store::RedisChangesBuilder {
        crate::store::RedisChangesBuilder::new(self.clone(), url.into())
    }

    /// The key prefix (empty for Better Auth's own keys).
    pub(crate) fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// Runs one command on the store's connection.
    pub(crate) async fn command<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        self.run("watch session changes", |mut c| async move {
            cmd.query_async(&mut c).await
        })
        .await
    }
}
