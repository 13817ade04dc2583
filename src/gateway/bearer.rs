//! RFC 6750 bearer checks for proxied traffic: parse `Authorization`, one index lookup, check
//! state, expiry, the client still being configured, and the route's scopes. No signature is
//! verified per request: the index is the authority, so a revoked JWT is rejected at once.
//!
//! Timing: the index is a hash map keyed by a token's id, never by its text. An opaque token's id
//! is only looked up once its HMAC tag has been checked in constant time
//! ([`crate::tokens::opaque::OpaqueCodec::parse`]), so guesses never reach the map; a JWT's id is
//! the SHA-256 of its text, so the map's timing can at most tell something about digests of the
//! attacker's own inputs, which does not help forge or find a token (preimage resistance).

use std::sync::Arc;

use super::last_token::IdMemory;
use crate::config::routes::Route;
use crate::config::Config;
use crate::metrics::Validation;
use crate::oauth::dpop::Accepted;
use crate::reply::Reply;
use crate::tokens::opaque::{OpaqueCodec, OpaqueKind};
use crate::tokens::record::{AccessRecord, TokenId};
use crate::tokens::service::TokenService;

/// Longest bearer token accepted.
pub const MAX_BEARER_BYTES: usize = 8192;

/// Why a request was not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerError {
    /// No `Authorization` header, or another scheme: 401 with a bare challenge.
    Missing,
    /// A malformed `Authorization: Bearer` header: 400 `invalid_request`.
    Malformed(&'static str),
    /// Unknown, expired or revoked token: 401 `invalid_token`.
    Invalid,
    /// Valid token without the route's scopes: 403 `insufficient_scope`.
    InsufficientScope(String),
    /// A token for another audience than the route's: 401 `invalid_token` (RFC 9068 section 4).
    WrongAudience,
    /// A DPoP-bound token sent with the Bearer scheme: 401 with a DPoP challenge.
    DpopRequired,
    /// A bearer token sent with the DPoP scheme: 401 `invalid_token`.
    NotDpopBound,
    /// A DPoP proof missing, malformed, replayed or not for this request or token: 401
    /// `invalid_dpop_proof` (RFC 9449 section 7.1).
    BadProof(&'static str),
    /// Server nonces are on and the proof lacks a current one: 401 `use_dpop_nonce` with this
    /// nonce in `DPoP-Nonce` (RFC 9449 section 9).
    UseDpopNonce(String),
    /// Cluster mode: the index is stale (cut off from the database longer than
    /// `store.stale_after_secs`), or a token this node had not seen could not be looked up:
    /// 503 `temporarily_unavailable` with `Retry-After`.
    Unavailable,
}

impl BearerError {
    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            BearerError::Missing => "missing",
            BearerError::Malformed(_) => "malformed",
            BearerError::Invalid => "invalid",
            BearerError::InsufficientScope(_) => "insufficient_scope",
            BearerError::WrongAudience => "wrong_audience",
            BearerError::DpopRequired => "dpop_required",
            BearerError::NotDpopBound => "not_dpop_bound",
            BearerError::BadProof(_) => "invalid_dpop_proof",
            BearerError::UseDpopNonce(_) => "use_dpop_nonce",
            BearerError::Unavailable => "unavailable",
        }
    }

    /// How `tokengate_validations_total` counts it.
    pub fn validation(&self) -> Validation {
        match self {
            BearerError::Missing => Validation::Missing,
            BearerError::Malformed(_) => Validation::Malformed,
            BearerError::Invalid
            | BearerError::WrongAudience
            | BearerError::DpopRequired
            | BearerError::NotDpopBound
            | BearerError::BadProof(_)
            | BearerError::UseDpopNonce(_) => Validation::Invalid,
            BearerError::InsufficientScope(_) => Validation::InsufficientScope,
            BearerError::Unavailable => Validation::Unavailable,
        }
    }

    pub fn reply(&self) -> Reply {
        let (status, challenge, body) = match self {
            BearerError::Missing => (401, "Bearer realm=\"tokengate\"".to_string(), r#"{"error":"unauthorized"}"#.to_string()),
            BearerError::Malformed(why) => (
                400,
                format!("Bearer realm=\"tokengate\", error=\"invalid_request\", error_description=\"{why}\""),
                serde_json::json!({"error": "invalid_request", "error_description": why}).to_string(),
            ),
            BearerError::Invalid => (
                401,
                "Bearer realm=\"tokengate\", error=\"invalid_token\", error_description=\"the access token is invalid, expired or revoked\"".to_string(),
                r#"{"error":"invalid_token"}"#.to_string(),
            ),
            BearerError::WrongAudience => (
                401,
                "Bearer realm=\"tokengate\", error=\"invalid_token\", error_description=\"the access token is not meant for this audience\"".to_string(),
                r#"{"error":"invalid_token","error_description":"the access token is not meant for this audience"}"#.to_string(),
            ),
            BearerError::NotDpopBound => (
                401,
                "Bearer realm=\"tokengate\", error=\"invalid_token\", error_description=\"this token is not DPoP-bound: send it with the Bearer scheme\"".to_string(),
                r#"{"error":"invalid_token","error_description":"this token is not DPoP-bound: send it with the Bearer scheme"}"#.to_string(),
            ),
            BearerError::DpopRequired => (
                401,
                format!("DPoP algs=\"{DPOP_ALGS}\", error=\"invalid_token\", error_description=\"this token is DPoP-bound: send it with the DPoP scheme and a proof\""),
                r#"{"error":"invalid_token","error_description":"this token is DPoP-bound: send it with the DPoP scheme and a proof"}"#.to_string(),
            ),
            BearerError::BadProof(why) => (
                401,
                format!("DPoP algs=\"{DPOP_ALGS}\", error=\"invalid_dpop_proof\", error_description=\"{why}\""),
                serde_json::json!({"error": "invalid_dpop_proof", "error_description": why}).to_string(),
            ),
            BearerError::UseDpopNonce(nonce) => {
                let challenge = format!(
                    "DPoP algs=\"{DPOP_ALGS}\", error=\"use_dpop_nonce\", error_description=\"the DPoP proof must carry the nonce in DPoP-Nonce\""
                );
                return Reply::json_no_store(401, r#"{"error":"use_dpop_nonce"}"#)
                    .with_header("WWW-Authenticate", challenge)
                    .with_header("DPoP-Nonce", nonce.clone());
            }
            BearerError::InsufficientScope(scope) => (
                403,
                format!("Bearer realm=\"tokengate\", error=\"insufficient_scope\", scope=\"{scope}\""),
                serde_json::json!({"error": "insufficient_scope", "scope": scope}).to_string(),
            ),
            BearerError::Unavailable => {
                let body = r#"{"error":"temporarily_unavailable","error_description":"this node cannot reach the token store to check the token; retry shortly"}"#;
                return Reply::json_no_store(503, body).with_header("Retry-After", "2");
            }
        };
        Reply::json_no_store(status, body).with_header("WWW-Authenticate", challenge)
    }
}

/// Whether `b` is a `b64token` character other than the trailing `=`: branch-free, so that the
/// check of a whole token compiles to vector code.
#[inline(always)]
fn is_b64token_char(b: u8) -> bool {
    // `| 0x20` folds A-Z onto a-z and moves no other byte into a-z.
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter | digit | (b == b'-') | (b == b'.') | (b == b'_') | (b == b'~') | (b == b'+') | (b == b'/')
}

/// RFC 6750 section 2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
/// A JWT is hundreds of bytes, checked on every proxied request: the check has no branch per byte
/// and no early exit, so it compiles to vector code.
fn is_b64token(t: &[u8]) -> bool {
    let body_end = t.iter().rposition(|&b| b != b'=').map_or(0, |p| p + 1);
    body_end > 0
        && t[..body_end]
            .iter()
            .fold(0u8, |refused, &b| refused | u8::from(!is_b64token_char(b)))
            == 0
}

/// The algorithms a DPoP challenge names.
const DPOP_ALGS: &str = "ES256 EdDSA RS256 PS256";

/// How a token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    /// `Authorization: DPoP <token>` (RFC 9449 section 7.1), with a `DPoP` proof beside it.
    Dpop,
}

/// The scheme and token of an `Authorization: Bearer <token>` or `Authorization: DPoP <token>`
/// header. Its characters are not checked yet: [`token_id`] does that, and for a genuine opaque
/// token decoding has done it already.
pub fn credentials(header: Option<&[u8]>) -> Result<(Scheme, &str), BearerError> {
    match header {
        Some(h) if h.len() > 5 && h[..5].eq_ignore_ascii_case(b"dpop ") => token_of(&h[5..]).map(|t| (Scheme::Dpop, t)),
        _ => bearer_token_of(header).map(|t| (Scheme::Bearer, t)),
    }
}

/// The token of an `Authorization: Bearer <token>` header, one `b64token`.
pub fn extract(header: Option<&[u8]>) -> Result<&str, BearerError> {
    let token = bearer_token_of(header)?;
    check_b64token(token)?;
    Ok(token)
}

/// The token after `Bearer `, its characters not checked yet.
fn bearer_token_of(header: Option<&[u8]>) -> Result<&str, BearerError> {
    let h = header.ok_or(BearerError::Missing)?;
    if h.len() < 7 || !h[..7].eq_ignore_ascii_case(b"bearer ") {
        let bearer = h.len() >= 6 && h[..6].eq_ignore_ascii_case(b"bearer");
        return match h.get(6) {
            _ if !bearer => Err(BearerError::Missing),
            None => Err(BearerError::Malformed("empty bearer token")),
            Some(b) if b.is_ascii_whitespace() => Err(BearerError::Malformed("one space must follow Bearer")),
            // Another scheme that merely starts with "Bearer": no bearer credentials presented.
            Some(_) => Err(BearerError::Missing),
        };
    }
    token_of(&h[7..])
}

/// Why a token's characters are refused.
const NOT_B64TOKEN: BearerError = BearerError::Malformed("one bearer token of b64token characters expected");

/// The token after the scheme, within the size limit; its characters are checked apart
/// ([`check_b64token`]). Text that is not UTF-8 is no `b64token` either.
fn token_of(after_scheme: &[u8]) -> Result<&str, BearerError> {
    let token = after_scheme.trim_ascii();
    if token.is_empty() {
        return Err(BearerError::Malformed("empty bearer token"));
    }
    if token.len() > MAX_BEARER_BYTES {
        return Err(BearerError::Malformed("bearer token too long"));
    }
    std::str::from_utf8(token).map_err(|_| NOT_B64TOKEN)
}

/// `Err` (400) unless `token` is one `b64token`.
fn check_b64token(token: &str) -> Result<(), BearerError> {
    if is_b64token(token.as_bytes()) {
        Ok(())
    } else {
        Err(NOT_B64TOKEN)
    }
}

/// The index id of a presented token. A genuine opaque token needs no character check of its
/// own: decoding it accepted base64url characters only, all of them `b64token` ones. Anything
/// else is checked before it is hashed or looked up, so a malformed token is a 400 either way.
fn token_id(tokens: &TokenService, token: &str) -> Result<TokenId, BearerError> {
    if OpaqueCodec::has_prefix(OpaqueKind::Access, token) {
        return tokens
            .access_id(token)
            .ok_or_else(|| check_b64token(token).err().unwrap_or(BearerError::Invalid));
    }
    check_b64token(token)?;
    tokens.access_id(token).ok_or(BearerError::Invalid)
}

/// Decides a request to an authenticated route. In a cluster, a stale index answers 503, and a
/// token this node has not seen is looked up ([`TokenService::look_up_access`]). A token
/// presented with the DPoP scheme, and only such a one, has its proof checked by `check_proof`
/// (a bound token presented as a bearer token is refused). `memory` holds the id of the token the
/// connection presented last, so that only a new token is decoded.
pub async fn authorize(
    tokens: &TokenService,
    config: &Config,
    route: &Route,
    header: Option<&[u8]>,
    now_ms: u64,
    memory: &impl IdMemory,
    check_proof: impl FnOnce(&AccessRecord, &str) -> Result<Accepted, BearerError>,
) -> Result<Arc<AccessRecord>, BearerError> {
    let (scheme, token) = credentials(header)?;
    let id = match memory.recall(token) {
        Some(id) => id,
        None => {
            let id = token_id(tokens, token)?;
            memory.remember(token, id);
            id
        }
    };
    let stale_after_ms = config.start.store.stale_after.as_millis() as u64;
    if !tokens.index_is_fresh(now_ms, stale_after_ms) {
        return Err(BearerError::Unavailable);
    }
    let rec = match tokens.index().access(&id) {
        Some(rec) => rec,
        None => tokens
            .look_up_access(token, id, now_ms)
            .await
            .map_err(|_| BearerError::Unavailable)?
            .ok_or(BearerError::Invalid)?,
    };
    if !rec.is_valid_at(now_ms) || !config.permits(&rec.key) {
        return Err(BearerError::Invalid);
    }
    match scheme {
        Scheme::Bearer if rec.key.jkt().is_some() => return Err(BearerError::DpopRequired),
        Scheme::Bearer => {}
        Scheme::Dpop => {
            let accepted = check_proof(&rec, token)?;
            // In a cluster, a proof accepted at another node is refused here too.
            let store = tokens.store();
            if store.is_shared() {
                match store.first_use(accepted.seen, accepted.forget_at, now_ms / 1000).await {
                    Ok(true) => {}
                    Ok(false) => return Err(BearerError::BadProof("this DPoP proof was already used")),
                    Err(_) => return Err(BearerError::Unavailable),
                }
            }
        }
    }
    if let Some(audience) = &route.audience {
        if !rec.key.audience().contains(audience) {
            return Err(BearerError::WrongAudience);
        }
    }
    if !rec.key.scope.is_superset(&route.scopes) {
        return Err(BearerError::InsufficientScope(route.scopes.to_string()));
    }
    Ok(rec)
}

#[cfg(test)]
#[path = "bearer_tests.rs"]
mod tests;
