//! JWT signing for a token request, done before the key's lock is taken: a JWT request always
//! gets a new token, so its signature never needs the key's state, and the lock is held for
//! microseconds, never across a signature.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rand::RngCore;
use tokio::sync::Semaphore;

use super::index::KeySlot;
use super::jwt::{AccessClaims, JwtAlgorithm, JwtSigner, KeyError};
use super::record::{now_ms, TokenId};
use super::request::{IssueParams, ServiceError};
use crate::domain::format::TokenFormat;
use crate::domain::key::TokenKey;

/// A JWT signed for a request, waiting for the key's lock.
pub(super) struct Presigned {
    pub(super) id: TokenId,
    pub(super) text: String,
    pub(super) issued_at_ms: u64,
}

/// Signs the JWT of a request; `None` for opaque clients. RSA signing (about 0.2 ms) runs on
/// tokio's blocking pool so it neither stalls the proxy's event loop nor is limited to the
/// proxy's worker threads; EC and EdDSA signatures are cheaper than the hand-off and are made
/// in place.
///
/// At most `signing`'s permits (two per core) RSA signatures run at once; other requests wait
/// for a permit without a thread. Without the bound, a flood on many connections made one
/// blocking thread per waiting request (tokio allows 512 per runtime), each with its stack,
/// and queued password checks and config reloads behind them, for no more signatures a second:
/// the cores were already busy. The permit travels with the blocking task, so a request
/// cancelled meanwhile holds it until its signature is done.
pub(super) async fn presign(
    signer: &Arc<JwtSigner>,
    signing: &Arc<Semaphore>,
    key: &Arc<KeySlot>,
    p: &IssueParams<'_>,
) -> Result<Option<Presigned>, ServiceError> {
    if p.format != TokenFormat::Jwt {
        return Ok(None);
    }
    if signer.algorithm() != JwtAlgorithm::RS256 || tokio::runtime::Handle::try_current().is_err() {
        return sign_jwt(signer, key, p.issuer, p.access_ttl_secs).map(Some);
    }
    let permit = Arc::clone(signing)
        .acquire_owned()
        .await
        .map_err(|_| ServiceError::Sign(KeyError::Sign))?;
    let (signer, key, issuer, ttl) = (
        Arc::clone(signer),
        Arc::clone(key),
        p.issuer.to_string(),
        p.access_ttl_secs,
    );
    tokio::task::spawn_blocking(move || {
        let signed = sign_jwt(&signer, &key, &issuer, ttl);
        drop(permit);
        signed
    })
    .await
    .map_err(|_| ServiceError::Sign(KeyError::Sign))?
    .map(Some)
}

fn random_jti() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    B64.encode(b)
}

/// Signs the RFC 9068 claims of a new token for `key`, issued now.
fn sign_jwt(signer: &JwtSigner, key: &TokenKey, issuer: &str, ttl_secs: u64) -> Result<Presigned, ServiceError> {
    let iat_s = now_ms() / 1000;
    let sub = if key.subject.is_empty() {
        &*key.client_id
    } else {
        &*key.subject
    };
    let jti = random_jti();
    let text = signer.sign(&AccessClaims {
        iss: issuer,
        sub,
        client_id: &key.client_id,
        scope: key.scope.as_str(),
        aud: key.audience.claim(),
        iat: iat_s,
        exp: iat_s + ttl_secs,
        jti: &jti,
    })?;
    Ok(Presigned {
        id: TokenId::of_jwt(&text),
        text,
        issued_at_ms: iat_s * 1000,
    })
}
