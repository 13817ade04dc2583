//! JWT access tokens (RFC 9068): the signing key, parsed once, and the JWKS that publishes it.
//!
//! Signing goes straight through aws-lc-rs key pairs kept parsed in memory: jsonwebtoken's
//! `EncodingKey` re-parses an RSA key on every `encode` (about 1.4 ms per RS256 token).

use std::path::Path;

pub use crate::domain::format::JwtAlgorithm;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey, VerificationAlgorithm,
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Why the signing key could not be loaded, generated or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("key file {path} is not a usable {alg} private key (PEM, PKCS#8{extra}): {reason}")]
    Rejected {
        path: String,
        alg: &'static str,
        extra: &'static str,
        reason: String,
    },
    #[error("oauth.jwt_previous_keys: key file {path}: {reason}")]
    Previous { path: String, reason: String },
    #[error("key generation failed")]
    Generate,
    #[error("signing failed")]
    Sign,
}

enum SignerKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// The claims of an RFC 9068 access token.
#[derive(Debug, Serialize)]
pub struct AccessClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    /// RFC 9068 section 2.2: the audience(s); a string for one, an array for several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    /// RFC 9449 section 6.1: the DPoP key the token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<serde_json::Value>,
    pub iat: u64,
    pub exp: u64,
    pub jti: &'a str,
}

/// A parsed signing key with its precomputed JOSE header and public JWK.
pub struct JwtSigner {
    alg: JwtAlgorithm,
    kid: String,
    header_b64: String,
    key: SignerKey,
    rng: SystemRandom,
    jwk: serde_json::Value,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigner")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish()
    }
}

impl JwtSigner {
    /// Loads the PEM key at `path`, or generates one there (mode 0600) when the file is absent.
    pub fn load_or_generate(path: &Path, alg: JwtAlgorithm) -> Result<JwtSigner, KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            let der = generate_pkcs8(alg)?;
            let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
            crate::fsutil::write_private(path, pem.as_bytes()).map_err(io)?;
            log::info!("generated a new {} signing key at {}", alg.as_str(), path.display());
        }
        let text = std::fs::read(path).map_err(io)?;
        JwtSigner::from_pem(&text, alg).map_err(|reason| KeyError::Rejected {
            path: path.display().to_string(),
            alg: alg.as_str(),
            extra: if alg == JwtAlgorithm::RS256 { " or PKCS#1" } else { "" },
            reason,
        })
    }

    /// A new key for `alg`, kept in memory only (an engine without files, as unit tests use).
    pub fn generate(alg: JwtAlgorithm) -> Result<JwtSigner, KeyError> {
        let der = generate_pkcs8(alg)?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
        JwtSigner::from_pem(pem.as_bytes(), alg).map_err(|_| KeyError::Generate)
    }

    /// Parses a PEM private key for `alg`.
    pub fn from_pem(text: &[u8], alg: JwtAlgorithm) -> Result<JwtSigner, String> {
        let block = pem::parse(text).map_err(|e| e.to_string())?;
        let der = block.contents();
        let key = match alg {
            JwtAlgorithm::RS256 => {
                let kp = if block.tag() == "RSA PRIVATE KEY" {
                    RsaKeyPair::from_der(der)
                } else {
                    RsaKeyPair::from_pkcs8(der)
                };
                SignerKey::Rsa(kp.map_err(|e| e.to_string())?)
            }
            JwtAlgorithm::ES256 => SignerKey::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(|e| e.to_string())?,
            ),
            JwtAlgorithm::EdDSA => {
                SignerKey::Ed(Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| e.to_string())?)
            }
        };
        let jwk_members = public_jwk_members(&key);
        let kid = thumbprint(&jwk_members);
        let mut jwk = jwk_members;
        if let serde_json::Value::Object(m) = &mut jwk {
            m.insert("kid".into(), kid.clone().into());
            m.insert("use".into(), "sig".into());
            m.insert("alg".into(), alg.as_str().into());
        }
        let header = serde_json::json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": kid});
        let header_b64 = B64.encode(header.to_string());
        Ok(JwtSigner {
            alg,
            kid,
            header_b64,
            key,
            rng: SystemRandom::new(),
            jwk,
        })
    }

    pub fn algorithm(&self) -> JwtAlgorithm {
        self.alg
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Whether `token` is a compact JWS with this key's header and a valid signature by it.
    pub fn verifies(&self, token: &str) -> bool {
        let Some(rest) = token.strip_prefix(&*self.header_b64).and_then(|r| r.strip_prefix('.')) else {
            return false;
        };
        let Some((payload, signature)) = rest.split_once('.') else {
            return false;
        };
        let Ok(signature) = B64.decode(signature) else {
            return false;
        };
        let signed = &token.as_bytes()[..self.header_b64.len() + 1 + payload.len()];
        let (alg, public): (&dyn VerificationAlgorithm, &[u8]) = match &self.key {
            SignerKey::Rsa(kp) => (&RSA_PKCS1_2048_8192_SHA256, kp.public_key().as_ref()),
            SignerKey::Ec(kp) => (&ECDSA_P256_SHA256_FIXED, kp.public_key().as_ref()),
            SignerKey::Ed(kp) => (&ED25519, kp.public_key().as_ref()),
        };
        UnparsedPublicKey::new(alg, public).verify(signed, &signature).is_ok()
    }

    /// Signs `claims` into a compact JWS with header `{alg, typ: "at+jwt", kid}`.
    pub fn sign(&self, claims: &AccessClaims<'_>) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        self.sign_jws(&self.header_b64, &payload)
    }

    /// Signs `payload` under any `header` (a DPoP proof's, a client assertion's) with this key:
    /// what a client of the gateway signs, as the project's tests and benches do.
    pub fn sign_with_header(&self, header: &serde_json::Value, payload: &[u8]) -> Result<String, KeyError> {
        self.sign_jws(&B64.encode(header.to_string()), payload)
    }

    /// `header_b64.payload.signature`.
    fn sign_jws(&self, header_b64: &str, payload: &[u8]) -> Result<String, KeyError> {
        let mut out = String::with_capacity(header_b64.len() + payload.len() * 4 / 3 + 400);
        out.push_str(header_b64);
        out.push('.');
        B64.encode_string(payload, &mut out);
        let signature = match &self.key {
            SignerKey::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &self.rng, out.as_bytes(), &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                sig
            }
            SignerKey::Ec(kp) => kp
                .sign(&self.rng, out.as_bytes())
                .map_err(|_| KeyError::Sign)?
                .as_ref()
                .to_vec(),
            SignerKey::Ed(kp) => kp.sign(out.as_bytes()).as_ref().to_vec(),
        };
        out.push('.');
        B64.encode_string(signature, &mut out);
        Ok(out)
    }

    /// This key's public JWK.
    pub fn jwk(&self) -> &serde_json::Value {
        &self.jwk
    }

    /// The RFC 7517 JWK Set publishing this key, then `previous` (public JWKs of earlier keys,
    /// from [`previous_key_jwk`]; one equal to this key, or listed twice, is published once).
    pub fn jwks(&self, previous: &[serde_json::Value]) -> serde_json::Value {
        let mut keys = vec![self.jwk.clone()];
        for jwk in previous {
            if !keys.iter().any(|k| k.get("kid") == jwk.get("kid")) {
                keys.push(jwk.clone());
            }
        }
        serde_json::json!({ "keys": keys })
    }
}

/// The public JWK of an earlier signing key (`oauth.jwt_previous_keys`), to publish beside the
/// current one after a rotation: resource servers that verify signatures keep accepting the
/// tokens signed before it until they expire. The file is the old key's PEM, in any form
/// `oauth.jwt_signing_key` takes; its algorithm comes from the key. Only public members are
/// published, and the private key is dropped once read.
pub fn previous_key_jwk(path: &Path) -> Result<serde_json::Value, KeyError> {
    previous_key(path).map(|signer| signer.jwk)
}

/// An earlier signing key (`oauth.jwt_previous_keys`), of whichever algorithm it is: its public
/// half is published, and in a cluster a token another node still signs with it is checked with it.
pub fn previous_key(path: &Path) -> Result<JwtSigner, KeyError> {
    let refused = |reason: String| KeyError::Previous {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read(path).map_err(|e| refused(format!("cannot read it: {e}")))?;
    [JwtAlgorithm::RS256, JwtAlgorithm::ES256, JwtAlgorithm::EdDSA]
        .into_iter()
        .find_map(|alg| JwtSigner::from_pem(&text, alg).ok())
        .ok_or_else(|| refused("not an RS256, ES256 or EdDSA private key (PEM, PKCS#8 or PKCS#1)".into()))
}

fn generate_pkcs8(alg: JwtAlgorithm) -> Result<Vec<u8>, KeyError> {
    let rng = SystemRandom::new();
    match alg {
        JwtAlgorithm::RS256 => {
            let kp = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
            let der: Pkcs8V1Der<'_> = kp.as_der().map_err(|_| KeyError::Generate)?;
            Ok(der.as_ref().to_vec())
        }
        JwtAlgorithm::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyError::Generate),
        JwtAlgorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyError::Generate),
    }
}

/// The required public members of the JWK, in RFC 7638 lexicographic order.
fn public_jwk_members(key: &SignerKey) -> serde_json::Value {
    match key {
        SignerKey::Rsa(kp) => {
            let pk = kp.public_key();
            serde_json::json!({
                "e": B64.encode(pk.exponent().big_endian_without_leading_zero()),
                "kty": "RSA",
                "n": B64.encode(pk.modulus().big_endian_without_leading_zero()),
            })
        }
        SignerKey::Ec(kp) => {
            // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
            let point = kp.public_key().as_ref();
            let (x, y) = point
                .get(1..)
                .unwrap_or_default()
                .split_at(32.min(point.len().saturating_sub(1)));
            serde_json::json!({"crv": "P-256", "kty": "EC", "x": B64.encode(x), "y": B64.encode(y)})
        }
        SignerKey::Ed(kp) => {
            serde_json::json!({"crv": "Ed25519", "kty": "OKP", "x": B64.encode(kp.public_key().as_ref())})
        }
    }
}

/// RFC 7638 JWK thumbprint: SHA-256 of the required members serialised without white space.
fn thumbprint(members: &serde_json::Value) -> String {
    // serde_json's map keeps keys sorted, which is the order RFC 7638 asks for.
    B64.encode(Sha256::digest(members.to_string().as_bytes()))
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
