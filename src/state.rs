//! The gateway's shared state, built once in `main` and passed around as `Arc`: the live config
//! (swapped whole on reload) and the token engine.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::config::Config;
use crate::gateway::connections::ConnectionCount;
use crate::metrics::Metrics;
use crate::oauth::documents;
use crate::oauth::lockout::Lockout;
use crate::oauth::passwords;
use crate::store::sqlite::SqliteStore;
use crate::store::timed::TimedStore;
use crate::store::{StoreError, TokenStore};
use crate::tokens::index::TokenIndex;
use crate::tokens::jwt::{previous_key_jwk, JwtSigner, KeyError};
use crate::tokens::opaque::{OpaqueCodec, ServerKeyError};
use crate::tokens::service::TokenService;

/// One consistent configuration with the documents derived from it. A request loads it once
/// and uses that snapshot from start to end.
pub struct Live {
    pub config: Config,
    /// RFC 8414 metadata, serialised once per config.
    pub metadata: Bytes,
}

impl Live {
    pub fn new(config: Config) -> Live {
        let metadata = documents::metadata(&config);
        Live { config, metadata }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    ServerKey(#[from] ServerKeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

/// Everything the request path shares.
pub struct AppState {
    live: ArcSwap<Live>,
    pub tokens: Arc<TokenService>,
    /// RFC 7517 key set, fixed for the process's life.
    pub jwks: Bytes,
    /// A hash of a random password, verified against for unknown users so that a missing user
    /// costs the same time as a wrong password.
    pub dummy_password_hash: String,
    pub metrics: Metrics,
    /// Brute-force counters of the OAuth endpoints; outside `Live` so a reload keeps them.
    pub lockout: Lockout,
    /// Client connections open on the proxy listener (bounded by `server.max_connections`).
    pub connections: ConnectionCount,
    /// Permits for concurrent argon2 checks (each holds ~19 MiB and a core for tens of ms).
    pub password_checks: Arc<tokio::sync::Semaphore>,
    /// Counts config swaps, for the background work that follows the config (health checks).
    config_version: tokio::sync::watch::Sender<u64>,
}

impl AppState {
    /// Opens the store, loads or creates keys and fills the index from the store.
    pub async fn start(config: Config) -> Result<Arc<AppState>, StartError> {
        let signer = JwtSigner::load_or_generate(&config.oauth.jwt_signing_key, config.oauth.jwt_algorithm)?;
        let previous = config
            .oauth
            .jwt_previous_keys
            .iter()
            .map(|path| previous_key_jwk(path))
            .collect::<Result<Vec<_>, _>>()?;
        let codec = OpaqueCodec::load_or_create(&config.oauth.server_key)?;
        let metrics = Metrics::new().map_err(|e| StartError::Other(format!("metrics: {e}")))?;
        let sqlite: Arc<dyn TokenStore> = Arc::new(SqliteStore::open(&config.store.path)?);
        let store: Arc<dyn TokenStore> = Arc::new(TimedStore::new(sqlite, metrics.store_write_seconds.clone()));
        let tokens = Arc::new(TokenService::new(Arc::new(TokenIndex::new()), store, codec, signer));
        let (access, refresh) = tokens.restore().await?;
        log::info!(
            "loaded {access} active access tokens and {refresh} refresh tokens from {}",
            config.store.path.display()
        );
        let jwks = Bytes::from(tokens.signer().jwks(&previous).to_string());
        let dummy_password_hash =
            passwords::hash_password(&hex::encode(rand::random::<[u8; 16]>())).map_err(StartError::Other)?;
        Ok(Arc::new(AppState {
            live: ArcSwap::from_pointee(Live::new(config)),
            tokens,
            jwks,
            dummy_password_hash,
            metrics,
            lockout: Lockout::default(),
            connections: ConnectionCount::default(),
            password_checks: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            config_version: tokio::sync::watch::Sender::new(0),
        }))
    }

    /// The config in force now.
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// Cheap access for the hot path (no reference count traffic).
    pub fn live_guard(&self) -> arc_swap::Guard<Arc<Live>> {
        self.live.load()
    }

    /// Swaps in a new config in one atomic store. Returns the settings that changed but need a
    /// restart to take effect; their running values stay in the live config. Callers serialise
    /// calls (the reload service is the only one).
    pub fn replace_config(&self, mut config: Config) -> Vec<&'static str> {
        let running = self.live.load_full();
        let restart = running.config.restart_only_changes(&config);
        config.keep_start_only_settings(&running.config);
        // Routes whose upstreams did not change keep their balancers: health, rotation, checks.
        config.routes.keep_balancers(&running.config.routes);
        self.live.store(Arc::new(Live::new(config)));
        self.config_version.send_modify(|v| *v += 1);
        restart
    }

    /// Changes each time a new config is swapped in.
    pub fn config_versions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.config_version.subscribe()
    }
}
