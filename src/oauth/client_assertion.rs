//! `private_key_jwt` client authentication (RFC 7523 section 2.2, RFC 7521 section 4.2,
//! OpenID Connect Core section 9): the client sends
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
//! `client_assertion=<JWT>` signed with its private key, which never leaves it; the gateway
//! holds only the public keys.
//!
//! The JWT must be signed (RS256, PS256, ES256 or EdDSA; never `none` or an HMAC) by a key of the
//! client's set (its `kid`, when the header has one, selects the key), and carry `iss` and `sub`
//! equal to the client id, `aud` naming the token endpoint or the issuer, an `exp` no further
//! than [`MAX_LIFETIME_SECS`] ahead, no `nbf` or `iat` in the future, and a `jti` not seen
//! before: each assertion authenticates once ([`ReplayCache`]). [`LEEWAY_SECS`] of clock skew
//! is allowed either way. Every failure is `invalid_client`; the assertion itself is never
//! logged.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Validation};
use serde::Deserialize;

use super::errors::OAuthError;
use super::form::Form;
use super::replay::{digest, ReplayCache, ReplayError};
use crate::config::client_auth::ASSERTION_ALGORITHMS;
use crate::config::model::ClientKeys;

/// `client_assertion_type` of a JWT assertion (RFC 7523 section 2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Furthest `exp` accepted, from now (plus [`LEEWAY_SECS`]): it bounds how long a `jti` must
/// be remembered, so the replay cache stays bounded.
pub const MAX_LIFETIME_SECS: u64 = 300;
/// Clock skew allowed between the client and the gateway, on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 60;
/// Longest `client_assertion` accepted.
pub const MAX_ASSERTION_BYTES: usize = 8192;
/// Longest `jti` accepted.
pub const MAX_JTI_BYTES: usize = 256;
/// Longest client id accepted (as for a secret).
const MAX_CLIENT_ID_BYTES: usize = 1024;

/// An assertion as presented, for the client it claims to be (from the form's `client_id`, or
/// else the JWT's unverified `sub`).
#[derive(PartialEq, Eq)]
pub struct ClientAssertion {
    pub client_id: String,
    jwt: String,
}

impl std::fmt::Debug for ClientAssertion {
    /// Never shows the JWT: it authenticates until it is spent.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAssertion")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Why an assertion was refused (for debug logs; the client sees `invalid_client`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("not a JWS with a supported algorithm (RS256, PS256, ES256, EdDSA)")]
    Algorithm,
    #[error("no key of the client's set matches the header's kid and alg")]
    NoKey,
    #[error("the signature does not verify with the client's keys")]
    Signature,
    #[error("claims refused: {0}")]
    Claims(&'static str),
    #[error("its jti was already used")]
    Replayed,
    #[error("too many assertions are remembered against replay; retry shortly")]
    CacheFull,
}

impl From<AssertionError> for OAuthError {
    fn from(e: AssertionError) -> OAuthError {
        match e {
            AssertionError::CacheFull => OAuthError::AssertionCacheFull {
                retry_after_secs: LEEWAY_SECS,
            },
            _ => OAuthError::InvalidClient,
        }
    }
}

/// Reads the assertion parameters of a form that has at least one of them.
pub fn presented(form: &Form) -> Result<ClientAssertion, OAuthError> {
    let (Some(kind), Some(jwt)) = (form.get("client_assertion_type"), form.get("client_assertion")) else {
        return Err(OAuthError::InvalidRequest(
            "client_assertion and client_assertion_type go together".into(),
        ));
    };
    // RFC 6749 section 5.2: an unsupported authentication method is invalid_client.
    if kind != ASSERTION_TYPE || jwt.len() > MAX_ASSERTION_BYTES {
        return Err(OAuthError::InvalidClient);
    }
    let claimed = unverified_subject(jwt).ok_or(OAuthError::InvalidClient)?;
    if form.get("client_id").is_some_and(|id| id != claimed) || claimed.len() > MAX_CLIENT_ID_BYTES {
        return Err(OAuthError::InvalidClient);
    }
    Ok(ClientAssertion {
        client_id: claimed,
        jwt: jwt.into(),
    })
}

/// The `sub` of a JWT, read without checking anything: only to find the client whose keys
/// will check it.
fn unverified_subject(jwt: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Subject {
        sub: String,
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Subject>(jwt)
        .ok()
        .map(|s| s.sub)
}

/// The claims checked beyond what `jsonwebtoken` checks.
#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    exp: f64,
    nbf: Option<f64>,
    iat: Option<f64>,
    jti: Option<String>,
}

/// An assertion accepted: what a cluster records of it so that no other node accepts it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    /// The digest of the client id and the `jti` ([`digest`]).
    pub digest: [u8; 16],
    /// When it may be forgotten (unix seconds): the assertion has expired by then.
    pub forget_at: u64,
}

/// Checks `assertion` for its client with `keys`: the signature, then the claims (`audiences`:
/// the values `aud` may name; `now`: Unix seconds), then spends its `jti` in `replay`.
pub fn verify(
    assertion: &ClientAssertion,
    keys: &ClientKeys,
    audiences: &[&str],
    replay: &ReplayCache,
    now: u64,
) -> Result<Spent, AssertionError> {
    let client_id = assertion.client_id.as_str();
    let header = decode_header(&assertion.jwt).map_err(|_| AssertionError::Algorithm)?;
    if !ASSERTION_ALGORITHMS.contains(&header.alg) {
        return Err(AssertionError::Algorithm);
    }
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_audience(audiences);
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.into());
    let mut tried = false;
    for key in keys.candidates(header.kid.as_deref(), header.alg) {
        tried = true;
        match decode::<Claims>(&assertion.jwt, &key.key, &validation) {
            Ok(data) => {
                let jti = check_claims(&data.claims, client_id, now)?;
                let keep_until = (data.claims.exp.ceil() as u64).saturating_add(LEEWAY_SECS);
                // Forgotten once `keep_until`, the last second it could be accepted, has passed.
                let spent = Spent {
                    digest: digest(client_id.as_bytes(), jti),
                    forget_at: keep_until + 1,
                };
                return replay
                    .first_use_of(spent.digest, now, spent.forget_at)
                    .map(|()| spent)
                    .map_err(|e| match e {
                        ReplayError::Replayed => AssertionError::Replayed,
                        ReplayError::Full => AssertionError::CacheFull,
                    });
            }
            Err(e) if *e.kind() == ErrorKind::InvalidSignature => continue,
            Err(e) => return Err(AssertionError::Claims(claims_error(e.kind()))),
        }
    }
    Err(if tried {
        AssertionError::Signature
    } else {
        AssertionError::NoKey
    })
}

fn claims_error(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "nbf is in the future",
        ErrorKind::InvalidAudience => "aud names neither the token endpoint nor the issuer",
        ErrorKind::InvalidIssuer => "iss is not the client id",
        ErrorKind::InvalidSubject => "sub is not the client id",
        ErrorKind::MissingRequiredClaim(_) => "exp, iss, sub and aud are required",
        _ => "malformed",
    }
}

/// The checks `jsonwebtoken` leaves to its caller; returns the `jti`.
fn check_claims<'a>(claims: &'a Claims, client_id: &str, now: u64) -> Result<&'a str, AssertionError> {
    if claims.iss != client_id || claims.sub != client_id {
        return Err(AssertionError::Claims("iss and sub must both be the client id"));
    }
    let later = |t: f64, limit: u64| !t.is_finite() || t > limit as f64;
    if !claims.exp.is_finite() || claims.exp + (LEEWAY_SECS as f64) < now as f64 {
        return Err(AssertionError::Claims("expired"));
    }
    if later(claims.exp, now + MAX_LIFETIME_SECS + LEEWAY_SECS) {
        return Err(AssertionError::Claims("exp is more than 5 minutes ahead"));
    }
    if claims.nbf.is_some_and(|t| later(t, now + LEEWAY_SECS)) {
        return Err(AssertionError::Claims("nbf is in the future"));
    }
    if claims.iat.is_some_and(|t| later(t, now + LEEWAY_SECS)) {
        return Err(AssertionError::Claims("iat is in the future"));
    }
    match claims.jti.as_deref() {
        Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI_BYTES => Ok(jti),
        Some(_) => Err(AssertionError::Claims("jti must be 1 to 256 bytes")),
        None => Err(AssertionError::Claims("jti is required")),
    }
}

#[cfg(test)]
#[path = "client_assertion_tests.rs"]
mod tests;
