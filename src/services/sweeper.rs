//! Background sweeper: drops expired tokens from the index and dead rows from the store, so
//! memory and disk track live tokens only. Stops with the server.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::domain::ids::now_ms;
use crate::state::AppState;

pub struct Sweeper {
    pub state: Arc<AppState>,
    pub interval: Duration,
}

#[async_trait]
impl BackgroundService for Sweeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(self.interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {
                    self.state.dpop_proofs.forget_expired(now_ms() / 1000);
                    self.sweep_tokens().await;
                }
            }
        }
    }
}

impl Sweeper {
    async fn sweep_tokens(&self) {
        match self.state.tokens.sweep().await {
            Ok(r) => {
                self.state.metrics.swept(&r);
                if r.expired_access + r.expired_refresh > 0 || r.purged_rows > 0 {
                    log::debug!(
                        "sweep: {} access and {} refresh tokens expired, {} rows purged",
                        r.expired_access,
                        r.expired_refresh,
                        r.purged_rows
                    );
                }
            }
            Err(e) => log::warn!("sweep failed: {e}"),
        }
    }
}
