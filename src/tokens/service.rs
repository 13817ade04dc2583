//! The token engine: issue, refresh and revoke under the key's mutex, durable before answered.
//!
//! Protocol for every change: take the key's mutex, decide (see [`crate::domain::policy`]),
//! publish the new records and state changes to the index, submit the store operations (the
//! store applies submissions in order), release the mutex, then wait for the durable ack before
//! answering. The mutex is held for microseconds, never across a signature or an fsync, so
//! concurrent requests for one key are group-committed together; a request never fails because
//! of another request for the same key. A token is visible in the index a moment before it is
//! durable, which is harmless: nobody holds its text until the answer, sent after the ack.
//! Should the store fail, the new token is withdrawn and the request answers 500; revocations
//! stay in force in memory (fail closed).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rand::RngCore;
use tokio::sync::Semaphore;

use super::capacity::Capacity;
use super::index::{KeySlot, KeyState, TokenIndex};
use super::jwt::JwtSigner;
use super::opaque::{OpaqueCodec, OpaqueKind};
use super::presign::{presign, Presigned};
use super::record::{now_ms, AccessRecord, AtomicState, FamilyId, RefreshLink, RefreshRecord, TokenId, TokenState};
use super::rows::{access_row, refresh_row};
use crate::domain::policy::{decide, ActiveToken, Decision, Mode, Retire};
use crate::store::{Ack, StoreOp, TokenStore};

pub use super::request::{IssueParams, Issued, Outcome, RevokeCause, ServiceError};

/// A state change to a live token.
pub(super) enum Effect {
    Access(Arc<AccessRecord>, TokenState),
    Refresh(Arc<RefreshRecord>, TokenState),
}

impl Effect {
    pub(super) fn op(&self) -> StoreOp {
        match self {
            Effect::Access(r, s) => StoreOp::SetAccessState {
                id: r.id,
                state: *s,
                expires_at_ms: r.expires_at_ms,
            },
            Effect::Refresh(r, s) => StoreOp::SetRefreshState {
                id: r.id,
                state: *s,
                expires_at_ms: r.expires_at_ms,
            },
        }
    }
}

/// A decided answer still waiting for the store.
pub(super) enum Pending {
    /// The answer can go out now.
    Ready(Issued),
    /// Wait for the store's ack first; on failure withdraw `published` from `slot`.
    Durable {
        issued: Issued,
        ack: Ack,
        published: Option<Arc<AccessRecord>>,
        slot: Arc<KeySlot>,
    },
}

/// The engine. Shared as `Arc<TokenService>` by the endpoints and the sweeper.
pub struct TokenService {
    index: Arc<TokenIndex>,
    store: Arc<dyn TokenStore>,
    codec: OpaqueCodec,
    signer: Arc<JwtSigner>,
    /// Permits for RSA signatures running at once ([`presign`], [`signing_permits`]).
    signing: Arc<Semaphore>,
    capacity: Capacity,
}

/// RSA signatures that may run at once: two per core. One per core left a core idle while a
/// finished signature handed its permit to the next request (RS256 issuance, wrk -c32 on two
/// cores: 5.2k against 6.3k req/s without a bound); two per core did 6.3-6.6k, 16 in all 6.2k.
pub fn signing_permits() -> usize {
    2 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn random_family() -> FamilyId {
    let mut f = [0u8; 16];
    rand::rng().fill_bytes(&mut f);
    f
}

impl TokenService {
    pub fn new(index: Arc<TokenIndex>, store: Arc<dyn TokenStore>, codec: OpaqueCodec, signer: JwtSigner) -> Self {
        TokenService {
            index,
            store,
            codec,
            signer: Arc::new(signer),
            signing: Arc::new(Semaphore::new(signing_permits())),
            capacity: Capacity::default(),
        }
    }

    pub fn index(&self) -> &Arc<TokenIndex> {
        &self.index
    }

    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    pub fn codec(&self) -> &OpaqueCodec {
        &self.codec
    }

    pub fn signer(&self) -> &JwtSigner {
        &self.signer
    }

    /// RSA signature permits free now (all of them, [`signing_permits`], when none runs).
    pub fn free_signing_permits(&self) -> usize {
        self.signing.available_permits()
    }

    /// The index id of an access token text, if it can be one (opaque tags are checked here).
    pub fn access_id(&self, text: &str) -> Option<TokenId> {
        if OpaqueCodec::has_prefix(OpaqueKind::Access, text) {
            self.codec.parse(OpaqueKind::Access, text)
        } else if memchr::memchr_iter(b'.', text.as_bytes()).take(3).count() == 2 {
            Some(TokenId::of_jwt(text))
        } else {
            None
        }
    }

    /// Answers a `client_credentials` or `password` token request under the renewal policy.
    pub async fn issue(&self, p: IssueParams<'_>) -> Result<Issued, ServiceError> {
        if p.policy.mode(p.grant) == Mode::Multi && p.policy.max_active_tokens == 0 {
            // Always a token more: refused at the bound before a key or a signature is made.
            self.check_room(&p)?;
        }
        let slot = self.index.key_slot(self.index.key(p.client_id, p.subject, &p.scope));
        let presigned = self.presign(&slot, &p).await?;
        let pending = {
            let mut st = slot.lock();
            let mode = p.policy.mode(p.grant);
            self.issue_locked(&mut st, &slot, &p, mode, true, None, Vec::new(), presigned)
        };
        self.finish(pending?).await
    }

    /// `Err(ClientFull)` or `Err(Full)` while the client or the index holds as many tokens as
    /// `p.limits` allow ([`Capacity::check`]).
    pub(super) fn check_room(&self, p: &IssueParams<'_>) -> Result<(), ServiceError> {
        self.capacity.check(&self.index, p.limits, p.client_id)
    }

    /// Signs the JWT of a request outside any lock ([`presign`]); `None` for opaque clients.
    pub(super) async fn presign(
        &self,
        key: &Arc<KeySlot>,
        p: &IssueParams<'_>,
    ) -> Result<Option<Presigned>, ServiceError> {
        presign(&self.signer, &self.signing, key, p).await
    }

    /// Decides and publishes under the key's lock; never awaits. `prior_ops` are the store
    /// operations of changes the caller already applied in memory under the same lock. A new
    /// token that replaces none is refused while the index or its client is full
    /// ([`Capacity`]); one that replaces another (single-mode renewal, a multi-mode cap) still
    /// goes through.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn issue_locked(
        &self,
        st: &mut KeyState,
        slot: &Arc<KeySlot>,
        p: &IssueParams<'_>,
        mode: Mode,
        reuse_allowed: bool,
        family: Option<FamilyId>,
        prior_ops: Vec<StoreOp>,
        presigned: Option<Presigned>,
    ) -> Result<Pending, ServiceError> {
        let mut effects = Vec::new();
        let now = now_ms();
        let decision = if mode == Mode::Multi && p.policy.max_active_tokens == 0 {
            // Same answer `decide` gives, without an O(active) walk per request: expired tokens
            // need no retiring here, the sweeper drops them.
            Decision::Issue { retire: Vec::new() }
        } else {
            let views: Vec<ActiveToken> = st
                .active
                .iter()
                .map(|r| ActiveToken {
                    issued_at_ms: r.issued_at_ms,
                    expires_at_ms: r.expires_at_ms,
                })
                .collect();
            decide(p.format, mode, reuse_allowed, p.policy.max_active_tokens, &views, now)
        };
        let retire = match decision {
            Decision::Reuse { index, expires_in_secs } => {
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
                    return Ok(Pending::Ready(issued));
                }
                // Issued by a request still waiting for its commit: wait for it too.
                let ack = self.store.submit(Vec::new());
                return Ok(Pending::Durable {
                    issued,
                    ack,
                    published: None,
                    slot: Arc::clone(slot),
                });
            }
            Decision::Issue { retire } => retire,
        };
        if retire.is_empty() && prior_ops.is_empty() {
            self.check_room(p)?;
        }
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
                // A revoked access token takes its refresh token with it.
                if let Some(r) = rec.refresh_id().and_then(|rid| st.refresh.iter().find(|r| r.id == rid)) {
                    effects.push(Effect::Refresh(Arc::clone(r), TokenState::Revoked));
                }
            }
            effects.push(Effect::Access(rec, state));
        }

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

        let mut ops = prior_ops;
        ops.extend(effects.iter().map(Effect::op));
        ops.push(StoreOp::InsertAccess(access_row(&access)));
        if let Some((r, _)) = &refresh {
            ops.push(StoreOp::InsertRefresh(refresh_row(r)));
        }
        for e in &effects {
            self.apply(st, e);
        }
        self.index.insert_access(Arc::clone(&access));
        st.active.push(Arc::clone(&access));
        let refresh_token = refresh.map(|(r, text)| {
            self.index.insert_refresh(Arc::clone(&r));
            st.refresh.push(r);
            text
        });
        let ack = self.store.submit(ops);
        let issued = Issued {
            access_token,
            expires_in: p.access_ttl_secs,
            scope: slot.scope.to_string(),
            refresh_token,
            outcome: Outcome::New(mode),
            revoked,
        };
        Ok(Pending::Durable {
            issued,
            ack,
            published: Some(access),
            slot: Arc::clone(slot),
        })
    }

    /// Waits for durability; withdraws the new token if the store failed.
    pub(super) async fn finish(&self, pending: Pending) -> Result<Issued, ServiceError> {
        let (issued, ack, published, slot) = match pending {
            Pending::Ready(issued) => return Ok(issued),
            Pending::Durable {
                issued,
                ack,
                published,
                slot,
            } => (issued, ack, published, slot),
        };
        match ack.await {
            Ok(()) => {
                if let Some(rec) = published {
                    rec.mark_durable();
                }
                Ok(issued)
            }
            Err(e) => {
                if let Some(rec) = published {
                    let mut st = slot.lock();
                    if let Some(rid) = rec.refresh_id() {
                        if let Some(r) = st.refresh.iter().find(|r| r.id == rid).cloned() {
                            self.apply(&mut st, &Effect::Refresh(r, TokenState::Revoked));
                        }
                    }
                    self.apply(&mut st, &Effect::Access(rec, TokenState::Revoked));
                }
                Err(e.into())
            }
        }
    }

    /// Publishes one state change to the index and the key's state.
    pub(super) fn apply(&self, st: &mut KeyState, e: &Effect) {
        match e {
            Effect::Access(rec, s) => {
                rec.state.set(*s);
                st.active.retain(|a| a.id != rec.id);
                self.index.remove_access(&rec.id);
            }
            Effect::Refresh(rec, s) => {
                rec.state.set(*s);
                st.refresh.retain(|r| r.id != rec.id);
                // A spent refresh token stays known until it expires, to detect its reuse.
                if *s != TokenState::Inactive {
                    self.index.remove_refresh(&rec.id);
                }
            }
        }
    }
}
