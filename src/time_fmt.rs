//! Timestamps as Better Auth writes them: JavaScript `Date.prototype.toISOString()`, always
//! `YYYY-MM-DDTHH:MM:SS.sssZ` with exactly three fractional digits (spec §4.3).
//!
//! SQLite range filters compare these strings, so every writer must use exactly this form.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Drops everything below the millisecond, as a JavaScript `Date` would, in UTC. A time whose
/// UTC form falls outside `time`'s years (±9999: `9999-12-31T23:59:59-01:00`, written by other
/// software) becomes the first or last millisecond of that range rather than a panic.
pub fn truncate_ms(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond();
    let t = t.replace_nanosecond(nanos - nanos % 1_000_000).unwrap_or(t);
    t.checked_to_offset(UtcOffset::UTC).unwrap_or_else(|| {
        let edge = if t.offset().is_negative() {
            time::PrimitiveDateTime::MAX
        } else {
            time::PrimitiveDateTime::MIN
        };
        // Already in UTC: truncated without coming back here.
        truncate_ms(edge.assume_utc())
    })
}

/// Formats `t` as `toISOString()` does. Years outside 0000–9999 are clamped into that range
/// (JavaScript would emit a six-digit year that no Better Auth reader expects).
pub fn to_iso(t: OffsetDateTime) -> String {
    Iso::new(t).as_str().to_owned()
}

/// `toISOString()` of a time, on the stack: every session and user carries three or two dates,
/// and a request that answers with them (or a store that writes them) should not allocate or
/// interpret a format description for each. Written out digit by digit; the tests compare it
/// with `time`'s own formatting over the whole range.
#[derive(Clone, Copy)]
pub(crate) struct Iso([u8; ISO_LEN]);

/// `YYYY-MM-DDTHH:MM:SS.sssZ`.
const ISO_LEN: usize = 24;

impl Iso {
    pub(crate) fn new(t: OffsetDateTime) -> Self {
        let t = clamp(truncate_ms(t));
        let mut out = *b"0000-00-00T00:00:00.000Z";
        // Clamped to 0..=9999, so every part fits its digits.
        let year = u32::try_from(t.year()).unwrap_or(0);
        digits(&mut out[0..4], year);
        digits(&mut out[5..7], u32::from(u8::from(t.month())));
        digits(&mut out[8..10], u32::from(t.day()));
        digits(&mut out[11..13], u32::from(t.hour()));
        digits(&mut out[14..16], u32::from(t.minute()));
        digits(&mut out[17..19], u32::from(t.second()));
        digits(&mut out[20..23], u32::from(t.millisecond()));
        Self(out)
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation are ever written.
        std::str::from_utf8(&self.0).unwrap_or("1970-01-01T00:00:00.000Z")
    }
}

impl serde::Serialize for Iso {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Debug for Iso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes `n` in decimal into `out`, zero-padded to its width (higher digits are dropped).
fn digits(out: &mut [u8], mut n: u32) {
    for slot in out.iter_mut().rev() {
        // `n % 10` is below 10.
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The exact `toISOString()` form, read without `time`'s general parser: what Better Auth
/// writes, so nearly every date a store reads. `None` for anything else, including dates that
/// do not exist (the general parser then has its say).
fn parse_js_iso(s: &[u8]) -> Option<OffsetDateTime> {
    let [y0, y1, y2, y3, b'-', mo0, mo1, b'-', d0, d1, b'T', h0, h1, b':', mi0, mi1, b':', s0, s1, b'.', f0, f1, f2, b'Z'] =
        *<&[u8; ISO_LEN]>::try_from(s).ok()?
    else {
        return None;
    };
    let num = |ds: &[u8]| {
        ds.iter().try_fold(0u16, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u16::from(d - b'0'))
        })
    };
    let year = num(&[y0, y1, y2, y3])?;
    let month = time::Month::try_from(u8::try_from(num(&[mo0, mo1])?).ok()?).ok()?;
    let byte = |ds: &[u8]| num(ds).and_then(|n| u8::try_from(n).ok());
    let date = time::Date::from_calendar_date(i32::from(year), month, byte(&[d0, d1])?).ok()?;
    let time = time::Time::from_hms_milli(
        byte(&[h0, h1])?,
        byte(&[mi0, mi1])?,
        byte(&[s0, s1])?,
        num(&[f0, f1, f2])?,
    )
    .ok()?;
    Some(time::PrimitiveDateTime::new(date, time).assume_utc())
}

/// Parses an ISO-8601 / RFC 3339 timestamp as `new Date(string)` would for the forms Better Auth
/// and common SQL drivers write (`Z` or an offset, any number of fractional digits, a space
/// instead of `T`). Returns `None` for anything else.
pub fn parse_iso(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Some(t) = parse_js_iso(s.as_bytes()) {
        return Some(t);
    }
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

/// Below this in absolute value, a number stored as a date counts as unix seconds, at or above
/// it as milliseconds: 10¹¹ ms is March 1973, 10¹¹ s the year 5138. The SQLite store's reader
/// and its statements' comparisons, and plugin dates, all use it.
pub(crate) const SECONDS_BELOW: i64 = 100_000_000_000;

/// Whether the stored number `n` is a date in seconds ([`SECONDS_BELOW`]).
pub(crate) fn counts_as_seconds(n: i64) -> bool {
    (-SECONDS_BELOW + 1..SECONDS_BELOW).contains(&n)
}

/// A date stored as a number: unix seconds or milliseconds, by [`counts_as_seconds`].
pub(crate) fn from_unix_number(n: i64) -> Option<OffsetDateTime> {
    if counts_as_seconds(n) {
        from_unix_ms(n * 1000)
    } else {
        from_unix_ms(n)
    }
}

/// [`from_unix_number`] of a float (a SQLite REAL), to the millisecond as `new Date(n)` takes
/// it; `None` when not finite or far out of range.
pub(crate) fn from_unix_float(f: f64) -> Option<OffsetDateTime> {
    // In range for an i64 once finite and below 10¹⁵: truncation is the intent.
    #[allow(clippy::cast_possible_truncation)]
    let n = f as i64;
    (f.is_finite() && f.abs() < 1e15)
        .then_some(n)
        .and_then(from_unix_number)
}

fn clamp(t: OffsetDateTime) -> OffsetDateTime {
    use time::macros::datetime;
    let min = datetime!(0000-01-01 0:00 UTC);
    let max = datetime!(9999-12-31 23:59:59.999 UTC);
    t.clamp(min, max)
}

/// `serde` adapter writing `toISOString()` and reading any form [`parse_iso`] accepts.
pub(crate) mod iso_ms {
    use serde::{de::Error as _, Deserialize, Deserializer, Serialize as _, Serializer};
    use time::OffsetDateTime;

    /// Serializes as `YYYY-MM-DDTHH:MM:SS.sssZ`.
    pub(crate) fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        super::Iso::new(*t).serialize(s)
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
    fn a_time_past_the_last_utc_year_saturates_instead_of_panicking() {
        let late = parse_iso("9999-12-31T23:59:59.999-01:00").unwrap();
        assert_eq!(late.offset(), UtcOffset::UTC);
        assert_eq!(to_iso(late), "9999-12-31T23:59:59.999Z");
        let early = time::PrimitiveDateTime::MIN.assume_offset(time::macros::offset!(+1));
        assert_eq!(
            truncate_ms(early),
            time::PrimitiveDateTime::MIN.assume_utc()
        );
    }

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

    /// The written-out formatter agrees with `time`'s own, from year 0 to 9999 and for any
    /// offset; the fast reader agrees with the general one on what the formatter writes, and
    /// leaves everything else to it.
    mod against_time {
        use super::super::*;
        use proptest::prelude::*;
        use time::macros::format_description;

        fn reference(t: OffsetDateTime) -> String {
            clamp(truncate_ms(t))
                .format(format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                ))
                .unwrap()
        }

        proptest! {
            #[test]
            fn formats_as_time_does(
                secs in -62_167_219_200i64..=253_402_300_799,
                nanos in 0u32..1_000_000_000,
                offset in -86_399i32..=86_399,
            ) {
                let t = OffsetDateTime::from_unix_timestamp(secs).unwrap()
                    .replace_nanosecond(nanos).unwrap()
                    .to_offset(time::UtcOffset::from_whole_seconds(offset).unwrap());
                let iso = to_iso(t);
                prop_assert_eq!(&iso, &reference(t));
                let general = OffsetDateTime::parse(&iso, &Rfc3339).ok().map(truncate_ms);
                prop_assert_eq!(parse_js_iso(iso.as_bytes()), general);
                prop_assert_eq!(parse_iso(&iso), general);
            }

            #[test]
            fn reads_any_bytes_as_the_general_parser_does(s in "[0-9T:.Z-]{0,26}") {
                if let Some(t) = parse_js_iso(s.as_bytes()) {
                    prop_assert_eq!(Some(t), OffsetDateTime::parse(&s, &Rfc3339).ok());
                }
            }
        }

        #[test]
        fn dates_that_do_not_exist_are_left_to_the_general_parser() {
            for s in [
                "2026-02-30T00:00:00.000Z",
                "2026-13-01T00:00:00.000Z",
                "2026-00-01T00:00:00.000Z",
                "2026-01-01T24:00:00.000Z",
                "2026-01-01T00:60:00.000Z",
                "2026-12-31T23:59:60.000Z",
                "2026-01-01T00:00:00.000+",
                "2026-01-01 00:00:00.000Z",
                "+026-01-01T00:00:00.000Z",
            ] {
                assert_eq!(parse_js_iso(s.as_bytes()), None, "{s}");
            }
            // A leap second is the general parser's to judge.
            assert_eq!(
                parse_iso("2026-12-31T23:59:60.000Z"),
                OffsetDateTime::parse("2026-12-31T23:59:60.000Z", &Rfc3339)
                    .ok()
                    .map(truncate_ms)
            );
        }
    }
}
