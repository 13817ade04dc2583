//! `POST /oauth2/revoke` (RFC 7009) and `POST /oauth2/introspect` (RFC 7662).

use super::deps::OAuthDeps;
use super::errors::OAuthError;
use super::token_endpoint::{authenticated, service_error, EndpointRequest};
use crate::config::Config;
use crate::domain::key::TokenKey;
use crate::reply::Reply;
use crate::tokens::lifecycle::Revoked;
use crate::tokens::opaque::OpaqueKind;
use crate::tokens::record::{now_ms, TokenState};
use crate::tokens::service::RevokeCause;

/// Longest `token` parameter accepted.
pub const MAX_TOKEN_BYTES: usize = 8192;

fn token_param(form: &super::form::Form) -> Result<&str, OAuthError> {
    let token = form.require("token")?;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(OAuthError::InvalidRequest("token too long".into()));
    }
    Ok(token)
}

/// Revokes a token the authenticated client owns. Unknown tokens answer 200 too.
pub async fn revoke(
    deps: OAuthDeps<'_>,
    config: &Config,
    req: EndpointRequest<'_>,
) -> Result<(Reply, Revoked), OAuthError> {
    let (form, client) = authenticated(deps, config, &req, "revoke").await?;
    let token = token_param(&form)?;
    let what = deps.tokens.revoke(&client.id, token).await.map_err(service_error)?;
    if what != Revoked::Nothing {
        deps.metrics.revoked(RevokeCause::Request, 1);
    }
    Ok((Reply::empty(200), what))
}

/// Tells an authenticated client whether a token is active, and what it carries.
pub async fn introspect(deps: OAuthDeps<'_>, config: &Config, req: EndpointRequest<'_>) -> Result<Reply, OAuthError> {
    let (form, _client) = authenticated(deps, config, &req, "introspect").await?;
    let token = token_param(&form)?;
    let now = now_ms();
    let tokens = deps.tokens;
    let inactive = || Reply::json_no_store(200, r#"{"active":false}"#);
    let access = match tokens.access_id(token) {
        Some(id) => match tokens.index().access(&id) {
            Some(rec) => Some(rec),
            // Issued at another node of a cluster and not seen here yet.
            None => tokens
                .look_up_access(token, id, now)
                .await
                .map_err(|e| service_error(e.into()))?,
        },
        None => None,
    };
    if let Some(rec) = access {
        if !rec.is_valid_at(now) || !config.permits(&rec.key) {
            return Ok(inactive());
        }
        let answer = active_answer(
            &rec.key,
            rec.issued_at_ms,
            rec.expires_at_ms,
            "Bearer",
            &config.oauth.issuer,
        );
        return Ok(answer);
    }
    let refresh = match tokens.codec().parse(OpaqueKind::Refresh, token) {
        Some(id) => match tokens.index().refresh(&id) {
            Some(rec) => Some(rec),
            // Issued at another node of a cluster and not seen here yet.
            None => tokens.look_up_refresh(id).await.map_err(|e| service_error(e.into()))?,
        },
        None => None,
    };
    if let Some(rec) = refresh {
        if rec.state.get() == TokenState::Active && rec.expires_at_ms > now && config.permits(&rec.key) {
            let answer = active_answer(
                &rec.key,
                rec.issued_at_ms,
                rec.expires_at_ms,
                "refresh_token",
                &config.oauth.issuer,
            );
            return Ok(answer);
        }
    }
    Ok(inactive())
}

/// The RFC 7662 answer for an active token of `key`.
fn active_answer(key: &TokenKey, issued_at_ms: u64, expires_at_ms: u64, token_type: &str, issuer: &str) -> Reply {
    let sub: &str = if key.subject.is_empty() {
        &key.client_id
    } else {
        &key.subject
    };
    let mut body = serde_json::json!({
        "active": true,
        "client_id": &*key.client_id,
        "sub": sub,
        "scope": key.scope.as_str(),
        "exp": expires_at_ms / 1000,
        "iat": issued_at_ms / 1000,
        "token_type": token_type,
        "iss": issuer,
    });
    if !key.subject.is_empty() {
        body["username"] = (&*key.subject).into();
    }
    if let Some(aud) = key.audience().claim() {
        body["aud"] = aud;
    }
    if let Some(jkt) = key.jkt() {
        body["cnf"] = serde_json::json!({ "jkt": jkt.to_b64() });
        if token_type == "Bearer" {
            body["token_type"] = "DPoP".into();
        }
    }
    Reply::json_no_store(200, body.to_string())
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
