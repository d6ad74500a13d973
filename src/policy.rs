//! The refresh and expiry rule (spec §5 steps 9–13), in one place.

use time::OffsetDateTime;

use crate::config::SessionConfig;
use crate::model::Session;

/// What a request should do with the session it found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `expiresAt < now`: reject, delete the row, clear the cookies.
    Expired,
    /// The last refresh (`expiresAt − expiresIn`) is at least `updateAge` old: extend to the
    /// given instant and re-send the cookie.
    Refresh(OffsetDateTime),
    /// Valid; nothing to write.
    Valid,
}

/// Judges `session` at `now`.
///
/// * expired when `expiresAt < now` (a session is still valid at the exact millisecond of its
///   expiry, as in Better Auth);
/// * due for refresh when `expiresAt − expiresIn + updateAge ≤ now`, unless refresh is
///   disabled or the request carries a valid `dont_remember` cookie.
pub fn judge(
    config: &SessionConfig,
    session: &Session,
    now: OffsetDateTime,
    dont_remember: bool,
) -> Verdict {
    if session.expires_at < now {
        return Verdict::Expired;
    }
    if dont_remember || config.disable_refresh {
        return Verdict::Valid;
    }
    // `expiresAt − expiresIn + updateAge ≤ now` is `expiresAt ≤ now + (expiresIn − updateAge)`:
    // one date addition per request instead of two. Checked: an absurd clock must not overflow
    // (it counts as due).
    let due = now
        .checked_add(config.expires_in - config.update_age)
        .is_none_or(|t| session.expires_at <= t);
    if due {
        Verdict::Refresh(now + config.expires_in)
    } else {
        Verdict::Valid
    }
}
