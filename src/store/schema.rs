//! Physical table and column names for the SQL stores, with presets for the layouts Better
//! Auth's adapters produce (spec §4.4), and the SQL built from them.

use crate::error::SchemaError;

/// How dates are stored in SQLite (PostgreSQL always uses its timestamp types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DateFormat {
    /// `toISOString()` text, `2026-11-29T13:26:18.309Z`: Better Auth's built-in (Kysely) adapter.
    IsoText,
    /// Integer milliseconds since the Unix epoch: Better Auth's Drizzle and Prisma generators.
    UnixMillis,
}

/// The columns of the `user` table, in the order the stores read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserColumn {
    /// `id`
    Id,
    /// `name`
    Name,
    /// `email`
    Email,
    /// `emailVerified`
    EmailVerified,
    /// `image`
    Image,
    /// `createdAt`
    CreatedAt,
    /// `updatedAt`
    UpdatedAt,
}

/// The columns of the `session` table, in the order the stores read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionColumn {
    /// `id`
    Id,
    /// `token`
    Token,
    /// `userId`
    UserId,
    /// `expiresAt`
    ExpiresAt,
    /// `createdAt`
    CreatedAt,
    /// `updatedAt`
    UpdatedAt,
    /// `ipAddress`
    IpAddress,
    /// `userAgent`
    UserAgent,
}

const USER_CAMEL: [&str; 7] = [
    "id",
    "name",
    "email",
    "emailVerified",
    "image",
    "createdAt",
    "updatedAt",
];
const SESSION_CAMEL: [&str; 8] = [
    "id",
    "token",
    "userId",
    "expiresAt",
    "createdAt",
    "updatedAt",
    "ipAddress",
    "userAgent",
];

/// Where Better Auth's `user` and `session` data physically live in a SQL database.
///
/// The default, [`SqlSchema::better_auth`], is what Better Auth's built-in Kysely adapter and
/// its `migrate` command create. Rename anything else with the builder methods:
///
/// ```
/// use tower_auth_session::store::{SessionColumn, SqlSchema};
///
/// let schema = SqlSchema::better_auth()
///     .plural() // `usePlural: true`
///     .session_column(SessionColumn::IpAddress, "ip");
/// # let _ = schema;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct SqlSchema {
    pub(crate) user_table: String,
    pub(crate) session_table: String,
    pub(crate) user: [String; 7],
    pub(crate) session: [String; 8],
    pub(crate) sqlite_dates: DateFormat,
}

impl Default for SqlSchema {
    fn default() -> Self {
        Self::better_auth()
    }
}

fn snake(s: &str) -> String {
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

impl SqlSchema {
    /// Better Auth's built-in adapter and `migrate`: tables `user` and `session`, camelCase
    /// columns, SQLite dates as ISO text.
    pub fn better_auth() -> Self {
        Self {
            user_table: "user".into(),
            session_table: "session".into(),
            user: USER_CAMEL.map(str::to_owned),
            session: SESSION_CAMEL.map(str::to_owned),
            sqlite_dates: DateFormat::IsoText,
        }
    }

    /// Better Auth's Drizzle generator: snake_case columns (`expires_at`, `user_id`, …) and,
    /// in SQLite, dates as unix milliseconds (`integer(…, { mode: "timestamp_ms" })`).
    pub fn drizzle() -> Self {
        Self {
            user: USER_CAMEL.map(snake),
            session: SESSION_CAMEL.map(snake),
            sqlite_dates: DateFormat::UnixMillis,
            ..Self::better_auth()
        }
    }

    /// Better Auth's Prisma generator: models `User` and `Session` mapped to tables `user` and
    /// `session`, camelCase columns and, in SQLite, dates as unix milliseconds.
    pub fn prisma() -> Self {
        Self {
            sqlite_dates: DateFormat::UnixMillis,
            ..Self::better_auth()
        }
    }

    /// Plural table names, `users` and `sessions` (Better Auth's `usePlural`).
    pub fn plural(mut self) -> Self {
        self.user_table = format!("{}s", self.user_table);
        self.session_table = format!("{}s", self.session_table);
        self
    }

    /// Renames the user table. Default: `user`.
    pub fn user_table(mut self, name: impl Into<String>) -> Self {
        self.user_table = name.into();
        self
    }

    /// Renames the session table. Default: `session`.
    pub fn session_table(mut self, name: impl Into<String>) -> Self {
        self.session_table = name.into();
        self
    }

    /// Renames one column of the user table (Better Auth's `user.fields`).
    pub fn user_column(mut self, column: UserColumn, name: impl Into<String>) -> Self {
        self.user[column as usize] = name.into();
        self
    }

    /// Renames one column of the session table (Better Auth's `session.fields`).
    pub fn session_column(mut self, column: SessionColumn, name: impl Into<String>) -> Self {
        self.session[column as usize] = name.into();
        self
    }

    /// How SQLite dates are stored. Default: [`DateFormat::IsoText`] (unix ms for the Drizzle and
    /// Prisma presets). Reads accept both whatever this says; writes and range filters use it.
    pub fn sqlite_dates(mut self, format: DateFormat) -> Self {
        self.sqlite_dates = format;
        self
    }

    pub(crate) fn s(&self, c: SessionColumn) -> String {
        quote(&self.session[c as usize])
    }

    pub(crate) fn u(&self, c: UserColumn) -> String {
        quote(&self.user[c as usize])
    }

    pub(crate) fn session_table_q(&self) -> String {
        quote(&self.session_table)
    }

    pub(crate) fn user_table_q(&self) -> String {
        quote(&self.user_table)
    }
}

/// Double-quotes an identifier (PostgreSQL and SQLite), doubling embedded quotes.
pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Placeholder syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Sqlite,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
}

impl Dialect {
    fn ph(self, n: usize) -> String {
        match self {
            Self::Sqlite => format!("?{n}"),
            Self::Postgres => format!("${n}"),
        }
    }
}

/// The statements a SQL store runs, built once at start-up from the schema and the extra
/// columns found in the tables.
#[derive(Debug)]
pub(crate) struct Queries {
    pub(crate) find: String,
    pub(crate) insert: String,
    pub(crate) extend: String,
    pub(crate) delete: String,
    pub(crate) delete_if_expired: String,
    pub(crate) delete_user_sessions: String,
    pub(crate) list: String,
    pub(crate) delete_expired: String,
    pub(crate) delete_expired_batch: String,
    pub(crate) insert_user: String,
    pub(crate) find_user_by_email: String,
    pub(crate) delete_user: String,
    pub(crate) session_extra: Vec<String>,
    pub(crate) user_extra: Vec<String>,
}

impl Queries {
    /// Checks the tables' actual columns (`session_cols`, `user_cols`, in table order) against
    /// the schema, naming what is missing, and builds the statements, reading any extra
    /// (plugin) columns too.
    pub(crate) fn checked(
        schema: &SqlSchema,
        dialect: Dialect,
        session_cols: &[String],
        user_cols: &[String],
    ) -> Result<Self, SchemaError> {
        let token = &schema.session[SessionColumn::Token as usize];
        let session_extra = check_columns(
            &schema.session_table,
            session_cols,
            &schema.session,
            Some(token.as_str()),
        )?;
        let user_extra = check_columns(&schema.user_table, user_cols, &schema.user, None)?;
        Ok(Self::build(schema, dialect, session_extra, user_extra))
    }

    fn build(
        schema: &SqlSchema,
        dialect: Dialect,
        session_extra: Vec<String>,
        user_extra: Vec<String>,
    ) -> Self {
        use SessionColumn as S;
        let p = |n| dialect.ph(n);
        let st = schema.session_table_q();
        let ut = schema.user_table_q();
        let session_cols = |alias: &str| -> String {
            schema
                .session
                .iter()
                .chain(&session_extra)
                .map(|c| format!("{alias}{}", quote(c)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let user_cols = |alias: &str| -> String {
            schema
                .user
                .iter()
                .chain(&user_extra)
                .map(|c| format!("{alias}{}", quote(c)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let find = format!(
            "select {}, {} from {st} s join {ut} u on u.{} = s.{} where s.{} = {}",
            session_cols("s."),
            user_cols("u."),
            schema.u(UserColumn::Id),
            schema.s(S::UserId),
            schema.s(S::Token),
            p(1)
        );
        let insert = format!(
            "insert into {st} ({}, {}, {}, {}, {}, {}, {}, {}) values ({}, {}, {}, {}, {}, {}, {}, {})",
            schema.s(S::Id),
            schema.s(S::Token),
            schema.s(S::UserId),
            schema.s(S::ExpiresAt),
            schema.s(S::CreatedAt),
            schema.s(S::UpdatedAt),
            schema.s(S::IpAddress),
            schema.s(S::UserAgent),
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7),
            p(8)
        );
        // Conditional: only a live row, only forward. $1 = new expiry, $2 = now, $3 = token.
        let extend = format!(
            "update {st} set {exp} = {p1}, {upd} = {p2} where {tok} = {p3} and {exp} >= {p2} and {exp} < {p1} returning {}",
            session_cols(""),
            exp = schema.s(S::ExpiresAt),
            upd = schema.s(S::UpdatedAt),
            tok = schema.s(S::Token),
            p1 = p(1),
            p2 = p(2),
            p3 = p(3),
        );
        let delete = format!("delete from {st} where {} = {}", schema.s(S::Token), p(1));
        let delete_if_expired = format!(
            "delete from {st} where {} = {} and {} < {}",
            schema.s(S::Token),
            p(1),
            schema.s(S::ExpiresAt),
            p(2)
        );
        let delete_user_sessions =
            format!("delete from {st} where {} = {}", schema.s(S::UserId), p(1));
        let list = format!(
            "select {} from {st} where {} = {} and {exp} > {} order by {exp}, {}",
            session_cols(""),
            schema.s(S::UserId),
            p(1),
            p(2),
            schema.s(S::Id),
            exp = schema.s(S::ExpiresAt),
        );
        let delete_expired = format!(
            "delete from {st} where {} < {}",
            schema.s(S::ExpiresAt),
            p(1)
        );
        let delete_expired_batch = format!(
            "delete from {st} where {id} in (select {id} from {st} where {exp} < {} limit {})",
            p(1),
            p(2),
            id = schema.s(S::Id),
            exp = schema.s(S::ExpiresAt),
        );
        let insert_user = format!(
            "insert into {ut} ({}) values ({})",
            schema
                .user
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", "),
            (1..=7).map(p).collect::<Vec<_>>().join(", ")
        );
        let find_user_by_email = format!(
            "select {} from {ut} where {} = {}",
            user_cols(""),
            schema.u(UserColumn::Email),
            p(1)
        );
        let delete_user = format!(
            "delete from {ut} where {} = {}",
            schema.u(UserColumn::Id),
            p(1)
        );
        Self {
            find,
            insert,
            extend,
            delete,
            delete_if_expired,
            delete_user_sessions,
            list,
            delete_expired,
            delete_expired_batch,
            insert_user,
            find_user_by_email,
            delete_user,
            session_extra,
            user_extra,
        }
    }
}

/// Better Auth's DDL (spec §4.2) with the schema's names, for `CreateIfMissing`.
pub(crate) fn ddl(schema: &SqlSchema, dialect: Dialect) -> [String; 3] {
    use SessionColumn as S;
    let (date, boolean, date_default) = match (dialect, schema.sqlite_dates) {
        (Dialect::Postgres, _) => ("timestamptz", "boolean", " default CURRENT_TIMESTAMP"),
        (Dialect::Sqlite, DateFormat::IsoText) => ("date", "integer", ""),
        (Dialect::Sqlite, DateFormat::UnixMillis) => ("integer", "integer", ""),
    };
    let u = |c| schema.u(c);
    let user = format!(
        "create table if not exists {} ({} text not null primary key, {} text not null, {} text not null unique, {} {boolean} not null, {} text, {} {date}{date_default} not null, {} {date}{date_default} not null)",
        schema.user_table_q(),
        u(UserColumn::Id),
        u(UserColumn::Name),
        u(UserColumn::Email),
        u(UserColumn::EmailVerified),
        u(UserColumn::Image),
        u(UserColumn::CreatedAt),
        u(UserColumn::UpdatedAt),
    );
    let session = format!(
        "create table if not exists {} ({} text not null primary key, {} {date} not null, {} text not null unique, {} {date}{date_default} not null, {} {date} not null, {} text, {} text, {} text not null references {} ({}) on delete cascade)",
        schema.session_table_q(),
        schema.s(S::Id),
        schema.s(S::ExpiresAt),
        schema.s(S::Token),
        schema.s(S::CreatedAt),
        schema.s(S::UpdatedAt),
        schema.s(S::IpAddress),
        schema.s(S::UserAgent),
        schema.s(S::UserId),
        schema.user_table_q(),
        u(UserColumn::Id),
    );
    let index = format!(
        "create index if not exists {} on {} ({})",
        quote(&format!(
            "{}_{}_idx",
            schema.session_table,
            schema.session[S::UserId as usize]
        )),
        schema.session_table_q(),
        schema.s(S::UserId),
    );
    [user, session, index]
}

/// Checks that the table has every column the schema names, and returns the others (plugin
/// columns), in table order.
fn check_columns(
    table: &str,
    have: &[String],
    want: &[String],
    token_column: Option<&str>,
) -> Result<Vec<String>, SchemaError> {
    if have.is_empty() {
        return Err(SchemaError::MissingTable {
            table: table.to_owned(),
        });
    }
    for column in want {
        if !have.iter().any(|h| h == column) {
            let hint = if token_column == Some(column.as_str()) && have.iter().any(|h| h == "id") {
                " (this looks like Better Auth's pre-1.0 layout, where \"id\" held the cookie token)"
            } else if have.iter().any(|h| *h == snake(column)) && *column != snake(column) {
                " (the table uses snake_case names, as Better Auth's Drizzle generator writes them: use SqlSchema::drizzle())"
            } else if column.contains('_')
                && have.iter().any(|h| snake(h) == *column && h != column)
            {
                " (the table uses camelCase names: use SqlSchema::better_auth())"
            } else {
                ""
            };
            return Err(SchemaError::MissingColumn {
                table: table.to_owned(),
                column: column.clone(),
                hint,
            });
        }
    }
    Ok(have.iter().filter(|h| !want.contains(h)).cloned().collect())
}

/// Defines `read_extra`, `read_session` and `read_user` for a SQL row type, in terms of the
/// calling module's `get_string`, `get_opt_string`, `get_date`, `get_bool` and `get_json`
/// (which differ per database). Columns come in [`SessionColumn`] / [`UserColumn`] order,
/// then the extra (plugin) columns.
macro_rules! row_readers {
    ($row:ty) => {
        fn read_extra(
            row: &$row,
            start: usize,
            names: &[String],
        ) -> serde_json::Map<String, serde_json::Value> {
            names
                .iter()
                .enumerate()
                .map(|(i, name)| (name.clone(), get_json(row, start + i)))
                .collect()
        }

        fn read_session(
            row: &$row,
            start: usize,
            extra: &[String],
        ) -> Result<crate::model::Session, crate::error::StoreError> {
            Ok(crate::model::Session {
                id: get_string(row, start, "session.id")?,
                token: get_string(row, start + 1, "session.token")?,
                user_id: get_string(row, start + 2, "session.userId")?,
                expires_at: get_date(row, start + 3, "session.expiresAt")?,
                created_at: get_date(row, start + 4, "session.createdAt")?,
                updated_at: get_date(row, start + 5, "session.updatedAt")?,
                ip_address: get_opt_string(row, start + 6, "session.ipAddress")?,
                user_agent: get_opt_string(row, start + 7, "session.userAgent")?,
                extra: read_extra(row, start + 8, extra),
            })
        }

        fn read_user(
            row: &$row,
            start: usize,
            extra: &[String],
        ) -> Result<crate::model::User, crate::error::StoreError> {
            Ok(crate::model::User {
                id: get_string(row, start, "user.id")?,
                name: get_string(row, start + 1, "user.name")?,
                email: get_string(row, start + 2, "user.email")?,
                email_verified: get_bool(row, start + 3, "user.emailVerified")?,
                image: get_opt_string(row, start + 4, "user.image")?,
                created_at: get_date(row, start + 5, "user.createdAt")?,
                updated_at: get_date(row, start + 6, "user.updatedAt")?,
                extra: read_extra(row, start + 7, extra),
            })
        }
    };
}
pub(crate) use row_readers;
