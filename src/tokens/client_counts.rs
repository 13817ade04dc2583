//! Tokens held per client, access and refresh together: what `oauth.max_live_tokens_per_client`
//! bounds and the `tokengate_client_live_tokens` gauge shows, so one client flooding the token
//! endpoint runs into its own bound instead of the gateway's, and the others keep getting tokens.
//!
//! The index counts here when a record enters or leaves it ([`super::index::TokenIndex`]). A
//! removal can be counted just before the insert it follows (the two change different maps), so a
//! count may dip below zero for an instant: counts are signed and read as at least zero.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

/// Live tokens per client id.
#[derive(Default)]
pub struct ClientCounts {
    counts: DashMap<Arc<str>, AtomicI64>,
}

impl ClientCounts {
    /// Adds `n` (negative to take away) to `client`'s count.
    pub fn add(&self, client: &Arc<str>, n: i64) {
        // The common case, a client already counted, takes a shard's read lock only.
        if let Some(count) = self.counts.get(&**client) {
            count.fetch_add(n, Ordering::Relaxed);
            return;
        }
        self.counts
            .entry(Arc::clone(client))
            .or_default()
            .fetch_add(n, Ordering::Relaxed);
    }

    /// `client`'s live tokens.
    pub fn get(&self, client: &str) -> u64 {
        self.counts
            .get(client)
            .map_or(0, |c| u64::try_from(c.load(Ordering::Relaxed)).unwrap_or(0))
    }

    /// Every client that holds tokens, with its count, sorted by client id.
    pub fn snapshot(&self) -> Vec<(Arc<str>, u64)> {
        let mut all: Vec<(Arc<str>, u64)> = self
            .counts
            .iter()
            .filter_map(|e| {
                let n = u64::try_from(e.value().load(Ordering::Relaxed)).ok()?;
                (n > 0).then(|| (Arc::clone(e.key()), n))
            })
            .collect();
        all.sort_unstable();
        all
    }

    /// Forgets the clients that hold nothing (a client removed from the config, say). An entry
    /// is dropped only at exactly zero, under its shard's write lock, so no change is lost.
    pub fn prune(&self) {
        self.counts.retain(|_, c| c.load(Ordering::Relaxed) != 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_adds_and_removals_per_client() {
        let counts = ClientCounts::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        counts.add(&a, 1);
        counts.add(&a, 1);
        counts.add(&b, 1);
        counts.add(&a, -1);
        assert_eq!((counts.get("a"), counts.get("b"), counts.get("c")), (1, 1, 0));
        counts.add(&b, -1);
        assert_eq!(counts.snapshot(), vec![(a.clone(), 1)]);
        counts.prune();
        assert_eq!(counts.counts.len(), 1, "b held nothing and is forgotten");
        assert_eq!(counts.get("b"), 0);
    }

    /// A removal counted before its insert reads as zero, not as a huge number, and the pair
    /// still nets out.
    #[test]
    fn a_count_below_zero_for_an_instant_reads_as_zero() {
        let counts = ClientCounts::default();
        let a: Arc<str> = "a".into();
        counts.add(&a, -1);
        assert_eq!(counts.get("a"), 0);
        assert!(counts.snapshot().is_empty());
        counts.prune();
        counts.add(&a, 1);
        assert_eq!(counts.get("a"), 0);
    }
}
