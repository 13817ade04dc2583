//! The in-memory index of live tokens: the only thing the request path consults.
//!
//! - `access` / `refresh`: id -> record, for validation (one DashMap lookup; the id is not stored
//!   twice, see [`super::id_set`]).
//! - `keys`: token key -> that key's [`KeySlot`]: the key and its live tokens behind a mutex, in
//!   one allocation that the key's records point at too. Issuing, refreshing and revoking take
//!   the key's mutex for "look, decide, publish, submit to the store", so the single-mode
//!   invariants hold under concurrency while different keys never wait on each other. The mutex
//!   is held for microseconds and never across an `.await` (a plain mutex: its guard is not
//!   `Send`, so the compiler refuses a future that would hold it while waiting). No DashMap guard
//!   is held across an `.await` either: callers clone the `Arc` out first.
//! - `names`: the shared copies of client ids and scope sets that keys point at.

use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::client_counts::ClientCounts;
use super::id_set::IdSet;
use super::intern::Interner;
use super::record::SlotEntry;
use super::record::{AccessRecord, RefreshRecord, TokenId};
pub use super::record::{KeySlot, KeyState};
use crate::domain::audience::AudienceSet;
use crate::domain::key::{ScopeSet, TokenKey};

/// The index itself.
#[derive(Default)]
pub struct TokenIndex {
    access: IdSet<AccessRecord>,
    refresh: IdSet<RefreshRecord>,
    keys: DashMap<SlotEntry, ()>,
    names: Interner,
    /// Access and refresh tokens per client, kept as records enter and leave the two sets.
    clients: ClientCounts,
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
        let client = Arc::clone(&rec.key.client_id);
        if self.access.insert(rec) {
            self.clients.add(&client, 1);
        }
    }

    pub fn insert_refresh(&self, rec: Arc<RefreshRecord>) {
        let client = Arc::clone(&rec.key.client_id);
        if self.refresh.insert(rec) {
            self.clients.add(&client, 1);
        }
    }

    pub fn remove_access(&self, id: &TokenId) {
        if let Some(gone) = self.access.remove(id) {
            self.clients.add(&gone.key.client_id, -1);
        }
    }

    pub fn remove_refresh(&self, id: &TokenId) {
        if let Some(gone) = self.refresh.remove(id) {
            self.clients.add(&gone.key.client_id, -1);
        }
    }

    /// Access and refresh tokens `client_id` holds.
    pub fn client_len(&self, client_id: &str) -> u64 {
        self.clients.get(client_id)
    }

    /// Every client holding tokens, with how many (access and refresh), sorted by client id.
    pub fn client_lens(&self) -> Vec<(Arc<str>, u64)> {
        self.clients.snapshot()
    }

    /// The key `(client_id, subject, scope, audience)`, its client id, scope set and audience
    /// set shared with the other keys that have the same ones.
    pub fn key(&self, client_id: &str, subject: &str, scope: &ScopeSet, audience: &AudienceSet) -> TokenKey {
        TokenKey {
            client_id: self.names.intern(client_id),
            subject: subject.into(),
            scope: ScopeSet::from_canonical(self.names.shared(Arc::clone(scope.shared()))),
            audience: AudienceSet::from_canonical(self.names.shared(Arc::clone(audience.shared()))),
        }
    }

    /// The slot of the key a stored row names (its scope and audience as stored, canonical);
    /// `None` for a scope this version cannot read.
    pub fn stored_key_slot(&self, client_id: &str, subject: &str, scope: &str, audience: &str) -> Option<Arc<KeySlot>> {
        let scope = ScopeSet::parse(scope).ok()?;
        let audience = AudienceSet::from_canonical(Arc::from(audience));
        Some(self.key_slot(self.key(client_id, subject, &scope, &audience)))
    }

    /// The slot of `key`, created empty on first use.
    pub fn key_slot(&self, key: TokenKey) -> Arc<KeySlot> {
        if let Some(e) = self.keys.get(&key) {
            return Arc::clone(&e.key().0);
        }
        match self.keys.entry(SlotEntry(Arc::new(KeySlot::new(key)))) {
            Entry::Occupied(o) => Arc::clone(&o.key().0),
            Entry::Vacant(v) => Arc::clone(&v.insert(()).key().0),
        }
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

    /// Snapshot of the key slots.
    pub fn slots(&self) -> Vec<Arc<KeySlot>> {
        self.keys.iter().map(|e| Arc::clone(&e.key().0)).collect()
    }

    /// Drops `slot` from the index if its state is empty and nothing but the index and this
    /// caller holds it (no record points at it). Safe against a concurrent `key_slot`: that
    /// clones the `Arc` under the shard lock this check also holds.
    pub fn drop_if_idle(&self, slot: Arc<KeySlot>) {
        self.keys.remove_if(slot.key(), |e, _| {
            Arc::ptr_eq(&e.0, &slot) && Arc::strong_count(&slot) == 2 && slot.is_idle()
        });
    }

    /// Drops the shared client ids and scope sets that no key uses any more, and the counts of
    /// clients that hold nothing.
    pub fn prune_names(&self) {
        self.names.prune();
        self.clients.prune();
    }
}

impl Drop for TokenIndex {
    /// Breaks the slot <-> record cycles of the keys that still have live tokens.
    fn drop(&mut self) {
        for e in self.keys.iter() {
            *e.key().0.lock() = KeyState::default();
        }
    }
}
