//! The validated internal configuration: the only config type the rest of the gateway sees.
//!
//! Built by [`super::load`] from [`super::file::FileConfig`]; every value here has been checked,
//! defaults are filled in and relative paths resolved, so nothing downstream re-validates.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::routes::RouteTable;
use super::trusted_proxies::TrustedProxies;
use crate::domain::format::JwtAlgorithm;
use crate::domain::format::TokenFormat;
use crate::domain::grant_type::GrantSet;
use crate::domain::key::{ScopeSet, TokenKey};
use crate::domain::policy::RenewPolicy;
use crate::store::Backend;

/// Everything a running gateway is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub oauth: OAuthSettings,
    pub clients: HashMap<String, Arc<Client>>,
    pub users: HashMap<String, User>,
    pub routes: RouteTable,
}

/// `[server]`. Read at start only (a reload that changes it is logged as needing a restart),
/// but for the per-request settings: `access_log`, the timeouts, `max_connections` and
/// `trusted_proxies` apply live.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub listen: String,
    pub threads: usize,
    pub metrics_listen: Option<String>,
    pub tls: Option<TlsFiles>,
    pub data_dir: PathBuf,
    pub grace_period_secs: u64,
    pub shutdown_timeout_secs: u64,
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

/// PEM files that turn the listener into HTTPS.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[store]`. Read at start only.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreSettings {
    pub backend: Backend,
    pub sweep_interval: Duration,
}

/// `[oauth]`. Lifetimes and renewal policies apply live; key settings at start only.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    pub issuer: String,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub jwt_signing_key: PathBuf,
    pub jwt_algorithm: JwtAlgorithm,
    /// Earlier signing keys whose public halves the JWKS also publishes (after a rotation).
    pub jwt_previous_keys: Vec<PathBuf>,
    pub server_key: PathBuf,
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
    fn default() -> LockoutSettings {
        LockoutSettings {
            max_failures: 10,
            window: Duration::from_secs(60),
            duration: Duration::from_secs(60),
            by_address: true,
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
    /// SHA-256 of the client secret; compared in constant time.
    pub secret_sha256: [u8; 32],
    pub token_format: TokenFormat,
    pub grant_types: GrantSet,
    /// The scopes this client may ask for.
    pub scopes: ScopeSet,
    /// Whether `client_credentials` also returns a refresh token.
    pub refresh_tokens_for_client_credentials: bool,
    /// Tokens this client may hold, when it has a bound of its own; `None`: the gateway's
    /// `oauth.max_live_tokens_per_client`.
    pub max_live_tokens: Option<u64>,
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
    /// one) are configured, and the client may still ask for every scope the token carries.
    /// Tokens of a removed client or user, or wider than their client's scopes now, stop working
    /// at once (fail closed).
    pub fn permits(&self, key: &TokenKey) -> bool {
        self.clients
            .get(&*key.client_id)
            .is_some_and(|client| client.scopes.is_superset(&key.scope))
            && (key.subject.is_empty() || self.users.contains_key(key.subject.as_str()))
    }

    /// Names the settings that differ from `other` and only take effect after a restart.
    /// `server.access_log` applies live, so it is not one of them.
    pub fn restart_only_changes(&self, other: &Config) -> Vec<&'static str> {
        let (a, b) = (&self.server, &other.server);
        let checks = [
            ("server.listen", a.listen != b.listen),
            ("server.threads", a.threads != b.threads),
            ("server.metrics_listen", a.metrics_listen != b.metrics_listen),
            ("server.tls_cert/tls_key", a.tls != b.tls),
            ("server.grace_period_secs", a.grace_period_secs != b.grace_period_secs),
            (
                "server.shutdown_timeout_secs",
                a.shutdown_timeout_secs != b.shutdown_timeout_secs,
            ),
            ("store.path", self.store.backend != other.store.backend),
            (
                "store.sweep_interval_secs",
                self.store.sweep_interval != other.store.sweep_interval,
            ),
            (
                "oauth.jwt_signing_key/jwt_algorithm",
                self.oauth.jwt_signing_key != other.oauth.jwt_signing_key
                    || self.oauth.jwt_algorithm != other.oauth.jwt_algorithm,
            ),
            (
                "oauth.jwt_previous_keys",
                self.oauth.jwt_previous_keys != other.oauth.jwt_previous_keys,
            ),
            ("oauth.server_key", self.oauth.server_key != other.oauth.server_key),
        ];
        checks
            .into_iter()
            .filter(|&(_, changed)| changed)
            .map(|(key, _)| key)
            .collect()
    }

    /// Takes the start-only settings (those [`Config::restart_only_changes`] names) from the
    /// config the process runs with, so that after a reload the live model still describes the
    /// running process (e.g. the JWKS and the tokens keep naming the signing algorithm in use) and a
    /// later reload reports them again until the restart.
    pub fn keep_start_only_settings(&mut self, running: &Config) {
        let live = &self.server;
        self.server = ServerSettings {
            access_log: live.access_log,
            body_read_timeout: live.body_read_timeout,
            upstream_connect_timeout: live.upstream_connect_timeout,
            upstream_timeout: live.upstream_timeout,
            keepalive_timeout: live.keepalive_timeout,
            max_connections: live.max_connections,
            trusted_proxies: live.trusted_proxies.clone(),
            ..running.server.clone()
        };
        self.store = running.store.clone();
        self.oauth.jwt_signing_key = running.oauth.jwt_signing_key.clone();
        self.oauth.jwt_algorithm = running.oauth.jwt_algorithm;
        self.oauth.jwt_previous_keys = running.oauth.jwt_previous_keys.clone();
        self.oauth.server_key = running.oauth.server_key.clone();
    }
}
