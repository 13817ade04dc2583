//! What an operator does to many tokens at once (the admin API): list the live tokens a
//! [`TokenFilter`] matches, and revoke them all.
//!
//! Where the tokens are found depends on the store. With a store of one node the index holds
//! every live token, so it is walked. In a cluster a node's index lacks the tokens other nodes
//! issued, so the database is asked ([`TokenStore::find_live`](crate::store::TokenStore)).
//!
//! A revocation goes key by key through the same protocol as a single one: the key's turn (in a
//! cluster: its lock in the database and its live rows), the key's state reconciled with them,
//! the matching tokens and their refresh families revoked under the key's lock, the changes
//! submitted; the answer waits for every ack, so it is durable when it is given, and the change
//! feed carries it to every node like any revocation.

use std::collections::HashSet;
use std::sync::Arc;

use compact_str::CompactString;
use tokio::task::JoinSet;

use super::index::{KeySlot, KeyState, StoredKey};
use super::lifecycle::family_effects;
use super::record::{now_ms, AccessRecord, TokenId, TokenState};
use super::service::{Effect, ServiceError, TokenService};
use crate::domain::filter::TokenFilter;
use crate::domain::format::TokenFormat;
use crate::domain::key::TokenKey;
use crate::store::{Snapshot, StoreError};

/// Keys revoked at once (each waits for its turn and its commit).
const KEYS_IN_FLIGHT: usize = 32;
/// Rows of a cluster's database read per round of a revocation.
const ROUND_ROWS: usize = 10_000;
/// Rounds a cluster's revocation makes at most: each revokes the keys of up to
/// [`ROUND_ROWS`] matching tokens, so only tokens issued as fast as they are revoked (a leaked
/// secret still in use) keep it going; rotate the secret first.
const MAX_ROUNDS: usize = 1_000;

/// One live token as an operator sees it: never its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: TokenId,
    /// A refresh token (always opaque), else an access token.
    pub refresh: bool,
    pub format: TokenFormat,
    pub client_id: Arc<str>,
    /// Empty for a token of no user (`client_credentials`).
    pub subject: CompactString,
    pub scope: Arc<str>,
    /// Canonical audience set (empty for tokens stored before audiences).
    pub audience: Arc<str>,
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
}

/// The live tokens a filter matched, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub tokens: Vec<TokenInfo>,
    /// More matched than were asked for.
    pub truncated: bool,
}

/// A revocation that stopped at an error; the tokens it revoked before stay revoked (in this
/// node's index at least), and running it again is safe.
#[derive(Debug, thiserror::Error)]
#[error("{error} ({revoked} tokens were revoked before it)")]
pub struct BulkFailure {
    pub revoked: usize,
    pub error: ServiceError,
}

impl TokenService {
    /// The live tokens (active and unexpired, access and refresh) that `filter` matches, oldest
    /// first, at most `limit` of them.
    pub async fn list_live(&self, filter: &TokenFilter, limit: usize) -> Result<Listing, StoreError> {
        let now = now_ms();
        let mut tokens = match self.store.find_live(filter, now, limit.saturating_add(1)).await? {
            Some(rows) => from_rows(rows),
            None => self.listed_in_index(filter, now),
        };
        tokens.sort_by_key(|t| t.issued_at_ms);
        let truncated = tokens.len() > limit;
        tokens.truncate(limit);
        Ok(Listing { tokens, truncated })
    }

    /// Revokes every live access and refresh token `filter` matches, with the refresh families
    /// they belong to; returns how many tokens were revoked once all of it is durable. A filter
    /// with no part revokes nothing.
    pub async fn revoke_matching(self: &Arc<Self>, filter: &TokenFilter) -> Result<usize, BulkFailure> {
        if filter.is_empty() {
            return Ok(0);
        }
        let mut revoked = 0;
        let fail = |revoked, error| BulkFailure { revoked, error };
        for _ in 0..MAX_ROUNDS {
            let now = now_ms();
            let rows = match self.store.find_live(filter, now, ROUND_ROWS).await {
                Ok(rows) => rows,
                Err(e) => return Err(fail(revoked, e.into())),
            };
            let Some(rows) = rows else {
                // The index holds every live token: one pass over its keys.
                let slots = self.matching_slots(filter, now);
                return match self.revoke_in(slots, filter).await {
                    Ok(n) => Ok(revoked + n),
                    Err(f) => Err(fail(revoked + f.revoked, f.error)),
                };
            };
            let slots = self.slots_of_rows(&rows);
            if slots.is_empty() {
                return Ok(revoked);
            }
            let n = match self.revoke_in(slots, filter).await {
                Ok(n) => n,
                Err(f) => return Err(fail(revoked + f.revoked, f.error)),
            };
            revoked += n;
            if n == 0 {
                // Rows the engine cannot take (an unreadable scope): nothing more to do.
                return Ok(revoked);
            }
        }
        log::warn!(
            "admin revocation ({}): matching tokens kept coming after {MAX_ROUNDS} rounds; \
             is the client still being issued tokens?",
            filter.parts()
        );
        Ok(revoked)
    }

    /// Revokes the matching tokens of each key of `slots`, a few keys at once; waits until all
    /// of it is durable.
    async fn revoke_in(self: &Arc<Self>, slots: Vec<Arc<KeySlot>>, filter: &TokenFilter) -> Result<usize, BulkFailure> {
        let mut running = JoinSet::new();
        let (mut revoked, mut failed) = (0, None);
        let mut collect = |joined: Result<Result<usize, ServiceError>, tokio::task::JoinError>| match joined {
            Ok(Ok(n)) => revoked += n,
            Ok(Err(e)) => failed = failed.take().or(Some(e)),
            Err(e) => {
                let e = ServiceError::Store(StoreError::Db(format!("a revocation task failed: {e}")));
                failed = failed.take().or(Some(e));
            }
        };
        for slot in slots {
            if running.len() >= KEYS_IN_FLIGHT {
                if let Some(joined) = running.join_next().await {
                    collect(joined);
                }
            }
            let (engine, filter) = (Arc::clone(self), filter.clone());
            running.spawn(async move { engine.revoke_in_key(&slot, &filter).await });
        }
        while let Some(joined) = running.join_next().await {
            collect(joined);
        }
        match failed {
            None => Ok(revoked),
            Some(error) => Err(BulkFailure { revoked, error }),
        }
    }

    /// Revokes the tokens of `slot`'s key that `filter` matches, in the key's turn; returns how
    /// many once durable.
    async fn revoke_in_key(&self, slot: &Arc<KeySlot>, filter: &TokenFilter) -> Result<usize, ServiceError> {
        if !filter.matches_key(slot.key()) {
            return Ok(0);
        }
        let turn = self.turn(slot, true).await?;
        let (ack, n) = {
            let mut st = slot.lock();
            if let Some(live) = &turn.live {
                self.reconcile(slot, &mut st, live);
            }
            let effects = matching_effects(&st, filter, now_ms(), turn.live.is_some());
            if effects.is_empty() {
                // The turn goes without a change.
                return Ok(0);
            }
            let n = effects.len();
            (self.revoke_locked(&mut st, effects, turn), n)
        };
        ack.await?;
        Ok(n)
    }

    /// The slots of the keys in the index with a live token `filter` matches.
    fn matching_slots(&self, filter: &TokenFilter, now: u64) -> Vec<Arc<KeySlot>> {
        if let Some(id) = &filter.token_id {
            let access = self.index.access(id).map(|r| Arc::clone(&r.key));
            let refresh = self.index.refresh(id).map(|r| Arc::clone(&r.key));
            return access
                .into_iter()
                .chain(refresh)
                .filter(|s| filter.matches_key(s.key()))
                .collect();
        }
        self.index
            .slots()
            .into_iter()
            .filter(|slot| {
                filter.matches_key(slot.key()) && !matching_effects(&slot.lock(), filter, now, false).is_empty()
            })
            .collect()
    }

    /// The slots of the keys of `rows`, each once.
    fn slots_of_rows(&self, rows: &Snapshot) -> Vec<Arc<KeySlot>> {
        let mut seen = HashSet::new();
        let keys = rows
            .access
            .iter()
            .map(StoredKey::from)
            .chain(rows.refresh.iter().map(StoredKey::from));
        keys.filter(|k| seen.insert((k.client_id, k.subject, k.scope, Arc::clone(k.audience), k.jkt)))
            .filter_map(|k| self.index().stored_key_slot(k))
            .collect()
    }

    /// The live tokens of the index that `filter` matches.
    fn listed_in_index(&self, filter: &TokenFilter, now: u64) -> Vec<TokenInfo> {
        let mut out = Vec::new();
        for slot in self.matching_slots(filter, now) {
            let st = slot.lock();
            let key = slot.key();
            for a in st.active.iter() {
                if a.is_valid_at(now) && filter.matches_token(&a.id, a.issued_at_ms) {
                    out.push(info(key, a.id, false, a.format, a.issued_at_ms, a.expires_at_ms));
                }
            }
            for r in st.refresh.iter() {
                let live = r.state.get() == TokenState::Active && r.expires_at_ms > now;
                if live && filter.matches_token(&r.id, r.issued_at_ms) {
                    out.push(info(
                        key,
                        r.id,
                        true,
                        TokenFormat::Opaque,
                        r.issued_at_ms,
                        r.expires_at_ms,
                    ));
                }
            }
        }
        out
    }
}

fn info(key: &TokenKey, id: TokenId, refresh: bool, format: TokenFormat, iat: u64, exp: u64) -> TokenInfo {
    TokenInfo {
        id,
        refresh,
        format,
        client_id: Arc::clone(&key.client_id),
        subject: key.subject.clone(),
        scope: Arc::clone(key.scope.shared()),
        audience: Arc::clone(key.audience().shared()),
        issued_at_ms: iat,
        expires_at_ms: exp,
    }
}

/// The rows a shared store found, as tokens.
fn from_rows(rows: Snapshot) -> Vec<TokenInfo> {
    let access = rows.access.into_iter().map(|r| TokenInfo {
        id: r.id,
        refresh: false,
        format: r.format,
        client_id: r.client_id,
        subject: r.subject,
        scope: r.scope,
        audience: r.audience,
        issued_at_ms: r.issued_at_ms,
        expires_at_ms: r.expires_at_ms,
    });
    let refresh = rows.refresh.into_iter().map(|r| TokenInfo {
        id: r.id,
        refresh: true,
        format: TokenFormat::Opaque,
        client_id: r.client_id,
        subject: r.subject,
        scope: r.scope,
        audience: r.audience,
        issued_at_ms: r.issued_at_ms,
        expires_at_ms: r.expires_at_ms,
    });
    access.chain(refresh).collect()
}

/// Revocations for the live tokens of a key's state that `filter` matches, each with its
/// refresh family (an access token's refresh token and its successors; a refresh token's
/// access token), each token once. With a `shared` store (its turn's rows reconciled: every
/// committed token is marked durable) a token not yet committed is left to the request issuing
/// it: nobody holds it yet, and a revocation written before its row would find nothing to
/// change. A store of one node applies submissions in order, so there every token is taken.
fn matching_effects(st: &KeyState, filter: &TokenFilter, now: u64, shared: bool) -> Vec<Effect> {
    let mut effects = Vec::new();
    let mut families = HashSet::new();
    let committed = |a: &AccessRecord| !shared || a.is_durable();
    let issuing = |access_id: &TokenId| st.active.iter().any(|a| a.id == *access_id && !committed(a));
    for a in st.active.iter() {
        if !(committed(a) && a.is_valid_at(now) && filter.matches_token(&a.id, a.issued_at_ms)) {
            continue;
        }
        match a.family() {
            Some(family) => {
                if families.insert(*family) {
                    effects.extend(family_effects(st, family));
                }
            }
            None => effects.push(Effect::Access(Arc::clone(a), TokenState::Revoked)),
        }
    }
    for r in st.refresh.iter() {
        let live = r.state.get() == TokenState::Active && r.expires_at_ms > now;
        if live && !issuing(&r.access_id) && filter.matches_token(&r.id, r.issued_at_ms) && families.insert(r.family) {
            effects.extend(family_effects(st, &r.family));
        }
    }
    effects
}

#[cfg(test)]
#[path = "bulk_tests.rs"]
mod tests;
