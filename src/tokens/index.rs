//! The in-memory index of live tokens: the only thing the request path consults.
//!
//! - `access` / `refresh`: id -> record, for validation (one DashMap lookup; the id is not stored
//!   twice, see [`super::id_set`]).
//! - `keys`: token key -> that key's live tokens behind a mutex. Issuing, refreshing and
//!   revoking take the key's mutex for "look, decide, publish, submit to the store", so the
//!   single-mode invariants hold under concurrency while different keys never wait on each
//!   other. The mutex is held for microseconds and never across an `.await` (a plain mutex: its
//!   guard is not `Send`, so the compiler refuses a future that would hold it while waiting).
//!   No DashMap guard is held across an `.await` either: callers clone the `Arc` out first.

use std::sync::Arc;

use dashmap::DashMap;
use smallvec::SmallVec;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::id_set::IdSet;
use super::key::TokenKey;
use super::record::{AccessRecord, RefreshRecord, TokenId};

/// The live tokens of one key, in issue order (oldest first). A single-mode key holds one active
/// token: it lives inline, with no allocation of its own.
#[derive(Debug, Default)]
pub struct KeyState {
    pub active: SmallVec<[Arc<AccessRecord>; 1]>,
    /// Refresh tokens of the key that can still be used (not spent, revoked or expired).
    pub refresh: Vec<Arc<RefreshRecord>>,
}

impl KeyState {
    pub fn is_empty(&self) -> bool {
        self.active.is_empty() && self.refresh.is_empty()
    }
}

/// The index itself.
#[derive(Default)]
pub struct TokenIndex {
    access: IdSet<AccessRecord>,
    refresh: IdSet<RefreshRecord>,
    keys: DashMap<Arc<TokenKey>, Arc<Mutex<KeyState>>>,
}

impl TokenIndex {
    pub fn new() -> TokenIndex {
        TokenIndex::default()
    }

    /// The access token with this id, if the index holds it.
    pub fn access(&self, id: &TokenId) -> Option<Arc<AccessRecord>> {
        self.access.get(id)
    }

    /// Runs `f` on the access record without cloning its `Arc` (the hot validation path).
    pub fn with_access<R>(&self, id: &TokenId, f: impl FnOnce(Option<&AccessRecord>) -> R) -> R {
        self.access.with(id, f)
    }

    pub fn refresh(&self, id: &TokenId) -> Option<Arc<RefreshRecord>> {
        self.refresh.get(id)
    }

    pub fn insert_access(&self, rec: Arc<AccessRecord>) {
        self.access.insert(rec);
    }

    pub fn insert_refresh(&self, rec: Arc<RefreshRecord>) {
        self.refresh.insert(rec);
    }

    pub fn remove_access(&self, id: &TokenId) {
        self.access.remove(id);
    }

    pub fn remove_refresh(&self, id: &TokenId) {
        self.refresh.remove(id);
    }

    /// The mutex-guarded state of `key`, created empty on first use.
    pub fn key_slot(&self, key: &Arc<TokenKey>) -> Arc<Mutex<KeyState>> {
        if let Some(slot) = self.keys.get(key.as_ref()) {
            return Arc::clone(slot.value());
        }
        Arc::clone(self.keys.entry(Arc::clone(key)).or_default().value())
    }

    /// Number of access tokens in the index.
    pub fn access_len(&self) -> usize {
        self.access.len()
    }

    pub fn refresh_len(&self) -> usize {
        self.refresh.len()
    }

    pub fn key_len(&self) -> usize {
        self.keys.len()
    }

    /// Snapshot of the access records (for the sweeper).
    pub fn access_records(&self) -> Vec<Arc<AccessRecord>> {
        self.access.records()
    }

    pub fn refresh_records(&self) -> Vec<Arc<RefreshRecord>> {
        self.refresh.records()
    }

    /// The keys that currently have a slot.
    pub fn keys(&self) -> Vec<Arc<TokenKey>> {
        self.keys.iter().map(|e| Arc::clone(e.key())).collect()
    }

    /// Drops the slot of `key` if it is empty and nobody else holds it. Safe against a
    /// concurrent `key_slot`: that clones the `Arc` under the shard lock this check also holds.
    pub fn drop_key_if_idle(&self, key: &TokenKey) {
        self.keys.remove_if(key, |_, slot| {
            Arc::strong_count(slot) == 1 && slot.try_lock().map(|s| s.is_empty()).unwrap_or(false)
        });
    }
}

/// Locks a key's state. A panic while it was held cannot leave it half-updated in a way that
/// matters more than refusing every later request for the key, so poisoning is ignored.
pub fn lock(slot: &Mutex<KeyState>) -> MutexGuard<'_, KeyState> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}
