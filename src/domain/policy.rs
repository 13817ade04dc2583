//! The renewal decision (docs/renewal-policy.md, section 3): what happens when a key that already holds tokens
//! asks for another. A pure function of the key's active tokens, the policy and the clock, so
//! every row of the table is unit-tested without sockets, stores or time passing.

use super::format::TokenFormat;
use super::grant_type::{GrantSet, GrantType};

/// `[oauth.<format>.renew_token_without_revoking_existing]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewPolicy {
    /// `enable`: false (the default) keeps one active token per key.
    pub enable: bool,
    /// `allowed_grant_types`: the grants multi mode applies to. Default `["client_credentials"]`;
    /// a list that is given replaces the default.
    pub allowed_grant_types: GrantSet,
    /// `max_active_tokens`: in multi mode, the oldest active tokens beyond this many are revoked.
    /// 0 = unlimited.
    pub max_active_tokens: u32,
}

impl Default for RenewPolicy {
    fn default() -> Self {
        RenewPolicy {
            enable: false,
            allowed_grant_types: GrantSet::of(&[GrantType::ClientCredentials]),
            max_active_tokens: 0,
        }
    }
}

/// Whether a request renews by replacing (single) or by adding (multi).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Single,
    Multi,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Multi => "multi",
        }
    }
}

impl RenewPolicy {
    /// Multi mode applies when `enable` is set and the request's grant is allowed.
    pub fn mode(&self, grant: GrantType) -> Mode {
        if self.enable && self.allowed_grant_types.contains(grant) {
            Mode::Multi
        } else {
            Mode::Single
        }
    }
}

/// What the policy needs to know of one ACTIVE token of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveToken {
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
}

/// Why a token stops being active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retire {
    /// Replaced by a single-mode renewal (JWT), or by a refresh in single mode.
    RevokeRenewal,
    /// Pushed out by `max_active_tokens`.
    RevokeCap,
    /// Its time is up (or within 1 s of it) and it is being replaced.
    Expire,
}

/// The decision for one token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Opaque single mode: answer with the existing token at `index` again.
    Reuse { index: usize, expires_in_secs: u64 },
    /// Issue a new token after retiring these existing ones (indexes into the input).
    Issue { retire: Vec<(usize, Retire)> },
}

/// How much life an opaque token must have left to be handed out again.
pub const REUSE_MIN_REMAINING_MS: u64 = 1000;

/// Decides a token request for a key whose ACTIVE tokens are `active`, oldest first.
///
/// `reuse_allowed` is false for the `refresh_token` grant, which always yields a new token.
pub fn decide(
    format: TokenFormat,
    mode: Mode,
    reuse_allowed: bool,
    max_active_tokens: u32,
    active: &[ActiveToken],
    now_ms: u64,
) -> Decision {
    let mut retire = Vec::new();
    let mut alive = Vec::new();
    for (i, t) in active.iter().enumerate() {
        if t.expires_at_ms <= now_ms {
            retire.push((i, Retire::Expire));
        } else {
            alive.push(i);
        }
    }
    match (format, mode) {
        (_, Mode::Multi) => {
            let cap = max_active_tokens as usize;
            if cap > 0 && alive.len() + 1 > cap {
                let excess = alive.len() + 1 - cap;
                retire.extend(alive.iter().take(excess).map(|&i| (i, Retire::RevokeCap)));
            }
        }
        (TokenFormat::Opaque, Mode::Single) if reuse_allowed => {
            // Newest by issue time; tokens issued in the same second are ordered by position
            // (the input is oldest first).
            let newest_usable = alive
                .iter()
                .copied()
                .filter(|&i| active[i].expires_at_ms - now_ms > REUSE_MIN_REMAINING_MS)
                .max_by_key(|&i| (active[i].issued_at_ms, i));
            if let Some(index) = newest_usable {
                let t = active[index];
                let lifetime_secs = t.expires_at_ms.saturating_sub(t.issued_at_ms) / 1000;
                let remaining_secs = (t.expires_at_ms - now_ms) / 1000;
                return Decision::Reuse {
                    index,
                    expires_in_secs: remaining_secs.min(lifetime_secs),
                };
            }
            retire.extend(alive.iter().map(|&i| (i, Retire::Expire)));
        }
        (_, Mode::Single) => {
            retire.extend(alive.iter().map(|&i| (i, Retire::RevokeRenewal)));
        }
    }
    retire.sort_unstable_by_key(|(i, _)| *i);
    Decision::Issue { retire }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
