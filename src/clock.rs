//! Where the layer gets "now" from. Tests inject a [`ManualClock`] so that expiry and refresh
//! boundaries are exercised to the millisecond without sleeping.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use time::{Duration, OffsetDateTime};

use crate::time_fmt;

/// A source of the current time, with millisecond precision (like a JavaScript `Date`).
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock. The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        // Turning a `SystemTime` into a calendar date costs as much as the rest of a cache-hit
        // lookup, so each thread converts once per second and only sets the milliseconds for
        // the other calls within that second.
        thread_local! {
            static SECOND: Cell<Option<(u64, OffsetDateTime)>> = const { Cell::new(None) };
        }
        let Ok(since) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) else {
            return time_fmt::truncate_ms(OffsetDateTime::now_utc());
        };
        let secs = since.as_secs();
        let start = SECOND.with(|cached| match cached.get() {
            Some((s, at)) if s == secs => Some(at),
            _ => {
                let at = i64::try_from(secs)
                    .ok()
                    .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())?;
                cached.set(Some((secs, at)));
                Some(at)
            }
        });
        let millis = u16::try_from(since.subsec_millis()).unwrap_or(0);
        start
            .and_then(|at| at.replace_millisecond(millis).ok())
            .unwrap_or_else(|| time_fmt::truncate_ms(OffsetDateTime::now_utc()))
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
///
/// ```
/// use time::{macros::datetime, Duration};
/// use tower_auth_session::{Clock, ManualClock};
///
/// let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
/// let same = clock.clone();
/// clock.advance(Duration::milliseconds(1500));
/// assert_eq!(same.now(), datetime!(2026-01-01 0:00:01.5 UTC));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    unix_ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock stopped at `at` (truncated to the millisecond).
    pub fn new(at: OffsetDateTime) -> Self {
        Self {
            unix_ms: Arc::new(AtomicI64::new(time_fmt::to_unix_ms(at))),
        }
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: OffsetDateTime) {
        self.unix_ms
            .store(time_fmt::to_unix_ms(at), Ordering::SeqCst);
    }

    /// Moves the clock by `by` (which may be negative).
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.whole_milliseconds()).unwrap_or(i64::MAX);
        self.unix_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        time_fmt::from_unix_ms(self.unix_ms.load(Ordering::SeqCst))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_reads_the_wall_clock_to_the_millisecond() {
        for _ in 0..3 {
            let before = time_fmt::truncate_ms(OffsetDateTime::now_utc());
            // The first call of a second converts; the second reuses that second.
            let first = SystemClock.now();
            let second = SystemClock.now();
            let after = OffsetDateTime::now_utc();
            assert!(before <= first && first <= second && second <= after);
            assert_eq!(first.nanosecond() % 1_000_000, 0);
            assert_eq!(second.offset(), time::UtcOffset::UTC);
        }
    }
}
