//! DPoP proofs (RFC 9449 section 4): a JWT the client signs with its own key for one request.
//! Checked here, with no knowledge of HTTP framing: the token endpoint and the gateway pass the
//! method, the URL and (at the gateway) the access token. A valid proof yields the thumbprint of
//! its key, which a token is bound to at issuance and checked against on every use.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::dpop_nonce::Nonces;
use super::replay::{ReplayCache, ReplayError};
use crate::domain::thumbprint::Thumbprint;

/// The proof algorithms accepted (`dpop_signing_alg_values_supported`): asymmetric only.
pub const ALGORITHMS: &[&str] = &["ES256", "EdDSA", "RS256", "PS256"];
/// Longest proof accepted.
pub const MAX_PROOF_BYTES: usize = 8192;
/// How far in the future a proof's `iat` may be (clocks differ a little).
pub const FUTURE_LEEWAY_SECS: u64 = 5;
/// JWK members that only a private key has: a proof carrying one is refused.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a proof was refused: `invalid_dpop_proof` (RFC 9449 sections 5 and 7.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// Nonces are on and the proof carries none, or a stale one.
    #[error("the DPoP proof must carry a current server nonce")]
    UseNonce,
}

/// What a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The request's method (`htm`).
    pub method: &'a str,
    /// The URLs the request may be named by (`htu`), as [`normal_url`] gives them: the one it
    /// reached, and the public one when a proxy sits in front.
    pub urls: &'a [String],
    /// At the gateway, the access token the proof must name (`ath`); `None` at the token endpoint.
    pub access_token: Option<&'a str>,
    /// Now, in unix seconds.
    pub now: u64,
    /// Oldest `iat` accepted, in seconds before now.
    pub max_age_secs: u64,
    /// With server nonces on, what checks the proof's `nonce`.
    pub nonces: Option<&'a Nonces>,
}

#[derive(serde::Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: u64,
    ath: Option<String>,
    nonce: Option<String>,
}

/// A proof accepted: its key, and what a cluster records of it so that no other node accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub jkt: Thumbprint,
    /// The digest of the key and the `jti` ([`super::replay::digest`]).
    pub seen: [u8; 16],
    /// When it may be forgotten (unix seconds): the proof is too old by then.
    pub forget_at: u64,
}

/// Checks `proof` (the `DPoP` header) against `expected` and records its `jti` in `replay`.
pub fn verify(proof: &str, expected: &Expected<'_>, replay: &ReplayCache) -> Result<Accepted, ProofError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(ProofError::Invalid("the DPoP proof is too long"));
    }
    let (alg, jwk) = header(proof)?;
    let jkt = thumbprint(&jwk)?;
    let claims = signed_claims(proof, alg, jwk)?;
    check_claims(&claims, expected)?;
    let forget_at = claims.iat.max(expected.now) + expected.max_age_secs + FUTURE_LEEWAY_SECS;
    let seen = super::replay::digest(&jkt.0, &claims.jti);
    replay.first_use_of(seen, expected.now, forget_at)?;
    Ok(Accepted { jkt, seen, forget_at })
}

/// The proof's algorithm and public key, from a header that says it is a DPoP proof.
fn header(proof: &str) -> Result<(Algorithm, Map<String, Value>), ProofError> {
    let bad = ProofError::Invalid("the DPoP proof is not a JWT with a JSON header");
    let encoded = proof.split('.').next().ok_or(bad.clone())?;
    let mut header: Map<String, Value> = B64
        .decode(encoded)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(bad)?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(ProofError::Invalid("the DPoP proof's typ must be dpop+jwt"));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .filter(|a| ALGORITHMS.contains(a))
        .and_then(|a| a.parse::<Algorithm>().ok())
        .ok_or(ProofError::Invalid(
            "the DPoP proof's alg must be one of ES256, EdDSA, RS256, PS256",
        ))?;
    let Some(Value::Object(jwk)) = header.remove("jwk") else {
        return Err(ProofError::Invalid("the DPoP proof's header carries no jwk"));
    };
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(ProofError::Invalid("the DPoP proof's jwk must be a public key"));
    }
    Ok((alg, jwk))
}

/// RFC 7638: the SHA-256 of the key's required members, in lexicographic order, without spaces.
pub fn thumbprint(jwk: &Map<String, Value>) -> Result<Thumbprint, ProofError> {
    let members: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("RSA") => &["e", "kty", "n"],
        Some("OKP") => &["crv", "kty", "x"],
        _ => return Err(ProofError::Invalid("the DPoP proof's jwk has an unsupported kty")),
    };
    let mut canonical = Map::new();
    for m in members {
        match jwk.get(*m) {
            Some(Value::String(v)) => canonical.insert((*m).to_string(), Value::String(v.clone())),
            _ => return Err(ProofError::Invalid("the DPoP proof's jwk lacks a member")),
        };
    }
    // serde_json's map keeps keys sorted, and `to_string` writes no whitespace.
    let text = Value::Object(canonical).to_string();
    Ok(Thumbprint(Sha256::digest(text.as_bytes()).into()))
}

/// The claims, once the signature verifies with the header's key.
fn signed_claims(proof: &str, alg: Algorithm, jwk: Map<String, Value>) -> Result<ProofClaims, ProofError> {
    let jwk: Jwk = serde_json::from_value(Value::Object(jwk))
        .map_err(|_| ProofError::Invalid("the DPoP proof's jwk cannot be read"))?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| ProofError::Invalid("the DPoP proof's jwk cannot be used"))?;
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<ProofClaims>(proof, &key, &validation)
        .map(|data| data.claims)
        .map_err(|_| ProofError::Invalid("the DPoP proof's signature or claims do not verify"))
}

fn check_claims(claims: &ProofClaims, expected: &Expected<'_>) -> Result<(), ProofError> {
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(ProofError::Invalid("the DPoP proof's jti must be 1 to 256 bytes"));
    }
    if claims.htm != expected.method {
        return Err(ProofError::Invalid("the DPoP proof's htm is not this request's method"));
    }
    let htu = normal_url(&claims.htu);
    if !expected.urls.iter().any(|u| Some(u) == htu.as_ref()) {
        return Err(ProofError::Invalid("the DPoP proof's htu is not this request's URL"));
    }
    if claims.iat + expected.max_age_secs < expected.now || claims.iat > expected.now + FUTURE_LEEWAY_SECS {
        return Err(ProofError::Invalid("the DPoP proof's iat is too old or in the future"));
    }
    if let Some(nonces) = expected.nonces {
        if !claims.nonce.as_deref().is_some_and(|n| nonces.accepts(n, expected.now)) {
            return Err(ProofError::UseNonce);
        }
    }
    if let Some(token) = expected.access_token {
        let ath = B64.encode(Sha256::digest(token.as_bytes()));
        if claims.ath.as_deref() != Some(ath.as_str()) {
            return Err(ProofError::Invalid(
                "the DPoP proof's ath does not match the access token",
            ));
        }
    }
    Ok(())
}

/// A URL as `htu` is compared (RFC 9449 section 4.3, RFC 3986 section 6.2.2-6.2.3): scheme and
/// host in lower case, the scheme's default port left out, an empty path as `/`, without query
/// and fragment. `None` when it is not an absolute http(s) URL.
pub fn normal_url(url: &str) -> Option<String> {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}{path}"))
}

#[cfg(test)]
#[path = "dpop_tests.rs"]
mod tests;
