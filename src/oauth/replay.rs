//! The `jti`s of the client assertions already used, so each authenticates once (RFC 7523
//! section 3, item 7). An entry is kept until its assertion could no longer be accepted (its
//! `exp` plus the clock leeway), then dropped; `exp` is bounded ahead, so entries do not pile
//! up. The cache is bounded: when full, new assertions are refused (fail closed) rather than an
//! old entry dropped early, which would let its assertion be replayed.
//!
//! Entries are a 128-bit digest of (client id, `jti`): fixed size whatever the `jti`, and
//! nothing of the assertion is kept. The cache lives in the gateway's memory: each node of a
//! cluster has its own (see the security page).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

/// Assertions remembered at once by default: about 64 bytes each, so 64 MiB at most; at the
/// longest lifetime (7 minutes with the leeway) about 2,400 new assertions a second.
pub const DEFAULT_CAPACITY: usize = 1_000_000;

type Entry = [u8; 16];

/// Why an assertion's `jti` was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// It was used before.
    Replayed,
    /// The cache holds as many as it may.
    Full,
}

/// The spent `jti`s, with when each may be forgotten.
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashMap<Entry, u64>,
    by_expiry: BinaryHeap<Reverse<(u64, Entry)>>,
}

impl Default for ReplayCache {
    fn default() -> ReplayCache {
        ReplayCache::new(DEFAULT_CAPACITY)
    }
}

impl ReplayCache {
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Spends `jti` of `client_id`, remembered through `keep_until` (Unix seconds: the last
    /// second its assertion could be accepted); `now` first drops the entries whose time has
    /// passed.
    pub fn spend(&self, client_id: &str, jti: &str, keep_until: u64, now: u64) -> Result<(), ReplayError> {
        let entry = digest(client_id, jti);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.forget_until(now);
        if inner.seen.contains_key(&entry) {
            return Err(ReplayError::Replayed);
        }
        if inner.seen.len() >= self.capacity {
            return Err(ReplayError::Full);
        }
        inner.seen.insert(entry, keep_until);
        inner.by_expiry.push(Reverse((keep_until, entry)));
        Ok(())
    }

    /// Assertions remembered now.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// Drops the entries kept until before `now` (an assertion is still accepted in the very
    /// second of its `keep_until`); each is dropped once, amortised O(log n) per spend.
    fn forget_until(&mut self, now: u64) {
        while let Some(Reverse((until, entry))) = self.by_expiry.peek().copied() {
            if until >= now {
                break;
            }
            self.by_expiry.pop();
            self.seen.remove(&entry);
        }
    }
}

/// 128 bits of SHA-256 over the client id (length-prefixed, so ids and `jti`s cannot run into
/// each other) and the `jti`. A collision would refuse an assertion, never accept one.
fn digest(client_id: &str, jti: &str) -> Entry {
    let mut h = Sha256::new();
    h.update((client_id.len() as u64).to_be_bytes());
    h.update(client_id.as_bytes());
    h.update(jti.as_bytes());
    let full = h.finalize();
    let mut entry = [0u8; 16];
    entry.copy_from_slice(&full[..16]);
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_spent_once_per_client_until_its_time_passes() {
        let cache = ReplayCache::new(10);
        assert_eq!(cache.spend("a", "j1", 100, 0), Ok(()));
        assert_eq!(cache.spend("a", "j1", 100, 50), Err(ReplayError::Replayed));
        assert_eq!(cache.spend("b", "j1", 100, 50), Ok(()), "another client's jti");
        assert_eq!(
            cache.spend("a", "j1", 100, 100),
            Err(ReplayError::Replayed),
            "its last second"
        );
        assert_eq!(
            cache.spend("a", "j1", 200, 101),
            Ok(()),
            "forgotten once its time passed"
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_full_cache_refuses_rather_than_forgets() {
        let cache = ReplayCache::new(2);
        assert_eq!(cache.spend("a", "1", 100, 0), Ok(()));
        assert_eq!(cache.spend("a", "2", 200, 0), Ok(()));
        assert_eq!(cache.spend("a", "3", 100, 0), Err(ReplayError::Full));
        assert_eq!(
            cache.spend("a", "1", 100, 0),
            Err(ReplayError::Replayed),
            "still remembered"
        );
        assert_eq!(cache.spend("a", "3", 300, 101), Ok(()), "room once the first expired");
        assert_eq!(cache.spend("a", "2", 300, 150), Err(ReplayError::Replayed));
    }

    #[test]
    fn ids_and_jtis_do_not_run_into_each_other() {
        assert_ne!(digest("ab", "c"), digest("a", "bc"));
    }
}
