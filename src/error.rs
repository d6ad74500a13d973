//! Error types. Each message says what is wrong and what to do about it.

use std::error::Error as StdError;

/// `Debug` prints the message: a `main` returning `Result<(), Box<dyn Error>>` shows
/// `Error: <what to fix>` rather than a variant name. `{:#?}` adds the error's chain of
/// sources, one per line.
macro_rules! debug_is_the_message {
    ($($ty:ty),*) => {$(
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(self, f)?;
                if f.alternate() {
                    let mut source = StdError::source(self);
                    while let Some(cause) = source {
                        write!(f, "\n  caused by: {cause}")?;
                        source = cause.source();
                    }
                }
                Ok(())
            }
        }
    )*};
}

debug_is_the_message!(ConfigError, StoreError, SchemaError, SessionError);

/// A boxed error from a store's driver, kept as the source.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The configuration cannot be used. Returned by [`SessionConfig::build`](crate::SessionConfigBuilder::build)
/// and friends at start-up, never while serving.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No secret was given.
    #[error(
        "no session secret is configured: set BETTER_AUTH_SECRET to the same value as your \
         Better Auth server (at least 32 random bytes, e.g. `openssl rand -base64 32`); there is \
         no fallback secret"
    )]
    MissingSecret,
    /// The secret is shorter than 32 bytes.
    #[error(
        "the session secret is {len} bytes long; set BETTER_AUTH_SECRET to at least 32 random \
         bytes (e.g. `openssl rand -base64 32`)"
    )]
    WeakSecret {
        /// The length of the rejected secret, in bytes.
        len: usize,
    },
    /// The secret is Better Auth's published development default.
    #[error(
        "the session secret is Better Auth's public default secret, which anyone can use to \
         forge sessions; set BETTER_AUTH_SECRET to a private value of at least 32 random bytes"
    )]
    DefaultSecret,
    /// The environment variable holding the secret is not valid Unicode.
    #[error("{var} is not valid UTF-8; set it to a printable secret of at least 32 bytes")]
    NotUnicode {
        /// The variable's name.
        var: &'static str,
    },
    /// An option has a value that cannot work.
    #[error("invalid session option `{option}`: {reason}")]
    Invalid {
        /// The option's name.
        option: &'static str,
        /// Why the value is refused and what would work.
        reason: String,
    },
}

/// A store operation failed. The driver's error is kept as the source.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached or the query failed.
    #[error("session store {operation} failed: {source}")]
    Backend {
        /// What was being done ("find", "create", …).
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// A row exists but cannot be read as a Better Auth session (an unparsable date, a wrong
    /// type). The session is treated as absent.
    #[error("session store returned an unreadable row: {reason}")]
    Corrupt {
        /// What could not be read.
        reason: String,
    },
    /// The database schema does not match what the store was configured to expect. Raised at
    /// start-up, so "session not found" on every request becomes one loud error instead.
    #[error("{0}")]
    Schema(#[from] SchemaError),
    /// The store refused the connection for a reason the user can fix (TLS, a connection
    /// pooler's mode): the message says what to change.
    #[error("cannot use the session store: {problem}; {fix}")]
    Connect {
        /// What went wrong.
        problem: String,
        /// What to change.
        fix: String,
        /// The driver's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// A store call took longer than its deadline.
    #[error("session store {operation} timed out after {millis} ms")]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// The deadline that passed.
        millis: u128,
    },
}

impl StoreError {
    /// Wraps a driver error.
    pub fn backend(operation: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            operation,
            source: source.into(),
        }
    }
}

/// The database's tables do not have the shape of Better Auth's schema.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// A table is missing.
    #[error(
        "table \"{table}\" is missing: run Better Auth's migrations (`npx @better-auth/cli migrate`) \
         or let the store create the schema"
    )]
    MissingTable {
        /// The table's name.
        table: String,
    },
    /// A column is missing from a table.
    #[error(
        "column \"{column}\" is missing from table \"{table}\"{hint}: the store looks sessions up \
         by this column, so every lookup would say \"not found\"; migrate the table to Better \
         Auth's current schema or configure the column name"
    )]
    MissingColumn {
        /// The table's name.
        table: String,
        /// The column's name.
        column: String,
        /// Extra advice for known legacy layouts.
        hint: &'static str,
    },
    /// A column named for a Better Auth field
    /// ([`SqlSchema::user_field_column`](crate::store::SqlSchema::user_field_column)) is
    /// missing from its table.
    #[error(
        "column \"{column}\", where Better Auth's field \"{field}\" is configured to live, is \
         missing from table \"{table}\": name the column the plugin's `schema` option gives the \
         field, or run the plugin's migration"
    )]
    MissingFieldColumn {
        /// The table's name.
        table: String,
        /// The configured column.
        column: String,
        /// Better Auth's name of the field.
        field: String,
    },
    /// A renamed field ([`SqlSchema::user_field_column`](crate::store::SqlSchema::user_field_column))
    /// that would read one way and write another.
    #[error("field \"{field}\" in column \"{column}\" cannot be configured: {reason}")]
    InvalidFieldColumn {
        /// Better Auth's name of the field.
        field: String,
        /// The configured column.
        column: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An id or token column has a type the store cannot use.
    #[error(
        "column \"{column}\" of table \"{table}\" has type {found}: ids must be text, uuid or \
         integer columns (Better Auth's default, `generateId: \"uuid\"` and `\"serial\"`), and \
         the token a text column; check that the store points at Better Auth's tables"
    )]
    UnsupportedColumnType {
        /// The table's name.
        table: String,
        /// The column's name.
        column: String,
        /// The column's type as the database names it.
        found: String,
    },
    /// The session table's user id column and the user table's id column have different
    /// types (one `uuid`, the other `text`, say), so no session can join its user.
    #[error(
        "column \"{column}\" of table \"{table}\" and column \"{user_column}\" of table \
         \"{user_table}\" have different types: a session must reference its user with the \
         user id's own type; migrate both with the same `generateId` setting"
    )]
    IdTypeMismatch {
        /// The session table.
        table: String,
        /// Its user id column.
        column: String,
        /// The user table.
        user_table: String,
        /// Its id column.
        user_column: String,
    },
    /// [`SqlSchema::schema_name`](crate::store::SqlSchema::schema_name) was given to a store
    /// whose database has no schemas of that kind (Better Auth's `database.schemaName` is
    /// PostgreSQL's alone).
    #[error(
        "schema_name({namespace:?}) is PostgreSQL's (Better Auth's `database.schemaName`); \
         {database} has no such schemas: remove it (on MySQL, name the database in the URL)"
    )]
    NamespaceUnsupported {
        /// The schema name given.
        namespace: String,
        /// The store's database.
        database: &'static str,
    },
    /// A configured table or column name cannot be used (empty, or holding a NUL character).
    #[error("{name:?} cannot be a table or column name: names must be non-empty and hold no NUL")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A date column has a type the store cannot compare or write dates in (`date`, `text`,
    /// `bigint`): lookups would fail, or the list and refresh would.
    #[error(
        "column \"{column}\" of table \"{table}\" has type {found}: Better Auth's dates are \
         timestamptz (or timestamp) columns on PostgreSQL and timestamp(3) (or datetime(3)) on \
         MySQL; migrate the column to one of those"
    )]
    UnsupportedDateType {
        /// The table's name.
        table: String,
        /// The column's name.
        column: String,
        /// The column's type as the database names it.
        found: String,
    },
    /// The SQLite session table's dates are all stored in another form than the schema says
    /// ([`SqlSchema::sqlite_dates`](crate::store::SqlSchema::sqlite_dates)): the store would
    /// write dates that Better Auth's adapter reads wrongly (Drizzle's seconds as milliseconds,
    /// say).
    #[error(
        "column \"{column}\" of table \"{table}\" holds dates as {found}, but the store is set to \
         write {configured}: set SqlSchema::sqlite_dates({fix}) (or the preset of the adapter \
         that made the table)"
    )]
    DateFormatMismatch {
        /// The session table.
        table: String,
        /// Its expiry column.
        column: String,
        /// The form the stored rows have.
        found: &'static str,
        /// The form the store was set to write.
        configured: &'static str,
        /// The setting that matches the rows.
        fix: &'static str,
    },
}

/// What went wrong in a sign-in, sign-out or revocation made from Rust.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A health check found the store answering but inconsistent.
    #[error("session store health check failed: {0}")]
    HealthCheck(&'static str),
    /// The user is banned (Better Auth's admin plugin): no session was created. Answer as
    /// Better Auth does, `403` with [`code`](Self::code) `BANNED_USER` and
    /// [`BANNED_USER_MESSAGE`](Self::BANNED_USER_MESSAGE).
    #[error("the user is banned{}", ban_suffix(.0))]
    Banned(crate::fields::Ban),
    /// The request's session is older than `freshAge`
    /// ([`fresh_age`](crate::SessionConfigBuilder::fresh_age)) for an operation Better Auth
    /// keeps to fresh sessions (listing the user's sessions, with their tokens): answer `403`
    /// with [`code`](Self::code) `SESSION_NOT_FRESH`, as Better Auth does; the user signs in
    /// again.
    #[error("the session is not fresh enough for this; sign in again")]
    NotFresh,
    /// The user has two-factor authentication on (`twoFactorEnabled`, Better Auth's
    /// two-factor plugin) and the sign-in did not say the second factor was verified: no
    /// session was created. Verify it, then sign in with
    /// [`SignIn::second_factor_verified`](crate::SignIn::second_factor_verified). (Better
    /// Auth's own password sign-in answers `200` with `{"twoFactorRedirect":true}` here and
    /// continues at its `/two-factor/verify-*` endpoints.) [`status`](Self::status) is `403`.
    #[error(
        "the user has two-factor authentication on: verify the second factor, then sign in \
         with SignIn::second_factor_verified"
    )]
    SecondFactorRequired,
}

fn ban_suffix(ban: &crate::fields::Ban) -> String {
    match (&ban.reason, ban.expires) {
        (Some(reason), Some(until)) => format!(" until {until} ({reason})"),
        (Some(reason), None) => format!(" ({reason})"),
        (None, Some(until)) => format!(" until {until}"),
        (None, None) => String::new(),
    }
}

impl SessionError {
    /// Better Auth's default message for a banned user's sign-in (the admin plugin's
    /// `bannedUserMessage`).
    pub const BANNED_USER_MESSAGE: &'static str = "You have been banned from this application. \
        Please contact support if you believe this is an error.";

    /// Better Auth's error code for this error, when it has one (`"BANNED_USER"`).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::Banned(_) => Some("BANNED_USER"),
            Self::NotFresh => Some("SESSION_NOT_FRESH"),
            _ => None,
        }
    }

    /// The HTTP status to answer this error with: `403` for a banned user and a session that is
    /// not fresh (as Better Auth), and for a second factor not verified (this crate's choice:
    /// Better Auth's own sign-in answers `200 {"twoFactorRedirect":true}`); `500` otherwise (a
    /// store failure is the server's problem).
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::Banned(_) | Self::NotFresh | Self::SecondFactorRequired => {
                http::StatusCode::FORBIDDEN
            }
            _ => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
