//! The session and user as Better Auth writes them in JSON, key for key (spec §6.2, §7), in one
//! place: the cookie cache's payload and the Redis values both use these.
//!
//! `JSON.stringify` keeps an object's insertion order, and Better Auth builds its objects in two
//! orders: rows as its database adapter returns them (schema fields, plugin fields, `id`
//! last), and sessions it created without a database (`id` first). A reader compares nothing
//! by order, but the cookie cache's signature covers the exact bytes, and a Rust writer should
//! produce what Better Auth would.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::{Session, User};
use crate::time_fmt::Iso;

/// A session as Better Auth's adapter returns a row: `expiresAt, token, createdAt, updatedAt,
/// ipAddress, userAgent, userId`, plugin fields, `id` last.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionRow<'a> {
    expires_at: Iso,
    token: &'a str,
    created_at: Iso,
    updated_at: Iso,
    ip_address: &'a Option<String>,
    user_agent: &'a Option<String>,
    user_id: &'a str,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
    id: &'a str,
}

impl<'a> SessionRow<'a> {
    pub(crate) fn new(s: &'a Session) -> Self {
        Self {
            expires_at: Iso::new(s.expires_at),
            token: &s.token,
            created_at: Iso::new(s.created_at),
            updated_at: Iso::new(s.updated_at),
            ip_address: &s.ip_address,
            user_agent: &s.user_agent,
            user_id: &s.user_id,
            extra: &s.extra,
            id: &s.id,
        }
    }
}

/// A session Better Auth created without a database (secondary storage only): `id, ipAddress,
/// userAgent, expiresAt, userId, token, createdAt, updatedAt`, then plugin fields; an unknown
/// address or agent is `""`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg(feature = "redis")]
pub(crate) struct CreatedSession<'a> {
    id: &'a str,
    ip_address: &'a str,
    user_agent: &'a str,
    expires_at: Iso,
    user_id: &'a str,
    token: &'a str,
    created_at: Iso,
    updated_at: Iso,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

#[cfg(feature = "redis")]
impl<'a> CreatedSession<'a> {
    pub(crate) fn new(s: &'a Session) -> Self {
        Self {
            id: &s.id,
            ip_address: s.ip_address.as_deref().unwrap_or(""),
            user_agent: s.user_agent.as_deref().unwrap_or(""),
            expires_at: Iso::new(s.expires_at),
            user_id: &s.user_id,
            token: &s.token,
            created_at: Iso::new(s.created_at),
            updated_at: Iso::new(s.updated_at),
            extra: &s.extra,
        }
    }
}

/// A user as Better Auth's adapter returns a row: `name, email, emailVerified, image,
/// createdAt, updatedAt`, plugin fields, `id` last.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserRow<'a> {
    name: &'a str,
    email: &'a str,
    email_verified: bool,
    image: &'a Option<String>,
    created_at: Iso,
    updated_at: Iso,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
    id: &'a str,
}

impl<'a> UserRow<'a> {
    pub(crate) fn new(u: &'a User) -> Self {
        Self {
            name: &u.name,
            email: &u.email,
            email_verified: u.email_verified,
            image: &u.image,
            created_at: Iso::new(u.created_at),
            updated_at: Iso::new(u.updated_at),
            extra: &u.extra,
            id: &u.id,
        }
    }
}

/// What Better Auth's secondary storage holds under a token: `{"session":{…},"user":{…}}`.
#[derive(Serialize)]
#[cfg(feature = "redis")]
pub(crate) struct Stored<'a> {
    pub(crate) session: CreatedSession<'a>,
    pub(crate) user: UserRow<'a>,
}
