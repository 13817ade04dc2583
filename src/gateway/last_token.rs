//! A connection's memory of the last token it presented, with that token's id.
//!
//! A client on a keep-alive connection sends the same token with request after request. Finding
//! a token's id costs decoding it and checking its HMAC (an opaque token) or SHA-256 over its text
//! (a JWT); remembering the last text a connection presented beside its id makes that once per
//! connection and token instead of once per request. Only the text-to-id step is skipped: the
//! index lookup and every check after it run on each request, so a revocation or expiry holds on a
//! remembering connection at once.
//!
//! Beside the token the connection keeps the identity header values of its key
//! ([`IdentityValues`]), so that they are not built again for each request either.
//!
//! The text is compared in constant time, kept in the gateway's memory only (a request's headers
//! hold it there anyway), and dropped with the connection or the next token. Texts longer than
//! [`LONGEST_REMEMBERED`] are not kept, so a connection holds at most that many bytes.

use std::any::Any;
use std::sync::{Arc, Mutex, Weak};

use pingora::protocols::Digest;

use super::identity::IdentityValues;
use crate::tokens::record::{KeySlot, TokenId};

/// The longest token text a connection remembers (an RS256 JWT with a few claims is about 800
/// bytes); longer ones are decoded on every request.
pub const LONGEST_REMEMBERED: usize = 2048;

/// Where the id of a token text presented before may be found.
pub trait IdMemory {
    /// The id of `token`, when it is the text remembered.
    fn recall(&self, token: &str) -> Option<TokenId>;
    /// Remembers `id` as the id of `token`, in place of what was remembered.
    fn remember(&self, token: &str, id: TokenId);
}

/// No memory: every request's token is decoded (callers without a connection).
pub struct NoMemory;

impl IdMemory for NoMemory {
    fn recall(&self, _token: &str) -> Option<TokenId> {
        None
    }

    fn remember(&self, _token: &str, _id: TokenId) {}
}

/// What a connection remembers.
struct LastToken {
    text: Vec<u8>,
    id: TokenId,
    /// The identity header values of a key, and which key (a weak handle: it keeps the key's
    /// address from being reused, not the key).
    identity: Option<(Weak<KeySlot>, IdentityValues)>,
}

/// The slot pingora keeps beside each accepted connection (its socket digest).
type Slot = Mutex<Option<Box<dyn Any + Send + Sync>>>;

/// The memory of one connection; none for a connection without a socket digest.
pub struct ConnectionMemory<'a> {
    slot: Option<&'a Slot>,
}

impl<'a> ConnectionMemory<'a> {
    /// The memory of the connection whose digest is `digest`.
    pub fn of(digest: Option<&'a Digest>) -> ConnectionMemory<'a> {
        let slot = digest.and_then(|d| d.socket_digest.as_deref()).map(|s| &s.app_state);
        ConnectionMemory { slot }
    }

    fn with_last<R>(&self, f: impl FnOnce(&mut Option<Box<dyn Any + Send + Sync>>) -> R) -> Option<R> {
        // A panic while the slot was held can at worst have left a half-written memory, which
        // the next token replaces: the poison is ignored.
        let mut held = self.slot?.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(f(&mut held))
    }

    /// The identity header values of `key`: those kept beside the connection's last token when
    /// they are that key's; otherwise built, and kept there.
    pub fn identity_of(&self, key: &Arc<KeySlot>) -> pingora::Result<IdentityValues> {
        let remembered = self.with_last(|held| {
            let last = held.as_mut()?.downcast_mut::<LastToken>()?;
            match &last.identity {
                Some((of, values)) if std::ptr::eq(of.as_ptr(), Arc::as_ptr(key)) => Some(Ok(values.clone())),
                _ => Some(IdentityValues::of(key.key()).inspect(|values| {
                    last.identity = Some((Arc::downgrade(key), values.clone()));
                })),
            }
        });
        remembered.flatten().unwrap_or_else(|| IdentityValues::of(key.key()))
    }
}

impl IdMemory for ConnectionMemory<'_> {
    fn recall(&self, token: &str) -> Option<TokenId> {
        self.with_last(|held| {
            let last = held.as_ref()?.downcast_ref::<LastToken>()?;
            constant_time_eq::constant_time_eq(&last.text, token.as_bytes()).then_some(last.id)
        })
        .flatten()
    }

    fn remember(&self, token: &str, id: TokenId) {
        if token.len() > LONGEST_REMEMBERED {
            return;
        }
        self.with_last(|held| match held.as_mut().and_then(|b| b.downcast_mut::<LastToken>()) {
            Some(last) => {
                last.text.clear();
                last.text.extend_from_slice(token.as_bytes());
                last.id = id;
            }
            None => {
                let text = token.as_bytes().to_vec();
                *held = Some(Box::new(LastToken {
                    text,
                    id,
                    identity: None,
                }));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pingora::protocols::SocketDigest;

    use super::*;

    fn digest() -> Digest {
        Digest {
            socket_digest: Some(Arc::new(SocketDigest::from_raw_fd(-1))),
            ..Default::default()
        }
    }

    #[test]
    fn a_connection_recalls_only_the_very_text_it_was_given_last() {
        let d = digest();
        let memory = ConnectionMemory::of(Some(&d));
        let (a, b) = (TokenId([1; 32]), TokenId([2; 32]));
        assert_eq!(memory.recall("tga_one"), None);
        memory.remember("tga_one", a);
        assert_eq!(memory.recall("tga_one"), Some(a));
        for other in ["tga_onE", "tga_on", "tga_one ", "", "tga_two"] {
            assert_eq!(memory.recall(other), None, "{other}");
        }
        memory.remember("tga_two", b);
        assert_eq!(memory.recall("tga_two"), Some(b));
        assert_eq!(memory.recall("tga_one"), None);
        // Each connection has its own memory.
        let other = digest();
        assert_eq!(ConnectionMemory::of(Some(&other)).recall("tga_two"), None);
    }

    #[test]
    fn long_texts_and_connections_without_a_digest_are_not_remembered() {
        let d = digest();
        let memory = ConnectionMemory::of(Some(&d));
        let long = "a".repeat(LONGEST_REMEMBERED + 1);
        memory.remember(&long, TokenId([3; 32]));
        assert_eq!(memory.recall(&long), None);
        let none = ConnectionMemory::of(None);
        none.remember("tga_one", TokenId([1; 32]));
        assert_eq!(none.recall("tga_one"), None);
    }
}
