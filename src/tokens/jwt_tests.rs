use super::*;
use jsonwebtoken::{decode, decode_header, jwk::JwkSet, Algorithm, DecodingKey, TokenData, Validation};

fn roundtrip(alg: JwtAlgorithm, jalg: Algorithm) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    let signer = JwtSigner::load_or_generate(&path, alg).unwrap();
    // Reused on the next start, not regenerated.
    let again = JwtSigner::load_or_generate(&path, alg).unwrap();
    assert_eq!(signer.kid(), again.kid());
    let token = signer.sign(&claims()).unwrap();
    let header = decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.kid.as_deref(), Some(signer.kid()));
    let set: JwkSet = serde_json::from_value(signer.jwks(&[])).unwrap();
    let data = verify(&set, signer.kid(), &token, jalg);
    assert_eq!(data.claims["client_id"], "app");
    assert_eq!(data.claims["scope"], "a b");
    assert_eq!(data.claims["jti"], "j1");
}

fn claims() -> AccessClaims<'static> {
    AccessClaims {
        aud: None,
        cnf: None,
        iss: "http://gw",
        sub: "alice",
        client_id: "app",
        scope: "a b",
        iat: 1_700_000_000,
        exp: 4_000_000_000,
        jti: "j1",
    }
}

fn verify(set: &JwkSet, kid: &str, token: &str, jalg: Algorithm) -> TokenData<serde_json::Value> {
    let key = DecodingKey::from_jwk(set.find(kid).unwrap()).unwrap();
    let mut v = Validation::new(jalg);
    v.set_issuer(&["http://gw"]);
    decode::<serde_json::Value>(token, &key, &v).unwrap()
}

#[test]
fn previous_keys_of_any_algorithm_are_published_after_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let now_path = dir.path().join("now.pem");
    let current = JwtSigner::load_or_generate(&now_path, JwtAlgorithm::ES256).unwrap();
    let mut previous = Vec::new();
    let mut old_tokens = Vec::new();
    for (alg, jalg) in [
        (JwtAlgorithm::RS256, Algorithm::RS256),
        (JwtAlgorithm::ES256, Algorithm::ES256),
        (JwtAlgorithm::EdDSA, Algorithm::EdDSA),
    ] {
        let path = dir.path().join(format!("old-{}.pem", alg.as_str()));
        let old = JwtSigner::load_or_generate(&path, alg).unwrap();
        old_tokens.push((old.sign(&claims()).unwrap(), old.kid().to_string(), jalg));
        let jwk = previous_key_jwk(&path).unwrap();
        assert_eq!(jwk["alg"], alg.as_str(), "the algorithm comes from the key");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(jwk.get(private).is_none(), "{private} published");
        }
        previous.push(jwk);
    }
    // A key listed twice, and the current key listed as a previous one: published once.
    previous.push(previous[0].clone());
    previous.push(previous_key_jwk(&now_path).unwrap());
    let set: JwkSet = serde_json::from_value(current.jwks(&previous)).unwrap();
    assert_eq!(set.keys.len(), 4);
    assert_eq!(set.keys[0].common.key_id.as_deref(), Some(current.kid()));
    for (token, kid, jalg) in old_tokens {
        assert_eq!(verify(&set, &kid, &token, jalg).claims["jti"], "j1");
    }

    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a key").unwrap();
    match previous_key_jwk(&junk) {
        Err(e @ KeyError::Previous { .. }) => assert!(e.to_string().contains("junk.pem"), "{e}"),
        other => panic!("{other:?}"),
    }
    match previous_key_jwk(&dir.path().join("absent.pem")) {
        Err(e @ KeyError::Previous { .. }) => assert!(e.to_string().contains("absent.pem: cannot read"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rs256_signs_verifiably() {
    roundtrip(JwtAlgorithm::RS256, Algorithm::RS256);
}

#[test]
fn es256_signs_verifiably() {
    roundtrip(JwtAlgorithm::ES256, Algorithm::ES256);
}

#[test]
fn eddsa_signs_verifiably() {
    roundtrip(JwtAlgorithm::EdDSA, Algorithm::EdDSA);
}

#[test]
fn garbage_key_is_refused() {
    assert!(JwtSigner::from_pem(b"not a key", JwtAlgorithm::RS256).is_err());
}
