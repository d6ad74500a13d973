//! Typed access to the columns Better Auth's plugins add to `user` and `session`: the admin
//! plugin's role and ban, the organization plugin's active organization, impersonation, and any
//! app-defined column through [`User::extra_as`] / [`Session::extra_as`], borrowed from the row
//! (no per-request copy).
//!
//! The values are read as the stores return them: booleans may be stored as `0`/`1` (SQLite),
//! dates as ISO strings (every SQL store writes plugin dates that way into
//! [`User::extra`](crate::User::extra)) or Unix milliseconds (Drizzle layouts).

use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::model::{Session, User};
use crate::time_fmt;

/// The admin plugin's ban on a user (`banned`, `banReason`, `banExpires`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ban {
    /// `banReason`, when one was given.
    pub reason: Option<String>,
    /// `banExpires`: when the ban ends; `None` for a permanent ban.
    pub expires: Option<OffsetDateTime>,
}

impl Ban {
    /// Whether the ban has ended at `now`: it has an end, and the end is strictly before `now`
    /// (Better Auth's `banExpires < Date.now()`). An ended ban is lifted at the next sign-in.
    pub fn has_ended(&self, now: OffsetDateTime) -> bool {
        self.expires.is_some_and(|end| end < now)
    }
}

/// A boolean as any store returns it: `true`/`false`, or `1`/`0`.
pub(crate) fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => s == "true" || s == "1",
        _ => false,
    }
}

/// A date as any store returns it: an ISO string, or a Unix time in milliseconds (in seconds
/// below 10¹¹, as SQLite columns in Drizzle's `timestamp` mode hold it; the store's own date
/// columns read numbers the same way).
fn date(value: Option<&Value>) -> Option<OffsetDateTime> {
    match value? {
        Value::String(s) => time_fmt::parse_iso(s),
        Value::Number(n) => match n.as_i64() {
            Some(n) => time_fmt::from_unix_number(n),
            None => n.as_f64().and_then(time_fmt::from_unix_float),
        },
        _ => None,
    }
}

/// A plugin column under its camelCase name (Better Auth's own schema) or its snake_case one
/// (Drizzle and Prisma layouts).
fn get<'a>(extra: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    extra.get(camel).or_else(|| extra.get(snake))
}

fn text<'a>(extra: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a str> {
    get(extra, camel, snake).and_then(Value::as_str)
}

impl User {
    /// The admin plugin's `role` column as stored: one role, or several separated by commas
    /// (`"admin,user"`). `None` without the column or when it is `NULL`.
    pub fn role(&self) -> Option<&str> {
        text(&self.extra, "role", "role")
    }

    /// Each role in [`role`](Self::role), split on commas as Better Auth does (with no
    /// trimming: `"admin, user"` holds `"admin"` and `" user"`); empty parts are skipped. A
    /// user without a role (`NULL`, empty, or no column: a user created outside Better Auth's
    /// admin plugin) has its default role, `"user"`, as the plugin's access checks read it;
    /// see [`roles_or`](Self::roles_or) for another `defaultRole`.
    pub fn roles(&self) -> impl Iterator<Item = &str> + '_ {
        self.roles_or("user")
    }

    /// [`roles`](Self::roles) with the admin plugin's `defaultRole` set to `default_role`.
    pub fn roles_or<'a>(&'a self, default_role: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.role()
            .filter(|r| !r.is_empty())
            .unwrap_or(default_role)
            .split(',')
            .filter(|r| !r.is_empty())
    }

    /// Whether [`roles`](Self::roles) holds `role` (a user without a role has `"user"`).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().any(|r| r == role)
    }

    /// The admin plugin's ban, when `banned` is true (whether or not it has ended: see
    /// [`Ban::has_ended`]).
    pub fn ban(&self) -> Option<Ban> {
        truthy(self.extra.get("banned")).then(|| Ban {
            reason: text(&self.extra, "banReason", "ban_reason").map(str::to_owned),
            expires: date(get(&self.extra, "banExpires", "ban_expires")),
        })
    }

    /// Whether the two-factor plugin's `twoFactorEnabled` is true: Better Auth's password
    /// sign-ins give such a user no session until the second factor is verified (see
    /// [`SignIn::second_factor_verified`](crate::SignIn::second_factor_verified)).
    pub fn two_factor_enabled(&self) -> bool {
        truthy(get(&self.extra, "twoFactorEnabled", "two_factor_enabled"))
    }

    /// Whether the anonymous plugin's `isAnonymous` is true (a guest user).
    pub fn is_anonymous(&self) -> bool {
        truthy(get(&self.extra, "isAnonymous", "is_anonymous"))
    }

    /// Whether the user is banned at `now`: `banned` is true and the ban has not ended.
    pub fn is_banned(&self, now: OffsetDateTime) -> bool {
        self.ban().is_some_and(|ban| !ban.has_ended(now))
    }

    /// The extra columns ([`extra`](Self::extra)) as the app's own type, borrowing from the
    /// row: a struct of `&str` fields copies nothing. Missing columns read as absent, so make
    /// optional fields `Option`s.
    ///
    /// ```
    /// # use time::OffsetDateTime;
    /// # use tower_auth_session::User;
    /// #[derive(serde::Deserialize)]
    /// #[serde(rename_all = "camelCase")]
    /// struct Plan<'a> {
    ///     plan: Option<&'a str>,
    ///     seats: Option<u32>,
    /// }
    ///
    /// let mut user = User::new("a@example.com", "A", OffsetDateTime::now_utc());
    /// user.extra.insert("plan".into(), "team".into());
    /// user.extra.insert("seats".into(), 5.into());
    /// let fields: Plan = user.extra_as()?;
    /// assert_eq!((fields.plan, fields.seats), (Some("team"), Some(5)));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// When a column does not have the type `T` gives it.
    pub fn extra_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.extra)
    }
}

impl Session {
    /// The organization plugin's `activeOrganizationId`.
    pub fn active_organization_id(&self) -> Option<&str> {
        text(
            &self.extra,
            "activeOrganizationId",
            "active_organization_id",
        )
    }

    /// The admin plugin's `impersonatedBy`: the id of the admin impersonating the user in this
    /// session (`None` when it is not text: see [`is_impersonation`](Self::is_impersonation)).
    pub fn impersonated_by(&self) -> Option<&str> {
        text(&self.extra, "impersonatedBy", "impersonated_by")
    }

    /// Whether an admin opened this session by impersonating its user: `impersonatedBy` holds
    /// a value JavaScript reads as true (a non-empty id, or a number other than 0 where a
    /// schema keeps integer ids), as Better Auth's session list tests it.
    pub fn is_impersonation(&self) -> bool {
        match get(&self.extra, "impersonatedBy", "impersonated_by") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(_) | Value::Object(_)) => true,
        }
    }

    /// The extra columns as the app's own type, borrowing from the row, as
    /// [`User::extra_as`].
    ///
    /// # Errors
    ///
    /// When a column does not have the type `T` gives it.
    pub fn extra_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn user(extra: Value) -> User {
        let mut u = User::new("a@example.com", "A", datetime!(2026-11-28 0:00 UTC));
        u.extra = extra.as_object().unwrap().clone();
        u
    }

    #[test]
    fn roles_split_like_better_auth() {
        let u = user(serde_json::json!({"role": "admin,user"}));
        assert_eq!(u.roles().collect::<Vec<_>>(), ["admin", "user"]);
        assert!(u.has_role("admin") && u.has_role("user") && !u.has_role("ad"));
        let spaced = user(serde_json::json!({"role": "admin, user"}));
        assert!(!spaced.has_role("user"), "no trimming, as Better Auth");
        // Without a role, the admin plugin's default one, as its access checks read it.
        for none in [
            serde_json::json!({}),
            serde_json::json!({"role": null}),
            serde_json::json!({"role": ""}),
        ] {
            let u = user(none);
            assert_eq!(u.roles().collect::<Vec<_>>(), ["user"]);
            assert!(u.has_role("user") && !u.has_role("admin"));
            assert_eq!(u.roles_or("member").collect::<Vec<_>>(), ["member"]);
        }
        assert_eq!(user(serde_json::json!({"role": null})).role(), None);
    }

    /// As Better Auth's list filter (`!session.impersonatedBy`) reads the column, whatever
    /// its type: a schema with integer ids keeps the admin's id as a number.
    #[test]
    fn impersonation_is_read_as_javascript_reads_it() {
        let now = datetime!(2026-11-28 12:00 UTC);
        let session = |extra: Value| {
            let mut s = Session::for_tests("u", "t", now, now);
            s.extra = extra.as_object().unwrap().clone();
            s
        };
        for (extra, is) in [
            (serde_json::json!({}), false),
            (serde_json::json!({"impersonatedBy": null}), false),
            (serde_json::json!({"impersonatedBy": ""}), false),
            (serde_json::json!({"impersonatedBy": 0}), false),
            (serde_json::json!({"impersonatedBy": "admin-1"}), true),
            (serde_json::json!({"impersonatedBy": 7}), true),
            (serde_json::json!({"impersonated_by": 7}), true),
            (serde_json::json!({"impersonated_by": "admin-1"}), true),
        ] {
            assert_eq!(session(extra.clone()).is_impersonation(), is, "{extra}");
        }
    }

    #[test]
    fn bans_read_from_every_store_shape() {
        let now = datetime!(2026-11-28 12:00 UTC);
        for banned in [Value::Bool(true), Value::from(1)] {
            let u = user(
                serde_json::json!({"banned": banned, "banReason": "spam", "banExpires": "2026-11-28T13:00:00.000Z"}),
            );
            let ban = u.ban().unwrap();
            assert_eq!(ban.reason.as_deref(), Some("spam"));
            assert!(!ban.has_ended(now) && u.is_banned(now));
            assert!(ban.has_ended(datetime!(2026-11-28 13:00:00.001 UTC)));
            assert!(
                !ban.has_ended(datetime!(2026-11-28 13:00 UTC)),
                "strictly before"
            );
        }
        let ms = user(serde_json::json!({"banned": 1, "banExpires": 1_795_000_000_000_i64}));
        assert!(ms.ban().unwrap().expires.is_some());
        // Seconds (a SQLite column in Drizzle's `timestamp` mode): 2027-01-01, not 1970.
        let secs = user(serde_json::json!({"banned": 1, "ban_expires": 1_798_761_600_i64}));
        assert_eq!(
            secs.ban().unwrap().expires,
            Some(datetime!(2027-01-01 0:00 UTC))
        );
        assert!(secs.is_banned(now));
        // A REAL (ten days before `now`): ended, not a permanent ban.
        let real = user(serde_json::json!({"banned": 1, "banExpires": 1_795_000_000_000.5_f64}));
        assert!(real.ban().unwrap().has_ended(now));
        let permanent = user(serde_json::json!({"banned": true, "banExpires": null}));
        assert!(permanent.is_banned(datetime!(2100-01-01 0:00 UTC)));
        for not in [
            serde_json::json!({"banned": false}),
            serde_json::json!({"banned": 0}),
            serde_json::json!({"banned": null}),
            serde_json::json!({}),
        ] {
            assert!(user(not).ban().is_none());
        }
    }

    #[test]
    fn extra_as_borrows() {
        #[derive(Deserialize)]
        struct Fields<'a> {
            role: &'a str,
            missing: Option<&'a str>,
        }
        let u = user(serde_json::json!({"role": "admin", "other": 1}));
        let f: Fields<'_> = u.extra_as().unwrap();
        assert_eq!(f.role, "admin");
        assert!(f.missing.is_none());
        assert!(std::ptr::eq(f.role.as_ptr(), u.role().unwrap().as_ptr()));
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Wrong {
            role: u32,
        }
        assert!(u.extra_as::<Wrong>().is_err());
    }
}
