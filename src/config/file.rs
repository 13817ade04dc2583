//! The configuration file as users write it: serde structs, one per TOML table.
//!
//! Every table rejects unknown keys so a typo is an error that names the key instead of a setting
//! silently ignored. Nothing here is validated beyond its TOML type: [`super::model`] turns these
//! structs into the checked internal model the rest of the gateway uses.

use serde::Deserialize;

/// The whole `gateway.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub oauth: OAuthSection,
    #[serde(default)]
    pub clients: Vec<ClientEntry>,
    #[serde(default)]
    pub users: Vec<UserEntry>,
    #[serde(default)]
    pub routes: Vec<RouteEntry>,
}

/// `[server]`: listeners and process settings (changing them needs a restart).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address for the OAuth endpoints and proxied traffic. Default `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Worker threads of the proxy service. Default 2.
    pub threads: Option<usize>,
    /// Address of the Prometheus `/metrics` and `/healthz` listener. Off when absent.
    pub metrics_listen: Option<String>,
    /// PEM certificate chain; with `tls_key` the listener speaks HTTPS.
    pub tls_cert: Option<String>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<String>,
    /// Folder for generated keys and the default store. Default `data` beside the config file.
    pub data_dir: Option<String>,
    /// Seconds SIGTERM waits before closing listeners. Default 1.
    pub grace_period_secs: Option<u64>,
    /// Seconds in-flight requests get to finish after the grace period. Default 5.
    pub shutdown_timeout_secs: Option<u64>,
    /// One info log line per proxied or answered request. Default false (it costs throughput).
    pub access_log: Option<bool>,
    /// Seconds an OAuth endpoint waits for the whole request body (slow-body defence). Default 10.
    pub body_read_timeout_secs: Option<u64>,
    /// Seconds to wait for a TCP connection to an upstream. Default 5.
    pub upstream_connect_timeout_secs: Option<u64>,
    /// Seconds to wait for an upstream's next bytes, read or written, once connected. Default 60.
    pub upstream_timeout_secs: Option<u64>,
    /// Seconds an idle keep-alive client connection is kept open waiting for its next request
    /// (and the longest wait for each read of a request head). Default 60.
    pub keepalive_timeout_secs: Option<u64>,
    /// Client connections open at once; one more is answered 503 and closed. Default 10,000.
    pub max_connections: Option<usize>,
    /// Addresses or networks (`10.0.0.0/8`) of reverse proxies in front of the gateway, whose
    /// `X-Forwarded-*` headers are believed. Default none: the gateway is the edge.
    pub trusted_proxies: Option<Vec<String>>,
}

/// `[store]`: where tokens are kept durably.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// Embedded SQLite database file. Default `<data_dir>/tokens.db`.
    pub path: Option<String>,
    /// Shared database for cluster mode (`postgres://...`). Not supported yet: refused.
    pub url: Option<String>,
    /// Seconds between sweeps of expired tokens. Default 60.
    pub sweep_interval_secs: Option<u64>,
}

/// `[oauth]`: token lifetimes, keys and the renewal policy per token format.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSection {
    pub issuer: Option<String>,
    pub access_token_ttl_secs: Option<u64>,
    pub refresh_token_ttl_secs: Option<u64>,
    pub jwt_signing_key: Option<String>,
    pub jwt_algorithm: Option<String>,
    /// Earlier signing keys (PEM files, as `jwt_signing_key` takes them), published in the JWKS
    /// beside the current one after a key rotation. Default none.
    pub jwt_previous_keys: Option<Vec<String>>,
    /// Secret for opaque token tags (32+ random bytes, hex or raw). Default `<data_dir>/server.key`.
    pub server_key: Option<String>,
    /// Failed authentications of one key (client id, client address or username) within
    /// `lockout_window_secs` that lock the key out. Default 10; 0 turns the lockout off.
    pub lockout_max_failures: Option<u32>,
    /// Length of the window failures are counted in. Default 60.
    pub lockout_window_secs: Option<u64>,
    /// How long a locked-out key is answered 429. Default 60.
    pub lockout_secs: Option<u64>,
    /// Whether failures are also counted per client address. Default true; turn it off behind a
    /// reverse proxy, where every client shares the proxy's address.
    pub lockout_by_address: Option<bool>,
    /// Access and refresh tokens the gateway holds at once, all clients together; a request
    /// that would add one beyond it is answered 503. Default 10,000,000; 0 = no limit.
    pub max_live_tokens: Option<u64>,
    /// Access and refresh tokens one client holds at once; a request of that client that would
    /// add one beyond it is answered 429, so a client flooding the token endpoint does not use
    /// up `max_live_tokens` for the others. Default 1,000,000; 0 = no limit but
    /// `max_live_tokens`.
    pub max_live_tokens_per_client: Option<u64>,
    #[serde(default)]
    pub jwt: FormatSection,
    #[serde(default)]
    pub opaque: FormatSection,
}

/// `[oauth.jwt]` or `[oauth.opaque]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatSection {
    pub renew_token_without_revoking_existing: Option<RenewSection>,
}

/// `[oauth.<format>.renew_token_without_revoking_existing]`, word for word from WSO2.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewSection {
    pub enable: Option<bool>,
    pub allowed_grant_types: Option<Vec<String>>,
    pub max_active_tokens: Option<u32>,
}

/// One `[[clients]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    pub id: String,
    pub secret_sha256: String,
    pub token_type: Option<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub refresh_tokens_for_client_credentials: Option<bool>,
    /// This client's own bound on tokens held, in place of `oauth.max_live_tokens_per_client`
    /// (a batch client that legitimately holds many, say); 0 = no limit but the gateway's.
    pub max_live_tokens: Option<u64>,
}

/// One `[[users]]` entry (resource owners for the password grant).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub username: String,
    pub password_hash: String,
}

/// One `[[routes]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    pub path_prefix: String,
    /// One server, `host:port`; or several in `upstreams` (one of the two).
    pub upstream: Option<String>,
    pub upstreams: Option<Vec<String>>,
    /// `round_robin` (default), `random` or `consistent_hash` (by the token's client id).
    pub load_balancing: Option<String>,
    /// An active check of every server; none by default.
    pub health_check: Option<HealthCheckEntry>,
    /// HTTPS to the servers. Default false.
    pub upstream_tls: Option<bool>,
    /// The name sent and verified; default the host part of each server.
    pub upstream_sni: Option<String>,
    /// PEM bundle of the CAs the servers' certificates are verified against; default the system's.
    pub upstream_ca: Option<String>,
    /// PEM certificate chain and key the gateway presents to the servers (mutual TLS).
    pub upstream_client_cert: Option<String>,
    pub upstream_client_key: Option<String>,
    /// Turns certificate verification off; logged as a warning at every load.
    pub insecure_skip_verify: Option<bool>,
    /// Seconds between resolutions of the servers' host names; default only at load.
    pub resolve_interval_secs: Option<u64>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub auth: Option<bool>,
}

/// A route's `health_check = { path, interval_secs, timeout_ms }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckEntry {
    /// `GET` this path, expecting 200; without it, a TCP connect check.
    pub path: Option<String>,
    pub interval_secs: Option<u64>,
    pub timeout_ms: Option<u64>,
}
