//! Issuing a token under the renewal policy, in named steps under the key's lock: decide, check
//! room, retire, mint, publish, persist (see [`TokenService::issue_locked`]).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::opaque::OpaqueKind;
use super::presign::Presigned;
use super::record::{now_ms, AccessRecord, AtomicState, KeySlot, KeyState, RefreshLink, RefreshRecord};
use super::rows::{access_row, refresh_row};
use super::service::{
    random_family, Effect, IssueParams, Issued, Outcome, Pending, RevokeCause, ServiceError, TokenService,
};
use crate::domain::ids::{FamilyId, TokenState};
use crate::domain::policy::{decide, ActiveToken, Decision, Mode, Retire};
use crate::store::shared::Turn;
use crate::store::StoreOp;

/// One issuance under a key's lock: the request, and what its caller decided beside it.
pub(super) struct Issuing<'a, 'p> {
    pub(super) params: &'a IssueParams<'p>,
    pub(super) mode: Mode,
    /// Whether the key's existing opaque token may be handed out again (not on a refresh).
    pub(super) reuse_allowed: bool,
    /// The refresh family the new refresh token continues (a refresh), or none (a new grant).
    pub(super) family: Option<FamilyId>,
    /// Store operations of changes the caller already applied in memory under the same lock.
    pub(super) prior_ops: Vec<StoreOp>,
    /// The JWT signed before the lock was taken; `None` for an opaque token.
    pub(super) presigned: Option<Presigned>,
}

/// A new token pair, not yet in the index.
struct Minted {
    access: Arc<AccessRecord>,
    access_token: String,
    refresh: Option<(Arc<RefreshRecord>, String)>,
}

/// The state changes that retire the tokens the decision named, and the causes of the
/// revocations among them (a revoked access token takes its refresh token with it).
fn retire_effects(st: &KeyState, retire: Vec<(usize, Retire)>) -> (Vec<Effect>, Vec<RevokeCause>) {
    let mut effects = Vec::new();
    let mut revoked = Vec::new();
    for (i, why) in retire {
        let rec = Arc::clone(&st.active[i]);
        let (state, cause) = match why {
            Retire::Expire => (TokenState::Expired, None),
            Retire::RevokeRenewal => (TokenState::Revoked, Some(RevokeCause::Renewal)),
            Retire::RevokeCap => (TokenState::Revoked, Some(RevokeCause::Cap)),
        };
        if let Some(cause) = cause {
            revoked.push(cause);
            if let Some(r) = rec.refresh_id().and_then(|rid| st.refresh.iter().find(|r| r.id == rid)) {
                effects.push(Effect::Refresh(Arc::clone(r), TokenState::Revoked));
            }
        }
        effects.push(Effect::Access(rec, state));
    }
    (effects, revoked)
}

/// Everything the store must apply for one issuance, in order: the caller's earlier changes,
/// the retirements, the new rows.
fn store_ops(prior: Vec<StoreOp>, effects: &[Effect], minted: &Minted) -> Vec<StoreOp> {
    let mut ops = prior;
    ops.extend(effects.iter().map(Effect::op));
    ops.push(StoreOp::InsertAccess(access_row(&minted.access)));
    if let Some((r, _)) = &minted.refresh {
        ops.push(StoreOp::InsertRefresh(refresh_row(r)));
    }
    ops
}

impl TokenService {
    /// Answers a `client_credentials` or `password` token request under the renewal policy.
    pub async fn issue(&self, p: IssueParams<'_>) -> Result<Issued, ServiceError> {
        let mode = p.policy.mode(p.grant);
        // Always a token more: no other token of the key changes the decision.
        let unbounded = mode == Mode::Multi && p.policy.max_active_tokens == 0;
        if unbounded {
            // Refused at the bound before a key or a signature is made.
            self.check_room(&p)?;
        }
        let slot = self
            .index
            .key_slot(self.index.key(p.client_id, p.subject, &p.scope, &p.audience));
        let presigned = self.presign(&slot, &p).await?;
        let turn = self.turn(&slot, !unbounded).await?;
        let pending = {
            let mut st = slot.lock();
            if let Some(live) = &turn.live {
                self.reconcile(&slot, &mut st, live);
            }
            let job = Issuing {
                params: &p,
                mode,
                reuse_allowed: true,
                family: None,
                prior_ops: Vec::new(),
                presigned,
            };
            self.issue_locked(&mut st, &slot, job, turn)
        };
        self.finish(pending?).await
    }

    /// Decides and publishes under the key's lock; never awaits. In named steps: decide (reuse a
    /// token or issue one, retiring which), check room, retire, mint, publish to the index, and
    /// persist (hand the changes to the store's `turn`; the caller awaits the ack after
    /// releasing the lock). A new
    /// token that replaces none is refused while the index or its client is full ([`Capacity`]);
    /// one that replaces another (single-mode renewal, a multi-mode cap) still goes through.
    pub(super) fn issue_locked(
        &self,
        st: &mut KeyState,
        slot: &Arc<KeySlot>,
        job: Issuing<'_, '_>,
        turn: Turn,
    ) -> Result<Pending, ServiceError> {
        let now = now_ms();
        let retire = match self.decide(st, &job, now) {
            Decision::Reuse { index, expires_in_secs } => {
                return Ok(self.reuse(st, slot, index, expires_in_secs, now, turn));
            }
            Decision::Issue { retire } => retire,
        };
        if retire.is_empty() && job.prior_ops.is_empty() {
            self.check_room(job.params)?;
        }
        let (effects, revoked) = retire_effects(st, retire);
        let minted = self.mint(slot, job.params, job.family, job.presigned, now);
        let ops = store_ops(job.prior_ops, &effects, &minted);
        let (access, access_token, refresh_token) = self.publish(st, effects, minted);
        let ack = turn.submit(&*self.store, ops);
        let issued = Issued {
            access_token,
            expires_in: job.params.access_ttl_secs,
            scope: slot.scope.to_string(),
            refresh_token,
            outcome: Outcome::New(job.mode),
            revoked,
        };
        Ok(Pending::Durable {
            issued,
            ack,
            published: Some(access),
            slot: Arc::clone(slot),
        })
    }

    /// The renewal decision for this key's active tokens ([`decide`]).
    fn decide(&self, st: &KeyState, job: &Issuing<'_, '_>, now: u64) -> Decision {
        let p = job.params;
        if job.mode == Mode::Multi && p.policy.max_active_tokens == 0 {
            // Same answer `decide` gives, without an O(active) walk per request: expired tokens
            // need no retiring here, the sweeper drops them.
            return Decision::Issue { retire: Vec::new() };
        }
        let views: Vec<ActiveToken> = st
            .active
            .iter()
            .map(|r| ActiveToken {
                issued_at_ms: r.issued_at_ms,
                expires_at_ms: r.expires_at_ms,
            })
            .collect();
        decide(
            p.format,
            job.mode,
            job.reuse_allowed,
            p.policy.max_active_tokens,
            &views,
            now,
        )
    }

    /// Hands out the key's existing opaque token `index` again (with its refresh token, if it is
    /// still usable); waits for its commit first when its issuing request has not had it yet.
    fn reuse(
        &self,
        st: &KeyState,
        slot: &Arc<KeySlot>,
        index: usize,
        expires_in_secs: u64,
        now: u64,
        turn: Turn,
    ) -> Pending {
        let rec = &st.active[index];
        let refresh_token = rec
            .refresh_id()
            .and_then(|rid| self.index.refresh(&rid))
            .filter(|r| r.state.get() == TokenState::Active && r.expires_at_ms > now)
            .map(|r| self.codec.text(OpaqueKind::Refresh, &r.id));
        let issued = Issued {
            access_token: self.codec.text(OpaqueKind::Access, &rec.id),
            expires_in: expires_in_secs,
            scope: rec.key.scope.to_string(),
            refresh_token,
            outcome: Outcome::Reused,
            revoked: Vec::new(),
        };
        if rec.is_durable() {
            return Pending::Ready(issued);
        }
        // Issued by a request still waiting for its commit: wait for it too.
        Pending::Durable {
            issued,
            ack: turn.submit(&*self.store, Vec::new()),
            published: None,
            slot: Arc::clone(slot),
        }
    }

    /// The new access token's record and text (signed before the lock for a JWT, minted here
    /// for an opaque one), with its refresh token when the grant gives one.
    fn mint(
        &self,
        slot: &Arc<KeySlot>,
        p: &IssueParams<'_>,
        family: Option<FamilyId>,
        presigned: Option<Presigned>,
        now: u64,
    ) -> Minted {
        let (id, access_token, issued_at_ms) = match presigned {
            Some(Presigned { id, text, issued_at_ms }) => (id, text, issued_at_ms),
            None => {
                let (id, text) = self.codec.mint(OpaqueKind::Access);
                (id, text, now / 1000 * 1000)
            }
        };
        let refresh = p.refresh_ttl_secs.map(|ttl| {
            let (rid, rtext) = self.codec.mint(OpaqueKind::Refresh);
            let rec = Arc::new(RefreshRecord {
                id: rid,
                key: Arc::clone(slot),
                family: family.unwrap_or_else(random_family),
                issued_at_ms,
                expires_at_ms: issued_at_ms + ttl * 1000,
                access_id: id,
                state: AtomicState::new(TokenState::Active),
            });
            (rec, rtext)
        });
        let access = Arc::new(AccessRecord {
            id,
            key: Arc::clone(slot),
            format: p.format,
            grant: p.grant,
            issued_at_ms,
            expires_at_ms: issued_at_ms + p.access_ttl_secs * 1000,
            refresh: refresh.as_ref().map(|(r, _)| {
                Box::new(RefreshLink {
                    id: r.id,
                    family: r.family,
                })
            }),
            state: AtomicState::new(TokenState::Active),
            durable: AtomicBool::new(false),
        });
        Minted {
            access,
            access_token,
            refresh,
        }
    }

    /// Applies the retirements and puts the new tokens in the index and the key's state; returns
    /// the new access record and the texts for the answer.
    fn publish(
        &self,
        st: &mut KeyState,
        effects: Vec<Effect>,
        minted: Minted,
    ) -> (Arc<AccessRecord>, String, Option<String>) {
        for e in &effects {
            self.apply(st, e);
        }
        let Minted {
            access,
            access_token,
            refresh,
        } = minted;
        self.index.insert_access(Arc::clone(&access));
        st.active.push(Arc::clone(&access));
        let refresh_token = refresh.map(|(r, text)| {
            self.index.insert_refresh(Arc::clone(&r));
            st.refresh.push(r);
            text
        });
        (access, access_token, refresh_token)
    }
}
