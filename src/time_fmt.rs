//! Timestamps as Better Auth writes them: JavaScript `Date.prototype.toISOString()`, always
//! `YYYY-MM-DDTHH:MM:SS.sssZ` with exactly three fractional digits (spec §4.3).
//!
//! SQLite range filters compare these strings, so every writer must use exactly this form.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Drops everything below the millisecond, as a JavaScript `Date` would.
pub fn truncate_ms(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1_000_000)
        .unwrap_or(t)
        .to_offset(UtcOffset::UTC)
}

/// Formats `t` as `toISOString()` does. Years outside 0000–9999 are clamped into that range
/// (JavaScript would emit a six-digit year that no Better Auth reader expects).
pub fn to_iso(t: OffsetDateTime) -> String {
    let t = clamp(truncate_ms(t));
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000Z"))
}

/// Parses an ISO-8601 / RFC 3339 timestamp as `new Date(string)` would for the forms Better Auth
/// and common SQL drivers write (`Z` or an offset, any number of fractional digits, a space
/// instead of `T`). Returns `None` for anything else.
pub fn parse_iso(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(truncate_ms(t));
    }
    // "2026-01-01 10:00:00.123" / "2026-01-01 10:00:00+00:00" as some drivers write them.
    let normalized = s.replacen(' ', "T", 1);
    if let Ok(t) = OffsetDateTime::parse(&normalized, &Rfc3339) {
        return Some(truncate_ms(t));
    }
    OffsetDateTime::parse(&format!("{normalized}Z"), &Rfc3339)
        .ok()
        .map(truncate_ms)
}

/// Milliseconds since the Unix epoch, as JavaScript's `Date.getTime()`.
pub fn to_unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The inverse of [`to_unix_ms`]; `None` when out of `time`'s range.
pub fn from_unix_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

fn clamp(t: OffsetDateTime) -> OffsetDateTime {
    use time::macros::datetime;
    let min = datetime!(0000-01-01 0:00 UTC);
    let max = datetime!(9999-12-31 23:59:59.999 UTC);
    t.clamp(min, max)
}

/// `serde` adapter writing `toISOString()` and reading any form [`parse_iso`] accepts.
pub(crate) mod iso_ms {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    /// Serializes as `YYYY-MM-DDTHH:MM:SS.sssZ`.
    pub(crate) fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_iso(*t))
    }

    /// Deserializes from an ISO-8601 string or a number of milliseconds since the epoch.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr<'a> {
            Str(std::borrow::Cow<'a, str>),
            Ms(i64),
        }
        match Repr::deserialize(d)? {
            Repr::Str(s) => super::parse_iso(&s)
                .ok_or_else(|| D::Error::custom(format!("invalid ISO-8601 date {s:?}"))),
            Repr::Ms(ms) => super::from_unix_ms(ms)
                .ok_or_else(|| D::Error::custom(format!("date out of range: {ms} ms"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_exactly_three_fraction_digits() {
        assert_eq!(
            to_iso(datetime!(2026-11-29 13:26:18.309_123_456 UTC)),
            "2026-11-29T13:26:18.309Z"
        );
        assert_eq!(
            to_iso(datetime!(2026-01-01 0:00 UTC)),
            "2026-01-01T00:00:00.000Z"
        );
        assert_eq!(
            to_iso(datetime!(2026-01-01 1:00 +01:00)),
            "2026-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn parses_common_forms() {
        let t = datetime!(2026-11-29 13:26:18.309 UTC);
        for s in [
            "2026-11-29T13:26:18.309Z",
            "2026-11-29T13:26:18.309123Z",
            "2026-11-29 13:26:18.309+00:00",
            "2026-11-29T14:26:18.309+01:00",
            "2026-11-29 13:26:18.309",
        ] {
            assert_eq!(parse_iso(s), Some(t), "{s}");
        }
        assert_eq!(parse_iso("yesterday"), None);
        assert_eq!(parse_iso(""), None);
    }

    #[test]
    fn unix_ms_round_trips() {
        let t = datetime!(2026-11-29 13:26:18.309 UTC);
        assert_eq!(to_unix_ms(t), 1_795_958_778_309);
        assert_eq!(from_unix_ms(1_795_958_778_309), Some(t));
    }
}
