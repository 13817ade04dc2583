//! The pingora glue, kept thin: route the request to an OAuth endpoint or to an upstream, and
//! translate between HTTP and the plain-Rust calls that decide everything.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, Method};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType, Result};

use super::bearer::{self, BearerError};
use super::body::{has_body, read_body_before};
use super::dpop;
use super::forwarded::{self, TrustedProxies};
use super::identity;
use super::last_token::ConnectionMemory;
use super::limits;
use super::routes::Route;
use super::target;
use super::upstream::{connect_failed, error_status, failure_reply, peer_for};
use crate::metrics::Validation;
use crate::oauth::errors::OAuthError;
use crate::oauth::form::MAX_BODY_BYTES;
use crate::oauth::token_endpoint::EndpointRequest;
use crate::oauth::{endpoints, token_endpoint};
use crate::reply::Reply;
use crate::state::AppState;
use crate::tokens::record::{now_ms, AccessRecord};
use crate::upstream::settings::Balancing;

/// The proxy service.
pub struct Gateway {
    state: Arc<AppState>,
}

impl Gateway {
    pub fn new(state: Arc<AppState>) -> Gateway {
        Gateway { state }
    }
}

/// Per-request context: where the request goes and who it is.
#[derive(Default)]
pub struct Ctx {
    route: Option<Arc<Route>>,
    identity: Option<Arc<AccessRecord>>,
    /// The target the upstream is sent (the path the route was chosen by, normalised, and the
    /// query), when it differs from the raw one the client sent.
    upstream_target: Option<String>,
    /// The server whose connection failed, when the request is being retried on another.
    failed: Option<SocketAddr>,
}

/// The locally answered endpoints.
enum Endpoint {
    Token,
    Revoke,
    Introspect,
    Jwks,
    Metadata,
}

fn endpoint_of(path: &str) -> Option<Endpoint> {
    match path {
        "/oauth2/token" => Some(Endpoint::Token),
        "/oauth2/revoke" => Some(Endpoint::Revoke),
        "/oauth2/introspect" => Some(Endpoint::Introspect),
        "/oauth2/jwks" => Some(Endpoint::Jwks),
        "/.well-known/oauth-authorization-server" => Some(Endpoint::Metadata),
        _ => None,
    }
}

/// The IP address of the connection's peer (none for a Unix socket).
fn peer_ip(session: &Session) -> Option<IpAddr> {
    session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())
}

/// The client's address: the peer's, or behind a trusted reverse proxy the one it forwarded.
fn client_ip(session: &Session, trusted: &TrustedProxies) -> Option<IpAddr> {
    peer_ip(session).map(|peer| forwarded::client_addr(session.req_header(), peer, trusted))
}

/// The response head of `reply` (its headers and `Content-Length`); the body is `reply.body`,
/// not to be sent to a HEAD request.
fn response_header(reply: &mut Reply) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(reply.status, Some(reply.headers.len() + 1))?;
    for (name, value) in reply.headers.drain(..) {
        let value = match value {
            Cow::Borrowed(s) => HeaderValue::from_maybe_shared(Bytes::from_static(s.as_bytes())),
            Cow::Owned(s) => HeaderValue::from_maybe_shared(Bytes::from(s)),
        }
        .map_err(|_| Error::explain(ErrorType::InternalError, "invalid reply header value"))?;
        resp.insert_header(name, value)?;
    }
    resp.insert_header("Content-Length", HeaderValue::from(reply.body.len()))?;
    Ok(resp)
}

async fn write_reply(session: &mut Session, mut reply: Reply) -> Result<()> {
    let resp = response_header(&mut reply)?;
    let head_only = session.req_header().method == Method::HEAD || reply.body.is_empty();
    session.write_response_header(Box::new(resp), head_only).await?;
    if !head_only {
        session.write_response_body(Some(reply.body), true).await?;
    }
    Ok(())
}

impl Gateway {
    /// Answers one of the gateway's own endpoints.
    async fn serve_endpoint(&self, session: &mut Session, endpoint: Endpoint) -> Result<()> {
        let method = session.req_header().method.clone();
        let reply = match endpoint {
            Endpoint::Jwks | Endpoint::Metadata => {
                if method != Method::GET && method != Method::HEAD {
                    OAuthError::MethodNotAllowed("GET").reply()
                } else if matches!(endpoint, Endpoint::Jwks) {
                    Reply::json_public(self.state.jwks())
                } else {
                    Reply::json_public(self.state.live_guard().metadata.clone())
                }
            }
            _ if method != Method::POST => OAuthError::MethodNotAllowed("POST").reply(),
            _ => match read_body_before(
                session,
                MAX_BODY_BYTES,
                self.state.live_guard().config.server.body_read_timeout,
            )
            .await?
            {
                Err(e) => e.reply(),
                Ok(body) => {
                    let h = &session.req_header().headers;
                    let peer = client_ip(session, &self.state.live_guard().config.server.trusted_proxies);
                    let https = session.digest().is_some_and(|d| d.ssl_digest.is_some());
                    let proof = dpop::ProofRequest::of(session, https);
                    let Ok(one_proof) = proof.proof else {
                        let e = OAuthError::InvalidDpopProof("more than one DPoP header".into());
                        return write_reply(session, e.reply()).await.map(drop);
                    };
                    let req = EndpointRequest {
                        authorization: h.get(http::header::AUTHORIZATION).map(|v| v.as_bytes()),
                        content_type: h.get(http::header::CONTENT_TYPE).map(|v| v.as_bytes()),
                        body: &body,
                        peer,
                        dpop: one_proof,
                        url: proof.url.as_deref(),
                    };
                    let live = self.state.live();
                    let (deps, config) = (self.state.oauth(), &live.config);
                    // Client authentication failures are counted where they happen, in
                    // `token_endpoint::authenticate`.
                    let result = match endpoint {
                        Endpoint::Token => token_endpoint::token(deps, config, req)
                            .await
                            .map(|i| token_endpoint::success(&i)),
                        Endpoint::Revoke => endpoints::revoke(deps, config, req).await.map(|(r, _)| r),
                        _ => endpoints::introspect(deps, config, req).await,
                    };
                    result.unwrap_or_else(|e| e.reply())
                }
            },
        };
        if matches!(reply.status, 405 | 408 | 413) {
            session.set_keepalive(None);
        }
        write_reply(session, reply).await
    }

    /// Answers a request the gateway refuses without reading its body.
    async fn refuse(&self, session: &mut Session, reply: Reply) -> Result<bool> {
        if has_body(session.req_header()) {
            // Do not read an unwanted body: close the connection after the answer.
            session.set_keepalive(None);
        }
        write_reply(session, reply).await?;
        Ok(true)
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // HTTP/1.1 pipelining (RFC 9112 section 9.3.2): answer requests sent before the previous
        // answer, in order, instead of pingora's default of closing after the first and
        // dropping the rest (wrk's pipelining script saw only read errors).
        session.set_pipelining_enabled(true);
        // pingora keeps an HTTP/1.1 connection open for ever between requests once a client has
        // sent one; idle connections then pile up until the process runs out of files. This
        // closes one that sends nothing for the timeout (it also bounds each read of the next
        // head). Kept off for a client that asked to close.
        if session.get_keepalive().is_some() {
            let keepalive = self.state.live_guard().config.server.keepalive_timeout.as_secs();
            session.set_keepalive(Some(keepalive));
        }
        let authorization = match limits::check_head(session.req_header()) {
            Ok(authorization) => authorization,
            Err(reply) => return self.refuse(session, reply).await,
        };
        let https = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let head = session.req_header();
        let routed = match target::route(head.raw_path(), head.uri.path(), https) {
            Ok(routed) => routed,
            Err(e) => return self.refuse(session, target::refusal(e)).await,
        };
        let path = routed.path.as_deref().unwrap_or(session.req_header().uri.path());
        if let Some(endpoint) = endpoint_of(path) {
            self.serve_endpoint(session, endpoint).await?;
            return Ok(true);
        }
        let live = self.state.live_guard();
        let Some(route) = live.config.routes.find(path) else {
            return self
                .refuse(session, Reply::json_no_store(404, r#"{"error":"not_found"}"#))
                .await;
        };
        if route.auth {
            let now = now_ms();
            let check_proof = |rec: &AccessRecord, token: &str| {
                let req = dpop::ProofRequest::of(session, https);
                let proofs = (&self.state.dpop_proofs, &self.state.dpop_nonces);
                dpop::check_bound(rec, token, &req, &live.config, proofs, now / 1000)
            };
            let memory = ConnectionMemory::of(session.digest());
            let (tokens, config) = (&self.state.tokens, &live.config);
            let result = bearer::authorize(tokens, config, route, authorization, now, &memory, check_proof).await;
            let counted = result.as_ref().map_or_else(BearerError::validation, |_| Validation::Ok);
            self.state.metrics.validated(counted);
            match result {
                Ok(rec) => ctx.identity = Some(rec),
                Err(e) => return self.refuse(session, e.reply()).await,
            }
        }
        ctx.route = Some(Arc::clone(route));
        ctx.upstream_target = routed.upstream;
        Ok(false)
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let route = ctx.route.as_ref().ok_or_else(|| {
            Error::explain(
                ErrorType::InternalError,
                "request reached upstream_peer without a route",
            )
        })?;
        let live = self.state.live_guard();
        // Consistent hashing goes by the token's client id; on a public route, by the client.
        let client;
        let key: &[u8] = match (&ctx.identity, route.upstream.settings().balancing) {
            (_, Balancing::RoundRobin | Balancing::Random) => b"",
            (Some(record), Balancing::ConsistentHash) => record.key.client_id.as_bytes(),
            (None, Balancing::ConsistentHash) => {
                client = client_ip(session, &live.config.server.trusted_proxies).map(|ip| ip.to_string());
                client.as_deref().unwrap_or_default().as_bytes()
            }
        };
        let Some(addr) = route.upstream.select(key, ctx.failed) else {
            let why = format!("route {}: no server is up", route.path_prefix);
            return Err(Error::explain(ErrorType::ConnectNoRoute, why).into_up());
        };
        Ok(Box::new(peer_for(route, addr, &live.config.server)))
    }

    /// Nothing reached the server: the request may go to another one, once, whatever its method.
    fn fail_to_connect(&self, _session: &mut Session, peer: &HttpPeer, ctx: &mut Ctx, mut e: Box<Error>) -> Box<Error> {
        let retry = match (&ctx.route, peer._address.as_inet()) {
            (Some(route), Some(&addr)) => connect_failed(route, addr, &e, &mut ctx.failed),
            _ => false,
        };
        e.set_retry(retry);
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, _ctx: &mut Ctx) -> FailToProxy {
        let code = error_status(e);
        self.state.metrics.upstream_failed(code);
        if code > 0 {
            // Like pingora's `respond_error` (nothing is written over an answer already begun,
            // and the connection closes after it), but in JSON like the gateway's other answers.
            let mut reply = failure_reply(code);
            let written = match response_header(&mut reply) {
                Ok(resp) if session.req_header().method == Method::HEAD => {
                    session.write_error_response(resp, Bytes::new()).await
                }
                Ok(resp) => session.write_error_response(resp, reply.body).await,
                Err(e) => Err(e),
            };
            if let Err(write) = written {
                log::debug!("could not answer {code} after a failed request: {write}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(target) = ctx.upstream_target.take() {
            upstream_request.set_raw_path(target.as_bytes())?;
        }
        limits::normalize_content_length(upstream_request)?;
        identity::reserve_room(upstream_request)?;
        identity::drop_underscored_lookalikes(upstream_request);
        let identity = match &ctx.identity {
            Some(rec) => Some(ConnectionMemory::of(session.digest()).identity_of(&rec.key)?),
            None => None,
        };
        identity::set_headers(upstream_request, identity)?;
        let https = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let trusted = &self.state.live_guard().config.server.trusted_proxies;
        forwarded::set_upstream_headers(upstream_request, peer_ip(session), https, trusted)
    }

    /// What pingora's own error lines say about the request. Its default has the whole target, and
    /// a query string may carry credentials (`?api_key=...`): only the path is written, as in the
    /// access log.
    fn request_summary(&self, session: &Session, _ctx: &Ctx) -> String {
        let req = session.req_header();
        // HTTP/2 requests carry the host as the target's authority, not as a header.
        let host = match req.headers.get(http::header::HOST) {
            Some(h) => String::from_utf8_lossy(h.as_bytes()),
            None => Cow::Borrowed(req.uri.authority().map_or("-", |a| a.as_str())),
        };
        format!("{} {}, Host: {host}", req.method, req.uri.path())
    }

    /// A client that hangs up or stalls is not the gateway's error: pingora would log each one as
    /// an error (wrk's 2,000 connections closing at the end of a run wrote 554 lines). They are
    /// logged at debug level by [`Self::logging`].
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, error: &Error) -> bool {
        *error.esource() == pingora::ErrorSource::Downstream
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, _ctx: &mut Ctx) {
        let live = self.state.live_guard();
        if live.config.server.access_log {
            let status = session.response_written().map_or(0, |r| r.status.as_u16());
            let head = session.req_header();
            // The client as the lockout sees it (behind a trusted proxy, the one it forwarded).
            let client = client_ip(session, &live.config.server.trusted_proxies);
            let client = client.map_or_else(|| "-".to_string(), |ip| ip.to_string());
            // The path only: a query string may carry credentials.
            log::info!("{client} {} {} {status}", head.method, head.uri.path());
        }
        if let Some(e) = e {
            // pingora has already logged it as an error, unless it was the client's doing
            // (`suppress_error_log`).
            log::debug!("request failed: {e}");
        }
    }
}
