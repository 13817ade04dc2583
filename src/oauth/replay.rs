//! Single-use identifiers (a DPoP proof's `jti`, a client assertion's `jti`): each is accepted
//! once while it could still be presented, within a bounded memory. When full, new identifiers
//! are refused (fail closed) rather than an entry dropped early, which would let it be replayed. Entries are kept by the SHA-256 of the key and the `jti`
//! (no client text is held) until their proof would be refused as too old anyway.

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use std::hash::BuildHasherDefault;

use crate::domain::ids::IdHasher;

type IdBuildHasher = BuildHasherDefault<IdHasher>;

/// How many identifiers are remembered at most by default: 16 bytes of digest prefix and 8 of
/// expiry each, a few tens of MiB at the bound.
pub const DEFAULT_CAPACITY: usize = 1_000_000;

/// Why an identifier was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("this proof was already used")]
    Replayed,
    /// The cache holds `capacity` unexpired identifiers: refused rather than forgotten (fail
    /// closed), until some expire.
    #[error("too many proofs in flight; retry shortly")]
    Full,
}

/// What is kept of identifier `id` of `scope`: 16 bytes of their SHA-256.
pub fn digest(scope: &[u8], id: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update((scope.len() as u64).to_be_bytes());
    h.update(scope);
    h.update(id.as_bytes());
    let digest = h.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Identifiers seen, with when each may be forgotten (unix seconds).
pub struct ReplayCache {
    seen: DashMap<[u8; 16], u64, IdBuildHasher>,
    capacity: usize,
}

impl Default for ReplayCache {
    fn default() -> ReplayCache {
        ReplayCache::new(DEFAULT_CAPACITY)
    }
}

impl ReplayCache {
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            seen: DashMap::with_hasher(IdBuildHasher::default()),
            capacity,
        }
    }

    /// Records `id` of `scope` (the key it belongs to) until `forget_at`; refused when it was
    /// recorded already and has not been forgotten.
    pub fn first_use(&self, scope: &[u8], id: &str, now: u64, forget_at: u64) -> Result<(), ReplayError> {
        self.first_use_of(digest(scope, id), now, forget_at)
    }

    /// [`ReplayCache::first_use`] of an identifier by its [`digest`].
    pub fn first_use_of(&self, key: [u8; 16], now: u64, forget_at: u64) -> Result<(), ReplayError> {
        // A replay is told as one even when the cache is full.
        if self.seen.get(&key).is_some_and(|e| *e > now) {
            return Err(ReplayError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            self.forget_expired(now);
            if self.seen.len() >= self.capacity {
                return Err(ReplayError::Full);
            }
        }
        match self.seen.entry(key) {
            dashmap::mapref::entry::Entry::Occupied(mut e) if *e.get() <= now => {
                e.insert(forget_at);
                Ok(())
            }
            dashmap::mapref::entry::Entry::Occupied(_) => Err(ReplayError::Replayed),
            dashmap::mapref::entry::Entry::Vacant(v) => {
                v.insert(forget_at);
                Ok(())
            }
        }
    }

    /// Drops the identifiers whose proofs are refused as too old anyway.
    pub fn forget_expired(&self, now: u64) {
        self.seen.retain(|_, forget_at| *forget_at > now);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identifier_is_accepted_once_until_forgotten() {
        let c = ReplayCache::new(10);
        assert_eq!(c.first_use(b"k1", "a", 100, 160), Ok(()));
        assert_eq!(c.first_use(b"k1", "a", 120, 180), Err(ReplayError::Replayed));
        assert_eq!(c.first_use(b"k2", "a", 120, 180), Ok(()), "another key's identifier");
        assert_eq!(c.first_use(b"k1", "a", 160, 220), Ok(()), "forgotten at its time");
    }

    #[test]
    fn a_full_cache_refuses_rather_than_forgets() {
        let c = ReplayCache::new(2);
        c.first_use(b"k", "a", 100, 200).unwrap();
        c.first_use(b"k", "b", 100, 150).unwrap();
        assert_eq!(c.first_use(b"k", "c", 120, 200), Err(ReplayError::Full));
        assert_eq!(c.first_use(b"k", "c", 150, 200), Ok(()), "room once one expired");
        assert_eq!(c.len(), 2);
    }
}
