//! The gateway's shared state, built once in `main` and passed around as `Arc`: the live config
//! (swapped whole on reload) and the token engine.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::config::start::KeySettings;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::oauth::deps::OAuthDeps;
use crate::oauth::documents;
use crate::oauth::dpop_nonce::Nonces;
use crate::oauth::lockout::Lockout;
use crate::oauth::passwords::PasswordChecker;
use crate::oauth::replay::ReplayCache;
use crate::store::shared::{fingerprint, KeyFingerprint};
use crate::store::timed::TimedStore;
use crate::store::{self, StoreError, TokenStore};
use crate::tokens::index::TokenIndex;
use crate::tokens::jwt::{previous_key, JwtSigner, KeyError};
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
    /// RFC 7517 key set of the signing key in use and the previous ones (a reload that rotates
    /// the key replaces it).
    jwks: ArcSwap<Bytes>,
    pub metrics: Metrics,
    /// Brute-force counters of the OAuth endpoints; outside `Live` so a reload keeps them.
    pub lockout: Lockout,
    /// Client connections open on the proxy listener (bounded by `server.max_connections`).
    pub connections: ConnectionCount,
    /// Resource owners' password checks (argon2id, a bounded number at once).
    pub passwords: PasswordChecker,
    /// DPoP proofs seen, at the token endpoint and the gateway (each is accepted once).
    pub dpop_proofs: ReplayCache,
    /// Server nonces for DPoP proofs, from a key derived from the server key (the same on
    /// every node).
    pub dpop_nonces: Nonces,
    /// The `jti`s of the client assertions already used; outside `Live` so a reload keeps them.
    pub replay: ReplayCache,
    /// Counts config swaps, for the background work that follows the config (health checks).
    config_version: tokio::sync::watch::Sender<u64>,
}

impl AppState {
    /// Opens the store, loads or creates keys and fills the index from the store.
    pub async fn start(config: Config) -> Result<Arc<AppState>, StartError> {
        let keys = SigningKeys::load(&config.start.keys)?;
        let codec = OpaqueCodec::load_or_create(&config.start.keys.server_key)?;
        let metrics = Metrics::new().map_err(|e| StartError::Other(format!("metrics: {e}")))?;
        let backend = store::open(&config.start.store.backend)?;
        let store: Arc<dyn TokenStore> = Arc::new(TimedStore::new(backend, metrics.store_write_seconds.clone()));
        store.check_keys(&keys.fingerprints(&codec)).await?;
        let jwks = keys.jwks();
        let tokens = Arc::new(
            TokenService::new(Arc::new(TokenIndex::new()), store, codec, keys.signer).with_previous_keys(keys.previous),
        );
        let (access, refresh) = tokens.restore().await?;
        log::info!(
            "loaded {access} active access tokens and {refresh} refresh tokens from {}",
            config.start.store.backend.describe()
        );
        follow_changes(&tokens).await?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let passwords = PasswordChecker::new(cores).map_err(StartError::Other)?;
        let dpop_nonces = Nonces::new(&tokens.codec().derive(b"tokengate dpop nonce key"));
        Ok(Arc::new(AppState {
            live: ArcSwap::from_pointee(Live::new(config)),
            tokens,
            jwks: ArcSwap::from_pointee(jwks),
            metrics,
            lockout: Lockout::default(),
            connections: ConnectionCount::default(),
            passwords,
            dpop_proofs: ReplayCache::new(crate::oauth::replay::DEFAULT_CAPACITY),
            dpop_nonces,
            replay: ReplayCache::default(),
            config_version: tokio::sync::watch::Sender::new(0),
        }))
    }

    /// What the OAuth endpoints use of this state.
    pub fn oauth(&self) -> OAuthDeps<'_> {
        OAuthDeps {
            tokens: &self.tokens,
            lockout: &self.lockout,
            metrics: &self.metrics,
            passwords: &self.passwords,
            proofs: &self.dpop_proofs,
            nonces: &self.dpop_nonces,
            replay: &self.replay,
        }
    }

    /// The JWKS document in force.
    pub fn jwks(&self) -> Bytes {
        Bytes::clone(&self.jwks.load())
    }

    /// Rotates the JWT signing key when `keys` names other JWT key files or another algorithm
    /// than the running config: loads them (generating an absent signing key, as at start),
    /// checks them against the cluster's (a shared store), then signs with the new key and
    /// publishes both. Returns whether it rotated; on an error nothing changed. The running
    /// config takes the new JWT key settings, so the reload reports no restart for them.
    pub fn rotate_jwt_keys(&self, keys: &KeySettings) -> Result<bool, StartError> {
        let running = self.live.load_full();
        let now = &running.config.start.keys;
        let same = now.jwt_signing_key == keys.jwt_signing_key
            && now.jwt_algorithm == keys.jwt_algorithm
            && now.jwt_previous_keys == keys.jwt_previous_keys;
        if same {
            return Ok(false);
        }
        let loaded = SigningKeys::load(keys)?;
        let store = self.tokens.store();
        if store.is_shared() {
            // Reloads run on the blocking pool, outside any runtime's own thread.
            tokio::runtime::Handle::try_current()
                .map_err(|e| StartError::Other(e.to_string()))?
                .block_on(store.check_keys(&loaded.fingerprints(self.tokens.codec())))?;
        }
        let jwks = loaded.jwks();
        log::info!(
            "oauth.jwt_signing_key: new tokens are signed with key {} ({}); the JWKS publishes {} key(s)",
            loaded.signer.kid(),
            loaded.signer.algorithm().as_str(),
            1 + loaded.previous_jwks.len()
        );
        self.tokens.rotate_keys(loaded.signer, loaded.previous);
        self.jwks.store(Arc::new(jwks));
        let mut config = running.config.clone();
        config.start.keys.jwt_signing_key = keys.jwt_signing_key.clone();
        config.start.keys.jwt_algorithm = keys.jwt_algorithm;
        config.start.keys.jwt_previous_keys = keys.jwt_previous_keys.clone();
        self.live.store(Arc::new(Live::new(config)));
        Ok(true)
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
    pub fn replace_config(&self, config: Config) -> Vec<&'static str> {
        self.replace_config_with(config, false)
    }

    /// [`AppState::replace_config`], where `tls_switched` says that the HTTPS listener now
    /// presents the certificate files the new config names (the reload switched them): those
    /// apply; turning HTTPS on or off still needs a restart.
    pub fn replace_config_with(&self, mut config: Config, tls_switched: bool) -> Vec<&'static str> {
        let running = self.live.load_full();
        let mut restart = running.config.start.changes(&config.start);
        let tls = config.start.process.tls.take();
        let tls_switched = tls_switched && tls.is_some();
        if tls_switched {
            restart.retain(|key| *key != "server.tls_cert/tls_key");
        }
        // What only a restart changes stays as the process runs it, so the live model still
        // describes the process (e.g. the JWKS keeps naming the signing key in use) and a later
        // reload names the same changes again until the restart.
        config.start = running.config.start.clone();
        if tls_switched {
            config.start.process.tls = tls;
        }
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

/// The JWT signing key and the previous ones, as `[oauth]` names them (at start and at a
/// reload that rotates them).
struct SigningKeys {
    signer: JwtSigner,
    previous: Vec<JwtSigner>,
    /// The previous keys' public JWKs, published after the signing key's.
    previous_jwks: Vec<serde_json::Value>,
}

impl SigningKeys {
    /// Loads the keys (generating an absent signing key).
    fn load(keys: &KeySettings) -> Result<SigningKeys, KeyError> {
        let signer = JwtSigner::load_or_generate(&keys.jwt_signing_key, keys.jwt_algorithm)?;
        let previous = keys
            .jwt_previous_keys
            .iter()
            .map(|path| previous_key(path))
            .collect::<Result<Vec<_>, _>>()?;
        let previous_jwks = previous.iter().map(|key| key.jwk().clone()).collect();
        Ok(SigningKeys {
            signer,
            previous,
            previous_jwks,
        })
    }

    /// The JWKS document publishing them.
    fn jwks(&self) -> Bytes {
        Bytes::from(self.signer.jwks(&self.previous_jwks).to_string())
    }

    /// The keys every node of a cluster must share (with the server key of `codec`), as the
    /// database records them.
    fn fingerprints(&self, codec: &OpaqueCodec) -> Vec<KeyFingerprint> {
        vec![
            KeyFingerprint {
                name: "oauth.jwt_signing_key",
                fingerprint: fingerprint(self.signer.kid().as_bytes()),
                previous: self
                    .previous_jwks
                    .iter()
                    .filter_map(|jwk| jwk.get("kid").and_then(|k| k.as_str()))
                    .map(|kid| fingerprint(kid.as_bytes()))
                    .collect(),
            },
            KeyFingerprint {
                name: "oauth.server_key",
                fingerprint: fingerprint(&codec.fingerprint()),
                previous: Vec::new(),
            },
        ]
    }
}

/// How long start waits for a shared store's feed to catch up the first time.
const FIRST_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(10);

/// In a cluster: applies the feed's changes to the index from now on, and waits until the feed
/// has caught up once (the changes made since the index was loaded are in).
async fn follow_changes(tokens: &Arc<TokenService>) -> Result<(), StartError> {
    let Some(feed) = tokens.feed() else {
        return Ok(());
    };
    // Weak: the feed belongs to the store the engine holds.
    let engine = Arc::downgrade(tokens);
    feed.subscribe(Box::new(move |changes| {
        if let Some(engine) = engine.upgrade() {
            engine.apply_changes(changes);
        }
    }));
    let deadline = tokio::time::Instant::now() + FIRST_CATCH_UP;
    while feed.caught_up_at_ms() == 0 {
        if tokio::time::Instant::now() >= deadline {
            return Err(StartError::Other(
                "the change feed of the shared store did not catch up in time".into(),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Counts open connections against a bound read from the live config.
#[derive(Debug, Default)]
pub struct ConnectionCount {
    open: AtomicUsize,
}

/// One counted connection; uncounted when dropped.
#[derive(Debug)]
pub struct Permit<'a> {
    count: &'a ConnectionCount,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.count.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConnectionCount {
    /// Counts one more connection, unless `max` are open already.
    pub fn try_open(&self, max: usize) -> Option<Permit<'_>> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Permit { count: self })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_up_to_the_bound() {
        let count = ConnectionCount::default();
        let a = count.try_open(2).unwrap();
        let b = count.try_open(2).unwrap();
        assert!(count.try_open(2).is_none());
        assert_eq!(count.open(), 2);
        drop(a);
        let _c = count.try_open(2).unwrap();
        assert!(count.try_open(2).is_none());
        // A reload that raises the bound lets more in at once.
        let _d = count.try_open(3).unwrap();
        drop(b);
        assert_eq!(count.open(), 2);
    }
}
