//! DPoP at the gateway (RFC 9449 section 7): a request with a bound token must carry
//! `Authorization: DPoP <token>` and one `DPoP` proof for this method and URL naming the token
//! (`ath`), signed by the key the token is bound to. Only requests that present a bound token, or
//! the DPoP scheme, pay for it: a bearer request reads no more headers than before.

use pingora::proxy::Session;

use super::bearer::BearerError;
use crate::config::Config;
use crate::oauth::dpop::{self, normal_url, Accepted, Expected, ProofError};
use crate::oauth::dpop_nonce::Nonces;
use crate::oauth::replay::{ReplayCache, ReplayError};
use crate::tokens::record::AccessRecord;

/// The request's proof and what it must match, read from the request head.
pub struct ProofRequest<'a> {
    /// The one `DPoP` header; `Err` when there are several.
    pub proof: Result<Option<&'a [u8]>, ()>,
    pub method: &'a str,
    /// The URL the request reached (scheme, `Host`, path).
    pub url: Option<String>,
}

impl<'a> ProofRequest<'a> {
    pub fn of(session: &'a Session, https: bool) -> ProofRequest<'a> {
        let head = session.req_header();
        let mut proofs = head.headers.get_all("dpop").iter();
        let proof = match (proofs.next(), proofs.next()) {
            (first, None) => Ok(first.map(|v| v.as_bytes())),
            _ => Err(()),
        };
        ProofRequest {
            proof,
            method: head.method.as_str(),
            url: request_url(session, https),
        }
    }
}

/// The URL the request reached, as the client named it: its scheme, its `Host` (or HTTP/2
/// `:authority`) and its path, without the query.
pub fn request_url(session: &Session, https: bool) -> Option<String> {
    let head = session.req_header();
    let host = head
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| head.uri.authority().map(|a| a.as_str()))?;
    let scheme = if https { "https" } else { "http" };
    normal_url(&format!("{scheme}://{host}{}", head.uri.path()))
}

/// Checks the proof of a request presenting a token bound to a DPoP key (`rec.key.jkt()`).
pub fn check_bound(
    rec: &AccessRecord,
    token: &str,
    req: &ProofRequest<'_>,
    config: &Config,
    (replay, nonces): (&ReplayCache, &Nonces),
    now_secs: u64,
) -> Result<Accepted, BearerError> {
    let Some(bound_to) = rec.key.jkt() else {
        return Err(BearerError::NotDpopBound);
    };
    let proof = match req.proof {
        Err(()) => return Err(BearerError::BadProof("more than one DPoP header")),
        Ok(None) => return Err(BearerError::BadProof("a DPoP-bound token needs a DPoP proof")),
        Ok(Some(p)) => std::str::from_utf8(p).map_err(|_| BearerError::BadProof("the DPoP proof must be ASCII"))?,
    };
    let urls = proof_urls(config, req.url.as_deref());
    let expected = Expected {
        method: req.method,
        urls: &urls,
        access_token: Some(token),
        now: now_secs,
        max_age_secs: config.oauth.dpop_proof_max_age_secs,
        nonces: config.oauth.dpop_nonce.then_some(nonces),
    };
    match dpop::verify(proof, &expected, replay) {
        Ok(accepted) if accepted.jkt == *bound_to => Ok(accepted),
        Ok(_) => Err(BearerError::BadProof("the DPoP proof is not signed by the token's key")),
        Err(ProofError::Replay(ReplayError::Full)) => Err(BearerError::Unavailable),
        Err(ProofError::Replay(ReplayError::Replayed)) => {
            Err(BearerError::BadProof("this DPoP proof was already used"))
        }
        Err(ProofError::Invalid(why)) => Err(BearerError::BadProof(why)),
        Err(ProofError::UseNonce) => Err(BearerError::UseDpopNonce(nonces.current(now_secs))),
    }
}

/// The URLs a proof may name: the one the request reached, and the same path under the issuer's
/// origin (what clients see behind a proxy that terminates TLS).
fn proof_urls(config: &Config, request_url: Option<&str>) -> Vec<String> {
    let mut urls: Vec<String> = request_url.into_iter().map(str::to_string).collect();
    if let (Some(url), Some(issuer)) = (request_url, normal_url(&config.oauth.issuer)) {
        let path = url.splitn(4, '/').nth(3).unwrap_or("");
        let origin = issuer.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        urls.push(format!("{origin}/{path}"));
    }
    urls
}
