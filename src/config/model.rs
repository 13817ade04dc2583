//! The validated internal configuration: the only config type the rest of the gateway sees.
//!
//! Built by [`super::load`] from [`super::file::FileConfig`]; every value here has been checked,
//! defaults are filled in and relative paths resolved, so nothing downstream re-validates.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use super::client_auth::{ClientAuth, ClientKeys, SecretMethod};
use super::routes::RouteTable;
pub use super::start::{KeySettings, ProcessSettings, StartConfig, StoreSettings, TlsFiles};
use super::trusted_proxies::TrustedProxies;
use crate::domain::audience::AudienceSet;
use crate::domain::format::TokenFormat;
use crate::domain::grant_type::GrantSet;
use crate::domain::key::{ScopeSet, TokenKey};
use crate::domain::policy::RenewPolicy;

/// Clients and users by name. Every proxied request looks its token's client up (and its user,
/// if any): foldhash, randomly seeded, hashes a name in a fraction of SipHash's time, and the
/// names in these maps are the operator's, so no client can fill one with colliding keys.
pub type NameMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// Everything a running gateway is configured with: what only a restart changes ([`StartConfig`])
/// and what a reload swaps in (the rest).
#[derive(Debug, Clone)]
pub struct Config {
    pub start: StartConfig,
    pub server: ServerSettings,
    pub oauth: OAuthSettings,
    pub clients: NameMap<Arc<Client>>,
    pub users: NameMap<User>,
    pub routes: RouteTable,
    pub admin: AdminSettings,
}

/// `[admin]`: the admin API's credential, applied at reload (its listener,
/// `server.admin_listen`, is a start setting).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AdminSettings {
    /// SHA-256 of the admin bearer token; `None`: no admin request is accepted.
    pub token_sha256: Option<[u8; 32]>,
}

impl std::fmt::Debug for AdminSettings {
    /// Whether a credential is set, not its digest.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings")
            .field("token_sha256", &self.token_sha256.map(|_| "set"))
            .finish()
    }
}

/// `[server]`, the settings read per request (the listeners and process settings are in
/// [`StartConfig`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub access_log: bool,
    /// Deadline for reading an OAuth endpoint's whole request body.
    pub body_read_timeout: Duration,
    /// Longest wait for a TCP connection to an upstream (then 504).
    pub upstream_connect_timeout: Duration,
    /// Longest wait for an upstream's next bytes, read or written, once connected (then 504).
    pub upstream_timeout: Duration,
    /// How long an idle keep-alive client connection waits for its next request.
    pub keepalive_timeout: Duration,
    /// Client connections open at once; one more is refused.
    pub max_connections: usize,
    /// Reverse proxies whose forwarding headers are believed (see [`TrustedProxies`]).
    pub trusted_proxies: TrustedProxies,
}

/// `[oauth]`: lifetimes, renewal policies and bounds (the key files are in [`StartConfig`]).
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    pub issuer: String,
    /// `aud` of tokens requested without `resource`: `oauth.default_audience`, or the issuer.
    pub default_audience: AudienceSet,
    /// Oldest DPoP proof accepted, by its `iat`.
    pub dpop_proof_max_age_secs: u64,
    /// Every DPoP proof must carry a server nonce it got in `DPoP-Nonce`.
    pub dpop_nonce: bool,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub jwt_policy: RenewPolicy,
    pub opaque_policy: RenewPolicy,
    pub lockout: LockoutSettings,
    /// Access and refresh tokens held at once (the index's size), all clients together; 0 = no
    /// limit. A memory bound: a client looping on multi-mode issuance cannot take the whole
    /// machine (and every other client's tokens with it) down.
    pub max_live_tokens: u64,
    /// Access and refresh tokens one client holds at once; 0 = no limit but `max_live_tokens`.
    /// A client that floods the token endpoint meets this bound, not the gateway's, so the
    /// other clients still get tokens.
    pub max_live_tokens_per_client: u64,
}

/// Brute-force lockout of the OAuth endpoints (`oauth.lockout_*`). Applies live: the counters
/// live in the app state and read these numbers on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutSettings {
    /// Failures within `window` that lock a key out; 0 = the lockout is off.
    pub max_failures: u32,
    pub window: Duration,
    /// How long a locked-out key is refused.
    pub duration: Duration,
    /// Whether failures are also counted per client address.
    pub by_address: bool,
}

impl Default for LockoutSettings {
    /// The settings of an `[oauth]` table that sets none of them.
    fn default() -> LockoutSettings {
        let o = super::file::OAuthSection::default();
        LockoutSettings {
            max_failures: o.lockout_max_failures,
            window: Duration::from_secs(o.lockout_window_secs),
            duration: Duration::from_secs(o.lockout_secs),
            by_address: o.lockout_by_address,
        }
    }
}

impl OAuthSettings {
    /// The renewal policy for a token format.
    pub fn policy(&self, format: TokenFormat) -> &RenewPolicy {
        match format {
            TokenFormat::Jwt => &self.jwt_policy,
            TokenFormat::Opaque => &self.opaque_policy,
        }
    }
}

/// A registered OAuth client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    /// Its secret's SHA-256, or its public keys (`private_key_jwt`).
    pub auth: ClientAuth,
    pub token_format: TokenFormat,
    pub grant_types: GrantSet,
    /// The scopes this client may ask for.
    pub scopes: ScopeSet,
    /// Whether `client_credentials` also returns a refresh token.
    pub refresh_tokens_for_client_credentials: bool,
    /// Tokens this client may hold, when it has a bound of its own; `None`: the gateway's
    /// `oauth.max_live_tokens_per_client`.
    pub max_live_tokens: Option<u64>,
    /// The audiences it may ask for besides the default one; `None`: every route's audience.
    pub audiences: Option<AudienceSet>,
    /// `dpop = "required"`: every token request must carry a DPoP proof.
    pub dpop_required: bool,
}

impl Client {
    /// Tokens this client may hold (0 = no limit but the gateway's): its own bound, or
    /// `default` (`oauth.max_live_tokens_per_client`).
    pub fn live_token_bound(&self, default: u64) -> u64 {
        self.max_live_tokens.unwrap_or(default)
    }
}

/// A resource owner for the password grant.
#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
}

impl Config {
    /// Whether this config still allows a token of `key`: its client and its user (if it has
    /// one) are configured, and the client may still ask for every scope and every audience the
    /// token carries. Tokens of a removed client or user, or wider than their client's scopes or
    /// audiences now, stop working at once (fail closed).
    pub fn permits(&self, key: &TokenKey) -> bool {
        self.clients.get(&*key.client_id).is_some_and(|client| {
            client.scopes.is_superset(&key.scope) && self.audiences_allowed(client, key.audience())
        }) && (key.subject.is_empty() || self.users.contains_key(key.subject.as_str()))
    }

    /// Whether `client` may ask for a token for `uri`: the default audience, one it lists, or,
    /// when it lists none, a route's.
    pub fn may_target(&self, client: &Client, uri: &str) -> bool {
        self.oauth.default_audience.as_str() == uri
            || match &client.audiences {
                Some(listed) => listed.contains(uri),
                None => self.routes.has_audience(uri),
            }
    }

    /// Whether every audience of a token is still one its client may ask for. The common case,
    /// a token for the default audience, is one comparison; tokens stored before audiences
    /// existed (no audience) are not refused for it.
    fn audiences_allowed(&self, client: &Client, audience: &AudienceSet) -> bool {
        audience.as_str() == self.oauth.default_audience.as_str()
            || audience.iter().all(|uri| self.may_target(client, uri))
    }
}
