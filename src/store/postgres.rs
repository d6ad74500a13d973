use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Row, TypeInfo, ValueRef};
use time::{OffsetDateTime, PrimitiveDateTime};

use super::schema::{ddl, Dialect, Queries, SessionColumn, SqlSchema, UserColumn};
use super::{SchemaMode, SessionStore};
use crate::error::{SchemaError, StoreError};
use crate::model::{Authenticated, Session, User};
use crate::time_fmt;

/// The default time to wait for a pooled connection before failing (sqlx's own default is 30 s,
/// far too long for a request path).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Sessions in PostgreSQL with Better Auth's schema (spec §4.2): tables `"user"` and
/// `"session"` (always quoted: `user` is reserved), camelCase quoted columns, `timestamptz`
/// dates, native booleans.
///
/// Every authenticated request costs one round trip: the session and its user come from one
/// prepared `JOIN` statement (sqlx caches the prepared statement per connection). Refreshes are
/// one conditional `UPDATE … RETURNING`.
///
/// At start-up the store reads the tables' columns and refuses to run when one it needs is
/// missing, naming it, or when an id column is not text (Better Auth's `generateId: "uuid"` and
/// `"serial"` layouts are not supported yet). With [`SchemaMode::CreateIfMissing`] it first
/// creates Better Auth's tables when absent. Dates in `timestamp` (without time zone) columns, as
/// the Drizzle and Prisma generators create them, are read and written as UTC.
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
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    queries: Arc<Queries>,
}

/// Builds a [`PostgresStore`] from a URL.
#[derive(Clone, Debug)]
#[must_use]
pub struct PostgresStoreBuilder {
    url: String,
    schema: SqlSchema,
    create: bool,
    acquire_timeout: Duration,
    max_connections: u32,
}

impl PostgresStoreBuilder {
    /// Table and column names. Default: [`SqlSchema::better_auth`].
    pub fn schema(mut self, schema: SqlSchema) -> Self {
        self.schema = schema;
        self
    }

    /// Create Better Auth's tables when they are absent. Default: `false` (verify only: the
    /// schema usually belongs to Better Auth's migrations).
    pub fn create_schema(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// How long a request waits for a pooled connection. Default: 2 seconds.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The pool size. Default: 10.
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// Connects and checks (or creates) the schema.
    ///
    /// # Errors
    ///
    /// A backend error when the server cannot be reached, or [`StoreError::Schema`] naming the
    /// missing table or column, or an id column that is not text.
    pub async fn build(self) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(&self.url)
            .map_err(|e| StoreError::backend("connect", e))?
            // `timestamp` columns (Drizzle, Prisma) are interpreted as UTC.
            .options([("TimeZone", "UTC")]);
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            // sqlx pings every connection before handing it out by default: a second round
            // trip per lookup. A dead connection fails the query instead, which the layer
            // answers with 503 and the pool replaces.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::backend("connect", e))?;
        let mode = if self.create {
            SchemaMode::CreateIfMissing
        } else {
            SchemaMode::VerifyOnly
        };
        PostgresStore::open(pool, mode, self.schema).await
    }
}

impl PostgresStore {
    /// A builder for a store at `url`, such as `postgres://user:password@127.0.0.1:5432/app`.
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            url: url.into(),
            schema: SqlSchema::better_auth(),
            create: false,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            max_connections: 10,
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

    /// Uses an existing pool. Set `TimeZone=UTC` on it if dates live in `timestamp` (without
    /// time zone) columns.
    ///
    /// # Errors
    ///
    /// [`StoreError::Schema`] naming the missing table or column, or an id column that is not
    /// text ([`SchemaError::UnsupportedColumnType`]), or a backend error.
    pub async fn open(
        pool: PgPool,
        mode: SchemaMode,
        schema: SqlSchema,
    ) -> Result<Self, StoreError> {
        if mode == SchemaMode::CreateIfMissing {
            for statement in ddl(&schema, Dialect::Postgres) {
                sqlx::query(&statement)
                    .execute(&pool)
                    .await
                    .map_err(|e| StoreError::backend("create schema", e))?;
            }
        }
        let session_cols = table_columns(&pool, &schema.session_table).await?;
        let user_cols = table_columns(&pool, &schema.user_table).await?;
        let names = |cols: &[(String, String)]| -> Vec<String> {
            cols.iter().map(|(name, _)| name.clone()).collect()
        };
        let queries = Queries::checked(
            &schema,
            Dialect::Postgres,
            &names(&session_cols),
            &names(&user_cols),
        )?;
        check_text_ids(&schema, &session_cols, &user_cols)?;
        Ok(Self {
            pool,
            queries: Arc::new(queries),
        })
    }

    /// The underlying pool, for the application's own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Inserts a user row (e-mail lower-cased).
    ///
    /// # Errors
    ///
    /// A backend error, for example when the e-mail address is already taken.
    pub async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(&self.queries.insert_user)
            .bind(&user.id)
            .bind(&user.name)
            .bind(user.email.to_lowercase())
            .bind(user.email_verified)
            .bind(&user.image)
            .bind(user.created_at)
            .bind(user.updated_at)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::backend("insert user", e))?;
        Ok(())
    }

    /// The user with this e-mail address (compared lower-cased, as Better Auth stores it).
    ///
    /// # Errors
    ///
    /// A backend error, or [`StoreError::Corrupt`] for an unreadable row.
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&self.queries.find_user_by_email)
            .bind(email.to_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::backend("find user", e))?;
        row.map(|r| read_user(&r, 0, &self.queries.user_extra))
            .transpose()
    }

    /// Deletes a user and its sessions.
    ///
    /// # Errors
    ///
    /// A backend error.
    pub async fn delete_user(&self, user_id: &str) -> Result<(), StoreError> {
        for sql in [
            &self.queries.delete_user_sessions,
            &self.queries.delete_user,
        ] {
            sqlx::query(sql)
                .bind(user_id)
                .execute(&self.pool)
                .await
                .map_err(|e| StoreError::backend("delete user", e))?;
        }
        Ok(())
    }
}

/// The table's columns in table order, with their types (`information_schema`'s `data_type`).
async fn table_columns(pool: &PgPool, table: &str) -> Result<Vec<(String, String)>, StoreError> {
    sqlx::query_as::<_, (String, String)>(
        "select column_name::text, data_type::text from information_schema.columns \
         where table_schema = current_schema() and table_name = $1 order by ordinal_position",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .map_err(|e| StoreError::backend("read schema", e))
}

/// Ids and the token are bound and read as text: a `uuid` or `integer` id column (Better
/// Auth's `generateId: "uuid"` / `"serial"`) would fail on every sign-in and every lookup, so it
/// is refused at start-up, naming the column.
fn check_text_ids(
    schema: &SqlSchema,
    session_cols: &[(String, String)],
    user_cols: &[(String, String)],
) -> Result<(), SchemaError> {
    let session = [
        SessionColumn::Id,
        SessionColumn::Token,
        SessionColumn::UserId,
    ]
    .map(|c| {
        (
            &schema.session_table,
            &schema.session[c as usize],
            session_cols,
        )
    });
    let user = [(
        &schema.user_table,
        &schema.user[UserColumn::Id as usize],
        user_cols,
    )];
    for (table, column, cols) in session.into_iter().chain(user) {
        let found = cols.iter().find(|(name, _)| name == column);
        if let Some((_, kind)) = found {
            if !matches!(kind.as_str(), "text" | "character varying" | "character") {
                return Err(SchemaError::UnsupportedColumnType {
                    table: table.clone(),
                    column: column.clone(),
                    found: kind.clone(),
                });
            }
        }
    }
    Ok(())
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        reason: format!("{what}: {e}"),
    }
}

fn type_name(row: &PgRow, idx: usize) -> Option<String> {
    let raw = row.try_get_raw(idx).ok()?;
    if raw.is_null() {
        return None;
    }
    Some(raw.type_info().name().to_ascii_uppercase())
}

fn get_string(row: &PgRow, idx: usize, what: &str) -> Result<String, StoreError> {
    row.try_get::<String, _>(idx).map_err(|e| corrupt(what, e))
}

fn get_opt_string(row: &PgRow, idx: usize, what: &str) -> Result<Option<String>, StoreError> {
    row.try_get::<Option<String>, _>(idx)
        .map_err(|e| corrupt(what, e))
}

fn get_date(row: &PgRow, idx: usize, what: &str) -> Result<OffsetDateTime, StoreError> {
    let parsed = match type_name(row, idx).as_deref() {
        Some("TIMESTAMPTZ") => row.try_get::<OffsetDateTime, _>(idx).ok(),
        Some("TIMESTAMP") => row
            .try_get::<PrimitiveDateTime, _>(idx)
            .ok()
            .map(PrimitiveDateTime::assume_utc),
        Some("INT8") => row
            .try_get::<i64, _>(idx)
            .ok()
            .and_then(time_fmt::from_unix_ms),
        Some("TEXT" | "VARCHAR") => row
            .try_get::<String, _>(idx)
            .ok()
            .and_then(|s| time_fmt::parse_iso(&s)),
        _ => None,
    };
    parsed
        .map(time_fmt::truncate_ms)
        .ok_or_else(|| corrupt(what, "not a date"))
}

fn get_bool(row: &PgRow, idx: usize, what: &str) -> Result<bool, StoreError> {
    match type_name(row, idx).as_deref() {
        Some("BOOL") => row.try_get::<bool, _>(idx).map_err(|e| corrupt(what, e)),
        Some("INT4") => row
            .try_get::<i32, _>(idx)
            .map(|v| v != 0)
            .map_err(|e| corrupt(what, e)),
        Some("INT8") => row
            .try_get::<i64, _>(idx)
            .map(|v| v != 0)
            .map_err(|e| corrupt(what, e)),
        other => Err(corrupt(what, format!("unexpected type {other:?}"))),
    }
}

fn get_json(row: &PgRow, idx: usize) -> Value {
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
        "TIMESTAMPTZ" | "TIMESTAMP" => get_date(row, idx, "")
            .ok()
            .map(|t| Value::from(time_fmt::to_iso(t))),
        _ => row.try_get::<String, _>(idx).map(Value::from).ok(),
    }
    .unwrap_or(Value::Null)
}

super::schema::row_readers!(PgRow);

impl SessionStore for PostgresStore {
    async fn find(&self, token: &str) -> Result<Option<Authenticated>, StoreError> {
        let row = sqlx::query(&self.queries.find)
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::backend("find", e))?;
        let Some(row) = row else { return Ok(None) };
        let q = &self.queries;
        let session = read_session(&row, 0, &q.session_extra)?;
        let user = read_user(&row, 8 + q.session_extra.len(), &q.user_extra)?;
        Ok(Some(Authenticated::new(session, user)))
    }

    async fn create(&self, session: &Session, _user: &User) -> Result<(), StoreError> {
        sqlx::query(&self.queries.insert)
            .bind(&session.id)
            .bind(&session.token)
            .bind(&session.user_id)
            .bind(time_fmt::truncate_ms(session.expires_at))
            .bind(time_fmt::truncate_ms(session.created_at))
            .bind(time_fmt::truncate_ms(session.updated_at))
            .bind(session.ip_address.as_deref().unwrap_or(""))
            .bind(session.user_agent.as_deref().unwrap_or(""))
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::backend("create", e))?;
        Ok(())
    }

    async fn extend(
        &self,
        token: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(&self.queries.extend)
            .bind(time_fmt::truncate_ms(expires_at))
            .bind(time_fmt::truncate_ms(now))
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::backend("extend", e))?;
        row.map(|r| read_session(&r, 0, &self.queries.session_extra))
            .transpose()
    }

    async fn delete(&self, token: &str) -> Result<(), StoreError> {
        sqlx::query(&self.queries.delete)
            .bind(token)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::backend("delete", e))?;
        Ok(())
    }

    async fn delete_if_expired(&self, token: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query(&self.queries.delete_if_expired)
            .bind(token)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::backend("delete", e))?;
        Ok(())
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(&self.queries.delete_user_sessions)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::backend("delete user sessions", e))?;
        Ok(done.rows_affected())
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(&self.queries.list)
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::backend("list", e))?;
        rows.iter()
            .map(|r| read_session(r, 0, &self.queries.session_extra))
            .collect()
    }

    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(&self.queries.delete_expired_batch)
            .bind(now)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::backend("delete expired", e))?;
        Ok(done.rows_affected())
    }

    async fn delete_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query(&self.queries.delete_expired)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::backend("delete expired", e))?;
        Ok(done.rows_affected())
    }
}
