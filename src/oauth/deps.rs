//! What the OAuth endpoints use of the running gateway, and nothing more: the token engine, the
//! brute-force counters, the metrics, the password checker and the spent client assertions. The live config is passed per
//! request beside it. The endpoints are unit-tested with these alone, without a socket or a file.

use super::dpop_nonce::Nonces;
use super::lockout::Lockout;
use super::passwords::PasswordChecker;
use super::replay::ReplayCache;
use crate::metrics::Metrics;
use crate::tokens::service::TokenService;

/// The endpoints' dependencies, borrowed from the gateway's state for one request.
#[derive(Clone, Copy)]
pub struct OAuthDeps<'a> {
    pub tokens: &'a TokenService,
    pub lockout: &'a Lockout,
    pub metrics: &'a Metrics,
    pub passwords: &'a PasswordChecker,
    /// DPoP proofs seen (each is accepted once).
    pub proofs: &'a ReplayCache,
    /// Server nonces for DPoP proofs (`oauth.dpop_nonce`).
    pub nonces: &'a Nonces,
    /// The `jti`s of the client assertions already used (`private_key_jwt`).
    pub replay: &'a ReplayCache,
}
