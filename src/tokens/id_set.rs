//! A concurrent set of records looked up by their [`TokenId`].
//!
//! The id is already in the record, so the map's entries are the record pointers alone (8 bytes)
//! instead of a 32-byte copy of the id beside them: a lookup compares the id through the pointer,
//! which the caller follows anyway to read the record.

use std::borrow::Borrow;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::record::{AccessRecord, RefreshRecord};
pub use crate::domain::ids::IdHasher;
use crate::domain::ids::TokenId;

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

/// Records by id, with their count kept beside them: `DashMap::len` read-locks every shard
/// (8 here, 4 x the cores rounded up on larger machines), and the token path asks for the
/// count on every request that adds a token (`oauth.max_live_tokens`).
pub struct IdSet<T> {
    map: DashMap<ById<T>, (), BuildHasherDefault<IdHasher>>,
    len: AtomicUsize,
}

impl<T: Identified> Default for IdSet<T> {
    fn default() -> Self {
        IdSet {
            map: DashMap::default(),
            len: AtomicUsize::new(0),
        }
    }
}

impl<T: Identified> IdSet<T> {
    pub fn get(&self, id: &TokenId) -> Option<Arc<T>> {
        self.map.get(id).map(|e| Arc::clone(&e.key().0))
    }

    /// Runs `f` on the record without cloning its `Arc`.
    pub fn with<R>(&self, id: &TokenId, f: impl FnOnce(Option<&T>) -> R) -> R {
        match self.map.get(id) {
            Some(e) => f(Some(&e.key().0)),
            None => f(None),
        }
    }

    /// Inserts `rec`, replacing a record with the same id. Returns whether the id is new.
    pub fn insert(&self, rec: Arc<T>) -> bool {
        match self.map.entry(ById(rec)) {
            Entry::Occupied(o) => {
                o.replace_entry(());
                false
            }
            Entry::Vacant(v) => {
                // Counted while the entry's shard is still locked, so a removal of this id
                // (which has to wait for it) never counts down first.
                self.len.fetch_add(1, Ordering::Relaxed);
                v.insert(());
                true
            }
        }
    }

    /// Removes the record with this id, and returns it.
    pub fn remove(&self, id: &TokenId) -> Option<Arc<T>> {
        let (gone, ()) = self.map.remove(id)?;
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(gone.0)
    }

    /// The number of records: exact once concurrent inserts and removals have returned.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Snapshot of the records.
    pub fn records(&self) -> Vec<Arc<T>> {
        self.map.iter().map(|e| Arc::clone(&e.key().0)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rec(TokenId);
    impl Identified for Rec {
        fn id(&self) -> &TokenId {
            &self.0
        }
    }

    fn rec(n: u8) -> Arc<Rec> {
        Arc::new(Rec(TokenId([n; 32])))
    }

    /// The kept count follows the map through replacements and removals of absent ids.
    #[test]
    fn the_count_follows_inserts_and_removals() {
        let set = IdSet::<Rec>::default();
        assert!(set.is_empty());
        assert!(set.insert(rec(1)));
        assert!(set.insert(rec(2)));
        assert!(!set.insert(rec(1)), "a replacement is not a new id");
        assert_eq!((set.len(), set.map.len()), (2, 2));
        assert_eq!(set.remove(&TokenId([1; 32])).map(|r| r.0), Some(TokenId([1; 32])));
        assert!(set.remove(&TokenId([1; 32])).is_none());
        assert!(set.remove(&TokenId([9; 32])).is_none());
        assert_eq!((set.len(), set.map.len()), (1, 1));
        assert!(set.get(&TokenId([2; 32])).is_some());
    }

    /// Concurrent inserts and removals of distinct ids leave the count exact.
    #[test]
    fn the_count_is_exact_after_concurrent_changes() {
        let set = Arc::new(IdSet::<Rec>::default());
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let set = Arc::clone(&set);
                std::thread::spawn(move || {
                    for i in 0..1000u32 {
                        let mut id = [t; 32];
                        id[1..5].copy_from_slice(&i.to_le_bytes());
                        set.insert(Arc::new(Rec(TokenId(id))));
                        if i % 2 == 0 {
                            set.remove(&TokenId(id));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!((set.len(), set.map.len()), (2000, 2000));
    }
}
