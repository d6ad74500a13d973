//! What the layer counts and times, with the labels as enums: a label cannot be mistyped, and
//! every label is a `&'static str`, so recording allocates nothing.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `tower_auth_session_requests_total` | counter | `outcome`: [`Outcome`] |
//! | `tower_auth_session_refreshes_total` | counter | — |
//! | `tower_auth_session_store_seconds` | histogram | `op`: [`StoreOp`] (store round trips only) |
//! | `tower_auth_session_store_errors_total` | counter | `op`: [`StoreOp`] |

/// How the layer treated one request: the `outcome` label of
/// `tower_auth_session_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// No session cookie or bearer credential.
    NoCredential,
    /// A credential whose signature did not verify (or that could not be decoded).
    BadSignature,
    /// A cookie-authenticated write from an origin that is not trusted: `403`.
    UntrustedOrigin,
    /// Signed in from the store.
    Authenticated,
    /// Signed in from a valid cookie-cache cookie, without a store read.
    CacheHit,
    /// Signed in with a JWT from Better Auth's `jwt()` plugin.
    Jwt,
    /// A JWT that was refused (malformed, expired, wrongly signed, an unknown `kid`):
    /// anonymous.
    JwtRejected,
    /// A verified credential for a session that is unknown, expired, or whose user is gone.
    Rejected,
    /// A session row the store could not read: served as anonymous, cookies kept.
    Unreadable,
    /// The store failed or timed out: `503`.
    StoreError,
    /// The store failed or timed out and the request was served as anonymous
    /// ([`OutagePolicy::Anonymous`](crate::OutagePolicy::Anonymous)).
    StoreErrorAnonymous,
}

impl Outcome {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoCredential => "no_credential",
            Self::BadSignature => "bad_signature",
            Self::UntrustedOrigin => "untrusted_origin",
            Self::Authenticated => "authenticated",
            Self::CacheHit => "cache_hit",
            Self::Jwt => "jwt",
            Self::JwtRejected => "jwt_rejected",
            Self::Rejected => "rejected",
            Self::Unreadable => "unreadable",
            Self::StoreError => "store_error",
            Self::StoreErrorAnonymous => "store_error_anonymous",
        }
    }

    /// Counts one request with this outcome. Each label is a literal in its own macro call, so
    /// the key is built statically: counting allocates nothing.
    pub(crate) fn count(self) {
        macro_rules! count {
            ($($variant:ident => $label:literal),* $(,)?) => {
                match self {
                    $(Self::$variant => metrics::counter!(
                        "tower_auth_session_requests_total", "outcome" => $label
                    ).increment(1),)*
                }
            };
        }
        count!(
            NoCredential => "no_credential",
            BadSignature => "bad_signature",
            UntrustedOrigin => "untrusted_origin",
            Authenticated => "authenticated",
            CacheHit => "cache_hit",
            Jwt => "jwt",
            JwtRejected => "jwt_rejected",
            Rejected => "rejected",
            Unreadable => "unreadable",
            StoreError => "store_error",
            StoreErrorAnonymous => "store_error_anonymous",
        );
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A store call the layer makes while serving a request: the `op` label of the store metrics,
/// and the operation a [`StoreError::Timeout`](crate::StoreError::Timeout) names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreOp {
    /// Looking a session up.
    Find,
    /// Extending a session due for a refresh.
    Extend,
    /// Deleting an expired session.
    Delete,
}

impl StoreOp {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Find => "find",
            Self::Extend => "extend",
            Self::Delete => "delete",
        }
    }

    /// Records one round trip of this operation (literal labels: no allocation).
    pub(crate) fn record(self, seconds: f64, failed: bool) {
        macro_rules! record {
            ($($variant:ident => $label:literal),* $(,)?) => {
                match self {
                    $(Self::$variant => {
                        metrics::histogram!("tower_auth_session_store_seconds", "op" => $label)
                            .record(seconds);
                        if failed {
                            metrics::counter!("tower_auth_session_store_errors_total", "op" => $label)
                                .increment(1);
                        }
                    })*
                }
            };
        }
        record!(Find => "find", Extend => "extend", Delete => "delete");
    }
}

impl std::fmt::Display for StoreOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts one refresh written to the store.
pub(crate) fn refreshed() {
    metrics::counter!("tower_auth_session_refreshes_total").increment(1);
}
