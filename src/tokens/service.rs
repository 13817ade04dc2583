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

use std::sync::Arc;

use arc_swap::ArcSwap;
use rand::RngCore;
use tokio::sync::Semaphore;

use super::capacity::Capacity;
use super::dead_ids::DeadIds;
use super::index::{KeySlot, KeyState, TokenIndex};
use super::jwt::JwtSigner;
use super::opaque::{OpaqueCodec, OpaqueKind};
use super::presign::{presign, Presigned};
use super::record::{AccessRecord, FamilyId, RefreshRecord, TokenId, TokenState};
use crate::store::shared::Feed;
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
    pub(super) index: Arc<TokenIndex>,
    pub(super) store: Arc<dyn TokenStore>,
    pub(super) codec: OpaqueCodec,
    /// The signing key in use; a reload may rotate it ([`TokenService::rotate_keys`]).
    signer: ArcSwap<JwtSigner>,
    /// Permits for RSA signatures running at once ([`presign`], [`signing_permits`]).
    signing: Arc<Semaphore>,
    capacity: Capacity,
    /// The change feed of a shared store (cluster mode); `None` with a store of one node.
    pub(super) feed: Option<Arc<Feed>>,
    /// Access tokens known dead, for look-ups in a shared store ([`super::sync`]).
    pub(super) dead: DeadIds,
    /// Earlier signing keys (`oauth.jwt_previous_keys`): in a cluster, other nodes may still
    /// sign with one of them during a rotation.
    pub(super) previous: ArcSwap<Vec<JwtSigner>>,
}

/// RSA signatures that may run at once: two per core. One per core left a core idle while a
/// finished signature handed its permit to the next request (docs/decisions.md, "RSA signing
/// under a flood").
pub fn signing_permits() -> usize {
    2 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(super) fn random_family() -> FamilyId {
    let mut f = [0u8; 16];
    rand::rng().fill_bytes(&mut f);
    f
}

impl TokenService {
    pub fn new(index: Arc<TokenIndex>, store: Arc<dyn TokenStore>, codec: OpaqueCodec, signer: JwtSigner) -> Self {
        TokenService {
            index,
            feed: store.feed(),
            store,
            codec,
            signer: ArcSwap::from_pointee(signer),
            signing: Arc::new(Semaphore::new(signing_permits())),
            capacity: Capacity::default(),
            dead: DeadIds::default(),
            previous: ArcSwap::from_pointee(Vec::new()),
        }
    }

    /// The same engine, also accepting JWTs signed with `previous` keys when it looks a token up
    /// in a shared store.
    pub fn with_previous_keys(self, previous: Vec<JwtSigner>) -> Self {
        self.previous.store(Arc::new(previous));
        self
    }

    /// The change feed of a shared store, if this node is one of a cluster.
    pub fn feed(&self) -> Option<&Arc<Feed>> {
        self.feed.as_ref()
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

    /// The signing key in use now.
    pub fn signer(&self) -> Arc<JwtSigner> {
        self.signer.load_full()
    }

    /// Signs new tokens with `signer` from now on, and accepts JWTs of `previous` keys in a
    /// cluster's look-ups (a key rotation at reload).
    pub fn rotate_keys(&self, signer: JwtSigner, previous: Vec<JwtSigner>) {
        self.previous.store(Arc::new(previous));
        self.signer.store(Arc::new(signer));
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
        presign(&self.signer.load_full(), &self.signing, key, p).await
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
