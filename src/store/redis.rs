//! Sessions in Redis, in Better Auth's secondary-storage format (spec §7).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::SessionStore;
use crate::clock::{Clock, SystemClock};
use crate::error::StoreError;
use crate::model::{Authenticated, Session, User};
use crate::time_fmt;

/// Compare-and-set: `KEYS[1]` becomes `ARGV[2]` (deleted when empty) with TTL `ARGV[3]` seconds,
/// only if it still holds `ARGV[1]` (empty = absent). Keeps read-modify-write updates atomic
/// without rewriting the JSON in Lua, so the bytes stay exactly as Better Auth wrote them.
const CAS: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur == false then cur = '' end
if cur ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
elseif tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
";

/// One round trip per lookup: the session value and its user's revoked-before marker.
const FIND: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local ok, decoded = pcall(cjson.decode, v)
local uid = ''
if ok and type(decoded) == 'table' and type(decoded.session) == 'table' and type(decoded.session.userId) == 'string' then
  uid = decoded.session.userId
end
local marker = redis.call('GET', ARGV[1] .. uid)
if not marker then marker = '' end
return {v, marker}
";

const CAS_RETRIES: usize = 8;

/// Sessions in Redis exactly as Better Auth's `secondaryStorage` keeps them (spec §7):
///
/// | key | value | TTL |
/// |---|---|---|
/// | `{prefix}{token}` | `{"session":{…},"user":{…}}` | until `expiresAt` |
/// | `{prefix}active-sessions-{userId}` | `[{"token":…,"expiresAt":ms},…]`, earliest first | the latest expiry |
/// | `{prefix}revoked-sessions-before-{userId}` | ms timestamp of the last revoke-all | `max(expiresIn, 1 day)` |
///
/// A Better Auth server configured with the same Redis as `secondaryStorage` (and the same key
/// prefix, none by default) shares sessions with this store in both directions. Updates are
/// compare-and-set scripts, so concurrent refreshes, sign-outs and revocations on several
/// instances never resurrect or shorten a session. The connection reconnects by itself after an
/// outage.
///
/// To keep session rows in SQL as well (Better Auth's `storeSessionInDatabase`), wrap a SQL
/// store with [`RedisStore::in_front_of`].
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
    marker_ttl: u64,
    clock: Arc<dyn Clock>,
    cas: Arc<Script>,
    find: Arc<Script>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisStore`].
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    expires_in: time::Duration,
    timeout: Duration,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// A prefix for every key, as adapters such as `@better-auth/redis-storage` add. Default:
    /// none (Better Auth's own keys).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The session lifetime (`expiresIn`), used for the revoked-before marker's TTL. Default:
    /// 7 days.
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

    /// Connects.
    ///
    /// # Errors
    ///
    /// A backend error when the URL is invalid or the server cannot be reached.
    pub async fn build(self) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| StoreError::backend("connect", e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| StoreError::backend("connect", e))?;
        Ok(RedisStore {
            conn,
            prefix: self.prefix.into(),
            marker_ttl: u64::try_from(self.expires_in.whole_seconds().max(86_400))
                .unwrap_or(86_400),
            clock: self.clock,
            cas: Arc::new(Script::new(CAS)),
            find: Arc::new(Script::new(FIND)),
        })
    }
}

/// What Better Auth stores under a token.
#[derive(Deserialize)]
struct Stored {
    session: Session,
    user: User,
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

/// Seconds from `now` until `at`, floored, as Better Auth's `getTTLSeconds`.
fn ttl_secs(at: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (time_fmt::to_unix_ms(at) - time_fmt::to_unix_ms(now)).div_euclid(1000)
}

/// The JSON Better Auth writes for a session it created without a database: `id` first.
fn session_json(s: &Session) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), s.id.clone().into());
    m.insert(
        "ipAddress".into(),
        s.ip_address.clone().unwrap_or_default().into(),
    );
    m.insert(
        "userAgent".into(),
        s.user_agent.clone().unwrap_or_default().into(),
    );
    m.insert("expiresAt".into(), time_fmt::to_iso(s.expires_at).into());
    m.insert("userId".into(), s.user_id.clone().into());
    m.insert("token".into(), s.token.clone().into());
    m.insert("createdAt".into(), time_fmt::to_iso(s.created_at).into());
    m.insert("updatedAt".into(), time_fmt::to_iso(s.updated_at).into());
    for (k, v) in &s.extra {
        m.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Value::Object(m)
}

/// The user as Better Auth's adapter returns it: schema fields first, `id` last.
fn user_json(u: &User) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), u.name.clone().into());
    m.insert("email".into(), u.email.clone().into());
    m.insert("emailVerified".into(), u.email_verified.into());
    m.insert(
        "image".into(),
        u.image.clone().map_or(Value::Null, Value::from),
    );
    m.insert("createdAt".into(), time_fmt::to_iso(u.created_at).into());
    m.insert("updatedAt".into(), time_fmt::to_iso(u.updated_at).into());
    for (k, v) in &u.extra {
        m.entry(k.clone()).or_insert_with(|| v.clone());
    }
    m.insert("id".into(), u.id.clone().into());
    Value::Object(m)
}

impl RedisStore {
    /// A builder for a store at `url`, such as `redis://127.0.0.1:6379/`.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: String::new(),
            expires_in: time::Duration::days(7),
            timeout: Duration::from_secs(2),
            clock: Arc::new(SystemClock),
        }
    }

    /// Connects to `url` with the defaults.
    ///
    /// # Errors
    ///
    /// A backend error when the URL is invalid or the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).build().await
    }

    /// Keeps sessions in `database` too, Better Auth's `storeSessionInDatabase: true`: writes go
    /// to both, reads try Redis first and fall back to the database.
    pub fn in_front_of<D: SessionStore>(self, database: D) -> RedisWithDatabase<D> {
        RedisWithDatabase {
            redis: self,
            database,
        }
    }

    /// The connection, for the application's own commands.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
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

    /// Atomically replaces `key`'s `old` value (`""` = absent) by `new` (`""` = delete).
    async fn cas(&self, key: &str, old: &str, new: &str, ttl: i64) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let done: i64 = self
            .cas
            .key(key)
            .arg(old)
            .arg(new)
            .arg(ttl.max(0))
            .invoke_async(&mut conn)
            .await
            .map_err(backend("write"))?;
        Ok(done == 1)
    }

    /// Applies `edit` to `active-sessions-{user_id}`, pruning expired entries, sorting by
    /// expiry and setting the TTL to the latest one (deleting the key when empty), atomically.
    async fn edit_list(
        &self,
        user_id: &str,
        now: OffsetDateTime,
        edit: impl Fn(&mut Vec<Active>),
    ) -> Result<(), StoreError> {
        let key = self.list_key(user_id);
        let now_ms = time_fmt::to_unix_ms(now);
        for _ in 0..CAS_RETRIES {
            let mut conn = self.conn.clone();
            let old: Option<String> = conn.get(&key).await.map_err(backend("read list"))?;
            let mut list: Vec<Active> = old
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default();
            edit(&mut list);
            // Expiry is strict (`expiresAt < now`), so a session expiring this very millisecond stays.
            list.retain(|a| a.expires_at >= now_ms);
            list.sort_by_key(|a| a.expires_at);
            let (new, ttl) = match list.last() {
                Some(last) => (
                    serde_json::to_string(&list).map_err(corrupt)?,
                    (last.expires_at - now_ms).div_euclid(1000),
                ),
                None => (String::new(), 0),
            };
            if self
                .cas(&key, old.as_deref().unwrap_or(""), &new, ttl)
                .await?
            {
                return Ok(());
            }
        }
        Err(StoreError::backend(
            "update active-sessions",
            std::io::Error::other("too much contention on the session list"),
        ))
    }

    /// Reads the raw value and the parsed session, and whether the user's revoked-before
    /// marker rejects it.
    async fn read(&self, token: &str) -> Result<Option<(String, Stored, bool)>, StoreError> {
        let mut conn = self.conn.clone();
        let found: Option<(String, String)> = self
            .find
            .key(self.key(token))
            .arg(self.marker_key(""))
            .invoke_async(&mut conn)
            .await
            .map_err(backend("find"))?;
        let Some((raw, marker)) = found else {
            return Ok(None);
        };
        let stored: Stored = serde_json::from_str(&raw).map_err(corrupt)?;
        let revoked = marker
            .parse::<i64>()
            .is_ok_and(|before| time_fmt::to_unix_ms(stored.session.created_at) < before);
        Ok(Some((raw, stored, revoked)))
    }
}

impl SessionStore for RedisStore {
    async fn find(&self, token: &str) -> Result<Option<Authenticated>, StoreError> {
        Ok(match self.read(token).await? {
            Some((_, stored, false)) => Some(Authenticated::new(stored.session, stored.user)),
            _ => None,
        })
    }

    async fn create(&self, session: &Session, user: &User) -> Result<Session, StoreError> {
        let now = self.clock.now();
        let ttl = ttl_secs(session.expires_at, now);
        if ttl > 0 {
            let value =
                serde_json::json!({ "session": session_json(session), "user": user_json(user) });
            let mut conn = self.conn.clone();
            let _: () = conn
                .set_ex(self.key(&session.token), value.to_string(), ttl as u64)
                .await
                .map_err(backend("create"))?;
        }
        let entry = Active {
            token: session.token.clone(),
            expires_at: time_fmt::to_unix_ms(session.expires_at),
        };
        self.edit_list(&session.user_id, now, |list| {
            list.retain(|a| a.token != entry.token);
            list.push(entry.clone());
        })
        .await?;
        Ok(session.clone())
    }

    async fn extend(
        &self,
        token: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
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
            let new = value.to_string();
            if self
                .cas(&key, &raw, &new, ttl_secs(expires_at, now))
                .await?
            {
                let mut session = stored.session;
                session.expires_at = time_fmt::truncate_ms(expires_at);
                session.updated_at = time_fmt::truncate_ms(now);
                let entry_ms = time_fmt::to_unix_ms(expires_at);
                self.edit_list(&session.user_id, now, |list| {
                    list.retain(|a| a.token != token);
                    list.push(Active {
                        token: token.to_owned(),
                        expires_at: entry_ms,
                    });
                })
                .await?;
                return Ok(Some(session));
            }
        }
        Err(StoreError::backend(
            "extend",
            std::io::Error::other("too much contention on the session"),
        ))
    }

    async fn delete(&self, token: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn.get(self.key(token)).await.map_err(backend("delete"))?;
        let _: () = conn.del(self.key(token)).await.map_err(backend("delete"))?;
        let user_id = raw
            .as_deref()
            .and_then(|r| serde_json::from_str::<Stored>(r).ok())
            .map(|s| s.session.user_id);
        if let Some(user_id) = user_id {
            self.edit_list(&user_id, self.clock.now(), |list| {
                list.retain(|a| a.token != token);
            })
            .await?;
        }
        Ok(())
    }

    async fn delete_if_expired(&self, token: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        match self.read(token).await? {
            Some((_, stored, _)) if stored.session.expires_at < now => self.delete(token).await,
            _ => Ok(()),
        }
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        let now_ms = time_fmt::to_unix_ms(self.clock.now());
        let mut conn = self.conn.clone();
        // The marker first: a session created before it is rejected even if its key survives a
        // race with this revocation (Better Auth 1.7.16+).
        let _: () = conn
            .set_ex(
                self.marker_key(user_id),
                now_ms.to_string(),
                self.marker_ttl,
            )
            .await
            .map_err(backend("revoke all"))?;
        let list: Option<String> = conn
            .get(self.list_key(user_id))
            .await
            .map_err(backend("revoke all"))?;
        let list: Vec<Active> = list
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        for entry in &list {
            let _: () = conn
                .del(self.key(&entry.token))
                .await
                .map_err(backend("revoke all"))?;
        }
        let _: () = conn
            .del(self.list_key(user_id))
            .await
            .map_err(backend("revoke all"))?;
        Ok(list.len() as u64)
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        let mut conn = self.conn.clone();
        let list: Option<String> = conn
            .get(self.list_key(user_id))
            .await
            .map_err(backend("list"))?;
        let list: Vec<Active> = list
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let mut sessions = Vec::with_capacity(list.len());
        for entry in list {
            if let Some(auth) = self.find(&entry.token).await? {
                if auth.session.expires_at > now {
                    sessions.push((*auth.session).clone());
                }
            }
        }
        sessions.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then(a.id.cmp(&b.id)));
        Ok(sessions)
    }

    /// Redis expires keys by itself (every key has a TTL), so there is nothing to sweep.
    async fn delete_expired(&self, _now: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// Redis in front of a SQL store, Better Auth's `secondaryStorage` with
/// `storeSessionInDatabase: true`. Built by [`RedisStore::in_front_of`].
///
/// Writes go to the database first (the authority), then to Redis; lookups try Redis and fall
/// back to the database on a miss; revocations clear both.
#[derive(Clone, Debug)]
pub struct RedisWithDatabase<D> {
    redis: RedisStore,
    database: D,
}

impl<D> RedisWithDatabase<D> {
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
    async fn find(&self, token: &str) -> Result<Option<Authenticated>, StoreError> {
        match self.redis.read(token).await? {
            Some((_, stored, false)) => Ok(Some(Authenticated::new(stored.session, stored.user))),
            // Revoked by the marker: authoritative, no fallback.
            Some((_, _, true)) => Ok(None),
            None => self.database.find(token).await,
        }
    }

    async fn create(&self, session: &Session, user: &User) -> Result<Session, StoreError> {
        let stored = self.database.create(session, user).await?;
        self.redis.create(&stored, user).await
    }

    async fn extend(
        &self,
        token: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        let updated = self.database.extend(token, expires_at, now).await?;
        if updated.is_some() {
            // Keep Redis in step; a missing key there is fine (reads fall back).
            self.redis.extend(token, expires_at, now).await?;
        }
        Ok(updated)
    }

    async fn delete(&self, token: &str) -> Result<(), StoreError> {
        self.database.delete(token).await?;
        self.redis.delete(token).await
    }

    async fn delete_if_expired(&self, token: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        self.database.delete_if_expired(token, now).await?;
        // The Redis key carries its own TTL; drop it only if it too says expired.
        match self.redis.read(token).await? {
            Some((_, stored, _)) if stored.session.expires_at >= now => Ok(()),
            Some(_) => self.redis.delete(token).await,
            None => Ok(()),
        }
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        let n = self.database.delete_user_sessions(user_id).await?;
        let m = self.redis.delete_user_sessions(user_id).await?;
        Ok(n.max(m))
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        self.database.list_user_sessions(user_id, now).await
    }

    async fn delete_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.database.delete_expired(now).await
    }

    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> Result<u64, StoreError> {
        self.database.delete_expired_batch(now, limit).await
    }
}
