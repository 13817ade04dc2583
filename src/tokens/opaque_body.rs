//! Decoding an opaque token's body, the one base64 text every proxied request with an opaque
//! token carries: always 86 characters of base64url without padding, always 64 bytes out.
//!
//! The `base64` crate decodes any length in any configuration; for this one shape a table and
//! groups of 8 characters into one 64-bit word do the same work in 30 % fewer instructions
//! (callgrind, see docs/decisions.md). It accepts exactly what `base64`'s `URL_SAFE_NO_PAD`
//! accepts for 86 characters, canonical encodings only (the last character's unused bits zero),
//! so a token has one spelling: the tests check every single-character change of a body against
//! the crate.

/// Length of an opaque token's body: base64url of 64 bytes, without padding.
pub const BODY_LEN: usize = 86;

/// Marks a byte that is not a base64url character (every valid value is below 64).
const INVALID: u8 = 0xFF;

/// Each byte's 6-bit value in the base64url alphabet, or [`INVALID`].
const VALUES: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// The 64 bytes `body` encodes; `None` unless it is exactly [`BODY_LEN`] base64url characters
/// in their canonical spelling.
pub fn decode(body: &[u8]) -> Option<[u8; 64]> {
    let body: &[u8; BODY_LEN] = body.try_into().ok()?;
    // Each group of 8 characters (48 bits) is written as 8 bytes of which the last 2 are
    // overwritten by the next group: 6 bytes of room past the 64.
    let mut out = [0u8; 70];
    // Any invalid character sets the high bit here; checked once at the end (no branch per byte).
    let mut seen = 0u8;
    let mut bits = |chars: &[u8]| {
        chars.iter().fold(0u64, |acc, &c| {
            let v = VALUES[usize::from(c)];
            seen |= v;
            acc << 6 | u64::from(v)
        })
    };
    for group in 0..10 {
        let acc = bits(&body[8 * group..8 * group + 8]);
        out[6 * group..6 * group + 8].copy_from_slice(&(acc << 16).to_be_bytes());
    }
    // The last 6 characters carry 36 bits: the last 4 bytes, then 4 bits that must be zero.
    let acc = bits(&body[80..]);
    out[60..68].copy_from_slice(&((acc >> 4) << 32).to_be_bytes());
    let mut bytes = [0u8; 64];
    bytes.copy_from_slice(&out[..64]);
    (seen & 0x80 == 0 && acc & 0x0F == 0).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use rand::RngCore;

    use super::*;

    /// What the `base64` crate makes of `body`, when it is 64 bytes.
    fn reference(body: &[u8]) -> Option<[u8; 64]> {
        B64.decode(body).ok()?.try_into().ok()
    }

    #[test]
    fn decodes_what_the_base64_crate_encodes() {
        for _ in 0..200 {
            let mut raw = [0u8; 64];
            rand::rng().fill_bytes(&mut raw);
            assert_eq!(decode(B64.encode(raw).as_bytes()), Some(raw));
        }
    }

    #[test]
    fn every_single_character_change_is_judged_as_the_base64_crate_does() {
        let mut raw = [0u8; 64];
        rand::rng().fill_bytes(&mut raw);
        let body = B64.encode(raw).into_bytes();
        for pos in 0..BODY_LEN {
            for byte in 0..=255u8 {
                let mut changed = body.clone();
                changed[pos] = byte;
                assert_eq!(decode(&changed), reference(&changed), "byte {byte:#04x} at {pos}");
            }
        }
    }

    #[test]
    fn only_the_canonical_last_character_is_accepted() {
        let body = B64.encode([0u8; 64]).into_bytes();
        let accepted: Vec<u8> = (0..=255u8)
            .filter(|&last| {
                let mut changed = body.clone();
                changed[BODY_LEN - 1] = last;
                decode(&changed).is_some()
            })
            .collect();
        // 'A', 'Q', 'g', 'w': the four values whose low 4 bits are zero.
        assert_eq!(accepted, b"AQgw");
    }

    #[test]
    fn other_lengths_and_padding_are_refused() {
        let body = B64.encode([7u8; 64]);
        assert_eq!(decode(&body.as_bytes()[..BODY_LEN - 1]), None);
        assert_eq!(decode(format!("{body}A").as_bytes()), None);
        assert_eq!(decode(format!("{}==", &body[..BODY_LEN - 2]).as_bytes()), None);
        assert_eq!(decode(b""), None);
    }
}
