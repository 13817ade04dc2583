//! What a token request asks the engine for, and what it gets back.

use super::jwt::KeyError;
use crate::domain::audience::AudienceSet;
use crate::domain::format::TokenFormat;
use crate::domain::grant_type::GrantType;
use crate::domain::key::ScopeSet;
use crate::domain::policy::{Mode, RenewPolicy};
use crate::store::StoreError;

/// The bounds, as a token request carries them (from the live config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveLimits {
    /// Tokens (access and refresh) the index may hold, all clients together; 0 = no limit.
    pub total: u64,
    /// Tokens one client may hold; 0 = no limit but `total`.
    pub per_client: u64,
}

/// What a token request asks for, after client authentication and scope checks.
#[derive(Debug, Clone)]
pub struct IssueParams<'a> {
    pub client_id: &'a str,
    pub format: TokenFormat,
    pub grant: GrantType,
    /// The resource owner; empty for `client_credentials`.
    pub subject: &'a str,
    pub scope: ScopeSet,
    /// Where the token may be used: the `resource`s asked for, or the default audience.
    pub audience: AudienceSet,
    pub policy: RenewPolicy,
    pub access_ttl_secs: u64,
    /// `Some(ttl)` when a refresh token is to be issued with the access token.
    pub refresh_ttl_secs: Option<u64>,
    pub issuer: &'a str,
    /// Tokens (access and refresh) the index, and the client, may hold before a request that
    /// would add one is refused ([`ServiceError::Full`], [`ServiceError::ClientFull`]).
    pub limits: LiveLimits,
}

/// How an answer came about (for metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new token, in this mode.
    New(Mode),
    /// Opaque single mode handed out the existing token.
    Reused,
}

/// Why tokens were revoked (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeCause {
    Request,
    Renewal,
    Cap,
    RefreshReuse,
}

/// A successful token answer.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: u64,
    pub scope: String,
    pub refresh_token: Option<String>,
    pub outcome: Outcome,
    /// Tokens revoked as a side effect, with why.
    pub revoked: Vec<RevokeCause>,
}

/// Failures of the engine; each maps onto one protocol error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sign(#[from] KeyError),
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error("{0}")]
    InvalidScope(&'static str),
    /// RFC 8707 `invalid_target`.
    #[error("{0}")]
    InvalidTarget(&'static str),
    #[error("the token was not issued to this client")]
    NotOwner,
    /// A spent refresh token was presented again: its whole family has been revoked.
    #[error("the refresh token was already used; its token family is revoked")]
    RefreshReuse,
    /// The gateway holds `oauth.max_live_tokens` tokens; only requests that replace one pass
    /// until the sweeper or revocations make room.
    #[error("the gateway holds as many tokens as it may; retry later")]
    Full,
    /// The client holds `oauth.max_live_tokens_per_client` tokens; only its requests that
    /// replace one pass until some of its tokens are revoked or expire.
    #[error("this client holds as many tokens as it may; revoke some or retry later")]
    ClientFull,
}
