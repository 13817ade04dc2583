//! The client's side of DPoP (RFC 9449 section 4): a key pair that signs proofs. The gateway
//! never makes proofs; a Rust client of it does, and so do the project's tests, benches and the
//! load harness's proof writer (`examples/dpop_proofs.rs`).

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::domain::format::JwtAlgorithm;
use crate::tokens::jwt::{JwtSigner, KeyError};

/// A client's DPoP key: its private half signs, its public JWK rides in every proof's header.
pub struct ProofKey {
    signer: JwtSigner,
    /// The public JWK as a proof carries it: the key's members only (no `kid`, `alg`, `use`).
    jwk: Value,
}

/// What a proof says of the request it goes with.
#[derive(Debug, Clone, Copy)]
pub struct ProofClaims<'a> {
    /// `htm`: the request's method.
    pub method: &'a str,
    /// `htu`: the request's URL, without query and fragment.
    pub url: &'a str,
    /// `iat`: when the proof was made, in seconds since the epoch.
    pub iat: u64,
    /// `jti`: the proof's id; a server accepts each once.
    pub jti: &'a str,
    /// The access token the request presents (its hash becomes `ath`); none at the token endpoint.
    pub access_token: Option<&'a str>,
    /// A nonce the server asked for (`DPoP-Nonce`).
    pub nonce: Option<&'a str>,
}

impl ProofKey {
    /// A new key, in memory only.
    pub fn generate(alg: JwtAlgorithm) -> Result<ProofKey, KeyError> {
        JwtSigner::generate(alg).map(ProofKey::of)
    }

    /// The PEM key at `path`, generated there when the file is absent.
    pub fn load_or_generate(path: &Path, alg: JwtAlgorithm) -> Result<ProofKey, KeyError> {
        JwtSigner::load_or_generate(path, alg).map(ProofKey::of)
    }

    fn of(signer: JwtSigner) -> ProofKey {
        let mut jwk = signer.jwk().clone();
        if let Value::Object(members) = &mut jwk {
            for m in ["kid", "alg", "use"] {
                members.remove(m);
            }
        }
        ProofKey { signer, jwk }
    }

    /// The public JWK, as proofs carry it.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// The JOSE header of this key's proofs: `{typ: "dpop+jwt", alg, jwk}`.
    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.signer.algorithm().as_str(), "jwk": self.jwk})
    }

    /// A proof for one request.
    pub fn proof(&self, claims: &ProofClaims<'_>) -> Result<String, KeyError> {
        self.sign(&self.header(), &proof_claims(claims))
    }

    /// Signs any header and claims with this key (a test's hostile proofs among them).
    pub fn sign(&self, header: &Value, claims: &Value) -> Result<String, KeyError> {
        self.signer.sign_with_header(header, claims.to_string().as_bytes())
    }
}

/// The claims of a proof: `jti`, `htm`, `htu`, `iat`, and `ath` and `nonce` when there are such.
pub fn proof_claims(c: &ProofClaims<'_>) -> Value {
    let mut claims = json!({"jti": c.jti, "htm": c.method, "htu": c.url, "iat": c.iat});
    if let Some(token) = c.access_token {
        claims["ath"] = B64.encode(Sha256::digest(token.as_bytes())).into();
    }
    if let Some(nonce) = c.nonce {
        claims["nonce"] = nonce.into();
    }
    claims
}
