//! The rest of a token's life: refresh with rotation and reuse detection, revocation (RFC 7009),
//! restoring the index from the store at start, and sweeping expired tokens.

use std::sync::Arc;

use super::index::KeyState;
use super::issue::Issuing;
use super::opaque::OpaqueKind;
use super::record::{now_ms, AccessRecord, FamilyId, RefreshRecord, TokenState};
use super::rows::{access_record, refresh_record};
use super::service::{Effect, IssueParams, Issued, ServiceError, TokenService};
use crate::domain::grant_type::GrantType;
use crate::domain::key::{ScopeSet, TokenKey};
use crate::store::shared::Turn;
use crate::store::{Ack, Snapshot, StoreError, StoreOp};

/// What a revocation request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// An access token, and the refresh token issued with it.
    Access,
    /// A refresh token and its whole family.
    RefreshFamily,
    /// Unknown, already revoked or expired: nothing to do (still a 200).
    Nothing,
}

/// Counts from one sweep.
#[derive(Debug, Default, Clone, Copy)]
pub struct SweepReport {
    pub expired_access: usize,
    pub expired_refresh: usize,
    pub purged_rows: u64,
}

impl TokenService {
    /// The `refresh_token` grant: rotates the refresh token, retires the access token it came
    /// with, and issues a new one for the same key. A spent refresh token presented again
    /// revokes its whole family (OAuth 2.0 Security BCP, refresh token reuse detection).
    /// `p.scope` and `p.subject` are ignored: they come from the refresh token; `p.audience`, when
    /// not empty, must be the refresh token's. `still_allowed`
    /// tells whether the configuration still allows a token of the refresh token's key (its user
    /// may have been removed, or its client's scopes narrowed, since it was issued); when it does
    /// not, nothing is spent and its error is the answer.
    pub async fn refresh(
        &self,
        refresh_text: &str,
        requested_scope: Option<&ScopeSet>,
        p: IssueParams<'_>,
        still_allowed: &(dyn Fn(&TokenKey) -> Result<(), ServiceError> + Sync),
    ) -> Result<Issued, ServiceError> {
        let invalid = ServiceError::InvalidGrant("the refresh token is invalid, expired or revoked");
        let rid = self.codec().parse(OpaqueKind::Refresh, refresh_text).ok_or(invalid)?;
        let rec = match self.index().refresh(&rid) {
            Some(rec) => rec,
            None => self.look_up_refresh(rid).await?.ok_or(ServiceError::InvalidGrant(
                "the refresh token is invalid, expired or revoked",
            ))?,
        };
        if *rec.key.client_id != *p.client_id {
            return Err(ServiceError::InvalidGrant(
                "the refresh token was issued to another client",
            ));
        }
        let slot = Arc::clone(&rec.key);
        let params = IssueParams {
            grant: GrantType::RefreshToken,
            ..p
        };
        let presigned = self.presign(&rec.key, &params).await?;
        let turn = self.turn(&slot, true).await?;
        // `Err(ack)`: a spent refresh token came back; its family's revocation is being stored.
        let pending: Result<_, Ack> = 'locked: {
            let mut st = slot.lock();
            if let Some(live) = &turn.live {
                self.reconcile(&slot, &mut st, live);
            }
            match rec.state.get() {
                TokenState::Inactive => {
                    let effects = family_effects(&st, &rec.family);
                    break 'locked Err(self.revoke_locked(&mut st, effects, turn));
                }
                TokenState::Active if rec.expires_at_ms > now_ms() => {}
                _ => {
                    return Err(ServiceError::InvalidGrant(
                        "the refresh token is invalid, expired or revoked",
                    ))
                }
            }
            still_allowed(&rec.key)?;
            if requested_scope.is_some_and(|scope| scope != &rec.key.scope) {
                return Err(ServiceError::InvalidScope(
                    "a refresh must ask for the scope originally granted, or none",
                ));
            }
            if !params.audience.is_empty() && params.audience != rec.key.audience {
                return Err(ServiceError::InvalidTarget(
                    "a refresh must ask for the resources originally granted, or none",
                ));
            }
            // A refresh keeps its spent token (to detect reuse) beside the new pair: it adds one.
            // Refused before anything is spent, so the client can retry with the same token.
            self.check_room(&params)?;
            // Spend the old pair first so the policy decides without it. Should the store fail,
            // the pair stays spent (fail closed): the client signs in again.
            let mut spent = vec![Effect::Refresh(Arc::clone(&rec), TokenState::Inactive)];
            if let Some(old) = st.active.iter().find(|a| a.id == rec.access_id) {
                spent.push(Effect::Access(Arc::clone(old), TokenState::Inactive));
            }
            let prior_ops = spent.iter().map(Effect::op).collect();
            for e in &spent {
                self.apply(&mut st, e);
            }
            let job = Issuing {
                params: &params,
                mode: params.policy.mode(GrantType::RefreshToken),
                reuse_allowed: false,
                family: Some(rec.family),
                prior_ops,
                presigned,
            };
            Ok(self.issue_locked(&mut st, &slot, job, turn))
        };
        match pending {
            Ok(pending) => self.finish(pending?).await,
            Err(ack) => {
                ack.await?;
                log::warn!(
                    "refresh token reuse by client {:?}: its token family is revoked",
                    params.client_id
                );
                Err(ServiceError::RefreshReuse)
            }
        }
    }

    /// RFC 7009 revocation by the owning client. Unknown or dead tokens are not an error.
    pub async fn revoke(&self, client_id: &str, text: &str) -> Result<Revoked, ServiceError> {
        if let Some(rec) = self.access_to_revoke(text).await? {
            if *rec.key.client_id != *client_id {
                return Err(ServiceError::NotOwner);
            }
            let turn = self.turn(&rec.key, true).await?;
            let ack = {
                let mut st = rec.key.lock();
                if let Some(live) = &turn.live {
                    self.reconcile(&rec.key, &mut st, live);
                }
                if rec.state.get() != TokenState::Active {
                    return Ok(Revoked::Nothing);
                }
                let mut effects = vec![Effect::Access(Arc::clone(&rec), TokenState::Revoked)];
                if let Some(r) = rec.refresh_id().and_then(|rid| st.refresh.iter().find(|r| r.id == rid)) {
                    effects.push(Effect::Refresh(Arc::clone(r), TokenState::Revoked));
                }
                self.revoke_locked(&mut st, effects, turn)
            };
            ack.await?;
            return Ok(Revoked::Access);
        }
        if let Some(rec) = self.refresh_to_revoke(text).await? {
            if *rec.key.client_id != *client_id {
                return Err(ServiceError::NotOwner);
            }
            let turn = self.turn(&rec.key, true).await?;
            let ack = {
                let mut st = rec.key.lock();
                if let Some(live) = &turn.live {
                    self.reconcile(&rec.key, &mut st, live);
                }
                let effects = family_effects(&st, &rec.family);
                if effects.is_empty() {
                    return Ok(Revoked::Nothing);
                }
                self.revoke_locked(&mut st, effects, turn)
            };
            ack.await?;
            return Ok(Revoked::RefreshFamily);
        }
        Ok(Revoked::Nothing)
    }

    /// The live access token `text` names: in the index, or found in a shared store.
    async fn access_to_revoke(&self, text: &str) -> Result<Option<Arc<AccessRecord>>, ServiceError> {
        let Some(id) = self.access_id(text) else {
            return Ok(None);
        };
        match self.index().access(&id) {
            Some(rec) => Ok(Some(rec)),
            None => Ok(self.look_up_access(text, id, now_ms()).await?),
        }
    }

    /// The refresh token `text` names: in the index, or found in a shared store.
    async fn refresh_to_revoke(&self, text: &str) -> Result<Option<Arc<RefreshRecord>>, ServiceError> {
        let Some(id) = self.codec().parse(OpaqueKind::Refresh, text) else {
            return Ok(None);
        };
        match self.index().refresh(&id) {
            Some(rec) => Ok(Some(rec)),
            None => Ok(self.look_up_refresh(id).await?),
        }
    }

    /// Applies revocations in memory at once and submits them to the store; the caller awaits
    /// the ack after releasing the key's lock. A store failure still leaves the tokens rejected
    /// at the gateway (fail closed).
    fn revoke_locked(&self, st: &mut KeyState, effects: Vec<Effect>, turn: Turn) -> Ack {
        let ops: Vec<StoreOp> = effects.iter().map(Effect::op).collect();
        for e in &effects {
            self.apply(st, e);
        }
        turn.submit(&**self.store(), ops)
    }

    /// Fills the index from the store (at start). Returns (access, refresh) counts.
    pub async fn restore(&self) -> Result<(usize, usize), StoreError> {
        let index = self.index();
        let (mut na, mut nr) = (0, 0);
        let mut index_chunk = |Snapshot { access, refresh }: Snapshot| {
            for row in refresh {
                let Some(key) = index.stored_key_slot(&row.client_id, &row.subject, &row.scope, &row.audience) else {
                    continue;
                };
                let rec = refresh_record(&row, Arc::clone(&key));
                if row.state == TokenState::Active {
                    key.lock().refresh.push(Arc::clone(&rec));
                }
                self.index().insert_refresh(rec);
                nr += 1;
            }
            for row in access {
                let Some(key) = index.stored_key_slot(&row.client_id, &row.subject, &row.scope, &row.audience) else {
                    continue;
                };
                let rec = access_record(&row, Arc::clone(&key));
                key.lock().active.push(Arc::clone(&rec));
                self.index().insert_access(rec);
                na += 1;
            }
        };
        self.store().load(now_ms(), &mut index_chunk).await?;
        Ok((na, nr))
    }

    /// Drops expired tokens from the index and dead rows from the store.
    pub async fn sweep(&self) -> Result<SweepReport, StoreError> {
        let now = now_ms();
        let mut report = SweepReport::default();
        for r in self.index().refresh_records() {
            if r.expires_at_ms <= now {
                self.index().remove_refresh(&r.id);
                report.expired_refresh += 1;
            }
        }
        for slot in self.index().slots() {
            slot.sweep(now, |expired| {
                report.expired_access += expired.len();
                // After the key's lock is released: the map and the allocator work here.
                for a in expired {
                    self.index().remove_access(&a.id);
                }
            });
            self.index().drop_if_idle(slot);
        }
        self.index().prune_names();
        report.purged_rows = self.store().purge(now).await?;
        Ok(report)
    }
}

/// Revocations for every live token of a refresh family.
fn family_effects(st: &KeyState, family: &FamilyId) -> Vec<Effect> {
    let mut effects: Vec<Effect> = st
        .active
        .iter()
        .filter(|a| a.family() == Some(family))
        .map(|a| Effect::Access(Arc::clone(a), TokenState::Revoked))
        .collect();
    effects.extend(
        st.refresh
            .iter()
            .filter(|r| &r.family == family)
            .map(|r| Effect::Refresh(Arc::clone(r), TokenState::Revoked)),
    );
    effects
}
