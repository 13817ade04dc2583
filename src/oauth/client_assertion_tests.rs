//! The checks of a client assertion, on JWTs signed here with keys made for the test.

use std::path::Path;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;
use crate::config::model::ClientKeys;
use crate::oauth::client_auth;
use crate::oauth::form;
use crate::tokens::jwt::{JwtAlgorithm, JwtSigner};

const ENDPOINT: &str = "https://as.example/oauth2/token";
const ISSUER: &str = "https://as.example";

/// A key pair made for the test: the private half to sign with, the public JWK to configure.
struct TestKey {
    private: EncodingKey,
    jwk: Value,
}

impl TestKey {
    fn new(alg: JwtAlgorithm) -> TestKey {
        let rng = SystemRandom::new();
        let der = match alg {
            JwtAlgorithm::RS256 => {
                let kp = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
                let der: Pkcs8V1Der<'_> = kp.as_der().unwrap();
                der.as_ref().to_vec()
            }
            JwtAlgorithm::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .unwrap()
                .as_ref()
                .to_vec(),
            JwtAlgorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref().to_vec(),
        };
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
        let jwk = JwtSigner::from_pem(pem.as_bytes(), alg).unwrap().jwk().clone();
        let private = match alg {
            JwtAlgorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            JwtAlgorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            JwtAlgorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        }
        .unwrap();
        TestKey { private, jwk }
    }

    fn kid(&self) -> &str {
        self.jwk["kid"].as_str().unwrap()
    }

    /// `claims` signed with `alg`, the header naming `kid`.
    fn sign(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_string);
        encode(&header, claims, &self.private).unwrap()
    }
}

fn now() -> u64 {
    crate::tokens::record::now_ms() / 1000
}

fn set(keys: &[&Value]) -> ClientKeys {
    ClientKeys::parse(&json!({ "keys": keys }).to_string()).unwrap()
}

/// Good claims for client `c`, with a fresh `jti`.
fn claims() -> Value {
    let n = now();
    let jti = B64.encode(rand::random::<[u8; 12]>());
    json!({"iss": "c", "sub": "c", "aud": ENDPOINT, "exp": n + 60, "iat": n, "jti": jti})
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(name);
    } else {
        claims[name] = value;
    }
    claims
}

fn check(jwt: String, keys: &ClientKeys, replay: &ReplayCache) -> Result<(), AssertionError> {
    let assertion = ClientAssertion {
        client_id: "c".into(),
        jwt,
    };
    verify(&assertion, keys, &[ENDPOINT, ISSUER], replay, now()).map(drop)
}

#[test]
fn each_algorithm_verifies_with_or_without_a_kid() {
    let replay = ReplayCache::default();
    let rsa = TestKey::new(JwtAlgorithm::RS256);
    let ec = TestKey::new(JwtAlgorithm::ES256);
    let ed = TestKey::new(JwtAlgorithm::EdDSA);
    let mut rsa_jwk = rsa.jwk.clone();
    rsa_jwk.as_object_mut().unwrap().remove("alg");
    let keys = set(&[&rsa_jwk, &ec.jwk, &ed.jwk]);
    for (key, alg) in [
        (&rsa, Algorithm::RS256),
        (&rsa, Algorithm::PS256),
        (&ec, Algorithm::ES256),
        (&ed, Algorithm::EdDSA),
    ] {
        assert_eq!(
            check(key.sign(alg, Some(key.kid()), &claims()), &keys, &replay),
            Ok(()),
            "{alg:?}"
        );
        assert_eq!(
            check(key.sign(alg, None, &claims()), &keys, &replay),
            Ok(()),
            "{alg:?} without kid"
        );
    }
    // The issuer as the audience, or a list naming the token endpoint.
    let as_issuer = with(claims(), "aud", ISSUER.into());
    assert_eq!(
        check(ec.sign(Algorithm::ES256, None, &as_issuer), &keys, &replay),
        Ok(())
    );
    let listed = with(claims(), "aud", json!(["https://elsewhere", ENDPOINT]));
    assert_eq!(check(ec.sign(Algorithm::ES256, None, &listed), &keys, &replay), Ok(()));
    assert_eq!(replay.len(), 10);
}

#[test]
fn unsigned_hmac_and_foreign_keys_are_refused() {
    let replay = ReplayCache::default();
    let key = TestKey::new(JwtAlgorithm::RS256);
    let keys = set(&[&key.jwk]);
    // alg "none", with and without a signature part.
    let body = B64.encode(claims().to_string());
    for header in [json!({"alg": "none"}), json!({"alg": "none", "kid": key.kid()})] {
        let head = B64.encode(header.to_string());
        assert_eq!(
            check(format!("{head}.{body}."), &keys, &replay),
            Err(AssertionError::Algorithm)
        );
    }
    // HS256 keyed with the public key's own bytes (the classic algorithm confusion).
    let n = B64.decode(key.jwk["n"].as_str().unwrap()).unwrap();
    for secret in [n, key.jwk.to_string().into_bytes()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid().into());
        let forged = encode(&header, &claims(), &EncodingKey::from_secret(&secret)).unwrap();
        assert_eq!(check(forged, &keys, &replay), Err(AssertionError::Algorithm));
    }
    // A key not in the set: under the set's kid, under its own, and without one.
    let stranger = TestKey::new(JwtAlgorithm::RS256);
    let forged = stranger.sign(Algorithm::RS256, Some(key.kid()), &claims());
    assert_eq!(check(forged, &keys, &replay), Err(AssertionError::Signature));
    let forged = stranger.sign(Algorithm::RS256, Some(stranger.kid()), &claims());
    assert_eq!(check(forged, &keys, &replay), Err(AssertionError::NoKey));
    let forged = stranger.sign(Algorithm::RS256, None, &claims());
    assert_eq!(check(forged, &keys, &replay), Err(AssertionError::Signature));
    // An algorithm the key is not for.
    let ed = TestKey::new(JwtAlgorithm::EdDSA);
    let forged = ed.sign(Algorithm::EdDSA, None, &claims());
    assert_eq!(check(forged, &keys, &replay), Err(AssertionError::NoKey));
    // A tampered payload.
    let good = key.sign(Algorithm::RS256, None, &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], B64.encode(claims().to_string()), parts[2]);
    assert_eq!(check(tampered, &keys, &replay), Err(AssertionError::Signature));
    for junk in ["", "a.b", "a.b.c", "...."] {
        assert_eq!(
            check(junk.into(), &keys, &replay),
            Err(AssertionError::Algorithm),
            "{junk:?}"
        );
    }
    assert!(replay.is_empty(), "nothing refused was remembered");
}

#[test]
fn each_claim_is_checked() {
    let replay = ReplayCache::default();
    let key = TestKey::new(JwtAlgorithm::ES256);
    let keys = set(&[&key.jwk]);
    let n = now();
    let long_jti = "j".repeat(MAX_JTI_BYTES + 1);
    for (name, value) in [
        ("iss", json!("other")),
        ("iss", json!(["c"])),
        ("iss", Value::Null),
        ("sub", json!("other")),
        ("sub", Value::Null),
        ("aud", json!("https://as.example/oauth2/revoke")),
        ("aud", json!(["https://elsewhere"])),
        ("aud", Value::Null),
        ("exp", Value::Null),
        ("exp", json!("soon")),
        ("exp", json!(n - LEEWAY_SECS - 5)),
        ("exp", json!(n + MAX_LIFETIME_SECS + LEEWAY_SECS + 5)),
        ("nbf", json!(n + LEEWAY_SECS + 60)),
        ("iat", json!(n + LEEWAY_SECS + 60)),
        ("jti", Value::Null),
        ("jti", json!("")),
        ("jti", json!(long_jti)),
        ("jti", json!(7)),
    ] {
        let jwt = key.sign(Algorithm::ES256, None, &with(claims(), name, value.clone()));
        assert!(
            matches!(check(jwt, &keys, &replay), Err(AssertionError::Claims(_))),
            "{name} = {value}"
        );
    }
    // Within the leeway either way.
    for (name, value) in [
        ("exp", n - LEEWAY_SECS + 5),
        ("nbf", n + LEEWAY_SECS - 5),
        ("iat", n + 5),
    ] {
        let jwt = key.sign(Algorithm::ES256, None, &with(claims(), name, value.into()));
        assert_eq!(check(jwt, &keys, &replay), Ok(()), "{name}");
    }
}

#[test]
fn an_assertion_authenticates_once_and_a_full_cache_refuses() {
    let replay = ReplayCache::new(2);
    let key = TestKey::new(JwtAlgorithm::EdDSA);
    let keys = set(&[&key.jwk]);
    let jwt = key.sign(Algorithm::EdDSA, None, &claims());
    assert_eq!(check(jwt.clone(), &keys, &replay), Ok(()));
    assert_eq!(check(jwt.clone(), &keys, &replay), Err(AssertionError::Replayed));
    // Another signature over the same jti (a new signature of the same claims) is a replay too.
    let same_jti = with(claims(), "jti", "fixed".into());
    assert_eq!(
        check(key.sign(Algorithm::EdDSA, None, &same_jti), &keys, &replay),
        Ok(())
    );
    let again = with(same_jti, "exp", (now() + 100).into());
    assert_eq!(
        check(key.sign(Algorithm::EdDSA, None, &again), &keys, &replay),
        Err(AssertionError::Replayed)
    );
    assert_eq!(
        check(key.sign(Algorithm::EdDSA, None, &claims()), &keys, &replay),
        Err(AssertionError::CacheFull)
    );
    let e = OAuthError::from(AssertionError::CacheFull);
    assert_eq!(e.status(), 503, "fail closed, and say so");
    assert_eq!(OAuthError::from(AssertionError::Replayed), OAuthError::InvalidClient);
}

const TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";

#[test]
fn the_form_names_the_client_by_the_assertion_or_by_a_matching_client_id() {
    let key = TestKey::new(JwtAlgorithm::EdDSA);
    let jwt = key.sign(Algorithm::EdDSA, None, &claims());
    let form = |extra: &str| {
        form::parse(format!("client_assertion_type={TYPE}&client_assertion={jwt}{extra}").as_bytes()).unwrap()
    };
    let a = presented(&form("")).unwrap();
    assert_eq!(a.client_id, "c");
    assert!(!format!("{a:?}").contains(&jwt), "the assertion is never shown");
    assert_eq!(presented(&form("&client_id=c")).unwrap().client_id, "c");
    assert_eq!(presented(&form("&client_id=d")).unwrap_err(), OAuthError::InvalidClient);
    let other_type = form::parse(format!("client_assertion_type=saml&client_assertion={jwt}").as_bytes()).unwrap();
    assert_eq!(presented(&other_type).unwrap_err(), OAuthError::InvalidClient);
    let alone = form::parse(format!("client_assertion={jwt}").as_bytes()).unwrap();
    assert!(matches!(presented(&alone), Err(OAuthError::InvalidRequest(_))));
    let no_sub = key.sign(Algorithm::EdDSA, None, &with(claims(), "sub", Value::Null));
    let f = form::parse(format!("client_assertion_type={TYPE}&client_assertion={no_sub}").as_bytes()).unwrap();
    assert_eq!(presented(&f).unwrap_err(), OAuthError::InvalidClient);
    let huge = "a".repeat(MAX_ASSERTION_BYTES + 1);
    let f = form::parse(format!("client_assertion_type={TYPE}&client_assertion={huge}").as_bytes()).unwrap();
    assert_eq!(presented(&f).unwrap_err(), OAuthError::InvalidClient);
}

/// A client uses the method it is configured for, and no other.
#[test]
fn a_client_authenticates_only_by_its_own_method() {
    let key = TestKey::new(JwtAlgorithm::ES256);
    let hash = client_auth::hash_secret("s3cret");
    let text = format!(
        "[oauth]\nissuer = \"{ISSUER}\"\n\
         [[clients]]\nid = \"c\"\ngrant_types = [\"client_credentials\"]\n\
         token_endpoint_auth_method = \"private_key_jwt\"\njwks = '{}'\n\
         [[clients]]\nid = \"s\"\ngrant_types = [\"client_credentials\"]\nsecret_sha256 = \"{hash}\"\n\
         [[clients]]\nid = \"b\"\ngrant_types = [\"client_credentials\"]\nsecret_sha256 = \"{hash}\"\n\
         token_endpoint_auth_method = \"client_secret_basic\"\n",
        json!({"keys": [&key.jwk]})
    );
    let config = crate::config::parse_str(&text, Path::new("/b")).unwrap();
    let replay = ReplayCache::default();
    let run = |auth: Option<String>, body: String| -> Result<String, OAuthError> {
        let f = form::parse(body.as_bytes()).unwrap();
        let presented = client_auth::credentials(auth.as_deref().map(str::as_bytes), &f)?;
        client_auth::verify(&config, &presented, &replay, now()).map(|(c, _)| c.id.clone())
    };
    let basic = |id: &str| {
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:s3cret"))
        ))
    };
    let assertion = |sub: &str| {
        let jwt = key.sign(
            Algorithm::ES256,
            None,
            &with(with(claims(), "sub", sub.into()), "iss", sub.into()),
        );
        format!("client_assertion_type={TYPE}&client_assertion={jwt}")
    };
    assert_eq!(run(None, assertion("c")), Ok("c".into()));
    assert_eq!(run(basic("s"), String::new()), Ok("s".into()));
    assert_eq!(run(None, "client_id=s&client_secret=s3cret".into()), Ok("s".into()));
    assert_eq!(run(basic("b"), String::new()), Ok("b".into()));
    // client_secret_basic only: the same secret in the form is refused.
    assert_eq!(
        run(None, "client_id=b&client_secret=s3cret".into()),
        Err(OAuthError::InvalidClient)
    );
    // A private_key_jwt client has no secret to send.
    assert_eq!(run(basic("c"), String::new()), Err(OAuthError::InvalidClient));
    // A secret client's assertion, signed by a key the gateway knows (the other client's).
    assert_eq!(run(None, assertion("s")), Err(OAuthError::InvalidClient));
    assert_eq!(run(None, assertion("nobody")), Err(OAuthError::InvalidClient));
}
