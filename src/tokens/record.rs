//! What the gateway knows of issued tokens, never their text: each token's record, and the slot
//! of its key that holds the key's live tokens (a record points at its slot and the slot at its
//! records, so the two live in one module).
//!
//! A key's slot holds the key and its live tokens in one allocation. The index's key map holds each key's slot, and every record of the key points at the same slot
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
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use smallvec::SmallVec;
use thin_vec::ThinVec;

use crate::domain::format::TokenFormat;
use crate::domain::grant_type::GrantType;
pub use crate::domain::ids::{now_ms, FamilyId, TokenId, TokenState};
use crate::domain::key::TokenKey;

/// A state that readers on other threads see change at once (revocation is a store, not a
/// re-insert into the index).
#[derive(Debug)]
pub struct AtomicState(AtomicU8);

impl AtomicState {
    pub fn new(s: TokenState) -> AtomicState {
        AtomicState(AtomicU8::new(s as u8))
    }

    pub fn get(&self) -> TokenState {
        TokenState::from_u8(self.0.load(Ordering::Acquire))
    }

    pub fn set(&self, s: TokenState) {
        self.0.store(s as u8, Ordering::Release);
    }
}

/// An issued access token.
#[derive(Debug)]
pub struct AccessRecord {
    pub id: TokenId,
    /// Its key, and that key's state: reads as the [`crate::domain::key::TokenKey`].
    pub key: Arc<KeySlot>,
    pub format: TokenFormat,
    pub grant: GrantType,
    /// Whole seconds, times 1000: `iat` of the token.
    pub issued_at_ms: u64,
    /// Whole seconds, times 1000: `exp` of the token.
    pub expires_at_ms: u64,
    /// The refresh token issued with it, and its family; boxed because most tokens have none
    /// (8 bytes instead of 56 in every record).
    pub refresh: Option<Box<RefreshLink>>,
    pub state: AtomicState,
    /// Set once the store acknowledged the token: handing it out again needs no wait then.
    pub durable: AtomicBool,
}

/// Which refresh token an access token was issued with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshLink {
    pub id: TokenId,
    pub family: FamilyId,
}

impl AccessRecord {
    /// The refresh token issued with this access token, if any.
    pub fn refresh_id(&self) -> Option<TokenId> {
        self.refresh.as_ref().map(|l| l.id)
    }

    /// The refresh family this access token belongs to, if any.
    pub fn family(&self) -> Option<&FamilyId> {
        self.refresh.as_ref().map(|l| &l.family)
    }

    pub fn is_durable(&self) -> bool {
        self.durable.load(Ordering::Acquire)
    }

    pub fn mark_durable(&self) {
        self.durable.store(true, Ordering::Release);
    }

    /// Active and not past its expiry.
    pub fn is_valid_at(&self, now_ms: u64) -> bool {
        self.state.get() == TokenState::Active && self.expires_at_ms > now_ms
    }
}

/// An issued refresh token.
#[derive(Debug)]
pub struct RefreshRecord {
    pub id: TokenId,
    pub key: Arc<KeySlot>,
    pub family: FamilyId,
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
    /// The access token it was issued with.
    pub access_id: TokenId,
    pub state: AtomicState,
}

/// Active tokens a sweep looks at per hold of a key's lock. A key may hold a million (multi
/// mode without a cap): swept in one hold it would stall the key's requests; a slice holds the
/// lock for well under a millisecond.
pub const SWEEP_SLICE: usize = 8192;

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

    /// Takes the tokens expired at `now_ms` out of the key's state, one slice of
    /// [`SWEEP_SLICE`] tokens per hold of the lock, and hands each slice's expired tokens to
    /// `expired` after releasing it. Tokens issued or revoked meanwhile may make a sweep miss a
    /// few expired ones: the next one takes them (an expired token is refused anyway).
    pub fn sweep(&self, now_ms: u64, mut expired: impl FnMut(Vec<Arc<AccessRecord>>)) {
        let mut pos = 0;
        loop {
            let (gone, done) = {
                let mut st = self.lock();
                let end = (pos + SWEEP_SLICE).min(st.active.len());
                let mut gone = Vec::new();
                // Live tokens move forward in order; the expired ones gather behind them.
                let mut live = pos;
                for i in pos..end {
                    if st.active[i].expires_at_ms > now_ms {
                        st.active.swap(live, i);
                        live += 1;
                    } else {
                        // Marked under the lock: a revocation finds nothing left to do.
                        st.active[i].state.set(TokenState::Expired);
                        gone.push(Arc::clone(&st.active[i]));
                    }
                }
                st.active.drain(live..end);
                pos = live;
                let done = pos >= st.active.len();
                if done {
                    st.refresh.retain(|r| r.expires_at_ms > now_ms);
                }
                (gone, done)
            };
            expired(gone);
            if done {
                return;
            }
        }
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

    fn record(slot: &Arc<KeySlot>, n: u32, expires_at_ms: u64) -> Arc<AccessRecord> {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&n.to_le_bytes());
        Arc::new(AccessRecord {
            id: super::super::record::TokenId(id),
            key: Arc::clone(slot),
            format: crate::domain::format::TokenFormat::Opaque,
            grant: crate::domain::grant_type::GrantType::ClientCredentials,
            issued_at_ms: 0,
            expires_at_ms,
            refresh: None,
            state: super::super::record::AtomicState::new(TokenState::Active),
            durable: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// A key of many tokens is swept slice by slice, with its lock free between slices; the
    /// live tokens stay in issue order.
    #[test]
    fn a_sweep_takes_expired_tokens_slice_by_slice() {
        let slot = Arc::new(KeySlot::new(TokenKey {
            client_id: "app".into(),
            subject: "".into(),
            scope: crate::domain::key::ScopeSet::default(),
            audience: Default::default(),
        }));
        let n = 2 * SWEEP_SLICE as u32 + 100;
        // Every third token outlives the sweep.
        let all: Vec<_> = (0..n)
            .map(|i| record(&slot, i, if i % 3 == 0 { 9_000 } else { 1_000 }))
            .collect();
        slot.lock().active.extend(all.iter().cloned());
        let mut slices = 0;
        let mut taken = Vec::new();
        slot.sweep(5_000, |gone| {
            assert!(slot.state.try_lock().is_ok(), "handed over after the lock is released");
            slices += 1;
            taken.extend(gone);
        });
        assert_eq!(slices, 3);
        assert_eq!(taken.len(), all.iter().filter(|r| r.expires_at_ms == 1_000).count());
        assert!(taken
            .iter()
            .all(|r| r.state.get() == TokenState::Expired && r.expires_at_ms == 1_000));
        let left: Vec<_> = slot.lock().active.iter().map(|r| r.id).collect();
        let live: Vec<_> = all.iter().filter(|r| r.expires_at_ms == 9_000).map(|r| r.id).collect();
        assert_eq!(left, live);
        assert!(all
            .iter()
            .filter(|r| r.expires_at_ms == 9_000)
            .all(|r| r.state.get() == TokenState::Active));
        // Break the slot <-> record cycle.
        slot.lock().active.clear();
    }

    #[test]
    fn a_slot_reads_as_its_key() {
        let key = TokenKey {
            client_id: "app".into(),
            subject: "alice".into(),
            scope: crate::domain::key::ScopeSet::parse("a").unwrap_or_default(),
            audience: Default::default(),
        };
        let slot = KeySlot::new(key.clone());
        assert_eq!(*slot, key);
        assert!(slot.is_idle());
        let _held = slot.lock();
        assert!(!slot.is_idle(), "a held lock is not idle");
    }
}
