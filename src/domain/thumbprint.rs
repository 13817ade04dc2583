//! The key a DPoP-bound token is bound to: the RFC 7638 SHA-256 thumbprint of the client's public
//! key (RFC 9449 section 6: `cnf.jkt`). A bound token passes only with a proof signed by that key.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;

/// An RFC 7638 SHA-256 JWK thumbprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Thumbprint(pub [u8; 32]);

impl Thumbprint {
    /// The `jkt` text: base64url without padding.
    pub fn to_b64(&self) -> String {
        B64.encode(self.0)
    }

    /// A thumbprint from its `jkt` text.
    pub fn from_b64(text: &str) -> Option<Thumbprint> {
        let bytes = B64.decode(text).ok()?;
        <[u8; 32]>::try_from(bytes.as_slice()).ok().map(Thumbprint)
    }
}

impl fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Thumbprint({})", self.to_b64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jkt_text_round_trips() {
        let t = Thumbprint([7; 32]);
        assert_eq!(t.to_b64().len(), 43);
        assert_eq!(Thumbprint::from_b64(&t.to_b64()), Some(t));
        assert_eq!(Thumbprint::from_b64("abc"), None);
    }
}
