//! Ids of access tokens known to be dead (revoked, expired, spent), remembered for a while by a
//! node of a cluster: a look-up of a token this node had not seen ([`super::sync`]) that races
//! the token's revocation checks here after putting it in the index, so it cannot bring the
//! token back; and a dead token presented again costs no second query while it is remembered.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Mutex, PoisonError};

use crate::domain::ids::{IdHasher, TokenId};

/// How long a change the feed reported is remembered: longer than any look-up may take.
pub(crate) const RACE_WINDOW_MS: u64 = 60_000;
/// Most ids remembered; past it, the ones whose time is up go first, then all of them (a
/// forgotten id costs one more query, never a wrong answer once the race window has passed).
const MAX_IDS: usize = 1 << 20;

#[derive(Default)]
pub(crate) struct DeadIds {
    /// Id, and until when (wall-clock ms) it is remembered.
    until: Mutex<HashMap<TokenId, u64, BuildHasherDefault<IdHasher>>>,
}

impl DeadIds {
    /// Remembers `id` until `until_ms`.
    pub(crate) fn note(&self, id: TokenId, until_ms: u64, now_ms: u64) {
        let mut map = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_IDS {
            map.retain(|_, until| *until > now_ms);
            if map.len() >= MAX_IDS {
                map.clear();
            }
        }
        let entry = map.entry(id).or_insert(until_ms);
        *entry = (*entry).max(until_ms);
    }

    /// Whether `id` is remembered as dead at `now_ms`.
    pub(crate) fn contains(&self, id: &TokenId, now_ms: u64) -> bool {
        let map = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(id).is_some_and(|until| *until > now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_remembered_until_their_time() {
        let dead = DeadIds::default();
        let id = TokenId([7; 32]);
        assert!(!dead.contains(&id, 0));
        dead.note(id, 100, 0);
        assert!(dead.contains(&id, 99));
        assert!(!dead.contains(&id, 100));
        // A later note never shortens the time.
        dead.note(id, 50, 0);
        assert!(dead.contains(&id, 99));
    }
}
