//! Server-provided DPoP nonces (RFC 9449 sections 8 and 9). With `oauth.dpop_nonce = true` a
//! proof must carry a nonce the gateway handed out recently (`DPoP-Nonce`), which bounds how far
//! ahead proofs can be made, by the client or by whoever stole its key. A proof without one, or
//! with a stale one, is answered `use_dpop_nonce` with a fresh nonce.
//!
//! Nonces keep no state: a time window and its HMAC under a key derived from the server key, so
//! every node of a cluster (which shares the server key) accepts the nonces of every other.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// A nonce is handed out for this long, and accepted for this long after (two windows at most).
pub const WINDOW_SECS: u64 = 300;

/// Makes and checks nonces.
#[derive(Clone)]
pub struct Nonces {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonces")
    }
}

impl Nonces {
    /// Nonces under `key` (derived from the server key: [`crate::tokens::opaque::OpaqueCodec::derive`]).
    pub fn new(key: &[u8; 32]) -> Nonces {
        // HMAC takes a key of any length.
        let mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        Nonces { mac }
    }

    /// The nonce to hand out at `now` (unix seconds).
    pub fn current(&self, now: u64) -> String {
        self.of_window(now / WINDOW_SECS)
    }

    /// Whether `nonce` was handed out in this window or the one before.
    pub fn accepts(&self, nonce: &str, now: u64) -> bool {
        let window = now / WINDOW_SECS;
        [window, window.saturating_sub(1)]
            .iter()
            .any(|w| bool::from(self.of_window(*w).as_bytes().ct_eq(nonce.as_bytes())))
    }

    fn of_window(&self, window: u64) -> String {
        let mut mac = self.mac.clone();
        mac.update(b"tokengate dpop nonce");
        mac.update(&window.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{window:x}.{}", B64.encode(&tag[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_for_its_window_and_the_next_only() {
        let n = Nonces::new(&[1; 32]);
        let t = 1_700_000_100;
        let nonce = n.current(t);
        assert!(n.accepts(&nonce, t));
        assert!(n.accepts(&nonce, t + WINDOW_SECS));
        assert!(!n.accepts(&nonce, t + 2 * WINDOW_SECS));
        assert!(!n.accepts("1.abc", t));
        assert!(!Nonces::new(&[2; 32]).accepts(&nonce, t), "another server key's nonce");
    }
}
