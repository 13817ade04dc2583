//! A concurrent set of records looked up by their [`TokenId`].
//!
//! The id is already in the record, so the map's entries are the record pointers alone (8 bytes)
//! instead of a 32-byte copy of the id beside them: a lookup compares the id through the pointer,
//! which the caller follows anyway to read the record.

use std::borrow::Borrow;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::record::{AccessRecord, RefreshRecord, TokenId};

/// Ids are uniformly random (opaque ids, SHA-256 outputs, and only ids that passed their HMAC
/// check are looked up), so their first 8 bytes are already a good hash.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
        }
    }
}

/// A record that carries its own id.
pub trait Identified {
    fn id(&self) -> &TokenId;
}

impl Identified for AccessRecord {
    fn id(&self) -> &TokenId {
        &self.id
    }
}

impl Identified for RefreshRecord {
    fn id(&self) -> &TokenId {
        &self.id
    }
}

/// A record hashed and compared as its id (so the set is looked up by `&TokenId`).
pub struct ById<T>(pub Arc<T>);

impl<T: Identified> Hash for ById<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id().hash(state);
    }
}

impl<T: Identified> PartialEq for ById<T> {
    fn eq(&self, other: &ById<T>) -> bool {
        self.0.id() == other.0.id()
    }
}

impl<T: Identified> Eq for ById<T> {}

impl<T: Identified> Borrow<TokenId> for ById<T> {
    fn borrow(&self) -> &TokenId {
        self.0.id()
    }
}

/// Records by id.
pub struct IdSet<T>(DashMap<ById<T>, (), BuildHasherDefault<IdHasher>>);

impl<T: Identified> Default for IdSet<T> {
    fn default() -> Self {
        IdSet(DashMap::default())
    }
}

impl<T: Identified> IdSet<T> {
    pub fn get(&self, id: &TokenId) -> Option<Arc<T>> {
        self.0.get(id).map(|e| Arc::clone(&e.key().0))
    }

    /// Runs `f` on the record without cloning its `Arc`.
    pub fn with<R>(&self, id: &TokenId, f: impl FnOnce(Option<&T>) -> R) -> R {
        match self.0.get(id) {
            Some(e) => f(Some(&e.key().0)),
            None => f(None),
        }
    }

    /// Inserts `rec`, replacing a record with the same id.
    pub fn insert(&self, rec: Arc<T>) {
        match self.0.entry(ById(rec)) {
            Entry::Occupied(o) => {
                o.replace_entry(());
            }
            Entry::Vacant(v) => {
                v.insert(());
            }
        }
    }

    pub fn remove(&self, id: &TokenId) {
        self.0.remove(id);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Snapshot of the records.
    pub fn records(&self) -> Vec<Arc<T>> {
        self.0.iter().map(|e| Arc::clone(&e.key().0)).collect()
    }
}
