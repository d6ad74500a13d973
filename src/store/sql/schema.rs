//! Physical table and column names, with presets for the layouts Better Auth's adapters produce
//! (spec §4.4); the schema check that reads the real tables; and the statements built from both.

use super::dialect::{param_marker, Column, ColumnType, ExtendMany, Stmt, Syntax};
use crate::error::SchemaError;

/// How dates are stored in SQLite (PostgreSQL and MySQL use their timestamp types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DateFormat {
    /// `toISOString()` text, `2026-11-29T13:26:18.309Z`: Better Auth's built-in (Kysely) adapter.
    IsoText,
    /// Integer milliseconds since the Unix epoch: Better Auth's Drizzle generator
    /// (`integer(…, { mode: "timestamp_ms" })`, since Better Auth 1.4) and Prisma's own SQLite
    /// engine (Prisma 6 and earlier).
    UnixMillis,
    /// Integer seconds since the Unix epoch: Drizzle's `integer(…, { mode: "timestamp" })`,
    /// which Better Auth's Drizzle generator wrote before 1.4. Writes lose the milliseconds.
    UnixSeconds,
}

#[cfg(feature = "sqlite")]
impl DateFormat {
    /// For messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::IsoText => "ISO 8601 text",
            Self::UnixMillis => "unix milliseconds",
            Self::UnixSeconds => "unix seconds",
        }
    }

    /// The setting, as code.
    pub(crate) fn setting(self) -> &'static str {
        match self {
            Self::IsoText => "DateFormat::IsoText",
            Self::UnixMillis => "DateFormat::UnixMillis",
            Self::UnixSeconds => "DateFormat::UnixSeconds",
        }
    }
}

/// The SQLite expression that brings the date `x` (a column or a parameter) to unix
/// milliseconds, whatever it was written as: a number (seconds or milliseconds, by
/// [`SECONDS_BELOW`](crate::time_fmt::SECONDS_BELOW), as the reader takes it), a string of digits (the same), or text SQLite's date functions read
/// (ISO 8601 with `T` or a space, `Z` or an offset). Anything else is NULL, which no
/// comparison matches.
fn sqlite_ms(x: &str) -> String {
    // No `abs()`: it raises an error on the smallest integer, and one such row would fail the
    // sweep for the whole table.
    let s = crate::time_fmt::SECONDS_BELOW;
    let number =
        |n: &str| format!("(case when {n} > -{s} and {n} < {s} then {n} * 1000 else {n} end)");
    format!(
        "(case when typeof({x}) in ('integer', 'real') then {} \
         when ltrim(trim({x}), '+-') glob '[0-9]*' and ltrim(trim({x}), '+-') not glob '*[^0-9]*' \
         then {} \
         else round((julianday(upper(trim({x}))) - 2440587.5) * 86400000.0) end)",
        number(x),
        number(&format!("cast(trim({x}) as integer)")),
    )
}

/// How ids are made, Better Auth's `advanced.database.generateId`.
///
/// On PostgreSQL the store reads the id columns' types (`text`, `uuid`, `integer`) and follows
/// them; SQLite and MySQL keep uuids in text columns, so there this setting says which ids a
/// Rust sign-in writes. Integer (serial) id columns are recognised everywhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdFormat {
    /// 32 characters of `[A-Za-z0-9]`, Better Auth's default.
    #[default]
    Text,
    /// Version 4 UUIDs (`generateId: "uuid"`).
    Uuid,
    /// Integers the database assigns (`generateId: "serial"`).
    Serial,
}

impl IdFormat {
    fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text ids",
            Self::Uuid => "uuid ids",
            Self::Serial => "serial (integer) ids",
        }
    }
}

impl std::fmt::Display for IdFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type Better Auth gives an additional field (`additionalFields`' `type`), for a column
/// the database cannot type itself: SQLite and MySQL keep booleans as numbers and JSON as
/// text, and Better Auth's Kysely adapter keeps arrays as JSON text on every database. That
/// adapter reads such a column back into its type; so does the store, with
/// [`SqlSchema::user_field`] and [`SqlSchema::session_field`], for the handlers and for the
/// cookie cache it issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldType {
    /// `type: "boolean"`: on SQLite and MySQL a number reads as `true` when it is 1 (Better
    /// Auth's `=== 1`); PostgreSQL's booleans are its own.
    Boolean,
    /// `type: "json"`: on SQLite and MySQL text is parsed as JSON (`null` when it is not JSON,
    /// as Better Auth's `safeJSONParse`); on PostgreSQL the value stays as the column gives it
    /// (`jsonb` parsed, `text` a string), as Better Auth's adapter leaves it there.
    Json,
    /// `type: "string[]"` or `"number[]"` kept as JSON text (Better Auth's Kysely adapter
    /// keeps arrays so on every database): parsed. PostgreSQL array columns (`text[]`, as
    /// Drizzle and Prisma make them) read as arrays without a declaration.
    Array,
}

impl FieldType {
    /// `value`, as Better Auth's adapter reads a column of this type, from a database whose
    /// booleans and JSON it takes as they come (`native`: PostgreSQL) or not.
    pub(crate) fn read(self, value: serde_json::Value, native: bool) -> serde_json::Value {
        use serde_json::Value;
        let parse = |text: &str| serde_json::from_str(text).unwrap_or(Value::Null);
        match (self, value) {
            (Self::Boolean, Value::Number(n)) if !native => Value::Bool(n.as_f64() == Some(1.0)),
            (Self::Json, Value::String(text)) if !native => parse(&text),
            (Self::Array, Value::String(text)) => parse(&text),
            (_, value) => value,
        }
    }
}

/// Boolean columns of Better Auth's plugins (admin, two-factor, anonymous, phone number), in
/// their camelCase and snake_case spellings: typed without being declared.
const PLUGIN_BOOLEANS: [&str; 7] = [
    "banned",
    "twoFactorEnabled",
    "two_factor_enabled",
    "isAnonymous",
    "is_anonymous",
    "phoneNumberVerified",
    "phone_number_verified",
];

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

/// The number of core session columns a row starts with (then the plugin columns).
pub(crate) const SESSION_CORE: usize = SESSION_CAMEL.len();

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
    /// PostgreSQL's schema (namespace) of both tables: Better Auth's `database.schemaName`.
    pub(crate) namespace: Option<String>,
    pub(crate) user: [String; 7],
    pub(crate) session: [String; 8],
    pub(crate) sqlite_dates: DateFormat,
    pub(crate) ids: IdFormat,
    /// Declared types of extra columns (`user_field`, `session_field`).
    pub(crate) user_fields: Vec<(String, FieldType)>,
    pub(crate) session_fields: Vec<(String, FieldType)>,
    /// Better Auth field names of renamed extra columns, as `(field, column)`
    /// (`user_field_column`, `session_field_column`).
    pub(crate) user_field_columns: Vec<(String, String)>,
    pub(crate) session_field_columns: Vec<(String, String)>,
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
    /// columns, SQLite dates as ISO text, text ids.
    pub fn better_auth() -> Self {
        Self {
            user_table: "user".into(),
            session_table: "session".into(),
            namespace: None,
            user: USER_CAMEL.map(str::to_owned),
            session: SESSION_CAMEL.map(str::to_owned),
            sqlite_dates: DateFormat::IsoText,
            ids: IdFormat::Text,
            user_fields: Vec::new(),
            session_fields: Vec::new(),
            user_field_columns: Vec::new(),
            session_field_columns: Vec::new(),
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
    /// `session`, camelCase columns and, in SQLite, dates as unix milliseconds, as Prisma's own
    /// SQLite engine writes them. Prisma's driver adapters (`@prisma/adapter-better-sqlite3`,
    /// the only way in Prisma 7) write ISO text unless `timestampFormat: "unixepoch-ms"`: use
    /// `.sqlite_dates(DateFormat::IsoText)` there (the start-up check names it when the table
    /// already has sessions).
    pub fn prisma() -> Self {
        Self {
            sqlite_dates: DateFormat::UnixMillis,
            ..Self::better_auth()
        }
    }

    /// PostgreSQL only: the tables are in schema (namespace) `name`, as Better Auth's
    /// `database.schemaName` puts them (`auth migrate` creates the schema first, and so does
    /// [`create_schema(true)`](crate::store::PostgresStoreBuilder::create_schema)). Every
    /// statement names the schema, so the connection's `search_path` does not matter: a pooler
    /// that drops or refuses the `options` startup parameter (PgBouncer) cannot send the store
    /// to the `public` schema's tables. A change feed's triggers and functions go in the same
    /// schema, and [`SqlStore::jwks`](crate::store::SqlStore::jwks) reads its `jwks` table.
    ///
    /// Default: none (the tables the connection's `search_path` finds first, as Better Auth
    /// without `schemaName`). The SQLite and MySQL stores refuse it at start-up.
    pub fn schema_name(mut self, name: impl Into<String>) -> Self {
        self.namespace = Some(name.into());
        self
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
    /// Prisma presets). Writes use it. Reads, and every comparison of dates in a statement (the
    /// list, the refresh's guard, the sweep), take each row's date in whatever form it is
    /// stored, so rows another adapter wrote are never deleted or skipped for their form. A
    /// session table whose dates are all in another form is refused at start-up
    /// ([`SchemaError::DateFormatMismatch`](crate::SchemaError::DateFormatMismatch)), naming the
    /// setting that matches.
    pub fn sqlite_dates(mut self, format: DateFormat) -> Self {
        self.sqlite_dates = format;
        self
    }

    /// Declares the type of an extra column of the user table (an `additionalFields` entry of
    /// Better Auth's `user`, by its column name), so that it reads as Better Auth's adapter
    /// reads it: `.user_field("isPremium", FieldType::Boolean)` reads SQLite's `1` as `true`,
    /// `.user_field("tags", FieldType::Array)` reads `'["a"]'` as an array. Undeclared extra
    /// columns read as the database gives them, except the plugins' known booleans (`banned`,
    /// `twoFactorEnabled`, `isAnonymous`, `phoneNumberVerified`). A column renamed with
    /// [`user_field_column`](Self::user_field_column) may be named by its field instead.
    pub fn user_field(mut self, column: impl Into<String>, kind: FieldType) -> Self {
        self.user_fields.push((column.into(), kind));
        self
    }

    /// [`user_field`](Self::user_field) for the session table (`session.additionalFields`).
    pub fn session_field(mut self, column: impl Into<String>, kind: FieldType) -> Self {
        self.session_fields.push((column.into(), kind));
        self
    }

    /// A field of the user table that a Better Auth plugin (or `additionalFields`) keeps under
    /// another column name, as the plugin's `schema` option renames it:
    /// `admin({ schema: { user: { fields: { banned: "is_banned" } } } })` is
    /// `.user_field_column("banned", "is_banned")`.
    ///
    /// The column then reads as Better Auth names the field: into
    /// [`User::extra`](crate::User::extra) under `field`, so that the plugin checks find it (a
    /// ban in `is_banned` refuses the sign-in and the session; without this it was an unknown
    /// column and the ban was not seen), the cookie cache carries it under Better Auth's name,
    /// and lifting a ban writes `column`. A column named `field` as well is not read. The
    /// start-up check refuses a `column` the table does not have (spelled as the database
    /// reports it), a field given two columns or a column two fields, and Better Auth's core
    /// fields and columns (renamed with [`user_column`](Self::user_column)). The crate's
    /// accessors also find the snake_case spellings of the plugins' fields
    /// (`two_factor_enabled`, `ban_reason`) without this, but only with it do the cookie
    /// cache and Redis values carry Better Auth's names.
    pub fn user_field_column(
        mut self,
        field: impl Into<String>,
        column: impl Into<String>,
    ) -> Self {
        self.user_field_columns.push((field.into(), column.into()));
        self
    }

    /// [`user_field_column`](Self::user_field_column) for the session table (the admin
    /// plugin's `impersonatedBy`, the organization plugin's `activeOrganizationId`).
    pub fn session_field_column(
        mut self,
        field: impl Into<String>,
        column: impl Into<String>,
    ) -> Self {
        self.session_field_columns
            .push((field.into(), column.into()));
        self
    }

    /// Which ids a Rust sign-in writes, Better Auth's `advanced.database.generateId`, and which
    /// id columns [`SchemaMode::CreateIfMissing`](crate::store::SchemaMode) creates. Default:
    /// [`IdFormat::Text`]. Where the database has typed columns (PostgreSQL `uuid`, integer
    /// columns anywhere) their type wins.
    pub fn ids(mut self, format: IdFormat) -> Self {
        self.ids = format;
        self
    }

    /// `table` as messages name it: `auth.session` in a schema of its own.
    pub(crate) fn shown(&self, table: &str) -> String {
        match &self.namespace {
            Some(namespace) => format!("{namespace}.{table}"),
            None => table.to_owned(),
        }
    }

    /// Refuses names that cannot be quoted safely (empty, or holding NUL).
    pub(crate) fn validate(&self) -> Result<(), SchemaError> {
        let names = [&self.user_table, &self.session_table]
            .into_iter()
            .chain(&self.namespace)
            .chain(&self.user)
            .chain(&self.session)
            .chain(
                self.user_field_columns
                    .iter()
                    .chain(&self.session_field_columns)
                    .flat_map(|(field, column)| [field, column]),
            );
        for name in names {
            if name.is_empty() || name.contains('\0') {
                return Err(SchemaError::InvalidName { name: name.clone() });
            }
        }
        check_field_columns(&self.user_field_columns, &USER_CAMEL, &self.user)?;
        check_field_columns(&self.session_field_columns, &SESSION_CAMEL, &self.session)
    }
}

/// How one id column is read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdKind {
    Text,
    Uuid,
    Integer,
}

impl IdKind {
    /// Whether `value` can be an id of this kind at all: a value that cannot is simply not
    /// found (the database would answer with a type error instead).
    pub(crate) fn accepts(self, value: &str) -> bool {
        match self {
            Self::Text => true,
            Self::Uuid => parse_uuid(value).is_some(),
            Self::Integer => value.parse::<i64>().is_ok(),
        }
    }
}

/// A hyphenated UUID in any case.
pub(crate) fn parse_uuid(value: &str) -> Option<uuid::Uuid> {
    (value.len() == 36)
        .then(|| uuid::Uuid::try_parse(value).ok())
        .flatten()
}

/// How many `find_many` statements there are: for 1, 2, 4, … 64 tokens.
pub(crate) const FIND_MANY_SIZES: usize = 7;

/// The id layout the schema check found.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub(crate) session_id: IdKind,
    pub(crate) user_id: IdKind,
    /// What new text ids are made of.
    pub(crate) text_ids: IdFormat,
}

impl Layout {
    /// The layout a reader would name.
    pub(crate) fn format(&self) -> IdFormat {
        match (self.session_id, self.text_ids) {
            (IdKind::Integer, _) => IdFormat::Serial,
            (IdKind::Uuid, _) | (IdKind::Text, IdFormat::Uuid) => IdFormat::Uuid,
            (IdKind::Text, _) => IdFormat::Text,
        }
    }
}

/// The statements a SQL store runs, built once at start-up from the schema, the dialect, the
/// id layout, and the extra columns found in the tables.
#[derive(Debug)]
pub(crate) struct Queries {
    pub(crate) find: Stmt,
    /// [`find`](Self::find) for many tokens: entry `k` takes `2^k` of them
    /// ([`FIND_MANY_SIZES`] sizes), so that a connection prepares a handful of statements
    /// however many tokens come.
    pub(crate) find_many: Vec<Stmt>,
    pub(crate) insert: Stmt,
    /// Reads a session back by its id (after an insert without `RETURNING`, or an extension).
    pub(crate) session_by_token: Stmt,
    pub(crate) session_by_last_insert: Option<Stmt>,
    pub(crate) extend: Stmt,
    /// [`extend`](Self::extend) for many sessions in one statement, for dialects with
    /// `UPDATE … FROM` and `RETURNING` (SQLite's single writer). Same conditions, per row.
    pub(crate) extend_many: ExtendMany,
    pub(crate) delete: Stmt,
    pub(crate) delete_if_expired: Stmt,
    pub(crate) delete_user_sessions: Stmt,
    /// Ends a live session, keeping its row: $1 = $2 = now (expiry, update time), $3 = token,
    /// $4 = now.
    pub(crate) end_session: Stmt,
    /// Ends a user's live sessions, keeping the rows: as `end_session`, $3 = user id.
    pub(crate) end_user_sessions: Stmt,
    pub(crate) list: Stmt,
    pub(crate) delete_expired: Stmt,
    pub(crate) delete_expired_batch: Stmt,
    pub(crate) insert_user: Stmt,
    pub(crate) user_by_email: Stmt,
    pub(crate) user_by_last_insert: Option<Stmt>,
    pub(crate) user_by_id: Stmt,
    pub(crate) delete_user: Stmt,
    /// Clears the admin plugin's ban, when the user table has its `banned` column.
    pub(crate) lift_ban: Option<Stmt>,
    /// The names the tables' extra columns read as, in the order the statements read them:
    /// the column's, or Better Auth's field name of a renamed column.
    pub(crate) session_keys: Vec<String>,
    pub(crate) user_keys: Vec<String>,
    /// How each of `session_keys` and `user_keys` reads ([`FieldType`]), in the same order.
    pub(crate) session_types: Vec<Option<FieldType>>,
    pub(crate) user_types: Vec<Option<FieldType>>,
    pub(crate) layout: Layout,
    /// The schema's namespace ([`SqlSchema::schema_name`]), for tables of plugins (`jwks`).
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    pub(crate) namespace: Option<String>,
}

/// The type of each extra column (`extra`, read as `keys`): declared (by column or field
/// name), else a plugin's known boolean, else none.
fn field_types(
    declared: &[(String, FieldType)],
    extra: &[String],
    keys: &[String],
) -> Vec<Option<FieldType>> {
    extra
        .iter()
        .zip(keys)
        .map(|(column, key)| {
            declared
                .iter()
                .rev()
                .find(|(name, _)| name == column || name == key)
                .map(|(_, kind)| *kind)
                .or_else(|| {
                    PLUGIN_BOOLEANS
                        .contains(&key.as_str())
                        .then_some(FieldType::Boolean)
                })
        })
        .collect()
}

/// Refuses renamed fields (`(field, column)`) that would read one way and write another: a
/// field given two columns, a column given two fields, a core field (Better Auth's `fields`
/// names, `core`) or a core column (`columns`, as configured).
fn check_field_columns(
    renamed: &[(String, String)],
    core: &[&str],
    columns: &[String],
) -> Result<(), SchemaError> {
    for (i, (field, column)) in renamed.iter().enumerate() {
        let reason = if renamed[..i].iter().any(|(f, _)| f == field) {
            Some("the field is given two columns")
        } else if renamed[..i].iter().any(|(_, c)| c == column) {
            Some("the column is given two fields")
        } else if core.contains(&field.as_str()) {
            Some("the field is one of Better Auth's core fields: rename core columns with `user_column` or `session_column`")
        } else if columns.contains(column) {
            Some("the column is one of the table's core columns")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(SchemaError::InvalidFieldColumn {
                field: field.clone(),
                column: column.clone(),
                reason,
            });
        }
    }
    Ok(())
}

/// The names `extra` (a table's extra columns) read as, given the table's renamed fields
/// (`(field, column)`): a renamed column as its field, every other column as itself; a
/// column named like a renamed field is left out (the renamed column is that field). Refuses
/// a renamed column the table does not have.
fn extra_keys(
    table: &str,
    mut extra: Vec<String>,
    renamed: &[(String, String)],
) -> Result<(Vec<String>, Vec<String>), SchemaError> {
    if let Some((field, column)) = renamed.iter().find(|(_, c)| !extra.contains(c)) {
        return Err(SchemaError::MissingFieldColumn {
            table: table.to_owned(),
            column: column.clone(),
            field: field.clone(),
        });
    }
    let field_of = |column: &str| {
        renamed
            .iter()
            .rev()
            .find(|(_, c)| c == column)
            .map(|(f, _)| f)
    };
    extra.retain(|column| {
        field_of(column).is_some() || !renamed.iter().any(|(field, _)| field == column)
    });
    let keys = extra
        .iter()
        .map(|column| field_of(column).unwrap_or(column).clone())
        .collect();
    Ok((extra, keys))
}

/// The tables as the database reports them.
pub(crate) struct Tables<'a> {
    pub(crate) session: &'a [Column],
    pub(crate) user: &'a [Column],
}

impl Queries {
    /// Checks the tables' actual columns against the schema, naming what is missing or of a
    /// type the store cannot use, recognises the id layout, and builds the statements (reading
    /// any extra plugin columns too).
    pub(crate) fn checked(
        schema: &SqlSchema,
        syntax: &Syntax,
        tables: &Tables<'_>,
    ) -> Result<Self, SchemaError> {
        schema.validate()?;
        let token = &schema.session[SessionColumn::Token as usize];
        // As errors and warnings name them (`auth.session` in a schema of their own).
        let session_table = schema.shown(&schema.session_table);
        let user_table = schema.shown(&schema.user_table);
        let session_extra = check_columns(
            &session_table,
            tables.session,
            &schema.session,
            Some(token.as_str()),
        )?;
        let user_extra = check_columns(&user_table, tables.user, &schema.user, None)?;
        warn_required_extra(&session_table, tables.session, &session_extra, "sign-ins");
        warn_required_extra(
            &user_table,
            tables.user,
            &user_extra,
            "sign-ups (insert_user)",
        );
        let (session_extra, session_keys) =
            extra_keys(&session_table, session_extra, &schema.session_field_columns)?;
        let (user_extra, user_keys) =
            extra_keys(&user_table, user_extra, &schema.user_field_columns)?;
        let kind = |table: &str, cols: &[Column], name: &str| -> Result<IdKind, SchemaError> {
            let column =
                cols.iter()
                    .find(|c| c.name == name)
                    .ok_or_else(|| SchemaError::MissingColumn {
                        table: table.to_owned(),
                        column: name.to_owned(),
                        hint: "",
                    })?;
            match &column.kind {
                ColumnType::Text => Ok(IdKind::Text),
                ColumnType::Uuid => Ok(IdKind::Uuid),
                ColumnType::Integer => Ok(IdKind::Integer),
                ColumnType::Other(_) => Err(SchemaError::UnsupportedColumnType {
                    table: table.to_owned(),
                    column: name.to_owned(),
                    found: column.type_name.clone(),
                }),
            }
        };
        let s = |c: SessionColumn| schema.session[c as usize].as_str();
        let st = session_table.as_str();
        let ut = user_table.as_str();
        if !syntax.date_types.is_empty() {
            let dates = [
                (st, tables.session, s(SessionColumn::ExpiresAt)),
                (st, tables.session, s(SessionColumn::CreatedAt)),
                (st, tables.session, s(SessionColumn::UpdatedAt)),
                (
                    ut,
                    tables.user,
                    &schema.user[UserColumn::CreatedAt as usize],
                ),
                (
                    ut,
                    tables.user,
                    &schema.user[UserColumn::UpdatedAt as usize],
                ),
            ];
            for (table, cols, name) in dates {
                let Some(column) = cols.iter().find(|c| c.name == name) else {
                    continue;
                };
                let found = column.type_name.to_ascii_lowercase();
                if !syntax.date_types.iter().any(|t| found.starts_with(t)) {
                    return Err(SchemaError::UnsupportedDateType {
                        table: table.to_owned(),
                        column: name.to_owned(),
                        found: column.type_name.clone(),
                    });
                }
                if found == "timestamp without time zone" && name == s(SessionColumn::ExpiresAt) {
                    // Better Auth's migrations before 1.3 made these; node-postgres writes a
                    // `Date` into them as the Node process's local time.
                    tracing::warn!(
                        table = %table,
                        column = %name,
                        "the session table's dates are `timestamp without time zone`: the store \
                         reads them as UTC; if Better Auth's built-in adapter (Kysely over \
                         node-postgres) writes this table, it writes them in the Node process's \
                         local time, and unless Node runs with TZ=UTC the two sides disagree on \
                         expiries by its UTC offset (run Node with TZ=UTC, or alter the columns to \
                         timestamptz, what Better Auth creates today); Drizzle and Prisma write \
                         UTC there, and need nothing"
                    );
                }
            }
        }
        if kind(st, tables.session, s(SessionColumn::Token))? != IdKind::Text {
            let column = tables
                .session
                .iter()
                .find(|c| c.name == s(SessionColumn::Token))
                .map_or_else(String::new, |c| c.type_name.clone());
            return Err(SchemaError::UnsupportedColumnType {
                table: st.to_owned(),
                column: s(SessionColumn::Token).to_owned(),
                found: column,
            });
        }
        let session_id = kind(st, tables.session, s(SessionColumn::Id))?;
        let session_user_id = kind(st, tables.session, s(SessionColumn::UserId))?;
        let user_id = kind(ut, tables.user, &schema.user[UserColumn::Id as usize])?;
        if session_user_id != user_id {
            return Err(SchemaError::IdTypeMismatch {
                table: st.to_owned(),
                column: s(SessionColumn::UserId).to_owned(),
                user_table: ut.to_owned(),
                user_column: schema.user[UserColumn::Id as usize].clone(),
            });
        }
        let layout = Layout {
            session_id,
            user_id,
            text_ids: schema.ids,
        };
        let uuid_columns = |cols: &[Column]| -> Vec<String> {
            cols.iter()
                .filter(|c| c.kind == ColumnType::Uuid)
                .map(|c| c.name.clone())
                .collect()
        };
        let mut cast = uuid_columns(tables.session);
        cast.extend(uuid_columns(tables.user));
        if layout.session_id == IdKind::Integer {
            cast.push(s(SessionColumn::Id).to_owned());
        }
        if layout.user_id == IdKind::Integer {
            cast.push(s(SessionColumn::UserId).to_owned());
            cast.push(schema.user[UserColumn::Id as usize].clone());
        }
        Ok(Build {
            schema,
            syntax,
            layout,
            text_cast: cast,
        }
        .queries([session_extra, session_keys], [user_extra, user_keys]))
    }
}

/// Statement building for one schema, dialect and layout.
struct Build<'a> {
    schema: &'a SqlSchema,
    syntax: &'a Syntax,
    layout: Layout,
    /// Columns read through a cast to text (uuid and integer ids).
    text_cast: Vec<String>,
}

/// Parameter markers `$1`…`$8` in statement templates.
fn p(n: u8) -> String {
    param_marker(n).iter().collect()
}

impl Build<'_> {
    fn q(&self, ident: &str) -> String {
        quote_with(self.syntax.quote, ident)
    }

    fn s(&self, c: SessionColumn) -> String {
        self.q(&self.schema.session[c as usize])
    }

    fn u(&self, c: UserColumn) -> String {
        self.q(&self.schema.user[c as usize])
    }

    /// A column in a select list, cast to text when its id type is not text.
    fn read(&self, alias: &str, name: &str) -> String {
        let col = format!("{alias}{}", self.q(name));
        match self.syntax.text_cast {
            Some(ty) if self.text_cast.iter().any(|c| c == name) => {
                format!("cast({col} as {ty})")
            }
            _ => col,
        }
    }

    /// An id parameter, cast to the column's type where the dialect needs it.
    fn id(&self, kind: IdKind, n: u8) -> String {
        match (self.syntax.id_casts, kind) {
            (Some((uuid, _)), IdKind::Uuid) => format!("cast({} as {uuid})", p(n)),
            (Some((_, int)), IdKind::Integer) => format!("cast({} as {int})", p(n)),
            _ => p(n),
        }
    }

    /// The date `x` (a column or a parameter) as a comparison or an ordering takes it.
    fn date(&self, x: &str) -> String {
        if self.syntax.dates_in_any_class {
            sqlite_ms(x)
        } else {
            x.to_owned()
        }
    }

    fn stmt(&self, template: &str) -> Stmt {
        Stmt::new(self.syntax, template)
    }

    /// The statements, for the tables' extra columns and the names they read as.
    fn queries(
        &self,
        [session_extra, session_keys]: [Vec<String>; 2],
        [user_extra, user_keys]: [Vec<String>; 2],
    ) -> Queries {
        use SessionColumn as S;
        let schema = self.schema;
        let table = |name: &str| table_ref(self.syntax.quote, schema.namespace.as_deref(), name);
        let st = table(&schema.session_table);
        let ut = table(&schema.user_table);
        let session_cols = |alias: &str| -> String {
            schema
                .session
                .iter()
                .chain(&session_extra)
                .map(|c| self.read(alias, c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let user_cols = |alias: &str| -> String {
            schema
                .user
                .iter()
                .chain(&user_extra)
                .map(|c| self.read(alias, c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let returning = |cols: String| {
            if self.syntax.returning {
                format!(" returning {cols}")
            } else {
                String::new()
            }
        };
        let (exp, upd, tok, sid, suid) = (
            self.s(S::ExpiresAt),
            self.s(S::UpdatedAt),
            self.s(S::Token),
            self.s(S::Id),
            self.s(S::UserId),
        );
        let uid = self.u(UserColumn::Id);
        let user_id_kind = self.layout.user_id;
        // The lookup: the session joined to its user, by token; `find_many` asks for a list.
        let lookup = format!(
            "select {}, {} from {st} s join {ut} u on u.{uid} = s.{suid} where s.{tok}",
            session_cols("s."),
            user_cols("u."),
        );
        let find = self.stmt(&format!("{lookup} = {}", p(1)));
        let find_many = (0..FIND_MANY_SIZES)
            .map(|k| Stmt::list(self.syntax, &format!("{lookup} in ("), 1 << k, ")"))
            .collect();
        // A serial id is left to the database; every other column is bound.
        let serial_session = self.layout.session_id == IdKind::Integer;
        let mut insert_cols = vec![
            (S::Token, p(2)),
            (S::UserId, self.id(user_id_kind, 3)),
            (S::ExpiresAt, p(4)),
            (S::CreatedAt, p(5)),
            (S::UpdatedAt, p(6)),
            (S::IpAddress, p(7)),
            (S::UserAgent, p(8)),
        ];
        if !serial_session {
            insert_cols.insert(0, (S::Id, self.id(self.layout.session_id, 1)));
        }
        let insert = self.stmt(&format!(
            "insert into {st} ({}) values ({}){}",
            insert_cols
                .iter()
                .map(|(c, _)| self.s(*c))
                .collect::<Vec<_>>()
                .join(", "),
            insert_cols
                .iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            returning(session_cols(""))
        ));
        let session_by_token = self.stmt(&format!(
            "select {} from {st} where {tok} = {}",
            session_cols(""),
            p(1)
        ));
        let session_by_last_insert = (!self.syntax.returning && serial_session).then(|| {
            self.stmt(&format!(
                "select {} from {st} where {sid} = last_insert_id()",
                session_cols("")
            ))
        });
        // Conditional: only a live row, only forward. $1 = new expiry, $2 = now, $3 = token.
        let extend = self.stmt(&format!(
            "update {st} set {exp} = {p1}, {upd} = {p2} where {tok} = {p3} and {e} >= {n} and {e} < {ne}{}",
            returning(session_cols("")),
            p1 = p(1),
            p2 = p(2),
            p3 = p(3),
            e = self.date(&exp),
            n = self.date(&p(2)),
            ne = self.date(&p(1)),
        ));
        let extend_many = ExtendMany {
            head: "with tas_refresh (k, e, n) as (values ".to_owned(),
            tail: format!(
                ") update {st} set {exp} = tas_refresh.e, {upd} = tas_refresh.n from tas_refresh \
                 where {st}.{tok} = tas_refresh.k and {e} >= {n} and {e} < {ne}{}",
                returning(session_cols("")),
                e = self.date(&format!("{st}.{exp}")),
                n = self.date("tas_refresh.n"),
                ne = self.date("tas_refresh.e"),
            ),
        };
        let delete = self.stmt(&format!("delete from {st} where {tok} = {}", p(1)));
        let delete_if_expired = self.stmt(&format!(
            "delete from {st} where {tok} = {} and {} < {}",
            p(1),
            self.date(&exp),
            self.date(&p(2))
        ));
        let delete_user_sessions = self.stmt(&format!(
            "delete from {st} where {suid} = {}",
            self.id(user_id_kind, 1)
        ));
        let end = |target: String| {
            self.stmt(&format!(
                "update {st} set {exp} = {}, {upd} = {} where {target} and {} > {}",
                p(1),
                p(2),
                self.date(&exp),
                self.date(&p(4))
            ))
        };
        let end_session = end(format!("{tok} = {}", p(3)));
        let end_user_sessions = end(format!("{suid} = {}", self.id(user_id_kind, 3)));
        let list = self.stmt(&format!(
            "select {} from {st} where {suid} = {} and {e} > {} order by {e}, {sid}",
            session_cols(""),
            self.id(user_id_kind, 1),
            self.date(&p(2)),
            e = self.date(&exp),
        ));
        let delete_expired = self.stmt(&format!(
            "delete from {st} where {} < {}",
            self.date(&exp),
            self.date(&p(1))
        ));
        let delete_expired_batch = if self.syntax.delete_limit {
            self.stmt(&format!(
                "delete from {st} where {} < {} limit {}",
                self.date(&exp),
                self.date(&p(1)),
                p(2)
            ))
        } else {
            self.stmt(&format!(
                "delete from {st} where {sid} in (select {sid} from {st} where {} < {} limit {})",
                self.date(&exp),
                self.date(&p(1)),
                p(2),
            ))
        };
        let serial_user = self.layout.user_id == IdKind::Integer;
        let mut user_insert_cols: Vec<(UserColumn, String)> = vec![
            (UserColumn::Name, p(2)),
            (UserColumn::Email, p(3)),
            (UserColumn::EmailVerified, p(4)),
            (UserColumn::Image, p(5)),
            (UserColumn::CreatedAt, p(6)),
            (UserColumn::UpdatedAt, p(7)),
        ];
        if !serial_user {
            user_insert_cols.insert(0, (UserColumn::Id, self.id(user_id_kind, 1)));
        }
        let insert_user = self.stmt(&format!(
            "insert into {ut} ({}) values ({}){}",
            user_insert_cols
                .iter()
                .map(|(c, _)| self.u(*c))
                .collect::<Vec<_>>()
                .join(", "),
            user_insert_cols
                .iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            returning(user_cols(""))
        ));
        let user_by_last_insert = (!self.syntax.returning && serial_user).then(|| {
            self.stmt(&format!(
                "select {} from {ut} where {uid} = last_insert_id()",
                user_cols("")
            ))
        });
        let user_by_email = self.stmt(&format!(
            "select {} from {ut} where {} = {}",
            user_cols(""),
            self.u(UserColumn::Email),
            p(1)
        ));
        let user_by_id = self.stmt(&format!(
            "select {} from {ut} where {uid} = {}",
            user_cols(""),
            self.id(user_id_kind, 1)
        ));
        let delete_user = self.stmt(&format!(
            "delete from {ut} where {uid} = {}",
            self.id(user_id_kind, 1)
        ));
        // A plugin's column, by the name it reads as (renamed columns by their field).
        let has = |names: &[&str]| {
            user_extra
                .iter()
                .zip(&user_keys)
                .find(|(_, key)| names.contains(&key.as_str()))
                .map(|(c, _)| self.q(c))
        };
        let lift_ban = has(&["banned"]).map(|banned| {
            let mut set = vec![format!("{banned} = {}", p(1))];
            for column in [
                has(&["banReason", "ban_reason"]),
                has(&["banExpires", "ban_expires"]),
            ]
            .into_iter()
            .flatten()
            {
                set.push(format!("{column} = null"));
            }
            set.push(format!("{} = {}", self.u(UserColumn::UpdatedAt), p(2)));
            self.stmt(&format!(
                "update {ut} set {} where {uid} = {}",
                set.join(", "),
                self.id(user_id_kind, 3)
            ))
        });
        Queries {
            find,
            find_many,
            insert,
            session_by_token,
            session_by_last_insert,
            extend,
            extend_many,
            delete,
            delete_if_expired,
            delete_user_sessions,
            end_session,
            end_user_sessions,
            list,
            delete_expired,
            delete_expired_batch,
            insert_user,
            user_by_email,
            user_by_last_insert,
            user_by_id,
            delete_user,
            lift_ban,
            session_types: field_types(&schema.session_fields, &session_extra, &session_keys),
            user_types: field_types(&schema.user_fields, &user_extra, &user_keys),
            session_keys,
            user_keys,
            layout: self.layout,
            namespace: schema.namespace.clone(),
        }
    }
}

/// `table` as statements name it: quoted with `quote`, after the schema's namespace if it has
/// one (`"auth"."session"`).
pub(crate) fn table_ref(quote: char, namespace: Option<&str>, table: &str) -> String {
    match namespace {
        Some(namespace) => format!(
            "{}.{}",
            quote_with(quote, namespace),
            quote_with(quote, table)
        ),
        None => quote_with(quote, table),
    }
}

/// Quotes an identifier with `quote`, doubling embedded quotes.
pub(crate) fn quote_with(quote: char, ident: &str) -> String {
    let mut out = String::with_capacity(ident.len() + 2);
    out.push(quote);
    for c in ident.chars() {
        if c == quote {
            out.push(quote);
        }
        out.push(c);
    }
    out.push(quote);
    out
}

/// Column types for Better Auth's DDL in one dialect.
pub(crate) struct DdlTypes {
    /// Text ids, tokens and other strings.
    pub(crate) text: &'static str,
    /// Short strings Better Auth declares sortable (the user's name: MySQL `varchar(255)`).
    pub(crate) short_text: &'static str,
    /// Short unique strings where the dialect cannot index `text` (MySQL `varchar(255)`).
    pub(crate) unique_text: &'static str,
    /// Text ids (MySQL `varchar(36)`).
    pub(crate) id_text: &'static str,
    /// `uuid` id columns, when the dialect has a type for them.
    pub(crate) uuid: Option<&'static str>,
    /// A serial primary key's type and clause.
    pub(crate) serial_primary: &'static str,
    /// Integer foreign keys to a serial id.
    pub(crate) integer: &'static str,
    pub(crate) date: &'static str,
    pub(crate) boolean: &'static str,
    /// ` default CURRENT_TIMESTAMP` where Better Auth adds it.
    pub(crate) date_default: &'static str,
    /// `CREATE INDEX IF NOT EXISTS` is understood.
    pub(crate) index_if_not_exists: bool,
}

/// Better Auth's DDL (spec §4.2) with the schema's names, for `CreateIfMissing`.
pub(crate) fn ddl(schema: &SqlSchema, syntax: &Syntax, types: &DdlTypes) -> [String; 3] {
    use SessionColumn as S;
    let q = |s: &str| quote_with(syntax.quote, s);
    let table = |name: &str| table_ref(syntax.quote, schema.namespace.as_deref(), name);
    let u = |c: UserColumn| q(&schema.user[c as usize]);
    let s = |c: SessionColumn| q(&schema.session[c as usize]);
    let (id_col, fk_type) = match schema.ids {
        IdFormat::Serial => (types.serial_primary.to_owned(), types.integer),
        IdFormat::Uuid => match types.uuid {
            Some(uuid) => (format!("{uuid} not null primary key"), uuid),
            None => (
                format!("{} not null primary key", types.id_text),
                types.id_text,
            ),
        },
        IdFormat::Text => (
            format!("{} not null primary key", types.id_text),
            types.id_text,
        ),
    };
    let DdlTypes {
        text,
        short_text,
        unique_text,
        date,
        boolean,
        date_default,
        ..
    } = types;
    let user = format!(
        "create table if not exists {} ({} {id_col}, {} {short_text} not null, {} {unique_text} not null unique, {} {boolean} not null, {} {text}, {} {date}{date_default} not null, {} {date}{date_default} not null)",
        table(&schema.user_table),
        u(UserColumn::Id),
        u(UserColumn::Name),
        u(UserColumn::Email),
        u(UserColumn::EmailVerified),
        u(UserColumn::Image),
        u(UserColumn::CreatedAt),
        u(UserColumn::UpdatedAt),
    );
    let session = format!(
        // Every date column has an explicit default: on MySQL and MariaDB before 10.10 with
        // `explicit_defaults_for_timestamp` off, the first `timestamp` column without one
        // silently becomes `ON UPDATE CURRENT_TIMESTAMP`, and Better Auth's `update-session`
        // (which does not set `expiresAt`) would then expire the session it updates.
        "create table if not exists {} ({} {id_col}, {} {date}{date_default} not null, {} {unique_text} not null unique, {} {date}{date_default} not null, {} {date}{date_default} not null, {} {text}, {} {text}, {} {fk_type} not null references {} ({}) on delete cascade)",
        table(&schema.session_table),
        s(S::Id),
        s(S::ExpiresAt),
        s(S::Token),
        s(S::CreatedAt),
        s(S::UpdatedAt),
        s(S::IpAddress),
        s(S::UserAgent),
        s(S::UserId),
        table(&schema.user_table),
        u(UserColumn::Id),
    );
    let index = format!(
        "create index {}{} on {} ({})",
        if types.index_if_not_exists {
            "if not exists "
        } else {
            ""
        },
        q(&format!(
            "{}_{}_idx",
            schema.session_table,
            schema.session[S::UserId as usize]
        )),
        table(&schema.session_table),
        s(S::UserId),
    );
    [user, session, index]
}

/// Warns about columns the store does not write (plugins', the app's) that are `NOT NULL`
/// without a default: Better Auth fills them in JavaScript (`defaultValue`), and its migration
/// creates a table's required fields without a database default, so the store's inserts
/// (`what`) fail.
fn warn_required_extra(table: &str, have: &[Column], extra: &[String], what: &str) {
    let required: Vec<&str> = have
        .iter()
        .filter(|c| c.required && extra.contains(&c.name))
        .map(|c| c.name.as_str())
        .collect();
    if !required.is_empty() {
        tracing::warn!(
            table = %table,
            columns = %required.join(", "),
            "{what} made from Rust will fail: these columns are NOT NULL without a default, and \
             the store does not write them (Better Auth fills them in JavaScript); give them a \
             default in the database, or allow NULL"
        );
    }
}

/// Checks that the table has every column the schema names, and returns the others (plugin
/// columns), in table order.
fn check_columns(
    table: &str,
    have: &[Column],
    want: &[String],
    token_column: Option<&str>,
) -> Result<Vec<String>, SchemaError> {
    if have.is_empty() {
        return Err(SchemaError::MissingTable {
            table: table.to_owned(),
        });
    }
    let has = |name: &str| have.iter().any(|h| h.name == name);
    for column in want {
        if !has(column) {
            let hint = if token_column == Some(column.as_str()) && has("id") {
                " (this looks like Better Auth's pre-1.0 layout, where \"id\" held the cookie token)"
            } else if has(&snake(column)) && *column != snake(column) {
                " (the table uses snake_case names, as Better Auth's Drizzle generator writes them: use SqlSchema::drizzle())"
            } else if column.contains('_')
                && have
                    .iter()
                    .any(|h| snake(&h.name) == *column && h.name != *column)
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
    Ok(have
        .iter()
        .filter(|h| !want.contains(&h.name))
        .map(|h| h.name.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::dialect::Placeholder;

    /// As Better Auth's Kysely adapter: booleans and JSON converted where the database has
    /// none of its own (`supportsBooleans`, `supportsJSON` false), arrays everywhere.
    #[test]
    fn field_types_read_as_better_auths_adapter() {
        use serde_json::json;
        let read = |kind: FieldType, value, native| kind.read(value, native);
        assert_eq!(read(FieldType::Boolean, json!(1), false), json!(true));
        assert_eq!(read(FieldType::Boolean, json!(2), false), json!(false));
        assert_eq!(read(FieldType::Boolean, json!(1), true), json!(1));
        assert_eq!(read(FieldType::Boolean, json!(true), false), json!(true));
        assert_eq!(
            read(FieldType::Json, json!(r#"{"a":1}"#), false),
            json!({"a": 1})
        );
        assert_eq!(read(FieldType::Json, json!("{"), false), json!(null));
        assert_eq!(
            read(FieldType::Json, json!(r#"{"a":1}"#), true),
            json!(r#"{"a":1}"#),
            "PostgreSQL: as the column gives it"
        );
        assert_eq!(
            read(FieldType::Array, json!(r#"["x"]"#), true),
            json!(["x"])
        );
        assert_eq!(read(FieldType::Array, json!(null), false), json!(null));
    }

    const PG: Syntax = Syntax {
        quote: '"',
        placeholder: Placeholder::DollarNumbered,
        returning: true,
        delete_limit: false,
        id_casts: Some(("uuid", "integer")),
        text_cast: Some("text"),
        dates_in_any_class: false,
        date_types: &[],
    };
    const MY: Syntax = Syntax {
        quote: '`',
        placeholder: Placeholder::Question,
        returning: false,
        delete_limit: true,
        id_casts: None,
        text_cast: Some("char"),
        dates_in_any_class: false,
        date_types: &[],
    };

    fn cols(names: &[&str], id: ColumnType) -> Vec<Column> {
        names
            .iter()
            .map(|n| Column {
                name: (*n).to_owned(),
                kind: if *n == "id" || *n == "userId" {
                    id.clone()
                } else {
                    ColumnType::Text
                },
                type_name: "t".into(),
                required: false,
            })
            .collect()
    }

    /// With a schema name every statement and the DDL name both tables in that schema, and no
    /// statement names either table without it (the connection's `search_path` would decide).
    #[test]
    fn a_schema_name_qualifies_every_table() {
        let schema = SqlSchema::better_auth().schema_name("auth");
        let q = Queries::checked(
            &schema,
            &PG,
            &Tables {
                session: &cols(&SESSION_CAMEL, ColumnType::Text),
                user: &cols(&USER_CAMEL, ColumnType::Text),
            },
        )
        .unwrap();
        let types = DdlTypes {
            text: "text",
            short_text: "text",
            unique_text: "text",
            id_text: "text",
            uuid: None,
            serial_primary: "serial",
            integer: "integer",
            date: "timestamptz",
            boolean: "boolean",
            date_default: "",
            index_if_not_exists: true,
        };
        let mut all: Vec<String> = [
            &q.find,
            &q.insert,
            &q.extend,
            &q.delete,
            &q.delete_user_sessions,
            &q.list,
            &q.insert_user,
            &q.user_by_id,
            &q.delete_expired,
            &q.delete_expired_batch,
            &q.delete_if_expired,
            &q.end_session,
            &q.end_user_sessions,
            &q.session_by_token,
            &q.user_by_email,
            &q.delete_user,
        ]
        .iter()
        .map(|stmt| stmt.sql.clone())
        .collect();
        all.extend(q.find_many.iter().map(|stmt| stmt.sql.clone()));
        all.push(format!("{}{}", q.extend_many.head, q.extend_many.tail));
        all.extend(ddl(&schema, &PG, &types));
        for sql in &all {
            assert!(sql.contains(r#""auth"."#), "{sql}");
            let rest = sql
                .replace(r#""auth"."session""#, "")
                .replace(r#""auth"."user""#, "");
            assert!(
                !rest.contains(r#""session""#) && !rest.contains(r#""user""#),
                "{sql}"
            );
        }
        assert_eq!(q.namespace.as_deref(), Some("auth"));
        assert_eq!(schema.shown("session"), "auth.session");
        assert_eq!(table_ref('"', Some(r#"a"b"#), "t"), r#""a""b"."t""#);
    }

    #[test]
    fn positional_placeholders_bind_a_repeated_parameter_twice() {
        let q = Queries::checked(
            &SqlSchema::better_auth(),
            &MY,
            &Tables {
                session: &cols(&SESSION_CAMEL, ColumnType::Text),
                user: &cols(&USER_CAMEL, ColumnType::Text),
            },
        )
        .unwrap();
        assert_eq!(
            q.extend.sql,
            "update `session` set `expiresAt` = ?, `updatedAt` = ? where `token` = ? and `expiresAt` >= ? and `expiresAt` < ?"
        );
        assert_eq!(q.extend.binds, [0, 1, 2, 1, 0]);
    }

    #[test]
    fn uuid_ids_are_cast_in_and_out() {
        let q = Queries::checked(
            &SqlSchema::better_auth(),
            &PG,
            &Tables {
                session: &cols(&SESSION_CAMEL, ColumnType::Uuid),
                user: &cols(&USER_CAMEL, ColumnType::Uuid),
            },
        )
        .unwrap();
        assert!(
            q.find
                .sql
                .starts_with(r#"select cast(s."id" as text), s."token", cast(s."userId" as text)"#),
            "{}",
            q.find.sql
        );
        assert!(
            q.list.sql.contains(r#""userId" = cast($1 as uuid)"#),
            "{}",
            q.list.sql
        );
        assert_eq!(q.layout.format(), IdFormat::Uuid);
    }

    #[test]
    fn mismatched_id_types_are_named() {
        let mut session = cols(&SESSION_CAMEL, ColumnType::Text);
        session[2].kind = ColumnType::Uuid;
        let err = Queries::checked(
            &SqlSchema::better_auth(),
            &PG,
            &Tables {
                session: &session,
                user: &cols(&USER_CAMEL, ColumnType::Text),
            },
        )
        .unwrap_err();
        assert!(matches!(err, SchemaError::IdTypeMismatch { .. }), "{err}");
    }
}
