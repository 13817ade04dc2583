//! Bearer header parsing, token ids and the RFC 6750 answers.

use super::*;

#[test]
fn extracts_one_bearer_token() {
    assert_eq!(extract(Some(b"Bearer abc.def-_~+/==")), Ok("abc.def-_~+/=="));
    assert_eq!(extract(Some(b"bearer abc")), Ok("abc"));
    assert_eq!(extract(None), Err(BearerError::Missing));
    assert_eq!(extract(Some(b"Basic Zm9vOmJhcg==")), Err(BearerError::Missing));
    assert_eq!(extract(Some(b"BearerX abc")), Err(BearerError::Missing));
    assert_eq!(extract(Some(b"")), Err(BearerError::Missing));
}

#[test]
fn b64token_characters_are_exactly_the_rfc_ones() {
    for b in 0..=255u8 {
        let rfc = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        assert_eq!(is_b64token_char(b), rfc, "byte {b:#04x}");
        // The same byte anywhere in a long token (past the first 32-byte chunk) decides it.
        let mut t = vec![b'a'; 70];
        t[65] = b;
        assert_eq!(is_b64token(&t), rfc, "byte {b:#04x} at 65");
    }
    assert!(is_b64token(b"abc=="));
    assert!(!is_b64token(b"=="));
    assert!(!is_b64token(b"a=b"));
}

#[test]
fn malformed_bearer_headers_are_400() {
    for h in [
        &b"Bearer"[..],
        b"Bearer ",
        b"Bearer a b",
        b"Bearer =",
        b"Bearer a\"b",
        b"Bearer \xff",
        b"Bearer\tabc",
        b"Bearer abc,def",
        b"Bearer abc\xff",
        b"Bearer a=b",
    ] {
        assert!(matches!(extract(Some(h)), Err(BearerError::Malformed(_))), "{h:?}");
    }
    let long = [b"Bearer ".as_slice(), &vec![b'a'; MAX_BEARER_BYTES + 1]].concat();
    assert!(matches!(extract(Some(&long)), Err(BearerError::Malformed(_))));
}

#[test]
fn token_ids_come_from_genuine_tokens_and_malformed_ones_are_400() {
    use crate::store::memory::MemoryStore;
    use crate::tokens::index::TokenIndex;
    use crate::tokens::jwt::{JwtAlgorithm, JwtSigner};
    let codec = OpaqueCodec::new(&[1u8; 32]);
    let signer = JwtSigner::generate(JwtAlgorithm::EdDSA).unwrap();
    let tokens = TokenService::new(
        Arc::new(TokenIndex::new()),
        Arc::new(MemoryStore::default()),
        codec.clone(),
        signer,
    );
    let (id, genuine) = codec.mint(OpaqueKind::Access);
    assert_eq!(token_id(&tokens, &genuine), Ok(id));
    let forged = format!("tga_{}", "A".repeat(86));
    assert_eq!(token_id(&tokens, &forged), Err(BearerError::Invalid));
    // Not base64url, but b64token characters all: unknown, not malformed.
    let plus = genuine.replacen('A', "+", 1).replacen('a', "+", 1);
    assert_eq!(token_id(&tokens, &plus), Err(BearerError::Invalid));
    for malformed in [
        genuine.replacen('A', "\"", 1).replacen('a', "\"", 1),
        format!("{genuine}=x"),
        "tga_a,b".to_string(),
        "a\"b.c.d".to_string(),
        "abc,def".to_string(),
    ] {
        assert_eq!(token_id(&tokens, &malformed), Err(NOT_B64TOKEN), "{malformed}");
    }
    assert_eq!(token_id(&tokens, "a.b.c"), Ok(TokenId::of_jwt("a.b.c")));
    assert_eq!(token_id(&tokens, "abc"), Err(BearerError::Invalid));
}

#[test]
fn replies_follow_rfc6750() {
    assert_eq!(BearerError::Missing.reply().status, 401);
    assert_eq!(BearerError::Malformed("x").reply().status, 400);
    let r = BearerError::Invalid.reply();
    assert_eq!(r.status, 401);
    assert!(r
        .headers
        .iter()
        .any(|(k, v)| *k == "WWW-Authenticate" && v.contains("invalid_token")));
    assert_eq!(BearerError::InsufficientScope("a".into()).reply().status, 403);
}
