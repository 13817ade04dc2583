//! Token ids, refresh families and lifecycle states: what the index, the engine and every store
//! agree a token is, without its text.

use std::hash::Hasher;

use sha2::{Digest, Sha256};

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

/// Lifecycle state (docs/renewal-policy.md, section 5). Nothing ever returns to `Active`.
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

/// Ids are uniformly random (opaque ids, SHA-256 outputs, and only ids that passed their HMAC
/// check are looked up), so their first 8 bytes are already a good hash.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
