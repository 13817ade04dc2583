//! One conversion per table of the file: `[server]` into the process settings (start only) and
//! the per-request ones, `[store]`, and `[oauth]` into its key files (start only) and the rest.
//! Each checks its values and names the key at fault; the defaults are in [`super::file`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::checks::{grant_list, invalid, resolve, ConfigError};
use super::file::{AdminSection, OAuthSection, RenewSection, ServerSection, StoreSection};
use super::model::{AdminSettings, LockoutSettings, OAuthSettings, ServerSettings};
use super::start::{KeySettings, ProcessSettings, StoreSettings, TlsFiles};
use super::trusted_proxies::TrustedProxies;
use crate::domain::audience::AudienceSet;
use crate::domain::format::JwtAlgorithm;
use crate::domain::policy::RenewPolicy;
use crate::store::{postgres, Backend};

const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;
const MAX_LOCKOUT_SECS: u64 = 24 * 3600;

/// A setting in whole seconds, between 1 and `max`.
fn seconds(key: &str, value: u64, max: u64) -> Result<Duration, ConfigError> {
    if (1..=max).contains(&value) {
        Ok(Duration::from_secs(value))
    } else {
        Err(invalid(key, format!("must be between 1 and {max}")))
    }
}

fn socket_addr(key: &str, text: &str) -> Result<(), ConfigError> {
    text.parse::<SocketAddr>()
        .map(drop)
        .map_err(|e| invalid(key, format!("{text:?} is not an IP:port address ({e})")))
}

/// `[server]`'s listeners and process settings.
pub(super) fn process(s: &ServerSection, base: &Path) -> Result<ProcessSettings, ConfigError> {
    socket_addr("server.listen", &s.listen)?;
    if let Some(m) = &s.metrics_listen {
        socket_addr("server.metrics_listen", m)?;
    }
    if let Some(a) = &s.admin_listen {
        socket_addr("server.admin_listen", a)?;
    }
    if !(1..=256).contains(&s.threads) {
        return Err(invalid("server.threads", "must be between 1 and 256"));
    }
    let tls = match (&s.tls_cert, &s.tls_key) {
        (Some(c), Some(k)) => Some(TlsFiles {
            cert: resolve(base, c),
            key: resolve(base, k),
        }),
        (None, None) => None,
        (Some(_), None) => return Err(invalid("server.tls_key", "tls_cert is set, tls_key is missing")),
        (None, Some(_)) => return Err(invalid("server.tls_cert", "tls_key is set, tls_cert is missing")),
    };
    let data_dir = resolve(base, &s.data_dir);
    let upgrade_sock = match &s.upgrade_sock {
        Some(path) => resolve(base, path),
        None => data_dir.join("upgrade.sock"),
    };
    Ok(ProcessSettings {
        listen: s.listen.clone(),
        threads: s.threads,
        metrics_listen: s.metrics_listen.clone(),
        admin_listen: s.admin_listen.clone(),
        tls,
        data_dir,
        grace_period_secs: s.grace_period_secs,
        shutdown_timeout_secs: s.shutdown_timeout_secs,
        upgrade_sock,
    })
}

/// `[server]`'s per-request settings.
pub(super) fn server(s: ServerSection) -> Result<ServerSettings, ConfigError> {
    if !(1..=1_000_000).contains(&s.max_connections) {
        return Err(invalid("server.max_connections", "must be between 1 and 1000000"));
    }
    Ok(ServerSettings {
        access_log: s.access_log,
        body_read_timeout: seconds("server.body_read_timeout_secs", s.body_read_timeout_secs, 300)?,
        upstream_connect_timeout: seconds(
            "server.upstream_connect_timeout_secs",
            s.upstream_connect_timeout_secs,
            300,
        )?,
        upstream_timeout: seconds("server.upstream_timeout_secs", s.upstream_timeout_secs, 3600)?,
        keepalive_timeout: seconds("server.keepalive_timeout_secs", s.keepalive_timeout_secs, 3600)?,
        max_connections: s.max_connections,
        trusted_proxies: TrustedProxies::parse(&s.trusted_proxies).map_err(|e| invalid("server.trusted_proxies", e))?,
    })
}

/// `[store]`: the PostgreSQL database `url` names, else the SQLite file `path` (by default
/// `tokens.db` in the data folder). Nothing connects here: `--check` needs no database.
pub(super) fn store(s: StoreSection, base: &Path, data_dir: &Path) -> Result<StoreSettings, ConfigError> {
    if s.sweep_interval_secs == 0 {
        return Err(invalid("store.sweep_interval_secs", "must be at least 1"));
    }
    if !(1..=1000).contains(&s.pool_size) {
        return Err(invalid("store.pool_size", "must be between 1 and 1000"));
    }
    if s.url.is_none() && s.stale_after_secs.is_some() {
        return Err(invalid(
            "store.stale_after_secs",
            "applies only to a shared database (store.url)",
        ));
    }
    let backend = match (s.url, s.path) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "store.path",
                "store.path and store.url name two stores; keep one",
            ))
        }
        (Some(url), None) => {
            postgres::check_url(&url).map_err(|e| invalid("store.url", e))?;
            Backend::Postgres {
                url,
                pool_size: s.pool_size,
            }
        }
        (None, path) => Backend::Sqlite {
            path: path.map_or_else(|| data_dir.join("tokens.db"), |p| resolve(base, &p)),
        },
    };
    Ok(StoreSettings {
        backend,
        sweep_interval: Duration::from_secs(s.sweep_interval_secs),
        stale_after: Duration::from_secs(s.stale_after_secs.unwrap_or(30)),
    })
}

/// `[oauth]`'s key files; absent ones default into the data folder.
pub(super) fn keys(o: &OAuthSection, base: &Path, data_dir: &Path) -> Result<KeySettings, ConfigError> {
    let jwt_algorithm = JwtAlgorithm::parse(&o.jwt_algorithm).ok_or_else(|| {
        invalid(
            "oauth.jwt_algorithm",
            format!("{:?} is not one of RS256, ES256, EdDSA", o.jwt_algorithm),
        )
    })?;
    let in_data = |name: String| -> PathBuf { data_dir.join(name) };
    Ok(KeySettings {
        jwt_signing_key: o.jwt_signing_key.as_ref().map_or_else(
            || in_data(format!("jwt-{}.pem", jwt_algorithm.as_str().to_ascii_lowercase())),
            |p| resolve(base, p),
        ),
        jwt_algorithm,
        jwt_previous_keys: o.jwt_previous_keys.iter().map(|p| resolve(base, p)).collect(),
        server_key: o
            .server_key
            .as_ref()
            .map_or_else(|| in_data("server.key".into()), |p| resolve(base, p)),
    })
}

/// `[oauth]`'s lifetimes, policies and bounds; the issuer defaults to `http://` and the listener.
pub(super) fn oauth(o: OAuthSection, listen: &str) -> Result<OAuthSettings, ConfigError> {
    for (key, v) in [
        ("oauth.access_token_ttl_secs", o.access_token_ttl_secs),
        ("oauth.refresh_token_ttl_secs", o.refresh_token_ttl_secs),
    ] {
        if v == 0 || v > MAX_TTL_SECS {
            return Err(invalid(key, format!("must be between 1 and {MAX_TTL_SECS}")));
        }
    }
    let issuer = o.issuer.clone().unwrap_or_else(|| format!("http://{listen}"));
    let default_audience = AudienceSet::one(o.default_audience.as_deref().unwrap_or(&issuer)).map_err(|e| {
        invalid(
            "oauth.default_audience",
            format!("{e} (RFC 8707); the issuer is used when absent"),
        )
    })?;
    Ok(OAuthSettings {
        lockout: lockout(&o)?,
        issuer,
        default_audience,
        dpop_proof_max_age_secs: match o.dpop_proof_max_age_secs {
            v @ 1..=3600 => v,
            _ => return Err(invalid("oauth.dpop_proof_max_age_secs", "must be between 1 and 3600")),
        },
        dpop_nonce: o.dpop_nonce,
        access_token_ttl_secs: o.access_token_ttl_secs,
        refresh_token_ttl_secs: o.refresh_token_ttl_secs,
        jwt_policy: renew_policy("oauth.jwt", &o.jwt.renew_token_without_revoking_existing)?,
        opaque_policy: renew_policy("oauth.opaque", &o.opaque.renew_token_without_revoking_existing)?,
        max_live_tokens: o.max_live_tokens,
        max_live_tokens_per_client: o.max_live_tokens_per_client,
    })
}

fn lockout(o: &OAuthSection) -> Result<LockoutSettings, ConfigError> {
    Ok(LockoutSettings {
        max_failures: o.lockout_max_failures,
        window: seconds("oauth.lockout_window_secs", o.lockout_window_secs, MAX_LOCKOUT_SECS)?,
        duration: seconds("oauth.lockout_secs", o.lockout_secs, MAX_LOCKOUT_SECS)?,
        by_address: o.lockout_by_address,
    })
}

fn renew_policy(prefix: &str, section: &RenewSection) -> Result<RenewPolicy, ConfigError> {
    let key = format!("{prefix}.renew_token_without_revoking_existing.allowed_grant_types");
    Ok(RenewPolicy {
        enable: section.enable,
        allowed_grant_types: grant_list(&key, &section.allowed_grant_types)?,
        max_active_tokens: section.max_active_tokens,
    })
}

/// `[admin]`: the credential is required when the admin API listens (`server.admin_listen`).
pub(super) fn admin(a: AdminSection, admin_listen: Option<&str>) -> Result<AdminSettings, ConfigError> {
    let token_sha256 = match a.token_sha256 {
        Some(hex_text) => {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hex_text.trim(), &mut digest).map_err(|_| {
                invalid(
                    "admin.token_sha256",
                    "must be 64 hex digits (make it with `tokengate hash-secret`)",
                )
            })?;
            Some(digest)
        }
        None if admin_listen.is_some() => {
            return Err(invalid(
                "admin.token_sha256",
                "is required when server.admin_listen is set (the SHA-256 of the admin token: \
                 `tokengate hash-secret`)",
            ))
        }
        None => None,
    };
    Ok(AdminSettings { token_sha256 })
}
