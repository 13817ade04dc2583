//! DPoP at the token endpoint (RFC 9449 section 5): a request with a `DPoP` proof gets tokens
//! bound to the proof's key; a client configured with `dpop = "required"` must send one.

use super::deps::OAuthDeps;
use super::dpop::{self, normal_url, Expected, ProofError};
use super::errors::{service_error, OAuthError};
use crate::config::model::Client;
use crate::config::Config;
use crate::domain::ids::now_ms;
use crate::domain::thumbprint::Thumbprint;

/// The key the request's tokens are to be bound to, from its proof; `None` for a bearer request.
/// `proof` is the request's `DPoP` header and `url` the URL it reached.
pub async fn binding(
    deps: OAuthDeps<'_>,
    config: &Config,
    client: &Client,
    proof: Option<&[u8]>,
    url: Option<&str>,
) -> Result<Option<Thumbprint>, OAuthError> {
    let Some(proof) = proof else {
        if client.dpop_required {
            return Err(OAuthError::InvalidDpopProof(
                "this client must send a DPoP proof".into(),
            ));
        }
        return Ok(None);
    };
    let proof =
        std::str::from_utf8(proof).map_err(|_| OAuthError::InvalidDpopProof("the DPoP proof must be ASCII".into()))?;
    let urls = endpoint_urls(config, url);
    let expected = Expected {
        method: "POST",
        urls: &urls,
        access_token: None,
        now: now_ms() / 1000,
        max_age_secs: config.oauth.dpop_proof_max_age_secs,
        nonces: config.oauth.dpop_nonce.then_some(deps.nonces),
    };
    let accepted = match dpop::verify(proof, &expected, deps.proofs) {
        Ok(accepted) => accepted,
        Err(ProofError::Replay(super::replay::ReplayError::Full)) => {
            return Err(OAuthError::TemporarilyUnavailable { retry_after_secs: 1 })
        }
        Err(ProofError::UseNonce) => return Err(OAuthError::UseDpopNonce(deps.nonces.current(expected.now))),
        Err(e) => return Err(OAuthError::InvalidDpopProof(e.to_string())),
    };
    // In a cluster, a proof accepted at another node is refused here too.
    let store = deps.tokens.store();
    if store.is_shared() {
        match store.first_use(accepted.seen, accepted.forget_at, expected.now).await {
            Ok(true) => {}
            Ok(false) => return Err(OAuthError::InvalidDpopProof("this proof was already used".into())),
            Err(e) => return Err(service_error(e.into())),
        }
    }
    Ok(Some(accepted.jkt))
}

/// The URLs a proof for the token endpoint may name: the one the request reached, and the one the
/// metadata document publishes (they differ behind a proxy that terminates TLS).
fn endpoint_urls(config: &Config, request_url: Option<&str>) -> Vec<String> {
    let published = format!("{}/oauth2/token", config.oauth.issuer.trim_end_matches('/'));
    [Some(published.as_str()), request_url]
        .into_iter()
        .flatten()
        .filter_map(normal_url)
        .collect()
}
