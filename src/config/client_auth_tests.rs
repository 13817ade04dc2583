//! A client's authentication method and keys, as the config file gives them.

use std::path::Path;

use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use super::*;
use crate::config::{parse_str, Config, ConfigError};
use crate::tokens::jwt::{JwtAlgorithm, JwtSigner};

const HASH: &str = "cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf";

/// The public JWK of a new key of `alg`, with its `kid`.
fn jwk(alg: JwtAlgorithm) -> Value {
    JwtSigner::generate(alg).unwrap().jwk().clone()
}

fn client(lines: &str) -> String {
    format!("[[clients]]\nid = \"c\"\ngrant_types = [\"client_credentials\"]\n{lines}\n")
}

fn inline(keys: &[Value]) -> String {
    format!(
        "token_endpoint_auth_method = \"private_key_jwt\"\njwks = '{}'",
        json!({ "keys": keys })
    )
}

fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
    parse_str(text, base)
}

fn err(lines: &str) -> String {
    parse(&client(lines), Path::new("/base")).unwrap_err().to_string()
}

#[test]
fn a_secret_client_may_use_either_way_unless_one_is_set() {
    let c = parse(&client(&format!("secret_sha256 = \"{HASH}\"")), Path::new("/b")).unwrap();
    assert!(matches!(c.clients["c"].auth, ClientAuth::Secret { method: None, .. }));
    for (name, method) in [
        ("client_secret_basic", SecretMethod::Basic),
        ("client_secret_post", SecretMethod::Post),
    ] {
        let text = client(&format!(
            "secret_sha256 = \"{HASH}\"\ntoken_endpoint_auth_method = \"{name}\""
        ));
        let c = parse(&text, Path::new("/b")).unwrap();
        match &c.clients["c"].auth {
            ClientAuth::Secret { method: Some(m), .. } => assert_eq!(*m, method),
            other => panic!("{other:?}"),
        }
    }
    let e = err(&format!(
        "secret_sha256 = \"{HASH}\"\ntoken_endpoint_auth_method = \"client_secret_jwt\""
    ));
    assert!(e.contains("clients[0].token_endpoint_auth_method"), "{e}");
    let e = err("");
    assert!(e.contains("clients[0].secret_sha256") && e.contains("required"), "{e}");
}

#[test]
fn private_key_jwt_takes_public_keys_of_each_algorithm_inline() {
    let mut rsa = jwk(JwtAlgorithm::RS256);
    rsa.as_object_mut().unwrap().remove("alg");
    let keys = [rsa, jwk(JwtAlgorithm::ES256), jwk(JwtAlgorithm::EdDSA)];
    let c = parse(&client(&inline(&keys)), Path::new("/b")).unwrap();
    let ClientAuth::PrivateKeyJwt(set) = &c.clients["c"].auth else {
        panic!("not private_key_jwt");
    };
    assert_eq!(set.len(), 3);
    let kid = |i: usize| keys[i]["kid"].as_str().unwrap();
    // An RSA key without "alg" checks RS256 and PS256; the kid selects.
    assert_eq!(set.candidates(Some(kid(0)), Algorithm::PS256).count(), 1);
    assert_eq!(set.candidates(Some(kid(0)), Algorithm::ES256).count(), 0);
    assert_eq!(set.candidates(Some("other"), Algorithm::RS256).count(), 0);
    assert_eq!(set.candidates(None, Algorithm::ES256).count(), 1);
    assert_eq!(set.candidates(None, Algorithm::EdDSA).count(), 1);
    assert_eq!(
        set.candidates(None, Algorithm::HS256).count(),
        0,
        "no key checks an HMAC"
    );
}

#[test]
fn keys_that_are_private_symmetric_or_unusable_are_refused_naming_the_key() {
    let mut private = jwk(JwtAlgorithm::EdDSA);
    private["d"] = "AAAA".into();
    let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
    let small = json!({"kty": "RSA", "n": "AQAB".repeat(40), "e": "AQAB"});
    let mut p384 = jwk(JwtAlgorithm::ES256);
    p384["crv"] = "P-384".into();
    let mut hs = jwk(JwtAlgorithm::RS256);
    hs["alg"] = "HS256".into();
    let mut enc = jwk(JwtAlgorithm::ES256);
    enc["use"] = "enc".into();
    for (key, why) in [
        (private, "private member \"d\""),
        (oct, "symmetric"),
        (small, "2048 to 8192 bits"),
        (p384, "P-384"),
        (hs, "HS256"),
        (enc, "\"sig\""),
        (
            json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}),
            "32 bytes",
        ),
        (json!("a string"), "JSON object"),
    ] {
        let e = err(&inline(&[jwk(JwtAlgorithm::ES256), key]));
        assert!(
            e.contains("clients[0].jwks") && e.contains("keys[1]") && e.contains(why),
            "{e}"
        );
    }
    let e = err(&inline(&[]));
    assert!(e.contains("1 to 20 keys"), "{e}");
    let twice = jwk(JwtAlgorithm::ES256);
    let e = err(&inline(&[twice.clone(), twice]));
    assert!(e.contains("used twice"), "{e}");
    let e = err("token_endpoint_auth_method = \"private_key_jwt\"\njwks = 'not json'");
    assert!(e.contains("clients[0].jwks: not a JSON JWK Set"), "{e}");
}

#[test]
fn one_method_per_client() {
    let keys = inline(&[jwk(JwtAlgorithm::ES256)]);
    let e = err(&format!("{keys}\nsecret_sha256 = \"{HASH}\""));
    assert!(
        e.contains("clients[0].secret_sha256") && e.contains("has no secret"),
        "{e}"
    );
    let e = err("token_endpoint_auth_method = \"private_key_jwt\"");
    assert!(e.contains("clients[0].jwks_file") && e.contains("public keys"), "{e}");
    let e = err(&format!("secret_sha256 = \"{HASH}\"\njwks_file = \"k.json\""));
    assert!(e.contains("clients[0].jwks_file") && e.contains("secret"), "{e}");
    let e = err(&format!("{keys}\njwks_file = \"k.json\""));
    assert!(e.contains("clients[0].jwks") && e.contains("keep one"), "{e}");
}

#[test]
fn a_jwks_file_is_read_relative_to_the_config_and_named_when_broken() {
    let dir = tempfile::tempdir().unwrap();
    let text = client("token_endpoint_auth_method = \"private_key_jwt\"\njwks_file = \"keys/c.json\"");
    let e = parse(&text, dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("clients[0].jwks_file: cannot read") && e.contains("c.json"),
        "{e}"
    );
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let file = dir.path().join("keys/c.json");
    std::fs::write(&file, json!({"keys": [jwk(JwtAlgorithm::RS256)]}).to_string()).unwrap();
    let c = parse(&text, dir.path()).unwrap();
    assert!(matches!(&c.clients["c"].auth, ClientAuth::PrivateKeyJwt(k) if k.len() == 1));
    let mut private = jwk(JwtAlgorithm::RS256);
    private["p"] = "AAAA".into();
    std::fs::write(&file, json!({"keys": [private]}).to_string()).unwrap();
    let e = parse(&text, dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("clients[0].jwks_file") && e.contains("c.json") && e.contains("\"p\""),
        "{e}"
    );
}
