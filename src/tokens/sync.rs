//! Keeping a node's index in step with a store other nodes share (cluster mode). Four ways:
//! a decision takes the store's turn for its key and first brings the key's state in line with
//! the database's live rows ([`TokenService::reconcile`]); the feed's changes are applied as
//! they come ([`TokenService::apply_changes`]); a token this node has not seen is looked up,
//! but only when it proves it was minted by the cluster (an opaque token's HMAC tag, a JWT's
//! signature), so a flood of forged tokens costs no query; and bearer checks stop trusting an
//! index whose feed has been cut off too long ([`TokenService::index_is_fresh`]).
//! With a store of one node none of this does anything: turns carry no rows, there is no feed.

use std::collections::HashSet;
use std::sync::Arc;

use super::dead_ids::RACE_WINDOW_MS;
use super::index::{KeySlot, KeyState};
use super::opaque::{OpaqueCodec, OpaqueKind};
use super::record::{now_ms, AccessRecord, RefreshRecord, TokenId, TokenState};
use super::rows::{access_record, refresh_record};
use super::service::{Effect, ServiceError, TokenService};
use crate::store::shared::{Change, KeyName, KeyRows, TokenKind, Turn};
use crate::store::{AccessRow, RefreshRow, StoreError};

/// Longest a dead token found by a look-up is remembered (its expiry, if sooner).
const DEAD_FOUND_MS: u64 = 3_600_000;

impl TokenService {
    /// The store's turn to decide for `slot`: with its truth from the database when
    /// `needs_truth` (a shared store), else only a place in the next commit.
    pub(super) async fn turn(&self, slot: &KeySlot, needs_truth: bool) -> Result<Turn, ServiceError> {
        let name = needs_truth.then(|| KeyName {
            client_id: Arc::clone(&slot.client_id),
            subject: slot.subject.clone(),
            scope: Arc::clone(slot.scope.shared()),
            audience: Arc::clone(slot.audience.shared()),
        });
        Ok(self.store.turn(name.as_ref()).await?)
    }

    /// Brings the key's state in line with `live`, the database's live rows of the key read
    /// under its lock: tokens that ended at another node leave the index, tokens other nodes
    /// issued join it, refresh tokens spent elsewhere are marked spent. Tokens this node is
    /// issuing in the same transaction (not yet durable) stay.
    pub(super) fn reconcile(&self, slot: &Arc<KeySlot>, st: &mut KeyState, live: &KeyRows) {
        let live_access: HashSet<TokenId> = live.access.iter().map(|r| r.id).collect();
        let ended: Vec<Arc<AccessRecord>> = st
            .active
            .iter()
            .filter(|a| a.is_durable() && !live_access.contains(&a.id))
            .cloned()
            .collect();
        for a in ended {
            self.apply(st, &Effect::Access(a, TokenState::Revoked));
        }
        let mut joined = false;
        for row in &live.access {
            if !st.active.iter().any(|a| a.id == row.id) {
                let rec = self
                    .index
                    .access(&row.id)
                    .unwrap_or_else(|| access_record(row, Arc::clone(slot)));
                self.index.insert_access(Arc::clone(&rec));
                st.active.push(rec);
                joined = true;
            }
        }
        if joined {
            // The renewal policy reads them oldest first.
            st.active.sort_by_key(|a| a.issued_at_ms);
        }
        self.reconcile_refresh(slot, st, &live.refresh);
    }

    fn reconcile_refresh(&self, slot: &Arc<KeySlot>, st: &mut KeyState, live: &[RefreshRow]) {
        let live_ids: HashSet<TokenId> = live.iter().map(|r| r.id).collect();
        let issuing = |r: &RefreshRecord| st.active.iter().any(|a| a.id == r.access_id && !a.is_durable());
        let ended: Vec<Arc<RefreshRecord>> = st
            .refresh
            .iter()
            .filter(|r| !live_ids.contains(&r.id) && !issuing(r))
            .cloned()
            .collect();
        for r in ended {
            self.apply(st, &Effect::Refresh(r, TokenState::Revoked));
        }
        for row in live {
            match self.index.refresh(&row.id) {
                Some(rec) => {
                    if row.state == TokenState::Inactive && rec.state.get() == TokenState::Active {
                        self.apply(st, &Effect::Refresh(rec, TokenState::Inactive));
                    }
                }
                None => {
                    let rec = refresh_record(row, Arc::clone(slot));
                    self.index.insert_refresh(Arc::clone(&rec));
                    if row.state == TokenState::Active {
                        st.refresh.push(rec);
                    }
                }
            }
        }
    }

    /// Applies changes the feed brought. A token's state only moves forward (active, then spent,
    /// then revoked or expired), so a change applied twice, or late, does nothing.
    pub fn apply_changes(&self, changes: &[Change]) {
        let now = now_ms();
        for change in changes {
            match change.kind {
                TokenKind::Access => {
                    self.dead.note(change.id, now + RACE_WINDOW_MS, now);
                    if let Some(rec) = self.index.access(&change.id) {
                        let mut st = rec.key.lock();
                        if rec.state.get() == TokenState::Active {
                            self.apply(&mut st, &Effect::Access(Arc::clone(&rec), change.state));
                        }
                    }
                }
                TokenKind::Refresh => {
                    if let Some(rec) = self.index.refresh(&change.id) {
                        let mut st = rec.key.lock();
                        let forward = match rec.state.get() {
                            TokenState::Active => true,
                            TokenState::Inactive => change.state != TokenState::Inactive,
                            _ => false,
                        };
                        if forward {
                            self.apply(&mut st, &Effect::Refresh(Arc::clone(&rec), change.state));
                        }
                    }
                }
            }
        }
    }

    /// Whether bearer checks may trust the index at `now_ms`: always with a store of one node;
    /// in a cluster, while the feed caught up within `stale_after_ms` (0: always).
    pub fn index_is_fresh(&self, now_ms: u64, stale_after_ms: u64) -> bool {
        match &self.feed {
            None => true,
            Some(feed) => stale_after_ms == 0 || now_ms.saturating_sub(feed.caught_up_at_ms()) <= stale_after_ms,
        }
    }

    /// An access token this node has not seen, looked up in a shared store when `text` proves
    /// it was minted by the cluster; `None` when it is not a live token. A look-up that races
    /// the token's revocation cannot bring it back ([`super::dead_ids`]).
    pub async fn look_up_access(
        &self,
        text: &str,
        id: TokenId,
        now: u64,
    ) -> Result<Option<Arc<AccessRecord>>, StoreError> {
        if self.feed.is_none() || self.dead.contains(&id, now) || !self.minted_by_cluster(text, &id) {
            return Ok(None);
        }
        let Some(row) = self.store.find_access(&id).await?.filter(|r| is_live(r, now)) else {
            self.dead.note(id, now + DEAD_FOUND_MS, now);
            return Ok(None);
        };
        let Some(slot) = self
            .index
            .stored_key_slot(&row.client_id, &row.subject, &row.scope, &row.audience)
        else {
            return Ok(None);
        };
        let rec = {
            let mut st = slot.lock();
            match self.index.access(&id) {
                Some(rec) => rec,
                None => {
                    let rec = access_record(&row, Arc::clone(&slot));
                    st.active.push(Arc::clone(&rec));
                    self.index.insert_access(Arc::clone(&rec));
                    rec
                }
            }
        };
        if self.dead.contains(&id, now_ms()) {
            let mut st = slot.lock();
            self.apply(&mut st, &Effect::Access(rec, TokenState::Revoked));
            return Ok(None);
        }
        Ok(Some(rec))
    }

    /// A refresh token (its HMAC already checked) this node has not seen, from a shared store,
    /// in whatever state the store has it; the decision's turn brings its state up to date.
    pub async fn look_up_refresh(&self, id: TokenId) -> Result<Option<Arc<RefreshRecord>>, StoreError> {
        if self.feed.is_none() {
            return Ok(None);
        }
        let Some(row) = self.store.find_refresh(&id).await? else {
            return Ok(None);
        };
        let Some(slot) = self
            .index
            .stored_key_slot(&row.client_id, &row.subject, &row.scope, &row.audience)
        else {
            return Ok(None);
        };
        let mut st = slot.lock();
        if let Some(rec) = self.index.refresh(&id) {
            return Ok(Some(rec));
        }
        let rec = refresh_record(&row, Arc::clone(&slot));
        self.index.insert_refresh(Arc::clone(&rec));
        if row.state == TokenState::Active {
            st.refresh.push(Arc::clone(&rec));
        }
        Ok(Some(rec))
    }

    /// Whether `text`, whose id is `id`, was minted with the cluster's keys: an opaque token's
    /// HMAC tag, or a JWT's signature.
    fn minted_by_cluster(&self, text: &str, id: &TokenId) -> bool {
        if OpaqueCodec::has_prefix(OpaqueKind::Access, text) {
            return self.codec.parse(OpaqueKind::Access, text).as_ref() == Some(id);
        }
        TokenId::of_jwt(text) == *id
            && (self.signer().verifies(text) || self.previous.load().iter().any(|key| key.verifies(text)))
    }
}

fn is_live(row: &AccessRow, now: u64) -> bool {
    row.state == TokenState::Active && row.expires_at_ms > now
}
