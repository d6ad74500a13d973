//! The session and user records, shaped like Better Auth's `session` and `user` rows.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::time_fmt;

/// The key a store knows a session by: the token the cookie carries, or, with
/// [`hash_tokens_at_rest`](crate::SessionConfigBuilder::hash_tokens_at_rest), its SHA-256.
///
/// A raw token and a storage key look alike (both are strings, and equal unless tokens are
/// hashed), so they have different types: [`SessionStore`](crate::SessionStore) methods take a
/// key, [`SessionConfig::storage_key`](crate::SessionConfig::storage_key) turns a token into
/// one, and [`Session::storage_key`] gives a stored session's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey<'a>(Cow<'a, str>);

impl<'a> StorageKey<'a> {
    /// A key exactly as the store holds it (a [`Session::token`] field read from the store).
    pub fn new(key: impl Into<Cow<'a, str>>) -> Self {
        Self(key.into())
    }

    pub(crate) fn from_cow(key: Cow<'a, str>) -> Self {
        Self(key)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same key, owning its text.
    pub fn into_owned(self) -> StorageKey<'static> {
        StorageKey(Cow::Owned(self.0.into_owned()))
    }
}

impl std::fmt::Display for StorageKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One row of Better Auth's `session` table (spec §4.1).
///
/// `token` is what the cookie carries (its [storage key](StorageKey) when tokens are hashed at
/// rest); `id` is an unrelated primary key. Since Better Auth 1.0 the two are separate, and a
/// store that looks sessions up by `id` finds nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Primary key, 32 alphanumeric characters when this crate creates it.
    pub id: String,
    /// The secret bearer token the session cookie carries (`TOKEN.SIGNATURE`), as the store
    /// holds it: the token itself, or its SHA-256 when tokens are hashed at rest (see
    /// [`storage_key`](Self::storage_key)).
    pub token: String,
    /// The owner, `user.id`.
    pub user_id: String,
    /// When the session stops being valid; extended by refreshes.
    #[serde(with = "time_fmt::iso_ms")]
    pub expires_at: OffsetDateTime,
    /// When the session was created (sign-in time; never changes).
    #[serde(with = "time_fmt::iso_ms")]
    pub created_at: OffsetDateTime,
    /// When the row was last written.
    #[serde(with = "time_fmt::iso_ms")]
    pub updated_at: OffsetDateTime,
    /// Client IP address at sign-in, when known. Better Auth writes `""` when unknown.
    #[serde(default)]
    pub ip_address: Option<String>,
    /// Client `User-Agent` at sign-in, when known. Better Auth writes `""` when unknown.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Columns beyond Better Auth's core schema (plugins such as `impersonatedBy` or
    /// `activeOrganizationId`), by column name, or by Better Auth's field name where the
    /// plugin renamed its column (`SqlSchema::session_field_column`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One row of Better Auth's `user` table (spec §4.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Primary key.
    pub id: String,
    /// Display name (required by Better Auth; may be empty).
    pub name: String,
    /// E-mail address, stored lower-cased by Better Auth.
    pub email: String,
    /// Whether the address was verified.
    pub email_verified: bool,
    /// Avatar URL.
    #[serde(default)]
    pub image: Option<String>,
    /// When the user was created.
    #[serde(with = "time_fmt::iso_ms")]
    pub created_at: OffsetDateTime,
    /// When the user was last updated.
    #[serde(with = "time_fmt::iso_ms")]
    pub updated_at: OffsetDateTime,
    /// Columns beyond Better Auth's core schema (for example the admin plugin's `role` and
    /// `banned`), by column name, or by Better Auth's field name where the plugin renamed its
    /// column (`SqlSchema::user_field_column`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl User {
    /// A new user with a fresh 32-character id, `created_at = updated_at = now`, the e-mail
    /// lower-cased as Better Auth stores it, and no image.
    pub fn new(email: &str, name: &str, now: OffsetDateTime) -> Self {
        let now = time_fmt::truncate_ms(now);
        Self {
            id: crate::ids::generate_id(32),
            name: name.to_owned(),
            email: email.to_lowercase(),
            email_verified: false,
            image: None,
            created_at: now,
            updated_at: now,
            extra: Map::new(),
        }
    }
}

/// A signed-in session and its user. Both are shared (`Arc`), so passing this around or caching
/// it never copies the rows; fields read through the `Arc` as usual (`auth.user.email`).
///
/// For a request, [`AuthContext::authenticated`](crate::AuthContext::authenticated) gives it; axum handlers use the extractors in
/// [`extract`](crate::extract).
#[derive(Clone, Debug, PartialEq)]
pub struct Authenticated {
    /// The session row, after any refresh this request caused.
    pub session: Arc<Session>,
    /// The session's user.
    pub user: Arc<User>,
}

impl Authenticated {
    /// Wraps a session and its user.
    pub fn new(session: Session, user: User) -> Self {
        Self {
            session: Arc::new(session),
            user: Arc::new(user),
        }
    }

    /// Whether the session is "fresh": created less than `fresh_age` ago, as Better Auth's
    /// `freshSessionMiddleware` requires for sensitive routes. A zero `fresh_age` disables the
    /// check (always fresh).
    pub fn is_fresh(&self, now: OffsetDateTime, fresh_age: time::Duration) -> bool {
        fresh_age.is_zero() || now - self.session.created_at < fresh_age
    }
}

#[cfg(test)]
impl Session {
    /// A session of `user_id` carrying `token`, created at `now`, for the crate's unit tests.
    pub(crate) fn for_tests(
        user_id: &str,
        token: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id: format!("id-{token}"),
            token: token.into(),
            user_id: user_id.into(),
            expires_at,
            created_at: now,
            updated_at: now,
            ip_address: None,
            user_agent: None,
            extra: Map::new(),
        }
    }
}

impl Session {
    /// The key the store knows this session by (its `token` column).
    pub fn storage_key(&self) -> StorageKey<'_> {
        StorageKey::new(self.token.as_str())
    }
}
