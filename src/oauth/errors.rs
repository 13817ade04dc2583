//! RFC 6749 section 5.2 errors (and the few HTTP-level ones of the OAuth endpoints), one variant
//! per protocol error, each mapping to exactly one status and JSON body.

use crate::reply::Reply;
use crate::store::StoreError;
use crate::tokens::service::ServiceError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Client authentication failed: 401 with `WWW-Authenticate: Basic`.
    #[error("invalid_client")]
    InvalidClient,
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    /// RFC 8707 section 2: a `resource` that is not a URI this client may ask for.
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    /// RFC 9449 section 5: a DPoP proof missing, malformed, or not for this request.
    #[error("invalid_dpop_proof: {0}")]
    InvalidDpopProof(String),
    /// RFC 9449 section 8: the proof lacks a current server nonce; this one is to be used.
    #[error("use_dpop_nonce")]
    UseDpopNonce(String),
    /// The body is larger than the endpoint accepts: 413.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body did not arrive within the read deadline: 408.
    #[error("request body not received in time")]
    RequestTimeout,
    /// Only POST (or GET for documents) is allowed: 405.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// Too many failed attempts: 429 with `Retry-After`.
    #[error("too many failed attempts")]
    TooManyRequests { retry_after_secs: u64 },
    /// The gateway holds `oauth.max_live_tokens` tokens: 503 with `Retry-After`.
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable { retry_after_secs: u64 },
    /// The client holds `oauth.max_live_tokens_per_client` tokens: 429 with `Retry-After` (the
    /// client's own doing, unlike the gateway's bound).
    #[error("temporarily_unavailable: this client holds as many tokens as it may")]
    ClientTokenLimit { retry_after_secs: u64 },
    /// The token store cannot be reached (cluster mode: the database is down or cut off): 503
    /// with `Retry-After`.
    #[error("temporarily_unavailable: the token store cannot be reached")]
    StoreUnavailable { retry_after_secs: u64 },
    /// The replay cache of client assertions is full (`private_key_jwt`): 503 with
    /// `Retry-After`. New assertions are refused rather than replays let through.
    #[error("temporarily_unavailable: too many client assertions to remember")]
    AssertionCacheFull { retry_after_secs: u64 },
    #[error("server_error")]
    ServerError,
}

impl OAuthError {
    /// The RFC 6749 `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_)
            | OAuthError::PayloadTooLarge
            | OAuthError::RequestTimeout
            | OAuthError::MethodNotAllowed(_) => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::InvalidDpopProof(_) => "invalid_dpop_proof",
            OAuthError::UseDpopNonce(_) => "use_dpop_nonce",
            OAuthError::TooManyRequests { .. } => "slow_down",
            OAuthError::TemporarilyUnavailable { .. }
            | OAuthError::ClientTokenLimit { .. }
            | OAuthError::StoreUnavailable { .. }
            | OAuthError::AssertionCacheFull { .. } => "temporarily_unavailable",
            OAuthError::ServerError => "server_error",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            OAuthError::InvalidClient => 401,
            OAuthError::PayloadTooLarge => 413,
            OAuthError::RequestTimeout => 408,
            OAuthError::MethodNotAllowed(_) => 405,
            OAuthError::TooManyRequests { .. } | OAuthError::ClientTokenLimit { .. } => 429,
            OAuthError::ServerError => 500,
            OAuthError::TemporarilyUnavailable { .. }
            | OAuthError::StoreUnavailable { .. }
            | OAuthError::AssertionCacheFull { .. } => 503,
            _ => 400,
        }
    }

    fn description(&self) -> Option<String> {
        match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::InvalidGrant(d)
            | OAuthError::UnauthorizedClient(d)
            | OAuthError::InvalidScope(d)
            | OAuthError::InvalidTarget(d)
            | OAuthError::InvalidDpopProof(d) => Some(d.clone()),
            OAuthError::InvalidClient => Some("client authentication failed".into()),
            OAuthError::UseDpopNonce(_) => Some("the DPoP proof must carry the nonce in DPoP-Nonce".into()),
            OAuthError::UnsupportedGrantType => {
                Some("grant_type must be client_credentials, password or refresh_token".into())
            }
            OAuthError::PayloadTooLarge => Some("request body too large".into()),
            OAuthError::RequestTimeout => Some("the request body did not arrive in time".into()),
            OAuthError::MethodNotAllowed(m) => Some(format!("use {m}")),
            OAuthError::TooManyRequests { .. } => Some("too many failed attempts; retry later".into()),
            OAuthError::TemporarilyUnavailable { .. } => {
                Some("the gateway holds as many tokens as it may; retry later".into())
            }
            OAuthError::ClientTokenLimit { .. } => Some(
                "this client holds as many tokens as it may (oauth.max_live_tokens_per_client); revoke some or \
                 retry later"
                    .into(),
            ),
            OAuthError::StoreUnavailable { .. } => Some("the token store cannot be reached; retry shortly".into()),
            OAuthError::AssertionCacheFull { .. } => {
                Some("too many client assertions are remembered against replay; retry shortly with a new one".into())
            }
            OAuthError::ServerError => None,
        }
    }

    /// The HTTP answer: JSON `{"error", "error_description"}`, never cached.
    pub fn reply(&self) -> Reply {
        let mut body = serde_json::json!({ "error": self.code() });
        if let Some(d) = self.description() {
            body["error_description"] = d.into();
        }
        let reply = Reply::json_no_store(self.status(), body.to_string());
        match self {
            OAuthError::InvalidClient => reply.with_header("WWW-Authenticate", "Basic realm=\"tokengate\""),
            OAuthError::MethodNotAllowed(m) => reply.with_header("Allow", *m),
            OAuthError::UseDpopNonce(nonce) => reply.with_header("DPoP-Nonce", nonce.clone()),
            OAuthError::TooManyRequests { retry_after_secs }
            | OAuthError::TemporarilyUnavailable { retry_after_secs }
            | OAuthError::ClientTokenLimit { retry_after_secs }
            | OAuthError::StoreUnavailable { retry_after_secs }
            | OAuthError::AssertionCacheFull { retry_after_secs } => {
                reply.with_header("Retry-After", retry_after_secs.to_string())
            }
            _ => reply,
        }
    }
}

/// `Retry-After` of an answer refused because the store cannot be reached.
pub const STORE_RETRY_AFTER_SECS: u64 = 2;

/// Maps engine failures onto protocol errors (store and signing failures are logged here).
pub fn service_error(e: ServiceError) -> OAuthError {
    match e {
        ServiceError::InvalidGrant(m) => OAuthError::InvalidGrant(m.into()),
        ServiceError::InvalidScope(m) => OAuthError::InvalidScope(m.into()),
        ServiceError::InvalidTarget(m) => OAuthError::InvalidTarget(m.into()),
        ServiceError::WrongDpopKey(m) => OAuthError::InvalidDpopProof(m.into()),
        ServiceError::NotOwner => OAuthError::UnauthorizedClient(e.to_string()),
        ServiceError::RefreshReuse => OAuthError::InvalidGrant(e.to_string()),
        ServiceError::Full => OAuthError::TemporarilyUnavailable { retry_after_secs: 1 },
        ServiceError::ClientFull => OAuthError::ClientTokenLimit { retry_after_secs: 1 },
        ServiceError::Store(StoreError::Unavailable(why)) => {
            log::warn!("a request that must write was refused: {why}");
            OAuthError::StoreUnavailable {
                retry_after_secs: STORE_RETRY_AFTER_SECS,
            }
        }
        ServiceError::Store(_) | ServiceError::Sign(_) => {
            log::error!("token request failed: {e}");
            OAuthError::ServerError
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_client_is_401_with_basic_challenge() {
        let r = OAuthError::InvalidClient.reply();
        assert_eq!(r.status, 401);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "WWW-Authenticate" && v.starts_with("Basic")));
        assert!(r.headers.iter().any(|(k, v)| *k == "Cache-Control" && v == "no-store"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "invalid_client");
    }

    #[test]
    fn other_errors_are_400_json() {
        for e in [
            OAuthError::InvalidRequest("x".into()),
            OAuthError::InvalidGrant("x".into()),
            OAuthError::UnauthorizedClient("x".into()),
            OAuthError::UnsupportedGrantType,
            OAuthError::InvalidScope("x".into()),
            OAuthError::InvalidTarget("x".into()),
            OAuthError::InvalidDpopProof("x".into()),
            OAuthError::UseDpopNonce("x".into()),
        ] {
            let r = e.reply();
            assert_eq!(r.status, 400);
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["error"], e.code());
        }
    }

    /// A client at its own bound is told to slow down (429), not that the gateway is out of
    /// room (503); both say when to retry.
    #[test]
    fn the_two_token_bounds_answer_429_and_503_with_retry_after() {
        for (e, status) in [
            (OAuthError::ClientTokenLimit { retry_after_secs: 30 }, 429),
            (OAuthError::TemporarilyUnavailable { retry_after_secs: 30 }, 503),
        ] {
            let r = e.reply();
            assert_eq!(r.status, status);
            assert!(r.headers.iter().any(|(k, v)| *k == "Retry-After" && v == "30"));
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["error"], "temporarily_unavailable");
        }
    }
}
