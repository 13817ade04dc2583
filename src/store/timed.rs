//! A [`TokenStore`] decorator that records how long each durable commit takes, so the engine
//! measures store latency without knowing about metrics.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use prometheus::Histogram;

use super::{Snapshot, StoreError, StoreOp, TokenStore};

/// Times `commit` into a histogram (seconds); `load` and `purge` pass through.
pub struct TimedStore {
    inner: Arc<dyn TokenStore>,
    commit_seconds: Histogram,
}

impl TimedStore {
    pub fn new(inner: Arc<dyn TokenStore>, commit_seconds: Histogram) -> TimedStore {
        TimedStore { inner, commit_seconds }
    }
}

#[async_trait]
impl TokenStore for TimedStore {
    async fn commit(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let start = Instant::now();
        let result = self.inner.commit(ops).await;
        if result.is_ok() {
            self.commit_seconds.observe(start.elapsed().as_secs_f64());
        }
        result
    }

    async fn load(&self, now_ms: u64) -> Result<Snapshot, StoreError> {
        self.inner.load(now_ms).await
    }

    async fn purge(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.inner.purge(now_ms).await
    }
}
