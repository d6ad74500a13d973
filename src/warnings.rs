//! Loud misconfiguration: warnings for the mistakes that otherwise show only as a 401 on every
//! request, each logged once (or at a bounded rate) so that a log never floods.
//!
//! * A burst of session cookies that are well-formed but fail the signature check: the
//!   secret differs from the Better Auth server's (`BETTER_AUTH_SECRET`), or a rotation lost
//!   the previous one.
//! * A `session_data` cookie written with another cookie-cache strategy than the layer's: the
//!   two would overwrite each other's cookie on every request, so the layer leaves it alone and
//!   says so, once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bad signatures within this window count as one burst.
const WINDOW: Duration = Duration::from_secs(60);
/// This many in one window is a burst: one forged cookie is not worth a warning.
const BURST: u32 = 3;
/// At most one bad-signature warning per this interval.
const QUIET: Duration = Duration::from_secs(600);

/// The layer's warning state, shared by its services (and clones of its configuration).
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    bad_signatures: Mutex<Burst>,
    other_strategy: AtomicBool,
}

#[derive(Debug, Default)]
struct Burst {
    window_start: Option<Instant>,
    count: u32,
    last_warning: Option<Instant>,
}

impl Warnings {
    /// Records a well-formed cookie whose signature did not verify (the cold path: the
    /// lock is never taken for valid cookies).
    pub(crate) fn bad_signature(&self) {
        let now = Instant::now();
        let mut burst = self
            .bad_signatures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if burst
            .window_start
            .is_none_or(|start| now.duration_since(start) > WINDOW)
        {
            burst.window_start = Some(now);
            burst.count = 0;
        }
        burst.count += 1;
        let quiet = burst
            .last_warning
            .is_some_and(|at| now.duration_since(at) < QUIET);
        if burst.count >= BURST && !quiet {
            burst.last_warning = Some(now);
            tracing::warn!(
                in_the_last_minute = burst.count,
                "session cookies are well-formed but fail the signature check: \
                 BETTER_AUTH_SECRET most likely differs from the Better Auth server's \
                 (compare them; after a rotation, keep the old one in BETTER_AUTH_SECRETS). \
                 Every such request is treated as signed out"
            );
        }
    }

    /// Reports, once, a cache cookie written with `theirs` while the layer uses `ours`.
    pub(crate) fn other_cache_strategy(&self, theirs: &'static str, ours: &'static str) {
        if !self.other_strategy.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                theirs,
                ours,
                "a session_data cookie uses another cookie-cache strategy than this layer: \
                 configure the same `session.cookieCache.strategy` on both sides. Until then \
                 the layer reads the store and leaves that cookie alone"
            );
        }
    }
}
