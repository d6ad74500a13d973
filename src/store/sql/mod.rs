//! SQL stores: one implementation of [`SessionStore`] over Better Auth's tables, with a small
//! dialect per database (`SqliteStore`, `PostgresStore`, `MySqlStore`).
//!
//! Every SQL store runs the same statements (built once at start-up from the [`SqlSchema`], the
//! columns the tables really have and the id layout), reads rows with the same code, and follows
//! the same rules:
//!
//! * a lookup is one statement: the session joined to its user, by `token`;
//! * a refresh is one conditional `UPDATE` of `expiresAt` and `updatedAt` that only moves the
//!   expiry forward on a live row (`… RETURNING` where the dialect has it);
//! * an expired session is deleted only if it is still expired at the moment of the delete;
//! * ids follow the columns' types: text, `uuid`, or integers the database assigns.
//!
//! What differs per database (placeholders, quoting, binding a date, reading a column, reading
//! the schema, connection handling) lives in one file per dialect.

use std::sync::Arc;

use serde_json::Map;
use time::OffsetDateTime;

use super::{SchemaMode, SessionStore};
use crate::error::{SchemaError, StoreError};
use crate::model::{Authenticated, Session, StorageKey, User};
use crate::time_fmt;

#[cfg(feature = "sqlite")]
mod batch;
mod dialect;
#[cfg(feature = "jwt")]
mod jwks;
mod schema;

#[cfg(feature = "sqlite")]
mod inline;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod pool;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod wal;

use dialect::{Backend, Param};
#[cfg(feature = "jwt")]
pub use jwks::JwksTable;
#[cfg(feature = "cache")]
pub(crate) use schema::quote_with;
pub use schema::{DateFormat, FieldType, IdFormat, SessionColumn, SqlSchema, UserColumn};
use schema::{IdKind, Queries, Tables, SESSION_CORE};

#[cfg(feature = "mysql")]
pub use mysql::{MySqlDialect, MySqlStoreBuilder};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresDialect, PostgresStoreBuilder, DEFAULT_ACQUIRE_TIMEOUT};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteDialect, SqliteStoreBuilder};

/// A SQL database the store runs on: `SqliteDialect`, `PostgresDialect` or `MySqlDialect`.
/// Sealed.
pub trait Dialect: Backend {}

impl<T: Backend> Dialect for T {}

/// Sessions in a SQL database with Better Auth's schema, for any [`Dialect`].
///
/// Use it through its aliases, `SqliteStore`, `PostgresStore` and `MySqlStore` (one per
/// feature), which have the constructors. Cloning is cheap and shares the connection pool.
#[derive(Clone, Debug)]
pub struct SqlStore<D> {
    db: D,
    q: Arc<Queries>,
}

/// Sessions in a SQLite database (feature `sqlite`): see [`SqlStore`] and
/// [`SqliteStore::connect`].
#[cfg(feature = "sqlite")]
pub type SqliteStore = SqlStore<SqliteDialect>;

/// Sessions in PostgreSQL (feature `postgres`): see [`SqlStore`] and [`PostgresStore::builder`].
#[cfg(feature = "postgres")]
pub type PostgresStore = SqlStore<PostgresDialect>;

/// Sessions in MySQL or MariaDB (feature `mysql`): see [`SqlStore`] and [`MySqlStore::builder`].
#[cfg(feature = "mysql")]
pub type MySqlStore = SqlStore<MySqlDialect>;

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        reason: format!("{what}: {e}"),
    }
}

/// An id the caller gave that cannot be one of this table's ids.
fn bad_id(operation: &'static str, what: &str, kind: IdKind, value: &str) -> StoreError {
    let kind = match kind {
        IdKind::Text => "text",
        IdKind::Uuid => "a uuid",
        IdKind::Integer => "an integer",
    };
    StoreError::backend(
        operation,
        std::io::Error::other(format!(
            "{what} {value:?} cannot be stored: the column holds {kind}"
        )),
    )
}

/// A fresh version 4 UUID, as `crypto.randomUUID()` writes it.
fn new_uuid() -> String {
    let mut bytes = [0u8; 16];
    crate::ids::fill_random(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

impl<D: Dialect> SqlStore<D> {
    /// Creates the tables when asked, reads the real columns, checks them against `schema`
    /// and builds the statements.
    pub(crate) async fn open_dialect(
        mut db: D,
        mode: SchemaMode,
        schema: SqlSchema,
    ) -> Result<Self, StoreError> {
        schema.validate()?;
        let namespace = schema.namespace.as_deref();
        if let (Some(namespace), false) = (namespace, D::NAMESPACES) {
            return Err(SchemaError::NamespaceUnsupported {
                namespace: namespace.to_owned(),
                database: D::NAME,
            }
            .into());
        }
        if mode == SchemaMode::CreateIfMissing {
            // As Better Auth's migration with `schemaName`: the schema first.
            if let Some(namespace) = namespace {
                let create = format!(
                    "create schema if not exists {}",
                    schema::quote_with(D::SYNTAX.quote, namespace)
                );
                if let Err(error) = db.run_ddl(&create).await {
                    // PostgreSQL checks the right to create schemas before `if not exists`: a
                    // role that may create tables in an existing schema fails here. The tables'
                    // statements below say what is wrong if the schema is really missing.
                    tracing::debug!(%error, "could not create the schema; going on with its tables");
                }
            }
            for statement in db.ddl(&schema) {
                db.run_ddl(&statement).await?;
            }
        }
        let session = db.columns(&schema.session_table, namespace).await?;
        let user = db.columns(&schema.user_table, namespace).await?;
        let q = Queries::checked(
            &schema,
            &D::SYNTAX,
            &Tables {
                session: &session,
                user: &user,
            },
        )?;
        db.ready(&q.extend_many);
        tracing::info!(
            database = D::NAME,
            ids = %q.layout.format(),
            session_table = %schema.shown(&schema.session_table),
            "session store ready"
        );
        Ok(Self { db, q: Arc::new(q) })
    }

    /// The dialect: the connection pool and its settings.
    pub(crate) fn dialect(&self) -> &D {
        &self.db
    }

    /// The id layout the schema check recognised: [`IdFormat::Serial`] for integer ids,
    /// [`IdFormat::Uuid`] for `uuid` columns (or text columns configured with
    /// [`SqlSchema::ids`]), [`IdFormat::Text`] otherwise.
    pub fn id_format(&self) -> IdFormat {
        self.q.layout.format()
    }

    fn read_session(&self, row: &D::Row) -> Result<Session, StoreError> {
        read_session::<D>(row, &self.q)
    }

    fn read_user(&self, row: &D::Row, start: usize) -> Result<User, StoreError> {
        read_user::<D>(row, start, &self.q)
    }

    /// A row of the lookup (`find`, `find_many`): the session's columns, then its user's.
    fn read_found(&self, row: &D::Row) -> Result<Authenticated, StoreError> {
        let session = self.read_session(row)?;
        let user = self.read_user(row, SESSION_CORE + self.q.session_keys.len())?;
        Ok(Authenticated::new(session, user))
    }

    /// The id a new row gets: `None` when the database assigns it.
    fn new_id(&self, kind: IdKind, given: &str) -> Option<String> {
        match (kind, self.q.layout.text_ids) {
            (IdKind::Integer, _) => None,
            (IdKind::Uuid, _) | (IdKind::Text, IdFormat::Uuid) => Some(
                schema::parse_uuid(given).map_or_else(new_uuid, |u| u.hyphenated().to_string()),
            ),
            (IdKind::Text, _) => Some(given.to_owned()),
        }
    }

    /// Inserts a user row (e-mail lower-cased, dates and booleans as the dialect stores them)
    /// and returns it as stored: with `uuid` ids a non-uuid `user.id` is replaced by a fresh
    /// UUID, and with serial ids the database assigns it.
    ///
    /// # Errors
    ///
    /// A backend error, for example when the e-mail address is already taken.
    pub async fn insert_user(&self, user: &User) -> Result<User, StoreError> {
        const OP: &str = "insert user";
        let id = self.new_id(self.q.layout.user_id, &user.id);
        let email = user.email.to_lowercase();
        let params = [
            Param::Text(id.as_deref().unwrap_or("")),
            Param::Text(&user.name),
            Param::Text(&email),
            Param::Bool(user.email_verified),
            Param::OptText(user.image.as_deref()),
            Param::Date(time_fmt::truncate_ms(user.created_at)),
            Param::Date(time_fmt::truncate_ms(user.updated_at)),
        ];
        let row = if D::SYNTAX.returning {
            self.db
                .fetch_optional(OP, &self.q.insert_user, &params, true)
                .await?
        } else if let Some(select) = &self.q.user_by_last_insert {
            self.db
                .insert_then_select(OP, &self.q.insert_user, &params, select)
                .await?
        } else {
            self.db.execute(OP, &self.q.insert_user, &params).await?;
            self.db
                .fetch_optional(OP, &self.q.user_by_id, &[params[0]], true)
                .await?
        };
        let row = row.ok_or_else(|| corrupt("user", "the inserted row was not returned"))?;
        self.read_user(&row, 0)
    }

    /// The user with this e-mail address (compared lower-cased, as Better Auth stores it).
    ///
    /// # Errors
    ///
    /// A backend error, or [`StoreError::Corrupt`] for an unreadable row.
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let email = email.to_lowercase();
        let row = self
            .db
            .fetch_optional(
                "find user",
                &self.q.user_by_email,
                &[Param::Text(&email)],
                false,
            )
            .await?;
        row.map(|r| self.read_user(&r, 0)).transpose()
    }

    /// The user with this id.
    ///
    /// # Errors
    ///
    /// A backend error, or [`StoreError::Corrupt`] for an unreadable row.
    pub async fn find_user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        if !self.q.layout.user_id.accepts(user_id) {
            return Ok(None);
        }
        let row = self
            .db
            .fetch_optional(
                "find user",
                &self.q.user_by_id,
                &[Param::Text(user_id)],
                false,
            )
            .await?;
        row.map(|r| self.read_user(&r, 0)).transpose()
    }

    /// Deletes a user and its sessions (as `ON DELETE CASCADE` would, even where foreign keys
    /// are off).
    ///
    /// # Errors
    ///
    /// A backend error.
    pub async fn delete_user(&self, user_id: &str) -> Result<(), StoreError> {
        if !self.q.layout.user_id.accepts(user_id) {
            return Ok(());
        }
        for stmt in [&self.q.delete_user_sessions, &self.q.delete_user] {
            self.db
                .execute("delete user", stmt, &[Param::Text(user_id)])
                .await?;
        }
        Ok(())
    }
}

/// Reads the session columns at the start of a row.
fn read_session<D: Backend>(row: &D::Row, q: &Queries) -> Result<Session, StoreError> {
    let text = |i: usize, what: &str| -> Result<String, StoreError> {
        D::text(row, i)
            .map_err(|e| corrupt(what, e))?
            .ok_or_else(|| corrupt(what, "NULL"))
    };
    let opt_text = |i: usize, what: &str| D::text(row, i).map_err(|e| corrupt(what, e));
    let date = |i: usize, what: &str| -> Result<OffsetDateTime, StoreError> {
        D::date(row, i)
            .map_err(|e| corrupt(what, e))?
            .map(time_fmt::truncate_ms)
            .ok_or_else(|| corrupt(what, "NULL"))
    };
    Ok(Session {
        id: text(0, "session.id")?,
        token: text(1, "session.token")?,
        user_id: text(2, "session.userId")?,
        expires_at: date(3, "session.expiresAt")?,
        created_at: date(4, "session.createdAt")?,
        updated_at: date(5, "session.updatedAt")?,
        ip_address: opt_text(6, "session.ipAddress")?,
        user_agent: opt_text(7, "session.userAgent")?,
        extra: read_extra::<D>(row, SESSION_CORE, &q.session_keys, &q.session_types),
    })
}

/// Reads the user columns starting at column `start`.
fn read_user<D: Backend>(row: &D::Row, start: usize, q: &Queries) -> Result<User, StoreError> {
    let text = |i: usize, what: &str| -> Result<String, StoreError> {
        D::text(row, start + i)
            .map_err(|e| corrupt(what, e))?
            .ok_or_else(|| corrupt(what, "NULL"))
    };
    let date = |i: usize, what: &str| -> Result<OffsetDateTime, StoreError> {
        D::date(row, start + i)
            .map_err(|e| corrupt(what, e))?
            .map(time_fmt::truncate_ms)
            .ok_or_else(|| corrupt(what, "NULL"))
    };
    Ok(User {
        id: text(0, "user.id")?,
        name: text(1, "user.name")?,
        email: text(2, "user.email")?,
        email_verified: D::boolean(row, start + 3)
            .map_err(|e| corrupt("user.emailVerified", e))?
            .ok_or_else(|| corrupt("user.emailVerified", "NULL"))?,
        image: D::text(row, start + 4).map_err(|e| corrupt("user.image", e))?,
        created_at: date(5, "user.createdAt")?,
        updated_at: date(6, "user.updatedAt")?,
        extra: read_extra::<D>(row, start + 7, &q.user_keys, &q.user_types),
    })
}

fn read_extra<D: Backend>(
    row: &D::Row,
    start: usize,
    names: &[String],
    types: &[Option<FieldType>],
) -> Map<String, serde_json::Value> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let value = D::json(row, start + i);
            let value = match types.get(i).copied().flatten() {
                Some(kind) => kind.read(value, D::NATIVE_TYPES),
                None => value,
            };
            (name.clone(), value)
        })
        .collect()
}

impl<D: Dialect> SessionStore for SqlStore<D> {
    /// The row whose token is `key` byte for byte: under MySQL's and MariaDB's default
    /// collations `=` also matches another case, accents, or trailing spaces, and a cache in
    /// front would keep such a spelling past a revocation of the real one.
    async fn find(&self, key: &StorageKey<'_>) -> Result<Option<Authenticated>, StoreError> {
        let row = self
            .db
            .fetch_optional("find", &self.q.find, &[Param::Text(key.as_str())], false)
            .await?;
        let found = row.map(|row| self.read_found(&row)).transpose()?;
        Ok(found.filter(|f| f.session.token == key.as_str()))
    }

    /// One `… WHERE token IN (…)` per 64 keys, the list padded to a power of two by repeating
    /// the last key (a handful of statements to prepare, not one per batch size). Rows are
    /// matched to keys by their token, byte for byte.
    async fn find_many(
        &self,
        keys: &[StorageKey<'_>],
    ) -> Result<Vec<Option<Authenticated>>, StoreError> {
        let largest = 1 << (schema::FIND_MANY_SIZES - 1);
        let mut found = vec![None; keys.len()];
        for (n, chunk) in keys.chunks(largest).enumerate() {
            let size = chunk.len().next_power_of_two();
            let stmt = &self.q.find_many[size.trailing_zeros() as usize];
            let params: Vec<Param<'_>> = (0..size)
                .map(|i| Param::Text(chunk[i.min(chunk.len() - 1)].as_str()))
                .collect();
            let rows = self.db.fetch_all("find many", stmt, &params).await?;
            for row in rows {
                let answer = self.read_found(&row)?;
                for (i, key) in chunk.iter().enumerate() {
                    if key.as_str() == answer.session.token {
                        found[n * largest + i] = Some(answer.clone());
                    }
                }
            }
        }
        Ok(found)
    }

    async fn create(&self, session: &Session, _user: &User) -> Result<Session, StoreError> {
        const OP: &str = "create";
        let layout = self.q.layout;
        if !layout.user_id.accepts(&session.user_id) {
            return Err(bad_id(OP, "user id", layout.user_id, &session.user_id));
        }
        let id = self.new_id(layout.session_id, &session.id);
        let params = [
            Param::Text(id.as_deref().unwrap_or("")),
            Param::Text(&session.token),
            Param::Text(&session.user_id),
            Param::Date(time_fmt::truncate_ms(session.expires_at)),
            Param::Date(time_fmt::truncate_ms(session.created_at)),
            Param::Date(time_fmt::truncate_ms(session.updated_at)),
            Param::Text(session.ip_address.as_deref().unwrap_or("")),
            Param::Text(session.user_agent.as_deref().unwrap_or("")),
        ];
        let row = if D::SYNTAX.returning {
            self.db
                .fetch_optional(OP, &self.q.insert, &params, true)
                .await?
        } else if let Some(select) = &self.q.session_by_last_insert {
            self.db
                .insert_then_select(OP, &self.q.insert, &params, select)
                .await?
        } else {
            self.db.execute(OP, &self.q.insert, &params).await?;
            self.db
                .fetch_optional(OP, &self.q.session_by_token, &[params[1]], true)
                .await?
        };
        let row = row.ok_or_else(|| corrupt("session", "the inserted row was not returned"))?;
        self.read_session(&row)
    }

    async fn extend(
        &self,
        key: &StorageKey<'_>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        const OP: &str = "extend";
        let (expires_at, now) = (
            time_fmt::truncate_ms(expires_at),
            time_fmt::truncate_ms(now),
        );
        let row = if D::SYNTAX.returning {
            self.db
                .extend(&self.q.extend, key.as_str(), expires_at, now)
                .await?
        } else {
            let params = [
                Param::Date(expires_at),
                Param::Date(now),
                Param::Text(key.as_str()),
            ];
            if self.db.execute(OP, &self.q.extend, &params).await? == 0 {
                return Ok(None);
            }
            self.db
                .fetch_optional(OP, &self.q.session_by_token, &[params[2]], true)
                .await?
        };
        row.map(|r| self.read_session(&r)).transpose()
    }

    async fn delete(&self, key: &StorageKey<'_>) -> Result<(), StoreError> {
        self.db
            .execute("delete", &self.q.delete, &[Param::Text(key.as_str())])
            .await?;
        Ok(())
    }

    async fn delete_if_expired(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "delete",
                &self.q.delete_if_expired,
                &[Param::Text(key.as_str()), Param::Date(now)],
            )
            .await?;
        Ok(())
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        if !self.q.layout.user_id.accepts(user_id) {
            return Ok(0);
        }
        self.db
            .execute(
                "delete user sessions",
                &self.q.delete_user_sessions,
                &[Param::Text(user_id)],
            )
            .await
    }

    async fn end_session(
        &self,
        key: &StorageKey<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let now = time_fmt::truncate_ms(now);
        let params = [
            Param::Date(now),
            Param::Date(now),
            Param::Text(key.as_str()),
            Param::Date(now),
        ];
        self.db
            .execute("end session", &self.q.end_session, &params)
            .await?;
        Ok(())
    }

    async fn end_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        if !self.q.layout.user_id.accepts(user_id) {
            return Ok(0);
        }
        let now = time_fmt::truncate_ms(now);
        let params = [
            Param::Date(now),
            Param::Date(now),
            Param::Text(user_id),
            Param::Date(now),
        ];
        self.db
            .execute("end user sessions", &self.q.end_user_sessions, &params)
            .await
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        if !self.q.layout.user_id.accepts(user_id) {
            return Ok(Vec::new());
        }
        let rows = self
            .db
            .fetch_all(
                "list",
                &self.q.list,
                &[Param::Text(user_id), Param::Date(now)],
            )
            .await?;
        rows.iter().map(|r| self.read_session(r)).collect()
    }

    async fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> Result<u64, StoreError> {
        self.db
            .execute(
                "delete expired",
                &self.q.delete_expired_batch,
                &[
                    Param::Date(now),
                    Param::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
                ],
            )
            .await
    }

    async fn delete_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.db
            .execute(
                "delete expired",
                &self.q.delete_expired,
                &[Param::Date(now)],
            )
            .await
    }

    async fn find_user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        SqlStore::find_user(self, user_id).await
    }

    async fn remove_user(&self, user_id: &str) -> Result<bool, StoreError> {
        SqlStore::delete_user(self, user_id).await?;
        Ok(true)
    }

    async fn lift_ban(&self, user_id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        let Some(stmt) = &self.q.lift_ban else {
            return Ok(());
        };
        if !self.q.layout.user_id.accepts(user_id) {
            return Ok(());
        }
        self.db
            .execute(
                "lift ban",
                stmt,
                &[
                    Param::Bool(false),
                    Param::Date(time_fmt::truncate_ms(now)),
                    Param::Text(user_id),
                ],
            )
            .await?;
        Ok(())
    }
}
