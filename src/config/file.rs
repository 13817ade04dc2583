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
    #[serde(default)]
    pub admin: AdminSection,
}

/// `[admin]`: the admin API's credential (the API listens on `server.admin_listen`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Hex SHA-256 of the admin bearer token; required when `server.admin_listen` is set.
    pub token_sha256: Option<String>,
}

/// `[server]`: listeners and process settings, and how client and upstream connections are
/// handled. Every default is in the `Default` impl below the struct.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address for the OAuth endpoints and proxied traffic.
    pub listen: String,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// Address of the Prometheus `/metrics` and `/healthz` listener. Off when absent.
    pub metrics_listen: Option<String>,
    /// Address of the admin API (`[admin]`). Off when absent.
    pub admin_listen: Option<String>,
    /// PEM certificate chain; with `tls_key` the listener speaks HTTPS.
    pub tls_cert: Option<String>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<String>,
    /// Folder for generated keys and the default store, beside the config file.
    pub data_dir: String,
    /// Seconds the open client connections get, after SIGTERM (or an upgrade's SIGQUIT) stopped
    /// the listeners, to end by themselves (every answer then closes its connection).
    pub grace_period_secs: u64,
    /// Seconds requests under way then get to finish (idle connections are closed).
    pub shutdown_timeout_secs: u64,
    /// Unix socket over which a gateway started with `--upgrade` receives the listening
    /// sockets of the running one. Default: `upgrade.sock` in `data_dir`.
    pub upgrade_sock: Option<String>,
    /// One info log line per proxied or answered request (it costs throughput).
    pub access_log: bool,
    /// Seconds an OAuth endpoint waits for the whole request body (slow-body defence).
    pub body_read_timeout_secs: u64,
    /// Seconds to wait for a TCP connection to an upstream.
    pub upstream_connect_timeout_secs: u64,
    /// Seconds to wait for an upstream's next bytes, read or written, once connected.
    pub upstream_timeout_secs: u64,
    /// Seconds an idle keep-alive client connection is kept open waiting for its next request
    /// (and the longest wait for each read of a request head).
    pub keepalive_timeout_secs: u64,
    /// Client connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Addresses or networks (`10.0.0.0/8`) of reverse proxies in front of the gateway, whose
    /// `X-Forwarded-*` headers are believed. None by default: the gateway is the edge.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerSection {
    fn default() -> ServerSection {
        ServerSection {
            listen: "127.0.0.1:8080".into(),
            threads: 2,
            metrics_listen: None,
            admin_listen: None,
            tls_cert: None,
            tls_key: None,
            data_dir: "data".into(),
            grace_period_secs: 1,
            shutdown_timeout_secs: 5,
            upgrade_sock: None,
            access_log: false,
            body_read_timeout_secs: 10,
            upstream_connect_timeout_secs: 5,
            upstream_timeout_secs: 60,
            keepalive_timeout_secs: 60,
            max_connections: 10_000,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[store]`: where tokens are kept durably.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// Embedded SQLite database file. Absent: `tokens.db` in the data folder.
    pub path: Option<String>,
    /// A PostgreSQL database (`postgres://...`) instead of the embedded file, shared by every
    /// node of a cluster.
    pub url: Option<String>,
    /// Connections to the PostgreSQL database (`url`), per node.
    pub pool_size: usize,
    /// With `url`: how long a node cut off from the database keeps answering bearer checks from
    /// its index before it answers 503 until it has caught up (0 = for ever). Default 30.
    pub stale_after_secs: Option<u64>,
    /// Seconds between sweeps of expired tokens.
    pub sweep_interval_secs: u64,
}

impl Default for StoreSection {
    fn default() -> StoreSection {
        StoreSection {
            path: None,
            url: None,
            pool_size: 8,
            stale_after_secs: None,
            sweep_interval_secs: 60,
        }
    }
}

/// `[oauth]`: token lifetimes, keys, the renewal policy per token format, and the bounds that
/// protect the endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthSection {
    /// Absent: `http://` and `server.listen`.
    pub issuer: Option<String>,
    /// `aud` of tokens requested without `resource`. Absent: the issuer.
    pub default_audience: Option<String>,
    /// Oldest DPoP proof accepted, by its `iat`, in seconds; its `jti` is remembered this long.
    pub dpop_proof_max_age_secs: u64,
    /// Server-provided DPoP nonces (RFC 9449 section 8): every proof must carry a recent one.
    pub dpop_nonce: bool,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// PEM private key. Absent: `jwt-<algorithm>.pem` in the data folder, generated if missing.
    pub jwt_signing_key: Option<String>,
    /// RS256, ES256 or EdDSA.
    pub jwt_algorithm: String,
    /// Earlier signing keys (PEM files, as `jwt_signing_key` takes them), published in the JWKS
    /// beside the current one after a key rotation.
    pub jwt_previous_keys: Vec<String>,
    /// Secret for opaque token tags (32+ random bytes, hex or raw). Absent: `server.key` in the
    /// data folder, generated if missing.
    pub server_key: Option<String>,
    /// Failed authentications of one key (an address, or a client id or username from one
    /// address) within `lockout_window_secs` that lock the key out; 0 turns the lockout off.
    pub lockout_max_failures: u32,
    /// Length of the window failures are counted in.
    pub lockout_window_secs: u64,
    /// How long a locked-out key is answered 429.
    pub lockout_secs: u64,
    /// Whether failures are also counted per client address; turn it off behind a reverse proxy
    /// that is not in `server.trusted_proxies`, where every client shares the proxy's address.
    pub lockout_by_address: bool,
    /// Access and refresh tokens the gateway holds at once, all clients together; a request
    /// that would add one beyond it is answered 503. 0 = no limit.
    pub max_live_tokens: u64,
    /// Access and refresh tokens one client holds at once; a request of that client that would
    /// add one beyond it is answered 429, so a client flooding the token endpoint does not use
    /// up `max_live_tokens` for the others. 0 = no limit but `max_live_tokens`.
    pub max_live_tokens_per_client: u64,
    pub jwt: FormatSection,
    pub opaque: FormatSection,
}

impl Default for OAuthSection {
    fn default() -> OAuthSection {
        OAuthSection {
            issuer: None,
            default_audience: None,
            dpop_proof_max_age_secs: 60,
            dpop_nonce: false,
            access_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 86_400,
            jwt_signing_key: None,
            jwt_algorithm: "RS256".into(),
            jwt_previous_keys: Vec::new(),
            server_key: None,
            lockout_max_failures: 10,
            lockout_window_secs: 60,
            lockout_secs: 60,
            lockout_by_address: true,
            // 1.3-2.7 GiB of index at 130-270 bytes a token: far above what a deployment holds
            // in normal use.
            max_live_tokens: 10_000_000,
            // A tenth of the gateway's bound, so one client flooding the token endpoint leaves
            // room for the others.
            max_live_tokens_per_client: 1_000_000,
            jwt: FormatSection::default(),
            opaque: FormatSection::default(),
        }
    }
}

/// `[oauth.jwt]` or `[oauth.opaque]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FormatSection {
    pub renew_token_without_revoking_existing: RenewSection,
}

/// `[oauth.<format>.renew_token_without_revoking_existing]`, word for word from WSO2.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenewSection {
    pub enable: bool,
    pub allowed_grant_types: Vec<String>,
    /// 0 = no cap.
    pub max_active_tokens: u32,
}

impl Default for RenewSection {
    fn default() -> RenewSection {
        RenewSection {
            enable: false,
            allowed_grant_types: vec!["client_credentials".into()],
            max_active_tokens: 0,
        }
    }
}

/// One `[[clients]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    pub id: String,
    /// Required but for `private_key_jwt` clients, which must not have one.
    pub secret_sha256: Option<String>,
    /// `client_secret_basic`, `client_secret_post` or `private_key_jwt`. Absent: a secret, sent
    /// by Basic or in the form.
    pub token_endpoint_auth_method: Option<String>,
    /// The client's public keys for `private_key_jwt`: a JWK Set inline...
    pub jwks: Option<String>,
    /// ...or in a file (relative to the config's folder), read again at every reload.
    pub jwks_file: Option<String>,
    /// "jwt" (default) or "opaque".
    #[serde(default = "default_token_type")]
    pub token_type: String,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub refresh_tokens_for_client_credentials: bool,
    /// This client's own bound on tokens held, in place of `oauth.max_live_tokens_per_client`
    /// (a batch client that legitimately holds many, say); 0 = no limit but the gateway's.
    pub max_live_tokens: Option<u64>,
    /// The audiences it may ask for with `resource`, besides the default one. Absent: every
    /// route's audience.
    pub audiences: Option<Vec<String>>,
    /// "optional" (default): a DPoP proof binds the tokens; "required": every token request
    /// must carry one.
    pub dpop: Option<String>,
}

fn default_token_type() -> String {
    "jwt".into()
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
    /// Tokens must carry this in `aud`; absent: any audience.
    pub audience: Option<String>,
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
