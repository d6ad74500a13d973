//! Every per-request rule about a session, in one function (spec §5 steps 9–14, §6.3 step 5):
//! [`decide`] turns what was found into a [`Decision`], as plain data: who is signed in, how the
//! request was treated, its outcome, the store write to make first, and the [`CookiePlan`].
//!
//! | found | decision |
//! |---|---|
//! | the store failed | `503` ([`OutagePolicy::FailClosed`]) or anonymous, cookies kept, nothing written |
//! | an unreadable row | anonymous, cookies kept (another writer may use a layout this crate does not know) |
//! | no session, or no user | rejected: every session cookie cleared |
//! | `expiresAt < now` | rejected: the row deleted (if still expired), every session cookie cleared |
//! | `expiresAt − expiresIn + updateAge ≤ now`, no valid `dont_remember`, refresh on | extended to `now + expiresIn` (one conditional write), the cookie re-sent with `Max-Age = expiresIn` |
//! | otherwise | signed in, nothing written |
//! | a valid cookie-cache cookie | signed in without a store read |
//!
//! and, on every signed-in answer: a cookie verified with a previous secret is re-signed for its
//! remaining lifetime; a store read re-issues the cache cookie (when the cache is on), and an
//! unusable cache cookie is expired. In read-only mode nothing is written and no cookie is sent:
//! an expired session is anonymous, a due refresh is only reported
//! ([`SessionInfo::needs_refresh`]).

use time::{Duration, OffsetDateTime};

use crate::config::{OutagePolicy, SessionConfig};
use crate::credential::{DontRemember, TokenTag, Via};
use crate::metrics::Outcome;
use crate::model::{Authenticated, Session};
use crate::plan::{CacheCookie, CookiePlan, SessionCookie};
use crate::respond::LayerRejection;

/// What the resolution found for a verified credential.
pub(crate) enum Lookup {
    /// The session and its user, read from the store.
    Found(Authenticated),
    /// The session and its user, from a valid cookie-cache cookie (no store read).
    Cached(Authenticated),
    /// The store has no such session, or its user is gone.
    Missing,
    /// The store has a row it cannot read.
    Unreadable,
    /// The store failed or timed out.
    Unavailable,
    /// The refresh this request asked for was written: the session as extended.
    Extended(Authenticated),
    /// The refresh was not written (another request of this instance is writing it, or the
    /// write failed): the session as read.
    NotExtended(Authenticated),
}

/// Where in a request the decision is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The first look at what was found.
    First,
    /// After a conditional refresh that touched nothing (another instance refreshed, signed
    /// out or revoked the session meanwhile), on the row read again: no second write.
    Reread,
}

/// How the layer treated an authenticated request, as `AuthContext::info` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// In read-only mode: the session is due for a refresh that this service did not perform
    /// (Better Auth's `needsRefresh` with `deferSessionRefresh`); ask the Better Auth server to
    /// refresh it.
    pub needs_refresh: bool,
    /// The credential came from `Authorization: Bearer`, not the cookie.
    pub via_bearer: bool,
    /// This request extended the session (and the response re-sends the cookie).
    pub refreshed: bool,
    /// The request was signed in by a Better Auth JWT (feature `jwt`), not a session: there
    /// is no session row.
    pub via_jwt: bool,
    /// The session came from a valid cookie-cache cookie, without a store read.
    pub from_cache: bool,
}

/// A cache cookie the request carried that could not be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum IncomingCache {
    /// None, or one that was used.
    #[default]
    Fine,
    /// Invalid, expired, or for another session: replaced (or expired).
    Unusable,
    /// Written with another cookie-cache strategy (the Better Auth server's differs from the
    /// layer's): left alone, so that the two do not overwrite each other on every request.
    OtherStrategy,
}

/// What the policy is told about a request.
pub(crate) struct Facts<'a, 'h> {
    pub(crate) lookup: Lookup,
    pub(crate) stage: Stage,
    pub(crate) via: Via,
    /// A previous secret verified the credential.
    pub(crate) resign: bool,
    /// The cache cookie the request carried, if it could not be used.
    pub(crate) cache_cookie: IncomingCache,
    pub(crate) dont_remember: &'a mut DontRemember<'h>,
    pub(crate) now: OffsetDateTime,
    /// For logs only (as a hash tag).
    pub(crate) token: &'a str,
}

/// A store write the policy needs before it can answer.
pub(crate) enum Write {
    /// Extend the session to `expires_at` (conditionally: only a live row, only forward), then
    /// decide again with [`Lookup::Extended`] or [`Lookup::NotExtended`].
    Extend {
        auth: Authenticated,
        expires_at: OffsetDateTime,
    },
    /// Delete the session if it is still expired at `now`, then serve `then`.
    DeleteExpired { now: OffsetDateTime, then: Serve },
}

/// How to serve the request.
pub(crate) struct Serve {
    pub(crate) auth: Option<Authenticated>,
    pub(crate) info: SessionInfo,
    pub(crate) outcome: Outcome,
    pub(crate) plan: CookiePlan,
}

/// The policy's answer.
pub(crate) enum Decision {
    /// Answer without calling the inner service.
    Respond(LayerRejection, Outcome),
    /// Write to the store first.
    Write(Write),
    /// Call the inner service.
    Serve(Serve),
}

impl Serve {
    fn anonymous(outcome: Outcome, plan: CookiePlan) -> Self {
        Self {
            auth: None,
            info: SessionInfo::default(),
            outcome,
            plan,
        }
    }
}

/// The rule of spec §5 step 11 for a session found at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// `expiresAt < now` (a session is still valid at the exact millisecond of its expiry).
    Expired,
    /// The last refresh (`expiresAt − expiresIn`) is at least `updateAge` old.
    Due,
    Valid,
}

fn verdict(config: &SessionConfig, session: &Session, now: OffsetDateTime) -> Verdict {
    // One date subtraction per request: `expiresAt < now` is `left < 0`, and
    // `expiresAt − expiresIn + updateAge ≤ now` is `left ≤ expiresIn − updateAge`.
    let left = session.expires_at - now;
    if left.is_negative() {
        return Verdict::Expired;
    }
    let lifetimes = &config.lifetimes;
    if left <= lifetimes.expires_in - lifetimes.update_age {
        Verdict::Due
    } else {
        Verdict::Valid
    }
}

/// Decides what a request gets. See the [module docs](self) for the rules.
pub(crate) fn decide(config: &SessionConfig, facts: Facts<'_, '_>) -> Decision {
    let (dont_remember, resign) = (facts.dont_remember, facts.resign);
    let mut decision = rules(
        config,
        Facts {
            dont_remember: &mut *dont_remember,
            ..facts
        },
    );
    if let Decision::Serve(serve) = &mut decision {
        // Better Auth's bearer plugin sends `set-auth-token` on every response that sets the
        // session cookie.
        serve.plan.auth_token = config.guards.bearer != crate::config::Bearer::Off
            && matches!(serve.plan.session, SessionCookie::Set { .. });
        // Checked only when the session cookie itself verified with a previous secret (both
        // were signed together): no extra HMAC on other requests during a rotation.
        serve.plan.resign_dont_remember = resign
            && serve.auth.is_some()
            && !config.guards.read_only
            && dont_remember.needs_resign(config);
    }
    decision
}

fn rules(config: &SessionConfig, facts: Facts<'_, '_>) -> Decision {
    let guards = &config.guards;
    let read_only = guards.read_only;
    let tag = TokenTag(facts.token);
    let auth = match facts.lookup {
        Lookup::Unavailable => {
            return match guards.outage {
                // The opt-in alternative to failing closed; never "authenticated".
                OutagePolicy::Anonymous => Decision::Serve(Serve::anonymous(
                    Outcome::StoreErrorAnonymous,
                    CookiePlan::default(),
                )),
                _ => Decision::Respond(LayerRejection::StoreUnavailable, Outcome::StoreError),
            };
        }
        Lookup::Unreadable => {
            return Decision::Serve(Serve::anonymous(Outcome::Unreadable, CookiePlan::default()))
        }
        Lookup::Missing => {
            tracing::debug!(reason = "unknown token or user missing", token = %tag, "rejected a session");
            let plan = if read_only {
                CookiePlan::default()
            } else {
                CookiePlan::clear()
            };
            return Decision::Serve(Serve::anonymous(Outcome::Rejected, plan));
        }
        Lookup::Cached(auth) => {
            let mut serve = signed_in(config, facts.dont_remember, auth, facts.now, facts.resign);
            serve.outcome = Outcome::CacheHit;
            serve.info.from_cache = true;
            serve.info.via_bearer = facts.via == Via::Bearer;
            return Decision::Serve(serve);
        }
        Lookup::Extended(auth) => {
            let mut serve = signed_in(config, facts.dont_remember, auth, facts.now, false);
            serve.plan.session = SessionCookie::Set {
                max_age: Some(config.lifetimes.expires_in),
            };
            // Re-issued for the new expiry, unless the cookie is another strategy's (the Better
            // Auth server's own refresh rewrites it).
            serve.plan.cache = store_read_cache(config, facts.dont_remember, facts.cache_cookie);
            serve.info.refreshed = true;
            serve.info.via_bearer = facts.via == Via::Bearer;
            return Decision::Serve(serve);
        }
        Lookup::NotExtended(auth) => {
            let mut serve = signed_in(config, facts.dont_remember, auth, facts.now, facts.resign);
            serve.plan.cache = store_read_cache(config, facts.dont_remember, facts.cache_cookie);
            serve.info.via_bearer = facts.via == Via::Bearer;
            return Decision::Serve(serve);
        }
        Lookup::Found(auth) => auth,
    };

    let verdict = match verdict(config, &auth.session, facts.now) {
        // A valid `dont_remember` cookie (read only now, when it can change the answer) or the
        // refresh switch keeps a due session as it is.
        Verdict::Due if config.lifetimes.disable_refresh || facts.dont_remember.get(config) => {
            Verdict::Valid
        }
        v => v,
    };
    if read_only {
        // Never write: expired is anonymous (no deletion, no Set-Cookie), a due refresh is only
        // reported.
        return Decision::Serve(match verdict {
            Verdict::Expired => {
                tracing::debug!(reason = "expired", token = %tag, "rejected a session (read-only)");
                Serve::anonymous(Outcome::Rejected, CookiePlan::default())
            }
            Verdict::Due | Verdict::Valid => Serve {
                auth: Some(auth),
                info: SessionInfo {
                    needs_refresh: verdict == Verdict::Due,
                    via_bearer: facts.via == Via::Bearer,
                    ..SessionInfo::default()
                },
                outcome: Outcome::Authenticated,
                plan: CookiePlan::default(),
            },
        });
    }
    match (verdict, facts.stage) {
        (Verdict::Expired, Stage::First) => {
            tracing::debug!(reason = "expired", token = %tag, "rejected a session");
            Decision::Write(Write::DeleteExpired {
                now: facts.now,
                then: Serve::anonymous(Outcome::Rejected, CookiePlan::clear()),
            })
        }
        (Verdict::Expired, Stage::Reread) => {
            Decision::Serve(Serve::anonymous(Outcome::Rejected, CookiePlan::clear()))
        }
        (Verdict::Due, Stage::First) => Decision::Write(Write::Extend {
            expires_at: facts.now + config.lifetimes.expires_in,
            auth,
        }),
        (verdict, stage) => {
            // Due again right after a write that matched nothing: unless another request has
            // just extended it (as with `update_age(0)`, where a fresh session is due at once),
            // the store's conditional write cannot read the table's dates.
            if verdict == Verdict::Due
                && stage == Stage::Reread
                && !just_extended(config, &auth, facts.now)
            {
                tracing::warn!("a due refresh wrote nothing; check that the store's date format matches the table");
            }
            let mut serve = signed_in(config, facts.dont_remember, auth, facts.now, facts.resign);
            serve.plan.cache = store_read_cache(config, facts.dont_remember, facts.cache_cookie);
            serve.info.via_bearer = facts.via == Via::Bearer;
            Decision::Serve(serve)
        }
    }
}

/// Whether `auth` expires about `expiresIn` from `now`: another request has just extended it.
/// Dates at the edge of the representable range (a corrupt row) say nothing.
fn just_extended(config: &SessionConfig, auth: &Authenticated, now: OffsetDateTime) -> bool {
    match (
        auth.session.expires_at.checked_add(Duration::seconds(1)),
        now.checked_add(config.lifetimes.expires_in),
    ) {
        (Some(expiry), Some(fresh)) => expiry >= fresh,
        _ => true,
    }
}

/// A signed-in answer; with `resign`, the session cookie re-signed with the current secret for
/// the session's remaining lifetime (a browser-session cookie for "don't remember me").
fn signed_in(
    config: &SessionConfig,
    dont_remember: &mut DontRemember<'_>,
    auth: Authenticated,
    now: OffsetDateTime,
    resign: bool,
) -> Serve {
    let mut plan = CookiePlan::default();
    if resign && !config.guards.read_only {
        tracing::debug!("re-signing a cookie verified with a previous secret");
        let left: Duration = auth.session.expires_at - now;
        plan.session = SessionCookie::Set {
            max_age: (!dont_remember.get(config)).then_some(left),
        };
    }
    Serve {
        auth: Some(auth),
        info: SessionInfo::default(),
        outcome: Outcome::Authenticated,
        plan,
    }
}

/// What a store read does to the cache cookie: re-issue it when the cache is on (as Better Auth
/// does on every store read), except for a "don't remember me" session (Better Auth's
/// `getSession` returns before `setCookieCache` for those: their cache comes from the sign-in
/// only); else expire an unusable one the request carried; one written with another strategy
/// is left alone.
fn store_read_cache(
    config: &SessionConfig,
    dont_remember: &mut DontRemember<'_>,
    incoming: IncomingCache,
) -> CacheCookie {
    if config.guards.read_only || incoming == IncomingCache::OtherStrategy {
        CacheCookie::Keep
    } else if config.cache.is_some() && !dont_remember.get(config) {
        CacheCookie::Issue {
            dont_remember: false,
            expire_first: incoming == IncomingCache::Unusable,
        }
    } else if incoming == IncomingCache::Unusable {
        CacheCookie::Expire
    } else {
        CacheCookie::Keep
    }
}

#[cfg(test)]
mod tests {
    //! The decision table, row by row, at its boundaries.

    use std::sync::Arc;

    use http::HeaderMap;
    use time::macros::datetime;

    use super::*;
    use crate::model::User;

    const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

    fn config(
        f: impl FnOnce(crate::SessionConfigBuilder) -> crate::SessionConfigBuilder,
    ) -> SessionConfig {
        f(SessionConfig::builder().secret("a-private-secret-of-at-least-32-bytes!!"))
            .build()
            .unwrap()
    }

    fn auth(expires_at: OffsetDateTime) -> Authenticated {
        let user = User::new("p@example.com", "P", NOW);
        Authenticated {
            session: Arc::new(Session::for_tests(&user.id, "t", expires_at, NOW)),
            user: Arc::new(user),
        }
    }

    fn decide_with(config: &SessionConfig, lookup: Lookup, stage: Stage, resign: bool) -> Decision {
        let headers = HeaderMap::new();
        let mut dont_remember = DontRemember::new(&headers);
        decide(
            config,
            Facts {
                lookup,
                stage,
                via: Via::Cookie,
                resign,
                cache_cookie: IncomingCache::Fine,
                dont_remember: &mut dont_remember,
                now: NOW,
                token: "t",
            },
        )
    }

    fn served(decision: Decision) -> Serve {
        match decision {
            Decision::Serve(serve) => serve,
            _ => panic!("expected to serve"),
        }
    }

    #[test]
    fn an_outage_fails_closed_or_serves_anonymous_and_keeps_every_cookie() {
        let closed = decide_with(&config(|b| b), Lookup::Unavailable, Stage::First, false);
        assert!(matches!(
            closed,
            Decision::Respond(LayerRejection::StoreUnavailable, Outcome::StoreError)
        ));
        let open = served(decide_with(
            &config(|b| b.on_store_error(OutagePolicy::Anonymous)),
            Lookup::Unavailable,
            Stage::First,
            false,
        ));
        assert!(open.auth.is_none());
        assert!(open.plan.is_empty(), "nobody is signed out by an outage");
        assert_eq!(open.outcome, Outcome::StoreErrorAnonymous);
    }

    #[test]
    fn missing_clears_unreadable_keeps() {
        let c = config(|b| b);
        let missing = served(decide_with(&c, Lookup::Missing, Stage::First, false));
        assert_eq!(missing.plan, CookiePlan::clear());
        assert_eq!(missing.outcome, Outcome::Rejected);
        let unreadable = served(decide_with(&c, Lookup::Unreadable, Stage::First, false));
        assert!(unreadable.auth.is_none() && unreadable.plan.is_empty());
    }

    #[test]
    fn expiry_is_strict_and_deletes_then_clears() {
        let c = config(|b| b);
        // Not expired at the exact millisecond of its expiry (a refresh is due then).
        let at = decide_with(&c, Lookup::Found(auth(NOW)), Stage::First, false);
        assert!(matches!(at, Decision::Write(Write::Extend { .. })));
        let past = decide_with(
            &c,
            Lookup::Found(auth(NOW - Duration::milliseconds(1))),
            Stage::First,
            false,
        );
        match past {
            Decision::Write(Write::DeleteExpired { now, then }) => {
                assert_eq!(now, NOW);
                assert_eq!(then.plan, CookiePlan::clear());
                assert!(then.auth.is_none());
            }
            _ => panic!("expired: delete, then clear"),
        }
    }

    #[test]
    fn refresh_is_due_exactly_when_the_last_refresh_is_update_age_old() {
        let c = config(|b| b);
        // expiresAt − 7 d + 1 d ≤ now  ⇔  expiresAt ≤ now + 6 d.
        let due = decide_with(
            &c,
            Lookup::Found(auth(NOW + Duration::days(6))),
            Stage::First,
            false,
        );
        match due {
            Decision::Write(Write::Extend { expires_at, .. }) => {
                assert_eq!(expires_at, NOW + Duration::days(7));
            }
            _ => panic!("due: extend"),
        }
        let not_yet = served(decide_with(
            &c,
            Lookup::Found(auth(NOW + Duration::days(6) + Duration::milliseconds(1))),
            Stage::First,
            false,
        ));
        assert!(not_yet.plan.is_empty(), "nothing written, nothing sent");
        // The refresh switch keeps a due session as it is.
        let off = served(decide_with(
            &config(|b| b.disable_refresh(true)),
            Lookup::Found(auth(NOW + Duration::days(6))),
            Stage::First,
            false,
        ));
        assert!(off.plan.is_empty());
    }

    #[test]
    fn an_extended_session_re_sends_the_cookie_for_expires_in() {
        let c = config(|b| b.bearer(crate::Bearer::Signed));
        let extended = served(decide_with(
            &c,
            Lookup::Extended(auth(NOW + Duration::days(7))),
            Stage::First,
            false,
        ));
        assert_eq!(
            extended.plan.session,
            SessionCookie::Set {
                max_age: Some(Duration::days(7))
            }
        );
        assert!(extended.info.refreshed);
        assert!(
            extended.plan.auth_token,
            "the bearer plugin answers set-auth-token"
        );
        let skipped = served(decide_with(
            &c,
            Lookup::NotExtended(auth(NOW + Duration::days(6))),
            Stage::First,
            false,
        ));
        assert!(skipped.auth.is_some() && skipped.plan.is_empty());
    }

    #[test]
    fn after_a_raced_refresh_the_row_read_again_decides_without_a_second_write() {
        let c = config(|b| b);
        let due = served(decide_with(
            &c,
            Lookup::Found(auth(NOW + Duration::days(6))),
            Stage::Reread,
            false,
        ));
        assert!(due.auth.is_some() && due.plan.is_empty());
        let gone = served(decide_with(
            &c,
            Lookup::Found(auth(NOW - Duration::seconds(1))),
            Stage::Reread,
            false,
        ));
        assert_eq!(gone.plan, CookiePlan::clear());
    }

    #[test]
    fn read_only_never_writes_and_reports_a_due_refresh() {
        let c = config(|b| b.read_only(true));
        let due = served(decide_with(
            &c,
            Lookup::Found(auth(NOW + Duration::days(6))),
            Stage::First,
            true,
        ));
        assert!(due.info.needs_refresh);
        assert!(due.plan.is_empty(), "no re-sign either");
        let expired = served(decide_with(
            &c,
            Lookup::Found(auth(NOW - Duration::seconds(1))),
            Stage::First,
            false,
        ));
        assert!(expired.auth.is_none() && expired.plan.is_empty());
        let missing = served(decide_with(&c, Lookup::Missing, Stage::First, false));
        assert!(missing.plan.is_empty());
    }

    #[test]
    fn a_previous_secret_re_signs_for_the_remaining_lifetime() {
        let c = config(|b| b);
        let valid = served(decide_with(
            &c,
            Lookup::Found(auth(NOW + Duration::days(6) + Duration::hours(1))),
            Stage::First,
            true,
        ));
        assert_eq!(
            valid.plan.session,
            SessionCookie::Set {
                max_age: Some(Duration::days(6) + Duration::hours(1))
            }
        );
        let cached = served(decide_with(
            &c,
            Lookup::Cached(auth(NOW + Duration::days(6) + Duration::hours(1))),
            Stage::First,
            true,
        ));
        assert_eq!(cached.outcome, Outcome::CacheHit);
        assert!(cached.info.from_cache);
        assert!(matches!(cached.plan.session, SessionCookie::Set { .. }));
    }

    #[test]
    fn every_store_read_re_issues_the_cache_and_a_cache_hit_sends_nothing() {
        let c = config(|b| b.cookie_cache(crate::CookieCache::compact()));
        let read = served(decide_with(
            &c,
            Lookup::Found(auth(NOW + Duration::days(6) + Duration::hours(1))),
            Stage::First,
            false,
        ));
        assert!(matches!(read.plan.cache, CacheCookie::Issue { .. }));
        let hit = served(decide_with(
            &c,
            Lookup::Cached(auth(NOW + Duration::days(6) + Duration::hours(1))),
            Stage::First,
            false,
        ));
        assert!(hit.plan.is_empty());
    }
}
