//! What the gateway knows of one issued token: never its text, only its id and its facts.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::format::TokenFormat;
use super::slot::KeySlot;
use crate::oauth::grant_type::GrantType;

/// A token's id in the index and the store: the random id of an opaque token, or the SHA-256 of a
/// JWT's text. Neither lets anyone rebuild a usable token without the server's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(pub [u8; 32]);

impl TokenId {
    /// The id of a JWT: the SHA-256 of its text.
    pub fn of_jwt(text: &str) -> TokenId {
        TokenId(Sha256::digest(text.as_bytes()).into())
    }
}

/// Refresh token family: every refresh token rotated from one grant shares it.
pub type FamilyId = [u8; 16];

/// Lifecycle state (renewal.md section 5). Nothing ever returns to `Active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TokenState {
    Active = 0,
    Expired = 1,
    Revoked = 2,
    /// Access token: replaced by a refresh. Refresh token: spent by a rotation.
    Inactive = 3,
}

impl TokenState {
    pub fn from_u8(v: u8) -> TokenState {
        match v {
            0 => TokenState::Active,
            1 => TokenState::Expired,
            2 => TokenState::Revoked,
            _ => TokenState::Inactive,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
            TokenState::Inactive => "inactive",
        }
    }
}

/// A state that readers on other threads see change at once (revocation is a store, not a
/// re-insert into the index).
#[derive(Debug)]
pub struct AtomicState(AtomicU8);

impl AtomicState {
    pub fn new(s: TokenState) -> AtomicState {
        AtomicState(AtomicU8::new(s as u8))
    }

    pub fn get(&self) -> TokenState {
        TokenState::from_u8(self.0.load(Ordering::Acquire))
    }

    pub fn set(&self, s: TokenState) {
        self.0.store(s as u8, Ordering::Release);
    }
}

/// An issued access token.
#[derive(Debug)]
pub struct AccessRecord {
    pub id: TokenId,
    /// Its key, and that key's state: reads as the [`super::key::TokenKey`].
    pub key: Arc<KeySlot>,
    pub format: TokenFormat,
    pub grant: GrantType,
    /// Whole seconds, times 1000: `iat` of the token.
    pub issued_at_ms: u64,
    /// Whole seconds, times 1000: `exp` of the token.
    pub expires_at_ms: u64,
    /// The refresh token issued with it, and its family; boxed because most tokens have none
    /// (8 bytes instead of 56 in every record).
    pub refresh: Option<Box<RefreshLink>>,
    pub state: AtomicState,
    /// Set once the store acknowledged the token: handing it out again needs no wait then.
    pub durable: AtomicBool,
}

/// Which refresh token an access token was issued with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshLink {
    pub id: TokenId,
    pub family: FamilyId,
}

impl AccessRecord {
    /// The refresh token issued with this access token, if any.
    pub fn refresh_id(&self) -> Option<TokenId> {
        self.refresh.as_ref().map(|l| l.id)
    }

    /// The refresh family this access token belongs to, if any.
    pub fn family(&self) -> Option<&FamilyId> {
        self.refresh.as_ref().map(|l| &l.family)
    }

    pub fn is_durable(&self) -> bool {
        self.durable.load(Ordering::Acquire)
    }

    pub fn mark_durable(&self) {
        self.durable.store(true, Ordering::Release);
    }

    /// Active and not past its expiry.
    pub fn is_valid_at(&self, now_ms: u64) -> bool {
        self.state.get() == TokenState::Active && self.expires_at_ms > now_ms
    }
}

/// An issued refresh token.
#[derive(Debug)]
pub struct RefreshRecord {
    pub id: TokenId,
    pub key: Arc<KeySlot>,
    pub family: FamilyId,
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
    /// The access token it was issued with.
    pub access_id: TokenId,
    pub state: AtomicState,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
