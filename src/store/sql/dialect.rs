//! What differs between SQL databases: statement syntax, binding, reading a column, and reading
//! the schema. Everything else (statements, the schema check, the session logic) is shared in
//! [`super`].
//!
//! The trait is sealed: its items are `pub` only so that the public [`Dialect`](super::Dialect)
//! can name it as a supertrait, and nothing outside this crate can reach them.
#![allow(unreachable_pub)]

use std::future::Future;

use serde_json::Value;
use time::OffsetDateTime;

use crate::error::StoreError;

/// One statement parameter.
#[derive(Clone, Copy, Debug)]
pub enum Param<'a> {
    /// Text (tokens, ids, names): ids in `uuid` or integer columns are cast in the SQL.
    Text(&'a str),
    /// Text or `NULL`.
    OptText(Option<&'a str>),
    /// A boolean (an integer `0`/`1` where the dialect has no boolean type).
    Bool(bool),
    /// A date, bound as the dialect stores it.
    Date(OffsetDateTime),
    /// An integer (a `LIMIT`).
    Int(i64),
}

/// How a dialect writes the `n`-th parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placeholder {
    /// `?1`, `?2` (SQLite).
    QuestionNumbered,
    /// `$1`, `$2` (PostgreSQL).
    DollarNumbered,
    /// `?` in order of appearance (MySQL): a parameter used twice is bound twice.
    Question,
}

impl Placeholder {
    /// Writes the placeholder of parameter `n` (1-based) at the end of `sql`.
    fn push(self, sql: &mut String, n: usize) {
        match self {
            Self::QuestionNumbered => {
                sql.push('?');
                sql.push_str(&n.to_string());
            }
            Self::DollarNumbered => {
                sql.push('$');
                sql.push_str(&n.to_string());
            }
            Self::Question => sql.push('?'),
        }
    }
}

/// The SQL spelling of a dialect.
#[derive(Clone, Copy, Debug)]
pub struct Syntax {
    /// `"` (SQLite, PostgreSQL) or `` ` `` (MySQL).
    pub quote: char,
    /// How parameters are written.
    pub placeholder: Placeholder,
    /// `UPDATE … RETURNING` and `INSERT … RETURNING` are supported.
    pub returning: bool,
    /// `DELETE … LIMIT n` on one table (MySQL), rather than a sub-select.
    pub delete_limit: bool,
    /// The type names an id parameter is cast to, per id kind: `(uuid, integer)`; `None` means
    /// text binds compare as they are.
    pub id_casts: Option<(&'static str, &'static str)>,
    /// The type name that casts an id column back to text when it is read (`None`: the dialect's
    /// reader converts integers itself).
    pub text_cast: Option<&'static str>,
    /// Dates may be held in any storage class (SQLite): a date in a comparison or an ordering
    /// is first brought to unix milliseconds, whatever form it was written in.
    pub dates_in_any_class: bool,
    /// The column types a date column may have, by the start of their name as the database
    /// reports it (lower case); empty: any (SQLite, which takes dates in any class).
    pub date_types: &'static [&'static str],
}

/// A statement in the dialect's syntax and the order its placeholders take parameters in.
#[derive(Clone, Debug)]
pub struct Stmt {
    /// The SQL text.
    pub sql: String,
    /// For each placeholder, in order, the index of the parameter it takes.
    pub binds: Vec<usize>,
}

/// The SQL of a refresh of many sessions in one statement: [`head`](Self::head), then one
/// `(token, new expiry, now)` row per session of a `VALUES` list, then [`tail`](Self::tail).
#[derive(Debug)]
pub struct ExtendMany {
    /// Up to and including `values `.
    pub head: String,
    /// From the `)` that closes the common table expression to the end.
    pub tail: String,
}

/// The marker that statement templates use for parameter `n` (1-based, one digit): NUL cannot
/// appear in any identifier the schema accepts, so it never collides with a name.
pub const fn param_marker(n: u8) -> [char; 2] {
    ['\0', (b'0' + n) as char]
}

impl Stmt {
    /// Turns a template whose parameters are [`param_marker`]s into the dialect's syntax.
    pub fn new(syntax: &Syntax, template: &str) -> Self {
        let mut sql = String::with_capacity(template.len() + 8);
        let mut binds = Vec::new();
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            if c != '\0' {
                sql.push(c);
                continue;
            }
            let n = chars
                .next()
                .and_then(|d| d.to_digit(10))
                .expect("a parameter marker is NUL and one digit") as usize;
            syntax.placeholder.push(&mut sql, n);
            binds.push(n - 1);
        }
        if syntax.placeholder != Placeholder::Question {
            // Numbered placeholders take each parameter once, in order.
            let count = binds.iter().max().map_or(0, |m| m + 1);
            binds = (0..count).collect();
        }
        Self { sql, binds }
    }
}

impl Stmt {
    /// `head`, a list of `n` placeholders taking parameters 1 to `n` in order, then `tail`, for
    /// statements with a variable-length `IN (…)` list. Neither part may hold a
    /// [`param_marker`].
    pub fn list(syntax: &Syntax, head: &str, n: usize, tail: &str) -> Self {
        let mut sql = String::with_capacity(head.len() + tail.len() + 5 * n);
        sql.push_str(head);
        for i in 1..=n {
            if i > 1 {
                sql.push_str(", ");
            }
            syntax.placeholder.push(&mut sql, i);
        }
        sql.push_str(tail);
        Self {
            sql,
            binds: (0..n).collect(),
        }
    }
}

/// The kind of a column as the store uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// Text of any length.
    Text,
    /// PostgreSQL `uuid`.
    Uuid,
    /// An integer type.
    Integer,
    /// Anything else, as the database names it.
    Other(String),
}

/// One column of a table, as the database reports it.
#[derive(Clone, Debug)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// Its type.
    pub kind: ColumnType,
    /// The database's own name for the type (`uuid`, `integer`, `varchar(36)`, …).
    pub type_name: String,
    /// `NOT NULL` without a default (nor generated, nor an automatic id): an insert that
    /// leaves it out fails.
    pub required: bool,
}

/// A statement's effect: the rows it changed.
pub type Affected = u64;

/// A SQL database behind the shared store. Sealed: implemented by this crate's dialects only.
pub trait Backend: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// The driver's row type.
    type Row: Send + 'static;

    /// The dialect's name, for messages (`SQLite`, `PostgreSQL`, `MySQL`).
    const NAME: &'static str;

    /// Whether Better Auth's adapter takes booleans and JSON from this database's driver as
    /// they come (`supportsBooleans`, `supportsJSON`: PostgreSQL), rather than converting
    /// numbers and text ([`FieldType`](super::FieldType)).
    const NATIVE_TYPES: bool = false;

    /// How statements are spelled.
    const SYNTAX: Syntax;

    /// Runs a statement that returns at most one row. `write` says it changes data (a dialect
    /// may send writes to another connection).
    fn fetch_optional<'a>(
        &'a self,
        operation: &'static str,
        stmt: &'a Stmt,
        params: &'a [Param<'a>],
        write: bool,
    ) -> impl Future<Output = Result<Option<Self::Row>, StoreError>> + Send + 'a;

    /// Runs a query and returns all its rows.
    fn fetch_all<'a>(
        &'a self,
        operation: &'static str,
        stmt: &'a Stmt,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = Result<Vec<Self::Row>, StoreError>> + Send + 'a;

    /// Runs a statement and returns how many rows it changed.
    fn execute<'a>(
        &'a self,
        operation: &'static str,
        stmt: &'a Stmt,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = Result<Affected, StoreError>> + Send + 'a;

    /// Runs the store's conditional refresh, `stmt` ([`Queries::extend`](super::schema::Queries))
    /// with the new expiry, now, and the session's storage key, and returns the row it changed.
    /// SQLite batches the refreshes waiting for its writer connection.
    fn extend<'a>(
        &'a self,
        stmt: &'a Stmt,
        key: &'a str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<Self::Row>, StoreError>> + Send + 'a {
        async move {
            let params = [Param::Date(expires_at), Param::Date(now), Param::Text(key)];
            self.fetch_optional("extend", stmt, &params, true).await
        }
    }

    /// Called once the store's statements are built, with the SQL around the `VALUES` rows of
    /// a refresh of many sessions ([`Queries::extend_many`](super::schema::Queries)): a dialect
    /// may start background work that needs them (SQLite's refresh batcher).
    fn ready(&mut self, extend_many: &ExtendMany) {
        let _ = extend_many;
    }

    /// Runs `insert` then, on the same connection, `select` (which reads the new row back by the
    /// id the database generated), for dialects without `INSERT … RETURNING`.
    fn insert_then_select<'a>(
        &'a self,
        operation: &'static str,
        insert: &'a Stmt,
        params: &'a [Param<'a>],
        select: &'a Stmt,
    ) -> impl Future<Output = Result<Option<Self::Row>, StoreError>> + Send + 'a {
        let _ = (insert, params, select);
        async move {
            Err(StoreError::backend(
                operation,
                std::io::Error::other(format!("{} inserts use RETURNING", Self::NAME)),
            ))
        }
    }

    /// The query that lists a table's columns in table order, the table's name its first
    /// parameter (and the schema's namespace, or `NULL`, its second where
    /// [`NAMESPACES`](Self::NAMESPACES)): each row the column's name, its data type, and
    /// optionally the type as the database spells it in full (`varchar(36)`); the data type
    /// stands for both otherwise.
    const COLUMNS_SQL: &'static str;

    /// The parameters [`COLUMNS_SQL`](Self::COLUMNS_SQL)'s placeholders take, in order.
    const COLUMNS_BINDS: &'static [usize] = &[0];

    /// Whether tables may be named in a schema of their own ([`SqlSchema::schema_name`],
    /// PostgreSQL's).
    ///
    /// [`SqlSchema::schema_name`]: super::SqlSchema::schema_name
    const NAMESPACES: bool = false;

    /// The kind of a column from its data type and full type name, as the dialect's readers and
    /// binds treat it.
    fn column_kind(data_type: &str, full_type: &str) -> ColumnType;

    /// The columns of `table` (in schema `namespace` if given) in table order; empty when the
    /// table does not exist.
    fn columns<'a>(
        &'a self,
        table: &'a str,
        namespace: Option<&'a str>,
    ) -> impl Future<Output = Result<Vec<Column>, StoreError>> + Send + 'a {
        async move {
            let stmt = Stmt {
                sql: Self::COLUMNS_SQL.to_owned(),
                binds: Self::COLUMNS_BINDS.to_vec(),
            };
            let rows = self
                .fetch_all(
                    "read schema",
                    &stmt,
                    &[Param::Text(table), Param::OptText(namespace)],
                )
                .await?;
            let text = |row: &Self::Row, idx: usize| {
                Self::text(row, idx)
                    .map_err(|e| StoreError::backend("read schema", std::io::Error::other(e)))?
                    .ok_or_else(|| {
                        StoreError::backend("read schema", std::io::Error::other("NULL"))
                    })
            };
            rows.iter()
                .map(|row| {
                    let name = text(row, 0)?;
                    let data_type = text(row, 1)?;
                    let type_name = text(row, 2).unwrap_or_else(|_| data_type.clone());
                    let required = text(row, 3).is_ok_and(|r| r == "yes");
                    Ok(Column {
                        name,
                        kind: Self::column_kind(&data_type, &type_name),
                        type_name,
                        required,
                    })
                })
                .collect()
        }
    }

    /// Better Auth's DDL for `schema` in this dialect.
    fn ddl(&self, schema: &super::SqlSchema) -> [String; 3];

    /// Runs DDL (schema creation).
    fn run_ddl<'a>(
        &'a self,
        statement: &'a str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;

    /// Reads text; an integer (a serial id) as its decimal form. `Ok(None)` is SQL `NULL`.
    fn text(row: &Self::Row, idx: usize) -> Result<Option<String>, String>;

    /// Reads a date in any form the dialect's writers use. `Ok(None)` is SQL `NULL`.
    fn date(row: &Self::Row, idx: usize) -> Result<Option<OffsetDateTime>, String>;

    /// Reads a boolean (native, or an integer `0`/`1`).
    fn boolean(row: &Self::Row, idx: usize) -> Result<Option<bool>, String>;

    /// Reads any column as JSON (plugin columns).
    fn json(row: &Self::Row, idx: usize) -> Value;
}

/// A driver's name for a value's type, upper-cased on the stack: the row readers ask for it on
/// every column of every row a lookup returns, and should not allocate to do so. A name longer
/// than any type the readers know reads as `""` (an unknown type, as any other).
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) struct TypeName {
    buf: [u8; 32],
    len: usize,
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl TypeName {
    pub(crate) fn new(name: &str) -> Self {
        let mut buf = [0u8; 32];
        let len = match buf.get_mut(..name.len()) {
            Some(out) => {
                out.copy_from_slice(name.as_bytes());
                out.make_ascii_uppercase();
                name.len()
            }
            None => 0,
        };
        Self { buf, len }
    }

    pub(crate) fn as_str(&self) -> &str {
        // ASCII upper-casing keeps UTF-8 valid, and `len` ends where `name` ended.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}
