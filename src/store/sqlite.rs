use std::str::FromStr;

use serde_json::{Map, Value};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::{Row, TypeInfo, ValueRef};
use time::OffsetDateTime;

use super::SessionStore;
use crate::error::{SchemaError, StoreError};
use crate::model::{Authenticated, Session, User};
use crate::time_fmt;

/// What to do at start-up when the schema is absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaMode {
    /// Create Better Auth's `user` and `session` tables when they do not exist, then verify.
    CreateIfMissing,
    /// Only verify: a missing table or column is an error naming it. For databases whose
    /// schema Better Auth's migrations own.
    VerifyOnly,
}

const SESSION_CORE: [&str; 8] = [
    "id",
    "token",
    "userId",
    "expiresAt",
    "createdAt",
    "updatedAt",
    "ipAddress",
    "userAgent",
];
const USER_CORE: [&str; 7] = [
    "id",
    "name",
    "email",
    "emailVerified",
    "image",
    "createdAt",
    "updatedAt",
];

/// Better Auth's own SQLite DDL (`getMigrations().compileMigrations()`, 1.7.25; spec §4.2).
const CREATE_USER: &str = r#"create table if not exists "user" ("id" text not null primary key, "name" text not null, "email" text not null unique, "emailVerified" integer not null, "image" text, "createdAt" date not null, "updatedAt" date not null)"#;
const CREATE_SESSION: &str = r#"create table if not exists "session" ("id" text not null primary key, "expiresAt" date not null, "token" text not null unique, "createdAt" date not null, "updatedAt" date not null, "ipAddress" text, "userAgent" text, "userId" text not null references "user" ("id") on delete cascade)"#;
const CREATE_INDEX: &str =
    r#"create index if not exists "session_userId_idx" on "session" ("userId")"#;

/// Sessions in a SQLite database with Better Auth's schema (spec §4): tables `user` and
/// `session`, camelCase quoted columns, dates as `toISOString()` text, booleans as `0`/`1`.
///
/// A Better Auth server using the same file (better-sqlite3 or libsql through Kysely) accepts
/// the sessions this store writes, and this store reads the sessions Better Auth writes.
///
/// At start-up the store reads the tables' columns and refuses to run when one it needs is
/// missing, naming it: the classic "every lookup says not found" mismatch becomes one error.
/// Extra columns that plugins add (`role`, `banned`, `impersonatedBy`, …) are read into
/// [`User::extra`] and [`Session::extra`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tower_auth_session::SqliteStore;
///
/// let store = SqliteStore::connect("sqlite::memory:").await?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    queries: std::sync::Arc<Queries>,
}

#[derive(Debug)]
struct Queries {
    find: String,
    extend: String,
    list: String,
    session_extra: Vec<String>,
    user_extra: Vec<String>,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl SqliteStore {
    /// Opens (creating the file if needed) the database at `url`, such as
    /// `sqlite://app.db`, in WAL mode, and creates Better Auth's tables when they are absent.
    ///
    /// # Errors
    ///
    /// Fails when the file cannot be opened, or when existing tables lack a column the store
    /// needs ([`StoreError::Schema`], naming it).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::backend("connect", e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        // An in-memory database exists per connection: keep exactly one.
        let max = if url.contains(":memory:") || url.contains("mode=memory") {
            1
        } else {
            8
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(std::time::Duration::from_secs(2))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::backend("connect", e))?;
        Self::open(pool, SchemaMode::CreateIfMissing).await
    }

    /// Uses an existing pool. With [`SchemaMode::VerifyOnly`] nothing is ever created.
    ///
    /// # Errors
    ///
    /// [`StoreError::Schema`] naming the missing table or column, or a backend error.
    pub async fn open(pool: SqlitePool, mode: SchemaMode) -> Result<Self, StoreError> {
        if mode == SchemaMode::CreateIfMissing {
            for ddl in [CREATE_USER, CREATE_SESSION, CREATE_INDEX] {
                sqlx::query(ddl)
                    .execute(&pool)
                    .await
                    .map_err(|e| StoreError::backend("create schema", e))?;
            }
        }
        let session_cols = table_columns(&pool, "session").await?;
        let user_cols = table_columns(&pool, "user").await?;
        let session_extra = check_columns("session", &session_cols, &SESSION_CORE)?;
        let user_extra = check_columns("user", &user_cols, &USER_CORE)?;

        let s_cols = session_select_list("s", &session_extra);
        let u_cols: Vec<String> = USER_CORE
            .iter()
            .map(|c| c.to_string())
            .chain(user_extra.iter().cloned())
            .map(|c| format!("u.{}", quote(&c)))
            .collect();
        let find = format!(
            r#"select {}, {} from "session" s join "user" u on u."id" = s."userId" where s."token" = ?1"#,
            s_cols,
            u_cols.join(", ")
        );
        let plain = session_select_list("session", &session_extra);
        let extend = format!(
            r#"update "session" set "expiresAt" = ?1, "updatedAt" = ?2 where "token" = ?3 and "expiresAt" >= ?2 and "expiresAt" < ?1 returning {}"#,
            plain.replace("\"session\".", "")
        );
        let list = format!(
            r#"select {plain} from "session" where "userId" = ?1 and "expiresAt" > ?2 order by "expiresAt", "id""#
        );
        Ok(Self {
            pool,
            queries: std::sync::Arc::new(Queries {
                find,
                extend,
                list,
                session_extra,
                user_extra,
            }),
        })
    }

    /// The underlying pool, for the application's own queries.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Inserts a user row (e-mail lower-cased, dates as `toISOString()`, boolean as `0`/`1`).
    ///
    /// # Errors
    ///
    /// A backend error, for example when the e-mail address is already taken.
    pub async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            r#"insert into "user" ("id", "name", "email", "emailVerified", "image", "createdAt", "updatedAt") values (?1, ?2, ?3, ?4, ?5, ?6, ?7)"#,
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(user.email.to_lowercase())
        .bind(i64::from(user.email_verified))
        .bind(&user.image)
        .bind(time_fmt::to_iso(user.created_at))
        .bind(time_fmt::to_iso(user.updated_at))
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
        let cols: Vec<String> = USER_CORE
            .iter()
            .map(|c| c.to_string())
            .chain(self.queries.user_extra.iter().cloned())
            .map(|c| quote(&c))
            .collect();
        let sql = format!(
            r#"select {} from "user" where "email" = ?1"#,
            cols.join(", ")
        );
        let row = sqlx::query(&sql)
            .bind(email.to_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::backend("find user", e))?;
        row.map(|r| read_user(&r, 0, &self.queries.user_extra))
            .transpose()
    }

    /// Deletes a user; its sessions go with it (`ON DELETE CASCADE`).
    ///
    /// # Errors
    ///
    /// A backend error.
    pub async fn delete_user(&self, user_id: &str) -> Result<(), StoreError> {
        sqlx::query(r#"delete from "session" where "userId" = ?1"#)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::backend("delete user", e))?;
        sqlx::query(r#"delete from "user" where "id" = ?1"#)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::backend("delete user", e))?;
        Ok(())
    }
}

fn session_select_list(alias: &str, extra: &[String]) -> String {
    let alias = if alias == "session" {
        quote(alias)
    } else {
        alias.to_owned()
    };
    SESSION_CORE
        .iter()
        .map(|c| c.to_string())
        .chain(extra.iter().cloned())
        .map(|c| format!("{alias}.{}", quote(&c)))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn table_columns(pool: &SqlitePool, table: &str) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("select name from pragma_table_info(?1)")
        .bind(table)
        .fetch_all(pool)
        .await
        .map_err(|e| StoreError::backend("read schema", e))?;
    if rows.is_empty() {
        return Err(SchemaError::MissingTable {
            table: table.to_owned(),
        }
        .into());
    }
    rows.iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()
        .map_err(|e| StoreError::backend("read schema", e))
}

/// Checks that every core column exists and returns the extra ones, in table order.
fn check_columns(table: &str, have: &[String], core: &[&str]) -> Result<Vec<String>, SchemaError> {
    for column in core {
        if !have.iter().any(|h| h == column) {
            let hint = if table == "session" && *column == "token" {
                " (this looks like Better Auth's pre-1.0 layout, where \"id\" held the cookie token)"
            } else if have.iter().any(|h| h == &camel_to_snake(column)) {
                " (the table uses snake_case names, as Better Auth's Drizzle generator writes them)"
            } else {
                ""
            };
            return Err(SchemaError::MissingColumn {
                table: table.to_owned(),
                column: (*column).to_owned(),
                hint,
            });
        }
    }
    Ok(have
        .iter()
        .filter(|h| !core.contains(&h.as_str()))
        .cloned()
        .collect())
}

fn camel_to_snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        reason: format!("{what}: {e}"),
    }
}

fn get_string(row: &SqliteRow, idx: usize, what: &str) -> Result<String, StoreError> {
    row.try_get::<String, _>(idx).map_err(|e| corrupt(what, e))
}

fn get_opt_string(row: &SqliteRow, idx: usize, what: &str) -> Result<Option<String>, StoreError> {
    row.try_get::<Option<String>, _>(idx)
        .map_err(|e| corrupt(what, e))
}

/// Reads a date stored as ISO text (Better Auth's Kysely path) or as unix milliseconds
/// (its Drizzle generator).
fn get_date(row: &SqliteRow, idx: usize, what: &str) -> Result<OffsetDateTime, StoreError> {
    let raw = row.try_get_raw(idx).map_err(|e| corrupt(what, e))?;
    let kind = raw.type_info().name().to_ascii_uppercase();
    let parsed = match kind.as_str() {
        "INTEGER" => row
            .try_get_unchecked::<i64, _>(idx)
            .ok()
            .and_then(time_fmt::from_unix_ms),
        "REAL" => row
            .try_get_unchecked::<f64, _>(idx)
            .ok()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .and_then(|f| time_fmt::from_unix_ms(f as i64)),
        _ => row
            .try_get_unchecked::<String, _>(idx)
            .ok()
            .and_then(|s| match s.parse::<i64>() {
                Ok(ms) => time_fmt::from_unix_ms(ms),
                Err(_) => time_fmt::parse_iso(&s),
            }),
    };
    parsed.ok_or_else(|| corrupt(what, "not a date"))
}

fn get_bool(row: &SqliteRow, idx: usize, what: &str) -> Result<bool, StoreError> {
    let raw = row.try_get_raw(idx).map_err(|e| corrupt(what, e))?;
    if raw.type_info().name().eq_ignore_ascii_case("TEXT") {
        let s: String = row.try_get_unchecked(idx).map_err(|e| corrupt(what, e))?;
        return Ok(matches!(s.as_str(), "1" | "true"));
    }
    row.try_get_unchecked::<i64, _>(idx)
        .map(|v| v != 0)
        .map_err(|e| corrupt(what, e))
}

fn get_json(row: &SqliteRow, idx: usize) -> Value {
    let Ok(raw) = row.try_get_raw(idx) else {
        return Value::Null;
    };
    if raw.is_null() {
        return Value::Null;
    }
    match raw.type_info().name().to_ascii_uppercase().as_str() {
        "INTEGER" => row
            .try_get_unchecked::<i64, _>(idx)
            .map(Value::from)
            .unwrap_or(Value::Null),
        "REAL" => row
            .try_get_unchecked::<f64, _>(idx)
            .map(Value::from)
            .unwrap_or(Value::Null),
        "BLOB" => row
            .try_get_unchecked::<Vec<u8>, _>(idx)
            .map(|b| Value::from(String::from_utf8_lossy(&b).into_owned()))
            .unwrap_or(Value::Null),
        _ => row
            .try_get_unchecked::<String, _>(idx)
            .map(Value::from)
            .unwrap_or(Value::Null),
    }
}

fn read_extra(row: &SqliteRow, start: usize, names: &[String]) -> Map<String, Value> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), get_json(row, start + i)))
        .collect()
}

/// Reads a session from columns `start..` in [`SESSION_CORE`] order, then the extras.
fn read_session(row: &SqliteRow, start: usize, extra: &[String]) -> Result<Session, StoreError> {
    Ok(Session {
        id: get_string(row, start, "session.id")?,
        token: get_string(row, start + 1, "session.token")?,
        user_id: get_string(row, start + 2, "session.userId")?,
        expires_at: get_date(row, start + 3, "session.expiresAt")?,
        created_at: get_date(row, start + 4, "session.createdAt")?,
        updated_at: get_date(row, start + 5, "session.updatedAt")?,
        ip_address: get_opt_string(row, start + 6, "session.ipAddress")?,
        user_agent: get_opt_string(row, start + 7, "session.userAgent")?,
        extra: read_extra(row, start + SESSION_CORE.len(), extra),
    })
}

/// Reads a user from columns `start..` in [`USER_CORE`] order, then the extras.
fn read_user(row: &SqliteRow, start: usize, extra: &[String]) -> Result<User, StoreError> {
    Ok(User {
        id: get_string(row, start, "user.id")?,
        name: get_string(row, start + 1, "user.name")?,
        email: get_string(row, start + 2, "user.email")?,
        email_verified: get_bool(row, start + 3, "user.emailVerified")?,
        image: get_opt_string(row, start + 4, "user.image")?,
        created_at: get_date(row, start + 5, "user.createdAt")?,
        updated_at: get_date(row, start + 6, "user.updatedAt")?,
        extra: read_extra(row, start + USER_CORE.len(), extra),
    })
}

impl SessionStore for SqliteStore {
    async fn find(&self, token: &str) -> Result<Option<Authenticated>, StoreError> {
        let row = sqlx::query(&self.queries.find)
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::backend("find", e))?;
        let Some(row) = row else { return Ok(None) };
        let q = &self.queries;
        let session = read_session(&row, 0, &q.session_extra)?;
        let user = read_user(
            &row,
            SESSION_CORE.len() + q.session_extra.len(),
            &q.user_extra,
        )?;
        Ok(Some(Authenticated { session, user }))
    }

    async fn create(&self, session: &Session, _user: &User) -> Result<(), StoreError> {
        sqlx::query(
            r#"insert into "session" ("id", "expiresAt", "token", "createdAt", "updatedAt", "ipAddress", "userAgent", "userId") values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"#,
        )
        .bind(&session.id)
        .bind(time_fmt::to_iso(session.expires_at))
        .bind(&session.token)
        .bind(time_fmt::to_iso(session.created_at))
        .bind(time_fmt::to_iso(session.updated_at))
        .bind(session.ip_address.as_deref().unwrap_or(""))
        .bind(session.user_agent.as_deref().unwrap_or(""))
        .bind(&session.user_id)
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
            .bind(time_fmt::to_iso(expires_at))
            .bind(time_fmt::to_iso(now))
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::backend("extend", e))?;
        row.map(|r| read_session(&r, 0, &self.queries.session_extra))
            .transpose()
    }

    async fn delete(&self, token: &str) -> Result<(), StoreError> {
        sqlx::query(r#"delete from "session" where "token" = ?1"#)
            .bind(token)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::backend("delete", e))?;
        Ok(())
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(r#"delete from "session" where "userId" = ?1"#)
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
            .bind(time_fmt::to_iso(now))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::backend("list", e))?;
        rows.iter()
            .map(|r| read_session(r, 0, &self.queries.session_extra))
            .collect()
    }

    async fn delete_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query(r#"delete from "session" where "expiresAt" < ?1"#)
            .bind(time_fmt::to_iso(now))
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::backend("delete expired", e))?;
        Ok(done.rows_affected())
    }
}
