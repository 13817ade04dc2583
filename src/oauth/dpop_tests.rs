//! DPoP proofs built by hand with keys made here, the RFC examples' thumbprints, and hostile
//! proofs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::*;
use crate::domain::format::JwtAlgorithm;
use crate::oauth::dpop_client::ProofKey;

const URL: &str = "https://gw.example/api/x";
const NOW: u64 = 1_700_000_000;

fn client_key(alg: JwtAlgorithm) -> ProofKey {
    ProofKey::generate(alg).unwrap()
}

fn sign(key: &ProofKey, header: &Value, claims: &Value) -> String {
    key.sign(header, claims).unwrap()
}

fn header(key: &ProofKey) -> Value {
    key.header()
}

fn claims(jti: &str) -> Value {
    json!({"jti": jti, "htm": "GET", "htu": URL, "iat": NOW})
}

fn expected(access_token: Option<&str>) -> Expected<'_> {
    static URLS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| vec![URL.to_string()]);
    Expected {
        method: "GET",
        urls: &URLS,
        access_token,
        now: NOW,
        max_age_secs: 60,
        nonces: None,
    }
}

fn check(proof: &str) -> Result<Thumbprint, ProofError> {
    verify(proof, &expected(None), &ReplayCache::new(100)).map(|a| a.jkt)
}

#[test]
fn rfc_examples_give_their_thumbprints() {
    // RFC 7638 section 3.1.
    let rsa = json!({"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"});
    let t = thumbprint(rsa.as_object().unwrap()).unwrap();
    assert_eq!(t.to_b64(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    // RFC 9449 sections 4.1 and 6.1: the example proof's key and its `jkt`.
    let ec = json!({"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"});
    let t = thumbprint(ec.as_object().unwrap()).unwrap();
    assert_eq!(t.to_b64(), "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
}

#[test]
fn proofs_of_each_algorithm_verify_and_name_their_key() {
    for alg in [JwtAlgorithm::ES256, JwtAlgorithm::EdDSA, JwtAlgorithm::RS256] {
        let key = client_key(alg);
        let proof = sign(&key, &header(&key), &claims("j1"));
        let jkt = check(&proof).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(jkt, thumbprint(key.public_jwk().as_object().unwrap()).unwrap());
    }
}

#[test]
fn at_the_gateway_the_proof_must_name_the_token() {
    let key = client_key(JwtAlgorithm::ES256);
    let ath = B64.encode(Sha256::digest(b"the-token"));
    let mut c = claims("j1");
    c["ath"] = ath.into();
    let proof = sign(&key, &header(&key), &c);
    let cache = ReplayCache::new(100);
    assert!(verify(&proof, &expected(Some("the-token")), &cache).is_ok());
    let other = sign(&key, &header(&key), &{
        let mut c = c.clone();
        c["jti"] = "j2".into();
        c
    });
    assert!(matches!(
        verify(&other, &expected(Some("another-token")), &cache),
        Err(ProofError::Invalid(m)) if m.contains("ath")
    ));
    let without = sign(&key, &header(&key), &claims("j3"));
    assert!(verify(&without, &expected(Some("the-token")), &cache).is_err());
}

#[test]
fn hostile_proofs_are_refused() {
    let key = client_key(JwtAlgorithm::ES256);
    let other = client_key(JwtAlgorithm::ES256);
    let with = |f: &dyn Fn(&mut Value, &mut Value)| {
        let (mut h, mut c) = (header(&key), claims("j1"));
        f(&mut h, &mut c);
        sign(&key, &h, &c)
    };
    let cases: Vec<(&str, String)> = vec![
        ("wrong htu", with(&|_, c| c["htu"] = "https://gw.example/api/y".into())),
        ("wrong htm", with(&|_, c| c["htm"] = "POST".into())),
        ("stale iat", with(&|_, c| c["iat"] = (NOW - 61).into())),
        ("future iat", with(&|_, c| c["iat"] = (NOW + 60).into())),
        (
            "no jti",
            with(&|_, c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        ("wrong typ", with(&|h, _| h["typ"] = "JWT".into())),
        (
            "no jwk",
            with(&|h, _| {
                h.as_object_mut().unwrap().remove("jwk");
            }),
        ),
        (
            "another key in jwk",
            with(&|h, _| h["jwk"] = other.public_jwk().clone()),
        ),
        ("a private key in jwk", with(&|h, _| h["jwk"]["d"] = "c2VjcmV0".into())),
        ("alg HS256", with(&|h, _| h["alg"] = "HS256".into())),
        ("alg none", {
            let h = json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.public_jwk()});
            format!(
                "{}.{}.",
                B64.encode(h.to_string()),
                B64.encode(claims("j1").to_string())
            )
        }),
        ("not a JWT", "abc".to_string()),
        ("tampered claims", {
            let p = sign(&key, &header(&key), &claims("j1"));
            let parts: Vec<&str> = p.split('.').collect();
            let forged = B64.encode(json!({"jti": "j1", "htm": "GET", "htu": URL, "iat": NOW + 1}).to_string());
            format!("{}.{forged}.{}", parts[0], parts[2])
        }),
    ];
    for (what, proof) in cases {
        assert!(check(&proof).is_err(), "{what} was accepted");
    }
}

#[test]
fn a_proof_is_used_once() {
    let key = client_key(JwtAlgorithm::EdDSA);
    let proof = sign(&key, &header(&key), &claims("once"));
    let cache = ReplayCache::new(100);
    assert!(verify(&proof, &expected(None), &cache).is_ok());
    assert_eq!(
        verify(&proof, &expected(None), &cache),
        Err(ProofError::Replay(ReplayError::Replayed))
    );
}

#[test]
fn urls_compare_in_normal_form() {
    assert_eq!(normal_url("HTTPS://GW.example:443/api/x?q=1#f").as_deref(), Some(URL));
    assert_eq!(normal_url("http://gw:80").as_deref(), Some("http://gw/"));
    assert_eq!(normal_url("http://gw:8080/a").as_deref(), Some("http://gw:8080/a"));
    assert_eq!(normal_url("ftp://gw/a"), None);
    assert_eq!(normal_url("/api/x"), None);
    assert_eq!(normal_url("https://user@gw/a"), None);
}
