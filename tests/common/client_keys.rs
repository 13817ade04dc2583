//! Client key pairs for `private_key_jwt` tests: one held by Python's PyJWT (a real client
//! library, which `scripts/deps.sh` installs), one by Rust (jsonwebtoken); each signs client
//! assertions and gives its public JWK for the gateway's config.

use std::path::Path;
use std::process::Command;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::Value;
use tokengate::tokens::jwt::{JwtAlgorithm, JwtSigner};

/// The client side in Python: `keygen RSA|EC <pem path> <kid>` writes a private key and prints
/// its public and private JWKs; `sign <pem path> <alg> <kid> <client id> <aud>` prints an
/// assertion as a client library makes it (fresh `jti`, `exp` a minute ahead).
const PYTHON: &str = r#"
import json, sys, time, uuid
import jwt
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

if sys.argv[1] == "keygen":
    kind, path, kid = sys.argv[2:5]
    if kind == "RSA":
        key, alg = rsa.generate_private_key(public_exponent=65537, key_size=2048), RSAAlgorithm
    else:
        key, alg = ec.generate_private_key(ec.SECP256R1()), ECAlgorithm
    public = json.loads(alg.to_jwk(key.public_key()))
    public["kid"] = kid
    private = json.loads(alg.to_jwk(key))
    private["kid"] = kid
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    open(path, "wb").write(pem)
    print(json.dumps({"public": public, "private": private}))
else:
    path, alg, kid, client_id, aud = sys.argv[2:7]
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60,
              "jti": str(uuid.uuid4())}
    print(jwt.encode(claims, open(path, "rb").read(), algorithm=alg, headers={"kid": kid}))
"#;

pub fn python(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PYTHON)
        .args(args)
        .output()
        .expect("python3 is needed for this test (scripts/deps.sh installs PyJWT and cryptography)");
    assert!(
        out.status.success(),
        "python3 {args:?} failed (scripts/deps.sh installs PyJWT and cryptography): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A key pair held by PyJWT's side: its PEM file and its JWKs.
pub struct PyKey {
    pem: String,
    kid: String,
    pub public: Value,
    pub private: Value,
}

impl PyKey {
    pub fn new(dir: &Path, kind: &str, kid: &str) -> PyKey {
        let pem = dir.join(format!("{kid}.pem")).display().to_string();
        let out: Value = serde_json::from_str(&python(&["keygen", kind, &pem, kid])).unwrap();
        PyKey {
            pem,
            kid: kid.into(),
            public: out["public"].clone(),
            private: out["private"].clone(),
        }
    }

    pub fn sign(&self, alg: &str, client_id: &str, aud: &str) -> String {
        python(&["sign", &self.pem, alg, &self.kid, client_id, aud])
    }
}

/// A key pair held by the Rust side (Ed25519), signing any claims.
pub struct RustKey {
    private: EncodingKey,
    pub public: Value,
}

impl RustKey {
    pub fn generate() -> RustKey {
        let der = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
        RustKey {
            private: EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
            public: JwtSigner::from_pem(pem.as_bytes(), JwtAlgorithm::EdDSA)
                .unwrap()
                .jwk()
                .clone(),
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = self.public["kid"].as_str().map(str::to_string);
        encode(&header, claims, &self.private).unwrap()
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
