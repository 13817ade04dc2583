//! A [`TokenStore`] decorator that records how long each durable commit takes, so the engine
//! measures store latency without knowing about metrics.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use prometheus::Histogram;

use super::shared::{Feed, KeyFingerprint, KeyName, Turn};
use super::{AccessRow, Ack, RefreshRow, Snapshot, StoreError, StoreOp, TokenStore};
use crate::domain::filter::TokenFilter;
use crate::domain::ids::TokenId;

/// Times each submitted batch, from submission to durable ack, into a histogram (seconds);
/// barriers, `load` and `purge` pass through.
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
    fn submit(&self, ops: Vec<StoreOp>) -> Ack {
        if ops.is_empty() {
            return self.inner.submit(ops);
        }
        let start = Instant::now();
        let ack = self.inner.submit(ops);
        let histogram = self.commit_seconds.clone();
        Box::pin(async move {
            let result = ack.await;
            if result.is_ok() {
                histogram.observe(start.elapsed().as_secs_f64());
            }
            result
        })
    }

    async fn load(&self, now_ms: u64, sink: &mut (dyn FnMut(Snapshot) + Send)) -> Result<(), StoreError> {
        self.inner.load(now_ms, sink).await
    }

    async fn purge(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.inner.purge(now_ms).await
    }

    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }

    async fn turn(&self, key: Option<&KeyName>) -> Result<Turn, StoreError> {
        self.inner.turn(key).await
    }

    async fn find_access(&self, id: &TokenId) -> Result<Option<AccessRow>, StoreError> {
        self.inner.find_access(id).await
    }

    async fn find_refresh(&self, id: &TokenId) -> Result<Option<RefreshRow>, StoreError> {
        self.inner.find_refresh(id).await
    }

    async fn first_use(&self, digest: [u8; 16], forget_at_secs: u64, now_secs: u64) -> Result<bool, StoreError> {
        self.inner.first_use(digest, forget_at_secs, now_secs).await
    }

    async fn find_live(&self, filter: &TokenFilter, now_ms: u64, limit: usize) -> Result<Option<Snapshot>, StoreError> {
        self.inner.find_live(filter, now_ms, limit).await
    }

    fn feed(&self) -> Option<Arc<Feed>> {
        self.inner.feed()
    }

    async fn check_keys(&self, keys: &[KeyFingerprint]) -> Result<(), StoreError> {
        self.inner.check_keys(keys).await
    }
}
