//! A token key and the live tokens of that key, together in one allocation.
//!
//! The index's key map holds each key's slot, and every record of the key points at the same slot
//! (`rec.key`), so a key costs one allocation however many tokens it has. The index drops a slot
//! only when nothing else holds it (see [`super::index::TokenIndex::drop_if_idle`]), hence a
//! record's slot is always the one the index hands out for its key: the mutex that serialises a
//! key's changes stays unique.
//!
//! A slot and the records in its state point at each other; the cycle is broken whenever a token
//! leaves the key's state (retired, revoked or swept), and by the index when it is dropped.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use smallvec::SmallVec;
use thin_vec::ThinVec;

use super::key::TokenKey;
use super::record::{AccessRecord, RefreshRecord};

/// The live tokens of one key, in issue order (oldest first). A single-mode key holds one active
/// token: it lives inline, with no allocation of its own.
#[derive(Debug, Default)]
pub struct KeyState {
    pub active: SmallVec<[Arc<AccessRecord>; 1]>,
    /// Refresh tokens of the key that can still be used (not spent, revoked or expired). One
    /// pointer wide (length and capacity live in its buffer; none while empty): most keys have
    /// none, and the slot fits a smaller allocation class.
    pub refresh: ThinVec<Arc<RefreshRecord>>,
}

impl KeyState {
    pub fn is_empty(&self) -> bool {
        self.active.is_empty() && self.refresh.is_empty()
    }
}

/// A key and its state behind a mutex. It reads as its [`TokenKey`] (`rec.key.client_id`).
pub struct KeySlot {
    key: TokenKey,
    state: Mutex<KeyState>,
}

impl KeySlot {
    pub fn new(key: TokenKey) -> KeySlot {
        KeySlot {
            key,
            state: Mutex::new(KeyState::default()),
        }
    }

    pub fn key(&self) -> &TokenKey {
        &self.key
    }

    /// Locks the key's state. A panic while it was held cannot leave it half-updated in a way
    /// that matters more than refusing every later request for the key, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, KeyState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the state is empty, without waiting: a held lock counts as "not empty".
    pub fn is_idle(&self) -> bool {
        self.state.try_lock().map(|s| s.is_empty()).unwrap_or(false)
    }
}

impl Deref for KeySlot {
    type Target = TokenKey;

    fn deref(&self) -> &TokenKey {
        &self.key
    }
}

impl fmt::Debug for KeySlot {
    /// The key only: the state's records point back at this slot.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySlot")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// An entry of the index's key map: a slot, hashed and compared as its key, so the map needs no
/// second copy of the key and is looked up by `&TokenKey`.
pub(super) struct SlotEntry(pub(super) Arc<KeySlot>);

impl Hash for SlotEntry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.key.hash(state);
    }
}

impl PartialEq for SlotEntry {
    fn eq(&self, other: &SlotEntry) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for SlotEntry {}

impl Borrow<TokenKey> for SlotEntry {
    fn borrow(&self) -> &TokenKey {
        &self.0.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout the memory figures depend on: with its Arc counts a slot stays within a
    /// 128-byte allocation (one key = one allocation; a subject up to 24 bytes is inline).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_slot_stays_small() {
        let size = std::mem::size_of::<KeySlot>();
        assert!(size <= 112, "{size}");
    }

    #[test]
    fn a_slot_reads_as_its_key() {
        let key = TokenKey {
            client_id: "app".into(),
            subject: "alice".into(),
            scope: super::super::key::ScopeSet::parse("a").unwrap_or_default(),
        };
        let slot = KeySlot::new(key.clone());
        assert_eq!(*slot, key);
        assert!(slot.is_idle());
        let _held = slot.lock();
        assert!(!slot.is_idle(), "a held lock is not idle");
    }
}
