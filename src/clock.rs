//! Where the layer gets "now" from. Tests inject a [`ManualClock`] so that expiry and refresh
//! boundaries are exercised to the millisecond without sleeping.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

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
        time_fmt::truncate_ms(OffsetDateTime::now_utc())
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
