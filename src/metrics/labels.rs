//! The label values of the gateway's metrics, and the index of each in the arrays of counters
//! resolved at start (a request increments a counter it finds by index: no label hashing).

use crate::domain::format::TokenFormat;
use crate::domain::grant_type::GrantType;
use crate::domain::policy::Mode;
use crate::tokens::service::{Outcome, RevokeCause};

pub(super) const GRANTS: [GrantType; 3] = GrantType::ALL;
pub(super) const FORMATS: [TokenFormat; 2] = [TokenFormat::Jwt, TokenFormat::Opaque];
pub(super) const MODES: [&str; 3] = ["single", "multi", "reused"];
pub(super) const CAUSES: [RevokeCause; 5] = [
    RevokeCause::Request,
    RevokeCause::Renewal,
    RevokeCause::Cap,
    RevokeCause::RefreshReuse,
    RevokeCause::Admin,
];
pub(super) const VALIDATION_RESULTS: [&str; 6] = [
    "ok",
    "missing",
    "malformed",
    "invalid",
    "insufficient_scope",
    "unavailable",
];
/// Which bound on tokens held refused a token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `oauth.max_live_tokens` (503).
    Gateway,
    /// `oauth.max_live_tokens_per_client` (429).
    Client,
}

/// The endpoints that authenticate clients.
pub const AUTH_ENDPOINTS: [&str; 3] = ["token", "revoke", "introspect"];

/// The `cause` label of a revocation.
pub fn cause_label(cause: RevokeCause) -> &'static str {
    match cause {
        RevokeCause::Request => "request",
        RevokeCause::Renewal => "renewal",
        RevokeCause::Cap => "cap",
        RevokeCause::RefreshReuse => "refresh_reuse",
        RevokeCause::Admin => "admin",
    }
}

pub(super) fn mode_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::New(Mode::Single) => 0,
        Outcome::New(Mode::Multi) => 1,
        Outcome::Reused => 2,
    }
}

pub(super) fn grant_index(grant: GrantType) -> usize {
    match grant {
        GrantType::ClientCredentials => 0,
        GrantType::Password => 1,
        GrantType::RefreshToken => 2,
    }
}

pub(super) fn format_index(format: TokenFormat) -> usize {
    match format {
        TokenFormat::Jwt => 0,
        TokenFormat::Opaque => 1,
    }
}

pub(super) fn cause_index(cause: RevokeCause) -> usize {
    match cause {
        RevokeCause::Request => 0,
        RevokeCause::Renewal => 1,
        RevokeCause::Cap => 2,
        RevokeCause::RefreshReuse => 3,
        RevokeCause::Admin => 4,
    }
}

pub(super) fn bound_index(bound: Bound) -> usize {
    match bound {
        Bound::Gateway => 0,
        Bound::Client => 1,
    }
}

/// The result of one bearer check at the gateway, as `tokengate_validations_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    Ok,
    Missing,
    Malformed,
    Invalid,
    InsufficientScope,
    /// Cluster mode: the index was not trusted (cut off from the database too long), or a token
    /// not seen here could not be looked up.
    Unavailable,
}

pub(super) fn validation_index(result: Validation) -> usize {
    match result {
        Validation::Ok => 0,
        Validation::Missing => 1,
        Validation::Malformed => 2,
        Validation::Invalid => 3,
        Validation::InsufficientScope => 4,
        Validation::Unavailable => 5,
    }
}
