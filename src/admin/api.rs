//! The admin API's answers, without pingora: the credential checked, the filter read from the
//! query or the JSON body, the engine asked, the answer written as JSON.
//!
//! - `GET /admin/tokens?client_id=..&subject=..&scope=..&token_id=..&issued_before=..&limit=..`:
//!   the live tokens matching every part given, metadata only (never a token's text).
//! - `POST /admin/revoke` with `{"client_id"?, "subject"?, "scope"?, "token_id"?,
//!   "issued_before"?}`, at least one: revokes them all (with their refresh families) and answers
//!   `{"revoked": N}` once that is durable.
//!
//! Every request needs `Authorization: Bearer <admin token>`, whose SHA-256 is compared with
//! `[admin] token_sha256` in constant time; without it the answer is 401, whatever the path.

use std::sync::Arc;

use http::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::audience::AudienceSet;
use crate::domain::filter::TokenFilter;
use crate::domain::ids::TokenId;
use crate::domain::key::ScopeSet;
use crate::reply::Reply;
use crate::state::AppState;
use crate::store::StoreError;
use crate::tokens::bulk::{BulkFailure, Listing, TokenInfo};
use crate::tokens::service::ServiceError;

/// Tokens a listing answers when it does not say (`limit`), and the most it may ask for.
const DEFAULT_LIMIT: usize = 1_000;
const MAX_LIMIT: usize = 100_000;

/// The query parameters and body fields that name tokens.
const FILTER_PARTS: &str = "client_id, subject, scope, token_id, issued_before";

/// The admin API over the gateway's state.
pub struct AdminApi {
    state: Arc<AppState>,
}

/// Who made an admin request: the first 8 hex digits of the SHA-256 of the credential
/// presented (never the credential), for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin(String);

impl std::fmt::Display for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "admin token {}", self.0)
    }
}

/// A request's body as `POST /admin/revoke` takes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    client_id: Option<String>,
    subject: Option<String>,
    scope: Option<String>,
    token_id: Option<String>,
    /// Unix seconds.
    issued_before: Option<u64>,
}

impl AdminApi {
    pub fn new(state: Arc<AppState>) -> AdminApi {
        AdminApi { state }
    }

    /// The admin whose credential `authorization` (the header's value) presents, if it is the
    /// configured one.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Option<Admin> {
        let expected = self.state.live().config.admin.token_sha256?;
        let token = authorization
            .and_then(|v| v.strip_prefix(b"Bearer ").or_else(|| v.strip_prefix(b"bearer ")))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())?;
        let digest: [u8; 32] = Sha256::digest(token).into();
        bool::from(digest.ct_eq(&expected)).then(|| Admin(hex::encode(&digest[..4])))
    }

    /// The answer to `method path?query` with `body`, from `admin` (already authenticated).
    pub async fn answer(&self, admin: &Admin, method: &Method, path: &str, query: Option<&str>, body: &[u8]) -> Reply {
        match (path, method) {
            ("/admin/tokens", &Method::GET) => match filter_of_query(query.unwrap_or("")) {
                Ok((filter, limit)) => self.list(&filter, limit).await,
                Err(message) => invalid_request(&message),
            },
            ("/admin/revoke", &Method::POST) => match filter_of_body(body) {
                Ok(filter) => self.revoke(admin, &filter).await,
                Err(message) => invalid_request(&message),
            },
            ("/admin/tokens", _) => error(405, "invalid_request", "use GET").with_header("Allow", "GET"),
            ("/admin/revoke", _) => error(405, "invalid_request", "use POST").with_header("Allow", "POST"),
            _ => error(404, "not_found", "the admin API has /admin/tokens and /admin/revoke"),
        }
    }

    async fn list(&self, filter: &TokenFilter, limit: usize) -> Reply {
        match self.state.tokens.list_live(filter, limit).await {
            Ok(Listing { tokens, truncated }) => {
                let tokens: Vec<Value> = tokens.iter().map(token_json).collect();
                Reply::json_no_store(200, json!({"tokens": tokens, "truncated": truncated}).to_string())
            }
            Err(e) => store_error(&e, None),
        }
    }

    async fn revoke(&self, admin: &Admin, filter: &TokenFilter) -> Reply {
        let parts = filter.parts();
        // On a task of its own: a caller that hangs up does not stop a revocation half-way.
        let (tokens, owned) = (Arc::clone(&self.state.tokens), filter.clone());
        let done = tokio::spawn(async move { tokens.revoke_matching(&owned).await }).await;
        let done = done.unwrap_or_else(|e| {
            Err(BulkFailure {
                revoked: 0,
                error: ServiceError::Store(StoreError::Db(format!("the revocation task failed: {e}"))),
            })
        });
        match done {
            Ok(n) => {
                self.state.metrics.admin_revoked(&parts, n as u64);
                log::info!("{admin} revoked {n} tokens by {}", describe(filter));
                Reply::json_no_store(200, json!({ "revoked": n }).to_string())
            }
            Err(failure) => {
                self.state.metrics.admin_revoked(&parts, failure.revoked as u64);
                log::error!(
                    "{admin} revoking by {}: {} ({} tokens revoked before it; running it again is safe)",
                    describe(filter),
                    failure.error,
                    failure.revoked
                );
                match failure.error {
                    ServiceError::Store(e) => store_error(&e, Some(failure.revoked)),
                    e => error(500, "server_error", &e.to_string()),
                }
            }
        }
    }
}

/// The filter of a revocation, for the log: what was asked, never a secret (a token id is a
/// digest or a random id, not a usable token).
fn describe(f: &TokenFilter) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &f.client_id {
        parts.push(format!("client_id={c:?}"));
    }
    if let Some(s) = &f.subject {
        parts.push(format!("subject={s:?}"));
    }
    if let Some(s) = &f.scope {
        parts.push(format!("scope={:?}", s.as_str()));
    }
    if let Some(id) = &f.token_id {
        parts.push(format!("token_id={}", hex::encode(id.0)));
    }
    if let Some(ms) = f.issued_before_ms {
        parts.push(format!("issued_before={}", ms / 1000));
    }
    parts.join(" ")
}

/// The `"aud"` of a listed token. Tokens carry no audience yet: null.
/// `aud` as JWTs carry it: a string for one audience, an array for several, null for none.
fn audience(token: &TokenInfo) -> Value {
    AudienceSet::from_canonical(Arc::clone(&token.audience))
        .claim()
        .unwrap_or(Value::Null)
}

/// One listed token: its id (lowercase hex), kind, format, key, audience and times, never its
/// text. `sub` is null for a token of no user (`client_credentials`).
fn token_json(t: &TokenInfo) -> Value {
    json!({
        "id": hex::encode(t.id.0),
        "token_type": if t.refresh { "refresh_token" } else { "access_token" },
        "format": t.format.as_str(),
        "client_id": &*t.client_id,
        "sub": (!t.subject.is_empty()).then_some(t.subject.as_str()),
        "scope": &*t.scope,
        "aud": audience(t),
        "iat": t.issued_at_ms / 1000,
        "exp": t.expires_at_ms / 1000,
    })
}

/// The filter and the limit of a listing's query string; every parameter must be known (a typo
/// must not widen a listing to every token).
fn filter_of_query(query: &str) -> Result<(TokenFilter, usize), String> {
    let mut body = RevokeBody::default();
    let mut limit = DEFAULT_LIMIT;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        let seconds = |v: &str| v.parse::<u64>().map_err(|_| format!("{name} must be unix seconds"));
        match &*name {
            "client_id" => body.client_id = Some(value),
            "subject" => body.subject = Some(value),
            "scope" => body.scope = Some(value),
            "token_id" => body.token_id = Some(value),
            "issued_before" => body.issued_before = Some(seconds(&value)?),
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| format!("limit must be between 1 and {MAX_LIMIT}"))?;
            }
            other => return Err(format!("unknown parameter {other:?} (known: {FILTER_PARTS}, limit)")),
        }
    }
    Ok((filter_of(body)?, limit))
}

/// The filter of a revocation's JSON body; it must name at least one part.
fn filter_of_body(body: &[u8]) -> Result<TokenFilter, String> {
    let body: RevokeBody =
        serde_json::from_slice(body).map_err(|e| format!("the body is not the JSON expected: {e}"))?;
    let filter = filter_of(body)?;
    if filter.is_empty() {
        return Err(format!("name the tokens to revoke: at least one of {FILTER_PARTS}"));
    }
    Ok(filter)
}

fn filter_of(body: RevokeBody) -> Result<TokenFilter, String> {
    let scope = match body.scope {
        Some(text) => Some(ScopeSet::parse(&text).map_err(|e| format!("scope: {e}"))?),
        None => None,
    };
    let token_id = match body.token_id {
        Some(text) => {
            let mut id = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut id)
                .map_err(|_| "token_id must be 64 hex digits (`tokengate admin token-id` computes it)".to_string())?;
            Some(TokenId(id))
        }
        None => None,
    };
    Ok(TokenFilter {
        client_id: body.client_id,
        subject: body.subject,
        scope,
        token_id,
        issued_before_ms: body.issued_before.map(|s| s.saturating_mul(1000)),
    })
}

pub(super) fn error(status: u16, code: &str, description: &str) -> Reply {
    Reply::json_no_store(
        status,
        json!({"error": code, "error_description": description}).to_string(),
    )
}

fn invalid_request(description: &str) -> Reply {
    error(400, "invalid_request", description)
}

/// 503 when the database cannot be reached, else 500; with the tokens revoked before it.
fn store_error(e: &StoreError, revoked: Option<usize>) -> Reply {
    let status = match e {
        StoreError::Unavailable(_) => 503,
        _ => 500,
    };
    let mut body = json!({"error": "server_error", "error_description": e.to_string()});
    if let Some(n) = revoked {
        body["revoked"] = n.into();
    }
    Reply::json_no_store(status, body.to_string())
}

/// The answer to a request without the admin credential.
pub fn unauthorized() -> Reply {
    error(401, "invalid_token", "this API needs the admin bearer token").with_header(
        "WWW-Authenticate",
        "Bearer realm=\"tokengate-admin\", error=\"invalid_token\"",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_query_names_known_parts_only() {
        let (f, limit) = filter_of_query("client_id=orders-app&subject=alice&scope=b%20a&limit=5").unwrap();
        assert_eq!(f.client_id.as_deref(), Some("orders-app"));
        assert_eq!(f.subject.as_deref(), Some("alice"));
        assert_eq!(f.scope.as_ref().map(|s| s.as_str()), Some("a b"));
        assert_eq!(limit, 5);
        let (all, limit) = filter_of_query("").unwrap();
        assert!(all.is_empty());
        assert_eq!(limit, DEFAULT_LIMIT);
        assert!(filter_of_query("client=x").unwrap_err().contains("client"));
        assert!(filter_of_query("limit=0").is_err());
        assert!(filter_of_query("issued_before=soon").is_err());
    }

    #[test]
    fn a_revocation_names_at_least_one_part_in_json() {
        let f = filter_of_body(br#"{"issued_before": 1700000000}"#).unwrap();
        assert_eq!(f.issued_before_ms, Some(1_700_000_000_000));
        let id = "ab".repeat(32);
        let f = filter_of_body(format!(r#"{{"token_id": "{id}"}}"#).as_bytes()).unwrap();
        assert_eq!(f.token_id, Some(TokenId([0xab; 32])));
        assert!(filter_of_body(b"{}").unwrap_err().contains("at least one"));
        assert!(filter_of_body(b"not json").is_err());
        assert!(filter_of_body(br#"{"client": "x"}"#).is_err(), "unknown field");
        assert!(filter_of_body(br#"{"token_id": "abc"}"#).is_err());
        assert!(filter_of_body(br#"{"scope": "a\"b"}"#).is_err());
    }
}
