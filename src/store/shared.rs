//! What a store shared by several nodes (cluster mode) adds to the [`super::TokenStore`]
//! contract: a *turn* per decision, taken under the key's lock in the database with the key's
//! live rows read there; the *feed* of changes other nodes made; and the key fingerprints every
//! node must share. A store of one node gives turns with no rows and has no feed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use compact_str::CompactString;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::{AccessRow, Ack, RefreshRow, StoreOp, TokenStore};
use crate::domain::ids::{TokenId, TokenState};

/// A token key as a shared store locks and reads it: client id, subject and canonical scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyName {
    pub client_id: Arc<str>,
    pub subject: CompactString,
    pub scope: Arc<str>,
    pub audience: Arc<str>,
}

impl KeyName {
    /// The key's 64-bit lock number, the same on every node: the first 8 bytes of a SHA-256
    /// over the three parts, each length-prefixed (so no two keys share an encoding).
    pub fn lock_id(&self) -> i64 {
        lock_id(&self.client_id, &self.subject, &self.scope, &self.audience)
    }
}

/// [`KeyName::lock_id`] of the key with these parts; the store also keeps it with every token
/// (`key_hash`), the column its live tokens are read by. The audience counts only when there is
/// one: the keys of tokens stored before audiences keep the numbers they were stored with.
pub fn lock_id(client_id: &str, subject: &str, scope: &str, audience: &str) -> i64 {
    let mut h = Sha256::new();
    let parts = [client_id, subject, scope, audience];
    let used = if audience.is_empty() { 3 } else { 4 };
    for part in &parts[..used] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The tokens of one key the database holds as live, read under the key's lock: active access
/// tokens, and refresh tokens that are active or spent (a spent one detects its reuse).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KeyRows {
    pub access: Vec<AccessRow>,
    pub refresh: Vec<RefreshRow>,
}

/// One decision's turn. With a shared store, `live` is the key's truth and the key stays locked
/// in the database until the changes handed to [`Turn::submit`] are committed; with a store of
/// one node, `live` is `None` (the index is the truth) and the changes are simply submitted.
/// A turn dropped without a submission hands in no change.
pub struct Turn {
    pub live: Option<KeyRows>,
    shared: Option<(oneshot::Sender<Vec<StoreOp>>, Ack)>,
}

impl Turn {
    /// A turn of a store of one node.
    pub fn direct() -> Turn {
        Turn {
            live: None,
            shared: None,
        }
    }

    /// A turn of a shared store: the key's rows, where the changes go, and the ack of the
    /// transaction they join.
    pub fn shared(live: KeyRows, changes: oneshot::Sender<Vec<StoreOp>>, ack: Ack) -> Turn {
        Turn {
            live: Some(live),
            shared: Some((changes, ack)),
        }
    }

    /// Hands in the decision's changes (call it under the in-memory key lock, so changes to one
    /// key reach the store in the order they were decided); the ack resolves once durable.
    pub fn submit(self, store: &dyn TokenStore, ops: Vec<StoreOp>) -> Ack {
        match self.shared {
            Some((changes, ack)) => {
                // A writer that went away fails the ack too.
                let _ = changes.send(ops);
                ack
            }
            None => store.submit(ops),
        }
    }
}

/// Which table a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// One change another node (or this one) committed: a token's new state.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: TokenKind,
    pub id: TokenId,
    pub state: TokenState,
}

/// What the node makes of changes (set once, by the engine).
pub type Applier = Box<dyn Fn(&[Change]) + Send + Sync>;

/// How far a node can trust its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// The feed is caught up.
    Ok,
    /// The database cannot be reached; the index is what it was at `since_ms` (wall clock).
    Unreachable { since_ms: u64 },
}

/// The change feed's side that the node sees: where changes are delivered, and whether the
/// feed is caught up. The store's listener fills it.
pub struct Feed {
    applier: OnceLock<Applier>,
    subscribed: tokio::sync::Notify,
    /// Wall-clock milliseconds of the last pull that reached the head of the feed (0 = none).
    caught_up_ms: AtomicU64,
    /// False from a failure to reach the database until the next pull that catches up; true
    /// until a first failure (the store was reached when it opened).
    reachable: AtomicBool,
}

impl Default for Feed {
    fn default() -> Feed {
        Feed {
            applier: OnceLock::new(),
            subscribed: tokio::sync::Notify::new(),
            caught_up_ms: AtomicU64::new(0),
            reachable: AtomicBool::new(true),
        }
    }
}

impl Feed {
    /// Sets where changes go; the listener waits for this before its first pull. A second call
    /// changes nothing.
    pub fn subscribe(&self, applier: Applier) {
        if self.applier.set(applier).is_ok() {
            self.subscribed.notify_one();
        }
    }

    /// Waits until [`Self::subscribe`] was called.
    pub async fn wait_for_subscriber(&self) {
        while self.applier.get().is_none() {
            self.subscribed.notified().await;
        }
    }

    /// Applies pulled changes.
    pub fn deliver(&self, changes: &[Change]) {
        if let Some(apply) = self.applier.get() {
            apply(changes);
        }
    }

    /// A pull reached the head of the feed at `now_ms`.
    pub fn caught_up(&self, now_ms: u64) {
        self.caught_up_ms.store(now_ms, Ordering::Release);
        self.reachable.store(true, Ordering::Release);
    }

    /// A pull or a write could not reach the database.
    pub fn lost(&self) {
        self.reachable.store(false, Ordering::Release);
    }

    pub fn state(&self) -> SyncState {
        if self.reachable.load(Ordering::Acquire) {
            SyncState::Ok
        } else {
            SyncState::Unreachable {
                since_ms: self.caught_up_ms.load(Ordering::Acquire),
            }
        }
    }

    /// Wall-clock milliseconds of the last pull that reached the head (0 = none yet).
    pub fn caught_up_at_ms(&self) -> u64 {
        self.caught_up_ms.load(Ordering::Acquire)
    }
}

/// A key every node must share, as the database records it: its config name and a fingerprint
/// (never the key). `previous` are fingerprints a rotation may replace (the JWT keys listed in
/// `jwt_previous_keys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFingerprint {
    pub name: &'static str,
    pub fingerprint: String,
    pub previous: Vec<String>,
}

/// A SHA-256 fingerprint in hex.
pub fn fingerprint(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_ids_tell_keys_apart_and_are_stable() {
        let key = |c: &str, s: &str, sc: &str| KeyName {
            client_id: c.into(),
            subject: s.into(),
            scope: sc.into(),
            audience: "".into(),
        };
        assert_eq!(key("a", "b", "c").lock_id(), key("a", "b", "c").lock_id());
        assert_ne!(key("ab", "", "c").lock_id(), key("a", "b", "c").lock_id());
        assert_ne!(key("a", "b", "c d").lock_id(), key("a", "b", "c").lock_id());
        // Fixed across versions and nodes: a change would let two versions lock apart.
        assert_eq!(key("app", "", "a b").lock_id(), key("app", "", "a b").lock_id());
        let mut aimed = key("app", "", "a b");
        aimed.audience = "https://orders.example".into();
        assert_ne!(
            aimed.lock_id(),
            key("app", "", "a b").lock_id(),
            "the audience is part of the key"
        );
    }
}
