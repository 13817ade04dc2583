//! The settings only a restart changes: listeners, threads, files, keys and the store. A reload
//! reads them like the rest but never applies them; it names those that differ (a restart is
//! needed) and keeps the running ones, so what a reload can change is decided by these types,
//! not by a list kept by hand.

use std::path::PathBuf;
use std::time::Duration;

use crate::domain::format::JwtAlgorithm;
use crate::store::Backend;

/// Everything read at start only.
#[derive(Debug, Clone, PartialEq)]
pub struct StartConfig {
    pub process: ProcessSettings,
    pub store: StoreSettings,
    pub keys: KeySettings,
}

/// `[server]`'s listeners and process settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSettings {
    pub listen: String,
    pub threads: usize,
    pub metrics_listen: Option<String>,
    /// The admin API's listener; its credential (`[admin]`) follows reloads.
    pub admin_listen: Option<String>,
    pub tls: Option<TlsFiles>,
    pub data_dir: PathBuf,
    pub grace_period_secs: u64,
    pub shutdown_timeout_secs: u64,
    /// The Unix socket of a graceful upgrade (`--upgrade`).
    pub upgrade_sock: PathBuf,
}

/// PEM files that turn the listener into HTTPS.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreSettings {
    pub backend: Backend,
    pub sweep_interval: Duration,
    /// Cluster mode: how long bearer checks trust an index cut off from the database (zero:
    /// for ever).
    pub stale_after: Duration,
}

/// `[oauth]`'s key files.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySettings {
    pub jwt_signing_key: PathBuf,
    pub jwt_algorithm: JwtAlgorithm,
    /// Earlier signing keys whose public halves the JWKS also publishes (after a rotation).
    pub jwt_previous_keys: Vec<PathBuf>,
    pub server_key: PathBuf,
}

impl StartConfig {
    /// The settings, by their config keys, whose values in `other` differ from these. Every field
    /// is named in a pattern without `..`, so a new one cannot be left out.
    pub fn changes(&self, other: &StartConfig) -> Vec<&'static str> {
        let StartConfig { process, store, keys } = self;
        let ProcessSettings {
            listen,
            threads,
            metrics_listen,
            admin_listen,
            tls,
            data_dir,
            grace_period_secs,
            shutdown_timeout_secs,
            upgrade_sock,
        } = process;
        let StoreSettings {
            backend,
            sweep_interval,
            stale_after,
        } = store;
        let KeySettings {
            jwt_signing_key,
            jwt_algorithm,
            jwt_previous_keys,
            server_key,
        } = keys;
        let (p, s, k) = (&other.process, &other.store, &other.keys);
        [
            ("server.listen", *listen != p.listen),
            ("server.threads", *threads != p.threads),
            ("server.metrics_listen", *metrics_listen != p.metrics_listen),
            ("server.admin_listen", *admin_listen != p.admin_listen),
            ("server.tls_cert/tls_key", *tls != p.tls),
            ("server.data_dir", *data_dir != p.data_dir),
            ("server.grace_period_secs", *grace_period_secs != p.grace_period_secs),
            (
                "server.shutdown_timeout_secs",
                *shutdown_timeout_secs != p.shutdown_timeout_secs,
            ),
            ("server.upgrade_sock", *upgrade_sock != p.upgrade_sock),
            ("store.path/url/pool_size", *backend != s.backend),
            ("store.sweep_interval_secs", *sweep_interval != s.sweep_interval),
            ("store.stale_after_secs", *stale_after != s.stale_after),
            (
                "oauth.jwt_signing_key/jwt_algorithm",
                *jwt_signing_key != k.jwt_signing_key || *jwt_algorithm != k.jwt_algorithm,
            ),
            ("oauth.jwt_previous_keys", *jwt_previous_keys != k.jwt_previous_keys),
            ("oauth.server_key", *server_key != k.server_key),
        ]
        .into_iter()
        .filter(|&(_, changed)| changed)
        .map(|(key, _)| key)
        .collect()
    }
}
