//! Helpers this crate's own tests and benchmarks use, public so that an application's tests can
//! use them too: **not part of the stable API**, and free to change in any release.
//!
//! * dates in Better Auth's exact forms: `toISOString()` text and unix milliseconds;
//! * Better Auth's identifier generator.

pub use crate::ids::generate_id;
pub use crate::time_fmt::{from_unix_ms, parse_iso, to_iso, to_unix_ms, truncate_ms};
