//! Read, parse and validate a config file into the internal model. Never panics: every problem is
//! a [`ConfigError`] whose message names the key (or line) at fault.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::file::{ClientEntry, FileConfig, OAuthSection, RenewSection, RouteEntry};
use super::model::{Client, Config, LockoutSettings, OAuthSettings, ServerSettings, StoreSettings, TlsFiles, User};
use crate::gateway::balancer::Balancer;
use crate::gateway::forwarded::TrustedProxies;
use crate::gateway::routes::{Route, RouteTable};
use crate::oauth::grant_type::{GrantSet, GrantType};
use crate::oauth::policy::RenewPolicy;
use crate::tokens::format::TokenFormat;
use crate::tokens::jwt::JwtAlgorithm;
use crate::tokens::key::ScopeSet;

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Syntax(String),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

const TYPOGRAPHIC_QUOTES: [char; 4] = ['\u{201C}', '\u{201D}', '\u{2018}', '\u{2019}'];
const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;
const MAX_LOCKOUT_SECS: u64 = 24 * 3600;
/// `oauth.max_live_tokens` when unset: 1.3-2.7 GiB of index at 130-270 bytes a token (README,
/// Performance), far above what a deployment holds in normal use.
pub const DEFAULT_MAX_LIVE_TOKENS: u64 = 10_000_000;
/// `oauth.max_live_tokens_per_client` when unset: a tenth of the gateway's default bound, so
/// one client flooding the token endpoint leaves room for the others. One client holding a
/// million one-hour tokens would be issuing ~280 a second without ever reusing one.
pub const DEFAULT_MAX_LIVE_TOKENS_PER_CLIENT: u64 = 1_000_000;

/// Reads and validates the file at `path`; relative paths inside resolve against its folder.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_str(&text, base)
}

/// Parses and validates config text; relative paths resolve against `base`.
pub fn parse_str(text: &str, base: &Path) -> Result<Config, ConfigError> {
    let file: FileConfig = toml::from_str(text).map_err(|e| {
        let mut msg = e.to_string();
        if text.contains(TYPOGRAPHIC_QUOTES) {
            msg.push_str(
                "\nhint: the file contains typographic quotes (\u{201C} \u{201D}), as pasted from \
                 the WSO2 documentation; TOML needs straight quotes: \"client_credentials\"",
            );
        }
        ConfigError::Syntax(msg.trim_end().to_string())
    })?;
    build(file, base)
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn build(file: FileConfig, base: &Path) -> Result<Config, ConfigError> {
    let s = file.server;
    let listen = s.listen.unwrap_or_else(|| "127.0.0.1:8080".to_string());
    listen
        .parse::<SocketAddr>()
        .map_err(|e| invalid("server.listen", format!("{listen:?} is not an IP:port address ({e})")))?;
    if let Some(m) = &s.metrics_listen {
        m.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "server.metrics_listen",
                format!("{m:?} is not an IP:port address ({e})"),
            )
        })?;
    }
    let threads = s.threads.unwrap_or(2);
    if !(1..=256).contains(&threads) {
        return Err(invalid("server.threads", "must be between 1 and 256"));
    }
    let tls = match (s.tls_cert, s.tls_key) {
        (Some(c), Some(k)) => Some(TlsFiles {
            cert: resolve(base, &c),
            key: resolve(base, &k),
        }),
        (None, None) => None,
        (Some(_), None) => return Err(invalid("server.tls_key", "tls_cert is set, tls_key is missing")),
        (None, Some(_)) => return Err(invalid("server.tls_cert", "tls_key is set, tls_cert is missing")),
    };
    let data_dir = resolve(base, s.data_dir.as_deref().unwrap_or("data"));
    let body_read_timeout = seconds("server.body_read_timeout_secs", s.body_read_timeout_secs, 10, 300)?;
    let upstream_connect_timeout = seconds(
        "server.upstream_connect_timeout_secs",
        s.upstream_connect_timeout_secs,
        5,
        300,
    )?;
    let upstream_timeout = seconds("server.upstream_timeout_secs", s.upstream_timeout_secs, 60, 3600)?;
    let keepalive_timeout = seconds("server.keepalive_timeout_secs", s.keepalive_timeout_secs, 60, 3600)?;
    let max_connections = s.max_connections.unwrap_or(10_000);
    if !(1..=1_000_000).contains(&max_connections) {
        return Err(invalid("server.max_connections", "must be between 1 and 1000000"));
    }
    let trusted_proxies = TrustedProxies::parse(s.trusted_proxies.as_deref().unwrap_or_default())
        .map_err(|e| invalid("server.trusted_proxies", e))?;
    let server = ServerSettings {
        listen: listen.clone(),
        threads,
        metrics_listen: s.metrics_listen,
        tls,
        data_dir: data_dir.clone(),
        grace_period_secs: s.grace_period_secs.unwrap_or(1),
        shutdown_timeout_secs: s.shutdown_timeout_secs.unwrap_or(5),
        access_log: s.access_log.unwrap_or(false),
        body_read_timeout,
        upstream_connect_timeout,
        upstream_timeout,
        keepalive_timeout,
        max_connections,
        trusted_proxies,
    };

    if file.store.url.is_some() {
        return Err(invalid(
            "store.url",
            "cluster mode (a shared PostgreSQL store) is not available in this version; use store.path",
        ));
    }
    let sweep = file.store.sweep_interval_secs.unwrap_or(60);
    if sweep == 0 {
        return Err(invalid("store.sweep_interval_secs", "must be at least 1"));
    }
    let store = StoreSettings {
        path: file
            .store
            .path
            .map(|p| resolve(base, &p))
            .unwrap_or_else(|| data_dir.join("tokens.db")),
        sweep_interval: Duration::from_secs(sweep),
    };

    let o = file.oauth;
    let access_ttl = o.access_token_ttl_secs.unwrap_or(3600);
    let refresh_ttl = o.refresh_token_ttl_secs.unwrap_or(86400);
    for (key, v) in [
        ("oauth.access_token_ttl_secs", access_ttl),
        ("oauth.refresh_token_ttl_secs", refresh_ttl),
    ] {
        if v == 0 || v > MAX_TTL_SECS {
            return Err(invalid(key, format!("must be between 1 and {MAX_TTL_SECS}")));
        }
    }
    let lockout = lockout_settings(&o)?;
    let alg_name = o.jwt_algorithm.unwrap_or_else(|| "RS256".to_string());
    let jwt_algorithm = JwtAlgorithm::parse(&alg_name).ok_or_else(|| {
        invalid(
            "oauth.jwt_algorithm",
            format!("{alg_name:?} is not one of RS256, ES256, EdDSA"),
        )
    })?;
    let jwt_signing_key = o
        .jwt_signing_key
        .map(|p| resolve(base, &p))
        .unwrap_or_else(|| data_dir.join(format!("jwt-{}.pem", jwt_algorithm.as_str().to_ascii_lowercase())));
    let oauth = OAuthSettings {
        issuer: o.issuer.unwrap_or_else(|| format!("http://{listen}")),
        access_token_ttl_secs: access_ttl,
        refresh_token_ttl_secs: refresh_ttl,
        jwt_signing_key,
        jwt_algorithm,
        jwt_previous_keys: o
            .jwt_previous_keys
            .unwrap_or_default()
            .iter()
            .map(|p| resolve(base, p))
            .collect(),
        server_key: o
            .server_key
            .map(|p| resolve(base, &p))
            .unwrap_or_else(|| data_dir.join("server.key")),
        jwt_policy: renew_policy("oauth.jwt", o.jwt.renew_token_without_revoking_existing)?,
        opaque_policy: renew_policy("oauth.opaque", o.opaque.renew_token_without_revoking_existing)?,
        lockout,
        max_live_tokens: o.max_live_tokens.unwrap_or(DEFAULT_MAX_LIVE_TOKENS),
        max_live_tokens_per_client: o
            .max_live_tokens_per_client
            .unwrap_or(DEFAULT_MAX_LIVE_TOKENS_PER_CLIENT),
    };

    let mut clients = HashMap::new();
    for (i, c) in file.clients.into_iter().enumerate() {
        let client = client(i, c)?;
        if clients.contains_key(&client.id) {
            return Err(invalid(
                format!("clients[{i}].id"),
                format!("duplicate client id {:?}", client.id),
            ));
        }
        clients.insert(client.id.clone(), Arc::new(client));
    }

    let mut users = HashMap::new();
    for (i, u) in file.users.into_iter().enumerate() {
        let key = format!("users[{i}]");
        if u.username.is_empty() || u.username.len() > 256 || u.username.chars().any(char::is_control) {
            return Err(invalid(
                format!("{key}.username"),
                "must be 1 to 256 bytes without control characters",
            ));
        }
        if !u.password_hash.starts_with("$argon2id$") || argon2::PasswordHash::new(&u.password_hash).is_err() {
            return Err(invalid(
                format!("{key}.password_hash"),
                "must be an argon2id PHC string (make one with `tokengate hash-password`)",
            ));
        }
        if users.contains_key(&u.username) {
            return Err(invalid(
                format!("{key}.username"),
                format!("duplicate user {:?}", u.username),
            ));
        }
        users.insert(
            u.username.clone(),
            User {
                username: u.username,
                password_hash: u.password_hash,
            },
        );
    }

    let mut routes = Vec::new();
    for (i, r) in file.routes.into_iter().enumerate() {
        routes.push(route(i, r, base)?);
    }
    let routes = RouteTable::new(routes)
        .map_err(|prefix| invalid("routes", format!("two routes have the same path_prefix {prefix:?}")))?;

    Ok(Config {
        server,
        store,
        oauth,
        clients,
        users,
        routes,
    })
}

fn grant_list(key: &str, names: &[String]) -> Result<GrantSet, ConfigError> {
    let mut set = GrantSet::EMPTY;
    for name in names {
        let grant = GrantType::parse(name).ok_or_else(|| {
            let mut msg = format!("unknown grant type {name:?} (known: client_credentials, password, refresh_token)");
            if name.contains(TYPOGRAPHIC_QUOTES) {
                msg.push_str("; use straight quotes \" instead of typographic ones");
            }
            invalid(key, msg)
        })?;
        set.insert(grant);
    }
    Ok(set)
}

/// A setting in whole seconds: `default` when absent, else between 1 and `max`.
fn seconds(key: &str, value: Option<u64>, default: u64, max: u64) -> Result<Duration, ConfigError> {
    match value.unwrap_or(default) {
        s if (1..=max).contains(&s) => Ok(Duration::from_secs(s)),
        _ => Err(invalid(key, format!("must be between 1 and {max}"))),
    }
}

fn lockout_settings(o: &OAuthSection) -> Result<LockoutSettings, ConfigError> {
    let d = LockoutSettings::default();
    let secs = |key: &str, v: Option<u64>, default: Duration| seconds(key, v, default.as_secs(), MAX_LOCKOUT_SECS);
    Ok(LockoutSettings {
        max_failures: o.lockout_max_failures.unwrap_or(d.max_failures),
        window: secs("oauth.lockout_window_secs", o.lockout_window_secs, d.window)?,
        duration: secs("oauth.lockout_secs", o.lockout_secs, d.duration)?,
        by_address: o.lockout_by_address.unwrap_or(d.by_address),
    })
}

fn renew_policy(prefix: &str, section: Option<RenewSection>) -> Result<RenewPolicy, ConfigError> {
    let section = section.unwrap_or_default();
    let key = format!("{prefix}.renew_token_without_revoking_existing.allowed_grant_types");
    let allowed = match &section.allowed_grant_types {
        Some(list) => grant_list(&key, list)?,
        None => GrantSet::of(&[GrantType::ClientCredentials]),
    };
    Ok(RenewPolicy {
        enable: section.enable.unwrap_or(false),
        allowed_grant_types: allowed,
        max_active_tokens: section.max_active_tokens.unwrap_or(0),
    })
}

fn client(i: usize, c: ClientEntry) -> Result<Client, ConfigError> {
    let key = format!("clients[{i}]");
    if c.id.is_empty() || c.id.len() > 256 || c.id.chars().any(|ch| ch.is_control()) {
        return Err(invalid(
            format!("{key}.id"),
            "must be 1 to 256 bytes without control characters",
        ));
    }
    let mut secret_sha256 = [0u8; 32];
    hex::decode_to_slice(c.secret_sha256.trim(), &mut secret_sha256).map_err(|_| {
        invalid(
            format!("{key}.secret_sha256"),
            "must be 64 hex digits (make it with `tokengate hash-secret`)",
        )
    })?;
    let format_name = c.token_type.as_deref().unwrap_or("jwt");
    let token_format = TokenFormat::parse(format_name).ok_or_else(|| {
        invalid(
            format!("{key}.token_type"),
            format!("{format_name:?} is not \"jwt\" or \"opaque\""),
        )
    })?;
    let grant_types = grant_list(&format!("{key}.grant_types"), &c.grant_types)?;
    if grant_types == GrantSet::EMPTY {
        return Err(invalid(format!("{key}.grant_types"), "lists no grant type"));
    }
    let scopes = ScopeSet::from_tokens(c.scopes.iter().map(String::as_str))
        .map_err(|e| invalid(format!("{key}.scopes"), e.to_string()))?;
    let refresh_cc = c.refresh_tokens_for_client_credentials.unwrap_or(false);
    if refresh_cc && !grant_types.contains(GrantType::RefreshToken) {
        return Err(invalid(
            format!("{key}.refresh_tokens_for_client_credentials"),
            "needs \"refresh_token\" in grant_types",
        ));
    }
    Ok(Client {
        id: c.id,
        secret_sha256,
        token_format,
        grant_types,
        scopes,
        refresh_tokens_for_client_credentials: refresh_cc,
        max_live_tokens: c.max_live_tokens,
    })
}

fn route(i: usize, r: RouteEntry, base: &Path) -> Result<Route, ConfigError> {
    let key = format!("routes[{i}]");
    if !r.path_prefix.starts_with('/') {
        return Err(invalid(format!("{key}.path_prefix"), "must start with '/'"));
    }
    // Requests are routed by their normal path, so a prefix in any other form could never match.
    match crate::gateway::path::normalize(&r.path_prefix) {
        Ok(normal) if normal == r.path_prefix => {}
        Ok(normal) => {
            return Err(invalid(
                format!("{key}.path_prefix"),
                format!("requests are matched in normal form: write {normal:?}"),
            ))
        }
        Err(e) => return Err(invalid(format!("{key}.path_prefix"), e.to_string())),
    }
    let settings = super::upstreams::settings(&key, &r, base)?;
    let upstream =
        Balancer::new(&r.path_prefix, settings).map_err(|e| invalid(format!("{key}.upstreams"), e.to_string()))?;
    let scopes = ScopeSet::from_tokens(r.scopes.iter().map(String::as_str))
        .map_err(|e| invalid(format!("{key}.scopes"), e.to_string()))?;
    let auth = r.auth.unwrap_or(true);
    if !auth && !scopes.is_empty() {
        return Err(invalid(
            format!("{key}.scopes"),
            "a public route (auth = false) cannot require scopes",
        ));
    }
    Ok(Route {
        path_prefix: r.path_prefix,
        upstream: Arc::new(upstream),
        scopes,
        auth,
    })
}
