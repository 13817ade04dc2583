//! A store in memory, for tests that need a token engine without a file (the OAuth endpoints'
//! unit tests). Nothing survives the process: it is never a backend users can choose. It keeps
//! the [`TokenStore`] contract all the same, checked by the conformance suite beside the real
//! backends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::{AccessRow, Ack, RefreshRow, Snapshot, StoreError, StoreOp, TokenStore};
use crate::domain::ids::{TokenId, TokenState};

/// The rows, in issue order.
#[derive(Debug, Default)]
struct Rows {
    access: Vec<AccessRow>,
    refresh: Vec<RefreshRow>,
    /// Position of each id in its list.
    access_at: HashMap<TokenId, usize>,
    refresh_at: HashMap<TokenId, usize>,
}

/// A store whose clones share one set of rows (a clone is a "reopened" store).
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    rows: Arc<Mutex<Rows>>,
}

impl Rows {
    fn apply(&mut self, op: StoreOp) {
        match op {
            StoreOp::InsertAccess(row) => {
                self.access_at.insert(row.id, self.access.len());
                self.access.push(row);
            }
            StoreOp::InsertRefresh(row) => {
                self.refresh_at.insert(row.id, self.refresh.len());
                self.refresh.push(row);
            }
            StoreOp::SetAccessState { id, state, .. } => {
                if let Some(&i) = self.access_at.get(&id) {
                    self.access[i].state = state;
                }
            }
            StoreOp::SetRefreshState { id, state, .. } => {
                if let Some(&i) = self.refresh_at.get(&id) {
                    self.refresh[i].state = state;
                }
            }
        }
    }

    fn reindex(&mut self) {
        self.access_at = self.access.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        self.refresh_at = self.refresh.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    fn submit(&self, ops: Vec<StoreOp>) -> Ack {
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        for op in ops {
            rows.apply(op);
        }
        Box::pin(async { Ok(()) })
    }

    async fn load(&self, now_ms: u64, sink: &mut (dyn FnMut(Snapshot) + Send)) -> Result<(), StoreError> {
        let snapshot = {
            let rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
            Snapshot {
                access: rows
                    .access
                    .iter()
                    .filter(|r| r.state == TokenState::Active && r.expires_at_ms > now_ms)
                    .cloned()
                    .collect(),
                refresh: rows
                    .refresh
                    .iter()
                    .filter(|r| {
                        matches!(r.state, TokenState::Active | TokenState::Inactive) && r.expires_at_ms > now_ms
                    })
                    .cloned()
                    .collect(),
            }
        };
        sink(snapshot);
        Ok(())
    }

    async fn purge(&self, now_ms: u64) -> Result<u64, StoreError> {
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        let before = rows.access.len() + rows.refresh.len();
        rows.access.retain(|r| r.expires_at_ms > now_ms);
        rows.refresh.retain(|r| r.expires_at_ms > now_ms);
        rows.reindex();
        Ok((before - rows.access.len() - rows.refresh.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conforms() {
        super::super::conformance::run_all(|| {
            let storage = MemoryStore::default();
            Box::new(move || -> Arc<dyn TokenStore> { Arc::new(storage.clone()) })
        })
        .await;
    }
}
