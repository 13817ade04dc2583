//! `POST /oauth2/token` (RFC 6749 sections 4.3, 4.4, 6): authenticate the client, check the grant
//! and scope, then hand over to the token engine. Knows nothing of pingora.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use super::client_assertion::Spent;
use super::client_auth;
use super::deps::OAuthDeps;
use super::dpop_grant;
use super::errors::OAuthError;
pub use super::errors::{service_error, STORE_RETRY_AFTER_SECS};
use super::form::{self, Form};
use super::lockout::Subject;
use crate::config::model::Client;
use crate::config::Config;
use crate::domain::audience::AudienceSet;
use crate::domain::format::TokenFormat;
use crate::domain::grant_type::GrantType;
use crate::domain::key::{ScopeSet, TokenKey};
use crate::metrics::{Bound, Metrics};
use crate::reply::Reply;
use crate::tokens::request::LiveLimits;
use crate::tokens::service::{IssueParams, Issued, RevokeCause, ServiceError};

/// Longest username accepted.
pub const MAX_USERNAME_BYTES: usize = 256;
/// Longest password accepted (argon2 work grows with it).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest `scope` parameter accepted.
pub const MAX_SCOPE_BYTES: usize = 4096;

/// The parts of an HTTP request an OAuth endpoint reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct EndpointRequest<'a> {
    pub authorization: Option<&'a [u8]>,
    pub content_type: Option<&'a [u8]>,
    pub body: &'a [u8],
    /// The client's address, for the per-address lockout (`None` when unknown).
    pub peer: Option<IpAddr>,
    /// The one `DPoP` header, if any (two are refused before the endpoint is called).
    pub dpop: Option<&'a [u8]>,
    /// The URL the request reached (scheme, `Host` and path), for a DPoP proof's `htu`.
    pub url: Option<&'a str>,
}

/// Parses the form and authenticates the client; shared by token, revoke and introspect
/// (`endpoint` names the caller in metrics).
///
/// A locked-out address, or client id from this address, is refused with 429 before any secret
/// is checked. Failures count against the address and, when the id is configured, the (address,
/// client id) pair.
pub fn authenticate<'c>(
    deps: OAuthDeps<'_>,
    config: &'c Config,
    req: &EndpointRequest<'_>,
    endpoint: &'static str,
) -> Result<(Form, &'c Arc<Client>, Option<Spent>), OAuthError> {
    let limits = &config.oauth.lockout;
    let now = Instant::now();
    let address = req.peer.map(Subject::Address);
    if let Some(a) = address {
        deps.lockout.check(limits, a, now)?;
    }
    form::check_content_type(req.content_type)?;
    let form = form::parse(req.body)?;
    let failed = |client: Option<Subject<'_>>, e: OAuthError| failure(deps, config, req, endpoint, client, e);
    let presented = client_auth::credentials(req.authorization, &form).map_err(|e| failed(None, e))?;
    let client_id = presented.client_id();
    let client = config
        .clients
        .contains_key(client_id)
        .then_some(Subject::Client(client_id, req.peer));
    if let Some(c) = client {
        deps.lockout.check(limits, c, now)?;
    }
    let unix_now = crate::tokens::record::now_ms() / 1000;
    let (verified, spent) =
        client_auth::verify(config, &presented, deps.replay, unix_now).map_err(|e| failed(client, e))?;
    Ok((form, verified, spent))
}

/// [`authenticate`], and in a cluster, a client assertion recorded for every node: one already
/// accepted at another node is refused here too.
pub async fn authenticated<'c>(
    deps: OAuthDeps<'_>,
    config: &'c Config,
    req: &EndpointRequest<'_>,
    endpoint: &'static str,
) -> Result<(Form, &'c Arc<Client>), OAuthError> {
    let (form, client, spent) = authenticate(deps, config, req, endpoint)?;
    let store = deps.tokens.store();
    if let (Some(spent), true) = (spent, store.is_shared()) {
        let now = crate::tokens::record::now_ms() / 1000;
        match store.first_use(spent.digest, spent.forget_at, now).await {
            Ok(true) => {}
            Ok(false) => {
                log::debug!("client {:?}: client_assertion already used at another node", client.id);
                let subject = Subject::Client(&client.id, req.peer);
                return Err(failure(
                    deps,
                    config,
                    req,
                    endpoint,
                    Some(subject),
                    OAuthError::InvalidClient,
                ));
            }
            Err(e) => return Err(service_error(e.into())),
        }
    }
    Ok((form, client))
}

/// Counts a failed client authentication (the lockout, the metric) and hands back its error.
fn failure(
    deps: OAuthDeps<'_>,
    config: &Config,
    req: &EndpointRequest<'_>,
    endpoint: &'static str,
    client: Option<Subject<'_>>,
    e: OAuthError,
) -> OAuthError {
    if e == OAuthError::InvalidClient {
        let now = Instant::now();
        for s in req.peer.map(Subject::Address).into_iter().chain(client) {
            deps.lockout.record_failure(&config.oauth.lockout, s, now);
        }
        let slot = crate::metrics::AUTH_ENDPOINTS
            .iter()
            .position(|e| *e == endpoint)
            .unwrap_or(0);
        deps.metrics.client_auth_failed(slot);
    }
    e
}

/// Handles a token request; the answer is success JSON or an RFC 6749 section 5.2 error.
pub async fn token(deps: OAuthDeps<'_>, config: &Config, req: EndpointRequest<'_>) -> Result<Issued, OAuthError> {
    let (form, client) = authenticated(deps, config, &req, "token").await?;
    let grant = GrantType::parse(form.require("grant_type")?).ok_or(OAuthError::UnsupportedGrantType)?;
    if !client.grant_types.contains(grant) {
        return Err(OAuthError::UnauthorizedClient(format!(
            "this client may not use the {grant} grant"
        )));
    }
    let oauth = &config.oauth;
    let mut params = IssueParams {
        client_id: &client.id,
        format: client.token_format,
        grant,
        subject: "",
        scope: ScopeSet::default(),
        audience: requested_audience(&form, config, client, grant)?,
        jkt: dpop_grant::binding(deps, config, client, req.dpop, req.url).await?,
        policy: *oauth.policy(client.token_format),
        access_ttl_secs: oauth.access_token_ttl_secs,
        refresh_ttl_secs: None,
        issuer: &oauth.issuer,
        limits: LiveLimits {
            total: oauth.max_live_tokens,
            per_client: client.live_token_bound(oauth.max_live_tokens_per_client),
        },
    };
    let result = match grant {
        GrantType::ClientCredentials => {
            params.scope = requested_scope(&form, client)?;
            if client.refresh_tokens_for_client_credentials {
                params.refresh_ttl_secs = Some(oauth.refresh_token_ttl_secs);
            }
            deps.tokens.issue(params).await
        }
        GrantType::Password => {
            let username = form.require("username")?;
            let password = form.require("password")?;
            if username.len() > MAX_USERNAME_BYTES || password.len() > MAX_PASSWORD_BYTES {
                return Err(OAuthError::InvalidRequest("username or password too long".into()));
            }
            params.scope = requested_scope(&form, client)?;
            let user = Subject::User(username, req.peer);
            deps.lockout.check(&oauth.lockout, user, Instant::now())?;
            if let Err(e) = verify_user(deps, config, username, password).await {
                if matches!(e, OAuthError::InvalidGrant(_)) {
                    deps.lockout.record_failure(&oauth.lockout, user, Instant::now());
                }
                return Err(e);
            }
            params.subject = username;
            if client.grant_types.contains(GrantType::RefreshToken) {
                params.refresh_ttl_secs = Some(oauth.refresh_token_ttl_secs);
            }
            deps.tokens.issue(params).await
        }
        GrantType::RefreshToken => {
            let refresh_token = form.require("refresh_token")?;
            let scope = form.get("scope").map(parse_scope).transpose()?;
            params.refresh_ttl_secs = Some(oauth.refresh_token_ttl_secs);
            let still_allowed = |key: &TokenKey| refresh_still_allowed(config, key);
            deps.tokens
                .refresh(refresh_token, scope.as_ref(), params, &still_allowed)
                .await
        }
    };
    count(deps.metrics, grant, client.token_format, &result);
    // Room comes back as tokens are revoked or expire; the sweeper runs this often.
    let retry_after_secs = config.start.store.sweep_interval.as_secs().max(1);
    result.map_err(|e| match e {
        ServiceError::Full => OAuthError::TemporarilyUnavailable { retry_after_secs },
        ServiceError::ClientFull => OAuthError::ClientTokenLimit { retry_after_secs },
        e => service_error(e),
    })
}

/// Whether the live config still allows refreshing a token of `key`: its user still exists
/// (`invalid_grant` otherwise) and its client may still ask for every scope it carries
/// (`invalid_scope` otherwise: the client asks for a new grant with the scope it may have now).
/// The client itself has just authenticated, so it exists.
fn refresh_still_allowed(config: &Config, key: &TokenKey) -> Result<(), ServiceError> {
    if !key.subject.is_empty() && !config.users.contains_key(key.subject.as_str()) {
        return Err(ServiceError::InvalidGrant(
            "the user of this refresh token no longer exists",
        ));
    }
    if !config.permits(key) {
        return Err(ServiceError::InvalidScope(
            "the refresh token's scope or audience is no longer allowed for this client; ask for a new grant",
        ));
    }
    Ok(())
}

/// Counts an engine answer: the token handed out and the revocations it caused.
fn count(metrics: &Metrics, grant: GrantType, format: TokenFormat, result: &Result<Issued, ServiceError>) {
    match result {
        Ok(issued) => {
            metrics.issued(grant, format, issued.outcome);
            for cause in &issued.revoked {
                metrics.revoked(*cause, 1);
            }
        }
        Err(ServiceError::RefreshReuse) => metrics.revoked(RevokeCause::RefreshReuse, 1),
        Err(ServiceError::Full) => metrics.tokens_refused(Bound::Gateway),
        Err(ServiceError::ClientFull) => metrics.tokens_refused(Bound::Client),
        Err(_) => {}
    }
}

/// The success answer of RFC 6749 section 5.1.
pub fn success(issued: &Issued) -> Reply {
    /// RFC 6749 section 5.1; fields in the order `serde_json::Value` used to give them.
    #[derive(serde::Serialize)]
    struct Body<'a> {
        access_token: &'a str,
        expires_in: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        refresh_token: Option<&'a str>,
        scope: &'a str,
        token_type: &'static str,
    }
    let body = Body {
        access_token: &issued.access_token,
        expires_in: issued.expires_in,
        refresh_token: issued.refresh_token.as_deref(),
        scope: &issued.scope,
        token_type: if issued.bound { "DPoP" } else { "Bearer" },
    };
    match serde_json::to_vec(&body) {
        Ok(json) => Reply::json_no_store(200, json),
        Err(_) => OAuthError::ServerError.reply(),
    }
}

fn parse_scope(text: &str) -> Result<ScopeSet, OAuthError> {
    if text.len() > MAX_SCOPE_BYTES {
        return Err(OAuthError::InvalidRequest("scope too long".into()));
    }
    ScopeSet::parse(text).map_err(|e| OAuthError::InvalidScope(e.to_string()))
}

/// The requested scope (all of the client's scopes when absent), checked against the client.
fn requested_scope(form: &Form, client: &Client) -> Result<ScopeSet, OAuthError> {
    match form.get("scope") {
        None => Ok(client.scopes.clone()),
        Some(text) => {
            let scope = parse_scope(text)?;
            if let Some(s) = scope.iter().find(|s| !client.scopes.contains(s)) {
                return Err(OAuthError::InvalidScope(format!(
                    "scope {s:?} is not allowed for this client"
                )));
            }
            Ok(scope)
        }
    }
}

/// Longest list of `resource` parameters taken.
pub const MAX_RESOURCES: usize = 8;

/// The audience a request asks for with `resource` (RFC 8707), each checked against what the
/// client may ask for (`invalid_target` otherwise); without `resource`, the default audience. A
/// refresh without `resource` keeps its token's audience: the empty set says "none asked".
fn requested_audience(
    form: &Form,
    config: &Config,
    client: &Client,
    grant: GrantType,
) -> Result<AudienceSet, OAuthError> {
    let resources: Vec<&str> = form.all("resource").collect();
    if resources.is_empty() {
        return Ok(match grant {
            GrantType::RefreshToken => AudienceSet::default(),
            _ => config.oauth.default_audience.clone(),
        });
    }
    if resources.len() > MAX_RESOURCES {
        return Err(OAuthError::InvalidTarget(format!(
            "at most {MAX_RESOURCES} resource parameters are taken"
        )));
    }
    let audience =
        AudienceSet::from_uris(resources.iter().copied()).map_err(|e| OAuthError::InvalidTarget(e.to_string()))?;
    if let Some(uri) = audience.iter().find(|uri| !config.may_target(client, uri)) {
        return Err(OAuthError::InvalidTarget(format!(
            "resource {uri:?} is not one this client may ask for"
        )));
    }
    Ok(audience)
}

/// Checks a resource owner's password ([`PasswordChecker`](super::passwords::PasswordChecker)).
async fn verify_user(deps: OAuthDeps<'_>, config: &Config, username: &str, password: &str) -> Result<(), OAuthError> {
    let known = config.users.get(username).map(|u| u.password_hash.as_str());
    match deps.passwords.verify(known, password).await {
        Some(true) => Ok(()),
        Some(false) => Err(OAuthError::InvalidGrant("invalid resource owner credentials".into())),
        None => Err(OAuthError::ServerError),
    }
}
