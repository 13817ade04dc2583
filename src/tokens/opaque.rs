//! Opaque token text that is useless at rest: `prefix + base64url(id || HMAC-SHA256(key, prefix || id))`.
//!
//! The index and the store keep only the random 256-bit `id`; the text can be recomputed from it
//! with the server key (so opaque single mode can hand the same token out again after a restart),
//! while a copy of the database alone holds no usable token. Parsing checks the tag in constant
//! time before any lookup.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::opaque_body::{self, BODY_LEN};
use super::record::TokenId;

/// Which kind of opaque token a text is: the prefix keeps access and refresh tokens apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpaqueKind {
    Access,
    Refresh,
}

impl OpaqueKind {
    fn prefix(self) -> &'static str {
        match self {
            OpaqueKind::Access => "tga_",
            OpaqueKind::Refresh => "tgr_",
        }
    }
}

/// Mints and checks opaque tokens with the server key.
#[derive(Clone)]
pub struct OpaqueCodec {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for OpaqueCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpaqueCodec(..)")
    }
}

/// Why the server key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum ServerKeyError {
    #[error("cannot read or create server key {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("server key {path} must hold at least 32 bytes")]
    TooShort { path: String },
}

impl OpaqueCodec {
    pub fn new(key: &[u8]) -> OpaqueCodec {
        // HMAC accepts keys of any length; this cannot fail.
        let mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        OpaqueCodec { mac }
    }

    /// Loads the server key at `path`, creating 32 random bytes there (mode 0600) when absent.
    pub fn load_or_create(path: &Path) -> Result<OpaqueCodec, ServerKeyError> {
        let io = |source| ServerKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            crate::fsutil::write_private(path, hex::encode(key).as_bytes()).map_err(io)?;
            log::info!("generated a new server key at {}", path.display());
        }
        let raw = std::fs::read(path).map_err(io)?;
        let trimmed = raw.trim_ascii();
        let key = hex::decode(trimmed).unwrap_or_else(|_| trimmed.to_vec());
        if key.len() < 32 {
            return Err(ServerKeyError::TooShort {
                path: path.display().to_string(),
            });
        }
        Ok(OpaqueCodec::new(&key))
    }

    fn tag(&self, kind: OpaqueKind, id: &TokenId) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(kind.prefix().as_bytes());
        mac.update(&id.0);
        mac.finalize().into_bytes().into()
    }

    /// What the server key shows of itself to other nodes: an HMAC of a fixed label, from
    /// which the key cannot be recovered; equal on two nodes exactly when their keys are.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(b"tokengate server key fingerprint");
        mac.finalize().into_bytes().into()
    }

    /// A key of its own for another use of the server key, by `label` (an HMAC of the label):
    /// the same on every node sharing the server key, and telling nothing of it.
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(label);
        mac.finalize().into_bytes().into()
    }

    /// A new random id and its token text.
    pub fn mint(&self, kind: OpaqueKind) -> (TokenId, String) {
        let mut id = [0u8; 32];
        rand::rng().fill_bytes(&mut id);
        let id = TokenId(id);
        let text = self.text(kind, &id);
        (id, text)
    }

    /// The token text for an id (recomputed, never stored).
    pub fn text(&self, kind: OpaqueKind, id: &TokenId) -> String {
        let mut raw = [0u8; 64];
        raw[..32].copy_from_slice(&id.0);
        raw[32..].copy_from_slice(&self.tag(kind, id));
        let mut out = String::with_capacity(4 + BODY_LEN);
        out.push_str(kind.prefix());
        B64.encode_string(raw, &mut out);
        out
    }

    /// The id of a genuine token text of `kind`; `None` for anything forged or malformed.
    pub fn parse(&self, kind: OpaqueKind, text: &str) -> Option<TokenId> {
        let body = text.strip_prefix(kind.prefix())?;
        let raw = opaque_body::decode(body.as_bytes())?;
        let (id, tag) = raw.split_at(32);
        let id = TokenId(id.try_into().ok()?);
        let tag: &[u8; 32] = tag.try_into().ok()?;
        // Word by word, in constant time (a byte-wise comparison cost a hundred instructions).
        if constant_time_eq::constant_time_eq_32(&self.tag(kind, &id), tag) {
            Some(id)
        } else {
            None
        }
    }

    /// Whether a text looks like an opaque token of `kind` (by prefix only).
    pub fn has_prefix(kind: OpaqueKind, text: &str) -> bool {
        text.starts_with(kind.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_back_to_their_id() {
        let c = OpaqueCodec::new(b"0123456789abcdef0123456789abcdef");
        let (id, text) = c.mint(OpaqueKind::Access);
        assert_eq!(c.parse(OpaqueKind::Access, &text), Some(id));
        assert_eq!(c.text(OpaqueKind::Access, &id), text);
        assert!(
            text.len() >= 43,
            "256 bits of entropy need at least 43 base64 characters"
        );
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn kinds_and_keys_do_not_mix() {
        let c = OpaqueCodec::new(b"0123456789abcdef0123456789abcdef");
        let other = OpaqueCodec::new(b"fedcba9876543210fedcba9876543210");
        let (_, text) = c.mint(OpaqueKind::Access);
        assert_eq!(c.parse(OpaqueKind::Refresh, &text), None);
        let swapped = text.replacen("tga_", "tgr_", 1);
        assert_eq!(c.parse(OpaqueKind::Refresh, &swapped), None);
        assert_eq!(other.parse(OpaqueKind::Access, &text), None);
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let c = OpaqueCodec::new(b"0123456789abcdef0123456789abcdef");
        let (_, text) = c.mint(OpaqueKind::Access);
        let mut bytes = text.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(c.parse(OpaqueKind::Access, &tampered), None);
        assert_eq!(c.parse(OpaqueKind::Access, "tga_short"), None);
        assert_eq!(c.parse(OpaqueKind::Access, ""), None);
    }

    #[test]
    fn server_key_is_created_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/server.key");
        let a = OpaqueCodec::load_or_create(&path).unwrap();
        let b = OpaqueCodec::load_or_create(&path).unwrap();
        let (id, text) = a.mint(OpaqueKind::Access);
        assert_eq!(b.parse(OpaqueKind::Access, &text), Some(id));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
